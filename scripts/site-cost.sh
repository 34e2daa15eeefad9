#!/usr/bin/env bash
# scripts/site-cost.sh [LPROBE OPTIONS…]
#
# What an entry site costs LLVM's inliner, per function, on fixtures/site-cost (small
# functions of common shapes, each called from two places): builds the fixture plain and with
# `cargo lprobe build --entry all` (plus the options given), both with `-C remark=inline`, and
# prints each function's inline cost and threshold as LLVM weighed it in its callers, plain
# and instrumented. A one-block function gets half its threshold again (375 against 250),
# which any branch at its entry ends. rustc's MIR inliner is turned off for both builds
# (`-Zinline-mir=no`, through RUSTC_BOOTSTRAP=1: a measuring aid, never for a real build), or
# it would inline these functions before LLVM sees them. Use it to compare site shapes:
# change the rewriter, rebuild lprobe, run again.
#
#   scripts/site-cost.sh                # entry sites as the default build writes them
#   scripts/site-cost.sh --lines all
#
# Builds go to $SITE_COST_DIR (default /tmp/site-cost). Needs python3 and c++filt.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${SITE_COST_DIR:-/tmp/site-cost}
bin=${LPROBE_BIN_DIR:-$root/target/release}
[[ -x $bin/cargo-lprobe ]] || (cd "$root" && cargo build --release -p cargo-lprobe --quiet)
mkdir -p "$work"
rm -rf "$work/src"
cp -r "$root/fixtures/site-cost" "$work/src"
flags="-C remark=inline -Zinline-mir=no"

(cd "$work/src" && RUSTC_BOOTSTRAP=1 RUSTFLAGS="$flags" CARGO_TARGET_DIR="$work/plain" \
    cargo build --release) >"$work/plain.rem" 2>&1 || { tail -20 "$work/plain.rem" >&2; exit 1; }
# The instrumented copy is written by lprobe, then rebuilt with plain cargo (lprobe keeps
# LLVM's remarks to itself).
(cd "$work/src" && CARGO_TARGET_DIR="$work/lprobe" "$bin/cargo-lprobe" lprobe build --release --entry all "$@") \
    >"$work/lprobe.log" 2>&1 || { tail -20 "$work/lprobe.log" >&2; exit 1; }
(cd "$work/lprobe/lprobe/src" && RUSTC_BOOTSTRAP=1 RUSTFLAGS="$flags" CARGO_TARGET_DIR="$work/remarks" \
    cargo build --release) >"$work/lprobe.rem" 2>&1 || { tail -20 "$work/lprobe.rem" >&2; exit 1; }

python3 - "$work/plain.rem" "$work/lprobe.rem" <<'PY'
import collections, re, subprocess, sys

REMARK = re.compile(
    r"inline \((?:success|missed)\): '([^']+)' (?:not )?inlined into '([^']+)'"
    r".*?\(cost=(-?\d+), threshold=(-?\d+)\)")


def load(path):
    rows = []
    for line in open(path, errors="replace"):
        m = REMARK.search(line)
        if m:
            rows.append(m.groups())
    names = sorted({n for r in rows for n in r[:2]})
    out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True)
    plain = {n: re.sub(r"\[[0-9a-f]+\]|::h[0-9a-f]{16}$", "", d)
             for n, d in zip(names, out.stdout.split("\n"))}
    costs = collections.defaultdict(list)
    for callee, caller, cost, threshold in rows:
        callee, caller = plain[callee].replace("<", "").replace(">", ""), plain[caller]
        # The fixture's functions as its two callers weigh them.
        if callee.startswith("site_cost::") and caller.split("::")[-1] in ("first", "second"):
            costs[callee.removeprefix("site_cost::")].append(f"{cost}/{threshold}")
    return costs


def weighed(costs):
    """The cost at a call that is not the function's last (that one gets about -15000)."""
    kept = [c for c in costs if int(c.split("/")[0]) > -5000]
    return (kept or costs or ["-"])[0]


plain, lprobe = load(sys.argv[1]), load(sys.argv[2])
print(f"{'function':<22} {'plain':>10} {'instrumented':>13}   (cost/threshold)")
for name in sorted(set(plain) | set(lprobe)):
    print(f"{name:<22} {weighed(plain.get(name, [])):>10} {weighed(lprobe.get(name, [])):>13}")
PY
