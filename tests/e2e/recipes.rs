//! The recipes in `docs/`: the GitHub Actions workflow parses and runs `cargo lprobe`
//! commands that exist, and the Kubernetes manifest's ConfigMap, mounted the way the kubelet
//! mounts it, arms its probes in a real program.

use std::os::unix::fs::symlink;
use std::time::Duration;

use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

use crate::harness::*;

fn load(rel: &str) -> Vec<Yaml> {
    let text = std::fs::read_to_string(repo().join(rel)).expect("read recipe");
    YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{rel} does not parse: {e}"))
}

#[test]
fn the_github_actions_workflow_builds_release_and_tests_with_commands_that_exist() {
    let docs = load("docs/github-actions.yml");
    assert_eq!(docs.len(), 1);
    let wf = &docs[0];
    assert!(wf["on"]["push"].as_hash().is_some(), "no push trigger");
    let jobs = wf["jobs"].as_hash().expect("jobs");
    let mut runs = Vec::new();
    for (_, job) in jobs {
        assert!(job["runs-on"].as_str().is_some(), "a job without runs-on");
        for step in job["steps"].as_vec().expect("steps") {
            assert!(
                step["run"].as_str().is_some() || step["uses"].as_str().is_some(),
                "a step that neither runs nor uses: {step:?}"
            );
            if let Some(run) = step["run"].as_str() {
                runs.extend(run.lines().map(str::to_owned));
            }
        }
    }
    let lprobe: Vec<&String> = runs
        .iter()
        .filter(|r| r.starts_with("cargo lprobe "))
        .collect();
    assert!(
        lprobe
            .iter()
            .any(|r| r.starts_with("cargo lprobe build --release")),
        "{runs:?}"
    );
    assert!(
        lprobe.iter().any(|r| r.starts_with("cargo lprobe test")),
        "{runs:?}"
    );
    // Every `cargo lprobe …` line is one cargo-lprobe's parser accepts.
    for r in &lprobe {
        let args = shlex::split(r.strip_prefix("cargo ").unwrap()).expect("shell words");
        cargo_lprobe::build::cargo::parse(&args).unwrap_or_else(|e| panic!("{r}: {e}"));
    }
    // …and the install step installs the package that provides them.
    assert!(
        runs.iter()
            .any(|r| r.starts_with("cargo install") && r.contains("cargo-lprobe")),
        "{runs:?}"
    );
}

#[test]
fn the_kubernetes_configmap_arms_its_probes_when_mounted_like_the_kubelet_does() {
    let docs = load("docs/kubernetes.yaml");
    let kind = |k: &str| {
        docs.iter()
            .find(|d| d["kind"].as_str() == Some(k))
            .unwrap_or_else(|| panic!("no {k}"))
    };
    let cm = kind("ConfigMap");
    let deploy = kind("Deployment");
    let spec = &deploy["spec"]["template"]["spec"];
    let container = &spec["containers"][0];
    let env = |name: &str| {
        container["env"]
            .as_vec()
            .expect("env")
            .iter()
            .find(|e| e["name"].as_str() == Some(name))
            .and_then(|e| e["value"].as_str())
            .unwrap_or_else(|| panic!("no {name}"))
            .to_owned()
    };
    assert_eq!(env("LPROBE_OUTPUT"), "stdout");
    // The control file is a key of the ConfigMap, in the directory it is mounted on.
    let control = env("LPROBE_CONTROL");
    let mount = &container["volumeMounts"][0];
    assert!(
        mount["subPath"].is_badvalue(),
        "a subPath mount is never updated"
    );
    let (dir, key) = control.rsplit_once('/').expect("a path");
    assert_eq!(mount["mountPath"].as_str(), Some(dir));
    let volume = spec["volumes"]
        .as_vec()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("the mounted volume");
    assert_eq!(volume["configMap"]["name"], cm["metadata"]["name"]);
    let probes = cm["data"][key]
        .as_str()
        .expect("the control file's text")
        .to_owned();

    // Mounted as the kubelet does: DIR/KEY -> ..data/KEY, ..data -> a timestamped directory.
    // The other tests' build of demo-app (one target directory: another build would replace it).
    let t = build_once("demo-app", &["--release", "--lines", "all"]);
    let mnt = tempfile::tempdir().expect("tempdir");
    let stamp = mnt.path().join("..2026_01_01_00_00_00.1");
    std::fs::create_dir(&stamp).unwrap();
    write_control(&stamp.join(key), &probes);
    symlink("..2026_01_01_00_00_00.1", mnt.path().join("..data")).unwrap();
    symlink(format!("..data/{key}"), mnt.path().join(key)).unwrap();
    let control = mnt.path().join(key);
    let r = start(
        &t.join("lprobe/release/demo-app"),
        &[
            ("DEMO_INTERVAL_MS", "20"),
            ("LPROBE_CONTROL", control.to_str().expect("utf-8 path")),
        ],
    );
    let lines = probes
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .count();
    let st = wait_for(Duration::from_secs(10), "the ConfigMap's probes", || {
        let st: Value = serde_json::from_str(&stdout(&lprobe(&r, &["status", "--json"]))).ok()?;
        (st[0]["probes"].as_array().map(Vec::len) == Some(lines)).then_some(st)
    });
    assert_eq!(
        st[0]["control"]["errors"]
            .as_array()
            .map(Vec::len)
            .unwrap_or(0),
        0,
        "{st}"
    );
    wait_records(&r, 1, "a log record from the ConfigMap's probe", |v| {
        v["kind"] == "log" && v["msg"].as_str().is_some_and(|m| m.ends_with("for bob"))
    });
}
