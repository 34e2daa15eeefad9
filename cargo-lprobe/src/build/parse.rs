//! How a source file is parsed.
//!
//! Most files are parsed whole by syn. A file that cannot hold a function (no `fn` anywhere in
//! its text, comments included) holds no probe site either: what the build needs from it is
//! its module declarations, `use`s, macros and attributes. Such files are mostly data
//! (generated Unicode tables, lookup arrays: unicode-width's 1.4 MB test table took a quarter
//! of a second to parse, more than its crate's plain build), so their `static` and `const`
//! items are kept as tokens ([`syn::Item::Verbatim`]) instead of being parsed as expressions:
//! every other item is parsed as usual, so the module walk, the name resolution and the
//! rewriter see the same file they would have seen.

use proc_macro2::{TokenStream, TokenTree};
use syn::parse::{ParseStream, Parser};

/// The file's syntax tree: [`syn::parse_file`], with the data items of a file without
/// functions left as tokens (see the module's comment). Errors are syn's.
pub fn file(text: &str) -> syn::Result<syn::File> {
    if text.contains("fn") || text.starts_with('\u{feff}') || shebang(text) {
        return syn::parse_file(text);
    }
    let tokens: TokenStream = text.parse()?;
    data_file.parse2(tokens)
}

/// Whether the text starts with a `#!` line that is not an inner attribute (syn's parser
/// takes it off first; the shallow one does not, so such files go to syn).
fn shebang(text: &str) -> bool {
    text.starts_with("#!") && !text[2..].trim_start().starts_with('[')
}

fn data_file(input: ParseStream) -> syn::Result<syn::File> {
    let attrs = input.call(syn::Attribute::parse_inner)?;
    let mut items = Vec::new();
    while !input.is_empty() {
        if is_data_item(input) {
            items.push(syn::Item::Verbatim(through_semicolon(input)?));
        } else {
            items.push(input.parse()?);
        }
    }
    Ok(syn::File {
        shebang: None,
        attrs,
        items,
    })
}

/// Whether the next item is a `static` or a `const` (after its attributes and visibility).
fn is_data_item(input: ParseStream) -> bool {
    let fork = input.fork();
    if fork.call(syn::Attribute::parse_outer).is_err() || fork.parse::<syn::Visibility>().is_err() {
        return false;
    }
    // Not `const { … }`: an inline const block, not an item (syn reports it).
    (fork.peek(syn::Token![static]) || fork.peek(syn::Token![const]))
        && !fork.peek2(syn::token::Brace)
}

/// The tokens of the next item, through the `;` that ends it at the top level (an item's
/// brackets, braces and parentheses are single token trees, so the first `;` outside them
/// ends it).
fn through_semicolon(input: ParseStream) -> syn::Result<TokenStream> {
    input.step(|cursor| {
        let mut rest = *cursor;
        let mut tokens = TokenStream::new();
        while let Some((tt, next)) = rest.token_tree() {
            let end = matches!(&tt, TokenTree::Punct(p) if p.as_char() == ';');
            tokens.extend([tt]);
            rest = next;
            if end {
                return Ok((tokens, rest));
            }
        }
        Err(cursor.error("expected `;` after a static or const item"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The items of a file as syn's own parser and as [`file`] see them, side by side.
    fn both(text: &str) -> (syn::File, syn::File) {
        (
            syn::parse_file(text).expect("syn parses"),
            file(text).expect("parses"),
        )
    }

    #[test]
    fn data_items_are_kept_as_tokens_and_the_rest_is_parsed() {
        let text = "//! Tables.\n#![allow(dead_code)]\nuse crate::width::Info;\n\
            #[path = \"x/more.rs\"]\npub(crate) mod more;\nmod inline { pub use super::Info; }\n\
            /// Doc.\n#[rustfmt::skip]\npub static TABLE: [(u32, &str); 2] = [(1, \"a;b\"), (2, \"{\")];\n\
            const N: usize = { 3 };\nmacro_rules! m { () => {} }\nm!();\n\
            pub struct S { a: [u8; 4] }\nimpl S { const K: u8 = 1; }\n";
        let (whole, shallow) = both(text);
        assert_eq!(shallow.attrs.len(), whole.attrs.len());
        assert_eq!(shallow.items.len(), whole.items.len());
        for (s, w) in shallow.items.iter().zip(&whole.items) {
            match (s, w) {
                (syn::Item::Verbatim(tokens), syn::Item::Static(_) | syn::Item::Const(_)) => {
                    // The same tokens, `;` included.
                    assert_eq!(tokens.to_string(), quote::quote!(#w).to_string());
                }
                _ => assert_eq!(s, w),
            }
        }
        assert!(matches!(shallow.items[3], syn::Item::Verbatim(_)));
        // Spans still point into the file (the walk and the rewriter use lines).
        let syn::Item::Verbatim(tokens) = &shallow.items[3] else {
            unreachable!()
        };
        let first = tokens.clone().into_iter().next().expect("tokens");
        assert_eq!(first.span().start().line, 7);
    }

    #[test]
    fn files_with_functions_or_a_shebang_are_parsed_whole() {
        for text in [
            "static A: u8 = 1;\nfn f() {}\n",
            "// fn in a comment\nstatic A: u8 = 1;\n",
            "#!/usr/bin/env run-cargo-script\nstatic A: u8 = 1;\n",
            "\u{feff}static A: u8 = 1;\n",
        ] {
            let parsed = file(text).expect("parses");
            assert!(
                parsed
                    .items
                    .iter()
                    .all(|i| !matches!(i, syn::Item::Verbatim(_))),
                "{text}"
            );
        }
    }

    #[test]
    fn errors_in_data_files_are_still_errors() {
        for text in [
            "static A: u8 = 1\n",
            "pub static A: [u8; 2] = [1, 2];\nstruct\n",
            "static A: [u8; 2] = [1, 2;\n",
        ] {
            assert!(file(text).is_err(), "{text}");
        }
    }
}
