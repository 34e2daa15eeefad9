//! A clap description of `cargo lprobe`'s own options, for `cargo lprobe --help` and its man
//! page (`lprobe man DIR`).
//!
//! The command line itself is parsed by hand (`cargo.rs`): every option lprobe does not know
//! passes through to cargo unchanged, and clap cannot say "and anything else" without listing
//! all of cargo's options. So this is documentation only; a test checks that `cargo::parse`
//! takes each option listed here as lprobe's own. For the same reason there is no completion
//! script for `cargo lprobe` (cargo's own completion does not call into subcommands').

use clap::{Arg, ArgAction, Command};

/// The subcommands, as in `cargo.rs`, with their one-line help.
pub const SUBCOMMANDS: &[(&str, &str)] = &[
    (
        "build",
        "Build the workspace with probe sites (artifacts in target/lprobe/PROFILE/)",
    ),
    ("check", "Check the instrumented copy (cargo check)"),
    (
        "run",
        "Build instrumented, then run the program (arguments after --)",
    ),
    (
        "test",
        "Build instrumented, then run the tests (harness arguments after --)",
    ),
    ("bench", "Build instrumented, then run the benchmarks"),
];

const AFTER_HELP: &str = "\
Every other option is cargo's and passes through (--release, --profile, -p, --workspace,
--features, --target, --bin, -j, --offline, --manifest-path, --message-format, --color…).
Arguments after -- go to the program (run) or the test harness (test, bench).

Status lines go to stderr, cargo-style; on a terminal each build round shows one progress line
instead of cargo's \"Compiling …\" lines (-v shows them all). --color auto|always|never (and
CARGO_TERM_COLOR, NO_COLOR) decide colours, as for cargo.

Exit codes: 0 success, 1 lprobe failed, 2 usage error, 101 the build failed (as cargo).";

/// lprobe's own options, shared by every subcommand.
fn own_args() -> Vec<Arg> {
    vec![
        Arg::new("lines")
            .long("lines")
            .value_name("all|none|FILE:LINE[-LINE],…")
            .help("Sites before statements: every one (all), none (the default: function entries only), or these lines"),
        Arg::new("entry")
            .long("entry")
            .value_name("sized|all")
            .help("sized (the default): no entry sites in tiny functions; all: in every function"),
        Arg::new("skip-accessors")
            .long("skip-accessors")
            .action(ArgAction::SetTrue)
            .help("No sites in trivial accessors (one field read or write)"),
        Arg::new("skip")
            .long("skip")
            .value_name("fn:PATH|FILE,…")
            .action(ArgAction::Append)
            .help("No sites in these functions or files (repeatable)"),
        Arg::new("skip-from")
            .long("skip-from")
            .value_name("FILE")
            .action(ArgAction::Append)
            .help("Skip patterns from FILE, one per line (lprobe hot's output)"),
        Arg::new("repairs")
            .long("repairs")
            .value_name("FILE")
            .help("Read and write the repair loop's outcomes in FILE (commit it: CI then runs no repair round)"),
        Arg::new("report")
            .long("report")
            .value_name("json|human")
            .help("json: per-crate coverage on stdout (also target/lprobe/report.json)"),
        Arg::new("verbose")
            .short('v')
            .long("verbose")
            .action(ArgAction::SetTrue)
            .help("Details: cargo's own lines, repairs made, skipped functions, phase times"),
        Arg::new("cargo")
            .value_name("CARGO OPTIONS")
            .num_args(0..)
            .trailing_var_arg(true)
            .allow_hyphen_values(true)
            .help("Passed to cargo unchanged"),
    ]
}

/// `cargo lprobe` as clap sees it (for help and man pages, not for parsing).
pub fn command() -> Command {
    Command::new("cargo-lprobe")
        .bin_name("cargo lprobe")
        .version(env!("CARGO_PKG_VERSION"))
        .about("Build a Rust workspace with dormant probe sites that lprobe arms in the running program")
        .long_about(
            "Copies the workspace to target/lprobe/src/ (never touching your files), rewrites \
             the copy with dormant probe sites at function entries (and, if asked, before \
             statements) and builds it into target/lprobe/. Line numbers are preserved; a \
             capture that does not compile is dropped by a repair loop, so an instrumented \
             crate compiles whenever the original does. Arm the sites with `lprobe`.",
        )
        .after_help(AFTER_HELP)
        .subcommand_required(true)
        .subcommands(
            SUBCOMMANDS
                .iter()
                .map(|(name, about)| Command::new(*name).about(*about).args(own_args())),
        )
}

/// Whether `args` (after `cargo lprobe`) ask for help rather than a build: `--help`, `-h`,
/// `help` or nothing, or `SUB --help` before any `--`.
pub fn wants_help(args: &[String]) -> Option<Option<&str>> {
    let args = match args.first().map(String::as_str) {
        Some("lprobe") => &args[1..],
        _ => args,
    };
    match args.first().map(String::as_str) {
        None | Some("-h" | "--help" | "help") => return Some(None),
        Some(_) => {}
    }
    let sub = SUBCOMMANDS
        .iter()
        .map(|(n, _)| *n)
        .find(|n| Some(*n) == args.first().map(String::as_str))?;
    args[1..]
        .iter()
        .take_while(|a| *a != "--")
        .any(|a| a == "--help" || a == "-h")
        .then_some(Some(sub))
}

/// The help text for `wants_help`'s answer.
pub fn help(sub: Option<&str>) -> String {
    let mut cmd = command();
    match sub.and_then(|s| cmd.find_subcommand_mut(s)) {
        Some(s) => s
            .clone()
            .bin_name(format!("cargo lprobe {}", s.get_name()))
            .render_long_help()
            .ansi()
            .to_string(),
        None => cmd.render_long_help().ansi().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::cargo;

    #[test]
    fn the_description_is_valid() {
        command().debug_assert();
    }

    /// Every option described here is one `cargo::parse` takes as lprobe's own (so the help
    /// and man page do not promise what the parser would pass on to cargo).
    #[test]
    fn every_described_option_is_parsed_as_lprobes_own() {
        let sample = |name: &str| -> Option<&str> {
            match name {
                "lines" => Some("all"),
                "entry" => Some("all"),
                "skip" => Some("fn:a::b"),
                "skip-from" | "repairs" => Some("f.txt"),
                "report" => Some("json"),
                "skip-accessors" | "verbose" => None,
                other => panic!("no sample value for --{other}: add one here"),
            }
        };
        for (sub, _) in SUBCOMMANDS {
            for arg in own_args() {
                let Some(long) = arg.get_long() else { continue };
                let mut args = vec![sub.to_string(), format!("--{long}")];
                args.extend(sample(arg.get_id().as_str()).map(String::from));
                let inv = cargo::parse(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
                // -v is lprobe's and also cargo's (it is passed on, deliberately).
                if long != "verbose" {
                    assert!(inv.cargo_args.is_empty(), "{args:?} went to cargo");
                } else {
                    assert!(inv.verbose);
                }
            }
        }
    }

    #[test]
    fn help_is_recognised_before_the_double_dash_only() {
        let a = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        assert_eq!(wants_help(&a("lprobe")), Some(None));
        assert_eq!(wants_help(&a("lprobe --help")), Some(None));
        assert_eq!(wants_help(&a("build -h")), Some(Some("build")));
        assert_eq!(wants_help(&a("test -- --help")), None);
        assert_eq!(wants_help(&a("build --release")), None);
        assert!(help(Some("build")).contains("--skip-from"));
        assert!(help(None).contains("Exit codes"));
    }
}
