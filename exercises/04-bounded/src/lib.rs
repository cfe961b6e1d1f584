// Fan-out workshop, exercise 04-bounded: generated from chapters/04-bounded by `cargo workshop generate`.
//
// Your part: replace the `todo!(..)` in this file with working code. The rest already works;
// leave it as it is. `cargo workshop check 04` runs the stage tests,
// `cargo workshop hint 04` gives a hint, `cargo workshop reset 04` starts over.
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

//! Chapter 04: bounded queues.
//!
//! Chapter 03's queues had no limit, so a client that stopped reading made the server keep every
//! message for it, forever. Here every queue has room for `--queue-capacity` messages. A reader
//! that finds the broker's queue full waits, which slows down only its own client; the broker,
//! finding a client's queue full, drops the message for that client alone and moves on.

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
pub const CHAPTER: &str = "04-bounded";

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

/// A plain HTTP request to `/ws` is refused by the extractor (a 4xx). A WebSocket handshake joins
/// the broker *before* the handshake response goes out, so a client that sees its connection open
/// is already in the map: it gets every message sent after that moment.
async fn upgrade(State(state): State<AppState>, ws: WebSocketUpgrade) -> Response {
    todo!(
        "Done when: each client joins the broker before its handshake is answered, with an outbox that holds at most `--queue-capacity` messages, and a failed upgrade still leaves. Tests: `bounded::a_stalled_client_misses_messages_but_stays_connected`, `broadcast::a_late_joiner_gets_only_what_is_sent_after_it_joined`."
    )
}

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
