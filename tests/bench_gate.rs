//! `pushlab bench`: passes on an identical run, fails with a readable table on a planted
//! regression, and its exit codes, JUnit XML and step summary are what CI systems expect.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn pushlab(args: &[&str], envs: &[(&str, &Path)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pushlab"));
    command.args(args).env_remove("GITHUB_STEP_SUMMARY");
    for (key, value) in envs {
        command.env(key, value);
    }
    command.output().unwrap()
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// A temporary folder, removed when dropped (also when the test fails).
struct Dir(tempfile::TempDir);

impl Dir {
    fn new(name: &str) -> Dir {
        Dir(tempfile::Builder::new().prefix(&format!("pushlab-{name}-")).tempdir().unwrap())
    }
    fn path(&self, file: &str) -> String {
        self.0.path().join(file).display().to_string()
    }
}

/// A baseline edited by `plant`, written next to the original.
fn planted(dir: &Dir, baseline: &str, name: &str, plant: impl Fn(&mut Value)) -> String {
    let mut value: Value = serde_json::from_str(&std::fs::read_to_string(baseline).unwrap()).unwrap();
    for run in value["runs"].as_array_mut().unwrap() {
        plant(run);
    }
    let path = dir.path(name);
    std::fs::write(&path, value.to_string()).unwrap();
    path
}

const RUN: [&str; 6] = ["--repeat", "1", "--transports", "ws", "--clients", "10"];

#[test]
fn the_gate_passes_on_this_code_and_fails_on_planted_regressions() {
    let dir = Dir::new("gate");
    let baseline = dir.path("baseline.json");

    // A real baseline from a real (quick) run. Every run's files go into `dir` too, or
    // `pushlab bench` would leave them in a temporary folder of its own.
    let runs = dir.path("runs");
    let made = pushlab(
        &[&["bench", "--update-baseline", "--baseline", &baseline, "--out", &runs], &RUN[..]].concat(),
        &[],
    );
    assert_eq!(made.status.code(), Some(0), "{}", text(&made));
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&baseline).unwrap()).unwrap();
    assert_eq!(saved["runs"].as_array().unwrap().len(), 1);

    // A new run of the same code passes (timing limits widened: this checks the
    // mechanism and the deterministic figures, not the machine's mood).
    let wide = [
        "--threshold",
        "latency.p50_ms=x100",
        "--threshold",
        "latency.p99_ms=x100",
        "--threshold",
        "server.cpu_us_per_message=x100",
    ];
    let again_runs = dir.path("runs-again");
    let again = pushlab(
        &[&["bench", "--baseline", &baseline, "--out", &again_runs], &RUN[..], &wide[..]].concat(),
        &[],
    );
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));

    // An identical run passes, and says so.
    let same = pushlab(&["bench", "--baseline", &baseline, "--current", &baseline], &[]);
    assert_eq!(same.status.code(), Some(0), "{}", text(&same));
    assert!(text(&same).contains(" 0 failed"), "{}", text(&same));

    // Planted: the baseline needed 20 % fewer bytes per message.
    let cheaper = planted(&dir, &baseline, "cheaper.json", |run| {
        let bytes = &mut run["transports"][0]["traffic"]["bytes_per_message"];
        *bytes = Value::from(bytes.as_f64().unwrap() * 0.8);
    });
    let junit = dir.path("junit.xml");
    let summary = dir.0.path().join("summary.md");
    let regressed = pushlab(
        &["bench", "--baseline", &cheaper, "--current", &baseline, "--junit", &junit],
        &[("GITHUB_STEP_SUMMARY", &summary)],
    );
    let out = text(&regressed);
    assert_eq!(regressed.status.code(), Some(1), "{out}");
    let row =
        out.lines().find(|l| l.starts_with("ws.traffic.bytes_per_message")).expect("a row for the metric");
    assert!(row.contains("+25.0%") && row.contains("+5%") && row.ends_with("FAIL"), "{row}");
    assert!(out.contains("1 failed"), "{out}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains(r#"failures="1""#) && xml.contains("ws.traffic.bytes_per_message"), "{xml}");
    let markdown = std::fs::read_to_string(&summary).unwrap();
    assert!(markdown.contains("regression") && markdown.contains("**FAIL**"), "{markdown}");

    // Planted: the current run lost a message. Any loss fails, whatever the baseline.
    let lossy = planted(&dir, &baseline, "lossy.json", |run| {
        run["transports"][0]["delivery"]["lost"] = Value::from(1)
    });
    let lost = pushlab(&["bench", "--baseline", &baseline, "--current", &lossy], &[]);
    assert_eq!(lost.status.code(), Some(1), "{}", text(&lost));
    assert!(text(&lost).lines().any(|l| l.starts_with("ws.delivery.lost ") && l.ends_with("FAIL")));
}

#[test]
fn fail_if_conditions_and_errors_have_their_own_exit_codes() {
    let dir = Dir::new("gate-errors");
    let baseline = dir.path("baseline.json");
    let runs = dir.path("runs");
    let made = pushlab(
        &[&["bench", "--update-baseline", "--baseline", &baseline, "--out", &runs], &RUN[..]].concat(),
        &[],
    );
    assert_eq!(made.status.code(), Some(0), "{}", text(&made));
    let compare = |extra: &[&str]| {
        pushlab(&[&["bench", "--baseline", &baseline, "--current", &baseline], extra].concat(), &[])
    };

    // k6-style absolute conditions, with units.
    assert_eq!(compare(&["--fail-if", "ws.latency.p99 > 0.001ms"]).status.code(), Some(1));
    assert_eq!(compare(&["--fail-if", "ws.latency.p99 > 10s"]).status.code(), Some(0));
    assert_eq!(compare(&["--fail-if", "delivery.lost > 0"]).status.code(), Some(0));

    // Errors are 2, with a message saying what was wrong.
    for (extra, says) in [
        (vec!["--fail-if", "nonsense"], "expected METRIC OP VALUE"),
        (vec!["--fail-if", "ws.latency.p99 > 5KB"], "does not fit"),
        (vec!["--threshold", "ws.latency.p98=x2"], "unknown metric"),
        (vec!["--threshold", "ws.latency.p99=lots"], "expected +N%, xN or a number"),
    ] {
        let output = compare(&extra);
        assert_eq!(output.status.code(), Some(2), "{extra:?}: {}", text(&output));
        assert!(text(&output).contains(says), "{extra:?}: {}", text(&output));
    }
    let missing = pushlab(&["bench", "--baseline", &dir.path("nope.json"), "--current", &baseline], &[]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing).contains("--update-baseline"), "{}", text(&missing));
    let other =
        planted(&dir, &baseline, "other.json", |run| run["setup"]["workload"]["clients"] = Value::from(99));
    let mismatch = pushlab(&["bench", "--baseline", &other, "--current", &baseline], &[]);
    assert_eq!(mismatch.status.code(), Some(2));
    assert!(text(&mismatch).contains("different workload"), "{}", text(&mismatch));
}
