//! Chapter 10's runs: history that outlives a restart, a database that goes away under a running
//! server, a flood that ends in Close 1008, a page of another origin refused with 403, and one
//! address over its share of connections refused with 429. (The runs that read `/metrics` are
//! in `ch10_metrics.rs`, listed in the table here.)
//!
//! Every server here keeps its database in a directory of the run's own ([`Ctx::scratch`]), so
//! the `--db` a page shows is the relative path a reader would type.

use std::{net::SocketAddr, time::Duration};

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use nix::sys::signal::Signal;
use stage_tests::{
    Client, Wire,
    faults::{RawClient, Refusal},
    origin::ForeignPage,
};
use tokio_tungstenite::tungstenite::Message;

use super::{
    Check, Run, Transcript,
    ch09::Terminal,
    harness::{Ctx, Script, Server, Tab, WAIT, curl_body},
};

pub const RUNS: &[Run] = &[
    Run {
        name: "10-forgets",
        about: "chapter 09: two terminals talk, the server is stopped and started again, and a newcomer finds the lobby silent",
        measures: false,
        go: |ctx| Box::pin(forgets(ctx)),
    },
    Run {
        name: "10-restart",
        about: "chapter 10: two terminals talk, the server is stopped and started again with the same --db, and a newcomer reads what they said",
        measures: false,
        go: |ctx| Box::pin(restart(ctx)),
    },
    Run {
        name: "10-db-gone",
        about: "chapter 10: the database's directory is removed under a running server; chat goes on, /history says why it cannot answer, and history comes back with the directory",
        measures: false,
        go: |ctx| Box::pin(db_gone(ctx)),
    },
    Run {
        name: "10-flood",
        about: "chapter 10: one client floods, is told once, and is closed with 1008 after the grace; a polite client is not disturbed",
        measures: false,
        go: |ctx| Box::pin(flood(ctx)),
    },
    Run {
        name: "10-origin",
        about: "chapter 10: a page served from another origin opens a WebSocket to the chat and gets 403; the chat's own page, and an origin allowed by flag, get 101",
        measures: false,
        go: |ctx| Box::pin(origin(ctx)),
    },
    Run {
        name: "10-per-ip",
        about: "chapter 10 with --max-connections-per-ip 2: a third connection from one address gets 429, until one of the two leaves",
        measures: false,
        go: |ctx| Box::pin(per_ip(ctx)),
    },
    Run {
        name: "10-metrics",
        about: "chapter 10: two terminals and a browser tab talk, a fourth connection from the same address is refused, and GET /metrics says so",
        measures: false,
        go: |ctx| Box::pin(super::ch10_metrics::metrics(ctx)),
    },
    Run {
        name: "10-load",
        about: "chapter 10 with history on and the limits off, under fanout-load's s1: /metrics scraped before, during and after, and what its counters and histograms say",
        measures: true,
        go: |ctx| Box::pin(super::ch10_metrics::load(ctx)),
    },
];

/// The chapter's binary.
pub(super) const BIN: &str = "ch10-history";

/// `$ cargo run -p ch10-history -- FLAGS` and what the server prints on stdout: where it
/// listens, where it keeps the history, and where terminals connect (with `--tcp`).
pub(super) async fn startup(server: &Server, flags: &[&str]) -> Result<Vec<String>> {
    startup_of(BIN, server, flags).await
}

/// [`startup`] for `package`'s binary; `history in` only for a server given `--db`.
async fn startup_of(package: &str, server: &Server, flags: &[&str]) -> Result<Vec<String>> {
    let mut lines = vec![
        format!("$ cargo run -p {package} -- {}", flags.join(" ")),
        server.listening.clone(),
    ];
    if flags.contains(&"--db") {
        let db = server.wait_for_stdout("history in ").await?;
        lines.push(format!("history in {db}"));
    }
    if flags.contains(&"--tcp") {
        let tcp = server.wait_for_stdout("tcp listening on ").await?;
        lines.push(format!("tcp listening on {tcp}"));
    }
    Ok(lines)
}

/// Where a server started with `--tcp` accepts terminals.
pub(super) async fn tcp_addr(server: &Server) -> Result<SocketAddr> {
    server
        .wait_for_stdout("tcp listening on ")
        .await?
        .parse()
        .context("the address after `tcp listening on`")
}

/// Connects a terminal that reads history lines too, and gives it `name`.
pub(super) async fn named(script: &Script, tcp: SocketAddr, name: &'static str) -> Terminal {
    let mut terminal = Terminal::connect(script, tcp, name).await;
    terminal.client.read_history();
    terminal.read("in lobby:").await;
    terminal.send(&format!("/nick {name}")).await;
    terminal.read(&format!("you are {name},")).await;
    terminal.read("in lobby:").await;
    terminal
}

/// Chapter 09, the failure this chapter fixes: two terminals talk, the server is restarted, and
/// a third terminal finds the lobby as if nothing had ever been said.
async fn forgets(ctx: Ctx) -> Result<Transcript> {
    const CH09: &str = "ch09-rooms";
    let bin = ctx.bin(CH09).await?;
    let flags = ["--tcp", "127.0.0.1:0"];
    let mut out = Transcript::default();
    let before = Script::default();
    let mut server = ctx.start(&bin, &flags).await?;
    out.section("start", startup_of(CH09, &server, &flags).await?);
    let tcp = tcp_addr(&server).await?;
    let mut ann = Terminal::connect(&before, tcp, "ann").await;
    ann.read("in lobby:").await;
    let mut tom = Terminal::connect(&before, tcp, "tom").await;
    tom.read("in lobby:").await;
    ann.read("joined lobby").await;
    ann.send("the meeting moved to 3 pm").await;
    tom.read("3 pm").await;
    before.note("· the server is stopped with Ctrl-C, and started again".to_string());
    server.signal(Signal::SIGINT)?;
    server.wait_exit(WAIT).await?;
    drop((ann, tom));
    let server = ctx.start(&bin, &flags).await?;
    let tcp = tcp_addr(&server).await?;
    let mut eve = Terminal::connect(&before, tcp, "eve").await;
    eve.read("in lobby:").await;
    // Whatever else eve would read comes now or never: a line here fails the run.
    eve.client.expect_quiet().await;
    before.note("eve: (nothing more)".to_string());
    out.section("forgotten", before.lines());
    Ok(out)
}

/// Two terminals talk; the server stops (SIGINT, as Ctrl-C) and starts again on the same file;
/// a third terminal joins and reads what was said, then asks for the last line again.
async fn restart(ctx: Ctx) -> Result<Transcript> {
    let bin = ctx.bin(BIN).await?;
    let dir = ctx.scratch()?;
    let flags = ["--db", "chat.db", "--tcp", "127.0.0.1:0"];
    let mut out = Transcript::default();

    let before = Script::default();
    let mut server = ctx.start_in(&dir, &bin, &flags, "info").await?;
    out.section("start", startup(&server, &flags).await?);
    let tcp = tcp_addr(&server).await?;
    let mut ann = named(&before, tcp, "ann").await;
    let mut tom = Terminal::connect(&before, tcp, "tom").await;
    tom.client.read_history();
    tom.read("in lobby:").await;
    ann.read("joined lobby").await;
    tom.send("/nick tom").await;
    tom.read("in lobby: ann, tom").await;
    ann.read("is now tom").await;
    ann.send("the meeting moved to 3 pm").await;
    tom.read("3 pm").await;
    tom.send("thanks, I will tell the others").await;
    ann.read("tell the others").await;
    out.section("before", before.lines());

    server.signal(Signal::SIGINT)?;
    let status = server.wait_exit(WAIT).await?;
    if !status.success() {
        bail!("the server should exit cleanly on Ctrl-C, it exited with {status}");
    }
    drop((ann, tom));
    out.push(
        "stop",
        server.log_matching(&["shutdown signal", "disconnected"]),
        Check::Kinds,
    );

    let after = Script::default();
    let server = ctx.start_in(&dir, &bin, &flags, "info").await?;
    out.section("again", startup(&server, &flags).await?);
    let tcp = tcp_addr(&server).await?;
    let mut eve = Terminal::connect(&after, tcp, "eve").await;
    eve.client.read_history();
    eve.read("tell the others").await;
    eve.send("/history 1").await;
    eve.read("tell the others").await;
    out.section("after", after.lines());
    Ok(out)
}

/// How long the run waits after the directory is back for the storage task's next try: its
/// `RETRY` (500 ms), and some.
const AFTER_RETRY: Duration = Duration::from_millis(700);

/// The database's directory is removed under a running server, and made again.
async fn db_gone(ctx: Ctx) -> Result<Transcript> {
    let bin = ctx.bin(BIN).await?;
    let dir = ctx.scratch()?;
    let data = dir.join("data");
    std::fs::create_dir(&data)?;
    let flags = ["--db", "data/chat.db", "--tcp", "127.0.0.1:0"];
    let server = ctx.start_in(&dir, &bin, &flags, "info").await?;
    let mut out = Transcript::default();
    out.section("start", startup(&server, &flags).await?);
    let tcp = tcp_addr(&server).await?;
    let script = Script::default();
    let mut ann = named(&script, tcp, "ann").await;
    let mut tom = named(&script, tcp, "tom").await;
    ann.read("is now tom").await;

    ann.send("this goes into the history").await;
    tom.read("into the history").await;
    script.note("· $ rm -r data".to_string());
    std::fs::remove_dir_all(&data)?;
    ann.send("is anybody keeping this?").await;
    tom.read("keeping this").await;
    tom.send("/history").await;
    tom.read("! ").await;
    tom.send("no, but I can read you").await;
    ann.read("read you").await;
    script.note("· $ mkdir data".to_string());
    std::fs::create_dir(&data)?;
    tokio::time::sleep(AFTER_RETRY).await;
    ann.send("and now?").await;
    tom.read("and now?").await;
    tom.send("/history 2").await;
    tom.read("and now?").await;
    out.section("chat", script.lines());
    server
        .wait_for_log("the history database is back", 1)
        .await?;
    out.section("log", server.log_matching(&["history database"]));
    out.section("stats", curl_body(&server, "/stats").await);
    Ok(out)
}

/// The flags of the flood: chapter 10's defaults for the rate, a shorter grace.
fn flood_flags(ctx: &Ctx) -> [&'static str; 6] {
    [
        "--db",
        "chat.db",
        "--rate-limit",
        "10",
        "--rate-limit-grace",
        ctx.pick("3s", "600ms"),
    ]
}

/// One client sends a message every 10 ms, far over `--rate-limit 10`; another says one thing.
async fn flood(ctx: Ctx) -> Result<Transcript> {
    let bin = ctx.bin(BIN).await?;
    let dir = ctx.scratch()?;
    let flags = flood_flags(&ctx);
    let server = ctx.start_in(&dir, &bin, &flags, "info").await?;
    let mut out = Transcript::default();
    out.section("start", startup(&server, &flags).await?);
    let script = Script::default();
    let url = server.ws_url();
    let mut ann = Client::connect_on(&url, "ann", Wire::Plain).await;
    script.note("ann: · open".to_string());
    let mut bob = Client::connect_on(&url, "bob", Wire::Plain).await;
    script.note("bob: · open".to_string());
    let mut mallory = Client::connect_on(&url, "mallory", Wire::Plain).await;
    script.note("mallory: · open".to_string());
    script.note(r#"mallory: → sends "flood 1", "flood 2", … one every 10 ms"#.to_string());

    let started = tokio::time::Instant::now();
    let mut sent = 0u32;
    let mut warnings = 0u32;
    let closed = loop {
        if started.elapsed() > WAIT {
            bail!("mallory flooded for {WAIT:?} and is still connected");
        }
        if mallory
            .stream()
            .send(Message::text(format!("flood {}", sent + 1)))
            .await
            .is_ok()
        {
            sent += 1;
        }
        match tokio::time::timeout(Duration::from_millis(10), mallory.stream().next()).await {
            Err(_) => {}
            Ok(Some(Ok(Message::Text(text)))) => {
                let json: serde_json::Value = serde_json::from_str(text.as_str())?;
                if json["kind"] == "error" {
                    warnings += 1;
                    script.note(format!("mallory: ← error {}", json["text"]));
                }
            }
            Ok(Some(Ok(Message::Close(frame)))) => break frame,
            Ok(Some(Ok(_))) => {}
            Ok(other) => bail!("mallory: the connection ended without a Close: {other:?}"),
        }
    };
    let lasted = started.elapsed().as_secs_f64();
    match closed {
        Some(frame) => script.note(format!(
            "mallory: · closed {} {:?}",
            u16::from(frame.code),
            frame.reason.as_str()
        )),
        None => script.note("mallory: · closed 1005".to_string()),
    }
    let warned = match warnings {
        1 => "once".to_string(),
        n => format!("{n} times"),
    };
    script.note(format!(
        "mallory: sent {sent} messages in {lasted:.1} s and was warned {warned}"
    ));

    // What the others got of it, in order.
    let mut heard = Vec::new();
    while let Some(message) = ann.recv_within(Duration::from_millis(300)).await {
        if let Message::Text(text) = message {
            let json: serde_json::Value = serde_json::from_str(text.as_str())?;
            if json["kind"] == "chat" {
                heard.push(json["text"].as_str().unwrap_or_default().to_string());
            }
        }
    }
    match (heard.first(), heard.last()) {
        (Some(first), Some(last)) => script.note(format!(
            "ann: ← received {} of them, {first:?} to {last:?}",
            heard.len()
        )),
        _ => bail!("ann heard nothing of mallory's messages"),
    }
    ann.send_text("that was loud").await;
    script.note(r#"ann: → sent "that was loud""#.to_string());
    loop {
        let Message::Text(text) = bob.recv().await else {
            continue;
        };
        if text.as_str().contains("that was loud") {
            script.note(r#"bob: ← received "that was loud""#.to_string());
            break;
        }
    }
    out.section("clients", script.lines());
    out.section("log", server.log_matching(&["rate-limit"]));
    Ok(out)
}

/// `$ curl -si` with the headers of a WebSocket handshake (and `extra`), as the page shows it.
fn upgrade_command(addr: SocketAddr, extra: &[(&str, &str)]) -> String {
    let mut command = String::from("$ curl -si");
    for (name, value) in extra {
        command.push_str(&format!(" -H '{name}: {value}'"));
    }
    command.push_str(&format!(
        " -H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' -H \
         'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' http://{addr}/ws"
    ));
    command
}

/// What a handshake got: the refusal's head (without `date`) and body, or the status line of
/// the `101` (the connection is then left open, as `curl` would leave it, and dropped).
async fn handshake(addr: SocketAddr, name: &str, headers: &[(&str, &str)]) -> Vec<String> {
    let mut lines = vec![upgrade_command(addr, headers)];
    match RawClient::try_connect_with_headers(addr, name, headers).await {
        Ok(_accepted) => lines.push("HTTP/1.1 101 Switching Protocols".to_string()),
        Err(Refusal { head, body, .. }) => {
            lines.extend(
                head.lines()
                    .filter(|line| !line.to_ascii_lowercase().starts_with("date:"))
                    .map(str::to_string),
            );
            lines.extend(body.lines().map(str::to_string));
        }
    }
    lines
}

/// A page on another port whose script opens a socket to the chat: its handshake, as the
/// visitor's browser makes it, carries the page's origin, and is refused; the chat's own origin
/// is accepted; `--allow-origin` lets the other page in.
async fn origin(ctx: Ctx) -> Result<Transcript> {
    let bin = ctx.bin(BIN).await?;
    let dir = ctx.scratch()?;
    let flags = ["--db", "chat.db"];
    let server = ctx.start_in(&dir, &bin, &flags, "info").await?;
    let mut out = Transcript::default();
    out.section("start", startup(&server, &flags).await?);
    let page = ForeignPage::serve(server.addr).await;
    let foreign = page.origin();
    let own = format!("http://{}", server.addr);

    let loaded = stage_tests::http::get(page.addr, "/").await;
    let mut shown = vec![format!("$ curl -s http://{}/", page.addr)];
    shown.extend(loaded.body.lines().map(str::to_string));
    out.section("page", shown);
    out.section(
        "foreign",
        handshake(
            server.addr,
            "the visitor's browser",
            &[("Origin", &foreign)],
        )
        .await,
    );
    out.section(
        "own",
        handshake(server.addr, "the chat's own page", &[("Origin", &own)]).await,
    );
    server
        .wait_for_log("refusing a handshake from a foreign page", 1)
        .await?;
    out.section(
        "log",
        server.log_matching(&["refusing a handshake from a foreign page"]),
    );
    drop(server);

    // Allowed on purpose: the same page, with the flag its refusal named.
    let allowed = ["--db", "chat.db", "--allow-origin", &foreign];
    let server = ctx.start_in(&dir, &bin, &allowed, "info").await?;
    let mut again = vec![format!("$ cargo run -p {BIN} -- {}", allowed.join(" "))];
    again.extend(
        handshake(
            server.addr,
            "the visitor's browser",
            &[("Origin", &foreign)],
        )
        .await,
    );
    out.section("allowed", again);
    drop(page);
    Ok(out)
}

/// Two tabs from one address, a third refused with 429, let in once one of the two has left.
async fn per_ip(ctx: Ctx) -> Result<Transcript> {
    let bin = ctx.bin(BIN).await?;
    let dir = ctx.scratch()?;
    let flags = ["--db", "chat.db", "--max-connections-per-ip", "2"];
    let server = ctx.start_in(&dir, &bin, &flags, "info").await?;
    let mut out = Transcript::default();
    out.section("start", startup(&server, &flags).await?);
    let script = Script::default();
    let mut tab1 = Tab::open(&script, &server, "tab-1").await;
    let _tab2 = Tab::open(&script, &server, "tab-2").await;
    server.wait_for_log("client connected", 2).await?;
    out.section("refused", handshake(server.addr, "tab-3", &[]).await);
    tab1.close().await;
    server.wait_for_log("client disconnected", 1).await?;
    let _tab3 = Tab::open(&script, &server, "tab-3").await;
    server.wait_for_log("client connected", 3).await?;
    out.section("tabs", script.lines());
    out.section(
        "log",
        server.log_matching(&["too many clients from one address"]),
    );
    Ok(out)
}
