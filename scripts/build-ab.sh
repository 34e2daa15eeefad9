#!/usr/bin/env bash
# scripts/build-ab.sh DIR OLD_BIN NEW_BIN [REPS] [entry|all]
#
# Clean-build time of a library crate, plain against two lprobe binaries (directories holding
# cargo-lprobe and lprobe), alternated: plain, old, new, REPS times (default 5), after one
# unmeasured round. Each binary has its own LPROBE_CACHE_DIR (under $BUILD_AB_DIR): two tool
# versions sharing one machine cache would each find the other's repair outcome stale and
# repair again. Prints the medians and the ratios to plain.
#
#   scripts/build-ab.sh /tmp/bench-lprobe/suite/src/regex-syntax-0.8.12 /tmp/old-bin target/release 3
#
# Builds are `cargo [lprobe] build --release --locked --offline --lib` in $BUILD_AB_DIR/t
# (default /tmp/build-ab), emptied before each.
set -euo pipefail
[[ $# -ge 3 ]] || {
    sed -n '2,13p' "$0" >&2
    exit 2
}
dir=$(cd "$1" && pwd)
old=$(cd "$2" && pwd)
new=$(cd "$3" && pwd)
reps=${4:-5}
mode=${5:-entry}
work=${BUILD_AB_DIR:-/tmp/build-ab}
lines=()
[[ $mode == all ]] && lines=(--lines all)
mkdir -p "$work"

# one VARIANT: wall seconds of one clean build of that variant.
one() {
    local v=$1 td=$work/t
    rm -rf "$td"
    local cmd=(cargo build --release)
    local env=()
    case $v in
        old) env=(PATH="$old:$PATH" LPROBE_CACHE_DIR="$work/cache-old") ;;
        new) env=(PATH="$new:$PATH" LPROBE_CACHE_DIR="$work/cache-new") ;;
    esac
    [[ $v == plain ]] || cmd=(cargo lprobe build --release "${lines[@]}")
    (cd "$dir" && env "${env[@]}" CARGO_TARGET_DIR="$td" /usr/bin/time -f %e -o "$work/time" \
        "${cmd[@]}" --locked --offline --lib -q >/dev/null 2>"$work/err") ||
        { tail -5 "$work/err" >&2; exit 1; }
    cat "$work/time"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A times
for r in $(seq 0 "$reps"); do
    for v in plain old new; do
        t=$(one "$v")
        [[ $r == 0 ]] || times[$v]+="$t"$'\n'
    done
done
p=$(median <<<"${times[plain]}")
o=$(median <<<"${times[old]}")
n=$(median <<<"${times[new]}")
awk -v name="$(basename "$dir")" -v mode="$mode" -v p="$p" -v o="$o" -v n="$n" 'BEGIN {
    printf "%s %s: plain %.2f s, old %.2f s (%.3fx), new %.2f s (%.3fx)\n", name, mode, p, o, o / p, n, n / p
}'
