//! The packet link, end to end: its own checks (`pushlab link`) for delay, loss,
//! bandwidth and counting; labs across it (a WebSocket stream under loss delivers every
//! message once; netns and relay agree on a WebSocket's median at 100 ms RTT); and its
//! namespaces gone after Ctrl-C and `kill -9`.
//!
//! A test binary of its own, and its tests one at a time (`one_at_a_time`): a check that
//! a handshake takes 100 ms ± 1 ms cannot share two cores with a hundred other tests
//! (in CI it measured 102.0 ms while the rest of the suite ran beside it).
//!
//! They need root and /dev/net/tun, as `.ci/run` has. Elsewhere each test says it was
//! skipped and why, and passes: there is nothing to run them on. Under `CI=true` a
//! missing link fails them instead: CI must not pass by skipping.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Why the packet link cannot run here, if it cannot.
fn unavailable() -> Option<String> {
    if !Path::new("/dev/net/tun").exists() {
        return Some("no /dev/net/tun".into());
    }
    if !nix::unistd::geteuid().is_root() {
        return Some("not root (network namespaces need CAP_SYS_ADMIN)".into());
    }
    None
}

/// Held by every test here for its whole run: they measure time on a shared machine.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    // A failed test poisons the lock; the next one still runs alone.
    ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

macro_rules! needs_packet_link {
    () => {
        let _alone = one_at_a_time();
        if let Some(why) = unavailable() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but the packet link cannot run here: {why}"
            );
            eprintln!("skipped: the packet link cannot run here: {why}");
            return;
        }
    };
}

/// `pushlab link ARGS --json`: the report and whether every check passed (exit 0).
fn link_check(args: &[&str]) -> (Value, bool) {
    let output =
        Command::new(env!("CARGO_BIN_EXE_pushlab")).arg("link").args(args).arg("--json").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|_| panic!("{stdout}\n{}", String::from_utf8_lossy(&output.stderr)));
    (report, output.status.success())
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {report:#}"))
}

fn passed(report: &Value, name: &str) -> bool {
    check(report, name)["passed"] == true
}

#[test]
fn the_handshake_and_a_round_trip_take_the_set_rtt() {
    needs_packet_link!();
    let (report, ok) = link_check(&["--rtt", "100ms"]);
    // Each within 1 ms of 100 ms (the tool compares; its figures are in `measured`).
    assert!(passed(&report, "handshake") && passed(&report, "round trip"), "{report:#}");
    assert!(ok, "{report:#}");
}

#[test]
fn the_link_drops_its_loss_rate_and_tcp_still_delivers_every_byte() {
    needs_packet_link!();
    for loss in ["3%", "2%,burst=3", "0%/5%"] {
        let (report, ok) = link_check(&["--loss", loss]);
        // Over ≥ 10,000 packets each way, within a binomial bound, every byte in order.
        assert!(
            passed(&report, "loss: to clients") && passed(&report, "loss: to server"),
            "{loss}: {report:#}"
        );
        assert!(ok, "{loss}: {report:#}");
    }
}

#[test]
fn a_transfer_takes_its_size_over_the_bandwidth() {
    needs_packet_link!();
    let (report, ok) = link_check(&["--bandwidth", "16mbit", "--rtt", "2ms"]);
    let ratio = check(&report, "bandwidth")["value"].as_f64().unwrap();
    assert!((0.9..=1.1).contains(&ratio), "{report:#}");
    assert!(ok, "{report:#}");
}

#[test]
fn the_link_counts_what_the_kernel_counts() {
    needs_packet_link!();
    let (report, ok) = link_check(&[]);
    // Packets equal the kernel's TCP_INFO segment counts both ways; payload exactly what
    // was written; IP bytes at least 40 B a packet above it.
    assert!(passed(&report, "counting"), "{report:#}");
    assert!(check(&report, "counting")["value"].as_f64().unwrap() >= 40.0);
    assert!(ok, "{report:#}");
}

/// `pushlab lab ARGS --quick --output-format json --out DIR`: the results.
fn lab(args: &[&str], out: &Path) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_pushlab"))
        .arg("lab")
        .args(args)
        .args(["--quick", "--output-format", "json", "--out"])
        .arg(out)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn a_websocket_stream_under_loss_delivers_every_message_exactly_once() {
    needs_packet_link!();
    let out = tempfile::tempdir().unwrap();
    let results = lab(
        &[
            "--link",
            "netns",
            "--loss",
            "3%",
            "--rtt",
            "20ms",
            "--transports",
            "ws,sse",
            "--clients",
            "20",
            "--rate",
            "50",
        ],
        out.path(),
    );
    for t in results["transports"].as_array().unwrap() {
        let (d, w) = (&t["delivery"], &t["wire"]);
        assert_eq!((d["lost"].as_u64(), d["duplicated"].as_u64()), (Some(0), Some(0)), "{t:#}");
        assert_eq!(d["reordered"], 0, "{t:#}");
        // The loss was real: packets dropped, and TCP sent them again.
        assert_eq!(w["source"], "counted");
        assert!(w["dropped_packets"].as_u64().unwrap() > 0, "{w:#}");
        assert!(w["retransmitted_packets"].as_u64().unwrap() > 0, "{w:#}");
    }
}

#[test]
fn a_fan_out_to_a_thousand_clients_loses_no_packet_on_the_way() {
    needs_packet_link!();
    // A TUN device queues 500 packets for its reader by default: a fan-out to 1,000
    // clients overflowed it, unseen by the link (TCP resent 321 packets, p99 223 ms). The
    // run reads the devices' own drop counters and warns when they moved; with the
    // queue at 500 this test saw "dropped 203 packets". (Resent packets alone do not
    // tell: under load a retransmission timer may also fire early.)
    let out = tempfile::tempdir().unwrap();
    let results = lab(
        &["--link", "netns", "--clients", "1000", "--rate", "2", "--transports", "ws", "--idle", "1s"],
        out.path(),
    );
    let t = &results["transports"][0];
    assert_eq!(t["delivery"]["lost"], 0, "{t:#}");
    let warnings = results["warnings"].as_array().unwrap();
    assert!(!warnings.iter().any(|w| w.as_str().unwrap().contains("TUN devices dropped")), "{warnings:#?}");
}

#[test]
fn netns_and_relay_agree_on_a_websockets_median_at_100ms() {
    needs_packet_link!();
    let median = |link: &str| {
        let out = tempfile::tempdir().unwrap();
        let results =
            lab(&["--link", link, "--rtt", "100ms", "--transports", "ws", "--clients", "10"], out.path());
        assert_eq!(results["setup"]["workload"]["network"]["link"], link);
        results["transports"][0]["latency"]["p50_ms"].as_f64().unwrap()
    };
    let (netns, relay) = (median("netns"), median("relay"));
    assert!((netns - relay).abs() <= 2.0, "netns {netns} ms, relay {relay} ms");
}

#[test]
fn loss_on_the_relay_is_refused_with_what_to_do() {
    let output = Command::new(env!("CARGO_BIN_EXE_pushlab"))
        .args(["lab", "--link", "relay", "--loss", "1%"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--loss needs the packet link"), "{stderr}");
}

/// Every network namespace some process (or thread) of this machine is in.
fn namespaces_in_use() -> HashSet<String> {
    let mut found = HashSet::new();
    for process in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(tasks) = std::fs::read_dir(process.path().join("task")) else { continue };
        for task in tasks.flatten() {
            if let Ok(ns) = std::fs::read_link(task.path().join("ns/net")) {
                found.insert(ns.display().to_string());
            }
        }
    }
    found
}

/// The namespaces of a running `pushlab lab`: its own and its clients' thread's.
fn namespaces_of(pid: u32) -> HashSet<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .filter_map(|task| std::fs::read_link(task.path().join("ns/net")).ok())
        .map(|ns| ns.display().to_string())
        .collect()
}

/// Starts a lab across the link, waits until its first server runs, stops it with
/// `signal`, and checks that its namespaces are gone with it (none of them is held by
/// any process, its server included).
fn namespaces_go_with_the_run(signal: nix::sys::signal::Signal) {
    let out = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pushlab"))
        .args(["lab", "--link", "netns", "--quick", "--clients", "5", "--out"])
        .arg(out.path())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut server = None;
    for line in stderr.lines() {
        let line = line.unwrap();
        if let Some(rest) = line.split(" server pid ").nth(1) {
            server = rest.split_whitespace().next().map(|pid| pid.parse::<i32>().unwrap());
            break;
        }
    }
    let server = server.expect("the lab said its server's pid");
    let ours = namespaces_of(child.id());
    let host = std::fs::read_link("/proc/self/ns/net").unwrap().display().to_string();
    assert!(ours.len() == 2 && !ours.contains(&host), "{ours:?} (this test runs in {host})");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<_> = namespaces_in_use().intersection(&ours).cloned().collect();
        let server_gone = !Path::new(&format!("/proc/{server}")).exists()
            || std::fs::read_to_string(format!("/proc/{server}/stat")).is_ok_and(|s| s.contains(") Z "));
        if left.is_empty() && server_gone {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "after {signal}: {left:?} still in use, server gone: {server_gone}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn ctrl_c_leaves_no_namespace_and_no_server_behind() {
    needs_packet_link!();
    namespaces_go_with_the_run(nix::sys::signal::Signal::SIGINT);
}

#[test]
fn kill_9_leaves_no_namespace_and_no_server_behind() {
    needs_packet_link!();
    namespaces_go_with_the_run(nix::sys::signal::Signal::SIGKILL);
}
