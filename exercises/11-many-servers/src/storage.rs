// Fan-out workshop, exercise 11-many-servers: generated from chapters/11-many-servers by `cargo workshop generate`.
//
// Nothing to do in this file: it is the finished part of the exercise. Your part is in
// src/bridge.rs, src/broker/cluster.rs.

//! The history: what clients said, kept in SQLite so that it survives a restart.
//!
//! A database is the slowest thing this server touches: a write waits for the disk, and a
//! failing disk may make it wait much longer. The broker must never wait for it (chapter 04's
//! rule), so the database belongs to one task of its own, the storage task, and the broker talks
//! to it as connections talk to the broker: over a bounded queue of [`Job`]s.
//!
//! - Writes: the broker hands over every message a client says with `try_send`. When the queue
//!   is full, that message is not kept (the broker counts it) and the chat goes on.
//! - Batches: the task takes everything queued at once and writes it in one transaction: one
//!   wait for the disk per batch instead of one per message, so the busier the chat, the fewer
//!   waits per message.
//! - Reads: a join or `/history` is a [`Read`] in the same queue, after the writes the broker
//!   sent before it. The answer goes back to the broker as an event ([`Event::History`]). Since
//!   the queue keeps its order, the answer holds exactly what was said before the request: the
//!   seam on which `broker/history.rs` joins the history to the live messages.
//! - Retention: after a batch, the scopes it wrote to are cut to their last `--history-keep`
//!   messages (once a tenth of that has been written to them since their last cut).
//! - Failures: if the database cannot be used (the file removed, its directory gone, the disk
//!   full), writes are lost until it can, reads are answered with an error, the failure is logged
//!   once and counted, and the task tries the file again every [`RETRY`]. Nothing here panics,
//!   and the broker never notices but through the answers it gets.
//!
//! Private messages are kept too, under their two parties' names (`private:alice bob`, with
//! retention counted per conversation as per room), and replayed to nobody in this chapter: a
//! name here is not an account. Once bob has left, anyone may take the name bob, so replaying
//! "bob's" conversations to whoever is called bob now would hand them to a stranger. A join and
//! `/history` replay the room's messages only; a private message never reaches anybody's history.
//!
//! A pool of one connection: one task does all the work, one statement at a time, and that
//! connection holds the file's lock for as long as the server runs (see the migration). The pool
//! is what sqlx's migrations and transactions take most simply, and it never closes the
//! connection on its own (no idle timeout, no maximum lifetime): that would let go of the lock.

use std::{
    collections::HashMap,
    io,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use prometheus_client::metrics::counter::Counter;

use sqlx::{
    QueryBuilder, Sqlite, SqlitePool,
    migrate::Migrator,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteLockingMode, SqlitePoolOptions},
};
use tokio::{sync::mpsc, task::JoinHandle, time::Instant};

use crate::{
    broker::{ConnId, Event},
    message::{Body, ChatMessage},
    metrics::Latency,
    names::Room,
};

/// The schema, from `migrations/`, built into the binary: a fresh file gets it at start-up, an
/// older one the migrations it lacks.
static MIGRATOR: Migrator = sqlx::migrate!();

/// How long a statement waits for a lock held by another connection before it fails. Only
/// another process can hold one (we keep ours), so at start-up this is how long a second server
/// waits before saying the file is taken; short, so that it says so promptly.
const BUSY_TIMEOUT: Duration = Duration::from_millis(500);

/// How long the storage task waits for its one connection. It is the only user, so the
/// connection is always free; this bounds a bug, not a normal wait.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// How often a database that failed is tried again. In between, writes are lost without a try:
/// a failing disk is not hammered once per message.
pub const RETRY: Duration = Duration::from_millis(500);

/// How many jobs may wait for the storage task: a burst of a few thousand messages between two
/// batches (a batch waits for the disk) is kept whole.
pub const QUEUE: usize = 4096;

/// The most jobs taken from the queue for one batch (one transaction): all of them. A commit
/// waits for the disk (two `fsync`s, a few milliseconds), so the further the task has fallen
/// behind, the more a batch should carry. Measured with the load generator's s1 (about 20,000
/// messages a second on 2 busy cores), batches of at most 512 left the queue full and lost 2-5 %
/// of the messages' history; taking everything lost none.
const BATCH_LIMIT: usize = QUEUE;

/// The text a client reads when the history cannot be read. It says what, not why: the reason
/// (a path, an SQLite error) is for the server's log, not for every client.
pub const UNAVAILABLE: &str =
    "history is unavailable right now (the server cannot use its database); chat goes on";

/// One message to keep, with the broker's number for it.
#[derive(Debug, Clone)]
pub struct Record {
    pub seq: u64,
    pub message: ChatMessage,
}

/// Who wants which history: the last `limit` messages of `room` numbered `upto` or less.
#[derive(Debug, Clone)]
pub struct Read {
    pub to: ConnId,
    /// The broker's number for this request, sent back with the answer: an answer to a request
    /// that a later one replaced is recognised, and dropped.
    pub ticket: u64,
    pub room: Room,
    pub upto: u64,
    pub limit: usize,
}

/// What the broker asks of the storage task.
#[derive(Debug)]
pub enum Job {
    Write(Record),
    Read(Read),
}

/// What the storage task counts, for whoever reports on it (`/stats`, `/metrics`): atomics,
/// which the task bumps and the others read, without a word between them.
#[derive(Debug, Default)]
pub struct Counts {
    /// Messages written and committed.
    pub writes: Counter,
    /// Batches, reads and reopenings that failed.
    pub failures: Counter,
    /// How long each batch's writing took, failed ones included.
    pub write_seconds: Latency,
}

/// The database, for the storage task: the file, the connection while it is usable, and the
/// state of the last failure.
pub struct Storage {
    path: PathBuf,
    db: Option<Db>,
    keep: usize,
    /// Since when the database has been failing, and when it was last tried; `None` when well.
    failing: Option<(Instant, Instant)>,
    counts: Arc<Counts>,
    /// Scope → messages written since it was last cut down to `keep` (see `prune`).
    uncut: HashMap<String, usize>,
}

/// An open database, and which file it opened: a file removed or replaced under an open
/// connection takes writes silently (into the removed file), so each batch first checks that the
/// path still names the same file.
struct Db {
    pool: SqlitePool,
    file: FileId,
}

/// Opens (creating if need be) the database at `path` for a server keeping `keep` messages per
/// scope; returns it and the highest message number stored, from which the broker goes on.
/// Every way this fails is a sentence for the user, naming the path: a directory that does not
/// exist, a file that is not a database, a file that another process holds.
pub async fn open(path: &Path, keep: usize) -> io::Result<(Storage, u64)> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
        && !dir.is_dir()
    {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "cannot open the history database {}: the directory {} does not exist",
                path.display(),
                dir.display()
            ),
        ));
    }
    let db = connect(path).await.map_err(|err| open_error(path, &err))?;
    let last: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM messages")
        .fetch_one(&db.pool)
        .await
        .map_err(|err| open_error(path, &err))?;
    let storage = Storage {
        path: path.to_path_buf(),
        db: Some(db),
        keep,
        failing: None,
        counts: Arc::default(),
        uncut: HashMap::new(),
    };
    Ok((storage, u64::try_from(last).unwrap_or(0)))
}

fn open_error(path: &Path, err: &sqlx::Error) -> io::Error {
    // SQLite says "database is locked" when another process holds the file.
    let hint = if err.to_string().contains("locked") {
        " (another process holds it: is another server using the same --db?)"
    } else {
        ""
    };
    io::Error::other(format!(
        "cannot open the history database {}: {err}{hint}",
        path.display()
    ))
}

/// Opens the file, brings its schema up to date, and takes its lock.
async fn connect(path: &Path) -> Result<Db, sqlx::Error> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        // SQLite's default rollback journal. While the server holds the lock, SQLite keeps the
        // journal file (`PATH-journal`) between transactions rather than making one each time.
        .journal_mode(SqliteJournalMode::Delete)
        // Keep the lock once taken: one server per file (see the migration).
        .locking_mode(SqliteLockingMode::Exclusive)
        .busy_timeout(BUSY_TIMEOUT);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await?;
    MIGRATOR.run(&pool).await?;
    sqlx::query("INSERT OR REPLACE INTO server_lock (id, taken_at) VALUES (1, ?)")
        .bind(to_sql(now_ms()))
        .execute(&pool)
        .await?;
    let file = file_id(path).ok_or_else(|| {
        sqlx::Error::Protocol(format!("{} vanished as it was opened", path.display()))
    })?;
    Ok(Db { pool, file })
}

/// Starts the storage task with room for `capacity` jobs. Answers go to the broker through
/// `events`, a weak sender: the storage task must not keep the broker alive (the broker ends
/// when its last connection does, ②), and the task ends when the broker drops the returned
/// sender, once it has written what was queued.
pub fn spawn(
    storage: Storage,
    capacity: usize,
    events: mpsc::WeakSender<Event>,
) -> (mpsc::Sender<Job>, JoinHandle<()>) {
    let (jobs, jobs_rx) = mpsc::channel(capacity);
    (jobs, tokio::spawn(run(storage, jobs_rx, events)))
}

/// The storage task's loop: one batch at a time, until the broker is gone.
pub async fn run(
    mut storage: Storage,
    mut jobs: mpsc::Receiver<Job>,
    events: mpsc::WeakSender<Event>,
) {
    let mut batch = Vec::with_capacity(BATCH_LIMIT);
    while jobs.recv_many(&mut batch, BATCH_LIMIT).await > 0 {
        let mut writes = Vec::new();
        let mut reads = Vec::new();
        for job in batch.drain(..) {
            match job {
                Job::Write(record) => writes.push(record),
                Job::Read(read) => reads.push(read),
            }
        }
        // Every write of the batch first: a read comes after the writes it must see, and the
        // writes after it are left out of its answer by their numbers (`upto`).
        storage.write(&writes).await;
        for read in reads {
            // The broker gone (shutting down), nobody reads the answer: skip the read, but not
            // the writes still queued behind it, which the loop goes on to keep.
            let Some(events) = events.upgrade() else {
                continue;
            };
            let answer = Event::History {
                to: read.to,
                ticket: read.ticket,
                answer: storage.read(&read).await,
            };
            // Waiting here is fine: this is the storage task, and the broker reads its queue.
            let _ = events.send(answer).await;
        }
        // Retention last, so that a read in this batch still sees what it should.
        storage.prune(&writes).await;
    }
    // Everything is written: close the file properly (and let go of its lock).
    if let Some(db) = storage.db.take() {
        db.pool.close().await;
    }
}

impl Storage {
    /// What this storage counts (shared: it keeps counting once the task owns the storage).
    pub fn counts(&self) -> Arc<Counts> {
        Arc::clone(&self.counts)
    }

    /// Writes `records` in one transaction; on failure they are lost, and counted.
    pub async fn write(&mut self, records: &[Record]) {
        if records.is_empty() {
            return;
        }
        let Some(pool) = self.usable().await else {
            return;
        };
        let started = Instant::now();
        let inserted = insert(&pool, records).await;
        self.counts.write_seconds.observe(started.elapsed());
        match inserted {
            Ok(()) => {
                let written = u64::try_from(records.len()).unwrap_or(u64::MAX);
                self.counts.writes.inc_by(written);
                self.recovered();
            }
            Err(err) => {
                let what = format!("writing {} messages: {err}", records.len());
                self.fail(&what).await;
            }
        }
    }

    /// The last `read.limit` messages of `read.room` numbered `read.upto` or less, oldest first,
    /// marked as history; or the text that tells the client the history is unavailable.
    pub async fn read(&mut self, read: &Read) -> Result<Vec<ChatMessage>, String> {
        let Some(pool) = self.usable().await else {
            return Err(UNAVAILABLE.to_string());
        };
        match select(&pool, &room_scope(&read.room), read.upto, read.limit).await {
            Ok(messages) => {
                self.recovered();
                Ok(messages)
            }
            Err(err) => {
                let what = format!("reading history: {err}");
                self.fail(&what).await;
                Err(UNAVAILABLE.to_string())
            }
        }
    }

    /// Cuts the scopes that `records` wrote to down to their last `--history-keep` messages: each
    /// scope once a tenth of `keep` messages has been written to it since its last cut (every time
    /// when `keep` is under 10). A cut is a query of its own; this makes it one per thousand
    /// messages of a room with the default 10000, at the price of up to a tenth more kept between
    /// two cuts.
    pub async fn prune(&mut self, records: &[Record]) {
        let every = (self.keep / 10).max(1);
        let mut scopes = Vec::new();
        for scope in records
            .iter()
            .filter_map(|record| scope(&record.message.body))
        {
            let written = self.uncut.entry(scope).or_insert(0);
            *written = written.saturating_add(1);
        }
        self.uncut.retain(|scope, written| {
            if *written >= every {
                scopes.push(scope.clone());
                false
            } else {
                true
            }
        });
        let Some(pool) = self.db.as_ref().map(|db| db.pool.clone()) else {
            return;
        };
        let keep = to_sql(u64::try_from(self.keep).unwrap_or(u64::MAX));
        for scope in scopes {
            // The (keep+1)-th newest message of the scope and everything older go. With fewer
            // messages the subquery is NULL, and `seq <= NULL` deletes nothing.
            let deleted = sqlx::query(
                "DELETE FROM messages WHERE scope = ?1 AND seq <= \
                 (SELECT seq FROM messages WHERE scope = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
            )
            .bind(scope)
            .bind(keep)
            .execute(&pool)
            .await;
            if let Err(err) = deleted {
                let what = format!("deleting old history: {err}");
                return self.fail(&what).await;
            }
        }
    }

    /// The pool, if the database can be used: still the same file, or reopened once
    /// [`RETRY`] has passed since the last try.
    async fn usable(&mut self) -> Option<SqlitePool> {
        if let Some(db) = &self.db
            && file_id(&self.path) != Some(db.file)
        {
            let what = format!("{} was removed or replaced", self.path.display());
            self.fail(&what).await;
        }
        if self.db.is_none() {
            let now = Instant::now();
            if let Some((since, tried)) = self.failing {
                if now.saturating_duration_since(tried) < RETRY {
                    self.counts.failures.inc();
                    return None;
                }
                self.failing = Some((since, now));
            }
            match connect(&self.path).await {
                Ok(db) => self.db = Some(db),
                Err(err) => {
                    let what = format!("reopening: {err}");
                    self.fail(&what).await;
                    return None;
                }
            }
        }
        self.db.as_ref().map(|db| db.pool.clone())
    }

    /// The database failed: let go of the connection (its lock with it, so that reopening the
    /// same file can take it again), count the failure, and log it if it is the first since the
    /// database was last well.
    async fn fail(&mut self, what: &str) {
        self.counts.failures.inc();
        if let Some(db) = self.db.take() {
            let _ = tokio::time::timeout(BUSY_TIMEOUT, db.pool.close()).await;
        }
        let now = Instant::now();
        match self.failing {
            Some((since, _)) => self.failing = Some((since, now)),
            None => {
                tracing::error!(
                    path = %self.path.display(),
                    error = what,
                    "the history database failed: chat goes on without history until it is back"
                );
                self.failing = Some((now, now));
            }
        }
    }

    /// The database works again after a failure: say so, once.
    fn recovered(&mut self) {
        if let Some((since, _)) = self.failing.take() {
            tracing::info!(
                path = %self.path.display(),
                down_for = ?since.elapsed(),
                "the history database is back: history is kept again"
            );
        }
    }
}

/// How many rows one INSERT statement carries. Each statement is a round trip to the thread
/// where sqlx runs SQLite, which costs more than the row itself: a busy chat's batch goes in a
/// few statements rather than one per message. (8 values a row: far below SQLite's limit of
/// 32766 values per statement.)
const ROWS_PER_INSERT: usize = 100;

/// Inserts `records` in one transaction: all of them, or none.
async fn insert(pool: &SqlitePool, records: &[Record]) -> Result<(), sqlx::Error> {
    let rows: Vec<InsertRow> = records.iter().filter_map(InsertRow::new).collect();
    let mut tx = pool.begin().await?;
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        // OR REPLACE: a number is never reused by one server, and one file has one server; but
        // should it happen, the newer message wins rather than the whole batch failing.
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT OR REPLACE INTO messages (seq, scope, ts, kind, sender, recipient, room, text) ",
        );
        insert.push_values(chunk, |mut values, row| {
            values
                .push_bind(row.seq)
                .push_bind(&row.scope)
                .push_bind(row.ts)
                .push_bind(row.kind)
                .push_bind(&row.sender)
                .push_bind(&row.recipient)
                .push_bind(&row.room)
                .push_bind(&row.text);
        });
        insert.build().execute(&mut *tx).await?;
    }
    tx.commit().await
}

/// One row of `messages`, as `insert` writes it.
struct InsertRow {
    seq: i64,
    scope: String,
    ts: i64,
    kind: &'static str,
    sender: String,
    recipient: Option<String>,
    room: Option<String>,
    text: String,
}

impl InsertRow {
    /// The row for `record`; `None` for what is not kept (never sent here).
    fn new(record: &Record) -> Option<InsertRow> {
        let scope = scope(&record.message.body)?;
        let (kind, sender, recipient, room, text) = match &record.message.body {
            Body::Chat { room, from, text } => ("chat", from, None, Some(room), text),
            Body::Action { room, from, text } => ("action", from, None, Some(room), text),
            Body::Private { from, to, text } => ("private", from, Some(to), None, text),
            _ => return None,
        };
        Some(InsertRow {
            seq: to_sql(record.seq),
            scope,
            ts: to_sql(record.message.ts),
            kind,
            sender: sender.clone(),
            recipient: recipient.cloned(),
            room: room.cloned(),
            text: text.clone(),
        })
    }
}

/// One row of `messages`, as `select` reads it.
type Row = (i64, String, String, Option<String>, Option<String>, String);

/// The last `limit` messages of `scope` numbered `upto` or less, oldest first.
async fn select(
    pool: &SqlitePool,
    scope: &str,
    upto: u64,
    limit: usize,
) -> Result<Vec<ChatMessage>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT ts, kind, sender, recipient, room, text FROM messages \
         WHERE scope = ? AND seq <= ? ORDER BY seq DESC LIMIT ?",
    )
    .bind(scope.to_string())
    .bind(to_sql(upto))
    .bind(to_sql(u64::try_from(limit).unwrap_or(u64::MAX)))
    .fetch_all(pool)
    .await?;
    let mut messages: Vec<ChatMessage> = rows.into_iter().filter_map(message).collect();
    messages.reverse();
    Ok(messages)
}

/// A row as the message it was, marked as history. A row of a kind this version does not know
/// (written by a later one) is passed over.
fn message((ts, kind, from, recipient, room, text): Row) -> Option<ChatMessage> {
    let body = match kind.as_str() {
        "chat" => Body::Chat {
            room: room?,
            from,
            text,
        },
        "action" => Body::Action {
            room: room?,
            from,
            text,
        },
        "private" => Body::Private {
            from,
            to: recipient?,
            text,
        },
        _ => return None,
    };
    Some(ChatMessage {
        ts: u64::try_from(ts).unwrap_or(0),
        body,
        history: true,
    })
}

/// Whose history a message belongs to: its room's, or the two parties' of a private message
/// (their names in lower case, sorted, so both directions are one conversation). `None` for what
/// is not kept: everything the server says itself.
pub fn scope(body: &Body) -> Option<String> {
    match body {
        Body::Chat { room, .. } | Body::Action { room, .. } => Some(format!("room:{room}")),
        Body::Private { from, to, .. } => {
            let (a, b) = (from.to_ascii_lowercase(), to.to_ascii_lowercase());
            let (first, second) = if a <= b { (a, b) } else { (b, a) };
            Some(format!("private:{first} {second}"))
        }
        _ => None,
    }
}

fn room_scope(room: &Room) -> String {
    format!("room:{room}")
}

/// SQLite's integers are signed: our numbers and times are far below `i64::MAX`, and one that
/// is not is stored as the largest there is rather than wrapped to a negative number.
fn to_sql(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

/// Which file a path names now: its device and inode. `None` if there is none.
type FileId = (u64, u64);

#[cfg(unix)]
fn file_id(path: &Path) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .ok()
        .map(|meta| (meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn file_id(path: &Path) -> Option<FileId> {
    path.exists().then_some((0, 0))
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
mod tests;
