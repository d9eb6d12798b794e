/* SPDX-License-Identifier: MIT */
/* static_server: an HTTP/1.1 static file server on every core.
 *
 *   examples/static_server [--port N] [--loops N] [--no-pin] ROOT
 *
 * Serves the regular files under ROOT to GET and HEAD: keep-alive,
 * Content-Length, one byte range (`bytes=a-b`, `a-`, `-n`: 206 with
 * Content-Range; unsatisfiable: 416), 404 for what is not there, 403 for
 * paths that leave the root ("..", a symlink out of it) and for what is not
 * a regular file, 400 for malformed requests (a NUL, a target that is not
 * an origin-form path), 405 for other methods, 431 for request heads above
 * 8 KiB. A path ending in '/' serves its index.html.
 *
 * Bodies leave with cor_stream_sendfile (zero-copy on both back-ends), the
 * head before them in one cor_stream_write. Files are opened with plain
 * openat2(2) under the root directory with RESOLVE_BENEATH, not with
 * cor_file_open: the kernel then refuses every path that resolves outside
 * the root (symlinks included), which a path-only open cannot express, and
 * an open of a cached inode costs microseconds, as nginx's own open on its
 * event loop (a cold disk would stall the loop for that open: a server for
 * cold data would open through cor_file_open on a root-prefixed path). Each
 * loop keeps a small cache of open files (32 entries, per thread); an entry
 * is checked again (opened anew, compared by device, inode, size and mtime)
 * when it is older than one second, so a file replaced on disk is served
 * stale for at most about a second. A file that shrinks while it is sent
 * ends that connection (the promised Content-Length cannot be kept).
 * Prints "listening on 127.0.0.1:PORT" once every loop listens; SIGINT or
 * SIGTERM stops it cleanly. */
#include <corio.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_HEAD 8192
#define CACHE_N 32
#define REVALIDATE_S 1.0

static int root_fd = -1;

/* ------------------------------------------------------------ files */

typedef struct {
  int fd;        /* -1: free slot */
  unsigned refs; /* requests sending from it now */
  bool stale;    /* replaced: closed when the last request is done */
  bool priv;     /* not in the cache: closed after its one request */
  off_t size;
  dev_t dev;
  ino_t ino;
  struct timespec mtime;
  double checked; /* loop time of the last check */
  const char *ctype;
  char lastmod[40];
  char path[256];
} fent;

/* Per loop: each loop runs on its own thread, and its tasks interleave
 * only at suspension points, so no lock. */
static _Thread_local fent cache[CACHE_N];
static _Thread_local bool cache_ready;

static const char *content_type(const char *path) {
  static const char *const map[][2] = {
      {"html", "text/html"},        {"htm", "text/html"},
      {"txt", "text/plain"},        {"css", "text/css"},
      {"js", "text/javascript"},    {"json", "application/json"},
      {"png", "image/png"},         {"jpg", "image/jpeg"},
      {"jpeg", "image/jpeg"},       {"gif", "image/gif"},
      {"svg", "image/svg+xml"},     {"ico", "image/x-icon"},
      {"pdf", "application/pdf"},   {"wasm", "application/wasm"},
  };
  const char *slash = strrchr(path, '/');
  const char *dot = strrchr(slash ? slash : path, '.');
  if (dot != NULL)
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
      if (strcasecmp(dot + 1, map[i][0]) == 0)
        return map[i][1];
  return "application/octet-stream";
}

/* Opens rel under the root into *e. 0 or the HTTP status to answer. */
static int open_file(const char *rel, fent *e) {
  /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
   * writer (and stall the loop); it changes nothing for regular files. */
  struct open_how how = {0};
  how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  int fd = (int)syscall(SYS_openat2, root_fd, rel, &how, sizeof how);
  if (fd < 0 && errno == ENOSYS) /* before Linux 5.6: the lexical checks */
    fd = openat(root_fd, rel, (int)how.flags);
  if (fd < 0)
    switch (errno) {
    case EXDEV: /* resolves outside the root */
    case EACCES:
    case EPERM:
      return 403;
    case EMFILE:
    case ENFILE:
    case ENOMEM:
      return 503;
    default:
      return 404;
    }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return 403;
  }
  e->fd = fd;
  e->refs = 1;
  e->stale = false;
  e->priv = false;
  e->size = st.st_size;
  e->dev = st.st_dev;
  e->ino = st.st_ino;
  e->mtime = st.st_mtim;
  e->ctype = content_type(rel);
  struct tm tm;
  gmtime_r(&st.st_mtim.tv_sec, &tm);
  strftime(e->lastmod, sizeof e->lastmod, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return 0;
}

static bool same_file(const fent *a, const fent *b) {
  return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
         a->mtime.tv_sec == b->mtime.tv_sec &&
         a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* Drops a cache entry: closed now, or by the last request using it. */
static void retire(fent *e) {
  if (e->refs == 0) {
    close(e->fd);
    e->fd = -1;
  } else {
    e->stale = true;
  }
}

static void release(fent *e) {
  if (e->priv) {
    close(e->fd);
    return;
  }
  if (--e->refs == 0 && e->stale) {
    close(e->fd);
    e->fd = -1;
    e->stale = false;
  }
}

/* The open file for rel: from the cache when it was checked less than
 * REVALIDATE_S ago, else opened (and cached when a slot is free). *priv is
 * the caller's room for a file the cache cannot hold. 0 or an HTTP status. */
static int acquire(const char *rel, fent **out, fent *priv) {
  if (!cache_ready) {
    for (int i = 0; i < CACHE_N; i++)
      cache[i].fd = -1;
    cache_ready = true;
  }
  double now = cor_loop_time(cor_get_running_loop());
  size_t len = strlen(rel);
  fent *e = NULL;
  if (len < sizeof cache[0].path)
    for (int i = 0; i < CACHE_N; i++)
      if (cache[i].fd >= 0 && !cache[i].stale &&
          strcmp(cache[i].path, rel) == 0) {
        e = &cache[i];
        break;
      }
  if (e != NULL && now - e->checked < REVALIDATE_S) {
    e->refs++;
    *out = e;
    return 0;
  }
  fent fresh;
  int st = open_file(rel, &fresh);
  if (st != 0) {
    if (e != NULL)
      retire(e);
    return st;
  }
  fresh.checked = now;
  if (e != NULL) {
    if (same_file(e, &fresh)) {
      close(fresh.fd);
      e->checked = now;
      e->refs++;
      *out = e;
      return 0;
    }
    retire(e); /* replaced or changed on disk */
  }
  /* A slot: a free one, else the unused one checked longest ago. */
  fent *slot = NULL;
  for (int i = 0; i < CACHE_N && len < sizeof cache[0].path; i++) {
    if (cache[i].fd < 0) {
      slot = &cache[i];
      break;
    }
    if (cache[i].refs == 0 && (slot == NULL || cache[i].checked < slot->checked))
      slot = &cache[i];
  }
  if (slot == NULL) {
    *priv = fresh;
    priv->priv = true;
    *out = priv;
    return 0;
  }
  if (slot->fd >= 0)
    close(slot->fd);
  *slot = fresh;
  memcpy(slot->path, rel, len + 1);
  *out = slot;
  return 0;
}

/* ------------------------------------------------------------ requests */

typedef struct {
  bool head, known; /* HEAD; GET or HEAD */
  bool http10, keep_alive;
  int status;          /* 0, or the error to answer (400, 403, 414) */
  long content_length; /* a body to skip */
  bool range;          /* a single byte range was asked */
  bool suffix;         /* `-n` */
  bool has_last;
  unsigned long long first, last;
  char rel[PATH_MAX];
} request;

static inline bool is_tchar(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || (c != 0 && strchr("!#$%&'*+-.^_`|~", c));
}

static inline bool name_is(const char *p, size_t n, const char *lower) {
  size_t ln = strlen(lower);
  if (n != ln)
    return false;
  for (size_t i = 0; i < n; i++)
    if ((p[i] | 0x20) != lower[i])
      return false;
  return true;
}

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

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  c |= 0x20;
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The target t[0..n) as a path relative to the root, in r->rel: decoded,
 * "." and empty segments dropped, index.html after a final '/'. 0 or the
 * status: 400 (not "/...", a bad escape, a NUL), 403 (".."), 414. */
static int target_path(const char *t, size_t n, request *r) {
  if (n == 0 || t[0] != '/')
    return 400; /* absolute-form, "*", or a relative path */
  const char *q = memchr(t, '?', n);
  if (q != NULL)
    n = (size_t)(q - t);
  char *out = r->rel;
  size_t o = 0, seg = 0; /* where the current segment starts in out */
  for (size_t i = 1; i <= n; i++) {
    char c;
    if (i == n) {
      c = '/';
    } else if (t[i] == '%') {
      int h, l;
      if (i + 2 >= n || (h = hexval(t[i + 1])) < 0 ||
          (l = hexval(t[i + 2])) < 0)
        return 400;
      c = (char)(h * 16 + l);
      if (c == 0)
        return 400;
      i += 2;
    } else {
      c = t[i];
    }
    if (c == '/') { /* a segment ends */
      size_t sl = o - seg;
      if (sl == 0 || (sl == 1 && out[seg] == '.')) {
        o = seg;
      } else if (sl == 2 && out[seg] == '.' && out[seg + 1] == '.') {
        return 403;
      } else {
        if (o + 1 >= sizeof r->rel)
          return 414;
        out[o++] = '/';
        seg = o;
      }
      continue;
    }
    if (o + 1 >= sizeof r->rel)
      return 414;
    out[o++] = c;
  }
  /* out is "a/b/" (or ""): drop the last '/' unless the target asked for
   * a directory */
  bool dir = t[n - 1] == '/' ||
             (n >= 2 && t[n - 1] == '.' && t[n - 2] == '/');
  if (o > 0)
    o--;
  if (dir) {
    static const char idx[] = "index.html";
    if (o > 0)
      out[o++] = '/';
    if (o + sizeof idx > sizeof r->rel)
      return 414;
    memcpy(out + o, idx, sizeof idx);
    return 0;
  }
  out[o] = 0;
  return o == 0 ? 403 : 0;
}

static bool digits(const char **p, const char *end, unsigned long long *v) {
  const char *s = *p;
  unsigned long long x = 0;
  while (*p < end && **p >= '0' && **p <= '9' && *p - s < 18)
    x = x * 10 + (unsigned long long)(*(*p)++ - '0');
  if (*p == s || (*p < end && **p >= '0' && **p <= '9'))
    return false; /* none, or too many */
  *v = x;
  return true;
}

/* Range: one `bytes=` range-spec; anything else (several, malformed) is
 * ignored, as RFC 9110 allows: the whole file is sent. */
static void parse_range(const char *v, size_t n, request *r) {
  if (n < 6 || strncasecmp(v, "bytes=", 6) != 0)
    return;
  const char *p = v + 6, *end = v + n;
  while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
    end--;
  while (p < end && (*p == ' ' || *p == '\t'))
    p++;
  if (p == end || memchr(p, ',', (size_t)(end - p)) != NULL)
    return;
  r->suffix = r->has_last = false;
  if (p < end && *p == '-') {
    p++;
    if (!digits(&p, end, &r->last) || p != end)
      return;
    r->suffix = true;
  } else {
    if (!digits(&p, end, &r->first) || p >= end || *p != '-')
      return;
    p++;
    if (p < end) {
      if (!digits(&p, end, &r->last) || p != end || r->last < r->first)
        return;
      r->has_last = true;
    }
  }
  r->range = true;
}

/* Parses the head d[0..n) (ending with CRLF CRLF). 0, or -1 when it is so
 * malformed that the connection must close (400). */
static int parse(const char *d, size_t n, request *r) {
  const char *p = d, *end = d + n - 2;
  const char *sp = p;
  while (sp < end && is_tchar((unsigned char)*sp))
    sp++;
  if (sp == p || sp >= end || *sp != ' ')
    return -1;
  size_t mlen = (size_t)(sp - p);
  r->head = mlen == 4 && memcmp(p, "HEAD", 4) == 0;
  r->known = r->head || (mlen == 3 && memcmp(p, "GET", 3) == 0);
  const char *t = sp + 1, *te = t;
  while (te < end && (unsigned char)*te > ' ' && *te != 0x7f)
    te++;
  if (te == t || te >= end || *te != ' ')
    return -1;
  const char *v = te + 1;
  if (end - v < 10 || memcmp(v, "HTTP/1.", 7) != 0 || v[8] != '\r' ||
      v[9] != '\n' || (v[7] != '0' && v[7] != '1'))
    return -1;
  r->http10 = v[7] == '0';
  r->keep_alive = !r->http10;
  r->content_length = 0;
  r->range = false;
  bool host = false, if_range = false;
  p = v + 10;
  while (p < end) {
    const char *le = memchr(p, '\r', (size_t)(end + 2 - p));
    if (le == NULL || le + 1 >= end + 2 || le[1] != '\n')
      return -1;
    const char *c = p;
    while (c < le && is_tchar((unsigned char)*c))
      c++;
    if (c == p || c >= le || *c != ':')
      return -1;
    size_t nl = (size_t)(c - p);
    const char *val = c + 1;
    while (val < le && (*val == ' ' || *val == '\t'))
      val++;
    size_t vl = (size_t)(le - val);
    for (size_t i = 0; i < vl; i++)
      if ((unsigned char)val[i] < ' ' && val[i] != '\t')
        return -1; /* a NUL or another control byte */
    if (name_is(p, nl, "host")) {
      if (host)
        return -1;
      host = true;
    } else if (name_is(p, nl, "connection")) {
      if (has_token(val, vl, "close"))
        r->keep_alive = false;
      else if (has_token(val, vl, "keep-alive"))
        r->keep_alive = true;
    } else if (name_is(p, nl, "content-length")) {
      long cl = 0;
      size_t i = 0;
      while (i < vl && val[i] >= '0' && val[i] <= '9' && cl < 1000000000)
        cl = cl * 10 + (val[i++] - '0');
      while (i < vl && (val[i] == ' ' || val[i] == '\t'))
        i++;
      if (i != vl || vl == 0 || cl >= 1000000000)
        return -1;
      r->content_length = cl;
    } else if (name_is(p, nl, "transfer-encoding")) {
      return -1; /* no request bodies of unknown length here */
    } else if (name_is(p, nl, "range")) {
      parse_range(val, vl, r);
    } else if (name_is(p, nl, "if-range")) {
      if_range = true;
    }
    p = le + 2;
  }
  if (!r->http10 && !host)
    return -1;
  if (if_range)
    r->range = false; /* not evaluated here: the whole file, as allowed */
  r->status = r->known ? target_path(t, (size_t)(te - t), r) : 405;
  return 0;
}

/* ------------------------------------------------------------ answers */

static const char *date_now(void) {
  static _Thread_local time_t sec = -1;
  static _Thread_local char buf[40];
  time_t now = time(NULL);
  if (now != sec) {
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    sec = now;
  }
  return buf;
}

static const char *reason(int status) {
  switch (status) {
  case 200: return "OK";
  case 206: return "Partial Content";
  case 400: return "Bad Request";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 414: return "URI Too Long";
  case 416: return "Range Not Satisfiable";
  case 431: return "Request Header Fields Too Large";
  default: return "Service Unavailable";
  }
}

static const char *conn_hdr(const request *r) {
  if (!r->keep_alive)
    return "Connection: close\r\n";
  return r->http10 ? "Connection: keep-alive\r\n" : "";
}

/* An answer without a file: status line, a short text body (none for
 * HEAD), and the connection stays open unless r says otherwise. */
static int answer_error(cor_stream_t *s, const request *r, int status,
                        const char *extra) {
  char buf[512];
  const char *why = reason(status);
  int n = snprintf(buf, sizeof buf,
                   "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: text/plain\r\n"
                   "Content-Length: %zu\r\n%s%s\r\n%s\n",
                   status, why, date_now(), strlen(why) + 1, extra,
                   conn_hdr(r), r->head ? "" : why);
  size_t len = (size_t)n - (r->head ? 1 : 0);
  int rc = cor_stream_write(s, buf, len);
  return rc ? rc : cor_stream_drain(s);
}

/* A request for a file: 200, 206 or 416. 0 to go on with the connection,
 * 1 to close it, or an error. */
static int answer_file(cor_stream_t *s, request *r) {
  fent room, *e;
  int st = acquire(r->rel, &e, &room);
  if (st != 0)
    return answer_error(s, r, st, "");
  unsigned long long size = (unsigned long long)e->size, from = 0, len = size;
  int status = 200;
  char crange[96] = "";
  if (r->range) {
    bool ok;
    if (r->suffix) {
      ok = r->last > 0 && size > 0;
      from = r->last < size ? size - r->last : 0;
    } else {
      ok = r->first < size;
      from = r->first;
    }
    if (!ok) {
      snprintf(crange, sizeof crange, "Content-Range: bytes */%llu\r\n", size);
      release(e);
      return answer_error(s, r, 416, crange);
    }
    unsigned long long last = size - 1;
    if (r->has_last && r->last < last)
      last = r->last;
    len = last - from + 1;
    status = 206;
    snprintf(crange, sizeof crange, "Content-Range: bytes %llu-%llu/%llu\r\n",
             from, last, size);
  }
  char head[768];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\n"
                   "Content-Length: %llu\r\nLast-Modified: %s\r\n"
                   "Accept-Ranges: bytes\r\n%s%s\r\n",
                   status, reason(status), date_now(), e->ctype, len,
                   e->lastmod, crange, conn_hdr(r));
  int rc = cor_stream_write(s, head, (size_t)n);
  if (rc == 0 && !r->head && len > 0) {
    ssize_t w = cor_stream_sendfile(s, e->fd, (off_t)from, (size_t)len);
    if (w >= 0 && (unsigned long long)w < len) {
      fprintf(stderr, "static_server: %s shrank while sent: closing\n",
              r->rel);
      rc = 1;
    } else if (w < 0) {
      rc = (int)w;
    }
  }
  release(e);
  return rc;
}

static int handler(void *arg, void **res) {
  cor_stream_t *s = arg;
  request r;
  for (;;) {
    const char *d;
    ssize_t avail;
    const char *hend;
    size_t min = 1;
    for (;;) {
      avail = cor_stream_peek(s, min, &d);
      if (avail < 0)
        return (int)avail;
      if ((size_t)avail < min)
        return 0; /* EOF (a partial request is dropped) */
      size_t from = min > 4 ? min - 4 : 0;
      hend = memmem(d + from, (size_t)avail - from, "\r\n\r\n", 4);
      if (hend && (size_t)(hend - d) + 4 > MAX_HEAD)
        hend = NULL;
      if (hend)
        break;
      if (avail >= MAX_HEAD) {
        r.head = false;
        r.keep_alive = false;
        r.http10 = false;
        answer_error(s, &r, 431, "");
        return 0;
      }
      min = (size_t)avail + 1;
    }
    size_t hlen = (size_t)(hend - d) + 4;
    if (parse(d, hlen, &r) != 0) {
      r.head = false;
      r.keep_alive = false;
      r.http10 = false;
      answer_error(s, &r, 400, "");
      return 0;
    }
    cor_stream_consume(s, hlen);
    for (long left = r.content_length; left > 0;) { /* a body: skipped */
      ssize_t k = cor_stream_peek(s, 1, &d);
      if (k <= 0)
        return (int)k;
      size_t c = (size_t)k < (size_t)left ? (size_t)k : (size_t)left;
      cor_stream_consume(s, c);
      left -= (long)c;
    }
    int rc;
    if (r.status == 405)
      rc = answer_error(s, &r, 405, "Allow: GET, HEAD\r\n");
    else if (r.status != 0)
      rc = answer_error(s, &r, r.status, "");
    else
      rc = answer_file(s, &r);
    if (rc < 0)
      return rc;
    if (rc > 0 || !r.keep_alive)
      return 0; /* the server flushes and closes */
  }
}

static void usage(const char *argv0) {
  fprintf(stderr, "usage: %s [--port N] [--loops N] [--no-pin] ROOT\n",
          argv0);
  exit(2);
}

int main(int argc, char **argv) {
  int port = 8080;
  unsigned loops = 0;
  int pin = 0;
  const char *root = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
      port = atoi(argv[++i]);
    else if (strcmp(argv[i], "--loops") == 0 && i + 1 < argc)
      loops = (unsigned)atoi(argv[++i]);
    else if (strcmp(argv[i], "--no-pin") == 0)
      pin = -1;
    else if (argv[i][0] != '-' && root == NULL)
      root = argv[i];
    else
      usage(argv[0]);
  }
  if (root == NULL)
    usage(argv[0]);
  root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) {
    fprintf(stderr, "%s: %s\n", root, strerror(errno));
    return 1;
  }
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);

  cor_runtime_opts ro = {0};
  ro.nloops = loops;
  ro.pin = pin;
  ro.spin_seconds = -1; /* sleep in the poller when idle (see http_hello) */
  cor_runtime_t *rt = cor_runtime_new(&ro);
  if (rt == NULL) {
    perror("cor_runtime_new");
    return 1;
  }
  cor_server_opts so = {0};
  so.host = "127.0.0.1";
  so.port = port;
  so.stack_size = 64 * 1024; /* the request struct holds a PATH_MAX path */
  cor_server_t *srv = cor_runtime_start_server(rt, &so, handler);
  if (srv == NULL) {
    fprintf(stderr, "cannot listen on 127.0.0.1:%d: %s\n", port,
            strerror(errno));
    cor_runtime_shutdown(rt, 1);
    cor_release(rt);
    return 1;
  }
  printf("listening on 127.0.0.1:%d (%u loops, root %s)\n",
         cor_server_port(srv), cor_runtime_nloops(rt), root);
  fflush(stdout);

  int sig = 0;
  sigwait(&stop, &sig);
  cor_server_close(srv);
  if (cor_server_wait_closed(srv, 0.2) != 0) {
    cor_server_close_clients(srv);
    cor_server_wait_closed(srv, 5);
  }
  cor_server_free(srv);
  int rc = cor_runtime_shutdown(rt, 5);
  cor_release(rt);
  close(root_fd);
  return rc == 0 ? 0 : 1;
}
