//! Chapter 01's runs: the echo, the silence of a loop that only answers, and a Close arm that
//! breaks out too early.

use std::time::Duration;

use anyhow::Result;

use super::{
    Run, Transcript,
    harness::{Ctx, Script, Tab, curl_body, log_time},
};

pub const RUNS: &[Run] = &[
    Run {
        name: "01-echo",
        about: "chapter 01 with two clients: one sends two messages, then both close",
        measures: false,
        go: |ctx| Box::pin(echo(ctx)),
    },
    Run {
        name: "01-silence",
        about: "chapter 01 logging every frame: a client waits, sends one message, closes",
        measures: false,
        go: |ctx| Box::pin(silence(ctx)),
    },
    Run {
        name: "01-try-close-break",
        about: "try it: chapter 01 with `Message::Close(_) => break`, and a client that closes",
        measures: false,
        go: |ctx| Box::pin(close_break(ctx)),
    },
];

async fn echo(ctx: Ctx) -> Result<Transcript> {
    let bin = ctx.bin("ch01-echo").await?;
    let server = ctx.start(&bin, &[]).await?;
    let mut out = Transcript::default();
    out.section(
        "start",
        vec![
            "$ cargo run -p ch01-echo".to_string(),
            server.listening.clone(),
        ],
    );

    let script = Script::default();
    let mut tab2 = Tab::open(&script, &server, "tab-2").await;
    let mut tab1 = Tab::open(&script, &server, "tab-1").await;
    tab1.send("hello").await;
    tab1.send("fan-out, one hop").await;
    tab1.receive("hello").await;
    tab1.receive("fan-out, one hop").await;
    tab2.client.expect_silence().await;
    tab1.close().await;
    server.wait_for_log("client disconnected", 1).await?;
    tab2.close().await;
    server.wait_for_log("client disconnected", 2).await?;
    out.section("tabs", script.lines());
    out.section("log", server.log());

    let response = stage_tests::http::get(server.addr, "/ws").await;
    out.section(
        "curl",
        vec![
            format!(
                "$ curl -s -o /dev/null -w \"%{{http_code}}\\n\" http://{}/ws",
                server.addr
            ),
            response.status.to_string(),
        ],
    );
    out.section("curl-body", curl_body(&server, "/ws").await);
    Ok(out)
}

/// The lines of a `tungstenite::protocol=trace` log that show connections and frames.
pub const FRAME_LINES: &[&str] = &[
    "client connected",
    "client disconnected",
    "Received message",
    "Sending frame",
];

async fn silence(ctx: Ctx) -> Result<Transcript> {
    let bin = ctx.bin("ch01-echo").await?;
    let server = ctx
        .start_logging(&bin, &[], "info,tungstenite::protocol=trace")
        .await?;
    let wait = ctx.pick(Duration::from_secs(5), Duration::from_millis(500));
    let mut out = Transcript::default();
    out.section(
        "command",
        vec!["$ RUST_LOG=info,tungstenite::protocol=trace cargo run -p ch01-echo".to_string()],
    );
    let script = Script::default();
    let mut tab = Tab::open(&script, &server, "tab-1").await;
    tokio::time::sleep(wait).await;
    tab.send("still there?").await;
    tab.receive("still there?").await;
    tab.close().await;
    server.wait_for_log("client disconnected", 1).await?;
    let log = server.log_matching(FRAME_LINES);
    out.section("log", log.clone());
    out.section("gap", vec![longest_silence(&log)]);
    Ok(out)
}

/// "the server sent nothing for N s": the longest stretch, from the connect on, without a
/// `Sending frame` line.
pub fn longest_silence(log: &[String]) -> String {
    let mut last = None;
    let mut longest = 0.0_f64;
    for line in log {
        let Some(time) = log_time(line) else { continue };
        if line.contains("client connected") {
            last = Some(time);
        } else if line.contains("Sending frame") || line.contains("client disconnected") {
            if let Some(since) = last {
                longest = longest.max(time - since);
            }
            last = Some(time);
        }
    }
    format!("longest time the server sent nothing: {longest:.2} s")
}

async fn close_break(ctx: Ctx) -> Result<Transcript> {
    let try_it = ctx
        .try_it(
            "01-echo",
            &[(
                "lib.rs",
                "Message::Ping(_) | Message::Pong(_) | Message::Close(_) => {}",
                "Message::Ping(_) | Message::Pong(_) => {}\n            Message::Close(_) => break,",
            )],
        )
        .await?;
    let server = ctx.start(&try_it.bin, &[]).await?;
    let script = Script::default();
    let mut tab = Tab::open(&script, &server, "tab-1").await;
    tab.send("hello").await;
    tab.receive("hello").await;
    tab.close().await;
    server.wait_for_log("client disconnected", 1).await?;
    let mut out = Transcript::default();
    out.section("tabs", script.lines());
    Ok(out)
}
