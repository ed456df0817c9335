//! End-to-end tests of pushlab: one binary, one module per area (see `util.rs` for the
//! shared helpers). Every test drives a real server on a real socket at 127.0.0.1:0.

mod util;

mod abuse;
mod bench_gate;
mod browser;
mod browser_tls;
mod claims;
mod cli;
mod clients;
mod doc_traces;
mod hostile_http;
mod hostile_ws;
mod labs;
mod loadgen_measurement;
mod loadgen_tls_http2;
mod module_graph;
mod network;
mod outputs;
mod pointers;
mod readme;
mod server_delivery;
mod server_errors;
mod server_lifecycle;
mod server_sse_direct;
mod server_tls_http2;
mod trace_svg;
mod trace_tls_http2;
