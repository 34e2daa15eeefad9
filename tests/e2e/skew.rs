//! Version skew: `lprobe list` and `lprobe arm FILE:LINE` compare the process's files with the
//! workspace on disk and say when a file changed since the build, with the process's own text
//! of the line.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::harness::*;

/// `lprobe ARGS` run from `dir` (the workspace whose files are compared).
fn lprobe_in(r: &Running, dir: &Path, args: &[&str]) -> Output {
    Command::new(LPROBE)
        .args(args)
        .current_dir(dir)
        .env("LPROBE_SOCKET", &r.socket)
        .output()
        .expect("run lprobe")
}

const LINE_42: &str = "let customer = order.customer.as_str();";

#[test]
fn arm_and_list_warn_when_the_file_on_disk_changed_since_the_build() {
    let t = build_once("demo-app", &["--release", "--lines", "all"]);
    let r = start(
        &t.join("lprobe/release/demo-app"),
        &[("DEMO_INTERVAL_MS", "20")],
    );
    let pid = r.child.id();
    // A copy of the sources the process was built from: nothing to say.
    let ws = tempfile::tempdir().expect("tempdir");
    private_copy("demo-app", ws.path());
    let sub = ws.path().join("src");
    let out = lprobe_in(&r, &sub, &["arm", "src/main.rs:42", "--count"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    let out = lprobe_in(&r, &sub, &["arm", "main.rs:42", "--count", "--json"]);
    let v: Value = serde_json::from_str(stdout(&out).trim()).expect("arm --json");
    assert!(v.get("warning").is_none(), "{v}");
    let out = lprobe_in(&r, ws.path(), &["list", "main.rs", "--json"]);
    let sites: Value = serde_json::from_str(stdout(&out).trim()).expect("list --json");
    assert!(sites.as_array().is_some_and(|s| !s.is_empty()));
    assert!(sites
        .as_array()
        .into_iter()
        .flatten()
        .all(|s| s.get("warning").is_none()));

    // Edit the copy: a line at the top moves every line down by one.
    let main = ws.path().join("src/main.rs");
    let text = std::fs::read_to_string(&main).expect("read main.rs");
    std::fs::write(&main, format!("// a new first line\n{text}")).expect("edit main.rs");
    assert!(text.lines().nth(41).is_some_and(|l| l.trim() == LINE_42));
    let want =
        format!("src/main.rs changed since pid {pid} was built; line 42 there is `{LINE_42}`");

    let out = lprobe_in(&r, &sub, &["arm", "src/main.rs:42", "--log", "{total}"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("armed p"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(&format!("warning: {want}")),
        "{}",
        stderr(&out)
    );

    let out = lprobe_in(
        &r,
        ws.path(),
        &["arm", "src/main.rs:42", "--count", "--json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(stdout(&out).trim()).expect("arm --json");
    assert_eq!(v["warning"], want.as_str(), "{v}");
    assert_eq!(v["site"], "src/main.rs:42");

    // A function pattern does not depend on lines: no warning.
    let out = lprobe_in(
        &r,
        ws.path(),
        &["arm", "fn:demo_app::process_order", "--count"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));

    let out = lprobe_in(&r, ws.path(), &["list", "main.rs:42", "--json"]);
    let sites: Value = serde_json::from_str(stdout(&out).trim()).expect("list --json");
    let at_42: Vec<&Value> = sites
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["line"] == 42)
        .collect();
    assert!(!at_42.is_empty(), "{sites}");
    assert!(
        at_42.iter().all(|s| s["warning"] == want.as_str()),
        "{sites}"
    );
    // billing.rs did not change: its sites carry no warning.
    let out = lprobe_in(&r, ws.path(), &["list", "billing.rs", "--json"]);
    let sites: Value = serde_json::from_str(stdout(&out).trim()).expect("list --json");
    assert!(sites
        .as_array()
        .into_iter()
        .flatten()
        .all(|s| s.get("warning").is_none()));

    let out = lprobe_in(&r, ws.path(), &["list", "main.rs"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "warning: src/main.rs changed since pid {pid} was built; its sites below are at the lines it was built with"
        )),
        "{}",
        stderr(&out)
    );
}
