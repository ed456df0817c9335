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
//! Issue #15 asks that short polling over HTTP/2 serve at least 0.8× the requests/s of
//! HTTP/1.1. The second part measures pushlab alone, each poller on one connection
//! asking again as soon as an answer is read, over cleartext HTTP/1.1 and HTTP/2 (prior
//! knowledge) and over TLS with each: HTTP/2's client is hyper's (the `h2` crate), and
//! the client thread's own CPU share is printed, to show it is not the limit.
//!
//! `cargo bench -p pushlab-server --bench poll_rps` prints each round and the median of
//! the rounds' ratios: both servers are measured within a round, so a ratio compares
//! them under the same conditions on a shared, noisy machine. Criterion is not used: this measures a server's throughput over real
//! sockets, not a function's time.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
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
    measure_over(addr, Poller { http2: false, tls: None }).await
}

/// How a poller reaches the server.
#[derive(Clone)]
struct Poller {
    http2: bool,
    /// TLS, trusting the server's certificate.
    tls: Option<tokio_rustls::TlsConnector>,
}

/// Requests per second over `ROUND`, `CONNECTIONS` closed-loop pollers of one kind.
async fn measure_over(addr: SocketAddr, poller: Poller) -> f64 {
    let deadline = Instant::now() + ROUND;
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..CONNECTIONS {
        let poller = poller.clone();
        clients.spawn(async move {
            let socket = TcpStream::connect(addr).await.expect("connect");
            socket.set_nodelay(true).expect("nodelay");
            match poller.tls {
                None => poll_until(socket, addr, poller.http2, deadline).await,
                Some(connector) => {
                    let tls = connector
                        .connect("localhost".try_into().expect("a name"), socket)
                        .await
                        .expect("TLS");
                    poll_until(tls, addr, poller.http2, deadline).await
                }
            }
        });
    }
    let mut total = 0;
    while let Some(done) = clients.join_next().await {
        total += done.expect("a client");
    }
    total as f64 / ROUND.as_secs_f64()
}

/// Polls on one connection until `deadline`; returns the polls answered.
async fn poll_until<S>(mut socket: S, addr: SocketAddr, http2: bool, deadline: Instant) -> u64
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut done = 0u64;
    if http2 {
        let (mut send, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(socket))
                .await
                .expect("h2");
        tokio::spawn(connection);
        let uri: hyper::Uri = format!("http://{addr}/poll?since=0").parse().expect("a URI");
        while Instant::now() < deadline {
            let request =
                hyper::Request::get(uri.clone()).body(Empty::<bytes::Bytes>::new()).expect("a request");
            let response = send.send_request(request).await.expect("a response");
            assert_eq!(response.status(), 200);
            response.into_body().collect().await.expect("a body");
            done += 1;
        }
        return done;
    }
    let request = format!("GET /poll?since=0 HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let mut buffer = vec![0u8; 4096];
    while Instant::now() < deadline {
        socket.write_all(request.as_bytes()).await.expect("write");
        read_response(&mut socket, &mut buffer).await;
        done += 1;
    }
    done
}

/// CPU time of the calling thread so far (the bench's client runs on one thread).
fn thread_cpu() -> Duration {
    schedstat("/proc/thread-self/schedstat")
}

/// CPU time of every thread of this process so far: the client's and the servers'.
fn process_cpu() -> Duration {
    let tasks = std::fs::read_dir("/proc/self/task").expect("/proc/self/task");
    tasks.filter_map(Result::ok).map(|task| schedstat(task.path().join("schedstat"))).sum()
}

/// The first field of a schedstat file: nanoseconds on the CPU.
fn schedstat(path: impl AsRef<std::path::Path>) -> Duration {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    Duration::from_nanos(text.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0))
}

/// Reads one response (head and `Content-Length` body) and checks it is a 200.
async fn read_response<S: AsyncRead + Unpin>(socket: &mut S, buffer: &mut [u8]) {
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
    http2_against_http1(&client, pushlab);
}

/// pushlab's short poll over HTTP/2 against HTTP/1.1, cleartext and inside TLS.
fn http2_against_http1(client: &tokio::runtime::Runtime, cleartext: SocketAddr) {
    let identity = pushlab_server::tls::Identity::generate().expect("a certificate");
    let roots = {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(identity.cert_pem.as_bytes()) {
            roots.add(cert.expect("a certificate")).expect("a root");
        }
        roots
    };
    let connector = |alpn: &[u8]| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        tokio_rustls::TlsConnector::from(Arc::new(config))
    };
    let tls = serve(move |listener| async move {
        let config = pushlab_server::Config { tls: Some(identity), ..pushlab_server::Config::default() };
        pushlab_server::run(listener, config, std::future::pending()).await.expect("serve");
    });
    let variants = [
        ("HTTP/1.1", cleartext, Poller { http2: false, tls: None }),
        ("HTTP/2 (prior knowledge)", cleartext, Poller { http2: true, tls: None }),
        ("HTTP/1.1 + TLS", tls, Poller { http2: false, tls: Some(connector(b"http/1.1")) }),
        ("HTTP/2 + TLS", tls, Poller { http2: true, tls: Some(connector(b"h2")) }),
    ];
    println!();
    println!(
        "pushlab's short poll, {CONNECTIONS} pollers, one connection each, {:.1} s per variant per round",
        ROUND.as_secs_f64()
    );
    // On two cores the client and the server share the machine, and HTTP/2's client
    // costs more than the hand-written HTTP/1.1 one: requests/s alone would measure the
    // client. So each variant also reports requests per second of *server* CPU (the
    // process's CPU time minus the client thread's): what one server core sustains.
    println!("for each: req/s achieved, client thread CPU share, req/s per server CPU second");
    println!("  {}", variants.iter().map(|v| v.0).collect::<Vec<_>>().join(" | "));
    let (mut cleartext_ratio, mut tls_ratio) = (Vec::new(), Vec::new());
    for i in 0..ROUNDS {
        let mut capacity = [0.0; 4];
        let mut cells = vec![String::new(); 4];
        for k in 0..variants.len() {
            let v = (i + k) % variants.len();
            let (_, addr, poller) = &variants[v];
            let (wall, client_cpu, all_cpu) = (Instant::now(), thread_cpu(), process_cpu());
            let rps = client.block_on(measure_over(*addr, poller.clone()));
            let elapsed = wall.elapsed().as_secs_f64();
            let client_cpu = (thread_cpu() - client_cpu).as_secs_f64();
            let server_cpu = (process_cpu() - all_cpu).as_secs_f64() - client_cpu;
            capacity[v] = rps * ROUND.as_secs_f64() / server_cpu;
            cells[v] = format!("{rps:>6.0} {:>3.0}% {:>6.0}", client_cpu / elapsed * 100.0, capacity[v]);
        }
        println!(
            "round {:>2}: {}   h2/h1 {:.3}, with TLS {:.3}",
            i + 1,
            cells.join(" | "),
            capacity[1] / capacity[0],
            capacity[3] / capacity[2]
        );
        cleartext_ratio.push(capacity[1] / capacity[0]);
        tls_ratio.push(capacity[3] / capacity[2]);
    }
    println!(
        "median of the rounds' ratios HTTP/2 to HTTP/1.1, requests per server CPU second (target ≥ 0.8):"
    );
    println!("  cleartext:   {}", summary(cleartext_ratio));
    println!("  inside TLS:  {}", summary(tls_ratio));
}
