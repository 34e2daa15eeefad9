//! Turns a symbolized `std::backtrace::Backtrace` into frames `"fn (file:line)"`, innermost
//! first, starting at the instrumented function (the runtime's own frames are cut off).

use std::backtrace::Backtrace;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

/// Captures in progress on application threads.
static CAPTURING: AtomicUsize = AtomicUsize::new(0);
/// Symbolizations in progress: the output thread's, and a panicking thread's (`flight`).
static SYMBOLIZING: AtomicUsize = AtomicUsize::new(0);

/// What a snapshot's stack shows when it could not be captured without waiting.
pub(crate) const NOT_CAPTURED: &str =
    "<stack not captured: the output thread was symbolizing another snapshot's stack>";

/// Captures the current stack (unsymbolized), unless the output thread is symbolizing.
///
/// std's `Backtrace` takes one process-wide lock both to capture and to symbolize, and the
/// first symbolization of a program (loading its debug info) can hold it for a long time. An
/// application thread must not wait on that, so the two sides shake hands (Dekker-style, on
/// sequentially consistent atomics): a capture announces itself and then looks for a
/// symbolization; a symbolization announces itself and then waits for announced captures
/// to finish. Either the capture sees the symbolization and skips (`None`), or the
/// symbolization sees the capture and waits for it — never the other way round.
pub(crate) fn capture() -> Option<Backtrace> {
    CAPTURING.fetch_add(1, SeqCst);
    let bt = (SYMBOLIZING.load(SeqCst) == 0).then(Backtrace::force_capture);
    CAPTURING.fetch_sub(1, SeqCst);
    bt
}

/// Symbolizes a captured stack into its `Display` text (the output thread, and a panicking
/// thread writing its `panic` record).
pub(crate) fn symbolize(bt: &Backtrace) -> String {
    struct Done;
    impl Drop for Done {
        fn drop(&mut self) {
            SYMBOLIZING.fetch_sub(1, SeqCst);
        }
    }
    SYMBOLIZING.fetch_add(1, SeqCst);
    let _done = Done;
    while CAPTURING.load(SeqCst) != 0 {
        std::thread::yield_now();
    }
    bt.to_string()
}

/// Most frames kept in a snapshot.
pub(crate) const MAX_FRAMES: usize = 32;

/// Parses the `Display` text of a backtrace. Inlined functions appear as their own frames.
/// A location ending in one of `known` (workspace-relative source paths) is shortened to it.
pub(crate) fn frames(text: &str, known: &[&str]) -> Vec<String> {
    let mut raw: Vec<(String, Option<String>)> = Vec::new();
    for line in text.lines() {
        let t = line.trim_start();
        if let Some(loc) = t.strip_prefix("at ") {
            if let Some(last) = raw.last_mut() {
                if last.1.is_none() {
                    last.1 = Some(relative(short_location(loc), known));
                }
            }
            continue;
        }
        let name = match t.split_once(": ") {
            Some((n, rest)) if n.chars().all(|c| c.is_ascii_digit()) && !n.is_empty() => rest,
            _ => t,
        };
        if !name.is_empty() {
            raw.push((strip_hash(name).to_owned(), None));
        }
    }
    // Start after the last runtime frame (`lprobe_sites::hit` and below it). Inlined frames
    // carry short names only (line-tables-only debuginfo), so the file tells them apart too.
    let start = raw
        .iter()
        .rposition(|(n, loc)| {
            n.starts_with("lprobe_sites::")
                || n.starts_with("probe_runtime::")
                || loc.as_deref().is_some_and(|l| {
                    l.contains("lprobe/runtime/src/") || l.contains("lprobe/sites/")
                })
        })
        .map_or(0, |i| i + 1);
    let mut out: Vec<String> = raw
        .into_iter()
        .skip(start)
        .take_while(|(n, _)| {
            !n.starts_with("std::rt::lang_start")
                && !n.contains("__rust_begin_short_backtrace")
                && !n.starts_with("__libc_start")
        })
        .take(MAX_FRAMES)
        .map(|(n, loc)| match loc {
            Some(l) => format!("{n} ({l})"),
            None => n,
        })
        .collect();
    // `fn main` is reached through `FnOnce::call_once` from the runtime's start-up.
    while out.last().is_some_and(|f| {
        f.starts_with("core::ops::function::FnOnce::call_once") || f.starts_with("call_once<fn()")
    }) {
        out.pop();
    }
    out
}

/// Frames of std's and core's panic machinery, above the frame that panicked.
fn is_panic_machinery(name: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "std::panicking::",
        "core::panicking::",
        "std::sys::backtrace::__rust_end_short_backtrace",
        "rust_begin_unwind",
        "__rustc::rust_begin_unwind",
        "begin_panic",
        "core::option::unwrap_failed",
        "core::option::expect_failed",
        "core::result::unwrap_failed",
        "core::slice::index::slice_",
        "core::str::slice_error_fail",
        "std::backtrace::",
        "std::backtrace_rs::",
        "<alloc::boxed::Box<F,A> as core::ops::function::Fn",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p))
}

/// A frame of `catch_unwind` (std's names for it over the versions; each catches a panic).
fn is_catch(name: &str) -> bool {
    name.starts_with("std::panicking::try")
        || name.starts_with("std::panicking::catch_unwind")
        || name.starts_with("std::panic::catch_unwind")
        || name.starts_with("__rust_try")
}

/// Where a thread's own code starts: std's entry of a spawned thread or of `main`, whose
/// `catch_unwind`s only turn a panic into the thread's result or the exit code.
fn is_thread_root(name: &str) -> bool {
    name.contains("__rust_begin_short_backtrace")
        || name.starts_with("std::rt::lang_start")
        || name.contains("spawn_unchecked_")
}

/// A panic's stack, from the `Display` text of a backtrace taken in the panic hook: the frames
/// from the one that panicked outwards (lprobe's hook and the panic machinery cut off), and
/// whether a `catch_unwind` sits between the panic and the thread's entry (`Some(true)`: the
/// panic will be caught; `Some(false)`: nothing catches it before std's thread or `main`
/// boundary; `None`: the stack has no names, so it cannot tell).
pub(crate) fn panic_frames(text: &str, known: &[&str]) -> (Vec<String>, Option<bool>) {
    let all = frames(text, known);
    let names: Vec<&str> = all
        .iter()
        .map(|f| f.split(" (").next().unwrap_or(f))
        .collect();
    // The hook's own frames end at the last panic-machinery frame near the top.
    let start = names
        .iter()
        .take(48)
        .rposition(|n| is_panic_machinery(n) && !is_catch(n))
        .map_or(0, |i| i + 1);
    let frames: Vec<String> = all.into_iter().skip(start).collect();
    // `frames` stops at `main`'s entry: the catch search reads the whole text.
    let mut named = false;
    let mut caught = false;
    let mut past_panic = false;
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("at ") {
            continue;
        }
        let name = match t.split_once(": ") {
            Some((n, rest)) if n.chars().all(|c| c.is_ascii_digit()) && !n.is_empty() => rest,
            _ => t,
        };
        let name = strip_hash(name);
        if name.is_empty() || name == "<unknown>" {
            continue;
        }
        named = true;
        if name.contains("rust_panic_with_hook") || name.contains("begin_panic") {
            past_panic = true;
            continue;
        }
        if !past_panic {
            continue;
        }
        if is_thread_root(name) {
            break;
        }
        if is_catch(name) {
            caught = true;
            break;
        }
    }
    (frames, (named && past_panic).then_some(caught))
}

/// Names the innermost frame (the probed function, often inlined under a short name) with the
/// site's full function path.
pub(crate) fn name_innermost(frames: &mut [String], func: &str) {
    if let Some(first) = frames.first_mut() {
        if let Some(i) = first.find(" (") {
            let short = &first[..i];
            let tail = func.rsplit("::").next().unwrap_or(func);
            if short == func || short.starts_with(tail) || func.ends_with(short) {
                *first = format!("{func}{}", &first[i..]);
            }
        }
    }
}

/// `./src/main.rs:42:9` → `src/main.rs:42`.
fn short_location(loc: &str) -> String {
    let loc = loc.trim().trim_start_matches("./");
    match loc.rsplit_once(':') {
        Some((rest, col)) if col.chars().all(|c| c.is_ascii_digit()) && rest.contains(':') => {
            rest.to_owned()
        }
        _ => loc.to_owned(),
    }
}

/// `/home/u/ws/src/main.rs:42` → `src/main.rs:42` when `src/main.rs` is a known source file.
fn relative(loc: String, known: &[&str]) -> String {
    let file = loc.rsplit_once(':').map_or(loc.as_str(), |(f, _)| f);
    for k in known {
        if file.len() > k.len() && file.ends_with(k) && file[..file.len() - k.len()].ends_with('/')
        {
            return loc[file.len() - k.len()..].to_owned();
        }
    }
    loc
}

/// A source path as a panic's location gives it, shortened like a frame's: `./src/main.rs`
/// → `src/main.rs`, `/home/u/ws/src/main.rs` → `src/main.rs` when that is in `known`.
pub(crate) fn short_file(file: &str, known: &[&str]) -> String {
    let file = file.trim_start_matches("./");
    let with_line = relative(format!("{file}:0"), known);
    with_line
        .strip_suffix(":0")
        .map_or_else(|| file.to_owned(), str::to_owned)
}

/// `demo_app::main::h0123456789abcdef` → `demo_app::main`.
fn strip_hash(name: &str) -> &str {
    match name.rsplit_once("::h") {
        Some((head, hash)) if hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()) => {
            head
        }
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_runtime_frames_and_keeps_inlined_ones() {
        let text = "   0: std::backtrace::Backtrace::force_capture
             at /rustc/abc/library/std/src/backtrace.rs:312:13
   1: probe_runtime::probe::hit
             at /x/probe-runtime/src/probe.rs:10:5
   2: lprobe_sites::hit::h0123456789abcdef
             at /x/sites/lib.rs:3:1
   3: demo_app::billing::total
             at ./src/billing.rs:42:9
      demo_app::process
             at ./src/main.rs:57:13
   4: demo_app::main
             at ./src/main.rs:80:5
   5: core::ops::function::FnOnce::call_once
             at /rustc/abc/library/core/src/ops/function.rs:250:5
   6: std::sys::backtrace::__rust_begin_short_backtrace
   7: std::rt::lang_start::{{closure}}
";
        assert_eq!(
            frames(text, &[]),
            vec![
                "demo_app::billing::total (src/billing.rs:42)",
                "demo_app::process (src/main.rs:57)",
                "demo_app::main (src/main.rs:80)",
            ]
        );
    }

    #[test]
    fn inlined_short_names_are_cut_by_file_and_named_from_the_site() {
        let known = ["src/main.rs"];
        let text = "   0: fire
             at target/lprobe/runtime/src/probe.rs:316:9
      hit
             at target/lprobe/runtime/src/probe.rs:398:5
      run<std::io::stdio::StdoutLock>
             at ./src/main.rs:57:13
   1: demo_app::main
             at /home/u/ws/src/main.rs:133:5
";
        let mut f = frames(text, &known);
        name_innermost(&mut f, "demo_app::run");
        assert_eq!(
            f,
            vec![
                "demo_app::run (src/main.rs:57)",
                "demo_app::main (src/main.rs:133)"
            ]
        );
    }
}
