//! `lprobe completions SHELL` and `lprobe man DIR`: shell completions (clap_complete) and man
//! pages (clap_mangen), generated from the same clap definitions that parse the command line,
//! so they cannot drift from it.
//!
//! `cargo lprobe` is parsed by hand (its unknown options are cargo's, see
//! `build::cli_spec`): it gets a man page from its clap description, but no completion script.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::{Cli, Ctx};

pub const COMPLETIONS_ABOUT: &str = "\
Print a completion script for SHELL on stdout. Install it where your shell looks:

  bash:  lprobe completions bash > ~/.local/share/bash-completion/completions/lprobe
  zsh:   lprobe completions zsh > ~/.zfunc/_lprobe    (with fpath+=(~/.zfunc) before compinit)
  fish:  lprobe completions fish > ~/.config/fish/completions/lprobe.fish

`cargo lprobe` has none: its options pass through to cargo, which does not complete \
subcommands' options.";

pub const MAN_ABOUT: &str = "\
Write the man pages lprobe.1, lprobe-COMMAND.1 for each command and cargo-lprobe.1 into DIR \
(created if missing), then list them. For a user install:

  lprobe man ~/.local/share/man/man1 && man lprobe-arm";

/// `lprobe completions`.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: Shell,
}

/// `lprobe man`.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct ManArgs {
    /// Where to write the pages
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// Writes the completion script for `shell` to `out`.
pub fn cmd_completions(a: &CompletionsArgs, out: &mut dyn Write) -> Result<()> {
    let mut cmd = Cli::command();
    clap_complete::generate(a.shell, &mut cmd, "lprobe", out);
    out.flush().context("writing the completion script")
}

/// Writes the man pages into `a.dir` and prints their paths.
pub fn cmd_man(a: &ManArgs, ctx: &mut Ctx<'_>) -> Result<i32> {
    for page in write_man_pages(&a.dir)? {
        ctx.line(&page.display().to_string())?;
    }
    Ok(0)
}

/// Writes `lprobe.1`, `lprobe-COMMAND.1` and `cargo-lprobe.1` into `dir`; returns their paths,
/// sorted.
pub fn write_man_pages(dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let lprobe = Cli::command().name("lprobe");
    clap_mangen::generate_to(lprobe, dir)
        .with_context(|| format!("writing man pages into {}", dir.display()))?;
    let cargo = crate::build::cli_spec::command();
    clap_mangen::generate_to(cargo, dir)
        .with_context(|| format!("writing man pages into {}", dir.display()))?;
    let mut pages: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "1"))
        .collect();
    pages.sort();
    Ok(pages)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(shell: Shell) -> String {
        let mut out = Vec::new();
        cmd_completions(&CompletionsArgs { shell }, &mut out).expect("generates");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn completion_scripts_know_every_command_and_global_flag() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let s = script(shell);
            // (fish spells flags without their dashes.)
            for word in [
                "arm",
                "tictoc",
                "snapshot",
                "exporter",
                "completions",
                "pid",
                "color",
            ] {
                assert!(s.contains(word), "{shell}: no {word} in\n{s}");
            }
        }
        assert!(script(Shell::Bash).contains("complete -F _lprobe"));
        assert!(script(Shell::Zsh).starts_with("#compdef lprobe"));
    }

    #[test]
    fn man_pages_cover_every_command_and_cargo_lprobe() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pages = write_man_pages(dir.path()).expect("writes");
        let names: Vec<String> = pages
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        for sub in Cli::command().get_subcommands() {
            let page = format!("lprobe-{}.1", sub.get_name());
            assert!(names.contains(&page), "no {page} in {names:?}");
        }
        for page in ["lprobe.1", "cargo-lprobe.1", "cargo-lprobe-build.1"] {
            assert!(names.contains(&page.to_string()), "no {page} in {names:?}");
        }
        let arm = std::fs::read_to_string(dir.path().join("lprobe-arm.1")).unwrap();
        assert!(arm.starts_with(".ie \\n(.g .ds Aq"), "not roff:\n{arm}");
        assert!(arm.contains("\\-\\-log"), "{arm}");
        let top = std::fs::read_to_string(dir.path().join("lprobe.1")).unwrap();
        assert!(top.contains("Exit codes"), "{top}");
    }
}
