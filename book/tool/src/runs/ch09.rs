//! Chapter 09's runs: terminal clients chatting by name, in rooms, with a private message.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use stage_tests::tcp::LineClient;

use super::{
    Run, Transcript,
    harness::{Ctx, Script},
};

pub const RUNS: &[Run] = &[Run {
    name: "09-terminals",
    about: "chapter 09 with --tcp: three terminal clients take names, talk, change rooms and whisper",
    measures: false,
    go: |ctx| Box::pin(terminals(ctx)),
}];

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
