//! Chapter 10's runs that read `GET /metrics`: a small chat whose every event shows up in the
//! counters, and a load run whose counters and histograms are read before, during and after.
//! (Listed in `ch10.rs`'s table, with the chapter's other runs.)

use std::{process::Stdio, time::Duration};

use anyhow::{Context, Result, bail};
use stage_tests::{Client, Wire, faults::RawClient};
use tokio::process::Command;

use super::{
    Check, Mode, Transcript,
    ch10::{BIN, named, startup, tcp_addr},
    harness::{Ctx, Script, Server, WAIT, curl_body},
};

/// One reading of `/metrics`: its lines, as the server wrote them.
struct Scrape {
    lines: Vec<String>,
}

impl Scrape {
    /// `GET /metrics`, which must answer 200.
    async fn take(server: &Server) -> Result<Scrape> {
        let response = stage_tests::http::get(server.addr, "/metrics").await;
        if response.status != 200 {
            bail!(
                "GET /metrics answered {}: {}",
                response.status,
                response.body
            );
        }
        Ok(Scrape {
            lines: response.body.lines().map(str::to_string).collect(),
        })
    }

    /// The lines that contain `fanout_` followed by one of `families`: what
    /// `grep -E 'fanout_(a|b|…)'` prints.
    fn grep(&self, families: &[&str]) -> Vec<String> {
        self.lines
            .iter()
            .filter(|line| {
                families
                    .iter()
                    .any(|family| line.contains(&format!("fanout_{family}")))
            })
            .cloned()
            .collect()
    }

    /// The value of the sample `series` (a name with its labels, as written), 0 if absent.
    fn value(&self, series: &str) -> f64 {
        self.lines
            .iter()
            .filter(|line| !line.starts_with('#'))
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// The buckets of the histogram `family`, in order: each upper bound (`le`, as written) with
    /// its running total.
    fn buckets(&self, family: &str) -> Vec<(String, f64)> {
        let prefix = format!("{family}_bucket{{le=\"");
        self.lines
            .iter()
            .filter_map(|line| {
                let rest = line.strip_prefix(&prefix)?;
                let (bound, value) = rest.split_once("\"} ")?;
                Some((bound.to_string(), value.trim().parse().ok()?))
            })
            .collect()
    }
}

/// The shell command that prints the lines of `/metrics` whose family is one of `families`.
fn grep_command(server: &Server, families: &[&str]) -> String {
    let pattern = match families {
        [one] => format!("fanout_{one}"),
        many => format!("'fanout_({})'", many.join("|")),
    };
    let flag = if families.len() > 1 { "-E " } else { "" };
    format!(
        "$ curl -s http://{}/metrics | grep {flag}{pattern}",
        server.addr
    )
}

/// Two terminals and a browser tab talk; a fourth connection from the same address is refused;
/// one terminal says `/quit`; then `/metrics` and `/stats` are read.
pub(super) async fn metrics(ctx: Ctx) -> Result<Transcript> {
    let bin = ctx.bin(BIN).await?;
    let dir = ctx.scratch()?;
    let flags = [
        "--db",
        "chat.db",
        "--tcp",
        "127.0.0.1:0",
        "--max-connections-per-ip",
        "3",
    ];
    let server = ctx.start_in(&dir, &bin, &flags, "info").await?;
    let mut out = Transcript::default();
    out.section("start", startup(&server, &flags).await?);
    let tcp = tcp_addr(&server).await?;
    let script = Script::default();
    let mut ann = named(&script, tcp, "ann").await;
    let mut tom = named(&script, tcp, "tom").await;
    ann.read("is now tom").await;

    let mut bob = Client::connect_on(&server.ws_url(), "bob", Wire::Chat).await;
    script.note("bob: · open (a browser tab)".to_string());
    ann.read("joined lobby").await;
    bob.send_text("/nick bob").await;
    script.note(r#"bob: → sent "/nick bob""#.to_string());
    ann.read("is now bob").await;
    ann.send("hello bob").await;
    bob.expect_text("hello bob").await;
    script.note(r#"bob: ← received "hello bob""#.to_string());
    bob.send_text("hi both, from a browser tab").await;
    script.note(r#"bob: → sent "hi both, from a browser tab""#.to_string());
    ann.read("from a browser tab").await;
    tom.read("from a browser tab").await;

    // A fourth connection from 127.0.0.1, over --max-connections-per-ip 3.
    match RawClient::try_connect_with_headers(server.addr, "carol", &[]).await {
        Ok(_) => bail!("a fourth connection from one address should have been refused"),
        Err(refusal) => script.note(format!(
            "carol: · refused: {}",
            refusal.head.lines().next().unwrap_or_default()
        )),
    }
    tom.send("/quit").await;
    server
        .wait_for_log("terminal client disconnected", 1)
        .await?;
    out.section("chat", script.lines());
    out.push(
        "log",
        // Not the `connected` lines: whether the broker has recorded the name and room in the
        // span by then is a race between two tasks.
        server.log_matching(&["client disconnected", "too many clients from one address"]),
        Check::Kinds,
    );

    // The two lines said reach the database a moment after the clients read them.
    let written = tokio::time::Instant::now();
    let scrape = loop {
        let scrape = Scrape::take(&server).await?;
        if scrape.value("fanout_history_written_total") >= 2.0 {
            break scrape;
        }
        if written.elapsed() > WAIT {
            bail!("the two lines said were not written to the history within {WAIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let expected = [
        ("fanout_refused_total{reason=\"per_ip\"}", 1.0),
        ("fanout_disconnects_total{reason=\"quit\"}", 1.0),
        ("fanout_connections{transport=\"ws\"}", 1.0),
        ("fanout_connections{transport=\"tcp\"}", 1.0),
    ];
    for (series, value) in expected {
        let got = scrape.value(series);
        if (got - value).abs() > f64::EPSILON {
            bail!(
                "expected {series} {value}, got {got}:\n{}",
                scrape.lines.join("\n")
            );
        }
    }
    let counters = [
        "connections",
        "messages_in",
        "deliveries",
        "dropped",
        "disconnects",
        "rate_limited",
        "refused",
        "rooms",
        "broker_queue",
    ];
    let mut shown = vec![grep_command(&server, &counters)];
    shown.extend(scrape.grep(&counters));
    out.section("scrape", shown);
    let histogram = ["broker_event"];
    let mut shown = vec![grep_command(&server, &histogram)];
    shown.extend(scrape.grep(&histogram));
    out.section("histogram", shown);
    let storage = [
        "history",
        "db_failures",
        "db_write_seconds_sum",
        "db_write_seconds_count",
    ];
    let mut shown = vec![grep_command(&server, &storage)];
    shown.extend(scrape.grep(&storage));
    out.section("storage", shown);
    out.section("stats", curl_body(&server, "/stats").await);
    drop((ann, tom, bob));
    Ok(out)
}

/// The generator's load: s1's shape (a tenth of the clients send as fast as their window allows,
/// 64-byte messages), full size in record mode, small and short in shape mode.
fn load_flags(ctx: &Ctx, url: &str) -> Vec<String> {
    let (clients, senders, duration, drain) =
        ctx.pick(("100", "10", "10s", "2s"), ("10", "2", "1s", "500ms"));
    [
        "--url",
        url,
        "--scenario",
        "s1",
        "--clients",
        clients,
        "--senders",
        senders,
        "--duration",
        duration,
        "--drain",
        drain,
        "--no-progress",
    ]
    .into_iter()
    .map(str::to_string)
    .collect()
}

/// Chapter 10 with history on and both limits off (the generator sends as fast as it can, from
/// one address), loaded by `fanout-load`; `/metrics` is read before, every second during, and
/// after, and what changed is summed up.
pub(super) async fn load(ctx: Ctx) -> Result<Transcript> {
    // Release builds for the recording; the debug builds `cargo test` made for the shape check.
    let (server_bin, load_bin) = match ctx.mode {
        Mode::Record => {
            let dir = ctx.release(&[BIN, "fanout-load"]).await?;
            (dir.join(BIN), dir.join("fanout-load"))
        }
        Mode::Shape => (ctx.bin(BIN).await?, ctx.bin("fanout-load").await?),
    };
    let dir = ctx.scratch()?;
    let flags = [
        "--db",
        "chat.db",
        "--rate-limit",
        "off",
        "--max-connections-per-ip",
        "off",
    ];
    let server = ctx.start_in(&dir, &server_bin, &flags, "warn").await?;
    let mut out = Transcript::default();
    let mut start = vec![
        format!("$ cargo build --release -p {BIN} -p fanout-load"),
        format!("$ cargo run --release -p {BIN} -- {} &", flags.join(" ")),
        server.listening.clone(),
    ];
    let db = server.wait_for_stdout("history in ").await?;
    start.push(format!("history in {db}"));
    out.section("start", start);

    let before = Scrape::take(&server).await?;
    let args = load_flags(&ctx, &server.ws_url());
    let generator = Command::new(&load_bin)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    tokio::pin!(generator);
    let every = ctx.pick(Duration::from_secs(1), Duration::from_millis(250));
    let started = tokio::time::Instant::now();
    let mut ticks = tokio::time::interval_at(started + every, every);
    let mut during = vec![
        format!("$ cargo run --release -p fanout-load -- {}", args.join(" ")),
        format!(
            "(meanwhile /metrics is read every {}; each line is what changed since the last)",
            humanize(every)
        ),
    ];
    let mut last = Scrape::take(&server).await?;
    let limit = WAIT * 6;
    let output = loop {
        tokio::select! {
            output = &mut generator => break output.context("cannot run fanout-load")?,
            _ = ticks.tick() => {
                if started.elapsed() > limit {
                    bail!("fanout-load ran for more than {limit:?}");
                }
                let now = Scrape::take(&server).await?;
                during.push(sample_line(&last, &now, started.elapsed(), every));
                last = now;
            }
        }
    };
    if !output.status.success() {
        bail!(
            "fanout-load failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    out.section("during", during);
    let report: serde_json::Value = String::from_utf8_lossy(&output.stdout)
        .lines()
        .last()
        .map(serde_json::from_str)
        .context("fanout-load printed no JSON line")??;

    // What was said last may still be on its way to the database: wait until the storage task's
    // counts stand still.
    let mut after = Scrape::take(&server).await?;
    let settled = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let again = Scrape::take(&server).await?;
        let still = STORAGE_SERIES
            .iter()
            .all(|series| (again.value(series) - after.value(series)).abs() < 0.5);
        after = again;
        if still {
            break;
        }
        if settled.elapsed() > WAIT {
            bail!("the history counts were still moving {WAIT:?} after the load");
        }
    }
    out.section("summary", summary(&before, &after, &report));
    // The recording was measured in release builds; shape mode checks the line, not the figures.
    out.section("machine", vec![ctx.measured_on("release")]);
    Ok(out)
}

/// The storage task's counts, which go on moving for a moment after the load.
const STORAGE_SERIES: &[&str] = &[
    "fanout_history_written_total",
    "fanout_history_dropped_total",
    "fanout_db_write_seconds_count",
];

/// One line of the sampling: deliveries a second, the broker's queue, history kept and not.
fn sample_line(last: &Scrape, now: &Scrape, at: Duration, every: Duration) -> String {
    let delta = |series: &str| (now.value(series) - last.value(series)).max(0.0);
    let per_second = delta("fanout_deliveries_total") / every.as_secs_f64();
    format!(
        "{:>5.1} s  {:>11} deliveries/s  broker queue {:>5}  history written {:>9}, not kept {:>9}",
        at.as_secs_f64(),
        thousands(per_second),
        thousands(now.value("fanout_broker_queue_depth")),
        thousands(delta("fanout_history_written_total")),
        thousands(delta("fanout_history_dropped_total")),
    )
}

/// What the load did, from the counters and histograms before and after, beside what the
/// generator itself counted.
fn summary(before: &Scrape, after: &Scrape, report: &serde_json::Value) -> Vec<String> {
    let delta = |series: &str| (after.value(series) - before.value(series)).max(0.0);
    let seconds = report["send_seconds"].as_f64().unwrap_or(0.0);
    let deliveries = delta("fanout_deliveries_total");
    let per_second = if seconds > 0.0 {
        deliveries / seconds
    } else {
        0.0
    };
    let said = delta("fanout_messages_in_total");
    let broker = latency(before, after, "fanout_broker_event_seconds");
    let db = latency(before, after, "fanout_db_write_seconds");
    vec![
        format!(
            "messages in          {} in {seconds:.1} s of sending",
            thousands(said)
        ),
        format!(
            "deliveries           {} ({} a second); the generator received {}",
            thousands(deliveries),
            thousands(per_second),
            thousands(report["delivered"].as_f64().unwrap_or(0.0)),
        ),
        format!(
            "dropped (queue full) {}",
            thousands(delta("fanout_dropped_total{reason=\"queue_full\"}"))
        ),
        format!("broker, per event    {broker}"),
        format!("db write, per batch  {db}"),
        format!(
            "history              {} written, {} not kept (storage queue full), {} db failures",
            thousands(delta("fanout_history_written_total")),
            thousands(delta("fanout_history_dropped_total")),
            thousands(delta("fanout_db_failures_total")),
        ),
    ]
}

/// A histogram's percentiles over what it observed between `before` and `after`: for each, the
/// upper bound of the bucket it falls in (a histogram knows no more than that).
fn latency(before: &Scrape, after: &Scrape, family: &str) -> String {
    let old = before.buckets(family);
    let new = after.buckets(family);
    let total = match (old.last(), new.last()) {
        (Some((_, old)), Some((_, new))) => new - old,
        _ => 0.0,
    };
    if total < 1.0 {
        return "nothing observed".to_string();
    }
    let quantile = |q: f64| {
        new.iter()
            .zip(&old)
            .find(|((_, new), (_, old))| new - old >= q * total)
            .map_or_else(|| "?".to_string(), |((bound, _), _)| bound_text(bound))
    };
    format!(
        "p50 {}, p99 {}, p99.9 {}, of {}",
        quantile(0.5),
        quantile(0.99),
        quantile(0.999),
        thousands(total)
    )
}

/// A bucket's upper bound (`le`) in words: `≤ 25 µs`, `≤ 1 ms`, `> 10 s`.
fn bound_text(le: &str) -> String {
    let Ok(seconds) = le.parse::<f64>() else {
        return "> 10 s".to_string();
    };
    let (value, unit) = if seconds < 1e-3 {
        (seconds * 1e6, "µs")
    } else if seconds < 1.0 {
        (seconds * 1e3, "ms")
    } else {
        (seconds, "s")
    };
    format!("≤ {} {unit}", (value * 10.0).round() / 10.0)
}

/// A duration as the flags write it: `1s`, `250ms`.
fn humanize(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{} s", duration.as_secs())
    } else {
        format!("{} ms", duration.as_millis())
    }
}

/// `value`, rounded, with a `,` every three digits.
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}
