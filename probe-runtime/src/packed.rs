//! A table's sites and its functions without sites as the build writes them: packed bytes,
//! unpacked into [`Site`] and [`Skipped`] rows once, when first read. The control thread reads
//! them first (to list, arm or report), so a program nobody probes never unpacks them, and the
//! main thread's heap holds nothing of lprobe's before `main` (a few kilobytes allocated and
//! freed there moved glibc's allocator onto other paths in the program: indexmap's workload
//! ran 2% more instructions in `_int_malloc` and `malloc_consolidate`).
//!
//! Rows written out as struct literals held a pointer each (one dynamic relocation and 24
//! bytes of `.rela.dyn` per site in a position-independent executable, on top of the row's
//! 56 bytes of `.data.rel.ro`), and type-checking thousands of literals was most of a sites
//! crate's compile time, which every crate of its package waits for. Packed, a site is about
//! ten bytes of `.rodata` and one byte-string token. [`pack`] is the build's half (the CLI
//! calls it), [`Sites`] the program's.
//!
//! Format: unsigned LEB128 numbers; spans are ranges (`at len`) of the table's one string.
//! Sites: the names list (its length, then a span per name), the rows' count, then per row a
//! byte of bits (`0-1` the kind: 0 entry, 1 line, 2 none; `2` timed; `3` frame; `4` a path
//! follows; `5` a function follows), the path when bit 4 is set (else the previous row's),
//! `line col`, the function's span and `fn_slot` when bit 5 is set (else the previous
//! row's), the names' `at count` and the line text's span. Functions without sites: their
//! count, then per row a byte of bits (`0` a path follows, `1` a reason follows), the path
//! (else the previous row's), `first_line last_line`, the function's span, the reason (else
//! the previous row's). The string itself is LZ4-compressed ([`Text::lz4`], [`lz4`]).

use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Once;

use crate::{Site, SiteKind, Skipped, Span, Strs};

pub mod lz4;

/// A [`crate::Table`]'s sites: rows (tests and tools) or packed by [`pack`].
pub type Sites = Rows<Site>;
/// A [`crate::Table`]'s functions without sites: rows, or packed by [`pack_skipped`].
pub type Skips = Rows<Skipped>;

/// Rows written out (tests and tools) or packed bytes (generated code), read as a slice.
pub enum Rows<T: 'static> {
    Rows(&'static [T]),
    Packed(Packed<T>),
}

/// Packed rows and the string their spans are ranges of, unpacked on first use.
pub struct Packed<T: 'static> {
    /// Shared by a table's sites and its functions without sites: expanded once.
    text: &'static Text,
    bytes: &'static [u8],
    rows: Kept<&'static [T]>,
}

/// A table's string as the build writes it: LZ4-compressed ([`lz4`]), expanded on first
/// read (on the control thread, like the rows) and then kept for the life of the program.
pub struct Text {
    block: &'static [u8],
    len: usize,
    plain: Kept<&'static str>,
}

/// A value computed on first use and kept for the life of the program, like a `OnceLock`
/// that is never dropped: it has no drop glue, nor has a [`crate::Table`] holding it. A
/// package's table is a static of the instrumented crate, and a static's drop glue is
/// compiled into that crate (about 150 of rustc's size units: enough to move a small crate's
/// partition into codegen units, and so the inlining of its own functions).
pub struct Kept<V: Copy + 'static> {
    once: Once,
    /// A leaked box, set once, never freed.
    value: AtomicPtr<V>,
    _v: PhantomData<V>,
}

impl<V: Copy + 'static> Default for Kept<V> {
    fn default() -> Kept<V> {
        Kept::new()
    }
}

impl<V: Copy + 'static> Kept<V> {
    pub const fn new() -> Kept<V> {
        Kept {
            once: Once::new(),
            value: AtomicPtr::new(std::ptr::null_mut()),
            _v: PhantomData,
        }
    }

    /// The value, computed by `init` on the first call (one call computes it; the others
    /// wait for it). A panic in `init` leaves it unset, for the next call to try again.
    #[inline]
    pub fn get_or_init(&self, init: impl FnOnce() -> V) -> V {
        self.once.call_once_force(|_| {
            let value = Box::into_raw(Box::new(init()));
            self.value.store(value, Ordering::Release);
        });
        let value = self.value.load(Ordering::Acquire);
        // SAFETY: `call_once_force` returned normally, so its closure ran to the end, once:
        // `value` is the box it leaked, which nothing frees.
        unsafe { *value }
    }

    /// The value, if it was computed.
    pub fn get(&self) -> Option<V> {
        if !self.once.is_completed() {
            return None;
        }
        // SAFETY: as in `get_or_init`: completed, so set once to a box nothing frees.
        Some(unsafe { *self.value.load(Ordering::Acquire) })
    }
}

impl Text {
    /// The `len` bytes of UTF-8 compressed in `block`.
    pub const fn lz4(block: &'static [u8], len: usize) -> Text {
        Text {
            block,
            len,
            plain: Kept::new(),
        }
    }

    /// The string; empty if the block is damaged (every span of it then reads as empty: the
    /// sites keep their ids and flags, and lose their names and paths).
    #[inline]
    pub fn get(&self) -> &'static str {
        self.plain.get_or_init(|| {
            let text = lz4::decompress(self.block, self.len)
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .unwrap_or_default();
            Box::leak(text.into_boxed_str())
        })
    }
}

/// What can be unpacked from bytes into rows whose spans are ranges of `text`.
pub trait Unpack: Sized + 'static {
    fn unpack(text: &'static str, bytes: &[u8]) -> Vec<Self>;
}

impl<T: Unpack> Rows<T> {
    /// Rows packed by the build, their spans ranges of the compressed `text`.
    pub const fn packed(text: &'static Text, bytes: &'static [u8]) -> Rows<T> {
        Rows::Packed(Packed {
            text,
            bytes,
            rows: Kept::new(),
        })
    }

    /// The rows, unpacked now if they are packed.
    #[inline]
    pub fn rows(&self) -> &[T] {
        match self {
            Rows::Rows(r) => r,
            Rows::Packed(p) => p
                .rows
                .get_or_init(|| Box::leak(T::unpack(p.text.get(), p.bytes).into_boxed_slice())),
        }
    }
}

impl<T: Unpack> Deref for Rows<T> {
    type Target = [T];

    /// Unpacks on first use. An application thread reads a site's row only for an armed site,
    /// and arming read the rows first, so it never waits here.
    fn deref(&self) -> &[T] {
        self.rows()
    }
}

impl<T> std::fmt::Debug for Rows<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rows::Rows(r) => write!(f, "Rows({})", r.len()),
            Rows::Packed(p) => write!(f, "Packed({} bytes)", p.bytes.len()),
        }
    }
}

impl Unpack for Site {
    fn unpack(text: &'static str, bytes: &[u8]) -> Vec<Site> {
        let (strs, rows) = unpack(text, bytes);
        let strs: &'static Strs = Box::leak(Box::new(strs));
        rows.into_iter().map(|r| r.site(strs)).collect()
    }
}

impl Unpack for Skipped {
    fn unpack(text: &'static str, bytes: &[u8]) -> Vec<Skipped> {
        let strs: &'static Strs = Box::leak(Box::new(Strs { text, names: &[] }));
        let mut r = Reader { bytes, at: 0 };
        let n = r.num().unwrap_or(0);
        let mut out = Vec::with_capacity((n as usize).min(bytes.len()));
        let (mut path, mut why) = (Span(0, 0), Span(0, 0));
        for _ in 0..n {
            let Some(k) = r.skipped(strs, &mut path, &mut why) else {
                break;
            };
            out.push(k);
        }
        out
    }
}

/// One site as the build describes it: a [`Site`] without its table's strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row {
    pub path: Span,
    pub line: u32,
    pub col: u32,
    pub func: Span,
    pub kind: SiteKind,
    /// Range (start, count) of the names list.
    pub names: Span,
    pub text: Span,
    pub fn_slot: u32,
    pub timed: bool,
    pub frame: bool,
}

impl Row {
    fn site(self, strs: &'static Strs) -> Site {
        Site {
            strs,
            path: self.path,
            line: self.line,
            col: self.col,
            func: self.func,
            kind: self.kind,
            names: self.names,
            text: self.text,
            fn_slot: self.fn_slot,
            timed: self.timed,
            frame: self.frame,
        }
    }
}

const NEW_PATH: u8 = 1 << 4;
const NEW_FUNC: u8 = 1 << 5;

/// The bytes [`Sites::packed`] reads: `names` (ranges of the table's string) and `rows`.
pub fn pack(names: &[Span], rows: &[Row]) -> Vec<u8> {
    let mut out = Vec::with_capacity(names.len() * 3 + rows.len() * 12);
    put(&mut out, names.len() as u32);
    for n in names {
        put(&mut out, n.0);
        put(&mut out, n.1);
    }
    put(&mut out, rows.len() as u32);
    let mut prev: Option<&Row> = None;
    for r in rows {
        let new_path = prev.is_none_or(|p| p.path != r.path);
        let new_func = prev.is_none_or(|p| (p.func, p.fn_slot) != (r.func, r.fn_slot));
        let kind = match r.kind {
            SiteKind::Entry => 0,
            SiteKind::Line => 1,
            SiteKind::None => 2,
        };
        out.push(
            kind | u8::from(r.timed) << 2
                | u8::from(r.frame) << 3
                | if new_path { NEW_PATH } else { 0 }
                | if new_func { NEW_FUNC } else { 0 },
        );
        if new_path {
            put(&mut out, r.path.0);
            put(&mut out, r.path.1);
        }
        put(&mut out, r.line);
        put(&mut out, r.col);
        if new_func {
            put(&mut out, r.func.0);
            put(&mut out, r.func.1);
            put(&mut out, r.fn_slot);
        }
        for n in [r.names.0, r.names.1, r.text.0, r.text.1] {
            put(&mut out, n);
        }
        prev = Some(r);
    }
    out
}

/// A function without sites as the build describes it: a [`Skipped`] without its table's
/// string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SkippedRow {
    pub path: Span,
    pub first_line: u32,
    pub last_line: u32,
    pub func: Span,
    pub why: Span,
}

/// The bytes [`Skips::packed`] reads.
pub fn pack_skipped(rows: &[SkippedRow]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rows.len() * 8);
    put(&mut out, rows.len() as u32);
    let mut prev: Option<&SkippedRow> = None;
    for r in rows {
        let new_path = prev.is_none_or(|p| p.path != r.path);
        let new_why = prev.is_none_or(|p| p.why != r.why);
        out.push(u8::from(new_path) | u8::from(new_why) << 1);
        if new_path {
            put(&mut out, r.path.0);
            put(&mut out, r.path.1);
        }
        for n in [r.first_line, r.last_line, r.func.0, r.func.1] {
            put(&mut out, n);
        }
        if new_why {
            put(&mut out, r.why.0);
            put(&mut out, r.why.1);
        }
        prev = Some(r);
    }
    out
}

fn put(out: &mut Vec<u8>, mut n: u32) {
    loop {
        let low = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(low);
            return;
        }
        out.push(low | 0x80);
    }
}

/// The names and rows of `bytes`; malformed bytes (never written by [`pack`]) end the rows
/// early, never in a panic.
pub fn unpack(text: &'static str, bytes: &[u8]) -> (Strs, Vec<Row>) {
    let mut r = Reader { bytes, at: 0 };
    let mut names = Vec::new();
    let mut rows = Vec::new();
    let n_names = r.num().unwrap_or(0);
    for _ in 0..n_names {
        match (r.num(), r.num()) {
            (Some(a), Some(l)) => names.push(Span(a, l)),
            _ => break,
        }
    }
    let n_rows = r.num().unwrap_or(0);
    // Never more rows than bytes left: a bad count cannot make a large allocation.
    rows.reserve((n_rows as usize).min(bytes.len()));
    let (mut path, mut func, mut fn_slot) = (Span(0, 0), Span(0, 0), 0);
    for _ in 0..n_rows {
        let Some(row) = r.row(&mut path, &mut func, &mut fn_slot) else {
            break;
        };
        rows.push(row);
    }
    let names: &'static [Span] = Box::leak(names.into_boxed_slice());
    (Strs { text, names }, rows)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    fn num(&mut self) -> Option<u32> {
        let mut n: u32 = 0;
        for shift in [0, 7, 14, 21, 28] {
            let b = self.byte()?;
            n |= u32::from(b & 0x7f).checked_shl(shift)?;
            if b & 0x80 == 0 {
                return Some(n);
            }
        }
        None
    }

    fn span(&mut self) -> Option<Span> {
        Some(Span(self.num()?, self.num()?))
    }

    fn skipped(&mut self, strs: &'static Strs, path: &mut Span, why: &mut Span) -> Option<Skipped> {
        let bits = self.byte()?;
        if bits & 1 != 0 {
            *path = self.span()?;
        }
        let (first_line, last_line, func) = (self.num()?, self.num()?, self.span()?);
        if bits & 2 != 0 {
            *why = self.span()?;
        }
        Some(Skipped {
            strs,
            path: *path,
            first_line,
            last_line,
            func,
            why: *why,
        })
    }

    fn row(&mut self, path: &mut Span, func: &mut Span, fn_slot: &mut u32) -> Option<Row> {
        let bits = self.byte()?;
        let kind = match bits & 3 {
            0 => SiteKind::Entry,
            1 => SiteKind::Line,
            _ => SiteKind::None,
        };
        if bits & NEW_PATH != 0 {
            *path = self.span()?;
        }
        let (line, col) = (self.num()?, self.num()?);
        if bits & NEW_FUNC != 0 {
            *func = self.span()?;
            *fn_slot = self.num()?;
        }
        Some(Row {
            path: *path,
            line,
            col,
            func: *func,
            kind,
            names: self.span()?,
            text: self.span()?,
            fn_slot: *fn_slot,
            timed: bits & 4 != 0,
            frame: bits & 8 != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_kept_value_is_computed_once_retried_after_a_panic_and_leaves_tables_without_drop_glue() {
        use super::Kept;
        use std::sync::atomic::AtomicUsize;
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        static K: Kept<&'static str> = Kept::new();
        assert_eq!(K.get(), None);
        // A panicking first computation leaves it unset.
        let r = std::panic::catch_unwind(|| K.get_or_init(|| panic!("first try")));
        assert!(r.is_err() && K.get().is_none());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                std::thread::spawn(|| {
                    K.get_or_init(|| {
                        CALLS.fetch_add(1, Ordering::SeqCst);
                        "kept"
                    })
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().expect("no panic"), "kept");
        }
        assert_eq!(CALLS.load(Ordering::SeqCst), 1);
        assert_eq!(K.get(), Some("kept"));
        // What `Kept` is for: a package's table, a static of the instrumented crate, has no
        // drop glue to compile there.
        assert!(!std::mem::needs_drop::<crate::Table>());
    }

    use super::*;

    fn row(path: u32, line: u32, func: u32, kind: SiteKind, slot: u32) -> Row {
        Row {
            path: Span(path, 4),
            line,
            col: 5,
            func: Span(func, 3),
            kind,
            names: Span(line, 2),
            text: Span(300 + line, 1000),
            fn_slot: slot,
            timed: line.is_multiple_of(2),
            frame: line.is_multiple_of(3),
        }
    }

    #[test]
    fn packed_rows_unpack_to_the_same_rows() {
        let names = [Span(0, 3), Span(3, 200), Span(70_000, 5)];
        let rows = [
            row(0, 1, 10, SiteKind::Entry, 0),
            row(0, 2, 10, SiteKind::Line, 0),
            row(0, 3, 20, SiteKind::None, 1),
            row(4, 100_000, 20, SiteKind::Line, 1),
            row(4, 7, 20, SiteKind::Line, 2),
            row(0, 8, 10, SiteKind::Entry, 0),
        ];
        let bytes = pack(&names, &rows);
        assert!(bytes.len() < rows.len() * 16, "{} bytes", bytes.len());
        let (strs, back) = unpack("text", &bytes);
        assert_eq!(back, rows);
        assert_eq!(strs.names, names);
        assert_eq!(strs.text, "text");
        let (_, none) = unpack("", &pack(&[], &[]));
        assert!(none.is_empty());
    }

    #[test]
    fn packed_functions_without_sites_unpack_to_the_same_rows() {
        let rows = [
            SkippedRow {
                path: Span(0, 11),
                first_line: 3,
                last_line: 5,
                func: Span(11, 8),
                why: Span(19, 8),
            },
            SkippedRow {
                path: Span(0, 11),
                first_line: 9,
                last_line: 200_000,
                func: Span(11, 3),
                why: Span(19, 8),
            },
            SkippedRow {
                path: Span(27, 5),
                first_line: 1,
                last_line: 1,
                func: Span(32, 1),
                why: Span(33, 2),
            },
        ];
        let bytes = pack_skipped(&rows);
        let text = "src/main.rsapp::getconst fnsrc/fwhy";
        let back = Skipped::unpack(text, &bytes);
        let got: Vec<_> = back
            .iter()
            .map(|k| (k.path(), k.first_line, k.last_line, k.func(), k.why()))
            .collect();
        assert_eq!(
            got,
            [
                ("src/main.rs", 3, 5, "app::get", "const fn"),
                ("src/main.rs", 9, 200_000, "app", "const fn"),
                ("src/f", 1, 1, "w", "hy"),
            ]
        );
        for cut in 0..bytes.len() {
            assert!(Skipped::unpack(text, &bytes[..cut]).len() < rows.len());
        }
    }

    #[test]
    fn malformed_bytes_end_the_rows_without_a_panic() {
        let rows = [
            row(0, 1, 10, SiteKind::Entry, 0),
            row(0, 2, 10, SiteKind::Line, 0),
        ];
        let bytes = pack(&[Span(0, 1)], &rows);
        for cut in 0..bytes.len() {
            let (_, back) = unpack("", &bytes[..cut]);
            assert!(back.len() < rows.len());
            assert_eq!(back, rows[..back.len()]);
        }
        // A count far beyond the bytes, and a number that never ends.
        let (_, back) = unpack("", &[0, 0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(back.is_empty());
        let (strs, back) = unpack("", &[0xff; 64]);
        assert!(back.is_empty() && strs.names.is_empty());
    }

    #[test]
    fn packed_sites_read_as_rows_once_unpacked() {
        static BYTES: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
            pack(
                &[Span(0, 5)],
                &[Row {
                    path: Span(5, 11),
                    line: 42,
                    col: 5,
                    func: Span(16, 8),
                    kind: SiteKind::Line,
                    names: Span(0, 1),
                    text: Span(0, 0),
                    fn_slot: 0,
                    timed: false,
                    frame: false,
                }],
            )
        });
        // The string LZ4-compressed, as the build writes it (a block of literals only: a
        // token of 15 literals and 9 more, then the 24 bytes).
        const BLOCK: &[u8] = b"\xf0\x09ordersrc/main.rsapp::run";
        static TEXT: Text = Text::lz4(BLOCK, 24);
        static SITES: std::sync::LazyLock<Sites> =
            std::sync::LazyLock::new(|| Sites::packed(&TEXT, &BYTES));
        assert!(
            TEXT.plain.get().is_none(),
            "nothing expanded before the first read"
        );
        let sites = &*SITES;
        let Rows::Packed(packed) = sites else {
            panic!("packed")
        };
        assert!(
            packed.rows.get().is_none(),
            "nothing unpacked before the first read"
        );
        let rows = sites.rows();
        assert_eq!(rows.len(), 1);
        assert_eq!(sites.len(), 1);
        let s = &sites[0];
        assert_eq!(
            (s.path(), s.line, s.func()),
            ("src/main.rs", 42, "app::run")
        );
        assert_eq!(s.names().iter().collect::<Vec<_>>(), ["order"]);
        assert_eq!(TEXT.get(), "ordersrc/main.rsapp::run");
    }

    #[test]
    fn a_damaged_text_reads_as_empty_strings_and_keeps_the_rows() {
        let bytes: &'static [u8] = Box::leak(
            pack(
                &[],
                &[Row {
                    path: Span(0, 11),
                    line: 7,
                    col: 1,
                    func: Span(11, 8),
                    kind: SiteKind::Entry,
                    names: Span(0, 0),
                    text: Span(0, 0),
                    fn_slot: 0,
                    timed: false,
                    frame: false,
                }],
            )
            .into_boxed_slice(),
        );
        // A block that expands to fewer bytes than recorded, and one that is not UTF-8.
        for (block, len) in [(&b"\x20ab"[..], 19), (&b"\x20\xff\xfe"[..], 2)] {
            let text: &'static Text = Box::leak(Box::new(Text::lz4(block, len)));
            let sites = Sites::packed(text, bytes);
            assert_eq!(sites.len(), 1);
            assert_eq!(
                (sites[0].line, sites[0].path(), sites[0].func()),
                (7, "", "")
            );
        }
    }
}
