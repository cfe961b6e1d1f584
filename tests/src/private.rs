//! Stage 09 onwards: private messages. `/msg NAME TEXT` reaches the one client of that name,
//! whatever room either is in, and nobody else; a name nobody has is an error to the sender.

use crate::{
    Target, TestServer,
    chat::{ChatClient, field},
    scenarios,
};

pub const SCENARIOS: &[crate::Scenario] = scenarios![
    a_private_message_reaches_one_client_in_any_room,
    the_recipient_is_named_in_any_case,
    a_guest_can_be_written_to_by_its_guest_name,
    an_unknown_name_is_an_error_to_the_sender,
    a_private_message_needs_a_name_and_a_text,
];

/// Alice in the lobby writes to bob in `games`: bob gets a `private` message from alice with the
/// text as written, spaces and all; carol, next to alice, gets nothing.
async fn a_private_message_reaches_one_client_in_any_room(target: Target) {
    let server = TestServer::start(target).await;
    let [mut alice, mut bob, mut carol] =
        ChatClient::everyone(&server, ["alice", "bob", "carol"]).await;
    bob.join("games").await;
    alice.expect("left").await;
    carol.expect("left").await;
    alice.send("/msg bob psst,  over here").await;
    let private = bob.expect("private").await;
    assert_eq!(
        (
            field(&private, "from"),
            field(&private, "to"),
            field(&private, "text")
        ),
        ("alice", "bob", "psst,  over here")
    );
    carol.expect_quiet().await;
    alice.expect_quiet().await;
}

/// Names are the same whatever their case: `/msg BOB` reaches bob.
async fn the_recipient_is_named_in_any_case(target: Target) {
    let server = TestServer::start(target).await;
    let [mut alice, mut bob] = ChatClient::everyone(&server, ["alice", "bob"]).await;
    alice.send("/msg BOB hi").await;
    let private = bob.expect("private").await;
    assert_eq!(
        (field(&private, "from"), field(&private, "to")),
        ("alice", "bob")
    );
}

/// A client that has not chosen a name can still be written to, by the name it was given.
async fn a_guest_can_be_written_to_by_its_guest_name(target: Target) {
    let server = TestServer::start(target).await;
    let [mut alice] = ChatClient::everyone(&server, ["alice"]).await;
    let mut guest = ChatClient::connect(&server, "guest").await;
    alice.expect("joined").await;
    alice.send(&format!("/msg {} welcome", guest.name)).await;
    let private = guest.expect("private").await;
    assert_eq!(field(&private, "text"), "welcome");
}

/// `/msg` to a name nobody has is an error to the sender, naming it; nobody gets anything.
async fn an_unknown_name_is_an_error_to_the_sender(target: Target) {
    let server = TestServer::start(target).await;
    let [mut alice, mut bob] = ChatClient::everyone(&server, ["alice", "bob"]).await;
    alice.send("/msg zed are you there?").await;
    let error = alice.expect_error().await;
    assert!(error.contains("zed"), "the error should name zed: {error}");
    bob.expect_quiet().await;
}

/// `/msg` with no name, or a name and no text, is an error that shows the usage.
async fn a_private_message_needs_a_name_and_a_text(target: Target) {
    let server = TestServer::start(target).await;
    let [mut alice, mut bob] = ChatClient::everyone(&server, ["alice", "bob"]).await;
    for line in ["/msg", "/msg bob", "/msg bob    "] {
        alice.send(line).await;
        let error = alice.expect_error().await;
        assert!(
            error.contains("/msg NAME TEXT"),
            "{line:?} should show the usage: {error}"
        );
    }
    bob.expect_quiet().await;
}
