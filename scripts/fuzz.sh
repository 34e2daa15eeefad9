#!/usr/bin/env bash
# Coverage-guided fuzzing of the runtime's input parsers, on stable Rust (see FUZZING.md).
#
#   scripts/fuzz.sh [TARGET|all] [EXECS]     # default: every target, 10,000,000 executions each
#
# Builds fuzz/ (libFuzzer through libfuzzer-sys, SanitizerCoverage enabled with stable codegen
# flags), runs each target for EXECS executions on one core, starting from fuzz/corpus/TARGET/,
# then merges what it found back into fuzz/corpus/TARGET/ (minimized: only inputs that add
# coverage). A crashing input is saved as fuzz/crashes/TARGET/crash-… (libFuzzer stops that
# target at the first one). One results line per target on stdout; libFuzzer's log in
# $CARGO_TARGET_DIR/fuzz-logs/TARGET.log. Exit status 1 when any target crashed.
# FUZZ_SECONDS=N also stops each target after N seconds (libFuzzer's -max_total_time), for a
# time-boxed run on a busy machine; the results line then says how many executions it made.
# FUZZ_MAX_LEN=N caps every target's input length (default 1-4 KiB by target): the committed
# corpus is minimized to 256 bytes, and shorter inputs run several times faster.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
all=(arm_spec condition value redaction regex control_request control_file env table_text)
want=${1:-all}
execs=${2:-10000000}
if [ "$want" = all ]; then targets=("${all[@]}"); else targets=("$want"); fi
for t in "${targets[@]}"; do
    [ -f "fuzz/fuzz_targets/$t.rs" ] || { echo "fuzz.sh: unknown target '$t' (expected: ${all[*]})" >&2; exit 2; }
done
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
triple=$(rustc -vV | sed -n 's/^host: //p')
# Stable Rust: no -Zsanitizer; SanitizerCoverage through LLVM passes, as cargo-fuzz does with
# `--sanitizer none`. An explicit --target keeps these flags off build scripts.
RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks" \
    cargo build --release --locked --manifest-path fuzz/Cargo.toml --target "$triple" --bins >&2
bin=$CARGO_TARGET_DIR/$triple/release
logs=$CARGO_TARGET_DIR/fuzz-logs
mkdir -p "$logs"
failed=0
for t in "${targets[@]}"; do
    work=$CARGO_TARGET_DIR/fuzz-work/$t
    rm -rf "$work" "$work.min"
    mkdir -p "$work" "$work.min" "fuzz/corpus/$t" "fuzz/crashes/$t"
    cp -r "fuzz/corpus/$t/." "$work/"
    before=$(find "fuzz/crashes/$t" -type f | wc -l)
    extra=()
    # Longer inputs only slow the value parsers down: their structure fits in 1 KiB.
    case $t in value | condition) max_len=1024 ;; redaction) max_len=2048 ;; *) max_len=4096 ;; esac
    max_len=${FUZZ_MAX_LEN:-$max_len}
    # env: LPROBE_QUEUE warnings go to stderr on every input; libFuzzer keeps its own output.
    [ "$t" = env ] && extra+=(-close_fd_mask=2)
    run=()
    [ -n "${FUZZ_SECONDS:-}" ] && run+=(-max_total_time="$FUZZ_SECONDS")
    start=$(date +%s.%N)
    status=0
    "$bin/$t" -runs="$execs" -max_len=$max_len -timeout=10 -rss_limit_mb=1024 \
        -dict=fuzz/dict/lprobe.dict -artifact_prefix="fuzz/crashes/$t/" -print_final_stats=1 \
        "${run[@]}" "${extra[@]}" "$work" >"$logs/$t.log" 2>&1 || status=$?
    end=$(date +%s.%N)
    done_execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$t.log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$logs/$t.log" | tail -1 | cut -d' ' -f2)
    crashes=$(( $(find "fuzz/crashes/$t" -type f | wc -l) - before ))
    # Non-zero without a crash file: interrupted, or libFuzzer could not start.
    note=""
    [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ] && note=" (libFuzzer exit status $status, no crash file)"
    # Keep only inputs that add coverage (libFuzzer's merge into an empty directory).
    "$bin/$t" -merge=1 -max_len=$max_len -timeout=10 -rss_limit_mb=1024 "${extra[@]}" \
        "$work.min" "fuzz/corpus/$t" "$work" >>"$logs/$t.log" 2>&1 \
        && rm -rf "fuzz/corpus/$t" && mv "$work.min" "fuzz/corpus/$t"
    files=$(find "fuzz/corpus/$t" -type f | wc -l)
    kb=$(( $(cat "fuzz/corpus/$t"/* 2>/dev/null | wc -c) / 1024 ))
    secs=$(echo "$end - $start" | bc)
    rate=$(echo "${done_execs:-0} / ($secs + 0.001)" | bc)
    printf '%-16s execs=%s time=%.0fs exec/s=%s crashes=%s cov=%s corpus=%s files/%sKB%s\n' \
        "$t" "${done_execs:-0}" "$secs" "$rate" "$crashes" "${cov:-?}" "$files" "$kb" "$note"
    [ "$crashes" -eq 0 ] || failed=1
done
exit $failed
