//! Chapter 09's runs: terminal clients chatting by name, in rooms, with a private message.

use std::{net::SocketAddr, time::Duration};

use anyhow::{Context, Result};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines},
    net::{
        TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
};

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

/// How long a terminal waits for the line it expects.
const WAIT: Duration = Duration::from_secs(5);

/// A line client, as `nc` is: what it types and what it reads are noted in the script, in the
/// order the run waits for them, so the transcript reads the same on every run.
struct Terminal {
    name: &'static str,
    lines: Lines<BufReader<OwnedReadHalf>>,
    writer: OwnedWriteHalf,
    script: Script,
}

impl Terminal {
    async fn connect(script: &Script, addr: SocketAddr, name: &'static str) -> Result<Terminal> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("{name}: cannot connect to {addr}"))?;
        let (reader, writer) = stream.into_split();
        Ok(Terminal {
            name,
            lines: BufReader::new(reader).lines(),
            writer,
            script: script.clone(),
        })
    }

    /// Types `line` and Enter.
    async fn send(&mut self, line: &str) -> Result<()> {
        self.script.note(format!("{}> {line}", self.name));
        self.writer
            .write_all(format!("{line}\n").as_bytes())
            .await?;
        Ok(())
    }

    /// Reads lines up to the first that contains `wanted`, noting each: what a person at this
    /// terminal sees until that line appears.
    async fn read(&mut self, wanted: &str) -> Result<()> {
        loop {
            let line = tokio::time::timeout(WAIT, self.lines.next_line())
                .await
                .with_context(|| format!("{}: no {wanted:?} within {WAIT:?}", self.name))??
                .with_context(|| format!("{}: the server hung up", self.name))?;
            self.script.note(format!("{}< {line}", self.name));
            if line.contains(wanted) {
                return Ok(());
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
    let mut ann = Terminal::connect(&script, tcp, "ann").await?;
    ann.read("in lobby:").await?;
    let mut tom = Terminal::connect(&script, tcp, "tom").await?;
    tom.read("in lobby:").await?;
    ann.read("joined lobby").await?;
    let mut eve = Terminal::connect(&script, tcp, "eve").await?;
    eve.read("in lobby:").await?;
    ann.read("joined lobby").await?;
    tom.read("joined lobby").await?;

    ann.send("/nick ann").await?;
    ann.read("in lobby: ann").await?;
    tom.read("is now ann").await?;
    eve.read("is now ann").await?;
    tom.send("/nick Ann").await?;
    tom.read("! ").await?;
    tom.send("/nick tom").await?;
    tom.read("in lobby: ann, guest-3, tom").await?;
    ann.read("is now tom").await?;
    eve.read("is now tom").await?;

    ann.send("hello, lobby").await?;
    tom.read("hello, lobby").await?;
    eve.read("hello, lobby").await?;

    tom.send("/join games").await?;
    tom.read("in games:").await?;
    ann.read("left").await?;
    eve.read("left").await?;
    ann.send("/msg tom psst, a private word").await?;
    tom.read("psst").await?;
    ann.send("only the lobby hears this").await?;
    eve.read("only the lobby").await?;
    tom.send("/rooms").await?;
    tom.read("rooms:").await?;

    // Bytes that are not UTF-8: one error line, and the terminal carries on.
    eve.script.note("eve> caf\\xe9 (not UTF-8)".to_string());
    eve.writer.write_all(b"caf\xe9\n").await?;
    eve.read("! ").await?;
    eve.send("/quit").await?;
    eve.read("bye").await?;
    ann.read("left lobby").await?;

    let mut out = Transcript::default();
    out.section("terminals", script.lines());
    Ok(out)
}
