//! Stage 09 onwards: rooms. A client is in one room at a time, the lobby to begin with; what it
//! says reaches the other members of that room and nobody else. Rooms are made by joining them,
//! and a room other than the lobby goes with its last member.

use crate::{
    Target, TestServer,
    chat::{ChatClient, field},
    http, scenarios,
};

pub const SCENARIOS: &[crate::Scenario] = scenarios![
    joining_a_room_tells_both_rooms_and_the_client,
    chat_reaches_only_the_senders_room,
    leave_goes_back_to_the_lobby,
    a_room_goes_with_its_last_member_and_the_lobby_stays,
    joining_needs_a_valid_room_name,
    each_rooms_order_is_the_same_for_all_its_members,
    stats_count_rooms_and_named_clients,
];

/// `/join games`: the lobby hears that carol left, carol is welcomed to `games` with its members
/// (herself), and when dave follows, carol hears that he joined.
async fn joining_a_room_tells_both_rooms_and_the_client(target: Target) {
    let server = TestServer::start(target).await;
    let [mut alice, mut carol, mut dave] =
        ChatClient::everyone(&server, ["alice", "carol", "dave"]).await;
    assert_eq!(
        carol.join("Games").await,
        ["carol"],
        "a new room holds only its creator"
    );
    let left = alice.expect("left").await;
    assert_eq!(
        (field(&left, "name"), field(&left, "room")),
        ("carol", "lobby")
    );
    dave.expect("left").await;
    assert_eq!(
        dave.join("games").await,
        ["carol", "dave"],
        "the same room, whatever the case"
    );
    let joined = carol.expect("joined").await;
    assert_eq!(
        (field(&joined, "name"), field(&joined, "room")),
        ("dave", "games")
    );
    alice.expect("left").await;
}

/// Two rooms of two: what is said in one reaches the other member of that room only.
async fn chat_reaches_only_the_senders_room(target: Target) {
    let server = TestServer::start(target).await;
    let [mut alice, mut bob, mut carol, mut dave] =
        ChatClient::everyone(&server, ["alice", "bob", "carol", "dave"]).await;
    carol.join("games").await;
    dave.join("games").await;
    carol.skip_notices().await;
    alice.skip_notices().await;
    bob.skip_notices().await;
    alice.send("lobby talk").await;
    carol.send("games talk").await;
    bob.expect_chat("alice", "lobby talk").await;
    dave.expect_chat("carol", "games talk").await;
    for client in [&mut alice, &mut bob, &mut carol, &mut dave] {
        client.expect_quiet().await;
    }
}

/// `/leave` takes a client back to the lobby, whose members hear it joined; `/leave` in the
/// lobby is refused gently (the client stays).
async fn leave_goes_back_to_the_lobby(target: Target) {
    let server = TestServer::start(target).await;
    let [mut alice, mut carol] = ChatClient::everyone(&server, ["alice", "carol"]).await;
    carol.join("games").await;
    alice.expect("left").await;
    carol.send("/leave").await;
    assert_eq!(carol.expect_moved("lobby").await, ["alice", "carol"]);
    let joined = alice.expect("joined").await;
    assert_eq!(
        (field(&joined, "name"), field(&joined, "room")),
        ("carol", "lobby")
    );
    carol.send("/leave").await;
    let answer = carol.next().await;
    assert!(
        matches!(field(&answer, "kind"), "info" | "error"),
        "/leave in the lobby should say so: {answer}"
    );
    carol.send("back").await;
    alice.expect_chat("carol", "back").await;
}

/// `/rooms` lists every room with its number of members; a room whose last member leaves is no
/// longer listed, and the lobby is listed even when empty.
async fn a_room_goes_with_its_last_member_and_the_lobby_stays(target: Target) {
    let server = TestServer::start(target).await;
    let [mut carol] = ChatClient::everyone(&server, ["carol"]).await;
    carol.join("games").await;
    assert_eq!(
        rooms(&mut carol).await,
        [("games".into(), 1), ("lobby".into(), 0)]
    );
    carol.join("music").await;
    assert_eq!(
        rooms(&mut carol).await,
        [("lobby".into(), 0), ("music".into(), 1)]
    );
    carol.send("/leave").await;
    carol.expect_moved("lobby").await;
    assert_eq!(rooms(&mut carol).await, [("lobby".into(), 1)]);
}

/// The answer to `/rooms`, as (name, members) in the order given.
async fn rooms(client: &mut ChatClient) -> Vec<(String, u64)> {
    client.send("/rooms").await;
    let answer = client.expect("rooms").await;
    answer
        .get("rooms")
        .and_then(serde_json::Value::as_array)
        .unwrap_or_else(|| panic!("expected a rooms list: {answer}"))
        .iter()
        .map(|room| {
            let members = room.get("members").and_then(serde_json::Value::as_u64);
            (field(room, "name").to_string(), members.unwrap_or(u64::MAX))
        })
        .collect()
}

/// `/join` with no room, with two, or with a name that is not a room name is an error, and the
/// client stays where it was.
async fn joining_needs_a_valid_room_name(target: Target) {
    let server = TestServer::start(target).await;
    let [mut alice, mut bob] = ChatClient::everyone(&server, ["alice", "bob"]).await;
    for line in [
        "/join",
        "/join   ",
        "/join two rooms",
        "/join b@d",
        "/join a\u{1b}[2J",
        "/join private",
    ] {
        bob.send(line).await;
        let error = bob.expect_error().await;
        assert!(
            !error.contains('\u{1b}'),
            "{line:?}: the error must not echo an escape: {error:?}"
        );
    }
    alice.expect_quiet().await;
    bob.send("still in the lobby").await;
    alice.expect_chat("bob", "still in the lobby").await;
}

/// Messages from two senders in a room, and one joining in the middle, reach both other members
/// in the same order: a room has one story.
async fn each_rooms_order_is_the_same_for_all_its_members(target: Target) {
    let server = TestServer::start(target).await;
    let [mut alice, mut bob, mut carol, mut dave] =
        ChatClient::everyone(&server, ["alice", "bob", "carol", "dave"]).await;
    let story = async |client: &mut ChatClient| {
        let mut seen = Vec::new();
        while seen.len() < 40 {
            let message = client.next().await;
            if field(&message, "kind") == "chat" {
                seen.push(field(&message, "text").to_string());
            }
        }
        seen
    };
    let talk = async |client: &mut ChatClient, who: &str| {
        for n in 0..20 {
            client.send(&format!("{who} {n}")).await;
        }
    };
    tokio::join!(talk(&mut alice, "alice"), talk(&mut bob, "bob"));
    let (carol_saw, dave_saw) = tokio::join!(story(&mut carol), story(&mut dave));
    assert_eq!(
        carol_saw, dave_saw,
        "carol and dave should see the lobby's story in one order"
    );
}

/// `/stats` counts the rooms (the lobby included) and the clients that chose a name.
async fn stats_count_rooms_and_named_clients(target: Target) {
    let server = TestServer::start(target).await;
    let [_alice, mut bob] = ChatClient::everyone(&server, ["alice", "bob"]).await;
    let _guest = ChatClient::connect(&server, "guest").await;
    bob.join("games").await;
    let stats = http::get(server.addr, "/stats").await;
    let json: serde_json::Value = serde_json::from_str(&stats.body).expect("/stats is JSON");
    let count = |key: &str| json.get(key).and_then(serde_json::Value::as_u64);
    assert_eq!(
        (count("connections"), count("rooms"), count("named")),
        (Some(3), Some(2), Some(2)),
        "3 clients, 2 of them named, in the lobby and games: {json}"
    );
}
