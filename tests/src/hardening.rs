//! Stage 06: a server that strangers cannot break.
//!
//! Every scenario here plays one hostile or broken peer, most of them with the raw-socket fault
//! injector of [`crate::faults`]: a client that never reads, one that resets mid-frame, one that
//! sends garbage, invalid UTF-8, too much, or nothing at all. Each checks the one answer the
//! server owes that peer (a close code, an HTTP refusal, a cut connection, within a bound) and
//! that everybody else is served as before. The scenarios that run the binary also read its
//! `/proc` entries (open files, resident memory) and check that stderr never shows a panic.
//!
//! Flags are set short here (timeouts of a few hundred milliseconds, a 1 KiB message limit) so the
//! suite runs in seconds; the defaults are checked through `--help` and one scenario at the real
//! 64 KiB limit.

use std::{net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::Instant,
};

use crate::{
    Client, ServerProcess, Target, TestServer, WAIT,
    client::{Ending, relayed_text},
    faults::{self, Frame, RawClient, RawEnding, eventually, opcode},
    http, process, scenarios,
};

pub const SCENARIOS: &[crate::Scenario] = scenarios![
    @binary a_client_that_never_reads_is_cut_off_after_the_write_timeout,
    @binary a_reset_in_the_middle_of_a_frame_leaves_the_server_healthy,
    garbage_after_the_upgrade_ends_that_connection_only,
    every_protocol_violation_is_closed_with_1002,
    invalid_utf8_is_closed_with_1007_and_never_forwarded,
    a_message_over_the_limit_is_closed_with_1009_and_never_forwarded,
    a_fragmented_message_over_the_limit_is_closed_with_1009,
    the_default_message_limit_is_64_kib,
    @binary a_frame_claiming_a_huge_length_is_refused_without_allocating_it,
    connections_beyond_the_limit_are_refused_with_503_until_one_leaves,
    a_peer_that_never_answers_pings_is_dropped_after_the_idle_timeout,
    a_client_that_answers_pings_outlives_the_idle_timeout,
    a_request_that_stalls_in_its_headers_is_cut_off,
    @binary a_thousand_connections_later_nothing_is_left_open,
    @binary running_out_of_file_descriptors_is_survived,
    @binary help_lists_every_limit_with_its_default,
    @binary nonsensical_limits_are_refused_at_startup,
];

/// Short timeouts, so that scenarios wait for them in milliseconds.
const PING_INTERVAL: &str = "100ms";
const IDLE_TIMEOUT: &str = "300ms";
const IDLE_TIMEOUT_MS: u64 = 300;
const WRITE_TIMEOUT: &str = "500ms";
const WRITE_TIMEOUT_MS: u64 = 500;
const HEADER_TIMEOUT: &str = "300ms";
const HEADER_TIMEOUT_MS: u64 = 300;
/// A small message limit, so that going over it takes a kilobyte, not the default's 64 KiB.
const SMALL_LIMIT: &str = "1KiB";
const SMALL_LIMIT_BYTES: usize = 1024;

fn bin(target: &Target) -> &'static str {
    target
        .bin
        .expect("this scenario needs the chapter's binary")
}

fn ws_url(addr: SocketAddr) -> String {
    format!("ws://{addr}/ws")
}

/// One counter from the server's `GET /stats` JSON, e.g. `connections` or `timed_out`.
async fn stat(addr: SocketAddr, field: &str) -> u64 {
    let response = http::get(addr, "/stats").await;
    assert_eq!(response.status, 200, "GET /stats should succeed");
    let json: serde_json::Value = serde_json::from_str(&response.body)
        .unwrap_or_else(|err| panic!("GET /stats should be JSON ({err}): {:?}", response.body));
    json.get(field)
        .and_then(serde_json::Value::as_u64)
        .unwrap_or_else(|| panic!("/stats should have an integer {field:?}: {json}"))
}

/// Waits (within [`WAIT`]) until `/stats` counts `expected` connections.
async fn expect_connections(addr: SocketAddr, expected: u64, why: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let connections = stat(addr, "connections").await;
        if connections == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/stats should count {expected} connections within {WAIT:?} ({why}), it counts \
             {connections}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Two ordinary clients still talk both ways: the server is healthy.
async fn assert_healthy(addr: SocketAddr, after: &str) {
    let mut alice = Client::connect(&ws_url(addr), &format!("alice-after-{after}")).await;
    let mut bob = Client::connect(&ws_url(addr), &format!("bob-after-{after}")).await;
    alice.send_text("still serving?").await;
    bob.expect_text("still serving?").await;
    bob.send_text("yes").await;
    alice.expect_text("yes").await;
}

/// One client connects and is served (for a server that allows only one).
async fn assert_healthy_alone(addr: SocketAddr) {
    let mut alone = Client::connect(&ws_url(addr), "alone").await;
    alone.send_text("a").await;
    alone.expect_silence().await;
}

/// Fails if the process's stderr shows a panic (any thread, any task).
fn assert_no_panic(server: &ServerProcess) {
    let stderr = server.stderr();
    assert!(
        !stderr.contains("panicked"),
        "the server's stderr shows a panic:\n{stderr}"
    );
}

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

/// A client that sends half a frame and then resets the TCP connection (RST, not FIN) is removed
/// and its socket closed, and the server goes on serving everybody else without a panic.
async fn a_reset_in_the_middle_of_a_frame_leaves_the_server_healthy(target: Target) {
    let server = ServerProcess::start(bin(&target), &[]).await;
    let pid = server.pid();
    assert_healthy(server.addr, "start-up").await;
    expect_connections(server.addr, 0, "the start-up clients left").await;
    let files_before = faults::open_files(pid);
    // Cut inside the first header byte pair, the extended length, the mask, and the payload.
    for cut in [1, 3, 6, 500] {
        let mut mallory = RawClient::connect(server.addr, &format!("reset after {cut}")).await;
        expect_connections(server.addr, 1, "mallory joined").await;
        let frame = Frame::binary(vec![7u8; 1000]).encode();
        mallory.write_all(&frame[..cut]).await;
        mallory.reset();
        expect_connections(server.addr, 0, "mallory reset her connection").await;
    }
    let closed = eventually(WAIT, || faults::open_files(pid) <= files_before).await;
    assert!(
        closed,
        "after four resets the server has {} files open, {files_before} before",
        faults::open_files(pid)
    );
    assert_healthy(server.addr, "resets").await;
    assert_no_panic(&server);
}

/// Bytes that are no WebSocket frame at all after a successful upgrade (here, a second HTTP
/// request) end that connection, with Close 1002 or by closing it, and nobody else notices.
async fn garbage_after_the_upgrade_ends_that_connection_only(target: Target) {
    let server = TestServer::start(target).await;
    let mut bob = server.client("bob").await;
    let mut mallory = RawClient::connect(server.addr, "mallory").await;
    // Read as a frame header, "GE" is a non-final frame with RSV1 set, a reserved opcode, no
    // mask and 69 bytes of payload: wrong in four ways. Padding completes those 69 bytes so that
    // the server has a whole frame to judge rather than a wait for more.
    let mut garbage = b"GET / HTTP/1.1\r\nHost: example\r\n\r\n".to_vec();
    garbage.resize(2 + 69, b'#');
    mallory.write_all(&garbage).await;
    mallory.expect_close_code_or_gone(1002).await;
    bob.expect_silence().await;
    assert_healthy(server.addr, "garbage").await;
}

// ANCHOR: violations
/// Each way of breaking the framing rules of RFC 6455 gets Close 1002 (protocol error), on its
/// own connection, and the server stays healthy.
async fn every_protocol_violation_is_closed_with_1002(target: Target) {
    let server = TestServer::start(target).await;
    let violations: [(&str, Vec<Frame>); 6] = [
        (
            "an unmasked client frame",
            vec![Frame::text("hi").unmasked()],
        ),
        (
            "a reserved bit set",
            vec![Frame::text("hi").reserved_bits(0b100)],
        ),
        (
            "a reserved data opcode",
            vec![Frame::new(opcode::RESERVED_DATA, "hi")],
        ),
        ("a reserved control opcode", vec![Frame::new(0xB, "hi")]),
        ("a fragmented Ping", vec![Frame::ping("hi").not_final()]),
        (
            "a continuation with nothing to continue",
            vec![Frame::continuation("hi")],
        ),
    ];
    for (violation, frames) in violations {
        let mut mallory = RawClient::connect(server.addr, violation).await;
        for frame in &frames {
            mallory.send(frame).await;
        }
        match mallory.expect_end().await {
            RawEnding::Close(Some(1002)) => {}
            other => panic!("{violation} should be answered with Close 1002, got {other:?}"),
        }
    }
    assert_healthy(server.addr, "protocol violations").await;
}
// ANCHOR_END: violations

/// A text message that is not valid UTF-8 gets Close 1007 and reaches nobody, whether it came in
/// one frame or split so that the bad byte sits in the second fragment.
async fn invalid_utf8_is_closed_with_1007_and_never_forwarded(target: Target) {
    let server = TestServer::start(target).await;
    let mut bob = server.client("bob").await;
    let cases: [(&str, Vec<Frame>); 2] = [
        ("one frame", vec![Frame::text(b"caf\xc3 \xff".to_vec())]),
        (
            "two fragments",
            vec![
                Frame::text("valid start, ").not_final(),
                Frame::continuation(b"then \xc0\xaf".to_vec()),
            ],
        ),
    ];
    for (case, frames) in cases {
        let mut mallory = RawClient::connect(server.addr, case).await;
        for frame in &frames {
            mallory.send(frame).await;
        }
        match mallory.expect_end().await {
            RawEnding::Close(Some(1007)) => {}
            other => panic!("invalid UTF-8 in {case} should get Close 1007, got {other:?}"),
        }
        bob.expect_silence().await;
    }
    assert_healthy(server.addr, "invalid UTF-8").await;
}

/// With `--max-message-size 1KiB`, a message of exactly 1 KiB is forwarded and one byte more gets
/// Close 1009 (message too big) and reaches nobody.
async fn a_message_over_the_limit_is_closed_with_1009_and_never_forwarded(target: Target) {
    let server = TestServer::start_with(target, &["--max-message-size", SMALL_LIMIT]).await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    let at_limit = "a".repeat(SMALL_LIMIT_BYTES);
    alice.send_text(&at_limit).await;
    bob.expect_text(&at_limit).await;
    alice.send_binary(&vec![1u8; SMALL_LIMIT_BYTES + 1]).await;
    alice.expect_close_code(1009).await;
    bob.expect_silence().await;
    assert_healthy(server.addr, "an oversized message").await;
}

/// The limit is on the message, not the frame: fragments that are each small but add up to more
/// than `--max-message-size` get Close 1009.
async fn a_fragmented_message_over_the_limit_is_closed_with_1009(target: Target) {
    let server = TestServer::start_with(target, &["--max-message-size", SMALL_LIMIT]).await;
    let mut bob = server.client("bob").await;
    let mut mallory = RawClient::connect(server.addr, "mallory").await;
    let piece = vec![b'f'; SMALL_LIMIT_BYTES / 2];
    mallory
        .send(&Frame::binary(piece.clone()).not_final())
        .await;
    mallory
        .send(&Frame::continuation(piece.clone()).not_final())
        .await;
    // This write may fail: the server is allowed to close as soon as it sees the total is over.
    let _ = mallory
        .try_write_all(&Frame::continuation(piece).encode())
        .await;
    match mallory.expect_end().await {
        RawEnding::Close(Some(1009)) => {}
        other => panic!("1.5 KiB in fragments over a 1 KiB limit should get 1009, got {other:?}"),
    }
    bob.expect_silence().await;
}

/// Without the flag, the limit is 64 KiB: 65,536 bytes go through, 65,537 get Close 1009.
async fn the_default_message_limit_is_64_kib(target: Target) {
    let server = TestServer::start(target).await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    let at_limit = vec![2u8; 64 * 1024];
    alice.send_binary(&at_limit).await;
    bob.expect_binary(&at_limit).await;
    alice.send_binary(&vec![3u8; 64 * 1024 + 1]).await;
    alice.expect_close_code(1009).await;
    bob.expect_silence().await;
}

// ANCHOR: huge_frame
/// A frame header announcing an absurd length (2^62 bytes, 1 TiB, 8 MiB) ends the connection at
/// once, without the payload ever being sent: the server checks the length before it reserves
/// room, so its resident memory does not grow with the claim.
async fn a_frame_claiming_a_huge_length_is_refused_without_allocating_it(target: Target) {
    let server = ServerProcess::start(bin(&target), &[]).await;
    let pid = server.pid();
    assert_healthy(server.addr, "start-up").await;
    let before = faults::resident_kib(pid);
    for claim in [1u64 << 62, 1 << 40, 8 << 20] {
        let mut mallory = RawClient::connect(server.addr, &format!("claims {claim} bytes")).await;
        // The header, and a few bytes of the promised payload.
        let mut bytes = Frame::binary(Vec::new()).claiming(claim).encode();
        bytes.extend_from_slice(b"a start");
        mallory.write_all(&bytes).await;
        match mallory.expect_end().await {
            RawEnding::Close(Some(1009)) | RawEnding::Gone(_) => {}
            other => {
                panic!("a frame claiming {claim} bytes should end the connection, got {other:?}")
            }
        }
    }
    let grown = faults::resident_kib(pid).saturating_sub(before);
    // A few MiB of slack for allocator and runtime noise; reserving any one claim would be 8 MiB
    // or (for the larger ones) an allocation failure.
    assert!(
        grown < 6 * 1024,
        "resident memory grew by {grown} KiB while refusing huge frames"
    );
    assert_healthy(server.addr, "huge frames").await;
    assert_no_panic(&server);
}
// ANCHOR_END: huge_frame

// ANCHOR: max_connections
/// With `--max-connections 2`, a third WebSocket handshake is refused with `503 Service
/// Unavailable` and a plain-text reason; once a client leaves, its place can be taken again.
async fn connections_beyond_the_limit_are_refused_with_503_until_one_leaves(target: Target) {
    let server = TestServer::start_with(target, &["--max-connections", "2"]).await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    match RawClient::try_connect(server.addr, "carol").await {
        Err(refusal) => {
            assert_eq!(
                refusal.status, 503,
                "the third client should get 503:\n{}",
                refusal.head
            );
            assert!(
                refusal.head.to_ascii_lowercase().contains("text/plain"),
                "the refusal should be plain text:\n{}",
                refusal.head
            );
            assert!(
                !refusal.body.trim().is_empty(),
                "the refusal should say why in its body"
            );
        }
        Ok(_) => panic!("a third client should be refused with --max-connections 2"),
    }
    // Those connected are not disturbed by the refusal, which is counted.
    alice.send_text("two of us").await;
    bob.expect_text("two of us").await;
    assert_eq!(
        stat(server.addr, "refused").await,
        1,
        "/stats should count the refusal"
    );

    alice.send_close(1000, "making room").await;
    let _ = alice.expect_end().await;
    // The place frees up when the server has finished with alice's connection, which it does on
    // its own time: retry until it has (within WAIT).
    let deadline = Instant::now() + WAIT;
    let mut carol = loop {
        match RawClient::try_connect(server.addr, "carol").await {
            Ok(carol) => break carol,
            Err(refusal) => assert!(
                Instant::now() < deadline,
                "alice left, yet carol is still refused after {WAIT:?}: {}",
                refusal.status
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    bob.send_text("welcome").await;
    loop {
        match carol.next_frame_within(WAIT).await {
            faults::Received::Frame { opcode, payload } => {
                // A chat server greets carol first (see `Wire::Chat`): pass over its notices.
                let text = String::from_utf8_lossy(&payload);
                let Some(relayed) = relayed_text(target.wire, &text) else {
                    continue;
                };
                assert_eq!((opcode, relayed.as_str()), (opcode::TEXT, "welcome"));
                break;
            }
            other => panic!("carol should receive bob's message, got {other:?}"),
        }
    }
}
// ANCHOR_END: max_connections

/// A peer that stops answering (here: one that never replies to a Ping, as a vanished one would
/// not) is dropped once `--idle-timeout` passes without a frame from it, not much sooner.
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
        matches!(ending, RawEnding::Close(_) | RawEnding::Gone(_)),
        "the silent peer should be dropped, got {ending:?}"
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

// ANCHOR: thousand
/// A thousand clients come and go, a third closing politely, a third just dropping the socket, a
/// third resetting it. Afterwards `/stats` counts no connection and the process has exactly as
/// many files open as before: no socket, task or timer was left behind.
async fn a_thousand_connections_later_nothing_is_left_open(target: Target) {
    const CYCLES: usize = 1000;
    const AT_ONCE: usize = 25;
    let server = ServerProcess::start(bin(&target), &[]).await;
    let pid = server.pid();
    // One round first, so that whatever the process opens once, on first use, is open already.
    assert_healthy(server.addr, "warm-up").await;
    expect_connections(server.addr, 0, "the warm-up clients left").await;
    let files_before = faults::open_files(pid);

    for batch in 0..CYCLES / AT_ONCE {
        let mut cycles = Vec::with_capacity(AT_ONCE);
        for n in 0..AT_ONCE {
            let addr = server.addr;
            let number = batch * AT_ONCE + n;
            cycles.push(tokio::spawn(async move {
                let name = format!("client {number}");
                match number % 3 {
                    0 => {
                        let mut client = Client::connect(&ws_url(addr), &name).await;
                        client.send_close(1000, "bye").await;
                        match client.expect_end().await {
                            Ending::Close(_) | Ending::Gone(_) => {}
                        }
                    }
                    1 => drop(Client::connect(&ws_url(addr), &name).await),
                    _ => RawClient::connect(addr, &name).await.reset(),
                }
            }));
        }
        for cycle in cycles {
            cycle.await.expect("a connect/disconnect cycle failed");
        }
    }

    expect_connections(server.addr, 0, "every client left").await;
    let settled = eventually(WAIT, || faults::open_files(pid) <= files_before).await;
    assert!(
        settled,
        "{CYCLES} connections later the server has {} files open, {files_before} before",
        faults::open_files(pid)
    );
    assert_healthy(server.addr, "a thousand connections").await;
    assert_no_panic(&server);
}
// ANCHOR_END: thousand

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

/// `--help` lists every limit and timeout with its default, so an operator can see what protects
/// the server without reading the code.
async fn help_lists_every_limit_with_its_default(target: Target) {
    let help = process::run_to_end(bin(&target), &["--help"]).await.stdout;
    for (flag, default) in [
        ("--max-message-size", "[default: 64KiB]"),
        ("--max-connections", "[default: "),
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

/// Limits that make no sense (a zero size or count, an idle timeout the pings cannot keep alive)
/// stop the program at startup with an error naming the flag, not a panic and not a server that
/// drops every client; the smallest sensible values are accepted.
async fn nonsensical_limits_are_refused_at_startup(target: Target) {
    let smallest = [
        "--max-message-size",
        "1",
        "--max-connections",
        "1",
        "--ping-interval",
        "1s",
        "--idle-timeout",
        "2s",
    ];
    let server = ServerProcess::start(bin(&target), &smallest).await;
    assert_healthy_alone(server.addr).await;
    assert_no_panic(&server);

    for (flags, named) in [
        (&["--max-message-size", "0"][..], "--max-message-size"),
        (&["--max-message-size", "lots"][..], "--max-message-size"),
        (&["--max-connections", "0"][..], "--max-connections"),
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
