//! The flight recorder behind `--on-panic`: while such a probe is armed, each hit at its
//! sites writes the captured values into a small ring on the hitting thread, and nothing
//! else; when that thread panics, lprobe's panic hook turns the ring into one `panic` record
//! (the message, where, the stack, whether a `catch_unwind` will catch it, and the last sites
//! the thread passed with their values, innermost first).
//!
//! **Bounded, and allocation-free once warm:** a ring holds at most [`MAX_LAST`] slots; a
//! slot keeps at most [`MAX_VALS`] values and [`SLOT_TEXT`] bytes of their `Debug` text, in
//! buffers it reuses (`Captured::take_into`), so a thread's ring stops allocating once its
//! slots have grown to their values' sizes. Nothing is parsed, redacted or written until a
//! panic: a hit costs the values' `Debug` formatting.
//!
//! **In the hook, nothing may panic:** a panic inside a panic hook aborts the process (std
//! does not call the hook again, so it never loops, but lprobe must not turn the program's
//! panic into an abort). The code below indexes nothing and unwraps nothing; the locks it
//! touches are only tried.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::panic::PanicHookInfo;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::hot::capture::{Captured, Vals};
use crate::hot::queue::{self, Record};
use crate::lang::json;
use crate::lang::value::Limits;
use crate::{Site, Val};

/// Sites kept per thread unless `--last` says otherwise.
pub(crate) const DEFAULT_LAST: usize = 8;
/// Most sites `--last` may ask for.
pub(crate) const MAX_LAST: usize = 64;
/// Values kept per slot (a site's first captures).
const MAX_VALS: usize = 32;
/// `Debug` text kept per value, and per slot.
const VALUE_TEXT: usize = 1024;
const SLOT_TEXT: usize = 4096;
/// The longest a panicking thread waits for its record to be written (see [`on_panic`]).
const WRITE_WAIT: Duration = Duration::from_secs(1);

/// One `--on-panic` probe's side of the recorder: its id, how many sites it shows, its
/// capture limits and rate, whether it is still armed, and the probe's record counters.
#[derive(Debug)]
pub(crate) struct Recorder {
    probe: Arc<str>,
    last: usize,
    limits: Limits,
    rate: u64,
    live: AtomicBool,
    emitted: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
    rate_window: AtomicU64,
    rate_used: AtomicU64,
}

/// The recorders of every `--on-panic` probe made so far (weak: a probe dropped from the
/// registry drops its recorder), for a panic on a thread that passed none of their sites.
static RECORDERS: Mutex<Vec<Weak<Recorder>>> = Mutex::new(Vec::new());

impl Recorder {
    /// A recorder for probe `probe`, keeping its `last` sites (at most [`MAX_LAST`]); its
    /// records count in `emitted` and `dropped` (the probe's own counters). Installs the
    /// panic hook's call into [`on_panic`].
    pub(crate) fn new(
        probe: Arc<str>,
        last: usize,
        limits: Limits,
        rate: u64,
        emitted: Arc<AtomicU64>,
        dropped: Arc<AtomicU64>,
    ) -> Arc<Recorder> {
        let r = Arc::new(Recorder {
            probe,
            last: last.clamp(1, MAX_LAST),
            limits,
            rate,
            live: AtomicBool::new(true),
            emitted,
            dropped,
            rate_window: AtomicU64::new(0),
            rate_used: AtomicU64::new(0),
        });
        let mut all = RECORDERS.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|w| w.strong_count() > 0);
        all.push(Arc::downgrade(&r));
        drop(all);
        crate::hot::panics::observe_program_panics(on_panic);
        r
    }

    /// The probe stopped firing (disarmed, expired, over budget): no more records.
    pub(crate) fn stop(&self) {
        self.live.store(false, Ordering::Relaxed);
    }

    #[inline]
    fn is_live(&self) -> bool {
        self.live.load(Ordering::Relaxed)
    }

    /// Whether one more record fits in this second's rate.
    #[inline]
    fn take_rate(&self, now: u64) -> bool {
        let second = now / 1_000_000_000 + 1;
        if self.rate_window.swap(second, Ordering::Relaxed) != second {
            self.rate_used.store(0, Ordering::Relaxed);
        }
        self.rate_used.fetch_add(1, Ordering::Relaxed) < self.rate
    }
}

/// One site passed: where, when, and its values.
#[derive(Default)]
struct Slot {
    site: Option<&'static Site>,
    ns: u64,
    vals: Vals,
    /// Text buffers of earlier values, kept for the next ones.
    spare: Vec<String>,
}

/// A thread's last sites, oldest overwritten first.
#[derive(Default)]
struct Ring {
    slots: Vec<Slot>,
    /// The slot the next hit writes.
    next: usize,
    /// Slots written since the ring was last emptied (at most `slots.len()`).
    len: usize,
    /// The recorder of the last `--on-panic` hit on this thread (replaced only when another
    /// probe's hit comes: a hit touches no shared reference count).
    recorder: Option<Arc<Recorder>>,
}

thread_local! {
    static RING: RefCell<Ring> = RefCell::new(Ring::default());
}

/// Writes one hit at `site` into the thread's ring (once per hit, whatever the number of
/// `--on-panic` probes there). `secret`: bit `i` set when capture `i` is a secret name.
/// `now`: the hit's time ([`crate::hot::timing::now_ns`]).
#[inline]
pub(crate) fn record(
    rec: &Arc<Recorder>,
    site: &'static Site,
    vals: &[Val<'_>],
    secret: u64,
    now: u64,
) {
    if !crate::hot::capture::first_ring_write() {
        return;
    }
    let _ = RING.try_with(|ring| {
        let Ok(mut ring) = ring.try_borrow_mut() else {
            return;
        };
        let ring = &mut *ring;
        if !ring.recorder.as_ref().is_some_and(|r| Arc::ptr_eq(r, rec)) {
            ring.recorder = Some(rec.clone());
        }
        if ring.slots.len() != rec.last {
            ring.slots.resize_with(rec.last, Slot::default);
            ring.next = 0;
            ring.len = 0;
        }
        let n = ring.slots.len();
        let Some(slot) = ring.slots.get_mut(ring.next) else {
            return;
        };
        ring.next = (ring.next + 1) % n;
        ring.len = (ring.len + 1).min(n);
        fill(slot, site, vals, secret, now);
    });
}

/// Writes a slot's values, reusing its buffers.
#[inline]
fn fill(slot: &mut Slot, site: &'static Site, vals: &[Val<'_>], secret: u64, now: u64) {
    for (_, c) in slot.vals.drain(..) {
        if let Some(buf) = c.into_buffer() {
            slot.spare.push(buf);
        }
    }
    slot.site = Some(site);
    slot.ns = now;
    let mut text = 0;
    for (i, (name, val)) in site.names().iter().zip(vals).take(MAX_VALS).enumerate() {
        let secret = if i < 64 {
            secret >> i & 1 == 1
        } else {
            crate::hot::capture::is_secret(name)
        };
        let max = VALUE_TEXT.min(SLOT_TEXT.saturating_sub(text)).max(16);
        let buf = slot.spare.pop().unwrap_or_default();
        let c = Captured::take_into(secret, val, buf, max);
        text += match &c {
            Captured::Text(t) | Captured::Cut(t) => t.len(),
            _ => 16,
        };
        slot.vals.push((name, c));
    }
}

/// The panic hook's part (see `panics::observe_program_panics`): writes the `panic` record of
/// the current thread's panic, if an `--on-panic` probe is armed. Runs before the program's
/// hook, on the panicking thread.
fn on_panic(info: &PanicHookInfo<'_>) {
    // Nothing called from here fires probes (the thread is inside lprobe now).
    let Ok(false) = crate::hot::panics::IN_HIT.try_with(|c| c.replace(true)) else {
        return;
    };
    write_record(info);
    let _ = crate::hot::panics::IN_HIT.try_with(|c| c.set(false));
}

fn write_record(info: &PanicHookInfo<'_>) {
    let now = crate::hot::timing::now_ns();
    let taken = RING.try_with(|ring| {
        let mut ring = ring.try_borrow_mut().ok()?;
        let rec = ring.recorder.clone().filter(|r| r.is_live());
        let n = ring.slots.len();
        let mut last = Vec::with_capacity(ring.len);
        for k in 1..=ring.len {
            let i = (ring.next + n - k) % n;
            if let Some(slot) = ring.slots.get_mut(i) {
                last.push((slot.site, slot.ns, std::mem::take(&mut slot.vals)));
            }
        }
        // The next panic of this thread shows the sites passed after this one.
        ring.len = 0;
        Some((rec, last))
    });
    let (rec, last) = taken.ok().flatten().unwrap_or((None, Vec::new()));
    let Some(rec) = rec.or_else(any_live_recorder) else {
        return;
    };
    if !rec.take_rate(now) {
        rec.dropped.fetch_add(1, Ordering::Relaxed);
        queue::count_lost(queue::Lost::Rate, 1);
        return;
    }
    let mut known: Vec<&str> = last
        .iter()
        .filter_map(|(s, _, _)| s.map(|s| s.path()))
        .collect();
    crate::small::sort_unique(&mut known);
    let bt = std::backtrace::Backtrace::force_capture();
    let text = crate::hot::stack::symbolize(&bt);
    let (frames, caught) = crate::hot::stack::panic_frames(&text, &known);
    let unwinds = cfg!(panic = "unwind");
    let caught = if unwinds { caught } else { Some(false) };

    let mut r = Record::new(rec.probe.clone(), None, now);
    let out = &mut r.json;
    out.push_str(",\"probe\":");
    json::push_str(out, &rec.probe);
    out.push_str(",\"site\":");
    match info.location() {
        Some(l) => {
            let file = crate::hot::stack::short_file(l.file(), &known);
            json::push_str(out, &format!("{file}:{}", l.line()));
            let _ = write!(out, ",\"col\":{}", l.column());
        }
        None => out.push_str("null"),
    }
    out.push_str(",\"fn\":");
    match frames.first().map(|f| f.split(" (").next().unwrap_or(f)) {
        Some(f) => json::push_str(out, f),
        None => out.push_str("null"),
    }
    out.push_str(",\"kind\":\"panic\",\"thread\":");
    let thread = std::thread::current();
    match thread.name() {
        Some(n) => json::push_str(out, n),
        None => json::push_str(out, &format!("{:?}", thread.id())),
    }
    out.push_str(",\"msg\":");
    json::push_str(out, &crate::hot::panics::message(info));
    let _ = write!(out, ",\"unwinds\":{unwinds},\"caught\":");
    match caught {
        Some(c) => {
            let _ = write!(out, "{c}");
        }
        None => out.push_str("null"),
    }
    out.push_str(",\"last\":[");
    for (k, (site, ns, vals)) in last.iter().enumerate() {
        if k > 0 {
            out.push(',');
        }
        write_slot(out, *site, now.saturating_sub(*ns), vals, &rec.limits);
    }
    out.push_str("],\"stack\":[");
    for (i, f) in frames.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json::push_str(out, f);
    }
    out.push(']');
    put_back(last);
    match queue::emit_unbudgeted(r) {
        Ok(sent) => {
            rec.emitted.fetch_add(1, Ordering::Relaxed);
            // A panic nothing catches ends the thread, and often the process (an abort, the
            // end of `main`, a crash reporter's `exit` in the program's hook): wait, bounded,
            // for the record to be written. A caught one goes on at once.
            if caught != Some(true) {
                queue::wait_written(sent, WRITE_WAIT);
            }
        }
        Err(_) => {
            rec.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// `{"site":"src/main.rs:42","fn":…,"ago_us":…,"vars":{…}}`: one slot of a `panic` record.
fn write_slot(
    out: &mut String,
    site: Option<&'static Site>,
    ago_ns: u64,
    vals: &Vals,
    limits: &Limits,
) {
    out.push_str("{\"site\":");
    match site {
        Some(s) => {
            json::push_str(out, &format!("{}:{}", s.path(), s.line));
            out.push_str(",\"fn\":");
            json::push_str(out, s.func());
        }
        None => out.push_str("null,\"fn\":null"),
    }
    let _ = write!(out, ",\"ago_us\":{},\"vars\":{{", ago_ns / 1000);
    for (i, (name, c)) in vals.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json::push_str(out, name);
        out.push(':');
        crate::lang::value::write_json(&c.to_value(), out, limits);
    }
    out.push_str("}}");
}

/// Gives the values' buffers back to the ring's slots (so the next hits do not allocate).
fn put_back(last: Vec<(Option<&'static Site>, u64, Vals)>) {
    let _ = RING.try_with(|ring| {
        let Ok(mut ring) = ring.try_borrow_mut() else {
            return;
        };
        for (slot, (_, _, vals)) in ring.slots.iter_mut().zip(last) {
            slot.spare
                .extend(vals.into_iter().filter_map(|(_, c)| c.into_buffer()));
        }
    });
}

/// A live `--on-panic` probe's recorder, for a thread that passed none of its sites.
fn any_live_recorder() -> Option<Arc<Recorder>> {
    let all = RECORDERS.try_lock().ok()?;
    all.iter().filter_map(Weak::upgrade).find(|r| r.is_live())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_keeps_the_last_sites_newest_first_and_reuses_its_buffers() {
        static NAMES: [&str; 2] = ["n", "text"];
        static SITES: std::sync::LazyLock<[Site; 3]> = std::sync::LazyLock::new(|| {
            [
                Site::leaked("src/a.rs", 1, "a::f", crate::SiteKind::Entry, &NAMES),
                Site::leaked("src/a.rs", 2, "a::f", crate::SiteKind::Line, &NAMES),
                Site::leaked("src/a.rs", 3, "a::f", crate::SiteKind::Line, &NAMES),
            ]
        });
        let rec = Recorder::new(
            "p9".into(),
            2,
            Limits::default(),
            10,
            Arc::default(),
            Arc::default(),
        );
        let long = "x".repeat(100);
        for (i, site) in SITES.iter().enumerate() {
            let n = i as u64;
            let vals: [Val<'_>; 2] = [&crate::ByCopy(n), &crate::ByRef(&long)];
            record(&rec, site, &vals, 0, 5);
            crate::hot::capture::hit_done();
        }
        let (lines, values, spare) = RING.with(|r| {
            let r = r.borrow();
            let n = r.slots.len();
            let newest_first: Vec<&Slot> = (1..=r.len)
                .filter_map(|k| r.slots.get((r.next + n - k) % n))
                .collect();
            (
                newest_first
                    .iter()
                    .map(|s| s.site.map_or(0, |s| s.line))
                    .collect::<Vec<_>>(),
                newest_first
                    .iter()
                    .map(|s| format!("{:?}", s.vals[0].1.to_value()))
                    .collect::<Vec<_>>(),
                r.slots.iter().map(|s| s.spare.len()).sum::<usize>(),
            )
        });
        assert_eq!(lines, [3, 2], "two slots, newest first");
        assert_eq!(values, ["Int(2)", "Int(1)"]);
        // The third hit overwrote the first slot and took its string's buffer back.
        assert_eq!(spare, 0);
        // A second value of the same hit is not recorded twice.
        let vals: [Val<'_>; 2] = [&crate::ByCopy(7u64), &crate::ByRef(&long)];
        record(&rec, &SITES[0], &vals, 0, 5);
        record(&rec, &SITES[1], &vals, 0, 5);
        crate::hot::capture::hit_done();
        let newest = RING.with(|r| {
            let r = r.borrow();
            let n = r.slots.len();
            r.slots
                .get((r.next + n - 1) % n)
                .and_then(|s| s.site)
                .map_or(0, |s| s.line)
        });
        assert_eq!(newest, 1, "one slot per hit");
        rec.stop();
    }
}
