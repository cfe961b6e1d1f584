// Fan-out workshop, exercise 07-timeouts: generated from chapters/07-timeouts by `cargo workshop generate`.
//
// Do not edit: these are the chapter's stage tests, only renamed for this crate. Run them
// with `cargo workshop check 07` (or `cargo test -p ex07-timeouts --no-fail-fast`).

//! A model-based property test of the broker. proptest makes up sequences of [`Step`]s (clients
//! joining, leaving, talking, reading slowly or not at all, writers vanishing, timeouts, time
//! passing), plays them on a real `Broker` through `handle_at`, and after every step checks the
//! broker against a [`Model`] of what it promised. When a sequence breaks a promise, proptest
//! shrinks it to a shorter one that still does (shorter, not always shortest: it stops when none of
//! the removals and simplifications it tries still fails), and prints that.

// Tests may panic (that is how they fail) and may count without care.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::{collections::HashMap, time::Duration};

use axum::extract::ws::Message;
use ex07_timeouts::broker::{Broker, ConnId, Event, Stats};
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
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => (1usize..=3).prop_map(|capacity| Step::Join { capacity }),
        1 => any::<usize>().prop_map(|who| Step::Leave { who }),
        6 => any::<usize>().prop_map(|who| Step::Say { who }),
        3 => (any::<usize>(), 0usize..=3).prop_map(|(who, count)| Step::Read { who, count }),
        1 => any::<usize>().prop_map(|who| Step::WriterEnds { who }),
        1 => any::<usize>().prop_map(|who| Step::TimesOut { who }),
        1 => Just(Step::Refused),
        2 => (0u64..=80).prop_map(|millis| Step::Wait { millis }),
        1 => Just(Step::Stats),
    ]
}

/// What the model knows about one client.
struct Client {
    id: ConnId,
    capacity: usize,
    /// The writer's end of the queue; `None` once the writer has ended.
    rx: Option<mpsc::Receiver<Message>>,
    /// Whether the broker should still have it in its map.
    connected: bool,
    /// Once it is gone: the first message number it must never receive.
    gone_from: Option<u64>,
    /// When a message first found its queue full, if none has found room since.
    full_since: Option<Instant>,
    /// The last message number received from each sender.
    last_from: HashMap<usize, u64>,
}

impl Client {
    /// Messages in its queue, not yet taken by its writer.
    fn waiting(&self) -> usize {
        self.rx.as_ref().map_or(0, |rx| rx.len())
    }
}

/// The broker under test, and what it should have done so far.
struct Model {
    broker: Broker,
    now: Instant,
    clients: Vec<Client>,
    /// The number of the last message sent; every message is the text "sender:number".
    number: u64,
    /// The counts the broker should report.
    expected: Stats,
}

impl Model {
    fn new() -> Model {
        Model {
            broker: Broker::new(STALL_LIMIT),
            now: Instant::now(),
            clients: Vec::new(),
            number: 0,
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

    /// The broker no longer has client `index`: messages from `first_missed` on must not reach it.
    fn let_go(&mut self, index: usize, first_missed: u64) {
        let client = &mut self.clients[index];
        if client.connected {
            client.connected = false;
            client.gone_from = Some(first_missed);
            self.expected.disconnected += 1;
        }
    }

    fn play(&mut self, step: Step) {
        match step {
            Step::Join { capacity } => self.join(capacity),
            Step::Leave { who } => {
                if let Some(who) = self.pick(who) {
                    self.handle(Event::Leave {
                        id: self.clients[who].id,
                    });
                    self.let_go(who, self.number + 1);
                }
            }
            Step::TimesOut { who } => {
                if let Some(who) = self.pick(who) {
                    self.handle(Event::TimedOut {
                        id: self.clients[who].id,
                    });
                    if self.clients[who].connected {
                        self.expected.timed_out += 1;
                    }
                    self.let_go(who, self.number + 1);
                }
            }
            Step::Refused => {
                self.handle(Event::Refused);
                self.expected.refused += 1;
            }
            Step::Say { who } => {
                if let Some(sender) = self.pick(who) {
                    self.say(sender);
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
        }
    }

    fn join(&mut self, capacity: usize) {
        let id = ConnId::next();
        let (outbox, rx) = mpsc::channel(capacity);
        self.handle(Event::Join { id, outbox });
        self.clients.push(Client {
            id,
            capacity,
            rx: Some(rx),
            connected: true,
            gone_from: None,
            full_since: None,
            last_from: HashMap::new(),
        });
    }

    /// Client `sender` says something: the model decides beforehand what must happen to every
    /// other client, then checks that it did.
    fn say(&mut self, sender: usize) {
        self.number += 1;
        let number = self.number;
        self.expected.messages_in += 1;
        let mut delivered_to = Vec::new();
        let mut let_go = Vec::new();
        for (index, client) in self.clients.iter_mut().enumerate() {
            if index == sender || !client.connected {
                continue;
            }
            if client.rx.is_none() {
                let_go.push(index); // its writer has ended
            } else if client.waiting() < client.capacity {
                client.full_since = None;
                delivered_to.push(index);
            } else {
                self.expected.dropped += 1;
                let since = *client.full_since.get_or_insert(self.now);
                if self.now.saturating_duration_since(since) >= STALL_LIMIT {
                    self.expected.timed_out += 1;
                    let_go.push(index); // full for the whole stall limit
                }
            }
        }
        let before: Vec<usize> = self.clients.iter().map(Client::waiting).collect();
        let message = Message::text(format!("{sender}:{number}"));
        let from = self.clients[sender].id;
        self.handle(Event::Message { from, message });
        self.expected.deliveries += delivered_to.len() as u64;
        for index in delivered_to {
            assert_eq!(
                self.clients[index].waiting(),
                before[index] + 1,
                "client {index} had room: message {number} should be in its queue"
            );
        }
        for index in let_go {
            self.let_go(index, number);
        }
    }

    /// Client `reader`'s writer takes up to `count` messages, each checked against the promises.
    fn read(&mut self, reader: usize, count: usize) {
        let client = &mut self.clients[reader];
        for _ in 0..count {
            let Some(rx) = client.rx.as_mut() else { break };
            match rx.try_recv() {
                Ok(message) => {
                    let (sender, got) = parse(&message);
                    assert_ne!(sender, reader, "client {reader} got its own message {got}");
                    if let Some(gone_from) = client.gone_from {
                        assert!(
                            got < gone_from,
                            "client {reader} got message {got}, sent after it was let go"
                        );
                    }
                    let last = client.last_from.insert(sender, got);
                    assert!(
                        last.is_none_or(|last| last < got),
                        "client {reader} got {sender}'s message {got} after {last:?}"
                    );
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

    /// After every step: the counts agree with the model, and no queue holds more than its
    /// capacity (a bounded channel cannot; this would catch an unbounded one).
    fn check(&mut self) {
        self.expected.connections = self
            .clients
            .iter()
            .filter(|client| client.connected)
            .count() as u64;
        assert_eq!(
            self.broker.stats(),
            self.expected,
            "the counts should follow what happened"
        );
        for (index, client) in self.clients.iter().enumerate() {
            assert!(
                client.waiting() <= client.capacity,
                "client {index} has {} messages waiting, over its capacity of {}",
                client.waiting(),
                client.capacity
            );
        }
    }
}

/// Every message is the text "sender:number", numbers counting up from 1.
fn parse(message: &Message) -> (usize, u64) {
    let Message::Text(text) = message else {
        panic!("only text is sent, got {message:?}")
    };
    let (sender, number) = text.as_str().split_once(':').unwrap();
    (sender.parse().unwrap(), number.parse().unwrap())
}

fn run_steps(steps: Vec<Step>) {
    let mut model = Model::new();
    for step in steps {
        model.play(step);
        model.check();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    /// Whatever happens, in whatever order (1 to 119 steps): no panic, no echo, no queue over its
    /// capacity, no message lost for a client that had room, nothing sent to a client after it
    /// was let go, each sender's order kept, a client stuck for the stall limit let go, and exact
    /// counts.
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
