// Fan-out workshop, exercise 11-many-servers: generated from chapters/11-many-servers by `cargo workshop generate`.
//
// Do not edit: these are the chapter's stage tests, only renamed for this crate. Run them
// with `cargo workshop check 11` (or `cargo test -p ex11-many-servers --no-fail-fast`).

//! A model-based property test of the broker. proptest makes up sequences of [`Step`]s (clients
//! joining, leaving, talking, reading slowly or not at all, writers vanishing, timeouts, time
//! passing, and since chapter 09 clients moving between rooms, taking names, writing to one
//! another and asking who is where, and since chapter 10 the storage task taking what it was
//! handed), plays them on a real `Broker` through `handle_at`, and
//! after every step checks the broker against a [`Model`] of what it promised. When a sequence
//! breaks a promise, proptest shrinks it to a shorter one that still does, and prints that.
//! Shorter, not always shortest: proptest stops when no single removal or simplification it
//! tries still fails, and once printed nine clients where two were enough (see the last test).

// Tests may panic (that is how they fail) and may count without care.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use axum::extract::ws::Message;
use ex11_many_servers::{
    broker::{Broker, ConnId, Event, History, Stats},
    command::{self, Command, Input},
    message::{Body, ChatMessage, RoomCount, Wire},
    metrics::Disconnect,
    outbox::{Inbox, outbox},
    storage::{Counts, Job},
};
use proptest::prelude::*;
use tokio::{
    sync::{
        mpsc::{self, error::TryRecvError},
        oneshot,
    },
    time::Instant,
};

/// Short, so that a few `Wait` steps reach it.
const STALL_LIMIT: Duration = Duration::from_millis(100);

/// The storage task's queue: short, so that it fills when the task does not keep up.
const STORAGE_QUEUE: usize = 4;

/// The rooms clients ask for: few, so that they meet; one in two spellings, since a room's name
/// has no case; one reserved and one not a name at all, so that `/join` is refused too.
const ROOMS: &[&str] = &["lobby", "games", "Games", "music", "private", "two words"];

/// The names clients ask for, or write to: few, so that they collide; two in two cases, since a
/// name is one name in any case; a guest's name (which nobody may take, but anybody may write
/// to), a reserved one and an invalid one, so that `/nick` is refused for every reason.
const NAMES: &[&str] = &[
    "alice", "Alice", "bob", "BOB", "guest-1", "guest-2", "admin", "b@d",
];

/// The room everybody starts in, and goes back to with `/leave`.
const LOBBY: &str = "lobby";

/// One thing that can happen. `who` picks a client among all that ever joined (modulo their
/// number), so that steps can name clients that have left or were let go.
#[derive(Debug, Clone)]
enum Step {
    Join {
        capacity: usize,
    },
    Leave {
        who: usize,
    },
    Say {
        who: usize,
    },
    /// The client's writer takes up to `count` messages from its queue.
    Read {
        who: usize,
        count: usize,
    },
    /// The client's writer ends (its end of the queue is dropped), with no Leave yet.
    WriterEnds {
        who: usize,
    },
    /// A write or idle timeout caught the client.
    TimesOut {
        who: usize,
    },
    Refused,
    Wait {
        millis: u64,
    },
    Stats,
    /// `/join ROOM`, with `ROOMS[room]`.
    JoinRoom {
        who: usize,
        room: usize,
    },
    /// `/leave`: back to the lobby.
    LeaveRoom {
        who: usize,
    },
    /// `/nick NAME`, with `NAMES[name]`.
    Nick {
        who: usize,
        name: usize,
    },
    /// `/msg NAME TEXT`, to `NAMES[name]`.
    Whisper {
        who: usize,
        name: usize,
    },
    /// `/who`, or `/rooms`.
    Ask {
        who: usize,
        rooms: bool,
    },
    /// The client sent something its connection could not read (too long, not UTF-8).
    Unreadable {
        who: usize,
    },
    /// The storage task takes up to `count` jobs from its queue.
    Store {
        count: usize,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => (1usize..=6).prop_map(|capacity| Step::Join { capacity }),
        1 => any::<usize>().prop_map(|who| Step::Leave { who }),
        6 => any::<usize>().prop_map(|who| Step::Say { who }),
        3 => (any::<usize>(), 0usize..=4).prop_map(|(who, count)| Step::Read { who, count }),
        1 => any::<usize>().prop_map(|who| Step::WriterEnds { who }),
        1 => any::<usize>().prop_map(|who| Step::TimesOut { who }),
        1 => Just(Step::Refused),
        2 => (0u64..=80).prop_map(|millis| Step::Wait { millis }),
        1 => Just(Step::Stats),
        3 => (any::<usize>(), 0..ROOMS.len()).prop_map(|(who, room)| Step::JoinRoom { who, room }),
        1 => any::<usize>().prop_map(|who| Step::LeaveRoom { who }),
        2 => (any::<usize>(), 0..NAMES.len()).prop_map(|(who, name)| Step::Nick { who, name }),
        2 => (any::<usize>(), 0..NAMES.len()).prop_map(|(who, name)| Step::Whisper { who, name }),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(who, rooms)| Step::Ask { who, rooms }),
        1 => any::<usize>().prop_map(|who| Step::Unreadable { who }),
        2 => (0usize..=4).prop_map(|count| Step::Store { count }),
    ]
}

/// What the model knows about one client.
struct Client {
    id: ConnId,
    capacity: usize,
    /// The writer's end of the queue; `None` once the writer has ended.
    rx: Option<Inbox>,
    /// Whether the broker should still have it in its map.
    connected: bool,
    /// When a message first found its queue full, if none has found room since.
    full_since: Option<Instant>,
    /// The last message number received from each sender.
    last_from: HashMap<usize, u64>,
    /// Its name now.
    nick: String,
    /// The room it is in now.
    room: String,
    /// What the broker should have put in its queue and the writer has not taken yet, oldest
    /// first: every message, the server's notices and answers too, since they take room as well.
    queued: VecDeque<Body>,
}

impl Client {
    /// Messages in its queue, not yet taken by its writer.
    fn waiting(&self) -> usize {
        self.rx.as_ref().map_or(0, |rx| rx.len())
    }
}

/// Why the broker lets a client go while telling it something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gone {
    /// Its writer has ended: nobody reads its queue.
    Closed,
    /// Its queue has been full for the stall limit.
    Stalled,
}

/// The broker under test, and what it should have done so far.
///
/// The model keeps no maps: a client's room and name are fields of the client, and a room is
/// the clients whose field says so. For every message the broker should send, the model works
/// out who gets it (the other members of the sender's room, the one recipient of a private
/// message, the requester alone for an answer or an error) and puts it in the model's copy of
/// each recipient's queue, unless that queue is full. Reading a client's real queue then
/// compares it message by message with the model's copy. That one comparison proves the rooms'
/// promises: a message read by someone outside the room, a private message read by a third
/// client, an error read by anyone but its author, a notice in the wrong room, a name given
/// twice (the model answers "taken"), all show up as a message the model did not expect; a
/// message missing for a member who had room, or out of order, as one that did not come.
struct Model {
    broker: Broker,
    now: Instant,
    clients: Vec<Client>,
    /// The number of the last message sent; everything clients say is the text "sender:number".
    number: u64,
    /// The number of the last guest name handed out (`guest-N`).
    guests: u64,
    /// The storage task's end of its queue: the model plays that task.
    jobs: mpsc::Receiver<Job>,
    /// What the broker should have handed to the storage task and the task has not taken yet,
    /// oldest first, each with the number the broker gave it.
    kept: VecDeque<(u64, Body)>,
    /// The number of the last thing said, handed over or not.
    said: u64,
    /// The counts the broker should report.
    expected: Stats,
}

impl Model {
    fn new() -> Model {
        // Nothing replayed on a join (0): the model checks what is handed over, not read back.
        // No bridge to other servers (`--redis`): this is the local broker's promises. The
        // cluster suite tests the bridge with a real Redis.
        let (jobs_tx, jobs) = mpsc::channel(STORAGE_QUEUE);
        let history = History::new(jobs_tx, 0, 0, Arc::new(Counts::default()));
        Model {
            broker: Broker::new(STALL_LIMIT).with_history(history),
            now: Instant::now(),
            clients: Vec::new(),
            number: 0,
            guests: 0,
            jobs,
            kept: VecDeque::new(),
            said: 0,
            expected: Stats::default(),
        }
    }

    /// The client `who` names, if any has joined.
    fn pick(&self, who: usize) -> Option<usize> {
        (!self.clients.is_empty()).then(|| who % self.clients.len())
    }

    fn handle(&mut self, event: Event) {
        self.broker.handle_at(event, self.now);
    }

    /// The clients in `room` now, in the order they joined (the broker's order too: by id).
    fn members(&self, room: &str) -> Vec<usize> {
        (0..self.clients.len())
            .filter(|&index| self.clients[index].connected && self.clients[index].room == room)
            .collect()
    }

    /// The other members of `index`'s room (none if it is gone).
    fn room_mates(&self, index: usize) -> Vec<usize> {
        if !self.clients[index].connected {
            return Vec::new();
        }
        let mut members = self.members(&self.clients[index].room);
        members.retain(|&member| member != index);
        members
    }

    /// Who holds `name`, in any case.
    fn holder(&self, name: &str) -> Option<usize> {
        (0..self.clients.len()).find(|&index| {
            self.clients[index].connected && self.clients[index].nick.eq_ignore_ascii_case(name)
        })
    }

    /// Every room and how many are in it: the lobby always, another room while somebody is in
    /// it.
    fn rooms(&self) -> BTreeMap<String, usize> {
        let mut rooms = BTreeMap::from([(LOBBY.to_string(), 0)]);
        for client in self.clients.iter().filter(|client| client.connected) {
            *rooms.entry(client.room.clone()).or_default() += 1;
        }
        rooms
    }

    /// Offers `body` to each of `to`, as the broker must: queued if there is room, else dropped
    /// (and counted, if a client said it), and the clients found gone are returned.
    fn deliver(&mut self, to: &[usize], body: &Body) -> Vec<(usize, Gone)> {
        let counted = matches!(body, Body::Chat { .. } | Body::Private { .. });
        let mut gone = Vec::new();
        for &index in to {
            let client = &mut self.clients[index];
            if !client.connected {
                continue;
            }
            if client.rx.is_none() {
                gone.push((index, Gone::Closed));
            } else if client.queued.len() < client.capacity {
                client.queued.push_back(body.clone());
                client.full_since = None;
                if counted {
                    self.expected.deliveries += 1;
                }
            } else {
                if counted {
                    self.expected.dropped += 1;
                }
                let since = *client.full_since.get_or_insert(self.now);
                if self.now.saturating_duration_since(since) >= STALL_LIMIT {
                    gone.push((index, Gone::Stalled));
                }
            }
        }
        gone
    }

    /// Offers `body` to each of `to`, then lets go of those found gone.
    fn send(&mut self, to: &[usize], body: Body) {
        for (index, why) in self.deliver(to, &body) {
            self.let_go(index, why == Gone::Stalled);
        }
    }

    /// Tells `index` alone.
    fn tell(&mut self, index: usize, body: Body) {
        self.send(&[index], body);
    }

    /// Tells the other members of `index`'s room.
    fn announce(&mut self, index: usize, body: Body) {
        let others = self.room_mates(index);
        self.send(&others, body);
    }

    /// The broker no longer has client `index`, nor anyone found gone while its room was told
    /// that it left. Returns whether `index` was still there. Several clients found gone at once
    /// are let go last found, first (the broker's order), which decides the order of the "left"
    /// notices that the others read. A client let go for a stalled queue counts as timed out,
    /// once, however many messages found its queue full before it went.
    fn let_go(&mut self, index: usize, stalled: bool) -> bool {
        let mut pending = vec![(index, stalled)];
        let mut found = false;
        while let Some((next, stalled)) = pending.pop() {
            let client = &mut self.clients[next];
            if !client.connected {
                continue;
            }
            found |= next == index;
            client.connected = false;
            self.expected.disconnected += 1;
            if stalled {
                self.expected.timed_out += 1;
            }
            let left = Body::Left {
                room: client.room.clone(),
                name: client.nick.clone(),
            };
            let members = self.members(&self.clients[next].room);
            pending.extend(
                self.deliver(&members, &left)
                    .into_iter()
                    .map(|(gone, why)| (gone, why == Gone::Stalled)),
            );
        }
        found
    }

    fn play(&mut self, step: Step) {
        match step {
            Step::Join { capacity } => self.join(capacity),
            Step::Leave { who } => {
                if let Some(who) = self.pick(who) {
                    self.handle(Event::Leave {
                        id: self.clients[who].id,
                        reason: Disconnect::Closed,
                    });
                    self.let_go(who, false);
                }
            }
            Step::TimesOut { who } => {
                if let Some(who) = self.pick(who) {
                    self.handle(Event::TimedOut {
                        id: self.clients[who].id,
                    });
                    if self.let_go(who, false) {
                        self.expected.timed_out += 1;
                    }
                }
            }
            Step::Refused => {
                self.handle(Event::Refused);
                self.expected.refused += 1;
            }
            Step::Say { who } => {
                if let Some(sender) = self.pick(who) {
                    self.number += 1;
                    self.line(sender, format!("{sender}:{}", self.number));
                }
            }
            Step::Read { who, count } => {
                if let Some(reader) = self.pick(who) {
                    self.read(reader, count);
                }
            }
            Step::WriterEnds { who } => {
                if let Some(who) = self.pick(who) {
                    self.clients[who].rx = None;
                    self.clients[who].queued.clear();
                }
            }
            Step::Wait { millis } => self.now += Duration::from_millis(millis),
            Step::Stats => {
                let (reply, mut answer) = oneshot::channel();
                self.handle(Event::Stats { reply });
                assert_eq!(
                    answer.try_recv().ok(),
                    Some(self.broker.stats()),
                    "a stats request should be answered at once"
                );
            }
            Step::JoinRoom { who, room } => {
                if let Some(who) = self.pick(who) {
                    self.line(who, format!("/join {}", ROOMS[room]));
                }
            }
            Step::LeaveRoom { who } => {
                if let Some(who) = self.pick(who) {
                    self.line(who, "/leave".to_string());
                }
            }
            Step::Nick { who, name } => {
                if let Some(who) = self.pick(who) {
                    self.line(who, format!("/nick {}", NAMES[name]));
                }
            }
            Step::Whisper { who, name } => {
                if let Some(sender) = self.pick(who) {
                    self.number += 1;
                    let text = format!("{sender}:{}", self.number);
                    self.line(sender, format!("/msg {} {text}", NAMES[name]));
                }
            }
            Step::Ask { who, rooms } => {
                if let Some(who) = self.pick(who) {
                    let line = if rooms { "/rooms" } else { "/who" };
                    self.line(who, line.to_string());
                }
            }
            Step::Unreadable { who } => {
                if let Some(who) = self.pick(who) {
                    let reason = "that line is too long".to_string();
                    self.handle(Event::Refusal {
                        to: self.clients[who].id,
                        reason: reason.clone(),
                    });
                    self.tell(who, Body::Error { text: reason });
                }
            }
            Step::Store { count } => self.store(count),
        }
    }

    fn join(&mut self, capacity: usize) {
        let id = ConnId::next();
        let (outbox, rx) = outbox(capacity, usize::MAX);
        let wire = Wire::WebSocket;
        let span = tracing::Span::none();
        self.handle(Event::Join {
            id,
            outbox,
            wire,
            span,
        });
        self.guests += 1;
        self.clients.push(Client {
            id,
            capacity,
            rx: Some(rx),
            connected: true,
            full_since: None,
            last_from: HashMap::new(),
            nick: format!("guest-{}", self.guests),
            room: LOBBY.to_string(),
            queued: VecDeque::new(),
        });
        let index = self.clients.len() - 1;
        let name = self.clients[index].nick.clone();
        let room = LOBBY.to_string();
        self.announce(index, Body::Joined { room, name });
        self.welcome(index);
    }

    /// Client `from` sends `line`: the broker handles it, and the model works out what must have
    /// happened, from the line as the chapter's parser reads it (the parser has tests of its own).
    fn line(&mut self, from: usize, line: String) {
        self.expected.messages_in += 1;
        let message = Message::text(line.clone());
        self.handle(Event::Message {
            from: self.clients[from].id,
            message,
        });
        if !self.clients[from].connected {
            return; // a stale id: counted, and nothing else
        }
        let (nick, room) = (
            self.clients[from].nick.clone(),
            self.clients[from].room.clone(),
        );
        let input = match command::parse(&line) {
            Ok(input) => input,
            Err(err) => {
                return self.tell(
                    from,
                    Body::Error {
                        text: err.to_string(),
                    },
                );
            }
        };
        match input {
            Input::Say(text) => {
                let said = Body::Chat {
                    room,
                    from: nick,
                    text,
                };
                self.keep(&said);
                self.announce(from, said);
            }
            Input::Command(Command::Nick(new)) => {
                let new = new.to_string();
                if self.holder(&new).is_some_and(|holder| holder != from) {
                    let text = format!("the name {new} is taken");
                    self.tell(from, Body::Error { text });
                } else if new == nick {
                    let text = format!("you are {new} already");
                    self.tell(from, Body::Info { text });
                } else {
                    self.clients[from].nick = new.clone();
                    self.announce(
                        from,
                        Body::Renamed {
                            room,
                            from: nick,
                            to: new,
                        },
                    );
                    self.welcome(from);
                }
            }
            Input::Command(Command::Join(target)) if target.as_str() == room => {
                let text = format!("you are in {room} already");
                self.tell(from, Body::Info { text });
            }
            Input::Command(Command::Join(target)) => self.move_to(from, target.to_string()),
            Input::Command(Command::Leave) if room == LOBBY => {
                let text = "you are in the lobby already: /join ROOM to go elsewhere";
                self.tell(
                    from,
                    Body::Info {
                        text: text.to_string(),
                    },
                );
            }
            Input::Command(Command::Leave) => self.move_to(from, LOBBY.to_string()),
            Input::Command(Command::Msg { to, text }) => match self.holder(to.as_str()) {
                None => {
                    let text = format!("nobody called {to} is connected");
                    self.tell(from, Body::Error { text });
                }
                Some(recipient) => {
                    let to = self.clients[recipient].nick.clone();
                    let said = Body::Private {
                        from: nick,
                        to,
                        text,
                    };
                    self.keep(&said);
                    self.tell(recipient, said);
                }
            },
            Input::Command(Command::Who) => self.who(from),
            Input::Command(Command::Rooms) => {
                let rooms = self.rooms().into_iter();
                let rooms = rooms
                    .map(|(name, members)| RoomCount { name, members })
                    .collect();
                self.tell(from, Body::Rooms { rooms });
            }
            Input::Command(other) => panic!("the model sends no {other:?}"),
        }
    }

    /// `/join` and `/leave`: the old room is told the client left, the new one that it came,
    /// and the client where it is now and who is there.
    fn move_to(&mut self, from: usize, target: String) {
        let old = std::mem::replace(&mut self.clients[from].room, target.clone());
        let name = self.clients[from].nick.clone();
        let old_members = self.members(&old);
        let left = Body::Left {
            room: old,
            name: name.clone(),
        };
        self.send(&old_members, left);
        self.announce(from, Body::Joined { room: target, name });
        self.welcome(from);
    }

    /// What a client said is handed to the storage task with the next number, unless the task's
    /// queue is full: then it is not kept, and that is counted.
    fn keep(&mut self, said: &Body) {
        self.said += 1;
        if self.kept.len() < STORAGE_QUEUE {
            self.kept.push_back((self.said, said.clone()));
        } else {
            self.expected.history_dropped += 1;
        }
    }

    /// The storage task takes up to `count` jobs: each is what the model handed over next, with
    /// its number, so that everything said is kept once, in order, or counted as not kept.
    fn store(&mut self, count: usize) {
        for _ in 0..count {
            let Ok(job) = self.jobs.try_recv() else {
                break;
            };
            let Job::Write(record) = job else {
                panic!("nothing is replayed, so the broker should ask for no history: {job:?}")
            };
            let expected = self.kept.pop_front();
            assert_eq!(
                Some((record.seq, &record.message.body)),
                expected.as_ref().map(|(seq, body)| (*seq, body)),
                "the storage task should get what was said next, with its number"
            );
        }
    }

    /// Tells `index` who and where it is, and who is there with it.
    fn welcome(&mut self, index: usize) {
        if !self.clients[index].connected {
            return;
        }
        let client = &self.clients[index];
        let (name, room) = (client.nick.clone(), client.room.clone());
        self.tell(index, Body::Welcome { name, room });
        self.who(index);
    }

    /// `/who`: the members of `index`'s room, by name, sorted whatever their case.
    fn who(&mut self, index: usize) {
        if !self.clients[index].connected {
            return;
        }
        let room = self.clients[index].room.clone();
        let mut members: Vec<String> = self
            .members(&room)
            .into_iter()
            .map(|member| self.clients[member].nick.clone())
            .collect();
        members.sort_by_key(|name| name.to_ascii_lowercase());
        self.tell(index, Body::Who { room, members });
    }

    /// Client `reader`'s writer takes up to `count` messages, each checked against the promises:
    /// it is the message the model expects next, and what a client said comes in its sender's
    /// order.
    fn read(&mut self, reader: usize, count: usize) {
        let client = &mut self.clients[reader];
        for _ in 0..count {
            let Some(rx) = client.rx.as_mut() else { break };
            match rx.try_recv() {
                Ok(message) => {
                    let got = body(&message);
                    let expected = client.queued.pop_front();
                    assert_eq!(
                        Some(&got),
                        expected.as_ref(),
                        "client {reader} ({}, in {}) read a message the model did not expect next",
                        client.nick,
                        client.room
                    );
                    if let Body::Chat { text, .. } | Body::Private { text, .. } = &got {
                        let (sender, number) = parse(text);
                        if matches!(got, Body::Chat { .. }) {
                            assert_ne!(sender, reader, "client {reader} got its own message");
                        }
                        let last = client.last_from.insert(sender, number);
                        assert!(
                            last.is_none_or(|last| last < number),
                            "client {reader} got {sender}'s message {number} after {last:?}"
                        );
                    }
                }
                Err(TryRecvError::Empty) => {
                    assert!(
                        client.connected,
                        "client {reader} was let go: its empty queue should be closed"
                    );
                    break;
                }
                Err(TryRecvError::Disconnected) => {
                    assert!(
                        !client.connected,
                        "client {reader}'s queue was closed while it was connected"
                    );
                    break;
                }
            }
        }
    }

    /// After every step: the counts agree with the model (rooms and named clients included, so a
    /// room left empty must be gone), and every queue holds as many messages as the model says,
    /// which is never over its capacity; the storage task's too.
    fn check(&mut self) {
        let connected = self.clients.iter().filter(|client| client.connected);
        self.expected.connections = connected.clone().count() as u64;
        self.expected.named = connected
            .filter(|client| !client.nick.starts_with("guest-"))
            .count() as u64;
        self.expected.rooms = self.rooms().len() as u64;
        assert_eq!(
            self.broker.stats(),
            self.expected,
            "the counts should follow what happened"
        );
        assert_eq!(
            self.jobs.len(),
            self.kept.len(),
            "the storage queue should hold what the model handed over: {:?}",
            self.kept
        );
        for (index, client) in self.clients.iter().enumerate() {
            assert_eq!(
                client.waiting(),
                client.queued.len(),
                "client {index} should have exactly what the model expects waiting: {:?}",
                client.queued
            );
            assert!(
                client.waiting() <= client.capacity,
                "client {index} has {} messages waiting, over its capacity of {}",
                client.waiting(),
                client.capacity
            );
        }
    }
}

/// What a message says: the server sends every client a JSON `ChatMessage`.
fn body(message: &Message) -> Body {
    let Message::Text(json) = message else {
        panic!("only text is sent, got {message:?}")
    };
    serde_json::from_str::<ChatMessage>(json.as_str())
        .unwrap()
        .body
}

/// Everything clients say is the text "sender:number", numbers counting up from 1.
fn parse(text: &str) -> (usize, u64) {
    let (sender, number) = text.split_once(':').unwrap();
    (sender.parse().unwrap(), number.parse().unwrap())
}

fn run_steps(steps: Vec<Step>) {
    let mut model = Model::new();
    for step in steps {
        model.play(step);
        model.check();
    }
    // At the end, every writer reads what is left: nothing may be missing or extra.
    for reader in 0..model.clients.len() {
        model.read(reader, usize::MAX);
    }
    model.store(usize::MAX);
    model.check();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Whatever happens, in whatever order (1 to 119 steps): no panic, no echo, no queue over its
    /// capacity, every message where the model says (so nothing from another room, no name
    /// held twice, refusals to their author alone), no message lost for a client that had room,
    /// nothing sent to a client after it was let go, each sender's order kept, a client stuck
    /// for the stall limit let go, and exact counts.
    #[test]
    fn the_broker_keeps_its_promises(steps in proptest::collection::vec(step(), 1..120)) {
        run_steps(steps);
    }
}

/// A sequence proptest once found: a client caught by two timeouts is counted once.
#[test]
fn a_client_timed_out_twice_is_counted_once() {
    run_steps(vec![
        Step::Join { capacity: 1 },
        Step::TimesOut { who: 0 },
        Step::TimesOut { who: 0 },
    ]);
}

/// A sequence proptest found (shrunk to nine clients, then cut to two by hand): two clients whose
/// queues have been full for the stall limit are let go at the same notice, and the second, told
/// that the first left before its own turn came, was counted as timed out twice. Each counts
/// once.
#[test]
fn stalled_clients_let_go_together_are_counted_once_each() {
    run_steps(vec![
        Step::Join { capacity: 1 },
        Step::Join { capacity: 1 },
        Step::Wait { millis: 100 },
        Step::Join { capacity: 1 },
    ]);
}
