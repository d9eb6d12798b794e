/* SPDX-License-Identifier: MIT */
/* Error codes: one X-macro table gives cor_strerror and cor_err_name. */
#include "base/base.h"
#include "base/error.h"

#include <unistd.h>

/* XX(code, name, message) */
#define COR_ERRNO_MAP(XX)                                                      \
  XX(0, "0", "Success")                                                        \
  XX(-EPERM, "EPERM", "Operation not permitted")                               \
  XX(-ENOENT, "ENOENT", "No such entry")                                       \
  XX(-ESRCH, "ESRCH", "No such process")                                       \
  XX(-EINTR, "EINTR", "Interrupted system call")                               \
  XX(-EIO, "EIO", "I/O error")                                                 \
  XX(-E2BIG, "E2BIG", "Argument list too long")                                \
  XX(-EBADF, "EBADF", "Bad file descriptor")                                   \
  XX(-ECHILD, "ECHILD", "No child processes")                                  \
  XX(-EAGAIN, "EAGAIN", "Resource temporarily unavailable")                    \
  XX(-ENOMEM, "ENOMEM", "Out of memory")                                       \
  XX(-EACCES, "EACCES", "Permission denied")                                   \
  XX(-EFAULT, "EFAULT", "Bad address")                                         \
  XX(-EBUSY, "EBUSY", "Resource busy")                                         \
  XX(-EEXIST, "EEXIST", "Already exists")                                      \
  XX(-ENODEV, "ENODEV", "No such device")                                      \
  XX(-EINVAL, "EINVAL", "Invalid argument")                                    \
  XX(-ENFILE, "ENFILE", "Too many open files in system")                       \
  XX(-EMFILE, "EMFILE", "Too many open files")                                 \
  XX(-ENOSPC, "ENOSPC", "No space left on device")                             \
  XX(-EPIPE, "EPIPE", "Broken pipe")                                           \
  XX(-ERANGE, "ERANGE", "Result out of range")                                 \
  XX(-EDEADLK, "EDEADLK", "Resource deadlock would occur")                     \
  XX(-ENAMETOOLONG, "ENAMETOOLONG", "Name too long")                           \
  XX(-ENOSYS, "ENOSYS", "Function not implemented")                            \
  XX(-ENOTSUP, "ENOTSUP", "Operation not supported")                           \
  XX(-EPROTO, "EPROTO", "Protocol error")                                      \
  XX(-EMSGSIZE, "EMSGSIZE", "Message too long")                                \
  XX(-EOVERFLOW, "EOVERFLOW", "Value too large")                               \
  XX(-EADDRINUSE, "EADDRINUSE", "Address already in use")                      \
  XX(-EADDRNOTAVAIL, "EADDRNOTAVAIL", "Address not available")                 \
  XX(-ENETUNREACH, "ENETUNREACH", "Network unreachable")                       \
  XX(-ECONNABORTED, "ECONNABORTED", "Connection aborted")                      \
  XX(-ECONNRESET, "ECONNRESET", "Connection reset by peer")                    \
  XX(-ENOBUFS, "ENOBUFS", "No buffer space available")                         \
  XX(-EISCONN, "EISCONN", "Already connected")                                 \
  XX(-ENOTCONN, "ENOTCONN", "Not connected")                                   \
  XX(-ETIMEDOUT, "ETIMEDOUT", "Timed out")                                     \
  XX(-ECONNREFUSED, "ECONNREFUSED", "Connection refused")                      \
  XX(-EHOSTUNREACH, "EHOSTUNREACH", "Host unreachable")                        \
  XX(-EALREADY, "EALREADY", "Already in progress")                             \
  XX(-EINPROGRESS, "EINPROGRESS", "In progress")                               \
  XX(-ECANCELED, "ECANCELED", "Cancelled")                                     \
  XX(-EOWNERDEAD, "EOWNERDEAD", "Owner died")                                  \
  XX(COR_ETHREAD, "COR_ETHREAD", "Called from a thread that does not own the loop") \
  XX(COR_ENOTASK, "COR_ENOTASK", "Needs a running task")                      \
  XX(COR_EBROKEN, "COR_EBROKEN", "Broken (executor worker died, or barrier aborted or reset)") \
  XX(COR_ECLOSED, "COR_ECLOSED", "Already closed")                             \
  XX(-ENOTSOCK, "ENOTSOCK", "Not a socket")                                    \
  XX(COR_ELIMIT, "COR_ELIMIT", "Separator not found within the stream limit")  \
  XX(COR_EINCOMPLETE, "COR_EINCOMPLETE", "EOF before the read completed")  \
  XX(COR_ETLS, "COR_ETLS", "TLS error (handshake, verification or record)")

const char *cor_strerror(int code) {
  switch (code) {
#define XX(c, n, m)                                                            \
  case c:                                                                      \
    return m;
    COR_ERRNO_MAP(XX)
#undef XX
  default:
    return "Unknown error";
  }
}

const char *cor_err_name(int code) {
  switch (code) {
#define XX(c, n, m)                                                            \
  case c:                                                                      \
    return n;
    COR_ERRNO_MAP(XX)
#undef XX
  default:
    return "UNKNOWN";
  }
}

const char *cor_version(void) { return "0.1.0"; }
unsigned cor_version_hex(void) { return COR_VERSION_HEX; }

void cor__assert_fail(const char *expr, const char *file, int line,
                      const char *func) {
  char buf[512];
  int n = snprintf(buf, sizeof buf,
                   "corio: assertion failed: %s (%s:%d, %s)\n", expr, file,
                   line, func);
  if (n > 0) {
    ssize_t w = write(2, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
    (void)w;
  }
  abort();
}

/* Kept out of line and cold: the callers' fast paths carry only the test of
 * their arguments. errno is set after logging, as a sink may change it. */
__attribute__((cold, noinline)) int cor__bad_arg(const char *call,
                                                 const char *what) {
  cor_log(COR_LOG_ERROR, "%s(): invalid argument: %s", call, what);
  return -EINVAL;
}

__attribute__((cold, noinline)) void *cor__bad_arg_ptr(const char *call,
                                                       const char *what) {
  cor_log(COR_LOG_ERROR, "%s(): invalid argument: %s", call, what);
  errno = EINVAL;
  return NULL;
}
