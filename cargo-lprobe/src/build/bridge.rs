//! The `tracing` and `log` bridges (`LPROBE_OUTPUT=tracing|log`): which of the two each
//! instrumented package's build already contains, the sites crate's dependency on exactly
//! that package, and the generated code that hands lprobe's records to it.
//!
//! The runtime depends on nothing, so it cannot call `tracing` itself. A package that builds
//! `tracing` (directly or through a normal dependency such as `tracing-subscriber`) gets, in
//! its sites crate, a dependency on the very `tracing` its build resolves to (same version
//! and source, no features of its own, so cargo builds no second copy), a function that
//! makes one event of a record, and a constructor that registers it with
//! `probe_runtime::set_bridge` before any site table registers. `log` likewise.
//!
//! What is read: `cargo metadata` of the user's workspace with `--locked` (the lock is never
//! written) and the build's feature flags; a package's dependency graph along normal edges
//! that hold on every platform. Dev- and build-dependencies, platform-specific and
//! not-enabled optional dependencies give no bridge (they may be absent from the build).

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::path::Path;

use cargo_metadata::semver::Version;
use cargo_metadata::{DependencyKind, Metadata, PackageId};

use crate::build::resolve::Resolve;
use crate::build::workspace::{Package, Workspace};

/// The facade crate a bridge feeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Facade {
    Tracing,
    Log,
}

impl Facade {
    const ALL: [Facade; 2] = [Facade::Tracing, Facade::Log];

    /// The crate's package name, and the `LPROBE_OUTPUT` value that selects it.
    pub fn name(self) -> &'static str {
        match self {
            Facade::Tracing => "tracing",
            Facade::Log => "log",
        }
    }

    /// The name the sites crate depends on it by (never the user's: a rename stays theirs).
    fn dep_name(self) -> &'static str {
        match self {
            Facade::Tracing => "lprobe_tracing",
            Facade::Log => "lprobe_log",
        }
    }
}

/// One bridge of a sites crate: the facade package the package's build resolves to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeDep {
    pub facade: Facade,
    pub version: Version,
    /// Where it comes from, as a dependency's keys (`version = "=0.1.41"`, or `git = …, rev =
    /// …`, or `path = …`).
    pub source: String,
    /// `log` with its `kv` feature on: fields as key-values; else in the message as text.
    pub kv: bool,
}

/// The bridges of each instrumented package (in `packages`' order), and warnings about
/// bridges that could not be made.
#[derive(Debug, Default)]
pub struct Bridges {
    pub per_package: Vec<Vec<BridgeDep>>,
    pub warnings: Vec<String>,
}

/// Whether some member's build may contain `tracing` or `log`, read from the workspace's
/// Cargo.lock and the members' manifests alone: only then is the dependency graph resolved
/// for the bridges (`resolve`, 0.06–0.15 s of cargo's). From each member's normal
/// dependencies (any platform, optional ones too), along the lock's edges (which hold every
/// feature's and platform's dependencies of a package, and, for a member, its dev-dependencies
/// too, so a member's own are taken from its manifest instead): a superset of what
/// `find` follows, so `false` means no bridge. A lock that is missing or unreadable says
/// `true` when it names a facade at all.
pub fn may_have_bridges(ws: &Workspace) -> bool {
    let lock = std::fs::read_to_string(ws.root.join("Cargo.lock")).unwrap_or_default();
    let names_a_facade = Facade::ALL.iter().any(|f| {
        let entry = format!("name = \"{}\"", f.name());
        lock.lines().any(|l| l.trim() == entry)
    });
    if !names_a_facade {
        return false;
    }
    match lock_edges(&lock) {
        Some(edges) => facade_reachable(ws, &edges),
        None => true,
    }
}

/// Each package name of a Cargo.lock with the names it depends on (all its versions').
fn lock_edges(lock: &str) -> Option<HashMap<String, Vec<String>>> {
    let doc: toml_edit::DocumentMut = lock.parse().ok()?;
    let mut edges: HashMap<String, Vec<String>> = HashMap::new();
    for pkg in doc.get("package")?.as_array_of_tables()? {
        let name = pkg.get("name")?.as_str()?;
        let deps = edges.entry(name.to_owned()).or_default();
        let Some(list) = pkg.get("dependencies") else {
            continue;
        };
        for dep in list.as_array()? {
            // "name", "name version" or "name version (source)".
            let dep = dep.as_str()?.split(' ').next()?;
            deps.push(dep.to_owned());
        }
    }
    Some(edges)
}

fn facade_reachable(ws: &Workspace, edges: &HashMap<String, Vec<String>>) -> bool {
    let members: HashMap<&str, &Package> =
        ws.members.iter().map(|p| (p.name.as_str(), p)).collect();
    let mut seen: HashSet<&str> = HashSet::new();
    let mut queue: VecDeque<&str> = ws
        .members
        .iter()
        .flat_map(|p| p.normal_deps.iter().map(String::as_str))
        .collect();
    while let Some(name) = queue.pop_front() {
        if !seen.insert(name) {
            continue;
        }
        if Facade::ALL.iter().any(|f| f.name() == name) {
            return true;
        }
        match members.get(name) {
            Some(member) => queue.extend(member.normal_deps.iter().map(String::as_str)),
            None => queue.extend(edges.get(name).into_iter().flatten().map(String::as_str)),
        }
    }
    false
}

/// Finds the bridges of `packages` (members of `ws`) in the user's resolved graph (`resolve`,
/// for the build's feature flags where cargo lprobe runs; `None` when [`may_have_bridges`]
/// says there can be none); `copy` is the workspace's copy, where path dependencies inside
/// the workspace are built from.
pub fn find(
    ws: &Workspace,
    resolve: Option<&mut Resolve>,
    packages: &[&Package],
    copy: &Path,
) -> Bridges {
    let mut out = Bridges {
        per_package: vec![Vec::new(); packages.len()],
        warnings: Vec::new(),
    };
    // Most workspaces build neither: then no dependency graph is resolved for them.
    let Some(resolve) = resolve else {
        return out;
    };
    let meta = match resolve.metadata() {
        Ok(m) => m,
        Err(e) => {
            out.warnings.push(format!(
                "lprobe: warning: no tracing/log bridge (LPROBE_OUTPUT=tracing|log): 'cargo metadata --locked' failed: {e}"
            ));
            return out;
        }
    };
    for (pi, pkg) in packages.iter().enumerate() {
        let Some(id) = meta
            .packages
            .iter()
            .find(|p| p.manifest_path.as_std_path() == pkg.manifest)
            .map(|p| p.id.clone())
        else {
            continue;
        };
        for (facade, dep) in reachable(&meta, &id) {
            match bridge_dep(&meta, facade, &dep, ws, copy) {
                Ok(b) => out.per_package[pi].push(b),
                Err(why) => out.warnings.push(format!(
                    "lprobe: warning: {}: no {} bridge (LPROBE_OUTPUT={}): {why}",
                    pkg.name,
                    facade.name(),
                    facade.name()
                )),
            }
        }
    }
    out
}

/// The feature flags among cargo's arguments (`--features X`, `--features=X`, `-F X`,
/// `--all-features`, `--no-default-features`), as `cargo metadata` takes them.
pub fn feature_args(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--all-features" | "--no-default-features" => out.push(a.clone()),
            "--features" | "-F" => {
                if let Some(v) = it.next() {
                    out.push("--features".into());
                    out.push(v.clone());
                }
            }
            _ if a.starts_with("--features=") => out.push(a.clone()),
            _ if a.starts_with("-F") => {
                out.push("--features".into());
                out.push(a["-F".len()..].to_owned());
            }
            _ => {}
        }
    }
    out
}

/// The facade packages reachable from `root` along normal dependency edges that hold on
/// every platform (the first of each found, nearest first).
fn reachable(meta: &Metadata, root: &PackageId) -> Vec<(Facade, PackageId)> {
    let Some(resolve) = &meta.resolve else {
        return Vec::new();
    };
    let nodes: HashMap<&PackageId, _> = resolve.nodes.iter().map(|n| (&n.id, n)).collect();
    let names: HashMap<&PackageId, &str> = meta
        .packages
        .iter()
        .map(|p| (&p.id, p.name.as_str()))
        .collect();
    let mut found = Vec::new();
    let mut seen: HashSet<&PackageId> = HashSet::from([root]);
    let mut queue = VecDeque::from([root]);
    while let Some(id) = queue.pop_front() {
        let Some(node) = nodes.get(id) else { continue };
        for dep in &node.deps {
            let always_normal = dep
                .dep_kinds
                .iter()
                .any(|k| k.kind == DependencyKind::Normal && k.target.is_none());
            if !always_normal || !seen.insert(&dep.pkg) {
                continue;
            }
            let name = names.get(&dep.pkg).copied().unwrap_or("");
            if let Some(f) = Facade::ALL.iter().find(|f| f.name() == name) {
                if !found.iter().any(|(g, _)| g == f) {
                    found.push((*f, dep.pkg.clone()));
                }
            }
            queue.push_back(&dep.pkg);
        }
    }
    found.sort();
    found
}

/// The sites crate's dependency on the package `id` (a `tracing` or `log`), or why none can
/// be written.
fn bridge_dep(
    meta: &Metadata,
    facade: Facade,
    id: &PackageId,
    ws: &Workspace,
    copy: &Path,
) -> Result<BridgeDep, String> {
    let pkg = meta
        .packages
        .iter()
        .find(|p| &p.id == id)
        .ok_or("the package is missing from cargo metadata")?;
    let version = pkg.version.clone();
    let oldest = match facade {
        // Quoted field names (`"fn" = …`) came with tracing 0.1.19.
        Facade::Tracing => Version::new(0, 1, 19),
        Facade::Log => Version::new(0, 4, 0),
    };
    if version < oldest || version.major != oldest.major || version.minor != oldest.minor {
        return Err(format!(
            "{} {version} is not supported (the bridge needs {}.{}.x from {oldest})",
            facade.name(),
            oldest.major,
            oldest.minor
        ));
    }
    let source = match &pkg.source {
        None => {
            let dir = pkg
                .manifest_path
                .parent()
                .map(|d| d.as_std_path().to_path_buf())
                .unwrap_or_default();
            let dir = match dir.strip_prefix(&ws.root) {
                Ok(rel) => copy.join(rel),
                Err(_) => dir,
            };
            format!("path = {}", toml_str(&dir.display().to_string()))
        }
        Some(s) if s.is_crates_io() => format!("version = \"={version}\""),
        Some(s) => git_source(&s.repr, &version).ok_or_else(|| {
            format!(
                "it comes from {} (only crates.io, git and path sources are supported)",
                s.repr
            )
        })?,
    };
    let kv = facade == Facade::Log
        && meta
            .resolve
            .as_ref()
            .and_then(|r| r.nodes.iter().find(|n| &n.id == id))
            .is_some_and(|n| n.features.iter().any(|f| f.as_str() == "kv"));
    Ok(BridgeDep {
        facade,
        version,
        source,
        kv,
    })
}

/// A git source (`git+URL?branch=B#COMMIT`) as dependency keys naming the same reference (a
/// different one would be another source to cargo, and a second copy); `None` if not git.
fn git_source(repr: &str, version: &Version) -> Option<String> {
    let rest = repr.strip_prefix("git+")?;
    let (url, _commit) = rest.split_once('#').unwrap_or((rest, ""));
    let (url, query) = url.split_once('?').unwrap_or((url, ""));
    let mut s = format!("git = {}, version = \"={version}\"", toml_str(url));
    for (key, value) in query.split('&').filter_map(|kv| kv.split_once('=')) {
        if matches!(key, "branch" | "tag" | "rev") {
            let _ = write!(s, ", {key} = {}", toml_str(value));
        }
    }
    Some(s)
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    toml_edit::Value::from(s).to_string().trim().to_owned()
}

/// The sites crate's `[dependencies]` lines for its bridges.
pub fn manifest_lines(deps: &[BridgeDep]) -> String {
    let mut s = String::new();
    for d in deps {
        let features = if d.kv { ", features = [\"kv\"]" } else { "" };
        let _ = writeln!(
            s,
            "{} = {{ package = \"{}\", {}, default-features = false{features} }}",
            d.facade.dep_name(),
            d.facade.name(),
            d.source
        );
    }
    s
}

/// The sites crate's code for its bridges: one function per bridge and `bridges()`, which
/// registers them (called by a constructor that runs before every table's, and by `init`).
pub fn source(deps: &[BridgeDep]) -> String {
    let mut s = String::from(
        "/// Registers this package's output bridges (`LPROBE_OUTPUT=tracing|log`) with the runtime.\nfn bridges() {\n",
    );
    for d in deps {
        let _ = writeln!(
            s,
            "    ::probe_runtime::set_bridge({:?}, bridge_{});",
            d.facade.name(),
            d.facade.name()
        );
    }
    s.push_str("}\n\n");
    for d in deps {
        s.push_str(&match d.facade {
            Facade::Tracing => tracing_fn(&d.version),
            Facade::Log => log_fn(d.kv),
        });
    }
    if !deps.is_empty() {
        // Before any table registers (and starts the output thread, which picks the output):
        // ELF runs numbered `.init_array` entries first, in order, then the others.
        s.push_str(
            r#"#[used]
#[cfg_attr(any(target_os = "linux", target_os = "android", target_os = "freebsd"), unsafe(link_section = ".init_array.00200"))]
static BRIDGES: extern "C" fn() = bridges_init;

extern "C" fn bridges_init() {
    bridges();
}

"#,
        );
    }
    s
}

/// The `tracing` bridge: one event per record, target `lprobe`, INFO (`error` records WARN),
/// each kind with its own fields (a callsite's field names are static).
fn tracing_fn(version: &Version) -> String {
    // `enabled!` came with tracing 0.1.30; before it, every record counts as delivered.
    let enabled = if *version >= Version::new(0, 1, 30) {
        "::lprobe_tracing::enabled!(target: \"lprobe\", $lvl)"
    } else {
        "true"
    };
    format!(
        r#"/// `LPROBE_OUTPUT=tracing`: a record as an event of the program's subscriber.
fn bridge_tracing(r: &::probe_runtime::BridgeRecord<'_>) -> bool {{
    use ::lprobe_tracing::Level;
    macro_rules! emit {{
        ($lvl:expr, $($fields:tt)*) => {{{{
            let on = {enabled};
            ::lprobe_tracing::event!(target: "lprobe", $lvl, probe = r.probe, site = r.site, "fn" = r.func, kind = r.kind, thread = r.thread, $($fields)*);
            on
        }}}};
    }}
    match r.kind {{
        "log" => emit!(Level::INFO, msg = r.msg),
        "snapshot" => emit!(Level::INFO, vars = r.vars, stack = r.stack),
        "count" => emit!(Level::INFO, count = r.count),
        "duration" => emit!(Level::INFO, duration = r.duration),
        _ => emit!(Level::WARN, msg = r.msg),
    }}
}}

"#
    )
}

/// The `log` bridge: one record per record, target `lprobe`, INFO (`error` records WARN).
/// With `kv`, the message is the record's text (its kind when it has none) and the other
/// fields are key-values; without, the message is every field as `key=value` words.
fn log_fn(kv: bool) -> String {
    let (text, kvs) = if kv {
        (
            "let text = if r.msg.is_empty() { r.kind } else { r.msg };\n    let kvs: ::probe_runtime::__std::vec::Vec<(&str, &str)> = r.pairs().filter(|(k, _)| *k != \"msg\").collect();",
            ".key_values(&kvs.as_slice())",
        )
    } else {
        ("let text = r.text();", "")
    };
    format!(
        r#"/// `LPROBE_OUTPUT=log`: a record as a record of the program's logger.
fn bridge_log(r: &::probe_runtime::BridgeRecord<'_>) -> bool {{
    use ::lprobe_log::{{Level, Metadata, Record}};
    let level = if r.is_error() {{ Level::Warn }} else {{ Level::Info }};
    let logger = ::lprobe_log::logger();
    if level > ::lprobe_log::max_level() || !logger.enabled(&Metadata::builder().target("lprobe").level(level).build()) {{
        return false;
    }}
    {text}
    logger.log(&Record::builder().target("lprobe").level(level).args(format_args!("{{}}", text)){kvs}.build());
    true
}}

"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(facade: Facade, v: &str, kv: bool) -> BridgeDep {
        BridgeDep {
            facade,
            version: Version::parse(v).expect("version"),
            source: format!("version = \"={v}\""),
            kv,
        }
    }

    #[test]
    fn feature_flags_are_passed_to_metadata_and_nothing_else() {
        let args: Vec<String> = [
            "--release",
            "-F",
            "a",
            "--features=b c",
            "-Fd",
            "--no-default-features",
            "-p",
            "x",
            "--all-features",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            feature_args(&args),
            [
                "--features",
                "a",
                "--features=b c",
                "--features",
                "d",
                "--no-default-features",
                "--all-features"
            ]
        );
    }

    #[test]
    fn a_git_source_keeps_its_reference() {
        let v = Version::new(0, 1, 41);
        assert_eq!(
            git_source(
                "git+https://github.com/tokio-rs/tracing?branch=v0.1.x#0123abc",
                &v
            )
            .as_deref(),
            Some(
                r#"git = "https://github.com/tokio-rs/tracing", version = "=0.1.41", branch = "v0.1.x""#
            )
        );
        assert_eq!(
            git_source("git+https://example.com/t#0123abc", &v).as_deref(),
            Some(r#"git = "https://example.com/t", version = "=0.1.41""#)
        );
        assert_eq!(git_source("registry+https://my.registry/index", &v), None);
    }

    #[test]
    fn the_manifest_names_the_resolved_package_under_lprobes_own_name() {
        let lines = manifest_lines(&[
            dep(Facade::Tracing, "0.1.41", false),
            dep(Facade::Log, "0.4.22", true),
        ]);
        assert_eq!(
            lines,
            "lprobe_tracing = { package = \"tracing\", version = \"=0.1.41\", default-features = false }\n\
             lprobe_log = { package = \"log\", version = \"=0.4.22\", default-features = false, features = [\"kv\"] }\n"
        );
        let doc: toml_edit::DocumentMut = format!("[dependencies]\n{lines}").parse().expect("toml");
        assert_eq!(
            doc["dependencies"]["lprobe_log"]["package"].as_str(),
            Some("log")
        );
    }

    #[test]
    fn the_generated_bridges_parse_and_register() {
        for deps in [
            vec![],
            vec![dep(Facade::Tracing, "0.1.41", false)],
            vec![
                dep(Facade::Tracing, "0.1.20", false),
                dep(Facade::Log, "0.4.22", true),
            ],
            vec![dep(Facade::Log, "0.4.14", false)],
        ] {
            let src = source(&deps);
            syn::parse_file(&src).unwrap_or_else(|e| panic!("{e}\n{src}"));
            for d in &deps {
                let call = format!("set_bridge(\"{0}\", bridge_{0})", d.facade.name());
                assert!(src.contains(&call), "{src}");
            }
            assert_eq!(src.contains(".init_array.00200"), !deps.is_empty());
        }
        let old = source(&[dep(Facade::Tracing, "0.1.20", false)]);
        assert!(
            !old.contains("enabled!") && old.contains("let on = true;"),
            "{old}"
        );
        let kv = source(&[dep(Facade::Log, "0.4.22", true)]);
        assert!(
            kv.contains(".key_values(") && !kv.contains("r.text()"),
            "{kv}"
        );
        let plain = source(&[dep(Facade::Log, "0.4.22", false)]);
        assert!(
            !plain.contains(".key_values(") && plain.contains("r.text()"),
            "{plain}"
        );
    }

    /// Writes `files` (path, text) under `dir`.
    fn write_tree(dir: &Path, files: &[(&str, &str)]) {
        for (path, text) in files {
            let p = dir.join(path);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, text).expect("write");
        }
    }

    fn krate(name: &str, version: &str, deps: &str) -> String {
        format!(
            "[package]\nname = \"{name}\"\nversion = \"{version}\"\nedition = \"2021\"\n\n{deps}\n"
        )
    }

    #[test]
    fn bridges_follow_normal_dependencies_only_and_name_the_resolved_package() {
        // Path crates named like the facades stand in for the registry's (no network).
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let members = [
            "direct",
            "renamed",
            "through",
            "dev-only",
            "unix-only",
            "logged",
        ];
        let ws = format!(
            "[workspace]\nresolver = \"2\"\nmembers = [{}]\n",
            members.map(|m| format!("\"{m}\"")).join(", ")
        );
        // (directory, package, version, dependency tables)
        let tracing = "tracing = { path = \"../vendor/tracing\" }";
        let crates = [
            ("vendor/tracing", "tracing", "0.1.40", String::new()),
            ("vendor/log", "log", "0.4.22", "[features]\nkv = []".into()),
            (
                "vendor/subscriber",
                "subscriber",
                "0.3.0",
                "[dependencies]\ntracing = { path = \"../tracing\" }".into(),
            ),
            ("direct", "direct", "0.1.0", format!("[dependencies]\n{tracing}")),
            (
                "renamed",
                "renamed",
                "0.1.0",
                "[dependencies]\ntrc = { package = \"tracing\", path = \"../vendor/tracing\" }".into(),
            ),
            (
                "through",
                "through",
                "0.1.0",
                "[dependencies]\nsubscriber = { path = \"../vendor/subscriber\" }".into(),
            ),
            (
                "dev-only",
                "dev-only",
                "0.1.0",
                format!("[dev-dependencies]\n{tracing}\n[build-dependencies]\nlog = {{ path = \"../vendor/log\" }}"),
            ),
            (
                "unix-only",
                "unix-only",
                "0.1.0",
                format!("[target.'cfg(unix)'.dependencies]\n{tracing}"),
            ),
            (
                "logged",
                "logged",
                "0.1.0",
                "[dependencies]\nlog = { path = \"../vendor/log\", features = [\"kv\"] }".into(),
            ),
        ];
        let mut files = vec![("Cargo.toml".to_owned(), ws)];
        for (dir, name, version, deps) in &crates {
            files.push((format!("{dir}/Cargo.toml"), krate(name, version, deps)));
            files.push((format!("{dir}/src/lib.rs"), String::new()));
        }
        let refs: Vec<(&str, &str)> = files
            .iter()
            .map(|(p, t)| (p.as_str(), t.as_str()))
            .collect();
        write_tree(root, &refs);
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let lock = std::process::Command::new(cargo)
            .args(["generate-lockfile", "--offline"])
            .current_dir(root)
            .output()
            .expect("cargo generate-lockfile");
        assert!(
            lock.status.success(),
            "{}",
            String::from_utf8_lossy(&lock.stderr)
        );
        let lock_before = std::fs::read_to_string(root.join("Cargo.lock")).expect("lock");
        let ws = crate::build::workspace::load(Some(&root.join("Cargo.toml"))).expect("workspace");
        let packages: Vec<&Package> = ws.members.iter().collect();
        let copy = root.join("target/lprobe/src");
        assert!(may_have_bridges(&ws));
        let mut resolve = Resolve::start(None, root, &["--offline".to_owned()]);
        let found = find(&ws, Some(&mut resolve), &packages, &copy);
        assert_eq!(found.warnings, Vec::<String>::new());
        let of = |name: &str| -> Vec<String> {
            let i = packages
                .iter()
                .position(|p| p.name == name)
                .expect("member");
            found.per_package[i]
                .iter()
                .map(|d| format!("{} {} {} kv={}", d.facade.name(), d.version, d.source, d.kv))
                .collect()
        };
        let path = |n: &str| {
            format!(
                "path = {}",
                toml_str(&copy.join("vendor").join(n).display().to_string())
            )
        };
        let tracing_dep = format!("tracing 0.1.40 {} kv=false", path("tracing"));
        for member in ["direct", "renamed", "through"] {
            assert_eq!(of(member), std::slice::from_ref(&tracing_dep), "{member}");
        }
        assert_eq!(of("dev-only"), Vec::<String>::new());
        assert_eq!(of("unix-only"), Vec::<String>::new());
        assert_eq!(
            of("logged"),
            [format!("log 0.4.22 {} kv=true", path("log"))]
        );
        // Whether the graph is resolved at all, from the lock and the manifests: never for a
        // workspace whose members reach neither facade along normal edges; for a
        // platform-specific one it is (the prefilter does not evaluate `cfg`).
        let only = |names: &[&str]| {
            let mut w = ws.clone();
            w.members.retain(|p| names.contains(&p.name.as_str()));
            may_have_bridges(&w)
        };
        assert!(!only(&["dev-only"]));
        assert!(only(&["dev-only", "through"]));
        assert!(only(&["unix-only"]));
        assert!(only(&["logged"]));
        // The user's Cargo.lock is only read.
        let lock_after = std::fs::read_to_string(root.join("Cargo.lock")).expect("lock");
        assert_eq!(lock_before, lock_after);
    }
}
