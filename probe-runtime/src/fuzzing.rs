//! Entry points for the fuzz targets in `fuzz/` (see FUZZING.md): thin wrappers that reach
//! the runtime's private input handling exactly as the program does, without starting its
//! threads or binding its socket. Not an API: hidden from the docs, it changes with the runtime.
//! Nothing in the runtime calls it; a program that never calls it pays nothing.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicU8};
use std::sync::{LazyLock, Once};

use crate::hot::capture::{Body, Captured};
use crate::hot::registry;
use crate::lang::expr::Expr;
use crate::lang::template::Template;
use crate::lang::value::{Limits, Value};
use crate::{Site, Skipped, Table, Val};

static FLAGS: [AtomicU8; 6] = [const { AtomicU8::new(0) }; 6];
static FN_FLAGS: [AtomicU8; 3] = [const { AtomicU8::new(0) }; 3];
static COUNTS: [AtomicU64; 6] = [const { AtomicU64::new(0) }; 6];

/// The sites of [`TABLE`]: entry and line sites in two files and a package directory, with
/// captured names (one of them secret), timed and untimed entries, and a removed site.
pub static SITES: LazyLock<[Site; 6]> = LazyLock::new(|| {
    use crate::SiteKind::{Entry, Line, None};
    let site = |path, line, col, func, kind, names: &[&str], fn_slot, timed| Site {
        col,
        fn_slot,
        timed,
        frame: false,
        ..Site::leaked(path, line, func, kind, names)
    };
    let (main, billing, lib) = (
        "app/src/main.rs",
        "app/src/billing/mod.rs",
        "app/src/lib.rs",
    );
    let total = "app::billing::Invoice::total";
    let get = "app::tiny::<impl app::Tiny<T>>::get";
    [
        site(main, 3, 1, "app::main", Entry, &[], 0, true),
        site(main, 4, 5, "app::main", Line, &["x", "name"], 0, false),
        site(
            billing,
            10,
            1,
            total,
            Entry,
            &["self", "account", "password"],
            1,
            true,
        ),
        site(
            billing,
            11,
            9,
            total,
            Line,
            &["self", "account", "password", "sum"],
            1,
            false,
        ),
        site(lib, 20, 1, get, Entry, &["self"], 2, false),
        site(lib, 21, 1, get, None, &[], 2, false),
    ]
});

static SKIPPED: LazyLock<[Skipped; 2]> = LazyLock::new(|| {
    [
        Skipped::leaked("app/src/lib.rs", 30, 32, "app::consts::limit", "const fn"),
        Skipped::leaked(
            "app/src/gen/tables.rs",
            1,
            900,
            "app::gen::lookup",
            "skip pattern 'src/gen/*' (lprobe.skip:3)",
        ),
    ]
});

/// A site table the targets arm against, never registered (no thread is started).
pub static TABLE: LazyLock<Table> = LazyLock::new(|| Table {
    package: "app",
    dir: "app",
    flags: &FLAGS,
    fn_flags: &FN_FLAGS,
    counts: &COUNTS,
    sites: crate::Sites::Rows(&SITES[..]),
    files: &[("app/src/main.rs", "0")],
    skipped: crate::Skips::Rows(&SKIPPED[..]),
});

/// Makes [`TABLE`] the process's only table (once), as `register` would without starting
/// the runtime's threads.
pub fn install_table() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| registry::lock().tables.push(&*TABLE));
}

/// Forgets every probe and every streaming client, so each input starts from the same state.
pub fn reset() {
    {
        let mut st = registry::lock();
        for p in &st.probes {
            p.disarm();
        }
        st.probes.clear();
        st.control_errors.clear();
        registry::rebuild(&mut st);
    }
    crate::plane::sink::prune(&|_| false);
}

/// The probes alive now (for bounds checks).
pub fn probe_count() -> usize {
    registry::lock().probes.len()
}

/// One socket request: `line` is what a client sends, the result every byte the runtime
/// answered (`control::handle` over a socket pair: the real peer check, reading, dispatch
/// and reply). A `tail`/`watch` subscriber stays until [`reset`].
pub fn request(line: &[u8]) -> Vec<u8> {
    let Ok((mut client, server)) = UnixStream::pair() else {
        return Vec::new();
    };
    // The runtime reads at most 64 KiB; more would fill the socket with no reader.
    let _ = client.set_nonblocking(true);
    let _ = client.write_all(line.get(..line.len().min(64 * 1024)).unwrap_or(&[]));
    let _ = client.shutdown(std::net::Shutdown::Write);
    crate::plane::control::handle(server);
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => reply.extend_from_slice(buf.get(..n).unwrap_or(&[])),
        }
    }
    reply
}

/// The control file as the control thread reads it: `bytes` written to a private file,
/// checked and read (`control::read_control`), decoded and applied (`control::apply_control`).
/// Returns the errors `status` would show (the file's refusal, or one per bad line).
pub fn control_file(bytes: &[u8]) -> Vec<String> {
    let path = control_path();
    if std::fs::write(&path, bytes).is_err() {
        return vec!["could not write the control file".into()];
    }
    control_file_at(&path)
}

/// [`control_file`] for a file that exists already (a directory, a FIFO, a big file…).
pub fn control_file_at(path: &Path) -> Vec<String> {
    match crate::plane::control::read_control(path) {
        Ok(content) => {
            crate::plane::control::apply_control(path, &String::from_utf8_lossy(&content));
            registry::lock().control_errors.clone()
        }
        Err(why) => vec![why],
    }
}

fn control_path() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| {
        // tmpfs when there is one: rewriting a file on ext4 flushes it at each close.
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let d = base.join(format!("lprobe-fuzz-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&d);
        let _ = std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700));
        d
    });
    let p = dir.join("probes");
    if !p.exists() {
        let _ = std::fs::write(&p, b"");
        let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600));
    }
    p
}

/// `LPROBE_QUEUE`'s value to a capacity.
pub fn queue_capacity(v: Option<&str>) -> usize {
    crate::plane::sink::queue_capacity(v)
}

/// `LPROBE_REDACT_TYPES`'s value to its list.
pub fn redact_types(v: &str) -> Vec<String> {
    crate::lang::value::redact::parse_types(v)
}

/// Whether a value of `type_name` is never formatted, given a `LPROBE_REDACT_TYPES` list.
pub fn type_is_redacted(type_name: &str, types: &[String]) -> bool {
    crate::lang::value::redact::type_is_redacted(type_name, types)
}

/// Whether a struct printed as `printed` is of a listed type.
pub fn printed_type_is_redacted(printed: &str, types: &[String]) -> bool {
    crate::lang::value::redact::printed_type_is_redacted(printed, types)
}

/// Whether a name is secret (built-in names, then `LPROBE_REDACT`).
pub fn is_secret(name: &str) -> bool {
    crate::hot::capture::is_secret(name)
}

/// `LPROBE_REDACT`'s matcher: `Ok(is_match)` or the pattern's error.
pub fn regex_match(pattern: &str, haystack: &str) -> Result<bool, String> {
    crate::lang::regex::Regex::new(pattern).map(|r| r.is_match(haystack))
}

/// Takes each value as a hit does (secret names are never formatted, `Debug` into the
/// bounded buffer).
fn take<'n>(vals: &[(&'n str, Val<'_>)]) -> Vec<(&'n str, Captured)> {
    vals.iter()
        .map(|(n, v)| (*n, Captured::take(is_secret(n), v)))
        .collect()
}

/// A snapshot's `"vars"` field for these captures, as the output thread writes it.
pub fn snapshot(vals: &[(&str, Val<'_>)], limits: Limits) -> String {
    let mut out = String::new();
    Body::Vars { limits }.write(&take(vals), &mut out);
    out
}

/// A log record's `"msg"` field: `template` rendered over these captures (`None`: every
/// capture, `LPROBE_ARM_ALL=log`).
pub fn log(template: Option<&Template>, vals: &[(&str, Val<'_>)]) -> String {
    let mut out = String::new();
    let template = std::sync::Arc::new(template.cloned().unwrap_or_else(Template::every_capture));
    let taken = take(vals);
    Body::Log { template }.write(&taken, &mut out);
    out
}

/// `{:?}` text as the output thread turns it into JSON: complete (`cut` false) or cut at the
/// value limit, parsed, redacted and written within `limits`.
pub fn render_text(text: &str, cut: bool, limits: Limits) -> String {
    let c = if cut {
        Captured::Cut(text.to_owned())
    } else {
        Captured::Text(text.to_owned())
    };
    let mut out = String::new();
    crate::lang::value::write_json(&c.to_value(), &mut out, &limits);
    out
}

/// The redacted structured value of complete or cut `{:?}` text.
pub fn text_value(text: &str, cut: bool) -> Value {
    if cut {
        Captured::Cut(text.to_owned()).to_value()
    } else {
        Captured::Text(text.to_owned()).to_value()
    }
}

/// A condition decided as a hit decides it (`probe::Probe::fire`): in place over primitives
/// when none of its names is secret and it can (`Expr::quick`), else over each value taken
/// and redacted.
pub fn condition(expr: &Expr, vals: &[(&str, Val<'_>)]) -> Result<bool, String> {
    let load = |name: &str| {
        let (_, v) = vals.iter().find(|(n, _)| *n == name)?;
        crate::hot::capture::scalar_of(v)
    };
    let quick = !expr.roots().iter().any(|r| is_secret(r));
    if let Some(b) = quick.then(|| expr.quick(&load)).flatten() {
        return Ok(b);
    }
    expr.eval(&|name| {
        let (n, v) = vals.iter().find(|(n, _)| *n == name)?;
        Some(Captured::take(is_secret(n), v).to_value())
    })
}
