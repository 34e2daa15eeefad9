//! The only syn visitor: finds probe sites in one source file and the bindings in scope at each.
//!
//! A *site* is a byte offset in the original text where probe code is spliced in: right after
//! the opening brace of a function body (an *entry* site) or right before a statement or a
//! block's tail expression (a *line* site). Sites are numbered in source order, independent of
//! any exclusion, so that cached repair outcomes stay valid across rounds and builds.
//!
//! The *context* of a site is the nearest enclosing function item (nested `fn` items are their
//! own context; closures and async blocks belong to the item that contains them). Repair falls
//! back per context.

use std::borrow::Cow;
use std::collections::HashSet;

use proc_macro2::{LineColumn, Span};
use syn::spanned::Spanned;
use syn::visit::Visit;

use crate::build::cfg::Pred;
use crate::build::recall::Owner;
use crate::build::skip::SkipList;

/// Which statement lines of a file get line sites.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineSel {
    All,
    None,
    Some(HashSet<u32>),
}

impl LineSel {
    fn wants(&self, line: u32) -> bool {
        match self {
            LineSel::All => true,
            LineSel::None => false,
            LineSel::Some(set) => set.contains(&line),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SiteKind {
    Entry,
    Line,
}

impl SiteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SiteKind::Entry => "entry",
            SiteKind::Line => "line",
        }
    }
}

/// One probe site found in a file.
#[derive(Clone, Debug)]
pub struct Site {
    /// Byte offset in the original text where the probe is inserted.
    pub offset: usize,
    pub line: u32,
    /// 1-based column (in characters) of the statement or body the site stands for.
    pub col: u32,
    pub kind: SiteKind,
    /// Function path, e.g. `demo_app::billing::Invoice::total`.
    pub func: String,
    /// Index of the function context (see module docs).
    pub context: usize,
    /// Names of the bindings in scope, outermost first, each once.
    pub names: Vec<String>,
    /// The binding (declaration) each name refers to here, parallel to `names`: a shadowing
    /// `let` is a new binding.
    pub bindings: Vec<u32>,
    /// Inside a closure or async block (cannot use the function's local armed flag).
    pub in_closure: bool,
    /// A line site before the first statement of a function body: nothing runs between the
    /// entry site and it, so the rewrite may check both in one out-of-line call.
    pub first_stmt: bool,
    /// An entry site that gets a timing guard when it cannot time its calls by calling the
    /// function again (`recall`): functions the author marked `#[inline]` and small ones
    /// ([`is_small`]) do not (the guard's drop on every return path would keep them from being
    /// inlined).
    pub timed: bool,
    /// At an entry site: the call of the function with its own arguments, by which a timed
    /// call times itself ([`crate::build::recall`]); `None` where the function keeps a guard.
    pub recall: Option<String>,
    /// The same call for a function that would keep a guard: the driver moves it to
    /// `recall` when the function is public or called from several functions.
    pub recall_guarded: Option<String>,
    /// At an entry site with a `recall`: the site as one cold call, where the arguments allow
    /// it ([`crate::build::recall::OneCall`]).
    pub one_call: Option<crate::build::recall::OneCall>,
    /// The driver moved `recall_guarded` to `recall` for a private generic function without an
    /// `inline` attribute: the rewrite marks it `#[inline]` (see `driver::promote_recalls`).
    pub inline_hint: bool,
}

/// The start of a loop body where a function's local armed flag is re-read, so that a loop
/// that never returns sees a probe armed while it runs.
#[derive(Clone, Debug)]
pub struct LoopHead {
    /// Byte offset just inside the body's `{`.
    pub offset: usize,
    pub context: usize,
    /// What makes it a loop that may wait, when that is only calls of functions by a bare
    /// name or a path from its own crate (`Self::f`, `crate::m::f`): their names. The driver
    /// drops the re-read when every one is a leaf of the crate (`FnContext::leaf`: no loop,
    /// no call), which cannot wait either (ryu's `div10`). `None`: a method, a macro or an
    /// `.await` (or a call through an expression).
    pub calls: Option<Vec<String>>,
}

/// A loop body in a function (outside closures and async blocks): where the rewrite may write
/// an iteration twice, dormant and instrumented (`rewrite`'s loop bodies).
#[derive(Clone, Debug)]
pub struct LoopBody {
    /// Byte offset just inside the body's `{` (after its inner attributes).
    pub open: usize,
    /// Byte offset of the body's `}`.
    pub close: usize,
    pub context: usize,
    /// It declares no item, invokes no macro but [`PLAIN_MACROS`] and awaits nothing
    /// ([`duplicable`]).
    pub duplicable: bool,
    /// The names it calls (last segments of call paths, and method names), nested loops and
    /// closures included: written twice, it would call each of them from two places.
    pub calls: Vec<String>,
    /// It calls a function of its crate that is called from one place only (set by the
    /// driver): written twice, that function would lose the optimizer's bonus for inlining a
    /// function's one call.
    pub calls_once: bool,
}

/// A closure's block body in a function (not `async`): where the rewrite may write the body
/// twice under its function's flag (`rewrite`'s closure bodies).
#[derive(Clone, Debug)]
pub struct ClosureBody {
    /// Byte offset just inside the body's `{` (after its inner attributes).
    pub open: usize,
    /// Byte offset of the body's `}`.
    pub close: usize,
    pub context: usize,
    /// It declares no item, invokes no macro but [`PLAIN_MACROS`], awaits nothing and has no
    /// loop (nor an iterator-running method): each call of it is over soon, so checking the
    /// flag once per call is as prompt as a check at each of its sites.
    pub duplicable: bool,
}

/// A function item with a body, whether instrumented or not.
#[derive(Clone, Debug)]
pub struct FnContext {
    pub func: String,
    /// Byte range of the whole item in the original text.
    pub start: usize,
    pub end: usize,
    pub line: u32,
    pub last_line: u32,
    /// Why the function gets no sites, if it gets none.
    pub skipped: Option<Cow<'static, str>>,
    /// The names of the functions and methods its body calls (sorted, once each), with how
    /// many calls of each it makes: where a tiny function without sites finds callers to
    /// suggest, and how many call sites a function has.
    pub calls: Vec<(String, u32)>,
    /// Those of [`FnContext::calls`] that may be of a method: method calls and paths through
    /// a type (`T::f(…)`), not a bare name or a path through modules (`m::f(…)`).
    pub method_calls: Vec<(String, u32)>,
    /// A method (of an `impl` or a trait), called by method syntax or through a type; else
    /// a function of a module or a block, called by a path.
    pub method: bool,
    /// Those of [`FnContext::calls`] whose callee the syntax names, by its path (as
    /// [`FnContext::func`] names it): calls through `self` in a method (`self.f(…)`,
    /// `Self::f(…)`: `m::T::f`, ast's and hir's `HeapVisitor` each call their own
    /// `self.induct(…)`), and of a method of a value a type of this module just made
    /// (`HeapVisitor::new().visit(…)`: `m::HeapVisitor::visit`).
    pub own_calls: Vec<(String, u32)>,
    /// Calls through a module path or of a bare name, as the path of the function they
    /// would be if it is one of this crate's (`super::swar::f(…)` in `k::simd::runtime`:
    /// `k::simd::swar::f`; `f(…)`: `k::simd::runtime::f`). The driver counts one by that
    /// path when the crate has a function there, else by its name.
    pub path_calls: Vec<(String, u32)>,
    /// The `#[cfg]`s it is compiled under: its file's `mod` declarations, inline modules,
    /// its `impl` or trait, and its own.
    pub cfg: Pred,
    /// Visible outside its module (`pub` in any form), or a trait method: it may be called
    /// from anywhere, not only from the calls this package's sources show.
    pub public: bool,
    /// May be called from outside its crate: `pub` in a module every `mod` on the way to a
    /// library root declares `pub`, or a trait method. (A re-export by `pub use` is the
    /// driver's to see: `FileSites::reexports`.)
    pub exported: bool,
    /// Calls nothing and has no loop (arithmetic on its arguments, like ryu's `div10`): a
    /// loop that calls it cannot wait on the outside world through it.
    pub leaf: bool,
    /// Compiled only into tests: under `#[cfg(test)]` (itself or a module around it) or a
    /// `#[test]`. Its calls do not count as call sites of the release build.
    pub test_only: bool,
    /// More than [`LARGE_FN_TOKENS`] tokens in its body (found only for functions that
    /// would keep a timing guard: `Site::recall_guarded`).
    pub large: bool,
    /// Its body can be written twice, dormant and instrumented (see `rewrite`): no item, no
    /// macro that may declare one ([`duplicable`]), not `async`, no `impl Trait` return, not
    /// `#[track_caller]` (the instrumented copy runs in a closure). A loop that re-reads the
    /// armed flag (`FileSites::loops`) rules it out too when the function has line sites.
    pub twice: bool,
    /// Has type or const parameters, its own, its `impl`'s or an `impl Trait` argument's: two calls of
    /// it may be of two instantiations, each called once (`stats::<f32>(…)`,
    /// `stats::<f64>(…)`), so its call sites do not count its uses.
    pub generic: bool,
    /// Has a type parameter of its own bounded by `Fn`, `FnMut` or `FnOnce` (or an `impl Fn…`
    /// argument): called with a closure, each call site is an instantiation of its own, called
    /// once (serde_json's `parse_str_bytes(…, |_, bytes| …)` from three places).
    pub takes_closure: bool,
    /// Says how to inline it: an `inline` attribute of any form (`#[inline(never)]` too), or
    /// `#[cold]`.
    pub inline_said: bool,
    /// rustc would copy it, as written, into each codegen unit and crate that calls it
    /// ([`copied_into_callers`]): with an entry site, the rewrite marks it `#[inline]`.
    pub copied: bool,
    /// Has `#[target_feature]`: it is inlined only into callers with the same features, so
    /// usually never (memchr's `find_impl`s, called through a dispatch).
    pub target_feature: bool,
    /// An `async fn`: its entry site runs at the future's first poll and its guard drops when
    /// the future completes, maybe on another thread, so it is never a `--frames` frame.
    pub is_async: bool,
    /// The return type as written (`()` when there is none): the instrumented copy's closure
    /// says it, so `return` and `?` inside it convert as they do in the function.
    pub ret: String,
    /// The parameters bound by a plain name, other than `self`, moved into locals of the
    /// instrumented copy in order (`let mut n = n;`): its closure would otherwise drop them in
    /// the order it captured them; as locals they drop in reverse order after the body's own
    /// locals, as parameters do.
    pub rebind: String,
    /// Byte offset of the body's closing brace.
    pub body_end: usize,
}

/// One name a `use` item brings into a module, or one glob of it.
#[derive(Clone, Debug)]
pub struct UseItem {
    /// The module the item is in (`k::simd`).
    pub module: String,
    /// The name it brings in (`f`, or `g` for `use m::f as g`); `None` for a glob.
    pub name: Option<String>,
    /// The path it names, resolved like a call's path (`Visitor::resolve_path`): the item's
    /// (`k::simd::swar::f`), or the glob's module (`k::simd::swar`).
    pub target: String,
    /// The `#[cfg]`s it is under.
    pub cfg: Pred,
}

/// Everything found in one file.
#[derive(Clone, Debug, Default)]
pub struct FileSites {
    pub sites: Vec<Site>,
    pub contexts: Vec<FnContext>,
    pub loops: Vec<LoopHead>,
    /// Every loop body of a function, outside closures (whether or not it has a head).
    pub loop_bodies: Vec<LoopBody>,
    pub closure_bodies: Vec<ClosureBody>,
    /// Bindings whose declared type is not small and `Copy` (parameters: `&mut self`,
    /// `s: String`, `v: &mut Vec<u8>`…): captured by reference from the first build on (see
    /// `rewrite::Form`; the others start as copies and the repair loop corrects wrong guesses).
    pub by_ref_first: HashSet<u32>,
    /// Parameters of a generic type whose bounds cannot give it `Debug` (`parser: P` with
    /// `P: Borrow<Parser>`, `w: impl fmt::Write`): no capture form but the type name compiles,
    /// so they start there ([`not_debug_generic`]). Saves the repair round that would learn it
    /// (rustc reports the missing `SmallCopy` first and the missing `Debug` a round later).
    pub opaque_first: HashSet<u32>,
    /// The bindings that are function parameters (the others are bound in the body).
    pub params: HashSet<u32>,
    /// The names `pub use` items of this file re-export (their last segments; `name::*` for a
    /// glob of `name`): a function or type named there may be reached from outside the crate.
    pub reexports: Vec<String>,
    /// The `use` items of this file: where a call of a bare name or through a module that
    /// has no function of that name goes (`driver::CallCounts`).
    pub uses: Vec<UseItem>,
    /// Bindings captured through a shared reborrow of what they point to (`&&*v`), so the
    /// binding's own address is never taken and it stays in registers: those that are surely
    /// `&mut` references (`&mut self`, `v: &mut Vec<u8>`, `let e = &mut self.entries[k];`),
    /// and `let`s that are surely a `Vec` or a `String` (`let v: Vec<u8> = …`, `let s =
    /// format!(…)`: captured as the slice or `str` they hold).
    pub reborrowed: HashSet<u32>,
    /// `&mut` bindings to a small `Copy` value (`cur: &mut usize`, `let n: &mut u64 = …`):
    /// captured as that value (`*cur`), so no address leaves the function. The reference
    /// often points at a caller's local (`count_same_bytes(input, &mut cur, …)`): once the
    /// function is inlined, an address taken for a capture kept that local in memory across
    /// the caller's loops.
    pub deref_copied: HashSet<u32>,
}

/// Finds the sites of `file` (parsed from `text`); `module` is the file's module path
/// (`demo_app::billing`).
pub fn find_sites(text: &str, file: &syn::File, module: &str, lines: &LineSel) -> FileSites {
    let none = HashSet::new();
    let skip = SkipList::default();
    find_sites_with(text, file, module, lines, &Options::new(&none, &skip))
}

/// What else decides a file's sites, besides its text and line selection.
#[derive(Clone, Debug)]
pub struct Options<'a> {
    /// `--skip-accessors`: trivial accessors get no sites ([`is_trivial_accessor`]).
    pub skip_accessors: bool,
    /// `--entry all`: tiny functions get sites too ([`is_tiny`]).
    pub entry_all: bool,
    /// The traits the file's package declares ([`declared_traits`]).
    pub package_traits: &'a HashSet<String>,
    /// The package's skip patterns: functions matching one get no sites.
    pub skip: &'a SkipList,
    /// Why no function of this file gets sites (a skip pattern naming the file).
    pub skip_file: Option<String>,
    /// The file's module can be reached from outside its crate (`workspace::SourceFile`).
    pub module_exported: bool,
    /// The file's module is compiled only for tests (declared under `#[cfg(test)]`).
    pub module_test: bool,
    /// The `#[cfg]`s of the `mod` declarations on the way to the file.
    pub module_cfg: Pred,
}

impl<'a> Options<'a> {
    /// Every function gets sites (as with `--entry all`); the driver sets the build's choices.
    pub fn new(package_traits: &'a HashSet<String>, skip: &'a SkipList) -> Self {
        Options {
            skip_accessors: false,
            entry_all: true,
            package_traits,
            skip,
            skip_file: None,
            module_exported: true,
            module_test: false,
            module_cfg: Pred::True,
        }
    }
}

/// [`find_sites`] with the package's [`Options`].
pub fn find_sites_with(
    text: &str,
    file: &syn::File,
    module: &str,
    lines: &LineSel,
    opts: &Options<'_>,
) -> FileSites {
    let mut v = Visitor {
        index: LineIndex::new(text),
        lines,
        skip_accessors: opts.skip_accessors,
        entry_all: opts.entry_all,
        skip: opts.skip,
        skip_file: opts.skip_file.as_deref(),
        module: module.split("::").map(str::to_owned).collect(),
        self_ty: None,
        impl_generics: None,
        owner: Owner::Module,
        iterator_impl: false,
        ctx: None,
        scopes: Vec::new(),
        next_binding: 0,
        barrier: 0,
        out: FileSites::default(),
        used_lines: HashSet::new(),
        in_closure: 0,
        trait_names: trait_names(file, opts.package_traits),
        exported: opts.module_exported,
        in_test: opts.module_test,
        cfg: opts.module_cfg.clone(),
    };
    v.visit_file(file);
    v.out
}

/// The names of the traits declared anywhere in `files` (one package's sources): a bound
/// written with one of them may be the package's own trait, which can require `Debug`.
pub fn declared_traits<'f>(files: impl IntoIterator<Item = &'f syn::File>) -> HashSet<String> {
    struct Traits(HashSet<String>);
    impl<'ast> Visit<'ast> for Traits {
        fn visit_item_trait(&mut self, t: &'ast syn::ItemTrait) {
            self.0.insert(t.ident.to_string());
            syn::visit::visit_item_trait(self, t);
        }
    }
    let mut t = Traits(HashSet::new());
    for f in files {
        t.visit_file(f);
    }
    t.0
}

/// How one file can name std's traits: what it imports from std, and what may mean something
/// else (see [`trait_names`] and [`not_debug_generic`]).
#[derive(Debug)]
struct TraitNames<'p> {
    /// Names the file imports from `std`/`core`/`alloc` under their own name (`use
    /// std::io::Read`, `use std::io`, `use std::{fmt, io::{self}}`); a glob from std (`use
    /// std::io::prelude::*`) counts as importing every trait name [`known_std_trait`] knows.
    from_std: HashSet<String>,
    /// Names the file binds to something else: the modules it declares (`mod io`), what it
    /// imports from outside std or renames (`use crate::sink::Write`, `use x::Y as Read`), the
    /// crates it renames (`extern crate other as io`).
    other: HashSet<String>,
    /// The traits the package declares anywhere ([`declared_traits`]).
    package: &'p HashSet<String>,
    /// A glob import from another crate (`use other::*`), which may shadow any prelude name.
    foreign_glob: bool,
}

/// Std traits that do not imply `Debug` (a bound made only of these gives a type no `Debug`)
/// and are in the 2021 prelude: in scope without a `use`.
const PRELUDE_TRAITS: &[&str] = &[
    "Clone",
    "Copy",
    "Send",
    "Sync",
    "Sized",
    "Unpin",
    "AsRef",
    "AsMut",
    "Fn",
    "FnMut",
    "FnOnce",
    "Iterator",
    "IntoIterator",
    "DoubleEndedIterator",
    "ExactSizeIterator",
    "Eq",
    "PartialEq",
    "Ord",
    "PartialOrd",
    "Default",
    "Into",
    "From",
    "TryFrom",
    "TryInto",
    "ToString",
    "Extend",
    "FromIterator",
    "ToOwned",
];

/// Std traits that do not imply `Debug` and are named only after a `use`.
const IMPORTED_STD_TRAITS: &[&str] = &[
    "Borrow",
    "BorrowMut",
    "Read",
    "Write",
    "BufRead",
    "Seek",
    "Hash",
    "Hasher",
    "Display",
    "Future",
    "Deref",
    "DerefMut",
    "Any",
];

fn known_std_trait(name: &str) -> bool {
    PRELUDE_TRAITS.contains(&name) || IMPORTED_STD_TRAITS.contains(&name)
}

impl TraitNames<'_> {
    /// Whether `path`, a bound, surely names one of the std traits [`known_std_trait`] knows.
    /// A single name is std's when the file imports it from std, or when it is in the prelude
    /// and nothing else may shadow it (the package's own trait of that name, a foreign glob); a
    /// longer path when it starts at `std`/`core`/`alloc` or at a module the file imports from
    /// std (`fmt::Write` after `use std::fmt`). Anything else may have `Debug` as a supertrait.
    fn is_std(&self, path: &syn::Path) -> bool {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        let (Some(first), Some(last)) = (segments.first(), segments.last()) else {
            return false;
        };
        if !known_std_trait(last) {
            return false;
        }
        let std_root = matches!(first.as_str(), "std" | "core" | "alloc");
        if segments.len() > 1 || path.leading_colon.is_some() {
            return std_root
                || (path.leading_colon.is_none()
                    && self.from_std.contains(first)
                    && !self.other.contains(first));
        }
        if self.other.contains(last) {
            return false;
        }
        self.from_std.contains(last)
            || (PRELUDE_TRAITS.contains(&last.as_str())
                && !self.package.contains(last)
                && !self.foreign_glob)
    }
}

/// What `file` imports from std and binds to other things ([`TraitNames`]).
fn trait_names<'p>(file: &syn::File, package_traits: &'p HashSet<String>) -> TraitNames<'p> {
    /// `root`: the path's first segment; `parent`: the segment before `tree` (what `self` in a
    /// group imports); `std`: whether the root is `std`/`core`/`alloc` (`None` at the root).
    fn imported(
        tree: &syn::UseTree,
        root: Option<&syn::Ident>,
        parent: Option<&syn::Ident>,
        std: Option<bool>,
        n: &mut TraitNames<'_>,
    ) {
        let is_std_root = |i: &syn::Ident| i == "std" || i == "core" || i == "alloc";
        let mut bind = |name: String, std: bool| {
            if std {
                n.from_std.insert(name);
            } else {
                n.other.insert(name);
            }
        };
        match tree {
            syn::UseTree::Path(p) => {
                let std = std.unwrap_or_else(|| is_std_root(&p.ident));
                imported(
                    &p.tree,
                    root.or(Some(&p.ident)),
                    Some(&p.ident),
                    Some(std),
                    n,
                );
            }
            syn::UseTree::Name(name) if name.ident == "self" => {
                if let Some(parent) = parent {
                    bind(parent.to_string(), std.unwrap_or(false));
                }
            }
            syn::UseTree::Name(name) => {
                let std = std.unwrap_or_else(|| is_std_root(&name.ident));
                bind(name.ident.to_string(), std);
            }
            // A rename binds a new name: std's only if it keeps the name (`use std::fmt::Debug
            // as Read` is not std's `Read`).
            syn::UseTree::Rename(r) => {
                let std = std.unwrap_or(false) && r.ident == r.rename;
                bind(r.rename.to_string(), std);
            }
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    imported(t, root, parent, std, n);
                }
            }
            syn::UseTree::Glob(_) if std == Some(true) => {
                let all = PRELUDE_TRAITS.iter().chain(IMPORTED_STD_TRAITS);
                n.from_std.extend(all.map(ToString::to_string));
            }
            // A glob from the crate itself (`use super::*` in a test module) brings the
            // package's own traits, which `package` holds already.
            syn::UseTree::Glob(_) => {
                let own = |i: &syn::Ident| i == "crate" || i == "self" || i == "super";
                if !root.is_some_and(own) {
                    n.foreign_glob = true;
                }
            }
        }
    }
    struct Walk<'p>(TraitNames<'p>);
    impl<'ast> Visit<'ast> for Walk<'_> {
        fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
            self.0.other.insert(m.ident.to_string());
            syn::visit::visit_item_mod(self, m);
        }
        fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
            imported(&u.tree, None, None, None, &mut self.0);
        }
        fn visit_item_extern_crate(&mut self, c: &'ast syn::ItemExternCrate) {
            if let Some((_, rename)) = &c.rename {
                self.0.other.insert(rename.to_string());
            }
        }
    }
    let mut w = Walk(TraitNames {
        from_std: HashSet::new(),
        other: HashSet::new(),
        package: package_traits,
        foreign_glob: false,
    });
    w.visit_file(file);
    w.0
}

/// Byte offsets of each `forbid` in the file's inner attributes (`#![forbid(unsafe_code)]`,
/// also inside `cfg_attr`), the lint levels no `allow` in generated code can override.
pub fn inner_forbids(text: &str, file: &syn::File) -> Vec<usize> {
    use proc_macro2::{TokenStream, TokenTree};
    use quote::ToTokens;
    fn walk(ts: TokenStream, index: &LineIndex<'_>, out: &mut Vec<usize>) {
        let tokens: Vec<TokenTree> = ts.into_iter().collect();
        for (k, t) in tokens.iter().enumerate() {
            match t {
                TokenTree::Ident(i) if i == "forbid" => {
                    if let Some(TokenTree::Group(_)) = tokens.get(k + 1) {
                        out.push(index.offset(i.span().start()));
                    }
                }
                TokenTree::Group(g) => walk(g.stream(), index, out),
                _ => {}
            }
        }
    }
    let index = LineIndex::new(text);
    let mut out = Vec::new();
    for a in &file.attrs {
        if matches!(a.style, syn::AttrStyle::Inner(_)) {
            walk(a.meta.to_token_stream(), &index, &mut out);
        }
    }
    out
}

/// The string literals of `include_str!("…")` and `include_bytes!("…")` in `file` (also inside
/// other macros' arguments): each literal's byte range in `text` (quotes included) and its
/// value. A test that includes a source file lprobe rewrites would read the rewritten text;
/// the driver points such includes at the original (`driver::redirect_includes`).
pub fn find_includes(text: &str, file: &syn::File) -> Vec<(std::ops::Range<usize>, String)> {
    use proc_macro2::{Delimiter, TokenStream, TokenTree};
    struct Finder<'a> {
        index: LineIndex<'a>,
        out: Vec<(std::ops::Range<usize>, String)>,
    }
    impl Finder<'_> {
        fn literal(&mut self, ts: TokenStream) {
            let mut it = ts.into_iter();
            if let (Some(TokenTree::Literal(l)), None) = (it.next(), it.next()) {
                if let Ok(s) = syn::parse_str::<syn::LitStr>(&l.to_string()) {
                    let span = l.span();
                    let range = self.index.offset(span.start())..self.index.offset(span.end());
                    self.out.push((range, s.value()));
                }
            }
        }
        /// `include_str ! ( "…" )` anywhere in a macro's tokens.
        fn scan(&mut self, ts: TokenStream) {
            let tts: Vec<TokenTree> = ts.into_iter().collect();
            for (i, tt) in tts.iter().enumerate() {
                if let TokenTree::Group(g) = tt {
                    let named = i >= 2
                        && matches!(&tts[i - 1], TokenTree::Punct(p) if p.as_char() == '!')
                        && matches!(&tts[i - 2], TokenTree::Ident(id) if id == "include_str" || id == "include_bytes");
                    if named && g.delimiter() == Delimiter::Parenthesis {
                        self.literal(g.stream());
                    } else {
                        self.scan(g.stream());
                    }
                }
            }
        }
    }
    impl<'ast> Visit<'ast> for Finder<'_> {
        fn visit_macro(&mut self, m: &'ast syn::Macro) {
            let name = m.path.segments.last().map(|s| s.ident.to_string());
            if matches!(name.as_deref(), Some("include_str" | "include_bytes")) {
                self.literal(m.tokens.clone());
            } else {
                self.scan(m.tokens.clone());
            }
        }
    }
    let mut f = Finder {
        index: LineIndex::new(text),
        out: Vec::new(),
    };
    f.visit_file(file);
    f.out
}

/// Converts proc-macro2 line/column (column counted in chars) to byte offsets.
struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { text, starts }
    }

    fn offset(&self, lc: LineColumn) -> usize {
        let Some(&start) = self.starts.get(lc.line.saturating_sub(1)) else {
            return self.text.len();
        };
        let rest = &self.text[start..];
        match rest.char_indices().nth(lc.column) {
            Some((i, _)) => start + i,
            None => self.text.len(),
        }
    }
}

struct Visitor<'a> {
    index: LineIndex<'a>,
    lines: &'a LineSel,
    skip_accessors: bool,
    entry_all: bool,
    skip: &'a SkipList,
    skip_file: Option<&'a str>,
    module: Vec<String>,
    self_ty: Option<String>,
    /// The generics of the `impl` block the visitor is in.
    impl_generics: Option<syn::Generics>,
    /// What the function items being visited belong to (how they call themselves).
    owner: Owner,
    /// The items being visited implement std's `Iterator` or `DoubleEndedIterator`
    /// ([`ITERATOR_REASON`]).
    iterator_impl: bool,
    /// Current function context: (index into `out.contexts`, function path).
    ctx: Option<(usize, String)>,
    /// Binding frames (name, binding id); names visible at a site are those in
    /// `scopes[barrier..]`.
    scopes: Vec<Vec<(String, u32)>>,
    /// Next binding id: every `let`, parameter or pattern binding gets its own.
    next_binding: u32,
    barrier: usize,
    out: FileSites,
    /// (context, line) pairs that already have a site: one site per line per function.
    used_lines: HashSet<(usize, u32)>,
    in_closure: usize,
    /// How this file names std's traits ([`trait_names`]).
    trait_names: TraitNames<'a>,
    /// The module being visited can be reached from outside the crate.
    exported: bool,
    /// The module being visited is compiled only for tests (`#[cfg(test)] mod tests`).
    in_test: bool,
    /// The `#[cfg]`s around the item being visited.
    cfg: Pred,
}

fn start_of(span: Span) -> LineColumn {
    span.start()
}

/// Why a tiny function has no sites ([`is_tiny`]); the driver adds its callers.
pub const TINY_REASON: &str = "a tiny function (no loop, at most 64 tokens, or 128 of arithmetic alone): no sites unless built with --entry all, since a check would cost as much as the function";

/// Why an `#[inline(always)]` function has no sites ([`Visitor::merged_into_callers`]); the
/// driver adds its callers.
pub const INLINE_ALWAYS_REASON: &str = "an #[inline(always)] function (its author merges it into every caller, often inside the caller's loop, where a check and its cold call cost as much as the work and keep the loop from being optimized): no sites unless built with --entry all or with one of its lines in --lines";

/// Why a small `#[inline]` function has no sites ([`Visitor::merged_into_callers`]);
/// the driver adds its callers.
pub const INLINE_HINT_REASON: &str = "an #[inline] function of at most 300 tokens (its author asks for it to be merged into its callers; a check and its cold call take 45 to 200 of the 325 units LLVM's inliner allows such a function, so one near that limit would stop being inlined, a loop or not): no sites unless built with --entry all or with one of its lines in --lines";

/// Why an iterator's `next` has no sites ([`Visitor::is_iterator_step`]); the driver adds the
/// functions that make the iterator.
pub const ITERATOR_REASON: &str = "an iterator's next (it runs once per item inside every loop that consumes the iterator, where a check keeps the loop from being optimized): no sites unless built with --entry all or with one of its lines in --lines";

/// Why a small function taking a reference has no sites by default ([`is_small_with_ref`]).
pub const REF_REASON: &str = "a small function taking a reference (no loop, at most 128 tokens): no sites unless built with --entry all or with --lines naming one of its lines, since its site's out-of-line call would take the reference, and once the function is inlined, the caller's value it points to could no longer be kept in registers";

/// Bodies of at most this many tokens, with no loop, in functions taking a reference to
/// something that may be a caller's local ([`takes_place_ref`]), get no sites by default.
pub const REF_FN_TOKENS: usize = 128;

/// A body small enough to be inlined ([`REF_FN_TOKENS`] tokens, no loop), in a function
/// taking a reference ([`takes_place_ref`]). An entry site's cold path passes its captures
/// and, to time the call, the arguments out of line: the reference escapes there, and LLVM
/// keeps any local whose address escapes in memory on every path, not only that one. Inlined
/// into a loop over a local (`s.try_push(c)` on an `ArrayString` of the caller's), the value
/// is then loaded and stored at each call instead of living in registers: arrayvec's suite
/// workload, its entry sites 1.318x, 39 M of the 71 M instructions the one site of
/// `ArrayString::try_push` (70 tokens), 27 M of them the escape alone (BENCHMARKS.md,
/// thirty-first session).
fn is_small_with_ref(block: &syn::Block) -> bool {
    body_within(block, REF_FN_TOKENS, Calls::Any, Loops::Refused)
}

/// Whether a function takes a reference that may point at a caller's local: `&self`,
/// `&mut self`, or a parameter of type `&T` / `&mut T` for a sized `T` (not `str`, a slice, a
/// trait object or `Path`, whose targets are not values a caller keeps in registers).
fn takes_place_ref(sig: &syn::Signature) -> bool {
    fn sized_target(t: &syn::Type) -> bool {
        match t {
            syn::Type::Slice(_) | syn::Type::TraitObject(_) | syn::Type::ImplTrait(_) => false,
            syn::Type::Path(p) => !p
                .path
                .segments
                .last()
                .is_some_and(|s| s.ident == "str" || s.ident == "Path" || s.ident == "OsStr"),
            syn::Type::Paren(p) => sized_target(&p.elem),
            _ => true,
        }
    }
    sig.inputs.iter().any(|a| match a {
        // `&self`, `&mut self`, `self: &Self`: syn gives each its type.
        syn::FnArg::Receiver(r) => matches!(&*r.ty, syn::Type::Reference(_)),
        syn::FnArg::Typed(t) => matches!(&*t.ty, syn::Type::Reference(r) if sized_target(&r.elem)),
    })
}

/// Bodies of at most this many tokens can be "small" (see [`is_small`]).
pub const SMALL_FN_TOKENS: usize = 64;

/// An accessor-like body the optimizer would inline: a few tokens, no loop (nor a method that
/// runs an iterator: `.sum()`, `.collect()`, [`LOOPING_METHODS`]), no `.await`, and
/// no call but method calls (`self.offset() == self.pattern().len()`), constructors
/// (`Some(x)`, `Err(e)`, `Point(x, y)`: a capitalized name) and functions that compile to an
/// operator or two ([`is_cheap_call`]: `u32::from(c)`, `cmp::max(a, b)`, `Self::default()`). Such functions get an entry site
/// without the timing guard (like `#[inline]` ones): the guard's check on every return path
/// tips the inliner's cost model, and on real code (parsers full of one-line accessors) losing
/// their inlining costs far more than the checks. `--duration` is refused there, with the
/// reason. A short function that calls a free function or a macro (`fn handle(r: &Req) { work(r) }`)
/// is where the time goes, so it keeps its guard.
fn is_small(block: &syn::Block) -> bool {
    body_within(block, SMALL_FN_TOKENS, Calls::Methods, Loops::Refused)
}

/// Bodies of at most this many tokens, with no loop, get no sites unless `--entry all` asks
/// for every function ([`is_tiny`]).
pub const TINY_FN_TOKENS: usize = 64;

/// A body too small for a dormant site to be cheap next to it: at most [`TINY_FN_TOKENS`]
/// tokens, no loop (nor an iterator-running method), no `.await`; calls of any kind allowed.
/// Like LLVM XRay, which gives sleds only to functions of 200 machine instructions or with a
/// loop: a flag check (a load and a branch) in a function of a few instructions, inlined into
/// its callers' loops, costs as much as the function, and keeps the callers from being
/// inlined in turn (measured on real crates' own code: BENCHMARKS.md).
///
/// Straight-line arithmetic (no call but std's integer methods, operator-like functions and
/// constructors, no macro but `debug_assert!`) is tiny up to [`ARITHMETIC_FN_TOKENS`]: its
/// tokens are mostly operators and casts, each an instruction or none (ryu's `mul_shift_32`,
/// 66 tokens, compiles to 8 instructions; `decimal_length9`'s chain of comparisons to 17).
pub fn is_tiny(block: &syn::Block) -> bool {
    body_within(block, TINY_FN_TOKENS, Calls::Any, Loops::Refused)
        || body_within(
            block,
            ARITHMETIC_FN_TOKENS,
            Calls::Arithmetic,
            Loops::Refused,
        )
}

/// The token limit of a tiny body of arithmetic alone ([`is_tiny`]).
pub const ARITHMETIC_FN_TOKENS: usize = 128;

/// Whether `seen` ends with a turbofish's generic arguments (`name::<T, U<V>>`), as opposed
/// to a shift or comparison (`sum >> (shift - 32)`, `a > (b)`).
fn closes_turbofish(seen: &[proc_macro2::TokenTree]) -> bool {
    use proc_macro2::TokenTree;
    let punct =
        |t: Option<&TokenTree>, c: char| matches!(t, Some(TokenTree::Punct(p)) if p.as_char() == c);
    if !punct(seen.last(), '>') {
        return false;
    }
    let mut depth = 0usize;
    for (k, t) in seen.iter().enumerate().rev() {
        if punct(Some(t), '>') {
            depth += 1;
        } else if punct(Some(t), '<') {
            depth -= 1;
            if depth == 0 {
                return k >= 2 && punct(seen.get(k - 1), ':') && punct(seen.get(k - 2), ':');
            }
        } else if !matches!(t, TokenTree::Ident(_) | TokenTree::Group(_))
            && !punct(Some(t), ':')
            && !punct(Some(t), ',')
            && !punct(Some(t), '\'')
            && !punct(Some(t), '&')
        {
            // An operator inside: not a list of generic arguments.
            return false;
        }
    }
    false
}

/// What calls a body sized by [`body_within`] may make.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Calls {
    /// Any.
    Any,
    /// Method calls, constructors and operator-like functions ([`is_cheap_call`]); no macro.
    Methods,
    /// As `Methods`, but of methods only std's integer and pointer arithmetic
    /// ([`is_arithmetic_method`]).
    Arithmetic,
}

/// Whether a body within [`body_within`]'s limit may hold a loop (`loop`, `while`, `for`, or a
/// method that runs an iterator: [`LOOPING_METHODS`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Loops {
    Refused,
    Allowed,
}

/// `let [mut] NAME = NAME;` for each parameter bound by a plain name (see
/// `FnContext::rebind`).
fn rebind_params(sig: &syn::Signature) -> String {
    let mut out = String::new();
    for input in &sig.inputs {
        let syn::FnArg::Typed(t) = input else {
            continue;
        };
        let syn::Pat::Ident(p) = &*t.pat else {
            continue;
        };
        if p.by_ref.is_some() || p.subpat.is_some() {
            continue;
        }
        let m = if p.mutability.is_some() { "mut " } else { "" };
        let name = &p.ident;
        out.push_str(&format!(
            "#[allow(unused_variables, unused_mut)] let {m}{name} = {name}; "
        ));
    }
    out
}

/// Macros that compile to nothing in a release build (`debug-assertions` off): their tokens
/// are not counted in a body's size.
const DEBUG_MACROS: &[&str] = &["debug_assert", "debug_assert_eq", "debug_assert_ne"];

/// Whether an `assert!`'s condition (its tokens before the first top-level comma) names no
/// value: only literals, operators, consts and types (`A`, `N`, `u32`), paths through them
/// (`A::size()`, `T::BITS`, `Self::CAP`) and std's layout functions (`mem::size_of::<T>()`,
/// `align_of`, `needs_drop`). Such a condition is a constant of the instantiation and a release
/// build folds the assertion away: the layout checks of generic containers' constructors.
fn asserts_on_types_alone(args: proc_macro2::TokenStream) -> bool {
    use proc_macro2::{Delimiter, TokenTree};
    /// The condition's tokens, groups opened in place.
    enum Tok {
        Ident(String),
        Colon,
        Call,
        Other,
    }
    fn flat(ts: proc_macro2::TokenStream, out: &mut Vec<Tok>, top: bool) -> bool {
        for tt in ts {
            match tt {
                TokenTree::Punct(p) if top && p.as_char() == ',' => return false,
                TokenTree::Punct(p) if p.as_char() == ':' => out.push(Tok::Colon),
                TokenTree::Ident(i) => out.push(Tok::Ident(i.to_string())),
                TokenTree::Group(g) => {
                    if g.delimiter() == Delimiter::Parenthesis {
                        out.push(Tok::Call);
                    }
                    flat(g.stream(), out, false);
                }
                _ => out.push(Tok::Other),
            }
        }
        true
    }
    let mut cond = Vec::new();
    flat(args, &mut cond, true);
    let colon = |k: usize| matches!(cond.get(k), Some(Tok::Colon));
    // The first segment of the path `cond[k]` ends.
    let path_start = |mut k: usize| {
        while k >= 3 && colon(k - 1) && colon(k - 2) && matches!(cond[k - 3], Tok::Ident(_)) {
            k -= 3;
        }
        match &cond[k] {
            Tok::Ident(n) => n.as_str(),
            _ => "",
        }
    };
    !cond.is_empty()
        && cond.iter().enumerate().all(|(k, t)| {
            let Tok::Ident(name) = t else {
                return true;
            };
            let segment_after = k >= 2 && colon(k - 1) && colon(k - 2);
            let called = matches!(cond.get(k + 1), Some(Tok::Call))
                || (colon(k + 1) && colon(k + 2) && matches!(cond.get(k + 3), Some(Tok::Other)));
            is_type_name(name)
                || PRIMITIVES.contains(&name.as_str())
                || matches!(name.as_str(), "str" | "as" | "true" | "false")
                // A module on a path (`mem::`, `core::mem::`).
                || (colon(k + 1) && colon(k + 2))
                // A constant or function reached through a type, or std's layout functions.
                || (segment_after
                    && (is_type_name(path_start(k))
                        || (called
                            && matches!(name.as_str(), "size_of" | "align_of" | "needs_drop"))))
        })
}

/// At most `limit` tokens, no `.await`, only the calls `calls` allows, and a loop (or a method
/// that runs an iterator) only where `loops` allows one.
///
/// Only tokens a release build compiles count: not a `debug_assert!` (nor its arguments), not
/// a statement under `#[cfg(test)]` or `#[cfg(debug_assertions)]`, and of consecutive
/// statements each under its own `#[cfg(…)]` (`#[cfg(feature = "small")] {…}
/// #[cfg(not(feature = "small"))] {…}`: alternatives) only the largest.
fn body_within(block: &syn::Block, limit: usize, calls: Calls, loops: Loops) -> bool {
    use proc_macro2::{Delimiter, TokenTree};
    fn scan(ts: proc_macro2::TokenStream, budget: &mut usize, calls: Calls, loops: Loops) -> bool {
        // The tokens seen at this level: a call's path is read back from them.
        let mut seen: Vec<TokenTree> = Vec::new();
        let mut ts = ts.into_iter().peekable();
        while let Some(tt) = ts.next() {
            if *budget == 0 {
                return false;
            }
            *budget -= 1;
            match &tt {
                TokenTree::Group(g) => {
                    let prev = seen.last();
                    // `debug_assert!(…)`: nothing in a release build; its name and `!` were
                    // counted, give them back.
                    // `assert!(…)` on types alone (`mem::size_of::<A>() == A::size() * 4`): a
                    // constant, folded away.
                    let debug_macro = matches!(prev, Some(TokenTree::Punct(p)) if p.as_char() == '!')
                        && matches!(seen.iter().rev().nth(1), Some(TokenTree::Ident(i))
                            if DEBUG_MACROS.contains(&i.to_string().as_str())
                                || (i == "assert" && asserts_on_types_alone(g.stream())));
                    if debug_macro {
                        *budget += 3;
                        seen.push(tt);
                        continue;
                    }
                    // `name(…)` not after a `.`: a call of a function (a capitalized name is a
                    // tuple struct or variant: a constructor); `name::<T>(…)` too (or a
                    // comparison with a parenthesized operand: taken as a call either way);
                    // `name!(…)`: a macro.
                    let paren = g.delimiter() == Delimiter::Parenthesis;
                    let turbofish = paren && closes_turbofish(&seen);
                    let called = paren
                        && matches!(prev, Some(TokenTree::Ident(i))
                            if !i.to_string().starts_with(|c: char| c.is_ascii_uppercase()))
                        && !matches!(seen.iter().rev().nth(1), Some(TokenTree::Punct(p)) if p.as_char() == '.')
                        && !is_cheap_call(&seen);
                    let macro_call =
                        matches!(prev, Some(TokenTree::Punct(p)) if p.as_char() == '!');
                    let other_method = paren
                        && matches!(seen.iter().rev().nth(1), Some(TokenTree::Punct(p)) if p.as_char() == '.')
                        && matches!(prev, Some(TokenTree::Ident(i)) if !is_arithmetic_method(&i.to_string()));
                    let refused = match calls {
                        Calls::Any => false,
                        Calls::Methods => called || turbofish || macro_call,
                        Calls::Arithmetic => called || turbofish || macro_call || other_method,
                    };
                    if refused || !scan(g.stream(), budget, calls, loops) {
                        return false;
                    }
                }
                TokenTree::Ident(i) if i == "await" => return false,
                TokenTree::Ident(i)
                    if loops == Loops::Refused && (i == "loop" || i == "while" || i == "for") =>
                {
                    return false
                }
                // `.sum()`, `.fold(..)`, `.collect::<…>()`…: a loop all the same; not a field of
                // that name (`self.sum += v`, `self.count`).
                TokenTree::Ident(i)
                    if loops == Loops::Refused
                        && matches!(seen.last(), Some(TokenTree::Punct(p)) if p.as_char() == '.')
                        && match ts.peek() {
                            Some(TokenTree::Group(g)) => g.delimiter() == Delimiter::Parenthesis,
                            Some(TokenTree::Punct(p)) => p.as_char() == ':',
                            _ => false,
                        }
                        && LOOPING_METHODS.contains(&i.to_string().as_str()) =>
                {
                    return false
                }
                _ => {}
            }
            seen.push(tt);
        }
        true
    }
    // The tokens one statement costs (without its attributes), or `None` if it disqualifies
    // the body (a loop where `loops` refuses one, a call `calls` refuses, an `.await`, or
    // more than `limit`).
    let cost = |s: &syn::Stmt| -> Option<usize> {
        let mut budget = limit;
        let ts = match s {
            syn::Stmt::Expr(e, semi) if !expr_attrs(e).is_empty() => {
                let mut e = e.clone();
                strip_attrs(&mut e);
                let mut ts = quote::ToTokens::to_token_stream(&e);
                if let Some(semi) = semi {
                    quote::ToTokens::to_tokens(semi, &mut ts);
                }
                ts
            }
            syn::Stmt::Local(l) if !l.attrs.is_empty() => {
                let mut l = l.clone();
                l.attrs.clear();
                quote::ToTokens::to_token_stream(&l)
            }
            syn::Stmt::Macro(m) if !m.attrs.is_empty() => {
                let mut m = m.clone();
                m.attrs.clear();
                quote::ToTokens::to_token_stream(&m)
            }
            syn::Stmt::Item(_) => return Some(0),
            s => quote::ToTokens::to_token_stream(s),
        };
        scan(ts, &mut budget, calls, loops).then(|| limit - budget)
    };
    let mut total = 0usize;
    // The largest of the current run of `#[cfg(…)]` alternatives.
    let mut alternatives = 0usize;
    for s in &block.stmts {
        let Some(c) = cost(s) else { return false };
        match stmt_cfg(s) {
            Some(Cfg::Never) => {}
            Some(Cfg::Other) => alternatives = alternatives.max(c),
            None => {
                total += std::mem::take(&mut alternatives) + c;
            }
        }
        if total + alternatives > limit {
            return false;
        }
    }
    true
}

/// What a statement's `#[cfg(…)]` says about a release build.
enum Cfg {
    /// `cfg(test)`, `cfg(debug_assertions)`: not compiled.
    Never,
    /// Any other predicate: compiled or not, depending on features and targets.
    Other,
}

fn stmt_cfg(s: &syn::Stmt) -> Option<Cfg> {
    let attrs: &[syn::Attribute] = match s {
        syn::Stmt::Local(l) => &l.attrs,
        syn::Stmt::Macro(m) => &m.attrs,
        syn::Stmt::Expr(e, _) => expr_attrs(e),
        syn::Stmt::Item(_) => return None,
    };
    let cfg = attrs.iter().find(|a| a.path().is_ident("cfg"))?;
    let syn::Meta::List(list) = &cfg.meta else {
        return Some(Cfg::Other);
    };
    let pred = list.tokens.to_string();
    Some(match pred.trim() {
        "test" | "debug_assertions" => Cfg::Never,
        _ => Cfg::Other,
    })
}

/// `#[cfg(test)]` among `attrs`.
pub fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && matches!(&a.meta, syn::Meta::List(l) if l.tokens.to_string().trim() == "test")
    })
}

/// Removes an expression's own outer attributes (a statement's `#[cfg]` is not code).
fn strip_attrs(e: &mut syn::Expr) {
    match e {
        syn::Expr::Block(x) => x.attrs.clear(),
        syn::Expr::If(x) => x.attrs.clear(),
        syn::Expr::Match(x) => x.attrs.clear(),
        syn::Expr::Unsafe(x) => x.attrs.clear(),
        syn::Expr::Call(x) => x.attrs.clear(),
        syn::Expr::MethodCall(x) => x.attrs.clear(),
        syn::Expr::Macro(x) => x.attrs.clear(),
        _ => {}
    }
}

/// What a body calls (nested items included), each name once with its number of calls.
#[derive(Default)]
struct CallNames {
    /// The last segment of every path called and every method called.
    all: std::collections::BTreeMap<String, u32>,
    /// Those that may be of a method: method calls, and paths through a type (`T::f(…)`,
    /// `Self::f(…)`, `<T as Tr>::f(…)`), not through a module (`f(…)`, `m::f(…)`).
    methods: std::collections::BTreeMap<String, u32>,
    /// Those whose type the syntax names, as `(type, function)`: through `self`
    /// (`self.f(…)`, `Self::f(…)`: type `Self`), or a method of a value a type's associated
    /// function just made (`T::new().f(…)`: type `T`).
    typed: std::collections::BTreeMap<(String, String), u32>,
    /// Calls of a bare name or through modules (`f(…)`, `super::m::f(…)`), by segments.
    paths: std::collections::BTreeMap<Vec<String>, u32>,
}

impl<'ast> Visit<'ast> for CallNames {
    fn visit_expr_call(&mut self, c: &'ast syn::ExprCall) {
        if let syn::Expr::Path(p) = &*c.func {
            let segs = &p.path.segments;
            if let Some(last) = segs.last() {
                let name = last.ident.to_string();
                let owner = segs.len().checked_sub(2).map(|i| segs[i].ident.to_string());
                if p.qself.is_some() || owner.as_deref().is_some_and(is_type_name) {
                    *self.methods.entry(name.clone()).or_default() += 1;
                } else if p.qself.is_none()
                    && p.path.leading_colon.is_none()
                    && segs
                        .iter()
                        .all(|s| s.arguments.is_none() || s.ident == name)
                {
                    let segs = segs.iter().map(|s| s.ident.to_string()).collect();
                    *self.paths.entry(segs).or_default() += 1;
                }
                if segs.len() == 2 && owner.as_deref() == Some("Self") {
                    *self
                        .typed
                        .entry(("Self".to_owned(), name.clone()))
                        .or_default() += 1;
                }
                *self.all.entry(name).or_default() += 1;
            }
        }
        syn::visit::visit_expr_call(self, c);
    }
    fn visit_expr_method_call(&mut self, m: &'ast syn::ExprMethodCall) {
        let name = m.method.to_string();
        let ty = match &*m.receiver {
            syn::Expr::Path(p) if p.path.is_ident("self") => Some("Self".to_owned()),
            syn::Expr::Call(c) => match &*c.func {
                syn::Expr::Path(p)
                    if p.qself.is_none()
                        && p.path.segments.len() == 2
                        && p.path.segments[0].arguments.is_none() =>
                {
                    Some(p.path.segments[0].ident.to_string()).filter(|t| is_type_name(t))
                }
                _ => None,
            },
            _ => None,
        };
        if let Some(ty) = ty {
            *self.typed.entry((ty, name.clone())).or_default() += 1;
        }
        *self.all.entry(name.clone()).or_default() += 1;
        *self.methods.entry(name).or_default() += 1;
        syn::visit::visit_expr_method_call(self, m);
    }
}

/// The paths a `use` tree names, each with the name it brings in (`None`: a glob of the
/// path).
fn use_paths(
    t: &syn::UseTree,
    prefix: &mut Vec<String>,
    out: &mut Vec<(Vec<String>, Option<String>)>,
) {
    match t {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            use_paths(&p.tree, prefix, out);
            prefix.pop();
        }
        // `m::{self}`: the module itself, by its name.
        syn::UseTree::Name(n) if n.ident == "self" => {
            if let Some(last) = prefix.last() {
                out.push((prefix.clone(), Some(last.clone())));
            }
        }
        syn::UseTree::Name(n) => {
            let mut segs = prefix.clone();
            segs.push(n.ident.to_string());
            out.push((segs, Some(n.ident.to_string())));
        }
        syn::UseTree::Rename(r) => {
            let mut segs = prefix.clone();
            segs.push(r.ident.to_string());
            out.push((segs, Some(r.rename.to_string())));
        }
        syn::UseTree::Glob(_) => out.push((prefix.clone(), None)),
        syn::UseTree::Group(g) => g.items.iter().for_each(|t| use_paths(t, prefix, out)),
    }
}

/// The tokens beyond one each of the `match` arms in `block` that map constants to constants
/// (`'\u{A}' => (1, WidthInfo::LINE_FEED),`, `3..=7 => Kind::Small,`): such an arm is an
/// entry of a jump table or a compare, whatever its length in tokens, so a function of
/// them is as small as its other code (unicode-width's `lookup_width`: 17 such arms, 300
/// tokens, a dozen instructions).
fn table_arm_tokens(block: &syn::Block) -> usize {
    fn constant_pat(p: &syn::Pat) -> bool {
        match p {
            syn::Pat::Lit(_) | syn::Pat::Range(_) | syn::Pat::Path(_) | syn::Pat::Wild(_) => true,
            syn::Pat::Or(o) => o.cases.iter().all(constant_pat),
            syn::Pat::Paren(p) => constant_pat(&p.pat),
            _ => false,
        }
    }
    fn constant_expr(e: &syn::Expr) -> bool {
        match e {
            syn::Expr::Lit(_) | syn::Expr::Path(_) => true,
            syn::Expr::Unary(u) => matches!(u.op, syn::UnOp::Neg(_)) && constant_expr(&u.expr),
            syn::Expr::Tuple(t) => t.elems.iter().all(constant_expr),
            syn::Expr::Array(a) => a.elems.iter().all(constant_expr),
            syn::Expr::Paren(p) => constant_expr(&p.expr),
            syn::Expr::Group(g) => constant_expr(&g.expr),
            syn::Expr::Cast(c) => constant_expr(&c.expr),
            syn::Expr::Reference(r) => constant_expr(&r.expr),
            // A variant or tuple struct of constants (`Some(3)`, `Width(2)`).
            syn::Expr::Call(c) => {
                matches!(&*c.func, syn::Expr::Path(p) if p.path.segments.last().is_some_and(|s| is_type_name(&s.ident.to_string())))
                    && c.args.iter().all(constant_expr)
            }
            _ => false,
        }
    }
    struct Arms(usize);
    impl<'ast> Visit<'ast> for Arms {
        fn visit_arm(&mut self, a: &'ast syn::Arm) {
            if a.guard.is_none() && constant_pat(&a.pat) && constant_expr(&a.body) {
                let n = token_count(quote::ToTokens::to_token_stream(a));
                self.0 += n.saturating_sub(1);
            } else {
                syn::visit::visit_arm(self, a);
            }
        }
        fn visit_item(&mut self, _: &'ast syn::Item) {}
    }
    let mut arms = Arms(0);
    arms.visit_block(block);
    arms.0
}

/// Std's primitive number, `bool` and `char` types.
const PRIMITIVES: &[&str] = &[
    "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize", "f32",
    "f64", "bool", "char",
];

/// A capitalized name: a type's (or a variant's, a const's).
fn is_type_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_uppercase())
}

/// Tokens in `ts`, a group counting one plus its contents.
fn token_count(ts: proc_macro2::TokenStream) -> usize {
    ts.into_iter()
        .map(|t| match t {
            proc_macro2::TokenTree::Group(g) => 1 + token_count(g.stream()),
            _ => 1,
        })
        .sum()
}

/// A body of more tokens than this is beyond what LLVM inlines for its size (the inline
/// threshold is about 225 instructions) and is inlined only where it has one call site.
pub const LARGE_FN_TOKENS: usize = 300;

/// Methods that run an iterator to its end (or until found): a function calling one loops.
const LOOPING_METHODS: &[&str] = &[
    "sum",
    "product",
    "count",
    "fold",
    "try_fold",
    "for_each",
    "try_for_each",
    "collect",
    "any",
    "all",
    "find",
    "find_map",
    "position",
    "rposition",
    "last",
    "extend",
    "partition",
    "unzip",
];

/// Whether the path just before a call's parentheses names a function the optimizer treats like
/// an operator: an associated function of a primitive type (`u32::from(c)`,
/// `char::from_u32(n)`), `Self::new`/`Self::default`, or `cmp::max`/`min` and
/// `mem::replace`/`take`/`swap` (also through `std::`/`core::`). Small functions calling only
/// these stay small.
fn is_cheap_call(seen: &[proc_macro2::TokenTree]) -> bool {
    use proc_macro2::TokenTree;
    let last = match seen.last() {
        Some(TokenTree::Ident(i)) => i.to_string(),
        _ => return false,
    };
    let cheap_in = |root: &str| match root {
        "Self" => last == "new" || last == "default",
        "cmp" => last == "max" || last == "min",
        "mem" => last == "replace" || last == "take" || last == "swap",
        r => PRIMITIVES.contains(&r),
    };
    // Walk back over `a :: b :: … :: name` (a `::` is two `:` puncts).
    let mut i = seen.len();
    let mut first = None;
    loop {
        match seen.get(i.wrapping_sub(1)) {
            Some(TokenTree::Ident(id)) if i > 0 => {
                first = Some(id.to_string());
                i -= 1;
            }
            _ => break,
        }
        let colons = i >= 2
            && seen[i - 2..i]
                .iter()
                .all(|t| matches!(t, TokenTree::Punct(p) if p.as_char() == ':'));
        if !colons {
            break;
        }
        i -= 2;
    }
    let segments_walked = seen.len() - i;
    segments_walked > 1
        && first.is_some_and(|f| {
            if f == "core" || f == "std" {
                matches!(seen.get(i + 3), Some(TokenTree::Ident(m)) if cheap_in(&m.to_string()))
            } else {
                cheap_in(&f)
            }
        })
}

/// A body that is one field read or write and nothing else: `self.start`, `&self.items`,
/// `self.end = bound;`, a literal. Inlined everywhere, such a function's entry check (a load
/// and a branch per inlined call, and a cold call the inliner counts) can cost more than the
/// function, and can keep its callers from being inlined in turn.
fn is_trivial_accessor(block: &syn::Block) -> bool {
    fn place(e: &syn::Expr) -> bool {
        match e {
            syn::Expr::Field(f) => place(&f.base),
            syn::Expr::Path(p) => p.qself.is_none(),
            syn::Expr::Paren(p) => place(&p.expr),
            _ => false,
        }
    }
    fn value(e: &syn::Expr) -> bool {
        match e {
            syn::Expr::Lit(_) => true,
            syn::Expr::Reference(r) => place(&r.expr),
            _ => place(e),
        }
    }
    match block.stmts.as_slice() {
        [syn::Stmt::Expr(e, None)] => value(e),
        [syn::Stmt::Expr(syn::Expr::Assign(a), Some(_))] => place(&a.left) && value(&a.right),
        _ => false,
    }
}

/// A type that is surely small and `Copy` (a shared reference, a raw pointer, a primitive, an
/// `Option` or pair of those: the runtime's `SmallCopy`), or one that may be (a bare generic
/// name): the capture starts as a copy. Anything else (`&mut T`, `String`, `Vec<T>`, arrays…)
/// starts by reference.
fn small_copy_type(ty: &syn::Type) -> bool {
    match ty {
        syn::Type::Reference(r) => r.mutability.is_none(),
        syn::Type::Ptr(_) => true,
        syn::Type::Paren(p) => small_copy_type(&p.elem),
        syn::Type::Tuple(t) => t.elems.len() == 2 && t.elems.iter().all(small_copy_type),
        syn::Type::Path(p) if p.qself.is_none() && p.path.get_ident().is_none() => {
            // `Option<T>` of a small copy, `NonNull<T>`, `Ordering`, `Duration`.
            let Some(last) = p.path.segments.last() else {
                return false;
            };
            match (last.ident.to_string().as_str(), &last.arguments) {
                ("Option", syn::PathArguments::AngleBracketed(a)) => {
                    matches!(a.args.first(), Some(syn::GenericArgument::Type(t)) if a.args.len() == 1 && small_copy_type(t))
                }
                ("NonNull", _) | ("Ordering", syn::PathArguments::None) => true,
                ("Duration", syn::PathArguments::None) => true,
                _ => false,
            }
        }
        syn::Type::Path(p) if p.qself.is_none() => match p.path.get_ident() {
            Some(id) => {
                let n = id.to_string();
                matches!(
                    n.as_str(),
                    "u8" | "u16"
                        | "u32"
                        | "u64"
                        | "u128"
                        | "usize"
                        | "i8"
                        | "i16"
                        | "i32"
                        | "i64"
                        | "i128"
                        | "isize"
                        | "f32"
                        | "f64"
                        | "bool"
                        | "char"
                ) || n.len() <= 2 && n.starts_with(|c: char| c.is_ascii_uppercase())
            }
            None => false,
        },
        _ => false,
    }
}

/// `&mut T` (possibly in parentheses).
fn unique_ref_type(ty: &syn::Type) -> bool {
    match ty {
        syn::Type::Reference(r) => r.mutability.is_some(),
        syn::Type::Paren(p) => unique_ref_type(&p.elem),
        _ => false,
    }
}

/// `&mut T` for a small `Copy` `T` that is not a reference (`&mut usize`, `&mut
/// Option<u32>`): a copy of the target is what a capture shows.
fn mut_ref_to_copy(ty: &syn::Type) -> bool {
    match ty {
        syn::Type::Reference(r) => {
            r.mutability.is_some()
                && !matches!(*r.elem, syn::Type::Reference(_) | syn::Type::Ptr(_))
                && small_copy_type(&r.elem)
        }
        syn::Type::Paren(p) => mut_ref_to_copy(&p.elem),
        _ => false,
    }
}

/// A function's parameters by name ([`Visitor::param_names`]).
struct ParamNames {
    params: Vec<String>,
    not_copy: HashSet<String>,
    not_debug: HashSet<String>,
    mut_refs: HashSet<String>,
    /// Of `mut_refs`, those to a small `Copy` type ([`mut_ref_to_copy`]).
    mut_copies: HashSet<String>,
}

/// A type that is a generic parameter (or `impl Trait`), possibly behind references, whose
/// bounds in `generics` (and their `where` clauses) are all std traits that do not imply
/// `Debug` (`Borrow<Parser>`, `fmt::Write`, `Clone + Send`, none at all). A bound on any other
/// trait may have `Debug` as a supertrait: then the type is not judged. Whether a bound is
/// std's is read from how the file names things ([`TraitNames::is_std`]): the package's own
/// `trait Read: Debug`, a `Write` imported from another crate, `io::Read` through a local
/// module are not.
fn not_debug_generic(ty: &syn::Type, generics: &[&syn::Generics], names: &TraitNames<'_>) -> bool {
    use syn::punctuated::Punctuated;
    type Bounds = Punctuated<syn::TypeParamBound, syn::Token![+]>;
    let known = |bounds: &Bounds| {
        bounds.iter().all(|b| match b {
            syn::TypeParamBound::Trait(t) => names.is_std(&t.path),
            syn::TypeParamBound::Lifetime(_) => true,
            _ => false,
        })
    };
    match ty {
        syn::Type::Reference(r) => not_debug_generic(&r.elem, generics, names),
        syn::Type::Paren(p) => not_debug_generic(&p.elem, generics, names),
        syn::Type::ImplTrait(i) => known(&i.bounds),
        syn::Type::Path(p) if p.qself.is_none() => {
            let Some(name) = p.path.get_ident() else {
                return false;
            };
            let mut is_param = false;
            for g in generics {
                for tp in g.type_params() {
                    if tp.ident == *name {
                        is_param = true;
                        if !known(&tp.bounds) {
                            return false;
                        }
                    }
                }
                for pred in g.where_clause.iter().flat_map(|w| &w.predicates) {
                    if let syn::WherePredicate::Type(pt) = pred {
                        let about_it =
                            matches!(&pt.bounded_ty, syn::Type::Path(bp) if bp.path.is_ident(name));
                        if about_it && !known(&pt.bounds) {
                            return false;
                        }
                    }
                }
            }
            is_param
        }
        _ => false,
    }
}

/// An expression whose value never implements `Debug`: a closure or an async block (also in
/// parentheses or a `Box`).
fn never_debug(e: &syn::Expr) -> bool {
    match e {
        syn::Expr::Closure(_) | syn::Expr::Async(_) => true,
        syn::Expr::Paren(p) => never_debug(&p.expr),
        syn::Expr::Call(c) if c.args.len() == 1 => {
            matches!(&*c.func, syn::Expr::Path(p) if p.path.segments.len() >= 2
                && p.path.segments.iter().rev().nth(1).is_some_and(|s| s.ident == "Box")
                && p.path.segments.last().is_some_and(|s| s.ident == "new"))
                && c.args.first().is_some_and(never_debug)
        }
        _ => false,
    }
}

/// An expression whose value is surely not a small copy (a scalar or a shared reference): a
/// struct, tuple or array literal, a closure, a string or collection built by the usual
/// constructors. The capture of a `let` bound to it starts by reference (a wrong "copy" guess
/// costs a repair round and keeps the function's other errors from being seen in that round).
/// `Vec<…>` or `String` (by the last segment of the path): types that deref to the buffer
/// they own, whose `Debug` is the buffer's.
fn owned_buffer_type(ty: &syn::Type) -> bool {
    match ty {
        syn::Type::Path(p) if p.qself.is_none() => p
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident == "Vec" || s.ident == "String"),
        syn::Type::Paren(p) => owned_buffer_type(&p.elem),
        _ => false,
    }
}

/// An expression that surely makes a `Vec` or a `String`: `vec![…]`, `format!(…)`,
/// `Vec::new()`, `Vec::with_capacity(n)`, `String::new()`, `String::from(…)`…
fn makes_owned_buffer(e: &syn::Expr) -> bool {
    calls_path(e, |segs| {
        matches!(
            segs,
            [.., "Vec" | "String", "new" | "with_capacity"] | [.., "String", "from"]
        )
    })
    .unwrap_or_else(|| builds_buffer_by_macro(e))
}

/// `vec![…]` or `format!(…)`.
fn builds_buffer_by_macro(e: &syn::Expr) -> bool {
    matches!(e, syn::Expr::Macro(m) if m.mac.path.get_ident().is_some_and(|i| i == "vec" || i == "format"))
}

/// What `is` says of the segments of the path a call expression calls
/// (`Vec::with_capacity(n)`: `["Vec", "with_capacity"]`); `None` if it calls no path.
fn calls_path(e: &syn::Expr, is: impl Fn(&[&str]) -> bool) -> Option<bool> {
    let syn::Expr::Call(c) = e else {
        return None;
    };
    let syn::Expr::Path(p) = &*c.func else {
        return None;
    };
    if p.qself.is_some() {
        return None;
    }
    let segs: Vec<String> = p
        .path
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    Some(is(&segs))
}

fn not_a_small_copy(e: &syn::Expr) -> bool {
    if let Some(owned) = calls_path(e, |segs| {
        matches!(
            segs,
            [
                ..,
                "String"
                    | "Vec"
                    | "HashMap"
                    | "HashSet"
                    | "BTreeMap"
                    | "BTreeSet"
                    | "VecDeque"
                    | "Box"
                    | "Rc"
                    | "Arc",
                "new" | "from" | "with_capacity" | "default"
            ]
        )
    }) {
        return owned;
    }
    match e {
        syn::Expr::Struct(_)
        | syn::Expr::Tuple(_)
        | syn::Expr::Array(_)
        | syn::Expr::Repeat(_)
        | syn::Expr::Closure(_)
        | syn::Expr::Async(_) => true,
        syn::Expr::Macro(_) => builds_buffer_by_macro(e),
        // Owned collections, and iterators (std's iterators are never `Copy`); not adaptors
        // that also exist on `Option` (`map`, `filter`, `take`…), which may well be copies.
        syn::Expr::MethodCall(m) => {
            matches!(
                m.method.to_string().as_str(),
                "to_string"
                    | "to_vec"
                    | "collect"
                    | "iter"
                    | "iter_mut"
                    | "into_iter"
                    | "chars"
                    | "char_indices"
                    | "bytes"
                    | "lines"
                    | "split_whitespace"
                    | "peekable"
                    | "enumerate"
                    | "rev"
                    | "windows"
                    | "chunks"
                    | "drain"
                    | "keys"
                    | "values"
            )
        }
        _ => false,
    }
}

/// `#[inline]` or `#[inline(always)]` (not `#[inline(never)]`).
fn asks_inlining(attrs: &[syn::Attribute]) -> bool {
    inline_argument(attrs).is_some_and(|a| a != "never")
}

/// Whether rustc would have copied the function, as written, into every codegen unit and
/// crate that calls it: without an `inline` attribute, rustc does that for a small body that
/// calls nothing once MIR is optimized ("cross-crate inlinable": at most 100 MIR statements,
/// no call, no drop, no assertion), which is what lets LLVM inline it anywhere. A site's cold
/// call ends that, so the function would live in one codegen unit, where callers in other
/// units and crates cannot inline it (`-C remark=inline`: "definition is unavailable";
/// regex-syntax's `Ast::span`, a `match` of twenty arms). Such a function gets `#[inline]`
/// with its entry site (`FnContext::copied`): what rustc did for the original. Judged from
/// the syntax: up to [`COPIED_FN_TOKENS`] tokens of methods, constructors and operator-like
/// calls only (small methods are inlined in MIR before rustc counts), no loop, no macro, as
/// [`is_small`] bodies are (a `match` of many arms is a few MIR statements per arm, so the
/// limit is in tokens, several per statement). Only with plain attributes (`doc`, `allow`,
/// `cfg`…; no `inline` of any kind, in a `cfg_attr` either): not where the symbol is fixed
/// (`#[no_mangle]`, `#[export_name]`: rustc never copies those), nor with `#[target_feature]`,
/// a test's or a proc macro's attribute; nor `async fn`s.
fn copied_into_callers(attrs: &[syn::Attribute], sig: &syn::Signature, block: &syn::Block) -> bool {
    // Attributes under which rustc does not copy the function, or a test harness owns it.
    const NOT_COPIED: &[&str] = &[
        "automatically_derived",
        "bench",
        "cold",
        "coverage",
        "export_name",
        "ignore",
        "inline",
        "link_section",
        "no_mangle",
        "optimize",
        "should_panic",
        "target_feature",
        "test",
        "unsafe",
    ];
    use crate::build::recall::{attr_within, PLAIN_ATTRS};
    let plain = attrs.iter().all(|a| {
        if a.path().is_ident("cfg_attr") {
            // Off in a default build (ryu's `cfg_attr(feature = "no-panic", no_panic)`), when
            // rustc copies the function as if it were not there: only what rustc never copies
            // under counts.
            attr_within(a, |name| !NOT_COPIED.contains(&name))
        } else {
            attr_within(a, |name| {
                PLAIN_ATTRS.contains(&name) && !NOT_COPIED.contains(&name)
            })
        }
    });
    plain
        && sig.asyncness.is_none()
        && body_within(block, COPIED_FN_TOKENS, Calls::Methods, Loops::Refused)
}

/// Whether one of the function's own type parameters (or an `impl Trait` argument) is bounded
/// by `Fn`, `FnMut` or `FnOnce` ([`FnContext::takes_closure`]).
fn takes_closure(sig: &syn::Signature) -> bool {
    type Bounds = syn::punctuated::Punctuated<syn::TypeParamBound, syn::Token![+]>;
    let closure = |bounds: &Bounds| {
        bounds.iter().any(|b| match b {
            syn::TypeParamBound::Trait(t) => t
                .path
                .segments
                .last()
                .is_some_and(|s| s.ident == "Fn" || s.ident == "FnMut" || s.ident == "FnOnce"),
            _ => false,
        })
    };
    let own_param = |ty: &syn::Type| match ty {
        syn::Type::Path(p) => sig
            .generics
            .type_params()
            .any(|tp| p.path.is_ident(&tp.ident)),
        _ => false,
    };
    let in_params = sig.generics.type_params().any(|p| closure(&p.bounds));
    let in_where = sig
        .generics
        .where_clause
        .iter()
        .flat_map(|w| &w.predicates)
        .any(|p| match p {
            syn::WherePredicate::Type(t) => own_param(&t.bounded_ty) && closure(&t.bounds),
            _ => false,
        });
    let in_args = sig.inputs.iter().any(|a| match a {
        syn::FnArg::Typed(t) => match &*t.ty {
            syn::Type::ImplTrait(i) => closure(&i.bounds),
            _ => false,
        },
        syn::FnArg::Receiver(_) => false,
    });
    in_params || in_where || in_args
}

/// The token limit of a body rustc copies into its callers ([`copied_into_callers`]).
pub const COPIED_FN_TOKENS: usize = 400;

/// The argument of the function's `inline` attribute: `""` for `#[inline]`, `"always"`,
/// `"never"`; `None` without one.
fn inline_argument(attrs: &[syn::Attribute]) -> Option<String> {
    attrs
        .iter()
        .find(|a| a.path().is_ident("inline"))
        .map(|a| match &a.meta {
            syn::Meta::List(l) => l.tokens.to_string().trim().to_owned(),
            _ => String::new(),
        })
}

/// Whether an attribute `name` is present, bare or inside `#[unsafe(…)]`.
fn has_attr(attrs: &[syn::Attribute], name: &str) -> bool {
    attrs.iter().any(|a| {
        let p = a.path();
        p.is_ident(name) || (p.is_ident("unsafe") && a.meta.to_token_stream_string().contains(name))
    })
}

trait MetaText {
    fn to_token_stream_string(&self) -> String;
}

impl MetaText for syn::Meta {
    fn to_token_stream_string(&self) -> String {
        quote::ToTokens::to_token_stream(self).to_string()
    }
}

fn is_cfg_gated(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| a.path().is_ident("cfg"))
}

/// Collects the identifiers a pattern binds, in order.
fn pat_bindings(pat: &syn::Pat, out: &mut Vec<String>) {
    struct B<'o>(&'o mut Vec<String>);
    impl<'ast> Visit<'ast> for B<'_> {
        fn visit_pat_ident(&mut self, p: &'ast syn::PatIdent) {
            let name = p.ident.to_string();
            let first = name.chars().next().unwrap_or('_');
            // Upper-case identifiers in patterns are unit structs, variants and constants
            // by convention; `_`-only names bind nothing.
            if !first.is_uppercase() && name != "_" && name != "self" {
                self.0.push(name);
            }
            if let Some((_, sub)) = &p.subpat {
                self.visit_pat(sub);
            }
        }
        // Paths, types and literals inside patterns bind nothing.
        fn visit_expr(&mut self, _: &'ast syn::Expr) {}
        fn visit_type(&mut self, _: &'ast syn::Type) {}
        fn visit_path(&mut self, _: &'ast syn::Path) {}
    }
    B(out).visit_pat(pat);
}

/// Bindings introduced by the `let` parts of an `if`/`while` condition (`a && let x = …`).
fn cond_bindings(cond: &syn::Expr, out: &mut Vec<String>) {
    match cond {
        syn::Expr::Let(l) => pat_bindings(&l.pat, out),
        syn::Expr::Binary(b) if matches!(b.op, syn::BinOp::And(_)) => {
            cond_bindings(&b.left, out);
            cond_bindings(&b.right, out);
        }
        syn::Expr::Paren(p) => cond_bindings(&p.expr, out),
        _ => {}
    }
}

fn type_name(ty: &syn::Type) -> String {
    match ty {
        syn::Type::Path(p) => p
            .path
            .segments
            .last()
            .map(|s| s.ident.to_string())
            .unwrap_or_else(|| "_".into()),
        syn::Type::Reference(r) => type_name(&r.elem),
        _ => "_".into(),
    }
}

impl<'a> Visitor<'a> {
    /// The bindings visible here (innermost wins), outermost first.
    fn visible(&self) -> Vec<(String, u32)> {
        let mut seen = HashSet::new();
        let mut names = Vec::new();
        // Innermost wins: walk from the top, keep the first sighting, then reverse.
        for frame in self.scopes[self.barrier.min(self.scopes.len())..]
            .iter()
            .rev()
        {
            for (name, id) in frame.iter().rev() {
                if seen.insert(name.clone()) {
                    names.push((name.clone(), *id));
                }
            }
        }
        names.reverse();
        names
    }

    /// Gives each name a fresh binding id.
    fn bind(&mut self, names: Vec<String>) -> Vec<(String, u32)> {
        names
            .into_iter()
            .map(|n| {
                self.next_binding += 1;
                (n, self.next_binding)
            })
            .collect()
    }

    fn push_site(&mut self, offset: usize, at: LineColumn, kind: SiteKind) {
        let Some((ctx, func)) = self.ctx.clone() else {
            return;
        };
        let visible = self.visible();
        let line = at.line as u32;
        if !self.used_lines.insert((ctx, line)) {
            return;
        }
        let func = if self.in_closure > 0 {
            format!("{func}::{{closure}}")
        } else {
            func
        };
        self.out.sites.push(Site {
            offset,
            line,
            col: at.column as u32 + 1,
            kind,
            func,
            context: ctx,
            names: visible.iter().map(|(n, _)| n.clone()).collect(),
            bindings: visible.iter().map(|(_, b)| *b).collect(),
            in_closure: self.in_closure > 0,
            first_stmt: false,
            timed: false,
            recall: None,
            recall_guarded: None,
            one_call: None,
            inline_hint: false,
        });
    }

    /// Visits a function item: `sig` and `block`, with `span` covering the whole item.
    /// The names a function's parameters bind, with those whose declared type is not a
    /// small `Copy` (captured by reference from the start) and those of a generic type that
    /// cannot be `Debug` (type name only).
    fn param_names(&self, sig: &syn::Signature) -> ParamNames {
        let mut params = Vec::new();
        let mut not_copy = HashSet::new();
        let mut not_debug = HashSet::new();
        let mut mut_refs = HashSet::new();
        let mut mut_copies = HashSet::new();
        let generics: Vec<&syn::Generics> = std::iter::once(&sig.generics)
            .chain(self.impl_generics.as_ref())
            .collect();
        for input in &sig.inputs {
            match input {
                syn::FnArg::Receiver(r) => {
                    params.push("self".to_owned());
                    // `&self` is a shared reference (a copy); `&mut self`, `self`, `self: Box<Self>` are not.
                    let shared = r.reference.is_some() && r.mutability.is_none();
                    if !shared || r.colon_token.is_some() {
                        not_copy.insert("self".to_owned());
                    }
                    let unique = r.reference.is_some() && r.mutability.is_some();
                    if unique && r.colon_token.is_none() {
                        mut_refs.insert("self".to_owned());
                    }
                }
                syn::FnArg::Typed(t) => {
                    let first = params.len();
                    pat_bindings(&t.pat, &mut params);
                    if matches!(*t.pat, syn::Pat::Ident(_)) && !small_copy_type(&t.ty) {
                        not_copy.extend(params[first..].iter().cloned());
                    }
                    if matches!(*t.pat, syn::Pat::Ident(_)) && unique_ref_type(&t.ty) {
                        mut_refs.extend(params[first..].iter().cloned());
                    }
                    if matches!(*t.pat, syn::Pat::Ident(_)) && mut_ref_to_copy(&t.ty) {
                        mut_copies.extend(params[first..].iter().cloned());
                    }
                    if matches!(*t.pat, syn::Pat::Ident(_))
                        && not_debug_generic(&t.ty, &generics, &self.trait_names)
                    {
                        not_debug.extend(params[first..].iter().cloned());
                    }
                }
            }
        }
        ParamNames {
            params,
            not_copy,
            not_debug,
            mut_refs,
            mut_copies,
        }
    }

    /// `next` of an `impl Iterator`, `next_back` of an `impl DoubleEndedIterator` (std's
    /// traits), with none of its lines asked for by `--lines`. It runs once per item, inlined
    /// into every loop that consumes the iterator (`for`, `sum`, `collect`, adapters): there its
    /// entry check and cold call make the loop one that calls out, which keeps LLVM from
    /// keeping the iterator in registers, fusing the loops or vectorizing the consumer (slab's
    /// `Iter::next`: 15 M of the 32 M instructions its entry sites added to the suite's
    /// workload). The loop's own function, or whoever made the iterator, is where to arm.
    /// Whether `--lines` names one of the lines of `span` in a set (not `all`): a function
    /// left without sites for its size gets them then.
    fn names_a_line(&self, span: Span) -> bool {
        match self.lines {
            LineSel::Some(set) => {
                (span.start().line as u32..=span.end().line as u32).any(|l| set.contains(&l))
            }
            LineSel::All | LineSel::None => false,
        }
    }

    fn is_iterator_step(&self, sig: &syn::Signature, span: Span) -> bool {
        self.iterator_impl
            && self.ctx.is_none()
            && (sig.ident == "next" || sig.ident == "next_back")
            && !(span.start().line as u32..=span.end().line as u32).any(|l| self.lines.wants(l))
    }

    /// Adds the `#[cfg]`s among `attrs` to those around what is visited next; returns the
    /// ones before, to put back after.
    fn enter_cfg(&mut self, attrs: &[syn::Attribute]) -> Pred {
        let inner = self.cfg.clone().and(Pred::of_attrs(attrs));
        std::mem::replace(&mut self.cfg, inner)
    }

    /// The path of the function a call of `segs` (a bare name or a path through modules)
    /// names, if it is one of this crate's: relative to the module visited (`m::f`, `f`),
    /// or through `self`, `super` or `crate`. `None` when `super` goes above the crate.
    fn resolve_path(&self, segs: &[String]) -> Option<String> {
        let mut module: Vec<&str> = self.module.iter().map(String::as_str).collect();
        let mut rest = segs.iter().map(String::as_str).peekable();
        match rest.peek() {
            Some(&"crate") => {
                module.truncate(1);
                rest.next();
            }
            Some(&"self") => {
                rest.next();
            }
            _ => {}
        }
        while rest.peek() == Some(&"super") {
            rest.next();
            if module.len() < 2 {
                return None;
            }
            module.pop();
        }
        module.extend(rest);
        Some(module.join("::"))
    }

    /// Why a function its author asks to be merged into its callers gets no sites, if it
    /// gets none: when none of its lines is named by `--lines` ranges (not `all`), an
    /// `#[inline(always)]` one ([`INLINE_ALWAYS_REASON`]: such helpers sit in their callers'
    /// hottest loops, memchr's `find_in_chunk`, once per 32 bytes of a search: with its entry
    /// site the suite's memchr workload ran 12% more instructions, with a site at its every
    /// line 84% more), and an `#[inline]` one (no `.await`) of at most [`LARGE_FN_TOKENS`]
    /// tokens, constant `match` arms counted one each ([`table_arm_tokens`])
    /// ([`INLINE_HINT_REASON`]: a site's check and cold call cost 45 to 200 of the inliner's
    /// 325 units for a hinted function, measured with `-C remark=inline`: lz4_flex's
    /// `slice_copy` kept its caller `extend_from_slice_wild` out of `compress_internal`,
    /// httparse's `offsetnz` kept `match_header_value_vectored` out of its three callers).
    /// A loop does not change that arithmetic: lz4_flex's `count_same_bytes` (a `for` over
    /// 8-byte chunks, 285 units plain, 435 with its site and guard) stopped being inlined
    /// into `compress_internal`'s match loop, 1.106x the crate's instructions at entry sites
    /// (1.016x without its site). XRay, which keeps a sled for any function with a loop,
    /// places it after inlining, so an inlined copy has none either. Their callers are where
    /// to arm.
    fn merged_into_callers(
        &self,
        attrs: &[syn::Attribute],
        block: &syn::Block,
        span: Span,
    ) -> Option<&'static str> {
        match inline_argument(attrs).as_deref() {
            _ if self.names_a_line(span) => None,
            Some("always") => Some(INLINE_ALWAYS_REASON),
            // No `.await`, at most LARGE_FN_TOKENS (a table's arms counted as one token each);
            // loops allowed.
            Some("")
                if body_within(
                    block,
                    LARGE_FN_TOKENS + table_arm_tokens(block),
                    Calls::Any,
                    Loops::Allowed,
                ) =>
            {
                Some(INLINE_HINT_REASON)
            }
            _ => None,
        }
    }

    fn visit_function(
        &mut self,
        attrs: &[syn::Attribute],
        sig: &syn::Signature,
        block: &syn::Block,
        span: Span,
        (public, exported): (bool, bool),
    ) {
        let func = match (&self.ctx, &self.self_ty) {
            (Some((_, outer)), _) => format!("{outer}::{}", sig.ident),
            (None, Some(ty)) => format!("{}::{ty}::{}", self.module.join("::"), sig.ident),
            (None, None) => format!("{}::{}", self.module.join("::"), sig.ident),
        };
        // Asked even when another reason wins, so the pattern counts as used.
        let by_pattern = self.skip.func(&func);
        let skipped: Option<Cow<'static, str>> = if sig.constness.is_some() {
            Some("const fn".into())
        } else if sig.abi.is_some() {
            Some("extern fn".into())
        } else if has_attr(attrs, "naked") {
            Some("naked fn".into())
        } else if let Some(why) = self.skip_file {
            Some(why.to_owned().into())
        } else if let Some(p) = by_pattern {
            Some(p.reason().into())
        } else if self.skip_accessors && is_trivial_accessor(block) {
            Some("trivial accessor (--skip-accessors)".into())
        } else if !self.entry_all && is_tiny(block) {
            Some(TINY_REASON.into())
        } else if !self.entry_all && self.is_iterator_step(sig, span) {
            Some(ITERATOR_REASON.into())
        } else if self.entry_all {
            None
        } else if let Some(why) = self.merged_into_callers(attrs, block, span) {
            Some(why.into())
        } else if takes_place_ref(sig) && is_small_with_ref(block) && !self.names_a_line(span) {
            Some(REF_REASON.into())
        } else {
            None
        };
        let (start, end) = (
            self.index.offset(span.start()),
            self.index.offset(span.end()),
        );
        let is_skipped = skipped.is_some();
        let mut names = CallNames::default();
        names.visit_block(block);
        self.out.contexts.push(FnContext {
            func: func.clone(),
            start,
            end,
            line: span.start().line as u32,
            last_line: span.end().line as u32,
            skipped,
            calls: names.all.into_iter().collect(),
            method_calls: names.methods.into_iter().collect(),
            method: !matches!(self.owner, Owner::Module | Owner::Block),
            own_calls: if self.ctx.is_none() {
                let module = self.module.join("::");
                names
                    .typed
                    .into_iter()
                    .filter_map(|((ty, name), n)| {
                        let ty = if ty == "Self" { self.self_ty.clone()? } else { ty };
                        Some((format!("{module}::{ty}::{name}"), n))
                    })
                    .collect()
            } else {
                Vec::new()
            },
            path_calls: names
                .paths
                .iter()
                .filter_map(|(segs, n)| Some((self.resolve_path(segs)?, *n)))
                .collect(),
            cfg: self.cfg.clone().and(Pred::of_attrs(attrs)),
            public,
            exported,
            test_only: self.in_test || has_attr(attrs, "test") || is_cfg_test(attrs),
            leaf: is_leaf(block),
            large: false,
            twice: false,
            is_async: sig.asyncness.is_some(),
            inline_said: attrs
                .iter()
                .any(|a| a.path().is_ident("inline") || a.path().is_ident("cold")),
            target_feature: has_attr(attrs, "target_feature"),
            copied: copied_into_callers(attrs, sig, block),
            takes_closure: takes_closure(sig),
            generic: std::iter::once(&sig.generics)
                .chain(self.impl_generics.as_ref())
                .any(|g| g.type_params().next().is_some() || g.const_params().next().is_some())
                || sig.inputs.iter().any(|a| {
                    matches!(a, syn::FnArg::Typed(t) if matches!(*t.ty, syn::Type::ImplTrait(_)))
                }),
            ret: match &sig.output {
                syn::ReturnType::Type(_, t) => quote::ToTokens::to_token_stream(&**t).to_string(),
                syn::ReturnType::Default => "()".to_owned(),
            },
            rebind: rebind_params(sig),
            body_end: self.index.offset(block.brace_token.span.close().start()),
        });
        let ctx_index = self.out.contexts.len() - 1;
        if is_skipped {
            // Still look inside for nested items, which are their own functions (named
            // under this one, as they are when it has sites).
            let saved = self.ctx.replace((ctx_index, func));
            let saved_owner = std::mem::replace(&mut self.owner, Owner::Block);
            self.visit_nested_items(block);
            self.owner = saved_owner;
            self.ctx = saved;
            return;
        }

        let saved_ctx = self.ctx.replace((ctx_index, func));
        let saved_scopes = std::mem::take(&mut self.scopes);
        let saved_barrier = std::mem::replace(&mut self.barrier, 0);
        let saved_closure = std::mem::replace(&mut self.in_closure, 0);
        let saved_self = self.self_ty.take();

        let names = self.param_names(sig);
        let params = self.bind(names.params);
        for (name, b) in &params {
            self.out.params.insert(*b);
            if names.not_copy.contains(name) {
                self.out.by_ref_first.insert(*b);
            }
            if names.not_debug.contains(name) {
                self.out.opaque_first.insert(*b);
            }
            if names.mut_refs.contains(name) {
                self.out.reborrowed.insert(*b);
            }
            if names.mut_copies.contains(name) {
                self.out.deref_copied.insert(*b);
            }
        }
        self.scopes.push(params);

        // Entry site: after the opening brace and any inner attributes.
        let entry_at = sig.fn_token.span.start();
        let offset = self.index.offset(inside_block(attrs, block));
        let entry = self.out.sites.len();
        self.push_site(offset, entry_at, SiteKind::Entry);
        if let Some(s) = self.out.sites.get_mut(entry) {
            s.timed = !asks_inlining(attrs) && !is_small(block);
            // Functions without a guard time their calls by calling themselves again; those
            // with one only where the driver finds the function called from more than one
            // place (`recall_guarded`): a second call site would cost a function called once
            // its inlining.
            let call = crate::build::recall::call(&self.owner, attrs, sig);
            if call.is_some() {
                s.one_call = crate::build::recall::one_call(&self.owner, attrs, sig);
            }
            if s.timed {
                if call.is_some() {
                    if let Some(c) = self.out.contexts.get_mut(ctx_index) {
                        c.large =
                            token_count(quote::ToTokens::to_token_stream(block)) > LARGE_FN_TOKENS;
                    }
                }
                s.recall_guarded = call;
            } else {
                s.recall = call;
            }
        }
        // Items in the body are named from the block.
        let saved_owner = std::mem::replace(&mut self.owner, Owner::Block);
        let first = self.out.sites.len();
        let first_stmt = block
            .stmts
            .iter()
            .find(|s| !matches!(s, syn::Stmt::Item(_)))
            .map(|s| self.index.offset(start_of(s.span())));
        self.visit_block_stmts(block);
        // An `impl Trait` return would get a type from each copy (two closures are two
        // types): `if`/`else` of different types.
        let opaque_return = match &sig.output {
            syn::ReturnType::Type(_, t) => {
                crate::build::recall::mentions_impl(quote::ToTokens::to_token_stream(&**t))
            }
            syn::ReturnType::Default => false,
        };
        let twice = sig.asyncness.is_none()
            && !opaque_return
            && !has_attr(attrs, "track_caller")
            && duplicable(block);
        if let Some(c) = self.out.contexts.get_mut(ctx_index) {
            c.twice = twice;
        }
        if let Some(site) = self.out.sites.get_mut(first).filter(|s| {
            s.kind == SiteKind::Line
                && s.context == ctx_index
                && !s.in_closure
                && Some(s.offset) == first_stmt
        }) {
            site.first_stmt = true;
        }

        self.owner = saved_owner;
        self.self_ty = saved_self;
        self.in_closure = saved_closure;
        self.barrier = saved_barrier;
        self.scopes = saved_scopes;
        self.ctx = saved_ctx;
    }

    /// Visits only the items nested in a block (used for skipped functions).
    fn visit_nested_items(&mut self, block: &syn::Block) {
        struct Items<'v, 'a>(&'v mut Visitor<'a>);
        impl<'ast> Visit<'ast> for Items<'_, '_> {
            fn visit_item(&mut self, i: &'ast syn::Item) {
                self.0.visit_item(i);
            }
        }
        Items(self).visit_block(block);
    }

    /// Visits a block's statements, adding line sites and tracking `let` bindings.
    fn visit_block_stmts(&mut self, block: &syn::Block) {
        self.scopes.push(Vec::new());
        for stmt in &block.stmts {
            let attrs: &[syn::Attribute] = match stmt {
                syn::Stmt::Local(l) => &l.attrs,
                syn::Stmt::Expr(e, _) => expr_attrs(e),
                syn::Stmt::Macro(m) => &m.attrs,
                syn::Stmt::Item(_) => &[],
            };
            if !matches!(stmt, syn::Stmt::Item(_)) {
                let at = start_of(stmt.span());
                if self.lines.wants(at.line as u32) && !is_cfg_gated(attrs) {
                    let offset = self.index.offset(at);
                    self.push_site(offset, at, SiteKind::Line);
                }
            }
            match stmt {
                syn::Stmt::Local(local) => {
                    if let Some(init) = &local.init {
                        self.visit_expr(&init.expr);
                        if let Some((_, diverge)) = &init.diverge {
                            self.visit_expr(diverge);
                        }
                    }
                    if !is_cfg_gated(&local.attrs) {
                        let mut names = Vec::new();
                        pat_bindings(&local.pat, &mut names);
                        let names = self.bind(names);
                        // `let v = Vec::new();` and the like: surely not a small copy.
                        let single = matches!(&local.pat, syn::Pat::Ident(_) | syn::Pat::Type(_));
                        // One binding whose annotated type, or initializer, says so.
                        let surely = |ty: fn(&syn::Type) -> bool, init: fn(&syn::Expr) -> bool| {
                            let typed = matches!(&local.pat, syn::Pat::Type(t) if ty(&t.ty));
                            single && (typed || local.init.as_ref().is_some_and(|i| init(&i.expr)))
                        };
                        if surely(|t| !small_copy_type(t), not_a_small_copy) {
                            for (_, b) in &names {
                                self.out.by_ref_first.insert(*b);
                            }
                        }
                        // A closure or a future has no `Debug`, and a reference to a closure
                        // whose parameter types are still open, coerced to `&dyn Cap`, makes
                        // rustc infer those types from the capture: errors in the closure's
                        // own parameters that no capture form could fix.
                        if single && local.init.as_ref().is_some_and(|i| never_debug(&i.expr)) {
                            for (_, b) in &names {
                                self.out.opaque_first.insert(*b);
                            }
                        }
                        let mut_reference = |e: &syn::Expr| matches!(e, syn::Expr::Reference(r) if r.mutability.is_some());
                        if surely(unique_ref_type, mut_reference) {
                            for (_, b) in &names {
                                self.out.reborrowed.insert(*b);
                                self.out.by_ref_first.insert(*b);
                            }
                        }
                        if surely(mut_ref_to_copy, |_| false) {
                            for (_, b) in &names {
                                self.out.deref_copied.insert(*b);
                            }
                        }
                        // A `Vec` or a `String` is captured as the slice or `str` it holds
                        // (`&&*cache`): a reference to the local itself would keep its three
                        // words on the stack across every loop the site is in (strsim's
                        // `generic_levenshtein`, `&cache` at 11 sites: 1.309x -> 1.242x at
                        // every line).
                        if surely(owned_buffer_type, makes_owned_buffer) {
                            for (_, b) in &names {
                                self.out.reborrowed.insert(*b);
                            }
                        }
                        if let Some(frame) = self.scopes.last_mut() {
                            frame.extend(names);
                        }
                    }
                }
                syn::Stmt::Expr(e, _) => self.visit_expr(e),
                syn::Stmt::Item(item) => self.visit_item(item),
                syn::Stmt::Macro(_) => {}
            }
        }
        self.scopes.pop();
    }

    /// Records a loop body (in a function body, outside closures), and its head if it may wait
    /// (`calls`).
    fn loop_head(&mut self, attrs: &[syn::Attribute], body: &syn::Block, calls: LoopCalls) {
        let Some((ctx, _)) = &self.ctx else {
            return;
        };
        if self.in_closure == 0 {
            self.out.loop_bodies.push(LoopBody {
                open: self.index.offset(inside_block(attrs, body)),
                close: self.index.offset(body.brace_token.span.close().start()),
                context: *ctx,
                duplicable: duplicable(body) && !awaits(body),
                calls: {
                    let mut names = CallNames::default();
                    names.visit_block(body);
                    names.all.into_keys().collect()
                },
                calls_once: false,
            });
        }
        let calls = match calls {
            LoopCalls::None => return,
            LoopCalls::Paths(names) => Some(names),
            LoopCalls::Other => None,
        };
        if self.in_closure > 0 {
            return;
        }
        let offset = self.index.offset(inside_block(attrs, body));
        self.out.loops.push(LoopHead {
            offset,
            context: *ctx,
            calls,
        });
    }

    fn with_frame(&mut self, names: Vec<String>, f: impl FnOnce(&mut Self)) {
        let names = self.bind(names);
        self.scopes.push(names);
        f(self);
        self.scopes.pop();
    }

    /// Runs `f` with only `names` visible (closures and async blocks see their own bindings).
    fn with_barrier(&mut self, names: Vec<String>, f: impl FnOnce(&mut Self)) {
        let saved = std::mem::replace(&mut self.barrier, self.scopes.len());
        self.in_closure += 1;
        self.with_frame(names, f);
        self.in_closure -= 1;
        self.barrier = saved;
    }
}

/// Where code may go at the start of a block: after its `{` and any inner attributes (which
/// syn keeps with the item or expression that owns the block).
fn inside_block(attrs: &[syn::Attribute], block: &syn::Block) -> LineColumn {
    let mut after = block.brace_token.span.open().end();
    for attr in attrs {
        if matches!(attr.style, syn::AttrStyle::Inner(_)) {
            let end = attr.span().end();
            if (end.line, end.column) > (after.line, after.column) {
                after = end;
            }
        }
    }
    after
}

/// What a loop's body (and its `while` condition) calls that may make it wait or run for
/// long, so that it re-reads its armed flag at each iteration.
#[derive(Debug, PartialEq)]
enum LoopCalls {
    /// Nothing: a data loop (it finishes or spins, and cannot be a server's main loop).
    None,
    /// Only functions called by path: their last segments, each once.
    Paths(Vec<String>),
    /// A method, a macro, an `.await` or a call through an expression.
    Other,
}

/// What `b` (and `cond`) call, other than associated functions of primitive types
/// (`u64::from`), constructors (`Some(x)`), quiet macros (`debug_assert!`) and, with
/// `methods`, integer arithmetic methods (`x.wrapping_mul(3)`). Without `methods`, method
/// calls do not count at all: `for` loops over data are full of them, and a loop that waits
/// for work almost always calls a function or awaits.
fn calls_in(b: &syn::Block, cond: Option<&syn::Expr>, methods: bool) -> LoopCalls {
    struct Calls {
        paths: Vec<String>,
        other: bool,
        methods: bool,
    }
    impl<'ast> Visit<'ast> for Calls {
        fn visit_expr_call(&mut self, c: &'ast syn::ExprCall) {
            match &*c.func {
                syn::Expr::Path(p) => {
                    let segs = &p.path.segments;
                    let first = segs
                        .first()
                        .map(|s| s.ident.to_string())
                        .unwrap_or_default();
                    let last = segs.last().map(|s| s.ident.to_string()).unwrap_or_default();
                    // An associated function of a primitive type (`u32::from(x)`), a
                    // constructor (`Some(x)`, `Entry::Occupied(v)`, `Point(a, b)`: a
                    // capitalized last segment) or one of std's memory functions runs no
                    // code of its own that could wait.
                    let runs_nothing = (segs.len() >= 2 && PRIMITIVES.contains(&first.as_str()))
                        || last.starts_with(|c: char| c.is_ascii_uppercase())
                        || is_memory_fn(&p.path);
                    // Only a bare name or a path from this crate (`self::`, `crate::`,
                    // `super::`, `Self::`) can be one of the crate's leaves; `thread::sleep`
                    // is another crate's function whatever the crate names its own.
                    let own = p.path.leading_colon.is_none()
                        && (segs.len() == 1
                            || ["self", "crate", "super", "Self"].contains(&first.as_str()));
                    match (runs_nothing, own) {
                        (true, _) => {}
                        (false, false) => self.other = true,
                        (false, true) => {
                            if !self.paths.contains(&last) {
                                self.paths.push(last);
                            }
                        }
                    }
                }
                _ => self.other = true,
            }
            syn::visit::visit_expr_call(self, c);
        }
        fn visit_expr_method_call(&mut self, m: &'ast syn::ExprMethodCall) {
            if self.methods && !is_arithmetic_method(&m.method.to_string()) {
                self.other = true;
            }
            syn::visit::visit_expr_method_call(self, m);
        }
        fn visit_expr_await(&mut self, _: &'ast syn::ExprAwait) {
            self.other = true;
        }
        fn visit_macro(&mut self, m: &'ast syn::Macro) {
            // Assertions and compile-time macros do not wait.
            let quiet = m
                .path
                .get_ident()
                .is_some_and(|i| QUIET_MACROS.contains(&i.to_string().as_str()));
            if !quiet {
                self.other = true;
            }
        }
    }
    /// Macros that expand to code that cannot wait on the outside world.
    const QUIET_MACROS: &[&str] = &[
        "assert",
        "assert_eq",
        "assert_ne",
        "cfg",
        "column",
        "concat",
        "debug_assert",
        "debug_assert_eq",
        "debug_assert_ne",
        "env",
        "file",
        "line",
        "matches",
        "module_path",
        "option_env",
        "panic",
        "stringify",
        "todo",
        "unimplemented",
        "unreachable",
    ];
    let mut c = Calls {
        paths: Vec::new(),
        other: false,
        methods,
    };
    c.visit_block(b);
    if let Some(e) = cond {
        c.visit_expr(e);
    }
    if c.other {
        LoopCalls::Other
    } else if c.paths.is_empty() {
        LoopCalls::None
    } else {
        LoopCalls::Paths(c.paths)
    }
}

/// Functions of std's `ptr`, `mem` and `cmp` modules, called by a path through the module
/// (`ptr::drop_in_place(p)`, `std::mem::swap(a, b)`): they move, compare or drop values in
/// memory and wait on nothing (a destructor that does I/O in a loop over elements is not a
/// server's main loop).
fn is_memory_fn(path: &syn::Path) -> bool {
    const MODULES: &[&str] = &["ptr", "mem", "cmp"];
    const NAMES: &[&str] = &[
        "read",
        "read_unaligned",
        "write",
        "write_unaligned",
        "write_bytes",
        "copy",
        "copy_nonoverlapping",
        "swap",
        "replace",
        "take",
        "drop_in_place",
        "null",
        "null_mut",
        "forget",
        "size_of",
        "size_of_val",
        "align_of",
        "min",
        "max",
    ];
    let segs: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    let Some((last, modules)) = segs.split_last() else {
        return false;
    };
    let module = match modules {
        [m] => m,
        [root, m] if root == "std" || root == "core" => m,
        _ => return false,
    };
    MODULES.contains(&module.as_str()) && NAMES.contains(&last.as_str())
}

/// Integer methods of std that compute and return (`wrapping_*`, `checked_*`, bit counts…),
/// and raw-pointer arithmetic (`add`, `offset`, `as_ptr`…): a user type's method of the same
/// name that waits on the outside world would be perverse.
fn is_arithmetic_method(name: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "wrapping_",
        "checked_",
        "saturating_",
        "overflowing_",
        "unchecked_",
    ];
    const NAMES: &[&str] = &[
        "abs",
        "count_ones",
        "count_zeros",
        "leading_zeros",
        "trailing_zeros",
        "leading_ones",
        "trailing_ones",
        "rotate_left",
        "rotate_right",
        "swap_bytes",
        "reverse_bits",
        "to_be",
        "to_le",
        "pow",
        "rem_euclid",
        "div_euclid",
        "signum",
        "is_power_of_two",
        "next_power_of_two",
        "ilog2",
        "ilog10",
        "isqrt",
        "abs_diff",
        "to_bits",
        "from_bits",
        "add",
        "sub",
        "offset",
        "byte_add",
        "byte_sub",
        "cast",
        "cast_mut",
        "cast_const",
        "as_ptr",
        "as_mut_ptr",
        "is_null",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p)) || NAMES.contains(&name)
}

/// Whether a function body calls nothing and has no loop ([`FnContext::leaf`]).
fn is_leaf(b: &syn::Block) -> bool {
    struct Loops(bool);
    impl<'ast> Visit<'ast> for Loops {
        fn visit_expr_loop(&mut self, _: &'ast syn::ExprLoop) {
            self.0 = true;
        }
        fn visit_expr_while(&mut self, _: &'ast syn::ExprWhile) {
            self.0 = true;
        }
        fn visit_expr_for_loop(&mut self, _: &'ast syn::ExprForLoop) {
            self.0 = true;
        }
        fn visit_item(&mut self, _: &'ast syn::Item) {}
    }
    let mut l = Loops(false);
    l.visit_block(b);
    !l.0 && calls_in(b, None, true) == LoopCalls::None
}

/// Whether a `for` loop's iterator is a range with an end (`0..n`, `1..=len`, `(0..n).rev()`,
/// `(a..b).step_by(k)`): such a loop ends after at most that many iterations, so it is not a
/// server's main loop and needs no re-read of its armed flag (a site in it sees arming at
/// the function's next call), whatever its body calls.
fn bounded_range(e: &syn::Expr) -> bool {
    match e {
        syn::Expr::Range(r) => r.end.is_some(),
        syn::Expr::Paren(p) => bounded_range(&p.expr),
        syn::Expr::Group(g) => bounded_range(&g.expr),
        syn::Expr::MethodCall(m) => {
            matches!(m.method.to_string().as_str(), "rev" | "step_by") && bounded_range(&m.receiver)
        }
        _ => false,
    }
}

/// Macros whose expansion is code that may be written twice (no `static`, no item):
/// `visit::duplicable`.
const PLAIN_MACROS: &[&str] = &[
    "assert",
    "assert_eq",
    "assert_ne",
    "cfg",
    "column",
    "concat",
    "dbg",
    "debug_assert",
    "debug_assert_eq",
    "debug_assert_ne",
    "env",
    "eprint",
    "eprintln",
    "file",
    "format",
    "format_args",
    "line",
    "matches",
    "module_path",
    "option_env",
    "panic",
    "print",
    "println",
    "stringify",
    "todo",
    "unimplemented",
    "unreachable",
    "vec",
    "write",
    "writeln",
];

/// Whether a function body can be written twice (see `rewrite`'s two bodies): it declares no
/// item but `use`s, `const`s and plain nested `fn`s (a `static` would become two, two `impl`s
/// of a trait for one type conflict; two copies of a nested function are two functions that
/// do the same, unless an attribute exports it by name), and invokes no macro but
/// [`PLAIN_MACROS`] (a macro may declare a `static`: `thread_local!`, a logging callsite).
/// What the items it allows hold is held to the same rule (lz4_flex's `count_same_bytes`, with
/// a `#[cold] fn` for its tail inside).
fn duplicable(block: &syn::Block) -> bool {
    struct Dup(bool);
    impl<'ast> Visit<'ast> for Dup {
        fn visit_item(&mut self, item: &'ast syn::Item) {
            const PLAIN_ATTRS: &[&str] = &["allow", "cold", "doc", "inline", "must_use"];
            let plain = |attrs: &[syn::Attribute]| {
                attrs.iter().all(|a| {
                    a.path()
                        .get_ident()
                        .is_some_and(|i| PLAIN_ATTRS.contains(&i.to_string().as_str()))
                })
            };
            match item {
                syn::Item::Fn(f) if plain(&f.attrs) => syn::visit::visit_item_fn(self, f),
                syn::Item::Const(c) if plain(&c.attrs) => syn::visit::visit_item_const(self, c),
                syn::Item::Use(_) => {}
                _ => self.0 = false,
            }
        }
        fn visit_macro(&mut self, m: &'ast syn::Macro) {
            let plain = m.path.segments.len() == 1
                && m.path
                    .get_ident()
                    .is_some_and(|i| PLAIN_MACROS.contains(&i.to_string().as_str()));
            if !plain {
                self.0 = false;
            }
        }
    }
    let mut d = Dup(true);
    d.visit_block(block);
    d.0
}

/// Whether `block` has an `.await` (outside closures and async blocks it holds).
fn awaits(block: &syn::Block) -> bool {
    struct Awaits(bool);
    impl<'ast> Visit<'ast> for Awaits {
        fn visit_expr_await(&mut self, _: &'ast syn::ExprAwait) {
            self.0 = true;
        }
        fn visit_expr_closure(&mut self, _: &'ast syn::ExprClosure) {}
        fn visit_expr_async(&mut self, _: &'ast syn::ExprAsync) {}
    }
    let mut a = Awaits(false);
    a.visit_block(block);
    a.0
}

fn expr_attrs(e: &syn::Expr) -> &[syn::Attribute] {
    match e {
        syn::Expr::Array(x) => &x.attrs,
        syn::Expr::Assign(x) => &x.attrs,
        syn::Expr::Async(x) => &x.attrs,
        syn::Expr::Await(x) => &x.attrs,
        syn::Expr::Binary(x) => &x.attrs,
        syn::Expr::Block(x) => &x.attrs,
        syn::Expr::Break(x) => &x.attrs,
        syn::Expr::Call(x) => &x.attrs,
        syn::Expr::Closure(x) => &x.attrs,
        syn::Expr::ForLoop(x) => &x.attrs,
        syn::Expr::If(x) => &x.attrs,
        syn::Expr::Loop(x) => &x.attrs,
        syn::Expr::Macro(x) => &x.attrs,
        syn::Expr::Match(x) => &x.attrs,
        syn::Expr::MethodCall(x) => &x.attrs,
        syn::Expr::Return(x) => &x.attrs,
        syn::Expr::Unsafe(x) => &x.attrs,
        syn::Expr::While(x) => &x.attrs,
        _ => &[],
    }
}

impl<'ast> Visit<'ast> for Visitor<'_> {
    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        let public = !matches!(f.vis, syn::Visibility::Inherited);
        let exported = self.exported && matches!(f.vis, syn::Visibility::Public(_));
        self.visit_function(&f.attrs, &f.sig, &f.block, f.span(), (public, exported));
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        // A trait method can be called from anywhere the trait is.
        let public = !matches!(f.vis, syn::Visibility::Inherited)
            || matches!(self.owner, Owner::TraitImpl(_));
        let exported = (self.exported && matches!(f.vis, syn::Visibility::Public(_)))
            || matches!(self.owner, Owner::TraitImpl(_));
        self.visit_function(&f.attrs, &f.sig, &f.block, f.span(), (public, exported));
    }

    fn visit_trait_item_fn(&mut self, f: &'ast syn::TraitItemFn) {
        if let Some(block) = &f.default {
            self.visit_function(&f.attrs, &f.sig, block, f.span(), (true, true));
        }
    }

    fn visit_item_impl(&mut self, i: &'ast syn::ItemImpl) {
        // A probe in an allocator would allocate while the allocator runs.
        let allocator = i.trait_.as_ref().is_some_and(|(_, path, _)| {
            path.segments
                .last()
                .is_some_and(|s| s.ident == "GlobalAlloc" || s.ident == "Allocator")
        });
        if allocator {
            for item in &i.items {
                if let syn::ImplItem::Fn(f) = item {
                    let span = f.span();
                    self.out.contexts.push(FnContext {
                        func: format!(
                            "{}::{}::{}",
                            self.module.join("::"),
                            type_name(&i.self_ty),
                            f.sig.ident
                        ),
                        start: self.index.offset(span.start()),
                        end: self.index.offset(span.end()),
                        line: span.start().line as u32,
                        last_line: span.end().line as u32,
                        skipped: Some("allocator method".into()),
                        calls: Vec::new(),
                        own_calls: Vec::new(),
                        path_calls: Vec::new(),
                        cfg: self.cfg.clone(),
                        method_calls: Vec::new(),
                        method: true,
                        public: true,
                        exported: true,
                        test_only: self.in_test,
                        leaf: false,
                        large: false,
                        twice: false,
                        is_async: false,
                        generic: false,
                        inline_said: false,
                        copied: false,
                        takes_closure: false,
                        target_feature: false,
                        ret: String::new(),
                        rebind: String::new(),
                        body_end: 0,
                    });
                }
            }
            return;
        }
        let saved = self.self_ty.replace(type_name(&i.self_ty));
        let saved_generics = self.impl_generics.replace(i.generics.clone());
        let saved_owner = std::mem::replace(&mut self.owner, Owner::of_impl(i));
        let iterator = i.trait_.as_ref().is_some_and(|(not, path, _)| {
            not.is_none()
                && path
                    .segments
                    .last()
                    .is_some_and(|s| s.ident == "Iterator" || s.ident == "DoubleEndedIterator")
                && self.trait_names.is_std(path)
        });
        let saved_iterator = std::mem::replace(&mut self.iterator_impl, iterator);
        let saved_cfg = self.enter_cfg(&i.attrs);
        for item in &i.items {
            self.visit_impl_item(item);
        }
        self.cfg = saved_cfg;
        self.iterator_impl = saved_iterator;
        self.owner = saved_owner;
        self.impl_generics = saved_generics;
        self.self_ty = saved;
    }

    fn visit_item_trait(&mut self, t: &'ast syn::ItemTrait) {
        let saved = self.self_ty.replace(t.ident.to_string());
        let saved_owner = std::mem::replace(&mut self.owner, Owner::of_trait(t));
        let saved_cfg = self.enter_cfg(&t.attrs);
        for item in &t.items {
            self.visit_trait_item(item);
        }
        self.cfg = saved_cfg;
        self.owner = saved_owner;
        self.self_ty = saved;
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if let Some((_, items)) = &m.content {
            self.module.push(m.ident.to_string());
            let saved = self.self_ty.take();
            let saved_owner = std::mem::replace(&mut self.owner, Owner::Module);
            let saved_exported = self.exported;
            self.exported &= matches!(m.vis, syn::Visibility::Public(_));
            let saved_test = self.in_test;
            self.in_test |= is_cfg_test(&m.attrs);
            let saved_cfg = self.enter_cfg(&m.attrs);
            for item in items {
                self.visit_item(item);
            }
            self.cfg = saved_cfg;
            self.in_test = saved_test;
            self.exported = saved_exported;
            self.owner = saved_owner;
            self.self_ty = saved;
            self.module.pop();
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        let mut found = Vec::new();
        use_paths(&u.tree, &mut Vec::new(), &mut found);
        // A `pub use` in a module other crates cannot reach re-exports nothing (unless the
        // module itself is re-exported: the driver looks for the module's name too). What
        // it re-exports is named by the path's last segment (`name::*` for a glob of `name`).
        if matches!(u.vis, syn::Visibility::Public(_)) && self.exported {
            self.out.reexports.extend(found.iter().map(|(segs, name)| {
                let last = segs.last().map(String::as_str).unwrap_or_default();
                match name {
                    Some(_) => last.to_owned(),
                    None => format!("{last}::*"),
                }
            }));
        }
        if self.ctx.is_none() {
            let cfg = self.cfg.clone().and(Pred::of_attrs(&u.attrs));
            for (segs, name) in found {
                if let Some(target) = self.resolve_path(&segs) {
                    self.out.uses.push(UseItem {
                        module: self.module.join("::"),
                        name,
                        target,
                        cfg: cfg.clone(),
                    });
                }
            }
        }
    }

    // Const contexts, foreign items and macro definitions get no sites.
    fn visit_item_const(&mut self, _: &'ast syn::ItemConst) {}
    fn visit_item_static(&mut self, _: &'ast syn::ItemStatic) {}
    fn visit_item_foreign_mod(&mut self, _: &'ast syn::ItemForeignMod) {}
    fn visit_item_macro(&mut self, _: &'ast syn::ItemMacro) {}
    fn visit_impl_item_const(&mut self, _: &'ast syn::ImplItemConst) {}
    fn visit_trait_item_const(&mut self, _: &'ast syn::TraitItemConst) {}
    fn visit_expr_const(&mut self, _: &'ast syn::ExprConst) {}
    fn visit_type(&mut self, _: &'ast syn::Type) {}
    fn visit_generic_argument(&mut self, _: &'ast syn::GenericArgument) {}
    fn visit_item_enum(&mut self, _: &'ast syn::ItemEnum) {}
    fn visit_item_struct(&mut self, _: &'ast syn::ItemStruct) {}
    fn visit_item_union(&mut self, _: &'ast syn::ItemUnion) {}
    fn visit_item_type(&mut self, _: &'ast syn::ItemType) {}

    fn visit_expr_repeat(&mut self, r: &'ast syn::ExprRepeat) {
        self.visit_expr(&r.expr);
    }

    fn visit_block(&mut self, b: &'ast syn::Block) {
        if self.ctx.is_some() {
            self.visit_block_stmts(b);
        } else {
            self.visit_nested_items(b);
        }
    }

    fn visit_expr_closure(&mut self, c: &'ast syn::ExprClosure) {
        if let (Some((ctx, _)), syn::Expr::Block(b), None) = (&self.ctx, &*c.body, &c.asyncness) {
            if b.label.is_none() {
                let block = &b.block;
                self.out.closure_bodies.push(ClosureBody {
                    open: self.index.offset(inside_block(&b.attrs, block)),
                    close: self.index.offset(block.brace_token.span.close().start()),
                    context: *ctx,
                    duplicable: duplicable(block)
                        && body_within(block, usize::MAX, Calls::Any, Loops::Refused),
                });
            }
        }
        let mut names = Vec::new();
        for p in &c.inputs {
            pat_bindings(p, &mut names);
        }
        self.with_barrier(names, |v| v.visit_expr(&c.body));
    }

    fn visit_expr_async(&mut self, a: &'ast syn::ExprAsync) {
        self.with_barrier(Vec::new(), |v| v.visit_block(&a.block));
    }

    fn visit_expr_if(&mut self, i: &'ast syn::ExprIf) {
        self.visit_expr(&i.cond);
        let mut names = Vec::new();
        cond_bindings(&i.cond, &mut names);
        self.with_frame(names, |v| v.visit_block(&i.then_branch));
        if let Some((_, e)) = &i.else_branch {
            self.visit_expr(e);
        }
    }

    fn visit_expr_loop(&mut self, l: &'ast syn::ExprLoop) {
        // A loop that calls nothing (no function, method or macro, no `.await`) is a data
        // loop: it finishes or spins, and cannot be a server's main loop.
        self.loop_head(&l.attrs, &l.body, calls_in(&l.body, None, true));
        self.visit_block(&l.body);
    }

    fn visit_expr_while(&mut self, w: &'ast syn::ExprWhile) {
        self.loop_head(&w.attrs, &w.body, calls_in(&w.body, Some(&w.cond), true));
        self.visit_expr(&w.cond);
        let mut names = Vec::new();
        cond_bindings(&w.cond, &mut names);
        self.with_frame(names, |v| v.visit_block(&w.body));
    }

    fn visit_expr_for_loop(&mut self, f: &'ast syn::ExprForLoop) {
        // A `for` loop without calls is a data loop: keep it free of loads so it can be
        // vectorized (its sites still see the flag read at function entry).
        let calls = if bounded_range(&f.expr) {
            LoopCalls::None
        } else {
            calls_in(&f.body, None, false)
        };
        self.loop_head(&f.attrs, &f.body, calls);
        self.visit_expr(&f.expr);
        let mut names = Vec::new();
        pat_bindings(&f.pat, &mut names);
        self.with_frame(names, |v| v.visit_block(&f.body));
    }

    fn visit_arm(&mut self, arm: &'ast syn::Arm) {
        let mut names = Vec::new();
        pat_bindings(&arm.pat, &mut names);
        self.with_frame(names, |v| {
            if let Some((_, g)) = &arm.guard {
                v.visit_expr(g);
            }
            v.visit_expr(&arm.body);
        });
    }

    // Macro invocations are token streams: nothing inside them is rewritten.
    fn visit_macro(&mut self, _: &'ast syn::Macro) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_copy_types_are_the_runtimes() {
        let small = |t: &str| small_copy_type(&syn::parse_str::<syn::Type>(t).expect("type"));
        for t in [
            "u32",
            "&str",
            "&Vec<u8>",
            "*const u8",
            "*mut A::Item",
            "Option<&T>",
            "Option<usize>",
            "std::ptr::NonNull<T>",
            "(usize, &str)",
            "cmp::Ordering",
            "T",
        ] {
            assert!(small(t), "{t}");
        }
        for t in [
            "&mut u8",
            "String",
            "Option<String>",
            "Option<&mut T>",
            "(u8, String)",
            "(u8, u8, u8)",
            "Vec<u8>",
            "[u8; 4]",
        ] {
            assert!(!small(t), "{t}");
        }
    }

    fn sites(src: &str, lines: LineSel) -> FileSites {
        let file = syn::parse_file(src).expect("test source parses");
        find_sites(src, &file, "k", &lines)
    }

    #[test]
    fn tiny_functions_get_sites_only_with_entry_all() {
        // `caller` is just over the limit.
        let src = format!(
            "fn get(v: &[u8], i: usize) -> u8 {{ v[i] }}\n\
             fn wrap(x: u32) -> u32 {{ helper(x) + 1 }}\n\
             fn sum(v: &[u8]) -> u32 {{ v.iter().map(|&b| u32::from(b)).sum() }}\n\
             fn looped(mut n: u32) -> u32 {{ while n > 9 {{ n /= 10; }} n }}\n\
             fn caller(v: &[u8]) -> u8 {{ let a = get(v, 0); let b = get(v, 1); let c = wrap(2) as u8; a + b + c + v.len() as u8{} }}\n",
            " + 1".repeat(TINY_FN_TOKENS / 2 - 15)
        );
        let src = src.as_str();
        let file = syn::parse_file(src).expect("parses");
        let none = HashSet::new();
        let skip = SkipList::default();
        let sized = Options {
            entry_all: false,
            ..Options::new(&none, &skip)
        };
        let fs = find_sites_with(src, &file, "k", &LineSel::All, &sized);
        let without: Vec<(&str, bool)> = fs
            .contexts
            .iter()
            .map(|c| (c.func.as_str(), c.skipped.as_deref() == Some(TINY_REASON)))
            .collect();
        // Calls do not make a function big; a loop or an iterator-running method does.
        assert_eq!(
            without,
            [
                ("k::get", true),
                ("k::wrap", true),
                ("k::sum", false),
                ("k::looped", false),
                ("k::caller", false)
            ]
        );
        assert!(fs
            .sites
            .iter()
            .all(|s| s.func != "k::get" && s.func != "k::wrap"));
        assert_eq!(
            fs.contexts[4].calls,
            [("get".into(), 2), ("len".into(), 1), ("wrap".into(), 1)]
        );
        // --entry all: every function.
        let fs = find_sites_with(src, &file, "k", &LineSel::None, &Options::new(&none, &skip));
        assert_eq!(fs.sites.len(), 5);
        assert!(fs.contexts.iter().all(|c| c.skipped.is_none()));
    }

    #[test]
    fn a_field_named_like_a_looping_method_is_not_a_loop() {
        let block = |b: &str| syn::parse_str::<syn::Block>(b).expect("block");
        // Fields named `sum`, `count`, `last`: a few tokens, tiny.
        assert!(is_tiny(&block(
            "{ self.sum = self.sum.wrapping_add(v); self.count += 1; self.last = v; self.sum }"
        )));
        // The methods: each runs an iterator, a loop.
        for b in [
            "{ self.v.iter().sum() }",
            "{ self.v.iter().count() }",
            "{ self.v.iter().copied().sum::<u64>() }",
        ] {
            assert!(!is_tiny(&block(b)), "{b}");
        }
    }

    #[test]
    fn small_functions_taking_a_reference_to_a_value_get_sites_only_with_entry_all() {
        // Each body is over the tiny limit and within the reference limit, but for `big`.
        let body = |extra: usize| {
            format!(
                "{{ let a = x{}; let b = helper(a ^ (a >> 3)); if b > 7 {{ b - 1 }} else {{ b + 2 }} }}",
                " + 1".repeat(extra)
            )
        };
        let mid = body(TINY_FN_TOKENS / 2);
        let src = format!(
            "struct S {{ n: u64 }}\n\
             impl S {{\n\
             fn by_mut(&mut self, x: u64) -> u64 {mid}\n\
             fn by_ref(&self, x: u64) -> u64 {mid}\n\
             fn by_value(self, x: u64) -> u64 {mid}\n\
             fn typed(self: &Self, x: u64) -> u64 {mid}\n\
             }}\n\
             fn state(s: &mut u64, x: u64) -> u64 {mid}\n\
             fn text(s: &str, x: u64) -> u64 {mid}\n\
             fn slice(s: &[u8], x: u64) -> u64 {mid}\n\
             fn plain(s: u64, x: u64) -> u64 {mid}\n\
             fn big(s: &mut u64, x: u64) -> u64 {}\n\
             fn looped(s: &mut u64, mut x: u64) -> u64 {{ while x > 9 {{ x /= 10; }} x }}\n",
            body(REF_FN_TOKENS / 2)
        );
        let file = syn::parse_file(&src).expect("parses");
        let none = HashSet::new();
        let skip = SkipList::default();
        let sized = Options {
            entry_all: false,
            ..Options::new(&none, &skip)
        };
        let fs = find_sites_with(&src, &file, "k", &LineSel::None, &sized);
        let skipped: Vec<(&str, Option<&str>)> = fs
            .contexts
            .iter()
            .map(|c| (c.func.as_str(), c.skipped.as_deref()))
            .collect();
        assert_eq!(
            skipped,
            [
                ("k::S::by_mut", Some(REF_REASON)),
                ("k::S::by_ref", Some(REF_REASON)),
                ("k::S::by_value", None),
                ("k::S::typed", Some(REF_REASON)),
                ("k::state", Some(REF_REASON)),
                ("k::text", None),
                ("k::slice", None),
                ("k::plain", None),
                ("k::big", None),
                ("k::looped", None),
            ]
        );
        // --lines naming one of its lines (line 3: `by_mut`) gives that function its sites.
        let line3: HashSet<u32> = [3].into_iter().collect();
        let fs = find_sites_with(&src, &file, "k", &LineSel::Some(line3), &sized);
        let with_sites: HashSet<&str> = fs.sites.iter().map(|s| s.func.as_str()).collect();
        assert!(with_sites.contains("k::S::by_mut"), "{with_sites:?}");
        assert!(!with_sites.contains("k::S::by_ref"), "{with_sites:?}");
        // --entry all: every function has its entry site.
        let fs = find_sites_with(
            &src,
            &file,
            "k",
            &LineSel::None,
            &Options::new(&none, &skip),
        );
        assert_eq!(fs.sites.len(), 10);
    }

    #[test]
    fn an_iterators_next_gets_sites_only_with_entry_all_or_its_lines() {
        // Loops keep every `next` here over the tiny limit.
        let src = "struct It { i: u32, n: u32 }\n\
             impl Iterator for It {\n\
                 type Item = u32;\n\
                 fn next(&mut self) -> Option<u32> {\n\
                     while self.i < self.n { self.i += 1; if self.i % 3 == 0 { return Some(self.i); } }\n\
                     None\n\
                 }\n\
                 fn size_hint(&self) -> (usize, Option<usize>) { for _ in 0..2 {} (0, None) }\n\
             }\n\
             impl std::iter::DoubleEndedIterator for It {\n\
                 fn next_back(&mut self) -> Option<u32> { while self.n > self.i { self.n -= 1; if self.n % 3 == 0 { return Some(self.n); } } None }\n\
             }\n\
             impl It {\n\
                 fn next(&mut self) -> Option<u32> { while self.i < self.n { self.i += 2; if self.i % 3 == 0 { return Some(self.i); } } None }\n\
             }\n";
        let file = syn::parse_file(src).expect("parses");
        let none = HashSet::new();
        let skip = SkipList::default();
        let skipped = |fs: &FileSites| -> Vec<String> {
            fs.contexts
                .iter()
                .filter(|c| c.skipped.as_deref() == Some(ITERATOR_REASON))
                .map(|c| format!("{}:{}", c.func, c.line))
                .collect()
        };
        let sized = |traits| Options {
            entry_all: false,
            ..Options::new(traits, &skip)
        };
        // Std's `next` and `next_back`; not `size_hint` or an inherent `next`.
        let fs = find_sites_with(src, &file, "k", &LineSel::None, &sized(&none));
        assert_eq!(skipped(&fs), ["k::It::next:4", "k::It::next_back:11"]);
        assert!(fs.sites.iter().all(|s| s.line != 4 && s.line != 11));
        assert_eq!(
            fs.sites.iter().filter(|s| s.func == "k::It::next").count(),
            1
        );
        // A package with a trait of its own named `Iterator`: a bare `Iterator` may be that one.
        let own_src = format!(
            "{src}mod own {{ pub trait Iterator {{ fn next(&mut self) -> u32; }} }}\n\
             use own::Iterator as _;\n"
        );
        let own_file = syn::parse_file(&own_src).expect("parses");
        let own = declared_traits([&own_file]);
        let fs = find_sites_with(&own_src, &own_file, "k", &LineSel::None, &sized(&own));
        assert_eq!(skipped(&fs), ["k::It::next_back:11"]);
        // One of its lines asked for, every line, or --entry all: sites as any function.
        for (lines, still) in [
            (LineSel::Some([5].into()), vec!["k::It::next_back:11"]),
            (LineSel::All, vec![]),
        ] {
            let fs = find_sites_with(src, &file, "k", &lines, &sized(&none));
            assert_eq!(skipped(&fs), still);
            assert!(fs.sites.iter().any(|s| s.line == 4));
        }
        let fs = find_sites_with(src, &file, "k", &LineSel::None, &Options::new(&none, &skip));
        assert!(skipped(&fs).is_empty());
    }

    /// The functions that got sites, in source order.
    fn funcs_with_sites(fs: &FileSites) -> Vec<String> {
        let mut f: Vec<String> = fs.sites.iter().map(|s| s.func.clone()).collect();
        f.dedup();
        f
    }

    /// `src`'s sites at `lines`, built with `--entry sized` or `--entry all`.
    fn sites_entry(src: &str, lines: &LineSel, entry_all: bool) -> FileSites {
        let file = syn::parse_file(src).expect("parses");
        let none = HashSet::new();
        let skip = SkipList::default();
        let opts = Options {
            entry_all,
            ..Options::new(&none, &skip)
        };
        find_sites_with(src, &file, "k", lines, &opts)
    }

    #[test]
    fn a_small_inline_function_has_no_sites_unless_its_lines_are_asked_for() {
        // The reason names the limit the rule applies.
        assert!(INLINE_HINT_REASON.contains(&format!("at most {LARGE_FN_TOKENS} tokens")));
        // Not tiny (over 64 tokens, calls): `#[inline]` keeps its sites out, with a loop or an
        // iterator-running method too; with `#[inline(never)]`, no attribute, over 300 tokens
        // or an `.await`, it has them.
        let body = "(v: &[u8]) -> usize {\n    let a = weigh(v, 1) + weigh(v, 2) * 3 + weigh(v, 3) * 5 + weigh(v, 4) * 7;\n    let b = if a > 10 { weigh(v, a) } else { weigh(v, a + 1) + weigh(v, 2 * a) };\n    let c = if b % 2 == 0 { weigh(v, b / 2) } else { weigh(v, 3 * b + 1) };\n    a + b + c\n}\n";
        let src = format!(
            "#[inline]\nfn hinted{body}\
             #[inline(never)]\nfn never{body}\
             fn plain{body}\
             #[inline]\nfn looping(v: &[u8]) -> usize {{\n    let mut n = 0;\n    for b in v {{\n        n ^= usize::from(*b);\n    }}\n    n\n}}\n\
             #[inline]\nfn summing(v: &[u8]) -> usize {{\n    v.iter().map(|b| usize::from(*b)).sum()\n}}\n\
             #[inline]\nfn long(v: &[u8]) -> usize {{\n    let mut n = 0;\n    for b in v {{\n        n ^= {};\n    }}\n    n\n}}\n\
             #[inline]\nasync fn waiting(v: &[u8]) -> usize {{\n    ready(v).await\n}}\n",
            ["usize::from(*b)"; 50].join(" + ")
        );
        for sel in [LineSel::None, LineSel::All] {
            let fs = sites_entry(&src, &sel, false);
            assert_eq!(
                funcs_with_sites(&fs),
                ["k::never", "k::plain", "k::long", "k::waiting"]
            );
            for hinted in [0, 3, 4] {
                assert_eq!(
                    fs.contexts[hinted].skipped.as_deref(),
                    Some(INLINE_HINT_REASON)
                );
            }
        }
        // A line of it named by a range, or `--entry all`: sites again.
        let fs = sites_entry(&src, &LineSel::Some([3].into()), false);
        assert_eq!(fs.contexts[0].skipped, None);
        let fs = sites_entry(&src, &LineSel::None, true);
        assert_eq!(fs.contexts[0].skipped, None);
    }

    #[test]
    fn a_table_of_constant_arms_counts_as_small() {
        // Forty arms mapping constants to constants (over 300 tokens): a jump table; the same
        // arms computing their values are code.
        let arms = |value: &dyn Fn(usize) -> String| {
            (0..40)
                .map(|i| format!("        '\\u{{{:X}}}' => {},\n", 0x100 + i, value(i)))
                .collect::<String>()
        };
        let table = arms(&|i| format!("({}, Kind::K{i})", i % 3));
        let code = arms(&|i| format!("(weigh(c, {i}), Kind::K{i})"));
        let src = format!(
            "#[inline]\nfn table(c: char) -> (u8, Kind) {{\n    match c {{\n{table}        _ => (2, Kind::Other),\n    }}\n}}\n\
             #[inline]\nfn code(c: char) -> (u8, Kind) {{\n    match c {{\n{code}        _ => (2, Kind::Other),\n    }}\n}}\n"
        );
        let fs = sites_entry(&src, &LineSel::None, false);
        assert_eq!(funcs_with_sites(&fs), ["k::code"]);
        assert_eq!(fs.contexts[0].skipped.as_deref(), Some(INLINE_HINT_REASON));
    }

    #[test]
    fn an_inline_always_function_has_no_sites_unless_its_lines_are_asked_for() {
        // A loop, so not tiny: `#[inline(always)]` keeps its sites out (and `#[inline]` at this
        // size, for its own reason).
        let src = "#[inline(always)]\nfn chunk(v: &[u8]) -> usize {\n    let mut n = 0;\n    for b in v {\n        n += usize::from(*b);\n    }\n    n\n}\n\
                   #[inline]\nfn hinted(v: &[u8]) -> usize {\n    let mut n = 0;\n    for b in v {\n        n ^= usize::from(*b);\n    }\n    n\n}\n\
                   pub fn search(v: &[u8]) -> usize {\n    let mut t = 0;\n    for w in v.chunks(4) {\n        t += chunk(w) + hinted(w);\n    }\n    t\n}\n";
        let file = syn::parse_file(src).expect("parses");
        let none = HashSet::new();
        let skip = SkipList::default();
        let opts = Options {
            entry_all: false,
            ..Options::new(&none, &skip)
        };
        for sel in [LineSel::None, LineSel::All] {
            let fs = find_sites_with(src, &file, "k", &sel, &opts);
            assert_eq!(funcs_with_sites(&fs), ["k::search"]);
            assert_eq!(
                fs.contexts[0].skipped.as_deref(),
                Some(INLINE_ALWAYS_REASON)
            );
            assert_eq!(fs.contexts[1].skipped.as_deref(), Some(INLINE_HINT_REASON));
        }
        // A line of it named by a range, or `--entry all`: sites again.
        let fs = find_sites_with(src, &file, "k", &LineSel::Some([5].into()), &opts);
        assert_eq!(fs.contexts[0].skipped, None);
        assert!(fs
            .sites
            .iter()
            .any(|s| s.func == "k::chunk" && s.kind == SiteKind::Line));
        let all = Options {
            entry_all: true,
            ..Options::new(&none, &skip)
        };
        let fs = find_sites_with(src, &file, "k", &LineSel::None, &all);
        assert_eq!(
            funcs_with_sites(&fs),
            ["k::chunk", "k::hinted", "k::search"]
        );
    }

    #[test]
    fn straight_line_arithmetic_is_tiny_up_to_twice_the_limit() {
        let tiny = |body: &str| {
            let f: syn::ItemFn = syn::parse_str(&format!(
                "fn f(m: u32, factor: u64, shift: i32) -> u32 {{ {body} }}"
            ))
            .expect("parses");
            is_tiny(&f.block)
        };
        // ryu's `mul_shift_32`: 66 tokens, 8 instructions.
        let mul_shift = "debug_assert!(shift > 32);\n\
            let factor_lo = factor as u32;\n\
            let factor_hi = (factor >> 32) as u32;\n\
            let bits0 = m as u64 * factor_lo as u64;\n\
            let bits1 = m as u64 * factor_hi as u64;\n\
            let sum = (bits0 >> 32) + bits1;\n\
            let shifted_sum = sum >> (shift - 32);\n\
            debug_assert!(shifted_sum <= u32::MAX as u64);\n\
            shifted_sum as u32";
        assert!(tiny(mul_shift));
        // std's integer methods, constructors and operator-like functions are arithmetic too.
        assert!(tiny(&format!(
            "let x = m.wrapping_mul(3).rotate_left(5) ^ u32::from(shift > 0); {mul_shift}"
        )));
        // Any other call, method or macro makes it a body of 64 tokens at most.
        for other in [
            "let n = self.len();",
            "let n = helper(m);",
            "let n = m.parse::<u32>();",
            "println!(\"{m}\");",
        ] {
            assert!(!tiny(&format!("{other} {mul_shift}")), "{other}");
        }
        // … as does a loop, and more than 128 tokens.
        assert!(!tiny(&format!("while m > 3 {{ m >>= 1; }} {mul_shift}")));
        assert!(!tiny(&format!(
            "let m = m{}; {mul_shift}",
            " + 1".repeat(ARITHMETIC_FN_TOKENS / 2)
        )));
    }

    #[test]
    fn a_turbofish_is_told_from_a_shift_or_comparison() {
        let ends = |src: &str| {
            let ts: proc_macro2::TokenStream = src.parse().expect("tokens");
            closes_turbofish(&ts.into_iter().collect::<Vec<_>>())
        };
        assert!(ends("s.parse::<u32>"));
        assert!(ends("mem::size_of::<Vec<&'a str>>"));
        assert!(ends("f::<A, B>"));
        assert!(!ends("sum >>"));
        assert!(!ends("a < b && c >"));
        assert!(!ends("x >"));
    }

    #[test]
    fn a_body_is_sized_by_what_a_release_build_compiles() {
        let body = |extra: &str| {
            let src = format!(
                "fn f(m: u32, k: u64, s: i32) -> u32 {{\n    {extra}\n    let lo = k as u32;\n    let hi = (k >> 32) as u32;\n    let sum = ((m as u64 * lo as u64) >> 32) + m as u64 * hi as u64;\n    (sum >> (s - 32)) as u32\n}}\n"
            );
            let file = syn::parse_file(&src).expect("parses");
            let syn::Item::Fn(f) = &file.items[0] else {
                panic!("a fn")
            };
            is_tiny(&f.block)
        };
        assert!(body(""));
        // Debug assertions, test-only code and all but the largest of cfg alternatives are
        // not compiled into a release build.
        assert!(body(
            "debug_assert!(s > 32); debug_assert_eq!(m & 1, m & 1, \"odd\");"
        ));
        assert!(body(
            "#[cfg(test)] { let a = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]; }"
        ));
        assert!(body(
            "#[cfg(feature = \"small\")] { let _ = m + 1; } #[cfg(not(feature = \"small\"))] { let _ = m + 2; }"
        ));
        // An assertion on types alone is a constant; one that reads a value is not.
        let layout = "assert!(mem::size_of::<A>() == A::size() * core::mem::size_of::<A::Item>() && mem::align_of::<A>() >= mem::align_of::<A::Item>() && u32::BITS as usize >= 32, \"bad {}\", m);";
        assert!(body(layout));
        assert!(!body(&layout.replace("u32::BITS", "m")));
        assert!(!body(&layout.replace("A::size()", "self.size()")));
        assert!(!body(
            &layout.replace("u32::BITS", "crate::config::limit()")
        ));
        // What is compiled counts.
        let over = TINY_FN_TOKENS / 4;
        assert!(!body(&format!(
            "assert!({}true);",
            "s > 32 && ".repeat(over)
        )));
        assert!(!body(&format!(
            "#[cfg(unix)] {{ let a = [{}]; }}",
            "1, ".repeat(4 * over)
        )));
    }

    #[test]
    fn small_and_inline_functions_get_untimed_entries() {
        let long = format!("    let s = [{}];\n    s.len()\n", "1, ".repeat(30));
        let src = format!(
            "fn get(&self) -> u8 {{ self.0 }}\n\
             fn eof(&self) -> bool {{ self.offset() == self.pattern().len() }}\n\
             fn early(b: u8) -> Result<u8, ()> {{ if b > 9 {{ return Err(()); }} Ok(b) }}\n\
             fn digits(a: char, b: char) -> Option<u64> {{ let a = a.to_digit(10)?; let b = b.to_digit(10)?; Some((a * 10 + b) as u64) }}\n\
             fn delegates(n: u64) -> u64 {{ spin(50) + n }}\n\
             fn path_call() -> u64 {{ u64::from(2u8) }}\n\
             fn cheap_calls(a: u32, b: u32) -> bool {{ cmp::max(a, b) <= std::cmp::min(a, b).saturating_add(1) }}\n\
             fn std_call(a: u32) -> Vec<u32> {{ std::vec::from_elem(a, 2) }}\n\
             fn module_call(a: u32) -> u32 {{ util::max(a, 1) }}\n\
             fn user_mem(a: u32) -> u32 {{ mem::alloc_frame(a) }}\n\
             fn self_helper(a: u32) -> u32 {{ Self::expensive(a) }}\n\
             fn turbofish(a: u32) -> u32 {{ helper::<u32>(a) }}\n\
             async fn awaits(s: &S) -> u32 {{ s.get().await }}\n\
             fn iterates(v: &[u32]) -> u32 {{ v.iter().map(|x| x * 2).sum() }}\n\
             fn formats(n: u64) -> String {{ format!(\"{{n}}\") }}\n\
             fn looping(n: u8) {{ for _ in 0..n {{}} }}\n\
             #[inline]\nfn big_inline() -> usize {{\n{long}}}\n\
             #[inline]\nfn big_inline_pattern((a, b): (u8, u8)) -> usize {{\n{long}}}\n\
             #[inline(never)]\nfn big_never() -> usize {{\n{long}}}\n\
             fn big() -> usize {{\n{long}}}\n"
        );
        let found = sites(&src, LineSel::None);
        let timed: Vec<(String, bool)> = found
            .sites
            .iter()
            .map(|s| (s.func.clone(), s.timed))
            .collect();
        assert_eq!(
            timed,
            [
                ("k::get".to_owned(), false),
                ("k::eof".to_owned(), false),
                ("k::early".to_owned(), false),
                ("k::digits".to_owned(), false),
                ("k::delegates".to_owned(), true),
                ("k::path_call".to_owned(), false),
                ("k::cheap_calls".to_owned(), false),
                ("k::std_call".to_owned(), true),
                ("k::module_call".to_owned(), true),
                ("k::user_mem".to_owned(), true),
                ("k::self_helper".to_owned(), true),
                ("k::turbofish".to_owned(), true),
                ("k::awaits".to_owned(), true),
                ("k::iterates".to_owned(), true),
                ("k::formats".to_owned(), true),
                ("k::looping".to_owned(), true),
                ("k::big_inline".to_owned(), false),
                ("k::big_inline_pattern".to_owned(), false),
                ("k::big_never".to_owned(), true),
                ("k::big".to_owned(), true),
            ]
        );
    }

    fn summary(fs: &FileSites) -> Vec<String> {
        fs.sites
            .iter()
            .map(|s| {
                format!(
                    "{}:{} {} {} [{}]",
                    s.line,
                    s.col,
                    s.kind.as_str(),
                    s.func,
                    s.names.join(",")
                )
            })
            .collect()
    }

    #[test]
    fn entry_sites_capture_arguments_and_self() {
        let src = "struct S;\nimpl S {\n    fn m(&self, (a, b): (u8, u8), mut c: u8) -> u8 {\n        a + b + c\n    }\n}\n";
        let fs = sites(src, LineSel::None);
        assert_eq!(summary(&fs), vec!["3:5 entry k::S::m [self,a,b,c]"]);
        assert_eq!(&src[fs.sites[0].offset - 1..fs.sites[0].offset], "{");
    }

    #[test]
    fn parameters_of_types_that_are_not_small_copies_start_by_reference() {
        let src = "impl S {\n    fn f(&mut self, a: u32, b: &str, c: String, d: &mut Vec<u8>, e: T) {}\n    fn g(&self) {}\n}\n";
        let file = syn::parse_file(src).expect("parses");
        let fs = find_sites(src, &file, "k", &LineSel::None);
        assert_eq!(names_in(&fs.sites[0], &fs.by_ref_first), ["self", "c", "d"]);
        assert!(names_in(&fs.sites[1], &fs.by_ref_first).is_empty());
    }

    /// The names a site captures whose bindings are in `set`.
    fn names_in<'s>(site: &'s Site, set: &HashSet<u32>) -> Vec<&'s str> {
        site.names
            .iter()
            .zip(&site.bindings)
            .filter(|(_, b)| set.contains(b))
            .map(|(n, _)| n.as_str())
            .collect()
    }

    #[test]
    fn includes_of_files_are_found_with_their_literal_ranges() {
        let src = "const A: &str = include_str!(\"../src/main.rs\");\nfn f() {\n    let b = include_bytes!(\"data.bin\");\n    assert_eq!(include_str!(\"x.rs\").len(), 1);\n    let c = include!(\"gen.rs\");\n}\n";
        let file = syn::parse_file(src).expect("parses");
        let found = find_includes(src, &file);
        let got: Vec<(&str, &str)> = found
            .iter()
            .map(|(r, v)| (&src[r.clone()], v.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("\"../src/main.rs\"", "../src/main.rs"),
                ("\"data.bin\"", "data.bin"),
                ("\"x.rs\"", "x.rs"),
            ]
        );
    }

    #[test]
    fn generic_parameters_whose_bounds_give_no_debug_start_opaque() {
        let src = "use std::{borrow::Borrow, fmt};\nimpl<'s, P: Borrow<Parser>> I<'s, P> {\n    fn f<W: fmt::Write, D: Debug + Clone, U: MyTrait, X>(&self, p: P, r: &P, w: W, i: impl Iterator<Item = u8>, d: D, u: U, x: X, y: Y, n: u32) where X: Send {}\n}\n";
        let file = syn::parse_file(src).expect("parses");
        let fs = find_sites(src, &file, "k", &LineSel::None);
        // `D` has Debug; `U`'s trait may have it as a supertrait; `Y` is no parameter here.
        assert_eq!(
            names_in(&fs.sites[0], &fs.opaque_first),
            ["p", "r", "w", "i", "x"]
        );
    }

    #[test]
    fn closures_and_futures_bound_by_let_are_captured_by_type_name_from_the_start() {
        let src = "fn f() {\n    let a = |x| x + 1;\n    let b = (move || 2);\n    let c = Box::new(|| 3);\n    let d = async { 4 };\n    let e = Box::new(5);\n    let g = make(|| 6);\n    let h = 7;\n}\n";
        let file = syn::parse_file(src).expect("parses");
        let fs = find_sites(src, &file, "k", &LineSel::All);
        let last = fs.sites.last().expect("a site");
        assert_eq!(names_in(last, &fs.opaque_first), ["a", "b", "c", "d"]);
    }

    #[test]
    fn bounds_named_like_std_traits_but_declared_or_imported_locally_are_not_judged() {
        // Judged (std's, so the parameter starts as a type name): `std::io::Seek`, `BufRead`
        // imported from std (also in a group at the root, and with a leading `::`), `fmt::Write`
        // after `use std::fmt`, the prelude's `Clone`, and `Write` imported from std in this file
        // although the package declares a `Write` elsewhere. Not judged (may imply `Debug`): the
        // package's own `Read`, a `Hash` imported from the crate, a path through a local module
        // (`io::Seek`), through another crate (`common::Read`, `ec::Read` after `extern crate
        // common as ec`), through `self`, a name renamed out of std (`Tr`), and a `Borrow` never
        // imported.
        let src = "use crate::sink::Hash;\nuse ::std::io::BufRead;\nuse {crate::x::Other, std::fmt::{self}};\nuse std::fmt::Debug as Tr;\nextern crate common as ec;\nmod io {}\nfn f<R: Read, H: Hash, S: io::Seek, T: std::io::Seek, B: BufRead, C: self::Clone, F: fmt::Write, K: Clone, M: common::Read, E: ec::Read, D: Tr, W: Write, X: Borrow<u8>>(r: R, h: H, s: S, t: T, b: B, c: C, f: F, k: K, m: M, e: E, d: D, w: W, x: X) {}\nfn g() { use std::io::Write; }\n";
        let file = syn::parse_file(src).expect("parses");
        let other = syn::parse_file(
            "pub trait Read: std::fmt::Debug {}\nmod m { pub trait Write: std::fmt::Debug {} }",
        )
        .expect("parses");
        let traits = declared_traits([&other]);
        let skip = SkipList::default();
        let fs = find_sites_with(
            src,
            &file,
            "k",
            &LineSel::None,
            &Options::new(&traits, &skip),
        );
        assert_eq!(
            names_in(&fs.sites[0], &fs.opaque_first),
            ["t", "b", "f", "k", "w"]
        );
        // Without the package's traits, the prelude-free `Read` is still not std's (never
        // imported from std here).
        let fs = find_sites(src, &file, "k", &LineSel::None);
        assert_eq!(
            names_in(&fs.sites[0], &fs.opaque_first),
            ["t", "b", "f", "k", "w"]
        );
        // A glob from another crate may shadow even the prelude's names; one from the crate
        // itself (a test module's `use super::*`) brings only the package's own traits.
        let src = "use common::*;\nuse std::io::Read;\nfn f<C: Clone, R: Read>(c: C, r: R) {}\n";
        let file = syn::parse_file(src).expect("parses");
        let fs = find_sites(src, &file, "k", &LineSel::None);
        assert_eq!(names_in(&fs.sites[0], &fs.opaque_first), ["r"]);
        let src = "mod tests { use super::*; }\nfn f<C: Clone>(c: C) {}\n";
        let file = syn::parse_file(src).expect("parses");
        let fs = find_sites(src, &file, "k", &LineSel::None);
        assert_eq!(names_in(&fs.sites[0], &fs.opaque_first), ["c"]);
    }

    #[test]
    fn lets_bound_to_collections_structs_and_closures_start_by_reference() {
        let src = "fn f(n: u32) {\n    let v = Vec::new();\n    let s = format!(\"{n}\");\n    let p = P { x: 1 };\n    let c = |a: u32| a + 1;\n    let k = n + 1;\n    let t: String = s.clone();\n    let w = s.len();\n    let it = s.chars().peekable();\n    let o = Some(k).map(|x| x + 1);\n    drop((v, p, c, k, t, w, it, o));\n}\n";
        let file = syn::parse_file(src).expect("parses");
        let fs = find_sites(src, &file, "k", &LineSel::All);
        let last = fs.sites.last().expect("a site");
        assert_eq!(
            names_in(last, &fs.by_ref_first),
            ["v", "s", "p", "c", "t", "it"]
        );
    }

    #[test]
    fn trivial_accessors_are_skipped_only_when_asked() {
        let src = "struct R { start: char, end: char, v: Vec<u8> }\nimpl R {\n    fn lower(&self) -> char { self.start }\n    fn items(&self) -> &Vec<u8> { &self.v }\n    fn set_upper(&mut self, b: char) { self.end = b; }\n    fn len(&self) -> usize { self.v.len() }\n    fn both(&self) -> (char, char) { (self.start, self.end) }\n}\n";
        let file = syn::parse_file(src).expect("parses");
        let all = find_sites(src, &file, "k", &LineSel::None);
        assert!(all.contexts.iter().all(|c| c.skipped.is_none()));
        let (none, skip) = (HashSet::new(), SkipList::default());
        let opts = Options {
            skip_accessors: true,
            ..Options::new(&none, &skip)
        };
        let fs = find_sites_with(src, &file, "k", &LineSel::None, &opts);
        let skipped: Vec<&str> = fs
            .contexts
            .iter()
            .filter(|c| c.skipped.is_some())
            .map(|c| c.func.as_str())
            .collect();
        assert_eq!(skipped, ["k::R::lower", "k::R::items", "k::R::set_upper"]);
        // A method call or a tuple is not a plain field access: those keep their entry site.
        assert_eq!(fs.sites.len(), 2);
    }

    #[test]
    fn forbids_are_found_in_inner_attributes_only() {
        let src = "#![forbid(unsafe_code)]\n#![cfg_attr(docsrs, forbid(missing_docs, unsafe_code))]\n#![forbid(unused)]\n#[forbid(unsafe_code)]\nfn f() {}\n";
        let file = syn::parse_file(src).expect("parses");
        let at = inner_forbids(src, &file);
        assert_eq!(at.len(), 3);
        for a in at {
            assert_eq!(&src[a..a + 6], "forbid");
        }
    }

    #[test]
    fn line_sites_see_earlier_lets_and_pattern_bindings() {
        let src = "fn f(x: Option<u8>) -> u8 {\n    let y = 1;\n    if let Some(z) = x {\n        return z + y;\n    }\n    match x {\n        Some(w) => { w }\n        None => 0,\n    }\n}\n";
        let fs = sites(src, LineSel::All);
        assert_eq!(
            summary(&fs),
            vec![
                "1:1 entry k::f [x]",
                "2:5 line k::f [x]",
                "3:5 line k::f [x,y]",
                "4:9 line k::f [x,y,z]",
                "6:5 line k::f [x,y]",
                "7:22 line k::f [x,y,w]",
            ]
        );
    }

    #[test]
    fn closures_see_only_their_own_bindings() {
        let src = "fn f(v: Vec<u8>) {\n    let n = 1;\n    let g = |a: u8| {\n        let b = a;\n        b\n    };\n}\n";
        let fs = sites(src, LineSel::All);
        let s = summary(&fs);
        assert!(
            s.contains(&"4:9 line k::f::{closure} [a]".to_owned()),
            "{s:?}"
        );
        assert!(
            s.contains(&"5:9 line k::f::{closure} [a,b]".to_owned()),
            "{s:?}"
        );
    }

    #[test]
    fn skip_patterns_leave_functions_and_files_without_sites() {
        let src = "struct P;\nimpl P {\n    fn peek(&self) -> u8 { let a = 1; a }\n    fn parse(&self) -> u8 { self.peek() }\n}\nfn hot() { fn inner() {} }\n";
        let file = syn::parse_file(src).expect("parses");
        let none = HashSet::new();
        let skip = SkipList {
            patterns: ["fn:P::peek", "fn:k::hot"]
                .iter()
                .map(|p| {
                    std::rc::Rc::new(crate::build::skip::parse_pattern(p, "--skip").expect("ok"))
                })
                .collect(),
        };
        let fs = find_sites_with(src, &file, "k", &LineSel::All, &Options::new(&none, &skip));
        let why: Vec<(&str, Option<&str>)> = fs
            .contexts
            .iter()
            .map(|c| (c.func.as_str(), c.skipped.as_deref()))
            .collect();
        assert_eq!(
            why,
            [
                ("k::P::peek", Some("skipped by fn:P::peek (--skip)")),
                ("k::P::parse", None),
                ("k::hot", Some("skipped by fn:k::hot (--skip)")),
                // A nested function is its own: the pattern names `hot` only.
                ("k::hot::inner", None),
            ]
        );
        assert_eq!(
            summary(&fs),
            [
                "4:5 entry k::P::parse [self]",
                "6:12 entry k::hot::inner []"
            ]
        );
        // A file pattern leaves every function of the file without sites.
        let opts = Options {
            skip_file: Some("skipped by src/t.rs (--skip)".into()),
            ..Options::new(&none, &skip)
        };
        let fs = find_sites_with(src, &file, "k", &LineSel::All, &opts);
        assert!(fs.sites.is_empty());
        assert!(fs
            .contexts
            .iter()
            .all(|c| c.skipped.as_deref() == Some("skipped by src/t.rs (--skip)")));
    }

    #[test]
    fn const_fn_consts_and_macros_are_left_alone() {
        let src = "const fn c() -> u8 { let a = 1; a }\nconst K: u8 = { let q = 2; q };\nmacro_rules! m { () => { fn h() {} } }\nfn g() { let a = [0u8; { 3 }]; println!(\"{}\", a.len()); }\n";
        let fs = sites(src, LineSel::All);
        assert_eq!(summary(&fs), vec!["4:1 entry k::g []"]);
        assert_eq!(fs.contexts[0].skipped.as_deref(), Some("const fn"));
    }

    #[test]
    fn shadowing_keeps_one_name_and_nested_fns_start_fresh() {
        let src = "fn f() {\n    let x = 1;\n    let x = x + 1;\n    fn inner(q: u8) {\n        let r = q;\n    }\n    x;\n}\n";
        let fs = sites(src, LineSel::All);
        let s = summary(&fs);
        assert!(s.contains(&"7:5 line k::f [x]".to_owned()), "{s:?}");
        assert!(s.contains(&"5:9 line k::f::inner [q]".to_owned()), "{s:?}");
    }

    #[test]
    fn allocator_methods_are_left_alone() {
        let src = "struct A;\nunsafe impl GlobalAlloc for A {\n    unsafe fn alloc(&self, l: Layout) -> *mut u8 { let p = 0; p as _ }\n}\n";
        let fs = sites(src, LineSel::All);
        assert!(fs.sites.is_empty());
        assert_eq!(fs.contexts[0].skipped.as_deref(), Some("allocator method"));
    }

    #[test]
    fn inner_attributes_stay_first() {
        let src = "fn f() {\n    #![allow(unused)]\n    let a = 1;\n}\n";
        let fs = sites(src, LineSel::None);
        assert!(src[..fs.sites[0].offset].ends_with("#![allow(unused)]"));
    }

    #[test]
    fn functions_taking_a_closure_are_told_apart() {
        let sig = |src: &str| -> syn::Signature {
            syn::parse_str::<syn::ItemFn>(src).expect("parses").sig
        };
        for yes in [
            "fn f<F: FnOnce() -> u8>(f: F) {}",
            "fn f<T, F>(t: T, f: F) where F: for<'a> FnMut(&'a T) {}",
            "fn f(f: impl Fn(u8) -> bool) {}",
            "fn f<F: Copy + core::ops::Fn()>(f: F) {}",
        ] {
            assert!(takes_closure(&sig(yes)), "{yes}");
        }
        for no in [
            "fn f<T: Clone>(t: T) {}",
            "fn f(f: fn(u8) -> u8) {}",
            "fn f(f: &dyn Fn()) {}",
            "fn f<T>(t: T) where Vec<T>: Clone {}",
        ] {
            assert!(!takes_closure(&sig(no)), "{no}");
        }
    }
}
