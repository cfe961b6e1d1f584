//! The contract every chapter keeps, whatever it teaches: the page at `/`, the WebSocket at
//! `/ws`, the flags, the `listening on` line, logs on stderr, and a clean exit on a signal.

use nix::sys::signal::Signal;
use tokio::net::TcpListener;

use crate::{Client, ServerProcess, Target, TestServer, WAIT, http, process, scenarios};

pub const SCENARIOS: &[crate::Scenario] = scenarios![
    page_is_served_and_names_the_chapter,
    page_is_self_contained,
    plain_http_request_to_ws_is_refused,
    garbage_instead_of_http_is_refused_and_the_server_lives_on,
    @binary prints_the_real_port_it_listens_on,
    @binary help_describes_every_flag,
    @binary unknown_flag_is_a_one_line_error,
    @binary address_in_use_is_a_one_line_error,
    @binary logs_connects_and_disconnects_to_stderr,
    @binary sigterm_exits_with_code_zero,
    @binary sigint_exits_with_code_zero,
    @binary a_signal_right_after_the_listening_line_is_a_clean_exit,
];

fn bin(target: &Target) -> &'static str {
    target
        .bin
        .expect("this scenario needs the chapter's binary")
}

/// `GET /` answers 200 with an HTML page whose header names the chapter serving it and which
/// connects to `/ws`.
async fn page_is_served_and_names_the_chapter(target: Target) {
    let server = TestServer::start(target).await;
    let response = http::get(server.addr, "/").await;
    assert_eq!(response.status, 200, "GET / should succeed");
    let content_type = response.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/html"),
        "GET / should be HTML, got {content_type:?}"
    );
    assert!(
        response.body.contains(target.chapter),
        "the page should name the chapter {:?}",
        target.chapter
    );
    assert!(
        response.body.contains("/ws"),
        "the page should connect to /ws"
    );
}

/// The page loads nothing from elsewhere (no CDN): it works offline.
async fn page_is_self_contained(target: Target) {
    let server = TestServer::start(target).await;
    let body = http::get(server.addr, "/").await.body;
    for needle in [
        "src=\"http",
        "href=\"http",
        "src='http",
        "href='http",
        "@import",
        "<script src",
        "<link rel=\"stylesheet\"",
    ] {
        assert!(
            !body.contains(needle),
            "the page should load nothing from elsewhere, found {needle:?}"
        );
    }
}

/// A plain HTTP GET to `/ws` (no upgrade) gets a 4xx, and the server keeps serving WebSockets.
async fn plain_http_request_to_ws_is_refused(target: Target) {
    let server = TestServer::start(target).await;
    let response = http::get(server.addr, "/ws").await;
    assert!(
        (400..500).contains(&response.status),
        "a plain GET /ws should be a 4xx, got {}",
        response.status
    );
    server.client("after-refusal").await;
}

/// Bytes that are not HTTP get a 400 (or the connection closed), never a crash: the server keeps
/// serving pages and WebSockets afterwards.
async fn garbage_instead_of_http_is_refused_and_the_server_lives_on(target: Target) {
    let server = TestServer::start(target).await;
    let exchange = async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(server.addr)
            .await
            .expect("connecting");
        stream
            .write_all(b"\x16\x03\x01 NOT HTTP AT ALL\r\n\r\n")
            .await
            .expect("writing garbage");
        let mut reply = Vec::new();
        let _ = stream.read_to_end(&mut reply).await;
        reply
    };
    let reply = tokio::time::timeout(WAIT, exchange)
        .await
        .expect("the server should answer or close a garbage connection promptly");
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 4"),
        "garbage should get a 4xx or a closed connection, got {reply:?}"
    );
    assert_eq!(
        http::get(server.addr, "/").await.status,
        200,
        "the server should still serve the page"
    );
    server.client("after-garbage").await;
}

/// With `--addr 127.0.0.1:0` the binary prints `listening on http://127.0.0.1:PORT` with the
/// port it really got, and serves there.
async fn prints_the_real_port_it_listens_on(target: Target) {
    let server = ServerProcess::start(bin(&target), &[]).await;
    assert_ne!(
        server.addr.port(),
        0,
        "the printed port should be the one the OS picked"
    );
    assert!(
        server.addr.ip().is_loopback(),
        "it should listen where --addr said"
    );
    assert_eq!(
        http::get(server.addr, "/").await.status,
        200,
        "the printed address should serve the page"
    );
}

/// `--help` exits 0 and every flag it lists comes with a description.
async fn help_describes_every_flag(target: Target) {
    let run = process::run_to_end(bin(&target), &["--help"]).await;
    assert!(run.status.success(), "--help should exit 0");
    assert!(
        run.stdout.contains("--addr"),
        "--help should list --addr:\n{}",
        run.stdout
    );
    for line in run
        .stdout
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with('-'))
    {
        let described = line
            .split_once("  ")
            .is_some_and(|(_, description)| !description.trim().is_empty());
        assert!(
            described,
            "every flag should be described, this one is not: {line:?}"
        );
    }
}

/// An unknown flag ends the program with one line on stderr that says what is wrong, and exit
/// code 2 (clap's code for a usage mistake), without a panic.
async fn unknown_flag_is_a_one_line_error(target: Target) {
    let run = process::run_to_end(bin(&target), &["--no-such-flag"]).await;
    assert_eq!(
        run.status.code(),
        Some(2),
        "an unknown flag should exit with 2; stderr:\n{}",
        run.stderr
    );
    let line = process::one_line(&run.stderr);
    assert!(
        line.starts_with("error:") && line.contains("--no-such-flag"),
        "the line should be an error naming the flag: {line:?}"
    );
}

/// An address that is already taken gives one line on stderr and exit code 1, no panic.
async fn address_in_use_is_a_one_line_error(target: Target) {
    let taken = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding a port to occupy");
    let addr = taken.local_addr().expect("reading its address").to_string();
    let run = process::run_to_end(bin(&target), &["--addr", &addr]).await;
    assert_eq!(
        run.status.code(),
        Some(1),
        "an address in use should exit with 1; stderr:\n{}",
        run.stderr
    );
    let line = process::one_line(&run.stderr);
    assert!(
        line.contains(&addr),
        "the error should name the address: {line:?}"
    );
}

/// At the default level, a connect and a disconnect each leave a line on stderr; the messages
/// themselves do not.
async fn logs_connects_and_disconnects_to_stderr(target: Target) {
    let server = ServerProcess::start(bin(&target), &[]).await;
    let mut client = Client::connect(&server.ws_url(), "logged").await;
    wait_for_stderr(&server, "connect", |log| log.contains("connect")).await;
    client
        .send_text("a-message-that-should-not-be-logged")
        .await;
    client.send_close(1000, "bye").await;
    drop(client);
    wait_for_stderr(&server, "disconnect", |log| log.contains("disconnect")).await;
    assert!(
        !server
            .stderr()
            .contains("a-message-that-should-not-be-logged"),
        "info level should not log every message:\n{}",
        server.stderr()
    );
}

async fn wait_for_stderr(server: &ServerProcess, what: &str, seen: impl Fn(&str) -> bool) {
    if let Err(stderr) = crate::wait_until(
        WAIT,
        || std::future::ready(server.stderr()),
        |stderr| seen(stderr),
    )
    .await
    {
        panic!("stderr should mention a {what} within {WAIT:?}; it says:\n{stderr}");
    }
}

/// SIGTERM (as `kill` and service managers send) ends the process with exit code 0, even with a
/// client connected.
async fn sigterm_exits_with_code_zero(target: Target) {
    exits_zero_on(target, Signal::SIGTERM).await;
}

/// Ctrl+C (SIGINT) ends the process with exit code 0, even with a client connected.
async fn sigint_exits_with_code_zero(target: Target) {
    exits_zero_on(target, Signal::SIGINT).await;
}

async fn exits_zero_on(target: Target, signal: Signal) {
    let mut server = ServerProcess::start(bin(&target), &[]).await;
    let _client = Client::connect(&server.ws_url(), "connected").await;
    server.signal(signal);
    let status = server.wait_exit(WAIT).await;
    assert_eq!(
        status.code(),
        Some(0),
        "{signal} should exit with 0; stderr:\n{}",
        server.stderr()
    );
    assert!(
        !server.stderr().contains("panicked"),
        "stderr shows a panic:\n{}",
        server.stderr()
    );
}

/// A SIGTERM sent the moment `listening on` is printed already meets the server's handler (not
/// the default one, which would kill the process without a clean exit).
async fn a_signal_right_after_the_listening_line_is_a_clean_exit(target: Target) {
    let mut server = ServerProcess::start(bin(&target), &[]).await;
    server.signal(Signal::SIGTERM);
    let status = server.wait_exit(WAIT).await;
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM right after start should exit with 0 (a signal death means the handler was not installed yet); stderr:\n{}",
        server.stderr()
    );
}
