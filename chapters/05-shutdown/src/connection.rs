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

// ANCHOR: end
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
// ANCHOR_END: end

// ANCHOR: connection_type
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
// ANCHOR_END: connection_type

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

    // ANCHOR: connection
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
        // ANCHOR: exercise-connection
        let writer = tokio::spawn(writer.run());
        let end = tokio::select! {
            end = read(&mut stream, id, &state) => end,
            () = state.stopping.cancelled() => End::ShuttingDown,
        };
        let closing = end.goodbye().is_some();
        // The writer sends the goodbye, if there is one, and stops. If it has stopped already (its
        // client is gone), nobody hears this, which is fine.
        let _ = finish.send(end);
        if closing {
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
}

// ANCHOR: read
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
// ANCHOR_END: read

// ANCHOR: write
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
        // ANCHOR: exercise-write
        let mut heartbeat =
            tokio::time::interval_at(tokio::time::Instant::now() + ping_interval, ping_interval);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let end = loop {
            let message = tokio::select! {
                // Checked first: once the reader has said we are done, what is still queued no
                // longer matters (and the outbox will close soon, which must not look like ⑤).
                biased;
                // An error means the reader's side dropped its sender without a word: stop quietly.
                end = &mut finish => break end.unwrap_or(End::ClientLeft),
                queued = outbox.recv() => match queued {
                    Some(message) => message,
                    // ⑤ The broker no longer holds our outbox. If the reader has had its say, the
                    // broker let go of us after it, and `biased` missed the word only because this
                    // thread paused between the two branches. Without a word from the reader, the
                    // broker is gone.
                    None => break finish.try_recv().unwrap_or(End::BrokerGone),
                },
                _ = heartbeat.tick() => Message::Ping(Default::default()),
            };
            // A client that reads nothing never lets this send complete, so we race it against
            // `finish`: the reader can stop us even then.
            tokio::select! {
                sent = sink.send(message) => {
                    if sent.is_err() {
                        break End::ClientLeft; // the client is gone
                    }
                }
                end = &mut finish => break end.unwrap_or(End::ClientLeft),
            }
            // Whatever we just wrote shows the connection is in use: the next ping can wait.
            heartbeat.reset();
        };
        if let Some(frame) = end.goodbye() {
            // Bounded for the same reason: a client that reads nothing would never take it.
            let _ =
                tokio::time::timeout(CLOSE_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
        }
        // ANCHOR_END: exercise-write
    }
}
// ANCHOR_END: write
