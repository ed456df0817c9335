//! The load generator over TLS and HTTP/2 (#15), against the real server: every
//! transport in cleartext and over TLS, in HTTP/1.1 and HTTP/2, delivers every message
//! in order on the protocol asked for; the HTTP-layer count equals the socket's without
//! TLS and is below it with; reconnects resume their TLS sessions; bad `--http` values
//! and an untrusted certificate are errors that say so; `pushlab lab --tls --http 1.1,2`
//! and `pushlab load --target https://…` run end to end.

use std::sync::atomic::Ordering;
use std::time::Duration;

use pushlab_loadgen::client::http::HttpConnection;
use pushlab_loadgen::client::tls::{HttpVersion, TlsClient, Trust};
use pushlab_loadgen::client::{ClientSettings, Session, Target};
use pushlab_loadgen::record::{Live, Recorder};
use pushlab_server::{Config, Transport};

use crate::util::*;

/// A server in this process, with a fresh certificate when `tls` (returned, PEM).
async fn server(tls: bool) -> (TestServer, Option<String>) {
    let identity = tls.then(|| pushlab_server::tls::Identity::generate().unwrap());
    let cert = identity.as_ref().map(|i| i.cert_pem.clone());
    (TestServer::with_config(Config { tls: identity, ..Config::default() }).await, cert)
}

/// The server at `addr` in `http`, trusting exactly `cert` when given (TLS).
fn target(addr: std::net::SocketAddr, cert: Option<&str>, http: HttpVersion) -> Target {
    let host = addr.to_string();
    let tls = cert.map(|pem| {
        let trust = Trust::exactly(pem, "the test server's certificate").unwrap();
        TlsClient::new(&trust, http, &host, 8).unwrap()
    });
    Target { tls, http, ..Target::new(addr) }
}

/// Publishes probes `seqs` through the load generator's own HTTP client (reqwest here
/// has no TLS).
async fn publish(target: &Target, seqs: std::ops::Range<u64>) {
    let batch: Vec<String> = seqs
        .map(|seq| format!(r#"{{"data":{}}}"#, pushlab_loadgen::record::probe_data(seq, 0, 64)))
        .collect();
    let live = Live::default();
    let mut connection = HttpConnection::open(target, &live).await.unwrap();
    let body = format!("[{}]", batch.join(",")).into();
    let (status, reply) = connection.post_json(&live, "/publish", body, None).await.unwrap();
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&reply));
}

fn session(target: Target, settings: ClientSettings) -> Session {
    Session::new(target, settings, Recorder::new(Default::default()), tokio::time::Instant::now())
}

/// One client of each transport follows the stream while 10 messages are published in
/// two batches; the stopped sessions.
async fn follow_all(target: &Target, settings: &ClientSettings) -> Vec<(Transport, Session)> {
    let mut running = Vec::new();
    for transport in Transport::ALL {
        let session = session(target.clone(), settings.clone());
        let (live, stop) = (session.live.clone(), session.stop.clone());
        running.push((transport, live, stop, tokio::spawn(session.run(transport))));
    }
    for (transport, live, ..) in &running {
        eventually(&format!("{transport} sent its first request"), || {
            live.requests.load(Ordering::Relaxed) > 0
        })
        .await;
    }
    publish(target, 0..5).await;
    for (_, live, ..) in &running {
        eventually("5 delivered", || live.messages.load(Ordering::Relaxed) >= 5).await;
    }
    publish(target, 5..10).await;
    let mut stopped = Vec::new();
    for (transport, live, stop, task) in running {
        eventually(&format!("{transport}: 10 delivered"), || live.messages.load(Ordering::Relaxed) >= 10)
            .await;
        stop.cancel();
        stopped.push((transport, task.await.unwrap()));
    }
    stopped
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transport_delivers_in_order_on_the_protocol_asked_for() {
    let settings = ClientSettings::plain(Duration::from_millis(100));
    for tls in [false, true] {
        for http in [HttpVersion::Http1, HttpVersion::Http2] {
            // A fresh stream per case: every client starts from its beginning.
            let (server, cert) = server(tls).await;
            let target = target(server.addr, cert.as_deref(), http);
            for (transport, session) in follow_all(&target, &settings).await {
                let case = format!("{transport} over HTTP/{http}, tls {tls}");
                let r = &session.recorder;
                assert_eq!((r.lost(10), r.duplicated, r.reordered), (0, 0, 0), "{case}");
                let negotiated = r.negotiated.clone().unwrap();
                assert_eq!(negotiated.http_version, http.name(), "{case}");
                let alpn = tls.then(|| String::from_utf8_lossy(http.alpn()).into_owned());
                assert_eq!(negotiated.alpn, alpn, "{case}");
                assert_eq!(negotiated.tls_version.as_deref(), tls.then_some("TLSv1_3"), "{case}");
                assert_eq!(r.handshakes.len(), usize::from(tls), "{case}: one connection, one handshake");
                let (socket, http_layer) = (session.live.wire.snapshot(), session.live.http.snapshot());
                if tls {
                    // Records carry headers, tags and the handshake: more than the HTTP in them.
                    assert!(
                        http_layer.0 < socket.0 && http_layer.1 < socket.1,
                        "{case}: {http_layer:?} {socket:?}"
                    );
                    assert!(http_layer.0 > 10 * 64, "{case}: ten 64-byte payloads at least");
                } else {
                    assert_eq!(http_layer, socket, "{case}: without TLS the HTTP layer is the socket");
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_resume_their_tls_sessions_and_lose_nothing() {
    let settings = ClientSettings {
        drop_every: Some(Duration::from_millis(150)),
        ..ClientSettings::plain(Duration::from_millis(50))
    };
    for http in [HttpVersion::Http1, HttpVersion::Http2] {
        let (server, cert) = server(true).await;
        let target = target(server.addr, cert.as_deref(), http);
        let mut running = Vec::new();
        for transport in Transport::ALL {
            let session = session(target.clone(), settings.clone());
            let (live, stop) = (session.live.clone(), session.stop.clone());
            running.push((transport, live, stop, tokio::spawn(session.run(transport))));
        }
        for batch in 0..5 {
            publish(&target, batch * 4..batch * 4 + 4).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for (transport, live, stop, task) in running {
            eventually(&format!("{transport}: 20 delivered"), || live.messages.load(Ordering::Relaxed) >= 20)
                .await;
            stop.cancel();
            let session = task.await.unwrap();
            let (r, case) = (&session.recorder, format!("{transport} over HTTP/{http}"));
            assert_eq!((r.lost(20), r.duplicated), (0, 0), "{case}");
            let resumed = r.handshakes.iter().filter(|h| h.resumed).count();
            assert!(r.handshakes.len() >= 3, "{case}: {} handshakes in 1 s of drops", r.handshakes.len());
            assert!(resumed > 0, "{case}: none of {} handshakes resumed", r.handshakes.len());
            assert!(
                !r.handshakes[0].resumed,
                "{case}: a client's first handshake has no ticket to resume with"
            );
            let full = r.handshakes.iter().find(|h| !h.resumed).unwrap();
            let again = r.handshakes.iter().find(|h| h.resumed).unwrap();
            // No certificate in a resumed handshake: fewer bytes from the server.
            assert!(again.bytes_received < full.bytes_received, "{case}: {full:?} vs {again:?}");
        }
    }
}

fn pushlab(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_pushlab")).args(args).output().unwrap()
}

#[test]
fn http_versions_other_than_1_1_and_2_are_refused_naming_the_flag() {
    for (value, says) in [("3", "HTTP/3 is not supported"), ("fast", "1.1 or 2"), ("1.1,3", "HTTP/3")] {
        let output = pushlab(&["lab", "--quick", "--http", value]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "--http {value}: {stderr}");
        assert!(stderr.contains("--http") && stderr.contains(says), "--http {value}: {stderr}");
    }
    let output = pushlab(&["lab", "--quick", "--http", "1.1,2", "--rtt", "0ms,10ms"]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("sweep one setting at a time"));
}

/// `pushlab serve --cert --key` with a fresh certificate; the server and the files.
async fn tls_serve(dir: &std::path::Path) -> (pushlab_loadgen::process::ServerProcess, std::path::PathBuf) {
    let identity = pushlab_server::tls::Identity::generate().unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, &identity.cert_pem).unwrap();
    std::fs::write(&key, &identity.key_pem).unwrap();
    let args = ["--cert", cert.to_str().unwrap(), "--key", key.to_str().unwrap()].map(String::from);
    let server =
        pushlab_loadgen::process::ServerProcess::spawn(env!("CARGO_BIN_EXE_pushlab").as_ref(), &args)
            .await
            .unwrap();
    (server, cert)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_over_https_trusts_its_ca_and_refuses_another_certificate() {
    let dir = tempfile::Builder::new().prefix("pushlab-load-tls-").tempdir().unwrap();
    let (server, cert) = tls_serve(dir.path()).await;
    let other = dir.path().join("other.pem");
    std::fs::write(&other, pushlab_server::tls::Identity::generate().unwrap().cert_pem).unwrap();
    let url = format!("https://{}", server.addr);
    let run = |ca: Option<&std::path::Path>, out: &str, transports: &str| {
        let mut args = vec![
            "load",
            "--target",
            &url,
            "--quick",
            "--clients",
            "2",
            "--duration",
            "1s",
            "--idle",
            "500ms",
        ];
        args.extend(["--transports", transports, "--http", "2", "--out"]);
        let out = dir.path().join(out);
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_pushlab"));
        command.args(&args).arg(&out);
        if let Some(ca) = ca {
            command.arg("--ca").arg(ca);
        }
        async move { (command.output().await.unwrap(), out) }
    };

    let (refused, _) = run(Some(&other), "refused", "ws").await;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "a certificate the --ca does not cover was accepted");
    assert!(stderr.contains("certificate was not trusted") && stderr.contains("--ca"), "{stderr}");

    for (ca, out, transports) in
        [(Some(cert.as_path()), "trusted", "ws,short_poll"), (None, "presented", "sse")]
    {
        let (output, out) = run(ca, out, transports).await;
        assert!(output.status.success(), "{out:?}: {}", String::from_utf8_lossy(&output.stderr));
        let results: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
        assert_eq!(results["setup"]["workload"]["tls"], true);
        for t in results["transports"].as_array().unwrap() {
            assert_eq!(t["delivery"]["lost"], 0, "{out:?}");
            assert_eq!(t["protocol"]["alpn"], "h2", "{out:?}");
            assert!(t["tls"]["handshakes"].as_u64().unwrap() >= 2, "{out:?}: {t}");
        }
    }
    server.stop().await.unwrap();
}

#[test]
fn the_lab_over_tls_sweeps_http_versions_with_every_message_delivered() {
    let dir = tempfile::Builder::new().prefix("pushlab-lab-tls-").tempdir().unwrap();
    let out = dir.path().join("sweep");
    let args = [
        "lab",
        "--quick",
        "--tls",
        "--http",
        "1.1,2",
        "--clients",
        "3",
        "--duration",
        "1s",
        "--idle",
        "500ms",
    ];
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_pushlab"))
        .args(args)
        .args(["--link", "relay", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("TLS handshakes (resumed)") && stdout.contains("HTTP/2 TLS 1.3"), "{stdout}");
    assert!(stdout.contains("across protocols"), "{stdout}");
    // Each version in cleartext (TLS's reference, same run) and over TLS.
    for (condition, version, alpn) in [
        ("http-1.1", "1.1", None),
        ("https-1.1", "1.1", Some("http/1.1")),
        ("http-2", "2", None),
        ("https-2", "2", Some("h2")),
    ] {
        let text = std::fs::read_to_string(out.join(condition).join("results.json")).unwrap();
        let results: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(results["setup"]["workload"]["http_version"], version);
        assert_eq!(results["setup"]["workload"]["tls"], alpn.is_some(), "{condition}");
        for t in results["transports"].as_array().unwrap() {
            let name = format!("{condition} {}", t["transport"]);
            assert_eq!(
                (t["delivery"]["lost"].as_u64(), t["delivery"]["duplicated"].as_u64()),
                (Some(0), Some(0)),
                "{name}"
            );
            assert_eq!(t["protocol"]["http_version"], version, "{name}");
            let (http, socket) =
                (t["traffic"]["http_bytes_per_message"].as_f64(), t["traffic"]["bytes_per_message"].as_f64());
            match alpn {
                Some(alpn) => {
                    assert_eq!(t["protocol"]["alpn"], alpn, "{name}");
                    assert!(t["tls"]["handshakes"].as_u64().unwrap() >= 3, "{name}");
                    assert!(http < socket, "{name}: HTTP layer {http:?} vs socket {socket:?}");
                }
                None => {
                    assert!(t["tls"].is_null(), "{name}: no TLS figures in cleartext");
                    assert_eq!(http, socket, "{name}: without TLS the HTTP layer is the socket");
                }
            }
        }
    }
    // The run's private key never reaches the results folder.
    let mut stack = vec![out];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let text = std::fs::read(&path).unwrap();
                assert!(!String::from_utf8_lossy(&text).contains("PRIVATE KEY"), "{}", path.display());
            }
        }
    }
}
