//! `lprobe exporter`: the probes of every reachable instrumented process as Prometheus metrics
//! (text format 0.0.4), served at `/metrics` or written for node_exporter's textfile collector.
//!
//! A *scrape* finds the instrumented processes again (one that exited is simply absent), asks
//! each for `status`, for the per-site `counts` of its armed `--count` probes and, when a
//! duration or a finished counter needs function names, for its `sites` (kept per pid). The
//! answers become a [`Scrape`]; [`render`] turns it into the text format through the
//! `prometheus` crate's encoder, which owns the escaping and the `# HELP`/`# TYPE` lines.
//!
//! The families, in this order:
//! - `lprobe_probe_hits_total{probe,site,fn,pid,program}` (counter): the hits of each `--count`
//!   probe per site. While the probe is armed, one series per site hit so far (`counts`); once
//!   it is exhausted or expired, one series for the probe (its sites joined by `,`, its final
//!   `hits` from `status`: the same series as before for a probe on one site).
//! - `lprobe_probe_duration_seconds{probe,site,fn,pid,program,quantile}` (summary): each
//!   `--duration` or `tictoc` probe's quantiles 0.5/0.9/0.99, `_sum` and `_count`, over the
//!   probe's life (`_sum` is NaN for a runtime older than `sum_ns`).
//! - `lprobe_probe_value{probe,site,fn,expr,pid,program,quantile}` (summary): each
//!   `--histogram EXPR` probe's quantiles 0.5/0.9/0.99 (within the runtime's 1/32), `_sum` and
//!   `_count`, in the value's own unit, over the probe's life (no hit yet: NaN quantiles).
//! - `lprobe_probe_gauge{probe,site,fn,expr,pid,program}` (gauge): each `--gauge EXPR` probe's
//!   last value; `lprobe_probe_gauge_min` and `lprobe_probe_gauge_max` (gauges) the least and
//!   greatest since arming. Separate names, not a `stat` label: Prometheus's rule is that a
//!   sum or average over a metric's labels must mean something, and last + min + max do not
//!   (`max_over_time` of the gauge cannot recover the max either: it sees only what was
//!   scraped). A gauge with no hit yet has no series.
//! - `lprobe_records_dropped_total{pid,program,reason}` (counter): records not written, per
//!   reason (`rate`, `budget`, `queue`, `write`, `stack`, `busy`).
//! - `lprobe_probes_armed{pid,program}` (gauge): probes in state `armed`.
//!
//! `program` is the file name of the process's executable; series are sorted by pid, then by
//! their other labels, so two scrapes of the same state render the same text.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::Permissions;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use prometheus::proto::{
    Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType, Quantile, Summary,
};
use prometheus::{Encoder, TextEncoder};
use serde::Deserialize;

use super::client::{self, Discovery, Reach, Searched};
use super::{parse_duration, Ctx, Global};

/// The file written in the `--textfile` directory.
pub const TEXTFILE_NAME: &str = "lprobe.prom";

/// How long one process may take to answer one request during a scrape.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// How often the HTTP loop wakes up to check for Ctrl-C.
const POLL: Duration = Duration::from_millis(200);

/// The summary's quantiles, as the runtime computes them.
const QUANTILES: [f64; 3] = [0.5, 0.9, 0.99];

/// `lprobe exporter --help`: set on the subcommand (`Command::Exporter`), whose doc comment
/// would otherwise replace one set here.
pub const LONG_ABOUT: &str =
    "Export the probes of every reachable instrumented process (or of --pid PID) \
        as Prometheus metrics (text format 0.0.4): --count probes as the counter \
        lprobe_probe_hits_total{probe,site,fn,pid,program}, --duration and tictoc probes as the \
        summary lprobe_probe_duration_seconds (quantiles 0.5, 0.9, 0.99, _sum, _count), \
        --histogram probes as the summary lprobe_probe_value{...,expr}, --gauge probes as the \
        gauges lprobe_probe_gauge, lprobe_probe_gauge_min and lprobe_probe_gauge_max, \
        lprobe_records_dropped_total{pid,program,reason} and lprobe_probes_armed{pid,program}. \
        Every scrape looks for the processes again: one that exited is gone from the next \
        scrape.\n\n\
        By default serves http://127.0.0.1:9464/metrics until Ctrl-C. With --textfile DIR, \
        writes DIR/lprobe.prom instead (a temporary file renamed over it, as node_exporter's \
        textfile collector wants): once, or every --every DURATION until Ctrl-C.";

/// `lprobe exporter`.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
#[command(after_help = "Examples:\n  lprobe exporter\n  \
        lprobe exporter --listen 0.0.0.0:9464 --pid 4242\n  \
        lprobe exporter --textfile /var/lib/prometheus/node-exporter\n  \
        lprobe exporter --textfile /var/lib/prometheus/node-exporter --every 15s")]
pub struct ExporterArgs {
    /// Address to serve /metrics on (port 0: any free port, printed on stderr)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9464")]
    pub listen: String,
    /// Write DIR/lprobe.prom for node_exporter's textfile collector instead of serving HTTP
    #[arg(long, value_name = "DIR", conflicts_with = "listen")]
    pub textfile: Option<PathBuf>,
    /// With --textfile: write the file again every DURATION until Ctrl-C (default: once)
    #[arg(long, value_name = "DURATION", requires = "textfile")]
    pub every: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// What a scrape found
// ---------------------------------------------------------------------------------------------

/// The metrics of every process a scrape reached.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scrape {
    /// One entry per process, sorted by pid.
    pub processes: Vec<ProcessMetrics>,
}

/// What one process reported.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessMetrics {
    pub pid: u32,
    /// The executable's file name.
    pub program: String,
    /// Probes in state `armed`.
    pub armed: u64,
    /// Records not written, per reason.
    pub dropped: BTreeMap<String, u64>,
    /// Hits of `--count` probes, keyed by (probe, site, fn).
    pub hits: BTreeMap<(String, String, String), u64>,
    /// Timings of `--duration`/`tictoc` probes, keyed by (probe, site, fn).
    pub durations: BTreeMap<(String, String, String), Timing>,
    /// Value summaries of `--histogram` probes, keyed by (probe, site, fn, expr).
    pub histograms: BTreeMap<(String, String, String, String), ValueSummary>,
    /// Last/min/max of `--gauge` probes that have a value, keyed like `histograms`.
    pub gauges: BTreeMap<(String, String, String, String), GaugeValue>,
}

/// A `--histogram` probe's summary, in the value's own unit (`None`: no hit yet).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ValueSummary {
    pub count: u64,
    pub sum: f64,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
}

/// A `--gauge` probe's values.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GaugeValue {
    pub last: f64,
    pub min: f64,
    pub max: f64,
}

/// A probe's duration summary, in nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timing {
    pub count: u64,
    /// `None` from a runtime that does not report `sum_ns`.
    pub sum_ns: Option<u64>,
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
}

// The parts of the protocol's answers the exporter reads (see "Socket protocol" in
// ARCHITECTURE.md; `client.rs` owns the requests).

#[derive(Debug, Deserialize)]
struct StatusAnswer {
    pid: u32,
    #[serde(default)]
    program: String,
    #[serde(default)]
    probes: Vec<ProbeStatus>,
    #[serde(default)]
    dropped_by: BTreeMap<String, u64>,
}

#[derive(Debug, Deserialize)]
struct ProbeStatus {
    id: String,
    /// Its sites' `path:line`, joined by `,`.
    #[serde(default)]
    site: String,
    #[serde(default)]
    sites: Vec<String>,
    #[serde(default)]
    actions: Vec<String>,
    #[serde(default)]
    state: String,
    #[serde(default)]
    hits: u64,
    duration: Option<DurationStatus>,
    /// The path of a `--histogram`/`--gauge` probe.
    expr: Option<String>,
    histogram: Option<HistogramStatus>,
    gauge: Option<GaugeStatus>,
}

/// `status`'s `histogram` (`null` fields: no value yet).
#[derive(Debug, Deserialize)]
struct HistogramStatus {
    #[serde(default)]
    count: u64,
    p50: Option<f64>,
    p90: Option<f64>,
    p99: Option<f64>,
    sum: Option<f64>,
}

/// `status`'s `gauge` (`null` fields: no value yet).
#[derive(Debug, Deserialize)]
struct GaugeStatus {
    last: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct DurationStatus {
    count: u64,
    #[serde(default)]
    p50_ns: u64,
    #[serde(default)]
    p90_ns: u64,
    #[serde(default)]
    p99_ns: u64,
    sum_ns: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct CountsAnswer {
    #[serde(default)]
    counts: Vec<SiteCount>,
}

#[derive(Debug, Deserialize)]
struct SiteCount {
    path: String,
    line: u64,
    #[serde(rename = "fn", default)]
    func: String,
    count: u64,
}

#[derive(Debug, Deserialize)]
struct SitesAnswer {
    #[serde(default)]
    sites: Vec<SiteEntry>,
}

#[derive(Debug, Deserialize)]
struct SiteEntry {
    path: String,
    line: u64,
    #[serde(rename = "fn", default)]
    func: String,
}

/// Which process a site table belongs to: pid, program and number of sites from `hello` (a
/// pid reused by another program, or by a rebuilt one, is another process).
type ProcessKey = (u32, String, u64);

/// The exporter's memory between scrapes: each process's site table (`path:line` → function;
/// it never changes while the process lives) and the sockets already warned about.
#[derive(Debug, Default)]
pub struct Exporter {
    functions: HashMap<ProcessKey, HashMap<String, String>>,
    warned: HashSet<PathBuf>,
}

impl Exporter {
    /// Asks every reachable process in `d` (only `pid`'s, if given) for its metrics. A
    /// process that cannot be reached or answers badly is left out, with one warning per
    /// socket on `err`.
    pub fn scrape(&mut self, d: &Discovery, pid: Option<u32>, err: &mut dyn Write) -> Scrape {
        let mut scrape = Scrape::default();
        for entry in &d.sockets {
            if pid.is_some() && entry.pid.is_some() && entry.pid != pid {
                continue;
            }
            let result = match client::reach(entry) {
                Reach::Alive { hello, .. } if pid.is_none_or(|p| p == hello.pid) => {
                    if scrape.processes.iter().any(|p| p.pid == hello.pid) {
                        continue;
                    }
                    let key = (hello.pid, hello.program, hello.sites);
                    self.process(&entry.path, key)
                }
                Reach::Alive { .. } | Reach::Stale(_) => continue,
                Reach::Unreachable(e) => Err(e),
            };
            match result {
                Ok(p) => {
                    self.warned.remove(&entry.path);
                    scrape.processes.push(p);
                }
                Err(e) => {
                    if self.warned.insert(entry.path.clone()) {
                        let _ = writeln!(err, "warning: skipping {}: {e:#}", entry.path.display());
                    }
                }
            }
        }
        scrape.processes.sort_by_key(|p| p.pid);
        let live: HashSet<u32> = scrape.processes.iter().map(|p| p.pid).collect();
        self.functions.retain(|key, _| live.contains(&key.0));
        scrape
    }

    /// One process's metrics, from its `status`, `counts` and `sites` answers.
    fn process(&mut self, socket: &Path, key: ProcessKey) -> Result<ProcessMetrics> {
        let status: StatusAnswer = serde_json::from_value(ask(socket, "status", &[])?)
            .context("malformed answer to 'status'")?;
        let mut m = ProcessMetrics {
            pid: status.pid,
            program: program_name(&status.program),
            armed: 0,
            dropped: status.dropped_by,
            ..ProcessMetrics::default()
        };
        for p in &status.probes {
            let live = p.state == "armed";
            if live {
                m.armed += 1;
            }
            if p.actions.iter().any(|a| a == "count") {
                let per_site = if live {
                    site_counts(socket, &p.id)
                } else {
                    None
                };
                match per_site {
                    Some(counts) => {
                        for c in counts {
                            let key = (p.id.clone(), format!("{}:{}", c.path, c.line), c.func);
                            *m.hits.entry(key).or_default() += c.count;
                        }
                    }
                    None => {
                        let func = self.functions_of(socket, &key, &p.sites)?;
                        m.hits.insert((p.id.clone(), p.site.clone(), func), p.hits);
                    }
                }
            }
            if let Some(d) = &p.duration {
                let func = self.functions_of(socket, &key, &p.sites)?;
                let timing = Timing {
                    count: d.count,
                    sum_ns: d.sum_ns,
                    p50_ns: d.p50_ns,
                    p90_ns: d.p90_ns,
                    p99_ns: d.p99_ns,
                };
                m.durations
                    .insert((p.id.clone(), p.site.clone(), func), timing);
            }
            if p.histogram.is_some() || p.gauge.is_some() {
                let func = self.functions_of(socket, &key, &p.sites)?;
                let key = (
                    p.id.clone(),
                    p.site.clone(),
                    func,
                    p.expr.clone().unwrap_or_default(),
                );
                if let Some(h) = &p.histogram {
                    let v = ValueSummary {
                        count: h.count,
                        sum: h.sum.unwrap_or(0.0),
                        p50: h.p50,
                        p90: h.p90,
                        p99: h.p99,
                    };
                    m.histograms.insert(key.clone(), v);
                }
                if let Some(GaugeStatus {
                    last: Some(last),
                    min: Some(min),
                    max: Some(max),
                }) = p.gauge
                {
                    m.gauges.insert(key, GaugeValue { last, min, max });
                }
            }
        }
        Ok(m)
    }

    /// The functions of `sites` (`path:line`), distinct, joined by `,`; the site table is
    /// asked for once per process.
    fn functions_of(
        &mut self,
        socket: &Path,
        key: &ProcessKey,
        sites: &[String],
    ) -> Result<String> {
        let table = match self.functions.entry(key.clone()) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let answer: SitesAnswer = serde_json::from_value(ask(socket, "sites", &[])?)
                    .context("malformed answer to 'sites'")?;
                let mut table = HashMap::new();
                for s in answer.sites {
                    table
                        .entry(format!("{}:{}", s.path, s.line))
                        .or_insert(s.func);
                }
                e.insert(table)
            }
        };
        let mut names: Vec<&str> = Vec::new();
        for s in sites {
            if let Some(f) = table.get(s) {
                if !names.contains(&f.as_str()) {
                    names.push(f);
                }
            }
        }
        Ok(names.join(","))
    }
}

fn ask(socket: &Path, verb: &str, args: &[&str]) -> Result<serde_json::Value> {
    client::request_with_timeout(socket, verb, args, REQUEST_TIMEOUT)
}

/// The per-site counts of an armed `--count` probe; `None` when the process no longer gives
/// them (the probe ran out between `status` and `counts`, or an older runtime).
fn site_counts(socket: &Path, probe: &str) -> Option<Vec<SiteCount>> {
    let v = ask(socket, "counts", &[probe]).ok()?;
    serde_json::from_value::<CountsAnswer>(v)
        .ok()
        .map(|c| c.counts)
}

/// The file name of an executable's path (`/srv/bin/app` → `app`).
fn program_name(path: &str) -> String {
    Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.to_string())
}

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn labels(pairs: &[(&str, &str)]) -> Vec<LabelPair> {
    pairs
        .iter()
        .map(|(name, value)| {
            let mut l = LabelPair::default();
            l.set_name((*name).to_string());
            l.set_value((*value).to_string());
            l
        })
        .collect()
}

fn family(name: &str, help: &str, kind: MetricType, metrics: Vec<Metric>) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(name.to_string());
    f.set_help(help.to_string());
    f.set_field_type(kind);
    f.set_metric(metrics);
    f
}

fn counter(labels: Vec<LabelPair>, value: u64) -> Metric {
    let mut c = Counter::default();
    c.set_value(value as f64);
    let mut m = Metric::from_label(labels);
    m.set_counter(c);
    m
}

fn gauge(labels: Vec<LabelPair>, value: f64) -> Metric {
    let mut g = Gauge::default();
    g.set_value(value);
    let mut m = Metric::from_label(labels);
    m.set_gauge(g);
    m
}

/// A summary of `count` samples adding up to `sum`, with the values at [`QUANTILES`].
fn summary(labels: Vec<LabelPair>, count: u64, sum: f64, at: [f64; 3]) -> Metric {
    let mut s = Summary::default();
    s.set_sample_count(count);
    s.set_sample_sum(sum);
    let quantiles = QUANTILES
        .iter()
        .zip(at)
        .map(|(q, v)| {
            let mut x = Quantile::default();
            x.set_quantile(*q);
            x.set_value(v);
            x
        })
        .collect();
    s.set_quantile(quantiles);
    let mut m = Metric::from_label(labels);
    m.set_summary(s);
    m
}

/// The metric families of a scrape, in the order of the module documentation; a family
/// with no series is left out (the text format has no empty family).
pub fn families(scrape: &Scrape) -> Vec<MetricFamily> {
    let (mut hits, mut durations, mut dropped, mut armed) = (vec![], vec![], vec![], vec![]);
    let (mut values, mut last, mut min, mut max) = (vec![], vec![], vec![], vec![]);
    for p in &scrape.processes {
        let pid = p.pid.to_string();
        let program = p.program.as_str();
        for ((probe, site, func), n) in &p.hits {
            let l = [
                ("probe", probe.as_str()),
                ("site", site),
                ("fn", func),
                ("pid", &pid),
                ("program", program),
            ];
            hits.push(counter(labels(&l), *n));
        }
        for ((probe, site, func), t) in &p.durations {
            let l = [
                ("probe", probe.as_str()),
                ("site", site),
                ("fn", func),
                ("pid", &pid),
                ("program", program),
            ];
            let secs = |ns: u64| ns as f64 / 1e9;
            let at = [secs(t.p50_ns), secs(t.p90_ns), secs(t.p99_ns)];
            let sum = t.sum_ns.map_or(f64::NAN, secs);
            durations.push(summary(labels(&l), t.count, sum, at));
        }
        for ((probe, site, func, expr), v) in &p.histograms {
            let l = [
                ("probe", probe.as_str()),
                ("site", site),
                ("fn", func),
                ("expr", expr),
                ("pid", &pid),
                ("program", program),
            ];
            let at = [v.p50, v.p90, v.p99].map(|q| q.unwrap_or(f64::NAN));
            values.push(summary(labels(&l), v.count, v.sum, at));
        }
        for ((probe, site, func, expr), g) in &p.gauges {
            let l = [
                ("probe", probe.as_str()),
                ("site", site),
                ("fn", func),
                ("expr", expr),
                ("pid", &pid),
                ("program", program),
            ];
            last.push(gauge(labels(&l), g.last));
            min.push(gauge(labels(&l), g.min));
            max.push(gauge(labels(&l), g.max));
        }
        for (reason, n) in &p.dropped {
            let l = [
                ("pid", pid.as_str()),
                ("program", program),
                ("reason", reason),
            ];
            dropped.push(counter(labels(&l), *n));
        }
        let l = [("pid", pid.as_str()), ("program", program)];
        armed.push(gauge(labels(&l), p.armed as f64));
    }
    [
        family(
            "lprobe_probe_hits_total",
            "Hits counted by lprobe --count probes, per site.",
            MetricType::COUNTER,
            hits,
        ),
        family(
            "lprobe_probe_duration_seconds",
            "Durations timed by lprobe --duration and tictoc probes.",
            MetricType::SUMMARY,
            durations,
        ),
        family(
            "lprobe_probe_value",
            "Values of lprobe --histogram probes, in the value's own unit.",
            MetricType::SUMMARY,
            values,
        ),
        family(
            "lprobe_probe_gauge",
            "Last value of lprobe --gauge probes.",
            MetricType::GAUGE,
            last,
        ),
        family(
            "lprobe_probe_gauge_min",
            "Least value of lprobe --gauge probes since arming.",
            MetricType::GAUGE,
            min,
        ),
        family(
            "lprobe_probe_gauge_max",
            "Greatest value of lprobe --gauge probes since arming.",
            MetricType::GAUGE,
            max,
        ),
        family(
            "lprobe_records_dropped_total",
            "Records lprobe did not write, per reason.",
            MetricType::COUNTER,
            dropped,
        ),
        family(
            "lprobe_probes_armed",
            "Probes armed in the process.",
            MetricType::GAUGE,
            armed,
        ),
    ]
    .into_iter()
    .filter(|f| !f.get_metric().is_empty())
    .collect()
}

/// A scrape in the Prometheus text format 0.0.4.
pub fn render(scrape: &Scrape) -> Result<String> {
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&families(scrape), &mut out)
        .map_err(|e| anyhow!("cannot encode the metrics: {e}"))?;
    String::from_utf8(out).context("the metrics are not UTF-8")
}

// ---------------------------------------------------------------------------------------------
// Serving and writing
// ---------------------------------------------------------------------------------------------

/// The sockets to scrape now: `$LPROBE_SOCKET`'s, or the socket directories scanned again.
fn rediscover(d: &Discovery) -> Discovery {
    match &d.searched {
        Searched::Env(_) => d.clone(),
        Searched::Dirs(dirs) => client::discover_in(dirs),
    }
}

/// Runs `lprobe exporter`.
pub fn cmd_exporter(g: &Global, a: &ExporterArgs, ctx: &mut Ctx<'_>) -> Result<i32> {
    if g.pid.is_some() && g.all {
        return Err(crate::cli::exit_code::usage(
            "--pid and --all cannot be used together",
        ));
    }
    let mut exporter = Exporter::default();
    match &a.textfile {
        Some(dir) => {
            let every = a
                .every
                .as_deref()
                .map(|e| parse_duration(e, true))
                .transpose()
                .map_err(|e| anyhow!(e))?;
            if every.is_some_and(|e| e.is_zero()) {
                bail!("--every must be longer than 0");
            }
            write_textfiles(&mut exporter, g.pid, dir, every, ctx)
        }
        None => serve(&mut exporter, g.pid, &a.listen, ctx),
    }
}

/// Writes `dir/lprobe.prom`, once or every `every` until cancelled.
fn write_textfiles(
    exporter: &mut Exporter,
    pid: Option<u32>,
    dir: &Path,
    every: Option<Duration>,
    ctx: &mut Ctx<'_>,
) -> Result<i32> {
    loop {
        let started = Instant::now();
        let scrape = exporter.scrape(&rediscover(&ctx.discovery), pid, ctx.err);
        let path = write_textfile(dir, &render(&scrape)?)?;
        let Some(every) = every else {
            ctx.note(&format!(
                "wrote {} ({} processes)",
                path.display(),
                scrape.processes.len()
            ));
            return Ok(0);
        };
        while started.elapsed() < every {
            if ctx.cancel.load(std::sync::atomic::Ordering::Relaxed) {
                return Ok(0);
            }
            std::thread::sleep(POLL.min(every.saturating_sub(started.elapsed())));
        }
    }
}

/// Replaces `dir/lprobe.prom` with `text` atomically: a temporary file in `dir` (whose name
/// does not end in `.prom`, so the collector never reads it half-written), readable by every
/// user, renamed over it. Returns the file's path.
pub fn write_textfile(dir: &Path, text: &str) -> Result<PathBuf> {
    let path = dir.join(TEXTFILE_NAME);
    let mut tmp = tempfile::Builder::new()
        .prefix(".lprobe.prom.")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    tmp.write_all(text.as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .and_then(|()| tmp.as_file().set_permissions(Permissions::from_mode(0o644)))
        .with_context(|| format!("cannot write {}", tmp.path().display()))?;
    tmp.persist(&path)
        .with_context(|| format!("cannot rename a temporary file to {}", path.display()))?;
    Ok(path)
}

/// Serves `/metrics` on `listen` until cancelled.
fn serve(
    exporter: &mut Exporter,
    pid: Option<u32>,
    listen: &str,
    ctx: &mut Ctx<'_>,
) -> Result<i32> {
    let server =
        tiny_http::Server::http(listen).map_err(|e| anyhow!("cannot listen on {listen}: {e}"))?;
    let addr = match server.server_addr() {
        tiny_http::ListenAddr::IP(a) => a.to_string(),
        other => other.to_string(),
    };
    ctx.note(&format!("lprobe: serving http://{addr}/metrics"));
    let content_type = tiny_http::Header::from_bytes("Content-Type", CONTENT_TYPE)
        .map_err(|()| anyhow!("bad content type header"))?;
    while !ctx.cancel.load(std::sync::atomic::Ordering::Relaxed) {
        let request = match server.recv_timeout(POLL) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => return Err(anyhow::Error::new(e).context("cannot accept a connection")),
        };
        let path = request.url().split('?').next().unwrap_or("");
        let response = match (request.method(), path) {
            (tiny_http::Method::Get, "/metrics") => {
                let scrape = exporter.scrape(&rediscover(&ctx.discovery), pid, ctx.err);
                match render(&scrape) {
                    Ok(text) => {
                        tiny_http::Response::from_string(text).with_header(content_type.clone())
                    }
                    Err(e) => {
                        tiny_http::Response::from_string(format!("{e:#}\n")).with_status_code(500)
                    }
                }
            }
            (tiny_http::Method::Get, "/") => {
                tiny_http::Response::from_string("lprobe exporter: the metrics are at /metrics\n")
            }
            _ => tiny_http::Response::from_string("not found\n").with_status_code(404),
        };
        // A scraper that hung up early is its own problem.
        let _ = request.respond(response);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::client::tests::fake_server;
    use crate::cli::client::SocketEntry;

    fn key(probe: &str, site: &str, func: &str) -> (String, String, String) {
        (probe.into(), site.into(), func.into())
    }

    fn demo() -> ProcessMetrics {
        ProcessMetrics {
            pid: 42,
            program: "demo-app".into(),
            armed: 2,
            dropped: [("queue".to_string(), 3), ("rate".to_string(), 0)].into(),
            hits: [
                (key("p2", "src/b.rs:9", "demo::b"), 7),
                (key("p1", "src/a.rs:1", "demo::a"), 5),
            ]
            .into(),
            durations: [(
                key("p3", "src/a.rs:1", "demo::a"),
                Timing {
                    count: 4,
                    sum_ns: Some(2_000_000_000),
                    p50_ns: 250_000_000,
                    p90_ns: 500_000_000,
                    p99_ns: 1_500_000_000,
                },
            )]
            .into(),
            histograms: [(
                vkey("p4", "src/b.rs:9", "demo::b", "order.items.len()"),
                ValueSummary {
                    count: 10,
                    sum: 55.0,
                    p50: Some(5.0),
                    p90: Some(9.0),
                    p99: Some(10.0),
                },
            )]
            .into(),
            gauges: [(
                vkey("p5", "src/b.rs:9", "demo::b", "depth"),
                GaugeValue {
                    last: 3.0,
                    min: -1.5,
                    max: 12.0,
                },
            )]
            .into(),
        }
    }

    fn vkey(probe: &str, site: &str, func: &str, expr: &str) -> (String, String, String, String) {
        (probe.into(), site.into(), func.into(), expr.into())
    }

    #[test]
    fn a_scrape_renders_every_family_with_help_and_type_in_a_stable_order() {
        let mut other = demo();
        other.pid = 7;
        other.hits.clear();
        other.durations.clear();
        other.histograms.clear();
        other.gauges.clear();
        let scrape = Scrape {
            processes: vec![other, demo()],
        };
        let text = render(&scrape).unwrap();
        assert_eq!(
            text,
            "# HELP lprobe_probe_hits_total Hits counted by lprobe --count probes, per site.\n\
             # TYPE lprobe_probe_hits_total counter\n\
             lprobe_probe_hits_total{probe=\"p1\",site=\"src/a.rs:1\",fn=\"demo::a\",pid=\"42\",program=\"demo-app\"} 5\n\
             lprobe_probe_hits_total{probe=\"p2\",site=\"src/b.rs:9\",fn=\"demo::b\",pid=\"42\",program=\"demo-app\"} 7\n\
             # HELP lprobe_probe_duration_seconds Durations timed by lprobe --duration and tictoc probes.\n\
             # TYPE lprobe_probe_duration_seconds summary\n\
             lprobe_probe_duration_seconds{probe=\"p3\",site=\"src/a.rs:1\",fn=\"demo::a\",pid=\"42\",program=\"demo-app\",quantile=\"0.5\"} 0.25\n\
             lprobe_probe_duration_seconds{probe=\"p3\",site=\"src/a.rs:1\",fn=\"demo::a\",pid=\"42\",program=\"demo-app\",quantile=\"0.9\"} 0.5\n\
             lprobe_probe_duration_seconds{probe=\"p3\",site=\"src/a.rs:1\",fn=\"demo::a\",pid=\"42\",program=\"demo-app\",quantile=\"0.99\"} 1.5\n\
             lprobe_probe_duration_seconds_sum{probe=\"p3\",site=\"src/a.rs:1\",fn=\"demo::a\",pid=\"42\",program=\"demo-app\"} 2\n\
             lprobe_probe_duration_seconds_count{probe=\"p3\",site=\"src/a.rs:1\",fn=\"demo::a\",pid=\"42\",program=\"demo-app\"} 4\n\
             # HELP lprobe_probe_value Values of lprobe --histogram probes, in the value's own unit.\n\
             # TYPE lprobe_probe_value summary\n\
             lprobe_probe_value{probe=\"p4\",site=\"src/b.rs:9\",fn=\"demo::b\",expr=\"order.items.len()\",pid=\"42\",program=\"demo-app\",quantile=\"0.5\"} 5\n\
             lprobe_probe_value{probe=\"p4\",site=\"src/b.rs:9\",fn=\"demo::b\",expr=\"order.items.len()\",pid=\"42\",program=\"demo-app\",quantile=\"0.9\"} 9\n\
             lprobe_probe_value{probe=\"p4\",site=\"src/b.rs:9\",fn=\"demo::b\",expr=\"order.items.len()\",pid=\"42\",program=\"demo-app\",quantile=\"0.99\"} 10\n\
             lprobe_probe_value_sum{probe=\"p4\",site=\"src/b.rs:9\",fn=\"demo::b\",expr=\"order.items.len()\",pid=\"42\",program=\"demo-app\"} 55\n\
             lprobe_probe_value_count{probe=\"p4\",site=\"src/b.rs:9\",fn=\"demo::b\",expr=\"order.items.len()\",pid=\"42\",program=\"demo-app\"} 10\n\
             # HELP lprobe_probe_gauge Last value of lprobe --gauge probes.\n\
             # TYPE lprobe_probe_gauge gauge\n\
             lprobe_probe_gauge{probe=\"p5\",site=\"src/b.rs:9\",fn=\"demo::b\",expr=\"depth\",pid=\"42\",program=\"demo-app\"} 3\n\
             # HELP lprobe_probe_gauge_min Least value of lprobe --gauge probes since arming.\n\
             # TYPE lprobe_probe_gauge_min gauge\n\
             lprobe_probe_gauge_min{probe=\"p5\",site=\"src/b.rs:9\",fn=\"demo::b\",expr=\"depth\",pid=\"42\",program=\"demo-app\"} -1.5\n\
             # HELP lprobe_probe_gauge_max Greatest value of lprobe --gauge probes since arming.\n\
             # TYPE lprobe_probe_gauge_max gauge\n\
             lprobe_probe_gauge_max{probe=\"p5\",site=\"src/b.rs:9\",fn=\"demo::b\",expr=\"depth\",pid=\"42\",program=\"demo-app\"} 12\n\
             # HELP lprobe_records_dropped_total Records lprobe did not write, per reason.\n\
             # TYPE lprobe_records_dropped_total counter\n\
             lprobe_records_dropped_total{pid=\"7\",program=\"demo-app\",reason=\"queue\"} 3\n\
             lprobe_records_dropped_total{pid=\"7\",program=\"demo-app\",reason=\"rate\"} 0\n\
             lprobe_records_dropped_total{pid=\"42\",program=\"demo-app\",reason=\"queue\"} 3\n\
             lprobe_records_dropped_total{pid=\"42\",program=\"demo-app\",reason=\"rate\"} 0\n\
             # HELP lprobe_probes_armed Probes armed in the process.\n\
             # TYPE lprobe_probes_armed gauge\n\
             lprobe_probes_armed{pid=\"7\",program=\"demo-app\"} 2\n\
             lprobe_probes_armed{pid=\"42\",program=\"demo-app\"} 2\n"
        );
        assert_eq!(render(&scrape).unwrap(), text, "rendering is deterministic");
    }

    #[test]
    fn label_values_are_escaped_per_the_text_format() {
        let mut p = demo();
        p.program = "my \"app\"\\v2\nnext".into();
        p.hits = [(key("p1", "src/a.rs:1", "<T as Tr>::f"), 1)].into();
        p.durations.clear();
        p.histograms.clear();
        p.gauges.clear();
        p.dropped.clear();
        let text = render(&Scrape { processes: vec![p] }).unwrap();
        assert!(
            text.contains(
                "{probe=\"p1\",site=\"src/a.rs:1\",fn=\"<T as Tr>::f\",pid=\"42\",\
                 program=\"my \\\"app\\\"\\\\v2\\nnext\"} 1\n"
            ),
            "{text}"
        );
        // Every sample stays on one line.
        assert!(
            text.lines()
                .all(|l| l.starts_with('#') || l.starts_with("lprobe_")),
            "{text}"
        );
    }

    #[test]
    fn nothing_reachable_renders_an_empty_exposition_and_a_missing_sum_is_nan() {
        assert_eq!(render(&Scrape::default()).unwrap(), "");
        let mut p = demo();
        p.durations.values_mut().for_each(|t| t.sum_ns = None);
        let text = render(&Scrape { processes: vec![p] }).unwrap();
        assert!(
            text.contains("lprobe_probe_duration_seconds_sum{"),
            "{text}"
        );
        assert!(text.contains("} NaN\n"), "{text}");
    }

    #[test]
    fn a_scrape_reads_status_counts_and_sites_from_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("fake.sock");
        let me = std::process::id();
        let hello = format!(
            "{{\"ok\":true,\"pid\":{me},\"program\":\"/srv/bin/demo-app\",\"version\":\"0.1.0\",\
             \"sites\":3,\"armed\":1,\"socket\":\"x\"}}\n"
        );
        let status = format!(
            "{{\"ok\":true,\"pid\":{me},\"program\":\"/srv/bin/demo-app\",\"probes\":[\
             {{\"id\":\"p1\",\"site\":\"src/a.rs:1,src/b.rs:9\",\"sites\":[\"src/a.rs:1\",\"src/b.rs:9\"],\
               \"actions\":[\"count\"],\"state\":\"armed\",\"hits\":12}},\
             {{\"id\":\"p2\",\"site\":\"src/a.rs:5\",\"sites\":[\"src/a.rs:5\"],\
               \"actions\":[\"count\"],\"state\":\"exhausted\",\"hits\":3}},\
             {{\"id\":\"p3\",\"site\":\"src/a.rs:1\",\"sites\":[\"src/a.rs:1\"],\"actions\":[\"duration\"],\
               \"state\":\"armed\",\"hits\":2,\"duration\":{{\"count\":2,\"min_ns\":1,\"p50_ns\":10,\
               \"p90_ns\":20,\"p99_ns\":20,\"max_ns\":20,\"sum_ns\":30}}}},\
             {{\"id\":\"p4\",\"site\":\"src/a.rs:5\",\"sites\":[\"src/a.rs:5\"],\"actions\":[\"histogram\"],\
               \"state\":\"armed\",\"hits\":3,\"expr\":\"n.len()\",\"histogram\":{{\"count\":3,\"min\":1,\
               \"p50\":2,\"p90\":4.5,\"p99\":4.5,\"max\":4.5,\"sum\":7.5}}}},\
             {{\"id\":\"p5\",\"site\":\"src/a.rs:5\",\"sites\":[\"src/a.rs:5\"],\"actions\":[\"gauge\"],\
               \"state\":\"armed\",\"hits\":2,\"expr\":\"n\",\"gauge\":{{\"count\":2,\"last\":-2,\"min\":-2,\"max\":8}}}},\
             {{\"id\":\"p6\",\"site\":\"src/a.rs:5\",\"sites\":[\"src/a.rs:5\"],\"actions\":[\"gauge\"],\
               \"state\":\"armed\",\"hits\":0,\"expr\":\"n\",\"gauge\":{{\"count\":0,\"last\":null,\"min\":null,\"max\":null}}}}],\
             \"dropped_total\":1,\"dropped_by\":{{\"rate\":1,\"queue\":0}},\"control\":{{\"path\":null,\"errors\":[]}}}}\n"
        );
        // Two sites on one line (an entry and a statement) make one series.
        let counts = "{\"ok\":true,\"probe\":\"p1\",\"sites\":2,\"hits\":12,\"counts\":[\
             {\"path\":\"src/b.rs\",\"line\":9,\"fn\":\"demo::b\",\"kind\":\"entry\",\"count\":8},\
             {\"path\":\"src/a.rs\",\"line\":1,\"fn\":\"demo::a\",\"kind\":\"entry\",\"count\":3},\
             {\"path\":\"src/a.rs\",\"line\":1,\"fn\":\"demo::a\",\"kind\":\"line\",\"count\":1}]}\n";
        let sites = "{\"ok\":true,\"sites\":[\
             {\"id\":\"demo#0\",\"package\":\"demo\",\"path\":\"src/a.rs\",\"line\":1,\"col\":1,\"fn\":\"demo::a\",\"kind\":\"entry\",\"names\":[]},\
             {\"id\":\"demo#1\",\"package\":\"demo\",\"path\":\"src/a.rs\",\"line\":5,\"col\":5,\"fn\":\"demo::a\",\"kind\":\"line\",\"names\":[]}]}\n";
        let server = fake_server(&sock, vec![hello, status, counts.into(), sites.into()]);
        let d = Discovery {
            sockets: vec![SocketEntry::new(sock)],
            searched: Searched::Dirs(vec![]),
            refused: Vec::new(),
        };
        let mut err = Vec::new();
        let scrape = Exporter::default().scrape(&d, None, &mut err);
        assert_eq!(String::from_utf8_lossy(&err), "");
        let got = server.join().unwrap();
        assert_eq!(
            got,
            [
                "lprobe/1 hello\n",
                "lprobe/1 status\n",
                "lprobe/1 counts p1\n",
                "lprobe/1 sites\n"
            ]
        );
        let p = &scrape.processes[0];
        assert_eq!((p.pid, p.program.as_str(), p.armed), (me, "demo-app", 5));
        assert_eq!(
            p.hits,
            [
                (key("p1", "src/a.rs:1", "demo::a"), 4),
                (key("p1", "src/b.rs:9", "demo::b"), 8),
                (key("p2", "src/a.rs:5", "demo::a"), 3),
            ]
            .into()
        );
        assert_eq!(
            p.durations[&key("p3", "src/a.rs:1", "demo::a")],
            Timing {
                count: 2,
                sum_ns: Some(30),
                p50_ns: 10,
                p90_ns: 20,
                p99_ns: 20
            }
        );
        assert_eq!(
            p.histograms,
            [(
                vkey("p4", "src/a.rs:5", "demo::a", "n.len()"),
                ValueSummary {
                    count: 3,
                    sum: 7.5,
                    p50: Some(2.0),
                    p90: Some(4.5),
                    p99: Some(4.5)
                }
            )]
            .into()
        );
        // A gauge without a value yet (p6) has no series.
        assert_eq!(
            p.gauges,
            [(
                vkey("p5", "src/a.rs:5", "demo::a", "n"),
                GaugeValue {
                    last: -2.0,
                    min: -2.0,
                    max: 8.0
                }
            )]
            .into()
        );
        assert_eq!(p.dropped, [("queue".into(), 0), ("rate".into(), 1)].into());
    }

    #[test]
    fn an_unreachable_socket_is_left_out_with_one_warning() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("mute.sock");
        // Answers hello, then garbage to status.
        let me = std::process::id();
        let hello = format!("{{\"ok\":true,\"pid\":{me}}}\n");
        let server = fake_server(
            &sock,
            vec![hello.clone(), "garbage\n".into(), hello, "garbage\n".into()],
        );
        let d = Discovery {
            sockets: vec![SocketEntry::new(sock)],
            searched: Searched::Dirs(vec![]),
            refused: Vec::new(),
        };
        let mut exporter = Exporter::default();
        let mut err = Vec::new();
        assert_eq!(exporter.scrape(&d, None, &mut err), Scrape::default());
        assert_eq!(exporter.scrape(&d, None, &mut err), Scrape::default());
        server.join().unwrap();
        let err = String::from_utf8_lossy(&err);
        assert_eq!(err.matches("warning: skipping").count(), 1, "{err}");
        assert!(err.contains("malformed"), "{err}");
    }

    #[test]
    fn the_textfile_is_replaced_whole_and_readable_by_the_collector() {
        let dir = tempfile::tempdir().unwrap();
        let text = render(&Scrape {
            processes: vec![demo()],
        })
        .unwrap();
        let path = write_textfile(dir.path(), "old\n").unwrap();
        assert_eq!(path, dir.path().join("lprobe.prom"));
        write_textfile(dir.path(), &text).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["lprobe.prom"], "no temporary file is left behind");
    }

    #[test]
    fn textfile_options_parse_and_every_needs_textfile() {
        use crate::cli::{parse, Command};
        let (cli, _) = parse(["lprobe", "exporter", "--textfile", "/d", "--every", "15s"]).unwrap();
        let Command::Exporter(a) = cli.command else {
            panic!("{:?}", cli.command)
        };
        assert_eq!(a.textfile.as_deref(), Some(Path::new("/d")));
        assert_eq!(a.every.as_deref(), Some("15s"));
        assert_eq!(a.listen, "127.0.0.1:9464");
        assert!(parse(["lprobe", "exporter", "--every", "15s"]).is_err());
        assert!(parse(["lprobe", "exporter", "--textfile", "/d", "--listen", ":1"]).is_err());
    }
}
