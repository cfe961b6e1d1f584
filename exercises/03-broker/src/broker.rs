// Fan-out workshop, exercise 03-broker: generated from chapters/03-broker by `cargo workshop generate`.
//
// Your part: replace the 3 `todo!(..)`s in this file with working code. The rest already works;
// leave it as it is. `cargo workshop check 03` runs the stage tests,
// `cargo workshop hint 03` gives a hint, `cargo workshop reset 03` starts over.

//! The broker: one task that owns the map of connections.
//!
//! Nobody else touches the map, so it needs no `Mutex`: connections talk to the broker by sending
//! it [`Event`]s over a channel, and the broker handles them one at a time, in the order they
//! arrived. That order is what keeps each sender's messages in sequence.

use std::{
    collections::HashMap,
    fmt,
    sync::atomic::{AtomicU64, Ordering},
};

use axum::extract::ws::Message;
use tokio::sync::mpsc;

/// Names one connection for as long as the process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId(u64);

impl ConnId {
    /// A fresh id, never handed out before.
    pub fn next() -> ConnId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        ConnId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// The sending end of a connection's writer queue: what the broker holds for each client.
pub type Outbox = mpsc::UnboundedSender<Message>;

/// What connections tell the broker.
#[derive(Debug)]
pub enum Event {
    /// A client connected; messages for it go to `outbox`.
    Join { id: ConnId, outbox: Outbox },
    /// A client went away.
    Leave { id: ConnId },
    /// A client sent `message`, to be forwarded to everybody else.
    Message { from: ConnId, message: Message },
}

/// Starts the broker task and returns the sender that connections use to reach it.
pub fn spawn() -> mpsc::UnboundedSender<Event> {
    let (events, events_rx) = mpsc::unbounded_channel();
    tokio::spawn(run(events_rx));
    events
}

/// The broker's loop: one event at a time until every sender is gone.
pub async fn run(mut events: mpsc::UnboundedReceiver<Event>) {
    todo!(
        "Done when: the broker applies every event to its map in the order the events arrive, and returns once every sender of events is gone. Tests: `broadcast::keeps_each_senders_order`, `broadcast::delivers_to_every_other_client`."
    )
}

/// The broker's state: every connected client's outbox.
#[derive(Debug, Default)]
pub struct Broker {
    outboxes: HashMap<ConnId, Outbox>,
}

impl Broker {
    /// Applies one event to the map.
    pub fn handle(&mut self, event: Event) {
        todo!(
            "Done when: a client that joined is in the map, one that left is not (leaving twice changes nothing), and a message is passed on. Tests: `broker::tests::removing_an_unknown_id_is_harmless`."
        )
    }

    /// Sends `message` to every client except the one it came from.
    fn forward(&self, from: ConnId, message: &Message) {
        todo!(
            "Done when: a message reaches every connected client but its sender, and a client whose writer has ended does not keep it from the others. Tests: `broker::tests::forwards_to_everyone_but_the_sender`, `broker::tests::a_vanished_writer_does_not_stop_the_others`, `broker::tests::a_client_that_left_gets_nothing_more`."
        )
    }

    /// How many clients are connected.
    pub fn len(&self) -> usize {
        self.outboxes.len()
    }

    /// Whether no client is connected.
    pub fn is_empty(&self) -> bool {
        self.outboxes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(broker: &mut Broker) -> (ConnId, mpsc::UnboundedReceiver<Message>) {
        let id = ConnId::next();
        let (outbox, outbox_rx) = mpsc::unbounded_channel();
        broker.handle(Event::Join { id, outbox });
        (id, outbox_rx)
    }

    /// A message reaches every other client, and not its sender.
    #[test]
    fn forwards_to_everyone_but_the_sender() {
        let mut broker = Broker::default();
        let (alice, mut alice_rx) = join(&mut broker);
        let (_bob, mut bob_rx) = join(&mut broker);
        let (_carol, mut carol_rx) = join(&mut broker);
        broker.handle(Event::Message {
            from: alice,
            message: Message::text("hi"),
        });
        assert_eq!(
            bob_rx.try_recv().ok(),
            Some(Message::text("hi")),
            "bob should get alice's message"
        );
        assert_eq!(
            carol_rx.try_recv().ok(),
            Some(Message::text("hi")),
            "carol should get alice's message"
        );
        assert!(
            alice_rx.try_recv().is_err(),
            "alice must not hear her own message"
        );
    }

    /// Leaving twice, or leaving with an id the broker never saw, changes nothing and does not panic.
    #[test]
    fn removing_an_unknown_id_is_harmless() {
        let mut broker = Broker::default();
        let (alice, _alice_rx) = join(&mut broker);
        broker.handle(Event::Leave { id: ConnId::next() });
        broker.handle(Event::Leave { id: alice });
        broker.handle(Event::Leave { id: alice });
        assert!(broker.is_empty(), "only alice was there, and she left");
    }

    /// After a client leaves, it is sent nothing more, and its writer's queue is closed.
    #[test]
    fn a_client_that_left_gets_nothing_more() {
        let mut broker = Broker::default();
        let (alice, _alice_rx) = join(&mut broker);
        let (bob, mut bob_rx) = join(&mut broker);
        broker.handle(Event::Leave { id: bob });
        broker.handle(Event::Message {
            from: alice,
            message: Message::text("anyone?"),
        });
        assert_eq!(
            bob_rx.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected),
            "bob left: his queue should be closed and empty"
        );
    }

    /// A message to a client whose writer has already ended is skipped without disturbing others.
    #[test]
    fn a_vanished_writer_does_not_stop_the_others() {
        let mut broker = Broker::default();
        let (alice, _alice_rx) = join(&mut broker);
        let (_bob, bob_rx) = join(&mut broker);
        let (_carol, mut carol_rx) = join(&mut broker);
        drop(bob_rx);
        broker.handle(Event::Message {
            from: alice,
            message: Message::text("still here"),
        });
        assert_eq!(carol_rx.try_recv().ok(), Some(Message::text("still here")));
    }
}
