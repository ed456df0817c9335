//! The packet link: one thread per direction moves IP packets from one TUN device to
//! the other, and on the way delays, paces, drops and counts each of them.
//!
//! ```text
//!  server namespace                                            clients' namespace
//!  pl-server (TUN) ─read─▶ [loss] ▶ [queue ▶ bandwidth] ▶ [delay + jitter] ─write─▶ pl-clients (TUN)
//!                  ◀write─ ............ the same, the other way ........... ◀read─
//! ```
//!
//! Each packet is timestamped when read. Loss is decided first (as netem does), then the
//! packet waits in a drop-tail queue for the link to be free (`--bandwidth`; the queue
//! holds `--queue` packets and drops what comes when it is full), then travels for
//! half the RTT plus a jitter sample. Without `--reorder` no packet is delivered before
//! the one ahead of it, as on one physical path.
//!
//! Why threads and blocking system calls rather than tasks: the link must add as little
//! as it can to what it measures. A dedicated thread per direction sleeps in `ppoll`
//! with a nanosecond timeout (timer slack 1 µs), reads every packet that is waiting
//! before it writes, and never shares a lock with the load generator.

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BinaryHeap, VecDeque};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags};
use nix::sys::time::TimeSpec;
use serde::{Deserialize, Serialize};

use super::loss::{Dropper, Loss};
use super::packet::{Classifier, Kind};
use super::Network;

/// What one direction of the link counted, at one instant or over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectionCount {
    /// Packets the sender put on the link (dropped ones included: they were sent).
    pub packets: u64,
    /// Their IP bytes, headers included.
    pub ip_bytes: u64,
    /// Their TCP payload bytes.
    pub payload_bytes: u64,
    /// ACKs with no payload.
    pub pure_acks: u64,
    /// SYN and SYN-ACK packets.
    pub handshake_packets: u64,
    /// FIN and RST packets.
    pub teardown_packets: u64,
    /// Segments carrying a sequence range sent before.
    pub retransmitted_packets: u64,
    /// Dropped by the loss model.
    pub dropped_by_loss: u64,
    /// Dropped because the queue (or the link's delay line) was full.
    pub dropped_by_queue: u64,
}

impl DirectionCount {
    /// What was counted between `earlier` and `self`.
    pub fn since(&self, earlier: &DirectionCount) -> DirectionCount {
        DirectionCount {
            packets: self.packets - earlier.packets,
            ip_bytes: self.ip_bytes - earlier.ip_bytes,
            payload_bytes: self.payload_bytes - earlier.payload_bytes,
            pure_acks: self.pure_acks - earlier.pure_acks,
            handshake_packets: self.handshake_packets - earlier.handshake_packets,
            teardown_packets: self.teardown_packets - earlier.teardown_packets,
            retransmitted_packets: self.retransmitted_packets - earlier.retransmitted_packets,
            dropped_by_loss: self.dropped_by_loss - earlier.dropped_by_loss,
            dropped_by_queue: self.dropped_by_queue - earlier.dropped_by_queue,
        }
    }

    /// Both directions together.
    pub fn plus(&self, other: &DirectionCount) -> DirectionCount {
        DirectionCount {
            packets: self.packets + other.packets,
            ip_bytes: self.ip_bytes + other.ip_bytes,
            payload_bytes: self.payload_bytes + other.payload_bytes,
            pure_acks: self.pure_acks + other.pure_acks,
            handshake_packets: self.handshake_packets + other.handshake_packets,
            teardown_packets: self.teardown_packets + other.teardown_packets,
            retransmitted_packets: self.retransmitted_packets + other.retransmitted_packets,
            dropped_by_loss: self.dropped_by_loss + other.dropped_by_loss,
            dropped_by_queue: self.dropped_by_queue + other.dropped_by_queue,
        }
    }
}

/// The same counters, written by the direction's thread and read by anyone.
#[derive(Debug, Default)]
struct Counters {
    packets: AtomicU64,
    ip_bytes: AtomicU64,
    payload_bytes: AtomicU64,
    pure_acks: AtomicU64,
    handshake_packets: AtomicU64,
    teardown_packets: AtomicU64,
    retransmitted_packets: AtomicU64,
    dropped_by_loss: AtomicU64,
    dropped_by_queue: AtomicU64,
    /// The thread's CPU time, ns, updated every few hundred packets and when idle.
    cpu_ns: AtomicU64,
    /// Of it, in the kernel, ns.
    system_cpu_ns: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> DirectionCount {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        DirectionCount {
            packets: get(&self.packets),
            ip_bytes: get(&self.ip_bytes),
            payload_bytes: get(&self.payload_bytes),
            pure_acks: get(&self.pure_acks),
            handshake_packets: get(&self.handshake_packets),
            teardown_packets: get(&self.teardown_packets),
            retransmitted_packets: get(&self.retransmitted_packets),
            dropped_by_loss: get(&self.dropped_by_loss),
            dropped_by_queue: get(&self.dropped_by_queue),
        }
    }
}

/// Both directions' counts and the link's own CPU at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkSnapshot {
    /// Client → server.
    pub to_server: DirectionCount,
    /// Server → client.
    pub to_clients: DirectionCount,
    /// CPU seconds the link's threads have used.
    pub cpu_seconds: f64,
    /// Of it, in the kernel: mostly the receiving end's TCP/IP work, which a TUN write
    /// runs on the writer's thread (on a real network the receiver's machine does it).
    pub system_cpu_seconds: f64,
}

impl LinkSnapshot {
    /// Packets both ways.
    pub fn packets(&self) -> u64 {
        self.to_server.packets + self.to_clients.packets
    }

    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &LinkSnapshot) -> LinkSnapshot {
        LinkSnapshot {
            to_server: self.to_server.since(&earlier.to_server),
            to_clients: self.to_clients.since(&earlier.to_clients),
            cpu_seconds: self.cpu_seconds - earlier.cpu_seconds,
            system_cpu_seconds: self.system_cpu_seconds - earlier.system_cpu_seconds,
        }
    }
}

/// Which way a packet goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    ToServer,
    ToClients,
}

/// The running link: two threads, their counters, and the settings they follow.
#[derive(Debug)]
pub struct Link {
    settings: Arc<Settings>,
    to_server: Arc<Counters>,
    to_clients: Arc<Counters>,
}

/// The network the threads emulate, replaced between the runs of a sweep.
#[derive(Debug)]
struct Settings {
    network: Mutex<Network>,
    /// Bumped on every change, so the threads re-read the settings only then.
    generation: AtomicU64,
}

impl Link {
    /// Starts the two threads between the server's TUN device and the clients'.
    pub fn start(server_tun: OwnedFd, clients_tun: OwnedFd) -> std::io::Result<Link> {
        let server_tun = Arc::new(server_tun);
        let clients_tun = Arc::new(clients_tun);
        let settings =
            Arc::new(Settings { network: Mutex::new(Network::default()), generation: AtomicU64::new(1) });
        let to_server = Arc::new(Counters::default());
        let to_clients = Arc::new(Counters::default());
        for (direction, from, to, counters) in [
            (Direction::ToServer, clients_tun.clone(), server_tun.clone(), to_server.clone()),
            (Direction::ToClients, server_tun, clients_tun, to_clients.clone()),
        ] {
            let pipe = Pipe { direction, from, to, counters, settings: settings.clone() };
            std::thread::Builder::new().name(format!("link {direction:?}")).spawn(move || pipe.run())?;
        }
        Ok(Link { settings, to_server, to_clients })
    }

    /// Emulates `network` from now on (packets already on the link keep their times).
    pub fn set(&self, network: Network) {
        *self.settings.network.lock().expect("link settings") = network;
        self.settings.generation.fetch_add(1, Ordering::Release);
    }

    /// The counters now.
    pub fn snapshot(&self) -> LinkSnapshot {
        let both = |c: fn(&Counters) -> &AtomicU64| {
            (c(&self.to_server).load(Ordering::Relaxed) + c(&self.to_clients).load(Ordering::Relaxed)) as f64
                / 1e9
        };
        LinkSnapshot {
            to_server: self.to_server.snapshot(),
            to_clients: self.to_clients.snapshot(),
            cpu_seconds: both(|c| &c.cpu_ns),
            system_cpu_seconds: both(|c| &c.system_cpu_ns),
        }
    }
}

/// Packets read at most before the thread delivers what is due: enough to drain a burst
/// with few wake-ups, few enough that a due packet never waits long behind reads.
const READ_BATCH: usize = 64;
/// Packets on their way at most (the delay line): 65,536 × 1,500 B bounds its memory at
/// about 100 MB; beyond it packets are dropped and counted, as a router's buffer would.
const MAX_IN_FLIGHT: usize = 65_536;
/// Largest packet: the TUN devices' MTU is 1,500; a little room to spare.
const BUFFER: usize = 2048;

/// A packet on its way.
struct InFlight {
    due: Instant,
    /// Arrival order: breaks ties, and keeps FIFO order among equal due times.
    order: u64,
    bytes: Vec<u8>,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == CmpOrdering::Equal
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for InFlight {
    /// Reversed: `BinaryHeap` is a max-heap, and the earliest due must come out first.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (other.due, other.order).cmp(&(self.due, self.order))
    }
}

/// One direction.
struct Pipe {
    direction: Direction,
    from: Arc<OwnedFd>,
    to: Arc<OwnedFd>,
    counters: Arc<Counters>,
    settings: Arc<Settings>,
}

/// What a direction needs from the settings, re-read when they change.
struct Shape {
    one_way: Duration,
    jitter: Duration,
    reorder: bool,
    bytes_per_second: Option<u64>,
    queue_packets: usize,
    dropper: Dropper,
}

impl Shape {
    fn new(network: &Network, direction: Direction, generation: u64) -> Shape {
        let loss: Loss = match direction {
            Direction::ToServer => network.loss.to_server,
            Direction::ToClients => network.loss.to_clients,
        };
        // A fresh seed per direction and setting: runs differ, directions are independent.
        let seed = fastrand::u64(..) ^ generation;
        Shape {
            one_way: network.one_way(),
            jitter: network.jitter,
            reorder: network.reorder,
            bytes_per_second: network.bandwidth_bytes_per_second,
            queue_packets: network.queue_packets.max(1),
            dropper: Dropper::new(loss, seed),
        }
    }
}

impl Pipe {
    fn run(self) {
        // Timers wake the thread within 1 µs of their time instead of the default 50 µs.
        let _ = nix::sys::prctl::set_timerslack(1000);
        let mut generation = 0;
        let mut shape = Shape::new(&Network::default(), self.direction, 0);
        let mut classifier = Classifier::default();
        let mut in_flight: BinaryHeap<InFlight> = BinaryHeap::new();
        let mut spare: Vec<Vec<u8>> = Vec::new();
        // The bandwidth queue: when each packet in it will have left (ascending).
        let mut leaving: VecDeque<Instant> = VecDeque::new();
        let mut link_free = Instant::now();
        let mut last_due = Instant::now();
        let mut order = 0u64;
        let mut since_cpu_update = 0usize;
        let mut waiter = Waiter::new();
        loop {
            let now_generation = self.settings.generation.load(Ordering::Acquire);
            if now_generation != generation {
                generation = now_generation;
                let network = *self.settings.network.lock().expect("link settings");
                shape = Shape::new(&network, self.direction, generation);
            }
            let next_due = in_flight.peek().map(|p| p.due);
            let readable = waiter.wait_until(&*self.from, next_due);
            if !readable {
                // Only a timer woke us: record the CPU time now, while it costs nothing.
                self.counters.record_cpu();
            }
            // Read what is waiting, up to a batch.
            for _ in 0..READ_BATCH * usize::from(readable) {
                let mut buffer = spare.pop().unwrap_or_else(|| vec![0; BUFFER]);
                buffer.resize(BUFFER, 0);
                let Ok(n) = nix::unistd::read(&*self.from, &mut buffer) else {
                    // EAGAIN: nothing more waiting.
                    spare.push(buffer);
                    break;
                };
                buffer.truncate(n);
                let now = Instant::now();
                self.count(&mut classifier, &buffer);
                if shape.dropper.drops(now) {
                    self.counters.dropped_by_loss.fetch_add(1, Ordering::Relaxed);
                    spare.push(buffer);
                    continue;
                }
                // The bandwidth queue: serialised one after another at the link rate.
                let departs = match shape.bytes_per_second {
                    None => now,
                    Some(rate) => {
                        while leaving.front().is_some_and(|&t| t <= now) {
                            leaving.pop_front();
                        }
                        if leaving.len() >= shape.queue_packets {
                            self.counters.dropped_by_queue.fetch_add(1, Ordering::Relaxed);
                            spare.push(buffer);
                            continue;
                        }
                        link_free =
                            link_free.max(now) + Duration::from_secs_f64(buffer.len() as f64 / rate as f64);
                        leaving.push_back(link_free);
                        link_free
                    }
                };
                if in_flight.len() >= MAX_IN_FLIGHT {
                    self.counters.dropped_by_queue.fetch_add(1, Ordering::Relaxed);
                    spare.push(buffer);
                    continue;
                }
                let jitter = match shape.jitter.is_zero() {
                    true => Duration::ZERO,
                    false => shape.jitter.mul_f64(fastrand::f64()),
                };
                let mut due = departs + shape.one_way + jitter;
                if !shape.reorder {
                    due = due.max(last_due);
                    last_due = due;
                }
                order += 1;
                in_flight.push(InFlight { due, order, bytes: buffer });
            }
            // Deliver what is due.
            let now = Instant::now();
            while in_flight.peek().is_some_and(|p| p.due <= now) {
                let packet = in_flight.pop().expect("peeked");
                self.deliver(&packet.bytes);
                spare.push(packet.bytes);
                since_cpu_update += 1;
            }
            if since_cpu_update >= 256 {
                since_cpu_update = 0;
                self.counters.record_cpu();
            }
            spare.truncate(1024);
        }
    }

    /// Writes one packet out. A TUN write injects it and does not block; a device that
    /// is momentarily full (the test sockets standing in for TUN devices can be) is
    /// retried for up to 10 ms, then the packet is counted as dropped by a queue, never
    /// lost unsaid. Another error (the namespace going away) loses it, as a link that
    /// went down would.
    fn deliver(&self, packet: &[u8]) {
        let started = Instant::now();
        loop {
            match nix::unistd::write(&*self.to, packet) {
                Err(nix::errno::Errno::EAGAIN) if started.elapsed() < Duration::from_millis(10) => {
                    std::thread::yield_now()
                }
                Err(nix::errno::Errno::EAGAIN) => {
                    self.counters.dropped_by_queue.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                _ => return,
            }
        }
    }

    fn count(&self, classifier: &mut Classifier, bytes: &[u8]) {
        let packet = classifier.classify(bytes);
        let c = &self.counters;
        c.packets.fetch_add(1, Ordering::Relaxed);
        c.ip_bytes.fetch_add(packet.ip_bytes as u64, Ordering::Relaxed);
        c.payload_bytes.fetch_add(packet.payload_bytes as u64, Ordering::Relaxed);
        let kind = match packet.kind {
            Kind::Handshake => Some(&c.handshake_packets),
            Kind::Teardown => Some(&c.teardown_packets),
            Kind::PureAck => Some(&c.pure_acks),
            Kind::Data | Kind::Other => None,
        };
        if let Some(counter) = kind {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        if packet.retransmission {
            c.retransmitted_packets.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A timed wait that ends on time. Timers on the virtual machines this was built on
/// fire late, by about 90 µs plus 1 % of the wait (a 20 ms sleep wakes 250 µs late),
/// which would add up to a millisecond to a 100 ms round trip; wake-ups on readiness are
/// not late (5 µs per transit at zero delay). So the wait sleeps in stages, each aiming
/// early by the lateness expected of it, and spins only the last stretch, shorter than
/// one timer's lateness.
struct Waiter {
    /// The lateness of a short sleep, learnt from the sleeps so far.
    base_lateness: Duration,
}

impl Waiter {
    fn new() -> Waiter {
        Waiter { base_lateness: Duration::from_micros(100) }
    }

    /// How late a sleep of `d` is expected to wake: the base plus 1/64 of it.
    fn expected_lateness(&self, d: Duration) -> Duration {
        self.base_lateness + d / 64
    }

    /// Waits until `fd` is readable or `due` comes (`None`: no deadline). Returns whether
    /// it is readable.
    fn wait_until(&mut self, fd: &impl AsFd, due: Option<Instant>) -> bool {
        let poll = |timeout: Option<Duration>| {
            let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
            nix::poll::ppoll(&mut fds, timeout.map(TimeSpec::from_duration), None)
                .is_ok_and(|ready| ready > 0)
        };
        let Some(due) = due else { return poll(None) };
        loop {
            let now = Instant::now();
            let Some(left) = due.checked_duration_since(now).filter(|d| !d.is_zero()) else {
                return poll(Some(Duration::ZERO));
            };
            let lateness = self.expected_lateness(left);
            if left <= lateness + Duration::from_micros(20) {
                break;
            }
            let sleep = left - lateness;
            if poll(Some(sleep)) {
                return true;
            }
            // Learn the base from this sleep: quickly up (a late packet costs latency),
            // slowly down (an early wake only costs a little spinning).
            let late = Instant::now().saturating_duration_since(now + sleep).saturating_sub(sleep / 64);
            let late = late.min(Duration::from_millis(2));
            self.base_lateness = match late > self.base_lateness {
                true => late,
                false => self.base_lateness - (self.base_lateness - late) / 8,
            };
        }
        loop {
            if poll(Some(Duration::ZERO)) {
                return true;
            }
            if Instant::now() >= due {
                return false;
            }
            std::hint::spin_loop();
        }
    }
}

impl Counters {
    /// Stores the calling thread's CPU time, user and system (µs resolution).
    fn record_cpu(&self) {
        use nix::sys::resource::{getrusage, UsageWho};
        let Ok(usage) = getrusage(UsageWho::RUSAGE_THREAD) else { return };
        let ns = |t: nix::sys::time::TimeVal| (t.tv_sec() as u64 * 1_000_000 + t.tv_usec() as u64) * 1000;
        let system = ns(usage.system_time());
        self.system_cpu_ns.store(system, Ordering::Relaxed);
        self.cpu_ns.store(ns(usage.user_time()) + system, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::loss::Loss;
    use crate::network::packet::tests::segment;
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

    /// A link between two datagram socket pairs standing in for the TUN devices (a
    /// datagram keeps a packet's boundaries, as a TUN device does), so the link's logic
    /// is tested without root. Returns (server side, clients side, link).
    fn link(network: Network) -> (OwnedFd, OwnedFd, Link) {
        let pair =
            || socketpair(AddressFamily::Unix, SockType::Datagram, None, SockFlag::SOCK_NONBLOCK).unwrap();
        let (server, server_link) = pair();
        let (clients, clients_link) = pair();
        let link = Link::start(server_link, clients_link).unwrap();
        link.set(network);
        // Let the threads see the settings before the first packet.
        std::thread::sleep(Duration::from_millis(20));
        (server, clients, link)
    }

    /// Packets as they arrived, with their arrival times.
    type Arrivals = Vec<(Instant, Vec<u8>)>;

    /// Reads every packet that arrives at `fd` within `within`, with its arrival time,
    /// on a thread of its own: a datagram socket queues only 10 packets
    /// (`net.unix.max_dgram_qlen`), so the reader must keep up while the test writes.
    fn receive(fd: OwnedFd, within: Duration) -> std::thread::JoinHandle<(OwnedFd, Arrivals)> {
        std::thread::spawn(move || {
            let deadline = Instant::now() + within;
            let mut got = Vec::new();
            let mut buffer = [0u8; BUFFER];
            while Instant::now() < deadline {
                match nix::unistd::read(&fd, &mut buffer) {
                    Ok(n) => got.push((Instant::now(), buffer[..n].to_vec())),
                    Err(_) => std::thread::yield_now(),
                }
            }
            (fd, got)
        })
    }

    /// Writes one packet, waiting while the link has not read the ones before.
    fn send(fd: &OwnedFd, packet: &[u8]) {
        while nix::unistd::write(fd, packet).is_err() {
            std::thread::yield_now();
        }
    }

    /// Packet `i` of a flow: a data segment whose sequence number says which it was.
    fn numbered(i: u32, payload: usize) -> Vec<u8> {
        segment((80, 40000), 1 + i * payload as u32, 0, payload)
    }

    fn number(packet: &[u8], payload: usize) -> u32 {
        (u32::from_be_bytes([packet[24], packet[25], packet[26], packet[27]]) - 1) / payload as u32
    }

    #[test]
    fn each_packet_takes_one_transit_and_keeps_its_place() {
        let network = Network {
            rtt: Duration::from_millis(40),
            jitter: Duration::from_millis(10),
            ..Default::default()
        };
        let (server, clients, link) = link(network);
        let arrivals = receive(clients, Duration::from_millis(200));
        let sent = Instant::now();
        for i in 0..50 {
            send(&server, &numbered(i, 100));
        }
        let (_, got) = arrivals.join().unwrap();
        assert_eq!(got.len(), 50);
        // Never before one transit (20 ms); never out of order without --reorder.
        assert!(got.iter().all(|(at, _)| *at >= sent + Duration::from_millis(20)));
        let order: Vec<u32> = got.iter().map(|(_, p)| number(p, 100)).collect();
        assert_eq!(order, (0..50).collect::<Vec<_>>());
        let counted = link.snapshot().to_clients;
        assert_eq!((counted.packets, counted.payload_bytes, counted.ip_bytes), (50, 5000, 50 * 152));
        assert_eq!(link.snapshot().to_server, DirectionCount::default());
    }

    #[test]
    fn with_reorder_jitter_lets_packets_overtake() {
        let network = Network { jitter: Duration::from_millis(20), reorder: true, ..Default::default() };
        let (server, clients, _link) = link(network);
        let arrivals = receive(clients, Duration::from_millis(150));
        for i in 0..200 {
            send(&server, &numbered(i, 10));
        }
        let order: Vec<u32> = arrivals.join().unwrap().1.iter().map(|(_, p)| number(p, 10)).collect();
        assert_eq!(order.len(), 200);
        assert!(
            order.windows(2).any(|w| w[1] < w[0]),
            "200 packets with 20 ms of jitter all kept their order"
        );
    }

    #[test]
    fn a_full_queue_drops_what_comes_and_the_rest_is_paced() {
        // 1,052-byte packets at 105,200 B/s: 10 ms each. A queue of 10 holds 100 ms.
        let network =
            Network { bandwidth_bytes_per_second: Some(105_200), queue_packets: 10, ..Default::default() };
        let (server, clients, link) = link(network);
        let arrivals = receive(clients, Duration::from_millis(300));
        let sent = Instant::now();
        for i in 0..40 {
            send(&server, &numbered(i, 1000));
        }
        let (_, got) = arrivals.join().unwrap();
        let counted = link.snapshot().to_clients;
        assert_eq!(counted.packets, 40);
        assert_eq!(got.len() as u64 + counted.dropped_by_queue, 40);
        // The first packet was being sent when the others came, so 10 wait behind it (a
        // few more if the writes were slow enough for some to leave meanwhile).
        assert!((10..=15).contains(&got.len()), "{} passed", got.len());
        // The last one left after the others' serialisation: about 10 ms each.
        let last = got.last().unwrap().0 - sent;
        assert!(last >= Duration::from_millis(10 * (got.len() as u64 - 1)), "{last:?}");
    }

    #[test]
    fn loss_drops_and_counts_on_its_direction_only() {
        let loss = Loss { rate: 0.25, mean_burst_packets: None };
        let network = Network {
            loss: crate::network::LossSpec { to_server: loss, ..Default::default() },
            ..Default::default()
        };
        let (server, clients, link) = link(network);
        // Each side's own socket both sends and receives: duplicate it for the reader.
        let up_arrivals = receive(server.try_clone().unwrap(), Duration::from_millis(150));
        let down_arrivals = receive(clients.try_clone().unwrap(), Duration::from_millis(150));
        for i in 0..400 {
            send(&clients, &numbered(i, 10));
            send(&server, &numbered(i, 10));
        }
        let (up, down) = (up_arrivals.join().unwrap().1, down_arrivals.join().unwrap().1);
        let counted = link.snapshot();
        assert_eq!((counted.to_server.packets, counted.to_clients.packets), (400, 400));
        // 25 % of 400: 100 ± 4.5 σ (σ ≈ 8.7); none the other way.
        assert!((61..=139).contains(&counted.to_server.dropped_by_loss), "{:?}", counted.to_server);
        assert_eq!(counted.to_clients.dropped_by_loss, 0);
        // What arrived: never a dropped packet. (A test socket, unlike a TUN device,
        // queues only 10 datagrams, so a reader slowed by a busy machine can miss a few
        // more; the counters above are exact either way.)
        assert!(up.len() as u64 <= 400 - counted.to_server.dropped_by_loss, "{} arrived", up.len());
        assert!(
            down.len() as u64 > up.len() as u64,
            "{} arrived one way, {} the other",
            down.len(),
            up.len()
        );
    }
}
