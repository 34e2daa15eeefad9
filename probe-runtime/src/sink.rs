//! The output thread: takes records from a bounded queue, finishes them (stack symbolization),
//! writes them to `$LPROBE_OUTPUT` and to the sockets of `tail`/`watch` clients.
//!
//! **Invariant:** application threads only `try_send`: a full queue drops the record and
//! counts it, it never blocks. The queue holds at most `$LPROBE_QUEUE` records (default 4096).
//! Records are boxed and reused: the output thread hands a written record (and its values'
//! buffer) back to a bounded pool, so in the steady state an application thread allocates
//! nothing per record (an allocation here would be freed on the output thread, which glibc's
//! per-thread caches do not serve).

use std::backtrace::Backtrace;
use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::capture::{Body, Vals};
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
    /// The captured values `body` writes (kept with its capacity when the record is reused).
    pub vals: Vals,
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

/// Written records kept for reuse (see the module docs). Bounded: at most `POOL_MAX` records,
/// whose value buffers hold at most `POOL_VALS` values.
// The boxes themselves are what is reused (the queue carries boxes), so `Vec<Box<_>>` it is.
#[allow(clippy::vec_box)]
static POOL: Mutex<Vec<Box<Record>>> = Mutex::new(Vec::new());
const POOL_MAX: usize = 256;
const POOL_VALS: usize = 32;

impl Record {
    /// A record of `probe` made at `ns` ([`crate::timing::now_ns`]): a reused one when the
    /// pool has one and its lock is free (an application thread never waits for it).
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
        })
    }

    /// Empties a written record and keeps it for reuse (the output thread).
    fn recycle(mut self: Box<Record>) {
        if self.vals.capacity() > POOL_VALS || self.json.capacity() > 1024 {
            return;
        }
        self.head = None;
        self.json.clear();
        self.body = Body::None;
        self.vals.clear();
        self.stack = None;
        if let Ok(mut pool) = POOL.lock() {
            if pool.len() < POOL_MAX {
                pool.push(self);
            }
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

static QUEUE: OnceLock<SyncSender<Box<Record>>> = OnceLock::new();
/// Records queued and not yet written (lets exit wait for the queue to drain).
static PENDING: AtomicUsize = AtomicUsize::new(0);
/// The queue's capacity (0 until the output thread starts).
static CAPACITY: AtomicUsize = AtomicUsize::new(0);
/// Records dropped because the queue was full.
pub(crate) static QUEUE_DROPS: AtomicU64 = AtomicU64::new(0);

/// A client streaming records: every record (`tail`) or one probe's (`watch`).
pub(crate) struct Subscriber {
    pub stream: UnixStream,
    pub probe: Option<String>,
    /// For `watch`: records still expected before the stream closes.
    pub remaining: Option<u64>,
    /// For `watch`: once its probe no longer fires, the count of records written
    /// ([`WRITTEN`]) by which every record it queued has been written.
    pub ended_at: Option<u64>,
}

impl Subscriber {
    pub(crate) fn new(stream: UnixStream, probe: Option<String>, remaining: Option<u64>) -> Self {
        Subscriber {
            stream,
            probe,
            remaining,
            ended_at: None,
        }
    }
}

static SUBSCRIBERS: Mutex<Vec<Subscriber>> = Mutex::new(Vec::new());
/// Most `tail`/`watch` clients at once: each holds a descriptor in the program.
pub(crate) const MAX_SUBSCRIBERS: usize = 32;
/// Subscribers kept and places reserved for them ([`reserve`]), at most `MAX_SUBSCRIBERS`.
static SLOTS: AtomicUsize = AtomicUsize::new(0);
/// Records the writer has finished with (written or not), for [`prune`].
static WRITTEN: AtomicU64 = AtomicU64::new(0);

/// Reserves a place for a subscriber; false when `MAX_SUBSCRIBERS` are taken. The place is
/// given back by [`release`], or when the subscriber it went to is removed.
pub(crate) fn reserve() -> bool {
    SLOTS
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n < MAX_SUBSCRIBERS).then_some(n + 1)
        })
        .is_ok()
}

/// Gives back a place [`reserve`] took and no subscriber used.
pub(crate) fn release() {
    let _ = SLOTS.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
}

/// The error for a client refused because every place is taken.
pub(crate) fn full_message() -> String {
    format!(
        "too many streaming clients ({MAX_SUBSCRIBERS} 'tail'/'watch'/'snapshot' connections are open); close one and retry"
    )
}

/// Adds a subscriber in a place [`reserve`] took.
pub(crate) fn subscribe(s: Subscriber) {
    let _ = s.stream.set_write_timeout(Some(Duration::from_millis(200)));
    SUBSCRIBERS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(s);
}

/// Removes the subscribers whose client left (the peer closed its end), and the `watch`
/// subscribers whose probe no longer fires (`live(id)` false: disarmed, expired, exhausted)
/// once the records it queued before are written. Runs on the control thread, every tick:
/// a client that leaves before its probe writes anything must not keep a descriptor open.
pub(crate) fn prune(live: &dyn Fn(&str) -> bool) {
    let mut subs = SUBSCRIBERS.lock().unwrap_or_else(|e| e.into_inner());
    let before = subs.len();
    subs.retain_mut(|s| {
        if peer_closed(&s.stream) {
            return false;
        }
        let Some(p) = &s.probe else {
            return true;
        };
        if live(p) {
            return true;
        }
        // Read after the probe was seen dead: what is pending now includes every record it
        // made, so they are all written once `WRITTEN` reaches this (or nothing is pending).
        let pending = PENDING.load(Ordering::Relaxed);
        let written = WRITTEN.load(Ordering::Relaxed);
        let at = *s.ended_at.get_or_insert(written + pending as u64);
        pending != 0 && written < at
    });
    let gone = before - subs.len();
    drop(subs);
    for _ in 0..gone {
        release();
    }
}

/// Whether the other end of `s` is closed (poll without waiting, then a peek: end of
/// stream reads as 0 bytes). Clients send nothing after their request line.
fn peer_closed(s: &UnixStream) -> bool {
    use std::os::unix::io::AsRawFd;
    #[repr(C)]
    struct PollFd {
        fd: i32,
        events: i16,
        revents: i16,
    }
    #[cfg(target_os = "linux")]
    type Nfds = std::ffi::c_ulong;
    #[cfg(not(target_os = "linux"))]
    type Nfds = std::ffi::c_uint;
    extern "C" {
        fn poll(fds: *mut PollFd, n: Nfds, timeout: i32) -> i32;
        fn recv(fd: i32, buf: *mut u8, len: usize, flags: i32) -> isize;
    }
    const POLLIN: i16 = 0x1;
    const POLLERR: i16 = 0x8;
    const POLLHUP: i16 = 0x10;
    const MSG_PEEK: i32 = 0x2;
    #[cfg(target_os = "linux")]
    const MSG_DONTWAIT: i32 = 0x40;
    #[cfg(not(target_os = "linux"))]
    const MSG_DONTWAIT: i32 = 0x80;
    let fd = s.as_raw_fd();
    let mut p = PollFd {
        fd,
        events: POLLIN,
        revents: 0,
    };
    // SAFETY: `p` is one valid `pollfd`; a zero timeout never blocks.
    if unsafe { poll(&mut p, 1, 0) } <= 0 {
        return false;
    }
    if p.revents & (POLLHUP | POLLERR) != 0 {
        return true;
    }
    if p.revents & POLLIN == 0 {
        return false;
    }
    let mut b = [0u8; 1];
    // SAFETY: `b` is valid for one byte; MSG_DONTWAIT never blocks.
    let n = unsafe { recv(fd, b.as_mut_ptr(), 1, MSG_PEEK | MSG_DONTWAIT) };
    n == 0
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
pub(crate) fn refuse_full() -> bool {
    let full = PENDING.load(Ordering::Relaxed) > CAPACITY.load(Ordering::Relaxed);
    if full {
        count_queue_drop();
    }
    full
}

fn count_queue_drop() {
    QUEUE_DROPS.fetch_add(1, Ordering::Relaxed);
    DROPPED_TOTAL.fetch_add(1, Ordering::Relaxed);
}

/// Queues a record, or says which limit dropped it (`probe::LIMIT_*`).
pub(crate) fn emit(r: Box<Record>) -> Result<(), u8> {
    let Some(q) = QUEUE.get() else {
        DROPPED_TOTAL.fetch_add(1, Ordering::Relaxed);
        return Err(crate::probe::LIMIT_QUEUE);
    };
    // A stack is not formatted yet: count it at a typical size.
    let size = (r.json.len() + r.body.size(&r.vals)) as u64
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
            count_queue_drop();
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
    CAPACITY.store(cap, Ordering::Relaxed);
    std::thread::Builder::new()
        .name("lprobe-output".into())
        .spawn(move || writer(rx))
        .map(|_| ())
}

/// The writer's pause when the queue is empty and probes are armed: short after a record,
/// doubling up to `POLL_MAX` while nothing comes.
const POLL_MIN: Duration = Duration::from_micros(500);
const POLL_MAX: Duration = Duration::from_millis(10);

/// The next record. While probes are armed the writer polls (sleeping between empty polls)
/// instead of blocking in `recv`: a blocked receiver must be woken by the sender, which would
/// cost the application thread a `futex` system call for every record. While nothing is armed
/// it blocks (no wake-ups in a dormant program); the first record after an arming wakes it
/// once.
fn next(rx: &Receiver<Box<Record>>, pause: &mut Duration) -> Option<Box<Record>> {
    loop {
        match rx.try_recv() {
            Ok(r) => {
                *pause = POLL_MIN;
                return Some(r);
            }
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) if !crate::registry::any_armed() => return rx.recv().ok(),
            Err(TryRecvError::Empty) => {
                std::thread::sleep(*pause);
                *pause = (*pause * 2).min(POLL_MAX);
            }
        }
    }
}

fn writer(rx: Receiver<Box<Record>>) {
    crate::probe::runtime_thread();
    let mut out = Out::from_env();
    let mut reported_drops = 0;
    let mut pause = POLL_MIN;
    while let Some(mut r) = next(&rx, &mut pause) {
        let line = finish(&mut r);
        out.write(line.as_bytes());
        publish(&r.probe, line.as_bytes());
        r.recycle();
        WRITTEN.fetch_add(1, Ordering::Relaxed);
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
    finish(&mut error_record(&format!(
        "dropped {n} records: output queue full or output budget spent (raise LPROBE_QUEUE or LPROBE_BUDGET, or lower probe rates)"
    )))
}

/// An `error` record that belongs to no probe (control-file errors, drops).
pub(crate) fn error_record(msg: &str) -> Box<Record> {
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
fn finish(r: &mut Record) -> String {
    let mut json = String::with_capacity(r.json.len() + 256);
    json.push_str("{\"ts\":");
    crate::json::push_str(&mut json, &crate::time::rfc3339(crate::timing::wall(r.ns)));
    let _ = write!(json, ",\"pid\":{}", std::process::id());
    if let Some(h) = &r.head {
        write_head(&mut json, &r.probe, h);
    }
    json.push_str(&r.json);
    std::mem::take(&mut r.body).write(&r.vals, &mut json);
    if let Some((bt, func)) = r.stack.take() {
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
    let before = subs.len();
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
    let gone = before - subs.len();
    drop(subs);
    for _ in 0..gone {
        release();
    }
}

/// Waits (at most `limit`) for queued records to be written; used at exit.
pub(crate) fn drain(limit: Duration) {
    let start = Instant::now();
    while PENDING.load(Ordering::Relaxed) > 0 && start.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(2));
    }
}
