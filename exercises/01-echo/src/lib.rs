// Fan-out workshop, exercise 01-echo: generated from chapters/01-echo by `cargo workshop generate`.
//
// Your part: replace the 2 `todo!(..)`s in this file with working code. The rest already works;
// leave it as it is. `cargo workshop check 01` runs the stage tests,
// `cargo workshop hint 01` gives a hint, `cargo workshop reset 01` starts over.
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

async fn page() -> Html<String> {
    fanout_kit::page(CHAPTER)
}

/// A plain HTTP request to `/ws` is refused by the extractor (a 4xx); a WebSocket handshake is
/// accepted and the connection handed to `echo`.
async fn upgrade(ws: WebSocketUpgrade) -> Response {
    todo!(
        "Done when: a WebSocket handshake on `/ws` is answered and every connection that opens is served by `echo`, once per client. Tests: `contract::plain_http_request_to_ws_is_refused`, `echo::echoes_text_as_text`."
    )
}

async fn echo(mut socket: WebSocket) {
    tracing::info!("client connected");
    todo!(
        "Done when: every text or binary message a client sends comes back to that client unchanged and in order, until it leaves, and its Close gets the close reply. Tests: `echo::echoes_text_as_text`, `echo::echoes_in_the_order_sent`, `echo::answers_a_close_with_the_close_reply`."
    );
    tracing::info!("client disconnected");
}
