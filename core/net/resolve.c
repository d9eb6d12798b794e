/* SPDX-License-Identifier: MIT */
/* Name resolution off the loop: getaddrinfo and getnameinfo run on the
 * bounded resolver pool (core/offload.c: at most 4 threads shared by every
 * loop of the process), and the answer comes back to the waiting task
 * through the pool's post. Numeric requests are answered in place, on the
 * loop, since libc does no lookup for them. A cancelled or timed-out task
 * returns at once: the thread writes only into the job, never into the
 * caller's memory, and a job not started yet is dropped. */
#include "base/alloc.h"
#include "base/error.h"
#include "loop/loop.h"
#include "net/offload.h"
#include "net/stream_internal.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <string.h>

typedef struct gai_job {
  cor__job job; /* first */
  int rc;
  /* getaddrinfo */
  char *host, *port;
  struct addrinfo hints;
  struct addrinfo *res;
  /* getnameinfo */
  struct sockaddr_storage ss;
  socklen_t sslen;
  int flags;
  size_t hl, sl;
  char nhost[NI_MAXHOST], nserv[NI_MAXSERV];
} gai_job;

static void job_free(cor__job *jb) {
  gai_job *j = (gai_job *)jb;
  cor__free(j->host);
  cor__free(j->port);
  if (j->res)
    freeaddrinfo(j->res);
  cor__free(j);
}

static void job_unref(gai_job *j) { cor__job_unref(&j->job); }

/* getaddrinfo's and getnameinfo's EAI_ codes as corio's negated errnos. */
static int gai_code(int e, int saved_errno) {
  switch (e) {
  case 0:
    return 0;
  case EAI_NONAME:
  case EAI_SERVICE:
#ifdef EAI_NODATA
  case EAI_NODATA:
#endif
    return -ENOENT;
#ifdef EAI_ADDRFAMILY
  case EAI_ADDRFAMILY:
    return -EAFNOSUPPORT;
#endif
  case EAI_AGAIN:
    return -EAGAIN;
  case EAI_MEMORY:
    return -ENOMEM;
  case EAI_OVERFLOW:
    return -ENAMETOOLONG;
  case EAI_SYSTEM:
    return saved_errno ? -saved_errno : -EIO;
  case EAI_BADFLAGS:
  case EAI_FAMILY:
  case EAI_SOCKTYPE:
    return -EINVAL;
  default: /* EAI_FAIL and the rest */
    return -EIO;
  }
}

static void run_getaddrinfo(cor__job *jb) {
  gai_job *j = (gai_job *)jb;
  errno = 0;
  int e = getaddrinfo(j->host, j->port, &j->hints, &j->res);
  j->rc = gai_code(e, errno);
  if (e != 0)
    j->res = NULL;
}

static void run_getnameinfo(cor__job *jb) {
  gai_job *j = (gai_job *)jb;
  errno = 0;
  int e = getnameinfo((const struct sockaddr *)&j->ss, j->sslen,
                      j->hl ? j->nhost : NULL, (socklen_t)j->hl,
                      j->sl ? j->nserv : NULL, (socklen_t)j->sl, j->flags);
  j->rc = gai_code(e, errno);
}

static int job_wait(gai_job *j, uint64_t deadline_ns, const char *call,
                    const void *site) {
  return cor__job_run(&cor__resolver_pool, &j->job, deadline_ns, false, call,
                      site);
}

static gai_job *job_new(void (*run)(cor__job *)) {
  gai_job *j = cor__calloc(1, sizeof *j);
  if (j) {
    j->job.refs = 1;
    j->job.run = run;
    j->job.free = job_free;
  }
  return j;
}

/* ------------------------------------------------------------ cor__resolve */

static int parse_port(const char *port, int *out) {
  if (port == NULL || *port == 0)
    return -EINVAL;
  char *end;
  long v = strtol(port, &end, 10);
  if (*end != 0)
    return -ENOENT; /* a service name */
  if (v < 0 || v > 65535)
    return -EINVAL;
  *out = (int)v;
  return 0;
}

int cor__resolve(const char *host, const char *port, int socktype,
                 uint64_t deadline_ns, cor__addr **out, size_t *n,
                 const void *site) {
  int p;
  int rc = parse_port(port, &p);
  if (rc == -EINVAL)
    return rc;
  if (rc == 0) {
    cor__addr a;
    if (cor__addr_numeric(host, p, &a) == 0) {
      if ((*out = cor__malloc(sizeof a)) == NULL)
        return -ENOMEM;
      **out = a;
      *n = 1;
      return 0;
    }
  }
  if (cor__tls_loop == NULL || cor__tls_task == NULL)
    return COR_ENOTASK;
  gai_job *j = job_new(run_getaddrinfo);
  if (j == NULL)
    return -ENOMEM;
  j->hints.ai_family = AF_UNSPEC;
  j->hints.ai_socktype = socktype;
  j->hints.ai_flags = AI_ADDRCONFIG;
  j->host = cor__strdup(host ? host : "localhost");
  j->port = cor__strdup(port);
  if (j->host == NULL || j->port == NULL) {
    job_unref(j);
    return -ENOMEM;
  }
  rc = job_wait(j, deadline_ns, "cor_open_connection", site);
  if (rc == 0)
    rc = j->rc;
  if (rc == 0) {
    size_t k = 0;
    for (struct addrinfo *a = j->res; a; a = a->ai_next)
      k++;
    cor__addr *v = cor__calloc(k ? k : 1, sizeof *v);
    if (v == NULL) {
      rc = -ENOMEM;
    } else {
      size_t m = 0;
      for (struct addrinfo *a = j->res; a; a = a->ai_next) {
        if (a->ai_addrlen > sizeof v[0].ss)
          continue;
        memcpy(&v[m].ss, a->ai_addr, a->ai_addrlen);
        v[m].len = a->ai_addrlen;
        m++;
      }
      if (m == 0) {
        cor__free(v);
        rc = -ENOENT;
      } else {
        *out = v;
        *n = m;
      }
    }
  }
  job_unref(j);
  return rc;
}

/* ------------------------------------------------------------ public */

static int gai_at(const char *host, const char *port,
                  const struct addrinfo *hints, struct addrinfo **out,
                  const void *site) {
  if (out == NULL)
    return cor__bad_arg("cor_getaddrinfo", "out is NULL");
  *out = NULL;
  if (host == NULL && port == NULL)
    return cor__bad_arg("cor_getaddrinfo", "host and port are both NULL");
  struct addrinfo h = {0};
  if (hints)
    h = *hints;
  else
    h.ai_flags = AI_ADDRCONFIG;
  if (cor__tls_task == NULL || cor__tls_loop == NULL)
    return COR_ENOTASK;
  /* Numeric host and port: libc looks nothing up, so answer on the loop. */
  bool numeric_host = host == NULL || (h.ai_flags & AI_NUMERICHOST);
  if (!numeric_host) {
    unsigned char buf[sizeof(struct in6_addr)];
    numeric_host = inet_pton(AF_INET, host, buf) == 1 ||
                   inet_pton(AF_INET6, host, buf) == 1;
  }
  int p;
  bool numeric_port =
      port == NULL || (h.ai_flags & AI_NUMERICSERV) || parse_port(port, &p) == 0;
  if (numeric_host && numeric_port) {
    errno = 0;
    int e = getaddrinfo(host, port, &h, out);
    int rc = gai_code(e, errno);
    if (rc != 0)
      *out = NULL;
    return rc;
  }
  gai_job *j = job_new(run_getaddrinfo);
  if (j == NULL)
    return -ENOMEM;
  j->hints = h;
  j->hints.ai_addr = NULL;
  j->hints.ai_canonname = NULL;
  j->hints.ai_next = NULL;
  j->host = host ? cor__strdup(host) : NULL;
  j->port = port ? cor__strdup(port) : NULL;
  if ((host && j->host == NULL) || (port && j->port == NULL)) {
    job_unref(j);
    return -ENOMEM;
  }
  int rc = job_wait(j, 0, "cor_getaddrinfo", site);
  if (rc == 0)
    rc = j->rc;
  if (rc == 0) {
    *out = j->res; /* the caller's now: freeaddrinfo */
    j->res = NULL;
  }
  job_unref(j);
  return rc;
}

int cor_getaddrinfo(const char *host, const char *port,
                    const struct addrinfo *hints, struct addrinfo **out) {
  return gai_at(host, port, hints, out, __builtin_return_address(0));
}

int cor_getnameinfo(const struct sockaddr *sa, socklen_t salen, char *host,
                    size_t hostlen, char *serv, size_t servlen, int flags) {
  if (sa == NULL)
    return cor__bad_arg("cor_getnameinfo", "sa is NULL");
  if (salen == 0 || salen > sizeof(struct sockaddr_storage))
    return cor__bad_arg("cor_getnameinfo", "salen is out of range");
  if ((host == NULL && hostlen) || (serv == NULL && servlen))
    return cor__bad_arg("cor_getnameinfo",
                        "a NULL buffer with a non-zero length");
  if (hostlen == 0 && servlen == 0)
    return cor__bad_arg("cor_getnameinfo", "neither host nor serv asked for");
  if (cor__tls_task == NULL || cor__tls_loop == NULL)
    return COR_ENOTASK;
  if ((flags & NI_NUMERICHOST) && (flags & NI_NUMERICSERV)) {
    errno = 0;
    int e = getnameinfo(sa, salen, hostlen ? host : NULL, (socklen_t)hostlen,
                        servlen ? serv : NULL, (socklen_t)servlen, flags);
    return gai_code(e, errno);
  }
  gai_job *j = job_new(run_getnameinfo);
  if (j == NULL)
    return -ENOMEM;
  memcpy(&j->ss, sa, salen);
  j->sslen = salen;
  j->flags = flags;
  j->hl = hostlen < sizeof j->nhost ? hostlen : sizeof j->nhost;
  j->sl = servlen < sizeof j->nserv ? servlen : sizeof j->nserv;
  int rc = job_wait(j, 0, "cor_getnameinfo", __builtin_return_address(0));
  if (rc == 0)
    rc = j->rc;
  if (rc == 0) {
    if (hostlen)
      memcpy(host, j->nhost, strnlen(j->nhost, j->hl - 1) + 1);
    if (servlen)
      memcpy(serv, j->nserv, strnlen(j->nserv, j->sl - 1) + 1);
  }
  job_unref(j);
  return rc;
}
