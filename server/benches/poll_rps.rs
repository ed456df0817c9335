//! Short polling against a trivial axum handler, side by side, in requests per second.
//!
//! Issue #7 asks that pushlab's `GET /poll` serve at least 0.9× the requests/s of the
//! simplest possible axum handler returning the same body: the transport should cost
//! what HTTP costs, not what our code adds. Both servers run on a one-worker tokio
//! runtime with `TCP_NODELAY` (the trivial one under `axum::serve`, pushlab under its
//! own `run`, as `pushlab serve` does), in turn, against the same closed-loop client:
//! `CONNECTIONS` keep-alive connections, each sending its next request as soon as the
//! previous response has been read. The client is a few lines over `httparse`, far
//! cheaper per request than either server, so it is not what is measured.
//!
//! `cargo bench -p pushlab-server --bench poll_rps` prints each round and the median of
//! the rounds' ratios: both servers are measured within a round, so a ratio compares
//! them under the same conditions on a shared, noisy machine. Criterion is not used: this measures a server's throughput over real
//! sockets, not a function's time.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CONNECTIONS: usize = 32;
const ROUND: Duration = Duration::from_millis(1500);
const ROUNDS: usize = 12;
/// What pushlab answers to a poll on an empty stream, byte for byte.
const EMPTY_POLL: &str = r#"{"messages":[],"last_id":0,"epoch":"00000000"}"#;

/// Starts a server (`serve_on` a bound listener) on its own single-worker runtime, in
/// its own thread.
fn serve<F, Served>(serve_on: F) -> SocketAddr
where
    F: FnOnce(TcpListener) -> Served + Send + 'static,
    Served: Future<Output = ()>,
{
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
            serve_on(listener).await;
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

/// Serves `router` the way a plain axum app is served.
async fn axum_serve(listener: TcpListener, router: Router) {
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router).await.expect("serve");
}

/// Requests/s of each server in one round, in a rotating order so that a drift in the
/// machine's speed during a round does not always favour the same one.
fn round(client: &tokio::runtime::Runtime, servers: &[SocketAddr], round: usize) -> Vec<f64> {
    let mut rps = vec![0.0; servers.len()];
    for k in 0..servers.len() {
        let i = (round + k) % servers.len();
        rps[i] = client.block_on(measure(servers[i]));
    }
    rps
}

/// The median and the middle half of `ratios`.
fn summary(mut ratios: Vec<f64>) -> String {
    ratios.sort_by(f64::total_cmp);
    let n = ratios.len();
    format!(
        "{:.3} (middle half of the rounds {:.3}–{:.3})",
        ratios[n / 2],
        ratios[n / 4],
        ratios[n - 1 - n / 4]
    )
}

fn main() {
    // `cargo test --benches` runs bench targets with no arguments; `cargo bench` passes
    // `--bench`. Only measure when asked to.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let trivial_router =
        || Router::new().route("/poll", get(|| async { ([(CONTENT_TYPE, "application/json")], EMPTY_POLL) }));
    let trivial = serve(move |listener| axum_serve(listener, trivial_router()));
    // pushlab as `pushlab serve` runs it: its own accept loop (hyper's HTTP/1 connection
    // directly), router and state.
    let pushlab = serve(|listener| async move {
        let config = pushlab_server::Config::default();
        pushlab_server::run(listener, config, std::future::pending()).await.expect("serve");
    });
    // pushlab's router under `axum::serve`: the same plumbing as the trivial handler, so
    // the ratio is what pushlab's middleware and handler cost per request.
    let router = serve(|listener| async move {
        let addr = listener.local_addr().expect("a bound listener");
        let state = pushlab_server::AppState::new(pushlab_server::Config::default(), addr);
        axum_serve(listener, pushlab_server::app(state)).await
    });
    let client = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let (mut shipped, mut handler) = (Vec::new(), Vec::new());
    println!(
        "{CONNECTIONS} keep-alive connections, closed loop, {:.1} s per server per round",
        ROUND.as_secs_f64()
    );
    println!("req/s:    trivial axum   pushlab serve   pushlab router under axum::serve");
    for i in 0..ROUNDS {
        let rps = round(&client, &[trivial, pushlab, router], i);
        println!(
            "round {:>2}: {:>9.0}      {:>9.0} ({:.3})   {:>9.0} ({:.3})",
            i + 1,
            rps[0],
            rps[1],
            rps[1] / rps[0],
            rps[2],
            rps[2] / rps[0]
        );
        shipped.push(rps[1] / rps[0]);
        handler.push(rps[2] / rps[0]);
    }
    println!("median of the rounds' ratios to the trivial axum handler (target ≥ 0.9):");
    println!("  pushlab as shipped (`pushlab serve`):   {}", summary(shipped));
    println!("  pushlab's router under axum::serve:     {}", summary(handler));
}
