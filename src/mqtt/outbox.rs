//! Delivery bookkeeping for transcripts: which are waiting, which are on the wire under which
//! packet id, which the broker has acknowledged. Pure: the event-loop thread feeds it rumqttc's
//! events and does what it says.
//!
//! Why our own queue: rumqttc forgets unacknowledged QoS 1 publishes when it reconnects to a
//! clean session (measured: 4 of 20 lost). Here an entry leaves only on its PubAck, and after a
//! reconnect everything not acknowledged is sent again, oldest first.
//!
//! rumqttc picks packet ids itself and reports them only as `Outgoing::Publish(pkid)` events, in
//! the order the publish requests were handed to it. So every publish the event loop hands to
//! rumqttc (transcript or not) is recorded here, and each such event is matched to the oldest
//! unmatched request.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

/// A transcript payload, shared between the outbox and the request in flight.
pub type Payload = Arc<[u8]>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not handed to rumqttc on the current connection.
    Queued,
    /// Handed to rumqttc; packet id not known yet.
    Submitted,
    /// On the wire with this packet id since then, waiting for its PubAck.
    InFlight(u16, Instant),
}

#[derive(Debug)]
struct Entry {
    id: u64,
    payload: Payload,
    state: State,
}

/// Bounded, ordered store of unacknowledged transcripts. When full, the oldest entry is dropped
/// and counted: under a long outage the newest speech is the most useful.
#[derive(Debug)]
pub struct Outbox {
    entries: VecDeque<Entry>,
    capacity: usize,
    dropped: u64,
    refused: u64,
    /// Publish requests handed to rumqttc whose `Outgoing::Publish` event has not come yet:
    /// `Some(id)` for a transcript, `None` for any other publish.
    submitted: VecDeque<Option<u64>>,
}

impl Outbox {
    pub fn new(capacity: usize) -> Outbox {
        Outbox {
            entries: VecDeque::new(),
            capacity: capacity.max(1),
            dropped: 0,
            refused: 0,
            submitted: VecDeque::new(),
        }
    }

    /// Adds a transcript. Returns the id of the entry dropped to make room, if any.
    /// Ids must increase (they order the spool files).
    pub fn push(&mut self, id: u64, payload: Payload) -> Option<u64> {
        let evicted = if self.entries.len() >= self.capacity {
            self.dropped += 1;
            self.entries.pop_front().map(|e| e.id)
        } else {
            None
        };
        self.entries.push_back(Entry {
            id,
            payload,
            state: State::Queued,
        });
        evicted
    }

    /// The oldest transcript not yet handed to rumqttc on this connection, if fewer than
    /// `window` are in flight; it is marked as handed over. The caller must pass it to rumqttc
    /// now, in this order.
    pub fn next_to_send(&mut self, window: usize) -> Option<(u64, Payload)> {
        if self.in_flight() >= window {
            return None;
        }
        let entry = self.entries.iter_mut().find(|e| e.state == State::Queued)?;
        entry.state = State::Submitted;
        self.submitted.push_back(Some(entry.id));
        Some((entry.id, entry.payload.clone()))
    }

    /// Records a publish that is not a transcript (status, stats, …), handed to rumqttc now.
    pub fn note_other_publish(&mut self) {
        self.submitted.push_back(None);
    }

    /// rumqttc wrote the oldest outstanding publish request with packet id `pkid`, at `now`.
    pub fn on_outgoing_publish(&mut self, pkid: u16, now: Instant) {
        let Some(Some(id)) = self.submitted.pop_front() else {
            return;
        };
        if let Some(e) = self.entries.iter_mut().find(|e| e.id == id) {
            // QoS 1 publishes always get a non-zero packet id.
            e.state = State::InFlight(pkid, now);
        }
    }

    /// The broker acknowledged `pkid`. Returns the id of the transcript that is now delivered
    /// (absent if it was dropped meanwhile, or if `pkid` was not a transcript).
    pub fn on_puback(&mut self, pkid: u16) -> Option<u64> {
        let pos = self
            .entries
            .iter()
            .position(|e| matches!(e.state, State::InFlight(p, _) if p == pkid))?;
        self.entries.remove(pos).map(|e| e.id)
    }

    /// The connection is gone; rumqttc drops whatever it had (clean session). Everything not
    /// acknowledged goes back to the queue, in its original order.
    pub fn on_disconnect(&mut self) {
        self.submitted.clear();
        for e in &mut self.entries {
            e.state = State::Queued;
        }
    }

    /// When the longest-waiting transcript on the wire was written. A PubAck that never comes
    /// (a packet lost inside the client, a broker bug) shows here; the event loop then reconnects,
    /// which re-sends it.
    pub fn oldest_in_flight(&self) -> Option<Instant> {
        self.entries
            .iter()
            .filter_map(|e| match e.state {
                State::InFlight(_, since) => Some(since),
                _ => None,
            })
            .min()
    }

    /// Transcripts handed to rumqttc and not acknowledged yet.
    pub fn in_flight(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.state != State::Queued)
            .count()
    }

    /// Makes every queued transcript fit in `max_payload` bytes: `shrink` gives a smaller
    /// version, or `None` when none fits. Returns the ids of the transcripts that could not be
    /// made to fit; they leave the outbox, counted as refused.
    pub fn fit_queued(
        &mut self,
        max_payload: usize,
        shrink: impl Fn(&[u8], usize) -> Option<Vec<u8>>,
    ) -> Vec<u64> {
        let mut refused = Vec::new();
        self.entries.retain_mut(|e| {
            if e.state != State::Queued || e.payload.len() <= max_payload {
                return true;
            }
            match shrink(&e.payload, max_payload).filter(|p| p.len() <= max_payload) {
                Some(smaller) => {
                    e.payload = smaller.into();
                    true
                }
                None => {
                    refused.push(e.id);
                    false
                }
            }
        });
        self.refused += refused.len() as u64;
        refused
    }

    /// The broker answered `pkid` with an error (not authorised, quota, …): the transcript
    /// leaves the outbox, counted as refused. Re-sending it would get the same answer.
    pub fn on_refused(&mut self, pkid: u16) -> Option<u64> {
        let id = self.on_puback(pkid)?;
        self.refused += 1;
        Some(id)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Transcripts dropped because the outbox was full, since creation.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Transcripts the broker refused or that exceeded its packet limit, since creation.
    pub fn refused(&self) -> u64 {
        self.refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> Instant {
        Instant::now()
    }

    fn p(s: &str) -> Payload {
        Arc::from(s.as_bytes())
    }

    fn sent(o: &mut Outbox, window: usize) -> Vec<u64> {
        std::iter::from_fn(|| o.next_to_send(window).map(|(id, _)| id)).collect()
    }

    #[test]
    fn entries_leave_only_on_their_puback() {
        let mut o = Outbox::new(10);
        for id in 1..=3 {
            o.push(id, p("x"));
        }
        assert_eq!(sent(&mut o, 10), vec![1, 2, 3]);
        o.note_other_publish(); // e.g. stats between transcripts
        let sent_at = t0();
        for pkid in [1, 2, 3, 0] {
            o.on_outgoing_publish(pkid, sent_at);
        }
        assert_eq!(o.oldest_in_flight(), Some(sent_at));
        assert_eq!(o.on_puback(2), Some(2));
        assert_eq!(o.on_puback(2), None, "a duplicate ack removes nothing");
        assert_eq!(o.on_puback(9), None, "unknown pkid");
        assert_eq!(o.len(), 2);
        assert_eq!(o.on_puback(1), Some(1));
        assert_eq!(o.on_puback(3), Some(3));
        assert!(o.is_empty());
        assert_eq!(o.oldest_in_flight(), None);
    }

    #[test]
    fn other_publishes_keep_packet_ids_matched() {
        let mut o = Outbox::new(10);
        o.push(1, p("a"));
        o.push(2, p("b"));
        o.note_other_publish();
        assert_eq!(sent(&mut o, 1), vec![1], "window of one");
        o.on_outgoing_publish(0, t0()); // the status message
        o.on_outgoing_publish(7, t0()); // transcript 1
        assert_eq!(sent(&mut o, 1), Vec::<u64>::new());
        assert_eq!(o.on_puback(7), Some(1));
        assert_eq!(sent(&mut o, 1), vec![2]);
        o.on_outgoing_publish(8, t0());
        assert_eq!(o.on_puback(8), Some(2));
    }

    #[test]
    fn disconnect_requeues_everything_unacked_in_order() {
        let mut o = Outbox::new(10);
        for id in 1..=5 {
            o.push(id, p("x"));
        }
        assert_eq!(sent(&mut o, 3), vec![1, 2, 3]);
        o.on_outgoing_publish(11, t0());
        o.on_outgoing_publish(12, t0());
        // 3 was handed over but never written before the connection died.
        assert_eq!(o.on_puback(12), Some(2));
        o.on_disconnect();
        assert_eq!(o.in_flight(), 0);
        assert_eq!(sent(&mut o, 10), vec![1, 3, 4, 5]);
        // Events of the old connection are forgotten: the new ones match the new requests.
        o.on_outgoing_publish(1, t0());
        assert_eq!(o.on_puback(1), Some(1));
    }

    #[test]
    fn full_outbox_drops_oldest_and_counts() {
        let mut o = Outbox::new(3);
        for id in 1..=3 {
            assert_eq!(o.push(id, p("x")), None);
        }
        assert_eq!(sent(&mut o, 10), vec![1, 2, 3]);
        o.on_outgoing_publish(1, t0());
        assert_eq!(o.push(4, p("x")), Some(1));
        assert_eq!(o.push(5, p("x")), Some(2));
        assert_eq!(o.dropped(), 2);
        // The ack of a dropped entry is harmless.
        assert_eq!(o.on_puback(1), None);
        o.on_disconnect();
        assert_eq!(sent(&mut o, 10), vec![3, 4, 5]);
    }

    #[test]
    fn queued_entries_are_fitted_or_refused() {
        let mut o = Outbox::new(10);
        o.push(1, p("short"));
        o.push(2, p("much too long"));
        o.push(3, p("far far far too long"));
        o.push(4, p("ok"));
        // Shrinks to the first `max` bytes when the payload starts with "much", else cannot.
        let shrink = |b: &[u8], max: usize| b.starts_with(b"much").then(|| b[..max].to_vec());
        assert_eq!(o.fit_queued(8, shrink), vec![3]);
        assert_eq!(o.refused(), 1);
        let sent: Vec<Vec<u8>> = std::iter::from_fn(|| o.next_to_send(10))
            .map(|(_, p)| p.to_vec())
            .collect();
        assert_eq!(
            sent,
            vec![b"short".to_vec(), b"much too".to_vec(), b"ok".to_vec()]
        );
        // Entries already handed to the client are left alone.
        assert!(o.fit_queued(1, shrink).is_empty());
    }

    #[test]
    fn a_refused_transcript_leaves_and_is_counted() {
        let mut o = Outbox::new(10);
        o.push(1, p("a"));
        o.push(2, p("b"));
        assert_eq!(sent(&mut o, 10), vec![1, 2]);
        o.on_outgoing_publish(7, t0());
        o.on_outgoing_publish(8, t0());
        assert_eq!(o.on_refused(8), Some(2));
        assert_eq!(o.on_refused(8), None);
        assert_eq!((o.refused(), o.len()), (1, 1));
        o.on_disconnect();
        assert_eq!(sent(&mut o, 10), vec![1], "the refused one is not re-sent");
    }
}
