//! Chapter 05's runs: a SIGTERM that says goodbye, a shutdown with a client that never reads,
//! and the two ways chapter 05 still trusts its clients.

use std::time::Duration;

use anyhow::Result;
use nix::sys::signal::Signal;
use stage_tests::{
    Client,
    client::{Ending, StalledClient},
};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::{
    Run, Transcript,
    harness::{Ctx, Script, Server, SilentPeer, Tab, WAIT, curl_body, finish, log_time},
};

pub const RUNS: &[Run] = &[
    Run {
        name: "05-sigterm",
        about: "chapter 05 with two clients: one message, /stats, then SIGTERM",
        measures: false,
        go: |ctx| Box::pin(sigterm(ctx)),
    },
    Run {
        name: "05-stalled-shutdown",
        about: "chapter 05 with a client that never reads and a paced sender, then SIGTERM",
        measures: false,
        go: |ctx| Box::pin(stalled_shutdown(ctx, None)),
    },
    Run {
        name: "05-large-message",
        about: "chapter 05 forwarding one 15 MiB message, then refusing a 60 MiB frame",
        measures: true,
        go: |ctx| Box::pin(large_message(ctx)),
    },
    Run {
        name: "05-silent-peer",
        about: "chapter 05 pinging a client that never answers, while two others come and go",
        measures: false,
        go: |ctx| Box::pin(silent_peer(ctx)),
    },
    Run {
        name: "05-try-no-race",
        about: "try it: chapter 05's writer without the race against `finish`, shut down with a stalled client",
        measures: false,
        go: |ctx| Box::pin(no_race(ctx)),
    },
];

async fn sigterm(ctx: Ctx) -> Result<Transcript> {
    let bin = ctx.bin("ch05-shutdown").await?;
    let mut server = ctx.start(&bin, &[]).await?;
    let script = Script::default();
    let mut tab1 = Tab::open(&script, &server, "tab-1").await;
    let mut tab2 = Tab::open(&script, &server, "tab-2").await;
    tab1.send("hello before the restart").await;
    tab2.receive("hello before the restart").await;
    let stats = curl_body(&server, "/stats").await;
    server.signal(Signal::SIGTERM)?;
    let signalled = Instant::now();
    tab2.ended().await;
    tab1.ended().await;
    let status = server.wait_exit(WAIT).await?;
    let took = signalled.elapsed();
    let log = server.log();
    let mut out = Transcript::default();
    out.section("stats", stats);
    out.section("tabs", script.lines());
    out.section("log", log.clone());
    out.section("exit", exit_lines(&log, status.code(), took));
    Ok(out)
}

/// How the process ended: its exit code, how long after the signal, and how long after the
/// signal the last `client disconnected` was logged.
fn exit_lines(log: &[String], code: Option<i32>, took: Duration) -> Vec<String> {
    let signal = log
        .iter()
        .find(|line| line.contains("shutdown signal received"))
        .and_then(|line| log_time(line));
    let last = log
        .iter()
        .filter(|line| line.contains("client disconnected"))
        .filter_map(|line| log_time(line))
        .fold(None, |latest: Option<f64>, time| {
            Some(latest.map_or(time, |l| l.max(time)))
        });
    let mut lines = vec![format!(
        "exit code {} after {:.2} s",
        code.map_or("none".to_string(), |code| code.to_string()),
        took.as_secs_f64()
    )];
    if let (Some(signal), Some(last)) = (signal, last) {
        lines.push(format!(
            "the last `client disconnected` came {:.2} ms after the signal",
            (last - signal) * 1000.0
        ));
    }
    lines
}

/// A client that never reads, a healthy one, and a sender that pushes messages in windows the
/// healthy one sets the pace of; /stats; then SIGTERM. `bin` replaces chapter 05's binary (for
/// the try-it).
async fn stalled_shutdown(ctx: Ctx, bin: Option<std::path::PathBuf>) -> Result<Transcript> {
    let bin = match bin {
        Some(bin) => bin,
        None => ctx.bin("ch05-shutdown").await?,
    };
    let mut server = ctx.start(&bin, &[]).await?;
    // A small receive window, so that its buffers are full after little data in both modes.
    let _stalled = StalledClient::connect(server.addr, "stalled").await;
    server.wait_for_log("client connected", 1).await?;
    let mut healthy = Client::connect(&server.ws_url(), "healthy").await;
    let mut sender = Client::connect(&server.ws_url(), "sender").await;
    server.wait_for_log("client connected", 3).await?;
    // Enough to fill the stalled client's socket buffers (a few MiB) and queue in both modes.
    let total: usize = ctx.pick(25_000, 8_000);
    let payload = "x".repeat(1024);
    for _ in 0..total / 100 {
        for _ in 0..100 {
            sender.send(Message::text(payload.clone())).await;
        }
        for _ in 0..100 {
            healthy.recv().await;
        }
    }
    sender.send_close(1000, "").await;
    sender.expect_end().await;
    server.wait_for_log("client disconnected", 1).await?;
    let stats = curl_body(&server, "/stats").await;
    server.signal(Signal::SIGTERM)?;
    let signalled = Instant::now();
    finish(&mut healthy).await;
    let status = server.wait_exit(WAIT).await?;
    let took = signalled.elapsed();
    let log = server.log();
    let from_signal: Vec<String> = log
        .iter()
        .skip_while(|line| !line.contains("shutdown signal received"))
        .cloned()
        .collect();
    let mut out = Transcript::default();
    out.section("stats", stats);
    out.section("log", from_signal);
    out.section("exit", exit_lines(&log, status.code(), took));
    Ok(out)
}

async fn large_message(ctx: Ctx) -> Result<Transcript> {
    let bin = ctx.bin("ch05-shutdown").await?;
    let server = ctx.start(&bin, &[]).await?;
    let mib = 1024 * 1024;
    let large = ctx.pick(15, 15) * mib;
    let too_large = ctx.pick(60, 17) * mib;
    let mut sender = Client::connect(&server.ws_url(), "sender").await;
    let mut readers = vec![
        Client::connect(&server.ws_url(), "reader-1").await,
        Client::connect(&server.ws_url(), "reader-2").await,
    ];
    server.wait_for_log("client connected", 3).await?;
    let mut lines = vec![format!("server RSS before: {}", mib_of(&server)?)];
    sender.send(Message::binary(vec![b'x'; large])).await;
    lines.push(format!("sent one message of {} MiB", large / mib));
    for reader in &mut readers {
        let size = match reader.recv().await {
            Message::Binary(bytes) => bytes.len(),
            other => other.len(),
        };
        lines.push(format!(
            "{}: received a message of {} MiB",
            reader.name(),
            size / mib
        ));
    }
    lines.push(format!("server RSS after: {}", mib_of(&server)?));
    lines.push(ctx.measured_on("debug"));
    let mut out = Transcript::default();
    out.section("large", lines);

    // One frame over the 16 MiB frame limit.
    let frame = Message::binary(vec![b'x'; too_large]);
    let _ = tokio::time::timeout(WAIT, futures_util::SinkExt::send(sender.stream(), frame)).await;
    let ending = match sender.expect_end().await {
        Ending::Close(Some((code, reason))) => format!("{code} {reason:?}"),
        Ending::Close(None) => "1005".to_string(),
        Ending::Gone(_) => "1006 \"\"".to_string(),
    };
    out.section(
        "frame",
        vec![
            format!("sent one frame of {} MiB", too_large / mib),
            format!("sender: closed {ending}"),
        ],
    );
    Ok(out)
}

fn mib_of(server: &Server) -> Result<String> {
    Ok(format!("{:.1} MiB", server.rss_kib()? as f64 / 1024.0))
}

async fn silent_peer(ctx: Ctx) -> Result<Transcript> {
    let bin = ctx.bin("ch05-shutdown").await?;
    let interval = ctx.pick("1s", "100ms");
    let server = ctx.start(&bin, &["--ping-interval", interval]).await?;
    let _silent = SilentPeer::connect(server.addr).await?;
    server.wait_for_log("client connected", 1).await?;
    let started = Instant::now();
    for name in ["visitor-1", "visitor-2"] {
        let mut visitor = Client::connect(&server.ws_url(), name).await;
        visitor.send_close(1000, "").await;
        visitor.expect_end().await;
    }
    let wait = ctx.pick(Duration::from_secs(10), Duration::from_secs(1));
    tokio::time::sleep(wait.saturating_sub(started.elapsed())).await;
    let mut out = Transcript::default();
    out.section(
        "command",
        vec![format!(
            "$ cargo run -p ch05-shutdown -- --ping-interval {interval}"
        )],
    );
    let mut stats = vec![format!(
        "({:.0} s after the silent client connected)",
        wait.as_secs_f64()
    )];
    stats.extend(curl_body(&server, "/stats").await);
    out.section("stats", stats);
    Ok(out)
}

async fn no_race(ctx: Ctx) -> Result<Transcript> {
    let try_it = ctx
        .try_it(
            "05-shutdown",
            &[(
                "connection.rs",
                "            tokio::select! {
                sent = sink.send(message) => {
                    if sent.is_err() {
                        break End::ClientLeft; // the client is gone
                    }
                }
                end = &mut finish => break end.unwrap_or(End::ClientLeft),
            }",
                "            if sink.send(message).await.is_err() {
                break End::ClientLeft; // the client is gone
            }",
            )],
        )
        .await?;
    stalled_shutdown(ctx, Some(try_it.bin)).await
}
