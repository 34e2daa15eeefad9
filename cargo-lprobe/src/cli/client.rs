//! The CLI side of the socket protocol (see "Socket protocol" in ARCHITECTURE.md): finding the
//! sockets of instrumented processes and talking `lprobe/1` to them.
//!
//! This is the only module of `cargo-lprobe` that knows the wire format. A request is one line,
//! `lprobe/1 VERB ARGS…\n`, with the arguments quoted like a POSIX shell; the answer starts with
//! one JSON object line, `{"ok":true,…}` or `{"ok":false,"error":"…"}`, and streaming verbs
//! (`watch`, `tail`) follow it with one JSON record per line until the server closes.

use std::ffi::OsStr;
use std::fmt;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The protocol tag every request line starts with.
pub const PROTOCOL: &str = "lprobe/1";

/// Connect and read timeout for non-streaming requests.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// The environment variable naming one socket to use instead of scanning directories.
pub const SOCKET_ENV: &str = "LPROBE_SOCKET";

/// The longest request line the runtime accepts (including the trailing newline).
pub const MAX_REQUEST: usize = 64 * 1024;

/// How often blocking stream reads wake up to check for a deadline or a cancellation.
const POLL: Duration = Duration::from_millis(200);

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// The process answered `{"ok":false,"error":"…"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError(pub String);

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ServerError {}

// ---------------------------------------------------------------------------------------------
// Discovery
// ---------------------------------------------------------------------------------------------

/// A socket file that may belong to an instrumented process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketEntry {
    /// The socket's path.
    pub path: PathBuf,
    /// The pid, from the file stem (`<pid>.sock`); `None` if the stem is not a number (possible
    /// with `$LPROBE_SOCKET`).
    pub pid: Option<u32>,
}

impl SocketEntry {
    /// An entry for `path`, with the pid taken from its file stem.
    pub fn new(path: PathBuf) -> Self {
        let pid = path
            .file_stem()
            .and_then(OsStr::to_str)
            .and_then(|s| s.parse::<u32>().ok());
        SocketEntry { path, pid }
    }
}

/// Where discovery looked: either the one socket of `$LPROBE_SOCKET` or the scanned directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Searched {
    /// `$LPROBE_SOCKET` was set to this path.
    Env(PathBuf),
    /// These directories were scanned for `*.sock`.
    Dirs(Vec<PathBuf>),
}

impl fmt::Display for Searched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Searched::Env(p) => write!(f, "{} (from ${SOCKET_ENV})", p.display()),
            Searched::Dirs(dirs) => {
                let v: Vec<String> = dirs
                    .iter()
                    .map(|d| format!("{}/*.sock", d.display()))
                    .collect();
                f.write_str(&v.join(", "))
            }
        }
    }
}

/// The socket files found by [`discover`], not yet checked for liveness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// Candidate sockets, sorted by pid then path.
    pub sockets: Vec<SocketEntry>,
    /// Where they were looked for (for error messages).
    pub searched: Searched,
    /// Directories not scanned because they are not trusted (see `trust::check_dir`), each
    /// with the reason, for a warning.
    pub refused: Vec<String>,
}

/// The current user's uid, as the owner of `/proc/self`.
pub fn current_uid() -> Option<u32> {
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// The directories the runtime puts sockets in: `$XDG_RUNTIME_DIR/lprobe` (if that variable is
/// set) and `/tmp/lprobe-<uid>`, then other users' `/tmp/lprobe-<uid>` shared with one of our
/// groups (`LPROBE_ALLOW_GROUP`, see `trust::shared_dirs`).
pub fn socket_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(xdg) = std::env::var_os("XDG_RUNTIME_DIR") {
        if !xdg.is_empty() {
            dirs.push(PathBuf::from(xdg).join("lprobe"));
        }
    }
    if let Some(uid) = current_uid() {
        dirs.push(PathBuf::from(format!("/tmp/lprobe-{uid}")));
    }
    dirs.extend(super::trust::shared_dirs(
        super::trust::my_uid(),
        &super::trust::my_groups(),
    ));
    dirs
}

/// Lists `*.sock` files in `dirs` (missing or unreadable directories are skipped, untrusted
/// ones too, with the reason in the second list). A path found twice (e.g. through a
/// symlinked directory) is listed once.
pub fn scan(dirs: &[PathBuf]) -> (Vec<SocketEntry>, Vec<String>) {
    let mut found: Vec<SocketEntry> = Vec::new();
    let mut refused = Vec::new();
    let me = super::trust::my_uid();
    for dir in dirs {
        let Ok(info) = super::trust::DirInfo::read(dir) else {
            continue;
        };
        if let Err(why) = super::trust::check_dir(dir, &info, me) {
            refused.push(why);
            continue;
        }
        let Ok(rd) = std::fs::read_dir(dir) else {
            continue;
        };
        for ent in rd.flatten() {
            let path = ent.path();
            if path.extension() != Some(OsStr::new("sock")) {
                continue;
            }
            // Skip regular files and directories; keep sockets (and anything whose type we cannot
            // tell, so a connect attempt reports the problem).
            if let Ok(ft) = ent.file_type() {
                if ft.is_dir() || ft.is_file() {
                    continue;
                }
            }
            if found.iter().any(|e| e.path == path) {
                continue;
            }
            found.push(SocketEntry::new(path));
        }
    }
    found.sort_by(|a, b| a.pid.cmp(&b.pid).then_with(|| a.path.cmp(&b.path)));
    (found, refused)
}

/// Finds candidate sockets: the single `$LPROBE_SOCKET` if set, else a [`scan`] of
/// [`socket_dirs`].
pub fn discover() -> Discovery {
    match std::env::var_os(SOCKET_ENV) {
        Some(p) if !p.is_empty() => {
            let path = PathBuf::from(p);
            Discovery {
                sockets: vec![SocketEntry::new(path.clone())],
                searched: Searched::Env(path),
                refused: Vec::new(),
            }
        }
        _ => discover_in(&socket_dirs()),
    }
}

/// [`discover`] without the environment: scans exactly `dirs`.
pub fn discover_in(dirs: &[PathBuf]) -> Discovery {
    let (sockets, refused) = scan(dirs);
    Discovery {
        sockets,
        searched: Searched::Dirs(dirs.to_vec()),
        refused,
    }
}

/// The inode of this process's pid namespace (`/proc/self/ns/pid`), to compare with the one a
/// process reports in `hello`.
pub fn pid_namespace() -> Option<u64> {
    std::fs::metadata("/proc/self/ns/pid").ok().map(|m| m.ino())
}

// ---------------------------------------------------------------------------------------------
// hello / liveness
// ---------------------------------------------------------------------------------------------

/// The answer to `hello`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// The process id.
    pub pid: u32,
    /// Absolute path of the program.
    #[serde(default)]
    pub program: String,
    /// The runtime's version.
    #[serde(default)]
    pub version: String,
    /// Number of probe sites compiled in.
    #[serde(default)]
    pub sites: u64,
    /// Number of armed probes.
    #[serde(default)]
    pub armed: u64,
    /// The socket the process serves (as the process sees it).
    #[serde(default)]
    pub socket: String,
    /// The inode of its pid namespace (`None` from runtimes before it was reported, or
    /// without `/proc`): `pid` is its pid there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pidns: Option<u64>,
}

impl Hello {
    /// Whether the process lives in another pid namespace than `lprobe` (its `pid` is not
    /// the one `ps` shows here).
    pub fn other_pid_namespace(&self) -> bool {
        matches!((self.pidns, pid_namespace()), (Some(a), Some(b)) if a != b)
    }
}

/// What a socket turned out to be when greeted with `hello`.
#[derive(Debug)]
pub enum Reach {
    /// A live process answered.
    Alive {
        /// The parsed answer.
        hello: Hello,
        /// The answer as sent, minus `"ok"`.
        raw: Value,
    },
    /// Nobody serves this socket any more (connecting was refused or found no socket); the
    /// string says why.
    Stale(String),
    /// Something else went wrong (timeout, permission, protocol error…).
    Unreachable(anyhow::Error),
}

/// Whether an error chain contains an I/O error meaning "nobody listens here".
fn is_dead_socket_error(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<io::Error>().is_some_and(|io| {
            matches!(
                io.kind(),
                io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound
            )
        })
    })
}

/// Greets the socket with `hello` and classifies the result. Does not delete anything.
///
/// Only the kernel's answer to connecting tells a socket is stale: a listening socket accepts
/// as long as a process holds it, whatever its pid. The pid in the file name is the process's
/// in its own pid namespace; a process in a container sharing the directory has a pid that
/// does not exist here (or names another process), so a missing `/proc/<pid>` says nothing.
pub fn reach(entry: &SocketEntry) -> Reach {
    match request(&entry.path, "hello", &[] as &[&str]) {
        Ok(v) => match serde_json::from_value::<Hello>(v.clone()) {
            Ok(hello) => Reach::Alive {
                hello,
                raw: strip_ok(v),
            },
            Err(e) => Reach::Unreachable(anyhow!(
                "{}: malformed hello answer: {e}",
                entry.path.display()
            )),
        },
        Err(e) if is_dead_socket_error(&e) => Reach::Stale("nobody listens on it".to_string()),
        Err(e) => Reach::Unreachable(e),
    }
}

/// Sends `hello` to `socket`.
pub fn hello(socket: &Path) -> Result<Hello> {
    let v = request(socket, "hello", &[] as &[&str])?;
    serde_json::from_value(v)
        .with_context(|| format!("{}: malformed hello answer", socket.display()))
}

/// Removes a stale socket file. A file that is already gone is not an error; anything that is
/// not a socket (a regular file named by `$LPROBE_SOCKET`, say) is left alone and reported.
pub fn remove_stale(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
        Ok(m) if !m.file_type().is_socket() => {
            return Err(io::Error::other(format!(
                "{} is not a socket; not removing it",
                path.display()
            )))
        }
        Ok(_) => {}
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// Returns `v` without its `"ok"` key (if `v` is an object).
pub fn strip_ok(mut v: Value) -> Value {
    if let Value::Object(map) = &mut v {
        map.remove("ok");
    }
    v
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

/// Quotes one argument POSIX-shell style (with the `shlex` crate). Fails on NUL bytes and on
/// line breaks, which cannot travel in a one-line request.
pub fn quote_arg(arg: &str) -> Result<String> {
    if arg.contains(['\n', '\r']) {
        bail!("argument {arg:?} contains a line break, which the protocol cannot carry");
    }
    match shlex::try_quote(arg) {
        Ok(q) => Ok(q.into_owned()),
        Err(_) => bail!("argument {arg:?} contains a NUL byte"),
    }
}

/// Quotes each argument (see [`quote_arg`]) and joins them with single spaces.
pub fn join_args<S: AsRef<str>>(args: &[S]) -> Result<String> {
    let quoted: Result<Vec<String>> = args.iter().map(|a| quote_arg(a.as_ref())).collect();
    Ok(quoted?.join(" "))
}

/// The request line for `verb` with `args`, newline included: `lprobe/1 VERB ARGS…\n`.
pub fn request_line<S: AsRef<str>>(verb: &str, args: &[S]) -> Result<String> {
    if verb.is_empty() || !verb.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') {
        bail!("invalid verb {verb:?}");
    }
    let mut line = format!("{PROTOCOL} {verb}");
    if !args.is_empty() {
        line.push(' ');
        line.push_str(&join_args(args)?);
    }
    line.push('\n');
    if line.len() > MAX_REQUEST {
        bail!(
            "request is {} bytes, more than the protocol's limit of {MAX_REQUEST}",
            line.len()
        );
    }
    Ok(line)
}

/// Connects to `socket`, giving up after `timeout`, and checks before anything is sent that
/// the socket's directory and the process serving it are trusted (`trust::verify`).
///
/// `UnixStream::connect` has no timeout of its own and can block while the listener's backlog is
/// full, so the connect runs on a helper thread.
pub fn connect(socket: &Path, timeout: Duration) -> Result<UnixStream> {
    let (tx, rx) = mpsc::channel();
    let path = socket.to_path_buf();
    std::thread::Builder::new()
        .name("lprobe-connect".into())
        .spawn(move || {
            let _ = tx.send(UnixStream::connect(&path));
        })
        .context("cannot start a thread")?;
    match rx.recv_timeout(timeout) {
        Ok(Ok(s)) => {
            super::trust::verify(&s, socket)?;
            Ok(s)
        }
        Ok(Err(e)) => {
            Err(anyhow::Error::new(e).context(format!("cannot connect to {}", socket.display())))
        }
        Err(_) => bail!(
            "cannot connect to {}: no answer within {}s",
            socket.display(),
            timeout.as_secs()
        ),
    }
}

/// Parses the first response line: the payload of `{"ok":true,…}`, or a [`ServerError`].
pub fn parse_response(line: &str) -> Result<Value> {
    let v: Value = serde_json::from_str(line.trim_end())
        .with_context(|| format!("malformed response {:?}", truncate(line.trim_end(), 200)))?;
    let Some(obj) = v.as_object() else {
        bail!(
            "malformed response (not a JSON object): {}",
            truncate(line.trim_end(), 200)
        );
    };
    match obj.get("ok") {
        Some(Value::Bool(true)) => Ok(v),
        Some(Value::Bool(false)) => {
            let msg = match obj.get("error") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => "the process reported an error without a message".to_string(),
            };
            Err(ServerError(msg).into())
        }
        _ => bail!(
            "malformed response (no \"ok\" field): {}",
            truncate(line.trim_end(), 200)
        ),
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Sends one request and returns the first response object (with `"ok":true` still in it).
/// Connecting, writing and reading each time out after [`TIMEOUT`].
pub fn request<S: AsRef<str>>(socket: &Path, verb: &str, args: &[S]) -> Result<Value> {
    request_with_timeout(socket, verb, args, TIMEOUT)
}

/// [`request`] with a custom timeout.
pub fn request_with_timeout<S: AsRef<str>>(
    socket: &Path,
    verb: &str,
    args: &[S],
    timeout: Duration,
) -> Result<Value> {
    let line = request_line(verb, args)?;
    let stream = connect(socket, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut conn = Conn::new(stream, socket);
    conn.send(&line)?;
    conn.read_first(None)
}

/// An open streaming connection (`watch`, `tail`) after its first response line.
pub struct Stream {
    /// The first response object (`"ok":true` included).
    pub first: Value,
    conn: Conn,
}

/// One step of reading a [`Stream`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// A record line (without its line break; never empty).
    Line(String),
    /// The server closed the connection.
    Closed,
    /// The deadline passed.
    TimedOut,
    /// The cancel flag was raised.
    Cancelled,
}

/// Opens a streaming request: connects, sends, and reads the first line (within [`TIMEOUT`]).
/// Fails with [`ServerError`] if the process refused it.
pub fn open_stream<S: AsRef<str>>(socket: &Path, verb: &str, args: &[S]) -> Result<Stream> {
    let line = request_line(verb, args)?;
    let stream = connect(socket, TIMEOUT)?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    stream.set_read_timeout(Some(POLL))?;
    let mut conn = Conn::new(stream, socket);
    conn.send(&line)?;
    let first = conn.read_first(Some(Instant::now() + TIMEOUT))?;
    Ok(Stream { first, conn })
}

impl Stream {
    /// Reads the next record line, waiting until `deadline` (forever if `None`) and giving up
    /// early when `cancel` becomes true (checked a few times a second).
    pub fn next_line(&mut self, deadline: Option<Instant>, cancel: &AtomicBool) -> Result<Next> {
        loop {
            match self.conn.read_line_until(deadline, Some(cancel))? {
                Next::Line(l) if l.trim().is_empty() => continue,
                other => return Ok(other),
            }
        }
    }

    /// The socket this stream reads from.
    pub fn socket(&self) -> &Path {
        &self.conn.socket
    }
}

/// A connection with a line buffer that survives read timeouts (partial lines are kept).
struct Conn {
    reader: BufReader<UnixStream>,
    buf: Vec<u8>,
    socket: PathBuf,
}

impl Conn {
    fn new(stream: UnixStream, socket: &Path) -> Self {
        Conn {
            reader: BufReader::new(stream),
            buf: Vec::new(),
            socket: socket.to_path_buf(),
        }
    }

    fn send(&mut self, line: &str) -> Result<()> {
        let s = self.reader.get_mut();
        let sent = s.write_all(line.as_bytes()).and_then(|()| s.flush());
        let Err(e) = sent else {
            return Ok(());
        };
        // A process that refuses a peer answers at once and closes without reading: its
        // reason is waiting to be read, and says more than the broken pipe.
        if matches!(
            e.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
        ) {
            if let Ok(Next::Line(l)) =
                self.read_line_until(Some(Instant::now() + Duration::from_secs(1)), None)
            {
                parse_response(&l)?;
            }
        }
        Err(anyhow::Error::new(e)
            .context(format!("cannot send request to {}", self.socket.display())))
    }

    /// Reads the first response line; a closed connection or timeout is an error.
    fn read_first(&mut self, deadline: Option<Instant>) -> Result<Value> {
        match self.read_line_until(deadline, None)? {
            Next::Line(l) => parse_response(&l),
            Next::Closed => bail!(
                "{}: the process closed the connection without answering",
                self.socket.display()
            ),
            Next::TimedOut | Next::Cancelled => bail!(
                "{}: no answer within {}s",
                self.socket.display(),
                TIMEOUT.as_secs()
            ),
        }
    }

    fn read_line_until(
        &mut self,
        deadline: Option<Instant>,
        cancel: Option<&AtomicBool>,
    ) -> Result<Next> {
        loop {
            if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                return Ok(Next::Cancelled);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(Next::TimedOut);
            }
            match self.reader.read_until(b'\n', &mut self.buf) {
                Ok(0) => {
                    // EOF: deliver a last unterminated line, if any.
                    if self.buf.is_empty() {
                        return Ok(Next::Closed);
                    }
                    return Ok(Next::Line(self.take_line()));
                }
                Ok(_) => {
                    if self.buf.last() == Some(&b'\n') {
                        return Ok(Next::Line(self.take_line()));
                    }
                    // Partial data without newline and not EOF cannot happen with read_until,
                    // but loop again to be safe.
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    // With no deadline and no cancel flag, a read timeout means the process
                    // stopped answering.
                    if deadline.is_none() && cancel.is_none() {
                        bail!(
                            "{}: no answer within {}s",
                            self.socket.display(),
                            TIMEOUT.as_secs()
                        );
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return Ok(Next::Closed);
                }
                Err(e) => {
                    return Err(anyhow::Error::new(e)
                        .context(format!("cannot read from {}", self.socket.display())))
                }
            }
        }
    }

    fn take_line(&mut self) -> String {
        let mut bytes = std::mem::take(&mut self.buf);
        while matches!(bytes.last(), Some(b'\n' | b'\r')) {
            bytes.pop();
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;
    use std::thread::JoinHandle;

    /// A fake server: accepts `responses.len()` connections in turn; for each, reads one request
    /// line and writes the matching response text verbatim. Returns the received lines.
    pub(crate) fn fake_server(path: &Path, responses: Vec<String>) -> JoinHandle<Vec<String>> {
        let listener = UnixListener::bind(path).expect("bind");
        std::thread::spawn(move || {
            let mut got = Vec::new();
            for resp in responses {
                let Ok((stream, _)) = listener.accept() else {
                    break;
                };
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                got.push(line);
                let mut s = reader.into_inner();
                let _ = s.write_all(resp.as_bytes());
            }
            got
        })
    }

    #[test]
    fn request_line_quotes_posix_style() {
        let l = request_line(
            "arm",
            &["src/main.rs:42", "--log", "order {order} total={total}"],
        )
        .unwrap();
        assert_eq!(
            l,
            "lprobe/1 arm src/main.rs:42 --log 'order {order} total={total}'\n"
        );
        assert_eq!(
            request_line("hello", &[] as &[&str]).unwrap(),
            "lprobe/1 hello\n"
        );
        let l = request_line("arm", &["x", "--log", "it's"]).unwrap();
        assert_eq!(
            shlex::split(l.trim_end()).unwrap(),
            ["lprobe/1", "arm", "x", "--log", "it's"]
        );
        assert_eq!(request_line("sites", &[""]).unwrap(), "lprobe/1 sites ''\n");
        assert!(request_line("arm", &["a\nb"]).is_err());
        assert!(request_line("arm", &["a\0b"]).is_err());
        assert!(request_line("Bad verb", &[] as &[&str]).is_err());
    }

    #[test]
    fn request_roundtrip_with_fake_server() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("77.sock");
        let server = fake_server(
            &sock,
            vec!["{\"ok\":true,\"probe\":\"p1\",\"sites\":[\"src/main.rs:42\"]}\n".into()],
        );
        let v = request(&sock, "arm", &["src/main.rs:42", "--count"]).unwrap();
        assert_eq!(v["probe"], "p1");
        assert_eq!(
            server.join().unwrap(),
            ["lprobe/1 arm src/main.rs:42 --count\n"]
        );
    }

    #[test]
    fn server_error_is_typed() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("78.sock");
        let server = fake_server(
            &sock,
            vec!["{\"ok\":false,\"error\":\"no site matches src/x.rs:1\"}\n".into()],
        );
        let err = request(&sock, "arm", &["src/x.rs:1"]).unwrap_err();
        assert_eq!(
            err.downcast_ref::<ServerError>(),
            Some(&ServerError("no site matches src/x.rs:1".into()))
        );
        server.join().unwrap();
    }

    #[test]
    fn closed_without_answer_and_garbage_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("79.sock");
        let server = fake_server(&sock, vec![String::new(), "not json\n".into()]);
        let e = request(&sock, "hello", &[] as &[&str]).unwrap_err();
        assert!(format!("{e:#}").contains("without answering"), "{e:#}");
        let e = request(&sock, "hello", &[] as &[&str]).unwrap_err();
        assert!(format!("{e:#}").contains("malformed"), "{e:#}");
        server.join().unwrap();
    }

    #[test]
    fn parse_response_cases() {
        assert!(parse_response("{\"ok\":true}").is_ok());
        assert!(parse_response("[1]").is_err());
        assert!(parse_response("{\"pid\":1}").is_err());
        let e = parse_response("{\"ok\":false}").unwrap_err();
        assert!(e.downcast_ref::<ServerError>().is_some());
    }

    #[test]
    fn stream_reads_records_until_close() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("80.sock");
        let server = fake_server(
            &sock,
            vec!["{\"ok\":true}\n{\"kind\":\"log\"}\n\n{\"kind\":\"count\"}".into()],
        );
        let cancel = AtomicBool::new(false);
        let mut s = open_stream(&sock, "tail", &[] as &[&str]).unwrap();
        assert_eq!(s.first["ok"], true);
        assert_eq!(
            s.next_line(None, &cancel).unwrap(),
            Next::Line("{\"kind\":\"log\"}".into())
        );
        assert_eq!(
            s.next_line(None, &cancel).unwrap(),
            Next::Line("{\"kind\":\"count\"}".into())
        );
        assert_eq!(s.next_line(None, &cancel).unwrap(), Next::Closed);
        assert_eq!(server.join().unwrap(), ["lprobe/1 tail\n"]);
    }

    #[test]
    fn stream_deadline_and_cancel() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("81.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let mut s = reader.into_inner();
            s.write_all(b"{\"ok\":true,\"probe\":\"p3\"}\n{\"part")
                .unwrap();
            std::thread::sleep(Duration::from_millis(700));
            // The connection stays open until the client is done.
            let mut rest = [0u8; 1];
            let _ = io::Read::read(&mut s, &mut rest);
        });
        let cancel = AtomicBool::new(false);
        let mut s = open_stream(&sock, "watch", &["src/main.rs:1", "--snapshot"]).unwrap();
        assert_eq!(s.first["probe"], "p3");
        let t0 = Instant::now();
        let n = s
            .next_line(Some(Instant::now() + Duration::from_millis(300)), &cancel)
            .unwrap();
        assert_eq!(n, Next::TimedOut);
        assert!(t0.elapsed() < Duration::from_secs(2));
        cancel.store(true, Ordering::Relaxed);
        assert_eq!(s.next_line(None, &cancel).unwrap(), Next::Cancelled);
        drop(s);
        server.join().unwrap();
    }

    #[test]
    fn scan_finds_sockets_and_pids() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let _l1 = UnixListener::bind(a.path().join("200.sock")).unwrap();
        let _l2 = UnixListener::bind(b.path().join("100.sock")).unwrap();
        let _l3 = UnixListener::bind(b.path().join("weird.sock")).unwrap();
        std::fs::write(a.path().join("300.sock"), b"regular file").unwrap();
        std::fs::write(a.path().join("notes.txt"), b"x").unwrap();
        let missing = a.path().join("missing");
        let dirs = vec![
            a.path().to_path_buf(),
            missing.clone(),
            b.path().to_path_buf(),
        ];
        let d = discover_in(&dirs);
        let pids: Vec<Option<u32>> = d.sockets.iter().map(|e| e.pid).collect();
        assert_eq!(pids, [None, Some(100), Some(200)]);
        assert_eq!(d.sockets[1].path, b.path().join("100.sock"));
        let text = d.searched.to_string();
        assert!(
            text.contains(&format!("{}/*.sock", missing.display())),
            "{text}"
        );
    }

    #[test]
    fn reach_classifies_stale_and_alive() {
        let dir = tempfile::tempdir().unwrap();
        // A socket file nobody listens on: connect is refused → stale.
        let dead = dir.path().join(format!("{}.sock", std::process::id()));
        drop(UnixListener::bind(&dead).unwrap());
        assert!(matches!(
            reach(&SocketEntry::new(dead.clone())),
            Reach::Stale(_)
        ));
        remove_stale(&dead).unwrap();
        assert!(!dead.exists());
        remove_stale(&dead).unwrap();

        // No socket at the path: stale (the pid in the name is never looked up).
        let gone = SocketEntry {
            path: dir.path().join("4294967295.sock"),
            pid: Some(u32::MAX),
        };
        assert!(matches!(reach(&gone), Reach::Stale(_)));

        // A live fake process.
        let me = std::process::id();
        let live = dir.path().join("alive.sock");
        let server = fake_server(
            &live,
            vec![format!(
                "{{\"ok\":true,\"pid\":{me},\"program\":\"/bin/demo\",\"version\":\"0.1.0\",\"sites\":4,\"armed\":1,\"socket\":\"x\"}}\n"
            )],
        );
        match reach(&SocketEntry::new(live)) {
            Reach::Alive { hello, raw } => {
                assert_eq!(hello.pid, me);
                assert_eq!(hello.sites, 4);
                assert!(raw.get("ok").is_none());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(server.join().unwrap(), ["lprobe/1 hello\n"]);
    }
}
