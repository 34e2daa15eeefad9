//! The control plane: the Unix socket server, the control-file watcher, and the ticker that
//! expires probes and reports counts. Everything here runs on the runtime's own threads.
//!
//! The socket protocol (documented in ARCHITECTURE.md) is one request line
//! `lprobe/1 VERB ARGS…` and JSON lines back. This module is its only server-side code.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::hot::probe::{self, Origin, Probe, NEEDS_REBUILD};
use crate::hot::queue;
use crate::hot::registry::{self, State};
use crate::lang::json;
use crate::plane::access;
use crate::plane::sink::{self, Subscriber};

/// The protocol version this runtime speaks.
pub(crate) const PROTOCOL: &str = "lprobe/1";
/// Longest request line accepted.
const MAX_REQUEST: u64 = 64 * 1024;
/// Most connections served at once; more are refused with an error.
const MAX_CONNECTIONS: usize = 16;
/// Probes kept for `status` after they stop firing (exhausted, expired).
const MAX_DEAD: usize = 100;
/// The most time the exit handler spends on final counts and draining the queue.
const EXIT_BUDGET: Duration = Duration::from_millis(500);
/// How often the control file is checked and counts are reported.
const TICK: Duration = Duration::from_millis(200);

static SOCKET: OnceLock<PathBuf> = OnceLock::new();
static START_PID: OnceLock<u32> = OnceLock::new();
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

extern "C" {
    fn atexit(cb: extern "C" fn()) -> i32;
    fn pthread_atfork(
        prepare: Option<extern "C" fn()>,
        parent: Option<extern "C" fn()>,
        child: Option<extern "C" fn()>,
    ) -> i32;
}

/// Runs in the child of a `fork`, before `fork` returns there: only an atomic store (the child
/// of a multi-threaded process may call little else until it `exec`s).
extern "C" fn on_fork_child() {
    registry::FORKED.store(true, Ordering::Relaxed);
}

/// Starts the output thread, the socket server and the ticker. Runs once, before `main` (as
/// the first table registers). With `LPROBE_THREADS=lazy` no thread starts here: see
/// [`start_if_armed`].
pub(crate) fn start() {
    if std::env::var_os("LPROBE_DISABLE").is_some_and(|v| v == "1") {
        return;
    }
    let _ = START_PID.set(std::process::id());
    crate::hot::panics::ensure();
    // SAFETY: `at_exit` and `on_fork_child` are `extern "C" fn`s with no arguments, as
    // atexit and pthread_atfork require.
    unsafe {
        atexit(at_exit);
        pthread_atfork(None, None, Some(on_fork_child));
    }
    match std::env::var("LPROBE_THREADS").as_deref() {
        Ok("lazy") => LAZY.store(true, Ordering::Relaxed),
        Ok("") | Ok("eager") | Err(_) => start_threads(),
        Ok(other) => {
            warn(&format!(
                "LPROBE_THREADS='{other}' is neither 'lazy' nor 'eager': starting the runtime's threads"
            ));
            start_threads();
        }
    }
}

/// `LPROBE_THREADS=lazy`: the runtime's threads wait for a probe armed at start.
static LAZY: AtomicBool = AtomicBool::new(false);
/// The runtime's threads were started.
static THREADS: AtomicBool = AtomicBool::new(false);

/// With `LPROBE_THREADS=lazy`, called as each table registers (before `main`): reads the
/// control file (every table registered so far can resolve its lines) and starts the
/// runtime's threads once anything is armed (by it or by `LPROBE_ARM_ALL`). A program that
/// must stay single-threaded thus gets no lprobe thread unless its control file arms a
/// probe at start; it serves no socket then, and a later control file is not seen (nothing
/// would watch it).
pub(crate) fn start_if_armed() {
    if !LAZY.load(Ordering::Relaxed) || THREADS.load(Ordering::Relaxed) {
        return;
    }
    if let Some(path) = std::env::var_os("LPROBE_CONTROL").filter(|p| !p.is_empty()) {
        let mut c = ControlFile {
            path: PathBuf::from(path),
            last: None,
            refused: None,
        };
        check_control(&mut c);
    }
    if registry::any_armed() {
        start_threads();
    }
}

fn start_threads() {
    if THREADS.swap(true, Ordering::Relaxed) {
        return;
    }
    if let Err(e) = sink::start() {
        warn(&format!("cannot start the output thread: {e}"));
        return;
    }
    if let Err(e) = access::allowed_group() {
        warn(&format!("{e}; only the program's user and root may arm"));
    }
    match bind() {
        Ok((listener, path)) => {
            let _ = SOCKET.set(path);
            let spawned = crate::small::spawn(
                "lprobe-socket",
                Box::new(move || crate::hot::panics::supervise(|| serve(&listener))),
            );
            if let Err(e) = spawned {
                warn(&format!("cannot start the socket thread: {e}"));
            }
        }
        Err(e) => warn(&e),
    }
    let _ = crate::small::spawn(
        "lprobe-control",
        Box::new(|| crate::hot::panics::supervise(ticker)),
    );
}

fn warn(msg: &str) {
    let _ = writeln!(std::io::stderr(), "lprobe: {msg}");
}

extern "C" fn at_exit() {
    // A forked child has no output thread to drain, and may find locks held forever (see
    // `forked_child`): it leaves at once.
    if registry::FORKED.load(Ordering::Relaxed) || START_PID.get() != Some(&std::process::id()) {
        return;
    }
    // Whatever runs after this (other exit handlers) would find the output closed: the exiting
    // thread fires no more probes.
    crate::hot::panics::runtime_thread();
    let _ = std::panic::catch_unwind(|| {
        // Final counts, unless another thread holds the state (never wait at exit), and
        // within a time budget: exit must not wait long on lprobe, however many probes.
        let start = std::time::Instant::now();
        if let Some(st) = registry::try_lock() {
            let probes: Vec<Arc<Probe>> =
                st.probes.iter().filter(|p| p.is_live()).cloned().collect();
            drop(st);
            for p in &probes {
                if start.elapsed() > EXIT_BUDGET {
                    break;
                }
                probe::report_final(p);
            }
        }
        sink::drain(
            EXIT_BUDGET
                .saturating_sub(start.elapsed())
                .max(Duration::from_millis(100)),
        );
        // A forked child exiting must not remove its parent's socket.
        if START_PID.get() == Some(&std::process::id()) {
            if let Some(p) = SOCKET.get() {
                let _ = std::fs::remove_file(p);
            }
        }
    });
}

fn bind() -> Result<(UnixListener, PathBuf), String> {
    let path = access::socket_path()?;
    if let Ok(meta) = std::fs::symlink_metadata(&path) {
        if meta.file_type().is_socket() && UnixStream::connect(&path).is_err() {
            let _ = std::fs::remove_file(&path);
        }
    }
    let cannot = |e: std::io::Error| {
        format!(
            "cannot listen on {}: {e}; set LPROBE_SOCKET to another path",
            path.display()
        )
    };
    // Bound under a name of its own, restricted, then linked to its name: the socket appears
    // there with its final owner group and mode, never with the umask's for a moment (a
    // client that finds it may connect at once). A link, not a rename, so that a live
    // socket already there is not replaced: that fails as a bind would. A socket path has a
    // length limit: where the hidden name would be the longer, the name itself is bound.
    let hidden = path.with_file_name(format!(".lp{}", std::process::id()));
    let at = if hidden.as_os_str().len() <= path.as_os_str().len() {
        let _ = std::fs::remove_file(&hidden);
        hidden
    } else {
        path.clone()
    };
    let listener = UnixListener::bind(&at).map_err(cannot)?;
    let placed = access::restrict_socket(&at).and_then(|()| {
        if at == path {
            return Ok(());
        }
        match std::fs::hard_link(&at, &path) {
            Ok(()) => Ok(()),
            // A file system without hard links: renamed instead, where nothing is in the way.
            Err(e)
                if e.kind() != std::io::ErrorKind::AlreadyExists
                    && std::fs::symlink_metadata(&path).is_err() =>
            {
                std::fs::rename(&at, &path).map_err(cannot)
            }
            Err(e) => Err(cannot(e)),
        }
    });
    // The hidden name always goes; the socket's own name only when it is not served with the
    // rights wanted (the listener closes here).
    if at != path || placed.is_err() {
        let _ = std::fs::remove_file(&at);
    }
    placed.map(|()| (listener, path))
}

fn serve(listener: &UnixListener) {
    for conn in listener.incoming() {
        let Ok(stream) = conn else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        if ACTIVE.fetch_add(1, Ordering::Relaxed) >= MAX_CONNECTIONS {
            ACTIVE.fetch_sub(1, Ordering::Relaxed);
            let mut s = stream;
            let _ = s.write_all(err_line("too many connections; try again").as_bytes());
            continue;
        }
        let spawned = crate::small::spawn(
            "lprobe-conn",
            Box::new(move || {
                crate::hot::panics::runtime_thread();
                // A panic here must not reach a hook the program installed since.
                crate::hot::panics::ensure();
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handle(stream)));
                ACTIVE.fetch_sub(1, Ordering::Relaxed);
            }),
        );
        if spawned.is_err() {
            ACTIVE.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

fn err_line(msg: &str) -> String {
    let mut s = String::from("{\"ok\":false,\"error\":");
    json::push_str(&mut s, msg);
    s.push_str("}\n");
    s
}

pub(crate) fn handle(mut stream: UnixStream) {
    if !access::peer_allowed(&stream) {
        let _ = stream.write_all(err_line(&access::refusal(access::group())).as_bytes());
        return;
    }
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let Ok(reader_stream) = stream.try_clone() else {
        return;
    };
    let mut line = Vec::new();
    let mut reader = BufReader::new(reader_stream.take(MAX_REQUEST));
    if reader.read_until(b'\n', &mut line).is_err() || !line.ends_with(b"\n") {
        let _ = stream.write_all(
            err_line("bad request: expected one line 'lprobe/1 VERB ARGS…' of at most 64 KiB")
                .as_bytes(),
        );
        return;
    }
    let Ok(text) = std::str::from_utf8(&line) else {
        let _ = stream.write_all(err_line("bad request: not UTF-8").as_bytes());
        return;
    };
    let text = text.trim();
    let (version, rest) = text.split_once(' ').unwrap_or((text, ""));
    if version != PROTOCOL {
        let _ = stream.write_all(
            err_line(&format!(
                "unsupported protocol '{version}': this runtime speaks {PROTOCOL} (version {})",
                env!("CARGO_PKG_VERSION")
            ))
            .as_bytes(),
        );
        return;
    }
    let rest = rest.trim_start();
    let (verb, args) = rest.split_once(' ').unwrap_or((rest, ""));
    let words = match crate::lang::args::split(args) {
        Ok(w) => w,
        Err(e) => {
            let _ = stream.write_all(err_line(&format!("bad arguments: {e}")).as_bytes());
            return;
        }
    };
    let reply = match verb {
        "hello" => Ok(hello()),
        "sites" => Ok(sites(words.first().map(String::as_str))),
        "files" => Ok(files(words.first().map(String::as_str))),
        "arm" => arm(&words, Origin::Socket, None).map(|p| armed_reply(&p)),
        "watch" if !sink::reserve() => Err(sink::full_message()),
        "watch" => {
            // Subscribe before the sites go live so the first record cannot be missed.
            let Ok(sub) = stream.try_clone() else {
                sink::release();
                return;
            };
            let mut sub = Some(sub);
            let mut first = String::new();
            let res = arm(
                &words,
                Origin::Socket,
                Some(&mut |p: &Arc<Probe>| {
                    first = armed_reply(p);
                    let _ = stream.write_all(first.as_bytes());
                    if let Some(s) = sub.take() {
                        sink::subscribe(Subscriber::new(
                            s,
                            Some(p.id.to_string()),
                            p.spec.max_hits,
                        ));
                    }
                }),
            );
            if sub.is_some() {
                // Refused before the probe existed: the place was not used.
                sink::release();
            }
            match res {
                Ok(_) => return,
                Err(e) => Err(e),
            }
        }
        "disarm" => disarm(&words),
        "counts" => counts(&words),
        "status" => Ok(status()),
        "tail" if !sink::reserve() => Err(sink::full_message()),
        "tail" => {
            if stream.write_all(b"{\"ok\":true}\n").is_ok() {
                sink::subscribe(Subscriber::new(stream, None, None));
            } else {
                sink::release();
            }
            return;
        }
        other => Err(format!(
            "unknown request '{other}' (expected hello, sites, files, arm, watch, disarm, counts, status or tail)"
        )),
    };
    let line = match reply {
        Ok(s) => s,
        Err(e) => err_line(&e),
    };
    let _ = stream.write_all(line.as_bytes());
}

fn program() -> String {
    std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "?".into())
}

fn hello() -> String {
    let st = registry::lock();
    let sites: usize = st.tables.iter().map(|t| t.sites.len()).sum();
    let armed = st.probes.iter().filter(|p| p.is_live()).count();
    let mut s = format!(
        "{{\"ok\":true,\"pid\":{},\"version\":\"{}\",\"sites\":{sites},\"armed\":{armed},\"program\":",
        std::process::id(),
        env!("CARGO_PKG_VERSION")
    );
    json::push_str(&mut s, &program());
    s.push_str(",\"socket\":");
    match SOCKET.get() {
        Some(p) => json::push_str(&mut s, &p.display().to_string()),
        None => s.push_str("null"),
    }
    s.push_str(",\"pidns\":");
    match access::pid_namespace() {
        Some(ino) => s.push_str(&ino.to_string()),
        None => s.push_str("null"),
    }
    s.push_str("}\n");
    s
}

/// `counts PROBE`: the hits a `--count` probe counted at each of its sites so far, the sites
/// that were hit only, most hits first (what `lprobe hot` reads).
fn counts(words: &[String]) -> Result<String, String> {
    let Some(id) = words.first() else {
        return Err("counts needs a probe id (see 'lprobe status')".into());
    };
    let probe = registry::lock()
        .probes
        .iter()
        .find(|p| *p.id == **id)
        .cloned()
        .ok_or_else(|| format!("no armed probe '{id}' (see 'lprobe status')"))?;
    if !probe.is_live() {
        // Its sites' shared counters may count on for other probes: its numbers are final
        // only in its last count records.
        return Err(format!(
            "probe {id} is no longer armed (expired, exhausted or disarmed): its final counts are in its last count records"
        ));
    }
    if !probe.spec.actions.count {
        return Err(format!(
            "probe {id} does not count hits (arm it with --count)"
        ));
    }
    let mut hit: Vec<(u64, &'static crate::Site)> = probe
        .site_counts()
        .into_iter()
        .zip(&probe.sites)
        .filter(|(n, _)| *n > 0)
        .filter_map(|(n, (t, i))| Some((n, t.sites.get(*i as usize)?)))
        .collect();
    crate::small::sort_by(&mut hit, |a, b| a.0 > b.0);
    let total: u64 = hit.iter().map(|(n, _)| n).sum();
    let mut s = String::from("{\"ok\":true,\"probe\":");
    json::push_str(&mut s, &probe.id);
    s.push_str(&format!(
        ",\"sites\":{},\"hits\":{total},\"counts\":[",
        probe.sites.len()
    ));
    for (i, (n, site)) in hit.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str("{\"path\":");
        json::push_str(&mut s, site.path());
        s.push_str(&format!(",\"line\":{},\"fn\":", site.line));
        json::push_str(&mut s, site.func());
        s.push_str(",\"kind\":");
        json::push_str(&mut s, site.kind());
        s.push_str(&format!(",\"count\":{n}}}"));
    }
    s.push_str("]}\n");
    Ok(s)
}

fn sites(filter: Option<&str>) -> String {
    let st = registry::lock();
    let mut s = String::from("{\"ok\":true,\"sites\":[");
    let mut first = true;
    for (t, id, site) in registry::all_sites(&st) {
        let loc = format!("{}:{}", site.path(), site.line);
        if let Some(f) = filter {
            if !loc.contains(f) && !site.func().contains(f) {
                continue;
            }
        }
        if !first {
            s.push(',');
        }
        first = false;
        s.push_str("{\"id\":");
        json::push_str(&mut s, &format!("{}#{id}", t.package));
        s.push_str(",\"package\":");
        json::push_str(&mut s, t.package);
        s.push_str(",\"path\":");
        json::push_str(&mut s, site.path());
        s.push_str(&format!(
            ",\"line\":{},\"col\":{},\"fn\":",
            site.line, site.col
        ));
        json::push_str(&mut s, site.func());
        s.push_str(",\"kind\":");
        json::push_str(&mut s, site.kind());
        s.push_str(",\"names\":[");
        for (i, n) in site.names().iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            json::push_str(&mut s, n);
        }
        s.push_str("]}");
    }
    s.push_str("]}\n");
    s
}

/// `files [FILTER]`: each instrumented file (whose path contains FILTER) with the content
/// hash it had when the program was built and the text of its site lines as built, so a
/// client can tell that the file on disk changed and show what a line was:
/// `{"ok":true,"pid":…,"files":[{"path","package","hash","lines":[[LINE,"TEXT"],…]}]}`.
fn files(filter: Option<&str>) -> String {
    // Tables are static: copy the list and format without holding the state's lock.
    let tables: Vec<&'static crate::Table> = registry::lock().tables.clone();
    let mut s = format!("{{\"ok\":true,\"pid\":{},\"files\":[", std::process::id());
    let mut first = true;
    for t in tables {
        // Each line once (its first site's text), by file and line.
        let mut lines: Vec<(&str, u32, &str)> = t
            .sites
            .iter()
            .filter(|site| filter.is_none_or(|f| site.path().contains(f)))
            .map(|site| (site.path(), site.line, site.text()))
            .collect();
        crate::small::sort_by(&mut lines, |a, b| (a.0, a.1) < (b.0, b.1));
        lines.dedup_by(|b, a| (a.0, a.1) == (b.0, b.1));
        for (path, hash) in t.files {
            if filter.is_some_and(|f| !path.contains(f)) {
                continue;
            }
            let from = lines.partition_point(|l| l.0 < *path);
            let to = lines.partition_point(|l| l.0 <= *path);
            let file = lines[from..to].iter().map(|(_, line, text)| (line, text));
            if !first {
                s.push(',');
            }
            first = false;
            s.push_str("{\"path\":");
            json::push_str(&mut s, path);
            s.push_str(",\"package\":");
            json::push_str(&mut s, t.package);
            s.push_str(",\"hash\":");
            json::push_str(&mut s, hash);
            s.push_str(",\"lines\":[");
            for (i, (line, text)) in file.enumerate() {
                if i > 0 {
                    s.push(',');
                }
                s.push_str(&format!("[{line},"));
                json::push_str(&mut s, text);
                s.push(']');
            }
            s.push_str("]}");
        }
    }
    s.push_str("]}\n");
    s
}

fn site_list(p: &Probe) -> Vec<String> {
    p.own_sites()
        .iter()
        .filter_map(|(t, id)| t.sites.get(*id as usize))
        .map(|s| format!("{}:{}", s.path(), s.line))
        .collect()
}

fn push_str_array(s: &mut String, items: &[String]) {
    s.push('[');
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        json::push_str(s, x);
    }
    s.push(']');
}

fn armed_reply(p: &Probe) -> String {
    let mut s = String::from("{\"ok\":true,\"probe\":");
    json::push_str(&mut s, &p.id);
    s.push_str(",\"sites\":");
    push_str_array(&mut s, &site_list(p));
    s.push_str("}\n");
    s
}

type BeforeLive<'a> = &'a mut dyn FnMut(&Arc<Probe>);

/// Arms a probe from `lprobe arm` arguments. `before_live` runs after the probe exists and
/// before its sites' flags are set.
fn arm(
    words: &[String],
    origin: Origin,
    before_live: Option<BeforeLive<'_>>,
) -> Result<Arc<Probe>, String> {
    let mut st = registry::lock();
    let p = new_probe(&mut st, words, origin)?;
    if let Some(f) = before_live {
        f(&p);
    }
    registry::rebuild(&mut st);
    Ok(p)
}

/// Validates and registers a probe (not yet live in the flags).
fn new_probe(st: &mut State, words: &[String], origin: Origin) -> Result<Arc<Probe>, String> {
    let live = st.probes.iter().filter(|p| p.is_live()).count();
    if live >= MAX_LIVE_PROBES {
        return Err(format!(
            "{live} probes are live, the most a program keeps ({MAX_LIVE_PROBES}): disarm some (lprobe disarm PROBE_ID, or --all) before arming more"
        ));
    }
    let spec = probe::parse_spec(words)?;
    let all = registry::all_sites(st);
    let skipped = registry::all_skipped(st);
    let mut sites = crate::lang::location::resolve(&all, &skipped, &spec.location)?;
    if spec.actions.duration {
        if let Some(s) = sites
            .iter()
            .filter_map(|(t, id)| t.sites.get(*id as usize))
            .find(|s| s.kind != crate::SiteKind::Entry)
        {
            return Err(format!(
                "--duration needs function sites, but {}:{} is a statement in {}: use 'fn:{}' or the line of its `fn`",
                s.path(), s.line, s.func(), s.func()
            ));
        }
        if let Some(s) = sites
            .iter()
            .filter_map(|(t, id)| t.sites.get(*id as usize))
            .find(|s| !s.timed)
        {
            return Err(format!(
                "--duration cannot time {}: it cannot time itself by calling itself again (an async fn, a parameter bound by a pattern such as `_` or `(a, b)`, or an attribute that may be a macro), and it is marked #[inline] or is small, so it was built without a timing guard (one would keep it from being inlined). Time a caller, or use --tictoc between two of its lines",
                s.func()
            ));
        }
    }
    let split = sites.len();
    if spec.actions.frames.is_some() {
        sites.extend(crate::hot::frames::sites(&all, spec.actions.frame_locals));
    }
    if let Some(end) = &spec.actions.tictoc {
        let ends = crate::lang::location::resolve(&all, &skipped, end)
            .map_err(|e| format!("--tictoc end '{end}': {e}"))?;
        sites.extend(ends);
    }
    for root in spec.roots() {
        for (t, id) in &sites[..split] {
            let Some(site) = t.sites.get(*id as usize) else {
                continue;
            };
            if !site.names().contains(root) {
                return Err(format!(
                    "'{root}' is not captured at {}:{} (captured there: {})",
                    site.path(),
                    site.line,
                    if site.names().is_empty() {
                        "nothing".to_owned()
                    } else {
                        site.names().iter().collect::<Vec<_>>().join(", ")
                    }
                ));
            }
        }
    }
    let id = format!("p{}", st.next_probe);
    st.next_probe += 1;
    let p = Arc::new(Probe::with_split(id.into(), spec, sites, origin, split));
    st.probes.push(p.clone());
    prune(st);
    Ok(p)
}

/// Forgets the oldest probes that no longer fire, past `MAX_DEAD`.
fn prune(st: &mut State) {
    let dead = st.probes.iter().filter(|p| !p.is_live()).count();
    if dead > MAX_DEAD {
        let mut extra = dead - MAX_DEAD;
        st.probes.retain(|p| {
            if extra > 0 && !p.is_live() {
                extra -= 1;
                false
            } else {
                true
            }
        });
    }
}

fn disarm(words: &[String]) -> Result<String, String> {
    let Some(what) = words.first() else {
        return Err("disarm needs a probe id, a location, or --all".into());
    };
    let mut st = registry::lock();
    let targets: Vec<Arc<Probe>> = if what == "--all" {
        st.probes.clone()
    } else if st.probes.iter().any(|p| *p.id == **what) {
        st.probes
            .iter()
            .filter(|p| *p.id == **what)
            .cloned()
            .collect()
    } else {
        let all = registry::all_sites(&st);
        let skipped = registry::all_skipped(&st);
        let sites = crate::lang::location::resolve(&all, &skipped, what).map_err(|e| {
            format!("'{what}' is neither a probe id (see 'lprobe status') nor a location: {e}")
        })?;
        st.probes
            .iter()
            .filter(|p| {
                p.own_sites().iter().any(|(t, id)| {
                    sites
                        .iter()
                        .any(|(t2, id2)| std::ptr::eq(*t, *t2) && id == id2)
                })
            })
            .cloned()
            .collect()
    };
    for p in &targets {
        p.disarm();
    }
    st.probes
        .retain(|p| !targets.iter().any(|t| Arc::ptr_eq(p, t)));
    registry::rebuild(&mut st);
    // Final counts once the sites stopped counting.
    for p in &targets {
        probe::report_final(p);
    }
    let ids: Vec<String> = targets.iter().map(|p| p.id.to_string()).collect();
    let mut s = String::from("{\"ok\":true,\"disarmed\":");
    push_str_array(&mut s, &ids);
    s.push_str("}\n");
    Ok(s)
}

fn status() -> String {
    let st = registry::lock();
    let mut s = format!("{{\"ok\":true,\"pid\":{},\"program\":", std::process::id());
    json::push_str(&mut s, &program());
    s.push_str(",\"probes\":[");
    for (i, p) in st.probes.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str("{\"id\":");
        json::push_str(&mut s, &p.id);
        s.push_str(",\"location\":");
        json::push_str(&mut s, &p.spec.location);
        s.push_str(",\"site\":");
        json::push_str(&mut s, &site_list(p).join(","));
        s.push_str(",\"sites\":");
        push_str_array(&mut s, &site_list(p));
        s.push_str(",\"actions\":");
        let actions: Vec<String> = p
            .spec
            .action_names()
            .iter()
            .map(|a| a.to_string())
            .collect();
        push_str_array(&mut s, &actions);
        s.push_str(",\"origin\":");
        json::push_str(
            &mut s,
            if p.origin == Origin::Control {
                "control"
            } else {
                "socket"
            },
        );
        s.push_str(",\"args\":");
        json::push_str(&mut s, &p.spec.text);
        s.push_str(",\"state\":");
        json::push_str(&mut s, p.state_name());
        // Timings before hits: a call is counted at entry and timed at return, so read in
        // this order the timed calls never outnumber the hits.
        let mut stats = String::new();
        p.write_stats_json(&mut stats);
        s.push_str(&format!(
            ",\"hits\":{},\"emitted\":{},\"dropped\":{},\"errors\":{},\"ttl_left_s\":{}",
            p.hits(),
            p.emitted.load(Ordering::Relaxed),
            p.dropped.load(Ordering::Relaxed),
            p.errors.load(Ordering::Relaxed),
            p.ttl_left()
        ));
        s.push_str(",\"limit\":");
        match p.limit_name() {
            "" => s.push_str("null"),
            l => json::push_str(&mut s, l),
        }
        s.push_str(&stats);
        s.push('}');
    }
    let mut by_reason = String::new();
    let total = queue::write_lost_json(&mut by_reason);
    s.push_str(&format!("],\"dropped_total\":{total},\"dropped_by\":"));
    s.push_str(&by_reason);
    // Panics of the runtime's own threads (each restarted its loop) and the last one.
    s.push_str(&format!(
        ",\"runtime_panics\":{},\"last_runtime_panic\":",
        crate::hot::panics::THREAD_PANICS.load(Ordering::Relaxed)
    ));
    match crate::hot::panics::last_thread_panic() {
        Some(m) => json::push_str(&mut s, &m),
        None => s.push_str("null"),
    }
    s.push_str(",\"output\":");
    crate::plane::sink::output_json(&mut s);
    s.push_str(",\"control\":{\"path\":");
    match &st.control_path {
        Some(p) => json::push_str(&mut s, p),
        None => s.push_str("null"),
    }
    s.push_str(",\"errors\":");
    push_str_array(&mut s, &st.control_errors);
    s.push_str("}}\n");
    s
}

/// The control file: its last content, to notice changes however they are made (in place,
/// atomic rename, symlink swap): the file is re-read by path at every tick.
struct ControlFile {
    path: PathBuf,
    last: Option<Vec<u8>>,
    /// The last reason the file was refused as a whole (reported once, until it changes).
    refused: Option<String>,
}

/// Largest control file read: one probe per line, a few hundred at most in practice.
const MAX_CONTROL_BYTES: u64 = 1 << 20;

/// Most probes live at once (armed, not expired or exhausted): each keeps per-site state and
/// costs its sites a flag; past this, arming is refused until some are disarmed.
pub(crate) const MAX_LIVE_PROBES: usize = 256;

/// The control file's bytes, or why it is refused as a whole: not a regular file (a
/// directory; a FIFO, which would block the reader), writable by every user (anyone could
/// arm probes in this program), or over [`MAX_CONTROL_BYTES`]. A missing file is empty.
pub(crate) fn read_control(path: &Path) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{shown}: {e}")),
    };
    if !meta.is_file() {
        return Err(format!(
            "{shown} is not a regular file (a directory, FIFO or device): nothing is armed from it; point LPROBE_CONTROL at a file"
        ));
    }
    if meta.permissions().mode() & 0o002 != 0 {
        return Err(format!(
            "{shown} is writable by every user, so anyone could arm probes in this program: nothing is armed from it; chmod o-w it"
        ));
    }
    if meta.len() > MAX_CONTROL_BYTES {
        return Err(format!(
            "{shown} is {} bytes, over the {} limit: nothing changed; write one probe per line",
            meta.len(),
            MAX_CONTROL_BYTES
        ));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_CONTROL_BYTES).read_to_end(&mut bytes))
        .map_err(|e| format!("{shown}: {e}"))?;
    Ok(bytes)
}

fn ticker() {
    let mut control = std::env::var_os("LPROBE_CONTROL")
        .filter(|p| !p.is_empty())
        .map(|p| ControlFile {
            path: PathBuf::from(p),
            last: None,
            refused: None,
        });
    if let Some(c) = &control {
        registry::lock().control_path = Some(c.path.display().to_string());
    }
    let mut probes: Vec<Arc<Probe>> = Vec::new();
    loop {
        if let Some(c) = &mut control {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check_control(c)));
        }
        // One buffer for the whole life of the thread: a tick allocates nothing when there is
        // nothing to report.
        probes.extend(registry::lock().probes.iter().cloned());
        for p in &probes {
            p.check_ttl();
            probe::report_counts(p, false);
        }
        // Clients that left, and watches whose probe ended, give their descriptors back.
        sink::prune(&|id| probes.iter().any(|p| *p.id == *id && p.is_live()));
        if NEEDS_REBUILD.swap(false, Ordering::Relaxed) {
            let mut st = registry::lock();
            registry::rebuild(&mut st);
            for p in st.probes.iter().filter(|p| !p.is_live()) {
                probe::report_final(p);
            }
        }
        probes.clear();
        // While probes are armed, lprobe's panic hook is kept outermost even if the program
        // replaced it (captures check too, before running `Debug` code); a hook the program
        // took and chained is found here.
        if registry::any_armed() {
            crate::hot::panics::revalidate();
        }
        std::thread::sleep(TICK);
    }
}

/// Test mode (`LPROBE_ARM_ALL=snapshot|log|count|duration`): arms every site of the table
/// (`duration`: every entry site that can be timed), to check that armed probes do not change
/// what a program computes. One probe per table covers all its sites, so arming costs a few
/// allocations whatever the number of sites (a program's own allocator may be slow, even
/// quadratic). Each site keeps the action's usual volume: a log line logs every capture, up to
/// 10 hits per site; a snapshot is taken once per site; counts and durations are reported like
/// any count or duration probe's (every call is timed: a function without a guard calls itself
/// again each time).
pub(crate) fn arm_all(table: &'static crate::Table, action: &str) {
    let (actions, per_site) = match action {
        "log" => (
            probe::Actions {
                log: Some(Arc::new(crate::lang::template::Template::every_capture())),
                ..Default::default()
            },
            Some(10),
        ),
        "snapshot" => (
            probe::Actions {
                snapshot: true,
                ..Default::default()
            },
            Some(1),
        ),
        "count" => (
            probe::Actions {
                count: true,
                ..Default::default()
            },
            None,
        ),
        "duration" => (
            probe::Actions {
                duration: true,
                ..Default::default()
            },
            None,
        ),
        // `LPROBE_ON_PANIC=1`: for the program's whole life.
        "on-panic" => (
            probe::Actions {
                on_panic: Some(crate::hot::flight::DEFAULT_LAST),
                ..Default::default()
            },
            None,
        ),
        other => {
            let _ = queue::emit(sink::error_record(&format!(
                "LPROBE_ARM_ALL: unknown action '{other}' (expected snapshot, log, count or duration)"
            )));
            return;
        }
    };
    let timing = actions.duration;
    let sites: Vec<(&'static crate::Table, u32)> = (0..table.sites.len() as u32)
        .filter(|&id| {
            table.sites.get(id as usize).is_some_and(|s| {
                s.kind != crate::SiteKind::None
                    && (!timing || (s.kind == crate::SiteKind::Entry && s.timed))
            })
        })
        .map(|id| (table, id))
        .collect();
    if sites.is_empty() {
        return;
    }
    let on_panic = actions.on_panic.is_some();
    let var = if on_panic {
        "LPROBE_ON_PANIC=1".to_string()
    } else {
        format!("LPROBE_ARM_ALL={action}")
    };
    let spec = probe::Spec {
        location: format!(
            "{} (every site of {})",
            &var[..var.find('=').unwrap_or(0)],
            table.package
        ),
        actions,
        cond: None,
        every: Duration::from_secs(10),
        max_hits: None,
        // A whole test suite's lifetime (the per-site limits bound the volume), or the
        // program's, for panic capture.
        ttl: Duration::from_secs(if on_panic { 100 * 365 } else { 7 } * 24 * 3600),
        rate: if on_panic { 10 } else { u64::MAX },
        limits: probe::env_limits(),
        text: var,
    };
    let mut st = registry::lock();
    let id = format!("p{}", st.next_probe);
    st.next_probe += 1;
    let mut p = Probe::new(id.into(), spec, sites, Origin::Socket);
    if let Some(max) = per_site {
        p = p.with_per_site_max(max);
    }
    st.probes.push(Arc::new(p));
    registry::rebuild(&mut st);
}

fn check_control(c: &mut ControlFile) {
    // A missing file means no probes from it (a ConfigMap can be emptied or removed); a file
    // refused as a whole changes nothing (the probes it armed before stay) and is reported.
    let content = match read_control(&c.path) {
        Ok(bytes) => bytes,
        Err(why) => {
            if c.refused.as_deref() != Some(&why) {
                let _ = queue::emit(sink::error_record(&format!("control file: {why}")));
                registry::lock().control_errors = vec![why.clone()];
                c.refused = Some(why);
                // Read again once it is acceptable, even with the same content.
                c.last = None;
            }
            return;
        }
    };
    c.refused = None;
    if c.last.as_deref() == Some(&content[..]) {
        return;
    }
    c.last = Some(content.clone());
    apply_control(&c.path, &String::from_utf8_lossy(&content));
}

/// Makes the control-file probes exactly the file's valid lines. A probe whose line is
/// unchanged keeps running (its counters and hit limits carry over).
pub(crate) fn apply_control(path: &Path, text: &str) {
    let mut st = registry::lock();
    let mut errors = Vec::new();
    let mut wanted: Vec<(usize, Vec<String>, String)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words = match crate::lang::args::split(line) {
            Ok(w) => w,
            Err(e) => {
                errors.push(format!("{}:{}: {e}", path.display(), n + 1));
                continue;
            }
        };
        let refs: Vec<&str> = words.iter().map(String::as_str).collect();
        wanted.push((n + 1, words.clone(), crate::lang::args::join(&refs)));
    }
    // Drop control probes that are no longer wanted.
    let keep: Vec<&str> = wanted.iter().map(|(_, _, t)| t.as_str()).collect();
    let mut gone = Vec::new();
    st.probes.retain(|p| {
        let stays = p.origin != Origin::Control || keep.contains(&p.spec.text.as_str());
        if !stays {
            p.disarm();
            gone.push(p.clone());
        }
        stays
    });
    for (n, words, text) in &wanted {
        if st
            .probes
            .iter()
            .any(|p| p.origin == Origin::Control && &p.spec.text == text)
        {
            continue;
        }
        if let Err(e) = new_probe(&mut st, words, Origin::Control) {
            errors.push(format!("{}:{n}: {e}", path.display()));
        }
    }
    registry::rebuild(&mut st);
    // A probe removed from the file reports its final counts, as `disarm` does.
    for p in &gone {
        probe::report_final(p);
    }
    for e in &errors {
        let _ = queue::emit(sink::error_record(&format!("control file: {e}")));
    }
    st.control_errors = errors;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_control_file_is_refused_whole_when_it_is_not_a_private_regular_file_of_sane_size() {
        let dir = std::env::temp_dir().join(format!("lprobe-control-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("probes");
        assert_eq!(
            read_control(&file),
            Ok(Vec::new()),
            "a missing file is empty"
        );
        std::fs::write(&file, "src/main.rs:4 --count\n").expect("write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert_eq!(read_control(&file).map(|b| b.len()), Ok(22));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        let e = read_control(&file).expect_err("world-writable");
        assert!(
            e.contains("writable by every user") && e.contains("chmod o-w"),
            "{e}"
        );
        let e = read_control(&dir).expect_err("a directory");
        assert!(e.contains("not a regular file"), "{e}");
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            // Refused before it is opened: opening a FIFO would block the control thread.
            assert!(read_control(&fifo).is_err_and(|e| e.contains("FIFO")));
        }
        let big = dir.join("big");
        std::fs::write(&big, vec![b'#'; (MAX_CONTROL_BYTES + 1) as usize]).expect("write");
        std::fs::set_permissions(&big, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let e = read_control(&big).expect_err("too big");
        assert!(e.contains("over the 1048576 limit"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn live_probes_are_capped_with_a_clear_error() {
        let t = crate::hot::registry::tests::table(2);
        let mut st = State {
            tables: vec![t],
            mirrors: Vec::new(),
            probes: Vec::new(),
            next_probe: 1,
            control_errors: Vec::new(),
            control_path: None,
        };
        let words: Vec<String> = ["src/lib.rs:1", "--count"].map(String::from).to_vec();
        for _ in 0..MAX_LIVE_PROBES {
            new_probe(&mut st, &words, Origin::Socket).expect("under the cap");
        }
        let e = new_probe(&mut st, &words, Origin::Socket).expect_err("over the cap");
        assert!(
            e.contains("256 probes are live") && e.contains("lprobe disarm"),
            "{e}"
        );
        // A probe that stopped firing leaves room.
        st.probes[0].disarm();
        assert!(new_probe(&mut st, &words, Origin::Socket).is_ok());
    }
}
