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
use tokio::{
    net::TcpListener,
    sync::{mpsc, oneshot},
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub mod broker;

use broker::{ConnId, Event};

/// The name the browser page shows in its header.
pub const CHAPTER: &str = "05-shutdown";

// ANCHOR: timeouts
/// How long a connection that is being closed by the server waits for its Close frame to go out,
/// and then for the client's answer. A client that reads nothing would make both waits endless.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long `serve` waits, after it stops accepting, for the open connections to finish. Each one
/// finishes within about [`CLOSE_TIMEOUT`] on its own; this is the backstop should one not.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
// ANCHOR_END: timeouts

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

// ANCHOR: state
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
// ANCHOR_END: state

// ANCHOR: serve
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
    // ANCHOR: exercise-drain
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
    // ANCHOR_END: exercise-drain
    Ok(())
}
// ANCHOR_END: serve

async fn page() -> Html<String> {
    fanout_kit::page(CHAPTER)
}

// ANCHOR: stats
/// `GET /stats`: the broker's counts as JSON. The request travels through the broker's queue like
/// any event, with a oneshot sender for the answer; the broker answers between two events, so
/// the counts are always consistent with each other.
async fn stats(State(state): State<AppState>) -> Response {
    // ANCHOR: exercise-stats
    let (reply, answer) = oneshot::channel();
    if state.events.send(Event::Stats { reply }).await.is_err() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response(); // the broker is gone
    }
    match answer.await {
        Ok(stats) => Json(stats).into_response(),
        // The broker dropped our request without answering: it stopped while we waited.
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
    // ANCHOR_END: exercise-stats
}
// ANCHOR_END: stats

// ANCHOR: upgrade
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
        tasks.track_future(connection(socket, id, outbox_rx, state))
    })
}
// ANCHOR_END: upgrade

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

// ANCHOR: connection
/// One connection: the writer drains the outbox the broker fills; the reader, here, passes what
/// the client says to the broker until the client is done, the broker is gone, or the server
/// shuts down. Then it tells the writer how to finish.
async fn connection(
    socket: WebSocket,
    id: ConnId,
    outbox_rx: mpsc::Receiver<Message>,
    state: AppState,
) {
    tracing::info!(%id, "client connected");
    // ANCHOR: exercise-connection
    let (sink, mut stream) = socket.split();
    let (finish, finish_rx) = oneshot::channel();
    let writer = tokio::spawn(write(
        sink,
        outbox_rx,
        finish_rx,
        state.config.ping_interval,
    ));
    let goodbye = tokio::select! {
        goodbye = read(&mut stream, id, &state.events) => goodbye,
        () = state.stopping.cancelled() => Some(going_away()),
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
    // ANCHOR_END: exercise-connection
    tracing::info!(%id, "client disconnected");
}
// ANCHOR_END: connection

// ANCHOR: read
/// Reads until the client goes away, handing each data message to the broker. Returns the Close
/// the writer should end with.
async fn read(
    stream: &mut SplitStream<WebSocket>,
    id: ConnId,
    events: &mpsc::Sender<Event>,
) -> Goodbye {
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
    // The client closed (and has its reply) or vanished: there is nobody to say goodbye to.
    None
}
// ANCHOR_END: read

// ANCHOR: write
/// Writes what arrives in the outbox, and a Ping whenever `ping_interval` passes with nothing
/// written, until the reader says to finish (`finish`) or the broker lets go of the outbox.
async fn write(
    mut sink: SplitSink<WebSocket, Message>,
    mut outbox: mpsc::Receiver<Message>,
    mut finish: oneshot::Receiver<Goodbye>,
    ping_interval: Duration,
) {
    // ANCHOR: exercise-write
    let mut heartbeat =
        tokio::time::interval_at(tokio::time::Instant::now() + ping_interval, ping_interval);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let goodbye = loop {
        let message = tokio::select! {
            // Checked first: once the reader has said we are done, what is still queued no longer
            // matters (and the outbox will close soon, which must not look like ⑤).
            biased;
            // An error means the reader's side dropped its sender without a word: stop quietly.
            goodbye = &mut finish => break goodbye.unwrap_or(None),
            queued = outbox.recv() => match queued {
                Some(message) => message,
                // ⑤ The broker no longer holds our outbox although the reader has not finished:
                // the broker is gone. Close the connection with 1011.
                None => break Some(server_error()),
            },
            _ = heartbeat.tick() => Message::Ping(Default::default()),
        };
        // A client that reads nothing never lets this send complete, so we race it against
        // `finish`: the reader can stop us even then.
        tokio::select! {
            sent = sink.send(message) => {
                if sent.is_err() {
                    break None; // the client is gone
                }
            }
            goodbye = &mut finish => break goodbye.unwrap_or(None),
        }
        // Whatever we just wrote shows the connection is in use: the next ping can wait.
        heartbeat.reset();
    };
    if let Some(frame) = goodbye {
        // Bounded for the same reason: a client that reads nothing would never take it.
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
    }
    // ANCHOR_END: exercise-write
}
// ANCHOR_END: write

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
