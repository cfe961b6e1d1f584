// Fan-out workshop, exercise 11-many-servers: generated from chapters/11-many-servers by `cargo workshop generate`.
//
// Nothing to do in this file: it is the finished part of the exercise. Your part is in
// src/bridge.rs, src/broker/cluster.rs.

//! The broker's rooms, names and commands, tested through the events a connection sends and the
//! messages that come out of the queues: first one behaviour at a time, then a model-based
//! property test that plays random sequences of joins, moves, renames and messages.

use std::collections::{BTreeSet, HashMap};

use axum::extract::ws::Message;
use proptest::prelude::*;

use super::*;
use crate::{
    message::RoomCount,
    outbox::{Inbox, outbox},
};

/// Room enough in every queue that nothing here is ever dropped.
const ROOMY: usize = 100_000;

/// Clients on one broker, each with the queue it reads.
struct Chat {
    broker: Broker,
    clients: Vec<(ConnId, Inbox)>,
}

impl Chat {
    fn new() -> Chat {
        Chat {
            broker: Broker::default(),
            clients: Vec::new(),
        }
    }

    /// Connects a client on `wire`; returns its index.
    fn connect_on(&mut self, wire: Wire) -> usize {
        let id = ConnId::next();
        let (outbox, inbox) = outbox(ROOMY, usize::MAX);
        self.broker.handle(Event::Join {
            id,
            outbox,
            wire,
            span: tracing::Span::none(),
        });
        self.clients.push((id, inbox));
        self.clients.len() - 1
    }

    fn connect(&mut self) -> usize {
        self.connect_on(Wire::WebSocket)
    }

    /// Connects a client and empties its queue: welcome and who.
    fn connect_quietly(&mut self) -> usize {
        let who = self.connect();
        self.take(who);
        who
    }

    fn id(&self, who: usize) -> ConnId {
        self.clients[who].0
    }

    /// `who` sends the text `line`.
    fn line(&mut self, who: usize, line: &str) {
        let from = self.id(who);
        let message = Message::text(line);
        self.broker.handle(Event::Message { from, message });
    }

    /// Everything queued for `who`, parsed.
    fn take(&mut self, who: usize) -> Vec<Body> {
        let mut bodies = Vec::new();
        while let Ok(message) = self.clients[who].1.try_recv() {
            if let Message::Text(json) = message {
                let message: ChatMessage = serde_json::from_str(json.as_str()).unwrap();
                bodies.push(message.body);
            }
        }
        bodies
    }

    /// Empties every queue.
    fn settle(&mut self) {
        for who in 0..self.clients.len() {
            self.take(who);
        }
    }

    /// The text of the one error queued for `who`.
    fn error(&mut self, who: usize) -> String {
        match self.take(who).as_slice() {
            [Body::Error { text }] => text.clone(),
            other => panic!("expected one error, got {other:?}"),
        }
    }

    /// The name `who` goes by now.
    fn name(&self, who: usize) -> String {
        self.broker.clients[&self.id(who)].nick.to_string()
    }
}

fn said(room: &str, from: &str, text: &str) -> Body {
    Body::Chat {
        room: room.into(),
        from: from.into(),
        text: text.into(),
    }
}

/// A new client is a guest in the lobby: it is told its name and who is there, and the others
/// there are told it came.
#[test]
fn a_new_client_is_a_guest_in_the_lobby() {
    let mut chat = Chat::new();
    let alice = chat.connect();
    let first = chat.name(alice);
    assert!(first.starts_with("guest-"), "{first}");
    let bob = chat.connect();
    let second = chat.name(bob);
    assert_ne!(first, second, "guest names are unique");
    assert_eq!(
        chat.take(bob),
        [
            Body::Welcome {
                name: second.clone(),
                room: "lobby".into()
            },
            Body::Who {
                room: "lobby".into(),
                members: {
                    let mut m = vec![first.clone(), second.clone()];
                    m.sort();
                    m
                }
            },
        ]
    );
    let told = chat.take(alice);
    assert_eq!(
        told.last(),
        Some(&Body::Joined {
            room: "lobby".into(),
            name: second
        })
    );
}

/// A chat message goes to the other members of the sender's room, and to no one elsewhere.
#[test]
fn chat_stays_in_its_room() {
    let mut chat = Chat::new();
    let [alice, bob, carol] = [
        chat.connect_quietly(),
        chat.connect_quietly(),
        chat.connect_quietly(),
    ];
    chat.line(carol, "/join games");
    chat.settle();
    chat.line(alice, "in the lobby");
    let alice_name = chat.name(alice);
    assert_eq!(chat.take(bob), [said("lobby", &alice_name, "in the lobby")]);
    assert_eq!(chat.take(carol), [], "carol is in games");
    assert_eq!(chat.take(alice), [], "no echo");
    chat.line(carol, "in games");
    assert_eq!(chat.take(alice), []);
    assert_eq!(chat.take(bob), []);
}

/// `/join` tells the old room that the client left and the new one that it came, and the
/// client where it is now; a room other than the lobby goes with its last member.
#[test]
fn joining_and_leaving_rooms_tells_both_rooms() {
    let mut chat = Chat::new();
    let [alice, bob] = [chat.connect_quietly(), chat.connect_quietly()];
    chat.line(bob, "/nick bob");
    chat.settle();
    chat.line(bob, "/join Games");
    assert_eq!(
        chat.take(alice),
        [Body::Left {
            room: "lobby".into(),
            name: "bob".into()
        }]
    );
    assert_eq!(
        chat.take(bob),
        [
            Body::Welcome {
                name: "bob".into(),
                room: "games".into()
            },
            Body::Who {
                room: "games".into(),
                members: vec!["bob".into()]
            },
        ]
    );
    assert_eq!(chat.broker.stats().rooms, 2);
    chat.line(bob, "/leave");
    assert_eq!(
        chat.take(alice),
        [Body::Joined {
            room: "lobby".into(),
            name: "bob".into()
        }]
    );
    assert_eq!(
        chat.broker.stats().rooms,
        1,
        "games went with its last member"
    );
    chat.take(bob);
    chat.line(bob, "/leave");
    assert!(
        matches!(chat.take(bob).as_slice(), [Body::Info { .. }]),
        "already in the lobby"
    );
}

/// A name is one client's, whatever its case: a taken one is refused and the old name stays.
#[test]
fn a_taken_name_is_refused_whatever_its_case() {
    let mut chat = Chat::new();
    let [alice, bob] = [chat.connect_quietly(), chat.connect_quietly()];
    chat.line(alice, "/nick Alice");
    chat.settle();
    let before = chat.name(bob);
    chat.line(bob, "/nick ALICE");
    assert_eq!(chat.error(bob), "the name ALICE is taken");
    assert_eq!(chat.name(bob), before);
    assert_eq!(chat.take(alice), [], "nothing happened");
    // Alice may change her own name's case.
    chat.line(alice, "/nick alice");
    assert_eq!(
        chat.take(bob),
        [Body::Renamed {
            room: "lobby".into(),
            from: "Alice".into(),
            to: "alice".into()
        }]
    );
    assert_eq!(chat.broker.stats().named, 1);
}

/// Once a client leaves, its name is free again.
#[test]
fn a_name_is_freed_when_its_holder_leaves() {
    let mut chat = Chat::new();
    let [alice, bob] = [chat.connect_quietly(), chat.connect_quietly()];
    chat.line(alice, "/nick alice");
    chat.broker.handle(Event::Leave {
        id: chat.id(alice),
        reason: crate::metrics::Disconnect::Closed,
    });
    chat.settle();
    chat.line(bob, "/nick alice");
    assert_eq!(chat.name(bob), "alice");
}

/// `/msg` reaches its one recipient in any room; an unknown name is an error to the sender.
#[test]
fn a_private_message_reaches_one_client_anywhere() {
    let mut chat = Chat::new();
    let [alice, bob, carol] = [
        chat.connect_quietly(),
        chat.connect_quietly(),
        chat.connect_quietly(),
    ];
    chat.line(alice, "/nick alice");
    chat.line(bob, "/nick bob");
    chat.line(bob, "/join games");
    chat.settle();
    chat.line(alice, "/msg BOB psst, over here");
    assert_eq!(
        chat.take(bob),
        [Body::Private {
            from: "alice".into(),
            to: "bob".into(),
            text: "psst, over here".into()
        }]
    );
    assert_eq!(
        chat.take(carol),
        [],
        "carol shares alice's room, not the message"
    );
    chat.line(alice, "/msg dave hi");
    assert_eq!(chat.error(alice), "nobody called dave is connected");
}

/// `/me`, `/who`, `/rooms` and `/help` give what they promise.
#[test]
fn the_other_commands_answer() {
    let mut chat = Chat::new();
    let [alice, bob] = [chat.connect_quietly(), chat.connect_quietly()];
    chat.line(alice, "/nick alice");
    chat.line(bob, "/join games");
    chat.settle();
    chat.line(alice, "/me waves");
    assert_eq!(chat.take(bob), [], "bob is in games");
    chat.line(alice, "/rooms");
    assert_eq!(
        chat.take(alice),
        [Body::Rooms {
            rooms: vec![
                RoomCount {
                    name: "games".into(),
                    members: 1
                },
                RoomCount {
                    name: "lobby".into(),
                    members: 1
                }
            ]
        }]
    );
    chat.line(alice, "/who");
    assert_eq!(
        chat.take(alice),
        [Body::Who {
            room: "lobby".into(),
            members: vec!["alice".into()]
        }]
    );
    chat.line(alice, "/help");
    assert!(
        matches!(chat.take(alice).as_slice(), [Body::Info { text }] if text.contains("/msg NAME TEXT"))
    );
    chat.line(bob, "/join lobby");
    chat.settle();
    chat.line(alice, "/me waves");
    assert_eq!(
        chat.take(bob),
        [Body::Action {
            room: "lobby".into(),
            from: "alice".into(),
            text: "waves".into()
        }]
    );
}

/// `/quit` says bye, queues a Close for the writer, and removes the client, whose room is told.
#[test]
fn quit_says_bye_and_leaves() {
    let mut chat = Chat::new();
    let [alice, bob] = [chat.connect_quietly(), chat.connect_quietly()];
    chat.settle();
    let name = chat.name(alice);
    chat.line(alice, "/quit");
    assert!(
        matches!(chat.clients[alice].1.try_recv(), Ok(Message::Text(_))),
        "bye"
    );
    assert!(matches!(
        chat.clients[alice].1.try_recv(),
        Ok(Message::Close(Some(_)))
    ));
    assert_eq!(chat.broker.len(), 1);
    assert_eq!(
        chat.take(bob),
        [Body::Left {
            room: "lobby".into(),
            name
        }]
    );
}

/// Bad input of every kind is an error to its sender only, and the others hear nothing of it.
#[test]
fn bad_input_is_an_error_to_its_sender_only() {
    let mut chat = Chat::new();
    let [alice, bob] = [chat.connect_quietly(), chat.connect_quietly()];
    chat.settle();
    for line in [
        "",
        "/",
        "/join",
        "/join private",
        "/nick a\u{1}b",
        "/nick server",
        "/dance",
        "/leave now",
    ] {
        chat.line(alice, line);
        let error = chat.error(alice);
        assert!(!error.is_empty(), "{line:?}");
        assert_eq!(chat.take(bob), [], "{line:?} reaches nobody else");
    }
    let id = chat.id(alice);
    chat.broker.handle(Event::Refusal {
        to: id,
        reason: "too long".into(),
    });
    assert_eq!(chat.error(alice), "too long");
}

/// A thousand renames in a row leave one name held, the last, and everyone else's intact.
#[test]
fn a_thousand_renames_leave_one_name() {
    let mut chat = Chat::new();
    let [alice, bob] = [chat.connect_quietly(), chat.connect_quietly()];
    for n in 0..1000 {
        chat.line(alice, &format!("/nick alice{n}"));
    }
    assert_eq!(chat.name(alice), "alice999");
    assert_eq!(chat.broker.names.len(), 2);
    assert_eq!(chat.take(bob).len(), 1000, "bob was told of every rename");
}

/// A terminal client gets readable lines, a browser JSON, for the same message.
#[test]
fn each_wire_gets_its_rendering() {
    let mut chat = Chat::new();
    let alice = chat.connect_quietly();
    let terminal = chat.connect_on(Wire::Lines);
    let browser = chat.connect_quietly();
    chat.line(alice, "/nick alice");
    while chat.clients[terminal].1.try_recv().is_ok() {}
    chat.take(browser);
    chat.line(alice, "hi");
    let Ok(Message::Text(line)) = chat.clients[terminal].1.try_recv() else {
        panic!("a line")
    };
    assert_eq!(line.as_str(), "[lobby] alice: hi");
    assert_eq!(chat.take(browser), [said("lobby", "alice", "hi")]);
}

/// A message to a room is rendered once per wire: every browser in the room gets the same JSON
/// bytes, not a copy each.
#[test]
fn every_recipient_shares_one_payload() {
    let mut chat = Chat::new();
    let alice = chat.connect_quietly();
    let others: Vec<usize> = (0..3).map(|_| chat.connect_quietly()).collect();
    chat.settle();
    chat.line(alice, "one payload");
    let addresses: Vec<*const u8> = others
        .iter()
        .map(|&who| match chat.clients[who].1.try_recv() {
            Ok(Message::Text(json)) => json.as_str().as_ptr(),
            other => panic!("client {who} should have the message, got {other:?}"),
        })
        .collect();
    assert!(
        addresses.windows(2).all(|pair| pair[0] == pair[1]),
        "every browser should get the same bytes: {addresses:?}"
    );
}

// The model-based test. proptest makes up sequences of steps, plays them on a real `Broker`, and
// checks it against a model of who is where, called what. Every message said carries a number;
// the model notes who should get it, when it is said. The promises checked:
// - nobody receives a message from another room, or a private message meant for someone else;
// - everybody who should receive a message does (the queues here never fill);
// - no name is held twice, whatever the case; a client's name and room are what the model says;
// - the broker's three maps agree with each other, and empty rooms other than the lobby go.

/// One thing that can happen. `who` picks a client among all that ever connected.
#[derive(Debug, Clone)]
enum Step {
    Connect,
    Disconnect { who: usize },
    Say { who: usize },
    Nick { who: usize, name: usize },
    Join { who: usize, room: usize },
    Leave { who: usize },
    Msg { who: usize, to: usize },
}

const NAMES: &[&str] = &[
    "alice", "Alice", "bob", "BOB", "carol", "guest-1", "server", "x y",
];
const ROOMS: &[&str] = &["lobby", "games", "GAMES", "music", "private"];

fn step() -> impl Strategy<Value = Step> {
    let who = any::<usize>();
    prop_oneof![
        2 => Just(Step::Connect),
        1 => who.prop_map(|who| Step::Disconnect { who }),
        4 => who.prop_map(|who| Step::Say { who }),
        2 => (who, 0..NAMES.len()).prop_map(|(who, name)| Step::Nick { who, name }),
        2 => (who, 0..ROOMS.len()).prop_map(|(who, room)| Step::Join { who, room }),
        1 => who.prop_map(|who| Step::Leave { who }),
        2 => (who, 0..NAMES.len()).prop_map(|(who, to)| Step::Msg { who, to }),
    ]
}

/// What the model knows of one client.
struct Modelled {
    connected: bool,
    name: String,
    room: String,
}

fn run_steps(steps: Vec<Step>) {
    let mut chat = Chat::new();
    let mut model: Vec<Modelled> = Vec::new();
    // Message number → who should receive it.
    let mut expected: HashMap<u64, BTreeSet<usize>> = HashMap::new();
    let mut number = 0u64;
    let connected = |model: &[Modelled], who: usize| -> Option<usize> {
        let live: Vec<usize> = (0..model.len()).filter(|&i| model[i].connected).collect();
        (!live.is_empty()).then(|| live[who % live.len()])
    };
    for step in steps {
        match step {
            Step::Connect => {
                let who = chat.connect();
                model.push(Modelled {
                    connected: true,
                    name: chat.name(who),
                    room: "lobby".into(),
                });
            }
            Step::Disconnect { who } => {
                let Some(who) = connected(&model, who) else {
                    continue;
                };
                chat.broker.handle(Event::Leave {
                    id: chat.id(who),
                    reason: crate::metrics::Disconnect::Closed,
                });
                model[who].connected = false;
            }
            Step::Say { who } => {
                let Some(who) = connected(&model, who) else {
                    continue;
                };
                number += 1;
                let to = (0..model.len())
                    .filter(|&i| i != who && model[i].connected && model[i].room == model[who].room)
                    .collect();
                expected.insert(number, to);
                chat.line(who, &number.to_string());
            }
            Step::Nick { who, name } => {
                let Some(who) = connected(&model, who) else {
                    continue;
                };
                let name = NAMES[name];
                let taken = (0..model.len()).any(|i| {
                    i != who && model[i].connected && model[i].name.eq_ignore_ascii_case(name)
                });
                if Nick::parse(name).is_ok() && !taken {
                    model[who].name = name.to_string();
                }
                chat.line(who, &format!("/nick {name}"));
            }
            Step::Join { who, room } => {
                let Some(who) = connected(&model, who) else {
                    continue;
                };
                let room = ROOMS[room];
                if let Ok(room) = Room::parse(room) {
                    model[who].room = room.to_string();
                }
                chat.line(who, &format!("/join {room}"));
            }
            Step::Leave { who } => {
                let Some(who) = connected(&model, who) else {
                    continue;
                };
                model[who].room = "lobby".into();
                chat.line(who, "/leave");
            }
            Step::Msg { who, to } => {
                let Some(who) = connected(&model, who) else {
                    continue;
                };
                let to = NAMES[to];
                number += 1;
                let recipient = (0..model.len())
                    .find(|&i| model[i].connected && model[i].name.eq_ignore_ascii_case(to));
                expected.insert(number, recipient.into_iter().collect());
                chat.line(who, &format!("/msg {to} {number}"));
            }
        }
        check_invariants(&chat, &model);
    }
    // Everything said reached exactly whom it should: read every queue, the closed ones too.
    let mut received: HashMap<u64, BTreeSet<usize>> = HashMap::new();
    for who in 0..chat.clients.len() {
        for body in chat.take(who) {
            let text = match body {
                Body::Chat { text, .. } | Body::Private { text, .. } => text,
                _ => continue,
            };
            let n: u64 = text.parse().unwrap();
            assert!(
                received.entry(n).or_default().insert(who),
                "client {who} received message {n} twice"
            );
        }
    }
    for (n, to) in expected {
        let got = received.remove(&n).unwrap_or_default();
        assert_eq!(
            got, to,
            "message {n} should reach exactly {to:?}, it reached {got:?}"
        );
    }
}

/// The broker's maps agree with each other and with the model.
fn check_invariants(chat: &Chat, model: &[Modelled]) {
    let broker = &chat.broker;
    let live = model.iter().filter(|m| m.connected).count();
    assert_eq!(broker.len(), live, "connections");
    assert_eq!(
        broker.names.len(),
        live,
        "one name per client, none held twice"
    );
    let mut in_rooms = 0;
    for (room, members) in &broker.rooms {
        assert!(
            room.is_lobby() || !members.is_empty(),
            "empty room {room} should be gone"
        );
        for member in members {
            assert_eq!(
                &broker.clients[member].room, room,
                "{member} is in {room}'s members"
            );
        }
        in_rooms += members.len();
    }
    assert_eq!(in_rooms, live, "every client in exactly one room");
    for (who, modelled) in model.iter().enumerate().filter(|(_, m)| m.connected) {
        let id = chat.id(who);
        let connection = &broker.clients[&id];
        assert_eq!(
            connection.nick.as_str(),
            modelled.name,
            "client {who}'s name"
        );
        assert_eq!(
            connection.room.as_str(),
            modelled.room,
            "client {who}'s room"
        );
        assert_eq!(broker.names.get(&connection.nick.key()), Some(&id));
    }
    let named = model
        .iter()
        .filter(|m| m.connected && !m.name.starts_with("guest-"))
        .count();
    assert_eq!(broker.stats().named, named as u64);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Whatever happens, in whatever order: nobody hears another room, every message reaches
    /// whom it should, and no name is held twice.
    #[test]
    fn rooms_and_names_keep_their_promises(steps in proptest::collection::vec(step(), 1..80)) {
        run_steps(steps);
    }
}
