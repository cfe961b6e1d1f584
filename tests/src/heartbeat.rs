//! Stage 02 onwards: the writer speaks on its own. With nothing else to write it pings the
//! client every `--ping-interval`, which a single read-then-write loop could not do.

use std::time::Duration;

use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::{Client, Target, TestServer, WAIT, process, scenarios};

pub const SCENARIOS: &[crate::Scenario] = scenarios![
    pings_a_silent_client_every_interval,
    @binary ping_interval_defaults_to_thirty_seconds,
    @binary ping_interval_must_be_a_positive_duration,
];

/// For the chapters that echo (02): echo and heartbeat side by side.
pub const WITH_ECHO: &[crate::Scenario] = scenarios![keeps_echoing_between_pings];

const INTERVAL: &str = "200ms";
const INTERVAL_MS: u64 = 200;

/// Waits for the next Ping (within [`WAIT`]); data messages in between fail the test.
async fn next_ping(client: &mut Client) -> Instant {
    loop {
        match client.next_frame_within(WAIT).await {
            Some(Ok(Message::Ping(_))) => return Instant::now(),
            Some(Ok(Message::Pong(_))) => continue,
            // A chat server's welcome and notices (see `Wire::Chat`) are not data.
            Some(Ok(message)) if client.is_notice(&message) => continue,
            other => panic!(
                "{}: expected a Ping from the server, got {other:?}",
                client.name()
            ),
        }
    }
}

/// A client that says nothing is pinged by the server, again and again, and not much more often
/// than the interval asks.
async fn pings_a_silent_client_every_interval(target: Target) {
    let server = TestServer::start_with(target, &["--ping-interval", INTERVAL]).await;
    let connected = Instant::now();
    let mut client = server.client("silent").await;
    let first = next_ping(&mut client).await;
    let second = next_ping(&mut client).await;
    let third = next_ping(&mut client).await;
    // Timers may fire late on a busy machine, never early: check the lower bound only.
    let floor = Duration::from_millis(INTERVAL_MS * 3 / 4);
    assert!(
        first - connected >= floor,
        "the first ping came after {:?}, sooner than the interval",
        first - connected
    );
    assert!(
        second - first >= floor,
        "pings came {:?} apart, more often than every {INTERVAL}",
        second - first
    );
    assert!(
        third - second >= floor,
        "pings came {:?} apart, more often than every {INTERVAL}",
        third - second
    );
}

/// Echo keeps working on a connection that is being pinged: the reader and the writer run side
/// by side.
async fn keeps_echoing_between_pings(target: Target) {
    let server = TestServer::start_with(target, &["--ping-interval", INTERVAL]).await;
    let mut client = server.client("chatty").await;
    client.send_text("before the ping").await;
    client.expect_text("before the ping").await;
    next_ping(&mut client).await;
    client.send_text("after the ping").await;
    client.expect_text("after the ping").await;
}

/// `--help` documents `--ping-interval` with its default of 30 seconds.
async fn ping_interval_defaults_to_thirty_seconds(target: Target) {
    let bin = target
        .bin
        .expect("this scenario needs the chapter's binary");
    let line = process::help_line(bin, "--ping-interval").await;
    assert!(
        line.contains("[default: 30s]"),
        "--ping-interval should default to 30s: {line:?}"
    );
}

/// A zero or unreadable `--ping-interval` is refused with a clear error, not a panic.
async fn ping_interval_must_be_a_positive_duration(target: Target) {
    let bin = target
        .bin
        .expect("this scenario needs the chapter's binary");
    for bad in ["0s", "soon"] {
        process::assert_flag_refused(bin, &["--ping-interval", bad], "--ping-interval").await;
    }
}
