#!/usr/bin/env bash
# scripts/inline-diff.sh DIR CRATE [CARGO ARGS…]
#
# Where do a crate's sites cost inlining? Builds the package in DIR twice in release, plain and
# with `cargo lprobe build` (options from $LPROBE_ARGS, e.g. "--lines all"), both with
# `RUSTFLAGS="-C remark=inline"` (the instrumented copy, target/lprobe/src, is rebuilt with
# plain cargo for that: lprobe reads cargo's messages and keeps LLVM's remarks to itself), and
# prints the calls LLVM inlines in the plain build but not in the instrumented one, with the
# inline cost and threshold of each (a callee with one call site left gets about -15,000: the
# bonus a second call takes away), or `unavailable` where the callee's body is not in the
# caller's codegen unit. Only pairs where the callee or the caller is in CRATE (a
# path prefix: `lz4_flex`, `serde_json::de`).
#
#   scripts/inline-diff.sh /tmp/bench-lprobe/suite/src/lz4_flex-0.14.2 lz4_flex --example lprobe_suite
#
# Builds go to $INLINE_DIFF_DIR (default /tmp/inline-diff); lprobe is $LPROBE_BIN_DIR's
# (default: this checkout's target/release). Needs python3 and c++filt.
set -euo pipefail
[[ $# -ge 2 ]] || {
    sed -n '2,15p' "$0" >&2
    exit 2
}
dir=$(cd "$1" && pwd)
crate=$2
shift 2
work=${INLINE_DIFF_DIR:-/tmp/inline-diff}
mkdir -p "$work"
# This checkout's lprobe, not one installed on PATH (which may be another version).
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${LPROBE_BIN_DIR:-$root/target/release}
[[ -x $bin/cargo-lprobe ]] || (cd "$root" && cargo build --release -p cargo-lprobe --quiet)
export RUSTFLAGS="${RUSTFLAGS:-} -C remark=inline"

echo "plain build (remarks to $work/plain.rem)" >&2
(cd "$dir" && CARGO_TARGET_DIR="$work/plain" cargo build --release "$@") >"$work/plain.rem" 2>&1
echo "instrumented build" >&2
# shellcheck disable=SC2086 # LPROBE_ARGS is a list of options
(cd "$dir" && CARGO_TARGET_DIR="$work/lprobe" "$bin/cargo-lprobe" lprobe build --release ${LPROBE_ARGS:-} "$@") >"$work/lprobe.log" 2>&1 ||
    { tail -20 "$work/lprobe.log" >&2; exit 1; }
echo "instrumented copy rebuilt (remarks to $work/lprobe.rem)" >&2
(cd "$work/lprobe/lprobe/src" && CARGO_TARGET_DIR="$work/lprobe-remarks" cargo build --release "$@") >"$work/lprobe.rem" 2>&1

python3 - "$work/plain.rem" "$work/lprobe.rem" "$crate" <<'PY'
import collections, re, subprocess, sys

REMARK = re.compile(
    r"inline \((success|missed)\): '([^']+)' (?:not )?inlined into '([^']+)'"
    r"(?: because (.*?))?.*?\(cost=([-\d]+|never|always)(?:, threshold=([-\d]+))?")
# A call LLVM cannot even weigh: the callee's body is in another codegen unit (rustc
# partitions by module, and instrumented modules are bigger), or it is only declared.
UNAVAILABLE = re.compile(
    r"inline \((missed)\): (\S+) will not be inlined into (\S+) because (its definition is unavailable)")


def parse(line):
    m = REMARK.search(line)
    if m:
        return m.groups()
    m = UNAVAILABLE.search(line)
    if m:
        return m.groups() + ("unavailable", None)
    return None


def load(path):
    rows = [r for r in map(parse, open(path, errors="replace")) if r]
    names = sorted({r[1] for r in rows} | {r[2] for r in rows})
    out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True)
    plain = {n: re.sub(r"::h[0-9a-f]{16}$", "", d) for n, d in zip(names, out.stdout.splitlines())}
    pairs = collections.defaultdict(list)
    for ok, callee, caller, why, cost, threshold in rows:
        pairs[(plain[callee], plain[caller])].append((ok == "success", cost, threshold, why or ""))
    return pairs


def mentions(name, crate):
    return name.startswith(crate) or name.startswith("<" + crate) or (" as " + crate) in name


plain, instrumented = load(sys.argv[1]), load(sys.argv[2])
crate = sys.argv[3]
lost = []
for key in sorted(set(plain) & set(instrumented)):
    callee, caller = key
    if "__lprobe" in callee or not (mentions(callee, crate) or mentions(caller, crate)):
        continue
    won = lambda rows: sum(1 for r in rows if r[0])
    if won(plain[key]) > won(instrumented[key]):
        lost.append((callee, caller, plain[key], instrumented[key]))
print(f"{len(lost)} calls inlined in the plain build and not (as often) instrumented:")
for callee, caller, p, i in lost:
    costs = lambda rows: " ".join(f"{c}/{t}" if t else c for _, c, t, _ in rows[:3])
    print(f"  {callee}\n    into {caller}\n    plain {costs(p)}   instrumented {costs(i)}")
PY
