//! Chapter 01: an echo server.
//!
//! One task per connection reads a message and writes it straight back. Everything else in the
//! book grows from this loop.

use std::{future::Future, io};

use axum::{
    Router,
    extract::ws::{Message, WebSocket, WebSocketUpgrade},
    response::{Html, Response},
    routing::get,
};
use tokio::net::TcpListener;

/// The name the browser page shows in its header.
pub const CHAPTER: &str = "01-echo";

/// This chapter's flags (besides `--addr`, which `main.rs` owns). None yet.
#[derive(Debug, Clone, Default, clap::Parser)]
pub struct Config {}

// ANCHOR: app
/// The routes: the browser page at `/`, the WebSocket at `/ws`.
pub fn app(_config: Config) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/ws", get(upgrade))
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
// ANCHOR_END: app

async fn page() -> Html<String> {
    fanout_kit::page(CHAPTER)
}

// ANCHOR: upgrade
/// A plain HTTP request to `/ws` is refused by the extractor (a 4xx); a WebSocket handshake is
/// accepted and the connection handed to `echo`.
async fn upgrade(ws: WebSocketUpgrade) -> Response {
    // ANCHOR: exercise-upgrade
    ws.on_upgrade(echo)
    // ANCHOR_END: exercise-upgrade
}
// ANCHOR_END: upgrade

// ANCHOR: echo
async fn echo(mut socket: WebSocket) {
    tracing::info!("client connected");
    // ANCHOR: exercise-echo
    while let Some(Ok(message)) = socket.recv().await {
        match message {
            // Text stays text and binary stays binary: we send back the very same message.
            Message::Text(_) | Message::Binary(_) => {
                if socket.send(message).await.is_err() {
                    break;
                }
            }
            // axum answers pings for us. On a Close we do not return: the close reply is
            // written by the next read, which then ends the loop.
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) => {}
        }
    }
    // ANCHOR_END: exercise-echo
    tracing::info!("client disconnected");
}
// ANCHOR_END: echo
