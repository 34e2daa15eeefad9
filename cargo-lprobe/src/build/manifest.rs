//! Edits the copied manifests: adds each instrumented package's sites crate as a dependency and
//! makes relative `path =` dependencies that point outside the workspace absolute.

use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};
use toml_edit::{DocumentMut, InlineTable, Item, Value};

/// The dependency name instrumented code uses for its sites crate.
pub const SITES_DEP: &str = crate::build::rewrite::SITES_CRATE;

/// Rewrites one manifest. `manifest_dir` is its directory in the user's workspace; `root` the
/// workspace root; `sites` the sites crate to depend on (package name, absolute path), if the
/// package is instrumented.
pub fn edit(
    text: &str,
    manifest_dir: &Path,
    root: &Path,
    sites: Option<(&str, &Path)>,
    workspace_root: bool,
) -> Result<String> {
    let mut doc: DocumentMut = text
        .parse()
        .with_context(|| format!("parsing {}", manifest_dir.join("Cargo.toml").display()))?;
    absolutize_paths(doc.as_item_mut(), manifest_dir, root, 0);
    if let Some((package, path)) = sites {
        let deps = doc
            .entry("dependencies")
            .or_insert_with(|| Item::Table(toml_edit::Table::new()));
        let Some(deps) = deps.as_table_like_mut() else {
            anyhow::bail!(
                "{}: [dependencies] is not a table",
                manifest_dir.join("Cargo.toml").display()
            );
        };
        let mut dep = InlineTable::new();
        dep.insert("package", Value::from(package));
        dep.insert("path", Value::from(path.display().to_string()));
        deps.insert(SITES_DEP, Item::Value(Value::InlineTable(dep)));
    }
    if workspace_root {
        // Debug builds compile the runtime optimized, without debug assertions: an armed hit
        // in a test run then costs what it costs in release (about 50x less than
        // unoptimized), for a few seconds more of one-time compilation. The user's own code
        // keeps its profile.
        runtime_profile(
            &mut doc,
            "dev",
            &[
                ("opt-level", toml_edit::value(1)),
                ("debug-assertions", toml_edit::value(false)),
                ("overflow-checks", toml_edit::value(false)),
            ],
        );
        // Release builds compile it as one codegen unit: the binary carries about 95 KB less
        // of it (the control plane's parsers, the probe state: code spread over many small
        // functions that sixteen units each kept a copy of), at the same speed, for one
        // machine-wide compilation of a few seconds more (`runtime_cache`).
        runtime_profile(
            &mut doc,
            "release",
            &[("codegen-units", toml_edit::value(1))],
        );
    }
    Ok(doc.to_string())
}

/// Sets `[profile.PROFILE.package.lprobe-runtime]` to `settings`, unless the user's manifest
/// has that table already (theirs wins).
fn runtime_profile(doc: &mut DocumentMut, profile: &str, settings: &[(&str, Item)]) {
    /// A table that prints only through its children (`[profile.dev.package.x]`).
    fn implicit() -> Item {
        let mut t = toml_edit::Table::new();
        t.set_implicit(true);
        Item::Table(t)
    }
    let Some(packages) = doc
        .entry("profile")
        .or_insert_with(implicit)
        .as_table_like_mut()
        .and_then(|p| {
            p.entry(profile)
                .or_insert_with(implicit)
                .as_table_like_mut()
        })
        .and_then(|d| {
            d.entry("package")
                .or_insert_with(implicit)
                .as_table_like_mut()
        })
    else {
        return;
    };
    if packages.contains_key(crate::build::runtime_src::PACKAGE) {
        return;
    }
    let mut t = toml_edit::Table::new();
    for (key, value) in settings {
        t.insert(key, value.clone());
    }
    packages.insert(crate::build::runtime_src::PACKAGE, Item::Table(t));
}

/// Lexically normalizes `a/b/../c` to `a/c`.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Every `path = "…"` value found in a dependency-like table (any depth) that leads outside
/// the workspace becomes absolute; paths inside stay relative (the copy mirrors them).
fn absolutize_paths(item: &mut Item, dir: &Path, root: &Path, depth: usize) {
    if depth > 8 {
        return;
    }
    let Some(table) = item.as_table_like_mut() else {
        return;
    };
    for (key, value) in table.iter_mut() {
        if key.get() == "path" {
            if let Some(s) = value.as_str() {
                let p = Path::new(s);
                if p.is_relative() {
                    let abs = normalize(&dir.join(p));
                    if !abs.starts_with(root) {
                        *value = Item::Value(Value::from(abs.display().to_string()));
                    }
                }
            }
            continue;
        }
        absolutize_paths(value, dir, root, depth + 1);
    }
}

/// Whether the workspace manifest sets `debug` for `profile`.
pub fn profile_sets_debug(root_manifest: &str, profile: &str) -> bool {
    let Ok(doc) = root_manifest.parse::<DocumentMut>() else {
        return false;
    };
    doc.get("profile")
        .and_then(|p| p.get(profile))
        .and_then(|p| p.get("debug"))
        .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_sites_dependency_and_absolutizes_outside_paths_only() {
        let text = "[package]\nname = \"app\"\n\n[dependencies]\ninside = { path = \"../lib\" }\noutside = { path = \"../../other\" }\n\n[patch.crates-io]\nx = { path = \"../../x\" }\n";
        let out = edit(
            text,
            Path::new("/ws/app"),
            Path::new("/ws"),
            Some(("lprobe-sites-app", Path::new("/ws/target/lprobe/sites/app"))),
            false,
        )
        .expect("edits");
        assert!(out.contains("inside = { path = \"../lib\" }"), "{out}");
        assert!(out.contains("outside = { path = \"/other\" }"), "{out}");
        assert!(out.contains("x = { path = \"/x\" }"), "{out}");
        assert!(out.contains("lprobe_sites = { package = \"lprobe-sites-app\", path = \"/ws/target/lprobe/sites/app\" }"), "{out}");
    }

    #[test]
    fn the_workspace_root_gets_an_optimized_runtime_in_dev_and_one_unit_in_release() {
        let out = edit(
            "[workspace]\nmembers = [\"a\"]\n",
            Path::new("/ws"),
            Path::new("/ws"),
            None,
            true,
        )
        .expect("edits");
        let doc: DocumentMut = out.parse().expect("valid toml");
        assert_eq!(
            doc["profile"]["dev"]["package"]["lprobe-runtime"]["opt-level"].as_integer(),
            Some(1),
            "{out}"
        );
        assert_eq!(
            doc["profile"]["release"]["package"]["lprobe-runtime"]["codegen-units"].as_integer(),
            Some(1),
            "{out}"
        );
        // A user's own setting for it wins.
        let own = "[profile.dev.package.lprobe-runtime]\nopt-level = 0\n";
        let out = edit(own, Path::new("/ws"), Path::new("/ws"), None, true).expect("edits");
        assert!(
            out.contains("opt-level = 0") && !out.contains("opt-level = 1"),
            "{out}"
        );
    }

    #[test]
    fn profile_debug_detection() {
        assert!(profile_sets_debug(
            "[profile.release]\ndebug = 1\n",
            "release"
        ));
        assert!(!profile_sets_debug(
            "[profile.release]\nlto = true\n",
            "release"
        ));
    }
}
