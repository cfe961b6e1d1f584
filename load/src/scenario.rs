//! The generator's flags, the named scenarios that fill them in, and the [`Plan`] a run follows.
//!
//! A scenario is a set of defaults: every number it sets can be overridden by its flag, so
//! `--scenario s2 --rate 400` is s2 at 400 messages per second.

use std::{fmt, str::FromStr, time::Duration};

use crate::{payload, target, target::Target};

/// The named scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// 100 clients, 10 of them sending as fast as their window allows, 64 B messages: throughput.
    S1,
    /// 1,000 clients, one sending 100 messages a second: latency under a steady load.
    S2,
    /// s1 with 1 KiB messages and 5 more clients that never read: does a stalled client cost
    /// the others anything?
    S3,
    /// 10,000 clients that connect and stay, sending nothing: memory per connection.
    Idle,
    /// 20 clients, 2 sending 1,000 4 KiB messages a second each, and one client that never
    /// reads: the server's memory over time while a client stalls.
    Stall,
}

impl Scenario {
    /// The name flags and reports use.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::S1 => "s1",
            Scenario::S2 => "s2",
            Scenario::S3 => "s3",
            Scenario::Idle => "idle",
            Scenario::Stall => "stall",
        }
    }

    /// The scenario's numbers, before any flag overrides them.
    pub fn defaults(self) -> Defaults {
        let throughput = Defaults {
            clients: 100,
            senders: 10,
            rate: Rate::Max,
            size: 64,
            stalled: 0,
            duration: Duration::from_secs(10),
            ramp: Duration::from_secs(1),
            // Why 64 KiB: under load one read then takes up to ~900 small messages, parsed in
            // one go (see `wire`); 100 clients cost the generator 6 MiB for it.
            read_buffer: 64 << 10,
        };
        match self {
            Scenario::S1 => throughput,
            Scenario::S2 => Defaults {
                clients: 1_000,
                senders: 1,
                rate: Rate::PerSecond(100.0),
                ramp: Duration::from_secs(2),
                ..throughput
            },
            Scenario::S3 => Defaults {
                size: 1024,
                stalled: 5,
                ..throughput
            },
            // Small read buffers: 10,000 clients of 64 KiB each would cost the generator 640 MiB,
            // for clients that receive nothing.
            Scenario::Idle => Defaults {
                clients: 10_000,
                senders: 0,
                duration: Duration::from_secs(5),
                ramp: Duration::from_secs(10),
                read_buffer: 4 << 10,
                ..throughput
            },
            Scenario::Stall => Defaults {
                clients: 20,
                senders: 2,
                rate: Rate::PerSecond(1_000.0),
                size: 4096,
                stalled: 1,
                ..throughput
            },
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How fast each sender sends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// As fast as the in-flight window allows.
    Max,
    /// A fixed number of messages per second, whatever happens to them.
    PerSecond(f64),
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(text: &str) -> Result<Rate, String> {
        if text.eq_ignore_ascii_case("max") {
            return Ok(Rate::Max);
        }
        match text.parse::<f64>() {
            Ok(rate) if rate.is_finite() && rate > 0.0 && rate <= 1e6 => Ok(Rate::PerSecond(rate)),
            _ => Err("expected `max` or messages per second (more than 0, at most 1000000)".into()),
        }
    }
}

/// What a scenario sets; see the flags of the same names.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Defaults {
    pub clients: usize,
    pub senders: usize,
    pub rate: Rate,
    pub size: usize,
    pub stalled: usize,
    pub duration: Duration,
    pub ramp: Duration,
    pub read_buffer: usize,
}

// Why 24: a sender may have this many messages that the slowest reading client has not received
// yet. With s1's 10 senders that is at most 240 messages on their way to one client, fewer than
// the 256 a client's queue holds in chapters 04-07, so a healthy client loses nothing there and
// the figures compare designs, not drop policies. (With 32, chapter 04 dropped a few hundred
// of 2.3 million in s1.) The pipeline still never runs dry: 240 messages are several
// milliseconds of work for any of the chapters.
/// The default in-flight window per sender.
pub const DEFAULT_WINDOW: u64 = 24;

/// The flags of `fanout-load`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "fanout-load",
    version,
    about = "Loads a Fan-out server on this machine and measures what it delivers",
    after_help = "Every run prints a human summary on stderr and exactly one JSON line on stdout."
)]
pub struct Flags {
    /// The server's WebSocket URL; loopback only (127.0.0.0/8, [::1], localhost). Give it more than once to spread the clients, senders included, round-robin over several servers (client n on URL n mod the number of URLs); the report then splits latency into same-server and cross-server deliveries.
    #[arg(long, value_name = "URL", value_parser = target::parse, required = true)]
    pub url: Vec<Target>,
    /// The scenario whose numbers the other flags override.
    #[arg(long, value_enum, default_value_t = Scenario::S1)]
    pub scenario: Scenario,
    /// Reading clients, senders included [s1 100, s2 1000, s3 100, idle 10000, stall 20].
    #[arg(long, value_name = "N")]
    pub clients: Option<usize>,
    /// How many of the reading clients also send [s1 10, s2 1, s3 10, idle 0, stall 2].
    #[arg(long, value_name = "N")]
    pub senders: Option<usize>,
    /// Messages per second per sender, or `max` for as fast as --window allows [s2 100, stall 1000, else max].
    #[arg(long, value_name = "RATE")]
    pub rate: Option<Rate>,
    /// Message size in bytes, at least 48 [s3 1024, stall 4096, else 64].
    #[arg(long, value_name = "BYTES")]
    pub size: Option<usize>,
    /// Extra clients that connect with a small receive buffer and never read [s3 5, stall 1, else 0].
    #[arg(long, value_name = "N")]
    pub stalled: Option<usize>,
    /// At `--rate max`, how many of its messages a sender may have on their way to the slowest reading client.
    #[arg(long, value_name = "MESSAGES", default_value_t = DEFAULT_WINDOW, value_parser = clap::value_parser!(u64).range(1..))]
    pub window: u64,
    /// How long to send (idle: how long to stay connected) [idle 5s, else 10s].
    #[arg(long, value_name = "DURATION", value_parser = fanout_kit::positive_duration)]
    pub duration: Option<Duration>,
    /// The most messages one sender sends, whatever the duration.
    #[arg(long, value_name = "N", default_value_t = 10_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub messages: u64,
    /// How long connecting all the clients is spread over [s2 2s, idle 10s, else 1s].
    #[arg(long, value_name = "DURATION", value_parser = duration_or_zero)]
    pub ramp: Option<Duration>,
    /// After sending stops, how long to wait for what is still on its way.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = fanout_kit::positive_duration)]
    pub drain: Duration,
    /// The whole run stops after this long, whatever it is doing [default: ramp + duration + drain + 30s].
    #[arg(long, value_name = "DURATION", value_parser = fanout_kit::positive_duration)]
    pub deadline: Option<Duration>,
    /// The server's process id: sample its memory and CPU from /proc.
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
    /// How often to sample the server's memory.
    #[arg(long, value_name = "DURATION", default_value = "250ms", value_parser = fanout_kit::positive_duration)]
    pub sample_every: Duration,
    /// Each reading client's read buffer, in bytes [idle 4096, else 65536].
    #[arg(long, value_name = "BYTES")]
    pub read_buffer: Option<usize>,
    /// Worker threads of the generator's runtime [default: the number of cores].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=256))]
    pub threads: Option<u64>,
    /// No progress bar (it is hidden anyway when stderr is not a terminal).
    #[arg(long)]
    pub no_progress: bool,
}

/// Everything a run needs to know, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub scenario: String,
    /// The servers' URLs, at least one; clients are spread over them round-robin (see
    /// [`Plan::server_of`]).
    pub targets: Vec<Target>,
    pub clients: usize,
    pub senders: usize,
    pub rate: Rate,
    pub size: usize,
    pub stalled: usize,
    pub window: u64,
    pub duration: Duration,
    pub messages: u64,
    pub ramp: Duration,
    pub drain: Duration,
    pub deadline: Duration,
    pub pid: Option<u32>,
    pub sample_every: Duration,
    pub read_buffer: usize,
    /// Worker threads of the generator's runtime (how many cores it can use at most).
    pub threads: usize,
    pub progress: bool,
}

/// How long connecting one client may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl Flags {
    /// The plan: the scenario's numbers with the flags' overrides, checked together.
    pub fn plan(&self) -> Result<Plan, String> {
        let defaults = self.scenario.defaults();
        let ramp = self.ramp.unwrap_or(defaults.ramp);
        let duration = self.duration.unwrap_or(defaults.duration);
        let plan = Plan {
            scenario: self.scenario.name().to_string(),
            targets: self.url.clone(),
            clients: self.clients.unwrap_or(defaults.clients),
            senders: self.senders.unwrap_or(defaults.senders),
            rate: self.rate.unwrap_or(defaults.rate),
            size: self.size.unwrap_or(defaults.size),
            stalled: self.stalled.unwrap_or(defaults.stalled),
            window: self.window,
            duration,
            messages: self.messages,
            ramp,
            drain: self.drain,
            deadline: self.deadline.unwrap_or(
                ramp + CONNECT_TIMEOUT + duration + self.drain + Duration::from_secs(30),
            ),
            pid: self.pid,
            sample_every: self.sample_every,
            read_buffer: self.read_buffer.unwrap_or(defaults.read_buffer),
            threads: self.threads.map_or_else(cores, |threads| threads as usize),
            progress: !self.no_progress,
        };
        plan.check()?;
        Ok(plan)
    }
}

impl Plan {
    /// Which of the URLs client `client` connects to: round-robin, so with several URLs the
    /// clients, and the senders among them (sender `s` is client `s`), are spread evenly.
    pub fn server_of(&self, client: usize) -> usize {
        client % self.targets.len().max(1)
    }

    /// The URL client `client` connects to.
    pub fn target_of(&self, client: usize) -> &Target {
        &self.targets[self.server_of(client)]
    }

    fn check(&self) -> Result<(), String> {
        if self.targets.is_empty() {
            return Err("--url: at least one URL is needed".into());
        }
        if self.clients == 0 && self.stalled == 0 {
            return Err("--clients: at least one client is needed".into());
        }
        if self.senders > self.clients {
            return Err(format!(
                "--senders {} is more than --clients {}: every sender is also a reading client",
                self.senders, self.clients
            ));
        }
        if self.senders > 0 && self.clients < 2 {
            return Err("--clients: a sender needs at least one other client to receive".into());
        }
        if self.size < payload::MIN_SIZE {
            return Err(format!("--size must be at least {}", payload::MIN_SIZE));
        }
        if self.size > 16 << 20 {
            return Err("--size must be at most 16777216 (16 MiB)".into());
        }
        if !(1024..=16 << 20).contains(&self.read_buffer) {
            return Err("--read-buffer must be between 1024 and 16777216".into());
        }
        if self.clients + self.stalled > 1_000_000 {
            return Err("--clients and --stalled: at most 1,000,000 clients together".into());
        }
        Ok(())
    }

    /// Open files the run needs: one socket per client, and some room for the rest.
    pub fn files_needed(&self) -> u64 {
        (self.clients + self.stalled + 64) as u64
    }
}

/// The cores this process may use.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// A duration that may be zero (`--ramp 0s` connects everyone at once).
fn duration_or_zero(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|err| err.to_string())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn plan(args: &[&str]) -> Result<Plan, String> {
        plan_at("ws://127.0.0.1:3000/ws", args)
    }

    fn plan_at(url: &str, args: &[&str]) -> Result<Plan, String> {
        let args = ["fanout-load", "--url", url]
            .into_iter()
            .chain(args.iter().copied());
        Flags::try_parse_from(args)
            .map_err(|err| err.to_string())?
            .plan()
    }

    /// Each named scenario has the numbers the issue gives it.
    #[test]
    fn scenarios_have_their_documented_numbers() {
        let s1 = plan(&[]).expect("s1 is the default");
        assert_eq!(s1.scenario, "s1");
        assert_eq!(
            (s1.clients, s1.senders, s1.rate, s1.size, s1.stalled),
            (100, 10, Rate::Max, 64, 0)
        );
        let s2 = plan(&["--scenario", "s2"]).expect("s2");
        assert_eq!(
            (s2.clients, s2.senders, s2.rate),
            (1_000, 1, Rate::PerSecond(100.0))
        );
        let s3 = plan(&["--scenario", "s3"]).expect("s3");
        assert_eq!(
            (s3.clients, s3.senders, s3.rate, s3.size, s3.stalled),
            (100, 10, Rate::Max, 1024, 5)
        );
        let idle = plan(&["--scenario", "idle"]).expect("idle");
        assert_eq!((idle.clients, idle.senders, idle.stalled), (10_000, 0, 0));
        let stall = plan(&["--scenario", "stall"]).expect("stall");
        assert_eq!((stall.senders, stall.stalled, stall.size), (2, 1, 4096));
    }

    /// Every number a scenario sets is overridden by its flag.
    #[test]
    fn flags_override_the_scenario() {
        let s2 = plan(&[
            "--scenario",
            "s2",
            "--rate",
            "400",
            "--clients",
            "50",
            "--size",
            "100",
        ])
        .expect("valid flags");
        assert_eq!(
            (s2.clients, s2.senders, s2.rate, s2.size),
            (50, 1, Rate::PerSecond(400.0), 100)
        );
        let max = plan(&["--scenario", "s2", "--rate", "max", "--window", "8"]).expect("max");
        assert_eq!((max.rate, max.window), (Rate::Max, 8));
        let ramp = plan(&["--ramp", "0s", "--duration", "2s", "--drain", "1s"]).expect("times");
        assert_eq!(ramp.ramp, Duration::ZERO);
        assert_eq!(
            ramp.deadline,
            Duration::from_secs(2 + 1 + 30) + CONNECT_TIMEOUT,
            "the default deadline leaves room for every phase"
        );
    }

    /// Combinations that cannot make a run are refused with the flag's name.
    #[test]
    fn impossible_plans_are_refused() {
        for (args, flag) in [
            (&["--clients", "5", "--senders", "6"][..], "--senders"),
            (&["--clients", "1", "--senders", "1"], "--clients"),
            (&["--size", "47"], "--size"),
            (&["--rate", "0"], "--rate"),
            (&["--rate", "fast"], "--rate"),
            (&["--window", "0"], "--window"),
            (&["--duration", "0s"], "--duration"),
        ] {
            let err = plan(args).expect_err(&format!("{args:?} should be refused"));
            assert!(
                err.contains(flag),
                "{args:?}: the error should name {flag}: {err}"
            );
        }
        let err = plan_at("ws://10.1.2.3/ws", &[]).expect_err("not loopback");
        assert!(err.contains("--url") && err.contains("loopback"), "{err}");
    }

    /// `--url` given several times spreads the clients round-robin, and every URL must pass the
    /// loopback check, not only the first.
    #[test]
    fn several_urls_spread_the_clients_and_each_is_checked() {
        let spread = plan(&["--url", "ws://127.0.0.1:3002/ws"]).expect("two loopback URLs");
        assert_eq!(spread.targets.len(), 2);
        let ports: Vec<u16> = (0..4)
            .map(|client| spread.target_of(client).addr.port())
            .collect();
        assert_eq!(ports, [3000, 3002, 3000, 3002], "client n on URL n mod 2");
        let err = plan(&["--url", "ws://10.1.2.3/ws"]).expect_err("the second is not loopback");
        assert!(err.contains("--url") && err.contains("loopback"), "{err}");
    }
}
