#!/bin/sh
# SPDX-License-Identifier: MIT
# What `make bench` runs: every line of perf/suite.txt, then every workload
# `perf/bench list` shows that the suite does not name (once, with its
# defaults); prints each figure as it comes, then a table. Exits 1 if any run
# failed or the suite names a workload that is not registered; a workload
# that cannot run here (exit 77: a peer library or a kernel feature is
# missing) is reported as SKIPPED and does not fail the suite.
#
#   REPEAT=3 sh perf/run_all.sh   runs each line 3 times; the table shows the
#                                 run with the median NS_PER_OP
#   BENCH=path SUITE=path         another binary or suite file
#   RUN_TIMEOUT=300               seconds before a run is killed
set -u
cd "$(dirname "$0")/.." || exit 1
BENCH=${BENCH:-perf/bench}
SUITE=${SUITE:-perf/suite.txt}
REPEAT=${REPEAT:-1}
RUN_TIMEOUT=${RUN_TIMEOUT:-300}

names=$("$BENCH" list | awk '{print $1}') || { echo "run_all: $BENCH list failed" >&2; exit 1; }
[ -n "$names" ] || { echo "run_all: no workloads registered" >&2; exit 1; }

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
fail=0

# The run list: suite lines (comments and blank lines dropped), then the
# registered workloads the suite does not name.
: >"$tmp/runs"
if [ -f "$SUITE" ]; then
  sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e '/^[[:space:]]*$/d' "$SUITE" >"$tmp/runs"
fi
while read -r name _; do
  if ! printf '%s\n' "$names" | grep -qx "$name"; then
    echo "run_all: $SUITE names '$name', which is not registered" >&2
    fail=1
  fi
done <"$tmp/runs"
for name in $names; do
  awk '{print $1}' "$tmp/runs" | grep -qx "$name" || echo "$name" >>"$tmp/runs"
done

# Figures from a machine that is busy elsewhere are not figures: on 2 cores
# one busy process halves what the cross-thread workloads can get. Warn when
# the CPUs were not mostly idle just before the suite.
busy_pct() {
  [ -r /proc/stat ] || { echo 0; return; }
  a=$(head -1 /proc/stat); sleep 1; b=$(head -1 /proc/stat)
  printf '%s\n%s\n' "$a" "$b" | awk '
    { t = 0; for (i = 2; i <= NF; i++) t += $i; tot[NR] = t; idle[NR] = $5 + $6 }
    END { d = tot[2] - tot[1]; print (d > 0 ? int(100 - 100 * (idle[2] - idle[1]) / d) : 0) }'
}
busy=$(busy_pct)
if [ "$busy" -gt 10 ]; then
  echo "run_all: WARNING: CPUs ${busy}% busy before the run: figures will be off" >&2
fi

to=""
command -v timeout >/dev/null 2>&1 && to="timeout -k 5 $RUN_TIMEOUT"

: >"$tmp/table"
while read -r line; do
  name=${line%% *}
  printf '%s\n' "$names" | grep -qx "$name" || continue
  : >"$tmp/lines"
  i=0
  while [ "$i" -lt "$REPEAT" ]; do
    i=$((i + 1))
    # shellcheck disable=SC2086 # word splitting of the run line is intended
    out=$($to "$BENCH" $line timeout="$RUN_TIMEOUT" 2>"$tmp/err")
    rc=$?
    fig=$(printf '%s\n' "$out" | grep '^WORKLOAD=')
    if [ "$rc" -eq 77 ]; then
      # the workload cannot run here (bench_skip): said once, not a failure
      echo "SKIPPED: perf/bench $line: $(sed -n 's/^bench: [^:]*: SKIPPED: //p' "$tmp/err")"
      break
    fi
    if [ "$rc" -ne 0 ] || [ -z "$fig" ]; then
      echo "FAILED: perf/bench $line (exit $rc)"
      sed 's/^/  /' "$tmp/err"
      fail=1
      continue
    fi
    cat "$tmp/err" >&2
    echo "$fig"
    echo "$fig" >>"$tmp/lines"
  done
  [ -s "$tmp/lines" ] || continue
  # The run with the median NS_PER_OP (the lower middle for an even count).
  awk '{for (i = 1; i <= NF; i++) if ($i ~ /^NS_PER_OP=/) {sub(/^NS_PER_OP=/, "", $i); print $i}}' \
    "$tmp/lines" | paste - "$tmp/lines" | sort -g -k1,1 |
    awk -v n="$(wc -l <"$tmp/lines")" 'NR == int((n + 1) / 2) {sub(/^[^\t]*\t/, ""); print}' \
    >>"$tmp/table"
done <"$tmp/runs"

echo
[ "$REPEAT" -gt 1 ] && echo "median of $REPEAT runs each"
[ "$busy" -gt 10 ] && echo "WARNING: CPUs were ${busy}% busy before the run"
awk '
  BEGIN { printf "%-24s %-26s %12s  %s\n", "workload", "params", "ns/op", "extras" }
  {
    w = p = ns = x = ""
    for (i = 1; i <= NF; i++) {
      split($i, kv, "=")
      k = kv[1]; v = substr($i, length(k) + 2)
      if (k == "WORKLOAD") w = v
      else if (k == "PARAMS") p = v
      else if (k == "NS_PER_OP") ns = v
      else if (k != "OPS" && k != "SECONDS") x = x (x == "" ? "" : " ") $i
    }
    printf "%-24s %-26s %12s  %s\n", w, p, ns, x
  }' "$tmp/table"

[ "$fail" -eq 0 ] || { echo "run_all: some runs FAILED" >&2; exit 1; }
