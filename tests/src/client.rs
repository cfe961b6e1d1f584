//! A WebSocket client for the tests, built on `tokio-tungstenite` (the same tungstenite axum
//! uses), whose every wait is bounded and whose failures say which client saw what.

use std::{net::SocketAddr, time::Duration};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{
        self, Message,
        protocol::{CloseFrame, frame::coding::CloseCode},
    },
};

use crate::{QUIET, WAIT, Wire, current_wire};

/// One connected WebSocket client.
pub struct Client {
    name: String,
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// What the server speaks: see [`Wire`].
    wire: Wire,
}

/// What a client saw instead of a data message.
#[derive(Debug)]
pub enum Ending {
    /// A Close frame, with its code and reason if it had one.
    Close(Option<(u16, String)>),
    /// The stream ended (or failed) without a Close frame.
    Gone(String),
}

impl Client {
    /// Opens a WebSocket to `url` (within [`WAIT`]).
    pub async fn connect(url: &str, name: &str) -> Client {
        Client::connect_on(url, name, current_wire()).await
    }

    /// [`connect`](Self::connect), to a server that speaks `wire`.
    pub async fn connect_on(url: &str, name: &str, wire: Wire) -> Client {
        let (ws, _response) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .unwrap_or_else(|_| panic!("{name}: no WebSocket handshake with {url} within {WAIT:?}"))
            .unwrap_or_else(|err| panic!("{name}: WebSocket handshake with {url} failed: {err}"));
        let mut client = Client {
            name: name.to_string(),
            ws,
            wire,
        };
        client.await_welcome().await;
        client
    }

    /// On [`Wire::Chat`], reads the server's welcome, up to the `who` that ends it: a chat
    /// client is in its room once it has been told so, and its queue is empty again. (On
    /// [`Wire::Plain`] there is no welcome.)
    async fn await_welcome(&mut self) {
        if self.wire != Wire::Chat {
            return;
        }
        loop {
            match self.next_frame_within(WAIT).await {
                Some(Ok(Message::Text(text))) if text.as_str().contains("\"kind\":\"who\"") => {
                    return;
                }
                Some(Ok(message)) if self.is_notice(&message) => {}
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => panic!(
                    "{}: expected the server's welcome, got {other:?}",
                    self.name
                ),
            }
        }
    }

    /// Tries to open a WebSocket; `Err` says why it could not.
    pub async fn try_connect(url: &str, name: &str) -> Result<Client, tungstenite::Error> {
        match tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url)).await {
            Ok(Ok((ws, _))) => {
                let mut client = Client {
                    name: name.to_string(),
                    ws,
                    wire: current_wire(),
                };
                client.await_welcome().await;
                Ok(client)
            }
            Ok(Err(err)) => Err(err),
            Err(_) => {
                panic!("{name}: no answer to the WebSocket handshake with {url} within {WAIT:?}")
            }
        }
    }

    /// The same client, reading its server as `wire` speaks.
    pub fn on_wire(self, wire: Wire) -> Client {
        Client { wire, ..self }
    }

    /// This client's name, as failure messages use it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends one message (within [`WAIT`]).
    pub async fn send(&mut self, message: Message) {
        let name = &self.name;
        tokio::time::timeout(WAIT, self.ws.send(message))
            .await
            .unwrap_or_else(|_| panic!("{name}: sending took longer than {WAIT:?}"))
            .unwrap_or_else(|err| panic!("{name}: sending failed: {err}"));
    }

    /// Sends a text message.
    pub async fn send_text(&mut self, text: &str) {
        self.send(Message::text(text)).await;
    }

    /// Sends a binary message.
    pub async fn send_binary(&mut self, bytes: &[u8]) {
        self.send(Message::binary(bytes.to_vec())).await;
    }

    /// Sends a Close frame with `code` and `reason`.
    pub async fn send_close(&mut self, code: u16, reason: &str) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        };
        self.send(Message::Close(Some(frame))).await;
    }

    /// The next frame of any kind, pings and pongs included; `None` when the stream has ended.
    /// Fails if nothing arrives within `limit`.
    pub async fn next_frame_within(
        &mut self,
        limit: Duration,
    ) -> Option<Result<Message, tungstenite::Error>> {
        let name = &self.name;
        tokio::time::timeout(limit, self.ws.next())
            .await
            .unwrap_or_else(|_| panic!("{name}: nothing arrived within {limit:?}"))
    }

    /// The next text or binary message, skipping pings and pongs. Fails if none arrives within
    /// [`WAIT`] or the connection ends first.
    /// On [`Wire::Chat`], a `chat` object counts as its text, and the server's notices are passed
    /// over (see [`Wire`]).
    pub async fn recv(&mut self) -> Message {
        loop {
            match self.next_frame_within(WAIT).await {
                Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => {
                    match self.unwrap_chat(message) {
                        Some(message) => return message,
                        None => continue,
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Close(frame))) => {
                    panic!("{}: expected a message, got Close {frame:?}", self.name)
                }
                Some(Err(err)) => panic!(
                    "{}: expected a message, the connection failed: {err}",
                    self.name
                ),
                None => panic!("{}: expected a message, the connection ended", self.name),
            }
        }
    }

    /// Receives a message and asserts it is the text `expected`.
    pub async fn expect_text(&mut self, expected: &str) {
        match self.recv().await {
            Message::Text(text) => assert_eq!(
                text.as_str(),
                expected,
                "{}: wrong text received",
                self.name
            ),
            other => panic!(
                "{}: expected the text {expected:?}, got {other:?}",
                self.name
            ),
        }
    }

    /// Receives a message and asserts it is binary with exactly `expected` bytes.
    pub async fn expect_binary(&mut self, expected: &[u8]) {
        match self.recv().await {
            Message::Binary(bytes) => {
                assert!(
                    bytes.as_ref() == expected,
                    "{}: wrong binary received ({} bytes, expected {})",
                    self.name,
                    bytes.len(),
                    expected.len()
                )
            }
            other => panic!(
                "{}: expected {} binary bytes, got {other:?}",
                self.name,
                expected.len()
            ),
        }
    }

    /// Asserts that no text or binary message arrives for [`QUIET`] (pings are fine).
    pub async fn expect_silence(&mut self) {
        let name = self.name.clone();
        let deadline = tokio::time::Instant::now() + QUIET;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(Some(Ok(message))) => match self.unwrap_chat(message) {
                    None => continue,
                    Some(message) => panic!("{name}: expected nothing, received {message:?}"),
                },
                Ok(Some(Err(err))) => {
                    panic!("{name}: expected nothing, the connection failed: {err}")
                }
                Ok(None) => panic!("{name}: expected nothing, the connection ended"),
            }
        }
    }

    /// Reads until the connection ends (within [`WAIT`]), skipping data messages, pings and
    /// pongs, and says how it ended.
    pub async fn expect_end(&mut self) -> Ending {
        let name = self.name.clone();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => panic!("{name}: the connection did not end within {WAIT:?}"),
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return Ending::Close(
                        frame.map(|frame| (u16::from(frame.code), frame.reason.to_string())),
                    );
                }
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(err))) => return Ending::Gone(err.to_string()),
                Ok(None) => return Ending::Gone("the stream ended".to_string()),
            }
        }
    }

    /// Reads until a Close frame and asserts its code is `code`.
    pub async fn expect_close_code(&mut self, code: u16) {
        match self.expect_end().await {
            Ending::Close(Some((got, reason))) => {
                assert_eq!(
                    got, code,
                    "{}: wrong close code (reason {reason:?})",
                    self.name
                )
            }
            other => panic!("{}: expected Close {code}, got {other:?}", self.name),
        }
    }

    /// The next text or binary message within `limit`, as [`recv`](Self::recv) sees it; `None`
    /// when nothing comes (pings aside). Fails if the connection ends.
    pub async fn recv_within(&mut self, limit: Duration) -> Option<Message> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let frame = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return None,
                Ok(frame) => frame,
            };
            match frame {
                Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => {
                    if let Some(message) = self.unwrap_chat(message) {
                        return Some(message);
                    }
                }
                Some(Ok(_)) => {}
                other => panic!("{}: expected a message, got {other:?}", self.name),
            }
        }
    }

    /// A data message as a scenario about relaying sees it (see [`relayed_text`]); `None` for a
    /// server notice, to pass over.
    fn unwrap_chat(&self, message: Message) -> Option<Message> {
        let Message::Text(text) = &message else {
            return Some(message);
        };
        match relayed_text(self.wire, text.as_str()) {
            None => None,
            Some(relayed) if relayed == text.as_str() => Some(message),
            Some(relayed) => Some(Message::text(relayed)),
        }
    }

    /// Whether `message` is a server notice this client's scenario passes over (only on
    /// [`Wire::Chat`]: a `welcome`, `joined`, `who`, ...).
    pub fn is_notice(&self, message: &Message) -> bool {
        matches!(message, Message::Text(text) if relayed_text(self.wire, text.as_str()).is_none())
    }

    /// The underlying stream, for scenarios that need more than the helpers above.
    pub fn stream(&mut self) -> &mut WebSocketStream<MaybeTlsStream<TcpStream>> {
        &mut self.ws
    }
}

// ANCHOR: relayed_text
/// A text message as a scenario about relaying sees it. On [`Wire::Plain`], as it came. On
/// [`Wire::Chat`], a `chat` object is its text, a server notice is `None` (pass over it), and
/// anything else (an `error`, a `private` message, text that is not JSON) stays as it came, to
/// show in the failure it will cause. A message replayed from the history (chapter 10 on: it has
/// `"history": true`) is passed over like a notice: what was said before a client came is not
/// what a scenario about relaying waits for. A scenario that wants it reads the wire whole, as
/// [`crate::chat::ChatClient`] can.
pub fn relayed_text(wire: Wire, text: &str) -> Option<String> {
    const NOTICES: &[&str] = &[
        "welcome", "joined", "left", "renamed", "who", "rooms", "info",
    ];
    if wire == Wire::Plain {
        return Some(text.to_string());
    }
    let Ok(json) = serde_json::from_str::<serde_json::Value>(text) else {
        return Some(text.to_string());
    };
    if is_history(&json) {
        return None;
    }
    match json.get("kind").and_then(serde_json::Value::as_str) {
        Some("chat") => Some(
            json.get("text")
                .and_then(serde_json::Value::as_str)
                .unwrap_or(text)
                .to_string(),
        ),
        Some(kind) if NOTICES.contains(&kind) => None,
        _ => Some(text.to_string()),
    }
}
// ANCHOR_END: relayed_text

/// Whether a chat message is replayed from the history (`"history": true`, chapter 10 on).
pub fn is_history(message: &serde_json::Value) -> bool {
    message.get("history").and_then(serde_json::Value::as_bool) == Some(true)
}

/// A client that completes the WebSocket handshake and then reads nothing: a browser tab frozen by
/// its OS, a phone in a tunnel, a consumer that is simply too slow. Its socket asks for a small
/// receive buffer, so the server's writes to it stop after little data; from then on the server's
/// writer for it waits. Nothing is read (not even pings) until [`StalledClient::resume`].
pub struct StalledClient {
    name: String,
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// The receive buffer a [`StalledClient`] asks for (the kernel may round it up).
const STALLED_RECEIVE_BUFFER: u32 = 4 * 1024;

impl StalledClient {
    /// Opens a WebSocket to `ws://addr/ws` (within [`WAIT`]) and then stops reading.
    pub async fn connect(addr: SocketAddr, name: &str) -> StalledClient {
        let url = crate::ws_url(addr);
        let handshake = async {
            let stream =
                crate::connect_with_receive_buffer(addr, name, STALLED_RECEIVE_BUFFER).await;
            tokio_tungstenite::client_async(url.as_str(), MaybeTlsStream::Plain(stream))
                .await
                .unwrap_or_else(|err| {
                    panic!("{name}: WebSocket handshake with {url} failed: {err}")
                })
        };
        let (ws, _response) = tokio::time::timeout(WAIT, handshake)
            .await
            .unwrap_or_else(|_| {
                panic!("{name}: no WebSocket handshake with {url} within {WAIT:?}")
            });
        StalledClient {
            name: name.to_string(),
            ws,
        }
    }

    /// Starts reading again: the client receives what was waiting for it, as an ordinary [`Client`].
    pub fn resume(self) -> Client {
        Client {
            name: self.name,
            ws: self.ws,
            wire: current_wire(),
        }
    }
}
