//! `lprobe exporter` on the demo app: scraped by a real Prometheus server (Debian's `prometheus`
//! package; the test says it is skipped when the binary is missing), and its `--textfile`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

fn demo() -> Running {
    let t = build_once("demo-app", &["--release", "--lines", "all"]);
    start(
        &t.join("lprobe/release/demo-app"),
        &[("DEMO_INTERVAL_MS", "20")],
    )
}

/// Arms a counter on `process_order` that expires after `ttl`, waits for that and returns its
/// id, its site and the final count the process wrote in its last `count` record.
fn expired_counter(r: &Running, ttl: &str) -> (String, String, u64) {
    let id = arm(
        r,
        &[
            "fn:demo_app::process_order",
            "--count",
            "--every",
            "1h",
            "--ttl",
            ttl,
        ],
    );
    wait_for(Duration::from_secs(20), "the counter to expire", || {
        (probe_status(r, &id)["state"] == "expired").then_some(())
    });
    let last = wait_records(r, 1, "its final count record", |v| {
        v["probe"] == id.as_str() && v["kind"] == "count"
    });
    let site = last[0]["site"].as_str().expect("site").to_owned();
    let count = last[0]["count"].as_u64().expect("count");
    assert!(count > 0, "{last:?}");
    (id, site, count)
}

/// A child process killed on drop.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `lprobe exporter --listen 127.0.0.1:0` for `r`'s process; returns it and the
/// `host:port` it announced.
fn start_exporter(r: &Running) -> (KillOnDrop, String) {
    let mut child = Command::new(LPROBE)
        .args(["exporter", "--listen", "127.0.0.1:0"])
        .env("LPROBE_SOCKET", &r.socket)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start lprobe exporter");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let first = lines
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("lprobe exporter said nothing: {:?}", child.try_wait()));
    let addr = first
        .strip_prefix("lprobe: serving http://")
        .and_then(|a| a.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_owned();
    // Keep reading its warnings so that it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (KillOnDrop(child), addr)
}

/// `GET url?query`, its body on a 2xx answer.
fn get(url: &str, query: &[(&str, &str)]) -> Option<String> {
    let mut req = ureq::get(url);
    for (k, v) in query {
        req = req.query(*k, *v);
    }
    req.call().ok()?.body_mut().read_to_string().ok()
}

/// The `prometheus` binary: on `PATH`, or where Debian's package puts it.
fn prometheus_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join("prometheus"))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// A Prometheus server on a free loopback port, scraping `target` every second.
struct Prometheus {
    child: KillOnDrop,
    base: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(bin: &Path, target: &str) -> Prometheus {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n  - job_name: lprobe\n    static_configs:\n      \
                 - targets: ['{target}']\n"
            ),
        )
        .expect("write prometheus.yml");
        let log = dir.path().join("prometheus.log");
        let port = free_port();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("create log"))
            .spawn()
            .expect("start prometheus");
        let mut p = Prometheus {
            child: KillOnDrop(child),
            base: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        };
        let ready = format!("{}/-/ready", p.base);
        p.wait(Duration::from_secs(60), "prometheus to be ready", |_| {
            get(&ready, &[])
        });
        p
    }

    /// Polls `f` like [`wait_for`], failing at once with Prometheus' log if it exited.
    fn wait<T>(&mut self, limit: Duration, what: &str, mut f: impl FnMut(&Self) -> Option<T>) -> T {
        let start = std::time::Instant::now();
        loop {
            if let Some(v) = f(self) {
                return v;
            }
            if let Ok(Some(status)) = self.child.0.try_wait() {
                panic!(
                    "prometheus exited ({status}) while waiting for {what}:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            assert!(
                start.elapsed() < limit,
                "timed out after {limit:?} waiting for {what}; prometheus log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The result vector of an instant query (empty on any error).
    fn query(&self, q: &str) -> Vec<Value> {
        let url = format!("{}/api/v1/query", self.base);
        get(&url, &[("query", q)])
            .and_then(|body| serde_json::from_str::<Value>(&body).ok())
            .and_then(|v| v["data"]["result"].as_array().cloned())
            .unwrap_or_default()
    }

    /// Waits until the query gives series and `accept` takes them.
    fn wait_query(&mut self, q: &str, accept: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        self.wait(Duration::from_secs(30), q, |p| {
            let r = p.query(q);
            (!r.is_empty() && accept(&r)).then_some(r)
        })
    }
}

/// A sample's value.
fn value(series: &Value) -> f64 {
    series["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no value in {series}"))
}

#[test]
fn prometheus_scrapes_the_exporter_and_its_series_match_the_probes_counts() {
    let Some(bin) = prometheus_binary() else {
        eprintln!(
            "skipping prometheus_scrapes_the_exporter…: no `prometheus` binary on PATH or in \
             /usr/bin (`.ci/run` installs Debian's package: apt-get install prometheus)"
        );
        return;
    };
    let r = demo();
    let pid = r.child.id().to_string();
    let live = arm(&r, &["fn:demo_app::billing::*", "--count", "--every", "1h"]);
    let timed = arm(
        &r,
        &["fn:demo_app::process_order", "--duration", "--every", "1h"],
    );
    let (exporter, addr) = start_exporter(&r);
    let mut prom = Prometheus::start(&bin, &addr);
    let targets = format!("{}/api/v1/targets", prom.base);
    prom.wait(Duration::from_secs(30), "a successful scrape", |_| {
        let v: Value = serde_json::from_str(&get(&targets, &[])?).ok()?;
        let t = v["data"]["activeTargets"].as_array()?.first()?.clone();
        (t["health"] == "up").then_some(())
    });

    // A counter whose final count the process wrote: Prometheus holds exactly that.
    let (expired, site, count) = expired_counter(&r, "2s");
    let q = format!("lprobe_probe_hits_total{{probe=\"{expired}\",pid=\"{pid}\"}}");
    let got = prom.wait_query(&q, |s| s.len() == 1 && value(&s[0]) == count as f64);
    let labels = &got[0]["metric"];
    assert_eq!(labels["site"], site.as_str(), "{labels}");
    assert_eq!(labels["fn"], "demo_app::process_order", "{labels}");
    assert_eq!(labels["program"], "demo-app", "{labels}");
    assert_eq!(labels["job"], "lprobe", "{labels}");

    // A live counter: one series per billing function, never more than the process counts.
    let q = format!("lprobe_probe_hits_total{{probe=\"{live}\"}}");
    let series = prom.wait_query(&q, |s| {
        s.iter()
            .any(|x| x["metric"]["fn"] == "demo_app::billing::Invoice::for_order")
    });
    let scraped: f64 = series.iter().map(value).sum();
    for s in &series {
        assert!(value(s) >= 1.0, "{s}");
        let site = s["metric"]["site"].as_str().expect("site");
        assert!(site.starts_with("src/billing.rs:"), "{s}");
    }
    let hits = probe_status(&r, &live)["hits"].as_f64().expect("hits");
    assert!(
        scraped <= hits,
        "Prometheus has {scraped}, the process {hits}"
    );

    // Durations: a summary with three quantiles, _sum and _count.
    let q = format!("lprobe_probe_duration_seconds{{probe=\"{timed}\"}}");
    let quantiles = prom.wait_query(&q, |s| s.len() == 3);
    let mut qs: Vec<&str> = quantiles
        .iter()
        .map(|s| s["metric"]["quantile"].as_str().expect("quantile"))
        .collect();
    qs.sort_unstable();
    assert_eq!(qs, ["0.5", "0.9", "0.99"]);
    assert!(quantiles.iter().all(|s| value(s) > 0.0), "{quantiles:?}");
    let n = value(
        &prom.wait_query(
            &format!("lprobe_probe_duration_seconds_count{{probe=\"{timed}\"}}"),
            |s| value(&s[0]) > 0.0,
        )[0],
    );
    let sum = value(
        &prom.wait_query(
            &format!("lprobe_probe_duration_seconds_sum{{probe=\"{timed}\"}}"),
            |_| true,
        )[0],
    );
    assert!(sum > 0.0 && sum < n * 1.0, "sum {sum}s of {n} calls");
    let timed_now = probe_status(&r, &timed)["duration"]["count"]
        .as_f64()
        .expect("count");
    assert!(
        n <= timed_now,
        "Prometheus has {n} calls, the process {timed_now}"
    );

    // The process-wide families.
    let armed = prom.wait_query(&format!("lprobe_probes_armed{{pid=\"{pid}\"}}"), |_| true);
    assert_eq!(value(&armed[0]), 2.0, "the expired counter is not armed");
    let dropped = prom.wait_query(
        &format!("lprobe_records_dropped_total{{pid=\"{pid}\"}}"),
        |_| true,
    );
    let mut reasons: Vec<&str> = dropped
        .iter()
        .map(|s| s["metric"]["reason"].as_str().expect("reason"))
        .collect();
    reasons.sort_unstable();
    assert_eq!(
        reasons,
        ["budget", "busy", "queue", "rate", "stack", "write"]
    );

    // A process that exits is gone from the next scrape: its series go stale.
    drop(r);
    let q = format!("lprobe_probes_armed{{pid=\"{pid}\"}}");
    prom.wait(
        Duration::from_secs(30),
        "the exited process's series to go stale",
        |p| p.query(&q).is_empty().then_some(()),
    );
    let metrics = get(&format!("http://{addr}/metrics"), &[]).expect("GET /metrics");
    assert!(!metrics.contains(&format!("pid=\"{pid}\"")), "{metrics}");
    drop(exporter);
}

#[test]
fn the_textfile_holds_what_metrics_serves() {
    let r = demo();
    let pid = r.child.id();
    let (id, site, count) = expired_counter(&r, "1s");
    // Value metrics that stop after 5 hits, so the text and the status agree.
    let metric = |kind: &str| {
        let p = arm(
            &r,
            &[
                "fn:demo_app::process_order",
                kind,
                "order.id",
                "--every",
                "1h",
                "--max-hits",
                "5",
            ],
        );
        wait_for(Duration::from_secs(20), "the metric probe's 5 hits", || {
            (probe_status(&r, &p)["state"] == "exhausted").then_some(())
        });
        p
    };
    let (hist, gauge) = (metric("--histogram"), metric("--gauge"));
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(LPROBE)
        .arg("exporter")
        .arg("--textfile")
        .arg(dir.path())
        .env("LPROBE_SOCKET", &r.socket)
        .output()
        .expect("run lprobe exporter --textfile");
    assert!(out.status.success(), "{}", stderr(&out));
    let path = dir.path().join("lprobe.prom");
    assert!(stderr(&out).contains(&format!("wrote {}", path.display())));
    let text = std::fs::read_to_string(&path).expect("lprobe.prom");
    let line = format!(
        "lprobe_probe_hits_total{{probe=\"{id}\",site=\"{site}\",fn=\"demo_app::process_order\",\
         pid=\"{pid}\",program=\"demo-app\"}} {count}\n"
    );
    assert!(text.contains(&line), "{line}\nnot in\n{text}");
    assert!(
        text.contains(&format!(
            "lprobe_probes_armed{{pid=\"{pid}\",program=\"demo-app\"}} 0\n"
        )),
        "{text}"
    );
    let labels = |p: &str| {
        format!(
            "{{probe=\"{p}\",site=\"{site}\",fn=\"demo_app::process_order\",expr=\"order.id\",\
             pid=\"{pid}\",program=\"demo-app\""
        )
    };
    let h = probe_status(&r, &hist)["histogram"].clone();
    for (name, v) in [
        (
            format!("lprobe_probe_value_count{}}}", labels(&hist)),
            &h["count"],
        ),
        (
            format!("lprobe_probe_value_sum{}}}", labels(&hist)),
            &h["sum"],
        ),
        (
            format!("lprobe_probe_value{},quantile=\"0.5\"}}", labels(&hist)),
            &h["p50"],
        ),
        (
            format!("lprobe_probe_value{},quantile=\"0.99\"}}", labels(&hist)),
            &h["p99"],
        ),
    ] {
        let line = format!("{name} {}\n", v.as_f64().expect("a number"));
        assert!(text.contains(&line), "{line}\nnot in\n{text}");
    }
    assert_eq!(h["count"], 5, "{h}");
    let g = probe_status(&r, &gauge)["gauge"].clone();
    for (family, field) in [
        ("lprobe_probe_gauge", "last"),
        ("lprobe_probe_gauge_min", "min"),
        ("lprobe_probe_gauge_max", "max"),
    ] {
        let v = g[field].as_f64().expect("a number");
        let line = format!("{family}{}}} {v}\n", labels(&gauge));
        assert!(text.contains(&line), "{line}\nnot in\n{text}");
    }
    // Nothing is armed, so nothing changes: the server's /metrics is the same text.
    let (_exporter, addr) = start_exporter(&r);
    let served = get(&format!("http://{addr}/metrics"), &[]).expect("GET /metrics");
    assert_eq!(served, text);
}
