//! `LPROBE_REDACT`'s matcher (`regex::Regex`): parse any pattern, match any name, within
//! the step budget; a pattern of plain letters and digits matches exactly the names that
//! contain it, ignoring ASCII case.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lprobe_fuzz::{bounded, text};
use probe_runtime::fuzzing;

fuzz_target!(|data: &[u8]| {
    let input = text(data);
    // First line: the pattern; the rest: the name.
    let (pattern, hay) = input.split_once('\n').unwrap_or((&input, "password_hash"));
    bounded("regex", || {
        let m = fuzzing::regex_match(pattern, hay);
        if !pattern.is_empty() && pattern.bytes().all(|b| b.is_ascii_alphanumeric()) {
            let want = hay
                .to_ascii_lowercase()
                .contains(&pattern.to_ascii_lowercase());
            assert_eq!(m, Ok(want), "literal pattern {pattern:?} on {hay:?}");
        }
        if let Err(e) = &m {
            assert!(
                e.len() <= 4 * pattern.len() + 512,
                "error too long: {}",
                e.len()
            );
        }
    });
});
