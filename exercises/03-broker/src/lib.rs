// Fan-out workshop, exercise 03-broker: generated from chapters/03-broker by `cargo workshop generate`.
//
// Your part: replace the `todo!(..)` in this file with working code. The rest already works;
// leave it as it is. `cargo workshop check 03` runs the stage tests,
// `cargo workshop hint 03` gives a hint, `cargo workshop reset 03` starts over.
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
