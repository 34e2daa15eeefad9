//! Edits the copied manifests: adds each instrumented package's sites crate as a dependency and
//! makes relative `path =` dependencies that point outside the workspace absolute.

use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};
use toml_edit::{DocumentMut, InlineTable, Item, Value};

/// The dependency an instrumented package gets: the crate its generated code names.
pub struct Dep {
    /// As the code names it (`lprobe_sites`, `probe_runtime`).
    pub name: &'static str,
    pub package: String,
    /// Absolute.
    pub path: PathBuf,
}

/// Rewrites one manifest. `manifest_dir` is its directory in the user's workspace; `root` the
/// workspace root; `dep` what the package's generated code names (its sites crate, or the
/// runtime's hot path), if the package is instrumented.
pub fn edit(
    text: &str,
    manifest_dir: &Path,
    root: &Path,
    dep: Option<&Dep>,
    workspace_root: bool,
) -> Result<String> {
    let mut doc: DocumentMut = text
        .parse()
        .with_context(|| format!("parsing {}", manifest_dir.join("Cargo.toml").display()))?;
    absolutize_paths(doc.as_item_mut(), manifest_dir, root, 0);
    if let Some(Dep {
        name,
        package,
        path,
    }) = dep
    {
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
        dep.insert("package", Value::from(package.as_str()));
        dep.insert("path", Value::from(path.display().to_string()));
        deps.insert(name, Item::Value(Value::InlineTable(dep)));
    }
    if workspace_root {
        // Debug builds compile the runtime and its hot path optimized, without debug
        // assertions: an armed hit in a test run then costs what it costs in release (about
        // 50x less than unoptimized), for a few seconds more of one-time compilation. The
        // user's own code keeps its profile.
        let dev = [
            ("opt-level", toml_edit::value(1)),
            ("debug-assertions", toml_edit::value(false)),
            ("overflow-checks", toml_edit::value(false)),
        ];
        runtime_profile(&mut doc, "dev", RUNTIME, &dev);
        runtime_profile(&mut doc, "dev", HOT, &dev);
        // Release builds compile the runtime for size, as one codegen unit: most of it is the
        // control plane, the parsers and the output, run by its own threads; the functions a
        // hit runs are compiled into the hot-path crate (`runtime_src::HOT_LIB`) at the
        // program's own level. Sixteen units kept a copy each of code spread over many small
        // functions (95 KB); `"z"` takes 12-15 KB more off every binary (the code both an
        // application thread and the runtime's threads run is in it twice, once per level)
        // and makes the machine-wide compilation (`runtime_cache`) a third faster.
        runtime_profile(
            &mut doc,
            "release",
            RUNTIME,
            &[
                ("opt-level", toml_edit::value("z")),
                ("codegen-units", toml_edit::value(1)),
            ],
        );
        runtime_profile(
            &mut doc,
            "release",
            HOT,
            &[("codegen-units", toml_edit::value(1))],
        );
    }
    Ok(doc.to_string())
}

const RUNTIME: &str = crate::build::runtime_src::PACKAGE;
const HOT: &str = crate::build::runtime_src::HOT_PACKAGE;

/// Sets `[profile.PROFILE.package.PACKAGE]` to `settings`, unless the user's manifest has that
/// table already (theirs wins).
fn runtime_profile(doc: &mut DocumentMut, profile: &str, package: &str, settings: &[(&str, Item)]) {
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
    if packages.contains_key(package) {
        return;
    }
    let mut t = toml_edit::Table::new();
    for (key, value) in settings {
        t.insert(key, value.clone());
    }
    packages.insert(package, Item::Table(t));
}

/// Lexically normalizes `a/b/../c` to `a/c` (as cargo does its own paths).
pub(crate) fn normalize(p: &Path) -> PathBuf {
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

/// The debug settings lprobe adds to an optimized profile so that snapshot stacks show a line
/// for each frame of the workspace's own code: line tables for the workspace's crates, unless
/// the manifest sets `debug` for the profile; and none for dependencies (`package."*"`), as
/// in the plain build, unless the manifest says otherwise for them. A program's dependencies
/// are most of its compile, and their frames keep their function names. Profiles derived from
/// `dev` or `test` (which have debug info already) get nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StackLines {
    /// Set `debug = "line-tables-only"` for the profile.
    pub profile: bool,
    /// Set `debug = false` in the profile's `package."*"` override.
    pub dependencies_off: bool,
}

/// What [`StackLines`] to add for `profile`, from the workspace manifest.
pub fn stack_lines(root_manifest: &str, profile: &str) -> StackLines {
    let none = StackLines {
        profile: false,
        dependencies_off: false,
    };
    let doc = root_manifest.parse::<DocumentMut>().ok();
    let table = |name: &str| doc.as_ref()?.get("profile")?.get(name).cloned();
    if !matches!(
        base_profile(doc.as_ref(), profile).as_deref(),
        Some("release" | "bench")
    ) {
        return none;
    }
    let own = table(profile);
    if own.as_ref().is_some_and(|t| t.get("debug").is_some()) {
        return none;
    }
    let deps_set = own.as_ref().is_some_and(|t| {
        t.get("package")
            .and_then(|p| p.get("*"))
            .and_then(|p| p.get("debug"))
            .is_some()
    });
    StackLines {
        profile: true,
        dependencies_off: !deps_set,
    }
}

/// The built-in profile (`dev`, `test`, `release`, `bench`) that `profile` inherits from,
/// following `inherits` a few steps (cargo refuses cycles); `None` when the chain breaks.
fn base_profile(doc: Option<&DocumentMut>, profile: &str) -> Option<String> {
    let mut base = profile.to_owned();
    for _ in 0..8 {
        if matches!(base.as_str(), "dev" | "test" | "release" | "bench") {
            return Some(base);
        }
        base = doc?
            .get("profile")?
            .get(&base)?
            .get("inherits")?
            .as_str()?
            .to_owned();
    }
    None
}

/// Whether the workspace manifest leaves `profile` compiled without incremental state, so
/// that lprobe may make its check rounds incremental (and remove what they kept): a profile
/// derived from `release` or `bench` that sets no `incremental` along its chain. A `dev`
/// profile is incremental already, and its state is the user's next build's.
pub fn incremental_is_lprobes(root_manifest: &str, profile: &str) -> bool {
    let Ok(doc) = root_manifest.parse::<DocumentMut>() else {
        return false;
    };
    if !matches!(
        base_profile(Some(&doc), profile).as_deref(),
        Some("release" | "bench")
    ) {
        return false;
    }
    // The profile and those it inherits from (the chain is short: base_profile ended it).
    let mut name = profile.to_owned();
    for _ in 0..9 {
        let Some(t) = doc.get("profile").and_then(|p| p.get(&name)) else {
            return true;
        };
        if t.get("incremental").is_some() {
            return false;
        }
        match t.get("inherits").and_then(|i| i.as_str()) {
            Some(parent) => name = parent.to_owned(),
            None => return true,
        }
    }
    true
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
            Some(&Dep {
                name: "lprobe_sites",
                package: "lprobe-sites-app".to_owned(),
                path: PathBuf::from("/ws/target/lprobe/sites/app"),
            }),
            false,
        )
        .expect("edits");
        assert!(out.contains("inside = { path = \"../lib\" }"), "{out}");
        assert!(out.contains("outside = { path = \"/other\" }"), "{out}");
        assert!(out.contains("x = { path = \"/x\" }"), "{out}");
        assert!(out.contains("lprobe_sites = { package = \"lprobe-sites-app\", path = \"/ws/target/lprobe/sites/app\" }"), "{out}");
    }

    #[test]
    fn the_workspace_root_gets_an_optimized_runtime_in_dev_and_a_small_one_in_release() {
        let out = edit(
            "[workspace]\nmembers = [\"a\"]\n",
            Path::new("/ws"),
            Path::new("/ws"),
            None,
            true,
        )
        .expect("edits");
        let doc: DocumentMut = out.parse().expect("valid toml");
        let packages = |profile: &str| doc["profile"][profile]["package"].clone();
        for package in ["lprobe-runtime", "lprobe-runtime-hot"] {
            assert_eq!(
                packages("dev")[package]["opt-level"].as_integer(),
                Some(1),
                "{out}"
            );
            assert_eq!(
                packages("release")[package]["codegen-units"].as_integer(),
                Some(1),
                "{out}"
            );
        }
        // The runtime is compiled for size, its hot path at the program's own level.
        assert_eq!(
            packages("release")["lprobe-runtime"]["opt-level"].as_str(),
            Some("z"),
            "{out}"
        );
        assert!(
            packages("release")["lprobe-runtime-hot"]
                .get("opt-level")
                .is_none(),
            "{out}"
        );
        // A user's own setting for a package wins.
        let own = "[profile.dev.package.lprobe-runtime]\nopt-level = 0\n";
        let out = edit(own, Path::new("/ws"), Path::new("/ws"), None, true).expect("edits");
        let doc: DocumentMut = out.parse().expect("valid toml");
        let dev = &doc["profile"]["dev"]["package"];
        assert_eq!(
            dev["lprobe-runtime"]["opt-level"].as_integer(),
            Some(0),
            "{out}"
        );
        assert!(
            dev["lprobe-runtime"].get("overflow-checks").is_none(),
            "{out}"
        );
        assert_eq!(
            dev["lprobe-runtime-hot"]["opt-level"].as_integer(),
            Some(1),
            "{out}"
        );
    }

    #[test]
    fn check_rounds_are_made_incremental_only_where_nothing_else_decides() {
        assert!(incremental_is_lprobes("", "release"));
        assert!(incremental_is_lprobes(
            "[profile.release]\nlto = true\n",
            "bench"
        ));
        // dev is incremental already: its state is the user's.
        assert!(!incremental_is_lprobes("", "dev"));
        assert!(!incremental_is_lprobes("", "test"));
        assert!(!incremental_is_lprobes(
            "[profile.release]\nincremental = true\n",
            "release"
        ));
        let custom = "[profile.prod]\ninherits = \"fast\"\n[profile.fast]\ninherits = \"release\"\nincremental = false\n[profile.dbg]\ninherits = \"dev\"\n[profile.rel]\ninherits = \"release\"\n";
        assert!(!incremental_is_lprobes(custom, "prod"));
        assert!(!incremental_is_lprobes(custom, "dbg"));
        assert!(incremental_is_lprobes(custom, "rel"));
        assert!(!incremental_is_lprobes(custom, "missing"));
        assert!(!incremental_is_lprobes("not toml [", "release"));
    }

    #[test]
    fn stack_lines_for_optimized_profiles_the_manifest_leaves_alone() {
        let both = StackLines {
            profile: true,
            dependencies_off: true,
        };
        let none = StackLines {
            profile: false,
            dependencies_off: false,
        };
        assert_eq!(stack_lines("[package]\nname = \"a\"\n", "release"), both);
        assert_eq!(stack_lines("", "bench"), both);
        assert_eq!(
            stack_lines("[profile.release]\nlto = true\n", "release"),
            both
        );
        // The manifest's own choice wins, for the workspace or for its dependencies.
        assert_eq!(
            stack_lines("[profile.release]\ndebug = 1\n", "release"),
            none
        );
        assert_eq!(
            stack_lines(
                "[profile.release.package.\"*\"]\ndebug = \"line-tables-only\"\n",
                "release"
            ),
            StackLines {
                profile: true,
                dependencies_off: false
            }
        );
        // A custom profile follows `inherits`; one from `dev` has debug info already.
        let custom = "[profile.prod]\ninherits = \"fast\"\n[profile.fast]\ninherits = \"release\"\n[profile.dbg]\ninherits = \"dev\"\n";
        assert_eq!(stack_lines(custom, "prod"), both);
        assert_eq!(stack_lines(custom, "dbg"), none);
        assert_eq!(stack_lines(custom, "missing"), none);
        assert_eq!(
            stack_lines("[profile.loop]\ninherits = \"loop\"\n", "loop"),
            none
        );
        assert_eq!(stack_lines("not toml [", "dev"), none);
    }
}
