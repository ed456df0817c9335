//! What runs leave behind, for scripts and for people: stdout in the format asked for,
//! sweep.json and sweep.csv, index.html (checked in headless Chromium), results written
//! after each transport, no server left running after Ctrl-C or SIGTERM, and the GitHub
//! Action's steps. Each run is a miniature (`--quick`, two clients, one or two
//! transports): a few seconds.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A temporary folder, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("pushlab-outputs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }
    fn join(&self, path: &str) -> PathBuf {
        self.0.join(path)
    }
    fn arg(&self, path: &str) -> String {
        self.join(path).display().to_string()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const MINI: [&str; 5] = ["--quick", "--clients", "2", "--idle", "500ms"];

fn pushlab(args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_pushlab"))
        .args(args)
        .env_remove("GITHUB_STEP_SUMMARY")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert!(
        output.status.code().is_some_and(|c| c <= 1),
        "{args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap()
}

#[test]
fn a_run_prints_json_for_scripts_and_writes_every_file() {
    let dir = Dir::new("json");
    let out = dir.arg("run");
    let output = pushlab(
        &[&["lab", "--transports", "ws", "--output-format", "json", "--out", &out], &MINI[..]].concat(),
    );
    let printed: Value = serde_json::from_slice(&output.stdout).expect("stdout is results.json alone");
    assert_eq!(printed, read_json(&dir.join("run/results.json")));
    for file in ["summary.md", "summary.csv", "latency.svg", "cost.svg", "index.html"] {
        assert!(dir.join("run").join(file).is_file(), "{file}");
    }
    // An explicit --idle wins over --quick.
    assert_eq!(printed["setup"]["workload"]["idle_seconds"], 0.5);
    // The commit is the binary's (the run was made from the temporary folder).
    let version = String::from_utf8_lossy(&pushlab(&["--version"]).stdout).into_owned();
    let commit = printed["setup"]["git_commit"].as_str().unwrap().to_string();
    assert!(version.contains(&format!("(commit {commit})")), "{version} vs {commit}");
}

#[test]
fn a_sweep_writes_sweep_json_and_csv() {
    let dir = Dir::new("sweep");
    let out = dir.arg("sweep");
    let output = pushlab(
        &[
            &["lab", "--transports", "ws", "--rtt", "0ms,20ms", "--output-format", "csv", "--out", &out],
            &MINI[..],
        ]
        .concat(),
    );
    let sweep = read_json(&dir.join("sweep/sweep.json"));
    let names: Vec<&str> =
        sweep["conditions"].as_array().unwrap().iter().map(|c| c["condition"].as_str().unwrap()).collect();
    assert_eq!(names, ["rtt-0ms", "rtt-20ms"]);
    assert_eq!(sweep["conditions"][1]["results"]["setup"]["workload"]["network"]["rtt_ms"], 20.0);
    let csv = std::fs::read_to_string(dir.join("sweep/sweep.csv")).unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), csv, "stdout is sweep.csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("condition,transport,"), "{csv}");
    assert!(lines[1].starts_with("rtt-0ms,ws,") && lines[2].starts_with("rtt-20ms,ws,"), "{csv}");
    assert!(dir.join("sweep/index.html").is_file());
    // `report` reads the folder back as a sweep.
    let report = pushlab(&["report", &out]);
    assert!(String::from_utf8_lossy(&report.stdout).contains("== rtt-20ms"));
}

#[test]
fn a_load_records_no_heartbeat_for_its_target() {
    let dir = Dir::new("load");
    let mut server = Command::new(env!("CARGO_BIN_EXE_pushlab"))
        .args(["serve", "--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.split("http://").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    let out = dir.arg("load");
    let output = Command::new(env!("CARGO_BIN_EXE_pushlab"))
        .args([&["load", "--target", &addr, "--transports", "sse", "--out", &out], &MINI[..]].concat())
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let results = read_json(&dir.join("load/results.json"));
    assert!(results["setup"]["workload"]["heartbeat_seconds"].is_null(), "{}", results["setup"]["workload"]);
    let summary = std::fs::read_to_string(dir.join("load/summary.md")).unwrap();
    assert!(!summary.contains("heartbeat"), "{summary}");
}

/// Whether process `pid` is gone (or a zombie: dead, waiting to be reaped).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

/// Starts a two-transport lab, waits until its second server is up (the first
/// transport's results are then written), sends `signal`, and checks the exit code,
/// that both servers are gone and that the first transport was kept.
fn stopped_by(signal: nix::sys::signal::Signal, code: i32) {
    let dir = Dir::new(&format!("signal-{code}"));
    let out = dir.arg("run");
    let mut lab = Command::new(env!("CARGO_BIN_EXE_pushlab"))
        .args([&["lab", "--transports", "ws,sse", "--out", &out], &MINI[..]].concat())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(lab.stderr.take().unwrap());
    let mut pids = Vec::new();
    let mut log = String::new();
    while pids.len() < 2 {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "lab ended early:\n{log}");
        log += &line;
        if let Some(rest) = line.split("server pid ").nth(1) {
            pids.push(rest.split_whitespace().next().unwrap().parse::<u32>().unwrap());
        }
    }
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!gone(pids[1]), "the second server should be running");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(lab.id() as i32), signal).unwrap();
    let status = lab.wait().unwrap();
    assert_eq!(status.code(), Some(code), "{log}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !pids.iter().all(|&pid| gone(pid)) {
        assert!(Instant::now() < deadline, "a server outlived the lab: {pids:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The first transport was written before the second began, marked incomplete.
    let results = read_json(&dir.join("run/results.json"));
    assert_eq!(results["transports"].as_array().unwrap().len(), 1);
    assert_eq!(results["transports"][0]["transport"], "ws");
    assert!(
        results["warnings"][0].as_str().unwrap().starts_with("incomplete: 1 of 2"),
        "{}",
        results["warnings"]
    );
}

#[test]
fn ctrl_c_stops_every_server_the_lab_started_and_keeps_what_was_measured() {
    stopped_by(nix::sys::signal::Signal::SIGINT, 130);
}

#[test]
fn sigterm_stops_every_server_the_lab_started() {
    stopped_by(nix::sys::signal::Signal::SIGTERM, 143);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_html_report_renders_offline_in_a_browser() {
    let Some(browser) = crate::util::Browser::start().await else { return };
    let run = Path::new(env!("CARGO_MANIFEST_DIR")).join("results/2026-11-22-lab");
    let dir = Dir::new("html");
    // Rewritten from the committed run: the page as this code writes it.
    let output = Command::new(env!("CARGO_BIN_EXE_pushlab"))
        .args(["report", run.to_str().unwrap(), "--out", &dir.arg("report")])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let page = dir.join("report/index.html");
    let html = std::fs::read_to_string(&page).unwrap();
    // The plots' SVG carries its namespace URI, which is a name, not a request.
    let without_namespaces = html.replace("http://www.w3.org/", "");
    for external in ["http://", "https://", "<script", "<link", "src="] {
        assert!(!without_namespaces.contains(external), "index.html refers to {external}");
    }
    browser.goto(&format!("file://{}", page.display())).await;
    let state = browser
        .eval(
            "return {
                ready: document.readyState,
                title: document.title,
                svgs: document.querySelectorAll('figure svg').length,
                rows: document.querySelectorAll('table tr').length,
                text: document.body.innerText,
                requests: performance.getEntriesByType('resource').length,
                width: document.querySelector('figure svg').getBoundingClientRect().width
            }",
        )
        .await;
    let errors = browser.console_errors().await;
    browser.close().await;
    assert!(errors.is_empty(), "the page logged errors: {errors:?}");
    assert_eq!(state["ready"], "complete", "{state}");
    assert_eq!(state["title"], "pushlab results");
    assert_eq!(state["svgs"], 2, "both plots inlined: {state}");
    assert!(state["rows"].as_u64().unwrap() > 15, "{state}");
    assert_eq!(state["requests"], 0, "the page loads nothing: {state}");
    assert!(state["width"].as_f64().unwrap() > 100.0, "the plots render: {state}");
    let text = state["text"].as_str().unwrap();
    for part in ["Latency percentiles", "p99.9", "short_poll", "Warnings", "target/release/pushlab lab"] {
        assert!(text.contains(part), "{part}: {text}");
    }
}

/// The `run:` scripts of a composite action's steps, in order, from its `action.yml`: a
/// minimal reader for the shape this repository's action has (`run: |` blocks).
fn run_scripts(yaml: &str) -> Vec<String> {
    let mut scripts = Vec::new();
    let mut lines = yaml.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(at) = line.find("run: |") else { continue };
        if !line[..at].trim().trim_start_matches('-').trim().is_empty() {
            continue;
        }
        let mut script = String::new();
        let mut indent = None;
        while let Some(next) = lines.peek() {
            let depth = next.len() - next.trim_start().len();
            if !next.trim().is_empty() && depth <= at {
                break;
            }
            let indent = *indent.get_or_insert(depth);
            script += next.get(indent..).unwrap_or("");
            script.push('\n');
            lines.next();
        }
        scripts.push(script);
    }
    scripts
}

/// The action's steps, run locally as GitHub would run them: the inputs as `INPUT_*`
/// variables (they are mapped in `env:`), a fake `$GITHUB_STEP_SUMMARY`, and saved
/// results given as `current`, so the gate compares without measuring, and the binary
/// this test suite built as `PUSHLAB_BIN`, so the build step has nothing to do.
#[test]
fn the_github_action_runs_its_steps() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let yaml = std::fs::read_to_string(root.join("action.yml")).unwrap();
    let scripts = run_scripts(&yaml);
    assert!(scripts.len() >= 2, "{scripts:?}");
    assert!(yaml.contains("using: composite"), "a composite action");
    let dir = Dir::new("action");
    let summary = dir.join("summary.md");
    std::fs::write(&summary, "").unwrap();
    let binary = Path::new(env!("CARGO_BIN_EXE_pushlab"));
    for script in &scripts {
        let output = Command::new("bash")
            .args(["-eo", "pipefail", "-c", script])
            .current_dir(root)
            .env("GITHUB_STEP_SUMMARY", &summary)
            .env("GITHUB_ACTION_PATH", root)
            .env("RUNNER_TEMP", &dir.0)
            .env("INPUT_BASELINE", "results/baseline.json")
            .env("INPUT_CURRENT", root.join("results/baseline.json"))
            .env("INPUT_ARGS", "")
            .env("INPUT_JUNIT", dir.join("junit.xml"))
            // Already built: the action's build step finds this binary's folder.
            .env("PUSHLAB_BIN", binary)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "step failed:\n{script}\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let written = std::fs::read_to_string(&summary).unwrap();
    assert!(written.contains("pushlab bench"), "step summary: {written}");
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert!(junit.contains("<testsuite"), "{junit}");
}
