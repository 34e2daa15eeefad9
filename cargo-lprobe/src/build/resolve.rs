//! The user's resolved dependency graph: one `cargo metadata --locked` run in the background,
//! started as the build starts, that answers both questions which need it: whether the
//! user's Cargo.lock is current (`--locked`/`--frozen`), and which `tracing`/`log` packages
//! the build contains (the output bridges, `bridge::find`).
//!
//! Resolving takes cargo 0.06–0.15 s (more in a fresh target directory, where it probes the
//! compiler first): as two runs, one of them waited for before the rewrite could go on, it
//! was on the critical path of every build of a workspace whose lock names `log` or
//! `tracing`; as one run beside the parse it mostly is not, but on two cores it still took
//! a core from cargo's start and the runtime's replays. So a successful answer is kept in the
//! machine-wide cache ([`Resolve::start_or_recall`]) with what it was resolved from: the
//! lock, every path package's manifest (the members and the path dependencies), cargo's
//! configuration files, its executable and environment; a later build whose inputs are all
//! the same takes the kept answer and runs no cargo (cargo resolves a lock it was given, so
//! the same inputs give the same answer). A failure is never kept.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::thread::JoinHandle;

use cargo_metadata::Metadata;

use crate::build::bridge::feature_args;

/// A `cargo metadata --locked` run: still running, or its answer.
pub struct Resolve {
    /// The thread running cargo, until its answer is taken.
    running: Option<JoinHandle<std::io::Result<Output>>>,
    /// Cargo's answer, or why it did not run.
    answer: Option<Result<Answer, String>>,
    /// Where a successful answer is kept, and the inputs besides the files it names.
    keep: Option<(PathBuf, String)>,
}

/// What cargo said: whether it succeeded, its output and its messages.
struct Answer {
    success: bool,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Resolve {
    /// Starts `cargo metadata --format-version 1 --locked` for the build's feature flags, in
    /// `cwd` (where cargo lprobe runs: the flags name its package), of `manifest` if given;
    /// `--offline` when the build is offline. The lock is never written.
    pub fn start(manifest: Option<&Path>, cwd: &Path, cargo_args: &[String]) -> Resolve {
        let mut cmd = cargo_metadata::MetadataCommand::new();
        cmd.current_dir(cwd);
        if let Some(m) = manifest {
            cmd.manifest_path(cwd.join(m));
        }
        cmd.other_options(metadata_args(cargo_args));
        let mut cmd = cmd.cargo_command();
        match std::thread::Builder::new()
            .name("lprobe-resolve".into())
            .spawn(move || cmd.output())
        {
            Ok(thread) => Resolve {
                running: Some(thread),
                answer: None,
                keep: None,
            },
            Err(e) => Resolve {
                running: None,
                answer: Some(Err(format!("starting a thread: {e}"))),
                keep: None,
            },
        }
    }

    /// [`Resolve::start`], unless the answer kept by an earlier build was resolved from the
    /// same inputs (`members`: the workspace's member manifests now, which must all be among
    /// them); then that answer, and no cargo runs. A new successful answer is kept.
    pub fn start_or_recall(
        manifest: Option<&Path>,
        cwd: &Path,
        cargo_args: &[String],
        members: &[PathBuf],
    ) -> Resolve {
        // Only what cargo metadata is given names the answer (`build` and `test`, `-q` or
        // `-v`: the same graph).
        let args = metadata_args(cargo_args);
        let Some(slot) = kept::slot(manifest, cwd, &args) else {
            return Resolve::start(manifest, cwd, cargo_args);
        };
        let fixed = kept::fixed_inputs(cwd, &args);
        if let Some(stdout) = kept::recall(&slot, &fixed, members) {
            return Resolve {
                running: None,
                answer: Some(Ok(Answer {
                    success: true,
                    stdout,
                    stderr: Vec::new(),
                })),
                keep: None,
            };
        }
        let mut r = Resolve::start(manifest, cwd, cargo_args);
        r.keep = Some((slot, fixed));
        r
    }

    /// Cargo's output when it resolved the graph; else its message (its stderr) or why it
    /// did not run. Waits for cargo the first time.
    fn output(&mut self) -> Result<&Answer, String> {
        if let Some(thread) = self.running.take() {
            self.answer = Some(match thread.join() {
                Ok(Ok(out)) => Ok(Answer {
                    success: out.status.success(),
                    stdout: out.stdout,
                    stderr: out.stderr,
                }),
                Ok(Err(e)) => Err(format!("running 'cargo metadata': {e}")),
                Err(_) => Err("its thread panicked".into()),
            });
            if let (Some((slot, fixed)), Some(Ok(out))) = (self.keep.take(), &self.answer) {
                if out.success {
                    kept::keep(&slot, &fixed, &out.stdout);
                }
            }
        }
        match &self.answer {
            Some(Ok(out)) if out.success => Ok(out),
            Some(Ok(out)) => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
            Some(Err(why)) => Err(format!("'cargo metadata --locked' did not run: {why}")),
            None => Err("'cargo metadata --locked' was not started".into()),
        }
    }

    /// `Ok` when cargo resolved the graph with `--locked`; else cargo's message (its
    /// stderr) or why it did not run.
    pub fn succeeded(&mut self) -> Result<(), String> {
        self.output().map(|_| ())
    }

    /// The resolved graph, or the first line of what went wrong.
    pub fn metadata(&mut self) -> Result<Metadata, String> {
        let out = self.output().map_err(|e| first_error_line(&e))?;
        let text = std::str::from_utf8(&out.stdout)
            .map_err(|e| format!("'cargo metadata' printed invalid UTF-8: {e}"))?;
        let json = text
            .lines()
            .find(|l| l.starts_with('{'))
            .ok_or("'cargo metadata' printed no JSON")?;
        cargo_metadata::MetadataCommand::parse(json)
            .map_err(|e| format!("reading 'cargo metadata' output: {e}"))
    }
}

/// What `cargo metadata` is given of the build's arguments: `--locked`, the feature flags and
/// `--offline` (also for `--frozen`).
fn metadata_args(cargo_args: &[String]) -> Vec<String> {
    let mut args = vec!["--locked".to_owned()];
    args.extend(feature_args(cargo_args));
    if cargo_args
        .iter()
        .any(|a| a == "--offline" || a == "--frozen")
    {
        args.push("--offline".into());
    }
    args
}

/// The line of cargo's message that says what failed (`error: …`), else its first line.
fn first_error_line(text: &str) -> String {
    let line = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with("error"))
        .or_else(|| text.lines().next())
        .unwrap_or("");
    line.trim().to_owned()
}

/// The kept answers: one file per workspace, command line and directory
/// (`<cache>/resolved-<hash>`), holding the fingerprint of the inputs, the input files, and
/// cargo's output.
mod kept {
    use std::path::{Path, PathBuf};

    use crate::build::repair::content_hash;

    /// The file for a run of `cargo metadata` with these arguments, or `None` without a cache
    /// directory (`LPROBE_CACHE_DIR=off`).
    pub fn slot(manifest: Option<&Path>, cwd: &Path, cargo_args: &[String]) -> Option<PathBuf> {
        let dir = crate::build::runtime_cache::cache_dir()?;
        let what = format!(
            "{}\0{}\0{}",
            cwd.display(),
            manifest
                .map(|m| m.display().to_string())
                .unwrap_or_default(),
            cargo_args.join("\0")
        );
        Some(dir.join(format!("resolved-{}", content_hash(what.as_bytes()))))
    }

    /// The inputs that are not files of the workspace: cargo's executable, its environment,
    /// its configuration files (from the directory up, and in cargo's home) and the
    /// arguments.
    pub fn fixed_inputs(cwd: &Path, cargo_args: &[String]) -> String {
        let mut s = String::new();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let stat = crate::build::compiler_info::file_stamp(Path::new(&cargo)).unwrap_or_default();
        s.push_str(&format!("cargo {cargo} {stat}\n"));
        let mut env: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| {
                (k.starts_with("CARGO") || k == "RUSTC" || k == "RUSTUP_TOOLCHAIN")
                    && !k.ends_with("TARGET_DIR")
                    && k != "CARGO_MAKEFLAGS"
            })
            .collect();
        env.sort();
        for (k, v) in env {
            s.push_str(&format!("env {k}={v}\n"));
        }
        let home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
        let dirs = cwd.ancestors().map(|d| d.join(".cargo")).chain(home);
        for dir in dirs {
            for name in ["config.toml", "config"] {
                let file = dir.join(name);
                if let Ok(text) = std::fs::read(&file) {
                    s.push_str(&format!(
                        "config {} {}\n",
                        file.display(),
                        content_hash(&text)
                    ));
                }
            }
        }
        s.push_str(&format!("args {}\n", cargo_args.join("\0")));
        s
    }

    /// The fingerprint of `fixed` and the contents of `files` (a missing file counts as
    /// such).
    fn fingerprint(fixed: &str, files: &[PathBuf]) -> String {
        let mut s = fixed.to_owned();
        for f in files {
            match std::fs::read(f) {
                Ok(text) => s.push_str(&format!("{} {}\n", f.display(), content_hash(&text))),
                Err(_) => s.push_str(&format!("{} missing\n", f.display())),
            }
        }
        content_hash(s.as_bytes())
    }

    /// The files an answer was resolved from: the lock and every path package's manifest
    /// (members and path dependencies, from cargo's output itself), and the workspace's own
    /// manifest (a virtual one is no package).
    fn input_files(stdout: &[u8]) -> Option<Vec<PathBuf>> {
        let text = std::str::from_utf8(stdout).ok()?;
        let json = text.lines().find(|l| l.starts_with('{'))?;
        let meta: serde_json::Value = serde_json::from_str(json).ok()?;
        let root = PathBuf::from(meta.get("workspace_root")?.as_str()?);
        let mut files = vec![root.join("Cargo.lock"), root.join("Cargo.toml")];
        for p in meta.get("packages")?.as_array()? {
            if p.get("source").is_some_and(|s| s.is_null()) {
                files.push(PathBuf::from(p.get("manifest_path")?.as_str()?));
            }
        }
        files.sort();
        files.dedup();
        Some(files)
    }

    /// Keeps `stdout` in `slot` (best effort): the fingerprint, the input files (one line,
    /// tab-separated) and the output.
    pub fn keep(slot: &Path, fixed: &str, stdout: &[u8]) {
        let Some(files) = input_files(stdout) else {
            return;
        };
        let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        if names.iter().any(|n| n.contains('\t') || n.contains('\n')) {
            return;
        }
        let mut text =
            format!("{}\n{}\n", fingerprint(fixed, &files), names.join("\t")).into_bytes();
        text.extend_from_slice(stdout);
        let Some(dir) = slot.parent() else {
            return;
        };
        let _ = std::fs::create_dir_all(dir);
        let _ = crate::build::compiler_info::write_whole(slot, &text);
        prune(dir, KEEP);
    }

    /// Answers kept (one per workspace and set of feature flags): the most recently used.
    pub const KEEP: usize = 64;

    /// Removes all but the `keep` most recently used answers in `dir`.
    pub fn prune(dir: &Path, keep: usize) {
        crate::build::runtime_cache::keep_newest(dir, "resolved-", keep);
    }

    /// The output kept in `slot` if it was resolved from what the inputs are now, and every
    /// member manifest of the workspace now was one of them (a member added since names
    /// packages the lock may lack).
    pub fn recall(slot: &Path, fixed: &str, members: &[PathBuf]) -> Option<Vec<u8>> {
        let text = std::fs::read(slot).ok()?;
        let mut parts = text.splitn(3, |b| *b == b'\n');
        let want = std::str::from_utf8(parts.next()?).ok()?;
        let names = std::str::from_utf8(parts.next()?).ok()?;
        let stdout = parts.next()?;
        let files: Vec<PathBuf> = names.split('\t').map(PathBuf::from).collect();
        if !members.iter().all(|m| files.contains(m)) {
            return None;
        }
        if fingerprint(fixed, &files) != want {
            return None;
        }
        // Used: pruning keeps the most recently used.
        let _ = std::fs::File::options()
            .append(true)
            .open(slot)
            .and_then(|f| f.set_modified(std::time::SystemTime::now()));
        Some(stdout.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_told_by_its_error_line() {
        let cargo = "    Updating crates.io index\nerror: the lock file /w/Cargo.lock needs to be updated but --locked was passed to prevent this\nIf you want to try to generate the lock file without accessing the network, remove the --locked flag and use --offline instead.\n";
        assert_eq!(
            first_error_line(cargo),
            "error: the lock file /w/Cargo.lock needs to be updated but --locked was passed to prevent this"
        );
        assert_eq!(first_error_line("warning: x\nnote: y"), "warning: x");
        assert_eq!(first_error_line(""), "");
    }

    #[test]
    fn an_answer_is_recalled_only_while_everything_it_was_resolved_from_is_the_same() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("ws");
        std::fs::create_dir_all(root.join("src")).expect("mkdir");
        let manifest = "[package]\nname = \"solo\"\nversion = \"0.1.0\"\nedition = \"2021\"\n";
        std::fs::write(root.join("Cargo.toml"), manifest).expect("manifest");
        std::fs::write(root.join("src/lib.rs"), "").expect("lib");
        std::fs::write(
            root.join("Cargo.lock"),
            "version = 4\n\n[[package]]\nname = \"solo\"\nversion = \"0.1.0\"\n",
        )
        .expect("lock");
        let mut r = Resolve::start(None, &root, &["--offline".to_owned()]);
        let stdout = r.output().expect("resolved").stdout.clone();
        let slot = dir.path().join("cache/resolved-x");
        let fixed = kept::fixed_inputs(&root, &["--offline".to_owned()]);
        let members = [root.join("Cargo.toml")];
        assert_eq!(
            kept::recall(&slot, &fixed, &members),
            None,
            "nothing kept yet"
        );
        kept::keep(&slot, &fixed, &stdout);
        assert_eq!(kept::recall(&slot, &fixed, &members), Some(stdout.clone()));
        // Another command line, cargo or configuration: not this answer.
        assert_eq!(kept::recall(&slot, &format!("{fixed}x"), &members), None);
        // A manifest or the lock edited: resolved again; as it was: the same answer.
        std::fs::write(
            root.join("Cargo.toml"),
            format!("{manifest}[features]\nx = []\n"),
        )
        .expect("edit");
        assert_eq!(kept::recall(&slot, &fixed, &members), None);
        std::fs::write(root.join("Cargo.toml"), manifest).expect("restore");
        assert_eq!(kept::recall(&slot, &fixed, &members), Some(stdout.clone()));
        std::fs::write(root.join("Cargo.lock"), "version = 4\n").expect("lock");
        assert_eq!(kept::recall(&slot, &fixed, &members), None);
        // A member the answer does not know (a new directory matched by a members glob).
        let more = [root.join("Cargo.toml"), root.join("new/Cargo.toml")];
        assert_eq!(kept::recall(&slot, &fixed, &more), None);
        // A damaged file is no answer.
        std::fs::write(&slot, "garbage").expect("damage");
        assert_eq!(kept::recall(&slot, &fixed, &members), None);
        // Past the most kept, the least recently used answers go.
        let cache = dir.path().join("many");
        std::fs::create_dir_all(&cache).expect("mkdir");
        for k in 0..kept::KEEP + 3 {
            let slot = cache.join(format!("resolved-{k:03}"));
            std::fs::write(&slot, "x").expect("write");
            let at = std::time::SystemTime::UNIX_EPOCH
                + std::time::Duration::from_secs(1_000 + k as u64);
            std::fs::File::options()
                .append(true)
                .open(&slot)
                .and_then(|f| f.set_modified(at))
                .expect("mtime");
        }
        std::fs::write(cache.join("other"), "x").expect("write");
        kept::prune(&cache, kept::KEEP);
        let left = std::fs::read_dir(&cache).expect("list").count();
        assert_eq!(left, kept::KEEP + 1, "the newest kept, and files of others");
        assert!(!cache.join("resolved-000").exists() && cache.join("resolved-003").exists());
    }

    #[test]
    fn only_what_cargo_metadata_is_given_names_an_answer() {
        let args = |a: &[&str]| metadata_args(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            args(&["-q", "--release", "--features", "x", "--frozen"]),
            args(&["--verbose", "--features", "x", "--offline", "--lib"])
        );
        assert_eq!(args(&[]), ["--locked"]);
        assert_ne!(args(&["--features", "x"]), args(&["--features", "y"]));
        assert_ne!(args(&["--offline"]), args(&[]));
    }

    #[test]
    fn a_configuration_file_up_the_tree_is_an_input() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ws = dir.path().join("a/ws");
        std::fs::create_dir_all(&ws).expect("mkdir");
        let before = kept::fixed_inputs(&ws, &[]);
        std::fs::create_dir_all(dir.path().join("a/.cargo")).expect("mkdir");
        std::fs::write(
            dir.path().join("a/.cargo/config.toml"),
            "[patch.crates-io]\n",
        )
        .expect("config");
        assert_ne!(kept::fixed_inputs(&ws, &[]), before);
        assert_ne!(
            kept::fixed_inputs(&ws, &["--features".into(), "x".into()]),
            kept::fixed_inputs(&ws, &[])
        );
    }

    #[test]
    fn a_workspace_is_resolved_once_for_both_questions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("src")).expect("mkdir");
        std::fs::write(
            root.join("Cargo.toml"),
            "[package]\nname = \"solo\"\nversion = \"0.1.0\"\nedition = \"2021\"\n[features]\nextra = []\n",
        )
        .expect("manifest");
        std::fs::write(root.join("src/lib.rs"), "").expect("lib");
        let offline = |more: &[&str]| -> Vec<String> {
            std::iter::once("--offline")
                .chain(more.iter().copied())
                .map(str::to_owned)
                .collect()
        };
        // No lock yet: `--locked` forbids writing one, and cargo says so.
        let mut stale = Resolve::start(None, root, &offline(&[]));
        let why = stale.succeeded().expect_err("no lock");
        assert!(why.contains("--locked"), "{why}");
        assert!(stale.metadata().expect_err("no lock").starts_with("error"));
        assert!(
            !root.join("Cargo.lock").exists(),
            "the lock is never written"
        );

        std::fs::write(
            root.join("Cargo.lock"),
            "version = 4\n\n[[package]]\nname = \"solo\"\nversion = \"0.1.0\"\n",
        )
        .expect("lock");
        let mut r = Resolve::start(None, root, &offline(&["--features", "extra"]));
        assert_eq!(r.succeeded(), Ok(()));
        let meta = r.metadata().expect("resolved");
        let node = &meta.resolve.as_ref().expect("resolve").nodes[0];
        assert_eq!(
            node.features
                .iter()
                .map(|f| f.to_string())
                .collect::<Vec<_>>(),
            ["extra"],
            "the build's feature flags"
        );
        // Asked again: the same answer, cargo not run twice.
        assert!(r.metadata().is_ok());
        // A feature the package does not have: cargo's error line.
        let mut bad = Resolve::start(None, root, &offline(&["--features", "no-such-feature"]));
        let why = bad.metadata().expect_err("no such feature");
        assert!(
            why.starts_with("error") && why.contains("no-such-feature"),
            "{why}"
        );
    }
}
