//! `lprobe hot` finds the most-called functions of a running program, and `cargo lprobe build
//! --skip-from` builds exactly those without probe sites.

use crate::harness::*;

/// The `fn:PATH` lines of `lprobe hot`'s output, with their calls.
fn listed(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter(|l| l.starts_with("fn:"))
        .map(|l| {
            let (pattern, numbers) = l.split_once('#').expect("a # comment after the pattern");
            let calls = numbers
                .split_whitespace()
                .next()
                .expect("calls")
                .replace(',', "")
                .parse()
                .expect("a number of calls");
            (pattern.trim().to_owned(), calls)
        })
        .collect()
}

#[test]
fn hot_functions_are_counted_live_and_built_without_sites() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("app");
    let target = dir.path().join("target");
    private_copy("demo-app", &src);
    // Every function: the hot ones are tiny.
    let out = cargo_lprobe_in(&src, &target, &["build", "--release", "--entry", "all"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let exe = target.join("lprobe/release/demo-app");

    let r = start(&exe, &[("DEMO_INTERVAL_MS", "0")]);
    let out = lprobe(&r, &["hot", "--for", "500ms", "--top", "3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let hot = listed(&text);
    assert_eq!(hot.len(), 3, "{text}");
    assert!(
        hot.windows(2).all(|w| w[0].1 >= w[1].1) && hot[2].1 > 0,
        "{text}"
    );
    // Every order prices each of its items (1.8 on average): the most called.
    assert_eq!(hot[0].0, "fn:demo_app::billing::price_of", "{text}");
    // The counting probe is gone once the list is out.
    let status = stdout(&lprobe(&r, &["status"]));
    assert!(status.contains("no probes armed"), "{status}");
    drop(r);

    // A fleet armed through its control file: the same list from the records it wrote.
    let control = dir.path().join("lprobe.control");
    write_control(&control, "fn:* --count --every 200ms\n");
    let control_arg = control.to_string_lossy().into_owned();
    let r = start(
        &exe,
        &[("DEMO_INTERVAL_MS", "0"), ("LPROBE_CONTROL", &control_arg)],
    );
    wait_records(&r, 2, "two count reports of price_of", |v| {
        v["kind"] == "count" && v["fn"] == "demo_app::billing::price_of"
    });
    let output = r.output.to_string_lossy().into_owned();
    let out = lprobe(&r, &["hot", "--records", &output, "--top", "3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let fleet = stdout(&out);
    assert!(
        fleet.starts_with("# lprobe hot: ") && fleet.contains(" count records from 1 pid in "),
        "{fleet}"
    );
    let from_records = listed(&fleet);
    assert_eq!(from_records.len(), 3, "{fleet}");
    assert_eq!(
        from_records[0].0, "fn:demo_app::billing::price_of",
        "{fleet}"
    );
    // --share: the fewest functions that make that share of the calls (one here).
    let out = lprobe(&r, &["hot", "--records", &output, "--share", "1%"]);
    assert_eq!(listed(&stdout(&out)).len(), 1, "{}", stdout(&out));
    drop(r);

    // A process that exits during the window is reported then, not at the window's end.
    let mut r = start(&exe, &[("DEMO_INTERVAL_MS", "20")]);
    let started = std::time::Instant::now();
    let counting = std::process::Command::new(LPROBE)
        .args(["hot", "--for", "60s"])
        .env("LPROBE_SOCKET", &r.socket)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start lprobe hot");
    wait_for(
        std::time::Duration::from_secs(20),
        "the counting probe",
        || {
            stdout(&lprobe(&r, &["status"]))
                .contains("fn:*")
                .then_some(())
        },
    );
    r.child.kill().expect("kill the program");
    let out = counting.wait_with_output().expect("lprobe hot ends");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("stopped answering") && started.elapsed().as_secs() < 30,
        "{}",
        stderr(&out)
    );
    drop(r);

    // The list as it is is a skip file.
    let list = dir.path().join("hot.skip");
    std::fs::write(&list, &text).expect("write the list");
    let list_arg = list.to_string_lossy().into_owned();
    let out = cargo_lprobe_in(
        &src,
        &target,
        &[
            "build",
            "--release",
            "--entry",
            "all",
            "-v",
            "--skip-from",
            &list_arg,
        ],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    for (pattern, _) in &hot {
        let func = pattern.trim_start_matches("fn:");
        assert!(
            err.lines().any(|l| l.contains(&format!("skipped {func} ("))
                && l.contains(&format!("skipped by {pattern} ("))),
            "{func} not reported as skipped:\n{err}"
        );
    }
    assert!(err.contains("3 fns skipped"), "{err}");

    let r = start(&exe, &[("DEMO_INTERVAL_MS", "20")]);
    let out = lprobe(&r, &["arm", "fn:price_of", "--count"]);
    assert!(
        !out.status.success(),
        "arming a skipped function was accepted"
    );
    let e = stderr(&out);
    assert!(
        e.contains("demo_app::billing::price_of")
            && e.contains("skipped by fn:demo_app::billing::price_of")
            && e.contains("rebuild without that skip pattern"),
        "{e}"
    );
    // Everything else still has its sites.
    let out = lprobe(&r, &["arm", "fn:demo_app::billing::*", "--count"]);
    assert!(out.status.success(), "{}", stderr(&out));
    drop(r);

    // A pattern that matches nothing is reported; a bad one stops the build before anything
    // is written.
    let out = cargo_lprobe_in(
        &src,
        &target,
        &["build", "--release", "--skip", "fn:demo_app::no_such_fn"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("skip pattern 'fn:demo_app::no_such_fn' (--skip) matches no function"),
        "{}",
        stderr(&out)
    );
    let out = cargo_lprobe_in(
        &src,
        &target,
        &["build", "--release", "--skip", "demo_app::make_order"],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--skip: invalid skip pattern 'demo_app::make_order': this looks like a function path: write fn:demo_app::make_order"),
        "{}",
        stderr(&out)
    );

    // The package's metadata can name a file (all its functions) and add to the command line.
    let manifest = src.join("Cargo.toml");
    let mut toml = std::fs::read_to_string(&manifest).expect("read manifest");
    toml.push_str("\n[package.metadata.lprobe]\nskip = [\"src/billing.rs\"]\n");
    std::fs::write(&manifest, toml).expect("write manifest");
    let out = cargo_lprobe_in(
        &src,
        &target,
        &["build", "--release", "-v", "--skip", "fn:make_order"],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("skipped demo_app::billing::price_of (src/billing.rs:37): skipped by src/billing.rs (skip in [package.metadata.lprobe] of demo-app)")
            && err.contains("skipped demo_app::make_order (src/main.rs:93): skipped by fn:make_order (--skip)"),
        "{err}"
    );
}
