//! Chapter 08's runs: the burst that a healthy client loses on the chapter before, and takes whole
//! on this one.

use std::time::Duration;

use anyhow::Result;
use futures_util::StreamExt;
use nix::sys::signal::Signal;
use stage_tests::{
    Client,
    throughput::{BURST, BURST_MESSAGE_SIZE, burst_message, send_burst},
};
use tokio_tungstenite::tungstenite::Message;

use super::{
    Run, Transcript,
    harness::{Ctx, Script, Tab, curl_body},
};

/// How many bursts each chapter gets: a burst is lost or not depending on how the tasks happen
/// to be scheduled, so one burst may come through whole even on the chapter before.
const BURSTS: usize = 5;

/// The chapter the burst is shown failing on: the one this chapter starts from.
pub const BEFORE: &str = "ch07-timeouts";

pub const RUNS: &[Run] = &[
    Run {
        name: "08-burst",
        about: "one client sends 1,000 messages of 256 bytes at once to one that reads everything, on chapter 07 and on chapter 08",
        measures: true,
        go: |ctx| Box::pin(burst_both(ctx)),
    },
    Run {
        name: "08-anonymous",
        about: "chapter 08 with three clients that try to pick a name, join a room and whisper",
        measures: false,
        go: |ctx| Box::pin(anonymous(ctx)),
    },
];

/// Three tabs type what a chat user would: a name, a room, a private message. Every line goes to
/// everybody else, word for word: the server knows no names, rooms or commands.
async fn anonymous(ctx: Ctx) -> Result<Transcript> {
    let bin = ctx.bin("ch08-throughput").await?;
    let server = ctx.start(&bin, &[]).await?;
    let script = Script::default();
    let mut tab1 = Tab::open(&script, &server, "tab-1").await;
    let mut tab2 = Tab::open(&script, &server, "tab-2").await;
    let mut tab3 = Tab::open(&script, &server, "tab-3").await;
    server.wait_for_log("client connected", 3).await?;
    for (from, text) in [
        (1, "/nick alice"),
        (2, "/join rust"),
        (3, "/msg alice only for you"),
    ] {
        let tabs = [&mut tab1, &mut tab2, &mut tab3];
        let [a, b, c] = tabs;
        let (sender, others) = match from {
            1 => (a, [b, c]),
            2 => (b, [a, c]),
            _ => (c, [a, b]),
        };
        sender.send(text).await;
        for other in others {
            other.receive(text).await;
        }
    }
    for tab in [&mut tab1, &mut tab2, &mut tab3] {
        tab.close().await;
    }
    let mut out = Transcript::default();
    out.section("tabs", script.lines());
    Ok(out)
}

/// The burst against the chapter before and against this one, one server after the other.
async fn burst_both(ctx: Ctx) -> Result<Transcript> {
    let mut out = Transcript::default();
    for (section, package) in [("before", BEFORE), ("after", "ch08-throughput")] {
        let lines = burst(&ctx, package).await?;
        out.section(section, lines);
    }
    out.section("machine", vec![ctx.measured_on("debug")]);
    Ok(out)
}

/// Starts `package` with its default flags, connects a sender and a reader, sends the burst, and
/// reports what the reader got and what the server says it dropped.
async fn burst(ctx: &Ctx, package: &str) -> Result<Vec<String>> {
    let bin = ctx.bin(package).await?;
    let mut server = ctx.start(&bin, &[]).await?;
    let mut sender = Client::connect(&server.ws_url(), "sender").await;
    let mut reader = Client::connect(&server.ws_url(), "reader").await;
    server.wait_for_log("client connected", 2).await?;
    let mut lines = vec![
        format!("$ cargo run -p {package}"),
        format!(
            "(one client sends {BURST} messages of {BURST_MESSAGE_SIZE} bytes at once, {BURSTS} times, to one that reads everything)"
        ),
    ];
    for round in 1..=BURSTS {
        send_burst(&mut sender).await;
        // Read until all of it has come, or nothing more has for half a second.
        let mut received = Vec::new();
        while received.len() < BURST {
            let next =
                tokio::time::timeout(Duration::from_millis(500), reader.stream().next()).await;
            match next {
                Ok(Some(Ok(Message::Text(text)))) => received.push(text.to_string()),
                Ok(Some(Ok(_))) => {}
                _ => break,
            }
        }
        let in_order = received
            .iter()
            .zip((0..BURST).map(burst_message))
            .take_while(|(got, expected)| **got == *expected)
            .count();
        lines.push(format!(
            "burst {round}: the reader received {:>4} of {BURST}; the first {in_order:>4} in order, without a gap",
            received.len()
        ));
    }
    lines.extend(curl_body(&server, "/stats").await);
    // Stopped, and waited for, so that the next server can listen on the same port.
    server.signal(Signal::SIGTERM)?;
    server.wait_exit(Duration::from_secs(10)).await?;
    Ok(lines)
}
