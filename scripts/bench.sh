#!/usr/bin/env bash
# lprobe benchmarks. Usage: scripts/bench.sh [dormant|disarm|armed|build|build-ir|arming|memory|http|corpus|hot|suite|all]...
#
#   dormant  bench-mix: plain vs `cargo lprobe build` (entry sites) vs `--lines all`: callgrind Ir
#            per round (Ir at 2N rounds minus Ir at N, collected only inside the workload function),
#            thread-CPU time per round (median of alternating runs), checksums, vectorization.
#   disarm   bench-mix `phases`: dormant -> log probe armed on a hot site -> disarmed; Ir and CPU
#            time per round of each phase (after disarm must equal before arm).
#   armed    bench-armed: ns per armed hit on the application thread (count, log, snapshot, false
#            condition, --duration, count with 2 threads) = (armed - dormant) thread-CPU ns per call.
#   build    clean and no-op build time and binary size, plain vs entry vs every-line, on
#            bench-mix, demo-app and (if the corpus tool is there) two corpus crates.
#   build-ir the same clean builds (plain, entry, every line) run under callgrind with every
#            child process traced: the build's instructions, summed (stable; not part of `all`:
#            ~50x slower than the builds themselves).
#   hot      call-heavy real code with a profile-driven skip list: regex-syntax's libtest benches
#            built plain, with entry sites, and with entry sites minus the N most-called
#            functions that `lprobe hot` counted in a run of the instrumented benches (N in
#            BENCH_HOT_TOPS, default "8 20 60"); callgrind Ir per parse (parse_medium2,
#            parse_simple1) and libtest ns/iter of all benches. Not part of `all`.
#   arming   latency from `lprobe arm` (socket) / a control-file write to the first record.
#   memory   VmRSS of demo-app after start-up: plain vs instrumented (both densities).
#   http     under load: fixtures/http-service (tokio + axum) driven by wrk over loopback, plain
#            vs every-line dormant vs armed (a log and a count probe in the request path):
#            requests/s, p99 latency, server CPU per request, failed requests (medians of
#            alternating runs), and callgrind instructions per request. Needs wrk. Not part of
#            `all`. Knobs: BENCH_HTTP_REPS (default 5), BENCH_HTTP_DURATION (s, default 10),
#            BENCH_HTTP_WARMUP (s, default 2), BENCH_HTTP_CG_DURATION (s, default 5).
#   suite    the broad dormant-cost suite, one row per benchmark: bench-mix, workload-mix (an
#            everyday program), corpus crates each driven by a fixed workload
#            (fixtures/suite/<crate>.rs, built as an example of the crate itself) and
#            http-service (Ir per request over a fixed request count). Per benchmark, plain vs
#            entry vs every line: callgrind Ir of the workload (dormant: LPROBE_OUTPUT=/dev/null),
#            clean build wall time, stripped binary size, stdout equal; geomean, worst, targets;
#            and the plain binary with one idle thread preloaded (scripts/idle-thread.c, when a C
#            compiler is there): what of the entry ratio is the runtime's thread, not its sites.
#            BENCH_KEEP_CG=1 keeps each callgrind file ($BENCH_DIR/cg/<benchmark>-<variant>.out)
#            for scripts/fn-diff.py (per function, plain vs instrumented).
#            Held-out crates (HELDOUT_CRATES: crates.io crates the rewriter was never tuned on,
#            pinned in fixtures/suite/heldout.tsv and fixtures/suite/locks/) are rows too.
#            Not part of `all`. Knobs: BENCH_SUITE (benchmarks, default "bench-mix workload-mix
#            <SUITE_CRATES> <HELDOUT_CRATES> http-service"), BENCH_SUITE_BUILD_REPS (clean builds per variant,
#            median; default 1), BENCH_SUITE_HTTP_REQS (default 2000), BENCH_SUITE_HTTP_RUNS
#            (callgrind runs per variant, default 2). Needs curl for http-service.
#
# Results (markdown) go to stdout and to $BENCH_DIR/results/<name>.md. Builds go to $BENCH_DIR
# (default /tmp/bench-lprobe), never into the repository. Binaries: $LPROBE_BIN_DIR (default
# target/release of this repo; built with `cargo build --release -p cargo-lprobe` if missing).
# Knobs: BENCH_REPS (alternating runs, default 7), BENCH_CORPUS (corpus dir, default
# $BENCH_DIR/corpus), BENCH_CORPUS_CRATES (default "either humantime").
set -euo pipefail
root=${BENCH_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
W=${BENCH_DIR:-/tmp/bench-lprobe}
REPS=${BENCH_REPS:-7}
mkdir -p "$W/results"
bin=${LPROBE_BIN_DIR:-$root/target/release}
if [[ ! -x $bin/cargo-lprobe || ! -x $bin/lprobe ]]; then
    (cd "$root" && cargo build --release -p cargo-lprobe)
fi
# Snapshot the binaries so a concurrent rebuild of target/release cannot change them mid-run.
mkdir -p "$W/bin"
cp "$bin/cargo-lprobe" "$bin/lprobe" "$W/bin/"
# The checkout's commit when the binaries were copied (a long run must not report a later one).
bin_commit=$(git -C "$bin" log -1 --format='%h' 2>/dev/null || true)
export PATH="$W/bin:$PATH"
LPROBE="$W/bin/lprobe"

log() { echo "bench: $*" >&2; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b == 0) print "nan"; else printf "%.3f", a / b}'; }
now_ns() { date +%s%N; }
machine() {
    echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(rustc --version), load average at start $(cut -d' ' -f1-3 /proc/loadavg)."
}

# build_variant FIXTURE_DIR NAME MODE [extra cargo args]: MODE plain|entry|all; prints the binary path.
build_variant() {
    local dir=$1 name=$2 mode=$3
    shift 3
    local td="$W/t/$name-$mode"
    case $mode in
    plain) (cd "$dir" && CARGO_TARGET_DIR=$td cargo build --release --quiet "$@") >&2
        echo "$td/release/$name" ;;
    entry) (cd "$dir" && CARGO_TARGET_DIR=$td cargo-lprobe lprobe build --release --quiet "$@") >&2
        echo "$td/lprobe/release/$name" ;;
    all) (cd "$dir" && CARGO_TARGET_DIR=$td cargo-lprobe lprobe build --release --lines all --quiet "$@") >&2
        echo "$td/lprobe/release/$name" ;;
    esac
}

# callgrind_ir TOGGLE_FN BINARY ARGS...: instructions executed inside TOGGLE_FN (inclusive).
callgrind_ir() {
    local fn=$1
    shift
    LPROBE_OUTPUT=/dev/null valgrind --tool=callgrind --callgrind-out-file="${CG_OUT:-/dev/null}" \
        --toggle-collect="$fn" "$@" 2>&1 >/dev/null | sed -n 's/.*Collected : \([0-9]*\).*/\1/p' | tail -1
}

# wait_socket PID: until the process's control socket answers.
wait_socket() {
    for _ in $(seq 200); do
        "$LPROBE" status --pid "$1" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    log "no socket for pid $1"
    return 1
}

# wait_file PATH [TIMEOUT_S]
wait_file() {
    local deadline=$((SECONDS + ${2:-600}))
    while [[ ! -e $1 ]]; do
        ((SECONDS < deadline)) || { log "timeout waiting for $1"; return 1; }
        sleep 0.02
    done
}

# ---------------------------------------------------------------------------------------------
bench_dormant() {
    local fx="$root/fixtures/bench-mix" v b
    declare -A BIN
    for v in plain entry all; do
        log "building bench-mix ($v)"
        BIN[$v]=$(build_variant "$fx" bench-mix $v)
    done
    # Checksums must be identical.
    local ref same=yes
    ref=$("${BIN[plain]}" all 3 2>/dev/null)
    for v in entry all; do
        [[ $(LPROBE_OUTPUT=/dev/null "${BIN[$v]}" all 3 2>/dev/null) == "$ref" ]] || same=no
    done
    # Callgrind: Ir per round with fixed costs removed.
    declare -A IR
    local w n1 n2 a c
    for w in mix vector; do
        case $w in mix) n1=10 n2=20 ;; vector) n1=4 n2=8 ;; esac
        for v in plain entry all; do
            log "callgrind $w $v"
            a=$(callgrind_ir "bench_mix::workload_$w" "${BIN[$v]}" "$w" $n1)
            c=$(callgrind_ir "bench_mix::workload_$w" "${BIN[$v]}" "$w" $n2)
            IR[$w-$v]=$(((c - a) / (n2 - n1)))
            if [[ $v != plain ]]; then # the same without the runtime's threads: generated code only
                a=$(LPROBE_DISABLE=1 callgrind_ir "bench_mix::workload_$w" "${BIN[$v]}" "$w" $n1)
                c=$(LPROBE_DISABLE=1 callgrind_ir "bench_mix::workload_$w" "${BIN[$v]}" "$w" $n2)
                IR[$w-$v-dis]=$(((c - a) / (n2 - n1)))
            fi
        done
    done
    # Thread-CPU time per round, alternating builds, median of REPS.
    declare -A CPU
    local r rounds
    for w in mix vector; do
        case $w in mix) rounds=400 ;; vector) rounds=100 ;; esac
        for v in plain entry all; do : >"$W/cpu-$w-$v"; done
        for r in $(seq "$REPS"); do
            for v in plain entry all; do
                LPROBE_OUTPUT=/dev/null "${BIN[$v]}" "$w" $rounds 2>&1 >/dev/null |
                    sed -n 's/.*cpu_ns_per_round=\([0-9]*\).*/\1/p' >>"$W/cpu-$w-$v"
            done
        done
        for v in plain entry all; do CPU[$w-$v]=$(median <"$W/cpu-$w-$v"); done
    done
    # Vectorization: SIMD instructions in the vector workload (transform_sum is inlined into it).
    declare -A SIMD
    for v in plain entry all; do
        SIMD[$v]=$(objdump -d -C --no-show-raw-insn "${BIN[$v]}" |
            awk '/^[0-9a-f]+ <.*(workload_vector|transform_sum).*>:$/ {on=1; next} /^$/ {on=0} on' |
            grep -cE '\b(v?pmulld|v?paddq|v?pmuludq|v?pxor|v?psrld|v?pand|v?pmovzx[a-z]*)\b' || true)
    done
    {
        echo "## Dormant overhead (bench-mix)"
        echo
        machine
        echo
        echo "Checksums identical across plain / entry / every-line builds: **$same**."
        echo
        echo "| workload | plain Ir/round | entry Ir/round | every-line Ir/round | **entry Ir ratio** | **every-line Ir ratio** | entry / every-line Ir ratio with LPROBE_DISABLE=1 | plain CPU ns/round | entry CPU ratio | every-line CPU ratio |"
        echo "|---|---|---|---|---|---|---|---|---|---|"
        for w in mix vector; do
            echo "| $w | ${IR[$w-plain]} | ${IR[$w-entry]} | ${IR[$w-all]} | **$(ratio "${IR[$w-entry]}" "${IR[$w-plain]}")** | **$(ratio "${IR[$w-all]}" "${IR[$w-plain]}")** | $(ratio "${IR[$w-entry-dis]}" "${IR[$w-plain]}") / $(ratio "${IR[$w-all-dis]}" "${IR[$w-plain]}") | ${CPU[$w-plain]} | $(ratio "${CPU[$w-entry]}" "${CPU[$w-plain]}") | $(ratio "${CPU[$w-all]}" "${CPU[$w-plain]}") |"
        done
        echo
        echo "LPROBE_DISABLE=1 starts no runtime thread: the program stays single-threaded, so glibc malloc keeps its single-thread fast path. The difference between the two columns is what the runtime's threads cost the program's own allocations (see the analysis in BENCHMARKS.md)."
        echo
        echo "SIMD instructions (pmulld/paddq/pmuludq/pxor/psrld/pand/pmovzx, SSE or AVX forms) in workload_vector/transform_sum: plain ${SIMD[plain]}, entry ${SIMD[entry]}, every-line ${SIMD[all]}."
        echo
        echo "Ir: callgrind \`--toggle-collect=bench_mix::workload_<w>\` (only instructions inside the workload, inclusive), (Ir(2N) - Ir(N)) / N with N = 10 (mix) / 4 (vector). CPU: per-thread CPU time (/proc/thread-self/schedstat) per round, median of $REPS alternating runs of 400 (mix) / 100 (vector) rounds."
    } | tee "$W/results/dormant.md"
}

# ---------------------------------------------------------------------------------------------
# One `phases` run: warm-up (phase 0) -> dormant (1) -> armed (2) -> disarmed (3).
# $1: "callgrind" (prints "PHASE IR") or "native" (prints "PHASE CPU_NS_PER_ROUND").
phases_run() {
    local how=$1 exe=$2 site=$3 rounds=$4 d="$W/phases-$1"
    rm -rf "$d"
    mkdir -p "$d"
    local pid
    if [[ $how == callgrind ]]; then
        LPROBE_OUTPUT=/dev/null valgrind --tool=callgrind --callgrind-out-file="$d/cg.out" \
            --toggle-collect=bench_mix::workload_mix "$exe" phases "$rounds" "$d" >/dev/null 2>"$d/err" &
    else
        LPROBE_OUTPUT=/dev/null "$exe" phases "$rounds" "$d" >/dev/null 2>"$d/err" &
    fi
    pid=$!
    dump() { [[ $how == callgrind ]] && callgrind_control --dump="phase$1" "$pid" >/dev/null 2>&1 || true; }
    wait_file "$d/done0"
    wait_socket "$pid"
    dump 0
    touch "$d/go1"
    wait_file "$d/done1"
    dump 1
    "$LPROBE" arm --pid "$pid" "$site" --log 'hot {a} {b}' >/dev/null
    touch "$d/go2"
    wait_file "$d/done2"
    dump 2
    "$LPROBE" status --pid "$pid" --json >"$d/status.json"
    "$LPROBE" disarm --pid "$pid" --all >/dev/null
    touch "$d/go3"
    wait "$pid"
    if [[ $how == callgrind ]]; then
        local f
        for f in "$d"/cg.out*; do
            # PHASE TOTAL_IR WORKLOAD_MIX_SELF_IR MALLOC_FAMILY_SELF_IR
            echo "$(sed -n 's/^desc: Trigger: dump phase\([0-9]\)/\1/p;s/^desc: Trigger: Program termination/3/p' "$f") $(sed -n 's/^summary: //p' "$f") $(
                callgrind_annotate --inclusive=no --auto=no --threshold=100 "$f" 2>/dev/null | awk '
                    /^ *[0-9,]+ / && !/100\.0%/ { n = $1; gsub(",", "", n)
                        if ($0 ~ /:bench_mix::workload_mix /) own += n
                        if ($0 ~ /malloc\.c:/) m += n }
                    END { print own + 0, m + 0 }')"
        done
    else
        sed -n 's/^phase\([0-9]\) .*cpu_ns_per_round=\([0-9]*\).*/\1 \2/p' "$d/err"
    fi
}

bench_disarm() {
    local fx="$root/fixtures/bench-mix" exe line site
    exe=$(build_variant "$fx" bench-mix all)
    line=$(grep -n 'wrapping_mul(0x9E37_79B9_7F4A_7C15)' "$fx/src/main.rs" | cut -d: -f1)
    site="src/main.rs:$line"
    log "disarm: callgrind phases (site $site, in mix(): ~2,400 hits per round)"
    local cg n=10
    cg=$(phases_run callgrind "$exe" "$site" $n)
    echo "$cg" >"$W/disarm-callgrind.txt"
    local ir1 ir2 ir3 hits
    ir1=$(awk '$1==1 {print $2}' <<<"$cg")
    ir2=$(awk '$1==2 {print $2}' <<<"$cg")
    ir3=$(awk '$1==3 {print $2}' <<<"$cg")
    local own1 own3 mal1 mal3
    read -r own1 mal1 < <(awk '$1==1 {print $3, $4}' <<<"$cg")
    read -r own3 mal3 < <(awk '$1==3 {print $3, $4}' <<<"$cg")
    hits=$(jq '.[0].probes[0].hits' "$W/phases-callgrind/status.json")
    log "disarm: native phases x$REPS"
    local r out p1=() p2=() p3=()
    for r in $(seq "$REPS"); do
        out=$(phases_run native "$exe" "$site" 300)
        p1+=("$(awk '$1==1 {print $2}' <<<"$out")")
        p2+=("$(awk '$1==2 {print $2}' <<<"$out")")
        p3+=("$(awk '$1==3 {print $2}' <<<"$out")")
    done
    local m1 m2 m3
    m1=$(printf '%s\n' "${p1[@]}" | median)
    m2=$(printf '%s\n' "${p2[@]}" | median)
    m3=$(printf '%s\n' "${p3[@]}" | median)
    {
        echo "## After disarm, the cost returns to dormant (bench-mix \`phases\`, every-line build)"
        echo
        echo "A log probe (\`--log 'hot {a} {b}'\`, default rate 100/s: most hits are rate-limited) is armed through the socket on \`$site\` (inside \`mix()\`, ~2,400 hits per round) after the dormant phase and disarmed (\`lprobe disarm --all\`) after the armed phase. A warm-up phase runs first."
        echo
        echo "| | dormant | armed | after disarm | after disarm / dormant |"
        echo "|---|---|---|---|---|"
        echo "| callgrind Ir per round ($n rounds per phase; $hits hits while armed) | $((ir1 / n)) | $((ir2 / n)) | $((ir3 / n)) | $(ratio "$ir3" "$ir1") |"
        echo "| thread CPU ns per round (300 rounds per phase, median of $REPS runs) | $m1 | $m2 | $m3 | $(ratio "$m3" "$m1") |"
        echo
        echo "Of the callgrind totals (per phase, $n rounds): the self cost of \`workload_mix\`'s own code (where the sites of \`mix()\` are inlined) is $own1 Ir dormant and $own3 Ir after disarm; glibc malloc.c functions cost $mal1 vs $mal3 Ir (the allocator's state after the armed phase differs, not lprobe code)."
        echo
        echo "Callgrind counts only inside \`workload_mix\` (\`--toggle-collect\`) and is dumped (\`callgrind_control --dump\`) between phases; between phases the program waits for the driver outside the collected function."
    } | tee "$W/results/disarm.md"
}

# ---------------------------------------------------------------------------------------------
# armed_run HOW EXE CALLS THREADS PACE [ARM ARGS...]: HOW native|callgrind. Starts bench-armed
# (PACE: µs to wait after each call, empty: none), arms `fn:bench_armed::target` with ARM ARGS
# through the socket (none: stays dormant), checks that `lprobe status` shows it armed, lets the
# timed loop start, then reads the probe's counters. Prints "VALUE HITS EMITTED DROPPED": VALUE
# is the mean thread-CPU ns per call (native; paced: the time inside the calls) or the Ir
# collected inside bench_armed::run (callgrind; paced: inside bench_armed::target).
armed_run() {
    local how=$1 exe=$2 calls=$3 threads=$4 pace=$5 d="$W/armed-run"
    shift 5
    rm -rf "$d"
    mkdir -p "$d"
    local pre=() toggle=bench_armed::run field=cpu_ns_per_call
    [[ -n $pace ]] && toggle=bench_armed::target field=in_call_ns
    # Under valgrind a hit takes ~50x longer: the probe's time budget (50 ms a second by
    # default) would disable a log or snapshot probe after a few hits, so the Ir per hit would
    # be of a disabled probe. The budget's clock reads stay (the largest budget, not `off`).
    [[ $how == callgrind ]] && pre=(env LPROBE_PROBE_BUDGET_MS=1000 valgrind --tool=callgrind --callgrind-out-file="$d/cg.out" --toggle-collect=$toggle)
    BENCH_PACE_US=$pace LPROBE_OUTPUT=/dev/null LPROBE_BUDGET=1000000000000 "${pre[@]}" "$exe" "$calls" "$threads" "$d" >/dev/null 2>"$d/err" &
    local pid=$! hits=0 emitted=0 dropped=0
    wait_socket "$pid"
    if (($#)); then
        "$LPROBE" arm --pid "$pid" fn:bench_armed::target "$@" >/dev/null
        [[ $("$LPROBE" status --pid "$pid" --json | jq -r '.[0].probes[0].state') == armed ]] || { log "probe not armed"; return 1; }
    fi
    touch "$d/go"
    wait_file "$d/done"
    if (($#)); then
        read -r hits emitted dropped < <("$LPROBE" status --pid "$pid" --json | jq -r '.[0].probes[0] | "\(.hits) \(.emitted) \(.dropped)"')
    fi
    touch "$d/end"
    wait "$pid"
    local v
    if [[ $how == callgrind ]]; then
        v=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$d/err" | tail -1)
    else
        v=$(sed -n "s/.*$field=\([0-9.]*\).*/\1/p" "$d/err" | awk '{s += $1} END {printf "%.2f", s / NR}')
    fi
    echo "$v $hits $emitted $dropped"
}

# armed_output_ir EXE RECORDS: the output thread's callgrind Ir per record while a paced log
# probe makes RECORDS records (its thread is the one whose profile holds `sink::finish`).
armed_output_ir() {
    local exe=$1 n=$2 d="$W/armed-output"
    rm -rf "$d"
    mkdir -p "$d"
    BENCH_PACE_US=20 LPROBE_PROBE_BUDGET_MS=1000 LPROBE_OUTPUT=/dev/null LPROBE_BUDGET=1000000000000 \
        valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$d/cg.out" \
        "$exe" "$n" 1 "$d" >/dev/null 2>"$d/err" &
    local pid=$! emitted f ir=""
    wait_socket "$pid"
    "$LPROBE" arm --pid "$pid" fn:bench_armed::target --log 'x={x} label={label}' --rate 1000000/s --max-hits 1000000000 >/dev/null
    touch "$d/go"
    wait_file "$d/done"
    emitted=$("$LPROBE" status --pid "$pid" --json | jq -r '.[0].probes[0].emitted')
    touch "$d/end"
    wait "$pid"
    for f in "$d"/cg.out-*; do
        grep -q 'plane::sink::finish' "$f" && ir=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$f" | head -1)
    done
    awk -v a="${ir:-0}" -v n="$emitted" 'BEGIN {if (n > 0 && a > 0) printf "%.0f", a / n; else print "nan"}'
}

bench_armed() {
    local fx="$root/fixtures/bench-armed" exe plain
    plain=$(build_variant "$fx" bench-armed plain)
    exe=$(build_variant "$fx" bench-armed entry --entry all)
    local big=(--rate 1000000/s --max-hits 1000000000)
    # name | calls (native) | calls (callgrind) | threads | pace (µs) | arm arguments
    # Paced cases wait after each call so the output thread keeps up (the steady state of a
    # rate-limited probe); the others call back to back (the queue fills: a burst).
    local cases=(
        "count|20000000|200000|1||--count"
        "count, 2 threads|10000000||2||--count"
        "false condition|5000000|100000|1||--log x={x} --if 'x > 1000000000'"
        "duration (the call timed)|5000000|100000|1||--duration"
        "log, 2 values, steady|50000|5000|1|10|--log 'x={x} label={label}' ${big[*]}"
        "log, 2 values, burst|200000|20000|1||--log 'x={x} label={label}' ${big[*]}"
        "snapshot, 3 values + stack, steady|5000|1000|1|50|--snapshot ${big[*]}"
        "snapshot, 3 values + stack, burst|20000|2000|1||--snapshot ${big[*]}"
    )
    local plain_ns
    plain_ns=$(for r in $(seq "$REPS"); do "$plain" 20000000 1 2>&1 >/dev/null | sed -n 's/.*cpu_ns_per_call=\([0-9.]*\).*/\1/p'; done | median)
    local out="$W/results/armed.md" c name calls cgcalls threads args r
    {
        echo "## Armed cost per hit on the application thread (bench-armed)"
        echo
        machine
        echo
        echo "| probe on \`fn:bench_armed::target\` | calls | dormant CPU ns/call | armed CPU ns/call | **ns per hit** | Ir per hit (callgrind) | hits / emitted / dropped (last run) |"
        echo "|---|---|---|---|---|---|---|"
    } | tee "$out"
    for c in "${cases[@]}"; do
        IFS='|' read -r name calls cgcalls threads pace args <<<"$c"
        eval "local argv=($args)"
        log "armed: $name"
        local dn=() an=() last=""
        for r in $(seq "$REPS"); do
            dn+=("$(armed_run native "$exe" "$calls" "$threads" "$pace" | cut -d' ' -f1)")
            last=$(armed_run native "$exe" "$calls" "$threads" "$pace" "${argv[@]}")
            an+=("${last%% *}")
        done
        local dm am irph="-"
        dm=$(printf '%s\n' "${dn[@]}" | median)
        am=$(printf '%s\n' "${an[@]}" | median)
        if [[ -n $cgcalls ]]; then
            local i0 i1
            i0=$(armed_run callgrind "$exe" "$cgcalls" 1 "$pace" | cut -d' ' -f1)
            local cg
            cg=$(armed_run callgrind "$exe" "$cgcalls" 1 "$pace" "${argv[@]}")
            i1=${cg%% *}
            local cgh
            read -r _ cgh _ <<<"$cg"
            [[ $cgh == "$cgcalls" || $args == *"--if"* ]] || log "armed: $name: $cgh hits of $cgcalls calls under callgrind (the probe stopped firing)"
            local file=${name//, /-}
            cp "$W/armed-run/cg.out" "$W/results/armed-${file// /-}.callgrind" 2>/dev/null || true
            irph=$(awk -v a="$i1" -v b="$i0" -v n="$cgcalls" 'BEGIN {printf "%.0f", (a - b) / n}')
        fi
        local h e dr
        read -r _ h e dr <<<"$last"
        echo "| $name: \`$args\` | $calls x $threads | $dm | $am | **$(awk -v a="$am" -v b="$dm" 'BEGIN {printf "%.1f", a - b}')** | $irph | $h / $e / $dr |" | tee -a "$out"
    done
    {
        echo
        echo "Output thread: $(armed_output_ir "$exe" 3000) Ir per record (\`lprobe-output\`, callgrind \`--separate-threads\`: that thread's Ir while a log probe of 2 values, paced at 20 µs a call, makes 3,000 records, divided by the records; formatting, JSON, writing to /dev/null)."
        echo
        echo "Plain (uninstrumented) build: $plain_ns CPU ns/call. ns per hit = armed − dormant thread-CPU ns per call (same instrumented binary, medians of $REPS alternating runs; CPU time of each calling thread from /proc/thread-self/schedstat, averaged over threads). The program waits for a go-file; the driver creates it after \`lprobe arm\` returned and \`lprobe status --json\` shows the probe \`armed\`. Environment: LPROBE_OUTPUT=/dev/null, LPROBE_BUDGET=10^12. Ir per hit: callgrind, (armed − dormant) Ir inside \`run\` / calls (single thread; per-function profiles in \`\$BENCH_DIR/results/armed-*.callgrind\`). *steady* rows: \`BENCH_PACE_US\` (the pace column) makes each call wait that long after returning (yielding the CPU), so the output thread keeps up and records are reused, as under a probe's rate limit; their ns are the time inside the calls alone (\`in_call_ns\`: two clock reads around each call, the same dormant and armed) and their Ir are counted inside \`target\` only. *burst* rows call back to back: the queue fills and most records are refused (dropped before any capturing), so their per-hit figure mixes emitted and refused hits."
    } | tee -a "$out"
}

# ---------------------------------------------------------------------------------------------
# first_record_ns FILE PATTERN: waits for a line matching PATTERN, prints its `ts` in ns.
first_record_ns() {
    local line deadline=$((SECONDS + 10))
    while ! line=$(grep -m1 -- "$2" "$1" 2>/dev/null); do
        ((SECONDS < deadline)) || { echo nan; return; }
        sleep 0.001
    done
    date -d "$(jq -r .ts <<<"$line")" +%s%N
}

bench_arming() {
    local exe d="$W/arming" r
    exe=$(build_variant "$root/fixtures/bench-armed" bench-armed entry)
    rm -rf "$d"
    mkdir -p "$d"
    : >"$d/control"
    LPROBE_OUTPUT="$d/out.jsonl" LPROBE_CONTROL="$d/control" "$exe" serve &
    local pid=$!
    wait_socket "$pid"
    local sock=() cli=() ctl=() t0 t1 ts
    for r in $(seq "$REPS"); do
        log "arming: socket $r"
        t0=$(now_ns)
        "$LPROBE" arm --pid "$pid" fn:bench_armed::target --log "sock$r x={x}" >/dev/null
        t1=$(now_ns)
        ts=$(first_record_ns "$d/out.jsonl" "\"sock$r x=")
        sock+=("$(awk -v a="$ts" -v b="$t0" 'BEGIN {printf "%.2f", (a - b) / 1e6}')")
        cli+=("$(awk -v a="$t1" -v b="$t0" 'BEGIN {printf "%.2f", (a - b) / 1e6}')")
        "$LPROBE" disarm --pid "$pid" --all >/dev/null
        sleep 0.2
    done
    for r in $(seq "$REPS"); do
        log "arming: control file $r"
        echo "fn:bench_armed::target --log \"ctl$r x={x}\"" >"$d/control.tmp"
        t0=$(now_ns)
        mv "$d/control.tmp" "$d/control"
        ts=$(first_record_ns "$d/out.jsonl" "\"ctl$r x=")
        ctl+=("$(awk -v a="$ts" -v b="$t0" 'BEGIN {printf "%.1f", (a - b) / 1e6}')")
        : >"$d/control.tmp"
        mv "$d/control.tmp" "$d/control"
        # wait until the control file's probe is gone
        for _ in $(seq 200); do
            [[ $("$LPROBE" status --pid "$pid" --json | jq '[.[0].probes[] | select(.state == "armed")] | length') == 0 ]] && break
            sleep 0.05
        done
        sleep 0.3
    done
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    {
        echo "## Arming latency (bench-armed \`serve\`: the site is hit ~every µs in bursts, at most ~0.1 ms apart)"
        echo
        echo "| path | median (ms) | max (ms) | runs (ms) |"
        echo "|---|---|---|---|"
        echo "| \`lprobe arm\` (socket) → first record's \`ts\` | $(printf '%s\n' "${sock[@]}" | median) | $(printf '%s\n' "${sock[@]}" | sort -g | tail -1) | ${sock[*]} |"
        echo "| … of which the \`lprobe arm\` command itself (process start, connect, reply) | $(printf '%s\n' "${cli[@]}" | median) | $(printf '%s\n' "${cli[@]}" | sort -g | tail -1) | ${cli[*]} |"
        echo "| control file replaced (\`mv\`) → first record's \`ts\` | $(printf '%s\n' "${ctl[@]}" | median) | $(printf '%s\n' "${ctl[@]}" | sort -g | tail -1) | ${ctl[*]} |"
        echo
        echo "t0 is taken just before starting \`lprobe arm\` / the \`mv\`; the end is the \`ts\` field of the first record of that probe (stamped on the application thread at the hit)."
    } | tee "$W/results/arming.md"
}

# ---------------------------------------------------------------------------------------------
bench_memory() {
    local fx="$root/fixtures/demo-app" v r pid
    declare -A BIN RSS
    for v in plain entry all; do BIN[$v]=$(build_variant "$fx" demo-app $v); done
    for v in plain entry all; do : >"$W/rss-$v"; done
    for r in $(seq "$REPS"); do
        for v in plain entry all; do
            LPROBE_OUTPUT=/dev/null "${BIN[$v]}" >/dev/null &
            pid=$!
            sleep 1
            awk '/^VmRSS/ {print $2}' "/proc/$pid/status" >>"$W/rss-$v"
            kill "$pid"
            wait "$pid" 2>/dev/null || true
        done
    done
    for v in plain entry all; do RSS[$v]=$(median <"$W/rss-$v"); done
    {
        echo "## Resident memory, dormant (demo-app, 1 s after start)"
        echo
        echo "| build | VmRSS (KiB, median of $REPS) | extra vs plain |"
        echo "|---|---|---|"
        for v in plain entry all; do
            echo "| $v | ${RSS[$v]} | $(awk -v a="${RSS[$v]}" -v b="${RSS[plain]}" 'BEGIN {printf "%+d KiB (%.2f MiB)", a - b, (a - b) / 1024}') |"
        done
    } | tee "$W/results/memory.md"
}

# ---------------------------------------------------------------------------------------------
# timed CMD...: runs CMD (output discarded), prints "WALL_S CPU_S" (user+sys, children included).
timed() {
    /usr/bin/time -o "$W/time.txt" -f '%e %U %S' "$@" >/dev/null 2>&1 || { log "build failed: $*"; echo "nan nan"; return 0; }
    awk '{printf "%.2f %.2f\n", $1, $2 + $3}' "$W/time.txt"
}

build_cmd() { # MODE: the build command for that variant
    case $1 in
    plain) echo "cargo build --release" ;;
    entry) echo "cargo-lprobe lprobe build --release" ;;
    all) echo "cargo-lprobe lprobe build --release --lines all" ;;
    # Every line, the runtime compiled in this build (a machine's first instrumented build).
    all-nocache) echo "env LPROBE_CACHE_DIR=off cargo-lprobe lprobe build --release --lines all" ;;
    esac
}

# corpus_crates: fetches the corpus crates named in BENCH_CORPUS_CRATES (default "either
# humantime") and prints their directories, one per line: only those (the corpus directory
# keeps earlier runs' crates too). Prints nothing without the corpus tool.
corpus_crates() {
    local corpus=${BENCH_CORPUS:-$W/corpus} c n
    local want=" ${BENCH_CORPUS_CRATES:-either humantime} "
    [[ -x /work/shared/corpus/corpus-fetch ]] || return 0
    local list="$W/corpus-list.tsv"
    awk -v want="$want" 'NR == 1 || index(want, " " $1 " ")' /work/shared/corpus/crates.tsv >"$list"
    CORPUS_LIST="$list" CORPUS_LOCKS=/work/shared/corpus/locks /work/shared/corpus/corpus-fetch "$corpus" >&2 || true
    for c in "$corpus"/*/; do
        n=$(basename "$c")
        if [[ -f $c/Cargo.toml && $want == *" ${n%-*} "* ]]; then
            echo "${c%/}"
        fi
    done
}

# build_project DIR NAME BIN(or -): one table row group.
build_project() {
    local dir=$1 name=$2 binname=$3 v r td
    declare -A CW CC NW SZ SS
    local nreps=${BENCH_BUILD_REPS:-3}
    local variants="plain entry all all-nocache"
    for v in $variants; do : >"$W/bw-$v"; : >"$W/bc-$v"; : >"$W/nw-$v"; done
    # Warm the runtime cache (a machine's first instrumented build fills it).
    (cd "$dir" && CARGO_TARGET_DIR="$W/t/build-warm" cargo-lprobe lprobe build --release --quiet >/dev/null 2>&1) || true
    for r in $(seq "$nreps"); do
        for v in $variants; do
            log "build: $name $v clean #$r"
            td="$W/t/build-$name-$v"
            rm -rf "$td"
            read -r wall cpu < <(cd "$dir" && CARGO_TARGET_DIR=$td timed $(build_cmd $v))
            echo "$wall" >>"$W/bw-$v"
            echo "$cpu" >>"$W/bc-$v"
            read -r wall cpu < <(cd "$dir" && CARGO_TARGET_DIR=$td timed $(build_cmd $v))
            echo "$wall" >>"$W/nw-$v"
        done
    done
    for v in $variants; do
        CW[$v]=$(median <"$W/bw-$v")
        CC[$v]=$(median <"$W/bc-$v")
        NW[$v]=$(median <"$W/nw-$v")
        SZ[$v]="-"
        SS[$v]="-"
        if [[ $binname != - ]]; then
            local b="$W/t/build-$name-$v/release/$binname"
            [[ $v == plain ]] || b="$W/t/build-$name-$v/lprobe/release/$binname"
            SZ[$v]=$(stat -c %s "$b")
            strip -o "$W/stripped" "$b"
            SS[$v]=$(stat -c %s "$W/stripped")
        fi
    done
    for v in $variants; do
        local rs="-" rss="-"
        [[ ${SZ[$v]} == - ]] || rs=$(ratio "${SZ[$v]}" "${SZ[plain]}")
        [[ ${SS[$v]} == - ]] || rss=$(ratio "${SS[$v]}" "${SS[plain]}")
        echo "| $name | $v | ${CW[$v]} | **$(ratio "${CW[$v]}" "${CW[plain]}")** | ${CC[$v]} | $(ratio "${CC[$v]}" "${CC[plain]}") | ${NW[$v]} | $(awk -v a="${NW[$v]}" -v b="${NW[plain]}" 'BEGIN {printf "%+.2f", a - b}') | ${SZ[$v]} | $rs | ${SS[$v]} | $rss |"
    done
}

bench_build() {
    local out="$W/results/build.md"
    {
        echo "## Build cost (clean = empty CARGO_TARGET_DIR, dependencies included; no-op = the same command again)"
        echo
        machine
        echo
        echo "| crate | build | clean wall s | clean ratio | clean CPU s (user+sys) | CPU ratio | no-op wall s | no-op over plain (s) | binary bytes | size ratio | stripped bytes | stripped ratio |"
        echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
    } | tee "$out"
    build_project "$root/fixtures/bench-mix" bench-mix bench-mix | tee -a "$out"
    build_project "$root/fixtures/demo-app" demo-app demo-app | tee -a "$out"
    local c
    while read -r c; do
        BENCH_BUILD_REPS=${BENCH_BUILD_REPS:-3} build_project "$c" "$(basename "$c")" - | tee -a "$out"
    done < <(corpus_crates)
    {
        echo
        echo "Medians of ${BENCH_BUILD_REPS:-3} alternating runs (wall and CPU from /usr/bin/time). Instrumented clean builds include lprobe's own work (cargo metadata, parse + rewrite, mirror), the sites crate, and the runtime: taken from the runtime cache (\`entry\`, \`all\`; warmed once before the runs, as any earlier instrumented build on the machine does) or compiled in the build (\`all-nocache\`: \`LPROBE_CACHE_DIR=off\`, a machine's first instrumented build). Corpus crates are libraries: \`cargo build --release\` of the lib only, no binary."
    } | tee -a "$out"
}

# ---------------------------------------------------------------------------------------------
# wrk_ms VALUE: a wrk latency ("812.00us", "8.97ms", "1.02s") in milliseconds.
wrk_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
        printf "%.3f", n }'
}

# proc_cpu_ticks PID: utime + stime of the whole process (all threads), in clock ticks.
proc_cpu_ticks() { awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$1/stat"; }

# http_run VARIANT EXE: one server process under wrk. VARIANT plain|dormant|armed. Prints
# "REQ_PER_S P99_MS FAILED REQUESTS SERVER_CPU_US_PER_REQ WRK_CPU_S LOG_HITS LOG_EMITTED LOG_DROPPED COUNT_HITS".
http_run() {
    local variant=$1 exe=$2 d="$W/http/run"
    rm -rf "$d"
    mkdir -p "$d"
    LPROBE_SOCKET="$d/sock" LPROBE_OUTPUT="$d/records.jsonl" PORT=0 "$exe" >"$d/stdout" 2>"$d/stderr" &
    local pid=$! port="" i
    for i in $(seq 400); do # readiness: "listening on 127.0.0.1:PORT"
        port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$d/stdout" 2>/dev/null || true)
        [[ -n $port ]] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.025
    done
    [[ -n $port ]] || { log "http-service did not start"; kill "$pid" 2>/dev/null; return 1; }
    local url="http://127.0.0.1:$port/orders/42"
    if [[ $variant == armed ]]; then
        LPROBE_SOCKET="$d/sock" "$LPROBE" arm "$HTTP_LOG_SITE" --log 'order {id} subtotal={subtotal}' >/dev/null
        LPROBE_SOCKET="$d/sock" "$LPROBE" arm 'fn:http_service::get_order' --count >/dev/null
        [[ $(LPROBE_SOCKET="$d/sock" "$LPROBE" status --json | jq '[.[0].probes[] | select(.state == "armed")] | length') == 2 ]] ||
            { log "probes not armed"; kill "$pid"; return 1; }
    fi
    wrk -t1 -c16 -d"${BENCH_HTTP_WARMUP:-2}s" "$url" >/dev/null
    local c0 c1
    c0=$(proc_cpu_ticks "$pid")
    /usr/bin/time -o "$d/wrk-time" -f '%U %S' wrk -t1 -c16 -d"${BENCH_HTTP_DURATION:-10}s" --latency "$url" >"$d/wrk.txt"
    c1=$(proc_cpu_ticks "$pid")
    local lh=- le=- ld=- ch=-
    if [[ $variant == armed ]]; then
        LPROBE_SOCKET="$d/sock" "$LPROBE" status --json >"$d/status.json"
        read -r lh le ld ch < <(jq -r '.[0].probes | "\(.[0].hits) \(.[0].emitted) \(.[0].dropped) \(.[1].hits)"' "$d/status.json")
        LPROBE_SOCKET="$d/sock" "$LPROBE" disarm --all >/dev/null
    fi
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    cp "$d/wrk.txt" "$W/http/wrk-$variant-$HTTP_REP.txt"
    local rps p99 reqs sock non2xx
    rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$d/wrk.txt")
    p99=$(wrk_ms "$(awk '$1 == "99%" {print $2}' "$d/wrk.txt")")
    reqs=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' "$d/wrk.txt")
    sock=$(sed -n 's/^ *Socket errors: connect \([0-9]*\), read \([0-9]*\), write \([0-9]*\), timeout \([0-9]*\).*/\1 \2 \3 \4/p' "$d/wrk.txt" | awk '{print $1 + $2 + $3 + $4}')
    non2xx=$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$d/wrk.txt")
    echo "$rps $p99 $((${sock:-0} + ${non2xx:-0})) $reqs" \
        "$(awk -v t="$((c1 - c0))" -v hz="$(getconf CLK_TCK)" -v n="$reqs" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')" \
        "$(awk '{printf "%.2f", $1 + $2}' "$d/wrk-time")" "$lh $le $ld $ch"
}

# http_callgrind VARIANT EXE: the server under callgrind, instrumentation switched on only while
# `wrk -t1 -c4` runs for BENCH_HTTP_CG_DURATION s. Prints "IR_PER_REQUEST REQUESTS FAILED".
http_callgrind() {
    local variant=$1 exe=$2 d="$W/http/cg-$1"
    rm -rf "$d"
    mkdir -p "$d"
    LPROBE_SOCKET="$d/sock" LPROBE_OUTPUT="$d/records.jsonl" PORT=0 valgrind --tool=callgrind \
        --instr-atstart=no --callgrind-out-file="$d/cg.out" "$exe" >"$d/stdout" 2>"$d/stderr" &
    local pid=$! port="" i
    for i in $(seq 1200); do
        port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$d/stdout" 2>/dev/null || true)
        [[ -n $port ]] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    [[ -n $port ]] || { log "http-service did not start under callgrind"; kill "$pid" 2>/dev/null; return 1; }
    local url="http://127.0.0.1:$port/orders/42"
    if [[ $variant == armed ]]; then
        LPROBE_SOCKET="$d/sock" "$LPROBE" arm "$HTTP_LOG_SITE" --log 'order {id} subtotal={subtotal}' >/dev/null
        LPROBE_SOCKET="$d/sock" "$LPROBE" arm 'fn:http_service::get_order' --count >/dev/null
    fi
    wrk -t1 -c4 -d1s "$url" >/dev/null
    callgrind_control -i on "$pid" >/dev/null
    wrk -t1 -c4 -d"${BENCH_HTTP_CG_DURATION:-5}s" "$url" >"$d/wrk.txt"
    callgrind_control -i off "$pid" >/dev/null
    callgrind_control --dump=measured "$pid" >/dev/null
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    local f ir="" reqs fail
    for f in "$d"/cg.out*; do
        # the dump's `totals:` line (its `summary:` line reads 0 with --instr-atstart=no)
        grep -q '^desc: Trigger: dump measured' "$f" && ir=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$f")
    done
    reqs=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' "$d/wrk.txt")
    fail=$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p; s/^ *Socket errors: connect \([0-9]*\), read \([0-9]*\), write \([0-9]*\), timeout \([0-9]*\).*/\1 \2 \3 \4/p' "$d/wrk.txt" | awk '{for (i = 1; i <= NF; i++) s += $i} END {print s + 0}')
    echo "$(awk -v a="${ir:-0}" -v n="$reqs" 'BEGIN {printf "%.0f", a / n}') $reqs $fail"
}

bench_http() {
    command -v wrk >/dev/null || { log "http: needs wrk (apt-get install -y wrk)"; return 1; }
    local fx="$root/fixtures/http-service" v r
    declare -A BIN
    log "building http-service (plain, every line)"
    BIN[plain]=$(build_variant "$fx" http-service plain)
    BIN[dormant]=$(build_variant "$fx" http-service all)
    BIN[armed]=${BIN[dormant]}
    local line
    line=$(grep -n 'let body = render_order(&order' "$fx/src/main.rs" | cut -d: -f1)
    HTTP_LOG_SITE="src/main.rs:$line"
    local reps=${BENCH_HTTP_REPS:-5} loadavg
    loadavg=$(cut -d' ' -f1-3 /proc/loadavg)
    mkdir -p "$W/http"
    for v in plain dormant armed; do : >"$W/http/runs-$v"; done
    for r in $(seq "$reps"); do
        for v in plain dormant armed; do
            log "http: $v #$r"
            HTTP_REP=$r http_run "$v" "${BIN[$v]}" >>"$W/http/runs-$v"
        done
    done
    declare -A IRQ
    for v in plain dormant armed; do
        log "http: callgrind $v"
        IRQ[$v]=$(http_callgrind "$v" "${BIN[$v]}")
    done
    declare -A RPS P99 CPU FAIL
    for v in plain dormant armed; do
        RPS[$v]=$(awk '{print $1}' "$W/http/runs-$v" | median)
        P99[$v]=$(awk '{print $2}' "$W/http/runs-$v" | median)
        CPU[$v]=$(awk '{print $5}' "$W/http/runs-$v" | median)
        FAIL[$v]=$(awk '{s += $3} END {print s + 0}' "$W/http/runs-$v")
    done
    local dur=${BENCH_HTTP_DURATION:-10}
    {
        echo "## Under load: HTTP service (fixtures/http-service, tokio 2 workers + axum, driven by wrk)"
        echo
        echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(rustc --version), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), load average at start $loadavg."
        echo
        echo "| run | requests/s (median) | **ratio vs plain** | p99 latency ms (median) | **p99 ratio vs dormant** | p99 ratio vs plain | server CPU µs/request (median) | CPU/request ratio vs plain | failed requests (socket errors + non-2xx, all runs) |"
        echo "|---|---|---|---|---|---|---|---|---|"
        for v in plain dormant armed; do
            echo "| $v | ${RPS[$v]} | **$(ratio "${RPS[$v]}" "${RPS[plain]}")** | ${P99[$v]} | **$(ratio "${P99[$v]}" "${P99[dormant]}")** | $(ratio "${P99[$v]}" "${P99[plain]}") | ${CPU[$v]} | $(ratio "${CPU[$v]}" "${CPU[plain]}") | ${FAIL[$v]} |"
        done
        echo
        echo "Per run, in order (requests/s, p99 ms, server CPU µs/request, wrk CPU s):"
        echo
        for v in plain dormant armed; do
            echo "- $v: $(awk '{printf "%s%s / %s / %s / %s", (NR > 1 ? "; " : ""), $1, $2, $5, $6}' "$W/http/runs-$v")"
        done
        echo
        echo "Instructions per request (callgrind, the whole server process, all threads, instrumentation on only during \`wrk -t1 -c4 -d${BENCH_HTTP_CG_DURATION:-5}s\`; stable where the wall-clock numbers are not):"
        echo
        echo "| run | Ir per request | **ratio vs plain** | requests | failed |"
        echo "|---|---|---|---|---|"
        for v in plain dormant armed; do
            read -r irq n f <<<"${IRQ[$v]}"
            echo "| $v | $irq | **$(ratio "$irq" "${IRQ[plain]%% *}")** | $n | $f |"
        done
        echo
        echo "Armed probes (per run: log hits / emitted / dropped, count hits): $(awk '{printf "%s%s / %s / %s, %s", (NR > 1 ? "; " : ""), $7, $8, $9, $10}' "$W/http/runs-armed")."
        echo
        echo "Each run starts a fresh server (\`PORT=0\`, readiness = its \`listening on\` line), warms up with \`wrk -t1 -c16 -d${BENCH_HTTP_WARMUP:-2}s\`, then measures \`wrk -t1 -c16 -d${dur}s --latency http://127.0.0.1:PORT/orders/42\`; the three runs alternate (plain, dormant, armed) $reps times. plain: \`cargo build --release\`; dormant: \`cargo lprobe build --release --lines all\`, nothing armed; armed: the same binary with \`lprobe arm $HTTP_LOG_SITE --log 'order {id} subtotal={subtotal}'\` (default rate 100/s: hits over it are counted as dropped) and \`lprobe arm 'fn:http_service::get_order' --count\` armed through \`LPROBE_SOCKET\` before the warm-up. LPROBE_OUTPUT is a file. Server CPU = utime + stime of the server process over the measured run (/proc/PID/stat) / requests. wrk and the server share the $(nproc) cores."
    } | tee "$W/results/http.md"
}

# ---------------------------------------------------------------------------------------------
# corpus_bench_run DIR MODE ARGS...: one `cargo bench` (MODE plain) or `cargo lprobe bench`
# (MODE entry|all) of a corpus crate; prints "NAME NS" per benchmark (libtest / bencher format;
# criterion is asked for the same with --output-format bencher).
corpus_bench_run() {
    local dir=$1 mode=$2
    shift 2
    local td="$W/t/cbench-$(basename "$dir")-$mode" cmd
    case $mode in
    plain) cmd=(cargo bench) ;;
    entry) cmd=(cargo-lprobe lprobe bench) ;;
    all) cmd=(cargo-lprobe lprobe bench --lines all) ;;
    esac
    { (cd "$dir" && CARGO_TARGET_DIR=$td RUSTC_BOOTSTRAP=1 LPROBE_OUTPUT=/dev/null "${cmd[@]}" "$@" 2>/dev/null) || log "corpus bench: $mode run of $(basename "$dir") failed"; } |
        sed -n 's/^test \(.*\) \.\.\. bench: *\([0-9,.]*\) ns\/iter.*/\1 \2/p' | tr -d ','
}

# fetch_corpus CRATE...: the named crates of the shared corpus into ${BENCH_CORPUS:-$W/corpus}.
fetch_corpus() {
    local shared=${BENCH_SHARED:-$root/../shared}
    fetch_listed "$shared/corpus/crates.tsv" "$shared/corpus/locks" "$@"
}

# fetch_listed LIST LOCKS NAME…: those crates of LIST (corpus-fetch's format) into the corpus
# directory, at their pinned locks in LOCKS.
fetch_listed() {
    local from=$1 locks=$2 corpus=${BENCH_CORPUS:-$W/corpus} shared=${BENCH_SHARED:-$root/../shared}
    shift 2
    local list="$W/corpus-list-$$.tsv"
    awk -v want=" $* " 'NR == 1 || index(want, " " $1 " ")' "$from" >"$list"
    CORPUS_LIST="$list" CORPUS_LOCKS="$locks" "$shared/corpus/corpus-fetch" "$corpus" >&2 || true
    rm -f "$list"
}

# Real code: the benchmarks that corpus crates ship, plain `cargo bench` vs `cargo lprobe bench`
# (entry sites, the default, and every line). humantime (bencher) and ryu (criterion) run on
# stable; regex-syntax and indexmap's `faststring` use `#![feature(test)]` and run with
# RUSTC_BOOTSTRAP=1 (this machine has no nightly toolchain).
bench_corpus() {
    local corpus=${BENCH_CORPUS:-$W/corpus} reps=${BENCH_CORPUS_REPS:-2}
    fetch_corpus humantime ryu regex-syntax indexmap
    local out="$W/results/corpus-bench.md"
    {
        echo "## Real code: corpus crates' own benchmarks, \`cargo bench\` vs \`cargo lprobe bench\`"
        echo
        machine
        echo
        echo "| crate | benchmarks | entry sites: geomean time ratio | min / max | every line: geomean time ratio | min / max |"
        echo "|---|---|---|---|---|---|"
    } | tee "$out"
    local c name args d r v all_e=() all_a=()
    for c in ${BENCH_CORPUS_BENCH:-humantime ryu regex-syntax indexmap}; do
        d=$(ls -d "$corpus/$c"-[0-9]* 2>/dev/null | head -1 || true)
        [[ -n $d ]] || { log "corpus bench: $c not fetched"; continue; }
        case $c in
        ryu) args=(--bench bench -- --warm-up-time 0.5 --measurement-time 1 --output-format bencher) ;;
        indexmap) args=(--bench faststring) ;;
        *) args=() ;;
        esac
        for v in plain entry all; do : >"$W/cb-$c-$v"; done
        for r in $(seq "$reps"); do
            for v in plain entry all; do
                log "corpus bench: $c $v #$r"
                corpus_bench_run "$d" "$v" "${args[@]}" >>"$W/cb-$c-$v"
            done
        done
        # Per benchmark: the fastest of the runs (the least disturbed by other jobs).
        local stats=""
        stats=$({ sed 's/^/1 /' "$W/cb-$c-plain"; sed 's/^/2 /' "$W/cb-$c-entry"; sed 's/^/3 /' "$W/cb-$c-all"; } | awk '
            { f = $1; k = $2; for (i = 3; i < NF; i++) k = k " " $i; x = $NF + 0
              if (!((f, k) in m) || x < m[f, k]) m[f, k] = x; if (f == 1) names[k] = 1 }
            END {
              for (v = 2; v <= 3; v++) { n = 0; s = 0; lo = 1e9; hi = 0
                for (k in names) if (((v, k) in m) && m[1, k] > 0 && m[v, k] > 0) {
                  q = m[v, k] / m[1, k]; s += log(q); n++; if (q < lo) lo = q; if (q > hi) hi = q }
                if (n) printf "%d %.3f %.3f %.3f ", n, exp(s / n), lo, hi; else printf "0 nan nan nan " }
            }')
        read -r ne ge le he na ga la ha <<<"$stats"
        echo "| $(basename "$d") | $ne | **$ge** | $le / $he | **$ga** | $la / $ha |" | tee -a "$out"
    done
    {
        echo
        echo "Each crate's \`cargo bench\` (plain), \`cargo lprobe bench\` (entry sites) and \`cargo lprobe bench --lines all\`, alternating, $reps runs each; per benchmark the fastest run's ns/iter, then the ratio instrumented / plain and its geometric mean over the crate's benchmarks. Nothing armed (LPROBE_OUTPUT=/dev/null). ryu: criterion (\`--bench bench -- --warm-up-time 0.5 --measurement-time 1 --output-format bencher\`); indexmap: its \`faststring\` bench target. Wall-clock timings by the crates' own harnesses, on a shared 2-core machine: treat differences under ~5% as noise."
    } | tee -a "$out"
}

# build_ir DIR NAME MODE: the instructions of one clean build of that variant (cargo and every
# process it starts: lprobe's own work, the compiler wrapper, rustc for each crate), summed over
# callgrind's per-process profiles. Stable where wall and CPU times on a shared machine are not.
build_ir() {
    local dir=$1 name=$2 v=$3 td="$W/t/ir-$2-$3" cg="$W/ir/$2-$3"
    rm -rf "$td" "$cg"
    mkdir -p "$cg"
    log "build-ir: $name $v"
    # shellcheck disable=SC2046 # build_cmd is words on purpose
    if ! (cd "$dir" && CARGO_TARGET_DIR=$td valgrind --tool=callgrind --trace-children=yes \
        --callgrind-out-file="$cg/cg.%p" $(build_cmd "$v") >"$cg/build.log" 2>&1); then
        log "build failed: $name $v (see $cg/build.log)"
        echo nan
        return 0
    fi
    cat "$cg"/cg.* | awk '/^summary:/ {s += $2} END {printf "%.0f\n", s}'
}

bench_build_ir() {
    local out="$W/results/build-ir.md" c
    local -a dirs=("$root/fixtures/bench-mix" "$root/fixtures/demo-app")
    while read -r c; do
        dirs+=("$c")
    done < <(corpus_crates)
    {
        echo "## Build cost in instructions (clean builds under callgrind, every process summed)"
        echo
        machine
        echo
        echo "| crate | plain Ir | entry Ir | entry ratio | every line Ir | every line ratio |"
        echo "|---|---|---|---|---|---|"
    } | tee "$out"
    for c in "${dirs[@]}"; do
        local name plain entry all
        name=$(basename "$c")
        # Warm the runtime cache and the repair cache for both densities, as earlier
        # instrumented builds of the workspace on this machine do (one run each is measured).
        (cd "$c" && CARGO_TARGET_DIR="$W/t/build-warm" cargo-lprobe lprobe build --release --quiet >/dev/null 2>&1) || true
        (cd "$c" && CARGO_TARGET_DIR="$W/t/build-warm" cargo-lprobe lprobe build --release --lines all --quiet >/dev/null 2>&1) || true
        plain=$(build_ir "$c" "$name" plain)
        entry=$(build_ir "$c" "$name" entry)
        all=$(build_ir "$c" "$name" all)
        echo "| $name | $plain | $entry | **$(ratio "$entry" "$plain")** | $all | **$(ratio "$all" "$plain")** |" | tee -a "$out"
    done
    {
        echo
        echo "One clean build per variant (empty CARGO_TARGET_DIR, dependencies included, the runtime and the repair outcome from the machine's caches) run as \`valgrind --tool=callgrind --trace-children=yes\`: the instructions of cargo, lprobe's own phases, the compiler wrapper and every rustc, summed over the per-process profiles (\`summary:\` lines). Instruction counts are the CPU work of the build, repeatable to a fraction of a percent, where wall times on this shared machine move by ±20%; they do not show parallelism (a crate waiting for the sites crate costs wall time, not instructions)."
    } | tee -a "$out"
}

# calls_of CALLGRIND_FILE SUBSTRING: calls (from every caller) of the functions whose name
# contains SUBSTRING, read from a callgrind profile (names are compressed to "(id) name" once).
calls_of() {
    awk -v want="$2" '
        function name(s,   id, rest) {
            id = s; sub(/\).*/, "", id); sub(/^\(/, "", id)
            rest = s; sub(/^\([0-9]+\) ?/, "", rest)
            if (rest != "") names[id] = rest
            return names[id]
        }
        /^fn=/ { name(substr($0, 4)) }
        /^cfn=/ { cur = name(substr($0, 5)) }
        /^calls=/ { if (index(cur, want)) { split($0, a, /[= ]/); n += a[2] } }
        END { print n + 0 }' "$1"
}

# ir_per_parse BINARY BENCH: whole-program Ir of one libtest bench run / the parses it made.
ir_per_parse() {
    local cg="$W/hot/cg-$(basename "$1")-$2"
    LPROBE_DISABLE=1 valgrind --tool=callgrind --callgrind-out-file="$cg" "$1" --bench --exact "$2" \
        >/dev/null 2>"$cg.err"
    local total calls
    total=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$cg.err" | tail -1)
    calls=$(calls_of "$cg" parse_with_comments)
    awk -v t="$total" -v c="$calls" 'BEGIN {if (c == 0) print "nan"; else printf "%.0f", t / c}'
}

# hot_bench_bin DIR VARIANT ARGS...: builds regex-syntax's bench target (plain `cargo bench`
# or `cargo lprobe bench ARGS`) and copies its binary to $W/hot/VARIANT.
hot_bench_bin() {
    local d=$1 v=$2 td="$W/t/hot-$2" cmd
    shift 2
    if [[ $v == plain ]]; then cmd=(cargo bench); else cmd=(cargo-lprobe lprobe bench "$@"); fi
    log "hot: building $v"
    (cd "$d" && CARGO_TARGET_DIR=$td RUSTC_BOOTSTRAP=1 "${cmd[@]}" --no-run --quiet >&2)
    cp "$(ls -t "$td"/release/deps/bench-* "$td"/lprobe/release/deps/bench-* 2>/dev/null | grep -v '\.d$' | head -1)" "$W/hot/$v"
}

bench_hot() {
    local corpus=${BENCH_CORPUS:-$W/corpus} tops=${BENCH_HOT_TOPS:-8 20 60} reps=${BENCH_HOT_REPS:-2}
    fetch_corpus regex-syntax
    local d
    d=$(ls -d "$corpus"/regex-syntax-[0-9]* 2>/dev/null | head -1 || true)
    [[ -n $d ]] || { log "hot: regex-syntax not fetched"; return 1; }
    rm -rf "$W/hot"
    mkdir -p "$W/hot"
    hot_bench_bin "$d" plain
    hot_bench_bin "$d" entry
    # The profile: every function's calls in a 5 s window of the instrumented benches.
    log "hot: counting calls (lprobe hot --for 5s)"
    LPROBE_SOCKET="$W/hot/s.sock" LPROBE_OUTPUT=/dev/null "$W/hot/entry" --bench >/dev/null 2>&1 &
    local pid=$!
    LPROBE_SOCKET="$W/hot/s.sock" wait_socket "$pid"
    LPROBE_SOCKET="$W/hot/s.sock" "$LPROBE" hot --pid "$pid" --for 5s --top 200 >"$W/hot/hot.skip"
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    local variants=(plain entry) n
    for n in $tops; do
        head -2 "$W/hot/hot.skip" >"$W/hot/top$n.skip"
        grep '^fn:' "$W/hot/hot.skip" | head -"$n" >>"$W/hot/top$n.skip"
        hot_bench_bin "$d" "skip$n" --skip-from "$W/hot/top$n.skip"
        variants+=("skip$n")
    done
    local v r out="$W/results/hot.md"
    for v in "${variants[@]}"; do : >"$W/hot/ns-$v"; done
    for r in $(seq "$reps"); do
        for v in "${variants[@]}"; do
            log "hot: wall-clock run $r of $v"
            LPROBE_OUTPUT=/dev/null "$W/hot/$v" --bench 2>/dev/null |
                sed -n 's/^test \(.*\) \.\.\. bench: *\([0-9,.]*\) ns\/iter.*/\1 \2/p' | tr -d ',' >>"$W/hot/ns-$v"
        done
    done
    {
        echo "## Call-heavy real code with a profile-driven skip list (regex-syntax benches)"
        echo
        machine
        echo
        echo "The first of the $(grep -c '^fn:' "$W/hot/hot.skip") functions called in the window (\`lprobe hot\`'s output):"
        echo
        echo '```'
        head -12 "$W/hot/hot.skip"
        echo '```'
        echo
        echo "| build | parse_medium2 Ir/parse | ratio | parse_simple1 Ir/parse | ratio | all benches: geomean ns/iter ratio |"
        echo "|---|---|---|---|---|---|"
    } | tee "$out"
    local m2p s1p
    m2p=$(ir_per_parse "$W/hot/plain" parse_medium2)
    s1p=$(ir_per_parse "$W/hot/plain" parse_simple1)
    for v in "${variants[@]}"; do
        local m2 s1 geo desc
        m2=$(ir_per_parse "$W/hot/$v" parse_medium2)
        s1=$(ir_per_parse "$W/hot/$v" parse_simple1)
        geo=$({ sed 's/^/1 /' "$W/hot/ns-plain"; sed 's/^/2 /' "$W/hot/ns-$v"; } | awk '
            { k = $2; x = $3 + 0; if (!(($1, k) in m) || x < m[$1, k]) m[$1, k] = x; if ($1 == 1) names[k] = 1 }
            END { n = 0; s = 0
                  for (k in names) if (((2, k) in m) && m[1, k] > 0 && m[2, k] > 0) { s += log(m[2, k] / m[1, k]); n++ }
                  if (n) printf "%.3f", exp(s / n); else print "nan" }')
        case $v in
        plain) desc="plain \`cargo bench\`" ;;
        entry) desc="\`cargo lprobe bench\` (entry sites)" ;;
        *) desc="entry sites, \`--skip-from\` the top ${v#skip}" ;;
        esac
        echo "| $desc | $m2 | **$(ratio "$m2" "$m2p")** | $s1 | **$(ratio "$s1" "$s1p")** | $geo |" | tee -a "$out"
    done
    {
        echo
        echo "Ir per parse: the whole program's instructions in one \`BENCH --bench --exact NAME\` run under callgrind (LPROBE_DISABLE=1) divided by the calls of \`Parser::parse_with_comments\` in that run (one per iteration; libtest picks the iteration count). Wall clock: libtest's ns/iter, the fastest of $reps alternating runs per benchmark, geometric mean of the ratios to plain over the crate's benchmarks. The skip lists are the first N \`fn:\` lines of one \`lprobe hot --for 5s\` taken from the start of a run of the entry-sites benches: libtest runs them in name order, a few seconds each, so the window sees the first one or two (parse_huge, parse_medium1) and the list is their profile; the other benches gain as far as they share its hot functions. The benches use \`#![feature(test)]\`: built with RUSTC_BOOTSTRAP=1."
    } | tee -a "$out"
}

# ---------------------------------------------------------------------------------------------
# The dormant-cost suite (`suite`): many realistic workloads, plain vs entry vs every line.
SUITE_CRATES="humantime ryu regex-syntax indexmap smallvec bytes num-traits slab either"
# Crates from crates.io outside the shared corpus, first measured after the rewriter's design
# was settled (nineteenth session): the suite's check that its numbers hold on code it was not
# tuned on. Pinned by fixtures/suite/heldout.tsv and fixtures/suite/locks/.
HELDOUT_CRATES="httparse base64 semver serde_json memchr lz4_flex strsim unicode-width aho-corasick unicode-segmentation itoa percent-encoding arrayvec"


# suite_prepare CRATE: a scratch copy of the fetched corpus crate with fixtures/suite/CRATE.rs
# installed as examples/lprobe_suite.rs, plus an [[example]] entry (published manifests set
# autoexamples = false); prints the copy's directory. Its Cargo.lock stays the pinned one.
suite_prepare() {
    local c=$1 corpus=${BENCH_CORPUS:-$W/corpus} src d
    src=$(ls -d "$corpus/$c"-[0-9]* 2>/dev/null | head -1 || true)
    [[ -n $src && -f $root/fixtures/suite/$c.rs ]] || return 1
    d="$W/suite/src/$(basename "$src")"
    rm -rf "$d"
    mkdir -p "$W/suite/src"
    cp -r "$src" "$d"
    mkdir -p "$d/examples"
    cp "$root/fixtures/suite/$c.rs" "$d/examples/lprobe_suite.rs"
    printf '\n[[example]]\nname = "lprobe_suite"\npath = "examples/lprobe_suite.rs"\n' >>"$d/Cargo.toml"
    echo "$d"
}

# suite_build DIR KIND MODE TD LAST: one clean build of a variant (plain|entry|all) into TD,
# emptied first; prints its wall seconds. KIND bin: a fixture, its binary. KIND example: a corpus
# crate; the crate's lib is the timed build (as in `build`), then, on the LAST repetition only
# (LAST=1: the build whose binary is measured), the example is built untimed in the same target
# dir (an example pulls the crate's dev-dependencies, which lprobe leaves alone, and which would
# dilute the ratio; building them on every repetition tripled the suite's time). Corpus crates
# build --locked --offline (corpus-fetch fetched every locked dependency).
suite_build() {
    local dir=$1 kind=$2 mode=$3 td=$4 last=$5 wall cpu
    local flags=(--locked)
    [[ $kind == example ]] && flags+=(--offline --lib)
    rm -rf "$td"
    # shellcheck disable=SC2046 # build_cmd is words on purpose
    read -r wall cpu < <(cd "$dir" && CARGO_TARGET_DIR=$td timed $(build_cmd "$mode") "${flags[@]}")
    if [[ $kind == example && $last == 1 ]]; then
        # shellcheck disable=SC2046
        (cd "$dir" && CARGO_TARGET_DIR=$td $(build_cmd "$mode") --locked --offline --quiet --example lprobe_suite >&2) ||
            log "suite: example build failed: $dir $mode"
    fi
    echo "$wall"
}

# suite_exe KIND NAME MODE TD: the built binary of that variant.
suite_exe() {
    local kind=$1 name=$2 mode=$3 td=$4 sub=release
    [[ $mode == plain ]] || sub=lprobe/release
    if [[ $kind == example ]]; then echo "$td/$sub/examples/lprobe_suite"; else echo "$td/$sub/$name"; fi
}

# suite_builds NAME DIR KIND BINNAME: clean builds of the three variants (alternating,
# BENCH_SUITE_BUILD_REPS times; the last build of each stays), into SB_WALL/SB_EXE/SB_SIZE.
suite_builds() {
    local name=$1 dir=$2 kind=$3 binname=$4 r v td
    local reps=${BENCH_SUITE_BUILD_REPS:-1} flags=(--locked)
    [[ $kind == example ]] && flags+=(--offline --lib)
    # Warm this workspace's repair cache for both densities (what any earlier instrumented build
    # of it leaves), in a throwaway target dir: the measured builds then run no repair round.
    for v in entry all; do
        log "suite: $name: warm-up build $v (not measured)"
        # shellcheck disable=SC2046 # build_cmd is words on purpose
        (cd "$dir" && CARGO_TARGET_DIR="$W/t/suite-warm-$name" $(build_cmd "$v") --quiet "${flags[@]}" >/dev/null 2>&1) || true
    done
    rm -rf "$W/t/suite-warm-$name"
    for v in plain entry all; do : >"$W/suite/bw-$v"; done
    for r in $(seq "$reps"); do
        for v in plain entry all; do
            log "suite: $name: clean build $v #$r"
            suite_build "$dir" "$kind" "$v" "$W/t/suite-$name-$v" "$((r == reps))" >>"$W/suite/bw-$v"
        done
    done
    for v in plain entry all; do
        td="$W/t/suite-$name-$v"
        SB_WALL[$v]=$(median <"$W/suite/bw-$v")
        SB_EXE[$v]=$(suite_exe "$kind" "$binname" "$v" "$td")
        if [[ -x ${SB_EXE[$v]} ]]; then
            strip -o "$W/suite/stripped" "${SB_EXE[$v]}"
            SB_SIZE[$v]=$(stat -c %s "$W/suite/stripped")
        else
            log "suite: $name: no binary ${SB_EXE[$v]}"
            SB_SIZE[$v]=nan
        fi
    done
}

# suite_port PID STDOUT TRIES DELAY: the port the http-service prints ("listening on
# 127.0.0.1:PORT") once it listens; empty when the process exits or TRIES polls pass.
suite_port() {
    local pid=$1 out=$2 tries=$3 delay=$4 i port=""
    for i in $(seq "$tries"); do
        port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$out" 2>/dev/null || true)
        [[ -n $port ]] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep "$delay"
    done
    echo "$port"
}

# suite_http_ir EXE REQUESTS: http-service under callgrind (whole process, all threads), with
# instrumentation on only while one curl fetches /orders/1 … /orders/REQUESTS over one
# keep-alive connection (after 200 warm-up requests); prints "IR_PER_REQUEST OK_RESPONSES".
suite_http_ir() {
    local exe=$1 n=$2 d="$W/suite/http-cg" port="" pid
    rm -rf "$d"
    mkdir -p "$d"
    LPROBE_SOCKET="$d/sock" LPROBE_OUTPUT=/dev/null PORT=0 valgrind --tool=callgrind \
        --instr-atstart=no --callgrind-out-file="$d/cg.out" "$exe" >"$d/stdout" 2>"$d/stderr" &
    pid=$!
    port=$(suite_port "$pid" "$d/stdout" 1200 0.05)
    [[ -n $port ]] || { log "http-service did not start under callgrind"; kill "$pid" 2>/dev/null; echo "nan 0"; return 0; }
    curl -s -o /dev/null "http://127.0.0.1:$port/orders/[1-200]"
    callgrind_control -i on "$pid" >/dev/null 2>&1
    curl -s -o /dev/null -w '%{http_code}\n' "http://127.0.0.1:$port/orders/[1-$n]" >"$d/codes"
    callgrind_control -i off "$pid" >/dev/null 2>&1
    callgrind_control --dump=measured "$pid" >/dev/null 2>&1
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    local f ir=""
    for f in "$d"/cg.out*; do
        # the dump's `totals:` line (its `summary:` line reads 0 with --instr-atstart=no)
        grep -q '^desc: Trigger: dump measured' "$f" && ir=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$f")
    done
    echo "$(awk -v a="${ir:-0}" -v n="$n" 'BEGIN {printf "%.0f", a / n}') $(grep -c '^200$' "$d/codes" || true)"
}

# suite_http_out EXE: md5 of the responses to /orders/1 … /orders/50 from a native run.
suite_http_out() {
    local exe=$1 d="$W/suite/http-out" port="" pid
    rm -rf "$d"
    mkdir -p "$d"
    LPROBE_SOCKET="$d/sock" LPROBE_OUTPUT=/dev/null PORT=0 "$exe" >"$d/stdout" 2>"$d/stderr" &
    pid=$!
    port=$(suite_port "$pid" "$d/stdout" 400 0.025)
    [[ -n $port ]] && curl -s "http://127.0.0.1:$port/orders/[1-50]" | md5sum | cut -d' ' -f1
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# suite_bench NAME: one benchmark's measurements, appended to $W/suite/rows.tsv as
# "NAME PLAIN_IR ENTRY_IR ALL_IR PLAIN_S ENTRY_S ALL_S PLAIN_B ENTRY_B ALL_B EQUAL".
suite_bench() {
    local name=$1 dir kind=bin binname toggle v
    local args=()
    declare -A SB_WALL SB_EXE SB_SIZE IR OUT
    case $name in
    bench-mix) dir="$root/fixtures/bench-mix" binname=bench-mix toggle=bench_mix::workload_mix args=(mix 100) ;;
    workload-mix) dir="$root/fixtures/workload-mix" binname=workload-mix toggle=workload_mix::workload args=(100) ;;
    http-service) dir="$root/fixtures/http-service" binname=http-service ;;
    *)
        dir=$(suite_prepare "$name") || { log "suite: $name: not in the corpus or no fixtures/suite/$name.rs"; return 0; }
        kind=example binname=lprobe_suite toggle=lprobe_suite::workload ;;
    esac
    suite_builds "$name" "$dir" "$kind" "$binname"
    if [[ $name == http-service ]]; then
        local n=${BENCH_SUITE_HTTP_REQS:-2000} runs=${BENCH_SUITE_HTTP_RUNS:-2} r x ok all
        for v in plain entry all; do
            OUT[$v]=$(suite_http_out "${SB_EXE[$v]}")
            all=""
            for r in $(seq "$runs"); do
                log "suite: $name: callgrind $v #$r ($n requests)"
                read -r x ok < <(suite_http_ir "${SB_EXE[$v]}" "$n")
                [[ $ok == "$n" ]] || log "suite: $name $v: only $ok of $n responses were 200"
                all+="${all:+ }$x"
            done
            echo "$v $all" >>"$W/suite/http-runs"
            [[ $v == plain ]] && echo "$name: md5 of the responses ${OUT[plain]}" >>"$W/suite/outputs"
            IR[$v]=$(tr ' ' '\n' <<<"$all" | median | awk '{printf "%.0f", $1}')
        done
    else
        for v in plain entry all; do
            OUT[$v]=$(LPROBE_OUTPUT=/dev/null "${SB_EXE[$v]}" "${args[@]}" 2>/dev/null | md5sum | cut -d' ' -f1)
            log "suite: $name: callgrind $v"
            local keep=/dev/null
            [[ -n ${BENCH_KEEP_CG:-} ]] && mkdir -p "$W/cg" && keep="$W/cg/$name-$v.out"
            IR[$v]=$(CG_OUT=$keep callgrind_ir "$toggle" "${SB_EXE[$v]}" "${args[@]}")
        done
        if [[ -n $IDLE_THREAD_LIB ]]; then
            log "suite: $name: callgrind plain with an idle thread"
            IR[thread]=$(LD_PRELOAD=$IDLE_THREAD_LIB callgrind_ir "$toggle" "${SB_EXE[plain]}" "${args[@]}")
        fi
        echo "$name: $(LPROBE_OUTPUT=/dev/null "${SB_EXE[plain]}" "${args[@]}" 2>/dev/null | head -1)" >>"$W/suite/outputs"
    fi
    local eq=yes
    [[ -n ${OUT[plain]} && ${OUT[entry]} == "${OUT[plain]}" && ${OUT[all]} == "${OUT[plain]}" ]] || eq=no
    echo "$name ${IR[plain]:-nan} ${IR[entry]:-nan} ${IR[all]:-nan} ${SB_WALL[plain]} ${SB_WALL[entry]} ${SB_WALL[all]} ${SB_SIZE[plain]} ${SB_SIZE[entry]} ${SB_SIZE[all]} $eq ${IR[thread]:-nan}" >>"$W/suite/rows.tsv"
}

# suite_table ROWS: the markdown table (rows, geomean, worst) and the targets.
suite_table() {
    awk '
        function r(a, b) { return (b > 0 && a > 0) ? a / b : 0 }
        function f(x) { return x > 0 ? sprintf("%.3f", x) : "nan" }
        function big(n,   s) { s = sprintf("%d", n); if (n !~ /^[0-9]+$/) return n; while (s ~ /[0-9][0-9][0-9][0-9]/) sub(/[0-9][0-9][0-9]($|,)/, ",&", s); return s }
        function met(x, t) { return (x > 0 && x <= t) ? "yes" : "**no**" }
        {
            n++; name[n] = $1
            for (c = 2; c <= 10; c++) v[n, c] = $c
            eq[n] = $11
            ie[n] = r($3, $2); ia[n] = r($4, $2); be[n] = r($6, $5); ba[n] = r($7, $5); se[n] = r($9, $8); sa[n] = r($10, $8)
            th[n] = r($12, $2); te[n] = r($3, $12); ta[n] = r($4, $12)
        }
        function geo(a,   i, s, k) { s = 0; k = 0; for (i = 1; i <= n; i++) if (a[i] > 0) { s += log(a[i]); k++ } return k ? exp(s / k) : 0 }
        function worst(a,   i, w) { w = 0; for (i = 1; i <= n; i++) if (a[i] > a[w] || w == 0) w = i; return w }
        END {
            print "| benchmark | plain Ir | entry Ir (ratio) | every line Ir (ratio) | clean build: plain s, entry / every line ratio | stripped binary: plain bytes, entry / every line ratio | output equal? |"
            print "|---|---|---|---|---|---|---|"
            alleq = "yes"
            for (i = 1; i <= n; i++) {
                printf "| %s | %s | %s (**%s**) | %s (**%s**) | %s s, %s / %s | %s, %s / %s | %s |\n", name[i], big(v[i, 2]), big(v[i, 3]), f(ie[i]), big(v[i, 4]), f(ia[i]), v[i, 5], f(be[i]), f(ba[i]), big(v[i, 8]), f(se[i]), f(sa[i]), eq[i]
                if (eq[i] != "yes") alleq = "no"
            }
            g1 = geo(ie); g2 = geo(ia); g3 = geo(be); g4 = geo(ba); g5 = geo(se); g6 = geo(sa)
            printf "| **geomean** (%d) | | **%s** | **%s** | %s / %s | %s / %s | %s |\n", n, f(g1), f(g2), f(g3), f(g4), f(g5), f(g6), alleq
            w1 = worst(ie); w2 = worst(ia); w3 = worst(be); w4 = worst(ba); w5 = worst(se); w6 = worst(sa)
            printf "| **worst** | | **%s** (%s) | **%s** (%s) | %s (%s) / %s (%s) | %s (%s) / %s (%s) | |\n", f(ie[w1]), name[w1], f(ia[w2]), name[w2], f(be[w3]), name[w3], f(ba[w4]), name[w4], f(se[w5]), name[w5], f(sa[w6]), name[w6]
            # Binaries over 1 MB (plain, stripped).
            bw = 0; bn = "none"; bk = 0
            for (i = 1; i <= n; i++) if (v[i, 8] > 1000000) { bk++; for (c = 0; c < 2; c++) { x = c ? sa[i] : se[i]; if (x > bw) { bw = x; bn = name[i] (c ? " every line" : " entry") } } }
            print ""
            print "| target | measured | met? |"
            print "|---|---|---|"
            printf "| geomean Ir, entry ≤ 1.03x | %s | %s |\n", f(g1), met(g1, 1.03)
            printf "| geomean Ir, every line ≤ 1.10x | %s | %s |\n", f(g2), met(g2, 1.10)
            printf "| every benchmark Ir, entry ≤ 1.10x | worst %s (%s) | %s |\n", f(ie[w1]), name[w1], met(ie[w1], 1.10)
            printf "| every benchmark Ir, every line ≤ 1.25x | worst %s (%s) | %s |\n", f(ia[w2]), name[w2], met(ia[w2], 1.25)
            printf "| clean build, entry ≤ 1.3x | geomean %s; worst %s (%s) | %s (geomean); %s (every benchmark) |\n", f(g3), f(be[w3]), name[w3], met(g3, 1.3), met(be[w3], 1.3)
            printf "| clean build, every line ≤ 2.0x | geomean %s; worst %s (%s) | %s (geomean); %s (every benchmark) |\n", f(g4), f(ba[w4]), name[w4], met(g4, 2.0), met(ba[w4], 2.0)
            printf "| stripped binary ≤ 1.5x, binaries over 1 MB plain (%d) | worst %s (%s) | %s |\n", bk, f(bw), bn, bk ? met(bw, 1.5) : "-"
            printf "| stdout identical across the three builds | %s | %s |\n", alleq, alleq == "yes" ? "yes" : "**no**"
            # What of the entry ratio is the runtime having a thread at all (see `idle-thread.c`).
            k = 0; for (i = 1; i <= n; i++) if (th[i] > 0) k++
            if (k) {
                print ""
                print "| benchmark | plain with one idle thread / plain | entry / plain with one idle thread | every line / plain with one idle thread |"
                print "|---|---|---|---|"
                for (i = 1; i <= n; i++) if (th[i] > 0) printf "| %s | %s | %s | %s |\n", name[i], f(th[i]), f(te[i]), f(ta[i])
                printf "| **geomean** (%d) | %s | %s | %s |\n", k, f(geo(th)), f(geo(te)), f(geo(ta))
            }
        }' "$1"
}

bench_suite() {
    local list=${BENCH_SUITE:-bench-mix workload-mix $SUITE_CRATES $HELDOUT_CRATES http-service} b
    local out="$W/results/suite.md"
    mkdir -p "$W/suite"
    : >"$W/suite/rows.tsv"
    : >"$W/suite/http-runs"
    : >"$W/suite/outputs"
    local crates=""
    for b in $list; do [[ " $SUITE_CRATES " == *" $b "* ]] && crates+=" $b"; done
    [[ -n $crates ]] && fetch_corpus $crates
    local heldout=""
    for b in $list; do [[ " $HELDOUT_CRATES " == *" $b "* ]] && heldout+=" $b"; done
    [[ -n $heldout ]] && fetch_listed "$root/fixtures/suite/heldout.tsv" "$root/fixtures/suite/locks" $heldout
    if [[ " $list " == *" http-service "* ]] && ! command -v curl >/dev/null; then
        log "suite: http-service needs curl: left out"
        list=${list/http-service/}
    fi
    # Warm the machine-wide runtime cache (a throwaway instrumented build), so that no measured
    # build compiles the runtime: as on any machine after its first instrumented build.
    log "suite: warming the runtime cache"
    (cd "$root/fixtures/bench-mix" && CARGO_TARGET_DIR="$W/t/suite-warm" cargo-lprobe lprobe build --release --quiet >/dev/null 2>&1) || true
    # One idle thread preloaded into the plain binaries (needs a C compiler; else left out).
    IDLE_THREAD_LIB=""
    if command -v cc >/dev/null && cc -shared -fPIC -O2 -o "$W/idle-thread.so" "$root/scripts/idle-thread.c" -lpthread 2>/dev/null; then
        IDLE_THREAD_LIB="$W/idle-thread.so"
    else
        log "suite: no C compiler: the idle-thread baseline is left out"
    fi
    local loadavg
    loadavg=$(cut -d' ' -f1-3 /proc/loadavg)
    for b in $list; do
        suite_bench "$b"
    done
    {
        echo "## Dormant cost across a suite of workloads (plain vs entry sites vs every line)"
        echo
        echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(rustc --version), $(valgrind --version), load average at start $loadavg. lprobe binaries: $bin${bin_commit:+ (copied at the start of the run from a checkout at commit $bin_commit)}."
        echo
        suite_table "$W/suite/rows.tsv"
        echo
        echo "Ir: callgrind instructions of the workload, the instrumented builds dormant (nothing armed, \`LPROBE_OUTPUT=/dev/null\`, runtime started: not LPROBE_DISABLE). bench-mix: \`bench-mix mix 100\`, collected inside \`bench_mix::workload_mix\` (\`--toggle-collect\`, inclusive); workload-mix: \`workload-mix 100\` inside \`workload_mix::workload\`; corpus crates: \`examples/lprobe_suite\` (fixtures/suite/<crate>.rs, its default size) inside \`lprobe_suite::workload\`, the crate (lib and example) instrumented; http-service: the whole server process (every thread) while one curl fetches /orders/1 … /orders/${BENCH_SUITE_HTTP_REQS:-2000} over one keep-alive connection, after 200 warm-up requests, divided by the requests (Ir per request; median of ${BENCH_SUITE_HTTP_RUNS:-2} runs, each run: $(awk '{printf "%s%s %s", (NR > 1 ? "; " : ""), $1, substr($0, length($1) + 2)}' "$W/suite/http-runs"))."
        echo
        echo "Idle thread: the plain binary run again with \`scripts/idle-thread.c\` preloaded (\`LD_PRELOAD\`), which starts one thread that only waits, before \`main\`, as the runtime starts its control thread: a single-threaded program's allocator (glibc's) leaves its single-thread fast path once any thread exists. The last table splits each entry ratio into that and the rest (the sites). http-service is multi-threaded anyway (no row)."
        echo
        echo "Build: wall seconds of one clean build per variant (median of ${BENCH_SUITE_BUILD_REPS:-1}; empty CARGO_TARGET_DIR, dependencies included), \`cargo build --release\` vs \`cargo lprobe build --release [--lines all]\`, with the machine-wide runtime cache warm (one throwaway instrumented build first) and the benchmark's repair cache warm (a throwaway instrumented build of each density in another target dir just before): as on a machine where the workspace was built with lprobe before. Fixtures: the binary; corpus crates: the lib (\`--lib --locked --offline\`, plain profile without line tables, as \`build\` measures them), the example then built untimed in the same directory after the last repetition. Wall times on this shared machine move by ±20%. Binary: stripped size of the measured binary. Output: stdout (the checksum; http-service: md5 of the responses to /orders/1 … /orders/50) of each build equal to plain's."
        echo
        echo "Checksums (plain):"
        echo
        sed 's/^/    /' "$W/suite/outputs"
    } | tee "$out"
}

main() {
    local cmds=("$@")
    ((${#cmds[@]})) || cmds=(all)
    local c
    for c in "${cmds[@]}"; do
        case $c in
        dormant | disarm | armed | build | arming | memory | http | corpus | hot | suite) "bench_$c" ;;
        build-ir) bench_build_ir ;;
        all) bench_dormant; bench_disarm; bench_armed; bench_arming; bench_memory; bench_build ;;
        *) echo "usage: $0 [dormant|disarm|armed|build|build-ir|arming|memory|http|corpus|hot|suite|all]..." >&2; exit 2 ;;
        esac
    done
}
main "$@"
