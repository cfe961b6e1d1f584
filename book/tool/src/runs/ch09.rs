//! Chapter 09's runs: terminal clients chatting by name, in rooms, with a private message; and a
//! terminal that says nothing, asked for a line and then cut off by the idle timeout.

use std::{net::SocketAddr, time::Duration};

use anyhow::{Context, Result};
use stage_tests::tcp::LineClient;

use super::{
    Run, Transcript,
    harness::{Ctx, Script, WAIT, curl_body},
};

pub const RUNS: &[Run] = &[
    Run {
        name: "09-terminals",
        about: "chapter 09 with --tcp: three terminal clients take names, talk, change rooms and whisper",
        measures: false,
        go: |ctx| Box::pin(terminals(ctx)),
    },
    Run {
        name: "09-idle",
        about: "chapter 09 with --tcp: a silent terminal is asked for a line, answers with an empty one, then says nothing and is cut off",
        measures: false,
        go: |ctx| Box::pin(idle(ctx)),
    },
];

/// A line client, as `nc` is (the stage tests' [`LineClient`]), whose typing and reading are noted
/// in the script in the order the run waits for them, so the transcript reads the same every run.
pub(super) struct Terminal {
    pub(super) name: &'static str,
    pub(super) client: LineClient,
    pub(super) script: Script,
}

impl Terminal {
    pub(super) async fn connect(script: &Script, addr: SocketAddr, name: &'static str) -> Terminal {
        Terminal {
            name,
            client: LineClient::connect(addr, name).await,
            script: script.clone(),
        }
    }

    /// Types `line` and Enter.
    pub(super) async fn send(&mut self, line: &str) {
        self.script.note(format!("{}> {line}", self.name));
        self.client.send(line).await;
    }

    /// Reads the next line, waiting up to `limit` for it, and notes it.
    pub(super) async fn read_within(&mut self, limit: Duration) -> Result<String> {
        let line = self
            .client
            .next_within(limit)
            .await
            .with_context(|| format!("{}: no line within {limit:?}", self.name))?
            .with_context(|| format!("{}: the connection ended", self.name))?;
        self.script.note(format!("{}< {line}", self.name));
        Ok(line)
    }

    /// Reads lines up to the first that contains `wanted`, noting each: what a person at this
    /// terminal sees until that line appears.
    pub(super) async fn read(&mut self, wanted: &str) {
        loop {
            let line = self.client.next().await;
            self.script.note(format!("{}< {line}", self.name));
            if line.contains(wanted) {
                return;
            }
        }
    }
}

/// Three terminals on one server: names, a room of their own, a private message, the list of
/// rooms, and a line that is not UTF-8.
async fn terminals(ctx: Ctx) -> Result<Transcript> {
    let bin = ctx.bin("ch09-rooms").await?;
    let server = ctx.start(&bin, &["--tcp", "127.0.0.1:0"]).await?;
    let tcp: SocketAddr = server
        .wait_for_stdout("tcp listening on ")
        .await?
        .parse()
        .context("the address after `tcp listening on`")?;
    let script = Script::default();
    let mut ann = Terminal::connect(&script, tcp, "ann").await;
    ann.read("in lobby:").await;
    let mut tom = Terminal::connect(&script, tcp, "tom").await;
    tom.read("in lobby:").await;
    ann.read("joined lobby").await;
    let mut eve = Terminal::connect(&script, tcp, "eve").await;
    eve.read("in lobby:").await;
    ann.read("joined lobby").await;
    tom.read("joined lobby").await;

    ann.send("/nick ann").await;
    ann.read("in lobby: ann").await;
    tom.read("is now ann").await;
    eve.read("is now ann").await;
    tom.send("/nick Ann").await;
    tom.read("! ").await;
    tom.send("/nick tom").await;
    tom.read("in lobby: ann, guest-3, tom").await;
    ann.read("is now tom").await;
    eve.read("is now tom").await;

    ann.send("hello, lobby").await;
    tom.read("hello, lobby").await;
    eve.read("hello, lobby").await;

    tom.send("/join games").await;
    tom.read("in games:").await;
    ann.read("left").await;
    eve.read("left").await;
    ann.send("/msg tom psst, a private word").await;
    tom.read("psst").await;
    ann.send("only the lobby hears this").await;
    eve.read("only the lobby").await;
    tom.send("/rooms").await;
    tom.read("rooms:").await;

    // Bytes that are not UTF-8: one error line, and the terminal carries on.
    eve.script.note("eve> caf\\xe9 (not UTF-8)".to_string());
    eve.client.send_raw(b"caf\xe9\n").await;
    eve.read("! ").await;
    eve.send("/quit").await;
    eve.read("bye").await;
    ann.read("left lobby").await;

    let mut out = Transcript::default();
    out.section("terminals", script.lines());
    Ok(out)
}

/// A terminal that types nothing: asked for a line after `--idle-timeout` minus
/// `--ping-interval`, it presses Enter, is asked again an interval later, stays silent, and reads
/// why it is cut off at `--idle-timeout`; the log and `/stats` count it timed out.
async fn idle(ctx: Ctx) -> Result<Transcript> {
    let bin = ctx.bin("ch09-rooms").await?;
    let (ping, idle_timeout) = ctx.pick(("2s", "5s"), ("200ms", "500ms"));
    let flags = [
        "--tcp",
        "127.0.0.1:0",
        "--ping-interval",
        ping,
        "--idle-timeout",
        idle_timeout,
    ];
    let server = ctx.start(&bin, &flags).await?;
    let tcp: SocketAddr = server
        .wait_for_stdout("tcp listening on ")
        .await?
        .parse()
        .context("the address after `tcp listening on`")?;
    let mut out = Transcript::default();
    out.section(
        "start",
        vec![
            format!("$ cargo run -p ch09-rooms -- {}", flags.join(" ")),
            server.listening.clone(),
            format!("tcp listening on {tcp}"),
        ],
    );

    let script = Script::default();
    let mut tom = Terminal::connect(&script, tcp, "tom").await;
    tom.read("in lobby:").await;
    // Each wait is the whole idle timeout and more: the server is the one that keeps time here.
    let patience = Duration::from_secs(5).saturating_add(WAIT);
    let question = tom.read_within(patience).await?;
    anyhow::ensure!(question.contains("still there"), "asked {question:?}");
    tom.script.note("tom> (an empty line: Enter)".to_string());
    tom.client.send("").await;
    let again = tom.read_within(patience).await?;
    anyhow::ensure!(again == question, "asked again {again:?}");
    let last = tom.read_within(patience).await?;
    anyhow::ensure!(last.contains("closing"), "told {last:?}");
    let end = tom.client.next_within(WAIT).await;
    anyhow::ensure!(end == Some(None), "the connection should end, got {end:?}");
    tom.script
        .note("tom: (the server closed the connection)".to_string());
    out.section("terminal", script.lines());

    server
        .wait_for_log("terminal client disconnected", 1)
        .await?;
    out.section(
        "log",
        server.log_matching(&["terminal client", "--idle-timeout"]),
    );
    out.section("stats", curl_body(&server, "/stats").await);
    Ok(out)
}
