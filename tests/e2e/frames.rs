//! `--snapshot --frames N` on `fixtures/frames-app`, whose call chain is known: a snapshot in
//! `price` shows `checkout` and `handle` as its callers, with their arguments and the lines
//! the calls are at; a snapshot under a polled future shows the synchronous callers of the
//! poll, never the future.

use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

fn frames_app() -> Running {
    let t = build_once(
        "frames-app",
        &["--release", "--entry", "all", "--lines", "all"],
    );
    start(
        &t.join("lprobe/release/frames-app"),
        &[("FRAMES_INTERVAL_MS", "5")],
    )
}

/// The one snapshot record of probe `id`.
fn snapshot_of(r: &Running, id: &str) -> Value {
    wait_records(r, 1, "the snapshot", |v| {
        v["probe"] == id && v["kind"] == "snapshot"
    })
    .remove(0)
}

#[test]
fn a_snapshot_with_frames_shows_its_callers_arguments_and_call_lines() {
    let r = frames_app();
    // `let net = …` in `price`, on the checkout path only.
    let id = arm(
        &r,
        &[
            "src/main.rs:38",
            "--snapshot",
            "--frames",
            "4",
            "--if",
            "code == \"SAVE10\"",
        ],
    );
    let s = snapshot_of(&r, &id);
    let total = s["vars"]["total"].as_u64().expect("total");
    let frames = s["frames"].as_array().expect("frames");
    let fns: Vec<&str> = frames
        .iter()
        .map(|f| f["fn"].as_str().unwrap_or("?"))
        .collect();
    // `main` entered before the probe was armed: not a frame.
    assert_eq!(fns, ["frames_app::checkout", "frames_app::handle"], "{s}");
    let (checkout, handle) = (&frames[0], &frames[1]);
    assert_eq!(checkout["line"], 33, "the call of price: {s}");
    assert_eq!(handle["line"], 23, "the call of checkout: {s}");
    assert_eq!(checkout["site"], "src/main.rs:30", "{s}");
    assert_eq!(handle["site"], "src/main.rs:18", "{s}");
    let n = handle["vars"]["n"].as_u64().expect("n");
    assert_eq!(handle["vars"]["user"], "alice", "{s}");
    assert_eq!(checkout["vars"]["cart"]["id"], n, "{s}");
    assert_eq!(
        checkout["vars"]["cart"]["items"],
        serde_json::json!([3, 4, 5]),
        "{s}"
    );
    let extra = checkout["vars"]["extra"].as_u64().expect("extra");
    assert_eq!(extra, n % 7, "{s}");
    assert_eq!(total, 120 + extra, "frame 0's own locals: {s}");
    assert!(s.get("frames_more").is_none(), "{s}");

    // Fewer frames than callers: the innermost, and how many more.
    let id = arm(
        &r,
        &[
            "src/main.rs:38",
            "--snapshot",
            "--frames",
            "1",
            "--if",
            "code == \"SAVE10\"",
        ],
    );
    let s = snapshot_of(&r, &id);
    let frames = s["frames"].as_array().expect("frames");
    assert_eq!(frames.len(), 1, "{s}");
    assert_eq!(frames[0]["fn"], "frames_app::checkout", "{s}");
    assert_eq!(s["frames_more"], 1, "{s}");

    // With the callers' locals: those captured at the statement each call is at.
    let id = arm(
        &r,
        &[
            "src/main.rs:38",
            "--snapshot",
            "--frames",
            "2",
            "--frame-locals",
            "--if",
            "code == \"SAVE10\"",
        ],
    );
    let s = snapshot_of(&r, &id);
    let total = s["vars"]["total"].as_u64().expect("total");
    let checkout = &s["frames"][0];
    assert_eq!(checkout["at"], 33, "{s}");
    assert_eq!(checkout["locals"]["sum"], 12, "{s}");
    assert_eq!(
        checkout["locals"]["total"], total,
        "the argument it passed: {s}"
    );
    let handle = &s["frames"][1];
    assert_eq!(handle["at"], 23, "{s}");
    assert_eq!(handle["locals"]["cart"]["id"], handle["vars"]["n"], "{s}");

    // Once the probe is spent, the callers' sites are disarmed with it.
    wait_for(Duration::from_secs(10), "the probe to be exhausted", || {
        (probe_status(&r, &id)["state"] == "exhausted").then_some(())
    });
    let status = lprobe(&r, &["status", "--json"]);
    let v: Value = serde_json::from_str(&stdout(&status)).expect("status json");
    assert_eq!(
        v[0]["probes"]
            .as_array()
            .map(|p| p.iter().filter(|p| p["state"] == "armed").count()),
        Some(0)
    );
    assert_eq!(
        probe_status(&r, &id)["site"],
        "src/main.rs:38",
        "only its own site is listed"
    );
}

#[test]
fn under_a_polled_future_the_frames_are_the_polls_callers() {
    let r = frames_app();
    // `price` called from `async fn ship`, polled by `block_on`, called by `drive`.
    let id = arm(
        &r,
        &[
            "src/main.rs:38",
            "--snapshot",
            "--frames",
            "8",
            "--if",
            "code == \"NONE\"",
        ],
    );
    let s = snapshot_of(&r, &id);
    let frames = s["frames"].as_array().expect("frames");
    let fns: Vec<&str> = frames
        .iter()
        .map(|f| f["fn"].as_str().unwrap_or("?"))
        .collect();
    assert!(
        !fns.iter().any(|f| f.contains("ship")),
        "an async fn is never a frame: {s}"
    );
    assert_eq!(fns.last(), Some(&"frames_app::drive"), "{s}");
    let drive = frames.last().expect("drive");
    assert_eq!(drive["vars"]["n"], s["vars"]["total"], "{s}");
    assert_eq!(drive["line"], 71, "the call of block_on: {s}");
    let block_on = &frames[frames.len() - 2];
    assert_eq!(block_on["fn"], "frames_app::block_on", "{s}");
    assert_eq!(block_on["line"], 64, "the poll: {s}");
}
