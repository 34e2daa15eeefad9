//! The process-wide state: registered site tables, armed probes, and the armed map hits read.
//!
//! Writers (arming, disarming, expiry) hold `STATE`'s mutex, rebuild the armed map and swap it
//! in; hits only `try_read` the current map, so an application thread never waits on a writer
//! (a hit that meets a swap in progress is dropped and counted).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once, RwLock};

use crate::probe::Probe;
use crate::{Site, Table};

/// Key of a site in the armed map: (table address, site id).
pub(crate) type SiteKey = (usize, u32);

/// Probes armed at one site, with the site's index in each probe's site list.
pub(crate) type Armed = Vec<(Arc<Probe>, usize)>;

/// Probes armed at each site: per table (found by address; programs have a handful), a
/// vector indexed by site id. A hit does no hashing.
#[derive(Default)]
pub(crate) struct ArmedMap {
    tables: Vec<(usize, Vec<Armed>)>,
}

impl ArmedMap {
    pub(crate) fn get(&self, (table, id): SiteKey) -> Option<&Armed> {
        let (_, sites) = self.tables.iter().find(|(t, _)| *t == table)?;
        sites.get(id as usize).filter(|a| !a.is_empty())
    }

    fn insert(&mut self, (table, id): SiteKey, sites: usize, entry: (Arc<Probe>, usize)) {
        let i = match self.tables.iter().position(|(t, _)| *t == table) {
            Some(i) => i,
            None => {
                self.tables.push((table, vec![Vec::new(); sites]));
                self.tables.len() - 1
            }
        };
        if let Some(slot) = self.tables[i].1.get_mut(id as usize) {
            slot.push(entry);
        }
    }

    fn contains(&self, key: SiteKey) -> bool {
        self.get(key).is_some()
    }
}

pub(crate) struct State {
    pub tables: Vec<&'static Table>,
    pub probes: Vec<Arc<Probe>>,
    pub next_probe: u64,
    /// Errors of the last control-file read, for `status`.
    pub control_errors: Vec<String>,
    pub control_path: Option<String>,
}

static STATE: Mutex<State> = Mutex::new(State {
    tables: Vec::new(),
    probes: Vec::new(),
    next_probe: 1,
    control_errors: Vec::new(),
    control_path: None,
});

static ARMED: RwLock<Option<Arc<ArmedMap>>> = RwLock::new(None);

/// Records lost anywhere (queue full, contention, re-entrancy), reported in `status`.
pub(crate) static DROPPED_TOTAL: AtomicU64 = AtomicU64::new(0);

static START: Once = Once::new();

pub(crate) fn register(table: &'static Table) {
    lock().tables.push(table);
    START.call_once(crate::control::start);
    // Test mode: every site armed from the start (see `control::arm_all`).
    if let Ok(action) = std::env::var("LPROBE_ARM_ALL") {
        crate::control::arm_all(table, &action);
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

/// The current armed map, if it can be read without waiting (no allocation: an `Arc` clone).
pub(crate) fn armed_map() -> Option<Arc<ArmedMap>> {
    ARMED.try_read().ok().and_then(|g| g.clone())
}

pub(crate) fn table_key(t: &'static Table) -> usize {
    t as *const Table as usize
}

/// Rebuilds the armed map and every site flag from the probes that are still armed.
pub(crate) fn rebuild(state: &mut State) {
    let mut map = ArmedMap::default();
    for p in &state.probes {
        if !p.is_live() {
            continue;
        }
        for (i, (t, id)) in p.sites.iter().enumerate() {
            map.insert((table_key(t), *id), t.sites.len(), (p.clone(), i));
        }
    }
    let map = Arc::new(map);
    {
        let mut w = ARMED.write().unwrap_or_else(|e| e.into_inner());
        *w = Some(map.clone());
    }
    for t in &state.tables {
        let mut fns = vec![0u8; t.fn_flags.len()];
        for (id, flag) in t.flags.iter().enumerate() {
            let on = u8::from(map.contains((table_key(t), id as u32)));
            if on != 0 {
                if let Some(f) = t
                    .sites
                    .get(id)
                    .and_then(|s| fns.get_mut(s.fn_slot as usize))
                {
                    *f = 1;
                }
            }
            if flag.load(Ordering::Relaxed) != on {
                flag.store(on, Ordering::Relaxed);
            }
        }
        // Site flags first, then function flags: a function that sees its flag set finds
        // its sites' flags already set.
        for (flag, on) in t.fn_flags.iter().zip(fns) {
            if flag.load(Ordering::Relaxed) != on {
                flag.store(on, Ordering::Relaxed);
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
            if s.kind != "none" {
                out.push((*t, i as u32, s));
            }
        }
    }
    out
}

/// Workspace-relative paths of every instrumented source file.
pub(crate) fn source_files() -> Vec<&'static str> {
    lock()
        .tables
        .iter()
        .flat_map(|t| t.files.iter().map(|(p, _)| *p))
        .collect()
}
