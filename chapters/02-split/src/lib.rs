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

// ANCHOR: config
/// This chapter's flags (besides `--addr`, which `main.rs` owns).
#[derive(Debug, Clone, clap::Parser)]
pub struct Config {
    /// How long the writer waits with nothing to send before it pings the client (e.g. 30s, 200ms).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = fanout_kit::positive_duration)]
    pub ping_interval: Duration,
}
// ANCHOR_END: config

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

// ANCHOR: connection
/// One connection: the writer runs as its own task, the reader runs here. The channel between
/// them is the writer's outbox: whoever holds a sender can have a message written to this client.
async fn connection(socket: WebSocket, config: Config) {
    tracing::info!("client connected");
    // ANCHOR: exercise-connection
    let (sink, stream) = socket.split();
    let (outbox, outbox_rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write(sink, outbox_rx, config.ping_interval));
    read(stream, outbox).await;
    // The reader dropped the outbox's only sender, so the writer's `recv` returns `None` and it
    // finishes once it has written what was queued.
    let _ = writer.await;
    // ANCHOR_END: exercise-connection
    tracing::info!("client disconnected");
}
// ANCHOR_END: connection

// ANCHOR: read
/// Reads until the client goes away, queuing each data message for the writer to echo.
async fn read(mut stream: SplitStream<WebSocket>, outbox: mpsc::UnboundedSender<Message>) {
    // ANCHOR: exercise-read
    while let Some(Ok(message)) = stream.next().await {
        match message {
            Message::Text(_) | Message::Binary(_) => {
                if outbox.send(message).is_err() {
                    break; // the writer is gone, so nothing we read can be answered
                }
            }
            // Pings are answered by axum; a Close is answered by the next read, which ends the loop.
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) => {}
        }
    }
    // ANCHOR_END: exercise-read
}
// ANCHOR_END: read

// ANCHOR: write
/// Writes what arrives in the outbox, and a Ping whenever `ping_interval` passes with nothing
/// written: the concurrent writing a single read-then-write loop cannot do.
async fn write(
    mut sink: SplitSink<WebSocket, Message>,
    mut outbox: mpsc::UnboundedReceiver<Message>,
    ping_interval: Duration,
) {
    // ANCHOR: exercise-write
    let mut heartbeat =
        tokio::time::interval_at(tokio::time::Instant::now() + ping_interval, ping_interval);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let message = tokio::select! {
            queued = outbox.recv() => match queued {
                Some(message) => message,
                None => break, // the reader is done: nothing more will be queued
            },
            _ = heartbeat.tick() => Message::Ping(Default::default()),
        };
        if sink.send(message).await.is_err() {
            break; // the client is gone
        }
        // Whatever we just wrote shows the connection is in use: the next ping can wait.
        heartbeat.reset();
    }
    // ANCHOR_END: exercise-write
}
// ANCHOR_END: write
