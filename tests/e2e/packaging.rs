//! `cargo package` for both crates, and cargo-lprobe installed from its packaged `.crate`.
//!
//! The install test packages, compiles cargo-lprobe (debug) from the `.crate` and builds a
//! fixture with it: about 30 s here with warm caches. Alone:
//!
//!     cargo test -p cargo-lprobe --test e2e packaging

use std::path::Path;
use std::process::Command;

use crate::harness::{private_copy, repo, stderr};

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(repo()).env_remove("RUSTFLAGS");
    c
}

/// The package holds the runtime's sources themselves (through the `runtime-src` link), and
/// nothing from outside but the README.
#[test]
fn the_packaged_cargo_lprobe_holds_the_runtime_sources() {
    let out = cargo()
        .args(["package", "--list", "--allow-dirty", "-p", "cargo-lprobe"])
        .output()
        .expect("cargo package --list");
    assert!(out.status.success(), "{}", stderr(&out));
    let list = String::from_utf8_lossy(&out.stdout).into_owned();
    let files: Vec<&str> = list.lines().collect();
    for f in [
        "build.rs",
        "runtime-src/lib.rs",
        "src/build/runtime_src.rs",
        "README.md",
    ] {
        assert!(files.contains(&f), "{f} is not packaged:\n{list}");
    }
    for entry in std::fs::read_dir(repo().join("probe-runtime/src")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".rs") {
            let f = format!("runtime-src/{name}");
            assert!(files.contains(&f.as_str()), "{f} is not packaged:\n{list}");
        }
    }
    assert!(!list.contains("fixtures/"), "{list}");
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
}

fn untar(krate: &Path, into: &Path) {
    run(
        Command::new("tar")
            .arg("xzf")
            .arg(krate)
            .arg("-C")
            .arg(into),
        "tar xzf",
    );
}

#[test]
fn cargo_lprobe_installed_from_its_packaged_crate_builds_a_fixture() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let t = tmp.path();
    let version = env!("CARGO_PKG_VERSION");
    // 1. Package both crates (verified by the install below, which compiles them).
    run(
        cargo()
            .args(["package", "--workspace", "--allow-dirty", "--no-verify"])
            .arg("--target-dir")
            .arg(t.join("target")),
        "cargo package --workspace",
    );
    let pkg = t.join("target/package");
    let x = t.join("x");
    std::fs::create_dir_all(&x).unwrap();
    untar(&pkg.join(format!("cargo-lprobe-{version}.crate")), &x);
    untar(&pkg.join(format!("probe-runtime-{version}.crate")), &x);
    // 2. Install from the unpacked .crate into an empty root. probe-runtime is not published
    //    (yet): the packaged one stands in for the registry's.
    let root = t.join("root");
    let runtime = x.join(format!("probe-runtime-{version}"));
    run(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["install", "--debug", "--path"])
            .arg(x.join(format!("cargo-lprobe-{version}")))
            .arg("--root")
            .arg(&root)
            .arg("--config")
            .arg(format!(
                "patch.crates-io.probe-runtime.path={:?}",
                runtime.display().to_string()
            ))
            .env("CARGO_TARGET_DIR", t.join("install-target"))
            .env_remove("RUSTFLAGS"),
        "cargo install from the packaged crate",
    );
    let bin = root.join("bin");
    for b in ["cargo-lprobe", "lprobe"] {
        assert!(
            bin.join(b).is_file(),
            "{b} not installed in {}",
            bin.display()
        );
    }
    // 3. Build a fixture with it, as a user would (`cargo lprobe` through PATH).
    let app = t.join("app");
    private_copy("demo-app", &app);
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["lprobe", "build"])
        .current_dir(&app)
        .env("PATH", path)
        .env("CARGO_TARGET_DIR", t.join("app-target"))
        .env("LPROBE_CACHE_DIR", "off")
        .env_remove("RUSTFLAGS")
        .output()
        .expect("cargo lprobe build");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Instrumented 1 crate"),
        "{}",
        stderr(&out)
    );
    assert!(t.join("app-target/lprobe/debug/demo-app").is_file());
    // The runtime it linked is the one it was packaged with.
    let linked = std::fs::read_to_string(t.join("app-target/lprobe/runtime/src/lib.rs")).unwrap();
    let packaged = std::fs::read_to_string(runtime.join("src/lib.rs")).unwrap();
    assert!(
        linked == packaged,
        "the build wrote another runtime than the packaged one"
    );
}
