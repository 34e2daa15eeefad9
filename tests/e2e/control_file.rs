//! Arming from a control file: valid lines arm, bad lines are reported, changes apply.

use serde_json::Value;

use crate::harness::*;

#[test]
fn control_file_lines_arm_and_bad_lines_are_reported() {
    let t = build_once("demo-app", &["--release", "--lines", "all"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let control = dir.path().join("probes.conf");
    write_control(
        &control,
        "# probes for the demo\nsrc/main.rs:42 --log \"id={order.id}\"\nsrc/main.rs:42 --log \"{missing}\"\nsrc/main.rs:42 --bogus\n",
    );
    let r = start(
        &t.join("lprobe/release/demo-app"),
        &[
            ("DEMO_INTERVAL_MS", "20"),
            ("LPROBE_CONTROL", control.to_str().expect("utf-8 path")),
        ],
    );
    let logs = wait_records(&r, 2, "logs from the control file", |v| v["kind"] == "log");
    assert!(logs
        .iter()
        .all(|v| v["msg"].as_str().is_some_and(|m| m.starts_with("id="))));
    let errors = wait_records(&r, 2, "control file errors", |v| v["kind"] == "error");
    let texts: Vec<&str> = errors.iter().filter_map(|v| v["error"].as_str()).collect();
    assert!(
        texts
            .iter()
            .any(|e| e.contains(":3:") && e.contains("'missing' is not captured")),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|e| e.contains(":4:") && e.contains("unknown option '--bogus'")),
        "{texts:?}"
    );
    let st: Value =
        serde_json::from_str(&stdout(&lprobe(&r, &["status", "--json"]))).expect("status");
    assert_eq!(
        st[0]["control"]["errors"].as_array().map(Vec::len),
        Some(2),
        "{st}"
    );
    assert_eq!(st[0]["probes"].as_array().map(Vec::len), Some(1), "{st}");

    // Replace the file atomically (as a ConfigMap update does): the old probe goes, the new
    // one comes.
    let tmp = dir.path().join("probes.conf.new");
    write_control(
        &tmp,
        "fn:demo_app::billing::Invoice::for_order --count --every 1s\n",
    );
    std::fs::rename(&tmp, &control).expect("rename");
    wait_for(
        std::time::Duration::from_secs(5),
        "the new control file to apply",
        || {
            let st: Value =
                serde_json::from_str(&stdout(&lprobe(&r, &["status", "--json"]))).ok()?;
            let probes = st[0]["probes"].as_array()?;
            (probes.len() == 1
                && probes[0]["location"] == "fn:demo_app::billing::Invoice::for_order"
                && st[0]["control"]["errors"].as_array()?.is_empty())
            .then_some(())
        },
    );
    wait_records(&r, 1, "count records", |v| v["kind"] == "count");
}

#[test]
fn a_control_file_anyone_may_write_is_refused_whole_and_changes_nothing() {
    use std::os::unix::fs::PermissionsExt;
    let t = build_once("demo-app", &["--release", "--lines", "all"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let control = dir.path().join("probes.conf");
    write_control(&control, "src/main.rs:42 --count --every 1s\n");
    let r = start(
        &t.join("lprobe/release/demo-app"),
        &[
            ("LPROBE_CONTROL", control.to_str().expect("utf-8")),
            ("DEMO_INTERVAL_MS", "10"),
        ],
    );
    let status = || -> Value {
        serde_json::from_str(&stdout(&lprobe(&r, &["status", "--json"]))).expect("status")
    };
    wait_for(
        std::time::Duration::from_secs(5),
        "the control file",
        || (status()[0]["probes"].as_array()?.len() == 1).then_some(()),
    );
    // Made writable by every user, with a new line: refused as a whole, reported once, and
    // the probe it armed before stays.
    // Written beside it with its new mode, then renamed over it: the program sees the old
    // file or the new one, never the new lines under the old mode.
    let next = dir.path().join("probes.conf.new");
    std::fs::write(&next, "src/main.rs:42 --count\nsrc/main.rs:57 --snapshot\n").expect("write");
    std::fs::set_permissions(&next, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    std::fs::rename(&next, &control).expect("rename");
    let recs = wait_records(&r, 1, "the refusal", |v| {
        v["kind"] == "error"
            && v["error"]
                .as_str()
                .is_some_and(|e| e.contains("writable by every user"))
    });
    assert_eq!(recs.len(), 1);
    let st = status();
    assert_eq!(st[0]["probes"].as_array().map(Vec::len), Some(1), "{st}");
    assert!(
        st[0]["control"]["errors"][0]
            .as_str()
            .is_some_and(|e| e.contains("chmod o-w")),
        "{st}"
    );
    // Made private again: its lines apply.
    std::fs::set_permissions(&control, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    wait_for(
        std::time::Duration::from_secs(5),
        "the fixed control file",
        || {
            let st = status();
            (st[0]["probes"].as_array()?.len() == 2
                && st[0]["control"]["errors"].as_array()?.is_empty())
            .then_some(())
        },
    );
}
