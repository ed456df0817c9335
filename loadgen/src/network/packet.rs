//! What the link reads from each packet: its size, and what kind of TCP segment it is.
//!
//! A TUN device hands the link bare IPv4 packets (no Ethernet header). The few fields
//! needed sit at fixed offsets (RFC 791, RFC 9293), so they are read directly here:
//! this runs for every packet on the link's hot path, and reading six fields is clearer
//! to a student than a general parser's types.

use std::collections::HashMap;

/// One packet as the link counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    /// The whole IP packet, header included.
    pub ip_bytes: usize,
    /// TCP payload bytes (0 for a pure ACK or a non-TCP packet).
    pub payload_bytes: usize,
    /// What the segment does.
    pub kind: Kind,
    /// Whether it carries bytes (or a FIN) this flow has sent before.
    pub retransmission: bool,
}

/// What a packet is, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// SYN or SYN-ACK: opening a connection.
    Handshake,
    /// FIN or RST: closing one.
    Teardown,
    /// An ACK with no payload: TCP's acknowledgement traffic.
    PureAck,
    /// A segment carrying payload.
    Data,
    /// Not IPv4/TCP (the namespaces carry nothing else, but the link forwards and counts
    /// whatever comes).
    Other,
}

const SYN: u8 = 0x02;
const FIN: u8 = 0x01;
const RST: u8 = 0x04;

/// The TCP header fields of an IPv4 packet: (source port, destination port, sequence
/// number, flags, payload length), or `None` when it is not a whole IPv4/TCP packet.
fn tcp_fields(ip: &[u8]) -> Option<(u16, u16, u32, u8, usize)> {
    if ip.len() < 20 || ip[0] >> 4 != 4 || ip[9] != 6 {
        return None;
    }
    let ip_header = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).min(ip.len());
    let tcp = ip.get(ip_header..total)?;
    if tcp.len() < 20 {
        return None;
    }
    let tcp_header = usize::from(tcp[12] >> 4) * 4;
    let payload = tcp.len().checked_sub(tcp_header)?;
    let port = |at: usize| u16::from_be_bytes([tcp[at], tcp[at + 1]]);
    let seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
    Some((port(0), port(2), seq, tcp[13], payload))
}

/// Remembers, per flow, how far each sender's sequence numbers have reached, to tell a
/// retransmission (a sequence range seen before) from new data. One tracker per
/// direction; on this link a flow is identified by its two ports (every packet has the
/// same two addresses).
#[derive(Debug, Default)]
pub struct Classifier {
    /// (source port, destination port) → the sequence number after the last byte sent.
    sent_up_to: HashMap<(u16, u16), u32>,
}

/// Flows remembered at most; past it the map starts again (a retransmission of a
/// forgotten flow then counts as new data). 20,000 open files bound the clients anyway.
const MAX_FLOWS: usize = 1 << 17;

impl Classifier {
    /// Reads one packet and updates the flow's state.
    pub fn classify(&mut self, ip: &[u8]) -> Packet {
        let Some((source, destination, seq, flags, payload)) = tcp_fields(ip) else {
            return Packet { ip_bytes: ip.len(), payload_bytes: 0, kind: Kind::Other, retransmission: false };
        };
        let kind = if flags & SYN != 0 {
            Kind::Handshake
        } else if flags & (FIN | RST) != 0 {
            Kind::Teardown
        } else if payload == 0 {
            Kind::PureAck
        } else {
            Kind::Data
        };
        let flow = (source, destination);
        // SYN and FIN each take one sequence number.
        let length = payload as u32 + u32::from(flags & (SYN | FIN) != 0);
        let retransmission = if flags & SYN != 0 {
            // A new connection (or a repeated SYN): start the flow here.
            let again = self.sent_up_to.get(&flow) == Some(&seq.wrapping_add(1));
            self.remember(flow, seq.wrapping_add(1));
            again
        } else if flags & RST != 0 {
            self.sent_up_to.remove(&flow);
            false
        } else if length == 0 {
            false
        } else {
            let end = seq.wrapping_add(length);
            match self.sent_up_to.get(&flow) {
                // Serial-number arithmetic (RFC 1982): `seq` before the mark means these
                // bytes went out already.
                Some(&mark) if (mark.wrapping_sub(seq) as i32) > 0 => {
                    if (end.wrapping_sub(mark) as i32) > 0 {
                        self.remember(flow, end);
                    }
                    true
                }
                _ => {
                    self.remember(flow, end);
                    false
                }
            }
        };
        Packet { ip_bytes: ip.len(), payload_bytes: payload, kind, retransmission }
    }

    fn remember(&mut self, flow: (u16, u16), mark: u32) {
        if self.sent_up_to.len() >= MAX_FLOWS && !self.sent_up_to.contains_key(&flow) {
            self.sent_up_to.clear();
        }
        self.sent_up_to.insert(flow, mark);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An IPv4/TCP packet with a 20-byte IP header and a 32-byte TCP header (timestamps,
    /// as Linux sends), carrying `payload` bytes.
    pub(crate) fn segment(ports: (u16, u16), seq: u32, flags: u8, payload: usize) -> Vec<u8> {
        let total = 20 + 32 + payload;
        let mut p = vec![0u8; total];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p[9] = 6;
        p[20..22].copy_from_slice(&ports.0.to_be_bytes());
        p[22..24].copy_from_slice(&ports.1.to_be_bytes());
        p[24..28].copy_from_slice(&seq.to_be_bytes());
        p[32] = 8 << 4;
        p[33] = flags | 0x10;
        p
    }

    #[test]
    fn each_kind_of_segment_is_told_apart() {
        let mut c = Classifier::default();
        let syn = c.classify(&segment((40000, 80), 99, SYN, 0));
        assert_eq!((syn.kind, syn.ip_bytes, syn.retransmission), (Kind::Handshake, 52, false));
        let data = c.classify(&segment((40000, 80), 100, 0, 300));
        assert_eq!((data.kind, data.payload_bytes, data.retransmission), (Kind::Data, 300, false));
        assert_eq!(c.classify(&segment((40000, 80), 400, 0, 0)).kind, Kind::PureAck);
        assert_eq!(c.classify(&segment((40000, 80), 400, FIN, 0)).kind, Kind::Teardown);
        assert_eq!(c.classify(&[0x60, 0, 0, 0]).kind, Kind::Other);
        // A truncated header is counted as bytes, never read past its end.
        assert_eq!(c.classify(&segment((1, 2), 0, 0, 0)[..30]).kind, Kind::Other);
    }

    #[test]
    fn a_sequence_range_seen_before_is_a_retransmission() {
        let mut c = Classifier::default();
        c.classify(&segment((40000, 80), 0, SYN, 0));
        assert!(!c.classify(&segment((40000, 80), 1, 0, 100)).retransmission);
        assert!(!c.classify(&segment((40000, 80), 101, 0, 100)).retransmission);
        // The first segment again, and a repacketised overlap of both.
        assert!(c.classify(&segment((40000, 80), 1, 0, 100)).retransmission);
        assert!(c.classify(&segment((40000, 80), 51, 0, 200)).retransmission);
        // New data after it is new; the other direction's flow is its own.
        assert!(!c.classify(&segment((40000, 80), 251, 0, 10)).retransmission);
        assert!(!c.classify(&segment((80, 40000), 1, 0, 100)).retransmission);
        // The same SYN twice: the handshake was retransmitted.
        c.classify(&segment((40001, 80), 7, SYN, 0));
        assert!(c.classify(&segment((40001, 80), 7, SYN, 0)).retransmission);
    }

    #[test]
    fn sequence_numbers_wrap_around() {
        let mut c = Classifier::default();
        c.classify(&segment((5, 6), u32::MAX - 50, SYN, 0));
        assert!(!c.classify(&segment((5, 6), u32::MAX - 49, 0, 100)).retransmission);
        assert!(!c.classify(&segment((5, 6), 50, 0, 100)).retransmission);
        assert!(c.classify(&segment((5, 6), u32::MAX - 49, 0, 100)).retransmission);
    }
}
