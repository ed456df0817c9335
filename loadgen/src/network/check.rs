//! `pushlab link`: the packet link measured by itself, before anyone trusts it.
//!
//! Each check sends real TCP traffic across the link, between a socket in the clients'
//! namespace and a small server in this process's (no pushlab server involved), and
//! compares what happened with what the link was told to do:
//!
//! | check | how | passes when |
//! | --- | --- | --- |
//! | added latency | 2,000 request/response pairs over loopback, then across the link at zero delay | reported (the target, < 100 µs per transit at the median, is in docs/network.md) |
//! | round trip | 100 pairs with the settings, in turns with 100 at zero delay each after as long idle | median within 1 ms of `--rtt` + the reference's |
//! | handshake | 20 `connect()`s, in turns with 20 at zero delay after as long idle | median within 1 ms of `--rtt` + the reference's |
//! | loss | ≥ 10,000 packets of a download and of an upload (without the delay, so they take seconds) | drop fraction within a binomial bound of `--loss`; every byte arrives, in order |
//! | bandwidth | a download of about 2 s at `--bandwidth` | takes its IP bytes ÷ rate ± 10 % |
//! | counting | one connection's packets | the link's packets equal the kernel's `TCP_INFO` segment counts; IP bytes exceed payload by ≥ 40 B a packet |
//! | link CPU | the link threads' CPU time over all of the above | reported per packet (target ≤ 5 µs) |

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::link::LinkSnapshot;
use super::netns::{self, Netns};
use super::Network;
use crate::wire::Segments;

/// One check's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: &'static str,
    /// What the link was set to do, in words.
    pub set: String,
    /// What was measured, in words.
    pub measured: String,
    /// The figure the check compares, for scripts and tests.
    pub value: f64,
    /// `None`: reported only, nothing to pass.
    pub passed: Option<bool>,
}

/// Everything `pushlab link` measured.
#[derive(Debug, Clone, Serialize)]
pub struct LinkReport {
    /// The settings checked.
    pub network: Network,
    /// Each check, in the order run.
    pub checks: Vec<Check>,
}

impl LinkReport {
    /// Whether every check that can fail passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed != Some(false))
    }

    /// The report as a table for people.
    pub fn render(&self) -> String {
        let mut out = format!("pushlab link: {}\n\n", self.network.describe());
        out += &format!("{:<16} {:<28} {:<52} {}\n", "check", "set", "measured", "");
        for c in &self.checks {
            let verdict = match c.passed {
                Some(true) => "ok",
                Some(false) => "FAILED",
                None => "",
            };
            out += &format!("{:<16} {:<28} {:<52} {verdict}\n", c.name, c.set, c.measured);
        }
        out
    }
}

/// Round trips timed per latency check.
const PAIRS: usize = 2000;

/// Round trips, and handshakes, under the set delay (as many again for the reference).
const DELAY_ROUND_TRIPS: usize = 100;
const DELAY_CONNECTS: usize = 20;

/// Runs every check that applies to `network` across the packet link.
pub async fn check(network: Network) -> anyhow::Result<LinkReport> {
    let netns = netns::get().with_context(|| {
        format!(
            "the packet link could not be made: {}",
            netns::failure().unwrap_or("it was not asked for before the runtime started")
        )
    })?;
    let echo = serve(echo).await?;
    let loopback_echo = {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(accept_each(listener, echo_connection));
        addr
    };
    let mut checks = Vec::new();
    let start = netns.link.snapshot();

    // Added latency: the same exchange over loopback and across a link that adds nothing,
    // taken in turns so that both meet the machine in the same state (an idle core wakes
    // slower than a busy one, and that alone can move a round trip by 80 µs here).
    netns.link.set(Network::default());
    let mut over_loopback = TcpStream::connect(loopback_echo).await?;
    over_loopback.set_nodelay(true)?;
    let mut across_link = dial(netns, echo).await?;
    let (mut loopback_times, mut link_times) = (Vec::new(), Vec::new());
    for _ in 0..PAIRS {
        exchange(&mut over_loopback, 1, &mut loopback_times).await?;
        exchange(&mut across_link, 1, &mut link_times).await?;
    }
    let (loopback, across) = (median(&loopback_times), median(&link_times));
    let added = across.saturating_sub(loopback) / 2;
    checks.push(Check {
        name: "added latency",
        set: "0 ms".into(),
        measured: format!(
            "{:.0} µs per transit (round trip {:.0} µs, loopback {:.0} µs)",
            us(added),
            us(across),
            us(loopback)
        ),
        value: us(added),
        passed: None,
    });

    if !network.rtt.is_zero() || !network.jitter.is_zero() {
        checks.extend(delay(netns, echo, network).await?);
    }
    netns.link.set(network);

    checks.push(counting(netns, echo).await?);

    if !network.loss.is_none() {
        checks.extend(loss(netns, network).await?);
    }
    if let Some(rate) = network.bandwidth_bytes_per_second {
        checks.push(bandwidth(netns, rate, network).await?);
    }

    let used = netns.link.snapshot().since(&start);
    let packets = used.packets().max(1) as f64;
    let (per_packet, in_kernel) = (used.cpu_seconds * 1e6 / packets, used.system_cpu_seconds * 1e6 / packets);
    checks.push(Check {
        name: "link CPU",
        set: "-".into(),
        measured: format!(
            "{per_packet:.2} µs per packet, {in_kernel:.2} of it in the kernel ({packets} packets)"
        ),
        value: per_packet,
        passed: None,
    });
    netns.link.set(Network::default());
    Ok(LinkReport { network, checks })
}

/// One connection's packets against the kernel's own count of its segments.
async fn counting(netns: &Netns, echo: SocketAddr) -> anyhow::Result<Check> {
    // Earlier checks' connections may still be closing: count from a quiet link.
    quiet(netns).await;
    let before = netns.link.snapshot();
    let stream = dial(netns, echo).await?;
    let pairs = 500;
    let stream = ping_pong_keep(stream, pairs).await?;
    // Let delayed ACKs go out (Linux delays them up to 40 ms) before both sides count.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let kernel = Segments::of(&stream).context("TCP_INFO has no segment counts on this kernel")?;
    let link = netns.link.snapshot().since(&before);
    let headers_ok =
        [link.to_server, link.to_clients].iter().all(|d| d.ip_bytes >= d.payload_bytes + 40 * d.packets);
    // Payload: exactly what was written, plus what was sent again after a loss.
    let written = (pairs * 64) as u64;
    let payload_ok = [link.to_server, link.to_clients]
        .iter()
        .all(|d| (written..=written + 1448 * d.retransmitted_packets).contains(&d.payload_bytes));
    // The kernel counts what it sent and what reached it; the link, what was sent (a
    // packet it dropped was sent but never received).
    let delivered = |d: &super::link::DirectionCount| d.packets - d.dropped_by_loss - d.dropped_by_queue;
    let agree = link.to_server.packets == kernel.segs_out && delivered(&link.to_clients) == kernel.segs_in;
    Ok(Check {
        name: "counting",
        set: format!("{pairs} exchanges of 64 B"),
        measured: format!(
            "link {}/{} packets, kernel {}/{} segments (out/in); {:.1} B of headers a packet",
            link.to_server.packets,
            delivered(&link.to_clients),
            kernel.segs_out,
            kernel.segs_in,
            header_bytes(&link)
        ),
        value: header_bytes(&link),
        passed: Some(agree && headers_ok && payload_ok),
    })
}

/// Waits until no packet has crossed the link for 200 ms plus a round trip (at most 5 s).
async fn quiet(netns: &Netns) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = netns.link.snapshot();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = netns.link.snapshot();
        if now.to_server.packets == last.to_server.packets
            && now.to_clients.packets == last.to_clients.packets
        {
            return;
        }
        last = now;
    }
}

fn header_bytes(link: &LinkSnapshot) -> f64 {
    let both = link.to_server.plus(&link.to_clients);
    (both.ip_bytes - both.payload_bytes) as f64 / both.packets.max(1) as f64
}

/// A download and an upload of at least 10,000 full packets each: the drop fraction of
/// each direction against the setting, and every byte against what was sent.
async fn loss(netns: &Netns, network: Network) -> anyhow::Result<Vec<Check>> {
    let size = 10_500 * 1448;
    // The drops do not depend on the delay; without it, 10,000 packets take seconds
    // rather than minutes (TCP's rate under loss falls with the round trip).
    netns.link.set(Network {
        rtt: Duration::ZERO,
        jitter: Duration::ZERO,
        bandwidth_bytes_per_second: None,
        ..network
    });
    let mut checks = Vec::new();
    for (name, loss) in
        [("loss: to clients", network.loss.to_clients), ("loss: to server", network.loss.to_server)]
    {
        let before = netns.link.snapshot();
        let received = match name {
            "loss: to clients" => {
                let source = serve(move |s| send_pattern(s, size)).await?;
                receive_pattern(dial(netns, source).await?).await?
            }
            _ => {
                let (sink, received) = serve_once(receive_pattern).await?;
                send_pattern(dial(netns, sink).await?, size).await?;
                received.await??
            }
        };
        let link = netns.link.snapshot().since(&before);
        let count = match name {
            "loss: to clients" => link.to_clients,
            _ => link.to_server,
        };
        let n = count.packets as f64;
        let observed = count.dropped_by_loss as f64 / n.max(1.0);
        // 4.5 standard deviations of a binomial (bursts widen it by about 2b): a right
        // dropper fails it about once in 150,000 runs.
        let inflation = loss.mean_burst_packets.map_or(1.0, |b| 2.0 * b);
        let bound = 4.5 * (loss.rate * (1.0 - loss.rate) * inflation / n.max(1.0)).sqrt();
        checks.push(Check {
            name,
            set: loss.to_string(),
            measured: format!(
                "{:.3}% of {} packets (bound ±{:.3}%); {received} of {size} B arrived in order",
                observed * 100.0,
                count.packets,
                bound * 100.0
            ),
            value: observed,
            passed: Some(
                received == size && count.packets >= 10_000 && (observed - loss.rate).abs() <= bound,
            ),
        });
    }
    Ok(checks)
}

/// A download that takes about two seconds at the rate: its time against its IP bytes
/// divided by the rate.
async fn bandwidth(netns: &Netns, rate: u64, network: Network) -> anyhow::Result<Check> {
    let size = (rate * 2).clamp(64 * 1024, 32 * 1024 * 1024) as usize;
    let sink = serve(move |s| send_pattern(s, size)).await?;
    let stream = dial(netns, sink).await?;
    let before = netns.link.snapshot();
    let started = Instant::now();
    let received = receive_pattern(stream).await?;
    let took = started.elapsed();
    let link = netns.link.snapshot().since(&before);
    let expected = Duration::from_secs_f64(link.to_clients.ip_bytes as f64 / rate as f64) + network.one_way();
    let ratio = took.as_secs_f64() / expected.as_secs_f64();
    Ok(Check {
        name: "bandwidth",
        set: format!("{} kbit/s", rate * 8 / 1000),
        measured: format!("{received} B in {} ms, expected {} ms ({ratio:.3}×)", ms(took), ms(expected)),
        value: ratio,
        passed: Some(received == size && (0.9..=1.1).contains(&ratio)),
    })
}

/// Blocks of the delay checks; each alternates the set delay with the reference.
const DELAY_BLOCKS: usize = 5;

/// The round trip and the handshake under the set delay, each against a reference: the
/// same exchange across the link at zero delay after the same idle time. A thread that
/// slept long wakes slowly on this kind of machine (that reference takes 0.38–0.42 ms
/// after 100 ms idle against 0.1 ms back to back in results/2026-12-01-link/link.txt),
/// and a delayed round trip wakes four sleepers: the two link threads, the echo server
/// and the client. The reference wakes three of them after the same sleep,
/// so what remains is the link's delay. Both are taken in turns, in blocks, to meet the
/// machine in the same state.
async fn delay(netns: &Netns, echo: SocketAddr, network: Network) -> anyhow::Result<Vec<Check>> {
    let idle = network.rtt + network.jitter;
    let (mut delayed_rtt, mut reference_rtt) = (Vec::new(), Vec::new());
    let (mut delayed_connect, mut reference_connect) = (Vec::new(), Vec::new());
    for _ in 0..DELAY_BLOCKS {
        netns.link.set(Network::default());
        let mut stream = dial(netns, echo).await?;
        for _ in 0..DELAY_ROUND_TRIPS / DELAY_BLOCKS {
            tokio::time::sleep(idle).await;
            exchange(&mut stream, 1, &mut reference_rtt).await?;
        }
        for _ in 0..DELAY_CONNECTS / DELAY_BLOCKS {
            tokio::time::sleep(idle).await;
            reference_connect.push(timed_connect(netns, echo).await?);
        }
        netns.link.set(network);
        let mut stream = dial(netns, echo).await?;
        exchange(&mut stream, DELAY_ROUND_TRIPS / DELAY_BLOCKS, &mut delayed_rtt).await?;
        for _ in 0..DELAY_CONNECTS / DELAY_BLOCKS {
            delayed_connect.push(timed_connect(netns, echo).await?);
        }
    }
    // Each way adds a uniform sample of [0, jitter]: their sum's median is the jitter,
    // and the median of n round trips has a standard error of jitter / (2 √n); the
    // tolerance is 1 ms plus four of those.
    let tolerance =
        |samples: usize| Duration::from_millis(1) + network.jitter.mul_f64(2.0 / (samples as f64).sqrt());
    let against_reference = |name, set: Duration, delayed: &[Duration], reference: &[Duration]| {
        let (measured, reference) = (median(delayed), median(reference));
        let expected = set + reference;
        let off = measured.abs_diff(expected);
        Check {
            name,
            set: format!("{} ms", ms(set)),
            measured: format!(
                "median {} ms (expected {} ms: the same at 0 ms after {} ms idle took {} ms)",
                ms(measured),
                ms(expected),
                ms(idle),
                ms(reference)
            ),
            value: ms(measured),
            passed: Some(off <= tolerance(delayed.len())),
        }
    };
    Ok(vec![
        against_reference("round trip", idle, &delayed_rtt, &reference_rtt),
        // SYN one way, SYN-ACK back: two jitter samples, like the round trip.
        against_reference("handshake", idle, &delayed_connect, &reference_connect),
    ])
}

/// The time one `connect()` from the clients' namespace takes (the socket made first:
/// asking the namespace's thread for it is not the handshake).
async fn timed_connect(netns: &Netns, addr: SocketAddr) -> anyhow::Result<Duration> {
    let socket = netns.clients.socket().await?;
    let started = Instant::now();
    let stream = socket.connect(addr).await?;
    let took = started.elapsed();
    drop(stream);
    Ok(took)
}

/// A connection from the clients' namespace to `addr`, Nagle off.
async fn dial(netns: &Netns, addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let stream = netns.clients.socket().await?.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// A server on the link's server address, running `handle` for each connection.
async fn serve<F, Fut>(handle: F) -> anyhow::Result<SocketAddr>
where
    F: Fn(TcpStream) -> Fut + Send + Sync + Copy + 'static,
    Fut: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
{
    let listener = TcpListener::bind((netns::SERVER_ADDR, 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(accept_each(listener, handle));
    Ok(addr)
}

/// A server on the link's server address for one connection, whose handler's result
/// comes back through the returned receiver.
async fn serve_once<F, Fut, T>(
    handle: F,
) -> anyhow::Result<(SocketAddr, tokio::sync::oneshot::Receiver<anyhow::Result<T>>)>
where
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let listener = TcpListener::bind((netns::SERVER_ADDR, 0)).await?;
    let addr = listener.local_addr()?;
    let (done, result) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let outcome = match listener.accept().await {
            Ok((stream, _)) => handle(stream).await,
            Err(e) => Err(e.into()),
        };
        let _ = done.send(outcome);
    });
    Ok((addr, result))
}

async fn accept_each<F, Fut>(listener: TcpListener, handle: F)
where
    F: Fn(TcpStream) -> Fut + Send + Copy + 'static,
    Fut: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
{
    while let Ok((stream, _)) = listener.accept().await {
        let _ = stream.set_nodelay(true);
        tokio::spawn(handle(stream));
    }
}

async fn echo(stream: TcpStream) -> std::io::Result<()> {
    echo_connection(stream).await
}

async fn echo_connection(mut stream: TcpStream) -> std::io::Result<()> {
    let mut buffer = [0u8; 4096];
    loop {
        let n = stream.read(&mut buffer).await?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buffer[..n]).await?;
    }
}

/// The byte at `offset` of the test pattern: a download checks every byte it receives.
fn pattern(offset: usize) -> u8 {
    (offset % 251) as u8
}

async fn send_pattern(mut stream: TcpStream, size: usize) -> std::io::Result<()> {
    let block: Vec<u8> = (0..251 * 256).map(pattern).collect();
    let mut sent = 0;
    while sent < size {
        let n = (size - sent).min(block.len());
        stream.write_all(&block[..n]).await?;
        sent += n;
    }
    stream.shutdown().await
}

/// Reads until the end; returns the bytes received, or an error at the first wrong one.
async fn receive_pattern(mut stream: TcpStream) -> anyhow::Result<usize> {
    let mut buffer = vec![0u8; 64 * 1024];
    let mut offset = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let n = tokio::time::timeout_at(deadline.into(), stream.read(&mut buffer))
            .await
            .context("the download took over 120 s")??;
        if n == 0 {
            return Ok(offset);
        }
        if let Some(bad) = (0..n).find(|&i| buffer[i] != pattern(offset + i)) {
            anyhow::bail!("byte {} arrived wrong: the link corrupted or reordered a stream", offset + bad);
        }
        offset += n;
    }
}

/// `n` exchanges of 64 bytes, keeping the connection open to read its counters.
async fn ping_pong_keep(mut stream: TcpStream, n: usize) -> anyhow::Result<TcpStream> {
    let mut times = Vec::with_capacity(n);
    exchange(&mut stream, n, &mut times).await?;
    Ok(stream)
}

async fn exchange(stream: &mut TcpStream, n: usize, times: &mut Vec<Duration>) -> anyhow::Result<()> {
    let message = [7u8; 64];
    let mut reply = [0u8; 64];
    for _ in 0..n {
        let started = Instant::now();
        stream.write_all(&message).await?;
        tokio::time::timeout(Duration::from_secs(30), stream.read_exact(&mut reply))
            .await
            .context("no echo within 30 s")??;
        times.push(started.elapsed());
    }
    Ok(())
}

fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 1e2
}
