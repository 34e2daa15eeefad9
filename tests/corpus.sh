#!/usr/bin/env bash
# tests/corpus.sh [DEST] [--only "name …"] [--quick] [--clean]
#
# Checks lprobe against the real-world corpus (../shared/corpus, see its README): every
# crate must build and pass its own test suite instrumented (`--lines all --entry all`: every
# function, tiny ones included, the most the rewriter does) and with every site
# armed, with exactly as many tests passed as a plain `cargo test`.
#
#   DEST        where the crates are laid out (default: <repo>/target/corpus); `corpus-fetch DEST`
#               is run first (idempotent, offline once the cargo cache holds everything)
#   --only L    only these crates (space-separated NAME or NAME-VERSION, like CORPUS_ONLY)
#   --quick     a small fast slice for CI: either, slab, humantime
#   --clean     remove each crate's target dir first (cold build times; otherwise incremental)
#
# Steps: `cargo build --release -p cargo-lprobe`, then the two binaries are copied to DEST/_bin
# (put first on PATH, so a rebuild of the repo during a long run cannot change the tool under
# test). Per crate, one at a time, through `corpus-run` (per-crate CARGO_TARGET_DIR
# DEST/_target/ID, timeout, pinned-lock checks):
#
#   build    cargo build --tests                       (plain build time)
#   plain    cargo test                                (baseline test count)
#   lbuild   cargo lprobe build --tests --lines all --entry all --report json --locked   (instrumented build;
#            `cargo lprobe test --no-run` passes --no-run to cargo twice)
#   lprobe   cargo lprobe test --lines all --entry all --report json --locked
#   snapshot / log / count / duration:  the same with LPROBE_ARM_ALL=<mode> (duration: every
#            entry that can be timed, timed on every call), records to
#            LPROBE_OUTPUT=DEST/_logs/ID.<mode>.jsonl (kept only when the step failed)
#
# Logs: DEST/_logs/ID.<step>.log. A crate PASSes when every step exits 0 and every test step
# passed as many tests as `plain`. Per crate one line:
#
#   ID  PASS|FAIL[(steps)]  tests plain/lprobe/snap/log/count/duration  sites placed/total
#       caps kept/dropped  skipped N  recs snap/log/count/duration (errors)  build plain→lprobe s
#
# (sites, captures, skipped fns from DEST/_target/ID/lprobe/report.json), then totals:
# function-entry coverage (Σ fns_instrumented / Σ fns_with_body) and capture coverage
# (Σ captures_kept / Σ captures), and as the LAST line `corpus: P passed, F failed of N`.
# Exit status 0 only if every crate passed.
#
# Environment: CORPUS_DIR (default ../shared/corpus beside the checkout), CORPUS_TIMEOUT (s per step, default
# 900), CORPUS_MODES (armed modes to run, default "snapshot log count duration"; a mode left out shows
# as "-"), CORPUS_DENSITY (the sites, default "--lines all --entry all"; "--entry all" checks
# functions written once, whose entries call themselves again to be timed), CARGO_NET_OFFLINE
# (passed on to corpus-run).
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shared/ sits beside the checkout (also in CI's fresh clone).
corpus=${CORPUS_DIR:-$repo/../shared/corpus}
[ -d "$corpus" ] || corpus=/work/shared/corpus
dest= only= clean=0
while [ $# -gt 0 ]; do
    case $1 in
        --only) [ $# -ge 2 ] || { echo "corpus.sh: --only needs a list" >&2; exit 2; }; only=$2; shift 2 ;;
        --only=*) only=${1#--only=}; shift ;;
        --quick) only="either slab humantime"; shift ;;
        --clean) clean=1; shift ;;
        -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) echo "corpus.sh: unknown option $1" >&2; exit 2 ;;
        *) [ -z "$dest" ] || { echo "corpus.sh: one DEST only" >&2; exit 2; }; dest=$1; shift ;;
    esac
done
dest=${dest:-$repo/target/corpus}
export CORPUS_TIMEOUT=${CORPUS_TIMEOUT:-900}
export CARGO_TERM_COLOR=never
modes=${CORPUS_MODES-snapshot log count duration}

# --- the tool under test
echo "corpus.sh: building cargo-lprobe (release)" >&2
cargo build --release -q -p cargo-lprobe --manifest-path "$repo/Cargo.toml" || exit 2
mkdir -p "$dest/_bin" "$dest/_logs"
for b in cargo-lprobe lprobe; do  # copy + rename: works while an older copy is running
    cp "$repo/target/release/$b" "$dest/_bin/.$b.new" && mv -f "$dest/_bin/.$b.new" "$dest/_bin/$b" || exit 2
done
export PATH=$dest/_bin:$PATH

# --- the crates
"$corpus/corpus-fetch" "$dest" >&2 || echo "corpus.sh: corpus-fetch reported errors (continuing)" >&2
dest=$(cd "$dest" && pwd)
ids=()
for d in "$dest"/*/; do
    id=$(basename "$d")
    case $id in _*|.*) continue ;; esac
    [ -f "$d/Cargo.toml" ] || continue
    name=$(printf '%s\n' "$id" | sed -E 's/-[0-9]+\.[0-9]+\.[0-9]+.*$//')
    if [ -n "$only" ]; then
        hit=0
        for o in $only; do [ "$o" = "$name" ] || [ "$o" = "$id" ] && hit=1; done
        [ $hit = 1 ] || continue
    fi
    ids+=("$id")
done
[ ${#ids[@]} -gt 0 ] || { echo "corpus: 0 passed, 0 failed of 0"; exit 1; }

# tstep ID STEP CMD... : a test run (step); a failing one runs once more, since some suites
# assert on sleeps and wall-clock windows (async-task's waker_panic: 200 ms / 400 ms) that a
# loaded 2-core machine misses now and then. A pass on the second try is reported as
# `retried: STEP` on the crate's line (the first log is kept as STEP.log.first).
tstep() {
    step "$@"
    if [ "$st" != PASS ]; then
        local log=$dest/_logs/$1.$2.log
        mv -f "$log" "$log.first" 2>/dev/null
        step "$@"
        [ "$st" != PASS ] || retried+=("$2")
    fi
}

# step ID STEP CMD... : runs CMD for one crate through corpus-run; sets st, np, nf, secs
step() {
    local id=$1 name=$2; shift 2
    local log=$dest/_logs/$id.$name.log
    CORPUS_ONLY=$id "$corpus/corpus-run" "$dest" "$@" > "$log.run" 2>&1
    mv -f "$dest/_logs/$id.log" "$log" 2>/dev/null
    local line
    line=$(awk -F'\t' -v id="$id" '$1==id' "$dest/_logs/results.tsv")
    IFS=$'\t' read -r _ st np nf secs _ <<< "$line"
    st=${st:-FAIL} np=${np:-0} nf=${nf:-0} secs=${secs:-0}
}

# The binary itself, not `cargo lprobe`: cargo looks in $CARGO_HOME/bin before PATH, where an
# older `cargo install`ed cargo-lprobe may sit.
read -r -a density <<<"${CORPUS_DENSITY:---lines all --entry all}"
lp=("$dest/_bin/cargo-lprobe" lprobe test "${density[@]}" --report json --locked)
npass=0 nfail=0
t_fns=0 t_inst=0 t_caps=0 t_kept=0 t_sites=0 t_placed=0 t_skipped=0 t_const=0
for id in "${ids[@]}"; do
    [ $clean = 1 ] && rm -rf "$dest/_target/$id"
    bad=() retried=()
    declare -A P=() S=()
    step "$id" build cargo build --tests;                 S[build]=$st; bplain=$secs
    tstep "$id" plain cargo test;                         S[plain]=$st; P[plain]=$np
    step "$id" lbuild "$dest/_bin/cargo-lprobe" lprobe build --tests "${density[@]}" --report json --locked
    S[lbuild]=$st; blp=$secs
    tstep "$id" lprobe "${lp[@]}";                        S[lprobe]=$st; P[lprobe]=$np
    recs=()
    for m in snapshot log count duration; do
        S[$m]=- P[$m]=-
        case " $modes " in *" $m "*) ;; *) recs+=(-); continue ;; esac
        out=$dest/_logs/$id.$m.jsonl
        rm -f "$out"
        LPROBE_ARM_ALL=$m LPROBE_OUTPUT=$out tstep "$id" "$m" "${lp[@]}"
        S[$m]=$st; P[$m]=$np
        n=0 e=0
        if [ -f "$out" ]; then
            n=$(wc -l < "$out")
            e=$(grep -c '"kind":"error"' "$out")
        fi
        if [ "$e" = 0 ]; then recs+=("$n"); else recs+=("$n(${e}err)"); fi
        [ "$st" != PASS ] || rm -f "$out"   # records of a passing run can be hundreds of MB
    done
    for s in build plain lbuild lprobe snapshot log count duration; do
        [ "${S[$s]}" = PASS ] || [ "${S[$s]}" = - ] || bad+=("$s:${S[$s],,}")
    done
    for s in lprobe snapshot log count duration; do
        [ "${P[$s]}" = "${P[plain]}" ] || [ "${P[$s]}" = - ] || bad+=("$s:${P[$s]}tests")
    done
    # coverage from the report
    rep=$dest/_target/$id/lprobe/report.json
    fns=0 inst=0 caps=0 kept=0 sites=0 placed=0 skipped=0 const=0
    if [ -f "$rep" ] && { [ "${S[lbuild]}" = PASS ] || [ "${S[lprobe]}" = PASS ]; }; then
        read -r fns inst caps kept sites placed skipped const < <(jq -r \
            '[ (map(.fns_with_body)|add), (map(.fns_instrumented)|add), (map(.captures)|add),
               (map(.captures_kept)|add), (map(.sites)|add), (map(.sites_placed)|add),
               (map(.fns_skipped|length)|add), (map(.fns_const // 0)|add) ] | map(. // 0) | @tsv' "$rep")
    fi
    t_fns=$((t_fns+fns)) t_inst=$((t_inst+inst)) t_caps=$((t_caps+caps)) t_kept=$((t_kept+kept))
    t_sites=$((t_sites+sites)) t_placed=$((t_placed+placed)) t_skipped=$((t_skipped+skipped))
    t_const=$((t_const+const))
    if [ ${#bad[@]} -eq 0 ]; then
        status=PASS; npass=$((npass+1))
    else
        status="FAIL(${bad[*]})"; nfail=$((nfail+1))
    fi
    printf '%-22s %-5s tests %s/%s/%s/%s/%s/%s  sites %s/%s  caps %s kept/%s dropped  skipped %s  recs %s  build %ss→%ss\n' \
        "$id" "${status%%(*}" "${P[plain]}" "${P[lprobe]}" "${P[snapshot]}" "${P[log]}" "${P[count]}" "${P[duration]}" \
        "$placed" "$sites" "$kept" "$((caps-kept))" "$skipped" "$(IFS=/; echo "${recs[*]}")" "$bplain" "$blp"
    [ ${#bad[@]} -eq 0 ] || echo "    failed: ${bad[*]}  (logs: $dest/_logs/$id.<step>.log)"
    [ ${#retried[@]} -eq 0 ] || echo "    retried: ${retried[*]} (failed once, passed on the second run; first log: $dest/_logs/$id.<step>.log.first)"
    unset P S
done

pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f%%", 100*a/b; else printf "n/a" }'; }
echo "totals: fn-entry coverage $(pct $t_inst $t_fns) ($t_inst/$t_fns fns, $t_skipped skipped, $t_const of them const fn), $(pct $t_inst $((t_fns-t_const))) of the fns that can hold a probe (not const fn), capture coverage $(pct $t_kept $t_caps) ($t_kept/$t_caps), sites $t_placed/$t_sites"
echo "corpus: $npass passed, $nfail failed of ${#ids[@]}"
[ $nfail -eq 0 ]
