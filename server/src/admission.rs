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

    /// Bytes held by responses now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Takes up to `wanted` bytes of what is left, before a response is read from the
    /// log: two concurrent polls can then never both take the whole budget.
    pub(crate) fn grant(&self, wanted: usize) -> Reservation {
        let mut current = self.in_flight.load(Ordering::Relaxed);
        loop {
            let bytes = wanted.min(self.limit.saturating_sub(current));
            match self.in_flight.compare_exchange_weak(
                current,
                current + bytes,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Reservation { bytes, in_flight: self.in_flight.clone() },
                Err(now) => current = now,
            }
        }
    }
}

/// One response's share of [`PollBytes`], given back when the body is dropped.
#[derive(Debug)]
pub(crate) struct Reservation {
    bytes: usize,
    in_flight: Arc<AtomicUsize>,
}

impl Reservation {
    /// The bytes granted.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Holds exactly `bytes` from now on: what the response turned out to be. It may be
    /// more than was granted by one message (a response always carries one).
    pub(crate) fn settle(&mut self, bytes: usize) {
        if bytes >= self.bytes {
            self.in_flight.fetch_add(bytes - self.bytes, Ordering::AcqRel);
        } else {
            self.in_flight.fetch_sub(self.bytes - bytes, Ordering::AcqRel);
        }
        self.bytes = bytes;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_never_overshoot_the_budget_together() {
        let budget = PollBytes::new(64);
        let mut first = budget.grant(40);
        let second = budget.grant(40);
        assert_eq!((first.bytes(), second.bytes()), (40, 24), "the second gets what is left");
        assert_eq!(budget.grant(10).bytes(), 0, "nothing is left");
        // A response that turned out smaller gives the rest back at once.
        first.settle(10);
        assert_eq!(budget.in_flight(), 34);
        drop((first, second));
        assert_eq!(budget.in_flight(), 0);
    }
}
