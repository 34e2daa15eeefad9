//! The repair loop's judgement: maps each compiler error in a rewritten file to the probe code
//! that caused it and decides what to take out, so that an instrumented crate compiles
//! whenever the original does. Also the on-disk cache of those decisions.
//!
//! Escalation, per error: the capture it points at (a borrow-check error drops the variable from
//! that site onward in the function); else the probe it points at; else the enclosing
//! function's captures, then its probes; else the whole file. Every round must add an
//! exclusion, so the loop ends; an error that no exclusion can explain is the user's own.

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::build::rewrite::{binding_of, Exclusions, Form, Rewritten};
use crate::build::visit::FileSites;

/// Borrow-check codes: rustc reports these once per variable, so the variable is dropped from
/// the failing site onward rather than at that site only.
const BORROW_CODES: &[&str] = &[
    "E0381", "E0382", "E0499", "E0502", "E0503", "E0505", "E0506", "E0597", "E0716",
];

/// A compiler error located in a rewritten file.
#[derive(Clone, Debug)]
pub struct FileError {
    pub code: Option<String>,
    pub message: String,
    /// The primary span's label ("the trait `Debug` is not implemented for `Big`"): what an
    /// unmet bound at a capture lacks, where the message names only `Cap`.
    pub label: String,
    /// Byte offset of the primary span in the rewritten text.
    pub byte: usize,
    /// Byte offsets of the other spans in the same file.
    pub also: Vec<usize>,
    /// A use of a moved value: where the value was moved ("value moved here", "`x` moved due
    /// to this method call"), when that is in the same file and not in a loop's earlier pass.
    pub moved_at: Option<usize>,
}

/// What one error led to, for `-v`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    DropCapture {
        site: usize,
        name: String,
    },
    DropVarFrom {
        site: usize,
        name: String,
    },
    DropSite {
        site: usize,
    },
    FnNoCaptures {
        context: usize,
    },
    FnNoProbes {
        context: usize,
    },
    /// The function's entry times calls with a guard: calling itself did not compile.
    NoRecall {
        context: usize,
    },
    /// The function's entry makes two cold calls: its one call did not compile.
    NoOneCall {
        context: usize,
    },
    /// The function's body is written once: writing it twice did not compile.
    NoTwice {
        context: usize,
    },
    FileOriginal,
    /// A binding's captures step down a form (not a loss: the value is still captured, or its
    /// type name when it has no `Debug`).
    Demote {
        site: usize,
        name: String,
        to: Form,
    },
    /// The crate flags module failed to build: the package reads the sites crate's flags.
    NoCrateFlags,
    /// Nothing left to take out: the error is the user's.
    None,
}

/// The concrete types this round's errors say do not implement `Debug` (see [`judge_in`]).
pub fn not_debug_types<'e>(errors: impl Iterator<Item = &'e FileError>) -> HashSet<String> {
    errors
        .filter(|e| e.code.as_deref() == Some("E0277"))
        .filter_map(|e| {
            if let Some(ty) = lacks_debug(&e.label) {
                return concrete(ty).then(|| ty.to_owned());
            }
            let ty = match unmet_bound(&e.message) {
                Some((ty, tr)) if is_cap(tr) => ty.strip_prefix('&')?,
                Some((ty, tr)) if is_cap_ref(tr) && !ty.contains("ByRef<") => ty,
                _ => {
                    e.message
                        .strip_prefix('`')?
                        .split_once("` doesn't implement `Debug`")?
                        .0
                }
            };
            concrete(ty).then(|| ty.to_owned())
        })
        .collect()
}

/// For a use of a moved value at `site`: the first site of the function after the move, when
/// that comes before `site`. rustc names one use of a moved variable per compile, not always
/// the first (in a body's instrumented copy, the last of a run of sites capturing it), so
/// dropping the capture from the use on took a round per site.
/// (Only a site where `name` is the same binding: a drop from there on covers the later ones.)
fn after_move(
    err: &FileError,
    sites: &FileSites,
    rw: &Rewritten,
    (ctx, site): (usize, usize),
    name: &str,
) -> Option<usize> {
    if err.code.as_deref() != Some("E0382") {
        return None;
    }
    let moved = err.moved_at.filter(|&m| m < err.byte)?;
    let binding = binding_of(sites, site, name)?;
    rw.placed
        .iter()
        .filter(|q| q.site < site && q.range.start > moved)
        .filter(|q| sites.sites.get(q.site).is_some_and(|s| s.context == ctx))
        .filter(|q| binding_of(sites, q.site, name) == Some(binding))
        .map(|q| q.site)
        .min()
}

/// The type and trait of "the trait bound `TYPE: TRAIT` is not satisfied".
fn unmet_bound(message: &str) -> Option<(&str, &str)> {
    message
        .strip_prefix("the trait bound `")?
        .strip_suffix("` is not satisfied")?
        .rsplit_once(": ")
}

/// The type a label says lacks `Debug` ("the trait `Debug` is not implemented for `Big`").
fn lacks_debug(label: &str) -> Option<&str> {
    let rest = label
        .strip_prefix("the trait `Debug` is not implemented for `")
        .or_else(|| label.strip_prefix("the trait `std::fmt::Debug` is not implemented for `"))
        .or_else(|| label.strip_prefix("the trait `core::fmt::Debug` is not implemented for `"))?;
    rest.strip_suffix('`')
}

/// The runtime's capture trait as rustc names it (`probe_runtime::Cap`, or `Cap`).
fn is_cap(tr: &str) -> bool {
    tr == "Cap" || tr.ends_with("::Cap")
}

/// The capture trait of a body's instrumented copy (`probe_runtime::CapRef`): met by every
/// `Debug` type, so a binding that does not meet it has no `Debug`.
fn is_cap_ref(tr: &str) -> bool {
    tr == "CapRef" || tr.ends_with("::CapRef")
}

/// A type name that means the same wherever it appears in a crate (rustc shortens a path only
/// when the name is unique): not what looks like a generic parameter (`P`, `T2`) or a
/// projection through one (`<I as IntoIterator>::IntoIter`). Names are compared within one
/// package (one compiler run).
fn concrete(ty: &str) -> bool {
    !ty.contains(" as ")
        && (ty.contains("::")
            || ty.contains('<')
            || ty.len() > 2
                && !ty
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()))
}

/// Decides the exclusion for one error; applies it to `ex` and says what it was. `not_debug`:
/// the concrete types this round reported without `Debug` ([`not_debug_types`]); rustc reports
/// a type's missing `Debug` at some of its captures and only the missing `SmallCopy` at others,
/// so a binding of such a type steps down straight to the type name (one round fewer).
pub fn judge(
    err: &FileError,
    sites: &FileSites,
    rw: &Rewritten,
    ex: &mut Exclusions,
    not_debug: &HashSet<String>,
) -> Action {
    if ex.file_original {
        return Action::None;
    }
    // (Several errors of one round may point there: each gets the same answer.)
    if rw.in_crate_module(err.byte) {
        ex.no_crate_flags = true;
        return Action::NoCrateFlags;
    }
    // An unsatisfied bound at a capture: its type is not small and `Copy`, or not `Debug`.
    if err.code.as_deref() == Some("E0277") {
        if let Some(a) = capture_at(rw, err.byte).and_then(|(p, name, r)| {
            // A capture of an instrumented copy (`hit_ref`) is bound by `CapRef` alone.
            let in_copy = rw
                .text
                .get(p.range.clone())
                .is_some_and(|t| t.contains("::hit_ref"));
            let capture = (name.as_str(), &rw.text[r.clone()], in_copy);
            demote(err, sites, p.site, capture, ex, not_debug)
        }) {
            return a;
        }
    }
    // An error in an entry site's one cold call, captures aside, or a borrow error it takes
    // part in (a reborrowed `&mut` that the body goes on to use after a conditional return):
    // the two calls, which move nothing the body uses.
    let borrowish = err
        .code
        .as_deref()
        .is_none_or(|c| BORROW_CODES.contains(&c));
    let mut spans = std::iter::once(err.byte).chain(err.also.iter().copied().filter(|_| borrowish));
    let in_one_call = |b: usize| {
        rw.placed.iter().find(|p| {
            p.one_call && p.range.contains(&b) && !p.captures.iter().any(|(_, r)| r.contains(&b))
        })
    };
    if let Some(p) = spans.find_map(in_one_call) {
        let ctx = sites.sites.get(p.site).map_or(0, |s| s.context);
        if ex.no_one_call.insert(ctx) {
            return Action::NoOneCall { context: ctx };
        }
    }
    // A borrow error at a capture: that capture's borrow is the conflict (dropping another
    // capture the error also names, say the use of the `&mut` borrow it meets, would leave
    // the program's own later use of it, and the same error a round later).
    let borrow = err
        .code
        .as_deref()
        .is_some_and(|c| BORROW_CODES.contains(&c));
    // Else a capture named by a secondary span (e.g. "immutable borrow later used here") is
    // the culprit of a borrow error reported elsewhere.
    let primary = borrow.then_some(err.byte);
    if let Some((p, name, _)) = primary
        .into_iter()
        .chain(err.also.iter().copied())
        .find_map(|b| capture_at(rw, b))
    {
        let ctx = sites.sites.get(p.site).map_or(0, |s| s.context);
        let from = after_move(err, sites, rw, (ctx, p.site), name).unwrap_or(p.site);
        ex.drop_var_from.insert((ctx, name.clone(), from));
        return Action::DropVarFrom {
            site: from,
            name: name.clone(),
        };
    }
    // The text that writes a body twice: write it once.
    if let Some((ctx, _)) = rw.twice.iter().find(|(_, r)| r.contains(&err.byte)) {
        if ex.no_twice.insert(*ctx) {
            return Action::NoTwice { context: *ctx };
        }
    }
    for p in &rw.placed {
        if !p.range.contains(&err.byte) {
            continue;
        }
        let ctx = sites.sites.get(p.site).map_or(0, |s| s.context);
        // The call by which an entry times itself: time with a guard instead.
        if p.recall.as_ref().is_some_and(|r| r.contains(&err.byte)) && ex.no_recall.insert(ctx) {
            return Action::NoRecall { context: ctx };
        }
        // (A borrow error at a capture was taken above.)
        for (name, r) in &p.captures {
            if r.contains(&err.byte) {
                ex.drop_capture.insert((p.site, name.clone()));
                return Action::DropCapture {
                    site: p.site,
                    name: name.clone(),
                };
            }
        }
        ex.drop_site.insert(p.site);
        return Action::DropSite { site: p.site };
    }
    // Innermost function containing the error.
    let ctx = sites
        .contexts
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            let (s, e) = (rw.map_offset(c.start), rw.map_offset(c.end));
            s <= err.byte && err.byte < e
        })
        .min_by_key(|(_, c)| c.end - c.start)
        .map(|(i, _)| i);
    if let Some(ctx) = ctx {
        let has_probes =
            sites.sites.iter().any(|s| s.context == ctx) && !ex.fn_no_probes.contains(&ctx);
        // Written twice, a body may not compile where it did once (two closures in the two
        // copies are two types): one body first, before taking probes out.
        if has_probes && rw.twice.iter().any(|(c, _)| *c == ctx) && ex.no_twice.insert(ctx) {
            return Action::NoTwice { context: ctx };
        }
        if has_probes {
            if ex.fn_no_captures.insert(ctx) {
                return Action::FnNoCaptures { context: ctx };
            }
            ex.fn_no_probes.insert(ctx);
            return Action::FnNoProbes { context: ctx };
        }
    }
    if rw.placed.is_empty() && !has_extern_crate(rw) {
        return Action::None;
    }
    ex.file_original = true;
    Action::FileOriginal
}

/// Steps the binding captured as `name` at `site` (as `text` this round) down to the form the
/// error asks for; `None` when it is already there (the capture is then dropped like any
/// other).
fn demote(
    err: &FileError,
    sites: &FileSites,
    site: usize,
    (name, text, in_copy): (&str, &str, bool),
    ex: &mut Exclusions,
    not_debug: &HashSet<String>,
) -> Option<Action> {
    let b = binding_of(sites, site, name)?;
    let (call, text) = checked_capture(text);
    let rendered = form_of_text(text);
    // A capture of an instrumented copy (`cap_ref`, or in the plain array of `hit_ref`) has
    // one bound, `CapRef`, that is `Debug`: whatever part of a type rustc names as lacking
    // (`F: Copy` for a `Cell<Option<F>>`), no `Debug`.
    let only_debug = call == Some("cap_ref") || in_copy;
    let m = &err.message;
    // rustc names the capture's own type when `Cap` is not met ("the trait bound
    // `&Formatter<'_>: probe_runtime::Cap` is not satisfied"), or the bound of `Cap`'s blanket
    // impl that is not (`SmallCopy`, `Debug`). A shared reference is always a small copy, so a
    // reference that is not a capture has a target without `Debug`.
    let unmet = unmet_bound(m);
    let no_debug = match unmet {
        Some((_, tr)) if is_cap_ref(tr) => true,
        Some((ty, tr)) if is_cap(tr) || tr.ends_with("SmallCopy") => {
            (is_cap(tr) && ty.starts_with('&')) || not_debug.contains(ty)
        }
        _ => false,
    };
    let to = if only_debug
        || m.contains("`Debug`")
        || m.contains("fmt::Debug`")
        || m.contains(": Debug`")
        || no_debug
        || lacks_debug(&err.label).is_some()
    {
        Form::Opaque
    } else {
        Form::Ref
    };
    // Compared with the form this round's text has (an earlier error of the same round may
    // already have stepped the binding down).
    let stepped = match (rendered, to) {
        (Form::Copy, Form::Ref) => {
            ex.by_ref.insert(b);
            true
        }
        (Form::Copy | Form::Ref, Form::Opaque) => {
            ex.opaque.insert(b);
            true
        }
        _ => false,
    };
    stepped.then(|| Action::Demote {
        site,
        name: name.to_owned(),
        to,
    })
}

/// A capture of a checked list (`rewrite::CaptureList::Checked`): the function it goes through
/// (`cap`, `cap_ref`, `cap_t`) and the capture inside; a plain capture as it is.
fn checked_capture(t: &str) -> (Option<&str>, &str) {
    for f in ["cap_ref", "cap_t", "cap"] {
        for home in crate::build::rewrite::CALL_HOMES {
            let call = format!("{home}::{f}(");
            if let Some(inner) = t.strip_prefix(&call).and_then(|r| r.strip_suffix(')')) {
                return (Some(f), inner);
            }
        }
    }
    (None, t)
}

/// The form a capture's generated text has (`rewrite`'s `captures`): a type name through
/// `Opaque::of(…)`; a reference `&b`, `&&b` or `&*v`; a copy, the bare name or `&(a,).0`.
fn form_of_text(t: &str) -> Form {
    if t.contains("::Opaque::of(") {
        Form::Opaque
    } else if t.starts_with('&') && !t.starts_with("&(") {
        Form::Ref
    } else {
        Form::Copy
    }
}

/// The capture whose text contains byte `b`, with its probe and its text's range.
fn capture_at(
    rw: &Rewritten,
    b: usize,
) -> Option<(&crate::build::rewrite::Placed, &String, &Range<usize>)> {
    rw.placed
        .iter()
        .filter(|p| p.range.contains(&b))
        .find_map(|p| {
            p.captures
                .iter()
                .find(|(_, r)| r.contains(&b))
                .map(|(n, r)| (p, n, r))
        })
}

fn has_extern_crate(rw: &Rewritten) -> bool {
    rw.text.contains(" extern crate lprobe_sites;")
}

/// One cached outcome: the exclusions a file needed, valid while its content and its line
/// selection are unchanged.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CacheEntry {
    pub hash: String,
    pub lines: String,
    pub exclusions: Exclusions,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Cache {
    pub version: u32,
    /// The rewriter that made these decisions ([`tool_hash`]): another one may place probes
    /// differently, so its outcomes are not reused.
    #[serde(default)]
    pub tool: String,
    /// Per file, its outcomes for the line selections built most recently (newest first): a
    /// workspace built both ways (entry sites, `--lines all`) runs no repair round either way.
    pub files: BTreeMap<String, Vec<CacheEntry>>,
}

const CACHE_VERSION: u32 = 2;

/// Line selections remembered per file.
const SELECTIONS_KEPT: usize = 4;

/// A hash of the code that decides what a rewritten file looks like.
pub fn tool_hash() -> String {
    let mut text = String::new();
    for part in [
        include_str!("visit.rs"),
        include_str!("rewrite.rs"),
        include_str!("repair.rs"),
        include_str!("../../runtime-src/lib.rs"),
    ] {
        text.push_str(part);
    }
    content_hash(text.as_bytes())
}

impl Cache {
    /// The caches at `paths` that hold one from this rewriter, merged: a file's outcomes
    /// come from the first that has them.
    pub fn load(paths: &[&Path]) -> Cache {
        let tool = tool_hash();
        let mut merged = Cache::default();
        for c in paths
            .iter()
            .filter_map(|p| std::fs::read(p).ok())
            .filter_map(|b| serde_json::from_slice::<Cache>(&b).ok())
            .filter(|c| c.version == CACHE_VERSION && c.tool == tool)
        {
            merged.version = c.version;
            merged.tool = c.tool;
            for (file, entries) in c.files {
                merged.files.entry(file).or_insert(entries);
            }
        }
        merged
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let mut c = self.clone();
        c.version = CACHE_VERSION;
        c.tool = tool_hash();
        let text = serde_json::to_vec_pretty(&c)?;
        crate::build::copy_tree::write_if_changed(path, &text)?;
        Ok(())
    }

    pub fn get(&self, file: &str, hash: &str, lines: &str) -> Option<&Exclusions> {
        self.files
            .get(file)?
            .iter()
            .find(|e| e.hash == hash && e.lines == lines)
            .map(|e| &e.exclusions)
    }

    /// Records `entry` for `file` as its newest outcome: replaces the one for the same line
    /// selection, and forgets outcomes for older contents of the file.
    pub fn put(&mut self, file: &str, entry: CacheEntry) {
        let list = self.files.entry(file.to_owned()).or_default();
        list.retain(|e| e.hash == entry.hash && e.lines != entry.lines);
        list.insert(0, entry);
        list.truncate(SELECTIONS_KEPT);
    }
}

/// A stable content hash (FNV-1a, 64 bits, hex), also linked into the site table.
pub fn content_hash(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`super::judge`] in a round that reported no type without `Debug`.
    fn judge(err: &FileError, sites: &FileSites, rw: &Rewritten, ex: &mut Exclusions) -> Action {
        super::judge(err, sites, rw, ex, &HashSet::new())
    }
    use crate::build::rewrite::{rewrite, CaptureList, FlagsHome};
    use crate::build::visit::{find_sites, LineSel};

    fn setup(src: &str) -> (FileSites, Rewritten) {
        setup_with(src, FlagsHome::SitesCrate)
    }

    fn setup_with(src: &str, flags: FlagsHome) -> (FileSites, Rewritten) {
        let file = syn::parse_file(src).expect("parses");
        let fs = find_sites(src, &file, "k", &LineSel::All);
        let ex = Exclusions::default();
        let rw = rewrite(
            src,
            &fs,
            Default::default(),
            &ex,
            None,
            flags,
            CaptureList::Plain,
        );
        (fs, rw)
    }

    fn error_at(code: &str, message: &str, byte: usize) -> FileError {
        FileError {
            code: Some(code.into()),
            message: message.into(),
            label: String::new(),
            byte,
            also: vec![],
            moved_at: None,
        }
    }

    /// `src` rewritten again with what repair has taken out so far.
    fn again(src: &str, fs: &FileSites, ex: &Exclusions) -> Rewritten {
        again_listed(src, fs, ex, CaptureList::Plain)
    }

    /// [`again`] with the captures listed as `list`.
    fn again_listed(src: &str, fs: &FileSites, ex: &Exclusions, list: CaptureList) -> Rewritten {
        rewrite(
            src,
            fs,
            Default::default(),
            ex,
            None,
            FlagsHome::SitesCrate,
            list,
        )
    }

    /// The capture of `s` at `site` stepped down to the type name.
    fn s_to_opaque(site: usize) -> Action {
        Action::Demote {
            site,
            name: "s".into(),
            to: Form::Opaque,
        }
    }

    /// An E0277 with `message` at the capture of `s` at `site`.
    fn unmet_at_s(message: &str, rw: &Rewritten, site: usize) -> FileError {
        let p = rw.placed.iter().find(|p| p.site == site).expect("placed");
        let (_, r) = p.captures.iter().find(|(n, _)| n == "s").expect("captured");
        // Where rustc's span starts: at the capture (`&(s,).0` in an array, the bare `s` of an
        // argument).
        error_at("E0277", message, r.start)
    }

    #[test]
    fn an_unsatisfied_bound_steps_the_binding_down_a_form_then_drops_it() {
        // (A generic parameter bounded by a trait that may imply `Debug` starts as a copy, like a
        // `let` of unknown type; the body declares an item, so it is written once.)
        let src = "fn f<T: Tr>(s: T) {\n    let t = 1;\n    let u = 2;\n    struct G;\n}\n";
        let (fs, rw) = setup(src);
        let again = |ex: &Exclusions| again(src, &fs, ex);
        let bound = unmet_at_s;
        let mut ex = Exclusions::default();
        let not_copy = "the trait bound `String: probe_runtime::SmallCopy` is not satisfied";
        let demoted = judge(&bound(not_copy, &rw, 2), &fs, &rw, &mut ex);
        let to = Form::Ref;
        assert_eq!(
            demoted,
            Action::Demote {
                site: 2,
                name: "s".into(),
                to
            }
        );
        // The same round reports it at the binding's other sites: no further change.
        judge(&bound(not_copy, &rw, 1), &fs, &rw, &mut ex);
        assert_eq!(ex.form(&fs, 1, "s"), Form::Ref);
        assert_eq!(ex.form(&fs, 0, "s"), Form::Ref);
        let no_debug = "`String` doesn't implement `Debug`";
        let rw = again(&ex);
        judge(&bound(no_debug, &rw, 2), &fs, &rw, &mut ex);
        assert_eq!(ex.form(&fs, 2, "s"), Form::Opaque);
        assert!(ex.keeps_capture(&fs, 2, "s"));
        // A type this round reported without `Debug` elsewhere goes straight to the type name.
        let spans = "the trait bound `Spans<'_>: probe_runtime::SmallCopy` is not satisfied";
        let seen = not_debug_types(
            [
                error_at("E0277", "`Spans<'_>` doesn't implement `Debug`", 0),
                error_at("E0277", "`P` doesn't implement `Debug`", 0),
            ]
            .iter(),
        );
        assert_eq!(seen, HashSet::from(["Spans<'_>".to_owned()]));
        let mut ex2 = Exclusions::default();
        let rw2 = again(&ex2);
        super::judge(&bound(spans, &rw2, 2), &fs, &rw2, &mut ex2, &seen);
        assert_eq!(ex2.form(&fs, 2, "s"), Form::Opaque);
        // Opaque and still failing: the capture goes.
        let rw = again(&ex);
        let action = judge(&bound(no_debug, &rw, 2), &fs, &rw, &mut ex);
        assert_eq!(
            action,
            Action::DropCapture {
                site: 2,
                name: "s".into()
            }
        );
    }

    #[test]
    fn an_error_in_the_crate_flags_module_moves_the_flags_back_to_the_sites_crate() {
        let src = "#![deny(unsafe_code)]\nfn f() {}\n";
        let root = FlagsHome::Crate {
            define: Some((
                1,
                1,
                crate::build::sites_crate::FlagAccess::Direct,
                crate::build::rewrite::Host::Own,
            )),
        };
        let (fs, rw) = setup_with(src, root);
        let m = rw.crate_module.clone().expect("module");
        let mut ex = Exclusions::default();
        let err = error_at("E0453", "allow(unsafe_code) incompatible", m.start + 20);
        assert_eq!(judge(&err, &fs, &rw, &mut ex), Action::NoCrateFlags);
        assert!(ex.no_crate_flags && !ex.file_original);
    }

    /// In the instrumented copy of a body written twice every binding starts as a plain
    /// reference (`hit_ref`): an unmet `CapRef` means no `Debug`, so the type name, at once.
    #[test]
    fn an_unmet_cap_ref_in_a_body_written_twice_steps_straight_to_the_type_name() {
        let src = "fn f<T: Tr>(s: T) {\n    let t = 1;\n    let u = 2;\n}\n";
        let (fs, rw) = setup(src);
        assert!(rw.text.contains("::lprobe_sites::hit_ref(2, &[&s, &t])"));
        let mut ex = Exclusions::default();
        let no_debug = "the trait bound `Big: probe_runtime::CapRef` is not satisfied";
        let action = judge(&unmet_at_s(no_debug, &rw, 2), &fs, &rw, &mut ex);
        assert_eq!(action, s_to_opaque(2));
        let rw = again(src, &fs, &ex);
        assert!(rw
            .text
            .contains("::lprobe_sites::hit_ref(2, &[&::lprobe_sites::Opaque::of(&s), &t])"));
        assert_eq!(
            not_debug_types([error_at("E0277", no_debug, 0)].iter()),
            HashSet::from(["Big".to_owned()])
        );
    }

    /// A file repaired from scratch lists each capture through a call (`cap`, `cap_ref`), and
    /// rustc then names the part of the type that lacks a bound (once_cell's `Lazy::force`:
    /// `F: Copy` and `F doesn't implement Debug` for a `Cell<Option<F>>`).
    #[test]
    fn an_unmet_bound_at_a_checked_capture_steps_down_like_a_plain_one() {
        let not_copy = "the trait bound `F: Copy` is not satisfied";
        let no_debug = "`F` doesn't implement `Debug`";
        // The file rewritten with checked captures: `s`'s capture is `first`.
        let checked = |src: &str, first: &str| {
            let (fs, _) = setup(src);
            let rw = again_listed(src, &fs, &Exclusions::default(), CaptureList::Checked);
            assert!(rw.text.contains(first), "{}", rw.text);
            (fs, rw)
        };
        // Written twice: `cap_ref` asks for `Debug` only, so either message means the type
        // name (which always compiles, so it is not checked).
        let src = "fn f<T: Tr>(s: T) {\n    let t = 1;\n    let u = 2;\n}\n";
        let (fs, rw) = checked(src, "::lprobe_sites::cap_ref(&s)");
        for message in [not_copy, no_debug] {
            let mut ex = Exclusions::default();
            let action = judge(&unmet_at_s(message, &rw, 2), &fs, &rw, &mut ex);
            assert_eq!(action, s_to_opaque(2), "{message}");
            let text = again_listed(src, &fs, &ex, CaptureList::Checked).text;
            assert!(text.contains("[&::lprobe_sites::Opaque::of(&s)"), "{text}");
        }
        // A plain list of an instrumented copy (an outcome remembered): any unmet bound at
        // a capture there means no `Debug` too.
        let (fs, rw) = setup(src);
        let mut ex = Exclusions::default();
        let action = judge(&unmet_at_s(not_copy, &rw, 2), &fs, &rw, &mut ex);
        assert_eq!(action, s_to_opaque(2));
        // Written once: a line's captures are a tuple, each through `cap_t`, a small copy
        // with `Debug`: then a reference, or the name.
        let src = "fn f<T: Tr>(s: T) {\n    let t = 1;\n    let u = 2;\n    struct G;\n}\n";
        let (fs, rw) = checked(
            src,
            "::lprobe_sites::hit_t(2, (::lprobe_sites::cap_t(s), ::lprobe_sites::cap_t(t),))",
        );
        let mut ex = Exclusions::default();
        judge(&unmet_at_s(not_copy, &rw, 2), &fs, &rw, &mut ex);
        assert_eq!(ex.form(&fs, 2, "s"), Form::Ref);
        let rw = again_listed(src, &fs, &ex, CaptureList::Checked);
        assert!(
            rw.text.contains(
                "::lprobe_sites::hit_t(2, (::lprobe_sites::cap_t(&s), ::lprobe_sites::cap_t(t),))"
            ),
            "{}",
            rw.text
        );
        let action = judge(&unmet_at_s(no_debug, &rw, 2), &fs, &rw, &mut ex);
        assert_eq!(action, s_to_opaque(2));
        let rw = again_listed(src, &fs, &ex, CaptureList::Checked);
        assert!(
            rw.text
                .contains("::lprobe_sites::hit_t(2, (::lprobe_sites::Opaque::of(&s), ::lprobe_sites::cap_t(t),))"),
            "{}",
            rw.text
        );
    }

    /// The messages rustc 1.95 gives for the capture expressions (`&(s,).0`, `&&s`, `&*v`): the
    /// unmet bound is `Cap` itself, on the captured type.
    #[test]
    fn an_unmet_cap_steps_a_copy_to_a_reference_and_a_reference_to_the_type_name() {
        let src = "fn f<T: Tr>(s: T) {\n    let t = 1;\n    let u = 2;\n    struct G;\n}\n";
        let (fs, rw) = setup(src);
        let bound = unmet_at_s;
        let mut ex = Exclusions::default();
        let not_copy = "the trait bound `Big: probe_runtime::Cap` is not satisfied";
        judge(&bound(not_copy, &rw, 2), &fs, &rw, &mut ex);
        assert_eq!(ex.form(&fs, 2, "s"), Form::Ref);
        let rw = again(src, &fs, &ex);
        let no_debug = "the trait bound `&Big: probe_runtime::Cap` is not satisfied";
        let action = judge(&bound(no_debug, &rw, 2), &fs, &rw, &mut ex);
        assert_eq!(action, s_to_opaque(2));
        assert!(ex.keeps_capture(&fs, 2, "s"));
        // A reference reported elsewhere in the round: the copy goes straight to the type name.
        let seen = not_debug_types([error_at("E0277", no_debug, 0)].iter());
        assert_eq!(seen, HashSet::from(["Big".to_owned()]));
        let (mut ex2, rw2) = (Exclusions::default(), setup(src).1);
        super::judge(&bound(not_copy, &rw2, 2), &fs, &rw2, &mut ex2, &seen);
        assert_eq!(ex2.form(&fs, 2, "s"), Form::Opaque);
        // The label says what is missing: a copy of a type without `Debug` goes straight to
        // the type name, and the type counts as without `Debug` for the whole round.
        let labelled = FileError {
            label: "the trait `Debug` is not implemented for `Big`".into(),
            ..bound(not_copy, &rw2, 2)
        };
        let (mut ex3, rw3) = (Exclusions::default(), setup(src).1);
        judge(&labelled, &fs, &rw3, &mut ex3);
        assert_eq!(ex3.form(&fs, 2, "s"), Form::Opaque);
        assert_eq!(
            not_debug_types([labelled].iter()),
            HashSet::from(["Big".to_owned()])
        );
        // A generic parameter's name means nothing outside its function.
        let generic = "the trait bound `&T: Cap` is not satisfied";
        assert!(not_debug_types([error_at("E0277", generic, 0)].iter()).is_empty());
    }

    #[test]
    fn a_moved_value_is_dropped_from_that_site_onward() {
        let src = "fn f(s: String) {\n    drop(s);\n    let t = 1;\n}\n";
        let (fs, rw) = setup(src);
        let p = rw.placed.iter().find(|p| p.site == 2).expect("placed");
        let (_, r) = p
            .captures
            .iter()
            .find(|(n, _)| n == "s")
            .expect("captures s");
        let err = FileError {
            code: Some("E0382".into()),
            message: "borrow of moved value".into(),
            label: String::new(),
            byte: r.end - 1,
            also: vec![],
            moved_at: None,
        };
        let mut ex = Exclusions::default();
        assert_eq!(
            judge(&err, &fs, &rw, &mut ex),
            Action::DropVarFrom {
                site: 2,
                name: "s".into()
            }
        );
        assert!(!ex.keeps_capture(&fs, 2, "s"));
        assert!(ex.keeps_capture(&fs, 1, "s"));
    }

    #[test]
    fn a_moved_value_is_dropped_from_the_move_on_when_rustc_names_a_later_use() {
        let src = "fn f(s: String) {\n    drop(s);\n    let t = 1;\n    let u = t + 1;\n    let v = u + 1;\n}\n";
        let (fs, rw) = setup(src);
        let last = rw.placed.iter().map(|p| p.site).max().expect("sites");
        let p = rw.placed.iter().find(|p| p.site == last).expect("placed");
        let (_, r) = p
            .captures
            .iter()
            .find(|(n, _)| n == "s")
            .expect("captures s");
        let moved = rw.text.find("drop(s)").expect("move") + 5;
        let err = |moved_at| FileError {
            code: Some("E0382".into()),
            message: "borrow of moved value: `s`".into(),
            label: String::new(),
            byte: r.end - 1,
            also: vec![moved],
            moved_at,
        };
        let mut ex = Exclusions::default();
        // The first site after `drop(s)` (the one before `let t`), not the use rustc named.
        assert_eq!(
            judge(&err(Some(moved)), &fs, &rw, &mut ex),
            Action::DropVarFrom {
                site: 2,
                name: "s".into()
            }
        );
        assert!(ex.keeps_capture(&fs, 1, "s"));
        assert!((2..=last).all(|site| !ex.keeps_capture(&fs, site, "s")));
        // A move in a loop's earlier pass comes after the use: from the use on, as before.
        let mut ex = Exclusions::default();
        let later = FileError {
            moved_at: Some(r.end + 10),
            ..err(None)
        };
        assert_eq!(
            judge(&later, &fs, &rw, &mut ex),
            Action::DropVarFrom {
                site: last,
                name: "s".into()
            }
        );
    }

    #[test]
    fn a_one_call_entry_that_does_not_borrow_check_goes_back_to_two_calls_then_to_none() {
        // A `&mut self` method returning what borrows it through a lifetime the signature
        // hides (`Iter<u8>`): the reborrow taken for the one call stays borrowed by the
        // conditional return, and the body's own use of `self` then conflicts with it.
        let src = "struct S { v: Vec<u8> }\nimpl S {\n    #[inline]\n    fn all(&mut self) -> Iter<u8> {\n        struct G;\n        self.v.iter()\n    }\n}\n";
        let (fs, rw) = setup(src);
        let p = rw.placed.iter().find(|p| p.one_call).expect("one call");
        let ctx = fs.sites[p.site].context;
        let reborrow = rw.text.find("&mut *self").expect("reborrowed");
        assert!(p.range.contains(&reborrow));
        let err = FileError {
            code: Some("E0502".into()),
            message: "cannot borrow `self.v` as immutable because it is also borrowed as mutable"
                .into(),
            label: String::new(),
            byte: rw.text.find("self.v.iter()").expect("body"),
            also: vec![reborrow],
            moved_at: None,
        };
        let mut ex = Exclusions::default();
        assert_eq!(
            judge(&err, &fs, &rw, &mut ex),
            Action::NoOneCall { context: ctx }
        );
        let rw = again(src, &fs, &ex);
        let p = rw
            .placed
            .iter()
            .find(|p| p.recall.is_some())
            .expect("recall");
        assert!(!p.one_call);
        assert!(
            rw.text.contains("return ::lprobe_sites::again("),
            "{}",
            rw.text
        );
        // An error in the call itself, from there on: timed by a guard.
        let err = FileError {
            byte: p.recall.clone().expect("recall").start,
            code: Some("E0308".into()),
            also: vec![],
            ..err
        };
        assert_eq!(
            judge(&err, &fs, &rw, &mut ex),
            Action::NoRecall { context: ctx }
        );
    }

    #[test]
    fn errors_elsewhere_escalate_from_function_to_file() {
        let src = "fn f(a: u8) -> u8 {\n    a + 1\n}\n";
        let (fs, rw) = setup(src);
        let byte = rw.text.find("+ 1").expect("has body");
        let err = FileError {
            code: Some("E0308".into()),
            message: "mismatched".into(),
            label: String::new(),
            byte,
            also: vec![],
            moved_at: None,
        };
        let mut ex = Exclusions::default();
        // Written twice first, the body goes back to one copy before anything is taken out.
        assert_eq!(
            judge(&err, &fs, &rw, &mut ex),
            Action::NoTwice { context: 0 }
        );
        assert_eq!(
            judge(&err, &fs, &rw, &mut ex),
            Action::FnNoCaptures { context: 0 }
        );
        assert_eq!(
            judge(&err, &fs, &rw, &mut ex),
            Action::FnNoProbes { context: 0 }
        );
        let rw2 = again(src, &fs, &ex);
        assert_eq!(judge(&err, &fs, &rw2, &mut ex), Action::None);
    }

    #[test]
    fn a_capture_named_only_by_a_secondary_span_is_the_one_dropped() {
        let src = "fn f(v: &mut Vec<u8>) {\n    let first = &v[0];\n    v.push(1);\n}\n";
        let (fs, rw) = setup(src);
        let p = rw.placed.iter().find(|p| p.site == 2).expect("placed");
        let (_, r) = p
            .captures
            .iter()
            .find(|(n, _)| n == "first")
            .expect("captures first");
        let err = FileError {
            code: Some("E0502".into()),
            message: "cannot borrow `*v` as mutable".into(),
            label: String::new(),
            byte: rw.text.find("v.push").expect("push"),
            also: vec![r.start + 2],
            moved_at: None,
        };
        let mut ex = Exclusions::default();
        assert_eq!(
            judge(&err, &fs, &rw, &mut ex),
            Action::DropVarFrom {
                site: 2,
                name: "first".into()
            }
        );
    }

    #[test]
    fn hash_is_stable() {
        assert_eq!(content_hash(b"abc"), "e71fa2190541574b");
    }

    #[test]
    fn the_cache_is_found_in_the_first_place_that_has_one_from_this_rewriter() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (own, shared) = (dir.path().join("own.json"), dir.path().join("shared.json"));
        let mut c = Cache::default();
        let entry = |hash: &str, lines: &str| CacheEntry {
            hash: hash.into(),
            lines: lines.into(),
            exclusions: Exclusions::default(),
        };
        c.put("src/lib.rs", entry("h", "all"));
        c.put("src/lib.rs", entry("h", "entry"));
        // Both line selections are remembered; a new content replaces them.
        assert!(c.get("src/lib.rs", "h", "all").is_some());
        assert!(c.get("src/lib.rs", "h", "entry").is_some());
        let mut newer = c.clone();
        newer.put("src/lib.rs", entry("h2", "all"));
        assert!(newer.get("src/lib.rs", "h", "entry").is_none());
        assert!(newer.get("src/lib.rs", "h2", "all").is_some());
        c.save(&shared).expect("save");
        // Missing own cache: the shared one is used.
        let got = Cache::load(&[&own, &shared]);
        assert!(got.get("src/lib.rs", "h", "all").is_some());
        assert!(got.get("src/lib.rs", "other", "all").is_none());
        // A cache from another rewriter is ignored.
        let mut old: Cache =
            serde_json::from_slice(&std::fs::read(&shared).expect("read")).expect("parse");
        old.tool = "another".into();
        std::fs::write(&own, serde_json::to_vec(&old).expect("json")).expect("write");
        assert!(Cache::load(&[&own]).files.is_empty());
        assert!(!Cache::load(&[&own, &shared]).files.is_empty());
    }
}
