//! What every fuzz target checks besides "no panic": bounded time per input (CPU time of the
//! thread, so a busy machine does not fail a run, plus a wall-clock bound for hangs in system
//! calls) and bounded memory (a counting allocator: no single input may hold more than
//! [`MAX_LIVE_BYTES`] at once).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Most CPU time one input may take.
pub const MAX_CPU: Duration = Duration::from_millis(100);
/// Most wall-clock time one input may take (socket and file targets wait on system calls).
pub const MAX_WALL: Duration = Duration::from_secs(2);
/// Most bytes live at once while one input runs (inputs are at most a few KiB).
pub const MAX_LIVE_BYTES: usize = 256 << 20;

static LIVE: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, refusing (so the process aborts with "memory allocation of N bytes
/// failed", a crash libFuzzer saves) any allocation past [`MAX_LIVE_BYTES`] live.
pub struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size() > MAX_LIVE_BYTES {
            LIVE.fetch_sub(l.size(), Ordering::Relaxed);
            return std::ptr::null_mut();
        }
        System.alloc(l)
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        if LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size() > MAX_LIVE_BYTES {
            LIVE.fetch_sub(l.size(), Ordering::Relaxed);
            return std::ptr::null_mut();
        }
        System.alloc_zeroed(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if new > l.size() {
            let grow = new - l.size();
            if LIVE.fetch_add(grow, Ordering::Relaxed) + grow > MAX_LIVE_BYTES {
                LIVE.fetch_sub(grow, Ordering::Relaxed);
                return std::ptr::null_mut();
            }
        } else {
            LIVE.fetch_sub(l.size() - new, Ordering::Relaxed);
        }
        let q = System.realloc(p, l, new);
        if q.is_null() && new > l.size() {
            LIVE.fetch_sub(new - l.size(), Ordering::Relaxed);
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Runs one input's work and fails (panics, which libFuzzer reports as a crash and saves the
/// input) when it took over [`MAX_CPU`] of CPU or [`MAX_WALL`] of wall-clock time.
pub fn bounded<R>(what: &str, f: impl FnOnce() -> R) -> R {
    let (cpu, wall) = (thread_cpu(), Instant::now());
    let r = f();
    let (cpu, wall) = (thread_cpu() - cpu, wall.elapsed());
    assert!(
        cpu <= MAX_CPU && wall <= MAX_WALL,
        "{what}: one input took {cpu:?} of CPU, {wall:?} of wall-clock time (bounds: {MAX_CPU:?}, {MAX_WALL:?})"
    );
    r
}

/// Fails when `out` is longer than `max` bytes.
pub fn bounded_len(what: &str, out: &str, max: usize) {
    assert!(
        out.len() <= max,
        "{what}: {} bytes of output, over the bound of {max}",
        out.len()
    );
}

/// The input as text, the way the runtime receives it from a file (lossy UTF-8).
pub fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

pub mod tree;
