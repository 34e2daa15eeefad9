//! Armed probes: the `arm` argument language, each probe's state and limits, and what a hit does.
//!
//! A probe is armed at one or more sites (a `FILE:LINE` or a `fn:` pattern). When an armed site
//! is passed, [`hit`] runs every probe armed there on the application thread: it checks the
//! probe's limits and condition, formats what the action needs, and hands a record to the sink.
//! Symbolizing stacks and writing happen on the sink's thread.

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::hot::capture::{Body, Captured};
use crate::hot::queue::{self, Record};
use crate::hot::timing::Hist;
use crate::lang::expr::Expr;
use crate::lang::json;
use crate::lang::template::Template;
use crate::lang::value::{Limits, Value};
use crate::{Table, Val};

/// What to do at each hit.
#[derive(Debug, Default)]
pub struct Actions {
    pub log: Option<Arc<Template>>,
    pub snapshot: bool,
    pub count: bool,
    /// Time from function entry to return (entry sites only).
    pub duration: bool,
    /// Time from passing this probe's location to passing this second location, per thread.
    pub tictoc: Option<String>,
    /// `--on-panic [--last N]`: keep each thread's last N hits' values in its ring, and write
    /// one `panic` record when a thread panics (`flight`).
    pub on_panic: Option<usize>,
    /// `--histogram EXPR` / `--gauge EXPR`: the number a path reaches at each hit, summarised.
    pub metric: Option<(crate::hot::metric::Kind, crate::lang::path::Path)>,
    /// `--snapshot --frames N`: the snapshot also shows the N innermost instrumented callers
    /// with their arguments (`frames`: the probe's sites past `split` push them).
    pub frames: Option<usize>,
    /// `--frame-locals`: each frame also shows the locals captured at the last line site its
    /// function passed (the call's statement); line sites of those functions are armed too.
    pub frame_locals: bool,
}

/// A parsed `arm` request: `LOCATION [--log T] [--snapshot] [--count] [--every D] [--if E]
/// [--max-hits N] [--ttl D] [--rate N/s]`.
#[derive(Debug)]
pub struct Spec {
    pub location: String,
    pub actions: Actions,
    pub cond: Option<Expr>,
    pub every: Duration,
    pub max_hits: Option<u64>,
    pub ttl: Duration,
    /// Records per second (logs and snapshots; counting is never rate-limited).
    pub rate: u64,
    /// The arguments as given, re-joined: identifies control-file probes across re-reads.
    /// Capture limits for this probe's values.
    pub limits: Limits,
    /// The arguments as given, re-joined: identifies control-file probes across re-reads.
    pub text: String,
}

/// Capture limits from the environment (`LPROBE_MAX_STRING`, `LPROBE_MAX_ITEMS`,
/// `LPROBE_MAX_DEPTH`), else the defaults.
pub fn env_limits() -> Limits {
    limits_from(|k| std::env::var(k).ok())
}

/// [`env_limits`] from any source of variables (the fuzz target's: setting the real
/// environment millions of times grows the process, as glibc never frees a replaced value).
pub fn limits_from(var: impl Fn(&str) -> Option<String>) -> Limits {
    let get = |k: &str, d: usize| {
        var(k)
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|n| *n > 0)
            .unwrap_or(d)
    };
    let d = Limits::default();
    Limits {
        max_str: get("LPROBE_MAX_STRING", d.max_str),
        max_items: get("LPROBE_MAX_ITEMS", d.max_items),
        max_depth: get("LPROBE_MAX_DEPTH", d.max_depth),
    }
}

fn positive(flag: &str, v: &str) -> Result<u64, String> {
    v.parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{flag}: '{v}' is not a positive number"))
}

/// A positive number of at most `max` (`what`: what the limit counts, for the error).
fn at_most(flag: &str, v: &str, max: usize, what: &str) -> Result<usize, String> {
    let n = positive(flag, v)?;
    match usize::try_from(n) {
        Ok(n) if n <= max => Ok(n),
        _ => Err(format!("{flag}: {n} is over the {max} {what}")),
    }
}

const OPTIONS: &str =
    "--log TEMPLATE, --snapshot, --count, --duration, --tictoc LOCATION, --on-panic, --last N, --frames N, --frame-locals, --histogram EXPR, --gauge EXPR, --every DURATION, --if EXPR, --max-hits N, --ttl DURATION, --rate N/s, --max-string N, --max-items N, --max-depth N";

/// Parses the arguments of `lprobe arm` (also one control-file line, already split).
pub fn parse_spec(words: &[String]) -> Result<Spec, String> {
    // `--on-panic [fn:PATTERN]`: the location may follow the flag, and defaults to every
    // function.
    let on_panic_first: Vec<String>;
    let args = match words {
        [flag, rest @ ..] if flag == "--on-panic" => {
            on_panic_first = match rest {
                [loc, more @ ..] if !loc.starts_with("--") => [loc.clone(), flag.clone()]
                    .into_iter()
                    .chain(more.iter().cloned())
                    .collect(),
                _ => std::iter::once("fn:*".to_string())
                    .chain(words.iter().cloned())
                    .collect(),
            };
            &on_panic_first[..]
        }
        _ => words,
    };
    let mut it = args.iter();
    let location = match it.next() {
        Some(l) if !l.starts_with("--") => l.clone(),
        Some(l) => {
            return Err(format!(
                "expected a location first, got '{l}' (e.g. src/main.rs:42 or 'fn:my_crate::*')"
            ))
        }
        None => return Err("missing location (e.g. src/main.rs:42 or 'fn:my_crate::*')".into()),
    };
    let mut actions = Actions::default();
    let mut limits = env_limits();
    let (mut cond, mut every, mut max_hits, mut ttl, mut rate) = (None, None, None, None, None);
    let mut last = None;
    while let Some(flag) = it.next() {
        let mut value = |what: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value ({what})"))
        };
        match flag.as_str() {
            "--log" => {
                let t = value("a template like \"user={user.id}\"")?;
                actions.log = Some(Arc::new(
                    crate::lang::template::parse(&t).map_err(|e| format!("--log: {e}"))?,
                ));
            }
            "--snapshot" => actions.snapshot = true,
            "--count" => actions.count = true,
            "--duration" => actions.duration = true,
            "--tictoc" => actions.tictoc = Some(value("the location where timing ends")?),
            "--on-panic" => actions.on_panic = Some(crate::hot::flight::DEFAULT_LAST),
            "--histogram" | "--gauge" => {
                let e = value("a numeric path like order.items.len()")?;
                let path = crate::lang::path::parse(&e).map_err(|e| format!("{flag}: {e}"))?;
                if actions.metric.is_some() {
                    return Err("one --histogram or --gauge per probe: arm another probe for a second value".into());
                }
                let kind = if flag == "--gauge" {
                    crate::hot::metric::Kind::Gauge
                } else {
                    crate::hot::metric::Kind::Histogram
                };
                actions.metric = Some((kind, path));
            }
            "--last" => {
                let max = crate::hot::flight::MAX_LAST;
                let n = at_most(
                    flag,
                    &value("a number of sites")?,
                    max,
                    "sites a thread's ring keeps",
                )?;
                last = Some(n);
            }
            "--frames" => {
                let max = crate::hot::frames::MAX_FRAMES;
                let n = at_most(
                    flag,
                    &value("a number of callers")?,
                    max,
                    "callers a snapshot shows",
                )?;
                actions.frames = Some(n);
            }
            "--frame-locals" => actions.frame_locals = true,
            "--max-string" => {
                limits.max_str = positive(flag, &value("a number of characters")?)? as usize
            }
            "--max-items" => {
                limits.max_items = positive(flag, &value("a number of items")?)? as usize
            }
            "--max-depth" => {
                limits.max_depth = positive(flag, &value("a nesting depth")?)? as usize
            }
            "--every" => every = Some(parse_duration(&value("e.g. 10s")?, "--every")?),
            "--ttl" => ttl = Some(parse_duration(&value("e.g. 1h")?, "--ttl")?),
            "--if" => {
                let e = value("a condition like \"order.total > 100\"")?;
                cond = Some(crate::lang::expr::parse(&e).map_err(|e| format!("--if: {e}"))?);
            }
            "--max-hits" => max_hits = Some(positive(flag, &value("a positive number")?)?),
            "--rate" => {
                let v = value("e.g. 10/s")?;
                let n = v.strip_suffix("/s").unwrap_or(&v);
                rate = Some(
                    n.parse::<u64>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| format!("--rate: '{v}' is not a rate like 10/s"))?,
                );
            }
            other => return Err(format!("unknown option '{other}' (expected {OPTIONS})")),
        }
    }
    check_actions(&mut actions, last)?;
    let max_hits = max_hits.or(
        if actions.snapshot && actions.log.is_none() && !actions.count {
            Some(1)
        } else {
            None
        },
    );
    let rate = rate.unwrap_or(if actions.snapshot || actions.on_panic.is_some() {
        10
    } else {
        100
    });
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    Ok(Spec {
        location,
        actions,
        cond,
        every: every.unwrap_or(Duration::from_secs(10)),
        max_hits,
        ttl: ttl.unwrap_or(Duration::from_secs(3600)),
        rate,
        limits,
        text: crate::lang::args::join(&words),
    })
}

/// Refuses actions that cannot go together in one probe, applies `--last`, and makes a probe
/// with no action a snapshot.
fn check_actions(actions: &mut Actions, last: Option<usize>) -> Result<(), String> {
    let timing = actions.duration || actions.tictoc.is_some();
    if timing && (actions.log.is_some() || actions.snapshot || actions.count) {
        return Err("--duration and --tictoc cannot be combined with --log, --snapshot or --count: arm them as separate probes".into());
    }
    if actions.duration && actions.tictoc.is_some() {
        return Err("--duration and --tictoc are different probes: choose one".into());
    }
    if actions.on_panic.is_some()
        && (timing || actions.log.is_some() || actions.snapshot || actions.count)
    {
        return Err("--on-panic records values for a panic only: arm --log, --snapshot, --count, --duration or --tictoc as a separate probe".into());
    }
    if actions.metric.is_some()
        && (timing
            || actions.log.is_some()
            || actions.snapshot
            || actions.count
            || actions.on_panic.is_some())
    {
        return Err("--histogram and --gauge summarise one value: arm --log, --snapshot, --count, --duration, --tictoc or --on-panic as a separate probe".into());
    }
    match (last, &mut actions.on_panic) {
        (Some(n), Some(keep)) => *keep = n,
        (Some(_), None) => {
            return Err("--last N goes with --on-panic (the sites a panic record shows)".into())
        }
        _ => {}
    }
    if actions.log.is_none()
        && !actions.count
        && !timing
        && actions.on_panic.is_none()
        && actions.metric.is_none()
    {
        actions.snapshot = true;
    }
    if actions.frames.is_some() && (!actions.snapshot || actions.log.is_some() || actions.count) {
        return Err("--frames N goes with --snapshot alone (the callers of a snapshot)".into());
    }
    if actions.frame_locals && actions.frames.is_none() {
        return Err("--frame-locals goes with --frames N (the callers' locals)".into());
    }
    Ok(())
}

fn parse_duration(s: &str, flag: &str) -> Result<Duration, String> {
    crate::lang::args::parse_duration(s).map_err(|e| format!("{flag}: {e}"))
}

impl Spec {
    /// Names the template and condition read, for checking against the sites' captures.
    pub fn roots(&self) -> Vec<&str> {
        let mut names = Vec::new();
        if let Some(t) = &self.actions.log {
            names.extend(t.roots());
        }
        if let Some(c) = &self.cond {
            names.extend(c.roots());
        }
        if let Some((_, p)) = &self.actions.metric {
            names.push(p.root.as_str());
        }
        crate::small::sort_unique(&mut names);
        names
    }

    pub fn action_names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.actions.log.is_some() {
            v.push("log");
        }
        if self.actions.snapshot {
            v.push("snapshot");
        }
        if self.actions.count {
            v.push("count");
        }
        if self.actions.duration {
            v.push("duration");
        }
        if self.actions.tictoc.is_some() {
            v.push("tictoc");
        }
        if self.actions.on_panic.is_some() {
            v.push("on-panic");
        }
        if let Some((kind, _)) = &self.actions.metric {
            v.push(kind.name());
        }
        v
    }
}

/// Where a probe came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Socket,
    Control,
}

const ARMED: u8 = 0;
const EXHAUSTED: u8 = 1;
const EXPIRED: u8 = 2;
const DISARMED: u8 = 3;
/// Its hits took more than the time budget ([`time_budget_ns`]) in one second.
const OVER_BUDGET: u8 = 4;

/// Default of `LPROBE_PROBE_BUDGET_MS`: a probe's hits may take this much of each second of
/// the application threads' time (all threads together) before it is disabled, as Rookout
/// disables a breakpoint that costs too much.
const DEFAULT_TIME_BUDGET_MS: u64 = 50;

/// The time budget per probe and second, in nanoseconds (`LPROBE_PROBE_BUDGET_MS`: a number
/// of milliseconds, `off` or `0` for none; anything else is reported on stderr and replaced
/// by the default).
#[inline]
pub(crate) fn time_budget_ns() -> u64 {
    static B: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *B.get_or_init(|| parse_time_budget(std::env::var("LPROBE_PROBE_BUDGET_MS").ok().as_deref()))
}

fn parse_time_budget(v: Option<&str>) -> u64 {
    let ms = match v.map(str::trim) {
        None | Some("") => DEFAULT_TIME_BUDGET_MS,
        Some("off") => 0,
        Some(v) => match v.parse::<u64>() {
            Ok(n) if n <= 1000 => n,
            _ => {
                // Never `eprintln!`: it panics when stderr is closed.
                let _ = writeln!(
                    std::io::stderr(),
                    "lprobe: LPROBE_PROBE_BUDGET_MS='{v}' is not a number of milliseconds from 0 to 1000 or 'off': using {DEFAULT_TIME_BUDGET_MS}"
                );
                DEFAULT_TIME_BUDGET_MS
            }
        },
    };
    ms * 1_000_000
}

/// An armed probe and its counters.
#[derive(Debug)]
pub struct Probe {
    pub id: Arc<str>,
    pub spec: Spec,
    pub sites: Vec<(&'static Table, u32)>,
    pub origin: Origin,
    created: Instant,
    state: AtomicU8,
    hits: AtomicU64,
    /// A plain counter (`--count`, no condition or hit limit): it counts with its sites'
    /// shared counters (`Table::counts`, less `base`), so a hit costs one atomic add.
    count_only: bool,
    /// The condition may take the quick path ([`Expr::quick`]): none of its names is secret
    /// (the quick path reads values in place, without the redaction a capture applies).
    quick_cond: bool,
    /// Per site, bit `i` set when capture `i` has a secret name (decided at arm time, so a
    /// hit does not match names against the redaction patterns).
    secret: Vec<u64>,
    /// For `count_only`: each site's shared counter when the probe was armed.
    base: Vec<u64>,
    /// Records written and dropped (shared with the flight recorder, whose `panic` records
    /// are this probe's).
    pub emitted: Arc<AtomicU64>,
    pub dropped: Arc<AtomicU64>,
    pub errors: AtomicU64,
    error_reported: AtomicBool,
    /// Its final counts were reported ([`report_final`]): it reports no more.
    finished: AtomicBool,
    /// Hits per site, for `--count`.
    pub counts: Vec<AtomicU64>,
    /// Counts already reported, and when (ticker thread only).
    pub reported: Mutex<(Vec<u64>, Instant)>,
    rate_window: AtomicU64,
    rate_used: AtomicU64,
    /// The second (of [`crate::hot::timing::now_ns`], plus one) `time_used` counts, and the
    /// nanoseconds its hits took in it (see [`time_budget_ns`]).
    time_window: AtomicU64,
    time_used: AtomicU64,
    /// What the last measured hit took (see [`measure_this_hit`]).
    last_hit_ns: AtomicU64,
    /// A measured hit took [`SUSPECT_NS`] or more: the next hits are verified (see
    /// [`Probe::fire`]) until one takes less.
    verify: AtomicBool,
    /// Conditions, logs and snapshots run user code (`Debug`): their hits are timed.
    timed_hits: bool,
    /// Durations, for `--duration` and `--tictoc` probes.
    pub hist: Option<Hist>,
    /// Durations already reported (ticker thread only).
    reported_hist: AtomicU64,
    /// For tictoc: `sites[..split]` start the timing, the rest end it. For `--frames`: the
    /// rest are every entry site that can be a frame, whose hits push it.
    pub split: usize,
    /// The last limit this probe ran into, for `status`.
    limit: AtomicU8,
    /// Names the log template reads (only those are captured for a log record); `None`
    /// for a template that logs every capture.
    log_roots: Option<Vec<String>>,
    /// Per site, bit `i` set when capture `i` is one of `log_roots` (decided at arm time).
    log_masks: Vec<u64>,
    /// Hits each site may record (the `LPROBE_ARM_ALL` probes, one per table, limit each site
    /// rather than the probe); a spent site leaves the armed map at the next rebuild.
    per_site_max: Option<u64>,
    /// Hits per site, when `per_site_max` is set (else empty).
    site_hits: Vec<AtomicU64>,
    /// For `--on-panic`: the probe's side of the flight recorder.
    recorder: Option<Arc<crate::hot::flight::Recorder>>,
    /// For `--histogram`/`--gauge`: the values' summary, and its count when last reported.
    pub metric: Option<crate::hot::metric::Metric>,
    reported_metric: AtomicU64,
}

/// A measured hit at least this long (200 µs: a hundred log hits) is not trusted alone
/// against the time budget (see [`Probe::hit_took`]).
const SUSPECT_NS: u64 = 200_000;

/// Limits a probe can run into, as `status` names them.
const LIMITS: [&str; 7] = ["", "rate", "budget", "queue", "max-hits", "stack", "time"];
pub(crate) use crate::hot::queue::{LIMIT_BUDGET, LIMIT_QUEUE, LIMIT_RATE};
const LIMIT_MAX_HITS: u8 = 4;
/// Too little stack left on the thread to run `Debug` impls safely.
const LIMIT_STACK: u8 = 5;
/// The probe's hits took over the time budget.
const LIMIT_TIME: u8 = 6;

/// Set when a probe leaves the armed state on an application thread; the control thread
/// then rebuilds the flags so its sites go dormant again.
pub(crate) static NEEDS_REBUILD: AtomicBool = AtomicBool::new(false);

impl Probe {
    pub(crate) fn new(
        id: Arc<str>,
        spec: Spec,
        sites: Vec<(&'static Table, u32)>,
        origin: Origin,
    ) -> Self {
        Self::with_split(id, spec, sites, origin, usize::MAX)
    }

    /// A probe whose first `split` sites start a tictoc and the rest end it.
    pub(crate) fn with_split(
        id: Arc<str>,
        spec: Spec,
        sites: Vec<(&'static Table, u32)>,
        origin: Origin,
        split: usize,
    ) -> Self {
        let n = sites.len();
        let timed_hits = spec.cond.is_some()
            || spec.actions.log.is_some()
            || spec.actions.snapshot
            || spec.actions.on_panic.is_some()
            || spec.actions.metric.is_some();
        let timing = spec.actions.duration || spec.actions.tictoc.is_some();
        let count_only = spec.actions.count
            && spec.actions.log.is_none()
            && !spec.actions.snapshot
            && spec.cond.is_none()
            && spec.max_hits.is_none();
        let quick_cond = spec
            .cond
            .as_ref()
            .is_some_and(|c| !c.roots().iter().any(|r| crate::hot::capture::is_secret(r)));
        let secret = if timed_hits {
            name_masks(&sites, crate::hot::capture::is_secret)
        } else {
            Vec::new()
        };
        let base = if count_only {
            sites.iter().map(|(t, id)| site_count(t, *id)).collect()
        } else {
            Vec::new()
        };
        let log_roots = spec.actions.log.as_ref().map_or(Some(Vec::new()), |t| {
            (!t.is_every_capture()).then(|| t.roots().into_iter().map(str::to_owned).collect())
        });
        let log_masks = match &log_roots {
            Some(roots) if spec.actions.log.is_some() => {
                name_masks(&sites, |n| roots.iter().any(|r| r == n))
            }
            _ => Vec::new(),
        };
        let (emitted, dropped) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let metric = spec
            .actions
            .metric
            .as_ref()
            .map(|(kind, _)| crate::hot::metric::Metric::new(*kind));
        let recorder = spec.actions.on_panic.map(|last| {
            crate::hot::flight::Recorder::new(
                id.clone(),
                last,
                spec.limits,
                spec.rate,
                emitted.clone(),
                dropped.clone(),
            )
        });
        Probe {
            id,
            spec,
            sites,
            origin,
            created: Instant::now(),
            state: AtomicU8::new(ARMED),
            hits: AtomicU64::new(0),
            count_only,
            quick_cond,
            secret,
            base,
            emitted,
            dropped,
            errors: AtomicU64::new(0),
            error_reported: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            counts: (0..n).map(|_| AtomicU64::new(0)).collect(),
            reported: Mutex::new((vec![0; n], Instant::now())),
            rate_window: AtomicU64::new(0),
            rate_used: AtomicU64::new(0),
            time_window: AtomicU64::new(0),
            time_used: AtomicU64::new(0),
            last_hit_ns: AtomicU64::new(0),
            verify: AtomicBool::new(false),
            timed_hits,
            hist: timing.then(Hist::default),
            reported_hist: AtomicU64::new(0),
            split: split.min(n),
            limit: AtomicU8::new(0),
            log_roots,
            log_masks,
            per_site_max: None,
            site_hits: Vec::new(),
            recorder,
            metric,
            reported_metric: AtomicU64::new(0),
        }
    }

    /// Limits every site to `max` hits of its own (the probe stays armed at the others).
    pub(crate) fn with_per_site_max(mut self, max: u64) -> Self {
        self.per_site_max = Some(max);
        self.site_hits = (0..self.sites.len()).map(|_| AtomicU64::new(0)).collect();
        self
    }

    /// Whether the `i`-th site has used up its own hits (see [`Probe::with_per_site_max`]).
    /// The sites the probe was armed at (without a `--frames` probe's callers' sites).
    pub(crate) fn own_sites(&self) -> &[(&'static Table, u32)] {
        match self.spec.actions.frames {
            Some(_) => self.sites.get(..self.split).unwrap_or(&self.sites),
            None => &self.sites,
        }
    }

    pub(crate) fn site_spent(&self, i: usize) -> bool {
        match (self.per_site_max, self.site_hits.get(i)) {
            (Some(max), Some(h)) => h.load(Ordering::Relaxed) >= max,
            _ => false,
        }
    }

    /// Hits so far (conditions that held, and hits past a limit).
    pub fn hits(&self) -> u64 {
        if !self.count_only {
            return self.hits.load(Ordering::Relaxed);
        }
        if !self.is_live() {
            // Its final counts were reported when it stopped (its sites may count on).
            return self.reported.lock().map_or(0, |r| r.0.iter().sum());
        }
        (0..self.sites.len()).map(|i| self.count_at(i)).sum()
    }

    /// Whether this probe is a plain counter (see `count_only`).
    #[inline]
    pub(crate) fn is_count_only(&self) -> bool {
        self.count_only
    }

    /// Hits counted at each of the probe's sites (in the order of `sites`), for `--count`.
    pub(crate) fn site_counts(&self) -> Vec<u64> {
        (0..self.sites.len()).map(|i| self.count_at(i)).collect()
    }

    /// Hits counted at the probe's `i`-th site.
    fn count_at(&self, i: usize) -> u64 {
        match (self.sites.get(i), self.base.get(i)) {
            (Some((t, id)), Some(b)) => site_count(t, *id).wrapping_sub(*b),
            (Some(_), None) => self.counts.get(i).map_or(0, |c| c.load(Ordering::Relaxed)),
            _ => 0,
        }
    }

    /// The last limit the probe ran into, if any.
    pub fn limit_name(&self) -> &'static str {
        LIMITS
            .get(self.limit.load(Ordering::Relaxed) as usize)
            .copied()
            .unwrap_or("")
    }

    #[inline]
    pub(crate) fn note_limit(&self, which: u8) {
        self.limit.store(which, Ordering::Relaxed);
    }

    #[inline]
    pub fn is_live(&self) -> bool {
        self.state.load(Ordering::Relaxed) == ARMED
    }

    pub fn state_name(&self) -> &'static str {
        match self.state.load(Ordering::Relaxed) {
            ARMED => "armed",
            EXHAUSTED => "exhausted",
            EXPIRED => "expired",
            OVER_BUDGET => "over-budget",
            _ => "disarmed",
        }
    }

    pub(crate) fn disarm(&self) {
        self.state.store(DISARMED, Ordering::Relaxed);
        if let Some(r) = &self.recorder {
            r.stop();
        }
    }

    /// Leaves the armed state for `state`; true if this call did.
    #[inline]
    fn leave(&self, state: u8) -> bool {
        let left = self
            .state
            .compare_exchange(ARMED, state, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok();
        if left {
            NEEDS_REBUILD.store(true, Ordering::Relaxed);
            if let Some(r) = &self.recorder {
                r.stop();
            }
        }
        left
    }

    /// Adds a hit's time (`start`..`end`, [`crate::hot::timing::now_ns`]) to this second's; over
    /// the budget, the probe is disabled (`over-budget`) with an error record saying why.
    /// True if it was disabled now.
    #[inline]
    fn charge(&self, table: &'static Table, id: u32, start: u64, end: u64, budget: u64) -> bool {
        let second = end / 1_000_000_000 + 1;
        if self.time_window.load(Ordering::Relaxed) != second
            && self.time_window.swap(second, Ordering::Relaxed) != second
        {
            self.time_used.store(0, Ordering::Relaxed);
        }
        let took = end.saturating_sub(start);
        let used = self.time_used.fetch_add(took, Ordering::Relaxed) + took;
        if used <= budget || !self.leave(OVER_BUDGET) {
            return false;
        }
        // Tenths of a millisecond in integers: `{:.1}` of a float would link the exact float
        // formatting (about 7 KB) into every instrumented program for this one message.
        let tenths = used.saturating_add(50_000) / 100_000;
        self.emit_error(
            table,
            id,
            &format!(
                "probe disabled: its hits took {}.{} ms of the application's time within one second, over the budget of {} ms per second (LPROBE_PROBE_BUDGET_MS); arm it again with a narrower --if, a lower --rate or smaller capture limits",
                tenths / 10,
                tenths % 10,
                budget / 1_000_000
            ),
        );
        // After the error record, whose own drop (a full queue) would name another limit.
        self.note_limit(LIMIT_TIME);
        true
    }

    /// Seconds of life left.
    pub fn ttl_left(&self) -> u64 {
        self.spec
            .ttl
            .saturating_sub(self.created.elapsed())
            .as_secs()
    }

    /// Expires the probe if its TTL has passed; true if it did now.
    pub(crate) fn check_ttl(&self) -> bool {
        if self.is_live() && self.created.elapsed() >= self.spec.ttl {
            self.leave(EXPIRED);
            return true;
        }
        false
    }

    /// The probe's summaries for `status`: `,"duration":{…}` (timing probes),
    /// `,"histogram":{…}` or `,"gauge":{…}` (value metrics, with `,"expr":…`).
    pub(crate) fn write_stats_json(&self, out: &mut String) {
        if let Some(h) = &self.hist {
            out.push_str(",\"duration\":");
            h.stats().write_json(out);
        }
        if let (Some(m), Some((kind, path))) = (&self.metric, &self.spec.actions.metric) {
            out.push_str(",\"expr\":");
            json::push_str(out, &path.to_string());
            let _ = write!(out, ",\"{}\":", kind.name());
            m.summary().write_json(*kind, out);
        }
    }

    /// Whether a log record at the probe's `idx`-th site takes capture `i` (`name`).
    #[inline]
    fn logs(&self, idx: usize, i: usize, name: &str) -> bool {
        match (&self.log_roots, self.log_masks.get(idx)) {
            (None, _) => true,
            (Some(_), Some(mask)) if i < 64 => mask >> i & 1 == 1,
            (Some(roots), _) => roots.iter().any(|r| r == name),
        }
    }

    /// Whether one more record fits in this second's rate.
    #[inline]
    fn take_rate(&self, now: u64) -> bool {
        let second = now / 1_000_000_000 + 1;
        // A plain load first: the read-modify-write only once per second.
        if self.rate_window.load(Ordering::Relaxed) != second
            && self.rate_window.swap(second, Ordering::Relaxed) != second
        {
            self.rate_used.store(0, Ordering::Relaxed);
        }
        self.rate_used.fetch_add(1, Ordering::Relaxed) < self.spec.rate
    }

    /// Runs the probe for one hit at its `idx`-th site. True if the probe wants this call timed
    /// (a live `--duration` probe whose condition held).
    #[inline]
    pub(crate) fn fire(
        &self,
        table: &'static Table,
        id: u32,
        idx: usize,
        vals: &[Val<'_>],
        low_stack: bool,
    ) -> bool {
        // TTLs are enforced by the control thread (within a tick): no clock read per hit.
        if !self.is_live() {
            return false;
        }
        if self.count_only {
            // Counted by `hit` in the site's shared counter.
            return false;
        }
        let Some(site) = table.sites.get(id as usize) else {
            return false;
        };
        let key = self as *const Probe as usize;
        if self.spec.actions.frames.is_some() && idx >= self.split {
            // A call that may be a snapshot's caller: pushed (its values formatted), and
            // timed, so that its end pops it.
            if low_stack {
                return false;
            }
            let secret = self.secret.get(idx).copied().unwrap_or(0);
            if site.kind == crate::SiteKind::Line {
                crate::hot::frames::at_line(table, site, vals, secret);
                return false;
            }
            return crate::hot::frames::push(table, id, site, vals, secret);
        }
        if self.spec.actions.tictoc.is_some() && idx >= self.split {
            if let (Some(ns), Some(h)) = (crate::hot::timing::toc(key), &self.hist) {
                h.record(ns);
            }
            return false;
        }
        // A condition over whole primitives is decided here, without formatting or allocating.
        let mut cond_held = false;
        if let (Some(cond), true) = (&self.spec.cond, self.quick_cond) {
            let load = |name: &str| {
                let i = site.names().position(name)?;
                crate::hot::capture::scalar_of(vals.get(i)?)
            };
            match cond.quick(&load) {
                Some(false) => return false,
                Some(true) => cond_held = true,
                None => {}
            }
        }
        // From here on a condition, log or snapshot may run user code (`Debug`): such hits are
        // timed against the probe's time budget (a condition decided in place above is not).
        // The start is read here when a condition still has to be evaluated (it may format
        // values); else it is the clock reading the record takes anyway (`start` stays 0 when
        // no record is made): a log hit pays one clock read for its budget, not two.
        let budget = if self.timed_hits { time_budget_ns() } else { 0 };
        let verify = budget != 0 && self.verify.load(Ordering::Relaxed);
        let before = if verify {
            crate::hot::timing::thread_usage()
        } else {
            None
        };
        let mut start = if budget != 0 && self.spec.cond.is_some() && !cond_held {
            crate::hot::timing::now_ns()
        } else {
            0
        };
        let timed = self.fire_values(table, id, idx, vals, low_stack, cond_held, &mut start);
        if budget != 0 && start != 0 {
            let took = self.hit_took(start, verify, before);
            self.charge(table, id, start, start.saturating_add(took), budget);
        }
        timed
    }

    /// What a hit that started at `start` is charged against the time budget. One hit in 8
    /// per thread (the first included) is measured; the others are charged what the probe's
    /// last measured hit took: a log hit reads no clock for its budget. A measured hit of
    /// [`SUSPECT_NS`] or more may have been preempted (on a loaded machine the scheduler can
    /// take the CPU for milliseconds in the middle of any hit), and charging that to it and
    /// to the 7 hits after it disabled busy probes that cost microseconds: it is charged what
    /// the last trusted hit took, and the probe's next hits are verified, every one: timed
    /// with the thread's CPU time and preemption count as well ([`timing::hit_cost`]), until
    /// one takes less. A probe whose hits are really that slow stays verified and pays for
    /// every hit exactly.
    ///
    /// [`timing::hit_cost`]: crate::hot::timing::hit_cost
    #[inline]
    fn hit_took(
        &self,
        start: u64,
        verify: bool,
        before: Option<crate::hot::timing::ThreadUsage>,
    ) -> u64 {
        self.hit_took_at(start, verify, before, crate::hot::timing::now_ns)
    }

    /// [`Probe::hit_took`] with the clock passed in (`now` is read only when the hit is
    /// measured), so that its decisions can be tested without depending on the scheduler.
    #[inline]
    fn hit_took_at(
        &self,
        start: u64,
        verify: bool,
        before: Option<crate::hot::timing::ThreadUsage>,
        now: impl Fn() -> u64,
    ) -> u64 {
        use crate::hot::timing;
        if verify {
            let wall = now().saturating_sub(start);
            let took = timing::hit_cost(wall, before, timing::thread_usage());
            if took < SUSPECT_NS {
                self.verify.store(false, Ordering::Relaxed);
            }
            self.last_hit_ns.store(took, Ordering::Relaxed);
            return took;
        }
        if !measure_this_hit() {
            return self.last_hit_ns.load(Ordering::Relaxed);
        }
        let took = now().saturating_sub(start);
        if took >= SUSPECT_NS {
            self.verify.store(true, Ordering::Relaxed);
            return self.last_hit_ns.load(Ordering::Relaxed);
        }
        self.last_hit_ns.store(took, Ordering::Relaxed);
        took
    }

    /// The rest of [`Probe::fire`], past a condition decided in place (`cond_held`). Sets
    /// `start`, when it is 0, to the time it reads for a record.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn fire_values(
        &self,
        table: &'static Table,
        id: u32,
        idx: usize,
        vals: &[Val<'_>],
        low_stack: bool,
        cond_held: bool,
        start: &mut u64,
    ) -> bool {
        let Some(site) = table.sites.get(id as usize) else {
            return false;
        };
        let key = self as *const Probe as usize;
        // Only conditions, logs and snapshots look at values (and run `Debug` impls, which
        // need stack): counters and timers do not pay for it.
        let needs_values = self.timed_hits;
        if needs_values && low_stack {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            queue::count_lost(queue::Lost::Stack, 1);
            self.note_limit(LIMIT_STACK);
            return false;
        }
        let secret = self.secret.get(idx).copied().unwrap_or(0);
        let hit = needs_values.then(|| Hit::new(site.names(), vals, secret));
        if let (Some(cond), Some(hit), false) = (&self.spec.cond, &hit, cond_held) {
            match cond.eval(&|name| hit.value(name)) {
                Ok(true) => {}
                Ok(false) => return false,
                Err(e) => {
                    self.report_error(table, id, &format!("condition failed: {e}"));
                    return false;
                }
            }
        }
        if let (Some(max), Some(h)) = (self.per_site_max, self.site_hits.get(idx)) {
            let n = h.fetch_add(1, Ordering::Relaxed) + 1;
            if n > max {
                return false;
            }
            if n == max {
                // This site is spent: the control thread takes it out of the armed map.
                NEEDS_REBUILD.store(true, Ordering::Relaxed);
            }
        }
        let n = self.hits.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(max) = self.spec.max_hits {
            if n > max {
                self.note_limit(LIMIT_MAX_HITS);
                self.leave(EXHAUSTED);
                return false;
            }
        }
        if let (Some((_, path)), Some(m), Some(hit)) =
            (&self.spec.actions.metric, &self.metric, &hit)
        {
            match self.metric_value(path, site, idx, hit, start) {
                Ok(x) => m.record(x),
                Err(e) => self.report_error(table, id, &e),
            }
            return false;
        }
        if let Some(rec) = &self.recorder {
            let now = crate::hot::timing::now_ns();
            if *start == 0 {
                *start = now;
            }
            crate::hot::flight::record(rec, site, vals, secret, now);
            return false;
        }
        if self.spec.actions.tictoc.is_some() {
            crate::hot::timing::tic(key);
            return false;
        }
        if self.spec.actions.duration {
            return true;
        }
        if self.spec.actions.count {
            if let Some(c) = self.counts.get(idx) {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        if let Some(hit) = hit
            .as_ref()
            .filter(|_| self.spec.actions.log.is_some() || self.spec.actions.snapshot)
        {
            let now = crate::hot::timing::now_ns();
            if queue::budget_spent(now) {
                // Spent for this second: drop before doing any work.
                self.dropped.fetch_add(1, Ordering::Relaxed);
                queue::count_lost(queue::Lost::Budget, 1);
                self.note_limit(LIMIT_BUDGET);
            } else if !self.take_rate(now) {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                queue::count_lost(queue::Lost::Rate, 1);
                self.note_limit(LIMIT_RATE);
            } else if queue::refuse_full() {
                // Both records of a log-and-snapshot probe would have been refused
                // (`refuse_full` counted one).
                let n = u64::from(self.spec.actions.log.is_some())
                    + u64::from(self.spec.actions.snapshot);
                self.dropped.fetch_add(n, Ordering::Relaxed);
                if n > 1 {
                    queue::count_lost(queue::Lost::Queue, n - 1);
                }
                self.note_limit(LIMIT_QUEUE);
            } else {
                // Only a hit that makes a record is charged to the time budget from here: one
                // dropped by rate, budget or a full queue did almost nothing, and charging it
                // the last measured hit (see `fire`) disabled a busy probe over its rate
                // within a second on a loaded machine (the soak found it).
                if *start == 0 {
                    *start = now;
                }
                if let Some(t) = &self.spec.actions.log {
                    let mut r = self.record(table, id, "log", now);
                    r.body = Body::Log {
                        template: t.clone(),
                    };
                    hit.take(
                        |i, name| self.logs(idx, i, name),
                        self.spec.actions.snapshot,
                        &mut r.vals,
                    );
                    self.send(r);
                }
                if self.spec.actions.snapshot {
                    let mut r = self.record(table, id, "snapshot", now);
                    r.body = Body::Vars {
                        limits: self.spec.limits,
                    };
                    hit.take(|_, _| true, false, &mut r.vals);
                    r.stack = Some((crate::hot::stack::capture(), site.func()));
                    if let Some(n) = self.spec.actions.frames {
                        r.frames = Some(Box::new(crate::hot::frames::copy(table, site, n)));
                    }
                    self.send(r);
                }
            }
        }
        if self.spec.max_hits == Some(n) {
            self.note_limit(LIMIT_MAX_HITS);
            self.leave(EXHAUSTED);
        }
        false
    }

    /// Counts an error of this probe at a hit, and writes it as one `error` record, the first
    /// time only (the probe stays armed).
    fn report_error(&self, table: &'static Table, id: u32, what: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if !self.error_reported.swap(true, Ordering::Relaxed) {
            self.emit_error(
                table,
                id,
                &format!("{what} (reported once; the probe stays armed)"),
            );
        }
    }

    /// The number `path` reaches at this hit: read in place when it is a captured primitive
    /// (or a string's `.len()`), else through the value's `Debug` text (the hit is then
    /// charged to the time budget from `start`).
    fn metric_value(
        &self,
        path: &crate::lang::path::Path,
        site: &'static crate::Site,
        idx: usize,
        hit: &Hit<'_, '_>,
        start: &mut u64,
    ) -> Result<f64, String> {
        use crate::hot::capture::Scalar;
        use crate::lang::path::Step;
        let flag = match self.spec.actions.metric {
            Some((kind, _)) => kind.name(),
            None => "metric",
        };
        let i = site.names().position(&path.root);
        let secret = match i {
            Some(i) if i < 64 => self.secret.get(idx).copied().unwrap_or(0) >> i & 1 == 1,
            _ => crate::hot::capture::is_secret(&path.root),
        };
        if let (Some(i), false) = (i, secret) {
            let scalar = hit.vals.get(i).and_then(crate::hot::capture::scalar_of);
            match (scalar, path.steps.as_slice()) {
                (Some(Scalar::Int(n)), []) => return Ok(n as f64),
                (Some(Scalar::Float(f)), []) if !f.is_nan() => return Ok(f),
                (Some(Scalar::Str(s)), [Step::Len]) => return Ok(s.len() as f64),
                _ => {}
            }
        }
        if *start == 0 {
            *start = crate::hot::timing::now_ns();
        }
        let root = hit.value(&path.root).ok_or_else(|| {
            format!(
                "--{flag} {path}: '{}' is not captured at {}:{}",
                path.root,
                site.path(),
                site.line
            )
        })?;
        let v = path
            .eval(&root)
            .map_err(|e| format!("--{flag} {path}: {e}"))?;
        match &*v {
            Value::Int(n) => Ok(*n as f64),
            Value::Float(f) if !f.is_nan() => Ok(*f),
            other => Err(format!(
                "--{flag} {path}: {} is not a number",
                crate::lang::path::a(other.kind())
            )),
        }
    }

    #[inline]
    fn send(&self, r: Box<Record>) {
        match queue::emit(r) {
            Ok(()) => {
                self.emitted.fetch_add(1, Ordering::Relaxed);
            }
            Err(limit) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                self.note_limit(limit);
            }
        }
    }

    /// Starts a record of `kind` at site `id`: every field but the kind-specific ones.
    /// (The output thread writes the fields; the application thread only takes references.)
    #[inline]
    pub(crate) fn record(
        &self,
        table: &'static Table,
        id: u32,
        kind: &'static str,
        ns: u64,
    ) -> Box<Record> {
        Record::new(
            self.id.clone(),
            Some(queue::Head {
                site: table.sites.get(id as usize),
                kind,
                thread: std::thread::current(),
            }),
            ns,
        )
    }

    pub(crate) fn emit_error(&self, table: &'static Table, id: u32, msg: &str) {
        let mut r = self.record(table, id, "error", crate::hot::timing::now_ns());
        r.json.push_str(",\"error\":");
        json::push_str(&mut r.json, msg);
        self.send(r);
    }
}

thread_local! {
    /// Timed hits on this thread, wrapping (see [`measure_this_hit`]).
    static TIMED_HITS: Cell<u8> = const { Cell::new(0) };
}

/// Whether this thread's timed hit is one whose time is measured for the time budget: the
/// first and then one in 8 (a clock read costs about a tenth of a log hit).
#[inline]
fn measure_this_hit() -> bool {
    TIMED_HITS
        .try_with(|c| {
            let n = c.get();
            c.set(n.wrapping_add(1));
            n % 8 == 0
        })
        .unwrap_or(true)
}

/// Per site, a bit mask of its first 64 captured names for which `pick` holds.
fn name_masks(sites: &[(&'static Table, u32)], pick: impl Fn(&str) -> bool) -> Vec<u64> {
    sites
        .iter()
        .map(|(t, id)| {
            let Some(site) = t.sites.get(*id as usize) else {
                return 0;
            };
            site.names()
                .iter()
                .take(64)
                .enumerate()
                .filter(|(_, n)| pick(n))
                .fold(0u64, |m, (i, _)| m | 1 << i)
        })
        .collect()
}

/// A site's shared pass counter (see `Table::counts`).
fn site_count(table: &Table, id: u32) -> u64 {
    table
        .counts
        .get(id as usize)
        .map_or(0, |c| c.load(Ordering::Relaxed))
}

/// One hit's captured values, formatted at most once each. The cache is only filled when a
/// second consumer will read a value (a condition and a log, or a log and a snapshot): a plain
/// log hit allocates nothing here.
struct Hit<'v, 'a> {
    names: crate::Names,
    vals: &'v [Val<'a>],
    /// Bit `i` set: capture `i` is secret (names past 64 are checked at the hit).
    secret: u64,
    cache: RefCell<Vec<Option<Captured>>>,
}

impl<'v, 'a> Hit<'v, 'a> {
    #[inline]
    fn new(names: crate::Names, vals: &'v [Val<'a>], secret: u64) -> Self {
        Hit {
            names,
            vals,
            secret,
            cache: RefCell::new(Vec::new()),
        }
    }

    #[inline]
    fn cached(&self, i: usize) -> Option<Captured> {
        self.cache.borrow().get(i).cloned().flatten()
    }

    #[inline]
    fn store(&self, i: usize, c: Captured) {
        let mut cache = self.cache.borrow_mut();
        if cache.len() <= i {
            cache.resize(i + 1, None);
        }
        if let Some(slot) = cache.get_mut(i) {
            *slot = Some(c);
        }
    }

    /// The capture at index `i`, taken from the cache, or formatted now (and cached when
    /// `keep`: another consumer of this hit will read it).
    #[inline]
    fn captured(&self, i: usize, name: &str, keep: bool) -> Option<Captured> {
        let val = self.vals.get(i)?;
        if let Some(c) = self.cached(i) {
            return Some(c);
        }
        let secret = match 1u64.checked_shl(i as u32) {
            Some(bit) if i < 64 => self.secret & bit != 0,
            _ => crate::hot::capture::is_secret(name),
        };
        // Formatting runs user code (`Debug`), so no borrow of the cache is held across it.
        let c = Captured::take(secret, val);
        if keep {
            self.store(i, c.clone());
        }
        Some(c)
    }

    /// A value by name, structured (for conditions, which are decided on the spot).
    #[inline]
    fn value(&self, name: &str) -> Option<Value> {
        let i = self.names.position(name)?;
        self.captured(i, name, true).map(|c| c.to_value())
    }

    /// Appends the captures `wanted(index, name)` selects to `out`, for the output thread;
    /// `keep` when another record of this hit will take them too.
    #[inline]
    fn take(
        &self,
        wanted: impl Fn(usize, &str) -> bool,
        keep: bool,
        out: &mut crate::hot::capture::Vals,
    ) {
        for (i, name) in self.names.iter().enumerate().take(self.vals.len()) {
            if wanted(i, name) {
                if let Some(c) = self.captured(i, name, keep) {
                    out.push((name, c));
                }
            }
        }
    }
}

/// Emits a probe's last `count` and `duration` records, once (when it stops: disarmed,
/// removed from the control file, expired, exhausted, or at exit).
pub(crate) fn report_final(p: &Probe) {
    if !p.finished.swap(true, Ordering::Relaxed) {
        report(p, true);
    }
}

/// Emits `count` records for probes whose `--every` interval has passed (ticker thread).
pub(crate) fn report_counts(p: &Probe, force: bool) {
    if !p.finished.load(Ordering::Relaxed) {
        report(p, force);
    }
}

fn report(p: &Probe, force: bool) {
    let Ok(mut rep) = p.reported.lock() else {
        return;
    };
    if !force && rep.1.elapsed() < p.spec.every {
        return;
    }
    rep.1 = Instant::now();
    if let Some(h) = &p.hist {
        let n = h.count();
        if n != p.reported_hist.swap(n, Ordering::Relaxed) {
            let stats = h.stats();
            if let Some((t, id)) = p.sites.first() {
                let mut r = p.record(t, *id, "duration", crate::hot::timing::now_ns());
                let _ = write!(r.json, ",\"ns\":{},\"duration\":", stats.p50);
                stats.write_json(&mut r.json);
                p.send(r);
            }
        }
    }
    if let (Some(m), Some((kind, path))) = (&p.metric, &p.spec.actions.metric) {
        let n = m.count();
        if n != p.reported_metric.swap(n, Ordering::Relaxed) {
            if let Some((t, id)) = p.sites.first() {
                let mut r = p.record(t, *id, kind.name(), crate::hot::timing::now_ns());
                r.json.push_str(",\"expr\":");
                json::push_str(&mut r.json, &path.to_string());
                let _ = write!(r.json, ",\"{}\":", kind.name());
                m.summary().write_json(*kind, &mut r.json);
                p.send(r);
            }
        }
    }
    if !p.spec.actions.count {
        return;
    }
    for (i, (t, id)) in p.sites.iter().enumerate() {
        let now = p.count_at(i);
        let before = rep.0.get(i).copied().unwrap_or(0);
        if now == before && !(force && now > 0) {
            continue;
        }
        if let Some(slot) = rep.0.get_mut(i) {
            *slot = now;
        }
        let mut r = p.record(t, *id, "count", crate::hot::timing::now_ns());
        let _ = write!(
            r.json,
            ",\"count\":{now},\"delta\":{}",
            now - before.min(now)
        );
        p.send(r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static T: Table = Table {
        package: "t",
        dir: "",
        flags: &[],
        fn_flags: &[],
        counts: &[],
        sites: crate::Sites::Rows(&[]),
        files: &[],
        skipped: crate::Skips::Rows(&[]),
    };

    fn probe(args: &str) -> Probe {
        let words: Vec<String> = args.split(' ').map(str::to_owned).collect();
        let spec = parse_spec(&words).expect("spec");
        Probe::new(Arc::from("p1"), spec, vec![(&T, 0)], Origin::Socket)
    }

    #[test]
    fn a_probe_over_its_time_budget_is_disabled_and_says_so() {
        let p = probe("src/main.rs:1 --log x");
        let ms = 1_000_000;
        let second = 7_000_000_000;
        // 49 ms in one second: still armed.
        for i in 0..49 {
            assert!(!p.charge(&T, 0, second + i * ms, second + (i + 1) * ms, 50 * ms));
        }
        assert_eq!(p.state_name(), "armed");
        // The next second starts afresh.
        let next = second + 1_000_000_000;
        for i in 0..49 {
            assert!(!p.charge(&T, 0, next + i * ms, next + (i + 1) * ms, 50 * ms));
        }
        assert_eq!(p.state_name(), "armed");
        // Over 50 ms within one second: disabled, once.
        assert!(p.charge(&T, 0, next + 49 * ms, next + 51 * ms, 50 * ms));
        assert!(!p.charge(&T, 0, next + 51 * ms, next + 53 * ms, 50 * ms));
        assert_eq!(p.state_name(), "over-budget");
        assert_eq!(p.limit_name(), "time");
        assert!(!p.is_live());
    }

    #[test]
    fn a_long_measured_hit_is_verified_before_it_is_charged() {
        // On a thread of its own, so that its first hit is a measured one. The clock is
        // passed in: a preemption of the test thread cannot change what it checks.
        std::thread::spawn(|| {
            let p = probe("src/main.rs:1 --log x");
            let now = 1_000_000_000_u64;
            let clock = || now;
            let ms = 1_000_000;
            // A short measured hit is trusted, and stands for the next 7.
            assert_eq!(p.hit_took_at(now - 10_000, false, None, clock), 10_000);
            assert_eq!(p.last_hit_ns.load(Ordering::Relaxed), 10_000);
            for _ in 0..7 {
                assert_eq!(p.hit_took_at(now - 5 * ms, false, None, clock), 10_000);
            }
            assert!(
                !p.verify.load(Ordering::Relaxed),
                "unmeasured hits raise no suspicion"
            );
            // A measured hit of 5 ms (preempted, or really slow) is charged what the last
            // trusted one took, and the probe's next hits are verified.
            assert_eq!(p.hit_took_at(now - 5 * ms, false, None, clock), 10_000);
            assert!(p.verify.load(Ordering::Relaxed));
            // A verified hit that really took 5 ms (not preempted) is charged 5 ms, and the
            // probe stays verified.
            assert_eq!(p.hit_took_at(now - 5 * ms, true, None, clock), 5 * ms);
            assert!(p.verify.load(Ordering::Relaxed));
            assert_eq!(p.last_hit_ns.load(Ordering::Relaxed), 5 * ms);
            // A short verified hit ends the verification.
            assert_eq!(p.hit_took_at(now - 3_000, true, None, clock), 3_000);
            assert!(!p.verify.load(Ordering::Relaxed));
        })
        .join()
        .expect("test thread");
    }

    #[test]
    fn frames_go_with_a_snapshot_alone_and_are_bounded() {
        let spec = |args: &str| {
            let words: Vec<String> = args.split(' ').map(str::to_owned).collect();
            parse_spec(&words)
        };
        let s = spec("src/main.rs:1 --frames 4 --frame-locals").expect("a snapshot by default");
        assert!(s.actions.snapshot && s.actions.frame_locals);
        assert_eq!(s.actions.frames, Some(4));
        assert_eq!(s.max_hits, Some(1));
        for bad in [
            "src/main.rs:1 --log x --frames 2",
            "src/main.rs:1 --count --frames 2",
            "src/main.rs:1 --snapshot --log x --frames 2",
            "src/main.rs:1 --frame-locals",
            "src/main.rs:1 --frames 33",
            "src/main.rs:1 --frames 0",
        ] {
            assert!(spec(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_time_budget_comes_from_the_environment_with_a_default() {
        assert_eq!(parse_time_budget(None), 50_000_000);
        assert_eq!(parse_time_budget(Some("20")), 20_000_000);
        assert_eq!(parse_time_budget(Some("off")), 0);
        assert_eq!(parse_time_budget(Some("0")), 0);
        assert_eq!(parse_time_budget(Some("lots")), 50_000_000);
        assert_eq!(parse_time_budget(Some("5000")), 50_000_000);
    }
}
