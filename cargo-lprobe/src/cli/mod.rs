//! The `lprobe` command line: finds instrumented processes and arms, lists, disarms and watches
//! their probes through [`crate::cli::client`].
//!
//! [`main`] is what `src/bin/lprobe.rs` calls; [`run_with`] is the same with the process list,
//! output streams and cancel flag injected (tests use it with fake servers).

pub mod client;
pub mod completions;
pub mod exit_code;
pub mod exporter;
pub mod format;
pub mod hot;
pub mod skew;
pub mod trust;
pub mod ui;

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::{self, IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use serde_json::{json, Value};

use client::{Discovery, Hello, Next, Reach, Searched};
use format::RecordStyle;

const AFTER_HELP: &str = "\
Examples:
  lprobe ps                                   instrumented processes of this user
  lprobe list process                         sites whose location or function matches 'process'
  lprobe arm src/main.rs:42 --log 'order {order} total={total}'
  lprobe tail                                 stream every record (Ctrl-C to stop)
  lprobe snapshot src/main.rs:42 --if 'total > 1000'
  lprobe arm 'fn:demo_app::billing::total' --duration   call durations: p50/p90/p99/max
  lprobe tictoc src/main.rs:42 src/main.rs:47  time between two lines
  lprobe status                               armed probes and their counters
  lprobe hot --for 30s > lprobe.skip          the most-called functions, as a skip list
  lprobe exporter                             Prometheus metrics at http://127.0.0.1:9464/metrics
  lprobe disarm p1                            (or a location, or --all)

Finding processes:
  Programs built with 'cargo lprobe build' serve a Unix socket named <pid>.sock in
  $XDG_RUNTIME_DIR/lprobe/ or /tmp/lprobe-<uid>/; $LPROBE_SOCKET names one socket to use
  instead. Commands talk to the only running instrumented process unless given --pid PID
  or --all.

Shell completions and man pages:
  lprobe completions bash > ~/.local/share/bash-completion/completions/lprobe
  lprobe man ~/.local/share/man/man1          lprobe.1, lprobe-arm.1…, cargo-lprobe.1
";

/// Talk to programs instrumented by `cargo lprobe build`: list their probe sites, arm and disarm
/// probes while they run, and stream what the probes record.
#[derive(Parser, Debug)]
#[command(
    name = "lprobe",
    version,
    arg_required_else_help = true,
    after_help = const_format_after_help()
)]
pub struct Cli {
    /// Process selection and output options shared by all commands.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

const GLOBAL: &str = "Global options";

/// Options accepted by every command.
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct Global {
    /// Talk to the instrumented process with this pid (default: the only one running)
    #[arg(long, global = true, value_name = "PID", help_heading = GLOBAL)]
    pub pid: Option<u32>,
    /// Talk to every running instrumented process (with `disarm` and no PROBE: disarm every
    /// probe)
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub all: bool,
    /// Print JSON instead of tables and text
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub json: bool,
    /// Colours in tables, records and messages: auto (a terminal, unless NO_COLOR is set),
    /// always or never
    #[arg(long, global = true, value_name = "WHEN", default_value = "auto", help_heading = GLOBAL)]
    pub color: clap::ColorChoice,
}

/// `--help`'s epilogue: the examples, then the exit codes.
fn const_format_after_help() -> String {
    format!("{AFTER_HELP}\n{}", exit_code::HELP)
}

/// The subcommands.
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// List running instrumented processes (and remove sockets left by dead ones)
    #[command(
        long_about = "List running instrumented processes: PID, PROGRAM, number of probe \
        SITES and of ARMED probes. Sockets left behind by processes that are gone are removed.\n\n\
        With --json: an array of the processes' `hello` answers."
    )]
    Ps,
    /// List the probe sites of a process
    #[command(
        long_about = "List the probe sites compiled into a process: LOCATION (path:line), \
        KIND (entry of a function, or a line), FN and the variables a probe there CAPTURES.\n\n\
        With --json: the array of site objects."
    )]
    List(ListArgs),
    /// Arm a probe at a site, in the running process or in a control file
    Arm(ArmArgs),
    /// Time how long a thread takes from one location to another
    Tictoc(TictocArgs),
    /// Disarm probes by id, by location, or all of them
    Disarm(DisarmArgs),
    /// Show armed probes, their counters and control-file errors
    #[command(
        long_about = "Show the probes armed in a process: ID, LOCATION, ACTIONS, STATE \
        (armed, exhausted, expired, over-budget, disarmed), HITS, records EMITTED and DROPPED, \
        the last LIMIT the probe ran into (rate, budget, queue, max-hits, stack, time) and TTL \
        left; a --duration or --tictoc probe has its timings on a second line (n, min, p50, \
        p90, p99, max). Then the total of dropped records (with the count per reason: rate, budget, queue, write, stack, busy), panics of lprobe's own threads (if \
        any), and errors from the control file.\n\n\
        With --json: an array with one status object per process."
    )]
    Status,
    /// Stream the records of all probes until the process exits (Ctrl-C to stop)
    #[command(
        long_about = "Stream every record the process's probes produce, one per line, \
        until the process exits or Ctrl-C:\n\n  \
        01:37:18.123 p1 src/main.rs:42 demo_app::process  log  order 3 total=1234\n\n\
        Snapshots continue on the following lines with their variables and stack.\n\n\
        With --json: the records exactly as the process sends them (one JSON object per line)."
    )]
    Tail,
    /// Wait for one hit at a location and print the variables and stack there
    Snapshot(SnapshotArgs),
    /// Count function calls for a while and print the most-called functions as a skip list
    #[command(long_about = HOT_ABOUT)]
    Hot(HotArgs),
    /// Serve the probes' counts and durations as Prometheus metrics (or write a textfile)
    #[command(long_about = exporter::LONG_ABOUT)]
    Exporter(exporter::ExporterArgs),
    /// Serve a local web page to arm probes from the source and watch their records
    #[command(long_about = ui::LONG_ABOUT)]
    Ui(ui::UiArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) on stdout
    #[command(long_about = completions::COMPLETIONS_ABOUT)]
    Completions(completions::CompletionsArgs),
    /// Write man pages for lprobe, its commands and cargo-lprobe into a directory
    #[command(long_about = completions::MAN_ABOUT)]
    Man(completions::ManArgs),
}

/// `lprobe hot --help` (on the subcommand: its doc comment would replace one on the struct).
const HOT_ABOUT: &str =
    "Count the calls of every function (or of those matching PATTERN) for --for, \
        then print the most-called ones as a skip list: one fn:PATH per line, followed after a \
        '#' by its calls, their share, the rate and where the function is.\n\n\
        A dormant probe site costs a check per call. In a function called millions of times a \
        second (a parser's peek, a one-line accessor) that check, and the inlining it can \
        prevent, may cost more than the function itself. Save the list and rebuild with \
        'cargo lprobe build --skip-from FILE' (or skip-from = \"FILE\" under \
        [package.metadata.lprobe]) to build those functions without sites; edit the file to \
        keep the ones you want to probe.\n\n\
        Counting costs one atomic add per call while the window is open; the counting probe is \
        armed for the window only (it expires by itself a minute after it, should lprobe be \
        killed), and its final counts also go to the process's output as count records. \
        Ctrl-C ends the window early and prints what was counted.\n\n\
        For processes the CLI cannot reach (a fleet armed through a control file), --records \
        FILE reads the count records they wrote instead (every other line is skipped) and sums \
        their deltas per function: what each report added, so restarts and processes sharing a \
        pid add up. Arm a function-entry counter for that, e.g. 'fn:* --count --every 1m --ttl \
        10m' in the control file, and give it only those records (a count probe on lines would \
        add its lines' passes to the function; two probes counting the same sites are \
        reported).\n\n\
        With --json: {source, pid, program, pattern, seconds, calls, called, sites, functions: \
        [{fn, calls, share, per_second, path, line}]} (pid, program, seconds, sites and \
        per_second are null for --records).";

/// `lprobe hot`.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
#[command(after_help = "Examples:\n  lprobe hot --for 30s > lprobe.skip\n  \
        cargo lprobe build --release --skip-from lprobe.skip\n  \
        lprobe hot 'regex_syntax::hir::*' --top 5 --for 1m\n  \
        lprobe hot --records /var/log/app/lprobe.jsonl > lprobe.skip")]
pub struct HotArgs {
    /// Count only the functions matching this pattern, as for 'lprobe arm fn:PATTERN' (* is
    /// every function)
    #[arg(value_name = "PATTERN", default_value = "*")]
    pub pattern: String,
    /// How long to count, e.g. 10s, 1m (a bare number is seconds)
    #[arg(long = "for", id = "for", value_name = "DURATION", default_value = "10s", value_parser = timeout_arg)]
    pub window: String,
    /// Print at most N functions (default 20, or as many as --share needs)
    #[arg(long, value_name = "N", value_parser = positive_arg)]
    pub top: Option<u64>,
    /// Print the most-called functions until together they make this share of all calls,
    /// e.g. 90 or 90%
    #[arg(long, value_name = "PERCENT", value_parser = percent_arg)]
    pub share: Option<String>,
    /// Read the `count` records of a `fn:` count probe from FILE (JSON lines, as written to
    /// LPROBE_OUTPUT; - for standard input) instead of counting in a running process
    #[arg(long, value_name = "FILE", conflicts_with = "for")]
    pub records: Option<PathBuf>,
}

/// `lprobe list`.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct ListArgs {
    /// Only sites matching this (passed to the process, which matches it against locations
    /// and function names)
    #[arg(value_name = "FILTER")]
    pub filter: Option<String>,
}

/// `lprobe arm`.
#[derive(Args, Debug, Clone, PartialEq, Eq, Default)]
#[command(
    long_about = "Arm a probe at LOCATION in the running process. The action flags are sent to \
        the process in the order given; it checks them and answers with the probe's id. With \
        none of --log, --count, --duration or --tictoc the probe takes a snapshot (of the first \
        hit only, unless --max-hits says otherwise). --duration and --tictoc probes aggregate \
        their timings and report them every --every. Defaults: --every 10s, --ttl 1h.\n\n\
        With --control FILE nothing is sent: the probe is appended as one line to FILE, a control \
        file that instrumented programs watch.",
    after_help = "Examples:\n  \
        lprobe arm src/main.rs:42 --log 'order {order} total={total}'\n  \
        lprobe arm src/billing.rs:10 --count --every 10s --ttl 1h\n  \
        lprobe arm src/main.rs:42 --snapshot --if 'total > 1000' --max-hits 3\n  \
        lprobe arm src/main.rs:42 --snapshot --frames 4\n  \
        lprobe arm 'fn:demo_app::billing::total' --duration --every 30s\n  \
        lprobe arm src/main.rs:42 --snapshot --max-string 200 --max-items 20 --max-depth 4\n  \
        lprobe arm src/main.rs:42 --log '{order}' --control /etc/demo/lprobe.control\n  \
        lprobe arm fn:demo_app::process_order --histogram 'order.items.len()' --every 1m\n  \
        lprobe arm --on-panic 'fn:demo_app::*' --last 16"
)]
pub struct ArmArgs {
    /// Where to arm: FILE:LINE (e.g. src/main.rs:42; any unambiguous path suffix works) or
    /// fn:PATTERN for function entries (e.g. 'fn:demo_app::billing::*'); with --on-panic,
    /// every function when left out
    #[arg(value_name = "LOCATION", required_unless_present = "on_panic")]
    pub location: Option<String>,
    /// Log a message on each hit; `{name}` is replaced by the captured variable `name`
    #[arg(long, value_name = "TEMPLATE", allow_hyphen_values = true)]
    pub log: Option<String>,
    /// Record all captured variables and the stack on each hit
    #[arg(long)]
    pub snapshot: bool,
    /// With a snapshot: also the arguments of the N innermost instrumented callers on the
    /// stack, each with its function and line (at most 32; while armed, every instrumented
    /// call records its arguments)
    #[arg(long, value_name = "N", value_parser = positive_arg)]
    pub frames: Option<u64>,
    /// With --frames: each caller also shows the locals captured at the statement it is at
    /// (needs line sites: `cargo lprobe build --lines …`; while armed, every line of the
    /// instrumented functions records its values)
    #[arg(long, requires = "frames")]
    pub frame_locals: bool,
    /// Count hits (reported every --every interval and when disarmed)
    #[arg(long)]
    pub count: bool,
    /// Time each call of the function from entry to return, on every return path and when
    /// unwinding; reports count/min/p50/p90/p99/max every --every (entry sites only; not with
    /// --log, --snapshot or --count)
    #[arg(long)]
    pub duration: bool,
    /// Time from passing LOCATION to passing this second location on the same thread; reports
    /// count/min/p50/p90/p99/max every --every (see also `lprobe tictoc`)
    #[arg(long, value_name = "LOCATION_B")]
    pub tictoc: Option<String>,
    /// Summarise a numeric path's value at each hit (e.g. 'order.items.len()'): count, min,
    /// p50, p90, p99, max, reported every --every (quantiles within ~3%)
    #[arg(long, value_name = "EXPR", allow_hyphen_values = true)]
    pub histogram: Option<String>,
    /// Track a numeric path's value at each hit: last, min, max, reported every --every
    #[arg(long, value_name = "EXPR", allow_hyphen_values = true)]
    pub gauge: Option<String>,
    /// Keep each thread's last sites' values and, when a thread panics, write one `panic`
    /// record: message, file:line, stack, whether it is caught, the last sites with their
    /// values (not with other actions)
    #[arg(long)]
    pub on_panic: bool,
    /// With --on-panic: how many of the thread's last sites a panic record shows (default 8,
    /// at most 64)
    #[arg(long, value_name = "N", value_parser = positive_arg, requires = "on_panic")]
    pub last: Option<u64>,
    /// Report aggregated counts and timings at this interval, e.g. 10s, 500ms, 1m (default 10s)
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    pub every: Option<String>,
    /// Fire only when this condition on captured variables holds, e.g. 'total > 1000'
    #[arg(
        long = "if",
        id = "if",
        value_name = "EXPR",
        allow_hyphen_values = true
    )]
    pub if_expr: Option<String>,
    /// Stop (exhaust the probe) after N hits
    #[arg(long, value_name = "N", value_parser = positive_arg)]
    pub max_hits: Option<u64>,
    /// Disarm automatically after this long, e.g. 30m, 1h (default 1h)
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    pub ttl: Option<String>,
    /// Emit at most N records per second, e.g. 100/s (logs and snapshots)
    #[arg(long, value_name = "N/s", value_parser = rate_arg)]
    pub rate: Option<String>,
    /// Capture at most N characters of each string value (longer ones are cut)
    #[arg(long, value_name = "N", value_parser = positive_arg)]
    pub max_string: Option<u64>,
    /// Capture at most N items of each list or map value
    #[arg(long, value_name = "N", value_parser = positive_arg)]
    pub max_items: Option<u64>,
    /// Capture nested values at most N levels deep
    #[arg(long, value_name = "N", value_parser = positive_arg)]
    pub max_depth: Option<u64>,
    /// Append the probe as a line to this control file instead of arming it in a process
    #[arg(long, value_name = "FILE")]
    pub control: Option<PathBuf>,
}

/// `lprobe tictoc`.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
#[command(
    long_about = "Arm a probe that times how long a thread takes from passing LOC_A to passing \
        LOC_B (the same thread; a pass of LOC_B without an earlier LOC_A is ignored). It reports \
        count/min/p50/p90/p99/max every --every. This is `lprobe arm LOC_A --tictoc LOC_B`.\n\n\
        With --control FILE nothing is sent: the probe is appended as one line to FILE.\n\n\
        With --json: {\"pid\",\"probe\",\"site\",\"sites\"} as for `lprobe arm`.",
    after_help = "Examples:\n  lprobe tictoc src/main.rs:42 src/main.rs:47\n  \
        lprobe tictoc src/db.rs:10 src/db.rs:31 --every 1m --if 'rows > 100'"
)]
pub struct TictocArgs {
    /// Where timing starts: FILE:LINE or fn:PATTERN, as for `lprobe arm`
    #[arg(value_name = "LOC_A")]
    pub from: String,
    /// Where timing ends: FILE:LINE or fn:PATTERN
    #[arg(value_name = "LOC_B")]
    pub to: String,
    /// Report the timings at this interval, e.g. 10s, 500ms, 1m (default 10s)
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    pub every: Option<String>,
    /// Start timing only when this condition on the variables captured at LOC_A holds
    #[arg(
        long = "if",
        id = "if",
        value_name = "EXPR",
        allow_hyphen_values = true
    )]
    pub if_expr: Option<String>,
    /// Stop (exhaust the probe) after N hits
    #[arg(long, value_name = "N", value_parser = positive_arg)]
    pub max_hits: Option<u64>,
    /// Disarm automatically after this long, e.g. 30m, 1h (default 1h)
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    pub ttl: Option<String>,
    /// Append the probe as a line to this control file instead of arming it in a process
    #[arg(long, value_name = "FILE")]
    pub control: Option<PathBuf>,
}

/// `lprobe disarm`.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
#[command(
    long_about = "Disarm probes: one by id (p1), every probe at a location (src/main.rs:42), or \
        with --all and no PROBE every probe. Without --pid, `--all` applies to every process.",
    after_help = "Examples:\n  lprobe disarm p1\n  lprobe disarm src/main.rs:42\n  \
        lprobe disarm --all\n  lprobe disarm --all --pid 1234"
)]
pub struct DisarmArgs {
    /// A probe id (see `lprobe status`) or a location
    #[arg(value_name = "PROBE_ID|LOCATION")]
    pub target: Option<String>,
}

/// `lprobe snapshot`.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
#[command(
    long_about = "Arm a one-shot snapshot probe at LOCATION, wait for the first hit, and print \
        the captured variables and the stack. If nothing hits within --timeout, the probe is \
        disarmed again.\n\nWith --json: the snapshot record as the process sent it.",
    after_help = "Examples:\n  lprobe snapshot src/main.rs:42\n  \
        lprobe snapshot src/billing.rs:10 --if 'total > 1000' --timeout 2m\n  \
        lprobe snapshot src/billing.rs:10 --frames 3"
)]
pub struct SnapshotArgs {
    /// Where: FILE:LINE (e.g. src/main.rs:42) or fn:PATTERN, as for `lprobe arm`
    #[arg(value_name = "LOCATION")]
    pub location: String,
    /// How long to wait for a hit, e.g. 30s, 5m (a bare number is seconds)
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = timeout_arg)]
    pub timeout: String,
    /// Only a hit where this condition holds counts, e.g. 'total > 1000'
    #[arg(
        long = "if",
        id = "if",
        value_name = "EXPR",
        allow_hyphen_values = true
    )]
    pub if_expr: Option<String>,
    /// Also the arguments of the N innermost instrumented callers, each with its function and
    /// line (as `lprobe arm --snapshot --frames N`)
    #[arg(long, value_name = "N", value_parser = positive_arg)]
    pub frames: Option<u64>,
    /// With --frames: each caller's locals at the statement it is at (as `lprobe arm
    /// --frame-locals`)
    #[arg(long, requires = "frames")]
    pub frame_locals: bool,
}

// ---------------------------------------------------------------------------------------------
// Argument validation
// ---------------------------------------------------------------------------------------------

/// Parses `10s`, `500ms`, `1.5m`, `2h`, `1d`, `250us`, `100ns`; with `bare_secs`, also `30`.
pub fn parse_duration(s: &str, bare_secs: bool) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (expected e.g. 10s, 500ms, 5m, 1h)"))?;
    let secs = match unit {
        "" if bare_secs => n,
        "" => return Err(format!("duration {s:?} needs a unit, e.g. {s}s or {s}ms")),
        "ns" => n / 1e9,
        "us" | "µs" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86_400.0,
        _ => {
            return Err(format!(
                "invalid duration unit in {s:?} (use ns, us, ms, s, m, h or d)"
            ))
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("duration {s:?} is out of range"))
}

fn duration_arg(s: &str) -> Result<String, String> {
    parse_duration(s, true).map(|_| s.trim().to_string())
}

fn positive_arg(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{s:?} is not a positive number")),
    }
}

fn percent(s: &str) -> Option<f64> {
    s.trim()
        .trim_end_matches('%')
        .parse::<f64>()
        .ok()
        .filter(|p| *p > 0.0 && *p <= 100.0)
}

fn percent_arg(s: &str) -> Result<String, String> {
    match percent(s) {
        Some(_) => Ok(s.trim().to_string()),
        None => Err(format!(
            "{s:?} is not a percentage in (0, 100], e.g. 90 or 90%"
        )),
    }
}

fn timeout_arg(s: &str) -> Result<String, String> {
    match parse_duration(s, true) {
        Ok(d) if d.is_zero() => Err("the timeout must be longer than 0".to_string()),
        Ok(_) => Ok(s.trim().to_string()),
        Err(e) => Err(e),
    }
}

fn rate_arg(s: &str) -> Result<String, String> {
    let t = s.trim();
    let n = t.strip_suffix("/s").unwrap_or(t);
    if n.parse::<u64>().is_ok_and(|n| n > 0) {
        Ok(t.to_string())
    } else {
        Err(format!(
            "invalid rate {s:?} (expected N/s with N > 0, e.g. 100/s)"
        ))
    }
}

/// The arguments of an `arm`/`watch` request: LOCATION, then the action flags in the order
/// they were given on the command line (taken from `matches`, the `arm` subcommand's matches;
/// without it, in declaration order). `--control` is not part of them.
pub fn arm_argv(a: &ArmArgs, matches: Option<&ArgMatches>) -> Vec<String> {
    let mut items: Vec<(usize, Vec<String>)> = Vec::new();
    let mut add = |id: &str, fallback: usize, words: Vec<String>| {
        let idx = matches
            .and_then(|m| m.index_of(id))
            .unwrap_or(usize::MAX / 2 + fallback);
        items.push((idx, words));
    };
    if let Some(t) = &a.log {
        add("log", 0, vec!["--log".into(), t.clone()]);
    }
    if a.snapshot {
        add("snapshot", 1, vec!["--snapshot".into()]);
    }
    if let Some(n) = a.frames {
        add("frames", 1, vec!["--frames".into(), n.to_string()]);
    }
    if a.frame_locals {
        add("frame_locals", 1, vec!["--frame-locals".into()]);
    }
    if a.count {
        add("count", 2, vec!["--count".into()]);
    }
    if a.duration {
        add("duration", 3, vec!["--duration".into()]);
    }
    if let Some(b) = &a.tictoc {
        add("tictoc", 3, vec!["--tictoc".into(), b.clone()]);
    }
    if let Some(e) = &a.histogram {
        add("histogram", 3, vec!["--histogram".into(), e.clone()]);
    }
    if let Some(e) = &a.gauge {
        add("gauge", 3, vec!["--gauge".into(), e.clone()]);
    }
    if a.on_panic {
        add("on_panic", 3, vec!["--on-panic".into()]);
    }
    if let Some(n) = a.last {
        add("last", 3, vec!["--last".into(), n.to_string()]);
    }
    if let Some(d) = &a.every {
        add("every", 4, vec!["--every".into(), d.clone()]);
    }
    if let Some(e) = &a.if_expr {
        add("if", 5, vec!["--if".into(), e.clone()]);
    }
    if let Some(n) = a.max_hits {
        add("max_hits", 6, vec!["--max-hits".into(), n.to_string()]);
    }
    if let Some(d) = &a.ttl {
        add("ttl", 7, vec!["--ttl".into(), d.clone()]);
    }
    if let Some(r) = &a.rate {
        add("rate", 8, vec!["--rate".into(), r.clone()]);
    }
    if let Some(n) = a.max_string {
        add("max_string", 9, vec!["--max-string".into(), n.to_string()]);
    }
    if let Some(n) = a.max_items {
        add("max_items", 10, vec!["--max-items".into(), n.to_string()]);
    }
    if let Some(n) = a.max_depth {
        add("max_depth", 11, vec!["--max-depth".into(), n.to_string()]);
    }
    items.sort_by_key(|(i, _)| *i);
    std::iter::once(a.location.clone().unwrap_or_else(|| "fn:*".into()))
        .chain(items.into_iter().flat_map(|(_, w)| w))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------------

/// Raised by the Ctrl-C handler; streaming commands check it.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Runs `lprobe` with the process's arguments and returns the exit code.
pub fn main() -> i32 {
    run(std::env::args_os())
}

/// Runs `lprobe` with `argv` (program name first) against the real sockets, stdout and stderr;
/// returns the exit code (0 ok, 1 failure).
pub fn run<I, T>(argv: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let (cli, matches) = match parse(argv) {
        Ok(x) => x,
        Err(e) => {
            let _ = e.print();
            return if e.exit_code() == 0 {
                exit_code::SUCCESS
            } else {
                exit_code::USAGE
            };
        }
    };
    if matches!(
        cli.command,
        Command::Tail
            | Command::Snapshot(_)
            | Command::Hot(_)
            | Command::Exporter(_)
            | Command::Ui(_)
    ) {
        // If this fails, Ctrl-C simply kills lprobe, which is acceptable.
        let _ = ctrlc::try_set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst));
    }
    let stdout = io::stdout();
    let stderr = io::stderr();
    let interactive = stderr.is_terminal();
    // Styled text goes through streams that keep or strip the colours (`crate::style`).
    let choice = color_choice(cli.global.color);
    let mut out = anstream::AutoStream::new(stdout.lock(), choice);
    let mut err = anstream::AutoStream::new(stderr.lock(), choice);
    let mut ctx = Ctx {
        discovery: client::discover(),
        out: &mut out,
        err: &mut err,
        cancel: &INTERRUPTED,
        interactive,
    };
    run_with(&cli, &matches, &mut ctx)
}

/// Parses `argv` into the typed [`Cli`] and the raw matches (which keep the order of flags).
pub fn parse<I, T>(argv: I) -> Result<(Cli, ArgMatches), clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
    // clap's own help and errors follow --color too (it is read before parsing).
    let words: Vec<String> = argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut cmd = Cli::command();
    match crate::style::color_arg(&words).as_deref() {
        Some("always") => cmd = cmd.color(clap::ColorChoice::Always),
        Some("never") => cmd = cmd.color(clap::ColorChoice::Never),
        _ => {}
    }
    let matches = cmd.try_get_matches_from(argv)?;
    let cli = Cli::from_arg_matches(&matches)?;
    Ok((cli, matches))
}

/// `--color` as anstream's choice.
pub fn color_choice(c: clap::ColorChoice) -> anstream::ColorChoice {
    match c {
        clap::ColorChoice::Auto => anstream::ColorChoice::Auto,
        clap::ColorChoice::Always => anstream::ColorChoice::Always,
        clap::ColorChoice::Never => anstream::ColorChoice::Never,
    }
}

/// What a command runs against: the candidate sockets, where to print, and when to stop.
pub struct Ctx<'a> {
    /// The sockets to consider (normally [`client::discover`]).
    pub discovery: Discovery,
    /// Standard output.
    pub out: &'a mut dyn Write,
    /// Standard error (messages, warnings, errors).
    pub err: &'a mut dyn Write,
    /// Streaming commands stop when this becomes true (Ctrl-C).
    pub cancel: &'a AtomicBool,
    /// Whether stderr is a terminal (enables hints like "Ctrl-C to stop").
    pub interactive: bool,
}

/// The output went away (e.g. `lprobe tail | head`): stop quietly.
#[derive(Debug)]
struct OutputClosed;

impl std::fmt::Display for OutputClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("output closed")
    }
}

impl std::error::Error for OutputClosed {}

impl Ctx<'_> {
    /// Writes `s` to stdout and flushes.
    fn put(&mut self, s: &str) -> Result<()> {
        self.out
            .write_all(s.as_bytes())
            .and_then(|()| self.out.flush())
            .map_err(|e| {
                if e.kind() == io::ErrorKind::BrokenPipe {
                    anyhow::Error::new(OutputClosed)
                } else {
                    anyhow::Error::new(e).context("cannot write to standard output")
                }
            })
    }

    fn line(&mut self, s: &str) -> Result<()> {
        let mut l = String::with_capacity(s.len() + 1);
        l.push_str(s);
        l.push('\n');
        self.put(&l)
    }

    /// A line on stderr (`error:`/`warning:` styled); failures to write there are ignored.
    fn note(&mut self, s: &str) {
        let _ = writeln!(self.err, "{}", crate::style::message_prefix(s));
        let _ = self.err.flush();
    }
}

/// Runs a parsed command line; returns the exit code. Errors are printed as `error: …`.
pub fn run_with(cli: &Cli, matches: &ArgMatches, ctx: &mut Ctx<'_>) -> i32 {
    let g = &cli.global;
    let result = match &cli.command {
        Command::Ps => cmd_ps(g, ctx),
        Command::List(a) => cmd_list(g, a, ctx),
        Command::Arm(a) => cmd_arm(g, a, matches.subcommand_matches("arm"), ctx),
        Command::Tictoc(a) => cmd_tictoc(g, a, matches.subcommand_matches("tictoc"), ctx),
        Command::Disarm(a) => cmd_disarm(g, a, ctx),
        Command::Status => cmd_status(g, ctx),
        Command::Tail => cmd_tail(g, ctx),
        Command::Snapshot(a) => cmd_snapshot(g, a, ctx),
        Command::Hot(a) => cmd_hot(g, a, ctx),
        Command::Exporter(a) => exporter::cmd_exporter(g, a, ctx),
        Command::Ui(a) => ui::cmd_ui(a, ctx),
        Command::Completions(a) => completions::cmd_completions(a, ctx.out).map(|()| 0),
        Command::Man(a) => completions::cmd_man(a, ctx),
    };
    match result {
        Ok(code) => code,
        Err(e) if e.downcast_ref::<OutputClosed>().is_some() => exit_code::SUCCESS,
        Err(e) => {
            ctx.note(&format!("error: {e:#}"));
            exit_code::of(&e)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Process selection
// ---------------------------------------------------------------------------------------------

/// A process that answered `hello`.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its socket.
    pub socket: PathBuf,
    /// Its `hello` answer.
    pub hello: Hello,
}

fn none_found(searched: &Searched) -> anyhow::Error {
    exit_code::no_process(format!(
        "no instrumented process found (looked in {searched}); start a program built with \
         'cargo lprobe build'"
    ))
}

/// Picks the processes a command talks to: the one with `pid`, every reachable one (`all`), or
/// the only reachable one.
pub fn select(
    d: &Discovery,
    pid: Option<u32>,
    all: bool,
    err: &mut dyn Write,
) -> Result<Vec<Target>> {
    for why in &d.refused {
        let _ = writeln!(err, "warning: {why}");
    }
    if let Some(pid) = pid {
        let mut problem: Option<anyhow::Error> = None;
        for e in d
            .sockets
            .iter()
            .filter(|e| e.pid.is_none() || e.pid == Some(pid))
        {
            match client::reach(e) {
                Reach::Alive { hello, .. } if hello.pid == pid => {
                    return Ok(vec![Target {
                        socket: e.path.clone(),
                        hello,
                    }]);
                }
                Reach::Alive { .. } => {}
                Reach::Stale(why) if e.pid == Some(pid) => {
                    problem = Some(exit_code::no_process(format!(
                        "process {pid} is gone ({why}); 'lprobe ps' removes its stale socket {}",
                        e.path.display()
                    )));
                }
                Reach::Stale(_) => {}
                Reach::Unreachable(x) if e.pid == Some(pid) => {
                    problem = Some(x.context(format!("cannot talk to process {pid}")));
                }
                Reach::Unreachable(_) => {}
            }
        }
        return Err(problem.unwrap_or_else(|| {
            exit_code::no_process(format!(
                "no instrumented process with pid {pid} (looked in {})",
                d.searched
            ))
        }));
    }
    let mut alive: Vec<Target> = Vec::new();
    for e in &d.sockets {
        match client::reach(e) {
            Reach::Alive { hello, .. } => {
                if !alive.iter().any(|t| t.hello.pid == hello.pid) {
                    alive.push(Target {
                        socket: e.path.clone(),
                        hello,
                    });
                }
            }
            Reach::Stale(_) => {}
            Reach::Unreachable(x) => {
                let _ = writeln!(err, "warning: skipping {}: {x:#}", e.path.display());
            }
        }
    }
    if alive.is_empty() {
        return Err(none_found(&d.searched));
    }
    if all || alive.len() == 1 {
        return Ok(alive);
    }
    let mut msg = String::from(
        "several instrumented processes are running; pass --pid PID to pick one or --all for \
         every one:",
    );
    for t in &alive {
        msg.push_str(&format!("\n  {:>7}  {}", t.hello.pid, t.hello.program));
    }
    Err(exit_code::usage(msg))
}

fn select_for(g: &Global, ctx: &mut Ctx<'_>) -> Result<Vec<Target>> {
    if g.pid.is_some() && g.all {
        return Err(exit_code::usage("--pid and --all cannot be used together"));
    }
    select(&ctx.discovery, g.pid, g.all, ctx.err)
}

/// Runs `f` for each target; with several targets, a failure is reported (prefixed with the
/// pid) and the others still run. Returns the successes (fewer than `targets` if some failed).
fn for_each_target<T>(
    targets: &[Target],
    ctx: &mut Ctx<'_>,
    mut f: impl FnMut(&Target, &mut Ctx<'_>) -> Result<T>,
) -> Result<Vec<(Target, T)>> {
    let mut done = Vec::new();
    let mut failed = false;
    for t in targets {
        match f(t, ctx) {
            Ok(v) => done.push((t.clone(), v)),
            Err(e) if targets.len() == 1 => return Err(e),
            Err(e) if e.downcast_ref::<OutputClosed>().is_some() => return Err(e),
            Err(e) => {
                failed = true;
                ctx.note(&format!("error: pid {}: {e:#}", t.hello.pid));
            }
        }
    }
    if failed && done.is_empty() {
        bail!("every process failed");
    }
    // With a partial failure the caller prints what worked and compares lengths for the exit
    // code.
    Ok(done)
}

fn header(t: &Target) -> String {
    format!("pid {}  {}", t.hello.pid, t.hello.program)
}

fn field_str(v: &Value, k: &str) -> String {
    format::cell(v.get(k))
}

// ---------------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------------

fn cmd_ps(g: &Global, ctx: &mut Ctx<'_>) -> Result<i32> {
    let mut rows = Vec::new();
    let mut raws = Vec::new();
    let mut seen: Vec<u32> = Vec::new();
    let sockets = ctx.discovery.sockets.clone();
    for why in ctx.discovery.refused.clone() {
        ctx.note(&format!("warning: {why}"));
    }
    let mut other_ns = false;
    for e in &sockets {
        if let (Some(want), Some(p)) = (g.pid, e.pid) {
            if want != p {
                continue;
            }
        }
        match client::reach(e) {
            Reach::Alive { hello, raw } => {
                if g.pid.is_some_and(|w| w != hello.pid) || seen.contains(&hello.pid) {
                    continue;
                }
                seen.push(hello.pid);
                // Its pid in its own namespace, marked: not a pid to look up here.
                let foreign = hello.other_pid_namespace();
                other_ns |= foreign;
                rows.push(vec![
                    format!("{}{}", hello.pid, if foreign { "*" } else { "" }),
                    hello.program.clone(),
                    hello.sites.to_string(),
                    hello.armed.to_string(),
                ]);
                raws.push(raw);
            }
            Reach::Stale(why) => match client::remove_stale(&e.path) {
                Ok(()) => ctx.note(&format!(
                    "removed stale socket {} ({why})",
                    e.path.display()
                )),
                Err(x) => ctx.note(&format!(
                    "warning: stale socket {} ({why}) could not be removed: {x}",
                    e.path.display()
                )),
            },
            Reach::Unreachable(x) => ctx.note(&format!(
                "warning: cannot talk to {}: {x:#}",
                e.path.display()
            )),
        }
    }
    if g.json {
        ctx.line(&Value::Array(raws).to_string())?;
    } else if rows.is_empty() {
        let msg = match g.pid {
            Some(p) => format!(
                "no instrumented process with pid {p} (looked in {})",
                ctx.discovery.searched
            ),
            None => none_found(&ctx.discovery.searched).to_string(),
        };
        ctx.note(&msg);
    } else {
        ctx.put(&format::table(&["PID", "PROGRAM", "SITES", "ARMED"], &rows))?;
        if other_ns {
            ctx.note("* in another pid namespace (a container): the pid is the one it has there");
        }
    }
    Ok(0)
}

fn cmd_list(g: &Global, a: &ListArgs, ctx: &mut Ctx<'_>) -> Result<i32> {
    let targets = select_for(g, ctx)?;
    let args: Vec<String> = a.filter.iter().cloned().collect();
    let results = for_each_target(&targets, ctx, |t, ctx| {
        let v = client::request(&t.socket, "sites", &args)?;
        let changed = changed_files(t, ctx);
        match v.get("sites") {
            Some(Value::Array(s)) => Ok((s.clone(), changed)),
            _ => bail!("malformed answer to 'sites' (no \"sites\" array)"),
        }
    })?;
    let ok = results.len() == targets.len();
    let multi = targets.len() > 1;
    if g.json {
        let mut all = Vec::new();
        for (t, (sites, changed)) in results {
            for mut s in sites {
                if let Value::Object(m) = &mut s {
                    if multi {
                        m.insert("pid".into(), json!(t.hello.pid));
                    }
                    let path = m.get("path").and_then(Value::as_str).unwrap_or_default();
                    if let Some((disk, f)) = changed.get(path) {
                        let line = m.get("line").and_then(Value::as_u64);
                        let line = line.and_then(|l| u32::try_from(l).ok());
                        let w = skew::warning(*disk, f, t.hello.pid, line);
                        m.insert("warning".into(), json!(w));
                    }
                }
                all.push(s);
            }
        }
        ctx.line(&Value::Array(all).to_string())?;
        return Ok(if ok { 0 } else { 1 });
    }
    for (i, (t, (sites, changed))) in results.iter().enumerate() {
        if multi {
            if i > 0 {
                ctx.line("")?;
            }
            ctx.line(&header(t))?;
        }
        for (path, (disk, f)) in changed {
            if sites
                .iter()
                .any(|s| s.get("path").and_then(Value::as_str) == Some(path))
            {
                ctx.note(&format!(
                    "warning: {}; its sites below are at the lines it was built with \
                     (rebuild with 'cargo lprobe build' to arm by today's lines)",
                    skew::warning(*disk, f, t.hello.pid, None)
                ));
            }
        }
        if sites.is_empty() {
            match &a.filter {
                Some(f) => ctx.note(&format!("no sites match {f:?}")),
                None => ctx.note("this process has no probe sites"),
            }
            continue;
        }
        let rows: Vec<Vec<String>> = sites
            .iter()
            .map(|s| {
                let names = match s.get("names") {
                    Some(Value::Array(n)) if !n.is_empty() => n
                        .iter()
                        .map(|x| format::cell(Some(x)))
                        .collect::<Vec<_>>()
                        .join(", "),
                    _ => "-".to_string(),
                };
                vec![
                    format!("{}:{}", field_str(s, "path"), field_str(s, "line")),
                    field_str(s, "kind"),
                    field_str(s, "fn"),
                    names,
                ]
            })
            .collect();
        ctx.put(&format::table(
            &["LOCATION", "KIND", "FN", "CAPTURES"],
            &rows,
        ))?;
    }
    Ok(if ok { 0 } else { 1 })
}

/// The process's files that differ from those in the workspace around the current directory
/// (see `skew`); a process that cannot say is warned about and compared with nothing.
fn changed_files(
    t: &Target,
    ctx: &mut Ctx<'_>,
) -> std::collections::BTreeMap<String, (skew::Disk, skew::BuiltFile)> {
    let Ok(cwd) = std::env::current_dir() else {
        return Default::default();
    };
    match skew::built_files(&t.socket, None) {
        Ok(Some(files)) => skew::changed(&cwd, &files),
        Ok(None) => Default::default(),
        Err(e) => {
            ctx.note(&format!(
                "warning: cannot compare the sources with pid {}'s: {e:#}",
                t.hello.pid
            ));
            Default::default()
        }
    }
}

/// Appends `line` to the control file `path` (created if missing), on a line of its own.
pub fn append_control_line(path: &Path, line: &str) -> Result<()> {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(path)
        .with_context(|| format!("cannot open control file {}", path.display()))?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut text = String::new();
    if len > 0 {
        let mut last = [0u8; 1];
        f.seek(SeekFrom::End(-1))
            .and_then(|_| f.read_exact(&mut last))
            .with_context(|| format!("cannot read control file {}", path.display()))?;
        if last[0] != b'\n' {
            text.push('\n');
        }
    }
    text.push_str(line);
    text.push('\n');
    f.write_all(text.as_bytes())
        .with_context(|| format!("cannot write control file {}", path.display()))
}

fn cmd_arm(
    g: &Global,
    a: &ArmArgs,
    matches: Option<&ArgMatches>,
    ctx: &mut Ctx<'_>,
) -> Result<i32> {
    let argv = arm_argv(a, matches);
    arm_and_report(g, &argv, a.control.as_deref(), ctx, |probe, sites, pid| {
        let at = if sites.is_empty() {
            a.location.clone().unwrap_or_default()
        } else if a.on_panic && sites.len() > 3 {
            format!("{} sites", sites.len())
        } else {
            sites.join(", ")
        };
        format!("armed {probe} at {at} (pid {pid})")
    })
}

/// The arguments of the `arm` request for `lprobe tictoc`: `LOC_A --tictoc LOC_B`, then the
/// other flags in the order given.
pub fn tictoc_argv(a: &TictocArgs, matches: Option<&ArgMatches>) -> Vec<String> {
    let arm = ArmArgs {
        location: Some(a.from.clone()),
        every: a.every.clone(),
        if_expr: a.if_expr.clone(),
        max_hits: a.max_hits,
        ttl: a.ttl.clone(),
        ..ArmArgs::default()
    };
    let mut argv = arm_argv(&arm, matches);
    argv.splice(1..1, ["--tictoc".to_string(), a.to.clone()]);
    argv
}

fn cmd_tictoc(
    g: &Global,
    a: &TictocArgs,
    matches: Option<&ArgMatches>,
    ctx: &mut Ctx<'_>,
) -> Result<i32> {
    let argv = tictoc_argv(a, matches);
    arm_and_report(g, &argv, a.control.as_deref(), ctx, |probe, sites, pid| {
        // The answer lists the start sites, then the end sites: with one of each, show them
        // resolved; otherwise as typed.
        let (from, to) = match sites {
            [from, to] => (from.as_str(), to.as_str()),
            _ => (a.from.as_str(), a.to.as_str()),
        };
        format!("armed {probe}: time from {from} to {to} (pid {pid})")
    })
}

/// Sends `arm ARGV` to the selected processes, or with `control` appends ARGV to that control
/// file. Prints per process `{"pid","probe","site","sites"}` with --json, else
/// `text(probe, sites, pid)`.
fn arm_and_report(
    g: &Global,
    argv: &[String],
    control: Option<&Path>,
    ctx: &mut Ctx<'_>,
    text: impl Fn(&str, &[String], u32) -> String,
) -> Result<i32> {
    if let Some(file) = control {
        let line = client::join_args(argv)?;
        append_control_line(file, &line)?;
        if g.json {
            ctx.line(&json!({"control": file.display().to_string(), "line": line}).to_string())?;
        } else {
            ctx.line(&format!("appended to {}: {line}", file.display()))?;
        }
        return Ok(0);
    }
    let targets = select_for(g, ctx)?;
    let json_out = g.json;
    let results = for_each_target(&targets, ctx, |t, ctx| {
        let v = client::request(&t.socket, "arm", argv)?;
        let probe = field_str(&v, "probe");
        let sites: Vec<String> = match v.get("sites") {
            Some(Value::Array(s)) => s.iter().map(|x| format::cell(Some(x))).collect(),
            _ => Vec::new(),
        };
        // Only a location by line can land on the wrong line of a changed file.
        let by_line = argv.first().is_some_and(|l| !l.starts_with("fn:"))
            || argv.iter().any(|a| a == "--tictoc");
        let warnings = if by_line {
            let changed = changed_files(t, ctx);
            skew::site_warnings(&changed, t.hello.pid, &sites)
        } else {
            Vec::new()
        };
        if json_out {
            let first = sites.first().cloned().unwrap_or_else(|| argv[0].clone());
            // Keys in this order: pid, probe, site, sites (then warning, if any).
            let mut line = format!(
                "{{\"pid\":{},\"probe\":{},\"site\":{},\"sites\":{}",
                t.hello.pid,
                Value::String(probe),
                Value::String(first),
                Value::from(sites)
            );
            if !warnings.is_empty() {
                line.push_str(&format!(",\"warning\":{}", json!(warnings.join("\n"))));
            }
            line.push('}');
            ctx.line(&line)?;
        } else {
            ctx.line(&text(&probe, &sites, t.hello.pid))?;
        }
        for w in &warnings {
            ctx.note(&format!("warning: {w}"));
        }
        Ok(())
    })?;
    Ok(if results.len() == targets.len() { 0 } else { 1 })
}

fn cmd_disarm(g: &Global, a: &DisarmArgs, ctx: &mut Ctx<'_>) -> Result<i32> {
    let arg = match (&a.target, g.all) {
        (Some(t), _) => t.clone(),
        (None, true) => "--all".to_string(),
        (None, false) => {
            return Err(exit_code::usage(
                "say what to disarm: a probe id (see 'lprobe status'), a location, or --all",
            ))
        }
    };
    // `--all` selects every process only when no --pid narrows it down.
    let targets = select(&ctx.discovery, g.pid, g.all && g.pid.is_none(), ctx.err)?;
    let json_out = g.json;
    let mut total = 0usize;
    let results = for_each_target(&targets, ctx, |t, ctx| {
        let v = client::request(&t.socket, "disarm", std::slice::from_ref(&arg))?;
        let ids: Vec<String> = match v.get("disarmed") {
            Some(Value::Array(s)) => s.iter().map(|x| format::cell(Some(x))).collect(),
            _ => bail!("malformed answer to 'disarm' (no \"disarmed\" array)"),
        };
        total += ids.len();
        if json_out {
            let line = format!(
                "{{\"pid\":{},\"disarmed\":{}}}",
                t.hello.pid,
                Value::from(ids)
            );
            ctx.line(&line)?;
        } else if ids.is_empty() {
            ctx.line(&format!("nothing to disarm (pid {})", t.hello.pid))?;
        } else {
            ctx.line(&format!(
                "disarmed {} (pid {})",
                ids.join(", "),
                t.hello.pid
            ))?;
        }
        Ok(())
    })?;
    if a.target.is_some() && total == 0 && results.len() == targets.len() {
        bail!("no armed probe matches {arg:?} (see 'lprobe status')");
    }
    Ok(if results.len() == targets.len() { 0 } else { 1 })
}

fn cmd_status(g: &Global, ctx: &mut Ctx<'_>) -> Result<i32> {
    let targets = select_for(g, ctx)?;
    let results = for_each_target(&targets, ctx, |t, _| {
        client::request(&t.socket, "status", &[] as &[&str]).map(client::strip_ok)
    })?;
    let code = if results.len() == targets.len() { 0 } else { 1 };
    if g.json {
        let arr: Vec<Value> = results.into_iter().map(|(_, v)| v).collect();
        ctx.line(&Value::Array(arr).to_string())?;
        return Ok(code);
    }
    for (i, (t, v)) in results.iter().enumerate() {
        if i > 0 {
            ctx.line("")?;
        }
        ctx.put(&render_status(t, v))?;
    }
    Ok(code)
}

/// The readable form of one `status` answer.
pub fn render_status(t: &Target, v: &Value) -> String {
    let mut out = String::new();
    let pid = v
        .get("pid")
        .map(|p| format::cell(Some(p)))
        .unwrap_or_else(|| t.hello.pid.to_string());
    let program = v
        .get("program")
        .map(|p| format::cell(Some(p)))
        .unwrap_or_else(|| t.hello.program.clone());
    out.push_str(&format!("pid {pid}  {program}\n"));
    let probes = match v.get("probes") {
        Some(Value::Array(p)) => p.as_slice(),
        _ => &[],
    };
    if probes.is_empty() {
        out.push_str("no probes armed\n");
    } else {
        let rows: Vec<Vec<String>> = probes
            .iter()
            .map(|p| {
                let loc = status_location(p);
                let actions = match p.get("actions") {
                    Some(Value::Array(a)) if !a.is_empty() => a
                        .iter()
                        .map(|x| format::cell(Some(x)))
                        .collect::<Vec<_>>()
                        .join(","),
                    _ => "-".to_string(),
                };
                let mut state = field_str(p, "state");
                if let Some(n) = p.get("errors").and_then(Value::as_u64).filter(|n| *n > 0) {
                    state.push_str(&format!(" ({n} error{})", if n == 1 { "" } else { "s" }));
                }
                let ttl = match p.get("ttl_left_s").and_then(Value::as_f64) {
                    Some(s) => format::human_secs(s),
                    None => "-".to_string(),
                };
                let limit = match p.get("limit") {
                    None | Some(Value::Null) => "-".to_string(),
                    Some(Value::String(l)) if l.is_empty() => "-".to_string(),
                    l => format::cell(l),
                };
                vec![
                    field_str(p, "id"),
                    loc,
                    actions,
                    state,
                    field_str(p, "hits"),
                    field_str(p, "emitted"),
                    field_str(p, "dropped"),
                    limit,
                    ttl,
                ]
            })
            .collect();
        let table = format::table(
            &[
                "ID", "LOCATION", "ACTIONS", "STATE", "HITS", "EMITTED", "DROPPED", "LIMIT", "TTL",
            ],
            &rows,
        );
        // Under each timing probe's row, its statistics on an indented line of their own.
        let mut lines = table.lines();
        if let Some(h) = lines.next() {
            out.push_str(h);
            out.push('\n');
        }
        for (row, p) in lines.zip(probes) {
            out.push_str(row);
            out.push('\n');
            if let Some(d) = p.get("duration").filter(|d| d.is_object()) {
                out.push_str(&format!("    {}\n", format::duration_stats(d, true)));
            }
            for (kind, keys) in [
                (
                    "histogram",
                    &["count", "min", "p50", "p90", "p99", "max"][..],
                ),
                ("gauge", &["last", "min", "max", "count"][..]),
            ] {
                if let Some(m) = p.get(kind).and_then(Value::as_object) {
                    let shown: Vec<String> = keys
                        .iter()
                        .map(|k| {
                            let k2 = if *k == "count" { "n" } else { k };
                            format!("{k2}={}", format::cell(m.get(*k)))
                        })
                        .collect();
                    out.push_str(&format!(
                        "    {kind} {}: {}\n",
                        format::cell(p.get("expr")),
                        shown.join(" ")
                    ));
                }
            }
        }
    }
    // Per reason, the ones that happened: `(rate 3, write 12)`.
    let reasons: Vec<String> = v
        .get("dropped_by")
        .and_then(Value::as_object)
        .map(|by| {
            by.iter()
                .filter_map(|(k, n)| Some((k, n.as_u64().filter(|n| *n > 0)?)))
                .map(|(k, n)| format!("{} {n}", format::printable(k)))
                .collect()
        })
        .unwrap_or_default();
    out.push_str(&format!(
        "dropped records (all probes): {}{}\n",
        field_str(v, "dropped_total"),
        if reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", reasons.join(", "))
        }
    ));
    if let Some(n) = v
        .get("runtime_panics")
        .and_then(Value::as_u64)
        .filter(|n| *n > 0)
    {
        out.push_str(&format!(
            "lprobe's threads panicked {n} times (each restarted); last: {}\n",
            format::cell(v.get("last_runtime_panic"))
        ));
    }
    if let Some(o) = v.get("output").filter(|o| o.is_object()) {
        out.push_str(&output_line(o));
    }
    if let Some(c) = v.get("control").filter(|c| c.is_object()) {
        match c.get("path").filter(|p| !p.is_null()) {
            Some(p) => out.push_str(&format!("control file: {}\n", format::cell(Some(p)))),
            None => out.push_str("control file: none\n"),
        }
        if let Some(Value::Array(errs)) = c.get("errors") {
            if !errs.is_empty() {
                out.push_str("control file errors:\n");
                for e in errs {
                    out.push_str(&format!("  {}\n", format::cell(Some(e))));
                }
            }
        }
    }
    out
}

/// `status`'s line about where records go: `output: tracing (the program's subscriber)`,
/// `output: file /var/log/x.jsonl`, or the fallback from a bridge the program does not have;
/// with a bridge, the records its subscriber filtered out and its panics, when there are any.
fn output_line(o: &Value) -> String {
    let to = o.get("to").and_then(Value::as_str).unwrap_or("?");
    let mut line = match (to, o.get("path").and_then(Value::as_str)) {
        ("tracing", _) => "output: tracing (the program's subscriber, target lprobe)".to_string(),
        ("log", _) => "output: log (the program's logger, target lprobe)".to_string(),
        ("file", Some(p)) => format!("output: file {}", format::printable(p)),
        (to, _) => format!("output: {}", format::printable(to)),
    };
    if o.get("fallback").is_some_and(|f| !f.is_null()) {
        line.push_str(" (the LPROBE_OUTPUT bridge asked for is not in this program)");
    }
    for (key, what) in [
        ("filtered", "filtered out by it"),
        ("panics", "lost to its panics"),
    ] {
        if let Some(n) = o.get(key).and_then(Value::as_u64).filter(|n| *n > 0) {
            line.push_str(&format!("; {n} records {what}"));
        }
    }
    if let Some(p) = o.get("last_panic").and_then(Value::as_str) {
        line.push_str(&format!(" (last: {})", format::printable(p)));
    }
    line.push('\n');
    line
}

/// The LOCATION cell of a probe in `status`: its location as armed, followed by the sites it
/// resolved to when they differ (`process (src/main.rs:40)`); with more than 2 sites, just how
/// many (`fn:demo_app::billing::* (14 sites)`).
fn status_location(p: &Value) -> String {
    let location = field_str(p, "location");
    let sites: Vec<String> = match p.get("sites") {
        Some(Value::Array(s)) => s.iter().map(|x| format::cell(Some(x))).collect(),
        _ => match p.get("site") {
            Some(Value::String(s)) if !s.is_empty() => s.split(',').map(str::to_string).collect(),
            Some(Value::Null) | None => Vec::new(),
            Some(other) => vec![format::cell(Some(other))],
        },
    };
    if sites.len() > 2 {
        return format!("{location} ({} sites)", sites.len());
    }
    let joined = sites.join(", ");
    if sites.is_empty() || joined == location {
        location
    } else {
        format!("{location} ({joined})")
    }
}

/// A message from a `tail` reader thread.
enum TailMsg {
    Line(String),
    End(u32, Result<Next>),
}

fn cmd_tail(g: &Global, ctx: &mut Ctx<'_>) -> Result<i32> {
    let targets = select_for(g, ctx)?;
    let opened = for_each_target(&targets, ctx, |t, _| {
        client::open_stream(&t.socket, "tail", &[] as &[&str])
    })?;
    let mut code = if opened.len() == targets.len() { 0 } else { 1 };
    if ctx.interactive && !g.json {
        let who: Vec<String> = opened
            .iter()
            .map(|(t, _)| format!("pid {} ({})", t.hello.pid, t.hello.program))
            .collect();
        ctx.note(&format!("tailing {}; Ctrl-C to stop", who.join(", ")));
    }
    let style = RecordStyle {
        show_pid: opened.len() > 1,
    };
    // The readers stop on `stop`, raised on Ctrl-C or when the output goes away.
    let stop = AtomicBool::new(false);
    let stop = &stop;
    let result = std::thread::scope(|scope| -> Result<()> {
        let (tx, rx) = mpsc::channel::<TailMsg>();
        let mut running = 0usize;
        for (t, mut stream) in opened {
            let tx = tx.clone();
            let pid = t.hello.pid;
            running += 1;
            scope.spawn(move || loop {
                match stream.next_line(None, stop) {
                    Ok(Next::Line(l)) => {
                        if tx.send(TailMsg::Line(l)).is_err() {
                            return;
                        }
                    }
                    other => {
                        let _ = tx.send(TailMsg::End(pid, other));
                        return;
                    }
                }
            });
        }
        drop(tx);
        let r = tail_loop(g, ctx, &rx, running, style, stop, &mut code);
        stop.store(true, Ordering::SeqCst);
        r
    });
    result?;
    Ok(code)
}

/// Prints what the `tail` readers send until all of them ended.
fn tail_loop(
    g: &Global,
    ctx: &mut Ctx<'_>,
    rx: &mpsc::Receiver<TailMsg>,
    mut running: usize,
    style: RecordStyle,
    stop: &AtomicBool,
    code: &mut i32,
) -> Result<()> {
    while running > 0 {
        if ctx.cancel.load(Ordering::SeqCst) {
            stop.store(true, Ordering::SeqCst);
        }
        let msg = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(m) => m,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        match msg {
            TailMsg::Line(l) if g.json => ctx.line(&l)?,
            TailMsg::Line(l) => match serde_json::from_str::<Value>(&l) {
                Ok(rec) => ctx.line(&format::record(&rec, style))?,
                Err(_) => ctx.line(&l)?,
            },
            TailMsg::End(pid, r) => {
                running -= 1;
                match r {
                    Ok(Next::Closed) if !g.json => {
                        ctx.note(&format!("pid {pid} closed the stream (process exited?)"))
                    }
                    Ok(_) => {}
                    Err(e) => {
                        *code = 1;
                        ctx.note(&format!("error: pid {pid}: {e:#}"));
                    }
                }
            }
        }
    }
    Ok(())
}

/// The one process a command that waits on it (`snapshot`, `hot`) talks to.
fn one_target(g: &Global, ctx: &mut Ctx<'_>, command: &str) -> Result<Target> {
    if g.all && g.pid.is_none() {
        return Err(exit_code::usage(format!(
            "{command} works on one process; pick it with --pid PID"
        )));
    }
    let targets = select(&ctx.discovery, g.pid, false, ctx.err)?;
    targets
        .into_iter()
        .next()
        .ok_or_else(|| none_found(&ctx.discovery.searched))
}

fn cmd_snapshot(g: &Global, a: &SnapshotArgs, ctx: &mut Ctx<'_>) -> Result<i32> {
    let t = one_target(g, ctx, "snapshot")?;
    let timeout = parse_duration(&a.timeout, true).map_err(|e| anyhow!(e))?;
    let mut args = vec![
        a.location.clone(),
        "--snapshot".to_string(),
        "--max-hits".to_string(),
        "1".to_string(),
    ];
    if let Some(e) = &a.if_expr {
        args.push("--if".into());
        args.push(e.clone());
    }
    if let Some(n) = a.frames {
        args.push("--frames".into());
        args.push(n.to_string());
    }
    if a.frame_locals {
        args.push("--frame-locals".into());
    }
    let mut stream = client::open_stream(&t.socket, "watch", &args)?;
    let probe = match stream.first.get("probe") {
        Some(Value::String(p)) => p.clone(),
        _ => bail!("malformed answer to 'watch' (no \"probe\" id)"),
    };
    let deadline = Instant::now() + timeout;
    if ctx.interactive && !g.json {
        ctx.note(&format!(
            "armed {probe} at {} (pid {}); waiting up to {} for a hit…",
            a.location,
            t.hello.pid,
            a.timeout.trim()
        ));
    }
    let disarm = |why: &str| -> anyhow::Error {
        match client::request(&t.socket, "disarm", std::slice::from_ref(&probe)) {
            Ok(_) => anyhow!("{why}; disarmed {probe}"),
            Err(e) => anyhow!(
                "{why}; the probe stays armed as {probe} (disarming failed: {e:#}) — disarm it \
                 with 'lprobe disarm {probe} --pid {}'",
                t.hello.pid
            ),
        }
    };
    loop {
        match stream.next_line(Some(deadline), ctx.cancel)? {
            Next::Line(l) => {
                let rec: Value = match serde_json::from_str(&l) {
                    Ok(v) => v,
                    Err(_) => {
                        ctx.note(&format!("warning: ignoring malformed record: {l}"));
                        continue;
                    }
                };
                match rec.get("kind").and_then(Value::as_str) {
                    Some("snapshot") => {
                        if g.json {
                            ctx.line(&l)?;
                        } else {
                            ctx.line(&format::record(&rec, RecordStyle::default()))?;
                        }
                        return Ok(0);
                    }
                    Some("error") => ctx.note(&format!(
                        "warning: {probe}: {}",
                        format::cell(rec.get("error"))
                    )),
                    _ => {}
                }
            }
            Next::Closed => bail!(
                "probe {probe} ended without a snapshot (the process exited or the probe was \
                 disarmed)"
            ),
            Next::TimedOut => {
                drop(stream);
                return Err(disarm(&format!(
                    "no hit at {} within {}",
                    a.location,
                    a.timeout.trim()
                )));
            }
            Next::Cancelled => {
                drop(stream);
                return Err(disarm("interrupted"));
            }
        }
    }
}

fn cmd_hot(g: &Global, a: &HotArgs, ctx: &mut Ctx<'_>) -> Result<i32> {
    let pattern = a.pattern.strip_prefix("fn:").unwrap_or(&a.pattern);
    if let Some(file) = &a.records {
        return hot_from_records(g, a, pattern, file, ctx);
    }
    let t = one_target(g, ctx, "hot")?;
    let window = parse_duration(&a.window, true).map_err(|e| anyhow!(e))?;
    // A runtime older than `counts` would pay for a whole window for nothing: ask first.
    if let Err(e) = client::request(&t.socket, "counts", &["-"]) {
        if format!("{e:#}").contains("unknown request") {
            bail!(
                "pid {} runs an lprobe runtime without per-site counts (older than this lprobe); \
                 rebuild it with this cargo-lprobe to use 'lprobe hot'",
                t.hello.pid
            );
        }
    }
    // The probe expires by itself should lprobe die before disarming it.
    let ttl = format!("{}s", window.as_secs() + 60);
    let args = [
        format!("fn:{pattern}"),
        "--count".into(),
        "--every".into(),
        "1h".into(),
        "--ttl".into(),
        ttl,
    ];
    let armed = client::request(&t.socket, "arm", &args)?;
    let probe = field_str(&armed, "probe");
    if probe.is_empty() {
        bail!("malformed answer to 'arm' (no \"probe\" id)");
    }
    if ctx.interactive && !g.json {
        ctx.note(&format!(
            "counting the calls of fn:{pattern} in pid {} ({}) for {}; Ctrl-C to stop early…",
            t.hello.pid,
            t.hello.program,
            a.window.trim()
        ));
    }
    let start = Instant::now();
    let mut last_seen = start;
    while !ctx.cancel.load(Ordering::SeqCst) {
        let Some(left) = window.checked_sub(start.elapsed()) else {
            break;
        };
        std::thread::sleep(left.min(Duration::from_millis(100)));
        // A process that exits takes its counts along: say so now, not at the window's end.
        if last_seen.elapsed() >= Duration::from_secs(1) {
            last_seen = Instant::now();
            match client::request(&t.socket, "hello", &[] as &[&str]) {
                Ok(v) if v.get("pid").and_then(Value::as_u64) != Some(u64::from(t.hello.pid)) => {
                    bail!(
                        "pid {} is gone: another process now answers on {} (its counts are lost)",
                        t.hello.pid,
                        t.socket.display()
                    );
                }
                Ok(_) => {}
                // Gone only when nothing listens any more; a process that counting slowed
                // down may just be late to answer.
                Err(e) if socket_gone(&t.socket) => bail!(
                    "pid {} stopped answering {:.1} s into the window (it exited?): {e:#}",
                    t.hello.pid,
                    start.elapsed().as_secs_f64()
                ),
                Err(_) => {}
            }
        }
    }
    let elapsed = start.elapsed().min(window);
    let counts = client::request(&t.socket, "counts", std::slice::from_ref(&probe));
    let disarmed = client::request(&t.socket, "disarm", std::slice::from_ref(&probe));
    // When neither answered, the process is gone and the counts' error says so.
    if let (Ok(_), Err(e)) = (&counts, disarmed) {
        ctx.note(&format!(
            "warning: the counting probe stays armed as {probe} until it expires (disarming \
             failed: {e:#}); disarm it with 'lprobe disarm {probe} --pid {}'",
            t.hello.pid
        ));
    }
    let counts = counts
        .with_context(|| format!("reading the counts of {probe} from pid {}", t.hello.pid))?;
    let mut h = hot::from_counts(
        &counts,
        format!("pid {} ({})", t.hello.pid, t.hello.program),
        pattern,
        Some(elapsed),
        hot_keep(a),
    )?;
    h.pid = Some(t.hello.pid);
    h.program = Some(t.hello.program.clone());
    print_hot(g, ctx, &h)
}

/// Whether nothing listens on `socket` any more (removed, or refused: its process is gone).
fn socket_gone(socket: &Path) -> bool {
    match std::os::unix::net::UnixStream::connect(socket) {
        Ok(_) => false,
        Err(e) => matches!(
            e.kind(),
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
        ),
    }
}

/// `lprobe hot --records FILE`: the skip list from `count` records a process (or a fleet)
/// wrote, for processes the CLI cannot reach. The file is read line by line, so a large log
/// with the program's own output (not even UTF-8) in between is fine.
fn hot_from_records(
    g: &Global,
    a: &HotArgs,
    pattern: &str,
    file: &Path,
    ctx: &mut Ctx<'_>,
) -> Result<i32> {
    if g.pid.is_some() || g.all {
        return Err(exit_code::usage(
            "--records reads a file: --pid and --all do not apply (filter the file instead)",
        ));
    }
    let stdin = file == Path::new("-");
    let shown = if stdin {
        "standard input".to_owned()
    } else {
        file.display().to_string()
    };
    let mut reader: Box<dyn io::BufRead> = if stdin {
        Box::new(io::stdin().lock())
    } else {
        Box::new(io::BufReader::new(std::fs::File::open(file).with_context(
            || format!("opening the count records file {shown}"),
        )?))
    };
    let mut records = hot::RecordCounts::default();
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .with_context(|| format!("reading count records from {shown}"))?;
        if n == 0 {
            break;
        }
        records.add_line(&line, pattern);
    }
    if records.counted_twice() > 0 {
        ctx.note(&format!(
            "warning: at {} site(s), more than one probe of a process counted the same calls \
             (each counts every call): give --records the records of one probe, e.g. \
             jq -c 'select(.probe == \"p1\")'",
            records.counted_twice()
        ));
    }
    let source = format!(
        "{} count record{} from {} pid{} in {shown}",
        records.records,
        if records.records == 1 { "" } else { "s" },
        records.pids(),
        if records.pids() == 1 { "" } else { "s" },
    );
    let h = hot::from_counts(&records.reply(), source, pattern, None, hot_keep(a))?;
    if records.records == 0 && !g.json {
        ctx.put(&hot::render(&h))?;
        ctx.note(&format!(
            "no count record of a function matching fn:{pattern} in {shown}: arm a counter on \
             function entries (e.g. 'fn:* --count --every 1m' in the control file) and give \
             the records it writes"
        ));
        return Ok(0);
    }
    print_hot(g, ctx, &h)
}

/// Which functions `lprobe hot` prints.
fn hot_keep(a: &HotArgs) -> hot::Keep {
    hot::Keep {
        top: match (a.top, &a.share) {
            (Some(n), _) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            (None, Some(_)) => None,
            (None, None) => Some(20),
        },
        percent: a.share.as_deref().and_then(percent),
    }
}

fn print_hot(g: &Global, ctx: &mut Ctx<'_>, h: &hot::Hot) -> Result<i32> {
    if g.json {
        ctx.line(&serde_json::to_string(h)?)?;
    } else {
        ctx.put(&hot::render(h))?;
        if h.functions.is_empty() {
            ctx.note(&format!(
                "no call of fn:{} was counted in the window: is the program doing work?",
                h.pattern
            ));
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests;
