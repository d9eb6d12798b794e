/* SPDX-License-Identifier: MIT */
/* Test helper: the list of every function the public headers declare
 * (COR_EXTERN in include/corio.h and the headers of include/corio/, read from
 * COR_SRC_DIR at run time), and the check that a table-driven test covers
 * each of them or exempts it with a reason. Header-only. */
#ifndef CORIO_TESTS_APILIST_H
#define CORIO_TESTS_APILIST_H

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#ifndef COR_SRC_DIR
#define COR_SRC_DIR "." /* the Makefile passes the repository root */
#endif

#define MAXNAMES 512
static char names[MAXNAMES][64];
static size_t nnames;

/* Comments out, so that a name or a parenthesis in prose is not taken for a
 * declaration. */
static void strip_comments(char *s) {
  for (char *p = s; *p; p++) {
    if (p[0] == '/' && p[1] == '*') {
      char *e = strstr(p + 2, "*/");
      char *end = e ? e + 2 : p + strlen(p);
      memset(p, ' ', (size_t)(end - p));
      p = end - 1;
    } else if (p[0] == '/' && p[1] == '/') {
      while (*p && *p != '\n')
        *p++ = ' ';
      p--;
    }
  }
}

static bool ident_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '_';
}

/* Every function a COR_EXTERN declaration in text declares: the identifier
 * before the first '(' of the declaration (the text up to ';' or '{'). */
static void collect(const char *text, const char *path) {
  for (const char *p = strstr(text, "COR_EXTERN"); p;
       p = strstr(p + 10, "COR_EXTERN")) {
    const char *line = p;
    while (line > text && line[-1] != '\n')
      line--;
    while (*line == ' ' || *line == '\t')
      line++;
    if (*line == '#') /* the macro's own definition */
      continue;
    const char *end = p + strcspn(p, ";{");
    const char *paren = memchr(p, '(', (size_t)(end - p));
    if (paren == NULL)
      continue; /* an exported object, not a call */
    const char *q = paren;
    while (q > p && (q[-1] == ' ' || q[-1] == '\n' || q[-1] == '\t'))
      q--;
    const char *id = q;
    while (id > p && ident_char(id[-1]))
      id--;
    size_t len = (size_t)(q - id);
    if (len == 0 || len >= sizeof names[0] || strncmp(id, "cor_", 4) != 0) {
      print_message("%s: cannot read the declaration at \"%.40s\"\n", path, p);
      fail();
    }
    assert_true(nnames < MAXNAMES);
    memcpy(names[nnames], id, len);
    names[nnames][len] = 0;
    nnames++;
  }
}

static void read_header(const char *path) {
  FILE *f = fopen(path, "re");
  if (f == NULL) {
    print_message("cannot open %s\n", path);
    fail();
  }
  static char text[1 << 18];
  size_t n = fread(text, 1, sizeof text - 1, f);
  assert_true(n < sizeof text - 1); /* the whole header */
  text[n] = 0;
  fclose(f);
  strip_comments(text);
  collect(text, path);
}

static bool api_declared(const char *name) {
  for (size_t i = 0; i < nnames; i++)
    if (strcmp(names[i], name) == 0)
      return true;
  return false;
}
static bool api_in(const char *name, const char *const *list, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(list[i], name) == 0)
      return true;
  return false;
}

/* Fails the test when a declared function is in neither `rows` nor
 * `exempt`, or in both; when a listed name is not declared, or is listed
 * twice (in rows only when `unique_rows`: a table may give one call several
 * rows); or when an exemption has no reason (`why`). `what` names the
 * table in the messages. Skips when the headers are not there. */
static void api_check_listed(const char *what, const char *const *rows,
                             size_t nrows, bool unique_rows,
                             const char *const *exempt,
                             const char *const *why, size_t nexempt) {
  const char *dir = COR_SRC_DIR "/include/corio";
  DIR *d = opendir(dir);
  TEST_SKIP_IF(d == NULL, "the public headers are not at " COR_SRC_DIR);
  nnames = 0;
  struct dirent *e;
  char path[1024];
  while ((e = readdir(d)) != NULL) {
    size_t l = strlen(e->d_name);
    if (l < 3 || strcmp(e->d_name + l - 2, ".h") != 0)
      continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    read_header(path);
  }
  closedir(d);
  read_header(COR_SRC_DIR "/include/corio.h");
  /* A parser that found nothing would pass everything. */
  assert_true(nnames > 100);

  int bad = 0;
  for (size_t i = 0; i < nnames; i++) {
    bool r = api_in(names[i], rows, nrows), x = api_in(names[i], exempt, nexempt);
    if (!r && !x) {
      print_message("%s: declared in include/corio but neither in the %s "
                    "table nor exempt (with a reason)\n",
                    names[i], what);
      bad++;
    } else if (r && x) {
      print_message("%s: both in the table and exempt\n", names[i]);
      bad++;
    }
  }
  for (size_t i = 0; i < nrows; i++) {
    if (!api_declared(rows[i])) {
      print_message("%s: in the table but not declared\n", rows[i]);
      bad++;
    }
    for (size_t j = 0; unique_rows && j < i; j++)
      if (strcmp(rows[i], rows[j]) == 0) {
        print_message("%s: twice in the table\n", rows[i]);
        bad++;
      }
  }
  for (size_t i = 0; i < nexempt; i++) {
    if (!api_declared(exempt[i])) {
      print_message("%s: exempt but not declared\n", exempt[i]);
      bad++;
    }
    for (size_t j = 0; j < i; j++)
      if (strcmp(exempt[i], exempt[j]) == 0) {
        print_message("%s: exempt twice\n", exempt[i]);
        bad++;
      }
    if (why[i] == NULL || why[i][0] == 0) {
      print_message("%s: exempt without a reason\n", exempt[i]);
      bad++;
    }
  }
  assert_int_equal(bad, 0);
}

/* api_check_listed over a suite's tables: `rows` and `exempt` are arrays
 * of structs with a `name` (and, for exempt, a `why`) member. */
#define API_CHECK_TABLES(what, rows, nrows, unique_rows, exempt, nexempt)     \
  do {                                                                         \
    static const char *r_[(nrows)], *x_[(nexempt)], *why_[(nexempt)];          \
    for (size_t i_ = 0; i_ < (nrows); i_++)                                    \
      r_[i_] = (rows)[i_].name;                                                \
    for (size_t i_ = 0; i_ < (nexempt); i_++) {                                \
      x_[i_] = (exempt)[i_].name;                                              \
      why_[i_] = (exempt)[i_].why;                                             \
    }                                                                          \
    api_check_listed((what), r_, (nrows), (unique_rows), x_, why_, (nexempt)); \
  } while (0)

#endif
