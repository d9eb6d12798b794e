#!/bin/sh
# SPDX-License-Identifier: MIT
# Checks of the tree's shape that `make test` runs before the suites:
#  1. layering: core/ is below executor/, so no file of core/ includes a
#     header of executor/ or calls the runtime, executor or concurrent
#     future API (the upward calls issue 12 removed);
#  2. the TSan build maps every ck_pr operation the code uses onto compiler
#     atomics (core/base/atomics.h): one left out is ck's inline assembly there,
#     which ThreadSanitizer cannot see, and it would report false races or
#     miss real ones.
# Comments are stripped first (cpp -fpreprocessed), so prose may name
# anything. Prints what is wrong and exits 1.
set -u
cd "$(dirname "$0")/.."
fail=0
strip() { cpp -fpreprocessed -dD -P "$1" 2>/dev/null; }

# executor/'s headers; a name core/ also has ("internal.h") resolves to
# core/'s own from a core file (quoted includes search the file's folder
# first), so it is not an upward include.
xhdrs=$(cd executor && for h in *.h; do [ -e "../core/$h" ] || echo "$h"; done)
for f in core/*.h core/*/*.c core/*/*.h; do
  body=$(strip "$f")
  for h in $xhdrs; do
    if printf '%s\n' "$body" | grep -q "#include \"$h\""; then
      echo "check_tree: $f includes executor/$h (a layer above core/)"; fail=1
    fi
  done
  up=$(printf '%s\n' "$body" | grep -oE '\bcor_(runtime|executor|cfuture|thread_pool|process_pool|run_in_executor|run_in_process|run_coroutine_threadsafe)[a-z_]*\(' | sort -u)
  if [ -n "$up" ]; then
    echo "check_tree: $f calls up into executor/: $(echo $up)"; fail=1
  fi
done

used=$(for f in core/*.h core/*/*.c core/*/*.h executor/*.c executor/*.h; do strip "$f"; done |
  grep -oE '\bck_pr_[a-z_0-9]+' | sort -u)
mapped=$(sed -n '/^#ifdef COR__TSAN_ATOMICS/,/^#endif/p' core/base/atomics.h |
  grep -oE '^#define ck_pr_[a-z_0-9]+' | sed 's/^#define //' | sort -u)
for op in $used; do
  echo "$mapped" | grep -qx "$op" || {
    echo "check_tree: $op is used but not mapped for TSan in core/base/atomics.h"; fail=1; }
done

[ $fail -eq 0 ] && echo "check_tree: layering and TSan atomics mapping ok"
exit $fail
