#!/bin/sh
# SPDX-License-Identifier: MIT
# The Debian packages `make bench-compare` needs beyond .ci/deps.sh (which
# already brings libuv1-dev and wrk): the Tokio peer's crates and toolchain,
# uvloop for Debian's python3, nginx, and gnuplot for the chart. Installed
# with apt-get when run as root, otherwise the exact command is printed and
# this fails. Never needed by `make test` or CI.
PKGS="librust-tokio-dev cargo rustc python3 python3-uvloop nginx-light gnuplot-nox"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
  echo "bench-compare: installing missing packages:$missing"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null || exit 1
else
  echo "bench-compare: missing packages:$missing" >&2
  echo "run: sudo apt-get update && sudo apt-get install -y --no-install-recommends$missing" >&2
  exit 1
fi
