//! Stage 09 onwards: names. Every client has one, given or chosen, and no two clients have the
//! same, whatever its case. A name that is taken or not a valid name is refused with a reason,
//! and the old name stays.

use crate::{
    Target, TestServer,
    chat::{ChatClient, field, members},
    scenarios,
};

pub const SCENARIOS: &[crate::Scenario] = scenarios![
    a_new_client_is_a_guest_in_the_lobby,
    a_new_name_is_announced_to_the_room,
    a_taken_name_is_refused_whatever_its_case,
    invalid_names_are_refused_with_a_reason,
    a_name_is_free_again_once_its_holder_leaves,
    a_thousand_renames_are_all_answered_and_cost_the_others_nothing,
];

/// A client that connects is told a guest name (`guest-N`) and that it is in the lobby, and the
/// `who` that follows lists it; the others in the lobby are told it joined.
async fn a_new_client_is_a_guest_in_the_lobby(target: Target) {
    let server = TestServer::start(target).await;
    let mut alice = ChatClient::connect(&server, "alice").await;
    assert!(
        alice.name.starts_with("guest-"),
        "a guest name, got {}",
        alice.name
    );
    assert_eq!(alice.room, "lobby");
    let bob = ChatClient::connect(&server, "bob").await;
    assert_ne!(alice.name, bob.name, "two clients, two guest names");
    let joined = alice.expect("joined").await;
    assert_eq!(
        (field(&joined, "name"), field(&joined, "room")),
        (bob.name.as_str(), "lobby")
    );
    alice.send("/who").await;
    let who = members(&alice.expect("who").await);
    assert!(
        who.contains(&alice.name) && who.contains(&bob.name),
        "{who:?}"
    );
}

/// `/nick NAME` gives the client that name: it is welcomed under it, and the others in its room
/// are told who it was and who it is now.
async fn a_new_name_is_announced_to_the_room(target: Target) {
    let server = TestServer::start(target).await;
    let mut bob = ChatClient::connect(&server, "bob").await;
    let mut alice = ChatClient::connect(&server, "alice").await;
    bob.expect("joined").await;
    let guest = alice.name.clone();
    alice.nick("Alice").await;
    let renamed = bob.expect("renamed").await;
    assert_eq!(
        (field(&renamed, "from"), field(&renamed, "to")),
        (guest.as_str(), "Alice")
    );
    alice.send("hi").await;
    bob.expect_chat("Alice", "hi").await;
}

/// A name held by another client is refused, in any case, with an error that says it is taken;
/// the refused client keeps its name, and nobody else hears of it.
async fn a_taken_name_is_refused_whatever_its_case(target: Target) {
    let server = TestServer::start(target).await;
    let [mut alice, mut bob] = ChatClient::everyone(&server, ["alice", "bob"]).await;
    for taken in ["alice", "ALICE", "aLiCe"] {
        bob.send(&format!("/nick {taken}")).await;
        let error = bob.expect_error().await;
        assert!(error.contains("taken"), "/nick {taken}: {error}");
    }
    alice.expect_quiet().await;
    bob.send("still bob").await;
    alice.expect_chat("bob", "still bob").await;
}

/// Names with control characters, spaces, too many characters, reserved words or the form of a
/// guest name are refused, each with an error that says why, and the old name stays.
async fn invalid_names_are_refused_with_a_reason(target: Target) {
    let server = TestServer::start(target).await;
    let [mut alice, mut bob] = ChatClient::everyone(&server, ["alice", "bob"]).await;
    let too_long = "n".repeat(65);
    for bad in [
        "a\u{7}b",
        "tab\tname",
        "two words",
        "é",
        too_long.as_str(),
        "server",
        "guest-99",
    ] {
        bob.send(&format!("/nick {bad}")).await;
        let error = bob.expect_error().await;
        assert!(
            !error.is_empty(),
            "/nick {bad:?} should say why it is refused"
        );
        assert!(
            !error.contains('\u{7}'),
            "the error must not echo a control character: {error:?}"
        );
    }
    bob.send("/nick").await;
    assert!(
        bob.expect_error().await.contains("/nick"),
        "/nick alone says its usage"
    );
    alice.expect_quiet().await;
    bob.send("still bob").await;
    alice.expect_chat("bob", "still bob").await;
}

/// When a client leaves, its name can be taken by another.
async fn a_name_is_free_again_once_its_holder_leaves(target: Target) {
    let server = TestServer::start(target).await;
    let [alice, mut bob] = ChatClient::everyone(&server, ["alice", "bob"]).await;
    drop(alice);
    let left = bob.expect("left").await;
    assert_eq!(field(&left, "name"), "alice");
    bob.nick("alice").await;
}

/// A client that renames itself a thousand times as fast as it can gets an answer to each, ends
/// with the last name, and meanwhile the others' chat goes on, nothing of it lost.
async fn a_thousand_renames_are_all_answered_and_cost_the_others_nothing(target: Target) {
    let server = TestServer::start(target).await;
    let [mut alice, mut bob, mut carol] =
        ChatClient::everyone(&server, ["alice", "bob", "carol"]).await;
    for round in 0..10 {
        // A hundred at once, then read the answers, so that no queue is asked to hold more than
        // a burst (this is about names, not about slow readers).
        for n in 0..100 {
            alice.send(&format!("/nick a{round}x{n}")).await;
        }
        for n in 0..100 {
            let welcome = alice.expect("welcome").await;
            assert_eq!(field(&welcome, "name"), format!("a{round}x{n}"));
            alice.expect("who").await;
        }
        carol.send(&format!("round {round}")).await;
        alice.expect_chat("carol", &format!("round {round}")).await;
        for _ in 0..100 {
            bob.expect("renamed").await;
        }
        bob.expect_chat("carol", &format!("round {round}")).await;
    }
    alice.send("/who").await;
    let who = members(&alice.expect_past_notices("who").await);
    assert_eq!(
        who,
        ["a9x99", "bob", "carol"],
        "one name each, the last one for alice"
    );
}
