//! Bytes on the wire, counted at the client's socket, and TCP segments, counted by the
//! kernel for that socket.
//!
//! Every subscriber's TCP stream is wrapped in a [`CountingStream`], so what is counted is
//! exactly what crossed the socket: request and response headers, chunked encoding, SSE
//! fields, WebSocket frame headers and masks, handshakes and heartbeats. Nothing is
//! estimated from payload sizes.
//!
//! The bytes say nothing about how many packets carried them; the kernel's `TCP_INFO`
//! does ([`Segments`]). With both, IP bytes can be estimated where no packet capture is
//! available (payload + segments × header size), and checked where one is.
//!
//! Over TLS the socket carries records (headers, padding, authentication tags,
//! handshakes), not HTTP. A second counter, [`LayerCountingStream`], sits above TLS and
//! counts the plaintext HTTP bytes, so both layers are reported; without TLS the two
//! count the same bytes.

use std::io;
use std::mem::{offset_of, size_of};
use std::ops::{Add, AddAssign};
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes read and written by one client, across all its connections, and the TCP
/// segments of those connections.
#[derive(Debug, Default)]
pub struct WireCounters {
    /// Server → client.
    pub read: AtomicU64,
    /// Client → server.
    pub written: AtomicU64,
    /// Locked when a socket opens or closes and when [`WireCounters::segments`] reads
    /// them; never per byte.
    sockets: Mutex<Sockets>,
}

/// The kernel keeps a socket's counts only while it is open, so each socket's last
/// counts are moved into `closed` just before it closes.
#[derive(Debug, Default)]
struct Sockets {
    /// Sockets open now. Each stays open while listed: it is unlisted, under this lock,
    /// before its fd is closed (see `Drop for CountingStream`), so a number here never
    /// names a closed fd or one reused by another file.
    open: Vec<RawFd>,
    /// The sum over sockets already closed.
    closed: Segments,
}

impl WireCounters {
    /// `(read, written)` now.
    pub fn snapshot(&self) -> (u64, u64) {
        (self.read.load(Ordering::Relaxed), self.written.load(Ordering::Relaxed))
    }

    /// The TCP segments of all this client's sockets so far: those closed plus those
    /// open now. One `getsockopt` per open socket.
    pub fn segments(&self) -> Segments {
        let sockets = self.sockets();
        sockets.open.iter().filter_map(|&fd| tcp_info(fd)).fold(sockets.closed, Add::add)
    }

    fn sockets(&self) -> MutexGuard<'_, Sockets> {
        // Nothing panics while holding the lock, and `Drop` must not panic: ignore poison.
        self.sockets.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// TCP segments as the kernel counts them (`struct tcp_info`), after GSO splits and
/// GRO merges, so one segment is one packet on the wire.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Segments {
    /// Segments sent: data, pure ACKs, SYN, FIN, retransmissions (`tcpi_segs_out`).
    pub segs_out: u64,
    /// Segments received, of any kind (`tcpi_segs_in`).
    pub segs_in: u64,
    /// Of `segs_out`, those carrying data, retransmissions included (`tcpi_data_segs_out`).
    pub data_segs_out: u64,
    /// Of `segs_in`, those carrying data (`tcpi_data_segs_in`).
    pub data_segs_in: u64,
    /// Segments sent again (`tcpi_total_retrans`).
    pub total_retrans: u64,
}

impl Segments {
    /// What happened between `earlier` and `self`. Saturating: the kernel's counters are
    /// 32 bits per socket and may wrap.
    pub fn since(&self, earlier: &Segments) -> Segments {
        Segments {
            segs_out: self.segs_out.saturating_sub(earlier.segs_out),
            segs_in: self.segs_in.saturating_sub(earlier.segs_in),
            data_segs_out: self.data_segs_out.saturating_sub(earlier.data_segs_out),
            data_segs_in: self.data_segs_in.saturating_sub(earlier.data_segs_in),
            total_retrans: self.total_retrans.saturating_sub(earlier.total_retrans),
        }
    }

    /// The counts of one socket now; `None` if it is not a TCP socket.
    pub fn of(socket: &impl AsRawFd) -> Option<Segments> {
        tcp_info(socket.as_raw_fd())
    }
}

impl Add for Segments {
    type Output = Segments;

    fn add(self, other: Segments) -> Segments {
        Segments {
            segs_out: self.segs_out + other.segs_out,
            segs_in: self.segs_in + other.segs_in,
            data_segs_out: self.data_segs_out + other.data_segs_out,
            data_segs_in: self.data_segs_in + other.data_segs_in,
            total_retrans: self.total_retrans + other.total_retrans,
        }
    }
}

impl AddAssign for Segments {
    fn add_assign(&mut self, other: Segments) {
        *self = *self + other;
    }
}

// libc's `tcp_info` (gnu and musl, libc 0.2.191) mirrors linux/tcp.h well past
// `tcpi_data_segs_out`, so no hand-written copy is needed. These checks pin the offsets
// of the fields read to the kernel's layout (8 one-byte fields, 24 u32, 4 u64, then u32s);
// a libc whose struct stopped early or differed would fail to compile here.
const _: () = {
    assert!(offset_of!(libc::tcp_info, tcpi_total_retrans) == 100);
    assert!(offset_of!(libc::tcp_info, tcpi_segs_out) == 136);
    assert!(offset_of!(libc::tcp_info, tcpi_segs_in) == 140);
    assert!(offset_of!(libc::tcp_info, tcpi_data_segs_in) == 152);
    assert!(offset_of!(libc::tcp_info, tcpi_data_segs_out) == 156);
};

/// Bytes of `tcp_info` the kernel must fill for the fields read here. Older kernels
/// (before 4.6) fill less, and then nothing is reported rather than zeros.
const TCP_INFO_NEEDED: usize = offset_of!(libc::tcp_info, tcpi_data_segs_out) + size_of::<u32>();

/// `getsockopt(TCP_INFO)`; `None` if `fd` is not a TCP socket or the kernel is too old.
fn tcp_info(fd: RawFd) -> Option<Segments> {
    let info = crate::sys::tcp_info(fd, TCP_INFO_NEEDED)?;
    Some(Segments {
        segs_out: info.tcpi_segs_out.into(),
        segs_in: info.tcpi_segs_in.into(),
        data_segs_out: info.tcpi_data_segs_out.into(),
        data_segs_in: info.tcpi_data_segs_in.into(),
        total_retrans: info.tcpi_total_retrans.into(),
    })
}

/// A stream that adds every byte it reads or writes to shared counters, and lists its
/// socket there for [`WireCounters::segments`]. One `CountingStream` per socket.
#[derive(Debug)]
pub struct CountingStream<S> {
    inner: S,
    counters: Arc<WireCounters>,
    /// `inner`'s socket, listed in `counters` while this stream lives.
    fd: RawFd,
    /// This socket's own `(read, written)`: the shared counters sum every socket of a
    /// client, and a handshake's bytes are those of one socket.
    own: (u64, u64),
}

impl<S: AsRawFd> CountingStream<S> {
    /// Wraps `inner`; bytes and segments go to `counters`.
    pub fn new(inner: S, counters: Arc<WireCounters>) -> Self {
        let fd = inner.as_raw_fd();
        counters.sockets().open.push(fd);
        CountingStream { inner, counters, fd, own: (0, 0) }
    }
}

impl<S> CountingStream<S> {
    /// `(read, written)` by this socket alone, since it was wrapped.
    pub fn own_counts(&self) -> (u64, u64) {
        self.own
    }
}

impl<S> Drop for CountingStream<S> {
    // Runs before `inner` is dropped, so `fd` is still this socket: its last counts are
    // read and it is unlisted under the lock `segments()` holds. (The FIN and ACKs that
    // closing sends come after this read and are not counted.)
    fn drop(&mut self) {
        let mut sockets = self.counters.sockets();
        if let Some(i) = sockets.open.iter().position(|&fd| fd == self.fd) {
            sockets.open.swap_remove(i);
            if let Some(last) = tcp_info(self.fd) {
                sockets.closed += last;
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for CountingStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            let n = (buf.filled().len() - before) as u64;
            self.counters.read.fetch_add(n, Ordering::Relaxed);
            self.own.0 += n;
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CountingStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = result {
            self.counters.written.fetch_add(n as u64, Ordering::Relaxed);
            self.own.1 += n as u64;
        }
        result
    }

    // hyper writes headers and body with one vectored write; forward it, or every
    // response would be flattened into a copy first.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = result {
            self.counters.written.fetch_add(n as u64, Ordering::Relaxed);
            self.own.1 += n as u64;
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Bytes read and written at one layer above the socket (the HTTP layer, above TLS), by
/// one client across all its connections.
#[derive(Debug, Default)]
pub struct ByteCounts {
    /// Server → client.
    pub read: AtomicU64,
    /// Client → server.
    pub written: AtomicU64,
    /// A copy of every byte as well, when set before the client connects: `pushlab trace
    /// --tls` shows the plaintext inside the TLS records, which no relay can see. Unset
    /// (every measured client), it costs one check per read or write.
    pub tap: std::sync::OnceLock<Arc<Tap>>,
}

/// The bytes of every [`LayerCountingStream`] of one client, in the order they passed,
/// each with its time and its connection (0, 1, … in the order they were opened).
#[derive(Debug, Default)]
pub struct Tap {
    taken: Mutex<Tapped>,
}

/// What a [`Tap`] has taken so far.
#[derive(Debug, Default, Clone)]
pub struct Tapped {
    /// In the order they passed.
    pub chunks: Vec<TappedChunk>,
    /// Connections opened.
    pub connections: usize,
}

/// One read or write.
#[derive(Debug, Clone)]
pub struct TappedChunk {
    /// When it passed.
    pub at: tokio::time::Instant,
    /// Which connection.
    pub connection: usize,
    /// Written (client → server) or read.
    pub written: bool,
    /// The bytes.
    pub bytes: Vec<u8>,
}

impl Tap {
    /// Everything taken so far.
    pub fn taken(&self) -> Tapped {
        self.lock().clone()
    }

    fn lock(&self) -> MutexGuard<'_, Tapped> {
        self.taken.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn open_connection(&self) -> usize {
        let mut taken = self.lock();
        taken.connections += 1;
        taken.connections - 1
    }

    fn take(&self, connection: usize, written: bool, bytes: Vec<u8>) {
        if !bytes.is_empty() {
            let chunk = TappedChunk { at: tokio::time::Instant::now(), connection, written, bytes };
            self.lock().chunks.push(chunk);
        }
    }
}

impl ByteCounts {
    /// `(read, written)` now.
    pub fn snapshot(&self) -> (u64, u64) {
        (self.read.load(Ordering::Relaxed), self.written.load(Ordering::Relaxed))
    }
}

/// A stream that adds every byte it reads or writes to [`ByteCounts`]: the
/// [`CountingStream`] of a layer that has no socket of its own (the plaintext above TLS).
#[derive(Debug)]
pub struct LayerCountingStream<S> {
    inner: S,
    counts: Arc<ByteCounts>,
    /// `counts`' tap, if it has one, and this connection's number in it.
    tap: Option<(Arc<Tap>, usize)>,
}

impl<S> LayerCountingStream<S> {
    /// Wraps `inner`; bytes go to `counts` (and are copied to its tap, if it has one).
    pub fn new(inner: S, counts: Arc<ByteCounts>) -> Self {
        let tap = counts.tap.get().map(|tap| (tap.clone(), tap.open_connection()));
        LayerCountingStream { inner, counts, tap }
    }

    /// The stream underneath.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for LayerCountingStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            self.counts.read.fetch_add((buf.filled().len() - before) as u64, Ordering::Relaxed);
            if let Some((tap, connection)) = &self.tap {
                tap.take(*connection, false, buf.filled()[before..].to_vec());
            }
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for LayerCountingStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = result {
            self.counts.written.fetch_add(n as u64, Ordering::Relaxed);
            if let Some((tap, connection)) = &self.tap {
                tap.take(*connection, true, buf[..n].to_vec());
            }
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = result {
            self.counts.written.fetch_add(n as u64, Ordering::Relaxed);
            if let Some((tap, connection)) = &self.tap {
                // The first `n` bytes of the buffers, in order: what was written.
                let written: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).take(n).collect();
                tap.take(*connection, true, written);
            }
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::mpsc;

    #[tokio::test]
    async fn counts_exactly_what_crosses_the_socket() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 5];
            socket.read_exact(&mut buf).await.unwrap();
            socket.write_all(b"0123456789").await.unwrap();
        });
        let counters = Arc::new(WireCounters::default());
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut stream = CountingStream::new(tcp, counters.clone());
        stream.write_all(b"hello").await.unwrap();
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).await.unwrap();
        server.await.unwrap();
        assert_eq!(counters.snapshot(), (10, 5));
        assert_eq!(stream.own_counts(), (10, 5));
    }

    #[tokio::test]
    async fn a_layer_counter_counts_what_passes_through_it() {
        let (client, mut server) = tokio::io::duplex(64);
        let counts = Arc::new(ByteCounts::default());
        let mut layer = LayerCountingStream::new(client, counts.clone());
        layer.write_all(b"abc").await.unwrap();
        server.write_all(b"hello").await.unwrap();
        let mut reply = [0u8; 5];
        layer.read_exact(&mut reply).await.unwrap();
        assert_eq!(counts.snapshot(), (5, 3));
    }

    #[tokio::test]
    async fn a_tapped_layer_copies_each_connection_s_bytes_in_order() {
        let counts = Arc::new(ByteCounts::default());
        let tap = Arc::new(Tap::default());
        counts.tap.set(tap.clone()).unwrap();
        for (i, message) in [&b"abc"[..], b"de"].into_iter().enumerate() {
            let (client, mut server) = tokio::io::duplex(64);
            let mut layer = LayerCountingStream::new(client, counts.clone());
            let bufs = [io::IoSlice::new(&message[..1]), io::IoSlice::new(&message[1..])];
            // A vectored write may take only part of the buffers: the rest goes after.
            let n = layer.write_vectored(&bufs).await.unwrap();
            layer.write_all(&message[n..]).await.unwrap();
            server.write_all(&[b'0' + i as u8]).await.unwrap();
            layer.read_exact(&mut [0u8; 1]).await.unwrap();
        }
        let taken = tap.taken();
        assert_eq!(taken.connections, 2);
        let mut seen: Vec<(usize, bool, Vec<u8>)> = Vec::new();
        for c in &taken.chunks {
            match seen.last_mut() {
                Some(last) if (last.0, last.1) == (c.connection, c.written) => last.2.extend(&c.bytes),
                _ => seen.push((c.connection, c.written, c.bytes.clone())),
            }
        }
        let expected = [
            (0, true, b"abc".to_vec()),
            (0, false, b"0".to_vec()),
            (1, true, b"de".to_vec()),
            (1, false, b"1".to_vec()),
        ];
        assert_eq!(seen, expected);
        assert_eq!(counts.snapshot(), (2, 5));
    }

    const MESSAGE: usize = 8;

    /// A server that answers each `MESSAGE`-byte message with one byte, and says on
    /// `closed` when a connection has ended (the client's FIN arrived and its own went).
    async fn echo_server() -> (std::net::SocketAddr, mpsc::UnboundedReceiver<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (closed, ended) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let closed = closed.clone();
                tokio::spawn(async move {
                    let mut message = [0u8; MESSAGE];
                    while socket.read_exact(&mut message).await.is_ok() {
                        if socket.write_all(b"!").await.is_err() {
                            break;
                        }
                    }
                    drop(socket);
                    let _ = closed.send(());
                });
            }
        });
        (addr, ended)
    }

    /// Sends `n` messages, each only after the reply to the last one arrived: with
    /// nodelay nothing is waiting to be coalesced, so each is one data segment each way.
    async fn exchange(
        addr: std::net::SocketAddr,
        counters: &Arc<WireCounters>,
        n: u64,
    ) -> CountingStream<TcpStream> {
        let tcp = TcpStream::connect(addr).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let mut stream = CountingStream::new(tcp, counters.clone());
        for _ in 0..n {
            stream.write_all(&[b'm'; MESSAGE]).await.unwrap();
            stream.read_exact(&mut [0u8; 1]).await.unwrap();
        }
        stream
    }

    #[tokio::test]
    async fn the_kernel_counts_one_data_segment_per_answered_message() {
        const N: u64 = 20;
        let (addr, _ended) = echo_server().await;
        let counters = Arc::new(WireCounters::default());
        let _stream = exchange(addr, &counters, N).await;
        let s = counters.segments();
        // Exactly N, unless the kernel sent some again.
        assert!((N..=N + s.total_retrans).contains(&s.data_segs_out), "{s:?}");
        assert!(s.data_segs_in >= N, "{s:?}");
        // The handshake's SYN and SYN-ACK carry no data but are segments.
        assert!(s.segs_out > s.data_segs_out && s.segs_in > s.data_segs_in, "{s:?}");
        assert_eq!(counters.snapshot(), (N, N * MESSAGE as u64));
    }

    #[tokio::test]
    async fn a_closed_socket_keeps_its_counts_once() {
        let (addr, mut ended) = echo_server().await;
        let counters = Arc::new(WireCounters::default());
        let stream = exchange(addr, &counters, 10).await;
        let before = counters.segments();
        drop(stream);
        let after = counters.segments();
        assert!(counters.sockets().open.is_empty());
        // The last read is in Drop, before close(), so the FIN and ACKs of the close are
        // not in it. No data moved between the two reads; at most a delayed ACK or a
        // window update went out or came in.
        assert_eq!(
            (after.data_segs_out, after.data_segs_in, after.total_retrans),
            (before.data_segs_out, before.data_segs_in, before.total_retrans),
        );
        assert!((before.segs_out..=before.segs_out + 2).contains(&after.segs_out), "{before:?} → {after:?}");
        assert!((before.segs_in..=before.segs_in + 2).contains(&after.segs_in), "{before:?} → {after:?}");

        // Once the close has gone over the wire, the count has still not moved: a closed
        // socket is never read again.
        ended.recv().await.unwrap();
        assert_eq!(counters.segments(), after);

        // A second connection of the same client adds to it.
        let second = exchange(addr, &counters, 5).await;
        let both = counters.segments();
        assert!(both.data_segs_out >= after.data_segs_out + 5, "{after:?} → {both:?}");
        assert_eq!(counters.sockets().open.len(), 1);
        drop(second);
        assert!(counters.sockets().open.is_empty());
    }

    #[test]
    fn no_sockets_no_segments() {
        assert_eq!(WireCounters::default().segments(), Segments::default());
    }

    #[tokio::test]
    async fn a_socket_that_is_not_tcp_counts_no_segments() {
        let (unix, _peer) = tokio::net::UnixStream::pair().unwrap();
        assert_eq!(Segments::of(&unix), None);
        let counters = Arc::new(WireCounters::default());
        let stream = CountingStream::new(unix, counters.clone());
        assert_eq!(counters.segments(), Segments::default());
        drop(stream);
        assert_eq!(counters.segments(), Segments::default());
    }

    #[test]
    fn segments_add_and_subtract_field_by_field() {
        let a = Segments { segs_out: 5, segs_in: 4, data_segs_out: 3, data_segs_in: 2, total_retrans: 1 };
        let b = a + a;
        assert_eq!(b.since(&a), a);
        assert_eq!(a.since(&b), Segments::default(), "saturates");
    }
}
