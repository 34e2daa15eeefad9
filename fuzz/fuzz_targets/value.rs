//! `{:?}` text → structured value → JSON (`value::parse_debug`, redaction of parsed and
//! unparsed text, `value::write_json` within limits), for complete and cut text: no panic,
//! output bounded by the input and the limits.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lprobe_fuzz::{bounded, bounded_len, text};
use probe_runtime::fuzzing;
use probe_runtime::value::{self, Limits};

fuzz_target!(|data: &[u8]| {
    lprobe_fuzz::tree::init_env();
    let t = text(data);
    bounded("value", || {
        let bound = 8 * t.len() + 1024;
        for cut in [false, true] {
            let json = fuzzing::render_text(&t, cut, Limits::default());
            bounded_len("render_text", &json, bound);
            let small = Limits {
                max_str: 3,
                max_items: 2,
                max_depth: 2,
            };
            let json = fuzzing::render_text(&t, cut, small);
            bounded_len("render_text (small limits)", &json, bound);
            let v = fuzzing::text_value(&t, cut);
            let _ = (
                v.kind(),
                v.len(),
                v.field_names(),
                v.index(0),
                v.field("password"),
            );
        }
        let v = value::parse_debug(&t);
        let mut out = String::new();
        let wide = Limits {
            max_str: usize::MAX,
            max_items: usize::MAX,
            max_depth: 64,
        };
        value::write_json(&v, &mut out, &wide);
        bounded_len("write_json (no limits)", &out, bound);
    });
});
