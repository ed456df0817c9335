//! Short polling against a trivial axum handler, side by side, in requests per second.
//!
//! Issue #7 asks that pushlab's `GET /poll` serve at least 0.9× the requests/s of the
//! simplest possible axum handler returning the same body: the transport should cost
//! what HTTP costs, not what our code adds. Both servers run the same way (axum on
//! tokio, one worker thread, `TCP_NODELAY`), in turn, against the same closed-loop client:
//! `CONNECTIONS` keep-alive connections, each sending its next request as soon as the
//! previous response has been read. The client is a few lines over `httparse`, far
//! cheaper per request than either server, so it is not what is measured.
//!
//! `cargo bench -p pushlab-server --bench poll_rps` prints each round and the ratio of
//! the medians. Criterion is not used: this measures a server's throughput over real
//! sockets, not a function's time.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CONNECTIONS: usize = 32;
const ROUND: Duration = Duration::from_secs(3);
const ROUNDS: usize = 5;
/// What pushlab answers to a poll on an empty stream, byte for byte.
const EMPTY_POLL: &str = r#"{"messages":[],"last_id":0}"#;

/// Starts a server on its own single-worker runtime, in its own thread.
fn serve(router_for: impl FnOnce() -> Router + Send + 'static) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            tx.send(listener.local_addr().expect("address")).expect("send address");
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(listener, router_for()).await.expect("serve");
        });
    });
    rx.recv().expect("the server's address")
}

/// Requests per second over `ROUND`, `CONNECTIONS` closed-loop keep-alive clients.
async fn measure(addr: SocketAddr) -> f64 {
    let deadline = Instant::now() + ROUND;
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..CONNECTIONS {
        clients.spawn(async move {
            let mut socket = TcpStream::connect(addr).await.expect("connect");
            socket.set_nodelay(true).expect("nodelay");
            let request = format!("GET /poll?since=0 HTTP/1.1\r\nHost: {addr}\r\n\r\n");
            let mut buffer = vec![0u8; 4096];
            let mut done = 0u64;
            while Instant::now() < deadline {
                socket.write_all(request.as_bytes()).await.expect("write");
                read_response(&mut socket, &mut buffer).await;
                done += 1;
            }
            done
        });
    }
    let mut total = 0;
    while let Some(done) = clients.join_next().await {
        total += done.expect("a client");
    }
    total as f64 / ROUND.as_secs_f64()
}

/// Reads one response (head and `Content-Length` body) and checks it is a 200.
async fn read_response(socket: &mut TcpStream, buffer: &mut [u8]) {
    let mut filled = 0;
    loop {
        let n = socket.read(&mut buffer[filled..]).await.expect("read");
        assert!(n > 0, "the server closed the connection");
        filled += n;
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut response = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(head) = response.parse(&buffer[..filled]).expect("a valid response")
        {
            assert_eq!(response.code, Some(200));
            let length: usize = response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.parse().ok())
                .expect("a content-length");
            if filled >= head + length {
                return;
            }
        }
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    // `cargo test --benches` runs bench targets with no arguments; `cargo bench` passes
    // `--bench`. Only measure when asked to.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let trivial = serve(|| {
        Router::new().route("/poll", get(|| async { ([(CONTENT_TYPE, "application/json")], EMPTY_POLL) }))
    });
    let pushlab =
        serve(|| pushlab_server::app(pushlab_server::AppState::new(pushlab_server::Config::default())));
    let client = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let (mut trivial_rps, mut pushlab_rps) = (Vec::new(), Vec::new());
    println!("{CONNECTIONS} keep-alive connections, closed loop, {} s per round", ROUND.as_secs());
    for round in 1..=ROUNDS {
        let t = client.block_on(measure(trivial));
        let p = client.block_on(measure(pushlab));
        println!("round {round}: trivial axum handler {t:>9.0} req/s   pushlab GET /poll {p:>9.0} req/s   ratio {:.3}", p / t);
        trivial_rps.push(t);
        pushlab_rps.push(p);
    }
    let (t, p) = (median(trivial_rps), median(pushlab_rps));
    println!(
        "median: trivial {t:.0} req/s, pushlab {p:.0} req/s: pushlab / trivial = {:.3} (target ≥ 0.9)",
        p / t
    );
}
