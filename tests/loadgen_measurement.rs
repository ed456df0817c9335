//! The measuring itself, checked against the real server: byte counts equal what crossed
//! the wire, loss is counted exactly, a stall shows in the latency, and a whole lab run
//! writes output that matches its schema.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use pushlab_loadgen::client::Session;
use pushlab_server::{Config, Transport};

use crate::util::*;

fn delivered(session_live: &Arc<pushlab_loadgen::record::Live>) -> u64 {
    session_live.messages.load(Ordering::Relaxed)
}

#[tokio::test]
async fn socket_byte_counts_equal_what_an_independent_relay_forwarded() {
    for transport in Transport::ALL {
        let server = TestServer::start().await;
        let relay = CountingRelay::start(server.addr).await;
        publish_probes(&server, &[0, 1, 2, 3, 4]).await;
        // A long poll interval: the short poller fetches the backlog once, then waits.
        let session = session(relay.addr, Duration::from_secs(30));
        let (live, stop) = (session.live.clone(), session.stop.clone());
        let task = tokio::spawn(session.run(transport));
        eventually("5 messages delivered", || delivered(&live) == 5).await;
        // Quiescent now: nothing is in flight (a long poll is held with its request sent).
        tokio::time::sleep(Duration::from_millis(200)).await;
        let counted = live.wire.snapshot();
        assert_eq!(counted, relay.counts(), "{transport}: (read, written) at the client socket vs the relay");
        assert!(counted.0 > 5 * 64, "{transport}: five 64-byte payloads at least");
        stop.cancel();
        task.await.unwrap();
    }
}

#[tokio::test]
async fn websocket_frames_cost_what_rfc_6455_says() {
    // P2: a server → client frame adds 2 bytes up to 125 bytes of payload, 4 up to
    // 65,535, 10 above.
    let server = TestServer::with_config(Config { max_message_bytes: 200_000, ..Config::default() }).await;
    let session = session(server.addr, Duration::from_secs(1));
    let (live, stop) = (session.live.clone(), session.stop.clone());
    let task = tokio::spawn(session.run(Transport::Ws));
    eventually("connected", || live.requests.load(Ordering::Relaxed) == 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let client = reqwest::Client::new();
    for (i, data_len) in [20usize, 1_000, 100_000].into_iter().enumerate() {
        let before = live.wire.snapshot().0;
        let data = "d".repeat(data_len);
        client.post(server.url("/publish")).json(&serde_json::json!({"data": data})).send().await.unwrap();
        eventually("delivered", || delivered(&live) == i as u64 + 1).await;
        let (_, page) = server.get_json(&format!("/poll?since={i}")).await;
        let json_len = page["messages"][0].to_string().len();
        let header = match json_len {
            0..=125 => 2,
            126..=65_535 => 4,
            _ => 10,
        };
        assert_eq!(live.wire.snapshot().0 - before, (json_len + header) as u64, "payload {json_len} bytes");
    }
    stop.cancel();
    task.await.unwrap();
}

/// Drives one short-poll client: probe 0, then probes 1 and 2 in one batch; returns the
/// stopped session.
async fn two_step_short_poll(history: usize) -> Session {
    let server = TestServer::with_config(Config { history, ..Config::default() }).await;
    let session = session(server.addr, Duration::from_millis(100));
    let (live, stop) = (session.live.clone(), session.stop.clone());
    let task = tokio::spawn(session.run(Transport::ShortPoll));
    publish_probes(&server, &[0]).await;
    eventually("probe 0 delivered", || delivered(&live) == 1).await;
    publish_probes(&server, &[1, 2]).await;
    eventually("the next poll answered", || {
        live.requests.load(Ordering::Relaxed) >= 3 && delivered(&live) >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    stop.cancel();
    task.await.unwrap()
}

#[tokio::test]
async fn no_loss_counts_zero_and_one_message_lost_to_retention_counts_exactly_one() {
    let complete = two_step_short_poll(100).await;
    assert_eq!(complete.recorder.lost(3), 0);
    assert_eq!((complete.recorder.duplicated, complete.recorder.reordered), (0, 0));

    // With a history of one message, probe 1 is gone before the client polls again: the
    // server says so with `missed: 1`, and the client counts exactly one loss.
    let lossy = two_step_short_poll(1).await;
    assert_eq!(lossy.recorder.lost(3), 1);
    assert_eq!((lossy.recorder.gap_notices, lossy.recorder.missed_told), (1, 1));
}

fn quick_workload(transports: Vec<Transport>, clients: usize, rate: f64) -> pushlab_loadgen::Workload {
    use clap::Parser;
    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        workload: pushlab_loadgen::WorkloadArgs,
    }
    let mut args = Args::parse_from(["test", "--quick"]).workload;
    args.transports = transports;
    args.clients = clients;
    args.rate = rate;
    args.poll_interval = vec![Duration::from_millis(100)];
    args.validate().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_publisher_shows_in_the_latency_percentiles() {
    // 20 msg/s for 2.5 s (0.5 s warm-up): 50 messages. After message 25 (intended at
    // 1.25 s, inside the window) the publisher stalls for 1 s; the messages due meanwhile
    // go out late but keep their intended times, so about 20 of 40 measured messages are
    // late by up to a second. Measured from the actual send time, they would look fast.
    let out = tempfile::Builder::new().prefix("pushlab-stall-").tempdir().unwrap();
    let options = pushlab_loadgen::LabOptions {
        workload: quick_workload(vec![Transport::Ws], 5, 20.0),
        server_exe: env!("CARGO_BIN_EXE_pushlab").into(),
        target: None,
        server_pid: None,
        out: out.path().to_path_buf(),
        command: "test".into(),
        stall: Some((25, Duration::from_secs(1))),
    };
    let results = pushlab_loadgen::lab::run(&options).await.unwrap();
    let latency = &results.transports[0].latency;
    assert!(latency.max_ms >= 950.0, "max {} ms should show the 1 s stall", latency.max_ms);
    assert!(latency.p90_ms >= 200.0, "p90 {} ms should show the stall", latency.p90_ms);
    assert_eq!(results.transports[0].delivery.lost, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_keep_dropping_their_connection_lose_nothing() {
    // Every client closes its socket every 200 ms, mid-stream, and resumes from its
    // cursor: many connections, and still every message exactly once on every transport.
    let out = tempfile::Builder::new().prefix("pushlab-drops-").tempdir().unwrap();
    let mut workload = quick_workload(Transport::ALL.to_vec(), 5, 50.0);
    workload.drop_every_seconds = Some(Duration::from_millis(200));
    let options = pushlab_loadgen::LabOptions {
        workload,
        server_exe: env!("CARGO_BIN_EXE_pushlab").into(),
        target: None,
        server_pid: None,
        out: out.path().to_path_buf(),
        command: "test".into(),
        stall: None,
    };
    let results = pushlab_loadgen::lab::run(&options).await.unwrap();
    for t in &results.transports {
        let (d, name) = (&t.delivery, t.transport.name());
        assert_eq!((d.lost, d.duplicated, d.reordered), (0, 0, 0), "{name}: {d:?}");
        // 5 clients × 2 s ÷ 200 ms ≈ 50 reconnects in the window.
        assert!(t.traffic.connections >= 25, "{name}: only {} connections", t.traffic.connections);
    }
}

#[test]
fn a_quick_lab_writes_the_table_and_results_that_match_the_schema() {
    let dir = tempfile::Builder::new().prefix("pushlab-lab-").tempdir().unwrap();
    let out = dir.path();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_pushlab"))
        .args(["lab", "--quick", "--clients", "10", "--poll-interval", "100ms", "--out"])
        .arg(out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "lab failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    for needle in
        ["short_poll", "long_poll", "sse", "ws", "Latency", "Efficiency", "seed says", "Bidirectional"]
    {
        assert!(stdout.contains(needle), "table lacks {needle:?}:\n{stdout}");
    }

    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../docs/results.schema.json")).unwrap();
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> =
        validator.iter_errors(&results).map(|e| format!("{} at {}", e, e.instance_path)).collect();
    assert!(
        errors.is_empty(),
        "results.json does not match docs/results.schema.json:\n{}",
        errors.join("\n")
    );

    let transports = results["transports"].as_array().unwrap();
    assert_eq!(transports.len(), 4);
    for t in transports {
        let name = &t["transport"];
        assert_eq!(t["delivery"]["lost"], 0, "{name}");
        assert_eq!(t["delivery"]["delivered"], t["delivery"]["expected"], "{name}");
        assert!(t["latency"]["samples"].as_u64().unwrap() > 0, "{name}");
        // What crosses the wire is at least the message itself.
        assert!(
            t["traffic"]["bytes_per_message"].as_f64() >= t["traffic"]["message_bytes"].as_f64(),
            "{name}"
        );
    }
    for file in ["summary.md", "summary.csv", "latency.svg", "cost.svg"] {
        let text = std::fs::read_to_string(out.join(file)).unwrap();
        assert!(text.len() > 100, "{file} is nearly empty");
    }
    let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "a header and four transports");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_measures_a_server_that_is_already_running() {
    // Someone else's server, with someone else's messages already in the stream.
    let server = TestServer::start().await;
    server.publish_numbers(0, 3).await;
    let dir = tempfile::Builder::new().prefix("pushlab-load-").tempdir().unwrap();
    let out = dir.path();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_pushlab"))
        .args([
            "load",
            "--target",
            &server.url(""),
            "--quick",
            "--clients",
            "5",
            "--transports",
            "sse,ws",
            "--out",
        ])
        .arg(out)
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["setup"]["target"], server.url(""));
    for t in results["transports"].as_array().unwrap() {
        // Only this run's messages count; the three that were there before are not ours.
        assert_eq!(t["delivery"]["lost"], 0);
        assert_eq!(t["delivery"]["delivered"], t["delivery"]["expected"]);
        // No process id given: no server CPU or memory, rather than a wrong one.
        assert!(t["server"].is_null());
    }
}

#[test]
fn trace_shows_every_transport_on_the_wire() {
    for (transport, markers) in [
        ("short_poll", &["GET /poll?since=", "content-length", "body, "][..]),
        ("long_poll", &["GET /long-poll?since=0&timeout=30", "body, "][..]),
        ("sse", &["GET /sse?since=0", "chunk size: 0x", "SSE field `id`", "the message JSON"][..]),
        ("ws", &["Upgrade: websocket", "101 Switching Protocols", "frame header: FIN, text, unmasked"][..]),
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_pushlab"))
            .args(["trace", "--transport", transport])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{transport}: {}", String::from_utf8_lossy(&output.stderr));
        for marker in markers.iter().chain(&["hello 1", "hello 2", "client → server:", "server → client:"])
        {
            assert!(stdout.contains(marker), "{transport}: no {marker:?} in\n{stdout}");
        }
    }
}

#[test]
fn find_max_stops_at_the_first_step_over_the_latency_limit_and_plots_the_curve() {
    // A p99 limit no real delivery meets (1 µs): the first step must fail, be reported
    // with its reason, and leave the maximum at zero.
    let dir = tempfile::Builder::new().prefix("pushlab-find-max-").tempdir().unwrap();
    let out = dir.path();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_pushlab"))
        .args(["lab", "--find-max", "--quick", "--clients", "3", "--transports", "ws", "--rate", "20"])
        .args(["--p99-limit", "1us", "--out"])
        .arg(out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let curves: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("saturation.json")).unwrap()).unwrap();
    let steps = curves[0]["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "{curves}");
    assert!(steps[0]["failed"].as_str().unwrap().contains("over the"), "{curves}");
    assert_eq!(curves[0]["max_sustained_deliveries_per_second"], 0.0);
    assert!(out.join("saturation.svg").exists() && stdout.contains("at most 0 deliveries/s"), "{stdout}");
}
