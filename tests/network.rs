//! The emulated network adds what it claims: pacing at the link rate, one transit each
//! way, a round trip for the TCP handshake, jitter without reordering.

use std::time::Duration;

use pushlab_loadgen::network::relay::Emulator;
use pushlab_loadgen::network::Network;
use pushlab_protocol::Transport;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// A server that sends `size` bytes to whoever connects, then closes.
async fn sender(size: usize) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        socket.write_all(&vec![7u8; size]).await.unwrap();
    });
    addr
}

/// A server that echoes every byte back.
async fn echo() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = socket.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    addr
}

// Paused time: the emulator's waits are tokio timers, so virtual time shows exactly the
// delay it modelled, unaffected by how busy the machine is.

#[tokio::test(start_paused = true)]
async fn a_transfer_is_paced_at_the_link_rate_plus_one_transit() {
    let network = Network {
        rtt: Duration::from_millis(40),
        bandwidth_bytes_per_second: Some(1_000_000),
        ..Default::default()
    };
    let emulator = Emulator::start(sender(200_000).await, network).await.unwrap();
    let started = Instant::now();
    let mut client = TcpStream::connect(emulator.addr()).await.unwrap();
    let mut received = Vec::new();
    client.read_to_end(&mut received).await.unwrap();
    let took = started.elapsed();
    assert_eq!(received.len(), 200_000);
    // 200 kB at 1 MB/s is 200 ms, plus 20 ms of propagation (half the RTT).
    assert!(took >= Duration::from_millis(220) && took <= Duration::from_millis(240), "took {took:?}");
}

#[tokio::test(start_paused = true)]
async fn a_new_connection_pays_the_handshake_round_trip() {
    let network = Network { rtt: Duration::from_millis(100), ..Default::default() };
    let emulator = Emulator::start(echo().await, network).await.unwrap();
    let started = Instant::now();
    let mut client = TcpStream::connect(emulator.addr()).await.unwrap();
    let mut byte = [0u8; 1];
    client.write_all(b"a").await.unwrap();
    client.read_exact(&mut byte).await.unwrap();
    // Handshake (one RTT), then the request and the answer (one more).
    let first = started.elapsed();
    assert!(
        first >= Duration::from_millis(200) && first < Duration::from_millis(205),
        "first exchange {first:?}"
    );
    // On the same connection, a request costs one round trip: what keep-alive saves.
    let again = Instant::now();
    client.write_all(b"b").await.unwrap();
    client.read_exact(&mut byte).await.unwrap();
    let second = again.elapsed();
    assert!(second >= Duration::from_millis(100) && second < Duration::from_millis(105), "second {second:?}");
}

#[tokio::test(start_paused = true)]
async fn jitter_delays_bytes_but_never_reorders_them() {
    let network =
        Network { rtt: Duration::from_millis(10), jitter: Duration::from_millis(30), ..Default::default() };
    let emulator = Emulator::start(echo().await, network).await.unwrap();
    let client = TcpStream::connect(emulator.addr()).await.unwrap();
    let (mut read, mut write) = client.into_split();
    let writer = tokio::spawn(async move {
        for i in 0..500u32 {
            write.write_all(&i.to_be_bytes()).await.unwrap();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    let mut buf = [0u8; 4];
    for expected in 0..500u32 {
        read.read_exact(&mut buf).await.unwrap();
        assert_eq!(u32::from_be_bytes(buf), expected);
    }
    writer.await.unwrap();
}

fn workload(rtt: &str) -> pushlab_loadgen::Workload {
    use clap::Parser;
    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        workload: pushlab_loadgen::WorkloadArgs,
    }
    let args = Args::parse_from([
        "test",
        "--quick",
        "--transports",
        "ws",
        "--clients",
        "5",
        "--rate",
        "20",
        "--rtt",
        rtt,
    ]);
    args.workload.validate().unwrap()
}

async fn ws_median(rtt: &str) -> f64 {
    let out = tempfile::Builder::new().prefix("pushlab-rtt-").tempdir().unwrap();
    let options = pushlab_loadgen::LabOptions {
        workload: workload(rtt),
        server_exe: env!("CARGO_BIN_EXE_pushlab").into(),
        target: None,
        server_pid: None,
        out: out.path().to_path_buf(),
        command: "test".into(),
        stall: None,
    };
    let results = pushlab_loadgen::lab::run(&options).await.unwrap();
    let ws = results.transport(Transport::Ws).unwrap();
    assert_eq!(ws.delivery.lost, 0);
    ws.latency.p50_ms
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_trip_time_adds_one_transit_to_websocket_delivery() {
    // Real sockets, real time, the real server: the median under a 100 ms RTT is the
    // loopback median plus 50 ms (one transit; the publisher is beside the server).
    let loopback = ws_median("0ms").await;
    let distant = ws_median("100ms").await;
    let added = distant - loopback;
    assert!(
        (added - 50.0).abs() <= 5.0,
        "loopback {loopback} ms, at 100 ms RTT {distant} ms: added {added} ms"
    );
}

#[test]
fn loss_on_the_relay_says_what_it_needs() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_pushlab"))
        .args(["lab", "--quick", "--link", "relay", "--loss", "1%"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--link netns") && stderr.contains("moves bytes, not packets"), "{stderr}");
}

#[test]
fn a_list_of_round_trip_times_runs_the_comparison_once_per_condition() {
    let dir = tempfile::Builder::new().prefix("pushlab-conditions-").tempdir().unwrap();
    let out = dir.path();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_pushlab"))
        .args([
            "lab",
            "--quick",
            "--clients",
            "5",
            "--transports",
            "long_poll,ws",
            "--rtt",
            "0ms,20ms",
            "--out",
        ])
        .arg(out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("across network conditions") && stdout.contains("rtt-20ms"), "{stdout}");
    for condition in ["rtt-0ms", "rtt-20ms"] {
        let results: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join(condition).join("results.json")).unwrap())
                .unwrap();
        let rtt = results["setup"]["workload"]["network"]["rtt_ms"].as_f64().unwrap();
        assert_eq!(format!("rtt-{rtt}ms"), condition);
    }
    assert!(std::fs::read_to_string(out.join("summary.md")).unwrap().contains("long_poll in transits"));
}
