//! The workspace as cargo sees it (via `cargo metadata`) and the module tree of each target.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::build::cfg::Pred;
use crate::build::sites_crate::FlagAccess;

/// One target (lib, bin, test, example, bench) of a package.
#[derive(Clone, Debug)]
pub struct Target {
    pub name: String,
    pub kinds: Vec<String>,
    pub src_path: PathBuf,
    pub edition: String,
}

impl Target {
    /// A Rust library (`lib`, `rlib`, `dylib`): what the package's other crates link, and
    /// what other packages reach (not a `cdylib` or `staticlib` alone).
    pub fn is_rust_lib(&self) -> bool {
        self.kinds
            .iter()
            .any(|k| matches!(k.as_str(), "lib" | "rlib" | "dylib"))
    }

    /// Its crate's name (`-` as `_`).
    pub fn crate_name(&self) -> String {
        self.name.replace('-', "_")
    }
}

/// A workspace member.
#[derive(Clone, Debug)]
pub struct Package {
    pub name: String,
    /// Absolute directory of the package.
    pub dir: PathBuf,
    pub manifest: PathBuf,
    pub targets: Vec<Target>,
    pub is_proc_macro: bool,
    /// `lines` under `[package.metadata.lprobe]`, comma-joined.
    pub lines: Option<String>,
    /// `skip-accessors = true` under `[package.metadata.lprobe]` (like `--skip-accessors`).
    pub skip_accessors: bool,
    /// `skip` and `skip-from` under `[package.metadata.lprobe]` (see [`Skips`]).
    pub skips: Skips,
    /// The package names of its normal dependencies, on any platform, optional ones too
    /// (what its build may link; `bridge::may_have_bridges`).
    pub normal_deps: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Workspace {
    pub root: PathBuf,
    pub target_dir: PathBuf,
    pub members: Vec<Package>,
    /// `lines` under `[workspace.metadata.lprobe]`, comma-joined.
    pub lines: Option<String>,
    /// `skip-accessors = true` under `[workspace.metadata.lprobe]`.
    pub skip_accessors: bool,
    /// `skip` and `skip-from` under `[workspace.metadata.lprobe]`.
    pub skips: Skips,
}

impl Workspace {
    /// Whether every artifact this workspace links the runtime into is an executable (the
    /// runtime can then be compiled as executable code, `runtime_cache::for_executables`): no
    /// member builds a `cdylib`, `dylib` or `staticlib` (a shared object, or an archive that
    /// may become one), no member is a proc macro (a shared object that may link the members
    /// it depends on) and the flags do not ask for `prefer-dynamic`.
    pub fn links_executables_only(&self) -> bool {
        executables_only(self.target_kinds(), &rustflags())
    }

    /// How dormant checks read their flags in this build ([`FlagAccess`]): directly unless a
    /// member builds a Rust `dylib` or the flags ask for `prefer-dynamic` (a `dylib`'s statics
    /// cannot be addressed relative to the instruction pointer from another object), or
    /// `LPROBE_FLAG_ACCESS=load` asks for the plain atomic load.
    pub fn flag_access(&self) -> FlagAccess {
        let asked = std::env::var("LPROBE_FLAG_ACCESS").unwrap_or_default();
        flag_access(self.target_kinds(), &rustflags(), &asked)
    }

    /// Every target kind of every member (`lib`, `bin`, `cdylib`, `proc-macro`…).
    fn target_kinds(&self) -> impl Iterator<Item = &String> {
        self.members
            .iter()
            .flat_map(|p| &p.targets)
            .flat_map(|t| &t.kinds)
    }
}

/// `RUSTFLAGS` and `CARGO_ENCODED_RUSTFLAGS` (empty when unset).
fn rustflags() -> [String; 2] {
    let env = |v: &str| std::env::var(v).unwrap_or_default();
    [env("RUSTFLAGS"), env("CARGO_ENCODED_RUSTFLAGS")]
}

/// [`Workspace::links_executables_only`] from the members' target kinds and the rustflags
/// variables.
fn executables_only<'k>(mut kinds: impl Iterator<Item = &'k String>, rustflags: &[String]) -> bool {
    let shared =
        kinds.any(|k| matches!(k.as_str(), "cdylib" | "dylib" | "staticlib" | "proc-macro"));
    !shared && !prefers_dynamic(rustflags)
}

/// Whether the rustflags ask for std and the crates to be linked dynamically.
fn prefers_dynamic(rustflags: &[String]) -> bool {
    rustflags.iter().any(|f| f.contains("prefer-dynamic"))
}

/// [`Workspace::flag_access`] from the members' target kinds, the rustflags variables and
/// `LPROBE_FLAG_ACCESS`.
fn flag_access<'k>(
    mut kinds: impl Iterator<Item = &'k String>,
    rustflags: &[String],
    asked: &str,
) -> FlagAccess {
    let dylib = kinds.any(|k| k == "dylib");
    if dylib || prefers_dynamic(rustflags) || asked == "load" {
        FlagAccess::Load
    } else {
        FlagAccess::Direct
    }
}

/// Skip patterns from a manifest's metadata (parsed by `skip`): `skip = "PATTERN,…"` or
/// `skip = ["PATTERN", …]`, and `skip-from = "FILE"` or a list of files (relative to the
/// manifest's directory).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Skips {
    pub patterns: Vec<String>,
    pub from: Vec<PathBuf>,
}

/// A string or a list of strings under `lprobe.KEY` of a metadata value.
fn metadata_strings(l: &serde_json::Value, key: &str) -> Result<Vec<String>, String> {
    let bad = || format!("'{key}' must be a string or a list of strings");
    match l.get(key) {
        None => Ok(Vec::new()),
        Some(serde_json::Value::String(s)) => Ok(vec![s.clone()]),
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(bad))
            .collect(),
        Some(_) => Err(bad()),
    }
}

/// Reads [`Skips`] from a `metadata` value; `dir` is the manifest's directory.
fn metadata_skips(meta: &serde_json::Value, dir: &Path) -> Result<Skips, String> {
    let Some(l) = meta.get("lprobe") else {
        return Ok(Skips::default());
    };
    Ok(Skips {
        patterns: metadata_strings(l, "skip")?,
        from: metadata_strings(l, "skip-from")?
            .iter()
            .map(|f| dir.join(f))
            .collect(),
    })
}

/// The keys lprobe reads under `[package.metadata.lprobe]` / `[workspace.metadata.lprobe]`.
const METADATA_KEYS: &[&str] = &["lines", "skip-accessors", "skip", "skip-from"];

/// Checks a `metadata` value's `lprobe` table: known keys of the right types only (a
/// misspelt key would otherwise be ignored without a word).
fn check_metadata(meta: &serde_json::Value) -> Result<(), String> {
    let Some(l) = meta.get("lprobe") else {
        return Ok(());
    };
    let Some(table) = l.as_object() else {
        return Err("it must be a table (keys: lines, skip-accessors, skip, skip-from)".into());
    };
    for (k, v) in table {
        match k.as_str() {
            "lines" | "skip" | "skip-from" => {
                metadata_strings(l, k)?;
            }
            "skip-accessors" if !v.is_boolean() => {
                return Err("'skip-accessors' must be true or false".into());
            }
            "skip-accessors" => {}
            other => {
                return Err(format!(
                    "unknown key '{other}' (lprobe reads {})",
                    METADATA_KEYS.join(", ")
                ))
            }
        }
    }
    Ok(())
}

/// Reads `lines` from a `metadata` value: `{"lprobe": {"lines": "…" | ["…", …]}}`.
fn metadata_lines(meta: &serde_json::Value) -> Option<String> {
    match meta.get("lprobe")?.get("lines")? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Array(a) => Some(
            a.iter()
                .filter_map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(","),
        ),
        _ => None,
    }
}

/// Reads `skip-accessors` from a `metadata` value: `{"lprobe": {"skip-accessors": true}}`.
fn metadata_skip_accessors(meta: &serde_json::Value) -> bool {
    meta.get("lprobe")
        .and_then(|l| l.get("skip-accessors"))
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false)
}

/// Reads the workspace containing `manifest_path` (or the current directory).
pub fn load(manifest_path: Option<&Path>) -> Result<Workspace> {
    let mut cmd = cargo_metadata::MetadataCommand::new();
    cmd.no_deps();
    if let Some(p) = manifest_path {
        cmd.manifest_path(p);
    }
    let meta = cmd
        .exec()
        .context("running 'cargo metadata' to find the workspace")?;
    let members = meta
        .workspace_packages()
        .into_iter()
        .map(|p| {
            let manifest = PathBuf::from(p.manifest_path.as_std_path());
            let dir = manifest.parent().map(Path::to_path_buf).unwrap_or_default();
            let targets: Vec<Target> = p
                .targets
                .iter()
                .map(|t| Target {
                    name: t.name.clone(),
                    kinds: t.kind.iter().map(|k| k.to_string()).collect(),
                    src_path: PathBuf::from(t.src_path.as_std_path()),
                    edition: t.edition.as_str().to_owned(),
                })
                .collect();
            let is_proc_macro = targets
                .iter()
                .any(|t| t.kinds.iter().any(|k| k == "proc-macro"));
            let bad = |e: String| {
                anyhow::anyhow!("[package.metadata.lprobe] of {}: {e}", p.manifest_path)
            };
            check_metadata(&p.metadata).map_err(bad)?;
            Ok(Package {
                skips: metadata_skips(&p.metadata, &dir).map_err(bad)?,
                name: p.name.to_string(),
                dir,
                manifest,
                targets,
                is_proc_macro,
                lines: metadata_lines(&p.metadata),
                skip_accessors: metadata_skip_accessors(&p.metadata),
                normal_deps: p
                    .dependencies
                    .iter()
                    .filter(|d| d.kind == cargo_metadata::DependencyKind::Normal)
                    .map(|d| d.name.clone())
                    .collect(),
            })
        })
        .collect::<Result<_>>()?;
    let root = PathBuf::from(meta.workspace_root.as_std_path());
    let bad = |e: String| {
        anyhow::anyhow!(
            "[workspace.metadata.lprobe] of {}: {e}",
            root.join("Cargo.toml").display()
        )
    };
    check_metadata(&meta.workspace_metadata).map_err(bad)?;
    Ok(Workspace {
        skips: metadata_skips(&meta.workspace_metadata, &root).map_err(bad)?,
        root,
        target_dir: PathBuf::from(meta.target_directory.as_std_path()),
        members,
        lines: metadata_lines(&meta.workspace_metadata),
        skip_accessors: metadata_skip_accessors(&meta.workspace_metadata),
    })
}

/// A source file of a target's module tree.
#[derive(Clone, Debug)]
pub struct SourceFile {
    /// Absolute path in the user's workspace.
    pub path: PathBuf,
    /// Module path, e.g. `demo_app::billing`.
    pub module: String,
    /// Whether this is a crate root (lib.rs, main.rs, a test file…).
    pub crate_root: bool,
    /// Reachable from outside its crate: a library root, or a module every `mod` on the way
    /// to one declares `pub` (its `pub` functions may be called from other crates).
    pub exported: bool,
    /// Declared under `#[cfg(test)]` on every way to it: compiled only for tests.
    pub test_only: bool,
    /// The `#[cfg]`s of the `mod` declarations on the way to it (any of the ways).
    pub cfg: Pred,
    /// The targets of its package (indices into `Package::targets`) whose crates include it.
    pub targets: Vec<usize>,
    pub edition: String,
    /// The file's text and its parse, as read while following `mod` declarations (so the
    /// driver does not read and parse every file a second time); `None` if unreadable.
    pub source: Option<(String, Result<syn::File, syn::Error>)>,
}

/// The files of every instrumentable target of `pkg` (not build scripts, not proc-macros),
/// found by following `mod` declarations from each crate root. A file reached from two
/// targets is listed once.
pub fn module_files(pkg: &Package) -> Vec<SourceFile> {
    let mut found: BTreeMap<PathBuf, SourceFile> = BTreeMap::new();
    for (ti, t) in pkg.targets.iter().enumerate() {
        if t.kinds
            .iter()
            .any(|k| k == "custom-build" || k == "proc-macro")
        {
            continue;
        }
        let crate_name = t.crate_name();
        let lib = t.is_rust_lib();
        let mut w = Walk {
            edition: &t.edition,
            target: ti,
            found: &mut found,
        };
        let way = Way {
            exported: lib,
            test: false,
            cfg: Pred::True,
        };
        w.file(&t.src_path, &crate_name, true, way, 0);
    }
    found.into_values().collect()
}

/// What the `mod` declarations on the way to a module say about it.
#[derive(Clone)]
struct Way {
    /// Other crates can reach it.
    exported: bool,
    /// Declared under `#[cfg(test)]`.
    test: bool,
    /// Their `#[cfg]`s.
    cfg: Pred,
}

/// One target's walk of its module tree: the files found so far (of every target).
struct Walk<'a> {
    edition: &'a str,
    /// The target being walked (index into `Package::targets`).
    target: usize,
    found: &'a mut BTreeMap<PathBuf, SourceFile>,
}

impl Walk<'_> {
    /// The file at `path`, module `module`, reached by `way`, and the files its `mod`
    /// declarations name.
    fn file(&mut self, path: &Path, module: &str, root: bool, way: Way, depth: usize) {
        if depth > 64 {
            return;
        }
        if let Some(f) = self.found.get_mut(path) {
            f.exported |= way.exported;
            f.test_only &= way.test;
            f.cfg = std::mem::replace(&mut f.cfg, Pred::True).or(way.cfg);
            if !f.targets.contains(&self.target) {
                f.targets.push(self.target);
            }
            return;
        }
        self.found.insert(
            path.to_path_buf(),
            SourceFile {
                path: path.to_path_buf(),
                module: module.to_owned(),
                crate_root: root,
                exported: way.exported,
                test_only: way.test,
                cfg: way.cfg.clone(),
                targets: vec![self.target],
                edition: self.edition.to_owned(),
                source: None,
            },
        );
        let Ok(text) = std::fs::read_to_string(path) else {
            return;
        };
        let file = match crate::build::parse::file(&text) {
            Ok(file) => file,
            Err(e) => {
                if let Some(f) = self.found.get_mut(path) {
                    f.source = Some((text, Err(e)));
                }
                return;
            }
        };
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        let dir = path.parent().unwrap_or(Path::new("."));
        // Where child modules of this file live: next to a mod-rs file, else in a folder named
        // after the file.
        let child_dir = if root || name == "mod" {
            dir.to_path_buf()
        } else {
            dir.join(name)
        };
        self.items(&file.items, &child_dir, dir, module, &way, depth);
        if let Some(f) = self.found.get_mut(path) {
            f.source = Some((text, Ok(file)));
        }
    }

    /// The modules `items` declare, inline or in files (`#[path]` followed).
    fn items(
        &mut self,
        items: &[syn::Item],
        child_dir: &Path,
        file_dir: &Path,
        module: &str,
        way: &Way,
        depth: usize,
    ) {
        for item in items {
            let syn::Item::Mod(m) = item else {
                continue;
            };
            let name = m.ident.to_string();
            let sub = format!("{module}::{name}");
            let way = Way {
                exported: way.exported && matches!(m.vis, syn::Visibility::Public(_)),
                test: way.test || crate::build::visit::is_cfg_test(&m.attrs),
                cfg: way.cfg.clone().and(Pred::of_attrs(&m.attrs)),
            };
            match &m.content {
                Some((_, inner)) => {
                    let dir = match path_attr(&m.attrs) {
                        Some(p) => file_dir.join(p),
                        None => child_dir.join(&name),
                    };
                    self.items(inner, &dir, &dir, &sub, &way, depth + 1);
                }
                None => {
                    let candidates = match path_attr(&m.attrs) {
                        Some(p) => vec![file_dir.join(p)],
                        None => vec![
                            child_dir.join(format!("{name}.rs")),
                            child_dir.join(&name).join("mod.rs"),
                        ],
                    };
                    if let Some(p) = candidates.into_iter().find(|p| p.is_file()) {
                        self.file(&p, &sub, false, way, depth + 1);
                    }
                }
            }
        }
    }
}

fn path_attr(attrs: &[syn::Attribute]) -> Option<String> {
    attrs.iter().find_map(|a| {
        if !a.path().is_ident("path") {
            return None;
        }
        match &a.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_read_directly_unless_a_dylib_is_linked() {
        let k = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let none = [String::new(), String::new()];
        let lib = k(&["lib", "bin", "cdylib", "proc-macro"]);
        assert_eq!(flag_access(lib.iter(), &none, ""), FlagAccess::Direct);
        assert_eq!(flag_access(lib.iter(), &none, "load"), FlagAccess::Load);
        let dylib = k(&["lib", "dylib"]);
        assert_eq!(flag_access(dylib.iter(), &none, ""), FlagAccess::Load);
        let flags = ["-C prefer-dynamic".to_owned(), String::new()];
        assert_eq!(flag_access(lib.iter(), &flags, ""), FlagAccess::Load);
    }

    #[test]
    fn only_a_workspace_of_executables_gets_a_runtime_compiled_as_executable_code() {
        let kinds = |k: &[&str]| k.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let none = [String::new(), String::new()];
        assert!(executables_only(
            kinds(&["lib", "bin", "test", "example", "custom-build"]).iter(),
            &none
        ));
        for shared in ["cdylib", "dylib", "staticlib", "proc-macro"] {
            assert!(
                !executables_only(kinds(&["lib", shared]).iter(), &none),
                "{shared}"
            );
        }
        let dynamic = ["-C prefer-dynamic".to_owned(), String::new()];
        assert!(!executables_only(kinds(&["bin"]).iter(), &dynamic));
    }

    #[test]
    fn skip_accessors_is_read_from_metadata() {
        let on = serde_json::json!({"lprobe": {"skip-accessors": true, "lines": "all"}});
        assert!(metadata_skip_accessors(&on));
        assert!(!metadata_skip_accessors(
            &serde_json::json!({"lprobe": {"lines": "all"}})
        ));
        assert!(!metadata_skip_accessors(&serde_json::json!(null)));
    }

    #[test]
    fn skips_are_read_from_metadata() {
        let dir = Path::new("/w/app");
        let list = serde_json::json!({"lprobe": {"skip": ["fn:a::*", "src/t.rs"], "skip-from": "hot.skip"}});
        assert_eq!(
            metadata_skips(&list, dir),
            Ok(Skips {
                patterns: vec!["fn:a::*".into(), "src/t.rs".into()],
                from: vec![PathBuf::from("/w/app/hot.skip")],
            })
        );
        let one = serde_json::json!({"lprobe": {"skip": "fn:a::*,fn:b", "skip-from": ["a.skip", "b.skip"]}});
        let one = metadata_skips(&one, dir).expect("valid");
        assert_eq!(one.patterns, ["fn:a::*,fn:b"]);
        assert_eq!(one.from.len(), 2);
        assert_eq!(
            metadata_skips(&serde_json::json!(null), dir),
            Ok(Skips::default())
        );
        let bad = serde_json::json!({"lprobe": {"skip": ["fn:a", 3]}});
        assert_eq!(
            metadata_skips(&bad, dir),
            Err("'skip' must be a string or a list of strings".into())
        );
        let bad = serde_json::json!({"lprobe": {"skip-from": true}});
        assert!(metadata_skips(&bad, dir).is_err());
    }

    #[test]
    fn misspelt_or_mistyped_metadata_is_an_error() {
        let check = |v: serde_json::Value| check_metadata(&serde_json::json!({ "lprobe": v }));
        assert_eq!(
            check(
                serde_json::json!({"lines": "all", "skip-accessors": true, "skip": ["fn:a"], "skip-from": "h.skip"})
            ),
            Ok(())
        );
        assert_eq!(
            check_metadata(&serde_json::json!({"other-tool": 1})),
            Ok(())
        );
        assert_eq!(
            check(serde_json::json!({"skip_from": "h.skip"})),
            Err(
                "unknown key 'skip_from' (lprobe reads lines, skip-accessors, skip, skip-from)"
                    .into()
            )
        );
        assert_eq!(
            check(serde_json::json!({"skip-accessors": "yes"})),
            Err("'skip-accessors' must be true or false".into())
        );
        assert_eq!(
            check(serde_json::json!({"lines": 5})),
            Err("'lines' must be a string or a list of strings".into())
        );
        assert!(check(serde_json::json!("all")).is_err());
    }

    #[test]
    fn follows_mod_declarations_and_path_attributes() {
        let d = tempfile::tempdir().expect("tempdir");
        let src = d.path().join("src");
        std::fs::create_dir_all(src.join("a")).expect("mkdir");
        std::fs::write(
            src.join("lib.rs"),
            "#[cfg(unix)] pub mod a; #[path = \"x.rs\"] mod renamed; pub mod inline { mod deep; }\n\
             #[cfg(test)] mod tests { mod helpers; }",
        )
        .expect("w");
        std::fs::write(src.join("a.rs"), "#[cfg(feature = \"b\")] mod b;").expect("w");
        std::fs::write(src.join("a/b.rs"), "").expect("w");
        std::fs::write(src.join("x.rs"), "").expect("w");
        std::fs::create_dir_all(src.join("inline")).expect("mkdir");
        std::fs::write(src.join("inline/deep.rs"), "").expect("w");
        std::fs::create_dir_all(src.join("tests")).expect("mkdir");
        std::fs::write(src.join("tests/helpers.rs"), "").expect("w");
        // A binary that declares one of the library's files as its own module too.
        std::fs::write(src.join("main.rs"), "#[cfg(windows)] mod x; fn main() {}").expect("w");
        let pkg = Package {
            name: "k".into(),
            dir: d.path().to_path_buf(),
            manifest: d.path().join("Cargo.toml"),
            targets: vec![
                Target {
                    name: "k".into(),
                    kinds: vec!["lib".into()],
                    src_path: src.join("lib.rs"),
                    edition: "2021".into(),
                },
                Target {
                    name: "k".into(),
                    kinds: vec!["bin".into()],
                    src_path: src.join("main.rs"),
                    edition: "2021".into(),
                },
            ],
            is_proc_macro: false,
            lines: None,
            skip_accessors: false,
            skips: Skips::default(),
            normal_deps: Vec::new(),
        };
        let files = module_files(&pkg);
        // The `#[cfg]`s on the way to each file; of two ways, either.
        let cfg_of = |name: &str| {
            let f = files.iter().find(|f| f.path.ends_with(name));
            f.map(|f| f.cfg.clone()).expect("found")
        };
        let atom = |k: &str, v: Option<&str>| Pred::Atom(k.into(), v.map(Into::into));
        assert_eq!(cfg_of("a.rs"), atom("unix", None));
        assert_eq!(
            cfg_of("a/b.rs"),
            Pred::All(vec![atom("unix", None), atom("feature", Some("b"))])
        );
        assert_eq!(cfg_of("x.rs"), Pred::True);
        let mut mods: Vec<String> = files
            .into_iter()
            .map(|f| {
                format!(
                    "{} {}{}{} {:?}",
                    f.path.strip_prefix(&src).expect("under src").display(),
                    f.module,
                    if f.exported { " (exported)" } else { "" },
                    if f.test_only { " (test)" } else { "" },
                    f.targets
                )
            })
            .collect();
        mods.sort();
        assert_eq!(
            mods,
            vec![
                "a.rs k::a (exported) [0]",
                "a/b.rs k::a::b [0]",
                "inline/deep.rs k::inline::deep [0]",
                "lib.rs k (exported) [0]",
                "main.rs k [1]",
                "tests/helpers.rs k::tests::helpers (test) [0]",
                "x.rs k::renamed [0, 1]"
            ]
        );
    }
}
