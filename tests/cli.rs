//! The command line says what it expects: refusals name the flag, what it takes and an
//! example; flags that cannot apply are not offered; `report` reads whatever a run left.
//! None of these measures anything, so each takes well under a second.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn pushlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pushlab")).args(args).env_remove("GITHUB_STEP_SUMMARY").output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `pushlab ARGS` must fail before running anything, saying every one of `expected`.
fn refused(args: &[&str], expected: &[&str]) {
    let output = pushlab(args);
    assert_eq!(output.status.code(), Some(2), "{args:?} should be refused: {}", stderr(&output));
    let message = stderr(&output);
    for part in expected {
        assert!(message.contains(part), "{args:?}: the message should say {part:?}:\n{message}");
    }
}

fn committed(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[test]
fn find_max_refuses_a_list_it_would_cut_to_its_first_value() {
    refused(&["lab", "--find-max", "--rtt", "0ms,50ms"], &["--find-max", "not a list", "--rtt 50ms"]);
    refused(&["lab", "--find-max", "--poll-interval", "100ms,1s"], &["--find-max", "not a list"]);
}

#[test]
fn a_bandwidth_needs_a_unit() {
    refused(&["lab", "--bandwidth", "10"], &["no unit", "10mbit"]);
    refused(&["lab", "--bandwidth", "10 furlongs"], &["unknown unit", "1MB/s"]);
}

#[test]
fn loss_is_a_packet_link_flag_with_its_percent_sign() {
    for command in ["lab", "load", "bench"] {
        let help = stdout(&pushlab(&["help", command]));
        let loss = help.split("--loss").nth(1).unwrap_or_default();
        assert!(loss.contains("packet link only") && loss.contains("burst=4"), "{command}: {help}");
    }
    // A bare number could mean 1 % or 100 %: refused, with examples.
    refused(&["lab", "--loss", "1"], &["percentage with its %", "--loss 0%,1%,3%"]);
    refused(&["lab", "--loss", "1%,burst=0"], &["burst=0"]);
}

#[test]
fn bad_numbers_are_explained_not_mistaken_for_flags() {
    refused(&["lab", "--rate", "-1"], &["--rate", "e.g. --rate 10"]);
    refused(&["lab", "--clients", "-5"], &["--clients", "at least 1", "e.g. --clients 100"]);
    refused(&["lab", "--clients", "many"], &["whole number", "e.g. --clients 100"]);
    refused(&["lab", "--rtt", "abc"], &["--rtt", "duration with a unit", "50ms"]);
    refused(&["lab", "--duration", "15"], &["no unit", "15s"]);
    refused(&["lab", "--rtt", "-5ms"], &["negative"]);
    refused(&["serve", "--heartbeat", "abc"], &["--heartbeat", "duration with a unit"]);
}

#[test]
fn quick_says_explicit_flags_win() {
    let help = stdout(&pushlab(&["help", "lab"]));
    let words = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(words.contains("A phase flag given explicitly wins over --quick"), "{help}");
    assert!(words.contains("Measured phase [--quick: 2s]"), "{help}");
}

#[test]
fn load_does_not_offer_what_only_a_spawned_server_has() {
    let help = stdout(&pushlab(&["help", "load"]));
    assert!(!help.contains("--heartbeat"), "load offers --heartbeat:\n{help}");
    assert!(!help.contains("--name"), "load offers --name:\n{help}");
    refused(&["load", "--target", "127.0.0.1:9", "--heartbeat", "2s"], &["--heartbeat does not apply"]);
    let output = pushlab(&["load", "--target", "127.0.0.1:9", "--name", "x"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("unexpected argument '--name'"), "{}", stderr(&output));
    // `lab` still has both.
    let help = stdout(&pushlab(&["help", "lab"]));
    assert!(help.contains("--heartbeat") && help.contains("--name"));
}

#[test]
fn report_reads_a_run_folder_and_prints_its_warnings() {
    let dir = std::env::temp_dir().join(format!("pushlab-cli-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut results: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(committed("results/2026-11-22-lab/results.json")).unwrap(),
    )
    .unwrap();
    results["warnings"] = serde_json::json!(["ws: a planted warning"]);
    std::fs::write(dir.join("results.json"), results.to_string()).unwrap();
    let output = pushlab(&["report", dir.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("Latency (p50/p99)"), "{text}");
    assert!(text.contains("warning: ws: a planted warning"), "{text}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn report_reads_a_sweep_folder_and_a_saturation_search() {
    let output = pushlab(&["report", committed("results/2026-11-22-network").to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    // Every condition, in the order run, then the comparison.
    let (a, b, c) = (text.find("== rtt-0ms"), text.find("== rtt-50ms"), text.find("== rtt-150ms"));
    assert!(a < b && b < c && a.is_some(), "{text}");
    assert!(text.contains("across network conditions"), "{text}");

    for path in ["results/2026-11-22-find-max", "results/2026-11-22-find-max/saturation.json"] {
        let output = pushlab(&["report", committed(path).to_str().unwrap()]);
        assert!(output.status.success(), "{path}: {}", stderr(&output));
        assert!(stdout(&output).contains("deliveries/s sustained"), "{path}: {}", stdout(&output));
    }
}

#[test]
fn report_prints_json_csv_and_markdown_for_scripts() {
    let run = committed("results/2026-11-22-lab");
    let json = stdout(&pushlab(&["report", run.to_str().unwrap(), "--output-format", "json"]));
    let parsed: serde_json::Value = serde_json::from_str(&json).expect("stdout is JSON alone");
    assert_eq!(parsed["transports"].as_array().unwrap().len(), 4);
    let csv = stdout(&pushlab(&["report", run.to_str().unwrap(), "--output-format", "csv"]));
    assert!(csv.starts_with("transport,latency_samples,"), "{csv}");
    assert_eq!(csv.lines().count(), 5);
    let md = stdout(&pushlab(&["report", run.to_str().unwrap(), "--output-format", "md"]));
    assert!(md.starts_with("# pushlab results"), "{md}");
}

#[test]
fn every_committed_results_file_still_loads() {
    let mut found = Vec::new();
    let mut stack = vec![committed("results")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == "results.json") {
                found.push(path);
            }
        }
    }
    assert!(found.len() >= 5, "{found:?}");
    for path in found {
        let output = pushlab(&["report", path.to_str().unwrap()]);
        assert!(output.status.success(), "{}: {}", path.display(), stderr(&output));
    }
}

#[test]
fn the_version_names_the_commit_the_binary_was_built_from() {
    // Asked from another directory: the commit is the binary's, not the current folder's.
    let output = Command::new(env!("CARGO_BIN_EXE_pushlab"))
        .arg("--version")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    let version = stdout(&output);
    let head =
        Command::new("git").args(["rev-parse", "HEAD"]).current_dir(env!("CARGO_MANIFEST_DIR")).output();
    match head {
        Ok(head) if head.status.success() => {
            let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
            assert!(version.contains(&format!("(commit {head}")), "{version} should name {head}");
        }
        // Built without git: the fallback.
        _ => assert!(version.contains("(commit unknown)"), "{version}"),
    }
}

#[test]
fn serve_accepts_a_host_name() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pushlab"))
        .args(["serve", "--addr", "localhost:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.contains("listening on http://"), "{line:?}");
    let addr = line.split("http://").nth(1).unwrap().split_whitespace().next().unwrap();
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
}

#[test]
fn completions_and_a_man_page() {
    for shell in ["bash", "zsh", "fish"] {
        let output = pushlab(&["completions", shell]);
        assert!(output.status.success(), "{shell}");
        let script = stdout(&output);
        assert!(script.contains("pushlab") && script.contains("find-max"), "{shell}: {script}");
    }
    let man = stdout(&pushlab(&["man"]));
    assert!(man.contains(".TH pushlab 1"), "{man}");
    assert!(man.contains("lab"), "{man}");
}

#[test]
fn serve_tls_makes_a_certificate_names_its_file_and_removes_it_at_exit() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pushlab"))
        .args(["serve", "--tls", "--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.contains("listening on https://127.0.0.1:"), "{line:?}");
    let cert = line.split("self-signed certificate ").nth(1).unwrap().trim().trim_end_matches(')');
    let pem = std::fs::read_to_string(cert).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    assert!(!pem.contains("PRIVATE KEY"), "the key never leaves the process");
    // SIGTERM, as a supervisor stops it: the file goes with the server.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM)
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert!(!std::path::Path::new(cert).exists(), "{cert} is left behind");
}

#[test]
fn serve_refuses_half_a_certificate_and_bad_files_naming_the_flag() {
    refused(&["serve", "--cert", "/nonexistent.pem"], &["--key"]);
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, "garbage").unwrap();
    std::fs::write(&key, "garbage").unwrap();
    let output = pushlab(&["serve", "--cert", cert.to_str().unwrap(), "--key", key.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("--cert"), "{}", stderr(&output));
}
