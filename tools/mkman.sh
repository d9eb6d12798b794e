#!/bin/sh
# SPDX-License-Identifier: MIT
# Generates corio's manual pages from the public headers' comments:
#   corio.7              the overview (`man corio`): include/corio.h's comment,
#                        the conventions of corio/common.h, the page list
#   corio_<header>.3     one page per include/corio/<header>.h: its comment,
#                        then every declaration with the comment above it,
#                        in the header's order (option structs included)
#   <function>.3         for each public call, a one-line ".so" page that
#                        shows its header's page (`man cor_loop_new`)
#
#   sh tools/mkman.sh OUTDIR [VERSION]   writes OUTDIR/man3, OUTDIR/man7
#   sh tools/mkman.sh --list             prints the pages' relative paths
#
# POSIX sh and awk only. The headers are the one source: nothing here is
# written by hand but the page layout.
set -eu
cd "$(dirname "$0")/.."

headers=$(ls include/corio/*.h)

# The public calls of one header, one per line.
calls_of() {
  awk '
    /COR_EXTERN/ { d = ""; grab = 1 }
    grab { d = d " " $0 }
    grab && /;/ {
      grab = 0
      sub(/\(.*/, "", d)          # up to the parameter list
      n = split(d, w, /[^A-Za-z0-9_]+/)
      for (i = n; i > 0; i--) if (w[i] ~ /^cor_/) { print w[i]; break }
    }' "$1"
}

if [ "${1:-}" = "--list" ]; then
  echo man7/corio.7
  for h in $headers; do
    b=$(basename "$h" .h)
    echo "man3/corio_$b.3"
    for c in $(calls_of "$h"); do echo "man3/$c.3"; done
  done | sort -u
  exit 0
fi

out=${1:?usage: mkman.sh OUTDIR [VERSION] | --list}
version=${2:-$(sed -n 's/^#define COR_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\).*/\2/p' include/corio/common.h | paste -sd. -)}
mkdir -p "$out/man3" "$out/man7"

# roff-safe text: backslashes, leading dots and quotes.
ROFF='
function esc(s) {
  gsub(/\\/, "\\e", s)
  if (s ~ /^[.'"'"']/) s = "\\&" s
  return s
}'

# One header as a page body: comments become paragraphs, code becomes
# literal blocks. The include guard, includes and extern "C" lines go.
body_of() {
  awk "$ROFF"'
    function flush_code() {
      if (ncode > 0) {
        print ".PP"; print ".nf"; print ".ft CR"
        for (i = 1; i <= ncode; i++) print esc(code[i])
        print ".ft R"; print ".fi"
      }
      ncode = 0
    }
    function emit(s, kind) {
      if (s == "") return
      if (kind == "i") { print ".IP \\(bu 2"; print esc(s) }
      else { print ".PP"; print esc(s) }
    }
    function flush_text() {
      p = ""; kind = ""
      for (i = 1; i <= ntext; i++) {
        t = text[i]
        if (t == "") {
          if (inlit && i < ntext && text[i + 1] ~ /^  +/) continue
          if (inlit) { print ".ft R"; print ".fi"; inlit = 0 }
          emit(p, kind); p = ""; kind = ""; continue
        }
        if (t ~ /^ *(- |[0-9]+\. )/) {
          emit(p, kind); kind = "i"
          p = t; sub(/^ *(- |[0-9]+\. )/, "", p)
          continue
        }
        if (kind == "i" && t ~ /^  +/) { u = t; sub(/^ +/, "", u); p = p " " u; continue }
        if (t ~ /^  +/) {
          # an example inside a comment: kept as it is written
          emit(p, kind); p = ""; kind = ""
          if (!inlit) { print ".PP"; print ".nf"; print ".ft CR"; inlit = 1 }
          print esc(t)
          continue
        }
        if (inlit) { print ".ft R"; print ".fi"; inlit = 0 }
        if (kind == "i") { emit(p, kind); p = ""; kind = "" }
        kind = "p"; p = (p == "" ? t : p " " t)
      }
      if (inlit) { print ".ft R"; print ".fi"; inlit = 0 }
      emit(p, kind)
      ntext = 0
    }
    FNR == 1 && /SPDX-License-Identifier/ { next }
    /^#(ifndef|define|endif|include|ifdef|else)/ && !incomment {
      if ($0 ~ /^#define COR_|^#define cor_/) { flush_text(); code[++ncode] = $0 }
      next
    }
    /^extern "C"|^}$/ && !incomment { next }
    !incomment && /^[ \t]*\/\*/ {
      flush_code(); incomment = 1
      line = $0
      sub(/^[ \t]*\/\* ?/, "", line)
      if (line ~ /\*\/[ \t]*$/) { sub(/ *\*\/[ \t]*$/, "", line); incomment = 0 }
      text[++ntext] = line
      if (!incomment) flush_text()
      next
    }
    incomment {
      line = $0
      end = line ~ /\*\//
      if (line ~ /^[ \t]*\*\/[ \t]*$/) line = ""
      sub(/^[ \t]*\* ?/, "", line)
      sub(/ *\*\/.*$/, "", line)
      if (line != "" || !end) text[++ntext] = line
      if (end) { incomment = 0; flush_text() }
      next
    }
    /^[ \t]*$/ { flush_code(); next }
    { l = $0; sub(/^COR_EXTERN /, "", l); code[++ncode] = l }
    END { flush_text(); flush_code() }' "$1"
}

# The header comment's first sentence, for NAME.
summary_of() {
  awk '
    NR > 1 && /^\/\*/ && !on { on = 1 }
    on {
      l = $0; sub(/^\/\* */, "", l); sub(/^ \* ?/, "", l); sub(/ *\*\/.*/, "", l)
      if (l == "") { if (s != "") { print s; exit } else next }
      s = (s == "" ? l : s " " l)
      if (match(s, /\.( |$)/)) { s = substr(s, 1, RSTART - 1); sub(/^corio: */, "", s); print s; exit }
      if ($0 ~ /\*\//) { sub(/^corio: */, "", s); print s; exit }
    }' "$1"
}

date=$(date -u +%Y-%m-%d)
for h in $headers; do
  b=$(basename "$h" .h)
  up=$(echo "corio_$b" | tr a-z A-Z)
  page="$out/man3/corio_$b.3"
  {
    echo ".TH $up 3 \"$date\" \"corio $version\" \"corio manual\""
    echo ".SH NAME"
    echo "corio/$b.h \\- $(summary_of "$h" | sed 's/\\/\\e/g')"
    echo ".SH SYNOPSIS"
    echo ".nf"
    echo ".B #include <corio.h>"
    echo ".PP"
    printf '%s\n' 'Link with \fIpkg-config \-\-libs corio\fR.'
    echo ".fi"
    echo ".SH CALLS"
    calls_of "$h" | paste -sd' ' - | sed 's/ /, /g'
    echo ".SH DESCRIPTION"
    body_of "$h"
    echo ".SH SEE ALSO"
    echo ".BR corio (7)"
  } > "$page"
  for c in $(calls_of "$h"); do
    echo ".so man3/corio_$b.3" > "$out/man3/$c.3"
  done
done

{
  echo ".TH CORIO 7 \"$date\" \"corio $version\" \"corio manual\""
  echo ".SH NAME"
  echo "corio \\- asyncio's model of programming in C, one event loop per core"
  echo ".SH SYNOPSIS"
  echo ".nf"
  echo ".B #include <corio.h>"
  printf '%s\n' 'cc prog.c $(pkg-config \-\-cflags \-\-libs corio)'
  echo ".fi"
  echo ".SH DESCRIPTION"
  body_of include/corio.h
  echo ".SH CONVENTIONS"
  body_of include/corio/common.h | sed -n '1,/^\.ft R$/p' | sed '$d' | sed '/^\.ft CR$/d; /^\.nf$/d; /^\.fi$/d'
  echo ".SH PAGES"
  for h in $headers; do
    b=$(basename "$h" .h)
    echo ".TP"
    echo ".BR corio_$b (3)"
    summary_of "$h" | sed 's/\\/\\e/g'
  done
  echo ".SH FILES"
  echo "The README, ARCHITECTURE.md (how the parts fit), LICENSE and"
  echo "CHANGELOG.md are installed in the documentation directory"
  printf '%s\n' '(\fIshare/doc/corio\fR under the installation prefix).'
} > "$out/man7/corio.7"
