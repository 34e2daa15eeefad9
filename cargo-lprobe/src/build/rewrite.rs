//! Splices probe code into a file's original text at the sites `visit` found.
//!
//! Probe code never contains a newline, so every line keeps its number: `line!()`, panics,
//! backtraces and compiler errors point at the user's lines. The output also records where each
//! probe and capture landed, so that `repair` can map a compiler error back to what caused it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::build::sites_crate::BY_VALUE_SUFFIX;
use crate::build::visit::{FileSites, SiteKind};

/// What the repair loop has taken out of a file. Site and context indices are those of
/// `visit::FileSites`, stable across rounds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exclusions {
    /// Leave the whole file as written.
    pub file_original: bool,
    /// Contexts whose functions get no probes at all.
    pub fn_no_probes: BTreeSet<usize>,
    /// Contexts whose probes capture nothing.
    pub fn_no_captures: BTreeSet<usize>,
    /// Sites dropped entirely.
    pub drop_site: BTreeSet<usize>,
    /// (site, name): one capture dropped.
    pub drop_capture: BTreeSet<(usize, String)>,
    /// (context, name, site): the binding `name` refers to at that site is not captured from
    /// there onward (a later `let` of the same name is a new binding and is captured again).
    pub drop_var_from: BTreeSet<(usize, String, usize)>,
    /// Bindings (visit's binding ids) whose type is not small and `Copy`: captured by reference.
    #[serde(default)]
    pub by_ref: BTreeSet<u32>,
    /// Bindings whose type is not `Debug`: only their type name is captured.
    #[serde(default)]
    pub opaque: BTreeSet<u32>,
    /// Contexts whose entry site times calls with a guard, not by calling the function again
    /// (the call did not compile: an argument type it could not infer, a name shadowed).
    #[serde(default)]
    pub no_recall: BTreeSet<usize>,
    /// Contexts whose entry site makes its two cold calls (`enter`, then `again`), not one
    /// (`recall::OneCall`: the one call did not compile, e.g. a borrow the body goes on to use).
    #[serde(default)]
    pub no_one_call: BTreeSet<usize>,
    /// Contexts whose body is not written twice (the two bodies did not compile).
    #[serde(default)]
    pub no_twice: BTreeSet<usize>,
    /// At a crate root: the crate flags module failed to build (e.g. `unsafe_code` forbidden
    /// from the command line), so the package's checks read the sites crate's flags.
    #[serde(default)]
    pub no_crate_flags: bool,
}

/// How a capture passes its binding to the runtime: a copy (`&(a,).0`), a reference (`&&b`) or
/// its type name (`&Opaque::of(&c)`); see `Writer::captures`.
/// Every binding starts as `Copy`; the repair loop steps it down when the compiler says its
/// type does not allow that form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    Copy,
    Ref,
    Opaque,
}

impl Exclusions {
    /// Whether site `i` (in `context`) is placed at all.
    pub fn keeps_site(&self, i: usize, context: usize) -> bool {
        !self.file_original && !self.fn_no_probes.contains(&context) && !self.drop_site.contains(&i)
    }

    /// Whether site `i` of `sites` captures `name`.
    pub fn keeps_capture(&self, sites: &FileSites, i: usize, name: &str) -> bool {
        let Some(site) = sites.sites.get(i) else {
            return false;
        };
        !self.fn_no_captures.contains(&site.context)
            && !self.drop_capture.contains(&(i, name.to_owned()))
            && !self.drop_var_from.iter().any(|(c, n, from)| {
                *c == site.context
                    && n == name
                    && *from <= i
                    && binding_of(sites, *from, name) == binding_of(sites, i, name)
            })
    }
}

impl Exclusions {
    /// The form of the capture of `name` at site `i`.
    pub fn form(&self, sites: &FileSites, i: usize, name: &str) -> Form {
        match binding_of(sites, i, name) {
            Some(b) if self.opaque.contains(&b) || sites.opaque_first.contains(&b) => Form::Opaque,
            Some(b) if self.by_ref.contains(&b) || sites.by_ref_first.contains(&b) => Form::Ref,
            _ => Form::Copy,
        }
    }
}

/// The binding `name` refers to at site `i`.
pub fn binding_of(sites: &FileSites, i: usize, name: &str) -> Option<u32> {
    let s = sites.sites.get(i)?;
    let k = s.names.iter().position(|n| n == name)?;
    s.bindings.get(k).copied()
}

/// Where one probe landed in the output.
#[derive(Clone, Debug)]
pub struct Placed {
    /// Index into `FileSites::sites`.
    pub site: usize,
    /// Id of the site in its package's table.
    pub id: u32,
    /// Output byte range of the whole probe.
    pub range: Range<usize>,
    /// Captured names (what the site table lists) with their output byte ranges.
    pub captures: Vec<(String, Range<usize>)>,
    /// At an entry site that times by calling its function again: that call's output range
    /// (in the one-call form, the reborrows, the closure and the call, captures aside).
    pub recall: Option<Range<usize>>,
    /// The entry site is one cold call (`recall::OneCall`).
    pub one_call: bool,
    /// An entry site whose calls `--duration` can time.
    pub timed: bool,
}

/// A rewritten file.
#[derive(Clone, Debug)]
pub struct Rewritten {
    pub text: String,
    pub placed: Vec<Placed>,
    /// Output byte range of the crate's flags module (`FlagsHome::Crate` at a crate root).
    pub crate_module: Option<Range<usize>>,
    /// (context, output range) of the text that writes a function's body twice.
    pub twice: Vec<(usize, Range<usize>)>,
    /// Sorted (original offset, bytes inserted there), to map offsets to the output.
    inserts: Vec<(usize, usize)>,
    /// (original end offset, output length change) of each [`Rewritten::replace`].
    replaced: Vec<(usize, isize)>,
}

impl Rewritten {
    /// Whether output byte `byte` is generated module code of a crate root: its flags module
    /// or anything after it (a root holding its package's table has that module after it,
    /// `sites_crate::host_module`).
    pub fn in_crate_module(&self, byte: usize) -> bool {
        self.crate_module.as_ref().is_some_and(|r| r.start <= byte)
    }

    /// Maps a byte offset of the original text to the output text.
    pub fn map_offset(&self, orig: usize) -> usize {
        let inserted = orig
            + self
                .inserts
                .iter()
                .take_while(|(at, _)| *at <= orig)
                .map(|(_, n)| n)
                .sum::<usize>();
        let shift: isize = self
            .replaced
            .iter()
            .filter(|(end, _)| *end <= orig)
            .map(|(_, d)| d)
            .sum();
        inserted.saturating_add_signed(shift)
    }

    /// Replaces the original text `orig` (where nothing was inserted: e.g. a string literal)
    /// with `with` on the same line, and moves every recorded output range after it.
    pub fn replace(&mut self, orig: Range<usize>, with: &str) {
        let start = self.map_offset(orig.start);
        let end = start + orig.len();
        if end > self.text.len() || with.contains('\n') {
            return;
        }
        self.text.replace_range(start..end, with);
        let delta = with.len() as isize - orig.len() as isize;
        let shift = |r: &mut Range<usize>| {
            if r.start >= end {
                *r = r.start.saturating_add_signed(delta)..r.end.saturating_add_signed(delta);
            }
        };
        for p in &mut self.placed {
            shift(&mut p.range);
            for (_, r) in &mut p.captures {
                shift(r);
            }
        }
        if let Some(r) = &mut self.crate_module {
            shift(r);
        }
        for (_, r) in &mut self.twice {
            shift(r);
        }
        self.replaced.push((orig.end, delta));
    }
}

/// Text to insert at an original offset, and for a probe what `Placed` records (ranges
/// within the code).
struct Piece {
    at: usize,
    /// Order of creation (to recognize a piece after sorting).
    order: usize,
    code: String,
    site: Option<usize>,
    captures: Vec<(String, Range<usize>)>,
    recall: Option<Range<usize>>,
    one_call: bool,
    timed: bool,
    /// Opens or closes a loop body written twice, of this context.
    twice_of: Option<usize>,
}

impl Piece {
    fn text(at: usize, code: String) -> Piece {
        Piece {
            at,
            order: 0,
            code,
            site: None,
            captures: Vec::new(),
            recall: None,
            one_call: false,
            timed: false,
            twice_of: None,
        }
    }
}

/// Where a file's ids start in its package's table: sites, and functions (contexts).
#[derive(Clone, Copy, Debug, Default)]
pub struct FirstIds {
    pub site: u32,
    pub func: u32,
}

/// Most captures a site passes by value, as one tuple (`hit_t(i, (a, &b, c,))`: an entry
/// outside an instrumented copy, or a line site outside one); more go in an array (`hit(i,
/// &[…])`). A line of a long function captures every binding in scope, often a dozen or more.
/// The runtime's `Caps` takes tuples of up to 24; the cold calls (`sites_crate::by_value_calls`)
/// are one generic function per call, whatever the count.
pub const MAX_BY_VALUE: usize = 24;

/// The sites crate's name as seen from instrumented code.
pub const SITES_CRATE: &str = "lprobe_sites";

/// The path of a crate's flags module (`FlagsHome::Crate`).
const CRATE_MODULE: &str = "crate::__lprobe";

/// The paths generated code names its checks and cold calls by (`::lprobe_sites`,
/// `crate::__lprobe`): what scans of rewritten code look for (`sites_crate::ByValueCalls`,
/// `repair`'s checked captures).
pub const CALL_HOMES: [&str; 2] = ["::lprobe_sites", CRATE_MODULE];

/// The runtime's name (its hot-path crate, `runtime_src::HOT_PACKAGE`) as seen from a package
/// whose crates hold their table (`FlagsHome::Crate`).
pub const RUNTIME_DEP: &str = "probe_runtime";

/// Where a file's generated code finds the flags, the checks and the cold calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlagsHome {
    /// The package's sites crate (`::lprobe_sites`): the checks read its flags.
    SitesCrate,
    /// The module `crate::__lprobe` of the crate compiling the file (see
    /// `sites_crate::crate_flags_module`): the crate's own copy of the flags, its checks, and
    /// the package's table and cold calls, which it imports from the crate that holds them
    /// (`sites_crate::Host`). At a crate root the module is defined here, sized for the
    /// package's (sites, functions).
    Crate {
        define: Option<(u32, u32, crate::build::sites_crate::FlagAccess, Host)>,
    },
}

/// Which crate holds a package's table and cold calls (`sites_crate::host_module`), as seen
/// from one crate root of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    /// This crate: the package's library, or a crate that cannot link it (a package without
    /// one, or whose library is not a Rust library), which then holds a copy of its own.
    Own,
    /// The package's library, by its crate name: a binary, test, example or bench of the
    /// package, which links it.
    Lib(String),
}

/// How a site's captures are listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptureList {
    /// Plain expressions in an array (`&[&(a,).0, &&b]`): the least work for the compiler.
    Plain,
    /// Each through a call of its own (`&[cap(&(a,).0), cap(&&b)]`, `(cap_t(a), cap_t(&b))`
    /// in a tuple), for a file whose repair outcome is not known yet: rustc reports an unmet
    /// bound once per statement and type in a plain list (six bindings of one type without
    /// `Debug` at a site were six repair rounds), and once per tuple and predicate in a plain
    /// tuple (`just` at every line: a round in three), and once per call here. The same code
    /// once inlined, at a compile cost (regex-syntax's tests at every line 2% more time,
    /// ryu's library 18% more instructions), paid until the outcome is known: a repair
    /// round's check that passes, or a remembered outcome.
    Checked,
}

/// Rewrites `text`. Site `i` of `sites` gets id `first_id + i`. `extern_crate` is the offset
/// where an `extern crate` item must be inserted (edition 2015 crate roots), if any; `list`
/// says how captures are listed.
pub fn rewrite(
    text: &str,
    sites: &FileSites,
    first: FirstIds,
    ex: &Exclusions,
    extern_crate: Option<usize>,
    flags: FlagsHome,
    list: CaptureList,
) -> Rewritten {
    if ex.file_original {
        return Rewritten {
            text: text.to_owned(),
            placed: Vec::new(),
            crate_module: None,
            twice: Vec::new(),
            inserts: Vec::new(),
            replaced: Vec::new(),
        };
    }
    // Where the checks (`on`, `fn_on`, `refresh`, `entry`) and the cold calls come from.
    let chk = match flags {
        FlagsHome::SitesCrate => format!("::{SITES_CRATE}"),
        FlagsHome::Crate { .. } => CRATE_MODULE.to_owned(),
    };
    let plan = Plan::new(sites, ex);
    let w = Writer {
        sites,
        ex,
        first,
        chk,
        plan,
        list,
    };
    let mut pieces: Vec<Piece> = Vec::new();
    if let Some(at) = extern_crate {
        // Edition 2015 reaches a crate by `::name` only through an `extern crate` at the
        // root: the sites crate, or the runtime a crate holding the table names.
        let name = match flags {
            FlagsHome::SitesCrate => SITES_CRATE,
            FlagsHome::Crate { .. } => RUNTIME_DEP,
        };
        pieces.push(Piece::text(
            at,
            format!(" #[allow(unused_extern_crates)] extern crate {name};"),
        ));
    }
    pieces.extend(w.loop_heads());
    pieces.extend(w.loop_bodies());
    pieces.extend(w.closure_bodies());
    // A function that times by calling itself again and was found to need the hint
    // (`Site::inline_hint`) is marked `#[inline]`, and so is one rustc would have copied into
    // its callers as written (`FnContext::copied`): its entry site's cold call would end that.
    for (i, site) in sites.sites.iter().enumerate() {
        let Some(c) = sites.contexts.get(site.context) else {
            continue;
        };
        let hinted = site.inline_hint && w.recall(site).is_some();
        let copied = c.copied && site.kind == SiteKind::Entry;
        if (hinted || copied) && ex.keeps_site(i, site.context) {
            pieces.push(Piece::text(c.start, "#[inline] ".to_owned()));
        }
    }
    pieces.extend(
        sites
            .sites
            .iter()
            .enumerate()
            .filter_map(|(i, site)| w.site_piece(i, site)),
    );
    let twice_pieces = w.close_twice(&mut pieces);
    assemble(text, pieces, &twice_pieces, &w, flags)
}

/// What the rewrite of one file decides before it writes a probe.
struct Plan {
    /// Per context: its entry probe is placed (it reads the function flag into a local).
    local: Vec<bool>,
    /// Per context: line sites outside closures test that local.
    reads_local: Vec<bool>,
    /// Per context: the body is written twice (see `twice`).
    twice: Vec<bool>,
    /// Loop bodies written twice (indices in `FileSites::loop_bodies`), each with whether it
    /// is nested in another one (its copies are then made by `__lprobe_loop!`).
    loops: Vec<(usize, bool)>,
    /// The line sites in those bodies (`__lprobe_at!{ … }`: only the instrumented copy keeps
    /// them).
    loop_sites: HashSet<usize>,
    /// Closure bodies written twice under their function's flag (indices in
    /// `FileSites::closure_bodies`), and the line sites in them (`__lprobe_at!{ … }`).
    closures: Vec<usize>,
    closure_sites: HashSet<usize>,
    /// Entry site -> the first statement's line site checked in the same call.
    merged: HashMap<usize, usize>,
    merged_lines: HashSet<usize>,
}

impl Plan {
    fn new(sites: &FileSites, ex: &Exclusions) -> Plan {
        // A function whose entry probe is placed reads its function flag into a local at entry;
        // its line sites (outside closures) test that local first, so a loop whose body has no
        // call keeps no load and stays vectorizable. Loop heads re-read the local only where such
        // a line site reads it: with entry sites alone (the default density) nothing does, and a
        // relaxed atomic load is never removed by the optimizer even when its value is unused.
        let mut local = vec![false; sites.contexts.len()];
        let mut line_reader = vec![false; sites.contexts.len()];
        for (i, s) in sites.sites.iter().enumerate() {
            if s.context >= local.len() || !ex.keeps_site(i, s.context) {
                continue;
            }
            match s.kind {
                SiteKind::Entry => local[s.context] = true,
                SiteKind::Line if !s.in_closure => line_reader[s.context] = true,
                SiteKind::Line => {}
            }
        }
        let reads_local: Vec<bool> = local
            .iter()
            .zip(&line_reader)
            .map(|(a, b)| *a && *b)
            .collect();
        // Two bodies (`visit::FnContext::twice`): the function runs `::lprobe_sites::twice!{ $
        // FLAG; [ENTRY] RET; BODY }`, which is `if FLAG { return cold(move || -> RET { ENTRY
        // BODY }) } else { BODY }`: the instrumented copy (entry probe, timing guard, line sites
        // `__lprobe_at!{…}`, which only it keeps) lives in a closure called out of line, so the dormant
        // path is the original body after one check, with no capture, guard or second call in
        // it, and the function keeps its size for the inliner. Both copies keep the original
        // lines (macro tokens keep their spans). A function whose line sites sit in a loop that
        // re-reads the flag keeps one body (the loop must see arming while it runs).
        let refreshed: HashSet<usize> = sites.loops.iter().map(|l| l.context).collect();
        let entry_kept: HashSet<usize> = sites
            .sites
            .iter()
            .enumerate()
            .filter(|(i, s)| s.kind == SiteKind::Entry && ex.keeps_site(*i, s.context))
            .map(|(_, s)| s.context)
            .collect();
        // With entry sites only, a copy is written where it is the only way to time a call:
        // a function without a guard that cannot call itself again (`recall`). Elsewhere one
        // body is cheaper: a copy doubles the body's build time, and calls each function
        // the body calls a second time, so LLVM loses the single-call bonus that inlined them
        // (copies in every function at entry sites: suite geomean 1.139x -> 1.123x on six
        // crates, bytes 1.030x -> 1.079x, regex-syntax's build +21% CPU).
        let untimable: HashSet<usize> = sites
            .sites
            .iter()
            .filter(|s| {
                s.kind == SiteKind::Entry
                    && !s.timed
                    && (s.recall.is_none() || ex.no_recall.contains(&s.context))
            })
            .map(|s| s.context)
            .collect();
        let twice: Vec<bool> = sites
            .contexts
            .iter()
            .enumerate()
            .map(|(c, ctx)| {
                let wanted = if reads_local[c] {
                    !refreshed.contains(&c)
                } else {
                    untimable.contains(&c)
                };
                ctx.twice && wanted && entry_kept.contains(&c) && !ex.no_twice.contains(&c)
            })
            .collect();

        // A function written once whose line sites test the local writes each loop body
        // holding such sites twice: `loop { refresh; twice_loop!{ $ __lprobe_fn; BODY } }`,
        // which is `if __lprobe_fn { BODY with its sites } else { BODY }`. A dormant iteration
        // then costs the head's re-read and one branch, not a check per statement, and the
        // sites' captures are out of the original copy's way. In the same frame (not a
        // closure, which would change what `break`, `continue` and `return` mean), so the
        // captures keep their forms: an address taken in the instrumented copy still escapes
        // for the whole function. Not for bodies that declare items or invoke macros that may
        // (`visit::duplicable`), or await.
        let keeps_line = |i: usize, s: &crate::build::visit::Site| {
            s.kind == SiteKind::Line && !s.in_closure && ex.keeps_site(i, s.context)
        };
        let bodies = &sites.loop_bodies;
        // Loop `m` holds loop `l`.
        let inside = |l: usize, m: usize| {
            let (a, b) = (&bodies[l], &bodies[m]);
            l != m && a.context == b.context && b.open < a.open && a.close < b.close
        };
        // Each kept line site of a loop, by its innermost loop body.
        let spans: Vec<(usize, usize, usize)> = bodies
            .iter()
            .map(|b| (b.context, b.open, b.close))
            .collect();
        let direct = by_innermost(sites, &spans, |i, s| keeps_line(i, s));
        // A body with one site of its own gains nothing from a copy (its one check becomes the
        // copy's). Nor is a body copied that calls a function called from one place only
        // (`LoopBody::calls_once`): two calls would cost it the optimizer's bonus for a
        // function's last call, and its inlining (bytes' example: `decode`, called in a loop
        // of `workload`, was no longer inlined: +2%).
        let chosen: Vec<usize> = (0..bodies.len())
            .filter(|&l| {
                let c = bodies[l].context;
                bodies[l].duplicable
                    && !bodies[l].calls_once
                    && direct[l].len() >= 2
                    && reads_local.get(c).copied().unwrap_or(false)
                    && !twice.get(c).copied().unwrap_or(false)
                    && !ex.no_twice.contains(&c)
            })
            .collect();
        let loops: Vec<(usize, bool)> = chosen
            .iter()
            .map(|&l| (l, chosen.iter().any(|&m| inside(l, m))))
            .collect();
        // A site is dropped from a dormant copy only if its innermost loop is written twice: a
        // loop written once inside one written twice keeps its checks in both copies, so it
        // still sees arming while it runs.
        let loop_sites: HashSet<usize> = chosen
            .iter()
            .flat_map(|&l| direct[l].iter().copied())
            .collect();

        // The site before a function's first statement is checked in the entry site's cold call
        // when both capture the same names (they see the same bindings, and nothing runs between
        // them): one call in the function body instead of two keeps small functions inlinable.
        let kept = |i: usize| -> Vec<&String> {
            sites.sites[i]
                .names
                .iter()
                .filter(|n| ex.keeps_capture(sites, i, n))
                .collect()
        };
        let merged: HashMap<usize, usize> = sites
            .sites
            .iter()
            .enumerate()
            .filter(|(j, s)| s.first_stmt && ex.keeps_site(*j, s.context))
            .filter_map(|(j, s)| {
                let i = j.checked_sub(1)?;
                let e = sites.sites.get(i)?;
                (e.kind == SiteKind::Entry
                    && e.context == s.context
                    && ex.keeps_site(i, e.context)
                    && kept(i) == kept(j))
                .then_some((i, j))
            })
            .collect();
        let merged_lines: HashSet<usize> = merged.values().copied().collect();

        // A closure's line sites check their own flags at each call of it (a closure may
        // outlive its function's call, so they cannot test the function's local): inside a
        // comparator or predicate run in a tight loop (`binary_search_by(|&(lo, hi, _)| …)`),
        // those checks turn the closure's branchless code into branches. A closure body
        // without loop that holds two or more of them is written twice under its function's
        // flag instead: `|…| { twice_loop!{ $ fn_on::<K>(); BODY } }`, each site in
        // `__lprobe_at!` (only the instrumented copy keeps it). One check per call, and the
        // closure still sees arming at its next call (unicode-segmentation at every line
        // 1.281 -> 1.242; BENCHMARKS.md).
        let bodies = &sites.closure_bodies;
        let spans: Vec<(usize, usize, usize)> = bodies
            .iter()
            .map(|b| (b.context, b.open, b.close))
            .collect();
        let in_closure = by_innermost(sites, &spans, |i, s| {
            s.kind == SiteKind::Line && s.in_closure && ex.keeps_site(i, s.context)
        });
        let closures: Vec<usize> = (0..bodies.len())
            .filter(|&b| {
                bodies[b].duplicable
                    && in_closure[b].len() >= 2
                    && !ex.no_twice.contains(&bodies[b].context)
            })
            .collect();
        let closure_sites: HashSet<usize> = closures
            .iter()
            .flat_map(|&b| in_closure[b].iter().copied())
            .collect();

        Plan {
            local,
            reads_local,
            twice,
            loops,
            loop_sites,
            closures,
            closure_sites,
            merged,
            merged_lines,
        }
    }
}

/// The sites `wanted` picks, by the innermost of `spans` (each a body's context and byte
/// range, `open..close`) in their function that holds them.
fn by_innermost(
    sites: &FileSites,
    spans: &[(usize, usize, usize)],
    wanted: impl Fn(usize, &crate::build::visit::Site) -> bool,
) -> Vec<Vec<usize>> {
    let mut by: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
    for (i, s) in sites.sites.iter().enumerate() {
        if !wanted(i, s) {
            continue;
        }
        let innermost = (0..spans.len())
            .filter(|&b| {
                let (context, open, close) = spans[b];
                context == s.context && (open..close).contains(&s.offset)
            })
            .min_by_key(|&b| spans[b].2 - spans[b].1);
        if let Some(b) = innermost {
            by[b].push(i);
        }
    }
    by
}

/// The rewrite of one file: its sites, what repair took out, its ids and where its checks
/// read the flags.
struct Writer<'a> {
    sites: &'a FileSites,
    ex: &'a Exclusions,
    first: FirstIds,
    /// The path of the checks (`::lprobe_sites` or `crate::__lprobe`).
    chk: String,
    plan: Plan,
    list: CaptureList,
}

impl Writer<'_> {
    /// The flag re-reads at the heads of loops whose functions' line sites test the local.
    fn loop_heads(&self) -> Vec<Piece> {
        let (sites, chk) = (self.sites, &self.chk);
        let mut pieces = Vec::new();
        for head in &sites.loops {
            if self
                .plan
                .reads_local
                .get(head.context)
                .copied()
                .unwrap_or(false)
            {
                let k = self.first.func + head.context as u32;
                pieces.push(Piece::text(
                    head.offset,
                    format!(" {chk}::refresh::<{k}>(&mut __lprobe_fn); "),
                ));
            }
        }
        pieces
    }

    /// The text that writes loop bodies twice (`Plan::loops`): each opens after its head's
    /// re-read (pushed after `loop_heads`, so first at one offset) and closes before its `}`.
    /// The sites crate's `twice_loop!` as this file names it.
    fn twice_loop_macro(&self) -> String {
        match self.chk.as_str() {
            CRATE_MODULE => format!("crate::{}", crate::build::sites_crate::CRATE_TWICE_LOOP),
            _ => format!("::{SITES_CRATE}::twice_loop"),
        }
    }

    /// A body (`open..close`) of `context` written twice: `{ MACRO!{ $ FLAG; BODY } }`, its
    /// pieces marked as the function's copies (repair's `no_twice` takes them out).
    fn twice_pieces(open: usize, close: usize, context: usize, head: String) -> [Piece; 2] {
        [(open, head), (close, " } ".to_owned())].map(|(at, code)| Piece {
            twice_of: Some(context),
            ..Piece::text(at, code)
        })
    }

    fn loop_bodies(&self) -> Vec<Piece> {
        let sites = self.sites;
        let outer = self.twice_loop_macro();
        let mut pieces = Vec::new();
        for &(l, nested) in &self.plan.loops {
            let b = &sites.loop_bodies[l];
            let name = if nested { "__lprobe_loop" } else { &outer };
            let head = format!(" {name}!{{ $ __lprobe_fn; ");
            pieces.extend(Self::twice_pieces(b.open, b.close, b.context, head));
        }
        pieces
    }

    /// The closure bodies written twice: `{ twice_loop!{ $ fn_on::<K>(); BODY } }`.
    fn closure_bodies(&self) -> Vec<Piece> {
        let (sites, chk) = (self.sites, &self.chk);
        let name = self.twice_loop_macro();
        let mut pieces = Vec::new();
        for &b in &self.plan.closures {
            let body = &sites.closure_bodies[b];
            let k = self.first.func + body.context as u32;
            let head = format!(" {name}!{{ $ {chk}::fn_on::<{k}>(); ");
            pieces.extend(Self::twice_pieces(
                body.open,
                body.close,
                body.context,
                head,
            ));
        }
        pieces
    }

    /// The probe at site `i`, or `None` when it is not placed (taken out, or merged into
    /// its function's entry).
    /// The call by which an entry site times its function by calling it again, if it does:
    /// not where repair took that out, nor in a body written twice (its copy has a guard).
    fn recall<'s>(&self, site: &'s crate::build::visit::Site) -> Option<&'s String> {
        let twice = self.plan.twice.get(site.context).copied().unwrap_or(false);
        match (&site.recall, site.kind) {
            (Some(call), SiteKind::Entry)
                if !self.ex.no_recall.contains(&site.context) && !twice =>
            {
                Some(call)
            }
            _ => None,
        }
    }

    /// Whether the one call's closure may hold every pointer argument of site `i`'s function:
    /// not when the entry captures a `&mut` argument as the value it points at (`*state`, a
    /// small copy). Once such a function is inlined, that target is usually a local its caller
    /// keeps in a register (`rng(&mut seed)` in a loop), and an address passed to a call that
    /// returns to the dormant path keeps it in memory there instead (httparse's workload: a
    /// load of `seed` every iteration, +1.3%), where the two calls pass the copy and the address
    /// only in the branch that returns. A reference captured as itself reaches the cold call
    /// either way; a receiver captured by type name (`Opaque`) is usually a larger value that
    /// lives in memory anyway, and the one call's registers gain more there (lz4_flex's
    /// hash-table methods inlined in `compress_internal`'s loop: 1.133 -> 1.108).
    fn closure_may_hold(&self, i: usize, one: &crate::build::recall::OneCall) -> bool {
        let sites = self.sites;
        !one.pointers
            .iter()
            .any(|name| binding_of(sites, i, name).is_some_and(|b| sites.deref_copied.contains(&b)))
    }

    fn site_piece(&self, i: usize, site: &crate::build::visit::Site) -> Option<Piece> {
        let (sites, ex, chk, plan, first) =
            (self.sites, self.ex, &self.chk, &self.plan, self.first);
        if !ex.keeps_site(i, site.context) || plan.merged_lines.contains(&i) {
            return None;
        }
        let id = first.site + i as u32;
        let k = first.func + site.context as u32;
        let uses_local = !site.in_closure && plan.local.get(site.context).copied().unwrap_or(false);
        let twice = plan.twice.get(site.context).copied().unwrap_or(false);
        // An entry site of a body written twice opens the macro, its probe and timing guard in
        // the instrumented copy; otherwise it times its calls by calling its function again
        // (`recall`), or keeps a guard for the whole call unless the function is small or
        // `#[inline]`. A line site is a plain check.
        let in_cold_copy = site.kind == SiteKind::Entry && twice;
        let recall = self.recall(site);
        let one_call = recall
            .and(site.one_call.as_ref())
            .filter(|one| !ex.no_one_call.contains(&site.context) && self.closure_may_hold(i, one));
        let timed =
            site.kind == SiteKind::Entry && (site.timed || in_cold_copy) && recall.is_none();
        // A cold call takes up to `MAX_BY_VALUE` captures by value, as one tuple
        // (`hit_if_t(i, (a, &b,))`, `enter_t(i, ())`): one element each, where an array of `&dyn
        // Cap` costs two stores and a temporary per capture, and the inliner counts those in
        // the function's size (measured on the suite; see BENCHMARKS.md). On x86-64 ELF it
        // reaches the runtime through the register-saving trampoline (`sites_crate::saving`).
        let n_caps = site
            .names
            .iter()
            .filter(|n| ex.keeps_capture(sites, i, n))
            .count();
        // A line site outside an instrumented copy does the same (`hit_t(i, (a, &b, c,))`): its
        // captures then take one tuple in the function, not a temporary and a two-word array
        // slot each (a function capturing a dozen bindings at each of its lines had a thousand
        // temporaries for the optimizer to take apart: its `--lines all` IR was twenty times the
        // plain one's); the array is built in the cold call, one per set of captured types. humantime's library at every line: rustc 6.78
        // -> 5.79 G instructions (callgrind), plain 1.26 G. Not in an instrumented copy: its
        // captures are plain references with no temporary (`hit_ref(i, &[&a, &b])`), and a
        // cold call per set of types there cost more than it saved (ryu: 7.07 -> 7.96 G).
        let in_twice = site.kind == SiteKind::Line && uses_local && twice;
        let in_loop_twice = plan.loop_sites.contains(&i);
        let by_value = !in_twice && n_caps <= MAX_BY_VALUE;
        let (sfx, open, close, amp) = match (by_value, n_caps) {
            (true, 0) => (BY_VALUE_SUFFIX, "(", ")", ""),
            (true, _) => (BY_VALUE_SUFFIX, "(", ",)", ""),
            (false, _) => ("", "&[", "]", "&"),
        };
        // Every entry reads its function's flag into the local its line sites test.
        let fn_local = format!(
            " #[allow(unused_mut, unused_variables)] let mut __lprobe_fn = {chk}::fn_on::<{k}>();"
        );
        // With `recall`: the text after the captures, and where the call is in it.
        let mut recall_tail = (String::new(), 0..0);
        let (ret, rebind) = sites
            .contexts
            .get(site.context)
            .map_or(("()", ""), |c| (c.ret.as_str(), c.rebind.as_str()));
        // A recalling entry's cold call, up to its captures (merged with the first line's).
        let enter = match plan.merged.get(&i) {
            Some(j) => format!("enter_first{sfx}({id}, {}, ", first.site + *j as u32),
            None => format!("enter{sfx}({id}, "),
        };
        let mut code = if in_cold_copy {
            let twice_macro = match chk.as_str() {
                CRATE_MODULE => format!("crate::{}", crate::build::sites_crate::CRATE_TWICE),
                _ => format!("::{SITES_CRATE}::twice"),
            };
            let cold_open = format!(
                " {twice_macro}!{{ $ {chk}::fn_on::<{k}>(); [ #[allow(unused_mut, unused_variables)] let mut __lprobe_guard = {chk}::entry::<{id}>(true); "
            );
            match plan.merged.get(&i) {
                Some(j) => format!(
                    "{cold_open}__lprobe_guard.timed({chk}::hit_first{sfx}({}, {}, __lprobe_guard.on(), {open}",
                    id,
                    first.site + *j as u32
                ),
                None => format!(
                    "{cold_open}if __lprobe_guard.on() {{ __lprobe_guard.timed({chk}::hit_entry{sfx}({id}, {open}"
                ),
            }
        } else if let Some(one) = one_call {
            // One cold call (`recall::OneCall`): the entry's probes, and the timed call when
            // a `--duration` probe asks. The captures go in the middle.
            let before = format!("{close})) {{ Some(");
            let at = before.len()..before.len() + one.call.len();
            recall_tail = (
                format!(
                    "{before}{}) }} else {{ None }}) {{ return __lprobe_r; }} }} ",
                    one.call
                ),
                at,
            );
            let lets = if one.lets.is_empty() {
                String::new()
            } else {
                format!("{} ", one.lets)
            };
            format!(
                "{fn_local} #[allow(unreachable_code, unused_unsafe)] if __lprobe_fn {{ {lets}if let Some(__lprobe_r) = {chk}::recall(move |__lprobe_p: &mut {chk}::Phase| if __lprobe_p.on({id}, {chk}::{enter}{open}"
            )
        } else if let Some(call) = recall {
            // The captures go in the middle; the rest is written after them.
            let before = format!(
                "{close}); if __lprobe_t != 0 {{ return {chk}::again({id}, __lprobe_t, move || "
            );
            let at = before.len()..before.len() + call.len();
            recall_tail = (format!("{before}{call}); }} }} "), at);
            format!(
                "{fn_local} #[allow(unreachable_code, unused_unsafe)] if __lprobe_fn {{ let __lprobe_t = {chk}::{enter}{open}"
            )
        } else if let (SiteKind::Entry, false, Some(j)) = (site.kind, timed, plan.merged.get(&i)) {
            let line = first.site + *j as u32;
            format!(
                "{fn_local} #[allow(unreachable_code)] if __lprobe_fn {{ {chk}::hit_pair{sfx}({id}, {line}, {open}"
            )
        } else if let (SiteKind::Entry, false) = (site.kind, timed) {
            format!(
                "{fn_local} #[allow(unreachable_code)] if __lprobe_fn {{ {chk}::hit_if{sfx}({id}, {open}"
            )
        } else if let (SiteKind::Entry, Some(j)) = (site.kind, plan.merged.get(&i)) {
            let line = first.site + *j as u32;
            format!(
                "{fn_local} #[allow(unused_mut, unused_variables)] let mut __lprobe_guard = {chk}::entry::<{id}>(__lprobe_fn); #[allow(unreachable_code)] if __lprobe_fn {{ __lprobe_guard.timed({chk}::hit_first{sfx}({id}, {line}, __lprobe_guard.on(), {open}"
            )
        } else if site.kind == SiteKind::Entry {
            format!(
                "{fn_local} #[allow(unused_mut, unused_variables)] let mut __lprobe_guard = {chk}::entry::<{id}>(__lprobe_fn); #[allow(unreachable_code)] if __lprobe_guard.on() {{ __lprobe_guard.timed({chk}::hit_entry{sfx}({id}, {open}"
            )
        } else if in_twice {
            format!(
                " __lprobe_at!{{ #[allow(unreachable_code)] if {chk}::on::<{id}>() {{ {chk}::hit_ref({id}, &["
            )
        } else if uses_local {
            // In a loop body written twice, only the instrumented copy keeps it.
            let at = if in_loop_twice { " __lprobe_at!{" } else { "" };
            format!(
                "{at} #[allow(unreachable_code)] if __lprobe_fn && {chk}::on::<{id}>() {{ {chk}::hit{sfx}({id}, {open}"
            )
        } else {
            // In a closure body written twice, only the instrumented copy keeps it.
            let at = if plan.closure_sites.contains(&i) {
                " __lprobe_at!{"
            } else {
                ""
            };
            format!("{at} #[allow(unreachable_code)] if {chk}::on::<{id}>() {{ {chk}::hit{sfx}({id}, {open}")
        };
        let receiver = match one_call {
            Some(one) if one.self_alias => crate::build::recall::SELF_ALIAS,
            _ => "self",
        };
        let caps = self.captures(i, site, (in_twice, receiver), amp, &mut code);
        // Entry sites pass the call's start time (0: not timed) back to the guard.
        let mut recall_range = None;
        if recall.is_some() {
            let (tail, at) = &recall_tail;
            recall_range = Some(code.len() + at.start..code.len() + at.end);
            code.push_str(tail);
        } else if in_cold_copy {
            code.push_str(&match plan.merged.get(&i) {
                Some(_) => format!("{close})); {rebind}] {ret}; "),
                None => format!("{close})) }} {rebind}] {ret}; "),
            });
        } else if in_twice {
            code.push_str("]) } } ");
        } else {
            code.push_str(&if timed {
                format!("{close})) }} ")
            } else {
                format!("{close}) }} ")
            });
            if (in_loop_twice && uses_local) || plan.closure_sites.contains(&i) {
                code.push_str("} ");
            }
        }
        Some(Piece {
            at: site.offset,
            order: 0,
            code,
            site: Some(i),
            captures: caps,
            recall: recall_range,
            one_call: one_call.is_some(),
            timed: site.kind == SiteKind::Entry && (timed || recall.is_some()),
            twice_of: None,
        })
    }

    /// Appends site `i`'s captures to `code` (`amp`: `&` when they go in an array; `self`
    /// through `receiver`); each name with its range in `code`.
    fn captures(
        &self,
        i: usize,
        site: &crate::build::visit::Site,
        (in_twice, receiver): (bool, &str),
        amp: &str,
        code: &mut String,
    ) -> Vec<(String, Range<usize>)> {
        let (sites, ex, chk) = (self.sites, self.ex, &self.chk);
        let mut caps = Vec::new();
        for name in &site.names {
            if !ex.keeps_capture(sites, i, name) {
                continue;
            }
            if !caps.is_empty() {
                code.push_str(", ");
            }
            let start = code.len();
            // A line site of the instrumented copy of a body written twice captures every
            // binding by reference from the start (`hit_ref`, `probe_runtime::CapRef`): that
            // copy runs only while a site of its function is armed, so an address escaping
            // there costs the dormant path nothing, and a guessed copy of a type that is not
            // a small `Copy` would cost a repair round.
            let form = match ex.form(sites, i, name) {
                Form::Copy if in_twice => Form::Ref,
                f => f,
            };
            // A `&mut` binding (or a `Vec` or `String`: `FileSites::reborrowed`) is captured
            // through a shared reborrow of its target, held in a temporary of the armed
            // branch: its own address never escapes.
            let binding = binding_of(sites, i, name);
            let reborrow = binding.is_some_and(|b| sites.reborrowed.contains(&b));
            let expr = if name == "self" {
                receiver
            } else {
                name.as_str()
            };
            // A `&mut` to a small copy is captured as the value it points at (outside an
            // instrumented copy, whose addresses do not matter): `*cur`.
            let deref = !in_twice && binding.is_some_and(|b| sites.deref_copied.contains(&b));
            let target = if reborrow {
                format!("&*{expr}")
            } else {
                format!("&{expr}")
            };
            // Plain expressions, no constructor per capture: the runtime's `Cap` is
            // implemented for every small `Copy` type with `Debug`, and a shared reference is
            // one, so a copy is the value itself (`&(a,).0` in an array: a field of a
            // temporary tuple, the binding's address never taken) and a reference is `&b`. A
            // wrong guess is still a type error at that capture, never a silent move: `(s,)`
            // of a `String` fails the `SmallCopy` bound before anything is moved. Not `&{a}`:
            // the array's expected `&dyn Cap` reaches into a block, and a binding whose type
            // is still open there (a closure's parameter, `let v = Default::default()`) is
            // inferred to be `dyn Cap`; a tuple's field takes no expectation.
            let capture = match form {
                Form::Copy | Form::Ref if deref && amp.is_empty() => format!("*{expr}"),
                Form::Copy | Form::Ref if deref => format!("&(*{expr},).0"),
                Form::Copy if amp.is_empty() => expr.to_owned(),
                Form::Copy => format!("&({expr},).0"),
                // `CapRef` is met by the binding itself: no temporary holding a reference
                // (the target of a `&mut` may be unsized, so it goes in a `ByRef`).
                Form::Ref if in_twice && reborrow => format!("&{chk}::ByRef({target})"),
                Form::Ref if in_twice => target,
                Form::Ref => format!("{amp}{target}"),
                Form::Opaque => format!("{amp}{chk}::Opaque::of({target})"),
            };
            // A type name always compiles.
            let checked = self.list == CaptureList::Checked && form != Form::Opaque;
            if checked {
                let f = match (in_twice, amp.is_empty()) {
                    (true, _) => "cap_ref",
                    (false, false) => "cap",
                    (false, true) => "cap_t",
                };
                code.push_str(&format!("{chk}::{f}({capture})"));
            } else {
                code.push_str(&capture);
            }
            caps.push((name.clone(), start..code.len()));
        }
        caps
    }

    /// Closes each body written twice before its closing brace; the pieces (by index) that
    /// open and close one, with its context.
    fn close_twice(&self, pieces: &mut Vec<Piece>) -> HashMap<usize, usize> {
        let (sites, twice) = (self.sites, &self.plan.twice);
        // The two bodies open in the entry site's text and close before the body's closing brace.
        let mut twice_of_piece: Vec<(usize, usize)> = Vec::new();
        for (n, p) in pieces.iter().enumerate() {
            if let Some(c) = p.twice_of {
                twice_of_piece.push((n, c));
            }
            let Some(i) = p.site else { continue };
            let s = &sites.sites[i];
            if s.kind == SiteKind::Entry && twice.get(s.context).copied().unwrap_or(false) {
                twice_of_piece.push((n, s.context));
            }
        }
        for (c, on) in twice.iter().enumerate() {
            if *on {
                twice_of_piece.push((pieces.len(), c));
                pieces.push(Piece::text(sites.contexts[c].body_end, " } ".to_owned()));
            }
        }
        for (i, p) in pieces.iter_mut().enumerate() {
            p.order = i;
        }
        twice_of_piece.into_iter().collect()
    }
}

/// Splices `pieces` into `text` (stable: at one offset, a loop head, pushed first, precedes a
/// probe) and records where each probe, capture and body written twice landed.
fn assemble(
    text: &str,
    mut pieces: Vec<Piece>,
    twice_pieces: &HashMap<usize, usize>,
    w: &Writer<'_>,
    flags: FlagsHome,
) -> Rewritten {
    let (first_id, merged) = (w.first.site, &w.plan.merged);
    // Stable: at one offset, a loop head (pushed first) precedes a probe.
    pieces.sort_by_key(|p| p.at);

    let mut out =
        String::with_capacity(text.len() + pieces.iter().map(|p| p.code.len()).sum::<usize>());
    let mut placed = Vec::new();
    let mut inserts = Vec::new();
    let mut twice_ranges = Vec::new();
    let mut last = 0;
    for p in pieces {
        let at = p.at.min(text.len());
        out.push_str(&text[last..at]);
        let base = out.len();
        out.push_str(&p.code);
        last = at;
        inserts.push((at, p.code.len()));
        if let Some(c) = twice_pieces.get(&p.order) {
            twice_ranges.push((*c, base..out.len()));
        }
        if let Some(i) = p.site {
            let shift = |r: Range<usize>| base + r.start..base + r.end;
            placed.push(Placed {
                site: i,
                id: first_id + i as u32,
                range: base..out.len(),
                captures: p.captures.into_iter().map(|(n, r)| (n, shift(r))).collect(),
                recall: p.recall.map(shift),
                one_call: p.one_call,
                timed: p.timed,
            });
        }
    }
    out.push_str(&text[last..]);
    let crate_module = match flags {
        FlagsHome::Crate {
            define: Some((n, m, access, host)),
        } => {
            // After the last line (a file may end in a line comment without a newline).
            if !out.ends_with('\n') {
                out.push('\n');
            }
            let start = out.len();
            out.push_str(&crate::build::sites_crate::crate_flags_module(
                n, m, access, &host,
            ));
            out.push('\n');
            Some(start..out.len())
        }
        _ => None,
    };
    // A merged line site is placed where its entry site is, with the same captures.
    let twins: Vec<Placed> = placed
        .iter()
        .filter_map(|p: &Placed| {
            let j = *merged.get(&p.site)?;
            Some(Placed {
                site: j,
                id: first_id + j as u32,
                ..p.clone()
            })
        })
        .collect();
    placed.extend(twins);
    Rewritten {
        text: out,
        placed,
        crate_module,
        twice: twice_ranges,
        inserts,
        replaced: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::visit::{find_sites, LineSel};

    #[test]
    fn scans_of_rewritten_code_look_where_it_calls() {
        assert_eq!(
            CALL_HOMES,
            [format!("::{SITES_CRATE}").as_str(), CRATE_MODULE]
        );
    }

    /// Site `site`'s captures as written: (name, text).
    fn captured(rw: &Rewritten, site: usize) -> Vec<(&str, &str)> {
        let p = rw.placed.iter().find(|p| p.site == site).expect("placed");
        p.captures
            .iter()
            .map(|(n, r)| (n.as_str(), &rw.text[r.clone()]))
            .collect()
    }

    fn go(src: &str, ex: &Exclusions) -> (FileSites, Rewritten) {
        go_lines(src, ex, &LineSel::All)
    }

    fn go_lines(src: &str, ex: &Exclusions, lines: &LineSel) -> (FileSites, Rewritten) {
        let file = syn::parse_file(src).expect("parses");
        let fs = find_sites(src, &file, "k", lines);
        let rw = go_again(src, &fs, ex, CaptureList::Plain);
        (fs, rw)
    }

    /// `src` (its sites `fs`) rewritten with `ex` taken out, its captures listed as `list`.
    fn go_again(src: &str, fs: &FileSites, ex: &Exclusions, list: CaptureList) -> Rewritten {
        rewrite(
            src,
            fs,
            FirstIds { site: 10, func: 0 },
            ex,
            None,
            FlagsHome::SitesCrate,
            list,
        )
    }

    #[test]
    fn a_replaced_literal_moves_the_probes_after_it() {
        let src = "fn f(a: u32) -> usize {\n    let s = include_str!(\"x.rs\"); let n = a;\n    s.len() + n as usize\n}\n";
        let file = syn::parse_file(src).expect("parses");
        let fs = find_sites(src, &file, "k", &LineSel::All);
        let mut rw = rewrite(
            src,
            &fs,
            Default::default(),
            &Exclusions::default(),
            None,
            FlagsHome::SitesCrate,
            CaptureList::Plain,
        );
        let probes = |rw: &Rewritten| -> Vec<String> {
            rw.placed
                .iter()
                .map(|p| rw.text[p.range.clone()].to_owned())
                .collect()
        };
        let before = probes(&rw);
        let lit = src.find("\"x.rs\"").expect("literal");
        rw.replace(lit..lit + 6, "\"/a/longer/path/x.rs\"");
        assert!(rw.text.contains("include_str!(\"/a/longer/path/x.rs\")"));
        assert_eq!(probes(&rw), before);
        assert_eq!(rw.text.lines().count(), src.lines().count());
        // Offsets of the original text after the literal map past the longer path.
        let n = src.find("let n").expect("let");
        assert_eq!(&rw.text[rw.map_offset(n)..rw.map_offset(n) + 5], "let n");
    }

    #[test]
    fn keeps_every_line_number_and_records_capture_ranges() {
        let src = "fn f(a: u8) -> u8 {\n    let b = a;\n    b\n}\n";
        let (_, rw) = go(src, &Exclusions::default());
        assert_eq!(rw.text.lines().count(), src.lines().count());
        assert_eq!(rw.placed.len(), 3);
        let at = |site: usize| rw.placed.iter().find(|p| p.site == site).expect("placed");
        let (name, r) = &at(2).captures[1];
        assert_eq!(name, "b");
        // Written twice: every binding is captured by plain reference in the instrumented
        // copy (`hit_ref`), a parameter too (the copy's own, moved into its closure).
        assert_eq!(&rw.text[r.clone()], "&b");
        assert_eq!(&rw.text[at(2).captures[0].1.clone()], "&a");
        assert!(rw.text.contains("::lprobe_sites::hit_ref(12, &[&a, &b])"));
        assert!(rw.text.contains("::lprobe_sites::on::<12>()"));
        assert!(syn::parse_file(&rw.text).is_ok());
        // The first statement's site is checked in the entry's call (same captures), and
        // placed where the entry is; the instrumented copy times the call with a guard.
        // A body rustc copies into its callers stays one it copies (`#[inline]`).
        assert!(rw.text.starts_with(
            "#[inline] fn f(a: u8) -> u8 { ::lprobe_sites::twice!{ $ ::lprobe_sites::fn_on::<0>(); [ #[allow(unused_mut, unused_variables)] let mut __lprobe_guard = ::lprobe_sites::entry::<10>(true); __lprobe_guard.timed(::lprobe_sites::hit_first_t(10, 11, __lprobe_guard.on(), (a,))); #[allow(unused_variables, unused_mut)] let a = a; ] u8; \n"
        ), "{}", rw.text);
        assert!(at(0).timed && at(0).recall.is_none());
        assert!(!rw.text.contains("on(11)"));
        assert_eq!(at(1).range, at(0).range);
        // Written once, a timed call calls the function again: in the entry's one cold call,
        // or, where that does not compile, after it (`enter`, then `again` when timed).
        let one = "if __lprobe_fn { if let Some(__lprobe_r) = ::lprobe_sites::recall(move |__lprobe_p: &mut ::lprobe_sites::Phase| if __lprobe_p.on(10, ::lprobe_sites::enter_first_t(10, 11, (a,))) { Some(self::f(a)) } else { None }) { return __lprobe_r; } }";
        let two = "if __lprobe_fn { let __lprobe_t = ::lprobe_sites::enter_first_t(10, 11, (a,)); if __lprobe_t != 0 { return ::lprobe_sites::again(10, __lprobe_t, move || self::f(a)); } }";
        let mut ex = Exclusions::default();
        ex.no_twice.insert(0);
        for (no_one_call, site) in [(false, one), (true, two)] {
            if no_one_call {
                ex.no_one_call.insert(0);
            }
            let (_, rw) = go(src, &ex);
            let at = |site: usize| rw.placed.iter().find(|p| p.site == site).expect("placed");
            assert!(rw.text.contains(site), "{}", rw.text);
            let call = at(0).recall.clone().expect("recall");
            assert_eq!(&rw.text[call], "self::f(a)");
            assert!(at(0).timed && at(0).one_call != no_one_call);
            assert!(!rw.text.contains("__lprobe_guard"));
            assert_eq!(rw.text.lines().count(), src.lines().count());
        }
    }

    #[test]
    fn checked_lists_pass_each_capture_through_a_call_of_its_own() {
        let src = "fn f(a: u8, s: &str) -> u8 {\n    let b = a;\n    let n = s.len();\n    b\n}\n";
        let (fs, _) = go(src, &Exclusions::default());
        let checked = |ex: &Exclusions| go_again(src, &fs, ex, CaptureList::Checked);
        let rw = checked(&Exclusions::default());
        // Written twice: the instrumented copy's captures through `cap_ref`; the entry's, in
        // its tuple, through `cap_t`.
        assert!(
            rw.text.contains(
                "::lprobe_sites::hit_ref(13, &[::lprobe_sites::cap_ref(&a), ::lprobe_sites::cap_ref(&s), ::lprobe_sites::cap_ref(&b), ::lprobe_sites::cap_ref(&n)])"
            ),
            "{}",
            rw.text
        );
        assert!(rw
            .text
            .contains("hit_first_t(10, 11, __lprobe_guard.on(), (::lprobe_sites::cap_t(a), ::lprobe_sites::cap_t(s),))"));
        // The capture's range covers the call, where rustc's error points inside.
        let site = rw.placed.iter().find(|p| p.site == 3).expect("placed");
        assert_eq!(
            &rw.text[site.captures[2].1.clone()],
            "::lprobe_sites::cap_ref(&b)"
        );
        // Written once: the captures are a tuple, each through `cap_t` (rustc names an unmet
        // bound once per tuple and predicate); a type name as it was.
        let mut ex = Exclusions::default();
        ex.no_twice.insert(0);
        ex.opaque.insert(binding_of(&fs, 3, "n").expect("bound"));
        let rw = checked(&ex);
        assert!(
            rw.text
                .contains("::lprobe_sites::hit_t(13, (::lprobe_sites::cap_t(a), ::lprobe_sites::cap_t(s), ::lprobe_sites::cap_t(b), ::lprobe_sites::Opaque::of(&n),))"),
            "{}",
            rw.text
        );
        for rw in [checked(&Exclusions::default()), checked(&ex)] {
            assert!(syn::parse_file(&rw.text).is_ok());
            assert_eq!(rw.text.lines().count(), src.lines().count());
        }
    }

    #[test]
    fn a_binding_stepped_down_is_captured_by_reference_or_opaque_at_each_of_its_sites() {
        let src = "fn f(a: u8) -> u8 {\n    let b = a;\n    let c = b;\n    let b = c;\n    b\n}\n";
        let (fs, _) = go(src, &Exclusions::default());
        // Site 3 sees the second `b`; site 2 the first.
        let first_b = binding_of(&fs, 2, "b").expect("bound");
        let second_b = binding_of(&fs, 4, "b").expect("bound");
        assert_ne!(first_b, second_b);
        // (Written once: in two bodies every binding of the body starts by reference.)
        let mut ex = Exclusions::default();
        ex.no_twice.insert(0);
        ex.by_ref.insert(first_b);
        ex.opaque.insert(binding_of(&fs, 0, "a").expect("bound"));
        let (_, rw) = go(src, &ex);
        let text = |site: usize, name: &str| {
            let p = rw.placed.iter().find(|p| p.site == site).expect("placed");
            let (_, r) = p
                .captures
                .iter()
                .find(|(n, _)| n == name)
                .expect("captured");
            rw.text[r.clone()].to_owned()
        };
        assert_eq!(text(2, "b"), "&b");
        assert_eq!(text(3, "b"), "&b");
        assert_eq!(text(4, "b"), "b");
        assert_eq!(text(4, "a"), "::lprobe_sites::Opaque::of(&a)");
        assert!(syn::parse_file(&rw.text).is_ok());
    }

    #[test]
    fn a_line_passes_its_captures_as_arguments_up_to_the_most_a_call_takes() {
        // One body (an item inside): each line's captures are its cold call's arguments, a
        // copy as the bare name; past `MAX_BY_VALUE` they go in an array, as copies of
        // tuple fields.
        let lets: String = (0..=MAX_BY_VALUE)
            .map(|k| format!("    let v{k} = {k}u32;\n"))
            .collect();
        let src = format!("fn f() -> u32 {{\n{lets}    struct G;\n    v0\n}}\n");
        let (fs, rw) = go(&src, &Exclusions::default());
        let n = MAX_BY_VALUE;
        // The first line after `let v0` passes one capture, the last by value `n`.
        assert!(
            rw.text.contains("::lprobe_sites::hit_t(12, (v0,)) }"),
            "{}",
            rw.text
        );
        let all: Vec<String> = (0..n).map(|k| format!("v{k}")).collect();
        let by_value = format!(
            "::lprobe_sites::hit_t({}, ({},)) }}",
            12 + n - 1,
            all.join(", ")
        );
        assert!(rw.text.contains(&by_value), "{}", rw.text);
        let in_array = format!("&(v{n},).0]) }}");
        assert!(rw.text.contains("::lprobe_sites::hit("), "{}", rw.text);
        assert!(rw.text.contains(&in_array), "{}", rw.text);
        assert!(syn::parse_file(&rw.text).is_ok());
        // The sites crate defines the by-value calls this text makes: one for every line.
        let mut calls = crate::build::sites_crate::ByValueCalls::default();
        calls.scan(&rw.text);
        assert_eq!(
            calls.used.iter().copied().collect::<Vec<_>>(),
            ["hit", "hit_first"]
        );
        assert!(fs.sites.len() > n);
    }

    #[test]
    fn vec_and_string_bindings_are_captured_as_what_they_hold() {
        // Surely a `Vec` or a `String` (by annotation or constructor): the slice or `str`
        // (`&*cache` in the by-value tuple of captures), so the local's own address never
        // escapes; anything else by reference.
        let src = "fn f(n: usize) -> usize {\n    let cache: Vec<usize> = (0..n).collect();\n    let name = format!(\"{n}\");\n    let mut out = String::new();\n    let list = vec![1u8; n];\n    let other: Option<Vec<u8>> = None;\n    out.push_str(&name);\n    cache.len() + list.len() + out.len() + other.map_or(0, |o| o.len())\n}\n";
        let mut ex = Exclusions::default();
        ex.no_twice.insert(0);
        let (fs, rw) = go(src, &ex);
        let last = fs
            .sites
            .iter()
            .rposition(|s| s.names.iter().any(|n| n == "other"))
            .expect("a site sees every binding");
        assert_eq!(
            captured(&rw, last),
            [
                ("n", "n"),
                ("cache", "&*cache"),
                ("name", "&*name"),
                ("out", "&*out"),
                ("list", "&*list"),
                ("other", "&other")
            ]
        );
        assert!(syn::parse_file(&rw.text).is_ok());
    }

    #[test]
    fn mut_ref_bindings_are_captured_through_a_reborrow_of_their_target() {
        let src = "struct S(u8);\nimpl S {\n    fn f(&mut self, v: &mut Vec<u8>, w: &Vec<u8>) -> usize {\n        let e = &mut v[0];\n        let n = w.len();\n        *e = self.0;\n        n\n    }\n}\n";
        let mut ex = Exclusions::default();
        ex.no_twice.insert(0);
        let (fs, rw) = go(src, &ex);
        let site = fs
            .sites
            .iter()
            .position(|s| s.names.iter().any(|n| n == "e"))
            .expect("a site sees e");
        let caps = captured(&rw, site);
        let text = |name: &str| {
            let (_, t) = caps.iter().find(|(n, _)| *n == name).expect("captured");
            *t
        };
        assert_eq!(text("self"), "&*self");
        assert_eq!(text("v"), "&*v");
        // `let e = &mut …` is never a small copy: by reference from the start, reborrowed.
        assert_eq!(text("e"), "&*e");
        assert_eq!(text("w"), "w");
        // Stepped down to opaque, still reborrowed.
        let mut ex = ex.clone();
        ex.opaque.insert(binding_of(&fs, site, "v").expect("bound"));
        let (_, rw) = go(src, &ex);
        assert!(
            rw.text.contains("::lprobe_sites::Opaque::of(&*v)"),
            "{}",
            rw.text
        );
        assert!(syn::parse_file(&rw.text).is_ok());
        // Written twice, the instrumented copy captures plain references (`hit_ref`); a
        // `&mut` binding's target, which may be unsized (`&mut [u8]`), in a `ByRef`.
        let (fs, rw) = go(src, &Exclusions::default());
        let twice_site = fs
            .sites
            .iter()
            .position(|s| s.names.iter().any(|n| n == "n"))
            .expect("a site sees n");
        let texts: Vec<&str> = captured(&rw, twice_site)
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        assert_eq!(
            texts,
            [
                "&::lprobe_sites::ByRef(&*self)",
                "&::lprobe_sites::ByRef(&*v)",
                "&w",
                "&::lprobe_sites::ByRef(&*e)",
                "&n"
            ]
        );
        assert!(
            rw.text.contains("::lprobe_sites::hit_ref(13, &["),
            "{}",
            rw.text
        );
        assert!(syn::parse_file(&rw.text).is_ok());
    }

    #[test]
    fn mut_refs_to_small_copies_are_captured_as_their_value() {
        // `cur: &mut usize` (a caller's local, once the function is inlined): the value it
        // points at, never its address; the same for a `let` that says so. In a body written
        // twice the instrumented copy's references cost nothing and stay.
        let src = "fn f(input: &[u8], cur: &mut usize, o: &mut Option<u32>, v: &mut Vec<u8>) -> usize {\n    let n: &mut u64 = &mut 0;\n    *n += 1;\n    *cur += input.len();\n    *cur\n}\n";
        let mut ex = Exclusions::default();
        ex.no_twice.insert(0);
        let (fs, rw) = go(src, &ex);
        let entry = captured(&rw, 0);
        assert_eq!(
            entry,
            [
                ("input", "input"),
                ("cur", "*cur"),
                ("o", "*o"),
                ("v", "&*v")
            ]
        );
        let last = fs.sites.len() - 1;
        let line: Vec<(&str, &str)> = captured(&rw, last);
        assert!(line.contains(&("n", "*n")), "{line:?}");
        assert!(syn::parse_file(&rw.text).is_ok());
        // Written twice, the instrumented copy's lines capture the reference.
        let (_, rw) = go(src, &Exclusions::default());
        assert!(
            rw.text.contains("twice!") && rw.text.contains("ByRef(&*cur)"),
            "{}",
            rw.text
        );
    }

    #[test]
    fn checks_read_the_crates_own_flags_and_a_root_defines_them_after_its_last_line() {
        // Ends in a line comment without a newline: the module must not be commented out.
        let src = "fn f(a: u8) -> u8 {\n    let b = a;\n    b\n}\n// end";
        let file = syn::parse_file(src).expect("parses");
        let fs = find_sites(src, &file, "k", &LineSel::All);
        let with = |flags| {
            rewrite(
                src,
                &fs,
                FirstIds::default(),
                &Exclusions::default(),
                None,
                flags,
                CaptureList::Plain,
            )
        };
        let rw = with(FlagsHome::Crate {
            define: Some((
                40,
                7,
                crate::build::sites_crate::FlagAccess::Direct,
                Host::Own,
            )),
        });
        assert!(rw.text.contains("crate::__lprobe::fn_on::<0>()"));
        assert!(rw.text.contains("crate::__lprobe::on::<2>()"));
        // Everything generated code names is the module's: no sites crate.
        assert!(!rw.text.contains("::lprobe_sites::"), "{}", rw.text);
        assert!(rw
            .text
            .contains("crate::__lprobe_twice!{ $ crate::__lprobe::fn_on::<0>();"));
        assert!(rw.text.contains("crate::__lprobe::hit_first_t("));
        assert!(rw.text.contains("crate::__lprobe::entry::<0>(true)"));
        let m = rw.crate_module.clone().expect("module defined");
        assert!(rw.text[m.clone()].contains("static F: self::Flags<40>"));
        assert!(rw.text[m.clone()].contains("static FNF: self::Flags<7>"));
        assert!(rw.text[m].contains("pub(crate) use crate::__lprobe_sites::*;"));
        // Every original line keeps its number; the module comes after the last one.
        assert_eq!(rw.text.lines().take(5).count(), 5);
        assert_eq!(rw.text.lines().nth(4), Some("// end"));
        assert!(syn::parse_file(&rw.text).is_ok());
        // A crate of the package that links its library imports from there.
        let rw = with(FlagsHome::Crate {
            define: Some((
                40,
                7,
                crate::build::sites_crate::FlagAccess::Direct,
                Host::Lib("my_lib".into()),
            )),
        });
        let m = rw.crate_module.clone().expect("module defined");
        assert!(rw.text[m].contains("extern crate my_lib as __lprobe_host; pub(crate) use self::__lprobe_host::__lprobe_sites::*;"));
        // Another file of the crate uses the module without defining it.
        let rw = with(FlagsHome::Crate { define: None });
        assert!(rw.crate_module.is_none() && !rw.text.contains("mod __lprobe"));
    }

    #[test]
    fn the_first_statement_keeps_its_own_check_when_its_captures_differ() {
        let src = "fn f(a: u8) -> u8 {\n    let b = a;\n    b\n}\n";
        let mut ex = Exclusions::default();
        ex.drop_capture.insert((1, "a".into()));
        let (_, rw) = go(src, &ex);
        assert!(!rw.text.contains("hit_first"));
        assert!(rw.text.contains("::lprobe_sites::on::<11>()"));
    }

    #[test]
    fn exclusions_drop_captures_sites_and_functions() {
        let src = "fn f(a: u8) -> u8 {\n    let b = a;\n    b\n}\n";
        let mut ex = Exclusions::default();
        ex.drop_var_from.insert((0, "a".into(), 1));
        ex.drop_site.insert(0);
        let (_, rw) = go(src, &ex);
        assert_eq!(rw.placed.len(), 2);
        assert!(rw
            .placed
            .iter()
            .all(|p| p.captures.iter().all(|(n, _)| n != "a")));
        ex.fn_no_probes.insert(0);
        let (_, rw) = go(src, &ex);
        assert_eq!(rw.text, src);
    }

    #[test]
    fn a_dropped_binding_does_not_drop_a_later_shadowing_one() {
        let src = "fn f() {\n    let v = vec![1u8];\n    drop(v);\n    let v = vec![2u8];\n    let n = v.len();\n}\n";
        let mut ex = Exclusions::default();
        // `v` moved at line 3: drop it from the site of line 4 on.
        ex.drop_var_from.insert((0, "v".into(), 3));
        let (fs, rw) = go(src, &ex);
        assert!(!ex.keeps_capture(&fs, 3, "v"), "the moved v");
        assert!(ex.keeps_capture(&fs, 4, "v"), "the new v");
        let fourth = rw.placed.iter().find(|p| p.site == 4).expect("placed");
        assert!(fourth.captures.iter().any(|(n, _)| n == "v"));
    }

    #[test]
    fn a_closure_without_loop_and_with_two_sites_is_written_twice_under_its_function_flag() {
        let src = "pub fn f(v: &mut [u32], t: u32) -> usize {\n    \
                   v.sort_by(|a, b| {\n        let x = a ^ t;\n        x.cmp(&(b ^ t))\n    });\n    \
                   v.iter().filter(|&&a| {\n        for _ in 0..a {}\n        a > t\n    }).count()\n}\n";
        let (fs, rw) = go(src, &Exclusions::default());
        assert_eq!(fs.closure_bodies.len(), 2);
        // The comparator (no loop, two sites): its body in the macro, each site in
        // `__lprobe_at!`, under the function's flag.
        assert!(
            rw.text.contains(
                "v.sort_by(|a, b| { ::lprobe_sites::twice_loop!{ $ ::lprobe_sites::fn_on::<0>(); "
            ),
            "{}",
            rw.text
        );
        let comparator = rw
            .text
            .split("sort_by")
            .nth(1)
            .and_then(|t| t.split("filter").next());
        let comparator = comparator.expect("the comparator's text");
        for id in [12, 13] {
            let wrapped = format!(
                "__lprobe_at!{{ #[allow(unreachable_code)] if ::lprobe_sites::on::<{id}>() {{ ::lprobe_sites::hit_t({id}, "
            );
            assert!(comparator.contains(&wrapped), "{comparator}");
        }
        // The predicate has a loop: its sites check their flags as before.
        let predicate = rw
            .text
            .split("filter")
            .nth(1)
            .expect("the predicate's text");
        assert!(!predicate.contains("twice_loop!"), "{predicate}");
        assert!(!predicate.contains("__lprobe_at!"), "{predicate}");
        // Repair can take the copies out (as it does a body written twice).
        let mut ex = Exclusions::default();
        ex.no_twice.insert(0);
        let (_, once) = go(src, &ex);
        assert!(
            !once.text.contains("twice_loop!{ $ ::lprobe_sites::fn_on"),
            "{}",
            once.text
        );
    }

    #[test]
    fn loop_heads_refresh_the_function_flag_only_for_line_sites() {
        let src = "fn f(n: u64) -> u64 {\n    let mut h = 0;\n    loop {\n        h = g(h);\n        if h > n { return h; }\n    }\n}\n";
        let (_, every) = go(src, &Exclusions::default());
        assert!(every
            .text
            .contains("::lprobe_sites::refresh::<0>(&mut __lprobe_fn)"));
        // Entry sites alone: nothing in the loop reads the local, so no load at its head.
        let file = syn::parse_file(src).expect("parses");
        let fs = find_sites(src, &file, "k", &LineSel::None);
        let entry = rewrite(
            src,
            &fs,
            FirstIds::default(),
            &Exclusions::default(),
            None,
            FlagsHome::SitesCrate,
            CaptureList::Plain,
        );
        assert!(entry.text.contains("fn_on::<0>()"));
        assert!(!entry.text.contains("refresh"));
    }

    #[test]
    fn maps_original_offsets_past_insertions() {
        let src = "fn f() {\n    let b = 1;\n}\n";
        let (fs, rw) = go(src, &Exclusions::default());
        let orig = src.find("let").expect("has let");
        let mapped = rw.map_offset(orig);
        assert_eq!(&rw.text[mapped..mapped + 3], "let");
        assert_eq!(fs.sites.len(), 2);
    }

    #[test]
    fn an_inline_function_is_timed_in_its_instrumented_copy_or_by_calling_itself() {
        let src = "#[inline]\nfn f(a: u8) -> u8 {\n    a + 1\n}\n";
        let (fs, rw) = go(src, &Exclusions::default());
        assert!(!fs.sites[0].timed, "no guard in the dormant path");
        // The guard is in the instrumented copy (the macro's `[…]`), not in the function.
        let (_, open) = &rw.twice[0];
        assert!(rw.text[open.clone()].contains("let mut __lprobe_guard"));
        assert_eq!(rw.text.matches("__lprobe_guard").count(), 3, "{}", rw.text);
        assert!(rw.placed[0].timed);
        // Written once, it times itself by calling itself again, and never gets a guard.
        let mut ex = Exclusions::default();
        ex.no_twice.insert(0);
        let (_, rw) = go(src, &ex);
        assert!(!rw.text.contains("__lprobe_guard"), "{}", rw.text);
        assert!(rw.text.contains("{ Some(self::f(a)) }"), "{}", rw.text);
        assert!(rw.placed[0].timed);
        // If the call does not compile, the function is built untimed, as before.
        ex.no_one_call.insert(0);
        ex.no_recall.insert(0);
        let (_, rw) = go(src, &ex);
        assert!(
            rw.text.contains("::lprobe_sites::hit_pair_t(10, 11, (a,))"),
            "{}",
            rw.text
        );
        assert!(!rw.placed[0].timed && rw.placed[0].recall.is_none());
        assert!(syn::parse_file(&rw.text).is_ok());
    }

    #[test]
    fn a_body_without_items_is_written_twice_and_its_dormant_copy_has_no_checks() {
        let src = "fn f(a: u8) -> u8 {\n    let b = a + 1;\n    let c = b * 2;\n    c\n}\n";
        let (fs, rw) = go(src, &Exclusions::default());
        assert!(fs.contexts[0].twice);
        assert_eq!(rw.text.lines().count(), src.lines().count());
        // Opens after the entry's check, closes before the body's brace, on the same lines.
        assert!(
            rw.text.lines().next().is_some_and(
                |l| l.contains("::lprobe_sites::twice!{ $ ::lprobe_sites::fn_on::<0>(); [ ")
            ),
            "{}",
            rw.text
        );
        assert_eq!(rw.text.lines().nth(4), Some(" } }"), "{}", rw.text);
        assert!(
            rw.text
                .contains("__lprobe_at!{ #[allow(unreachable_code)] if ::lprobe_sites::on::<12>()"),
            "{}",
            rw.text
        );
        assert!(!rw.text.contains("if __lprobe_fn && "), "{}", rw.text);
        assert_eq!(rw.twice.len(), 2);
        assert!(rw
            .twice
            .iter()
            .all(|(c, r)| *c == 0 && rw.text[r.clone()].contains(['{', '}'])));
        // When that does not compile: one body, as before.
        let mut ex = Exclusions::default();
        ex.no_twice.insert(0);
        let (_, rw) = go(src, &ex);
        assert!(!rw.text.contains("twice!") && rw.text.contains("if __lprobe_fn && "));
        assert!(syn::parse_file(&rw.text).is_ok());
    }

    #[test]
    fn bodies_with_items_macros_or_waiting_loops_are_written_once() {
        for src in [
            "fn f() -> u32 {\n    static N: u32 = 1;\n    let a = N;\n    a\n}\n",
            "fn f() -> u32 {\n    #[no_mangle]\n    fn g() -> u32 { 1 }\n    let a = g();\n    a\n}\n",
            "fn f() -> u32 {\n    fn g() -> u32 { static N: u32 = 1; N }\n    let a = g();\n    a\n}\n",
            "fn f() -> u32 {\n    impl T for u8 {}\n    let a = 1;\n    a\n}\n",
            "fn f() -> u32 {\n    let a = 1;\n    log::info!(\"{a}\");\n    a\n}\n",
            "fn f(v: &[u8]) -> impl Iterator<Item = &u8> + '_ {\n    let w = v;\n    w.iter().filter(|x| **x > 0)\n}\n",
            "#[track_caller]\nfn f(v: &[u8]) -> u8 {\n    let w = v[0];\n    w\n}\n",
        ] {
            let (fs, rw) = go(src, &Exclusions::default());
            assert!(!fs.contexts[0].twice && !rw.text.contains("twice!"), "{src}");
        }
        // A nested function (with nothing but plain items and macros in it), a `const` and a
        // `use` may be written twice: two copies of a function that do the same.
        let src = "fn f(v: &[u8]) -> usize {\n    use std::cmp;\n    const K: usize = 2;\n    #[cold]\n    fn tail(v: &[u8]) -> usize { v.iter().take_while(|b| **b == 0).count() }\n    let n = cmp::min(v.len(), K);\n    n + tail(v)\n}\n";
        let (fs, rw) = go(src, &Exclusions::default());
        assert!(
            fs.contexts[0].twice && rw.text.contains("twice!"),
            "{}",
            rw.text
        );
        assert!(syn::parse_file(&rw.text).is_ok());
        // A loop that waits keeps its line sites live in the one body (it re-reads the
        // flag); with entry sites only, its body is written twice.
        let src = "fn f(rx: &R) -> u32 {\n    let mut a = 0;\n    while let Some(x) = rx.recv() {\n        a += x;\n    }\n    a\n}\n";
        let (_, rw) = go(src, &Exclusions::default());
        assert!(
            !rw.text.contains("twice!") && rw.text.contains("refresh"),
            "{}",
            rw.text
        );
        // (Only a function that cannot be timed otherwise gets a copy at entry sites: one
        // without a guard that cannot call itself, here for its `_` parameter.)
        let (_, rw) = go_lines(src, &Exclusions::default(), &LineSel::None);
        assert!(!rw.text.contains("twice!") && rw.text.contains("__lprobe_guard"));
        let inline = format!("#[inline]\n{src}");
        let (_, rw) = go_lines(&inline, &Exclusions::default(), &LineSel::None);
        assert!(!rw.text.contains("twice!") && rw.text.contains("self::f(rx)"));
        let src = format!("#[inline]\n{}", src.replace("(rx: &R)", "(rx: &R, _: u8)"));
        let (_, rw) = go_lines(&src, &Exclusions::default(), &LineSel::None);
        assert!(
            rw.text.contains("twice!") && !rw.text.contains("refresh"),
            "{}",
            rw.text
        );
        assert!(syn::parse_file(&rw.text).is_ok());
        // A data loop (no call, no method, no macro) does not keep a body single.
        let src = "fn f(mut n: u64) -> u64 {\n    let mut d = 0;\n    while n > 9 {\n        n /= 10;\n        d += 1;\n    }\n    d\n}\n";
        let (fs, _) = go(src, &Exclusions::default());
        assert!(fs.contexts[0].twice && fs.loops.is_empty());
        // Nor do constructors and assertions: they cannot wait.
        let src = "fn f(v: &mut [Option<u8>]) -> Option<(usize, u8)> {\n    for (k, e) in v.iter_mut().enumerate() {\n        debug_assert!(k < 99);\n        if let Some(x) = e {\n            return Some((k, *x));\n        }\n    }\n    None\n}\n";
        let (fs, rw) = go(src, &Exclusions::default());
        assert!(
            fs.loops.is_empty() && rw.text.contains("twice!"),
            "{}",
            rw.text
        );
        // A call in the loop may wait: its head re-reads the flag.
        let src = src.replace("debug_assert!(k < 99);", "work(k);");
        let (fs, _) = go(&src, &Exclusions::default());
        assert_eq!(fs.loops.len(), 1);
        // Integer arithmetic methods cannot wait either; a call by path is named, for the
        // driver to drop the re-read if the crate's function of that name is a leaf.
        let src = "fn f(mut v: u64) -> u64 {\n    loop {\n        let d = div10(v);\n        if d.wrapping_mul(10) == v {\n            break;\n        }\n        v = d.wrapping_sub(1);\n    }\n    v\n}\nfn div10(x: u64) -> u64 {\n    x / 10\n}\n";
        let (fs, _) = go(src, &Exclusions::default());
        assert_eq!(fs.loops.len(), 1);
        assert_eq!(fs.loops[0].calls, Some(vec!["div10".to_owned()]));
        assert!(!fs.contexts[0].leaf && fs.contexts[1].leaf);
        let (fs, _) = go(
            &src.replace("d.wrapping_sub(1)", "d.pop()"),
            &Exclusions::default(),
        );
        assert_eq!(fs.loops[0].calls, None);
        // Nor do std's memory functions and raw-pointer arithmetic (smallvec's `truncate`).
        let trunc = "unsafe fn f(p: *mut u8, len: &mut usize, to: usize) {\n    while to < *len {\n        *len -= 1;\n        ptr::drop_in_place(p.add(*len));\n    }\n}\n";
        let (fs, _) = go(trunc, &Exclusions::default());
        assert!(fs.loops.is_empty());
        let (fs, _) = go(
            &trunc.replace("ptr::drop_in_place", "io::drop_in_place"),
            &Exclusions::default(),
        );
        assert_eq!(fs.loops.len(), 1);
        // Another crate's function is not one of this crate's, whatever its name.
        let (fs, _) = go(
            &src.replace("div10(v)", "thread::div10(v)"),
            &Exclusions::default(),
        );
        assert_eq!(fs.loops[0].calls, None);
        let (fs, _) = go(
            &src.replace("div10(v)", "Self::div10(v)"),
            &Exclusions::default(),
        );
        assert_eq!(fs.loops[0].calls, Some(vec!["div10".to_owned()]));
        // Over a range with an end, a loop ends whatever it calls: no re-read, two bodies.
        for range in ["1..len", "(0..=len).rev()", "(0..len).step_by(2)"] {
            let src = format!("fn f(len: usize) -> usize {{\n    let mut w = 0;\n    for r in {range} {{\n        w += step(r);\n    }}\n    w\n}}\n");
            let (fs, rw) = go(&src, &Exclusions::default());
            assert!(
                fs.loops.is_empty() && rw.text.contains("twice!"),
                "{}",
                rw.text
            );
        }
        // Without an end, or over anything else, it may not end.
        for iter in ["1..", "rx.iter()", "(1..).step_by(2)"] {
            let src = format!("fn f(len: usize) -> usize {{\n    let mut w = 0;\n    for r in {iter} {{\n        w += step(r);\n    }}\n    w\n}}\n");
            let (fs, _) = go(&src, &Exclusions::default());
            assert_eq!(fs.loops.len(), 1, "{iter}");
        }
    }

    #[test]
    fn a_loop_that_waits_writes_each_iteration_twice_and_nested_loops_once_more() {
        let src = "fn f(rx: &R) -> u32 {\n    let mut a = 0;\n    'outer: while let Some(x) = rx.recv() {\n        a += x;\n        for y in rx.batch() {\n            if y == 0 {\n                continue 'outer;\n            }\n            a += work(y);\n        }\n        let c = |z: u32| z + 1;\n        a = c(a);\n    }\n    a\n}\n";
        let (fs, rw) = go(src, &Exclusions::default());
        assert_eq!(fs.loop_bodies.len(), 2);
        assert_eq!(rw.text.lines().count(), src.lines().count());
        assert!(syn::parse_file(&rw.text).is_ok(), "{}", rw.text);
        let line = |n: usize| rw.text.lines().nth(n).unwrap_or_default();
        // Each head re-reads the flag, then opens the two bodies: the outer loop with the
        // sites crate's macro, the inner one with the macro each outer copy defines.
        assert!(
            line(2).contains(
                "refresh::<0>(&mut __lprobe_fn);  ::lprobe_sites::twice_loop!{ $ __lprobe_fn; "
            ),
            "{}",
            rw.text
        );
        assert!(
            line(4).contains("refresh::<0>(&mut __lprobe_fn);  __lprobe_loop!{ $ __lprobe_fn; "),
            "{}",
            rw.text
        );
        // Line sites in loops: only the instrumented copy keeps them; outside loops they test
        // the local as before.
        for n in [3, 4, 5, 6, 8, 10, 11] {
            assert!(
                line(n)
                    .trim_start()
                    .starts_with("__lprobe_at!{ #[allow(unreachable_code)] if __lprobe_fn && "),
                "line {n}: {}",
                rw.text
            );
        }
        assert!(line(13).starts_with("     #[allow(unreachable_code)] if __lprobe_fn && "));
        // Both bodies close before their braces; the repair loop knows the text as the
        // function's (four pieces: two opening, two closing).
        assert!(
            line(9).ends_with(" } }") && line(12).ends_with(" } }"),
            "{}",
            rw.text
        );
        assert_eq!(rw.twice.iter().filter(|(c, _)| *c == 0).count(), 4);
        // Where that does not compile: one body, a check per statement.
        let mut ex = Exclusions::default();
        ex.no_twice.insert(0);
        let (_, rw) = go(src, &ex);
        assert!(!rw.text.contains("twice_loop!") && !rw.text.contains("__lprobe_at!"));
        // A body declaring an item or invoking a macro that may declare one, or awaiting, is
        // written once (its loop still re-reads the flag); so is a body without line sites.
        for body in [
            "static N: u32 = 1;\n        a += N + x;",
            "log::info!(\"{x}\");\n        a += x;",
            "a += x;\n        tick().await;",
        ] {
            let src = format!("async fn f(rx: &R) -> u32 {{\n    let mut a = 0;\n    while let Some(x) = rx.recv() {{\n        {body}\n    }}\n    a\n}}\n");
            let (_, rw) = go(&src, &Exclusions::default());
            assert!(
                rw.text.contains("refresh") && !rw.text.contains("twice_loop!"),
                "{}",
                rw.text
            );
        }
        let (_, rw) = go_lines(src, &Exclusions::default(), &LineSel::None);
        assert!(!rw.text.contains("twice_loop!") && !rw.text.contains("refresh"));
        // One statement of its own: nothing to save, written once.
        let one = "fn f(rx: &R) -> u32 {\n    let mut a = 0;\n    while let Some(x) = rx.recv() {\n        a += x;\n    }\n    a\n}\n";
        let (_, rw) = go(one, &Exclusions::default());
        assert!(rw.text.contains("refresh") && !rw.text.contains("twice_loop!"));
        // A loop written once inside one written twice keeps its checks in both copies of the
        // outer body (it may run for long in the dormant one), and its own re-read.
        let src = "fn f(rx: &R) -> u32 {\n    let mut a = 0;\n    while let Some(x) = rx.recv() {\n        a += x;\n        for y in rx.batch() {\n            a += work(y);\n        }\n        a += 1;\n    }\n    a\n}\n";
        let (_, rw) = go(src, &Exclusions::default());
        assert!(syn::parse_file(&rw.text).is_ok(), "{}", rw.text);
        let lines: Vec<&str> = rw.text.lines().collect();
        assert!(lines[2].contains("::lprobe_sites::twice_loop!{ $ __lprobe_fn; "));
        assert!(lines[3].trim_start().starts_with("__lprobe_at!{"));
        assert!(lines[4].trim_start().starts_with("__lprobe_at!{"));
        assert!(!lines[4].contains("__lprobe_loop!") && lines[4].contains("refresh"));
        assert!(
            lines[5]
                .trim_start()
                .starts_with("#[allow(unreachable_code)] if __lprobe_fn && "),
            "{}",
            rw.text
        );
        assert!(lines[7].trim_start().starts_with("__lprobe_at!{"));
        // Nor is a body that may declare an item copied with the outer body around it.
        let (_, rw) = go(
            &src.replace("a += work(y);", "log::info!(\"{y}\");\n            a += y;"),
            &Exclusions::default(),
        );
        assert!(!rw.text.contains("twice_loop!"), "{}", rw.text);
    }

    #[test]
    fn in_two_bodies_closure_sites_keep_their_own_check_and_async_bodies_stay_single() {
        let src = "fn f(v: &[u8]) -> usize {\n    let n = v.len();\n    let g = |x: usize| {\n        let y = x + 1;\n        y\n    };\n    g(n)\n}\n";
        let (fs, rw) = go(src, &Exclusions::default());
        assert!(fs.contexts[0].twice, "{}", rw.text);
        // The closure's line site (line 4) checks its own flag in both copies: a closure can
        // outlive the call that made it, so it must see arming as it runs.
        let closure_site = fs
            .sites
            .iter()
            .position(|s| s.in_closure)
            .expect("a site in the closure");
        let id = 10 + closure_site;
        assert!(
            rw.text
                .contains(&format!("if ::lprobe_sites::on::<{id}>() ")),
            "{}",
            rw.text
        );
        assert!(
            rw.text
                .contains("__lprobe_at!{ #[allow(unreachable_code)] if ::lprobe_sites::on::<12>()"),
            "{}",
            rw.text
        );
        let src = "async fn f(v: u8) -> u8 {\n    let n = v + 1;\n    n\n}\n";
        let (fs, rw) = go(src, &Exclusions::default());
        assert!(
            !fs.contexts[0].twice && !rw.text.contains("twice!"),
            "{}",
            rw.text
        );
    }

    #[test]
    fn entry_captures_are_arguments_up_to_a_count_then_an_array() {
        let few = "fn f(a: u8, b: &str) -> usize {\n    let n = b.len() + usize::from(a);\n    for _ in 0..n {}\n    n\n}\n";
        let (_, rw) = go(few, &Exclusions::default());
        assert!(
            rw.text.contains("hit_entry_t(10, (a, b,))")
                || rw
                    .text
                    .contains("hit_first_t(10, 11, __lprobe_guard.on(), (a, b,))"),
            "{}",
            rw.text
        );
        // Past `MAX_BY_VALUE` parameters, an array.
        let params: Vec<String> = (0..=MAX_BY_VALUE).map(|k| format!("p{k}: u8")).collect();
        let sum: Vec<String> = (0..=MAX_BY_VALUE).map(|k| format!("p{k}")).collect();
        let many = format!(
            "fn f({}) -> u8 {{\n    for _ in 0..p0 {{}}\n    {}\n}}\n",
            params.join(", "),
            sum.join(" + ")
        );
        let (_, rw) = go(&many, &Exclusions::default());
        assert!(
            rw.text
                .contains("(10, 11, __lprobe_guard.on(), &[&(p0,).0, "),
            "{}",
            rw.text
        );
        assert!(syn::parse_file(&rw.text).is_ok());
        // Up to it, one tuple.
        let params = &params[..MAX_BY_VALUE];
        let many = format!(
            "fn f({}) -> u8 {{\n    for _ in 0..p0 {{}}\n    p0\n}}\n",
            params.join(", ")
        );
        let (_, rw) = go(&many, &Exclusions::default());
        let tuple = format!(
            "(10, 11, __lprobe_guard.on(), ({},))",
            sum[..MAX_BY_VALUE].join(", ")
        );
        assert!(rw.text.contains(&tuple), "{}", rw.text);
        assert!(syn::parse_file(&rw.text).is_ok());
    }

    #[test]
    fn the_one_call_holds_no_pointer_whose_target_is_captured_as_a_copy() {
        let ex = Exclusions {
            no_twice: [0, 1, 2].into(),
            ..Default::default()
        };
        // `s` is captured as the reference it is: its address reaches the cold call either way.
        let src = "#[inline]\nfn f(a: u8, s: &str) -> usize {\n    s.len() + a as usize\n}\n";
        let (_, rw) = go(src, &ex);
        assert!(rw.placed[0].one_call, "{}", rw.text);
        // A `&mut u64` is captured as its value (`*state`): the two calls pass its address
        // only when timed, so it stays out of the dormant path's calls.
        let src = "#[inline]\nfn rng(state: &mut u64) -> u64 {\n    *state ^= *state << 13;\n    *state\n}\n";
        let (_, rw) = go(src, &ex);
        assert!(!rw.placed[0].one_call, "{}", rw.text);
        assert!(rw.text.contains("enter_first_t(10, 11, (*state,)); if __lprobe_t != 0 { return ::lprobe_sites::again(10, __lprobe_t, move || self::rng(state)); }"), "{}", rw.text);
        // A receiver captured as its type name is held.
        let src =
            "struct S;\nimpl S {\n    #[inline]\n    fn get(&self) -> u8 {\n        0\n    }\n}\n";
        let (fs, _) = go(src, &ex);
        let b = binding_of(&fs, 0, "self").expect("self captured");
        let opaque = Exclusions {
            opaque: [b].into(),
            ..ex.clone()
        };
        let (_, rw) = go(src, &opaque);
        assert!(rw.placed[0].one_call, "{}", rw.text);
        assert!(rw.text.contains("Opaque::of(&self)"), "{}", rw.text);
    }

    #[test]
    fn a_function_that_cannot_call_itself_keeps_its_guard() {
        let src = "async fn f(a: u8) -> u8 {\n    let b = a;\n    work(b).await;\n    b\n}\n";
        let (fs, rw) = go(src, &Exclusions::default());
        assert!(fs.sites[0].recall.is_none());
        assert!(rw.text.contains("__lprobe_guard"), "{}", rw.text);
        assert!(rw.placed[0].timed);
        assert!(syn::parse_file(&rw.text).is_ok());
    }

    #[test]
    fn methods_call_themselves_through_self_and_their_trait() {
        let src = "struct S;\nimpl S {\n    fn get(&self, n: u32) -> u32 { n }\n}\nimpl Iterator for S {\n    type Item = u8;\n    fn next(&mut self) -> Option<u8> { None }\n}\ntrait T<A> {\n    fn d(&self, a: A) -> u8 { 0 }\n}\n";
        let ex = Exclusions {
            no_twice: [0, 1, 2].into(),
            ..Default::default()
        };
        let (_, rw) = go(src, &ex);
        for call in [
            "{ Some(Self::get(self, n)) }",
            // A `&mut self` is reborrowed for the one call, and its capture reads that.
            "let __lprobe_self = &mut *self; if let Some(__lprobe_r) = ::lprobe_sites::recall(",
            "{ Some(<Self as Iterator>::next(__lprobe_self)) }",
            // An argument of a type parameter may not be `Copy`: two calls, `self` moved.
            "move || <Self as T<A>>::d(self, a));",
        ] {
            assert!(rw.text.contains(call), "{call} in {}", rw.text);
        }
        assert!(syn::parse_file(&rw.text).is_ok());
    }

    #[test]
    fn functions_rustc_would_copy_into_their_callers_keep_that_with_a_site() {
        // A `match` of field reads (more than a tiny function's 64 tokens, so it has a site)
        // calls nothing: rustc copies it into every unit that calls it; a site's cold call
        // would end that, so it is marked `#[inline]`.
        let arms: String = (0..8)
            .map(|i| format!("            Shape::V{i}(ref x) => &x.span,\n"))
            .collect();
        let span = format!("    pub fn span(&self) -> &Span {{\n        match *self {{\n{arms}        }}\n    }}\n");
        let src = format!(
            "impl Shape {{\n{span}\
             \x20   #[inline(never)]\n    pub fn kept(&self) -> &Span {{\n        match *self {{\n{arms}        }}\n    }}\n\
             \x20   #[cfg_attr(feature = \"fast\", inline)]\n    pub fn cfg(&self) -> &Span {{\n        match *self {{\n{arms}        }}\n    }}\n\
             \x20   #[unsafe(no_mangle)]\n    pub fn exported(&self) -> &Span {{\n        match *self {{\n{arms}        }}\n    }}\n\
             \x20   #[cfg_attr(feature = \"x\", traced)]\n    pub fn wrapped(&self) -> &Span {{\n        match *self {{\n{arms}        }}\n    }}\n\
             \x20   pub fn calls(&self) -> &Span {{\n        log(self);\n        match *self {{\n{arms}        }}\n    }}\n\
             \x20   pub fn loops(&self, n: usize) -> usize {{\n        let mut s = 0;\n        for i in 0..n {{\n            s += i;\n        }}\n        s\n    }}\n\
             }}\n"
        );
        let (fs, rw) = go_lines(&src, &Exclusions::default(), &LineSel::None);
        let entries = fs
            .sites
            .iter()
            .filter(|s| s.kind == SiteKind::Entry)
            .count();
        assert_eq!(entries, 7, "every function has an entry site");
        // A `cfg_attr` applying a macro is off in a default build, where rustc copies the
        // function as written: so is `wrapped`, not `cfg` (`inline` in its `cfg_attr`).
        assert_eq!(rw.text.matches("#[inline]").count(), 2, "{}", rw.text);
        for marked in [
            "#[inline] pub fn span(&self)",
            "#[inline] #[cfg_attr(feature = \"x\", traced)]",
        ] {
            assert!(rw.text.contains(marked), "{}", rw.text);
        }
        // Its site dropped (repair), the function is left as written.
        let mut ex = Exclusions::default();
        let span_site = fs
            .sites
            .iter()
            .position(|s| s.func.ends_with("::span"))
            .expect("span's site");
        ex.drop_site.insert(span_site);
        let rw = go_again(&src, &fs, &ex, CaptureList::Plain);
        assert!(!rw.text.contains("#[inline] pub fn span"), "{}", rw.text);
        assert!(syn::parse_file(&rw.text).is_ok());
    }
}
