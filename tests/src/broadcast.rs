//! Stage 03 onwards: a broker forwards every message to every *other* client.

use crate::{Client, Target, TestServer, scenarios};

pub const SCENARIOS: &[crate::Scenario] = scenarios![
    delivers_to_every_other_client,
    never_sends_a_message_back_to_its_sender,
    a_lone_client_hears_nothing,
    forwards_text_and_binary_verbatim,
    keeps_each_senders_order,
    a_late_joiner_gets_only_what_is_sent_after_it_joined,
    a_client_that_closes_gets_the_close_reply_and_the_rest_carry_on,
    a_client_that_vanishes_is_removed_and_the_rest_carry_on,
];

/// Connects one client per name, in order.
async fn clients<const N: usize>(server: &TestServer, names: [&str; N]) -> [Client; N] {
    let mut connected = Vec::with_capacity(N);
    for name in names {
        connected.push(server.client(name).await);
    }
    match connected.try_into() {
        Ok(all) => all,
        Err(_) => unreachable!("one client per name"),
    }
}

/// Three clients: what one sends, the two others receive.
async fn delivers_to_every_other_client(target: Target) {
    let server = TestServer::start(target).await;
    let [mut alice, mut bob, mut carol] = clients(&server, ["alice", "bob", "carol"]).await;
    alice.send_text("hello from alice").await;
    bob.expect_text("hello from alice").await;
    carol.expect_text("hello from alice").await;
    carol.send_text("hello from carol").await;
    alice.expect_text("hello from carol").await;
    bob.expect_text("hello from carol").await;
}

/// The sender never receives its own message back.
async fn never_sends_a_message_back_to_its_sender(target: Target) {
    let server = TestServer::start(target).await;
    let [mut alice, mut bob] = clients(&server, ["alice", "bob"]).await;
    alice.send_text("not for me").await;
    bob.expect_text("not for me").await;
    alice.expect_silence().await;
}

/// With nobody else connected, a message goes nowhere: not even back to its sender.
async fn a_lone_client_hears_nothing(target: Target) {
    let server = TestServer::start(target).await;
    let mut alice = server.client("alice").await;
    alice.send_text("is anybody there?").await;
    alice.expect_silence().await;
}

/// Text arrives as the same text (multi-byte UTF-8 included), binary as the same bytes. Empty
/// text too, on the plain wire; in a chat (chapter 09 on) an empty line is a mistake, which the
/// rooms suites check.
async fn forwards_text_and_binary_verbatim(target: Target) {
    let server = TestServer::start(target).await;
    let [mut alice, mut bob] = clients(&server, ["alice", "bob"]).await;
    alice.send_text("naïve café — 你好 🦀").await;
    bob.expect_text("naïve café — 你好 🦀").await;
    let bytes = [0u8, 1, 2, 254, 255];
    alice.send_binary(&bytes).await;
    bob.expect_binary(&bytes).await;
    if target.wire == crate::Wire::Plain {
        alice.send_text("").await;
        bob.expect_text("").await;
    }
}

/// Two clients send bursts at the same time: a third receives each sender's messages in the order
/// that sender sent them.
async fn keeps_each_senders_order(target: Target) {
    let server = TestServer::start(target).await;
    let [mut alice, mut bob, mut carol] = clients(&server, ["alice", "bob", "carol"]).await;
    const BURST: usize = 100;
    let send_alice = async {
        for n in 0..BURST {
            alice.send_text(&format!("alice {n}")).await;
        }
    };
    let send_bob = async {
        for n in 0..BURST {
            bob.send_text(&format!("bob {n}")).await;
        }
    };
    tokio::join!(send_alice, send_bob);
    let (mut next_alice, mut next_bob) = (0, 0);
    for _ in 0..2 * BURST {
        let text = match carol.recv().await {
            tokio_tungstenite::tungstenite::Message::Text(text) => text.to_string(),
            other => panic!("carol expected text, got {other:?}"),
        };
        if let Some(n) = text.strip_prefix("alice ") {
            assert_eq!(
                n,
                next_alice.to_string(),
                "alice's messages arrived out of order"
            );
            next_alice += 1;
        } else if let Some(n) = text.strip_prefix("bob ") {
            assert_eq!(
                n,
                next_bob.to_string(),
                "bob's messages arrived out of order"
            );
            next_bob += 1;
        } else {
            panic!("carol received something nobody sent: {text:?}");
        }
    }
}

/// A client that connects late receives what is sent after its connection opened, and nothing
/// that was sent before.
async fn a_late_joiner_gets_only_what_is_sent_after_it_joined(target: Target) {
    let server = TestServer::start(target).await;
    let [mut alice, mut bob, mut carol] = clients(&server, ["alice", "bob", "carol"]).await;
    alice.send_text("before dave").await;
    bob.expect_text("before dave").await;
    carol.expect_text("before dave").await;
    let mut dave = server.client("dave").await;
    alice.send_text("after dave").await;
    dave.expect_text("after dave").await;
    bob.expect_text("after dave").await;
    carol.expect_text("after dave").await;
    dave.expect_silence().await;
}

/// A client that closes properly gets the close reply; the others go on talking.
async fn a_client_that_closes_gets_the_close_reply_and_the_rest_carry_on(target: Target) {
    let server = TestServer::start(target).await;
    let [mut alice, mut bob, mut carol] = clients(&server, ["alice", "bob", "carol"]).await;
    carol.send_close(1000, "bye").await;
    match carol.expect_end().await {
        crate::client::Ending::Close(Some((code, _))) => {
            assert_eq!(code, 1000, "the close reply should echo the code")
        }
        other => panic!("carol expected the close reply, got {other:?}"),
    }
    alice.send_text("still talking").await;
    bob.expect_text("still talking").await;
    bob.send_text("me too").await;
    alice.expect_text("me too").await;
}

/// A client whose TCP connection just drops (no Close frame) is removed; the others go on talking
/// and nothing they send is lost.
async fn a_client_that_vanishes_is_removed_and_the_rest_carry_on(target: Target) {
    let server = TestServer::start(target).await;
    let [mut alice, mut bob, carol] = clients(&server, ["alice", "bob", "carol"]).await;
    drop(carol); // closes the socket without a Close frame
    for n in 0..20 {
        alice.send_text(&format!("after carol {n}")).await;
    }
    for n in 0..20 {
        bob.expect_text(&format!("after carol {n}")).await;
    }
    bob.send_text("reply").await;
    alice.expect_text("reply").await;
}
