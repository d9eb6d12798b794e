/* SPDX-License-Identifier: MIT */
/* Signals on a loop (core/loop/signal.c). Not installed. */
#ifndef CORIO_CORE_LOOP_SIGNAL_H
#define CORIO_CORE_LOOP_SIGNAL_H

#include "base/base.h"

/* signals (core/loop/signal.c) */
void cor__signal_read(struct cor_loop *loop);
void cor__signal_close(struct cor_loop *loop);

#endif
