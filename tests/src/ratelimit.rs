//! Stage 10: limits. A client may send so many messages a second (`--rate-limit`, with a burst,
//! `--rate-burst`): what goes over is dropped, its sender is told once, and one that keeps at it
//! for `--rate-limit-grace` is closed with 1008 (a terminal client gets a line and is hung up
//! on). One address may hold so many connections (`--max-connections-per-ip`): one more gets
//! HTTP 429, whether it is a browser or a terminal, and nobody else notices.
//!
//! Every server here sets the limits it is about in its own flags, small, since every client of
//! a test comes from 127.0.0.1; they come after the base flags that lift the limits for the
//! suites of earlier chapters, and win.

use std::time::Duration;

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

use crate::{
    Client, TestServer, WAIT,
    chat::{ChatClient, field},
    faults::{Frame, RawClient},
    health::{assert_no_panic, bin, expect_connections},
    process, scenarios,
    tcp::{self, LineClient},
    wait_until, ws_url,
};

pub const SCENARIOS: &[crate::Scenario] = scenarios![
    a_burst_passes_and_what_goes_over_is_dropped_with_one_warning,
    the_sender_is_warned_again_only_after_calming_down,
    a_client_that_keeps_flooding_is_closed_with_1008,
    a_flood_does_not_hold_back_the_others,
    with_the_rate_limit_off_a_burst_goes_through_whole,
    @binary a_terminal_that_keeps_flooding_gets_a_line_and_is_disconnected,
    connections_beyond_the_per_address_limit_are_refused_with_429_until_one_leaves,
    every_way_of_leaving_gives_the_address_its_place_back,
    @binary terminal_clients_count_against_the_per_address_limit,
    @binary help_lists_the_limits_with_their_defaults,
    @binary nonsensical_limits_are_refused_at_startup,
];

/// One token a second and a burst of 5, with a grace too long to end any of these scenarios: in
/// the few milliseconds a test takes to send, exactly the burst passes.
const SLOW: &[&str] = &[
    "--rate-limit",
    "1",
    "--rate-burst",
    "5",
    "--rate-limit-grace",
    "1h",
];

/// The next message, which must be the rate limit's warning; returns its text.
async fn expect_warning(client: &mut ChatClient) -> String {
    let warning = client.expect_error().await;
    assert!(
        warning.contains("messages a second"),
        "{}: the error should say what the limit is: {warning:?}",
        client.label()
    );
    warning
}

/// With `--rate-burst 5`, a client that sends 20 messages at once has the first 5 delivered, in
/// order, and the other 15 dropped; it is told so by exactly one error message, not fifteen.
async fn a_burst_passes_and_what_goes_over_is_dropped_with_one_warning(target: crate::Target) {
    let server = TestServer::start_with(target, SLOW).await;
    let mut bob = ChatClient::connect(&server, "bob").await;
    let mut alice = ChatClient::connect(&server, "alice").await;
    bob.expect_past_notices("joined").await;
    for n in 0..20 {
        alice.send(&format!("m{n}")).await;
    }
    let from = alice.name.clone();
    for n in 0..5 {
        bob.expect_chat(&from, &format!("m{n}")).await;
    }
    bob.expect_quiet().await;
    expect_warning(&mut alice).await;
    alice.expect_quiet().await;
}

/// A client warned once is not warned again while it keeps sending too fast, but is once it has
/// calmed down (a second with nothing dropped) and floods again.
async fn the_sender_is_warned_again_only_after_calming_down(target: crate::Target) {
    let server = TestServer::start_with(target, SLOW).await;
    let mut alice = ChatClient::connect(&server, "alice").await;
    for n in 0..10 {
        alice.send(&format!("first flood {n}")).await;
    }
    expect_warning(&mut alice).await;
    for n in 0..10 {
        alice.send(&format!("same flood {n}")).await;
    }
    alice.expect_quiet().await;
    // Time itself is what this is about: there is no signal to wait for. A second and a half
    // with nothing sent is a calm second, and brings back a token.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for n in 0..10 {
        alice.send(&format!("second flood {n}")).await;
    }
    expect_warning(&mut alice).await;
    alice.expect_quiet().await;
}

/// A client that goes on sending over the limit for `--rate-limit-grace` (here 500 ms) is closed
/// with 1008 (policy violation) and a reason, after one warning.
async fn a_client_that_keeps_flooding_is_closed_with_1008(target: crate::Target) {
    let flags = [
        "--rate-limit",
        "5",
        "--rate-burst",
        "5",
        "--rate-limit-grace",
        "500ms",
    ];
    let server = TestServer::start_with(target, &flags).await;
    let mut mallory = Client::connect(&server.ws_url(), "mallory").await;
    let started = tokio::time::Instant::now();
    let mut warnings = 0;
    // Sends a message every 10 ms, reading what comes back in between, until the server closes.
    let ending = loop {
        assert!(
            started.elapsed() < WAIT,
            "mallory flooded for {WAIT:?} and is still connected"
        );
        // Fails once the server has closed: the loop then reads the Close below.
        let _ = mallory.stream().send(Message::text("flood")).await;
        let read = tokio::time::timeout(Duration::from_millis(10), async {
            use futures_util::StreamExt;
            mallory.stream().next().await
        })
        .await;
        match read {
            Err(_) => {}
            Ok(Some(Ok(Message::Text(text)))) => {
                if text.as_str().contains("\"kind\":\"error\"") {
                    warnings += 1;
                }
            }
            Ok(Some(Ok(Message::Close(frame)))) => break frame,
            Ok(Some(Ok(_))) => {}
            Ok(other) => panic!("mallory: expected a Close frame, the connection ended: {other:?}"),
        }
    };
    let frame = ending.expect("the Close frame should carry a code");
    assert_eq!(
        u16::from(frame.code),
        1008,
        "a flood past the grace is a policy violation"
    );
    assert!(
        frame.reason.contains("too many messages"),
        "the Close should say why: {:?}",
        frame.reason
    );
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "closed after {:?}, before the grace was over",
        started.elapsed()
    );
    assert_eq!(
        warnings, 1,
        "one warning before the close, not one per message"
    );
}

/// While one client floods (and is then closed), another client's messages all go through, and
/// a third hears them: the limit is per client.
async fn a_flood_does_not_hold_back_the_others(target: crate::Target) {
    let server = TestServer::start_with(target, SLOW).await;
    let [mut alice, mut bob, mut mallory] =
        ChatClient::everyone(&server, ["alice", "bob", "mallory"]).await;
    for n in 0..50 {
        mallory.send(&format!("flood {n}")).await;
    }
    expect_warning(&mut mallory).await;
    // alice used one token for /nick: four are left for her.
    for n in 0..4 {
        alice.send(&format!("alice {n}")).await;
    }
    for n in 0..4 {
        // bob sees mallory's burst first (her /nick took one token, so four of it), then alice.
        loop {
            let message = bob.expect("chat").await;
            if field(&message, "from") == "mallory" {
                continue;
            }
            assert_eq!(
                (field(&message, "from"), field(&message, "text")),
                ("alice", format!("alice {n}").as_str()),
                "bob: alice's messages, all of them, in order"
            );
            break;
        }
    }
}

/// With `--rate-limit off`, a burst of 500 messages reaches the others whole and in order.
async fn with_the_rate_limit_off_a_burst_goes_through_whole(target: crate::Target) {
    let server = TestServer::start_with(target, &["--rate-limit", "off"]).await;
    let mut alice = Client::connect(&server.ws_url(), "alice").await;
    let mut bob = Client::connect(&server.ws_url(), "bob").await;
    for n in 0..500 {
        alice.send_text(&format!("{n}")).await;
    }
    for n in 0..500 {
        bob.expect_text(&format!("{n}")).await;
    }
}

/// A terminal client that floods gets one error line saying so, and once it has kept at it for
/// the grace, a last error line and the end of the connection; a browser in the room is served
/// throughout.
async fn a_terminal_that_keeps_flooding_gets_a_line_and_is_disconnected(target: crate::Target) {
    let flags = [
        "--rate-limit",
        "5",
        "--rate-burst",
        "5",
        "--rate-limit-grace",
        "500ms",
    ];
    let (server, addr) = tcp::start(&target, &flags).await;
    let url = ws_url(server.addr);
    let mut tom = LineClient::connect_welcomed(addr, "tom").await;
    // A line every 10 ms, reading what comes back in between, until the server's last line (or
    // the end of the connection): a client that went on sending into a closed connection would
    // have it reset, and might never read the lines the server sent before.
    let started = tokio::time::Instant::now();
    let mut lines = Vec::new();
    loop {
        assert!(
            started.elapsed() < WAIT,
            "tom flooded for {WAIT:?} and is still connected; read {lines:?}"
        );
        if tom.try_send("flood").await.is_err() {
            lines.extend(tom.expect_end().await);
            break;
        }
        match tom.next_within(Duration::from_millis(10)).await {
            None => {}
            Some(Some(line)) => {
                let last = line.contains("disconnecting");
                lines.push(line);
                if last {
                    lines.extend(tom.expect_end().await);
                    break;
                }
            }
            Some(None) => break,
        }
    }
    let errors: Vec<&String> = lines.iter().filter(|line| line.starts_with("! ")).collect();
    assert!(
        matches!(errors.as_slice(), [warning, last]
            if warning.contains("messages a second") && last.contains("disconnecting")),
        "tom: one warning, then a last line, then the end: {lines:?}"
    );
    // Meanwhile a browser is served as ever.
    let mut alice = Client::connect(&url, "alice").await;
    let mut bob = Client::connect(&url, "bob").await;
    alice.send_text("still here").await;
    bob.expect_text("still here").await;
    assert_no_panic(&server);
}

// ANCHOR: per_ip
/// With `--max-connections-per-ip 2`, a third handshake from the same address is refused with
/// `429 Too Many Requests` and a plain-text reason; the two connected are not disturbed; once
/// one leaves, a new one gets in.
async fn connections_beyond_the_per_address_limit_are_refused_with_429_until_one_leaves(
    target: crate::Target,
) {
    let server = TestServer::start_with(target, &["--max-connections-per-ip", "2"]).await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    match RawClient::try_connect(server.addr, "carol").await {
        Err(refusal) => {
            assert_eq!(
                refusal.status, 429,
                "the third client should get 429:\n{}",
                refusal.head
            );
            assert!(
                refusal.head.to_ascii_lowercase().contains("text/plain"),
                "the refusal should be plain text:\n{}",
                refusal.head
            );
            assert!(
                refusal.body.contains('2'),
                "the refusal should say what the limit is: {:?}",
                refusal.body
            );
        }
        Ok(_) => panic!(
            "a third client from one address should be refused with --max-connections-per-ip 2"
        ),
    }
    alice.send_text("two of us").await;
    bob.expect_text("two of us").await;

    alice.send_close(1000, "making room").await;
    let _ = alice.expect_end().await;
    // The place frees up when the server has finished with alice's connection, on its own time.
    let url = server.ws_url();
    let mut carol = wait_until(WAIT, || Client::try_connect(&url, "carol"), Result::is_ok)
        .await
        .unwrap_or_else(|last| last)
        .unwrap_or_else(|err| {
            panic!("alice left, yet carol is still refused after {WAIT:?}: {err}")
        });
    bob.send_text("welcome, carol").await;
    carol.expect_text("welcome, carol").await;
}
// ANCHOR_END: per_ip

/// With `--max-connections-per-ip 1`, the address's one place comes back however its connection
/// ends: a polite Close, a dropped socket, a reset, a protocol violation the server closes with
/// 1002. After each, a new client from the address gets in.
async fn every_way_of_leaving_gives_the_address_its_place_back(target: crate::Target) {
    let server = TestServer::start_with(target, &["--max-connections-per-ip", "1"]).await;
    let url = server.ws_url();
    let ways = [
        "a polite Close",
        "a dropped socket",
        "a reset",
        "a protocol violation",
    ];
    for way in ways {
        // Whoever had the place before has left: wait until it is free again.
        let mut next = wait_until(
            WAIT,
            || RawClient::try_connect(server.addr, way),
            Result::is_ok,
        )
        .await
        .unwrap_or_else(|last| last)
        .unwrap_or_else(|refusal| {
            panic!(
                "before {way}: the address's place was not given back within {WAIT:?} ({})",
                refusal.status
            )
        });
        match RawClient::try_connect(server.addr, "one too many").await {
            Err(refusal) => assert_eq!(refusal.status, 429, "{way}: the place is taken"),
            Ok(_) => panic!("{way}: a second client got in with --max-connections-per-ip 1"),
        }
        match way {
            "a polite Close" => {
                next.send(&Frame::close(1000)).await;
                let _ = next.expect_end().await;
            }
            "a dropped socket" => drop(next),
            "a reset" => next.reset(),
            _ => {
                next.send(&Frame::text("hi").unmasked()).await;
                next.expect_close_code_or_gone(1002).await;
            }
        }
    }
    let last = wait_until(WAIT, || Client::try_connect(&url, "last"), Result::is_ok).await;
    assert!(
        last.is_ok(),
        "after a protocol violation, the address's place was not given back within {WAIT:?}"
    );
}

/// Terminal clients and browsers from one address share its places: with
/// `--max-connections-per-ip 2`, a browser and a terminal fill them, a third browser gets 429 and
/// a third terminal one error line and the end of its connection; when the terminal leaves, a
/// browser gets in.
async fn terminal_clients_count_against_the_per_address_limit(target: crate::Target) {
    let (server, addr) = tcp::start(&target, &["--max-connections-per-ip", "2"]).await;
    let url = ws_url(server.addr);
    let _alice = Client::connect(&url, "alice").await;
    let tom = LineClient::connect_welcomed(addr, "tom").await;
    match RawClient::try_connect(server.addr, "carol").await {
        Err(refusal) => assert_eq!(refusal.status, 429, "carol: {}", refusal.head),
        Ok(_) => panic!("carol: a browser and a terminal already hold the address's 2 places"),
    }
    let mut tim = LineClient::connect(addr, "tim").await;
    let lines = tim.expect_end().await;
    assert!(
        matches!(lines.as_slice(), [line] if line.starts_with("! ") && line.contains('2')),
        "tim: one line saying the limit, then the end: {lines:?}"
    );
    drop(tom);
    expect_connections(server.addr, 1, "tom left").await;
    let carol = wait_until(WAIT, || Client::try_connect(&url, "carol"), Result::is_ok).await;
    assert!(
        carol.is_ok(),
        "tom left, yet carol is still refused after {WAIT:?}"
    );
    assert_no_panic(&server);
}

/// `--help` lists the new limits with their defaults.
async fn help_lists_the_limits_with_their_defaults(target: crate::Target) {
    for (flag, default) in [
        // (`help_line` finds the first line that starts with the flag: --rate-limit's own.)
        ("--rate-limit", "[default: 10]"),
        ("--rate-burst", "[default: 20]"),
        ("--rate-limit-grace", "[default: 10s]"),
        ("--max-connections-per-ip", "[default: 32]"),
    ] {
        let line = process::help_line(bin(&target), flag).await;
        assert!(
            line.contains(default),
            "--help should give {flag} its default ({default:?}):\n{line}"
        );
    }
    let line = process::help_line(bin(&target), "--allow-origin").await;
    assert!(line.contains("repeatable"), "--allow-origin: {line}");
}

/// Limits that make no sense (zero, a rate beyond reason, a zero grace, a malformed origin) stop
/// the program at startup with one line naming the flag; `off` and the smallest values start.
async fn nonsensical_limits_are_refused_at_startup(target: crate::Target) {
    let smallest = [
        "--rate-limit",
        "1",
        "--rate-burst",
        "1",
        "--rate-limit-grace",
        "1ms",
        "--max-connections-per-ip",
        "1",
    ];
    let server = crate::ServerProcess::start(bin(&target), &smallest).await;
    crate::health::assert_healthy_alone(server.addr).await;
    drop(server);
    let off = ["--rate-limit", "off", "--max-connections-per-ip", "off"];
    let server = crate::ServerProcess::start(bin(&target), &off).await;
    crate::health::assert_healthy(server.addr, "limits off").await;
    drop(server);

    for (flags, named) in [
        (&["--rate-limit", "0"][..], "--rate-limit"),
        (&["--rate-limit", "1000000"][..], "--rate-limit"),
        (&["--rate-limit", "fast"][..], "--rate-limit"),
        (&["--rate-burst", "0"][..], "--rate-burst"),
        (&["--rate-limit-grace", "0s"][..], "--rate-limit-grace"),
        (&["--rate-limit-grace", "25h"][..], "--rate-limit-grace"),
        (
            &["--max-connections-per-ip", "0"][..],
            "--max-connections-per-ip",
        ),
        (&["--allow-origin", "localhost:8080"][..], "--allow-origin"),
        (
            &["--allow-origin", "http://localhost:8080/chat"][..],
            "--allow-origin",
        ),
    ] {
        let mut args = vec!["--addr", "127.0.0.1:0"];
        args.extend_from_slice(flags);
        process::assert_flag_refused(bin(&target), &args, named).await;
    }
}
