//! Generates each instrumented package's sites crate: its armed flags, its site table, and the
//! constructor that registers the table with the runtime before `main`.
//!
//! Keeping the table in its own crate (not in the user's) keeps generated `unsafe`-flagged
//! attributes (`link_section`) out of code under `#![forbid(unsafe_code)]`, and lets a package
//! be rebuilt without rebuilding the runtime.

use std::fmt::Write as _;

use crate::build::bridge::{self, BridgeDep};
pub use crate::build::rewrite::Host;

/// One row of the table.
#[derive(Clone, Debug)]
pub struct SiteRow {
    pub path: String,
    pub line: u32,
    pub col: u32,
    pub func: String,
    /// `"entry"`, `"line"`, or `"none"` for a site the repair loop removed.
    pub kind: &'static str,
    pub names: Vec<String>,
    /// The site's function (its index in the function flags).
    pub fn_slot: u32,
    /// An entry site with a guard (`--duration` can time the call).
    pub timed: bool,
    /// An entry site whose calls can be frames of `--frames` (see `probe_runtime::Site::frame`).
    pub frame: bool,
    /// The site's line in the original file (see [`line_text`]).
    pub text: String,
}

/// A line of the original file as the site table keeps it (`probe_runtime::Site::text`):
/// trimmed, cut at `MAX_LINE_TEXT` bytes (on a character boundary) with `…`. Shown by
/// `lprobe list`/`arm` and `lprobe ui` when the file on disk changed since the build.
pub fn line_text(line: &str) -> String {
    let text = line.trim();
    let max = probe_runtime::MAX_LINE_TEXT;
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The table's sites and its functions without sites, packed (`probe_runtime::packed`), and
/// the one string their strings are ranges of (each distinct path, function, name, line text
/// and reason written once).
fn table_rows(rows: &[SiteRow], skipped: &[SkippedRow]) -> String {
    use probe_runtime::packed::{pack, Row};
    use probe_runtime::{SiteKind, Span};
    let mut strs = String::new();
    let mut seen: std::collections::HashMap<String, Span> = std::collections::HashMap::new();
    let mut span = |text: &str| -> Span {
        *seen.entry(text.to_owned()).or_insert_with(|| {
            let at = strs.len();
            strs.push_str(text);
            Span(at as u32, text.len() as u32)
        })
    };
    // Each distinct list of names once: its names' spans are consecutive in `names`.
    let mut names: Vec<Span> = Vec::new();
    let mut lists: std::collections::HashMap<&[String], Span> = std::collections::HashMap::new();
    let mut packed = Vec::with_capacity(rows.len());
    for r in rows {
        let list = *lists.entry(&r.names).or_insert_with(|| {
            let at = names.len();
            names.extend(r.names.iter().map(|n| span(n)));
            Span(at as u32, r.names.len() as u32)
        });
        packed.push(Row {
            path: span(&r.path),
            line: r.line,
            col: r.col,
            func: span(&r.func),
            kind: match r.kind {
                "entry" => SiteKind::Entry,
                "line" => SiteKind::Line,
                _ => SiteKind::None,
            },
            names: list,
            text: span(&r.text),
            fn_slot: r.fn_slot,
            timed: r.timed,
            frame: r.frame,
        });
    }
    let skipped: Vec<probe_runtime::packed::SkippedRow> = skipped
        .iter()
        .map(|k| probe_runtime::packed::SkippedRow {
            path: span(&k.path),
            first_line: k.first_line,
            last_line: k.last_line,
            func: span(&k.func),
            why: span(&k.why),
        })
        .collect();
    let bytes = pack(&names, &packed);
    let skipped = probe_runtime::packed::pack_skipped(&skipped);
    // The string compressed: paths, function paths and line texts repeat each other's
    // prefixes, and it is in every binary of the package (regex-syntax at function entries:
    // 96 KB in 17 KB).
    let block = lz4_flex::block::compress(strs.as_bytes());
    format!(
        "static TEXT_LZ4: [u8; {}] = *{};\nstatic TEXT: ::probe_runtime::packed::Text = ::probe_runtime::packed::Text::lz4(&TEXT_LZ4, {});\nstatic SITES: [u8; {}] = *{};\nstatic SKIPPED: [u8; {}] = *{};\n\n",
        block.len(),
        byte_string(&block),
        strs.len(),
        bytes.len(),
        byte_string(&bytes),
        skipped.len(),
        byte_string(&skipped)
    )
}

/// `bytes` as a byte-string literal (`b"…"`): printable ASCII as itself, the rest escaped.
fn byte_string(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2 + 3);
    s.push_str("b\"");
    for &b in bytes {
        match b {
            b'"' | b'\\' => {
                s.push('\\');
                s.push(b as char);
            }
            0x20..=0x7e => s.push(b as char),
            _ => {
                let _ = write!(s, "\\x{b:02x}");
            }
        }
    }
    s.push('"');
    s
}

/// A function that got no sites, and why (see `probe_runtime::Skipped`).
#[derive(Clone, Debug)]
pub struct SkippedRow {
    pub path: String,
    pub first_line: u32,
    pub last_line: u32,
    pub func: String,
    pub why: String,
}

/// The sites crate's package name for `package`.
pub fn package_name(package: &str) -> String {
    format!("lprobe-sites-{package}")
}

/// The crate's `Cargo.toml`: the runtime (its hot-path crate, in `hot_dir`, which re-exports
/// it), and the `tracing`/`log` its bridges feed.
pub fn manifest(package: &str, hot_dir: &str, bridges: &[BridgeDep]) -> String {
    format!(
        "[package]\nname = \"{}\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n[lib]\npath = \"lib.rs\"\n\n[dependencies]\nprobe_runtime = {{ package = \"{}\", path = {:?} }}\n{}\n[workspace]\n",
        package_name(package),
        crate::build::runtime_src::HOT_PACKAGE,
        hot_dir,
        bridge::manifest_lines(bridges)
    )
}

/// The cold calls and the constructor that registers the table: the same in every package.
/// Paths are written so that the text compiles both as the sites crate's root and as a module
/// of a crate of the package in any edition (`host_module`): the runtime as `::probe_runtime`
/// (a dependency of that name either way; an edition 2015 root gets an `extern crate`), std
/// through it (a `no_std` crate has no `::std`), the crate's own items through `self`.
const COLD_CALLS: &str = r#"/// An armed site was passed: hand its captures to the runtime, through the hot path's cold,
/// out-of-line entry point (`extern "C"`: it never unwinds, as the runtime catches every
/// panic, and saying so lets the caller keep no unwinding path for it, which keeps small
/// instrumented functions inlinable). The entry points take the table, so they are compiled
/// once, in the hot-path crate, not in every package: a crate that holds its table adds only
/// these one-call wrappers to its own code, which keeps the crate's partition into codegen
/// units (and so its inlining) as it was.
#[inline(always)]
pub fn hit(i: u32, v: &[Val<'_>]) {
    ::probe_runtime::cold_hit(&T, i, v)
}

/// One capture checked on its own (`rewrite::CaptureList::Checked`): rustc reports an unmet
/// bound once per statement and type in a list of plain captures, and once per call here,
/// so a first build learns every binding's form in one round. The same code once inlined.
#[inline(always)]
pub fn cap<'a, V: ::probe_runtime::Cap + 'a>(v: &'a V) -> Val<'a> {
    v
}

/// [`cap`] for a site's tuple of captures (`hit_t(i, (cap_t(a), cap_t(&b)))`): rustc reports
/// an unmet bound once per tuple and predicate, so of two bindings of one type that is not a
/// small copy (`let (read, write) = pipe()?`), or two references whose targets lack `Debug`
/// for one reason (`&Option<T>`, `T: Debug`), only the first was named, and the second cost
/// the repair loop a compile (`just` at every line: one round in three). The same value, by
/// value: a copy stays a copy, and a type that is not one fails the bound before anything is
/// moved.
#[inline(always)]
pub fn cap_t<V: ::probe_runtime::Cap>(v: V) -> V {
    v
}

/// [`cap`] for a capture of the instrumented copy of a body written twice.
#[inline(always)]
pub fn cap_ref<'a, V: ::probe_runtime::CapRef + 'a>(v: &'a V) -> RefVal<'a> {
    v
}

/// `hit` for a line site of the instrumented copy of a body written twice, whose captures are
/// plain references (`probe_runtime::CapRef`).
#[inline(always)]
pub fn hit_ref(i: u32, v: &[RefVal<'_>]) {
    ::probe_runtime::cold_hit_ref(&T, i, v)
}

/// An untimed entry site of a function with an armed site: hands its captures to the runtime
/// if the entry itself is armed. Its own flag is read there, out of line: the caller's check
/// is one load and branch, which keeps small functions small enough to inline.
#[inline(always)]
pub fn hit_if(i: u32, v: &[Val<'_>]) {
    ::probe_runtime::cold_hit_if(&T, i, v)
}

/// An armed entry site was passed.
#[inline(always)]
pub fn hit_entry(i: u32, v: &[Val<'_>]) -> u64 {
    ::probe_runtime::cold_hit_entry(&T, i, v)
}

/// An armed function whose entry site and first statement's site are checked together (the
/// rewrite merges them when they capture the same names): the entry's probes, then the line's.
#[inline(always)]
pub fn hit_first(e: u32, l: u32, entry_on: bool, v: &[Val<'_>]) -> u64 {
    ::probe_runtime::cold_hit_first(&T, e, l, entry_on, v)
}

/// An armed function without an entry guard (`#[inline]`) whose entry site and first
/// statement's site are checked together: the entry's probes, then the line's.
#[inline(always)]
pub fn hit_pair(e: u32, l: u32, v: &[Val<'_>]) {
    ::probe_runtime::cold_hit_pair(&T, e, l, v)
}

/// The entry site of a function with an armed site (the caller checked the function's flag):
/// runs the entry's probes if it is armed; non-zero (the start time) when a `--duration` probe
/// times this call, and the caller then calls the function again through `again` (see
/// `probe_runtime::enter`).
#[inline(always)]
pub fn enter(i: u32, v: &[Val<'_>]) -> u64 {
    ::probe_runtime::cold_enter(&T, i, v)
}

/// `enter` for an entry checked together with its first statement's site `l`.
#[inline(always)]
pub fn enter_first(e: u32, l: u32, v: &[Val<'_>]) -> u64 {
    ::probe_runtime::cold_enter_first(&T, e, l, v)
}

/// The timed call: calls `f` (the function calling itself again, as a closure) and records
/// its duration (from `enter`'s start time), also when it unwinds. Not inlined: the
/// instrumented function then does not call itself directly, which would make it recursive
/// to the optimizer, which never inlines a recursive function.
#[cold]
#[inline(never)]
pub fn again<R>(i: u32, start: u64, f: impl FnOnce() -> R) -> R {
    let _t = ::probe_runtime::Timer::new(&T, i, start);
    f()
}

/// What an entry site's one cold call (`recall`) learned from `enter`: the start time of a
/// call a `--duration` probe times (0: none), and the entry's id. Its drop ends the timing,
/// also when the timed call unwinds.
pub struct Phase {
    i: u32,
    start: u64,
}

impl Phase {
    /// Takes entry `i`'s `enter` result; whether the call is timed (and so made again).
    #[inline(always)]
    pub fn on(&mut self, i: u32, start: u64) -> bool {
        self.i = i;
        self.start = start;
        start != 0
    }
}

impl Drop for Phase {
    #[inline(always)]
    fn drop(&mut self) {
        if self.start != 0 {
            let _t = ::probe_runtime::Timer::new(&T, self.i, self.start);
        }
    }
}

/// An entry site as one cold call (cargo-lprobe's `recall::OneCall`): `f` runs the entry's
/// probes and, when timed, the function again; `Some` of that call's result, which the
/// function returns. On x86-64 through the `win64` convention, which also preserves `rdi` and
/// `rsi`: a small function keeps its first two arguments where they came in across the call,
/// with no register saved for it on the dormant path. Not inlined: the function must not
/// call itself directly (see `again`).
#[cfg(target_arch = "x86_64")]
#[cold]
#[inline(never)]
#[allow(improper_ctypes_definitions)]
pub extern "win64-unwind" fn recall<R, C: FnOnce(&mut Phase) -> Option<R>>(f: C) -> Option<R> {
    let mut p = Phase { i: 0, start: 0 };
    f(&mut p)
}

/// [`recall`] on other targets: an ordinary call.
#[cfg(not(target_arch = "x86_64"))]
#[cold]
#[inline(never)]
pub fn recall<R, C: FnOnce(&mut Phase) -> Option<R>>(f: C) -> Option<R> {
    let mut p = Phase { i: 0, start: 0 };
    f(&mut p)
}

/// [`cold`]'s closures, the instrumented copies of bodies written twice: its call is a method
/// of theirs. rustc compiles a generic function's instances in the codegen unit of the module
/// that defines the function, and a method's with the type it is called on: here the copy,
/// so it is compiled in its function's unit, beside the functions it calls. As instances of a
/// function of this module, every copy of a crate gathered in one unit of their own, which
/// moved the rest of the crate's partition, and each function a copy called was then called
/// from another unit (BENCHMARKS.md, thirtieth session: slab at every line 1.240 → 1.192,
/// regex-syntax's example 170 KB smaller at every line). `again` and `recall` stay functions:
/// the same move for them cost entry sites (slab 1.017 → 1.107).
pub trait ColdCall<R>: FnOnce() -> R + Sized {
    /// See [`cold`].
    #[cold]
    #[inline(never)]
    fn cold_call(self) -> R {
        self()
    }
}

impl<R, F: FnOnce() -> R> ColdCall<R> for F {}

/// Runs the instrumented copy of a body written twice (see `twice!`). Out of line and cold
/// ([`ColdCall::cold_call`]): the dormant function keeps one check and this call, so it stays
/// as small as it was.
#[inline(always)]
pub fn cold<R>(f: impl FnOnce() -> R) -> R {
    f.cold_call()
}

/// Adds a crate's own copy of the flags (see `crate_flags_module` in cargo-lprobe).
pub fn attach(f: &'static [AtomicU8], fnf: &'static [AtomicU8]) {
    ::probe_runtime::attach(&T, f, fnf)
}

/// A crate flags module's site flags, and a reference to its constructor that keeps it in the
/// build (on ELF targets, in place of `#[used]`; see `sites_crate::crate_flags_module`).
/// `repr(C)`: the flags are at the static's address, where the checks' `asm!` reads them.
#[repr(C)]
pub struct Flags<const N: usize> {
    pub f: [AtomicU8; N],
    pub keep: &'static extern "C" fn(),
}

impl<const N: usize> ::probe_runtime::__std::ops::Deref for Flags<N> {
    type Target = [AtomicU8; N];
    fn deref(&self) -> &[AtomicU8; N] {
        &self.f
    }
}

#[used]
#[cfg_attr(any(target_os = "linux", target_os = "android", target_os = "freebsd"), unsafe(link_section = ".init_array"))]
#[cfg_attr(any(target_os = "macos", target_os = "ios"), unsafe(link_section = "__DATA,__mod_init_func"))]
static INIT: extern "C" fn() = init;

extern "C" fn init() {
    bridges();
    ::probe_runtime::register(&T);
}
"#;

/// A function body written twice: when `$on` (the function's armed flag), the function
/// returns what its instrumented copy returns, run by `cold` in a closure that takes over
/// the arguments (`$entry`: the entry probe and its timing guard); otherwise it runs the body
/// as written. Line sites in the body are `__lprobe_at!{ … }`, a macro each copy defines for
/// itself: the instrumented copy keeps them, the dormant one drops them before type checking
/// (a site that folded away there still cost its type and borrow checking: ryu at every
/// line, a sixth of the crate's compile time). `$d` is a `$` passed in, so that the macros
/// can be written here. The closure's return type is the function's, so `return` and `?`
/// convert the same way in both. The tokens keep their spans, so both copies keep the
/// original lines (panics, `line!()`, stacks).
///
/// `NAME` and `COLD` are filled in by [`twice_macro`]. Exported, because an edition 2015
/// crate cannot import a local `macro_rules!` by path (its `use` paths start at the crate
/// root, where such a macro is not), while `crate::name!` reaches an exported one there too.
const TWICE: &str = "#[doc(hidden)] #[macro_export] macro_rules! NAME { ($d:tt $on:expr; [$($entry:tt)*] $ret:ty; $($body:tt)*) => { if $on { return COLD(move || -> $ret { $($entry)* #[allow(unused_macros)] macro_rules! __lprobe_at { ($d($d site:tt)*) => { $d($d site)* } } $($body)* }); } else { #[allow(unused_macros)] macro_rules! __lprobe_at { ($d($d site:tt)*) => {} } $($body)* } }; }";

/// [`TWICE`] named `name`, running the instrumented copy through `cold` (a path).
fn twice_macro(name: &str, cold: &str) -> String {
    TWICE.replacen("NAME", name, 1).replacen("COLD", cold, 1)
}

/// The name of a crate's own `twice!` (`crate::__lprobe_twice!`), defined by its flags module.
pub const CRATE_TWICE: &str = "__lprobe_twice";

/// A loop body written twice (`rewrite`'s loop bodies): `$on` (the function's armed flag,
/// re-read at the loop head or at function entry) picks, for this iteration, the instrumented
/// copy, which keeps its `__lprobe_at!{ … }` line sites, or the dormant one, which drops them.
/// Same function, same loop: `break`, `continue`, `return`, `?` and labels mean what they did,
/// and a loop that never returns sees a probe armed while it runs at its next iteration. A
/// loop nested in one written twice says `__lprobe_loop!`, which each copy of the outer body
/// defines for itself: the instrumented copy runs the inner body once, instrumented (its sites
/// test the flag, as in a body written once); the dormant copy writes it twice again. So a
/// loop at depth `d` is written `d + 1` times, not `2^d`. `$d` is a `$` passed in; the tokens
/// keep their spans, so both copies keep the original lines.
const TWICE_LOOP: &str = "#[doc(hidden)] #[macro_export] macro_rules! NAME { ($d:tt $on:expr; $($body:tt)*) => { if $on { #[allow(unused_macros)] macro_rules! __lprobe_at { ($d($d site:tt)*) => { $d($d site)* } } #[allow(unused_macros)] macro_rules! __lprobe_loop { ($d e:tt $d o:expr; $d($d b:tt)*) => { $d($d b)* } } $($body)* } else { #[allow(unused_macros)] macro_rules! __lprobe_at { ($d($d site:tt)*) => {} } #[allow(unused_macros)] macro_rules! __lprobe_loop { ($d e:tt $d o:expr; $d($d b:tt)*) => { $crate::NAME!{ $d e $d o; $d($d b)* } } } $($body)* } }; }";

/// [`TWICE_LOOP`] named `name`.
fn twice_loop_macro(name: &str) -> String {
    TWICE_LOOP.replace("NAME", name)
}

/// The name of a crate's own `twice_loop!` (`crate::__lprobe_twice_loop!`).
pub const CRATE_TWICE_LOOP: &str = "__lprobe_twice_loop";

/// What a package's table and cold calls are made of.
pub struct Contents<'a> {
    pub package: &'a str,
    /// The package's directory relative to the workspace root.
    pub dir: &'a str,
    pub rows: &'a [SiteRow],
    /// The package's count of functions (function flags).
    pub fns: usize,
    /// (path, content hash) of each of its files.
    pub files: &'a [(String, String)],
    pub skipped: &'a [SkippedRow],
    pub access: FlagAccess,
    pub calls: &'a ByValueCalls,
}

impl Contents<'_> {
    /// The flags, the table, the cold calls and the constructor: the sites crate's items, and
    /// a host module's (see `COLD_CALLS` for how paths are written).
    fn items(&self) -> String {
        let (n, fns) = (self.rows.len(), self.fns);
        let mut s = String::new();
        s.push_str(
            "pub use ::probe_runtime::{ByRef, Guard, Opaque, RefVal, Val};
",
        );
        s.push_str(
            "use ::probe_runtime::__std::sync::atomic::AtomicU64;
// Also for the crate flags modules (`::core` is not in a 2015-edition crate's paths).
pub use ::probe_runtime::__std::sync::atomic::{AtomicU8, Ordering::Relaxed};
pub use ::probe_runtime::__std::arch::asm;

",
        );
        let _ = writeln!(
            s,
            "pub static F: [AtomicU8; {n}] = [const {{ AtomicU8::new(0) }}; {n}];\n"
        );
        let _ = writeln!(
            s,
            "pub static FNF: [AtomicU8; {fns}] = [const {{ AtomicU8::new(0) }}; {fns}];\n"
        );
        let _ = writeln!(
            s,
            "pub static C: [AtomicU64; {n}] = [const {{ AtomicU64::new(0) }}; {n}];\n"
        );
        s.push_str(&table_rows(self.rows, self.skipped));
        let _ = writeln!(s, "static FILES: [(&str, &str); {}] = [", self.files.len());
        for (p, h) in self.files {
            let _ = writeln!(s, "    ({p:?}, {h:?}),");
        }
        s.push_str("];\n\n");
        let _ = writeln!(
            s,
            "pub static T: ::probe_runtime::Table = ::probe_runtime::Table {{ package: {:?}, dir: {:?}, flags: &F, fn_flags: &FNF, counts: &C, sites: ::probe_runtime::Sites::packed(&TEXT, &SITES), files: &FILES, skipped: ::probe_runtime::Skips::packed(&TEXT, &SKIPPED) }};\n",
            self.package, self.dir
        );
        s.push_str(&by_value_calls(self.access, self.calls));
        s.push_str("/// The dormant checks (the same as in each crate flags module).\n");
        s.push_str(&checks("pub", "self", self.access));
        s.push_str("\n\n");
        s.push_str(COLD_CALLS);
        s
    }
}

/// The sites crate's `lib.rs`: the package's items, its bridges and `twice!`.
pub fn source(c: &Contents<'_>, bridges: &[BridgeDep]) -> String {
    let mut s = String::new();
    s.push_str("//! Generated by cargo-lprobe: the probe sites of one package. Do not edit.\n");
    s.push_str("#![allow(clippy::all, missing_docs, unused)]\n\n");
    s.push_str(&c.items());
    s.push_str(&bridge::source(bridges));
    s.push_str(&twice_macro("twice", "$crate::cold"));
    s.push('\n');
    s.push_str(&twice_loop_macro("twice_loop"));
    s.push('\n');
    s
}

/// The items of the module `__lprobe_sites` that a package's host crate (`rewrite::Host::Own`:
/// its library, or each crate of a package without one) holds in place of the sites crate:
/// the package's items, public so that the package's other crates reach them through the
/// library (`crate_flags_module`). Written to a file of their own in the sites directory
/// (`target/lprobe/sites/P/host.rs`) that the root includes ([`host_module`]): a stack's
/// frames there are then lprobe's by their file, as the sites crate's were, and a compiler
/// error there points, through the `include!`, at the root's generated lines. A package with
/// output bridges keeps the sites crate (they need the `tracing`/`log` its build resolves to
/// as a dependency of their own).
pub fn host_items(c: &Contents<'_>) -> String {
    format!(
        "// Generated by cargo-lprobe: the probe sites of one package, included by a crate root. Do not edit.\n{}\n/// No bridges here.\nfn bridges() {{}}\n",
        c.items()
    )
}

/// The module a host crate's root gets after its flags module: [`host_items`], from `path`.
/// One line.
pub fn host_module(path: &str) -> String {
    format!(
        "#[doc(hidden)] #[allow({HOST_ALLOWS})] pub mod {HOST_MODULE} {{ include!({path:?}); }}\n"
    )
}

/// The module [`host_module`] writes.
pub const HOST_MODULE: &str = "__lprobe_sites";

/// The lints generated modules allow: whatever a crate denies, generated code must pass
/// (`forbid` is lowered to `deny` in the copy: `driver::lower_forbids`).
const HOST_ALLOWS: &str = "unsafe_code, missing_docs, missing_debug_implementations, missing_copy_implementations, unreachable_pub, unused_qualifications, unused_results, trivial_casts, trivial_numeric_casts, single_use_lifetimes, improper_ctypes_definitions, dead_code, unused, non_upper_case_globals, warnings, clippy::all";

/// A parameter and its type.
type Param = (&'static str, &'static str);

/// The cold calls by value (entry sites, and line sites outside an instrumented copy:
/// `hit`): (name, leading parameters, return type).
const CALLS: &[(&str, &[Param], &str)] = &[
    ("hit", &[("i", "u32")], ""),
    ("hit_if", &[("i", "u32")], ""),
    ("hit_pair", &[("e", "u32"), ("l", "u32")], ""),
    ("hit_entry", &[("i", "u32")], " -> u64"),
    (
        "hit_first",
        &[("e", "u32"), ("l", "u32"), ("entry_on", "bool")],
        " -> u64",
    ),
    ("enter", &[("i", "u32")], " -> u64"),
    ("enter_first", &[("e", "u32"), ("l", "u32")], " -> u64"),
];

/// The cold calls by value a package's rewritten code makes, and how they reach the runtime:
/// the sites crate defines only those (each is two or three generic functions that the crate
/// must parse and type-check before the package's crates can start; all of them doubled a
/// small package's sites crate).
#[derive(Debug, Default)]
pub struct ByValueCalls {
    /// The name of each call made, `"enter"` for `enter_t(…)`.
    pub used: std::collections::BTreeSet<&'static str>,
    /// Through `call_saving_upper` (see [`may_enable_avx512`]).
    pub upper: bool,
}

/// The suffix of a cold call by value: `hit_if_t(i, (a, &b,))`.
pub const BY_VALUE_SUFFIX: &str = "_t";

impl ByValueCalls {
    /// Adds the cold calls by value that rewritten `text` makes (`::lprobe_sites::enter_t(`,
    /// `crate::__lprobe::enter_t(`).
    pub fn scan(&mut self, text: &str) {
        for home in crate::build::rewrite::CALL_HOMES {
            self.scan_calls(text, &format!("{home}::"));
        }
    }

    fn scan_calls(&mut self, text: &str, prefix: &str) {
        for (at, _) in text.match_indices(prefix) {
            let rest = &text[at + prefix.len()..];
            let ident = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(rest, |end| &rest[..end]);
            let Some(name) = ident.strip_suffix(BY_VALUE_SUFFIX) else {
                continue;
            };
            if let Some((name, _, _)) = CALLS.iter().find(|(c, _, _)| *c == name) {
                self.used.insert(name);
            }
        }
    }
}

/// The sites' cold calls with their captures passed by value as one tuple (`hit_if_t(i, (a,
/// &b,))`, `enter_t(i, ())`; `probe_runtime::Caps`), one generic function per call a package
/// makes: only the sets of types it passes are compiled, in the package's crates.
///
/// With [`FlagAccess::Direct`] on its targets, each is an `#[inline(always)]` wrapper that
/// calls a cold function with the tuple's address through `saving`, an `asm!` call of the
/// runtime's `call_saving` trampoline, which preserves every general-purpose register: the
/// function around the site keeps its arguments in the registers they came in across the
/// call, so it saves no callee-saved register for it on every call (BENCHMARKS.md, eighth
/// session). Elsewhere each is the cold function itself, called directly, which puts the
/// captures in an array and calls the array form.
fn by_value_calls(access: FlagAccess, calls: &ByValueCalls) -> String {
    const COLD: &str = "#[cold] #[inline(never)] #[allow(improper_ctypes_definitions)]";
    let direct = access == FlagAccess::Direct;
    let mut s = String::from(
        "use ::probe_runtime::Caps;\n\n/// Cold calls with their captures as one tuple (see cargo-lprobe's `sites_crate::by_value_calls`).\n",
    );
    let (on, off) = if direct {
        // One `asm!` call per shape: (leading values, whether a result comes back).
        let mut shapes: Vec<(usize, bool)> = CALLS
            .iter()
            .filter(|(name, _, _)| calls.used.contains(name))
            .map(|(_, lead, ret)| (lead.len(), !ret.is_empty()))
            .collect();
        shapes.sort_unstable();
        shapes.dedup();
        for (lead, result) in shapes {
            s.push_str(&saving(lead, result, calls.upper));
        }
        (
            format!("#[cfg({DIRECT_CFG})] "),
            format!("#[cfg(not({DIRECT_CFG}))] "),
        )
    } else {
        (String::new(), String::new())
    };
    for (name, lead, ret) in CALLS {
        if !calls.used.contains(name) {
            continue;
        }
        let params = lead
            .iter()
            .map(|(p, t)| format!("{p}: {t}"))
            .collect::<Vec<_>>()
            .join(", ");
        let pass = lead.iter().map(|(p, _)| *p).collect::<Vec<_>>().join(", ");
        if direct {
            // The leading values travel as `u32`s: a `bool` as 0 or 1.
            let convert = |to: fn(&str) -> String| {
                lead.iter()
                    .map(|(p, t)| if *t == "bool" { to(p) } else { (*p).to_owned() })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let as_u32 = convert(|p| format!("u32::from({p})"));
            let from_u32 = convert(|p| format!("{p} != 0"));
            let ids = ["a", "b", "c"]
                .iter()
                .enumerate()
                .map(|(k, r)| match lead.get(k) {
                    Some((p, _)) => format!("{p}: u32"),
                    None => format!("_{r}: u32"),
                })
                .collect::<Vec<_>>()
                .join(", ");
            let body = if ret.is_empty() {
                format!("v.with(|a| {name}({from_u32}, a)); 0")
            } else {
                format!("v.with(|a| {name}({from_u32}, a))")
            };
            let shape = format!("{}{}", lead.len(), if ret.is_empty() { "" } else { "r" });
            let _ = writeln!(
                s,
                "{on}{COLD} extern \"C\" fn {name}_v<L: Caps>({ids}, v: &L) -> u64 {{ {body} }}"
            );
            let _ = writeln!(
                s,
                "{on}#[inline(always)] pub fn {name}{BY_VALUE_SUFFIX}<L: Caps>({params}, v: L){ret} {{ saving_{shape}({as_u32}, &v, {name}_v::<L>) }}"
            );
        }
        let _ = writeln!(
            s,
            "{off}{COLD} pub extern \"C\" fn {name}{BY_VALUE_SUFFIX}<L: Caps>({params}, v: L){ret} {{ v.with(|a| {name}({pass}, a)) }}"
        );
    }
    s.push('\n');
    s
}

/// What the trampoline does not preserve, as `asm!` clobbers (besides `rax` and the flags).
const CLOBBERS: &str = "out(\"xmm0\") _, out(\"xmm1\") _, out(\"xmm2\") _, out(\"xmm3\") _, out(\"xmm4\") _, out(\"xmm5\") _, out(\"xmm6\") _, out(\"xmm7\") _, out(\"xmm8\") _, out(\"xmm9\") _, out(\"xmm10\") _, out(\"xmm11\") _, out(\"xmm12\") _, out(\"xmm13\") _, out(\"xmm14\") _, out(\"xmm15\") _, out(\"mm0\") _, out(\"mm1\") _, out(\"mm2\") _, out(\"mm3\") _, out(\"mm4\") _, out(\"mm5\") _, out(\"mm6\") _, out(\"mm7\") _, out(\"st(0)\") _, out(\"st(1)\") _, out(\"st(2)\") _, out(\"st(3)\") _, out(\"st(4)\") _, out(\"st(5)\") _, out(\"st(6)\") _, out(\"st(7)\") _";

/// `saving_{lead}[r]`: the `asm!` call through the runtime's `call_saving` (x86-64 ELF,
/// [`FlagAccess::Direct`]; the convention is documented there) of `f` with `lead` site ids
/// (in `r11d`, `r10d`, `r9d`: registers a function's own arguments seldom occupy, so the
/// compiler moves nothing on the dormant path to free them) and the captures' address (`r8`),
/// returning `f`'s result when `result`. It declares what the trampoline does not preserve:
/// the vector and x87 registers, `rax` and the flags.
fn saving(lead: usize, result: bool, upper: bool) -> String {
    const REGS: [&str; 3] = ["r11d", "r10d", "r9d"];
    let ids: Vec<String> = (0..lead).map(|k| format!("i{k}: u32")).collect();
    let mut ops: Vec<String> = (0..lead)
        .map(|k| format!("in(\"{}\") i{k}", REGS[k]))
        .collect();
    ops.push("in(\"r8\") v as *const T".to_owned());
    let (ret, out, value) = if result {
        (" -> u64", "r", "r")
    } else {
        ("", "_", "")
    };
    let let_r = if result { "let r: u64; " } else { "" };
    let trampoline = if upper {
        "call_saving_upper"
    } else {
        "call_saving"
    };
    // A crate compiled for AVX-512 may keep values in the registers only it has.
    let avx512: String = (16..32)
        .map(|k| format!(", out(\"zmm{k}\") _"))
        .chain((0..8).map(|k| format!(", out(\"k{k}\") _")))
        .collect();
    let mut s = String::new();
    for (cfg, more) in [
        ("not(target_feature = \"avx512f\")", ""),
        ("target_feature = \"avx512f\"", avx512.as_str()),
    ] {
        let _ = writeln!(
            s,
            "#[cfg(all({DIRECT_CFG}, {cfg}))] #[inline(always)] fn saving_{lead}{r}<T>({ids}, v: &T, f: extern \"C\" fn(u32, u32, u32, &T) -> u64){ret} {{ {let_r}unsafe {{ self::asm!(\"call {{t}}\", t = sym ::probe_runtime::hot::saving::{trampoline}, {ops}, inout(\"rax\") f as usize => {out}, {CLOBBERS}{more}); }} {value} }}",
            r = if result { "r" } else { "" },
            ids = ids.join(", "),
            ops = ops.join(", "),
        );
    }
    s
}

/// Whether a source text may enable AVX-512 in a function its crate is not compiled for
/// (`#[target_feature]`, directly or through a multiversioning macro): then the entry calls
/// go through the trampoline that also saves the AVX-512 registers (about 5 ns more per
/// armed hit), since the generated `asm!` cannot declare them clobbered there.
pub fn may_enable_avx512(text: &str) -> bool {
    ["target_feature", "avx512", "multiversion"]
        .iter()
        .any(|m| text.contains(m))
}

/// How a dormant check reads its flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagAccess {
    /// A relaxed atomic load of the flag. In a library crate (and in generic code compiled in
    /// another crate) rustc reaches the static through a GOT entry: a load of its address,
    /// the load of the flag, a test and a branch.
    Load,
    /// On x86-64 ELF targets, `asm!` addressing the flag relative to the instruction pointer,
    /// which the linker resolves directly in an executable, a `cdylib` or a proc-macro: a
    /// test is `asm goto` comparing the flag in memory and jumping (`cmpb $0, F+i(%rip); jne`,
    /// two instructions where the load through the GOT takes four, and no register held), a
    /// value (the guard's flag, a loop head's re-read) a byte load (`movzbl F+i(%rip)`).
    /// Measured on the suite against `Load`: smallvec 1.172 -> 1.131, slab 1.301 -> 1.265 at
    /// entry sites; loading the value for the tests as well gained half as much and lost on
    /// ryu (BENCHMARKS.md). Not for builds that link a Rust `dylib`, whose exported
    /// statics cannot be reached that way (the driver chooses [`FlagAccess::Load`] there);
    /// other targets compile the `Load` form.
    Direct,
}

/// The dormant checks over the flags `F` and `FNF` in scope, declared with visibility `vis`;
/// `sites` is the path of the sites crate where they are written (`crate` in the sites crate
/// itself, `::lprobe_sites` in a crate flags module). One line: `on::<I>()` (site `I`'s flag),
/// `fn_on::<K>()` (whether any site of function `K` is armed, read at its entry),
/// `refresh::<K>` (re-reads it at a loop head) and `entry::<I>` (the function guard, which
/// times the call when a `--duration` probe asks). The index is a const parameter so that
/// [`FlagAccess::Direct`] can name the flag's address in `asm!`.
fn checks(vis: &str, sites: &str, access: FlagAccess) -> String {
    // Each read, for flags array `arr` and index parameter `p`: (name, type, body).
    let reads = |value: &str, test: &str, arr: &str, p: &str| {
        [
            (
                value.to_owned(),
                "u8",
                format!("{arr}[{p}].load({sites}::Relaxed)"),
            ),
            (
                test.to_owned(),
                "bool",
                format!("{arr}[{p}].load({sites}::Relaxed) != 0"),
            ),
        ]
    };
    let loads: Vec<(String, &str, String)> = reads("flag", "on", "F", "I")
        .into_iter()
        .chain(reads("fn_flag", "fn_on", "FNF", "K"))
        .collect();
    let item = |cfg: &str, (name, ty, body): &(String, &str, String)| {
        let p = if name.starts_with("fn_") { "K" } else { "I" };
        format!("{cfg}#[inline(always)] {vis} fn {name}<const {p}: usize>() -> {ty} {{ {body} }} ")
    };
    let mut s = String::new();
    match access {
        FlagAccess::Load => loads.iter().for_each(|r| s.push_str(&item("", r))),
        FlagAccess::Direct => {
            // `readonly` without `pure`: no read is moved out of a loop or merged with
            // another, like the atomic load it stands for.
            let value = |arr: &str, p: &str| {
                format!("let v: u32; unsafe {{ {sites}::asm!(\"movzx {{v:e}}, byte ptr [rip + {{f}} + {{i}}]\", f = sym {arr}, i = const {p}, v = out(reg) v, options(readonly, nostack, preserves_flags)); }} v as u8")
            };
            let test = |arr: &str, p: &str| {
                format!("unsafe {{ {sites}::asm!(\"cmp byte ptr [rip + {{f}} + {{i}}], 0\", \"jne {{l}}\", f = sym {arr}, i = const {p}, l = label {{ return true }}, options(readonly, nostack)); }} false")
            };
            let direct = [
                ("flag".to_owned(), "u8", value("F", "I")),
                ("on".to_owned(), "bool", test("F", "I")),
                ("fn_flag".to_owned(), "u8", value("FNF", "K")),
                ("fn_on".to_owned(), "bool", test("FNF", "K")),
            ];
            let on = format!("#[cfg({DIRECT_CFG})] ");
            let off = format!("#[cfg(not({DIRECT_CFG}))] ");
            direct.iter().for_each(|r| s.push_str(&item(&on, r)));
            loads.iter().for_each(|r| s.push_str(&item(&off, r)));
        }
    }
    s.push_str(&format!(
        "#[inline(always)] {vis} fn refresh<const K: usize>(local: &mut bool) {{ *local = fn_flag::<K>() != 0; }} \
#[inline(always)] {vis} fn entry<const I: usize>(fn_on: bool) -> {sites}::Guard {{ {sites}::Guard::new(&{sites}::T, I as u32, if fn_on {{ flag::<I>() }} else {{ 0 }}) }}"
    ));
    s
}

/// The targets where [`FlagAccess::Direct`] is compiled (ELF on x86-64).
const DIRECT_CFG: &str = "all(target_arch = \"x86_64\", any(target_os = \"linux\", target_os = \"android\", target_os = \"freebsd\"))";

/// The module `__lprobe` appended to each crate root of a package whose checks read flags
/// defined in the crate itself: in a binary crate a check is then one load at a fixed offset
/// from the instruction pointer (`movzbl F+i(%rip)`), where a dependency's statics are
/// reached through a GOT entry (a second load, and a register held for the address); in a
/// library crate rustc still goes through the GOT. The module hands its copy to the runtime
/// from a constructor, so it needs `link_section` (the driver lowers a root's `forbid` to
/// `deny` so the module may allow `unsafe_code`). It imports the package's table and cold
/// calls from their host (`host`: this crate's [`host_module`], or the package library's),
/// and defines the crate's own `twice!` ([`CRATE_TWICE`]). Generated code names all of it
/// `crate::__lprobe::…`. One line, like all generated code. `sites`, `fns`: the package's
/// totals.
pub fn crate_flags_module(sites: u32, fns: u32, access: FlagAccess, host: &Host) -> String {
    let checks = checks("pub(crate)", "self", access);
    // Where the checks name the flags in `asm!`, the flags' references to the constructor
    // keep it (`Flags::keep`); elsewhere `#[used]` does. Without `#[used]`, no local symbol
    // of the crate's codegen unit is in `llvm.used`, and LLVM's summary for ThinLTO then lets
    // functions holding an `asm!` call (the guard's flag read, an entry's cold call) be
    // imported into, and inlined in, other units (bytes' `Bytes::slice`: 1.034x -> 1.016x).
    let used = match access {
        FlagAccess::Direct => format!("#[cfg_attr(not({DIRECT_CFG}), used)]"),
        FlagAccess::Load => "#[used]".to_owned(),
    };
    // The crate's own items shadow the glob's (`F`, `FNF`, the checks).
    let import = match host {
        Host::Own => format!("pub(crate) use crate::{HOST_MODULE}::*;"),
        Host::Lib(lib) => format!(
            "#[allow(unused_extern_crates)] extern crate {lib} as __lprobe_host; pub(crate) use self::__lprobe_host::{HOST_MODULE}::*;"
        ),
    };
    let twice = twice_macro(CRATE_TWICE, "crate::__lprobe::cold");
    let twice_loop = twice_loop_macro(CRATE_TWICE_LOOP);
    format!(
        "#[doc(hidden)] #[allow({HOST_ALLOWS})] pub(crate) mod __lprobe {{ \
{import} \
pub(crate) static F: self::Flags<{sites}> = self::Flags {{ f: [const {{ self::AtomicU8::new(0) }}; {sites}], keep: &INIT }}; \
pub(crate) static FNF: self::Flags<{fns}> = self::Flags {{ f: [const {{ self::AtomicU8::new(0) }}; {fns}], keep: &INIT }}; \
{checks} \
{twice} \
{twice_loop} \
{used} \
#[cfg_attr(any(target_os = \"linux\", target_os = \"android\", target_os = \"freebsd\"), unsafe(link_section = \".init_array\"))] \
#[cfg_attr(any(target_os = \"macos\", target_os = \"ios\"), unsafe(link_section = \"__DATA,__mod_init_func\"))] \
static INIT: extern \"C\" fn() = init; \
extern \"C\" fn init() {{ self::attach(&F.f, &FNF.f) }} }}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_text_is_trimmed_and_cut_on_a_char_boundary() {
        assert_eq!(line_text("    let x = 1;  "), "let x = 1;");
        let long = format!("{}é{}", "a".repeat(119), "b".repeat(50));
        let cut = line_text(&long);
        assert_eq!(cut, format!("{}…", "a".repeat(119)));
        assert_eq!(line_text(""), "");
    }

    #[test]
    fn the_runtime_expands_what_the_build_compresses() {
        // Strings like a table's (paths and functions repeating their prefixes), longer than
        // LZ4's 64 KB window, with multi-byte characters; pseudo-random bytes (literals
        // only); long runs (matches overlapping their own output); and nothing.
        let mut table = String::new();
        for i in 0..4000 {
            table.push_str(&format!(
                "src/módulo_{}.rsregex_syntax::ast::parse::ParserI::<P>::parse_{i}let x{i} = self.bump();",
                i % 37
            ));
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let noise: Vec<u8> = (0..70_000)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let runs = [b"a".repeat(100_000), b"ab".repeat(33_000)].concat();
        for input in [table.as_bytes(), &noise, &runs, b"", b"x"] {
            let block = lz4_flex::block::compress(input);
            let back = probe_runtime::packed::lz4::decompress(&block, input.len());
            assert_eq!(back.as_deref(), Some(input), "{} bytes", input.len());
        }
        // What a table saves.
        let block = lz4_flex::block::compress(table.as_bytes());
        assert!(
            block.len() * 4 < table.len(),
            "{} of {}",
            block.len(),
            table.len()
        );
    }

    #[test]
    fn entry_calls_save_registers_only_where_checks_name_the_flags_in_asm() {
        // The calls a package's rewritten code makes (a user's own `hit_if_t` is no call of
        // the sites crate, nor is the array form `hit`).
        let mut calls = ByValueCalls::default();
        calls.scan(
            "{ ::lprobe_sites::enter_t(3, ()); ::lprobe_sites::enter_t(4, (a, b, c, d, e, f,)) }",
        );
        calls.scan(
            "::lprobe_sites::hit_first_t(1, 2, g.on(), (x, y,)) crate::__lprobe::hit_if_t(5, (z,))",
        );
        calls.scan(
            "hit_entry_t(5, (z,)) ::lprobe_sites::hit(7, &[]) ::lprobe_sites::again(1, t, f)",
        );
        let all: Vec<&str> = calls.used.iter().copied().collect();
        assert_eq!(all, ["enter", "hit_first", "hit_if"]);
        let direct = by_value_calls(FlagAccess::Direct, &calls);
        // Only those, both ways under `cfg`, one function each whatever the count.
        assert!(!direct.contains("fn hit_entry_") && !direct.contains("fn hit_t<"));
        assert!(!direct.contains("fn saving_2<") && !direct.contains("fn saving_2r<"));
        for call in ["enter_t", "hit_first_t", "hit_if_t"] {
            assert_eq!(
                direct
                    .matches(&format!(
                        "#[cfg({DIRECT_CFG})] #[inline(always)] pub fn {call}<L: Caps>("
                    ))
                    .count(),
                1,
                "{call}"
            );
            assert!(direct.contains(&format!("#[cfg(not({DIRECT_CFG}))] #[cold] #[inline(never)] #[allow(improper_ctypes_definitions)] pub extern \"C\" fn {call}<L: Caps>(")), "{call}");
        }
        assert!(direct.contains("fn saving_1r<T>(i0: u32, v: &T"));
        assert!(direct.contains("fn saving_3r<T>(i0: u32, i1: u32, i2: u32, v: &T"));
        assert!(direct.contains("sym ::probe_runtime::hot::saving::call_saving,"));
        assert!(direct.contains(&format!(
            "#[cfg(all({DIRECT_CFG}, target_feature = \"avx512f\"))]"
        )));
        assert!(direct.contains("out(\"zmm31\") _, out(\"k0\") _"));
        calls.upper = true;
        let upper = by_value_calls(FlagAccess::Direct, &calls);
        assert!(upper.contains("sym ::probe_runtime::hot::saving::call_saving_upper,"));
        assert!(!upper.contains("call_saving,"));
        assert!(may_enable_avx512(
            "#[target_feature(enable = \"avx2\")]\nunsafe fn f() {}"
        ));
        assert!(may_enable_avx512("#[multiversion(targets = \"simd\")]"));
        assert!(!may_enable_avx512("fn f() { let v = vec![1]; }"));
        // `hit_first` passes its flag as a number and reads it back.
        assert!(direct.contains("saving_3r(e, l, u32::from(entry_on), &v, hit_first_v::<L>)"));
        assert!(direct.contains("v.with(|a| hit_first(e, l, entry_on != 0, a))"));
        let load = by_value_calls(FlagAccess::Load, &calls);
        assert!(!load.contains("asm!") && !load.contains("cfg("));
        assert!(load.contains(
            "pub extern \"C\" fn enter_t<L: Caps>(i: u32, v: L) -> u64 { v.with(|a| enter(i, a)) }"
        ));
        // The constructor is kept by the flags' reference to it where `asm!` reads them.
        let m = crate_flags_module(3, 2, FlagAccess::Direct, &Host::Own);
        assert!(
            m.contains(&format!("#[cfg_attr(not({DIRECT_CFG}), used)]")) && !m.contains("#[used]")
        );
        assert!(m.contains("keep: &INIT") && m.contains("attach(&F.f, &FNF.f)"));
        assert!(crate_flags_module(3, 2, FlagAccess::Load, &Host::Own).contains("#[used]"));
    }

    #[test]
    fn table_rows_are_rust_literals() {
        let rows = vec![SiteRow {
            path: "src/main.rs".into(),
            line: 42,
            col: 5,
            func: "demo_app::process".into(),
            kind: "line",
            names: vec!["order".into(), "total".into()],
            fn_slot: 0,
            timed: false,
            frame: false,
            text: "let total = order.total();".into(),
        }];
        let files = [("src/main.rs".into(), "abc".into())];
        let skipped = [SkippedRow {
            path: "src/main.rs".into(),
            first_line: 3,
            last_line: 5,
            func: "demo_app::get".into(),
            why: "const fn".into(),
        }];
        let calls = ByValueCalls::default();
        let contents = Contents {
            package: "demo-app",
            dir: "",
            rows: &rows,
            fns: 1,
            files: &files,
            skipped: &skipped,
            access: FlagAccess::Direct,
            calls: &calls,
        };
        let src = source(&contents, &[]);
        // The strings once, in one compressed string; the sites and the functions without
        // sites packed in bytes.
        let plain =
            "ordertotalsrc/main.rsdemo_app::processlet total = order.total();demo_app::getconst fn";
        assert!(src.contains(&format!(
            "static TEXT: ::probe_runtime::packed::Text = ::probe_runtime::packed::Text::lz4(&TEXT_LZ4, {});",
            plain.len()
        )));
        assert!(src.contains("pub static F: [AtomicU8; 1]"));
        assert!(src.contains(
            "sites: ::probe_runtime::Sites::packed(&TEXT, &SITES), files: &FILES, skipped: ::probe_runtime::Skips::packed(&TEXT, &SKIPPED)"
        ));
        // What the program unpacks is the row.
        let file = syn::parse_file(&src).expect("parses");
        let lit = |name: &str| {
            file.items.iter().find_map(|i| match i {
                syn::Item::Static(st) if st.ident == name => Some((*st.expr).clone()),
                syn::Item::Const(c) if c.ident == name => Some((*c.expr).clone()),
                _ => None,
            })
        };
        let bytes_of = |name: &str| {
            let Some(syn::Expr::Unary(bytes)) = lit(name) else {
                panic!("{name} is *b\"…\"")
            };
            let syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::ByteStr(bytes),
                ..
            }) = *bytes.expr
            else {
                panic!("a byte string")
            };
            bytes.value()
        };
        // What the program expands is the string.
        let block = bytes_of("TEXT_LZ4");
        let text = probe_runtime::packed::lz4::decompress(&block, plain.len()).expect("expands");
        let text: &'static str =
            Box::leak(String::from_utf8(text).expect("UTF-8").into_boxed_str());
        assert_eq!(text, plain);
        let (strs, back) = probe_runtime::packed::unpack(text, &bytes_of("SITES"));
        assert_eq!(back.len(), 1);
        let r = back[0];
        assert_eq!((r.path.of(text), r.line, r.col), ("src/main.rs", 42, 5));
        assert_eq!(r.func.of(text), "demo_app::process");
        assert_eq!(r.text.of(text), "let total = order.total();");
        assert_eq!(r.kind, probe_runtime::SiteKind::Line);
        assert_eq!((r.fn_slot, r.timed, r.frame), (0, false, false));
        let names: Vec<&str> = strs.names[r.names.0 as usize..][..r.names.1 as usize]
            .iter()
            .map(|s| s.of(text))
            .collect();
        assert_eq!(names, ["order", "total"]);
        use probe_runtime::packed::Unpack;
        let skipped = probe_runtime::Skipped::unpack(text, &bytes_of("SKIPPED"));
        assert_eq!(skipped.len(), 1);
        let k = &skipped[0];
        assert_eq!(
            (k.path(), k.first_line, k.last_line, k.func(), k.why()),
            ("src/main.rs", 3, 5, "demo_app::get", "const fn")
        );
        assert!(syn::parse_file(&src).is_ok());
    }

    #[test]
    fn checks_read_flags_directly_on_x86_64_elf_and_load_them_elsewhere() {
        let direct = checks("pub", "self", FlagAccess::Direct);
        // A test compares in memory and jumps; a value is one byte load; both name the
        // flag's symbol, relative to the instruction pointer.
        assert!(direct.contains(
            "self::asm!(\"cmp byte ptr [rip + {f} + {i}], 0\", \"jne {l}\", f = sym F, i = const I"
        ));
        assert!(direct.contains("movzx {v:e}, byte ptr [rip + {f} + {i}]\", f = sym FNF"));
        for name in ["flag", "on", "fn_flag", "fn_on"] {
            let on = format!("#[cfg({DIRECT_CFG})] #[inline(always)] pub fn {name}<");
            let off = format!("#[cfg(not({DIRECT_CFG}))] #[inline(always)] pub fn {name}<");
            assert_eq!(direct.matches(&on).count(), 1, "{name}");
            assert_eq!(direct.matches(&off).count(), 1, "{name}");
        }
        let load = checks("pub(crate)", "self", FlagAccess::Load);
        assert!(!load.contains("asm!") && !load.contains("cfg("));
        assert!(load.contains(
            "pub(crate) fn fn_on<const K: usize>() -> bool { FNF[K].load(self::Relaxed) != 0 }"
        ));
        for src in [&direct, &load] {
            assert!(syn::parse_file(src).is_ok(), "{src}");
        }
    }
}
