//! Local trust: who may arm (`LPROBE_ALLOW_GROUP`), what the CLI believes (the socket
//! directory's owner and mode, the serving process's uid), and `lprobe ps` with a process in
//! another pid namespace. The tests that need other users run as root (`setpriv` switches
//! uid and groups without creating accounts) and say they are skipped otherwise.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

/// Uids and a gid no account uses here (numbers need no `/etc/passwd` entry).
const OWNER: u32 = 47990;
const GROUP: u32 = 47991;
const MEMBER: u32 = 47992;
const STRANGER: u32 = 47993;

fn demo_exe() -> PathBuf {
    build_once("demo-app", &["--release", "--lines", "all"]).join("lprobe/release/demo-app")
}

/// Whether this test can switch users (root, with `setpriv`); prints why not.
fn can_switch_users(test: &str) -> bool {
    let root = nix_uid() == 0;
    let setpriv = Command::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !(root && setpriv) {
        eprintln!("skipping {test}: needs root and setpriv to run as other users");
    }
    root && setpriv
}

fn nix_uid() -> u32 {
    std::fs::metadata("/proc/self").map_or(u32::MAX, |m| m.uid())
}

/// `setpriv` arguments for `uid` with `groups` (none: no supplementary group).
fn as_user(uid: u32, groups: &[u32]) -> Command {
    let mut c = Command::new("setpriv");
    c.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"));
    if groups.is_empty() {
        c.arg("--clear-groups");
    } else {
        let g: Vec<String> = groups.iter().map(u32::to_string).collect();
        c.arg(format!("--groups={}", g.join(",")));
    }
    c.arg("--");
    c
}

/// A program started by the test, killed on drop; removes `cleanup` too.
struct Program {
    child: Child,
    cleanup: Vec<PathBuf>,
}

impl Drop for Program {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for p in &self.cleanup {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

/// Starts `cmd` (the program, perhaps behind `setpriv` or `unshare`) with `env`, quiet, and
/// waits for its socket to appear.
fn spawn(mut cmd: Command, socket: &Path, env: &[(&str, &str)], cleanup: Vec<PathBuf>) -> Program {
    cmd.env("DEMO_INTERVAL_MS", "20")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let p = Program {
        child: cmd.spawn().expect("start the program"),
        cleanup,
    };
    wait_for(Duration::from_secs(20), "the program's socket", || {
        socket.exists().then_some(())
    });
    p
}

/// `lprobe ARGS` run as `uid` with `groups`, with `env`.
fn lprobe_as(uid: u32, groups: &[u32], env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut c = as_user(uid, groups);
    c.arg(LPROBE)
        .args(args)
        .env_remove("LPROBE_SOCKET")
        .env_remove("XDG_RUNTIME_DIR")
        .envs(env.iter().copied());
    c.output().expect("run lprobe")
}

/// `lprobe ps --json`'s entries whose socket is under `dir` (other instrumented processes of
/// this user, e.g. a corpus run's, may be listed too).
fn ps_under(o: &Output, dir: &Path) -> Vec<Value> {
    let v: Value = serde_json::from_str(stdout(o).trim()).unwrap_or(Value::Null);
    v.as_array()
        .map(|a| {
            a.iter()
                .filter(|p| {
                    p["socket"]
                        .as_str()
                        .is_some_and(|s| Path::new(s).starts_with(dir))
                })
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

fn ps_pids(o: &Output) -> Vec<u64> {
    let v: Value = serde_json::from_str(stdout(o).trim()).unwrap_or(Value::Null);
    v.as_array()
        .map(|a| a.iter().filter_map(|p| p["pid"].as_u64()).collect())
        .unwrap_or_default()
}

#[test]
fn members_of_the_allowed_group_may_arm_and_others_may_not() {
    if !can_switch_users("members_of_the_allowed_group_may_arm_and_others_may_not") {
        return;
    }
    let exe = demo_exe();
    let dir = PathBuf::from(format!("/tmp/lprobe-{OWNER}"));
    let _ = std::fs::remove_dir_all(&dir);
    let out_dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(out_dir.path(), std::fs::Permissions::from_mode(0o777))
        .expect("chmod");
    let mut cmd = as_user(OWNER, &[GROUP]);
    cmd.arg(&exe)
        .env_remove("LPROBE_SOCKET")
        .env_remove("XDG_RUNTIME_DIR")
        .env("LPROBE_ALLOW_GROUP", GROUP.to_string())
        .env("LPROBE_OUTPUT", out_dir.path().join("out.jsonl"));
    // The socket is named for the pid, known once started: wait for the directory's only one.
    let p = spawn(cmd, &dir, &[], vec![dir.clone()]);
    let pid = p.child.id();
    let socket = dir.join(format!("{pid}.sock"));
    wait_for(Duration::from_secs(20), "the program's socket", || {
        socket.exists().then_some(())
    });
    // The file system agrees with the peer check: the group may list and connect.
    let d = std::fs::metadata(&dir).expect("socket directory");
    assert_eq!((d.mode() & 0o7777, d.gid()), (0o750, GROUP));
    let s = std::fs::symlink_metadata(&socket).expect("socket");
    assert_eq!((s.mode() & 0o777, s.gid()), (0o660, GROUP));

    // A member finds it in the shared directory and arms.
    let ps = lprobe_as(MEMBER, &[GROUP], &[], &["ps", "--json"]);
    assert!(ps.status.success(), "{}", stderr(&ps));
    assert!(
        ps_pids(&ps).contains(&u64::from(pid)),
        "{}\n{}",
        stdout(&ps),
        stderr(&ps)
    );
    let pid_s = pid.to_string();
    let arm = lprobe_as(
        MEMBER,
        &[GROUP],
        &[],
        &["--pid", &pid_s, "arm", "src/main.rs:42", "--count"],
    );
    assert!(arm.status.success(), "{}", stderr(&arm));

    // A stranger sees nothing and cannot reach it, even by name.
    let ps = lprobe_as(STRANGER, &[], &[], &["ps", "--json"]);
    assert!(!ps_pids(&ps).contains(&u64::from(pid)), "{}", stdout(&ps));
    let sock_s = socket.to_str().expect("utf-8");
    let st = lprobe_as(STRANGER, &[], &[("LPROBE_SOCKET", sock_s)], &["status"]);
    assert!(!st.status.success(), "{}", stdout(&st));

    // With the modes loosened by hand, the runtime's own check still refuses the stranger.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let st = lprobe_as(STRANGER, &[], &[("LPROBE_SOCKET", sock_s)], &["status"]);
    assert!(!st.status.success(), "{}", stdout(&st));
    assert!(
        stderr(&st).contains("permission denied") && stderr(&st).contains("group 47991"),
        "{}",
        stderr(&st)
    );
    let st = lprobe_as(MEMBER, &[GROUP], &[("LPROBE_SOCKET", sock_s)], &["status"]);
    assert!(st.status.success(), "{}", stderr(&st));
}

#[test]
fn the_cli_believes_no_socket_in_an_open_directory_nor_one_served_by_a_stranger() {
    let exe = demo_exe();
    // A directory every user may write, without the sticky bit: `ps` refuses to look.
    let xdg = tempfile::tempdir().expect("tempdir");
    let open = xdg.path().join("lprobe");
    std::fs::create_dir(&open).expect("mkdir");
    let socket = open.join("4000000.sock");
    let sock_s = socket.to_str().expect("utf-8");
    let r = spawn(
        Command::new(&exe),
        &socket,
        &[("LPROBE_SOCKET", sock_s), ("LPROBE_OUTPUT", "stderr")],
        Vec::new(),
    );
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let ps = Command::new(LPROBE)
        .args(["ps", "--json"])
        .env_remove("LPROBE_SOCKET")
        .env("XDG_RUNTIME_DIR", xdg.path())
        .output()
        .expect("lprobe ps");
    assert!(ps_under(&ps, &open).is_empty(), "{}", stdout(&ps));
    assert!(
        stderr(&ps).contains("not trusted") && stderr(&ps).contains("chmod go-w"),
        "{}",
        stderr(&ps)
    );
    // Named directly, it is refused before anything is sent.
    let st = Command::new(LPROBE)
        .args(["status"])
        .env("LPROBE_SOCKET", &socket)
        .output()
        .expect("lprobe status");
    assert!(!st.status.success());
    assert!(stderr(&st).contains("not trusted"), "{}", stderr(&st));
    drop(r);

    if !can_switch_users("the stranger's socket part") {
        return;
    }
    // A socket in a sticky directory anyone may write (like /tmp itself), served by another
    // user: the CLI of a third user does not talk to it.
    let sticky = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(sticky.path(), std::fs::Permissions::from_mode(0o1777))
        .expect("chmod");
    let socket = sticky.path().join("app.sock");
    let mut cmd = as_user(OWNER, &[]);
    cmd.arg(&exe);
    let sock_s = socket.to_str().expect("utf-8");
    let _p = spawn(
        cmd,
        &socket,
        &[("LPROBE_SOCKET", sock_s), ("LPROBE_OUTPUT", "stderr")],
        Vec::new(),
    );
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let st = lprobe_as(MEMBER, &[], &[("LPROBE_SOCKET", sock_s)], &["status"]);
    assert!(!st.status.success(), "{}", stdout(&st));
    assert!(
        stderr(&st).contains(&format!("served by uid {OWNER}")),
        "{}",
        stderr(&st)
    );
}

/// A pid with no process here.
fn unused_pid() -> u32 {
    (900_000..)
        .find(|p| !Path::new(&format!("/proc/{p}")).exists())
        .expect("a free pid")
}

#[test]
fn ps_keeps_the_socket_of_a_process_in_another_pid_namespace() {
    let exe = demo_exe();
    let xdg = tempfile::tempdir().expect("tempdir");
    let dir = xdg.path().join("lprobe");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    // Its pid in the file name means nothing here: as a container's process sharing the
    // directory, it has a pid that does not exist in this namespace.
    let socket = dir.join(format!("{}.sock", unused_pid()));
    let unshare = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "--kill-child", "true"])
        .output()
        .is_ok_and(|o| o.status.success());
    let cmd = if unshare {
        let mut c = Command::new("unshare");
        c.args(["--pid", "--fork", "--mount-proc", "--kill-child"])
            .arg(&exe);
        c
    } else {
        eprintln!("unshare --pid is not available: the process stays in this namespace");
        Command::new(&exe)
    };
    let sock_s = socket.to_str().expect("utf-8");
    let p = spawn(
        cmd,
        &socket,
        &[("LPROBE_SOCKET", sock_s), ("LPROBE_OUTPUT", "stderr")],
        Vec::new(),
    );
    let ps = |json: bool| {
        let mut c = Command::new(LPROBE);
        c.arg("ps");
        if json {
            c.arg("--json");
        }
        c.env_remove("LPROBE_SOCKET")
            .env("XDG_RUNTIME_DIR", xdg.path())
            .output()
            .expect("lprobe ps")
    };
    let out = wait_for(Duration::from_secs(20), "ps to list it", || {
        let o = ps(true);
        (ps_under(&o, &dir).len() == 1).then_some(o)
    });
    assert!(socket.exists(), "ps removed a live process's socket");
    let listed = Value::Array(ps_under(&out, &dir));
    let own_ns = std::fs::metadata("/proc/self/ns/pid").map(|m| m.ino()).ok();
    if unshare {
        assert_ne!(listed[0]["pidns"].as_u64(), own_ns, "{listed}");
        let human = ps(false);
        assert!(
            stderr(&human).contains("another pid namespace"),
            "{}",
            stderr(&human)
        );
        // Its pid there: the first process of its namespace.
        assert_eq!(listed[0]["pid"], 1, "{listed}");
    }
    // Gone (killed: no exit handler removes the socket): connecting is refused, and `ps`
    // removes it.
    drop(p);
    wait_for(
        Duration::from_secs(20),
        "ps to remove the stale socket",
        || {
            stderr(&ps(false))
                .contains("removed stale socket")
                .then_some(())
        },
    );
    assert!(!socket.exists());
}
