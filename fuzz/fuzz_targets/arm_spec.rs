//! The arm language: a request's or control-file line's words (`args::split`), the arm
//! options (`probe::parse_spec`, durations, rates, limits, the template and condition inside),
//! and location resolution (`location::resolve`, `fn:` globs) against a site table.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lprobe_fuzz::{bounded, bounded_len, text};
use probe_runtime::{args, fuzzing, location, probe};

fuzz_target!(|data: &[u8]| {
    let line = text(data);
    bounded("arm_spec", || {
        let _ = args::parse_duration(&line);
        let Ok(words) = args::split(&line) else {
            return;
        };
        // Quoting is exact: what `join` writes splits back into the same words.
        let refs: Vec<&str> = words.iter().map(String::as_str).collect();
        let joined = args::join(&refs);
        bounded_len("args::join", &joined, 4 * line.len() + 2 * words.len() + 2);
        assert_eq!(
            args::split(&joined).as_ref(),
            Ok(&words),
            "split(join(w)) != w for {joined:?}"
        );
        let sites: Vec<_> = fuzzing::SITES
            .iter()
            .enumerate()
            .filter(|(_, s)| s.kind != probe_runtime::SiteKind::None)
            .map(|(i, s)| (&*fuzzing::TABLE, i as u32, s))
            .collect();
        let skipped: Vec<_> = fuzzing::TABLE
            .skipped
            .iter()
            .map(|s| (&*fuzzing::TABLE, s))
            .collect();
        for w in &words {
            let _ = location::resolve(&sites, &skipped, w);
            for s in &sites {
                let _ = location::fn_matches(w, s.2.func());
            }
        }
        match probe::parse_spec(&words) {
            Ok(spec) => {
                bounded_len(
                    "spec.text",
                    &spec.text,
                    4 * line.len() + 2 * words.len() + 2,
                );
                let _ = spec.roots();
                let _ = spec.action_names();
                if let Ok(found) = location::resolve(&sites, &skipped, &spec.location) {
                    assert!(found.len() <= sites.len());
                }
                if let Some(end) = &spec.actions.tictoc {
                    let _ = location::resolve(&sites, &skipped, end);
                }
            }
            Err(e) => bounded_len("parse_spec error", &e, 2 * line.len() + 1024),
        }
    });
});
