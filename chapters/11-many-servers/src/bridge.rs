//! The bridge: the one task that talks to Redis, so that several servers make one chat.
//!
//! With `--redis`, each server (an *instance*) still has its own broker, which still never waits
//! for anything. What the broker wants the other instances to know, it hands to this task through
//! a bounded queue ([`Outbound`]), without waiting: a full queue costs that message, counted in
//! `/stats` as `unpublished`. The bridge publishes it on one Redis channel, and hands what the
//! other instances publish to the broker as events, through the broker's own bounded queue. The
//! history's jobs come through a queue of their own (the same [`Job`]s the SQLite task takes in
//! chapter 10), and go to a Redis Stream per room.
//!
//! Why each sender's messages stay in order across instances: a client's messages reach its
//! broker in order (one connection, one reader), leave it in order (one queue), are published in
//! order (this task publishes them in the order it took them, on one connection: a batch goes as
//! one pipeline, and Redis answers one connection's commands in the order they were sent), and
//! Redis delivers the messages of one channel to each subscriber in the order they were
//! published. Every link in that chain is first in, first out; none is shared out among workers.
//!
//! Why a `ConnectionManager` and not `aio::PubSub`: a `PubSub` connection that loses Redis just
//! ends its stream of messages, and subscribing again on a new connection would be ours to do.
//! The `ConnectionManager` reconnects, and with RESP3 (where messages arrive as *push* frames on
//! an ordinary connection, beside the replies) and automatic resubscription it also subscribes
//! again, before the first command on the new connection runs. So one connection carries
//! commands and messages, and comes back by itself; the bridge only notices the loss (to tell
//! the broker) and probes, with a backoff, until Redis answers again.
//!
//! While Redis is away, nothing waits for it: what would be published is dropped and counted, a
//! claim for a name is granted for now and made when Redis is back (one of two servers that gave
//! the same name meanwhile takes it back), and the queues stay bounded.
//!
//! The servers that share a Redis, and the Redis itself, trust each other: what comes through
//! the channel is checked for form, not for honesty.

use std::{
    collections::HashMap,
    hash::{BuildHasher, Hasher},
    io,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use redis::{
    Client, ConnectionInfo, PushInfo, PushKind, Script, Value,
    aio::{ConnectionManager, ConnectionManagerConfig},
};
use tokio::{
    sync::mpsc,
    task::JoinHandle,
    time::{Instant, sleep_until, timeout},
};

use crate::{
    broker::{ConnId, Event},
    names::{Nick, NickKey},
    storage::{self, Job},
};

// The news and the messages between the broker and the bridge: see bridge/news.rs.
mod news;
// The history in Redis Streams: see bridge/history.rs.
mod history;
// What the bridge counts, for `/stats` and `/metrics`: see bridge/counts.rs.
mod counts;

pub use counts::{Counts, Unpublished};

pub use history::UNAVAILABLE;

pub use news::{Bridged, Claim, Envelope, Member, News, Outbound};

/// The one channel every instance publishes on and listens to. One channel for everything an
/// instance says keeps all of it in one order: a client's `joined` comes before what it says.
pub const CHANNEL: &str = "fanout:chat";
/// The counter that gives each instance its number.
const INSTANCES: &str = "fanout:instances";
/// How long a claim on a name lives unless its instance refreshes it: an instance that dies
/// without letting its names go holds them this long at most.
pub const NAME_TTL: Duration = Duration::from_secs(10);
/// How often an instance sets its claims again: well within [`NAME_TTL`], so that a claim
/// survives a refresh or two lost to a slow Redis.
const REFRESH: Duration = Duration::from_secs(3);
/// How often an instance says it is alive, refreshes its claims and sweeps the silent peers.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long an instance may stay silent before the others forget its clients.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest any one Redis command may take before Redis counts as out of reach.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(1);
/// The first wait before trying Redis again, doubled after each failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How many messages from other instances may wait for the bridge. The connection hands them
/// over without waiting (it must not stall); what does not fit is dropped, and counted.
const INBOUND: usize = 4096;
/// How many messages for other instances may wait for the bridge.
pub const OUTBOUND: usize = 4096;
/// The most the bridge takes from one of its queues at a time, to send to Redis as one pipeline.
const BATCH: usize = 256;

/// What `serve` gets from [`start`]: the queues into the bridge and what it counts.
#[derive(Debug)]
pub struct Links {
    /// This instance's number.
    pub instance: u64,
    pub outbound: mpsc::Sender<Outbound>,
    pub jobs: mpsc::Sender<Job>,
    pub counts: Arc<Counts>,
    pub history_counts: Arc<storage::Counts>,
}

/// What arrives from the connection: another instance's message, or the news that the
/// connection was lost.
enum Inbound {
    Envelope(Envelope),
    Lost,
}

// ANCHOR: claim_script
/// Sets a claim for `ARGV[1]` (for `ARGV[2]` ms) if the name is free or already theirs: `SET NX`
/// with an expiry, except that the holder may set it again (the heartbeat refreshes claims, and
/// sets them anew after Redis lost them). One script, so that no other claim can come between
/// the check and the set.
const CLAIM: &str = r"
local held = redis.call('GET', KEYS[1])
if held == false or held == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0";

/// Deletes a claim if it is still `ARGV[1]`'s: a claim that expired and was taken by someone
/// else is not theirs to delete.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";
// ANCHOR_END: claim_script

// ANCHOR: start
/// Connects to Redis (without waiting for it: a server starts whether Redis is up or not),
/// draws this instance's number, and starts the bridge task. Messages for the broker go to
/// `events`, a weak sender as for the storage task: the bridge must not keep the broker alive.
/// `keep` is `--history-keep`, the length each room's stream is capped at.
pub async fn start(
    info: ConnectionInfo,
    keep: usize,
    events: mpsc::WeakSender<Event>,
) -> io::Result<(Links, JoinHandle<()>)> {
    let counts = Arc::new(Counts::default());
    let (inbound, inbound_rx) = mpsc::channel(INBOUND);
    let missed = Arc::clone(&counts);
    // This instance's number, once it has one: what it published itself comes back to it (it is
    // a subscriber like any other), and is dropped here rather than queued.
    let own = Arc::new(AtomicU64::new(0));
    let own_number = Arc::clone(&own);
    // ㉒ Called by the connection for every push frame, on its own task: it must not wait, so
    // it offers each message to a bounded queue and drops what does not fit.
    let on_push = move |push: PushInfo| -> Result<(), ()> {
        let item = match push.kind {
            PushKind::Disconnection => Inbound::Lost,
            PushKind::Message => match envelope(&push.data) {
                Some(envelope) if envelope.from != own_number.load(Ordering::Relaxed) => {
                    Inbound::Envelope(envelope)
                }
                _ => return Ok(()),
            },
            _ => return Ok(()),
        };
        if inbound.try_send(item).is_err() {
            missed.unheard.inc();
        }
        Ok(())
    };
    let config = ConnectionManagerConfig::new()
        .set_push_sender(on_push)
        .set_automatic_resubscription()
        .set_connection_timeout(Some(COMMAND_TIMEOUT))
        .set_response_timeout(Some(COMMAND_TIMEOUT))
        // The manager's own retries would make one command wait through all of them; the
        // bridge's backoff decides when to try again instead.
        .set_number_of_retries(1)
        .set_min_delay(FIRST_BACKOFF)
        .set_max_delay(MAX_BACKOFF);
    let client = Client::open(info).map_err(redis_error)?;
    let mut connection =
        ConnectionManager::new_lazy_with_config(client, config).map_err(redis_error)?;
    let instance = instance_number(&mut connection).await;
    own.store(instance, Ordering::Relaxed);
    println!("instance {instance}, sharing through redis");
    let (outbound, outbound_rx) = mpsc::channel(OUTBOUND);
    let (jobs, jobs_rx) = mpsc::channel(storage::QUEUE);
    let history_counts = Arc::new(storage::Counts::default());
    let bridge = Bridge {
        connection,
        instance,
        up: false,
        said_down: false,
        subscribed: false,
        backoff: FIRST_BACKOFF,
        retry_at: Instant::now(),
        claims: HashMap::new(),
        refreshed: Instant::now(),
        keep,
        events,
        counts: Arc::clone(&counts),
        history_counts: Arc::clone(&history_counts),
    };
    let task = tokio::spawn(bridge.run(inbound_rx, outbound_rx, jobs_rx));
    let links = Links {
        instance,
        outbound,
        jobs,
        counts,
        history_counts,
    };
    Ok((links, task))
}
// ANCHOR_END: start

fn redis_error(err: redis::RedisError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("--redis: {err}"))
}

/// This instance's number: the next one of Redis's counter, so that no two instances that
/// share a Redis have the same. If Redis cannot be reached at start-up, a random one (the
/// instance works alone until Redis answers; a clash of two random numbers is unlikely).
async fn instance_number(connection: &mut ConnectionManager) -> u64 {
    let counter = redis::cmd("INCR").arg(INSTANCES).clone();
    match timeout(COMMAND_TIMEOUT, counter.query_async::<u64>(connection)).await {
        Ok(Ok(number)) => number,
        outcome => {
            let why = match outcome {
                Ok(Err(err)) => err.to_string(),
                _ => "no answer".to_string(),
            };
            tracing::warn!(%why, "redis is out of reach at start-up: working alone for now");
            let random = std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish();
            // Far from the counter's numbers, and short enough to read in a guest's name.
            (random % 900_000).saturating_add(100_000)
        }
    }
}

/// The envelope in a pushed `message`: `[channel, payload]`. Anything else is not ours.
fn envelope(data: &[Value]) -> Option<Envelope> {
    let [_channel, Value::BulkString(payload)] = data else {
        return None;
    };
    serde_json::from_slice(payload).ok()
}

/// The bridge's state, owned by its task.
struct Bridge {
    connection: ConnectionManager,
    instance: u64,
    /// Whether Redis answered the last command.
    up: bool,
    /// Whether the broker was told that Redis is out of reach (and not yet that it is back).
    said_down: bool,
    /// Whether [`CHANNEL`] was subscribed to once (after that, the manager subscribes again by
    /// itself on every new connection).
    subscribed: bool,
    backoff: Duration,
    /// When to try Redis again while it is out of reach.
    retry_at: Instant,
    /// The names this instance's clients hold: name → the value of its claim.
    claims: HashMap<NickKey, (ConnId, Nick)>,
    refreshed: Instant,
    keep: usize,
    events: mpsc::WeakSender<Event>,
    counts: Arc<Counts>,
    history_counts: Arc<storage::Counts>,
}

impl Bridge {
    /// The bridge's loop: until the broker has dropped both of its queues into it.
    async fn run(
        mut self,
        mut inbound: mpsc::Receiver<Inbound>,
        mut outbound: mpsc::Receiver<Outbound>,
        mut jobs: mpsc::Receiver<Job>,
    ) {
        let mut beat = tokio::time::interval(HEARTBEAT);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut outbound_open, mut jobs_open) = (true, true);
        let (mut job_batch, mut out_batch) = (Vec::new(), Vec::new());
        self.reconnect().await;
        while outbound_open || jobs_open {
            // In this order when several are ready: a history write that the broker made before
            // publishing a message is stored before the message is published, so a server that
            // has heard a message live finds it in the shared history.
            tokio::select! {
                biased;
                Some(item) = inbound.recv() => match item {
                    Inbound::Envelope(envelope) if envelope.from != self.instance => {
                        self.tell(Bridged::News(envelope)).await;
                    }
                    Inbound::Envelope(_) => {} // our own, delivered already
                    Inbound::Lost => self.lost("the connection to redis was lost").await,
                },
                // As chapter 08's writer does (⑬): take everything queued, send it in one go.
                taken = jobs.recv_many(&mut job_batch, BATCH), if jobs_open => match taken {
                    0 => jobs_open = false,
                    _ => self.jobs(job_batch.drain(..)).await,
                },
                taken = outbound.recv_many(&mut out_batch, BATCH), if outbound_open => match taken {
                    0 => outbound_open = false,
                    _ => self.outbound(out_batch.drain(..)).await,
                },
                _ = beat.tick() => self.heartbeat().await,
                () = sleep_until(self.retry_at), if !self.up => self.reconnect().await,
            }
        }
        // Shutting down: the names go now rather than when their claims expire.
        let claims: Vec<_> = self.claims.drain().map(|(_, claim)| claim).collect();
        for (id, nick) in claims {
            self.release(id, &nick).await;
        }
    }

    /// Hands `bridged` to the broker. Waiting here is fine: this is the bridge's task, and the
    /// broker reads its queue. The broker gone (shutting down), there is nobody to tell.
    async fn tell(&self, bridged: Bridged) {
        if let Some(events) = self.events.upgrade() {
            let _ = events.send(Event::Bridge(bridged)).await;
        }
    }

    /// Runs `command` against Redis, within [`COMMAND_TIMEOUT`]. A failure or no answer means
    /// Redis is out of reach: the broker is told (once), and `None` returned.
    async fn call<T: redis::FromRedisValue>(&mut self, command: &redis::Cmd) -> Option<T> {
        if !self.up {
            return None;
        }
        let outcome = timeout(
            COMMAND_TIMEOUT,
            command.query_async::<T>(&mut self.connection),
        )
        .await;
        self.settle(outcome).await
    }

    /// [`call`](Self::call) for a pipeline: its commands go in one write, and their answers
    /// come back in one read. `true` if Redis answered them all.
    async fn send(&mut self, pipeline: &redis::Pipeline) -> bool {
        if !self.up {
            return false;
        }
        let outcome = timeout(
            COMMAND_TIMEOUT,
            pipeline.query_async::<()>(&mut self.connection),
        )
        .await;
        self.settle(outcome).await.is_some()
    }

    /// [`call`](Self::call) for a script.
    async fn script(&mut self, script: &str, key: &str, args: &[String]) -> Option<i64> {
        if !self.up {
            return None;
        }
        let script = Script::new(script);
        let mut invocation = script.key(key);
        for arg in args {
            invocation.arg(arg);
        }
        let outcome = timeout(
            COMMAND_TIMEOUT,
            invocation.invoke_async::<i64>(&mut self.connection),
        )
        .await;
        self.settle(outcome).await
    }

    /// What came of a command given [`COMMAND_TIMEOUT`]: its answer, or `None` (and Redis
    /// counted out of reach if that is why).
    async fn settle<T>(
        &mut self,
        outcome: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
    ) -> Option<T> {
        match outcome {
            Ok(Ok(value)) => Some(value),
            Ok(Err(err)) => {
                self.failed(&err).await;
                None
            }
            Err(_) => {
                self.lost("redis did not answer in time").await;
                None
            }
        }
    }

    /// A command failed: if the connection is the cause, Redis is out of reach; otherwise (an
    /// answer of the wrong type, a script error) only this command failed, and it is logged.
    async fn failed(&mut self, err: &redis::RedisError) {
        if err.is_io_error()
            || err.is_connection_dropped()
            || err.is_connection_refusal()
            || err.is_timeout()
            || err.is_unrecoverable_error()
        {
            self.lost(&err.to_string()).await;
        } else {
            tracing::warn!(%err, "a redis command failed");
        }
    }

    // ANCHOR: outage
    // ANCHOR: lost
    /// ㉑ Redis is out of reach: say so once, and try again after the backoff.
    async fn lost(&mut self, why: &str) {
        if !self.up {
            return;
        }
        tracing::warn!(%why, "redis is out of reach: serving this server's clients alone");
        self.up = false;
        self.counts.connected.set(0);
        self.backoff = FIRST_BACKOFF;
        self.retry_at = after(self.backoff);
        self.said_down = true;
        self.tell(Bridged::Down).await;
    }
    // ANCHOR_END: lost

    /// Tries Redis: subscribes (the first time), then pings. Success brings the bridge up again;
    /// failure doubles the wait before the next try.
    async fn reconnect(&mut self) {
        // ANCHOR: exercise-reconnect
        let probe = async {
            if !self.subscribed {
                self.connection.subscribe(CHANNEL).await?;
            }
            redis::cmd("PING")
                .query_async::<String>(&mut self.connection)
                .await
        };
        match timeout(COMMAND_TIMEOUT, probe).await {
            Ok(Ok(_)) => {
                self.subscribed = true;
                self.up = true;
                self.counts.connected.set(1);
                self.said_down = false;
                tracing::info!("redis answers: sharing with the other servers again");
                // Redis may have lost our claims (a restart) or let them expire (a long outage).
                self.refresh().await;
                self.tell(Bridged::Up).await;
            }
            _ => {
                self.backoff = self.backoff.saturating_mul(2).min(MAX_BACKOFF);
                self.retry_at = after(self.backoff);
                // Out of reach from the start: the broker hears so once, as after a loss.
                if !self.said_down {
                    tracing::warn!("redis is out of reach: serving this server's clients alone");
                    self.said_down = true;
                    self.tell(Bridged::Down).await;
                }
            }
        }
        // ANCHOR_END: exercise-reconnect
    }
    // ANCHOR_END: outage

    /// Every [`HEARTBEAT`]: say this instance is alive, refresh the claims now and then, and let
    /// the broker sweep.
    async fn heartbeat(&mut self) {
        if self.up {
            self.publish(&[News::Alive]).await;
            if self.refreshed.elapsed() >= REFRESH {
                self.refresh().await;
            }
        }
        self.tell(Bridged::Tick).await;
    }

    /// Sets every claim again, with a fresh expiry. A name another instance took meanwhile (ours
    /// expired during a long outage, or both were taken while Redis was away) is lost: the
    /// broker hears so. A claim Redis does not answer is kept, for the next try.
    async fn refresh(&mut self) {
        self.refreshed = Instant::now();
        let claims: Vec<(ConnId, Nick)> = self.claims.values().cloned().collect();
        for (id, nick) in claims {
            if self.claim(id, &nick).await == Claim::Taken {
                self.claims.remove(&nick.key());
                self.tell(Bridged::Lost { id, nick }).await;
            }
        }
    }

    /// What the broker queued for the other instances, in its order: the news in a row goes as
    /// one pipeline; a claim or a release, which waits for its answer, after the news queued
    /// before it.
    async fn outbound(&mut self, batch: impl Iterator<Item = Outbound>) {
        let mut news = Vec::new();
        for out in batch {
            match out {
                Outbound::Publish(item) => news.push(item),
                other => {
                    self.publish(&news).await;
                    news.clear();
                    self.claim_or_release(other).await;
                }
            }
        }
        self.publish(&news).await;
    }

    /// One item of the broker's on its own: a claim or a release (news, too, should one come).
    async fn claim_or_release(&mut self, out: Outbound) {
        match out {
            Outbound::Publish(news) => self.publish(&[news]).await,
            Outbound::Claim { id, nick } => {
                let claim = self.claim(id, &nick).await;
                // Provisional: claimed for real by the refresh once Redis is back.
                if claim != Claim::Taken {
                    self.claims.insert(nick.key(), (id, nick.clone()));
                }
                self.tell(Bridged::Claimed { id, nick, claim }).await;
            }
            Outbound::Release { id, nick } => {
                if self.claims.remove(&nick.key()).is_some() {
                    self.release(id, &nick).await;
                }
            }
        }
    }

    // ANCHOR: publish
    /// Publishes `news` on [`CHANNEL`], in order, as one pipeline: one round trip to Redis for
    /// the lot, not one each. While Redis is out of reach the lot is dropped, and counted.
    async fn publish(&mut self, news: &[News]) {
        let mut pipeline = redis::pipe();
        let mut unsent = Vec::new();
        for item in news {
            let envelope = Envelope {
                from: self.instance,
                news: item.clone(),
            };
            match serde_json::to_string(&envelope) {
                Ok(json) => {
                    pipeline.cmd("PUBLISH").arg(CHANNEL).arg(json).ignore();
                }
                Err(_) => unsent.push(item),
            }
        }
        if !pipeline.is_empty() && !self.send(&pipeline).await {
            unsent = news.iter().collect();
        }
        for item in unsent {
            if !matches!(item, News::Alive) {
                self.counts.unpublished.inc(Unpublished::RedisAway);
            }
        }
    }
    // ANCHOR_END: publish

    // ANCHOR: claim
    /// Claims `nick` for `id` in Redis.
    async fn claim(&mut self, id: ConnId, nick: &Nick) -> Claim {
        let args = [self.claim_value(id), NAME_TTL.as_millis().to_string()];
        match self.script(CLAIM, &name_key(nick), &args).await {
            Some(1) => Claim::Granted,
            Some(_) => Claim::Taken,
            None => Claim::Provisional,
        }
    }

    /// Lets go of `nick`, if `id` still holds it.
    async fn release(&mut self, id: ConnId, nick: &Nick) {
        let args = [self.claim_value(id)];
        let _ = self.script(RELEASE, &name_key(nick), &args).await;
    }

    /// Whose claim it is: this instance's client `id`.
    fn claim_value(&self, id: ConnId) -> String {
        format!("{}:{}", self.instance, id.number())
    }
    // ANCHOR_END: claim
}

/// The time `wait` from now (or now, if that is beyond what an `Instant` can hold).
fn after(wait: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(wait).unwrap_or(now)
}

fn name_key(nick: &Nick) -> String {
    format!("fanout:name:{}", nick.as_str().to_ascii_lowercase())
}

// Tests may panic: that is how they fail.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::message::{Body, ChatMessage};

    /// What an instance publishes reads back as it was: the broker of another instance gets the
    /// same news, and the instance that published it can tell it is its own.
    #[test]
    fn an_envelope_reads_back_as_it_was_written() {
        let said = ChatMessage::now(Body::Chat {
            room: "games".to_string(),
            from: "alice".to_string(),
            text: "hi".to_string(),
        });
        for news in [
            News::Room {
                room: "games".to_string(),
                message: said.clone(),
            },
            News::Member(Member {
                conn: 7,
                nick: "alice".to_string(),
                room: "games".to_string(),
            }),
            News::Gone { conn: 7 },
            News::Hello,
        ] {
            let sent = Envelope { from: 3, news };
            let json = serde_json::to_vec(&sent).unwrap();
            let data = [
                Value::BulkString(CHANNEL.as_bytes().to_vec()),
                Value::BulkString(json),
            ];
            assert_eq!(envelope(&data), Some(sent));
        }
    }

    /// A message on the channel that is not an envelope (another program's) is passed over.
    #[test]
    fn a_foreign_message_is_passed_over() {
        let data = [
            Value::BulkString(CHANNEL.as_bytes().to_vec()),
            Value::BulkString(b"hello".to_vec()),
        ];
        assert_eq!(envelope(&data), None);
        assert_eq!(envelope(&[]), None);
    }
}
