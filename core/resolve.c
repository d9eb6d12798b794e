/* SPDX-License-Identifier: MIT */
/* Name resolution off the loop: getaddrinfo and getnameinfo run on a small
 * bounded pool of resolver threads shared by every loop of the process (at
 * most COR__RESOLVERS at once; they start on demand and leave after
 * RESOLVER_IDLE_S idle seconds), and the answer comes back to the waiting
 * task through cor_call_soon_threadsafe. Numeric requests are answered in
 * place, on the loop, since libc does no lookup for them.
 *
 * A job is shared by the waiting task, the resolver thread and the callback
 * it posts: three references, the last one frees it. A task cancelled or
 * timed out returns at once and marks the job abandoned, so a job still
 * queued is skipped rather than resolved for nobody. */
#include "stream_internal.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <string.h>

#define COR__RESOLVERS 4
#define RESOLVER_IDLE_S 10

typedef struct gai_job gai_job;
struct gai_job {
  gai_job *next;         /* the pool's queue (under its mutex) */
  int refs;              /* atomic */
  int abandoned;         /* atomic: the task stopped waiting */
  void (*run)(gai_job *); /* on the resolver thread */
  struct cor_loop *loop;
  bool waiting; /* cor__wait_embedded's flag (loop thread only) */
  struct cor_future fut;
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
};

static void job_unref(gai_job *j) {
  if (__atomic_sub_fetch(&j->refs, 1, __ATOMIC_ACQ_REL) == 0) {
    cor__free(j->host);
    cor__free(j->port);
    if (j->res)
      freeaddrinfo(j->res);
    cor_release(j->loop);
    cor__free(j);
  }
}

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

static void run_getaddrinfo(gai_job *j) {
  errno = 0;
  int e = getaddrinfo(j->host, j->port, &j->hints, &j->res);
  j->rc = gai_code(e, errno);
  if (e != 0)
    j->res = NULL;
}

static void run_getnameinfo(gai_job *j) {
  errno = 0;
  int e = getnameinfo((const struct sockaddr *)&j->ss, j->sslen,
                      j->hl ? j->nhost : NULL, (socklen_t)j->hl,
                      j->sl ? j->nserv : NULL, (socklen_t)j->sl, j->flags);
  j->rc = gai_code(e, errno);
}

/* ------------------------------------------------------------ the pool */

static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  gai_job *head, *tail;
  unsigned nthreads, nidle;
  bool atfork;
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void job_done(void *arg) { /* on the loop */
  gai_job *j = arg;
  cor__wake_embedded(&j->fut, j->waiting, 0);
  job_unref(j);
}

static void *resolver_main(void *arg) {
  (void)arg;
  pthread_setname_np(pthread_self(), "corio-resolve");
  pthread_mutex_lock(&pool.mu);
  for (;;) {
    while (pool.head == NULL) {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      ts.tv_sec += RESOLVER_IDLE_S;
      pool.nidle++;
      int e = pthread_cond_timedwait(&pool.cv, &pool.mu, &ts);
      pool.nidle--;
      if (e == ETIMEDOUT && pool.head == NULL) {
        pool.nthreads--;
        pthread_mutex_unlock(&pool.mu);
        return NULL;
      }
    }
    gai_job *j = pool.head;
    pool.head = j->next;
    if (pool.head == NULL)
      pool.tail = NULL;
    pthread_mutex_unlock(&pool.mu);
    if (__atomic_load_n(&j->abandoned, __ATOMIC_ACQUIRE)) {
      job_unref(j); /* the post's: never made */
    } else {
      j->run(j);
      if (cor_call_soon_threadsafe(j->loop, job_done, j) != 0)
        job_unref(j); /* the loop is closed: nobody waits any more */
    }
    job_unref(j); /* the thread's own */
    pthread_mutex_lock(&pool.mu);
  }
}

/* A forked child has none of the parent's threads: an empty pool. */
static void pool_atfork_child(void) {
  pthread_mutex_init(&pool.mu, NULL);
  pthread_cond_init(&pool.cv, NULL);
  pool.head = pool.tail = NULL; /* the parent's jobs: not ours to free */
  pool.nthreads = pool.nidle = 0;
}

/* Queues j, starting a resolver when none is idle and fewer than the bound
 * run. 0 or -errno (no thread at all could start). */
static int pool_submit(gai_job *j) {
  pthread_mutex_lock(&pool.mu);
  if (!pool.atfork) {
    pthread_atfork(NULL, NULL, pool_atfork_child);
    pool.atfork = true;
  }
  j->next = NULL;
  if (pool.tail)
    pool.tail->next = j;
  else
    pool.head = j;
  pool.tail = j;
  int rc = 0;
  if (pool.nidle == 0 && pool.nthreads < COR__RESOLVERS) {
    pthread_t th;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&at, 256 * 1024);
    /* A helper: the application's signals stay off it. */
    int e = cor__thread_create(&th, &at, resolver_main, NULL, false);
    pthread_attr_destroy(&at);
    if (e == 0) {
      pool.nthreads++;
    } else if (pool.nthreads == 0) {
      /* Nobody would ever take it: take it back. */
      pool.head = pool.tail = NULL;
      rc = -e;
    }
  } else {
    pthread_cond_signal(&pool.cv);
  }
  pthread_mutex_unlock(&pool.mu);
  return rc;
}

/* Runs j on the pool and waits for it in the current task. The caller
 * holds one reference; this takes the thread's and the post's. 0 (then
 * j->rc is the answer), -ETIMEDOUT, -ECANCELED, -errno. */
static int job_wait(gai_job *j, uint64_t deadline_ns, const char *call,
                    const void *site) {
  j->loop = cor_retain(cor__tls_loop);
  __atomic_store_n(&j->refs, 3, __ATOMIC_RELAXED);
  int rc = pool_submit(j);
  if (rc != 0) {
    __atomic_store_n(&j->refs, 1, __ATOMIC_RELAXED);
    return rc;
  }
  /* The answer is posted to this loop, so it cannot run before we suspend:
   * `waiting` is set in time. */
  rc = cor__wait_embedded(j->loop, &j->fut, &j->waiting, deadline_ns, call,
                          site);
  if (rc != 0)
    __atomic_store_n(&j->abandoned, 1, __ATOMIC_RELEASE);
  return rc;
}

static gai_job *job_new(void) {
  gai_job *j = cor__calloc(1, sizeof *j);
  if (j)
    j->refs = 1;
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
  gai_job *j = job_new();
  if (j == NULL)
    return -ENOMEM;
  j->run = run_getaddrinfo;
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
  gai_job *j = job_new();
  if (j == NULL)
    return -ENOMEM;
  j->run = run_getaddrinfo;
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
  gai_job *j = job_new();
  if (j == NULL)
    return -ENOMEM;
  j->run = run_getnameinfo;
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
