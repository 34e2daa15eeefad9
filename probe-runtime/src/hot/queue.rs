//! The bounded queue between application threads and the output thread (`plane::sink`),
//! the pool of reusable records, the output budget and the counts of records not written.
//!
//! **Invariant:** application threads only `try_send`: a full queue drops the record and
//! counts it, it never blocks. The queue holds at most `$LPROBE_QUEUE` records (default 4096).
//! Records are boxed and reused: the output thread hands a written record (and its values'
//! buffer) back to a bounded pool, so in the steady state an application thread allocates
//! nothing per record (an allocation here would be freed on the output thread, which glibc's
//! per-thread caches do not serve).

use std::backtrace::Backtrace;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};

use crate::hot::capture::{Body, Vals};

/// A record on its way out. The application thread stores what it must (the time, the
/// site, its thread, the values); the output thread writes the JSON: the timestamp, the
/// header (`pid`, `probe`, `site`, `fn`, `kind`, `thread`), `json`, the body, the stack.
pub(crate) struct Record {
    pub probe: Arc<str>,
    /// When it was made ([`crate::hot::timing::now_ns`]).
    pub ns: u64,
    /// The probe's header fields, or `None` when `json` starts with its own.
    pub head: Option<Head>,
    /// More fields, each `,"name":value` (empty for most records: no allocation).
    pub json: String,
    /// The kind-specific part the output thread writes (message, values).
    pub body: Body,
    /// The captured values `body` writes (kept with its capacity when the record is reused).
    pub vals: Vals,
    /// A stack to symbolize (`None` inside: it could not be captured without waiting), and
    /// the probed function's path (names the innermost frame).
    pub stack: Option<(Option<Backtrace>, &'static str)>,
    /// A `--frames` snapshot's callers (written after `stack`, whose lines they take).
    pub frames: Option<Box<crate::hot::frames::Frames>>,
}

/// Where and on which thread a probe's record was made.
pub(crate) struct Head {
    /// `None`: the site id was out of range (written as `null`).
    pub site: Option<&'static crate::Site>,
    pub kind: &'static str,
    pub thread: std::thread::Thread,
}

/// Written records kept for reuse (see the module docs). Bounded: at most `POOL_MAX` records,
/// whose value buffers hold at most `POOL_VALS` values.
// The boxes themselves are what is reused (the queue carries boxes), so `Vec<Box<_>>` it is.
#[allow(clippy::vec_box)]
static POOL: Mutex<Vec<Box<Record>>> = Mutex::new(Vec::new());
const POOL_MAX: usize = 256;
const POOL_VALS: usize = 32;

impl Record {
    /// A record of `probe` made at `ns` ([`crate::hot::timing::now_ns`]): a reused one when the
    /// pool has one and its lock is free (an application thread never waits for it).
    #[inline]
    pub(crate) fn new(probe: Arc<str>, head: Option<Head>, ns: u64) -> Box<Record> {
        if let Some(mut r) = POOL.try_lock().ok().and_then(|mut pool| pool.pop()) {
            r.probe = probe;
            r.ns = ns;
            r.head = head;
            return r;
        }
        Box::new(Record {
            probe,
            ns,
            head,
            json: String::new(),
            body: Body::None,
            vals: Vals::new(),
            stack: None,
            frames: None,
        })
    }

    /// Empties a written record and keeps it for reuse (the output thread).
    pub(crate) fn recycle(mut self: Box<Record>) {
        if self.vals.capacity() > POOL_VALS || self.json.capacity() > 1024 {
            return;
        }
        self.head = None;
        self.json.clear();
        self.body = Body::None;
        self.vals.clear();
        self.stack = None;
        self.frames = None;
        if let Ok(mut pool) = POOL.lock() {
            if pool.len() < POOL_MAX {
                pool.push(self);
            }
        }
    }
}

/// Writes a probe record's header fields.
/// Why a probe's record was not queued (a probe's `limit`; `probe::LIMITS` names them).
pub(crate) const LIMIT_RATE: u8 = 1;
pub(crate) const LIMIT_BUDGET: u8 = 2;
pub(crate) const LIMIT_QUEUE: u8 = 3;

/// Records accepted into the queue (each is then written or counted as a `write` loss).
pub(crate) static QUEUED: AtomicU64 = AtomicU64::new(0);

static QUEUE: OnceLock<SyncSender<Box<Record>>> = OnceLock::new();
/// Records queued and not yet written (lets exit wait for the queue to drain).
static PENDING: AtomicUsize = AtomicUsize::new(0);
/// The queue's capacity (0 until the output thread starts).
static CAPACITY: AtomicUsize = AtomicUsize::new(0);

/// Why a record was not written (`status`'s `dropped_by` names them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lost {
    /// Over the probe's `--rate`.
    Rate = 0,
    /// Over the output budget (`LPROBE_BUDGET`).
    Budget = 1,
    /// The output queue was full (`LPROBE_QUEUE`).
    Queue = 2,
    /// Writing to `LPROBE_OUTPUT` failed (disk full, broken pipe, …).
    Write = 3,
    /// Too little stack left on the thread to format values.
    Stack = 4,
    /// The armed map was being swapped, or the hit came from inside the runtime.
    Busy = 5,
}

const LOST_NAMES: [&str; 6] = ["rate", "budget", "queue", "write", "stack", "busy"];
static LOST: [AtomicU64; 6] = [const { AtomicU64::new(0) }; 6];

/// Counts `n` records not written for `why` (and in `dropped_total`).
#[inline]
pub(crate) fn count_lost(why: Lost, n: u64) {
    if let Some(c) = LOST.get(why as usize) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// Records not written so far for `why`.
pub(crate) fn lost(why: Lost) -> u64 {
    LOST.get(why as usize)
        .map_or(0, |c| c.load(Ordering::Relaxed))
}

/// `{"rate":N,"budget":N,…}`: the records not written, per reason (for `status`).
/// Returns their sum, the records lost anywhere (`status`'s `dropped_total`): the sum of the
/// values written, so the two agree while records are being lost.
pub(crate) fn write_lost_json(out: &mut String) -> u64 {
    out.push('{');
    let mut total = 0u64;
    for (i, (name, c)) in LOST_NAMES.iter().zip(&LOST).enumerate() {
        if i > 0 {
            out.push(',');
        }
        let n = c.load(Ordering::Relaxed);
        total = total.saturating_add(n);
        let _ = write!(out, "\"{name}\":{n}");
    }
    out.push('}');
    total
}

/// Output budget: bytes per second across all probes (`LPROBE_BUDGET`, default 1 MiB/s).
#[inline]
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

/// Whether this second's budget is already spent (a cheap check before building a record).
#[inline]
pub(crate) fn budget_spent(now: u64) -> bool {
    let second = now / 1_000_000_000 + 1;
    BUDGET_SECOND.load(Ordering::Relaxed) == second
        && BUDGET_USED.load(Ordering::Relaxed) >= budget()
}

/// Takes `n` bytes from this second's budget.
#[inline]
fn take_budget(n: u64, now: u64) -> bool {
    let second = now / 1_000_000_000 + 1;
    // A plain load first: the read-modify-write only once per second.
    if BUDGET_SECOND.load(Ordering::Relaxed) != second
        && BUDGET_SECOND.swap(second, Ordering::Relaxed) != second
    {
        BUDGET_USED.store(0, Ordering::Relaxed);
    }
    BUDGET_USED.fetch_add(n, Ordering::Relaxed) + n <= budget()
}

/// True (and the drop counted) when the queue is full, so a record made now would be refused:
/// checked before a record is built, so a saturated queue costs the application thread no
/// capturing. (`PENDING` also counts the record being written: one more than the channel holds.)
#[inline]
pub(crate) fn refuse_full() -> bool {
    let full = PENDING.load(Ordering::Relaxed) > CAPACITY.load(Ordering::Relaxed);
    if full {
        count_queue_drop();
    }
    full
}

fn count_queue_drop() {
    count_lost(Lost::Queue, 1);
}

/// Queues a record, or says which limit dropped it (`probe::LIMIT_*`).
#[inline]
pub(crate) fn emit(r: Box<Record>) -> Result<(), u8> {
    // A stack is not formatted yet: count it at a typical size.
    let size = (r.json.len() + r.body.size(&r.vals)) as u64
        + if r.head.is_some() { 160 } else { 40 }
        + if r.stack.is_some() { 1024 } else { 0 }
        + r.frames.as_ref().map_or(0, |f| 256 * f.frames.len() as u64);
    if QUEUE.get().is_some() && !take_budget(size, r.ns) {
        count_lost(Lost::Budget, 1);
        return Err(LIMIT_BUDGET);
    }
    emit_unbudgeted(r).map(|_| ())
}

/// Records the output thread has written (or failed to write) and taken off the queue.
static TAKEN: AtomicU64 = AtomicU64::new(0);
/// Queues a record outside the output budget (a `panic` record: one per panic, rate-limited
/// by its probe, and the one record a crash must not lose to a busy second). Returns, on
/// success, the number of records queued so far, ours included: see [`wait_written`].
#[inline]
pub(crate) fn emit_unbudgeted(r: Box<Record>) -> Result<u64, u8> {
    let Some(q) = QUEUE.get() else {
        count_lost(Lost::Queue, 1);
        return Err(LIMIT_QUEUE);
    };
    PENDING.fetch_add(1, Ordering::Relaxed);
    match q.try_send(r) {
        Ok(()) => Ok(QUEUED.fetch_add(1, Ordering::Relaxed) + 1),
        Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
            PENDING.fetch_sub(1, Ordering::Relaxed);
            count_queue_drop();
            Err(LIMIT_QUEUE)
        }
    }
}

/// Installs the queue's sending end (once, when the output thread starts).
pub(crate) fn install(tx: SyncSender<Box<Record>>, cap: usize) -> bool {
    if QUEUE.set(tx).is_err() {
        return false;
    }
    CAPACITY.store(cap, Ordering::Relaxed);
    true
}

/// The output thread took a record off the queue.
pub(crate) fn taken() {
    PENDING.fetch_sub(1, Ordering::Relaxed);
    TAKEN.fetch_add(1, Ordering::Release);
}

/// Waits (polling, at most `limit`) until the output thread has written the first `sent`
/// records queued (the queue is first in, first out: a record queued when `sent` records
/// were is written by then). Only a panicking thread waits, for its own `panic` record,
/// before its panic goes on (to an abort, or to the program's hook, which may end the process).
pub(crate) fn wait_written(sent: u64, limit: std::time::Duration) -> bool {
    let start = std::time::Instant::now();
    loop {
        if TAKEN.load(Ordering::Acquire) >= sent {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_micros(500));
    }
}

/// Records queued and not yet written.
pub(crate) fn pending() -> usize {
    PENDING.load(Ordering::Relaxed)
}
