//! Chapter 09's chat, built the other way: for comparison, not a chapter.
//!
//! Chapter 09 keeps names and rooms in its broker, an actor that alone owns them and never
//! waits. This crate is the same chat written the way such servers are usually written: the
//! maps are shared by every connection's task as `Arc<RwLock<State>>` (`state.rs`), each room
//! has a `tokio::sync::broadcast` channel, and each connection's task subscribes to its room's
//! channel and forwards what comes out to its socket (`connection.rs`).
//!
//! The protocol is chapter 09's by construction: this crate uses chapter 09's pure modules
//! (`message`, `command`, `names`) as a library, and serves chapter 09's page. It passes the
//! stage suites of chapter 09 that are about the protocol (see `tests/stage.rs`).
//!
//! What it does not have, being written the usual way: chapter 09's limits and timeouts (no
//! `--max-connections`, no write or idle timeout, no heartbeat, tungstenite's default buffers),
//! nor terminal clients. Two flags exist to measure the design, not to use it:
//! `--batch N` (send up to N waiting messages per flush, as chapter 08 does; 1, the usual, flushes
//! each) and `--hold-lock-across-await` (a mistake, made on purpose).

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::todo,
    clippy::unimplemented,
    clippy::indexing_slicing,
    clippy::string_slice,
    clippy::arithmetic_side_effects
)]

use std::{
    future::Future,
    io,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use axum::{
    Router,
    extract::{State as Extract, ws::WebSocketUpgrade},
    response::{Html, IntoResponse, Json, Response},
    routing::get,
    serve::ListenerExt,
};
use serde::Serialize;
use tokio::{
    net::TcpListener,
    sync::{RwLock, RwLockReadGuard, RwLockWriteGuard},
    time::Instant,
};

mod connection;
pub mod state;

use state::State;

/// The name the page shows. It starts with `09` so the stage tests talk the chat protocol to it
/// (see `stage_tests::Wire::of_chapter`).
pub const CHAPTER: &str = "09-rooms, built with RwLock and broadcast";

/// The largest `--room-capacity`: `broadcast::channel` panics above `usize::MAX / 2`, and a
/// million messages per room is more than anyone means.
pub const MAX_ROOM_CAPACITY: usize = 1 << 20;

/// The flags (besides `--addr`, which `main.rs` owns).
#[derive(Debug, Clone, clap::Parser)]
pub struct Config {
    /// How many messages each room's broadcast channel keeps; a receiver further behind skips the oldest (at least 1).
    // Also `--queue-capacity`, the name chapter 09 gives its per-client queues, so that the
    // `bounded` stage suite can set it: here the room's ring of messages is the only queue.
    #[arg(long, alias = "queue-capacity", value_name = "MESSAGES", default_value_t = 1024, value_parser = room_capacity)]
    pub room_capacity: usize,
    /// Send up to this many waiting messages per flush (1: every message flushed on its own, as such code usually does).
    #[arg(long, value_name = "MESSAGES", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub batch: u16,
    /// A mistake on purpose, to measure it: keep the read lock while `/who`'s answer is written to the socket.
    #[arg(long)]
    pub hold_lock_across_await: bool,
}

fn room_capacity(text: &str) -> Result<usize, String> {
    let capacity: usize = text.parse().map_err(|err| format!("{err}"))?;
    if !(1..=MAX_ROOM_CAPACITY).contains(&capacity) {
        return Err(format!("must be between 1 and {MAX_ROOM_CAPACITY}"));
    }
    Ok(capacity)
}

/// What every connection's task shares.
pub(crate) struct App {
    /// Names, rooms and channels: the lock this crate is about.
    pub(crate) state: RwLock<State>,
    pub(crate) batch: usize,
    pub(crate) hold_lock_across_await: bool,
    /// The next connection's number (and guest number).
    pub(crate) next_id: AtomicU64,
    /// How many times a receiver found itself lagging, and how many messages it skipped.
    pub(crate) lagged: AtomicU64,
    pub(crate) skipped: AtomicU64,
    /// How long tasks waited for the lock: the contention, measured (see [`LockWaits`]).
    reads: LockWaits,
    writes: LockWaits,
}

// ANCHOR: lock_waits
/// How many times the lock was taken one way, and how long the takers waited for it in all and
/// at most, in microseconds: `/stats` shows them, so contention is a number, not a guess.
#[derive(Debug, Default)]
struct LockWaits {
    taken: AtomicU64,
    waited_us: AtomicU64,
    longest_us: AtomicU64,
}

impl LockWaits {
    fn record(&self, since: Instant) {
        let waited = u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.taken.fetch_add(1, Ordering::Relaxed);
        self.waited_us.fetch_add(waited, Ordering::Relaxed);
        self.longest_us.fetch_max(waited, Ordering::Relaxed);
    }

    fn figures(&self) -> LockFigures {
        LockFigures {
            taken: self.taken.load(Ordering::Relaxed),
            waited_us: self.waited_us.load(Ordering::Relaxed),
            longest_us: self.longest_us.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug, Serialize)]
struct LockFigures {
    taken: u64,
    waited_us: u64,
    longest_us: u64,
}

impl App {
    /// The lock, to read the maps; the wait is counted.
    pub(crate) async fn read(&self) -> RwLockReadGuard<'_, State> {
        let since = Instant::now();
        let guard = self.state.read().await;
        self.reads.record(since);
        guard
    }

    /// The lock, to change the maps; the wait is counted.
    pub(crate) async fn write(&self) -> RwLockWriteGuard<'_, State> {
        let since = Instant::now();
        let guard = self.state.write().await;
        self.writes.record(since);
        guard
    }
}
// ANCHOR_END: lock_waits

/// `GET /stats`.
#[derive(Debug, Serialize)]
struct Stats {
    #[serde(flatten)]
    counts: state::Counts,
    /// `Lagged` errors seen by receivers, since the start.
    lagged: u64,
    /// Messages receivers skipped because of them.
    skipped: u64,
    /// The lock, taken to read and to write (`/stats` itself included).
    read_lock: LockFigures,
    write_lock: LockFigures,
}

/// Serves on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let app = Arc::new(App {
        state: RwLock::new(State::new(config.room_capacity)),
        batch: usize::from(config.batch),
        hold_lock_across_await: config.hold_lock_across_await,
        next_id: AtomicU64::new(1),
        lagged: AtomicU64::new(0),
        skipped: AtomicU64::new(0),
        reads: LockWaits::default(),
        writes: LockWaits::default(),
    });
    let router = Router::new()
        .route("/", get(page))
        .route("/ws", get(upgrade))
        .route("/stats", get(stats))
        .with_state(app);
    // As chapter 09 does (its ⑯): each write leaves at once.
    let listener = listener.tap_io(|socket| {
        if let Err(err) = socket.set_nodelay(true) {
            tracing::debug!(%err, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Chapter 09's page, as it is: it speaks the same protocol.
const PAGE: &str = include_str!("../../../chapters/09-rooms/src/page.html");

async fn page() -> Html<String> {
    Html(PAGE.replace("{{chapter}}", CHAPTER))
}

async fn upgrade(Extract(app): Extract<Arc<App>>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |socket| connection::run(socket, app))
}

async fn stats(Extract(app): Extract<Arc<App>>) -> Response {
    let counts = app.read().await.counts();
    Json(Stats {
        counts,
        lagged: app.lagged.load(Ordering::Relaxed),
        skipped: app.skipped.load(Ordering::Relaxed),
        read_lock: app.reads.figures(),
        write_lock: app.writes.figures(),
    })
    .into_response()
}
