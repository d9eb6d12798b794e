/* SPDX-License-Identifier: MIT */
/* corio: file I/O from tasks that never blocks the loop.
 *
 * Each call runs inside a task and suspends it until the operation is done:
 * on the loop's io_uring where the loop has one (socket streams make it;
 * these calls make it too, unless io_uring is off: cor_loop_opts.io_uring,
 * CORIO_IO=epoll), otherwise on a pool of 4 helper threads shared by every
 * loop (never the resolver's). A file belongs to the loop of the task that
 * opened it: its calls are for that loop's tasks (else COR_ETHREAD,
 * logged). Cancelling a task in a read or write returns -ECANCELED only
 * once the kernel is done with the buffer (it may have read or written some
 * bytes meanwhile), so the buffer is the caller's again on return. One
 * exception: a loop that starts running on another thread while an
 * io_uring operation is in flight (its ring is lost: an ERROR is logged)
 * returns COR_ETHREAD to that operation at once, and the kernel may still
 * finish it later.
 * Outside a task: COR_ENOTASK. NULL arguments: -EINVAL (logged).
 */
#ifndef CORIO_FILE_H
#define CORIO_FILE_H

#include <corio/common.h>

#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cor_file cor_file_t;

/* Opens path as open(2) does (O_CLOEXEC is added) and stores a new file in
 * *out (the caller's: cor_file_close, then cor_file_free). Returns 0;
 * open(2)'s negated errno (-ENOENT, -EACCES...); -ECANCELED (nothing stays
 * open); -ENOMEM; COR_ENOTASK; -EINVAL (NULL path or out, logged). */
COR_EXTERN int cor_file_open(const char *path, int flags, int mode,
                             cor_file_t **out);
/* As pread(2): up to n bytes at offset off into buf (n above 1 GiB reads
 * 1 GiB). Returns the bytes read (0 at the end of the file), a negated
 * errno, COR_ECLOSED after cor_file_close, -ECANCELED, COR_ENOTASK;
 * -EINVAL (NULL, negative off; logged). Owner loop (else COR_ETHREAD). */
COR_EXTERN ssize_t cor_file_pread(cor_file_t *f, void *buf, size_t n,
                                  off_t off);
/* As pwrite(2): returns the bytes written, as cor_file_pread otherwise. */
COR_EXTERN ssize_t cor_file_pwrite(cor_file_t *f, const void *buf, size_t n,
                                   off_t off);
/* As fsync(2). 0, a negated errno, COR_ECLOSED, -ECANCELED, COR_ENOTASK,
 * -EINVAL (NULL). Owner loop (else COR_ETHREAD). */
COR_EXTERN int cor_file_fsync(cor_file_t *f);
/* Closes the file: later calls return COR_ECLOSED. When other tasks'
 * operations are still running on it, the descriptor is closed when the
 * last one finishes. Returns 0 (close(2)'s error, if any, is logged);
 * COR_ECLOSED when already closed; COR_ENOTASK (the descriptor is then
 * closed in place); -EINVAL (NULL). Owner loop (else COR_ETHREAD). */
COR_EXTERN int cor_file_close(cor_file_t *f);
/* Frees the file (closing it in place if cor_file_close was not called).
 * No operation may be running on it. NULL: nothing. Owner loop (else
 * nothing done, errno 4001). */
COR_EXTERN void cor_file_free(cor_file_t *f);
/* The descriptor, or -1 once closed; -EINVAL for NULL (logged). Owner
 * loop (else COR_ETHREAD). */
COR_EXTERN int cor_file_fd(const cor_file_t *f);

#ifdef __cplusplus
}
#endif
#endif
