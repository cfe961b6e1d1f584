//! Stage 08 onwards: throughput. A healthy client takes a burst whole: the writer sends what
//! piled up in one batch, and queues are bounded in bytes, so a thousand small messages fit where
//! a count of 256 dropped most of them. A client that stops reading still holds no more than its
//! byte budget, however many messages that is.

use std::time::Duration;

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

use crate::{
    Client, ServerProcess, Target, TestServer,
    bounded::{TO_STALL, push},
    client::StalledClient,
    process, scenarios,
};

pub const SCENARIOS: &[crate::Scenario] = scenarios![
    a_healthy_client_receives_all_of_a_burst_in_order,
    @binary a_stalled_client_holds_no_more_than_its_byte_budget,
    @binary queue_bytes_are_refused_when_they_make_no_sense,
    @binary queue_bytes_has_a_documented_default,
];

/// How many messages the burst has: about what a few people pasting at once send.
pub const BURST: usize = 1_000;
/// The size of each message of the burst: a line of chat.
pub const BURST_MESSAGE_SIZE: usize = 256;

/// Message `number` of the burst: its number, then dots up to [`BURST_MESSAGE_SIZE`].
pub fn burst_message(number: usize) -> String {
    let mut text = format!("{number:06} ");
    text.extend(std::iter::repeat_n('.', BURST_MESSAGE_SIZE - text.len()));
    text
}

/// Sends the whole burst as fast as the socket takes it: every message queued in the client,
/// then one flush.
pub async fn send_burst(sender: &mut Client) {
    let stream = sender.stream();
    for number in 0..BURST {
        stream
            .feed(Message::text(burst_message(number)))
            .await
            .expect("the sender should be able to queue the burst");
    }
    tokio::time::timeout(crate::WAIT, stream.flush())
        .await
        .expect("the burst should leave the sender within WAIT")
        .expect("the burst should leave the sender");
}

/// A client that reads everything gets all of a burst of 1,000 messages of 256 bytes, sent by
/// one client as fast as it can, in order, with the server's default flags: nothing is dropped
/// for a client that is only a moment behind.
async fn a_healthy_client_receives_all_of_a_burst_in_order(target: Target) {
    let server = TestServer::start(target).await;
    let mut sender = server.client("sender").await;
    let mut reader = server.client("reader").await;
    send_burst(&mut sender).await;
    for number in 0..BURST {
        let expected = burst_message(number);
        let got = match reader.recv().await {
            Message::Text(text) => text,
            other => panic!("reader: expected message {number} of the burst, got {other:?}"),
        };
        let got_number = got.as_str().get(..6).unwrap_or_default();
        assert!(
            got.as_str() == expected,
            "reader is healthy and should receive all {BURST} messages of the burst in order: \
             expected message {number}, got message {got_number:?} (so {} were lost before it)",
            got_number
                .parse::<usize>()
                .map_or(0, |got| got.saturating_sub(number))
        );
    }
}

/// The byte budget the stalled-client scenario runs with.
const BUDGET_MIB: u64 = 2;
/// What the server's memory may grow by beyond the budget while the stalled client misses
/// messages: allocator noise, the writer's buffers, the healthy clients' queues in flight. Far
/// below the 32 MiB that go past.
const SLACK_MIB: u64 = 6;
/// What is pushed past the stalled client after the warm-up: 32 MiB of 16 KiB messages.
const PUSH: u64 = 2048;

/// With a count bound too high to matter (100,000 messages, 1.5 GiB of these), the server's
/// resident memory still stays within the byte budget (plus a little) while 32 MiB go past a
/// client that never reads: the queue is bounded by what its messages weigh.
async fn a_stalled_client_holds_no_more_than_its_byte_budget(target: Target) {
    let bin = target
        .bin
        .expect("this scenario needs the chapter's binary");
    let budget = format!("{BUDGET_MIB}MiB");
    let flags = [
        "--queue-capacity",
        "100000",
        "--queue-bytes",
        &budget,
        // Long enough that the stalled client is not let go during the push.
        "--write-timeout",
        "60s",
    ];
    let server = ServerProcess::start(bin, &flags).await;
    let _stalled = StalledClient::connect(server.addr, "stalled").await;
    let url = server.ws_url();
    let mut alice = Client::connect(&url, "alice").await;
    let mut healthy = [Client::connect(&url, "bob").await];

    // Warm up: fill the stalled client's socket buffers and its queue before the baseline.
    push(&mut alice, &mut healthy, 0..TO_STALL, || {}).await;
    let baseline = server.rss_bytes();
    let mut peak = baseline;
    push(&mut alice, &mut healthy, TO_STALL..TO_STALL + PUSH, || {
        peak = peak.max(server.rss_bytes())
    })
    .await;
    let mib = |bytes: u64| bytes as f64 / f64::from(1 << 20);
    assert!(
        peak - baseline < (BUDGET_MIB + SLACK_MIB) << 20,
        "the server's memory grew from {:.1} MiB to {:.1} MiB while 32 MiB went past a client \
         that never reads, with --queue-bytes {budget}; it should stay within {} MiB of where it \
         started",
        mib(baseline),
        mib(peak),
        BUDGET_MIB + SLACK_MIB
    );
}

/// A byte budget of nothing, one that is not a size, one over the maximum, and one smaller than
/// the largest message (which could then never be queued for anybody) are refused at startup,
/// naming the flags; a budget that holds exactly one largest message is accepted.
async fn queue_bytes_are_refused_when_they_make_no_sense(target: Target) {
    let bin = target
        .bin
        .expect("this scenario needs the chapter's binary");
    for (flags, named) in [
        (&["--queue-bytes", "0"][..], "--queue-bytes"),
        (&["--queue-bytes", "lots"][..], "--queue-bytes"),
        (&["--queue-bytes", "2048MiB"][..], "--queue-bytes"),
        (&["--queue-bytes", "1KiB"][..], "--max-message-size"),
        (
            &["--queue-bytes", "64KiB", "--max-message-size", "65537"][..],
            "--queue-bytes",
        ),
    ] {
        let mut args = vec!["--addr", "127.0.0.1:0"];
        args.extend_from_slice(flags);
        process::assert_flag_refused(bin, &args, named).await;
    }
    let fits = ["--queue-bytes", "1KiB", "--max-message-size", "1KiB"];
    let server = ServerProcess::start(bin, &fits).await;
    let url = server.ws_url();
    let mut alice = Client::connect(&url, "alice").await;
    let mut bob = Client::connect(&url, "bob").await;
    let largest = vec![b'x'; 1024];
    // On a chat server (chapter 09 on), bob's own notices (his welcome, who is in the room) may
    // still be queued when the first largest message reaches the broker, and with a budget of
    // exactly one largest message that one is dropped for him, as the budget says it must be. So
    // alice tries a few times: one must get through once bob's queue has emptied, and none would
    // if the budget could not hold a largest message at all.
    let mut arrived = false;
    for _ in 0..5 {
        alice.send_binary(&largest).await;
        if let Some(message) = bob.recv_within(Duration::from_secs(2)).await {
            assert_eq!(
                message,
                Message::binary(largest.clone()),
                "bob should get alice's largest message whole"
            );
            arrived = true;
            break;
        }
    }
    assert!(
        arrived,
        "a message of --max-message-size never reached bob with --queue-bytes of the same size"
    );
}

/// `--help` lists `--queue-bytes` and shows its default.
async fn queue_bytes_has_a_documented_default(target: Target) {
    let bin = target
        .bin
        .expect("this scenario needs the chapter's binary");
    let line = process::help_line(bin, "--queue-bytes").await;
    assert!(
        line.contains("[default: "),
        "--help should show the default of --queue-bytes: {line:?}"
    );
}
