//! Chapter 11's runs: two servers that share one Redis make one chat, and a Redis that goes away
//! under them, and comes back.
//!
//! Each run starts its own `redis-server` on a free port (the stage tests' [`RedisServer`]: a
//! directory of its own, nothing saved to disk), so a run never meets another's data, and the
//! outage is a real process killed and started again.

use std::{net::SocketAddr, path::Path, time::Duration};

use anyhow::{Context, Result, bail};
use stage_tests::{QUIET, redis::RedisServer};

use super::{
    Run, Transcript,
    ch09::Terminal,
    harness::{Ctx, Script, Server, WAIT, curl_body},
};

pub const RUNS: &[Run] = &[
    Run {
        name: "11-two-chats",
        about: "chapter 10: two servers side by side are two chats; a terminal on each cannot see, hear or reach the other, and both may be called ann",
        measures: false,
        go: |ctx| Box::pin(two_chats(ctx)),
    },
    Run {
        name: "11-two-servers",
        about: "chapter 11: two servers share one redis-server; a terminal on each talks across, sees the other in /who, whispers across with /msg, and a newcomer reads a history said on both",
        measures: false,
        go: |ctx| Box::pin(two_servers(ctx)),
    },
    Run {
        name: "11-outage",
        about: "chapter 11: redis-server is killed under two servers; each goes on serving its own clients, tells them once and counts what it could not publish; redis-server is started again and the chat crosses again",
        measures: false,
        go: |ctx| Box::pin(outage(ctx)),
    },
    Run {
        name: "11-load",
        about: "chapter 11 under fanout-load's s1: one instance on Redis, then two on one Redis with the clients spread over both; deliveries/s, lost, p50/p99 and the cross-server p99 side by side",
        measures: true,
        go: |ctx| Box::pin(super::ch11_load::load(ctx)),
    },
];

/// The chapter's binary.
pub(super) const BIN: &str = "ch11-many-servers";

/// Where the second server listens in record mode, beside the first's default `:3000` (and its
/// own port, not 3001, which a reader following the earlier chapters gave to `--tcp`).
pub(super) const SECOND_ADDR: &str = "127.0.0.1:3002";

/// `$ redis-server …`: the command line the run's Redis was started with.
pub(super) fn redis_command(redis: &RedisServer) -> String {
    format!(
        "$ redis-server --port {} --bind 127.0.0.1 --save \"\" --appendonly no",
        redis.port
    )
}

/// One server of the pair: the process, its terminals' address, and what it printed.
struct Instance {
    server: Server,
    tcp: SocketAddr,
    startup: Vec<String>,
}

/// Starts a server with `--redis URL --tcp 127.0.0.1:0`; the second one (`second`) on
/// [`SECOND_ADDR`] in record mode (port 0 in shape mode, as every run's server).
async fn instance(ctx: &Ctx, bin: &Path, url: &str, second: bool) -> Result<Instance> {
    let mut flags: Vec<&str> = Vec::new();
    if second && ctx.mode == super::Mode::Record {
        flags.extend(["--addr", SECOND_ADDR]);
    }
    flags.extend(["--redis", url, "--tcp", "127.0.0.1:0"]);
    let server = ctx.start(bin, &flags).await?;
    // The command as the reader types it: the second server's address is named (in shape mode
    // it is the port the OS gave, which has the same shape).
    let shown = if second {
        format!("--addr {} --redis {url} --tcp 127.0.0.1:0", server.addr)
    } else {
        format!("--redis {url} --tcp 127.0.0.1:0")
    };
    let instance = server.wait_for_stdout("instance ").await?;
    let tcp_line = server.wait_for_stdout("tcp listening on ").await?;
    let tcp = tcp_line
        .parse()
        .context("the address after `tcp listening on`")?;
    let startup = vec![
        format!("$ cargo run -p {BIN} -- {shown}"),
        server.listening.clone(),
        format!("instance {instance}"),
        format!("tcp listening on {tcp_line}"),
    ];
    Ok(Instance {
        server,
        tcp,
        startup,
    })
}

/// A number of the server's `/stats`.
pub(super) async fn stat(server: &Server, name: &str) -> Result<u64> {
    let response = stage_tests::http::get(server.addr, "/stats").await;
    let json: serde_json::Value = serde_json::from_str(&response.body)
        .with_context(|| format!("/stats is not JSON: {:?}", response.body))?;
    json.get(name)
        .and_then(serde_json::Value::as_u64)
        .with_context(|| format!("/stats has no number {name:?}: {json}"))
}

/// Waits (at most [`WAIT`]) until `/stats` of `server` says `name` is at least `least`. The
/// servers find each other on their own time (a heartbeat, a `Hello` answered), with no line a
/// run could wait for, so it asks, as the stage tests do.
pub(super) async fn wait_for_stat(server: &Server, name: &str, least: u64) -> Result<()> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let value = stat(server, name).await?;
        if value >= least {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "/stats of {} says {name} is {value} after {WAIT:?}, not {least}",
                server.addr
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A terminal on `tcp` that takes the name `name`, and has read everything up to the `/who`
/// line that follows it: its history included (which comes before that line).
async fn named(script: &Script, tcp: SocketAddr, name: &'static str) -> Terminal {
    let mut terminal = Terminal::connect(script, tcp, name).await;
    terminal.read("in lobby:").await;
    terminal.send(&format!("/nick {name}")).await;
    terminal.read(&format!("you are {name},")).await;
    terminal.read("in lobby:").await;
    terminal
}

/// How long a run lets one server's news reach the other before a client there acts on it. The
/// news travels through Redis in about a millisecond, but nothing the other server's clients can
/// read says it has arrived: a newcomer's welcome lists whoever its server knows of by then.
const ACROSS: Duration = Duration::from_millis(200);

/// Gives the news of one server the time to reach the other (see [`ACROSS`]).
async fn across() {
    tokio::time::sleep(ACROSS).await;
}

/// Nothing arrives at `terminal` for a moment: noted as what the person there sees.
async fn quiet(terminal: &mut Terminal, what: &str) -> Result<()> {
    if let Some(line) = terminal.client.next_within(QUIET).await {
        bail!("{}: expected nothing, got {line:?}", terminal.name);
    }
    terminal.script.note(format!("{}: ({what})", terminal.name));
    Ok(())
}

/// Chapter 10, the failure this chapter fixes: two servers, each with its own database, are two
/// chats.
async fn two_chats(ctx: Ctx) -> Result<Transcript> {
    const CH10: &str = "ch10-history";
    let bin = ctx.bin(CH10).await?;
    let dir = ctx.scratch()?;
    let mut out = Transcript::default();
    let mut servers = Vec::new();
    let mut startup = Vec::new();
    for (db, second) in [("first.db", false), ("second.db", true)] {
        let mut flags: Vec<&str> = Vec::new();
        if second && ctx.mode == super::Mode::Record {
            flags.extend(["--addr", SECOND_ADDR]);
        }
        flags.extend(["--db", db, "--tcp", "127.0.0.1:0"]);
        let server = ctx.start_in(&dir, &bin, &flags, "info").await?;
        let shown = if second {
            format!("--addr {} --db {db} --tcp 127.0.0.1:0", server.addr)
        } else {
            format!("--db {db} --tcp 127.0.0.1:0")
        };
        let history = server.wait_for_stdout("history in ").await?;
        let tcp_line = server.wait_for_stdout("tcp listening on ").await?;
        let tcp: SocketAddr = tcp_line
            .parse()
            .context("the address after `tcp listening on`")?;
        startup.extend([
            format!("$ cargo run -p {CH10} -- {shown}"),
            server.listening.clone(),
            format!("history in {history}"),
            format!("tcp listening on {tcp_line}"),
        ]);
        servers.push((server, tcp));
    }
    out.section("start", startup);
    let script = Script::default();
    let mut ann = named(&script, servers[0].1, "ann").await;
    let mut bob = named(&script, servers[1].1, "bob").await;
    bob.send("/who").await;
    bob.read("in lobby:").await;
    ann.send("bob, are you there?").await;
    quiet(&mut bob, "nothing").await?;
    ann.send("/msg bob psst").await;
    ann.read("! ").await;
    let mut other = Terminal::connect(&script, servers[1].1, "also-ann").await;
    other.read("in lobby:").await;
    other.send("/nick ann").await;
    other.read("you are ann,").await;
    out.section("apart", script.lines());
    drop((ann, bob, other, servers));
    Ok(out)
}

/// Two servers on one Redis: a terminal on each, talking across.
async fn two_servers(ctx: Ctx) -> Result<Transcript> {
    let bin = ctx.bin(BIN).await?;
    let redis = RedisServer::start().await;
    let url = redis.url();
    let mut out = Transcript::default();
    out.section("redis", vec![redis_command(&redis)]);
    let a = instance(&ctx, &bin, &url, false).await?;
    out.section("first", a.startup.clone());
    let b = instance(&ctx, &bin, &url, true).await?;
    out.section("second", b.startup.clone());
    wait_for_stat(&a.server, "peers", 1).await?;
    wait_for_stat(&b.server, "peers", 1).await?;

    let script = Script::default();
    let mut ann = named(&script, a.tcp, "ann").await;
    across().await;
    let mut bob = Terminal::connect(&script, b.tcp, "bob").await;
    bob.read("in lobby:").await;
    ann.read("joined lobby").await;
    bob.send("/nick bob").await;
    bob.read("in lobby:").await;
    ann.read("is now bob").await;
    bob.send("hello from the second server").await;
    ann.read("hello from the second server").await;
    ann.send("hello from the first").await;
    bob.read("hello from the first").await;
    bob.send("/who").await;
    bob.read("in lobby:").await;
    let mut tom = Terminal::connect(&script, b.tcp, "tom").await;
    tom.read("in lobby:").await;
    tom.send("/nick Ann").await;
    tom.read("! ").await;
    ann.read("joined lobby").await;
    ann.send("/join games").await;
    ann.read("in games:").await;
    bob.send("/msg ann a word across servers").await;
    ann.read("a word across").await;
    out.section("chat", script.lines());

    // A newcomer on the first server reads the lobby's history: one stream in Redis, written by
    // both servers.
    let later = Script::default();
    let mut eve = Terminal::connect(&later, a.tcp, "eve").await;
    eve.client.read_history();
    eve.read("hello from the first").await;
    out.section("history", later.lines());
    out.section("stats", curl_body(&a.server, "/stats").await);
    drop((ann, bob, tom, eve));
    Ok(out)
}

/// Redis is killed under two servers, and started again.
async fn outage(ctx: Ctx) -> Result<Transcript> {
    let bin = ctx.bin(BIN).await?;
    let mut redis = RedisServer::start().await;
    let url = redis.url();
    let mut out = Transcript::default();
    out.section("redis", vec![redis_command(&redis)]);
    let a = instance(&ctx, &bin, &url, false).await?;
    let b = instance(&ctx, &bin, &url, true).await?;
    let mut startup = a.startup.clone();
    startup.extend(b.startup.iter().cloned());
    out.section("start", startup);
    wait_for_stat(&a.server, "peers", 1).await?;
    wait_for_stat(&b.server, "peers", 1).await?;

    let script = Script::default();
    let mut ann = named(&script, a.tcp, "ann").await;
    let mut carl = named(&script, a.tcp, "carl").await;
    ann.read("is now carl").await;
    across().await;
    let mut bob = named(&script, b.tcp, "bob").await;
    ann.read("is now bob").await;
    carl.read("is now bob").await;
    bob.send("all three of us").await;
    ann.read("all three of us").await;
    carl.read("all three of us").await;

    script.note(format!("· $ kill -9 <redis-server on port {}>", redis.port));
    redis.stop();
    for terminal in [&mut ann, &mut carl, &mut bob] {
        terminal.read("out of reach").await;
    }
    ann.send("carl, can you read me?").await;
    carl.read("can you read me?").await;
    bob.send("anyone there?").await;
    quiet(&mut ann, "nothing from bob").await?;
    bob.send("/who").await;
    bob.read("in lobby:").await;
    wait_for_stat(&a.server, "unpublished", 1).await?;
    out.section("apart", script.lines());
    out.section("stats", curl_body(&a.server, "/stats").await);

    let back = Script::default();
    back.note("· $ redis-server … (the same command: an empty Redis on the same port)".to_string());
    for terminal in [&mut ann, &mut carl, &mut bob] {
        terminal.script = back.clone();
    }
    redis.restart().await;
    for terminal in [&mut ann, &mut carl, &mut bob] {
        terminal.read("reached again").await;
    }
    wait_for_stat(&a.server, "peers", 1).await?;
    wait_for_stat(&b.server, "peers", 1).await?;
    bob.send("back together").await;
    ann.read("back together").await;
    carl.read("back together").await;
    // ann's answer leaves her server after its roster (sent when bob's server said `Hello`), so
    // by the time bob reads it, his server knows who is over there again.
    ann.send("welcome back").await;
    bob.read("welcome back").await;
    carl.read("welcome back").await;
    bob.send("/who").await;
    bob.read("in lobby:").await;
    out.section("together", back.lines());
    out.section(
        "log",
        a.server
            .log_matching(&["redis is out of reach", "redis answers"]),
    );
    drop((ann, carl, bob));
    Ok(out)
}
