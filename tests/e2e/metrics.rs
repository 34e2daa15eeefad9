//! Value metrics (`--histogram EXPR`, `--gauge EXPR`) on `fixtures/panic-app` run without a
//! panic: 100 steps whose `i` goes 0..=99 and whose `order.items` always holds 3 items.

use serde_json::json;

use crate::harness::*;

#[test]
fn histograms_and_gauges_summarise_a_path_and_a_non_number_is_one_error() {
    let t = build_once("panic-app", &["--entry", "all", "--profile", "dev"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let go = dir.path().join("go");
    let r = start(
        &t.join("lprobe/debug/panic-app"),
        &[
            ("PANIC_GO", go.to_str().expect("utf-8")),
            ("PANIC_MODE", "none"),
            ("PANIC_THREAD", "caught"),
            ("ITERATIONS", "100"),
        ],
    );
    let hist = arm(
        &r,
        &["fn:panic_app::step", "--histogram", "i", "--every", "200ms"],
    );
    let gauge = arm(
        &r,
        &[
            "fn:panic_app::step",
            "--gauge",
            "order.items.len()",
            "--every",
            "200ms",
        ],
    );
    let id = arm(
        &r,
        &[
            "fn:panic_app::step",
            "--gauge",
            "order.id",
            "--every",
            "200ms",
        ],
    );
    let bad = arm(&r, &["fn:panic_app::step", "--histogram", "order.note"]);
    // A path the site does not capture is refused at arming.
    let refused = lprobe(
        &r,
        &["arm", "fn:panic_app::step", "--histogram", "nope.len()"],
    );
    assert!(!refused.status.success());
    std::fs::write(&go, "").expect("go");

    let h = wait_records(&r, 1, "a histogram record of 100 values", |v| {
        v["probe"] == hist.as_str() && v["histogram"]["count"] == 100
    });
    let h = &h[0];
    assert_eq!(h["kind"], "histogram");
    assert_eq!(h["expr"], "i");
    let src = std::fs::read_to_string(repo().join("fixtures/panic-app/src/main.rs")).expect("read");
    let line = src
        .lines()
        .position(|l| l.starts_with("fn step("))
        .expect("fn step")
        + 1;
    assert_eq!(h["site"], format!("src/main.rs:{line}"));
    let s = &h["histogram"];
    assert_eq!(
        (s["min"].clone(), s["max"].clone(), s["sum"].clone()),
        (json!(0), json!(99), json!(4950))
    );
    // Quantiles within the buckets' 1/32: the 50th of 0..=99 is 49, the 90th 89, the 99th 98.
    for (q, want) in [("p50", 49.0), ("p90", 89.0), ("p99", 98.0)] {
        let got = s[q].as_f64().expect(q);
        assert!(
            (got - want).abs() <= want / 32.0 + 1e-9,
            "{q} = {got}, want {want}"
        );
    }
    let g = wait_records(&r, 1, "a gauge record", |v| {
        v["probe"] == gauge.as_str() && v["gauge"]["count"] == 100
    });
    assert_eq!(g[0]["kind"], "gauge");
    assert_eq!(
        g[0]["gauge"],
        json!({"count": 100, "last": 3, "min": 3, "max": 3})
    );
    let g = wait_records(&r, 1, "the id gauge", |v| {
        v["probe"] == id.as_str() && v["gauge"]["count"] == 100
    });
    assert_eq!(
        g[0]["gauge"],
        json!({"count": 100, "last": 99, "min": 0, "max": 99})
    );

    // A string is not a number: one error record, the probe stays armed and counts errors.
    let errors = wait_records(&r, 1, "the metric's error", |v| {
        v["probe"] == bad.as_str() && v["kind"] == "error"
    });
    assert_eq!(errors.len(), 1);
    let e = errors[0]["error"].as_str().expect("error text");
    assert!(
        e.contains("--histogram order.note: a string is not a number"),
        "{e}"
    );
    let st = probe_status(&r, &bad);
    assert_eq!(st["state"], "armed");
    assert_eq!(st["errors"], 100);

    // `status` carries the summaries.
    let st = probe_status(&r, &hist);
    assert_eq!(st["actions"], json!(["histogram"]));
    assert_eq!(st["expr"], "i");
    assert_eq!(st["histogram"]["count"], 100);
    assert_eq!(probe_status(&r, &gauge)["gauge"]["last"], 3);
    let text = stdout(&lprobe(&r, &["status"]));
    assert!(
        text.contains("gauge order.items.len(): last=3 min=3 max=3 n=100"),
        "{text}"
    );
}
