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
    // Start after the capture's own frames: std's backtrace, the runtime and the sites crate
    // (`lprobe_sites::hit`, the register-saving trampoline) down to the first frame of the
    // program. Further down, lprobe's frames are plumbing between the program's (`cold` running
    // a body's instrumented copy, `again` a timed second call, and the program's closures
    // inlined into them) and are left out, not cut at: cutting at the last one lost every
    // frame above a function written twice.
    let start = raw
        .iter()
        .position(|(n, loc)| is_lprobe(n, loc.as_deref()))
        .and_then(|first| {
            raw.iter()
                .skip(first)
                .position(|(n, loc)| {
                    !is_lprobe(n, loc.as_deref()) && !is_std(n) && !is_std_file(loc.as_deref())
                })
                .map(|k| first + k)
        })
        .unwrap_or(0);
    let mut out: Vec<String> = raw
        .into_iter()
        .skip(start)
        .filter(|(n, loc)| !is_lprobe(n, loc.as_deref()))
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

/// A frame of lprobe's runtime, of its hot path (`probe_runtime_hot`, in the runtime's
/// directory) or of a sites crate (`lprobe_sites_<package>` as a crate name). Inlined frames
/// carry short names only (line-tables-only debuginfo), so the file tells them apart too.
fn is_lprobe(name: &str, loc: Option<&str>) -> bool {
    name.starts_with("lprobe_sites")
        || name.starts_with("probe_runtime::")
        || name.starts_with("probe_runtime_hot::")
        || loc.is_some_and(|l| l.contains("lprobe/runtime/") || l.contains("lprobe/sites/"))
}

/// A location in the standard library's sources (an inlined frame's short name does not
/// say `std::`; its file does).
fn is_std_file(loc: Option<&str>) -> bool {
    loc.is_some_and(|l| {
        ["/library/core/", "/library/std/", "/library/alloc/"]
            .iter()
            .any(|d| l.contains(d))
    })
}

/// A frame of the standard library (the panic machinery, `unwrap`, iterator adapters…).
fn is_std(name: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "std::",
        "core::",
        "alloc::",
        "<std::",
        "<core::",
        "<alloc::",
        "__rustc::",
        "rust_begin_unwind",
        "rust_panic",
        "__rust_",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p))
}

/// A frame of `catch_unwind` (std's names for it over the versions; each catches a panic).
fn is_catch(name: &str) -> bool {
    name.starts_with("std::panicking::try")
        || name.starts_with("std::panicking::catch_unwind")
        || name.starts_with("std::panic::catch_unwind")
        || name == "__rust_try"
}

/// Where a thread's own code starts: std's entry of a spawned thread or of `main`, whose
/// `catch_unwind`s only turn a panic into the thread's result or the exit code.
fn is_thread_root(name: &str) -> bool {
    name.contains("__rust_begin_short_backtrace")
        || name.starts_with("std::rt::lang_start")
        || name.contains("spawn_unchecked_")
}

/// A panic's stack, from the `Display` text of a backtrace taken in the panic hook: the frames
/// from the innermost one outside the standard library outwards (lprobe's hook, the panic
/// machinery and `unwrap`'s own frame cut off), and whether a `catch_unwind` sits between the
/// panic and the thread's entry (`Some(true)`: the panic will be caught; `Some(false)`:
/// nothing catches it before std's thread or `main` boundary, which ends the thread;
/// `None`: the stack has no names, so it cannot tell).
pub(crate) fn panic_frames(text: &str, known: &[&str]) -> (Vec<String>, Option<bool>) {
    let all = frames(text, known);
    let name = |f: &str| f.split(" (").next().unwrap_or_default().to_owned();
    let start = all
        .iter()
        .position(|f| !is_std(&name(f)) && !f.contains("/rustc/"))
        .unwrap_or(0);
    let frames: Vec<String> = all.iter().skip(start).cloned().collect();
    // The catch search reads the whole text (`frames` stops at `main` and at 32 frames),
    // from the first frame outside the runtime and std on.
    let names: Vec<&str> = text
        .lines()
        .map(str::trim_start)
        .filter(|t| !t.starts_with("at "))
        .map(|t| match t.split_once(": ") {
            Some((n, rest)) if n.chars().all(|c| c.is_ascii_digit()) && !n.is_empty() => rest,
            _ => t,
        })
        .map(strip_hash)
        .filter(|n| !n.is_empty() && *n != "<unknown>")
        .collect();
    let hook = names
        .iter()
        .rposition(|n| n.starts_with("probe_runtime::"))
        .map_or(0, |i| i + 1);
    let Some(user) = names
        .iter()
        .skip(hook)
        .position(|n| !is_std(n))
        .map(|i| i + hook)
    else {
        return (frames, None);
    };
    let caught = names
        .iter()
        .skip(user)
        .take_while(|n| !is_thread_root(n))
        .any(|n| is_catch(n));
    (frames, Some(caught))
}

/// Names the innermost frame (the probed function, often inlined under a short name) with the
/// site's full function path. A function whose body is written twice runs its instrumented
/// copy as a closure called from the function: the closure's frame (at the site's line) and
/// the function's (at its first line) are one call, shown as the function at the site's line.
pub(crate) fn name_innermost(frames: &mut Vec<String>, func: &str) {
    let is_func = |frame: &str| {
        frame.find(" (").is_some_and(|i| {
            let short = &frame[..i];
            let tail = func.rsplit("::").next().unwrap_or(func);
            short == func || short.starts_with(tail) || func.ends_with(short)
        })
    };
    if frames.len() > 1 && frames[0].starts_with("{closure") && is_func(&frames[1]) {
        frames.remove(1);
    } else if !frames.first().is_some_and(|f| is_func(f)) {
        return;
    }
    if let Some(i) = frames[0].find(" (") {
        frames[0] = format!("{func}{}", &frames[0][i..]);
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

    /// A panic hook's backtrace: lprobe's frames, std's hook call and panic machinery,
    /// `unwrap`, the program, a `catch_unwind` (when `catch`), `main`'s start.
    fn panic_text(catch: bool) -> String {
        let mut t = String::from(
            "   0: std::backtrace::Backtrace::force_capture
   1: probe_runtime::hot::flight::write_record
             at /x/runtime/src/hot/flight.rs:200:5
   2: probe_runtime::hot::panics::hook
   3: <alloc::boxed::Box<F,A> as core::ops::function::Fn<Args>>::call
   4: std::panicking::panic_with_hook
   5: __rustc::rust_begin_unwind
   6: core::panicking::panic_fmt
   7: core::option::unwrap_failed
   8: core::option::Option<T>::unwrap
             at /rustc/abc/library/core/src/option.rs:1016:21
   9: app::fail
             at ./src/main.rs:32:17
  10: app::run
             at ./src/main.rs:49:20
",
        );
        if catch {
            t.push_str(
                "  11: std::panicking::catch_unwind::do_call
  12: __rust_try
  13: std::panic::catch_unwind
",
            );
        }
        t.push_str(
            "  14: app::main
             at ./src/main.rs:81:21
  15: core::ops::function::FnOnce::call_once
  16: std::sys::backtrace::__rust_begin_short_backtrace
  17: std::rt::lang_start::{{closure}}
  18: std::panicking::catch_unwind
  19: std::rt::lang_start_internal
",
        );
        t
    }

    #[test]
    fn a_panics_stack_starts_at_the_program_and_says_whether_it_is_caught() {
        let (frames, caught) = panic_frames(&panic_text(false), &[]);
        assert_eq!(
            frames,
            [
                "app::fail (src/main.rs:32)",
                "app::run (src/main.rs:49)",
                "app::main (src/main.rs:81)"
            ]
        );
        assert_eq!(
            caught,
            Some(false),
            "main's own catch_unwind does not count"
        );
        let (frames, caught) = panic_frames(&panic_text(true), &[]);
        assert_eq!(
            frames.first().map(String::as_str),
            Some("app::fail (src/main.rs:32)")
        );
        assert_eq!(caught, Some(true));
        assert_eq!(panic_frames("   0: <unknown>\n", &[]).1, None);
    }

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
    fn the_copy_of_a_body_written_twice_is_named_as_its_function() {
        let mut f = vec![
            "{closure#0} (src/billing.rs:61)".to_owned(),
            "validate (src/billing.rs:59)".to_owned(),
            "process_order (src/main.rs:28)".to_owned(),
        ];
        name_innermost(&mut f, "demo_app::billing::validate");
        assert_eq!(
            f,
            [
                "demo_app::billing::validate (src/billing.rs:61)",
                "process_order (src/main.rs:28)"
            ]
        );
        // A closure of the program called from elsewhere stays as it is.
        let mut f = vec![
            "{closure#0} (src/main.rs:12)".to_owned(),
            "map<u8, u8> (library/core/src/option.rs:1165)".to_owned(),
        ];
        name_innermost(&mut f, "app::run");
        assert_eq!(f[0], "{closure#0} (src/main.rs:12)");
    }

    #[test]
    fn lprobe_frames_between_the_programs_are_left_out_not_cut_at() {
        // A snapshot in `price`, called from `checkout`'s instrumented copy, which `cold` runs
        // (the copy's closure inlined into it), called through the trampoline's frame and the
        // hot-path crate's.
        let text = "   0: std::backtrace::Backtrace::force_capture
   1: call_once<probe_runtime::hot::hit::hit::{closure_env#1}, ()>
             at /rustc/abc/library/core/src/ops/function.rs:250:5
      catch_unwind<bool, probe_runtime::hot::hit::hit::{closure_env#1}>
             at /rustc/abc/library/std/src/panic.rs:359:14
      hit
             at /t/lprobe/runtime/src/hot/hit.rs:40:9
   2: probe_runtime_hot::armed
             at /t/lprobe/runtime/hot/src/lib.rs:16:5
      fire
             at /t/lprobe/runtime/src/hot/probe.rs:790:9
   2: probe_runtime::hot::saving::call_saving
   3: {closure#0}
             at ./src/main.rs:38:9
      price
             at ./src/main.rs:36:1
   3: {closure#0}
             at ./src/main.rs:33:5
      cold<u64, frames_app::checkout::{closure_env#0}>
             at /t/lprobe/sites/frames-app/lib.rs:280:5
   4: frames_app::checkout
             at ./src/main.rs:30:1
   5: lprobe_sites_frames_app::again
   6: frames_app::main
             at ./src/main.rs:84:5
";
        assert_eq!(
            frames(text, &[]),
            vec![
                "{closure#0} (src/main.rs:38)",
                "price (src/main.rs:36)",
                "{closure#0} (src/main.rs:33)",
                "frames_app::checkout (src/main.rs:30)",
                "frames_app::main (src/main.rs:84)",
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
