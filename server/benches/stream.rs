//! Hot paths of the server, without sockets: the log and the encodings. Each benchmark
//! says what it guards. Run with `cargo bench -p pushlab-server`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pushlab_protocol::poll::PollHead;
use pushlab_protocol::sse::event as sse_event;
use pushlab_server::log::{Budget, Cursor, Log};
use pushlab_server::message::{Entry, NewMessage};
use pushlab_server::transport::poll_body;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;

/// A message like the lab's: about 100 bytes of data.
fn message(i: u64) -> NewMessage {
    let data = serde_json::json!({"seq": i, "pad": "x".repeat(80)}).to_string();
    NewMessage { kind: "update".into(), data: serde_json::value::RawValue::from_string(data).expect("JSON") }
}

/// A cursor at `id` of the log's own run.
fn at(log: &Log<Entry>, id: u64) -> Cursor {
    Cursor { epoch: Some(log.epoch()), id }
}

/// A streaming cursor's budget.
const BATCH: Budget = Budget { count: 256, bytes: 64 * 1024 };

/// Appends as the server does: each message encoded once, under the log's lock.
fn append_encoded(log: &Log<Entry>, messages: Vec<NewMessage>) -> Vec<u64> {
    log.append(messages, |epoch, id, message| Entry::encode(epoch, id, message, 1_795_317_370_028))
}

fn filled_log(n: u64) -> Log<Entry> {
    let log = Log::new(10_000);
    append_encoded(&log, (0..n).map(message).collect());
    log
}

/// Guards publishing: assigning an id and encoding the message once (JSON and SSE) under
/// the log's lock, alone and in a batch of 100 (one lock, one wake-up).
fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("log/append");
    let log = Log::new(10_000);
    group.throughput(Throughput::Elements(1));
    group.bench_function("one", |b| b.iter(|| append_encoded(&log, vec![message(1)])));
    group.throughput(Throughput::Elements(100));
    group.bench_function("batch_of_100", |b| {
        b.iter_batched(
            || (0..100).map(message).collect(),
            |batch| append_encoded(&log, batch),
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// Guards the read every delivery performs: a cursor 100 messages behind drains them
/// (clones of shared `Bytes`, no copy of message bodies).
fn read_cursor(c: &mut Criterion) {
    let log = filled_log(10_000);
    let mut group = c.benchmark_group("log/read_after");
    group.throughput(Throughput::Elements(100));
    group.bench_function("100_behind", |b| b.iter(|| log.read_after(black_box(at(&log, 9_900)), BATCH)));
    group.throughput(Throughput::Elements(1));
    group.bench_function("1_behind", |b| b.iter(|| log.read_after(black_box(at(&log, 9_999)), BATCH)));
    group.finish();
}

/// Guards the per-transport encoding of 10 pending messages: a poll body (copies the
/// pre-encoded JSON), SSE events (copies the pre-encoded events), WebSocket frames (a
/// header before the shared payload).
fn encode(c: &mut Criterion) {
    let log = filled_log(10);
    let read = log.read_after(at(&log, 0), Budget { count: 10, bytes: usize::MAX });
    let mut group = c.benchmark_group("encode/10_messages");
    group.throughput(Throughput::Elements(10));
    let head = PollHead { last_id: read.last_id, epoch: Some(read.epoch), ..PollHead::default() };
    group.bench_function("poll_body", |b| b.iter(|| poll_body(black_box(&read.entries), head)));
    group.bench_function("sse_events", |b| {
        b.iter(|| {
            let mut out = bytes::BytesMut::new();
            for entry in &read.entries {
                out.extend_from_slice(&entry.sse);
            }
            out
        })
    });
    group.bench_function("ws_frames", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(2048);
            for entry in &read.entries {
                let payload = bytes::Bytes::from(entry.json.clone());
                Frame::message(payload, OpCode::Data(Data::Text), true)
                    .format(&mut out)
                    .expect("writing to a Vec");
            }
            out
        })
    });
    group.bench_function("sse_event_from_scratch", |b| {
        let json = read.entries[0].json.as_bytes();
        b.iter(|| sse_event(Some(at(&log, 1)), "update", black_box(json)))
    });
    group.finish();
}

/// Guards fan-out: one message appended, then every subscriber's cursor reads it, for
/// 1, 100 and 10,000 subscribers. The cost must grow with subscribers, never with
/// retention or with anything copied per subscriber.
fn fan_out(c: &mut Criterion) {
    let mut group = c.benchmark_group("fan_out");
    for subscribers in [1u64, 100, 10_000] {
        let log = filled_log(1_000);
        group.throughput(Throughput::Elements(subscribers));
        group.bench_with_input(BenchmarkId::from_parameter(subscribers), &subscribers, |b, &n| {
            b.iter(|| {
                let last = append_encoded(&log, vec![message(0)])[0];
                for _ in 0..n {
                    black_box(log.read_after(at(&log, last - 1), BATCH));
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, append, read_cursor, encode, fan_out);
criterion_main!(benches);
