// Fan-out workshop, exercise 03-broker: generated from chapters/03-broker by `cargo workshop generate`.
//
// Your part: replace the 2 `todo!(..)`s in this file with working code. The rest already works;
// leave it as it is. `cargo workshop check 03` runs the stage tests,
// `cargo workshop hint 03` gives a hint, `cargo workshop reset 03` starts over.
//
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

//! Chapter 03: a broker actor.
//!
//! Every connection still has a reader and a writer, but the reader no longer talks to its own
//! writer. It tells the broker, a single task that owns the map of all connections, and the
//! broker forwards each message to every *other* client's writer.

use std::{future::Future, io, time::Duration};

use axum::{
    Router,
    extract::{
        State,
        ws::{Message, WebSocket, WebSocketUpgrade},
    },
    http::StatusCode,
    response::{Html, IntoResponse, Response},
    routing::get,
};
use futures_util::{
    SinkExt, StreamExt,
    stream::{SplitSink, SplitStream},
};
use tokio::{net::TcpListener, sync::mpsc};

pub mod broker;

use broker::{ConnId, Event};

/// The name the browser page shows in its header.
pub const CHAPTER: &str = "03-broker";

/// This chapter's flags (besides `--addr`, which `main.rs` owns).
#[derive(Debug, Clone, clap::Parser)]
pub struct Config {
    /// How long the writer waits with nothing to send before it pings the client (e.g. 30s, 200ms).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = fanout_kit::positive_duration)]
    pub ping_interval: Duration,
}

/// What every handler can reach: the flags, and the way to the broker.
#[derive(Clone)]
struct AppState {
    config: Config,
    events: mpsc::UnboundedSender<Event>,
}

/// The routes: the browser page at `/`, the WebSocket at `/ws`. Starts the broker, so it must be
/// called inside a tokio runtime.
pub fn app(config: Config) -> Router {
    let events = broker::spawn();
    Router::new()
        .route("/", get(page))
        .route("/ws", get(upgrade))
        .with_state(AppState { config, events })
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

/// A plain HTTP request to `/ws` is refused by the extractor (a 4xx). A WebSocket handshake joins
/// the broker *before* the handshake response goes out, so a client that sees its connection open
/// is already in the map: it gets every message sent after that moment.
async fn upgrade(State(state): State<AppState>, ws: WebSocketUpgrade) -> Response {
    todo!(
        "Done when: a client is in the broker's map before its handshake is answered, so it gets everything sent once its connection is open. Tests: `broadcast::a_late_joiner_gets_only_what_is_sent_after_it_joined`, `broadcast::delivers_to_every_other_client`."
    )
}

/// One connection: the writer drains the outbox the broker fills; the reader, here, passes what
/// the client says to the broker.
async fn connection(
    socket: WebSocket,
    id: ConnId,
    outbox_rx: mpsc::UnboundedReceiver<Message>,
    state: AppState,
) {
    tracing::info!(%id, "client connected");
    let (sink, stream) = socket.split();
    let writer = tokio::spawn(write(sink, outbox_rx, state.config.ping_interval));
    read(stream, id, &state.events).await;
    // The broker drops our outbox when it handles the Leave, and that ends the writer.
    let _ = state.events.send(Event::Leave { id });
    let _ = writer.await;
    tracing::info!(%id, "client disconnected");
}

/// Reads until the client goes away, handing each data message to the broker.
async fn read(
    mut stream: SplitStream<WebSocket>,
    id: ConnId,
    events: &mpsc::UnboundedSender<Event>,
) {
    todo!(
        "Done when: every text or binary message the client sends reaches the broker as a message from this connection, in order, until the client leaves or the broker stops. Tests: `broadcast::delivers_to_every_other_client`, `broadcast::forwards_text_and_binary_verbatim`."
    )
}

/// Writes what arrives in the outbox, and a Ping whenever `ping_interval` passes with nothing
/// written: the concurrent writing a single read-then-write loop cannot do.
async fn write(
    mut sink: SplitSink<WebSocket, Message>,
    mut outbox: mpsc::UnboundedReceiver<Message>,
    ping_interval: Duration,
) {
    let mut heartbeat =
        tokio::time::interval_at(tokio::time::Instant::now() + ping_interval, ping_interval);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let message = tokio::select! {
            queued = outbox.recv() => match queued {
                Some(message) => message,
                None => break, // the broker dropped our outbox: nothing more will come
            },
            _ = heartbeat.tick() => Message::Ping(Default::default()),
        };
        if sink.send(message).await.is_err() {
            break; // the client is gone
        }
        // Whatever we just wrote shows the connection is in use: the next ping can wait.
        heartbeat.reset();
    }
}
