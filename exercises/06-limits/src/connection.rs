// Fan-out workshop, exercise 06-limits: generated from chapters/06-limits by `cargo workshop generate`.
//
// Your part: replace the `todo!(..)` in this file with working code. The rest already works;
// leave it as it is. `cargo workshop check 06` runs the stage tests,
// `cargo workshop hint 06` gives a hint, `cargo workshop reset 06` starts over.

//! One client's connection: a reader (here) and a writer (a task of its own), and the ways the
//! connection can end. The numbers are those of the table in the crate's documentation.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use futures_util::{
    SinkExt, StreamExt,
    stream::{SplitSink, SplitStream},
};
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};

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
    /// ⑦ tungstenite refused what the client sent: Close 1002, 1007 or 1009, saying why.
    Refused(CloseFrame),
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
            End::Refused(frame) => return Some(frame.clone()),
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
/// ways [`End`] lists: the reader sees the client leave or break a rule (⑦); the broker goes
/// (①); the server shuts down (`stopping`); the writer sees its outbox close (⑤).
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
    /// This client's place among `--max-connections`: given back when the connection is dropped.
    _place: OwnedSemaphorePermit,
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
        place: OwnedSemaphorePermit,
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
            _place: place,
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
            _place,
        } = self;
        tracing::info!(%id, "client connected");
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
        tracing::info!(%id, "client disconnected");
    }
}

/// Reads until the client goes away, handing each data message to the broker. Returns why the
/// connection ends.
async fn read(stream: &mut SplitStream<WebSocket>, id: ConnId, state: &AppState) -> End {
    loop {
        let message = match stream.next().await {
            Some(Ok(message)) => message,
            None => return End::ClientLeft,
            // ⑦ tungstenite refused what the client sent, and stops reading: say why.
            Some(Err(err)) => {
                let end = refusal(err, state.config.max_message_size);
                if let End::Refused(frame) = &end {
                    tracing::info!(%id, code = frame.code, reason = %frame.reason, "refusing a client");
                }
                return end;
            }
        };
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
}

/// The longest reason a Close frame can carry: its payload is at most 125 bytes, 2 of them the code.
const MAX_REASON: usize = 123;

/// ⑦ Why a connection whose input tungstenite refused ends: Close 1007 for text that is not
/// UTF-8, 1009 for a message over the limit, 1002 for anything else against RFC 6455 (an unmasked
/// frame, a reserved bit or opcode, a fragmented Ping, ...). [`End::ClientLeft`] when the
/// connection itself failed: then there is nobody to tell.
fn refusal(error: axum::Error, max_message_size: usize) -> End {
    todo!(
        "Done when: invalid UTF-8 gets Close 1007, a message over the limit 1009, any other protocol breach 1002 with a reason that fits, and a broken connection no Close. Tests: `limits::invalid_utf8_is_closed_with_1007_and_never_forwarded`, `limits::a_message_over_the_limit_is_closed_with_1009_and_never_forwarded`, `limits::every_protocol_violation_is_closed_with_1002`."
    )
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
        // `Instant + Duration` panics on overflow. The flag parser keeps the interval within a
        // day, far from that; `checked_add` is what lets the lints see it.
        let now = tokio::time::Instant::now();
        let first_ping = now.checked_add(ping_interval).unwrap_or(now);
        let mut heartbeat = tokio::time::interval_at(first_ping, ping_interval);
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
    }
}
