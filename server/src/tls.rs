//! TLS for `pushlab serve --tls`: the certificate, and the rustls settings every
//! connection shares.
//!
//! Each TLS connection encrypts its own copy of every message, so the bytes a transport
//! encodes once are no longer shared on the wire; what that costs is what
//! `pushlab lab --tls` measures. The settings below are chosen for that measurement to
//! reflect a production server, not a benchmark trick:
//!
//! - ALPN offers `h2` first, then `http/1.1`, as every HTTPS server a browser meets;
//! - resumption by stateless session tickets, so a client that reconnects (`--drop-every`,
//!   a phone changing networks) skips the full handshake and the server keeps no cache
//!   entry per client;
//! - rustls's buffers are left to grow only as far as a connection needs them: an idle
//!   connection's cost is measured (docs/performance.md), not assumed.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The ALPN names, in the server's order of preference (RFC 7301).
pub const ALPN_H2: &[u8] = b"h2";
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// A certificate chain and its private key, PEM encoded.
#[derive(Clone)]
pub struct Identity {
    /// The certificate chain, leaf first.
    pub cert_pem: String,
    /// The leaf's private key.
    pub key_pem: String,
}

impl std::fmt::Debug for Identity {
    // Never print a private key, not even in a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").field("cert_pem", &self.cert_pem).finish_non_exhaustive()
    }
}

impl Identity {
    /// A fresh self-signed certificate for the names a local server is reached by:
    /// `localhost`, `127.0.0.1` and `::1`.
    pub fn generate() -> Result<Identity, String> {
        let names = ["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
        let certified = rcgen::generate_simple_self_signed(names)
            .map_err(|error| format!("cannot make a self-signed certificate: {error}"))?;
        Ok(Identity { cert_pem: certified.cert.pem(), key_pem: certified.signing_key.serialize_pem() })
    }

    /// A certificate chain and key from PEM files (`--cert`, `--key`).
    pub fn from_files(cert: &Path, key: &Path) -> Result<Identity, String> {
        let read = |path: &Path, flag: &str| {
            std::fs::read_to_string(path).map_err(|error| format!("{flag} {}: {error}", path.display()))
        };
        let identity = Identity { cert_pem: read(cert, "--cert")?, key_pem: read(key, "--key")? };
        // Refuse a bad file now, naming the flag, rather than at the first handshake.
        identity.server_config()?;
        Ok(identity)
    }

    /// The rustls settings of every connection.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, String> {
        let chain = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| format!("--cert: not a PEM certificate chain: {error}"))?;
        if chain.is_empty() {
            return Err("--cert: the file holds no certificate".into());
        }
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(|error| format!("--key: not a PEM private key: {error}"))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| format!("TLS settings: {error}"))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|error| format!("--cert/--key: {error}"))?;
        config.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP1.to_vec()];
        config.ticketer =
            rustls::crypto::ring::Ticketer::new().map_err(|error| format!("TLS session tickets: {error}"))?;
        Ok(Arc::new(config))
    }
}

#[cfg(test)]
mod tests {
    use super::Identity;

    #[test]
    fn a_generated_identity_makes_a_server_config() {
        let identity = Identity::generate().unwrap();
        assert!(identity.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let config = identity.server_config().unwrap();
        assert_eq!(config.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
        assert!(!format!("{identity:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn bad_files_are_refused_naming_the_flag() {
        let dir = std::env::temp_dir().join(format!("pushlab-tls-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, "not a certificate").unwrap();
        std::fs::write(&key, Identity::generate().unwrap().key_pem).unwrap();
        let error = Identity::from_files(&cert, &key).unwrap_err();
        assert!(error.starts_with("--cert"), "{error}");
        let error = Identity::from_files(&dir.join("missing.pem"), &key).unwrap_err();
        assert!(error.starts_with("--cert") && error.contains("missing.pem"), "{error}");
        let good = Identity::generate().unwrap();
        std::fs::write(&cert, &good.cert_pem).unwrap();
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").unwrap();
        let error = Identity::from_files(&cert, &key).unwrap_err();
        assert!(error.starts_with("--key") || error.starts_with("--cert/--key"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
