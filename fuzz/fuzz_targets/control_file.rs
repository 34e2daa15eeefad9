//! The control file: any bytes, written to a private file, read and applied as the control
//! thread does (`control::read_control`, lossy UTF-8, `control::apply_control`): at most one
//! probe and one error per line, every error bounded.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lprobe_fuzz::{bounded, bounded_len};
use probe_runtime::fuzzing;

fuzz_target!(|data: &[u8]| {
    fuzzing::install_table();
    let errors = bounded("control_file", || fuzzing::control_file(data));
    let lines = data.split(|&b| b == b'\n').count();
    assert!(
        errors.len() <= lines,
        "{} errors for {lines} lines",
        errors.len()
    );
    for e in &errors {
        bounded_len("control-file error", e, 4 * data.len() + 1024);
    }
    assert!(fuzzing::probe_count() <= lines.min(256));
    fuzzing::reset();
});
