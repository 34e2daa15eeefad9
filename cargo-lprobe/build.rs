//! Embeds the runtime's sources: every `.rs` file under `runtime-src/` becomes an entry of
//! `build::runtime_src::FILES` (`$OUT_DIR/runtime_files.rs`), so an installed cargo-lprobe
//! writes out, and links, exactly the runtime it was built with.
//!
//! `runtime-src` is a symbolic link to `../probe-runtime/src` in the repository; `cargo
//! package` follows it and packs the files themselves, so the same path works from the
//! published `.crate`, where `../probe-runtime` does not exist. Files are found by walking the
//! directory, so a file added to (or moved within) the runtime needs no change here.

use std::fs;
use std::path::{Path, PathBuf};

fn main() {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let src = root.join("runtime-src");
    println!("cargo:rerun-if-changed=runtime-src");
    let mut files = Vec::new();
    walk(&src, &src, &mut files);
    files.sort();
    assert!(
        files.iter().any(|(rel, _)| rel == "lib.rs"),
        "no runtime sources in {} (runtime-src must link to ../probe-runtime/src)",
        src.display()
    );
    let mut out = String::from("&[\n");
    for (rel, path) in &files {
        println!("cargo:rerun-if-changed={}", path.display());
        out.push_str(&format!(
            "    ({rel:?}, include_str!({:?})),\n",
            path.display().to_string()
        ));
    }
    out.push_str("]\n");
    let dest =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("runtime_files.rs");
    fs::write(&dest, out).expect("writing runtime_files.rs");
}

/// The `.rs` files under `dir`, as (path relative to `base` with `/`, absolute path).
fn walk(base: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            walk(base, &path, files);
        } else if path.extension().is_some_and(|x| x == "rs") {
            let rel = path.strip_prefix(base).expect("under base");
            let rel: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            files.push((rel.join("/"), path));
        }
    }
}
