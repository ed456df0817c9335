//! Subscriber clients, one file per transport. Each is one `run` function that follows
//! the stream and reports what happens to its [`Session`]; none of them measures
//! anything itself, and the measuring code knows nothing of transports.
//!
//! | transport | file | how it follows the stream |
//! | --- | --- | --- |
//! | short polling | `short_poll.rs` | `GET /poll?since=` on a fixed schedule, like `setInterval` |
//! | long polling | `long_poll.rs` | `GET /long-poll?since=` again as soon as one returns |
//! | SSE | `sse.rs` | one `GET /sse`, events parsed by `eventsource-stream` |
//! | WebSocket | `ws.rs` | one upgraded connection, `tokio-tungstenite` |
//!
//! Every client's connection is made in `connect.rs`: TCP, the socket's byte counter,
//! TLS with `--tls` (`tls.rs`: the run's one shared configuration), the HTTP layer's
//! byte counter, then HTTP/1.1 or HTTP/2 (`--http`). The transports ask it to "GET this
//! path", "open the stream" or "open the WebSocket", whatever carries it. Over HTTP/1.1
//! the pollers and the SSE client use `lean_http.rs`, a lean keep-alive connection;
//! over HTTP/2, hyper. The "bidirectional" POSTs (`upstream.rs`), the publisher and the
//! probe before a run use `http.rs` on the same layers (the publisher's bytes are not
//! counted).
//!
//! Every client reconnects after an error and resumes from its cursor, so a dropped
//! connection shows up as reconnects, not as lost messages.

pub mod connect;
pub mod http;
pub mod lean_http;
pub mod long_poll;
pub mod short_poll;
pub mod sse;
pub mod tls;
pub mod ws;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use pushlab_protocol::poll::PollBody;
use pushlab_protocol::Transport;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::record::{Delivered, Live, Recorder};
use tls::{HttpVersion, TlsClient};

/// Where the server is, and how to speak to it.
#[derive(Debug, Clone)]
pub struct Target {
    /// Socket address to connect to.
    pub addr: SocketAddr,
    /// `Host` header value.
    pub host: String,
    /// Where the client's sockets are made: in this process's network namespace, or in
    /// the clients' namespace on the far side of the packet link (`--link netns`).
    pub dialer: Dialer,
    /// The bearer token the server wants on `POST /publish`, if any.
    pub publish_token: Option<String>,
    /// TLS (`--tls`): the run's client configuration, shared by every clone of this
    /// target; `None`: cleartext.
    pub tls: Option<TlsClient>,
    /// The HTTP version every connection speaks (`--http`).
    pub http: HttpVersion,
}

impl Target {
    /// A target from its socket address, reached from this namespace, in cleartext
    /// HTTP/1.1.
    pub fn new(addr: SocketAddr) -> Self {
        Target {
            addr,
            host: addr.to_string(),
            dialer: Dialer::Here,
            publish_token: None,
            tls: None,
            http: HttpVersion::Http1,
        }
    }

    /// The same server for the load generator's own connections (the probe, the
    /// publisher): without resumption, so that they neither take nor leave the clients'
    /// session tickets.
    pub fn for_the_load_generator(&self) -> Target {
        Target { tls: self.tls.as_ref().map(TlsClient::without_resumption), ..self.clone() }
    }
}

/// Which network namespace a client's TCP socket is created in. A socket belongs to the
/// namespace it was created in, whatever thread uses it later, so only creation differs.
#[derive(Debug, Clone, Copy, Default)]
pub enum Dialer {
    /// This process's namespace (loopback, or the in-process relay).
    #[default]
    Here,
    /// The clients' side of the packet link: every packet crosses it.
    AcrossTheLink(&'static crate::network::netns::ClientSide),
}

impl Dialer {
    /// Connects to `addr` from this dialer's namespace.
    pub async fn connect(self, addr: SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
        match self {
            Dialer::Here => tokio::net::TcpStream::connect(addr).await,
            Dialer::AcrossTheLink(side) => side.socket().await?.connect(addr).await,
        }
    }
}

/// How a client behaves, from the workload.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// Short-poll interval.
    pub poll_interval: Duration,
    /// Delay before this client's first short poll, so pollers spread over the interval
    /// instead of all asking at the same instant.
    pub poll_offset: Duration,
    /// Long-poll hold time asked of the server.
    pub long_poll_timeout: Duration,
    /// Pollers reuse one connection (HTTP keep-alive, as browsers do) when true; open a
    /// new one per request when false.
    pub keepalive: bool,
    /// Close the connection this often and resume from the cursor (a forced reconnect).
    pub drop_every: Option<Duration>,
}

impl ClientSettings {
    /// One keep-alive client that polls every `poll_interval` from its first instant
    /// and never drops its connection: the client of `pushlab trace`, the upstream
    /// probe and the tests.
    pub fn plain(poll_interval: Duration) -> ClientSettings {
        ClientSettings {
            poll_interval,
            poll_offset: Duration::ZERO,
            long_poll_timeout: Duration::from_secs(30),
            keepalive: true,
            drop_every: None,
        }
    }
}

/// A number no other client of this process has: whose TLS session tickets are whose.
pub fn next_client_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// One subscriber's connection to the measurement: its cursor and where its events go.
#[derive(Debug)]
pub struct Session {
    /// This client, from [`next_client_id`]: its TLS sessions are its own.
    pub client_id: u64,
    /// The server.
    pub target: Target,
    /// Behaviour.
    pub settings: ClientSettings,
    /// Counters the run reads live.
    pub live: Arc<Live>,
    /// Everything else, owned by this client until it stops.
    pub recorder: Recorder,
    /// The last stream id received: where to resume.
    pub cursor: u64,
    /// The run of the server's stream the cursor belongs to (its epoch), once known: a
    /// resume names it, so a restarted server answers with a `reset` instead of
    /// silently serving its new ids after our old cursor.
    pub stream_epoch: Option<String>,
    /// Cancelled when the run is over.
    pub stop: CancellationToken,
    /// The run's clock: all times are µs since this instant.
    pub epoch: Instant,
}

/// Why a client loop ended early.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The run is over.
    #[error("stopped")]
    Stopped,
    /// Anything else: the client reconnects.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl Session {
    /// A session for `target` that starts from the beginning of the stream (cursor 0,
    /// epoch unknown), timed from `epoch`; `recorder` receives what it gets.
    pub fn new(target: Target, settings: ClientSettings, recorder: Recorder, epoch: Instant) -> Session {
        Session {
            client_id: next_client_id(),
            target,
            settings,
            live: Arc::default(),
            recorder,
            cursor: 0,
            stream_epoch: None,
            stop: CancellationToken::new(),
            epoch,
        }
    }

    /// Follows the stream with `transport` until stopped, reconnecting after errors.
    pub async fn run(mut self, transport: Transport) -> Session {
        // After an error, wait a little before reconnecting, like every real client
        // library, so a server that is down is not hammered.
        const RECONNECT_DELAY: Duration = Duration::from_millis(100);
        // With --drop-every, the first drop comes after a random part of the period, so
        // the clients do not all reconnect at the same instant.
        let mut connection_lifetime = self.settings.drop_every.map(|d| d.mul_f64(fastrand::f64()));
        let id = self.client_id;
        loop {
            let follow = tls::as_client(id, async {
                match transport {
                    Transport::ShortPoll => short_poll::run(&mut self).await,
                    Transport::LongPoll => long_poll::run(&mut self).await,
                    Transport::Sse => sse::run(&mut self).await,
                    Transport::Ws => ws::run(&mut self).await,
                }
            });
            let result = match connection_lifetime {
                None => follow.await,
                // Dropping the future closes the socket mid-stream, like a network cut
                // or a closed laptop lid; the client then resumes from its cursor.
                Some(lifetime) => match tokio::time::timeout(lifetime, follow).await {
                    Ok(result) => result,
                    Err(_) => {
                        connection_lifetime = self.settings.drop_every;
                        continue;
                    }
                },
            };
            match result {
                Err(ClientError::Stopped) | Ok(()) => return self,
                Err(ClientError::Other(error)) => {
                    tracing::debug!("{transport} client: {error:#}; reconnecting");
                    tokio::select! {
                        _ = self.stop.cancelled() => return self,
                        _ = tokio::time::sleep(RECONNECT_DELAY) => {}
                    }
                }
            }
        }
    }

    /// µs since the run's epoch.
    pub fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// One delivered message (its JSON).
    pub fn deliver(&mut self, json: &str) -> anyhow::Result<()> {
        let received_us = self.now_us();
        let message: Delivered = serde_json::from_str(json)?;
        self.cursor = self.cursor.max(message.id);
        self.live.messages.fetch_add(1, Ordering::Relaxed);
        self.live.message_bytes.fetch_add(json.len() as u64, Ordering::Relaxed);
        if let Some(probe) = message.probe() {
            self.recorder.message(probe.seq, probe.t_us, received_us);
            if let Some(latency) = &self.live.latency {
                latency.record(received_us.saturating_sub(probe.t_us));
            }
        }
        Ok(())
    }

    /// The server said `missed` messages fell out of retention before we read them.
    pub fn gap(&mut self, missed: u64) {
        self.recorder.gap(missed);
    }

    /// The `since=` of a resume: `EPOCH-ID`, or the bare id before the epoch is known.
    pub fn resume_from(&self) -> String {
        match &self.stream_epoch {
            Some(epoch) => format!("{epoch}-{}", self.cursor),
            None => self.cursor.to_string(),
        }
    }

    /// The server said our cursor is from another run of its stream (it restarted): the
    /// messages that follow start that run from its beginning.
    pub fn reset(&mut self, epoch: Option<&str>) {
        self.recorder.resets += 1;
        self.cursor = 0;
        self.stream_epoch = epoch.map(str::to_string);
    }

    /// The stream's epoch, as a notice or a poll body told it.
    pub fn epoch_is(&mut self, epoch: &str) {
        if self.stream_epoch.as_deref() != Some(epoch) {
            self.stream_epoch = Some(epoch.to_string());
        }
    }

    /// A poll body ([`pushlab_protocol::poll`]).
    pub fn poll_body(&mut self, body: &[u8]) -> anyhow::Result<()> {
        let body: PollBody = serde_json::from_slice(body)?;
        let epoch = body.epoch.map(|e| e.to_string());
        if body.reset {
            self.reset(epoch.as_deref());
        } else if let Some(epoch) = &epoch {
            self.epoch_is(epoch);
        }
        if body.missed > 0 {
            self.gap(body.missed);
        }
        if body.messages.is_empty() {
            self.live.empty_responses.fetch_add(1, Ordering::Relaxed);
        }
        for message in body.messages {
            self.deliver(message.get())?;
        }
        Ok(())
    }

    /// Counts one HTTP request (poll, SSE GET or WebSocket handshake).
    pub fn request_sent(&self) {
        self.live.requests.fetch_add(1, Ordering::Relaxed);
    }
}
