#!/usr/bin/env bash
# scripts/hot-insns.sh EXE FUNCTION [MIN_IR] [-- ARGS...]
#
# The instructions of FUNCTION (a substring of its demangled name, e.g.
# `compress::compress_internal`) in EXE with the instructions callgrind counted at each,
# those run at least MIN_IR times (default 100000). Run it on a plain and an instrumented
# build side by side to see what a site costs inside a loop: a check, a spill, a reload of
# a pointer whose address escaped. Collection is inside `lprobe_suite::workload` when the
# binary has it (the suite's examples), else the whole run. LPROBE_OUTPUT=/dev/null.
#
#   scripts/hot-insns.sh target/release/examples/lprobe_suite compress::compress_internal 500000
#
# Needs valgrind and objdump.
set -euo pipefail
[[ $# -ge 2 ]] || { sed -n '2,12p' "$0" >&2; exit 2; }
exe=$1 func=$2 min=${3:-100000}
shift $(($# >= 3 ? 3 : 2))
[[ ${1:-} == -- ]] && shift
[[ -x $exe ]] || { echo "hot-insns: $exe is not an executable" >&2; exit 2; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT
toggle=()
if nm -C "$exe" 2>/dev/null | grep -q ' lprobe_suite::workload$'; then
    toggle=(--toggle-collect=lprobe_suite::workload)
fi
LPROBE_OUTPUT=/dev/null valgrind --tool=callgrind --dump-instr=yes --callgrind-out-file="$out" \
    "${toggle[@]}" "$exe" "$@" >/dev/null 2>&1
# Self cost per instruction address of the functions whose name contains FUNC (positions are
# "instr line"; a cost line after `calls=` is the call's inclusive cost, not the caller's).
awk -v want="$func" '
    # A number as callgrind writes it: decimal or 0x hexadecimal (no strtonum in mawk).
    function num(t,    v, i, d) {
        if (t !~ /^0x/) return t + 0
        v = 0
        for (i = 3; i <= length(t); i++) {
            d = index("0123456789abcdef", tolower(substr(t, i, 1))) - 1
            v = v * 16 + d
        }
        return v
    }
    function pos(tok, prev) {
        if (tok == "*") return prev
        if (tok ~ /^\+/) return prev + num(substr(tok, 2))
        if (tok ~ /^-/) return prev - num(substr(tok, 2))
        return num(tok)
    }
    /^c?fn=\(/ {
        id = $1; sub(/^c?fn=/, "", id)
        name = $0; sub(/^c?fn=\([0-9]+\) ?/, "", name)
        if (name != "") names[id] = name
        if ($0 ~ /^fn=/) cur = names[id]
        next
    }
    /^calls=/ { skip = 1; next }
    /^[0-9+*-]/ {
        addr = pos($1, addr); line = pos($2, line)
        if (skip) { skip = 0; next }
        if (index(cur, want)) cost[addr] += $3
        next
    }
    END { for (a in cost) printf "%x %d\n", a, cost[a] }
' "$out" | sort >"$out.costs"
trap 'rm -f "$out" "$out.costs"' EXIT
[[ -s $out.costs ]] || { echo "hot-insns: nothing counted in a function named like $func" >&2; exit 1; }
objdump -d --no-show-raw-insn -C "$exe" | awk -v want="$func" -v min="$min" '
    NR == FNR { c[$1] = $2; next }
    /^[0-9a-f]+ <.*>:$/ { inside = index($0, want) > 0; if (inside) print; next }
    inside && /^ *[0-9a-f]+:/ {
        a = $1; sub(/:$/, "", a); sub(/^0+/, "", a)
        n = (a in c) ? c[a] : 0
        if (n >= min) { line = $0; sub(/^ *[0-9a-f]+:[ \t]*/, "", line); printf "%10s %12d  %s\n", a, n, line }
    }
' "$out.costs" -
