//! What the servers of a cluster say to each other through Redis, and what the broker and the
//! bridge say to each other about it.

use serde::{Deserialize, Serialize};

use crate::{broker::ConnId, message::ChatMessage, names::Nick};

// ANCHOR: news
/// What one instance tells the others, as JSON on [`CHANNEL`](super::CHANNEL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The instance that published it: an instance skips its own publications, which Redis
    /// sends back to it like to any subscriber (it delivered them itself already).
    pub from: u64,
    #[serde(flatten)]
    pub news: News,
}

/// The news itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "news", rename_all = "snake_case")]
pub enum News {
    /// Something said in `room`: for the members of `room` on every other instance.
    Room { room: String, message: ChatMessage },
    /// A private message for whoever holds the name `to` (in lower case).
    Private { to: String, message: ChatMessage },
    /// A client of the publisher is `nick`, in `room`: new, renamed or moved.
    Member(Member),
    /// A client of the publisher is gone.
    Gone { conn: u64 },
    /// Every client of the publisher, in place of what was known of them.
    Roster { members: Vec<Member> },
    /// The publisher is new, or back: every instance answers with its `Roster`.
    Hello,
    /// The publisher is still there (see [`PEER_TIMEOUT`](super::PEER_TIMEOUT)).
    Alive,
}

/// One client of an instance, as the others know it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub conn: u64,
    pub nick: String,
    pub room: String,
}
// ANCHOR_END: news

/// What the broker asks of the bridge.
#[derive(Debug)]
pub enum Outbound {
    /// Tell the other instances.
    Publish(News),
    /// Claim the name `nick` for client `id`; the answer comes as [`Bridged::Claimed`].
    Claim { id: ConnId, nick: Nick },
    /// Client `id` no longer holds `nick`.
    Release { id: ConnId, nick: Nick },
}

/// The answer to a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    Granted,
    /// Another client holds it, on this instance or another.
    Taken,
    /// Redis is out of reach: nobody can say whether the name is free on the other servers.
    /// The bridge keeps the claim, and makes it when Redis is back; if another server's client
    /// took the name meanwhile, one of the two loses it then ([`Bridged::Lost`]).
    Provisional,
}

/// What the bridge tells the broker.
#[derive(Debug)]
pub enum Bridged {
    /// Redis answers (again): the other instances can be reached.
    Up,
    /// Redis is out of reach.
    Down,
    /// Another instance's news.
    News(Envelope),
    /// The answer to [`Outbound::Claim`].
    Claimed {
        id: ConnId,
        nick: Nick,
        claim: Claim,
    },
    /// A claim refreshed after an outage turned out to be someone else's: `id` lost `nick`.
    Lost { id: ConnId, nick: Nick },
    /// A heartbeat: time to forget the instances that have gone silent.
    Tick,
}
