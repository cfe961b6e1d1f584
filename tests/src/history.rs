//! Stage 10 onwards: history. What clients say is kept (in a database: `--db PATH`); a client
//! that joins a room first receives its last `--history N` messages, marked `"history": true`
//! (a terminal's lines start with their time), then the live ones, with nothing lost or repeated
//! in between; `/history [N]` asks again. Private messages are in nobody's room history. The
//! history survives a restart; a database that fails costs the history, never the chat.
//!
//! Every server here gets its own database from the target's base flags (see
//! `Target::base_flags`); scenarios about the file itself give their own `--db`, which wins.

use std::{path::Path, time::Duration};

use crate::{
    ServerProcess, Target, TestServer, WAIT,
    chat::{ChatClient, field, kind},
    client::is_history,
    process::run_to_end_within,
    scenarios,
    tcp::LineClient,
};

pub const SCENARIOS: &[crate::Scenario] = scenarios![
    a_joiner_gets_the_last_messages_as_history_then_live_ones,
    joining_a_room_replays_that_rooms_history,
    history_on_demand_gives_the_last_n,
    history_zero_replays_nothing_on_join,
    a_private_message_is_in_nobody_elses_history,
    joiners_see_no_gap_and_no_repeat_while_someone_talks,
    @binary a_database_that_fails_costs_history_not_chat,
    @binary prints_where_the_history_is_kept,
    @binary a_restart_keeps_the_history,
    @binary a_database_path_in_a_missing_directory_is_refused,
    @binary a_file_that_is_not_a_database_is_refused,
    @binary a_database_held_by_another_server_is_refused,
    @binary absurd_history_flags_are_refused,
    @binary a_terminal_gets_history_as_lines_with_their_time,
];

/// The longest a server may take to say that its database cannot be opened (see
/// `assert_refused_at_startup`).
const STARTUP_REFUSAL: Duration = Duration::from_secs(20);

/// A server of `target` with `flags` after its base flags.
async fn start(target: Target, flags: &[&str]) -> TestServer {
    TestServer::start_with(target, flags).await
}

/// The next message of `client`, which must be a chat message from the history; returns its
/// text.
async fn expect_history(client: &mut ChatClient) -> String {
    let message = client.next().await;
    assert!(
        kind(&message) == "chat" && is_history(&message),
        "{}: expected a chat message from the history, got {message}",
        client.label()
    );
    field(&message, "text").to_string()
}

/// The next `n` history messages of `client`, texts only.
async fn expect_history_texts(client: &mut ChatClient, n: usize) -> Vec<String> {
    let mut texts = Vec::new();
    for _ in 0..n {
        texts.push(expect_history(client).await);
    }
    texts
}

/// The next message of `client`, which must be a live chat message; returns its text.
async fn expect_live(client: &mut ChatClient) -> String {
    let message = client.next().await;
    assert!(
        kind(&message) == "chat" && !is_history(&message),
        "{}: expected a live chat message, got {message}",
        client.label()
    );
    field(&message, "text").to_string()
}

/// Waits until the broker has handled everything `client` sent so far: it answers `/who` after
/// what came before it on the same connection. Messages from different clients have no order
/// of their own; this gives one.
async fn settled(client: &mut ChatClient) {
    client.send("/who").await;
    client.expect_past_notices("who").await;
}

/// A client that reads the history, connected to `server`.
async fn reader(server: &TestServer, label: &str) -> ChatClient {
    let mut client = ChatClient::connect(server, label).await;
    client.read_history();
    client
}

/// With `--history 3`, a client that comes after five messages gets the last three, marked as
/// history, in the order they were said, each with its time; then what is said next, unmarked.
async fn a_joiner_gets_the_last_messages_as_history_then_live_ones(target: Target) {
    let server = start(target, &["--history", "3"]).await;
    let [mut alice] = ChatClient::everyone(&server, ["alice"]).await;
    for n in 1..=5 {
        alice.send(&format!("message {n}")).await;
    }
    settled(&mut alice).await;
    let mut bob = reader(&server, "bob").await;
    assert_eq!(
        expect_history_texts(&mut bob, 3).await,
        ["message 3", "message 4", "message 5"]
    );
    alice.send("now").await;
    assert_eq!(expect_live(&mut bob).await, "now");
}

/// `/join ROOM` replays that room's history, not the lobby's.
async fn joining_a_room_replays_that_rooms_history(target: Target) {
    let server = start(target, &[]).await;
    let [mut alice, mut carol] = ChatClient::everyone(&server, ["alice", "carol"]).await;
    alice.join("games").await;
    carol.expect("left").await;
    alice.send("in games").await;
    carol.send("in the lobby").await;
    settled(&mut alice).await;
    settled(&mut carol).await;
    let mut bob = reader(&server, "bob").await;
    assert_eq!(expect_history(&mut bob).await, "in the lobby");
    bob.join("games").await;
    assert_eq!(expect_history(&mut bob).await, "in games");
    bob.expect_quiet().await;
}

/// `/history N` gives the room's last N messages again, as history; in a room where nothing has
/// been said, an `info` says so.
async fn history_on_demand_gives_the_last_n(target: Target) {
    let server = start(target, &["--history", "0"]).await;
    let [mut alice] = ChatClient::everyone(&server, ["alice"]).await;
    let mut bob = reader(&server, "bob").await;
    alice.expect("joined").await;
    bob.send("/history").await;
    let info = bob.expect("info").await;
    assert!(
        field(&info, "text").contains("nothing has been said"),
        "{info}"
    );
    for text in ["one", "two", "three"] {
        alice.send(text).await;
        assert_eq!(expect_live(&mut bob).await, text);
    }
    bob.send("/history 2").await;
    assert_eq!(expect_history_texts(&mut bob, 2).await, ["two", "three"]);
    bob.send("/history 0").await;
    assert!(bob.expect_error().await.contains("from 1 to 1000"));
}

/// `--history 0`: a joiner gets no history, and its live messages come at once.
async fn history_zero_replays_nothing_on_join(target: Target) {
    let server = start(target, &["--history", "0"]).await;
    let [mut alice] = ChatClient::everyone(&server, ["alice"]).await;
    alice.send("before bob").await;
    settled(&mut alice).await;
    let mut bob = reader(&server, "bob").await;
    alice.expect("joined").await;
    alice.send("after bob").await;
    assert_eq!(expect_live(&mut bob).await, "after bob");
}

/// A private message is kept for its two parties only: no room's history shows it, to a third
/// client, nor to one who takes the recipient's name once the recipient has gone (a name is not
/// an identity), nor to the parties themselves (this chapter replays rooms only).
async fn a_private_message_is_in_nobody_elses_history(target: Target) {
    let server = start(target, &[]).await;
    let [mut alice, mut bob] = ChatClient::everyone(&server, ["alice", "bob"]).await;
    alice.send("public before").await;
    bob.expect_chat("alice", "public before").await;
    alice.send("/msg bob the secret").await;
    bob.expect("private").await;
    alice.send("public after").await;
    bob.expect_chat("alice", "public after").await;
    drop(bob);
    alice.expect("left").await;
    let mut carol = reader(&server, "carol").await;
    let mut seen = expect_history_texts(&mut carol, 2).await;
    carol.nick("bob").await;
    carol.send("/history 1000").await;
    seen.extend(expect_history_texts(&mut carol, 2).await);
    assert_eq!(
        seen,
        [
            "public before",
            "public after",
            "public before",
            "public after"
        ],
        "the private message must be in no history"
    );
    carol.expect_quiet().await;
}

/// The seam, under load: one client talks without pause while others join one after another.
/// Each joiner's history and live messages together are every message from the first to the
/// last, each once, in order: none lost, none repeated where the history ends and the live
/// messages begin.
async fn joiners_see_no_gap_and_no_repeat_while_someone_talks(target: Target) {
    const MESSAGES: u32 = 600;
    const JOINERS: usize = 6;
    let server = start(target, &["--history", "1000"]).await;
    let url = server.ws_url();
    let [mut talker] = ChatClient::everyone(&server, ["talker"]).await;
    let talking = tokio::spawn(async move {
        for n in 1..=MESSAGES {
            talker.send(&n.to_string()).await;
            if n % 50 == 0 {
                tokio::task::yield_now().await;
            }
        }
        talker
    });
    let mut joiners = Vec::new();
    for j in 0..JOINERS {
        let url = url.clone();
        joiners.push(tokio::spawn(async move {
            let label = format!("joiner {j}");
            let mut client = ChatClient::connect_url(&url, &label).await;
            client.read_history();
            let mut numbers = Vec::new();
            let mut history_ended = false;
            while numbers.last() != Some(&MESSAGES) {
                let message = client.next().await;
                if kind(&message) != "chat" {
                    continue; // another joiner came
                }
                let historical = is_history(&message);
                assert!(
                    !(historical && history_ended),
                    "{label}: history after a live message: {message}"
                );
                history_ended |= !historical;
                numbers.push(field(&message, "text").parse::<u32>().unwrap());
            }
            (label, numbers)
        }));
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    let _talker = tokio::time::timeout(WAIT, talking)
        .await
        .expect("the talker should finish within WAIT")
        .expect("the talker should not panic");
    for joiner in joiners {
        let (label, numbers) = tokio::time::timeout(WAIT, joiner)
            .await
            .unwrap_or_else(|_| panic!("a joiner did not hear the last message within {WAIT:?}"))
            .expect("a joiner should not panic");
        let expected: Vec<u32> = (1..=MESSAGES).collect();
        assert!(
            numbers == expected,
            "{label}: expected 1..={MESSAGES} once each, in order; got {} numbers, first \
             difference at {:?}",
            numbers.len(),
            numbers.iter().zip(&expected).position(|(a, b)| a != b)
        );
    }
}

/// The database fails while the server runs (its directory is removed): chat goes on, a client
/// that asks for history is told it is unavailable, the failure is logged once (not once per
/// message) and counted in `/stats`; once the directory is back, history is kept and served
/// again (in a new file). Nothing panics.
async fn a_database_that_fails_costs_history_not_chat(target: Target) {
    const FAILED: &str = "the history database failed";
    let bin = target.bin.expect("this scenario needs the binary");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let db = data.join("history.db");
    let server = ServerProcess::start(bin, &["--db", db.to_str().unwrap()]).await;
    let url = crate::ws_url(server.addr);
    let [mut alice, mut bob] = ChatClient::everyone_url(&url, ["alice", "bob"]).await;
    std::fs::remove_dir_all(&data).unwrap();
    for n in 1..=20 {
        alice.send(&format!("while it is gone {n}")).await;
        bob.expect_chat("alice", &format!("while it is gone {n}"))
            .await;
    }
    bob.read_history();
    bob.send("/history").await;
    let error = bob.expect_error().await;
    assert!(error.contains("unavailable"), "{error}");
    let stats = crate::http::get(server.addr, "/stats").await;
    let stats: serde_json::Value = serde_json::from_str(&stats.body).unwrap();
    assert!(
        stats["history_failures"].as_u64().unwrap_or_default() >= 1,
        "/stats should count the failures: {stats}"
    );
    std::fs::create_dir(&data).unwrap();
    // Writing resumes once the storage tries the file again: say something and ask for it back
    // until it comes back from the history (each try is one round trip; RETRY is 500 ms).
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        alice.send("are you back?").await;
        bob.expect_chat("alice", "are you back?").await;
        bob.send("/history 1").await;
        let answer = bob.next().await;
        if is_history(&answer) && field(&answer, "text") == "are you back?" {
            break;
        }
        assert_eq!(kind(&answer), "error", "while it is away: {answer}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the history should be kept again within {WAIT:?} of the directory's return"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The log is read from a pipe: wait for the line of the recovery to come through it.
    let log = crate::wait_until(
        WAIT,
        || std::future::ready(server.stderr()),
        |log| log.contains("the history database is back"),
    )
    .await
    .unwrap_or_else(|log| panic!("the recovery should be logged:\n{log}"));
    assert_eq!(
        log.matches(FAILED).count(),
        1,
        "the failure should be logged once, not once per message:\n{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
}

/// The binary prints where it keeps the history, as `history in PATH`.
async fn prints_where_the_history_is_kept(target: Target) {
    let bin = target.bin.expect("this scenario needs the binary");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kept.db");
    let mut server = ServerProcess::start(bin, &["--db", db.to_str().unwrap()]).await;
    assert_eq!(
        server.stdout_line("history in ").await,
        db.to_str().unwrap()
    );
    assert!(db.exists(), "the file is created at start-up");
}

/// Stopped (SIGTERM) and started again on the same file, the server still has what was said,
/// and what is said next comes after it.
async fn a_restart_keeps_the_history(target: Target) {
    let bin = target.bin.expect("this scenario needs the binary");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("history.db");
    let flags = ["--db", db.to_str().unwrap()];
    let mut first = ServerProcess::start(bin, &flags).await;
    let url = crate::ws_url(first.addr);
    let [mut alice] = ChatClient::everyone_url(&url, ["alice"]).await;
    alice.send("said before the restart").await;
    settled(&mut alice).await;
    first.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(first.wait_exit(WAIT).await.success(), "{}", first.stderr());

    let second = ServerProcess::start(bin, &flags).await;
    let url = crate::ws_url(second.addr);
    let mut bob = ChatClient::connect_url(&url, "bob").await;
    bob.read_history();
    assert_eq!(expect_history(&mut bob).await, "said before the restart");
    let [mut alice] = ChatClient::everyone_url(&url, ["alice"]).await;
    alice.send("said after").await;
    assert_eq!(
        field(&bob.expect_past_notices("chat").await, "text"),
        "said after"
    );
    bob.send("/history").await;
    assert_eq!(
        expect_history_texts(&mut bob, 2).await,
        ["said before the restart", "said after"]
    );
}

/// Runs the binary with `--db db` and asserts it stops at start-up with exit code 1 and a
/// message naming the file and containing `reason`, without panicking.
async fn assert_refused_at_startup(bin: &str, db: &Path, reason: &str) {
    let path = db.to_str().unwrap();
    // A held file makes the server wait for SQLite's busy timeout, once per statement it tries:
    // half a second on a quiet machine, several on a loaded one; a hang still fails.
    let run = run_to_end_within(
        bin,
        &["--addr", "127.0.0.1:0", "--db", path],
        STARTUP_REFUSAL,
    )
    .await;
    assert_eq!(
        run.status.code(),
        Some(1),
        "--db {path} should stop the server with exit code 1:\n{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(path) && run.stderr.contains(reason),
        "the error should name {path} and say {reason:?}:\n{}",
        run.stderr
    );
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

/// A database path in a directory that does not exist: exit code 1 and a sentence saying so.
async fn a_database_path_in_a_missing_directory_is_refused(target: Target) {
    let bin = target.bin.expect("this scenario needs the binary");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("no-such-dir").join("history.db");
    assert_refused_at_startup(bin, &db, "does not exist").await;
}

/// A file that is not a database: exit code 1, and the file is left as it was.
async fn a_file_that_is_not_a_database_is_refused(target: Target) {
    let bin = target.bin.expect("this scenario needs the binary");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("notes.txt");
    let notes = "my notes, not a database\n".repeat(100);
    std::fs::write(&db, &notes).unwrap();
    assert_refused_at_startup(bin, &db, "not a database").await;
    assert_eq!(std::fs::read_to_string(&db).unwrap(), notes);
}

/// A file that a running server holds: a second server on it stops at start-up, saying the file
/// is locked, and the first goes on.
async fn a_database_held_by_another_server_is_refused(target: Target) {
    let bin = target.bin.expect("this scenario needs the binary");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("history.db");
    let mut first = ServerProcess::start(bin, &["--db", db.to_str().unwrap()]).await;
    // `listening on` comes before the database is opened; `history in` after: only then is the
    // file held (on a busy machine the second server could otherwise take it first).
    first.stdout_line("history in").await;
    assert_refused_at_startup(bin, &db, "locked").await;
    let [mut alice, mut bob] =
        ChatClient::everyone_url(&crate::ws_url(first.addr), ["alice", "bob"]).await;
    alice.send("still here").await;
    bob.expect_chat("alice", "still here").await;
}

/// `--history` above 1000 and `--history-keep 0` are flag errors.
async fn absurd_history_flags_are_refused(target: Target) {
    let bin = target.bin.expect("this scenario needs the binary");
    crate::process::assert_flag_refused(bin, &["--history", "1001"], "--history").await;
    crate::process::assert_flag_refused(bin, &["--history-keep", "0"], "--history-keep").await;
    crate::process::assert_flag_refused(bin, &["--history", "lots"], "--history").await;
}

/// A terminal client gets the history too, each line starting with its time: `(HH:MM) `.
async fn a_terminal_gets_history_as_lines_with_their_time(target: Target) {
    let bin = target.bin.expect("this scenario needs the binary");
    let mut server = ServerProcess::start(bin, &["--tcp", "127.0.0.1:0"]).await;
    let tcp = server.stdout_line("tcp listening on ").await;
    let url = crate::ws_url(server.addr);
    let [mut alice, mut witness] = ChatClient::everyone_url(&url, ["alice", "witness"]).await;
    alice.send("hello terminals").await;
    witness.expect_chat("alice", "hello terminals").await;
    let mut terminal = LineClient::connect(tcp.parse().unwrap(), "terminal").await;
    terminal.read_history();
    terminal.expect_prefix("* you are guest-").await;
    terminal.expect_prefix("* in lobby: ").await;
    let line = terminal.next().await;
    assert!(
        crate::tcp::is_history_line(&line) && line.ends_with(") [lobby] alice: hello terminals"),
        "expected `(HH:MM) [lobby] alice: hello terminals`, got {line:?}"
    );
}
