// Fan-out workshop, exercise 05-shutdown: generated from chapters/05-shutdown by `cargo workshop generate`.
//
// Your part: replace the 2 `todo!(..)`s in this file with working code. The rest already works;
// leave it as it is. `cargo workshop check 05` runs the stage tests,
// `cargo workshop hint 05` gives a hint, `cargo workshop reset 05` starts over.

//! One client's connection: a reader (here) and a writer (a task of its own), and the ways the
//! connection can end. The circled numbers are two of the failure points: ① the reader's
//! hand-over to the broker, ⑤ the writer's outbox (② to ④ are the broker's).

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use futures_util::{
    SinkExt, StreamExt,
    stream::{SplitSink, SplitStream},
};
use tokio::sync::{mpsc, oneshot};

use crate::{
    AppState, CLOSE_TIMEOUT,
    broker::{ConnId, Event},
};

/// Why a connection ends. Each reason decides the goodbye: the Close frame the client is sent, if
/// any.
#[derive(Debug, Clone)]
pub(crate) enum End {
    /// The client closed (and has its reply) or vanished: there is nobody to say goodbye to.
    ClientLeft,
    /// ① ⑤ The broker is gone: Close 1011.
    BrokerGone,
    /// The server is shutting down: Close 1001.
    ShuttingDown,
}

impl End {
    /// The Close frame this ending sends the client: `None` when nobody would read it.
    fn goodbye(&self) -> Option<CloseFrame> {
        let (code, reason) = match self {
            End::ClientLeft => return None,
            End::BrokerGone => (
                close_code::ERROR,
                "the server cannot serve this connection any more",
            ),
            End::ShuttingDown => (close_code::AWAY, "the server is shutting down"),
        };
        Some(CloseFrame {
            code,
            reason: reason.into(),
        })
    }
}

/// One client's connection, from its handshake to its last frame: the reader runs in
/// [`Connection::run`], the writer in a task of its own ([`Writer::run`]). It ends in one of the
/// ways [`End`] lists: the reader sees the client leave; the broker goes (①); the server shuts
/// down (`stopping`); the writer sees its outbox close (⑤).
pub(crate) struct Connection {
    /// Names the client to the broker and in the log.
    id: ConnId,
    /// The socket's reading half: what the client sends.
    stream: SplitStream<WebSocket>,
    /// The writing half, with everything the writer needs, until `run` starts it.
    writer: Writer,
    /// How the reader tells the writer to finish, and why: the writer sends the goodbye.
    finish: oneshot::Sender<End>,
    /// The flags, the broker's queue and `stopping`, shared by every connection.
    state: AppState,
}

/// A connection's writing half: the socket's sink, the outbox the broker fills, and what tells it
/// to stop.
struct Writer {
    sink: SplitSink<WebSocket, Message>,
    /// What the broker sends this client.
    outbox: mpsc::Receiver<Message>,
    /// The reader's word to finish, and why.
    finish: oneshot::Receiver<End>,
    ping_interval: Duration,
}

impl Connection {
    pub(crate) fn new(
        socket: WebSocket,
        id: ConnId,
        outbox: mpsc::Receiver<Message>,
        state: AppState,
    ) -> Connection {
        let (sink, stream) = socket.split();
        let (finish, finish_rx) = oneshot::channel();
        let writer = Writer {
            sink,
            outbox,
            finish: finish_rx,
            ping_interval: state.config.ping_interval,
        };
        Connection {
            id,
            stream,
            writer,
            finish,
            state,
        }
    }

    /// Runs the connection: starts the writer, reads until one of the ways to end comes, tells
    /// the writer how to finish, and leaves the broker.
    pub(crate) async fn run(self) {
        let Connection {
            id,
            mut stream,
            writer,
            finish,
            state,
        } = self;
        tracing::info!(%id, "client connected");
        todo!(
            "Done when: a client that closes gets its own code back, every client gets 1001 when the server stops, and the connection then leaves the broker within `CLOSE_TIMEOUT`. Tests: `shutdown::a_client_that_closes_gets_its_own_code_back`, `shutdown::shutdown_closes_every_client_with_going_away_and_serve_returns`."
        );
        tracing::info!(%id, "client disconnected");
    }
}

/// Reads until the client goes away, handing each data message to the broker. Returns why the
/// connection ends.
async fn read(stream: &mut SplitStream<WebSocket>, id: ConnId, state: &AppState) -> End {
    while let Some(Ok(message)) = stream.next().await {
        match message {
            Message::Text(_) | Message::Binary(_) => {
                // ① When the broker's queue is full, `send` waits for room, and while it waits we
                // read nothing more from this socket: TCP pushes back on this one client, and
                // nothing piles up in our memory. It fails once the broker is gone: nobody would
                // hear this client, and the writer closes the connection with 1011.
                if state
                    .events
                    .send(Event::Message { from: id, message })
                    .await
                    .is_err()
                {
                    return End::BrokerGone;
                }
            }
            // Pings are answered by axum. When the client sends Close, tungstenite queues the
            // reply, echoing the client's code, and the next read sends it and ends the stream:
            // so we keep reading rather than return here.
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) => {}
        }
    }
    End::ClientLeft
}

impl Writer {
    /// Writes what arrives in the outbox, and a Ping whenever `ping_interval` passes with nothing
    /// written, until the reader says to finish or the broker lets go of the outbox (⑤).
    async fn run(self) {
        let Writer {
            mut sink,
            mut outbox,
            mut finish,
            ping_interval,
        } = self;
        todo!(
            "Done when: told to finish, the writer stops at once, even in the middle of a send, and sends the goodbye within `CLOSE_TIMEOUT`; with the broker gone, the goodbye is 1011. Tests: `shutdown::shutdown_does_not_wait_for_a_client_that_never_reads`, `tests::a_client_is_closed_with_1011_when_the_broker_is_gone`."
        )
    }
}
