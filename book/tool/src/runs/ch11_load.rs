//! Chapter 11's load run: `fanout-load`'s s1 against one instance on Redis, then with its clients
//! spread over two instances on one Redis, and the figures side by side. (Listed in `ch11.rs`'s
//! table, with the chapter's other runs.)

use std::{path::Path, process::Stdio};

use anyhow::{Context, Result, bail};
use stage_tests::redis::RedisServer;
use tokio::process::Command;

use super::{
    Mode, Transcript,
    ch11::{BIN, SECOND_ADDR, redis_command, stat, wait_for_stat},
    harness::{Ctx, Server, WAIT},
};

/// The binaries a case runs: release builds for the recording, the debug builds `cargo test`
/// made for the shape check.
struct Bins {
    server: std::path::PathBuf,
    load: std::path::PathBuf,
}

/// What one case (one instance, or two) printed and measured.
struct Case {
    lines: Vec<String>,
    report: serde_json::Value,
    /// Cores the instances used together, and Redis, over the generator's whole run.
    instances_cpu: Option<f64>,
    redis_cpu: Option<f64>,
    /// `/stats` of the instances, summed: news that did not fit the queue to Redis, and news
    /// from Redis that did not fit the queue to the broker.
    unpublished: u64,
    unheard: u64,
}

/// One instance on Redis under s1, then two on one Redis with the same s1 spread over both.
pub(super) async fn load(ctx: Ctx) -> Result<Transcript> {
    let bins = match ctx.mode {
        Mode::Record => {
            let dir = ctx.release(&[BIN, "fanout-load"]).await?;
            Bins {
                server: dir.join(BIN),
                load: dir.join("fanout-load"),
            }
        }
        Mode::Shape => Bins {
            server: ctx.bin(BIN).await?,
            load: ctx.bin("fanout-load").await?,
        },
    };
    let dir = ctx.scratch()?;
    let mut out = Transcript::default();
    let one = case(&ctx, &bins, &dir, 1).await?;
    out.section("one", one.lines.clone());
    let two = case(&ctx, &bins, &dir, 2).await?;
    out.section("two", two.lines.clone());
    out.section("table", table(&one, &two));
    // The recording was measured in release builds; shape mode checks the line, not the figures.
    out.section("machine", vec![ctx.measured_on("release")]);
    Ok(out)
}

/// A fresh `redis-server`, `instances` fresh instances on it, and s1 with its clients spread
/// over them all.
async fn case(ctx: &Ctx, bins: &Bins, dir: &Path, instances: usize) -> Result<Case> {
    let redis = RedisServer::start().await;
    let url = redis.url();
    let mut lines = vec![redis_command(&redis)];
    let mut servers: Vec<Server> = Vec::new();
    for n in 1..=instances {
        // Each case starts from empty databases (SQLite is not used with --redis, but a reader
        // who drops --redis should not find the other case's history there).
        let db = format!("{n}.db");
        let _ = std::fs::remove_file(dir.join(&db));
        let shared = [
            "--redis",
            &url,
            "--db",
            &db,
            "--rate-limit",
            "off",
            "--max-connections-per-ip",
            "off",
        ];
        // The second listens on its own port in record mode, beside the first's default.
        let mut flags: Vec<&str> = Vec::new();
        if n > 1 && ctx.mode == Mode::Record {
            flags.extend(["--addr", SECOND_ADDR]);
        }
        flags.extend(shared);
        let server = ctx.start_in(dir, &bins.server, &flags, "warn").await?;
        // The command as the reader types it: the second's address named (in shape mode it is
        // the port the OS gave, which has the same shape).
        let shown = if n > 1 {
            format!("--addr {} {}", server.addr, shared.join(" "))
        } else {
            shared.join(" ")
        };
        lines.push(format!("$ cargo run --release -p {BIN} -- {shown} &"));
        lines.push(server.listening.clone());
        servers.push(server);
    }
    // The instances find each other on their own time; a load that started before would count
    // the first messages as lost.
    if instances > 1 {
        for server in &servers {
            wait_for_stat(server, "peers", instances as u64 - 1).await?;
        }
    }

    let args = load_flags(ctx, &servers);
    lines.push(format!(
        "$ cargo run --release -p fanout-load -- {}",
        args.join(" ")
    ));
    let pids: Vec<u32> = servers.iter().filter_map(Server::process_id).collect();
    let redis_pid = redis.pid();
    let before = (
        cpu_ticks(&pids),
        redis_pid.and_then(|pid| cpu_ticks(&[pid])),
    );
    let started = tokio::time::Instant::now();
    let generator = Command::new(&bins.load)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let limit = WAIT * 6;
    let output = tokio::time::timeout(limit, generator)
        .await
        .map_err(|_| anyhow::anyhow!("fanout-load ran for more than {limit:?}"))?
        .context("cannot run fanout-load")?;
    let seconds = started.elapsed().as_secs_f64();
    let after = (
        cpu_ticks(&pids),
        redis_pid.and_then(|pid| cpu_ticks(&[pid])),
    );
    if !output.status.success() {
        bail!(
            "fanout-load failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    // The summary's lines about what was delivered and how fast; not those whose wording
    // depends on the moment (what bound the run, why it stopped).
    let summary = String::from_utf8_lossy(&output.stderr);
    lines.extend(
        summary
            .lines()
            .filter(|line| {
                line.starts_with("s1 against")
                    || line.starts_with("sent ")
                    || line.contains("deliveries/s; latency")
                    || line.starts_with("same server:")
            })
            .map(str::to_string),
    );
    let report: serde_json::Value = String::from_utf8_lossy(&output.stdout)
        .lines()
        .last()
        .map(serde_json::from_str)
        .context("fanout-load printed no JSON line")??;
    let cores = |before: Option<u64>, after: Option<u64>| {
        let used = after?.checked_sub(before?)?;
        Some(used as f64 / ticks_per_second() / seconds)
    };
    let (mut unpublished, mut unheard) = (0, 0);
    for server in &servers {
        unpublished += stat(server, "unpublished").await?;
        unheard += stat(server, "unheard").await?;
    }
    drop(servers);
    Ok(Case {
        unpublished,
        unheard,
        lines,
        report,
        instances_cpu: cores(before.0, after.0),
        redis_cpu: cores(before.1, after.1),
    })
}

/// s1's shape (100 clients, 10 sending as fast as their window allows, 64-byte messages), one
/// `--url` per instance; full size in record mode, small and short in shape mode.
fn load_flags(ctx: &Ctx, servers: &[Server]) -> Vec<String> {
    let (clients, senders, duration, drain) =
        ctx.pick(("100", "10", "10s", "2s"), ("10", "2", "1s", "500ms"));
    let mut args = Vec::new();
    for server in servers {
        args.extend(["--url".to_string(), server.ws_url()]);
    }
    args.extend(
        [
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
        .map(str::to_string),
    );
    args
}

/// The two cases side by side.
fn table(one: &Case, two: &Case) -> Vec<String> {
    let number = |case: &Case, field: &str| case.report[field].as_f64().unwrap_or(0.0);
    let micros_of = |value: Option<f64>| value.map_or_else(|| "-".to_string(), micros);
    let cores = |value: Option<f64>| value.map_or_else(|| "?".to_string(), |v| format!("{v:.2}"));
    let row = |label: &str, one: String, two: String| format!("{label:<26} {one:>14} {two:>14}");
    vec![
        row("", "one instance".into(), "two instances".into()),
        row(
            "deliveries/s",
            format!("{:.0}", number(one, "deliveries_per_sec")),
            format!("{:.0}", number(two, "deliveries_per_sec")),
        ),
        row(
            "lost",
            format!("{:.0}", number(one, "lost")),
            format!("{:.0}", number(two, "lost")),
        ),
        row(
            "latency p50",
            micros(number(one, "p50_us")),
            micros(number(two, "p50_us")),
        ),
        row(
            "latency p99",
            micros(number(one, "p99_us")),
            micros(number(two, "p99_us")),
        ),
        row(
            "  same-server p99",
            "-".into(),
            micros_of(two.report["same_server"]["p99_us"].as_f64()),
        ),
        row(
            "  cross-server p99",
            "-".into(),
            micros_of(two.report["cross_server"]["p99_us"].as_f64()),
        ),
        row(
            "unpublished (/stats)",
            one.unpublished.to_string(),
            two.unpublished.to_string(),
        ),
        row(
            "unheard (/stats)",
            one.unheard.to_string(),
            two.unheard.to_string(),
        ),
        row(
            "CPU, instances (cores)",
            cores(one.instances_cpu),
            cores(two.instances_cpu),
        ),
        row(
            "CPU, redis-server (cores)",
            cores(one.redis_cpu),
            cores(two.redis_cpu),
        ),
        "(CPU over the generator's whole run: connecting, sending, draining)".to_string(),
    ]
}

/// Microseconds in the unit that reads best, as `fanout-load` writes them.
fn micros(us: f64) -> String {
    if us >= 10_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else if us >= 1_000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

/// CPU time used so far by the processes `pids` together, user and system, in clock ticks
/// (fields 14 and 15 of `/proc/PID/stat`, counted after the command name); `None` if one of them
/// cannot be read.
fn cpu_ticks(pids: &[u32]) -> Option<u64> {
    let mut total = 0;
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (_, after_name) = stat.rsplit_once(')')?;
        // After the name: state (field 3), ..., utime (14), stime (15).
        let mut fields = after_name.split_whitespace().skip(11);
        let user: u64 = fields.next()?.parse().ok()?;
        let system: u64 = fields.next()?.parse().ok()?;
        total += user + system;
    }
    Some(total)
}

/// Clock ticks per second, the unit of `/proc/PID/stat` times.
fn ticks_per_second() -> f64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(ticks)) if ticks > 0 => ticks as f64,
        _ => 100.0,
    }
}
