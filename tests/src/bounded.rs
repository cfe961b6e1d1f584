//! Stage 04 onwards: every queue is bounded. A client that stops reading misses messages, its own
//! and only its own; it does not slow the other clients down, and it does not make the server's
//! memory grow however long it stays.
//!
//! The scenarios push numbered binary messages from one client past a [`StalledClient`] while
//! healthy clients read everything. The sender goes in windows of [`WINDOW`] messages and waits
//! until every healthy client has all of a window before it sends the next: a healthy client then
//! never has more than [`WINDOW`] messages waiting for it, fewer than its queue holds, so any
//! message it misses is one the server dropped for no good reason.

use tokio_tungstenite::tungstenite::Message;

use crate::{
    Client, QUIET, ServerProcess, Target, TestServer, client::StalledClient, process, scenarios,
};

pub const SCENARIOS: &[crate::Scenario] = scenarios![
    a_stalled_client_does_not_hold_back_the_others,
    a_stalled_client_misses_messages_but_stays_connected,
    @binary memory_stays_flat_while_a_client_stalls,
    @binary queue_capacity_must_be_at_least_one,
    @binary queue_capacity_has_a_documented_default,
];

/// The `--queue-capacity` the scenarios run with, so they do not depend on the default.
pub(crate) const CAPACITY: u64 = 64;
/// Messages in flight per window: less than [`CAPACITY`], so a healthy client's queue never fills.
const WINDOW: u64 = 32;
const _: () = assert!(WINDOW < CAPACITY);
/// The size of every pushed message.
const MESSAGE_SIZE: usize = 16 * 1024;
/// How many messages it takes to stall the stalled client for sure: 8 MiB, several times what its
/// socket buffers (on both ends) and its queue can hold together.
pub(crate) const TO_STALL: u64 = (8 << 20) / MESSAGE_SIZE as u64;

/// A binary message of [`MESSAGE_SIZE`] bytes that starts with its number.
fn numbered(number: u64) -> Vec<u8> {
    let mut bytes = vec![b'.'; MESSAGE_SIZE];
    bytes[..8].copy_from_slice(&number.to_be_bytes());
    bytes
}

/// The number a [`numbered`] message starts with.
fn number_of(client: &Client, message: &Message) -> u64 {
    match message {
        Message::Binary(bytes) if bytes.len() == MESSAGE_SIZE => {
            let mut number = [0u8; 8];
            number.copy_from_slice(&bytes[..8]);
            u64::from_be_bytes(number)
        }
        other => panic!(
            "{}: expected a numbered message of {MESSAGE_SIZE} bytes, got {}",
            client.name(),
            describe(other)
        ),
    }
}

fn describe(message: &Message) -> String {
    match message {
        Message::Binary(bytes) => format!("{} binary bytes", bytes.len()),
        Message::Text(text) => format!("the text {:?}", text.as_str()),
        other => format!("{other:?}"),
    }
}

/// `sender` sends the messages numbered `numbers`, a window at a time; after each window every
/// client in `healthy` must have received all of it, in order. Calls `between_windows` after
/// each window (to sample something while the push goes on).
pub(crate) async fn push(
    sender: &mut Client,
    healthy: &mut [Client],
    numbers: std::ops::Range<u64>,
    mut between_windows: impl FnMut(),
) {
    let mut start = numbers.start;
    while start < numbers.end {
        let end = (start + WINDOW).min(numbers.end);
        for number in start..end {
            sender.send(Message::binary(numbered(number))).await;
        }
        for client in healthy.iter_mut() {
            for expected in start..end {
                let message = client.recv().await;
                let got = number_of(client, &message);
                assert_eq!(
                    got,
                    expected,
                    "{} is healthy and should receive every message in order (a stalled client \
                     must not cost it anything)",
                    client.name()
                );
            }
        }
        between_windows();
        start = end;
    }
}

/// With a client that never reads connected, the healthy clients still receive every message,
/// in order, while megabytes go past: the server never waits for the stalled client.
async fn a_stalled_client_does_not_hold_back_the_others(target: Target) {
    let server = TestServer::start_with(target, &["--queue-capacity", &CAPACITY.to_string()]).await;
    let _stalled = server.stalled_client("stalled").await;
    let mut alice = server.client("alice").await;
    let mut healthy = [server.client("bob").await, server.client("carol").await];
    push(&mut alice, &mut healthy, 0..2 * TO_STALL, || {}).await;
}

/// The stalled client misses messages (its queue is bounded), but what it does get arrives in
/// order, and it stays connected: once it reads again and has caught up, it receives new
/// messages like everybody else.
async fn a_stalled_client_misses_messages_but_stays_connected(target: Target) {
    let server = TestServer::start_with(target, &["--queue-capacity", &CAPACITY.to_string()]).await;
    let stalled = server.stalled_client("stalled").await;
    let mut alice = server.client("alice").await;
    let mut healthy = [server.client("bob").await];
    push(&mut alice, &mut healthy, 0..2 * TO_STALL, || {}).await;

    let mut stalled = stalled.resume();
    let received = drain_numbered(&mut stalled).await;
    assert!(
        (received.len() as u64) < 2 * TO_STALL,
        "the stalled client received all {} messages: its queue should have had room for only \
         {CAPACITY} of them",
        received.len()
    );
    assert!(
        received.windows(2).all(|pair| pair[0] < pair[1]),
        "what the stalled client received should be in the order sent, without repeats: {:?}",
        received
    );

    alice.send_text("caught up?").await;
    stalled.expect_text("caught up?").await;
    healthy[0].expect_text("caught up?").await;
}

/// Reads numbered messages until none has come for [`QUIET`] (the backlog is drained) and
/// returns their numbers.
async fn drain_numbered(client: &mut Client) -> Vec<u64> {
    let mut numbers = Vec::new();
    loop {
        match client.recv_within(QUIET).await {
            None => return numbers,
            Some(message @ Message::Binary(_)) => {
                numbers.push(number_of(client, &message));
            }
            Some(other) => panic!(
                "{}: expected the backlog of numbered messages, got {}",
                client.name(),
                describe(&other)
            ),
        }
    }
}

// How much the server's memory may grow while the stalled client misses messages: 16 MiB.
// Measured on a 2-core Linux machine with debug builds: chapter 04 grows by 0.3 to 0.9 MiB after
// the warm-up (its stalled queue is already full at the baseline, so what remains is allocator
// noise); chapter 03, whose queues are unbounded, grew from 19.8 to 84.1 MiB on the same push, as
// it keeps every message for the stalled client (and more, as its queue's blocks grow). 16 MiB is
// far above the first and far below the second.
const RSS_GROWTH_LIMIT: u64 = 16 << 20;
/// What is pushed past the stalled client after the warm-up.
const RSS_PUSH: u64 = (32 << 20) / MESSAGE_SIZE as u64;

/// The server's resident memory stays flat while 32 MiB of messages go past a client that never
/// reads: what the stalled client cannot take is dropped, not kept.
async fn memory_stays_flat_while_a_client_stalls(target: Target) {
    let bin = target
        .bin
        .expect("this scenario needs the chapter's binary");
    let server = ServerProcess::start(bin, &["--queue-capacity", &CAPACITY.to_string()]).await;
    let _stalled = StalledClient::connect(server.addr, "stalled").await;
    let url = server.ws_url();
    let mut alice = Client::connect(&url, "alice").await;
    let mut healthy = [Client::connect(&url, "bob").await];

    // Warm up: fill the stalled client's socket buffers and its queue, and let the allocator
    // reach its working size, before taking the baseline.
    push(&mut alice, &mut healthy, 0..TO_STALL, || {}).await;
    let baseline = server.rss_bytes();
    let mut peak = baseline;
    push(
        &mut alice,
        &mut healthy,
        TO_STALL..TO_STALL + RSS_PUSH,
        || peak = peak.max(server.rss_bytes()),
    )
    .await;
    let mib = |bytes: u64| bytes as f64 / f64::from(1 << 20);
    assert!(
        peak - baseline < RSS_GROWTH_LIMIT,
        "the server's memory grew from {:.1} MiB to {:.1} MiB while {} MiB went past a client \
         that never reads; it should stay within {} MiB of where it started",
        mib(baseline),
        mib(peak),
        (RSS_PUSH * MESSAGE_SIZE as u64) >> 20,
        RSS_GROWTH_LIMIT >> 20
    );
}

/// `--queue-capacity 0` (a queue with no room at all) and a capacity that is not a number are
/// refused with an error naming the flag, not a panic.
async fn queue_capacity_must_be_at_least_one(target: Target) {
    let bin = target
        .bin
        .expect("this scenario needs the chapter's binary");
    for bad in ["0", "-1", "lots"] {
        let flag = format!("--queue-capacity={bad}");
        process::assert_flag_refused(bin, &[&flag], "--queue-capacity").await;
    }
}

/// `--help` lists `--queue-capacity` and shows its default.
async fn queue_capacity_has_a_documented_default(target: Target) {
    let bin = target
        .bin
        .expect("this scenario needs the chapter's binary");
    let line = process::help_line(bin, "--queue-capacity").await;
    assert!(
        line.contains("[default: "),
        "--help should show the default of --queue-capacity: {line:?}"
    );
}
