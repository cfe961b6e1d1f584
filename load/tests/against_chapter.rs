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
    generate_at(&[server.ws_url()], flags).await
}

/// Runs the generator's library with `flags`, its clients spread over `urls`.
async fn generate_at(urls: &[String], flags: &[&str]) -> Report {
    let args = ["fanout-load", "--no-progress"]
        .into_iter()
        .chain(urls.iter().flat_map(|url| ["--url", url.as_str()]))
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

/// Two URLs of two separate chapter 04 servers (two chats, nothing between them): the clients
/// and the senders go round-robin, so each server has one sender and one other reader, and every
/// message reaches exactly the one client on its sender's server. Nothing crosses, and the
/// report counts it as same-server deliveries and misses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_are_spread_round_robin_over_the_urls() {
    let (first, second) = (chapter_04().await, chapter_04().await);
    let report = generate_at(
        &[first.ws_url(), second.ws_url()],
        &[
            "--clients",
            "4",
            "--senders",
            "2",
            "--rate",
            "200",
            "--messages",
            "20",
            "--ramp",
            "0s",
            "--duration",
            "30s",
            "--drain",
            "1s",
        ],
    )
    .await;
    assert_eq!(report.servers, 2, "{}", report.summary());
    assert_eq!(report.urls, [first.ws_url(), second.ws_url()]);
    assert_eq!(
        (report.connected, report.sent),
        (4, 40),
        "{}",
        report.summary()
    );
    let same = report.same_server.expect("a split with two URLs");
    let cross = report.cross_server.expect("a split with two URLs");
    assert_eq!(
        (same.delivered, cross.delivered),
        (40, 0),
        "clients 0 and 2 on the first server, 1 and 3 on the second: each message reaches the \
         one other client of its sender's server:\n{}",
        report.summary()
    );
    assert_eq!(
        (report.expected, report.lost),
        (120, 80),
        "the two other clients of each message were on the other chat"
    );
    assert!(report.summary().contains("against 2 servers"));
}

/// One chapter 04 server under two spellings of its URL: every message arrives, and each is
/// counted once in the split, as same-server when its sender used the receiver's URL and as
/// cross-server otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_is_split_by_the_urls_of_sender_and_receiver() {
    let server = chapter_04().await;
    let by_name = format!("ws://localhost:{}/ws", server.addr.port());
    let report = generate_at(
        &[server.ws_url(), by_name],
        &[
            "--clients",
            "4",
            "--senders",
            "2",
            "--messages",
            "100",
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
        (report.delivered, report.lost),
        (600, 0),
        "{}",
        report.summary()
    );
    let same = report.same_server.expect("a split with two URLs");
    let cross = report.cross_server.expect("a split with two URLs");
    // Sender 0 (first URL) reaches client 2 on its URL and clients 1 and 3 on the other; sender
    // 1 (second URL) likewise: one same-URL and two cross-URL deliveries per message.
    assert_eq!(
        (same.delivered, cross.delivered),
        (200, 400),
        "{}",
        report.summary()
    );
    assert!(
        same.p50_us > 0 && same.p50_us <= same.p99_us && cross.p50_us <= cross.p99_us,
        "{:?} {:?}",
        same,
        cross
    );
}
