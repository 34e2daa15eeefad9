//! Shared helpers: fixture copies, builds, running programs, waiting for records.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const LPROBE: &str = env!("CARGO_BIN_EXE_lprobe");
pub const CARGO_LPROBE: &str = env!("CARGO_BIN_EXE_cargo-lprobe");

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cargo-lprobe has a parent")
        .to_path_buf()
}

fn e2e_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"));
    target.join("e2e")
}

/// Copies `fixtures/<name>` to a private place (only changed files) and returns it.
pub fn fixture(name: &str) -> PathBuf {
    let src = repo().join("fixtures").join(name);
    let dest = e2e_dir().join("src").join(name);
    for entry in walkdir::WalkDir::new(&src)
        .into_iter()
        .filter_entry(|e| e.file_name() != "target")
    {
        let entry = entry.expect("walk fixture");
        if !entry.file_type().is_file() {
            continue;
        }
        let rel = entry.path().strip_prefix(&src).expect("under fixture");
        let content = std::fs::read(entry.path()).expect("read fixture file");
        cargo_lprobe::build::copy_tree::write_if_changed(&dest.join(rel), &content).expect("copy");
    }
    dest
}

/// Copies `fixtures/<name>` into `dest` (for a test that edits it or builds it its own way).
pub fn private_copy(name: &str, dest: &Path) {
    let src = repo().join("fixtures").join(name);
    for entry in walkdir::WalkDir::new(&src)
        .into_iter()
        .filter_entry(|e| e.file_name() != "target")
    {
        let entry = entry.expect("walk fixture");
        if entry.file_type().is_file() {
            let rel = entry.path().strip_prefix(&src).expect("under fixture");
            let to = dest.join(rel);
            std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
            std::fs::copy(entry.path(), to).expect("copy");
        }
    }
}

/// The runtime cache the tests' builds share (`LPROBE_CACHE_DIR`).
pub fn runtime_cache_dir() -> PathBuf {
    e2e_dir().join("runtime-cache")
}

pub fn target_dir(name: &str) -> PathBuf {
    e2e_dir().join("target").join(name)
}

/// Builds run one at a time: they share cargo's caches and two cores.
static BUILD_LOCK: Mutex<()> = Mutex::new(());

/// Runs `cargo lprobe ARGS` (or plain `cargo ARGS` when `plain`) in a fixture copy.
pub fn cargo(name: &str, plain: bool, args: &[&str]) -> Output {
    cargo_env(name, plain, args, &[])
}

/// Like [`cargo`], with extra environment variables.
pub fn cargo_env(name: &str, plain: bool, args: &[&str], env: &[(&str, &str)]) -> Output {
    let _g = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = fixture(name);
    let target = target_dir(name);
    run_cargo(&dir, &target, plain, args, env)
}

/// Runs `cargo lprobe ARGS` in `dir` (a copy the test made itself) with its own target dir.
pub fn cargo_lprobe_in(dir: &Path, target: &Path, args: &[&str]) -> Output {
    cargo_lprobe_in_env(dir, target, args, &[])
}

/// Like [`cargo_lprobe_in`], with extra environment variables.
pub fn cargo_lprobe_in_env(
    dir: &Path,
    target: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let _g = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    run_cargo(dir, target, false, args, env)
}

fn run_cargo(
    dir: &Path,
    target: &Path,
    plain: bool,
    args: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let name = dir.display();
    let mut cmd = if plain {
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
    } else {
        let mut c = Command::new(CARGO_LPROBE);
        c.arg("lprobe");
        c
    };
    cmd.args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        // The tests' own runtime cache, not the user's.
        .env("LPROBE_CACHE_DIR", runtime_cache_dir())
        .env_remove("RUSTFLAGS")
        .envs(env.iter().copied());
    let out = cmd.output().expect("run cargo");
    if !out.status.success() {
        eprintln!(
            "--- cargo {args:?} in {name} failed ---\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Builds a fixture once per test run with `cargo lprobe build ARGS`; returns its target dir.
pub fn build_once(name: &str, args: &[&str]) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let key = format!("{name} {args:?}");
    let set = BUILT.get_or_init(|| Mutex::new(HashSet::new()));
    let mut done = set.lock().unwrap_or_else(|e| e.into_inner());
    if !done.contains(&key) {
        let mut full = vec!["build"];
        full.extend_from_slice(args);
        let out = cargo(name, false, &full);
        assert!(out.status.success(), "cargo lprobe build failed for {name}");
        done.insert(key);
    }
    target_dir(name)
}

/// A running instrumented program, killed on drop.
pub struct Running {
    pub child: Child,
    /// Holds the socket and output file; removed on drop.
    _dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub output: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `exe` with its own socket and output file; `env` adds variables. Waits until the
/// control socket answers.
pub fn start(exe: &Path, env: &[(&str, &str)]) -> Running {
    spawn(exe, env, None)
}

/// Like [`start`], with the program's stdout and stderr kept in `stdout.txt` and `stderr.txt`
/// beside its socket (returned with it): for tests that read the program's own log.
pub fn start_logged(exe: &Path, env: &[(&str, &str)]) -> (Running, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, err) = (dir.path().join("stdout.txt"), dir.path().join("stderr.txt"));
    let r = spawn(exe, env, Some((dir, &out, &err)));
    (r, out, err)
}

fn spawn(
    exe: &Path,
    env: &[(&str, &str)],
    logs: Option<(tempfile::TempDir, &Path, &Path)>,
) -> Running {
    let (dir, stdout, stderr) = match logs {
        Some((dir, out, err)) => {
            let file = |p: &Path| Stdio::from(std::fs::File::create(p).expect("create log file"));
            (dir, file(out), file(err))
        }
        None => (
            tempfile::tempdir().expect("tempdir"),
            Stdio::null(),
            Stdio::null(),
        ),
    };
    let socket = dir.path().join("p.sock");
    let output = dir.path().join("out.jsonl");
    let mut cmd = Command::new(exe);
    cmd.env("LPROBE_SOCKET", &socket)
        .env("LPROBE_OUTPUT", &output)
        .stdout(stdout)
        .stderr(stderr);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("start program");
    let r = Running {
        child,
        _dir: dir,
        socket,
        output,
    };
    wait_for(Duration::from_secs(20), "the control socket", || {
        lprobe(&r, &["status", "--json"])
            .status
            .success()
            .then_some(())
    });
    r
}

/// Arms a probe with `lprobe arm ARGS --json` through the socket; returns its id.
pub fn arm(r: &Running, args: &[&str]) -> String {
    let mut full = vec!["arm"];
    full.extend_from_slice(args);
    full.push("--json");
    let out = lprobe(r, &full);
    assert!(out.status.success(), "arm {args:?}: {}", stderr(&out));
    let v: Value = serde_json::from_str(stdout(&out).trim()).expect("arm --json is JSON");
    v["probe"].as_str().expect("probe id").to_owned()
}

/// The probe's object in `lprobe status --json` (`null` when it is not listed).
pub fn probe_status(r: &Running, id: &str) -> Value {
    let out = lprobe(r, &["status", "--json"]);
    let st: Value = serde_json::from_str(&stdout(&out)).expect("status json");
    st[0]["probes"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["id"] == id).cloned())
        .unwrap_or(Value::Null)
}

/// Runs `lprobe ARGS` against one program.
pub fn lprobe(r: &Running, args: &[&str]) -> Output {
    Command::new(LPROBE)
        .args(args)
        .env("LPROBE_SOCKET", &r.socket)
        .output()
        .expect("run lprobe")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Polls `f` until it gives a value or `limit` passes (then fails the test naming `what`).
pub fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The records written so far.
pub fn records(r: &Running) -> Vec<Value> {
    std::fs::read_to_string(&r.output)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Waits for records matching `pred`, at least `n` of them.
pub fn wait_records(
    r: &Running,
    n: usize,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    wait_for(Duration::from_secs(20), what, || {
        let found: Vec<Value> = records(r).into_iter().filter(|v| pred(v)).collect();
        (found.len() >= n).then_some(found)
    })
}

/// Writes a control file readable by its owner only, as the runtime requires whatever the
/// umask (a file every user may write is refused).
pub fn write_control(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("write control file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// A record's `stack`: its frames as text.
pub fn stack_of(rec: &Value) -> Vec<&str> {
    rec["stack"]
        .as_array()
        .expect("stack")
        .iter()
        .filter_map(Value::as_str)
        .collect()
}
