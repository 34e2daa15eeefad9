//! The output thread: takes records from a bounded queue, finishes them (stack symbolization),
//! writes them to `$LPROBE_OUTPUT` and to the sockets of `tail`/`watch` clients.
//!
//! **Invariant:** application threads only `try_send`: a full queue drops the record and
//! counts it, it never blocks. The queue holds at most `$LPROBE_QUEUE` records (default 4096).

use std::backtrace::Backtrace;
use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::capture::Body;
use crate::registry::DROPPED_TOTAL;

/// A record on its way out. The application thread stores what it must (the time, the
/// site, its thread, the values); the output thread writes the JSON: the timestamp, the
/// header (`pid`, `probe`, `site`, `fn`, `kind`, `thread`), `json`, the body, the stack.
pub(crate) struct Record {
    pub probe: Arc<str>,
    /// When it was made ([`crate::timing::now_ns`]).
    pub ns: u64,
    /// The probe's header fields, or `None` when `json` starts with its own.
    pub head: Option<Head>,
    /// More fields, each `,"name":value` (empty for most records: no allocation).
    pub json: String,
    /// The kind-specific part the output thread writes (message, values).
    pub body: Body,
    /// A stack to symbolize (`None` inside: it could not be captured without waiting), and
    /// the probed function's path (names the innermost frame).
    pub stack: Option<(Option<Backtrace>, &'static str)>,
}

/// Where and on which thread a probe's record was made.
pub(crate) struct Head {
    /// `None`: the site id was out of range (written as `null`).
    pub site: Option<&'static crate::Site>,
    pub kind: &'static str,
    pub thread: std::thread::Thread,
}

impl Record {
    /// A record of `probe` made at `ns` ([`crate::timing::now_ns`]).
    pub(crate) fn new(probe: Arc<str>, head: Option<Head>, ns: u64) -> Record {
        Record {
            probe,
            ns,
            head,
            json: String::new(),
            body: Body::None,
            stack: None,
        }
    }
}

/// Writes a probe record's header fields.
fn write_head(out: &mut String, probe: &str, h: &Head) {
    use crate::json::push_str;
    out.push_str(",\"probe\":");
    push_str(out, probe);
    out.push_str(",\"site\":");
    match h.site {
        Some(site) => {
            push_str(out, &format!("{}:{}", site.path, site.line));
            out.push_str(",\"fn\":");
            push_str(out, site.func);
        }
        None => out.push_str("null,\"fn\":null"),
    }
    out.push_str(",\"kind\":");
    push_str(out, h.kind);
    out.push_str(",\"thread\":");
    match h.thread.name() {
        Some(n) => push_str(out, n),
        None => push_str(out, &format!("{:?}", h.thread.id())),
    }
}

static QUEUE: OnceLock<SyncSender<Record>> = OnceLock::new();
/// Records queued and not yet written (lets exit wait for the queue to drain).
static PENDING: AtomicUsize = AtomicUsize::new(0);
/// Records dropped because the queue was full.
pub(crate) static QUEUE_DROPS: AtomicU64 = AtomicU64::new(0);

/// A client streaming records: every record (`tail`) or one probe's (`watch`).
pub(crate) struct Subscriber {
    pub stream: UnixStream,
    pub probe: Option<String>,
    /// For `watch`: records still expected before the stream closes.
    pub remaining: Option<u64>,
}

static SUBSCRIBERS: Mutex<Vec<Subscriber>> = Mutex::new(Vec::new());

pub(crate) fn subscribe(s: Subscriber) {
    let _ = s.stream.set_write_timeout(Some(Duration::from_millis(200)));
    SUBSCRIBERS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(s);
}

/// Output budget: bytes per second across all probes (`LPROBE_BUDGET`, default 1 MiB/s).
fn budget() -> u64 {
    static B: OnceLock<u64> = OnceLock::new();
    *B.get_or_init(|| {
        std::env::var("LPROBE_BUDGET")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|n| *n > 0)
            .unwrap_or(1 << 20)
    })
}

static BUDGET_SECOND: AtomicU64 = AtomicU64::new(0);
static BUDGET_USED: AtomicU64 = AtomicU64::new(0);
/// Records dropped because the output budget was spent.
pub(crate) static BUDGET_DROPS: AtomicU64 = AtomicU64::new(0);

/// Whether this second's budget is already spent (a cheap check before building a record).
pub(crate) fn budget_spent(now: u64) -> bool {
    let second = now / 1_000_000_000 + 1;
    BUDGET_SECOND.load(Ordering::Relaxed) == second
        && BUDGET_USED.load(Ordering::Relaxed) >= budget()
}

/// Takes `n` bytes from this second's budget.
fn take_budget(n: u64, now: u64) -> bool {
    let second = now / 1_000_000_000 + 1;
    if BUDGET_SECOND.swap(second, Ordering::Relaxed) != second {
        BUDGET_USED.store(0, Ordering::Relaxed);
    }
    BUDGET_USED.fetch_add(n, Ordering::Relaxed) + n <= budget()
}

/// Queues a record, or says which limit dropped it (`probe::LIMIT_*`).
pub(crate) fn emit(r: Record) -> Result<(), u8> {
    let Some(q) = QUEUE.get() else {
        DROPPED_TOTAL.fetch_add(1, Ordering::Relaxed);
        return Err(crate::probe::LIMIT_QUEUE);
    };
    // A stack is not formatted yet: count it at a typical size.
    let size = (r.json.len() + r.body.size()) as u64
        + if r.head.is_some() { 160 } else { 40 }
        + if r.stack.is_some() { 1024 } else { 0 };
    if !take_budget(size, r.ns) {
        BUDGET_DROPS.fetch_add(1, Ordering::Relaxed);
        DROPPED_TOTAL.fetch_add(1, Ordering::Relaxed);
        return Err(crate::probe::LIMIT_BUDGET);
    }
    PENDING.fetch_add(1, Ordering::Relaxed);
    match q.try_send(r) {
        Ok(()) => Ok(()),
        Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
            PENDING.fetch_sub(1, Ordering::Relaxed);
            QUEUE_DROPS.fetch_add(1, Ordering::Relaxed);
            DROPPED_TOTAL.fetch_add(1, Ordering::Relaxed);
            Err(crate::probe::LIMIT_QUEUE)
        }
    }
}

enum Out {
    Stderr,
    Stdout,
    File(std::fs::File),
    Broken,
}

impl Out {
    fn from_env() -> Out {
        match std::env::var("LPROBE_OUTPUT").as_deref() {
            Err(_) | Ok("") | Ok("stderr") => Out::Stderr,
            Ok("stdout") => Out::Stdout,
            Ok(path) => match OpenOptions::new().create(true).append(true).open(path) {
                Ok(f) => Out::File(f),
                Err(e) => {
                    let _ = writeln!(
                        std::io::stderr(),
                        "lprobe: cannot open LPROBE_OUTPUT file {path}: {e}; writing records to stderr"
                    );
                    Out::Stderr
                }
            },
        }
    }

    fn write(&mut self, line: &[u8]) {
        let res = match self {
            Out::Stderr => std::io::stderr().lock().write_all(line),
            Out::Stdout => {
                let mut o = std::io::stdout().lock();
                o.write_all(line).and_then(|_| o.flush())
            }
            Out::File(f) => f.write_all(line),
            Out::Broken => Ok(()),
        };
        if res.is_err() {
            *self = Out::Broken;
        }
    }
}

/// Starts the output thread.
pub(crate) fn start() -> std::io::Result<()> {
    let cap = std::env::var("LPROBE_QUEUE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(4096);
    let (tx, rx) = sync_channel(cap);
    if QUEUE.set(tx).is_err() {
        return Ok(());
    }
    std::thread::Builder::new()
        .name("lprobe-output".into())
        .spawn(move || writer(rx))
        .map(|_| ())
}

fn writer(rx: Receiver<Record>) {
    crate::probe::runtime_thread();
    let mut out = Out::from_env();
    let mut reported_drops = 0;
    while let Ok(r) = rx.recv() {
        let probe = r.probe.clone();
        let line = finish(r);
        out.write(line.as_bytes());
        publish(&probe, line.as_bytes());
        PENDING.fetch_sub(1, Ordering::Relaxed);
        let drops = QUEUE_DROPS.load(Ordering::Relaxed) + BUDGET_DROPS.load(Ordering::Relaxed);
        if drops != reported_drops && PENDING.load(Ordering::Relaxed) == 0 {
            let line = drop_report(drops - reported_drops);
            out.write(line.as_bytes());
            publish("", line.as_bytes());
            reported_drops = drops;
        }
    }
}

fn drop_report(n: u64) -> String {
    finish(error_record(&format!(
        "dropped {n} records: output queue full or output budget spent (raise LPROBE_QUEUE or LPROBE_BUDGET, or lower probe rates)"
    )))
}

/// An `error` record that belongs to no probe (control-file errors, drops).
pub(crate) fn error_record(msg: &str) -> Record {
    let mut r = Record::new(Arc::from(""), None, crate::timing::now_ns());
    r.json
        .push_str(",\"probe\":null,\"site\":null,\"fn\":null,\"kind\":\"error\",\"thread\":");
    let t = std::thread::current();
    crate::json::push_str(&mut r.json, t.name().unwrap_or("?"));
    r.json.push_str(",\"error\":");
    crate::json::push_str(&mut r.json, msg);
    r
}

/// Closes a record: symbolizes its stack and appends `}` and a newline.
fn finish(r: Record) -> String {
    let mut json = String::with_capacity(r.json.len() + 256);
    json.push_str("{\"ts\":");
    crate::json::push_str(&mut json, &crate::time::rfc3339(crate::timing::wall(r.ns)));
    let _ = write!(json, ",\"pid\":{}", std::process::id());
    if let Some(h) = &r.head {
        write_head(&mut json, &r.probe, h);
    }
    json.push_str(&r.json);
    r.body.write(&mut json);
    if let Some((bt, func)) = r.stack {
        json.push_str(",\"stack\":[");
        let frames = match bt {
            Some(bt) => {
                let known = crate::registry::source_files();
                let mut frames = crate::stack::frames(&crate::stack::symbolize(&bt), &known);
                crate::stack::name_innermost(&mut frames, func);
                frames
            }
            None => vec![crate::stack::NOT_CAPTURED.to_owned()],
        };
        for (i, f) in frames.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            crate::json::push_str(&mut json, f);
        }
        json.push(']');
    }
    json.push_str("}\n");
    json
}

/// Sends a finished line to subscribers; drops the ones that are gone, slow, or done.
fn publish(probe: &str, line: &[u8]) {
    let mut subs = SUBSCRIBERS.lock().unwrap_or_else(|e| e.into_inner());
    subs.retain_mut(|s| {
        if let Some(p) = &s.probe {
            if p != probe {
                return true;
            }
        }
        if s.stream.write_all(line).is_err() {
            return false;
        }
        match &mut s.remaining {
            Some(n) => {
                *n = n.saturating_sub(1);
                *n > 0
            }
            None => true,
        }
    });
}

/// Waits (at most `limit`) for queued records to be written; used at exit.
pub(crate) fn drain(limit: Duration) {
    let start = Instant::now();
    while PENDING.load(Ordering::Relaxed) > 0 && start.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(2));
    }
}
