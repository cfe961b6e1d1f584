//! Stage 07: what a stranger may withhold.
//!
//! Every scenario here plays one peer that holds on to the server without doing its part: one
//! that never reads, one that never answers a ping, one that never finishes its HTTP headers, and
//! a crowd that takes every file descriptor. Each checks that a clock (or the accept loop) lets the
//! server go on, within a bound, and that everybody else is served as before.
//!
//! Timeouts are set short here (a few hundred milliseconds) so the suite runs in seconds; the
//! defaults are checked through `--help`.

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::Instant,
};

use crate::{
    Client, ServerProcess, Target, TestServer, WAIT,
    faults::{self, RawClient, RawEnding, eventually},
    health::{
        assert_healthy, assert_healthy_alone, assert_no_panic, bin, expect_connections, stat,
    },
    http, process, scenarios, ws_url,
};

pub const SCENARIOS: &[crate::Scenario] = scenarios![
    @binary a_client_that_never_reads_is_cut_off_after_the_write_timeout,
    a_peer_that_never_answers_pings_is_dropped_after_the_idle_timeout,
    a_client_that_answers_pings_outlives_the_idle_timeout,
    a_request_that_stalls_in_its_headers_is_cut_off,
    @binary running_out_of_file_descriptors_is_survived,
    @binary help_lists_every_timeout_with_its_default,
    @binary nonsensical_timeouts_are_refused_at_startup,
];

/// Short timeouts, so that scenarios wait for them in milliseconds.
const PING_INTERVAL: &str = "100ms";
const IDLE_TIMEOUT: &str = "300ms";
const IDLE_TIMEOUT_MS: u64 = 300;
const WRITE_TIMEOUT: &str = "500ms";
const WRITE_TIMEOUT_MS: u64 = 500;
const HEADER_TIMEOUT: &str = "300ms";
const HEADER_TIMEOUT_MS: u64 = 300;

// ANCHOR: never_reads
/// A client whose socket stops accepting bytes (it never reads, so its TCP window closes) is cut
/// off shortly after the write timeout: its server-side socket is closed, so both of its tasks have
/// ended. Meanwhile another client receives every message, in order, as if nothing happened.
async fn a_client_that_never_reads_is_cut_off_after_the_write_timeout(target: Target) {
    let server = ServerProcess::start(
        bin(&target),
        &["--write-timeout", WRITE_TIMEOUT, "--queue-capacity", "8"],
    )
    .await;
    let pid = server.pid();
    let mut bob = Client::connect(&ws_url(server.addr), "bob").await;
    let mut carol = Client::connect(&ws_url(server.addr), "carol").await;
    expect_connections(server.addr, 2, "bob and carol").await;
    let files_without_mallory = faults::open_files(pid);

    // A 4 KiB receive buffer keeps mallory's TCP window small, and the server's send buffer holds
    // a few MiB at most (Linux grows it up to the last figure of `net.ipv4.tcp_wmem`, 4 MiB by
    // default): the 9.6 MiB below leave the server's writer for mallory unable to write.
    let mallory = RawClient::connect_with_receive_buffer(server.addr, "mallory", 4096).await;
    expect_connections(server.addr, 3, "mallory joined").await;

    // Bob sends big messages one at a time, each received by carol before the next, so carol's
    // own queue never overflows: whatever happens to her is mallory's doing.
    let big = "x".repeat(32 * 1024);
    for n in 0..300 {
        let text = format!("{n:03} {big}");
        bob.send_text(&text).await;
        carol.expect_text(&text).await;
    }
    let sent_all = Instant::now();

    // By now mallory's writer has been stuck for a while; the timeout (plus scheduling slack)
    // bounds how much longer the server may hold on to her.
    let limit = Duration::from_millis(WRITE_TIMEOUT_MS) + Duration::from_secs(2);
    let closed = eventually(limit, || faults::open_files(pid) <= files_without_mallory).await;
    assert!(
        closed,
        "the server still holds mallory's socket {:?} after the last message ({} open files, {} \
         without mallory): a writer stuck in send must give up after the write timeout",
        sent_all.elapsed(),
        faults::open_files(pid),
        files_without_mallory
    );
    expect_connections(server.addr, 2, "mallory was cut off").await;
    assert_eq!(
        stat(server.addr, "timed_out").await,
        1,
        "/stats should count mallory as timed out"
    );
    // The others carry on.
    bob.send_text("after mallory").await;
    carol.expect_text("after mallory").await;
    drop(mallory);
    assert_no_panic(&server);
}
// ANCHOR_END: never_reads

/// A peer that stops answering (here: one that never replies to a Ping, as a vanished one would
/// not) is dropped once `--idle-timeout` passes without a frame from it, not much sooner, with
/// Close 1001 (going away): a peer that still reads is told why.
async fn a_peer_that_never_answers_pings_is_dropped_after_the_idle_timeout(target: Target) {
    let server = TestServer::start_with(
        target,
        &[
            "--ping-interval",
            PING_INTERVAL,
            "--idle-timeout",
            IDLE_TIMEOUT,
        ],
    )
    .await;
    let connected = Instant::now();
    let mut silent = RawClient::connect(server.addr, "silent").await;
    let ending = silent.expect_end().await;
    let after = connected.elapsed();
    assert!(
        matches!(ending, RawEnding::Close(Some(1001))),
        "the silent peer should be dropped with Close 1001, got {ending:?}"
    );
    // Timers fire late on a busy machine, never early: check the lower bound only.
    assert!(
        after >= Duration::from_millis(IDLE_TIMEOUT_MS * 3 / 4),
        "the silent peer was dropped after {after:?}, before the {IDLE_TIMEOUT} idle timeout"
    );
    expect_connections(server.addr, 0, "the silent peer was dropped").await;
    assert_eq!(
        stat(server.addr, "timed_out").await,
        1,
        "/stats should count the silent peer as timed out"
    );
}

/// A client that answers every Ping but sends nothing else stays connected long after
/// `--idle-timeout`: the timeout is about a dead peer, not a quiet one.
async fn a_client_that_answers_pings_outlives_the_idle_timeout(target: Target) {
    let server = TestServer::start_with(
        target,
        &[
            "--ping-interval",
            PING_INTERVAL,
            "--idle-timeout",
            IDLE_TIMEOUT,
        ],
    )
    .await;
    let mut alice = server.client("alice").await;
    let mut listener = server.client("listener").await;
    // Reading is what makes the test client answer pings, so both read all the time; five quiet
    // periods are well over three idle timeouts.
    for _ in 0..5 {
        tokio::join!(listener.expect_silence(), alice.expect_silence());
    }
    alice.send_text("you are still there").await;
    listener.expect_text("you are still there").await;
}

// ANCHOR: header_timeout
/// A connection that sends part of a request line and then nothing (the slowloris attack) is
/// closed once `--header-timeout` passes, not much sooner, and the server serves others meanwhile.
async fn a_request_that_stalls_in_its_headers_is_cut_off(target: Target) {
    let server = TestServer::start_with(target, &["--header-timeout", HEADER_TIMEOUT]).await;
    let mut stalled = TcpStream::connect(server.addr)
        .await
        .expect("connecting to the server");
    let started = Instant::now();
    stalled
        .write_all(b"GET / HT")
        .await
        .expect("writing half a request line");
    // Served while the other one stalls.
    assert_eq!(http::get(server.addr, "/").await.status, 200);
    let mut reply = Vec::new();
    let read = tokio::time::timeout(WAIT, stalled.read_to_end(&mut reply)).await;
    let after = started.elapsed();
    assert!(
        read.is_ok(),
        "a stalled request should be cut off after the {HEADER_TIMEOUT} header timeout, it was \
         still open after {WAIT:?}"
    );
    assert!(
        after >= Duration::from_millis(HEADER_TIMEOUT_MS * 3 / 4),
        "the stalled request was cut off after {after:?}, before the {HEADER_TIMEOUT} timeout"
    );
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 408"),
        "a stalled request gets nothing or 408, got {reply:?}"
    );
}
// ANCHOR_END: header_timeout

// ANCHOR: out_of_files
/// A server that runs out of file descriptors (this one may open 64) keeps running: it says so in
/// its log, the connections it cannot accept yet wait in the kernel's backlog, and once clients
/// leave it accepts and serves again. An accept loop that gave up at its first error would have
/// stopped serving for good, and one that retried at once would spin.
async fn running_out_of_file_descriptors_is_survived(target: Target) {
    const OPEN_FILES: u32 = 64;
    let server = ServerProcess::start_with_open_file_limit(bin(&target), &[], OPEN_FILES).await;
    let mut crowd = Vec::new();
    for _ in 0..OPEN_FILES + 16 {
        let socket = tokio::time::timeout(WAIT, TcpStream::connect(server.addr))
            .await
            .expect("the kernel completes connections into the backlog at once")
            .expect("connecting to the server");
        crowd.push(socket);
    }
    let told = eventually(WAIT, || server.stderr().contains("cannot accept")).await;
    assert!(
        told,
        "with {} connections and {OPEN_FILES} files allowed, the log should say it cannot accept \
         one:\n{}",
        crowd.len(),
        server.stderr()
    );
    drop(crowd);
    // The crowd's sockets close, the server's with them, and the backlog drains.
    assert_healthy(server.addr, "running out of files").await;
    assert_no_panic(&server);
}
// ANCHOR_END: out_of_files

/// `--help` lists every timeout with its default, so an operator can see what protects the
/// server without reading the code.
async fn help_lists_every_timeout_with_its_default(target: Target) {
    let help = process::run_to_end(bin(&target), &["--help"]).await.stdout;
    for (flag, default) in [
        ("--write-timeout", "[default: 10s]"),
        ("--header-timeout", "[default: "),
        ("--idle-timeout", "--ping-interval"),
    ] {
        let line = help
            .lines()
            .find(|line| line.trim_start().starts_with(flag))
            .unwrap_or_else(|| panic!("--help should list {flag}:\n{help}"));
        assert!(
            line.contains(default),
            "--help should give {flag} a default ({default:?}):\n{line}"
        );
    }
}

/// Timeouts that make no sense (zero, or an idle timeout the pings cannot keep alive) stop the
/// program at startup with an error naming the flag, not a panic and not a server that drops
/// every client; the smallest sensible values are accepted.
async fn nonsensical_timeouts_are_refused_at_startup(target: Target) {
    let smallest = ["--ping-interval", "1s", "--idle-timeout", "2s"];
    let server = ServerProcess::start(bin(&target), &smallest).await;
    assert_healthy_alone(server.addr).await;
    assert_no_panic(&server);

    for (flags, named) in [
        (&["--write-timeout", "0s"][..], "--write-timeout"),
        (&["--header-timeout", "0s"][..], "--header-timeout"),
        (
            &["--ping-interval", "1s", "--idle-timeout", "1500ms"][..],
            "--idle-timeout",
        ),
    ] {
        let mut args = vec!["--addr", "127.0.0.1:0"];
        args.extend_from_slice(flags);
        process::assert_flag_refused(bin(&target), &args, named).await;
    }
}
