//! Stage 05 onwards: `GET /stats` answers with the broker's counts as JSON. The broker answers
//! between two events, so the counts are exact: after a known exchange they are known numbers.

use std::net::SocketAddr;

use serde_json::Value;

use crate::{
    Target, TestServer, WAIT,
    bounded::{CAPACITY, TO_STALL, push},
    http, scenarios,
};

pub const SCENARIOS: &[crate::Scenario] = scenarios![
    stats_is_json_and_starts_at_zero,
    stats_count_a_known_exchange_exactly,
    stats_count_a_client_that_closed_as_disconnected,
    stats_count_a_client_that_vanished_as_disconnected,
    stats_count_the_messages_dropped_for_a_stalled_client,
];

/// The counters `GET /stats` must have, each a non-negative integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Clients connected now.
    pub connections: u64,
    /// Messages received from clients.
    pub messages_in: u64,
    /// Messages put in a client's queue (one message to two clients is two deliveries).
    pub deliveries: u64,
    /// Messages not delivered to a client because it was too slow.
    pub dropped: u64,
    /// Clients removed so far.
    pub disconnected: u64,
}

/// `GET /stats`, checked and parsed: 200, JSON, every counter an integer.
pub async fn get_stats(addr: SocketAddr) -> Counts {
    let response = http::get(addr, "/stats").await;
    assert_eq!(
        response.status, 200,
        "GET /stats should succeed: {response:?}"
    );
    let json: Value = serde_json::from_str(&response.body)
        .unwrap_or_else(|err| panic!("GET /stats should be JSON ({err}): {:?}", response.body));
    let counter = |name: &str| {
        json.get(name)
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("/stats should have an integer {name:?}: {json}"))
    };
    Counts {
        connections: counter("connections"),
        messages_in: counter("messages_in"),
        deliveries: counter("deliveries"),
        dropped: counter("dropped"),
        disconnected: counter("disconnected"),
    }
}

/// Asks `/stats` until `expected` holds (within [`WAIT`]): for what the broker learns
/// asynchronously, like a client that has gone.
async fn wait_for_stats(
    addr: SocketAddr,
    what: &str,
    expected: impl Fn(&Counts) -> bool,
) -> Counts {
    crate::wait_until(WAIT, || get_stats(addr), expected)
        .await
        .unwrap_or_else(|counts| {
            panic!("/stats should show {what} within {WAIT:?}; it shows {counts:?}")
        })
}

/// `GET /stats` is JSON (by its content type too), and on a fresh server every counter is 0.
async fn stats_is_json_and_starts_at_zero(target: Target) {
    let server = TestServer::start(target).await;
    let response = http::get(server.addr, "/stats").await;
    let content_type = response.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "GET /stats should say it is JSON, says {content_type:?}"
    );
    assert_eq!(
        get_stats(server.addr).await,
        Counts {
            connections: 0,
            messages_in: 0,
            deliveries: 0,
            dropped: 0,
            disconnected: 0,
        }
    );
}

/// Three clients; one sends 25 messages, the two others receive them all. Then the counts are
/// exactly: 3 connections, 25 messages in, 50 deliveries, nothing dropped, nobody disconnected.
async fn stats_count_a_known_exchange_exactly(target: Target) {
    const SENT: u64 = 25;
    let server = TestServer::start(target).await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    let mut carol = server.client("carol").await;
    for n in 0..SENT {
        alice.send_text(&format!("message {n}")).await;
    }
    for n in 0..SENT {
        bob.expect_text(&format!("message {n}")).await;
        carol.expect_text(&format!("message {n}")).await;
    }
    // Both have received everything, so the broker has handled every message already.
    assert_eq!(
        get_stats(server.addr).await,
        Counts {
            connections: 3,
            messages_in: SENT,
            deliveries: 2 * SENT,
            dropped: 0,
            disconnected: 0,
        }
    );
}

/// A client that closes is removed: `connections` goes back down and `disconnected` up.
async fn stats_count_a_client_that_closed_as_disconnected(target: Target) {
    let server = TestServer::start(target).await;
    let _alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    assert_eq!(get_stats(server.addr).await.connections, 2);
    bob.send_close(1000, "bye").await;
    bob.expect_close_code(1000).await;
    let counts = wait_for_stats(server.addr, "bob gone", |counts| {
        counts.connections == 1 && counts.disconnected == 1
    })
    .await;
    assert_eq!(counts.connections, 1, "alice is still connected");
}

/// A client whose connection just drops (no Close) is removed as well.
async fn stats_count_a_client_that_vanished_as_disconnected(target: Target) {
    let server = TestServer::start(target).await;
    let _alice = server.client("alice").await;
    let bob = server.client("bob").await;
    assert_eq!(get_stats(server.addr).await.connections, 2);
    drop(bob); // closes the socket without a Close frame
    wait_for_stats(server.addr, "bob gone", |counts| {
        counts.connections == 1 && counts.disconnected == 1
    })
    .await;
}

/// With a client that reads nothing, `dropped` counts what it missed: every message was offered
/// to it and to a healthy client, so deliveries and drops add up to twice the messages sent, and
/// the healthy client's share is all delivered.
async fn stats_count_the_messages_dropped_for_a_stalled_client(target: Target) {
    let server = TestServer::start_with(target, &["--queue-capacity", &CAPACITY.to_string()]).await;
    let _stalled = server.stalled_client("stalled").await;
    let mut alice = server.client("alice").await;
    let mut healthy = [server.client("bob").await];
    push(&mut alice, &mut healthy, 0..TO_STALL, || {}).await;
    let counts = get_stats(server.addr).await;
    assert_eq!(counts.connections, 3, "{counts:?}");
    assert_eq!(counts.messages_in, TO_STALL, "{counts:?}");
    assert_eq!(
        counts.deliveries + counts.dropped,
        2 * TO_STALL,
        "every message was offered to bob and to the stalled client: {counts:?}"
    );
    assert!(
        counts.dropped > 0,
        "the stalled client cannot have taken {TO_STALL} messages: {counts:?}"
    );
    assert!(
        counts.deliveries >= TO_STALL,
        "bob received every message, so each was delivered to him: {counts:?}"
    );
}
