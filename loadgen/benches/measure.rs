//! Hot paths of the load generator: what it does per received message. It must stay
//! cheaper than the server's work per delivery, or the lab measures the load generator.
//! Run with `cargo bench -p pushlab-loadgen`.

use std::hint::black_box;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use pushlab_loadgen::client::sse::one_event_at_a_time;
use pushlab_loadgen::client::{ClientSettings, Session, Target};
use pushlab_loadgen::record::{new_histogram, probe_data, Recorder, Window};

fn message_json(id: u64) -> String {
    format!(
        r#"{{"id":{id},"type":"update","data":{},"timestamp":1795317370028}}"#,
        probe_data(id, 1_000 + id, 128)
    )
}

fn session() -> Session {
    let window: Window = Arc::new(OnceLock::new());
    window.set(0..u64::MAX).expect("set once");
    let target = Target::new("127.0.0.1:1".parse().expect("a valid address"));
    Session::new(
        target,
        ClientSettings::plain(Duration::ZERO),
        Recorder::new(window),
        tokio::time::Instant::now(),
    )
}

/// Guards the per-message work of every client: parse the message JSON, find the probe,
/// record latency and the sequence bit.
fn deliver(c: &mut Criterion) {
    let json = message_json(1);
    let mut session = session();
    let mut group = c.benchmark_group("client");
    group.throughput(Throughput::Elements(1));
    group.bench_function("deliver_one_message", |b| b.iter(|| session.deliver(black_box(&json))));
    let body = format!(
        r#"{{"messages":[{}],"last_id":10}}"#,
        (1..=10).map(message_json).collect::<Vec<_>>().join(",")
    );
    group.throughput(Throughput::Elements(10));
    group.bench_function("poll_body_of_10", |b| b.iter(|| session.poll_body(black_box(body.as_bytes()))));
    group.finish();
}

/// Guards SSE input parsing (`eventsource-stream`, the same rules as a browser) for a
/// chunk of 100 events, as a lagging cursor sends them in one write: fed as it comes, and
/// one event at a time as the SSE client feeds it (`one_event_at_a_time`).
fn parse_sse(c: &mut Criterion) {
    let chunk: String =
        (1..=100).map(|id| format!("id: {id}\nevent: update\ndata: {}\n\n", message_json(id))).collect();
    let chunk = bytes::Bytes::from(chunk);
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
    let input = || futures_util::stream::iter([Ok::<_, std::convert::Infallible>(chunk.clone())]);
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Elements(100));
    group.bench_function("sse_100_events_whole_chunk", |b| {
        b.iter(|| runtime.block_on(input().eventsource().count()))
    });
    group.bench_function("sse_100_events", |b| {
        b.iter(|| runtime.block_on(one_event_at_a_time(input()).eventsource().count()))
    });
    group.finish();
}

/// Guards recording (one histogram value and one bit per message) and the end-of-run
/// merge of 1,000 clients' histograms.
fn histograms(c: &mut Criterion) {
    let mut group = c.benchmark_group("histogram");
    let mut recorder = session().recorder;
    let mut seq = 0u64;
    group.throughput(Throughput::Elements(1));
    group.bench_function("record", |b| {
        b.iter(|| {
            seq += 1;
            recorder.message(seq, 10, 10 + (seq % 5_000));
        })
    });
    let clients: Vec<_> = (0..1_000u64)
        .map(|c| {
            let mut h = new_histogram();
            for v in 0..100 {
                h.record(100 + c * 10 + v).expect("in range");
            }
            h
        })
        .collect();
    group.throughput(Throughput::Elements(1_000));
    group.bench_function("merge_1000_clients", |b| {
        b.iter_batched(
            new_histogram,
            |mut merged| {
                for h in &clients {
                    merged.add(h).expect("same bounds");
                }
                merged
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, deliver, parse_sse, histograms);
criterion_main!(benches);
