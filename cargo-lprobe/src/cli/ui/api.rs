//! The JSON API behind `lprobe ui`'s page (documented in the README, "`lprobe ui`").
//!
//! Each endpoint is one CLI command's work, done with the CLI's own functions: processes as
//! `lprobe ps --json`, sites as `lprobe list --json`, probes as `lprobe status --json`, arming
//! as `lprobe arm` (the request's fields become `lprobe arm`'s arguments and go through its
//! parser), disarming as `lprobe disarm`, records as `lprobe tail --json`. Errors are
//! `{"error": "…"}` with the CLI's message and a status for its exit code: 400 usage, 404 no
//! such process, 409 the file changed since the build, 422 refused by the process, 502 the
//! process could not be talked to.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{send, write_flush, Reply};
use crate::cli::client::{self, Next, Reach};
use crate::cli::{arm_argv, exit_code, parse, select, skew, Command, Target};

/// The largest request body read.
pub(crate) const MAX_BODY: usize = 64 * 1024;

/// How long a record stream stays silent before a comment line checks that the page is
/// still there.
const HEARTBEAT: Duration = Duration::from_secs(10);

/// A request's query parameters (percent-decoded; the last of a repeated name wins).
#[derive(Debug, Default)]
pub(crate) struct Query(BTreeMap<String, String>);

impl Query {
    pub(crate) fn parse(q: &str) -> Query {
        Query(form_urlencoded::parse(q.as_bytes()).into_owned().collect())
    }

    pub(crate) fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }

    /// `pid`, if given: a number, else a usage error.
    fn pid(&self) -> Result<Option<u32>> {
        self.get("pid")
            .map(|p| {
                p.parse()
                    .map_err(|_| exit_code::usage(format!("invalid pid {p:?} (expected a number)")))
            })
            .transpose()
    }
}

/// The status for an error, from the CLI's exit code for it.
fn status_of(e: &anyhow::Error) -> u16 {
    if e.downcast_ref::<Skewed>().is_some() {
        return 409;
    }
    match exit_code::of(e) {
        exit_code::USAGE => 400,
        exit_code::NO_PROCESS => 404,
        exit_code::REFUSED => 422,
        _ => 502,
    }
}

/// Arming by line in a file that changed since the process was built.
#[derive(Debug)]
struct Skewed(String);

impl std::fmt::Display for Skewed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Skewed {}

/// Runs an endpoint other than the record stream.
pub(crate) fn handle(
    method: &tiny_http::Method,
    path: &str,
    q: &Query,
    body: &[u8],
    cwd: &Path,
) -> Reply {
    use tiny_http::Method::{Delete, Get, Post};
    let result = match (method, path) {
        (Get, "/api/processes") => Ok(processes()),
        (Get, "/api/sites") => target(q).and_then(|t| sites(&t)),
        (Get, "/api/source") => target(q).and_then(|t| source(&t, q, cwd)),
        (Get, "/api/probes") => target(q).and_then(|t| probes(&t)),
        (Post, "/api/probes") => target(q).and_then(|t| arm(&t, body, cwd)),
        (Delete, "/api/probes") => target(q).and_then(|t| disarm(&t, q)),
        (_, "/api/processes" | "/api/sites" | "/api/source" | "/api/probes" | "/api/records") => {
            return Reply::error(405, &format!("{method} is not allowed on {path}"));
        }
        _ => return Reply::error(404, &format!("no such endpoint {path:?}")),
    };
    match result {
        Ok(v) => Reply::json(200, &v),
        Err(e) => Reply::error(status_of(&e), &format!("{e:#}")),
    }
}

/// The process `pid` names, or the only one running: `lprobe --pid`'s selection.
fn target(q: &Query) -> Result<Target> {
    let pid = q.pid()?;
    let found = select(&client::discover(), pid, false, &mut std::io::sink())?;
    found
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("no instrumented process found"))
}

/// `GET /api/processes`: the `hello` answers of the reachable processes (`lprobe ps --json`,
/// without removing stale sockets: the UI only reads).
fn processes() -> Value {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for e in &client::discover().sockets {
        if let Reach::Alive { hello, raw } = client::reach(e) {
            if !seen.contains(&hello.pid) {
                seen.push(hello.pid);
                out.push(raw);
            }
        }
    }
    Value::Array(out)
}

/// `GET /api/sites?pid=`: every site (`lprobe list --json`).
fn sites(t: &Target) -> Result<Value> {
    let v = client::request(&t.socket, "sites", &[] as &[&str])?;
    match v.get("sites") {
        Some(s @ Value::Array(_)) => Ok(s.clone()),
        _ => Err(anyhow!("malformed answer to 'sites' (no \"sites\" array)")),
    }
}

/// `GET /api/source?pid=[&path=]`: without `path`, the process's files and how each compares
/// with the workspace around `lprobe ui`'s directory; with it, that file's text from disk,
/// its site lines as built and the skew warning. Only the process's own files are served.
fn source(t: &Target, q: &Query, cwd: &Path) -> Result<Value> {
    let files = skew::built_files(&t.socket, None)?.unwrap_or_default();
    let root = skew::find_root(cwd, &files);
    let state = |f: &skew::BuiltFile| match &root {
        None => ("unknown", None),
        Some(r) => match skew::compare(r, f) {
            skew::Disk::Same => ("same", None),
            d => (
                if d == skew::Disk::Missing {
                    "missing"
                } else {
                    "changed"
                },
                Some(skew::warning(d, f, t.hello.pid, None)),
            ),
        },
    };
    let Some(path) = q.get("path") else {
        let list: Vec<Value> = files
            .iter()
            .map(|f| {
                let (st, warning) = state(f);
                json!({"path": f.path, "hash": f.hash, "state": st, "warning": warning})
            })
            .collect();
        let root = root.map(|r| r.display().to_string());
        return Ok(json!({"pid": t.hello.pid, "root": root, "files": list}));
    };
    let Some(f) = files.iter().find(|f| f.path == path) else {
        return Err(exit_code::usage(format!(
            "{path:?} is not one of pid {}'s instrumented files",
            t.hello.pid
        )));
    };
    let (st, warning) = state(f);
    let text = root
        .as_ref()
        .and_then(|r| std::fs::read(r.join(&f.path)).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let lines: BTreeMap<String, &String> =
        f.lines.iter().map(|(n, t)| (n.to_string(), t)).collect();
    Ok(
        json!({"pid": t.hello.pid, "path": f.path, "state": st, "warning": warning,
        "text": text, "built_lines": lines}),
    )
}

/// `GET /api/probes?pid=`: the process's status (`lprobe status --json`'s object).
fn probes(t: &Target) -> Result<Value> {
    client::request(&t.socket, "status", &[] as &[&str]).map(client::strip_ok)
}

/// `POST /api/probes?pid=`'s body: what `lprobe arm`'s flags say, by name.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ArmRequest {
    location: String,
    /// `log` (needs `template`), `snapshot`, `count`, `duration` or `tictoc` (needs `to`).
    action: String,
    template: Option<String>,
    to: Option<String>,
    #[serde(rename = "if")]
    if_expr: Option<String>,
    every: Option<String>,
    max_hits: Option<u64>,
    ttl: Option<String>,
    rate: Option<String>,
    max_string: Option<u64>,
    max_items: Option<u64>,
    max_depth: Option<u64>,
}

impl ArmRequest {
    /// `lprobe arm`'s command line for this request.
    fn argv(&self) -> Result<Vec<String>> {
        // A location is a positional argument: one that looks like a flag would be parsed as
        // one.
        for loc in std::iter::once(&self.location).chain(&self.to) {
            if loc.trim().is_empty() || loc.starts_with('-') {
                return Err(exit_code::usage(format!(
                    "invalid location {loc:?}: use FILE:LINE (e.g. src/main.rs:42) or fn:PATH"
                )));
            }
        }
        let mut v = vec!["lprobe".to_string(), "arm".into(), self.location.clone()];
        let mut flag = |name: &str, value: Option<String>| {
            v.push(format!("--{name}"));
            v.extend(value);
        };
        match self.action.as_str() {
            "log" => flag(
                "log",
                Some(self.template.clone().ok_or_else(|| {
                    exit_code::usage("a log probe needs a template (\"template\")")
                })?),
            ),
            "snapshot" | "count" | "duration" => flag(&self.action, None),
            "tictoc" => flag(
                "tictoc",
                Some(self.to.clone().ok_or_else(|| {
                    exit_code::usage("a tic-toc probe needs the location it times to (\"to\")")
                })?),
            ),
            other => {
                return Err(exit_code::usage(format!(
                    "unknown action {other:?} (expected log, snapshot, count, duration or tictoc)"
                )))
            }
        }
        let text = [
            ("if", &self.if_expr),
            ("every", &self.every),
            ("ttl", &self.ttl),
            ("rate", &self.rate),
        ];
        for (name, value) in text {
            if let Some(x) = value.as_ref().filter(|x| !x.trim().is_empty()) {
                flag(name, Some(x.clone()));
            }
        }
        let numbers = [
            ("max-hits", self.max_hits),
            ("max-string", self.max_string),
            ("max-items", self.max_items),
            ("max-depth", self.max_depth),
        ];
        for (name, value) in numbers {
            if let Some(n) = value {
                flag(name, Some(n.to_string()));
            }
        }
        Ok(v)
    }
}

/// `POST /api/probes?pid=`: arms a probe, as `lprobe arm` would, but refuses a line location
/// in a file that changed since the process was built.
fn arm(t: &Target, body: &[u8], cwd: &Path) -> Result<Value> {
    let req: ArmRequest = serde_json::from_slice(body)
        .map_err(|e| exit_code::usage(format!("bad arm request: {e}")))?;
    let argv = req.argv()?;
    let (cli, matches) = parse(&argv).map_err(|e| exit_code::usage(clap_message(&e)))?;
    let Command::Arm(a) = &cli.command else {
        return Err(anyhow!("the arm request did not parse as 'lprobe arm'"));
    };
    let words = arm_argv(a, matches.subcommand_matches("arm"));
    refuse_skewed(t, cwd, &[a.location.as_ref(), a.tictoc.as_ref()])?;
    let v = client::request(&t.socket, "arm", &words)?;
    Ok(
        json!({"pid": t.hello.pid, "probe": v.get("probe"), "sites": v.get("sites"),
        "args": client::join_args(&words[..])?}),
    )
}

/// clap's message without its `error: ` prefix and usage lines.
fn clap_message(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_owned()
}

/// Fails with [`Skewed`] when a `FILE:LINE` location names a file that differs on disk.
fn refuse_skewed(t: &Target, cwd: &Path, locations: &[Option<&String>]) -> Result<()> {
    let by_line: Vec<(&str, Option<u32>)> = locations
        .iter()
        .flatten()
        .filter(|l| !l.starts_with("fn:"))
        .map(|l| match l.rsplit_once(':') {
            Some((p, n)) => (p, n.parse().ok()),
            None => (l.as_str(), None),
        })
        .collect();
    if by_line.is_empty() {
        return Ok(());
    }
    let Some(files) = skew::built_files(&t.socket, None)? else {
        return Ok(());
    };
    let changed = skew::changed(cwd, &files);
    for (path, line) in by_line {
        let hit = changed
            .values()
            .find(|(_, f)| f.path == path || f.path.ends_with(&format!("/{path}")));
        if let Some((disk, f)) = hit {
            return Err(anyhow::Error::new(Skewed(format!(
                "{}; rebuild the program ('cargo lprobe build') to arm by line in it",
                skew::warning(*disk, f, t.hello.pid, line)
            ))));
        }
    }
    Ok(())
}

/// `DELETE /api/probes?pid=&probe=ID|LOCATION` (or `&all=1`): disarms, as `lprobe disarm`.
fn disarm(t: &Target, q: &Query) -> Result<Value> {
    let what = match (q.get("probe"), q.get("all")) {
        (Some(p), _) if !p.is_empty() => p.to_owned(),
        (_, Some("1" | "true")) => "--all".to_owned(),
        _ => {
            return Err(exit_code::usage(
                "say what to disarm: probe=ID (see /api/probes), probe=LOCATION, or all=1",
            ))
        }
    };
    let v = client::request(&t.socket, "disarm", std::slice::from_ref(&what))?;
    let ids = v
        .get("disarmed")
        .cloned()
        .ok_or_else(|| anyhow!("malformed answer to 'disarm' (no \"disarmed\" array)"))?;
    if what != "--all" && ids.as_array().is_some_and(Vec::is_empty) {
        return Err(exit_code::usage(format!(
            "no armed probe matches {what:?} (see 'lprobe status')"
        )));
    }
    Ok(json!({"pid": t.hello.pid, "disarmed": ids}))
}

/// `GET /api/records?pid=[&probe=ID][&kind=KIND]`: the process's records as server-sent
/// events (`lprobe tail --json`), one `data:` line per record; when the process exits or
/// closes the stream, an `end` event with the reason, then the response ends.
pub(crate) fn records(request: tiny_http::Request, q: &Query, cancel: &AtomicBool) {
    let opened = target(q).and_then(|t| {
        let s = client::open_stream(&t.socket, "tail", &[] as &[&str])?;
        Ok((t, s))
    });
    let (t, mut stream) = match opened {
        Ok(x) => x,
        Err(e) => return send(request, Reply::error(status_of(&e), &format!("{e:#}"))),
    };
    let want = |rec: &Value, key: &str, q_key: &str| {
        q.get(q_key)
            .is_none_or(|w| rec.get(key).and_then(Value::as_str) == Some(w))
    };
    let mut w = request.into_writer();
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n\
                X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n: records of pid ";
    if !write_flush(&mut w, format!("{head}{}\n\n", t.hello.pid).as_bytes()) {
        return;
    }
    loop {
        let reason = match stream.next_line(Some(Instant::now() + HEARTBEAT), cancel) {
            Ok(Next::Line(l)) => {
                let filtered = q.get("probe").is_some() || q.get("kind").is_some();
                let keep = !filtered
                    || serde_json::from_str::<Value>(&l).is_ok_and(|rec| {
                        want(&rec, "probe", "probe") && want(&rec, "kind", "kind")
                    });
                if keep && !write_flush(&mut w, format!("data: {l}\n\n").as_bytes()) {
                    return;
                }
                continue;
            }
            Ok(Next::TimedOut) => {
                if !write_flush(&mut w, b": still here\n\n") {
                    return;
                }
                continue;
            }
            Ok(Next::Cancelled) => return,
            Ok(Next::Closed) => format!("process {} closed the stream (it exited)", t.hello.pid),
            Err(e) => format!("{e:#}"),
        };
        let end = json!({"pid": t.hello.pid, "reason": reason});
        let _ = write_flush(&mut w, format!("event: end\ndata: {end}\n\n").as_bytes());
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: Value) -> Result<Vec<String>> {
        let r: ArmRequest = serde_json::from_value(v).expect("request");
        r.argv()
    }

    #[test]
    fn arm_requests_become_lprobe_arm_command_lines() {
        let argv = req(json!({"location": "src/main.rs:42", "action": "log",
            "template": "x={x}", "if": "x > 1", "max_hits": 3, "every": ""}))
        .unwrap();
        assert_eq!(
            argv,
            [
                "lprobe",
                "arm",
                "src/main.rs:42",
                "--log",
                "x={x}",
                "--if",
                "x > 1",
                "--max-hits",
                "3"
            ]
        );
        let argv = req(json!({"location": "a.rs:1", "action": "tictoc", "to": "a.rs:9"})).unwrap();
        assert_eq!(argv, ["lprobe", "arm", "a.rs:1", "--tictoc", "a.rs:9"]);
        let e = req(json!({"location": "a.rs:1", "action": "log"})).unwrap_err();
        assert_eq!(exit_code::of(&e), exit_code::USAGE);
        let e = req(json!({"location": "--control=/tmp/x", "action": "count"})).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid location \"--control=/tmp/x\""),
            "{e}"
        );
        let e = req(json!({"location": "a.rs:1", "action": "trace"})).unwrap_err();
        assert!(e.to_string().contains("unknown action \"trace\""), "{e}");
        let bad: Result<ArmRequest, _> =
            serde_json::from_value(json!({"location": "a", "action": "count", "colour": 1}));
        assert!(bad.is_err());
    }

    #[test]
    fn clap_errors_read_as_the_cli_prints_them() {
        let argv = req(json!({"location": "a.rs:1", "action": "count", "max_hits": 0})).unwrap();
        let e = parse(&argv).unwrap_err();
        assert_eq!(
            clap_message(&e),
            "invalid value '0' for '--max-hits <N>': \"0\" is not a positive number"
        );
    }

    #[test]
    fn queries_are_percent_decoded() {
        let q = Query::parse("pid=12&probe=src%2Fmain.rs%3A42&kind=a+b");
        assert_eq!(q.get("probe"), Some("src/main.rs:42"));
        assert_eq!(q.get("kind"), Some("a b"));
        assert_eq!(q.pid().unwrap(), Some(12));
        assert_eq!(
            exit_code::of(&Query::parse("pid=x").pid().unwrap_err()),
            exit_code::USAGE
        );
    }
}
