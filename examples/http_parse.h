/* SPDX-License-Identifier: MIT */
/* http_parse.h: the request-head parser and the fixed answers of
 * examples/http_hello.c, in a header so that perf/peer_uv_http.c (the same
 * server on libuv, for the benchmark) parses exactly as the example does.
 * Call tchar_init() once before parse(). */
#ifndef CORIO_EXAMPLES_HTTP_PARSE_H
#define CORIO_EXAMPLES_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_HEAD 8192

static const char OK_KEEP[] = "HTTP/1.1 200 OK\r\n"
                              "Content-Type: text/plain\r\n"
                              "Content-Length: 13\r\n"
                              "\r\n"
                              "hello, world\n";
static const char OK_KEEP10[] = "HTTP/1.1 200 OK\r\n"
                                "Content-Type: text/plain\r\n"
                                "Content-Length: 13\r\n"
                                "Connection: keep-alive\r\n"
                                "\r\n"
                                "hello, world\n";
static const char OK_CLOSE[] = "HTTP/1.1 200 OK\r\n"
                               "Content-Type: text/plain\r\n"
                               "Content-Length: 13\r\n"
                               "Connection: close\r\n"
                               "\r\n"
                               "hello, world\n";
static const char NOT_FOUND[] = "HTTP/1.1 404 Not Found\r\n"
                                "Content-Length: 0\r\n"
                                "\r\n";
static const char BAD_METHOD[] = "HTTP/1.1 405 Method Not Allowed\r\n"
                                 "Allow: GET, HEAD\r\n"
                                 "Content-Length: 0\r\n"
                                 "\r\n";
static const char BAD_REQUEST[] = "HTTP/1.1 400 Bad Request\r\n"
                                  "Content-Length: 0\r\n"
                                  "Connection: close\r\n"
                                  "\r\n";

typedef struct {
  bool keep_alive;
  bool http10;
  bool head;
  int status; /* 200, 404, 405 */
  long content_length;
} request;

/* RFC 9110 token characters, as a table: the parser looks at every byte
 * of every header name. */
static bool tchar[256];
static void tchar_init(void) {
  for (int c = 0; c < 256; c++)
    tchar[c] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               (c >= '0' && c <= '9') ||
               (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}
static inline bool is_tchar(unsigned char c) { return tchar[c]; }

/* Header name equality, ASCII case-insensitive; `lower` is lower case. */
static inline bool name_is(const char *p, size_t n, const char *lower,
                           size_t ln) {
  if (n != ln)
    return false;
  for (size_t i = 0; i < n; i++)
    if ((p[i] | 0x20) != lower[i])
      return false;
  return true;
}

/* Does the comma-separated header value contain `token`? */
static bool has_token(const char *v, size_t n, const char *token) {
  size_t tl = strlen(token);
  size_t i = 0;
  while (i < n) {
    while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
      i++;
    size_t j = i;
    while (j < n && v[j] != ',')
      j++;
    size_t k = j;
    while (k > i && (v[k - 1] == ' ' || v[k - 1] == '\t'))
      k--;
    if (k - i == tl && strncasecmp(v + i, token, tl) == 0)
      return true;
    i = j;
  }
  return false;
}

/* Parses the request head d[0..n) (ending with CRLF CRLF). 0 or -1 when
 * malformed. */
static int parse(const char *d, size_t n, request *r) {
  const char *p = d, *end = d + n - 2; /* the last CRLF ends the head */
  /* request line */
  const char *sp = p;
  while (sp < end && is_tchar((unsigned char)*sp))
    sp++;
  if (sp == p || sp >= end || *sp != ' ')
    return -1;
  size_t mlen = (size_t)(sp - p);
  r->head = mlen == 4 && memcmp(p, "HEAD", 4) == 0;
  bool get = mlen == 3 && memcmp(p, "GET", 3) == 0;
  const char *t = sp + 1, *te = t;
  while (te < end && (unsigned char)*te > ' ' && *te != 0x7f)
    te++;
  if (te == t || te >= end || *te != ' ')
    return -1;
  const char *v = te + 1;
  if (end - v < 10 || memcmp(v, "HTTP/1.", 7) != 0 || v[8] != '\r' ||
      v[9] != '\n')
    return -1;
  if (v[7] == '1')
    r->http10 = false;
  else if (v[7] == '0')
    r->http10 = true;
  else
    return -1;
  r->keep_alive = !r->http10;
  r->status = !(get || r->head)                      ? 405
              : (te - t == 1 && t[0] == '/') ? 200
                                                     : 404;
  r->content_length = 0;
  bool host = false;
  p = v + 10;
  /* headers */
  while (p < end) {
    const char *le = memchr(p, '\r', (size_t)(end + 2 - p));
    if (le == NULL || le + 1 >= end + 2 || le[1] != '\n')
      return -1;
    const char *c = p;
    while (c < le && is_tchar((unsigned char)*c))
      c++;
    if (c == p || c >= le || *c != ':')
      return -1; /* no name, or obsolete line folding */
    size_t nl = (size_t)(c - p);
    const char *val = c + 1;
    while (val < le && (*val == ' ' || *val == '\t'))
      val++;
    size_t vl = (size_t)(le - val);
    for (size_t i = 0; i < vl; i++)
      if ((unsigned char)val[i] < ' ' && val[i] != '\t')
        return -1;
    if (name_is(p, nl, "host", 4)) {
      if (host)
        return -1;
      host = true;
    } else if (name_is(p, nl, "connection", 10)) {
      if (has_token(val, vl, "close"))
        r->keep_alive = false;
      else if (has_token(val, vl, "keep-alive"))
        r->keep_alive = true;
    } else if (name_is(p, nl, "content-length", 14)) {
      long cl = 0;
      size_t i = 0;
      while (i < vl && val[i] >= '0' && val[i] <= '9' && cl < 1000000000)
        cl = cl * 10 + (val[i++] - '0');
      while (i < vl && (val[i] == ' ' || val[i] == '\t'))
        i++;
      if (i != vl || vl == 0 || cl >= 1000000000)
        return -1;
      r->content_length = cl;
    } else if (name_is(p, nl, "transfer-encoding", 17)) {
      return -1; /* no request bodies of unknown length here */
    }
    p = le + 2;
  }
  if (!r->http10 && !host)
    return -1; /* RFC 9112: a 1.1 request without Host is a 400 */
  return 0;
}

/* The answer to a parsed request: *resp and its length (for HEAD, the
 * headers only). */
static size_t answer(const request *r, const char **resp) {
  size_t rlen;
  if (r->status == 405) {
    *resp = BAD_METHOD;
    rlen = sizeof BAD_METHOD - 1;
  } else if (r->status == 404) {
    *resp = NOT_FOUND;
    rlen = sizeof NOT_FOUND - 1;
  } else if (!r->keep_alive) {
    *resp = OK_CLOSE;
    rlen = sizeof OK_CLOSE - 1;
  } else if (r->http10) {
    *resp = OK_KEEP10;
    rlen = sizeof OK_KEEP10 - 1;
  } else {
    *resp = OK_KEEP;
    rlen = sizeof OK_KEEP - 1;
  }
  if (r->head && r->status == 200)
    rlen -= 13; /* the headers only: the body is "hello, world\n" */
  return rlen;
}

#endif
