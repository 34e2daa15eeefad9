//! The output thread: takes records from the bounded queue (`hot::queue`), finishes them
//! (stack symbolization), writes them to `$LPROBE_OUTPUT` and to the sockets of `tail`/`watch`
//! clients.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, TryRecvError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::hot::queue::{self, count_lost, lost, Head, Lost, Record};
use crate::plane::bridge;

fn write_head(out: &mut String, probe: &str, h: &Head) {
    use crate::lang::json::push_str;
    out.push_str(",\"probe\":");
    push_str(out, probe);
    out.push_str(",\"site\":");
    match h.site {
        Some(site) => {
            push_str(out, &format!("{}:{}", site.path(), site.line));
            out.push_str(",\"fn\":");
            push_str(out, site.func());
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
/// Lines written to `$LPROBE_OUTPUT` (records and the writer's own notes), and the notes
/// (lost-records and drop reports) the writer made itself, for `status`'s `output`.
static LINES_OK: AtomicU64 = AtomicU64::new(0);
static NOTES: AtomicU64 = AtomicU64::new(0);

/// `"queued":Q,"notes":N,"written":W,"failed":F,"pending":P` (inside [`output_json`]'s
/// object): every line the writer had (`queued` records and its own `notes`) was `written`,
/// counted as `failed` (`dropped_by`'s `write`) or is `pending`, so `queued + notes == written
/// + failed + pending`.
fn write_accounts_json(out: &mut String) {
    // Read in the order that keeps the sum true while records move: a record counted
    // queued before it is counted written or failed.
    let written = LINES_OK.load(Ordering::Relaxed);
    let failed = lost(Lost::Write);
    let notes = NOTES.load(Ordering::Relaxed);
    let pending = queue::pending();
    let queued = queue::QUEUED.load(Ordering::Relaxed);
    let _ = write!(
        out,
        ",\"queued\":{queued},\"notes\":{notes},\"written\":{written},\"failed\":{failed},\"pending\":{pending}"
    );
}

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
    remove_unkept(
        &SUBSCRIBERS,
        |s| {
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
            let pending = queue::pending();
            let written = WRITTEN.load(Ordering::Relaxed);
            let at = *s.ended_at.get_or_insert(written + pending as u64);
            pending != 0 && written < at
        },
        release,
    );
}

/// Takes the subscribers `keep` refuses out of `subs`, gives their places back, and only then
/// closes their connections: a client that sees its connection closed (or a descriptor count
/// back down) finds the place free when it connects again.
fn remove_unkept(
    subs: &Mutex<Vec<Subscriber>>,
    mut keep: impl FnMut(&mut Subscriber) -> bool,
    mut release: impl FnMut(),
) {
    let gone: Vec<Subscriber> = subs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .extract_if(.., |s| !keep(s))
        .collect();
    for _ in &gone {
        release();
    }
    drop(gone);
}

/// Whether the other end of `s` is closed (poll without waiting; off Linux, then a peek: end
/// of stream reads as 0 bytes). Clients send nothing after their request line.
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
    // Linux says `POLLHUP` once the peer closed both ways; a client that only shut down its
    // writing side (`nc -N`) still reads records. Elsewhere, end of stream is the sign.
    if cfg!(target_os = "linux") || p.revents & POLLIN == 0 {
        return false;
    }
    let mut b = [0u8; 1];
    // SAFETY: `b` is valid for one byte; MSG_DONTWAIT never blocks.
    let n = unsafe { recv(fd, b.as_mut_ptr(), 1, MSG_PEEK | MSG_DONTWAIT) };
    n == 0
}

/// `O_NOFOLLOW` (the runtime has no libc crate: the value of each platform's headers).
#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    any(
        target_arch = "arm",
        target_arch = "powerpc",
        target_arch = "powerpc64"
    )
))]
const O_NOFOLLOW: i32 = 0o100000;
#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    not(any(
        target_arch = "arm",
        target_arch = "powerpc",
        target_arch = "powerpc64"
    ))
))]
const O_NOFOLLOW: i32 = 0o400000;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const O_NOFOLLOW: i32 = 0x100;

/// Opens (creating it 0600) the `LPROBE_OUTPUT` file for appending, never through a
/// symbolic link (the runtime creates none: one there was put by someone else).
fn open_output(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(O_NOFOLLOW)
        .open(path)
}

/// How often the output file's path is checked for a rotation (renamed or deleted file).
const REOPEN_CHECK: Duration = Duration::from_secs(1);
/// The longest the writer waits on a full non-blocking output (`EAGAIN`) for one record.
const WOULD_BLOCK_WAIT: Duration = Duration::from_millis(20);

enum Dest {
    Stderr,
    Stdout,
    File(File),
}

/// `$LPROBE_OUTPUT`. A failed write loses that record (counted as `write`), never the output:
/// the next record is tried again, and a file whose path now names another file (logrotate
/// renamed it, or it was deleted) is reopened at the path, checked about every second and
/// after each failed write (no signal needed).
struct Out {
    dest: Dest,
    /// The file's path, to reopen it.
    path: Option<PathBuf>,
    last_check: Instant,
    /// A write failed after part of a line went out: the next line starts on a new one.
    partial: bool,
    /// Since the last write that succeeded: records lost and the last error.
    failing: Option<(u64, String)>,
    /// A reopen failure was reported on stderr (once per failure streak).
    warned: bool,
}

impl Out {
    fn from_env() -> Out {
        match std::env::var("LPROBE_OUTPUT").as_deref() {
            Err(_) | Ok("") | Ok("stderr") => Out::stderr(),
            Ok("stdout") => Out {
                dest: Dest::Stdout,
                ..Out::stderr()
            },
            Ok(path) => Out::open(Path::new(path)).unwrap_or_else(|e| {
                let _ = writeln!(
                    std::io::stderr(),
                    "lprobe: cannot open LPROBE_OUTPUT file {path}: {e} (a symbolic link is never followed); writing records to stderr"
                );
                Out::stderr()
            }),
        }
    }

    /// Output to stderr.
    fn stderr() -> Out {
        Out {
            dest: Dest::Stderr,
            path: None,
            last_check: Instant::now(),
            partial: false,
            failing: None,
            warned: false,
        }
    }

    /// Output to the file at `path` (created 0600, never through a symbolic link).
    fn open(path: &Path) -> std::io::Result<Out> {
        Ok(Out {
            dest: Dest::File(open_output(path)?),
            path: Some(path.to_owned()),
            last_check: Instant::now(),
            partial: false,
            failing: None,
            warned: false,
        })
    }

    /// Writes one line; on failure the record is counted as lost. Returns a note to write
    /// after it when the output works again after failing.
    fn write(&mut self, line: &[u8]) -> Option<String> {
        if self.path.is_some() && self.last_check.elapsed() >= REOPEN_CHECK {
            self.reopen_if_moved();
        }
        let mut res = self.write_line(line);
        if res.is_err() && self.path.is_some() && self.reopen_if_moved() {
            res = self.write_line(line);
        }
        match res {
            Ok(()) => {
                LINES_OK.fetch_add(1, Ordering::Relaxed);
                self.warned = false;
                self.failing.take().map(|(n, e)| {
                    format!("writing records failed ({e}): {n} records lost; writing again")
                })
            }
            Err(e) => {
                count_lost(Lost::Write, 1);
                let n = self.failing.as_ref().map_or(0, |f| f.0);
                self.failing = Some((n + 1, e.to_string()));
                None
            }
        }
    }

    /// Reopens the file when its path no longer names the open file; true if it did.
    fn reopen_if_moved(&mut self) -> bool {
        self.last_check = Instant::now();
        let (Some(path), Dest::File(f)) = (&self.path, &self.dest) else {
            return false;
        };
        let same = match (std::fs::symlink_metadata(path), f.metadata()) {
            (Ok(p), Ok(o)) => p.dev() == o.dev() && p.ino() == o.ino(),
            _ => false,
        };
        if same {
            return false;
        }
        match open_output(path) {
            Ok(f) => {
                self.dest = Dest::File(f);
                self.partial = false;
                true
            }
            Err(e) => {
                if !self.warned {
                    self.warned = true;
                    let _ = writeln!(
                        std::io::stderr(),
                        "lprobe: cannot reopen LPROBE_OUTPUT file {}: {e}; retrying every second",
                        path.display()
                    );
                }
                false
            }
        }
    }

    fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        if self.partial {
            self.write_all(b"\n")?;
            self.partial = false;
        }
        self.write_all(line)
    }

    /// Like `write_all`, but waits a little on `EAGAIN` and remembers a partial line.
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        use std::io::ErrorKind;
        if let Dest::Stdout = self.dest {
            let mut o = std::io::stdout().lock();
            let res = o.write_all(buf).and_then(|_| o.flush());
            if res.is_err() {
                self.partial = true;
            }
            return res;
        }
        let mut done = 0;
        let mut waited = Duration::ZERO;
        while let Some(rest) = buf.get(done..).filter(|r| !r.is_empty()) {
            let res = match &mut self.dest {
                Dest::File(f) => f.write(rest),
                _ => std::io::stderr().lock().write(rest),
            };
            let e = match res {
                Ok(0) => ErrorKind::WriteZero.into(),
                Ok(n) => {
                    done += n;
                    continue;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock && waited < WOULD_BLOCK_WAIT => {
                    std::thread::sleep(Duration::from_millis(1));
                    waited += Duration::from_millis(1);
                    continue;
                }
                Err(e) => e,
            };
            self.partial |= done > 0;
            // A line out but for its newline is written (the next line ends it): the soak
            // counted such records failed while the file held them whole.
            if buf.len() > 1 && done == buf.len() - 1 && buf.ends_with(b"\n") {
                return Ok(());
            }
            return Err(e);
        }
        Ok(())
    }
}

/// Most records `LPROBE_QUEUE` may ask to queue: each can hold a snapshot of up to 64 KiB.
const MAX_QUEUE: usize = 65_536;

/// The queue's capacity from `LPROBE_QUEUE`: 4096 when unset; a value that is not a positive
/// number, or is over [`MAX_QUEUE`], is reported on stderr (one line) and replaced.
pub(crate) fn queue_capacity(var: Option<&str>) -> usize {
    let Some(v) = var else {
        return 4096;
    };
    match v.trim().parse::<usize>() {
        Ok(n) if n > 0 && n <= MAX_QUEUE => n,
        Ok(n) if n > MAX_QUEUE => {
            // Never `eprintln!`: it panics when stderr is closed.
            let _ = writeln!(std::io::stderr(), "lprobe: LPROBE_QUEUE={n} is over the {MAX_QUEUE} records a queue may hold (each up to a 64 KiB snapshot): using {MAX_QUEUE}");
            MAX_QUEUE
        }
        _ => {
            let _ = writeln!(
                std::io::stderr(),
                "lprobe: LPROBE_QUEUE='{v}' is not a positive number of records: using 4096"
            );
            4096
        }
    }
}

/// Starts the output thread.
pub(crate) fn start() -> std::io::Result<()> {
    let cap = queue_capacity(std::env::var("LPROBE_QUEUE").ok().as_deref());
    let (tx, rx) = sync_channel(cap);
    if !queue::install(tx, cap) {
        return Ok(());
    }
    crate::small::spawn(
        "lprobe-output",
        Box::new(move || crate::hot::panics::supervise(|| writer(&rx))),
    )
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
            Err(TryRecvError::Empty) if !crate::hot::registry::any_armed() => {
                return rx.recv().ok()
            }
            Err(TryRecvError::Empty) => {
                std::thread::sleep(*pause);
                *pause = (*pause * 2).min(POLL_MAX);
            }
        }
    }
}

fn writer(rx: &Receiver<Box<Record>>) {
    let mut out = Output::from_env();
    let mut reported_drops = 0;
    let mut pause = POLL_MIN;
    while let Some(mut r) = next(rx, &mut pause) {
        let line = finish(&mut r);
        let resumed = out.write(&line);
        publish(&r.probe, line.as_bytes());
        r.recycle();
        WRITTEN.fetch_add(1, Ordering::Relaxed);
        queue::taken();
        if let Some(note) = resumed {
            NOTES.fetch_add(1, Ordering::Relaxed);
            let line = finish(&mut error_record(&note));
            let _ = out.write(&line);
            publish("", line.as_bytes());
        }
        let drops = lost(Lost::Queue) + lost(Lost::Budget);
        if drops != reported_drops && queue::pending() == 0 {
            let line = drop_report(drops - reported_drops);
            NOTES.fetch_add(1, Ordering::Relaxed);
            let _ = out.write(&line);
            publish("", line.as_bytes());
            reported_drops = drops;
        }
    }
}

/// Where records go: JSON lines to `$LPROBE_OUTPUT`, or the program's `tracing` subscriber
/// or `log` logger (`LPROBE_OUTPUT=tracing|log`, see `bridge`).
enum Output {
    Json(Out),
    Bridge(bridge::Delivery),
}

/// What `status` says of the output (`{"to":…,"path":…,"fallback":…}`), set when the
/// output thread starts.
static OUTPUT: OnceLock<String> = OnceLock::new();

impl Output {
    /// The output `LPROBE_OUTPUT` asks for. A bridge the program does not have is one line on
    /// stderr, and records go to stderr as JSON lines.
    fn from_env() -> Output {
        let var = std::env::var("LPROBE_OUTPUT").unwrap_or_default();
        let mut fallback = None;
        let out = match var.as_str() {
            name @ ("tracing" | "log") => {
                let name = if name == "log" { "log" } else { "tracing" };
                match bridge::get(name) {
                    Some(b) => Output::Bridge(bridge::Delivery::new(name, b)),
                    None => {
                        let msg = bridge::missing_message(name);
                        let _ = writeln!(std::io::stderr(), "{msg}");
                        fallback = Some(msg);
                        Output::Json(Out::stderr())
                    }
                }
            }
            _ => Output::Json(Out::from_env()),
        };
        let (to, path) = match &out {
            Output::Bridge(d) => (d.name, None),
            Output::Json(o) => match (&o.dest, &o.path) {
                (Dest::File(_), Some(p)) => ("file", Some(p.display().to_string())),
                (Dest::Stdout, _) => ("stdout", None),
                _ => ("stderr", None),
            },
        };
        let mut desc = String::from("{\"to\":");
        crate::lang::json::push_str(&mut desc, to);
        for (key, v) in [("path", path), ("fallback", fallback)] {
            desc.push_str(&format!(",\"{key}\":"));
            match v {
                Some(v) => crate::lang::json::push_str(&mut desc, &v),
                None => desc.push_str("null"),
            }
        }
        let _ = OUTPUT.set(desc);
        out
    }

    /// Writes (or hands over) one finished record; like [`Out::write`], a note to write after
    /// it when a failing output works again.
    fn write(&mut self, line: &str) -> Option<String> {
        match self {
            Output::Json(out) => out.write(line.as_bytes()),
            Output::Bridge(d) => {
                d.deliver(line);
                None
            }
        }
    }
}

/// `status`'s `output` object: where records go (`to`: `stderr`, `stdout`, `file` (with
/// `path`), `tracing` or `log`; `fallback`: why a bridge asked for is not used), for a
/// bridge the records its subscriber did not take (`filtered`) and its panics, and the
/// writer's accounts (`write_accounts_json`).
pub(crate) fn output_json(out: &mut String) {
    match OUTPUT.get() {
        Some(d) => out.push_str(d),
        None => out.push_str("{\"to\":null,\"path\":null,\"fallback\":null"),
    }
    out.push_str(&format!(
        ",\"filtered\":{},\"panics\":{},\"last_panic\":",
        bridge::FILTERED.load(Ordering::Relaxed),
        bridge::PANICS.load(Ordering::Relaxed)
    ));
    match bridge::last_panic() {
        Some(m) => crate::lang::json::push_str(out, &m),
        None => out.push_str("null"),
    }
    write_accounts_json(out);
    out.push('}');
}

fn drop_report(n: u64) -> String {
    finish(&mut error_record(&format!(
        "dropped {n} records: output queue full or output budget spent (raise LPROBE_QUEUE or LPROBE_BUDGET, or lower probe rates)"
    )))
}

/// An `error` record that belongs to no probe (control-file errors, drops).
pub(crate) fn error_record(msg: &str) -> Box<Record> {
    let mut r = Record::new(Arc::from(""), None, crate::hot::timing::now_ns());
    r.json
        .push_str(",\"probe\":null,\"site\":null,\"fn\":null,\"kind\":\"error\",\"thread\":");
    let t = std::thread::current();
    crate::lang::json::push_str(&mut r.json, t.name().unwrap_or("?"));
    r.json.push_str(",\"error\":");
    crate::lang::json::push_str(&mut r.json, msg);
    r
}

/// Closes a record: symbolizes its stack and appends `}` and a newline.
fn finish(r: &mut Record) -> String {
    let mut json = String::with_capacity(r.json.len() + 256);
    json.push_str("{\"ts\":");
    crate::lang::json::push_str(
        &mut json,
        &crate::lang::time::rfc3339(crate::hot::timing::wall(r.ns)),
    );
    let _ = write!(json, ",\"pid\":{}", std::process::id());
    if let Some(h) = &r.head {
        write_head(&mut json, &r.probe, h);
    }
    json.push_str(&r.json);
    let limits = match &r.body {
        crate::hot::capture::Body::Vars { limits } => *limits,
        _ => crate::lang::value::Limits::default(),
    };
    std::mem::take(&mut r.body).write(&r.vals, &mut json);
    let mut stack = Vec::new();
    if let Some((bt, func)) = r.stack.take() {
        json.push_str(",\"stack\":[");
        let frames = match bt {
            Some(bt) => {
                let known = crate::hot::registry::source_files();
                let mut frames =
                    crate::hot::stack::frames(&crate::hot::stack::symbolize(&bt), &known);
                crate::hot::stack::name_innermost(&mut frames, func);
                frames
            }
            None => vec![crate::hot::stack::NOT_CAPTURED.to_owned()],
        };
        for (i, f) in frames.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            crate::lang::json::push_str(&mut json, f);
        }
        json.push(']');
        stack = frames;
    }
    if let Some(frames) = r.frames.take() {
        crate::hot::frames::write_json(&frames, &stack, &limits, &mut json);
    }
    json.push_str("}\n");
    json
}

/// Sends a finished line to subscribers; drops the ones that are gone, slow, or done.
fn publish(probe: &str, line: &[u8]) {
    remove_unkept(
        &SUBSCRIBERS,
        |s| {
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
        },
        release,
    );
}

/// Waits (at most `limit`) for queued records to be written; used at exit.
pub(crate) fn drain(limit: Duration) {
    let start = Instant::now();
    while queue::pending() > 0 && start.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_place_is_given_back_before_its_connection_closes() {
        use std::io::Read as _;
        let (gone, gone_peer) = UnixStream::pair().expect("pair");
        let (kept, kept_peer) = UnixStream::pair().expect("pair");
        let subs = Mutex::new(vec![
            Subscriber::new(gone, Some("1".into()), None),
            Subscriber::new(kept, Some("2".into()), None),
        ]);
        gone_peer.set_nonblocking(true).expect("nonblocking");
        let mut buf = [0u8; 1];
        let mut released = 0;
        remove_unkept(
            &subs,
            |s| s.probe.as_deref() == Some("2"),
            || {
                // Still open: a client that sees it closed must find the place free.
                let open = (&gone_peer).read(&mut buf);
                assert!(
                    matches!(&open, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
                    "{open:?}"
                );
                released += 1;
            },
        );
        assert_eq!(released, 1);
        assert_eq!((&gone_peer).read(&mut buf).expect("read"), 0, "closed now");
        let left = subs.lock().expect("lock");
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].probe.as_deref(), Some("2"));
        drop(kept_peer);
    }

    fn tempdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("lprobe-sink-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("mkdir");
        d
    }

    /// As if a second had passed since the last check of the path.
    fn age(out: &mut Out) {
        if let Some(t) = Instant::now().checked_sub(REOPEN_CHECK) {
            out.last_check = t;
        }
    }

    #[test]
    fn the_queue_size_is_bounded_and_bad_values_fall_back() {
        assert_eq!(queue_capacity(None), 4096);
        assert_eq!(queue_capacity(Some("100")), 100);
        assert_eq!(queue_capacity(Some("0")), 4096);
        assert_eq!(queue_capacity(Some("lots")), 4096);
        assert_eq!(queue_capacity(Some("99999999999")), MAX_QUEUE);
    }

    #[test]
    fn the_output_file_is_reopened_after_a_rename_or_a_deletion() {
        let d = tempdir("rotate");
        let path = d.join("out.jsonl");
        let mut out = Out::open(&path).expect("open");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "created 0600");
        assert_eq!(out.write(b"one\n"), None);
        std::fs::rename(&path, d.join("out.jsonl.1")).expect("rotate");
        // Within the second, the open file still takes records (as with `copytruncate`).
        assert_eq!(out.write(b"two\n"), None);
        age(&mut out);
        assert_eq!(out.write(b"three\n"), None);
        assert_eq!(
            std::fs::read_to_string(d.join("out.jsonl.1")).expect("rotated"),
            "one\ntwo\n"
        );
        assert_eq!(std::fs::read_to_string(&path).expect("new"), "three\n");
        std::fs::remove_file(&path).expect("delete");
        age(&mut out);
        assert_eq!(out.write(b"four\n"), None);
        assert_eq!(std::fs::read_to_string(&path).expect("recreated"), "four\n");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn the_output_file_is_never_opened_through_a_symlink() {
        let d = tempdir("symlink");
        let target = d.join("victim");
        std::fs::write(&target, "keep\n").expect("write");
        let link = d.join("out.jsonl");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        assert!(Out::open(&link).is_err(), "refused");
        // A symlink put in place of a rotated file is not followed either.
        let path = d.join("out2.jsonl");
        let mut out = Out::open(&path).expect("open");
        std::fs::rename(&path, d.join("out2.jsonl.1")).expect("rotate");
        std::os::unix::fs::symlink(&target, &path).expect("symlink");
        age(&mut out);
        let _ = out.write(b"x\n");
        assert_eq!(std::fs::read_to_string(&target).expect("victim"), "keep\n");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn failed_writes_are_counted_and_the_output_resumes() {
        let Ok(mut out) = Out::open(Path::new("/dev/full")) else {
            return; // no /dev/full here
        };
        let before = lost(Lost::Write);
        assert_eq!(out.write(b"lost 1\n"), None);
        assert_eq!(out.write(b"lost 2\n"), None);
        assert!(lost(Lost::Write) >= before + 2);
        assert!(
            matches!(&out.failing, Some((2, e)) if e.contains("No space")),
            "{:?}",
            out.failing
        );
        // The space comes back (here: another file): the next record is written, and a note.
        let d = tempdir("resume");
        let f = open_output(&d.join("o")).expect("open");
        out.dest = Dest::File(f);
        out.path = None;
        let note = out.write(b"ok\n").expect("a note about the lost records");
        assert!(note.contains("2 records lost"), "{note}");
        assert_eq!(out.write(b"ok\n"), None);
        assert_eq!(
            std::fs::read_to_string(d.join("o")).expect("read"),
            "ok\nok\n"
        );
        let _ = std::fs::remove_dir_all(&d);
    }
}
