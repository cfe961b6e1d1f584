//! Chapter 03: a broker actor.
//!
//! Every connection still has a reader and a writer, but the reader no longer talks to its own
//! writer. It tells the broker, a single task that owns the map of all connections, and the
//! broker forwards each message to every *other* client's writer.

use std::{future::Future, io};

use axum::{
    Router,
    extract::{State, ws::WebSocketUpgrade},
    http::StatusCode,
    response::{Html, IntoResponse, Response},
    routing::get,
};
use tokio::{net::TcpListener, sync::mpsc};

pub mod broker;
pub mod config;
mod connection;

use broker::{ConnId, Event};
pub use config::Config;
use connection::Connection;

/// The name the browser page shows in its header.
pub const CHAPTER: &str = "03-broker";

// ANCHOR: state
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
// ANCHOR_END: state

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
    let (outbox, outbox_rx) = mpsc::unbounded_channel();
    if state.events.send(Event::Join { id, outbox }).is_err() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let on_failure = state.events.clone();
    ws.on_failed_upgrade(move |_| {
        let _ = on_failure.send(Event::Leave { id });
    })
    .on_upgrade(move |socket| Connection::new(socket, id, outbox_rx, state).run())
    // ANCHOR_END: exercise-upgrade
}
// ANCHOR_END: upgrade
