//! `#[cfg(…)]` predicates, as far as the build's target decides them.
//!
//! Counting the calls of a function (`driver::promote_recalls`) must not count the calls in
//! code the build leaves out: httparse calls its `swar::match_header_name_vectored` from a
//! module for aarch64 and from three alternatives chosen by its build script, one of which is
//! compiled. A [`Pred`] is what the `#[cfg]`s on the way to a function say (its file's `mod`
//! declarations, inline modules, its `impl` and itself). The target's own cfgs (`target_arch`,
//! `unix`, …, from `rustc --print cfg`: [`Target`]) decide what they can; the rest (features,
//! a build script's `cargo:rustc-cfg`) is unknown until cargo runs, so [`most`] takes the
//! largest count any assignment of the unknown ones gives: calls in two modules that exclude
//! each other count once.
//!
//! The target is the one `--target` names (or `CARGO_BUILD_TARGET`), else the host's; one set
//! in `.cargo/config.toml` is not seen. A wrong answer costs only a choice between timing by
//! a guard and by a second call (what the count decides), never what the program computes.

use std::collections::{BTreeSet, HashSet};

use syn::punctuated::Punctuated;

/// A cfg predicate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pred {
    True,
    False,
    /// `name` or `name = "value"`.
    Atom(String, Option<String>),
    All(Vec<Pred>),
    Any(Vec<Pred>),
    Not(Box<Pred>),
}

impl Pred {
    /// What the `#[cfg(…)]` attributes among `attrs` say together (`True` if none). A
    /// predicate lprobe cannot read is taken as true: the code counts, as it did without cfgs.
    pub fn of_attrs(attrs: &[syn::Attribute]) -> Pred {
        let mut all: Vec<Pred> = attrs
            .iter()
            .filter(|a| a.path().is_ident("cfg"))
            .filter_map(|a| match &a.meta {
                syn::Meta::List(l) => l.parse_args::<syn::Meta>().ok().map(|m| Pred::of_meta(&m)),
                _ => None,
            })
            .collect();
        match all.len() {
            0 => Pred::True,
            1 => all.remove(0),
            _ => Pred::All(all),
        }
    }

    fn of_meta(m: &syn::Meta) -> Pred {
        match m {
            syn::Meta::Path(p) => match p.get_ident() {
                Some(i) => Pred::Atom(i.to_string(), None),
                None => Pred::True,
            },
            syn::Meta::NameValue(nv) => match (&nv.path.get_ident(), &nv.value) {
                (
                    Some(i),
                    syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(s),
                        ..
                    }),
                ) => Pred::Atom(i.to_string(), Some(s.value())),
                _ => Pred::True,
            },
            syn::Meta::List(l) => {
                let Ok(args) =
                    l.parse_args_with(Punctuated::<syn::Meta, syn::Token![,]>::parse_terminated)
                else {
                    return Pred::True;
                };
                let args: Vec<Pred> = args.iter().map(Pred::of_meta).collect();
                match l.path.get_ident().map(|i| i.to_string()).as_deref() {
                    Some("all") => Pred::All(args),
                    Some("any") => Pred::Any(args),
                    Some("not") if args.len() == 1 => {
                        Pred::Not(Box::new(args.into_iter().next().unwrap_or(Pred::True)))
                    }
                    _ => Pred::True,
                }
            }
        }
    }

    /// Both `self` and `other`.
    pub fn and(self, other: Pred) -> Pred {
        match (self, other) {
            (Pred::True, p) | (p, Pred::True) => p,
            (Pred::All(mut a), Pred::All(b)) => {
                a.extend(b);
                Pred::All(a)
            }
            (Pred::All(mut a), p) | (p, Pred::All(mut a)) => {
                a.push(p);
                Pred::All(a)
            }
            (a, b) => Pred::All(vec![a, b]),
        }
    }

    /// Either `self` or `other` (a file declared by two `mod`s).
    pub fn or(self, other: Pred) -> Pred {
        match (self, other) {
            (Pred::True, _) | (_, Pred::True) => Pred::True,
            (a, b) if a == b => a,
            (a, b) => Pred::Any(vec![a, b]),
        }
    }

    /// `self` with what `t` knows decided: `True`, `False`, or what is left to know.
    pub fn decide(&self, t: &Target) -> Pred {
        self.decide_with(&|a, v| t.value(a, v))
    }

    fn decide_with(&self, known: &dyn Fn(&str, Option<&str>) -> Option<bool>) -> Pred {
        let bool_pred = |b: bool| if b { Pred::True } else { Pred::False };
        match self {
            Pred::True | Pred::False => self.clone(),
            Pred::Atom(a, v) => known(a, v.as_deref()).map_or_else(|| self.clone(), bool_pred),
            Pred::Not(p) => match p.decide_with(known) {
                Pred::True => Pred::False,
                Pred::False => Pred::True,
                p => Pred::Not(Box::new(p)),
            },
            Pred::All(ps) => Pred::decide_list(ps, known, false),
            Pred::Any(ps) => Pred::decide_list(ps, known, true),
        }
    }

    /// `all(ps)` (or `any(ps)`) with what `known` knows decided: one false (true) decides
    /// it, the true (false) ones drop out.
    fn decide_list(
        ps: &[Pred],
        known: &dyn Fn(&str, Option<&str>) -> Option<bool>,
        any: bool,
    ) -> Pred {
        let (decides, drops) = if any {
            (Pred::True, Pred::False)
        } else {
            (Pred::False, Pred::True)
        };
        let mut left = Vec::new();
        for p in ps {
            match p.decide_with(known) {
                p if p == decides => return decides,
                p if p == drops => {}
                p => left.push(p),
            }
        }
        match (left.is_empty(), any) {
            (true, _) => drops,
            (false, true) => Pred::Any(left),
            (false, false) => Pred::All(left),
        }
    }

    fn atoms<'p>(&'p self, out: &mut BTreeSet<(&'p str, Option<&'p str>)>) {
        match self {
            Pred::True | Pred::False => {}
            Pred::Atom(a, v) => {
                out.insert((a, v.as_deref()));
            }
            Pred::Not(p) => p.atoms(out),
            Pred::All(ps) | Pred::Any(ps) => ps.iter().for_each(|p| p.atoms(out)),
        }
    }
}

/// Keys whose values the target fixes: an atom of one of them not in `rustc --print cfg` is
/// false. (Not `target_feature` or `panic`: `RUSTFLAGS` and the profile change those.)
const TARGET_KEYS: &[&str] = &[
    "target_arch",
    "target_os",
    "target_family",
    "target_env",
    "target_abi",
    "target_endian",
    "target_pointer_width",
    "target_vendor",
    "target_has_atomic",
    "unix",
    "windows",
];

/// Names no build of a library for its users sets (tools' and docs.rs's).
const NEVER_SET: &[&str] = &[
    "test", "miri", "doc", "doctest", "docsrs", "rustfmt", "clippy",
];

/// What the build's target sets: `rustc --print cfg`'s lines.
#[derive(Clone, Debug, Default)]
pub struct Target {
    set: HashSet<(String, Option<String>)>,
    /// Known: the target answered (an empty `Target` decides only [`NEVER_SET`]).
    known: bool,
}

impl Target {
    /// From `rustc --print cfg` output: `unix`, `target_arch="x86_64"`, ….
    pub fn parse(text: &str) -> Target {
        let set = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| match l.split_once('=') {
                Some((k, v)) => (k.to_owned(), Some(v.trim_matches('"').to_owned())),
                None => (l.to_owned(), None),
            })
            .collect();
        Target { set, known: true }
    }

    /// Asks `rustc` for the target's cfgs (`target`: a `--target` triple, else the host's).
    /// `None`-like (an empty, unknown target) if it cannot: then only [`NEVER_SET`] is
    /// decided and every other call counts.
    pub fn query(rustc: &str, target: Option<&str>) -> Target {
        let mut cmd = std::process::Command::new(rustc);
        cmd.args(["--print", "cfg"]);
        if let Some(t) = target {
            cmd.args(["--target", t]);
        }
        match cmd.stderr(std::process::Stdio::null()).output() {
            Ok(out) if out.status.success() => Target::parse(&String::from_utf8_lossy(&out.stdout)),
            _ => Target::default(),
        }
    }

    /// Whether the atom `name` / `name = "value"` holds, if the target decides it.
    fn value(&self, name: &str, value: Option<&str>) -> Option<bool> {
        if NEVER_SET.contains(&name) && value.is_none() {
            return Some(false);
        }
        if !self.known || !TARGET_KEYS.contains(&name) {
            return None;
        }
        Some(
            self.set
                .contains(&(name.to_owned(), value.map(str::to_owned))),
        )
    }
}

/// More unknown cfgs than this among one function's calls are not enumerated: every call
/// that the target does not rule out counts.
const MAX_UNKNOWN: usize = 8;

/// The most calls any build for `target` can compile, of `calls` (each under a predicate,
/// already [`Pred::decide`]d).
pub fn most<'p>(calls: impl IntoIterator<Item = (&'p Pred, u32)>) -> u32 {
    let mut sure = 0u32;
    let mut open: Vec<(&Pred, u32)> = Vec::new();
    for (p, n) in calls {
        match p {
            Pred::True => sure = sure.saturating_add(n),
            Pred::False => {}
            p => open.push((p, n)),
        }
    }
    if open.is_empty() {
        return sure;
    }
    let mut atoms = BTreeSet::new();
    for (p, _) in &open {
        p.atoms(&mut atoms);
    }
    let atoms: Vec<(&str, Option<&str>)> = atoms.into_iter().collect();
    if atoms.len() > MAX_UNKNOWN {
        return open.iter().fold(sure, |s, (_, n)| s.saturating_add(*n));
    }
    let mut best = 0u32;
    for bits in 0u32..(1 << atoms.len()) {
        let known = |a: &str, v: Option<&str>| {
            atoms
                .iter()
                .position(|&(x, y)| x == a && y == v)
                .map(|i| bits & (1 << i) != 0)
        };
        let n = open
            .iter()
            .filter(|(p, _)| p.decide_with(&known) == Pred::True)
            .fold(0u32, |s, (_, n)| s.saturating_add(*n));
        best = best.max(n);
    }
    sure.saturating_add(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pred(attrs: &str) -> Pred {
        let f: syn::File = syn::parse_str(&format!("{attrs} fn f() {{}}")).expect("parses");
        match &f.items[0] {
            syn::Item::Fn(f) => Pred::of_attrs(&f.attrs),
            _ => unreachable!(),
        }
    }

    fn x86_64_linux() -> Target {
        Target::parse(
            "panic=\"unwind\"\ntarget_arch=\"x86_64\"\ntarget_family=\"unix\"\ntarget_feature=\"sse2\"\ntarget_os=\"linux\"\ntarget_pointer_width=\"64\"\nunix\n",
        )
    }

    #[test]
    fn the_target_decides_its_own_cfgs_and_leaves_features_open() {
        let t = x86_64_linux();
        assert_eq!(
            pred("#[cfg(target_arch = \"aarch64\")]").decide(&t),
            Pred::False
        );
        assert_eq!(
            pred("#[cfg(all(unix, target_pointer_width = \"64\"))]").decide(&t),
            Pred::True
        );
        assert_eq!(pred("#[cfg(windows)]").decide(&t), Pred::False);
        assert_eq!(pred("#[cfg(not(test))]").decide(&t), Pred::True);
        assert_eq!(
            pred("#[cfg(any(feature = \"std\", windows))]").decide(&t),
            Pred::Any(vec![Pred::Atom("feature".into(), Some("std".into()))])
        );
        // Two attributes: both must hold.
        assert_eq!(
            pred("#[cfg(unix)] #[cfg(target_os = \"macos\")]").decide(&t),
            Pred::False
        );
        // An unknown target decides nothing of its own.
        assert_eq!(
            pred("#[cfg(unix)]").decide(&Target::default()),
            Pred::Atom("unix".into(), None)
        );
    }

    #[test]
    fn calls_in_alternatives_count_once() {
        let t = x86_64_linux();
        // httparse's simd modules: runtime detection, or one of two compile-time choices, or
        // aarch64.
        let runtime = pred("#[cfg(all(simd, not(any(sse42, avx2)), target_arch = \"x86_64\"))]");
        let sse = pred("#[cfg(all(simd, sse42, not(avx2), target_arch = \"x86_64\"))]");
        let avx = pred("#[cfg(all(simd, avx2, target_arch = \"x86_64\"))]");
        let neon = pred("#[cfg(all(simd, target_arch = \"aarch64\"))]");
        let calls: Vec<Pred> = [runtime, sse, avx, neon]
            .iter()
            .map(|p| p.decide(&t))
            .collect();
        assert_eq!(most(calls.iter().map(|p| (p, 1))), 1);
        // Without cfgs every call counts; a feature and its negation exclude each other.
        let (on, off) = (
            pred("#[cfg(feature = \"safe\")]").decide(&t),
            pred("#[cfg(not(feature = \"safe\"))]").decide(&t),
        );
        assert_eq!(most([(&Pred::True, 2), (&on, 1), (&off, 3)]), 5);
        // Two features can both be on.
        let other = pred("#[cfg(feature = \"fast\")]").decide(&t);
        assert_eq!(most([(&on, 1), (&other, 1)]), 2);
    }
}
