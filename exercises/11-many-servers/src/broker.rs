// Fan-out workshop, exercise 11-many-servers: generated from chapters/11-many-servers by `cargo workshop generate`.
//
// Nothing to do in this file: it is the finished part of the exercise. Your part is in
// src/bridge.rs, src/broker/cluster.rs.

//! The broker: one task that owns the map of connected clients, and now the rooms and the names.
//!
//! Nobody else touches the maps, so they need no `Mutex`: connections talk to the broker by
//! sending it [`Event`]s over a channel, and the broker handles them one at a time, in the order
//! they arrived. That order is what keeps each sender's messages in sequence, and what makes a
//! room's story the same for all its members: a message said before bob joined reaches nobody
//! who is told "bob joined" first.
//!
//! Every queue here is bounded. The broker never waits for a client: when a client's queue is
//! full, that client misses the message and nobody else notices. A client whose queue stays full
//! for longer than the stall limit (`--write-timeout`) is let go: it has stopped reading, and a
//! client that misses everything is better told so than kept.
//!
//! Since the broker sees every message, it is also the one that can count them. Anyone who wants
//! the counts asks it with an [`Event::Stats`] that carries a oneshot sender for the answer: the
//! actor's way of answering a question without sharing its state.
//! (Since chapter 10 the counts are atomics that `/metrics` reads too, at any moment: see
//! `metrics.rs`. Counting is still the broker's alone, and costs it an atomic add.)
//!
//! Since chapter 10 it also numbers what clients say and hands it to the storage task, and joins
//! a newcomer's history to the live messages without a gap or a repeat (`broker/history.rs`).

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::extract::ws::Message;
use serde::Serialize;
use tokio::{
    sync::{
        mpsc::{self, error::TrySendError},
        oneshot,
    },
    task::JoinHandle,
    time::Instant,
};

use crate::{
    bridge::Bridged,
    message::{Body, ChatMessage, Payloads, Wire},
    metrics::{Disconnect, Dropped, Metrics, Refusal},
    names::{Nick, NickKey, Room},
};

// What each command does to the maps: see commands.rs.
mod commands;
// Keeping what is said, and replaying it on a join: see history.rs.
mod history;
// Sharing rooms, names and presence with the other servers: see cluster.rs.
mod cluster;
// A client's lines wait while its name is being claimed, to keep their order: see claiming.rs.
mod claiming;

pub use cluster::Cluster;

pub use history::History;
use history::Pending;

/// Names one connection for as long as the process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(u64);

impl ConnId {
    /// A fresh id, never handed out before.
    pub fn next() -> ConnId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        ConnId(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The number itself: with the instance's, it names a client across servers (`bridge.rs`).
    pub fn number(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

pub use crate::outbox::Outbox;

/// What connections tell the broker.
#[derive(Debug)]
pub enum Event {
    /// A client connected; messages for it go to `outbox`, rendered for `wire`. Its name and
    /// room are recorded in `span`, its connection's span, as they change (see `trace.rs`).
    Join {
        id: ConnId,
        outbox: Outbox,
        wire: Wire,
        span: tracing::Span,
    },
    /// A client went away, for `reason` (counted by `/metrics`, unless it was removed already).
    Leave { id: ConnId, reason: Disconnect },
    /// A client sent `message`: a line of text (something to say, or a command), or binary data
    /// for the other members of its room.
    Message { from: ConnId, message: Message },
    /// Tell `to` `reason`, as an error: what it sent could not be read (a line too long, not
    /// UTF-8), or what it must do (a terminal silent for a while: send a line).
    Refusal { to: ConnId, reason: String },
    /// Somebody wants the counts: the broker sends them to `reply`.
    Stats { reply: oneshot::Sender<Stats> },
    /// A client was turned away at `--max-connections` (it never joined; this is for the count).
    Refused,
    /// A client is being cut off by the write or the idle timeout: it leaves now, and is counted
    /// once however many timeouts caught it (its own Leave follows, and changes nothing).
    TimedOut { id: ConnId },
    /// The storage task's answer to request `ticket` for `to` (see `broker/history.rs`): the
    /// messages, oldest first, or what to tell the client instead.
    History {
        to: ConnId,
        ticket: u64,
        answer: Result<Vec<ChatMessage>, String>,
    },
    /// From the bridge to the other servers (`--redis`): their news, Redis's state, the answer
    /// to a claim on a name.
    Bridge(Bridged),
}

/// The broker's counts, as `GET /stats` shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Clients connected now.
    pub connections: u64,
    /// Rooms now, the lobby included (it is always there).
    pub rooms: u64,
    /// Clients connected now that chose a name (the others have a guest name).
    pub named: u64,
    /// Messages received from clients, since the start (commands included).
    pub messages_in: u64,
    /// What clients said, put in another client's queue (one message to three clients is three
    /// deliveries). The server's own notices and answers are not counted.
    pub deliveries: u64,
    /// What clients said, not delivered to a client because its queue was full.
    pub dropped: u64,
    /// Clients removed so far: those that left, and those whose writer had ended.
    pub disconnected: u64,
    /// WebSocket handshakes refused because `--max-connections` clients were connected.
    pub refused: u64,
    /// Clients cut off for being too slow or too silent: a write that took longer than
    /// `--write-timeout`, a queue full for that long, or nothing heard for `--idle-timeout`.
    pub timed_out: u64,
    /// Messages not kept in the history because the storage task's queue was full.
    pub history_dropped: u64,
    /// Messages written to the history's database.
    pub history_written: u64,
    /// Times the history's database failed: a batch, a read, or an attempt to reopen it.
    pub history_failures: u64,
    /// With `--redis`: messages the other servers were not told, because the bridge's queue was
    /// full or Redis was out of reach.
    pub unpublished: u64,
    /// With `--redis`: the other servers heard from lately.
    pub peers: u64,
    /// With `--redis`: messages from the other servers dropped on arrival, the bridge's queue
    /// being full.
    pub unheard: u64,
}

/// Starts the broker task and returns the sender that connections use to reach it, and the task
/// itself, whose end `serve` watches for (⑥). At most `capacity` events wait for the broker; a
/// reader that finds the queue full waits for room. A client whose queue stays full for
/// `stall_limit` is let go (⑪).
pub fn spawn(capacity: usize, stall_limit: Duration) -> (mpsc::Sender<Event>, JoinHandle<()>) {
    let (events, events_rx) = mpsc::channel(capacity);
    let task = tokio::spawn(run(events_rx, stall_limit));
    (events, task)
}

/// The broker's loop: one event at a time until every sender is gone.
pub async fn run(events: mpsc::Receiver<Event>, stall_limit: Duration) {
    run_broker(events, Broker::new(stall_limit)).await;
}

/// [`run`], with a broker made by the caller (one that keeps history: see `serve`).
pub async fn run_broker(mut events: mpsc::Receiver<Event>, mut broker: Broker) {
    // ② `recv` returns `None` only once every sender is gone: the app state and every connection
    // have been dropped, so no event can ever come again and there is nobody left to serve.
    while let Some(event) = events.recv().await {
        broker.handle(event);
    }
}

/// What the broker keeps for one client.
#[derive(Debug)]
struct Client {
    outbox: Outbox,
    /// Messages this client has missed since it last had room in its queue (for the log).
    missed: u64,
    /// When a message first found this client's queue full, if none has found room since.
    full_since: Option<Instant>,
    /// JSON over a WebSocket, or lines over plain TCP.
    wire: Wire,
    /// Its name now: `guest-N` until it chooses one.
    nick: Nick,
    /// The one room it is in.
    room: Room,
    /// While its history is on its way: what it would have received meanwhile.
    pending: Option<Pending>,
    /// While its name is being claimed (`--redis`): what it sent meanwhile, to be carried out
    /// once the answer is in (see `broker/claiming.rs`).
    claiming: Option<claiming::Claiming>,
    /// Its connection's span, where its name and room are recorded.
    span: tracing::Span,
}

/// How long a client's queue may stay full when nobody says otherwise: the default of
/// `--write-timeout`, which is what `serve` passes.
pub const DEFAULT_STALL_LIMIT: Duration = Duration::from_secs(10);

/// The broker's state: every connected client, the rooms and the names, and the counts. The
/// three maps say the same thing three ways, and `handle` keeps them in step: every client is in
/// `clients`, in the members of exactly its `room`, and in `names` under its nick's key.
#[derive(Debug)]
pub struct Broker {
    clients: HashMap<ConnId, Client>,
    /// Room → its members. The lobby is always here; another room goes with its last member.
    /// Sorted, so that `/rooms` lists them in order.
    rooms: BTreeMap<Room, BTreeSet<ConnId>>,
    /// Nick (in lower case) → who holds it: what makes a name taken.
    names: HashMap<NickKey, ConnId>,
    /// The number of the last guest name handed out.
    guests: u64,
    /// The counts (everything in `/stats` but what the maps know), shared with `/metrics`.
    metrics: Arc<Metrics>,
    /// How long a client's queue may stay full before the client is let go.
    stall_limit: Duration,
    /// The storage task and the numbers of what is said; `None` keeps no history.
    history: Option<History>,
    /// The way to the other servers and what is known of them; `None` without `--redis`.
    cluster: Option<Cluster>,
}

impl Default for Broker {
    fn default() -> Broker {
        Broker::new(DEFAULT_STALL_LIMIT)
    }
}

/// What one message is, for [`Broker::send`]: something the broker says (counted or not), or a
/// client's binary data passed on as it came.
enum Outgoing<'a> {
    Chat(&'a ChatMessage),
    Raw(&'a Message),
}

impl Broker {
    /// A broker with nobody connected that lets a client go once its queue has been full for
    /// `stall_limit`.
    pub fn new(stall_limit: Duration) -> Broker {
        Broker {
            clients: HashMap::new(),
            rooms: BTreeMap::from([(Room::lobby(), BTreeSet::new())]),
            names: HashMap::new(),
            guests: 0,
            metrics: Arc::default(),
            stall_limit,
            history: None,
            cluster: None,
        }
    }

    /// Applies one event to the maps. It is not `async`: the broker cannot wait for anybody, so
    /// one slow client can never hold up the others.
    pub fn handle(&mut self, event: Event) {
        let now = Instant::now();
        self.handle_at(event, now);
        // What `/metrics` shows of the broker: atomics, set and bumped without waiting.
        self.metrics.broker_event.observe(now.elapsed());
        self.show_rooms();
    }

    /// This broker counts into `metrics`, which `/metrics` shows (see `serve`).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Broker {
        self.metrics = metrics;
        self.show_rooms();
        self
    }

    /// Sets the rooms' gauge to the rooms there are.
    fn show_rooms(&self) {
        let rooms = i64::try_from(self.rooms.len()).unwrap_or(i64::MAX);
        self.metrics.rooms.set(rooms);
    }

    /// [`handle`](Self::handle), at the time `now`: the broker reads the clock only here, so a
    /// test can play any sequence of events at any pace.
    pub fn handle_at(&mut self, event: Event, now: Instant) {
        match event {
            Event::Join {
                id,
                outbox,
                wire,
                span,
            } => self.connect(id, outbox, wire, span, now),
            Event::Leave { id, reason } => {
                // Removing an id that is not there is fine: `remove` just returns `false`. That
                // happens when the broker has already removed a connection whose writer ended.
                // Dropping the outbox ends that connection's writer.
                self.remove(id, reason, now);
            }
            Event::Stats { reply } => {
                // If the asker has given up waiting, nobody reads the answer, and that is fine.
                let _ = reply.send(self.stats());
            }
            Event::Message { from, message } => {
                self.metrics.messages_in.inc();
                // A line is said or carried out, binary data goes to the room as it came: now,
                // or after the answer to the client's claim on a name (see claiming.rs).
                if let Message::Text(_) | Message::Binary(_) = message {
                    self.take_in(from, message, now);
                }
            }
            Event::Refusal { to, reason } => self.tell(to, Body::Error { text: reason }, now),
            Event::Refused => self.metrics.refused.inc(Refusal::Total),
            Event::TimedOut { id } => {
                self.remove(id, Disconnect::Timeout, now);
            }
            Event::History { to, ticket, answer } => self.answer_history(to, ticket, answer, now),
            Event::Bridge(bridged) => self.bridged(bridged, now),
        }
    }

    /// A new client: a guest name, the lobby, and a word to both.
    fn connect(
        &mut self,
        id: ConnId,
        outbox: Outbox,
        wire: Wire,
        span: tracing::Span,
        now: Instant,
    ) {
        let nick = self.next_guest();
        let lobby = Room::lobby();
        self.names.insert(nick.key(), id);
        self.rooms.entry(lobby.clone()).or_default().insert(id);
        let client = Client {
            outbox,
            missed: 0,
            full_since: None,
            wire,
            nick: nick.clone(),
            room: lobby.clone(),
            pending: None,
            claiming: None,
            span,
        };
        // Its connection's log lines say who and where it is from now on (see trace.rs).
        crate::trace::record_name(&client.span, &nick);
        crate::trace::record_room(&client.span, &lobby);
        self.clients.insert(id, client);
        self.metrics.accepted.inc(wire);
        self.metrics.connections.inc(wire);
        self.announce(
            id,
            Body::Joined {
                room: lobby.to_string(),
                name: nick.to_string(),
            },
            now,
        );
        self.welcome(id, now);
        self.warn_if_apart(id, now);
        self.publish_member(id);
        // Then what was said in the lobby before: see broker/history.rs.
        self.request_history(id, None, false, now);
    }

    /// `guest-N` for the next N whose name is free. Nobody can choose a name of that form (see
    /// `names.rs`), so the first one tried is free; the loop is for certainty, not for need.
    fn next_guest(&mut self) -> Nick {
        let instance = self.cluster.as_ref().map(Cluster::instance);
        loop {
            self.guests = self.guests.saturating_add(1);
            let nick = match instance {
                Some(instance) => Nick::guest_of(instance, self.guests),
                None => Nick::guest(self.guests),
            };
            if !self.names.contains_key(&nick.key()) {
                return nick;
            }
        }
    }

    /// Takes `id` out of every map and tells its room it left; counts it as gone for `reason`.
    /// Returns whether it was there. Telling the room may find more clients to let go (a closed
    /// queue, a stall): they are removed in turn, from a list rather than by recursion, however
    /// many there are.
    fn remove(&mut self, id: ConnId, reason: Disconnect, now: Instant) -> bool {
        let mut pending = vec![(id, reason)];
        let mut found = false;
        while let Some((next, reason)) = pending.pop() {
            let Some(gone) = self.clients.remove(&next) else {
                continue;
            };
            found |= next == id;
            self.metrics.disconnects.inc(reason);
            self.metrics.connections.dec(gone.wire);
            if self.names.get(&gone.nick.key()) == Some(&next) {
                self.names.remove(&gone.nick.key());
                self.release_name(next, &gone.nick);
            }
            self.publish_gone(next);
            self.leave_room(next, &gone.room);
            let left = ChatMessage::now(Body::Left {
                room: gone.room.to_string(),
                name: gone.nick.to_string(),
            });
            let members = self.members(&gone.room);
            pending.extend(self.deliver(&members, Outgoing::Chat(&left), now));
        }
        found
    }

    /// Takes `id` out of `room`'s members; a room other than the lobby goes with its last one.
    fn leave_room(&mut self, id: ConnId, room: &Room) {
        if let Some(members) = self.rooms.get_mut(room) {
            members.remove(&id);
            if members.is_empty() && !room.is_lobby() {
                self.rooms.remove(room);
            }
        }
    }

    /// The members of `room`, in id order.
    fn members(&self, room: &Room) -> Vec<ConnId> {
        self.rooms
            .get(room)
            .map(|members| members.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The other members of `id`'s room.
    fn room_mates(&self, id: ConnId) -> Vec<ConnId> {
        let Some(client) = self.clients.get(&id) else {
            return Vec::new();
        };
        let mut members = self.members(&client.room);
        members.retain(|member| *member != id);
        members
    }

    /// Offers a message to each of `to`, then removes the clients that turned out to be gone.
    fn send(&mut self, to: &[ConnId], message: Outgoing<'_>, now: Instant) {
        for (gone, reason) in self.deliver(to, message, now) {
            self.remove(gone, reason, now);
        }
    }

    /// Tells `id` alone.
    fn tell(&mut self, id: ConnId, body: Body, now: Instant) {
        self.send(&[id], Outgoing::Chat(&ChatMessage::now(body)), now);
    }

    /// Tells the other members of `id`'s room.
    fn announce(&mut self, id: ConnId, body: Body, now: Instant) {
        let others = self.room_mates(id);
        self.send(&others, Outgoing::Chat(&ChatMessage::now(body)), now);
    }

    /// Offers `message` to each of `to`, without waiting for any, and returns those that are
    /// gone, and why: their writer has ended, or their queue has been full for the stall limit.
    /// Each rendering of the message is made once, for the first recipient that needs it.
    fn deliver(
        &mut self,
        to: &[ConnId],
        message: Outgoing<'_>,
        now: Instant,
    ) -> Vec<(ConnId, Disconnect)> {
        let (mut payloads, raw, counted) = match message {
            Outgoing::Chat(chat) => (Some(Payloads::new(chat)), None, chat.is_relayed()),
            Outgoing::Raw(raw) => (None, Some(raw), true),
        };
        let mut gone = Vec::new();
        for id in to {
            let Some(client) = self.clients.get_mut(id) else {
                continue;
            };
            let message = match (&mut payloads, raw, client.wire) {
                (Some(payloads), _, wire) => payloads.for_wire(wire),
                (None, Some(raw), Wire::WebSocket) => raw.clone(),
                // A terminal cannot show binary data: it gets none.
                (None, _, _) => continue,
            };
            // While its history is on its way, a client's messages wait behind it (history.rs).
            if let Some(pending) = &mut client.pending {
                if pending.hold(message) {
                    if counted {
                        self.metrics.deliveries.inc();
                    }
                } else if counted {
                    self.metrics.dropped.inc(Dropped::HeldFull);
                }
                continue;
            }
            // ③ One client's trouble must not stop the loop: every outcome below is handled here
            // and the loop goes on to the next client.
            match client.outbox.try_send(message) {
                Ok(()) => {
                    if counted {
                        self.metrics.deliveries.inc();
                    }
                    client.full_since = None;
                    if client.missed > 0 {
                        tracing::info!(%id, missed = client.missed, "client caught up");
                        client.missed = 0;
                    }
                }
                // ④ Full: this client reads more slowly than the others talk. Waiting for room
                // would make every other client wait for it too, and keeping the message for later
                // is the unbounded queue again. So this client alone misses this message.
                Err(TrySendError::Full(_)) => {
                    if client.missed == 0 {
                        tracing::warn!(%id, "client is not keeping up: dropping messages for it");
                    }
                    client.missed = client.missed.saturating_add(1);
                    if counted {
                        self.metrics.dropped.inc(Dropped::QueueFull);
                    }
                    // ⑪ Full for too long: this client has not taken a message for the whole
                    // stall limit, and everything sent meanwhile was lost on it. Letting it go
                    // drops its outbox, so its writer ends and the client hears Close 1011.
                    let full_since = *client.full_since.get_or_insert(now);
                    if now.saturating_duration_since(full_since) >= self.stall_limit {
                        tracing::warn!(%id, missed = client.missed, "client stopped reading: letting it go");
                        gone.push((*id, Disconnect::Evicted));
                    }
                }
                // ④ Closed: the writer has ended, so nobody will ever read this queue.
                Err(TrySendError::Closed(_)) => gone.push((*id, Disconnect::Closed)),
            }
        }
        gone
    }

    /// How many clients are connected.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// Whether no client is connected.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// The counts as they are now: from the maps, and from the metrics that `/metrics` shows.
    pub fn stats(&self) -> Stats {
        let named = self.clients.values().filter(|c| !c.nick.is_guest()).count();
        let (history_written, history_failures) =
            self.history.as_ref().map_or((0, 0), History::counts);
        let metrics = &self.metrics;
        let disconnects = &metrics.disconnects;
        Stats {
            connections: self.clients.len() as u64,
            rooms: self.rooms.len() as u64,
            named: named as u64,
            messages_in: metrics.messages_in.get(),
            deliveries: metrics.deliveries.get(),
            dropped: metrics.dropped.total(),
            disconnected: disconnects.total(),
            refused: metrics.refused.get(Refusal::Total),
            timed_out: disconnects
                .get(Disconnect::Timeout)
                .saturating_add(disconnects.get(Disconnect::Evicted)),
            history_dropped: metrics.history_dropped.get(),
            history_written,
            history_failures,
            unpublished: self.cluster.as_ref().map_or(0, Cluster::unpublished),
            peers: self.cluster.as_ref().map_or(0, Cluster::peer_count),
            unheard: self.cluster.as_ref().map_or(0, Cluster::unheard),
        }
    }
}

// Tests may panic (that is how they fail) and may count without care.
#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
mod tests {
    use super::*;
    use crate::outbox::{Inbox, outbox};

    /// Room for this many messages in each test client's queue (the notices of joining too).
    const CAPACITY: usize = 8;
    /// Room for this many bytes in each test client's queue: more than the messages here need.
    const BUDGET: usize = 1 << 20;

    fn join(broker: &mut Broker) -> (ConnId, Inbox) {
        join_with_capacity(broker, CAPACITY)
    }

    fn join_with_capacity(broker: &mut Broker, capacity: usize) -> (ConnId, Inbox) {
        let id = ConnId::next();
        let (outbox, outbox_rx) = outbox(capacity, BUDGET);
        let wire = Wire::WebSocket;
        broker.handle(Event::Join {
            id,
            outbox,
            wire,
            span: tracing::Span::none(),
        });
        (id, outbox_rx)
    }

    /// Empties the queues of what joining put there (a welcome, who is there, who came after):
    /// the tests below are about the queues, with binary messages that pass as they came.
    fn settle(queues: &mut [&mut Inbox]) {
        for queue in queues {
            while queue.try_recv().is_ok() {}
        }
    }

    fn say(broker: &mut Broker, from: ConnId, text: &str) {
        broker.handle(Event::Message {
            from,
            message: Message::binary(text.to_string()),
        });
    }

    /// A message reaches every other client, and not its sender.
    #[test]
    fn forwards_to_everyone_but_the_sender() {
        let mut broker = Broker::default();
        let (alice, mut alice_rx) = join(&mut broker);
        let (_bob, mut bob_rx) = join(&mut broker);
        let (_carol, mut carol_rx) = join(&mut broker);
        settle(&mut [&mut alice_rx, &mut bob_rx, &mut carol_rx]);
        say(&mut broker, alice, "hi");
        assert_eq!(
            bob_rx.try_recv().ok(),
            Some(Message::binary("hi")),
            "bob should get alice's message"
        );
        assert_eq!(
            carol_rx.try_recv().ok(),
            Some(Message::binary("hi")),
            "carol should get alice's message"
        );
        assert!(
            alice_rx.try_recv().is_err(),
            "alice must not hear her own message"
        );
    }

    /// A message is not copied for each client: every queue holds the same payload, one
    /// allocation shared by reference counting, however many clients it goes to.
    #[test]
    fn every_client_gets_the_same_payload_not_a_copy() {
        let mut broker = Broker::default();
        let (alice, _alice_rx) = join(&mut broker);
        let mut queues: Vec<Inbox> = (0..3).map(|_| join(&mut broker).1).collect();
        settle(&mut queues.iter_mut().collect::<Vec<_>>());
        let payload = axum::body::Bytes::from(vec![b'.'; 1024]);
        let message = Message::Binary(payload.clone());
        broker.handle(Event::Message {
            from: alice,
            message,
        });
        for queue in &mut queues {
            let Ok(Message::Binary(received)) = queue.try_recv() else {
                panic!("every client should have the message");
            };
            assert_eq!(
                received.as_ptr(),
                payload.as_ptr(),
                "the payload a client gets should be the sender's own bytes, not a copy"
            );
        }
    }

    /// Leaving twice, or leaving with an id the broker never saw, changes nothing and does not panic.
    #[test]
    fn removing_an_unknown_id_is_harmless() {
        let mut broker = Broker::default();
        let (alice, _alice_rx) = join(&mut broker);
        broker.handle(Event::Leave {
            id: ConnId::next(),
            reason: crate::metrics::Disconnect::Closed,
        });
        broker.handle(Event::Leave {
            id: alice,
            reason: crate::metrics::Disconnect::Closed,
        });
        broker.handle(Event::Leave {
            id: alice,
            reason: crate::metrics::Disconnect::Closed,
        });
        assert!(broker.is_empty(), "only alice was there, and she left");
    }

    /// After a client leaves, it is sent nothing more, and its writer's queue is closed.
    #[test]
    fn a_client_that_left_gets_nothing_more() {
        let mut broker = Broker::default();
        let (alice, _alice_rx) = join(&mut broker);
        let (bob, mut bob_rx) = join(&mut broker);
        settle(&mut [&mut bob_rx]);
        broker.handle(Event::Leave {
            id: bob,
            reason: crate::metrics::Disconnect::Closed,
        });
        say(&mut broker, alice, "anyone?");
        assert_eq!(
            bob_rx.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected),
            "bob left: his queue should be closed and empty"
        );
    }

    /// ④ Full: a client whose queue is full misses the message; everyone else gets it, and the
    /// miss is counted.
    #[test]
    fn a_full_queue_loses_the_message_for_that_client_only() {
        let mut broker = Broker::default();
        let (alice, _alice_rx) = join(&mut broker);
        let (_bob, mut bob_rx) = join_with_capacity(&mut broker, 1);
        let (_carol, mut carol_rx) = join(&mut broker);
        settle(&mut [&mut bob_rx, &mut carol_rx]);
        say(&mut broker, alice, "first");
        say(&mut broker, alice, "second");
        assert_eq!(bob_rx.try_recv().ok(), Some(Message::binary("first")));
        assert!(
            bob_rx.try_recv().is_err(),
            "bob's queue had room for one message: the second should have been dropped"
        );
        assert_eq!(carol_rx.try_recv().ok(), Some(Message::binary("first")));
        assert_eq!(
            carol_rx.try_recv().ok(),
            Some(Message::binary("second")),
            "carol had room: bob's full queue must not cost her anything"
        );
        assert_eq!(broker.stats().dropped, 1, "exactly one message was dropped");
        assert_eq!(broker.len(), 3, "a slow client is not disconnected");
    }

    /// ④ Full is about the moment, not the client: once a slow client has room again, it gets
    /// the next messages.
    #[test]
    fn a_client_that_catches_up_gets_messages_again() {
        let mut broker = Broker::default();
        let (alice, _alice_rx) = join(&mut broker);
        let (_bob, mut bob_rx) = join_with_capacity(&mut broker, 1);
        settle(&mut [&mut bob_rx]);
        say(&mut broker, alice, "kept");
        say(&mut broker, alice, "dropped");
        assert_eq!(bob_rx.try_recv().ok(), Some(Message::binary("kept")));
        say(&mut broker, alice, "after catching up");
        assert_eq!(
            bob_rx.try_recv().ok(),
            Some(Message::binary("after catching up"))
        );
        assert_eq!(broker.stats().dropped, 1);
    }

    /// ④ Closed: a client whose writer has ended is removed while forwarding, and the others
    /// still get the message.
    #[test]
    fn a_closed_queue_removes_its_client_and_the_rest_still_get_the_message() {
        let mut broker = Broker::default();
        let (alice, _alice_rx) = join(&mut broker);
        let (bob, bob_rx) = join(&mut broker);
        let (_carol, mut carol_rx) = join(&mut broker);
        settle(&mut [&mut carol_rx]);
        drop(bob_rx);
        say(&mut broker, alice, "still here");
        assert_eq!(
            carol_rx.try_recv().ok(),
            Some(Message::binary("still here"))
        );
        assert!(
            matches!(carol_rx.try_recv(), Ok(Message::Text(_))),
            "carol is told that bob left"
        );
        assert_eq!(
            broker.len(),
            2,
            "bob's writer is gone, so bob should be removed"
        );
        assert_eq!(
            broker.stats().dropped,
            0,
            "a closed queue is not a dropped message"
        );
        // Bob's own Leave arrives afterwards, for an id the broker no longer knows.
        broker.handle(Event::Leave {
            id: bob,
            reason: crate::metrics::Disconnect::Closed,
        });
        assert_eq!(broker.len(), 2);
    }

    /// The counts follow what happened: messages in, deliveries, drops, and clients that left or
    /// whose writer ended.
    #[test]
    fn stats_count_what_the_broker_did() {
        let mut broker = Broker::default();
        let (alice, _alice_rx) = join(&mut broker);
        let (_bob, mut bob_rx) = join_with_capacity(&mut broker, 1);
        let (carol, mut carol_rx) = join(&mut broker);
        settle(&mut [&mut bob_rx, &mut carol_rx]);
        say(&mut broker, alice, "one"); // bob and carol get it
        say(&mut broker, alice, "two"); // carol gets it, bob's queue is full
        drop(carol_rx);
        say(&mut broker, alice, "three"); // carol's writer is gone: removed; bob is still full
        assert_eq!(bob_rx.try_recv().ok(), Some(Message::binary("one")));
        broker.handle(Event::Leave {
            id: carol,
            reason: crate::metrics::Disconnect::Closed,
        }); // already removed: not counted twice
        broker.handle(Event::Leave {
            id: alice,
            reason: crate::metrics::Disconnect::Closed,
        });
        assert_eq!(
            broker.stats(),
            Stats {
                connections: 1,
                rooms: 1,
                named: 0,
                messages_in: 3,
                deliveries: 3,
                dropped: 2,
                disconnected: 2,
                refused: 0,
                timed_out: 0,
                history_dropped: 0,
                history_written: 0,
                history_failures: 0,
                unpublished: 0,
                peers: 0,
                unheard: 0,
            }
        );
    }

    /// A stats request is answered through the oneshot it carries, and one whose asker has gone
    /// is harmless.
    #[test]
    fn a_stats_request_gets_its_answer() {
        let mut broker = Broker::default();
        let (_alice, _alice_rx) = join(&mut broker);
        let (reply, mut answer) = oneshot::channel();
        broker.handle(Event::Stats { reply });
        assert_eq!(
            answer.try_recv().ok().map(|stats| stats.connections),
            Some(1),
            "the answer should be waiting, counting alice"
        );
        let (reply, answer) = oneshot::channel();
        drop(answer);
        broker.handle(Event::Stats { reply });
    }

    /// ⑪ A client whose queue stays full for the stall limit is let go at the next message it
    /// misses; a queue that was full for less than that only costs messages.
    #[test]
    fn a_client_full_for_the_stall_limit_is_let_go() {
        let limit = Duration::from_secs(10);
        let mut broker = Broker::new(limit);
        let start = Instant::now();
        let (alice, _alice_rx) = join(&mut broker);
        let (_bob, mut bob_rx) = join_with_capacity(&mut broker, 1);
        settle(&mut [&mut bob_rx]);
        let say_at = |broker: &mut Broker, text: &str, at: Duration| {
            let message = Message::binary(text.to_string());
            broker.handle_at(
                Event::Message {
                    from: alice,
                    message,
                },
                start + at,
            );
        };
        say_at(&mut broker, "fills the queue", Duration::ZERO);
        say_at(&mut broker, "first miss", Duration::from_secs(1));
        say_at(&mut broker, "still within", Duration::from_secs(10));
        assert_eq!(broker.len(), 2, "nine seconds full is under the limit");
        say_at(&mut broker, "over the limit", Duration::from_secs(11));
        assert_eq!(broker.len(), 1, "ten seconds full: bob should be let go");
        assert_eq!(broker.stats().timed_out, 1);
        assert_eq!(
            bob_rx.try_recv().ok(),
            Some(Message::binary("fills the queue"))
        );
        assert_eq!(
            bob_rx.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected),
            "bob's queue should be closed, so that his writer ends"
        );
    }

    /// ⑪ Room found even once starts the count again: a client that reads slowly but reads is
    /// not let go.
    #[test]
    fn room_in_the_queue_resets_the_stall_clock() {
        let mut broker = Broker::new(Duration::from_secs(10));
        let start = Instant::now();
        let (alice, _alice_rx) = join(&mut broker);
        let (_bob, mut bob_rx) = join_with_capacity(&mut broker, 1);
        settle(&mut [&mut bob_rx]);
        for second in 0..30 {
            let message = Message::binary(format!("second {second}"));
            let now = start + Duration::from_secs(second);
            broker.handle_at(
                Event::Message {
                    from: alice,
                    message,
                },
                now,
            );
            broker.handle_at(
                Event::Message {
                    from: alice,
                    message: Message::binary("missed"),
                },
                now,
            );
            // Bob takes one message a second: slow, but never stuck for the whole limit.
            assert!(
                bob_rx.try_recv().is_ok(),
                "bob should get one message each second"
            );
        }
        assert_eq!(broker.len(), 2, "a slow reader that reads is not let go");
        assert_eq!(broker.stats().timed_out, 0);
    }

    /// Refusals and timeouts reported by connections are counted, a timed-out client once.
    #[test]
    fn refusals_and_timeouts_are_counted() {
        let mut broker = Broker::default();
        let (alice, _alice_rx) = join(&mut broker);
        broker.handle(Event::Refused);
        broker.handle(Event::Refused);
        broker.handle(Event::TimedOut { id: alice });
        // Both timeouts may catch the same client: it is counted once, and its Leave changes
        // nothing.
        broker.handle(Event::TimedOut { id: alice });
        broker.handle(Event::Leave {
            id: alice,
            reason: crate::metrics::Disconnect::Closed,
        });
        let stats = broker.stats();
        assert_eq!((stats.refused, stats.timed_out), (2, 1));
        assert_eq!((stats.connections, stats.disconnected), (0, 1));
    }

    /// `/metrics` counts each client's departure once, for the first reason the broker hears,
    /// and the gauge of each transport follows its clients; `/stats` adds the reasons up.
    #[test]
    fn each_departure_is_counted_once_for_its_first_reason() {
        use crate::metrics::{Disconnect, Metrics};
        let metrics = Arc::new(Metrics::default());
        let mut broker = Broker::default().with_metrics(Arc::clone(&metrics));
        let (alice, _alice_rx) = join(&mut broker);
        let (bob, _bob_rx) = join(&mut broker);
        assert_eq!(metrics.connections.get(Wire::WebSocket), 2);
        broker.handle(Event::Message {
            from: bob,
            message: Message::text("/quit"),
        });
        for reason in [Disconnect::TooBig, Disconnect::Closed] {
            broker.handle(Event::Leave { id: alice, reason });
        }
        broker.handle(Event::Leave {
            id: bob,
            reason: Disconnect::Closed,
        });
        let disconnects = &metrics.disconnects;
        assert_eq!(disconnects.get(Disconnect::Quit), 1);
        assert_eq!(disconnects.get(Disconnect::TooBig), 1);
        assert_eq!(disconnects.get(Disconnect::Closed), 0, "nobody left twice");
        assert_eq!(metrics.connections.get(Wire::WebSocket), 0);
        assert_eq!(metrics.accepted.get(Wire::WebSocket), 2);
        assert_eq!(broker.stats().disconnected, 2);
    }

    /// ② The broker's task ends once every sender of events is gone.
    #[tokio::test]
    async fn the_broker_returns_when_every_sender_is_gone() {
        let (events, events_rx) = mpsc::channel(CAPACITY);
        let broker = tokio::spawn(run(events_rx, DEFAULT_STALL_LIMIT));
        drop(events);
        tokio::time::timeout(Duration::from_secs(5), broker)
            .await
            .expect("the broker should return once no sender is left")
            .expect("the broker should not panic");
    }
}

// Tests may panic (that is how they fail), index and count without care.
#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
mod rooms_tests;

// Tests may panic (that is how they fail), index and count without care.
#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
mod history_tests;

// Tests may panic (that is how they fail), index and count without care.
#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
mod cluster_tests;
