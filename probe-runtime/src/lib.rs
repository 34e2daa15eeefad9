//! The runtime linked into programs instrumented by `cargo lprobe`.
//!
//! Generated code sees only this file's items: the site tables ([`Table`], [`Site`]), the
//! capture forms ([`Val`], [`ByCopy`], [`ByRef`], [`Opaque`]), [`register`] (called before
//! `main` by each package's generated sites crate), [`hit`] (called, out of line, when an armed
//! site is passed) and [`set_bridge`] (a sites crate's `tracing`/`log` output bridge, see
//! [`BridgeRecord`]). The dormant check itself (`on::<ID>()`: a compare of one byte and a
//! branch) is generated into the sites crate so it inlines into the user's code.
//!
//! **Invariant:** nothing here panics into the program: every entry point catches unwinding,
//! and a probe that re-enters the runtime from inside a capture (a `Debug` impl calling
//! instrumented code) is ignored and counted.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicU8};

#[doc(hidden)]
pub mod fuzzing;
pub mod hot;
pub mod lang;
pub mod packed;
mod plane;
mod small;

// The modules other crates name (cargo-lprobe's skip patterns, the fuzz targets, tests).
pub use hot::{probe, timing};
pub use lang::{args, expr, json, location, path, template, time, value};
pub use packed::{Sites, Skips};

/// One probe site, as the rewriter saw it.
///
/// Its strings are ranges ([`Span`]) of one string per table ([`Strs`]), so that a table is
/// plain numbers but for one pointer per site: in a position-independent executable every
/// pointer in a static is a dynamic relocation (24 bytes in `.rela.dyn`) besides its own 8
/// bytes, and a site with a `&str` per field and per captured name took about 450 bytes
/// (regex-syntax at every line: 1.1 MB of its binary's growth). Read them with the methods.
#[derive(Debug)]
pub struct Site {
    /// The table's strings: every [`Span`] below is a range of them.
    pub strs: &'static Strs,
    /// Path of the source file relative to the workspace root.
    pub path: Span,
    pub line: u32,
    pub col: u32,
    /// Function path, e.g. `demo_app::billing::Invoice::total`.
    pub func: Span,
    pub kind: SiteKind,
    /// Names of the captured bindings, in the order `hit` receives their values: the range
    /// (start, count) of `strs.names`.
    pub names: Span,
    /// The source text of the site's line as built (trimmed, at most [`MAX_LINE_TEXT`] bytes,
    /// a longer one cut with `…`): what a client shows when the file on disk differs from
    /// the one the program was built from.
    pub text: Span,
    /// Index of the site's function in `Table::fn_flags`.
    pub fn_slot: u32,
    /// An entry site whose function keeps a guard, so `--duration` can time its calls
    /// (functions marked `#[inline]` have none: it would keep them from being inlined).
    pub timed: bool,
    /// An entry site whose calls can be frames of a `--frames` snapshot: the runtime sees the
    /// call return (its guard's drop, or the timer of the call it makes of itself again), and
    /// the function is not `async` (an async fn's entry runs at the first poll and its guard
    /// drops at completion, maybe on another thread).
    pub frame: bool,
}

/// A range of a table's strings: byte offset and length.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span(pub u32, pub u32);

/// Where a site is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SiteKind {
    /// A function's entry.
    Entry,
    /// Before a statement.
    Line,
    /// Left without a check (the repair loop took its probe out): listed, never armed.
    None,
}

impl SiteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SiteKind::Entry => "entry",
            SiteKind::Line => "line",
            SiteKind::None => "none",
        }
    }
}

/// A table's strings: one string holding each distinct text once, and the captured names of
/// every site, each a range of the text (a site's names are a range of these).
#[derive(Debug)]
pub struct Strs {
    pub text: &'static str,
    pub names: &'static [Span],
}

impl Span {
    /// The range of `text` (empty if it is out of range or not on character boundaries).
    #[inline]
    pub fn of(self, text: &'static str) -> &'static str {
        let (at, len) = (self.0 as usize, self.1 as usize);
        text.get(at..at.saturating_add(len)).unwrap_or("")
    }
}

/// Builds [`Strs`] for sites and skipped functions made by tests and tools, leaked (tables
/// live as long as the program): a span of each of `texts` in order, and of all `names`.
fn leak(texts: &[&str], names: &[&str]) -> (&'static Strs, Vec<Span>, Span) {
    let mut text = String::new();
    let mut spans = Vec::new();
    for t in texts.iter().chain(names) {
        spans.push(Span(text.len() as u32, t.len() as u32));
        text.push_str(t);
    }
    let name_spans = spans.split_off(texts.len());
    let strs = Strs {
        text: Box::leak(text.into_boxed_str()),
        names: Box::leak(name_spans.into_boxed_slice()),
    };
    (
        Box::leak(Box::new(strs)),
        spans,
        Span(0, names.len() as u32),
    )
}

impl Site {
    #[inline]
    fn str(&self, s: Span) -> &'static str {
        s.of(self.strs.text)
    }

    /// Path of the source file relative to the workspace root.
    pub fn path(&self) -> &'static str {
        self.str(self.path)
    }

    /// Function path, e.g. `demo_app::billing::Invoice::total`.
    #[inline]
    pub fn func(&self) -> &'static str {
        self.str(self.func)
    }

    /// `"entry"`, `"line"` or `"none"`.
    pub fn kind(&self) -> &'static str {
        self.kind.as_str()
    }

    /// Names of the captured bindings, in the order `hit` receives their values.
    #[inline]
    pub fn names(&self) -> Names {
        let (at, n) = (self.names.0 as usize, self.names.1 as usize);
        Names {
            text: self.strs.text,
            spans: self.strs.names.get(at..at.saturating_add(n)).unwrap_or(&[]),
        }
    }

    /// The site's line as built (see [`Site::text`]'s field).
    pub fn text(&self) -> &'static str {
        self.str(self.text)
    }

    /// A site for tests and tools, its strings in a string of its own (leaked: a site lives
    /// as long as the program): column 1, the table's first function, neither timed nor a
    /// frame.
    pub fn leaked(path: &str, line: u32, func: &str, kind: SiteKind, names: &[&str]) -> Site {
        let (strs, spans, names) = leak(&[path, func], names);
        Site {
            strs,
            path: spans[0],
            line,
            col: 1,
            func: spans[1],
            kind,
            names,
            text: Span(0, 0),
            fn_slot: 0,
            timed: false,
            frame: false,
        }
    }
}

/// A site's captured names ([`Site::names`]).
#[derive(Clone, Copy, Debug)]
pub struct Names {
    text: &'static str,
    spans: &'static [Span],
}

impl Names {
    #[inline]
    pub fn iter(self) -> impl Iterator<Item = &'static str> + Clone {
        self.spans.iter().map(move |s| s.of(self.text))
    }

    pub fn len(self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(self) -> bool {
        self.spans.is_empty()
    }

    /// The index of `name`.
    #[inline]
    pub fn position(self, name: &str) -> Option<usize> {
        self.iter().position(|n| n == name)
    }

    pub fn contains(self, name: &str) -> bool {
        self.position(name).is_some()
    }

    /// The `i`-th name.
    #[inline]
    pub fn get(self, i: usize) -> Option<&'static str> {
        self.spans.get(i).map(|s| s.of(self.text))
    }
}

/// A function built without probe sites (a `const fn`, a trivial accessor under
/// `--skip-accessors`, …), so that arming it can say why there is nothing to arm. Its strings
/// are ranges of its table's string, like a [`Site`]'s.
#[derive(Debug)]
pub struct Skipped {
    pub strs: &'static Strs,
    pub path: Span,
    pub first_line: u32,
    pub last_line: u32,
    pub func: Span,
    /// The reason, as `cargo lprobe build -v` reports it.
    pub why: Span,
}

impl Skipped {
    pub fn path(&self) -> &'static str {
        self.path.of(self.strs.text)
    }

    pub fn func(&self) -> &'static str {
        self.func.of(self.strs.text)
    }

    /// The reason, as `cargo lprobe build -v` reports it.
    pub fn why(&self) -> &'static str {
        self.why.of(self.strs.text)
    }

    /// A skipped function for tests and tools, its strings in a string of its own (leaked).
    pub fn leaked(path: &str, first_line: u32, last_line: u32, func: &str, why: &str) -> Skipped {
        let (strs, spans, _) = leak(&[path, func, why], &[]);
        Skipped {
            strs,
            path: spans[0],
            first_line,
            last_line,
            func: spans[1],
            why: spans[2],
        }
    }
}

/// The longest line text a [`Table`] keeps per site, in bytes (before the `…` of a cut one).
pub const MAX_LINE_TEXT: usize = 120;

/// The sites of one instrumented package.
#[derive(Debug)]
pub struct Table {
    pub package: &'static str,
    /// Package directory relative to the workspace root (`""` for the root package).
    pub dir: &'static str,
    /// One armed flag per site: non-zero means at least one probe is armed there.
    pub flags: &'static [AtomicU8],
    /// One flag per function: non-zero when any of its sites is armed. Instrumented code reads
    /// it at function entry (and loop heads) before looking at a site's own flag.
    pub fn_flags: &'static [AtomicU8],
    /// Passes through each site while it is armed (not from inside the runtime): what
    /// plain `--count` probes count, so that a site armed only by them (flag
    /// [`FLAG_COUNT`]) costs one atomic add per hit.
    pub counts: &'static [AtomicU64],
    /// Generated tables pack them ([`packed`]); they are rows once the table registers.
    pub sites: Sites,
    /// (path, content hash) of each rewritten file: the hash (FNV-1a, 16 hex digits) of the
    /// file as it was when the program was built, so a client can tell that the file on disk
    /// has changed since (`files` request).
    pub files: &'static [(&'static str, &'static str)],
    /// The package's functions that have no sites (packed like the sites).
    pub skipped: Skips,
}

/// A captured binding, borrowed for the duration of one hit: one of [`ByCopy`], [`ByRef`],
/// [`Opaque`] behind a trait object (two words in the capture array).
pub type Val<'a> = &'a (dyn Cap + 'a);

/// What the runtime can ask of a captured binding.
///
/// Generated code captures plain expressions, not method calls (a method call per capture made
/// type checking and borrow checking of instrumented crates several times slower: BENCHMARKS.md).
/// Which form a binding gets is not known from syntax: the rewriter starts from a copy and the
/// repair loop steps a binding down to a reference when the compiler reports its type is not
/// `Cap` (not [`SmallCopy`]), and to [`Opaque`] when a reference is not (its target has no
/// `Debug`). The bounds sit on the impls, so a wrong guess is a type error at the capture,
/// never a silent move.
pub trait Cap {
    /// The value when its type is `Debug`, and the type's name. One method, not two: each
    /// captured type instantiates every method in the crate that captures it (measured on
    /// regex-syntax: 208 captured types, so a second method was 208 more functions to compile).
    fn parts(&self) -> (Option<&dyn fmt::Debug>, &'static str);
}

/// A small `Copy` value copied in the armed branch. Capturing a copy keeps the variable's
/// address from escaping the instrumented function, so the optimizer can keep it in a register
/// on the dormant path (a reference would pin it to the stack: a store per call).
pub struct ByCopy<T: SmallCopy + fmt::Debug>(pub T);

/// A `Debug` value captured by reference: it is formatted when a probe needs it. In the
/// instrumented copy of a body written twice it is what a `&mut` binding's reborrowed target
/// is captured as ([`CapRef`]: the target may be unsized, `&mut [u8]`).
///
/// No bound on the struct itself (the impls of [`Cap`] and [`CapRef`] have it): a `ByRef` of
/// a type without `Debug` is then one unmet bound at the capture, which repair steps down to
/// [`Opaque`], not also an ill-formed type, which rustc reports at the whole call when the
/// `ByRef` is an argument of a generic function (repair could only drop that site).
pub struct ByRef<'a, T: ?Sized>(pub &'a T);

/// A value without `Debug`: only its type name is recorded. It holds no pointer to the value
/// ([`Opaque::of`] takes one and drops it): a capture that kept the address would pin the
/// variable to the stack on every path, dormant ones included, for a type name.
pub struct Opaque<T: ?Sized>(std::marker::PhantomData<fn(&T)>);

impl<T: ?Sized> Opaque<T> {
    /// The capture of `value`'s type.
    #[inline(always)]
    pub fn of(_value: &T) -> Self {
        Opaque(std::marker::PhantomData)
    }
}

/// What generated code captures: a small copy (`&{a}`, or `a` as an argument) or a shared
/// reference (`&&b`, or `&b`), both small `Copy` values, so a capture is an expression with
/// no constructor call (one per capture made type and borrow checking of `--lines all` code
/// about twice as slow: BENCHMARKS.md). A binding of a type that is not a small `Copy` fails
/// the bound where it is captured, before anything is moved, and the repair loop captures a
/// reference instead. The type name of a reference capture is `&T`.
impl<T: SmallCopy + fmt::Debug> Cap for T {
    fn parts(&self) -> (Option<&dyn fmt::Debug>, &'static str) {
        (Some(self.shown()), std::any::type_name::<T>())
    }
}

impl<T: SmallCopy + fmt::Debug> Cap for ByCopy<T> {
    fn parts(&self) -> (Option<&dyn fmt::Debug>, &'static str) {
        (Some(self.0.shown()), std::any::type_name::<T>())
    }
}

impl<T: fmt::Debug> Cap for ByRef<'_, T> {
    fn parts(&self) -> (Option<&dyn fmt::Debug>, &'static str) {
        (Some(self.0), std::any::type_name::<T>())
    }
}

impl<T: ?Sized> Cap for Opaque<T> {
    fn parts(&self) -> (Option<&dyn fmt::Debug>, &'static str) {
        (None, std::any::type_name::<T>())
    }
}

/// A site's captures passed by value, as one tuple (`hit_t(i, (a, &b, Opaque::of(&c),))`,
/// up to 24): the cold call puts them in the array the runtime reads. One generic function
/// per call over this trait, where there was one per count of captures: rustc checked each
/// of those in every package that used it, in time that grows with the square of the count
/// (ryu at every line, 27 of them: 0.05–0.07 s of its compile), while these impls are
/// checked once, here. An element that is not [`Cap`] is reported at that element.
pub trait Caps {
    /// Calls `f` with the captures as [`Val`]s.
    fn with<R, F: FnOnce(&[Val<'_>]) -> R>(&self, f: F) -> R;
}

impl Caps for () {
    #[inline(always)]
    fn with<R, F: FnOnce(&[Val<'_>]) -> R>(&self, f: F) -> R {
        f(&[])
    }
}

/// [`Caps`] for a tuple of `Cap`s, each named with its index.
macro_rules! caps {
    ($($t:ident $i:tt),+) => {
        impl<$($t: Cap),+> Caps for ($($t,)+) {
            #[inline(always)]
            fn with<R, F: FnOnce(&[Val<'_>]) -> R>(&self, f: F) -> R {
                f(&[$(&self.$i),+])
            }
        }
    };
}

caps!(C0 0);
caps!(C0 0, C1 1);
caps!(C0 0, C1 1, C2 2);
caps!(C0 0, C1 1, C2 2, C3 3);
caps!(C0 0, C1 1, C2 2, C3 3, C4 4);
caps!(C0 0, C1 1, C2 2, C3 3, C4 4, C5 5);
caps!(C0 0, C1 1, C2 2, C3 3, C4 4, C5 5, C6 6);
caps!(C0 0, C1 1, C2 2, C3 3, C4 4, C5 5, C6 6, C7 7);
caps!(C0 0, C1 1, C2 2, C3 3, C4 4, C5 5, C6 6, C7 7, C8 8);
caps!(C0 0, C1 1, C2 2, C3 3, C4 4, C5 5, C6 6, C7 7, C8 8, C9 9);
caps!(C0 0, C1 1, C2 2, C3 3, C4 4, C5 5, C6 6, C7 7, C8 8, C9 9, C10 10);
caps!(C0 0, C1 1, C2 2, C3 3, C4 4, C5 5, C6 6, C7 7, C8 8, C9 9, C10 10, C11 11);
caps!(C0 0, C1 1, C2 2, C3 3, C4 4, C5 5, C6 6, C7 7, C8 8, C9 9, C10 10, C11 11, C12 12);
caps!(C0 0, C1 1, C2 2, C3 3, C4 4, C5 5, C6 6, C7 7, C8 8, C9 9, C10 10, C11 11, C12 12, C13 13);
caps!(C0 0, C1 1, C2 2, C3 3, C4 4, C5 5, C6 6, C7 7, C8 8, C9 9, C10 10, C11 11, C12 12, C13 13, C14 14);
caps!(C0 0, C1 1, C2 2, C3 3, C4 4, C5 5, C6 6, C7 7, C8 8, C9 9, C10 10, C11 11, C12 12, C13 13, C14 14, C15 15);
caps!(C0 0, C1 1, C2 2, C3 3, C4 4, C5 5, C6 6, C7 7, C8 8, C9 9, C10 10, C11 11, C12 12, C13 13, C14 14, C15 15, C16 16);
caps!(C0 0, C1 1, C2 2, C3 3, C4 4, C5 5, C6 6, C7 7, C8 8, C9 9, C10 10, C11 11, C12 12, C13 13, C14 14, C15 15, C16 16, C17 17);
caps!(C0 0, C1 1, C2 2, C3 3, C4 4, C5 5, C6 6, C7 7, C8 8, C9 9, C10 10, C11 11, C12 12, C13 13, C14 14, C15 15, C16 16, C17 17, C18 18);
caps!(C0 0, C1 1, C2 2, C3 3, C4 4, C5 5, C6 6, C7 7, C8 8, C9 9, C10 10, C11 11, C12 12, C13 13, C14 14, C15 15, C16 16, C17 17, C18 18, C19 19);
caps!(C0 0, C1 1, C2 2, C3 3, C4 4, C5 5, C6 6, C7 7, C8 8, C9 9, C10 10, C11 11, C12 12, C13 13, C14 14, C15 15, C16 16, C17 17, C18 18, C19 19, C20 20);
caps!(C0 0, C1 1, C2 2, C3 3, C4 4, C5 5, C6 6, C7 7, C8 8, C9 9, C10 10, C11 11, C12 12, C13 13, C14 14, C15 15, C16 16, C17 17, C18 18, C19 19, C20 20, C21 21);
caps!(C0 0, C1 1, C2 2, C3 3, C4 4, C5 5, C6 6, C7 7, C8 8, C9 9, C10 10, C11 11, C12 12, C13 13, C14 14, C15 15, C16 16, C17 17, C18 18, C19 19, C20 20, C21 21, C22 22);
caps!(C0 0, C1 1, C2 2, C3 3, C4 4, C5 5, C6 6, C7 7, C8 8, C9 9, C10 10, C11 11, C12 12, C13 13, C14 14, C15 15, C16 16, C17 17, C18 18, C19 19, C20 20, C21 21, C22 22, C23 23);

/// What the instrumented copy of a body written twice captures: a reference to any `Debug`
/// binding (`&b`), [`ByRef`] (a `&mut` binding's target) or [`Opaque`].
///
/// That copy runs only while one of its function's sites is armed, so whether a capture pins
/// a variable to the stack does not matter there, and nothing is captured by copy: a plain
/// reference, with no temporary holding it (`&&b`, a [`Cap`] of `&T`), made rustc's work on
/// `--lines all` code a quarter smaller on ryu (its functions capture about eight bindings a
/// line) and a tenth on regex-syntax. Not `Cap` itself: `Cap` is implemented only for small
/// `Copy` types so that a copy (`&(a,).0`) of anything else is a type error, never a move.
///
/// As for `Cap`, the type name is that of the value the `Debug` points at (the runtime reads
/// primitives in place by it): `String` for `&s`, `&[u8]` for a `ByRef` of a `&mut [u8]`'s
/// target (a `Cap` reference capture `&&s` names `&String`).
pub trait CapRef {
    /// As [`Cap::parts`].
    fn parts(&self) -> (Option<&dyn fmt::Debug>, &'static str);
}

/// A capture of the instrumented copy of a body written twice (two words in its array).
pub type RefVal<'a> = &'a (dyn CapRef + 'a);

impl<T: fmt::Debug> CapRef for T {
    fn parts(&self) -> (Option<&dyn fmt::Debug>, &'static str) {
        (Some(self), std::any::type_name::<T>())
    }
}

impl<T: fmt::Debug + ?Sized> CapRef for ByRef<'_, T> {
    fn parts(&self) -> (Option<&dyn fmt::Debug>, &'static str) {
        (Some(&self.0), std::any::type_name::<&T>())
    }
}

impl<T: ?Sized> CapRef for Opaque<T> {
    fn parts(&self) -> (Option<&dyn fmt::Debug>, &'static str) {
        (None, std::any::type_name::<T>())
    }
}

/// The runtime reads every capture as a [`Val`]: a [`RefVal`] is one.
impl Cap for RefVal<'_> {
    fn parts(&self) -> (Option<&dyn fmt::Debug>, &'static str) {
        CapRef::parts(*self)
    }
}

/// Types captured by copy: scalars, shared references, raw pointers, and options and pairs of
/// these (small, so a copy costs nothing and cannot strain the stack, unlike a large `Copy`
/// array). Each type here is one less binding pinned to the stack by a reference capture, and
/// one less repair step: `Option<&T>` (`map.get(k)`, `iter.next()`) and raw pointers were the
/// commonest bindings stepped down to [`ByRef`].
///
/// Its one method keeps the code a capture's type instantiates in the capturing crate small
/// (every instrumented crate compiles it once per captured type; enough of it splits a small
/// crate's codegen units, and so its inlining, differently from the plain build: ryu's did).
pub trait SmallCopy: Copy {
    /// The value as a `Debug` view, the same address as `self` (the runtime reads primitives
    /// in place through it, by their type name). The primitives' views are made here, once,
    /// so a capturing crate instantiates none of std's formatting for them; raw pointers are
    /// shown by their address, formatted here too (std's `Debug` of a raw pointer is generic
    /// over its target and, with the metadata of an unsized one, about 300 MIR statements in
    /// each crate that captures one).
    fn shown(&self) -> &dyn fmt::Debug
    where
        Self: fmt::Debug,
    {
        self
    }
}

/// [`SmallCopy`] for types whose `Debug` is not generic: their views (and the vtables they
/// point at) are compiled in this crate, never in a capturing one (`inline(never)` keeps
/// rustc from making such a tiny function available to other crates).
macro_rules! small_copy {
    ($($t:ty)*) => { $(impl SmallCopy for $t {
        #[inline(never)]
        fn shown(&self) -> &dyn fmt::Debug {
            self
        }
    })* };
}
small_copy!(u8 u16 u32 u64 u128 usize i8 i16 i32 i64 i128 isize f32 f64 bool char);
small_copy!(std::cmp::Ordering std::sync::atomic::Ordering std::time::Duration);
small_copy!(());
impl<U: ?Sized> SmallCopy for &U {}
impl<T: SmallCopy> SmallCopy for Option<T> {}
impl<A: SmallCopy, B: SmallCopy> SmallCopy for (A, B) {}

/// A raw pointer's `Debug` view: its address (`0x…`), the metadata of a wide pointer left
/// out. `repr(transparent)`, so a reference to the pointer is one to its view.
#[repr(transparent)]
struct Addr<P>(P);

impl<P: RawPointer> Addr<P> {
    /// The view of the pointer `p` points at.
    #[inline(always)]
    fn of(p: &P) -> &Addr<P> {
        // SAFETY: `Addr<P>` is `repr(transparent)` over `P`: same layout, same validity.
        unsafe { &*(p as *const P as *const Addr<P>) }
    }
}

impl<P: RawPointer> fmt::Debug for Addr<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_addr(self.0.address(), f)
    }
}

/// Writes an address as std's `{:p}` does (`0x` and lowercase hex), honouring width and fill.
#[inline(never)]
fn write_addr(addr: usize, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    fmt::Pointer::fmt(&(addr as *const ()), f)
}

/// The raw pointers captured by copy, shown through [`Addr`].
trait RawPointer: SmallCopy {
    fn address(&self) -> usize;
}

impl<U: ?Sized> RawPointer for *const U {
    fn address(&self) -> usize {
        self.addr()
    }
}

impl<U: ?Sized> RawPointer for *mut U {
    fn address(&self) -> usize {
        self.addr()
    }
}

impl<U: ?Sized> RawPointer for std::ptr::NonNull<U> {
    fn address(&self) -> usize {
        self.addr().get()
    }
}

macro_rules! raw_pointer_views {
    ($($p:ty)*) => { $(impl<U: ?Sized> SmallCopy for $p {
        #[inline(always)]
        fn shown(&self) -> &dyn fmt::Debug {
            Addr::of(self)
        }
    })* };
}
raw_pointer_views!(*const U *mut U std::ptr::NonNull<U>);

/// Registers a package's site table and starts the control thread (once per process).
/// Called from the sites crate's constructor, before `main`.
pub fn register(table: &'static Table) {
    let _ = std::panic::catch_unwind(|| {
        hot::registry::register(table);
        START.call_once(|| {
            // Before anything can arm a site (the control plane, `LPROBE_ARM_ALL` below).
            #[cfg(all(
                target_arch = "x86_64",
                any(target_os = "linux", target_os = "android", target_os = "freebsd")
            ))]
            hot::saving::detect();
            plane::control::start();
        });
        // Test mode: every site armed from the start (see `control::arm_all`).
        if let Ok(action) = std::env::var("LPROBE_ARM_ALL") {
            plane::control::arm_all(table, &action);
        }
        // Panic capture from the start, for crashes that come before anyone could arm.
        if std::env::var_os("LPROBE_ON_PANIC").is_some_and(|v| v == "1") {
            plane::control::arm_all(table, "on-panic");
        }
        plane::control::start_if_armed();
    });
}

/// The control plane starts once, with the first table.
static START: std::sync::Once = std::sync::Once::new();

/// One record as the `tracing` or `log` bridge hands it to the program's subscriber or logger
/// (`LPROBE_OUTPUT=tracing|log`): the fields of the JSON record, as text. A field the record
/// does not have is empty. Built on the output thread, from the finished JSON record.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BridgeRecord<'a> {
    /// The probe's id (`p1`); empty for an `error` record of no probe.
    pub probe: &'a str,
    /// `path:line`.
    pub site: &'a str,
    /// The probed function's path.
    pub func: &'a str,
    /// `log`, `snapshot`, `count`, `duration` or `error`.
    pub kind: &'a str,
    /// The application thread the hit happened on.
    pub thread: &'a str,
    /// A `log` record's message, or an `error` record's text.
    pub msg: &'a str,
    /// A snapshot's values, a JSON object.
    pub vars: &'a str,
    /// A snapshot's stack, a JSON array of frames.
    pub stack: &'a str,
    /// A `count` record's `{"count":N,"delta":N}`.
    pub count: &'a str,
    /// A `duration` record's statistics, `{"count":…,"min_ns":…,"p50_ns":…,…}`.
    pub duration: &'a str,
}

impl BridgeRecord<'_> {
    /// Whether the record is an `error` record (which bridges emit at WARN, not INFO).
    pub fn is_error(&self) -> bool {
        self.kind == "error"
    }

    /// The non-empty fields as `(name, value)` in a fixed order: `probe`, `site`, `fn`,
    /// `kind`, `thread`, `msg`, `vars`, `stack`, `count`, `duration`.
    pub fn pairs(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("probe", self.probe),
            ("site", self.site),
            ("fn", self.func),
            ("kind", self.kind),
            ("thread", self.thread),
            ("msg", self.msg),
            ("vars", self.vars),
            ("stack", self.stack),
            ("count", self.count),
            ("duration", self.duration),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
    }

    /// The fields as one line of `key=value` words, for a logger without key-values (the
    /// `log` bridge when `log`'s `kv` feature is off): [`pairs`](Self::pairs) in order; a
    /// text value bare when it has no space, quote, `=`, backslash or control character, else
    /// a JSON string; `vars`, `stack`, `count`, `duration` as their JSON, which delimits itself
    /// (`probe=p1 site=src/main.rs:42 fn=app::f kind=log thread=main msg="total 8"`).
    pub fn text(&self) -> String {
        let mut out = String::new();
        for (k, v) in self.pairs() {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(k);
            out.push('=');
            let json_text = matches!(k, "vars" | "stack" | "count" | "duration");
            let bare = v
                .chars()
                .all(|c| !(c.is_whitespace() || c.is_control() || matches!(c, '"' | '=' | '\\')));
            if json_text || bare {
                out.push_str(v);
            } else {
                json::push_str(&mut out, v);
            }
        }
        out
    }
}

/// A bridge: hands one record to the program's `tracing` subscriber or `log` logger (code
/// generated into a sites crate whose package depends on that crate). Returns false when
/// the subscriber or logger does not take records of target `lprobe` at the record's level
/// (the record is counted as filtered).
pub type Bridge = fn(&BridgeRecord<'_>) -> bool;

/// Registers the bridge for `LPROBE_OUTPUT=NAME` (`"tracing"` or `"log"`; other names are
/// ignored). Called by generated sites crates before `main`, before any table registers; the
/// first bridge registered for a name is kept (every package of a program resolves the same
/// `tracing`, and the same `log`). The runtime calls it from its output thread only.
pub fn set_bridge(name: &str, bridge: Bridge) {
    plane::bridge::set(name, bridge);
}

/// Adds an instrumented crate's own copy of `table`'s site and function flags (the crate reads
/// its copy with a direct load, not through the sites crate's GOT entry). Called from the
/// crate's constructor, before `main`.
pub fn attach(table: &'static Table, flags: &'static [AtomicU8], fn_flags: &'static [AtomicU8]) {
    let _ = std::panic::catch_unwind(|| hot::registry::attach(table, flags, fn_flags));
}

/// Flag of a site armed only by plain counters: a hit adds one to the site's count and
/// returns (any other armed site's flag is 1).
pub const FLAG_COUNT: u8 = 2;

/// For the hot-path crate cargo-lprobe generates (`lprobe-runtime-hot`), which compiles the
/// functions a hit runs (`#[inline]` here) at the program's optimization level while this
/// crate is compiled for size: not an API.
#[doc(hidden)]
pub mod __hot {
    /// The counter's fast path (see [`crate::hit`]).
    #[inline]
    pub fn count_fast(table: &crate::Table, id: u32) -> bool {
        crate::hot::hit::count_fast(table, id)
    }

    /// [`crate::Ends::guard_end`]. Never unwinds (`hot::hit::exit` catches).
    #[inline]
    pub fn guard_end(table: &'static crate::Table, id: u32, start: u64) {
        crate::hot::hit::exit(table, id, start);
    }

    /// [`crate::Ends::timer_end`]. Never unwinds (`hot::hit::exit` catches).
    #[inline]
    pub fn timer_end(table: &'static crate::Table, id: u32, start: u64) {
        crate::recall::end(crate::hot::registry::table_key(table), id);
        crate::hot::hit::exit(table, id, start);
    }
}

/// Runs the probes armed at site `id` of `table`. Called only when the site's flag is set,
/// from the sites crate's cold out-of-line functions: `#[inline]` puts the counter's fast path
/// there (one call less per counted hit).
#[inline]
pub fn hit(table: &'static Table, id: u32, vals: &[Val<'_>]) {
    if !hot::hit::count_fast(table, id) {
        hot::hit::hit(table, id, vals);
    }
}

/// [`hit`] for the captures of the instrumented copy of a body written twice ([`CapRef`]).
#[inline]
pub fn hit_ref(table: &'static Table, id: u32, vals: &[RefVal<'_>]) {
    if hot::hit::count_fast(table, id) {
        return;
    }
    as_vals(vals, |vals| {
        hot::hit::hit(table, id, vals);
    });
}

/// Runs `f` on `vals` as [`Val`]s: on the stack up to 32 (a site captures its function's
/// bindings in scope: rarely more), in a `Vec` beyond.
fn as_vals<R>(vals: &[RefVal<'_>], f: impl FnOnce(&[Val<'_>]) -> R) -> R {
    const ON_STACK: usize = 32;
    if vals.len() <= ON_STACK {
        let none: Val<'_> = &Opaque::<()>(std::marker::PhantomData);
        let mut on_stack = [none; ON_STACK];
        for (to, v) in on_stack.iter_mut().zip(vals) {
            *to = v;
        }
        f(&on_stack[..vals.len()])
    } else {
        let all: Vec<Val<'_>> = vals.iter().map(|v| v as Val<'_>).collect();
        f(&all)
    }
}

/// How the end of a timed call is recorded (a [`Guard`]'s or a [`Timer`]'s drop, when the
/// call was timed). [`Here`] is the runtime's own; an instrumented program's guards use the
/// hot-path crate's (`lprobe-runtime-hot`), which compiles the same code at the program's
/// optimization level (the runtime's is compiled for size). Neither function may unwind:
/// `extern "C"` says so, and a guard's drop then adds no unwinding path to its function.
pub trait Ends {
    /// A guarded call returned or unwound (its entry site was timed: [`Guard::timed`]).
    extern "C" fn guard_end(table: &'static Table, id: u32, start: u64);
    /// The timed call [`enter`] asked for returned or unwound.
    extern "C" fn timer_end(table: &'static Table, id: u32, start: u64);
}

/// The runtime's own [`Ends`].
pub struct Here;

impl Ends for Here {
    #[cold]
    #[inline(never)]
    extern "C" fn guard_end(table: &'static Table, id: u32, start: u64) {
        __hot::guard_end(table, id, start)
    }

    #[cold]
    #[inline(never)]
    extern "C" fn timer_end(table: &'static Table, id: u32, start: u64) {
        __hot::timer_end(table, id, start)
    }
}

/// Lives for one call of an instrumented function (created at its entry site). Dormant, it is
/// two words and its drop is one compare; when a `--duration` probe is armed at the entry, it
/// carries the start time and its drop records the call's duration, on every return path and
/// when unwinding.
pub struct Guard<E: Ends = Here> {
    table: &'static Table,
    id: u32,
    /// 0: site dormant; 1: armed, not timed; otherwise the start (`timing::now_ns`).
    t: u64,
    ends: std::marker::PhantomData<E>,
}

impl<E: Ends> Guard<E> {
    #[inline(always)]
    pub fn new(table: &'static Table, id: u32, flag: u8) -> Self {
        Guard {
            table,
            id,
            t: u64::from(flag != 0),
            ends: std::marker::PhantomData,
        }
    }

    /// Whether the entry site is armed.
    #[inline(always)]
    pub fn on(&self) -> bool {
        self.t != 0
    }

    /// Starts timing the call at `start` (from `hit_entry`; 0: not timed).
    #[inline(always)]
    pub fn timed(&mut self, start: u64) {
        if start != 0 {
            self.t = start;
        }
    }
}

impl<E: Ends> Drop for Guard<E> {
    #[inline(always)]
    fn drop(&mut self) {
        if self.t > 1 {
            E::guard_end(self.table, self.id, self.t);
        }
    }
}

/// Runs the probes armed at entry site `id`, and starts timing the call if a `--duration`
/// probe wants it.
/// Returns the call's start time when it is to be timed, else 0 (see [`Guard::timed`]): the
/// guard is not passed by reference, so it stays in registers on the dormant path. Always
/// inlined: a `--count` hit is its first test and nothing more, and a call would be a fifth
/// of its cost (the runtime is one codegen unit, where LLVM does not inline it by itself).
#[inline(always)]
pub fn hit_entry(table: &'static Table, id: u32, vals: &[Val<'_>]) -> u64 {
    if !hot::hit::count_fast(table, id) && hot::hit::hit(table, id, vals) {
        let start = timing::now_ns();
        // A `--frames` frame pushed for this call pops at the end that holds `start`.
        hot::frames::stamp(table, id, start);
        start
    } else {
        0
    }
}

/// The call a timed entry is about to make of its own function, per thread.
///
/// A function whose entry site a `--duration` probe times calls itself once more with the same
/// arguments ([`enter`] returns the start time; the generated code returns what the second call
/// returns, holding a [`Timer`]), so timing needs no guard in the function body: the dormant
/// path carries one flag check and nothing on its return paths, whatever the function's size.
/// The second call's [`enter`] finds its own site announced here, forgets it, and lets the body
/// run. A function already being timed on this thread is not timed again when it recurses
/// (its outermost call is), so timing adds at most one frame per timed function to a stack.
mod recall {
    use std::cell::Cell;

    const NONE: (usize, u32) = (0, u32::MAX);
    /// Distinct functions timed at once on one thread (nested calls); more are not timed.
    const ACTIVE: usize = 8;

    thread_local! {
        static NEXT: Cell<(usize, u32)> = const { Cell::new(NONE) };
        static TIMING: Cell<[(usize, u32); ACTIVE]> = const { Cell::new([NONE; ACTIVE]) };
    }

    /// Announces the timed call of site `id`'s function, if it may be timed here (not already
    /// being timed on this thread, and a slot is free).
    #[inline]
    pub(crate) fn begin(key: usize, id: u32) -> bool {
        TIMING
            .try_with(|t| {
                let mut all = t.get();
                if all.contains(&(key, id)) {
                    return false;
                }
                let Some(free) = all.iter_mut().find(|s| **s == NONE) else {
                    return false;
                };
                *free = (key, id);
                t.set(all);
                NEXT.try_with(|c| c.set((key, id))).is_ok()
            })
            .unwrap_or(false)
    }

    /// Whether this call is the one [`begin`] announced (and forgets the announcement).
    #[inline]
    pub(crate) fn take(key: usize, id: u32) -> bool {
        NEXT.try_with(|c| {
            let mine = c.get() == (key, id);
            if mine {
                c.set(NONE);
            }
            mine
        })
        .unwrap_or(false)
    }

    /// The timed call returned: forgets it, and an announcement the call never took (its
    /// function was disarmed between the two, so the call did not look).
    #[inline]
    pub(crate) fn end(key: usize, id: u32) {
        take(key, id);
        let _ = TIMING.try_with(|t| {
            let mut all = t.get();
            if let Some(s) = all.iter_mut().find(|s| **s == (key, id)) {
                *s = NONE;
            }
            t.set(all);
        });
    }
}

#[inline]
fn site_on(table: &Table, id: u32) -> bool {
    table
        .flags
        .get(id as usize)
        .is_some_and(|f| f.load(std::sync::atomic::Ordering::Relaxed) != 0)
}

/// A function's entry site was passed while one of the function's sites is armed (the
/// caller checked only the function flag). Runs the entry's probes if the entry itself is
/// armed, and returns the start time if a `--duration` probe wants this call timed: the
/// caller then calls its function again with the same arguments, holding a [`Timer`], and
/// returns that call's result. Returns 0 for the timed call itself (its probes ran already).
#[inline]
pub fn enter(table: &'static Table, id: u32, vals: &[Val<'_>]) -> u64 {
    let key = hot::registry::table_key(table);
    if recall::take(key, id) || !site_on(table, id) {
        return 0;
    }
    let start = hit_entry(table, id, vals);
    if start != 0 && recall::begin(key, id) {
        start
    } else {
        // Not timed (already being timed further up): nothing will pop its frame.
        hot::frames::pop(table, id, start);
        0
    }
}

/// [`enter`] for an entry site checked together with the site of the function's first
/// statement (`line`): the line's probes run in the call that runs the body.
#[inline]
pub fn enter_first(table: &'static Table, id: u32, line: u32, vals: &[Val<'_>]) -> u64 {
    let key = hot::registry::table_key(table);
    let recalled = recall::take(key, id);
    if !recalled && site_on(table, id) {
        let start = hit_entry(table, id, vals);
        if start != 0 && recall::begin(key, id) {
            return start;
        }
        hot::frames::pop(table, id, start);
    }
    if site_on(table, line) {
        hit(table, line, vals);
    }
    0
}

/// Held across the timed call [`enter`] asked for: its drop records the call's duration
/// (also when unwinding).
pub struct Timer<E: Ends = Here> {
    table: &'static Table,
    id: u32,
    start: u64,
    ends: std::marker::PhantomData<E>,
}

impl<E: Ends> Timer<E> {
    #[inline(always)]
    pub fn new(table: &'static Table, id: u32, start: u64) -> Self {
        Timer {
            table,
            id,
            start,
            ends: std::marker::PhantomData,
        }
    }
}

impl<E: Ends> Drop for Timer<E> {
    #[inline(always)]
    fn drop(&mut self) {
        E::timer_end(self.table, self.id, self.start);
    }
}

#[cfg(test)]
mod tests {
    /// The layers import one way: `lang` nothing of `hot` or `plane`, `hot` nothing of
    /// `plane` (an application thread never waits on the runtime's own threads).
    #[test]
    fn layers_import_one_way() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
        let check = |layer: &str, forbidden: &[&str]| {
            let dir = std::path::Path::new(root).join(layer);
            let mut n = 0;
            for e in std::fs::read_dir(&dir).expect("layer dir") {
                let path = e.expect("entry").path();
                let text = std::fs::read_to_string(&path).expect("source");
                for f in forbidden {
                    assert!(
                        !text.contains(&format!("crate::{f}")),
                        "{} imports crate::{f}",
                        path.display()
                    );
                }
                n += 1;
            }
            assert!(n >= 3, "{layer}: {n} files");
        };
        check("lang", &["hot", "plane"]);
        check("hot", &["plane"]);
        // Inside `hot`, each module imports only modules after it in this order (modules
        // on one line do not import each other); its unit tests may use any.
        let order: &[&[&str]] = &[
            &["hit"],
            &["registry"],
            &["probe"],
            &["flight"],
            &["queue"],
            &["frames"],
            &["capture"],
            &["stack", "timing", "metric"],
            &["panics", "saving"],
        ];
        let dir = std::path::Path::new(root).join("hot");
        let mut seen = 0;
        for e in std::fs::read_dir(&dir).expect("hot dir") {
            let path = e.expect("entry").path();
            let name = path.file_stem().and_then(|s| s.to_str()).expect("name");
            if name == "mod" {
                continue;
            }
            let rank = order
                .iter()
                .position(|r| r.contains(&name))
                .unwrap_or_else(|| panic!("hot/{name}.rs: give it a place in the order"));
            let text = std::fs::read_to_string(&path).expect("source");
            let text = text.split("#[cfg(test)]").next().unwrap_or_default();
            for above in order[..=rank].iter().flat_map(|r| r.iter()) {
                assert!(
                    !text.contains(&format!("hot::{above}::"))
                        && !text.contains(&format!("hot::{above};")),
                    "hot/{name}.rs imports hot::{above}, which comes before it (or beside it)"
                );
            }
            seen += 1;
        }
        assert_eq!(seen, order.iter().map(|r| r.len()).sum::<usize>());
    }

    use super::*;

    #[test]
    fn raw_pointers_show_their_address_and_primitives_read_in_place() {
        let (n, words) = (41u64, [1u32, 2, 3]);
        let thin: *const u64 = &n;
        let wide: *const [u32] = &words[..];
        let mutable = thin as *mut u64;
        let non_null = std::ptr::NonNull::from(&words[..]);
        let copy = ByCopy(n);
        let vals: [Val<'_>; 5] = [&thin, &wide, &mutable, &non_null, &copy];
        let shown: Vec<(String, &str)> = vals
            .iter()
            .map(|v| {
                let (dbg, name) = v.parts();
                (dbg.map(|d| format!("{d:?}")).unwrap_or_default(), name)
            })
            .collect();
        // The address as `{:p}` writes it (a wide pointer's length left out), with the type.
        assert_eq!(shown[0], (format!("{thin:p}"), "*const u64"));
        assert_eq!(
            shown[1],
            (format!("{:p}", wide as *const u32), "*const [u32]")
        );
        assert_eq!(shown[2], (format!("{mutable:p}"), "*mut u64"));
        assert_eq!(shown[3].0, format!("{:p}", words.as_ptr()));
        assert!(shown[3].1.ends_with("NonNull<[u32]>"), "{}", shown[3].1);
        assert!(shown[0].0.starts_with("0x"), "{}", shown[0].0);
        // A view is the value's own address: primitives are read in place through it.
        let (dbg, _) = vals[4].parts();
        let dbg = dbg.expect("u64 is Debug");
        assert_eq!(
            dbg as *const dyn fmt::Debug as *const u64,
            &copy.0 as *const u64
        );
        assert_eq!(format!("{dbg:?}"), "41");
        // Formatting flags pass through.
        let (dbg, _) = vals[0].parts();
        assert_eq!(
            format!("{:>40?}", dbg.expect("shown")),
            format!("{:>40p}", thin)
        );
    }

    #[test]
    fn each_capture_form_shows_its_value_and_type() {
        struct NoDebug;
        let (n, s, text, nd) = (7u64, String::from("hi"), "yo", NoDebug);
        fn show(vals: &[Val<'_>]) -> Vec<(String, &'static str)> {
            vals.iter()
                .map(|v| {
                    let (dbg, name) = v.parts();
                    (dbg.map(|d| format!("{d:?}")).unwrap_or_default(), name)
                })
                .collect()
        }
        // As generated: the copies live until the end of the statement that passes them.
        let shown = show(&[&ByCopy(n), &ByRef(&s), &ByCopy(text), &Opaque::of(&nd)]);
        assert_eq!(shown[0], ("7".into(), "u64"));
        assert_eq!(shown[1], ("\"hi\"".into(), "alloc::string::String"));
        assert_eq!(shown[2], ("\"yo\"".into(), "&str"));
        assert_eq!(shown[3].0, "");
        assert!(shown[3].1.ends_with("NoDebug"));
        // The forms of a body's instrumented copy, read through `Val` as the runtime reads
        // them: the same values.
        let mut buf = vec![1u8, 2];
        let m: &mut [u8] = &mut buf;
        let refs: [RefVal<'_>; 4] = [&s, &n, &ByRef(&*m), &Opaque::of(&nd)];
        let as_vals: Vec<Val<'_>> = refs.iter().map(|r| r as Val<'_>).collect();
        let shown = show(&as_vals);
        // `hit_ref` hands them over in order, on the stack or (over 32) in a `Vec`.
        assert_eq!(super::as_vals(&refs, show), shown);
        let many: Vec<u64> = (0..40).collect();
        let many_refs: Vec<RefVal<'_>> = many.iter().map(|v| v as RefVal<'_>).collect();
        for n in [0, 1, 32, 33, 40] {
            let got = super::as_vals(&many_refs[..n], show);
            let want: Vec<(String, &str)> = (0..n).map(|i| (i.to_string(), "u64")).collect();
            assert_eq!(got, want, "{n} captures");
        }
        assert_eq!(shown[0], ("\"hi\"".into(), "alloc::string::String"));
        assert_eq!(shown[1], ("7".into(), "u64"));
        assert_eq!(shown[2], ("[1, 2]".into(), "&[u8]"));
        assert_eq!(shown[3].0, "");
        assert!(shown[3].1.ends_with("NoDebug"));
        // Primitives are read in place by their type name: it must name what `Debug` points
        // at, through any number of references.
        let scalars: Vec<_> = as_vals.iter().map(hot::capture::scalar_of).collect();
        assert!(matches!(scalars[1], Some(lang::value::Scalar::Int(7))));
        let nn = &&n;
        let through: [RefVal<'_>; 1] = [&nn];
        let v: Val<'_> = &through[0];
        assert!(matches!(
            hot::capture::scalar_of(&v),
            Some(lang::value::Scalar::Int(7))
        ));
        let _ = nd;
    }
}
