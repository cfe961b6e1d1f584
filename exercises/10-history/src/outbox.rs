// Fan-out workshop, exercise 10-history: generated from chapters/10-history by `cargo workshop generate`.
//
// Nothing to do in this file: it is the finished part of the exercise. Your part is in
// src/broker/history.rs, src/limits.rs, src/origin.rs.

//! A connection's queue, bounded in bytes as well as in messages.
//!
//! Until chapter 07 a queue held at most `--queue-capacity` messages, whatever their size: 256
//! messages of 64 KiB are 16 MiB, 256 messages of 40 bytes are 10 KiB. A count is the wrong
//! measure twice over. It lets a client that stalls on big messages hold a lot, and it drops a
//! burst of small messages that a healthy client would have taken in a moment. So the queue also
//! counts the bytes it holds and refuses a message that would take it over its budget
//! (`--queue-bytes`). The count stays as a backstop: an empty message costs no bytes, but still a
//! place in the queue.
//!
//! The two ends share one counter. The broker's end adds a message's size before it queues the
//! message; the writer's end subtracts it once it has taken the message out. Only the broker
//! sends, so nobody else can add between its check and its add.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use axum::extract::ws::Message;
use tokio::sync::mpsc::{
    self,
    error::{TryRecvError, TrySendError},
};

/// The bytes a queued message counts for: its payload. The payload is shared by every client's
/// queue it is in (cloning a `Message` clones a reference to it, see `forward`), so the budgets
/// of all queues together are an upper bound of what they hold.
pub fn payload_size(message: &Message) -> usize {
    match message {
        Message::Text(text) => text.len(),
        Message::Binary(bytes) | Message::Ping(bytes) | Message::Pong(bytes) => bytes.len(),
        Message::Close(_) => 0,
    }
}

/// The broker's end of a connection's queue.
#[derive(Debug)]
pub struct Outbox {
    sender: mpsc::Sender<Message>,
    /// The payload bytes in the queue now, shared with the [`Inbox`].
    queued: Arc<AtomicUsize>,
    /// The most bytes the queue may hold (`--queue-bytes`).
    budget: usize,
}

/// The writer's end of a connection's queue.
#[derive(Debug)]
pub struct Inbox {
    receiver: mpsc::Receiver<Message>,
    queued: Arc<AtomicUsize>,
}

/// A queue for one connection that holds at most `capacity` messages (at least 1) and at most
/// `budget` bytes of payload.
pub fn outbox(capacity: usize, budget: usize) -> (Outbox, Inbox) {
    let (sender, receiver) = mpsc::channel(capacity);
    let queued = Arc::new(AtomicUsize::new(0));
    let outbox = Outbox {
        sender,
        queued: Arc::clone(&queued),
        budget,
    };
    (outbox, Inbox { receiver, queued })
}

impl Outbox {
    /// Queues `message` if there is room for it, in places and in bytes; never waits. `Full`
    /// when there is not (the message comes back), `Closed` when the writer has ended.
    pub fn try_send(&self, message: Message) -> Result<(), TrySendError<Message>> {
        let size = payload_size(&message);
        let queued = self.queued.load(Ordering::Acquire);
        if queued.saturating_add(size) > self.budget {
            return Err(TrySendError::Full(message));
        }
        // Counted before it is queued, so that the writer, which subtracts once it has the
        // message, never takes the counter below zero.
        self.queued.fetch_add(size, Ordering::AcqRel);
        let sent = self.sender.try_send(message);
        if sent.is_err() {
            self.queued.fetch_sub(size, Ordering::AcqRel);
        }
        sent
    }
}

impl Inbox {
    /// Waits for at least one message, then moves every message already queued, up to `limit`,
    /// to the end of `batch`. Returns how many it moved: 0 only when the queue is closed and
    /// empty (or `limit` is 0). The messages moved still count against the budget until
    /// [`release`](Self::release) gives their bytes back: until they are written, this client
    /// still holds them.
    pub async fn recv_many(&mut self, batch: &mut Vec<Message>, limit: usize) -> usize {
        self.receiver.recv_many(batch, limit).await
    }

    /// Waits until the queue is closed, every [`Outbox`] for it dropped (the broker has let go of
    /// this client), throwing away what is still queued. A connection that is done holds its queue
    /// open until then: see `connection.rs`.
    pub async fn until_closed(mut self) {
        while self.receiver.recv().await.is_some() {}
    }

    /// Gives `bytes` back to the budget: those of messages taken by `recv_many` and now written.
    pub fn release(&self, bytes: usize) {
        self.queued.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// Takes one message if there is one, without waiting, and gives its bytes back at once: for
    /// a caller that is done with it as soon as it has it (the tests).
    pub fn try_recv(&mut self) -> Result<Message, TryRecvError> {
        let message = self.receiver.try_recv()?;
        self.queued
            .fetch_sub(payload_size(&message), Ordering::AcqRel);
        Ok(message)
    }

    /// How many messages are queued.
    pub fn len(&self) -> usize {
        self.receiver.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.receiver.is_empty()
    }

    /// How many payload bytes are queued.
    pub fn bytes(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
}

// Tests may panic: that is how they fail.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn bytes(n: usize) -> Message {
        Message::binary(vec![b'.'; n])
    }

    /// A message that would take the queue over its byte budget is refused and comes back;
    /// messages that fit are queued, however many, up to the count.
    #[test]
    fn the_queue_holds_at_most_its_budget_in_bytes() {
        let (outbox, inbox) = outbox(100, 1000);
        for _ in 0..4 {
            outbox
                .try_send(bytes(250))
                .expect("four of 250 bytes fit in 1000");
        }
        assert!(
            matches!(outbox.try_send(bytes(1)), Err(TrySendError::Full(_))),
            "a fifth byte should not fit in a budget of 1000 bytes"
        );
        assert_eq!((inbox.len(), inbox.bytes()), (4, 1000));
    }

    /// Taking messages out gives their bytes back, so the queue has room again.
    #[test]
    fn taking_messages_out_makes_room() {
        let (outbox, mut inbox) = outbox(100, 1000);
        outbox.try_send(bytes(600)).unwrap();
        assert!(outbox.try_send(bytes(600)).is_err(), "1200 bytes is over");
        inbox.try_recv().unwrap();
        assert_eq!(inbox.bytes(), 0, "the taken message's bytes are given back");
        outbox.try_send(bytes(600)).expect("room again");
    }

    /// The count still bounds the queue: empty messages cost no bytes, but a place each.
    #[test]
    fn the_count_still_bounds_the_queue() {
        let (outbox, inbox) = outbox(3, 1000);
        for _ in 0..3 {
            outbox.try_send(Message::text("")).unwrap();
        }
        assert!(matches!(
            outbox.try_send(Message::text("")),
            Err(TrySendError::Full(_))
        ));
        assert_eq!((inbox.len(), inbox.bytes()), (3, 0));
    }

    /// `recv_many` takes everything queued at once, up to its limit, in order; the bytes count
    /// until they are released; 0 means the broker's end is gone and nothing is left.
    #[tokio::test]
    async fn recv_many_takes_what_is_queued_in_order() {
        let (outbox, mut inbox) = outbox(100, 1000);
        for n in 0..5 {
            outbox.try_send(Message::text(n.to_string())).unwrap();
        }
        let mut batch = Vec::new();
        assert_eq!(inbox.recv_many(&mut batch, 3).await, 3);
        assert_eq!(inbox.recv_many(&mut batch, 3).await, 2);
        let texts: Vec<_> = batch.iter().map(|m| m.to_text().unwrap()).collect();
        assert_eq!(texts, ["0", "1", "2", "3", "4"]);
        assert_eq!(inbox.bytes(), 5, "taken, not yet written: still counted");
        inbox.release(5);
        assert_eq!(inbox.bytes(), 0);
        drop(outbox);
        assert_eq!(inbox.recv_many(&mut batch, 3).await, 0, "closed and empty");
    }

    /// `until_closed` outlasts whatever is still queued and returns only once the broker's end is
    /// gone: while it waits, the broker can still find the queue open.
    #[tokio::test]
    async fn until_closed_waits_for_the_broker_to_let_go() {
        let (outbox, inbox) = outbox(100, 1000);
        outbox.try_send(Message::text("unsent")).unwrap();
        let waiting = tokio::spawn(inbox.until_closed());
        tokio::task::yield_now().await;
        assert!(
            outbox.try_send(Message::text("still open")).is_ok(),
            "the queue should stay open while the broker holds its end"
        );
        drop(outbox);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("until_closed should return once the broker's end is dropped")
            .unwrap();
    }

    /// A refused message leaves the count as it was: a writer that has ended (`Closed`) costs
    /// no bytes.
    #[test]
    fn a_closed_queue_counts_nothing() {
        let (outbox, inbox) = outbox(100, 1000);
        let queued = Arc::clone(&inbox.queued);
        drop(inbox);
        assert!(matches!(
            outbox.try_send(bytes(10)),
            Err(TrySendError::Closed(_))
        ));
        assert_eq!(queued.load(Ordering::Acquire), 0);
    }
}
