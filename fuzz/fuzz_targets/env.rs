//! Environment variables the runtime parses: `LPROBE_QUEUE` (capacity, clamped),
//! `LPROBE_REDACT_TYPES` (a type list, then type names checked against it),
//! `LPROBE_MAX_STRING`/`ITEMS`/`DEPTH` (capture limits), and names checked for secrets.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lprobe_fuzz::{bounded, text};
use probe_runtime::{fuzzing, probe};

fuzz_target!(|data: &[u8]| {
    let v = text(data);
    bounded("env", || {
        let cap = fuzzing::queue_capacity(Some(&v));
        assert!((1..=65_536).contains(&cap), "LPROBE_QUEUE={v:?} gave {cap}");
        let types = fuzzing::redact_types(&v);
        assert!(types.len() <= v.len());
        assert!(types.iter().all(|t| !t.is_empty()));
        let (first, rest) = v.split_once('\n').unwrap_or((&v, "app::Vault<T>"));
        let types = fuzzing::redact_types(first);
        let _ = fuzzing::type_is_redacted(rest, &types);
        let _ = fuzzing::printed_type_is_redacted(rest, &types);
        let _ = fuzzing::is_secret(&v);
        // Not through the real environment: glibc keeps every value `setenv` replaces, and
        // millions of inputs ran the fuzzer out of memory (libFuzzer's 1 GiB).
        let l = probe::limits_from(|k| match k {
            "LPROBE_MAX_STRING" => Some(v.to_string()),
            "LPROBE_MAX_ITEMS" => Some(first.to_owned()),
            "LPROBE_MAX_DEPTH" => Some(rest.to_owned()),
            _ => None,
        });
        assert!(l.max_str > 0 && l.max_items > 0 && l.max_depth > 0);
    });
});
