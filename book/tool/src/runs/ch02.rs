//! Chapter 02's runs: the new flag, the heartbeat seen in the log, and a closed circuit.

use std::time::Duration;

use anyhow::Result;

use super::{
    Run, Transcript,
    ch01::{FRAME_LINES, longest_silence},
    harness::{Ctx, Script, Tab},
};

pub const RUNS: &[Run] = &[
    Run {
        name: "02-flags",
        about: "chapter 02's --help, and a --ping-interval it refuses",
        measures: false,
        go: |ctx| Box::pin(flags(ctx, "ch02-split", &["--ping-interval", "0s"])),
    },
    Run {
        name: "02-heartbeat",
        about: "chapter 02 logging every frame: a client waits past two ping intervals, sends one message, closes",
        measures: false,
        go: |ctx| Box::pin(heartbeat(ctx)),
    },
    Run {
        name: "02-closed-circuit",
        about: "chapter 02 with two clients: what one sends, the other never hears",
        measures: false,
        go: |ctx| Box::pin(closed_circuit(ctx)),
    },
    Run {
        name: "02-try-no-reset",
        about: "try it: chapter 02 without `heartbeat.reset()`, and a client that talks every 300 ms",
        measures: false,
        go: |ctx| Box::pin(no_reset(ctx)),
    },
];

/// `--help`, then the one-line refusal of `bad_flags`, as `cargo run -q -p PACKAGE -- …` prints
/// them.
pub async fn flags(ctx: Ctx, package: &str, bad_flags: &[&str]) -> Result<Transcript> {
    let bin = ctx.bin(package).await?;
    let help = stage_tests::process::run_to_end(&bin.to_string_lossy(), &["--help"]).await;
    let refused = stage_tests::process::run_to_end(&bin.to_string_lossy(), bad_flags).await;
    let mut out = Transcript::default();
    let mut lines = vec![format!("$ cargo run -q -p {package} -- --help")];
    lines.extend(help.stdout.lines().map(str::to_string));
    out.section("help", lines);
    let mut lines = vec![format!(
        "$ cargo run -q -p {package} -- {}",
        bad_flags.join(" ")
    )];
    lines.extend(refused.stderr.lines().map(str::to_string));
    lines.push("$ echo $?".to_string());
    lines.push(
        refused
            .status
            .code()
            .map_or("none".to_string(), |code| code.to_string()),
    );
    out.section("refused", lines);
    Ok(out)
}

async fn heartbeat(ctx: Ctx) -> Result<Transcript> {
    let bin = ctx.bin("ch02-split").await?;
    let interval = ctx.pick("2s", "300ms");
    let wait = ctx.pick(Duration::from_secs(5), Duration::from_millis(750));
    let server = ctx
        .start_logging(
            &bin,
            &["--ping-interval", interval],
            "info,tungstenite::protocol=trace",
        )
        .await?;
    let mut out = Transcript::default();
    out.section(
        "command",
        vec![format!(
            "$ RUST_LOG=info,tungstenite::protocol=trace cargo run -p ch02-split -- \
             --ping-interval {interval}"
        )],
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

async fn closed_circuit(ctx: Ctx) -> Result<Transcript> {
    let bin = ctx.bin("ch02-split").await?;
    let server = ctx.start(&bin, &[]).await?;
    let script = Script::default();
    let mut tab2 = Tab::open(&script, &server, "tab-2").await;
    let mut tab1 = Tab::open(&script, &server, "tab-1").await;
    tab1.send("anyone else here?").await;
    tab1.receive("anyone else here?").await;
    tab2.client.expect_silence().await;
    tab1.close().await;
    tab2.close().await;
    let mut out = Transcript::default();
    out.section("tabs", script.lines());
    Ok(out)
}

async fn no_reset(ctx: Ctx) -> Result<Transcript> {
    let mut out = Transcript::default();
    let chapter = ctx.bin("ch02-split").await?;
    out.section("with-reset", vec![talk_every_300ms(&ctx, &chapter).await?]);
    let try_it = ctx
        .try_it(
            "02-split",
            &[("lib.rs", "        heartbeat.reset();\n", "")],
        )
        .await?;
    out.section("count", vec![talk_every_300ms(&ctx, &try_it.bin).await?]);
    Ok(out)
}

/// Runs `bin` with `--ping-interval 1s` and a client that sends a message every 300 ms; counts
/// the frames the server sent.
async fn talk_every_300ms(ctx: &Ctx, bin: &std::path::Path) -> Result<String> {
    let server = ctx
        .start_logging(
            bin,
            &["--ping-interval", "1s"],
            "info,tungstenite::protocol=trace",
        )
        .await?;
    let script = Script::default();
    let mut tab = Tab::open(&script, &server, "tab-1").await;
    let rounds = ctx.pick(10, 5);
    for n in 1..=rounds {
        let text = format!("message {n}");
        tab.send(&text).await;
        tab.receive(&text).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tab.close().await;
    server.wait_for_log("client disconnected", 1).await?;
    let frames = server.log_matching(&["Sending frame"]);
    let pings = frames.iter().filter(|line| line.contains("Ping")).count();
    let texts = frames
        .iter()
        .filter(|line| line.contains("Data(Text)"))
        .count();
    Ok(format!(
        "frames sent while the client talked every 300 ms: {texts} echoes, {pings} Pings"
    ))
}
