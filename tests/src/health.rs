//! What the limits and timeouts suites check after each hostile peer: the server still serves,
//! counts what it should, and never panicked.

use std::net::SocketAddr;

use crate::{Client, ServerProcess, Target, WAIT, http, wait_until, ws_url};

pub(crate) fn bin(target: &Target) -> &'static str {
    target
        .bin
        .expect("this scenario needs the chapter's binary")
}

/// One counter from the server's `GET /stats` JSON, e.g. `connections` or `timed_out`.
pub(crate) async fn stat(addr: SocketAddr, field: &str) -> u64 {
    let response = http::get(addr, "/stats").await;
    assert_eq!(response.status, 200, "GET /stats should succeed");
    let json: serde_json::Value = serde_json::from_str(&response.body)
        .unwrap_or_else(|err| panic!("GET /stats should be JSON ({err}): {:?}", response.body));
    json.get(field)
        .and_then(serde_json::Value::as_u64)
        .unwrap_or_else(|| panic!("/stats should have an integer {field:?}: {json}"))
}

/// Waits (within [`WAIT`]) until `/stats` counts `expected` connections.
pub(crate) async fn expect_connections(addr: SocketAddr, expected: u64, why: &str) {
    if let Err(connections) =
        wait_until(WAIT, || stat(addr, "connections"), |&n| n == expected).await
    {
        panic!(
            "/stats should count {expected} connections within {WAIT:?} ({why}), it counts \
             {connections}"
        );
    }
}

/// Two ordinary clients still talk both ways: the server is healthy.
pub(crate) async fn assert_healthy(addr: SocketAddr, after: &str) {
    let mut alice = Client::connect(&ws_url(addr), &format!("alice-after-{after}")).await;
    let mut bob = Client::connect(&ws_url(addr), &format!("bob-after-{after}")).await;
    alice.send_text("still serving?").await;
    bob.expect_text("still serving?").await;
    bob.send_text("yes").await;
    alice.expect_text("yes").await;
}

/// One client connects and is served (for a server that allows only one).
pub(crate) async fn assert_healthy_alone(addr: SocketAddr) {
    let mut alone = Client::connect(&ws_url(addr), "alone").await;
    alone.send_text("a").await;
    alone.expect_silence().await;
}

/// Fails if the process's stderr shows a panic (any thread, any task).
pub(crate) fn assert_no_panic(server: &ServerProcess) {
    let stderr = server.stderr();
    assert!(
        !stderr.contains("panicked"),
        "the server's stderr shows a panic:\n{stderr}"
    );
}
