//! A client's lines while its name is being claimed (`--redis`): held, in order, until the
//! answer has come and been applied.
//!
//! Why hold them. Every chapter so far carries out one client's lines in the order it sent them,
//! one after the other: "/nick ann" then "/join games" arrives in games as ann. With `--redis`,
//! `/nick` is the one command whose effect comes later, when the bridge's answer does. Were the
//! next lines carried out meanwhile, the client would join games under its old name and be
//! renamed after, and a line said right after `/nick` would go out under the old name. So from
//! the moment a claim is handed to the bridge until its answer is applied, the client's further
//! messages wait in its entry; then they are carried out in order, as if they had just arrived.
//! A held `/nick` starts a claim of its own, and the lines after it wait again, behind that one.
//! A held `/quit` is carried out in its turn, and whatever came after it goes with the client.
//!
//! Why the wait ends. The bridge answers every claim it takes: granted, taken, or provisional
//! when Redis does not answer within its command timeout (or is known to be away). So the wait
//! is a Redis round trip, a second or so when Redis is in trouble. A claim the bridge cannot
//! take (its queue is full, or it is gone) is refused at once, and nothing is held. The one way
//! an answer could still fail to come is a bridge that ends after taking the claim (it never
//! does while the broker runs, short of a panic in it), or one so far behind that the wait would
//! be unreasonable: after [`CLAIM_PATIENCE`] the held lines are carried out anyway, with a word
//! to the client. That is checked at every heartbeat, and at each new line of the client's (a
//! bridge that is gone sends no heartbeat).

use std::{collections::VecDeque, time::Duration};

use axum::extract::ws::Message;
use tokio::time::Instant;

use super::{Broker, ConnId, Outgoing};
use crate::{message::Body, names::Nick, outbox::payload_size};

/// The most messages one client may have waiting behind its claim. Why so few suffice: a claim
/// takes a Redis round trip, milliseconds, and a person types a line or two in that time; a
/// paste of a few dozen lines fits too. A client that sends more is running ahead of its own
/// name: it is told to slow down, and the lines that do not fit are not carried out.
pub const HELD_LINES: usize = 32;
/// The most bytes of payload held for one client meanwhile: what its own queue holds by
/// default (`--queue-bytes`), so a client cannot make the broker keep more for it here than it
/// can make it keep there.
pub const HELD_BYTES: usize = 1 << 20;
/// How long a client's lines wait for the answer to its claim before they are carried out
/// anyway. The bridge answers within its command timeout (a second) of taking the claim, or a
/// few when claims queue up behind a slow Redis: ten seconds is well beyond that.
pub const CLAIM_PATIENCE: Duration = Duration::from_secs(10);

/// What a client sending too much meanwhile is told, for each message that is not carried out.
const SLOW_DOWN: &str = "slow down: your name is still being checked, and this line was not \
                         carried out";
/// What a client is told when its claim's answer is long overdue.
const OVERDUE: &str = "your name is taking long to check: what you sent meanwhile is carried out \
                       now, under the name you have, and the answer still counts when it comes";

/// A client waiting for the answer to its claim on a name.
#[derive(Debug)]
pub(super) struct Claiming {
    /// The name asked for: an answer about another name (one asked for earlier, whose wait ran
    /// out) does not end this wait.
    nick: Nick,
    /// When the claim was handed to the bridge.
    since: Instant,
    /// What the client sent since, oldest first.
    held: VecDeque<Message>,
    held_bytes: usize,
}

impl Claiming {
    /// Holds `message` if there is room; `false` if there is none.
    fn hold(&mut self, message: Message) -> bool {
        let total = self.held_bytes.saturating_add(payload_size(&message));
        if self.held.len() >= HELD_LINES || total > HELD_BYTES {
            return false;
        }
        self.held_bytes = total;
        self.held.push_back(message);
        true
    }

    fn overdue(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.since) >= CLAIM_PATIENCE
    }
}

impl Broker {
    // ANCHOR: held
    /// A message from `from`: carried out now, or held while its name is being claimed.
    pub(super) fn take_in(&mut self, from: ConnId, message: Message, now: Instant) {
        let Some(client) = self.clients.get_mut(&from) else {
            return;
        };
        match &mut client.claiming {
            None => self.carry_out(from, message, now),
            Some(claiming) if !claiming.overdue(now) => {
                // ㉓ No room: this line is refused, the held ones keep their place.
                if !claiming.hold(message) {
                    let text = SLOW_DOWN.to_string();
                    self.tell(from, Body::Error { text }, now);
                }
            }
            // Waited too long (a bridge that is gone sends no heartbeat to notice it by): the
            // held lines go first, then this one, held again only if they started a new claim.
            Some(_) => {
                self.stop_waiting(from, now);
                self.take_in(from, message, now);
            }
        }
    }

    /// Carries out `held`, in order, until it is done, the client is gone (a `/quit`, a closed
    /// queue), or one of them starts a new claim: then the rest wait behind that one.
    fn resume(&mut self, id: ConnId, mut held: VecDeque<Message>, now: Instant) {
        while let Some(message) = held.pop_front() {
            self.carry_out(id, message, now);
            let Some(client) = self.clients.get_mut(&id) else {
                return;
            };
            if let Some(claiming) = &mut client.claiming {
                // The new claim was made just now, so nothing is held behind it yet: the rest
                // are its held lines, still in order, and within the bounds they were held in.
                claiming.held_bytes = held.iter().fold(0, |sum: usize, message| {
                    sum.saturating_add(payload_size(message))
                });
                claiming.held = held;
                return;
            }
        }
    }
    // ANCHOR_END: held

    /// `from`'s claim on `nick` went to the bridge: its next messages wait for the answer.
    pub(super) fn await_claim(&mut self, from: ConnId, nick: &Nick, now: Instant) {
        if let Some(client) = self.clients.get_mut(&from) {
            client.claiming = Some(Claiming {
                nick: nick.clone(),
                since: now,
                held: VecDeque::new(),
                held_bytes: 0,
            });
        }
    }

    /// The answer to `from`'s claim on `nick` has been applied: what it sent meanwhile is carried
    /// out. An answer to an earlier claim, whose wait already ran out, changes nothing here.
    pub(super) fn claim_answered(&mut self, from: ConnId, nick: &Nick, now: Instant) {
        let Some(client) = self.clients.get_mut(&from) else {
            return;
        };
        if client
            .claiming
            .as_ref()
            .is_some_and(|claiming| claiming.nick == *nick)
            && let Some(claiming) = client.claiming.take()
        {
            self.resume(from, claiming.held, now);
        }
    }

    /// At a heartbeat: every client that has waited for its claim's answer for too long.
    pub(super) fn sweep_claims(&mut self, now: Instant) {
        let overdue: Vec<ConnId> = self
            .clients
            .iter()
            .filter(|(_, client)| client.claiming.as_ref().is_some_and(|c| c.overdue(now)))
            .map(|(id, _)| *id)
            .collect();
        for id in overdue {
            self.stop_waiting(id, now);
        }
    }

    /// `id` has waited too long: it is told, and what it sent meanwhile is carried out. If the
    /// answer comes after all, it is still applied (`claimed`), but nothing waits for it.
    fn stop_waiting(&mut self, id: ConnId, now: Instant) {
        let Some(claiming) = self
            .clients
            .get_mut(&id)
            .and_then(|client| client.claiming.take())
        else {
            return;
        };
        tracing::warn!(%id, nick = %claiming.nick, "no answer to a claim: carrying on without it");
        let text = OVERDUE.to_string();
        self.tell(id, Body::Error { text }, now);
        self.resume(id, claiming.held, now);
    }

    /// Does what `message` from `from` asks: a line is said or carried out as a command, binary
    /// data goes to the room as it came.
    fn carry_out(&mut self, from: ConnId, message: Message, now: Instant) {
        match &message {
            Message::Text(line) => self.input(from, line.as_str(), now),
            Message::Binary(_) => {
                let others = self.room_mates(from);
                self.send(&others, Outgoing::Raw(&message), now);
            }
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) => {}
        }
    }
}
