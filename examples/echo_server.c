/* SPDX-License-Identifier: MIT */
/* echo_server: a TCP echo server on every core.
 *
 *   examples/echo_server [--port N] [--loops N]
 *
 * One listener per loop (SO_REUSEPORT), one task per connection: whatever
 * arrives is written straight back from the stream's own buffer (peek and
 * consume: no copy), with drain for back-pressure. Prints
 * "listening on 127.0.0.1:PORT" once every loop listens; SIGINT or SIGTERM
 * stops it cleanly. */
#include <corio.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "echo.h"


int main(int argc, char **argv) {
  int port = 7000;
  unsigned loops = 0;
  int pin = 0; /* the runtime's default: loop i on the i-th CPU */
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
      port = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--loops") == 0 && i + 1 < argc) {
      loops = (unsigned)atoi(argv[++i]);
    } else if (strcmp(argv[i], "--no-pin") == 0) {
      pin = -1;
    } else {
      fprintf(stderr, "usage: %s [--port N] [--loops N]\n", argv[0]);
      return 2;
    }
  }
  /* SIGINT/SIGTERM are taken by sigwait below; blocked before any thread
   * starts, so no thread gets the default action. */
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);

  cor_runtime_opts ro = {0};
  ro.nloops = loops;
  ro.pin = pin;
  ro.spin_seconds = -1; /* sleep in epoll when idle: sockets wake us */
  cor_runtime_t *rt = cor_runtime_new(&ro);
  if (rt == NULL) {
    perror("cor_runtime_new");
    return 1;
  }
  cor_server_opts so = {0};
  so.host = "127.0.0.1";
  so.port = port;
  so.stack_size = 32 * 1024;
  cor_server_t *srv = cor_runtime_start_server(rt, &so, echo_connection);
  if (srv == NULL) {
    fprintf(stderr, "cannot listen on 127.0.0.1:%d: %s\n", port,
            strerror(errno));
    cor_runtime_shutdown(rt, 1);
    cor_release(rt);
    return 1;
  }
  printf("listening on 127.0.0.1:%d (%u loops)\n", cor_server_port(srv),
         cor_runtime_nloops(rt));
  fflush(stdout);

  int sig = 0;
  sigwait(&stop, &sig);
  cor_server_close(srv);
  if (cor_server_wait_closed(srv, 0.2) != 0) {
    cor_server_close_clients(srv); /* clients that stay connected */
    cor_server_wait_closed(srv, 5);
  }
  cor_server_free(srv);
  int rc = cor_runtime_shutdown(rt, 5);
  cor_release(rt);
  return rc == 0 ? 0 : 1;
}
