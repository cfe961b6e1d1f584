//! Stage 10: `GET /metrics`. The server shows what it counts in the Prometheus text format
//! (version 0.0.4), every name starting with `fanout_`: connections by transport, messages in,
//! deliveries, drops, disconnects and refusals by reason, rate-limited messages, rooms, the
//! broker's queue and latency, and the history database's writes and failures. Each server counts
//! its own: several in one process do not mix. `/stats` and `/metrics` read the same counts.
//!
//! The counts change on the server's own time (a client's departure, a database write), with no
//! signal a test could wait on: each scenario asks `/metrics` again until the count it expects
//! shows, within [`WAIT`].

use std::{net::SocketAddr, time::Duration};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::{
    Client, ServerProcess, Target, TestServer, WAIT, chat::ChatClient, faults::RawClient, http,
    scenarios, tcp::LineClient, wait_until,
};

pub const SCENARIOS: &[crate::Scenario] = scenarios![
    metrics_is_the_prometheus_text_format,
    every_family_is_there_from_the_start,
    a_websocket_client_counts_as_a_ws_connection_until_it_leaves,
    @binary a_terminal_client_counts_as_a_tcp_connection,
    messages_in_and_deliveries_count_exactly_what_was_said,
    messages_over_the_rate_limit_are_counted,
    a_foreign_origin_is_counted_as_refused_for_origin,
    a_client_over_the_per_address_limit_is_counted_as_refused_per_ip,
    a_client_over_the_total_is_counted_as_refused_total,
    a_message_too_big_is_counted_as_a_too_big_disconnect,
    quit_is_counted_as_a_quit_disconnect,
    a_silent_client_is_counted_as_a_timeout,
    @binary a_silent_terminal_is_counted_as_a_timeout,
    a_client_that_keeps_flooding_is_counted_as_a_rate_limited_disconnect,
    messages_a_slow_client_misses_are_counted_as_queue_full,
    the_rooms_gauge_follows_joins_and_leaves,
    a_history_write_is_counted_and_timed,
    a_database_that_fails_is_counted,
    the_broker_event_latency_counts_every_event,
    stats_and_metrics_agree,
    two_servers_in_one_process_count_apart,
];

/// The content type of the Prometheus text format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4";

/// One sample of a scrape: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    /// Its labels, sorted by name.
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// A scrape of `/metrics`, parsed.
#[derive(Debug, Clone)]
pub struct Scrape {
    pub samples: Vec<Sample>,
    /// Each family's `# TYPE` (`counter`, `gauge`, `histogram`, ...), by name.
    pub types: Vec<(String, String)>,
    /// The text as it came, for failure messages.
    pub text: String,
}

impl Scrape {
    /// The value of `name` with exactly `labels`; `None` if there is no such sample.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut wanted: Vec<(String, String)> = labels
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        wanted.sort();
        self.samples
            .iter()
            .find(|sample| sample.name == name && sample.labels == wanted)
            .map(|sample| sample.value)
    }

    /// [`get`](Self::get), as a count; fails naming what is missing.
    pub fn count(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let value = self
            .get(name, labels)
            .unwrap_or_else(|| panic!("/metrics should have {name}{labels:?}:\n{}", self.text));
        assert!(
            value >= 0.0 && value.fract() == 0.0,
            "{name}{labels:?} should be a count, is {value}"
        );
        value as u64
    }

    /// The samples of `name` whatever their labels, added up (a family's total).
    pub fn total(&self, name: &str) -> u64 {
        self.samples
            .iter()
            .filter(|sample| sample.name == name)
            .map(|sample| sample.value as u64)
            .sum()
    }

    /// The `# TYPE` of family `name`.
    pub fn type_of(&self, name: &str) -> Option<&str> {
        self.types
            .iter()
            .find(|(family, _)| family == name)
            .map(|(_, kind)| kind.as_str())
    }
}

/// Whether `name` is a valid metric or label name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_' || first == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses the labels between `{` and `}`: `key="value",...`, values with `\\`, `\"` and `\n`
/// escaped.
fn parse_labels(mut rest: &str, line: &str) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("a label without =\"value\" in {line:?}"));
        assert!(is_name(key), "{key:?} is no label name, in {line:?}");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    other => panic!("a bad escape {other:?} in {line:?}"),
                },
                Some((at, '"')) => break at,
                Some((_, c)) => value.push(c),
                None => panic!("an unterminated label value in {line:?}"),
            }
        };
        labels.push((key.to_string(), value));
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    labels.sort();
    labels
}

/// Parses the Prometheus text format, failing on any line that is not in it: comments (`# HELP`,
/// `# TYPE`), blank lines, and samples `name{labels} value` of a family whose TYPE came first.
pub fn parse(text: &str) -> Scrape {
    let mut samples = Vec::new();
    let mut types: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix("# ") {
            if let Some(declared) = comment.strip_prefix("TYPE ") {
                let (name, kind) = declared
                    .split_once(' ')
                    .unwrap_or_else(|| panic!("a TYPE without a type: {line:?}"));
                assert!(is_name(name), "{name:?} is no metric name: {line:?}");
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                    "{kind:?} is no metric type: {line:?}"
                );
                types.push((name.to_string(), kind.to_string()));
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("a sample without a value: {line:?}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            other => other
                .parse()
                .unwrap_or_else(|_| panic!("{other:?} is no number: {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let inner = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("labels without a closing brace: {line:?}"));
                (name, parse_labels(inner, line))
            }
            None => (series, Vec::new()),
        };
        assert!(is_name(name), "{name:?} is no metric name: {line:?}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                let base = name.strip_suffix(suffix)?;
                types
                    .iter()
                    .any(|(family, kind)| family == base && kind == "histogram")
                    .then_some(base)
            })
            .unwrap_or(name);
        assert!(
            types.iter().any(|(declared, _)| declared == family),
            "{name} comes before its family's TYPE line"
        );
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    Scrape {
        samples,
        types,
        text: text.to_string(),
    }
}

/// `GET /metrics`, checked (200, the text format's content type) and parsed.
pub async fn scrape(addr: SocketAddr) -> Scrape {
    let response = http::get(addr, "/metrics").await;
    assert_eq!(
        response.status, 200,
        "GET /metrics should succeed: {response:?}"
    );
    let content_type = response.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with(TEXT_FORMAT),
        "GET /metrics should say it is the text format ({TEXT_FORMAT}), says {content_type:?}"
    );
    parse(&response.body)
}

/// Asks `/metrics` until `name{labels}` satisfies `done` (within [`WAIT`]); returns that scrape.
async fn wait_for(
    addr: SocketAddr,
    name: &str,
    labels: &[(&str, &str)],
    what: &str,
    done: impl Fn(u64) -> bool,
) -> Scrape {
    wait_until(
        WAIT,
        || scrape(addr),
        |scrape| done(scrape.count(name, labels)),
    )
    .await
    .unwrap_or_else(|scrape| {
        panic!(
            "{name}{labels:?} should be {what} within {WAIT:?}, is {}:\n{}",
            scrape.count(name, labels),
            scrape.text
        )
    })
}

/// [`wait_for`] a count of exactly `expected`.
async fn wait_for_count(
    addr: SocketAddr,
    name: &str,
    labels: &[(&str, &str)],
    expected: u64,
) -> Scrape {
    wait_for(addr, name, labels, &expected.to_string(), |n| n == expected).await
}

/// The families `/metrics` must show, with their types.
const FAMILIES: &[(&str, &str)] = &[
    ("fanout_connections", "gauge"),
    ("fanout_connections_accepted_total", "counter"),
    ("fanout_messages_in_total", "counter"),
    ("fanout_deliveries_total", "counter"),
    ("fanout_dropped_total", "counter"),
    ("fanout_disconnects_total", "counter"),
    ("fanout_rate_limited_total", "counter"),
    ("fanout_refused_total", "counter"),
    ("fanout_broker_queue_depth", "gauge"),
    ("fanout_broker_event_seconds", "histogram"),
    ("fanout_rooms", "gauge"),
    ("fanout_history_dropped_total", "counter"),
    ("fanout_history_written_total", "counter"),
    ("fanout_db_failures_total", "counter"),
    ("fanout_db_write_seconds", "histogram"),
];

/// `GET /metrics` answers 200 in the Prometheus text format (its content type says so, and every
/// line parses as it), and names every metric `fanout_...`.
async fn metrics_is_the_prometheus_text_format(target: Target) {
    let server = TestServer::start(target).await;
    let scrape = scrape(server.addr).await;
    assert!(!scrape.samples.is_empty(), "no samples:\n{}", scrape.text);
    for sample in &scrape.samples {
        assert!(
            sample.name.starts_with("fanout_"),
            "{} should start with fanout_",
            sample.name
        );
    }
}

/// On a fresh server every family is there with its type, each labelled series at 0 (a zero is
/// shown, not left out), the lobby counts as one room, and nobody is connected.
async fn every_family_is_there_from_the_start(target: Target) {
    let server = TestServer::start(target).await;
    let scrape = scrape(server.addr).await;
    for (family, kind) in FAMILIES {
        assert_eq!(
            scrape.type_of(family),
            Some(*kind),
            "{family} should be a {kind}:\n{}",
            scrape.text
        );
    }
    for transport in ["ws", "tcp"] {
        assert_eq!(
            scrape.count("fanout_connections", &[("transport", transport)]),
            0
        );
    }
    for reason in ["per_ip", "origin", "total"] {
        assert_eq!(
            scrape.count("fanout_refused_total", &[("reason", reason)]),
            0
        );
    }
    for reason in ["closed", "timeout", "too_big", "rate_limited", "shutdown"] {
        assert_eq!(
            scrape.count("fanout_disconnects_total", &[("reason", reason)]),
            0
        );
    }
    assert_eq!(scrape.count("fanout_messages_in_total", &[]), 0);
    assert_eq!(
        scrape.count("fanout_rooms", &[]),
        1,
        "the lobby is always there"
    );
}

/// A WebSocket client shows in `fanout_connections{transport="ws"}` and in the accepted count
/// while it is connected, not as a terminal; once it closes, the gauge goes back to 0 and the
/// disconnect is counted as `closed`.
async fn a_websocket_client_counts_as_a_ws_connection_until_it_leaves(target: Target) {
    let server = TestServer::start(target).await;
    let mut alice = server.client("alice").await;
    let scrape = wait_for_count(server.addr, "fanout_connections", &[("transport", "ws")], 1).await;
    assert_eq!(
        scrape.count("fanout_connections_accepted_total", &[("transport", "ws")]),
        1
    );
    assert_eq!(
        scrape.count("fanout_connections", &[("transport", "tcp")]),
        0
    );
    alice.send_close(1000, "bye").await;
    alice.expect_close_code(1000).await;
    let scrape = wait_for_count(server.addr, "fanout_connections", &[("transport", "ws")], 0).await;
    assert_eq!(
        scrape.count("fanout_disconnects_total", &[("reason", "closed")]),
        1
    );
    assert_eq!(
        scrape.count("fanout_connections_accepted_total", &[("transport", "ws")]),
        1
    );
}

/// A terminal client (`--tcp`) shows in `fanout_connections{transport="tcp"}`, not as a
/// WebSocket.
async fn a_terminal_client_counts_as_a_tcp_connection(target: Target) {
    let bin = target.bin.expect("this scenario needs the binary");
    let mut server = ServerProcess::start(bin, &["--tcp", "127.0.0.1:0"]).await;
    let tcp: SocketAddr = server
        .stdout_line("tcp listening on ")
        .await
        .parse()
        .expect("the TCP address");
    let _terminal = LineClient::connect_welcomed(tcp, "terminal").await;
    let scrape = wait_for_count(
        server.addr,
        "fanout_connections",
        &[("transport", "tcp")],
        1,
    )
    .await;
    assert_eq!(
        scrape.count("fanout_connections_accepted_total", &[("transport", "tcp")]),
        1
    );
    assert_eq!(
        scrape.count("fanout_connections", &[("transport", "ws")]),
        0
    );
}

/// One client says 25 messages and two others receive them all: 25 messages in, 50 deliveries,
/// nothing dropped.
async fn messages_in_and_deliveries_count_exactly_what_was_said(target: Target) {
    const SENT: u64 = 25;
    let server = TestServer::start(target).await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    let mut carol = server.client("carol").await;
    for n in 0..SENT {
        alice.send_text(&format!("message {n}")).await;
    }
    for n in 0..SENT {
        bob.expect_text(&format!("message {n}")).await;
        carol.expect_text(&format!("message {n}")).await;
    }
    // Both have everything: the broker has counted it all.
    let scrape = scrape(server.addr).await;
    assert_eq!(scrape.count("fanout_messages_in_total", &[]), SENT);
    assert_eq!(scrape.count("fanout_deliveries_total", &[]), 2 * SENT);
    assert_eq!(scrape.total("fanout_dropped_total"), 0);
}

/// With a burst of 5 and a slow rate, a client that sends 20 messages at once has 15 of them
/// dropped by its reader: `fanout_rate_limited_total` is 15, and only 5 reached the broker.
async fn messages_over_the_rate_limit_are_counted(target: Target) {
    let flags = [
        "--rate-limit",
        "1",
        "--rate-burst",
        "5",
        "--rate-limit-grace",
        "1h",
    ];
    let server = TestServer::start_with(target, &flags).await;
    let mut alice = ChatClient::connect(&server, "alice").await;
    for n in 0..20 {
        alice.send(&format!("flood {n}")).await;
    }
    let warning = alice.expect_error().await;
    assert!(warning.contains("messages a second"), "{warning}");
    let scrape = wait_for_count(server.addr, "fanout_rate_limited_total", &[], 15).await;
    assert_eq!(scrape.count("fanout_messages_in_total", &[]), 5);
}

/// A handshake from a foreign page, refused with 403, counts as `refused{reason="origin"}` and
/// as nothing else.
async fn a_foreign_origin_is_counted_as_refused_for_origin(target: Target) {
    let server = TestServer::start(target).await;
    let refused = RawClient::try_connect_with_headers(
        server.addr,
        "foreign",
        &[("Origin", "http://evil.example")],
    )
    .await;
    match refused {
        Err(refusal) => assert_eq!(refusal.status, 403, "{}", refusal.head),
        Ok(_) => panic!("a foreign origin should be refused"),
    }
    let scrape = wait_for_count(
        server.addr,
        "fanout_refused_total",
        &[("reason", "origin")],
        1,
    )
    .await;
    assert_eq!(scrape.total("fanout_refused_total"), 1, "{}", scrape.text);
    assert_eq!(
        scrape.count("fanout_connections_accepted_total", &[("transport", "ws")]),
        0
    );
}

/// With `--max-connections-per-ip 1`, a second client from 127.0.0.1 gets 429 and counts as
/// `refused{reason="per_ip"}`.
async fn a_client_over_the_per_address_limit_is_counted_as_refused_per_ip(target: Target) {
    let server = TestServer::start_with(target, &["--max-connections-per-ip", "1"]).await;
    let _alice = server.client("alice").await;
    match RawClient::try_connect(server.addr, "bob").await {
        Err(refusal) => assert_eq!(refusal.status, 429, "{}", refusal.head),
        Ok(_) => panic!("a second client from one address should be refused"),
    }
    let scrape = wait_for_count(
        server.addr,
        "fanout_refused_total",
        &[("reason", "per_ip")],
        1,
    )
    .await;
    assert_eq!(scrape.total("fanout_refused_total"), 1, "{}", scrape.text);
}

/// With `--max-connections 1`, a second client gets 503 and counts as `refused{reason="total"}`,
/// as `/stats` counts it in `refused`.
async fn a_client_over_the_total_is_counted_as_refused_total(target: Target) {
    let server = TestServer::start_with(target, &["--max-connections", "1"]).await;
    let _alice = server.client("alice").await;
    match RawClient::try_connect(server.addr, "bob").await {
        Err(refusal) => assert_eq!(refusal.status, 503, "{}", refusal.head),
        Ok(_) => panic!("a client over --max-connections should be refused"),
    }
    wait_for_count(
        server.addr,
        "fanout_refused_total",
        &[("reason", "total")],
        1,
    )
    .await;
    assert_eq!(stats(server.addr).await["refused"], 1);
}

/// A message over `--max-message-size` closes its sender with 1009, and the disconnect is
/// counted as `too_big`.
async fn a_message_too_big_is_counted_as_a_too_big_disconnect(target: Target) {
    let server = TestServer::start_with(target, &["--max-message-size", "1KiB"]).await;
    let mut alice = server.client("alice").await;
    alice.send_binary(&[1u8; 1025]).await;
    alice.expect_close_code(1009).await;
    let scrape = wait_for_count(
        server.addr,
        "fanout_disconnects_total",
        &[("reason", "too_big")],
        1,
    )
    .await;
    assert_eq!(
        scrape.total("fanout_disconnects_total"),
        1,
        "{}",
        scrape.text
    );
}

/// A client that says `/quit` is counted as a `quit` disconnect, once (its connection's own word
/// that it closed comes after, and is not counted again).
async fn quit_is_counted_as_a_quit_disconnect(target: Target) {
    let server = TestServer::start(target).await;
    let mut alice = ChatClient::connect(&server, "alice").await;
    alice.send("/quit").await;
    alice.client().expect_close_code(1000).await;
    let scrape = wait_for_count(server.addr, "fanout_connections", &[("transport", "ws")], 0).await;
    assert_eq!(
        scrape.count("fanout_disconnects_total", &[("reason", "quit")]),
        1
    );
    assert_eq!(
        scrape.total("fanout_disconnects_total"),
        1,
        "{}",
        scrape.text
    );
}

/// A client that answers no ping is cut off after `--idle-timeout`, and counted as a `timeout`
/// disconnect, as `/stats` counts it in `timed_out`.
async fn a_silent_client_is_counted_as_a_timeout(target: Target) {
    let flags = ["--ping-interval", "100ms", "--idle-timeout", "300ms"];
    let server = TestServer::start_with(target, &flags).await;
    let mut silent = RawClient::connect(server.addr, "silent").await;
    silent.expect_close_code(1001).await;
    let scrape = wait_for_count(
        server.addr,
        "fanout_disconnects_total",
        &[("reason", "timeout")],
        1,
    )
    .await;
    assert_eq!(
        scrape.total("fanout_disconnects_total"),
        1,
        "{}",
        scrape.text
    );
    assert_eq!(stats(server.addr).await["timed_out"], 1);
}

/// A terminal that sends no line for `--idle-timeout` is cut off (after being asked for one), and
/// counted as a `timeout` disconnect, as a browser that stops answering pings is.
async fn a_silent_terminal_is_counted_as_a_timeout(target: Target) {
    let flags = ["--ping-interval", "100ms", "--idle-timeout", "300ms"];
    let (server, tcp) = crate::tcp::start(&target, &flags).await;
    let mut silent = LineClient::connect_welcomed(tcp, "silent").await;
    silent.expect_end().await;
    let scrape = wait_for_count(
        server.addr,
        "fanout_disconnects_total",
        &[("reason", "timeout")],
        1,
    )
    .await;
    assert_eq!(
        scrape.total("fanout_disconnects_total"),
        1,
        "{}",
        scrape.text
    );
    assert_eq!(stats(server.addr).await["timed_out"], 1);
}

/// A client still flooding after `--rate-limit-grace` is closed with 1008, and counted as a
/// `rate_limited` disconnect besides the messages it had dropped.
async fn a_client_that_keeps_flooding_is_counted_as_a_rate_limited_disconnect(target: Target) {
    let flags = [
        "--rate-limit",
        "5",
        "--rate-burst",
        "5",
        "--rate-limit-grace",
        "300ms",
    ];
    let server = TestServer::start_with(target, &flags).await;
    let mut mallory = Client::connect(&server.ws_url(), "mallory").await;
    // A message every 10 ms, reading what comes back in between, until the server closes: far
    // over 5 a second, for longer than the grace. A send fails once the server has closed.
    let started = tokio::time::Instant::now();
    let code = loop {
        assert!(
            started.elapsed() < WAIT,
            "mallory is still connected after {WAIT:?}"
        );
        let _ = mallory.stream().send(Message::text("flood")).await;
        let read = tokio::time::timeout(Duration::from_millis(10), mallory.stream().next()).await;
        match read {
            Ok(Some(Ok(Message::Close(frame)))) => break frame.map(|frame| u16::from(frame.code)),
            Err(_) | Ok(Some(Ok(_))) => {}
            Ok(other) => panic!("mallory: expected a Close frame, the connection ended: {other:?}"),
        }
    };
    assert_eq!(
        code,
        Some(1008),
        "a flood past the grace is closed with 1008"
    );
    let scrape = wait_for_count(
        server.addr,
        "fanout_disconnects_total",
        &[("reason", "rate_limited")],
        1,
    )
    .await;
    assert!(
        scrape.count("fanout_rate_limited_total", &[]) >= 1,
        "{}",
        scrape.text
    );
}

/// A client that reads nothing misses messages once its queue is full: they are counted as
/// `dropped{reason="queue_full"}`, and with what was delivered they add up to every message
/// offered.
async fn messages_a_slow_client_misses_are_counted_as_queue_full(target: Target) {
    use crate::bounded::{CAPACITY, TO_STALL, push};
    let server = TestServer::start_with(target, &["--queue-capacity", &CAPACITY.to_string()]).await;
    let _stalled = server.stalled_client("stalled").await;
    let mut alice = server.client("alice").await;
    let mut healthy = [server.client("bob").await];
    push(&mut alice, &mut healthy, 0..TO_STALL, || {}).await;
    let scrape = scrape(server.addr).await;
    let dropped = scrape.count("fanout_dropped_total", &[("reason", "queue_full")]);
    assert!(dropped > 0, "the stalled client cannot have taken them all");
    assert_eq!(
        dropped + scrape.count("fanout_deliveries_total", &[]),
        2 * TO_STALL,
        "every message was offered to bob and to the stalled client"
    );
}

/// `fanout_rooms` follows the rooms: 1 (the lobby), 2 once a client joins another room, 1 again
/// once it leaves it (an empty room goes).
async fn the_rooms_gauge_follows_joins_and_leaves(target: Target) {
    let server = TestServer::start(target).await;
    let mut alice = ChatClient::connect(&server, "alice").await;
    assert_eq!(scrape(server.addr).await.count("fanout_rooms", &[]), 1);
    alice.join("games").await;
    wait_for_count(server.addr, "fanout_rooms", &[], 2).await;
    alice.send("/leave").await;
    alice.expect_moved("lobby").await;
    wait_for_count(server.addr, "fanout_rooms", &[], 1).await;
}

/// A message said is written to the history's database: `fanout_history_written_total` counts
/// it and `fanout_db_write_seconds` has timed the write, with no failure.
async fn a_history_write_is_counted_and_timed(target: Target) {
    let server = TestServer::start(target).await;
    let [mut alice, mut bob] = ChatClient::everyone(&server, ["alice", "bob"]).await;
    alice.send("keep this").await;
    bob.expect_chat("alice", "keep this").await;
    let scrape = wait_for_count(server.addr, "fanout_history_written_total", &[], 1).await;
    assert!(
        scrape.count("fanout_db_write_seconds_count", &[]) >= 1,
        "the write should be timed:\n{}",
        scrape.text
    );
    assert_eq!(
        scrape.count("fanout_db_write_seconds_bucket", &[("le", "+Inf")]),
        scrape.count("fanout_db_write_seconds_count", &[]),
        "every write is in the +Inf bucket"
    );
    assert_eq!(scrape.count("fanout_db_failures_total", &[]), 0);
}

/// The database fails while the server runs (its directory is removed): the chat goes on, and
/// `fanout_db_failures_total` counts the failures, as `/stats` does.
async fn a_database_that_fails_is_counted(target: Target) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("making the database's directory");
    let db = data.join("history.db");
    let db = db.to_str().expect("a UTF-8 path");
    let server = TestServer::start_with(target, &["--db", db]).await;
    let [mut alice, mut bob] = ChatClient::everyone(&server, ["alice", "bob"]).await;
    std::fs::remove_dir_all(&data).expect("removing the database's directory");
    alice.send("while it is gone").await;
    bob.expect_chat("alice", "while it is gone").await;
    wait_for(
        server.addr,
        "fanout_db_failures_total",
        &[],
        "at least 1",
        |n| n >= 1,
    )
    .await;
    let failures = stats(server.addr).await["history_failures"].as_u64();
    assert!(
        failures.is_some_and(|n| n >= 1),
        "/stats should count them too: {failures:?}"
    );
}

/// Every event the broker handles is timed: after a client joins and says something, the
/// latency histogram has counted at least those two events, every one in its `+Inf` bucket.
async fn the_broker_event_latency_counts_every_event(target: Target) {
    let server = TestServer::start(target).await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    alice.send_text("timed").await;
    bob.expect_text("timed").await;
    let scrape = scrape(server.addr).await;
    let count = scrape.count("fanout_broker_event_seconds_count", &[]);
    assert!(
        count >= 3,
        "two joins and a message are three events, counted {count}"
    );
    assert_eq!(
        scrape.count("fanout_broker_event_seconds_bucket", &[("le", "+Inf")]),
        count
    );
}

/// `GET /stats`, as JSON.
async fn stats(addr: SocketAddr) -> Value {
    let response = http::get(addr, "/stats").await;
    assert_eq!(response.status, 200, "GET /stats should succeed");
    serde_json::from_str(&response.body)
        .unwrap_or_else(|err| panic!("/stats should be JSON ({err}): {:?}", response.body))
}

/// After some traffic (clients come, talk, change rooms, one leaves), `/stats` and `/metrics`
/// say the same: they read the same counts.
async fn stats_and_metrics_agree(target: Target) {
    let server = TestServer::start(target).await;
    let [mut alice, mut bob, carol] =
        ChatClient::everyone(&server, ["alice", "bob", "carol"]).await;
    alice.send("hello").await;
    bob.expect_chat("alice", "hello").await;
    bob.join("games").await;
    drop(carol);
    wait_for_count(server.addr, "fanout_connections", &[("transport", "ws")], 2).await;
    // Nothing is on its way any more: bob's answer comes after everything before it, and the
    // history has written what alice said.
    bob.send("/who").await;
    bob.expect_past_notices("who").await;
    let scrape = wait_for_count(server.addr, "fanout_history_written_total", &[], 1).await;
    let stats = stats(server.addr).await;
    let stat = |name: &str| {
        stats[name]
            .as_u64()
            .unwrap_or_else(|| panic!("/stats should have {name}: {stats}"))
    };
    for (field, metric) in [
        ("connections", scrape.total("fanout_connections")),
        ("rooms", scrape.count("fanout_rooms", &[])),
        ("messages_in", scrape.count("fanout_messages_in_total", &[])),
        ("deliveries", scrape.count("fanout_deliveries_total", &[])),
        ("dropped", scrape.total("fanout_dropped_total")),
        ("disconnected", scrape.total("fanout_disconnects_total")),
        (
            "refused",
            scrape.count("fanout_refused_total", &[("reason", "total")]),
        ),
        (
            "history_dropped",
            scrape.count("fanout_history_dropped_total", &[]),
        ),
        (
            "history_written",
            scrape.count("fanout_history_written_total", &[]),
        ),
        (
            "history_failures",
            scrape.count("fanout_db_failures_total", &[]),
        ),
    ] {
        assert_eq!(
            stat(field),
            metric,
            "/stats {field} and /metrics disagree: {stats}\n{}",
            scrape.text
        );
    }
    assert_eq!(stat("connections"), 2);
    assert_eq!(stat("rooms"), 2);
    assert_eq!(stat("disconnected"), 1);
}

/// Two servers in one process count apart: what one counts, the other's `/metrics` does not
/// show (a registry per server, no global recorder).
async fn two_servers_in_one_process_count_apart(target: Target) {
    let busy = TestServer::start(target).await;
    let quiet = TestServer::start(target).await;
    let mut alice = busy.client("alice").await;
    let mut bob = busy.client("bob").await;
    alice.send_text("only here").await;
    bob.expect_text("only here").await;
    let mut carol = quiet.client("carol").await;
    carol.send_text("only there").await;
    carol.expect_silence().await;
    let busy = scrape(busy.addr).await;
    let quiet = wait_for_count(quiet.addr, "fanout_messages_in_total", &[], 1).await;
    assert_eq!(
        busy.count("fanout_messages_in_total", &[]),
        1,
        "{}",
        busy.text
    );
    assert_eq!(busy.count("fanout_connections", &[("transport", "ws")]), 2);
    assert_eq!(quiet.count("fanout_connections", &[("transport", "ws")]), 1);
}

#[cfg(test)]
mod tests {
    use super::parse;

    /// The parser reads the text format: samples with and without labels, escaped label values,
    /// `+Inf`, and a histogram's `_bucket`, `_sum` and `_count` under its one TYPE.
    #[test]
    fn parses_the_text_format() {
        let text = "# HELP a_total An a.\n# TYPE a_total counter\na_total 3\n\
                    # TYPE g gauge\ng{transport=\"ws\",x=\"q\\\"uote\"} -1\n\
                    # TYPE h histogram\nh_bucket{le=\"0.5\"} 1\nh_bucket{le=\"+Inf\"} 2\n\
                    h_sum 1.5\nh_count 2\n";
        let scrape = parse(text);
        assert_eq!(scrape.get("a_total", &[]), Some(3.0));
        assert_eq!(
            scrape.get("g", &[("x", "q\"uote"), ("transport", "ws")]),
            Some(-1.0)
        );
        assert_eq!(scrape.get("h_bucket", &[("le", "+Inf")]), Some(2.0));
        assert_eq!(scrape.count("h_count", &[]), 2);
        assert_eq!(scrape.type_of("h"), Some("histogram"));
    }

    /// A sample before its family's TYPE, or one that is not a sample, is refused.
    #[test]
    #[should_panic(expected = "before its family's TYPE")]
    fn refuses_a_sample_without_its_type() {
        parse("a_total 1\n");
    }

    #[test]
    #[should_panic(expected = "no number")]
    fn refuses_a_value_that_is_no_number() {
        parse("# TYPE a gauge\na many\n");
    }
}
