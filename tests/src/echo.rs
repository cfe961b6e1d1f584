//! Stage 01 and 02: every message comes back to its sender, unchanged.

use crate::{Target, TestServer, client::Ending, scenarios};

pub const SCENARIOS: &[crate::Scenario] = scenarios![
    echoes_text_as_text,
    echoes_binary_as_binary,
    echoes_empty_and_unicode_text_exactly,
    echoes_a_large_message_whole,
    echoes_in_the_order_sent,
    echoes_only_to_the_sender,
    answers_a_ping_with_a_pong,
    answers_a_close_with_the_close_reply,
];

/// A text message comes back as the same text message.
async fn echoes_text_as_text(target: Target) {
    let server = TestServer::start(target).await;
    let mut client = server.client("alice").await;
    client.send_text("hello, fan-out").await;
    client.expect_text("hello, fan-out").await;
}

/// A binary message comes back as the same bytes, still binary (not turned into text).
async fn echoes_binary_as_binary(target: Target) {
    let server = TestServer::start(target).await;
    let mut client = server.client("alice").await;
    let bytes = [0u8, 159, 146, 150, 255, 10];
    client.send_binary(&bytes).await;
    client.expect_binary(&bytes).await;
}

/// The empty text and multi-byte UTF-8 come back byte for byte.
async fn echoes_empty_and_unicode_text_exactly(target: Target) {
    let server = TestServer::start(target).await;
    let mut client = server.client("alice").await;
    for text in ["", "naïve café — 你好 🦀"] {
        client.send_text(text).await;
        client.expect_text(text).await;
    }
}

/// A message of 32 KiB (several TCP segments) comes back whole.
async fn echoes_a_large_message_whole(target: Target) {
    let server = TestServer::start(target).await;
    let mut client = server.client("alice").await;
    let large: String = "fan-out ".repeat(4 * 1024);
    client.send_text(&large).await;
    client.expect_text(&large).await;
}

/// A burst of messages comes back in the order it was sent.
async fn echoes_in_the_order_sent(target: Target) {
    let server = TestServer::start(target).await;
    let mut client = server.client("alice").await;
    for n in 0..200 {
        client.send_text(&format!("message {n}")).await;
    }
    for n in 0..200 {
        client.expect_text(&format!("message {n}")).await;
    }
}

/// An echo goes to its sender only: another connected client hears nothing.
async fn echoes_only_to_the_sender(target: Target) {
    let server = TestServer::start(target).await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    alice.send_text("just for me").await;
    alice.expect_text("just for me").await;
    bob.expect_silence().await;
}

/// A Ping is answered with a Pong carrying the same payload.
async fn answers_a_ping_with_a_pong(target: Target) {
    use tokio_tungstenite::tungstenite::Message;
    let server = TestServer::start(target).await;
    let mut client = server.client("alice").await;
    client
        .send(Message::Ping(b"are you there"[..].into()))
        .await;
    loop {
        match client.next_frame_within(crate::WAIT).await {
            Some(Ok(Message::Pong(payload))) => {
                assert_eq!(
                    &payload[..],
                    b"are you there",
                    "the pong should carry the ping's payload"
                );
                return;
            }
            Some(Ok(Message::Ping(_))) => continue,
            other => panic!("expected a Pong, got {other:?}"),
        }
    }
}

/// A Close from the client gets a Close back (the RFC 6455 closing handshake), then the
/// connection ends.
async fn answers_a_close_with_the_close_reply(target: Target) {
    let server = TestServer::start(target).await;
    let mut client = server.client("alice").await;
    client.send_close(1000, "done").await;
    match client.expect_end().await {
        Ending::Close(Some((code, _))) => {
            assert_eq!(code, 1000, "the close reply should echo the code")
        }
        other => panic!("expected the server's close reply, got {other:?}"),
    }
}
