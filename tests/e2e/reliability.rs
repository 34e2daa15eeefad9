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
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
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
    let base = fds(pid);
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
    wait_for(
        Duration::from_secs(10),
        "the program's descriptors to return to their baseline",
        || (fds(pid) <= base).then_some(()),
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
    wait_for(
        Duration::from_secs(10),
        "the places and descriptors to be given back",
        || (fds(pid) <= base).then_some(()),
    );
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
