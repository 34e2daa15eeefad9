//! Version skew: whether the source files on disk are the ones a running process was built
//! from.
//!
//! A process's site table holds each instrumented file's content hash as built and the text
//! of its site lines (the `files` request). The CLI hashes the same files in the workspace
//! around the current directory and, where they differ, warns with the process's own text of
//! the line, so nobody arms line 42 of today's file in a process built from yesterday's:
//! "src/main.rs changed since pid 4904 was built; line 42 there is `…`".
//!
//! The workspace is found without cargo: the nearest directory, from the current one
//! upwards, under which one of the process's files (paths relative to its workspace root)
//! exists. Run from elsewhere, nothing is compared and nothing is said.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use serde_json::Value;

use crate::build::repair::content_hash;
use crate::cli::client;

/// One instrumented file as the process was built from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltFile {
    /// Path relative to the process's workspace root.
    pub path: String,
    /// FNV-1a hash of its content at build time (`repair::content_hash`).
    pub hash: String,
    /// The text of each site line as built (trimmed, possibly cut).
    pub lines: BTreeMap<u32, String>,
}

/// How a file on disk compares with the one the process was built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disk {
    /// The same content.
    Same,
    /// Different content.
    Changed,
    /// Not there (deleted or moved since the build).
    Missing,
}

/// The process's files (those whose path contains `filter`), or `None` when the process is
/// too old to answer `files` (nothing can be compared).
pub fn built_files(socket: &Path, filter: Option<&str>) -> Result<Option<Vec<BuiltFile>>> {
    let args: Vec<&str> = filter.into_iter().collect();
    let v = match client::request(socket, "files", &args) {
        Ok(v) => v,
        Err(e) => match e.downcast_ref::<client::ServerError>() {
            Some(se) if se.0.starts_with("unknown request") => return Ok(None),
            _ => return Err(e),
        },
    };
    let Some(Value::Array(files)) = v.get("files") else {
        bail!("malformed answer to 'files' (no \"files\" array)");
    };
    Ok(Some(files.iter().filter_map(parse_file).collect()))
}

fn parse_file(v: &Value) -> Option<BuiltFile> {
    let lines = v
        .get("lines")?
        .as_array()?
        .iter()
        .filter_map(|l| {
            Some((
                u32::try_from(l.get(0)?.as_u64()?).ok()?,
                l.get(1)?.as_str()?,
            ))
        })
        .map(|(n, t)| (n, t.to_owned()))
        .collect();
    Some(BuiltFile {
        path: v.get("path")?.as_str()?.to_owned(),
        hash: v.get("hash")?.as_str()?.to_owned(),
        lines,
    })
}

/// The workspace root the process's paths are relative to: the nearest of `start` and its
/// ancestors under which one of `files` exists as a file.
pub fn find_root(start: &Path, files: &[BuiltFile]) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|dir| files.iter().any(|f| dir.join(&f.path).is_file()))
        .map(Path::to_path_buf)
}

/// Compares `f` with `root/f.path`.
pub fn compare(root: &Path, f: &BuiltFile) -> Disk {
    match std::fs::read(root.join(&f.path)) {
        Ok(bytes) if content_hash(&bytes) == f.hash => Disk::Same,
        Ok(_) => Disk::Changed,
        Err(_) => Disk::Missing,
    }
}

/// The files of `files` that differ on disk under the workspace around `cwd` (none when no
/// workspace with them is found), by path.
pub fn changed(cwd: &Path, files: &[BuiltFile]) -> BTreeMap<String, (Disk, BuiltFile)> {
    let Some(root) = find_root(cwd, files) else {
        return BTreeMap::new();
    };
    files
        .iter()
        .map(|f| (compare(&root, f), f))
        .filter(|(d, _)| *d != Disk::Same)
        .map(|(d, f)| (f.path.clone(), (d, f.clone())))
        .collect()
}

/// The warning for `path` in process `pid`, with the process's text of `line` if given:
/// "src/main.rs changed since pid 4904 was built; line 42 there is `let x = 1;`".
pub fn warning(disk: Disk, f: &BuiltFile, pid: u32, line: Option<u32>) -> String {
    let what = match disk {
        Disk::Missing => "is gone from the workspace",
        _ => "changed",
    };
    let mut s = format!("{} {what} since pid {pid} was built", f.path);
    if let Some(n) = line {
        match f.lines.get(&n) {
            Some(t) => s.push_str(&format!("; line {n} there is `{t}`")),
            None => s.push_str(&format!("; line {n} there has no site")),
        }
    }
    s
}

/// The warnings for sites given as `path:line` (as `arm` answers them) that lie in changed
/// files: one per file, with the first such site's line.
pub fn site_warnings(
    changed: &BTreeMap<String, (Disk, BuiltFile)>,
    pid: u32,
    sites: &[String],
) -> Vec<String> {
    let mut done: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    for site in sites {
        let Some((path, line)) = site.rsplit_once(':') else {
            continue;
        };
        let Some((disk, f)) = changed.get(path) else {
            continue;
        };
        if done.contains(&path) {
            continue;
        }
        done.push(path);
        out.push(warning(*disk, f, pid, line.parse().ok()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn built(path: &str, text: &str) -> BuiltFile {
        BuiltFile {
            path: path.into(),
            hash: content_hash(text.as_bytes()),
            lines: BTreeMap::from([(2, "let x = 1;".to_string())]),
        }
    }

    #[test]
    fn finds_the_nearest_root_and_compares_contents() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("src/deep")).expect("mkdir");
        std::fs::write(root.join("src/main.rs"), "fn main() {\n    let x = 1;\n}\n").expect("w");
        let same = built("src/main.rs", "fn main() {\n    let x = 1;\n}\n");
        let old = built("src/main.rs", "fn main() {\n    let x = 2;\n}\n");
        let gone = built("src/gone.rs", "");
        assert_eq!(
            find_root(&root.join("src/deep"), std::slice::from_ref(&same)).as_deref(),
            Some(root)
        );
        assert_eq!(compare(root, &same), Disk::Same);
        assert_eq!(compare(root, &old), Disk::Changed);
        assert_eq!(compare(root, &gone), Disk::Missing);
        assert!(changed(&root.join("src"), &[same]).is_empty());
        let c = changed(root, &[old, gone]);
        assert_eq!(c.keys().collect::<Vec<_>>(), ["src/gone.rs", "src/main.rs"]);
        assert_eq!(
            site_warnings(&c, 4904, &["src/main.rs:2".into(), "src/main.rs:9".into()]),
            ["src/main.rs changed since pid 4904 was built; line 2 there is `let x = 1;`"]
        );
        assert_eq!(
            warning(Disk::Missing, &c["src/gone.rs"].1, 7, Some(9)),
            "src/gone.rs is gone from the workspace since pid 7 was built; line 9 there has no site"
        );
    }

    #[test]
    fn no_workspace_no_comparison() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(changed(dir.path(), &[built("src/main.rs", "x")]).is_empty());
    }
}
