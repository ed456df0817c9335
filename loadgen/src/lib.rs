//! # pushlab-loadgen
//!
//! Drives every transport with the same workload and measures them the same way:
//! latency from the *intended* publish time (so coordinated omission cannot hide a
//! stall), delivery completeness, requests, bytes at the socket both ways, and the
//! server's CPU and memory from `/proc`.
//!
//! # Layout
//!
//! - [`workload`]: the flags, validated into a `Workload` before anything runs.
//! - [`publisher`]: the open-loop publisher; each message carries its intended time.
//! - [`client`]: one subscriber client per transport; they report to a `Session` and
//!   know nothing of measurement. Their connections (TCP, TLS with `--tls`, HTTP/1.1 or
//!   HTTP/2 with `--http`) are all made in `client/connect.rs`.
//! - [`wire`]: the byte-counting socket wrapper under every client, and the HTTP-layer
//!   counter above TLS.
//! - [`record`]: per-client recording (HdrHistogram, loss/duplicate/reorder bitmap) and
//!   the live counters sampled at phase boundaries.
//! - [`upstream`]: client → server sends, for the "bidirectional" row.
//! - [`process`]: the server as its own process; CPU and memory from `/proc`.
//! - [`run`]: one transport's measurement, phase by phase.
//! - [`lab`]: every transport in turn, each against a fresh server; writes the reports.
//!   It reports progress as `lab::Progress` events, which only the binary prints.
//! - [`saturation`]: `pushlab lab --find-max`, the rate each transport sustains.
//! - [`network`]: the network between clients and server: the packet link (two network
//!   namespaces joined through TUN devices: delay, loss, a queue, every packet counted)
//!   or the in-process relay (delay and bandwidth, no root).
//! - `sys`: the only `unsafe` code, three calls into the kernel no safe wrapper offers.
//! - [`gate`] and [`bench`]: `pushlab bench`, the regression gate for CI.
//! - [`trace`]: `pushlab trace`, every byte of one client's exchange, annotated; with
//!   `--http 2` every HTTP/2 frame and HPACK field (`trace/http2.rs`), with `--tls` every
//!   TLS record, decrypted from the trace client's own key log (`trace/tls.rs`).
//! - [`claims`]: `pushlab claims`, every claim of the seed documents checked against
//!   runs, written as `docs/claims.md`.
//! - [`abuse`]: `pushlab abuse`, the normal workload measured clean and again under
//!   hostile clients (stuck readers, a ping flood, poll hogs, idle sockets), one file each.
//! - [`complexity`]: the sizes of the reference browser clients (`docs/clients/`),
//!   saved with every run.
//! - [`results`]: the `results.json` data model, the metric registry (`METRICS`) shared
//!   by the gate, the CSV and the gate's report, and `saturation.json`'s curves;
//!   [`report`]: table, CSV, plots, `index.html`, sweep files.

pub mod abuse;
pub mod bench;
pub mod claims;
pub mod client;
pub mod complexity;
pub mod gate;
pub mod lab;
pub mod network;
pub mod process;
pub mod publisher;
pub mod record;
pub mod report;
pub mod results;
pub mod run;
pub mod saturation;
mod sys;
pub mod trace;
pub mod upstream;
pub mod wire;
pub mod workload;

pub use lab::LabOptions;
pub use results::Results;
pub use workload::{Workload, WorkloadArgs};
