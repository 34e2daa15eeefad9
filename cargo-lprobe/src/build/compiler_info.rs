//! What the compiler says about itself, kept per machine so that a clean build does not ask
//! it again.
//!
//! Cargo starts every build in a fresh target directory by asking the compiler who it is
//! (`rustc -vV`, twice) and what the target looks like (`rustc - --crate-name ___ --print=…`),
//! and keeps the answers in `<target-dir>/.rustc_info.json`. A plain build pays for those
//! probes once per target directory; the instrumented build pays them through the compiler
//! wrapper (a process more each), before anything of the user's can compile: 50–80 ms, a
//! fifth of a small crate's whole build. Two things take them off:
//!
//! - [`seed_cargo`]/[`keep_cargo`]: the last `.rustc_info.json` cargo wrote for lprobe's
//!   target directory is kept in the machine-wide cache and put into a new target directory
//!   before cargo starts. Cargo checks it itself (its fingerprint names the compiler, the
//!   wrapper and their modification times, each answer is keyed by its command line) and
//!   asks again for anything that does not match, so a stale file costs what no file costs.
//!   For the target probe's key to be the same in every workspace, the path remapping of the
//!   copy is not a rustflag but added by the wrapper (`runtime_cache::main`).
//! - [`version_text`]: the runtime cache's key needs `rustc -vV`; when cargo took its answer
//!   from the seeded file, the wrapper never saw it, so the answer is kept here too, with the
//!   compiler executable's size and modification time, which must match for it to be used.

use std::path::{Path, PathBuf};

use crate::build::repair::content_hash;
use crate::build::runtime_cache::{cache_dir, compiler};

/// Cargo's own file of compiler answers, in its target directory.
const CARGO_FILE: &str = ".rustc_info.json";
/// Beside the wrapper's log, and in the machine-wide cache (suffixed by the compiler's path):
/// the compiler's path, its identity ([`identity`]) and its `-vV` output, one per line.
const VERSION_FILE: &str = "rustc-vV";

/// The machine-wide copy of cargo's file for the toolchain this build runs (cargo would
/// reject another's anyway; one file per toolchain keeps two projects on two toolchains from
/// replacing each other's).
fn cargo_cache_file() -> Option<PathBuf> {
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    let toolchain = [var("CARGO"), var("RUSTC"), var("RUSTUP_TOOLCHAIN")].join("\0");
    Some(cache_dir()?.join(format!(
        "cargo-rustc-info-{}.json",
        content_hash(toolchain.as_bytes())
    )))
}

/// Puts the kept `.rustc_info.json` into `target_dir` (lprobe's cargo target directory) if it
/// has none (best effort).
pub fn seed_cargo(target_dir: &Path) {
    let dest = target_dir.join(CARGO_FILE);
    if dest.exists() {
        return;
    }
    if let Some(text) = cargo_cache_file().and_then(|f| std::fs::read(f).ok()) {
        let _ = std::fs::create_dir_all(target_dir);
        let _ = write_whole(&dest, &text);
    }
}

/// Keeps the `.rustc_info.json` cargo left in `target_dir` for the next clean build (best
/// effort; nothing is written when it is what is kept already).
pub fn keep_cargo(target_dir: &Path) {
    let (Some(kept), Ok(text)) = (
        cargo_cache_file(),
        std::fs::read(target_dir.join(CARGO_FILE)),
    ) else {
        return;
    };
    if std::fs::read(&kept).ok().as_deref() != Some(&text[..]) {
        if let Some(dir) = kept.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = write_whole(&kept, &text);
    }
}

/// Writes `path` through a temporary file and a rename: a concurrent reader sees the old
/// file or the new one, never half of one.
pub(crate) fn write_whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// What tells one compiler executable from another at the same path: its size and
/// modification time (a toolchain update replaces the file), and the user's own wrapper,
/// which runs it. `None` for a compiler not named by an absolute path.
fn identity(rustc: &str) -> Option<String> {
    let path = Path::new(rustc);
    if !path.is_absolute() {
        return None;
    }
    let inner = std::env::var(crate::build::runtime_cache::INNER_ENV).unwrap_or_default();
    Some(format!("{} {inner}", file_stamp(path)?))
}

/// A file's size and modification time: what changes when an executable is replaced.
pub(crate) fn file_stamp(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    Some(format!("{} {:?}", meta.len(), meta.modified().ok()?))
}

/// The files a compiler's `-vV` answer is kept in: beside the wrapper's log (this target
/// directory's) and in the machine-wide cache.
fn version_files(rustc: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Some(log) = std::env::var_os(crate::build::runtime_cache::LOG_ENV) {
        if let Some(dir) = Path::new(&log).parent() {
            files.push(dir.join(VERSION_FILE));
        }
    }
    if let Some(dir) = cache_dir() {
        files.push(dir.join(format!("{VERSION_FILE}-{}", content_hash(rustc.as_bytes()))));
    }
    files
}

/// `path\nidentity\n` then the output.
fn version_record(rustc: &str, identity: &str, output: &[u8]) -> Vec<u8> {
    let mut text = format!("{rustc}\n{identity}\n").into_bytes();
    text.extend_from_slice(output);
    text
}

/// Keeps a successful `rustc -vV` answer (best effort).
pub fn record_version(rustc: &str, output: &[u8]) {
    let Some(id) = identity(rustc) else {
        return;
    };
    let record = version_record(rustc, &id, output);
    for f in version_files(rustc) {
        if std::fs::read(&f).ok().as_deref() == Some(&record[..]) {
            continue;
        }
        if let Some(dir) = f.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = write_whole(&f, &record);
    }
}

/// The compiler's `-vV` output: a kept answer for this very executable, else a run of it
/// (then kept).
pub fn version_text(rustc: &str) -> Option<Vec<u8>> {
    if let Some(id) = identity(rustc) {
        let head = version_record(rustc, &id, b"");
        for f in version_files(rustc) {
            if let Some(rest) = std::fs::read(&f)
                .ok()
                .and_then(|k| k.strip_prefix(&head[..]).map(<[u8]>::to_vec))
                .filter(|rest| !rest.is_empty())
            {
                return Some(rest);
            }
        }
    }
    let out = compiler(rustc, &["-vV".to_owned()]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    record_version(rustc, &out.stdout);
    Some(out.stdout)
}

/// `--remap-path-prefix=FROM=TO` for the wrapper to add to every compile (see the module
/// docs), from [`REMAP_ENV`].
pub const REMAP_ENV: &str = "LPROBE_REMAP_PATH_PREFIX";

/// The compile's arguments with the copy's path remapping added, if the build asked for one.
pub fn with_remap(args: &[String]) -> Vec<String> {
    add_remap(args, std::env::var(REMAP_ENV).ok().as_deref())
}

fn add_remap(args: &[String], remap: Option<&str>) -> Vec<String> {
    let mut out = args.to_vec();
    if let Some(remap) = remap.filter(|r| !r.is_empty()) {
        out.push(format!("--remap-path-prefix={remap}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_used_only_for_the_executable_it_came_from() {
        let dir = tempfile::tempdir().expect("tempdir");
        let exe = dir.path().join("rustc");
        std::fs::write(&exe, "one").expect("write");
        let rustc = exe.display().to_string();
        let id = identity(&rustc).expect("an absolute path has an identity");
        let kept = dir.path().join("kept");
        std::fs::write(&kept, version_record(&rustc, &id, b"rustc 1.0\n")).expect("write");
        let head = version_record(&rustc, &id, b"");
        assert!(std::fs::read(&kept).expect("read").starts_with(&head));
        // The executable replaced (a toolchain update): another identity, the answer unused.
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(&exe, "a longer one").expect("write");
        let new_id = identity(&rustc).expect("identity");
        assert_ne!(id, new_id);
        assert!(!std::fs::read(&kept)
            .expect("read")
            .starts_with(&version_record(&rustc, &new_id, b"")));
        assert_eq!(identity("rustc"), None, "a bare name is not trusted");
    }

    #[test]
    fn the_remapping_is_added_after_the_arguments() {
        let args = vec!["--crate-name".to_owned(), "k".to_owned()];
        assert_eq!(
            add_remap(&args, Some("/t/lprobe/src=/w")),
            ["--crate-name", "k", "--remap-path-prefix=/t/lprobe/src=/w"]
        );
        assert_eq!(add_remap(&args, None), args);
        assert_eq!(add_remap(&args, Some("")), args);
    }
}
