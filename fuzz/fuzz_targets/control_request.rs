//! The socket protocol: one request line, as a client sends it, through the runtime's real
//! connection handler (`control::handle` over a socket pair), against a site table. Every
//! answer is JSON lines, each an object starting with `{"ok":`, of bounded size.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lprobe_fuzz::{bounded, bounded_len};
use probe_runtime::fuzzing;

fuzz_target!(|data: &[u8]| {
    fuzzing::install_table();
    let reply = bounded("control_request", || fuzzing::request(data));
    let reply = String::from_utf8(reply).expect("the reply is UTF-8");
    bounded_len("reply", &reply, 64 * 1024);
    assert!(reply.ends_with('\n'), "no complete reply line: {reply:?}");
    for line in reply.lines() {
        assert!(
            line.starts_with("{\"ok\":") && line.ends_with('}'),
            "not a reply object: {line:?}"
        );
    }
    // One request arms at most one probe.
    assert!(
        fuzzing::probe_count() <= 1,
        "{} probes after one request",
        fuzzing::probe_count()
    );
    fuzzing::reset();
});
