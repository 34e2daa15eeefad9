//! The build side: instrumented fixtures compile, pass their own tests, and behave like the
//! plain build when no probe is armed.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::*;

/// "test result: ok. N passed" lines summed.
fn passed(out: &str) -> usize {
    out.lines()
        .filter_map(|l| l.strip_prefix("test result: ok. "))
        .filter_map(|l| l.split_whitespace().next()?.parse::<usize>().ok())
        .sum()
}

#[test]
fn edge_cases_pass_their_own_tests_instrumented_at_every_line() {
    let plain = cargo("edge-cases", true, &["test"]);
    assert!(plain.status.success());
    let inst = cargo("edge-cases", false, &["test", "--lines", "all", "-v"]);
    assert!(inst.status.success());
    let (p, i) = (passed(&stdout(&plain)), passed(&stdout(&inst)));
    assert!(p >= 25, "plain run passed {p} tests");
    assert_eq!(p, i, "instrumented run passed a different number of tests");
    let err = stderr(&inst);
    assert!(err.contains("Instrumented 1 crate:"), "{err}");
    assert!(err.contains("fns skipped"), "{err}");
    // Repair may drop a capture (a moved value) but no shape here costs a function its
    // captures or probes, or a file all of its sites (`closures::inferred_later` did).
    for lost in ["file left as written", ": no probes", ": no captures"] {
        assert!(!err.contains(lost), "{lost}:\n{err}");
    }
}

#[test]
fn edge_cases_pass_their_own_tests_with_every_function_armed() {
    // Every function gets sites (`--entry all`) and every site is armed: the instrumented
    // copies (out-of-line closures) run, and compute, borrow, convert and drop as the
    // originals (`copies.rs` asserts the order in which parameters drop).
    let plain = cargo("edge-cases", true, &["test"]);
    assert!(plain.status.success());
    let p = passed(&stdout(&plain));
    let dir = tempfile::tempdir().expect("tempdir");
    for mode in ["snapshot", "duration"] {
        let out = dir.path().join(format!("{mode}.jsonl"));
        let armed = cargo_env(
            "edge-cases",
            false,
            &["test", "--lines", "all", "--entry", "all"],
            &[
                ("LPROBE_ARM_ALL", mode),
                ("LPROBE_OUTPUT", out.to_str().expect("utf-8")),
                // Every site's record must be written (the assertions below name some): no
                // output budget, a queue for all of them.
                ("LPROBE_BUDGET", "1000000000000"),
                ("LPROBE_QUEUE", "65536"),
                // Nor a time budget: on a loaded machine the snapshots' stack captures of
                // the first second can pass 50 ms, which disables the one probe per crate.
                ("LPROBE_PROBE_BUDGET_MS", "off"),
            ],
        );
        assert!(armed.status.success(), "{mode}: {}", stdout(&armed));
        assert_eq!(passed(&stdout(&armed)), p, "{mode}");
        let recs = std::fs::read_to_string(&out).expect("records");
        assert!(
            recs.contains(&format!("\"kind\":\"{mode}\"")),
            "{mode}: no {mode} records:\n{recs}"
        );
        if mode == "snapshot" {
            for f in ["copies::tail", "copies::Store::slot", "copies::drop_order"] {
                assert!(recs.contains(&format!("edge_cases::{f}\"")), "{f}: {recs}");
            }
        }
    }
}

#[test]
fn skip_accessors_leaves_trivial_accessors_without_sites_and_the_tests_pass() {
    let plain = cargo("edge-cases", true, &["test"]);
    assert!(plain.status.success());
    let args = ["test", "--skip-accessors", "--report", "json"];
    let inst = cargo("edge-cases", false, &args);
    assert!(inst.status.success(), "{}", stderr(&inst));
    let out = stdout(&inst);
    assert_eq!(passed(&out), passed(&stdout(&plain)));
    // The report (printed before the tests run) lists each skipped function with its reason.
    let report = &out[out.find('[').expect("report")..out.find("\n]").expect("end") + 2];
    let report: serde_json::Value = serde_json::from_str(report).expect("json report");
    let skipped: Vec<&str> = report[0]["fns_skipped"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|v| v.as_str())
        .filter(|s| s.contains("trivial accessor"))
        .collect();
    assert!(
        skipped.iter().any(|s| s.contains("Counter::get")),
        "{skipped:?}"
    );
    // A method that does more than read a field keeps its site.
    assert!(
        !skipped.iter().any(|s| s.contains("Counter::bump")),
        "{skipped:?}"
    );
}

#[test]
fn workspace_members_are_instrumented_and_pass_their_tests() {
    let plain = cargo("workspace", true, &["test", "--workspace"]);
    assert!(plain.status.success());
    let inst = cargo(
        "workspace",
        false,
        &["test", "--workspace", "--lines", "all"],
    );
    assert!(inst.status.success());
    assert_eq!(passed(&stdout(&plain)), passed(&stdout(&inst)));
    assert!(
        stderr(&inst).contains("Instrumented 2 crates"),
        "{}",
        stderr(&inst)
    );
}

#[test]
fn crate_shapes_pass_their_tests_instrumented_and_armed() {
    // Editions 2015 and 2024, no_std, a build script with generated code and cfg_attr, a
    // [patch]ed path dependency, a proc-macro and the code it generates.
    let plain = cargo("shapes", true, &["test", "--workspace"]);
    assert!(plain.status.success());
    let p = passed(&stdout(&plain));
    assert_eq!(p, 5);
    // Every function (the shapes' functions are tiny): the rewriter on every shape.
    let inst = cargo(
        "shapes",
        false,
        &["test", "--workspace", "--lines", "all", "--entry", "all"],
    );
    assert!(inst.status.success());
    assert_eq!(passed(&stdout(&inst)), p);
    let err = stderr(&inst);
    assert!(
        err.contains("Instrumented 5 crates"),
        "the proc-macro is not instrumented: {err}"
    );
    // Every crate reads the flags defined in its own root, also the 2015-edition crate that
    // forbids unsafe_code (lowered to deny in the copy, so the flags module may allow it).
    let copy = target_dir("shapes").join("lprobe/src");
    for krate in ["ed2015", "ed2024", "nostd", "built", "uses-derive"] {
        let root = std::fs::read_to_string(copy.join(krate).join("src/lib.rs")).expect("copy");
        assert!(
            root.contains("crate::__lprobe::") && root.contains("mod __lprobe {"),
            "{krate}: {root}"
        );
    }
    let ed2015 = std::fs::read_to_string(copy.join("ed2015/src/lib.rs")).expect("copy");
    assert!(ed2015.contains("#![deny  (unsafe_code)]"), "{ed2015}");
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("records.jsonl");
    let armed = cargo_env(
        "shapes",
        false,
        &["test", "--workspace", "--lines", "all", "--entry", "all"],
        &[
            ("LPROBE_ARM_ALL", "snapshot"),
            ("LPROBE_OUTPUT", out.to_str().expect("utf-8")),
        ],
    );
    assert!(armed.status.success());
    assert_eq!(passed(&stdout(&armed)), p);
    let recs = std::fs::read_to_string(&out).expect("records");
    assert!(
        recs.lines()
            .filter(|l| l.contains("\"kind\":\"snapshot\""))
            .count()
            >= 10,
        "{recs}"
    );
    // Arming reached each crate's own copy of the flags.
    for krate in ["ed2015", "ed2024", "nostd", "built", "uses-derive"] {
        assert!(
            recs.contains(&format!("\"site\":\"{krate}/src/lib.rs:")),
            "no snapshot from {krate}:\n{recs}"
        );
    }
}

#[test]
fn a_probe_in_a_library_crate_fires_in_the_binary() {
    let t = build_once("workspace", &["--lines", "all"]);
    let r = start(&t.join("lprobe/debug/app"), &[("APP_LOOP", "1")]);
    let out = lprobe(
        &r,
        &["arm", "fn:core_lib::parse_kv", "--log", "parsing {line}"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let logs = wait_records(&r, 2, "logs from core-lib", |v| v["kind"] == "log");
    assert!(
        logs[0]["site"]
            .as_str()
            .is_some_and(|s| s.starts_with("core-lib/src/lib.rs:")),
        "{}",
        logs[0]
    );
    assert!(
        logs[0]["msg"]
            .as_str()
            .is_some_and(|m| m.starts_with("parsing ")),
        "{}",
        logs[0]
    );
}

#[test]
fn dormant_instrumented_output_is_byte_identical_to_plain() {
    let plain = cargo("demo-app", true, &["build", "--release"]);
    assert!(plain.status.success());
    let t = build_once("demo-app", &["--release", "--lines", "all"]);
    let run = |exe: &std::path::Path| {
        Command::new(exe)
            .env("DEMO_ITERATIONS", "40")
            .env("DEMO_INTERVAL_MS", "0")
            .output()
            .expect("run demo")
    };
    let a = run(&t.join("release/demo-app"));
    let b = run(&t.join("lprobe/release/demo-app"));
    assert!(a.status.success() && b.status.success());
    assert_eq!(a.stdout.len(), b.stdout.len());
    assert!(a.stdout == b.stdout, "stdout differs");
    assert!(
        b.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&b.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&a.stdout).lines().count(), 40);
}

#[test]
fn line_numbers_are_preserved_in_panics() {
    // The rewritten copy keeps every line where it was.
    let dir = fixture("demo-app");
    let t = build_once("demo-app", &["--release", "--lines", "all"]);
    let orig = std::fs::read_to_string(dir.join("src/main.rs")).expect("read");
    let copy = std::fs::read_to_string(t.join("lprobe/src/src/main.rs")).expect("read copy");
    // A crate root gains lines after its last only: the crate's flags module, then (a
    // package without a library: this crate holds it) the package's table.
    let n = orig.lines().count();
    assert!(copy
        .lines()
        .nth(n)
        .is_some_and(|l| l.contains("pub(crate) mod __lprobe {")));
    assert!(copy
        .lines()
        .nth(n + 1)
        .is_some_and(|l| l.contains("pub mod __lprobe_sites {")));
    assert!(copy.contains("crate::__lprobe::on::<"));
    assert!(!copy.contains("::lprobe_sites::"));
    // And the user's files are untouched.
    assert!(!orig.contains("lprobe_sites"));
}

#[test]
fn checks_read_flags_through_asm_by_default_and_by_a_plain_load_when_asked() {
    // The default build's checks (x86-64 Linux) compare the flag in memory (`asm goto`);
    // `LPROBE_FLAG_ACCESS=load` (what a `dylib` member or `-C prefer-dynamic` selects) gives
    // plain atomic loads. Both builds' probes fire.
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("demo-app");
    private_copy("demo-app", &src);
    for (access, asm) in [("", true), ("load", false)] {
        let target = dir.path().join(format!("target-{access}"));
        let env: &[(&str, &str)] = if access.is_empty() {
            &[]
        } else {
            &[("LPROBE_FLAG_ACCESS", "load")]
        };
        let out = cargo_lprobe_in_env(&src, &target, &["build", "--release"], env);
        assert!(out.status.success(), "{}", stderr(&out));
        let copy = std::fs::read_to_string(target.join("lprobe/src/src/main.rs")).expect("copy");
        let module = copy
            .lines()
            .find(|l| l.contains("pub(crate) mod __lprobe {"))
            .expect("flags module");
        assert_eq!(
            module.contains("asm!(\"cmp byte ptr [rip + {f} + {i}], 0\""),
            asm,
            "{module}"
        );
        assert!(module.contains("F[I].load("), "{module}");
        let r = start(
            &target.join("lprobe/release/demo-app"),
            &[("DEMO_INTERVAL_MS", "20")],
        );
        let out = lprobe(
            &r,
            &["arm", "fn:demo_app::process_order", "--count", "--json"],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        wait_for(std::time::Duration::from_secs(20), "counted hits", || {
            let st = stdout(&lprobe(&r, &["status", "--json"]));
            let v: serde_json::Value = serde_json::from_str(st.trim()).ok()?;
            let hits = v[0]["probes"].as_array()?.first()?["hits"].as_u64()?;
            (hits >= 3).then_some(())
        });
    }
}

/// The allocation count `fixtures/alloc-ledger` prints ("ledger: N allocations").
fn ledger_allocations(out: &str) -> usize {
    out.lines()
        .find_map(|l| {
            let (_, rest) = l.split_once("ledger: ")?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no ledger line in:\n{out}"))
}

#[test]
fn arming_every_site_stays_cheap_under_a_slow_global_allocator() {
    // The shape of bytes' tests/test_bytes_vec_alloc.rs: an instrumented #[global_allocator]
    // that scans a never-reclaimed ledger, so every allocation the runtime makes costs a scan
    // of all earlier ones. Arming must allocate per table (not per site), ticks nothing, and
    // the runtime's own threads must not fire the allocator's probes.
    let args = ["test", "--", "--test-threads", "1", "--nocapture"];
    let plain = cargo("alloc-ledger", true, &args);
    assert!(plain.status.success());
    let (p, base) = (passed(&stdout(&plain)), ledger_allocations(&stdout(&plain)));
    assert_eq!(p, 5);
    let dir = tempfile::tempdir().expect("tempdir");
    for (mode, extra) in [("count", 300), ("log", 10_000), ("snapshot", 10_000)] {
        let out = dir.path().join(format!("{mode}.jsonl"));
        let armed = cargo_env(
            "alloc-ledger",
            false,
            &[
                "test",
                "--lines",
                "all",
                "--",
                "--test-threads",
                "1",
                "--nocapture",
            ],
            &[
                ("LPROBE_ARM_ALL", mode),
                ("LPROBE_OUTPUT", out.to_str().expect("utf-8")),
            ],
        );
        assert!(armed.status.success(), "{mode}: {}", stderr(&armed));
        assert_eq!(passed(&stdout(&armed)), p, "{mode}");
        let n = ledger_allocations(&stdout(&armed));
        assert!(
            n <= base + extra,
            "{mode}: {n} allocations armed, {base} plain: more than {extra} by the runtime"
        );
        let recs = std::fs::read_to_string(&out).expect("records");
        assert!(
            recs.contains(&format!("\"kind\":\"{mode}\"")),
            "{mode}: no {mode} records:\n{recs}"
        );
    }
}

#[test]
fn the_runtime_is_compiled_once_and_reused_by_a_fresh_target_dir() {
    // Two clean builds (empty target directories) sharing one runtime cache: the first
    // compiles the runtime, the second copies it, and the program it links works.
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let build = |target: &str| {
        let out = cargo_env(
            "demo-app",
            false,
            &["build", "--release", "-v"],
            &[
                ("LPROBE_CACHE_DIR", cache.to_str().expect("utf-8")),
                (
                    "CARGO_TARGET_DIR",
                    dir.path().join(target).to_str().expect("utf-8"),
                ),
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        stderr(&out)
    };
    let first = build("t1");
    assert!(
        first.contains("lprobe: runtime: compiled, and cached"),
        "{first}"
    );
    // Line tables for the workspace's own crates (stack lines), none for its dependencies
    // (the runtime here), as in the plain build of a profile without `debug`.
    let rustc_line = |krate: &str| {
        first
            .lines()
            .find(|l| l.contains("Running") && l.contains(&format!("--crate-name {krate} ")))
            .unwrap_or_else(|| panic!("no rustc call for {krate}: {first}"))
    };
    assert!(
        rustc_line("demo_app").contains("-C debuginfo=line-tables-only"),
        "{first}"
    );
    assert!(
        !rustc_line("probe_runtime").contains("-C debuginfo="),
        "{first}"
    );
    // The runtime is compiled for size; the code a hit runs, in its hot-path crate, at the
    // program's own level (release: 3).
    assert!(
        rustc_line("probe_runtime").contains("-C opt-level=z"),
        "{first}"
    );
    assert!(
        rustc_line("probe_runtime_hot").contains("-C opt-level=3"),
        "{first}"
    );
    // Cargo asked the compiler who it is and what the target is (a fresh target directory).
    let log1 = std::fs::read_to_string(dir.path().join("t1/lprobe/runtime-cache.log"))
        .expect("the wrapper's log");
    assert!(
        log1.contains("asked version\n") && log1.contains("asked target\n"),
        "{log1}"
    );
    let second = build("t2");
    assert!(
        second.contains("lprobe: runtime: taken from the cache"),
        "{second}"
    );
    // Both from the cache: the runtime, and its hot path compiled against those same bytes.
    let log = std::fs::read_to_string(dir.path().join("t2/lprobe/runtime-cache.log"))
        .expect("the wrapper's log");
    // Both from the cache, and no probe of the compiler: cargo took the answers kept from
    // the first build (`compiler_info`).
    assert_eq!(
        log, "hit probe_runtime\nhit probe_runtime_hot\n",
        "{second}"
    );
    // The program's line tables name the user's files, not the copy's (the wrapper remaps).
    let exe = std::fs::read(dir.path().join("t2/lprobe/release/demo-app")).expect("binary");
    let has = |s: &str| exe.windows(s.len()).any(|w| w == s.as_bytes());
    let copy = dir.path().join("t2/lprobe/src");
    assert!(
        !has(&copy.display().to_string()),
        "the copy's path is in the binary"
    );
    assert!(
        has(&fixture("demo-app").display().to_string()),
        "the user's path is not in the binary"
    );
    assert!(
        second
            .contains("lprobe: runtime: taken from the cache (probe_runtime, probe_runtime_hot)\n"),
        "{second}"
    );
    let r = start(
        &dir.path().join("t2/lprobe/release/demo-app"),
        &[("DEMO_INTERVAL_MS", "10")],
    );
    let out = lprobe(
        &r,
        &[
            "arm",
            "fn:demo_app::billing::Invoice::for_order",
            "--log",
            "order={order.id}",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    wait_records(&r, 2, "logs from the cached runtime", |v| {
        v["kind"] == "log"
    });
}

#[test]
fn an_unchanged_workspace_is_not_rewritten_again_and_any_change_is() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("app");
    let target = dir.path().join("target");
    private_copy("demo-app", &src);
    let build = |extra: &[&str]| {
        let mut args = vec!["build", "--release", "-v"];
        args.extend_from_slice(extra);
        let out = cargo_lprobe_in(&src, &target, &args);
        assert!(out.status.success(), "{}", stderr(&out));
        let err = stderr(&out);
        let summary = err
            .lines()
            .find(|l| l.trim_start().starts_with("Instrumented "))
            .unwrap_or_else(|| panic!("no summary in:\n{err}"))
            .to_owned();
        (
            err.contains("the copy from the last build is current"),
            summary,
        )
    };
    let sites = |summary: &str| -> usize {
        let n = summary.split(": ").nth(1).expect("counts");
        n.split(' ')
            .next()
            .expect("sites")
            .replace(',', "")
            .parse()
            .expect("number")
    };
    let (reused, first) = build(&[]);
    assert!(!reused, "a first build cannot reuse anything");
    let (reused, second) = build(&[]);
    assert!(reused, "nothing changed, yet the workspace was rewritten");
    assert_eq!(first, second, "the reused build reports the same sites");
    // `test` after `build`: the copy is built as it is with the test targets (where their code,
    // never compiled before, has probes nothing repaired yet, that build fails and the run falls
    // back to the full path); the tests pass, and the next `test` reuses the copy.
    let test = || {
        let out = cargo_lprobe_in(&src, &target, &["test", "--release", "-v"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(passed(&stdout(&out)) > 0, "{}", stdout(&out));
        stderr(&out)
    };
    test();
    let err = test();
    assert!(
        err.contains("the copy from the last build is current"),
        "{err}"
    );
    // At every line the test code has probes that no build has repaired: building the copy
    // as it is fails, and the run falls back to the full path, repairs them, and tests. (All of
    // them: demo-app's README test includes its own `src/main.rs`, and must read it as written.)
    build(&["--lines", "all"]);
    let out = cargo_lprobe_in(
        &src,
        &target,
        &["test", "--release", "--lines", "all", "-v"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(passed(&stdout(&out)) > 0, "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("building the unchanged copy failed"), "{err}");

    // An edit: a new function gets its entry site.
    let billing = src.join("src/billing.rs");
    let mut text = std::fs::read_to_string(&billing).expect("read");
    text.push_str("\npub fn added_after_the_first_build(mut x: u32) -> u32 {\n    while x > 9 {\n        x /= 2;\n    }\n    x + 1\n}\n");
    std::fs::write(&billing, text).expect("write");
    let (reused, edited) = build(&[]);
    assert!(!reused, "an edited file must be rewritten");
    assert_eq!(sites(&edited), sites(&first) + 1, "{first} / {edited}");
    // An edit of the same length right after a build is seen too.
    let text = std::fs::read_to_string(&billing).expect("read");
    std::fs::write(&billing, text.replace("    x + 1\n", "    x + 2\n")).expect("write");
    let (reused, _) = build(&[]);
    assert!(!reused, "a same-length edit must be rewritten");
    let copied = target.join("lprobe/src/src/billing.rs");
    assert!(std::fs::read_to_string(&copied)
        .expect("read")
        .contains("x + 2"));

    // Other options are another rewrite; back to them, the copy is current again.
    let (reused, all) = build(&["--lines", "all"]);
    assert!(!reused && sites(&all) > sites(&edited), "{all}");
    let (reused, again) = build(&["--lines", "all"]);
    assert!(reused && again == all, "{again}");

    // A copy someone changed is not trusted.
    std::fs::write(&copied, "garbage").expect("write");
    let (reused, repaired) = build(&["--lines", "all"]);
    assert!(!reused && repaired == all, "{repaired}");
    assert!(std::fs::read_to_string(&copied)
        .expect("read")
        .contains("added_after_the_first_build"));

    // A run that finds another one holding the copy waits for it, and says so.
    let held = std::fs::File::create(target.join("lprobe/.lock")).expect("lock file");
    held.lock().expect("lock");
    let mut waiting = Command::new(CARGO_LPROBE)
        .args(["lprobe", "build", "--release", "--lines", "all"])
        .current_dir(&src)
        .env("CARGO_TARGET_DIR", &target)
        .env("LPROBE_CACHE_DIR", runtime_cache_dir())
        .env_remove("RUSTFLAGS")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start cargo lprobe");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(
        waiting.stderr.take().expect("stderr"),
    ));
    let said = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("waiting for another cargo lprobe run"));
    assert!(said.is_some(), "the second run did not wait");
    drop(held);
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(waiting.wait().expect("wait").success(), "{rest:?}");
    assert!(rest.iter().any(|l| l.contains("Instrumented ")), "{rest:?}");
}

/// "build 1.23s (3 rounds, 2 repair)" → 2.
fn repair_rounds(stderr: &str) -> Option<usize> {
    let at = stderr.find(" repair)")?;
    let start = stderr[..at].rfind(", ")? + 2;
    stderr[start..at].parse().ok()
}

/// `LPROBE_REPAIR_LOG`'s text at `path`, and its lines as JSON objects.
fn repair_log(path: &Path) -> (String, Vec<serde_json::Value>) {
    let text = std::fs::read_to_string(path).expect("repair log");
    let errors = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    (text, errors)
}

/// What the binary at `path` prints with the runtime disabled (a plain run).
fn dormant_stdout(path: &Path) -> String {
    let run = Command::new(path)
        .env("LPROBE_DISABLE", "1")
        .output()
        .expect("runs");
    stdout(&run)
}

/// A type that is neither a small copy nor `Debug`, in a file of its own.
const BLOB: &str =
    "pub struct Blob(pub Vec<u8>);\n\npub fn make(n: u8) -> Blob {\n    Blob(vec![n; 3])\n}\n";

/// Writes a package `name` (its own workspace, with a lock file) of `files` under `parent`.
fn small_package(parent: &Path, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let src = parent.join(name);
    let manifest = format!(
        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n"
    );
    let lock = format!("version = 4\n\n[[package]]\nname = \"{name}\"\nversion = \"0.1.0\"\n");
    for (path, text) in [("Cargo.toml", manifest.as_str()), ("Cargo.lock", &lock)]
        .into_iter()
        .chain(files.iter().copied())
    {
        let path = src.join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, text).expect("write");
    }
    src
}

#[test]
fn a_link_failure_is_not_said_to_be_in_the_users_code() {
    // The linker names no line: lprobe cannot tell the program's fault from its own, and
    // says how to tell (here it is the program's: a symbol nothing defines).
    let dir = tempfile::tempdir().expect("tempdir");
    let main = "extern \"C\" {\n    fn lprobe_test_nowhere(n: u32) -> u32;\n}\n\nfn main() {\n    let n = std::env::args().count() as u32;\n    println!(\"{}\", unsafe { lprobe_test_nowhere(n) });\n}\n";
    let src = small_package(dir.path(), "unlinked", &[("src/main.rs", main)]);
    let out = cargo_lprobe_in(&src, &dir.path().join("t"), &["build", "--release"]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("lprobe_test_nowhere"), "{err}");
    assert!(
        err.contains("names no line of code") && err.contains("without lprobe succeeds"),
        "{err}"
    );
    assert!(!err.contains("in your code"), "{err}");
}

#[test]
fn a_library_built_as_a_shared_object_links_the_runtime() {
    // A workspace of executables gets the runtime compiled as an executable's code; a
    // `cdylib` links it into a shared object, where such code cannot go (its thread-locals
    // are addressed as an executable's: `R_X86_64_TPOFF32 ... cannot be used with -shared`).
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = "[package]\nname = \"plugin\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[lib]\ncrate-type = [\"cdylib\", \"rlib\"]\n\n[workspace]\n";
    let lib = "/// Sums the first `n` odd numbers.\n#[no_mangle]\npub extern \"C\" fn plugin_sum(n: u64) -> u64 {\n    let mut total = 0;\n    for i in 0..n {\n        total += 2 * i + 1;\n    }\n    total\n}\n";
    let main = "fn main() {\n    println!(\"{}\", plugin::plugin_sum(12));\n}\n";
    let src = small_package(
        dir.path(),
        "plugin",
        &[
            ("Cargo.toml", manifest),
            ("src/lib.rs", lib),
            ("src/main.rs", main),
        ],
    );
    let target = dir.path().join("t");
    let out = cargo_lprobe_in(
        &src,
        &target,
        &["build", "--release", "--entry", "all", "--lines", "all"],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("Instrumented 1 crate: 2 sites"), "{err}");
    let release = target.join("lprobe/release");
    assert!(release.join("libplugin.so").is_file(), "{err}");
    let run = Command::new(release.join("plugin")).output().expect("runs");
    assert_eq!(stdout(&run).trim(), "144");
}

#[test]
fn repairs_that_a_compiled_library_would_pay_for_again_are_checked_not_built() {
    // The library compiles at once; its integration test binds a type without `Debug` (a
    // first build cannot know). A second build round would compile the library again (the
    // repair rewrites files) only to reach the test: the repair round is a `cargo check`,
    // then the user's command builds once. (With a test name filter, which is the harness's
    // and not the check's.)
    let dir = tempfile::tempdir().expect("tempdir");
    let test = "#[test]\nfn sizes() {\n    let a = blobs::blob::make(1);\n    let b = blobs::blob::make(2);\n    let mut n = 0;\n    for blob in [&a, &b] {\n        n += blob.0.len();\n    }\n    assert_eq!(n, 6);\n}\n";
    let src = small_package(
        dir.path(),
        "blobs",
        &[
            ("src/lib.rs", "pub mod blob;\n"),
            ("src/blob.rs", BLOB),
            ("tests/sizes.rs", test),
        ],
    );
    let out = cargo_lprobe_in(
        &src,
        &dir.path().join("t"),
        &["test", "--release", "--lines", "all", "-v", "sizes"],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(repair_rounds(&err), Some(1), "{err}");
    assert!(
        err.lines()
            .any(|l| l.starts_with("lprobe: repair round 1:") && l.ends_with(", checking")),
        "{err}"
    );
    let checked = |l: &&str| l.contains("Checking blobs v0.1.0");
    let compiled = |l: &&str| l.contains("Compiling blobs v0.1.0");
    let after_repair = err
        .lines()
        .skip_while(|l| !l.starts_with("lprobe: repair round 1:"));
    let cargo_lines: Vec<&str> = after_repair.filter(|l| checked(l) || compiled(l)).collect();
    assert!(
        cargo_lines.first().is_some_and(checked) && cargo_lines.iter().any(compiled),
        "checked, then compiled: {cargo_lines:?}"
    );
    assert!(
        stdout(&out).contains("test sizes ... ok"),
        "{}",
        stdout(&out)
    );
    // Once the check passed, the outcome is known: the build lists the captures plainly, as
    // the next build would (the check rounds passed each through a call of its own).
    let copy = std::fs::read_to_string(dir.path().join("t/lprobe/src/tests/sizes.rs"))
        .expect("the copy of the test");
    assert!(copy.contains("__lprobe::hit"), "{copy}");
    assert!(
        !["::cap(", "::cap_t(", "::cap_ref("]
            .iter()
            .any(|c| copy.contains(c)),
        "{copy}"
    );
    // The check rounds were incremental; what they kept is gone once the build succeeded
    // (cargo makes the directory itself, empty).
    let incremental = std::fs::read_dir(dir.path().join("t/lprobe/release/incremental"));
    assert_eq!(incremental.map(|d| d.count()).unwrap_or(0), 0);
}

#[test]
fn a_target_dir_flag_is_where_the_instrumented_build_goes() {
    // cargo refuses `--target-dir` twice: lprobe takes the user's and gives cargo its own
    // directory under it.
    let dir = tempfile::tempdir().expect("tempdir");
    let main = "fn main() {\n    let n = 2 + 3;\n    println!(\"{n}\");\n}\n";
    let src = small_package(dir.path(), "five", &[("src/main.rs", main)]);
    let env_target = dir.path().join("env-target");
    let out = cargo_lprobe_in(&src, &env_target, &["build", "--target-dir", "out"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!env_target.join("lprobe").exists());
    assert_eq!(dormant_stdout(&src.join("out/lprobe/debug/five")), "5\n");
    // The directory inside the workspace is not copied into the copy.
    assert!(!src.join("out/lprobe/src/out").exists());
    // From a subdirectory, `../back` is the package's `back`: normalized, so the mirror
    // knows it for the build's own directory and leaves it out of the copy.
    let out = cargo_lprobe_in(
        &src.join("src"),
        &env_target,
        &["build", "--target-dir", "../back"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(dormant_stdout(&src.join("back/lprobe/debug/five")), "5\n");
    assert!(!src.join("back/lprobe/src/back").exists());
    assert!(!src.join("src/back").exists());
}

#[test]
fn a_capture_neither_small_nor_debug_is_learned_in_one_round() {
    // `Num` is `Copy` without `Debug`, `Vec<Num>` neither: each capture first guessed a copy
    // (a `let` bound to a call or an index). rustc reports the missing `SmallCopy` and the missing `Debug`
    // as two errors at the same capture; read together they step the capture straight to
    // its type name, where one alone stepped it to a reference and the next round to the
    // type name.
    let dir = tempfile::tempdir().expect("tempdir");
    let num = "#[derive(Clone, Copy, PartialEq)]\npub struct Num(pub u8);\n\npub fn make(v: u8) -> Num {\n    Num(v)\n}\n\npub fn list(n: u8) -> Vec<Num> {\n    (0..n).map(make).collect()\n}\n\npub fn value(n: Num) -> u32 {\n    u32::from(n.0)\n}\n";
    // (A loop that calls something keeps one body, whose captures need `SmallCopy` too.)
    let main = "mod num;\n\nfn main() {\n    let all = num::list(4);\n    let mut i = 0;\n    let mut sum = 0u32;\n    while i < all.len() {\n        let x = all[i];\n        sum += num::value(x);\n        i += 1;\n    }\n    println!(\"{} {sum}\", all.len());\n}\n";
    let src = small_package(
        dir.path(),
        "nums",
        &[("src/num.rs", num), ("src/main.rs", main)],
    );
    let log = dir.path().join("repairs.jsonl");
    let out = cargo_lprobe_in_env(
        &src,
        &dir.path().join("t"),
        &["build", "--release", "--lines", "all", "-v"],
        &[("LPROBE_REPAIR_LOG", log.to_str().expect("utf-8 path"))],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(repair_rounds(&err), Some(1), "{err}");
    // LPROBE_REPAIR_LOG has the round's errors, and shows what the repair relies on: two
    // errors at one capture, one of them the missing `Debug`.
    let (text, errors) = repair_log(&log);
    assert!(
        errors
            .iter()
            .all(|e| e["round"] == 1 && e["kind"] == "build"),
        "{text}"
    );
    let both = errors.iter().any(|e| {
        errors.iter().any(|d| {
            d["byte"] == e["byte"]
                && d["message"] != e["message"]
                && d["label"]
                    .as_str()
                    .is_some_and(|l| l.contains("`Debug` is not implemented"))
        })
    });
    assert!(both, "{text}");
    assert_eq!(
        dormant_stdout(&dir.path().join("t/lprobe/release/nums")),
        "4 6\n"
    );
}

#[test]
fn a_first_build_learns_every_capture_of_one_type_in_one_round() {
    // Six bindings of a type that is neither a small copy nor `Debug`, every one captured at
    // the last line: in a plain capture list rustc reports the unmet bound once per
    // statement and type (a round per binding); a file repaired from scratch lists each
    // capture through a call of its own, and one round learns them all.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut main = String::from("mod blob;\n\nfn main() {\n");
    for i in 0..6 {
        main.push_str(&format!("    let b{i} = blob::make({i});\n"));
    }
    main.push_str("    println!(\"{}\", b0.0.len() + b5.0.len());\n}\n");
    // (The type in another file: a type declared in the same file is known from the start.)
    let src = small_package(
        dir.path(),
        "blobs",
        &[("src/blob.rs", BLOB), ("src/main.rs", &main)],
    );
    let out = cargo_lprobe_in(
        &src,
        &dir.path().join("t"),
        &["build", "--release", "--lines", "all", "-v"],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(repair_rounds(&err), Some(1), "{err}");
    // And the program runs, printing what it printed.
    assert_eq!(
        dormant_stdout(&dir.path().join("t/lprobe/release/blobs")),
        "6\n"
    );
}

#[test]
fn bindings_of_one_type_captured_together_are_learned_in_one_round() {
    // Two bindings of a type that is neither a small copy nor `Debug`, bound by one pattern
    // and captured together at every line after it, by value in one tuple (`hit_t(i, (k, a,
    // b))`: the body declares an item, so it is written once, and `--entry all` keeps sites
    // in so small a function). rustc names an unmet bound once per tuple and predicate, so
    // `b` was named a round after `a`; a first build checks each capture through a call of
    // its own (`cap_t(b)`), and the first round names both.
    let dir = tempfile::tempdir().expect("tempdir");
    let blob = format!("{BLOB}\npub fn pair() -> (Blob, Blob) {{\n    (make(1), make(2))\n}}\n");
    let main = "mod blob;\n\npub fn total(k: usize) -> usize {\n    struct Step;\n    let (a, b) = blob::pair();\n    let n = a.0.len() + k;\n    let m = b.0.len() + n;\n    let _ = Step;\n    m + k\n}\n\nfn main() {\n    println!(\"{}\", total(1));\n}\n";
    let src = small_package(
        dir.path(),
        "pairs",
        &[("src/blob.rs", blob.as_str()), ("src/main.rs", main)],
    );
    let log = dir.path().join("repairs.jsonl");
    let out = cargo_lprobe_in_env(
        &src,
        &dir.path().join("t"),
        &[
            "build",
            "--release",
            "--lines",
            "all",
            "--entry",
            "all",
            "-v",
        ],
        &[("LPROBE_REPAIR_LOG", log.to_str().expect("utf-8 path"))],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let (text, errors) = repair_log(&log);
    assert_eq!(repair_rounds(&err), Some(1), "{err}\n{text}");
    // The round named both, each where it is captured.
    let named = |name: &str| {
        let at = format!("cap_t(⟦{name})");
        errors
            .iter()
            .any(|e| e["at"].as_str().is_some_and(|a| a.contains(&at)))
    };
    assert!(named("a") && named("b"), "{text}");
    assert_eq!(
        dormant_stdout(&dir.path().join("t/lprobe/release/pairs")),
        "8\n"
    );
}

#[test]
fn committed_repair_outcomes_spare_a_fresh_machine_the_repair_rounds() {
    // Three copies of one workspace at different paths: each has its own machine-wide repair
    // cache entry (keyed by the workspace's path) and its own target directory, like fresh
    // CI machines.
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = |name: &str| {
        let src = dir.path().join(name);
        private_copy("edge-cases", &src);
        src
    };
    let args = ["build", "--release", "--lines", "all", "-v"];
    let (first, second, third) = (copy("first"), copy("second"), copy("third"));
    let mut with_file = args.to_vec();
    with_file.extend(["--repairs", "lprobe-repairs.json"]);
    let out = cargo_lprobe_in(&first, &dir.path().join("t1"), &with_file);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        repair_rounds(&err).is_some_and(|n| n > 1),
        "edge-cases needs repairs on a first build: {err}"
    );
    assert!(!err.contains("Note"), "no hint with --repairs: {err}");
    let saved = first.join("lprobe-repairs.json");
    let text = std::fs::read_to_string(&saved).expect("--repairs wrote the file");
    assert!(
        text.contains("\"src/asyncs.rs\"") && text.contains("\"by_ref\""),
        "{text}"
    );
    // The committed file on another machine: no repair round.
    std::fs::copy(&saved, second.join("lprobe-repairs.json")).expect("copy");
    let out = cargo_lprobe_in(&second, &dir.path().join("t2"), &with_file);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(repair_rounds(&err), Some(0), "{err}");
    // Unchanged outcomes leave the file as it was.
    assert_eq!(
        std::fs::read_to_string(second.join("lprobe-repairs.json")).expect("read"),
        text
    );
    // Without it, the repairs are made again, and the build says how to keep them.
    let out = cargo_lprobe_in(&third, &dir.path().join("t3"), &args);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(repair_rounds(&err).is_some_and(|n| n > 1), "{err}");
    assert!(
        err.lines()
            .any(|l| l.contains("Note") && l.contains("--repairs lprobe-repairs.json")),
        "{err}"
    );
}

#[test]
fn both_bodies_of_a_function_keep_its_lines_in_panics_and_line_macros() {
    // A function written twice (no item, std macros only, no waiting loop): the dormant copy
    // runs when nothing is armed, the instrumented copy when its sites are; both report the
    // user's lines.
    let dir = tempfile::tempdir().expect("tempdir");
    let main = "fn check(n: u64) -> u64 {\n    let doubled = n * 2;\n    println!(\"line {}\", line!());\n    if doubled > 10 {\n        panic!(\"too big: {doubled}\");\n    }\n    doubled + 1\n}\n\nfn main() {\n    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1);\n    println!(\"{}\", check(n));\n}\n";
    let src = small_package(dir.path(), "twice", &[("src/main.rs", main)]);
    let target = dir.path().join("target");
    let out = cargo_lprobe_in(
        &src,
        &target,
        &["build", "--release", "--lines", "all", "--entry", "all"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let copy = std::fs::read_to_string(target.join("lprobe/src/src/main.rs")).expect("copy");
    assert!(copy.contains("crate::__lprobe_twice!{"), "{copy}");
    let exe = target.join("lprobe/release/twice");
    for arm in [None, Some("log")] {
        let run = |n: &str| {
            let mut c = Command::new(&exe);
            c.arg(n).env("LPROBE_OUTPUT", dir.path().join("out.jsonl"));
            if let Some(a) = arm {
                c.env("LPROBE_ARM_ALL", a);
            }
            c.output().expect("run")
        };
        let ok = run("2");
        assert_eq!(stdout(&ok), "line 3\n5\n", "armed: {arm:?}");
        let bad = run("9");
        assert!(!bad.status.success());
        // (The line is kept; the column moves by the probe text spliced before it.)
        assert!(
            stderr(&bad).contains("panicked at src/main.rs:5:")
                && stderr(&bad).contains("too big: 18"),
            "armed: {arm:?}: {}",
            stderr(&bad)
        );
    }
    let records = std::fs::read_to_string(dir.path().join("out.jsonl")).expect("records");
    assert!(
        records.contains("\"site\":\"src/main.rs:3\"") && records.contains("doubled=4"),
        "the instrumented copy's line sites fired: {records}"
    );
}

#[test]
fn locked_fails_on_a_stale_lock_file_like_cargo_and_leaves_it_alone() {
    // bench-mix with a path dependency its Cargo.lock does not list: `cargo build --locked`
    // refuses it, and so must `cargo lprobe build --locked` (its check runs beside the build).
    // The same workspace checked before the edit: the answer kept then (`resolve::kept`) is
    // not taken for the edited manifest.
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path().join("ws");
    private_copy("bench-mix", &ws);
    let out = cargo_lprobe_in(
        &ws,
        &dir.path().join("t"),
        &["build", "--release", "--locked"],
    );
    assert!(out.status.success(), "a current lock: {}", stderr(&out));
    let extra = ws.join("extra");
    std::fs::create_dir_all(extra.join("src")).expect("mkdir");
    std::fs::write(
        extra.join("Cargo.toml"),
        "[package]\nname = \"extra\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .expect("write");
    std::fs::write(extra.join("src/lib.rs"), "pub fn one() -> u8 { 1 }\n").expect("write");
    let manifest = ws.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).expect("read");
    let text = text.replace(
        "[dependencies]\n",
        "[dependencies]\nextra = { path = \"extra\" }\n",
    );
    std::fs::write(&manifest, text).expect("write");
    let lock = std::fs::read_to_string(ws.join("Cargo.lock")).expect("read");
    let out = cargo_lprobe_in(
        &ws,
        &dir.path().join("t"),
        &["build", "--release", "--locked"],
    );
    let err = stderr(&out);
    assert!(!out.status.success(), "a stale lock file is refused: {err}");
    assert!(
        err.contains("needs an update but --locked was given") && err.contains("lock file"),
        "lprobe's error and cargo's reason: {err}"
    );
    assert_eq!(
        std::fs::read_to_string(ws.join("Cargo.lock")).expect("read"),
        lock,
        "the user's Cargo.lock is never written"
    );
    // Without --locked the same workspace builds.
    let out = cargo_lprobe_in(&ws, &dir.path().join("t"), &["build", "--release"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_package_library_holds_the_table_its_binary_uses_and_a_forbidding_one_keeps_a_sites_crate() {
    // A library and a binary of one package: the library holds the package's table (its
    // root includes it after its flags module), the binary imports it from there, and no
    // sites crate is built. A package that forbids unsafe code from its manifest (`-F`,
    // which no generated `allow` can lift) gets a sites crate instead, after one round. In
    // both, a site of each crate fires in the one program, listed once.
    let lib = "pub fn total(v: &[u64]) -> u64 {\n    let mut s = 0;\n    for x in v {\n        s += x;\n    }\n    s\n}\n";
    let main = "fn step(n: u64) -> u64 {\n    let mut v = Vec::new();\n    for i in 0..n {\n        v.push(i);\n    }\n    hosted::total(&v)\n}\n\nfn main() {\n    let mut n = 0;\n    loop {\n        n = (n + 1) % 7;\n        std::hint::black_box(step(n));\n        std::thread::sleep(std::time::Duration::from_millis(5));\n    }\n}\n";
    for forbid in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = small_package(
            dir.path(),
            "hosted",
            &[("src/lib.rs", lib), ("src/main.rs", main)],
        );
        if forbid {
            let manifest = src.join("Cargo.toml");
            let text = std::fs::read_to_string(&manifest).expect("manifest");
            let text = text.replace(
                "[workspace]",
                "[lints.rust]\nunsafe_code = \"forbid\"\n\n[workspace]",
            );
            std::fs::write(&manifest, text).expect("write manifest");
        }
        let target = dir.path().join("t");
        let out = cargo_lprobe_in(&src, &target, &["build", "--release", "-v"]);
        let err = stderr(&out);
        assert!(out.status.success(), "{err}");
        assert_eq!(repair_rounds(&err), Some(usize::from(forbid)), "{err}");
        // A clean build: cargo was started beside the rewrite, its manifests guessed right.
        assert!(
            err.contains("the first round was started beside the rewrite"),
            "{err}"
        );
        let target = if forbid {
            // In a fresh target directory the remembered repair puts the table in a sites
            // crate from the first round: not the manifests the early round was started
            // with, so that round is dropped and run again, and nothing is repaired.
            let again = dir.path().join("t2");
            let out = cargo_lprobe_in(&src, &again, &["build", "--release", "-v"]);
            let err = stderr(&out);
            assert!(out.status.success(), "{err}");
            assert_eq!(repair_rounds(&err), Some(0), "{err}");
            assert!(
                err.contains("changed the manifests the early first round"),
                "{err}"
            );
            again
        } else {
            target
        };
        let copy = |p: &str| std::fs::read_to_string(target.join("lprobe/src").join(p)).expect(p);
        let (lib_copy, main_copy, manifest) =
            (copy("src/lib.rs"), copy("src/main.rs"), copy("Cargo.toml"));
        if forbid {
            assert!(manifest.contains("lprobe-sites-hosted"), "{manifest}");
            assert!(main_copy.contains("::lprobe_sites::"), "{main_copy}");
            assert!(!lib_copy.contains("__lprobe_sites"), "{lib_copy}");
        } else {
            assert!(manifest.contains("lprobe-runtime-hot") && !manifest.contains("lprobe-sites"));
            assert!(
                lib_copy.contains("pub mod __lprobe_sites { include!("),
                "{lib_copy}"
            );
            assert!(
                main_copy.contains("extern crate hosted as __lprobe_host;")
                    && !main_copy.contains("__lprobe_sites { include!"),
                "{main_copy}"
            );
            assert!(!main_copy.contains("::lprobe_sites::"), "{main_copy}");
        }
        let r = start(&target.join("lprobe/release/hosted"), &[]);
        let list = stdout(&lprobe(&r, &["list", "--json"]));
        let v: serde_json::Value = serde_json::from_str(list.trim()).expect("list --json");
        let entries = |f: &str| {
            v.as_array()
                .into_iter()
                .flatten()
                .filter(|s| s["fn"] == f && s["kind"] == "entry")
                .count()
        };
        assert_eq!(
            (entries("hosted::total"), entries("hosted::step")),
            (1, 1),
            "{list}"
        );
        for f in ["fn:hosted::total", "fn:hosted::step"] {
            let id = arm(&r, &[f, "--count"]);
            wait_for(std::time::Duration::from_secs(20), "counted hits", || {
                (probe_status(&r, &id)["hits"].as_u64()? >= 3).then_some(())
            });
        }
    }
}

#[test]
fn an_entry_with_many_arguments_shows_each_of_them() {
    // Past six arguments, an entry's captures used to go in an array; they are one tuple now,
    // up to the runtime's 24 (`rewrite::MAX_BY_VALUE`): copies, references, a type without
    // `Debug` (its name) and a moved `String`, each shown as it was at entry.
    let dir = tempfile::tempdir().expect("tempdir");
    let main = "pub struct Ticket(pub u32);\n\n\
        #[allow(clippy::too_many_arguments)]\n\
        fn book(a: u8, b: &str, c: String, d: &[u32], e: i64, f: bool, g: char, h: Ticket, i: Option<u16>) -> usize {\n    \
            let mut n = usize::from(a) + b.len() + c.len() + h.0 as usize;\n    \
            for x in d {\n        n += *x as usize;\n    }\n    \
            if f && e < 0 && g == 'x' {\n        n += usize::from(i.unwrap_or(0));\n    }\n    n\n}\n\n\
        fn main() {\n    let mut total = 0usize;\n    for k in 0u64.. {\n        \
            total += book(7, \"seat\", String::from(\"aisle\"), &[1, 2, 3], -5, true, 'x', Ticket(40), Some(9));\n        \
            if k % 100 == 0 {\n            println!(\"{total}\");\n        }\n        \
            std::thread::sleep(std::time::Duration::from_millis(2));\n    }\n}\n";
    let src = small_package(dir.path(), "many", &[("src/main.rs", main)]);
    let target = dir.path().join("t");
    let out = cargo_lprobe_in(&src, &target, &["build", "--release"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let copy = std::fs::read_to_string(target.join("lprobe/src/src/main.rs")).expect("copy");
    // (A first build: each capture of the tuple through `cap_t`, checked on its own.)
    let plain = copy.replace("crate::__lprobe::cap_t(", "(");
    assert!(
        plain.contains("((a), (b), (&c), (d), (e), (f), (g), "),
        "{copy}"
    );
    let r = start(&target.join("lprobe/release/many"), &[]);
    arm(&r, &["fn:many::book", "--snapshot", "--max-hits", "1"]);
    let snap = wait_records(&r, 1, "the entry's snapshot", |v| v["kind"] == "snapshot");
    let vars = &snap[0]["vars"];
    assert_eq!(vars["a"], 7, "{vars}");
    assert_eq!(vars["b"], "seat", "{vars}");
    assert_eq!(vars["c"], "aisle", "{vars}");
    assert_eq!(vars["d"], serde_json::json!([1, 2, 3]), "{vars}");
    assert_eq!(vars["e"], -5, "{vars}");
    assert_eq!(vars["f"], true, "{vars}");
    assert_eq!(vars["g"], "x", "{vars}");
    assert!(
        vars["h"].as_str().is_some_and(|s| s.contains("Ticket")),
        "{vars}"
    );
    assert_eq!(vars["i"], 9, "{vars}");
}
