//! Tests for the `lprobe` commands, against fake servers on temporary sockets.

use super::*;
use crate::cli::client::tests::fake_server;
use crate::cli::client::SocketEntry;
use std::os::unix::net::UnixListener;

fn hello_json(pid: u32) -> String {
    format!(
        "{{\"ok\":true,\"pid\":{pid},\"program\":\"/abs/demo-app\",\"version\":\"0.1.0\",\
         \"sites\":42,\"armed\":1,\"socket\":\"/tmp/x.sock\"}}\n"
    )
}

/// A `files` answer with nothing to compare (the fake processes' files are nowhere on disk).
const NO_FILES: &str = "{\"ok\":true,\"pid\":1,\"files\":[]}\n";

fn me() -> u32 {
    std::process::id()
}

/// Runs `lprobe ARGS` against `sockets`; returns (exit code, stdout, stderr).
fn run_cmd(args: &[&str], sockets: Vec<PathBuf>) -> (i32, String, String) {
    run_cmd_cancel(args, sockets, &AtomicBool::new(false))
}

fn run_cmd_cancel(
    args: &[&str],
    sockets: Vec<PathBuf>,
    cancel: &AtomicBool,
) -> (i32, String, String) {
    let argv: Vec<&str> = std::iter::once("lprobe")
        .chain(args.iter().copied())
        .collect();
    let (cli, matches) = parse(argv).expect("parse");
    let mut out = Vec::new();
    let mut err = Vec::new();
    let code = {
        // As `run` does with colours off (`--color never`, or not a terminal).
        let choice = color_choice(cli.global.color);
        let choice = if choice == anstream::ColorChoice::Auto {
            anstream::ColorChoice::Never
        } else {
            choice
        };
        let mut out = anstream::AutoStream::new(&mut out, choice);
        let mut err = anstream::AutoStream::new(&mut err, choice);
        let mut ctx = Ctx {
            discovery: Discovery {
                sockets: sockets.into_iter().map(SocketEntry::new).collect(),
                searched: Searched::Dirs(vec![PathBuf::from("/nowhere")]),
                refused: Vec::new(),
            },
            out: &mut out,
            err: &mut err,
            cancel,
            interactive: false,
        };
        run_with(&cli, &matches, &mut ctx)
    };
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

fn my_socket(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join(format!("{}.sock", me()))
}

#[test]
fn clap_definition_is_valid_and_helpful() {
    Cli::command().debug_assert();
    let help = Cli::command().render_long_help().to_string();
    for word in [
        "ps", "list", "arm", "tictoc", "disarm", "status", "tail", "snapshot", "--pid", "--all",
    ] {
        assert!(help.contains(word), "{word} missing from help:\n{help}");
    }
    let mut cmd = Cli::command();
    let arm = cmd.find_subcommand_mut("arm").unwrap();
    let help = arm.render_long_help().to_string();
    for flag in [
        "--log",
        "--snapshot",
        "--count",
        "--duration",
        "--tictoc",
        "--every",
        "--if",
        "--max-hits",
        "--ttl",
        "--rate",
        "--max-string",
        "--max-items",
        "--max-depth",
        "--control",
    ] {
        assert!(help.contains(flag), "{flag} missing from arm help:\n{help}");
    }
    assert!(help.contains("on every return path"), "{help}");
    let help = cmd
        .find_subcommand_mut("tictoc")
        .unwrap()
        .render_long_help()
        .to_string();
    for word in [
        "LOC_A",
        "LOC_B",
        "--every",
        "--if",
        "--max-hits",
        "--ttl",
        "--control",
    ] {
        assert!(
            help.contains(word),
            "{word} missing from tictoc help:\n{help}"
        );
    }
}

#[test]
fn arm_flags_keep_their_order() {
    let (cli, m) = parse([
        "lprobe",
        "arm",
        "src/main.rs:42",
        "--ttl",
        "1h",
        "--log",
        "order {order} total={total}",
        "--count",
        "--if",
        "-x > 3",
        "--max-hits",
        "5",
        "--rate",
        "100/s",
        "--max-depth",
        "4",
        "--tictoc",
        "src/main.rs:47",
        "--max-string",
        "200",
        "--max-items",
        "20",
    ])
    .unwrap();
    let Command::Arm(a) = &cli.command else {
        panic!("not arm")
    };
    assert_eq!(
        arm_argv(a, m.subcommand_matches("arm")),
        [
            "src/main.rs:42",
            "--ttl",
            "1h",
            "--log",
            "order {order} total={total}",
            "--count",
            "--if",
            "-x > 3",
            "--max-hits",
            "5",
            "--rate",
            "100/s",
            "--max-depth",
            "4",
            "--tictoc",
            "src/main.rs:47",
            "--max-string",
            "200",
            "--max-items",
            "20"
        ]
    );
    // Without matches: declaration order.
    assert_eq!(
        arm_argv(a, None)[1..5],
        [
            "--log",
            "order {order} total={total}",
            "--count",
            "--tictoc"
        ]
    );
}

#[test]
fn frames_and_frame_locals_reach_the_arm_request_and_locals_need_frames() {
    let (cli, m) = parse([
        "lprobe",
        "arm",
        "src/main.rs:42",
        "--frame-locals",
        "--frames",
        "3",
    ])
    .unwrap();
    let Command::Arm(a) = &cli.command else {
        panic!("not arm")
    };
    assert_eq!(
        arm_argv(a, m.subcommand_matches("arm")),
        ["src/main.rs:42", "--frame-locals", "--frames", "3"]
    );
    assert!(parse(["lprobe", "arm", "x", "--frame-locals"]).is_err());
    assert!(parse(["lprobe", "arm", "x", "--frames", "0"]).is_err());
    assert!(parse(["lprobe", "snapshot", "x", "--frames", "2", "--frame-locals"]).is_ok());
    assert!(parse(["lprobe", "snapshot", "x", "--frame-locals"]).is_err());
}

#[test]
fn arm_flag_validation() {
    assert!(parse(["lprobe", "arm", "x", "--rate", "100"]).is_ok());
    assert!(parse(["lprobe", "arm", "x", "--rate", "fast"]).is_err());
    assert!(parse(["lprobe", "arm", "x", "--max-hits", "0"]).is_err());
    assert!(parse(["lprobe", "arm", "x", "--rate", "0/s"]).is_err());
    assert!(parse(["lprobe", "arm", "x", "--every", "10"]).is_ok());
    assert!(parse(["lprobe", "arm", "x", "--every", "10parsecs"]).is_err());
    assert!(parse(["lprobe", "arm", "x", "--ttl", "1.5h"]).is_ok());
    assert!(parse(["lprobe", "arm", "x", "--max-hits", "-1"]).is_err());
    for flag in ["--max-string", "--max-items", "--max-depth"] {
        assert!(parse(["lprobe", "arm", "x", flag, "64"]).is_ok(), "{flag}");
        assert!(parse(["lprobe", "arm", "x", flag, "0"]).is_err(), "{flag}");
        assert!(parse(["lprobe", "arm", "x", flag, "-3"]).is_err(), "{flag}");
        assert!(
            parse(["lprobe", "arm", "x", flag, "lots"]).is_err(),
            "{flag}"
        );
        assert!(parse(["lprobe", "arm", "x", flag]).is_err(), "{flag}");
    }
    assert!(parse(["lprobe", "arm", "x", "--tictoc"]).is_err());
    assert!(parse(["lprobe", "tictoc", "a.rs:1"]).is_err());
    assert!(parse(["lprobe", "tictoc", "a.rs:1", "a.rs:2", "--every", "soon"]).is_err());
    assert!(parse(["lprobe", "tictoc", "a.rs:1", "a.rs:2", "--max-hits", "0"]).is_err());
    assert!(parse(["lprobe", "tictoc", "a.rs:1", "a.rs:2", "--count"]).is_err());
    assert!(parse(["lprobe", "arm"]).is_err());
    assert!(parse(["lprobe", "snapshot", "x", "--timeout", "0"]).is_err());
    assert!(parse(["lprobe", "snapshot", "x", "--timeout", "45"]).is_ok());
    match parse(["lprobe", "hot"]).map(|(c, _)| c.command) {
        Ok(Command::Hot(h)) => assert_eq!(
            (h.pattern.as_str(), h.window.as_str(), h.top, h.share),
            ("*", "10s", None, None)
        ),
        other => panic!("{other:?}"),
    }
    assert!(parse(["lprobe", "hot", "fn:app::*", "--for", "1.5m", "--top", "5"]).is_ok());
    assert!(parse(["lprobe", "hot", "--for", "0"]).is_err());
    assert!(parse(["lprobe", "hot", "--top", "0"]).is_err());
    assert!(parse(["lprobe", "hot", "--for", "soon"]).is_err());
    assert!(parse(["lprobe", "hot", "--share", "90%"]).is_ok());
    assert!(parse(["lprobe", "hot", "--share", "0"]).is_err());
    assert!(parse(["lprobe", "hot", "--share", "101"]).is_err());
    assert!(parse(["lprobe", "hot", "--records", "-"]).is_ok());
    assert!(parse(["lprobe", "hot", "--records", "-", "--for", "5s"]).is_err());
    assert_eq!(
        parse_duration("500ms", false),
        Ok(Duration::from_millis(500))
    );
    assert_eq!(parse_duration("2m", false), Ok(Duration::from_secs(120)));
    assert_eq!(parse_duration("30", true), Ok(Duration::from_secs(30)));
}

#[test]
fn no_process_found() {
    let (code, out, err) = run_cmd(&["status"], vec![]);
    assert_eq!(code, exit_code::NO_PROCESS);
    assert_eq!(out, "");
    assert_eq!(
        err,
        "error: no instrumented process found (looked in /nowhere/*.sock); start a program \
         built with 'cargo lprobe build'\n"
    );
}

#[test]
fn several_processes_need_pid_or_all() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.sock");
    let b = dir.path().join("b.sock");
    let sa = fake_server(&a, vec![hello_json(1001), hello_json(1001)]);
    let sb = fake_server(
        &b,
        vec![
            hello_json(1002),
            hello_json(1002),
            "{\"ok\":true,\"disarmed\":[\"p4\"]}\n".into(),
        ],
    );
    let (code, _, err) = run_cmd(&["disarm", "p4"], vec![a.clone(), b.clone()]);
    assert_eq!(code, exit_code::USAGE);
    assert!(err.contains("several instrumented processes"), "{err}");
    assert!(err.contains("1001  /abs/demo-app"), "{err}");
    assert!(err.contains("--pid"), "{err}");
    // --pid picks by the hello answer when the socket name is not a pid.
    let (code, out, err) = run_cmd(&["disarm", "p4", "--pid", "1002"], vec![a, b]);
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(out, "disarmed p4 (pid 1002)\n");
    sa.join().unwrap();
    let got = sb.join().unwrap();
    assert_eq!(got[2], "lprobe/1 disarm p4\n");
}

#[test]
fn unknown_pid() {
    let (code, _, err) = run_cmd(&["list", "--pid", "4242"], vec![]);
    assert_eq!(code, exit_code::NO_PROCESS);
    assert!(
        err.contains("no instrumented process with pid 4242"),
        "{err}"
    );
}

#[test]
fn arm_prints_and_sends_exact_request() {
    let dir = tempfile::tempdir().unwrap();
    let sock = my_socket(&dir);
    let server = fake_server(
        &sock,
        vec![
            hello_json(me()),
            "{\"ok\":true,\"probe\":\"p1\",\"sites\":[\"src/main.rs:42\"]}\n".into(),
            NO_FILES.into(),
            hello_json(me()),
            "{\"ok\":true,\"probe\":\"p2\",\"sites\":[\"src/main.rs:42\",\"src/main.rs:43\"]}\n"
                .into(),
            NO_FILES.into(),
        ],
    );
    let (code, out, err) = run_cmd(
        &[
            "arm",
            "src/main.rs:42",
            "--log",
            "order {order} total={total}",
            "--count",
        ],
        vec![sock.clone()],
    );
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(out, format!("armed p1 at src/main.rs:42 (pid {})\n", me()));
    let (code, out, _) = run_cmd(&["arm", "src/main.rs:42", "--json"], vec![sock]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        format!(
            "{{\"pid\":{},\"probe\":\"p2\",\"site\":\"src/main.rs:42\",\
             \"sites\":[\"src/main.rs:42\",\"src/main.rs:43\"]}}\n",
            me()
        )
    );
    let got = server.join().unwrap();
    assert_eq!(
        got[1],
        "lprobe/1 arm src/main.rs:42 --log 'order {order} total={total}' --count\n"
    );
    assert_eq!(got[2], "lprobe/1 files\n");
    assert_eq!(got[4], "lprobe/1 arm src/main.rs:42\n");
}

#[test]
fn arm_error_from_process() {
    let dir = tempfile::tempdir().unwrap();
    let sock = my_socket(&dir);
    let server = fake_server(
        &sock,
        vec![
            hello_json(me()),
            "{\"ok\":false,\"error\":\"no site at src/main.rs:999\"}\n".into(),
        ],
    );
    let (code, out, err) = run_cmd(&["arm", "src/main.rs:999", "--snapshot"], vec![sock]);
    assert_eq!(code, exit_code::REFUSED);
    assert_eq!(out, "");
    assert_eq!(err, "error: no site at src/main.rs:999\n");
    server.join().unwrap();
}

#[test]
fn arm_control_file_appends() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("probes.control");
    std::fs::write(&file, "src/a.rs:1 --count").unwrap();
    let f = file.to_str().unwrap();
    let (code, out, err) = run_cmd(
        &["arm", "src/main.rs:42", "--log", "it's {x}", "--control", f],
        vec![],
    );
    assert_eq!((code, err.as_str()), (0, ""));
    let text = std::fs::read_to_string(&file).unwrap();
    let line = text.lines().nth(1).unwrap();
    assert_eq!(out, format!("appended to {f}: {line}\n"));
    assert_eq!(
        shlex::split(line).unwrap(),
        ["src/main.rs:42", "--log", "it's {x}"]
    );
    assert!(text.starts_with("src/a.rs:1 --count\n"));
    assert!(text.ends_with('\n'));
    // A missing file is created.
    let new = dir.path().join("new.control");
    let (code, _, _) = run_cmd(
        &[
            "arm",
            "x.rs:1",
            "--count",
            "--control",
            new.to_str().unwrap(),
        ],
        vec![],
    );
    assert_eq!(code, 0);
    assert_eq!(std::fs::read_to_string(&new).unwrap(), "x.rs:1 --count\n");
}

#[test]
fn list_table_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let sock = my_socket(&dir);
    let sites = "{\"ok\":true,\"sites\":[\
        {\"id\":\"demo-app#3\",\"package\":\"demo-app\",\"path\":\"src/main.rs\",\"line\":42,\
         \"col\":5,\"fn\":\"demo_app::process\",\"kind\":\"line\",\"names\":[\"order\",\"total\"]},\
        {\"id\":\"demo-app#4\",\"package\":\"demo-app\",\"path\":\"src/billing.rs\",\"line\":7,\
         \"col\":1,\"fn\":\"demo_app::billing::charge\",\"kind\":\"entry\",\"names\":[]}]}\n";
    let server = fake_server(
        &sock,
        vec![
            hello_json(me()),
            sites.into(),
            NO_FILES.into(),
            hello_json(me()),
            sites.into(),
            NO_FILES.into(),
        ],
    );
    let (code, out, err) = run_cmd(&["list", "process"], vec![sock.clone()]);
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(
        out,
        "LOCATION          KIND   FN                         CAPTURES\n\
         src/main.rs:42    line   demo_app::process          order, total\n\
         src/billing.rs:7  entry  demo_app::billing::charge  -\n"
    );
    let (code, out, _) = run_cmd(&["list", "--json"], vec![sock]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[0]["id"], "demo-app#3");
    let got = server.join().unwrap();
    assert_eq!(got[1], "lprobe/1 sites process\n");
    assert_eq!(got[2], "lprobe/1 files\n");
    assert_eq!(got[4], "lprobe/1 sites\n");
}

#[test]
fn status_table_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let sock = my_socket(&dir);
    let status = format!(
        "{{\"ok\":true,\"pid\":{},\"program\":\"/abs/demo-app\",\"probes\":[\
         {{\"id\":\"p1\",\"location\":\"src/main.rs:42\",\"site\":\"src/main.rs:42\",\
           \"actions\":[\"log\"],\"state\":\"armed\",\"hits\":3,\"emitted\":3,\"dropped\":0,\
           \"errors\":0,\"ttl_left_s\":3590}},\
         {{\"id\":\"p2\",\"location\":\"process\",\"site\":\"src/main.rs:40\",\
           \"actions\":[\"count\",\"duration\"],\"state\":\"error\",\"hits\":9,\"emitted\":1,\
           \"dropped\":2,\"errors\":1,\"ttl_left_s\":null,\"limit\":\"rate\",\"duration\":{{\"count\":9,\"max_ns\":1500}}}}],\
         \"dropped_total\":2,\"control\":{{\"path\":\"/etc/x\",\"errors\":[\"line 3: bad flag\"]}}}}\n",
        me()
    );
    let server = fake_server(
        &sock,
        vec![hello_json(me()), status.clone(), hello_json(me()), status],
    );
    let (code, out, err) = run_cmd(&["status"], vec![sock.clone()]);
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(
        out,
        format!(
            "pid {}  /abs/demo-app\n\
             ID  LOCATION                  ACTIONS         STATE            HITS  EMITTED  DROPPED  LIMIT  TTL\n\
             p1  src/main.rs:42            log             armed            3     3        0        -      59m50s\n\
             p2  process (src/main.rs:40)  count,duration  error (1 error)  9     1        2        rate   -\n\
             \x20   n=9 max=1.50µs\n\
             dropped records (all probes): 2\n\
             control file: /etc/x\n\
             control file errors:\n  line 3: bad flag\n",
            me()
        )
    );
    let (code, out, _) = run_cmd(&["status", "--json"], vec![sock]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert!(v[0].get("ok").is_none());
    assert_eq!(v[0]["dropped_total"], 2);
    let got = server.join().unwrap();
    assert_eq!(got[1], "lprobe/1 status\n");
}

#[test]
fn disarm_needs_a_target_and_reports_misses() {
    let (code, _, err) = run_cmd(&["disarm"], vec![]);
    assert_eq!(code, exit_code::USAGE);
    assert!(err.contains("say what to disarm"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let sock = my_socket(&dir);
    let server = fake_server(
        &sock,
        vec![
            hello_json(me()),
            "{\"ok\":true,\"disarmed\":[]}\n".into(),
            hello_json(me()),
            "{\"ok\":true,\"disarmed\":[\"p1\",\"p2\"]}\n".into(),
        ],
    );
    let (code, _, err) = run_cmd(&["disarm", "p9"], vec![sock.clone()]);
    assert_eq!(code, 1);
    assert!(err.contains("no armed probe matches \"p9\""), "{err}");
    let (code, out, _) = run_cmd(&["disarm", "--all", "--json"], vec![sock]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        format!("{{\"pid\":{},\"disarmed\":[\"p1\",\"p2\"]}}\n", me())
    );
    let got = server.join().unwrap();
    assert_eq!(got[1], "lprobe/1 disarm p9\n");
    assert_eq!(got[3], "lprobe/1 disarm --all\n");
}

#[test]
fn ps_lists_and_removes_stale_sockets() {
    let dir = tempfile::tempdir().unwrap();
    let live = my_socket(&dir);
    let server = fake_server(&live, vec![hello_json(me())]);
    // Bound then closed: connecting is refused.
    let refused = dir.path().join("refused.sock");
    drop(UnixListener::bind(&refused).unwrap());
    // A pid that does not exist.
    let gone = dir.path().join("4294967294.sock");
    drop(UnixListener::bind(&gone).unwrap());
    let (code, out, err) = run_cmd(&["ps"], vec![live, refused.clone(), gone.clone()]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        format!(
            "PID{pad}  PROGRAM        SITES  ARMED\n{}  /abs/demo-app  42     1\n",
            me(),
            pad = " ".repeat(me().to_string().len().saturating_sub(3))
        )
    );
    assert!(err.contains("removed stale socket"), "{err}");
    assert!(!refused.exists());
    assert!(!gone.exists());
    server.join().unwrap();

    let (code, out, err) = run_cmd(&["ps", "--json"], vec![]);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "[]\n", ""));
}

#[test]
fn tail_formats_records_and_ends_when_process_exits() {
    let dir = tempfile::tempdir().unwrap();
    let sock = my_socket(&dir);
    let records = "{\"ok\":true}\n\
        {\"ts\":\"2024-05-01T01:37:18.123Z\",\"pid\":1,\"probe\":\"p1\",\"site\":\"src/main.rs:42\",\
         \"fn\":\"demo_app::process\",\"kind\":\"log\",\"thread\":\"main\",\"msg\":\"order 3\"}\n\
        {\"ts\":\"2024-05-01T01:37:19Z\",\"pid\":1,\"probe\":\"p2\",\"site\":\"src/a.rs:1\",\
         \"fn\":\"a::f\",\"kind\":\"count\",\"thread\":\"main\",\"count\":5}\n";
    let server = fake_server(
        &sock,
        vec![
            hello_json(me()),
            records.into(),
            hello_json(me()),
            records.into(),
        ],
    );
    let (code, out, err) = run_cmd(&["tail"], vec![sock.clone()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "01:37:18.123 p1 src/main.rs:42 demo_app::process  log  order 3\n\
         01:37:19.000 p2 src/a.rs:1 a::f  count  count=5\n"
    );
    assert!(err.contains("closed the stream"), "{err}");
    let (code, out, err) = run_cmd(&["tail", "--json"], vec![sock]);
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(out.lines().count(), 2);
    assert!(out.starts_with("{\"ts\":\"2024-05-01T01:37:18.123Z\""));
    let got = server.join().unwrap();
    assert_eq!(got[1], "lprobe/1 tail\n");
}

#[test]
fn tail_stops_on_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let sock = my_socket(&dir);
    let listener = UnixListener::bind(&sock).unwrap();
    let server = std::thread::spawn(move || {
        use std::io::{BufRead, BufReader};
        let mut held = Vec::new();
        for answer in [hello_json(me()), "{\"ok\":true}\n".to_string()] {
            let (s, _) = listener.accept().unwrap();
            let mut r = BufReader::new(s);
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            let mut s = r.into_inner();
            s.write_all(answer.as_bytes()).unwrap();
            held.push(s); // keep the tail connection open
        }
        std::thread::sleep(Duration::from_secs(2));
    });
    let cancel = AtomicBool::new(false);
    let t0 = Instant::now();
    let (code, out, _) = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(300));
            cancel.store(true, Ordering::SeqCst);
        });
        run_cmd_cancel(&["tail"], vec![sock], &cancel)
    });
    assert_eq!((code, out.as_str()), (0, ""));
    assert!(t0.elapsed() < Duration::from_secs(2));
    server.join().unwrap();
}

#[test]
fn snapshot_prints_first_hit() {
    let dir = tempfile::tempdir().unwrap();
    let sock = my_socket(&dir);
    let watch = "{\"ok\":true,\"probe\":\"p3\",\"sites\":[\"src/main.rs:42\"]}\n\
        {\"ts\":\"2024-05-01T01:37:18.123Z\",\"pid\":1,\"probe\":\"p3\",\"site\":\"src/main.rs:42\",\
         \"fn\":\"demo_app::process\",\"kind\":\"snapshot\",\"thread\":\"main\",\
         \"vars\":{\"total\":1234,\"user\":\"alice\"},\"stack\":[\"demo_app::process\",\"demo_app::main\"]}\n";
    let server = fake_server(&sock, vec![hello_json(me()), watch.into()]);
    let (code, out, err) = run_cmd(
        &["snapshot", "src/main.rs:42", "--if", "total > 1000"],
        vec![sock],
    );
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(
        out,
        "01:37:18.123 p3 src/main.rs:42 demo_app::process  snapshot  thread main\n\
         \x20 total = 1234\n\
         \x20 user = \"alice\"\n\
         \x20 stack:\n\
         \x20    0: demo_app::process\n\
         \x20    1: demo_app::main\n"
    );
    let got = server.join().unwrap();
    assert_eq!(
        got[1],
        "lprobe/1 watch src/main.rs:42 --snapshot --max-hits 1 --if 'total > 1000'\n"
    );
}

#[test]
fn snapshot_timeout_disarms() {
    let dir = tempfile::tempdir().unwrap();
    let sock = my_socket(&dir);
    let listener = UnixListener::bind(&sock).unwrap();
    let server = std::thread::spawn(move || {
        use std::io::{BufRead, BufReader};
        let mut got = Vec::new();
        let mut held = Vec::new();
        for answer in [
            hello_json(me()),
            "{\"ok\":true,\"probe\":\"p3\",\"sites\":[\"src/main.rs:42\"]}\n".to_string(),
            "{\"ok\":true,\"disarmed\":[\"p3\"]}\n".to_string(),
        ] {
            let (s, _) = listener.accept().unwrap();
            let mut r = BufReader::new(s);
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            got.push(line);
            let mut s = r.into_inner();
            s.write_all(answer.as_bytes()).unwrap();
            held.push(s);
        }
        got
    });
    let (code, out, err) = run_cmd(
        &["snapshot", "src/main.rs:42", "--timeout", "300ms"],
        vec![sock],
    );
    assert_eq!((code, out.as_str()), (1, ""));
    assert_eq!(
        err,
        "error: no hit at src/main.rs:42 within 300ms; disarmed p3\n"
    );
    let got = server.join().unwrap();
    assert_eq!(got[2], "lprobe/1 disarm p3\n");
}

#[test]
fn control_line_gets_its_own_line() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c");
    append_control_line(&f, "a --count").unwrap();
    append_control_line(&f, "b --count").unwrap();
    assert_eq!(
        std::fs::read_to_string(&f).unwrap(),
        "a --count\nb --count\n"
    );
}

#[test]
fn tictoc_sends_arm_with_tictoc_first() {
    let dir = tempfile::tempdir().unwrap();
    let sock = my_socket(&dir);
    let server = fake_server(
        &sock,
        vec![
            hello_json(me()),
            "{\"ok\":true,\"probe\":\"p3\",\"sites\":[\"src/main.rs:42\",\"src/main.rs:47\"]}\n"
                .into(),
            NO_FILES.into(),
            hello_json(me()),
            "{\"ok\":true,\"probe\":\"p4\",\"sites\":[\"src/a.rs:1\",\"src/a.rs:9\",\
             \"src/b.rs:2\"]}\n"
                .into(),
            NO_FILES.into(),
            hello_json(me()),
            "{\"ok\":true,\"probe\":\"p5\",\"sites\":[\"src/main.rs:42\",\"src/main.rs:47\"]}\n"
                .into(),
            NO_FILES.into(),
        ],
    );
    // Flags typed before LOC_B still come after `--tictoc LOC_B`, in the order typed.
    let (code, out, err) = run_cmd(
        &[
            "tictoc",
            "main.rs:42",
            "--ttl",
            "30m",
            "main.rs:47",
            "--if",
            "n > 3",
            "--every",
            "5s",
            "--max-hits",
            "100",
        ],
        vec![sock.clone()],
    );
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(
        out,
        format!(
            "armed p3: time from src/main.rs:42 to src/main.rs:47 (pid {})\n",
            me()
        )
    );
    // Several start or end sites: the locations as typed.
    let (code, out, _) = run_cmd(&["tictoc", "fn:a::*", "b.rs:2"], vec![sock.clone()]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        format!("armed p4: time from fn:a::* to b.rs:2 (pid {})\n", me())
    );
    let (code, out, _) = run_cmd(
        &["tictoc", "src/main.rs:42", "src/main.rs:47", "--json"],
        vec![sock],
    );
    assert_eq!(code, 0);
    assert_eq!(
        out,
        format!(
            "{{\"pid\":{},\"probe\":\"p5\",\"site\":\"src/main.rs:42\",\
             \"sites\":[\"src/main.rs:42\",\"src/main.rs:47\"]}}\n",
            me()
        )
    );
    let got = server.join().unwrap();
    assert_eq!(
        got[1],
        "lprobe/1 arm main.rs:42 --tictoc main.rs:47 --ttl 30m --if 'n > 3' --every 5s \
         --max-hits 100\n"
    );
    assert_eq!(got[4], "lprobe/1 arm 'fn:a::*' --tictoc b.rs:2\n");
    assert_eq!(
        got[7],
        "lprobe/1 arm src/main.rs:42 --tictoc src/main.rs:47\n"
    );
}

#[test]
fn tictoc_control_file_and_arm_limits() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("probes.control");
    let f = file.to_str().unwrap();
    let (code, out, err) = run_cmd(
        &[
            "tictoc",
            "src/a.rs:1",
            "src/a.rs:9",
            "--every",
            "1m",
            "--control",
            f,
        ],
        vec![],
    );
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(
        out,
        format!("appended to {f}: src/a.rs:1 --tictoc src/a.rs:9 --every 1m\n")
    );
    let (code, out, _) = run_cmd(
        &[
            "arm",
            "src/b.rs:3",
            "--max-items",
            "5",
            "--snapshot",
            "--max-string",
            "80",
            "--control",
            f,
            "--json",
        ],
        vec![],
    );
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["line"],
        "src/b.rs:3 --max-items 5 --snapshot --max-string 80"
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "src/a.rs:1 --tictoc src/a.rs:9 --every 1m\n\
         src/b.rs:3 --max-items 5 --snapshot --max-string 80\n"
    );
}

#[test]
fn arm_sends_duration_and_capture_limits() {
    let dir = tempfile::tempdir().unwrap();
    let sock = my_socket(&dir);
    let server = fake_server(
        &sock,
        vec![
            hello_json(me()),
            "{\"ok\":true,\"probe\":\"p1\",\"sites\":[\"src/billing.rs:98\"]}\n".into(),
        ],
    );
    let (code, out, err) = run_cmd(
        &[
            "arm",
            "fn:demo_app::billing::Invoice::total",
            "--duration",
            "--every",
            "30s",
            "--max-depth",
            "3",
        ],
        vec![sock],
    );
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(
        out,
        format!("armed p1 at src/billing.rs:98 (pid {})\n", me())
    );
    let got = server.join().unwrap();
    assert_eq!(
        got[1],
        "lprobe/1 arm fn:demo_app::billing::Invoice::total --duration --every 30s --max-depth 3\n"
    );
}

#[test]
fn status_shortens_many_sites_and_shows_timings() {
    let dir = tempfile::tempdir().unwrap();
    let sock = my_socket(&dir);
    let sites: Vec<String> = (1..=14).map(|i| format!("src/billing.rs:{i}")).collect();
    let status = json!({"ok":true,"pid":me(),"program":"/abs/demo-app","probes":[
        {"id":"p1","location":"fn:demo_app::billing::*","site":sites.join(","),"sites":sites,
         "actions":["count"],"state":"armed","hits":120,"emitted":2,"dropped":0,"errors":0,
         "ttl_left_s":60,"limit":null},
        {"id":"p2","location":"fn:demo_app::billing::Invoice::total",
         "site":"src/billing.rs:98","sites":["src/billing.rs:98"],"actions":["duration"],
         "state":"armed","hits":99,"emitted":1,"dropped":0,"errors":0,"ttl_left_s":60,
         "limit":"budget","duration":{"count":99,"min_ns":70,"p50_ns":431,"p90_ns":671,
         "p99_ns":872,"max_ns":872}},
        {"id":"p3","location":"main.rs:42","site":"src/main.rs:42,src/main.rs:47",
         "actions":["tictoc"],"state":"exhausted","hits":5,"emitted":1,"dropped":0,
         "errors":0,"ttl_left_s":60,"limit":"max-hits","duration":{"count":5,"min_ns":1200,
         "p50_ns":15000,"p90_ns":2_500_000,"p99_ns":2_500_000,"max_ns":1_500_000_000u64}},
        {"id":"p4","location":"src/a.rs:1","sites":["src/a.rs:1","src/a.rs:2"],
         "actions":["tictoc"],"state":"armed","hits":0,"emitted":0,"dropped":0,"errors":0,
         "ttl_left_s":60,"limit":null,"duration":{"count":0,"min_ns":0,"p50_ns":0,"p90_ns":0,
         "p99_ns":0,"max_ns":0}}],
        "dropped_total":0,"control":{"path":null,"errors":[]}});
    let server = fake_server(&sock, vec![hello_json(me()), format!("{status}\n")]);
    let (code, out, err) = run_cmd(&["status"], vec![sock]);
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(
        out,
        format!(
            "pid {}  /abs/demo-app\n\
             ID  LOCATION                                                  ACTIONS   STATE      HITS  EMITTED  DROPPED  LIMIT     TTL\n\
             p1  fn:demo_app::billing::* (14 sites)                        count     armed      120   2        0        -         1m00s\n\
             p2  fn:demo_app::billing::Invoice::total (src/billing.rs:98)  duration  armed      99    1        0        budget    1m00s\n\
             \x20   n=99 min=70ns p50=431ns p90=671ns p99=872ns max=872ns\n\
             p3  main.rs:42 (src/main.rs:42, src/main.rs:47)               tictoc    exhausted  5     1        0        max-hits  1m00s\n\
             \x20   n=5 min=1.20µs p50=15.0µs p90=2.50ms p99=2.50ms max=1.50s\n\
             p4  src/a.rs:1 (src/a.rs:1, src/a.rs:2)                       tictoc    armed      0     0        0        -         1m00s\n\
             \x20   n=0\n\
             dropped records (all probes): 0\n\
             control file: none\n",
            me()
        )
    );
    server.join().unwrap();
}

#[test]
fn tail_formats_duration_records() {
    let dir = tempfile::tempdir().unwrap();
    let sock = my_socket(&dir);
    let records = "{\"ok\":true}\n\
        {\"ts\":\"2024-05-01T01:37:18.123Z\",\"probe\":\"p1\",\"site\":\"src/billing.rs:98\",\
         \"fn\":\"demo_app::billing::Invoice::total\",\"kind\":\"duration\",\
         \"thread\":\"lprobe-control\",\"ns\":431,\"duration\":{\"count\":99,\"min_ns\":70,\
         \"p50_ns\":431,\"p90_ns\":671,\"p99_ns\":872,\"max_ns\":872}}\n";
    let server = fake_server(&sock, vec![hello_json(me()), records.into()]);
    let (code, out, err) = run_cmd(&["tail"], vec![sock]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "01:37:18.123 p1 src/billing.rs:98 demo_app::billing::Invoice::total  duration  \
         n=99 p50=431ns p90=671ns p99=872ns max=872ns\n"
    );
    server.join().unwrap();
}

#[test]
fn exit_codes_tell_usage_no_process_and_refusal_apart() {
    // A flag clap does not know: usage (2), before any socket is looked at.
    assert_eq!(run(["lprobe", "status", "--frobnicate"]), exit_code::USAGE);
    assert_eq!(
        run(["lprobe", "--color", "sometimes", "ps"]),
        exit_code::USAGE
    );
    assert_eq!(run(["lprobe", "--version"]), exit_code::SUCCESS);
    let (code, _, _) = run_cmd(&["status", "--pid", "1", "--all"], vec![]);
    assert_eq!(code, exit_code::USAGE);
    let (code, _, _) = run_cmd(&["arm", "src/main.rs:1"], vec![]);
    assert_eq!(code, exit_code::NO_PROCESS);
    // `lprobe --help` documents them, as the README does.
    let help = Cli::command().render_long_help().to_string();
    assert!(help.contains(exit_code::HELP), "{help}");
    let readme = include_str!("../../../README.md");
    for line in exit_code::HELP.lines().skip(1) {
        let (code, what) = line.trim().split_once(' ').unwrap();
        let row = format!("| {code} | {} |", what.trim());
        assert!(readme.contains(&row), "README lacks the row {row:?}");
    }
}

#[test]
fn color_always_styles_tables_and_errors_and_never_strips_them() {
    let (_, _, err) = run_cmd(&["status", "--color", "always"], vec![]);
    assert!(
        err.starts_with(&format!("{}error:", crate::style::ERROR)),
        "{err:?}"
    );
    let (_, _, err) = run_cmd(&["status", "--color", "never"], vec![]);
    assert!(err.starts_with("error: no instrumented process"), "{err:?}");
    let dir = tempfile::tempdir().unwrap();
    let sock = my_socket(&dir);
    let _srv = fake_server(&sock, vec![hello_json(me())]);
    let (code, out, _) = run_cmd(&["ps", "--color=always"], vec![sock]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with(&format!("{}PID", crate::style::HEADER)),
        "{out:?}"
    );
}

#[test]
fn status_says_where_records_go() {
    let line = |j: &str| output_line(&serde_json::from_str(j).unwrap());
    assert_eq!(
        line(
            r#"{"to":"tracing","path":null,"fallback":null,"filtered":0,"panics":0,"last_panic":null}"#
        ),
        "output: tracing (the program's subscriber, target lprobe)\n"
    );
    assert_eq!(
        line(r#"{"to":"log","path":null,"fallback":null,"filtered":3,"panics":1,"last_panic":"boom"}"#),
        "output: log (the program's logger, target lprobe); 3 records filtered out by it; 1 records lost to its panics (last: boom)\n"
    );
    assert_eq!(
        line(
            r#"{"to":"stderr","path":null,"fallback":"lprobe: LPROBE_OUTPUT=tracing, but …","filtered":0,"panics":0}"#
        ),
        "output: stderr (the LPROBE_OUTPUT bridge asked for is not in this program)\n"
    );
    assert_eq!(
        line(r#"{"to":"file","path":"/var/log/a.jsonl","fallback":null}"#),
        "output: file /var/log/a.jsonl\n"
    );
}
