//! Chapter 04: bounded queues.
//!
//! Chapter 03's queues had no limit, so a client that stopped reading made the server keep every
//! message for it, forever. Here every queue has room for `--queue-capacity` messages. A reader
//! that finds the broker's queue full waits, which slows down only its own client; the broker,
//! finding a client's queue full, drops the message for that client alone and moves on.

use std::{future::Future, io, time::Duration};

use axum::{
    Router,
    extract::{
        State,
        ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code},
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
pub const CHAPTER: &str = "04-bounded";

// ANCHOR: config
/// This chapter's flags (besides `--addr`, which `main.rs` owns).
#[derive(Debug, Clone, clap::Parser)]
pub struct Config {
    /// How long the writer waits with nothing to send before it pings the client (e.g. 30s, 200ms).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = fanout_kit::positive_duration)]
    pub ping_interval: Duration,
    // Why 256: a client's queue fills whenever messages come in faster than its writer sends them,
    // and that happens to healthy clients too: in a burst, the broker hands out messages faster
    // than a writer, which makes one write per message, can send them. 256 messages absorbs a
    // burst of a couple of hundred (several people pasting at once) without loss even when the
    // writer gets no CPU time meanwhile; with 128, a burst of 200 messages to one client lost some
    // now and then on a busy two-core machine. A client that has stopped reading costs at most 256
    // messages of memory instead of everything sent since it stopped. The broker's own queue gets
    // the same room; when it is full, readers wait, and that costs no memory at all.
    /// How many messages may wait for one client before messages for it are dropped, and for the broker before readers pause (at least 1).
    #[arg(long, value_name = "MESSAGES", default_value_t = 256, value_parser = queue_capacity)]
    pub queue_capacity: usize,
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
// ANCHOR_END: config

/// What every handler can reach: the flags, and the way to the broker.
#[derive(Clone)]
struct AppState {
    config: Config,
    events: mpsc::Sender<Event>,
}

/// The routes: the browser page at `/`, the WebSocket at `/ws`. Starts the broker, so it must be
/// called inside a tokio runtime.
pub fn app(config: Config) -> Router {
    let events = broker::spawn(config.queue_capacity);
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

// ANCHOR: upgrade
/// A plain HTTP request to `/ws` is refused by the extractor (a 4xx). A WebSocket handshake joins
/// the broker *before* the handshake response goes out, so a client that sees its connection open
/// is already in the map: it gets every message sent after that moment.
async fn upgrade(State(state): State<AppState>, ws: WebSocketUpgrade) -> Response {
    // ANCHOR: exercise-upgrade
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
    .on_upgrade(move |socket| connection(socket, id, outbox_rx, state))
    // ANCHOR_END: exercise-upgrade
}
// ANCHOR_END: upgrade

/// One connection: the writer drains the outbox the broker fills; the reader, here, passes what
/// the client says to the broker.
async fn connection(
    socket: WebSocket,
    id: ConnId,
    outbox_rx: mpsc::Receiver<Message>,
    state: AppState,
) {
    tracing::info!(%id, "client connected");
    let (sink, stream) = socket.split();
    let writer = tokio::spawn(write(sink, outbox_rx, state.config.ping_interval));
    read(stream, id, &state.events).await;
    // The broker drops our outbox when it handles the Leave, and that ends the writer.
    let _ = state.events.send(Event::Leave { id }).await;
    let _ = writer.await;
    tracing::info!(%id, "client disconnected");
}

// ANCHOR: read
/// Reads until the client goes away, handing each data message to the broker.
async fn read(mut stream: SplitStream<WebSocket>, id: ConnId, events: &mpsc::Sender<Event>) {
    // ANCHOR: exercise-read
    while let Some(Ok(message)) = stream.next().await {
        match message {
            Message::Text(_) | Message::Binary(_) => {
                // ① When the broker's queue is full, `send` waits for room, and while it waits we
                // read nothing more from this socket: TCP pushes back on this one client, and
                // nothing piles up in our memory.
                if events
                    .send(Event::Message { from: id, message })
                    .await
                    .is_err()
                {
                    // ① The broker is gone: nobody would hear this client. The broker owned our
                    // outbox, so our writer sees it close (⑤) and sends the client a Close.
                    break;
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
    mut outbox: mpsc::Receiver<Message>,
    ping_interval: Duration,
) {
    let mut heartbeat =
        tokio::time::interval_at(tokio::time::Instant::now() + ping_interval, ping_interval);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let message = tokio::select! {
            queued = outbox.recv() => match queued {
                Some(message) => message,
                None => {
                    // ⑤ The broker no longer holds our outbox: it has handled our Leave, or it is
                    // gone. Nothing more will come, so we close the connection. After a Leave the
                    // client is already gone and this send fails, which is fine; if the broker is
                    // gone, the client learns it with 1011 (the server hit an unexpected condition).
                    let _ = sink.send(Message::Close(Some(CloseFrame {
                        code: close_code::ERROR,
                        reason: "the server cannot serve this connection any more".into(),
                    }))).await;
                    break;
                }
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
// ANCHOR_END: write

#[cfg(test)]
mod tests {
    use clap::Parser;
    use stage_tests::Client;

    use super::*;

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
        let state = AppState {
            config: Config::parse_from(["test"]),
            events,
        };
        let app = Router::new().route("/ws", get(upgrade)).with_state(state);
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a port");
        let addr = listener.local_addr().expect("reading the address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        let mut orphan = Client::connect(&format!("ws://{addr}/ws"), "orphan").await;
        orphan.expect_close_code(1011).await;
    }
}
