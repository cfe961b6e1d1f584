//! Chapter 04's runs: the new flag, the flood again, the log of a client that stalls and comes
//! back, the `stall` benchmark against chapters 03 and 04 (and two try-its), and a SIGTERM that
//! cuts everybody off.

use std::{path::Path, time::Duration};

use anyhow::{Result, bail};
use nix::sys::signal::Signal;
use stage_tests::{Client, client::StalledClient};
use tokio::process::Command;
use tokio_tungstenite::tungstenite::Message;

use super::{
    Mode, Run, Transcript,
    ch02::flags,
    ch03::flood,
    harness::{Ctx, Script, Tab, WAIT},
};

pub const RUNS: &[Run] = &[
    Run {
        name: "04-flags",
        about: "chapter 04's --help, and a --queue-capacity it refuses",
        measures: false,
        go: |ctx| Box::pin(flags(ctx, "ch04-bounded", &["--queue-capacity", "0"])),
    },
    Run {
        name: "04-flood",
        about: "chapter 04 with a client that never reads, one that reads, and four floods of 1 KiB messages",
        measures: true,
        go: |ctx| Box::pin(flood(ctx, "ch04-bounded")),
    },
    Run {
        name: "04-stall-log",
        about: "chapter 04's log while a client stops reading, misses messages, and reads again",
        measures: false,
        go: |ctx| Box::pin(stall_log(ctx, &[], 32)),
    },
    Run {
        name: "04-try-tiny-queue",
        about: "try it: the stalled client's run again, with --queue-capacity 4",
        measures: false,
        go: |ctx| Box::pin(stall_log(ctx, &["--queue-capacity", "4"], 2)),
    },
    Run {
        name: "04-stall",
        about: "the stall benchmark against chapters 03 and 04, in release builds",
        measures: true,
        go: |ctx| Box::pin(stall_both(ctx)),
    },
    Run {
        name: "04-try-send-await",
        about: "try it: chapter 04's broker with `send().await` in place of `try_send`, under stall",
        measures: true,
        go: |ctx| Box::pin(send_await(ctx)),
    },
    Run {
        name: "04-sigterm",
        about: "chapter 04 with two clients, stopped by SIGTERM",
        measures: false,
        go: |ctx| Box::pin(sigterm(ctx)),
    },
];

/// A stalled client (`#1`), a sender (`#2`) and a reader (`#3`): the sender sends windows of
/// `window` messages of 4 KiB (at most half a queue), each once the reader has the last, until the server says the stalled client
/// is not keeping up. Then the stalled client reads what was kept for it, and one more message
/// shows it caught up.
async fn stall_log(ctx: Ctx, flags: &[&str], window: usize) -> Result<Transcript> {
    let bin = ctx.bin("ch04-bounded").await?;
    let server = ctx.start(&bin, flags).await?;
    let stalled = StalledClient::connect(server.addr, "stalled").await;
    server.wait_for_log("client connected", 1).await?;
    let mut sender = Client::connect(&server.ws_url(), "sender").await;
    server.wait_for_log("client connected", 2).await?;
    let mut reader = Client::connect(&server.ws_url(), "reader").await;
    server.wait_for_log("client connected", 3).await?;
    let payload = vec![b'.'; 4096];
    let mut sent = 0;
    while server.log_matching(&["not keeping up"]).is_empty() {
        if sent > 20_000 {
            bail!("20,000 messages went past the stalled client and it never fell behind");
        }
        for _ in 0..window {
            sender.send(Message::binary(payload.clone())).await;
        }
        for _ in 0..window {
            reader.recv().await;
        }
        sent += window;
    }
    // It is behind for good now: its buffers are full. Let it read what was kept for it.
    let mut resumed = stalled.resume();
    let mut kept = 0;
    while let Ok(Some(Ok(_))) = tokio::time::timeout(
        Duration::from_millis(500),
        futures_util::StreamExt::next(resumed.stream()),
    )
    .await
    {
        kept += 1;
    }
    sender.send_text("are you back?").await;
    reader.expect_text("are you back?").await;
    resumed.expect_text("are you back?").await;
    server.wait_for_log("caught up", 1).await?;
    for (n, client) in [&mut resumed, &mut reader, &mut sender]
        .into_iter()
        .enumerate()
    {
        client.send_close(1000, "").await;
        client.expect_end().await;
        server.wait_for_log("client disconnected", n + 1).await?;
    }
    let mut out = Transcript::default();
    if !flags.is_empty() {
        out.section(
            "command",
            vec![format!(
                "$ cargo run -p ch04-bounded -- {}",
                flags.join(" ")
            )],
        );
    }
    out.section("log", server.log());
    out.section(
        "kept",
        vec![format!(
            "the stalled client, reading again, found {kept} of the {sent} messages sent while it stalled"
        )],
    );
    Ok(out)
}

/// One run of `stall`.
struct Stall<'a> {
    /// The `stall` binary.
    stall_bin: &'a Path,
    /// The directory it runs in.
    dir: &'a Path,
    /// The chapter binary, relative to `dir`.
    bin: &'a str,
    /// Flags shown in the book, and passed in record mode.
    shown_flags: &'a [&'a str],
    /// Flags passed instead in shape mode, to keep it short.
    shape_flags: &'a [&'a str],
    /// Flags for the server, after `--`.
    server_flags: &'a [&'a str],
    /// Whether the book shows a release build (shape mode runs debug builds all the same).
    shown_release: bool,
}

impl Stall<'_> {
    /// Runs it and returns the command the book shows, then stall's output.
    async fn run(&self, ctx: &Ctx) -> Result<Vec<String>> {
        let mut command = Command::new(self.stall_bin);
        command.current_dir(self.dir).args(["--bin", self.bin]);
        match ctx.mode {
            Mode::Record => command.args(self.shown_flags),
            Mode::Shape => command.args(self.shape_flags),
        };
        if !self.server_flags.is_empty() {
            command.arg("--").args(self.server_flags);
        }
        let output = tokio::time::timeout(
            Duration::from_secs(120),
            command.kill_on_drop(true).output(),
        )
        .await??;
        if !output.status.success() {
            bail!("stall failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        let (shown_bin, release) = if self.shown_release {
            (self.bin.replace("/debug/", "/release/"), "--release ")
        } else {
            (self.bin.to_string(), "")
        };
        let mut line =
            format!("$ cargo run {release}-p stage-tests --bin stall -- --bin {shown_bin}");
        for flag in self.shown_flags {
            line.push(' ');
            line.push_str(flag);
        }
        if !self.server_flags.is_empty() {
            line.push_str(" -- ");
            line.push_str(&self.server_flags.join(" "));
        }
        let mut lines = vec![line];
        lines.extend(
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .map(str::to_string),
        );
        Ok(lines)
    }
}

/// The `stall` binary and the directory of the chapter binaries: release builds in record mode,
/// the debug builds `cargo test` made in shape mode.
async fn stall_and_profile(
    ctx: &Ctx,
    packages: &[&str],
) -> Result<(std::path::PathBuf, &'static str)> {
    match ctx.mode {
        Mode::Record => {
            let mut all = packages.to_vec();
            all.push("stage-tests");
            let dir = ctx.release(&all).await?;
            Ok((dir.join("stall"), "release"))
        }
        Mode::Shape => Ok((ctx.bin("stall").await?, "debug")),
    }
}

async fn stall_both(ctx: Ctx) -> Result<Transcript> {
    let (stall_bin, profile) = stall_and_profile(&ctx, &["ch03-broker", "ch04-bounded"]).await?;
    let workspace = ctx.workspace.clone();
    let mut out = Transcript::default();
    out.section(
        "build",
        vec!["$ cargo build --release -p ch03-broker -p ch04-bounded".to_string()],
    );
    let ch03 = Stall {
        stall_bin: &stall_bin,
        dir: &workspace,
        bin: &format!("target/{profile}/ch03-broker"),
        // Stopped by time, not by its memory limit: how soon it reaches a limit depends on how
        // busy the machine is, and the recording and shape mode must stop for the same reason.
        shown_flags: &["--seconds", "5"],
        shape_flags: &["--seconds", "1"],
        server_flags: &[],
        shown_release: true,
    }
    .run(&ctx)
    .await?;
    out.section("ch03", ch03);
    let ch04 = Stall {
        stall_bin: &stall_bin,
        dir: &workspace,
        bin: &format!("target/{profile}/ch04-bounded"),
        shown_flags: &[],
        shape_flags: &["--seconds", "1"],
        server_flags: &[],
        shown_release: true,
    }
    .run(&ctx)
    .await?;
    out.section("ch04", ch04);
    // The recording was measured in release builds; shape mode checks the line, not the figures.
    out.section("machine", vec![ctx.measured_on("release")]);
    Ok(out)
}

async fn send_await(ctx: Ctx) -> Result<Transcript> {
    let try_it = ctx
        .try_it(
            "04-bounded",
            &[
                ("broker.rs", "    pub fn handle(&mut self, event: Event) {", "    pub async fn handle(&mut self, event: Event) {"),
                ("broker.rs", "        broker.handle(event);", "        broker.handle(event).await;"),
                ("broker.rs", "=> self.forward(from, &message),", "=> self.forward(from, &message).await,"),
                ("broker.rs", "    fn forward(&mut self,", "    async fn forward(&mut self,"),
                (
                    "broker.rs",
                    "client.outbox.try_send(message.clone())",
                    "client.outbox.send(message.clone()).await.map_err(|closed| TrySendError::Closed(closed.0))",
                ),
            ],
        )
        .await?;
    let stall_bin = ctx.bin("stall").await?;
    let mut out = Transcript::default();
    let lines = Stall {
        stall_bin: &stall_bin,
        dir: &try_it.dir,
        bin: &try_it.relative.to_string_lossy(),
        shown_flags: &[],
        shape_flags: &["--seconds", "3"],
        server_flags: &[],
        shown_release: false,
    }
    .run(&ctx)
    .await?;
    out.section("stall", lines);
    out.section("machine", vec![ctx.measured_on("debug")]);
    Ok(out)
}

async fn sigterm(ctx: Ctx) -> Result<Transcript> {
    let bin = ctx.bin("ch04-bounded").await?;
    let mut server = ctx.start(&bin, &[]).await?;
    let script = Script::default();
    let mut tab2 = Tab::open(&script, &server, "tab-2").await;
    let mut tab1 = Tab::open(&script, &server, "tab-1").await;
    server.wait_for_log("client connected", 2).await?;
    server.signal(Signal::SIGTERM)?;
    tab2.ended().await;
    tab1.ended().await;
    let status = server.wait_exit(WAIT).await?;
    let mut out = Transcript::default();
    out.section("tabs", script.lines());
    out.section("log", server.log());
    out.section(
        "exit",
        vec![format!(
            "exit code: {}",
            status
                .code()
                .map_or("none".to_string(), |code| code.to_string())
        )],
    );
    Ok(out)
}
