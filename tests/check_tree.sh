#!/bin/sh
# SPDX-License-Identifier: MIT
# Checks of the tree's shape that `make test` runs before the suites
# (ARCHITECTURE.md, "Layers"):
#  1. layering: the library's layers are, lowest first, core/base,
#     core/loop, core/task, core/diag, core/net and executor/. A file
#     includes headers of its own layer and of the layers below, never of a
#     layer above; a header of another folder is named by its layer
#     ("loop/loop.h", with -Icore). No core file includes an executor
#     header or calls the runtime, executor or concurrent-future API;
#  2. executor/ reaches a loop and a task through their modules' functions
#     (core/loop/loop.h, core/task/task_internal.h: "for executor/"), never
#     their fields: no `->field` of struct cor_loop or struct cor_task on a
#     variable of that type, on `->loop`/`->task`, or on cor__tls_loop /
#     cor__tls_task;
#  3. the TSan build maps every ck_pr operation the code uses onto compiler
#     atomics (core/base/atomics.h): one left out is ck's inline assembly
#     there, which ThreadSanitizer cannot see, and it would report false
#     races or miss real ones;
#  4. every private header (core/*/*.h, executor/*.h) compiles on its own.
# Comments are stripped first (cpp -fpreprocessed) where a rule reads code,
# so prose may name anything. Prints file:line and what is wrong, exits 1.
set -u
cd "$(dirname "$0")/.."
fail=0
strip() { cpp -fpreprocessed -dD -P "$1" 2>/dev/null; }


# 1. Includes by layer. The rank of a file is its folder's; of an include
# "X/..." the rank of X. Unqualified includes name the file's own folder.
rank() {
  case $1 in
    base) echo 0 ;; loop) echo 1 ;; task) echo 2 ;; diag) echo 3 ;;
    net) echo 4 ;; executor) echo 5 ;; *) echo -1 ;;
  esac
}
for f in core/*/*.c core/*/*.h core/*/*.S executor/*.c executor/*.h; do
  [ -e "$f" ] || continue
  case $f in core/*) layer=${f#core/}; layer=${layer%%/*} ;; *) layer=executor ;; esac
  mine=$(rank "$layer")
  grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" |
    while IFS= read -r line; do
      n=${line%%:*}
      inc=$(printf '%s\n' "$line" | sed -E 's/^[^"]*"([^"]*)".*/\1/')
      case $inc in
        ../*) echo "check_tree: $f:$n: includes \"$inc\" (name a header by its layer)" ;;
        */*)
          top=${inc%%/*}; r=$(rank "$top")
          if [ "$r" -lt 0 ]; then
            echo "check_tree: $f:$n: includes \"$inc\": $top/ is not a layer"
          elif [ "$r" -gt "$mine" ]; then
            echo "check_tree: $f:$n: includes \"$inc\": $top/ is a layer above $layer/"
          fi ;;
        *)
          if [ ! -e "$(dirname "$f")/$inc" ]; then
            echo "check_tree: $f:$n: includes \"$inc\", not in its own folder (name a header by its layer)"
          fi ;;
      esac
    done
done > /tmp/check_tree.$$ 2>&1
if [ -s /tmp/check_tree.$$ ]; then cat /tmp/check_tree.$$; fail=1; fi
rm -f /tmp/check_tree.$$

# 2. executor/ and the fields of struct cor_loop and struct cor_task: the
# members are read from the struct definitions; the variables are those
# declared with either type in the file, and the ->loop / ->task members
# (the tree's name for a loop or task pointer in every struct).
fields() { # struct name, header: the member names of that struct
  strip "$2" | awk -v s="struct $1 {" '
    index($0, s) == 1 { on = 1; next }
    on && /^};/ { exit }
    on { gsub(/\[[^]]*\]/, ""); gsub(/COR_ALIGNED_CL/, "");
         sub(/;.*/, ""); n = split($0, w, /[ ,*]+/);
         for (i = 2; i <= n; i++) if (w[i] ~ /^[a-z_][a-z_0-9]*$/) print w[i] }' |
    sort -u
}
lf=$(fields cor_loop core/loop/loop.h | tr '\n' '|'); lf=${lf%|}
tf=$(fields cor_task core/task/task_internal.h | tr '\n' '|'); tf=${tf%|}
[ -n "$lf" ] && [ -n "$tf" ] || { echo "check_tree: cannot read the fields of struct cor_loop / cor_task"; fail=1; }
for f in executor/*.c executor/*.h; do
  code=$(strip "$f")
  lv=$(printf '%s\n' "$code" | grep -oE '(struct cor_loop|cor_loop_t)[[:space:]]*\*[[:space:]]*(const[[:space:]]+)?[a-z_][a-z_0-9]*' |
    sed -E 's/.*[*[:space:]]([a-z_][a-z_0-9]*)$/\1/' | sort -u | tr '\n' '|')
  tv=$(printf '%s\n' "$code" | grep -oE '(struct cor_task|cor_task_t)[[:space:]]*\*[[:space:]]*(const[[:space:]]+)?[a-z_][a-z_0-9]*' |
    sed -E 's/.*[*[:space:]]([a-z_][a-z_0-9]*)$/\1/' | sort -u | tr '\n' '|')
  lre="(^|[^a-z_0-9.>])(${lv}cor__tls_loop)->($lf)\\b|->loop->($lf)\\b"
  tre="(^|[^a-z_0-9.>])(${tv}cor__tls_task)->($tf)\\b|->task->($tf)\\b"
  # line numbers: comments blanked in place (same lines), then matched
  sed -e 's|//.*||' "$f" | awk '
    { line = $0
      while (1) {
        if (inc) { e = index(line, "*/"); if (!e) { line = ""; break }
                   line = substr(line, e + 2); inc = 0; continue }
        s = index(line, "/*"); if (!s) break
        out = out substr(line, 1, s - 1); line = substr(line, s + 2); inc = 1 }
      print out line; out = "" }' |
    grep -nE "$lre|$tre" | while IFS= read -r hit; do
      echo "check_tree: ${f}:${hit%%:*}: executor/ touches a loop's or task's field ($(printf '%s' "${hit#*:}" | grep -oE "$lre|$tre" | head -1 | sed -E 's/^[^a-z_]//')): call the loop's or task's module"
    done
done > /tmp/check_tree.$$ 2>&1
if [ -s /tmp/check_tree.$$ ]; then cat /tmp/check_tree.$$; fail=1; fi
rm -f /tmp/check_tree.$$

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

# 4. Every private header compiles on its own (it includes what it uses).
tmpc=/tmp/check_tree_hdr.$$.c
for h in core/*/*.h executor/*.h; do
  case $h in core/*) echo "#include \"${h#core/}\"" ;; *) echo "#include \"../$h\"" ;; esac > "$tmpc"
  if ! ${CC:-cc} -std=c11 -Wall -Wextra -Werror -Wno-unused-parameter -D_GNU_SOURCE \
      -DCOR_BUILDING_LIBRARY -Iinclude -Icore -fsyntax-only "$tmpc" 2>/dev/null; then
    echo "check_tree: $h does not compile on its own (include what it uses)"; fail=1
  fi
done
rm -f "$tmpc"

[ $fail -eq 0 ] && echo "check_tree: layers, executor/ through the modules, TSan atomics mapping, headers alone ok"
exit $fail
