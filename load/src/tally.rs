//! What one reading client counts as messages arrive, and how the counts of all clients add up.
//!
//! Each client keeps its own [`Tally`], touched by nobody else while the run goes on (no lock, no
//! shared counter per delivery); the run merges them at the end.

use hdrhistogram::Histogram;

use crate::payload::Stamp;

/// The highest latency the histograms record exactly; anything slower counts as this much.
pub const LATENCY_CEILING_US: u64 = 60_000_000;

/// A latency histogram: 1 µs to a minute, three significant digits (0.1 % resolution).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_CEILING_US, 3).expect("constant, valid bounds")
}

/// One client's view of one sender.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SenderTally {
    /// Messages of this sender received.
    pub delivered: u64,
    /// Messages that arrived after a later one of the same sender.
    pub out_of_order: u64,
    /// One past the highest sequence number received: what this client has seen of the sender.
    pub next: u64,
}

/// What one reading client has received.
#[derive(Debug, Clone)]
pub struct Tally {
    /// This client's own sender number, when it is a sender: its own messages should not come back.
    own_sender: Option<u32>,
    per_sender: Vec<SenderTally>,
    /// Made at the first delivery: a client that receives nothing (an idle one among 10,000)
    /// should not cost the generator a histogram's memory.
    latency: Option<Histogram<u64>>,
    /// With the clients spread over several servers: per sender, whether it is on another
    /// server than this client. `None` with one server, and then nothing below is recorded.
    cross_sender: Option<Vec<bool>>,
    /// The latencies again, split: messages whose sender is on this client's server, and those
    /// that crossed from another server.
    same_latency: Option<Histogram<u64>>,
    cross_latency: Option<Histogram<u64>>,
    /// Frames that were not the generator's messages (system notices, say).
    pub other: u64,
    /// The client's own messages, sent back to it.
    pub echoed: u64,
    /// When the latest message arrived, in microseconds since the run started.
    pub last_delivery_us: u64,
}

impl Tally {
    /// A tally for a run with `senders` senders, for a client that is sender `own_sender` (if any).
    pub fn new(senders: usize, own_sender: Option<u32>) -> Tally {
        Tally {
            own_sender,
            per_sender: vec![SenderTally::default(); senders],
            latency: None,
            cross_sender: None,
            same_latency: None,
            cross_latency: None,
            other: 0,
            echoed: 0,
            last_delivery_us: 0,
        }
    }

    /// This tally splits its latencies into same-server and cross-server deliveries:
    /// `cross_sender[s]` says whether sender `s` is on another server than this client.
    pub fn split_by_server(mut self, cross_sender: Vec<bool>) -> Tally {
        self.cross_sender = Some(cross_sender);
        self
    }

    /// Counts a message stamped `stamp` that arrived at `received_at_us`. Returns the sender's
    /// tally after it, or `None` when the message is not one to count (its own, an unknown sender).
    pub fn record(&mut self, stamp: Stamp, received_at_us: u64) -> Option<SenderTally> {
        if self.own_sender == Some(stamp.sender) {
            self.echoed += 1;
            return None;
        }
        let Some(sender) = usize::try_from(stamp.sender)
            .ok()
            .and_then(|index| self.per_sender.get_mut(index))
        else {
            self.other += 1;
            return None;
        };
        sender.delivered += 1;
        if stamp.seq < sender.next {
            sender.out_of_order += 1;
        } else {
            sender.next = stamp.seq + 1;
        }
        let tally = *sender;
        let latency = received_at_us.saturating_sub(stamp.sent_at_us).max(1);
        self.latency
            .get_or_insert_with(new_histogram)
            .saturating_record(latency);
        if let Some(cross_sender) = &self.cross_sender {
            let crossed = cross_sender
                .get(stamp.sender as usize)
                .copied()
                .unwrap_or(false);
            let split = if crossed {
                &mut self.cross_latency
            } else {
                &mut self.same_latency
            };
            split
                .get_or_insert_with(new_histogram)
                .saturating_record(latency);
        }
        self.last_delivery_us = self.last_delivery_us.max(received_at_us);
        Some(tally)
    }

    /// Counts a frame that was not one of the generator's messages.
    pub fn record_other(&mut self) {
        self.other += 1;
    }

    /// What this client received of each sender, by sender number.
    pub fn per_sender(&self) -> &[SenderTally] {
        &self.per_sender
    }

    /// All the generator's messages this client received (its own excluded).
    pub fn delivered(&self) -> u64 {
        self.per_sender.iter().map(|sender| sender.delivered).sum()
    }

    /// The one-way latencies recorded, if any message arrived.
    pub fn latency(&self) -> Option<&Histogram<u64>> {
        self.latency.as_ref()
    }

    /// The latencies of messages from a sender on this client's own server, when split.
    pub fn same_server_latency(&self) -> Option<&Histogram<u64>> {
        self.same_latency.as_ref()
    }

    /// The latencies of messages that crossed from another server, when split.
    pub fn cross_server_latency(&self) -> Option<&Histogram<u64>> {
        self.cross_latency.as_ref()
    }

    /// Adds `other`'s counts and latencies to this tally (the sums a run reports).
    pub fn merge(&mut self, other: &Tally) {
        if self.per_sender.len() < other.per_sender.len() {
            self.per_sender
                .resize(other.per_sender.len(), SenderTally::default());
        }
        for (mine, theirs) in self.per_sender.iter_mut().zip(&other.per_sender) {
            mine.delivered += theirs.delivered;
            mine.out_of_order += theirs.out_of_order;
            mine.next = mine.next.max(theirs.next);
        }
        for (mine, theirs) in [
            (&mut self.latency, &other.latency),
            (&mut self.same_latency, &other.same_latency),
            (&mut self.cross_latency, &other.cross_latency),
        ] {
            if let Some(theirs) = theirs {
                mine.get_or_insert_with(new_histogram)
                    .add(theirs)
                    .expect("every histogram has the same bounds");
            }
        }
        self.other += other.other;
        self.echoed += other.echoed;
        self.last_delivery_us = self.last_delivery_us.max(other.last_delivery_us);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(sender: u32, seq: u64, sent_at_us: u64) -> Stamp {
        Stamp {
            sender,
            seq,
            sent_at_us,
        }
    }

    /// Messages in order are delivered and none is out of order.
    #[test]
    fn in_order_messages_are_delivered() {
        let mut tally = Tally::new(2, None);
        for seq in 0..5 {
            tally.record(stamp(1, seq, 10), 20);
        }
        assert_eq!(
            tally.per_sender()[1],
            SenderTally {
                delivered: 5,
                out_of_order: 0,
                next: 5
            }
        );
        assert_eq!(tally.delivered(), 5);
    }

    /// A gap is not out of order by itself (the missing message may simply be lost); a message
    /// that arrives after a later one of its sender is.
    #[test]
    fn a_late_message_is_out_of_order_and_a_gap_is_not() {
        let mut tally = Tally::new(1, None);
        tally.record(stamp(0, 0, 0), 1);
        tally.record(stamp(0, 2, 0), 1);
        assert_eq!(tally.per_sender()[0].out_of_order, 0, "a gap alone");
        tally.record(stamp(0, 1, 0), 1);
        assert_eq!(
            tally.per_sender()[0],
            SenderTally {
                delivered: 3,
                out_of_order: 1,
                next: 3
            },
            "seq 1 came after seq 2"
        );
    }

    /// Out-of-order counting is per sender: interleaved senders are each in order.
    #[test]
    fn senders_are_counted_apart() {
        let mut tally = Tally::new(2, None);
        tally.record(stamp(0, 0, 0), 1);
        tally.record(stamp(1, 5, 0), 1);
        tally.record(stamp(0, 1, 0), 1);
        tally.record(stamp(1, 6, 0), 1);
        assert_eq!(tally.per_sender()[0].out_of_order, 0);
        assert_eq!(tally.per_sender()[1].out_of_order, 0);
        assert_eq!(tally.per_sender()[1].next, 7);
    }

    /// A client's own messages and unknown senders are not deliveries.
    #[test]
    fn own_messages_and_unknown_senders_are_not_deliveries() {
        let mut tally = Tally::new(2, Some(0));
        assert_eq!(tally.record(stamp(0, 0, 0), 1), None, "its own message");
        assert_eq!(
            tally.record(stamp(9, 0, 0), 1),
            None,
            "no sender 9 in this run"
        );
        assert_eq!(tally.delivered(), 0);
        assert_eq!((tally.echoed, tally.other), (1, 1));
        assert!(tally.latency().is_none(), "nothing was delivered");
    }

    /// Latency is receive time minus send time, recorded per delivery.
    #[test]
    fn latency_is_receive_time_minus_send_time() {
        let mut tally = Tally::new(1, None);
        tally.record(stamp(0, 0, 1_000), 1_250);
        tally.record(stamp(0, 1, 2_000), 2_750);
        let latency = tally.latency().expect("two deliveries");
        assert_eq!(latency.len(), 2);
        assert_eq!(latency.min(), 250);
        assert!(
            latency.equivalent(latency.max(), 750),
            "max {}",
            latency.max()
        );
        assert_eq!(tally.last_delivery_us, 2_750);
    }

    /// Split by server, each delivery's latency also goes to the same-server or the
    /// cross-server histogram, by where its sender is; merged tallies add both.
    #[test]
    fn latencies_are_split_by_where_the_sender_is() {
        // Sender 0 on this client's server, sender 1 on another.
        let mut tally = Tally::new(2, None).split_by_server(vec![false, true]);
        tally.record(stamp(0, 0, 0), 100);
        tally.record(stamp(1, 0, 0), 900);
        tally.record(stamp(1, 1, 0), 1_000);
        let same = tally
            .same_server_latency()
            .expect("one same-server delivery");
        let cross = tally
            .cross_server_latency()
            .expect("two cross-server deliveries");
        assert_eq!((same.len(), cross.len()), (1, 2));
        assert_eq!(same.max(), 100);
        assert!(cross.min() >= 900, "cross min {}", cross.min());

        let mut total = Tally::new(2, None);
        total.merge(&tally);
        total.merge(&tally);
        assert_eq!(total.latency().map(Histogram::len), Some(6));
        assert_eq!(total.cross_server_latency().map(Histogram::len), Some(4));

        let mut alone = Tally::new(1, None);
        alone.record(stamp(0, 0, 0), 5);
        assert!(
            alone.same_server_latency().is_none() && alone.cross_server_latency().is_none(),
            "with one server nothing is split"
        );
    }

    /// Merging adds every client's deliveries, out-of-order counts and latencies.
    #[test]
    fn merged_tallies_add_up() {
        let mut first = Tally::new(2, None);
        first.record(stamp(0, 0, 0), 100);
        first.record(stamp(1, 1, 0), 200);
        first.record(stamp(1, 0, 0), 300);
        let mut second = Tally::new(2, Some(1));
        second.record(stamp(0, 0, 0), 5_000);
        second.record_other();

        let mut total = Tally::new(2, None);
        total.merge(&first);
        total.merge(&second);
        assert_eq!(total.delivered(), 4);
        assert_eq!(total.per_sender()[0].delivered, 2);
        assert_eq!(total.per_sender()[1].out_of_order, 1);
        assert_eq!(total.other, 1);
        let latency = total.latency().expect("latencies were merged");
        assert_eq!(latency.len(), 4, "every delivery's latency");
        assert!(latency.equivalent(latency.max(), 5_000));
        assert_eq!(total.last_delivery_us, 5_000);
    }
}
