// Fan-out workshop, exercise 09-rooms: generated from chapters/09-rooms by `cargo workshop generate`.
//
// Nothing to do in this file: it is the finished part of the exercise. Your part is in
// src/broker/commands.rs, src/command.rs.

//! Chapter 09: rooms.
//!
//! Until now every message went to everybody, from nobody in particular. Here the relay becomes
//! a chat: every client has a name (`names.rs`), is in one room at a time, and talks in lines
//! where a leading `/` starts a command (`command.rs`); what the server sends is one message
//! type, JSON for the browser and a readable line for a terminal (`message.rs`). The broker
//! keeps the rooms and the names next to its connections and is still the only one to touch
//! them, so it still needs no lock (`broker.rs`, `broker/commands.rs`). With `--tcp`, clients
//! like `nc` join the same rooms through the same broker (`tcp.rs`). Everything below, from the
//! chapters before, is unchanged but for the page and the TCP listener in `serve`.
//!
//! Since chapter 06 the server does not trust its clients to be well-behaved: to send sensible
//! frames of sensible size, to read what they are sent, to answer pings, to finish their HTTP
//! headers. Every limit is a flag with a default: the message size (over it, Close 1009), the
//! number of clients (over it, a plain 503), how long a write may take, how long a client may be
//! silent, how long an HTTP request may take to arrive. Invalid UTF-8 gets Close 1007 and a broken
//! frame Close 1002, and neither reaches anybody else. If the broker itself ever ends, every client
//! hears Close 1011 and the process exits with an error instead of limping on.
//!
//! And the code cannot panic by construction, as far as a compiler can tell: see the lints below.

// No panics by construction, as far as a linter can see. Each lint below turns one well-known way
// to panic into an error when `cargo clippy` checks this crate (CI runs it on every change):
// - `unwrap()` and `expect()` on an `Option` or a `Result`;
// - `panic!`, `unreachable!`, `todo!` and `unimplemented!`;
// - indexing and slicing, `v[i]` and `&v[a..b]`, and slicing a string, which also panics at a
//   byte inside a character: the index may be out of range;
// - arithmetic (`+`, `-`, `*`, `/`, `%`, `<<`) on integers, durations and instants: it may overflow
//   (a panic in debug builds, a silent wrap in release) or divide by zero. `saturating_*` and
//   `checked_*` say instead what happens at the edge.
// The tests allow them back: a failing assertion is a panic.
//
// What that proves: no line of this crate panics in one of those ways. What it does not prove:
// - That the code we call never panics: the lints do not look inside tokio, hyper, axum or std.
//   `mpsc::channel(0)`, `interval(Duration::ZERO)`, `Semaphore::new` beyond its maximum, an
//   `Instant` pushed out of range by a timeout of centuries (chapter 05, given
//   `--ping-interval 18000000000000000000s`, panics as soon as a client connects), a hyper header
//   timeout without a timer: each panics inside a library. Keeping their inputs in range is the
//   job of the flag parsers below, and of reading the libraries' documentation.
// - That memory suffices: running out aborts the process, and so does a stack overflow. The
//   limits bound what one client can make us hold; no lint proves a bound.
// - What a panic does if one happens anyway: tokio catches a panic in a spawned task and ends only
//   that task. A lost connection is one lost client; a lost broker is noticed by `serve` (⑦). A
//   panic in `serve`'s own loop would still end the process.
// - Anything, if nobody runs clippy: `cargo build` ignores these lints, and `#[allow(..)]`
//   silences them (there is none outside the tests).
// So can we know at compile time that the broker cannot panic? Not entirely. We know that our own
// code takes none of the usual shortcuts; the rest rests on design, tests and review.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::todo,
    clippy::unimplemented,
    clippy::indexing_slicing,
    clippy::string_slice,
    clippy::arithmetic_side_effects
)]
// The allow below keeps the compiler quiet about what the todo!s leave unused. Delete it once the
// stage tests pass, to hear the compiler's warnings about your code again.
#![allow(
    clippy::todo,
    dead_code,
    unreachable_code,
    unused_imports,
    unused_mut,
    unused_variables
)]

use std::{future::Future, io, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{
        State,
        ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code},
    },
    http::StatusCode,
    response::{Html, IntoResponse, Json, Response},
    routing::get,
};
use futures_util::{
    SinkExt, StreamExt,
    stream::{SplitSink, SplitStream},
};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::{
    net::TcpListener,
    sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot},
    task::JoinHandle,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub mod broker;
pub mod command;
pub mod message;
pub mod names;
pub mod outbox;
pub mod tcp;

use broker::{ConnId, Event};
use message::Wire;
use outbox::{Inbox, payload_size};

/// The name the browser page shows in its header.
pub const CHAPTER: &str = "09-rooms";

/// How long a connection that is being closed by the server waits for its Close frame to go out,
/// and then for the client's answer. A client that reads nothing would make both waits endless.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long `serve` waits, after it stops accepting, for the open connections to finish. Each one
/// finishes within about [`CLOSE_TIMEOUT`] on its own; this is the backstop should one not.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// How much bigger than `--max-message-size` a single frame may claim to be. A frame over the
/// message limit but under this one is read to its end and then refused with Close 1009, which the
/// client can read. A frame over this one is refused from its header, before its payload is read
/// or room is reserved for it; but the payload the client already sent is then unread when we
/// close, the kernel answers with a reset, and a browser may report 1006 instead of our 1009. So
/// the margin is generous: with the default 64 KiB limit, frames up to 1 MiB get their 1009.
pub const FRAME_LIMIT_FACTOR: usize = 16;

/// ⑫ What each connection reads the socket into. tungstenite's default, 128 KiB, is allocated
/// when the connection opens and kept for as long as it stays open, even by a client that never
/// says a word: that was most of what a connection cost until chapter 07. A chat message is far
/// smaller; 4 KiB still takes dozens of them per read, and a bigger frame gets the room it needs
/// when its header arrives (then the buffer keeps that size).
pub const READ_BUFFER_SIZE: usize = 4 << 10;

/// ⑫ How much of a batch tungstenite collects before it writes to the socket (`flush` writes the
/// rest). The buffer grows only as a batch needs it (an idle client costs nothing here) and keeps
/// its size afterwards, so this is also what a busy client keeps: tungstenite's default is 128
/// KiB. 16 KiB is a few hundred small messages per system call, and what fits in a socket's send
/// buffer at once.
pub const WRITE_BUFFER_SIZE: usize = 16 << 10;

/// The largest `--max-message-size` accepted: 16 MiB (and so 256 MiB for one frame).
pub const MAX_MESSAGE_SIZE: usize = 16 << 20;

/// The longest duration any flag accepts: a day. A longer timeout is no timeout at all, and an
/// absurd one (`18000000000000000000s` parses) would overflow an `Instant` inside tokio or hyper,
/// where no lint of ours can see it.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// This chapter's flags (besides `--addr`, which `main.rs` owns).
#[derive(Debug, Clone, clap::Parser)]
pub struct Config {
    /// How often the writer pings the client, whatever else it writes (e.g. 30s, 200ms).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = duration)]
    pub ping_interval: Duration,
    // Why 1024: the count is the backstop now, `--queue-bytes` the bound that matters (see
    // `outbox.rs`). 1024 lets a burst of a thousand chat messages wait for one client, which is
    // what several people pasting at once look like; a count can only go this high because the
    // bytes are bounded too. The broker's own queue gets the same room; when it is full, readers
    // wait, and that costs no memory at all.
    /// How many messages may wait for one client before messages for it are dropped, and for the broker before readers pause (at least 1).
    #[arg(long, value_name = "MESSAGES", default_value_t = 1024, value_parser = queue_capacity)]
    pub queue_capacity: usize,
    // Why 1 MiB: measured with `fanout-load` (see the book's chapter 08). In s3, ten senders keep
    // up to 240 messages of 1 KiB in flight: a healthy client may have 240 KiB waiting for it,
    // and lost messages at 128 KiB. A burst of a thousand messages of up to 1 KiB fits too. And a
    // client that has stopped reading holds at most 1 MiB of payload, where a count of 1024
    // messages of 64 KiB would have let it hold 64 MiB.
    /// How many bytes of messages may wait for one client before messages for it are dropped (e.g. 1MiB; at least --max-message-size, at most 1GiB).
    #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = queue_bytes)]
    pub queue_bytes: usize,
    // Why 64 KiB: a chat message, even a long paste, is a few kilobytes; 64 KiB leaves room for
    // much more and still keeps what one client can make us hold per message small.
    /// The largest message a client may send, in bytes or with a unit (1024, 64KiB, 1MiB; at most 16MiB); a bigger one ends its connection with Close 1009.
    #[arg(long, value_name = "SIZE", default_value = "64KiB", value_parser = message_size)]
    pub max_message_size: usize,
    // Why 1000: each client costs a socket (a file descriptor) and two tasks. 1000 stays under the
    // common limit of 1024 open files per process, with room for the listener and HTTP requests.
    /// How many WebSocket clients may be connected at once; one more gets 503 Service Unavailable until somebody leaves.
    #[arg(long, value_name = "CLIENTS", default_value_t = 1000, value_parser = max_connections)]
    pub max_connections: usize,
    // Why 10 s: a healthy client takes what we send within milliseconds; one that has not taken
    // anything for 10 s is stuck, gone without a word, or not reading at all.
    /// How long one write to a client may take, and its queue may stay full, before the client is cut off.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    pub write_timeout: Duration,
    /// How long a client may send nothing, not even the answer to a ping, before it is taken for gone; at least twice --ping-interval [default: three times --ping-interval]
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub idle_timeout: Option<Duration>,
    // Why 10 s: a browser sends its whole request at once; 10 s is plenty on a slow network and
    // lets a client that dribbles bytes to hold a connection open (slowloris) hold it only briefly.
    // hyper also starts this clock when a kept-alive connection waits for its next request, so an
    // idle HTTP connection is closed after it too.
    /// How long a client may take to send the headers of an HTTP request, the WebSocket handshake included.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    pub header_timeout: Duration,
    /// Also accept plain TCP clients (nc, telnet) on HOST:PORT, one line per message, in the same rooms (off by default; port 0 picks a free port).
    #[arg(long, value_name = "HOST:PORT")]
    pub tcp: Option<String>,
    // Why 4 KiB: a line is typed or pasted by a person; a few kilobytes is a long paragraph.
    /// The longest line a TCP client may send, in bytes or with a unit (at most 16MiB); a longer one gets an error line and is skipped.
    #[arg(long, value_name = "SIZE", default_value = "4KiB", value_parser = message_size)]
    pub max_line_bytes: usize,
}

/// Parses `--queue-capacity`. A bounded channel needs room for at least one message (tokio's
/// `mpsc::channel(0)` would panic), so 0 is refused here, as a flag error.
fn queue_capacity(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_string()),
        Ok(capacity) => Ok(capacity),
        Err(err) => Err(err.to_string()),
    }
}

/// Parses a duration flag: more than zero (`interval(ZERO)` panics, and a zero timeout is always
/// a mistake) and at most [`MAX_DURATION`].
fn duration(text: &str) -> Result<Duration, String> {
    let duration = fanout_kit::positive_duration(text)?;
    if duration > MAX_DURATION {
        return Err("must be at most 24h".to_string());
    }
    Ok(duration)
}

/// Parses `--max-message-size`: a size (see [`size`]) from 1 byte to [`MAX_MESSAGE_SIZE`].
fn message_size(text: &str) -> Result<usize, String> {
    match size(text)? {
        0 => Err("must be at least 1 byte".to_string()),
        bytes if bytes <= MAX_MESSAGE_SIZE => Ok(bytes),
        _ => Err("must be at most 16MiB".to_string()),
    }
}

/// The largest `--queue-bytes` accepted: 1 GiB for one client is already no bound at all.
pub const MAX_QUEUE_BYTES: usize = 1 << 30;

/// Parses `--queue-bytes`: a size (see [`size`]) from 1 byte to [`MAX_QUEUE_BYTES`].
fn queue_bytes(text: &str) -> Result<usize, String> {
    match size(text)? {
        0 => Err("must be at least 1 byte".to_string()),
        bytes if bytes <= MAX_QUEUE_BYTES => Ok(bytes),
        _ => Err("must be at most 1GiB".to_string()),
    }
}

/// A number of bytes, optionally with the unit `B`, `KiB` or `MiB`.
fn size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    // `split_at` would panic at an index inside a character; this one says so with `None`.
    let Some((number, unit)) = text.split_at_checked(digits) else {
        return Err("expected a size like 65536, 64KiB or 1MiB".to_string());
    };
    let number: usize = number
        .parse()
        .map_err(|_| format!("expected a size like 65536, 64KiB or 1MiB, got {text:?}"))?;
    let unit: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        other => return Err(format!("unknown unit {other:?}: use B, KiB or MiB")),
    };
    number
        .checked_mul(unit)
        .ok_or_else(|| "too large".to_string())
}

/// Parses `--max-connections`: at least 1, and no more than a semaphore can count
/// (`Semaphore::new` panics beyond `MAX_PERMITS`).
fn max_connections(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_string()),
        Ok(limit) if limit > Semaphore::MAX_PERMITS => {
            Err(format!("must be at most {}", Semaphore::MAX_PERMITS))
        }
        Ok(limit) => Ok(limit),
        Err(err) => Err(err.to_string()),
    }
}

impl Config {
    /// `--idle-timeout`, or three ping intervals when it is not given. Refused when it is less
    /// than two ping intervals: a client that answers every ping could then be dropped anyway,
    /// for one pong delayed by the network. A check on two flags at once, so not clap's.
    pub fn idle_timeout(&self) -> io::Result<Duration> {
        let shortest = self.ping_interval.saturating_mul(2);
        match self.idle_timeout {
            None => Ok(self.ping_interval.saturating_mul(3)),
            Some(idle) if idle >= shortest => Ok(idle),
            Some(idle) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "--idle-timeout {idle:?} must be at least twice --ping-interval ({:?})",
                    self.ping_interval
                ),
            )),
        }
    }

    /// `--queue-bytes`, refused when it is less than `--max-message-size`: a message that big
    /// could never be queued for anybody, so it would reach nobody. A check on two flags at once.
    pub fn queue_budget(&self) -> io::Result<usize> {
        if self.queue_bytes < self.max_message_size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "--queue-bytes {} must be at least --max-message-size ({}): a message that \
                     does not fit in a queue reaches nobody",
                    self.queue_bytes, self.max_message_size
                ),
            ));
        }
        Ok(self.queue_bytes)
    }
}

/// What every handler can reach: the flags, the way to the broker, and what shutting down needs.
#[derive(Clone)]
pub(crate) struct AppState {
    config: Config,
    /// `--idle-timeout`, or its default, checked against `--ping-interval`.
    idle_timeout: Duration,
    events: mpsc::Sender<Event>,
    /// One permit per connected client, `--max-connections` in all.
    places: Arc<Semaphore>,
    /// Cancelled when the server starts shutting down. Every connection watches it.
    stopping: CancellationToken,
    /// Every connection's task, so `serve` can wait for them to finish.
    connections: TaskTracker,
}

/// The routes: the browser page at `/`, the WebSocket at `/ws`, the broker's counts at `/stats`.
/// Connections reach the broker through `events`, close when `stopping` is cancelled and are
/// tracked by `connections`. Fails if the flags contradict each other.
pub fn app(
    config: Config,
    events: mpsc::Sender<Event>,
    stopping: CancellationToken,
    connections: TaskTracker,
) -> io::Result<Router> {
    Ok(router(state(config, events, stopping, connections)?))
}

/// What [`app`]'s handlers share, and the TCP clients too: they take their places among the
/// same `--max-connections`.
fn state(
    config: Config,
    events: mpsc::Sender<Event>,
    stopping: CancellationToken,
    connections: TaskTracker,
) -> io::Result<AppState> {
    let idle_timeout = config.idle_timeout()?;
    config.queue_budget()?;
    let places = Arc::new(Semaphore::new(config.max_connections));
    Ok(AppState {
        config,
        idle_timeout,
        events,
        places,
        stopping,
        connections,
    })
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/ws", get(upgrade))
        .route("/stats", get(stats))
        .with_state(state)
}

/// Serves on `listener` until `shutdown` resolves, then closes every connection with Close 1001
/// and returns once they are closed (or after [`SHUTDOWN_GRACE`]).
///
/// ⑦ If the broker ends first, for whatever reason, every client gets Close 1011 and `serve`
/// returns an error, so the process exits non-zero with the reason in its log: a server whose
/// broker is gone would still accept clients, and never pass on a word.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let (events, broker) = broker::spawn(config.queue_capacity, config.write_timeout);
    serve_with_broker_task(listener, config, shutdown, events, broker).await
}

/// [`serve`], with a broker task that the caller started. It is the seam through which a test
/// makes the broker end (it aborts the task). Only tests and `serve` call it, and `serve` always
/// passes the real broker: no flag, request or message can stop the broker from outside.
async fn serve_with_broker_task(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
    events: mpsc::Sender<Event>,
    broker: JoinHandle<()>,
) -> io::Result<()> {
    let stopping = CancellationToken::new();
    let connections = TaskTracker::new();
    let header_timeout = config.header_timeout;
    let tcp = config.tcp.clone();
    let state = state(config, events, stopping.clone(), connections.clone())?;
    // Terminal clients, if asked for: accepted until this function returns, however it returns.
    let done = CancellationToken::new();
    let _done_on_return = done.clone().drop_guard();
    if let Some(addr) = tcp {
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|err| io::Error::new(err.kind(), format!("cannot listen on {addr}: {err}")))?;
        // The real port (`:0` picks one), for whoever waits for this line, as for `listening on`.
        println!("tcp listening on {}", listener.local_addr()?);
        connections.spawn(tcp::accept(listener, state.clone(), done.clone()));
    }
    let app = router(state);
    let outcome = accept(
        listener,
        app,
        header_timeout,
        &connections,
        shutdown,
        broker,
    )
    .await;
    done.cancel();
    if outcome.is_ok() {
        // Every connection is watching this token: each one now says goodbye to its client.
        stopping.cancel();
    }
    // ⑦ Otherwise the broker is gone, and every outbox with it: each writer has seen its outbox
    // close and says Close 1011 (⑤). Cancelling `stopping` would race that with Close 1001.
    // The WebSockets are closing now, and we wait for them, but not forever.
    connections.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "connections still open after the grace period; leaving them"
        );
    }
    outcome
}

/// Pause after `accept` fails for want of resources (no file descriptor left, typically): without
/// it, the loop would spin on the same error as fast as the CPU allows.
pub(crate) const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// ⑬ Whether to switch off Nagle's algorithm on every connection. With it on (the default for a
/// TCP socket), the kernel holds back a small write while an earlier one is still waiting for its
/// acknowledgement, and the client's kernel may wait up to 40 ms before it acknowledges: a
/// small batch can sit in the kernel for that long. Our writer already gathers what it has into
/// one flush, so there is nothing for the kernel to gather: each flush should leave at once.
pub(crate) const NO_DELAY: bool = true;

/// Accepts connections until `shutdown` resolves (`Ok`) or the broker ends (`Err`), and serves
/// each one with hyper, as `axum::serve` does, plus what `axum::serve` does not offer: a deadline
/// for the request headers. Without one, a client that sends half a request line and then nothing
/// holds its connection (a socket, a task) for as long as it likes; a few thousand such clients
/// (the slowloris attack) hold them all.
async fn accept(
    listener: TcpListener,
    app: Router,
    header_timeout: Duration,
    connections: &TaskTracker,
    shutdown: impl Future<Output = ()>,
    mut broker: JoinHandle<()>,
) -> io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    // hyper keeps time with the timer it is given; a header timeout without a timer panics.
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    // Cancelled when this function returns, however it returns: each HTTP connection then
    // finishes the request it is serving, if any, and closes.
    let done = CancellationToken::new();
    let _done_on_return = done.clone().drop_guard();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            // In this order: once shutdown is signalled or the broker has ended, no connection
            // still waiting in the backlog is accepted.
            biased;
            () = &mut shutdown => return Ok(()),
            ended = &mut broker => return Err(broker_gone(ended)),
            accepted = listener.accept() => match accepted {
                Ok((socket, _peer)) => {
                    // ⑬ Send each flush at once (see NO_DELAY).
                    if let Err(err) = socket.set_nodelay(NO_DELAY) {
                        tracing::debug!(%err, "cannot set TCP_NODELAY");
                    }
                    let service = TowerToHyperService::new(app.clone());
                    let connection = http
                        .serve_connection(TokioIo::new(socket), service)
                        .with_upgrades();
                    let done = done.clone();
                    connections.spawn(async move {
                        tokio::pin!(connection);
                        tokio::select! {
                            // An error here (a header timeout, a malformed request) has been
                            // answered or the socket closed by hyper: nothing left to do.
                            _ = connection.as_mut() => {}
                            () = done.cancelled() => {
                                connection.as_mut().graceful_shutdown();
                                let _ = connection.await;
                            }
                        }
                    });
                }
                // A connection that died while it waited to be accepted: only that one is lost.
                Err(err) if matches!(
                    err.kind(),
                    io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                ) => {}
                // Out of file descriptors or memory: the next `accept` would fail the same way
                // at once. Wait for connections to close, and never give up serving those open.
                Err(err) => {
                    tracing::warn!(%err, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
}

/// ⑦ The error `serve` returns when the broker has ended: it returned (it should not while
/// anybody can send it events), panicked or was aborted.
fn broker_gone(ended: Result<(), tokio::task::JoinError>) -> io::Error {
    let why = match ended {
        Ok(()) => "it returned".to_string(),
        Err(err) if err.is_panic() => "it panicked".to_string(),
        Err(err) => err.to_string(),
    };
    tracing::error!(%why, "the broker stopped: closing every connection");
    io::Error::other(format!("the broker stopped ({why})"))
}

/// The chat page: this chapter's own, since it speaks the chat protocol (see `message.rs`).
const PAGE: &str = include_str!("page.html");

async fn page() -> Html<String> {
    Html(PAGE.replace("{{chapter}}", CHAPTER))
}

/// `GET /stats`: the broker's counts as JSON. The request travels through the broker's queue like
/// any event, with a oneshot sender for the answer; the broker answers between two events, so
/// the counts are always consistent with each other.
async fn stats(State(state): State<AppState>) -> Response {
    let (reply, answer) = oneshot::channel();
    if state.events.send(Event::Stats { reply }).await.is_err() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response(); // the broker is gone
    }
    match answer.await {
        Ok(stats) => Json(stats).into_response(),
        // The broker dropped our request without answering: it stopped while we waited.
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// A plain HTTP request to `/ws` is refused by the extractor (a 4xx). A WebSocket handshake joins
/// the broker *before* the handshake response goes out, so a client that sees its connection open
/// is already in the map: it gets every message sent after that moment.
async fn upgrade(State(state): State<AppState>, ws: WebSocketUpgrade) -> Response {
    // One place per client, held until its connection ends (the permit is dropped with it). When
    // there is none, the client hears why, in plain text, before any WebSocket exists.
    let Ok(place) = Arc::clone(&state.places).try_acquire_owned() else {
        tracing::warn!(
            limit = state.config.max_connections,
            "too many clients: refusing one"
        );
        let _ = state.events.send(Event::Refused).await;
        let reason = format!(
            "This server already has the {} clients it allows. Try again later.\n",
            state.config.max_connections
        );
        return (StatusCode::SERVICE_UNAVAILABLE, reason).into_response();
    };
    let id = ConnId::next();
    let (outbox, outbox_rx) = outbox::outbox(state.config.queue_capacity, state.config.queue_bytes);
    let joined = Event::Join {
        id,
        outbox,
        wire: Wire::WebSocket,
    };
    if state.events.send(joined).await.is_err() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let on_failure = state.events.clone();
    // tungstenite refuses a message over the limit with an error (mapped to Close 1009 in `read`).
    // The frame limit is higher (see FRAME_LIMIT_FACTOR), and bounds what a frame header may make
    // it reserve: a header claiming 2^62 bytes is refused before any room is made for them.
    let limit = state.config.max_message_size;
    ws.max_message_size(limit)
        .max_frame_size(limit.saturating_mul(FRAME_LIMIT_FACTOR))
        // ⑫ tungstenite's defaults suit one busy connection, not thousands of quiet ones.
        .read_buffer_size(READ_BUFFER_SIZE)
        .write_buffer_size(WRITE_BUFFER_SIZE)
        .on_failed_upgrade(move |_| {
            // This callback cannot wait for room in the broker's queue, so a task does the waiting.
            tokio::spawn(async move {
                let _ = on_failure.send(Event::Leave { id }).await;
            });
        })
        .on_upgrade(move |socket| {
            // Tracked, so that `serve` can wait for this connection to finish when shutting down.
            let connections = state.connections.clone();
            connections.track_future(connection(socket, id, outbox_rx, state, place))
        })
}

/// The Close frame a connection ends with when the server closes it: `None` when there is nobody
/// left to send one to (the client closed, and has had its reply, or it vanished).
type Goodbye = Option<CloseFrame>;

/// Close 1001: the server is shutting down.
fn going_away() -> CloseFrame {
    CloseFrame {
        code: close_code::AWAY,
        reason: "the server is shutting down".into(),
    }
}

/// Close 1011: the server cannot serve this connection any more (its broker is gone).
fn server_error() -> CloseFrame {
    CloseFrame {
        code: close_code::ERROR,
        reason: "the server cannot serve this connection any more".into(),
    }
}

/// One connection: the writer drains the outbox the broker fills; the reader, here, passes what
/// the client says to the broker until the client is done, the broker is gone, or the server
/// shuts down, or the writer gives up. Then it tells the writer how to finish. The client's
/// `place` among `--max-connections` is given back when this returns.
async fn connection(
    socket: WebSocket,
    id: ConnId,
    outbox_rx: Inbox,
    state: AppState,
    place: OwnedSemaphorePermit,
) {
    tracing::info!(%id, "client connected");
    let (sink, mut stream) = socket.split();
    let (finish, finish_rx) = oneshot::channel();
    // Cancelled by the writer when it gives up on a client that takes nothing (⑧).
    let stuck = CancellationToken::new();
    let writer = tokio::spawn(write(
        sink,
        outbox_rx,
        finish_rx,
        stuck.clone(),
        state.config.ping_interval,
        state.config.write_timeout,
    ));
    let goodbye = tokio::select! {
        goodbye = read(&mut stream, id, &state) => goodbye,
        () = state.stopping.cancelled() => Some(going_away()),
        // ⑧ A client that takes nothing would not take a Close either: just hang up.
        () = stuck.cancelled() => {
            tracing::warn!(%id, "client took nothing for --write-timeout: cutting it off");
            let _ = state.events.send(Event::TimedOut { id }).await;
            None
        }
    };
    // The writer sends the goodbye, if there is one, and stops. If it has stopped already (its
    // client is gone), nobody hears this, which is fine.
    let _ = finish.send(goodbye.clone());
    if goodbye.is_some() {
        // We are closing: read on until the client answers our Close, which completes the
        // closing handshake. A client that reads nothing never answers, hence the deadline.
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            while let Some(Ok(_)) = stream.next().await {}
        })
        .await;
    }
    let _ = state.events.send(Event::Leave { id }).await;
    // The writer ends on its own, within CLOSE_TIMEOUT, now that it has been told to.
    let _ = writer.await;
    drop(place);
    tracing::info!(%id, "client disconnected");
}

/// Reads until the client goes away, handing each data message to the broker. Returns the Close
/// the writer should end with.
async fn read(stream: &mut SplitStream<WebSocket>, id: ConnId, state: &AppState) -> Goodbye {
    loop {
        let message = match tokio::time::timeout(state.idle_timeout, stream.next()).await {
            Ok(Some(Ok(message))) => message,
            // The client closed (and has its reply) or vanished: there is nobody to say goodbye to.
            Ok(None) => return None,
            // ⑨ tungstenite refused what the client sent, and stops reading: say why.
            Ok(Some(Err(err))) => {
                let goodbye = refusal(err, state.config.max_message_size);
                if let Some(frame) = &goodbye {
                    tracing::info!(%id, code = frame.code, reason = %frame.reason, "refusing a client");
                }
                return goodbye;
            }
            // ⑩ Nothing at all for the idle timeout, not even the pong to the pings we keep
            // sending: the client is gone without a word (a pulled cable, a sleeping laptop), or
            // it ignores us. Either way it only holds a place.
            Err(_) => {
                tracing::info!(%id, "nothing heard for --idle-timeout: cutting the client off");
                let _ = state.events.send(Event::TimedOut { id }).await;
                return Some(CloseFrame {
                    code: close_code::AWAY,
                    reason: "nothing heard from you for too long".into(),
                });
            }
        };
        match message {
            Message::Text(_) | Message::Binary(_) => {
                // ① When the broker's queue is full, `send` waits for room, and while it waits we
                // read nothing more from this socket: TCP pushes back on this one client, and
                // nothing piles up in our memory.
                if state
                    .events
                    .send(Event::Message { from: id, message })
                    .await
                    .is_err()
                {
                    // ① The broker is gone: nobody would hear this client. The writer closes
                    // the connection with 1011.
                    return Some(server_error());
                }
            }
            // Pings are answered by axum. When the client sends Close, tungstenite queues the
            // reply, echoing the client's code, and the next read sends it and ends the stream:
            // so we keep reading rather than return here.
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) => {}
        }
    }
}

/// The longest reason a Close frame can carry: its payload is at most 125 bytes, 2 of them the code.
const MAX_REASON: usize = 123;

/// ⑨ The Close frame for a client whose input tungstenite refused: 1007 for text that is not
/// UTF-8, 1009 for a message over the limit, 1002 for anything else against RFC 6455 (an unmasked
/// frame, a reserved bit or opcode, a fragmented Ping, ...). `None` when the connection itself
/// failed: then there is nobody to tell.
fn refusal(error: axum::Error, max_message_size: usize) -> Goodbye {
    use tungstenite::error::{Error, ProtocolError};
    // axum passes tungstenite's error on without naming its type; the type is still there to ask.
    let error = error.into_inner().downcast::<Error>().ok()?;
    let (code, reason) = match *error {
        Error::Utf8(_) => (close_code::INVALID, "text must be valid UTF-8".to_string()),
        Error::Capacity(_) => (
            close_code::SIZE,
            format!("messages are limited to {max_message_size} bytes"),
        ),
        Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => return None,
        Error::Protocol(violation) => {
            let reason = violation.to_string();
            let reason = if reason.len() <= MAX_REASON {
                reason
            } else {
                "protocol error".to_string()
            };
            (close_code::PROTOCOL, reason)
        }
        // I/O errors: the connection is broken, and a Close could not get through anyway.
        _ => return None,
    };
    Some(CloseFrame {
        code,
        reason: reason.into(),
    })
}

/// The most messages the writer takes from its queue for one write. Taking everything queued
/// is what makes a slow moment cheap to catch up from: one flush, often one system call, for all
/// of it. The limit bounds the vector the writer keeps them in (64 messages are 3 KiB of
/// `Message`s; the payloads are shared, see `outbox.rs`), and a few writes of 64 cost about what
/// one write of 256 costs.
pub const BATCH_LIMIT: usize = 64;

/// Writes what arrives in the outbox, and a Ping every `ping_interval`, until the reader says to
/// finish (`finish`), the broker lets go of the outbox, or a write takes longer than
/// `write_timeout`: then it cancels `stuck`. Each write is a batch: everything queued meanwhile,
/// up to [`BATCH_LIMIT`] messages, flushed once.
async fn write(
    mut sink: SplitSink<WebSocket, Message>,
    mut outbox: Inbox,
    mut finish: oneshot::Receiver<Goodbye>,
    stuck: CancellationToken,
    ping_interval: Duration,
    write_timeout: Duration,
) {
    // `Instant + Duration` panics on overflow. The flag parser keeps the interval within a day,
    // far from that; `checked_add` is what lets the lints see it.
    let now = tokio::time::Instant::now();
    let first_ping = now.checked_add(ping_interval).unwrap_or(now);
    let mut heartbeat = tokio::time::interval_at(first_ping, ping_interval);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Reused from batch to batch; it allocates only once this client has been sent something.
    let mut batch = Vec::new();
    let goodbye = loop {
        tokio::select! {
            // Checked first: once the reader has said we are done, what is still queued no longer
            // matters (and the outbox will close soon, which must not look like ⑤).
            biased;
            // An error means the reader's side dropped its sender without a word: stop quietly.
            goodbye = &mut finish => break goodbye.unwrap_or(None),
            // ⑪ Everything already queued, up to the limit: one message when this client keeps
            // up, a pile when it fell behind, or after a burst.
            taken = outbox.recv_many(&mut batch, BATCH_LIMIT) => {
                // ⑤ The broker no longer holds our outbox although the reader has not finished:
                // the broker is gone, or it let this client go (⑥). Close with 1011.
                if taken == 0 {
                    break Some(server_error());
                }
            }
            _ = heartbeat.tick() => batch.push(Message::Ping(Default::default())),
        }
        // What this batch holds counts against the queue's budget until it is written.
        let held = batch.iter().map(payload_size).sum();
        // A client that reads nothing never lets this send complete, so we race it against
        // `finish`: the reader can stop us even then.
        tokio::select! {
            sent = tokio::time::timeout(write_timeout, send_batch(&mut sink, &mut batch)) => {
                match sent {
                    Ok(Ok(())) => outbox.release(held),
                    Ok(Err(_)) => break None, // the client is gone
                    // ⑧ Not one batch taken for the whole write timeout: the client's socket is
                    // full and stays full. Give up on it, and have the reader hang up.
                    Err(_) => {
                        stuck.cancel();
                        break None;
                    }
                }
            }
            goodbye = &mut finish => break goodbye.unwrap_or(None),
        }
        // No `heartbeat.reset()` here any more: the idle timeout (⑩) needs a pong now and then
        // even from a client that only listens, so the pings keep their schedule however busy
        // the writer is.
    };
    if let Some(frame) = goodbye {
        // Bounded for the same reason: a client that reads nothing would never take it.
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
    }
}

/// ⑪ Sends every message in `batch`, in order, and empties it. `feed` only hands a message to
/// tungstenite, which frames it into its write buffer (and writes to the socket whenever that
/// buffer passes its size); `flush` writes out the rest and waits until the socket has taken it
/// all. One flush per batch instead of one per message: fewer system calls, fuller packets.
async fn send_batch(
    sink: &mut SplitSink<WebSocket, Message>,
    batch: &mut Vec<Message>,
) -> Result<(), axum::Error> {
    for message in batch.drain(..) {
        sink.feed(message).await?;
    }
    sink.flush().await
}

// Tests may panic: that is how they fail.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use clap::Parser;
    use stage_tests::{Client, WAIT, Wire};

    use super::*;

    /// Serves `/ws` with `events` in place of the broker; returns the address.
    async fn serve_with_broker(events: mpsc::Sender<Event>) -> std::net::SocketAddr {
        let config = Config::parse_from(["test"]);
        let app = app(config, events, CancellationToken::new(), TaskTracker::new())
            .expect("the default flags agree with each other");
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a port");
        let addr = listener.local_addr().expect("reading the address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    /// ⑤ When the broker is gone, a connected client is told so with Close 1011 instead of being
    /// left on a connection where nothing will ever happen.
    #[tokio::test]
    async fn a_client_is_closed_with_1011_when_the_broker_is_gone() {
        let (events, mut events_rx) = mpsc::channel(8);
        // A stand-in for a broker that dies (a bug, a panic) once the first client has joined:
        // returning drops its receiver and the outbox it was given, as a broker's death would.
        tokio::spawn(async move {
            let _join = events_rx.recv().await;
        });
        let addr = serve_with_broker(events).await;
        let mut orphan = Client::connect(&format!("ws://{addr}/ws"), "orphan").await;
        orphan.expect_close_code(1011).await;
    }

    /// ① When the reader cannot hand a message to the broker, it stops the writer, which closes
    /// the connection with 1011, even though the outbox is still open.
    #[tokio::test]
    async fn a_client_is_closed_with_1011_when_its_message_cannot_reach_the_broker() {
        let (events, mut events_rx) = mpsc::channel(8);
        // A stand-in for a broker that stops listening after the first Join but keeps the outbox
        // (so the writer is not woken by ⑤): only the reader can notice.
        let (joined_tx, joined) = oneshot::channel();
        tokio::spawn(async move {
            let _outbox_kept = events_rx.recv().await;
            drop(events_rx);
            let _ = joined_tx.send(());
            std::future::pending::<()>().await;
        });
        let addr = serve_with_broker(events).await;
        let mut client = Client::connect(&format!("ws://{addr}/ws"), "unheard").await;
        let _ = tokio::time::timeout(stage_tests::WAIT, joined).await;
        client.send_text("is anyone there?").await;
        client.expect_close_code(1011).await;
    }

    /// ⑦ If the broker task ends (here it is aborted; a panic ends it the same way), every
    /// client gets Close 1011 and `serve` returns an error naming the broker, which `main` turns
    /// into a logged reason and a non-zero exit.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn when_the_broker_ends_every_client_gets_1011_and_serve_fails() {
        let config = Config::parse_from(["test"]);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/ws", listener.local_addr().unwrap());
        let (events, broker) = broker::spawn(config.queue_capacity, config.write_timeout);
        let stop_broker = broker.abort_handle();
        let server = tokio::spawn(serve_with_broker_task(
            listener,
            config,
            std::future::pending(),
            events,
            broker,
        ));
        // Chat clients: `expect_text` takes a chat message for its text, past the notices.
        let mut alice = Client::connect_on(&url, "alice", Wire::Chat).await;
        let mut bob = Client::connect_on(&url, "bob", Wire::Chat).await;
        alice.send_text("before the broker ends").await;
        bob.expect_text("before the broker ends").await;

        stop_broker.abort();
        alice.expect_close_code(1011).await;
        bob.expect_close_code(1011).await;
        let returned = tokio::time::timeout(WAIT, server)
            .await
            .expect("serve should return soon after the broker ends")
            .expect("serve should not panic");
        let err = returned.expect_err("serve should fail once the broker is gone");
        assert!(
            err.to_string().contains("broker"),
            "the error should say the broker stopped: {err}"
        );
    }

    /// Sizes are bytes, KiB or MiB, from 1 byte to 16 MiB; anything else is a flag error.
    #[test]
    fn message_sizes_parse_within_their_limits() {
        assert_eq!(message_size("64KiB"), Ok(64 * 1024));
        assert_eq!(message_size("1024"), Ok(1024));
        assert_eq!(message_size("1 MiB"), Ok(1 << 20));
        assert_eq!(message_size("16MiB"), Ok(MAX_MESSAGE_SIZE));
        for bad in [
            "0",
            "0KiB",
            "17MiB",
            "99999999999999999999",
            "18446744073709551615MiB",
        ] {
            assert!(message_size(bad).is_err(), "{bad} should be refused");
        }
        for bad in ["", "lots", "64KB", "64 kib", "-1", "1.5MiB", "é"] {
            assert!(message_size(bad).is_err(), "{bad:?} should be refused");
        }
    }

    /// `--queue-bytes` is a size from 1 byte to 1 GiB, and at least `--max-message-size`: a
    /// message that fits in no queue would reach nobody.
    #[test]
    fn the_queue_budget_holds_the_largest_message() {
        assert_eq!(queue_bytes("1MiB"), Ok(1 << 20));
        assert_eq!(queue_bytes("1024MiB"), Ok(MAX_QUEUE_BYTES));
        for bad in ["0", "1025MiB", "lots"] {
            assert!(queue_bytes(bad).is_err(), "{bad} should be refused");
        }
        let budget = |flags: &[&str]| {
            let args = std::iter::once("test").chain(flags.iter().copied());
            Config::parse_from(args).queue_budget()
        };
        assert_eq!(budget(&[]).unwrap(), 1 << 20);
        assert_eq!(
            budget(&["--queue-bytes", "64KiB", "--max-message-size", "64KiB"]).unwrap(),
            64 << 10
        );
        let err = budget(&["--queue-bytes", "64KiB", "--max-message-size", "65537"]).unwrap_err();
        assert!(err.to_string().contains("--max-message-size"), "{err}");
    }

    /// Durations are above zero and at most a day: an absurd one (it parses) would overflow an
    /// `Instant` inside tokio or hyper.
    #[test]
    fn durations_stay_within_a_day() {
        assert_eq!(duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(duration("24h"), Ok(MAX_DURATION));
        for bad in ["0s", "25h", "18000000000000000000s", "soon"] {
            assert!(duration(bad).is_err(), "{bad} should be refused");
        }
    }

    /// The broker's own default stall limit is the default `--write-timeout`, as its doc says.
    #[test]
    fn the_default_stall_limit_is_the_default_write_timeout() {
        let config = Config::parse_from(["test"]);
        assert_eq!(config.write_timeout, broker::DEFAULT_STALL_LIMIT);
    }

    /// `--idle-timeout` defaults to three ping intervals and must be at least two.
    #[test]
    fn the_idle_timeout_leaves_room_for_pings() {
        let idle = |flags: &[&str]| {
            let args = std::iter::once("test").chain(flags.iter().copied());
            Config::parse_from(args).idle_timeout()
        };
        assert_eq!(idle(&[]).unwrap(), Duration::from_secs(90));
        assert_eq!(
            idle(&["--ping-interval", "1s", "--idle-timeout", "2s"]).unwrap(),
            Duration::from_secs(2)
        );
        let err = idle(&["--ping-interval", "1s", "--idle-timeout", "1999ms"]).unwrap_err();
        assert!(err.to_string().contains("--idle-timeout"), "{err}");
    }
}
