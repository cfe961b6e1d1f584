//! One client's connection: a reader (here) and a writer (a task of its own). The circled numbers
//! are two of the failure points: ① the reader's hand-over to the broker, ⑤ the writer's outbox
//! (② to ④ are the broker's).

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use futures_util::{
    SinkExt, StreamExt,
    stream::{SplitSink, SplitStream},
};
use tokio::sync::mpsc;

use crate::{
    AppState,
    broker::{ConnId, Event},
};

/// One client's connection, from its handshake to its last frame: the reader runs in
/// [`Connection::run`], the writer in a task of its own ([`Writer::run`]). It ends when the client
/// leaves or the broker is gone (① in the reader, ⑤ in the writer).
pub(crate) struct Connection {
    /// Names the client to the broker and in the log.
    id: ConnId,
    /// The socket's reading half: what the client sends.
    stream: SplitStream<WebSocket>,
    /// The writing half, with everything the writer needs, until `run` starts it.
    writer: Writer,
    /// The flags and the broker's queue, shared by every connection.
    state: AppState,
}

/// A connection's writing half: the socket's sink and the outbox the broker fills.
struct Writer {
    sink: SplitSink<WebSocket, Message>,
    /// What the broker sends this client.
    outbox: mpsc::Receiver<Message>,
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
        let writer = Writer {
            sink,
            outbox,
            ping_interval: state.config.ping_interval,
        };
        Connection {
            id,
            stream,
            writer,
            state,
        }
    }

    /// Runs the connection: starts the writer, reads until the client goes away, and leaves the
    /// broker.
    pub(crate) async fn run(self) {
        let Connection {
            id,
            mut stream,
            writer,
            state,
        } = self;
        tracing::info!(%id, "client connected");
        let writer = tokio::spawn(writer.run());
        read(&mut stream, id, &state).await;
        // The broker drops our outbox when it handles the Leave, and that ends the writer.
        let _ = state.events.send(Event::Leave { id }).await;
        let _ = writer.await;
        tracing::info!(%id, "client disconnected");
    }
}

// ANCHOR: read
/// Reads until the client goes away, handing each data message to the broker.
async fn read(stream: &mut SplitStream<WebSocket>, id: ConnId, state: &AppState) {
    // ANCHOR: exercise-read
    while let Some(Ok(message)) = stream.next().await {
        match message {
            Message::Text(_) | Message::Binary(_) => {
                // ① When the broker's queue is full, `send` waits for room, and while it waits we
                // read nothing more from this socket: TCP pushes back on this one client, and
                // nothing piles up in our memory.
                if state
                    .events
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
impl Writer {
    /// Writes what arrives in the outbox, and a Ping whenever `ping_interval` passes with nothing
    /// written: the concurrent writing a single read-then-write loop cannot do.
    async fn run(self) {
        let Writer {
            mut sink,
            mut outbox,
            ping_interval,
        } = self;
        let mut heartbeat =
            tokio::time::interval_at(tokio::time::Instant::now() + ping_interval, ping_interval);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let message = tokio::select! {
                queued = outbox.recv() => match queued {
                    Some(message) => message,
                    None => {
                        // ⑤ The broker no longer holds our outbox: it has handled our Leave, or it
                        // is gone. Nothing more will come, so we close the connection. After a
                        // Leave the client is already gone and this send fails, which is fine; if
                        // the broker is gone, the client learns it with 1011 (the server hit an
                        // unexpected condition).
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
}
// ANCHOR_END: write
