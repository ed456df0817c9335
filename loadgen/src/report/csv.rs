//! `summary.csv`: one row per transport, one column per figure, names with units (the
//! same names as in `results.json`).

use crate::results::{Results, TransportResult};

type Column = (&'static str, fn(&TransportResult) -> String);

const COLUMNS: &[Column] = &[
    ("transport", |t| t.transport.name().to_string()),
    ("latency_samples", |t| t.latency.samples.to_string()),
    ("latency_mean_ms", |t| f(t.latency.mean_ms)),
    ("latency_p50_ms", |t| f(t.latency.p50_ms)),
    ("latency_p90_ms", |t| f(t.latency.p90_ms)),
    ("latency_p99_ms", |t| f(t.latency.p99_ms)),
    ("latency_p999_ms", |t| f(t.latency.p999_ms)),
    ("latency_max_ms", |t| f(t.latency.max_ms)),
    ("published", |t| t.delivery.published.to_string()),
    ("expected", |t| t.delivery.expected.to_string()),
    ("delivered", |t| t.delivery.delivered.to_string()),
    ("lost", |t| t.delivery.lost.to_string()),
    ("lost_untold", |t| t.delivery.lost_untold.to_string()),
    ("duplicated", |t| t.delivery.duplicated.to_string()),
    ("reordered", |t| t.delivery.reordered.to_string()),
    ("gap_notices", |t| t.delivery.gap_notices.to_string()),
    ("requests", |t| t.traffic.requests.to_string()),
    ("empty_responses", |t| t.traffic.empty_responses.to_string()),
    ("connections", |t| t.traffic.connections.to_string()),
    ("bytes_received", |t| t.traffic.bytes_received.to_string()),
    ("bytes_sent", |t| t.traffic.bytes_sent.to_string()),
    ("requests_per_message", |t| f(t.traffic.requests_per_message)),
    ("bytes_per_message", |t| f(t.traffic.bytes_per_message)),
    ("message_bytes", |t| f(t.traffic.message_bytes)),
    ("payload_efficiency", |t| f(t.traffic.payload_efficiency)),
    ("idle_requests_per_client_per_second", |t| f(t.idle.requests_per_client_per_second)),
    ("idle_bytes_per_client_per_second", |t| f(t.idle.bytes_per_client_per_second)),
    ("idle_bytes_per_client_per_day", |t| f(t.idle.bytes_per_client_per_day)),
    ("server_cpu_seconds", |t| t.server.as_ref().map_or(String::new(), |s| f(s.cpu_seconds))),
    ("server_cpu_us_per_message", |t| t.server.as_ref().map_or(String::new(), |s| f(s.cpu_us_per_message))),
    ("server_memory_per_client_bytes", |t| {
        t.server.as_ref().map_or(String::new(), |s| f(s.memory_per_client_bytes))
    }),
    ("server_peak_rss_bytes", |t| t.server.as_ref().map_or(String::new(), |s| s.peak_rss_bytes.to_string())),
    ("loadgen_cpu_seconds", |t| f(t.loadgen.cpu_seconds)),
    ("loadgen_cpu_us_per_message", |t| f(t.loadgen.cpu_us_per_message)),
    ("publisher_max_lag_ms", |t| f(t.loadgen.publisher_max_lag_ms)),
    ("upstream_p50_ms", |t| f(t.upstream.p50_ms)),
    ("upstream_bytes_per_send", |t| f(t.upstream.bytes_per_send)),
];

fn f(v: f64) -> String {
    format!("{v:.4}")
}

/// The CSV text.
pub fn render(results: &Results) -> String {
    let mut out = COLUMNS.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(",");
    out.push('\n');
    for t in &results.transports {
        out.push_str(&COLUMNS.iter().map(|(_, value)| value(t)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}
