/* SPDX-License-Identifier: MIT */
/* The "corio" logger: the level, the sink, and async mode's logging thread.
 *
 * Sync mode: the caller formats the record on its stack and calls the sink
 * under sink_mu. Async mode: the caller formats, copies the record into a
 * bounded ring under q.mu and returns; one thread takes the records out of
 * the ring in order and calls the sink under sink_mu. No thread takes q.mu
 * while it holds sink_mu, so the two locks cannot deadlock, and a caller in
 * async mode never waits on the sink. */
#include "base/alloc.h"
#include "base/atomics.h"
#include "base/base.h"
#include "base/error.h"
#include "base/log.h"
#include "base/thread.h"

#include <limits.h>
#include <stdarg.h>
#include <strings.h>
#include <unistd.h>

#define LOGGER "corio"

/* Longest message kept, NUL included. A record is formatted on the caller's
 * stack, which may be a 64 KiB coroutine stack: 4 KiB is what it can spare. */
#define MSG_MAX 4096

/* Async ring capacity in records; a power of two so that a sequence number
 * maps to its slot with a mask. 8192 records absorb a burst of several ms
 * from every loop of a runtime before anything is dropped. */
#define QUEUE_CAP 8192u

/* Bytes of a message held inside its slot. Nearly every record is shorter,
 * so the caller's fast path is one memcpy under the lock and no malloc; a
 * longer one is copied to the heap before the lock is taken. 244 makes a slot
 * 256 bytes, so the ring is 2 MiB, allocated only while async mode is on. */
#define SLOT_INLINE 244

/* INT_MIN means "the environment has not been read yet". cor_log_enabled
 * sits on hot paths: with the sentinel it stays one relaxed load and a
 * compare, and only the very first call takes the pthread_once path. */
#define LEVEL_UNSET INT_MIN

/* The two values read without a lock. Relaxed is enough for both: the level
 * publishes no other data, and async_on is only a hint that q.accepting,
 * read under q.mu, confirms. core/atomics.h's relaxed operations: the
 * order in their name, and ThreadSanitizer sees them in every build. */
static int cur_level = LEVEL_UNSET;
static int async_on;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* Serializes calls into the sink (the header promises they never overlap)
 * and guards the sink itself, so that once cor_log_set_sink returns the old
 * sink is no longer running and its arg may be freed. */
static pthread_mutex_t sink_mu = PTHREAD_MUTEX_INITIALIZER;
static void default_sink(void *arg, int level, const char *logger,
                         const char *msg);
static cor_log_sink_fn sink_fn = default_sink;
static void *sink_arg;

/* True while this thread runs a sink, and so holds sink_mu. A sink that logs,
 * flushes or swaps the sink would otherwise deadlock on sink_mu or wait on
 * the very thread that runs it. */
static _Thread_local bool in_sink;

typedef struct slot {
  char *heap; /* the message when it did not fit in text[], else NULL */
  int level;
  char text[SLOT_INLINE];
} slot;

/* The async ring, all under q.mu. Sequence numbers only grow: slots
 * [head, tail) hold records not yet delivered. The logging thread reads
 * those slots without the lock: producers write only at tail, and a slot is
 * reused only after head has moved past it under the lock. */
static struct {
  pthread_mutex_t mu;
  pthread_cond_t work;     /* the logging thread waits for records */
  pthread_cond_t progress; /* cor_log_flush waits for head to move */
  slot *slots;
  uint64_t head, tail;
  uint64_t dropped, reported; /* drops counted / already warned about */
  bool accepting;             /* producers may push */
  bool stopping;              /* drain, then exit */
  bool idle;                  /* the logging thread waits on `work` */
  bool alive;                 /* the logging thread runs */
} q = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .work = PTHREAD_COND_INITIALIZER,
    .progress = PTHREAD_COND_INITIALIZER,
};

/* Serializes turning async mode on and off (and exit, and fork) so that
 * only one thread starts or joins the logging thread. */
static pthread_mutex_t mode_mu = PTHREAD_MUTEX_INITIALIZER;
static bool thread_started; /* under mode_mu */
static pthread_t log_thread;
static bool atexit_done;

/* True on the logging thread. */
static _Thread_local bool is_log_thread;

_Static_assert(sizeof(slot) == 256, "a slot is four cache lines");

static void lock(pthread_mutex_t *m) { COR_ASSERT(pthread_mutex_lock(m) == 0); }
static void unlock(pthread_mutex_t *m) {
  COR_ASSERT(pthread_mutex_unlock(m) == 0);
}

/* ------------------------------------------------------------ levels */

static const struct {
  const char *name;
  int level;
} level_names[] = {
    /* Python's logging accepts the same names, FATAL and WARN included. */
    {"CRITICAL", COR_LOG_CRITICAL}, {"FATAL", COR_LOG_CRITICAL},
    {"ERROR", COR_LOG_ERROR},       {"WARNING", COR_LOG_WARNING},
    {"WARN", COR_LOG_WARNING},      {"INFO", COR_LOG_INFO},
    {"DEBUG", COR_LOG_DEBUG},       {"NOTSET", 0},
};

/* Parses a level name (any case) or a decimal number, spaces around it
 * allowed. Returns false when it is neither. */
static bool parse_level(const char *s, int *out) {
  while (*s == ' ' || *s == '\t')
    s++;
  size_t n = strlen(s);
  while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n'))
    n--;
  if (n == 0)
    return false;
  for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
    if (strlen(level_names[i].name) == n &&
        strncasecmp(s, level_names[i].name, n) == 0) {
      *out = level_names[i].level;
      return true;
    }
  }
  char num[24];
  if (n >= sizeof num)
    return false;
  memcpy(num, s, n);
  num[n] = '\0';
  char *end;
  errno = 0;
  long v = strtol(num, &end, 10);
  if (end == num || *end != '\0' || errno == ERANGE || v <= INT_MIN ||
      v > INT_MAX)
    return false;
  *out = (int)v;
  return true;
}

static void fork_prepare(void);
static void fork_parent(void);
static void fork_child(void);

static void log_init(void) {
  /* A fork while another thread holds one of our locks, or waits on one
   * of our condition variables, would leave the child a logger that hangs;
   * the handlers keep it usable. Registered at first use, so sync mode is
   * covered too. Failure (ENOMEM) leaves only that hazard: not fatal. */
  (void)pthread_atfork(fork_prepare, fork_parent, fork_child);

  const char *env = getenv("CORIO_LOG_LEVEL");
  int level = COR_LOG_INFO;
  bool bad = env && *env && !parse_level(env, &level);
  if (bad)
    level = COR_LOG_INFO;
  /* Stored before the warning below: cor_log must find the level set, or
   * it would re-enter this pthread_once and deadlock. */
  cor__store_rlx(&cur_level, level);
  if (bad)
    cor_log(COR_LOG_WARNING,
            "ignoring CORIO_LOG_LEVEL=\"%.64s\" (expected a level name such "
            "as DEBUG, or a number)",
            env);
}

void cor__log_init_from_env(void) { pthread_once(&init_once, log_init); }

/* Out of line, so that cor_log_enabled's fast path stays a leaf. */
__attribute__((cold, noinline)) static int level_slow(void) {
  cor__log_init_from_env();
  return cor__load_rlx(&cur_level);
}

void cor_log_set_level(int level) {
  /* The environment is read first, so that a later first use cannot
   * overwrite this explicit choice with it. */
  cor__log_init_from_env();
  /* INT_MIN is the sentinel; INT_MIN + 1 lets through the same records
   * except one logged at INT_MIN itself. */
  if (level == LEVEL_UNSET)
    level++;
  cor__store_rlx(&cur_level, level);
}

int cor_log_get_level(void) {
  int cur = cor__load_rlx(&cur_level);
  return COR_LIKELY(cur != LEVEL_UNSET) ? cur : level_slow();
}

bool cor_log_enabled(int level) {
  int cur = cor__load_rlx(&cur_level);
  if (COR_UNLIKELY(cur == LEVEL_UNSET))
    cur = level_slow();
  return level >= cur;
}

static const char *level_name(int level, char *buf, size_t n) {
  switch (level) {
  case COR_LOG_CRITICAL:
    return "CRITICAL";
  case COR_LOG_ERROR:
    return "ERROR";
  case COR_LOG_WARNING:
    return "WARNING";
  case COR_LOG_INFO:
    return "INFO";
  case COR_LOG_DEBUG:
    return "DEBUG";
  case 0:
    return "NOTSET"; /* as Python's logging.getLevelName(0) */
  default:
    snprintf(buf, n, "Level %d", level);
    return buf;
  }
}

/* "Level N" is built in a per-thread buffer: it stays valid until the same
 * thread asks again, and threads never share it. */
const char *cor_log_level_name(int level) {
  static _Thread_local char buf[24];
  return level_name(level, buf, sizeof buf);
}

/* ------------------------------------------------------------ sinks */

static void write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return; /* stderr is gone: there is nowhere left to report it */
    }
    p += w;
    n -= (size_t)w;
  }
}

static void default_sink(void *arg, int level, const char *logger,
                         const char *msg) {
  /* One write(2) per line: the kernel keeps a write of up to PIPE_BUF bytes
   * to a pipe whole, so lines from other writers of fd 2 (another process,
   * a printf of the application) do not cut into ours. The loop in
   * write_all only runs after a partial write or a signal. */
  char name[24];
  char line[MSG_MAX + 64];
  int n = snprintf(line, sizeof line, "%s:%s:%s\n",
                   level_name(level, name, sizeof name), logger, msg);
  if (n < 0)
    return;
  size_t len = (size_t)n;
  if (len >= sizeof line) { /* only for a message longer than cor_log makes */
    len = sizeof line - 1;
    line[len - 1] = '\n';
  }
  write_all(2, line, len);
}

static void deliver(int level, const char *msg) {
  if (in_sink) {
    /* Logged by the sink itself: the sink cannot be re-entered (calls
     * never overlap, and this thread holds sink_mu), and dropping the
     * record would hide what the sink had to say. */
    default_sink(NULL, level, LOGGER, msg);
    return;
  }
  lock(&sink_mu);
  in_sink = true;
  sink_fn(sink_arg, level, LOGGER, msg);
  in_sink = false;
  unlock(&sink_mu);
}

void cor_log_set_sink(cor_log_sink_fn fn, void *arg) {
  if (fn == NULL) {
    fn = default_sink;
    arg = NULL;
  }
  if (in_sink) { /* called from a sink: this thread already holds sink_mu */
    sink_fn = fn;
    sink_arg = arg;
    return;
  }
  lock(&sink_mu);
  sink_fn = fn;
  sink_arg = arg;
  unlock(&sink_mu);
}

/* ------------------------------------------------------------ async ring */

/* Queues a record. Returns false when async mode is off (the caller then
 * delivers it itself); a record dropped because the ring is full counts as
 * handled. */
static bool enqueue(int level, const char *msg, size_t len) {
  char *heap = NULL;
  if (len >= SLOT_INLINE) {
    /* Copied before the lock is taken: the lock is held for a memcpy into
     * the slot at most, never for a malloc. */
    heap = cor__malloc(len + 1);
    if (heap)
      memcpy(heap, msg, len + 1);
  }
  lock(&q.mu);
  if (!q.accepting) {
    unlock(&q.mu);
    cor__free(heap);
    return false;
  }
  bool wake = q.idle;
  q.idle = false;
  if (q.tail - q.head == QUEUE_CAP || (len >= SLOT_INLINE && heap == NULL)) {
    q.dropped++;
    unlock(&q.mu);
    cor__free(heap);
  } else {
    slot *s = &q.slots[q.tail & (QUEUE_CAP - 1)];
    s->level = level;
    s->heap = heap;
    if (heap == NULL)
      memcpy(s->text, msg, len + 1);
    q.tail++;
    unlock(&q.mu);
  }
  /* Signalled after the unlock so that the woken thread does not block at
   * once on the mutex we hold; only when it sleeps, so that a burst costs
   * one wake-up, not one per record. The thread re-checks the ring under
   * the lock, so a wake-up is never lost. */
  if (wake)
    pthread_cond_signal(&q.work);
  return true;
}

static void report_drops(uint64_t n) {
  if (!cor_log_enabled(COR_LOG_WARNING))
    return;
  char msg[96];
  snprintf(msg, sizeof msg,
           "corio: %llu log records dropped (async queue full)",
           (unsigned long long)n);
  deliver(COR_LOG_WARNING, msg);
}

static void *log_thread_main(void *unused) {
  (void)unused;
  /* Signals were blocked by the creator, before the thread existed, so no
   * signal meant for a loop can ever land here, even during start-up. */
  pthread_setname_np(pthread_self(), "corio-log");
  is_log_thread = true;
  lock(&q.mu);
  for (;;) {
    while (q.head == q.tail && q.dropped == q.reported && !q.stopping) {
      q.idle = true;
      pthread_cond_wait(&q.work, &q.mu);
    }
    if (q.head != q.tail) {
      /* Delivered without the lock: producers keep pushing meanwhile. */
      slot *s = &q.slots[q.head & (QUEUE_CAP - 1)];
      unlock(&q.mu);
      deliver(s->level, s->heap ? s->heap : s->text);
      lock(&q.mu);
      /* Freed under the lock, so that a fork's child, which frees what is
       * still queued, never frees a copy twice. */
      cor__free(s->heap);
      s->heap = NULL;
      /* Advanced record by record, so that a flush and a full ring see
       * progress at once, not after a batch of slow sink calls. */
      q.head++;
      pthread_cond_broadcast(&q.progress);
      continue;
    }
    if (q.dropped != q.reported) {
      /* The ring has drained: report what was lost, after the records
       * that were kept, so the warning lands where the gap is. */
      uint64_t upto = q.dropped, n = upto - q.reported;
      unlock(&q.mu);
      report_drops(n);
      lock(&q.mu);
      q.reported = upto;
      pthread_cond_broadcast(&q.progress);
      continue;
    }
    if (q.stopping)
      break;
  }
  q.alive = false;
  pthread_cond_broadcast(&q.progress);
  unlock(&q.mu);
  return NULL;
}

static void log_atexit(void);

/* Both under mode_mu. */
static int start_thread(void) {
  if (thread_started)
    return 0;
  cor__log_init_from_env(); /* registers the fork handlers */
  if (!atexit_done) {
    if (atexit(log_atexit) != 0)
      return -ENOMEM;
    atexit_done = true;
  }
  slot *slots = cor__calloc(QUEUE_CAP, sizeof *slots);
  if (slots == NULL)
    return -ENOMEM;
  lock(&q.mu);
  q.slots = slots;
  q.stopping = false;
  q.idle = false;
  q.alive = true;
  unlock(&q.mu);

  /* The thread inherits the creator's mask: blocking everything around
   * pthread_create means it never runs a signal handler, not even before
   * its first instruction, and signals go to the threads that wait for
   * them (a loop's signalfd). */
  int rc = cor__thread_create(&log_thread, NULL, log_thread_main, NULL, false);
  lock(&q.mu);
  if (rc != 0) {
    q.slots = NULL;
    q.alive = false;
  } else {
    q.accepting = true;
  }
  unlock(&q.mu);
  if (rc != 0) {
    cor__free(slots);
    return -rc;
  }
  thread_started = true;
  cor__store_rlx(&async_on, 1);
  return 0;
}

static void stop_thread(void) {
  if (!thread_started)
    return;
  cor__store_rlx(&async_on, 0);
  lock(&q.mu);
  /* From here on producers deliver their records themselves; the thread
   * drains what is queued, reports drops, and exits. */
  q.accepting = false;
  q.stopping = true;
  unlock(&q.mu);
  pthread_cond_signal(&q.work);
  COR_ASSERT(pthread_join(log_thread, NULL) == 0);
  lock(&q.mu);
  COR_ASSERT(q.head == q.tail && !q.alive);
  cor__free(q.slots);
  q.slots = NULL;
  q.stopping = false;
  unlock(&q.mu);
  thread_started = false;
}

int cor_log_set_async(bool on) {
  /* From a sink, starting is harmless but stopping would wait for the
   * thread (or the lock) this very sink call holds: refuse both alike. */
  if (in_sink)
    return -EDEADLK;
  lock(&mode_mu);
  int rc = 0;
  if (on)
    rc = start_thread();
  else
    stop_thread();
  unlock(&mode_mu);
  return rc;
}

static void log_atexit(void) {
  /* exit() called from a sink cannot wait for the logging thread: that
   * thread is this one, or needs the sink_mu this thread holds. */
  if (in_sink)
    return;
  lock(&mode_mu);
  stop_thread();
  unlock(&mode_mu);
}

void cor_log_flush(void) {
  if (in_sink)
    return; /* the record being delivered could never be followed */
  lock(&q.mu);
  uint64_t tail = q.tail, dropped = q.dropped;
  while (q.alive && (q.head < tail || q.reported < dropped))
    pthread_cond_wait(&q.progress, &q.mu);
  unlock(&q.mu);
}

void cor_log(int level, const char *fmt, ...) {
  if (!cor_log_enabled(level))
    return;
  /* glibc's vsnprintf fails on a NULL fmt (the record would read
   * "unformattable"); C leaves it undefined, and other libcs crash. */
  if (fmt == NULL) {
    int e = errno;
    cor__bad_arg("cor_log", "fmt is NULL");
    errno = e; /* a void call: leaves errno alone, as every record does */
    return;
  }
  /* Callers log between a failed call and their look at errno. */
  int saved_errno = errno;
  char msg[MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  size_t len;
  if (n < 0) {
    static const char bad[] = "(corio: unformattable log record)";
    memcpy(msg, bad, sizeof bad);
    len = sizeof bad - 1;
  } else if ((size_t)n >= sizeof msg) {
    /* Cut, and say so with "...", at a UTF-8 character boundary so that a
     * sink expecting text never gets half a character. */
    size_t cut = sizeof msg - 4;
    while (cut > 0 && ((unsigned char)msg[cut] & 0xC0) == 0x80)
      cut--;
    memcpy(msg + cut, "...", 4);
    len = cut + 3;
  } else {
    len = (size_t)n;
  }
  /* A record from a sink is not queued: queued, it would come back to the
   * sink that made it, which may well log again. */
  if (in_sink || !cor__load_rlx(&async_on) ||
      !enqueue(level, msg, len))
    deliver(level, msg);
  errno = saved_errno;
}

/* ------------------------------------------------------------ fork */

/* Only the forking thread lives on in the child: the logging thread, and any
 * thread that held a lock, did not follow. The child logs synchronously
 * (until it turns async mode on itself); the records still queued belong to
 * the parent, which delivers them.
 *
 * Only q.mu is taken across fork: it is held for a few instructions at a
 * time, and it makes the ring consistent for the child to free. sink_mu and
 * mode_mu can be held for as long as a slow sink runs; a fork must not wait
 * for that, so the child makes them anew instead. */

static void fork_prepare(void) { lock(&q.mu); }

static void fork_parent(void) { unlock(&q.mu); }

static void fork_child(void) {
  /* Waiters of the parent's threads are counted inside the condition
   * variables, and glibc's signal can wait for them to leave: fresh ones. */
  pthread_cond_init(&q.work, NULL);
  pthread_cond_init(&q.progress, NULL);
  pthread_mutex_init(&mode_mu, NULL); /* never held by a forking thread */
  if (!in_sink) /* else this thread holds it and its sink call releases it */
    pthread_mutex_init(&sink_mu, NULL);
  if (!is_log_thread) {
    for (uint64_t seq = q.head; q.slots && seq != q.tail; seq++)
      cor__free(q.slots[seq & (QUEUE_CAP - 1)].heap);
    cor__free(q.slots);
    q.slots = NULL;
    q.head = q.tail;
    q.reported = q.dropped;
    q.accepting = q.stopping = q.idle = q.alive = false;
    thread_started = false;
    cor__store_rlx(&async_on, 0);
  }
  /* A sink that forks on the logging thread leaves the child a copy of
   * that thread, which returns into log_thread_main: its ring stays as it
   * is. Such a child is expected to exec or _exit from the sink. */
  unlock(&q.mu);
}
