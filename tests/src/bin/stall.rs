//! `stall`: what one client that never reads costs a chapter's server. A benchmark that prints
//! figures, not a test: nothing here passes or fails.
//!
//! ```text
//! cargo build --release -p ch03-broker -p ch04-bounded
//! cargo run --release -p stage-tests --bin stall -- --bin target/release/ch03-broker
//! cargo run --release -p stage-tests --bin stall -- --bin target/release/ch04-bounded
//! ```
//!
//! It starts the binary on a free loopback port and connects, in this order, `--stalled` clients
//! (default 1) that complete the handshake and then never read, a sender, and `--healthy` clients
//! that read everything. For `--seconds` the sender pushes numbered messages a window at a time,
//! sending the next window once every healthy client has received the previous one, so the
//! healthy clients set the pace and never have more than a window waiting for them. Every second it prints the
//! server's resident memory and what was delivered; at the end, the totals, the throughput, and
//! how much each stalled client received once it started reading again. `--stalled 0` gives the
//! figures to compare with. Arguments after `--` go to the server (e.g. `-- --queue-capacity 32`).

use std::{
    process::ExitCode,
    time::{Duration, Instant},
};

use clap::Parser;
use futures_util::StreamExt;
use stage_tests::{Client, ServerProcess, client::StalledClient};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser)]
#[command(
    about = "How a client that never reads affects a Fan-out server: memory, delivery, throughput"
)]
struct Args {
    /// The chapter binary to run (build it with --release for meaningful figures).
    #[arg(long, value_name = "PATH")]
    bin: String,
    /// How long to push messages, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// How many clients read everything.
    #[arg(long, default_value_t = 3)]
    healthy: usize,
    /// How many clients never read (0 gives the figures to compare with).
    #[arg(long, default_value_t = 1)]
    stalled: usize,
    /// The size of each message, in bytes (at least 8: each starts with its number).
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(8..))]
    size: u64,
    /// Messages per window; keep it below the server's queue capacity.
    #[arg(long, default_value_t = 64)]
    window: u64,
    /// Stop early when the server's memory passes this many MiB.
    #[arg(long, default_value_t = 1024)]
    max_rss_mib: u64,
    /// Flags for the server, after `--`.
    #[arg(last = true)]
    server_flags: Vec<String>,
}

/// How long the sender waits for the healthy clients to receive a window before it calls them
/// held back.
const HELD_BACK: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let flags: Vec<&str> = args.server_flags.iter().map(String::as_str).collect();
    let server = ServerProcess::start(&args.bin, &flags).await;
    let url = server.ws_url();
    let mut stalled = Vec::new();
    for n in 0..args.stalled {
        stalled.push(StalledClient::connect(server.addr, &format!("stalled-{n}")).await);
    }
    let mut sender = Client::connect(&url, "sender").await;
    let mut progress = Vec::new();
    let mut readers = Vec::new();
    for n in 0..args.healthy {
        let client = Client::connect(&url, &format!("healthy-{n}")).await;
        let (count_tx, count_rx) = watch::channel(Tally::default());
        progress.push(count_rx);
        readers.push(tokio::spawn(read_all(client, count_tx)));
    }

    println!(
        "{}: {} stalled, 1 sender, {} healthy clients, {} B messages, windows of {}{}",
        args.bin,
        args.stalled,
        args.healthy,
        args.size,
        args.window,
        if flags.is_empty() {
            String::new()
        } else {
            format!(", server flags: {}", flags.join(" "))
        }
    );
    let start_rss = server.rss_bytes();
    println!(
        "{:>6}  {:>10}  {:>12}  {:>12}",
        "time", "server RSS", "sent", "delivered"
    );
    println!(
        "{:>5.1}s  {:>10}  {:>12}  {:>12}",
        0.0,
        mib(start_rss),
        0,
        0
    );

    let started = Instant::now();
    let mut next_report = Duration::from_secs(1);
    let mut sent: u64 = 0;
    let mut peak_rss = start_rss;
    let mut stop_reason = format!("{} s elapsed", args.seconds);
    while started.elapsed() < Duration::from_secs(args.seconds) {
        for _ in 0..args.window {
            sender
                .send(Message::binary(numbered(sent, args.size)))
                .await;
            sent += 1;
        }
        if let Err(slowest) = wait_for_all(&mut progress, sent).await {
            stop_reason = format!(
                "the healthy clients were held back: one had {slowest} of {sent} messages after \
                 {HELD_BACK:?}"
            );
            break;
        }
        let rss = server.rss_bytes();
        peak_rss = peak_rss.max(rss);
        if started.elapsed() >= next_report {
            let delivered: u64 = progress.iter().map(|rx| rx.borrow().received).sum();
            println!(
                "{:>5.1}s  {:>10}  {:>12}  {:>12}",
                started.elapsed().as_secs_f64(),
                mib(rss),
                sent,
                delivered
            );
            next_report += Duration::from_secs(1);
        }
        if rss > args.max_rss_mib << 20 {
            stop_reason = format!("the server's memory passed {} MiB", args.max_rss_mib);
            break;
        }
    }
    let elapsed = started.elapsed();
    let end_rss = server.rss_bytes();

    println!("stopped: {stop_reason}");
    let sent_bytes = sent * args.size;
    println!(
        "sent:      {sent} messages ({}) in {:.1} s, {:.0} messages/s, {}/s to each healthy client",
        mib(sent_bytes),
        elapsed.as_secs_f64(),
        sent as f64 / elapsed.as_secs_f64(),
        mib((sent_bytes as f64 / elapsed.as_secs_f64()) as u64)
    );
    for (n, rx) in progress.iter().enumerate() {
        let tally = *rx.borrow();
        println!(
            "healthy-{n}: received {} of {sent}, missed {}",
            tally.received, tally.missed
        );
    }
    println!(
        "server RSS: {} at the start, {} at the peak, {} at the end",
        mib(start_rss),
        mib(peak_rss),
        mib(end_rss)
    );

    // Each stalled client now reads what the server kept for it.
    for (n, client) in stalled.into_iter().enumerate() {
        let mut client = client.resume();
        let quiet = Duration::from_millis(500);
        let backlog = drain(&mut client, quiet, Duration::from_secs(60)).await;
        println!(
            "stalled-{n}: received {backlog} of {sent} once it read again ({} dropped for it)",
            sent - backlog.min(sent)
        );
    }
    for reader in readers {
        reader.abort();
    }
    ExitCode::SUCCESS
}

/// What one healthy client has seen.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    /// Messages received.
    received: u64,
    /// Numbers skipped (messages the server dropped for this client).
    missed: u64,
    /// The number it expects next.
    next: u64,
}

/// Reads everything, publishing its tally after each message.
async fn read_all(mut client: Client, tally: watch::Sender<Tally>) {
    while let Some(Ok(message)) = client.stream().next().await {
        if let Message::Binary(bytes) = message
            && let Some(number) = number_of(&bytes)
        {
            tally.send_modify(|tally| {
                tally.received += 1;
                tally.missed += number.saturating_sub(tally.next);
                tally.next = number + 1;
            });
        }
    }
}

/// Waits until every healthy client has received message `sent - 1` (or a later one);
/// `Err` with the slowest count when one is still short after [`HELD_BACK`].
async fn wait_for_all(progress: &mut [watch::Receiver<Tally>], sent: u64) -> Result<(), u64> {
    for rx in progress.iter_mut() {
        let caught_up = tokio::time::timeout(HELD_BACK, rx.wait_for(|tally| tally.next >= sent))
            .await
            .is_ok_and(|seen| seen.is_ok());
        if !caught_up {
            return Err(rx.borrow().next);
        }
    }
    Ok(())
}

/// Reads until nothing has come for `quiet` (or `limit` has passed) and counts the numbered
/// messages.
async fn drain(client: &mut Client, quiet: Duration, limit: Duration) -> u64 {
    let deadline = Instant::now() + limit;
    let mut count = 0;
    while Instant::now() < deadline {
        match tokio::time::timeout(quiet, client.stream().next()).await {
            Ok(Some(Ok(Message::Binary(bytes)))) if number_of(&bytes).is_some() => count += 1,
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) | Err(_) => break,
        }
    }
    count
}

fn numbered(number: u64, size: u64) -> Vec<u8> {
    let mut bytes = vec![b'.'; usize::try_from(size).unwrap_or(usize::MAX)];
    if let Some(head) = bytes.get_mut(..8) {
        head.copy_from_slice(&number.to_be_bytes());
    }
    bytes
}

fn number_of(bytes: &[u8]) -> Option<u64> {
    let head: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    Some(u64::from_be_bytes(head))
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}
