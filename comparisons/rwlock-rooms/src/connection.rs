//! One client's task: the usual select loop. It reads the socket, its room's `broadcast`
//! receiver and its private queue, whichever has something, and writes to the socket itself.
//! Commands take the lock just long enough to read or change the maps; what a client says to
//! its room goes into the room's channel with no lock at all (the task keeps the room's sender).

use std::sync::{Arc, atomic::Ordering};

use axum::{
    Error,
    extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, close_code},
};
use ch09_rooms::{
    command::{self, Command, Input},
    message::Body,
    names::{Nick, Room},
};
use futures_util::SinkExt;
use tokio::sync::{
    broadcast::{
        self,
        error::{RecvError, TryRecvError},
    },
    mpsc,
};

use crate::{
    App,
    state::{ConnId, Note, json},
};

/// Whether the connection goes on after a line.
enum Flow {
    Go,
    Stop,
}

struct Connection {
    id: ConnId,
    socket: WebSocket,
    app: Arc<App>,
    /// My name and room, as the maps have them (only this task changes them).
    nick: Nick,
    room: Room,
    /// My room's channel: what I say goes in, what the room says comes out.
    sender: broadcast::Sender<Note>,
    receiver: broadcast::Receiver<Note>,
    /// Private messages for me.
    direct: mpsc::UnboundedReceiver<Utf8Bytes>,
}

/// Serves one WebSocket client from its arrival to its departure.
pub(crate) async fn run(socket: WebSocket, app: Arc<App>) {
    let id = app.next_id.fetch_add(1, Ordering::Relaxed);
    let nick = Nick::guest(id);
    let (direct_tx, direct) = mpsc::unbounded_channel();
    let (sender, receiver) = app.write().await.connect(id, nick.clone(), direct_tx);
    let mut connection = Connection {
        id,
        socket,
        app: Arc::clone(&app),
        nick,
        room: Room::lobby(),
        sender,
        receiver,
        direct,
    };
    if let Err(err) = connection.serve().await {
        tracing::debug!(%err, id, "connection ended with an error");
    }
    app.write().await.disconnect(id);
}

impl Connection {
    // ANCHOR: select_loop
    async fn serve(&mut self) -> Result<(), Error> {
        self.welcome().await?;
        loop {
            tokio::select! {
                incoming = self.socket.recv() => match incoming {
                    Some(Ok(Message::Text(line))) => {
                        if let Flow::Stop = self.input(line.as_str()).await? {
                            return Ok(());
                        }
                    }
                    // Binary data has no text to parse: it goes to the room as it came.
                    Some(Ok(data @ Message::Binary(_))) => self.relay(data),
                    // axum answers pings itself.
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_)) | Err(_)) | None => return Ok(()),
                },
                note = self.receiver.recv() => self.forward(note).await?,
                Some(private) = self.direct.recv() => {
                    self.socket.send(Message::Text(private)).await?;
                }
            }
        }
    }
    // ANCHOR_END: select_loop

    // ANCHOR: forward
    /// One item from my room's channel. Another's message goes to my socket (with whatever else
    /// is waiting, up to `--batch`); my own is skipped. `Lagged` is handled the usual way, by
    /// carrying on (the next `recv` returns the oldest message still in the channel): the client
    /// is told how many it missed, and stays.
    async fn forward(&mut self, note: Result<Note, RecvError>) -> Result<(), Error> {
        let first = match note {
            Ok(note) if note.origin == self.id => return Ok(()),
            Ok(note) => note.message,
            Err(RecvError::Lagged(skipped)) => self.lagged(skipped),
            // Cannot happen while this task holds a sender of the same channel.
            Err(RecvError::Closed) => return Ok(()),
        };
        if self.app.batch <= 1 {
            // The usual way: one message, one write, one flush.
            return self.socket.send(first).await;
        }
        self.socket.feed(first).await?;
        for _ in 1..self.app.batch {
            let next = match self.receiver.try_recv() {
                Ok(note) if note.origin == self.id => continue,
                Ok(note) => note.message,
                Err(TryRecvError::Lagged(skipped)) => self.lagged(skipped),
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            };
            self.socket.feed(next).await?;
        }
        self.socket.flush().await
    }

    /// The receiver fell more than a channel's worth behind: `skipped` messages are gone for it.
    fn lagged(&self, skipped: u64) -> Message {
        self.app.lagged.fetch_add(1, Ordering::Relaxed);
        self.app.skipped.fetch_add(skipped, Ordering::Relaxed);
        let text = format!("you fell behind: {skipped} messages were skipped");
        Message::Text(json(Body::Info { text }))
    }
    // ANCHOR_END: forward

    /// Sends `body` to this client.
    async fn tell(&mut self, body: Body) -> Result<(), Error> {
        self.socket.send(Message::Text(json(body))).await
    }

    /// Says `body` to my room.
    fn say(&self, body: Body) {
        self.relay(Message::Text(json(body)));
    }

    // ANCHOR: relay
    /// Puts `message` into my room's channel. No lock: the sender is mine (a clone of the room's).
    /// An error means nobody is subscribed, not even me: nobody to tell.
    fn relay(&self, message: Message) {
        let _ = self.sender.send(Note {
            origin: self.id,
            message,
        });
    }
    // ANCHOR_END: relay

    /// One line from the client.
    async fn input(&mut self, line: &str) -> Result<Flow, Error> {
        match command::parse(line) {
            Err(err) => {
                let text = err.to_string();
                self.tell(Body::Error { text }).await?;
            }
            Ok(Input::Say(text)) => self.say(Body::Chat {
                room: self.room.to_string(),
                from: self.nick.to_string(),
                text,
            }),
            Ok(Input::Command(command)) => return self.execute(command).await,
        }
        Ok(Flow::Go)
    }

    // ANCHOR: execute
    async fn execute(&mut self, command: Command) -> Result<Flow, Error> {
        match command {
            Command::Nick(new) => {
                let renamed = self.app.write().await.rename(self.id, &new);
                match renamed {
                    Ok(()) => {
                        self.nick = new;
                        self.welcome().await?;
                    }
                    Err(refusal) => self.tell(refusal).await?,
                }
            }
            Command::Join(target) if target == self.room => {
                let text = format!("you are in {target} already");
                self.tell(Body::Info { text }).await?;
            }
            Command::Join(target) => self.move_to(target).await?,
            Command::Leave if self.room.is_lobby() => {
                let text = "you are in the lobby already: /join ROOM to go elsewhere".to_string();
                self.tell(Body::Info { text }).await?;
            }
            Command::Leave => self.move_to(Room::lobby()).await?,
            Command::Rooms => {
                let rooms = self.app.read().await.rooms();
                self.tell(rooms).await?;
            }
            Command::Who => self.who().await?,
            Command::Msg { to, text } => {
                let found = self.app.read().await.direct(&to);
                match found {
                    None => {
                        let text = format!("nobody called {to} is connected");
                        self.tell(Body::Error { text }).await?;
                    }
                    Some((to, queue)) => {
                        let body = Body::Private {
                            from: self.nick.to_string(),
                            to: to.to_string(),
                            text,
                        };
                        let _ = queue.send(json(body));
                    }
                }
            }
            Command::Me(text) => self.say(Body::Action {
                room: self.room.to_string(),
                from: self.nick.to_string(),
                text,
            }),
            Command::Help => {
                let text = command::HELP.to_string();
                self.tell(Body::Info { text }).await?;
            }
            Command::Quit => {
                let text = "bye".to_string();
                self.tell(Body::Info { text }).await?;
                let bye = CloseFrame {
                    code: close_code::NORMAL,
                    reason: "bye".into(),
                };
                self.socket.send(Message::Close(Some(bye))).await?;
                return Ok(Flow::Stop);
            }
        }
        Ok(Flow::Go)
    }
    // ANCHOR_END: execute

    /// `/join` and `/leave`: a new subscription in place of the old one.
    async fn move_to(&mut self, target: Room) -> Result<(), Error> {
        let moved = self.app.write().await.move_to(self.id, &target);
        if let Some((sender, receiver)) = moved {
            self.sender = sender;
            self.receiver = receiver;
            self.room = target;
            self.welcome().await?;
        }
        Ok(())
    }

    /// Who and where I am, and who is here with me.
    async fn welcome(&mut self) -> Result<(), Error> {
        let body = Body::Welcome {
            name: self.nick.to_string(),
            room: self.room.to_string(),
        };
        self.tell(body).await?;
        self.who().await
    }

    // ANCHOR: who
    /// `/who`. With `--hold-lock-across-await`, the read guard stays alive while the answer is
    /// written to the socket: the mistake this crate can make on purpose, to measure it. A
    /// client that does not read then holds the read lock for as long as its socket stays full,
    /// every `write()` waits behind it, and tokio's fair `RwLock` queues every later `read()`
    /// behind that writer.
    async fn who(&mut self) -> Result<(), Error> {
        let app = Arc::clone(&self.app);
        let state = app.read().await;
        let body = state.who(&self.room);
        if app.hold_lock_across_await {
            let sent = self.tell(body).await;
            drop(state);
            sent
        } else {
            drop(state);
            self.tell(body).await
        }
    }
    // ANCHOR_END: who
}
