#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs corio's Debian dependencies when they are missing: with apt-get when
# run as root, otherwise prints the one command to run and fails.
# wrk drives the network workloads of perf/; libuv1-dev builds their libuv
# peer (perf/peer_uv_http), never linked with corio; nginx-light is the
# peer of the static_file workload (perf/wl_net.c: peer_nginx_static; its
# package starts no service where policy-rc.d denies it). cmake builds
# .ci/run's project that finds an installed corio (tests/cmake). man-db
# (with groff) checks the generated manual pages (tools/mkman.sh, .ci/run).
# valgrind runs .ci/run's memcheck step (make valgrind) and ships
# <valgrind/valgrind.h>, with which core/task/stack.c registers task stacks
# (optional: built without it otherwise).
PKGS="build-essential pkg-config libjemalloc-dev libck-dev libcmocka-dev libdw-dev liburing-dev libssl-dev wrk libuv1-dev nginx-light cmake man-db valgrind"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
  echo "corio: installing missing packages:$missing"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null || exit 1
else
  echo "corio: missing packages:$missing" >&2
  echo "run: sudo apt-get update && sudo apt-get install -y$missing" >&2
  exit 1
fi
