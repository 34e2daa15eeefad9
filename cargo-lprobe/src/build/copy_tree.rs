//! Mirrors the user's workspace into `target/lprobe/src/`, writing only files whose content
//! changed, so cargo's fingerprints see an edit of one file as an edit of one file.
//!
//! **Invariant:** the user's workspace is only ever read.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Writes `content` to `path` unless it already holds exactly that; true if it wrote.
pub fn write_if_changed(path: &Path, content: &[u8]) -> Result<bool> {
    if let Ok(old) = fs::read(path) {
        if old == content {
            return Ok(false);
        }
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    fs::write(path, content).with_context(|| format!("writing {}", path.display()))?;
    Ok(true)
}

/// The files under `root` that the mirror copies: no `.git`, no target directories (a
/// `CACHEDIR.TAG`), nothing in `skip`; links followed, dangling ones stepped over.
pub(crate) fn files_under<'a>(
    root: &'a Path,
    skip: &'a [PathBuf],
) -> impl Iterator<Item = Result<walkdir::DirEntry>> + 'a {
    walkdir::WalkDir::new(root)
        .follow_links(true)
        .into_iter()
        .filter_entry(|e| !(e.file_type().is_dir() && is_skipped_dir(e.path(), skip)))
        .filter_map(move |entry| match entry {
            Ok(e) if e.file_type().is_file() => Some(Ok(e)),
            Ok(_) => None,
            Err(e) if is_dangling(&e) => None,
            Err(e) => Some(Err(e).with_context(|| format!("walking {}", root.display()))),
        })
}

/// A walk error to step over: a symbolic link to nothing (an editor's `.#file` lock), a file
/// removed while the walk ran, or a link that loops. Nothing of that can be a source file.
fn is_dangling(e: &walkdir::Error) -> bool {
    e.loop_ancestor().is_some()
        || e.io_error()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound)
}

/// Whether a directory is a cargo target directory (or some other cache) to leave behind.
fn is_skipped_dir(path: &Path, skip: &[PathBuf]) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name == ".git" || skip.iter().any(|s| s == path) || path.join("CACHEDIR.TAG").exists()
}

/// Copies every file under `src` to `dest` (skipping `.git`, target directories and `skip`),
/// writing `overrides[rel]` instead of the original where given, and removes files from `dest`
/// that `src` no longer has. Returns the relative paths mirrored.
pub fn mirror(
    src: &Path,
    dest: &Path,
    skip: &[PathBuf],
    overrides: &HashMap<PathBuf, Vec<u8>>,
) -> Result<Vec<PathBuf>> {
    let mut seen = HashSet::new();
    for entry in files_under(src, skip) {
        let entry = entry?;
        let rel = entry
            .path()
            .strip_prefix(src)
            .with_context(|| format!("{} is not under {}", entry.path().display(), src.display()))?
            .to_path_buf();
        match overrides.get(&rel) {
            Some(content) => write_if_changed(&dest.join(&rel), content)?,
            None => {
                let content = fs::read(entry.path())
                    .with_context(|| format!("reading {}", entry.path().display()))?;
                write_if_changed(&dest.join(&rel), &content)?
            }
        };
        seen.insert(rel);
    }
    // Remove what the source no longer has.
    if dest.exists() {
        for entry in walkdir::WalkDir::new(dest)
            .into_iter()
            .filter_map(|e| e.ok())
        {
            if !entry.file_type().is_file() {
                continue;
            }
            if let Ok(rel) = entry.path().strip_prefix(dest) {
                if !seen.contains(rel) && !rel.starts_with("target") {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
    }
    let mut files: Vec<PathBuf> = seen.into_iter().collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_skips_targets_and_removes_stale_files() {
        let src = tempfile::tempdir().expect("tempdir");
        let dest = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(src.path().join("src")).expect("mkdir");
        fs::write(src.path().join("src/main.rs"), "fn main() {}").expect("write");
        fs::create_dir_all(src.path().join("target/debug")).expect("mkdir");
        fs::write(src.path().join("target/CACHEDIR.TAG"), "x").expect("write");
        fs::write(src.path().join("target/debug/big"), "x").expect("write");
        fs::write(dest.path().join("stale.rs"), "x").expect("write");
        let mut over = HashMap::new();
        over.insert(PathBuf::from("src/main.rs"), b"fn main() { }".to_vec());
        let files = mirror(src.path(), dest.path(), &[], &over).expect("mirror");
        assert_eq!(files, vec![PathBuf::from("src/main.rs")]);
        assert!(dest.path().join("src/main.rs").exists());
        assert!(!dest.path().join("target/debug/big").exists());
        assert!(!dest.path().join("stale.rs").exists());
        assert!(
            !write_if_changed(&dest.path().join("src/main.rs"), b"fn main() { }").expect("write")
        );
        // An editor's lock file (a link to nothing) is stepped over.
        std::os::unix::fs::symlink("user@host.123", src.path().join("src/.#main.rs"))
            .expect("link");
        let files =
            mirror(src.path(), dest.path(), &[], &over).expect("mirror with a dangling link");
        assert_eq!(files, vec![PathBuf::from("src/main.rs")]);
    }
}
