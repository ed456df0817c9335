//! `pushlab abuse --quick` end to end, through the built binary: both phases run, the
//! report is written and parses, and every kind of attacker really attacked.
//!
//! It checks that the measurement ran, not that the server survives it: whether the
//! verdicts pass is what the run is for (exit 1 when one fails), and depends on the
//! server's hardening. Only the normal clients' WebSocket transport, to keep it near
//! 12 s in a debug build.

use std::process::Command;

use pushlab_loadgen::abuse::AbuseReport;
use pushlab_protocol::Transport;

#[test]
fn abuse_quick_runs_every_attacker_and_writes_its_report() {
    let temp = tempfile::Builder::new().prefix("pushlab-abuse-").tempdir().unwrap();
    let dir = temp.path();
    let output = Command::new(env!("CARGO_BIN_EXE_pushlab"))
        .args(["abuse", "--quick", "--transports", "ws", "--out"])
        .arg(dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // 0: every verdict passed; 1: one failed (a finding, not a broken run); 2: an error.
    assert!(matches!(output.status.code(), Some(0 | 1)), "{:?}\n{stdout}{stderr}", output.status);
    // The bound is stated before the run starts.
    let bound = stderr.find("stays under 512 MiB").expect("the bound is printed");
    assert!(bound < stderr.find("clean phase").expect("the clean phase ran"), "{stderr}");

    let report: AbuseReport =
        serde_json::from_str(&std::fs::read_to_string(dir.join("abuse.json")).unwrap()).unwrap();
    let verdicts = &report.verdicts;
    assert_eq!(output.status.code() == Some(0), verdicts.all_pass(), "{stdout}");
    for verdict in [&verdicts.lost_nothing, &verdicts.p99_within_limit, &verdicts.rss_under_bound] {
        assert!(stdout.contains(&verdict.line), "{stdout}");
    }

    // The normal clients were measured, clean, as the lab measures them.
    let clean = &report.clean.transports;
    assert_eq!(clean.len(), 1);
    assert_eq!(clean[0].transport, Transport::Ws);
    assert!(clean[0].result.as_ref().is_some_and(|r| r.latency.samples > 0), "{stdout}");
    assert!(!report.clean.memory.samples.is_empty() && report.clean.memory.peak_bytes > 0);
    assert!(report.clean.attackers.is_none());

    // Under attack: the servers' memory was followed, and every attacker attacked.
    assert!(!report.attacked.memory.samples.is_empty() && report.attacked.memory.peak_bytes > 0);
    assert_eq!(report.attacked.prefill.messages, 100);
    let attackers = report.attacked.attackers.as_ref().expect("the attackers' outcomes");
    assert_eq!(attackers.stuck_readers.len(), 10);
    assert!(attackers.stuck_readers.iter().all(|r| r.connected), "{:?}", attackers.stuck_readers);
    assert!(attackers.ping_flood.upgrades_sent > 0 && attackers.ping_flood.pings_sent > 0, "{stdout}");
    assert!(attackers.poll_hogs.requests > 0 && attackers.poll_hogs.responses > 0, "{stdout}");
    assert!(attackers.poll_hogs.bytes_read > 0, "{stdout}");
    assert_eq!(attackers.idle_sockets.sockets, 200);
    assert!(attackers.idle_sockets.connects >= 200, "{stdout}");

    let summary = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(summary.contains("abuse --quick --transports ws --out"), "the command is recorded:\n{summary}");
    assert!(summary.contains("CPUs (nproc)") && summary.contains(&verdicts.rss_under_bound.line));
}
