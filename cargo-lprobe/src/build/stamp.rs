//! The build stamp: what the inputs and the instrumented copy looked like after the last
//! successful build, so that a build with nothing changed skips reading, parsing and rewriting
//! the workspace (a no-op `cargo lprobe build` of a 58k-line crate spent 0.3 s there).
//!
//! A stamp certifies one thing: the copy in `target/lprobe/` is what a full run would write.
//! That holds when the tool, its options and the workspace layout are the same (`key`), no
//! file under the workspace root changed size or modification time or appeared or went away
//! (`tree`, walked with the mirror's rules), and nothing under the copy was touched since
//! (`copy`). The check is `stat` calls, plus reading the few files modified in the seconds
//! before the stamp was taken ([`seal`]). A change anywhere, even in a file no crate reads,
//! takes the full path, which is always correct. So does a build that fails from the stamp
//! (new cargo arguments can compile code that no build has repaired yet).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::build::copy_tree::files_under;

/// One file: path relative to the walked root, length, modification time (ns since the epoch),
/// and for a file modified in the last seconds before the walk, a hash of its content: file
/// times are coarse (a few ms), so a second write of the same length right after the walk
/// could leave both equal (git's "racy" entries).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStat(pub String, pub u64, pub u128, pub Option<String>);

/// How recent a modification must be to be checked by content.
const RACY: Duration = Duration::from_secs(2);

#[derive(Debug, Serialize, Deserialize)]
pub struct Stamp {
    pub key: String,
    pub tree: Vec<FileStat>,
    pub copy: Vec<FileStat>,
    /// What the full run reported: per-package totals (`--report json`), repair notes, and
    /// warnings printed before its build (files it could not parse).
    pub reports: serde_json::Value,
    pub notes: Vec<String>,
    pub warnings: Vec<String>,
}

/// The tool and everything in the invocation and workspace that decides the rewrite: the
/// version, the executable itself (a rebuilt lprobe rewrites differently under one version),
/// the line selection, the options and the workspace layout (members, targets, metadata).
pub fn key(parts: &[&str]) -> String {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| {
            let m = fs::metadata(&p).ok()?;
            Some(format!("{}:{}:{}", p.display(), m.len(), mtime_ns(&m)))
        })
        .unwrap_or_default();
    let mut text = format!("lprobe {} exe {exe}", env!("CARGO_PKG_VERSION"));
    for p in parts {
        text.push('\u{1f}');
        text.push_str(p);
    }
    crate::build::repair::content_hash(text.as_bytes())
}

fn mtime_ns(m: &fs::Metadata) -> u128 {
    m.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Every file under `root` (the mirror's rules: no `.git`, no target directories, nothing in
/// `skip`), sorted by path.
pub fn walk(root: &Path, skip: &[PathBuf]) -> Result<Vec<FileStat>> {
    let mut out = Vec::new();
    if !root.exists() {
        return Ok(out);
    }
    for entry in files_under(root, skip) {
        let entry = entry?;
        let m = entry
            .metadata()
            .with_context(|| format!("reading {}", entry.path().display()))?;
        let rel = entry.path().strip_prefix(root).unwrap_or(entry.path());
        out.push(FileStat(
            rel.to_string_lossy().replace('\\', "/"),
            m.len(),
            mtime_ns(&m),
            None,
        ));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Hashes the content of the files in `tree` modified less than [`RACY`] before `walked` (or
/// before the newest file, when the file system's clock runs ahead of this machine's).
pub fn seal(root: &Path, tree: &mut [FileStat], walked: SystemTime) {
    let since = recent_since(tree, walked);
    for f in tree.iter_mut().filter(|f| f.2 >= since) {
        f.3 = content_hash(&root.join(&f.0));
    }
}

/// Forgets the content hashes of files that are no longer recent: a stamp written right after
/// a checkout hashes every file, and would have every later check read the whole tree.
/// (The hashes of files still recent are kept as they were: they describe what was built.)
pub fn expire(tree: &mut [FileStat], walked: SystemTime) -> bool {
    let since = recent_since(tree, walked);
    let mut changed = false;
    for f in tree.iter_mut().filter(|f| f.2 < since && f.3.is_some()) {
        f.3 = None;
        changed = true;
    }
    changed
}

fn recent_since(tree: &[FileStat], walked: SystemTime) -> u128 {
    let now = walked
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let newest = tree.iter().map(|f| f.2).max().unwrap_or(0);
    now.min(newest).saturating_sub(RACY.as_nanos())
}

fn content_hash(path: &Path) -> Option<String> {
    fs::read(path)
        .ok()
        .map(|b| crate::build::repair::content_hash(&b))
}

/// Whether the files under `root` are as `old` recorded them (`now` is a fresh [`walk`]).
pub fn unchanged(root: &Path, old: &[FileStat], now: &[FileStat]) -> bool {
    old.len() == now.len()
        && old.iter().zip(now).all(|(o, n)| {
            o.0 == n.0
                && o.1 == n.1
                && o.2 == n.2
                && (o.3.is_none() || o.3 == content_hash(&root.join(&n.0)))
        })
}

/// The state of everything lprobe writes for cargo: the mirror, the sites and runtime crates.
pub fn walk_copy(lp: &Path) -> Result<Vec<FileStat>> {
    let mut out = Vec::new();
    for dir in ["src", "sites", "runtime", "orig"] {
        for mut f in walk(&lp.join(dir), &[])? {
            f.0 = format!("{dir}/{}", f.0);
            out.push(f);
        }
    }
    Ok(out)
}

/// The stamp at `path`, if there is one this version can read.
pub fn load(path: &Path) -> Option<Stamp> {
    let text = fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

pub fn save(path: &Path, stamp: &Stamp) -> Result<()> {
    let text = serde_json::to_string(stamp)?;
    // Whole or not at all: another run may read it at any moment.
    let tmp = path.with_extension("json.tmp");
    fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// Removes the stamp (before a full run, so that a run that stops half-way leaves none).
pub fn remove(path: &Path) {
    let _ = fs::remove_file(path);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_walk_sees_edits_new_and_removed_files_but_not_target_directories() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::create_dir_all(root.join("src")).expect("mkdir");
        fs::write(root.join("src/lib.rs"), "pub fn f() {}").expect("write");
        fs::create_dir_all(root.join("target/release")).expect("mkdir");
        fs::write(root.join("target/CACHEDIR.TAG"), "x").expect("write");
        let before = walk(root, &[]).expect("walk");
        assert_eq!(
            before.iter().map(|f| f.0.as_str()).collect::<Vec<_>>(),
            ["src/lib.rs"]
        );
        fs::write(root.join("target/release/out"), "x").expect("write");
        assert_eq!(walk(root, &[]).expect("walk"), before);
        fs::write(root.join("src/lib.rs"), "pub fn f() { }").expect("write");
        let edited = walk(root, &[]).expect("walk");
        assert_ne!(edited, before);
        fs::write(root.join("src/new.rs"), "").expect("write");
        let added = walk(root, &[]).expect("walk");
        assert_eq!(added.len(), 2);
        fs::remove_file(root.join("src/new.rs")).expect("rm");
        assert_eq!(walk(root, &[]).expect("walk"), edited);
    }

    #[test]
    fn a_recent_file_is_compared_by_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::write(root.join("a.rs"), "fn a() {}").expect("write");
        let mut tree = walk(root, &[]).expect("walk");
        seal(root, &mut tree, SystemTime::now());
        assert!(tree[0].3.is_some(), "just written: hashed");
        assert!(unchanged(root, &tree, &walk(root, &[]).expect("walk")));
        // Same length, and the time put back as it was: only the content tells.
        let before = fs::metadata(root.join("a.rs"))
            .expect("stat")
            .modified()
            .expect("mtime");
        fs::write(root.join("a.rs"), "fn b() {}").expect("write");
        fs::File::options()
            .write(true)
            .open(root.join("a.rs"))
            .and_then(|f| f.set_modified(before))
            .expect("set time");
        let now = walk(root, &[]).expect("walk");
        assert_eq!(now[0].2, tree[0].2);
        assert!(!unchanged(root, &tree, &now));
        // An old file is trusted by its length and time (here another file is much newer: the
        // newest file also bounds "recent", for file systems whose clock runs ahead).
        let mut old = walk(root, &[]).expect("walk");
        old.push(FileStat("z.rs".into(), 1, u128::MAX / 2, None));
        seal(root, &mut old, SystemTime::now() + Duration::from_secs(60));
        assert!(old[0].3.is_none());
        // Once a hashed file is old, its hash is dropped (the next check only stats it).
        let mut aged = tree.clone();
        let later = SystemTime::now() + Duration::from_secs(60);
        assert!(!expire(&mut aged, SystemTime::now()), "still recent");
        // (The newest file bounds "recent" too: make another file the newest.)
        aged.push(FileStat("z.rs".into(), 1, u128::MAX, None));
        assert!(expire(&mut aged, later));
        assert!(aged[0].3.is_none());
    }

    #[test]
    fn the_key_changes_with_any_part() {
        assert_eq!(key(&["a", "b"]), key(&["a", "b"]));
        assert_ne!(key(&["a", "b"]), key(&["a", "c"]));
        assert_ne!(key(&["ab"]), key(&["a", "b"]));
    }
}
