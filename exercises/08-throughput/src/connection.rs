// Fan-out workshop, exercise 08-throughput: generated from chapters/08-throughput by `cargo workshop generate`.
//
// Your part: replace the 2 `todo!(..)`s in this file with working code. The rest already works;
// leave it as it is. `cargo workshop check 08` runs the stage tests,
// `cargo workshop hint 08` gives a hint, `cargo workshop reset 08` starts over.

//! One client's connection: a reader (here) and a writer (a task of its own), and the ways the
//! connection can end. The numbers are those of the table in the crate's documentation.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use futures_util::{
    SinkExt, StreamExt,
    stream::{SplitSink, SplitStream},
};
use tokio::sync::{OwnedSemaphorePermit, oneshot};
use tokio_util::sync::CancellationToken;

use crate::{
    AppState, CLOSE_TIMEOUT,
    broker::{ConnId, Event},
    outbox::{Inbox, payload_size},
};

/// Why a connection ends. Each reason decides the goodbye: the Close frame the client is sent, if
/// any.
#[derive(Debug, Clone)]
pub(crate) enum End {
    /// The client closed (and has its reply) or vanished: there is nobody to say goodbye to.
    ClientLeft,
    /// ⑦ tungstenite refused what the client sent: Close 1002, 1007 or 1009, saying why.
    Refused(CloseFrame),
    /// ① ⑤ The broker is gone, or has let this client go (⑪): Close 1011.
    BrokerGone,
    /// The server is shutting down: Close 1001.
    ShuttingDown,
    /// ⑩ Nothing heard from the client for `--idle-timeout`: Close 1001.
    Idle,
    /// ⑨ The client took nothing for `--write-timeout`: it would not take a Close either.
    Stuck,
}

impl End {
    /// The Close frame this ending sends the client: `None` when nobody would read it.
    fn goodbye(&self) -> Option<CloseFrame> {
        let (code, reason) = match self {
            End::ClientLeft | End::Stuck => return None,
            End::Refused(frame) => return Some(frame.clone()),
            End::BrokerGone => (
                close_code::ERROR,
                "the server cannot serve this connection any more",
            ),
            End::ShuttingDown => (close_code::AWAY, "the server is shutting down"),
            End::Idle => (close_code::AWAY, "nothing heard from you for too long"),
        };
        Some(CloseFrame {
            code,
            reason: reason.into(),
        })
    }
}

/// One client's connection, from its handshake to its last frame: the reader runs in
/// [`Connection::run`], the writer in a task of its own ([`Writer::run`]). It ends in one of the
/// ways [`End`] lists: the reader sees the client leave or break a rule (⑦), or goes
/// without a word for too long (⑩); the broker goes (①); the server shuts down (`stopping`);
/// the writer gives up on the client (⑨, `stuck`) or sees its outbox close (⑤).
pub(crate) struct Connection {
    /// Names the client to the broker and in the log.
    id: ConnId,
    /// The socket's reading half: what the client sends.
    stream: SplitStream<WebSocket>,
    /// The writing half, with everything the writer needs, until `run` starts it.
    writer: Writer,
    /// How the reader tells the writer to finish, and why: the writer sends the goodbye.
    finish: oneshot::Sender<End>,
    /// Cancelled by the writer when it gives up on the client (⑨).
    stuck: CancellationToken,
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
    outbox: Inbox,
    /// The reader's word to finish, and why.
    finish: oneshot::Receiver<End>,
    /// Cancelled here when a write takes longer than `write_timeout` (⑨).
    stuck: CancellationToken,
    ping_interval: Duration,
    write_timeout: Duration,
}

impl Connection {
    pub(crate) fn new(
        socket: WebSocket,
        id: ConnId,
        outbox: Inbox,
        state: AppState,
        place: OwnedSemaphorePermit,
    ) -> Connection {
        let (sink, stream) = socket.split();
        let (finish, finish_rx) = oneshot::channel();
        let stuck = CancellationToken::new();
        let writer = Writer {
            sink,
            outbox,
            finish: finish_rx,
            stuck: stuck.clone(),
            ping_interval: state.config.ping_interval,
            write_timeout: state.config.write_timeout,
        };
        Connection {
            id,
            stream,
            writer,
            finish,
            stuck,
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
            stuck,
            state,
            _place,
        } = self;
        tracing::info!(%id, "client connected");
        let writer = tokio::spawn(writer.run());
        let end = tokio::select! {
            end = read(&mut stream, id, &state) => end,
            () = state.stopping.cancelled() => End::ShuttingDown,
            // ⑨ A client that takes nothing would not take a Close either: just hang up.
            () = stuck.cancelled() => {
                tracing::warn!(%id, "client took nothing for --write-timeout: cutting it off");
                End::Stuck
            }
        };
        let closing = end.goodbye().is_some();
        let timed_out = matches!(end, End::Idle | End::Stuck);
        // The writer sends the goodbye, if there is one, and stops. If it has stopped already (its
        // client is gone), nobody hears this, which is fine.
        let _ = finish.send(end);
        // ⑨ ⑩ Only now, with the goodbye in the writer's hands, may the broker let go of this
        // client: a writer that found its outbox closed first would take that for the broker's
        // end (⑤) and say 1011 where 1001 is due.
        if timed_out {
            let _ = state.events.send(Event::TimedOut { id }).await;
        }
        if closing {
            // We are closing: read on until the client answers our Close, which completes the
            // closing handshake. A client that reads nothing never answers, hence the deadline.
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
                while let Some(Ok(_)) = stream.next().await {}
            })
            .await;
        }
        let _ = state.events.send(Event::Leave { id }).await;
        // The writer ends on its own, within CLOSE_TIMEOUT, now that it has been told to, and
        // hands back the outbox. We hold it until the broker lets go of its end: the broker may
        // still be busy with events queued before ours, and if one of them found the outbox
        // closed, the client would be counted as gone (④) rather than as what we said.
        if let Ok(outbox) = writer.await {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, outbox.until_closed()).await;
        }
        tracing::info!(%id, "client disconnected");
    }
}

/// Reads until the client goes away, handing each data message to the broker. Returns why the
/// connection ends.
async fn read(stream: &mut SplitStream<WebSocket>, id: ConnId, state: &AppState) -> End {
    loop {
        let message = match tokio::time::timeout(state.idle_timeout, stream.next()).await {
            Ok(Some(Ok(message))) => message,
            Ok(None) => return End::ClientLeft,
            // ⑦ tungstenite refused what the client sent, and stops reading: say why.
            Ok(Some(Err(err))) => {
                let end = refusal(err, state.config.max_message_size);
                if let End::Refused(frame) = &end {
                    tracing::info!(%id, code = frame.code, reason = %frame.reason, "refusing a client");
                }
                return end;
            }
            // ⑩ Nothing at all for the idle timeout, not even the pong to the pings we keep
            // sending: the client is gone without a word (a pulled cable, a sleeping laptop), or
            // it ignores us. Either way it only holds a place.
            Err(_) => {
                tracing::info!(%id, "nothing heard for --idle-timeout: cutting the client off");
                return End::Idle;
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
    use tungstenite::error::{Error, ProtocolError};
    // axum passes tungstenite's error on without naming its type; the type is still there to ask.
    let Ok(error) = error.into_inner().downcast::<Error>() else {
        return End::ClientLeft;
    };
    let (code, reason) = match *error {
        Error::Utf8(_) => (close_code::INVALID, "text must be valid UTF-8".to_string()),
        Error::Capacity(_) => (
            close_code::SIZE,
            format!("messages are limited to {max_message_size} bytes"),
        ),
        Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => return End::ClientLeft,
        Error::Protocol(violation) => {
            let reason = violation.to_string();
            let reason = if reason.len() <= MAX_REASON {
                reason
            } else {
                "protocol error".to_string()
            };
            (close_code::PROTOCOL, reason)
        }
        // I/O errors: the connection is broken, and a Close could not get through anyway.
        _ => return End::ClientLeft,
    };
    End::Refused(CloseFrame {
        code,
        reason: reason.into(),
    })
}

/// ⑬ The most messages the writer takes from its queue for one write. Taking everything queued
/// is what makes a slow moment cheap to catch up from: one flush, often one system call, for all
/// of it. The limit bounds the vector the writer keeps them in (64 messages are 3 KiB of
/// `Message`s; the payloads are shared, see `outbox.rs`), and a few writes of 64 cost about what
/// one write of 256 costs.
pub(crate) const BATCH_LIMIT: usize = 64;

impl Writer {
    /// Writes what arrives in the outbox, and a Ping every `ping_interval`, until the reader says
    /// to finish, the broker lets go of the outbox (⑤), or a write takes longer than
    /// `write_timeout` (⑨): then it cancels `stuck`. Each write is a batch (⑬): everything
    /// queued meanwhile, up to [`BATCH_LIMIT`] messages, flushed once.
    ///
    /// It returns the outbox rather than drop it: the connection drops it last, once the broker
    /// has heard why the client left. Closed any sooner, the broker could find it closed first
    /// and remove the client as gone (④), never counting it as timed out.
    async fn run(self) -> Inbox {
        let Writer {
            mut sink,
            mut outbox,
            mut finish,
            stuck,
            ping_interval,
            write_timeout,
        } = self;
        todo!(
            "Done when: a burst of 1,000 messages reaches a reading client whole and in order, and every guarantee of chapter 07 still holds (Close 1011 when the broker lets go, the write timeout, the pings). Tests: `throughput::a_healthy_client_receives_all_of_a_burst_in_order`, `timeouts::a_client_that_never_reads_is_cut_off_after_the_write_timeout`, `tests::a_client_is_closed_with_1011_when_the_broker_is_gone`."
        );
        outbox
    }
}

/// ⑬ Sends every message of `batch`, in order (the writer hands it `batch.drain(..)`, which
/// leaves its vector empty, capacity kept, for the next batch). `feed` only hands a message to
/// tungstenite, which frames it into its write buffer (and writes to the socket whenever that
/// buffer passes its size); `flush` writes out the rest and waits until the socket has taken it
/// all. One flush per batch instead of one per message: fewer system calls, fuller packets.
async fn send_batch(
    sink: &mut SplitSink<WebSocket, Message>,
    batch: std::vec::Drain<'_, Message>,
) -> Result<(), axum::Error> {
    todo!(
        "Done when: every message of the batch reaches the client in order, with a single flush after the last one. Tests: `throughput::a_healthy_client_receives_all_of_a_burst_in_order`, `broadcast::keeps_each_senders_order`."
    )
}
