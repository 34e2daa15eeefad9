#!/usr/bin/env bash
# Installs cargo-lprobe + lprobe, builds the bundled demo app instrumented at every line, runs it,
# arms a few probes through the socket and shows what they record. Stops the app at the end.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cargo install --quiet --locked --path "$root/cargo-lprobe"
cd "$root/fixtures/demo-app"
cargo lprobe build --release --lines all
tmp=$(mktemp -d)
out=$tmp/out.jsonl
# The app's control socket, named for the CLI too, so that other instrumented programs running
# on this machine do not make the commands below ask which process is meant (`--pid`).
export LPROBE_SOCKET=$tmp/demo-app.sock
LPROBE_OUTPUT="$out" ./target/lprobe/release/demo-app > /dev/null &
app=$!
trap 'kill $app 2>/dev/null || true' EXIT
# Wait until the program's control socket answers.
for _ in $(seq 100); do lprobe status --pid "$app" > /dev/null 2>&1 && break; sleep 0.1; done
set -x
lprobe ps
lprobe list main.rs:4
lprobe arm src/main.rs:42 --log "order {order.id} total={total}"
lprobe snapshot src/main.rs:57
lprobe arm 'fn:demo_app::billing::*' --count --every 1s
timeout 3 lprobe tail || true
lprobe status
lprobe disarm --all
lprobe hot --for 1s --top 3
set +x
echo "records written by the program: $out"
head -n 3 "$out"
