// Fan-out workshop, exercise 09-rooms: generated from chapters/09-rooms by `cargo workshop generate`.
//
// Your part: replace the 2 `todo!(..)`s in this file with working code. The rest already works;
// leave it as it is. `cargo workshop check 09` runs the stage tests,
// `cargo workshop hint 09` gives a hint, `cargo workshop reset 09` starts over.

//! What the broker does with a line from a client: say it to the room, or carry out the
//! command it is. Parsing happened in `command.rs`; here each command meets the broker's state
//! (`Broker` in `broker.rs`), and every change keeps its three maps in step.

use axum::extract::ws::{CloseFrame, Message, close_code};
use tokio::time::Instant;

use super::{Broker, ConnId, Departure, Outgoing};
use crate::{
    command::{self, Command, Input},
    message::{Body, ChatMessage, RoomCount},
    names::{Nick, Room},
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
                self.announce(from, body, now);
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
                let rooms = self
                    .rooms
                    .iter()
                    .map(|(name, members)| RoomCount {
                        name: name.to_string(),
                        members: members.len(),
                    })
                    .collect();
                self.tell(from, Body::Rooms { rooms }, now);
            }
            Command::Who => self.who(from, now),
            Command::Msg { to, text } => match self.names.get(&to.key()).copied() {
                None => {
                    let text = format!("nobody called {to} is connected");
                    self.tell(from, Body::Error { text }, now);
                }
                Some(recipient) => {
                    let to = self
                        .clients
                        .get(&recipient)
                        .map_or(to, |them| them.nick.clone());
                    let body = Body::Private {
                        from: nick.to_string(),
                        to: to.to_string(),
                        text,
                    };
                    self.tell(recipient, body, now);
                }
            },
            Command::Me(text) => {
                let body = Body::Action {
                    room: room.to_string(),
                    from: nick.to_string(),
                    text,
                };
                self.announce(from, body, now);
            }
            Command::Help => self.tell(
                from,
                Body::Info {
                    text: command::HELP.to_string(),
                },
                now,
            ),
            Command::Quit => {
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
                self.remove(from, Departure::Left, now);
            }
        }
    }

    /// `/nick`: the name is `from`'s if nobody else holds it, whatever its case.
    fn rename(&mut self, from: ConnId, new: Nick, now: Instant) {
        todo!(
            "Done when: a free name is taken and the room hears of it; a taken one, in any case, is an error to the asker alone and changes nothing; a name can change its case. Tests: `names::a_new_name_is_announced_to_the_room`, `names::a_taken_name_is_refused_whatever_its_case`, `broker::rooms_tests::a_taken_name_is_refused_whatever_its_case`, `broker::rooms_tests::a_thousand_renames_leave_one_name`."
        )
    }

    /// `/join` and `/leave`: out of one room (which may go), into another (which may be new).
    fn move_to(&mut self, from: ConnId, target: Room, now: Instant) {
        todo!(
            "Done when: the old room hears the client left, the new one that it joined, the client where it is, and a room goes with its last member. Tests: `rooms::joining_a_room_tells_both_rooms_and_the_client`, `rooms::chat_reaches_only_the_senders_room`, `rooms::a_room_goes_with_its_last_member_and_the_lobby_stays`, `broker::rooms_tests::joining_and_leaving_rooms_tells_both_rooms`."
        )
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
