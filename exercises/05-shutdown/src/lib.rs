// Fan-out workshop, exercise 05-shutdown: generated from chapters/05-shutdown by `cargo workshop generate`.
//
// Your part: replace the 2 `todo!(..)`s in this file with working code. The rest already works;
// leave it as it is. `cargo workshop check 05` runs the stage tests,
// `cargo workshop hint 05` gives a hint, `cargo workshop reset 05` starts over.
//
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

//! Chapter 05: shutting down cleanly, and asking the broker.
//!
//! Until now a connection's writer stopped only when the broker dropped its outbox, and a writer
//! stuck on a client that reads nothing could not be stopped at all; on Ctrl+C the process simply
//! vanished under its clients. Here the reader tells the writer when to finish, over a oneshot
//! channel, and the writer listens for that even while a send is stuck. On Ctrl+C or SIGTERM
//! every connection hears it, says Close 1001 (going away) to its client, and `serve` returns
//! once they are done, or after a short grace period, whichever comes first.
//!
//! The same oneshot idea lets anyone ask the broker a question: `GET /stats` sends it a request
//! carrying a oneshot sender, and the broker answers with its counts.

use std::{future::Future, io, time::Duration};

use axum::{
    Router,
    extract::{State, ws::WebSocketUpgrade},
    http::StatusCode,
    response::{Html, IntoResponse, Json, Response},
    routing::get,
};
use tokio::{
    net::TcpListener,
    sync::{mpsc, oneshot},
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub mod broker;
pub mod config;
mod connection;

use broker::{ConnId, Event};
pub use config::Config;
use connection::Connection;

/// The name the browser page shows in its header.
pub const CHAPTER: &str = "05-shutdown";

/// How long a connection that is being closed by the server waits for its Close frame to go out,
/// and then for the client's answer. A client that reads nothing would make both waits endless.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long `serve` waits, after it stops accepting, for the open connections to finish. Each one
/// finishes within about [`CLOSE_TIMEOUT`] on its own; this is the backstop should one not.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// What every handler can reach: the flags, the way to the broker, and what shutting down needs.
#[derive(Clone)]
struct AppState {
    config: Config,
    events: mpsc::Sender<Event>,
    /// Cancelled when the server starts shutting down. Every connection watches it.
    stopping: CancellationToken,
    /// Every connection's task, so `serve` can wait for them to finish.
    tasks: TaskTracker,
}

/// The routes: the browser page at `/`, the WebSocket at `/ws`, the broker's counts at `/stats`.
/// Connections close when `stopping` is cancelled and are tracked by `tasks`. Starts the
/// broker, so it must be called inside a tokio runtime.
pub fn app(config: Config, stopping: CancellationToken, tasks: TaskTracker) -> Router {
    let events = broker::spawn(config.queue_capacity);
    Router::new()
        .route("/", get(page))
        .route("/ws", get(upgrade))
        .route("/stats", get(stats))
        .with_state(AppState {
            config,
            events,
            stopping,
            tasks,
        })
}

/// Serves `app` on `listener` until `shutdown` resolves, then closes every connection with
/// Close 1001 and returns once they are closed (or after [`SHUTDOWN_GRACE`]).
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let stopping = CancellationToken::new();
    let tasks = TaskTracker::new();
    let app = app(config, stopping.clone(), tasks.clone());
    let signal = stopping.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            // Every connection is watching this token: each one now says goodbye to its client.
            signal.cancel();
        })
        .await?;
    // axum has stopped accepting and has finished its plain HTTP requests. The WebSockets are
    // ours: they are closing now, and we wait for them, but not forever.
    todo!(
        "Done when: once the server stops, `serve` returns when every connection has ended, or after `SHUTDOWN_GRACE` at the latest, saying how many were left. Tests: `shutdown::shutdown_closes_every_client_with_going_away_and_serve_returns`, `shutdown::shutdown_does_not_wait_for_a_client_that_never_reads`."
    );
    Ok(())
}

async fn page() -> Html<String> {
    fanout_kit::page(CHAPTER)
}

/// `GET /stats`: the broker's counts as JSON. The request travels through the broker's queue like
/// any event, with a oneshot sender for the answer; the broker answers between two events, so
/// the counts are always consistent with each other.
async fn stats(State(state): State<AppState>) -> Response {
    todo!(
        "Done when: `GET /stats` answers with the broker's counts as JSON, and with 503 when the broker is gone before or while it asks. Tests: `stats::stats_is_json_and_starts_at_zero`, `stats::stats_count_a_known_exchange_exactly`."
    )
}

/// A plain HTTP request to `/ws` is refused by the extractor (a 4xx). A WebSocket handshake joins
/// the broker *before* the handshake response goes out, so a client that sees its connection open
/// is already in the map: it gets every message sent after that moment.
async fn upgrade(State(state): State<AppState>, ws: WebSocketUpgrade) -> Response {
    let id = ConnId::next();
    let (outbox, outbox_rx) = mpsc::channel(state.config.queue_capacity);
    if state.events.send(Event::Join { id, outbox }).await.is_err() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let on_failure = state.events.clone();
    ws.on_failed_upgrade(move |_| {
        // This callback cannot wait for room in the broker's queue, so a task does the waiting.
        tokio::spawn(async move {
            let _ = on_failure.send(Event::Leave { id }).await;
        });
    })
    .on_upgrade(move |socket| {
        // Tracked, so that `serve` can wait for this connection to finish when shutting down.
        let tasks = state.tasks.clone();
        tasks.track_future(Connection::new(socket, id, outbox_rx, state).run())
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use stage_tests::Client;

    use super::*;

    /// Serves `/ws` with `events` in place of the broker; returns the address.
    async fn serve_with_broker(events: mpsc::Sender<Event>) -> std::net::SocketAddr {
        let state = AppState {
            config: Config::parse_from(["test"]),
            events,
            stopping: CancellationToken::new(),
            tasks: TaskTracker::new(),
        };
        let app = Router::new().route("/ws", get(upgrade)).with_state(state);
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
}
