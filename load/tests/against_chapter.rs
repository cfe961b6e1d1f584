//! The generator against a real chapter server (chapter 04, started in this process): with small
//! numbers and a generous window, every message must reach every other reading client, in order.
//! These check the generator's accounting, not anybody's speed: nothing here is timed.

use std::time::Duration;

use clap::Parser;
use fanout_load::{Flags, Report};
use stage_tests::TestServer;

/// Chapter 04's server, started from its library on a free loopback port.
async fn chapter_04() -> TestServer {
    TestServer::start(stage_tests::target!(
        ch04_bounded,
        "ch04-bounded",
        library_only
    ))
    .await
}

/// Runs the generator's library with `flags` against `server`.
async fn generate(server: &TestServer, flags: &[&str]) -> Report {
    let url = server.ws_url();
    let args = ["fanout-load", "--url", url.as_str(), "--no-progress"]
        .into_iter()
        .chain(flags.iter().copied());
    let plan = Flags::try_parse_from(args)
        .expect("valid flags")
        .plan()
        .expect("a valid plan");
    tokio::time::timeout(Duration::from_secs(60), fanout_load::run(plan))
        .await
        .expect("the run stops by itself well within its deadline")
}

/// Two senders at max rate, 200 messages each, five reading clients: each message reaches the
/// four clients other than its sender, none lost, none out of order, nobody disconnected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_reaches_every_other_client_in_order() {
    let server = chapter_04().await;
    let report = generate(
        &server,
        &[
            "--clients",
            "5",
            "--senders",
            "2",
            "--messages",
            "200",
            "--window",
            "16",
            "--ramp",
            "0s",
            "--duration",
            "30s",
            "--drain",
            "20s",
        ],
    )
    .await;
    assert_eq!(report.connected, 5, "every client connected: {report:#?}");
    assert_eq!(
        report.sent, 400,
        "each sender sent its --messages: {report:#?}"
    );
    assert_eq!(
        report.expected,
        400 * 4,
        "each message is expected at the 4 other clients"
    );
    assert_eq!(
        (report.delivered, report.lost, report.out_of_order),
        (report.expected, 0, 0),
        "everything arrived, in order:\n{}",
        report.summary()
    );
    assert_eq!(report.disconnects, 0, "{}", report.summary());
    assert_eq!(
        report.echoed, 0,
        "chapter 04 does not send a message back to its sender"
    );
    for sender in &report.per_sender {
        assert_eq!((sender.sent, sender.lost), (200, 0), "{sender:?}");
    }
    assert!(
        report.p50_us > 0 && report.p50_us <= report.p99_us && report.p99_us <= report.max_us,
        "latency percentiles are recorded and ordered: {report:#?}"
    );
    assert!(
        report.stopped.contains("every sender sent its --messages")
            && report.stopped.contains("everything sent was delivered"),
        "{}",
        report.stopped
    );
}

/// At a fixed rate, with 1 KiB messages and a client that never reads, the reading clients
/// still receive every message, and the never-reading client is counted as connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_costs_the_readers_nothing() {
    let server = chapter_04().await;
    let report = generate(
        &server,
        &[
            "--clients",
            "4",
            "--senders",
            "1",
            "--rate",
            "500",
            "--messages",
            "100",
            "--size",
            "1024",
            "--stalled",
            "1",
            "--ramp",
            "0s",
            "--duration",
            "30s",
            "--drain",
            "20s",
        ],
    )
    .await;
    assert_eq!(
        (report.connected, report.stalled_connected),
        (4, 1),
        "{}",
        report.summary()
    );
    assert_eq!(report.rate, Some(500.0));
    assert_eq!(
        (report.sent, report.expected, report.delivered, report.lost),
        (100, 300, 300, 0),
        "{}",
        report.summary()
    );
}
