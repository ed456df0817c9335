//! What pushlab needs from the kernel that no safe wrapper offers, and so the only
//! `unsafe` code in pushlab (the workspace denies it everywhere else): taking a TUN
//! device's descriptor, bringing an interface up, a child process that dies with us, and
//! a socket's `TCP_INFO`.

#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};

/// Takes ownership of a TUN device's descriptor, so that it closes once, with us.
pub(crate) fn into_owned_fd(device: tun::Device) -> OwnedFd {
    // SAFETY: `into_raw_fd` gives up the device's descriptor: nobody else owns or closes
    // it, so it is ours alone.
    unsafe { OwnedFd::from_raw_fd(device.into_raw_fd()) }
}

/// An ifreq naming `name`, and a socket to send interface ioctls on.
fn interface_request(name: &str) -> std::io::Result<(OwnedFd, libc::ifreq)> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    if name.len() >= libc::IFNAMSIZ {
        return Err(std::io::Error::other(format!("interface name {name:?} is too long")));
    }
    let control = socket(AddressFamily::Inet, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)?;
    // SAFETY: an all-zero ifreq is a valid value (C's `{0}`).
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(name.bytes()) {
        *slot = byte as libc::c_char;
    }
    Ok((control, request))
}

/// Brings an interface up: `ip link set NAME up`, with the two ioctls `ip` would use
/// (netlink would need a crate and a protocol for one flag).
pub(crate) fn set_up(name: &str) -> std::io::Result<()> {
    let (control, mut request) = interface_request(name)?;
    // SAFETY: both ioctls read and write only the ifreq we pass, whose name is
    // NUL-terminated (checked shorter than IFNAMSIZ; the rest is zeroes); the flags are
    // the union member SIOCGIFFLAGS has just filled.
    unsafe {
        if libc::ioctl(control.as_raw_fd(), libc::SIOCGIFFLAGS, &mut request) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(control.as_raw_fd(), libc::SIOCSIFFLAGS, &request) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `ip link set NAME txqueuelen PACKETS`: how many packets the device queues for its
/// reader (for a TUN device, the link) before it drops.
pub(crate) fn set_tx_queue_len(name: &str, packets: i32) -> std::io::Result<()> {
    let (control, mut request) = interface_request(name)?;
    // The queue length travels in the union's int slot (C's `ifr_qlen`).
    request.ifr_ifru.ifru_metric = packets;
    // SAFETY: the ioctl reads only the ifreq we pass, with a NUL-terminated name.
    match unsafe { libc::ioctl(control.as_raw_fd(), libc::SIOCSIFTXQLEN, &request) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// Makes `command`'s process receive SIGKILL when this process ends, however it ends
/// (`kill -9` included): a spawned server must not outlive the run, nor keep its network
/// namespace alive.
pub(crate) fn die_with_parent(command: &mut tokio::process::Command) -> &mut tokio::process::Command {
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed: prctl and getppid are plain system calls and
    // nothing is allocated.
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
            // The parent may have died before prctl took effect: then no signal will come.
            match nix::unistd::getppid() == parent {
                true => Ok(()),
                false => Err(std::io::Error::other("the parent exited while the server started")),
            }
        })
    }
}

/// `getsockopt(fd, IPPROTO_TCP, TCP_INFO)`, when the kernel filled at least `needed`
/// bytes of it (older kernels fill less); `None` if `fd` is not a TCP socket.
pub(crate) fn tcp_info(fd: std::os::fd::RawFd, needed: usize) -> Option<libc::tcp_info> {
    let mut len = size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `tcp_info` is plain integers, so all-zero is a valid value; the kernel
    // writes at most `len` bytes into it and stores in `len` how many it wrote. A bad or
    // non-TCP fd only makes the call fail.
    let (rc, info) = unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let rc = libc::getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_INFO, (&raw mut info).cast(), &mut len);
        (rc, info)
    };
    (rc == 0 && len as usize >= needed).then_some(info)
}
