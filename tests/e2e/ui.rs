//! `lprobe ui`: its JSON API against a running demo app (arm, records, disarm, refusals, the
//! token and Origin checks, a process that exits while watched) and the page in a real
//! headless Chromium.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::*;

const LINE_42: &str = "let customer = order.customer.as_str();";

fn demo() -> Running {
    let t = build_once("demo-app", &["--release", "--lines", "all"]);
    start(
        &t.join("lprobe/release/demo-app"),
        &[("DEMO_INTERVAL_MS", "20")],
    )
}

/// A running `lprobe ui`, killed on drop.
struct Ui {
    child: Child,
    /// `http://127.0.0.1:PORT`
    base: String,
    token: String,
}

impl Drop for Ui {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `lprobe ui` in `dir` talking to `r`'s process; ready once it printed its URL.
fn ui(r: &Running, dir: &Path) -> Ui {
    let mut child = Command::new(LPROBE)
        .args(["ui", "--color", "never"])
        .current_dir(dir)
        .env("LPROBE_SOCKET", &r.socket)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start lprobe ui");
    let mut line = String::new();
    let out = child.stdout.take().expect("stdout");
    BufReader::new(out)
        .read_line(&mut line)
        .expect("read the URL");
    let url = line
        .trim()
        .strip_prefix("lprobe ui: ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    let (base, token) = url.split_once("/?token=").expect("URL with a token");
    assert!(base.starts_with("http://127.0.0.1:"), "{url}");
    assert_eq!(token.len(), 32, "{url}");
    Ui {
        base: base.to_owned(),
        token: token.to_owned(),
        child,
    }
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into()
}

/// `METHOD path` with the token header (and `extra` headers); returns (status, JSON answer).
fn call(
    u: &Ui,
    method: &str,
    path: &str,
    body: Option<Value>,
    extra: &[(&str, &str)],
) -> (u16, Value) {
    let url = format!("{}{path}", u.base);
    let a = agent(Duration::from_secs(20));
    let mut headers: Vec<(&str, &str)> = vec![("X-Lprobe-Token", u.token.as_str())];
    headers.extend_from_slice(extra);
    let resp = match (method, body) {
        ("GET", _) => {
            let mut r = a.get(&url);
            for (k, v) in &headers {
                r = r.header(*k, *v);
            }
            r.call()
        }
        ("DELETE", _) => {
            let mut r = a.delete(&url);
            for (k, v) in &headers {
                r = r.header(*k, *v);
            }
            r.call()
        }
        ("PUT", b) => {
            let mut r = a.put(&url);
            for (k, v) in &headers {
                r = r.header(*k, *v);
            }
            r.send(b.unwrap_or(Value::Null).to_string())
        }
        (_, b) => {
            let mut r = a.post(&url).header("Content-Type", "application/json");
            for (k, v) in &headers {
                r = r.header(*k, *v);
            }
            r.send(b.unwrap_or(Value::Null).to_string())
        }
    };
    let mut resp = resp.expect("HTTP request");
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().expect("body");
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, v)
}

fn get(u: &Ui, path: &str) -> (u16, Value) {
    call(u, "GET", path, None, &[])
}

/// The server-sent events of `/api/records?QUERY`, as (event name, data) pairs, read until
/// `done` says so (or the stream ends).
fn events(u: &Ui, query: &str, mut done: impl FnMut(&str, &Value) -> bool) -> Vec<(String, Value)> {
    let url = format!("{}/api/records?token={}&{query}", u.base, u.token);
    let resp = agent(Duration::from_secs(30))
        .get(&url)
        .call()
        .expect("records");
    assert_eq!(resp.status().as_u16(), 200);
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert_eq!(ct, "text/event-stream");
    let mut reader = BufReader::new(resp.into_body().into_reader());
    let mut got = Vec::new();
    let mut event = "message".to_owned();
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return got;
        }
        let l = line.trim_end();
        if let Some(e) = l.strip_prefix("event: ") {
            event = e.to_owned();
        } else if let Some(d) = l.strip_prefix("data: ") {
            let v: Value = serde_json::from_str(d).expect("event data is JSON");
            let stop = done(&event, &v);
            got.push((std::mem::replace(&mut event, "message".into()), v));
            if stop {
                return got;
            }
        }
    }
}

/// The fixture copy the demo app was built from (its sources are the process's own).
fn built_sources() -> PathBuf {
    fixture("demo-app")
}

#[test]
fn ui_api_arms_shows_records_and_disarms() {
    let r = demo();
    let pid = r.child.id();
    let u = ui(&r, &built_sources());

    let (s, procs) = get(&u, "/api/processes");
    assert_eq!(s, 200, "{procs}");
    assert_eq!(procs[0]["pid"], pid, "{procs}");

    let (s, sites) = get(&u, &format!("/api/sites?pid={pid}"));
    assert_eq!(s, 200);
    let at_42: Vec<&Value> = sites
        .as_array()
        .expect("sites")
        .iter()
        .filter(|x| x["path"] == "src/main.rs" && x["line"] == 42)
        .collect();
    assert!(
        at_42.iter().any(|x| x["names"]
            .as_array()
            .is_some_and(|n| n.contains(&json!("total")))),
        "{sites}"
    );

    let (s, src) = get(&u, &format!("/api/source?pid={pid}"));
    assert_eq!(s, 200, "{src}");
    let files = src["files"].as_array().expect("files");
    assert!(
        files
            .iter()
            .any(|f| f["path"] == "src/main.rs" && f["state"] == "same"),
        "{src}"
    );
    let (s, main) = get(&u, &format!("/api/source?pid={pid}&path=src%2Fmain.rs"));
    assert_eq!(s, 200);
    assert_eq!(main["state"], "same");
    assert_eq!(
        main["text"]
            .as_str()
            .and_then(|t| t.lines().nth(41))
            .map(str::trim),
        Some(LINE_42)
    );
    assert_eq!(main["built_lines"]["42"], LINE_42);
    // Only the process's own files are served.
    let (s, e) = get(&u, &format!("/api/source?pid={pid}&path=Cargo.toml"));
    assert_eq!(s, 400, "{e}");
    assert_eq!(
        e["error"],
        format!("\"Cargo.toml\" is not one of pid {pid}'s instrumented files")
    );

    let arm = json!({"location": "src/main.rs:42", "action": "log",
        "template": "order {order.id} total={total}", "max_hits": 50});
    let (s, armed) = call(
        &u,
        "POST",
        &format!("/api/probes?pid={pid}"),
        Some(arm),
        &[],
    );
    assert_eq!(s, 200, "{armed}");
    assert_eq!(armed["sites"], json!(["src/main.rs:42"]));
    let probe = armed["probe"].as_str().expect("probe id").to_owned();

    let mut logs = 0;
    let got = events(&u, &format!("pid={pid}&probe={probe}"), |_, _| {
        logs += 1;
        logs == 3
    });
    for (event, rec) in &got {
        assert_eq!(event, "message");
        assert_eq!(rec["probe"], probe.as_str());
        assert_eq!(rec["kind"], "log");
        let msg = rec["msg"].as_str().expect("msg");
        let words: Vec<&str> = msg.split(' ').collect();
        assert_eq!(words[0], "order", "{msg}");
        assert!(
            words[1].parse::<u64>().is_ok() && words[2].starts_with("total="),
            "{msg}"
        );
    }

    let (s, status) = get(&u, &format!("/api/probes?pid={pid}"));
    assert_eq!(s, 200);
    let p = status["probes"]
        .as_array()
        .expect("probes")
        .iter()
        .find(|p| p["id"] == probe.as_str())
        .cloned()
        .expect("armed probe listed");
    assert_eq!(p["state"], "armed");
    assert!(p["hits"].as_u64().is_some_and(|h| h >= 3), "{p}");

    let (s, off) = call(
        &u,
        "DELETE",
        &format!("/api/probes?pid={pid}&probe={probe}"),
        None,
        &[],
    );
    assert_eq!(s, 200, "{off}");
    assert_eq!(off["disarmed"], json!([probe]));
    let (_, status) = get(&u, &format!("/api/probes?pid={pid}"));
    assert!(
        !status["probes"]
            .as_array()
            .expect("probes")
            .iter()
            .any(|p| p["id"] == probe.as_str() && p["state"] == "armed"),
        "{status}"
    );
}

#[test]
fn ui_api_refusals_carry_the_cli_messages_word_for_word() {
    let r = demo();
    let pid = r.child.id();
    let u = ui(&r, &built_sources());
    let path = format!("/api/probes?pid={pid}");
    let cli_error = |args: &[&str]| {
        let out = lprobe(&r, args);
        assert!(!out.status.success());
        let err = stderr(&out);
        err.trim()
            .strip_prefix("error: ")
            .unwrap_or(&err)
            .to_owned()
    };

    let (s, e) = call(
        &u,
        "POST",
        &path,
        Some(json!({"location": "src/main.rs:42", "action": "log", "template": "{nope}"})),
        &[],
    );
    assert_eq!(s, 422, "{e}");
    assert_eq!(
        e["error"],
        cli_error(&["arm", "src/main.rs:42", "--log", "{nope}"])
    );
    assert!(
        e["error"]
            .as_str()
            .is_some_and(|m| m.contains("'nope' is not captured at src/main.rs:42")),
        "{e}"
    );

    let (s, e) = call(
        &u,
        "POST",
        &path,
        Some(json!({"location": "src/main.rs:3", "action": "snapshot"})),
        &[],
    );
    assert_eq!(s, 422, "{e}");
    assert_eq!(
        e["error"],
        cli_error(&["arm", "src/main.rs:3", "--snapshot"])
    );

    let (s, e) = call(
        &u,
        "POST",
        &path,
        Some(json!({"location": "src/main.rs:42", "action": "count", "max_hits": 0})),
        &[],
    );
    assert_eq!(s, 400, "{e}");
    assert_eq!(
        e["error"],
        "invalid value '0' for '--max-hits <N>': \"0\" is not a positive number"
    );

    let (s, e) = call(
        &u,
        "POST",
        &path,
        Some(json!({"location": "src/main.rs:42", "action": "trace"})),
        &[],
    );
    assert_eq!(s, 400, "{e}");
    let (s, e) = call(&u, "POST", &path, Some(json!({"location": 42})), &[]);
    assert_eq!(s, 400, "{e}");
    assert!(
        e["error"]
            .as_str()
            .is_some_and(|m| m.starts_with("bad arm request: ")),
        "{e}"
    );

    let (s, e) = call(&u, "DELETE", &format!("{path}&probe=p999"), None, &[]);
    assert_eq!(s, 422, "{e}");
    assert_eq!(e["error"], cli_error(&["disarm", "p999"]));

    let (s, e) = get(&u, "/api/probes?pid=1");
    assert_eq!(s, 404, "{e}");
    assert!(
        e["error"]
            .as_str()
            .is_some_and(|m| m.starts_with("no instrumented process with pid 1")),
        "{e}"
    );
    let (s, e) = call(&u, "PUT", &path, None, &[]);
    assert_eq!(s, 405, "{e}");
}

#[test]
fn ui_requires_its_token_and_refuses_other_origins() {
    let r = demo();
    let u = ui(&r, &built_sources());
    let a = agent(Duration::from_secs(20));
    let status = |req: ureq::RequestBuilder<ureq::typestate::WithoutBody>| {
        let mut resp = req.call().expect("request");
        let s = resp.status().as_u16();
        (s, resp.body_mut().read_to_string().unwrap_or_default())
    };
    let api = format!("{}/api/processes", u.base);
    let (s, body) = status(a.get(&api));
    assert_eq!(s, 401, "{body}");
    assert!(body.contains("no token"), "{body}");
    assert_eq!(
        status(a.get(&api).header("X-Lprobe-Token", "0".repeat(32))).0,
        401
    );
    assert_eq!(status(a.get(&format!("{api}?token={}", u.token))).0, 200);
    assert_eq!(
        status(
            a.get(&api)
                .header("Authorization", format!("Bearer {}", u.token))
        )
        .0,
        200
    );
    // The page itself needs the token too.
    assert_eq!(status(a.get(&format!("{}/", u.base))).0, 401);
    let (s, page) = status(a.get(&format!("{}/?token={}", u.base, u.token)));
    assert_eq!(s, 200);
    assert!(page.contains("<title>lprobe ui</title>") && page.contains("EventSource"));
    // Another origin, even with the token: refused (the page's own origin is fine).
    let (s, body) = status(
        a.get(&api)
            .header("X-Lprobe-Token", &u.token)
            .header("Origin", "http://evil.example"),
    );
    assert_eq!(s, 403, "{body}");
    assert!(
        body.contains("origin \\\"http://evil.example\\\" are not allowed"),
        "{body}"
    );
    let own = u.base.clone();
    assert_eq!(
        status(
            a.get(&api)
                .header("X-Lprobe-Token", &u.token)
                .header("Origin", &own)
        )
        .0,
        200
    );
    // A POST from another origin arms nothing.
    let (s, _) = call(
        &u,
        "POST",
        "/api/probes",
        Some(json!({"location": "fn:demo_app::run", "action": "count"})),
        &[("Origin", "http://evil.example")],
    );
    assert_eq!(s, 403);
    let (_, st) = get(&u, "/api/probes");
    assert_eq!(st["probes"], json!([]), "{st}");
}

#[test]
fn ui_refuses_arming_by_line_in_a_file_changed_since_the_build() {
    let r = demo();
    let pid = r.child.id();
    let ws = tempfile::tempdir().expect("tempdir");
    private_copy("demo-app", ws.path());
    let main = ws.path().join("src/main.rs");
    let text = std::fs::read_to_string(&main).expect("read");
    std::fs::write(&main, format!("// moved down a line\n{text}")).expect("edit");
    let u = ui(&r, ws.path());

    let (_, src) = get(&u, &format!("/api/source?pid={pid}"));
    let state = |p: &str| {
        src["files"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|f| f["path"] == p)
            .map(|f| f["state"].clone())
    };
    assert_eq!(state("src/main.rs"), Some(json!("changed")), "{src}");
    assert_eq!(state("src/billing.rs"), Some(json!("same")), "{src}");
    let (_, main_src) = get(&u, &format!("/api/source?pid={pid}&path=src/main.rs"));
    assert_eq!(
        main_src["warning"],
        format!("src/main.rs changed since pid {pid} was built")
    );
    assert_eq!(main_src["built_lines"]["42"], LINE_42);

    let (s, e) = call(
        &u,
        "POST",
        &format!("/api/probes?pid={pid}"),
        Some(json!({"location": "main.rs:42", "action": "count"})),
        &[],
    );
    assert_eq!(s, 409, "{e}");
    assert_eq!(
        e["error"],
        format!("src/main.rs changed since pid {pid} was built; line 42 there is `{LINE_42}`; rebuild the program ('cargo lprobe build') to arm by line in it")
    );
    let (_, st) = get(&u, "/api/probes");
    assert_eq!(st["probes"], json!([]), "nothing was armed: {st}");
    // By function, and by line in an unchanged file: armed.
    let (_, sites) = get(&u, "/api/sites");
    let billing = sites
        .as_array()
        .into_iter()
        .flatten()
        .find(|x| x["path"] == "src/billing.rs" && x["kind"] == "line")
        .map(|x| format!("src/billing.rs:{}", x["line"]))
        .expect("a line site in billing.rs");
    for loc in ["fn:demo_app::process_order", billing.as_str()] {
        let (s, a) = call(
            &u,
            "POST",
            "/api/probes",
            Some(json!({"location": loc, "action": "count"})),
            &[],
        );
        assert_eq!(s, 200, "{loc}: {a}");
    }
}

#[test]
fn ui_records_end_when_the_watched_process_exits() {
    let mut r = demo();
    let pid = r.child.id();
    let u = ui(&r, &built_sources());
    let (s, _) = call(
        &u,
        "POST",
        "/api/probes",
        Some(
            json!({"location": "fn:demo_app::process_order", "action": "count", "every": "100ms"}),
        ),
        &[],
    );
    assert_eq!(s, 200);
    let mut killed = false;
    let got = events(&u, &format!("pid={pid}"), |event, v| {
        if !killed && v["kind"] == "count" {
            r.child.kill().expect("kill the demo app");
            killed = true;
        }
        event == "end"
    });
    let (event, end) = got.last().expect("events");
    assert_eq!(event, "end", "{got:?}");
    assert_eq!(end["pid"], pid);
    assert_eq!(
        end["reason"],
        format!("process {pid} closed the stream (it exited)")
    );
    let _ = r.child.wait();
    let deadline = Instant::now() + Duration::from_secs(10);
    let (s, e) = loop {
        let (s, e) = get(&u, &format!("/api/probes?pid={pid}"));
        if s != 200 || Instant::now() > deadline {
            break (s, e);
        }
    };
    assert_eq!(s, 404, "{e}");
    assert!(
        e["error"]
            .as_str()
            .is_some_and(|m| m.contains(&pid.to_string())),
        "{e}"
    );
    let (s, e) = get(&u, &format!("/api/records?pid={pid}"));
    assert_eq!(s, 404, "{e}");
}

// ---------------------------------------------------------------------------------------------
// The page in a real browser
// ---------------------------------------------------------------------------------------------

/// Chromium's and chromedriver's paths, or why the browser test cannot run.
fn browser() -> Result<(PathBuf, PathBuf), String> {
    let find = |names: &[&str]| {
        names.iter().find_map(|n| {
            std::env::var_os("PATH")?
                .to_str()?
                .split(':')
                .map(|d| Path::new(d).join(n))
                .find(|p| p.is_file())
        })
    };
    let chromium = find(&["chromium", "chromium-browser", "google-chrome"]);
    let driver = find(&["chromedriver"]);
    match (chromium, driver) {
        (Some(c), Some(d)) => Ok((c, d)),
        _ => Err("chromium and chromedriver are not installed (Debian: apt-get install chromium chromium-driver; .ci/run installs them)".into()),
    }
}

/// A running chromedriver, killed on drop.
struct Driver(Child, u16);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chromedriver(path: &Path) -> Driver {
    let mut child = Command::new(path)
        .arg("--port=0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let out = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(out).lines();
    let port = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.split("started successfully on port ")
                .nth(1)
                .map(|p| p.trim_end_matches('.').parse::<u16>())
        })
        .expect("chromedriver says its port")
        .expect("a port number");
    // Keep reading its output so it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Driver(child, port)
}

#[test]
fn ui_page_arms_a_log_and_a_snapshot_in_a_real_browser() {
    let (chromium, driver_path) = match browser() {
        Ok(x) => x,
        Err(why) => {
            eprintln!("skipping the UI browser test: {why}");
            return;
        }
    };
    let r = demo();
    let pid = r.child.id();
    let u = ui(&r, &built_sources());
    let driver = chromedriver(&driver_path);
    let profile = tempfile::tempdir().expect("profile dir");
    let shot = e2e_output_dir().join("ui-screenshot.png");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    rt.block_on(drive(&chromium, driver.1, profile.path(), &u, pid, &shot));
    drop(driver);
}

fn e2e_output_dir() -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"))
        .join("e2e")
        .join("ui");
    std::fs::create_dir_all(&dir).expect("output dir");
    dir
}

/// Clicks the element `css` selects.
async fn click(c: &fantoccini::Client, css: &str) {
    c.find(fantoccini::Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("find {css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

async fn drive(chromium: &Path, port: u16, profile: &Path, u: &Ui, pid: u32, shot: &Path) {
    use fantoccini::{ClientBuilder, Locator};
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium.display().to_string(),
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1400,900", format!("--user-data-dir={}", profile.display())],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let c = ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a chromium session");
    let wait = |css: String| {
        let c = c.clone();
        async move {
            c.wait()
                .at_most(Duration::from_secs(20))
                .for_element(Locator::Css(&css))
                .await
                .unwrap_or_else(|e| panic!("waiting for {css}: {e}"))
        }
    };
    c.goto(&format!("{}/?token={}", u.base, u.token))
        .await
        .expect("load the page");
    // Pick the process (the only one: the page picks it itself; choose it anyway).
    let option = wait(format!("#process option[value='{pid}']")).await;
    option.click().await.expect("pick the process");
    wait("#files .file[data-path='src/main.rs']".into())
        .await
        .click()
        .await
        .expect("open main.rs");
    // Line 42's gutter mark: hover text names what it captures.
    let mark = wait("#L42 .mark".into()).await;
    let title = mark.attr("title").await.expect("title").unwrap_or_default();
    assert!(title.contains("total"), "{title}");
    mark.click().await.expect("click the gutter");
    assert_eq!(
        c.find(Locator::Css("#arm-location"))
            .await
            .expect("form")
            .text()
            .await
            .expect("text"),
        "src/main.rs:42"
    );
    click(&c, "input[name=action][value=log]").await;
    let template = c.find(Locator::Css("#template")).await.expect("template");
    template.clear().await.expect("clear");
    template
        .send_keys("order {order.id} total={total}")
        .await
        .expect("type");
    click(&c, "#arm-submit").await;
    let ok = wait("#arm-ok:not([hidden])".into())
        .await
        .text()
        .await
        .expect("text");
    assert!(
        ok.starts_with("armed p") && ok.ends_with("src/main.rs:42"),
        "{ok}"
    );
    let log = wait("#records li.kind-log".into())
        .await
        .text()
        .await
        .expect("log text");
    assert!(
        log.contains("log") && log.contains("order ") && log.contains("total="),
        "{log}"
    );
    // A refusal, word for word.
    template.clear().await.expect("clear");
    template.send_keys("{nope}").await.expect("type");
    click(&c, "#arm-submit").await;
    let refused = wait("#arm-error:not([hidden])".into())
        .await
        .text()
        .await
        .expect("text");
    assert!(
        refused.starts_with("'nope' is not captured at src/main.rs:42"),
        "{refused}"
    );

    // A snapshot at line 57: the order's id in the tree is the loop's n.
    wait("#L57 .mark".into())
        .await
        .click()
        .await
        .expect("click line 57");
    click(&c, "input[name=action][value=snapshot]").await;
    click(&c, "#arm-submit").await;
    let snap = wait("#records li.kind-snapshot".into()).await;
    let n = snap
        .find(Locator::Css(".tree > .leaf[data-name='n']"))
        .await
        .expect("n")
        .text()
        .await
        .expect("n text");
    let id = snap
        .find(Locator::Css(".tree details .leaf[data-name='id']"))
        .await
        .expect("order.id")
        .text()
        .await
        .expect("id text");
    let n = n.strip_prefix("n = ").expect("n = …").to_owned();
    assert!(n.parse::<u64>().is_ok(), "{n}");
    assert_eq!(id, format!("id = {n}"));
    // A stack frame jumps to its line.
    snap.find(Locator::Css(".stack a.frame"))
        .await
        .expect("a frame")
        .click()
        .await
        .expect("jump");
    wait("#L57.here".into()).await;
    // The armed-probes panel lists the log probe with a disarm button.
    wait("#probes tbody tr button.disarm".into()).await;
    // process_order's entry (line 26): a duration and a count, reported every 200 ms, draw
    // a percentile chart and a rate sparkline.
    for action in ["duration", "count"] {
        wait("#L26 .mark.entry".into())
            .await
            .click()
            .await
            .expect("click line 26");
        let radio = format!("input[name=action][value={action}]");
        c.find(Locator::Css(&radio))
            .await
            .expect("action")
            .click()
            .await
            .expect("action");
        let every = c.find(Locator::Css("#every")).await.expect("every");
        every.clear().await.expect("clear");
        every.send_keys("200ms").await.expect("type");
        click(&c, "#arm-submit").await;
    }
    let legend = wait("#charts .chart[data-kind=duration] .legend".into()).await;
    let text = legend.text().await.expect("legend");
    assert!(text.starts_with("p50 ") && text.contains(" p99 "), "{text}");
    let rate = c
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::XPath(
            "//div[@data-kind='count']/div[@class='legend'][contains(., '/s now')]",
        ))
        .await
        .expect("a count rate");
    let per_s: f64 = rate
        .text()
        .await
        .expect("rate")
        .trim_end_matches("/s now")
        .parse()
        .expect("a rate");
    assert!(per_s > 0.0, "{per_s}");
    let png = c.screenshot().await.expect("screenshot");
    std::fs::write(shot, png).expect("save the screenshot");
    eprintln!("screenshot: {}", shot.display());
    c.close().await.expect("close the session");
}
