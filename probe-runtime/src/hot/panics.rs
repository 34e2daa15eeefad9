//! Panics of lprobe's making never reach the program's panic hook, and the runtime's own
//! threads survive theirs.
//!
//! A panic runs the process-wide hook before it unwinds, so a `Debug` impl that panics inside
//! a capture would run whatever hook the program installed (a crash reporter that exits, say)
//! even though the capture catches the unwinding. lprobe's hook ([`hook`]) keeps quiet about
//! panics raised inside the runtime (a capture on an application thread, or one of lprobe's
//! threads) and hands every other panic to the hook it wraps. The program may replace the hook
//! at any time (`set_hook` after `main` starts, or `take_hook` and a chaining hook), so before
//! running user `Debug` code the runtime makes sure its hook is the outermost one
//! ([`ensure`]).
//!
//! **Lock-free when nothing changed:** [`INSTALLED`] holds the generation of the hook lprobe
//! installed last while that hook is known to be std's current one; the hook's box owns a
//! [`Token`] whose drop clears it, and std drops the outermost hook exactly when the program
//! replaces it (`set_hook`). So [`ensure`] is one atomic load per hit, and takes std's hook
//! lock ([`check`]: take the hook, put it back when it is lprobe's, recognised by its
//! address, else wrap it) only after a replacement. The one change that drops nothing is
//! `take_hook` followed by a chaining `set_hook` (lprobe's box then lives inside the
//! program's hook): the control thread runs [`check`] every tick while probes are armed
//! ([`revalidate`]), which finds it and wraps the program's hook again.
//! The slow path runs only on threads that are not panicking (`take_hook` panics there, and
//! waits on the hook's lock a panicking thread holds).

use std::panic::PanicHookInfo;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

type Hook = Box<dyn Fn(&PanicHookInfo<'_>) + Sync + Send + 'static>;

/// The address of the hook lprobe installed last (its box's data): 0 for none.
static OURS: AtomicUsize = AtomicUsize::new(0);
/// The generation of the hook lprobe installed last, while it is known to be std's current
/// hook; 0 when it may not be (never installed, replaced, or not yet checked). Set before the
/// hook is installed and cleared by its [`Token`]'s drop, so a replacement that races with an
/// installation always leaves 0.
static INSTALLED: AtomicU64 = AtomicU64::new(0);
/// The last generation handed out.
static GENERATION: AtomicU64 = AtomicU64::new(0);
/// Held while a thread takes and puts back the hook, so that two threads checking at once
/// never lose the program's hook (the second would take the default hook the first left).
static SWAPPING: AtomicBool = AtomicBool::new(false);
/// Threads running the program's hook through lprobe's: a hook change would wait for them.
static IN_PROGRAM_HOOK: AtomicUsize = AtomicUsize::new(0);

/// The address a hook's box points at.
fn addr(h: &Hook) -> usize {
    &**h as *const (dyn Fn(&PanicHookInfo<'_>) + Sync + Send) as *const () as usize
}

/// Owned by the box of each hook lprobe installs: when std drops that box (the program
/// replaced the hook), the next [`ensure`] checks again.
struct Token(u64);

impl Drop for Token {
    fn drop(&mut self) {
        let _ = INSTALLED.compare_exchange(self.0, 0, Ordering::AcqRel, Ordering::Relaxed);
    }
}

/// Makes lprobe's hook the outermost one (wrapping whatever the program installed since).
/// One atomic load while lprobe's hook is known to be installed; else [`check`]. Never waits.
#[inline]
pub(crate) fn ensure() {
    if INSTALLED.load(Ordering::Acquire) == 0 {
        check();
    }
}

/// The control thread's periodic [`check`], whatever [`INSTALLED`] says: finds a hook the
/// program took and chained (which dropped nothing).
pub(crate) fn revalidate() {
    check();
}

/// Takes std's hook and puts it back if it is lprobe's, else wraps it. Does nothing on a
/// panicking thread, while a thread runs the program's hook, or while another thread is
/// checking.
fn check() {
    if std::thread::panicking() || IN_PROGRAM_HOOK.load(Ordering::Relaxed) > 0 {
        return;
    }
    if SWAPPING.swap(true, Ordering::Acquire) {
        return;
    }
    let current = std::panic::take_hook();
    if addr(&current) == OURS.load(Ordering::Relaxed) {
        std::panic::set_hook(current);
    } else {
        let generation = GENERATION.fetch_add(1, Ordering::Relaxed) + 1;
        let token = Token(generation);
        let ours: Hook = Box::new(move |info| {
            let _ = &token;
            hook(&current, info)
        });
        OURS.store(addr(&ours), Ordering::Relaxed);
        // Before installing: a replacement right after clears it again (see `INSTALLED`).
        INSTALLED.store(generation, Ordering::Release);
        std::panic::set_hook(ours);
    }
    SWAPPING.store(false, Ordering::Release);
}

/// Decrements [`IN_PROGRAM_HOOK`] however the program's hook ends.
struct InHook;

impl Drop for InHook {
    fn drop(&mut self) {
        IN_PROGRAM_HOOK.fetch_sub(1, Ordering::Relaxed);
    }
}

fn hook(program: &Hook, info: &PanicHookInfo<'_>) {
    if in_runtime() {
        // A capture's panic: reported in its record as `<panicked: …>`.
        note_panic(message(info));
    } else if is_runtime_thread() {
        // One of lprobe's threads: its supervisor restarts it and counts it in `status`.
        note_thread_panic(info);
    } else {
        IN_PROGRAM_HOOK.fetch_add(1, Ordering::Relaxed);
        let _in = InHook;
        // lprobe's part first (the `panic` record of an `--on-panic` probe), then the
        // program's hook, always: chained, never replaced.
        if let Some(observe) = OBSERVER.get() {
            observe(info);
        }
        program(info);
    }
}

/// What lprobe does with a program's panic before the program's hook runs (the flight
/// recorder's `panic` record), set once the first `--on-panic` probe is armed. A function
/// pointer, so this module (the bottom of `hot`) names nothing above it. It must not panic:
/// a panic inside a panic hook aborts the process.
static OBSERVER: OnceLock<fn(&PanicHookInfo<'_>)> = OnceLock::new();

/// Sets [`OBSERVER`] (once; later calls change nothing).
pub(crate) fn observe_program_panics(f: fn(&PanicHookInfo<'_>)) {
    let _ = OBSERVER.set(f);
}

/// A panic's message, as `<panicked: …>` shows it.
pub(crate) fn message(info: &PanicHookInfo<'_>) -> String {
    info.payload()
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| info.payload().downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic".into())
}

/// Panics of the runtime's own threads, restarted by [`supervise`].
pub(crate) static THREAD_PANICS: AtomicU64 = AtomicU64::new(0);
/// The last one: the thread, the message and where.
static LAST_THREAD_PANIC: Mutex<Option<String>> = Mutex::new(None);

fn note_thread_panic(info: &PanicHookInfo<'_>) {
    let thread = std::thread::current();
    let at = info
        .location()
        .map(|l| format!(" at {}:{}", l.file(), l.line()))
        .unwrap_or_default();
    let text = format!(
        "{}: {}{at}",
        thread.name().unwrap_or("lprobe"),
        message(info)
    );
    if let Ok(mut last) = LAST_THREAD_PANIC.try_lock() {
        *last = Some(text);
    }
}

/// The last panic of a runtime thread, for `status`.
pub(crate) fn last_thread_panic() -> Option<String> {
    LAST_THREAD_PANIC.try_lock().ok().and_then(|l| l.clone())
}

/// Runs one of the runtime's thread loops: `body` returns when the loop is done; a panic
/// restarts it (after a pause, so a loop that panics at once does not spin), counted in
/// [`THREAD_PANICS`] and reported by `status`.
pub(crate) fn supervise(mut body: impl FnMut()) {
    runtime_thread();
    loop {
        ensure();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(&mut body)) {
            Ok(()) => return,
            Err(_) => {
                THREAD_PANICS.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(RESTART_PAUSE);
            }
        }
    }
}

/// The pause before a runtime thread's loop restarts after a panic.
const RESTART_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

thread_local! {
    /// Set while this thread is inside the runtime: a probe hit from inside a capture
    /// (a `Debug` impl calling instrumented code) returns at once instead of recursing.
    pub(crate) static IN_HIT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

thread_local! {
    /// Set on the runtime's own threads (output, control, socket).
    static RUNTIME_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks the current thread as one of the runtime's: probes never fire on it. Instrumented
/// code can run there (a user's `#[global_allocator]` serving the runtime's allocations, say),
/// and a record made from the output thread's own work would feed itself.
pub(crate) fn runtime_thread() {
    let _ = RUNTIME_THREAD.try_with(|c| c.set(true));
    let _ = IN_HIT.try_with(|c| c.set(true));
}

/// Whether the current thread is one of the runtime's.
pub(crate) fn is_runtime_thread() -> bool {
    RUNTIME_THREAD
        .try_with(std::cell::Cell::get)
        .unwrap_or(false)
}

/// Whether the current thread is inside a hit on an application thread (the panic hook stays
/// quiet then: the panic is a capture's, reported in its record).
pub(crate) fn in_runtime() -> bool {
    IN_HIT.try_with(std::cell::Cell::get).unwrap_or(false)
        && !RUNTIME_THREAD
            .try_with(std::cell::Cell::get)
            .unwrap_or(false)
}

thread_local! {
    /// The message of a panic raised while capturing, for the `<panicked: …>` marker.
    static PANIC_MSG: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Keeps a panic message raised inside the runtime.
pub(crate) fn note_panic(msg: String) {
    let _ = PANIC_MSG.try_with(|m| *m.borrow_mut() = Some(msg));
}

/// The message of the last panic raised in a capture on this thread (taken).
pub(crate) fn take_panic_message() -> Option<String> {
    PANIC_MSG.try_with(|m| m.borrow_mut().take()).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One test: both change the process-wide hook.
    #[test]
    fn the_hook_is_rewrapped_after_the_program_replaces_it_and_runtime_loops_restart() {
        in_a_process_of_its_own(
            "the_hook_is_rewrapped_after_the_program_replaces_it_and_runtime_loops_restart",
            hook_replacements,
        );
    }

    /// Runs `body` in a child process of this test binary that runs this test alone: the
    /// panic hook is process-wide, and the other tests of this binary (running in parallel)
    /// take it, check it and panic under it, which this module's test cannot tell from a
    /// program's doing.
    fn in_a_process_of_its_own(test: &str, body: fn()) {
        const ALONE: &str = "LPROBE_RUNTIME_TEST_ALONE";
        if std::env::var_os(ALONE).is_some() {
            body();
            return;
        }
        let module = module_path!();
        let path = module.split_once("::").map_or(module, |(_, rest)| rest);
        let test = format!("{path}::{test}");
        let exe = std::env::current_exe().expect("the test binary's path");
        let out = std::process::Command::new(exe)
            .args([test.as_str(), "--exact", "--test-threads=1"])
            .env(ALONE, "1")
            .output()
            .expect("run the test binary again");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{test} alone: {}\n{stdout}\n{stderr}",
            out.status
        );
    }

    fn hook_replacements() {
        static PROGRAM_HOOK_SAW_OURS: AtomicBool = AtomicBool::new(false);
        let outermost = || {
            let h = std::panic::take_hook();
            let ours = addr(&h) == OURS.load(Ordering::Relaxed);
            std::panic::set_hook(h);
            ours
        };
        ensure();
        assert!(outermost());
        assert_ne!(INSTALLED.load(Ordering::Relaxed), 0, "known installed");
        // The program replaces the hook (lprobe's is dropped): the next check sees it at once.
        std::panic::set_hook(Box::new(|info| {
            if message(info) == "the program's own" {
                PROGRAM_HOOK_SAW_OURS.store(true, Ordering::Relaxed);
            }
        }));
        assert_eq!(INSTALLED.load(Ordering::Relaxed), 0, "the drop said so");
        ensure();
        assert!(outermost(), "lprobe's hook is outermost again");
        ensure();
        // The program takes lprobe's hook and chains it: nothing is dropped, so only the
        // control thread's periodic check finds it.
        let taken = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| taken(info)));
        assert!(!outermost());
        revalidate();
        assert!(outermost(), "wrapped again by the periodic check");
        assert_ne!(INSTALLED.load(Ordering::Relaxed), 0);
        // A program panic still reaches the program's hook.
        let _ = std::thread::spawn(|| panic!("the program's own")).join();
        assert!(PROGRAM_HOOK_SAW_OURS.load(Ordering::Relaxed));

        // A runtime loop that panics is restarted, counted, and the program's hook never
        // hears of it.
        let before = THREAD_PANICS.load(Ordering::Relaxed);
        let runs = std::thread::Builder::new()
            .name("lprobe-test-loop".into())
            .spawn(|| {
                let mut runs = 0;
                supervise(|| {
                    runs += 1;
                    if runs < 3 {
                        panic!("loop {runs} failed");
                    }
                });
                runs
            })
            .expect("spawn")
            .join()
            .expect("the panics stay inside the supervisor");
        assert_eq!(runs, 3);
        assert!(THREAD_PANICS.load(Ordering::Relaxed) >= before + 2);
        let last = last_thread_panic().expect("the last panic is kept");
        assert!(last.contains("lprobe-test-loop: loop 2 failed"), "{last}");
    }
}
