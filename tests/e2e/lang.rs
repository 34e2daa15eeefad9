//! The probe language and its guard rails, on `fixtures/lang-app`: conditions, templates,
//! structured values, truncation, panicking and re-entrant `Debug`, durations, tictoc, limits,
//! the output budget and redaction.

use serde_json::Value;

use crate::harness::*;

/// `src/main.rs:N` for the line marked `@site:NAME` in the fixture.
fn site(name: &str) -> String {
    let src = std::fs::read_to_string(repo().join("fixtures/lang-app/src/main.rs"))
        .expect("read fixture");
    let marker = format!("@site:{name}");
    let n = src
        .lines()
        .position(|l| l.contains(&marker))
        .unwrap_or_else(|| panic!("no {marker} in the fixture"));
    format!("src/main.rs:{}", n + 1)
}

fn app(env: &[(&str, &str)]) -> Running {
    // Every function: the probe language is tried on small ones too.
    let t = build_once(
        "lang-app",
        &["--release", "--lines", "all", "--entry", "all"],
    );
    start(&t.join("lprobe/release/lang-app"), env)
}

fn of(recs: &[Value], probe: &str) -> Vec<Value> {
    recs.iter()
        .filter(|v| v["probe"] == probe)
        .cloned()
        .collect()
}

#[test]
fn lines_of_a_loop_that_never_returns_fire_from_its_next_iteration() {
    // `main`'s loop runs from the start and never returns; at every line its body, and the
    // body of the loop nested in it, are written twice (dormant, instrumented): armed while
    // it runs, each line fires from its loop's next iteration, with the iteration's values.
    let r = app(&[("LANG_INTERVAL_MS", "3")]);
    let rate = ["--rate", "100000/s"];
    let outer = arm(
        &r,
        &[&site("main_loop"), "--log", "n={n}", rate[0], rate[1]],
    );
    let inner = arm(
        &r,
        &[
            &site("nested_loop"),
            "--log",
            "n={n} half={half}",
            rate[0],
            rate[1],
        ],
    );
    let recs = wait_for(std::time::Duration::from_secs(20), "loop logs", || {
        let recs = records(&r);
        (of(&recs, &outer).len() >= 4 && of(&recs, &inner).len() >= 8).then_some(recs)
    });
    let ns: Vec<u64> = of(&recs, &outer)
        .iter()
        .filter_map(|v| v["msg"].as_str()?.strip_prefix("n=")?.parse().ok())
        .collect();
    assert!(ns.len() >= 4, "{recs:?}");
    assert!(
        ns.windows(2).all(|w| w[1] == w[0] + 1),
        "every iteration: {ns:?}"
    );
    // The nested loop's two iterations per outer one, each with its own value.
    let inner_msgs: Vec<String> = of(&recs, &inner)
        .iter()
        .filter_map(|v| Some(v["msg"].as_str()?.to_owned()))
        .collect();
    let first = inner_msgs
        .iter()
        .filter_map(|m| m.strip_prefix("n=")?.split(' ').next()?.parse::<u64>().ok())
        .min()
        .expect("inner logs");
    // (The iteration the probe was armed in may have logged its second half only.)
    let n = first + 1;
    for half in ["1", "2"] {
        assert!(
            inner_msgs.contains(&format!("n={n} half={half}")),
            "{inner_msgs:?}"
        );
    }
}

#[test]
fn conditional_log_with_paths_indexes_and_len() {
    let r = app(&[]);
    let p = arm(
        &r,
        &[
            &site("served"),
            "--log",
            "{user.name} #{order.id} tags={user.tags.len()} first={order.items[0].sku} qty0={order.items[0].qty} {{literal}}",
            "--if",
            "order.id > 3 && user.name != \"bob\" && order.items.len() >= 2",
        ],
    );
    let logs = wait_records(&r, 5, "conditional logs", |v| v["probe"] == p.as_str());
    for rec in &logs {
        let msg = rec["msg"].as_str().expect("msg");
        let id: u64 = msg
            .split('#')
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .expect("id");
        // The fixture's values are a function of the order id.
        let name = ["alice", "bob", "carol", "dave"][(id % 4) as usize];
        assert!(id > 3 && name != "bob" && id % 4 + 1 >= 2, "{msg}");
        assert_eq!(
            msg,
            format!(
                "{name} #{id} tags={} first=sku-0 qty0=1 {{literal}}",
                id % 3 + 1
            )
        );
    }
}

#[test]
fn snapshot_values_are_structured_truncated_and_survive_bad_debug() {
    let r = app(&[]);
    let out = lprobe(
        &r,
        &["snapshot", &site("served"), "--json", "--timeout", "20s"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let snap: Value = serde_json::from_str(stdout(&out).trim()).expect("snapshot json");
    let vars = &snap["vars"];
    let id = vars["n"].as_u64().expect("n");
    let order = &vars["order"];
    assert_eq!(order["id"].as_u64(), Some(id));
    assert_eq!(
        order["items"][0],
        serde_json::json!({"sku": "sku-0", "qty": 1})
    );
    assert_eq!(
        order["items"].as_array().map(Vec::len),
        Some((id % 4 + 1) as usize)
    );
    assert_eq!(
        order["note"],
        if id.is_multiple_of(2) {
            Value::from("gift")
        } else {
            Value::Null
        }
    );
    // Truncation is marked, never silent.
    let big = vars["big"].as_array().expect("big is an array");
    assert_eq!(big.len(), 26, "{big:?}");
    assert_eq!(big[24], 24);
    assert_eq!(big[25], "<+75 more>");
    let long = vars["long"].as_str().expect("long is a string");
    assert!(
        long.starts_with(&"x".repeat(256)) && long.ends_with("…<+744 chars>"),
        "{long}"
    );
    // A panicking Debug becomes a marker; the rest of the record stands.
    assert_eq!(vars["grumpy"], format!("<panicked: grumpy debug {id}>"));
    // A Debug that calls instrumented code works (and does not recurse into probes).
    assert_eq!(vars["chatty"], serde_json::json!({"Chatty": id * 2}));
    // A type without `Debug`, held or behind a `&mut`: its name, nothing dropped.
    assert_eq!(vars["quiet"], "<lang_app::Mute: no Debug>");
    assert_eq!(vars["quiet_ref"], "<lang_app::Mute: no Debug>");
    // A mutex the thread holds is shown as locked, without blocking.
    assert!(
        vars["lock"].to_string().contains("locked"),
        "{}",
        vars["lock"]
    );
    // The program keeps running.
    let again = lprobe(
        &r,
        &["snapshot", &site("served"), "--json", "--timeout", "20s"],
    );
    assert!(again.status.success());
}

#[test]
fn secrets_never_leave_the_process() {
    let r = app(&[("LPROBE_REDACT", "^ta(g|x)s$|zzz")]);
    let snap = arm(&r, &[&site("served"), "--snapshot", "--max-hits", "2"]);
    let log = arm(
        &r,
        &[
            &site("served"),
            "--log",
            "pw={user.password} tok={order.user.api_token}",
            "--max-hits",
            "3",
        ],
    );
    let cond = arm(
        &r,
        &[
            &site("served"),
            "--log",
            "matched",
            "--if",
            "user.password != \"<redacted>\"",
        ],
    );
    wait_records(&r, 2, "snapshots", |v| v["probe"] == snap.as_str());
    let logs = wait_records(&r, 3, "logs", |v| v["probe"] == log.as_str());
    for l in &logs {
        assert_eq!(l["msg"], "pw=<redacted> tok=<redacted>");
    }
    let recs = records(&r);
    let s = of(&recs, &snap);
    assert_eq!(s[0]["vars"]["user"]["password"], "<redacted>");
    assert_eq!(s[0]["vars"]["user"]["api_token"], "<redacted>");
    assert_eq!(
        s[0]["vars"]["user"]["tags"], "<redacted>",
        "LPROBE_REDACT adds patterns"
    );
    assert!(
        of(&recs, &cond).is_empty(),
        "conditions see the redacted value"
    );
    let raw = std::fs::read_to_string(&r.output).expect("output");
    assert!(
        !raw.contains("s3cr3t") && !raw.contains("-zzz"),
        "a secret reached the output"
    );
}

#[test]
fn duration_and_tictoc_report_stats() {
    let r = app(&[]);
    let d = arm(&r, &["fn:lang_app::handle", "--duration", "--every", "1s"]);
    let t = arm(
        &r,
        &[&site("tic"), "--tictoc", &site("toc"), "--every", "1s"],
    );
    let recs = wait_records(&r, 1, "duration records", |v| {
        v["probe"] == d.as_str() && v["kind"] == "duration"
    });
    let st = &recs[0]["duration"];
    let n = |k: &str| st[k].as_u64().unwrap_or_else(|| panic!("{k} in {st}"));
    assert!(n("count") > 0);
    assert!(n("min_ns") <= n("p50_ns") && n("p50_ns") <= n("p90_ns"));
    assert!(n("p90_ns") <= n("p99_ns") && n("p99_ns") <= n("max_ns"));
    // handle() spins 200-400 µs.
    assert!(n("min_ns") >= 200_000, "{st}");
    let recs = wait_records(&r, 1, "tictoc records", |v| {
        v["probe"] == t.as_str() && v["kind"] == "duration"
    });
    let tt = &recs[0]["duration"];
    // stage_one + stage_two spin 200 µs in all.
    assert!(tt["min_ns"].as_u64().is_some_and(|m| m >= 200_000), "{tt}");
    let status = probe_status(&r, &d);
    assert!(
        status["duration"]["count"].as_u64().is_some_and(|c| c > 0),
        "{status}"
    );
    // A statement is not a function site.
    let bad = lprobe(&r, &["arm", &site("served"), "--duration"]);
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("--duration needs function sites"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn limits_max_hits_rate_and_ttl() {
    let r = app(&[("LANG_INTERVAL_MS", "1")]);
    let max = arm(&r, &[&site("served"), "--log", "m", "--max-hits", "3"]);
    // From before the rate probe exists to after its records are read: how long it can run.
    let armed_at = std::time::Instant::now();
    let rate = arm(&r, &[&site("mid"), "--log", "r", "--rate", "5/s"]);
    let ttl = arm(&r, &[&site("toc"), "--log", "t", "--ttl", "1s"]);
    wait_for(
        std::time::Duration::from_secs(10),
        "the ttl to expire",
        || (probe_status(&r, &ttl)["state"] == "expired").then_some(()),
    );
    std::thread::sleep(std::time::Duration::from_millis(1200)); // let the rate window fill
    let recs = records(&r);
    let ran = armed_at.elapsed().as_secs_f64();
    assert_eq!(of(&recs, &max).len(), 3);
    let m = probe_status(&r, &max);
    assert_eq!(m["state"], "exhausted");
    assert_eq!(m["limit"], "max-hits");
    let rs = probe_status(&r, &rate);
    assert!(rs["dropped"].as_u64().is_some_and(|d| d > 0), "{rs}");
    assert_eq!(rs["limit"], "rate");
    // The rate counts whole seconds of the runtime's clock: a probe alive for `ran` seconds
    // touches at most floor(ran) + 2 of them, 5 records each.
    assert!(
        (of(&recs, &rate).len() as f64) <= 5.0 * (ran.floor() + 2.0),
        "{} records in {ran:.2} s",
        of(&recs, &rate).len()
    );
    let before = of(&recs, &ttl).len();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        of(&records(&r), &ttl).len(),
        before,
        "an expired probe stopped writing"
    );
}

#[test]
fn the_output_budget_caps_bytes_per_second() {
    let r = app(&[("LANG_INTERVAL_MS", "0"), ("LPROBE_BUDGET", "4000")]);
    let p = arm(
        &r,
        &[&site("mid"), "--log", "{a} {n}", "--rate", "100000/s"],
    );
    wait_for(std::time::Duration::from_secs(10), "budget drops", || {
        let s = probe_status(&r, &p);
        (s["limit"] == "budget" && s["dropped"].as_u64()? > 0).then_some(())
    });
    let st: Value =
        serde_json::from_str(&stdout(&lprobe(&r, &["status", "--json"]))).expect("status");
    assert!(st[0]["dropped_total"].as_u64().is_some_and(|d| d > 0));
}

#[test]
fn a_condition_that_cannot_be_evaluated_reports_once() {
    let r = app(&[]);
    let p = arm(
        &r,
        &[&site("served"), "--log", "x", "--if", "user.name > 3"],
    );
    // The count is the hit's, the record the output thread's: wait for both.
    wait_for(std::time::Duration::from_secs(10), "errors", || {
        let written = of(&records(&r), &p).iter().any(|v| v["kind"] == "error");
        (written && probe_status(&r, &p)["errors"].as_u64()? >= 3).then_some(())
    });
    let errs: Vec<Value> = of(&records(&r), &p)
        .into_iter()
        .filter(|v| v["kind"] == "error")
        .collect();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot compare")),
        "{}",
        errs[0]
    );
    assert_eq!(probe_status(&r, &p)["state"], "armed");
}

/// Status of every probe (control-file probes: their ids are not known upfront).
fn probes_at(r: &Running) -> Vec<Value> {
    let st: Value =
        serde_json::from_str(&stdout(&lprobe(r, &["status", "--json"]))).expect("status json");
    st[0]["probes"].as_array().cloned().unwrap_or_default()
}

/// Replaces the control file atomically and waits until the program runs exactly its probes.
fn set_control(r: &Running, path: &std::path::Path, lines: &[&str]) -> Vec<String> {
    let tmp = path.with_extension("new");
    write_control(&tmp, &lines.join("\n"));
    std::fs::rename(&tmp, path).expect("rename control file");
    wait_for(
        std::time::Duration::from_secs(10),
        "the control file",
        || {
            let live: Vec<Value> = probes_at(r)
                .into_iter()
                .filter(|p| p["state"] == "armed")
                .collect();
            (live.len() == lines.len()).then(|| {
                live.iter()
                    .filter_map(|p| p["id"].as_str().map(str::to_owned))
                    .collect()
            })
        },
    )
}

/// The last `count` record of each of `ids`.
fn final_counts(r: &Running, ids: &[String]) -> Vec<u64> {
    ids.iter()
        .map(|id| {
            wait_records(r, 1, "final counts", |v| {
                v["probe"] == *id && v["kind"] == "count"
            })
            .last()
            .and_then(|v| v["count"].as_u64())
            .expect("a count")
        })
        .collect()
}

#[test]
fn counters_are_exact_on_the_fast_and_the_general_path() {
    // Probes armed and removed together (one control-file change each) see the same hits. A
    // site armed only by plain counters takes the one-add fast path; a conditional counter
    // beside them sends the site through the general path; both count the same passes.
    let dir = tempfile::tempdir().expect("tempdir");
    let control = dir.path().join("probes.conf");
    write_control(&control, "");
    let r = app(&[
        ("LANG_INTERVAL_MS", "1"),
        ("LPROBE_CONTROL", control.to_str().expect("utf-8")),
    ]);
    let one = "fn:lang_app::stage_one";
    let two = "fn:lang_app::stage_two";
    let lines = [
        format!("{one} --count --every 1h"),
        format!("{one} --count --every 1h --if 'n > 0'"),
        format!("{two} --count --every 1h"),
    ];
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let mut ids = set_control(&r, &control, &refs);
    ids.sort_by_key(|id| id.trim_start_matches('p').parse::<u64>().unwrap_or(0));
    wait_for(std::time::Duration::from_secs(10), "hits", || {
        let hits = probes_at(&r)[0]["hits"].as_u64()?;
        (hits >= 30).then_some(())
    });
    set_control(&r, &control, &[]);
    let c = final_counts(&r, &ids);
    assert!(c[0] >= 30, "{c:?}");
    assert!(c[0].abs_diff(c[1]) <= 1, "same site, same passes: {c:?}");
    assert!(
        c[0].abs_diff(c[2]) <= 1,
        "stage_two follows each stage_one: {c:?}"
    );
    // Armed again later: only the new passes count (the site's counter ran on before).
    let lines = [
        format!("{two} --count --every 1h"),
        format!("{two} --count --every 1h --if 'n > 0'"),
    ];
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let mut ids = set_control(&r, &control, &refs);
    ids.sort_by_key(|id| id.trim_start_matches('p').parse::<u64>().unwrap_or(0));
    wait_for(std::time::Duration::from_secs(10), "hits", || {
        (probes_at(&r)[0]["hits"].as_u64()? >= 10).then_some(())
    });
    set_control(&r, &control, &[]);
    let d = final_counts(&r, &ids);
    assert!(d[0] >= 10 && d[0].abs_diff(d[1]) <= 1, "{d:?}");
}

#[test]
fn a_first_statement_and_its_function_entry_are_separate_probes() {
    // The rewrite checks both sites in one call; each still fires as itself.
    let r = app(&[("LANG_INTERVAL_MS", "1")]);
    let line = arm(&r, &[&site("first"), "--log", "line n={n}"]);
    let entry = arm(&r, &["fn:lang_app::stage_one", "--log", "entry n={n}"]);
    let (at_line, at_entry) = wait_for(std::time::Duration::from_secs(20), "logs of both", || {
        let recs = records(&r);
        let (l, e) = (of(&recs, &line), of(&recs, &entry));
        (l.len() >= 2 && e.len() >= 2).then_some((l, e))
    });
    assert!(at_line.iter().all(|v| v["site"] == site("first")
        && v["msg"].as_str().is_some_and(|m| m.starts_with("line n="))));
    assert!(at_entry.iter().all(|v| v["site"] != site("first")
        && v["msg"].as_str().is_some_and(|m| m.starts_with("entry n="))));
    // Disarming the entry leaves the line armed.
    let out = lprobe(&r, &["disarm", &entry]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(probe_status(&r, &line)["state"], "armed");
    let before = of(&records(&r), &line).len();
    wait_for(std::time::Duration::from_secs(10), "more line logs", || {
        (of(&records(&r), &line).len() > before + 2).then_some(())
    });
}

#[test]
fn small_inline_and_recursive_functions_are_timed_and_compute_the_same() {
    // A timed call runs the function's instrumented copy (no guard in the dormant body):
    // `mix` is `#[inline]` and one line, `depth` recursive (every call is timed, as each
    // call's entry is a hit).
    let r = app(&[("LANG_INTERVAL_MS", "1")]);
    let m = arm(&r, &["fn:lang_app::mix", "--duration", "--every", "1s"]);
    let d = arm(&r, &["fn:lang_app::depth", "--duration", "--every", "1s"]);
    let log = arm(&r, &[&site("checked"), "--log", "{n} {v}"]);
    for p in [&m, &d] {
        let recs = wait_records(&r, 1, "duration records", |v| {
            v["probe"] == p.as_str() && v["kind"] == "duration"
        });
        let st = &recs[0]["duration"];
        let n = |k: &str| st[k].as_u64().unwrap_or_else(|| panic!("{k} in {st}"));
        assert!(n("count") > 0, "{st}");
        assert!(
            n("min_ns") <= n("p50_ns") && n("p99_ns") <= n("max_ns"),
            "{st}"
        );
        // Nanoseconds, not the program's 1 ms sleeps.
        assert!(n("p50_ns") < 1_000_000, "{st}");
    }
    // depth(n % 5) makes 1 to 5 calls, each timed (a call still running when `status`
    // answers is a hit not yet timed).
    let st = probe_status(&r, &d);
    let (hits, timed) = (
        st["hits"].as_u64().expect("hits"),
        st["duration"]["count"].as_u64().expect("count"),
    );
    assert!(
        timed > 0 && timed <= hits && hits - timed <= 5,
        "hits {hits}, timed {timed}: {st}"
    );
    // What the timed functions return is unchanged.
    let expect = expected_check;
    let logged = wait_records(&r, 20, "check logs", |v| v["probe"] == log.as_str());
    for rec in &logged {
        let msg = rec["msg"].as_str().expect("msg");
        let (n, v) = msg.split_once(' ').expect("two numbers");
        let (n, v): (u64, u64) = (n.parse().expect("n"), v.parse().expect("v"));
        assert_eq!(v, expect(n), "check({n}) changed under timing");
    }
    // A function that cannot call itself (a `_` parameter) is timed in its instrumented copy…
    let f = arm(&r, &["fn:lang_app::first", "--duration", "--every", "1s"]);
    wait_records(&r, 1, "duration of first", |v| {
        v["probe"] == f.as_str() && v["kind"] == "duration"
    });
    // … unless its body is written once (a macro of its own): small, it has no guard either.
    let out = lprobe(&r, &["arm", "fn:lang_app::first_of", "--duration"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("cannot time itself") && err.contains("lang_app::first_of"),
        "{err}"
    );
}

/// The refusal's advice works: built with `--lines` naming one of its lines, a small function
/// taking a reference (`Tally::record(&mut self, …)`, left without sites by default) has its
/// sites, and a count on it counts its calls (one per `check`).
#[test]
fn a_small_function_taking_a_reference_has_sites_when_lines_name_one_of_its_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (src, target) = (dir.path().join("app"), dir.path().join("target"));
    private_copy("lang-app", &src);
    let line = site("record");
    let out = cargo_lprobe_in(&src, &target, &["build", "--release", "--lines", &line]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = start(
        &target.join("lprobe/release/lang-app"),
        &[("LANG_INTERVAL_MS", "1")],
    );
    let entry = arm(
        &r,
        &["fn:lang_app::Tally::record", "--count", "--every", "1s"],
    );
    let at_line = arm(&r, &[&line, "--log", "scaled by {weight}"]);
    let counted = wait_records(&r, 1, "a count", |v| {
        v["probe"] == entry.as_str() && v["kind"] == "count"
    });
    assert!(
        counted[0]["count"].as_u64().is_some_and(|c| c > 0),
        "{}",
        counted[0]
    );
    let logged = wait_records(&r, 1, "a log line", |v| v["probe"] == at_line.as_str());
    assert_eq!(logged[0]["msg"], "scaled by 3", "{}", logged[0]);
}

/// A closure body written twice under its function's flag (no loop, two sites): armed while
/// the program runs, its line logs at the closure's next call, with its values.
#[test]
fn a_closure_written_twice_sees_arming_at_its_next_call() {
    let r = app(&[("LANG_INTERVAL_MS", "1")]);
    let p = arm(&r, &[&site("closure"), "--log", "x={x}"]);
    let recs = wait_records(&r, 3, "closure logs", |v| v["probe"] == p.as_str());
    for rec in &recs {
        let msg = rec["msg"].as_str().expect("msg");
        let x: u64 = msg
            .strip_prefix("x=")
            .and_then(|x| x.parse().ok())
            .unwrap_or_else(|| panic!("{msg}"));
        assert!(x > 0, "{msg}");
    }
}

/// What the fixture's `check(n)` returns.
fn expected_check(n: u64) -> u64 {
    let depth = n % 5 + 1;
    let mut state = n | 1;
    let mut sum = 0u64;
    for _ in 0..2 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        sum = sum.wrapping_add(state);
    }
    (n.rotate_left(7) ^ 0x9e37) ^ depth ^ n ^ sum ^ 2
}

#[test]
fn small_functions_taking_mut_are_timed_through_one_call_and_compute_the_same() {
    // Entry sites only (every function): bodies written once, so a small function's entry
    // times it by calling it again: from the branch that returns when its `&mut` argument is
    // captured as a value (`xorshift(state: &mut u64)`), else inside the entry's one cold call,
    // through a reborrow of its `&mut self` (`Tally::add`).
    // Built its own way, from a private copy (`build_once` builds every line here).
    let dir = tempfile::tempdir().expect("tempdir");
    let (src, target) = (dir.path().join("app"), dir.path().join("target"));
    private_copy("lang-app", &src);
    let out = cargo_lprobe_in(&src, &target, &["build", "--release", "--entry", "all"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Each timing form is there: the two calls, and the one call with its reborrow.
    let text = std::fs::read_to_string(target.join("lprobe/src/src/main.rs")).expect("copy");
    let body = |f: &str| {
        text.split(f)
            .nth(1)
            .map(|b| b.lines().next().unwrap_or("").to_owned())
    };
    let xorshift = body("fn xorshift(").expect("xorshift");
    assert!(xorshift.contains("::again("), "{xorshift}");
    let add = body("fn add(").expect("add");
    assert!(
        add.contains("let __lprobe_self = &mut *self;") && add.contains("::recall("),
        "{add}"
    );
    let r = start(
        &target.join("lprobe/release/lang-app"),
        &[("LANG_INTERVAL_MS", "1")],
    );
    let timed: Vec<String> = ["fn:lang_app::xorshift", "fn:lang_app::Tally::add"]
        .iter()
        .map(|f| arm(&r, &[f, "--duration", "--every", "1s"]))
        .collect();
    let log = arm(&r, &["fn:lang_app::settle", "--log", "{n} {v}"]);
    for p in &timed {
        let recs = wait_records(&r, 1, "duration records", |v| {
            v["probe"] == p.as_str() && v["kind"] == "duration"
        });
        let st = &recs[0]["duration"];
        let n = |k: &str| st[k].as_u64().unwrap_or_else(|| panic!("{k} in {st}"));
        assert!(n("count") > 0 && n("p50_ns") < 1_000_000, "{st}");
    }
    // Every call timed: two of each per `check`.
    let st = probe_status(&r, &timed[0]);
    assert!(
        st["duration"]["count"].as_u64().is_some_and(|c| c >= 2),
        "{st}"
    );
    // The values computed through the timed calls are the program's own.
    for rec in &wait_records(&r, 20, "settle logs", |v| v["probe"] == log.as_str()) {
        let msg = rec["msg"].as_str().expect("msg");
        let (n, v) = msg.split_once(' ').expect("two numbers");
        let (n, v): (u64, u64) = (n.parse().expect("n"), v.parse().expect("v"));
        assert_eq!(v, expected_check(n), "check({n}) changed under timing");
    }
}

#[test]
fn arming_a_function_built_without_sites_says_why() {
    // Built its own way (entry sites, --skip-accessors), from a private copy.
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("app");
    let target = dir.path().join("target");
    private_copy("lang-app", &src);
    let out = cargo_lprobe_in(&src, &target, &["build", "--release", "--skip-accessors"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = start(&target.join("lprobe/release/lang-app"), &[]);
    let refused = |args: &[&str]| {
        let mut full = vec!["arm"];
        full.extend_from_slice(args);
        let out = lprobe(&r, &full);
        assert!(!out.status.success(), "arm {args:?} was accepted");
        stderr(&out)
    };
    // Built without --entry all, a tiny function has no sites: refused with the reason, the
    // nearest caller with sites (`check`), and how to get them.
    let says = |e: String, parts: &[&str]| {
        assert!(parts.iter().all(|p| e.contains(p)), "{e}");
    };
    says(
        refused(&["fn:lang_app::mix", "--duration"]),
        &[
            "lang_app::mix",
            "a tiny function",
            "callers to arm instead: fn:lang_app::check",
            "rebuild with --entry all",
        ],
    );
    says(
        refused(&["fn:User::id", "--count"]),
        &[
            "lang_app::User::id",
            "trivial accessor",
            "rebuild without --skip-accessors",
        ],
    );
    let e = refused(&[&site("accessor"), "--log", "x"]);
    assert!(
        e.contains("it is in lang_app::User::id, which was built without probe sites"),
        "{e}"
    );
    // An iterator's `next` (inside every loop over it) has none either: the functions that
    // make the iterator are named.
    says(
        refused(&["fn:Digits::next", "--count"]),
        &[
            "lang_app::Digits::next",
            "an iterator's next",
            "functions that make it, to arm instead: fn:lang_app::digits_of",
            "rebuild with --entry all or --lines naming one of its lines",
        ],
    );
    // An `#[inline(always)]` function (merged into its callers' loops) has none either.
    says(
        refused(&["fn:checksum_of", "--count"]),
        &[
            "lang_app::checksum_of",
            "an #[inline(always)] function",
            "callers to arm instead: fn:lang_app::serve",
            "rebuild with --entry all or --lines naming one of its lines, or arm a caller",
        ],
    );
    // So has a small `#[inline]` one: its author asks for it to be merged into its callers,
    // and a site would cost it its inlining near the inliner's limit.
    says(
        refused(&["fn:label_of", "--log", "x"]),
        &[
            "lang_app::label_of",
            "an #[inline] function of at most 300 tokens",
            "callers to arm instead: fn:lang_app::serve",
            "rebuild with --entry all or --lines naming one of its lines, or arm a caller",
        ],
    );
    // So has a small function taking a reference to a value (`&mut self`): its site's cold
    // call would take the reference, and once inlined, the caller's value could no longer
    // live in registers.
    says(
        refused(&["fn:Tally::record", "--count"]),
        &[
            "lang_app::Tally::record",
            "a small function taking a reference",
            "callers to arm instead: fn:lang_app::check",
            "rebuild with --entry all",
        ],
    );
    let e = refused(&["fn:batch_limit", "--count"]);
    assert!(
        e.contains("const fn") && e.contains("probe its callers"),
        "{e}"
    );
    // The rest of the program is armed as usual.
    arm(&r, &["fn:make_user", "--count"]);
    arm(&r, &["fn:digits_of", "--count"]);
}

/// Every other way text leaves the process: `error` records about conditions and templates
/// on secret fields (a condition that is not a bool, a field or index of a redacted value, a
/// comparison of kinds), the stack of a snapshot, `status` (probe texts, errors, control-file
/// errors) and `list`. None holds a secret.
#[test]
fn secrets_never_leave_through_errors_stacks_status_or_list() {
    let r = app(&[]);
    let served = site("served");
    let mut probes = Vec::new();
    for args in [
        ["--if", "user.password"],
        ["--if", "order.user.api_token > 3"],
        ["--if", "user.password[2] == \"x\""],
        ["--log", "{user.password.nope}"],
        ["--log", "{order.user.api_token[1]}"],
        ["--log", "{user.nope}"],
        ["--if", "user.password.len() > 0 && user.password.x"],
    ] {
        let mut a = vec![served.as_str(), "--max-hits", "3"];
        a.extend_from_slice(&args);
        probes.push(arm(&r, &a));
    }
    let snap = arm(&r, &[&served, "--snapshot", "--max-hits", "1"]);
    let errors = wait_for(
        std::time::Duration::from_secs(20),
        "an error record from each probe and the snapshot",
        || {
            let recs = records(&r);
            // A condition's error is an `error` record; a template's, the log line's text.
            let errs: Vec<Value> = recs
                .iter()
                .filter(|v| {
                    v["kind"] == "error"
                        || v["msg"].as_str().is_some_and(|m| m.starts_with("<error:"))
                })
                .cloned()
                .collect();
            let each = probes
                .iter()
                .all(|p| errs.iter().any(|e| e["probe"] == p.as_str()));
            (each && !of(&recs, &snap).is_empty()).then_some(errs)
        },
    );
    // The errors say what went wrong in terms of names and kinds.
    let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert!(
        text.iter()
            .any(|t| t.contains("no field 'nope' in user (fields: id, name, password")),
        "{text:?}"
    );
    let snapshot = &of(&records(&r), &snap)[0];
    assert!(
        snapshot["stack"].as_array().is_some_and(|s| !s.is_empty()),
        "{snapshot}"
    );
    let mut outputs = vec![std::fs::read_to_string(&r.output).expect("output")];
    for args in [
        &["status", "--json"][..],
        &["status"],
        &["list", "--json"],
        &["list"],
        &["ps", "--json"],
    ] {
        let out = lprobe(&r, args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        outputs.push(stdout(&out) + &stderr(&out));
    }
    for out in &outputs {
        assert!(
            !out.contains("s3cr3t") && !out.contains("-zzz"),
            "a secret left the process: {}",
            &out[..out.len().min(3000)]
        );
    }
}
