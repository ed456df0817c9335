//! The one cursor every transport reads the log through. A transport differs from the
//! others only in where this cursor lives (the client's next request, or a task of the
//! server) and in how its bytes reach the client.
//!
//! [`Follower::read`] is the step each of them takes: read after the cursor, apply a
//! reset (a cursor of another run of the stream starts again from this run's first
//! message), count a gap (messages retention no longer holds), and advance.
//! [`Follower::appended`] is the wait between reads.

use std::sync::Arc;

use pushlab_protocol::{Cursor, Notice, Transport};
use tokio::sync::watch;

use crate::config::{STREAM_BATCH, STREAM_BATCH_BYTES};
use crate::log::{Budget, Read};
use crate::message::Entry;
use crate::state::AppState;

/// What a streaming cursor (SSE, WebSocket) drains from the log into one write.
pub(crate) const STREAM_BUDGET: Budget = Budget { count: STREAM_BATCH, bytes: STREAM_BATCH_BYTES };

/// A cursor over the log, subscribed to its appends.
pub(crate) struct Follower {
    app: Arc<AppState>,
    transport: Transport,
    /// Subscribed *before* the first read, so a message appended between a read and
    /// the wait that follows still wakes it: no lost wake-up.
    appended: watch::Receiver<u64>,
    /// The last position read (or the resume point).
    cursor: Cursor,
}

/// What one read gives a transport to send, in this order.
pub(crate) struct Batch {
    /// `Some` when the cursor was of another run: say so first.
    pub(crate) reset: Option<Notice>,
    /// `Some` when messages were lost to retention.
    pub(crate) gap: Option<Notice>,
    /// The messages.
    pub(crate) entries: Vec<Entry>,
    /// Everything the read said, for the poll body.
    pub(crate) read: ReadSummary,
    /// Whose batch it is, for the counters.
    pub(crate) transport: Transport,
}

/// The parts of a [`Read`] a poll body states besides its messages.
#[derive(Clone, Copy)]
pub(crate) struct ReadSummary {
    pub(crate) missed: u64,
    pub(crate) reset: bool,
    pub(crate) more: bool,
    pub(crate) last_id: u64,
    pub(crate) epoch: pushlab_protocol::Epoch,
}

impl Batch {
    /// Nothing to send: no message and no notice.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.reset.is_none() && self.gap.is_none()
    }
}

impl Follower {
    /// A follower from `since`, or from "now" when the client did not say.
    pub(crate) fn new(app: Arc<AppState>, transport: Transport, since: Option<Cursor>) -> Follower {
        let appended = app.log.subscribe();
        let cursor = since.unwrap_or_else(|| app.log.now());
        Follower { app, transport, appended, cursor }
    }

    /// Reads after the cursor within `budget`, applies a reset, counts a gap, and
    /// advances the cursor past what it returns.
    pub(crate) fn read(&mut self, budget: Budget) -> Batch {
        let Read { entries, missed, reset, more, last_id, epoch } =
            self.app.log.read_after(self.cursor, budget);
        let reset_notice = reset.then(|| {
            self.cursor = Cursor { epoch: Some(epoch), id: 0 };
            Notice::Reset { epoch, last_id }
        });
        let gap = (missed > 0).then(|| {
            self.app.metrics.transport(self.transport).gaps.inc();
            Notice::Gap { missed }
        });
        if let Some(last) = entries.last() {
            self.cursor = Cursor { epoch: Some(epoch), id: last.id };
        } else if self.cursor.epoch.is_none() {
            // A bare cursor becomes a full one at the first read.
            self.cursor.epoch = Some(epoch);
        }
        let read = ReadSummary { missed, reset, more, last_id, epoch };
        Batch { reset: reset_notice, gap, entries, read, transport: self.transport }
    }

    /// No read: where the stream is now, and nothing else (`GET /poll` without `since`).
    pub(crate) fn here(&self) -> Batch {
        let read = ReadSummary {
            missed: 0,
            reset: false,
            more: false,
            last_id: self.app.log.last_id(),
            epoch: self.app.log.epoch(),
        };
        Batch { reset: None, gap: None, entries: Vec::new(), read, transport: self.transport }
    }

    /// Waits until something is appended after the last wait: `false` if the log is
    /// gone. Marks the wake-up as seen.
    pub(crate) async fn appended(&mut self) -> bool {
        self.appended.changed().await.is_ok()
    }

    /// Marks every append so far as seen: call after sending everything read, so the
    /// next [`appended`](Self::appended) waits for a new one.
    pub(crate) fn seen(&mut self) {
        self.appended.borrow_and_update();
    }
}
