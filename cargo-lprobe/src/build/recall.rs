//! The call by which a function times itself: `--duration` without a guard in the body.
//!
//! An entry site is one check of the function's flag. When a `--duration` probe is armed
//! there, the site's cold call (`enter`) returns a start time and the generated code calls the
//! function again with the same arguments, through `again` (which times the call), and returns
//! that call's result. The call is a closure handed to `again`, not a direct call: a function
//! that calls itself is recursive to LLVM, which then never inlines it.
//!
//! ```text
//! fn f(&self, n: u32) -> u8 { … if __lprobe_fn { let t = enter(3, &[…]); if t != 0 { return again(3, t, move || Self::f(self, n)); } } BODY }
//! ```
//!
//! Where the arguments allow it, the two calls are one ([`OneCall`]): `recall(move |p| if
//! p.on(3, enter(…)) { Some(Self::f(self, n)) } else { None })`.
//!
//! The second call finds itself announced (`probe_runtime::enter`) and runs the body. Only
//! functions whose body is written once get this (a body written twice is timed in its
//! instrumented copy, see `rewrite`), and of those only the ones without a timing guard: small
//! ones and those marked `#[inline]` (a guard's drop on every return path kept them from being
//! inlined, so they used to be untimed). The others keep the guard: a second call site costs a function that is called once its
//! inlining (LLVM inlines a local function with one call site whatever its size; measured on
//! bench-mix, where `word_counts` and `parse_pairs` stopped being inlined: 1.028x -> 1.071x).
//! So the dormant path of a small function is one flag check, and every function with an
//! entry site can be timed.
//!
//! This module writes that call from the signature, or says why it cannot: an `async fn` (a
//! future cannot contain itself without a box), a parameter bound by a pattern (`(a, b): (u8,
//! u8)`: the value is gone), an attribute that may rewrite the function (a proc macro), a
//! function returning `!`. Small ones among them stay untimed, as before.

use quote::ToTokens;

/// What a function item belongs to: where the call names it from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// A module: `self::f`.
    Module,
    /// A block inside a function body: `f`.
    Block,
    /// An inherent `impl`: `Self::f`.
    Inherent,
    /// `impl Trait for T`: `<Self as Trait>::f`, with the trait path as written.
    TraitImpl(String),
    /// A trait's provided method: `<Self as Trait<P…>>::f`.
    TraitDef(String),
}

impl Owner {
    /// The owner of the methods of `impl`.
    pub fn of_impl(i: &syn::ItemImpl) -> Owner {
        match &i.trait_ {
            Some((None, path, _)) => Owner::TraitImpl(one_line(path.to_token_stream())),
            // `impl !Trait for T` has no methods to call.
            Some((Some(_), _, _)) => Owner::Inherent,
            None => Owner::Inherent,
        }
    }

    /// The owner of a trait's provided methods: the trait with its own parameters.
    pub fn of_trait(t: &syn::ItemTrait) -> Owner {
        let params: Vec<String> = t
            .generics
            .params
            .iter()
            .map(|p| match p {
                syn::GenericParam::Lifetime(l) => l.lifetime.to_string(),
                syn::GenericParam::Type(t) => t.ident.to_string(),
                syn::GenericParam::Const(c) => c.ident.to_string(),
            })
            .collect();
        let name = if params.is_empty() {
            t.ident.to_string()
        } else {
            format!("{}<{}>", t.ident, params.join(", "))
        };
        Owner::TraitDef(name)
    }
}

/// Attributes that do not change what a call of the function does (`cfg_attr` counts when
/// everything it adds is one of these). Any other attribute may be a proc macro that rewrites
/// the function, so the function keeps the guard.
pub(crate) const PLAIN_ATTRS: &[&str] = &[
    "allow",
    "automatically_derived",
    "bench",
    "cfg",
    "cold",
    "coverage",
    "deny",
    "deprecated",
    "doc",
    "expect",
    "export_name",
    "forbid",
    "ignore",
    "inline",
    "link_section",
    "must_use",
    "no_mangle",
    "optimize",
    "should_panic",
    "target_feature",
    "test",
    "track_caller",
    "unsafe",
    "warn",
];

/// A path whose first segment is a tool (`#[rustfmt::skip]`, `#[clippy::…]`).
fn tool_attr(path: &syn::Path) -> bool {
    path.segments.len() > 1
        && path
            .segments
            .first()
            .is_some_and(|s| s.ident == "rustfmt" || s.ident == "clippy")
}

fn plain_attr(a: &syn::Attribute) -> bool {
    attr_within(a, |name| PLAIN_ATTRS.contains(&name))
}

/// Whether every attribute `a` applies is a tool's (`#[rustfmt::skip]`) or one whose name
/// `allowed` accepts: `a` itself, or each `A, B…` of `cfg_attr(PREDICATE, A, B…)` (a
/// `cfg_attr` that does not parse is not).
pub(crate) fn attr_within(a: &syn::Attribute, allowed: impl Fn(&str) -> bool) -> bool {
    let path = a.path();
    if tool_attr(path) {
        return true;
    }
    let Some(name) = path.get_ident().map(|i| i.to_string()) else {
        return false;
    };
    if name != "cfg_attr" {
        return allowed(&name);
    }
    let syn::Meta::List(list) = &a.meta else {
        return false;
    };
    let parsed = list.parse_args_with(
        syn::punctuated::Punctuated::<syn::Meta, syn::Token![,]>::parse_terminated,
    );
    let Ok(metas) = parsed else {
        return false;
    };
    metas.iter().skip(1).all(|m| {
        tool_attr(m.path())
            || m.path()
                .get_ident()
                .is_some_and(|i| allowed(&i.to_string()))
    })
}

/// The call of the function `sig` (with `attrs`, owned by `owner`) with its own arguments,
/// as an expression, or `None` when it has none (see the module docs).
pub fn call(owner: &Owner, attrs: &[syn::Attribute], sig: &syn::Signature) -> Option<String> {
    call_as(owner, attrs, sig, "self")
}

/// The name a `&mut self` receiver is reborrowed as in the one-call form ([`OneCall`]).
pub const SELF_ALIAS: &str = "__lprobe_self";

/// An entry site's one cold call (x86-64: `extern "win64-unwind"`, which preserves `rdi` and
/// `rsi` as well, so the arguments of most small functions stay in the registers they came
/// in): the flag is checked, then
///
/// ```text
/// if let Some(r) = recall(move |p| if p.on(3, enter_t(3, (n,))) { Some(Self::f(self, n)) } else { None }) { return r }
/// ```
///
/// runs the entry's probes and, when a `--duration` probe times the call, calls the function
/// again inside the same cold call. Against the two-call form (`enter_t`, then `again` when
/// timed) the dormant function holds one call where it held two and a branch between them,
/// which LLVM's inliner counts (`scripts/site-cost.sh`; BENCHMARKS.md, twenty-fourth and
/// twenty-fifth sessions). The closure moves its captures, so it takes only what can be moved
/// and used again after it: shared references, raw pointers and primitives are copied, a
/// `&mut` is reborrowed first (`let v = &mut *v;`, `self` as [`SELF_ALIAS`]). A `&mut`
/// argument and a borrowed return would make the return conditional on a borrow that the
/// body goes on to use, which the borrow checker rejects: such functions keep the two calls
/// (and so does any function where the one call does not compile: `repair`, and one whose
/// `&mut` argument the entry captures as a copy of its target: `rewrite`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OneCall {
    /// Reborrows of `&mut` arguments, each `let … ;`, ahead of the call (may be empty).
    pub lets: String,
    /// The call of the function again, through the reborrows.
    pub call: String,
    /// `self` is reborrowed as [`SELF_ALIAS`]: captures of `self` name that.
    pub self_alias: bool,
    /// The arguments that are references or raw pointers (`self` too): the closure holds
    /// each, so its target is an address that escapes in the cold call (see `rewrite`).
    pub pointers: Vec<String>,
}

/// Types passed by copy into the one call's closure.
const PRIMITIVES: &[&str] = &[
    "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize", "f32",
    "f64", "bool", "char",
];

/// The one-call form of `sig`'s entry site, or `None` when it keeps two calls (see
/// [`OneCall`]); only for a function that has a [`call`].
pub fn one_call(owner: &Owner, attrs: &[syn::Attribute], sig: &syn::Signature) -> Option<OneCall> {
    let mut lets = String::new();
    let mut self_alias = false;
    let mut mut_arg = false;
    let mut pointers = Vec::new();
    for input in &sig.inputs {
        match input {
            syn::FnArg::Receiver(r) => match (&r.reference, r.colon_token) {
                (Some(_), None) if r.mutability.is_some() => {
                    pointers.push("self".to_owned());
                    self_alias = true;
                    mut_arg = true;
                    lets.push_str(&format!("let {SELF_ALIAS} = &mut *self; "));
                }
                (Some(_), None) => pointers.push("self".to_owned()),
                _ => return None,
            },
            syn::FnArg::Typed(t) => {
                let syn::Pat::Ident(p) = &*t.pat else {
                    return None;
                };
                match &*t.ty {
                    syn::Type::Reference(r) if r.mutability.is_some() => {
                        mut_arg = true;
                        let name = &p.ident;
                        lets.push_str(&format!("let {name} = &mut *{name}; "));
                        pointers.push(name.to_string());
                    }
                    syn::Type::Reference(_) | syn::Type::Ptr(_) => {
                        pointers.push(p.ident.to_string())
                    }
                    syn::Type::Path(tp)
                        if tp.qself.is_none()
                            && tp
                                .path
                                .get_ident()
                                .is_some_and(|i| PRIMITIVES.contains(&i.to_string().as_str())) => {}
                    _ => return None,
                }
            }
        }
    }
    if mut_arg {
        if let syn::ReturnType::Type(_, t) = &sig.output {
            if borrows(t.to_token_stream()) {
                return None;
            }
        }
    }
    let call = call_as(
        owner,
        attrs,
        sig,
        if self_alias { SELF_ALIAS } else { "self" },
    )?;
    Some(OneCall {
        lets: lets.trim_end().to_owned(),
        call,
        self_alias,
        pointers,
    })
}

/// Whether a type names a lifetime or a reference (at any depth).
fn borrows(ts: proc_macro2::TokenStream) -> bool {
    ts.into_iter().any(|tt| match tt {
        proc_macro2::TokenTree::Punct(p) => p.as_char() == '&' || p.as_char() == '\'',
        proc_macro2::TokenTree::Group(g) => borrows(g.stream()),
        _ => false,
    })
}

/// [`call`] with the receiver passed as `receiver`.
fn call_as(
    owner: &Owner,
    attrs: &[syn::Attribute],
    sig: &syn::Signature,
    receiver: &str,
) -> Option<String> {
    // A closure returning `!` does not coerce to the function's `!`.
    let never =
        matches!(&sig.output, syn::ReturnType::Type(_, t) if matches!(**t, syn::Type::Never(_)));
    if sig.asyncness.is_some() || sig.variadic.is_some() || never || !attrs.iter().all(plain_attr) {
        return None;
    }
    let mut args = Vec::new();
    let mut impl_trait_arg = false;
    for input in &sig.inputs {
        match input {
            syn::FnArg::Receiver(_) => args.push(receiver.to_owned()),
            syn::FnArg::Typed(t) => {
                let syn::Pat::Ident(p) = &*t.pat else {
                    return None;
                };
                if p.by_ref.is_some() || p.subpat.is_some() {
                    return None;
                }
                args.push(p.ident.to_string());
                impl_trait_arg |= mentions_impl(t.ty.to_token_stream());
            }
        }
    }
    // The function's own type and const parameters, unless an `impl Trait` parameter forbids
    // naming them (then they are inferred from the arguments and the return type).
    let params: Vec<String> = sig
        .generics
        .params
        .iter()
        .filter_map(|p| match p {
            syn::GenericParam::Lifetime(_) => None,
            syn::GenericParam::Type(t) => Some(t.ident.to_string()),
            syn::GenericParam::Const(c) => Some(c.ident.to_string()),
        })
        .collect();
    let turbofish = if params.is_empty() || impl_trait_arg {
        String::new()
    } else {
        format!("::<{}>", params.join(", "))
    };
    let name = sig.ident.to_string();
    let path = match owner {
        Owner::Module => format!("self::{name}"),
        Owner::Block => name,
        Owner::Inherent => format!("Self::{name}"),
        Owner::TraitImpl(t) | Owner::TraitDef(t) => format!("<Self as {t}>::{name}"),
    };
    let call = format!("{path}{turbofish}({})", args.join(", "));
    Some(if sig.unsafety.is_some() {
        format!("unsafe {{ {call} }}")
    } else {
        call
    })
}

/// Whether a type mentions `impl` (an `impl Trait` argument, at any depth).
pub fn mentions_impl(ts: proc_macro2::TokenStream) -> bool {
    ts.into_iter().any(|tt| match tt {
        proc_macro2::TokenTree::Ident(i) => i == "impl",
        proc_macro2::TokenTree::Group(g) => mentions_impl(g.stream()),
        _ => false,
    })
}

/// Token text on one line (generated code never contains a newline).
fn one_line(ts: proc_macro2::TokenStream) -> String {
    ts.to_string().replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `what` of the function `src`, as if owned by `owner`.
    fn of<T>(
        what: fn(&Owner, &[syn::Attribute], &syn::Signature) -> Option<T>,
        owner: &Owner,
        src: &str,
    ) -> Option<T> {
        let f: syn::ItemFn = syn::parse_str(src).expect("test source parses");
        what(owner, &f.attrs, &f.sig)
    }

    fn call_of(owner: &Owner, src: &str) -> Option<String> {
        of(call, owner, src)
    }

    #[test]
    fn the_call_names_the_function_from_where_it_is_defined() {
        let m = Owner::Module;
        assert_eq!(
            call_of(&m, "fn f(a: u8, mut b: String) {}").as_deref(),
            Some("self::f(a, b)")
        );
        assert_eq!(
            call_of(&Owner::Block, "fn g() -> u8 { 1 }").as_deref(),
            Some("g()")
        );
        assert_eq!(
            call_of(&Owner::Inherent, "fn len(&self) -> usize { 0 }").as_deref(),
            Some("Self::len(self)")
        );
        let t: syn::ItemImpl =
            syn::parse_str("impl<T> fmt::Display for W<T> { fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { Ok(()) } }").expect("parses");
        let syn::ImplItem::Fn(f) = &t.items[0] else {
            panic!("a fn")
        };
        assert_eq!(
            call(&Owner::of_impl(&t), &f.attrs, &f.sig).as_deref(),
            Some("<Self as fmt :: Display>::fmt(self, f)")
        );
        let tr: syn::ItemTrait =
            syn::parse_str("trait Tr<'a, A, const N: usize> { fn get(&self) -> u8 { 0 } }")
                .expect("parses");
        assert_eq!(Owner::of_trait(&tr), Owner::TraitDef("Tr<'a, A, N>".into()));
    }

    #[test]
    fn generics_are_named_unless_an_impl_trait_argument_forbids_it() {
        let m = Owner::Module;
        assert_eq!(
            call_of(
                &m,
                "fn f<'a, T: Default, const N: usize>(x: &'a [T; N]) -> T { T::default() }"
            )
            .as_deref(),
            Some("self::f::<T, N>(x)")
        );
        assert_eq!(
            call_of(&m, "fn f<T>(x: T, w: &mut impl std::io::Write) {}").as_deref(),
            Some("self::f(x, w)")
        );
        assert_eq!(
            call_of(&m, "unsafe fn f(p: *const u8) -> u8 { *p }").as_deref(),
            Some("unsafe { self::f(p) }")
        );
    }

    fn one_call_of(owner: &Owner, src: &str) -> Option<OneCall> {
        of(one_call, owner, src)
    }

    #[test]
    fn the_one_call_moves_copies_and_reborrows_of_the_arguments() {
        let m = Owner::Inherent;
        let one = one_call_of(&m, "fn f(&mut self, s: &mut [u8], t: &str, p: *const u8, n: usize, c: char) -> bool { true }")
            .expect("eligible");
        assert_eq!(one.lets, "let __lprobe_self = &mut *self; let s = &mut *s;");
        assert_eq!(one.call, "Self::f(__lprobe_self, s, t, p, n, c)");
        assert!(one.self_alias);
        let one = one_call_of(&m, "fn len(&self) -> usize { 0 }").expect("eligible");
        assert_eq!(
            (one.lets.as_str(), one.call.as_str(), one.self_alias),
            ("", "Self::len(self)", false)
        );
        // A shared borrow may be returned; a `&mut` argument's may not (a conditional return
        // of a borrow the body goes on to use).
        assert!(one_call_of(&m, "fn get<'a>(&'a self, k: &str) -> &'a u8 { &0 }").is_some());
        for src in [
            "fn get(&mut self) -> &u8 { &0 }",
            "fn get<'a>(v: &'a mut Vec<u8>) -> Option<Iter<'a, u8>> { None }",
            // Moved by value, maybe not `Copy`.
            "fn f(self) -> u8 { 0 }",
            "fn f(self: Box<Self>) -> u8 { 0 }",
            "fn f(s: String) -> u8 { 0 }",
            "fn f<T>(t: T) -> u8 { 0 }",
            "fn f(t: impl Copy) -> u8 { 0 }",
            "fn f(t: Size) -> u8 { 0 }",
            // No call at all.
            "async fn f(a: u8) {}",
        ] {
            assert_eq!(one_call_of(&m, src), None, "{src}");
        }
    }

    #[test]
    fn functions_that_cannot_call_themselves_keep_the_guard() {
        let m = Owner::Module;
        for src in [
            "async fn f(a: u8) {}",
            "fn f(a: u8) -> ! { loop {} }",
            "fn f((a, b): (u8, u8)) {}",
            "fn f(_: u8) {}",
            "fn f(ref a: u8) {}",
            "#[tracing::instrument] fn f(a: u8) {}",
            "#[my_macro] fn f(a: u8) {}",
            "#[cfg_attr(feature = \"x\", my_macro)] fn f(a: u8) {}",
        ] {
            assert_eq!(call_of(&m, src), None, "{src}");
        }
        for src in [
            "#[inline] #[must_use] #[doc = \"x\"] #[allow(dead_code)] fn f(a: u8) {}",
            "#[cfg_attr(feature = \"x\", inline, must_use)] fn f(a: u8) {}",
            "#[rustfmt::skip] #[track_caller] fn f(a: u8) {}",
        ] {
            assert!(call_of(&m, src).is_some(), "{src}");
        }
    }
}
