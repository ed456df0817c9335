//! Measuring one transport: connect the clients, publish on schedule, cut the measured
//! window and the idle window out of the run, and turn what the clients recorded into a
//! [`TransportResult`].
//!
//! ```text
//! ramp ─ warm-up ─┬─ measured window ─┬─ settle ─┬─ idle window ─┬─ stop, upstream test
//!                 ▲ counters sampled  ▲          ▲               ▲
//! ```

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use indicatif::ProgressBar;
use pushlab_protocol::Transport;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::client::http::HttpConnection;
use crate::client::{ClientSettings, Dialer, Session, Target};
use crate::network::link::LinkSnapshot;
use crate::network::netns::{self, Netns};
use crate::network::relay::Emulator;
use crate::network::LinkKind;
use crate::process::ProcSample;
use crate::publisher::{self, PublishReport};
use crate::record::{new_histogram, Live, LiveLatency, LiveSnapshot, Recorder, Window};
use crate::results::{
    Delivery, DirectionCount, Idle, Latency, LoadgenCost, ProtocolUsed, ServerCost, TlsFigures, Traffic,
    TransportResult, Wire, WireSource, ESTIMATED_HEADER_BYTES, ESTIMATED_MSS,
};
use crate::upstream;
use crate::workload::Workload;

/// One transport's measurement, as planned.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Which transport.
    pub transport: Transport,
    /// The workload.
    pub workload: Workload,
    /// The server.
    pub target: Target,
    /// Its process id, when it runs on this machine (for CPU and memory).
    pub server_pid: Option<u32>,
    /// Test hook for the measurement itself: stall the publisher after message `.0`
    /// for `.1`, to check that the stall shows in the latency.
    pub stall: Option<(u64, Duration)>,
}

/// Counters of everything at one phase boundary.
struct Boundary {
    live: LiveSnapshot,
    server: Option<ProcSample>,
    loadgen: ProcSample,
    /// The packet link's counters, when the run crosses it.
    link: Option<LinkSnapshot>,
}

impl Plan {
    fn boundary(&self, lives: &[Arc<Live>]) -> Boundary {
        Boundary {
            live: LiveSnapshot::sum(lives),
            server: self.server_pid.and_then(|pid| ProcSample::read(pid).ok()),
            loadgen: ProcSample::myself().unwrap_or_default(),
            link: self.packet_link().map(|netns| netns.link.snapshot()),
        }
    }

    /// The packet link, when this run's subscribers cross it.
    fn packet_link(&self) -> Option<&'static Netns> {
        match self.workload.network.link {
            LinkKind::Netns => netns::get(),
            LinkKind::Relay => None,
        }
    }

    /// Runs the measurement: connects, publishes, samples the counters at each phase
    /// boundary, then hands what was recorded to [`summarize`]. `bar` shows progress
    /// through the phases.
    pub async fn measure(&self, bar: &ProgressBar) -> anyhow::Result<TransportResult> {
        let w = &self.workload;
        let epoch = Instant::now();
        let (start_id, stream_epoch) = current_position(&self.target).await?;
        // Subscribers reach the server through the emulated network, when there is one;
        // the publisher (the event source beside the server) does not.
        let (subscriber_target, emulator) = match (self.packet_link(), w.network.link) {
            (Some(netns), _) => {
                netns.link.set(w.network);
                let target = Target { dialer: Dialer::AcrossTheLink(&netns.clients), ..self.target.clone() };
                (target, None)
            }
            (None, LinkKind::Netns) => anyhow::bail!("the packet link was asked for but is not running"),
            (None, LinkKind::Relay) if w.network.is_direct() => (self.target.clone(), None),
            (None, LinkKind::Relay) => {
                let emulator = Emulator::start(self.target.addr, w.network)
                    .await
                    .context("starting the network emulator")?;
                (Target { addr: emulator.addr(), ..self.target.clone() }, Some(emulator))
            }
        };
        let server_before = self.server_pid.and_then(|pid| ProcSample::read(pid).ok());

        // Ramp: connect the clients at the connect rate.
        bar.set_message("connecting");
        let window: Window = Arc::new(OnceLock::new());
        let stop = CancellationToken::new();
        let mut clients = JoinSet::new();
        let mut lives = Vec::with_capacity(w.clients);
        let live_latency = Arc::new(LiveLatency::default());
        for i in 0..w.clients {
            tokio::time::sleep_until(epoch + Duration::from_secs_f64(i as f64 / w.connect_rate_per_second))
                .await;
            let live = Arc::new(Live { latency: Some(live_latency.clone()), ..Live::default() });
            lives.push(live.clone());
            let session = Session {
                client_id: crate::client::next_client_id(),
                target: subscriber_target.clone(),
                settings: ClientSettings {
                    poll_interval: w.poll_interval_seconds,
                    poll_offset: w.poll_interval_seconds.mul_f64(i as f64 / w.clients as f64),
                    long_poll_timeout: w.long_poll_timeout_seconds,
                    keepalive: w.keepalive,
                    drop_every: w.drop_every_seconds,
                },
                live,
                recorder: Recorder::new(window.clone()),
                cursor: start_id,
                stream_epoch: stream_epoch.clone(),
                stop: stop.clone(),
                epoch,
            };
            clients.spawn(session.run(self.transport));
        }
        wait_for_first_requests(&lives, w.poll_interval_seconds).await?;
        let server_with_clients = self.server_pid.and_then(|pid| ProcSample::read(pid).ok());

        // Schedule every phase from here, in µs since the epoch.
        let us = |d: Duration| d.as_micros() as u64;
        let start_us = us(epoch.elapsed()) + 100_000;
        let window_start = start_us + us(w.warmup_seconds);
        let window_end = window_start + us(w.duration_seconds);
        // After the last message, wait until even a short poller has fetched it.
        let settle = w.poll_interval_seconds + Duration::from_millis(500);
        let idle_start = window_end + us(settle);
        let idle_end = idle_start + us(w.idle_seconds);
        window.set(window_start..window_end).expect("the window is set once");
        let at = |t_us: u64| epoch + Duration::from_micros(t_us);

        bar.set_length(idle_end - start_us);
        let publisher = {
            let (target, workload, stop, stall) = (self.target.clone(), w.clone(), stop.clone(), self.stall);
            tokio::spawn(
                async move { publisher::publish(&target, &workload, epoch, start_us, stall, stop).await },
            )
        };
        let ticking = |phase: &'static str, until: u64| {
            bar.set_message(phase);
            tick_until(bar, phase, &lives, &live_latency, epoch, start_us, at(until))
        };
        ticking("warm-up", window_start).await;
        let measured_from = self.boundary(&lives);
        ticking("measuring", window_end).await;
        let measured_to = self.boundary(&lives);
        let published: PublishReport = publisher.await.context("publisher task")??;
        ticking("settling", idle_start).await;
        let idle_from = self.boundary(&lives);
        ticking("idle", idle_end).await;
        let idle_to = self.boundary(&lives);

        stop.cancel();
        let mut recorders = Vec::with_capacity(w.clients);
        while let Some(session) = clients.join_next().await {
            recorders.push(session.context("client task")?.recorder);
        }
        bar.set_message("upstream");
        let upstream = upstream::measure(self.transport, &subscriber_target, epoch).await?;
        drop(emulator);
        bar.finish_and_clear();

        summarize(
            self.transport,
            w,
            Recorded {
                server_before,
                server_with_clients,
                measured_from,
                measured_to,
                idle_from,
                idle_to,
                recorders,
                published,
                upstream,
            },
        )
    }
}

/// Everything one transport's run recorded, before any arithmetic: what
/// [`Plan::measure`] gathers and [`summarize`] turns into figures.
struct Recorded {
    /// The server before any client connected.
    server_before: Option<ProcSample>,
    /// The server with every client connected, before publishing.
    server_with_clients: Option<ProcSample>,
    /// The measured window's start and end.
    measured_from: Boundary,
    measured_to: Boundary,
    /// The idle window's start and end.
    idle_from: Boundary,
    idle_to: Boundary,
    /// Each client's recording.
    recorders: Vec<Recorder>,
    /// What the publisher did.
    published: PublishReport,
    /// The client → server sends.
    upstream: crate::results::Upstream,
}

/// The figures of one transport from what its run recorded: no I/O, no clock, so each
/// division can be checked by a unit test.
fn summarize(transport: Transport, w: &Workload, r: Recorded) -> anyhow::Result<TransportResult> {
    let measured = r.measured_to.live.since(&r.measured_from.live);
    let latency = latency(r.recorders.iter().map(|r| &r.latency))?;
    let delivery = delivery(&r.recorders, r.published.published);
    let seconds = w.duration_seconds.as_secs_f64();
    // Per-message figures divide by at least one message, so an empty window gives
    // large figures rather than NaN.
    let messages = measured.messages.max(1) as f64;
    let bytes = (measured.bytes_read + measured.bytes_written) as f64;
    let message_bytes = measured.message_bytes as f64 / messages;
    let idle = r.idle_to.live.since(&r.idle_from.live);
    let idle_seconds = w.idle_seconds.as_secs_f64();
    let per_client_second = |v: u64| v as f64 / w.clients as f64 / idle_seconds;
    let http_bytes = (measured.http_bytes_read + measured.http_bytes_written) as f64;
    let idle_bytes = idle.bytes_read + idle.bytes_written;
    let idle_http_bytes = idle.http_bytes_read + idle.http_bytes_written;
    // While idle every poll is an empty one; push transports send no request then.
    let per_empty_poll = |bytes: u64| {
        let polls = matches!(transport, Transport::ShortPoll | Transport::LongPoll) && idle.requests > 0;
        polls.then(|| bytes as f64 / idle.requests as f64)
    };
    let server =
        match (r.server_before, r.server_with_clients, &r.measured_from.server, &r.measured_to.server) {
            (Some(before), Some(with_clients), Some(from), Some(to)) => {
                let idle_cpu = match (&r.idle_from.server, &r.idle_to.server) {
                    (Some(a), Some(b)) => b.cpu_seconds - a.cpu_seconds,
                    _ => 0.0,
                };
                let cpu = to.cpu_seconds - from.cpu_seconds;
                Some(ServerCost {
                    cpu_seconds: cpu,
                    cpu_us_per_message: cpu * 1e6 / messages,
                    idle_cpu_seconds: idle_cpu,
                    rss_before_clients_bytes: before.rss_bytes,
                    rss_with_clients_bytes: with_clients.rss_bytes,
                    memory_per_client_bytes: (with_clients.rss_bytes as f64 - before.rss_bytes as f64)
                        / w.clients as f64,
                    peak_rss_bytes: r.idle_to.server.map_or(to.peak_rss_bytes, |s| s.peak_rss_bytes),
                })
            }
            _ => None,
        };
    // The link's threads run in this process; their CPU is the link's (see `wire`), not
    // the load generator's.
    let link_cpu = match (&r.measured_from.link, &r.measured_to.link) {
        (Some(from), Some(to)) => to.cpu_seconds - from.cpu_seconds,
        _ => 0.0,
    };
    let loadgen_cpu = r.measured_to.loadgen.cpu_seconds - r.measured_from.loadgen.cpu_seconds - link_cpu;
    Ok(TransportResult {
        transport,
        latency,
        delivery,
        traffic: Traffic {
            seconds,
            messages: measured.messages,
            requests: measured.requests,
            empty_responses: measured.empty_responses,
            connections: measured.connections,
            bytes_received: measured.bytes_read,
            bytes_sent: measured.bytes_written,
            requests_per_message: measured.requests as f64 / messages,
            bytes_per_message: bytes / messages,
            message_bytes,
            payload_efficiency: message_bytes / (bytes / messages),
            http_bytes_received: Some(measured.http_bytes_read),
            http_bytes_sent: Some(measured.http_bytes_written),
            http_bytes_per_message: Some(http_bytes / messages),
        },
        idle: Idle {
            seconds: idle_seconds,
            requests_per_client_per_second: per_client_second(idle.requests),
            bytes_per_client_per_second: per_client_second(idle_bytes),
            bytes_per_client_per_day: per_client_second(idle_bytes) * 86_400.0,
            http_bytes_per_client_per_second: Some(per_client_second(idle_http_bytes)),
            http_bytes_per_client_per_day: Some(per_client_second(idle_http_bytes) * 86_400.0),
            bytes_per_empty_poll: per_empty_poll(idle_bytes),
            http_bytes_per_empty_poll: per_empty_poll(idle_http_bytes),
        },
        server,
        loadgen: LoadgenCost {
            cpu_seconds: loadgen_cpu,
            cpu_us_per_message: loadgen_cpu * 1e6 / messages,
            publisher_max_lag_ms: r.published.max_lag_us as f64 / 1e3,
            publish_requests: r.published.batches,
        },
        wire: wire(w, &r),
        protocol: protocol(&r.recorders)?,
        tls: tls(&r.recorders),
        upstream: r.upstream,
        reference_client: Some(crate::complexity::reference_client(transport)),
    })
}

/// What the clients' connections spoke. Every client checked its own against what was
/// asked for; they must also agree with each other.
fn protocol(recorders: &[Recorder]) -> anyhow::Result<Option<ProtocolUsed>> {
    let mut seen = recorders.iter().filter_map(|r| r.negotiated.as_ref());
    let Some(first) = seen.next() else { return Ok(None) };
    if let Some(other) = seen.find(|n| *n != first) {
        anyhow::bail!("the clients' connections spoke different protocols: {first:?} and {other:?}");
    }
    Ok(Some(ProtocolUsed {
        http_version: first.http_version.clone(),
        tls: first.tls_version.is_some(),
        alpn: first.alpn.clone(),
        tls_version: first.tls_version.clone(),
    }))
}

/// The TLS handshakes of every client; `None` without TLS (no handshake at all).
fn tls(recorders: &[Recorder]) -> Option<TlsFigures> {
    let all: Vec<_> = recorders.iter().flat_map(|r| &r.handshakes).collect();
    if all.is_empty() {
        return None;
    }
    let n = all.len() as f64;
    let mean_both = |resumed: bool| {
        let kind: Vec<_> = all.iter().filter(|h| h.resumed == resumed).collect();
        let total: u64 = kind.iter().map(|h| h.bytes_sent + h.bytes_received).sum();
        (!kind.is_empty()).then(|| total as f64 / kind.len() as f64)
    };
    let mut micros: Vec<u64> = all.iter().map(|h| h.micros).collect();
    micros.sort_unstable();
    Some(TlsFigures {
        handshakes: all.len() as u64,
        resumed_handshakes: all.iter().filter(|h| h.resumed).count() as u64,
        handshake_bytes_sent: all.iter().map(|h| h.bytes_sent).sum::<u64>() as f64 / n,
        handshake_bytes_received: all.iter().map(|h| h.bytes_received).sum::<u64>() as f64 / n,
        full_handshake_bytes: mean_both(false),
        resumed_handshake_bytes: mean_both(true),
        // The lower median of an even count: a value that was measured.
        handshake_p50_ms: micros[(micros.len() - 1) / 2] as f64 / 1e3,
        handshake_max_ms: micros[micros.len() - 1] as f64 / 1e3,
    })
}

/// The IP-level figures: counted by the packet link when the run crossed it, else
/// estimated from the client sockets' segment counters (see [`WireSource`]).
fn wire(w: &Workload, r: &Recorded) -> Option<Wire> {
    let measured = r.measured_to.live.since(&r.measured_from.live);
    let idle = r.idle_to.live.since(&r.idle_from.live);
    let (source, window, idle_window, link_cpu) =
        match ((&r.measured_from.link, &r.measured_to.link), (&r.idle_from.link, &r.idle_to.link)) {
            ((Some(from), Some(to)), (Some(idle_from), Some(idle_to))) => {
                let window = to.since(from);
                let idle = idle_to.since(idle_from);
                (
                    WireSource::Counted,
                    (window.to_server, window.to_clients),
                    (idle.to_server, idle.to_clients),
                    Some(window),
                )
            }
            _ if measured.segments_out + measured.segments_in == 0 => return None,
            _ => (WireSource::Estimated, estimate(&measured), estimate(&idle), None),
        };
    let messages = measured.messages.max(1) as f64;
    let both = window.0.plus(&window.1);
    let idle_both = idle_window.0.plus(&idle_window.1);
    let per_client_second = |v: u64| v as f64 / w.clients as f64 / w.idle_seconds.as_secs_f64();
    Some(Wire {
        source,
        to_server: window.0,
        to_clients: window.1,
        ip_bytes_per_message: both.ip_bytes as f64 / messages,
        packets_per_message: both.packets as f64 / messages,
        header_bytes_per_message: (both.ip_bytes - both.payload_bytes) as f64 / messages,
        retransmitted_packets: both.retransmitted_packets,
        dropped_packets: both.dropped_by_loss + both.dropped_by_queue,
        idle_ip_bytes_per_client_per_second: per_client_second(idle_both.ip_bytes),
        idle_ip_bytes_per_client_per_day: per_client_second(idle_both.ip_bytes) * 86_400.0,
        idle_packets_per_client_per_second: per_client_second(idle_both.packets),
        link_cpu_us_per_packet: link_cpu.map(|l| l.cpu_seconds * 1e6 / l.packets().max(1) as f64),
        link_system_cpu_us_per_packet: link_cpu
            .map(|l| l.system_cpu_seconds * 1e6 / l.packets().max(1) as f64),
    })
}

/// Both directions as a 1,500-byte-MTU link would carry what the client sockets counted:
/// each segment priced at [`ESTIMATED_HEADER_BYTES`], and data split into segments of at
/// most [`ESTIMATED_MSS`] (loopback's MTU is 64 KiB, so a large write is one segment
/// there and several on Ethernet).
fn estimate(live: &LiveSnapshot) -> (DirectionCount, DirectionCount) {
    let one = |segments: u64, data_segments: u64, payload: u64, retransmitted: u64| {
        let data_packets = data_segments.max(payload.div_ceil(ESTIMATED_MSS));
        let control = segments.saturating_sub(data_segments);
        let packets = control + data_packets;
        DirectionCount {
            packets,
            ip_bytes: payload + packets * ESTIMATED_HEADER_BYTES,
            payload_bytes: payload,
            pure_acks: control,
            retransmitted_packets: retransmitted,
            ..DirectionCount::default()
        }
    };
    (
        one(live.segments_out, live.data_segments_out, live.bytes_written, live.retransmitted_segments),
        // The client's socket cannot know which of the server's segments were resent.
        one(live.segments_in, live.data_segments_in, live.bytes_read, 0),
    )
}

/// The stream's last id and epoch: clients start from there, so on a server already in
/// use they expect only the messages of this run. Asked the way the clients will ask (TLS,
/// the HTTP version), so a server that cannot be trusted or speaks another protocol stops
/// the run here, with the reason, before any client connects.
async fn current_position(target: &Target) -> anyhow::Result<(u64, Option<String>)> {
    let uncounted = Live::default();
    let scheme = if target.tls.is_some() { "https" } else { "http" };
    let base_url = format!("{scheme}://{} (HTTP/{})", target.host, target.http);
    let mut connection = HttpConnection::open(&target.for_the_load_generator(), &uncounted)
        .await
        .with_context(|| format!("cannot reach the server at {base_url}"))?;
    let body = connection.get(&uncounted, "/poll").await.with_context(|| format!("asking {base_url}"))?;
    let body: serde_json::Value = serde_json::from_slice(&body).context("`/poll` answered without JSON")?;
    let last_id =
        body["last_id"].as_u64().context("`/poll` answered without last_id: is this a pushlab server?")?;
    Ok((last_id, body["epoch"].as_str().map(str::to_string)))
}

/// Waits until every client has sent its first request (pollers are spread over one
/// interval, so that is the longest wait), then a moment for the last ones to settle.
async fn wait_for_first_requests(lives: &[Arc<Live>], poll_interval: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + poll_interval + Duration::from_secs(30);
    loop {
        let waiting =
            lives.iter().filter(|l| l.requests.load(std::sync::atomic::Ordering::Relaxed) == 0).count();
        if waiting == 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "{waiting} clients could not connect within 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Moves the bar on until `until`; once a second its message becomes the phase, the
/// deliveries per second over that second and the p99 so far, so a stall shows while it
/// happens.
async fn tick_until(
    bar: &ProgressBar,
    phase: &str,
    lives: &[Arc<Live>],
    latency: &LiveLatency,
    epoch: Instant,
    start_us: u64,
    until: Instant,
) {
    let mut last = (Instant::now(), LiveSnapshot::sum(lives).messages);
    while Instant::now() < until {
        tokio::time::sleep_until(until.min(Instant::now() + Duration::from_millis(100))).await;
        bar.set_position((epoch.elapsed().as_micros() as u64).saturating_sub(start_us));
        let elapsed = last.0.elapsed();
        if elapsed >= Duration::from_secs(1) {
            let delivered = LiveSnapshot::sum(lives).messages;
            let per_second = delivered.saturating_sub(last.1) as f64 / elapsed.as_secs_f64();
            let p99 = latency.p99_ms().map_or(String::new(), |ms| format!(" · p99 ≤ {ms:.1} ms so far"));
            bar.set_message(format!("{phase} · {per_second:.0} delivered/s{p99}"));
            last = (Instant::now(), delivered);
        }
    }
}

/// Merges the clients' histograms and reads the percentiles.
pub fn latency<'a>(histograms: impl Iterator<Item = &'a Histogram<u64>>) -> anyhow::Result<Latency> {
    let mut merged = new_histogram();
    for h in histograms {
        merged.add(h).context("merging histograms")?;
    }
    let ms = |us: u64| us as f64 / 1e3;
    let mut encoded = Vec::new();
    V2DeflateSerializer::new().serialize(&merged, &mut encoded).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(Latency {
        samples: merged.len(),
        mean_ms: merged.mean() / 1e3,
        p50_ms: ms(merged.value_at_quantile(0.5)),
        p90_ms: ms(merged.value_at_quantile(0.9)),
        p99_ms: ms(merged.value_at_quantile(0.99)),
        p999_ms: ms(merged.value_at_quantile(0.999)),
        max_ms: ms(merged.max()),
        histogram: base64::engine::general_purpose::STANDARD.encode(encoded),
    })
}

/// Decodes a histogram saved by [`latency`].
pub fn decode_histogram(encoded: &str) -> anyhow::Result<Histogram<u64>> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(encoded)?;
    hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| anyhow::anyhow!("{e:?}"))
}

fn delivery(recorders: &[Recorder], published: u64) -> Delivery {
    let mut d = Delivery {
        published,
        expected: published * recorders.len() as u64,
        delivered: 0,
        lost: 0,
        lost_untold: 0,
        duplicated: 0,
        reordered: 0,
        gap_notices: 0,
        resets: 0,
    };
    for r in recorders {
        let lost = r.lost(published);
        d.lost += lost;
        d.lost_untold += lost.saturating_sub(r.missed_told);
        d.delivered += published - lost;
        d.duplicated += r.duplicated;
        d.reordered += r.reordered;
        d.gap_notices += r.gap_notices;
        d.resets += r.resets;
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::Upstream;

    fn workload() -> Workload {
        use clap::Parser;
        #[derive(Parser)]
        struct Args {
            #[command(flatten)]
            workload: crate::WorkloadArgs,
        }
        let args = ["pushlab", "--clients", "10", "--duration", "10s", "--idle", "20s"];
        Args::parse_from(args).workload.validate().unwrap()
    }

    fn boundary(live: LiveSnapshot, server_cpu: f64, loadgen_cpu: f64) -> Boundary {
        let sample = |cpu_seconds| ProcSample { cpu_seconds, rss_bytes: 0, peak_rss_bytes: 0 };
        Boundary { live, server: Some(sample(server_cpu)), loadgen: sample(loadgen_cpu), link: None }
    }

    fn live(messages: u64, bytes_read: u64, bytes_written: u64, requests: u64) -> LiveSnapshot {
        LiveSnapshot {
            messages,
            bytes_read,
            bytes_written,
            message_bytes: messages * 100,
            requests,
            ..Default::default()
        }
    }

    #[test]
    fn the_summary_divides_each_window_by_its_own_counts() {
        let rss = |rss_bytes| ProcSample { cpu_seconds: 0.0, rss_bytes, peak_rss_bytes: 2 * rss_bytes };
        let recorded = Recorded {
            server_before: Some(rss(1_000_000)),
            server_with_clients: Some(rss(1_500_000)),
            // Measured: 1,000 messages, 200,000 bytes both ways, 50 requests, 0.5 s of
            // server CPU and 0.25 s of load generator CPU.
            measured_from: boundary(live(10, 1_000, 500, 5), 1.0, 2.0),
            measured_to: boundary(live(1_010, 151_000, 50_500, 55), 1.5, 2.25),
            // Idle: 20 s, 10 clients, 4,000 bytes and 20 requests.
            idle_from: boundary(live(1_010, 151_000, 50_500, 55), 1.5, 2.25),
            idle_to: boundary(live(1_010, 154_000, 51_500, 75), 1.6, 2.3),
            recorders: Vec::new(),
            published: PublishReport { published: 100, batches: 100, max_lag_us: 1_500 },
            upstream: Upstream {
                method: "x".into(),
                samples: 0,
                p50_ms: 0.0,
                p99_ms: 0.0,
                bytes_per_send: 0.0,
            },
        };
        let t = summarize(Transport::Ws, &workload(), recorded).unwrap();
        assert_eq!(t.traffic.messages, 1_000);
        assert_eq!(t.traffic.bytes_per_message, 200.0);
        assert_eq!(t.traffic.requests_per_message, 0.05);
        assert_eq!(t.traffic.message_bytes, 100.0);
        assert_eq!(t.traffic.payload_efficiency, 0.5);
        assert_eq!(t.idle.requests_per_client_per_second, 0.1);
        assert_eq!(t.idle.bytes_per_client_per_second, 20.0);
        assert_eq!(t.idle.bytes_per_client_per_day, 20.0 * 86_400.0);
        let server = t.server.unwrap();
        assert_eq!(server.cpu_us_per_message, 500.0);
        assert_eq!(server.memory_per_client_bytes, 50_000.0);
        assert!((server.idle_cpu_seconds - 0.1).abs() < 1e-9);
        assert_eq!(t.loadgen.cpu_us_per_message, 250.0);
        assert_eq!(t.loadgen.publisher_max_lag_ms, 1.5);
        assert_eq!(t.delivery.published, 100);
    }

    #[test]
    fn without_the_server_process_there_is_no_server_cost() {
        let mut from = boundary(live(0, 0, 0, 0), 0.0, 0.0);
        from.server = None;
        let to =
            Boundary { live: live(0, 0, 0, 0), server: None, loadgen: ProcSample::default(), link: None };
        let same =
            |b: &Boundary| Boundary { live: b.live, server: b.server, loadgen: b.loadgen, link: b.link };
        let recorded = Recorded {
            server_before: None,
            server_with_clients: None,
            measured_from: same(&from),
            measured_to: same(&to),
            idle_from: from,
            idle_to: to,
            recorders: Vec::new(),
            published: PublishReport { published: 0, batches: 0, max_lag_us: 0 },
            upstream: Upstream {
                method: "x".into(),
                samples: 0,
                p50_ms: 0.0,
                p99_ms: 0.0,
                bytes_per_send: 0.0,
            },
        };
        let t = summarize(Transport::Sse, &workload(), recorded).unwrap();
        assert!(t.server.is_none());
        // No message: per-message figures divide by one, not zero.
        assert_eq!(t.traffic.bytes_per_message, 0.0);
    }
}
