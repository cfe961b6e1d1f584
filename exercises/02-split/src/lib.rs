// Fan-out workshop, exercise 02-split: generated from chapters/02-split by `cargo workshop generate`.
//
// Your part: replace the 3 `todo!(..)`s in this file with working code. The rest already works;
// leave it as it is. `cargo workshop check 02` runs the stage tests,
// `cargo workshop hint 02` gives a hint, `cargo workshop reset 02` starts over.
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

//! Chapter 02: one task reads, another writes.
//!
//! The echo loop of chapter 01 can only write after it has read something. Splitting the socket
//! into a reader task and a writer task, joined by a channel, lets the writer speak on its own:
//! here it sends a Ping every `--ping-interval` while nothing else is being written.

use std::{future::Future, io, time::Duration};

use axum::{
    Router,
    extract::{
        State,
        ws::{Message, WebSocket, WebSocketUpgrade},
    },
    response::{Html, Response},
    routing::get,
};
use futures_util::{
    SinkExt, StreamExt,
    stream::{SplitSink, SplitStream},
};
use tokio::{net::TcpListener, sync::mpsc};

/// The name the browser page shows in its header.
pub const CHAPTER: &str = "02-split";

/// This chapter's flags (besides `--addr`, which `main.rs` owns).
#[derive(Debug, Clone, clap::Parser)]
pub struct Config {
    /// How long the writer waits with nothing to send before it pings the client (e.g. 30s, 200ms).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = fanout_kit::positive_duration)]
    pub ping_interval: Duration,
}

/// The routes: the browser page at `/`, the WebSocket at `/ws`.
pub fn app(config: Config) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/ws", get(upgrade))
        .with_state(config)
}

/// Serves `app` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    axum::serve(listener, app(config))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn page() -> Html<String> {
    fanout_kit::page(CHAPTER)
}

/// A plain HTTP request to `/ws` is refused by the extractor (a 4xx); a WebSocket handshake is
/// accepted and the connection handed to `connection`.
async fn upgrade(State(config): State<Config>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |socket| connection(socket, config))
}

/// One connection: the writer runs as its own task, the reader runs here. The channel between
/// them is the writer's outbox: whoever holds a sender can have a message written to this client.
async fn connection(socket: WebSocket, config: Config) {
    tracing::info!("client connected");
    todo!(
        "Done when: each connection runs a reader and a writer side by side, joined by a queue, and is logged as disconnected only once both are done. Tests: `heartbeat::keeps_echoing_between_pings`, `contract::logs_connects_and_disconnects_to_stderr`."
    );
    tracing::info!("client disconnected");
}

/// Reads until the client goes away, queuing each data message for the writer to echo.
async fn read(mut stream: SplitStream<WebSocket>, outbox: mpsc::UnboundedSender<Message>) {
    todo!(
        "Done when: every text or binary message the client sends reaches the writer's queue, in order; reading stops when the client leaves or the queue is closed. Tests: `echo::echoes_in_the_order_sent`, `echo::echoes_binary_as_binary`."
    )
}

/// Writes what arrives in the outbox, and a Ping whenever `ping_interval` passes with nothing
/// written: the concurrent writing a single read-then-write loop cannot do.
async fn write(
    mut sink: SplitSink<WebSocket, Message>,
    mut outbox: mpsc::UnboundedReceiver<Message>,
    ping_interval: Duration,
) {
    todo!(
        "Done when: everything queued reaches the client in order, and a client that stays silent gets a Ping every `--ping-interval`. Tests: `echo::echoes_text_as_text`, `heartbeat::pings_a_silent_client_every_interval`."
    )
}
