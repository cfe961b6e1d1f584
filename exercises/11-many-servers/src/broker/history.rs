// Fan-out workshop, exercise 11-many-servers: generated from chapters/11-many-servers by `cargo workshop generate`.
//
// Nothing to do in this file: it is the finished part of the exercise. Your part is in
// src/bridge.rs, src/broker/cluster.rs.

//! The broker's side of the history: numbering what clients say and handing it to the storage
//! task, and the seam where a joining client's history meets the live messages.
//!
//! The seam. When a client comes into a room, it should read that room's last messages, then
//! everything said afterwards: nothing twice, nothing missing in between. The broker cannot read
//! the database itself (it never waits), so it asks the storage task, and the answer comes back
//! later as an event, while the chat goes on. Two things make the join exact:
//! - Every message a client says gets a number, in the order the broker handles it, and its
//!   write goes into the storage task's queue at once. A request for history carries the number
//!   of the last message said ("up to 41") and goes into the same queue, behind those writes, so
//!   the answer holds message 41 and those before it, and nothing after.
//! - From the request until the answer, whatever the broker would send the client is held aside
//!   (in order, and bounded: see [`HOLD_LIMIT`]). Those are exactly the messages after 41. When
//!   the answer comes, the client gets the history, then what was held; after that, messages go
//!   straight to its queue again.
//!
//! If the storage task cannot take the request (its queue is full, or it is gone), there is no
//! history to wait for: nothing is held, and a client that asked with `/history` is told why.

use std::{collections::VecDeque, sync::Arc};

use axum::extract::ws::Message;
use tokio::{sync::mpsc, time::Instant};

use super::{Broker, ConnId};
use crate::{
    message::{Body, ChatMessage, Payloads},
    metrics::Disconnect,
    outbox::payload_size,
    storage::{Counts, Job, Read, Record},
};

/// The most messages held for one client while its history is on its way. Why so few suffice:
/// the storage task answers within milliseconds, or within its busy timeout when the database
/// is in trouble; this is room for a busy room's traffic meanwhile. What does not fit is dropped
/// for that client, as for a full queue (④).
pub const HOLD_LIMIT: usize = 1024;
/// The most bytes of payload held for one client meanwhile (as `--queue-bytes` by default).
pub const HOLD_BYTES: usize = 1 << 20;

/// What the broker needs to keep history: the way to the storage task, how much to replay on a
/// join (`--history`, 0 for none), and the numbers it hands out.
#[derive(Debug)]
pub struct History {
    jobs: mpsc::Sender<Job>,
    replay: usize,
    /// The number of the last message said. `serve` starts it at the highest one stored, so the
    /// numbers go on increasing across restarts.
    last: u64,
    /// The number of the last request for history.
    tickets: u64,
    /// Whether writes are being dropped (the storage queue was full): logged once per episode.
    dropping: bool,
    /// What the storage task counts, for `/stats`.
    counts: Arc<Counts>,
}

impl History {
    /// History kept through `jobs`, `replay` messages replayed on a join, numbers going on
    /// after `last`; the storage task counts its writes and failures in `counts`.
    pub fn new(jobs: mpsc::Sender<Job>, replay: usize, last: u64, counts: Arc<Counts>) -> History {
        History {
            jobs,
            replay,
            last,
            tickets: 0,
            dropping: false,
            counts,
        }
    }

    /// Messages written to the database so far, and the database's failures.
    pub(super) fn counts(&self) -> (u64, u64) {
        (self.counts.writes.get(), self.counts.failures.get())
    }
}

/// A client waiting for its history: what was held for it meanwhile.
#[derive(Debug, Default)]
pub(super) struct Pending {
    /// The request whose answer is awaited; an answer with another ticket is stale.
    ticket: u64,
    held: VecDeque<Message>,
    held_bytes: usize,
    /// Where in `held` the history goes: the messages before it were held for an earlier request
    /// that this one replaced (a second `/join` before the first answer came).
    cut: usize,
    /// Whether the client asked (`/history`), rather than joined: then it is told when there is
    /// nothing to show.
    asked: bool,
}

impl Pending {
    /// Holds `message` if there is room; `false` if there is none.
    pub(super) fn hold(&mut self, message: Message) -> bool {
        let bytes = payload_size(&message);
        let total = self.held_bytes.saturating_add(bytes);
        if self.held.len() >= HOLD_LIMIT || total > HOLD_BYTES {
            return false;
        }
        self.held_bytes = total;
        self.held.push_back(message);
        true
    }
}

impl Broker {
    /// This broker keeps history through `history`.
    pub fn with_history(mut self, history: History) -> Broker {
        self.history = Some(history);
        self
    }

    /// Numbers `message`, something a client said, and hands it to the storage task. Never
    /// waits: when the storage queue is full, the message is not kept, and that is counted.
    pub(super) fn record(&mut self, message: &ChatMessage) {
        let Some(history) = &mut self.history else {
            return;
        };
        history.last = history.last.saturating_add(1);
        let record = Record {
            seq: history.last,
            message: message.clone(),
        };
        match history.jobs.try_send(Job::Write(record)) {
            Ok(()) => {
                if history.dropping {
                    tracing::info!("history writes go through again");
                    history.dropping = false;
                }
            }
            Err(_) => {
                self.metrics.history_dropped.inc();
                if !history.dropping {
                    tracing::warn!("the storage queue is full: messages are not kept in history");
                    history.dropping = true;
                }
            }
        }
    }

    /// Asks the storage task for the last messages of `id`'s room: `count` of them if the
    /// client asked (`/history N`), else as many as `--history`. Until the answer comes, what
    /// `id` would receive is held (see `deliver`).
    pub(super) fn request_history(
        &mut self,
        id: ConnId,
        count: Option<usize>,
        asked: bool,
        now: Instant,
    ) {
        let Some(history) = &mut self.history else {
            if asked {
                let text = "this server keeps no history".to_string();
                self.tell(id, Body::Error { text }, now);
            }
            return;
        };
        // Replay is off (`--history 0`): a join brings none; `/history` alone asks for the default.
        let limit = match count {
            Some(n) => n,
            None if history.replay > 0 => history.replay,
            None if asked => crate::config::DEFAULT_HISTORY,
            None => return,
        };
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        let ticket = history.tickets.saturating_add(1);
        let read = Read {
            to: id,
            ticket,
            room: client.room.clone(),
            upto: history.last,
            limit,
        };
        if history.jobs.try_send(Job::Read(read)).is_err() {
            // Nothing will answer: hold nothing. The client who asked is told.
            if asked {
                let text = crate::storage::UNAVAILABLE.to_string();
                self.tell(id, Body::Error { text }, now);
            }
            return;
        }
        history.tickets = ticket;
        let pending = client.pending.get_or_insert_with(Pending::default);
        pending.ticket = ticket;
        pending.cut = pending.held.len();
        pending.asked = asked;
    }

    /// The storage task's answer to request `ticket` for `to`: the client gets what was held
    /// before the request, the history, then what was held since, and is no longer held. An
    /// answer to a request that a later one replaced is dropped: the later answer will come.
    pub(super) fn answer_history(
        &mut self,
        to: ConnId,
        ticket: u64,
        answer: Result<Vec<ChatMessage>, String>,
        now: Instant,
    ) {
        self.drop_repeats(to, ticket, &answer);
        let Some(client) = self.clients.get_mut(&to) else {
            return; // gone meanwhile
        };
        let Some(mut pending) = client.pending.take_if(|pending| pending.ticket == ticket) else {
            return; // stale
        };
        let after = pending.held.split_off(pending.cut.min(pending.held.len()));
        let mut out: Vec<Message> = pending.held.into_iter().collect();
        let wire = client.wire;
        match answer {
            Ok(messages) if messages.is_empty() && pending.asked => {
                let text = format!("nothing has been said in {} yet", client.room);
                out.push(Payloads::new(&ChatMessage::now(Body::Info { text })).for_wire(wire));
            }
            Ok(messages) => out.extend(
                messages
                    .iter()
                    .map(|message| Payloads::new(message).for_wire(wire)),
            ),
            // A client that asked gets an error; one that joined, a word of why there is none.
            Err(text) if pending.asked => {
                out.push(Payloads::new(&ChatMessage::now(Body::Error { text })).for_wire(wire));
            }
            Err(text) => {
                out.push(Payloads::new(&ChatMessage::now(Body::Info { text })).for_wire(wire));
            }
        }
        out.extend(after);
        self.pass_on(to, out, now);
    }

    /// Across servers (`--redis`), the seam has one more case. A message said on another server
    /// is stored there, then published; if it was stored before this server read the history,
    /// and arrived here after the request, it is both in `answer` and among what was held for
    /// `to`. It goes out once, as history: the held copy is dropped. (It cannot be missing from
    /// both: arriving here after the read means it was stored before it was published.) Only a
    /// client of another server can say such a message: this server's own are numbered, and
    /// what is held was said after the number the request carried.
    fn drop_repeats(&mut self, to: ConnId, ticket: u64, answer: &Result<Vec<ChatMessage>, String>) {
        let (Some(_), Ok(messages)) = (&self.cluster, answer) else {
            return;
        };
        let Some(client) = self.clients.get_mut(&to) else {
            return;
        };
        let wire = client.wire;
        let Some(pending) = client
            .pending
            .as_mut()
            .filter(|pending| pending.ticket == ticket)
        else {
            return;
        };
        // How each message of the history looked when it was said: as a held one looks.
        let said: Vec<Message> = messages
            .iter()
            .map(|message| {
                let live = ChatMessage {
                    history: false,
                    ..message.clone()
                };
                Payloads::new(&live).for_wire(wire)
            })
            .collect();
        let cut = pending.cut;
        let mut index = 0usize;
        pending.held.retain(|held| {
            let keep = index < cut || !said.contains(held);
            index = index.saturating_add(1);
            keep
        });
        pending.held_bytes = pending.held.iter().map(payload_size).sum();
    }

    /// Lets go of what was held for `id`, without history: before its connection closes.
    pub(super) fn release(&mut self, id: ConnId, now: Instant) {
        let Some(pending) = self
            .clients
            .get_mut(&id)
            .and_then(|client| client.pending.take())
        else {
            return;
        };
        self.pass_on(id, pending.held.into(), now);
    }

    /// Puts `messages` in `id`'s queue, in order; what does not fit is missed, as in `deliver`.
    /// A closed queue means the client is gone: it is removed.
    fn pass_on(&mut self, id: ConnId, messages: Vec<Message>, now: Instant) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        let mut missed = 0u64;
        for message in messages {
            match client.outbox.try_send(message) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => missed = missed.saturating_add(1),
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.remove(id, Disconnect::Closed, now);
                    return;
                }
            }
        }
        if missed > 0 {
            tracing::warn!(%id, missed, "history and held messages did not all fit in the queue");
            client.missed = client.missed.saturating_add(missed);
        }
    }
}
