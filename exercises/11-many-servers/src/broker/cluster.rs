// Fan-out workshop, exercise 11-many-servers: generated from chapters/11-many-servers by `cargo workshop generate`.
//
// Your part: replace the `todo!(..)` in this file with working code. The rest already works;
// leave it as it is. `cargo workshop check 11` runs the stage tests,
// `cargo workshop hint 11` gives a hint, `cargo workshop reset 11` starts over.

//! The broker's side of `--redis`: what it tells the other servers, and what it makes of what
//! they tell it. It still never waits: news goes to the bridge's queue with `try_send`, and
//! comes back as events (`bridge.rs` does the talking to Redis).
//!
//! What the broker knows of the other servers' clients, it learns from their news: each server
//! publishes a `Member` when one of its clients arrives, changes name or room, a `Gone` when it
//! leaves, and its whole `Roster` when another server says `Hello` (a new server, or one back
//! after an outage). From those the broker answers `/who`, `/rooms` and `/msg` at once, and tells
//! its own clients who came and went over there, as it does for its own. A server that falls
//! silent for [`PEER_TIMEOUT`] is forgotten, its clients with it.

use std::{collections::HashMap, sync::Arc};

use tokio::{sync::mpsc, time::Instant};

use super::{Broker, ConnId, Outgoing};
use crate::{
    bridge::{self, Bridged, Claim, Envelope, Member, News, Outbound, PEER_TIMEOUT, Unpublished},
    message::{Body, ChatMessage},
    names::{NameError, Nick, Room},
};

/// Whether `text` has the form of a name a server gives out or accepts: what another server
/// says its client is called is shown to ours, in `/who` and in lines a terminal prints.
fn is_name(text: &str) -> bool {
    matches!(Nick::parse(text), Ok(_) | Err(NameError::GuestLike(_)))
}

/// What every client is told when Redis goes out of reach.
const OUT_OF_REACH: &str = "the other servers are out of reach: until they are back, only the \
                            clients of this server hear you";

/// What the broker keeps for the cluster: the way to the bridge, and the other servers.
#[derive(Debug)]
pub struct Cluster {
    outbound: mpsc::Sender<Outbound>,
    instance: u64,
    /// Whether Redis answers: while it does not, the other servers are out of reach.
    up: bool,
    /// Whether the clients were told that the other servers are out of reach (and so are to
    /// be told when they are back).
    told_down: bool,
    /// The other servers heard from: instance → when last, and its clients.
    peers: HashMap<u64, Peer>,
    /// Whether news is being dropped (the queue was full): logged once per episode.
    dropping: bool,
    /// What the bridge counts.
    counts: Arc<bridge::Counts>,
}

/// Another server, as this one knows it.
#[derive(Debug)]
struct Peer {
    heard: Instant,
    /// Its clients: its number for each → where and who.
    members: HashMap<u64, (String, Room)>,
}

impl Cluster {
    /// The broker's end of the bridge that [`bridge::start`] returned.
    pub fn new(links: &bridge::Links) -> Cluster {
        Cluster {
            outbound: links.outbound.clone(),
            instance: links.instance,
            up: false,
            told_down: false,
            peers: HashMap::new(),
            dropping: false,
            counts: Arc::clone(&links.counts),
        }
    }

    pub(super) fn instance(&self) -> u64 {
        self.instance
    }

    pub(super) fn unpublished(&self) -> u64 {
        self.counts.unpublished.total()
    }

    pub(super) fn unheard(&self) -> u64 {
        self.counts.unheard.get()
    }

    pub(super) fn peer_count(&self) -> u64 {
        self.peers.len() as u64
    }

    /// ⑳ Hands `out` to the bridge without waiting; `false` if its queue had no room.
    fn offer(&mut self, out: Outbound) -> bool {
        match self.outbound.try_send(out) {
            Ok(()) => {
                if self.dropping {
                    tracing::info!("the bridge takes news again");
                    self.dropping = false;
                }
                true
            }
            Err(_) => {
                if !self.dropping {
                    tracing::warn!("the bridge's queue is full: the other servers miss news");
                    self.dropping = true;
                }
                false
            }
        }
    }

    /// Tells the other servers `news` (counted if it cannot be).
    fn publish(&mut self, news: News) {
        if !self.offer(Outbound::Publish(news)) {
            self.counts.unpublished.inc(Unpublished::QueueFull);
        }
    }

    /// The remote clients in `room`, by name.
    fn members_of(&self, room: &Room) -> impl Iterator<Item = &str> {
        self.peers
            .values()
            .flat_map(|peer| peer.members.values())
            .filter(move |(_, their_room)| their_room == room)
            .map(|(nick, _)| nick.as_str())
    }

    /// The remote holder of a name, as they spell it.
    fn holder(&self, lower: &str) -> Option<&str> {
        self.peers
            .values()
            .flat_map(|peer| peer.members.values())
            .map(|(nick, _)| nick.as_str())
            .find(|nick| nick.eq_ignore_ascii_case(lower))
    }
}

impl Broker {
    /// This broker shares its chat with other servers through `cluster`.
    pub fn with_cluster(mut self, cluster: Cluster) -> Broker {
        self.cluster = Some(cluster);
        self
    }

    /// Tells the other servers that `id` is who and where it is now.
    pub(super) fn publish_member(&mut self, id: ConnId) {
        let Some(member) = self.member(id) else {
            return;
        };
        if let Some(cluster) = &mut self.cluster {
            cluster.publish(News::Member(member));
        }
    }

    /// Tells the other servers that `id` left.
    pub(super) fn publish_gone(&mut self, id: ConnId) {
        if let Some(cluster) = &mut self.cluster {
            cluster.publish(News::Gone { conn: id.number() });
        }
    }

    /// Tells the other servers what a client said in `room`.
    pub(super) fn publish_said(&mut self, room: &Room, message: &ChatMessage) {
        if let Some(cluster) = &mut self.cluster {
            let room = room.to_string();
            let message = message.clone();
            cluster.publish(News::Room { room, message });
        }
    }

    fn member(&self, id: ConnId) -> Option<Member> {
        let client = self.clients.get(&id)?;
        Some(Member {
            conn: id.number(),
            nick: client.nick.to_string(),
            room: client.room.to_string(),
        })
    }

    /// The names of the other servers' clients in `room` (none without `--redis`).
    pub(super) fn remote_members(&self, room: &Room) -> Vec<String> {
        self.cluster.as_ref().map_or_else(Vec::new, |cluster| {
            cluster.members_of(room).map(str::to_string).collect()
        })
    }

    /// Every room of the other servers' clients, with how many there are in each.
    pub(super) fn remote_rooms(&self) -> HashMap<Room, usize> {
        let mut rooms: HashMap<Room, usize> = HashMap::new();
        if let Some(cluster) = &self.cluster {
            for (_, room) in cluster
                .peers
                .values()
                .flat_map(|peer| peer.members.values())
            {
                let count = rooms.entry(room.clone()).or_default();
                *count = count.saturating_add(1);
            }
        }
        rooms
    }

    /// How a client of another server spells the name `to`, if one holds it.
    pub(super) fn remote_holder(&self, to: &Nick) -> Option<String> {
        let cluster = self.cluster.as_ref()?;
        cluster.holder(to.as_str()).map(str::to_string)
    }

    /// Sends `message`, a private message, to whoever holds the name `to` on another server.
    pub(super) fn publish_private(&mut self, to: &str, message: &ChatMessage) {
        if let Some(cluster) = &mut self.cluster {
            let to = to.to_ascii_lowercase();
            let message = message.clone();
            cluster.publish(News::Private { to, message });
        }
    }

    /// Asks the bridge to claim `nick` for `from`; `false` if it cannot be asked (no `--redis`
    /// asks nobody: then the broker's own map decides, as in chapter 10).
    pub(super) fn claim_name(&mut self, from: ConnId, nick: &Nick, now: Instant) -> bool {
        let Some(cluster) = &mut self.cluster else {
            return false;
        };
        if cluster.holder(nick.as_str()).is_some() {
            let text = format!("the name {nick} is taken");
            self.tell(from, Body::Error { text }, now);
            return true;
        }
        let claim = Outbound::Claim {
            id: from,
            nick: nick.clone(),
        };
        if cluster.offer(claim) {
            // The bridge answers every claim it takes: until then, what the client sends next
            // waits, so that it is carried out in order, after the rename (see claiming.rs).
            self.await_claim(from, nick, now);
        } else {
            let text = "names cannot be checked right now: try again in a moment".to_string();
            self.tell(from, Body::Error { text }, now);
        }
        true
    }

    /// Lets the other servers have `nick` again, which `id` no longer holds.
    pub(super) fn release_name(&mut self, id: ConnId, nick: &Nick) {
        if nick.is_guest() {
            return;
        }
        if let Some(cluster) = &mut self.cluster {
            let _ = cluster.offer(Outbound::Release {
                id,
                nick: nick.clone(),
            });
        }
    }

    /// What the bridge says.
    pub(super) fn bridged(&mut self, bridged: Bridged, now: Instant) {
        match bridged {
            Bridged::Up => self.reached(now),
            Bridged::Down => self.unreached(now),
            Bridged::News(envelope) => self.news(envelope, now),
            Bridged::Claimed { id, nick, claim } => {
                self.apply_claim(id, nick.clone(), claim, now);
                // Then what the client sent while it waited, in order.
                self.claim_answered(id, &nick, now);
            }
            Bridged::Lost { id, nick } => {
                if self
                    .clients
                    .get(&id)
                    .is_some_and(|client| client.nick == nick)
                {
                    let guest = self.next_guest();
                    let text = format!(
                        "while the servers were apart, another client took the name {nick}: \
                         you are {guest} for now"
                    );
                    self.tell(id, Body::Info { text }, now);
                    self.apply_rename(id, guest, now);
                }
            }
            Bridged::Tick => self.sweep(now),
        }
        // `/metrics` shows how many servers are heard from now.
        if let Some(cluster) = &self.cluster {
            let peers = i64::try_from(cluster.peers.len()).unwrap_or(i64::MAX);
            cluster.counts.peers.set(peers);
        }
    }

    /// The bridge's answer to `id`'s claim on `nick`.
    fn apply_claim(&mut self, id: ConnId, nick: Nick, claim: Claim, now: Instant) {
        match claim {
            Claim::Granted => self.claimed(id, nick, now),
            Claim::Taken => {
                let text = format!("the name {nick} is taken");
                self.tell(id, Body::Error { text }, now);
            }
            Claim::Provisional => {
                self.claimed(id, nick, now);
                let text = "the other servers are out of reach: your name is checked with \
                            them when they are back"
                    .to_string();
                self.tell(id, Body::Info { text }, now);
            }
        }
    }

    /// Redis answers: the other servers are told who is here, and asked who is there.
    fn reached(&mut self, now: Instant) {
        let members: Vec<Member> = self
            .clients
            .keys()
            .copied()
            .filter_map(|id| self.member(id))
            .collect();
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        cluster.up = true;
        cluster.publish(News::Roster { members });
        cluster.publish(News::Hello);
        if std::mem::take(&mut cluster.told_down) {
            self.tell_everyone("the other servers can be reached again", now);
        }
    }

    /// Redis is out of reach: what is known of the other servers is forgotten (it can no longer
    /// be kept up to date), and every client is told, once.
    fn unreached(&mut self, now: Instant) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        cluster.up = false;
        cluster.peers.clear();
        if std::mem::replace(&mut cluster.told_down, true) {
            return;
        }
        self.tell_everyone(OUT_OF_REACH, now);
    }

    /// A client that comes while the other servers are out of reach is told so too.
    pub(super) fn warn_if_apart(&mut self, id: ConnId, now: Instant) {
        if self
            .cluster
            .as_ref()
            .is_some_and(|cluster| cluster.told_down)
        {
            let text = OUT_OF_REACH.to_string();
            self.tell(id, Body::Info { text }, now);
        }
    }

    fn tell_everyone(&mut self, text: &str, now: Instant) {
        let everyone: Vec<ConnId> = self.clients.keys().copied().collect();
        let message = ChatMessage::now(Body::Info {
            text: text.to_string(),
        });
        self.send(&everyone, Outgoing::Chat(&message), now);
    }

    /// Forgets the servers that have been silent for [`PEER_TIMEOUT`]: their clients leave. And
    /// lets go of the lines of clients that have waited too long for a claim's answer.
    fn sweep(&mut self, now: Instant) {
        self.sweep_claims(now);
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let silent: Vec<u64> = cluster
            .peers
            .iter()
            .filter(|(_, peer)| now.saturating_duration_since(peer.heard) >= PEER_TIMEOUT)
            .map(|(instance, _)| *instance)
            .collect();
        let gone: Vec<Peer> = silent
            .iter()
            .filter_map(|instance| cluster.peers.remove(instance))
            .collect();
        for peer in gone {
            tracing::warn!("a server fell silent: forgetting its clients");
            for (nick, room) in peer.members.into_values() {
                self.remote_left(&nick, &room, now);
            }
        }
    }

    /// Another server's news.
    fn news(&mut self, envelope: Envelope, now: Instant) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let from = envelope.from;
        let known = cluster.peers.contains_key(&from);
        let peer = cluster.peers.entry(from).or_insert_with(|| Peer {
            heard: now,
            members: HashMap::new(),
        });
        peer.heard = now;
        todo!(
            "Done when: another server's chat and private messages reach the right local clients, and its clients show in `/who` and `/rooms`, their comings and goings told to the rooms concerned. Tests: `cluster::a_message_reaches_the_room_on_every_server`, `cluster::a_private_message_reaches_a_client_of_another_server`, `cluster::who_and_rooms_count_the_clients_of_every_server`, `broker::cluster_tests::remote_chat_reaches_the_local_members_of_its_room`, `broker::cluster_tests::a_remote_client_is_seen_like_a_local_one`."
        )
    }

    /// A remote client is now `nick` in `room`, and was `before`: the local members of the rooms
    /// concerned hear of it as they would of a local client.
    fn remote_moved(
        &mut self,
        before: Option<(String, Room)>,
        nick: &str,
        room: &Room,
        now: Instant,
    ) {
        let joined = Body::Joined {
            room: room.to_string(),
            name: nick.to_string(),
        };
        match before {
            None => self.tell_room(room, joined, now),
            Some((old_nick, old_room)) if old_room != *room => {
                self.remote_left(&old_nick, &old_room, now);
                self.tell_room(room, joined, now);
            }
            Some((old_nick, _)) if old_nick != nick => {
                let renamed = Body::Renamed {
                    room: room.to_string(),
                    from: old_nick,
                    to: nick.to_string(),
                };
                self.tell_room(room, renamed, now);
            }
            Some(_) => {}
        }
    }

    fn remote_left(&mut self, nick: &str, room: &Room, now: Instant) {
        let left = Body::Left {
            room: room.to_string(),
            name: nick.to_string(),
        };
        self.tell_room(room, left, now);
    }

    /// Tells the local members of `room`.
    fn tell_room(&mut self, room: &Room, body: Body, now: Instant) {
        let members = self.members(room);
        self.send(&members, Outgoing::Chat(&ChatMessage::now(body)), now);
    }
}
