// Fan-out workshop, exercise 11-many-servers: generated from chapters/11-many-servers by `cargo workshop generate`.
//
// Nothing to do in this file: it is the finished part of the exercise. Your part is in
// src/bridge.rs, src/broker/cluster.rs.

//! The broker's side of the history, without a database: the test plays the storage task,
//! reading the jobs the broker queues and answering with `Event::History` when it chooses. That
//! is how the seam is tested at its worst: live messages arriving between a request and its
//! answer, answers overtaken by later requests, a storage queue that is full.

use axum::extract::ws::Message;
use tokio::sync::mpsc;

use super::{history::HOLD_LIMIT, *};
use crate::{
    outbox::{Inbox, outbox},
    storage::{Job, Read, Record, UNAVAILABLE},
};

/// A broker that keeps history through a queue this test reads, with its clients.
struct Chat {
    broker: Broker,
    jobs: mpsc::Receiver<Job>,
    clients: Vec<(ConnId, Inbox)>,
}

impl Chat {
    /// Replays `replay` messages on join; the storage queue has room for `room` jobs; numbers
    /// go on after `last`.
    fn new(replay: usize, room: usize, last: u64) -> Chat {
        let (jobs, jobs_rx) = mpsc::channel(room);
        let counts = std::sync::Arc::default();
        let broker = Broker::default().with_history(History::new(jobs, replay, last, counts));
        Chat {
            broker,
            jobs: jobs_rx,
            clients: Vec::new(),
        }
    }

    fn connect(&mut self) -> usize {
        let id = ConnId::next();
        let (outbox, inbox) = outbox(10_000, usize::MAX);
        let wire = Wire::WebSocket;
        self.broker.handle(Event::Join {
            id,
            outbox,
            wire,
            span: tracing::Span::none(),
        });
        self.clients.push((id, inbox));
        self.clients.len() - 1
    }

    fn line(&mut self, who: usize, line: &str) {
        let from = self.clients[who].0;
        let message = Message::text(line);
        self.broker.handle(Event::Message { from, message });
    }

    /// Every job queued so far.
    fn jobs(&mut self) -> Vec<Job> {
        let mut jobs = Vec::new();
        while let Ok(job) = self.jobs.try_recv() {
            jobs.push(job);
        }
        jobs
    }

    /// The one read among the jobs queued so far (the writes are passed over).
    fn the_read(&mut self) -> Read {
        let reads: Vec<Read> = self
            .jobs()
            .into_iter()
            .filter_map(|job| match job {
                Job::Read(read) => Some(read),
                Job::Write(_) => None,
            })
            .collect();
        match <[Read; 1]>::try_from(reads) {
            Ok([read]) => read,
            Err(reads) => panic!("expected one read, got {reads:?}"),
        }
    }

    fn answer(&mut self, read: &Read, answer: Result<Vec<ChatMessage>, String>) {
        self.broker.handle(Event::History {
            to: read.to,
            ticket: read.ticket,
            answer,
        });
    }

    /// What `who` received, as (kind, text, history) in order; notices keep their kind only.
    fn take(&mut self, who: usize) -> Vec<(String, String, bool)> {
        let mut got = Vec::new();
        while let Ok(Message::Text(json)) = self.clients[who].1.try_recv() {
            let message: ChatMessage = serde_json::from_str(json.as_str()).unwrap();
            let json: serde_json::Value = serde_json::from_str(json.as_str()).unwrap();
            let kind = json["kind"].as_str().unwrap().to_string();
            let text = json["text"].as_str().unwrap_or_default().to_string();
            got.push((kind, text, message.history));
        }
        got
    }

    /// The texts of the chat messages `who` received, history ones marked `h:`.
    fn said(&mut self, who: usize) -> Vec<String> {
        self.take(who)
            .into_iter()
            .filter(|(kind, _, _)| kind == "chat")
            .map(|(_, text, history)| if history { format!("h:{text}") } else { text })
            .collect()
    }
}

/// A chat message of the lobby, as the storage task would return it.
fn old(text: &str) -> ChatMessage {
    ChatMessage {
        ts: 1,
        body: Body::Chat {
            room: "lobby".into(),
            from: "alice".into(),
            text: text.into(),
        },
        history: true,
    }
}

/// The seam: what was said before the join comes as history, what is said while the answer is
/// on its way is held and comes after it, and then messages flow straight again. Nothing twice,
/// nothing missing.
#[test]
fn a_joiner_gets_history_then_what_was_held_then_live() {
    let mut chat = Chat::new(50, 100, 0);
    let alice = chat.connect();
    let read = chat.the_read();
    chat.answer(&read, Ok(vec![]));
    chat.line(alice, "one");
    chat.line(alice, "two");
    let bob = chat.connect();
    let read = chat.the_read();
    assert_eq!(
        (read.upto, read.limit),
        (2, 50),
        "up to the last message said"
    );
    chat.line(alice, "three"); // said while bob's history is on its way
    assert_eq!(
        chat.said(bob),
        Vec::<String>::new(),
        "held until the answer"
    );
    chat.answer(&read, Ok(vec![old("one"), old("two")]));
    chat.line(alice, "four");
    assert_eq!(chat.said(bob), ["h:one", "h:two", "three", "four"]);
}

/// The welcome and who come first, then the history: the client knows where it is before it
/// reads what was said there.
#[test]
fn history_follows_the_welcome() {
    let mut chat = Chat::new(50, 100, 0);
    let bob = chat.connect();
    let read = chat.the_read();
    chat.answer(&read, Ok(vec![old("earlier")]));
    let kinds: Vec<String> = chat.take(bob).into_iter().map(|(kind, ..)| kind).collect();
    assert_eq!(kinds, ["welcome", "who", "chat"]);
}

/// Every message said gets the next number, after the highest one stored (a restart goes on
/// from there), and goes to the storage queue with it; private messages too.
#[test]
fn numbers_go_on_from_the_last_one_stored() {
    let mut chat = Chat::new(50, 100, 41);
    let alice = chat.connect();
    chat.line(alice, "/nick alice");
    chat.line(alice, "hello");
    chat.line(alice, "/me waves");
    chat.line(alice, "/msg alice note to self");
    let written: Vec<(u64, Body)> = chat
        .jobs()
        .into_iter()
        .filter_map(|job| match job {
            Job::Write(record) => Some((record.seq, record.message.body)),
            Job::Read(_) => None,
        })
        .collect();
    let numbers: Vec<u64> = written.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(numbers, [42, 43, 44]);
    assert!(matches!(written[2].1, Body::Private { .. }));
}

/// A second request before the first answer (a quick `/join`): the first answer is stale and
/// dropped; the second one's history comes after what was held before it, and before what was
/// held after it.
#[test]
fn a_stale_answer_is_dropped_and_the_latest_one_placed_where_it_was_asked() {
    let mut chat = Chat::new(50, 100, 0);
    let carol = chat.connect();
    let first = chat.the_read();
    chat.answer(&first, Ok(vec![]));
    chat.line(carol, "/join games");
    chat.jobs();
    let dave = chat.connect();
    let read = chat.the_read();
    chat.answer(&read, Ok(vec![]));
    let bob = chat.connect();
    let lobby = chat.the_read();
    assert_eq!(
        chat.take(bob).len(),
        2,
        "welcome and who, before any request"
    );
    chat.line(dave, "live in the lobby"); // held before the second request
    chat.line(bob, "/join games");
    let games = chat.the_read();
    chat.line(carol, "live in games"); // after the second request: after its history
    chat.answer(&lobby, Ok(vec![old("stale")]));
    assert!(chat.take(bob).is_empty(), "a stale answer releases nothing");
    let earlier = ChatMessage {
        body: Body::Chat {
            room: "games".into(),
            from: "carol".into(),
            text: "earlier in games".into(),
        },
        ..old("")
    };
    chat.answer(&games, Ok(vec![earlier]));
    let got: Vec<String> = chat
        .take(bob)
        .into_iter()
        .map(|(kind, text, history)| format!("{kind}{}{text}", if history { " h:" } else { " " }))
        .collect();
    assert_eq!(
        got,
        [
            "chat live in the lobby",
            "welcome ",
            "who ",
            "chat h:earlier in games",
            "chat live in games"
        ]
    );
}

/// `/history N` asks for N; an empty room says so; a failed read is an error to the asker.
#[test]
fn history_on_demand_answers_even_when_there_is_nothing() {
    let mut chat = Chat::new(50, 100, 0);
    let alice = chat.connect();
    let join = chat.the_read();
    chat.answer(&join, Ok(vec![]));
    chat.take(alice);
    chat.line(alice, "/history 5");
    let read = chat.the_read();
    assert_eq!(read.limit, 5);
    chat.answer(&read, Ok(vec![]));
    assert_eq!(
        chat.take(alice),
        [(
            "info".to_string(),
            "nothing has been said in lobby yet".to_string(),
            false
        )]
    );
    chat.line(alice, "/history");
    let read = chat.the_read();
    assert_eq!(read.limit, 50, "--history by default");
    chat.answer(&read, Err(UNAVAILABLE.to_string()));
    assert_eq!(
        chat.take(alice),
        [("error".to_string(), UNAVAILABLE.to_string(), false)]
    );
}

/// With `--history 0`, a join asks for nothing and holds nothing; `/history` still works.
#[test]
fn replay_off_means_no_request_on_join() {
    let mut chat = Chat::new(0, 100, 0);
    let alice = chat.connect();
    let bob = chat.connect();
    assert!(chat.jobs().is_empty(), "no read on join");
    chat.line(alice, "straight through");
    assert_eq!(chat.said(bob), ["straight through"]);
    chat.line(bob, "/history");
    assert_eq!(chat.the_read().limit, crate::config::DEFAULT_HISTORY);
}

/// A full storage queue costs the history, never the chat: the message is not kept (and
/// counted), a joiner is not held for an answer that will not come, and one who asks is told.
#[test]
fn a_full_storage_queue_costs_history_not_chat() {
    let mut chat = Chat::new(50, 1, 0);
    let alice = chat.connect(); // its read fills the one place
    chat.line(alice, "not kept");
    assert_eq!(chat.broker.stats().history_dropped, 1);
    let bob = chat.connect(); // no room for its read
    chat.line(alice, "heard at once");
    assert_eq!(chat.said(bob), ["heard at once"]);
    chat.take(bob);
    chat.line(bob, "/history");
    assert_eq!(
        chat.take(bob),
        [("error".to_string(), UNAVAILABLE.to_string(), false)]
    );
}

/// What is held is bounded: past HOLD_LIMIT messages, the rest is dropped for that client (and
/// counted), as for a full queue; the others get everything.
#[test]
fn what_is_held_is_bounded() {
    let mut chat = Chat::new(50, 10_000, 0);
    let alice = chat.connect();
    let read = chat.the_read();
    chat.answer(&read, Ok(vec![]));
    let carol = chat.connect();
    let read = chat.the_read();
    chat.answer(&read, Ok(vec![]));
    chat.take(alice);
    let bob = chat.connect();
    let read = chat.the_read();
    let extra = 5;
    for n in 0..HOLD_LIMIT + extra {
        chat.line(alice, &n.to_string());
    }
    assert_eq!(chat.broker.stats().dropped, extra as u64);
    chat.answer(&read, Ok(vec![]));
    // Bob also holds carol's join notice: one place fewer for chat.
    assert_eq!(chat.said(bob).len(), HOLD_LIMIT);
    assert_eq!(chat.said(carol).len(), HOLD_LIMIT + extra);
}

/// `/quit` while the history is on its way: what was held goes out before the goodbye.
#[test]
fn quitting_while_held_lets_the_held_messages_out_first() {
    let mut chat = Chat::new(50, 100, 0);
    let alice = chat.connect();
    let read = chat.the_read();
    chat.answer(&read, Ok(vec![]));
    let bob = chat.connect();
    chat.line(alice, "just in time");
    chat.line(bob, "/quit");
    let got: Vec<(String, String)> = chat
        .take(bob)
        .into_iter()
        .map(|(kind, text, _)| (kind, text))
        .collect();
    let tail: Vec<&str> = got.iter().rev().take(2).map(|(_, t)| t.as_str()).collect();
    assert_eq!(tail, ["bye", "just in time"]);
}

// The seam, as a property: whatever the interleaving of messages said, clients coming, clients
// hopping to another room and straight back (which leaves a stale request behind), and answers
// arriving in any order, a client in the lobby reads, after its last welcome there, every
// message of the lobby exactly once and in order: the history (which reaches back to the first,
// `--history` being larger than all that is said here) and then the live ones, seamlessly.

/// One thing that can happen. `who` and `pick` choose among the clients and the open requests.
#[derive(Debug, Clone)]
enum Step {
    Say,
    Connect,
    Hop { who: usize },
    Answer { pick: usize },
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        4 => Just(Step::Say),
        2 => Just(Step::Connect),
        1 => any::<usize>().prop_map(|who| Step::Hop { who }),
        3 => any::<usize>().prop_map(|pick| Step::Answer { pick }),
    ]
}

/// Plays `steps`; client 0 does all the talking, in the lobby.
fn play(steps: Vec<Step>) {
    let mut chat = Chat::new(crate::command::MAX_HISTORY, 100_000, 0);
    let talker = chat.connect();
    let mut store: Vec<Record> = Vec::new();
    let mut open: Vec<Read> = Vec::new();
    let mut said = 0u32;
    // Sorts the queued jobs: writes into the store, reads into the open requests.
    let collect = |chat: &mut Chat, store: &mut Vec<Record>, open: &mut Vec<Read>| {
        for job in chat.jobs() {
            match job {
                Job::Write(record) => store.push(record),
                Job::Read(read) => open.push(read),
            }
        }
    };
    // What the storage task would answer: the last `limit` of the room, numbered `upto` or less.
    let answer = |store: &[Record], read: &Read| -> Vec<ChatMessage> {
        let room = read.room.to_string();
        let mut found: Vec<ChatMessage> = store
            .iter()
            .filter(|record| record.seq <= read.upto)
            .filter(
                |record| matches!(&record.message.body, Body::Chat { room: r, .. } if *r == room),
            )
            .map(|record| ChatMessage {
                history: true,
                ..record.message.clone()
            })
            .collect();
        let skip = found.len().saturating_sub(read.limit);
        found.drain(..skip);
        found
    };
    for step in steps {
        match step {
            Step::Say => {
                said += 1;
                chat.line(talker, &said.to_string());
            }
            Step::Connect => {
                chat.connect();
            }
            Step::Hop { who } => {
                let who = 1 + who % chat.clients.len().max(2).saturating_sub(1);
                if who < chat.clients.len() {
                    chat.line(who, "/join games");
                    chat.line(who, "/join lobby");
                }
            }
            Step::Answer { pick } => {
                collect(&mut chat, &mut store, &mut open);
                if !open.is_empty() {
                    let read = open.remove(pick % open.len());
                    let found = answer(&store, &read);
                    chat.answer(&read, Ok(found));
                }
            }
        }
    }
    // Every open request answered, the stale ones too, in the order they were made.
    collect(&mut chat, &mut store, &mut open);
    for read in std::mem::take(&mut open) {
        let found = answer(&store, &read);
        chat.answer(&read, Ok(found));
    }
    let all: Vec<u32> = (1..=said).collect();
    for who in 1..chat.clients.len() {
        let mut since_welcome: Vec<u32> = Vec::new();
        for (kind, text, _) in chat.take(who) {
            match kind.as_str() {
                "welcome" => since_welcome.clear(),
                "chat" => since_welcome.push(text.parse().unwrap()),
                _ => {}
            }
        }
        assert_eq!(
            since_welcome, all,
            "client {who} should read every message of the lobby once, in order"
        );
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
    /// Whatever the interleaving, every client in the lobby reads its messages once each, in
    /// order, history and live together.
    #[test]
    fn the_seam_loses_and_repeats_nothing(steps in proptest::collection::vec(step(), 1..60)) {
        play(steps);
    }
}
