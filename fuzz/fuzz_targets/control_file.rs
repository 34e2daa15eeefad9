//! The control file: any bytes, written to a private file, read and applied as the control
//! thread does (`control::read_control`, lossy UTF-8, `control::apply_control`): at most one
//! probe and one error per line, every error bounded. Before the first input: a directory,
//! a FIFO, a world-writable file and a 100 MB file are each refused whole, at once.
#![no_main]
use std::os::unix::fs::PermissionsExt as _;

use libfuzzer_sys::fuzz_target;
use lprobe_fuzz::{bounded, bounded_len};
use probe_runtime::fuzzing;

fn refused(path: &std::path::Path, why: &str) {
    let errors = bounded("control_file (special file)", || {
        fuzzing::control_file_at(path)
    });
    assert!(
        errors.len() == 1 && errors[0].contains(why) && fuzzing::probe_count() == 0,
        "{} not refused with '{why}': {errors:?}",
        path.display()
    );
}

fn special_files() {
    let dir = std::path::Path::new("/dev/shm")
        .join(format!("lprobe-fuzz-special-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("a-directory")).expect("mkdir");
    refused(&dir.join("a-directory"), "not a regular file");
    let fifo = dir.join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().expect("utf-8")).expect("path");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    refused(&fifo, "not a regular file");
    let open = dir.join("world-writable");
    std::fs::write(&open, "app/src/main.rs:4 --count\n").expect("write");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    refused(&open, "writable by every user");
    let big = dir.join("big");
    let f = std::fs::File::create(&big).expect("create");
    f.set_len(100 << 20).expect("100 MB (sparse)");
    std::fs::set_permissions(&big, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    refused(&big, "over the 1048576 limit");
    let _ = std::fs::remove_dir_all(&dir);
}

fuzz_target!(|data: &[u8]| {
    fuzzing::install_table();
    static SPECIAL: std::sync::Once = std::sync::Once::new();
    SPECIAL.call_once(special_files);
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
