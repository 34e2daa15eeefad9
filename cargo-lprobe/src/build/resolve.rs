//! The user's resolved dependency graph: one `cargo metadata --locked` run in the background,
//! started as the build starts, that answers both questions which need it: whether the
//! user's Cargo.lock is current (`--locked`/`--frozen`), and which `tracing`/`log` packages
//! the build contains (the output bridges, `bridge::find`).
//!
//! Resolving takes cargo 0.06–0.15 s (more in a fresh target directory, where it probes the
//! compiler first): as two runs, one of them waited for before the rewrite could go on, it
//! was on the critical path of every build of a workspace whose lock names `log` or
//! `tracing`; as one run beside the parse it mostly is not.

use std::path::Path;
use std::process::Output;
use std::thread::JoinHandle;

use cargo_metadata::Metadata;

use crate::build::bridge::feature_args;

/// A `cargo metadata --locked` run: still running, or its answer.
pub struct Resolve {
    /// The thread running cargo, until its answer is taken.
    running: Option<JoinHandle<std::io::Result<Output>>>,
    /// Cargo's output, or why it did not run.
    answer: Option<Result<Output, String>>,
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
        let mut other = vec!["--locked".to_owned()];
        other.extend(feature_args(cargo_args));
        if cargo_args
            .iter()
            .any(|a| a == "--offline" || a == "--frozen")
        {
            other.push("--offline".into());
        }
        cmd.other_options(other);
        let mut cmd = cmd.cargo_command();
        match std::thread::Builder::new()
            .name("lprobe-resolve".into())
            .spawn(move || cmd.output())
        {
            Ok(thread) => Resolve {
                running: Some(thread),
                answer: None,
            },
            Err(e) => Resolve {
                running: None,
                answer: Some(Err(format!("starting a thread: {e}"))),
            },
        }
    }

    /// Cargo's output when it resolved the graph; else its message (its stderr) or why it
    /// did not run. Waits for cargo the first time.
    fn output(&mut self) -> Result<&Output, String> {
        if let Some(thread) = self.running.take() {
            self.answer = Some(match thread.join() {
                Ok(Ok(out)) => Ok(out),
                Ok(Err(e)) => Err(format!("running 'cargo metadata': {e}")),
                Err(_) => Err("its thread panicked".into()),
            });
        }
        match &self.answer {
            Some(Ok(out)) if out.status.success() => Ok(out),
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
