//! Chapter 07's runs: the three clients chapter 06 cannot get rid of, the new flags, each timeout
//! firing, a stalled client evicted, a try-it (the writer's `heartbeat.reset()` put back), and the
//! burst that motivates chapter 08.

use std::time::Duration;

use anyhow::{Result, bail};
use futures_util::{SinkExt, StreamExt};
use stage_tests::{Client, client::StalledClient};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::Instant,
};
use tokio_tungstenite::tungstenite::Message;

use super::{
    Run, Transcript,
    ch02::flags,
    harness::{Ctx, Script, Server, SilentPeer, Tab, WAIT, curl_body},
};

pub const RUNS: &[Run] = &[
    Run {
        name: "07-withhold",
        about: "chapter 06 with a client that never reads, one that never answers, and a request that never ends",
        measures: false,
        go: |ctx| Box::pin(withhold(ctx)),
    },
    Run {
        name: "07-flags",
        about: "chapter 07's --help, and an --idle-timeout the pings cannot keep alive",
        measures: false,
        go: |ctx| {
            Box::pin(flags(
                ctx,
                "ch07-timeouts",
                &["--ping-interval", "10s", "--idle-timeout", "15s"],
            ))
        },
    },
    Run {
        name: "07-timeouts",
        about: "chapter 07 closing a request that never ends and a client that never answers, while a quiet one stays",
        measures: false,
        go: |ctx| Box::pin(timeouts(ctx)),
    },
    Run {
        name: "07-evicted",
        about: "chapter 07 with --write-timeout 2s: a client that never reads is cut off",
        measures: false,
        go: |ctx| Box::pin(evicted(ctx)),
    },
    Run {
        name: "07-try-reset",
        about: "try it: chapter 07's writer with `heartbeat.reset()` back, and a client that only listens",
        measures: false,
        go: |ctx| Box::pin(try_reset(ctx)),
    },
    Run {
        name: "07-try-no-header-timeout",
        about: "try it: chapter 07's accept loop without hyper's timer and header timeout, and a request that never ends",
        measures: false,
        go: |ctx| Box::pin(no_header_timeout(ctx)),
    },
    Run {
        name: "07-burst",
        about: "chapter 07: a burst of 1,000 messages to a client that reads as fast as it can",
        measures: true,
        go: |ctx| Box::pin(burst(ctx)),
    },
];

/// A connection that sends the start of a request and then nothing.
async fn slowloris(server: &Server) -> Result<TcpStream> {
    let mut stream = TcpStream::connect(server.addr).await?;
    stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await?;
    Ok(stream)
}

/// Whether the server has closed `stream` (within `limit`).
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut reply = Vec::new();
    tokio::time::timeout(limit, stream.read_to_end(&mut reply))
        .await
        .is_ok()
}

/// Sends messages of 1 KiB from `sender`, `window` at a time, each window once `reader` has the
/// last, until the server logs that a client is not keeping up. Returns how many were sent.
async fn until_not_keeping_up(
    server: &Server,
    sender: &mut Client,
    reader: &mut Client,
    window: usize,
) -> Result<usize> {
    let payload = "x".repeat(1024);
    let mut sent = 0;
    while server.log_matching(&["not keeping up"]).is_empty() {
        if sent > 50_000 {
            bail!("50,000 messages went past the stalled client and it never fell behind");
        }
        for _ in 0..window {
            sender.send(Message::text(payload.clone())).await;
        }
        for _ in 0..window {
            reader.recv().await;
        }
        sent += window;
    }
    Ok(sent)
}

/// Reads `client` (answering its pings) for `duration`; returns how many messages it got.
async fn keep_reading(client: &mut Client, duration: Duration) -> usize {
    let deadline = Instant::now() + duration;
    let mut received = 0;
    while let Ok(Some(Ok(message))) =
        tokio::time::timeout_at(deadline, client.stream().next()).await
    {
        if message.is_text() || message.is_binary() {
            received += 1;
        }
    }
    received
}

async fn withhold(ctx: Ctx) -> Result<Transcript> {
    let bin = ctx.bin("ch06-limits").await?;
    let interval = ctx.pick("1s", "100ms");
    let server = ctx.start(&bin, &["--ping-interval", interval]).await?;
    let _stalled = StalledClient::connect(server.addr, "stalled").await;
    let _silent = SilentPeer::connect(server.addr).await?;
    let mut reader = Client::connect(&server.ws_url(), "reader").await;
    let mut sender = Client::connect(&server.ws_url(), "sender").await;
    server.wait_for_log("client connected", 4).await?;
    let mut request = slowloris(&server).await?;
    let started = Instant::now();
    until_not_keeping_up(&server, &mut sender, &mut reader, 100).await?;
    sender.send_close(1000, "").await;
    sender.expect_end().await;
    reader.send_close(1000, "").await;
    reader.expect_end().await;
    server.wait_for_log("client disconnected", 2).await?;
    let wait = ctx.pick(Duration::from_secs(30), Duration::from_secs(1));
    tokio::time::sleep(wait.saturating_sub(started.elapsed())).await;
    let open = !closed_within(&mut request, Duration::from_millis(100)).await;
    let mut out = Transcript::default();
    out.section(
        "command",
        vec![format!(
            "$ cargo run -p ch06-limits -- --ping-interval {interval}"
        )],
    );
    let mut stats = vec![format!(
        "({:.0} s after the three arrived)",
        wait.as_secs_f64()
    )];
    stats.extend(curl_body(&server, "/stats").await);
    out.section("stats", stats);
    out.section(
        "request",
        vec![format!(
            "the request without an end: {}",
            if open {
                "still open"
            } else {
                "closed by the server"
            }
        )],
    );
    Ok(out)
}

async fn timeouts(ctx: Ctx) -> Result<Transcript> {
    let bin = ctx.bin("ch07-timeouts").await?;
    let (interval, header) = ctx.pick(("1s", "2s"), ("300ms", "300ms"));
    let server = ctx
        .start(
            &bin,
            &["--ping-interval", interval, "--header-timeout", header],
        )
        .await?;
    let script = Script::default();
    let mut quiet = Tab::open(&script, &server, "quiet").await;
    server.wait_for_log("client connected", 1).await?;
    let _silent = SilentPeer::connect(server.addr).await?;
    server.wait_for_log("client connected", 2).await?;
    let mut request = slowloris(&server).await?;
    let started = Instant::now();
    // Meanwhile the quiet tab reads (and so answers every Ping) and says nothing, for longer than
    // the idle timeout.
    let stay = ctx.pick(Duration::from_secs(5), Duration::from_millis(1500));
    let (closed, _) = tokio::join!(
        async {
            let closed = closed_within(&mut request, WAIT).await;
            (closed, started.elapsed())
        },
        keep_reading(&mut quiet.client, stay)
    );
    let lines = match closed {
        (true, after) => vec![format!(
            "the request without an end: closed by the server after {:.2} s",
            after.as_secs_f64()
        )],
        (false, _) => vec!["the request without an end: still open".to_string()],
    };
    server.wait_for_log("client disconnected", 1).await?;
    quiet.send("still here").await;
    let mut out = Transcript::default();
    out.section(
        "command",
        vec![format!(
            "$ cargo run -p ch07-timeouts -- --ping-interval {interval} --header-timeout {header}"
        )],
    );
    out.section("request", lines);
    out.section("tabs", script.lines());
    out.section("log", server.log());
    out.section("stats", curl_body(&server, "/stats").await);
    Ok(out)
}

async fn evicted(ctx: Ctx) -> Result<Transcript> {
    let bin = ctx.bin("ch07-timeouts").await?;
    let write_timeout = ctx.pick("2s", "300ms");
    let server = ctx.start(&bin, &["--write-timeout", write_timeout]).await?;
    let _stalled = StalledClient::connect(server.addr, "stalled").await;
    server.wait_for_log("client connected", 1).await?;
    let mut reader = Client::connect(&server.ws_url(), "reader").await;
    let mut sender = Client::connect(&server.ws_url(), "sender").await;
    server.wait_for_log("client connected", 3).await?;
    let sent = until_not_keeping_up(&server, &mut sender, &mut reader, 100).await?;
    // Nothing more is sent: only the writer's clock (⑨) runs now, the broker looks at a full
    // queue only when a message arrives (⑪).
    server.wait_for_log("cutting it off", 1).await?;
    server.wait_for_log("client disconnected", 1).await?;
    let mut out = Transcript::default();
    out.section(
        "command",
        vec![format!(
            "$ cargo run -p ch07-timeouts -- --write-timeout {write_timeout}"
        )],
    );
    out.section(
        "sent",
        vec![format!(
            "sender: {sent} messages of 1 KiB, all received by the reader, until the stalled client fell behind"
        )],
    );
    out.section(
        "log",
        server.log_matching(&["not keeping up", "cutting it off", "client disconnected"]),
    );
    out.section("stats", curl_body(&server, "/stats").await);
    Ok(out)
}

async fn try_reset(ctx: Ctx) -> Result<Transcript> {
    let try_it = ctx
        .try_it(
            "07-timeouts",
            &[(
                "connection.rs",
                "            // No `heartbeat.reset()` here any more: the idle timeout (⑩) needs a pong now and\n",
                "            heartbeat.reset();\n            // Back again (the try-it): the idle timeout (⑩) needs a pong now and\n",
            )],
        )
        .await?;
    let interval = ctx.pick("1s", "200ms");
    let server = ctx
        .start(&try_it.bin, &["--ping-interval", interval])
        .await?;
    let script = Script::default();
    let mut listener = Tab::open(&script, &server, "listener").await;
    let mut talker = Tab::open(&script, &server, "talker").await;
    server.wait_for_log("client connected", 2).await?;
    // The talker says something every half interval; the listener reads everything and says
    // nothing, as a page that only displays would.
    let every = ctx.pick(Duration::from_millis(500), Duration::from_millis(100));
    let mut received = 0;
    let mut said = 0;
    let ending = loop {
        talker.client.send_text(&format!("news {said}")).await;
        said += 1;
        let deadline = Instant::now() + every;
        let mut ended = None;
        loop {
            match tokio::time::timeout_at(deadline, listener.client.stream().next()).await {
                Err(_) => break,
                Ok(Some(Ok(Message::Close(frame)))) => {
                    ended = Some(match frame {
                        Some(frame) => {
                            format!("{} {:?}", u16::from(frame.code), frame.reason.as_str())
                        }
                        None => "1005".to_string(),
                    });
                    break;
                }
                Ok(Some(Ok(message))) if message.is_text() => received += 1,
                Ok(Some(Ok(_))) => {}
                Ok(_) => {
                    ended = Some("1006".to_string());
                    break;
                }
            }
        }
        if let Some(ended) = ended {
            break ended;
        }
        if said > 100 {
            bail!("the listener was never cut off");
        }
    };
    script.note(format!(
        "talker: → sent {said} messages, one every {} ms",
        every.as_millis()
    ));
    script.note(format!("listener: ← received {received} of them"));
    script.note(format!("listener: · closed {ending}"));
    // The Close can reach the listener before the server's log line reaches us.
    server.wait_for_log("--idle-timeout", 1).await?;
    let mut out = Transcript::default();
    out.section("tabs", script.lines());
    out.section("log", server.log_matching(&["--idle-timeout"]));
    Ok(out)
}

async fn no_header_timeout(ctx: Ctx) -> Result<Transcript> {
    let try_it = ctx
        .try_it(
            "07-timeouts",
            &[(
                "lib.rs",
                "    http.http1()\n        .timer(TokioTimer::new())\n        .header_read_timeout(header_timeout);\n",
                "",
            )],
        )
        .await?;
    let header = ctx.pick("2s", "300ms");
    let server = ctx
        .start(&try_it.bin, &["--header-timeout", header])
        .await?;
    let mut request = slowloris(&server).await?;
    let wait = ctx.pick(Duration::from_secs(10), Duration::from_secs(1));
    let closed = closed_within(&mut request, wait).await;
    let mut out = Transcript::default();
    out.section(
        "command",
        vec![format!(
            "$ cargo run -p ch07-timeouts -- --header-timeout {header}"
        )],
    );
    out.section(
        "request",
        vec![format!(
            "the request without an end, {:.0} s later: {}",
            wait.as_secs_f64(),
            if closed {
                "closed by the server"
            } else {
                "still open"
            }
        )],
    );
    Ok(out)
}

async fn burst(ctx: Ctx) -> Result<Transcript> {
    let bin = ctx.bin("ch07-timeouts").await?;
    let server = ctx.start(&bin, &[]).await?;
    let mut reader = Client::connect(&server.ws_url(), "reader").await;
    let mut sender = Client::connect(&server.ws_url(), "sender").await;
    server.wait_for_log("client connected", 2).await?;
    const BURST: usize = 1000;
    let payload = "x".repeat(1024);
    // The whole burst in one write: the server reads it as fast as the reader's socket allows.
    for _ in 0..BURST {
        sender.stream().feed(Message::text(payload.clone())).await?;
    }
    sender.stream().flush().await?;
    // Everything that will arrive has arrived once nothing comes for a second.
    let mut received = 0;
    while let Ok(Some(Ok(message))) =
        tokio::time::timeout(Duration::from_secs(1), reader.stream().next()).await
    {
        if message.is_text() {
            received += 1;
        }
    }
    let mut lines = vec![
        format!("sender: {BURST} messages of 1 KiB, in one write"),
        format!("reader: received {received} of {BURST}, reading as fast as it could"),
    ];
    lines.extend(curl_body(&server, "/stats").await);
    lines.push(ctx.measured_on("debug"));
    let mut out = Transcript::default();
    out.section("burst", lines);
    Ok(out)
}
