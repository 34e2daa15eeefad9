//! Skip patterns: the functions and files a user builds without probe sites.
//!
//! They come from `--skip PATTERN,…`, `--skip-from FILE` (one pattern per line, `#` starts a
//! comment; what `lprobe hot` prints), and `skip = […]` / `skip-from = "FILE"` under
//! `[package.metadata.lprobe]` or `[workspace.metadata.lprobe]`; all of them add up. A pattern
//! is either `fn:PATH` (a function path where `*` matches anything, matched like `lprobe arm
//! fn:…` matches: the whole path or a suffix starting at a `::`), or a source file (`src/x.rs`,
//! `src/tables/*`, `src/tables/`: from the workspace or package root, or a path suffix).
//!
//! Skipping is for code so hot that even a dormant check costs too much there (a tiny function
//! called millions of times a second): its functions are listed in the site table as built
//! without sites, with the pattern as the reason, so arming one says why.

use std::cell::Cell;
use std::path::Path;
use std::rc::Rc;

use anyhow::{bail, Context, Result};
use probe_runtime::location::{fn_matches, glob};

use crate::build::workspace::Skips;

/// What a pattern names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `fn:PATH`: the functions whose path matches.
    Fn(String),
    /// A file path or glob: every function in the matching files.
    File(String),
}

/// One skip pattern.
#[derive(Clone, Debug)]
pub struct Pattern {
    pub target: Target,
    /// As written (`fn:regex_syntax::hir::*`, `src/tables/*`).
    pub text: String,
    /// Where it was written, for messages (`--skip`, `lprobe.skip:3`,
    /// `[package.metadata.lprobe] of app`).
    pub origin: String,
    /// Whether it matched anything in this build (patterns that match nothing are reported).
    used: Cell<bool>,
}

/// How the reason of a function left out by a pattern starts (see [`Pattern::reason`]).
const REASON: &str = "skipped by ";

impl Pattern {
    /// The reason a function left out by this pattern shows (`lprobe arm` on it, `-v`,
    /// `--report json`).
    pub fn reason(&self) -> String {
        format!("{REASON}{} ({})", self.text, self.origin)
    }
}

/// Whether `why` (a function's reason for having no sites) names a skip pattern.
pub fn is_pattern_reason(why: &str) -> bool {
    why.starts_with(REASON)
}

/// The patterns of `lists` (one per package, sharing the common ones) that matched nothing,
/// each once.
pub fn unused(lists: &[SkipList]) -> impl Iterator<Item = &Pattern> {
    let mut seen: Vec<&Rc<Pattern>> = Vec::new();
    for p in lists.iter().flat_map(|l| &l.patterns) {
        if !p.used.get() && !seen.iter().any(|q| Rc::ptr_eq(p, q)) {
            seen.push(p);
        }
    }
    seen.into_iter().map(|p| p.as_ref())
}

/// Parses one pattern; `origin` says where it was written.
pub fn parse_pattern(s: &str, origin: &str) -> Result<Pattern> {
    let s = s.trim();
    let bad = |why: &str| -> Result<Pattern> {
        bail!("{origin}: invalid skip pattern '{s}': {why}");
    };
    if s.is_empty() {
        return bad("it is empty");
    }
    if s.chars().any(char::is_whitespace) {
        return bad("patterns contain no spaces (one per line in a --skip-from file, comma-separated in --skip)");
    }
    let target = if let Some(path) = s.strip_prefix("fn:") {
        if path.is_empty() || path.trim_matches(|c| c == '*' || c == ':').is_empty() {
            return bad("name a function path after fn:, e.g. fn:my_crate::parser::peek or fn:my_crate::tables::*");
        }
        if path.contains('/') {
            return bad("a function path uses '::', not '/' (a file pattern has no fn: prefix)");
        }
        if path.ends_with("::")
            || path.starts_with("::")
            || path.contains("::::")
            || path.replace("::", "").contains(':')
        {
            return bad("a function path has a name on each side of every '::', e.g. fn:my_crate::parser::peek");
        }
        Target::Fn(path.to_owned())
    } else {
        if s.contains("::") {
            return bad(&format!("this looks like a function path: write fn:{s}"));
        }
        let mut file = s.to_owned();
        while file.contains("//") {
            file = file.replace("//", "/");
        }
        let file = file.trim_start_matches("./").to_owned();
        let file = match file.strip_suffix('/') {
            Some(dir) => format!("{dir}/*"),
            None => file,
        };
        if !(file.ends_with(".rs") || file.contains('*')) {
            return bad("expected fn:PATH for functions, or a source file: src/x.rs, src/tables/*.rs or a directory src/tables/");
        }
        if matches!(file.trim_matches(|c| c == '*' || c == '/'), "" | ".rs") {
            return bad(
                "it names every source file: name a directory or files (src/tables/, src/gen_*.rs)",
            );
        }
        Target::File(file)
    };
    Ok(Pattern {
        target,
        text: s.to_owned(),
        origin: origin.to_owned(),
        used: Cell::new(false),
    })
}

/// Parses a comma-separated list (`--skip fn:a::*,src/tables.rs`).
pub fn parse_list(list: &str, origin: &str) -> Result<Vec<Pattern>> {
    list.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| parse_pattern(p, origin))
        .collect()
}

/// Reads a skip file: one pattern per line; blank lines and everything after a `#` are ignored
/// (so `lprobe hot`'s output can be used as it is). `shown` is how messages name the file.
pub fn read_file(path: &Path, shown: &str) -> Result<Vec<Pattern>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading the skip file {shown}"))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = strip_comment(line).trim();
        if !line.is_empty() {
            out.push(parse_pattern(line, &format!("{shown}:{}", i + 1))?);
        }
    }
    Ok(out)
}

/// Reads the patterns of `--skip` lists and `--skip-from` files (`cwd`: where relative file
/// names start) or of a manifest's [`Skips`] (`origin`: which manifest table, `root`: where
/// the file names shown in messages start).
pub fn load(
    lists: &[String],
    files: &[&Path],
    origin: &str,
    cwd: &Path,
    root: &Path,
) -> Result<Vec<Pattern>> {
    let mut out = Vec::new();
    for l in lists {
        out.extend(parse_list(l, origin)?);
    }
    for f in files {
        let shown = f.strip_prefix(root).unwrap_or(f).display().to_string();
        out.extend(read_file(&cwd.join(f), &shown)?);
    }
    Ok(out)
}

/// The patterns of a manifest's metadata table.
pub fn from_metadata(skips: &Skips, table: &str, root: &Path) -> Result<Vec<Pattern>> {
    let files: Vec<&Path> = skips.from.iter().map(|p| p.as_path()).collect();
    load(
        &skips.patterns,
        &files,
        &format!("skip in {table}"),
        root,
        root,
    )
}

/// `line` without its comment: from a `#` at the start of the line or after whitespace (a
/// function path may hold a `#` itself: `fn:app::P::r#type`).
fn strip_comment(line: &str) -> &str {
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        if c == '#' && prev_space {
            return &line[..i];
        }
        prev_space = c.is_whitespace();
    }
    line
}

/// The patterns that apply to one package: the command line's and the workspace's (shared by
/// every package, so a pattern is reported as unused only when no package used it) and its own.
#[derive(Clone, Debug, Default)]
pub struct SkipList {
    pub patterns: Vec<Rc<Pattern>>,
}

impl SkipList {
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The first file pattern matching the file at `ws_rel` (from the workspace root) /
    /// `pkg_rel` (from its package's root); every matching one counts as used.
    pub fn file(&self, ws_rel: &str, pkg_rel: &str) -> Option<&Pattern> {
        self.first_marking(|t| match t {
            Target::File(f) => {
                glob(f, ws_rel) || glob(f, pkg_rel) || glob(&format!("*/{f}"), ws_rel)
            }
            Target::Fn(_) => false,
        })
    }

    /// The first function pattern matching the function path `func`; every matching one
    /// counts as used.
    pub fn func(&self, func: &str) -> Option<&Pattern> {
        self.first_marking(|t| match t {
            Target::Fn(f) => fn_matches(f, func),
            Target::File(_) => false,
        })
    }

    fn first_marking(&self, matches: impl Fn(&Target) -> bool) -> Option<&Pattern> {
        let mut first = None;
        for p in &self.patterns {
            if matches(&p.target) {
                p.used.set(true);
                first.get_or_insert(p.as_ref());
            }
        }
        first
    }

    /// A text naming the patterns in order with where each was written, for the build
    /// stamp: the site set depends on the patterns, and the reasons in the site table on
    /// their order and origins.
    pub fn key(&self) -> String {
        let reasons: Vec<String> = self.patterns.iter().map(|p| p.reason()).collect();
        reasons.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(pats: &[&str]) -> SkipList {
        SkipList {
            patterns: pats
                .iter()
                .map(|p| Rc::new(parse_pattern(p, "--skip").expect("valid")))
                .collect(),
        }
    }

    #[test]
    fn function_patterns_match_like_arming_does() {
        let l = list(&["fn:hir::interval::*", "fn:Parser::peek"]);
        let hit = l.func("regex_syntax::hir::interval::IntervalSet::push");
        assert_eq!(hit.map(|p| p.text.as_str()), Some("fn:hir::interval::*"));
        assert!(l.func("regex_syntax::ast::parse::Parser::peek").is_some());
        // A suffix starts at a `::`, never inside a name.
        assert!(l.func("regex_syntax::ast::parse::MyParser::peek").is_none());
        assert!(l
            .func("regex_syntax::ast::parse::Parser::peek_space")
            .is_none());
        assert_eq!(
            hit.map(Pattern::reason).as_deref(),
            Some("skipped by fn:hir::interval::* (--skip)")
        );
    }

    #[test]
    fn file_patterns_match_from_either_root_or_as_a_suffix() {
        let l = list(&["src/unicode_tables/", "parse.rs", "core/src/gen_*.rs"]);
        assert!(l
            .file(
                "regex-syntax/src/unicode_tables/perl.rs",
                "src/unicode_tables/perl.rs"
            )
            .is_some());
        assert!(l.file("app/src/ast/parse.rs", "src/ast/parse.rs").is_some());
        assert!(l
            .file("app/src/ast/parser.rs", "src/ast/parser.rs")
            .is_none());
        assert!(l
            .file("core/src/gen_tables.rs", "src/gen_tables.rs")
            .is_some());
        assert!(l.file("app/src/main.rs", "src/main.rs").is_none());
        // Function patterns never match files, and the other way round.
        assert!(list(&["fn:app::*"])
            .file("src/main.rs", "src/main.rs")
            .is_none());
        assert!(list(&["src/*"]).func("app::main").is_none());
    }

    #[test]
    fn patterns_that_matched_nothing_are_listed() {
        let l = list(&["fn:app::hot", "fn:app::gone", "src/old.rs"]);
        assert!(l.func("app::hot").is_some());
        // Shared patterns are reported once, and only when no package used them.
        let other = SkipList {
            patterns: vec![l.patterns[1].clone(), l.patterns[2].clone()],
        };
        assert!(other.file("p/src/old.rs", "src/old.rs").is_some());
        let lists = [l, other];
        let unused: Vec<&str> = unused(&lists).map(|p| p.text.as_str()).collect();
        assert_eq!(unused, ["fn:app::gone"]);
    }

    #[test]
    fn bad_patterns_say_what_to_write() {
        let err = |s: &str| format!("{:#}", parse_pattern(s, "lprobe.skip:3").expect_err(s));
        assert!(err("app::parser::peek").contains("write fn:app::parser::peek"));
        assert!(err("fn:").contains("name a function path"));
        assert!(err("fn:*").contains("name a function path"));
        assert!(err("fn:src/x.rs").contains("uses '::'"));
        assert!(err("src/x.rs fn:y").contains("no spaces"));
        assert!(err("Makefile").contains("expected fn:PATH"));
        assert!(err("Makefile").starts_with("lprobe.skip:3: invalid skip pattern 'Makefile'"));
        assert!(err("fn:app::P::").contains("a name on each side"));
        assert!(err("fn:::peek").contains("a name on each side"));
        assert!(err("fn:app:peek").contains("a name on each side"));
        for all in ["*", "*.rs", "*/", "**/*.rs"] {
            assert!(err(all).contains("names every source file"), "{all}");
        }
        assert_eq!(
            parse_pattern(".//src//gen/", "--skip").expect("ok").target,
            Target::File("src/gen/*".into())
        );
        assert_eq!(
            parse_list(" fn:a::b , ,src/t.rs", "--skip")
                .expect("valid")
                .iter()
                .map(|p| p.target.clone())
                .collect::<Vec<_>>(),
            [Target::Fn("a::b".into()), Target::File("src/t.rs".into())]
        );
    }

    #[test]
    fn skip_files_take_one_pattern_per_line_and_ignore_comments() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("lprobe.skip");
        std::fs::write(
            &path,
            "# lprobe hot: pid 1\n\nfn:app::peek   # 1,000 hits\n  src/tables/  \nfn:app::P::r#type # raw name\n",
        )
        .expect("write");
        let pats = read_file(&path, "lprobe.skip").expect("reads");
        let texts: Vec<(&str, &str)> = pats
            .iter()
            .map(|p| (p.text.as_str(), p.origin.as_str()))
            .collect();
        assert_eq!(
            texts,
            [
                ("fn:app::peek", "lprobe.skip:3"),
                ("src/tables/", "lprobe.skip:4"),
                ("fn:app::P::r#type", "lprobe.skip:5")
            ]
        );
        std::fs::write(&path, "fn:ok\nnot a pattern\n").expect("write");
        let e = format!(
            "{:#}",
            read_file(&path, "lprobe.skip").expect_err("bad line")
        );
        assert!(e.starts_with("lprobe.skip:2: invalid skip pattern"), "{e}");
        let e = format!(
            "{:#}",
            read_file(&dir.path().join("nope"), "nope").expect_err("missing")
        );
        assert!(e.contains("reading the skip file nope"), "{e}");
    }

    #[test]
    fn the_key_follows_patterns_order_and_origins() {
        assert_eq!(list(&["fn:a", "fn:b"]).key(), list(&["fn:a", "fn:b"]).key());
        assert_ne!(list(&["fn:a"]).key(), list(&["fn:b"]).key());
        // The first match gives the reason the site table shows.
        assert_ne!(list(&["fn:a", "fn:b"]).key(), list(&["fn:b", "fn:a"]).key());
        let moved = SkipList {
            patterns: vec![Rc::new(parse_pattern("fn:a", "hot.skip:4").expect("ok"))],
        };
        let before = SkipList {
            patterns: vec![Rc::new(parse_pattern("fn:a", "hot.skip:3").expect("ok"))],
        };
        assert_ne!(moved.key(), before.key());
    }

    #[test]
    fn every_matching_pattern_counts_as_used() {
        let l = list(&["fn:app::P::*", "fn:peek", "src/tables.rs", "src/*"]);
        assert_eq!(
            l.func("app::P::peek").map(|p| p.text.as_str()),
            Some("fn:app::P::*")
        );
        assert!(l.file("app/src/tables.rs", "src/tables.rs").is_some());
        let lists = [l];
        assert_eq!(unused(&lists).count(), 0);
    }
}
