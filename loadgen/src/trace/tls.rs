//! TLS on the wire, for `pushlab trace --tls`.
//!
//! Under TLS the socket carries records (RFC 8446 §5): a 5-byte header — content type,
//! a legacy version, a 16-bit length — then that many bytes. The hellos travel in the
//! clear as `handshake` records; from the ServerHello on, everything else is encrypted,
//! and TLS 1.3 sends every encrypted record as `application_data`, whatever it holds:
//! the rest of the handshake (certificate, finished), session tickets, alerts or HTTP.
//! Inside, after the content, one byte says the real content type, and a 16-byte AEAD
//! tag authenticates it all: 5 + 1 + 16 = 22 bytes that TLS adds to every record.
//!
//! Which encrypted record holds what cannot be seen from the wire, so the trace's own
//! client logs its session secrets (as browsers do for `SSLKEYLOGFILE`), and the records
//! are decrypted here with them: each record's content is then known exactly, and the
//! HTTP bytes inside are checked against what the client's HTTP layer itself recorded
//! above TLS.

use std::sync::{Mutex, PoisonError};

use ring::{aead, hkdf};

use super::{place, Direction, Kind, Part};

/// One secret the client's TLS library logged (the NSS key log format's line).
#[derive(Debug, Clone)]
pub struct Secret {
    /// `CLIENT_HANDSHAKE_TRAFFIC_SECRET`, `SERVER_TRAFFIC_SECRET_0`, …
    pub label: String,
    /// The ClientHello's random: which connection.
    pub client_random: Vec<u8>,
    /// The secret.
    pub secret: Vec<u8>,
}

/// Keeps what rustls logs (`ClientConfig::key_log`): only the trace's client has one.
#[derive(Debug, Default)]
pub struct KeyLog {
    secrets: Mutex<Vec<Secret>>,
}

impl KeyLog {
    /// Everything logged so far.
    pub fn secrets(&self) -> Vec<Secret> {
        self.secrets.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl rustls::KeyLog for KeyLog {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        let secret =
            Secret { label: label.into(), client_random: client_random.into(), secret: secret.into() };
        self.secrets.lock().unwrap_or_else(PoisonError::into_inner).push(secret);
    }

    fn will_log(&self, _label: &str) -> bool {
        true
    }
}

/// Bytes of a record header.
const HEADER: usize = 5;
const CHANGE_CIPHER_SPEC: u8 = 20;
const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;
const APPLICATION_DATA: u8 = 23;

/// One record as it crossed: where its header starts, its type and length.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    offset: usize,
    content_type: u8,
    length: usize,
}

/// The complete records of a stream, and where an incomplete rest starts, if any.
fn records(stream: &[u8]) -> (Vec<Record>, Option<usize>) {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < stream.len() {
        let rest = &stream[pos..];
        if rest.len() < HEADER {
            return (out, Some(pos));
        }
        let length = u16::from_be_bytes([rest[3], rest[4]]) as usize;
        if rest.len() < HEADER + length {
            return (out, Some(pos));
        }
        out.push(Record { offset: pos, content_type: rest[0], length });
        pos += HEADER + length;
    }
    (out, None)
}

/// The ClientHello's random (RFC 8446 §4.1.2), which names the connection in the key log.
fn client_random(up: &[u8]) -> Option<Vec<u8>> {
    // Record header 5, handshake type 1 and length 3, legacy_version 2, then 32 bytes.
    (up.first() == Some(&HANDSHAKE) && up.get(5) == Some(&1)).then(|| up.get(11..43).map(<[u8]>::to_vec))?
}

/// The cipher suite the ServerHello chose.
fn cipher_suite(down: &[u8]) -> Option<u16> {
    if down.first() != Some(&HANDSHAKE) || down.get(5) != Some(&2) {
        return None;
    }
    // After legacy_version (2) and random (32): the session id, then the suite.
    let session_id = *down.get(43)? as usize;
    let at = 44 + session_id;
    Some(u16::from_be_bytes([*down.get(at)?, *down.get(at + 1)?]))
}

/// A TLS 1.3 cipher suite's AEAD and hash.
fn suite(id: u16) -> Option<(&'static aead::Algorithm, hkdf::Algorithm)> {
    match id {
        0x1301 => Some((&aead::AES_128_GCM, hkdf::HKDF_SHA256)),
        0x1302 => Some((&aead::AES_256_GCM, hkdf::HKDF_SHA384)),
        0x1303 => Some((&aead::CHACHA20_POLY1305, hkdf::HKDF_SHA256)),
        _ => None,
    }
}

/// One direction's traffic keys: a key, an IV, the record sequence number.
struct Keys {
    key: aead::LessSafeKey,
    iv: [u8; aead::NONCE_LEN],
    sequence: u64,
}

struct Length(usize);

impl hkdf::KeyType for Length {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Expand-Label (RFC 8446 §7.1) with an empty context.
fn expand_label(hash: hkdf::Algorithm, secret: &[u8], label: &[u8], len: usize) -> Option<Vec<u8>> {
    let prk = hkdf::Prk::new_less_safe(hash, secret);
    let length = (len as u16).to_be_bytes();
    let label_length = [(6 + label.len()) as u8];
    let info: [&[u8]; 5] = [&length, &label_length, b"tls13 ", label, &[0]];
    let okm = prk.expand(&info, Length(len)).ok()?;
    let mut out = vec![0; len];
    okm.fill(&mut out).ok()?;
    Some(out)
}

impl Keys {
    /// The keys a traffic secret stands for (RFC 8446 §7.3).
    fn from_secret(suite_id: u16, secret: &[u8]) -> Option<Keys> {
        let (algorithm, hash) = suite(suite_id)?;
        let key = expand_label(hash, secret, b"key", algorithm.key_len())?;
        let iv = expand_label(hash, secret, b"iv", aead::NONCE_LEN)?;
        let key = aead::LessSafeKey::new(aead::UnboundKey::new(algorithm, &key).ok()?);
        Some(Keys { key, iv: iv.try_into().ok()?, sequence: 0 })
    }

    /// Decrypts one record: its real content type and content, or `None` if these keys
    /// are not the record's.
    fn open(&mut self, header: &[u8], sealed: &[u8]) -> Option<(u8, Vec<u8>)> {
        let mut nonce = self.iv;
        for (n, s) in nonce[4..].iter_mut().zip(self.sequence.to_be_bytes()) {
            *n ^= s;
        }
        let mut buffer = sealed.to_vec();
        let nonce = aead::Nonce::assume_unique_for_key(nonce);
        let opened = self.key.open_in_place(nonce, aead::Aad::from(header), &mut buffer).ok()?.len();
        buffer.truncate(opened);
        // Zero padding may follow the content type byte; rustls sends none.
        let type_at = buffer.iter().rposition(|&b| b != 0)?;
        let content_type = buffer[type_at];
        buffer.truncate(type_at);
        self.sequence += 1;
        Some((content_type, buffer))
    }
}

/// One direction's secrets for a connection, from the key log.
pub struct Secrets {
    suite: u16,
    handshake: Option<Vec<u8>>,
    application: Option<Vec<u8>>,
}

/// The secrets of the connection whose client sent `up` and whose server sent `down`,
/// for `direction`: `None` without a ClientHello, a TLS 1.3 suite or logged secrets.
pub fn secrets(up: &[u8], down: &[u8], log: &[Secret], direction: Direction) -> Option<Secrets> {
    let random = client_random(up)?;
    let suite_id = cipher_suite(down)?;
    suite(suite_id)?;
    let side = if direction == Direction::Up { "CLIENT" } else { "SERVER" };
    let find = |label: String| {
        log.iter().find(|s| s.client_random == random && s.label == label).map(|s| s.secret.clone())
    };
    let handshake = find(format!("{side}_HANDSHAKE_TRAFFIC_SECRET"));
    let application = find(format!("{side}_TRAFFIC_SECRET_0"));
    (handshake.is_some() || application.is_some()).then_some(Secrets {
        suite: suite_id,
        handshake,
        application,
    })
}

/// What TLS added to one direction, for the totals.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Overhead {
    /// Every byte on the wire.
    pub wire_bytes: usize,
    /// The HTTP bytes inside the records.
    pub http_bytes: usize,
    /// Records that carried HTTP.
    pub http_records: usize,
    /// Their headers, inner content types and tags.
    pub http_record_framing: usize,
    /// Records of the handshake, session tickets, change_cipher_spec and alerts, whole.
    pub other_records: usize,
    /// Their bytes, headers and tags included.
    pub other_record_bytes: usize,
    /// Bytes of records that could not be decrypted (no secrets: not TLS 1.3).
    pub sealed_bytes: usize,
}

/// One direction of a TLS connection as parts: every record's header, its content and
/// its inner type and tag; inside the records that carry HTTP, `http` (parts of the
/// decrypted HTTP stream, offsets in it) placed one level deeper. Returns the parts, the
/// HTTP bytes the records held (to compare with what the client recorded), and what
/// TLS added. Nothing here panics on truncated or garbage input.
pub fn decode(
    wire: &[u8],
    direction: Direction,
    secrets: Option<Secrets>,
    http: Vec<Part>,
) -> (Vec<Part>, Vec<u8>, Overhead) {
    let part = |offset: usize, len: usize, label: String, kind: Kind, shown: Option<String>| Part {
        direction,
        offset,
        bytes: wire[offset..offset + len].to_vec(),
        label,
        kind,
        depth: 1,
        shown,
    };
    let (records, rest) = records(wire);
    let mut keys = secrets.as_ref().map(|s| {
        let make = |secret: &Option<Vec<u8>>| secret.as_ref().and_then(|s2| Keys::from_secret(s.suite, s2));
        (make(&s.handshake), make(&s.application))
    });
    let mut parts = Vec::new();
    let mut plaintext = Vec::new();
    // Where each record's HTTP bytes sit: `(wire offset, offset in the HTTP, length)`.
    let mut segments = Vec::new();
    let mut overhead = Overhead { wire_bytes: wire.len(), ..Overhead::default() };
    // A handshake message longer than what is left of its record goes on in the next.
    let mut message_rest = 0usize;
    for record in &records {
        let header = &wire[record.offset..record.offset + HEADER];
        let body_at = record.offset + HEADER;
        let body = &wire[body_at..body_at + record.length];
        let whole = HEADER + record.length;
        let mut header_part = Part {
            depth: 0,
            ..part(
                record.offset,
                HEADER,
                format!("TLS record: {}, {} B follow", content_type_name(record.content_type), record.length),
                Kind::TlsFraming,
                Some(hex(header)),
            )
        };
        let opened = match (&mut keys, record.content_type) {
            (Some((handshake, application)), APPLICATION_DATA) => {
                // Handshake keys until that side's Finished, application keys after.
                match handshake.as_mut().and_then(|k| k.open(header, body)) {
                    Some(opened) => Some(opened),
                    None => {
                        let opened = application.as_mut().and_then(|k| k.open(header, body));
                        if opened.is_some() {
                            // That side has finished its handshake: no record is under
                            // those keys again.
                            *handshake = None;
                        }
                        opened
                    }
                }
            }
            _ => None,
        };
        match (record.content_type, opened) {
            (APPLICATION_DATA, Some((inner_type, content))) => {
                let trailer = record.length - content.len();
                if inner_type == APPLICATION_DATA {
                    segments.push((body_at, plaintext.len(), content.len()));
                    plaintext.extend_from_slice(&content);
                    overhead.http_bytes += content.len();
                    overhead.http_records += 1;
                    overhead.http_record_framing += HEADER + trailer;
                    header_part.label = format!("TLS record: application_data, {} B of HTTP", content.len());
                } else {
                    overhead.other_records += 1;
                    overhead.other_record_bytes += whole;
                    header_part.label = format!(
                        "TLS record: encrypted {}, {} B",
                        content_type_name(inner_type),
                        content.len()
                    );
                    parts.extend(inner_content(
                        inner_type,
                        &content,
                        body_at,
                        true,
                        &mut message_rest,
                        direction,
                    ));
                }
                parts.push(header_part);
                parts.push(part(
                    body_at + content.len(),
                    trailer,
                    format!("inner type {}, {} B tag", content_type_name(inner_type), trailer - 1),
                    Kind::TlsFraming,
                    Some(format!("TLS added {} B to this record (header, type, tag)", HEADER + trailer)),
                ));
            }
            (APPLICATION_DATA, None) => {
                overhead.sealed_bytes += record.length;
                overhead.other_record_bytes += HEADER;
                parts.push(header_part);
                if record.length > 0 {
                    parts.push(part(
                        body_at,
                        record.length,
                        "encrypted, not decrypted".into(),
                        Kind::TlsOpaque,
                        None,
                    ));
                }
            }
            (content_type, _) => {
                overhead.other_records += 1;
                overhead.other_record_bytes += whole;
                parts.push(header_part);
                parts.extend(inner_content(content_type, body, body_at, false, &mut message_rest, direction));
            }
        }
    }
    if let Some(from) = rest {
        overhead.other_record_bytes += wire.len() - from;
        let label = "incomplete TLS record (the trace ended)".to_string();
        parts.push(Part { depth: 0, ..part(from, wire.len() - from, label, Kind::TlsFraming, None) });
    }
    parts.extend(place(http, &segments, 1));
    parts.sort_by_key(|p| p.offset);
    (parts, plaintext, overhead)
}

/// The content of a record that is not HTTP: handshake messages, change_cipher_spec or
/// an alert, as parts at `at` on the wire.
fn inner_content(
    content_type: u8,
    content: &[u8],
    at: usize,
    encrypted: bool,
    message_rest: &mut usize,
    direction: Direction,
) -> Vec<Part> {
    let part = |from: usize, len: usize, label: String| Part {
        direction,
        offset: at + from,
        bytes: content[from..from + len].to_vec(),
        label,
        kind: Kind::TlsHandshake,
        depth: 1,
        shown: None,
    };
    let sealed = if encrypted { ", encrypted" } else { "" };
    let mut parts = Vec::new();
    if content.is_empty() {
        return parts;
    }
    match content_type {
        HANDSHAKE => {
            let mut pos = 0;
            if *message_rest > 0 {
                let n = (*message_rest).min(content.len());
                parts.push(part(0, n, format!("the message goes on, {n} B{sealed}")));
                *message_rest -= n;
                pos = n;
            }
            while pos < content.len() {
                let rest = &content[pos..];
                if rest.len() < 4 {
                    parts.push(part(pos, rest.len(), "part of a message header".into()));
                    break;
                }
                let length = u32::from_be_bytes([0, rest[1], rest[2], rest[3]]) as usize;
                let n = (4 + length).min(rest.len());
                *message_rest = 4 + length - n;
                let name = handshake_name(rest[0]);
                let more = if *message_rest > 0 { ", goes on in the next record" } else { "" };
                parts.push(part(pos, n, format!("{name}, {} B{sealed}{more}", 4 + length)));
                pos += n;
            }
        }
        CHANGE_CIPHER_SPEC => {
            parts.push(part(0, content.len(), "change_cipher_spec (TLS 1.3: compatibility only)".into()))
        }
        ALERT if content.len() == 2 => {
            let level = if content[0] == 2 { "fatal" } else { "warning" };
            parts.push(part(0, 2, format!("alert{sealed}: {level} {}", alert_name(content[1]))))
        }
        other => parts.push(part(0, content.len(), format!("{}{sealed}", content_type_name(other)))),
    }
    parts
}

fn content_type_name(content_type: u8) -> String {
    match content_type {
        CHANGE_CIPHER_SPEC => "change_cipher_spec".into(),
        ALERT => "alert".into(),
        HANDSHAKE => "handshake".into(),
        APPLICATION_DATA => "application_data".into(),
        other => format!("unknown content type {other}"),
    }
}

fn handshake_name(message_type: u8) -> String {
    match message_type {
        1 => "ClientHello".into(),
        2 => "ServerHello".into(),
        4 => "NewSessionTicket".into(),
        5 => "EndOfEarlyData".into(),
        8 => "EncryptedExtensions".into(),
        11 => "Certificate".into(),
        13 => "CertificateRequest".into(),
        15 => "CertificateVerify".into(),
        20 => "Finished".into(),
        24 => "KeyUpdate".into(),
        other => format!("handshake message {other}"),
    }
}

fn alert_name(description: u8) -> String {
    match description {
        0 => "close_notify".into(),
        10 => "unexpected_message".into(),
        20 => "bad_record_mac".into(),
        40 => "handshake_failure".into(),
        42 => "bad_certificate".into(),
        48 => "unknown_ca".into(),
        80 => "internal_error".into(),
        90 => "user_canceled".into(),
        120 => "no_application_protocol".into(),
        other => format!("alert {other}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(content_type: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![content_type, 3, 3];
        out.extend((body.len() as u16).to_be_bytes());
        out.extend(body);
        out
    }

    fn total(parts: &[Part]) -> usize {
        parts.iter().map(|p| p.bytes.len()).sum()
    }

    /// A record sealed as TLS 1.3 does, with keys from `secret`.
    fn seal(secret: &[u8], sequence: u64, inner_type: u8, content: &[u8]) -> Vec<u8> {
        let (algorithm, hash) = suite(0x1301).unwrap();
        let key = expand_label(hash, secret, b"key", 16).unwrap();
        let iv = expand_label(hash, secret, b"iv", 12).unwrap();
        let key = aead::LessSafeKey::new(aead::UnboundKey::new(algorithm, &key).unwrap());
        let mut nonce: [u8; 12] = iv.try_into().unwrap();
        for (n, s) in nonce[4..].iter_mut().zip(sequence.to_be_bytes()) {
            *n ^= s;
        }
        let mut buffer = content.to_vec();
        buffer.push(inner_type);
        let length = (buffer.len() + 16) as u16;
        let mut header = vec![APPLICATION_DATA, 3, 3];
        header.extend(length.to_be_bytes());
        key.seal_in_place_append_tag(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::from(&header),
            &mut buffer,
        )
        .unwrap();
        header.extend(buffer);
        header
    }

    #[test]
    fn hkdf_expand_label_matches_rfc_8448() {
        // RFC 8448 §3, the server's handshake traffic secret and its write key and IV.
        let secret = hex_bytes("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38");
        assert_eq!(
            expand_label(hkdf::HKDF_SHA256, &secret, b"key", 16).unwrap(),
            hex_bytes("3fce516009c21727d0f2e4e86ee403bc")
        );
        assert_eq!(
            expand_label(hkdf::HKDF_SHA256, &secret, b"iv", 12).unwrap(),
            hex_bytes("5d313eb2671276ee13000b30")
        );
    }

    fn hex_bytes(text: &str) -> Vec<u8> {
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn records_decrypt_into_handshake_messages_and_http_with_what_tls_added() {
        let (handshake_secret, application_secret) = ([7u8; 32], [9u8; 32]);
        // A ServerHello (type 2) with an empty session id and suite 0x1301, in the clear.
        let mut hello = vec![2, 0, 0, 38, 3, 3];
        hello.extend([0u8; 32]);
        hello.extend([0, 0x13, 0x01, 0]);
        let mut wire = record(HANDSHAKE, &hello);
        wire.extend(record(CHANGE_CIPHER_SPEC, &[1]));
        // Finished (type 20) under the handshake keys; then HTTP under the application keys.
        wire.extend(seal(&handshake_secret, 0, HANDSHAKE, &[20, 0, 0, 2, 0xaa, 0xbb]));
        wire.extend(seal(&application_secret, 0, APPLICATION_DATA, b"HTTP/1.1 200 OK\r\n"));
        wire.extend(seal(&application_secret, 1, APPLICATION_DATA, b"\r\n"));
        let secrets = Secrets {
            suite: 0x1301,
            handshake: Some(handshake_secret.to_vec()),
            application: Some(application_secret.to_vec()),
        };
        let http = super::super::decode(b"HTTP/1.1 200 OK\r\n\r\n", Direction::Down);
        let (parts, plaintext, overhead) = decode(&wire, Direction::Down, Some(secrets), http);
        assert_eq!(plaintext, b"HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(total(&parts), wire.len());
        let labels: Vec<&str> = parts.iter().map(|p| p.label.as_str()).collect();
        assert!(labels.contains(&"ServerHello, 42 B"), "{labels:?}");
        assert!(labels.contains(&"Finished, 6 B, encrypted"), "{labels:?}");
        assert!(labels.contains(&"TLS record: application_data, 17 B of HTTP"), "{labels:?}");
        let status = parts.iter().find(|p| p.label == "status line").unwrap();
        // After the ServerHello (47 B), change_cipher_spec (6 B) and Finished (28 B), past
        // the fourth record's header.
        assert_eq!((status.depth, status.offset), (1, 47 + 6 + 28 + 5));
        assert_eq!(
            overhead,
            Overhead {
                wire_bytes: wire.len(),
                http_bytes: 19,
                http_records: 2,
                http_record_framing: 44,
                other_records: 3,
                other_record_bytes: 5 + 42 + 6 + 5 + 6 + 17,
                sealed_bytes: 0,
            }
        );
    }

    #[test]
    fn truncated_garbage_and_undecryptable_records_keep_every_byte_without_panicking() {
        let mut wire = record(HANDSHAKE, &[1, 0, 0, 200, 3, 3]);
        wire.extend(record(APPLICATION_DATA, &[0x55; 40]));
        for cut in 0..=wire.len() {
            let (parts, _, _) = decode(&wire[..cut], Direction::Up, None, Vec::new());
            assert_eq!(total(&parts), cut, "cut at {cut}");
            let keys = Secrets { suite: 0x1301, handshake: Some(vec![1; 32]), application: None };
            let (parts, plaintext, _) = decode(&wire[..cut], Direction::Up, Some(keys), Vec::new());
            assert_eq!((total(&parts), plaintext.len()), (cut, 0), "cut at {cut}");
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..200 {
            let garbage: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let (parts, _, _) = decode(&garbage, Direction::Down, None, Vec::new());
            assert_eq!(total(&parts), len);
            assert!(client_random(&garbage).is_none() || garbage[0] == HANDSHAKE);
            let _ = cipher_suite(&garbage);
        }
    }
}
