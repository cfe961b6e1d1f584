//! Stage 09 onwards: commands. A line that starts with `/` is a command; `//` says a slash. Every
//! command answers, every malformed line gets an error that says what to type instead, and
//! nothing a client types by mistake reaches anybody else.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::{
    Target, TestServer,
    chat::{ChatClient, field, members},
    client::Ending,
    scenarios,
};

pub const SCENARIOS: &[crate::Scenario] = scenarios![
    help_lists_every_command,
    who_lists_my_room_by_name,
    me_tells_the_room_what_i_do,
    a_double_slash_says_a_slash,
    mistakes_are_errors_to_their_author_only,
    quit_says_goodbye_and_the_room_hears_it,
    every_message_has_a_kind_and_a_timestamp,
];

/// `/help` answers with a list naming every command.
async fn help_lists_every_command(target: Target) {
    let server = TestServer::start(target).await;
    let [mut alice] = ChatClient::everyone(&server, ["alice"]).await;
    alice.send("/help").await;
    let help = alice.expect("info").await;
    let text = field(&help, "text");
    for command in [
        "/nick", "/join", "/leave", "/rooms", "/who", "/msg", "/me", "/help", "/quit",
    ] {
        assert!(
            text.contains(command),
            "/help should list {command}:\n{text}"
        );
    }
}

/// `/who` lists the members of my room, me included, and nobody from another room.
async fn who_lists_my_room_by_name(target: Target) {
    let server = TestServer::start(target).await;
    let [mut alice, mut bob, mut carol] =
        ChatClient::everyone(&server, ["alice", "bob", "carol"]).await;
    carol.join("games").await;
    alice.expect("left").await;
    bob.expect("left").await;
    alice.send("/who").await;
    let who = alice.expect("who").await;
    assert_eq!(field(&who, "room"), "lobby");
    assert_eq!(members(&who), ["alice", "bob"]);
}

/// `/me waves` reaches the others in my room as an `action` from me.
async fn me_tells_the_room_what_i_do(target: Target) {
    let server = TestServer::start(target).await;
    let [mut alice, mut bob] = ChatClient::everyone(&server, ["alice", "bob"]).await;
    alice.send("/me waves").await;
    let action = bob.expect("action").await;
    assert_eq!(
        (field(&action, "from"), field(&action, "text")),
        ("alice", "waves")
    );
    alice.expect_quiet().await;
}

/// `//shrug` says `/shrug`: a double slash is how to start a message with a slash.
async fn a_double_slash_says_a_slash(target: Target) {
    let server = TestServer::start(target).await;
    let [mut alice, mut bob] = ChatClient::everyone(&server, ["alice", "bob"]).await;
    alice.send("//shrug").await;
    bob.expect_chat("alice", "/shrug").await;
}

/// Unknown commands, a lone slash, an empty or blank line, commands with arguments they do not
/// take: each is an error to its author, and the others hear nothing.
async fn mistakes_are_errors_to_their_author_only(target: Target) {
    let server = TestServer::start(target).await;
    let [mut alice, mut bob] = ChatClient::everyone(&server, ["alice", "bob"]).await;
    for (line, says) in [
        ("/dance", "/dance"),
        ("/", "/help"),
        ("", "/help"),
        ("   ", "/help"),
        ("/leave now", "/leave"),
        ("/who is there", "/who"),
        ("/me", "/me ACTION"),
    ] {
        alice.send(line).await;
        let error = alice.expect_error().await;
        assert!(
            error.contains(says),
            "the error for {line:?} should mention {says}: {error}"
        );
    }
    bob.expect_quiet().await;
}

/// `/quit`: the client is told goodbye and the connection closes normally (1000); its room
/// hears that it left.
async fn quit_says_goodbye_and_the_room_hears_it(target: Target) {
    let server = TestServer::start(target).await;
    let [mut alice, mut bob] = ChatClient::everyone(&server, ["alice", "bob"]).await;
    alice.send("/quit").await;
    alice.expect("info").await;
    match alice.client().expect_end().await {
        Ending::Close(Some((code, _))) => assert_eq!(code, 1000, "a normal close"),
        other => panic!("alice should get Close 1000, got {other:?}"),
    }
    let left = bob.expect("left").await;
    assert_eq!(field(&left, "name"), "alice");
}

/// Every message carries its `kind` and a `ts`, the milliseconds since 1970 when it was sent.
async fn every_message_has_a_kind_and_a_timestamp(target: Target) {
    let server = TestServer::start(target).await;
    let [mut alice, mut bob] = ChatClient::everyone(&server, ["alice", "bob"]).await;
    let before = now_ms();
    alice.send("what time is it?").await;
    let chat = bob.expect("chat").await;
    let after = now_ms();
    let ts = chat
        .get("ts")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or_default();
    assert!(
        before.saturating_sub(1000) <= ts && ts <= after + 1000,
        "ts {ts} should be between {before} and {after}: {chat}"
    );
}

fn now_ms() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}
