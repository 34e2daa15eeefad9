//! The shadow stack behind `--snapshot --frames N`: while such a probe is armed, every entry
//! site that can be a frame ([`Site::frame`]: the runtime sees the call return) is armed too,
//! and each call through one pushes its function and its arguments' values onto a per-thread
//! stack here; the call's return (its guard's drop, or the timer of the call it makes of
//! itself again: `hit::exit`) pops it. A snapshot then copies the N innermost frames below its
//! own function's: the callers that are instrumented, with their arguments.
//!
//! **Nothing dormant:** pushing and popping happen only on the armed path (the entry sites are
//! armed like any probe's sites, through the flags), so the generated checks are unchanged and
//! a program with no frames probe armed never touches this module.
//!
//! **Each pop is matched:** a frame is stamped with the start time its call's guard or timer
//! holds ([`stamp`]), and a call's return pops the top frame only when it is that call's
//! (site and start). A call that entered before the probe was armed, or that a `--duration`
//! probe times without a frame, pops nothing.
//!
//! **Bounded, and allocation-free once warm:** the stack is a ring of [`RING`] frames (deeper
//! calls overwrite the outermost ones, which a snapshot then reports as cut), each keeping at
//! most [`MAX_VALS`] values and [`FRAME_TEXT`] bytes of `Debug` text in buffers it reuses.
//!
//! **Async:** an `async fn` is never a frame ([`Site::frame`] is false for it): its entry runs
//! at the future's first poll and its guard drops when the future completes, maybe on another
//! thread, with other tasks polled on this thread in between. So the callers of a snapshot in
//! a future (or in a function a future calls) are the instrumented non-async functions on the
//! polling thread's stack during that poll: the functions the future's own body calls down to
//! the snapshot, and those that drive the executor (a `block_on` called from an instrumented
//! function), never the futures awaiting it.

use std::cell::RefCell;

use crate::hot::capture::{Captured, Vals};
use crate::{Site, Table, Val};

/// The most frames `--frames` shows.
pub(crate) const MAX_FRAMES: usize = 32;
/// Frames kept per thread: a deeper call overwrites the outermost one.
const RING: usize = 64;
/// Values kept per frame (a function's first arguments).
const MAX_VALS: usize = 16;
/// `Debug` text kept per value, and per frame.
const VALUE_TEXT: usize = 512;
const FRAME_TEXT: usize = 2048;

/// One call on the shadow stack.
#[derive(Default)]
struct Frame {
    table: usize,
    id: u32,
    site: Option<&'static Site>,
    /// The start time its guard or timer holds (0 until [`stamp`]).
    start: u64,
    vals: Vals,
    /// With `--frame-locals`: the line of the last line site the call passed (0: none), and
    /// the values captured there.
    at: u32,
    locals: Vals,
    /// Text buffers of earlier values, kept for the next ones.
    spare: Vec<String>,
}

/// A thread's shadow stack: a ring of frames, `depth` calls deep.
#[derive(Default)]
struct Stack {
    ring: Vec<Frame>,
    /// Calls pushed and not popped.
    depth: usize,
    /// The frames below this depth were overwritten (the ring wrapped).
    lost_below: usize,
}

impl Stack {
    fn at(&mut self, depth: usize) -> Option<&mut Frame> {
        self.ring.get_mut(depth % RING)
    }
}

/// A table's key (its address, as the armed map keys it).
fn key_of(t: &'static Table) -> usize {
    t as *const Table as usize
}

thread_local! {
    static STACK: RefCell<Stack> = RefCell::new(Stack::default());
}

/// A caller's frame, copied into a snapshot record.
pub(crate) struct Copied {
    pub site: &'static Site,
    pub vals: Vals,
    /// The line of the last line site passed in the call (0: none) and its values.
    pub at: u32,
    pub locals: Vals,
}

/// The frames a snapshot copied: innermost first, and how many more callers it had.
#[derive(Default)]
pub(crate) struct Frames {
    pub frames: Vec<Copied>,
    /// Callers not shown: past the N asked for, or overwritten in the ring (`frames_more`).
    pub more: usize,
}

/// Pushes a call of entry site `id` (once per hit, whatever the number of frames probes).
/// `secret`: bit `i` set when capture `i` is a secret name. True when it pushed: the caller
/// then times the call, whose end pops it. Out of line: `Probe::fire` stays small enough to
/// be inlined into the hit (each runtime frame a snapshot's stack walk passes costs ~4k
/// instructions).
#[inline(never)]
pub(crate) fn push(
    table: &'static Table,
    id: u32,
    site: &'static Site,
    vals: &[Val<'_>],
    secret: u64,
) -> bool {
    if !crate::hot::capture::first_frame_push() {
        // Another frames probe of this hit pushed it: the call is timed all the same.
        return true;
    }
    STACK
        .try_with(|s| {
            let Ok(mut s) = s.try_borrow_mut() else {
                return false;
            };
            let s = &mut *s;
            let d = s.depth;
            if s.ring.len() < RING && s.ring.len() <= d {
                s.ring.resize_with((d + 1).min(RING), Frame::default);
            }
            if d >= RING {
                s.lost_below = s.lost_below.max(d + 1 - RING);
            }
            if d < s.lost_below {
                s.lost_below = d;
            }
            let key = key_of(table);
            let Some(f) = s.at(d) else {
                return false;
            };
            fill(f, key, id, site, vals, secret);
            s.depth = d + 1;
            true
        })
        .unwrap_or(false)
}

/// Writes a frame's values, reusing its buffers.
fn fill(f: &mut Frame, key: usize, id: u32, site: &'static Site, vals: &[Val<'_>], secret: u64) {
    for (_, c) in f.vals.drain(..).chain(f.locals.drain(..)) {
        if let Some(buf) = c.into_buffer() {
            f.spare.push(buf);
        }
    }
    f.table = key;
    f.id = id;
    f.site = Some(site);
    f.start = 0;
    f.at = 0;
    take_values(&mut f.vals, &mut f.spare, site, vals, secret);
}

/// Captures `vals` (named by `site`) into `out`, with buffers from `spare`, bounded.
fn take_values(
    out: &mut Vals,
    spare: &mut Vec<String>,
    site: &'static Site,
    vals: &[Val<'_>],
    secret: u64,
) {
    let mut text = 0;
    for (i, (name, val)) in site.names().iter().zip(vals).take(MAX_VALS).enumerate() {
        let secret = secret >> i & 1 == 1;
        let max = VALUE_TEXT.min(FRAME_TEXT.saturating_sub(text)).max(16);
        let buf = spare.pop().unwrap_or_default();
        let c = Captured::take_into(secret, val, buf, max);
        text += match &c {
            Captured::Text(t) | Captured::Cut(t) => t.len(),
            _ => 16,
        };
        out.push((name, c));
    }
}

/// With `--frame-locals`: line site `site` was passed; when the top frame is a call of its
/// function, its values become that frame's locals (the last ones before a call are the
/// call's statement's).
#[inline(never)]
pub(crate) fn at_line(table: &'static Table, site: &'static Site, vals: &[Val<'_>], secret: u64) {
    if !crate::hot::capture::first_frame_push() {
        return;
    }
    let key = key_of(table);
    let _ = STACK.try_with(|s| {
        let Ok(mut s) = s.try_borrow_mut() else {
            return;
        };
        let Some(d) = s.depth.checked_sub(1).filter(|d| *d >= s.lost_below) else {
            return;
        };
        let Some(f) = s.at(d) else {
            return;
        };
        if f.table != key || f.site.is_none_or(|fs| fs.fn_slot != site.fn_slot) {
            return;
        }
        for (_, c) in f.locals.drain(..) {
            if let Some(buf) = c.into_buffer() {
                f.spare.push(buf);
            }
        }
        f.at = site.line;
        take_values(&mut f.locals, &mut f.spare, site, vals, secret);
    });
}

/// The sites a `--frames` probe arms besides its own: every entry site that can be a frame
/// and, with `locals`, the line sites of those sites' functions.
pub(crate) fn sites(
    all: &[(&'static Table, u32, &'static Site)],
    locals: bool,
) -> Vec<(&'static Table, u32)> {
    let framed: std::collections::HashSet<(usize, u32)> = all
        .iter()
        .filter(|(_, _, s)| s.frame)
        .map(|(t, _, s)| (key_of(t), s.fn_slot))
        .collect();
    all.iter()
        .filter(|(t, _, s)| {
            s.frame
                || (locals
                    && s.kind == crate::SiteKind::Line
                    && framed.contains(&(key_of(t), s.fn_slot)))
        })
        .map(|(t, id, _)| (*t, *id))
        .collect()
}

/// The call just pushed for entry site `id` starts at `start` (what its guard or timer
/// holds): only the top frame, and only when it has no start yet, so a call timed without a
/// frame stamps nothing.
#[inline]
pub(crate) fn stamp(table: &'static Table, id: u32, start: u64) {
    let key = key_of(table);
    let _ = STACK.try_with(|s| {
        let Ok(mut s) = s.try_borrow_mut() else {
            return;
        };
        let Some(d) = s.depth.checked_sub(1) else {
            return;
        };
        if let Some(f) = s.at(d) {
            if f.start == 0 && f.table == key && f.id == id {
                f.start = start;
            }
        }
    });
}

/// A call of entry site `id` that started at `start` returned: pops its frame if it is the
/// top one (a frame overwritten in the ring is popped unchecked).
#[inline]
pub(crate) fn pop(table: &'static Table, id: u32, start: u64) {
    if start == 0 {
        return;
    }
    let key = key_of(table);
    let _ = STACK.try_with(|s| {
        let Ok(mut s) = s.try_borrow_mut() else {
            return;
        };
        let Some(d) = s.depth.checked_sub(1) else {
            return;
        };
        let lost = d < s.lost_below;
        let mine = s
            .at(d)
            .is_some_and(|f| f.table == key && f.id == id && f.start == start);
        if mine || lost {
            s.depth = d;
        }
    });
}

/// The `n` innermost frames below the snapshot's own call, for a snapshot at `site` (of
/// function slot `site.fn_slot` in `table`). The snapshot's own call is the top frame when
/// this hit pushed it (an entry site) or, at a line site, when the top frame is of the same
/// function.
#[inline(never)]
pub(crate) fn copy(table: &'static Table, site: &'static Site, n: usize) -> Frames {
    let key = key_of(table);
    let pushed_now = crate::hot::capture::frame_pushed();
    STACK
        .try_with(|s| {
            let Ok(s) = s.try_borrow() else {
                return Frames::default();
            };
            let mut d = s.depth;
            let own = d
                .checked_sub(1)
                .and_then(|t| s.ring.get(t % RING))
                .is_some_and(|f| {
                    if site.kind == crate::SiteKind::Entry {
                        pushed_now
                    } else {
                        f.table == key && f.site.is_some_and(|fs| fs.fn_slot == site.fn_slot)
                    }
                });
            if own && d > s.lost_below {
                d -= 1;
            }
            let mut out = Frames::default();
            while d > s.lost_below && out.frames.len() < n {
                d -= 1;
                if let Some(f) = s.ring.get(d % RING) {
                    if let Some(site) = f.site {
                        out.frames.push(Copied {
                            site,
                            vals: f.vals.clone(),
                            at: f.at,
                            locals: f.locals.clone(),
                        });
                    }
                }
            }
            out.more = d;
            out
        })
        .unwrap_or_default()
}

/// The frames' JSON (`,"frames":[{"fn","site","line","vars"}…]`), on the output thread:
/// `site` is the entry's `path:line`; `line` is the line the call is at, found in the
/// snapshot's symbolized `stack` (frames named `fn (file:line)`, innermost first): the next
/// frame of that function below the previous caller's, `null` when the stack does not show it.
pub(crate) fn write_json(
    frames: &Frames,
    stack: &[String],
    limits: &crate::lang::value::Limits,
    out: &mut String,
) {
    use crate::lang::json;
    out.push_str(",\"frames\":[");
    // The snapshot's own function is the stack's first frame: callers are below it.
    let mut from = 1;
    for (k, f) in frames.frames.iter().enumerate() {
        if k > 0 {
            out.push(',');
        }
        out.push_str("{\"fn\":");
        json::push_str(out, f.site.func());
        out.push_str(",\"site\":");
        json::push_str(out, &format!("{}:{}", f.site.path(), f.site.line));
        out.push_str(",\"line\":");
        let found = stack
            .iter()
            .enumerate()
            .skip(from)
            .find_map(|(i, s)| Some((i, caller_line(s, f.site)?)));
        match found {
            Some((i, line)) => {
                // A body written twice runs its instrumented copy in a closure, the frame
                // just inside the function's: the call is at the closure's line.
                let line = i
                    .checked_sub(1)
                    .filter(|j| *j >= from)
                    .and_then(|j| stack.get(j))
                    .and_then(|s| closure_line(s, f.site))
                    .unwrap_or(line);
                from = i + 1;
                out.push_str(&line.to_string());
            }
            // Without a stack line, the last line site passed (`--frame-locals`).
            None if f.at != 0 => out.push_str(&f.at.to_string()),
            None => out.push_str("null"),
        }
        out.push_str(",\"vars\":");
        write_vals(&f.vals, limits, out);
        if f.at != 0 {
            let _ = std::fmt::Write::write_fmt(out, format_args!(",\"at\":{},\"locals\":", f.at));
            write_vals(&f.locals, limits, out);
        }
        out.push('}');
    }
    out.push(']');
    if frames.more > 0 {
        let _ = std::fmt::Write::write_fmt(out, format_args!(",\"frames_more\":{}", frames.more));
    }
}

/// `{"name":value,…}`.
fn write_vals(vals: &Vals, limits: &crate::lang::value::Limits, out: &mut String) {
    out.push('{');
    for (i, (name, c)) in vals.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        crate::lang::json::push_str(out, name);
        out.push(':');
        crate::lang::value::write_json(&c.to_value(), out, limits);
    }
    out.push('}');
}

/// A stack frame's name, file and line (`name (path:line)`), the name without generic
/// arguments (`block_on<app::Fut>` → `block_on`).
fn parts(frame: &str) -> Option<(&str, &str, u32)> {
    let (name, loc) = frame.split_once(" (")?;
    let (file, line) = loc.strip_suffix(')')?.rsplit_once(':')?;
    let name = match name.find('<') {
        Some(i) if i > 0 && name.ends_with('>') => &name[..i],
        _ => name,
    };
    Some((name, file, line.parse().ok()?))
}

/// The line of a closure's stack frame in `site`'s file (inlined closures are named
/// `{closure#0}`).
fn closure_line(frame: &str, site: &Site) -> Option<u32> {
    let (name, file, line) = parts(frame)?;
    (name.contains("{closure") && file.ends_with(site.path())).then_some(line)
}

/// The line of stack frame `frame` (`name (path:line)`) when it is a frame of `site`'s function
/// in `site`'s file (its body, or a closure in it).
fn caller_line(frame: &str, site: &Site) -> Option<u32> {
    let (name, file, line) = parts(frame)?;
    let tail = site.func().rsplit("::").next().unwrap_or(site.func());
    let same_fn = name == site.func()
        || name.starts_with(&format!("{}::{{{{closure", site.func()))
        || name == tail
        || name.ends_with(&format!("::{tail}"))
        || name.contains(&format!("::{tail}::{{{{closure"));
    (same_fn && file.ends_with(site.path())).then_some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    static NAMES: [&str; 1] = ["n"];
    static SITES: std::sync::LazyLock<[Site; 2]> = std::sync::LazyLock::new(|| {
        [
            Site {
                col: 1,
                fn_slot: 0,
                timed: true,
                frame: true,
                ..Site::leaked("src/a.rs", 10, "app::outer", crate::SiteKind::Entry, &NAMES)
            },
            Site {
                col: 1,
                fn_slot: 1,
                timed: true,
                frame: true,
                ..Site::leaked("src/a.rs", 20, "app::inner", crate::SiteKind::Entry, &NAMES)
            },
        ]
    });
    static TABLE: std::sync::LazyLock<Table> = std::sync::LazyLock::new(|| Table {
        package: "app",
        dir: "",
        flags: &[],
        fn_flags: &[],
        counts: &[],
        sites: crate::Sites::Rows(&SITES[..]),
        files: &[],
        skipped: crate::Skips::Rows(&[]),
    });

    fn enter(id: u32, n: u64, start: u64) {
        let vals: [Val<'_>; 1] = [&crate::ByCopy(n)];
        assert!(push(&TABLE, id, &SITES[id as usize], &vals, 0));
        crate::hot::capture::hit_done();
        stamp(&TABLE, id, start);
    }

    fn depth() -> usize {
        STACK.with(|s| s.borrow().depth)
    }

    #[test]
    fn frames_push_pop_matched_and_copy_the_callers_innermost_first() {
        enter(0, 1, 100);
        enter(1, 2, 200);
        enter(1, 3, 300);
        // A line-site snapshot in `inner`: its own call (the top) is not a caller.
        static LINE: std::sync::LazyLock<Site> = std::sync::LazyLock::new(|| Site {
            col: 5,
            fn_slot: 1,
            ..Site::leaked("src/a.rs", 21, "app::inner", crate::SiteKind::Line, &NAMES)
        });
        let got = copy(&TABLE, &LINE, 8);
        let shown: Vec<(u32, String)> = got
            .frames
            .iter()
            .map(|f| (f.site.line, format!("{:?}", f.vals[0].1.to_value())))
            .collect();
        assert_eq!(shown, [(20, "Int(2)".into()), (10, "Int(1)".into())]);
        assert_eq!(got.more, 0);
        let one = copy(&TABLE, &LINE, 1);
        assert_eq!((one.frames.len(), one.more), (1, 1));
        // A return that is not the top call's (timed without a frame) pops nothing.
        pop(&TABLE, 1, 999);
        assert_eq!(depth(), 3);
        pop(&TABLE, 1, 300);
        pop(&TABLE, 1, 200);
        pop(&TABLE, 0, 100);
        assert_eq!(depth(), 0);
        // Deeper than the ring: the outermost frames are lost, and said so.
        for i in 0..RING as u64 + 3 {
            enter(1, i, 1000 + i);
        }
        let deep = copy(&TABLE, &LINE, MAX_FRAMES);
        assert_eq!(deep.frames.len(), MAX_FRAMES);
        // 67 calls: the snapshot's own, 32 shown, 34 more (3 of them overwritten).
        assert_eq!(deep.more, RING + 3 - 1 - MAX_FRAMES);
        for i in (0..RING as u64 + 3).rev() {
            pop(&TABLE, 1, 1000 + i);
        }
        assert_eq!(depth(), 0);
    }

    #[test]
    fn a_callers_line_comes_from_its_stack_frame() {
        let f = |s: &str| caller_line(s, &SITES[0]);
        assert_eq!(f("app::outer (src/a.rs:14)"), Some(14));
        assert_eq!(f("app::outer::{{closure}} (src/a.rs:15)"), Some(15));
        assert_eq!(
            f("outer (src/a.rs:16)"),
            Some(16),
            "an inlined frame's short name"
        );
        assert_eq!(f("app::other (src/a.rs:14)"), None);
        assert_eq!(f("app::outer (src/b.rs:14)"), None);
        assert_eq!(f("app::outer"), None);
        assert_eq!(
            f("outer<app::Fut> (src/a.rs:17)"),
            Some(17),
            "generic arguments"
        );
        // A body written twice: the call is in the closure just inside the function's frame.
        let stack: Vec<String> = [
            "{closure#0} (src/a.rs:21)",
            "inner (src/a.rs:20)",
            "{closure#0} (src/a.rs:13)",
            "outer (src/a.rs:10)",
        ]
        .map(String::from)
        .into();
        let frames = Frames {
            frames: vec![Copied {
                site: &SITES[0],
                vals: Vals::new(),
                at: 0,
                locals: Vals::new(),
            }],
            more: 0,
        };
        let mut out = String::new();
        write_json(&frames, &stack, &Default::default(), &mut out);
        assert_eq!(
            out,
            r#","frames":[{"fn":"app::outer","site":"src/a.rs:10","line":13,"vars":{}}]"#
        );
    }
}
