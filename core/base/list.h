/* SPDX-License-Identifier: MIT */
/* The tree's intrusive doubly-linked list, written once: over any struct
 * with `prev` and `next` pointers to its own type, so nodes keep their
 * layout and lists are walked with a plain `for (n = head; n; n = n->next)`.
 * A list is a head pointer (push at the front), or a head and a tail (push
 * at the back). `head` and `tail` are pointers to those pointers; each
 * argument is evaluated once. An unlinked node has prev == next == NULL.
 * No locking: the caller's (a loop's thread, or its owner's mutex). */
#ifndef CORIO_CORE_BASE_LIST_H
#define CORIO_CORE_BASE_LIST_H

#include <stddef.h>

#define cor__list_push_front(head, node)                                       \
  do {                                                                         \
    __typeof__(node) cor__n_ = (node);                                         \
    __typeof__(node) *cor__h_ = (head);                                        \
    cor__n_->prev = NULL;                                                      \
    cor__n_->next = *cor__h_;                                                  \
    if (cor__n_->next != NULL)                                                 \
      cor__n_->next->prev = cor__n_;                                           \
    *cor__h_ = cor__n_;                                                        \
  } while (0)

/* From a head-only list. */
#define cor__list_unlink(head, node)                                           \
  do {                                                                         \
    __typeof__(node) cor__n_ = (node);                                         \
    if (cor__n_->prev != NULL)                                                 \
      cor__n_->prev->next = cor__n_->next;                                     \
    else                                                                       \
      *(head) = cor__n_->next;                                                 \
    if (cor__n_->next != NULL)                                                 \
      cor__n_->next->prev = cor__n_->prev;                                     \
    cor__n_->prev = cor__n_->next = NULL;                                      \
  } while (0)

#define cor__list_push_back(head, tail, node)                                  \
  do {                                                                         \
    __typeof__(node) cor__n_ = (node);                                         \
    __typeof__(node) *cor__t_ = (tail);                                        \
    cor__n_->next = NULL;                                                      \
    cor__n_->prev = *cor__t_;                                                  \
    if (*cor__t_ != NULL)                                                      \
      (*cor__t_)->next = cor__n_;                                              \
    else                                                                       \
      *(head) = cor__n_;                                                       \
    *cor__t_ = cor__n_;                                                        \
  } while (0)

/* From a head-and-tail list. */
#define cor__list_unlink_ht(head, tail, node)                                  \
  do {                                                                         \
    __typeof__(node) cor__n_ = (node);                                         \
    if (cor__n_->prev != NULL)                                                 \
      cor__n_->prev->next = cor__n_->next;                                     \
    else                                                                       \
      *(head) = cor__n_->next;                                                 \
    if (cor__n_->next != NULL)                                                 \
      cor__n_->next->prev = cor__n_->prev;                                     \
    else                                                                       \
      *(tail) = cor__n_->prev;                                                 \
    cor__n_->prev = cor__n_->next = NULL;                                      \
  } while (0)

#endif
