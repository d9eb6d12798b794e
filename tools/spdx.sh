#!/bin/sh
# SPDX-License-Identifier: MIT
# Puts an `SPDX-License-Identifier: MIT` line at the top of every source file
# git tracks (*.c, *.h, *.S, Makefile, shell scripts, corio.pc.in, *.cmake,
# CMakeLists.txt), after a shebang when there is one. Only the first lines
# change; a file that already has the tag is left alone.
#   tools/spdx.sh          add the tag where it is missing
#   tools/spdx.sh --check  list the files without it, fail if any
set -eu
cd "$(dirname "$0")/.."
tag="SPDX-License-Identifier: MIT"
check=0
[ "${1:-}" = "--check" ] && check=1
missing=0
for f in $(git ls-files '*.c' '*.h' '*.S' '*.sh' '*.cmake' '*.cmake.in' \
             'Makefile' '*/Makefile' 'CMakeLists.txt' '*/CMakeLists.txt' \
             'corio.pc.in' '.ci/run' '.ci/deps.sh'); do
  [ -f "$f" ] || continue
  head -3 "$f" | grep -q "$tag" && continue
  if [ $check -eq 1 ]; then
    echo "no SPDX tag: $f"; missing=1; continue
  fi
  case "$f" in
    *.c|*.h|*.S) line="/* $tag */" ;;
    *) line="# $tag" ;;
  esac
  tmp="$f.spdx.$$"
  if head -1 "$f" | grep -q '^#!'; then
    { head -1 "$f"; echo "$line"; tail -n +2 "$f"; } > "$tmp"
  else
    { echo "$line"; cat "$f"; } > "$tmp"
  fi
  cat "$tmp" > "$f" && rm -f "$tmp"   # keeps the file's mode
  echo "tagged: $f"
done
exit $missing
