//! The two clients the comparison needs besides `fanout-load`, for either server (chapter 09 or
//! this crate), since both speak the same protocol:
//!
//! - `churn`: clients that rename themselves and move between two rooms of their own as fast as
//!   the answers come back, one command at a time each, outside the lobby: the commands that take
//!   the write lock here and go through the broker in chapter 09. Prints how many were answered
//!   per second, how long each took, and how many got no answer within `--timeout`.
//! - `stall-who`: one client with a small receive buffer that asks `/who` again and again and
//!   reads nothing for `--duration` (what makes a server that holds a lock across `.await`
//!   stop), then reads for 5 s and counts what it gets: chat, `/who` answers, notices that it
//!   fell behind (and how many messages they say it skipped), and how the connection ended.
//!
//! ```text
//! cargo run --release -p cmp-rwlock-rooms --example churn -- churn --url ws://127.0.0.1:3000/ws
//! ```

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::net::TcpSocket;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, client_async, connect_async, tungstenite::Message,
};

#[derive(Parser)]
enum Args {
    /// Renames and room changes, as fast as they are answered.
    Churn {
        #[arg(long)]
        url: String,
        /// Clients, each with its own two rooms.
        #[arg(long, default_value_t = 4)]
        clients: u32,
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// How long one command may wait for its answer before the client gives up.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// A client that asks `/who` `--count` times and reads nothing for `--duration`, then reads.
    StallWho {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 200_000)]
        count: u32,
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        duration: Duration,
    },
}

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Reads until a message of `kind` comes; `Err` if the stream ends first.
async fn until(ws: &mut Ws, kind: &str) -> anyhow::Result<()> {
    let wanted = format!("\"kind\":\"{kind}\"");
    while let Some(message) = ws.next().await {
        if let Message::Text(text) = message? {
            if text.as_str().contains(&wanted) {
                return Ok(());
            }
            if text.as_str().contains("\"kind\":\"error\"") {
                bail!("the server refused: {text}");
            }
        }
    }
    bail!("the connection ended")
}

/// What one churning client did.
struct Tally {
    latencies: Histogram<u64>,
    timeouts: u64,
}

async fn churner(
    url: String,
    n: u32,
    duration: Duration,
    timeout: Duration,
) -> anyhow::Result<Tally> {
    let mut tally = Tally {
        latencies: Histogram::new_with_bounds(1, 60_000_000, 3)?,
        timeouts: 0,
    };
    let (mut ws, _) = tokio::time::timeout(timeout, connect_async(url.as_str()))
        .await
        .context("no connection in time")??;
    tokio::time::timeout(timeout, until(&mut ws, "who"))
        .await
        .context("no welcome in time")??;
    let end = Instant::now() + duration;
    let mut round = 0u64;
    while Instant::now() < end {
        // Both commands are answered with a welcome and then a who.
        let command = match round % 2 {
            0 => format!("/nick churn{n}x{}", round % 1000),
            _ => format!("/join churn{n}{}", if round % 4 == 1 { "a" } else { "b" }),
        };
        round += 1;
        let started = Instant::now();
        ws.send(Message::text(command)).await?;
        match tokio::time::timeout(timeout, until(&mut ws, "who")).await {
            Ok(answered) => answered?,
            Err(_) => {
                tally.timeouts += 1;
                // The connection may still answer later; this client has seen enough.
                break;
            }
        }
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        tally.latencies.saturating_record(micros.max(1));
    }
    Ok(tally)
}

async fn churn(
    url: String,
    clients: u32,
    duration: Duration,
    timeout: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|n| tokio::spawn(churner(url.clone(), n, duration, timeout)))
        .collect();
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut timeouts, mut failed) = (0u64, 0u64);
    for task in tasks {
        match task.await? {
            Ok(tally) => {
                all.add(&tally.latencies)?;
                timeouts += tally.timeouts;
            }
            Err(err) => {
                eprintln!("a churning client failed: {err:#}");
                failed += 1;
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let ms = |quantile: f64| all.value_at_quantile(quantile) as f64 / 1000.0;
    let line = serde_json::json!({
        "commands": all.len(),
        "commands_per_s": (all.len() as f64 / seconds).round(),
        "p50_ms": ms(0.5),
        "p99_ms": ms(0.99),
        "max_ms": all.max() as f64 / 1000.0,
        "timeouts": timeouts,
        "failed_clients": failed,
        "seconds": (seconds * 10.0).round() / 10.0,
    });
    println!("{line}");
    Ok(())
}

async fn stall_who(url: String, count: u32, duration: Duration) -> anyhow::Result<()> {
    let addr = url
        .strip_prefix("ws://")
        .and_then(|rest| rest.split('/').next())
        .context("expected ws://IP:PORT/ws")?
        .parse()?;
    let socket = TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(4096)?;
    let stream = socket.connect(addr).await?;
    let (ws, _) = client_async(url.as_str(), MaybeTlsStream::Plain(stream)).await?;
    let (mut sink, mut stream) = ws.split();
    let sending = tokio::spawn(async move {
        for _ in 0..count {
            if sink.send(Message::text("/who")).await.is_err() {
                break;
            }
        }
        sink
    });
    eprintln!("stall-who: asking /who {count} times, reading nothing for {duration:?}");
    tokio::time::sleep(duration).await;
    let all_sent = sending.is_finished();
    // Then it reads again, for up to RESUME, and says what it finds.
    const RESUME: Duration = Duration::from_secs(5);
    let (mut chat, mut who, mut skipped_notices, mut skipped, mut other) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut ending = String::from("still open");
    let deadline = tokio::time::Instant::now() + RESUME;
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => break,
            Ok(None) => {
                ending = "ended without a Close".into();
                break;
            }
            Ok(Some(Err(err))) => {
                ending = format!("error: {err}");
                break;
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                ending = format!("Close {:?}", frame.map(|frame| u16::from(frame.code)));
                break;
            }
            Ok(Some(Ok(Message::Text(text)))) => {
                let text = text.as_str();
                if text.contains("\"kind\":\"chat\"") {
                    chat += 1;
                } else if text.contains("\"kind\":\"who\"") {
                    who += 1;
                } else if let Some(n) = text
                    .split("you fell behind: ")
                    .nth(1)
                    .and_then(|rest| rest.split(' ').next())
                    .and_then(|n| n.parse::<u64>().ok())
                {
                    skipped_notices += 1;
                    skipped += n;
                } else {
                    other += 1;
                }
            }
            Ok(Some(Ok(_))) => other += 1,
        }
    }
    sending.abort();
    let line = serde_json::json!({
        "all_who_sent": all_sent,
        "after_resuming": {
            "chat": chat, "who": who, "fell_behind_notices": skipped_notices,
            "skipped": skipped, "other": other, "ending": ending,
        },
    });
    println!("{line}");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Args::parse() {
        Args::Churn {
            url,
            clients,
            duration,
            timeout,
        } => churn(url, clients, duration, timeout).await,
        Args::StallWho {
            url,
            count,
            duration,
        } => stall_who(url, count, duration).await,
    }
}
