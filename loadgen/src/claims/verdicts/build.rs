//! Small constructed runs for the verdicts' unit tests.
//!
//! Every figure starts at zero (or, for rates and sizes a check divides by, at one) and
//! a test sets the few that its verdict reads, so each test shows what its threshold
//! depends on and nothing else. The types are the ones `results.json` holds.

use pushlab_protocol::Transport;

use crate::claims::{Evidence, Experiments};
use crate::results::{
    Delivery, Idle, Latency, LoadgenCost, Machine, Results, Setup, Traffic, TransportResult, Upstream, Wire,
    WireSource,
};

/// One transport's result with every figure at zero.
pub(crate) fn transport(transport: Transport) -> TransportResult {
    TransportResult {
        transport,
        latency: Latency {
            samples: 0,
            mean_ms: 0.0,
            p50_ms: 0.0,
            p90_ms: 0.0,
            p99_ms: 0.0,
            p999_ms: 0.0,
            max_ms: 0.0,
            histogram: String::new(),
        },
        delivery: Delivery {
            published: 0,
            expected: 0,
            delivered: 0,
            lost: 0,
            lost_untold: 0,
            duplicated: 0,
            reordered: 0,
            gap_notices: 0,
            resets: 0,
        },
        traffic: Traffic {
            seconds: 1.0,
            messages: 0,
            requests: 0,
            empty_responses: 0,
            connections: 0,
            bytes_received: 0,
            bytes_sent: 0,
            requests_per_message: 0.0,
            bytes_per_message: 0.0,
            message_bytes: 0.0,
            payload_efficiency: 0.0,
            http_bytes_received: None,
            http_bytes_sent: None,
            http_bytes_per_message: None,
        },
        idle: Idle {
            seconds: 0.0,
            requests_per_client_per_second: 0.0,
            bytes_per_client_per_second: 0.0,
            bytes_per_client_per_day: 0.0,
            http_bytes_per_client_per_second: None,
            http_bytes_per_client_per_day: None,
            bytes_per_empty_poll: None,
            http_bytes_per_empty_poll: None,
        },
        server: None,
        loadgen: LoadgenCost {
            cpu_seconds: 0.0,
            cpu_us_per_message: 0.0,
            publisher_max_lag_ms: 0.0,
            publish_requests: 0,
        },
        upstream: Upstream {
            method: String::new(),
            samples: 0,
            p50_ms: 0.0,
            p99_ms: 0.0,
            bytes_per_send: 0.0,
        },
        wire: None,
        reference_client: None,
        protocol: None,
        tls: None,
    }
}

/// Wire figures as the packet link counts them, zero but for the three the verdicts
/// read: IP bytes and packets per delivered message, idle IP bytes per client per day.
pub(crate) fn counted_wire(ip_bytes_per_message: f64, packets_per_message: f64, idle_per_day: f64) -> Wire {
    Wire {
        source: WireSource::Counted,
        to_server: Default::default(),
        to_clients: Default::default(),
        ip_bytes_per_message,
        packets_per_message,
        header_bytes_per_message: 0.0,
        retransmitted_packets: 0,
        dropped_packets: 0,
        idle_ip_bytes_per_client_per_second: idle_per_day / 86_400.0,
        idle_ip_bytes_per_client_per_day: idle_per_day,
        idle_packets_per_client_per_second: 0.0,
        link_cpu_us_per_packet: None,
        link_system_cpu_us_per_packet: None,
    }
}

/// The lab's default workload (as `pushlab lab` validates it), with a drop every second
/// and the given round-trip time.
fn lab_workload(rtt_ms: f64) -> crate::workload::Workload {
    #[derive(clap::Parser)]
    struct Flags {
        #[command(flatten)]
        workload: crate::workload::WorkloadArgs,
    }
    let rtt = format!("{rtt_ms}ms");
    let flags = ["pushlab", "--drop-every", "1s", "--rtt", &rtt];
    <Flags as clap::Parser>::try_parse_from(flags)
        .expect("valid flags")
        .workload
        .validate()
        .expect("a valid workload")
}

/// A run of all four transports at a round-trip time, with the lab's default workload
/// (100 clients, 10 messages/s, a poll every 500 ms).
pub(crate) fn run(rtt_ms: f64) -> Results {
    Results {
        schema_version: crate::results::SCHEMA_VERSION,
        setup: Setup {
            pushlab_version: "test".into(),
            command: "pushlab lab".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
            git_commit: None,
            machine: Machine {
                cpu_model: "test".into(),
                cores: 2,
                kernel: "test".into(),
                memory_bytes: 0,
                fd_limit: 0,
            },
            target: "spawned".into(),
            workload: serde_json::to_value(lab_workload(rtt_ms)).expect("a workload serializes"),
        },
        transports: Transport::ALL.iter().map(|&t| transport(t)).collect(),
        warnings: Vec::new(),
    }
}

/// The evidence `pushlab claims` makes: a lab run, a round-trip-time sweep at 0 and
/// 50 ms, one scale run, a resume run; no outage or frame experiments.
pub(crate) fn evidence() -> Evidence {
    Evidence {
        dir: "runs".into(),
        lab: run(0.0),
        network: vec![run(0.0), run(50.0)],
        scale: vec![run(0.0)],
        resume: run(0.0),
        experiments: Experiments {
            command: "pushlab claims".into(),
            quick: false,
            outages: vec![],
            frames: vec![],
        },
    }
}

/// The result of `transport` in `run`, to set its figures.
pub(crate) fn of(run: &mut Results, transport: Transport) -> &mut TransportResult {
    run.transports.iter_mut().find(|t| t.transport == transport).expect("the builder runs all four")
}
