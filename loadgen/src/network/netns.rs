//! The two network namespaces of the packet link, and the TUN devices that join them.
//!
//! ```text
//!  ┌ this process's namespace (new) ────────┐      ┌ the clients' namespace (new) ─┐
//!  │ pushlab lab, its `pushlab serve`,      │      │ every subscriber socket       │
//!  │ the publisher                          │      │                               │
//!  │ lo          127.0.0.1                  │      │                               │
//!  │ pl-server   10.203.0.1 ── peer .2      │ link │ pl-clients 10.203.0.2 ── .1   │
//!  └────────────────────────┬───────────────┘      └───────────────┬───────────────┘
//!                           └──── fds read and written by link.rs ─┘
//! ```
//!
//! [`enter`] moves the whole process into a new network namespace before the async
//! runtime starts, so every thread and every child (the server, the publisher's
//! sockets) lives there, and creates a second namespace on a thread of its own, which
//! makes every subscriber socket ([`ClientSide::socket`]): a socket belongs to the
//! namespace it was created in, whoever uses it later. Both namespaces are anonymous
//! (no `ip netns add`, nothing under `/run/netns`): they exist while a process or a file
//! descriptor holds them and vanish with this process, on exit, on error, on Ctrl-C and
//! on `kill -9` alike (spawned servers die with it, by `PR_SET_PDEATHSIG`). Nothing in
//! them can reach the machine's real network: they have no route out.

use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::sync::mpsc;
use std::sync::OnceLock;

use super::link::Link;
use crate::sys;

/// The server's address on the link (inside this process's namespace).
pub const SERVER_ADDR: Ipv4Addr = Ipv4Addr::new(10, 203, 0, 1);
/// The clients' address on the link (inside theirs).
pub const CLIENTS_ADDR: Ipv4Addr = Ipv4Addr::new(10, 203, 0, 2);
/// The TUN devices' MTU: Ethernet's, so segments are the size they are on real links.
pub const MTU: u16 = 1500;
/// Packets each TUN device queues for the link: more than a fan-out to the most clients
/// one process can hold (about 19,000) sends at once.
const DEVICE_QUEUE: i32 = 32_768;

/// The packet link, once made.
#[derive(Debug)]
pub struct Netns {
    /// Where subscriber sockets are made.
    pub clients: ClientSide,
    /// The link between the two namespaces.
    pub link: Link,
}

/// The clients' namespace: a thread that lives in it and makes sockets on request.
#[derive(Debug)]
pub struct ClientSide {
    requests: mpsc::Sender<tokio::sync::oneshot::Sender<std::io::Result<OwnedFd>>>,
    /// The thread's id: its `/proc/self/task/TID/net` shows the clients' namespace.
    thread: i32,
}

impl ClientSide {
    /// A new TCP socket in the clients' namespace, ready to connect.
    pub async fn socket(&self) -> std::io::Result<tokio::net::TcpSocket> {
        let (reply, socket) = tokio::sync::oneshot::channel();
        self.requests.send(reply).map_err(|_| std::io::Error::other("the clients' namespace is gone"))?;
        let fd = socket.await.map_err(|_| std::io::Error::other("the clients' namespace is gone"))??;
        Ok(tokio::net::TcpSocket::from_std_stream(std::net::TcpStream::from(fd)))
    }
}

impl Netns {
    /// Packets the two TUN devices dropped before the link could read them (their queues
    /// full), from the kernel's own counters: must stay 0, or the run lost packets the
    /// link never saw.
    pub fn device_drops(&self) -> u64 {
        let dropped = |path: &str, device: &str| -> u64 {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            // `/proc/net/dev`: "name: 8 receive fields, then transmit bytes, packets,
            // errs, drop …"; the device's transmit side is what its reader, the link, takes.
            text.lines()
                .find_map(|line| {
                    line.trim_start().strip_prefix(device)?.strip_prefix(':').map(str::to_string)
                })
                .and_then(|fields| fields.split_whitespace().nth(11)?.parse().ok())
                .unwrap_or(0)
        };
        dropped("/proc/self/net/dev", "pl-server")
            + dropped(&format!("/proc/self/task/{}/net/dev", self.clients.thread), "pl-clients")
    }
}

static NETNS: OnceLock<Result<Netns, String>> = OnceLock::new();

/// The packet link, if [`enter`] made it.
pub fn get() -> Option<&'static Netns> {
    NETNS.get().and_then(|made| made.as_ref().ok())
}

/// Why the packet link could not be made, if [`enter`] tried and failed.
pub fn failure() -> Option<&'static str> {
    NETNS.get().and_then(|made| made.as_ref().err()).map(String::as_str)
}

/// Moves this process into a namespace of its own and makes the link. Must run before
/// any other thread exists (before the async runtime): `unshare` moves only the calling
/// thread, and threads started earlier would stay behind. Only the first call acts.
pub fn enter() -> Result<&'static Netns, String> {
    NETNS.get_or_init(make).as_ref().map_err(String::clone)
}

fn make() -> Result<Netns, String> {
    if !std::path::Path::new("/dev/net/tun").exists() {
        return Err("there is no /dev/net/tun on this machine (load the tun module)".into());
    }
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| match e {
        nix::errno::Errno::EPERM => "making a network namespace needs root (or CAP_SYS_ADMIN)".to_string(),
        other => format!("unshare(CLONE_NEWNET) failed: {other}"),
    })?;
    prepare_namespace()?;
    let server_tun = tun_device("pl-server", SERVER_ADDR, CLIENTS_ADDR)?;
    let (made, tun) = mpsc::channel();
    let (requests, incoming) = mpsc::channel();
    std::thread::Builder::new()
        .name("clients' namespace".into())
        .spawn(move || clients_namespace(made, incoming))
        .map_err(|e| format!("starting the clients' namespace thread: {e}"))?;
    let (clients_tun, thread) =
        tun.recv().map_err(|_| "the clients' namespace thread stopped".to_string())??;
    let link = Link::start(server_tun, clients_tun).map_err(|e| format!("starting the link threads: {e}"))?;
    Ok(Netns { clients: ClientSide { requests, thread }, link })
}

/// The clients' namespace thread: makes the namespace and its TUN device, then makes
/// sockets in it until the process ends.
fn clients_namespace(
    made: mpsc::Sender<Result<(OwnedFd, i32), String>>,
    requests: mpsc::Receiver<tokio::sync::oneshot::Sender<std::io::Result<OwnedFd>>>,
) {
    let tun = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("unshare for the clients' namespace: {e}"))
        .and_then(|()| prepare_namespace())
        .and_then(|()| tun_device("pl-clients", CLIENTS_ADDR, SERVER_ADDR))
        .map(|fd| (fd, nix::unistd::gettid().as_raw()));
    let ok = tun.is_ok();
    let _ = made.send(tun);
    if !ok {
        return;
    }
    for reply in requests {
        let _ = reply.send(tcp_socket());
    }
}

/// A non-blocking IPv4 TCP socket in the calling thread's namespace.
fn tcp_socket() -> std::io::Result<OwnedFd> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    Ok(socket(AddressFamily::Inet, SockType::Stream, SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC, None)?)
}

/// A fresh namespace has only `lo`, and it is down. Bring it up (the publisher reaches
/// the server through it), and turn IPv6 off so the kernel's router solicitations do not
/// travel the link and spoil its counts.
fn prepare_namespace() -> Result<(), String> {
    for path in ["/proc/sys/net/ipv6/conf/all/disable_ipv6", "/proc/sys/net/ipv6/conf/default/disable_ipv6"] {
        // A kernel without IPv6 has no such file: nothing to turn off.
        let _ = std::fs::write(path, "1");
    }
    sys::set_up("lo").map_err(|e| format!("bringing lo up in the new namespace: {e}"))
}

/// A point-to-point TUN device `name` in the calling thread's namespace, `me` on this
/// end and `peer` on the other, up, non-blocking (the link reads it in batches).
fn tun_device(name: &str, me: Ipv4Addr, peer: Ipv4Addr) -> Result<OwnedFd, String> {
    let mut config = tun::Configuration::default();
    config.tun_name(name).address(me).destination(peer).netmask((255, 255, 255, 255)).mtu(MTU).up();
    let device = tun::create(&config).map_err(|e| format!("creating the TUN device {name}: {e}"))?;
    // A TUN device queues 500 packets for its reader by default and drops the rest
    // unseen: a fan-out to 1,000 clients overflowed it (321 segments resent with no loss
    // set, p99 223 ms). The link's own queue (`--queue`) is where packets may wait and be
    // dropped, counted; this one must never fill.
    sys::set_tx_queue_len(name, DEVICE_QUEUE).map_err(|e| format!("setting {name}'s queue: {e}"))?;
    let fd = sys::into_owned_fd(device);
    nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK))
        .map_err(|e| format!("making {name} non-blocking: {e}"))?;
    Ok(fd)
}
