#!/usr/bin/env python3
"""scripts/fn-diff.py A B [N]: where two callgrind runs differ, per function.

A and B are callgrind output files of the same workload (e.g. a plain and an instrumented
build, `valgrind --tool=callgrind --callgrind-out-file=A --toggle-collect=... EXE`). Prints
both totals, then the N functions (default 25) whose own (exclusive) instructions differ
most, largest difference first: A, B, B - A, name. A function inlined in one build and not
the other shows as a function only one side has, and its instructions in its callers on the
other side. Needs callgrind_annotate (valgrind).
"""
import re
import subprocess
import sys


def own_ir(path):
    """Exclusive Ir per function name (file prefix dropped; several objects summed)."""
    out = subprocess.run(
        ["callgrind_annotate", "--inclusive=no", "--auto=no", "--threshold=100", path],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    ir = {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+) \([^)]*\)\s+(\S.*)$", line)
        if m and ":" in m.group(2):
            name = m.group(2).split(":", 1)[1].split(" [")[0]
            ir[name] = ir.get(name, 0) + int(m.group(1).replace(",", ""))
    return ir


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    a, b = own_ir(sys.argv[1]), own_ir(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 25
    print(f"total {sum(a.values()):,} {sum(b.values()):,}")
    for k in sorted(set(a) | set(b), key=lambda k: -abs(b.get(k, 0) - a.get(k, 0)))[:n]:
        x, y = a.get(k, 0), b.get(k, 0)
        print(f"{x:>14,} {y:>14,} {y - x:>+13,}  {k}")


main()
