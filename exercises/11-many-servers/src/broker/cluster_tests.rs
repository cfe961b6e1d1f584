// Fan-out workshop, exercise 11-many-servers: generated from chapters/11-many-servers by `cargo workshop generate`.
//
// Nothing to do in this file: it is the finished part of the exercise. Your part is in
// src/bridge.rs, src/broker/cluster.rs.

//! The broker's side of `--redis`, tested without Redis: what the broker hands the bridge, and
//! what it makes of the bridge's events (the other servers' news, Redis's state, claims). The
//! bridge itself meets a real Redis in the stage tests (`tests/src/cluster.rs`).

use std::sync::Arc;

use axum::extract::ws::Message;

use super::*;
use crate::{
    bridge::{self, Claim, Envelope, Member, News, Outbound},
    outbox::{Inbox, outbox},
};

/// Another server's number.
const OTHER: u64 = 9;

/// A broker of instance 1 and the bridge's end of its queue.
struct Node {
    broker: Broker,
    bridge: mpsc::Receiver<Outbound>,
}

impl Node {
    fn new(capacity: usize) -> Node {
        Node::with_jobs(capacity, mpsc::channel(1).0, false)
    }

    /// A node whose history jobs go to `jobs` (`keeps`: replayed on a join).
    fn with_jobs(capacity: usize, jobs: mpsc::Sender<crate::storage::Job>, keeps: bool) -> Node {
        let (outbound, bridge) = mpsc::channel(capacity);
        let history = History::new(
            jobs.clone(),
            50,
            0,
            Arc::new(crate::storage::Counts::default()),
        );
        let links = bridge::Links {
            instance: 1,
            outbound,
            jobs,
            counts: Arc::new(bridge::Counts::default()),
            history_counts: Arc::new(crate::storage::Counts::default()),
        };
        let mut broker = Broker::default().with_cluster(Cluster::new(&links));
        if keeps {
            broker = broker.with_history(history);
        }
        let mut node = Node { broker, bridge };
        node.bridged(Bridged::Up);
        node.outbound();
        node
    }

    fn bridged(&mut self, bridged: Bridged) {
        self.broker.handle(Event::Bridge(bridged));
    }

    /// Another server's `news`.
    fn news(&mut self, news: News) {
        self.bridged(Bridged::News(Envelope { from: OTHER, news }));
    }

    /// A client, with its queue emptied of its welcome.
    fn connect(&mut self) -> (ConnId, Inbox) {
        let id = ConnId::next();
        let (outbox, mut inbox) = outbox(64, usize::MAX);
        let wire = Wire::WebSocket;
        self.broker.handle(Event::Join {
            id,
            outbox,
            wire,
            span: tracing::Span::none(),
        });
        bodies(&mut inbox);
        (id, inbox)
    }

    fn line(&mut self, from: ConnId, line: &str) {
        let message = Message::text(line);
        self.broker.handle(Event::Message { from, message });
    }

    /// Everything handed to the bridge so far.
    fn outbound(&mut self) -> Vec<Outbound> {
        let mut out = Vec::new();
        while let Ok(item) = self.bridge.try_recv() {
            out.push(item);
        }
        out
    }
}

/// Everything queued in `inbox`, parsed.
fn bodies(inbox: &mut Inbox) -> Vec<Body> {
    let mut bodies = Vec::new();
    while let Ok(message) = inbox.try_recv() {
        if let Message::Text(json) = message {
            let message: ChatMessage = serde_json::from_str(json.as_str()).unwrap();
            bodies.push(message.body);
        }
    }
    bodies
}

fn bob_in(room: &str) -> News {
    News::Member(Member {
        conn: 5,
        nick: "bob".to_string(),
        room: room.to_string(),
    })
}

/// A client of this server gets a guest name with the instance's number in it, and the other
/// servers hear of it.
#[test]
fn a_newcomer_is_a_guest_of_this_instance_and_published() {
    let mut node = Node::new(16);
    let (id, _inbox) = node.connect();
    let nick = node.broker.clients[&id].nick.to_string();
    assert!(nick.starts_with("guest-1-"), "{nick}");
    let published = node.outbound();
    assert!(
        matches!(&published[..], [Outbound::Publish(News::Member(member))] if member.nick == nick),
        "{published:?}"
    );
}

/// What a client says goes to its local room-mates and, once, to the bridge.
#[test]
fn what_a_client_says_is_published_once() {
    let mut node = Node::new(16);
    let (alice, _alice_rx) = node.connect();
    node.outbound();
    node.line(alice, "hello");
    let published = node.outbound();
    assert!(
        matches!(&published[..], [Outbound::Publish(News::Room { room, message })]
            if room == "lobby" && matches!(&message.body, Body::Chat { text, .. } if text == "hello")),
        "{published:?}"
    );
}

/// Another server's client shows in `/who` and `/rooms`, and its arrival, moves and departure
/// are told to the local members of the rooms concerned.
#[test]
fn a_remote_client_is_seen_like_a_local_one() {
    let mut node = Node::new(16);
    let (alice, mut alice_rx) = node.connect();
    node.news(bob_in("lobby"));
    assert_eq!(
        bodies(&mut alice_rx),
        [Body::Joined {
            room: "lobby".to_string(),
            name: "bob".to_string()
        }]
    );
    node.line(alice, "/who");
    let who = bodies(&mut alice_rx);
    assert!(
        matches!(&who[..], [Body::Who { members, .. }] if members.contains(&"bob".to_string())),
        "{who:?}"
    );
    node.news(bob_in("games"));
    assert_eq!(
        bodies(&mut alice_rx),
        [Body::Left {
            room: "lobby".to_string(),
            name: "bob".to_string()
        }]
    );
    node.line(alice, "/rooms");
    let rooms = bodies(&mut alice_rx);
    assert!(
        matches!(&rooms[..], [Body::Rooms { rooms }] if rooms.len() == 2),
        "games (bob) and the lobby (alice): {rooms:?}"
    );
    node.news(News::Gone { conn: 5 });
    node.line(alice, "/who");
    let who = bodies(&mut alice_rx);
    assert!(
        matches!(&who[..], [Body::Who { members, .. }] if members.len() == 1),
        "bob is gone: {who:?}"
    );
}

/// Another server's chat reaches the local members of its room, and no one else.
#[test]
fn remote_chat_reaches_the_local_members_of_its_room() {
    let mut node = Node::new(16);
    let (_alice, mut alice_rx) = node.connect();
    let (carol, mut carol_rx) = node.connect();
    node.line(carol, "/join games");
    bodies(&mut alice_rx);
    bodies(&mut carol_rx);
    let said = ChatMessage::now(Body::Chat {
        room: "games".to_string(),
        from: "bob".to_string(),
        text: "hi games".to_string(),
    });
    node.news(News::Room {
        room: "games".to_string(),
        message: said.clone(),
    });
    assert_eq!(bodies(&mut carol_rx), [said.body]);
    assert_eq!(bodies(&mut alice_rx), [], "alice is in the lobby");
}

/// `/nick` asks the bridge first: the name is taken only once the claim is granted (or, while
/// Redis is out of reach, provisionally), and a claim refused is an error to the client.
#[test]
fn a_rename_waits_for_its_claim() {
    let mut node = Node::new(16);
    let (alice, mut alice_rx) = node.connect();
    node.outbound();
    node.line(alice, "/nick alice");
    let asked = node.outbound();
    assert!(
        matches!(&asked[..], [Outbound::Claim { id, nick }] if *id == alice && nick.as_str() == "alice"),
        "{asked:?}"
    );
    assert_eq!(
        bodies(&mut alice_rx),
        [],
        "nothing happens before the answer"
    );
    let nick = Nick::parse("alice").unwrap();
    node.bridged(Bridged::Claimed {
        id: alice,
        nick: nick.clone(),
        claim: Claim::Granted,
    });
    assert!(
        matches!(&bodies(&mut alice_rx)[..], [Body::Welcome { name, .. }, Body::Who { .. }] if name == "alice")
    );
    node.bridged(Bridged::Claimed {
        id: alice,
        nick: Nick::parse("bob").unwrap(),
        claim: Claim::Taken,
    });
    assert!(matches!(&bodies(&mut alice_rx)[..], [Body::Error { text }] if text.contains("taken")));
    // With Redis out of reach, the name is taken for now, and the client told it is checked
    // later.
    node.bridged(Bridged::Claimed {
        id: alice,
        nick: Nick::parse("zed").unwrap(),
        claim: Claim::Provisional,
    });
    let told = bodies(&mut alice_rx);
    assert!(
        matches!(&told[..], [Body::Welcome { name, .. }, Body::Who { .. }, Body::Info { text }]
            if name == "zed" && text.contains("checked")),
        "{told:?}"
    );
    // And if another server's client took it meanwhile, it is lost when Redis is back.
    node.bridged(Bridged::Lost {
        id: alice,
        nick: Nick::parse("zed").unwrap(),
    });
    let told = bodies(&mut alice_rx);
    assert!(
        matches!(&told[..], [Body::Info { text }, Body::Welcome { name, .. }, Body::Who { .. }]
            if text.contains("took the name") && name.starts_with("guest-1-")),
        "{told:?}"
    );
}

/// A name held by another server's client is refused without asking Redis.
#[test]
fn a_name_seen_on_another_server_is_taken() {
    let mut node = Node::new(16);
    let (carol, mut carol_rx) = node.connect();
    node.news(bob_in("lobby"));
    bodies(&mut carol_rx);
    node.outbound();
    node.line(carol, "/nick BOB");
    assert!(matches!(&bodies(&mut carol_rx)[..], [Body::Error { text }] if text.contains("taken")));
    assert!(node.outbound().is_empty(), "no claim was needed");
}

/// Redis out of reach: every client is told once, and the other servers' clients are forgotten;
/// Redis back: every client is told, and the others are asked who
/// is there.
#[test]
fn an_outage_is_told_once_and_its_end_too() {
    let mut node = Node::new(16);
    let (_alice, mut alice_rx) = node.connect();
    node.news(bob_in("lobby"));
    bodies(&mut alice_rx);
    node.bridged(Bridged::Down);
    node.bridged(Bridged::Down);
    let told = bodies(&mut alice_rx);
    assert!(
        matches!(&told[..], [Body::Info { text }] if text.contains("out of reach")),
        "{told:?}"
    );
    assert_eq!(node.broker.stats().peers, 0, "the others are forgotten");
    node.outbound();
    node.bridged(Bridged::Up);
    let told = bodies(&mut alice_rx);
    assert!(
        matches!(&told[..], [Body::Info { text }] if text.contains("reached again")),
        "{told:?}"
    );
    let asked = node.outbound();
    assert!(
        matches!(&asked[..], [Outbound::Publish(News::Roster { members }), Outbound::Publish(News::Hello)] if members.len() == 1),
        "{asked:?}"
    );
}

/// A server silent for the peer timeout is forgotten at the next heartbeat, and its clients
/// leave their rooms.
#[test]
fn a_silent_server_is_forgotten() {
    let mut node = Node::new(16);
    let (_alice, mut alice_rx) = node.connect();
    let start = Instant::now();
    node.news(bob_in("lobby"));
    bodies(&mut alice_rx);
    node.broker.handle_at(
        Event::Bridge(Bridged::Tick),
        start + bridge::PEER_TIMEOUT / 2,
    );
    assert_eq!(node.broker.stats().peers, 1);
    node.broker.handle_at(
        Event::Bridge(Bridged::Tick),
        start + bridge::PEER_TIMEOUT + Duration::from_secs(1),
    );
    assert_eq!(node.broker.stats().peers, 0);
    assert_eq!(
        bodies(&mut alice_rx),
        [Body::Left {
            room: "lobby".to_string(),
            name: "bob".to_string()
        }]
    );
}

/// A full queue to the bridge costs the other servers that news, counted; the local chat goes
/// on.
#[test]
fn a_full_bridge_queue_costs_news_not_chat() {
    let mut node = Node::new(2);
    let (alice, _alice_rx) = node.connect();
    let (_bob, mut bob_rx) = node.connect();
    for n in 0..5 {
        node.line(alice, &format!("message {n}"));
    }
    assert_eq!(bodies(&mut bob_rx).len(), 5, "bob got every message");
    assert!(
        node.broker.stats().unpublished >= 3,
        "{:?}",
        node.broker.stats()
    );
}

/// The seam across servers: a message said on another server that is both in a joiner's
/// history and among what was held for it meanwhile reaches it once, as history; what was said
/// after it, live.
#[test]
fn a_remote_message_in_the_history_and_held_reaches_the_joiner_once() {
    let (jobs, mut jobs_rx) = mpsc::channel(16);
    let mut node = Node::with_jobs(16, jobs, true);
    let (alice, mut alice_rx) = node.connect();
    let Ok(crate::storage::Job::Read(read)) = jobs_rx.try_recv() else {
        panic!("joining asks for the history");
    };
    let said = |text: &str| {
        ChatMessage::now(Body::Chat {
            room: "lobby".to_string(),
            from: "bob".to_string(),
            text: text.to_string(),
        })
    };
    let (both, later) = (said("stored, then heard"), said("only heard"));
    for message in [both.clone(), later.clone()] {
        node.news(News::Room {
            room: "lobby".to_string(),
            message,
        });
    }
    let stored = ChatMessage {
        history: true,
        ..both.clone()
    };
    node.broker.handle(Event::History {
        to: alice,
        ticket: read.ticket,
        answer: Ok(vec![stored.clone()]),
    });
    let mut received = Vec::new();
    while let Ok(Message::Text(json)) = alice_rx.try_recv() {
        received.push(serde_json::from_str::<ChatMessage>(json.as_str()).unwrap());
    }
    let chats: Vec<&ChatMessage> = received.iter().filter(|m| m.is_relayed()).collect();
    assert_eq!(
        chats,
        [&stored, &later],
        "once as history, then the live one"
    );
}

/// The name of `id` now.
fn nick_of(node: &Node, id: ConnId) -> String {
    node.broker.clients[&id].nick.to_string()
}

/// The bridge grants (or answers otherwise) `id`'s claim on `name`.
fn answer(node: &mut Node, id: ConnId, name: &str, claim: Claim) {
    let nick = Nick::parse(name).unwrap();
    node.bridged(Bridged::Claimed { id, nick, claim });
}

/// Lines sent right after `/nick` wait for its claim's answer, and are then carried out in the
/// order they came: the client joins games as ann, and says its line as ann.
#[test]
fn lines_after_a_nick_wait_for_its_claim_then_run_in_order() {
    let mut node = Node::new(16);
    let (alice, mut alice_rx) = node.connect();
    let (carol, mut carol_rx) = node.connect();
    node.line(carol, "/join games");
    bodies(&mut carol_rx);
    bodies(&mut alice_rx);
    node.outbound();
    for line in ["/nick ann", "/join games", "hi all"] {
        node.line(alice, line);
    }
    assert!(
        matches!(&node.outbound()[..], [Outbound::Claim { .. }]),
        "only the claim goes to the bridge before its answer"
    );
    assert_eq!(
        bodies(&mut alice_rx),
        [],
        "alice's lines wait for the answer"
    );
    assert_eq!(
        bodies(&mut carol_rx),
        [],
        "nothing of alice's reaches games yet"
    );
    answer(&mut node, alice, "ann", Claim::Granted);
    assert_eq!(
        bodies(&mut carol_rx),
        [
            Body::Joined {
                room: "games".to_string(),
                name: "ann".to_string()
            },
            Body::Chat {
                room: "games".to_string(),
                from: "ann".to_string(),
                text: "hi all".to_string()
            }
        ],
        "carol should see ann come into games, then hear her"
    );
    let told = bodies(&mut alice_rx);
    assert!(
        matches!(&told[..], [Body::Welcome { name, room }, Body::Who { .. }, Body::Welcome { room: games, .. }, Body::Who { .. }]
            if name == "ann" && room == "lobby" && games == "games"),
        "alice is renamed, then moved: {told:?}"
    );
}

/// A `/nick` among the held lines is carried out in its turn and makes a claim of its own; the
/// lines after it wait again, for that claim's answer.
#[test]
fn a_nick_among_held_lines_holds_the_rest_again() {
    let mut node = Node::new(16);
    let (alice, _alice_rx) = node.connect();
    let (_bob, mut bob_rx) = node.connect();
    node.outbound();
    for line in ["/nick ann", "/nick bea", "hello"] {
        node.line(alice, line);
    }
    answer(&mut node, alice, "ann", Claim::Granted);
    let asked = node.outbound();
    assert!(
        matches!(&asked[..], [.., Outbound::Claim { nick, .. }] if nick.as_str() == "bea"),
        "the held /nick asks for its own claim: {asked:?}"
    );
    let heard = bodies(&mut bob_rx);
    assert!(
        matches!(&heard[..], [Body::Renamed { to, .. }] if to == "ann"),
        "\"hello\" waits behind the second claim: {heard:?}"
    );
    answer(&mut node, alice, "bea", Claim::Granted);
    let heard = bodies(&mut bob_rx);
    assert!(
        matches!(&heard[..], [Body::Renamed { from, to, .. }, Body::Chat { from: speaker, text, .. }]
            if from == "ann" && to == "bea" && speaker == "bea" && text == "hello"),
        "{heard:?}"
    );
}

/// A claim refused (the name is taken) still ends the wait: the client is told, and its held
/// lines are carried out under the name it kept.
#[test]
fn a_refused_claim_still_releases_the_held_lines() {
    let mut node = Node::new(16);
    let (alice, mut alice_rx) = node.connect();
    let (_bob, mut bob_rx) = node.connect();
    bodies(&mut alice_rx);
    let guest = nick_of(&node, alice);
    node.line(alice, "/nick ann");
    node.line(alice, "hello");
    answer(&mut node, alice, "ann", Claim::Taken);
    assert!(matches!(&bodies(&mut alice_rx)[..], [Body::Error { text }] if text.contains("taken")));
    let heard = bodies(&mut bob_rx);
    assert!(
        matches!(&heard[..], [Body::Chat { from, text, .. }] if *from == guest && text == "hello"),
        "{heard:?}"
    );
}

/// More than [`claiming::HELD_LINES`] lines while a claim is pending: each one over the bound
/// is refused with an error and never carried out; those held are carried out after the answer.
#[test]
fn held_lines_over_the_bound_are_refused_with_an_error() {
    let mut node = Node::new(16);
    let (alice, mut alice_rx) = node.connect();
    let (_bob, mut bob_rx) = node.connect();
    bodies(&mut alice_rx);
    node.line(alice, "/nick ann");
    for n in 0..=claiming::HELD_LINES {
        node.line(alice, &n.to_string());
    }
    let told = bodies(&mut alice_rx);
    assert!(
        matches!(&told[..], [Body::Error { text }] if text.contains("slow down")),
        "one line too many, one error: {told:?}"
    );
    answer(&mut node, alice, "ann", Claim::Granted);
    let said: Vec<String> = bodies(&mut bob_rx)
        .into_iter()
        .filter_map(|body| match body {
            Body::Chat { text, .. } => Some(text),
            _ => None,
        })
        .collect();
    let held: Vec<String> = (0..claiming::HELD_LINES).map(|n| n.to_string()).collect();
    assert_eq!(
        said, held,
        "the held lines, in order, and not the one refused"
    );
}

/// A client that leaves while its claim is pending takes its held lines with it; a held `/quit`
/// is carried out in its turn, and what came after it is not.
#[test]
fn held_lines_go_with_a_client_that_leaves() {
    let mut node = Node::new(16);
    let (alice, _alice_rx) = node.connect();
    let (carol, _carol_rx) = node.connect();
    let (_bob, mut bob_rx) = node.connect();
    node.line(alice, "/nick ann");
    node.line(alice, "never said");
    node.broker.handle(Event::Leave {
        id: alice,
        reason: crate::metrics::Disconnect::Closed,
    });
    node.outbound();
    answer(&mut node, alice, "ann", Claim::Granted);
    assert!(
        matches!(&node.outbound()[..], [Outbound::Release { nick, .. }] if nick.as_str() == "ann"),
        "the name granted to a client that left goes back"
    );
    node.line(carol, "/nick cat");
    node.line(carol, "/quit");
    node.line(carol, "after the goodbye");
    answer(&mut node, carol, "cat", Claim::Granted);
    let heard = bodies(&mut bob_rx);
    assert!(
        !heard.iter().any(|body| matches!(body, Body::Chat { .. })),
        "nothing held was said: {heard:?}"
    );
    assert!(
        matches!(&heard[..], [Body::Left { .. }, Body::Renamed { to, .. }, Body::Left { name, .. }]
            if to == "cat" && name == "cat"),
        "alice left, then carol was renamed and quit: {heard:?}"
    );
    assert_eq!(node.broker.len(), 1, "only bob is left");
}

/// If no answer comes within [`claiming::CLAIM_PATIENCE`], the next heartbeat lets the held lines
/// go, with an error to the client; an answer that comes after all is still applied.
#[test]
fn held_lines_are_let_go_when_the_answer_is_long_overdue() {
    let mut node = Node::new(16);
    let (alice, mut alice_rx) = node.connect();
    let (_bob, mut bob_rx) = node.connect();
    bodies(&mut alice_rx);
    let guest = nick_of(&node, alice);
    let start = Instant::now();
    let at = |message: &str| Event::Message {
        from: alice,
        message: Message::text(message),
    };
    node.broker.handle_at(at("/nick ann"), start);
    node.broker.handle_at(at("hello"), start);
    let tick = Event::Bridge(Bridged::Tick);
    node.broker
        .handle_at(tick, start + claiming::CLAIM_PATIENCE / 2);
    assert_eq!(
        bodies(&mut bob_rx),
        [],
        "within the patience, the line waits"
    );
    let tick = Event::Bridge(Bridged::Tick);
    node.broker
        .handle_at(tick, start + claiming::CLAIM_PATIENCE);
    assert!(
        matches!(&bodies(&mut alice_rx)[..], [Body::Error { text }] if text.contains("taking long"))
    );
    let heard = bodies(&mut bob_rx);
    assert!(
        matches!(&heard[..], [Body::Chat { from, text, .. }] if *from == guest && text == "hello"),
        "{heard:?}"
    );
    answer(&mut node, alice, "ann", Claim::Granted);
    assert_eq!(nick_of(&node, alice), "ann", "the late answer still counts");
}
