//! The program never pays for lprobe's failures: clients that leave give their descriptors
//! back, and records that cannot be written are counted, then written again when they can.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

fn demo(env: &[(&str, &str)]) -> Running {
    let t = build_once("demo-app", &["--release", "--lines", "all"]);
    let mut env = env.to_vec();
    env.push(("DEMO_INTERVAL_MS", "20"));
    start(&t.join("lprobe/release/demo-app"), &env)
}

/// Descriptors the process has open.
/// What each of the process's open descriptors is (`readlink` of `/proc/PID/fd/N`).
fn fds(pid: u32) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|t| t.display().to_string())
        .collect()
}

/// The process's descriptors once two reads 300 ms apart agree (10 s at most): the
/// connection of the last `lprobe` command may still be open in the program when the command
/// has its answer, and a baseline with it would let a leak of one go unseen.
fn settled_fds(pid: u32) -> Vec<String> {
    let start = std::time::Instant::now();
    let mut last = fds(pid);
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = fds(pid);
        if now.len() == last.len() || start.elapsed() > Duration::from_secs(10) {
            return now;
        }
        last = now;
    }
}

/// Waits (10 s at most) until the process holds no more descriptors than `base`; a timeout
/// names the ones beyond it, so a leak says what leaked (a socket, a file, a pipe).
fn wait_for_descriptors(pid: u32, base: &[String], what: &str) {
    let limit = Duration::from_secs(10);
    let start = std::time::Instant::now();
    loop {
        let now = fds(pid);
        if now.len() <= base.len() {
            return;
        }
        if start.elapsed() > limit {
            let mut beyond = now.clone();
            for b in base {
                if let Some(i) = beyond.iter().position(|t| t == b) {
                    beyond.swap_remove(i);
                }
            }
            panic!(
                "timed out after {limit:?} waiting for {what}: {} descriptors open, {} at the baseline; not in it: {beyond:?}",
                now.len(),
                base.len()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Opens a `watch` through the raw socket and returns the stream and its first line.
fn watch(r: &Running, args: &str) -> (UnixStream, Value) {
    let mut s = UnixStream::connect(&r.socket).expect("connect");
    s.write_all(format!("lprobe/1 watch {args}\n").as_bytes())
        .expect("write request");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).expect("first line");
    let v = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    (s, v)
}

fn status(r: &Running) -> Value {
    let out = lprobe(r, &["status", "--json"]);
    let st: Value = serde_json::from_str(&stdout(&out)).expect("status json");
    st[0].clone()
}

#[test]
fn watch_clients_that_leave_give_their_descriptors_back() {
    let r = demo(&[]);
    let pid = r.child.id();
    let base = settled_fds(pid);
    // Snapshots that time out: the CLI disarms the probe and leaves.
    for _ in 0..20 {
        let out = lprobe(
            &r,
            &[
                "snapshot",
                "src/main.rs:57",
                "--if",
                "n == 0",
                "--timeout",
                "300ms",
            ],
        );
        assert!(
            !out.status.success(),
            "n is never 0: the snapshot times out"
        );
    }
    // Clients that disconnect without disarming: their probes stay armed, never hit.
    for _ in 0..5 {
        let (s, first) = watch(&r, "src/main.rs:57 --if 'n == 0'");
        assert_eq!(first["ok"], true, "{first}");
        drop(s);
    }
    wait_for_descriptors(
        pid,
        &base,
        "the program's descriptors to return to their baseline",
    );

    // Streaming clients are capped, with a clear error; leaving frees the places.
    let mut open = Vec::new();
    let refused = loop {
        let (s, first) = watch(&r, "src/main.rs:57 --if 'n == 0'");
        if first["ok"] != true {
            break first;
        }
        open.push(s);
        assert!(open.len() <= 64, "no cap on streaming clients");
    };
    assert_eq!(open.len(), 32, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.contains("too many streaming clients")),
        "{refused}"
    );
    let tail = lprobe(&r, &["tail"]);
    assert!(!tail.status.success(), "tail is refused too");
    assert!(
        stderr(&tail).contains("too many streaming clients"),
        "{}",
        stderr(&tail)
    );
    open.clear();
    wait_for_descriptors(pid, &base, "the places and descriptors to be given back");
    let (_s, first) = watch(&r, "src/main.rs:57 --if 'n == 0'");
    assert_eq!(first["ok"], true, "{first}");
    // The watch of a snapshot that fires still gets its record.
    let out = lprobe(
        &r,
        &["snapshot", "src/main.rs:57", "--json", "--timeout", "20s"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(status(&r)["probes"].is_array());
}

fn arm_log(r: &Running) -> String {
    let out = lprobe(
        r,
        &[
            "arm",
            "src/main.rs:42",
            "--log",
            "order {order.id}",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let armed: Value = serde_json::from_str(stdout(&out).trim()).expect("arm --json");
    armed["probe"].as_str().expect("probe id").to_owned()
}

#[test]
fn records_follow_the_output_file_when_it_is_rotated() {
    let r = demo(&[]);
    let probe = arm_log(&r);
    wait_records(&r, 3, "log records", |v| v["probe"] == probe.as_str());
    // logrotate without copytruncate: rename, and the program is not told.
    let rotated = r.output.with_extension("jsonl.1");
    std::fs::rename(&r.output, &rotated).expect("rotate");
    let fresh = wait_records(&r, 3, "log records in a new file at the path", |v| {
        v["probe"] == probe.as_str()
    });
    assert!(fresh.iter().all(|v| v["kind"] == "log"));
    let meta = std::fs::metadata(&r.output).expect("new file");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    // Deleted: created again.
    std::fs::remove_file(&r.output).expect("delete");
    wait_records(&r, 3, "log records in a recreated file", |v| {
        v["probe"] == probe.as_str()
    });
}

#[test]
fn write_errors_are_counted_in_status() {
    let r = demo(&[("LPROBE_OUTPUT", "/dev/full")]);
    arm_log(&r);
    let st = wait_for(Duration::from_secs(20), "write errors in status", || {
        let st = status(&r);
        (st["dropped_by"]["write"].as_u64()? >= 3).then_some(st)
    });
    let by = &st["dropped_by"];
    let sum: u64 = ["rate", "budget", "queue", "write", "stack", "busy"]
        .iter()
        .map(|k| by[k].as_u64().expect("a count per reason"))
        .sum();
    assert_eq!(st["dropped_total"].as_u64(), Some(sum), "{st}");
}

#[test]
fn the_output_resumes_when_writes_succeed_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("records.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    // Reads lines from the FIFO in a thread (opening it waits for the writer).
    let read = |fifo: std::path::PathBuf, n: usize| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let f = std::fs::File::open(&fifo).expect("open fifo");
            for line in BufReader::new(f).lines().take(n) {
                if tx.send(line.expect("line")).is_err() {
                    break;
                }
            }
        });
        rx
    };
    let first = read(fifo.clone(), 3);
    let r = demo(&[("LPROBE_OUTPUT", fifo.to_str().expect("utf-8"))]);
    arm_log(&r);
    for _ in 0..3 {
        let line = first
            .recv_timeout(Duration::from_secs(20))
            .expect("a record through the FIFO");
        assert!(line.contains("\"kind\":\"log\""), "{line}");
    }
    // The reader closed its end: writes fail (EPIPE), each record counted.
    wait_for(Duration::from_secs(20), "write errors in status", || {
        (status(&r)["dropped_by"]["write"].as_u64()? > 0).then_some(())
    });
    // A reader again: records flow, after a note of what was lost.
    let second = read(fifo.clone(), 5);
    let lines: Vec<String> = (0..5)
        .map(|_| {
            second
                .recv_timeout(Duration::from_secs(20))
                .expect("records after the reader came back")
        })
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("records lost; writing again")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .filter(|l| l.contains("\"kind\":\"log\""))
            .count()
            >= 3,
        "{lines:?}"
    );
}

/// A small tmpfs mounted for one test (root only), unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// `None` (and a message) when this cannot mount: not root, or no `mount`.
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().expect("tempdir");
        let ok = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipping: cannot mount a tmpfs here (needs root)");
            return None;
        }
        Some(SmallDisk { dir })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

/// Fills the file system holding `path` with one file; returns it.
fn fill(dir: &std::path::Path) -> std::path::PathBuf {
    let filler = dir.join("filler");
    let mut f = std::fs::File::create(&filler).expect("filler");
    let block = vec![0u8; 4096];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
    filler
}

#[test]
fn a_full_disk_is_counted_per_reason_and_writing_resumes_when_space_returns() {
    let Some(disk) = SmallDisk::mount("256k") else {
        return;
    };
    let out = disk.dir.path().join("records.jsonl");
    let r = demo(&[("LPROBE_OUTPUT", out.to_str().expect("utf-8"))]);
    let probe = arm_log(&r);
    let count = |p: &str| {
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(p))
            .count()
    };
    wait_for(Duration::from_secs(20), "records on the small disk", || {
        (count(&probe) >= 3).then_some(())
    });
    let filler = fill(disk.dir.path());
    // ENOSPC: each record is lost and counted as a write error; the program runs on.
    let st = wait_for(Duration::from_secs(20), "write errors in status", || {
        let st = status(&r);
        (st["dropped_by"]["write"].as_u64()? >= 5).then_some(st)
    });
    let by = &st["dropped_by"];
    let sum: u64 = ["rate", "budget", "queue", "write", "stack", "busy"]
        .iter()
        .map(|k| by[k].as_u64().expect("a count per reason"))
        .sum();
    assert_eq!(st["dropped_total"].as_u64(), Some(sum), "{st}");
    let human = stdout(&lprobe(&r, &["status"]));
    // The human form names the reason too (the numbers grow meanwhile).
    assert!(
        human
            .lines()
            .any(|l| l.starts_with("dropped records (all probes): ") && l.contains("write ")),
        "{human}"
    );
    let before = count(&probe);
    // Space returns: the next records are written, after a note of how many were lost.
    std::fs::remove_file(&filler).expect("free the disk");
    wait_for(
        Duration::from_secs(20),
        "records again after space returned",
        || (count(&probe) >= before + 3).then_some(()),
    );
    let text = std::fs::read_to_string(&out).expect("records");
    assert!(
        text.contains("records lost; writing again") && text.contains("No space left"),
        "{}",
        &text[text.len().saturating_sub(2000)..]
    );
    // Nothing lost silently: once the queue is empty, every record queued and every note
    // of the writer's was written or counted as failed, and the file holds exactly the
    // whole lines written (and a line cut when the disk filled, ended before the next).
    assert!(lprobe(&r, &["disarm", "--all"]).status.success());
    let o = wait_for(Duration::from_secs(20), "the queue to drain", || {
        let o = status(&r)["output"].clone();
        let n = |k: &str| o[k].as_u64();
        (n("pending")? == 0 && n("queued")? + n("notes")? == n("written")? + n("failed")?)
            .then_some(o)
    });
    let lines = std::fs::read_to_string(&out)
        .expect("records")
        .lines()
        .filter(|l| serde_json::from_str::<Value>(l).is_ok())
        .count() as u64;
    assert_eq!(Some(lines), o["written"].as_u64(), "{o}");
    assert!(
        o["failed"].as_u64() >= st["dropped_by"]["write"].as_u64(),
        "{o}"
    );
    drop(r);
}
