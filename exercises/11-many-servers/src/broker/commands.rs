// Fan-out workshop, exercise 11-many-servers: generated from chapters/11-many-servers by `cargo workshop generate`.
//
// Nothing to do in this file: it is the finished part of the exercise. Your part is in
// src/bridge.rs, src/broker/cluster.rs.

//! What the broker does with a line from a client: say it to the room, or carry out the
//! command it is. Parsing happened in `command.rs`; here each command meets the broker's state
//! (`Broker` in `broker.rs`), and every change keeps its three maps in step.

use axum::extract::ws::{CloseFrame, Message, close_code};
use tokio::time::Instant;

use super::{Broker, ConnId, Outgoing};
use crate::{
    command::{self, Command, Input},
    message::{Body, ChatMessage, RoomCount},
    metrics::Disconnect,
    names::{Nick, Room},
    trace,
};

impl Broker {
    /// One line from `from`: something to say to its room, or a command.
    pub(super) fn input(&mut self, from: ConnId, line: &str, now: Instant) {
        let Some(me) = self.clients.get(&from) else {
            return;
        };
        let (nick, room) = (me.nick.to_string(), me.room.clone());
        match command::parse(line) {
            Err(err) => self.tell(
                from,
                Body::Error {
                    text: err.to_string(),
                },
                now,
            ),
            Ok(Input::Say(text)) => {
                let body = Body::Chat {
                    room: room.to_string(),
                    from: nick,
                    text,
                };
                self.say(from, body, now);
            }
            Ok(Input::Command(command)) => self.execute(from, command, now),
        }
    }

    /// Carries out a command for `from`. Every refusal is an error to `from` alone, and changes
    /// nothing.
    fn execute(&mut self, from: ConnId, command: Command, now: Instant) {
        let Some(me) = self.clients.get(&from) else {
            return;
        };
        let (nick, room) = (me.nick.clone(), me.room.clone());
        match command {
            Command::Nick(new) => self.rename(from, new, now),
            Command::Join(target) if target == room => {
                let text = format!("you are in {room} already");
                self.tell(from, Body::Info { text }, now);
            }
            Command::Join(target) => self.move_to(from, target, now),
            Command::Leave if room.is_lobby() => {
                let text = "you are in the lobby already: /join ROOM to go elsewhere".to_string();
                self.tell(from, Body::Info { text }, now);
            }
            Command::Leave => self.move_to(from, Room::lobby(), now),
            Command::Rooms => {
                // With `--redis`, the other servers' clients count too, and their rooms show.
                let mut counts: std::collections::BTreeMap<Room, usize> = self
                    .rooms
                    .iter()
                    .map(|(name, members)| (name.clone(), members.len()))
                    .collect();
                for (room, remote) in self.remote_rooms() {
                    let count = counts.entry(room).or_default();
                    *count = count.saturating_add(remote);
                }
                let rooms = counts
                    .into_iter()
                    .map(|(name, members)| RoomCount {
                        name: name.to_string(),
                        members,
                    })
                    .collect();
                self.tell(from, Body::Rooms { rooms }, now);
            }
            Command::Who => self.who(from, now),
            Command::Msg { to, text } => match self.names.get(&to.key()).copied() {
                None => match self.remote_holder(&to) {
                    // On another server (`--redis`): kept here, delivered there.
                    Some(spelled) => {
                        let message = ChatMessage::now(Body::Private {
                            from: nick.to_string(),
                            to: spelled.clone(),
                            text,
                        });
                        self.record(&message);
                        self.publish_private(&spelled, &message);
                    }
                    None => {
                        let text = format!("nobody called {to} is connected");
                        self.tell(from, Body::Error { text }, now);
                    }
                },
                Some(recipient) => {
                    let to = self
                        .clients
                        .get(&recipient)
                        .map_or(to, |them| them.nick.clone());
                    let message = ChatMessage::now(Body::Private {
                        from: nick.to_string(),
                        to: to.to_string(),
                        text,
                    });
                    // Kept for the two of them (see storage.rs), and sent to one.
                    self.record(&message);
                    self.send(&[recipient], Outgoing::Chat(&message), now);
                }
            },
            Command::Me(text) => {
                let body = Body::Action {
                    room: room.to_string(),
                    from: nick.to_string(),
                    text,
                };
                self.say(from, body, now);
            }
            Command::Help => self.tell(
                from,
                Body::Info {
                    text: command::HELP.to_string(),
                },
                now,
            ),
            Command::History(count) => self.request_history(from, count, true, now),
            Command::Quit => {
                // What was held for it goes first, then the goodbye.
                self.release(from, now);
                self.tell(
                    from,
                    Body::Info {
                        text: "bye".to_string(),
                    },
                    now,
                );
                // The writer sends this Close (a terminal's writer just hangs up), and then finds
                // its queue closed by `remove`: it is done.
                if let Some(me) = self.clients.get(&from) {
                    let bye = CloseFrame {
                        code: close_code::NORMAL,
                        reason: "bye".into(),
                    };
                    let _ = me.outbox.try_send(Message::Close(Some(bye)));
                }
                self.remove(from, Disconnect::Quit, now);
            }
        }
    }

    /// `/nick`: the name is `from`'s if nobody else holds it, whatever its case.
    fn rename(&mut self, from: ConnId, new: Nick, now: Instant) {
        if let Some(holder) = self.names.get(&new.key()).copied()
            && holder != from
        {
            let text = format!("the name {new} is taken");
            return self.tell(from, Body::Error { text }, now);
        }
        let Some(me) = self.clients.get(&from) else {
            return;
        };
        if me.nick == new {
            let text = format!("you are {new} already");
            return self.tell(from, Body::Info { text }, now);
        }
        // With `--redis`, the name must be free on every server: the bridge claims it, and
        // the rename happens when the answer comes (`claimed`).
        if self.claim_name(from, &new, now) {
            return;
        }
        self.apply_rename(from, new, now);
    }

    /// The bridge claimed `new` for `from` in Redis: the rename happens, unless a client of this
    /// server took the name meanwhile (then the claim goes back).
    pub(super) fn claimed(&mut self, from: ConnId, new: Nick, now: Instant) {
        let holder = self.names.get(&new.key()).copied();
        if !self.clients.contains_key(&from) || holder.is_some_and(|holder| holder != from) {
            self.release_name(from, &new);
            if holder.is_some() {
                let text = format!("the name {new} is taken");
                self.tell(from, Body::Error { text }, now);
            }
            return;
        }
        self.apply_rename(from, new, now);
    }

    /// `from` is called `new` from now on, which its room and the other servers hear.
    pub(super) fn apply_rename(&mut self, from: ConnId, new: Nick, now: Instant) {
        let Some(me) = self.clients.get_mut(&from) else {
            return;
        };
        let old = std::mem::replace(&mut me.nick, new.clone());
        let room = me.room.to_string();
        if self.names.get(&old.key()) == Some(&from) {
            self.names.remove(&old.key());
            self.release_name(from, &old);
        }
        self.names.insert(new.key(), from);
        let body = Body::Renamed {
            room,
            from: old.to_string(),
            to: new.to_string(),
        };
        self.announce(from, body, now);
        self.welcome(from, now);
        self.publish_member(from);
        // Its connection's log lines carry the new name from now on.
        if let Some(me) = self.clients.get(&from) {
            trace::record_name(&me.span, &me.nick);
        }
    }

    /// `/join` and `/leave`: out of one room (which may go), into another (which may be new).
    fn move_to(&mut self, from: ConnId, target: Room, now: Instant) {
        let Some(me) = self.clients.get_mut(&from) else {
            return;
        };
        let old = std::mem::replace(&mut me.room, target.clone());
        let name = me.nick.to_string();
        self.leave_room(from, &old);
        let left = ChatMessage::now(Body::Left {
            room: old.to_string(),
            name: name.clone(),
        });
        let old_members = self.members(&old);
        self.send(&old_members, Outgoing::Chat(&left), now);
        self.rooms.entry(target.clone()).or_default().insert(from);
        self.announce(
            from,
            Body::Joined {
                room: target.to_string(),
                name,
            },
            now,
        );
        self.welcome(from, now);
        self.publish_member(from);
        // Then what was said in the room before: see broker/history.rs.
        self.request_history(from, None, false, now);
        // Its connection's log lines carry the new room from now on.
        if let Some(me) = self.clients.get(&from) {
            trace::record_room(&me.span, &me.room);
        }
    }

    /// Says `body`, something a client said, to the other members of `from`'s room, and keeps
    /// it in the room's history.
    fn say(&mut self, from: ConnId, body: Body, now: Instant) {
        let message = ChatMessage::now(body);
        self.record(&message);
        let others = self.room_mates(from);
        self.send(&others, Outgoing::Chat(&message), now);
        if let Some(room) = self.clients.get(&from).map(|me| me.room.clone()) {
            self.publish_said(&room, &message);
        }
    }

    /// Tells `id` who and where it is, and who is there with it.
    pub(super) fn welcome(&mut self, id: ConnId, now: Instant) {
        let Some(me) = self.clients.get(&id) else {
            return;
        };
        let body = Body::Welcome {
            name: me.nick.to_string(),
            room: me.room.to_string(),
        };
        self.tell(id, body, now);
        self.who(id, now);
    }

    /// `/who`: the members of `id`'s room, by name.
    fn who(&mut self, id: ConnId, now: Instant) {
        let Some(me) = self.clients.get(&id) else {
            return;
        };
        let room = me.room.clone();
        let mut members: Vec<String> = self
            .members(&room)
            .iter()
            .filter_map(|member| self.clients.get(member))
            .map(|member| member.nick.to_string())
            .chain(self.remote_members(&room))
            .collect();
        members.sort_by_key(|name| name.to_ascii_lowercase());
        self.tell(
            id,
            Body::Who {
                room: room.to_string(),
                members,
            },
            now,
        );
    }
}
