//! Where a hit enters the runtime: the generated code's calls (through the crate root's
//! `hit`, `hit_entry`, the guards' drops) find the probes armed at the site in the armed map
//! ([`registry::with_armed_map`]) and run each ([`Probe::fire`](crate::hot::probe::Probe::fire)).
//!
//! Kept apart from `probe` so that imports inside `hot` go one way: `hit` → `registry` (which
//! holds the probes) → `probe` (what a probe is and does) → `queue`, `capture`, `timing`,
//! `stack` → `panics`.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;

use crate::hot::panics::IN_HIT;
use crate::hot::queue;
use crate::hot::registry;
use crate::{Table, Val};

/// Stack a hit must find free to run at all, and to format values.
const MIN_STACK: usize = 8 * 1024;
const MIN_STACK_VALUES: usize = 64 * 1024;

/// The fast path of a hit at a site armed only by plain counters ([`crate::FLAG_COUNT`]): one
/// atomic add (none from inside the runtime), and true. False for any other site.
#[inline]
pub(crate) fn count_fast(table: &Table, id: u32) -> bool {
    let i = id as usize;
    if table.flags.get(i).map(|f| f.load(Ordering::Relaxed)) != Some(crate::FLAG_COUNT) {
        return false;
    }
    if IN_HIT.try_with(Cell::get) == Ok(false) {
        if let Some(c) = table.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
    true
}

/// Entry point from generated code (through `crate::hit`). True if a `--duration` probe at
/// this site wants the call timed.
#[inline]
pub(crate) fn hit(table: &'static Table, id: u32, vals: &[Val<'_>]) -> bool {
    if registry::forked_child() {
        return false;
    }
    let Ok(false) = IN_HIT.try_with(|c| c.replace(true)) else {
        // Re-entered from inside a capture, or the thread is shutting down.
        queue::count_lost(queue::Lost::Busy, 1);
        return false;
    };
    let timed = catch_unwind(AssertUnwindSafe(|| {
        let left = crate::hot::timing::stack_left();
        if left.is_some_and(|l| l < MIN_STACK) {
            queue::count_lost(queue::Lost::Stack, 1);
            return false;
        }
        let low = left.is_some_and(|l| l < MIN_STACK_VALUES);
        let timed = registry::with_armed_map(|map| {
            let mut timed = false;
            let mut counted = false;
            for (p, idx) in map.get((registry::table_key(table), id)) {
                // Plain counters read the site's counter: one add per pass, however many.
                if p.is_count_only() && !counted {
                    counted = true;
                    if let Some(c) = table.counts.get(id as usize) {
                        c.fetch_add(1, Ordering::Relaxed);
                    }
                }
                timed |= catch_unwind(AssertUnwindSafe(|| p.fire(table, id, *idx, vals, low)))
                    .unwrap_or(false);
            }
            timed
        });
        // `None`: a writer is swapping the map in; drop this hit rather than wait.
        timed.unwrap_or_else(|| {
            queue::count_lost(queue::Lost::Busy, 1);
            false
        })
    }))
    .unwrap_or(false);
    crate::hot::capture::hit_done();
    let _ = IN_HIT.try_with(|c| c.set(false));
    timed
}

/// A timed call returned (or unwound): records its duration into the site's live
/// `--duration` probes.
#[inline]
pub(crate) fn exit(table: &'static Table, id: u32, start: u64) {
    let ns = crate::hot::timing::now_ns().saturating_sub(start);
    // Its frame, if a `--frames` probe pushed one (whatever is armed now).
    crate::hot::frames::pop(table, id, start);
    let Ok(false) = IN_HIT.try_with(|c| c.replace(true)) else {
        return;
    };
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let done = registry::with_armed_map(|map| {
            for (p, _) in map.get((registry::table_key(table), id)) {
                if p.spec.actions.duration && p.is_live() {
                    if let Some(h) = &p.hist {
                        h.record(ns);
                    }
                }
            }
        });
        if done.is_none() {
            queue::count_lost(queue::Lost::Busy, 1);
        }
    }));
    let _ = IN_HIT.try_with(|c| c.set(false));
}
