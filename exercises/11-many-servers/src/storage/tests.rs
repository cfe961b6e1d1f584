// Fan-out workshop, exercise 11-many-servers: generated from chapters/11-many-servers by `cargo workshop generate`.
//
// Nothing to do in this file: it is the finished part of the exercise. Your part is in
// src/bridge.rs, src/broker/cluster.rs.

//! The storage, tested against real SQLite files in temporary directories: every query the
//! server runs is run here, since sqlx checks none of them at compile time.

use super::*;

/// A fresh directory; the database goes in it as `history.db`.
fn dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory")
}

fn said(seq: u64, room: &str, text: &str) -> Record {
    Record {
        seq,
        message: ChatMessage {
            ts: 1_700_000_000_000 + seq,
            body: Body::Chat {
                room: room.into(),
                from: "alice".into(),
                text: text.into(),
            },
            history: false,
        },
    }
}

fn private(seq: u64, from: &str, to: &str, text: &str) -> Record {
    Record {
        seq,
        message: ChatMessage {
            ts: 1_700_000_000_000 + seq,
            body: Body::Private {
                from: from.into(),
                to: to.into(),
                text: text.into(),
            },
            history: false,
        },
    }
}

fn read(room: &str, upto: u64, limit: usize) -> Read {
    Read {
        to: ConnId::next(),
        ticket: 1,
        room: Room::parse(room).unwrap(),
        upto,
        limit,
    }
}

/// The texts of what a read found.
fn texts(messages: &[ChatMessage]) -> Vec<String> {
    messages
        .iter()
        .map(|message| match &message.body {
            Body::Chat { text, .. } | Body::Action { text, .. } | Body::Private { text, .. } => {
                text.clone()
            }
            other => panic!("not something a client said: {other:?}"),
        })
        .collect()
}

/// How many rows a scope holds, read straight from the file.
async fn count(storage: &Storage, scope: &str) -> i64 {
    let pool = &storage.db.as_ref().expect("the database is open").pool;
    sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE scope = ?")
        .bind(scope)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// What is written is read back in the order it was said, from its own room only, marked as
/// history, with its original time.
#[tokio::test]
async fn messages_come_back_in_order_from_their_room() {
    let dir = dir();
    let (mut storage, last) = open(&dir.path().join("history.db"), 100).await.unwrap();
    assert_eq!(last, 0, "a new database has no messages");
    storage
        .write(&[
            said(1, "lobby", "one"),
            said(2, "games", "elsewhere"),
            said(3, "lobby", "two"),
            said(4, "lobby", "three"),
        ])
        .await;
    let messages = storage.read(&read("lobby", 4, 10)).await.unwrap();
    assert_eq!(texts(&messages), ["one", "two", "three"]);
    assert!(messages.iter().all(|message| message.history));
    assert_eq!(messages[0].ts, 1_700_000_000_001, "the original time");
    assert_eq!(storage.counts().writes.get(), 4);
}

/// A read gives the last `limit` messages numbered `upto` or less: what was said before the
/// request, and none of what came after.
#[tokio::test]
async fn a_read_stops_at_its_number_and_keeps_the_last_ones() {
    let dir = dir();
    let (mut storage, _) = open(&dir.path().join("history.db"), 100).await.unwrap();
    let records: Vec<Record> = (1..=6).map(|n| said(n, "lobby", &n.to_string())).collect();
    storage.write(&records).await;
    let messages = storage.read(&read("lobby", 4, 2)).await.unwrap();
    assert_eq!(texts(&messages), ["3", "4"]);
}

/// A batch larger than one INSERT statement carries is written whole, in order.
#[tokio::test]
async fn a_big_batch_is_written_whole() {
    let dir = dir();
    let (mut storage, _) = open(&dir.path().join("history.db"), 1000).await.unwrap();
    let count = 2 * ROWS_PER_INSERT + 7;
    let records: Vec<Record> = (1..=count as u64)
        .map(|n| said(n, "lobby", &n.to_string()))
        .collect();
    storage.write(&records).await;
    let messages = storage.read(&read("lobby", u64::MAX, 1000)).await.unwrap();
    let expected: Vec<String> = (1..=count).map(|n| n.to_string()).collect();
    assert_eq!(texts(&messages), expected);
}

/// With a larger `--history-keep`, a scope is cut once a tenth of it has been written since its
/// last cut: never more than that over, and back to `keep` at each cut.
#[tokio::test]
async fn retention_cuts_in_steps_of_a_tenth() {
    let dir = dir();
    let (mut storage, _) = open(&dir.path().join("history.db"), 100).await.unwrap();
    for n in 1..=109 {
        let record = [said(n, "lobby", &n.to_string())];
        storage.write(&record).await;
        storage.prune(&record).await;
        assert!(count(&storage, "room:lobby").await <= 109);
    }
    assert_eq!(
        count(&storage, "room:lobby").await,
        109,
        "no cut since the 100th write"
    );
    let record = [said(110, "lobby", "110")];
    storage.write(&record).await;
    storage.prune(&record).await;
    assert_eq!(count(&storage, "room:lobby").await, 100);
}

/// Closing and opening the file again finds the messages, and the highest number, from which
/// the broker goes on.
#[tokio::test]
async fn history_and_numbers_survive_reopening() {
    let dir = dir();
    let path = dir.path().join("history.db");
    let (mut storage, _) = open(&path, 100).await.unwrap();
    storage
        .write(&[said(7, "lobby", "before"), said(9, "lobby", "the restart")])
        .await;
    if let Some(db) = storage.db.take() {
        db.pool.close().await;
    }
    drop(storage);
    let (mut storage, last) = open(&path, 100).await.unwrap();
    assert_eq!(last, 9);
    let messages = storage.read(&read("lobby", last, 10)).await.unwrap();
    assert_eq!(texts(&messages), ["before", "the restart"]);
}

/// Retention keeps the last `--history-keep` messages of each room and of each private
/// conversation, and deletes the older ones.
#[tokio::test]
async fn retention_keeps_the_last_messages_of_each_scope() {
    let dir = dir();
    let (mut storage, _) = open(&dir.path().join("history.db"), 3).await.unwrap();
    let mut records = Vec::new();
    for n in 1..=5 {
        records.push(said(n, "lobby", &format!("lobby {n}")));
        records.push(private(100 + n, "Alice", "bob", &format!("psst {n}")));
        // The other direction is the same conversation.
        records.push(private(200 + n, "bob", "alice", &format!("hush {n}")));
    }
    records.push(said(300, "games", "only one"));
    storage.write(&records).await;
    storage.prune(&records).await;
    assert_eq!(count(&storage, "room:lobby").await, 3);
    assert_eq!(count(&storage, "room:games").await, 1);
    assert_eq!(count(&storage, "private:alice bob").await, 3);
    let lobby = storage.read(&read("lobby", 1000, 10)).await.unwrap();
    assert_eq!(texts(&lobby), ["lobby 3", "lobby 4", "lobby 5"]);
}

/// A private message is kept in its two parties' scope and never in a room's: no read of a
/// room's history, whoever asks, finds it.
#[tokio::test]
async fn a_private_message_is_in_no_rooms_history() {
    let dir = dir();
    let (mut storage, _) = open(&dir.path().join("history.db"), 100).await.unwrap();
    storage
        .write(&[
            said(1, "lobby", "hello all"),
            private(2, "alice", "bob", "a secret"),
            said(3, "lobby", "bye all"),
        ])
        .await;
    let lobby = storage.read(&read("lobby", 3, 100)).await.unwrap();
    assert_eq!(texts(&lobby), ["hello all", "bye all"]);
    assert_eq!(count(&storage, "private:alice bob").await, 1);
}

/// A path in a directory that does not exist is refused with a sentence naming the directory.
#[tokio::test]
async fn a_missing_directory_is_a_clear_error() {
    let dir = dir();
    let path = dir.path().join("nowhere").join("history.db");
    let err = open(&path, 100)
        .await
        .err()
        .expect("no directory, no database");
    let text = err.to_string();
    assert!(
        text.contains("does not exist") && text.contains("nowhere"),
        "{text}"
    );
}

/// A file that is not a database is refused, named, and left as it was.
#[tokio::test]
async fn a_file_that_is_not_a_database_is_a_clear_error() {
    let dir = dir();
    let path = dir.path().join("notes.txt");
    let junk = "these are my notes, not a database\n".repeat(200);
    std::fs::write(&path, &junk).unwrap();
    let err = open(&path, 100).await.err().expect("not a database");
    let text = err.to_string();
    assert!(
        text.contains("notes.txt") && text.contains("not a database"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        junk,
        "left as it was"
    );
}

/// A file that another server holds is refused, saying so, instead of two servers mixing their
/// numbers in one file.
#[tokio::test]
async fn a_file_held_by_another_server_is_refused() {
    let dir = dir();
    let path = dir.path().join("history.db");
    let (_first, _) = open(&path, 100).await.unwrap();
    let err = open(&path, 100).await.err().expect("the file is taken");
    let text = err.to_string();
    assert!(
        text.contains("locked") && text.contains("another server"),
        "{text}"
    );
}

/// A file removed under a running server is noticed (an open connection would go on writing
/// into the removed file, silently): writes fail and are counted, reads say the history is
/// unavailable, and after RETRY a new file is made and used.
#[tokio::test]
async fn a_removed_file_is_noticed_and_replaced() {
    let dir = dir();
    let path = dir.path().join("history.db");
    let (mut storage, _) = open(&path, 100).await.unwrap();
    storage
        .write(&[said(1, "lobby", "lost with the file")])
        .await;
    std::fs::remove_file(&path).unwrap();
    storage.write(&[said(2, "lobby", "not kept")]).await;
    assert!(storage.counts().failures.get() >= 1);
    assert_eq!(
        storage.read(&read("lobby", 2, 10)).await,
        Err(UNAVAILABLE.to_string())
    );
    tokio::time::sleep(RETRY).await;
    storage.write(&[said(3, "lobby", "kept again")]).await;
    assert!(path.exists(), "a new file was made");
    let messages = storage.read(&read("lobby", 3, 10)).await.unwrap();
    assert_eq!(texts(&messages), ["kept again"]);
}

/// A directory that disappears and comes back: the database fails while it is gone, and works
/// again, in a new file, once it is back.
#[tokio::test]
async fn a_directory_that_comes_back_brings_the_history_back() {
    let dir = dir();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let path = data.join("history.db");
    let (mut storage, _) = open(&path, 100).await.unwrap();
    std::fs::remove_dir_all(&data).unwrap();
    storage.write(&[said(1, "lobby", "into the void")]).await;
    tokio::time::sleep(RETRY).await;
    storage.write(&[said(2, "lobby", "still nothing")]).await;
    assert!(storage.read(&read("lobby", 2, 10)).await.is_err());
    std::fs::create_dir(&data).unwrap();
    tokio::time::sleep(RETRY).await;
    storage.write(&[said(3, "lobby", "back")]).await;
    let messages = storage.read(&read("lobby", 3, 10)).await.unwrap();
    assert_eq!(texts(&messages), ["back"]);
}

/// The task: a read queued behind writes sees them, and not the writes queued after it, even
/// when all of them are taken in one batch; the answer comes to the broker as an event.
#[tokio::test]
async fn a_read_sees_the_writes_queued_before_it_and_none_after() {
    let dir = dir();
    let (storage, _) = open(&dir.path().join("history.db"), 100).await.unwrap();
    let (events, mut events_rx) = mpsc::channel(8);
    // Everything is queued before the task starts, so one batch takes it all.
    let (jobs, jobs_rx) = mpsc::channel(16);
    for n in 1..=3 {
        jobs.try_send(Job::Write(said(n, "lobby", &format!("before {n}"))))
            .unwrap();
    }
    let mut request = read("lobby", 3, 10);
    request.ticket = 42;
    let to = request.to;
    jobs.try_send(Job::Read(request)).unwrap();
    jobs.try_send(Job::Write(said(4, "lobby", "after")))
        .unwrap();
    let task = tokio::spawn(run(storage, jobs_rx, events.downgrade()));
    let answer = tokio::time::timeout(Duration::from_secs(5), events_rx.recv())
        .await
        .expect("an answer within 5 s")
        .expect("an event");
    let Event::History {
        to: answered,
        ticket,
        answer,
    } = answer
    else {
        panic!("expected the history, got {answer:?}");
    };
    assert_eq!((answered, ticket), (to, 42));
    assert_eq!(
        texts(&answer.unwrap()),
        ["before 1", "before 2", "before 3"]
    );
    // The task ends once the broker's end of the queue is gone.
    drop(jobs);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the task ends")
        .unwrap();
}
