//! The benchmark runner: starts a chapter's release binary, runs the generator's scenarios
//! against it (sampling its memory and CPU by pid), stops it, and keeps the results.
//!
//! Every scenario gets a fresh server, so each starts from the same memory and the runs do not
//! disturb one another. The results file keeps every run, each stamped with the machine and the
//! date; the plot tool draws the latest figures of each chapter.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{Context, bail};
use clap::Parser;
use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

use crate::{Flags, Report, system::Machine};

/// The scenarios a benchmark run knows, in the order it runs them: the generator's named
/// scenarios, and `s2-400`, which is s2 at 400 messages per second.
pub const SCENARIOS: &[&str] = &["s1", "s2", "s2-400", "s3", "stall", "idle"];

/// The generator's flags for a benchmark scenario.
pub fn generator_flags(scenario: &str) -> anyhow::Result<Vec<String>> {
    let flags: &[&str] = match scenario {
        "s1" | "s2" | "s3" | "stall" | "idle" => &["--scenario", scenario],
        "s2-400" => &["--scenario", "s2", "--rate", "400"],
        other => bail!(
            "unknown scenario {other:?}; the scenarios are {}",
            SCENARIOS.join(", ")
        ),
    };
    Ok(flags.iter().map(|flag| flag.to_string()).collect())
}

/// One scenario run against one chapter.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Measurement {
    /// The chapter, e.g. `04-bounded`.
    pub chapter: String,
    /// The benchmark scenario, e.g. `s2-400`.
    pub scenario: String,
    /// The flags the server ran with (besides `--addr`).
    pub server_flags: Vec<String>,
    /// What the generator reported.
    pub report: Report,
}

/// One benchmark run: when, where, on which code, and what it measured.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Run {
    /// When it started (UTC, RFC 3339).
    pub date: String,
    pub machine: Machine,
    /// The commit of the workspace measured (`git describe --always --dirty`), if known.
    pub commit: Option<String>,
    pub measurements: Vec<Measurement>,
}

/// The results file: every run, oldest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Results {
    pub runs: Vec<Run>,
}

impl Results {
    /// Reads `path`; a file that does not exist yet is an empty history.
    pub fn load(path: &Path) -> anyhow::Result<Results> {
        match fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text)
                .with_context(|| format!("{} is not a results file", path.display())),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Results::default()),
            Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Writes the file, pretty-printed so that a new run reads as a diff.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let mut text = serde_json::to_string_pretty(self)?;
        text.push('\n');
        fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
    }

    /// The latest measurement of each (chapter, scenario), sorted by chapter, then scenario in
    /// the order of [`SCENARIOS`]. A chapter that is no longer in the workspace (06-hardening,
    /// split into 06-limits and 07-timeouts) stays in the results file, as history, but is left
    /// out: a figure for code that no reader can run does not belong in the table.
    pub fn latest(&self) -> Vec<&Measurement> {
        let chapters = workspace_root().join("chapters");
        let mut latest: Vec<&Measurement> = Vec::new();
        for measurement in self
            .runs
            .iter()
            .flat_map(|run| &run.measurements)
            .filter(|measurement| chapters.join(&measurement.chapter).is_dir())
        {
            latest.retain(|kept| {
                (&kept.chapter, &kept.scenario) != (&measurement.chapter, &measurement.scenario)
            });
            latest.push(measurement);
        }
        latest.sort_by_key(|measurement| {
            let order = SCENARIOS
                .iter()
                .position(|name| *name == measurement.scenario);
            (
                measurement.chapter.clone(),
                order,
                measurement.scenario.clone(),
            )
        });
        latest
    }

    /// The run that holds `measurement`.
    pub fn run_of(&self, measurement: &Measurement) -> Option<&Run> {
        self.runs.iter().find(|run| {
            run.measurements
                .iter()
                .any(|kept| std::ptr::eq(kept, measurement))
        })
    }
}

/// A chapter's server, started for one scenario and killed when dropped.
pub struct Server {
    pub addr: String,
    pub pid: u32,
    child: Child,
}

impl Server {
    /// Starts `bin --addr 127.0.0.1:0 flags…` with its logs (warnings only) going to `log`, and
    /// waits for its `listening on http://IP:PORT` line.
    pub async fn start(bin: &Path, flags: &[String], log: &Path) -> anyhow::Result<Server> {
        if let Some(dir) = log.parent() {
            fs::create_dir_all(dir)?;
        }
        let log_file =
            fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        let mut child = Command::new(bin)
            .args(["--addr", "127.0.0.1:0"])
            .args(flags)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let pid = child.id().context("the server exited at once")?;
        let stdout = child.stdout.take().context("the server's stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .with_context(|| format!("{} printed nothing within 10 s", bin.display()))??
            .with_context(|| {
                format!(
                    "{} exited without printing where it listens; see {}",
                    bin.display(),
                    log.display()
                )
            })?;
        let addr = first
            .strip_prefix("listening on http://")
            .with_context(|| format!("expected `listening on http://IP:PORT`, got {first:?}"))?
            .to_string();
        // Keep reading stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Server { addr, pid, child })
    }

    /// The WebSocket URL.
    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Whether it is still running (a server that died during a scenario makes its figures
    /// worthless).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills it and waits for it to go.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

/// Whether `bin --help` lists `flag`: older chapters lack some flags, and an unknown flag would
/// stop them at startup.
pub async fn has_flag(bin: &Path, flag: &str) -> bool {
    let help = Command::new(bin)
        .arg("--help")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(Duration::from_secs(10), help).await {
        Ok(Ok(output)) => String::from_utf8_lossy(&output.stdout).contains(flag),
        _ => false,
    }
}

/// The flags a chapter's server needs for a scenario: the idle scenario's 10,000 clients are
/// over chapter 06's default `--max-connections` of 1000, so it is raised where the flag exists.
pub async fn server_flags_for(bin: &Path, scenario: &str, extra: &[String]) -> Vec<String> {
    let mut flags = Vec::new();
    if scenario == "idle" && has_flag(bin, "--max-connections").await {
        flags.extend(["--max-connections".to_string(), "11000".to_string()]);
    }
    flags.extend(extra.iter().cloned());
    flags
}

/// Runs one scenario against one chapter: a fresh server, the generator in this process with the
/// server's pid, then the server stopped.
pub async fn measure(
    chapter: &str,
    bin: &Path,
    scenario: &str,
    server_flags: Vec<String>,
    generator_extra: &[String],
    logs: &Path,
) -> anyhow::Result<Measurement> {
    let log = logs.join(format!("{chapter}-{scenario}.log"));
    let mut server = Server::start(bin, &server_flags, &log).await?;
    let mut args = vec![
        "fanout-load".to_string(),
        "--url".to_string(),
        server.url(),
        "--pid".to_string(),
        server.pid.to_string(),
    ];
    args.extend(generator_flags(scenario)?);
    args.extend(generator_extra.iter().cloned());
    let plan = Flags::try_parse_from(&args)
        .map_err(|err| anyhow::anyhow!("generator flags {args:?}: {err}"))?
        .plan()
        .map_err(|err| anyhow::anyhow!("generator flags {args:?}: {err}"))?;
    let report = crate::run(plan).await;
    let still_running = server.is_running();
    server.stop().await;
    if !still_running {
        bail!(
            "{chapter} exited during {scenario}; its log is {}",
            log.display()
        );
    }
    Ok(Measurement {
        chapter: chapter.to_string(),
        scenario: scenario.to_string(),
        server_flags,
        report,
    })
}

/// The workspace's root, where `target/` and `book/` are.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Where cargo puts release binaries (`CARGO_TARGET_DIR` respected).
pub fn release_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), PathBuf::from)
        .join("release")
}

/// `git describe --always --dirty` of the workspace, if git is there.
pub fn commit(root: &Path) -> Option<String> {
    let output = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(root)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout).trim().to_string();
    (output.status.success() && !text.is_empty()).then_some(text)
}

/// The package of a chapter: `04-bounded` → `ch04-bounded`.
pub fn package(chapter: &str) -> String {
    format!("ch{chapter}")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Every benchmark scenario maps to generator flags that make a valid plan.
    #[test]
    fn every_scenario_makes_a_plan() {
        for scenario in SCENARIOS {
            let mut args = vec![
                "fanout-load".to_string(),
                "--url".into(),
                "ws://127.0.0.1:1/ws".into(),
            ];
            args.extend(generator_flags(scenario).expect("a known scenario"));
            let plan = Flags::try_parse_from(&args)
                .expect("flags parse")
                .plan()
                .expect("a valid plan");
            let expected = if *scenario == "s2-400" {
                "s2"
            } else {
                scenario
            };
            assert_eq!(plan.scenario, expected);
        }
        let s2_400 = generator_flags("s2-400").expect("known");
        assert!(s2_400.ends_with(&["--rate".to_string(), "400".to_string()]));
        assert!(
            generator_flags("s9").is_err(),
            "an unknown scenario is refused"
        );
    }

    /// The latest measurement of each chapter and scenario wins, in a stable order; a chapter
    /// that no longer exists is left out.
    #[test]
    fn the_latest_measurement_of_each_pair_is_kept() {
        let results = Results {
            runs: vec![
                run(&[("04-bounded", "s1", 1.0), ("03-broker", "s1", 2.0)]),
                run(&[("04-bounded", "idle", 3.0), ("04-bounded", "s1", 4.0)]),
                run(&[("06-hardening", "s1", 5.0)]),
            ],
        };
        let latest: Vec<(&str, &str, f64)> = results
            .latest()
            .iter()
            .map(|m| {
                (
                    m.chapter.as_str(),
                    m.scenario.as_str(),
                    m.report.deliveries_per_sec,
                )
            })
            .collect();
        assert_eq!(
            latest,
            [
                ("03-broker", "s1", 2.0),
                ("04-bounded", "s1", 4.0),
                ("04-bounded", "idle", 3.0)
            ]
        );
    }

    /// A results file survives a save and a load unchanged, and a missing file is an empty one.
    #[test]
    fn results_round_trip_through_the_file() {
        let dir = std::env::temp_dir().join(format!("fanout-load-results-{}", std::process::id()));
        let path = dir.join("results.json");
        assert_eq!(
            Results::load(&path).expect("missing is fine"),
            Results::default()
        );
        let results = Results {
            runs: vec![run(&[("04-bounded", "s1", 1.5)])],
        };
        results.save(&path).expect("saving");
        assert_eq!(Results::load(&path).expect("loading"), results);
        let _ = fs::remove_dir_all(dir);
    }

    pub(crate) fn run(measurements: &[(&str, &str, f64)]) -> Run {
        Run {
            date: "2026-01-01T00:00:00Z".into(),
            machine: Machine::describe(),
            commit: None,
            measurements: measurements
                .iter()
                .map(|(chapter, scenario, rate)| Measurement {
                    chapter: chapter.to_string(),
                    scenario: scenario.to_string(),
                    server_flags: Vec::new(),
                    report: crate::report::tests::report(*rate),
                })
                .collect(),
        }
    }
}
