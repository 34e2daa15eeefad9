#!/usr/bin/env bash
# lprobe soak: a multi-threaded program (fixtures/soak) runs for SOAK_SECONDS (default 600)
# with probes armed and disarmed in a loop by several clients, a slow `lprobe tail`, a
# long-lived log probe over its rate, the output file rotated (renamed) every 30 s and, as
# root, the output's disk (a 16 MiB tmpfs) filled for 10 s every 60 s (else that part is
# skipped, with a message). Before it, the same program runs dormant for a tenth of the time.
#
# Reports: memory (VmRSS) and descriptors over time, the output accounting from `status`
# (records queued and the writer's notes = written + failed; the whole lines in all the
# output files = written), the long-lived probe's hits = emitted + dropped, and the
# program's throughput armed vs dormant. Exits non-zero when an account does not add up,
# descriptors or memory grow, or the program dies.
#
# Usage: scripts/soak.sh [SECONDS]      (or SOAK_SECONDS=120 scripts/soak.sh)
#        SOAK_THREADS: the program's worker threads (default 4); SOAK_CLIENTS: arming clients
#        (default 3). The report is printed and kept in $SOAK_DIR (default a new /tmp dir).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-${SOAK_SECONDS:-600}}"
root="$(pwd)"
target="$root/target/soak"
echo "soak: building lprobe and fixtures/soak (--lines all)" >&2
cargo build -q -p cargo-lprobe --bins
CARGO_TARGET_DIR="$target" "$root/target/debug/cargo-lprobe" lprobe build --release \
    --lines all --manifest-path fixtures/soak/Cargo.toml >&2
dir="${SOAK_DIR:-$(mktemp -d /tmp/lprobe-soak.XXXXXX)}"
mkdir -p "$dir"
exec python3 - "$secs" "$target/lprobe/release/soak" "$root/target/debug/lprobe" "$dir" \
    <<'PY'
import json, os, random, shutil, subprocess, sys, threading, time

secs, exe, lprobe, work = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
threads = os.environ.get("SOAK_THREADS", "4")
clients = int(os.environ.get("SOAK_CLIENTS", "3"))
disk = os.path.join(work, "disk")
os.makedirs(disk, exist_ok=True)
mounted = False
if os.geteuid() == 0:
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", disk],
                             stderr=subprocess.DEVNULL).returncode == 0
if not mounted:
    print("soak: not root (or cannot mount a tmpfs): the disk-full part is skipped",
          file=sys.stderr)
rotated_dir = os.path.join(work, "rotated")
os.makedirs(rotated_dir, exist_ok=True)
out = os.path.join(disk, "out.jsonl")
stop = threading.Event()
failures = []

def src_line(marker):
    src = open("fixtures/soak/src/main.rs").read()
    return "src/main.rs:%d" % (src.splitlines().index(marker) + 1)

def start(sock, output):
    env = dict(os.environ, LPROBE_SOCKET=sock, LPROBE_OUTPUT=output, SOAK_THREADS=threads)
    p = subprocess.Popen([exe], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True)
    ops = []  # (time, total ops)
    def read():
        for line in p.stdout:
            if line.startswith("ops "):
                ops.append((time.monotonic(), int(line.split()[1])))
    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + 20
    while not os.path.exists(sock):
        if time.monotonic() > deadline or p.poll() is not None:
            sys.exit("soak: the program did not start")
        time.sleep(0.05)
    return p, ops

def cli(sock, *args, timeout=30):
    env = dict(os.environ, LPROBE_SOCKET=sock)
    return subprocess.run([lprobe, *args], env=env, capture_output=True, text=True,
                          timeout=timeout)

def status(sock):
    r = cli(sock, "status", "--json")
    return json.loads(r.stdout)[0] if r.returncode == 0 else None

def rate(ops, since):
    pts = [o for o in ops if o[0] >= since]
    if len(pts) < 2:
        return 0.0
    return (pts[-1][1] - pts[0][1]) / (pts[-1][0] - pts[0][0])

def proc(pid):
    rss = 0
    for l in open("/proc/%d/status" % pid):
        if l.startswith("VmRSS:"):
            rss = int(l.split()[1])
    return rss, len(os.listdir("/proc/%d/fd" % pid))

# Dormant: the same program, nothing armed.
dormant_s = max(10, secs // 10)
print("soak: %d s dormant, then %d s armed; work dir %s" % (dormant_s, secs, work),
      file=sys.stderr)
sock = os.path.join(work, "dormant.sock")
p, ops = start(sock, os.path.join(work, "dormant.jsonl"))
time.sleep(dormant_s)
dormant = rate(ops, ops[0][0] if ops else 0)
p.kill(); p.wait()

sock = os.path.join(work, "armed.sock")
p, ops = start(sock, out)
handle = src_line("    let item = route(&req.path).unwrap_or(0);")
make = src_line("        let req = make_request(k, n);")
long_lived = cli(sock, "arm", handle, "--log",
                 "req {req.id} {req.path} user={req.caller.user} tok={req.caller.token}",
                 "--rate", "200/s", "--ttl", "24h", "--json")
if long_lived.returncode != 0:
    sys.exit("soak: cannot arm: " + long_lived.stderr)
long_id = json.loads(long_lived.stdout)["probe"]
cycles = [0] * clients

def client(k):
    rnd = random.Random(k)
    kinds = [
        [handle, "--snapshot", "--max-hits", "5"],
        [handle, "--log", "{req.body.len()} {req.caller.scopes}", "--if", "req.caller.user == \"user3\""],
        ["fn:soak::checksum", "--count", "--every", "1s"],
        ["fn:soak::route", "--duration", "--every", "1s"],
        [make, "--log", "n={n}", "--if", "n > 1000"],
    ]
    while not stop.is_set():
        if rnd.random() < 0.1:
            # A snapshot that times out: its watch must be given back.
            cli(sock, "snapshot", handle, "--if", "req.id == 0", "--timeout", "300ms")
        else:
            r = cli(sock, "arm", *rnd.choice(kinds), "--json")
            if r.returncode == 0:
                pid_probe = json.loads(r.stdout)["probe"]
                time.sleep(rnd.uniform(0.1, 1.0))
                cli(sock, "disarm", pid_probe)
        cycles[k] += 1

tail_lines = [0]
def slow_tail():
    env = dict(os.environ, LPROBE_SOCKET=sock)
    t = subprocess.Popen([lprobe, "tail", "--json"], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    for _ in t.stdout:
        tail_lines[0] += 1
        time.sleep(0.02)  # a slow reader: 50 lines/s at most
        if stop.is_set():
            break
    t.kill(); t.wait()

rotations = [0]
def rotate():
    while not stop.wait(30):
        n = rotations[0] = rotations[0] + 1
        name = os.path.join(disk, "out.jsonl.%d" % n)
        if os.path.exists(out):
            os.rename(out, name)          # logrotate without copytruncate
            time.sleep(3)                 # the program reopens within a second
            shutil.move(name, rotated_dir)

fills = [0]
def fill():
    while mounted and not stop.wait(60):
        fills[0] += 1
        filler = os.path.join(disk, "filler")
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
            except OSError:
                pass
        stop.wait(10)
        os.remove(filler)

samples = []
last_long = [None]
def sample():
    t0 = time.monotonic()
    while not stop.wait(5):
        st = status(sock)
        rss, fds = proc(p.pid)
        # The long-lived probe's last status: once it stops (over its time budget) its
        # counters are final, and status forgets the oldest of 100 stopped probes.
        mine = [q for q in (st or {}).get("probes", []) if q["id"] == long_id]
        if mine:
            last_long[0] = mine[0]
        samples.append({"t": round(time.monotonic() - t0), "rss_kib": rss, "fds": fds,
                        "output": st and st.get("output"),
                        "dropped_by": st and st.get("dropped_by")})

workers = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
workers += [threading.Thread(target=f) for f in (slow_tail, rotate, fill, sample)]
t_start = time.monotonic()
for w in workers:
    w.start()
try:
    time.sleep(secs)
finally:
    stop.set()
for w in workers:
    w.join()
armed = rate(ops, t_start + 5)
alive = p.poll() is None
if not alive:
    failures.append("the program died")

# Drain: disarm everything, wait for the queue to empty, read the final accounts.
final = status(sock)
long_probe = next((q for q in final["probes"] if q["id"] == long_id), None) if final else None
long_probe = long_probe or last_long[0]
cli(sock, "disarm", "--all")
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    final = status(sock)
    o = final["output"]
    if o["pending"] == 0 and o["queued"] + o["notes"] == o["written"] + o["failed"]:
        break
    time.sleep(0.2)
time.sleep(1.5)  # the control thread's next tick prunes the last subscribers
rss_end, fds_end = proc(p.pid)
o = final["output"]
files = [out] + [os.path.join(rotated_dir, f) for f in os.listdir(rotated_dir)]
whole = 0
long_lines = 0
long_errors = 0  # its error records (over budget…), counted in `emitted` but not in `hits`
for path in files:
    if not os.path.exists(path):
        continue
    for line in open(path, errors="replace"):
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a line cut by a full disk, counted as failed
        whole += 1
        if rec.get("probe") == long_id:
            long_lines += 1
            long_errors += rec.get("kind") == "error"
        if "-secret" in line:
            failures.append("a token reached the output: " + line[:200])
            break
p.kill(); p.wait()
if mounted:
    subprocess.run(["umount", disk])

# Checks.
if o["queued"] + o["notes"] != o["written"] + o["failed"] or o["pending"] != 0:
    failures.append("output accounts do not add up: %s" % o)
if whole != o["written"]:
    failures.append("%d whole lines in the files, %d written" % (whole, o["written"]))
if long_probe is None:
    failures.append("the long-lived probe is gone")
else:
    if long_probe["hits"] + long_errors != long_probe["emitted"] + long_probe["dropped"]:
        failures.append("long-lived probe: hits + errors != emitted + dropped: %s" % long_probe)
    if not (long_probe["emitted"] - o["failed"] <= long_lines <= long_probe["emitted"]):
        failures.append("long-lived probe: %d lines for %d emitted, %d failed" %
                        (long_lines, long_probe["emitted"], o["failed"]))
warm = [s for s in samples if s["t"] >= max(30, secs // 5)]
rss_first = warm[0]["rss_kib"] if warm else samples[0]["rss_kib"]
rss_max = max(s["rss_kib"] for s in samples)
fds_start = samples[0]["fds"]
if fds_end > fds_start + 2:
    failures.append("descriptors grew: %d -> %d" % (fds_start, fds_end))
if rss_end > rss_first * 1.5 + 8192:
    failures.append("memory grew: %d -> %d KiB" % (rss_first, rss_end))

report = [
    "soak: %d s armed (after %d s dormant), %s worker threads, %d clients" %
    (secs, dormant_s, threads, clients),
    "  arm/disarm cycles: %s; rotations: %d; disk fills: %s; slow tail read %d lines" %
    (cycles, rotations[0], fills[0] if mounted else "skipped (not root)", tail_lines[0]),
    "  throughput: dormant %.0f ops/s, armed %.0f ops/s (%.1f%%)" %
    (dormant, armed, 100.0 * armed / dormant if dormant else 0),
    "  memory VmRSS: %d KiB at %d s, %d KiB max, %d KiB at the end" %
    (rss_first, warm[0]["t"] if warm else 0, rss_max, rss_end),
    "  descriptors: %d at 5 s, max %d, %d at the end" %
    (fds_start, max(s["fds"] for s in samples), fds_end),
    "  output: %s; whole lines in %d files: %d" % (o, len(files), whole),
    "  dropped_by: %s" % final["dropped_by"],
    "  long-lived log probe: %s" % ({k: long_probe[k] for k in
     ("hits", "emitted", "dropped", "limit", "state")} if long_probe else None) +
    "; its lines written: %d (%d error records)" % (long_lines, long_errors),
    "  result: " + ("ok" if not failures else "FAILED: " + "; ".join(failures)),
]
text = "\n".join(report)
print(text)
with open(os.path.join(work, "report.txt"), "w") as f:
    f.write(text + "\n")
with open(os.path.join(work, "samples.json"), "w") as f:
    json.dump(samples, f)
sys.exit(1 if failures else 0)
PY
