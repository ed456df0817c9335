//! The heap one idle TLS connection costs the server, byte for byte.
//!
//! Issue #15 asks for at most 8 KB of server memory per idle TLS connection. RSS per
//! connection (the lab's figure) mixes pushlab's own state with rustls's; this bench
//! isolates rustls: `CONNECTIONS` server connections, made with pushlab's own settings
//! (`Identity::server_config`), each handshaken in memory with a rustls client, one
//! request read and one response written, as an idle SSE subscriber's connection is.
//! A counting global allocator then gives the live heap per connection, and the
//! struct's own size.
//!
//! `cargo bench -p pushlab-server --bench tls_memory`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;

/// Counts the bytes allocated and not yet freed.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is passed to the system allocator unchanged; only counted.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const CONNECTIONS: usize = 1000;

/// Moves every TLS byte `from` has to send into `to`.
fn transfer(from: &mut impl DerefConnection, to: &mut impl DerefConnection) {
    let mut wire = Vec::new();
    while from.common().wants_write() {
        from.common().write_tls(&mut wire).expect("write_tls");
    }
    let mut rest = &wire[..];
    while !rest.is_empty() {
        to.common().read_tls(&mut rest).expect("read_tls");
    }
    to.common().process_new_packets().expect("valid TLS");
}

/// Either side's common half.
trait DerefConnection {
    fn common(&mut self) -> &mut rustls::Connection;
}

impl DerefConnection for rustls::Connection {
    fn common(&mut self) -> &mut rustls::Connection {
        self
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let identity = pushlab_server::tls::Identity::generate().expect("a certificate");
    let server_config = identity.server_config().expect("server settings");
    let client_config = {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(identity.cert_pem.as_bytes()) {
            roots.add(cert.expect("a certificate")).expect("a root");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    };
    let mut servers = Vec::with_capacity(CONNECTIONS);
    let before = LIVE.load(Ordering::Relaxed);
    for _ in 0..CONNECTIONS {
        let mut server = rustls::Connection::Server(
            rustls::ServerConnection::new(server_config.clone()).expect("a server connection"),
        );
        let mut client = rustls::Connection::Client(
            rustls::ClientConnection::new(client_config.clone(), "localhost".try_into().expect("a name"))
                .expect("a client connection"),
        );
        while server.is_handshaking() || client.is_handshaking() {
            transfer(&mut client, &mut server);
            transfer(&mut server, &mut client);
        }
        client.writer().write_all(b"GET /sse HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("request");
        transfer(&mut client, &mut server);
        let mut request = [0; 256];
        let _ = server.reader().read(&mut request).expect("the request");
        server.writer().write_all(b"HTTP/1.1 200 OK\r\n\r\nretry: 1000\n\n").expect("response");
        transfer(&mut server, &mut client);
        drop(client);
        servers.push(server);
    }
    let heap = (LIVE.load(Ordering::Relaxed) - before) as f64 / CONNECTIONS as f64;
    println!(
        "{CONNECTIONS} idle server connections (rustls, pushlab's settings): {heap:.0} bytes of heap each, \
         of which {} the connection struct itself",
        std::mem::size_of::<rustls::Connection>()
    );
    println!("(target for the whole idle TLS connection, pushlab's part included: ≤ 8 KB)");
    drop(servers);
}
