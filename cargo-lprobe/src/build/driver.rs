//! `cargo lprobe build|check|run|test|bench`: the stages from the user's workspace to an
//! instrumented build, each a function from one named value to the next ([`run`] shows them
//! in order):
//!
//! 0. [`Setup`]: the workspace (`workspace`), the copy's directory (locked for the run) and
//!    the skip lists; [`Freshness`]: the stamp's key and the workspace's file tree. When the
//!    stamp says nothing changed, `reuse_copy` builds the last copy as it is (the short cut).
//! 1. [`Found`] (`find_sites`): every source file parsed, its sites (`visit`) and the repair
//!    outcomes remembered for it ([`Caches`]);
//! 2. [`Built`] (`build_until_it_compiles`): splice probes into the text (`rewrite`), mirror
//!    the workspace into `target/lprobe/src/` with the rewritten files, manifests, runtime and
//!    sites crates (`write_copy`), build with JSON diagnostics, and on errors in rewritten
//!    code take out what caused them (`judge_errors`, `repair`) and go again;
//! 3. `finish`: save the outcomes and the stamp, report, and for `run`, `test` and `bench`
//!    hand over to cargo in the copy.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::build::cargo::{Invocation, Report, Sub};
use crate::build::cfg;
use crate::build::copy_tree::{mirror, write_if_changed};
use crate::build::progress;
use crate::build::repair::{self, Action, Cache, FileError};
use crate::build::resolve::Resolve;
use crate::build::rewrite::{self, Exclusions, Rewritten};
use crate::build::sites_crate::{self, SiteRow, SkippedRow};
use crate::build::skip::{self, SkipList};
use crate::build::stamp::{self, Stamp};
use crate::build::visit::{self, FileSites, LineSel};
use crate::build::workspace::{self, Package, Workspace};

/// Most build rounds before giving up on repair. Every round must take something out, so
/// the loop ends anyway; this bounds pathological cases.
const MAX_ROUNDS: usize = 60;

/// One source file being instrumented.
struct FileWork {
    /// Path relative to the workspace root, with `/` separators.
    rel: String,
    pkg: usize,
    text: String,
    hash: String,
    lines_key: String,
    sites: FileSites,
    first: rewrite::FirstIds,
    extern_at: Option<usize>,
    /// A crate root: where the crate flags module goes (see `rewrite::FlagsHome`).
    crate_root: bool,
    /// The package's targets (indices) whose crates include this file.
    targets: Vec<usize>,
    ex: Exclusions,
    /// Whether `ex` came from a remembered repair outcome, or the repair rounds' check
    /// passed (else the file is repaired from scratch, its captures listed
    /// `rewrite::CaptureList::Checked`).
    outcome_known: bool,
    rewritten: Option<Rewritten>,
    notes: Vec<String>,
    /// `include_str!`/`include_bytes!` literals: (byte range, path as written).
    includes: Vec<(std::ops::Range<usize>, String)>,
}

impl FileWork {
    /// Rewrites the file with what repair has taken out so far, its checks reading `flags`.
    fn rewrite(&mut self, flags: rewrite::FlagsHome) {
        let list = if self.outcome_known {
            rewrite::CaptureList::Plain
        } else {
            rewrite::CaptureList::Checked
        };
        self.rewritten = Some(rewrite::rewrite(
            &self.text,
            &self.sites,
            self.first,
            &self.ex,
            self.extern_at,
            flags,
            list,
        ));
    }
}

/// Per-package totals for the summary and `--report json`.
#[derive(Default, Serialize, Deserialize)]
struct PkgReport {
    package: String,
    files: usize,
    files_left_original: Vec<String>,
    fns_with_body: usize,
    /// `const fn`s: their bodies also run at compile time, where no probe can run (stable
    /// Rust cannot tell the two apart), so they never get sites. Counted in `fns_with_body`.
    fns_const: usize,
    fns_instrumented: usize,
    fns_skipped: Vec<String>,
    sites: usize,
    sites_placed: usize,
    captures: usize,
    captures_kept: usize,
}

pub fn main(args: &[String]) -> i32 {
    if let Some(sub) = crate::build::cli_spec::wants_help(args) {
        progress::init(args, false);
        let _ = write!(anstream::stdout(), "{}", crate::build::cli_spec::help(sub));
        return 0;
    }
    let inv = match crate::build::cargo::parse(args) {
        Ok(i) => i,
        Err(e) => {
            progress::init(args, false);
            progress::message(&format!("error: {e:#}"));
            return 2;
        }
    };
    progress::init(args, inv.verbose);
    let code = run(&inv);
    progress::clear();
    code.unwrap_or_else(|e| {
        progress::message(&format!("error: {e:#}"));
        1
    })
}

fn rel_string(p: &Path) -> String {
    p.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Parses a `--lines` value into per-file selections. Returns the default (for files not
/// named) and the explicit ones keyed by workspace-relative path.
fn line_selection(
    spec: &str,
    files: &[(String, String)],
) -> Result<(LineSel, HashMap<String, LineSel>)> {
    let spec = spec.trim();
    match spec {
        "all" => return Ok((LineSel::All, HashMap::new())),
        "none" | "" => return Ok((LineSel::None, HashMap::new())),
        _ => {}
    }
    let mut map: HashMap<String, LineSel> = HashMap::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((file, range)) = item.rsplit_once(':') else {
            bail!("invalid --lines item '{item}': use FILE:LINE or FILE:FIRST-LAST (e.g. src/main.rs:42,src/db.rs:10-80), 'all' or 'none'");
        };
        let (a, b) = match range.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (range.trim(), range.trim()),
        };
        let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) else {
            bail!("invalid line range '{range}' in --lines item '{item}': use LINE or FIRST-LAST");
        };
        if a > b {
            bail!("invalid line range '{range}' in --lines item '{item}': {a} is after {b}");
        }
        let file = file.trim_start_matches("./");
        let matches: Vec<&String> = files
            .iter()
            .filter(|(ws_rel, pkg_rel)| {
                ws_rel == file || pkg_rel == file || ws_rel.ends_with(&format!("/{file}"))
            })
            .map(|(w, _)| w)
            .collect();
        let target = match matches.as_slice() {
            [one] => (*one).clone(),
            [] => bail!("--lines: no instrumented source file matches '{file}'"),
            many => bail!(
                "--lines: '{file}' is ambiguous, it matches {}",
                many.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let entry = map
            .entry(target)
            .or_insert_with(|| LineSel::Some(Default::default()));
        if let LineSel::Some(set) = entry {
            set.extend(a..=b);
        }
    }
    Ok((LineSel::None, map))
}

fn lines_key(sel: &LineSel) -> String {
    match sel {
        LineSel::All => "all".into(),
        LineSel::None => "none".into(),
        LineSel::Some(set) => {
            let mut v: Vec<u32> = set.iter().copied().collect();
            v.sort_unstable();
            v.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
        }
    }
}

/// Per package: whether its checks can read flags defined in its own crates
/// (`rewrite::FlagsHome::Crate`). Every crate root must carry the flags module: none may have
/// failed to parse, be left as written, or have had the module fail to build (e.g. with
/// `unsafe_code` forbidden from the command line: the module's constructor needs
/// `link_section`).
fn crate_flags_ok(files: &[FileWork], unparsed_root: &[bool]) -> Vec<bool> {
    let mut ok: Vec<bool> = unparsed_root.iter().map(|u| !u).collect();
    for f in files {
        if f.crate_root && (f.ex.file_original || f.ex.no_crate_flags) {
            ok[f.pkg] = false;
        }
    }
    ok
}

/// A crate root's copy with each `forbid` of its inner attributes lowered to `deny`, padded to
/// the same length (every offset stays valid). Generated code allows lints a crate may forbid
/// (`unsafe_code` for the flags module's constructor, `unused_variables`…); a forbid cannot be
/// allowed, a deny can, and the user's code compiled under forbid, so it holds no `allow` that
/// deny would now accept.
fn lower_forbids(text: &str, file: &syn::File) -> String {
    let mut out = text.to_owned();
    for at in visit::inner_forbids(text, file) {
        if out.get(at..at + 6) == Some("forbid") {
            out.replace_range(at..at + 6, "deny  ");
        }
    }
    out
}

/// Whether `err` points into the generated modules of `f` (a crate root).
fn in_crate_module(f: &FileWork, err: &FileError) -> bool {
    f.rewritten
        .as_ref()
        .is_some_and(|r| r.in_crate_module(err.byte))
}

/// Offset just after a file's inner attributes (where an `extern crate` may go).
fn after_inner_attrs(text: &str, file: &syn::File) -> usize {
    use syn::spanned::Spanned;
    let mut end = None;
    for a in &file.attrs {
        if matches!(a.style, syn::AttrStyle::Inner(_)) {
            let e = a.span().end();
            end = Some(end.map_or(e, |p: proc_macro2::LineColumn| {
                if (e.line, e.column) > (p.line, p.column) {
                    e
                } else {
                    p
                }
            }));
        }
    }
    let Some(lc) = end else {
        return 0;
    };
    let line_start: usize = text
        .split_inclusive('\n')
        .take(lc.line.saturating_sub(1))
        .map(str::len)
        .sum();
    let rest = &text[line_start..];
    line_start
        + rest
            .char_indices()
            .nth(lc.column)
            .map_or(rest.len(), |(i, _)| i)
}

/// `1234567` as `1,234,567`.
pub(crate) fn thousands(n: impl std::fmt::Display) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn run(inv: &Invocation) -> Result<i32> {
    let t0 = Instant::now();
    // The target's cfgs (a compiler start, ~30 ms), asked while cargo reads the metadata and
    // the sources are parsed; a build whose copy is current does not wait for the answer.
    let target = {
        let triple = build_target(inv);
        std::thread::spawn(move || cfg::Target::query(&rustc(), triple.as_deref()))
    };
    let mut setup = Setup::load(inv)?;
    let fresh = Freshness::of(inv, &setup)?;
    // Nothing changed since the last successful build: build the copy as it is.
    if let Some(json_out) = reuse_copy(inv, &setup, &fresh, t0)? {
        return setup.hand_over(inv, json_out);
    }
    // A full run that stops half-way must not leave a stamp for the copy it changed.
    let fresh = fresh.unsealed(&setup);
    // The output bridges need the resolved graph too (most workspaces can have none: no
    // member's dependencies lead to either facade in the lock): it resolves beside the parse.
    let bridges_possible = crate::build::bridge::may_have_bridges(&setup.ws);
    if setup.resolve.is_none() && bridges_possible {
        setup.resolve = Some(resolve_graph(inv, &setup.cwd, &setup.ws));
    }
    let t_metadata = t0.elapsed();
    std::thread::scope(|scope| {
        let early = (!bridges_possible)
            .then(|| EarlyRound::start(scope, inv, &setup))
            .flatten();
        progress::stage("Rewriting", "the workspace's sources");
        let mut found = find_sites(inv, &setup, target)?;
        find_bridges(&mut setup, &mut found, bridges_possible);
        found.t_metadata = t_metadata;
        let built = match build_until_it_compiles(inv, &setup, &mut found, early)? {
            Built::Compiled(b) => b,
            Built::Failed(code) => {
                // A stale lock file may be why.
                setup.confirm_locked()?;
                return Ok(code);
            }
        };
        finish(inv, setup, fresh, found, built, t0)
    })
}

/// A clean build's first round, started before the rewrite (see `early`): cargo runs in a
/// thread of its own while the sources are parsed and rewritten.
struct EarlyRound<'scope> {
    gate: crate::build::early::Gate,
    round: std::thread::ScopedJoinHandle<'scope, Result<Outcome>>,
}

impl<'scope> EarlyRound<'scope> {
    /// Writes the copy with the manifests a rewrite most often leaves (every package's table
    /// in its own crates), shuts the gate and starts cargo. `None` (no early start) for a
    /// build whose copy exists (its files would change twice, and crates that did not change
    /// be rebuilt), without the compiler wrapper (which holds the compiles back), or when
    /// anything of it fails.
    fn start<'env>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        inv: &'env Invocation,
        setup: &Setup,
    ) -> Option<EarlyRound<'scope>> {
        if setup.copy.exists() || !wrapper_wanted() {
            return None;
        }
        let packages = setup.packages();
        let runtime_dir = setup.lp.join("runtime");
        let hot_dir = runtime_dir.join(crate::build::runtime_src::HOT_DIR);
        let in_crate = vec![true; packages.len()];
        let manifests =
            manifest_overrides(&setup.ws, &packages, &in_crate, &setup.lp, &hot_dir).ok()?;
        let gate = crate::build::early::Gate::shut(&setup.lp, manifests.clone())?;
        let skip = [setup.ws.target_dir.clone(), setup.lp.clone()];
        mirror(&setup.ws.root, &setup.copy, &skip, &manifests).ok()?;
        write_runtime(&runtime_dir).ok()?;
        let (ws, cwd, copy, lp) = (
            setup.ws.clone(),
            setup.cwd.clone(),
            setup.copy.clone(),
            setup.lp.clone(),
        );
        let gate_path = gate.path().to_path_buf();
        let round = scope.spawn(move || {
            build_round(
                inv,
                &ws,
                &cwd,
                &copy,
                &lp,
                Round {
                    gate: Some(&gate_path),
                    ..Round::build()
                },
            )
        });
        Some(EarlyRound { gate, round })
    }

    /// Opens the gate once the rewrite has written the copy (`manifests`: its manifests) and
    /// waits for the round: its outcome, or `None` when the manifests are not those it
    /// started with (the held compiles then fail at once and the round is run again).
    fn finish(
        self,
        manifests: &HashMap<PathBuf, Vec<u8>>,
        verbose: bool,
    ) -> Option<Result<Outcome>> {
        let keep = self.gate.matches(manifests);
        self.gate.open(keep);
        let out = self
            .round
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the early build round panicked")));
        if verbose {
            eprintln!(
                "{}",
                if keep {
                    "lprobe: the first round was started beside the rewrite"
                } else {
                    "lprobe: the rewrite changed the manifests the early first round started with; building again"
                }
            );
        }
        keep.then_some(out)
    }
}

/// The user's dependency graph for this build's flags: resolved beside the rewrite, or the
/// answer an earlier build kept for the same inputs (`Resolve::start_or_recall`).
fn resolve_graph(inv: &Invocation, cwd: &Path, ws: &Workspace) -> Resolve {
    let members: Vec<PathBuf> = ws.members.iter().map(|p| p.manifest.clone()).collect();
    Resolve::start_or_recall(inv.manifest_path.as_deref(), cwd, &inv.cargo_args, &members)
}

/// Stage 0: the workspace, the copy's directories (locked for this run), the skip lists.
struct Setup {
    cwd: PathBuf,
    ws: Workspace,
    /// `target/lprobe`.
    lp: PathBuf,
    /// `target/lprobe/src`: the rewritten copy.
    copy: PathBuf,
    /// One run at a time writes the copy and builds it (held until the hand-over to cargo).
    lock: std::fs::File,
    /// Per instrumented package (members but proc-macro crates), in order.
    skips: Vec<SkipList>,
    /// The user's resolved dependency graph, when `--locked` asks for a check or the output
    /// bridges may need it (`confirm_locked`, `bridge::find`): resolved beside the parse.
    resolve: Option<Resolve>,
    /// `--locked`/`--frozen`: the lock's check is still to be confirmed.
    locked: bool,
}

impl Setup {
    fn load(inv: &Invocation) -> Result<Setup> {
        let cwd = std::env::current_dir().context("reading the current directory")?;
        let manifest = inv.manifest_path.as_ref().map(|p| cwd.join(p));
        let mut ws = workspace::load(manifest.as_deref())?;
        // Resolving the dependency graph is the slower of the two `cargo metadata` runs (and
        // slower still in a fresh target directory, where it probes the compiler): it runs
        // beside the rewrite and the build, unless an earlier build's answer was resolved from
        // the same inputs, and `--locked`'s answer is awaited before anything is run or said
        // to be built (`Setup::confirm_locked`).
        let resolve = inv.locked.then(|| resolve_graph(inv, &cwd, &ws));
        if let Some(dir) = &inv.target_dir {
            // `../t` from a member's directory: cargo names the files it reports (and the
            // mirror skips the directory) by the normalized path.
            ws.target_dir = crate::build::manifest::normalize(&cwd.join(dir));
        }
        let lp = ws.target_dir.join("lprobe");
        let lock = lock_copy(&lp)?;
        // Per build: what the compiler wrapper did with the runtime (see runtime_cache).
        let _ = std::fs::remove_file(lp.join("runtime-cache.log"));
        let copy = lp.join("src");
        for p in ws.members.iter().filter(|p| p.is_proc_macro) {
            if inv.verbose {
                eprintln!("lprobe: not instrumenting proc-macro crate {}", p.name);
            }
        }
        let packages: Vec<&Package> = ws.members.iter().filter(|p| !p.is_proc_macro).collect();
        let skips = skip_lists(inv, &ws, &cwd, &packages)?;
        Ok(Setup {
            cwd,
            ws,
            lp,
            copy,
            lock,
            skips,
            resolve,
            locked: inv.locked,
        })
    }

    /// Waits for `--locked`'s check: an error (with cargo's own message) when the user's
    /// Cargo.lock is not current.
    fn confirm_locked(&mut self) -> Result<()> {
        let Some(resolve) = self.resolve.as_mut().filter(|_| self.locked) else {
            return Ok(());
        };
        let Err(message) = resolve.succeeded() else {
            return Ok(());
        };
        // Asked once: the build's failure and the hand-over both confirm.
        self.locked = false;
        eprint!("{message}");
        if message.contains("--locked") {
            bail!(
                "Cargo.lock of {} needs an update but --locked was given (see cargo's message above)",
                self.ws.root.display()
            );
        }
        bail!(
            "resolving the dependencies of {} failed (see cargo's message above)",
            self.ws.root.display()
        )
    }

    /// The packages lprobe instruments.
    fn packages(&self) -> Vec<&Package> {
        self.ws
            .members
            .iter()
            .filter(|p| !p.is_proc_macro)
            .collect()
    }

    fn stamp_path(&self) -> PathBuf {
        self.lp.join("stamp.json")
    }

    /// Stage 5: releases the copy and hands over to cargo (`run`, `test`, `bench`).
    fn hand_over(mut self, inv: &Invocation, json_out: bool) -> Result<i32> {
        self.confirm_locked()?;
        let Setup {
            cwd,
            ws,
            lp,
            copy,
            lock,
            ..
        } = self;
        drop(lock);
        hand_over(inv, &ws, &cwd, &copy, &lp, json_out)
    }
}

/// What decides whether the last build's copy is still current: the workspace's files and
/// every option that changes the rewrite.
struct Freshness {
    key: String,
    tree: Vec<stamp::FileStat>,
    walked: std::time::SystemTime,
}

impl Freshness {
    fn of(inv: &Invocation, setup: &Setup) -> Result<Freshness> {
        let walked = std::time::SystemTime::now();
        let tree = stamp::walk(
            &setup.ws.root,
            &[setup.ws.target_dir.clone(), setup.lp.clone()],
        )?;
        let skip_keys: Vec<String> = setup.skips.iter().map(SkipList::key).collect();
        let key = stamp::key(&[
            &format!("{:?}", setup.ws),
            &format!("{:?}", inv.lines),
            &inv.skip_accessors.to_string(),
            &format!("entry_all={}", inv.entry_all),
            &format!("{skip_keys:?}"),
            // The features decide which tracing/log bridges the sites crates get.
            &format!("{:?}", crate::build::bridge::feature_args(&inv.cargo_args)),
            // How checks read their flags (a `dylib`, `prefer-dynamic`, LPROBE_FLAG_ACCESS).
            &format!("{:?}", setup.ws.flag_access()),
        ]);
        Ok(Freshness { key, tree, walked })
    }

    /// Removes the last stamp (the copy is about to change) and seals the tree's times.
    fn unsealed(mut self, setup: &Setup) -> Freshness {
        stamp::remove(&setup.stamp_path());
        stamp::seal(&setup.ws.root, &mut self.tree, self.walked);
        self
    }
}

/// The short cut: when the stamp says the workspace and the copy are as the last successful
/// build left them, builds the copy as it is and reports (`Some(json_out)`: ready for the
/// hand-over). `None`: take the full path.
fn reuse_copy(
    inv: &Invocation,
    setup: &Setup,
    fresh: &Freshness,
    t0: Instant,
) -> Result<Option<bool>> {
    let Some(mut old) = stamp::load(&setup.stamp_path()) else {
        return Ok(None);
    };
    let lp = &setup.lp;
    if old.key != fresh.key
        || !stamp::unchanged(&setup.ws.root, &old.tree, &fresh.tree)
        || !stamp::walk_copy(lp).is_ok_and(|c| stamp::unchanged(lp, &old.copy, &c))
    {
        return Ok(None);
    }
    let t_check = t0.elapsed();
    let out = build_round(inv, &setup.ws, &setup.cwd, &setup.copy, lp, Round::build())?;
    if !out.success {
        if inv.verbose {
            eprintln!("lprobe: building the unchanged copy failed; rewriting and repairing");
        }
        return Ok(None);
    }
    if stamp::expire(&mut old.tree, fresh.walked) {
        let _ = stamp::save(&setup.stamp_path(), &old);
    }
    for w in &old.warnings {
        progress::message(w);
    }
    let reports: Vec<PkgReport> = serde_json::from_value(old.reports.clone()).unwrap_or_default();
    let phases = format!(
        "lprobe: phases: metadata and {} unchanged files {:.2}s (the copy from the last build is current), build {:.2}s, total {:.2}s",
        fresh.tree.len(),
        t_check.as_secs_f64(),
        (t0.elapsed() - t_check).as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
    report(inv, lp, &out, &reports, &old.notes, &phases).map(Some)
}

/// Stages 1-2: every source file of the instrumented packages, parsed, with its sites and the
/// repair outcomes remembered for it.
struct Found {
    files: Vec<FileWork>,
    /// Per package: sites and functions (the next free ids).
    next_ids: Vec<u32>,
    next_fns: Vec<u32>,
    /// Per package: its crate root did not parse (no crate flags module there).
    unparsed_root: Vec<bool>,
    /// How the checks read their flags (`Workspace::flag_access`).
    access: sites_crate::FlagAccess,
    warnings: Vec<String>,
    /// Per package: its `tracing`/`log` output bridges.
    bridges: Vec<Vec<crate::build::bridge::BridgeDep>>,
    /// Per package: its Rust library (target index, crate name), which its other crates link
    /// (`rewrite::Host`).
    libs: Vec<Option<(usize, String)>>,
    /// Per package: its crates hold its table (`rewrite::FlagsHome::Crate`), as of the last
    /// rewrite; else its sites crate does.
    in_crate: Vec<bool>,
    caches: Caches,
    total_lines: usize,
    /// Time spent reading metadata, and parsing and finding sites.
    t_metadata: std::time::Duration,
    t_parse: std::time::Duration,
}

/// Where repair outcomes are read from and saved to.
struct Caches {
    cache: Cache,
    /// `target/lprobe/repair-cache.json`.
    path: PathBuf,
    /// Also kept machine-wide per workspace, so that a build in a fresh target directory (a
    /// clean CI build, `cargo clean`) runs no repair round either.
    shared: Option<PathBuf>,
    /// `--repairs FILE`: a committed copy of the outcomes (relative to the current directory).
    file: Option<PathBuf>,
}

impl Caches {
    fn load(inv: &Invocation, setup: &Setup) -> Caches {
        let path = setup.lp.join("repair-cache.json");
        let shared = crate::build::runtime_cache::cache_dir().map(|d| {
            d.join("repairs").join(format!(
                "{}.json",
                repair::content_hash(setup.ws.root.display().to_string().as_bytes())
            ))
        });
        let file = inv.repairs.as_ref().map(|f| setup.cwd.join(f));
        let mut paths: Vec<&Path> = vec![&path];
        paths.extend(shared.as_deref());
        paths.extend(file.as_deref());
        let cache = Cache::load(&paths);
        Caches {
            cache,
            path,
            shared,
            file,
        }
    }

    /// Keeps what was learned; `--repairs` is written only after a build that compiled.
    fn save(&mut self, files: &[FileWork], compiled: bool) -> Result<()> {
        let file = if compiled { self.file.as_deref() } else { None };
        save_cache(
            &mut self.cache,
            files,
            &self.path,
            self.shared.as_deref(),
            file,
        )
    }
}

fn find_sites(
    inv: &Invocation,
    setup: &Setup,
    target: std::thread::JoinHandle<cfg::Target>,
) -> Result<Found> {
    let t_find = Instant::now();
    let packages = setup.packages();
    let caches = Caches::load(inv, setup);
    let mut found = Found {
        files: Vec::new(),
        next_ids: vec![0; packages.len()],
        next_fns: vec![0; packages.len()],
        unparsed_root: vec![false; packages.len()],
        access: setup.ws.flag_access(),
        warnings: Vec::new(),
        bridges: Vec::new(),
        libs: packages.iter().map(|p| rust_lib(p)).collect(),
        in_crate: Vec::new(),
        caches,
        total_lines: 0,
        t_metadata: std::time::Duration::ZERO,
        t_parse: std::time::Duration::ZERO,
    };
    let mut parse_failures = Vec::new();
    for (pi, pkg) in packages.iter().enumerate() {
        find_package_sites(inv, setup, pi, pkg, &mut found, &mut parse_failures)?;
    }
    let target = target.join().unwrap_or_default();
    promote_recalls(&mut found.files, &target);
    drop_leaf_loop_rereads(&mut found.files);
    found.t_parse = t_find.elapsed();
    found.warnings = parse_failures
        .iter()
        .map(|f| format!("lprobe: warning: cannot parse {f}"))
        .collect();
    found.warnings.extend(skip::unused(&setup.skips).map(|p| {
        format!(
            "lprobe: warning: skip pattern '{}' ({}) matches no function or source file of the instrumented packages",
            p.text, p.origin
        )
    }));
    Ok(found)
}

/// The output bridges of each instrumented package (`found.bridges`), once the resolved
/// graph is in (it was resolved beside the parse) if the build may have any (`possible`:
/// `bridge::may_have_bridges`); then every warning of the two is told.
fn find_bridges(setup: &mut Setup, found: &mut Found, possible: bool) {
    let Setup {
        ws, resolve, copy, ..
    } = setup;
    let packages: Vec<&Package> = ws.members.iter().filter(|p| !p.is_proc_macro).collect();
    let resolve = resolve.as_mut().filter(|_| possible);
    let bridges = crate::build::bridge::find(ws, resolve, &packages, copy);
    found.bridges = bridges.per_package;
    found.warnings.extend(bridges.warnings);
    for w in &found.warnings {
        progress::message(w);
    }
}

/// The files of package `pi` (`pkg`), appended to `found.files`.
fn find_package_sites(
    inv: &Invocation,
    setup: &Setup,
    pi: usize,
    pkg: &Package,
    found: &mut Found,
    parse_failures: &mut Vec<String>,
) -> Result<()> {
    let ws = &setup.ws;
    let sources = workspace::module_files(pkg);
    let names: Vec<(String, String)> = sources
        .iter()
        .filter_map(|f| {
            let ws_rel = rel_string(f.path.strip_prefix(&ws.root).ok()?);
            let pkg_rel = rel_string(f.path.strip_prefix(&pkg.dir).ok()?);
            Some((ws_rel, pkg_rel))
        })
        .collect();
    let spec = inv
        .lines
        .clone()
        .or_else(|| pkg.lines.clone())
        .or_else(|| ws.lines.clone())
        .unwrap_or_else(|| "none".into());
    let (default_sel, explicit) = if inv.lines.is_some() || pkg.lines.is_some() {
        line_selection(&spec, &names)?
    } else {
        // Workspace-level lines may name files of other packages.
        line_selection(&spec, &names).unwrap_or((LineSel::None, HashMap::new()))
    };
    let skip_accessors = inv.skip_accessors || pkg.skip_accessors || ws.skip_accessors;
    let skip = &setup.skips[pi];
    let package_traits = visit::declared_traits(
        sources
            .iter()
            .filter_map(|s| s.source.as_ref()?.1.as_ref().ok()),
    );
    for src in sources {
        let Ok(rel) = src.path.strip_prefix(&ws.root) else {
            continue;
        };
        let rel = rel_string(rel);
        let (text, parsed) = match src.source {
            Some(source) => source,
            None => {
                let text = std::fs::read_to_string(&src.path)
                    .with_context(|| format!("reading {}", src.path.display()))?;
                let parsed = syn::parse_file(&text);
                (text, parsed)
            }
        };
        found.total_lines += text.lines().count();
        let file = match parsed {
            Ok(f) => f,
            Err(e) => {
                let at = e.span().start();
                parse_failures.push(format!("{rel}:{}: {e} (left as written)", at.line));
                if src.crate_root {
                    found.unparsed_root[pi] = true;
                }
                continue;
            }
        };
        let hash = repair::content_hash(text.as_bytes());
        let text = if src.crate_root {
            lower_forbids(&text, &file)
        } else {
            text
        };
        let sel = explicit
            .get(&rel)
            .cloned()
            .unwrap_or_else(|| default_sel.clone());
        let pkg_rel = src
            .path
            .strip_prefix(&pkg.dir)
            .map(rel_string)
            .unwrap_or_default();
        let opts = visit::Options {
            skip_accessors,
            entry_all: inv.entry_all,
            package_traits: &package_traits,
            skip,
            skip_file: skip.file(&rel, &pkg_rel).map(skip::Pattern::reason),
            module_exported: src.exported,
            module_test: src.test_only,
            module_cfg: src.cfg.clone(),
        };
        let sites = visit::find_sites_with(&text, &file, &src.module, &sel, &opts);
        let includes = visit::find_includes(&text, &file);
        let first = rewrite::FirstIds {
            site: found.next_ids[pi],
            func: found.next_fns[pi],
        };
        found.next_fns[pi] += sites.contexts.len() as u32;
        found.next_ids[pi] += sites.sites.len() as u32;
        let extern_at =
            (src.crate_root && src.edition == "2015").then(|| after_inner_attrs(&text, &file));
        let lines_key = file_lines_key(&sel, skip_accessors, inv.entry_all, &sites);
        let known = found.caches.cache.get(&rel, &hash, &lines_key).cloned();
        let outcome_known = known.is_some();
        let ex = known.unwrap_or_default();
        found.files.push(FileWork {
            rel,
            pkg: pi,
            text,
            hash,
            lines_key,
            sites,
            first,
            extern_at,
            crate_root: src.crate_root,
            targets: src.targets.clone(),
            ex,
            outcome_known,
            rewritten: None,
            notes: Vec::new(),
            includes,
        });
    }
    Ok(())
}

/// What a file's site set depends on besides its text: the line selection, --skip-accessors,
/// --entry all and the skip patterns that matched.
fn file_lines_key(
    sel: &LineSel,
    skip_accessors: bool,
    entry_all: bool,
    sites: &FileSites,
) -> String {
    let mut key = lines_key(sel);
    if skip_accessors {
        key.push_str("+skip-accessors");
    }
    if entry_all {
        key.push_str("+entry-all");
    }
    let by_pattern: Vec<&str> = sites
        .contexts
        .iter()
        .filter(|c| c.skipped.as_deref().is_some_and(skip::is_pattern_reason))
        .map(|c| c.func.as_str())
        .collect();
    if !by_pattern.is_empty() {
        key.push_str("+skip=");
        key.push_str(&repair::content_hash(by_pattern.join(",").as_bytes()));
    }
    key
}

/// Stages 3-4's result.
enum Built {
    /// The copy compiled.
    Compiled(Compiled),
    /// It did not, and repair could take nothing more out: the exit code.
    Failed(i32),
}

struct Compiled {
    outcome: Outcome,
    rounds: usize,
    repair_rounds: usize,
    t_build: std::time::Duration,
}

/// Stages 3-4: write the copy and build it; on errors in rewritten code, take out what caused
/// them and go again.
fn build_until_it_compiles(
    inv: &Invocation,
    setup: &Setup,
    found: &mut Found,
    mut early: Option<EarlyRound<'_>>,
) -> Result<Built> {
    let packages = setup.packages();
    let runtime_dir = setup.lp.join("runtime");
    let mut round = 0;
    let mut repair_rounds = 0;
    let mut kind = RoundKind::Build;
    let mut checked = false;
    let incremental = incremental_checks(inv, &setup.ws);
    let build_start = Instant::now();
    loop {
        round += 1;
        progress::round_start(round, kind == RoundKind::Check);
        let round_start = Instant::now();
        rewrite_files(found);
        redirect_includes(&mut found.files, &setup.ws.root, &setup.lp)?;
        let manifests = write_copy(
            &setup.ws,
            &packages,
            found,
            &setup.lp,
            &setup.copy,
            &runtime_dir,
        )?;
        let early_out = early.take().and_then(|e| e.finish(&manifests, inv.verbose));
        let out = match early_out {
            Some(out) => out?,
            None => build_round(
                inv,
                &setup.ws,
                &setup.cwd,
                &setup.copy,
                &setup.lp,
                Round {
                    kind,
                    incremental: incremental.as_deref(),
                    gate: None,
                },
            )?,
        };
        if out.success && kind == RoundKind::Check {
            // It type-checks: now the user's command, with code generation. The repair
            // outcome is known: the captures are listed plainly, as the next build lists them
            // (a checked list, one call per capture, made ryu's compile at every line 18%
            // more instructions).
            for f in found.files.iter_mut() {
                f.outcome_known = true;
            }
            checked = true;
            kind = RoundKind::Build;
            continue;
        }
        if out.success {
            if checked && incremental.is_some() {
                // The check rounds' incremental state (hundreds of MB on a large crate) is
                // of no use to the next build, which remembers the repairs.
                for dir in profile_dirs(inv, &setup.lp) {
                    let _ = std::fs::remove_dir_all(dir.join("incremental"));
                }
            }
            return Ok(Built::Compiled(Compiled {
                outcome: out,
                rounds: round,
                repair_rounds,
                t_build: build_start.elapsed(),
            }));
        }
        log_repair_errors(round, kind, &out, &found.files);
        let progress = judge_errors(&out, &mut found.files, packages.len());
        if !progress && kind == RoundKind::Check && round < MAX_ROUNDS {
            // Nothing a repair can take out: the user's command says what is wrong, as cargo
            // would (and a build does not depend on the checker's incremental state).
            if inv.verbose {
                eprintln!("lprobe: the check found nothing to repair; building instead");
                for line in out.rendered_errors.iter().chain(&out.stderr) {
                    eprintln!("{}", line.trim_end());
                }
            }
            checked = true;
            kind = RoundKind::Build;
            continue;
        }
        if !progress || round >= MAX_ROUNDS {
            // Keep what was learned: the next build starts from it.
            found.caches.save(&found.files, false)?;
            return give_up(&out, progress, &setup.copy).map(Built::Failed);
        }
        repair_rounds += 1;
        kind = next_round_kind(inv, kind, checked, check_pays(&out, &setup.ws, inv));
        let mut codes: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, e) in &out.errors {
            *codes
                .entry(e.code.as_deref().unwrap_or("other"))
                .or_default() += 1;
        }
        let codes: Vec<String> = codes.iter().map(|(c, n)| format!("{c} {n}")).collect();
        let next = match kind {
            RoundKind::Build => "rebuilding",
            RoundKind::Check => "checking",
        };
        progress::repairing(repair_rounds, out.errors.len(), &codes.join(", "), next);
        if inv.verbose {
            eprintln!(
                "lprobe: repair round {repair_rounds}: {} errors in rewritten code ({}) after {:.1}s, {next}",
                out.errors.len(),
                codes.join(", "),
                round_start.elapsed().as_secs_f64()
            );
        }
    }
}

/// A package's Rust library (target index, crate name): a `lib`, `rlib` or `dylib` its
/// binaries, tests, examples and benches link (not a `cdylib` or `staticlib` alone).
fn rust_lib(pkg: &Package) -> Option<(usize, String)> {
    pkg.targets
        .iter()
        .enumerate()
        .find_map(|(i, t)| t.is_rust_lib().then(|| (i, t.crate_name())))
}

/// Which crate holds the table for the crate whose root is `f` (`rewrite::Host`): the
/// package's library for the crates that link it, the crate itself otherwise.
fn host_of(f: &FileWork, lib: Option<&(usize, String)>) -> rewrite::Host {
    match lib {
        Some((ti, name)) if !f.targets.contains(ti) => rewrite::Host::Lib(name.clone()),
        _ => rewrite::Host::Own,
    }
}

/// Rewrites every file with what repair has taken out so far.
fn rewrite_files(found: &mut Found) {
    let mut crate_flags = crate_flags_ok(&found.files, &found.unparsed_root);
    // Output bridges need the `tracing`/`log` the build resolves to as a dependency of the
    // crate holding them, under a name of their own; cargo refuses a package depending on
    // one package under two names (a package using `tracing` itself): such a package keeps
    // its sites crate.
    for (pi, ok) in crate_flags.iter_mut().enumerate() {
        *ok &= found.bridges.get(pi).is_none_or(Vec::is_empty);
    }
    found.in_crate = crate_flags.clone();
    for f in found.files.iter_mut() {
        let flags = if crate_flags[f.pkg] {
            let host = host_of(f, found.libs.get(f.pkg).and_then(Option::as_ref));
            rewrite::FlagsHome::Crate {
                define: f.crate_root.then(|| {
                    (
                        found.next_ids[f.pkg],
                        found.next_fns[f.pkg],
                        found.access,
                        host,
                    )
                }),
            }
        } else {
            rewrite::FlagsHome::SitesCrate
        };
        f.rewrite(flags);
    }
}

/// Judges every error located in a rewritten file (`repair::judge`); whether anything was
/// taken out or stepped down.
fn judge_errors(out: &Outcome, files: &mut [FileWork], n_packages: usize) -> bool {
    let mut progress = false;
    let by_rel: HashMap<String, usize> = files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.rel.clone(), i))
        .collect();
    // An error in a crate flags module changes how every file of its package is rewritten:
    // that package's other errors wait for the next round.
    let module_failed: HashSet<usize> = out
        .errors
        .iter()
        .filter_map(|(file, err)| {
            let f = &files[*by_rel.get(file)?];
            in_crate_module(f, err).then_some(f.pkg)
        })
        .collect();
    // Per package: a short type name is unique within one compiler run only.
    let not_debug: Vec<HashSet<String>> = (0..n_packages)
        .map(|pi| {
            repair::not_debug_types(out.errors.iter().filter_map(|(file, e)| {
                let f = &files[*by_rel.get(file)?];
                (f.pkg == pi).then_some(e)
            }))
        })
        .collect();
    for (file, err) in &out.errors {
        let Some(&i) = by_rel.get(file) else {
            continue;
        };
        if module_failed.contains(&files[i].pkg) && !in_crate_module(&files[i], err) {
            continue;
        }
        let f = &mut files[i];
        let Some(rw) = &f.rewritten else { continue };
        let action = repair::judge(err, &f.sites, rw, &mut f.ex, &not_debug[f.pkg]);
        if let Action::Demote { .. } = action {
            // Not a loss: the binding is still captured (see `rewrite::Form`).
            progress = true;
        } else if action != Action::None {
            progress = true;
            let what = describe(&action, &f.sites);
            let note = format!(
                "{}: {} ({}{})",
                f.rel,
                what,
                err.code
                    .as_deref()
                    .map(|c| format!("{c}: "))
                    .unwrap_or_default(),
                err.message
            );
            if !f.notes.contains(&note) {
                f.notes.push(note);
            }
        }
    }
    progress
}

/// The build failed and repair can do no more: prints why, returns the exit code (or the
/// error for a failure of lprobe's own code).
fn give_up(out: &Outcome, progress: bool, copy: &Path) -> Result<i32> {
    for r in &out.rendered_errors {
        progress::eprint_raw(r);
    }
    for l in &out.stderr {
        eprintln!("{l}");
    }
    if out.internal {
        bail!("lprobe's generated runtime or site table failed to compile (a bug in lprobe {}, please report it with the errors above)", env!("CARGO_PKG_VERSION"));
    }
    if progress {
        bail!("the instrumented build still fails after {MAX_ROUNDS} repair rounds; the errors above are from the rewritten copy in {}", copy.display());
    }
    progress::message(failure(out));
    Ok(101)
}

/// What [`give_up`] says of a failed build that repair could not help.
fn failure(out: &Outcome) -> &'static str {
    if out.rendered_errors.is_empty() {
        "error: cargo failed before compiling (see its message above)"
    } else if out.errors.is_empty() && out.spanless {
        "error: the build failed at a step that names no line of code (above: the linker, or the compiler about a whole crate); if the same `cargo` command without lprobe succeeds, lprobe caused it: please report it with the messages above"
    } else {
        "error: the build failed; the errors above are in your code (lprobe's probes were not the cause)"
    }
}

/// Whether a compiler message names no line of code: no span, and not rustc's closing
/// "aborting due to …" summary.
fn names_no_line(m: &serde_json::Value) -> bool {
    let no_span = m
        .get("spans")
        .and_then(|s| s.as_array())
        .is_none_or(|s| s.is_empty());
    let text = m.get("message").and_then(|t| t.as_str()).unwrap_or("");
    no_span && !text.starts_with("aborting due to")
}

/// Stage 5: remember what each file needed, stamp the copy, report, hand over to cargo.
fn finish(
    inv: &Invocation,
    setup: Setup,
    fresh: Freshness,
    mut found: Found,
    built: Compiled,
    t0: Instant,
) -> Result<i32> {
    found.caches.save(&found.files, true)?;
    let packages = setup.packages();
    let reports = reports(&packages, &found.files);
    let notes: Vec<String> = found
        .files
        .iter()
        .flat_map(|f| f.notes.iter().cloned())
        .collect();
    let phases = format!(
        "lprobe: phases: metadata {:.2}s, parse+find {:.2}s ({} lines, {:.0} lines/s), build {:.2}s ({} rounds, {} repair), total {:.2}s",
        found.t_metadata.as_secs_f64(),
        found.t_parse.as_secs_f64(),
        found.total_lines,
        found.total_lines as f64 / found.t_parse.as_secs_f64().max(1e-9),
        built.t_build.as_secs_f64(),
        built.rounds,
        built.repair_rounds,
        t0.elapsed().as_secs_f64()
    );
    // Best effort: without a stamp the next build only takes the full path.
    if let Ok(copy_state) = stamp::walk_copy(&setup.lp) {
        let _ = stamp::save(
            &setup.stamp_path(),
            &Stamp {
                key: fresh.key,
                tree: fresh.tree,
                copy: copy_state,
                reports: serde_json::to_value(&reports).unwrap_or_default(),
                notes: notes.clone(),
                warnings: found.warnings,
            },
        );
    }
    let json_out = report(inv, &setup.lp, &built.outcome, &reports, &notes, &phases)?;
    if let Some(hint) = repairs_hint(built.repair_rounds, inv.repairs.is_some()) {
        progress::status("Note", &hint);
    }
    setup.hand_over(inv, json_out)
}

/// After a build that took several repair rounds (a first build: an edit usually takes one),
/// without `--repairs`: how to spare a fresh machine (CI) those rounds.
fn repairs_hint(repair_rounds: usize, has_file: bool) -> Option<String> {
    (repair_rounds >= 2 && !has_file).then(|| {
        format!(
            "{repair_rounds} repair rounds found what the probes could not keep; this machine \
             remembers it, and `--repairs lprobe-repairs.json` also writes it to a file to \
             commit, so that a fresh machine (CI) runs none"
        )
    })
}

/// Points `include_str!`/`include_bytes!` of a file lprobe rewrites at a copy of the original
/// in `target/lprobe/orig/` (the literal is replaced by that absolute path, on its line): a
/// test that includes its crate's source (to check what a README quotes, say) reads what the
/// user wrote, not the probes.
fn redirect_includes(files: &mut [FileWork], root: &Path, lp: &Path) -> Result<()> {
    let rewritten: HashSet<String> = files
        .iter()
        .filter(|f| !f.ex.file_original)
        .map(|f| f.rel.clone())
        .collect();
    for f in files.iter_mut() {
        let dir = f.rel.rsplit_once('/').map_or("", |(d, _)| d);
        for (range, value) in &f.includes {
            if Path::new(value).is_absolute() {
                continue;
            }
            // (A path out of the workspace keeps its `..` and is no rewritten file.)
            let target = normalize(&format!("{dir}/{value}"));
            if !rewritten.contains(&target) {
                continue;
            }
            let original =
                std::fs::read(root.join(&target)).with_context(|| format!("reading {target}"))?;
            let orig = lp.join("orig").join(&target);
            write_if_changed(&orig, &original)?;
            if let Some(rw) = &mut f.rewritten {
                rw.replace(range.clone(), &format!("{:?}", orig.display().to_string()));
            }
        }
    }
    Ok(())
}

/// Takes `target/lprobe/.lock` for this run, waiting (and saying so) while another run of
/// `cargo lprobe` on the same target directory holds it: two runs would interleave their
/// copies, and a stamp could describe the other run's.
fn lock_copy(lp: &Path) -> Result<std::fs::File> {
    std::fs::create_dir_all(lp).with_context(|| format!("creating {}", lp.display()))?;
    let path = lp.join(".lock");
    let file =
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            progress::status(
                "Blocking",
                &format!("waiting for another cargo lprobe run on {}", lp.display()),
            );
            file.lock()
                .with_context(|| format!("locking {}", path.display()))?;
        }
        Err(std::fs::TryLockError::Error(e)) => {
            // A file system without locks: go on unlocked, as before.
            eprintln!("lprobe: warning: cannot lock {}: {e}", path.display());
        }
    }
    Ok(file)
}

/// After a successful build: what the build said (warnings), the summary and the report.
/// Returns whether cargo's messages go out as JSON.
fn report(
    inv: &Invocation,
    lp: &Path,
    outcome: &Outcome,
    reports: &[PkgReport],
    notes: &[String],
    phases: &str,
) -> Result<bool> {
    progress::clear();
    let json_out = inv
        .message_format
        .as_deref()
        .is_some_and(|m| m.starts_with("json"));
    if json_out {
        let mut so = std::io::stdout().lock();
        for l in &outcome.stdout_lines {
            let _ = writeln!(so, "{l}");
        }
    } else {
        for r in &outcome.rendered_warnings {
            progress::eprint_raw(r);
        }
    }
    print_summary(reports, notes, inv.verbose);
    if inv.verbose {
        eprintln!("{phases}");
        // What the compiler wrapper did with the runtime in this build.
        let log = std::fs::read_to_string(lp.join("runtime-cache.log")).unwrap_or_default();
        if let Some(said) = runtime_outcome(&log) {
            eprintln!("lprobe: runtime: {said}");
        }
    }
    if inv.report == Report::Json {
        let text = serde_json::to_string_pretty(reports)?;
        write_if_changed(&lp.join("report.json"), text.as_bytes())?;
        println!("{text}");
    }

    Ok(json_out)
}

/// Stage 5: for `run`, `test` and `bench`, cargo itself in the copy.
fn hand_over(
    inv: &Invocation,
    ws: &Workspace,
    cwd: &Path,
    copy: &Path,
    lp: &Path,
    json_out: bool,
) -> Result<i32> {
    match inv.sub {
        Sub::Build | Sub::Check => {
            if !json_out {
                let dir = lp.join(&inv.profile);
                progress::status("Artifacts", &format!("in {}", dir.display()));
            }
            Ok(0)
        }
        Sub::Test | Sub::Bench if inv.no_run() => Ok(0),
        Sub::Run | Sub::Test | Sub::Bench => {
            let mut cmd = cargo_command(inv, ws, cwd, copy, lp, inv.sub.name(), &inv.cargo_args);
            if let Some(m) = &inv.message_format {
                cmd.arg(format!("--message-format={m}"));
            }
            if !inv.trailing.is_empty() {
                cmd.arg("--").args(&inv.trailing);
            }
            let status = cmd.status().context("running cargo")?;
            Ok(status.code().unwrap_or(101))
        }
    }
}

/// What the compiler wrapper's log (`hit NAME` / `miss NAME` lines, one per runtime crate
/// compiled or replayed in this build) says, for `-v`; `None` when cargo compiled none.
fn runtime_outcome(log: &str) -> Option<String> {
    let of = |what: &str| -> Vec<&str> {
        log.lines()
            .filter_map(|l| l.strip_prefix(what)?.strip_prefix(' '))
            .collect()
    };
    let (hits, misses) = (of("hit"), of("miss"));
    let taken = format!("taken from the cache ({})", hits.join(", "));
    let compiled = format!(
        "compiled, and cached for later builds ({})",
        misses.join(", ")
    );
    match (hits.is_empty(), misses.is_empty()) {
        (true, true) => None,
        (false, true) => Some(taken),
        (true, false) => Some(compiled),
        (false, false) => Some(format!("{taken}; {compiled}")),
    }
}

/// Writes the repair outcome of every file (keyed by its content and line selection).
fn save_cache(
    cache: &mut Cache,
    files: &[FileWork],
    path: &Path,
    shared: Option<&Path>,
    repairs: Option<&Path>,
) -> Result<()> {
    for f in files {
        cache.put(
            &f.rel,
            repair::CacheEntry {
                hash: f.hash.clone(),
                lines: f.lines_key.clone(),
                exclusions: f.ex.clone(),
            },
        );
    }
    if let Some(s) = shared {
        // Best effort: the machine-wide copy only saves time.
        let _ = cache.save(s);
    }
    if let Some(r) = repairs {
        // Only this workspace's files, so the file holds nothing stale from elsewhere.
        let mine = Cache {
            files: cache
                .files
                .iter()
                .filter(|(f, _)| files.iter().any(|w| &w.rel == *f))
                .map(|(f, e)| (f.clone(), e.clone()))
                .collect(),
            ..Cache::default()
        };
        mine.save(r).with_context(|| {
            format!("writing the repair outcomes to {} (--repairs)", r.display())
        })?;
    }
    cache.save(path)
}

fn describe(a: &Action, sites: &FileSites) -> String {
    let at = |i: &usize| {
        sites
            .sites
            .get(*i)
            .map(|s| format!("line {}", s.line))
            .unwrap_or_default()
    };
    let func = |c: &usize| {
        sites
            .contexts
            .get(*c)
            .map(|c| c.func.clone())
            .unwrap_or_default()
    };
    match a {
        Action::DropCapture { site, name } => format!("{}: dropped capture '{name}'", at(site)),
        Action::DropVarFrom { site, name } => {
            format!("{}: dropped capture '{name}' from here on", at(site))
        }
        Action::DropSite { site } => format!("{}: dropped the probe", at(site)),
        Action::FnNoCaptures { context } => format!("{}: no captures", func(context)),
        Action::FnNoProbes { context } => format!("{}: no probes", func(context)),
        Action::NoRecall { context } => format!("{}: timed by a guard", func(context)),
        Action::NoTwice { context } => format!("{}: one body", func(context)),
        Action::NoOneCall { context } => format!("{}: two entry calls", func(context)),
        Action::Demote { site, name, to } => {
            format!("{}: '{name}' captured as {to:?}", at(site))
        }
        Action::NoCrateFlags => "flags read from the sites crate".into(),
        Action::FileOriginal => "file left as written".into(),
        Action::None => "nothing".into(),
    }
}

/// Writes the mirror, the runtime and the sites crates.
fn write_copy(
    ws: &Workspace,
    packages: &[&Package],
    found: &Found,
    lp: &Path,
    copy: &Path,
    runtime_dir: &Path,
) -> Result<HashMap<PathBuf, Vec<u8>>> {
    let (files, bridges) = (&found.files, &found.bridges);
    let hot_dir = runtime_dir.join(crate::build::runtime_src::HOT_DIR);
    // Each package's table and cold calls: in the crates that hold them (`host_module`), or
    // in its sites crate. The AVX-512 registers are saved for every package when any source
    // may enable AVX-512 per function: a package's generic or inlined code can end up in
    // another's.
    let upper = files
        .iter()
        .any(|f| sites_crate::may_enable_avx512(&f.text));
    let mut calls: Vec<sites_crate::ByValueCalls> = packages
        .iter()
        .map(|_| sites_crate::ByValueCalls {
            upper,
            ..Default::default()
        })
        .collect();
    for f in files {
        if let (Some(rw), Some(c)) = (&f.rewritten, calls.get_mut(f.pkg)) {
            c.scan(&rw.text);
        }
    }
    let mut hosts: Vec<Option<String>> = vec![None; packages.len()];
    for (pi, pkg) in packages.iter().enumerate() {
        let mut rows: Vec<SiteRow> = Vec::new();
        let mut skipped: Vec<SkippedRow> = Vec::new();
        let mut fns = 0;
        let mut hashes = Vec::new();
        let callers = callers_by_name(files.iter().filter(|f| f.pkg == pi));
        for f in files.iter().filter(|f| f.pkg == pi) {
            hashes.push((f.rel.clone(), f.hash.clone()));
            file_rows(f, &callers, &mut rows, &mut skipped);
            fns = fns.max(f.first.func as usize + f.sites.contexts.len());
        }
        let pkg_dir = pkg
            .dir
            .strip_prefix(&ws.root)
            .map(rel_string)
            .unwrap_or_default();
        let contents = sites_crate::Contents {
            package: &pkg.name,
            dir: &pkg_dir,
            rows: &rows,
            fns,
            files: &hashes,
            skipped: &skipped,
            access: found.access,
            calls: &calls[pi],
        };
        let dir = lp.join("sites").join(&pkg.name);
        if found.in_crate.get(pi).copied().unwrap_or(false) {
            let items = dir.join("host.rs");
            write_if_changed(&items, sites_crate::host_items(&contents).as_bytes())?;
            hosts[pi] = Some(sites_crate::host_module(&items.display().to_string()));
            continue;
        }
        let bridges = bridges.get(pi).map_or(&[][..], Vec::as_slice);
        write_if_changed(
            &dir.join("Cargo.toml"),
            sites_crate::manifest(&pkg.name, &hot_dir.display().to_string(), bridges).as_bytes(),
        )?;
        write_if_changed(
            &dir.join("lib.rs"),
            sites_crate::source(&contents, bridges).as_bytes(),
        )?;
    }
    let mut overrides: HashMap<PathBuf, Vec<u8>> = HashMap::new();
    for f in files {
        if let Some(rw) = &f.rewritten {
            let mut text = rw.text.clone();
            // A root that holds its package's table: after its flags module.
            if let (Some(_), Some(Some(host))) = (&rw.crate_module, hosts.get(f.pkg)) {
                let lib = found.libs.get(f.pkg).and_then(Option::as_ref);
                if host_of(f, lib) == rewrite::Host::Own {
                    text.push_str(host);
                }
            }
            overrides.insert(PathBuf::from(&f.rel), text.into_bytes());
        }
    }
    let in_crate: Vec<bool> = hosts.iter().map(Option::is_some).collect();
    let manifests = manifest_overrides(ws, packages, &in_crate, lp, &hot_dir)?;
    overrides.extend(manifests.iter().map(|(k, v)| (k.clone(), v.clone())));
    mirror(
        &ws.root,
        copy,
        &[ws.target_dir.clone(), lp.to_path_buf()],
        &overrides,
    )?;
    write_runtime(runtime_dir)?;
    Ok(manifests)
}

/// The copy's manifests (relative path to text): every member's (paths, and the crate its
/// generated code names: the runtime's hot path when its crates hold its table, `in_crate`,
/// else its sites crate), and the root's.
fn manifest_overrides(
    ws: &Workspace,
    packages: &[&Package],
    in_crate: &[bool],
    lp: &Path,
    hot_dir: &Path,
) -> Result<HashMap<PathBuf, Vec<u8>>> {
    let mut overrides = HashMap::new();
    // Manifests: every member's (paths), and the root's.
    let mut manifests: Vec<(PathBuf, Option<usize>)> = ws
        .members
        .iter()
        .map(|m| {
            let pi = packages.iter().position(|p| p.manifest == m.manifest);
            (m.manifest.clone(), pi)
        })
        .collect();
    let root_manifest = ws.root.join("Cargo.toml");
    if !manifests.iter().any(|(m, _)| *m == root_manifest) && root_manifest.exists() {
        manifests.push((root_manifest, None));
    }
    for (m, pi) in manifests {
        let text =
            std::fs::read_to_string(&m).with_context(|| format!("reading {}", m.display()))?;
        let dir = m.parent().unwrap_or(&ws.root);
        // The crate the package's generated code names: its sites crate, or the runtime's
        // hot path when its crates hold the table.
        let dep = pi.map(|pi| {
            if in_crate.get(pi).copied().unwrap_or(false) {
                crate::build::manifest::Dep {
                    name: rewrite::RUNTIME_DEP,
                    package: crate::build::runtime_src::HOT_PACKAGE.to_owned(),
                    path: hot_dir.to_path_buf(),
                }
            } else {
                crate::build::manifest::Dep {
                    name: rewrite::SITES_CRATE,
                    package: sites_crate::package_name(&packages[pi].name),
                    path: lp.join("sites").join(&packages[pi].name),
                }
            }
        });
        let edited = crate::build::manifest::edit(
            &text,
            dir,
            &ws.root,
            dep.as_ref(),
            m == ws.root.join("Cargo.toml"),
        )?;
        if let Ok(rel) = m.strip_prefix(&ws.root) {
            overrides.insert(rel.to_path_buf(), edited.into_bytes());
        }
    }
    Ok(overrides)
}

/// The runtime's sources, and its hot path's, in `runtime_dir`.
fn write_runtime(runtime_dir: &Path) -> Result<()> {
    let hot_dir = runtime_dir.join(crate::build::runtime_src::HOT_DIR);
    for (name, content) in crate::build::runtime_src::FILES {
        write_if_changed(&runtime_dir.join("src").join(name), content.as_bytes())?;
    }
    write_if_changed(
        &runtime_dir.join("Cargo.toml"),
        crate::build::runtime_src::manifest().as_bytes(),
    )?;
    write_if_changed(
        &hot_dir.join("src/lib.rs"),
        crate::build::runtime_src::HOT_LIB.as_bytes(),
    )?;
    write_if_changed(
        &hot_dir.join("Cargo.toml"),
        crate::build::runtime_src::hot_manifest().as_bytes(),
    )?;
    Ok(())
}

/// One file's rows of its package's site table (`rows`), and the line ranges of its functions
/// without sites with the reason (`skipped`).
fn file_rows(
    f: &FileWork,
    callers: &HashMap<&str, Vec<(&str, bool)>>,
    rows: &mut Vec<SiteRow>,
    skipped: &mut Vec<SkippedRow>,
) {
    let without = fns_without_sites(f);
    for (c, why) in &without {
        // Nested functions that have sites are not part of this one's lines.
        let nested: Vec<(u32, u32)> = f
            .sites
            .contexts
            .iter()
            .filter(|n| {
                n.start > c.start
                    && n.end <= c.end
                    && !without.iter().any(|(w, _)| std::ptr::eq(*w, *n))
            })
            .map(|n| (n.line, n.last_line))
            .collect();
        let mut segments = line_segments(c.line, c.last_line, &nested);
        if segments.is_empty() {
            // Still listed, so that `fn:` patterns find it.
            segments.push((c.line, c.line));
        }
        let why = if [
            visit::TINY_REASON,
            visit::REF_REASON,
            visit::INLINE_ALWAYS_REASON,
            visit::INLINE_HINT_REASON,
        ]
        .contains(why)
        {
            tiny_reason(why, &c.func, callers)
        } else if *why == visit::ITERATOR_REASON {
            iterator_reason(&c.func, f, &without)
        } else {
            (*why).to_owned()
        };
        for (first_line, last_line) in segments {
            skipped.push(SkippedRow {
                path: f.rel.clone(),
                first_line,
                last_line,
                func: c.func.clone(),
                why: why.clone(),
            });
        }
    }
    let placed: BTreeMap<usize, &rewrite::Placed> = f
        .rewritten
        .iter()
        .flat_map(|rw| rw.placed.iter())
        .map(|p| (p.site, p))
        .collect();
    let lines: Vec<&str> = f.text.lines().collect();
    for (i, s) in f.sites.sites.iter().enumerate() {
        let (kind, names, timed) = match placed.get(&i) {
            Some(p) => (
                s.kind.as_str(),
                p.captures.iter().map(|(n, _)| n.clone()).collect(),
                p.timed,
            ),
            None => ("none", Vec::new(), false),
        };
        // A timed entry's call is seen to return (its guard, or `again`'s timer), so it can
        // be a frame; an async fn's is not a frame of the polling thread.
        let is_async = f.sites.contexts.get(s.context).is_some_and(|c| c.is_async);
        let frame = timed && kind == "entry" && !is_async;
        rows.push(SiteRow {
            path: f.rel.clone(),
            line: s.line,
            col: s.col,
            func: s.func.clone(),
            kind,
            names,
            fn_slot: f.first.func + s.context as u32,
            timed,
            frame,
            text: (s.line as usize)
                .checked_sub(1)
                .and_then(|i| lines.get(i))
                .map_or_else(String::new, |l| sites_crate::line_text(l)),
        });
    }
}

/// The compiler cargo runs.
fn rustc() -> String {
    std::env::var("RUSTC")
        .ok()
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "rustc".to_owned())
}

/// The build's one `--target` (or `CARGO_BUILD_TARGET`), if it names one; with several, a
/// target no one has (`rustc` fails to answer, so no target cfg is decided).
fn build_target(inv: &Invocation) -> Option<String> {
    let given: Vec<&str> = cargo_args(&inv.cargo_args)
        .into_iter()
        .filter(|a| a.name == "--target")
        .filter_map(|a| a.value)
        .collect();
    match given.as_slice() {
        [] => std::env::var("CARGO_BUILD_TARGET").ok(),
        [one] => Some((*one).to_owned()),
        _ => Some(String::new()),
    }
}

/// For each called name, the functions that call it (by name: a method call `.len()` names
/// every `len`), in source order, each with whether it has sites.
fn callers_by_name<'f>(
    files: impl Iterator<Item = &'f FileWork>,
) -> HashMap<&'f str, Vec<(&'f str, bool)>> {
    let mut by_name: HashMap<&str, Vec<(&str, bool)>> = HashMap::new();
    for f in files {
        for c in &f.sites.contexts {
            for (name, _) in &c.calls {
                by_name
                    .entry(name.as_str())
                    .or_default()
                    .push((c.func.as_str(), c.skipped.is_none()));
            }
        }
    }
    by_name
}

/// Functions that would keep a timing guard time their calls by calling themselves again
/// instead (no guard on the dormant path: its check on every return path kept medium
/// functions from being inlined) when they are public or have more than one use in their
/// crate: one call site, or one calling function for a generic one ([`CallCounts`]). A
/// function with one use keeps the guard: LLVM inlines a local function with a single call
/// site whatever its size, and the second call would take that away (measured on bench-mix);
/// a private generic one with two call sites gets `#[inline]` instead
/// (`visit::Site::inline_hint`). So does a large `pub` function that
/// no other crate can reach (in a private module, not re-exported by a `pub use`) with one
/// call site in its package (ryu's `d2d`): small ones are inlined for their size either way,
/// and the guard would cost them more than the second call (ryu's `decimal_length17`).
///
/// Calls in code the build leaves out do not count: each caller's `#[cfg]`s are decided for
/// `target`, and of calls under cfgs it leaves open, the most any one build compiles count
/// (`cfg::most`).
fn promote_recalls(files: &mut [FileWork], target: &cfg::Target) {
    let packages: std::collections::BTreeSet<usize> = files.iter().map(|f| f.pkg).collect();
    for pkg in packages {
        // Calls are counted per target (crate): a function that is not `pub` outside its
        // crate can only be called from the crate's own files, so a binary's or a test's
        // `.parse()` is not a call of the library's private `parse`. Functions compiled only
        // into tests do not count either: they are not in the release build.
        let mut by_target: HashMap<usize, CallCounts> = HashMap::new();
        let mut reexports: HashSet<String> = HashSet::new();
        let mut names: HashMap<usize, CrateNames> = HashMap::new();
        for f in files.iter().filter(|f| f.pkg == pkg) {
            for &t in &f.targets {
                let n = names.entry(t).or_default();
                n.defined
                    .extend(f.sites.contexts.iter().map(|c| c.func.as_str()));
                for u in &f.sites.uses {
                    n.uses.entry(u.module.as_str()).or_default().push(u);
                }
            }
        }
        let none = CrateNames::default();
        for f in files.iter().filter(|f| f.pkg == pkg) {
            for &t in &f.targets {
                let counts = by_target.entry(t).or_default();
                let names = names.get(&t).unwrap_or(&none);
                for c in f.sites.contexts.iter().filter(|c| !c.test_only) {
                    counts.add(c, names, target);
                }
            }
            reexports.extend(f.sites.reexports.iter().cloned());
        }
        // The names of the package's functions called from one place.
        let mut once: HashSet<String> = HashSet::new();
        for f in files.iter_mut().filter(|f| f.pkg == pkg) {
            let targets = &f.targets;
            let visit::FileSites {
                sites, contexts, ..
            } = &mut f.sites;
            for s in sites.iter_mut() {
                let Some(c) = contexts.get(s.context) else {
                    continue;
                };
                let segs: Vec<&str> = c.func.split("::").collect();
                // The most any crate this file is compiled into calls it.
                let most = |count: Count| {
                    targets
                        .iter()
                        .filter_map(|t| by_target.get(t))
                        .map(|counts| counts.of(c, count))
                        .max()
                        .unwrap_or(0)
                };
                // Re-exported by name, or its type or a module on its path (`pub use
                // inner::Slab`, `pub use inner::*`).
                let reexported = segs
                    .iter()
                    .skip(1)
                    .any(|s| reexports.contains(*s) || reexports.contains(&format!("{s}::*")));
                // One use in the build: a function called from one place, or a generic one
                // called from one function (its calls there may be of several instantiations,
                // each of them called once).
                // A private function taking a closure is instantiated once per call site that
                // passes one: each instantiation is used once, as with one call.
                let uses = if c.takes_closure && !c.public {
                    most(Count::Sites).min(1)
                } else if c.generic {
                    most(Count::Callers)
                } else {
                    most(Count::Sites)
                };
                let private_once = !c.public && uses == 1;
                let large_crate_own_once =
                    c.large && !c.exported && !reexported && most(Count::Sites) == 1;
                let keeps_guard = private_once || large_crate_own_once;
                if s.kind == visit::SiteKind::Entry && keeps_guard {
                    once.insert(segs.last().copied().unwrap_or_default().to_owned());
                    // An `#[inline]` or small function called from one place is inlined there
                    // whatever a guard adds (LLVM's last-call bonus), and a guard passes no
                    // argument out of line: where it times its calls by calling itself again,
                    // the second call would cost it that bonus, and the call's closure takes
                    // the addresses its `&mut` arguments hold, which keeps the caller's locals
                    // in memory after inlining (lz4_flex's `count_same_bytes(input, &mut cur,
                    // …)` in the compressor's match loop). Not a `#[target_feature]` one:
                    // no caller without its features may inline it, so a guard would only add
                    // its cost to every call (memchr's `find_impl`: 1.009x -> 1.025x).
                    if !s.timed && s.recall.is_some() && !c.target_feature {
                        s.timed = true;
                        s.recall_guarded = s.recall.take();
                    }
                }
                if !keeps_guard && s.recall_guarded.is_some() {
                    s.recall = s.recall_guarded.take();
                    s.inline_hint = c.generic
                        && !c.public
                        && !c.large
                        && !c.inline_said
                        && most(Count::Sites) == 2;
                }
            }
        }
        // A loop body calling one of them is written once (`rewrite`'s loop bodies).
        for f in files.iter_mut().filter(|f| f.pkg == pkg) {
            for b in &mut f.sites.loop_bodies {
                b.calls_once = b.calls.iter().any(|n| once.contains(n));
            }
        }
    }
}

/// A loop re-reads its function's armed flag at each iteration when it may wait on the outside
/// world; when all it calls is functions by path, and each of them is a leaf of its crate (no
/// loop, no call: ryu's `div10`), it cannot, and the re-read goes: its function may then be
/// written twice, dormant and instrumented, instead of holding a check before every
/// statement. A name that some function with a loop or a call also has keeps the re-read.
fn drop_leaf_loop_rereads(files: &mut [FileWork]) {
    // Per (package, target, name): the leaf functions, less the names a non-leaf also has.
    let mut leaves: HashSet<(usize, usize, String)> = HashSet::new();
    let mut not_leaves: HashSet<(usize, usize, String)> = HashSet::new();
    for f in files.iter() {
        for &t in &f.targets {
            for c in &f.sites.contexts {
                let name = c.func.rsplit("::").next().unwrap_or(&c.func).to_owned();
                if c.leaf { &mut leaves } else { &mut not_leaves }.insert((f.pkg, t, name));
            }
        }
    }
    leaves.retain(|k| !not_leaves.contains(k));
    for f in files.iter_mut() {
        let (pkg, targets) = (f.pkg, &f.targets);
        f.sites.loops.retain(|l| {
            let Some(calls) = &l.calls else {
                return true;
            };
            let only_leaves =
                |&t: &usize| calls.iter().all(|n| leaves.contains(&(pkg, t, n.clone())));
            targets.is_empty() || !targets.iter().all(only_leaves)
        });
    }
}

/// One crate's functions by path, and the `use` items of each module: what a call through a
/// path names.
#[derive(Default)]
struct CrateNames<'f> {
    defined: HashSet<&'f str>,
    uses: HashMap<&'f str, Vec<&'f visit::UseItem>>,
}

impl CrateNames<'_> {
    /// The crate's functions a call of `path` (`FnContext::path_calls`) may be, each with
    /// the `#[cfg]`s of the `use` it goes through: the function at `path`, else the ones
    /// the `use` items of its module bring in by that name (`simd::f(…)` with `pub use
    /// self::swar::*;` and `pub use self::runtime::*;` in `simd`, under their cfgs). Empty
    /// when none is the crate's (a function of another crate, or through more than one
    /// `use`): the call is then counted by its name.
    fn resolve(&self, path: &str) -> Vec<(String, Option<&cfg::Pred>)> {
        if self.defined.contains(path) {
            return vec![(path.to_owned(), None)];
        }
        let Some((module, name)) = path.rsplit_once("::") else {
            return Vec::new();
        };
        self.uses
            .get(module)
            .into_iter()
            .flatten()
            .filter_map(|u| match &u.name {
                Some(n) if n == name => Some((u.target.clone(), Some(&u.cfg))),
                Some(_) => None,
                None => Some((format!("{}::{name}", u.target), Some(&u.cfg))),
            })
            .filter(|(p, _)| self.defined.contains(p.as_str()))
            .collect()
    }
}

/// How one crate calls functions, by name: the functions that call each name, and the call
/// expressions, each under its caller's `#[cfg]`s.
#[derive(Default)]
struct CallCounts {
    /// Keyed by a function's name (a call by a bare name or a module path that is not of a
    /// function the crate has there), by `.name` (calls that may be of a method), or by a
    /// path (calls whose callee the syntax names: `FnContext::own_calls`, and
    /// `FnContext::path_calls` of a function the crate has). Each count is under the
    /// predicate `preds[i]` of its caller (or of the caller and the `use` the call goes
    /// through): `(i, calls)`, one entry per calling function.
    sites: HashMap<String, Vec<(usize, u32)>>,
    preds: Vec<cfg::Pred>,
    /// `of`'s answers per (what is counted, key).
    memo: std::cell::RefCell<HashMap<(Count, String), u32>>,
}

/// What [`CallCounts::of`] counts.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Count {
    /// Call expressions.
    Sites,
    /// Calling functions (one per caller, however many calls it makes).
    Callers,
}

impl CallCounts {
    /// Counts `c`'s calls: a call whose callee the syntax names under that function's path
    /// (`FnContext::own_calls`: `m::T::f`; `FnContext::path_calls` when `defined` says the
    /// crate has a function there), any other by its name alone.
    fn add<'c>(&mut self, c: &'c visit::FnContext, names: &CrateNames<'_>, target: &cfg::Target) {
        let last = |path: &'c str| path.rsplit("::").next().unwrap_or(path);
        let mut typed: HashMap<&str, u32> = HashMap::new();
        for (path, k) in &c.own_calls {
            *typed.entry(last(path)).or_default() += k;
        }
        let pred = self.preds.len();
        self.preds.push(c.cfg.decide(target));
        // Calls by path, each under the caller's cfgs and those of the `use` it goes
        // through; the names they are called by.
        let mut resolved: Vec<(String, u32, usize)> = Vec::new();
        let mut by_path: HashMap<&str, u32> = HashMap::new();
        for (path, k) in &c.path_calls {
            let found = names.resolve(path);
            if found.is_empty() {
                continue;
            }
            *by_path.entry(last(path)).or_default() += k;
            for (callee, via) in found {
                let p = match via {
                    None => pred,
                    Some(u) => {
                        self.preds.push(c.cfg.clone().and(u.clone()).decide(target));
                        self.preds.len() - 1
                    }
                };
                resolved.push((callee, *k, p));
            }
        }
        let methods: HashMap<&str, u32> = c
            .method_calls
            .iter()
            .map(|(n, k)| (n.as_str(), *k))
            .collect();
        // A bare name or a module path: every call of the name but those that may be of a
        // method and those counted by their path.
        let functions = c.calls.iter().map(|(name, n)| {
            let m = methods.get(name.as_str()).copied().unwrap_or(0);
            let p = by_path.get(name.as_str()).copied().unwrap_or(0);
            (name.clone(), n.saturating_sub(m).saturating_sub(p))
        });
        let methods = c.method_calls.iter().map(|(name, n)| {
            let t = typed.get(name.as_str()).copied().unwrap_or(0);
            (format!(".{name}"), n.saturating_sub(t))
        });
        let keyed = functions
            .chain(methods)
            .chain(c.own_calls.iter().cloned())
            .map(|(key, k)| (key, k, pred))
            .chain(resolved);
        for (key, k, p) in keyed {
            if k > 0 {
                self.sites.entry(key).or_default().push((p, k));
            }
        }
    }

    /// The calls of the function `func` (a path), `count` of them (callers or sites), the
    /// most one build compiles: by its name, and by its path.
    fn of(&self, c: &visit::FnContext, count: Count) -> u32 {
        let func = c.func.as_str();
        let name = func.rsplit("::").next().unwrap_or(func);
        // A method is called by method syntax or through a type; a function of a module by a
        // path or its bare name.
        let by_name = if c.method {
            format!(".{name}")
        } else {
            name.to_owned()
        };
        // Each key's most, once: many functions share a name (`new`), and `most` of calls
        // under open cfgs tries every assignment of them. (Summed over the two keys: a
        // function called both by its bare name and by its path is rare.)
        let mut memo = self.memo.borrow_mut();
        [by_name.as_str(), func]
            .into_iter()
            .map(|k| {
                *memo.entry((count, k.to_owned())).or_insert_with(|| {
                    let calls = self.sites.get(k).into_iter().flatten();
                    let n = |k: u32| if count == Count::Callers { 1 } else { k };
                    cfg::most(calls.map(|&(p, k)| (&self.preds[p], n(k))))
                })
            })
            .sum()
    }
}

/// An iterator's `next`'s reason, with the functions of its file that have sites and return
/// the iterator's type (`fn iter(&self) -> Iter<'_, T>`): where a loop over it starts.
fn iterator_reason(func: &str, f: &FileWork, without: &[(&visit::FnContext, &str)]) -> String {
    let mut parts = func.rsplit("::");
    let (Some(_), Some(ty)) = (parts.next(), parts.next()) else {
        return visit::ITERATOR_REASON.to_owned();
    };
    let names_ty = |ret: &str| {
        ret.split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .any(|w| w == ty)
    };
    let makers: Vec<String> = f
        .sites
        .contexts
        .iter()
        .filter(|c| !without.iter().any(|(w, _)| std::ptr::eq(*w, *c)))
        .filter(|c| names_ty(&c.ret))
        .take(2)
        .map(|c| format!("fn:{}", c.func))
        .collect();
    with_places(
        visit::ITERATOR_REASON,
        "functions that make it, to arm instead",
        &makers,
    )
}

/// `why`, and the places to arm instead (`fn:` patterns) if there are any: `"{why}; {what}:
/// {places}"`.
fn with_places(why: &str, what: &str, places: &[String]) -> String {
    if places.is_empty() {
        why.to_owned()
    } else {
        format!("{why}; {what}: {}", places.join(", "))
    }
}

/// A tiny (or `#[inline(always)]`) function's reason `why`, with the nearest places to arm
/// instead: up to two functions of the package with sites that call it, through callers
/// without sites (tiny ones) if need be.
fn tiny_reason(why: &str, func: &str, callers: &HashMap<&str, Vec<(&str, bool)>>) -> String {
    let name = |f: &str| f.rsplit("::").next().unwrap_or(f).to_owned();
    let mut found: Vec<String> = Vec::new();
    let mut seen: HashSet<String> = HashSet::from([func.to_owned()]);
    let mut level = vec![name(func)];
    // Three levels of callers at most: further up is no longer "near".
    for _ in 0..3 {
        let mut next = Vec::new();
        for n in &level {
            for (c, has_sites) in callers.get(n.as_str()).into_iter().flatten() {
                if !seen.insert((*c).to_owned()) {
                    continue;
                }
                if *has_sites {
                    found.push(format!("fn:{c}"));
                } else {
                    next.push(name(c));
                }
            }
        }
        if !found.is_empty() || next.is_empty() {
            break;
        }
        level = next;
    }
    found.truncate(2);
    with_places(why, "callers to arm instead", &found)
}

/// What one build round produced.
struct Outcome {
    success: bool,
    /// (workspace-relative file, error) for errors with a primary span.
    errors: Vec<(String, FileError)>,
    rendered_errors: Vec<String>,
    rendered_warnings: Vec<String>,
    stdout_lines: Vec<String>,
    /// Cargo's stderr, minus progress lines.
    stderr: Vec<String>,
    /// An error in lprobe's own generated crates (a bug in lprobe, not in the user's code).
    internal: bool,
    /// An error that names no line of code (the linker's, or one the compiler gives about
    /// the crate as a whole), besides the "aborting due to …" summaries.
    spanless: bool,
    /// A crate of the copy (a member's, not its build script) compiled in this round.
    member_compiled: bool,
    /// Members whose library failed to compile in this round (`failed_libs`).
    failed_libs: Vec<String>,
}

/// What a round runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RoundKind {
    /// The user's command (`build`, `test --no-run`, …).
    Build,
    /// `cargo check` over the same targets: type and borrow errors without code generation.
    Check,
}

/// The round after a failed one. A build round compiles every member that type-checks,
/// code generation included, and each repair rewrites files: a library that compiles while
/// its tests do not is compiled again in every round until they do (`just`'s: 72 s a round,
/// 7 s checked). So once a round compiled a member and failed after it, or failed in a
/// library that other crates of the command wait for (they are compiled, and may fail, only
/// after it), the rounds run `cargo check` over the same targets until the copy type-checks,
/// then the user's command once more. A round that failed in crates nothing waits for
/// repairs by building again: checking would cost the dependencies' check and a round that
/// passes. Build rounds when no check selects the same targets (`check_args`), and after a
/// check passed (a build that fails then fails for what checking cannot see).
fn next_round_kind(inv: &Invocation, last: RoundKind, checked: bool, pays: bool) -> RoundKind {
    match check_args(inv) {
        Some(_) if !checked && (last == RoundKind::Check || pays) => RoundKind::Check,
        _ => RoundKind::Build,
    }
}

/// Whether checking pays after this failed round (see `next_round_kind`): a member compiled
/// (not its build script, which repair never changes), or a member's library failed while the
/// command compiles crates that depend on it (`waiting_kinds`, or another member).
fn check_pays(out: &Outcome, ws: &Workspace, inv: &Invocation) -> bool {
    let kinds = waiting_kinds(inv);
    let waits = |p: &Package| {
        ws.members.len() > 1
            || p.targets
                .iter()
                .any(|t| t.kinds.iter().any(|k| kinds.contains(&k.as_str())))
    };
    out.member_compiled
        || ws
            .members
            .iter()
            .any(|p| out.failed_libs.contains(&p.name) && waits(p))
}

/// One of cargo's arguments as lprobe passes them on: an option's `name` (`--target`; `""`
/// for a positional argument such as a test name filter), its value (`--target=x` or, for
/// `VALUE_OPTIONS`, the next argument), and the arguments it was written as.
struct CargoArg<'a> {
    name: &'a str,
    value: Option<&'a str>,
    written: &'a [String],
}

/// `args` read as [`CargoArg`]s, in order.
fn cargo_args(args: &[String]) -> Vec<CargoArg<'_>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        let (name, value, n) = match a.split_once('=') {
            Some((name, value)) if name.starts_with('-') => (name, Some(value), 1),
            _ if !a.starts_with('-') => ("", Some(a), 1),
            _ if VALUE_OPTIONS.contains(&a) && i + 1 < args.len() => {
                (a, Some(args[i + 1].as_str()), 2)
            }
            _ => (a, None, 1),
        };
        out.push(CargoArg {
            name,
            value,
            written: &args[i..i + n],
        });
        i += n;
    }
    out
}

/// The kinds of a package's targets that the command compiles after its library: binaries,
/// and tests, examples and benches when it selects them (`test`: tests and examples).
fn waiting_kinds(inv: &Invocation) -> Vec<&'static str> {
    let args = cargo_args(&inv.cargo_args);
    let has = |flags: &[&str]| {
        args.iter()
            .any(|a| flags.contains(&a.name) || a.name == "--all-targets")
    };
    let tests = matches!(inv.sub, Sub::Test) || has(&["--tests", "--test"]);
    let examples = matches!(inv.sub, Sub::Test) || has(&["--examples", "--example"]);
    let benches = matches!(inv.sub, Sub::Bench) || has(&["--benches", "--bench"]);
    let mut kinds = vec!["bin"];
    kinds.extend(tests.then_some("test"));
    kinds.extend(examples.then_some("example"));
    kinds.extend(benches.then_some("bench"));
    kinds
}

/// The packages whose library cargo could not compile, from its `could not compile `name`
/// (lib)` lines (not `(lib test)`: a library's tests are a crate nothing waits for).
fn failed_libs(stderr: &[String]) -> Vec<String> {
    stderr
        .iter()
        .filter_map(|l| {
            let rest = l.split_once("could not compile `")?.1;
            let (name, after) = rest.split_once('`')?;
            after.starts_with(" (lib)").then(|| name.to_owned())
        })
        .collect()
}

/// The variable that makes check rounds incremental (`CARGO_PROFILE_<P>_INCREMENTAL`) in an
/// optimized profile, unless the user chose (the environment or the manifest: see
/// `manifest::incremental_is_lprobes`). Each round repairs a few functions; an incremental
/// check reuses the rest (`just`'s rounds that repair its tests alone: 7.5 s → 3 s). The
/// build rounds are not incremental (the profile's code, and cargo keeps check and build
/// artifacts apart). A `dev` build is incremental already: `None`, and its state is kept.
fn incremental_checks(inv: &Invocation, ws: &Workspace) -> Option<String> {
    let var = format!(
        "CARGO_PROFILE_{}_INCREMENTAL",
        inv.profile_name().to_uppercase().replace('-', "_")
    );
    let chosen =
        std::env::var_os(&var).is_some() || std::env::var_os("CARGO_INCREMENTAL").is_some();
    let manifest = std::fs::read_to_string(ws.root.join("Cargo.toml")).unwrap_or_default();
    let ours = crate::build::manifest::incremental_is_lprobes(&manifest, inv.profile_name());
    (!chosen && ours).then_some(var)
}

/// The directories cargo puts the profile's artifacts in: `<lp>/<profile>`, and
/// `<lp>/<triple>/<profile>` for each `--target`.
fn profile_dirs(inv: &Invocation, lp: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![lp.join(&inv.profile)];
    for a in cargo_args(&inv.cargo_args) {
        // A target given as a JSON file's path lands under the file's stem.
        if let Some(t) = a.value.filter(|_| a.name == "--target") {
            let t = t.strip_suffix(".json").unwrap_or(t);
            let name = Path::new(t).file_name().map_or(t.into(), |n| n.to_owned());
            dirs.push(lp.join(name).join(&inv.profile));
        }
    }
    dirs
}

/// cargo's options (of `build`, `check` and `test`) that take a value as the next argument.
const VALUE_OPTIONS: [&str; 18] = [
    "-p",
    "--package",
    "--exclude",
    "-j",
    "--jobs",
    "-F",
    "--features",
    "--target",
    "--color",
    "--config",
    "-Z",
    "--profile",
    "--manifest-path",
    "--lockfile-path",
    "--artifact-dir",
    "--bin",
    "--example",
    "--test",
];

/// The arguments of a `cargo check` that checks what the user's command compiles: `None`
/// when there is no such check (`bench`; `check` itself; `test` given its own targets:
/// `cargo check --lib` checks the library, `cargo test --lib` its tests). A test name filter
/// (`cargo lprobe test parse_`) is `cargo test`'s alone: the check checks every test.
fn check_args(inv: &Invocation) -> Option<Vec<String>> {
    const TARGETS: [&str; 11] = [
        "--lib",
        "--bin",
        "--bins",
        "--example",
        "--examples",
        "--test",
        "--tests",
        "--bench",
        "--benches",
        "--all-targets",
        "--doc",
    ];
    let mut args: Vec<String> = Vec::with_capacity(inv.cargo_args.len() + 2);
    for a in cargo_args(&inv.cargo_args) {
        match inv.sub {
            Sub::Test if TARGETS.contains(&a.name) => return None,
            Sub::Test if matches!(a.name, "--no-run" | "--no-fail-fast" | "") => {}
            _ => args.extend_from_slice(a.written),
        }
    }
    match inv.sub {
        Sub::Build | Sub::Run => Some(args),
        // Its rounds are checks already.
        Sub::Check => None,
        // `cargo test`'s default targets: the library and binaries as unit tests, the
        // integration tests (what `--tests` checks) and the examples.
        Sub::Test => {
            args.extend(["--tests".to_owned(), "--examples".to_owned()]);
            Some(args)
        }
        Sub::Bench => None,
    }
}

/// The cargo command for `sub`, run in the copy.
/// Whether cargo runs lprobe as its compiler wrapper (`LPROBE_CACHE_DIR=off`: not).
fn wrapper_wanted() -> bool {
    std::env::var_os("LPROBE_CACHE_DIR").is_none_or(|d| d != "off")
}

fn cargo_command(
    inv: &Invocation,
    ws: &Workspace,
    cwd: &Path,
    copy: &Path,
    lp: &Path,
    sub: &str,
    args: &[String],
) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg(sub);
    cmd.args(args);
    match cwd.strip_prefix(&ws.root) {
        Ok(rel) if inv.manifest_path.is_none() => {
            cmd.current_dir(copy.join(rel));
        }
        _ => {
            cmd.current_dir(copy);
            if let Some(m) = &inv.manifest_path {
                let abs = cwd.join(m);
                let rel = abs
                    .strip_prefix(&ws.root)
                    .unwrap_or(Path::new("Cargo.toml"));
                cmd.arg("--manifest-path").arg(copy.join(rel));
            }
        }
    }
    cmd.arg("--target-dir").arg(lp);
    // Debuginfo and diagnostics point at the user's files, not the copy: through the
    // compiler wrapper, which also compiles the embedded runtime once per machine (see
    // runtime_cache), and keeps the target probe's command line the same in every workspace
    // (see compiler_info); as a rustflag when there is no wrapper.
    let remap = format!("{}={}", copy.display(), ws.root.display());
    let wrapper = if wrapper_wanted() {
        let mut env =
            crate::build::runtime_cache::wrapper_env(&lp.join("runtime-cache.log"), &remap);
        if !env.is_empty() && ws.links_executables_only() {
            env.push((
                crate::build::runtime_cache::EXECUTABLES_ENV.to_owned(),
                "1".to_owned(),
            ));
        }
        env
    } else {
        Vec::new()
    };
    if wrapper.is_empty() {
        let remap = format!("--remap-path-prefix={remap}");
        match std::env::var("RUSTFLAGS") {
            Ok(flags) => {
                cmd.env("RUSTFLAGS", format!("{flags} {remap}"));
            }
            Err(_) => match std::env::var("CARGO_ENCODED_RUSTFLAGS") {
                Ok(flags) if !flags.is_empty() => {
                    cmd.env("CARGO_ENCODED_RUSTFLAGS", format!("{flags}\x1f{remap}"));
                }
                _ => {
                    cmd.arg("--config")
                        .arg(format!("build.rustflags=[{:?}]", remap));
                }
            },
        }
    } else {
        cmd.envs(wrapper);
        crate::build::compiler_info::seed_cargo(lp);
    }
    // Stacks need line tables: the workspace's crates get them in optimized profiles unless
    // the user chose (`manifest::stack_lines`).
    let root_manifest = std::fs::read_to_string(ws.root.join("Cargo.toml")).unwrap_or_default();
    let mut profiles = vec!["release", "bench"];
    if !profiles.contains(&inv.profile_name()) {
        profiles.push(inv.profile_name());
    }
    for profile in profiles {
        let var = format!(
            "CARGO_PROFILE_{}_DEBUG",
            profile.to_uppercase().replace('-', "_")
        );
        if std::env::var_os(&var).is_some() {
            continue;
        }
        let lines = crate::build::manifest::stack_lines(&root_manifest, profile);
        if lines.profile {
            cmd.env(var, "line-tables-only");
        }
        if lines.dependencies_off {
            cmd.arg("--config")
                .arg(format!("profile.{profile}.package.\"*\".debug=false"));
        }
    }
    cmd
}

/// What kind of round [`build_round`] runs, and how.
struct Round<'a> {
    kind: RoundKind,
    /// The variable that makes a check round incremental (`incremental_checks`).
    incremental: Option<&'a str>,
    /// An early round's gate (`early::GATE_ENV`).
    gate: Option<&'a Path>,
}

impl Round<'_> {
    /// A plain build round.
    fn build() -> Round<'static> {
        Round {
            kind: RoundKind::Build,
            incremental: None,
            gate: None,
        }
    }
}

/// Runs one build with JSON diagnostics and collects what it said.
fn build_round(
    inv: &Invocation,
    ws: &Workspace,
    cwd: &Path,
    copy: &Path,
    lp: &Path,
    round: Round<'_>,
) -> Result<Outcome> {
    let Round {
        kind,
        incremental,
        gate,
    } = round;
    let (sub, no_run) = match inv.sub {
        _ if kind == RoundKind::Check => ("check", false),
        Sub::Build | Sub::Run => ("build", false),
        Sub::Check => ("check", false),
        Sub::Test => ("test", true),
        Sub::Bench => ("bench", true),
    };
    let args = match kind {
        RoundKind::Check => check_args(inv).unwrap_or_else(|| inv.cargo_args.clone()),
        RoundKind::Build => inv.cargo_args.clone(),
    };
    let mut cmd = cargo_command(inv, ws, cwd, copy, lp, sub, &args);
    if let Some(var) = incremental.filter(|_| kind == RoundKind::Check) {
        cmd.env(var, "true");
    }
    if let Some(gate) = gate {
        cmd.env(crate::build::early::GATE_ENV, gate);
    }
    if no_run && !inv.no_run() {
        cmd.arg("--no-run");
    }
    // Every target that fails is reported in the same round, so one round repairs them all.
    // (`cargo test`/`bench` have no --keep-going: each round then repairs the targets that
    // failed first, and the loop goes on while rounds make progress.)
    if !no_run && !args.iter().any(|a| a == "--keep-going") {
        cmd.arg("--keep-going");
    }
    let fmt = if progress::colors_on() {
        "json-diagnostic-rendered-ansi"
    } else {
        "json"
    };
    cmd.arg(format!("--message-format={fmt}"));
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().context("running cargo")?;
    let stdout = child.stdout.take().context("capturing cargo's output")?;
    let stderr = child.stderr.take().context("capturing cargo's output")?;
    // Progress lines go through as they come; the rest is kept until the round's outcome
    // is known (a round that only fails in probe code is not the user's failure).
    let verbose = inv.verbose;
    let err_thread = std::thread::spawn(move || {
        let mut kept = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let word = line.split_whitespace().next().unwrap_or("");
            let progress = matches!(
                word,
                "Compiling"
                    | "Checking"
                    | "Finished"
                    | "Downloading"
                    | "Downloaded"
                    | "Updating"
                    | "Blocking"
                    | "Fresh"
                    | "Dirty"
                    | "Running"
                    | "Building"
            );
            // A check round's end is not the build's.
            let quiet = kind == RoundKind::Check && word == "Finished" && !verbose;
            if progress {
                if !quiet {
                    progress::cargo_line(&line);
                }
            } else if word != "Locking" && word != "Adding" {
                kept.push(line);
            }
        }
        kept
    });
    let mut out = Outcome {
        success: false,
        errors: Vec::new(),
        rendered_errors: Vec::new(),
        rendered_warnings: Vec::new(),
        stdout_lines: Vec::new(),
        stderr: Vec::new(),
        internal: false,
        spanless: false,
        member_compiled: false,
        failed_libs: Vec::new(),
    };
    let copy_str = copy.display().to_string();
    let root_str = ws.root.display().to_string();
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading cargo's output")?;
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
            out.stdout_lines.push(line);
            continue;
        };
        match msg.get("reason").and_then(|r| r.as_str()) {
            Some("compiler-message") => {
                let Some(m) = msg.get("message") else {
                    continue;
                };
                let pkg = msg.get("package_id").and_then(|p| p.as_str()).unwrap_or("");
                let ours = pkg.contains(crate::build::runtime_src::PACKAGE)
                    || pkg.contains("lprobe-sites-");
                let level = m.get("level").and_then(|l| l.as_str()).unwrap_or("");
                let rendered = m
                    .get("rendered")
                    .and_then(|r| r.as_str())
                    .unwrap_or("")
                    .to_owned();
                if level == "error" {
                    out.internal |= ours;
                    out.spanless |= names_no_line(m);
                    out.rendered_errors.push(rendered);
                    if let Some(e) = locate(m, &copy_str, &root_str) {
                        out.errors.push(e);
                    }
                } else if level == "warning" && !rendered.is_empty() {
                    out.rendered_warnings.push(rendered);
                }
            }
            Some("compiler-artifact") => {
                let manifest = msg.get("manifest_path").and_then(|m| m.as_str());
                let kinds = msg.pointer("/target/kind").and_then(|k| k.as_array());
                let script = kinds.is_some_and(|k| k.iter().any(|k| k == "custom-build"));
                out.member_compiled |=
                    !script && manifest.is_some_and(|m| m.starts_with(&copy_str));
            }
            Some("build-finished") => {
                out.success = msg
                    .get("success")
                    .and_then(|s| s.as_bool())
                    .unwrap_or(false);
            }
            _ => {}
        }
        out.stdout_lines.push(line);
    }
    let status = child.wait().context("waiting for cargo")?;
    out.success &= status.success();
    crate::build::compiler_info::keep_cargo(lp);
    out.stderr = err_thread.join().unwrap_or_default();
    out.failed_libs = failed_libs(&out.stderr);
    dedup_errors(&mut out.errors);
    Ok(out)
}

/// `tests/../src/table.rs` → `src/table.rs`: a file a test crate includes with
/// `#[path = "../src/table.rs"]` is named so in its errors, and is the same rewritten file.
fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." if parts.last().is_some_and(|l| *l != "..") => {
                parts.pop();
            }
            _ => parts.push(p),
        }
    }
    parts.join("/")
}

/// The rewritten file and byte offset a compiler error points at (following macro
/// expansions back to the user's file).
fn locate(m: &serde_json::Value, copy: &str, root: &str) -> Option<(String, FileError)> {
    let spans = m.get("spans")?.as_array()?;
    let mut span = spans
        .iter()
        .find(|s| s.get("is_primary").and_then(|p| p.as_bool()) == Some(true))?;
    let label = span
        .get("label")
        .and_then(|l| l.as_str())
        .unwrap_or("")
        .to_owned();
    for _ in 0..16 {
        let file = span.get("file_name")?.as_str()?;
        if !file.starts_with('<') && !file.contains("/lprobe/sites/") {
            break;
        }
        span = span.get("expansion")?.get("span")?;
    }
    let file = span.get("file_name")?.as_str()?;
    let rel = normalize(
        file.strip_prefix(copy)
            .or_else(|| file.strip_prefix(root))
            .map(|r| r.trim_start_matches('/'))
            .unwrap_or(file),
    );
    let byte = span.get("byte_start")?.as_u64()? as usize;
    // Secondary spans in the same file ("borrow later used here"): a capture that extends a
    // borrow is often only named there.
    let also = spans
        .iter()
        .filter(|s| s.get("is_primary").and_then(|p| p.as_bool()) != Some(true))
        .filter(|s| s.get("file_name").and_then(|f| f.as_str()) == Some(file))
        .filter_map(|s| s.get("byte_start")?.as_u64())
        .map(|b| b as usize)
        .collect();
    // Of several moves (one per branch), the last before the use: sites between an earlier
    // move and it may sit in another branch, where the value is still there.
    let moved_at = spans
        .iter()
        .filter(|s| s.get("file_name").and_then(|f| f.as_str()) == Some(file))
        .filter(|s| moved_here(s.get("label").and_then(|l| l.as_str()).unwrap_or("")))
        .filter_map(|s| s.get("byte_start")?.as_u64())
        .map(|b| b as usize)
        .filter(|&m| m < byte)
        .max();
    Some((
        rel,
        FileError {
            code: m
                .get("code")
                .and_then(|c| c.get("code"))
                .and_then(|c| c.as_str())
                .map(str::to_owned),
            message: m
                .get("message")
                .and_then(|s| s.as_str())
                .unwrap_or("")
                .to_owned(),
            label,
            byte,
            also,
            moved_at,
        },
    ))
}

/// `LPROBE_REPAIR_LOG=FILE`: appends each failed round's errors in rewritten code to FILE,
/// one JSON object a line (`round`, `kind`, `file`, `byte`, `code`, `message`, `label`,
/// `moved_at`): what to read when a cold build takes more rounds than it should. A file that
/// cannot be written is said once and the build goes on.
fn log_repair_errors(round: usize, kind: RoundKind, out: &Outcome, files: &[FileWork]) {
    use std::io::Write;
    let Some(path) = std::env::var_os("LPROBE_REPAIR_LOG") else {
        return;
    };
    let mut text = String::new();
    for (file, e) in &out.errors {
        // The rewritten text around the error: which generated code it points at.
        let at = files
            .iter()
            .find(|f| &f.rel == file)
            .and_then(|f| f.rewritten.as_ref())
            .map(|rw| {
                let near = |b: usize| {
                    let mut b = b.min(rw.text.len());
                    while !rw.text.is_char_boundary(b) {
                        b -= 1;
                    }
                    b
                };
                let (from, to) = (near(e.byte.saturating_sub(60)), near(e.byte + 60));
                let here = near(e.byte);
                format!("{}⟦{}", &rw.text[from..here], &rw.text[here..to])
            });
        let line = serde_json::json!({
            "at": at,
            "round": round,
            "kind": match kind { RoundKind::Build => "build", RoundKind::Check => "check" },
            "file": file,
            "byte": e.byte,
            "code": e.code,
            "message": e.message,
            "label": e.label,
            "moved_at": e.moved_at,
        });
        text.push_str(&line.to_string());
        text.push('\n');
    }
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()));
    if let Err(e) = written {
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            eprintln!(
                "lprobe: LPROBE_REPAIR_LOG: cannot append to {}: {e}",
                Path::new(&path).display()
            )
        });
    }
}

/// Drops the errors reported twice: a file compiled by two crates (the library and its unit
/// tests) reports the same error in each. Errors that differ at one span are all kept: for
/// a capture whose type is neither a small copy nor `Debug`, rustc reports the missing
/// `SmallCopy` and the missing `Debug` as two errors at the capture, and only both together
/// step it straight to `Opaque` (one of them alone is a round per step).
fn dedup_errors(errors: &mut Vec<(String, FileError)>) {
    let mut seen = std::collections::HashSet::new();
    errors.retain(|(f, e)| {
        seen.insert((
            f.clone(),
            e.byte,
            e.code.clone(),
            e.message.clone(),
            e.label.clone(),
        ))
    });
}

/// Whether a span's label says a value was moved there ("value moved here", "value moved
/// into closure here", "`x` moved due to this method call", "value partially moved here",
/// "`s` moved due to usage in operator"), not in a loop's earlier pass.
fn moved_here(label: &str) -> bool {
    (label.contains("moved here")
        || label.contains("moved into closure here")
        || label.contains("moved due to this")
        || label.contains("moved due to usage in"))
        && !label.contains("previous iteration")
}

/// Each package's skip patterns: `--skip`, `--skip-from` and the workspace's metadata (shared),
/// then the package's own metadata.
fn skip_lists(
    inv: &Invocation,
    ws: &Workspace,
    cwd: &Path,
    packages: &[&Package],
) -> Result<Vec<SkipList>> {
    let files: Vec<&Path> = inv.skip_from.iter().map(PathBuf::as_path).collect();
    let mut common = skip::load(&inv.skip, &files, "--skip", cwd, cwd)?;
    common.extend(skip::from_metadata(
        &ws.skips,
        "[workspace.metadata.lprobe]",
        &ws.root,
    )?);
    let common: Vec<std::rc::Rc<skip::Pattern>> =
        common.into_iter().map(std::rc::Rc::new).collect();
    packages
        .iter()
        .map(|p| {
            let own = skip::from_metadata(
                &p.skips,
                &format!("[package.metadata.lprobe] of {}", p.name),
                &ws.root,
            )?;
            Ok(SkipList {
                patterns: common
                    .iter()
                    .cloned()
                    .chain(own.into_iter().map(std::rc::Rc::new))
                    .collect(),
            })
        })
        .collect()
}

/// The lines `first..=last` without the ranges in `holes` (nested functions), as runs.
fn line_segments(first: u32, last: u32, holes: &[(u32, u32)]) -> Vec<(u32, u32)> {
    let mut holes = holes.to_vec();
    holes.sort_unstable();
    let mut out = Vec::new();
    let mut next = first;
    for (a, b) in holes {
        if a > next {
            out.push((next, (a - 1).min(last)));
        }
        next = next.max(b.saturating_add(1));
    }
    if next <= last {
        out.push((next, last));
    }
    out
}

/// The functions of `f` left without an entry site, and why.
fn fns_without_sites(f: &FileWork) -> Vec<(&visit::FnContext, &str)> {
    let mut has_entry = vec![false; f.sites.contexts.len()];
    let placed: HashSet<usize> = f
        .rewritten
        .iter()
        .flat_map(|rw| rw.placed.iter())
        .map(|p| p.site)
        .collect();
    for (i, s) in f.sites.sites.iter().enumerate() {
        if s.kind == visit::SiteKind::Entry && placed.contains(&i) {
            if let Some(h) = has_entry.get_mut(s.context) {
                *h = true;
            }
        }
    }
    f.sites
        .contexts
        .iter()
        .zip(has_entry)
        .filter(|(_, has)| !has)
        .map(|(c, _)| {
            let why = c.skipped.as_deref().unwrap_or(if f.ex.file_original {
                "file left as written"
            } else {
                "probes removed by repair"
            });
            (c, why)
        })
        .collect()
}

fn reports(packages: &[&Package], files: &[FileWork]) -> Vec<PkgReport> {
    let mut out: Vec<PkgReport> = packages
        .iter()
        .map(|p| PkgReport {
            package: p.name.clone(),
            ..Default::default()
        })
        .collect();
    for f in files {
        let r = &mut out[f.pkg];
        r.files += 1;
        if f.ex.file_original {
            r.files_left_original.push(f.rel.clone());
        }
        let placed: HashMap<usize, usize> = f
            .rewritten
            .iter()
            .flat_map(|rw| rw.placed.iter())
            .map(|p| (p.site, p.captures.len()))
            .collect();
        r.fns_with_body += f.sites.contexts.len();
        r.fns_const += f
            .sites
            .contexts
            .iter()
            .filter(|c| c.skipped.as_deref() == Some("const fn"))
            .count();
        let without = fns_without_sites(f);
        r.fns_instrumented += f.sites.contexts.len() - without.len();
        for (c, why) in without {
            r.fns_skipped
                .push(format!("{} ({}:{}): {why}", c.func, f.rel, c.line));
        }
        for (i, s) in f.sites.sites.iter().enumerate() {
            r.sites += 1;
            r.captures += s.names.len();
            if let Some(kept) = placed.get(&i) {
                r.sites_placed += 1;
                r.captures_kept += kept;
            }
        }
    }
    out
}

fn print_summary(reports: &[PkgReport], notes: &[String], verbose: bool) {
    let crates = reports.len();
    let sites: usize = reports.iter().map(|r| r.sites_placed).sum();
    let caps: usize = reports.iter().map(|r| r.captures_kept).sum();
    let dropped: usize = reports.iter().map(|r| r.captures - r.captures_kept).sum();
    let skipped: usize = reports.iter().map(|r| r.fns_skipped.len()).sum();
    progress::status(
        "Instrumented",
        &format!(
            "{} crate{}: {} sites, {} captures ({} dropped), {} fn{} skipped",
            crates,
            if crates == 1 { "" } else { "s" },
            thousands(sites),
            thousands(caps),
            thousands(dropped),
            thousands(skipped),
            if skipped == 1 { "" } else { "s" },
        ),
    );
    if verbose {
        for r in reports {
            eprintln!(
                "lprobe:   {}: {} files, {}/{} fns, {} sites, {}/{} captures",
                r.package,
                r.files,
                r.fns_instrumented,
                r.fns_with_body,
                r.sites_placed,
                r.captures_kept,
                r.captures
            );
            for s in &r.fns_skipped {
                eprintln!("lprobe:     skipped {s}");
            }
        }
        for n in notes {
            eprintln!("lprobe:   repair: {n}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_that_names_no_line_is_not_blamed_on_the_users_code() {
        let json = |t: &str| serde_json::from_str::<serde_json::Value>(t).expect("json");
        let linker = json(
            r#"{"message":"linking with `cc` failed: exit status: 1","spans":[],"level":"error"}"#,
        );
        let summary =
            json(r#"{"message":"aborting due to 1 previous error","spans":[],"level":"error"}"#);
        let typo = json(
            r#"{"message":"cannot find value `x` in this scope","spans":[{"file_name":"src/main.rs","line_start":2}],"level":"error"}"#,
        );
        assert!(names_no_line(&linker));
        assert!(!names_no_line(&summary));
        assert!(!names_no_line(&typo));
        let mut out = Outcome {
            success: false,
            errors: Vec::new(),
            rendered_errors: vec!["error: linking with `cc` failed".to_owned()],
            rendered_warnings: Vec::new(),
            stdout_lines: Vec::new(),
            stderr: Vec::new(),
            internal: false,
            spanless: true,
            member_compiled: true,
            failed_libs: Vec::new(),
        };
        assert!(
            failure(&out).contains("names no line of code"),
            "{}",
            failure(&out)
        );
        out.spanless = false;
        assert!(failure(&out).contains("in your code"), "{}", failure(&out));
        out.rendered_errors.clear();
        assert!(
            failure(&out).contains("before compiling"),
            "{}",
            failure(&out)
        );
    }

    #[test]
    fn the_wrapper_log_is_summed_up_per_runtime_crate() {
        assert_eq!(runtime_outcome(""), None);
        assert_eq!(
            runtime_outcome("hit probe_runtime\nhit probe_runtime_hot\n").as_deref(),
            Some("taken from the cache (probe_runtime, probe_runtime_hot)")
        );
        // The hot path recompiled against a runtime taken from the cache (its key names the
        // runtime's bytes): both said, not just the last.
        assert_eq!(
            runtime_outcome("hit probe_runtime\nmiss probe_runtime_hot\n").as_deref(),
            Some("taken from the cache (probe_runtime); compiled, and cached for later builds (probe_runtime_hot)")
        );
        assert_eq!(
            runtime_outcome("miss probe_runtime\n").as_deref(),
            Some("compiled, and cached for later builds (probe_runtime)")
        );
    }

    #[test]
    fn error_paths_through_parent_directories_name_the_rewritten_file() {
        assert_eq!(
            normalize("tests/../src/d2s_small_table.rs"),
            "src/d2s_small_table.rs"
        );
        assert_eq!(normalize("./src/lib.rs"), "src/lib.rs");
        assert_eq!(normalize("../outside/x.rs"), "../outside/x.rs");
    }

    #[test]
    fn a_function_without_sites_is_listed_without_its_nested_functions_lines() {
        assert_eq!(line_segments(1, 10, &[]), [(1, 10)]);
        assert_eq!(line_segments(1, 10, &[(3, 6)]), [(1, 2), (7, 10)]);
        assert_eq!(
            line_segments(1, 10, &[(8, 9), (2, 3), (3, 5)]),
            [(1, 1), (6, 7), (10, 10)]
        );
        // A nested function on the first line (`fn a() { fn b() {} }`) leaves the rest.
        assert_eq!(line_segments(1, 4, &[(1, 1)]), [(2, 4)]);
        assert!(line_segments(1, 3, &[(1, 3)]).is_empty());
    }

    /// A crate root of package 0 as `find_sites` sees it: `src` as module `module` of target
    /// `target`.
    fn file_work(
        rel: &str,
        src: &str,
        (module, target): (&str, usize),
        lines: &LineSel,
    ) -> FileWork {
        let file = syn::parse_file(src).expect("parses");
        FileWork {
            rel: rel.into(),
            pkg: 0,
            text: src.into(),
            hash: String::new(),
            lines_key: String::new(),
            sites: visit::find_sites(src, &file, module, lines),
            first: Default::default(),
            extern_at: None,
            crate_root: true,
            targets: vec![target],
            ex: Exclusions::default(),
            outcome_known: true,
            rewritten: None,
            notes: Vec::new(),
            includes: Vec::new(),
        }
    }

    #[test]
    fn calls_the_build_leaves_out_or_of_another_function_do_not_count() {
        // httparse's shape: `swar::scan` is called from a module for aarch64, from a module
        // for runtime detection and from two compile-time alternatives (a build script's
        // cfgs, unknown here); `runtime::scan` shares the name, and is called once.
        let big = (0..80)
            .map(|i| format!("n += {i};"))
            .collect::<Vec<_>>()
            .join(" ");
        let src = format!(
            "mod simd {{\n\
             mod swar {{ pub fn scan(v: &[u8]) -> usize {{ let mut n = 0; for b in v {{ n += usize::from(*b); }} {big} n }} }}\n\
             #[cfg(all(simd, not(any(sse, avx)), target_arch = \"x86_64\"))]\n\
             mod runtime {{ pub fn scan(v: &[u8]) -> usize {{ let mut n = v.len(); {big} n }} pub fn other(v: &[u8]) -> usize {{ super::swar::scan(v) }} }}\n\
             #[cfg(all(simd, sse, not(avx), target_arch = \"x86_64\"))]\n\
             mod sse {{ pub fn other(v: &[u8]) -> usize {{ super::swar::scan(v) }} }}\n\
             #[cfg(all(simd, avx, target_arch = \"x86_64\"))]\n\
             mod avx {{ pub fn other(v: &[u8]) -> usize {{ crate::simd::swar::scan(v) }} }}\n\
             #[cfg(target_arch = \"aarch64\")]\n\
             mod neon {{ pub fn other(v: &[u8]) -> usize {{ self::super::swar::scan(v) }} }}\n\
             #[cfg(not(all(simd, target_arch = \"x86_64\")))] pub use self::swar::*;\n\
             #[cfg(all(simd, not(any(sse, avx)), target_arch = \"x86_64\"))] pub use self::runtime::*;\n\
             }}\n\
             pub fn parse(v: &[u8]) -> usize {{ simd::scan(v) }}\n"
        );
        let recalls = |target: &cfg::Target| {
            let mut files = vec![file_work("src/lib.rs", &src, ("k", 0), &LineSel::None)];
            promote_recalls(&mut files, target);
            let recall = |f: &str| {
                let s = files[0].sites.sites.iter().find(|s| s.func == f);
                s.expect("entry site").recall.is_some()
            };
            (
                recall("k::simd::swar::scan"),
                recall("k::simd::runtime::scan"),
            )
        };
        let x86 = cfg::Target::parse("target_arch=\"x86_64\"\nunix\n");
        // On x86-64 one of the three alternatives is compiled: `swar::scan` (large, reached
        // only inside the crate) has one call and keeps its guard, and so does
        // `runtime::scan`: the calls of `swar::scan` are not its. `parse`'s call goes to one
        // of them through a `use` each, which exclude each other and the alternatives.
        assert_eq!(recalls(&x86), (false, false));
        // Where the target is unknown, the aarch64 module may be compiled beside one of them.
        assert_eq!(recalls(&cfg::Target::default()), (true, false));
    }

    #[test]
    fn a_function_called_from_one_place_keeps_its_one_call() {
        let src = "#[inline]\nfn helper(v: u64) -> u64 {\n    v.rotate_left(3) ^ v\n}\n\
                   pub fn api(v: u64) -> u64 {\n    v ^ 1\n}\n\
                   fn work(rx: &R) -> u64 {\n    let mut a = 0;\n    while let Some(x) = rx.recv() {\n        a += x;\n        a += helper(a);\n    }\n    a\n}\n\
                   fn other(rx: &R) -> u64 {\n    let mut a = 0;\n    while let Some(x) = rx.recv() {\n        a += x;\n        a += api(a) + other(rx) * other(rx);\n    }\n    a\n}\n";
        let mut files = vec![file_work("src/lib.rs", src, ("k", 0), &LineSel::All)];
        promote_recalls(&mut files, &cfg::Target::default());
        let once: Vec<bool> = files[0]
            .sites
            .loop_bodies
            .iter()
            .map(|b| b.calls_once)
            .collect();
        // `helper` is private and called once; `api` is public, `other` called twice.
        assert_eq!(once, [true, false]);
        // Called once, the `#[inline]` `helper` keeps a guard (it is inlined there whatever
        // the guard adds) rather than calling itself again; the public `api` calls itself.
        let entry = |f: &str| {
            let s = files[0]
                .sites
                .sites
                .iter()
                .find(|s| s.func == f && s.kind == visit::SiteKind::Entry);
            s.map(|s| (s.timed, s.recall.is_some()))
        };
        assert_eq!(entry("k::helper"), Some((true, false)));
        assert_eq!(entry("k::api"), Some((false, true)));
    }

    #[test]
    fn guarded_functions_called_from_several_places_time_by_calling_themselves() {
        let body = "(v: &[u8]) -> usize {\n    let mut n = 0;\n    for b in v {\n        n += usize::from(*b);\n    }\n    n\n}\n";
        // Over `LARGE_FN_TOKENS`: a body LLVM inlines only where it is called once.
        let large = format!(
            "(v: &[u8]) -> usize {{\n    let mut n = 0;\n    for b in v {{\n        n += usize::from(*b){};\n    }}\n    n\n}}\n",
            " + 1".repeat(visit::LARGE_FN_TOKENS / 2)
        );
        let src = format!(
            "fn once{body}fn twice{body}pub fn api{body}fn two_calls{body}\
             fn generic<T: Copy>(v: &[u8], t: T) -> usize {{\n    let _ = t;\n    let mut n = 0;\n    for b in v {{\n        n += usize::from(*b);\n    }}\n    n\n}}\n\
             mod private {{ pub fn small{body} pub fn big{large} pub fn big_twice{large} pub fn shown{large} }}\n\
             pub use private::shown;\n\
             fn a(v: &[u8]) -> usize {{\n    once(v) + twice(v) + private::small(v) + private::big(v) + private::big_twice(v) + private::big_twice(v)\n}}\n\
             fn generic2<T: Copy>(v: &[u8], t: T) -> usize {{\n    let _ = t;\n    let mut n = 0;\n    for b in v {{\n        n += usize::from(*b);\n    }}\n    n\n}}\n\
             fn c(v: &[u8]) -> usize {{\n    two_calls(v) * two_calls(&v[1..]) + generic(v, 1u8) + generic(v, 1u64) + generic2(v, 1u8)\n}}\n\
             fn d(v: &[u8]) -> usize {{\n    generic2(v, 2u8)\n}}\n\
             mod m1 {{ pub struct A; impl A {{ fn step(&self, v: &[u8]) -> usize {{ let _ = self; let mut n = 0; for b in v {{ n += usize::from(*b); }} n }} pub fn run(&self, v: &[u8]) -> usize {{ self.step(v) }} }} }}\n\
             mod m3 {{ pub struct B; impl B {{ fn helper(&self, v: &[u8]) -> usize {{ let _ = self; let mut n = 0; for b in v {{ n += usize::from(*b); }} n }} }}\n\
                 fn helper(v: &[u8]) -> usize {{ let mut n = 0; for b in v {{ n += usize::from(*b); }} n }}\n\
                 pub fn run(v: &[u8]) -> usize {{ B.helper(v) + helper(v) }}\n\
                 pub fn run2(v: &[u8]) -> usize {{ B::new_in(v).visit(v) }}\n\
                 impl B {{ fn new_in(v: &[u8]) -> B {{ let _ = v; B }} fn visit(&self, v: &[u8]) -> usize {{ let _ = self; let mut n = 0; for b in v {{ n += usize::from(*b); }} n }} }}\n\
                 pub fn run3(v: &[u8], b: &B) -> usize {{ b.visit(v) }} }}\n\
             mod m2 {{ pub struct A; impl A {{ fn step(&self, v: &[u8]) -> usize {{ let _ = self; let mut n = 0; for b in v {{ n += usize::from(*b); }} n }} pub fn run(&self, v: &[u8]) -> usize {{ self.step(v) + Self::step(self, v) }} }} }}\n\
             fn b(v: &[u8]) -> usize {{\n    twice(v) + api(v) + private::shown(v)\n}}\n"
        );
        // Tests of the library call `once` too, and so does an example (another crate, where
        // the library's private functions cannot be reached): neither is a release call site.
        let src = format!(
            "{src}#[cfg(test)]\nmod tests {{\n    fn t() {{ super::once(&[]); super::private::big(&[]); }}\n}}\n"
        );
        let example =
            "fn main() { once(&[]); big(&[]); }\nfn once(v: &[u8]) {}\nfn big(v: &[u8]) {}\n";
        let mut files = vec![
            file_work("src/lib.rs", &src, ("k", 0), &LineSel::None),
            file_work("examples/x.rs", example, ("x", 1), &LineSel::None),
        ];
        promote_recalls(&mut files, &cfg::Target::default());
        let recall = |f: &str| {
            files[0]
                .sites
                .sites
                .iter()
                .find(|s| s.func == f)
                .map(|s| s.recall.clone())
                .expect("entry site")
        };
        // Called from one function: keeps its guard (LLVM inlines a function called once).
        assert_eq!(recall("k::once"), None);
        assert_eq!(recall("k::twice").as_deref(), Some("self::twice(v)"));
        assert_eq!(recall("k::api").as_deref(), Some("self::api(v)"));
        // Called twice from one function: no use of it is the only one, so a second call
        // costs nothing; unless generic, where each call may be another instantiation's only.
        assert_eq!(
            recall("k::two_calls").as_deref(),
            Some("self::two_calls(v)")
        );
        assert_eq!(recall("k::generic"), None);
        // Called from two functions, a private generic function times by a second call, and
        // is marked `#[inline]`: each instantiation is likely called from one of them only,
        // and inlined there for it in a plain build (the second call takes that away).
        assert!(recall("k::generic2").is_some());
        // A call through `self` is a call of the method of its own type: each `A::step` is
        // called from one place, though two functions call a `step`.
        assert_eq!(recall("k::m1::A::step"), None);
        assert!(recall("k::m2::A::step").is_some());
        // A bare name calls a function of a module, a method call a method: one call each.
        assert_eq!(recall("k::m3::B::helper"), None);
        assert_eq!(recall("k::m3::helper"), None);
        // `B::new_in(v).visit(v)` is a call of `B::visit`; `b.visit(v)` may be one too.
        assert!(recall("k::m3::B::visit").is_some());
        // `pub` in a private module, called once: the guard only when large.
        assert_eq!(
            recall("k::private::small").as_deref(),
            Some("self::small(v)")
        );
        assert_eq!(recall("k::private::big"), None);
        // Two call sites (from one function), or re-exported: a second call.
        assert_eq!(
            recall("k::private::big_twice").as_deref(),
            Some("self::big_twice(v)")
        );
        assert_eq!(
            recall("k::private::shown").as_deref(),
            Some("self::shown(v)")
        );
        let hinted: Vec<&str> = files[0]
            .sites
            .sites
            .iter()
            .filter(|s| s.inline_hint)
            .map(|s| s.func.as_str())
            .collect();
        assert_eq!(hinted, ["k::generic2"]);
        files[0].rewrite(rewrite::FlagsHome::SitesCrate);
        let rw = files[0].rewritten.as_ref().expect("rewritten");
        assert!(
            rw.text.contains("#[inline] fn generic2<T: Copy>"),
            "{}",
            rw.text
        );
        // Besides, the bodies rustc copies into their callers as written (method calls
        // alone: `visit::copied_into_callers`) keep that with `#[inline]`.
        let marked: Vec<&str> = rw
            .text
            .match_indices("#[inline] ")
            .map(|(at, m)| {
                let rest = &rw.text[at + m.len()..];
                let name = rest.split("fn ").nth(1).unwrap_or("");
                &name[..name.find(['(', '<']).unwrap_or(name.len())]
            })
            .collect();
        assert_eq!(marked, ["generic2", "run", "new_in", "run3"]);
    }

    #[test]
    fn a_loop_that_calls_only_leaf_functions_does_not_reread_the_flag() {
        let lib = "pub fn digits(mut v: u64) -> u64 {\n    let mut n = 0;\n    loop {\n        let d = div10(v);\n        if d == 0 {\n            break;\n        }\n        v = d;\n        n += 1;\n    }\n    n\n}\n\
                   pub fn wait(mut v: u64) -> u64 {\n    loop {\n        if poll(v) {\n            break;\n        }\n        v += 1;\n    }\n    v\n}\n\
                   fn div10(x: u64) -> u64 {\n    x / 10\n}\n\
                   fn poll(x: u64) -> bool {\n    std::thread::yield_now();\n    x > 3\n}\n";
        // Another crate's `poll` is a leaf: it does not make the library's one a leaf.
        let other = "fn main() {}\nfn poll(x: u64) -> bool {\n    x > 3\n}\n";
        let mut files = vec![
            file_work("src/lib.rs", lib, ("k", 0), &LineSel::All),
            file_work("src/main.rs", other, ("k", 1), &LineSel::All),
        ];
        assert_eq!(files[0].sites.loops.len(), 2);
        drop_leaf_loop_rereads(&mut files);
        let loops = &files[0].sites.loops;
        assert_eq!(loops.len(), 1);
        assert_eq!(files[0].sites.contexts[loops[0].context].func, "k::wait");
    }

    #[test]
    fn a_tiny_function_names_callers_to_arm_instead() {
        let mut callers: HashMap<&str, Vec<(&str, bool)>> = HashMap::new();
        let get = vec![
            ("k::Vec::get", false),
            ("k::a", true),
            ("k::b", true),
            ("k::c", true),
        ];
        callers.insert("get", get);
        let why = tiny_reason(visit::TINY_REASON, "k::Vec::get", &callers);
        assert!(why.starts_with(visit::TINY_REASON), "{why}");
        assert!(
            why.ends_with("; callers to arm instead: fn:k::a, fn:k::b"),
            "{why}"
        );
        assert_eq!(
            tiny_reason(visit::TINY_REASON, "k::lonely", &callers),
            visit::TINY_REASON
        );
        // A tiny caller has no sites either: its callers are named.
        callers.insert("mix", vec![("k::check", false)]);
        callers.insert("check", vec![("k::serve", true)]);
        let why = tiny_reason(visit::TINY_REASON, "k::mix", &callers);
        assert!(
            why.ends_with("; callers to arm instead: fn:k::serve"),
            "{why}"
        );
    }

    #[test]
    fn an_iterators_next_names_the_functions_that_make_it() {
        let src = "pub struct Walk { i: u32 }\n\
                   pub struct Other;\n\
                   impl Iterator for Walk {\n\
                       type Item = u32;\n\
                       fn next(&mut self) -> Option<u32> { while self.i % 7 != 0 { self.i += 1; } Some(self.i) }\n\
                   }\n\
                   pub fn walk(from: u32) -> Walk { let mut i = from; for _ in 0..3 { i += 1; } Walk { i } }\n\
                   pub fn walk_tiny() -> Walk { Walk { i: 0 } }\n\
                   pub fn other(n: u32) -> Other { for _ in 0..n {} Other }\n";
        let mut f = file_work("src/lib.rs", src, ("k", 0), &LineSel::None);
        let file = syn::parse_file(src).expect("parses");
        let none = HashSet::new();
        let skip = crate::build::skip::SkipList::default();
        let sized = visit::Options {
            entry_all: false,
            ..visit::Options::new(&none, &skip)
        };
        f.sites = visit::find_sites_with(src, &file, "k", &LineSel::None, &sized);
        f.rewrite(rewrite::FlagsHome::SitesCrate);
        let (mut rows, mut skipped) = (Vec::new(), Vec::new());
        file_rows(&f, &HashMap::new(), &mut rows, &mut skipped);
        let next: Vec<&str> = skipped
            .iter()
            .filter(|r| r.func == "k::Walk::next")
            .map(|r| r.why.as_str())
            .collect();
        // `walk_tiny` has no sites to arm; `other` makes another type.
        assert_eq!(
            next,
            [format!(
                "{}; functions that make it, to arm instead: fn:k::walk",
                visit::ITERATOR_REASON
            )]
        );
        assert!(rows.iter().all(|r| r.func != "k::Walk::next"));
    }

    #[test]
    fn line_selection_by_workspace_or_package_path_and_ranges() {
        let files = vec![
            ("app/src/main.rs".to_owned(), "src/main.rs".to_owned()),
            ("app/src/db.rs".to_owned(), "src/db.rs".to_owned()),
        ];
        let (def, map) = line_selection("src/main.rs:42, db.rs:10-12", &files).expect("parses");
        assert_eq!(def, LineSel::None);
        assert_eq!(lines_key(&map["app/src/main.rs"]), "42");
        assert_eq!(lines_key(&map["app/src/db.rs"]), "10,11,12");
        assert!(line_selection("nope.rs:1", &files).is_err());
        assert!(line_selection("main.rs:x", &files).is_err());
        assert_eq!(line_selection("all", &files).expect("all").0, LineSel::All);
    }

    #[test]
    fn repair_rounds_check_what_the_command_compiles() {
        let inv = |s: &str| {
            let args: Vec<String> = s.split_whitespace().map(String::from).collect();
            crate::build::cargo::parse(&args).expect("parses")
        };
        let test = inv("test --release --no-run -p app --features x --no-fail-fast");
        assert_eq!(
            check_args(&test).expect("checkable"),
            [
                "--release",
                "-p",
                "app",
                "--features",
                "x",
                "--tests",
                "--examples"
            ]
        );
        // A test name filter is the harness's; a value that looks like one is an option's.
        assert_eq!(
            check_args(&inv(
                "test parse_ -p tests --features=f -j 2 --target x86_64-unknown-linux-gnu"
            ))
            .expect("checkable"),
            [
                "-p",
                "tests",
                "--features=f",
                "-j",
                "2",
                "--target",
                "x86_64-unknown-linux-gnu",
                "--tests",
                "--examples"
            ]
        );
        // `cargo check --lib` is not `cargo test --lib`; benches have no such check, and a
        // check's rounds are checks already.
        for own in [
            "test --lib",
            "test --test=it",
            "test --doc",
            "bench",
            "check",
        ] {
            assert_eq!(check_args(&inv(own)), None, "{own}");
        }
        let build = inv("build --release --bin app --keep-going");
        assert_eq!(
            check_args(&build).expect("checkable"),
            ["--release", "--bin", "app", "--keep-going"]
        );
        use RoundKind::{Build, Check};
        // A failed build round whose failures nothing waited for: build again.
        assert_eq!(next_round_kind(&test, Build, false, false), Build);
        assert_eq!(next_round_kind(&test, Build, false, true), Check);
        assert_eq!(next_round_kind(&test, Check, false, false), Check);
        // After a check passed, the build's own errors are repaired by building.
        assert_eq!(next_round_kind(&test, Build, true, true), Build);
        assert_eq!(
            next_round_kind(&inv("test --lib"), Build, false, true),
            Build
        );
        assert_eq!(next_round_kind(&inv("bench"), Build, false, true), Build);
        let stderr = [
            "error: could not compile `app` (lib) due to 3 previous errors; 1 warning emitted",
            "error: could not compile `app` (lib test) due to 2 previous errors",
            "error: could not compile `tool` (bin \"tool\") due to 1 previous error",
            "warning: build failed, waiting for other jobs to finish...",
        ]
        .map(String::from);
        assert_eq!(failed_libs(&stderr), ["app"]);
        // What waits for a library: binaries always, the rest as the command selects it.
        assert_eq!(waiting_kinds(&inv("build --release")), ["bin"]);
        assert_eq!(waiting_kinds(&inv("build --tests")), ["bin", "test"]);
        assert_eq!(
            waiting_kinds(&inv("check --all-targets")),
            ["bin", "test", "example", "bench"]
        );
        assert_eq!(waiting_kinds(&test), ["bin", "test", "example"]);
        // Where the check rounds' incremental state is, per `--target`.
        let lp = Path::new("/t/lprobe");
        assert_eq!(
            profile_dirs(
                &inv("test --release --target=a-b-c --target specs/my.json"),
                lp
            ),
            [
                lp.join("release"),
                lp.join("a-b-c/release"),
                lp.join("my/release")
            ]
        );
    }

    #[test]
    fn a_moved_value_is_named_by_the_last_move_before_its_use() {
        // `if c { a(s) } else { b(s) }; s.len()`: rustc labels both moves; sites between the
        // first and the use may be in the other branch.
        let span = |start: u64, primary: bool, label: &str| {
            serde_json::json!({"file_name": "src/lib.rs", "byte_start": start, "byte_end": start + 1,
                "is_primary": primary, "label": label})
        };
        let msg = |spans: Vec<serde_json::Value>| {
            serde_json::json!({"message": "borrow of moved value: `s`", "code": {"code": "E0382"},
                "level": "error", "spans": spans})
        };
        let m = msg(vec![
            span(90, true, "value borrowed here after move"),
            span(10, false, "value moved here"),
            span(40, false, "value moved here"),
            span(95, false, "value moved here, in previous iteration of loop"),
        ]);
        let (_, e) = locate(&m, "/copy", "/root").expect("located");
        assert_eq!((e.byte, e.moved_at), (90, Some(40)));
        let m = msg(vec![
            span(70, true, "value used here after move"),
            span(20, false, "`s` moved due to usage in operator"),
        ]);
        assert_eq!(
            locate(&m, "/copy", "/root").expect("located").1.moved_at,
            Some(20)
        );
    }

    #[test]
    fn extern_crate_goes_after_inner_attributes() {
        let text = "//! docs\n#![allow(dead_code)]\nfn main() {}\n";
        let file = syn::parse_file(text).expect("parses");
        let at = after_inner_attrs(text, &file);
        assert_eq!(&text[..at], "//! docs\n#![allow(dead_code)]");
        assert_eq!(thousands(1904), "1,904");
    }
}
