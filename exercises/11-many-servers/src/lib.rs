// Fan-out workshop, exercise 11-many-servers: generated from chapters/11-many-servers by `cargo workshop generate`.
//
// Nothing to do in this file: it is the finished part of the exercise. Your part is in
// src/bridge.rs, src/broker/cluster.rs.

//! Chapter 11: many servers.
//!
//! One server holds as many clients as one machine can. With `--redis URL`, several servers
//! make one chat: each still has its own broker, which still never waits, and a bridge task of
//! its own (`bridge.rs`) that publishes what the server's clients say and do on one Redis
//! channel and hands what the other servers publish to the broker (`broker/cluster.rs`). So
//! clients of different servers share rooms, see each other in `/who` and `/rooms`, and reach
//! each other with `/msg`. A name is claimed in Redis before anyone may take it, so it is unique
//! across servers; the history moves to a Redis Stream per room, so every server replays the same
//! one. Redis going away costs only the other servers: each one goes on serving its own clients,
//! tells them so once, counts what it could not publish (`/stats`: `unpublished`; `/metrics`:
//! `fanout_bridge_unpublished_total`, beside `fanout_redis_connected`), and finds the others
//! again when Redis is back. Binary messages stay on their server. Without `--redis`,
//! nothing changes: the server is chapter 10's, SQLite and all.
//!
//! What follows is chapter 10's account, which still holds.
//!
//! Chapter 10: history.
//!
//! Until now nothing said survived a restart, and a newcomer walked into a room in silence. Here
//! every message a client says is kept in SQLite (`storage.rs`, `--db`), by a task of its own
//! that the broker hands writes to without ever waiting; a client that joins a room gets its
//! last `--history` messages, marked as history, then the live ones, with nothing lost or
//! repeated at the seam (`broker/history.rs`); `/history [N]` asks again. A database that fails
//! costs the history, never the chat.
//!
//! Limits (chapter 10, `limits.rs`, `origin.rs`): each client's reader takes a token from its own
//! bucket for every message (⑰, `--rate-limit`, `--rate-burst`): one over the limit is dropped
//! and its sender told once, and one still flooding after `--rate-limit-grace` is closed with 1008.
//! One address holds at most `--max-connections-per-ip` connections, terminals included (⑱, 429
//! beside the total's 503), and a handshake from a page of another origin gets 403 (⑲,
//! `--allow-origin`). The broker keeps none of it: the reader and the handshake decide.
//!
//! Measured (chapter 10, `metrics.rs`, `trace.rs`): `GET /metrics` shows the counts in the
//! Prometheus text format (connections by transport, messages, drops, disconnects and refusals
//! by reason, the broker's queue and latency, the database's writes), read from the same atomics
//! as `/stats`; and every line a connection logs carries its span: id, name, room, transport.
//!
//! What follows is chapter 09's account, which still holds.
//!
//! Chapter 09: rooms.
//!
//! Until now every message went to everybody, from nobody in particular. Here the relay becomes
//! a chat: every client has a name (`names.rs`), is in one room at a time, and talks in lines
//! where a leading `/` starts a command (`command.rs`); what the server sends is one message
//! type, JSON for the browser and a readable line for a terminal (`message.rs`). The broker
//! keeps the rooms and the names next to its clients and is still the only one to touch them,
//! so it still needs no lock (`broker.rs`, `broker/commands.rs`). With `--tcp`, clients like
//! `nc` join the same rooms through the same broker (`tcp.rs`). The rest is chapter 08's, but
//! for the page and the TCP listener in `serve`.
//!
//! What follows is chapter 08's account, which still holds.
//!
//! Chapter 08: throughput.
//!
//! Chapters 04 to 07 are correct but slow, and under a burst the slowness costs a healthy client
//! messages: its writer flushed every message on its own, so a burst filled its queue faster than
//! the writer emptied it. Here the writer sends everything queued as one batch (⑬), queues are
//! bounded in bytes (⑭, `--queue-bytes`, in `outbox.rs`), every connection's buffers are sized
//! for chat messages (⑮), and the kernel sends each batch at once (⑯). A message's payload is
//! shared by every queue it is in, never copied per recipient.
//!
//! Everything chapter 07 built still holds. Chapter 06 bounded what a stranger may *send*;
//! chapter 07 bounded what a stranger may *withhold*:
//! a client that reads nothing, one that stops answering pings, one that never finishes its HTTP
//! headers. Each holds a socket, tasks and memory for as long as it likes unless a clock says
//! otherwise, so each gets one: a write timeout (and the broker's stall limit, which is the same
//! duration seen from the broker's side), an idle timeout, and a header timeout, for which the
//! server now runs its own accept loop instead of `axum::serve`.
//!
//! The failure points, numbered in the code's comments (①–⑫ since chapters 04–07, ⑬–⑯ since
//! chapter 08, ⑰–⑲ since chapter 10, ⑳–㉓ since chapter 11):
//!
//! | #  | Where                               | What happens                                        |
//! |----|-------------------------------------|-----------------------------------------------------|
//! | ①  | reader: `events.send`               | waits while the broker's queue is full; fails once the broker is gone: Close 1011 |
//! | ②  | broker: `events.recv()` is `None`   | every sender is gone: the broker returns            |
//! | ③  | broker: the forwarding loop         | one client's trouble never stops it                 |
//! | ④  | broker: `try_send`                  | Full: that client misses the message; Closed: it is removed |
//! | ⑤  | writer: the outbox is closed        | the broker let go of this client: Close 1011        |
//! | ⑥  | `serve`: the broker task ended      | every client gets 1011, `serve` returns an error    |
//! | ⑦  | reader: tungstenite refuses input   | Close 1002, 1007 or 1009, nobody else sees it       |
//! | ⑧  | `upgrade`: no place left            | 503 before any WebSocket exists                     |
//! | ⑨  | writer: a write takes too long      | `--write-timeout`: the client is hung up on         |
//! | ⑩  | reader: nothing heard               | `--idle-timeout`: Close 1001 (a terminal: asked first, then a last line) |
//! | ⑪  | broker: a queue full for too long   | the stall limit (`--write-timeout`): let go, then ⑤ |
//! | ⑫  | accept loop: headers too slow       | `--header-timeout`: hyper closes the connection     |
//! | ⑬  | writer: messages piled up           | one batch: `recv_many`, `feed` each, one flush      |
//! | ⑭  | broker: a queue over its bytes      | `--queue-bytes`: Full, as for a full count (④)      |
//! | ⑮  | upgrade: buffers                    | 4 KiB to read into, a write buffer that grows to 16 KiB |
//! | ⑯  | accept loop: Nagle's algorithm      | off: each flush leaves at once                      |
//! | ⑰  | reader: over `--rate-limit`         | dropped, one warning per flood; past the grace: Close 1008 (TCP: a line, hung up) |
//! | ⑱  | `upgrade`, TCP welcome: one address | `--max-connections-per-ip`: 429 (TCP: one line), before any WebSocket |
//! | ⑲  | `upgrade`: a foreign `Origin`       | 403 with a reason, before any place is taken         |
//! | ⑳  | broker: the bridge's queue is full  | the other servers miss that news (`unpublished`, `queue_full`); the chat here goes on |
//! | ㉑  | bridge: Redis out of reach          | clients told once; news dropped and counted (`redis_away`); names provisional; probes with a backoff |
//! | ㉒  | bridge: the others' news piles up   | what does not fit in the bridge's queue is dropped on arrival (`unheard`) |
//! | ㉓  | broker: lines behind a name's claim | held in order, at most 32 or 1 MiB: past that, an error and the line is not carried out; 10 s without an answer: carried out anyway |

// No panics by construction, as far as a linter can see. Each lint below turns one well-known way
// to panic into an error when `cargo clippy` checks this crate (CI runs it on every change):
// - `unwrap()` and `expect()` on an `Option` or a `Result`;
// - `panic!`, `unreachable!`, `todo!` and `unimplemented!`;
// - indexing and slicing, `v[i]` and `&v[a..b]`, and slicing a string, which also panics at a
//   byte inside a character: the index may be out of range;
// - arithmetic (`+`, `-`, `*`, `/`, `%`, `<<`) on integers, durations and instants: it may overflow
//   (a panic in debug builds, a silent wrap in release) or divide by zero. `saturating_*` and
//   `checked_*` say instead what happens at the edge. Chapter 05's heartbeat computed its first
//   tick as `Instant::now() + ping_interval`, and given `--ping-interval 18000000000000000000s`
//   it panicked there as soon as a client connected: this lint flags that line.
// The tests allow them back: a failing assertion is a panic.
//
// What that proves: no line of this crate panics in one of those ways. What it does not prove:
// - That the code we call never panics: the lints do not look inside tokio, hyper, axum or std.
//   `mpsc::channel(0)`, `interval(Duration::ZERO)`, an interval whose next tick is out of an
//   `Instant`'s range, `Semaphore::new` beyond its maximum: each panics inside a library. Keeping
//   their inputs in range is the job of the flag parsers (`config.rs`), and of reading the
//   libraries' documentation.
// - That memory suffices: running out aborts the process, and so does a stack overflow. The
//   limits bound what one client can make us hold; no lint proves a bound.
// - What a panic does if one happens anyway: tokio catches a panic in a spawned task and ends only
//   that task. A lost connection is one lost client; a lost broker is noticed by `serve` (⑥). A
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
// The allow below keeps the compiler quiet about what the todo!s leave unused. Once the stage
// tests pass, delete it and these two lines, to hear the compiler's warnings about your code again.
#![allow(
    clippy::todo,
    dead_code,
    unreachable_code,
    unused_imports,
    unused_mut,
    unused_variables
)]

use std::{future::Future, io, net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{ConnectInfo, State, ws::WebSocketUpgrade},
    http::{HeaderMap, StatusCode, header},
    response::{Html, IntoResponse, Json, Response},
    routing::get,
};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tokio::{
    net::TcpListener,
    sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot},
    task::JoinHandle,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;

pub mod bridge;
pub mod broker;
pub mod command;
pub mod config;
mod connection;
pub mod limits;
pub mod message;
pub mod metrics;
pub mod names;
pub mod origin;
pub mod outbox;
pub mod storage;
pub mod tcp;
mod trace;

use broker::{ConnId, Event};
pub use config::Config;
use connection::Connection;
use limits::{IpPlace, PerIp, RateLimit};
use message::Wire;
use metrics::{Disconnect, Metrics, Refusal};

/// The name the browser page shows in its header.
pub const CHAPTER: &str = "11-many-servers";

/// How long a connection that is being closed by the server waits for its Close frame to go out,
/// and then for the client's answer. A client that reads nothing would make both waits endless.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long `serve` waits, after it stops accepting, for the open connections to finish. Each one
/// finishes within about [`CLOSE_TIMEOUT`] on its own; this is the backstop should one not.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// What every handler can reach: the flags, the way to the broker, and what shutting down needs.
#[derive(Clone)]
pub(crate) struct AppState {
    config: Config,
    /// `--idle-timeout`, or its default, checked against `--ping-interval`.
    idle_timeout: Duration,
    events: mpsc::Sender<Event>,
    /// One permit per connected client, `--max-connections` in all.
    places: Arc<Semaphore>,
    /// ⑱ The places each address holds, `--max-connections-per-ip` each (`None`: off).
    per_ip: Option<Arc<PerIp>>,
    /// Cancelled when the server starts shutting down. Every connection watches it.
    stopping: CancellationToken,
    /// Every connection's task, so `serve` can wait for them to finish.
    tasks: TaskTracker,
    /// What `/metrics` shows; the broker counts into the same (see `serve`).
    metrics: Arc<Metrics>,
}

/// The routes: the browser page at `/`, the WebSocket at `/ws`, the broker's counts at `/stats`
/// and `/metrics`. Connections reach the broker through `events`, close when `stopping` is
/// cancelled and are tracked by `tasks`. Fails if the flags contradict each other.
pub fn app(
    config: Config,
    events: mpsc::Sender<Event>,
    stopping: CancellationToken,
    tasks: TaskTracker,
) -> io::Result<Router> {
    let metrics = Arc::default();
    Ok(router(state(config, events, stopping, tasks, metrics)?))
}

/// What [`app`]'s handlers share, and the TCP clients too: they take their places among the
/// same `--max-connections`.
fn state(
    config: Config,
    events: mpsc::Sender<Event>,
    stopping: CancellationToken,
    tasks: TaskTracker,
    metrics: Arc<Metrics>,
) -> io::Result<AppState> {
    let idle_timeout = config.idle_timeout()?;
    config.queue_budget()?;
    let places = Arc::new(Semaphore::new(config.max_connections));
    let per_ip = config.max_connections_per_ip.map(PerIp::new);
    Ok(AppState {
        config,
        idle_timeout,
        events,
        places,
        per_ip,
        stopping,
        tasks,
        metrics,
    })
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/ws", get(upgrade))
        .route("/stats", get(stats))
        .route("/metrics", get(metrics::scrape))
        .with_state(state)
}

/// Serves on `listener` until `shutdown` resolves, then closes every connection with Close 1001
/// and returns once they are closed (or after [`SHUTDOWN_GRACE`]).
///
/// ⑥ If the broker ends first, for whatever reason, every client gets Close 1011 and `serve`
/// returns an error, so the process exits non-zero with the reason in its log: a server whose
/// broker is gone would still accept clients, and never pass on a word.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let (events, events_rx) = mpsc::channel(config.queue_capacity);
    let (broker, metrics, storage_task) = match config.redis.clone() {
        // With `--redis`, the bridge keeps the history (in Redis) and links this server to the
        // others. Redis need not be up: the server starts anyway, and serves its own clients.
        Some(redis) => {
            let (links, bridge_task) =
                bridge::start(redis, config.history_keep, events.downgrade()).await?;
            // The bridge's counts are shown too: what could not be published, what was not
            // heard, whether Redis answers.
            let metrics = Arc::new(
                Metrics::new(Arc::clone(&links.history_counts)).with_bridge(&links.counts),
            );
            let history = broker::History::new(
                links.jobs.clone(),
                config.history,
                0,
                Arc::clone(&links.history_counts),
            );
            let broker = broker::Broker::new(config.write_timeout)
                .with_cluster(broker::Cluster::new(&links))
                .with_history(history)
                .with_metrics(Arc::clone(&metrics));
            (broker, metrics, bridge_task)
        }
        // The history first: a database that cannot be opened (a missing directory, a file
        // that is not a database, one another server holds) stops the server here, with the
        // reason.
        None => {
            let (storage, last) = storage::open(&config.db, config.history_keep).await?;
            println!("history in {}", config.db.display());
            let counts = storage.counts();
            let (jobs, storage_task) = storage::spawn(storage, storage::QUEUE, events.downgrade());
            // One registry per server: what this server counts, nobody else's (see metrics.rs).
            let metrics = Arc::new(Metrics::new(Arc::clone(&counts)));
            let history = broker::History::new(jobs, config.history, last, counts);
            let broker = broker::Broker::new(config.write_timeout)
                .with_history(history)
                .with_metrics(Arc::clone(&metrics));
            (broker, metrics, storage_task)
        }
    };
    let broker = tokio::spawn(broker::run_broker(events_rx, broker));
    let outcome = serve_with_broker_task(listener, config, shutdown, events, broker, metrics).await;
    // The connections are closed, so the broker ends, and the storage task writes what it was
    // last handed, then ends too: what was said just before a shutdown is kept.
    if tokio::time::timeout(SHUTDOWN_GRACE, storage_task)
        .await
        .is_err()
    {
        tracing::warn!("the history was still being written after the grace period");
    }
    outcome
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
    metrics: Arc<Metrics>,
) -> io::Result<()> {
    let stopping = CancellationToken::new();
    let tasks = TaskTracker::new();
    let header_timeout = config.header_timeout;
    let tcp = config.tcp.clone();
    let state = state(config, events, stopping.clone(), tasks.clone(), metrics)?;
    // Terminal clients, if asked for: accepted until this function returns, however it returns.
    let done = CancellationToken::new();
    let _done_on_return = done.clone().drop_guard();
    if let Some(addr) = tcp {
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|err| io::Error::new(err.kind(), format!("cannot listen on {addr}: {err}")))?;
        // The real port (`:0` picks one), for whoever waits for this line, as for `listening on`.
        println!("tcp listening on {}", listener.local_addr()?);
        tasks.spawn(tcp::accept(listener, state.clone(), done.clone()));
    }
    let app = router(state);
    let outcome = accept(listener, app, header_timeout, &tasks, shutdown, broker).await;
    done.cancel();
    if outcome.is_ok() {
        // Every connection is watching this token: each one now says goodbye to its client.
        stopping.cancel();
    }
    // ⑥ Otherwise the broker is gone, and every outbox with it: each writer has seen its outbox
    // close and says Close 1011 (⑤). Cancelling `stopping` would race that with Close 1001.
    // The WebSockets are closing now, and we wait for them, but not forever.
    tasks.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = tasks.len(),
            "connections still open after the grace period; leaving them"
        );
    }
    outcome
}

/// Pause after `accept` fails for want of resources (no file descriptor left, typically): without
/// it, the loop would spin on the same error as fast as the CPU allows.
pub(crate) const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// ⑯ Whether to switch off Nagle's algorithm on every connection. With it on (the default for a
/// TCP socket), the kernel holds back a small write while an earlier one is still waiting for its
/// acknowledgement, and the client's kernel may wait up to 40 ms before it acknowledges: a
/// small batch can sit in the kernel for that long. Our writer already gathers what it has into
/// one flush, so there is nothing for the kernel to gather: each flush should leave at once.
pub(crate) const NO_DELAY: bool = true;

/// Accepts connections until `shutdown` resolves (`Ok`) or the broker ends (`Err`), and serves
/// each one with hyper, as `axum::serve` does, plus what `axum::serve` does not offer: ⑫ a
/// deadline for the request headers. Without one, a client that sends half a request line and
/// then nothing holds its connection (a socket, a task) for as long as it likes; a few thousand
/// such clients (the slowloris attack) hold them all.
async fn accept(
    listener: TcpListener,
    app: Router,
    header_timeout: Duration,
    tasks: &TaskTracker,
    shutdown: impl Future<Output = ()>,
    mut broker: JoinHandle<()>,
) -> io::Result<()> {
    // hyper_util's `auto` builder, held to HTTP/1.1, rather than hyper's own `http1` one: its
    // connections with upgrades (which WebSockets need) are the ones `GracefulShutdown` can watch.
    let mut http = auto::Builder::new(TokioExecutor::new()).http1_only();
    // hyper keeps time with the timer it is given; a header timeout without a timer panics.
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    // Watches every HTTP connection so that, once we stop accepting, each can be told to finish
    // the request it is serving, if any, and close. (An upgraded WebSocket is no longer an HTTP
    // connection: `stopping` closes those.)
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    let outcome = loop {
        tokio::select! {
            // In this order: once shutdown is signalled or the broker has ended, no connection
            // still waiting in the backlog is accepted.
            biased;
            () = &mut shutdown => break Ok(()),
            ended = &mut broker => break Err(broker_gone(ended)),
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    // ⑯ Send each flush at once (see NO_DELAY).
                    if let Err(err) = socket.set_nodelay(NO_DELAY) {
                        tracing::debug!(%err, "cannot set TCP_NODELAY");
                    }
                    let app = TowerToHyperService::new(app.clone());
                    // ⑱ Who is asking, for the per-address limit: axum's `ConnectInfo` in each
                    // request, which `axum::serve` would add, and which our own loop adds here.
                    let service = hyper::service::service_fn(move |mut request: axum::extract::Request<hyper::body::Incoming>| {
                        request.extensions_mut().insert(ConnectInfo(peer));
                        hyper::service::Service::call(&app, request)
                    });
                    let connection = http
                        .serve_connection_with_upgrades(TokioIo::new(socket), service)
                        .into_owned();
                    // An error it ends with (a header timeout, a malformed request) has been
                    // answered, or the socket closed, by hyper: nothing is left to do with it.
                    tasks.spawn(graceful.watch(connection));
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
    };
    // Tells each HTTP connection to finish and close; `serve` waits for them with its other tasks.
    tasks.spawn(graceful.shutdown());
    outcome
}

/// ⑥ The error `serve` returns when the broker has ended: it returned (it should not while
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

/// A connected client's places: one among `--max-connections` (⑧) and one among its address's
/// `--max-connections-per-ip` (⑱). Both are given back when it is dropped, with the connection,
/// however that ends.
pub(crate) struct Place {
    _total: OwnedSemaphorePermit,
    _ip: Option<IpPlace>,
}

/// Why a client got no [`Place`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    /// ⑱ Its address holds `--max-connections-per-ip` connections already: 429.
    PerIp(usize),
    /// ⑧ The server holds `--max-connections`: 503.
    Total(usize),
}

impl Full {
    /// What the client is told, in plain text.
    pub(crate) fn reason(self) -> String {
        match self {
            Full::PerIp(limit) => format!(
                "Your address already has the {limit} connections this server allows one \
                 address. Close one, then try again.\n"
            ),
            Full::Total(limit) => {
                format!("This server already has the {limit} clients it allows. Try again later.\n")
            }
        }
    }
}

/// ⑧ ⑱ Places for one more client from `ip`, or why there are none. The address's limit is
/// checked first: a client over its own limit is told so (429), whether the server is full or
/// not, and one refused for the total gives its address's place back at once (it is dropped).
/// A refusal for the total is counted by the broker (`/stats`: `refused`), the others here.
pub(crate) async fn take_place(state: &AppState, ip: std::net::IpAddr) -> Result<Place, Full> {
    let ip_place = match &state.per_ip {
        None => None,
        Some(per_ip) => match per_ip.take(ip) {
            Some(place) => Some(place),
            None => {
                tracing::warn!(%ip, limit = per_ip.limit(), "too many clients from one address: refusing one");
                state.metrics.refused.inc(Refusal::PerIp);
                return Err(Full::PerIp(per_ip.limit().get()));
            }
        },
    };
    let Ok(total) = Arc::clone(&state.places).try_acquire_owned() else {
        tracing::warn!(
            limit = state.config.max_connections,
            "too many clients: refusing one"
        );
        let _ = state.events.send(Event::Refused).await;
        return Err(Full::Total(state.config.max_connections));
    };
    Ok(Place {
        _total: total,
        _ip: ip_place,
    })
}

impl AppState {
    /// ⑰ A fresh token bucket for one client, or `None` with `--rate-limit off`.
    pub(crate) fn rate_limit(&self) -> Option<RateLimit> {
        let config = &self.config;
        config
            .rate_limit
            .map(|rate| RateLimit::new(rate, config.rate_burst, config.rate_limit_grace))
    }
}

/// ⑮ What each connection reads the socket into. tungstenite's default, 128 KiB, is allocated
/// when the connection opens and kept for as long as it stays open, even by a client that never
/// says a word: that was most of what a connection cost until chapter 07. A chat message is far
/// smaller; 4 KiB still takes dozens of them per read, and a bigger frame gets the room it needs
/// when its header arrives (then the buffer keeps that size).
pub const READ_BUFFER_SIZE: usize = 4 << 10;

/// ⑮ How much of a batch tungstenite collects before it writes to the socket (`flush` writes the
/// rest). The buffer grows only as a batch needs it (an idle client costs nothing here) and keeps
/// its size afterwards, so this is also what a busy client keeps: tungstenite's default is 128
/// KiB. 16 KiB is a few hundred small messages per system call, and what fits in a socket's send
/// buffer at once.
pub const WRITE_BUFFER_SIZE: usize = 16 << 10;

/// A plain HTTP request to `/ws` is refused by the extractor (a 4xx). A handshake from a page
/// whose origin is not allowed gets 403 (⑲), one from an address over its limit 429 (⑱), one
/// beyond the total 503 (⑧), each before any WebSocket exists, with a plain-text reason. A
/// WebSocket handshake joins the broker *before* the handshake response goes out, so a client
/// that sees its connection open is already in the map: it gets every message sent after that
/// moment.
async fn upgrade(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    // ⑲ First, as it costs nothing and takes nothing: a foreign page gets no place at all.
    let origin = headers.get(header::ORIGIN).map(|value| value.as_bytes());
    let host = headers.get(header::HOST).map(|value| value.as_bytes());
    if let Err(refused) = origin::check(origin, host, &state.config.allow_origin) {
        tracing::warn!(%peer, ?refused, "refusing a handshake from a foreign page");
        state.metrics.refused.inc(Refusal::Origin);
        return (StatusCode::FORBIDDEN, refused.reason()).into_response();
    }
    let place = match take_place(&state, peer.ip()).await {
        Ok(place) => place,
        Err(full) => {
            let status = match full {
                Full::PerIp(_) => StatusCode::TOO_MANY_REQUESTS,
                Full::Total(_) => StatusCode::SERVICE_UNAVAILABLE,
            };
            return (status, full.reason()).into_response();
        }
    };
    let id = ConnId::next();
    let span = trace::connection_span(id, Wire::WebSocket, peer);
    let (outbox, outbox_rx) = outbox::outbox(state.config.queue_capacity, state.config.queue_bytes);
    let joined = Event::Join {
        id,
        outbox,
        wire: Wire::WebSocket,
        span: span.clone(),
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
        .max_frame_size(limit.saturating_mul(config::FRAME_LIMIT_FACTOR))
        // ⑮ tungstenite's defaults suit one busy connection, not thousands of quiet ones.
        .read_buffer_size(READ_BUFFER_SIZE)
        .write_buffer_size(WRITE_BUFFER_SIZE)
        .on_failed_upgrade(move |_| {
            // This callback cannot wait for room in the broker's queue, so a task does the waiting.
            tokio::spawn(async move {
                let reason = Disconnect::Closed;
                let _ = on_failure.send(Event::Leave { id, reason }).await;
            });
        })
        .on_upgrade(move |socket| {
            // Tracked, so that `serve` can wait for this connection to finish when shutting down.
            let tasks = state.tasks.clone();
            let connection = Connection::new(socket, id, outbox_rx, state, place).run();
            tasks.track_future(connection.instrument(span))
        })
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
        // The handshake needs the peer's address (⑱), which `serve`'s own loop adds.
        let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
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

    /// ⑥ If the broker task ends (here it is aborted; a panic ends it the same way), every
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
            Arc::default(),
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
}
