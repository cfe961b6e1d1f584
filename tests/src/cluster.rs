//! Stage 11 onwards: many servers. With `--redis URL`, servers that share a Redis make one chat:
//! a client of one hears the clients of the others in its room, sees them in `/who` and
//! `/rooms`, reaches them with `/msg`, cannot take a name one of them holds, and gets the same
//! history whichever server it joins. Each sender's messages arrive in the order it sent them.
//! When Redis goes away, every server goes on serving its own clients, tells them once, and when
//! Redis is back, the servers find each other again by themselves.
//!
//! Every scenario starts its own `redis-server` (see `redis.rs`) and two or three servers of the
//! target in this process, each with `--redis` and the target's base flags.

use std::time::Duration;

use futures_util::SinkExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::{
    ServerProcess, Target, TestServer, WAIT,
    chat::{ChatClient, field, kind, members},
    http,
    redis::RedisServer,
    scenarios,
};

pub const SCENARIOS: &[crate::Scenario] = scenarios![
    a_message_reaches_the_room_on_every_server,
    who_and_rooms_count_the_clients_of_every_server,
    a_private_message_reaches_a_client_of_another_server,
    a_name_held_on_one_server_is_taken_on_every_server,
    lines_sent_after_a_nick_wait_for_its_claim,
    each_senders_order_holds_across_servers,
    the_history_is_the_same_on_every_server,
    without_redis_the_servers_keep_their_own_clients_and_find_each_other_again,
    metrics_show_whether_redis_answers_and_what_could_not_be_published,
    a_name_taken_on_two_servers_while_redis_was_away_stays_with_one,
    a_server_that_shuts_down_lets_its_names_go_at_once,
    servers_started_without_redis_serve_alone_then_find_each_other,
    @binary a_server_that_dies_leaves_and_frees_its_names,
    @binary a_redis_flag_that_is_not_a_redis_url_is_refused,
];

/// A Redis and `n` servers of `target` sharing it, each of which has heard from all the others
/// (so each is subscribed, and knows the others' clients from now on).
async fn cluster<const N: usize>(target: Target) -> (RedisServer, [TestServer; N]) {
    let redis = RedisServer::start().await;
    let url = redis.url();
    let mut servers = Vec::with_capacity(N);
    for _ in 0..N {
        servers.push(TestServer::start_with(target, &["--redis", &url]).await);
    }
    for server in &servers {
        wait_for_peers(server.addr, N - 1).await;
    }
    match servers.try_into() {
        Ok(servers) => (redis, servers),
        Err(_) => unreachable!("one server per place"),
    }
}

/// A number of `/stats`.
async fn stat(addr: std::net::SocketAddr, name: &str) -> u64 {
    let response = http::get(addr, "/stats").await;
    let json: Value = serde_json::from_str(&response.body)
        .unwrap_or_else(|err| panic!("GET /stats should be JSON ({err}): {:?}", response.body));
    json.get(name)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("/stats should have an integer {name:?}: {json}"))
}

/// Waits until the server at `addr` has heard from `n` other servers (`/stats`: `peers`): they
/// find each other on their own time, with no signal a test could wait on.
async fn wait_for_peers(addr: std::net::SocketAddr, n: usize) {
    let n = n as u64;
    let heard = crate::wait_until(WAIT, || stat(addr, "peers"), |peers| *peers == n).await;
    assert!(
        heard.is_ok(),
        "the server at {addr} should hear from {n} other servers, heard from {:?}",
        heard
    );
}

/// The next chat message of `client`, past the notices of others coming and going, must be
/// `from`'s `text`.
async fn expect_said(client: &mut ChatClient, from: &str, text: &str) {
    let message = client.expect_past_notices("chat").await;
    assert_eq!(
        (field(&message, "from"), field(&message, "text")),
        (from, text),
        "{}: wrong chat message {message}",
        client.label()
    );
}

/// The next `info` of `client`, past notices, must contain `part`.
async fn expect_info(client: &mut ChatClient, part: &str) {
    let info = client.expect_past_notices("info").await;
    assert!(
        field(&info, "text").contains(part),
        "{}: expected an info about {part:?}, got {info}",
        client.label()
    );
}

/// Waits until `client`'s server has answered everything before: its history (read when it
/// joined) included, since what the server tells a client waits behind its history. Stopping
/// Redis before then would turn that answer into a word that the history is unavailable.
async fn settled(client: &mut ChatClient) {
    client.send("/who").await;
    client.expect_past_notices("who").await;
}

/// A chat client called `name` on `server`.
async fn named(server: &TestServer, name: &str) -> ChatClient {
    let [client] = ChatClient::everyone(server, [name]).await;
    client
}

/// `speaker` says `text`, and `listener` (on another server) hears it. Since a server publishes
/// its clients' news in order, and the others receive it in that order, whatever `speaker`'s
/// server published before (its arrival, its name) has reached `listener`'s server too.
async fn heard_across(speaker: &mut ChatClient, listener: &mut ChatClient, text: &str) {
    speaker.send(text).await;
    let name = speaker.name.clone();
    expect_said(listener, &name, text).await;
}

/// What alice says on one server, bob hears on the other, and the other way round; nobody hears
/// their own words back, nor anything twice.
async fn a_message_reaches_the_room_on_every_server(target: Target) {
    let (_redis, [a, b]) = cluster::<2>(target).await;
    let mut alice = named(&a, "alice").await;
    let mut bob = named(&b, "bob").await;
    heard_across(&mut alice, &mut bob, "hello from a").await;
    heard_across(&mut bob, &mut alice, "hello from b").await;
    // The local room-mate hears it once too, not once more through Redis.
    let mut carol = named(&a, "carol").await;
    heard_across(&mut bob, &mut carol, "to both of you").await;
    expect_said(&mut alice, "bob", "to both of you").await;
    for client in [&mut alice, &mut bob, &mut carol] {
        client.skip_notices().await;
        client.expect_quiet().await;
    }
}

/// `/who` lists the room's members on every server, `/rooms` counts them, and a client of
/// another server moving to a room is seen there.
async fn who_and_rooms_count_the_clients_of_every_server(target: Target) {
    let (_redis, [a, b]) = cluster::<2>(target).await;
    let mut alice = named(&a, "alice").await;
    let mut bob = named(&b, "bob").await;
    heard_across(&mut bob, &mut alice, "here").await;
    alice.send("/who").await;
    let who = alice.expect_past_notices("who").await;
    assert_eq!(members(&who), ["alice", "bob"], "{who}");
    bob.join("games").await;
    // Alice is told bob left the lobby, as she would be of a client of her own server.
    let left = alice.expect("left").await;
    assert_eq!(field(&left, "name"), "bob", "{left}");
    alice.send("/rooms").await;
    let rooms = alice.expect_past_notices("rooms").await;
    let counts: Vec<(String, u64)> = rooms
        .get("rooms")
        .and_then(Value::as_array)
        .expect("a list of rooms")
        .iter()
        .map(|room| {
            (
                field(room, "name").to_string(),
                room["members"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        counts,
        [("games".to_string(), 1), ("lobby".to_string(), 1)],
        "{rooms}"
    );
    // And joining bob in games, alice sees him there.
    let present = alice.join("games").await;
    assert_eq!(present, ["alice", "bob"]);
}

/// `/msg` reaches a client of another server, and only that client.
async fn a_private_message_reaches_a_client_of_another_server(target: Target) {
    let (_redis, [a, b]) = cluster::<2>(target).await;
    let mut alice = named(&a, "alice").await;
    let mut carol = named(&a, "carol").await;
    let mut bob = named(&b, "bob").await;
    heard_across(&mut bob, &mut alice, "here").await;
    expect_said(&mut carol, "bob", "here").await;
    alice.send("/msg Bob psst").await;
    let private = bob.expect_past_notices("private").await;
    assert_eq!(
        (field(&private, "from"), field(&private, "text")),
        ("alice", "psst"),
        "{private}"
    );
    bob.send("/msg alice back at you").await;
    let private = alice.expect_past_notices("private").await;
    assert_eq!(field(&private, "text"), "back at you", "{private}");
    carol.skip_notices().await;
    carol.expect_quiet().await;
}

/// A name held on one server cannot be taken on another, whatever its case; once its holder has
/// gone, it can.
async fn a_name_held_on_one_server_is_taken_on_every_server(target: Target) {
    let (_redis, [a, b]) = cluster::<2>(target).await;
    let alice = named(&a, "alice").await;
    let mut other = ChatClient::connect(&b, "other").await;
    for name in ["alice", "ALICE"] {
        other.send(&format!("/nick {name}")).await;
        let error = other.expect_past_notices("error").await;
        assert!(
            field(&error, "text").contains("taken"),
            "/nick {name} on the other server: {error}"
        );
    }
    drop(alice);
    // Her server lets the name go before it tells the others she left.
    let left = other.expect_past_notices("left").await;
    assert_eq!(field(&left, "name"), "alice", "{left}");
    other.nick("alice").await;
}

/// Sends `lines` in one write: the server reads them back to back, so nothing (the answer to a
/// claim, say) has time to come in between, as it may when each line waits for the one before.
async fn send_at_once(client: &mut ChatClient, lines: &[&str]) {
    let label = client.label().to_string();
    let stream = client.client().stream();
    let all = async {
        for line in lines {
            stream.feed(Message::text(*line)).await?;
        }
        stream.flush().await
    };
    tokio::time::timeout(WAIT, all)
        .await
        .unwrap_or_else(|_| panic!("{label}: sending took longer than {WAIT:?}"))
        .unwrap_or_else(|err| panic!("{label}: sending failed: {err}"));
}

/// A client's lines are carried out in the order it sent them, even while its name is being
/// claimed in Redis: `/join` sent right behind `/nick` arrives in the room under the new name,
/// and a line said right behind `/nick` is said under it, on this server and the others.
async fn lines_sent_after_a_nick_wait_for_its_claim(target: Target) {
    let (_redis, [a, b]) = cluster::<2>(target).await;
    let mut carol = named(&a, "carol").await;
    let mut dave = named(&b, "dave").await;
    carol.join("games").await;
    dave.join("games").await;
    heard_across(&mut carol, &mut dave, "ready").await;
    heard_across(&mut dave, &mut carol, "ready too").await;
    let mut newcomer = ChatClient::connect(&a, "newcomer").await;
    settled(&mut newcomer).await;

    send_at_once(&mut newcomer, &["/nick ann", "/join games"]).await;
    for watcher in [&mut carol, &mut dave] {
        let joined = watcher.expect_past_notices("joined").await;
        assert_eq!(
            (field(&joined, "room"), field(&joined, "name")),
            ("games", "ann"),
            "{}: the newcomer's /join came after its /nick, so it should arrive as ann: {joined}",
            watcher.label()
        );
    }
    let welcome = newcomer.expect_past_notices("welcome").await;
    assert_eq!(
        (field(&welcome, "name"), field(&welcome, "room")),
        ("ann", "lobby"),
        "renamed first, in the lobby: {welcome}"
    );
    newcomer.expect_past_notices("who").await;
    newcomer.expect_moved("games").await;

    send_at_once(&mut newcomer, &["/nick annie", "said as annie"]).await;
    for watcher in [&mut carol, &mut dave] {
        expect_said(watcher, "annie", "said as annie").await;
    }
}

/// Two senders on two servers send 200 numbered messages each as fast as they can; a listener
/// on a third server gets each sender's messages in the order they were sent.
async fn each_senders_order_holds_across_servers(target: Target) {
    const COUNT: usize = 200;
    let (_redis, [a, b, c]) = cluster::<3>(target).await;
    let mut alice = named(&a, "alice").await;
    let mut bob = named(&b, "bob").await;
    let mut listener = named(&c, "listener").await;
    heard_across(&mut alice, &mut listener, "ready").await;
    heard_across(&mut bob, &mut listener, "ready").await;
    let send_all = |mut client: ChatClient| async move {
        for n in 0..COUNT {
            client.send(&n.to_string()).await;
        }
        client
    };
    let (alice_sent, bob_sent) =
        tokio::join!(tokio::spawn(send_all(alice)), tokio::spawn(send_all(bob)));
    let (_alice, _bob) = (
        alice_sent.expect("alice sends"),
        bob_sent.expect("bob sends"),
    );
    let mut next = [0usize; 2];
    while next != [COUNT, COUNT] {
        let message = listener.expect_past_notices("chat").await;
        let sender = match field(&message, "from") {
            "alice" => 0,
            "bob" => 1,
            other => panic!("a message from {other}: {message}"),
        };
        assert_eq!(
            field(&message, "text"),
            next[sender].to_string(),
            "the listener should get each sender's messages in order, got {message}"
        );
        next[sender] += 1;
    }
}

/// The history is kept in Redis: a client joining any server gets the same last messages,
/// said on every server.
async fn the_history_is_the_same_on_every_server(target: Target) {
    let (_redis, [a, b]) = cluster::<2>(target).await;
    let mut alice = named(&a, "alice").await;
    let mut bob = named(&b, "bob").await;
    for n in 1..=3 {
        heard_across(&mut alice, &mut bob, &format!("from a {n}")).await;
        heard_across(&mut bob, &mut alice, &format!("from b {n}")).await;
    }
    // Every message was heard live on the other server: its writer had stored it by then.
    let said = [
        "from a 1", "from b 1", "from a 2", "from b 2", "from a 3", "from b 3",
    ];
    for server in [&a, &b] {
        let mut reader = ChatClient::connect(server, "reader").await;
        reader.read_history();
        // On joining, the default length takes all six; on asking, the last four.
        assert_eq!(history_texts(&mut reader, 6).await, said);
        reader.send("/history 4").await;
        assert_eq!(history_texts(&mut reader, 4).await, said[2..]);
    }
}

/// The next `n` messages of `client`, past notices, which must be chat messages from the
/// history: their texts.
async fn history_texts(client: &mut ChatClient, n: usize) -> Vec<String> {
    let mut texts = Vec::new();
    for _ in 0..n {
        let message = client.expect_past_notices("chat").await;
        assert!(
            crate::client::is_history(&message),
            "{}: expected history, got {message}",
            client.label()
        );
        texts.push(field(&message, "text").to_string());
    }
    texts
}

/// Redis goes away: each server tells its clients once, and they go on chatting with the clients
/// of their own server; what could not be published is counted. Redis comes back (empty): the
/// servers find each other within seconds, the chat crosses again, and the names are claimed
/// again, with no restart.
async fn without_redis_the_servers_keep_their_own_clients_and_find_each_other_again(
    target: Target,
) {
    let (mut redis, [a, b]) = cluster::<2>(target).await;
    let mut alice = named(&a, "alice").await;
    let mut carol = named(&a, "carol").await;
    let mut bob = named(&b, "bob").await;
    heard_across(&mut bob, &mut alice, "before").await;
    expect_said(&mut carol, "bob", "before").await;
    for client in [&mut alice, &mut carol, &mut bob] {
        settled(client).await;
    }

    redis.stop();
    for client in [&mut alice, &mut carol, &mut bob] {
        expect_info(client, "out of reach").await;
    }
    alice.send("only here").await;
    expect_said(&mut carol, "alice", "only here").await;
    bob.send("nobody there?").await;
    for (server, who) in [(&a, "alice"), (&b, "bob")] {
        let counted =
            crate::wait_until(WAIT, || stat(server.addr, "unpublished"), |n| *n >= 1).await;
        assert!(
            counted.is_ok(),
            "{who}'s words could not be published: /stats should count them"
        );
    }
    // Told once: nothing more arrives while Redis is away.
    alice.expect_quiet().await;

    redis.restart().await;
    for client in [&mut alice, &mut carol, &mut bob] {
        expect_info(client, "reached again").await;
    }
    wait_for_peers(a.addr, 1).await;
    wait_for_peers(b.addr, 1).await;
    heard_across(&mut alice, &mut bob, "after").await;
    expect_said(&mut carol, "alice", "after").await;
    heard_across(&mut bob, &mut carol, "after too").await;
    // Redis came back empty, and the servers claimed their clients' names again.
    let mut other = ChatClient::connect(&b, "other").await;
    other.send("/nick alice").await;
    let error = other.expect_past_notices("error").await;
    assert!(field(&error, "text").contains("taken"), "{error}");
}

/// `/metrics` shows the bridge: `fanout_redis_connected` is 1 while Redis answers and 0 while
/// it does not, `fanout_bridge_peers` counts the other servers heard from, and what could not be
/// published while Redis was away is counted as `redis_away`, the same number `/stats` calls
/// `unpublished`.
async fn metrics_show_whether_redis_answers_and_what_could_not_be_published(target: Target) {
    let (mut redis, [a, b]) = cluster::<2>(target).await;
    let scrape = crate::metrics::scrape(a.addr).await;
    assert_eq!(
        (
            scrape.count("fanout_redis_connected", &[]),
            scrape.count("fanout_bridge_peers", &[]),
        ),
        (1, 1),
        "a server of two sharing a Redis that answers:\n{}",
        scrape.text
    );
    let mut alice = named(&a, "alice").await;
    let mut bob = named(&b, "bob").await;
    settled(&mut alice).await;
    settled(&mut bob).await;

    redis.stop();
    expect_info(&mut alice, "out of reach").await;
    alice.send("unheard over there").await;
    let away = [("reason", "redis_away")];
    let scrape = crate::wait_until(
        WAIT,
        || crate::metrics::scrape(a.addr),
        |scrape| scrape.count("fanout_bridge_unpublished_total", &away) >= 1,
    )
    .await
    .unwrap_or_else(|scrape| {
        panic!(
            "alice's words could not be published: /metrics should count them:\n{}",
            scrape.text
        )
    });
    assert_eq!(
        (
            scrape.count("fanout_redis_connected", &[]),
            scrape.count("fanout_bridge_peers", &[]),
        ),
        (0, 0),
        "Redis is away, and the other server with it:\n{}",
        scrape.text
    );
    assert_eq!(
        stat(a.addr, "unpublished").await,
        crate::metrics::scrape(a.addr)
            .await
            .total("fanout_bridge_unpublished_total"),
        "/stats and /metrics should agree on what could not be published"
    );

    redis.restart().await;
    expect_info(&mut alice, "reached again").await;
    wait_for_peers(a.addr, 1).await;
    let scrape = crate::metrics::scrape(a.addr).await;
    assert_eq!(
        scrape.count("fanout_redis_connected", &[]),
        1,
        "Redis is back:\n{}",
        scrape.text
    );
}

/// While Redis is away, a name can be taken on each server (it cannot be checked with the
/// others, and the chat goes on); when Redis is back, one of the two keeps it, and the other is
/// told and given a guest name.
async fn a_name_taken_on_two_servers_while_redis_was_away_stays_with_one(target: Target) {
    let (mut redis, [a, b]) = cluster::<2>(target).await;
    let mut alice = ChatClient::connect(&a, "alice").await;
    let mut bob = ChatClient::connect(&b, "bob").await;
    settled(&mut alice).await;
    settled(&mut bob).await;
    redis.stop();
    for client in [&mut alice, &mut bob] {
        expect_info(client, "out of reach").await;
        client.nick("zed").await;
        expect_info(client, "checked with them").await;
    }
    redis.restart().await;
    let mut lost = 0;
    for client in [&mut alice, &mut bob] {
        let info = client.expect_past_notices("info").await;
        if field(&info, "text").contains("took the name zed") {
            lost += 1;
            let welcome = client.expect("welcome").await;
            assert!(field(&welcome, "name").starts_with("guest-"), "{welcome}");
            client.expect("who").await;
            expect_info(client, "reached again").await;
        } else {
            assert!(field(&info, "text").contains("reached again"), "{info}");
        }
    }
    assert_eq!(lost, 1, "exactly one of the two keeps the name");
}

/// A server that shuts down lets its clients' names go on its way out: the other servers' clients
/// can take them at once, not once their claims expire.
async fn a_server_that_shuts_down_lets_its_names_go_at_once(target: Target) {
    let (_redis, [a, b]) = cluster::<2>(target).await;
    let mut alice = named(&a, "alice").await;
    let mut bob = named(&b, "bob").await;
    heard_across(&mut bob, &mut alice, "leaving soon").await;
    b.shutdown().await.expect("the server shuts down cleanly");
    let left = alice.expect_past_notices("left").await;
    assert_eq!(field(&left, "name"), "bob", "{left}");
    alice.nick("bob").await;
}

/// Servers started while Redis is down start anyway, serve their own clients and say that the
/// others are out of reach; once Redis is up, they find each other with no restart.
async fn servers_started_without_redis_serve_alone_then_find_each_other(target: Target) {
    let mut redis = RedisServer::start().await;
    let url = redis.url();
    redis.stop();
    let a = TestServer::start_with(target, &["--redis", &url]).await;
    let b = TestServer::start_with(target, &["--redis", &url]).await;
    let mut alice = ChatClient::connect(&a, "alice").await;
    let mut carol = ChatClient::connect(&a, "carol").await;
    let mut bob = ChatClient::connect(&b, "bob").await;
    for client in [&mut alice, &mut carol, &mut bob] {
        // Each is also told that there is no history to show (it is in Redis), before or after.
        let mut told = Vec::new();
        while told.len() < 2 {
            let info = client.expect_past_notices("info").await;
            told.push(field(&info, "text").to_string());
        }
        told.sort();
        assert!(
            told[0].starts_with("history is unavailable") && told[1].contains("out of reach"),
            "{}: {told:?}",
            client.label()
        );
    }
    heard_across(&mut alice, &mut carol, "just us").await;

    redis.restart().await;
    for client in [&mut alice, &mut carol, &mut bob] {
        expect_info(client, "reached again").await;
    }
    wait_for_peers(a.addr, 1).await;
    wait_for_peers(b.addr, 1).await;
    heard_across(&mut bob, &mut alice, "found you").await;
    expect_said(&mut carol, &bob.name, "found you").await;
}

/// `--redis` with something that is not a Redis URL is a flag error, like any other.
async fn a_redis_flag_that_is_not_a_redis_url_is_refused(target: Target) {
    let Some(bin) = target.bin else { return };
    for bad in ["localhost:6379", "http://127.0.0.1:6379"] {
        crate::process::assert_flag_refused(bin, &["--redis", bad], "--redis").await;
    }
}

/// A server killed without a word (SIGKILL): the others forget its clients once it has been
/// silent for a while (their room is told they left), and its names are free once their claims
/// expire, without anybody's help.
async fn a_server_that_dies_leaves_and_frees_its_names(target: Target) {
    let Some(bin) = target.bin else { return };
    let redis = RedisServer::start().await;
    let url = redis.url();
    let a = TestServer::start_with(target, &["--redis", &url]).await;
    let b = ServerProcess::start(bin, &["--redis", &url]).await;
    wait_for_peers(a.addr, 1).await;
    let mut alice = named(&a, "alice").await;
    let mut bob = ChatClient::connect_url(&crate::ws_url(b.addr), "bob").await;
    bob.nick("bob").await;
    heard_across(&mut bob, &mut alice, "about to go").await;

    b.signal(nix::sys::signal::Signal::SIGKILL);
    // Within the peer timeout (5 s) and a heartbeat, alice hears bob left: longer than a
    // client's usual wait.
    let left = alice
        .client()
        .stream_json_within(Duration::from_secs(10))
        .await
        .expect("alice should hear that bob left, once his server has been silent for 5 s");
    assert_eq!(
        (kind(&left), field(&left, "name")),
        ("left", "bob"),
        "{left}"
    );
    // His claim expires within its lifetime (10 s) of its last refresh: nothing tells alice's
    // server when, so another client asks for the name now and then until it gets it.
    let mut other = ChatClient::connect(&a, "other").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        other.send("/nick bob").await;
        let answer = loop {
            let message = other.next().await;
            if ["welcome", "error"].contains(&kind(&message)) {
                break message;
            }
        };
        if kind(&answer) == "welcome" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "bob's name should be free once his claim expired: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
