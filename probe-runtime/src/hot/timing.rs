//! Durations: a lock-free log-linear histogram (count, sum, min, max, p50/p90/p99 within ~6%), the
//! process's monotonic clock, and the per-thread start times of `tictoc` probes.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

/// Sub-buckets per power of two: 16 gives a relative error under 1/16.
const SUB: u64 = 16;
const BUCKETS: usize = (SUB as usize) + 60 * SUB as usize;

/// Nanoseconds since the runtime started, plus 2 (0 and 1 mean "no start" in a guard).
#[inline]
pub(crate) fn now_ns() -> u64 {
    monotonic_ns().saturating_sub(start().0).saturating_add(2)
}

/// The runtime's start, on the monotonic clock ([`monotonic_ns`]) and on the wall clock.
#[inline]
fn start() -> &'static (u64, SystemTime) {
    static T0: OnceLock<(u64, SystemTime)> = OnceLock::new();
    T0.get_or_init(|| (monotonic_ns(), SystemTime::now()))
}

/// The monotonic clock in nanoseconds, read with `clock_gettime` and turned into one number
/// with a multiply and an add: `Instant::elapsed` (the same clock) subtracts two
/// `timespec`s with carries and checks, a third of a clock read's instructions. A log hit
/// reads the clock once or twice.
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
#[inline]
fn monotonic_ns() -> u64 {
    #[repr(C)]
    struct Timespec {
        sec: i64,
        nsec: i64,
    }
    extern "C" {
        fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
    }
    const CLOCK_MONOTONIC: i32 = 1;
    let mut ts = Timespec { sec: 0, nsec: 0 };
    // SAFETY: `ts` is a valid, writable `struct timespec` (two 64-bit fields on this target).
    if unsafe { clock_gettime(CLOCK_MONOTONIC, &mut ts) } != 0 {
        return 0;
    }
    (ts.sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.nsec as u64)
}

/// Elsewhere: nanoseconds since the first reading, from `Instant`.
#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
#[inline]
fn monotonic_ns() -> u64 {
    static ORIGIN: OnceLock<std::time::Instant> = OnceLock::new();
    ORIGIN
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_nanos() as u64
}

/// The wall-clock time of a [`now_ns`] reading (for record timestamps: one clock read per
/// hit serves the rate limit, the budget and the timestamp).
pub(crate) fn wall(ns: u64) -> SystemTime {
    start().1 + Duration::from_nanos(ns.saturating_sub(2))
}

fn bucket(ns: u64) -> usize {
    if ns < SUB {
        return ns as usize;
    }
    let e = 63 - u64::from(ns.leading_zeros()); // >= 4
    let sub = (ns >> (e - 4)) & (SUB - 1);
    ((SUB + (e - 4) * SUB + sub) as usize).min(BUCKETS - 1)
}

/// Upper bound of a bucket (the value reported for a quantile falling in it).
fn bucket_high(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB {
        return i;
    }
    let e = (i - SUB) / SUB + 4;
    let sub = (i - SUB) % SUB;
    let low = (SUB + sub) << (e - 4);
    low.saturating_add((1u64 << (e - 4)) - 1)
}

/// A histogram of durations in nanoseconds.
#[derive(Debug)]
pub struct Hist {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    /// Total of the recorded durations (what a Prometheus summary's `_sum` reports).
    sum: AtomicU64,
    min: AtomicU64,
    max: AtomicU64,
}

/// A summary of a histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub count: u64,
    pub min: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
    /// Nanoseconds of all recorded durations together (wraps after 584 years of them).
    pub sum: u64,
}

impl Default for Hist {
    fn default() -> Self {
        Hist {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            min: AtomicU64::new(u64::MAX),
            max: AtomicU64::new(0),
        }
    }
}

impl Hist {
    #[inline]
    pub fn record(&self, ns: u64) {
        if let Some(b) = self.buckets.get(bucket(ns)) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(ns, Ordering::Relaxed);
        self.min.fetch_min(ns, Ordering::Relaxed);
        self.max.fetch_max(ns, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn stats(&self) -> Stats {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        let (min, max) = (
            self.min.load(Ordering::Relaxed),
            self.max.load(Ordering::Relaxed),
        );
        let q = |f: f64| -> u64 {
            if total == 0 {
                return 0;
            }
            let want = ((total as f64) * f).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= want {
                    return bucket_high(i).clamp(min, max);
                }
            }
            max
        };
        Stats {
            count: total,
            min: if total == 0 { 0 } else { min },
            p50: q(0.50),
            p90: q(0.90),
            p99: q(0.99),
            max,
            sum: self.sum.load(Ordering::Relaxed),
        }
    }
}

impl Stats {
    /// `{"count":…,"min_ns":…,"p50_ns":…,"p90_ns":…,"p99_ns":…,"max_ns":…,"sum_ns":…}`
    pub fn write_json(&self, out: &mut String) {
        let _ = write!(
            out,
            "{{\"count\":{},\"min_ns\":{},\"p50_ns\":{},\"p90_ns\":{},\"p99_ns\":{},\"max_ns\":{},\"sum_ns\":{}}}",
            self.count, self.min, self.p50, self.p90, self.p99, self.max, self.sum
        );
    }
}

thread_local! {
    /// Start times of tictoc probes on this thread: (probe address, start).
    static TICS: RefCell<Vec<(usize, u64)>> = const { RefCell::new(Vec::new()) };
}

/// Most tictoc starts remembered per thread.
const MAX_TICS: usize = 64;

/// Remembers that this thread passed the start of tictoc probe `key`.
#[inline]
pub(crate) fn tic(key: usize) {
    let now = now_ns();
    let _ = TICS.try_with(|t| {
        let mut t = t.borrow_mut();
        if let Some(e) = t.iter_mut().find(|e| e.0 == key) {
            e.1 = now;
        } else {
            if t.len() >= MAX_TICS {
                t.remove(0);
            }
            t.push((key, now));
        }
    });
}

/// Time since this thread passed the start of `key`, consuming the start.
#[inline]
pub(crate) fn toc(key: usize) -> Option<u64> {
    let now = now_ns();
    TICS.try_with(|t| {
        let mut t = t.borrow_mut();
        let i = t.iter().position(|e| e.0 == key)?;
        let (_, start) = t.swap_remove(i);
        Some(now.saturating_sub(start))
    })
    .ok()
    .flatten()
}

/// What the calling thread has used so far: CPU time (user and system, in nanoseconds, at
/// the kernel's microsecond resolution) and how many times the scheduler took the CPU from it
/// (involuntary context switches). One `getrusage(RUSAGE_THREAD)` call: read only for the hits
/// a time budget must verify (see `Probe::fire`), never on a dormant or ordinary armed hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ThreadUsage {
    pub cpu_ns: u64,
    pub preempted: u64,
}

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
#[inline]
pub(crate) fn thread_usage() -> Option<ThreadUsage> {
    #[repr(C)]
    struct Timeval {
        sec: i64,
        usec: i64,
    }
    /// Linux's `struct rusage` on 64-bit targets: two `timeval`s and fourteen `long`s, of which
    /// the last is `ru_nivcsw`.
    #[repr(C)]
    struct Rusage {
        utime: Timeval,
        stime: Timeval,
        longs: [i64; 14],
    }
    extern "C" {
        fn getrusage(who: i32, usage: *mut Rusage) -> i32;
    }
    const RUSAGE_THREAD: i32 = 1;
    let mut u = Rusage {
        utime: Timeval { sec: 0, usec: 0 },
        stime: Timeval { sec: 0, usec: 0 },
        longs: [0; 14],
    };
    // SAFETY: `u` is a valid, writable `struct rusage` for this target's layout.
    if unsafe { getrusage(RUSAGE_THREAD, &mut u) } != 0 {
        return None;
    }
    let us = |t: &Timeval| {
        (t.sec as u64)
            .wrapping_mul(1_000_000)
            .wrapping_add(t.usec as u64)
    };
    Some(ThreadUsage {
        cpu_ns: us(&u.utime).wrapping_add(us(&u.stime)).wrapping_mul(1_000),
        preempted: u.longs[13] as u64,
    })
}

/// Elsewhere: unknown (a time budget then trusts the monotonic clock alone).
#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
#[inline]
pub(crate) fn thread_usage() -> Option<ThreadUsage> {
    None
}

/// What a verified hit costs the application (see `Probe::fire`): its wall time, unless the
/// scheduler took the CPU from the thread during it (`before`/`after` differ in `preempted`);
/// then its CPU time (at most the wall time), since the time spent waiting for the CPU was
/// not the probe's. A hit that blocks (a `Debug` impl waiting on a lock) is not preempted: its
/// wall time counts, as the application waited for it.
pub(crate) fn hit_cost(wall: u64, before: Option<ThreadUsage>, after: Option<ThreadUsage>) -> u64 {
    match (before, after) {
        (Some(b), Some(a)) if a.preempted != b.preempted => {
            a.cpu_ns.saturating_sub(b.cpu_ns).min(wall)
        }
        _ => wall,
    }
}

/// Bytes of stack left below the current frame on this thread, if known.
#[inline]
pub(crate) fn stack_left() -> Option<usize> {
    let marker = 0u8;
    let here = std::hint::black_box(&marker) as *const u8 as usize;
    let low = stack_low()?;
    Some(here.saturating_sub(low))
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[inline]
fn stack_low() -> Option<usize> {
    use std::cell::Cell;
    thread_local! {
        /// The lowest address of this thread's stack: 0 unknown yet, 1 unavailable.
        static LOW: Cell<usize> = const { Cell::new(0) };
    }
    #[repr(C, align(16))]
    struct Attr([u8; 128]);
    extern "C" {
        fn pthread_self() -> usize;
        fn pthread_getattr_np(thread: usize, attr: *mut Attr) -> i32;
        fn pthread_attr_getstack(attr: *const Attr, addr: *mut usize, size: *mut usize) -> i32;
        fn pthread_attr_destroy(attr: *mut Attr) -> i32;
    }
    let low = LOW.try_with(|l| {
        if l.get() == 0 {
            let mut attr = Attr([0; 128]);
            let (mut addr, mut size) = (0usize, 0usize);
            // SAFETY: `attr` is large enough and aligned for glibc's pthread_attr_t (56 or
            // 64 bytes); it is initialised by pthread_getattr_np and destroyed after use.
            let got = unsafe {
                pthread_getattr_np(pthread_self(), &mut attr) == 0 && {
                    let ok = pthread_attr_getstack(&attr, &mut addr, &mut size) == 0;
                    pthread_attr_destroy(&mut attr);
                    ok
                }
            };
            l.set(if got && addr > 1 { addr } else { 1 });
        }
        l.get()
    });
    low.ok().filter(|l| *l > 1)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
#[inline]
fn stack_low() -> Option<usize> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preempted_hit_costs_its_cpu_time_and_a_blocked_one_its_wall_time() {
        let u = |cpu_ns, preempted| Some(ThreadUsage { cpu_ns, preempted });
        // Not preempted (it ran, or it blocked): the wall time.
        assert_eq!(hit_cost(5_000_000, u(1_000, 3), u(2_000, 3)), 5_000_000);
        // Preempted: the CPU time it used, never more than the wall time.
        assert_eq!(hit_cost(5_000_000, u(1_000, 3), u(9_000, 4)), 8_000);
        assert_eq!(hit_cost(5_000, u(0, 3), u(9_000, 4)), 5_000);
        // Unknown usage: the wall time.
        assert_eq!(hit_cost(7, None, u(1, 1)), 7);
        // The real reading works here, and CPU time only grows.
        #[cfg(target_os = "linux")]
        check_real_usage();
    }

    /// Two threads that spin on one CPU take it from each other: each sees itself preempted,
    /// and what a spin costs it is its CPU time, well under its wall time.
    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    #[test]
    fn a_thread_sharing_its_cpu_sees_itself_preempted() {
        extern "C" {
            fn sched_setaffinity(pid: i32, size: usize, mask: *const [u64; 16]) -> i32;
        }
        let pin = || {
            let mut mask = [0u64; 16];
            mask[0] = 1;
            // SAFETY: `mask` is a 1024-bit cpu_set_t; pid 0 is the calling thread.
            unsafe { sched_setaffinity(0, std::mem::size_of_val(&mask), &mask) == 0 }
        };
        let spin = move || {
            if !pin() {
                return None;
            }
            let before = thread_usage()?;
            let start = now_ns();
            while now_ns() - start < 200_000_000 {
                std::hint::spin_loop();
            }
            let wall = now_ns() - start;
            Some((wall, before, thread_usage()?))
        };
        let other = std::thread::spawn(spin);
        let mine = spin();
        let theirs = other.join().expect("spinning thread");
        let (Some((wall, before, after)), Some(_)) = (mine, theirs) else {
            eprintln!("no CPU affinity here: skipped");
            return;
        };
        assert!(after.preempted > before.preempted, "{before:?} {after:?}");
        let cost = hit_cost(wall, Some(before), Some(after));
        assert!(cost < wall * 9 / 10, "cost {cost} of wall {wall}");
    }

    #[cfg(target_os = "linux")]
    fn check_real_usage() {
        let a = thread_usage().expect("getrusage on Linux");
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(std::hint::black_box(i));
        }
        std::hint::black_box(x);
        let b = thread_usage().expect("getrusage on Linux");
        assert!(
            b.cpu_ns >= a.cpu_ns && b.preempted >= a.preempted,
            "{a:?} {b:?}"
        );
    }

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut last = 0;
        for ns in [
            0u64,
            1,
            15,
            16,
            17,
            31,
            32,
            100,
            1_000,
            123_456,
            10_000_000_000,
            u64::MAX,
        ] {
            let b = bucket(ns);
            assert!(b >= last, "{ns}");
            last = b;
            assert!(bucket_high(b) >= ns, "{ns} -> {}", bucket_high(b));
            assert!(
                bucket_high(b) - ns <= ns / 16 + 1,
                "{ns} -> {}",
                bucket_high(b)
            );
            let _ = b;
        }
    }

    #[test]
    fn quantiles_of_a_uniform_spread() {
        let h = Hist::default();
        for ns in 1..=1000u64 {
            h.record(ns * 1000);
        }
        let s = h.stats();
        assert_eq!((s.count, s.min, s.max), (1000, 1000, 1_000_000));
        assert_eq!(s.sum, 1000 * 1001 / 2 * 1000);
        let mut json = String::new();
        s.write_json(&mut json);
        assert!(json.ends_with(",\"sum_ns\":500500000}"), "{json}");
        for (got, want) in [(s.p50, 500_000u64), (s.p90, 900_000), (s.p99, 990_000)] {
            assert!(got >= want && got <= want + want / 16, "{got} vs {want}");
        }
    }

    #[test]
    fn stack_left_is_known_and_shrinks_with_depth() {
        fn deeper(n: u32) -> Option<usize> {
            let pad = [0u8; 1024];
            std::hint::black_box(&pad);
            if n == 0 {
                stack_left()
            } else {
                deeper(n - 1)
            }
        }
        if let (Some(top), Some(deep)) = (stack_left(), deeper(8)) {
            assert!(top > deep, "{top} vs {deep}");
            assert!(top < 64 << 20, "{top}");
        }
        let small = std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(stack_left)
            .expect("spawn")
            .join()
            .expect("join");
        if let Some(left) = small {
            assert!(left < 64 * 1024, "{left}");
        }
    }

    #[test]
    fn tic_toc_pairs_per_thread() {
        tic(7);
        assert!(toc(7).is_some());
        assert!(toc(7).is_none());
        assert!(toc(8).is_none());
    }
}
