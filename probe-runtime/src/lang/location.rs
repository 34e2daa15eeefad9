//! Resolves a probe location (`FILE:LINE` or `fn:PATTERN`) to the sites it names.
//!
//! `FILE` is a path from the workspace root or the package root, or any unambiguous suffix of
//! one (`main.rs`); `PATTERN` is a function path where `*` matches anything, matched against
//! the whole path or any suffix starting at a `::` (`fn:billing::*`).

use crate::{Site, Skipped, Table};

/// A resolved site.
pub type SiteRef = (&'static Table, u32);

/// Finds the sites `loc` names among `sites`; when it names none, says why, with the
/// functions built without sites (`skipped`) as the likely reason.
pub fn resolve(
    sites: &[(&'static Table, u32, &'static Site)],
    skipped: &[(&'static Table, &'static Skipped)],
    loc: &str,
) -> Result<Vec<SiteRef>, String> {
    if sites.is_empty() && skipped.is_empty() {
        return Err("this process has no probe sites".into());
    }
    if let Some(pat) = loc.strip_prefix("fn:") {
        let found: Vec<SiteRef> = sites
            .iter()
            .filter(|(_, _, s)| s.kind == crate::SiteKind::Entry && fn_matches(pat, s.func()))
            .map(|(t, i, _)| (*t, *i))
            .collect();
        if found.is_empty() {
            let mut without: Vec<&Skipped> = skipped
                .iter()
                .filter(|(_, s)| fn_matches(pat, s.func()))
                .map(|(_, s)| *s)
                .collect();
            // A function with nested functions is listed once per run of its own lines.
            without.dedup_by(|a, b| a.path() == b.path() && a.func() == b.func());
            if let Some(first) = without.first() {
                let shown: Vec<String> = without
                    .iter()
                    .take(3)
                    .map(|s| {
                        format!(
                            "{} at {}:{} ({})",
                            s.func(),
                            s.path(),
                            s.first_line,
                            s.why()
                        )
                    })
                    .collect();
                return Err(format!(
                    "'{pat}' matches only functions built without probe sites: {}{}{}",
                    shown.join(", "),
                    if without.len() > shown.len() {
                        ", …"
                    } else {
                        ""
                    },
                    remedy(first.why())
                ));
            }
            let mut examples: Vec<&str> = sites
                .iter()
                .filter(|(_, _, s)| s.kind == crate::SiteKind::Entry)
                .map(|(_, _, s)| s.func())
                .take(5)
                .collect();
            examples.dedup();
            return Err(format!(
                "no function matches '{pat}' (functions look like: {}); use '*' as a wildcard",
                examples.join(", ")
            ));
        }
        return Ok(found);
    }
    let Some((file, line)) = loc.rsplit_once(':') else {
        return Err(format!(
            "invalid location '{loc}': use FILE:LINE (e.g. src/main.rs:42) or fn:PATH (e.g. 'fn:my_crate::handler')"
        ));
    };
    let Ok(line) = line.trim().parse::<u32>() else {
        return Err(format!(
            "invalid line '{line}' in location '{loc}': use FILE:LINE (e.g. src/main.rs:42)"
        ));
    };
    // Files with sites first; a file whose functions all have none only when no file with
    // sites matches (so it cannot make a name ambiguous that used to resolve).
    let matching = |paths: &mut dyn Iterator<Item = (&'static Table, &'static str)>| {
        let mut found: Vec<&'static str> = paths
            .filter(|(t, path)| file_matches(file, t.dir, path))
            .map(|(_, path)| path)
            .collect();
        crate::small::sort_unique(&mut found);
        found
    };
    let mut files = matching(&mut sites.iter().map(|(t, _, s)| (*t, s.path())));
    if files.is_empty() {
        files = matching(&mut skipped.iter().map(|(t, s)| (*t, s.path())));
    }
    let path = match files.as_slice() {
        [one] => *one,
        [] => {
            let mut all: Vec<&str> = sites.iter().map(|(_, _, s)| s.path()).collect();
            crate::small::sort_unique(&mut all);
            let shown: Vec<&str> = all.iter().take(10).copied().collect();
            return Err(format!(
                "no instrumented file matches '{file}' (files with sites: {}{})",
                shown.join(", "),
                if all.len() > shown.len() { ", …" } else { "" }
            ));
        }
        many => {
            return Err(format!(
                "'{file}' is ambiguous: it matches {}; give more of the path",
                many.join(", ")
            ))
        }
    };
    let found: Vec<SiteRef> = sites
        .iter()
        .filter(|(_, _, s)| s.path() == path && s.line == line)
        .map(|(t, i, _)| (*t, *i))
        .collect();
    if !found.is_empty() {
        return Ok(found);
    }
    // Inside a function built without sites: the innermost one says why (unless it still has
    // sites: only its entry site was removed). Its rows leave out the lines of nested
    // functions that have sites, which are theirs.
    if let Some((_, s)) = skipped
        .iter()
        .filter(|(_, s)| s.path() == path && s.first_line <= line && line <= s.last_line)
        .min_by_key(|(_, s)| s.last_line - s.first_line)
        .filter(|(_, k)| {
            !sites.iter().any(|(_, _, s)| {
                s.path() == k.path()
                    && s.func() == k.func()
                    && (k.first_line..=k.last_line).contains(&s.line)
            })
        })
    {
        return Err(format!(
            "no probe site at {path}:{line}: it is in {}, which was built without probe sites ({}){}",
            s.func(),
            s.why(),
            remedy(s.why())
        ));
    }
    let before = sites
        .iter()
        .filter(|(_, _, s)| s.path() == path && s.line < line)
        .max_by_key(|(_, _, s)| s.line);
    let after = sites
        .iter()
        .filter(|(_, _, s)| s.path() == path && s.line > line)
        .min_by_key(|(_, _, s)| s.line);
    let near: Vec<String> = before
        .into_iter()
        .chain(after)
        .map(|(_, _, s)| format!("{}:{} ({} of {})", s.path(), s.line, s.kind(), s.func()))
        .collect();
    Err(format!(
        "no probe site at {path}:{line}; nearest: {}. To probe this line, rebuild with 'cargo lprobe build --lines {path}:{line}' (or --lines all)",
        if near.is_empty() { "none".to_owned() } else { near.join(", ") }
    ))
}

/// What to do about a function built without sites, by the reason it has none.
fn remedy(why: &str) -> &'static str {
    if why.contains("--skip-accessors") {
        "; to probe it, rebuild without --skip-accessors (and without skip-accessors = true in [package.metadata.lprobe] or [workspace.metadata.lprobe])"
    } else if why.starts_with("skipped by ") {
        "; to probe it, rebuild without that skip pattern (--skip, --skip-from, or skip / skip-from in [package.metadata.lprobe] or [workspace.metadata.lprobe])"
    } else if why.starts_with("a tiny function") {
        "; to probe it, rebuild with --entry all, or arm a caller"
    } else if why.starts_with("an #[inline(always)] function")
        || why.starts_with("an #[inline] function")
        || why.starts_with("a small function taking")
    {
        "; to probe it, rebuild with --entry all or --lines naming one of its lines, or arm a caller"
    } else if why.starts_with("an iterator's next") {
        "; to probe it, rebuild with --entry all or --lines naming one of its lines, or arm the function whose loop consumes the iterator"
    } else if why == "const fn" {
        "; a const fn can run at compile time, where no probe can: probe its callers"
    } else if why.starts_with("probes removed") || why.starts_with("file left") {
        "; its probes did not compile: 'cargo lprobe build -v' lists what the repair took out and why"
    } else {
        ""
    }
}

fn file_matches(given: &str, dir: &str, path: &'static str) -> bool {
    let given = given.trim_start_matches("./");
    if given == path || path.ends_with(&format!("/{given}")) || given.ends_with(&format!("/{path}"))
    {
        return true;
    }
    if !dir.is_empty() {
        if let Some(rel) = path.strip_prefix(dir).and_then(|p| p.strip_prefix('/')) {
            return given == rel;
        }
    }
    false
}

/// Whether `func` matches `pat` as a whole or from a `::` boundary on.
pub fn fn_matches(pat: &str, func: &str) -> bool {
    if glob(pat, func) {
        return true;
    }
    func.match_indices("::")
        .any(|(i, _)| glob(pat, &func[i + 2..]))
}

/// `*` matches any run of characters (including `::` and `/`); everything else matches itself.
pub fn glob(pat: &str, s: &str) -> bool {
    let parts: Vec<&str> = pat.split('*').collect();
    let [first, middle @ .., last] = parts.as_slice() else {
        return pat == s;
    };
    if parts.len() == 1 {
        return pat == s;
    }
    let Some(mut rest) = s.strip_prefix(first) else {
        return false;
    };
    for m in middle {
        match rest.find(m) {
            Some(i) => rest = &rest[i + m.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU8;

    static FLAGS: [AtomicU8; 3] = [AtomicU8::new(0), AtomicU8::new(0), AtomicU8::new(0)];
    static SITES: std::sync::LazyLock<[Site; 3]> = std::sync::LazyLock::new(|| {
        [
            Site::leaked(
                "app/src/main.rs",
                10,
                "app::main",
                crate::SiteKind::Entry,
                &[],
            ),
            Site {
                col: 5,
                fn_slot: 0,
                ..Site::leaked(
                    "app/src/main.rs",
                    12,
                    "app::main",
                    crate::SiteKind::Line,
                    &["x"],
                )
            },
            Site::leaked(
                "app/src/billing.rs",
                3,
                "app::billing::total",
                crate::SiteKind::Entry,
                &[],
            ),
        ]
    });
    static TABLE: std::sync::LazyLock<Table> = std::sync::LazyLock::new(|| Table {
        package: "app",
        dir: "app",
        flags: &FLAGS,
        fn_flags: &[],
        counts: &[],
        sites: crate::Sites::Rows(&SITES[..]),
        files: &[],
        skipped: crate::Skips::Rows(&SKIPPED[..]),
    });
    static SKIPPED: std::sync::LazyLock<[Skipped; 4]> = std::sync::LazyLock::new(|| {
        [
            // Listed as without sites, yet it has sites (say, a site alone was removed by repair).
            Skipped::leaked(
                "app/src/main.rs",
                9,
                13,
                "app::main",
                "probes removed by repair",
            ),
            // Another package's file of the same name, with no sites at all.
            Skipped::leaked(
                "other/src/main.rs",
                1,
                3,
                "other::main",
                "file left as written",
            ),
            Skipped::leaked(
                "app/src/billing.rs",
                20,
                22,
                "app::billing::Invoice::id",
                "trivial accessor (--skip-accessors)",
            ),
            Skipped::leaked("app/src/consts.rs", 1, 3, "app::consts::limit", "const fn"),
        ]
    });

    fn skipped() -> Vec<(&'static Table, &'static Skipped)> {
        SKIPPED.iter().map(|s| (&*TABLE, s)).collect()
    }

    fn resolve(
        sites: &[(&'static Table, u32, &'static Site)],
        loc: &str,
    ) -> Result<Vec<SiteRef>, String> {
        super::resolve(sites, &skipped(), loc)
    }

    fn all() -> Vec<(&'static Table, u32, &'static Site)> {
        SITES
            .iter()
            .enumerate()
            .map(|(i, s)| (&*TABLE, i as u32, s))
            .collect()
    }

    #[test]
    fn file_line_by_workspace_path_package_path_and_suffix() {
        for loc in [
            "app/src/main.rs:12",
            "src/main.rs:12",
            "main.rs:12",
            "/home/u/ws/app/src/main.rs:12",
        ] {
            let r = resolve(&all(), loc).expect(loc);
            assert_eq!(r.iter().map(|s| s.1).collect::<Vec<_>>(), vec![1], "{loc}");
        }
    }

    #[test]
    fn a_line_without_a_site_names_the_nearest_ones_and_the_rebuild() {
        let e = resolve(&all(), "main.rs:11").unwrap_err();
        assert!(e.contains("app/src/main.rs:10 (entry of app::main)"), "{e}");
        assert!(e.contains("app/src/main.rs:12 (line of app::main)"), "{e}");
        assert!(e.contains("--lines app/src/main.rs:11"), "{e}");
    }

    #[test]
    fn functions_built_without_sites_say_why_and_what_to_do() {
        let e = resolve(&all(), "fn:Invoice::id").unwrap_err();
        assert!(
            e.contains("only functions built without probe sites"),
            "{e}"
        );
        assert!(e.contains("app::billing::Invoice::id at app/src/billing.rs:20 (trivial accessor (--skip-accessors))"), "{e}");
        assert!(e.contains("rebuild without --skip-accessors"), "{e}");
        let e = resolve(&all(), "billing.rs:21").unwrap_err();
        assert!(
            e.contains("it is in app::billing::Invoice::id, which was built without probe sites"),
            "{e}"
        );
        // A file whose every function is without sites is still found.
        let e = resolve(&all(), "consts.rs:2").unwrap_err();
        assert!(
            e.contains("const fn") && e.contains("probe its callers"),
            "{e}"
        );
        // A skip pattern names itself and how to undo it.
        assert!(remedy("skipped by fn:app::peek (lprobe.skip:3)")
            .contains("rebuild without that skip pattern"));
        // A small function taking a reference: --entry all, --lines naming one of its lines,
        // or a caller.
        assert!(
            remedy("a small function taking a reference (no loop, at most 128 tokens): …")
                .contains("--entry all or --lines naming one of its lines, or arm a caller")
        );
        // Outside any of them: the nearest sites, as before.
        let e = resolve(&all(), "billing.rs:30").unwrap_err();
        assert!(e.contains("nearest: app/src/billing.rs:3"), "{e}");
    }

    #[test]
    fn a_line_of_a_skipped_function_says_so_unless_it_is_in_a_nested_one_with_sites() {
        static NESTED: std::sync::LazyLock<[Site; 2]> = std::sync::LazyLock::new(|| {
            [
                Site {
                    col: 5,
                    fn_slot: 0,
                    ..Site::leaked(
                        "app/src/hot.rs",
                        33,
                        "app::hot::inner",
                        crate::SiteKind::Entry,
                        &[],
                    )
                },
                Site {
                    col: 9,
                    fn_slot: 0,
                    ..Site::leaked(
                        "app/src/hot.rs",
                        35,
                        "app::hot::inner",
                        crate::SiteKind::Line,
                        &[],
                    )
                },
            ]
        });
        // `hot` spans 30-40; its nested `inner` (33-36) has sites, so its lines are left out.
        static HOT: std::sync::LazyLock<[Skipped; 2]> = std::sync::LazyLock::new(|| {
            [
                Skipped::leaked(
                    "app/src/hot.rs",
                    30,
                    32,
                    "app::hot",
                    "skipped by fn:app::hot (--skip)",
                ),
                Skipped::leaked(
                    "app/src/hot.rs",
                    37,
                    40,
                    "app::hot",
                    "skipped by fn:app::hot (--skip)",
                ),
            ]
        });
        static T: std::sync::LazyLock<Table> = std::sync::LazyLock::new(|| Table {
            package: "app",
            dir: "app",
            flags: &[],
            fn_flags: &[],
            counts: &[],
            sites: crate::Sites::Rows(&NESTED[..]),
            files: &[],
            skipped: crate::Skips::Rows(&HOT[..]),
        });
        let sites: Vec<(&'static Table, u32, &'static Site)> = NESTED
            .iter()
            .enumerate()
            .map(|(i, s)| (&*T, i as u32, s))
            .collect();
        let skipped: Vec<(&'static Table, &'static Skipped)> =
            HOT.iter().map(|k| (&*T, k)).collect();
        for line in [31, 38] {
            let e = super::resolve(&sites, &skipped, &format!("hot.rs:{line}")).unwrap_err();
            assert!(
                e.contains("it is in app::hot, which was built without probe sites (skipped by fn:app::hot (--skip))")
                    && e.contains("rebuild without that skip pattern"),
                "{line}: {e}"
            );
        }
        // In `inner`, after its last site too: the nearest sites and `--lines`.
        for line in [34, 36] {
            let e = super::resolve(&sites, &skipped, &format!("hot.rs:{line}")).unwrap_err();
            assert!(
                e.contains("nearest: app/src/hot.rs:3") && e.contains("--lines"),
                "{line}: {e}"
            );
        }
        // `fn:` names it once.
        let e = super::resolve(&sites, &skipped, "fn:app::hot").unwrap_err();
        assert_eq!(e.matches("app::hot at").count(), 1, "{e}");
    }

    #[test]
    fn fn_patterns_match_entries_with_wildcards_and_suffixes() {
        let ids = |p: &str| resolve(&all(), p).map(|r| r.iter().map(|s| s.1).collect::<Vec<_>>());
        assert_eq!(ids("fn:app::billing::*"), Ok(vec![2]));
        assert_eq!(ids("fn:billing::total"), Ok(vec![2]));
        assert_eq!(ids("fn:*"), Ok(vec![0, 2]));
        assert!(ids("fn:nothing::*").is_err());
        assert!(resolve(&all(), "main.rs:x")
            .unwrap_err()
            .contains("invalid line"));
        assert!(resolve(&all(), "nope.rs:1")
            .unwrap_err()
            .contains("no instrumented file"));
    }
}
