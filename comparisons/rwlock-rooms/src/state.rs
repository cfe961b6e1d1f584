//! The shared state, behind one `RwLock`: who is connected, under which name, in which room, and
//! each room's broadcast channel.
//!
//! Every method here is synchronous and runs while its caller holds the lock (a read guard for
//! `&self`, the write guard for `&mut self`), so each keeps the three maps in step on its own.
//! What a room hears goes into the room's `broadcast` channel; nobody here waits for a client.

use std::collections::{BTreeMap, HashMap, HashSet};

use axum::extract::ws::{Message, Utf8Bytes};
use ch09_rooms::{
    message::{Body, ChatMessage, RoomCount},
    names::{Nick, NickKey, Room},
};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc};

/// A connection's number, for the maps and for "not to myself".
pub type ConnId = u64;

// ANCHOR: note
/// What goes through a room's channel: one message, serialized once, and who caused it. Every
/// receiver gets a clone (a reference count, not a copy of the bytes) and skips its own. The
/// message is a chat object, or binary data relayed as it came, as chapter 09 relays it.
#[derive(Debug, Clone)]
pub struct Note {
    pub origin: ConnId,
    pub message: Message,
}
// ANCHOR_END: note

/// The JSON a WebSocket client receives for `body`, stamped now.
pub fn json(body: Body) -> Utf8Bytes {
    Utf8Bytes::from(ChatMessage::now(body).to_json())
}

/// One connected client.
#[derive(Debug)]
pub struct Client {
    pub nick: Nick,
    pub room: Room,
    /// Private messages for it. Unbounded, as such code usually has it: `/msg` never waits.
    pub direct: mpsc::UnboundedSender<Utf8Bytes>,
}

/// One room: its channel, and who is in it.
#[derive(Debug)]
pub struct RoomEntry {
    pub sender: broadcast::Sender<Note>,
    pub members: HashSet<ConnId>,
}

/// `/stats`, as far as the state can tell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub connections: u64,
    pub rooms: u64,
    pub named: u64,
}

// ANCHOR: state
/// The maps, as `Arc<RwLock<State>>` shares them between every connection's task.
#[derive(Debug)]
pub struct State {
    pub clients: HashMap<ConnId, Client>,
    pub names: HashMap<NickKey, ConnId>,
    /// Sorted by name, which is the order `/rooms` lists them in.
    pub rooms: BTreeMap<Room, RoomEntry>,
    /// How many messages each room's channel keeps for its slowest receiver.
    capacity: usize,
}
// ANCHOR_END: state

/// What a connection holds of its room once it is in: the channel to say things into, and its
/// own receiver.
pub type Subscription = (broadcast::Sender<Note>, broadcast::Receiver<Note>);

impl State {
    /// An empty server with its lobby. `capacity` must be at least 1 (`broadcast::channel`
    /// panics on 0; `config.rs` checks it).
    pub fn new(capacity: usize) -> State {
        let mut state = State {
            clients: HashMap::new(),
            names: HashMap::new(),
            rooms: BTreeMap::new(),
            capacity,
        };
        state.room(&Room::lobby());
        state
    }

    /// The room named `name`, made if need be.
    fn room(&mut self, name: &Room) -> &mut RoomEntry {
        let capacity = self.capacity;
        self.rooms.entry(name.clone()).or_insert_with(|| RoomEntry {
            sender: broadcast::channel(capacity).0,
            members: HashSet::new(),
        })
    }

    /// Says `body` to the room `room`, on behalf of `origin` (who will skip it).
    pub fn announce(&self, room: &Room, origin: ConnId, body: Body) {
        if let Some(entry) = self.rooms.get(room) {
            // An error means nobody is subscribed: nobody to tell.
            let _ = entry.sender.send(Note {
                origin,
                message: Message::Text(json(body)),
            });
        }
    }

    // ANCHOR: connect
    /// A new client, `nick` in the lobby: subscribed before the room hears of it.
    pub fn connect(
        &mut self,
        id: ConnId,
        nick: Nick,
        direct: mpsc::UnboundedSender<Utf8Bytes>,
    ) -> Subscription {
        let lobby = Room::lobby();
        self.names.insert(nick.key(), id);
        let name = nick.to_string();
        self.clients.insert(
            id,
            Client {
                nick,
                room: lobby.clone(),
                direct,
            },
        );
        let subscription = self.enter(id, &lobby);
        let body = Body::Joined {
            room: lobby.to_string(),
            name,
        };
        self.announce(&lobby, id, body);
        subscription
    }
    // ANCHOR_END: connect

    /// Puts `id` among `room`'s members and subscribes it.
    fn enter(&mut self, id: ConnId, room: &Room) -> Subscription {
        let entry = self.room(room);
        entry.members.insert(id);
        (entry.sender.clone(), entry.sender.subscribe())
    }

    /// Takes `id` out of `room`, tells the room, and removes it if it was the last member (but
    /// the lobby stays).
    fn exit(&mut self, id: ConnId, room: &Room, name: String) {
        let empty = match self.rooms.get_mut(room) {
            Some(entry) => {
                entry.members.remove(&id);
                entry.members.is_empty()
            }
            None => false,
        };
        if empty && !room.is_lobby() {
            self.rooms.remove(room);
        } else {
            let body = Body::Left {
                room: room.to_string(),
                name,
            };
            self.announce(room, id, body);
        }
    }

    /// The client is gone.
    pub fn disconnect(&mut self, id: ConnId) {
        if let Some(client) = self.clients.remove(&id) {
            self.names.remove(&client.nick.key());
            self.exit(id, &client.room, client.nick.to_string());
        }
    }

    // ANCHOR: rename
    /// `/nick`: `Ok` once `id` is called `new` (its room told), or the error or remark for it.
    pub fn rename(&mut self, id: ConnId, new: &Nick) -> Result<(), Body> {
        if let Some(holder) = self.names.get(&new.key())
            && *holder != id
        {
            let text = format!("the name {new} is taken");
            return Err(Body::Error { text });
        }
        let Some(client) = self.clients.get_mut(&id) else {
            return Err(Body::Error {
                text: "you are not connected".to_string(),
            });
        };
        if client.nick == *new {
            let text = format!("you are {new} already");
            return Err(Body::Info { text });
        }
        let old = std::mem::replace(&mut client.nick, new.clone());
        let room = client.room.clone();
        self.names.remove(&old.key());
        self.names.insert(new.key(), id);
        let body = Body::Renamed {
            room: room.to_string(),
            from: old.to_string(),
            to: new.to_string(),
        };
        self.announce(&room, id, body);
        Ok(())
    }
    // ANCHOR_END: rename

    // ANCHOR: move_to
    /// `/join` and `/leave`: out of one room (which may go), into another (which may be new).
    /// The old subscription is the caller's to drop; what it still held is lost with it.
    pub fn move_to(&mut self, id: ConnId, target: &Room) -> Option<Subscription> {
        let client = self.clients.get_mut(&id)?;
        let old = std::mem::replace(&mut client.room, target.clone());
        let name = client.nick.to_string();
        self.exit(id, &old, name.clone());
        let subscription = self.enter(id, target);
        let body = Body::Joined {
            room: target.to_string(),
            name,
        };
        self.announce(target, id, body);
        Some(subscription)
    }
    // ANCHOR_END: move_to

    /// `/who`: the members of `room`, by name, sorted as chapter 09 sorts them.
    pub fn who(&self, room: &Room) -> Body {
        let mut members: Vec<String> = self
            .rooms
            .get(room)
            .map(|entry| {
                entry
                    .members
                    .iter()
                    .filter_map(|member| self.clients.get(member))
                    .map(|client| client.nick.to_string())
                    .collect()
            })
            .unwrap_or_default();
        members.sort_by_key(|name| name.to_ascii_lowercase());
        Body::Who {
            room: room.to_string(),
            members,
        }
    }

    /// `/rooms`: every room with its number of members.
    pub fn rooms(&self) -> Body {
        let rooms = self
            .rooms
            .iter()
            .map(|(name, entry)| RoomCount {
                name: name.to_string(),
                members: entry.members.len(),
            })
            .collect();
        Body::Rooms { rooms }
    }

    /// Where a private message to `to` goes: the recipient's name as it spells it, and its
    /// queue.
    pub fn direct(&self, to: &Nick) -> Option<(Nick, mpsc::UnboundedSender<Utf8Bytes>)> {
        let id = self.names.get(&to.key())?;
        let client = self.clients.get(id)?;
        Some((client.nick.clone(), client.direct.clone()))
    }

    pub fn counts(&self) -> Counts {
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        Counts {
            connections: count(self.clients.len()),
            rooms: count(self.rooms.len()),
            named: count(
                self.clients
                    .values()
                    .filter(|client| !client.nick.is_guest())
                    .count(),
            ),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn nick(name: &str) -> Nick {
        Nick::parse(name).unwrap()
    }

    /// A room other than the lobby goes with its last member; the lobby stays even when empty.
    #[test]
    fn a_room_goes_with_its_last_member() {
        let mut state = State::new(8);
        let (direct, _rx) = mpsc::unbounded_channel();
        let _lobby = state.connect(1, nick("alice"), direct);
        let games = Room::parse("games").unwrap();
        let _games = state.move_to(1, &games).unwrap();
        assert_eq!(state.counts().rooms, 2);
        state.disconnect(1);
        assert_eq!(
            state.counts(),
            Counts {
                connections: 0,
                rooms: 1,
                named: 0
            }
        );
    }

    /// A name held by one client is refused to another in any case, and free once it leaves.
    #[test]
    fn a_name_is_held_once() {
        let mut state = State::new(8);
        let (direct, _rx) = mpsc::unbounded_channel();
        let _a = state.connect(1, nick("alice"), direct.clone());
        let _b = state.connect(2, Nick::guest(2), direct);
        assert!(matches!(
            state.rename(2, &nick("ALICE")),
            Err(Body::Error { .. })
        ));
        state.disconnect(1);
        assert_eq!(state.rename(2, &nick("ALICE")), Ok(()));
    }

    /// What a room is told carries its origin, so its author can skip it.
    #[test]
    fn a_note_names_its_origin() {
        let mut state = State::new(8);
        let (direct, _rx) = mpsc::unbounded_channel();
        let (_tx, mut rx) = state.connect(1, nick("alice"), direct.clone());
        let _b = state.connect(2, nick("bob"), direct);
        let own = rx
            .try_recv()
            .expect("alice's own arrival is in the channel too");
        assert_eq!(own.origin, 1, "and alice's task skips it");
        let note = rx.try_recv().expect("alice hears of bob");
        assert_eq!(note.origin, 2);
        let Message::Text(text) = note.message else {
            panic!("a notice is text: {note:?}");
        };
        assert!(text.as_str().contains(r#""kind":"joined""#));
    }
}
