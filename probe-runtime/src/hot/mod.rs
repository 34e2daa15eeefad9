//! The hot path: what runs on the application's threads when a site is passed, and the
//! state it reads. May import `lang`; never imports `plane` (the runtime's own threads), so
//! nothing an application thread runs can wait on them: records leave through the bounded
//! `queue`, whose receiving end `plane::sink` owns.
//!
//! `hit` (where a hit enters: the armed map's probes at the site, run one by one),
//! `registry` (registered tables, flags, the armed map, flag rebuilds), `probe` (a probe's
//! spec, state, counters and limits; `fire`: what a hit does), `capture` (what a hit takes:
//! primitives in place, `Debug` text in a bounded buffer, panics contained), `flight`
//! (`--on-panic`: each thread's ring of its last sites' values, the `panic` record), `frames`
//! (`--frames`: each thread's shadow stack of instrumented calls and their arguments), `queue` (records
//! on their way out, the output budget, counts of records not written), `timing` (clock,
//! histograms, tic-toc starts, stack depth left), `metric` (`--histogram`/`--gauge` summaries), `panics` (lprobe's panic hook kept
//! outermost; runtime threads supervised), `stack` (backtrace capture on the application
//! thread, symbolization for the output thread).
//!
//! Every function an armed hit runs on the application thread is `#[inline]`, also where it
//! is large: instrumented programs compile this crate for size and the generated hot-path
//! crate (`lprobe-runtime-hot`, cargo-lprobe's `runtime_src::HOT_LIB`) compiles these
//! functions at the program's own optimization level, which only `#[inline]` functions (and
//! generic ones) allow. A new function on the hit path takes the attribute too, or it runs
//! size-optimized (`scripts/bench.sh armed`'s Ir show it).

pub(crate) mod capture;
pub(crate) mod flight;
pub(crate) mod frames;
pub(crate) mod hit;
pub mod metric;
pub(crate) mod panics;
pub mod probe;
pub(crate) mod queue;
pub(crate) mod registry;
#[cfg(all(
    target_arch = "x86_64",
    any(target_os = "linux", target_os = "android", target_os = "freebsd")
))]
pub mod saving;
pub(crate) mod stack;
pub mod timing;
