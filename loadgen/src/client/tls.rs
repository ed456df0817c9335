//! How the clients reach the server beyond TCP: the HTTP version (`--http`) and TLS
//! (`--tls`, `--ca`). One [`TlsClient`] per measured transport holds the one
//! `rustls::ClientConfig` every client of that run shares, with a session store large
//! enough that each reconnecting client finds a ticket to resume with.
//!
//! Why a store of our own and not rustls' `ClientSessionMemoryCache`: that cache keeps at
//! most 8 TLS 1.3 tickets per server name, and every client here names the same server,
//! so with 100 clients reconnecting most would find none and a full handshake would be
//! measured where a browser resumes. And it would share them: each client stands for a
//! user with a browser of their own, whose first connection has no ticket to resume with,
//! so a ticket here belongs to the client whose connection received it. The store keys
//! tickets by client as well as by server, the client named by the task it runs in
//! ([`as_client`]). A store is also never carried from one run to the next: each transport
//! has a fresh server, whose ticket keys are new, and a stale ticket only adds bytes to the
//! ClientHello.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use anyhow::Context;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientSessionStore, Resumption, Tls12ClientSessionValue, Tls13ClientSessionValue};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, NamedGroup, RootCertStore, SignatureScheme};
use serde::{Deserialize, Serialize};

tokio::task_local! {
    /// The client whose connection the running task serves: whose tickets these are.
    static CLIENT: u64;
}

/// Runs `future` as client `id`'s: the session tickets its connections receive are
/// stored for that client only, and only its own are offered back.
pub fn as_client<F: Future>(id: u64, future: F) -> impl Future<Output = F::Output> {
    CLIENT.scope(id, future)
}

/// The client of the running task, if it is one (see [`as_client`]).
pub fn current_client() -> Option<u64> {
    CLIENT.try_with(|id| *id).ok()
}

/// The HTTP version the clients speak (`--http`), over TLS chosen by ALPN, in cleartext
/// with prior knowledge (h2c). A server that answers with another is an error, never a
/// quiet fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum HttpVersion {
    /// HTTP/1.1: one request at a time per connection.
    #[default]
    #[serde(rename = "1.1")]
    Http1,
    /// HTTP/2: streams on one connection, HPACK-compressed headers.
    #[serde(rename = "2")]
    Http2,
}

impl HttpVersion {
    /// `1.1` or `2`, as `--http` takes it and results.json saves it.
    pub fn name(self) -> &'static str {
        match self {
            HttpVersion::Http1 => "1.1",
            HttpVersion::Http2 => "2",
        }
    }

    /// Its ALPN protocol id (RFC 7301).
    pub fn alpn(self) -> &'static [u8] {
        match self {
            HttpVersion::Http1 => b"http/1.1",
            HttpVersion::Http2 => b"h2",
        }
    }
}

impl fmt::Display for HttpVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One `--http` value: `1.1` or `2` (also `http/1.1`, `h2`, `HTTP/2`).
pub fn parse_http_version(text: &str) -> Result<HttpVersion, String> {
    let text = text.trim().to_ascii_lowercase();
    let bare = text.trim_start_matches("http/").trim_start_matches("http");
    match bare {
        "1.1" => Ok(HttpVersion::Http1),
        "2" | "2.0" | "h2" | "h2c" => Ok(HttpVersion::Http2),
        "3" | "h3" => Err("HTTP/3 is not supported (it runs over QUIC, not TCP): use 1.1 or 2".into()),
        "1" | "1.0" => Err("HTTP/1.0 is not supported: use 1.1 or 2".into()),
        _ => Err(format!("expected an HTTP version, 1.1 or 2 (a list sweeps: 1.1,2), not {text:?}")),
    }
}

/// Which server certificates the clients accept.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Whatever certificate the server presents, like `curl -k`; the handshake's
    /// signatures are still verified, so the connection is encrypted to whoever holds
    /// that certificate's key: nothing is authenticated, nothing is skipped in the work.
    PresentedCertificate,
    /// Only a certificate that chains to one of these: a `--ca` file's, or exactly the
    /// certificate `pushlab lab` made for its server.
    Roots {
        /// The trust anchors.
        certificates: Vec<CertificateDer<'static>>,
        /// Where they come from, for errors: `--ca ca.pem`.
        from: String,
    },
}

impl Trust {
    /// The certificates of a PEM file (`--ca FILE`).
    pub fn from_pem_file(path: &Path) -> anyhow::Result<Trust> {
        let certificates = CertificateDer::pem_file_iter(path)
            .with_context(|| format!("--ca {}: cannot read it", path.display()))?
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("--ca {}: not a PEM certificate file", path.display()))?;
        anyhow::ensure!(!certificates.is_empty(), "--ca {}: no certificate in it", path.display());
        Ok(Trust::Roots { certificates, from: format!("--ca {}", path.display()) })
    }

    /// Exactly one certificate, given as PEM.
    pub fn exactly(cert_pem: &str, from: &str) -> anyhow::Result<Trust> {
        let certificate = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .with_context(|| format!("{from}: not a PEM certificate"))?;
        Ok(Trust::Roots { certificates: vec![certificate], from: from.to_string() })
    }

    /// In words, for errors.
    pub fn describe(&self) -> String {
        match self {
            Trust::PresentedCertificate => "any certificate the server presents".into(),
            Trust::Roots { from, .. } => format!("trusting {from}"),
        }
    }
}

/// The TLS side of one run: the shared client configuration and the name the
/// certificate must carry.
#[derive(Debug, Clone)]
pub struct TlsClient {
    /// Shared by every client of the run (and so is its session store).
    pub config: Arc<ClientConfig>,
    /// The server's name as the certificate must carry it (`localhost`, `127.0.0.1`).
    pub server_name: ServerName<'static>,
    /// What is trusted, in words (see [`Trust::describe`]).
    pub trust: String,
}

impl TlsClient {
    /// A configuration offering exactly `http` by ALPN, trusting `trust`, for the server
    /// named by `host` (`host:port`), with room for the session tickets of `clients`.
    pub fn new(trust: &Trust, http: HttpVersion, host: &str, clients: usize) -> anyhow::Result<TlsClient> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?;
        let mut config = match trust {
            Trust::PresentedCertificate => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptPresented {
                    algorithms: provider.signature_verification_algorithms,
                }))
                .with_no_client_auth(),
            Trust::Roots { certificates, from } => {
                let mut roots = RootCertStore::empty();
                for certificate in certificates {
                    roots
                        .add(certificate.clone())
                        .with_context(|| format!("{from}: not a usable certificate"))?;
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
        };
        config.alpn_protocols = vec![http.alpn().to_vec()];
        // Each client keeps the tickets of its last handshake (rustls servers send two)
        // and one more; room for every client.
        config.resumption = Resumption::store(Arc::new(SessionStore::new(4, clients)));
        Ok(TlsClient { config: Arc::new(config), server_name: server_name(host)?, trust: trust.describe() })
    }

    /// The same, without resumption: for the load generator's own connections (the
    /// probe before a run, the publisher), whose tickets must not be the clients'.
    pub fn without_resumption(&self) -> TlsClient {
        let mut config = (*self.config).clone();
        config.resumption = Resumption::disabled();
        TlsClient { config: Arc::new(config), ..self.clone() }
    }
}

/// The name in `host:port` (or `[v6]:port`) the certificate must carry.
fn server_name(host: &str) -> anyhow::Result<ServerName<'static>> {
    if let Ok(addr) = host.parse::<std::net::SocketAddr>() {
        return Ok(ServerName::IpAddress(addr.ip().into()));
    }
    let name = host.rsplit_once(':').map_or(host, |(name, _)| name).trim_matches(['[', ']']);
    ServerName::try_from(name.to_string())
        .with_context(|| format!("{name:?} is not a server name TLS can check"))
}

/// `curl -k`: any certificate, but a handshake signed by its key.
#[derive(Debug)]
struct AcceptPresented {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptPresented {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Session tickets for all clients of a run, each client's apart: up to `per_client`
/// TLS 1.3 tickets per client and server name, oldest dropped first, each used once (as
/// rustls' own cache does).
#[derive(Debug)]
struct SessionStore {
    per_client: usize,
    servers: Mutex<HashMap<(Option<u64>, ServerName<'static>), Sessions>>,
}

#[derive(Debug, Default)]
struct Sessions {
    kx_hint: Option<NamedGroup>,
    tls12: Option<Tls12ClientSessionValue>,
    tls13: VecDeque<Tls13ClientSessionValue>,
}

impl SessionStore {
    fn new(per_client: usize, clients: usize) -> SessionStore {
        SessionStore { per_client, servers: Mutex::new(HashMap::with_capacity(clients)) }
    }

    /// The running client's sessions with `server_name`.
    fn with<T>(&self, server_name: &ServerName<'_>, f: impl FnOnce(&mut Sessions) -> T) -> T {
        let mut servers = self.servers();
        f(servers.entry((current_client(), server_name.to_owned())).or_default())
    }

    fn servers(&self) -> MutexGuard<'_, HashMap<(Option<u64>, ServerName<'static>), Sessions>> {
        self.servers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ClientSessionStore for SessionStore {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.with(&server_name, |s| s.kx_hint = Some(group));
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.with(server_name, |s| s.kx_hint)
    }

    fn set_tls12_session(&self, server_name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.with(&server_name, |s| s.tls12 = Some(value));
    }

    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.with(server_name, |s| s.tls12.clone())
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.with(server_name, |s| s.tls12 = None);
    }

    fn insert_tls13_ticket(&self, server_name: ServerName<'static>, value: Tls13ClientSessionValue) {
        self.with(&server_name, |s| {
            if s.tls13.len() == self.per_client {
                s.tls13.pop_front();
            }
            s.tls13.push_back(value);
        });
    }

    fn take_tls13_ticket(&self, server_name: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        // The newest ticket: the one least likely to have expired.
        self.with(server_name, |s| s.tls13.pop_back())
    }
}

/// A certificate `pushlab lab` makes for its servers, and the files `pushlab serve
/// --cert/--key` reads, in a folder of their own under the system's temporary directory
/// (never the results folder, which is committed), removed when this is dropped.
#[derive(Debug)]
pub struct LabCertificate {
    /// The certificate, PEM: what the clients trust, and nothing else.
    pub cert_pem: String,
    dir: PathBuf,
}

impl LabCertificate {
    /// A self-signed certificate for `localhost`, `127.0.0.1`, `::1` and `also` (the
    /// server's address on the packet link), with its key, written to files.
    pub fn generate(also: &[IpAddr]) -> anyhow::Result<LabCertificate> {
        let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
        names.extend(also.iter().map(IpAddr::to_string));
        let made = rcgen::generate_simple_self_signed(names).context("making the lab's certificate")?;
        let dir =
            std::env::temp_dir().join(format!("pushlab-tls-{}-{}", std::process::id(), fastrand::u64(..)));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let certificate = LabCertificate { cert_pem: made.cert.pem(), dir };
        std::fs::write(certificate.cert_path(), &certificate.cert_pem)?;
        let key_path = certificate.key_path();
        std::fs::write(&key_path, made.signing_key.serialize_pem())?;
        std::fs::set_permissions(&key_path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        Ok(certificate)
    }

    /// The certificate file, for `--cert`.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    /// The key file, for `--key`.
    pub fn key_path(&self) -> PathBuf {
        self.dir.join("key.pem")
    }

    /// What the clients trust: this certificate alone.
    pub fn trust(&self) -> anyhow::Result<Trust> {
        Trust::exactly(&self.cert_pem, "the certificate pushlab lab made for this run")
    }
}

impl Drop for LabCertificate {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_versions_parse_and_name_their_flag_values() {
        assert_eq!(parse_http_version("1.1"), Ok(HttpVersion::Http1));
        assert_eq!(parse_http_version("2"), Ok(HttpVersion::Http2));
        assert_eq!(parse_http_version("h2"), Ok(HttpVersion::Http2));
        assert!(parse_http_version("3").unwrap_err().contains("HTTP/3 is not supported"));
        assert!(parse_http_version("banana").unwrap_err().contains("1.1 or 2"));
        assert_eq!(serde_json::to_string(&HttpVersion::Http2).unwrap(), "\"2\"");
    }

    #[test]
    fn the_server_name_is_the_host_without_its_port() {
        assert_eq!(server_name("127.0.0.1:3000").unwrap(), ServerName::try_from("127.0.0.1").unwrap());
        assert_eq!(server_name("[::1]:3000").unwrap(), ServerName::try_from("::1").unwrap());
        assert_eq!(server_name("localhost:3000").unwrap(), ServerName::try_from("localhost").unwrap());
    }

    #[test]
    fn the_lab_certificate_is_trusted_and_its_files_go_with_it() {
        let certificate = LabCertificate::generate(&[]).unwrap();
        let (cert, key) = (certificate.cert_path(), certificate.key_path());
        assert!(std::fs::read_to_string(&key).unwrap().contains("PRIVATE KEY"));
        let trust = certificate.trust().unwrap();
        TlsClient::new(&trust, HttpVersion::Http2, "localhost:1", 10).unwrap();
        drop(certificate);
        assert!(!cert.exists() && !key.exists());
    }
}
