//! Stage 06: what a stranger may send.
//!
//! Every scenario here plays one peer that sends what it should not, most of them with the
//! raw-socket fault injector of [`crate::faults`]: one that resets mid-frame, one that sends
//! garbage, invalid UTF-8, too much, or one connection too many. Each checks the one answer the
//! server owes that peer (a close code, an HTTP refusal, a cut connection) and that everybody else
//! is served as before. The scenarios that run the binary also read its `/proc` entries (open
//! files, resident memory) and check that stderr never shows a panic.
//!
//! The message limit is set small here (1 KiB) so that going over it is quick; the defaults are
//! checked through `--help` and one scenario at the real 64 KiB limit.

use crate::{
    Client, ServerProcess, Target, TestServer, WAIT,
    client::{Ending, relayed_text},
    faults::{self, Frame, RawClient, RawEnding, eventually, opcode},
    health::{
        assert_healthy, assert_healthy_alone, assert_no_panic, bin, expect_connections, stat,
    },
    process, scenarios, ws_url,
};

pub const SCENARIOS: &[crate::Scenario] = scenarios![
    @binary a_reset_in_the_middle_of_a_frame_leaves_the_server_healthy,
    garbage_after_the_upgrade_ends_that_connection_only,
    every_protocol_violation_is_closed_with_1002,
    invalid_utf8_is_closed_with_1007_and_never_forwarded,
    a_message_over_the_limit_is_closed_with_1009_and_never_forwarded,
    a_fragmented_message_over_the_limit_is_closed_with_1009,
    the_default_message_limit_is_64_kib,
    @binary a_frame_claiming_a_huge_length_is_refused_without_allocating_it,
    connections_beyond_the_limit_are_refused_with_503_until_one_leaves,
    @binary a_thousand_connections_later_nothing_is_left_open,
    @binary help_lists_every_limit_with_its_default,
    @binary nonsensical_limits_are_refused_at_startup,
];

/// A small message limit, so that going over it takes a kilobyte, not the default's 64 KiB.
const SMALL_LIMIT: &str = "1KiB";
const SMALL_LIMIT_BYTES: usize = 1024;

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
    let mut carol = crate::wait_until(
        WAIT,
        || RawClient::try_connect(server.addr, "carol"),
        Result::is_ok,
    )
    .await
    .unwrap_or_else(|last| last)
    .unwrap_or_else(|refusal| {
        panic!(
            "alice left, yet carol is still refused after {WAIT:?}: {}",
            refusal.status
        )
    });
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

/// `--help` lists every limit with its default, so an operator can see what protects the server
/// without reading the code.
async fn help_lists_every_limit_with_its_default(target: Target) {
    let help = process::run_to_end(bin(&target), &["--help"]).await.stdout;
    for (flag, default) in [
        ("--max-message-size", "[default: 64KiB]"),
        ("--max-connections", "[default: "),
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

/// Limits that make no sense (a zero size or count) stop the program at startup with an error
/// naming the flag, not a panic and not a server that refuses every client; the smallest sensible
/// values are accepted.
async fn nonsensical_limits_are_refused_at_startup(target: Target) {
    let smallest = ["--max-message-size", "1", "--max-connections", "1"];
    let server = ServerProcess::start(bin(&target), &smallest).await;
    assert_healthy_alone(server.addr).await;
    assert_no_panic(&server);

    for (flags, named) in [
        (&["--max-message-size", "0"][..], "--max-message-size"),
        (&["--max-message-size", "lots"][..], "--max-message-size"),
        (&["--max-connections", "0"][..], "--max-connections"),
        (&["--ping-interval", "25h"][..], "--ping-interval"),
    ] {
        let mut args = vec!["--addr", "127.0.0.1:0"];
        args.extend_from_slice(flags);
        process::assert_flag_refused(bin(&target), &args, named).await;
    }
}
