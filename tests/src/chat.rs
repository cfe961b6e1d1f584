//! A client of the chat protocol (chapter 09 on), for the suites about names, rooms, private
//! messages and commands. It knows the protocol and nothing of any server's insides: text goes
//! out as lines; what comes back is a JSON object with a `kind` (`chat`, `private`, `action`,
//! `welcome`, `joined`, `left`, `renamed`, `who`, `rooms`, `info`, `error`), which these helpers
//! check field by field.

use futures_util::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::{Client, QUIET, TestServer, WAIT, Wire, client::is_history};

/// The kinds a server sends of its own accord when somebody else comes, goes or changes name.
pub const NOTICES: &[&str] = &["joined", "left", "renamed"];

/// A chat client: its name and room as the server last told it.
pub struct ChatClient {
    client: Client,
    /// The name the server gave it (`guest-N`) or that it took with `/nick`.
    pub name: String,
    /// The room it is in.
    pub room: String,
    /// Whether it reads messages replayed from the history (chapter 10 on); by default they are
    /// passed over, so that the suites of chapter 09 read the same on a server that keeps history.
    history: bool,
}

/// The string field `key` of `message`; fails if there is none.
pub fn field<'a>(message: &'a Value, key: &str) -> &'a str {
    message
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("expected a string {key:?} in {message}"))
}

/// The `kind` of a message.
pub fn kind(message: &Value) -> &str {
    field(message, "kind")
}

impl ChatClient {
    /// Connects to `server` and reads the welcome (name and room) and who is there.
    pub async fn connect(server: &TestServer, label: &str) -> ChatClient {
        ChatClient::connect_url(&server.ws_url(), label).await
    }

    /// [`connect`](Self::connect), to a `ws://` URL.
    pub async fn connect_url(url: &str, label: &str) -> ChatClient {
        // This client reads every message whole, the welcome included: the relaying suites'
        // view of the chat wire (see `Wire::Chat`) is not for these.
        let client = Client::connect_on(url, label, Wire::Plain).await;
        let mut chat = ChatClient {
            client,
            name: String::new(),
            room: String::new(),
            history: false,
        };
        let welcome = chat.expect("welcome").await;
        chat.name = field(&welcome, "name").to_string();
        chat.room = field(&welcome, "room").to_string();
        let who = chat.expect("who").await;
        assert_eq!(
            field(&who, "room"),
            chat.room,
            "{label}: who answers for my room"
        );
        chat
    }

    /// Connects one client per label, each taking its label as its name, all in the lobby; every
    /// notice of their coming and renaming is read, so each starts with nothing waiting.
    pub async fn everyone<const N: usize>(
        server: &TestServer,
        labels: [&str; N],
    ) -> [ChatClient; N] {
        ChatClient::everyone_url(&server.ws_url(), labels).await
    }

    /// [`everyone`](Self::everyone), on the server at a `ws://` URL.
    pub async fn everyone_url<const N: usize>(url: &str, labels: [&str; N]) -> [ChatClient; N] {
        let mut clients = Vec::with_capacity(N);
        for label in labels {
            let mut client = ChatClient::connect_url(url, label).await;
            client.nick(label).await;
            clients.push(client);
        }
        for client in &mut clients {
            client.skip_notices().await;
        }
        match clients.try_into() {
            Ok(all) => all,
            Err(_) => unreachable!("one client per label"),
        }
    }

    /// From now on, this client reads the messages replayed from the history too.
    pub fn read_history(&mut self) {
        self.history = true;
    }

    /// The label failures name this client by.
    pub fn label(&self) -> &str {
        self.client.name()
    }

    /// Sends one line of text.
    pub async fn send(&mut self, line: &str) {
        self.client.send_text(line).await;
    }

    /// The next message, whatever its kind (pings aside). Fails if none comes within [`WAIT`],
    /// or if what comes is not a JSON object with a `kind`.
    /// Messages replayed from the history are passed over unless [`read_history`](Self::read_history)
    /// was called.
    pub async fn next(&mut self) -> Value {
        let label = self.label().to_string();
        let message = loop {
            let message = self
                .client
                .stream_json_within(WAIT)
                .await
                .unwrap_or_else(|| panic!("{label}: nothing arrived within {WAIT:?}"));
            if self.history || !is_history(&message) {
                break message;
            }
        };
        assert!(
            message.get("kind").is_some(),
            "{label}: no kind in {message}"
        );
        message
    }

    /// The next message, which must be of `kind`.
    pub async fn expect(&mut self, expected: &str) -> Value {
        let message = self.next().await;
        assert_eq!(
            kind(&message),
            expected,
            "{}: unexpected message {message}",
            self.label()
        );
        message
    }

    /// The next message that is not a notice of somebody coming, going or changing name; it
    /// must be of `kind`.
    pub async fn expect_past_notices(&mut self, expected: &str) -> Value {
        loop {
            let message = self.next().await;
            if NOTICES.contains(&kind(&message)) && expected != kind(&message) {
                continue;
            }
            assert_eq!(
                kind(&message),
                expected,
                "{}: unexpected message {message}",
                self.label()
            );
            return message;
        }
    }

    /// The next message must be a chat message from `from` saying `text`, in my room.
    pub async fn expect_chat(&mut self, from: &str, text: &str) {
        let message = self.expect("chat").await;
        assert_eq!(
            (
                field(&message, "from"),
                field(&message, "text"),
                field(&message, "room")
            ),
            (from, text, self.room.as_str()),
            "{}: wrong chat message {message}",
            self.label()
        );
    }

    /// The next message must be an error; returns its text.
    pub async fn expect_error(&mut self) -> String {
        field(&self.expect("error").await, "text").to_string()
    }

    /// Nothing at all arrives for [`QUIET`] (pings aside).
    pub async fn expect_quiet(&mut self) {
        let label = self.label().to_string();
        let deadline = tokio::time::Instant::now() + QUIET;
        loop {
            match tokio::time::timeout_at(deadline, self.client.stream().next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
                Ok(Some(Ok(Message::Text(text))))
                    if !self.history
                        && serde_json::from_str(text.as_str())
                            .is_ok_and(|json| is_history(&json)) => {}
                Ok(other) => panic!("{label}: expected nothing, received {other:?}"),
            }
        }
    }

    /// Reads notices of others coming, going and renaming until none has come for [`QUIET`].
    pub async fn skip_notices(&mut self) {
        while let Some(message) = self.client.stream_json_within(QUIET).await {
            if !self.history && is_history(&message) {
                continue;
            }
            assert!(
                NOTICES.contains(&kind(&message)),
                "{}: expected only notices, got {message}",
                self.label()
            );
        }
    }

    /// `/nick NAME`, which must succeed: the server answers with a welcome under the new name
    /// and who is in the room.
    pub async fn nick(&mut self, name: &str) {
        self.send(&format!("/nick {name}")).await;
        let welcome = self.expect_past_notices("welcome").await;
        assert_eq!(
            field(&welcome, "name"),
            name,
            "{}: /nick {name}",
            self.label()
        );
        self.expect_past_notices("who").await;
        self.name = name.to_string();
    }

    /// `/join ROOM`, which must succeed: the server answers with a welcome to the room (its name
    /// in lower case) and who is in it. Returns the members.
    pub async fn join(&mut self, room: &str) -> Vec<String> {
        self.send(&format!("/join {room}")).await;
        self.expect_moved(&room.to_ascii_lowercase()).await
    }

    /// Reads the welcome to `room` and the who that follows; returns the members.
    pub async fn expect_moved(&mut self, room: &str) -> Vec<String> {
        let welcome = self.expect_past_notices("welcome").await;
        assert_eq!(
            field(&welcome, "room"),
            room,
            "{}: moved to {room}",
            self.label()
        );
        self.room = room.to_string();
        let who = self.expect_past_notices("who").await;
        members(&who)
    }

    /// The WebSocket client underneath, for what the helpers above do not cover.
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }
}

/// The `members` of a `who` answer.
pub fn members(who: &Value) -> Vec<String> {
    who.get("members")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("expected members in {who}"))
        .iter()
        .map(|member| member.as_str().unwrap_or_default().to_string())
        .collect()
}

impl Client {
    /// The next text message within `limit`, as JSON; `None` if nothing came (pings aside).
    pub async fn stream_json_within(&mut self, limit: std::time::Duration) -> Option<Value> {
        let name = self.name().to_string();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.stream().next()).await {
                Err(_) => return None,
                Ok(Some(Ok(Message::Text(text)))) => {
                    return Some(serde_json::from_str(text.as_str()).unwrap_or_else(|err| {
                        panic!("{name}: expected JSON ({err}), got {text:?}")
                    }));
                }
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
                Ok(other) => panic!("{name}: expected a message within {WAIT:?}, got {other:?}"),
            }
        }
    }
}
