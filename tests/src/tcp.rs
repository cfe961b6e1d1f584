//! Stage 09 onwards: plain TCP clients. With `--tcp HOST:PORT` the server also takes line-based
//! clients (`nc`, `telnet`) into the same rooms as the browsers: a line in is a message or a
//! command, and each message comes out as one readable line. Lines are bounded; a line too long
//! or not UTF-8 gets an error line and the connection goes on. A terminal cannot answer a ping,
//! so the idle timeout asks it in words: a client silent for `--idle-timeout` minus
//! `--ping-interval` is asked for a line (an empty one will do), and one silent for the whole
//! `--idle-timeout` is told why and cut off.

use std::{net::SocketAddr, time::Duration};

use nix::sys::signal::Signal;

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{
        TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
};

use crate::{
    QUIET, ServerProcess, Target, WAIT,
    chat::{ChatClient, field},
    faults::eventually,
    http, process, scenarios,
};

pub const SCENARIOS: &[crate::Scenario] = scenarios![
    @binary prints_the_tcp_port_it_listens_on,
    @binary a_terminal_client_is_welcomed_in_lines,
    @binary terminals_and_browsers_chat_in_the_same_room,
    @binary rooms_and_private_messages_work_over_tcp,
    @binary a_line_too_long_is_refused_and_the_connection_goes_on,
    @binary a_line_that_is_not_utf8_is_refused_and_the_connection_goes_on,
    @binary a_terminal_cannot_forge_lines_for_another_terminal,
    @binary terminal_clients_count_against_the_connection_limit,
    @binary quit_closes_a_terminal_connection,
    @binary shutdown_says_goodbye_to_terminals_and_exits_zero,
    @binary a_terminal_that_stops_reading_is_cut_off_and_holds_nobody_back,
    @binary a_silent_terminal_is_asked_for_a_line_then_cut_off,
    @binary an_empty_line_answers_the_question_and_the_client_chats_on,
    @binary an_empty_line_reaches_nobody,
    @binary tcp_is_off_unless_asked_for,
];

/// A plain TCP client that reads and writes lines, every wait bounded.
pub struct LineClient {
    name: String,
    lines: tokio::io::Lines<BufReader<OwnedReadHalf>>,
    writer: OwnedWriteHalf,
    /// Whether it reads the lines replayed from the history (chapter 10 on), which start with
    /// their time, `(12:03) `; by default they are passed over, as on the chat wire.
    history: bool,
}

/// Whether a terminal's line is replayed from the history: it starts with its time, `(HH:MM) `.
/// No live line starts with `(`: what clients say starts with `[room]`, `*` or `!`.
pub fn is_history_line(line: &str) -> bool {
    let bytes = line.as_bytes();
    bytes.len() > 8
        && bytes[0] == b'('
        && bytes[3] == b':'
        && bytes[6..8] == *b") "
        && [1, 2, 4, 5].iter().all(|&i| bytes[i].is_ascii_digit())
}

impl LineClient {
    /// Connects to `addr` (within [`WAIT`]).
    pub async fn connect(addr: SocketAddr, name: &str) -> LineClient {
        let stream = tokio::time::timeout(WAIT, TcpStream::connect(addr))
            .await
            .unwrap_or_else(|_| panic!("{name}: no TCP connection to {addr} within {WAIT:?}"))
            .unwrap_or_else(|err| panic!("{name}: cannot connect to {addr}: {err}"));
        let (reader, writer) = stream.into_split();
        LineClient {
            name: name.to_string(),
            lines: BufReader::new(reader).lines(),
            writer,
            history: false,
        }
    }

    /// Connects and reads the two lines of welcome: who I am and who is there.
    pub async fn connect_welcomed(addr: SocketAddr, name: &str) -> LineClient {
        let mut client = LineClient::connect(addr, name).await;
        client.expect_prefix("* you are guest-").await;
        client.expect_prefix("* in lobby: ").await;
        client
    }

    /// Sends `bytes` as they are.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        let name = &self.name;
        tokio::time::timeout(WAIT, self.writer.write_all(bytes))
            .await
            .unwrap_or_else(|_| panic!("{name}: sending took longer than {WAIT:?}"))
            .unwrap_or_else(|err| panic!("{name}: sending failed: {err}"));
    }

    /// Sends `line` and a newline; `Err` if the server has hung up (for a client that keeps
    /// sending until it is cut off).
    pub async fn try_send(&mut self, line: &str) -> std::io::Result<()> {
        let bytes = format!("{line}\n");
        match tokio::time::timeout(WAIT, self.writer.write_all(bytes.as_bytes())).await {
            Ok(sent) => sent,
            Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
        }
    }

    /// Sends `line` and a newline.
    pub async fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\n").as_bytes()).await;
    }

    /// From now on, this client reads the lines replayed from the history too.
    pub fn read_history(&mut self) {
        self.history = true;
    }

    /// The next line; fails if none comes within [`WAIT`] or the connection ends. Lines from
    /// the history are passed over unless [`read_history`](Self::read_history) was called.
    pub async fn next(&mut self) -> String {
        let name = &self.name;
        loop {
            let line = tokio::time::timeout(WAIT, self.lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("{name}: no line within {WAIT:?}"))
                .unwrap_or_else(|err| panic!("{name}: reading failed: {err}"))
                .unwrap_or_else(|| panic!("{name}: the connection ended"));
            if self.history || !is_history_line(&line) {
                return line;
            }
        }
    }

    /// The next line if one comes within `limit`: `None` if none does, `Some(None)` if the
    /// connection ends (or fails) instead.
    pub async fn next_within(&mut self, limit: std::time::Duration) -> Option<Option<String>> {
        match tokio::time::timeout(limit, self.lines.next_line()).await {
            Err(_) => None,
            Ok(Ok(line)) => Some(line),
            Ok(Err(_)) => Some(None),
        }
    }

    /// The next line must be `expected`.
    pub async fn expect(&mut self, expected: &str) {
        let line = self.next().await;
        assert_eq!(line, expected, "{}: wrong line", self.name);
    }

    /// The next line must start with `prefix`; returns it.
    pub async fn expect_prefix(&mut self, prefix: &str) -> String {
        let line = self.next().await;
        assert!(
            line.starts_with(prefix),
            "{}: expected a line starting {prefix:?}, got {line:?}",
            self.name
        );
        line
    }

    /// No line arrives for [`QUIET`].
    pub async fn expect_quiet(&mut self) {
        if let Ok(line) = tokio::time::timeout(QUIET, self.lines.next_line()).await {
            panic!("{}: expected nothing, got {line:?}", self.name);
        }
    }

    /// Reads until the server closes the connection (within [`WAIT`]); returns the lines read.
    pub async fn expect_end(&mut self) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let next = tokio::time::timeout(WAIT, self.lines.next_line()).await;
            match next {
                Err(_) => panic!(
                    "{}: the connection did not end within {WAIT:?}; read {seen:?}",
                    self.name
                ),
                Ok(Ok(Some(line))) => seen.push(line),
                Ok(Ok(None) | Err(_)) => return seen,
            }
        }
    }
}

/// Starts the binary with `--tcp 127.0.0.1:0` and `flags`; returns it and the TCP address.
pub(crate) async fn start(target: &Target, flags: &[&str]) -> (ServerProcess, SocketAddr) {
    let bin = target
        .bin
        .expect("this scenario needs the chapter's binary");
    let mut all = vec!["--tcp", "127.0.0.1:0"];
    all.extend_from_slice(flags);
    let mut server = ServerProcess::start(bin, &all).await;
    let tcp = server.stdout_line("tcp listening on ").await;
    let addr = tcp
        .parse()
        .unwrap_or_else(|_| panic!("expected IP:PORT after `tcp listening on`, got {tcp:?}"));
    (server, addr)
}

/// `--tcp 127.0.0.1:0` makes the binary print `tcp listening on 127.0.0.1:PORT` with the port it
/// really got, and a client can connect there.
async fn prints_the_tcp_port_it_listens_on(target: Target) {
    let (_server, addr) = start(&target, &[]).await;
    assert_ne!(addr.port(), 0, "the real port, not 0");
    LineClient::connect_welcomed(addr, "nc").await;
}

/// A terminal client is told its guest name and who is in the lobby, in plain lines, and
/// `/help` comes as lines too.
async fn a_terminal_client_is_welcomed_in_lines(target: Target) {
    let (_server, addr) = start(&target, &[]).await;
    let mut nc = LineClient::connect(addr, "nc").await;
    let welcome = nc.expect_prefix("* you are guest-").await;
    assert!(welcome.contains("in lobby"), "{welcome}");
    nc.expect_prefix("* in lobby: guest-").await;
    nc.send("/help").await;
    nc.expect_prefix("* /nick NAME").await;
}

/// A terminal and a browser in the lobby: each hears the other by name, the terminal in the
/// line form `[lobby] alice: hi`, `* alice waves`, `* tom is now ...`.
async fn terminals_and_browsers_chat_in_the_same_room(target: Target) {
    let (server, addr) = start(&target, &[]).await;
    let mut tom = LineClient::connect_welcomed(addr, "tom").await;
    tom.send("/nick tom").await;
    tom.expect("* you are tom, in lobby (/help lists the commands)")
        .await;
    tom.expect("* in lobby: tom").await;
    let mut alice = ChatClient::connect_url(&server.ws_url(), "alice").await;
    alice.nick("alice").await;
    tom.expect_prefix("* guest-").await; // joined
    tom.expect_prefix("* guest-").await; // is now alice
    alice.send("hi tom").await;
    tom.expect("[lobby] alice: hi tom").await;
    alice.send("/me waves").await;
    tom.expect("* alice waves").await;
    tom.send("hello alice").await;
    alice.expect_chat("tom", "hello alice").await;
}

/// Over TCP too: `/join` moves the client (the lobby's browsers hear it left), and a private
/// message from a browser reaches the terminal in another room as `[private] alice: ...`.
async fn rooms_and_private_messages_work_over_tcp(target: Target) {
    let (server, addr) = start(&target, &[]).await;
    let [mut alice] = ChatClient::everyone_url(&server.ws_url(), ["alice"]).await;
    let mut tom = LineClient::connect_welcomed(addr, "tom").await;
    tom.send("/nick tom").await;
    tom.expect("* you are tom, in lobby (/help lists the commands)")
        .await;
    tom.expect("* in lobby: alice, tom").await;
    tom.send("/join games").await;
    tom.expect("* you are tom, in games (/help lists the commands)")
        .await;
    tom.expect("* in games: tom").await;
    let left = alice.expect_past_notices("left").await;
    assert_eq!(
        (field(&left, "name"), field(&left, "room")),
        ("tom", "lobby")
    );
    alice.send("/msg tom psst").await;
    tom.expect("[private] alice: psst").await;
    alice.send("not for games").await;
    tom.expect_quiet().await;
    tom.send("/rooms").await;
    tom.expect("* rooms: games (1), lobby (1)").await;
}

/// With `--max-line-bytes 64`, a line of 200 bytes gets one error line saying the limit, is
/// not passed on, and the next line is a message like any other.
async fn a_line_too_long_is_refused_and_the_connection_goes_on(target: Target) {
    let (server, addr) = start(&target, &["--max-line-bytes", "64"]).await;
    let [mut alice] = ChatClient::everyone_url(&server.ws_url(), ["alice"]).await;
    let mut tom = LineClient::connect_welcomed(addr, "tom").await;
    alice.skip_notices().await;
    tom.send(&"x".repeat(200)).await;
    let error = tom.expect_prefix("! ").await;
    assert!(
        error.contains("64"),
        "the error should say the limit: {error}"
    );
    tom.send("short").await;
    let chat = alice.expect("chat").await;
    assert_eq!(
        field(&chat, "text"),
        "short",
        "the long line reached nobody"
    );
}

/// A line that is not UTF-8 gets one error line, reaches nobody, and the next line is fine.
async fn a_line_that_is_not_utf8_is_refused_and_the_connection_goes_on(target: Target) {
    let (server, addr) = start(&target, &[]).await;
    let [mut alice] = ChatClient::everyone_url(&server.ws_url(), ["alice"]).await;
    let mut tom = LineClient::connect_welcomed(addr, "tom").await;
    alice.skip_notices().await;
    tom.send_raw(b"caf\xe9 latin-1\n").await;
    let error = tom.expect_prefix("! ").await;
    assert!(error.contains("UTF-8"), "{error}");
    tom.send("café").await;
    let chat = alice.expect("chat").await;
    assert_eq!(field(&chat, "text"), "café");
}

/// A browser's message with a newline and an escape sequence in it reaches a terminal as one
/// line with neither: nobody can forge a server line, or repaint somebody's terminal.
async fn a_terminal_cannot_forge_lines_for_another_terminal(target: Target) {
    let (server, addr) = start(&target, &[]).await;
    let [mut alice] = ChatClient::everyone_url(&server.ws_url(), ["alice"]).await;
    let mut tom = LineClient::connect_welcomed(addr, "tom").await;
    alice.skip_notices().await;
    alice.send("hi\n! you have been banned\u{1b}[2J").await;
    let line = tom.expect_prefix("[lobby] alice: hi").await;
    assert!(!line.contains('\u{1b}'), "{line:?}");
    alice.send("next").await;
    tom.expect("[lobby] alice: next").await;
}

/// With `--max-connections 1` and a browser connected, a terminal client gets one line saying
/// the server is full and is closed; `/stats` counts it refused.
async fn terminal_clients_count_against_the_connection_limit(target: Target) {
    let (server, addr) = start(&target, &["--max-connections", "1"]).await;
    let _alice = ChatClient::connect_url(&server.ws_url(), "alice").await;
    let mut tom = LineClient::connect(addr, "tom").await;
    let lines = tom.expect_end().await;
    assert!(
        matches!(lines.as_slice(), [line] if line.starts_with("! ") && line.contains('1')),
        "one line saying the limit, then the end: {lines:?}"
    );
    let stats = http::get(server.addr, "/stats").await;
    assert!(stats.body.contains("\"refused\":1"), "{}", stats.body);
}

/// `/quit` over TCP: a goodbye line, then the server closes the connection, the room hears the
/// client left, and the server finishes with the connection cleanly (its log says so, and
/// shows no panic).
async fn quit_closes_a_terminal_connection(target: Target) {
    let (server, addr) = start(&target, &[]).await;
    let [mut alice] = ChatClient::everyone_url(&server.ws_url(), ["alice"]).await;
    let mut tom = LineClient::connect_welcomed(addr, "tom").await;
    tom.send("/quit").await;
    assert_eq!(tom.expect_end().await, ["* bye"]);
    alice.expect_past_notices("left").await;
    let finished = eventually(WAIT, || {
        server.stderr().contains("terminal client disconnected")
    })
    .await;
    let stderr = server.stderr();
    assert!(finished, "the server should log the disconnect:\n{stderr}");
    assert!(!stderr.contains("panicked"), "no panic, ever:\n{stderr}");
}

/// SIGTERM with a terminal connected, as with a browser: the terminal gets a last line saying the
/// server is closing the connection, then the connection ends, and the process exits 0 within a
/// few seconds, without a panic.
async fn shutdown_says_goodbye_to_terminals_and_exits_zero(target: Target) {
    let (mut server, addr) = start(&target, &[]).await;
    let mut tom = LineClient::connect_welcomed(addr, "tom").await;
    server.signal(Signal::SIGTERM);
    let last = tom.expect_end().await;
    assert!(
        last.last()
            .is_some_and(|line| line.contains("closing this connection")),
        "a terminal should be told the server is closing its connection, got {last:?}"
    );
    let status = server.wait_exit(WAIT).await;
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM should end the process with 0"
    );
    assert!(
        !server.stderr().contains("panicked"),
        "no panic, ever:\n{}",
        server.stderr()
    );
}

/// A terminal client that stops reading (its receive buffer small and full) is cut off after
/// `--write-timeout`, as a browser would be, and `/stats` counts it timed out; meanwhile a
/// browser in the same room receives every one of 8 MiB of messages, in order.
async fn a_terminal_that_stops_reading_is_cut_off_and_holds_nobody_back(target: Target) {
    const SIZE: usize = 16 << 10;
    const COUNT: usize = (8 << 20) / SIZE;
    let (server, addr) = start(&target, &["--write-timeout", "500ms"]).await;
    let [mut alice, mut bob] = ChatClient::everyone_url(&server.ws_url(), ["alice", "bob"]).await;
    let mut stalled = crate::connect_with_receive_buffer(addr, "stalled", 4096).await;
    alice.expect("joined").await;
    bob.expect("joined").await;
    for number in 0..COUNT {
        let text = format!("{number:06}{}", ".".repeat(SIZE - 6));
        alice.send(&text).await;
        // The stalled client's leaving may come in between: a notice, passed over.
        let chat = bob.expect_past_notices("chat").await;
        assert!(
            field(&chat, "text").starts_with(&format!("{number:06}")),
            "bob should receive message {number} in order"
        );
    }
    let timed_out = crate::wait_until(
        WAIT,
        || async { http::get(server.addr, "/stats").await.body },
        |body: &String| body.contains("\"timed_out\":1"),
    )
    .await;
    assert!(
        timed_out.is_ok(),
        "the stalled terminal should be cut off: {timed_out:?}"
    );
    // What it never read is still in its socket; after that, the server has closed it.
    let mut sink = Vec::new();
    let read = tokio::time::timeout(WAIT, stalled.read_to_end(&mut sink)).await;
    assert!(read.is_ok(), "the stalled terminal's connection should end");
}

/// `--ping-interval 200ms --idle-timeout 600ms`: a terminal that sends nothing is asked for a line
/// no sooner than 400 ms after it connected, told the time it has left (200ms); then, silent
/// still, it reads why it is closed (600ms) no sooner than 600 ms, and the connection ends.
/// `/stats` counts it timed out, as a browser that stopped answering pings.
async fn a_silent_terminal_is_asked_for_a_line_then_cut_off(target: Target) {
    let (server, addr) = start(
        &target,
        &["--ping-interval", "200ms", "--idle-timeout", "600ms"],
    )
    .await;
    let connected = tokio::time::Instant::now();
    let mut tom = LineClient::connect_welcomed(addr, "tom").await;
    let question = tom.expect_prefix("! ").await;
    let asked_after = connected.elapsed();
    assert!(
        question.contains("still there") && question.contains("200ms"),
        "the question should ask for a line and say the time left: {question:?}"
    );
    assert!(
        asked_after >= Duration::from_millis(400),
        "asked after {asked_after:?}, before --idle-timeout minus --ping-interval"
    );
    let last = tom.expect_end().await;
    let closed_after = connected.elapsed();
    assert!(
        matches!(last.as_slice(), [line] if line.starts_with("! ") && line.contains("600ms")),
        "one last line saying why, then the end: {last:?}"
    );
    assert!(
        closed_after >= Duration::from_millis(600),
        "closed after {closed_after:?}, before --idle-timeout"
    );
    let timed_out = crate::wait_until(
        WAIT,
        || async { http::get(server.addr, "/stats").await.body },
        |body: &String| body.contains("\"timed_out\":1"),
    )
    .await;
    assert!(
        timed_out.is_ok(),
        "/stats should count it timed out: {timed_out:?}"
    );
}

/// `--ping-interval 1s --idle-timeout 2s`: a terminal asked for a line sends an empty one, and that
/// is enough: the next thing it reads is the same question a full interval later, not the
/// goodbye (the empty line restarted the clock). Then it says something, and a terminal that
/// joined meanwhile reads it.
async fn an_empty_line_answers_the_question_and_the_client_chats_on(target: Target) {
    let (_server, addr) = start(&target, &["--ping-interval", "1s", "--idle-timeout", "2s"]).await;
    let mut tom = LineClient::connect_welcomed(addr, "tom").await;
    tom.send("/nick tom").await;
    tom.expect_prefix("* you are tom").await;
    tom.expect("* in lobby: tom").await;
    let question = tom.expect_prefix("! ").await;
    assert!(question.contains("still there"), "{question:?}");
    tom.send("").await;
    let again = tom.next().await;
    assert_eq!(
        again, question,
        "after an empty line, the question again, not the goodbye"
    );
    let mut ann = LineClient::connect_welcomed(addr, "ann").await;
    tom.expect_prefix("* guest-").await; // joined
    tom.send("still here").await;
    ann.expect("[lobby] tom: still here").await;
}

/// An empty line, or one of spaces and tabs, is taken in silence: neither its sender nor a
/// terminal or a browser in the room reads anything for it. The next thing each reads is what
/// came after it (the order a client's lines are handled in is the order it sent them).
async fn an_empty_line_reaches_nobody(target: Target) {
    let (server, addr) = start(&target, &[]).await;
    let [mut alice] = ChatClient::everyone_url(&server.ws_url(), ["alice"]).await;
    let mut tom = LineClient::connect_welcomed(addr, "tom").await;
    let mut ann = LineClient::connect_welcomed(addr, "ann").await;
    tom.expect_prefix("* guest-").await; // ann joined
    tom.send_raw(b"\n \t \r\n").await;
    tom.send("/rooms").await;
    tom.expect("* rooms: lobby (3)").await;
    tom.send("after").await;
    let heard = ann.expect_prefix("[lobby] guest-").await;
    assert!(
        heard.ends_with(": after"),
        "the blank lines reached nobody: {heard:?}"
    );
    let chat = alice.expect_past_notices("chat").await;
    assert_eq!(
        field(&chat, "text"),
        "after",
        "the blank lines reached nobody"
    );
}

/// Without `--tcp` no TCP port is opened (no `tcp listening on` line), and `--help` describes
/// `--tcp` and `--max-line-bytes`.
async fn tcp_is_off_unless_asked_for(target: Target) {
    let bin = target
        .bin
        .expect("this scenario needs the chapter's binary");
    let mut server = ServerProcess::start(bin, &[]).await;
    let printed = tokio::time::timeout(QUIET, server.stdout_line("tcp listening on ")).await;
    assert!(printed.is_err(), "no TCP listener without --tcp");
    process::help_line(bin, "--tcp").await;
    let line = process::help_line(bin, "--max-line-bytes").await;
    assert!(line.contains("[default: "), "{line}");
}
