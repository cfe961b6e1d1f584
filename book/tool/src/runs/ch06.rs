//! Chapter 06's runs: chapter 05 panicking on an absurd flag, the flags that refuse it, frames
//! that break the rules and the close codes they get, garbage where HTTP should be, one client too
//! many, and two try-its (a close code left out, and the `+` the lints catch).

use std::time::Duration;

use anyhow::Result;
use stage_tests::{
    Client,
    faults::{Frame, RawClient, Received, opcode},
};

use super::{
    Check, Run, Transcript,
    ch02::flags,
    harness::{Ctx, Script, Server, Tab, WAIT, curl_body},
};

/// The `--ping-interval` that makes chapter 05's first tick overflow an `Instant`.
const ABSURD_INTERVAL: &str = "18000000000000000000s";

pub const RUNS: &[Run] = &[
    Run {
        name: "06-overflow",
        about: "chapter 05 given an absurd --ping-interval: two clients connect, and their writers panic",
        measures: false,
        go: |ctx| Box::pin(overflow(ctx)),
    },
    Run {
        name: "06-flags",
        about: "chapter 06's --help, and the absurd --ping-interval it refuses",
        measures: false,
        go: |ctx| {
            Box::pin(flags(
                ctx,
                "ch06-limits",
                &["--ping-interval", ABSURD_INTERVAL],
            ))
        },
    },
    Run {
        name: "06-frames",
        about: "chapter 06 answering rule-breaking frames and garbage while an ordinary client listens",
        measures: false,
        go: |ctx| Box::pin(frames(ctx)),
    },
    Run {
        name: "06-connection-limit",
        about: "chapter 06 with --max-connections 2: a third client gets 503, until one leaves",
        measures: false,
        go: |ctx| Box::pin(connection_limit(ctx)),
    },
    Run {
        name: "06-try-no-utf8-arm",
        about: "try it: chapter 06's `refusal` without its arm for invalid UTF-8",
        measures: false,
        go: |ctx| Box::pin(no_utf8_arm(ctx)),
    },
    Run {
        name: "06-try-plus",
        about: "try it: chapter 05's `Instant + Duration` put back into chapter 06's writer, and clippy",
        measures: false,
        go: |ctx| Box::pin(plus(ctx)),
    },
];

/// Chapter 05 with `--ping-interval 18000000000000000000s`: each connection's writer computes its
/// first tick, overflows, and panics; the other client's message never arrives.
async fn overflow(ctx: Ctx) -> Result<Transcript> {
    let bin = ctx.bin("ch05-shutdown").await?;
    let server = ctx
        .start(&bin, &["--ping-interval", ABSURD_INTERVAL])
        .await?;
    let script = Script::default();
    let mut tab1 = Tab::open(&script, &server, "tab-1").await;
    server.wait_for_log("panicked", 1).await?;
    let mut tab2 = Tab::open(&script, &server, "tab-2").await;
    server.wait_for_log("panicked", 2).await?;
    tab1.send("can anybody hear me?").await;
    let quiet = ctx.pick(Duration::from_secs(2), Duration::from_millis(300));
    if silent(&mut tab2.client, quiet).await {
        script.note(format!(
            "tab-2: (nothing arrives in {:.0} s)",
            quiet.as_secs_f64().ceil()
        ));
    }
    let mut out = Transcript::default();
    out.section(
        "command",
        vec![format!(
            "$ cargo run -p ch05-shutdown -- --ping-interval {ABSURD_INTERVAL}"
        )],
    );
    out.section("tabs", script.lines());
    out.push("log", server.log(), Check::Kinds);
    Ok(out)
}

/// Whether nothing arrives at `client` for `limit` (pings aside).
async fn silent(client: &mut Client, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, futures_util::StreamExt::next(client.stream()))
            .await
        {
            Err(_) => return true,
            Ok(Some(Ok(message))) if message.is_ping() || message.is_pong() => continue,
            Ok(_) => return false,
        }
    }
}

/// Reads from a raw client until the server's Close frame, or the end of the connection, and
/// says which, as `CODE "reason"`.
async fn ending(raw: &mut RawClient) -> String {
    loop {
        match raw.next_frame_within(WAIT).await {
            Received::Frame {
                opcode: opcode::CLOSE,
                payload,
            } => {
                return match payload.split_first_chunk::<2>() {
                    Some((code, reason)) => format!(
                        "server closed with {} {:?}",
                        u16::from_be_bytes(*code),
                        String::from_utf8_lossy(reason)
                    ),
                    None => "server closed without a code".to_string(),
                };
            }
            Received::Frame { .. } => continue,
            Received::Gone(_) => {
                return "the connection ended without a Close frame (a browser reports 1006)"
                    .to_string();
            }
        }
    }
}

/// One raw client per way of breaking the rules, each sending its frames and noting the answer.
async fn hostile(server: &Server, cases: Vec<(&str, &str, Vec<u8>)>) -> Vec<String> {
    let mut lines = Vec::new();
    for (name, what, bytes) in cases {
        let mut raw = RawClient::connect(server.addr, name).await;
        raw.write_all(&bytes).await;
        lines.push(format!("{name}: sent {what}"));
        lines.push(format!("{name}: {}", ending(&mut raw).await));
    }
    lines
}

async fn frames(ctx: Ctx) -> Result<Transcript> {
    let bin = ctx.bin("ch06-limits").await?;
    let server = ctx.start(&bin, &[]).await?;
    let mut listener = Client::connect(&server.ws_url(), "listener").await;
    server.wait_for_log("client connected", 1).await?;
    // What a second HTTP request looks like when it is read as a frame header: wrong in four
    // ways (see the `limits` suite); padded so that the server has a whole frame to judge.
    let mut garbage = b"GET / HTTP/1.1\r\nHost: example\r\n\r\n".to_vec();
    garbage.resize(2 + 69, b'#');
    let cases = vec![
        (
            "invalid-utf8",
            "a text frame holding the bytes 0xff 0xfe",
            Frame::text(vec![b'h', b'i', 0xff, 0xfe]).encode(),
        ),
        (
            "reserved-bit",
            "a text frame with a reserved bit set",
            Frame::text("hi").reserved_bits(0b100).encode(),
        ),
        (
            "unmasked",
            "a text frame without a mask",
            Frame::text("hi").unmasked().encode(),
        ),
        (
            "too-big",
            "one text message of 100 KiB",
            Frame::text(vec![b'x'; 100 * 1024]).encode(),
        ),
        (
            "garbage",
            "an HTTP request where a frame should be",
            garbage,
        ),
    ];
    let count = cases.len();
    let mut out = Transcript::default();
    out.section("frames", hostile(&server, cases).await);
    // Bytes that are no HTTP at all, where a request should be.
    let response = stage_tests::http::send_raw(server.addr, b"HELLO THERE\r\n\r\n").await;
    out.section(
        "http",
        vec![
            "http-garbage: sent `HELLO THERE` and a blank line instead of a request".to_string(),
            format!(
                "http-garbage: the server answered {} and closed the connection",
                response.status
            ),
        ],
    );
    let quiet = ctx.pick(Duration::from_secs(1), Duration::from_millis(200));
    let heard = if silent(&mut listener, quiet).await {
        "listener: received nothing"
    } else {
        "listener: received something"
    };
    out.section("listener", vec![heard.to_string()]);
    server.wait_for_log("client disconnected", count).await?;
    out.section("stats", curl_body(&server, "/stats").await);
    out.push(
        "log",
        server.log_matching(&["refusing a client"]),
        Check::Kinds,
    );
    Ok(out)
}

async fn connection_limit(ctx: Ctx) -> Result<Transcript> {
    let bin = ctx.bin("ch06-limits").await?;
    let server = ctx.start(&bin, &["--max-connections", "2"]).await?;
    let script = Script::default();
    let mut tab1 = Tab::open(&script, &server, "tab-1").await;
    let _tab2 = Tab::open(&script, &server, "tab-2").await;
    server.wait_for_log("client connected", 2).await?;
    let refused = match RawClient::try_connect(server.addr, "third").await {
        Ok(_) => anyhow::bail!("a third client was let in with --max-connections 2"),
        Err(refusal) => refusal,
    };
    let mut curl = vec![format!(
        "$ curl -si -H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: \
         13' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' http://{}/ws",
        server.addr
    )];
    // The `date` header is left out: it is the only line that changes from day to day.
    curl.extend(
        refused
            .head
            .lines()
            .filter(|line| !line.to_ascii_lowercase().starts_with("date:"))
            .map(str::to_string),
    );
    curl.extend(refused.body.lines().map(str::to_string));
    tab1.close().await;
    server.wait_for_log("client disconnected", 1).await?;
    let _tab3 = Tab::open(&script, &server, "tab-3").await;
    server.wait_for_log("client connected", 3).await?;
    let mut out = Transcript::default();
    out.section(
        "command",
        vec!["$ cargo run -p ch06-limits -- --max-connections 2".to_string()],
    );
    out.section("refused", curl);
    out.section("tabs", script.lines());
    out.push("log", server.log(), Check::Kinds);
    out.section("stats", curl_body(&server, "/stats").await);
    Ok(out)
}

async fn no_utf8_arm(ctx: Ctx) -> Result<Transcript> {
    let try_it = ctx
        .try_it(
            "06-limits",
            &[(
                "connection.rs",
                "        Error::Utf8(_) => (close_code::INVALID, \"text must be valid UTF-8\".to_string()),\n",
                "",
            )],
        )
        .await?;
    let server = ctx.start(&try_it.bin, &[]).await?;
    let cases = vec![(
        "invalid-utf8",
        "a text frame holding the bytes 0xff 0xfe",
        Frame::text(vec![b'h', b'i', 0xff, 0xfe]).encode(),
    )];
    let mut out = Transcript::default();
    out.section("frames", hostile(&server, cases).await);
    Ok(out)
}

async fn plus(ctx: Ctx) -> Result<Transcript> {
    let try_it = ctx
        .try_it(
            "06-limits",
            &[(
                "connection.rs",
                "let first_ping = now.checked_add(ping_interval).unwrap_or(now);",
                "let first_ping = now + ping_interval;",
            )],
        )
        .await?;
    let mut lines = vec!["$ cargo clippy -q".to_string()];
    lines.extend(ctx.clippy(&try_it).await?);
    let mut out = Transcript::default();
    out.section("clippy", lines);
    Ok(out)
}
