//! Chapter 03's runs: the broadcast, and the flood that a client that never reads turns into
//! memory.

use std::time::Duration;

use anyhow::Result;
use futures_util::StreamExt;
use stage_tests::Client;
use tokio_tungstenite::tungstenite::Message;

use super::{
    Run, Transcript,
    harness::{Ctx, Script, SilentPeer, Tab},
};

pub const RUNS: &[Run] = &[
    Run {
        name: "03-broadcast",
        about: "chapter 03 with three clients: two of them say something, then all close",
        measures: false,
        go: |ctx| Box::pin(broadcast(ctx)),
    },
    Run {
        name: "03-try-hear-yourself",
        about: "try it: chapter 03's forward without the `if *id != from` test, with two clients",
        measures: false,
        go: |ctx| Box::pin(hear_yourself(ctx)),
    },
    Run {
        name: "03-flood",
        about: "chapter 03 with a client that never reads, one that reads, and four floods of 1 KiB messages",
        measures: true,
        go: |ctx| Box::pin(flood(ctx, "ch03-broker")),
    },
];

async fn broadcast(ctx: Ctx) -> Result<Transcript> {
    let bin = ctx.bin("ch03-broker").await?;
    let server = ctx.start(&bin, &[]).await?;
    let script = Script::default();
    let mut tab1 = Tab::open(&script, &server, "tab-1").await;
    let mut tab3 = Tab::open(&script, &server, "tab-3").await;
    let mut tab2 = Tab::open(&script, &server, "tab-2").await;
    tab1.send("hello, everyone").await;
    tab2.receive("hello, everyone").await;
    tab3.receive("hello, everyone").await;
    tab3.send("tab-3 here, hi").await;
    tab2.receive("tab-3 here, hi").await;
    tab1.receive("tab-3 here, hi").await;
    tab1.client.expect_silence().await;
    tab3.close().await;
    server.wait_for_log("client disconnected", 1).await?;
    tab2.close().await;
    server.wait_for_log("client disconnected", 2).await?;
    tab1.close().await;
    server.wait_for_log("client disconnected", 3).await?;
    let mut out = Transcript::default();
    out.section(
        "start",
        vec![
            "$ cargo run -p ch03-broker".to_string(),
            server.listening.clone(),
        ],
    );
    out.section("tabs", script.lines());
    out.section("log", server.log());
    Ok(out)
}

async fn hear_yourself(ctx: Ctx) -> Result<Transcript> {
    let try_it = ctx
        .try_it(
            "03-broker",
            &[(
                "broker.rs",
                "            if *id != from {
                // An error means that writer has ended; its Leave is on its way and will remove it.
                let _ = outbox.send(message.clone());
            }",
                "            // An error means that writer has ended; its Leave is on its way and will remove it.
            let _ = outbox.send(message.clone());",
            )],
        )
        .await?;
    let server = ctx.start(&try_it.bin, &[]).await?;
    let script = Script::default();
    let mut tab1 = Tab::open(&script, &server, "tab-1").await;
    let mut tab2 = Tab::open(&script, &server, "tab-2").await;
    tab1.send("hello, everyone").await;
    tab2.receive("hello, everyone").await;
    tab1.receive("hello, everyone").await;
    tab1.close().await;
    tab2.close().await;
    let mut out = Transcript::default();
    out.section("tabs", script.lines());
    Ok(out)
}

/// A client that never reads (the book's bash line), one that reads everything, and a sender
/// that sends four floods of 1 KiB messages as fast as it can; the server's resident memory in
/// KiB before and after each flood (once the reader has had a quiet half second).
pub async fn flood(ctx: Ctx, package: &'static str) -> Result<Transcript> {
    let bin = ctx.bin(package).await?;
    let server = ctx.start(&bin, &[]).await?;
    let per_flood: usize = ctx.pick(25_000, 1_000);
    let floods = 4;
    let _silent = SilentPeer::connect(server.addr).await?;
    server.wait_for_log("client connected", 1).await?;
    let mut reader = Client::connect(&server.ws_url(), "reader").await;
    let (count_tx, count_rx) = tokio::sync::watch::channel(0_usize);
    let reading = tokio::spawn(async move {
        while let Some(Ok(message)) = reader.stream().next().await {
            if matches!(message, Message::Text(_)) {
                count_tx.send_modify(|count| *count += 1);
            }
        }
    });
    let mut sender = Client::connect(&server.ws_url(), "sender").await;
    server.wait_for_log("client connected", 3).await?;

    let payload = "x".repeat(1024);
    let mut rss = vec![format!("{:>7}", server.rss_kib()?)];
    for _ in 0..floods {
        for _ in 0..per_flood {
            sender.send(Message::text(payload.clone())).await;
        }
        quiet(&count_rx, Duration::from_millis(500)).await;
        rss.push(format!("{:>7}", server.rss_kib()?));
    }
    let received = *count_rx.borrow();
    reading.abort();

    let mut out = Transcript::default();
    let mut lines = vec![format!(
        "{package}'s resident memory in KiB (as `ps -o rss= -C {package}` shows it), before the \
         first flood and after each:"
    )];
    lines.extend(rss);
    lines.push(ctx.measured_on("debug"));
    out.section("rss", lines);
    out.section(
        "received",
        vec![format!(
            "the reading client received {received} of {} messages",
            floods * per_flood
        )],
    );
    Ok(out)
}

/// Waits until `count` has not changed for `quiet` (at most 30 s).
async fn quiet(count: &tokio::sync::watch::Receiver<usize>, quiet: Duration) {
    let mut count = count.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        if tokio::time::timeout(quiet, count.changed()).await.is_err() {
            return;
        }
    }
}
