//! Stage 05 onwards: connections end cleanly. A client that closes gets the close reply, echoing
//! its own code. When the server shuts down (Ctrl+C, SIGTERM, or the future `serve` was given),
//! every client is told Close 1001 (going away) and the server stops within a few seconds, even
//! with a client connected that reads nothing.

use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::Instant,
};

use crate::{
    Client, ServerProcess, Target, TestServer, WAIT,
    bounded::{CAPACITY, TO_STALL, push},
    client::{Ending, StalledClient},
    scenarios,
};

pub const SCENARIOS: &[crate::Scenario] = scenarios![
    a_client_that_closes_gets_its_own_code_back,
    shutdown_closes_every_client_with_going_away_and_serve_returns,
    shutdown_does_not_wait_for_a_client_that_never_reads,
    shutdown_closes_an_idle_http_connection_at_once,
    @binary sigterm_closes_every_client_with_going_away_and_exits_zero,
    @binary sigint_closes_every_client_with_going_away_and_exits_zero,
];

/// Close 1001: going away.
const GOING_AWAY: u16 = 1001;

/// Reads what is left after a Close until the connection ends (within [`WAIT`]); reading is what
/// sends our answer to the server's Close, completing the closing handshake.
async fn read_to_the_end(client: &mut Client) {
    let deadline = Instant::now() + WAIT;
    while let Some(Ok(_)) = client
        .next_frame_within(deadline.saturating_duration_since(Instant::now()))
        .await
    {}
}

/// A client that closes with 1000 or with an application code (4000) gets a Close reply with
/// that same code, and then the server ends the connection.
async fn a_client_that_closes_gets_its_own_code_back(target: Target) {
    let server = TestServer::start(target).await;
    for code in [1000, 4000] {
        let mut client = server.client(&format!("closes-with-{code}")).await;
        client.send_close(code, "done here").await;
        match client.expect_end().await {
            Ending::Close(Some((got, _))) => {
                assert_eq!(got, code, "the close reply should echo the client's code")
            }
            other => panic!("expected the close reply with {code}, got {other:?}"),
        }
        let after = client.next_frame_within(WAIT).await;
        assert!(
            !matches!(after, Some(Ok(_))),
            "after the close reply the server should end the connection, got {after:?}"
        );
    }
}

/// When `serve`'s shutdown future resolves, every connected client receives Close 1001, and
/// `serve` returns `Ok` once they have answered.
async fn shutdown_closes_every_client_with_going_away_and_serve_returns(target: Target) {
    let server = TestServer::start(target).await;
    let mut clients = Vec::new();
    for name in ["alice", "bob", "carol"] {
        clients.push(server.client(name).await);
    }
    let (served, ()) = tokio::join!(server.shutdown(), async {
        for client in &mut clients {
            client.expect_close_code(GOING_AWAY).await;
            read_to_the_end(client).await;
        }
    });
    served.expect("serve should return Ok after a shutdown");
}

/// A client that reads nothing (its connection stuck with unsent data) does not keep the server
/// from shutting down: the healthy clients get Close 1001, `serve` returns, and the stuck
/// connection is closed rather than left open.
async fn shutdown_does_not_wait_for_a_client_that_never_reads(target: Target) {
    let server = TestServer::start_with(target, &["--queue-capacity", &CAPACITY.to_string()]).await;
    let stalled = server.stalled_client("stalled").await;
    let mut alice = server.client("alice").await;
    let mut healthy = [server.client("bob").await];
    push(&mut alice, &mut healthy, 0..TO_STALL, || {}).await;

    let [mut bob] = healthy;
    let (served, (), ()) = tokio::join!(
        server.shutdown(),
        async {
            alice.expect_close_code(GOING_AWAY).await;
            read_to_the_end(&mut alice).await;
        },
        async {
            bob.expect_close_code(GOING_AWAY).await;
            read_to_the_end(&mut bob).await;
        },
    );
    served.expect("serve should return Ok after a shutdown");
    // Reading again, the stalled client finds the backlog and then the end of its connection
    // (perhaps with the Close, if it fitted in): the server has let go of it.
    let mut stalled = stalled.resume();
    stalled.expect_end().await;
}

/// A browser keeps its HTTP connection open after fetching the page, in case it needs another
/// request. Such an idle keep-alive connection does not hold up the shutdown: the server closes
/// it at once, and `serve` returns well before its grace period for connections runs out.
async fn shutdown_closes_an_idle_http_connection_at_once(target: Target) {
    let server = TestServer::start(target).await;
    let mut browser = TcpStream::connect(server.addr)
        .await
        .expect("connecting to the server");
    let request = format!("GET / HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr);
    browser
        .write_all(request.as_bytes())
        .await
        .expect("asking for the page");
    let mut first = [0; 64];
    let read = tokio::time::timeout(WAIT, browser.read(&mut first))
        .await
        .expect("no answer to GET / within WAIT")
        .expect("reading the page");
    assert!(
        first[..read].starts_with(b"HTTP/1.1 200"),
        "GET / should be answered: {:?}",
        String::from_utf8_lossy(&first[..read])
    );
    // The page was answered and the connection stays open, idle: now shut down.
    let started = Instant::now();
    server
        .shutdown()
        .await
        .expect("serve should return Ok after a shutdown");
    let took = started.elapsed();
    assert!(
        took < IDLE_HTTP_CLOSED_WITHIN,
        "serve took {took:?} to return with an idle HTTP connection open: the connection was not \
         told to close, and serve waited for it (expected under {IDLE_HTTP_CLOSED_WITHIN:?})"
    );
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, browser.read_to_end(&mut rest))
        .await
        .expect("the server should have closed the idle HTTP connection")
        .expect("reading to the end of the idle HTTP connection");
}

/// Well under the chapters' grace period for open connections (3 s), so that a server that waits
/// for the idle connection instead of closing it fails.
const IDLE_HTTP_CLOSED_WITHIN: Duration = Duration::from_millis(1500);

/// SIGTERM: every healthy client receives Close 1001, even with a client connected that reads
/// nothing, and the process exits 0 within a few seconds, without a panic.
async fn sigterm_closes_every_client_with_going_away_and_exits_zero(target: Target) {
    goes_away_on(target, Signal::SIGTERM).await;
}

/// Ctrl+C (SIGINT): every healthy client receives Close 1001, even with a client connected that
/// reads nothing, and the process exits 0 within a few seconds, without a panic.
async fn sigint_closes_every_client_with_going_away_and_exits_zero(target: Target) {
    goes_away_on(target, Signal::SIGINT).await;
}

async fn goes_away_on(target: Target, signal: Signal) {
    let bin = target
        .bin
        .expect("this scenario needs the chapter's binary");
    let mut server = ServerProcess::start(bin, &["--queue-capacity", &CAPACITY.to_string()]).await;
    let _stalled = StalledClient::connect(server.addr, "stalled").await;
    let url = server.ws_url();
    let mut alice = Client::connect(&url, "alice").await;
    let mut healthy = [Client::connect(&url, "bob").await];
    push(&mut alice, &mut healthy, 0..TO_STALL, || {}).await;
    let [mut bob] = healthy;

    let signalled = Instant::now();
    server.signal(signal);
    for client in [&mut alice, &mut bob] {
        client.expect_close_code(GOING_AWAY).await;
        read_to_the_end(client).await;
    }
    let status = server.wait_exit(WAIT).await;
    let took = signalled.elapsed();
    assert_eq!(
        status.code(),
        Some(0),
        "{signal} should end the process with 0; stderr:\n{}",
        server.stderr()
    );
    assert!(
        !server.stderr().contains("panicked"),
        "stderr shows a panic:\n{}",
        server.stderr()
    );
    assert!(
        took < WAIT - Duration::from_millis(500),
        "exiting took {took:?}: a client that reads nothing should not delay it this long"
    );
}
