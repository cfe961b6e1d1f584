//! Plain TCP clients: `nc` and `telnet` in the same rooms as the browsers.
//!
//! A terminal speaks lines: one line in is one message or command, and out comes one readable
//! line per message (`[lobby] alice: hi`). Everything else is the WebSocket's: the same broker
//! (a TCP client is one more [`ConnId`] with an [`Outbox`](crate::outbox::Outbox), joined with
//! [`Wire::Lines`]), the same `--max-connections` places, the same byte-bounded queue and
//! slow-consumer policy, the same `--write-timeout` and `--idle-timeout`, the same shutdown.
//!
//! Two things are done differently because a terminal is not a browser:
//! - A line is bounded (`--max-line-bytes`) but there are no frames to refuse: a line that is
//!   too long, or not UTF-8, gets one error line, its bytes up to the next newline are skipped,
//!   and the connection goes on with the next line. A newline always resynchronises, so there
//!   is no need to hang up.
//! - `nc` cannot answer a WebSocket ping, so the server asks in words (⑩, see `listen`). After
//!   `--idle-timeout` minus `--ping-interval` without a line, the client reads `! still there?
//!   ...`; any line answers, an empty one included, and restarts the clock. Silent for the whole
//!   `--idle-timeout`, it reads one last line saying why, and is cut off and counted as timed
//!   out, as a browser that stops answering pings would be. A blank line is a sign of life and
//!   nothing more: nobody is sent anything for it, where a browser's blank message gets an error.
//!
//! The idle timeout also finds a peer that vanished without a word (a pulled cable, a laptop
//! closed), so the kernel's TCP keepalive is not needed: the clock is the same for every client.

use std::{io, time::Duration};

use axum::extract::ws::Message;
use futures_util::StreamExt;
use tokio::{
    io::{AsyncWriteExt, BufWriter},
    net::{
        TcpListener, TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    sync::{OwnedSemaphorePermit, oneshot},
};
use tokio_util::{
    bytes::BytesMut,
    codec::{Decoder, FramedRead, LinesCodec, LinesCodecError},
    sync::CancellationToken,
};

use crate::{
    AppState, CLOSE_TIMEOUT,
    broker::{ConnId, Event},
    connection::BATCH_LIMIT,
    message::Wire,
    outbox::{self, Inbox, payload_size},
};

/// The default `--max-line-bytes`: a long paragraph typed or pasted into a terminal.
pub const DEFAULT_MAX_LINE_BYTES: usize = 4 << 10;

// ANCHOR: lines
/// What a terminal sent: a line, or a reason the bytes up to the next newline were skipped.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    Text(String),
    TooLong,
    NotUtf8,
}

/// tokio-util's `LinesCodec`, whose two recoverable errors become lines of their own: an error
/// from a decoder would end the stream, and these need not. After a `TooLong` the codec skips to
/// the next newline by itself; a line that is not UTF-8 has already been taken out whole.
pub struct Lines(LinesCodec);

impl Lines {
    /// Lines of at most `max` bytes, newline excluded.
    pub fn new(max: usize) -> Lines {
        Lines(LinesCodec::new_with_max_length(max))
    }

    fn convert(decoded: Result<Option<String>, LinesCodecError>) -> io::Result<Option<Line>> {
        match decoded {
            Ok(line) => Ok(line.map(Line::Text)),
            Err(LinesCodecError::MaxLineLengthExceeded) => Ok(Some(Line::TooLong)),
            Err(LinesCodecError::Io(err)) if err.kind() == io::ErrorKind::InvalidData => {
                Ok(Some(Line::NotUtf8))
            }
            Err(LinesCodecError::Io(err)) => Err(err),
        }
    }
}

impl Decoder for Lines {
    type Item = Line;
    type Error = io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> io::Result<Option<Line>> {
        Lines::convert(self.0.decode(buf))
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> io::Result<Option<Line>> {
        Lines::convert(self.0.decode_eof(buf))
    }
}
// ANCHOR_END: lines

// ANCHOR: accept
/// Accepts terminal clients on `listener` until `done` is cancelled (`serve` is returning).
pub(crate) async fn accept(listener: TcpListener, state: AppState, done: CancellationToken) {
    loop {
        let socket = tokio::select! {
            () = done.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((socket, _peer)) => socket,
                Err(err) => {
                    // As for the WebSockets: a connection lost in the backlog costs only itself;
                    // out of descriptors, wait for some to close.
                    tracing::warn!(%err, "cannot accept a terminal client");
                    tokio::time::sleep(crate::ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let tasks = state.tasks.clone();
        tasks.spawn(welcome(socket, state.clone()));
    }
}

/// Takes a place among `--max-connections` for the client, or tells it there is none.
async fn welcome(mut socket: TcpStream, state: AppState) {
    let Ok(place) = std::sync::Arc::clone(&state.places).try_acquire_owned() else {
        let _ = state.events.send(Event::Refused).await;
        let refusal = format!(
            "! this server already has the {} clients it allows: try again later\n",
            state.config.max_connections
        );
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.write_all(refusal.as_bytes())).await;
        return;
    };
    // ⑯ As for the WebSockets: each flush leaves at once (see `NO_DELAY`).
    if let Err(err) = socket.set_nodelay(crate::NO_DELAY) {
        tracing::debug!(%err, "cannot set TCP_NODELAY");
    }
    connection(socket, state, place).await;
}
// ANCHOR_END: accept

// ANCHOR: connection
/// One terminal client: joined to the broker as [`Wire::Lines`], read line by line here, written
/// to by its own task, until one side is done or the server shuts down.
async fn connection(socket: TcpStream, state: AppState, place: OwnedSemaphorePermit) {
    let id = ConnId::next();
    let (outbox, inbox) = outbox::outbox(state.config.queue_capacity, state.config.queue_bytes);
    let joined = Event::Join {
        id,
        outbox,
        wire: Wire::Lines,
    };
    if state.events.send(joined).await.is_err() {
        return;
    }
    tracing::info!(%id, "terminal client connected");
    let (reader, writer) = socket.into_split();
    let stuck = CancellationToken::new();
    let (stop_writing, stop) = oneshot::channel();
    let mut writer = tokio::spawn(write(
        writer,
        inbox,
        stop,
        stuck.clone(),
        state.config.write_timeout,
    ));
    // Whether the writer is done already, the last line for it to write if not, and whether a
    // timeout ends the connection (⑨ or ⑩).
    let (writer_ended, last_word, timed_out) = tokio::select! {
        // In this order: a writer that gives up on its client cancels `stuck` and then ends, and
        // the timeout must be counted whichever of the two is seen first.
        biased;
        () = stuck.cancelled() => {
            tracing::warn!(%id, "client took nothing for --write-timeout: cutting it off");
            (false, None, true)
        }
        // The writer ended: the client said /quit, was let go, or the broker is gone.
        _ = &mut writer => (true, None, false),
        () = state.stopping.cancelled() => (false, None, false),
        stop = read(reader, id, &state) => match stop {
            Stop::Left => (false, None, false),
            Stop::Silent(last_word) => (false, Some(last_word), true),
        },
    };
    // If it is still writing, the writer says goodbye in a line and hangs up, within a bound. It
    // is told before the broker hears we leave: the broker then drops our queue, and a writer
    // that found it closed before it had its last line would say the broker is gone (⑤).
    if !writer_ended {
        let _ = stop_writing.send(last_word.unwrap_or_else(|| CLOSING.to_string()));
    }
    if timed_out {
        let _ = state.events.send(Event::TimedOut { id }).await;
    }
    let _ = state.events.send(Event::Leave { id }).await;
    // (A finished task's handle must not be awaited twice: tokio panics if it is.) The queue the
    // writer hands back is held until the broker lets go of its end, as a WebSocket's is.
    if !writer_ended && let Ok(Ok(inbox)) = tokio::time::timeout(CLOSE_TIMEOUT, writer).await {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, inbox.until_closed()).await;
    }
    drop(place);
    tracing::info!(%id, "terminal client disconnected");
}

/// The line a terminal client reads when the server hangs up on it, unless there is more to say.
const CLOSING: &str = "* the server is closing this connection";

/// Why the reader stopped.
enum Stop {
    /// The client closed its end, the connection failed, or the broker is gone.
    Left,
    /// ⑩ Nothing came for `--idle-timeout`: the last line the client is to read.
    Silent(String),
}

/// Hands each line to the broker, until the client closes its end or the connection fails, or
/// it says nothing for `--idle-timeout` (see [`listen`]). A blank line only says the client is
/// there: it restarts the clock and goes no further.
async fn read(reader: OwnedReadHalf, id: ConnId, state: &AppState) -> Stop {
    let max = state.config.max_line_bytes;
    let mut lines = FramedRead::new(reader, Lines::new(max));
    loop {
        let line = match listen(&mut lines, id, state).await {
            Heard::Line(line) => line,
            Heard::Nothing => return Stop::Left,
            Heard::Silence => {
                tracing::info!(%id, "nothing heard for --idle-timeout: cutting the client off");
                let idle = state.idle_timeout;
                return Stop::Silent(format!("! closing: nothing received for {idle:?}"));
            }
        };
        let event = match line {
            Line::Text(text) if text.trim().is_empty() => continue,
            Line::Text(text) => Event::Message {
                from: id,
                message: Message::text(text),
            },
            Line::TooLong => Event::Refusal {
                to: id,
                reason: format!("lines are limited to {max} bytes: that one was skipped"),
            },
            Line::NotUtf8 => Event::Refusal {
                to: id,
                reason: "lines must be UTF-8 text: that one was skipped".to_string(),
            },
        };
        // ① As for the WebSockets: when the broker's queue is full, we wait, and read nothing.
        if state.events.send(event).await.is_err() {
            return Stop::Left;
        }
    }
}
// ANCHOR_END: connection

// ANCHOR: idle
/// What [`listen`] heard.
enum Heard {
    Line(Line),
    /// The client closed its end, the connection failed, or the broker is gone.
    Nothing,
    /// ⑩ Not a line for `--idle-timeout`, the question included.
    Silence,
}

/// ⑩ The client's next line, waited for at most `--idle-timeout`. A browser answers our pings by
/// itself; `nc` cannot, and a person reading along may type nothing for an hour. So after
/// `--idle-timeout` minus `--ping-interval`, the client is asked in words, with the time it has
/// left: any line answers, an empty one included.
async fn listen(
    lines: &mut FramedRead<OwnedReadHalf, Lines>,
    id: ConnId,
    state: &AppState,
) -> Heard {
    let answer_within = state.config.ping_interval;
    // At least one ping interval: `Config::idle_timeout` keeps the timeout at two or more.
    let ask_after = state.idle_timeout.saturating_sub(answer_within);
    // As for the WebSockets, each wait is a new `timeout`: time spent waiting for room in the
    // broker's queue is not the client's silence. (`next` may be dropped unfinished: what it
    // read so far stays in `lines`' buffer.)
    if let Ok(next) = tokio::time::timeout(ask_after, lines.next()).await {
        return Heard::from(next);
    }
    let question = Event::Refusal {
        to: id,
        reason: format!(
            "still there? send any line (an empty one will do) within {answer_within:?}, \
             or this connection closes"
        ),
    };
    if state.events.send(question).await.is_err() {
        return Heard::Nothing;
    }
    match tokio::time::timeout(answer_within, lines.next()).await {
        Ok(next) => Heard::from(next),
        Err(_) => Heard::Silence,
    }
}

impl From<Option<io::Result<Line>>> for Heard {
    fn from(next: Option<io::Result<Line>>) -> Heard {
        match next {
            Some(Ok(line)) => Heard::Line(line),
            None | Some(Err(_)) => Heard::Nothing,
        }
    }
}
// ANCHOR_END: idle

// ANCHOR: write
/// Writes each queued message as a line, a batch per flush, until the broker lets go of the
/// queue, a Close comes through it (`/quit`), or `stop` says the last line to write. A write that
/// takes longer than `write_timeout` cancels `stuck`. It returns the queue rather than drop it,
/// for the same reason as the WebSocket's writer (see `connection.rs`).
async fn write(
    writer: OwnedWriteHalf,
    mut inbox: Inbox,
    mut stop: oneshot::Receiver<String>,
    stuck: CancellationToken,
    write_timeout: Duration,
) -> Inbox {
    let mut writer = BufWriter::new(writer);
    let mut batch = Vec::new();
    let goodbye = loop {
        let taken = tokio::select! {
            biased;
            last = &mut stop => break Some(last.unwrap_or_else(|_| CLOSING.to_string())),
            taken = inbox.recv_many(&mut batch, BATCH_LIMIT) => taken,
        };
        // ⑤ The broker let go of our queue without a Close first: it is gone, or gave up on us.
        if taken == 0 {
            break Some("! the server cannot serve this connection any more".to_string());
        }
        // (`sum()` would be a `+` that could overflow, and one the lints do not see.)
        let held = batch
            .iter()
            .map(payload_size)
            .fold(0, usize::saturating_add);
        let quit = batch
            .iter()
            .any(|message| matches!(message, Message::Close(_)));
        let written = tokio::time::timeout(write_timeout, write_batch(&mut writer, &mut batch));
        match written.await {
            Ok(Ok(())) => inbox.release(held),
            Ok(Err(_)) => break None, // the client is gone
            Err(_) => {
                stuck.cancel();
                break None;
            }
        }
        if quit {
            break None;
        }
    };
    if let Some(line) = goodbye {
        let last = async {
            writer.write_all(line.as_bytes()).await?;
            writer.write_all(b"\n").await?;
            writer.flush().await
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, last).await;
    }
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, writer.shutdown()).await;
    inbox
}

/// Writes every text in `batch` as a line, in order, and empties it; one flush for all.
async fn write_batch(
    writer: &mut BufWriter<OwnedWriteHalf>,
    batch: &mut Vec<Message>,
) -> io::Result<()> {
    for message in batch.drain(..) {
        if let Message::Text(text) = message {
            writer.write_all(text.as_bytes()).await?;
            writer.write_all(b"\n").await?;
        }
    }
    writer.flush().await
}
// ANCHOR_END: write

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn decode_all(max: usize, input: &[u8]) -> Vec<Line> {
        let mut codec = Lines::new(max);
        let mut buf = BytesMut::from(input);
        let mut lines = Vec::new();
        while let Some(line) = codec.decode(&mut buf).unwrap() {
            lines.push(line);
        }
        while let Some(line) = codec.decode_eof(&mut buf).unwrap() {
            lines.push(line);
        }
        lines
    }

    /// Lines end at `\n` or `\r\n`; the last one may have no newline.
    #[test]
    fn lines_end_at_newlines() {
        assert_eq!(
            decode_all(16, b"hi\r\nthere\nlast"),
            [
                Line::Text("hi".into()),
                Line::Text("there".into()),
                Line::Text("last".into())
            ]
        );
    }

    /// A line over the limit is one `TooLong`, its rest is skipped, and the next line is read.
    #[test]
    fn a_long_line_is_skipped_and_reading_goes_on() {
        let mut input = vec![b'x'; 100];
        input.extend_from_slice(b"\nnext\n");
        assert_eq!(
            decode_all(10, &input),
            [Line::TooLong, Line::Text("next".into())]
        );
    }

    /// A line that is not UTF-8 is one `NotUtf8`, and the next line is read.
    #[test]
    fn a_line_that_is_not_utf8_is_skipped_and_reading_goes_on() {
        assert_eq!(
            decode_all(16, b"ok\n\xff\xfe\nstill ok\n"),
            [
                Line::Text("ok".into()),
                Line::NotUtf8,
                Line::Text("still ok".into())
            ]
        );
    }
}
