/* SPDX-License-Identifier: MIT */
/* corio: asyncio's model of programming, in C11, for many cores.
 * The one header to include. See README.md and ARCHITECTURE.md. */
#ifndef CORIO_H
#define CORIO_H

#include <corio/common.h>
#include <corio/log.h>
#include <corio/loop.h>
#include <corio/future.h>
#include <corio/task.h>
#include <corio/debug.h>
#include <corio/runtime.h>
#include <corio/executor.h>
#include <corio/stream.h>
#include <corio/sync.h>
#include <corio/file.h>
#include <corio/queue.h>
#include <corio/channel.h>
#include <corio/tls.h>
#include <corio/transport.h>

#endif
