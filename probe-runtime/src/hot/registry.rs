//! The process-wide state: registered site tables, armed probes, and the armed map hits read.
//!
//! Writers (arming, disarming, expiry) hold `STATE`'s mutex, rebuild the armed map and swap it
//! in; hits only `try_read` the current map, so an application thread never waits on a writer
//! (a hit that meets a swap in progress is dropped and counted).

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use crate::hot::probe::Probe;
use crate::{Site, Table};

/// Key of a site in the armed map: (table address, site id).
pub(crate) type SiteKey = (usize, u32);

/// One probe armed at a site, with the site's index in that probe's site list.
pub(crate) type Armed = (Arc<Probe>, usize);

/// Probes armed at each site: per table (found by address; programs have a handful), the
/// entries of all its sites in one vector, site `id`'s at `entries[starts[id]..starts[id + 1]]`.
/// A hit does no hashing, and a rebuild allocates per table, never per site (a program whose
/// allocator is slow must not pay per site when thousands are armed).
#[derive(Default)]
pub(crate) struct ArmedMap {
    tables: Vec<ArmedTable>,
}

struct ArmedTable {
    key: usize,
    starts: Vec<u32>,
    entries: Vec<Armed>,
}

impl ArmedMap {
    /// The probes armed at a site (empty if none).
    #[inline]
    pub(crate) fn get(&self, (table, id): SiteKey) -> &[Armed] {
        let Some(t) = self.tables.iter().find(|t| t.key == table) else {
            return &[];
        };
        let id = id as usize;
        match (t.starts.get(id), t.starts.get(id + 1)) {
            (Some(&a), Some(&b)) => t.entries.get(a as usize..b as usize).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// Builds the map from `(site key, entry)` pairs, in any order (entries of one site keep
    /// their order).
    fn build(tables: &[&'static Table], mut armed: Vec<(SiteKey, Armed)>) -> ArmedMap {
        crate::small::sort_by(&mut armed, |a, b| a.0 < b.0);
        let mut map = ArmedMap::default();
        let mut it = armed.into_iter().peekable();
        while let Some(&((key, _), _)) = it.peek() {
            let n = tables
                .iter()
                .find(|t| table_key(t) == key)
                .map_or(0, |t| t.sites.len());
            let mut starts = vec![0u32; n + 1];
            let mut entries = Vec::new();
            while let Some(((_, id), e)) = it.next_if(|((k, _), _)| *k == key) {
                if let Some(s) = starts
                    .get_mut(id as usize + 1)
                    .filter(|_| (id as usize) < n)
                {
                    *s += 1;
                    entries.push(e);
                }
            }
            for i in 0..n {
                starts[i + 1] += starts[i];
            }
            map.tables.push(ArmedTable {
                key,
                starts,
                entries,
            });
        }
        map
    }
}

/// A copy of a table's flags defined in one instrumented crate (see [`attach`]).
pub(crate) struct Mirror {
    table: usize,
    flags: &'static [AtomicU8],
    fn_flags: &'static [AtomicU8],
}

pub(crate) struct State {
    pub tables: Vec<&'static Table>,
    /// Flag arrays that instrumented crates read instead of their table's own.
    pub mirrors: Vec<Mirror>,
    pub probes: Vec<Arc<Probe>>,
    pub next_probe: u64,
    /// Errors of the last control-file read, for `status`.
    pub control_errors: Vec<String>,
    pub control_path: Option<String>,
}

static STATE: Mutex<State> = Mutex::new(State {
    tables: Vec::new(),
    mirrors: Vec::new(),
    probes: Vec::new(),
    next_probe: 1,
    control_errors: Vec::new(),
    control_path: None,
});

static ARMED: RwLock<Option<Arc<ArmedMap>>> = RwLock::new(None);

/// Adds a package's table (the crate root then starts the control plane: `crate::register`).
pub(crate) fn register(table: &'static Table) {
    lock().tables.push(table);
}

/// Set in a child created by `fork` (see [`forked_child`]); the control plane's fork handler
/// sets it.
pub(crate) static FORKED: AtomicBool = AtomicBool::new(false);
/// A forked child's sites were turned dormant.
static SILENCED: AtomicBool = AtomicBool::new(false);

/// Whether this process is a forked child of the one that started the runtime. A child has
/// none of the runtime's threads (`fork` copies only the calling thread), and whatever lock
/// another thread held at the fork stays held: its runtime is dormant. The first armed hit
/// turns every site off (when the state's lock is free, else each armed hit returns at once),
/// records nothing, and the exit handler does nothing in it. A child that `exec`s gets a
/// fresh runtime from its new program.
#[inline]
pub(crate) fn forked_child() -> bool {
    if !FORKED.load(Ordering::Relaxed) {
        return false;
    }
    if !SILENCED.load(Ordering::Relaxed) && silence() {
        SILENCED.store(true, Ordering::Relaxed);
    }
    true
}

/// Adds a crate's copy of `table`'s flags: from now on every change of the table's flags is
/// also made there. Called from an instrumented crate's constructor (before `main`), which
/// may run before or after the sites crate's [`register`]: mirrors are matched to tables
/// by address when flags change.
pub(crate) fn attach(
    table: &'static Table,
    flags: &'static [AtomicU8],
    fn_flags: &'static [AtomicU8],
) {
    let mut state = lock();
    // Anything armed already (e.g. `LPROBE_ARM_ALL` by an earlier constructor) is copied.
    copy_flags(table.flags, flags);
    copy_flags(table.fn_flags, fn_flags);
    state.mirrors.push(Mirror {
        table: table_key(table),
        flags,
        fn_flags,
    });
}

fn copy_flags(from: &[AtomicU8], to: &[AtomicU8]) {
    for (a, b) in from.iter().zip(to) {
        set(b, a.load(Ordering::Relaxed));
    }
}

/// Turns every site of every table, and every crate's copy of the flags, dormant, without
/// touching the probes (a forked child: see [`forked_child`]). Only if no other thread
/// held the state when the process forked (a lock held then is held forever in the child):
/// false if it could not.
pub(crate) fn silence() -> bool {
    let Some(state) = try_lock() else {
        return false;
    };
    ANY_ARMED.store(false, Ordering::Relaxed);
    let all = state
        .tables
        .iter()
        .flat_map(|t| [t.flags, t.fn_flags])
        .chain(state.mirrors.iter().flat_map(|m| [m.flags, m.fn_flags]));
    for flags in all {
        for f in flags {
            set(f, 0);
        }
    }
    true
}

/// Stores `on` into `flag` unless it already holds it (a store dirties the cache line that
/// every application thread reads).
fn set(flag: &AtomicU8, on: u8) {
    if flag.load(Ordering::Relaxed) != on {
        flag.store(on, Ordering::Relaxed);
    }
}

/// Locks the state, recovering from a poisoned lock (the state stays consistent: every
/// writer rebuilds the armed map from scratch).
pub(crate) fn lock() -> MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// The state, if no other thread holds it.
pub(crate) fn try_lock() -> Option<MutexGuard<'static, State>> {
    match STATE.try_lock() {
        Ok(g) => Some(g),
        Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

/// Whether the armed map has any site (the output thread polls only then).
static ANY_ARMED: AtomicBool = AtomicBool::new(false);

pub(crate) fn any_armed() -> bool {
    ANY_ARMED.load(Ordering::Relaxed)
}

/// Generation of the armed map: bumped after each rebuild has published its map.
static GENERATION: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The last armed map this thread used, with its generation.
    static CACHED: RefCell<Option<(u64, Arc<ArmedMap>)>> = const { RefCell::new(None) };
}

/// Runs `f` on the current armed map; `None` if it cannot be had without waiting (a writer
/// is swapping it in) or the thread is shutting down.
///
/// A hit touches no shared reference count and takes no lock: each thread keeps the map it
/// last used, with its generation, and goes to the shared lock only when a rebuild has
/// published a newer one (once per thread per rebuild). An idle thread keeps its old map
/// alive until its next hit or its exit: at most one map per thread.
pub(crate) fn with_armed_map<R>(f: impl FnOnce(&ArmedMap) -> R) -> Option<R> {
    let generation = GENERATION.load(Ordering::Acquire);
    CACHED
        .try_with(|c| {
            let mut c = c.try_borrow_mut().ok()?;
            if c.as_ref().map(|(g, _)| *g) != Some(generation) {
                let map = ARMED.try_read().ok()?.clone()?;
                *c = Some((generation, map));
            }
            c.as_ref().map(|(_, m)| f(m))
        })
        .ok()
        .flatten()
}

#[inline]
pub(crate) fn table_key(t: &'static Table) -> usize {
    t as *const Table as usize
}

/// Rebuilds the armed map and every site flag from the probes that are still armed.
pub(crate) fn rebuild(state: &mut State) {
    let mut armed = Vec::new();
    for p in &state.probes {
        if !p.is_live() {
            continue;
        }
        for (i, (t, id)) in p.sites.iter().enumerate() {
            if !p.site_spent(i) {
                armed.push(((table_key(t), *id), (p.clone(), i)));
            }
        }
    }
    ANY_ARMED.store(!armed.is_empty(), Ordering::Relaxed);
    let map = ArmedMap::build(&state.tables, armed);
    let map = Arc::new(map);
    {
        let mut w = ARMED.write().unwrap_or_else(|e| e.into_inner());
        *w = Some(map.clone());
    }
    // After the map: a thread that sees the new generation finds the new map.
    GENERATION.fetch_add(1, Ordering::Release);
    for t in &state.tables {
        let mirrors: Vec<&Mirror> = state
            .mirrors
            .iter()
            .filter(|m| m.table == table_key(t))
            .collect();
        let mut fns = vec![0u8; t.fn_flags.len()];
        for (id, flag) in t.flags.iter().enumerate() {
            let armed = map.get((table_key(t), id as u32));
            let on = if armed.is_empty() {
                0
            } else if armed.iter().all(|(p, _)| p.is_count_only()) {
                crate::FLAG_COUNT
            } else {
                1
            };
            if on != 0 {
                if let Some(f) = t
                    .sites
                    .get(id)
                    .and_then(|s| fns.get_mut(s.fn_slot as usize))
                {
                    *f = 1;
                }
            }
            // The table's own flag first: the sites crate's cold functions read it after a
            // crate's copy said the site is armed.
            set(flag, on);
            for m in &mirrors {
                if let Some(f) = m.flags.get(id) {
                    set(f, on);
                }
            }
        }
        // Site flags first, then function flags: a function that sees its flag set finds
        // its sites' flags already set.
        for (k, on) in fns.into_iter().enumerate() {
            if let Some(f) = t.fn_flags.get(k) {
                set(f, on);
            }
            for m in &mirrors {
                if let Some(f) = m.fn_flags.get(k) {
                    set(f, on);
                }
            }
        }
    }
}

/// Every live site of every table, with its table (sites the build's repair loop removed,
/// kind `"none"`, are left out).
pub(crate) fn all_sites(state: &State) -> Vec<(&'static Table, u32, &'static Site)> {
    let mut out = Vec::new();
    for t in &state.tables {
        for (i, s) in t.sites.iter().enumerate() {
            if s.kind != crate::SiteKind::None {
                out.push((*t, i as u32, s));
            }
        }
    }
    out
}

/// Every function built without sites, in every table.
pub(crate) fn all_skipped(state: &State) -> Vec<(&'static Table, &'static crate::Skipped)> {
    state
        .tables
        .iter()
        .flat_map(|t| t.skipped.iter().map(move |s| (*t, s)))
        .collect()
}

/// Workspace-relative paths of every instrumented source file.
pub(crate) fn source_files() -> Vec<&'static str> {
    lock()
        .tables
        .iter()
        .flat_map(|t| t.files.iter().map(|(p, _)| *p))
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::AtomicU8;

    use super::*;
    use crate::hot::probe::{parse_spec, Origin};

    /// A leaked table of `n` line sites (`src/lib.rs`, lines 1..=n), for tests.
    pub(crate) fn table(n: usize) -> &'static Table {
        let sites: Vec<Site> = (0..n)
            .map(|i| {
                Site::leaked(
                    "src/lib.rs",
                    i as u32 + 1,
                    "t::f",
                    crate::SiteKind::Line,
                    &[],
                )
            })
            .collect();
        let flags: Vec<AtomicU8> = (0..n).map(|_| AtomicU8::new(0)).collect();
        Box::leak(Box::new(Table {
            package: "t",
            dir: "",
            flags: Box::leak(flags.into_boxed_slice()),
            fn_flags: Box::leak(vec![AtomicU8::new(0)].into_boxed_slice()),
            counts: Box::leak(
                (0..n)
                    .map(|_| AtomicU64::new(0))
                    .collect::<Vec<_>>()
                    .into_boxed_slice(),
            ),
            sites: crate::Sites::Rows(Box::leak(sites.into_boxed_slice())),
            files: &[],
            skipped: crate::Skips::Rows(&[]),
        }))
    }

    fn probe(id: &str, sites: Vec<(&'static Table, u32)>) -> Arc<Probe> {
        let spec = parse_spec(&["x".to_string(), "--count".to_string()]).expect("spec");
        Arc::new(Probe::new(id.into(), spec, sites, Origin::Socket))
    }

    #[test]
    fn the_map_finds_each_sites_probes_in_arming_order() {
        let (a, b) = (table(5), table(3));
        let p1 = probe("p1", vec![(a, 4), (a, 1), (b, 2)]);
        let p2 = probe("p2", vec![(a, 1)]);
        let mut armed = Vec::new();
        for p in [&p1, &p2] {
            for (i, (t, id)) in p.sites.iter().enumerate() {
                armed.push(((table_key(t), *id), (p.clone(), i)));
            }
        }
        let map = ArmedMap::build(&[a, b], armed);
        let ids = |t, id| -> Vec<(String, usize)> {
            map.get((table_key(t), id))
                .iter()
                .map(|(p, i)| (p.id.to_string(), *i))
                .collect()
        };
        assert_eq!(ids(a, 1), [("p1".into(), 1), ("p2".into(), 0)]);
        assert_eq!(ids(a, 4), [("p1".into(), 0)]);
        assert_eq!(ids(b, 2), [("p1".into(), 2)]);
        assert!(ids(a, 0).is_empty() && ids(a, 2).is_empty() && ids(b, 0).is_empty());
        // Out of range: nothing, no panic.
        assert!(ids(a, 99).is_empty() && ids(b, 3).is_empty());
    }

    #[test]
    fn a_spent_site_leaves_the_map_and_the_others_stay() {
        let t = table(3);
        let spec =
            parse_spec(&["x".to_string(), "--log".to_string(), "hi".to_string()]).expect("spec");
        let p = Arc::new(
            Probe::new(
                "p".into(),
                spec,
                vec![(t, 0), (t, 1), (t, 2)],
                Origin::Socket,
            )
            .with_per_site_max(2),
        );
        assert!(!p.site_spent(1));
        let mut state = State {
            tables: vec![t],
            mirrors: Vec::new(),
            probes: vec![p.clone()],
            next_probe: 2,
            control_errors: Vec::new(),
            control_path: None,
        };
        rebuild(&mut state);
        // Two hits at site 1 spend it (the probe itself stays armed).
        crate::hot::hit::hit(t, 1, &[]);
        crate::hot::hit::hit(t, 1, &[]);
        assert!(p.site_spent(1) && !p.site_spent(0) && p.is_live());
        rebuild(&mut state);
        let on: Vec<u8> = t.flags.iter().map(|f| f.load(Ordering::Relaxed)).collect();
        assert_eq!(on, [1, 0, 1]);
    }

    #[test]
    fn a_crates_copy_of_the_flags_follows_arming_and_disarming() {
        let t = table(3);
        let leak = |n: usize| -> &'static [AtomicU8] {
            Box::leak(
                (0..n)
                    .map(|_| AtomicU8::new(0))
                    .collect::<Vec<_>>()
                    .into_boxed_slice(),
            )
        };
        let (flags, fn_flags) = (leak(3), leak(1));
        let p = probe("p", vec![(t, 2)]);
        let mut state = State {
            tables: vec![t],
            mirrors: vec![Mirror {
                table: table_key(t),
                flags,
                fn_flags,
            }],
            probes: vec![p],
            next_probe: 2,
            control_errors: Vec::new(),
            control_path: None,
        };
        rebuild(&mut state);
        let read =
            |f: &[AtomicU8]| -> Vec<u8> { f.iter().map(|f| f.load(Ordering::Relaxed)).collect() };
        // A plain counter: the site's flag says so, in the table and in the copy alike.
        assert_eq!(read(t.flags), [0, 0, crate::FLAG_COUNT]);
        assert_eq!(read(flags), read(t.flags));
        assert_eq!((read(t.fn_flags), read(fn_flags)), (vec![1], vec![1]));
        state.probes.clear();
        rebuild(&mut state);
        assert_eq!(read(flags), [0, 0, 0]);
        assert_eq!(read(fn_flags), [0]);
    }
}
