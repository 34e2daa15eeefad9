//! Compiles the embedded runtime once per machine, not once per target directory.
//!
//! The instrumented build runs cargo with `RUSTC_WRAPPER` pointing at cargo-lprobe itself
//! ([`WRAPPER_ENV`] set). For every crate but the runtime, the wrapper runs the compiler (or
//! the user's own `RUSTC_WRAPPER`, kept in [`INNER_ENV`]) unchanged. For the runtime, it looks
//! its outputs up in a cache keyed by the compiler's version, the runtime's source and the
//! compile arguments with the paths that name one workspace left out; on a hit it links (or
//! copies) the `.rlib` and `.rmeta` and writes the dep-info where cargo expects them (paths
//! inside rewritten) and replays what the compiler printed; on a miss it compiles and stores
//! the outputs.
//!
//! The runtime is the same code for every instrumented crate and costs about 6 s of CPU to
//! compile for release (for size; its hot path, `runtime_src::HOT_LIB`, is a second, small
//! compile, cached the same way): without the cache, that is the fixed cost of every clean
//! build.
//!
//! Cache directory: `$LPROBE_CACHE_DIR`, else `$XDG_CACHE_HOME/lprobe`, else
//! `~/.cache/lprobe`; `LPROBE_CACHE_DIR=off` turns it off. The newest [`KEEP`] entries are
//! kept.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Set (to `1`) in the environment of the instrumented cargo: cargo-lprobe is the wrapper.
pub const WRAPPER_ENV: &str = "LPROBE_RUSTC_WRAPPER";
/// The user's own `RUSTC_WRAPPER`, which the wrapper runs in turn.
pub const INNER_ENV: &str = "LPROBE_INNER_WRAPPER";
/// When set, the wrapper appends what it did to this file ([`note`]; the driver reports the
/// runtime's outcome with `-v`).
pub const LOG_ENV: &str = "LPROBE_WRAPPER_LOG";
/// Set (to `1`) by the driver when every artifact the runtime can be linked into is an
/// executable (see [`for_executables`]).
pub const EXECUTABLES_ENV: &str = "LPROBE_RUNTIME_EXECUTABLES";
/// The crates the cache keeps: the runtime, and its hot path (`runtime_src::HOT_LIB`), which
/// depends on it only.
const CRATES: [&str; 2] = ["probe_runtime", "probe_runtime_hot"];
/// Cache entries kept (two per compiler, runtime version and profile: the runtime and its
/// hot path).
const KEEP: usize = 16;

/// Whether this process was started by cargo as the compiler wrapper.
pub fn is_wrapper_call(args: &[String]) -> bool {
    std::env::var_os(WRAPPER_ENV).is_some() && args.first().is_some_and(|a| a != "lprobe")
}

/// The environment the instrumented cargo gets so that cargo-lprobe wraps the compiler.
/// `remap`: `FROM=TO`, the path remapping the wrapper adds to every compile
/// (`compiler_info::with_remap`). Empty when the wrapper cannot be set up (the caller then
/// passes the remapping as a rustflag).
pub fn wrapper_env(log: &Path, remap: &str) -> Vec<(String, String)> {
    let Ok(me) = std::env::current_exe() else {
        return Vec::new();
    };
    let mut env = vec![
        ("RUSTC_WRAPPER".to_owned(), me.display().to_string()),
        (WRAPPER_ENV.to_owned(), "1".to_owned()),
        (LOG_ENV.to_owned(), log.display().to_string()),
        (
            crate::build::compiler_info::REMAP_ENV.to_owned(),
            remap.to_owned(),
        ),
    ];
    let inner = std::env::var("RUSTC_WRAPPER")
        .or_else(|_| std::env::var("CARGO_BUILD_RUSTC_WRAPPER"))
        .unwrap_or_default();
    if !inner.is_empty() {
        env.push((INNER_ENV.to_owned(), inner));
    }
    env
}

/// The wrapper: `args` is the compiler followed by its arguments.
pub fn main(args: &[String]) -> i32 {
    let Some((rustc, rest)) = args.split_first() else {
        eprintln!("cargo-lprobe: called as a compiler wrapper without a compiler");
        return 101;
    };
    if rest == ["-vV"] {
        note("asked", "version");
        return version(rustc);
    }
    // Cargo's probe of the target (`rustc - --crate-name ___ --print=…`).
    if rest
        .windows(2)
        .any(|w| w[0] == "--crate-name" && w[1] == "___")
    {
        note("asked", "target");
    }
    // A crate of the copy in a round started before the rewrite was done: not before it is.
    if let Err(code) = crate::build::early::wait() {
        return code;
    }
    let rest = crate::build::compiler_info::with_remap(rest);
    let call = Call::parse(&rest);
    let rest = &match call {
        Some(_) if std::env::var_os(EXECUTABLES_ENV).is_some() => for_executables(rest),
        _ => rest,
    };
    let cache = cache_dir();
    match (&call, cache) {
        (Some(call), Some(dir)) => cached(rustc, rest, call, &dir),
        _ => passthrough(rustc, rest),
    }
}

/// The runtime's compile arguments for a build that links it into executables only (no
/// `cdylib`, `dylib`, `staticlib` or proc macro in the workspace): code generated for a
/// position-independent *executable* (`-C relocation-model=pie`), on Linux. A library
/// compiled as position-independent code assumes any of its global functions may be replaced
/// when it ends up in a shared object, so it calls them, and reads its statics' addresses,
/// through the global offset table: a table entry and a dynamic relocation (8 + 24 bytes) per
/// function called and an indirect call each time. In an executable nothing is replaced; the
/// calls are direct. On a program that is nothing but the runtime, 25 KB less (BENCHMARKS.md,
/// thirtieth session). Kept as they are when the user chose a relocation model, or the target
/// is not Linux.
fn for_executables(mut args: Vec<String>) -> Vec<String> {
    let target = args
        .iter()
        .position(|a| a == "--target")
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
        .or_else(|| args.iter().find_map(|a| a.strip_prefix("--target=")));
    let linux = match target {
        Some(t) => t.contains("-linux-"),
        None => cfg!(target_os = "linux"),
    };
    let chosen = args.iter().any(|a| a.contains("relocation-model"));
    if linux && !chosen {
        args.push("-C".to_owned());
        args.push("relocation-model=pie".to_owned());
    }
    args
}

/// `rustc -vV` for cargo, its answer kept for the runtime's cache key
/// (`compiler_info::record_version`).
fn version(rustc: &str) -> i32 {
    let out = match compiler(rustc, &["-vV".to_owned()]).output() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("cargo-lprobe: cannot run {rustc}: {e}");
            return 101;
        }
    };
    let _ = std::io::stdout().write_all(&out.stdout);
    let _ = std::io::stderr().write_all(&out.stderr);
    if out.status.success() {
        crate::build::compiler_info::record_version(rustc, &out.stdout);
    }
    out.status.code().unwrap_or(101)
}

/// Runs the compiler (through the user's wrapper, if any) with inherited output.
fn passthrough(rustc: &str, args: &[String]) -> i32 {
    match compiler(rustc, args).status() {
        Ok(s) => s.code().unwrap_or(101),
        Err(e) => {
            eprintln!("cargo-lprobe: cannot run {rustc}: {e}");
            101
        }
    }
}

/// The compiler command (through the user's own wrapper, if any).
pub(crate) fn compiler(rustc: &str, args: &[String]) -> Command {
    match std::env::var(INNER_ENV).ok().filter(|w| !w.is_empty()) {
        Some(w) => {
            let mut c = Command::new(w);
            c.arg(rustc).args(args);
            c
        }
        None => {
            let mut c = Command::new(rustc);
            c.args(args);
            c
        }
    }
}

/// The machine-wide cache directory, if any (see the module docs).
pub fn cache_dir() -> Option<PathBuf> {
    match std::env::var_os("LPROBE_CACHE_DIR") {
        Some(d) if d == "off" => None,
        Some(d) if !d.is_empty() => Some(PathBuf::from(d)),
        _ => std::env::var_os("XDG_CACHE_HOME")
            .filter(|d| !d.is_empty())
            .map(|d| PathBuf::from(d).join("lprobe"))
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/lprobe"))),
    }
}

/// What the wrapper needs from one compile of the runtime.
#[derive(Debug, PartialEq)]
struct Call {
    /// One of [`CRATES`].
    name: String,
    out_dir: String,
    /// `-C extra-filename` (may be empty).
    extra: String,
    /// The crate's source directory (the root file's directory).
    src_dir: String,
}

impl Call {
    /// The runtime compile's details; `None` for any other invocation.
    fn parse(args: &[String]) -> Option<Call> {
        let mut name = None;
        let (mut out_dir, mut extra, mut src) = (None, String::new(), None);
        let mut it = args.iter().peekable();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--crate-name" => name = it.next().cloned(),
                "--out-dir" => out_dir = it.next().cloned(),
                "-C" => {
                    if let Some(v) = it.next().and_then(|v| v.strip_prefix("extra-filename=")) {
                        extra = v.to_owned();
                    }
                }
                a if a.starts_with("-Cextra-filename=") => {
                    extra = a["-Cextra-filename=".len()..].to_owned();
                }
                a if !a.starts_with('-') && a.ends_with(".rs") => src = Some(a.to_owned()),
                _ => {}
            }
        }
        let name = name.filter(|n| CRATES.contains(&n.as_str()))?;
        let src_dir = Path::new(&src?).parent()?.display().to_string();
        Some(Call {
            name,
            out_dir: out_dir?,
            extra,
            src_dir,
        })
    }

    fn outputs(&self) -> [String; 3] {
        let (n, e) = (&self.name, &self.extra);
        [
            format!("lib{n}{e}.rlib"),
            format!("lib{n}{e}.rmeta"),
            format!("{n}{e}.d"),
        ]
    }
}

/// The arguments with what names one workspace (output directory, file name suffix, crate
/// hash, path remapping, search paths, the source path) left out. A dependency
/// (`--extern NAME=PATH`, the hot path's runtime) is named by its content: a cached runtime
/// is the same bytes in every workspace, and one compiled anew (its entry evicted) is not,
/// so the hot path compiled against the old one is not taken for it.
fn key_args(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--extern" => {
                out.push(a.clone());
                if let Some(v) = it.next() {
                    out.push(extern_by_content(v));
                }
            }
            "--out-dir" | "-L" => {
                it.next();
            }
            "-C" => match it.next() {
                Some(v)
                    if v.starts_with("extra-filename=")
                        || v.starts_with("metadata=")
                        || v.starts_with("incremental=") => {}
                Some(v) => {
                    out.push(a.clone());
                    out.push(v.clone());
                }
                None => out.push(a.clone()),
            },
            a if a.starts_with("--remap-path-prefix")
                || a.starts_with("-Cextra-filename=")
                || a.starts_with("-Cmetadata=")
                || a.starts_with("-Cincremental=")
                || a.starts_with("-Ldependency=") => {}
            a if !a.starts_with('-') && a.ends_with(".rs") => out.push("<src>".into()),
            a => out.push(a.to_owned()),
        }
    }
    out
}

/// `NAME=PATH` as `NAME=<hash of the file>` (`NAME=?` when it cannot be read, which no
/// cached compile matches with a readable one).
fn extern_by_content(v: &str) -> String {
    match v.split_once('=') {
        Some((name, path)) => match std::fs::read(path) {
            Ok(bytes) => format!("{name}={}", crate::build::repair::content_hash(&bytes)),
            Err(_) => format!("{name}=?"),
        },
        None => v.to_owned(),
    }
}

/// The cache key: compiler version, normalized arguments, and every file of the source.
fn key(rustc: &str, args: &[String], call: &Call) -> Option<String> {
    let mut text = crate::build::compiler_info::version_text(rustc)?;
    for a in key_args(args) {
        text.extend_from_slice(a.as_bytes());
        text.push(0);
    }
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(&call.src_dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect();
    files.sort();
    for f in files {
        let rel = f.strip_prefix(&call.src_dir).unwrap_or(&f);
        text.extend_from_slice(rel.display().to_string().as_bytes());
        text.push(0);
        text.extend_from_slice(&std::fs::read(&f).ok()?);
    }
    let manifest = Path::new(&call.src_dir).parent()?.join("Cargo.toml");
    text.extend_from_slice(&std::fs::read(manifest).unwrap_or_default());
    Some(crate::build::repair::content_hash(&text))
}

/// Where one compile's outputs were, to rewrite paths that mention them.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Origin {
    out_dir: String,
    extra: String,
    src_dir: String,
}

fn cached(rustc: &str, args: &[String], call: &Call, dir: &Path) -> i32 {
    let Some(key) = key(rustc, args, call) else {
        return passthrough(rustc, args);
    };
    let entry = dir.join(format!("runtime-{key}"));
    if let Some(code) = replay(&entry, call) {
        note("hit", &call.name);
        return code;
    }
    // Miss: compile, passing on what the compiler says, and keep the outputs.
    let out = compiler(rustc, args)
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            eprintln!("cargo-lprobe: cannot run {rustc}: {e}");
            return 101;
        }
    };
    let _ = std::io::stderr().write_all(&out.stderr);
    let code = out.status.code().unwrap_or(101);
    if code == 0 {
        store(dir, &entry, call, &out.stderr);
        note("miss", &call.name);
    }
    code
}

/// One line of the wrapper's log: `hit NAME` or `miss NAME` for a runtime crate (`driver` sums
/// them up for `-v`), `asked version`/`asked target` for cargo's probes of the compiler
/// (none when cargo's kept answers were taken: `compiler_info`).
fn note(what: &str, krate: &str) {
    if let Some(log) = std::env::var_os(LOG_ENV) {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = writeln!(f, "{what} {krate}");
        }
    }
}

/// Saves a successful compile's outputs (best effort: a failure only means no cache).
fn store(dir: &Path, entry: &Path, call: &Call, stderr: &[u8]) {
    let tmp = dir.join(format!(".tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let saved = (|| -> std::io::Result<()> {
        std::fs::create_dir_all(&tmp)?;
        // What `--emit` asked for (`cargo check` makes no `.rlib`); at least the metadata.
        let mut saved = 0;
        for f in call.outputs() {
            let from = Path::new(&call.out_dir).join(&f);
            if from.exists() {
                std::fs::copy(from, tmp.join(&f))?;
                saved += 1;
            }
        }
        if saved == 0 {
            return Err(std::io::Error::other("no outputs"));
        }
        std::fs::write(tmp.join("stderr"), stderr)?;
        let origin = Origin {
            out_dir: call.out_dir.clone(),
            extra: call.extra.clone(),
            src_dir: call.src_dir.clone(),
        };
        std::fs::write(tmp.join("origin.json"), serde_json::to_vec(&origin)?)?;
        std::fs::rename(&tmp, entry)
    })();
    if saved.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
        return;
    }
    prune(dir);
}

/// Keeps the newest [`KEEP`] entries.
fn prune(dir: &Path) {
    keep_newest(dir, "runtime-", KEEP);
}

/// Removes all but the `keep` most recently modified entries of `dir` (files or directories)
/// whose names start with `prefix` (best effort).
pub(crate) fn keep_newest(dir: &Path, prefix: &str, keep: usize) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<(std::time::SystemTime, PathBuf)> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    entries.sort_by_key(|e| std::cmp::Reverse(e.0));
    for (_, p) in entries.into_iter().skip(keep) {
        let _ = if p.is_dir() {
            std::fs::remove_dir_all(p)
        } else {
            std::fs::remove_file(p)
        };
    }
}

/// Puts a cached compile's outputs in place for `call`; `None` if there is no usable entry.
fn replay(entry: &Path, call: &Call) -> Option<i32> {
    let origin: Origin =
        serde_json::from_slice(&std::fs::read(entry.join("origin.json")).ok()?).ok()?;
    let stderr = std::fs::read_to_string(entry.join("stderr")).ok()?;
    let from = Call {
        name: call.name.clone(),
        out_dir: origin.out_dir,
        extra: origin.extra,
        src_dir: origin.src_dir,
    };
    std::fs::create_dir_all(&call.out_dir).ok()?;
    for (old, new) in from.outputs().iter().zip(call.outputs()) {
        if !entry.join(old).exists() {
            continue;
        }
        let dest = Path::new(&call.out_dir).join(&new);
        if new.ends_with(".d") {
            let text = std::fs::read_to_string(entry.join(old)).ok()?;
            std::fs::write(&dest, rewrite_paths(&text, &from, call)).ok()?;
        } else {
            place(&entry.join(old), &dest)?;
        }
    }
    // Touch the entry: pruning keeps the most recently used.
    let _ = std::fs::File::open(entry).and_then(|f| f.set_modified(std::time::SystemTime::now()));
    let _ = std::io::stderr().write_all(rewrite_paths(&stderr, &from, call).as_bytes());
    Some(0)
}

/// Puts the cached file `from` at `to`: a hard link (the runtime's `.rlib` and `.rmeta` are
/// 4.5 MB, copied on every clean build before anything of the user's could compile), else a
/// copy; then renamed into place, so a concurrent reader never sees half a file. Nothing
/// writes into an output in place (the compiler and this wrapper replace them by a rename),
/// so the cache's file is never changed through the link. Its modification time is made
/// now, as a copy's is: cargo compares the times of a unit's outputs with its inputs'.
fn place(from: &Path, to: &Path) -> Option<()> {
    let tmp = to.with_extension(format!("lprobe-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    if std::fs::hard_link(from, &tmp).is_err() {
        std::fs::copy(from, &tmp).ok()?;
    }
    let _ = std::fs::File::open(&tmp).and_then(|f| f.set_modified(std::time::SystemTime::now()));
    std::fs::rename(&tmp, to).ok()
}

/// Rewrites paths of one compile (`from`) into another's (`to`): output files (directory and
/// suffix) and source directory, in dep-info and in the compiler's JSON messages.
fn rewrite_paths(text: &str, from: &Call, to: &Call) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let mut l = line.to_owned();
        for (a, b) in from.outputs().iter().zip(to.outputs()) {
            l = l.replace(
                &format!("{}/{a}", from.out_dir),
                &format!("{}/{b}", to.out_dir),
            );
        }
        l = l.replace(&format!("{}/", from.src_dir), &format!("{}/", to.src_dir));
        out.push_str(&l);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runtime_for_executables_is_compiled_as_executable_code_on_linux_only() {
        let pie = |a: &str| {
            let out = for_executables(args(a));
            out.ends_with(&["-C".to_owned(), "relocation-model=pie".to_owned()])
        };
        let base = "--crate-name probe_runtime /a/rt/src/lib.rs -C opt-level=z --out-dir /a/deps";
        assert_eq!(pie(base), cfg!(target_os = "linux"));
        assert!(pie(&format!("{base} --target x86_64-unknown-linux-gnu")));
        assert!(pie(&format!("{base} --target=aarch64-unknown-linux-musl")));
        assert!(!pie(&format!("{base} --target x86_64-apple-darwin")));
        assert!(!pie(&format!("{base} --target x86_64-pc-windows-msvc")));
        // The user's choice stands.
        let theirs = for_executables(args(&format!("{base} -C relocation-model=static")));
        assert_eq!(theirs, args(&format!("{base} -C relocation-model=static")));
    }

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn only_the_runtime_compile_is_recognized() {
        let a = args("--crate-name probe_runtime --edition=2021 /w/target/lprobe/runtime/src/lib.rs --crate-type lib -C opt-level=3 -C metadata=abc -C extra-filename=-abc --out-dir /w/target/lprobe/release/deps -L dependency=/w/target/lprobe/release/deps");
        assert_eq!(
            Call::parse(&a),
            Some(Call {
                name: "probe_runtime".into(),
                out_dir: "/w/target/lprobe/release/deps".into(),
                extra: "-abc".into(),
                src_dir: "/w/target/lprobe/runtime/src".into(),
            })
        );
        assert_eq!(
            Call::parse(&args("--crate-name serde src/lib.rs --out-dir /x")),
            None
        );
        assert_eq!(Call::parse(&args("-vV")), None);
    }

    #[test]
    fn the_key_ignores_what_names_one_workspace() {
        let one = args("--crate-name probe_runtime /a/rt/src/lib.rs -C opt-level=3 -C metadata=1 -C extra-filename=-1 --out-dir /a/deps -C incremental=/a/inc -L dependency=/a/deps --remap-path-prefix=/a/copy=/a");
        let two = args("--crate-name probe_runtime /b/rt/src/lib.rs -C opt-level=3 -C metadata=2 -C extra-filename=-2 --out-dir /b/deps -C incremental=/b/inc -L dependency=/b/deps --remap-path-prefix=/b/copy=/b");
        assert_eq!(key_args(&one), key_args(&two));
        let debug =
            args("--crate-name probe_runtime /a/rt/src/lib.rs -C opt-level=1 --out-dir /a/deps");
        assert_ne!(key_args(&one), key_args(&debug));
    }

    #[test]
    fn the_hot_path_is_keyed_by_the_runtime_it_was_compiled_against() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a.rmeta"), dir.path().join("b.rmeta"));
        std::fs::write(&a, b"runtime one").expect("write");
        std::fs::write(&b, b"runtime one").expect("write");
        let hot = |rt: &Path, ws: &str| {
            args(&format!("--crate-name probe_runtime_hot /{ws}/rt/hot/src/lib.rs -C opt-level=3 --out-dir /{ws}/deps --extern probe_runtime={}", rt.display()))
        };
        let call = Call::parse(&hot(&a, "a")).expect("the hot path is cached too");
        assert_eq!(call.outputs()[0], "libprobe_runtime_hot.rlib");
        // The same runtime in two workspaces: one entry.
        assert_eq!(key_args(&hot(&a, "a")), key_args(&hot(&b, "b")));
        // Another runtime (compiled anew): another entry.
        std::fs::write(&b, b"runtime two").expect("write");
        assert_ne!(key_args(&hot(&a, "a")), key_args(&hot(&b, "b")));
    }

    #[test]
    fn a_cached_output_is_linked_with_a_fresh_time_and_never_changed_through_the_link() {
        use std::os::unix::fs::MetadataExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let cached = dir.path().join("cached.rlib");
        std::fs::write(&cached, b"runtime").expect("write");
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        std::fs::File::open(&cached)
            .and_then(|f| f.set_modified(old))
            .expect("age the cached file");
        let out = dir.path().join("deps/librt.rlib");
        std::fs::create_dir_all(out.parent().expect("parent")).expect("mkdir");
        place(&cached, &out).expect("placed");
        let (c, o) = (
            std::fs::metadata(&cached).expect("cached"),
            std::fs::metadata(&out).expect("out"),
        );
        assert_eq!(c.ino(), o.ino(), "linked, not copied");
        assert!(
            o.modified().expect("mtime") > old,
            "a fresh time, as a copy has"
        );
        // A later compile replaces the output by a rename, as rustc does: the cache keeps its bytes.
        let next = dir.path().join("deps/new.rlib");
        std::fs::write(&next, b"other").expect("write");
        std::fs::rename(&next, &out).expect("rename");
        assert_eq!(std::fs::read(&cached).expect("read"), b"runtime");
        // Placed again over an existing output.
        place(&cached, &out).expect("placed again");
        assert_eq!(std::fs::read(&out).expect("read"), b"runtime");
    }

    #[test]
    fn paths_of_one_compile_are_rewritten_into_another() {
        let from = Call {
            name: "probe_runtime".into(),
            out_dir: "/a/deps".into(),
            extra: "-1".into(),
            src_dir: "/a/rt/src".into(),
        };
        let to = Call {
            name: "probe_runtime".into(),
            out_dir: "/b/deps".into(),
            extra: "-2".into(),
            src_dir: "/b/rt/src".into(),
        };
        let dep = "/a/deps/probe_runtime-1.d: /a/rt/src/lib.rs /a/rt/src/probe.rs\n\n/a/deps/libprobe_runtime-1.rlib: /a/rt/src/lib.rs\n";
        assert_eq!(
            rewrite_paths(dep, &from, &to),
            "/b/deps/probe_runtime-2.d: /b/rt/src/lib.rs /b/rt/src/probe.rs\n\n/b/deps/libprobe_runtime-2.rlib: /b/rt/src/lib.rs\n"
        );
        let msg = r#"{"$message_type":"artifact","artifact":"/a/deps/libprobe_runtime-1.rmeta","emit":"metadata"}"#;
        assert_eq!(
            rewrite_paths(msg, &from, &to),
            r#"{"$message_type":"artifact","artifact":"/b/deps/libprobe_runtime-2.rmeta","emit":"metadata"}"#
        );
    }
}
