//! What a run found: the one JSON line it prints, and the summary a person reads.

use std::{collections::BTreeMap, fmt::Write as _};

use serde::{Deserialize, Serialize};

/// One sample of the server's resident memory.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct RssSample {
    /// Milliseconds since the run started.
    pub t_ms: u64,
    /// Resident memory, in bytes.
    pub bytes: u64,
}

/// What one sender sent and what became of it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SenderFigures {
    pub sender: u32,
    pub sent: u64,
    /// `sent` times the reading clients other than the sender.
    pub expected: u64,
    pub delivered: u64,
    pub lost: u64,
    pub out_of_order: u64,
}

/// The deliveries of one kind (same-server or cross-server) when the clients were spread over
/// several servers, with their one-way latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct ServerSplit {
    pub delivered: u64,
    pub p50_us: u64,
    pub p99_us: u64,
}

/// Everything a run measured. Serialized as the one JSON line on stdout; the benchmark runner
/// keeps these in its results file and the plot tool draws them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub scenario: String,
    /// The URL the clients connected to; with several, the first (all of them are in `urls`).
    pub url: String,
    /// How many URLs the clients were spread over. Written only when more than one, as are
    /// the three fields below: a run against one server prints what it always has.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub servers: usize,
    /// Every URL, in the order given: client `n` connected to URL `n mod servers`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// Deliveries whose sender was on the receiving client's server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_server: Option<ServerSplit>,
    /// Deliveries whose sender was on another server: they crossed between servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cross_server: Option<ServerSplit>,
    /// Reading clients asked for (senders included).
    pub clients: usize,
    /// Reading clients that got connected.
    pub connected: usize,
    pub senders: usize,
    /// Clients that never read, asked for and connected.
    pub stalled: usize,
    pub stalled_connected: usize,
    /// Message size in bytes.
    pub size: usize,
    /// Messages per second per sender; `None` for as fast as the window allows.
    pub rate: Option<f64>,
    /// The in-flight window per sender (used at max rate).
    pub window: u64,
    /// How long the senders sent (or the idle clients stayed), in seconds.
    pub send_seconds: f64,
    pub sent: u64,
    /// Messages the reading clients should have received: each message once per reading client
    /// other than its sender.
    pub expected: u64,
    pub delivered: u64,
    pub lost: u64,
    pub out_of_order: u64,
    /// Frames that were not the generator's messages (system notices, say).
    pub other: u64,
    /// Messages that came back to their own sender.
    pub echoed: u64,
    /// Deliveries per second, from the first send to the last delivery.
    pub deliveries_per_sec: f64,
    /// One-way latency percentiles over every delivery, in microseconds (0 when none).
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub per_sender: Vec<SenderFigures>,
    /// Reading clients whose connection the server ended.
    pub disconnects: u64,
    /// Those endings by close code (`1006`: no Close frame at all).
    pub closes: BTreeMap<String, u64>,
    /// Handshakes the server refused, by HTTP status.
    pub refused: BTreeMap<String, u64>,
    /// Connections that failed otherwise (refused by the kernel, timed out, ...).
    pub connect_failures: u64,
    /// The first connect failure's message, to say why.
    pub connect_failure: Option<String>,
    /// The server's process id, when it was sampled.
    pub server_pid: Option<u32>,
    /// The server's resident memory over the run.
    pub server_rss: Vec<RssSample>,
    /// Resident memory before any client connected, and with every client connected at the end
    /// of the sending (or idle) period.
    pub server_rss_before: Option<u64>,
    pub server_rss_loaded: Option<u64>,
    pub server_rss_peak: Option<u64>,
    /// (loaded − before) / (connected reading clients + connected stalled clients), in bytes.
    pub server_rss_per_client: Option<f64>,
    /// Cores the server used while the senders sent (1.0 = one core all the time).
    pub server_cpu: Option<f64>,
    /// Cores the generator used meanwhile.
    pub generator_cpu: f64,
    /// The generator's runtime threads: the most cores it can use.
    pub generator_threads: usize,
    /// How busy the whole machine was meanwhile, 0 to 1.
    pub machine_busy: Option<f64>,
    /// Cores used meanwhile by other processes than the server and the generator.
    pub other_cpu: Option<f64>,
    /// Whether the generator used (nearly) all the CPU it can: then it may be what limits the
    /// figures, not the server.
    pub generator_saturated: bool,
    /// What bounded this run, in a sentence.
    pub bound: String,
    /// Why the run stopped.
    pub stopped: String,
    /// Files the generator could open, and needed.
    pub open_file_limit: u64,
    pub open_files_needed: u64,
    /// How long the whole run took, in seconds.
    pub elapsed_seconds: f64,
}

impl Report {
    /// The summary for a person, several lines.
    pub fn summary(&self) -> String {
        let mut text = String::new();
        let sending = match (self.senders, self.rate) {
            (0, _) => "no senders".to_string(),
            (1, Some(rate)) => format!("1 sender at {rate} msg/s"),
            (1, None) => format!("1 sender at max rate, window {}", self.window),
            (senders, Some(rate)) => format!("{senders} senders at {rate} msg/s each"),
            (senders, None) => format!("{senders} senders at max rate, window {}", self.window),
        };
        let against = if self.servers > 1 {
            format!(
                "{} servers ({}, clients round-robin)",
                self.servers,
                self.urls.join(", ")
            )
        } else {
            self.url.clone()
        };
        let _ = write!(
            text,
            "{} against {against}: {} of {} clients connected ({sending}, {} B messages)",
            self.scenario, self.connected, self.clients, self.size,
        );
        if self.stalled > 0 {
            let _ = write!(
                text,
                ", {} of {} never-reading clients",
                self.stalled_connected, self.stalled
            );
        }
        text.push('\n');
        if self.senders > 0 {
            let _ = writeln!(
                text,
                "sent {} in {:.1} s; delivered {} of {} expected: {} lost, {} out of order",
                self.sent,
                self.send_seconds,
                self.delivered,
                self.expected,
                self.lost,
                self.out_of_order
            );
            let _ = writeln!(
                text,
                "{:.0} deliveries/s; latency p50 {}, p99 {}, p99.9 {}, max {}",
                self.deliveries_per_sec,
                micros(self.p50_us),
                micros(self.p99_us),
                micros(self.p999_us),
                micros(self.max_us)
            );
            let split = |split: Option<ServerSplit>| {
                split.map_or_else(
                    || "none".to_string(),
                    |split| {
                        format!(
                            "{} delivered, p50 {}, p99 {}",
                            split.delivered,
                            micros(split.p50_us),
                            micros(split.p99_us)
                        )
                    },
                )
            };
            if self.servers > 1 {
                let _ = writeln!(
                    text,
                    "same server: {}; cross-server: {}",
                    split(self.same_server),
                    split(self.cross_server)
                );
            }
        }
        if self.other > 0 || self.echoed > 0 {
            let _ = writeln!(
                text,
                "{} other frames, {} messages back to their sender",
                self.other, self.echoed
            );
        }
        let _ = writeln!(
            text,
            "disconnected by the server: {}{}",
            self.disconnects,
            list(&self.closes, "close")
        );
        if !self.refused.is_empty() || self.connect_failures > 0 {
            let _ = writeln!(
                text,
                "not connected: {} refused{}, {} failed{}",
                self.refused.values().sum::<u64>(),
                list(&self.refused, "HTTP"),
                self.connect_failures,
                self.connect_failure
                    .as_ref()
                    .map(|why| format!(" (first: {why})"))
                    .unwrap_or_default()
            );
        }
        if let (Some(before), Some(loaded), Some(peak)) = (
            self.server_rss_before,
            self.server_rss_loaded,
            self.server_rss_peak,
        ) {
            let _ = write!(
                text,
                "server memory: {} before, {} loaded, {} at the peak",
                mib(before),
                mib(loaded),
                mib(peak)
            );
            if let Some(per_client) = self.server_rss_per_client.filter(|_| self.senders == 0) {
                let _ = write!(
                    text,
                    "; {:.1} KiB per connected client",
                    per_client / 1024.0
                );
            }
            text.push('\n');
        }
        let _ = writeln!(
            text,
            "CPU: server {}, generator {:.2} cores of {} threads, others {}, machine {}",
            self.server_cpu.map_or_else(
                || "not sampled".to_string(),
                |cores| format!("{cores:.2} cores")
            ),
            self.generator_cpu,
            self.generator_threads,
            self.other_cpu
                .map_or_else(|| "?".to_string(), |cores| format!("{cores:.2} cores")),
            self.machine_busy.map_or_else(
                || "?".to_string(),
                |busy| format!("{:.0}% busy", busy * 100.0)
            )
        );
        let _ = writeln!(text, "bound: {}", self.bound);
        let _ = writeln!(text, "stopped: {}", self.stopped);
        text
    }
}

fn one() -> usize {
    1
}

fn is_one(count: &usize) -> bool {
    *count == 1
}

fn list(counts: &BTreeMap<String, u64>, what: &str) -> String {
    if counts.is_empty() {
        return String::new();
    }
    let items: Vec<String> = counts
        .iter()
        .map(|(code, count)| format!("{what} {code}: {count}"))
        .collect();
    format!(" ({})", items.join(", "))
}

/// Microseconds in the unit that reads best.
pub fn micros(us: u64) -> String {
    if us >= 10_000 {
        format!("{:.1} ms", us as f64 / 1000.0)
    } else if us >= 1_000 {
        format!("{:.2} ms", us as f64 / 1000.0)
    } else {
        format!("{us} µs")
    }
}

/// Bytes in MiB, one decimal.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A report as an s1 run might make, with `deliveries_per_sec` as given.
    pub(crate) fn report(deliveries_per_sec: f64) -> Report {
        Report {
            scenario: "s1".into(),
            url: "ws://127.0.0.1:3000/ws".into(),
            servers: 1,
            urls: Vec::new(),
            same_server: None,
            cross_server: None,
            clients: 100,
            connected: 100,
            senders: 10,
            stalled: 0,
            stalled_connected: 0,
            size: 64,
            rate: None,
            window: 24,
            send_seconds: 10.0,
            sent: 1000,
            expected: 99_000,
            delivered: 99_000,
            lost: 0,
            out_of_order: 0,
            other: 0,
            echoed: 0,
            deliveries_per_sec,
            p50_us: 1_500,
            p99_us: 8_000,
            p999_us: 12_000,
            max_us: 20_000,
            per_sender: Vec::new(),
            disconnects: 0,
            closes: BTreeMap::new(),
            refused: BTreeMap::new(),
            connect_failures: 0,
            connect_failure: None,
            server_pid: Some(42),
            server_rss: vec![
                RssSample {
                    t_ms: 0,
                    bytes: 4 << 20,
                },
                RssSample {
                    t_ms: 1_000,
                    bytes: 20 << 20,
                },
            ],
            server_rss_before: Some(4 << 20),
            server_rss_loaded: Some(20 << 20),
            server_rss_peak: Some(20 << 20),
            server_rss_per_client: Some(140_000.0),
            server_cpu: Some(0.9),
            generator_cpu: 0.8,
            generator_threads: 2,
            machine_busy: Some(0.9),
            other_cpu: Some(0.1),
            generator_saturated: false,
            bound: "the in-flight window".into(),
            stopped: "sent for 10s".into(),
            open_file_limit: 20_000,
            open_files_needed: 164,
            elapsed_seconds: 14.0,
        }
    }

    /// The summary names the figures a person looks for first.
    #[test]
    fn the_summary_shows_the_main_figures() {
        let summary = report(1_234_567.0).summary();
        for expected in [
            "1234567 deliveries/s",
            "0 lost",
            "p99 8.00 ms",
            "20.0 MiB loaded",
            "bound: ",
        ] {
            assert!(
                summary.contains(expected),
                "{expected:?} missing from:\n{summary}"
            );
        }
    }

    /// Against one server the report says nothing of servers, in the summary or the JSON line;
    /// against several it names them all and splits the latency.
    #[test]
    fn the_split_shows_only_with_several_servers() {
        let one = report(1_000.0);
        let json = serde_json::to_string(&one).expect("serializable");
        for absent in ["servers", "urls", "same_server", "cross_server"] {
            assert!(!json.contains(absent), "{absent} in {json}");
        }
        assert!(!one.summary().contains("cross-server"));
        let back: Report = serde_json::from_str(&json).expect("a one-server line reads back");
        assert_eq!(back, one);

        let mut two = one;
        two.servers = 2;
        two.urls = vec![two.url.clone(), "ws://127.0.0.1:3002/ws".into()];
        two.same_server = Some(ServerSplit {
            delivered: 44_000,
            p50_us: 1_200,
            p99_us: 6_000,
        });
        two.cross_server = Some(ServerSplit {
            delivered: 55_000,
            p50_us: 2_500,
            p99_us: 9_000,
        });
        let summary = two.summary();
        for expected in [
            "against 2 servers (ws://127.0.0.1:3000/ws, ws://127.0.0.1:3002/ws",
            "same server: 44000 delivered, p50 1.20 ms, p99 6.00 ms",
            "cross-server: 55000 delivered, p50 2.50 ms, p99 9.00 ms",
        ] {
            assert!(
                summary.contains(expected),
                "{expected:?} missing from:\n{summary}"
            );
        }
        let json = serde_json::to_string(&two).expect("serializable");
        assert!(json.contains("\"servers\":2"), "{json}");
        let back: Report = serde_json::from_str(&json).expect("reads back");
        assert_eq!(back, two);
    }
}
