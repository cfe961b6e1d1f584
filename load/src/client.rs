//! The generator's clients: how each connects, what a reading client does with every frame, and
//! how a sender paces itself.
//!
//! Every client is a tokio task. A reading client owns its [`Tally`] and touches shared memory
//! only to publish how far it has got (one atomic store per delivery into a cache line of its
//! own, see [`Board`]); that is what a sender at `--rate max` watches to keep its window.

use std::{
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, Instant},
};

use tokio::{
    net::{TcpSocket, tcp::OwnedReadHalf},
    sync::{Mutex, Notify},
};
use tokio_util::sync::CancellationToken;

use crate::{
    payload::{self, Delivery, Stamp},
    scenario::{CONNECT_TIMEOUT, Rate},
    tally::Tally,
    target::Target,
    wire::{self, Connection, FrameReader, FrameWriter, HandshakeError, Incoming},
};

/// The sending side of a connection, shared by a sender and its own reading task (which answers
/// pings and Close frames through it).
pub type SharedWriter = std::sync::Arc<Mutex<FrameWriter>>;

/// Why a client did not get connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectError {
    /// The server answered the handshake with this HTTP status instead of 101 (503 when full,
    /// 429 when rate limited, ...).
    Refused(u16),
    /// No connection: refused by the kernel, reset, timed out, ...
    Failed(String),
}

/// The receive buffer a client that never reads asks for: the server's writes to it stop after
/// a few kilobytes, so what it holds for that client shows quickly.
pub const STALLED_RECEIVE_BUFFER: u32 = 4 * 1024;

/// Connects to `target` and completes the WebSocket handshake, within [`CONNECT_TIMEOUT`].
/// `receive_buffer` asks the kernel for a small receive buffer (before connecting, so the
/// window the server sees is small from the start); `read_buffer` is the client's own buffer;
/// `seed` makes its masks.
pub async fn connect(
    target: &Target,
    receive_buffer: Option<u32>,
    read_buffer: usize,
    seed: u64,
) -> Result<Connection, ConnectError> {
    let handshake = async {
        let socket = if target.addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(|err| ConnectError::Failed(format!("cannot create a socket: {err}")))?;
        if let Some(size) = receive_buffer {
            socket
                .set_recv_buffer_size(size)
                .map_err(|err| ConnectError::Failed(format!("cannot set SO_RCVBUF: {err}")))?;
        }
        let stream = socket
            .connect(target.addr)
            .await
            .map_err(|err| ConnectError::Failed(err.to_string()))?;
        // Small messages must not wait for Nagle's algorithm: that would add the kernel's
        // delayed-ACK time (up to 40 ms) to the latencies measured.
        let _ = stream.set_nodelay(true);
        match Connection::open(stream, target, read_buffer, seed).await {
            Ok(connection) => Ok(connection),
            Err(HandshakeError::Status(status)) => Err(ConnectError::Refused(status)),
            Err(HandshakeError::Failed(why)) => Err(ConnectError::Failed(why)),
        }
    };
    tokio::time::timeout(CONNECT_TIMEOUT, handshake)
        .await
        .unwrap_or_else(|_| {
            Err(ConnectError::Failed(format!(
                "no handshake within {CONNECT_TIMEOUT:?}"
            )))
        })
}

/// An `AtomicU64` alone on its cache line, so clients on different cores never write to the
/// same line.
#[repr(align(64))]
#[derive(Debug, Default)]
struct Slot(AtomicU64);

/// The progress every reading client publishes, and the senders' wake-up calls.
///
/// For client `c`: how many messages it has received (for the progress bar and the drain), and
/// for each sender `s`, one past the highest sequence number of `s` it has seen. A sender's
/// messages in flight are its sent count minus the smallest of those over the clients.
#[derive(Debug)]
pub struct Board {
    senders: usize,
    /// `clients × (1 + senders)` slots: the delivered count, then one per sender.
    slots: Vec<Slot>,
    /// Per sender: it is waiting for room in its window.
    waiting: Vec<AtomicBool>,
    /// Per sender: wakes it when a client has made progress.
    wake: Vec<Notify>,
}

/// A client that does not hold a sender back (itself, one that failed or has gone).
const NOT_WAITED_FOR: u64 = u64::MAX;

impl Board {
    pub fn new(clients: usize, senders: usize) -> Board {
        let board = Board {
            senders,
            slots: (0..clients * (1 + senders))
                .map(|_| Slot::default())
                .collect(),
            waiting: (0..senders).map(|_| AtomicBool::new(false)).collect(),
            wake: (0..senders).map(|_| Notify::new()).collect(),
        };
        // Sender `s` is client `s`; it never receives its own messages.
        for sender in 0..senders.min(clients) {
            board
                .seen(sender, sender)
                .store(NOT_WAITED_FOR, Ordering::SeqCst);
        }
        board
    }

    fn slot(&self, client: usize, index: usize) -> &AtomicU64 {
        &self.slots[client * (1 + self.senders) + index].0
    }

    fn delivered_slot(&self, client: usize) -> &AtomicU64 {
        self.slot(client, 0)
    }

    fn seen(&self, client: usize, sender: usize) -> &AtomicU64 {
        self.slot(client, 1 + sender)
    }

    /// Client `client` has seen sender `sender` up to `next` (exclusive); wakes the sender if it
    /// waits for room.
    pub fn publish_seen(&self, client: usize, sender: usize, next: u64) {
        self.seen(client, sender).store(next, Ordering::SeqCst);
        if self.waiting[sender].load(Ordering::SeqCst)
            && self.waiting[sender].swap(false, Ordering::SeqCst)
        {
            self.wake[sender].notify_one();
        }
    }

    /// Client `client` has received `count` messages in all.
    pub fn publish_delivered(&self, client: usize, count: u64) {
        self.delivered_slot(client).store(count, Ordering::Relaxed);
    }

    /// Client `client` holds no sender back any more (it failed to connect, or it has gone).
    pub fn release(&self, client: usize) {
        for sender in 0..self.senders {
            self.seen(client, sender)
                .store(NOT_WAITED_FOR, Ordering::SeqCst);
        }
    }

    /// Messages every client has received so far, summed.
    pub fn delivered(&self) -> u64 {
        self.slots
            .chunks(1 + self.senders)
            .map(|client| client[0].0.load(Ordering::Relaxed))
            .sum()
    }

    /// What the slowest client has seen of `sender`: messages below this have reached everyone.
    pub fn slowest(&self, sender: usize) -> u64 {
        self.slots
            .chunks(1 + self.senders)
            .map(|client| client[1 + sender].0.load(Ordering::SeqCst))
            .min()
            .unwrap_or(NOT_WAITED_FOR)
    }
}

/// How a reading client's connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The generator stopped it: the run is over.
    Stopped,
    /// The server closed it; the close code, `1005` for a Close frame without one, `1006` when
    /// the connection ended without a Close frame (as browsers report these).
    Closed(u16),
}

/// What a reading client took home.
#[derive(Debug)]
pub struct ReadOutcome {
    pub tally: Tally,
    pub ending: Ending,
}

/// Reads until the server ends the connection or `stop` is cancelled, counting every frame.
/// Each read is followed by parsing every frame it brought, all stamped with one receive time.
#[allow(clippy::too_many_arguments)]
pub async fn read_all(
    mut read: OwnedReadHalf,
    mut frames: FrameReader,
    writer: SharedWriter,
    client: usize,
    mut tally: Tally,
    board: &Board,
    clock: Instant,
    stop: &CancellationToken,
) -> ReadOutcome {
    let mut delivered = 0u64;
    let mut close_code = None;
    // The handshake may have read the first frames already: parse before the first read.
    let mut filled = true;
    let ending = 'reading: loop {
        if !filled {
            // `biased`: the stop token is only looked at when no bytes are waiting.
            let read = tokio::select! {
                biased;
                read = frames.fill(&mut read) => read,
                () = stop.cancelled() => break Ending::Stopped,
            };
            match read {
                Ok(0) | Err(_) => break Ending::Closed(close_code.unwrap_or(1006)),
                Ok(_) => {}
            }
        }
        filled = false;
        let now = micros_since(clock);
        loop {
            let reply = match frames.next_frame() {
                Ok(None) => break,
                Ok(Some(Incoming::Data(frame))) => {
                    match payload::read(frame) {
                        Delivery::Ours(stamp) => {
                            if let Some(sender) = tally.record(stamp, now) {
                                delivered += 1;
                                board.publish_delivered(client, delivered);
                                board.publish_seen(client, stamp.sender as usize, sender.next);
                            }
                        }
                        Delivery::Other => tally.record_other(),
                    }
                    continue;
                }
                Ok(Some(Incoming::Pong)) => continue,
                Ok(Some(Incoming::Ping(payload))) => (wire::PONG, payload.to_vec()),
                Ok(Some(Incoming::Close(code))) => {
                    // Answer with the same code; the server then closes the connection, and the
                    // next read returns 0.
                    close_code.get_or_insert(code.unwrap_or(1005));
                    (
                        wire::CLOSE,
                        code.map(|code| code.to_be_bytes().to_vec())
                            .unwrap_or_default(),
                    )
                }
                // The server broke the protocol: reported as 1002, the code for that.
                Err(_) => break 'reading Ending::Closed(1002),
            };
            let mut writer = writer.lock().await;
            writer.push(reply.0, &reply.1);
            let _ = writer.flush().await;
        }
    };
    board.release(client);
    ReadOutcome { tally, ending }
}

/// Microseconds from `clock` to now: the time base of every stamp in a run.
pub fn micros_since(clock: Instant) -> u64 {
    u64::try_from(clock.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// How one sender behaves.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub rate: Rate,
    pub window: u64,
    pub size: usize,
    /// The most messages to send.
    pub messages: u64,
}

/// What a sender did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendOutcome {
    pub sent: u64,
    /// Why it stopped before it was told to, if it did (the connection failed).
    pub error: Option<String>,
}

/// Sends numbered messages as sender `sender` until `stop` is cancelled or `pace.messages` are
/// sent, publishing the count in `sent` as it goes.
pub async fn send_all(
    writer: SharedWriter,
    sender: u32,
    pace: Pace,
    board: &Board,
    clock: Instant,
    sent: &AtomicU64,
    stop: &CancellationToken,
) -> SendOutcome {
    let mut count = 0u64;
    let message = |count: u64| {
        let stamp = Stamp {
            sender,
            seq: count,
            sent_at_us: micros_since(clock),
        };
        payload::encode(stamp, pace.size)
    };
    let result: std::io::Result<()> = match pace.rate {
        Rate::PerSecond(rate) => {
            let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            // A late tick is made up for: the rate holds on average even when a send is slow.
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            loop {
                if count >= pace.messages {
                    break Ok(());
                }
                tokio::select! {
                    biased;
                    () = stop.cancelled() => break Ok(()),
                    _ = ticks.tick() => {}
                }
                let mut writer = writer.lock().await;
                writer.push(wire::TEXT, message(count).as_bytes());
                let written = tokio::select! {
                    written = writer.flush() => written,
                    () = stop.cancelled() => break Ok(()),
                };
                if let Err(err) = written {
                    break Err(err);
                }
                count += 1;
                sent.store(count, Ordering::Relaxed);
            }
        }
        Rate::Max => {
            let sender = sender as usize;
            // Refill in batches of a quarter window: fewer, larger writes than one per message.
            let batch = (pace.window / 4).max(1);
            loop {
                if stop.is_cancelled() || count >= pace.messages {
                    break Ok(());
                }
                let in_flight = count.saturating_sub(board.slowest(sender));
                let room = pace
                    .window
                    .saturating_sub(in_flight)
                    .min(pace.messages - count);
                if room < batch.min(pace.messages - count) {
                    wait_for_room(board, sender, count, pace.window, batch, stop).await;
                    continue;
                }
                let mut writer = writer.lock().await;
                for offset in 0..room {
                    writer.push(wire::TEXT, message(count + offset).as_bytes());
                }
                let written = tokio::select! {
                    written = writer.flush() => written,
                    () = stop.cancelled() => break Ok(()),
                };
                if let Err(err) = written {
                    break Err(err);
                }
                count += room;
                sent.store(count, Ordering::Relaxed);
            }
        }
    };
    sent.store(count, Ordering::Relaxed);
    SendOutcome {
        sent: count,
        error: result.err().map(|err| err.to_string()),
    }
}

/// Waits until the slowest client has made room for a batch (or a millisecond has passed: a
/// wake-up lost to a race costs no more than that), or `stop` is cancelled.
async fn wait_for_room(
    board: &Board,
    sender: usize,
    count: u64,
    window: u64,
    batch: u64,
    stop: &CancellationToken,
) {
    let notified = board.wake[sender].notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    board.waiting[sender].store(true, Ordering::SeqCst);
    // Progress published between the check in the caller and `waiting` above is seen here.
    if window.saturating_sub(count.saturating_sub(board.slowest(sender))) >= batch {
        board.waiting[sender].store(false, Ordering::SeqCst);
        return;
    }
    tokio::select! {
        () = notified => {}
        () = tokio::time::sleep(Duration::from_millis(1)) => {}
        () = stop.cancelled() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In flight is measured at the slowest client; a client that has gone stops counting.
    #[test]
    fn the_slowest_client_sets_the_window_until_it_goes() {
        let board = Board::new(3, 1);
        assert_eq!(board.slowest(0), 0, "nobody has received anything yet");
        board.publish_seen(1, 0, 10);
        board.publish_seen(2, 0, 4);
        assert_eq!(board.slowest(0), 4, "client 2 is the slowest");
        board.release(2);
        assert_eq!(
            board.slowest(0),
            10,
            "client 2 has gone: client 1 is the slowest now"
        );
    }

    /// A sender is not held back by itself, and deliveries add up over clients.
    #[test]
    fn a_sender_does_not_wait_for_itself() {
        let board = Board::new(2, 2);
        board.publish_seen(0, 1, 7);
        board.publish_seen(1, 0, 5);
        assert_eq!(board.slowest(0), 5, "sender 0 waits only for client 1");
        assert_eq!(board.slowest(1), 7, "sender 1 waits only for client 0");
        board.publish_delivered(0, 7);
        board.publish_delivered(1, 5);
        assert_eq!(board.delivered(), 12);
    }
}
