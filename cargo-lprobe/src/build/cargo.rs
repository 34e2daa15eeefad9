//! The `cargo lprobe SUBCOMMAND` command line: lprobe's own options are taken out, everything
//! else is cargo's and passes through.

use std::path::PathBuf;

use anyhow::{bail, Result};

/// The cargo subcommands lprobe wraps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sub {
    Build,
    Check,
    Run,
    Test,
    Bench,
}

impl Sub {
    pub fn name(self) -> &'static str {
        match self {
            Sub::Build => "build",
            Sub::Check => "check",
            Sub::Run => "run",
            Sub::Test => "test",
            Sub::Bench => "bench",
        }
    }
}

/// How lprobe should print its build report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Report {
    Human,
    Json,
}

/// A parsed `cargo lprobe` invocation.
#[derive(Clone, Debug)]
pub struct Invocation {
    pub sub: Sub,
    /// `--lines` as given.
    pub lines: Option<String>,
    /// `--skip-accessors`: no sites in trivial accessors (`visit::is_trivial_accessor`).
    pub skip_accessors: bool,
    /// `--entry all`: sites in tiny functions too (`visit::is_tiny`); `--entry sized` (the
    /// default) leaves them out.
    pub entry_all: bool,
    /// `--skip` lists as given (comma-separated patterns, see `skip`).
    pub skip: Vec<String>,
    /// `--skip-from` files as given.
    pub skip_from: Vec<PathBuf>,
    /// `--repairs FILE`: repair outcomes read from FILE and written back to it after a
    /// successful build (a file to commit, so a fresh machine runs no repair round).
    pub repairs: Option<PathBuf>,
    pub report: Report,
    pub verbose: bool,
    /// Cargo's arguments before `--`, minus those lprobe handles itself.
    pub cargo_args: Vec<String>,
    /// Arguments after `--` (for the program or the test harness).
    pub trailing: Vec<String>,
    pub manifest_path: Option<PathBuf>,
    /// The profile whose directory the artifacts land in.
    pub profile: String,
    /// `--message-format` as given by the user, if any.
    pub message_format: Option<String>,
    /// `--locked` or `--frozen`: the user's Cargo.lock must already be complete. (The copy's
    /// lock gains the runtime and sites crates, so the flag itself is not passed on.)
    pub locked: bool,
    /// `--target-dir` as given: the copy and its artifacts go to `<dir>/lprobe`. (lprobe
    /// passes its own `--target-dir` to cargo, which refuses the flag twice.)
    pub target_dir: Option<PathBuf>,
}

pub const USAGE: &str = "usage: cargo lprobe <build|check|run|test|bench> [--lines all|none|FILE:LINE[-LINE],…] [--entry sized|all] [--skip-accessors] [--skip fn:PATH|FILE,…] [--skip-from FILE] [--repairs FILE] [--report json] [-v] [cargo options…] [-- args…]";

/// Parses the arguments after `cargo lprobe` (cargo passes `lprobe` itself first).
pub fn parse(args: &[String]) -> Result<Invocation> {
    let mut it = args.iter().peekable();
    if it.peek().map(|s| s.as_str()) == Some("lprobe") {
        it.next();
    }
    let sub = match it.next().map(String::as_str) {
        Some("build" | "b") => Sub::Build,
        Some("check" | "c") => Sub::Check,
        Some("run" | "r") => Sub::Run,
        Some("test" | "t") => Sub::Test,
        Some("bench") => Sub::Bench,
        Some("-h" | "--help" | "help") | None => bail!("{USAGE}"),
        Some(other) => bail!("unknown subcommand '{other}'\n{USAGE}"),
    };
    let mut inv = Invocation {
        sub,
        lines: None,
        skip_accessors: false,
        entry_all: false,
        skip: Vec::new(),
        skip_from: Vec::new(),
        repairs: None,
        report: Report::Human,
        verbose: false,
        cargo_args: Vec::new(),
        trailing: Vec::new(),
        manifest_path: None,
        profile: match sub {
            Sub::Bench => "release".into(),
            _ => "debug".into(),
        },
        message_format: None,
        locked: false,
        target_dir: None,
    };
    let mut explicit_profile = None;
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
            _ => (a.as_str(), None),
        };
        let mut value = |name: &str| -> Result<String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => match it.next() {
                    Some(v) => Ok(v.clone()),
                    None => bail!("{name} needs a value"),
                },
            }
        };
        match flag {
            "--" => {
                inv.trailing = it.by_ref().cloned().collect();
                break;
            }
            "--lines" => inv.lines = Some(value("--lines")?),
            "--skip-accessors" => inv.skip_accessors = true,
            "--entry" => {
                inv.entry_all = match value("--entry")?.as_str() {
                    "all" => true,
                    "sized" => false,
                    other => bail!("unknown --entry '{other}': write --entry all (a site at every function's entry, tiny ones included) or --entry sized (the default: none in functions of at most 64 tokens without a loop)"),
                }
            }
            "--skip" => inv.skip.push(value("--skip")?),
            "--skip-from" => inv.skip_from.push(PathBuf::from(value("--skip-from")?)),
            "--repairs" => inv.repairs = Some(PathBuf::from(value("--repairs")?)),
            "--report" => {
                inv.report = match value("--report")?.as_str() {
                    "json" => Report::Json,
                    "human" => Report::Human,
                    other => bail!("unknown --report format '{other}' (expected json or human)"),
                }
            }
            "-v" | "--verbose" => {
                inv.verbose = true;
                inv.cargo_args.push(a.clone());
            }
            "--manifest-path" => {
                inv.manifest_path = Some(PathBuf::from(value("--manifest-path")?));
            }
            "--message-format" => inv.message_format = Some(value("--message-format")?),
            "--target-dir" => inv.target_dir = Some(PathBuf::from(value("--target-dir")?)),
            "--locked" => inv.locked = true,
            "--frozen" => {
                inv.locked = true;
                inv.cargo_args.push("--offline".into());
            }
            "--release" | "-r" => {
                explicit_profile.get_or_insert_with(|| "release".to_owned());
                inv.cargo_args.push(a.clone());
            }
            "--profile" => {
                let p = value("--profile")?;
                explicit_profile = Some(p.clone());
                inv.cargo_args.push("--profile".into());
                inv.cargo_args.push(p);
            }
            _ => inv.cargo_args.push(a.clone()),
        }
    }
    if let Some(p) = explicit_profile {
        inv.profile = match p.as_str() {
            "dev" | "test" => "debug".into(),
            "bench" => "release".into(),
            other => other.into(),
        };
    }
    Ok(inv)
}

impl Invocation {
    /// Whether the user asked `test`/`bench` to only build (`--no-run`).
    pub fn no_run(&self) -> bool {
        self.cargo_args.iter().any(|a| a == "--no-run")
    }

    /// The cargo profile name (`dev`, `release`, …) the build uses.
    pub fn profile_name(&self) -> &str {
        match self.profile.as_str() {
            "debug" => "dev",
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Invocation {
        let args: Vec<String> = s.split_whitespace().map(String::from).collect();
        parse(&args).expect("parses")
    }

    #[test]
    fn takes_out_lprobe_options_and_keeps_cargo_ones() {
        let inv = p("lprobe build --release --lines all -p app --features x --message-format=json");
        assert_eq!(inv.sub, Sub::Build);
        assert_eq!(inv.lines.as_deref(), Some("all"));
        assert!(!inv.skip_accessors);
        assert!(p("lprobe build --skip-accessors").skip_accessors);
        assert!(!inv.entry_all);
        assert!(p("lprobe build --entry all").entry_all);
        assert!(p("lprobe build --entry=all").entry_all);
        assert!(!p("lprobe build --entry sized").entry_all);
        let bad = parse(&["build".into(), "--entry".into(), "some".into()]);
        assert!(bad.is_err_and(|e| e.to_string().contains("--entry all")));
        let sk =
            p("lprobe build --skip fn:a::*,src/t.rs --skip=fn:b --skip-from hot.skip --release");
        assert_eq!(sk.skip, ["fn:a::*,src/t.rs", "fn:b"]);
        assert_eq!(sk.skip_from, [PathBuf::from("hot.skip")]);
        assert_eq!(sk.cargo_args, ["--release"]);
        assert_eq!(
            inv.cargo_args,
            vec!["--release", "-p", "app", "--features", "x"]
        );
        assert_eq!(inv.profile, "release");
        assert_eq!(inv.message_format.as_deref(), Some("json"));
    }

    #[test]
    fn splits_trailing_arguments_and_custom_profiles() {
        let inv = p("test --locked --profile bench2 --lines=src/a.rs:3 -- --nocapture x");
        assert!(inv.locked);
        assert_eq!(inv.target_dir, None);
        let td = p("build --target-dir out/t --release");
        assert_eq!(td.target_dir, Some(PathBuf::from("out/t")));
        assert_eq!(td.cargo_args, ["--release"]);
        assert_eq!(
            p("build --target-dir=t").target_dir,
            Some(PathBuf::from("t"))
        );
        assert_eq!(inv.trailing, vec!["--nocapture", "x"]);
        assert_eq!(inv.profile, "bench2");
        assert_eq!(inv.lines.as_deref(), Some("src/a.rs:3"));
        assert!(parse(&["frob".to_owned()]).is_err());
    }
}
