//! The first build round started before the rewrite is done.
//!
//! Cargo needs 40–80 ms to start (reading the manifests and the lock, planning the units),
//! then builds the dependencies; lprobe's own work before it (parsing the sources, finding the
//! sites, writing the copy) took as long again on a small crate (bytes: 0.1 s), one after the
//! other. On a clean build (no copy yet), the driver now writes the copy's manifests as the
//! rewrite will most likely leave them (every package's table in its own crates, no output
//! bridges), mirrors the workspace unchanged beside them and starts cargo at once; the
//! compiler wrapper ([`wait`]) holds back every compile of a crate of the copy until the
//! driver opens the gate, which it does once the rewritten sources are in place. So cargo's
//! start, the runtime's replay and the dependencies overlap the rewrite, and no crate of the
//! copy is ever compiled from a file that is not the final one.
//!
//! When the rewrite's manifests turn out different (a crate root that did not parse, a
//! remembered repair that moves a table into a sites crate), the driver marks the gate
//! aborted before opening it: the held compiles fail at once without running the compiler,
//! the round's outcome is dropped and the round is run again as usual (what cargo built of
//! the dependencies meanwhile is kept).
//!
//! The gate is a file lock (`target/lprobe/gate`): held exclusively by the driver, waited for
//! shared by the wrapper, so a driver that dies opens it too.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

/// The variable that names the gate to the compiler wrapper (set for the early round only).
pub const GATE_ENV: &str = "LPROBE_GATE";

/// The gate's file, in lprobe's target directory.
pub fn gate_path(lp: &Path) -> PathBuf {
    lp.join("gate")
}

/// Written beside the gate when the early round's outcome will not be used.
fn aborted_path(gate: &Path) -> PathBuf {
    gate.with_extension("aborted")
}

/// The driver's side: the gate held shut, and the manifests the early round was started with.
pub struct Gate {
    path: PathBuf,
    file: File,
    manifests: HashMap<PathBuf, Vec<u8>>,
    /// Set by [`Gate::open`]: the held compiles go on. A gate dropped without it (the rewrite
    /// failed) aborts them.
    keep: bool,
}

impl Gate {
    /// Shuts the gate (`lp/gate`, locked exclusively). `None` when the file system has no
    /// locks: no early start then.
    pub fn shut(lp: &Path, manifests: HashMap<PathBuf, Vec<u8>>) -> Option<Gate> {
        let path = gate_path(lp);
        let _ = std::fs::remove_file(aborted_path(&path));
        let file = File::create(&path).ok()?;
        file.try_lock().ok()?;
        Some(Gate {
            path,
            file,
            manifests,
            keep: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the rewrite's manifests (`final_manifests`) are those the early round runs with.
    pub fn matches(&self, final_manifests: &HashMap<PathBuf, Vec<u8>>) -> bool {
        self.manifests == *final_manifests
    }

    /// Opens the gate: the held compiles go on (`keep`) or fail at once (not `keep`: the
    /// round's outcome will be dropped).
    pub fn open(mut self, keep: bool) {
        self.keep = keep;
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        if !self.keep {
            // If the marker cannot be written the compiles run against whatever the copy
            // holds: their outcome is dropped with the round anyway.
            let _ = std::fs::write(aborted_path(&self.path), b"");
        }
        let _ = self.file.unlock();
    }
}

/// The compiler wrapper's side: for a compile of a crate in the copy or a sites crate of an
/// early round, waits until the gate opens. `Err` (the exit code) when the driver aborted
/// the round.
pub fn wait() -> Result<(), i32> {
    let Some(gate) = std::env::var_os(GATE_ENV).map(PathBuf::from) else {
        return Ok(());
    };
    let Some(lp) = gate.parent() else {
        return Ok(());
    };
    // Cargo names the package of each compile; its probes of the compiler name none.
    let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from) else {
        return Ok(());
    };
    if !held(lp, &dir) {
        return Ok(());
    }
    if let Ok(file) = File::open(&gate) {
        // Blocks until the driver unlocks (or exits).
        let _ = file.lock_shared();
    }
    if aborted_path(&gate).exists() {
        eprintln!("cargo-lprobe: this round was started early and is being run again");
        return Err(101);
    }
    Ok(())
}

/// Whether a compile of the package in `manifest_dir` waits for the gate of `lp` (lprobe's
/// target directory): a package of the copy or a sites crate. Cargo names the package by the
/// directory it ran in, which the system resolved (a target directory reached through a
/// symbolic link has another spelling there): both are compared resolved too, since a compile
/// let through the gate by a spelling would build the sources before the rewrite.
fn held(lp: &Path, manifest_dir: &Path) -> bool {
    let resolved = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let (lp, dir) = (resolved(lp), resolved(manifest_dir));
    dir.starts_with(lp.join("src")) || dir.starts_with(lp.join("sites"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copys_packages_are_held_under_any_spelling_of_the_target_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lp = dir.path().join("t/lprobe");
        for sub in ["src/member", "sites/pkg", "runtime/hot"] {
            std::fs::create_dir_all(lp.join(sub)).expect("mkdir");
        }
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path().join("t"), &link).expect("symlink");
        let via_link = link.join("lprobe");
        for lp_spelling in [&lp, &via_link] {
            for pkg_spelling in [&lp, &via_link] {
                assert!(held(lp_spelling, &pkg_spelling.join("src/member")));
                assert!(held(lp_spelling, &pkg_spelling.join("sites/pkg")));
                assert!(!held(lp_spelling, &pkg_spelling.join("runtime/hot")));
            }
        }
        assert!(!held(
            &lp,
            Path::new("/root/.cargo/registry/src/serde-1.0.0")
        ));
    }

    #[test]
    fn a_shut_gate_is_held_until_opened_and_an_aborted_one_says_so() {
        let dir = tempfile::tempdir().expect("tempdir");
        let gate = Gate::shut(dir.path(), HashMap::new()).expect("a lock on a temp dir");
        let other = File::open(gate.path()).expect("open");
        assert!(other.try_lock_shared().is_err(), "shut: a reader must wait");
        let mut changed = HashMap::new();
        changed.insert(PathBuf::from("Cargo.toml"), b"x".to_vec());
        assert!(gate.matches(&HashMap::new()));
        assert!(!gate.matches(&changed));
        let path = gate.path().to_path_buf();
        gate.open(false);
        assert!(other.try_lock_shared().is_ok(), "opened: readers go on");
        assert!(aborted_path(&path).exists());
        drop(other);
        // A new round clears the mark.
        let again = Gate::shut(dir.path(), HashMap::new()).expect("lock");
        assert!(!aborted_path(again.path()).exists());
        again.open(true);
        assert!(!aborted_path(&path).exists());
    }
}
