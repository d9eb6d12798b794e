/* SPDX-License-Identifier: MIT */
/* corio: the "corio" logger. */
#ifndef CORIO_LOG_H
#define CORIO_LOG_H

#include <corio/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Levels, as Python's logging module. */
#define COR_LOG_DEBUG 10
#define COR_LOG_INFO 20
#define COR_LOG_WARNING 30
#define COR_LOG_ERROR 40
#define COR_LOG_CRITICAL 50

/* A sink receives each record that passes the level: its level, the logger
 * name ("corio") and the formatted message without a trailing newline. It may
 * be called from any thread (from the logging thread when async mode is on),
 * one record at a time: calls into one sink never overlap. */
typedef void (*cor_log_sink_fn)(void *arg, int level, const char *logger,
                                const char *msg);

/* Sets the minimum level (default INFO, or CORIO_LOG_LEVEL from the
 * environment, as a name such as "DEBUG" or as a number). Any thread. */
COR_EXTERN void cor_log_set_level(int level);
COR_EXTERN int cor_log_get_level(void);
/* True when a record at `level` would be emitted. Any thread. */
COR_EXTERN bool cor_log_enabled(int level);

/* Replaces the sink; NULL restores the default, which writes
 * "LEVEL:corio:message\n" to stderr. Any thread. Records already queued in
 * async mode are delivered to the sink in force when they are written out. */
COR_EXTERN void cor_log_set_sink(cor_log_sink_fn fn, void *arg);

/* Async mode: records are formatted by the caller and handed through a
 * bounded queue to one dedicated thread that calls the sink, so a slow sink
 * never blocks a loop. When the queue is full, records are dropped and
 * counted, and a WARNING reporting how many were dropped is emitted once the
 * queue drains. Turning it off (and process exit) flushes every queued
 * record first. Returns 0, or a negative code if the thread cannot start.
 * Any thread. */
COR_EXTERN int cor_log_set_async(bool on);
/* Waits until every record queued so far has reached the sink. Any thread. */
COR_EXTERN void cor_log_flush(void);

/* Emits a record on the "corio" logger. A NULL fmt emits, instead, an
 * ERROR naming cor_log (see corio/common.h). Any thread. */
COR_EXTERN void cor_log(int level, const char *fmt, ...) COR_PRINTF(2, 3);

/* The name of a level ("DEBUG", "INFO", ...; "Level N" otherwise). Any
 * thread. */
COR_EXTERN const char *cor_log_level_name(int level);

#ifdef __cplusplus
}
#endif
#endif
