//! The stream: an append-only log with ids 1, 2, 3 … of one epoch and bounded
//! retention. It is a ring, ids and wake-ups, and nothing else: what it stores (the
//! encoded message, `message.rs`) is its caller's business, and nothing here knows HTTP.
//!
//! Every transport is a *cursor* over this one log: a client says "I have seen up to id
//! N of epoch E" and reads what comes after. Three properties matter:
//!
//! - **Memory is bounded by retention, not by subscribers.** There is no per-subscriber
//!   queue. A slow subscriber simply lags its cursor; if it falls behind retention it is
//!   told how many messages it missed (a `gap`), never silently skipped.
//! - **Each item is stored once** and every read clones shared handles to it.
//! - **A restart is never silent.** History lives in memory and ends with the process;
//!   ids start again at 1. Each run of the log has a random [`Epoch`] that every cursor
//!   carries (as Centrifugo pairs an offset with an epoch), so a cursor from another run
//!   is recognised and answered with a `reset`, then the new run's history from its start.

use std::collections::VecDeque;
use std::sync::RwLock;

use tokio::sync::watch;

pub use pushlab_protocol::{Cursor, Epoch};

/// What the log stores: something that knows its id and its size in bytes (the size
/// is what a read's byte [`Budget`] counts).
pub trait Item: Clone {
    /// Its position in the stream.
    fn id(&self) -> u64;
    /// Its size, in bytes.
    fn size(&self) -> usize;
}

/// What a cursor read returns: the items after the cursor and what the reader must be
/// told about the ones it cannot have.
#[derive(Debug)]
pub struct Read<T> {
    /// Retained items newer than the cursor, oldest first, within the requested limits.
    pub entries: Vec<T>,
    /// Items newer than the cursor that fell out of retention before this read.
    pub missed: u64,
    /// The cursor was from another run of the log (or ahead of this one): the reader
    /// starts again from this run's first item, and `entries` begin there.
    pub reset: bool,
    /// The limits stopped the read before the newest item: come back at once.
    pub more: bool,
    /// The newest id in the stream at the time of the read (0 when empty).
    pub last_id: u64,
    /// This run of the log.
    pub epoch: Epoch,
}

/// How much one read may return: at most `count` items and, past the first item, at
/// most `bytes` of them. Every read that has something returns at least one item, so a
/// reader always moves forward.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Most items.
    pub count: usize,
    /// Most bytes.
    pub bytes: usize,
}

/// The in-memory log.
///
/// A real deployment that outgrows one machine would put Redis Streams (whose ids and
/// `XREAD` replay map onto this cursor model) behind the same three operations:
/// `append`, `read_after` and `subscribe`.
#[derive(Debug)]
pub struct Log<T> {
    ring: RwLock<Ring<T>>,
    epoch: Epoch,
    /// The last id, for waking waiters. `watch` keeps only the newest value, so an append
    /// costs one notification however many subscribers wait, and a subscriber that was
    /// busy never sees a backlog of wake-ups: it reads the log and catches up in one go.
    last_id: watch::Sender<u64>,
}

#[derive(Debug)]
struct Ring<T> {
    entries: VecDeque<T>,
    retention: usize,
    /// Id of `entries[0]`, or the id the next item will get when empty.
    first_id: u64,
    next_id: u64,
}

impl<T: Item> Log<T> {
    /// A log that keeps the last `retention` items (at least one), in a new epoch.
    pub fn new(retention: usize) -> Self {
        Self::with_epoch(retention, Epoch::random())
    }

    /// A log of a given epoch (tests pick theirs).
    pub fn with_epoch(retention: usize, epoch: Epoch) -> Self {
        let retention = retention.max(1);
        Log {
            ring: RwLock::new(Ring {
                // Allocate on demand: a mostly idle server should not reserve the whole
                // retention window up front.
                entries: VecDeque::new(),
                retention,
                first_id: 1,
                next_id: 1,
            }),
            epoch,
            last_id: watch::Sender::new(0),
        }
    }

    /// This run of the log.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// Appends items in order and returns their ids; `encode` turns each into what is
    /// stored, given its id. One lock and one wake-up for the whole batch.
    pub fn append<M>(&self, messages: Vec<M>, mut encode: impl FnMut(Epoch, u64, M) -> T) -> Vec<u64> {
        if messages.is_empty() {
            return Vec::new();
        }
        let mut ids = Vec::with_capacity(messages.len());
        let last = {
            // The lock is held only to assign ids and push, so ids are unique and
            // gap-free even with concurrent publishers. Encoding happens inside it
            // because the id is part of the encoding; it is a few hundred nanoseconds.
            let mut ring = self.ring.write().unwrap_or_else(|poisoned| poisoned.into_inner());
            for message in messages {
                let id = ring.next_id;
                ring.next_id += 1;
                ring.entries.push_back(encode(self.epoch, id, message));
                if ring.entries.len() > ring.retention {
                    ring.entries.pop_front();
                    ring.first_id += 1;
                }
                ids.push(id);
            }
            ring.next_id - 1
        };
        self.last_id.send_replace(last);
        ids
    }

    /// Reads the items after `cursor`, within `budget`.
    ///
    /// A cursor of another epoch, or one ahead of the stream (ids began again after a
    /// restart, and the client did not say its epoch), is a `reset`: the reader gets
    /// this run's history from its start, and a `missed` count for the part of it that
    /// retention no longer holds.
    pub fn read_after(&self, cursor: Cursor, budget: Budget) -> Read<T> {
        let ring = self.ring.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let last_id = ring.next_id - 1;
        let other_run = cursor.epoch.is_some_and(|epoch| epoch != self.epoch);
        let reset = other_run || cursor.id > last_id;
        let since = if reset { 0 } else { cursor.id };
        // Ids the reader wants but retention no longer holds: since+1 .. first_id-1.
        let missed = ring.first_id.saturating_sub(since + 1);
        let start = since.max(ring.first_id - 1) - (ring.first_id - 1);
        let mut entries = Vec::new();
        let mut bytes = 0;
        for entry in ring.entries.range(start as usize..) {
            let over = entries.len() >= budget.count || bytes + entry.size() > budget.bytes;
            if over && !entries.is_empty() {
                break;
            }
            bytes += entry.size();
            entries.push(entry.clone());
        }
        let more = entries.last().is_some_and(|last: &T| last.id() < last_id);
        Read { entries, missed, reset, more, last_id, epoch: self.epoch }
    }

    /// The newest id (0 while the stream is empty).
    pub fn last_id(&self) -> u64 {
        *self.last_id.borrow()
    }

    /// A cursor at the newest item: "from now on".
    pub fn now(&self) -> Cursor {
        Cursor { epoch: Some(self.epoch), id: self.last_id() }
    }

    /// A receiver that wakes when new items are appended.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.last_id.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPOCH: Epoch = Epoch(0x3f9a_1c07);
    const ALL: Budget = Budget { count: 100, bytes: usize::MAX };

    /// An item of the tests: its id, and a size of 10 bytes.
    #[derive(Clone, Debug)]
    struct Numbered(u64);

    impl Item for Numbered {
        fn id(&self) -> u64 {
            self.0
        }
        fn size(&self) -> usize {
            10
        }
    }

    fn publish(log: &Log<Numbered>, n: usize) -> Vec<u64> {
        log.append((0..n).collect(), |_, id, _| Numbered(id))
    }

    fn ids(read: &Read<Numbered>) -> Vec<u64> {
        read.entries.iter().map(|e| e.0).collect()
    }

    fn at(id: u64) -> Cursor {
        Cursor { epoch: Some(EPOCH), id }
    }

    #[test]
    fn ids_start_at_one_and_are_gap_free() {
        let log = Log::with_epoch(10, EPOCH);
        assert_eq!(publish(&log, 3), vec![1, 2, 3]);
        assert_eq!(publish(&log, 2), vec![4, 5]);
        assert_eq!(log.last_id(), 5);
    }

    #[test]
    fn read_after_returns_newer_entries_up_to_the_limit() {
        let log = Log::with_epoch(10, EPOCH);
        publish(&log, 5);
        let read = log.read_after(at(2), Budget { count: 2, bytes: usize::MAX });
        assert_eq!(ids(&read), vec![3, 4]);
        assert_eq!((read.missed, read.reset, read.more, read.last_id), (0, false, true, 5));
        let rest = log.read_after(at(4), ALL);
        assert_eq!((ids(&rest), rest.more), (vec![5], false));
        assert!(log.read_after(at(5), ALL).entries.is_empty());
    }

    #[test]
    fn a_byte_budget_stops_a_read_but_never_before_the_first_message() {
        let log = Log::with_epoch(10, EPOCH);
        publish(&log, 5);
        let one = 10;
        let read = log.read_after(at(0), Budget { count: 100, bytes: 2 * one });
        assert_eq!((ids(&read), read.more), (vec![1, 2], true));
        let read = log.read_after(at(0), Budget { count: 100, bytes: 1 });
        assert_eq!((ids(&read), read.more), (vec![1], true));
    }

    #[test]
    fn a_reader_behind_retention_is_told_how_many_it_missed() {
        let log = Log::with_epoch(3, EPOCH);
        publish(&log, 10); // retains 8, 9, 10
        let read = log.read_after(at(2), ALL);
        assert_eq!(ids(&read), vec![8, 9, 10]);
        assert_eq!(read.missed, 5); // 3, 4, 5, 6, 7
        assert_eq!(log.read_after(at(0), ALL).missed, 7);
        assert_eq!(log.read_after(at(7), ALL).missed, 0);
    }

    #[test]
    fn a_cursor_of_another_run_starts_again_from_this_runs_first_message() {
        // The restart case: the client saw ids up to 10 of the old run; the new run has
        // 15 messages. It must get all 15, told that it was reset, not new 11–15 only.
        let log = Log::with_epoch(100, EPOCH);
        publish(&log, 15);
        let read = log.read_after(Cursor { epoch: Some(Epoch(1)), id: 10 }, ALL);
        assert!(read.reset);
        assert_eq!(ids(&read), (1..=15).collect::<Vec<_>>());
        assert_eq!(read.missed, 0);
        // Same run: no reset.
        assert!(!log.read_after(at(10), ALL).reset);
    }

    #[test]
    fn a_reset_reader_is_told_what_this_run_no_longer_holds() {
        let log = Log::with_epoch(3, EPOCH);
        publish(&log, 10);
        let read = log.read_after(Cursor { epoch: Some(Epoch(1)), id: 4 }, ALL);
        assert!(read.reset);
        assert_eq!((ids(&read), read.missed), (vec![8, 9, 10], 7));
    }

    #[test]
    fn a_bare_cursor_ahead_of_the_stream_is_a_reset() {
        let log = Log::with_epoch(3, EPOCH);
        publish(&log, 2);
        let read = log.read_after(Cursor { epoch: None, id: 50 }, ALL);
        assert!(read.reset);
        assert_eq!((ids(&read), read.last_id), (vec![1, 2], 2));
        assert!(!log.read_after(Cursor { epoch: None, id: 1 }, ALL).reset);
    }
}
