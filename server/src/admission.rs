//! Admission control: how many subscribers the server serves at once, and how many
//! bytes its poll responses may hold together. Each place is a guard that gives itself
//! back when dropped, so no code path can forget to.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use prometheus_client::metrics::gauge::Gauge;

use crate::error::ApiError;
use crate::metrics::TransportMetrics;

/// Admission control: at most `limit` subscribers at once, across all transports.
#[derive(Debug)]
pub struct Admission {
    limit: usize,
    current: AtomicUsize,
}

impl Admission {
    /// Admits up to `limit` subscribers at once.
    pub fn new(limit: usize) -> Self {
        Admission { limit, current: AtomicUsize::new(0) }
    }

    /// Admits one subscriber of `transport`, or refuses with 503. The returned guard
    /// holds the place until dropped: at the end of a poll request, or when a stream
    /// closes.
    pub fn admit(self: &Arc<Self>, transport: &TransportMetrics) -> Result<Admitted, ApiError> {
        let previous = self.current.fetch_add(1, Ordering::AcqRel);
        if previous >= self.limit {
            self.current.fetch_sub(1, Ordering::AcqRel);
            return Err(ApiError::too_many_connections(self.limit));
        }
        transport.requests.inc();
        transport.subscribers.inc();
        Ok(Admitted { admission: Arc::clone(self), subscribers: transport.subscribers.clone() })
    }
}

/// A place held by one subscriber.
#[derive(Debug)]
pub struct Admitted {
    admission: Arc<Admission>,
    subscribers: Gauge,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.admission.current.fetch_sub(1, Ordering::AcqRel);
        self.subscribers.dec();
    }
}

/// The bytes every poll response in flight holds, together.
#[derive(Debug)]
pub struct PollBytes {
    limit: usize,
    in_flight: Arc<AtomicUsize>,
}

impl PollBytes {
    /// A budget of `limit` bytes for all poll responses in flight.
    pub fn new(limit: usize) -> Self {
        PollBytes { limit, in_flight: Arc::new(AtomicUsize::new(0)) }
    }

    /// Bytes a new response may still take (a response always gets one message).
    pub fn available(&self) -> usize {
        self.limit.saturating_sub(self.in_flight.load(Ordering::Relaxed))
    }

    /// Bytes held by responses now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub(crate) fn reserve(&self, bytes: usize) -> Reservation {
        self.in_flight.fetch_add(bytes, Ordering::Relaxed);
        Reservation { bytes, in_flight: self.in_flight.clone() }
    }
}

/// One response's share of [`PollBytes`], given back when the body is dropped.
#[derive(Debug)]
pub(crate) struct Reservation {
    bytes: usize,
    in_flight: Arc<AtomicUsize>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}
