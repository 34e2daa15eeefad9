//! Redaction is total: a random nested value (see `tree.rs`) is captured and written in every
//! output form the runtime has (a snapshot's `vars`, a log line of every capture, its `{:?}`
//! text complete and cut at a random point, within random limits), once with each of two
//! secrets. The outputs must be identical: nothing of the secret, not even its length or a
//! prefix, reaches any form.
#![no_main]
use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use lprobe_fuzz::tree::{init_env, node, Node, Show, SECRETS};
use lprobe_fuzz::{bounded, bounded_len};
use probe_runtime::value::Limits;
use probe_runtime::{fuzzing, ByRef, Val};

fn render(root: &Node, w: usize, cut: usize, limits: Limits) -> String {
    let show = Show(root, w);
    let secret = SECRETS[w];
    let vals: [(&str, Val<'_>); 3] = [
        ("value", &ByRef(&show)),
        ("password", &ByRef(&secret)),
        ("zz_note", &ByRef(&show)),
    ];
    let mut out = fuzzing::snapshot(&vals, limits);
    out.push('\n');
    out.push_str(&fuzzing::log(None, &vals));
    out.push('\n');
    let text = format!("{show:?}");
    out.push_str(&fuzzing::render_text(&text, false, limits));
    out.push('\n');
    let mut at = cut.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    out.push_str(&fuzzing::render_text(&text[..at], true, limits));
    out
}

fuzz_target!(|data: &[u8]| {
    init_env();
    let mut u = Unstructured::new(data);
    let (Ok(cut), Ok(s), Ok(i), Ok(d)) = (
        u.arbitrary::<u16>(),
        u.int_in_range(1..=300usize),
        u.int_in_range(1..=30usize),
        u.int_in_range(1..=8usize),
    ) else {
        return;
    };
    let limits = Limits {
        max_str: s,
        max_items: i,
        max_depth: d,
    };
    let Ok(root) = node(&mut u, 0, false) else {
        return;
    };
    let [a, b] = bounded("redaction", || {
        [0, 1].map(|w| render(&root, w, cut as usize, limits))
    });
    bounded_len("redaction output", &a, 1 << 20);
    if a != b {
        let at = a
            .bytes()
            .zip(b.bytes())
            .position(|(x, y)| x != y)
            .unwrap_or(0);
        let from = at.saturating_sub(200);
        panic!(
            "the secret changes the output at byte {at}:\n  {}\n  {}\nvalue: {root:?}",
            a.get(from..(at + 100).min(a.len())).unwrap_or(&a),
            b.get(from..(at + 100).min(b.len())).unwrap_or(&b),
        );
    }
});
