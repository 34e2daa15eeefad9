//! `lprobe ui`: a local web view to arm probes from the source and watch their records.
//!
//! A small HTTP server (`tiny_http`, as `lprobe exporter`) on a loopback address serves one
//! page (`index.html` with `style.css` and `app.js` inlined, all embedded in the binary) and
//! the JSON API the page uses (`api`). Every request must carry the random token printed with
//! the URL, in the `X-Lprobe-Token` header, as `Authorization: Bearer TOKEN` or as the
//! `token` query parameter (never a cookie, so another site cannot make the browser send
//! it); a request whose `Origin` is not the server's own, or whose `Host` is not a loopback
//! name with the server's port (DNS rebinding), is refused.
//!
//! The API reuses the CLI's code: process selection (`select`), the socket client
//! (`client`), `lprobe arm`'s command-line parser (an arm request is parsed as
//! `lprobe arm …` would be) and the version-skew check (`skew`), so its errors carry the
//! CLI's messages.

mod api;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use clap::Args;

use crate::cli::{exit_code, Ctx};

const INDEX: &str = include_str!("index.html");
const STYLE: &str = include_str!("style.css");
const SCRIPT: &str = include_str!("app.js");

/// How often the accept loop looks at the cancel flag.
const POLL: Duration = Duration::from_millis(200);

/// Requests served at once (each on its own thread; a record stream holds one for its life).
const MAX_CONCURRENT: usize = 32;

/// `lprobe ui`.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
#[command(after_help = "Examples:\n  lprobe ui\n  lprobe ui --open\n  \
        lprobe ui --listen 127.0.0.1:8765")]
pub struct UiArgs {
    /// Address to serve on: a loopback address and a port (0 picks a free one)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: String,
    /// Open the page in the default browser (xdg-open, open or $BROWSER)
    #[arg(long)]
    pub open: bool,
}

/// `lprobe ui --help`.
pub const LONG_ABOUT: &str = "Serve a local web page to arm probes by clicking source lines \
    and to watch their records live, until Ctrl-C.\n\n\
    The page lists the instrumented processes (as `lprobe ps`); for the one picked it shows \
    its instrumented files from the workspace around the current directory, with a mark on \
    every probe site (hover: the names it captures). Clicking a mark opens a form for a log, \
    snapshot, count, duration or tic-toc probe with its condition and limits; what the \
    process refuses is shown word for word. A file that changed since the process was built \
    is marked so, and arming by line in it is refused until the program is rebuilt. The armed \
    probes and the records stream live: snapshots as a tree of variables with the stack's \
    frames linked to the source, durations as percentile charts, counts as rate sparklines.\n\n\
    The server listens on loopback only and prints the page's URL with a random token; every \
    request must carry it (header X-Lprobe-Token, Authorization: Bearer, or ?token=), and \
    requests from another origin are refused. Every asset is in the binary: no network is \
    needed. The JSON API the page uses is documented in the README (`lprobe ui`).";

/// What one server serves with: its token, and what `Host`/`Origin` may say.
struct Guard {
    token: String,
    port: u16,
}

/// An HTTP answer: status, content type, body.
pub(crate) struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Reply {
    pub(crate) fn json(status: u16, v: &serde_json::Value) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            body: v.to_string().into_bytes(),
        }
    }

    /// `{"error": msg}`.
    pub(crate) fn error(status: u16, msg: &str) -> Reply {
        Reply::json(status, &serde_json::json!({ "error": msg }))
    }
}

/// A random token: 32 hex digits from the kernel's random source.
fn new_token() -> Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("cannot read /dev/urandom for the UI's token")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The listen address, refused unless it is a loopback address: the token travels in clear
/// text, and probes read the program's memory.
fn loopback(listen: &str) -> Result<SocketAddr> {
    let addr: SocketAddr = listen.parse().map_err(|_| {
        exit_code::usage(format!(
            "invalid --listen {listen:?} (expected an address and a port, e.g. 127.0.0.1:0)"
        ))
    })?;
    if !addr.ip().is_loopback() {
        return Err(exit_code::usage(format!(
            "lprobe ui serves on loopback only, not {listen}: its token travels in clear text \
             (from another machine, forward the port over SSH: ssh -L 8765:127.0.0.1:8765 HOST, \
             then lprobe ui --listen 127.0.0.1:8765 there)"
        )));
    }
    Ok(addr)
}

/// `lprobe ui`: serves until Ctrl-C.
pub fn cmd_ui(a: &UiArgs, ctx: &mut Ctx<'_>) -> Result<i32> {
    let addr = loopback(&a.listen)?;
    let server =
        tiny_http::Server::http(addr).map_err(|e| anyhow!("cannot listen on {}: {e}", a.listen))?;
    let port = match server.server_addr() {
        tiny_http::ListenAddr::IP(a) => a.port(),
        #[allow(unreachable_patterns)]
        _ => addr.port(),
    };
    let guard = Guard {
        token: new_token()?,
        port,
    };
    let host = match addr.ip() {
        IpAddr::V6(ip) => format!("[{ip}]"),
        IpAddr::V4(ip) => ip.to_string(),
    };
    let url = format!("http://{host}:{port}/?token={}", guard.token);
    ctx.line(&format!("lprobe ui: {url}"))?;
    if ctx.interactive {
        ctx.note("serving until Ctrl-C");
    }
    if a.open {
        open_browser(&url, ctx);
    }
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let busy = AtomicUsize::new(0);
    let cancel = ctx.cancel;
    std::thread::scope(|scope| {
        while !cancel.load(Ordering::Relaxed) {
            let request = match server.recv_timeout(POLL) {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => return Err(anyhow!("the UI server failed: {e}")),
            };
            if busy.fetch_add(1, Ordering::SeqCst) >= MAX_CONCURRENT {
                busy.fetch_sub(1, Ordering::SeqCst);
                let r = Reply::error(503, "too many requests at once; try again");
                send(request, r);
                continue;
            }
            let (guard, cwd, busy) = (&guard, &cwd, &busy);
            scope.spawn(move || {
                serve(request, guard, cwd, cancel);
                busy.fetch_sub(1, Ordering::SeqCst);
            });
        }
        Ok(())
    })?;
    Ok(exit_code::SUCCESS)
}

/// Runs the platform's opener; a failure is a warning (the URL is printed anyway).
fn open_browser(url: &str, ctx: &mut Ctx<'_>) {
    let opener = std::env::var("BROWSER").ok().unwrap_or_else(|| {
        if cfg!(target_os = "macos") {
            "open".into()
        } else {
            "xdg-open".into()
        }
    });
    let spawned = std::process::Command::new(&opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Err(e) = spawned {
        ctx.note(&format!(
            "warning: cannot open a browser with {opener}: {e}; open the URL above yourself"
        ));
    }
}

/// One request, on its own thread.
fn serve(
    mut request: tiny_http::Request,
    guard: &Guard,
    cwd: &std::path::Path,
    cancel: &std::sync::atomic::AtomicBool,
) {
    let url = request.url().to_owned();
    let (path, query) = url.split_once('?').unwrap_or((url.as_str(), ""));
    let query = api::Query::parse(query);
    if let Err(r) = check(&request, guard, &query) {
        send(request, r);
        return;
    }
    let method = request.method().clone();
    let reply = match (&method, path) {
        (tiny_http::Method::Get, "/" | "/index.html") => page(),
        (tiny_http::Method::Get, "/api/records") => {
            api::records(request, &query, cancel);
            return;
        }
        (m, p) if p.starts_with("/api/") => {
            let mut body = Vec::new();
            let limit = api::MAX_BODY as u64 + 1;
            let read = request.as_reader().take(limit).read_to_end(&mut body);
            if read.is_err() || body.len() > api::MAX_BODY {
                Reply::error(413, "the request body is over 64 KiB or could not be read")
            } else {
                api::handle(m, p, &query, &body, cwd)
            }
        }
        _ => Reply::error(404, &format!("no such page {path:?}")),
    };
    send(request, reply);
}

/// The page, with its style and script inlined (one request, nothing from elsewhere).
fn page() -> Reply {
    let html = INDEX
        .replace("/*STYLE*/", STYLE)
        .replace("/*SCRIPT*/", SCRIPT);
    Reply {
        status: 200,
        content_type: "text/html; charset=utf-8",
        body: html.into_bytes(),
    }
}

/// The token, `Host` and `Origin` checks.
fn check(request: &tiny_http::Request, guard: &Guard, query: &api::Query) -> Result<(), Reply> {
    let header = |name: &'static str| {
        request
            .headers()
            .iter()
            .find(|h| h.field.equiv(name))
            .map(|h| h.value.as_str().to_owned())
    };
    let host = header("Host").unwrap_or_default();
    let allowed_hosts = [
        format!("127.0.0.1:{}", guard.port),
        format!("localhost:{}", guard.port),
        format!("[::1]:{}", guard.port),
    ];
    if !allowed_hosts.contains(&host) {
        return Err(Reply::error(
            403,
            &format!("refused: Host {host:?} is not this server's loopback address"),
        ));
    }
    if let Some(origin) = header("Origin") {
        if origin != format!("http://{host}") {
            return Err(Reply::error(
                403,
                &format!("refused: requests from origin {origin:?} are not allowed"),
            ));
        }
    }
    let given = header("X-Lprobe-Token")
        .or_else(|| {
            header("Authorization").and_then(|v| v.strip_prefix("Bearer ").map(str::to_owned))
        })
        .or_else(|| query.get("token").map(str::to_owned));
    match given {
        Some(t) if same(t.as_bytes(), guard.token.as_bytes()) => Ok(()),
        Some(_) => Err(Reply::error(401, "refused: wrong token")),
        None => Err(Reply::error(
            401,
            "refused: no token (open the URL lprobe ui printed, or send the X-Lprobe-Token header)",
        )),
    }
}

/// Compares two byte strings in time independent of where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Sends `r`; a client that went away is not an error.
pub(crate) fn send(request: tiny_http::Request, r: Reply) {
    let response = tiny_http::Response::from_data(r.body)
        .with_status_code(r.status)
        .with_header(header("Content-Type", r.content_type))
        .with_header(header("Cache-Control", "no-store"))
        .with_header(header("X-Content-Type-Options", "nosniff"))
        .with_header(header(
            "Content-Security-Policy",
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; img-src data:; frame-ancestors 'none'",
        ));
    let _ = request.respond(response);
}

/// A header from constants (ASCII, so always valid).
fn header(name: &'static str, value: &'static str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes())
        .expect("constant headers are ASCII")
}

/// Writes raw bytes to a streaming response, flushing; false once the client is gone.
pub(crate) fn write_flush(w: &mut dyn Write, bytes: &[u8]) -> bool {
    w.write_all(bytes).and_then(|()| w.flush()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses_are_served() {
        assert!(loopback("127.0.0.1:0").is_ok());
        assert!(loopback("[::1]:8765").is_ok());
        let e = loopback("0.0.0.0:8765").unwrap_err();
        assert_eq!(exit_code::of(&e), exit_code::USAGE);
        assert!(e.to_string().contains("loopback only"), "{e}");
        assert_eq!(
            exit_code::of(&loopback("localhost").unwrap_err()),
            exit_code::USAGE
        );
    }

    #[test]
    fn tokens_are_random_and_compared_whole() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(same(a.as_bytes(), a.clone().as_bytes()));
        assert!(!same(a.as_bytes(), b.as_bytes()));
        assert!(!same(a.as_bytes(), &a.as_bytes()[..31]));
    }

    #[test]
    fn the_page_has_its_assets_inlined() {
        let page = String::from_utf8(page().body).unwrap();
        assert!(!page.contains("/*STYLE*/") && !page.contains("/*SCRIPT*/"));
        assert!(page.contains("EventSource"));
        for remote in [
            "src=\"http",
            "href=\"http",
            "url(http",
            "@import",
            "fetch(\"http",
        ] {
            assert!(!page.contains(remote), "no remote assets: {remote}");
        }
    }
}
