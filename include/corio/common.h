/* SPDX-License-Identifier: MIT */
/* corio: common definitions shared by every part of the public API.
 *
 * Conventions (see ARCHITECTURE.md):
 *  - constructors return a pointer, or NULL with errno set;
 *  - every other call that can fail returns 0 or a negative error code
 *    (-EINVAL, -ENOMEM, ... or one of the COR_E* codes below);
 *  - a call whose name ends in _threadsafe may be made from any thread; every
 *    other loop call belongs to the loop's owning thread (the thread running
 *    it; a loop nobody runs may be used by any one thread at a time). A call
 *    on a future, task, stream, server, datagram or process belongs to the
 *    thread of the loop it was made on. Made from another thread while that
 *    loop runs, such a call does nothing, logs an ERROR naming the call, the
 *    loop and both threads, and returns COR_ETHREAD; a call that cannot
 *    return it returns NULL (pointers), 0 or false (counts, flags) or nothing,
 *    and sets errno to 4001 (-COR_ETHREAD). Comments say "Owner thread (else
 *    COR_ETHREAD)" and the like; "Any thread" marks the exceptions;
 *  - an invalid argument (a NULL where an object or buffer is needed, a
 *    negative or NaN timeout where the call says so, a zero-length
 *    separator, an out-of-range index or signal, a coroutine already
 *    consumed) makes the call do nothing but return -EINVAL (a constructor
 *    or other pointer-returning call: NULL with errno EINVAL) and log one
 *    ERROR record on the "corio" logger naming the call and the argument,
 *    such as "cor_stream_read(): invalid argument: s is NULL"; a getter
 *    given NULL (cor_stream_fd, cor_process_pid, ...) returns -EINVAL
 *    through the same path. Where a
 *    comment documents NULL as accepted (cor_release(NULL) does nothing, a
 *    NULL loop means the running loop, NULL opts the defaults, a getter's
 *    "0 for NULL"), NULL is not an error and is not logged. An object in the
 *    wrong state (a future already done, a server not yet closed) is not an
 *    invalid argument: such calls return their documented code unlogged;
 *  - the loop argument of a call that schedules work on a loop or makes an
 *    object there (cor_call_soon, cor_call_later, cor_call_at(_ns),
 *    cor_handle_cancel, cor_future_new, cor_create_task, cor_start_server,
 *    cor_run_in_executor, the coordination constructors...) may be NULL:
 *    the loop running on the calling thread (asyncio's get_running_loop()),
 *    an invalid argument only when none runs. Calls that act on the loop
 *    itself (run, stop, close, its settings) need it named;
 *  - constructors that need not suspend return a pointer (NULL with errno);
 *    calls that may suspend the calling task (cor_open_connection,
 *    cor_subprocess_exec, ...) return an int code and hand the object back
 *    through an out-parameter. Counted objects (loop, future, task,
 *    concurrent future, executor, runtime and the coordination objects) are
 *    freed by cor_release; the other resource holders (stream, server,
 *    datagram endpoint, process) by their cor_X_free;
 *  - time-outs, one rule everywhere: a `double timeout` is seconds and is
 *    the call's last argument; 0 = do not wait (answer now, -ETIMEDOUT if
 *    nothing is there), < 0 or COR_FOREVER (INFINITY) = no limit, NaN = an
 *    invalid argument (-EINVAL, logged). In option structs a zeroed field
 *    means the documented default; other values follow the same rule.
 *    -ETIMEDOUT is the code of every expired time-out;
 *  - closing, one rule everywhere: an object that holds a resource has an
 *    idempotent int cor_X_close (a second close returns 0 or COR_ECLOSED,
 *    never crashes) and is freed by cor_release or cor_X_free; freeing one
 *    never closed closes it and logs the resource warning.
 */
#ifndef CORIO_COMMON_H
#define CORIO_COMMON_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>

/* A time-out without limit (see the time-out rule above). */
#define COR_FOREVER INFINITY

#ifdef __cplusplus
extern "C" {
#endif

#if defined(COR_BUILDING_LIBRARY) && defined(__GNUC__)
#define COR_EXTERN __attribute__((visibility("default")))
#else
#define COR_EXTERN
#endif

#if defined(__GNUC__)
#define COR_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define COR_PRINTF(f, a)
#endif

#define COR_VERSION_MAJOR 0
#define COR_VERSION_MINOR 1
#define COR_VERSION_PATCH 0
#define COR_VERSION_HEX                                                        \
  ((COR_VERSION_MAJOR << 16) | (COR_VERSION_MINOR << 8) | COR_VERSION_PATCH)

/* corio's own error codes, all below -4000 so they never collide with a
 * negated errno value. */
#define COR_ETHREAD (-4001) /* called from a thread that does not own the loop */
#define COR_ENOTASK (-4002) /* needs a running task */
#define COR_EBROKEN (-4003) /* an executor worker died; a barrier broke */
#define COR_ECLOSED (-4004) /* the object is already closed */
/* A TLS handshake failed or a record was bad (corio/tls.h); the stream's
 * message (cor_stream_error_message) has OpenSSL's reason. */
#define COR_ETLS (-4201)

/* A coroutine, a blocking job and a task body share this type: return 0 and
 * optionally store a result, or return a negative code (the C form of
 * raising). */
typedef int (*cor_fn)(void *arg, void **result);

/* A plain callback, as run by cor_call_soon and friends. */
typedef void (*cor_callback)(void *arg);

/* Bytes: data[0..len), {NULL, 0} when empty. Each call that fills one
 * says who owns data: cor_bytes_set (a process job's output, see
 * corio/executor.h) and cor_process_communicate (corio/stream.h) malloc it
 * for the caller, who frees it with free(). */
typedef struct cor_bytes {
  void *data;
  size_t len;
} cor_bytes_t;

/* The library's version as "MAJOR.MINOR.PATCH"; any thread. */
COR_EXTERN const char *cor_version(void);
/* COR_VERSION_HEX of the library actually linked; any thread. */
COR_EXTERN unsigned cor_version_hex(void);

/* A human-readable message for any code corio returns (negated errno values
 * and the COR_E* codes); never NULL, "Unknown error" for others. Any thread. */
COR_EXTERN const char *cor_strerror(int code);
/* The symbolic name of a code ("EINVAL", "COR_ETHREAD", "0" for success),
 * "UNKNOWN" for codes outside the table. Any thread. */
COR_EXTERN const char *cor_err_name(int code);

/* Reference counting for every counted object (loops, futures, tasks,
 * concurrent futures). Any thread. cor_retain returns obj; both ignore NULL.
 * Releasing the last reference frees the object. */
COR_EXTERN void *cor_retain(void *obj);
COR_EXTERN void cor_release(void *obj);

#ifdef __cplusplus
}
#endif
#endif
