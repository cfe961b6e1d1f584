// Fan-out workshop, exercise 11-many-servers: generated from chapters/11-many-servers by `cargo workshop generate`.
//
// Nothing to do in this file: it is the finished part of the exercise. Your part is in
// src/bridge.rs, src/broker/cluster.rs.

//! The one message type the server sends, and its two renderings.
//!
//! Everything a client is told, a line of chat or the answer to `/who`, is a [`ChatMessage`]:
//! what happened ([`Body`]) and when. A browser gets it as a JSON object whose `kind` says which
//! it is, so the page can put private messages apart and draw notices differently. A terminal
//! gets one readable line (`[lobby] alice: hi`). Both are built at most once per message,
//! however many clients it goes to: the broker asks [`Payloads`] for the rendering a recipient
//! needs, and every recipient of that rendering shares the same bytes.
//!
//! Since chapter 10 a message may come from the history (`storage.rs`): it is then marked so,
//! `"history": true` in JSON and its original time in front of a terminal's line, `(12:03) `,
//! so that a client can tell what was said before it came from what is said now.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::ws::{Message, Utf8Bytes};
use serde::{Deserialize, Serialize};

/// One message from the server, to one client or to many.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// When the server sent it, in milliseconds since 1970 (UTC). For a message from the
    /// history, when it was first sent.
    pub ts: u64,
    #[serde(flatten)]
    pub body: Body,
    /// Whether it was said before the client came, and is replayed from the history. Left out of
    /// the JSON when false, so a live message reads as it did in chapter 09.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub history: bool,
}

/// What happened. Serialized with a `kind` tag: `{"kind":"chat","from":"alice",...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Body {
    /// `from` said `text` in `room`.
    Chat {
        room: String,
        from: String,
        text: String,
    },
    /// `from` did something (`/me waves`).
    Action {
        room: String,
        from: String,
        text: String,
    },
    /// `from` said `text` to `to` alone.
    Private {
        from: String,
        to: String,
        text: String,
    },
    /// Who you are now and where: on connect, and after `/nick`, `/join` or `/leave`.
    Welcome { name: String, room: String },
    /// `name` came into `room`.
    Joined { room: String, name: String },
    /// `name` left `room` (for another room, or for good).
    Left { room: String, name: String },
    /// `from` is now called `to`.
    Renamed {
        room: String,
        from: String,
        to: String,
    },
    /// The members of `room`, sorted: the answer to `/who`.
    Who { room: String, members: Vec<String> },
    /// Every room and how many are in it, sorted by name: the answer to `/rooms`.
    Rooms { rooms: Vec<RoomCount> },
    /// Something the server tells one client (`/help`, "you are already in games").
    Info { text: String },
    /// What the client asked for could not be done, and why.
    Error { text: String },
}

/// One line of `/rooms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomCount {
    pub name: String,
    pub members: usize,
}

impl ChatMessage {
    /// `body`, stamped with the time now.
    pub fn now(body: Body) -> ChatMessage {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            });
        ChatMessage {
            ts,
            body,
            history: false,
        }
    }

    /// Whether this is something a client said, as opposed to something the server says.
    /// `/stats` counts the deliveries of these only.
    pub fn is_relayed(&self) -> bool {
        matches!(
            self.body,
            Body::Chat { .. } | Body::Action { .. } | Body::Private { .. }
        )
    }

    /// The JSON object a WebSocket client receives.
    pub fn to_json(&self) -> String {
        // Serializing this type cannot fail: string keys only, no maps, no non-finite floats.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }

    /// The line a terminal client receives, without its newline. Text that clients wrote is
    /// cleaned of control characters first: a newline in a chat message must not start a line
    /// that looks like it came from the server, nor an escape sequence repaint the terminal.
    pub fn to_line(&self) -> String {
        let line = self.body_line();
        if self.history {
            // Only what clients said is kept, and it is always one line: one mark suffices.
            format!("({}) {line}", clock(self.ts))
        } else {
            line
        }
    }

    fn body_line(&self) -> String {
        match &self.body {
            Body::Chat { room, from, text } => format!("[{room}] {from}: {}", clean(text)),
            Body::Action { from, text, .. } => format!("* {from} {}", clean(text)),
            Body::Private { from, text, .. } => format!("[private] {from}: {}", clean(text)),
            Body::Welcome { name, room } => {
                format!("* you are {name}, in {room} (/help lists the commands)")
            }
            Body::Joined { room, name } => format!("* {name} joined {room}"),
            Body::Left { room, name } => format!("* {name} left {room}"),
            Body::Renamed { from, to, .. } => format!("* {from} is now {to}"),
            Body::Who { room, members } => format!("* in {room}: {}", members.join(", ")),
            Body::Rooms { rooms } => {
                let rooms: Vec<String> = rooms
                    .iter()
                    .map(|room| format!("{} ({})", room.name, room.members))
                    .collect();
                format!("* rooms: {}", rooms.join(", "))
            }
            // Server text may span lines (`/help`): each line gets the mark.
            Body::Info { text } => prefix_lines("* ", text),
            Body::Error { text } => prefix_lines("! ", &clean(text)),
        }
    }
}

/// `HH:MM` of a time in milliseconds since 1970, in UTC: the server knows no time zone of its
/// clients'.
fn clock(ts: u64) -> String {
    let minutes_of_day = (ts / 60_000) % (24 * 60);
    format!("{:02}:{:02}", minutes_of_day / 60, minutes_of_day % 60)
}

/// Replaces every control character (newlines, escapes, tabs) by a visible `�`.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

fn prefix_lines(prefix: &str, text: &str) -> String {
    text.lines()
        .map(|line| format!("{prefix}{line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// How a client receives messages: JSON in WebSocket text frames, or lines on a plain socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    WebSocket,
    Lines,
}

/// One message's renderings, each made the first time a recipient needs it and then shared:
/// cloning a `Message::Text` clones a reference to its bytes, not the bytes.
pub struct Payloads<'a> {
    message: &'a ChatMessage,
    json: Option<Utf8Bytes>,
    line: Option<Utf8Bytes>,
}

impl<'a> Payloads<'a> {
    pub fn new(message: &'a ChatMessage) -> Payloads<'a> {
        Payloads {
            message,
            json: None,
            line: None,
        }
    }

    /// What goes into the queue of a client on `wire`.
    pub fn for_wire(&mut self, wire: Wire) -> Message {
        let message = self.message;
        let text = match wire {
            Wire::WebSocket => self
                .json
                .get_or_insert_with(|| Utf8Bytes::from(message.to_json())),
            Wire::Lines => self
                .line
                .get_or_insert_with(|| Utf8Bytes::from(message.to_line())),
        };
        Message::Text(text.clone())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn at(body: Body) -> ChatMessage {
        ChatMessage {
            ts: 1_700_000_000_000,
            body,
            history: false,
        }
    }

    fn chat(text: &str) -> ChatMessage {
        at(Body::Chat {
            room: "lobby".into(),
            from: "alice".into(),
            text: text.into(),
        })
    }

    /// The JSON has a `kind`, the body's fields and the timestamp, all at the top level, and
    /// reads back as the same message.
    #[test]
    fn json_is_one_flat_object_with_a_kind() {
        let message = chat("hi");
        let json: serde_json::Value = serde_json::from_str(&message.to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "chat", "room": "lobby", "from": "alice", "text": "hi",
                               "ts": 1_700_000_000_000u64})
        );
        let back: ChatMessage = serde_json::from_str(&message.to_json()).unwrap();
        assert_eq!(back, message);
    }

    /// Each kind reads as the line the issue describes.
    #[test]
    fn lines_read_like_a_chat() {
        let line = |body| at(body).to_line();
        assert_eq!(chat("hi").to_line(), "[lobby] alice: hi");
        assert_eq!(
            line(Body::Action {
                room: "lobby".into(),
                from: "alice".into(),
                text: "waves".into()
            }),
            "* alice waves"
        );
        assert_eq!(
            line(Body::Joined {
                room: "lobby".into(),
                name: "bob".into()
            }),
            "* bob joined lobby"
        );
        assert_eq!(
            line(Body::Private {
                from: "alice".into(),
                to: "bob".into(),
                text: "psst".into()
            }),
            "[private] alice: psst"
        );
        assert_eq!(
            line(Body::Error {
                text: "that name is taken".into()
            }),
            "! that name is taken"
        );
        assert_eq!(
            line(Body::Rooms {
                rooms: vec![
                    RoomCount {
                        name: "games".into(),
                        members: 1
                    },
                    RoomCount {
                        name: "lobby".into(),
                        members: 3
                    }
                ]
            }),
            "* rooms: games (1), lobby (3)"
        );
        assert_eq!(
            line(Body::Info {
                text: "a\nb".into()
            }),
            "* a\n* b"
        );
    }

    /// A newline or an escape sequence in what a client wrote cannot forge a line or repaint a
    /// terminal: the line a terminal gets has no control character in it.
    #[test]
    fn lines_carry_no_control_characters_from_clients() {
        let line = chat("hi\n! you have been banned\u{1b}[2J").to_line();
        assert!(!line.contains('\n') && !line.contains('\u{1b}'), "{line:?}");
        assert!(
            line.starts_with("[lobby] alice: hi\u{FFFD}! you"),
            "{line:?}"
        );
    }

    /// A message from the history says so: `"history": true` in JSON, its original time (UTC)
    /// in front of a line; a live message carries no such mark.
    #[test]
    fn history_is_marked_on_both_wires() {
        let old = ChatMessage {
            history: true,
            ..chat("hi")
        };
        let json: serde_json::Value = serde_json::from_str(&old.to_json()).unwrap();
        assert_eq!(json.get("history"), Some(&serde_json::json!(true)));
        assert_eq!(
            json.get("ts"),
            Some(&serde_json::json!(1_700_000_000_000u64))
        );
        // 1_700_000_000_000 ms is 2023-11-14 22:13:20 UTC.
        assert_eq!(old.to_line(), "(22:13) [lobby] alice: hi");
        assert!(!chat("hi").to_json().contains("history"));
        let back: ChatMessage = serde_json::from_str(&chat("hi").to_json()).unwrap();
        assert!(!back.history);
    }

    /// The renderings are made once: every client on the same wire gets the same bytes.
    #[test]
    fn each_rendering_is_made_once_and_shared() {
        let message = chat("hi");
        let mut payloads = Payloads::new(&message);
        let (Message::Text(a), Message::Text(b)) = (
            payloads.for_wire(Wire::WebSocket),
            payloads.for_wire(Wire::WebSocket),
        ) else {
            panic!("text expected")
        };
        assert_eq!(
            a.as_str().as_ptr(),
            b.as_str().as_ptr(),
            "one JSON payload, shared"
        );
        let Message::Text(line) = payloads.for_wire(Wire::Lines) else {
            panic!()
        };
        assert_eq!(line.as_str(), "[lobby] alice: hi");
    }
}
