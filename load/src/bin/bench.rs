//! `bench`: the benchmark table, in one command.
//!
//! ```text
//! cargo run --release -p fanout-load --bin bench -- --chapters 03-broker,04-bounded,07-timeouts
//! ```
//!
//! Builds the chapters' release binaries, runs every scenario against each (a fresh server for
//! each scenario), appends the results to `book/src/bench/results.json` with the machine and the
//! date, and redraws the figures and the table (as `plot` does).

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::Parser;
use fanout_load::{
    bench::{self, Measurement, Results, Run},
    plot, system,
};

#[derive(Parser)]
#[command(
    version,
    about = "Runs the benchmark scenarios against Fan-out chapters and keeps the results"
)]
struct Args {
    /// The chapters to measure, comma-separated, e.g. 03-broker,04-bounded,07-timeouts.
    #[arg(long, value_delimiter = ',', required = true)]
    chapters: Vec<String>,
    /// The scenarios, comma-separated: s1, s2, s2-400, s3, stall, idle [default: all].
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<String>,
    /// The results file the run is appended to [default: book/src/bench/results.json].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Where the figures and the table go [default: the results file's folder].
    #[arg(long)]
    figures: Option<PathBuf>,
    /// Extra flags for one chapter's server, as CHAPTER=FLAGS (repeatable), e.g. '07-timeouts=--queue-capacity 512'.
    #[arg(long, value_name = "CHAPTER=FLAGS")]
    server_flags: Vec<String>,
    /// Override every scenario's duration (e.g. 3s for a quick look).
    #[arg(long, value_parser = fanout_kit::positive_duration)]
    duration: Option<Duration>,
    /// Do not build the chapters first (use the binaries already in target/release).
    #[arg(long)]
    no_build: bool,
    /// Do not redraw the figures afterwards.
    #[arg(long)]
    no_plot: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Args = fanout_kit::parse_flags();
    match bench(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn bench(args: Args) -> anyhow::Result<()> {
    let root = bench::workspace_root();
    let out = args
        .out
        .unwrap_or_else(|| root.join("book/src/bench/results.json"));
    let scenarios: Vec<String> = if args.scenarios.is_empty() {
        bench::SCENARIOS
            .iter()
            .map(|name| name.to_string())
            .collect()
    } else {
        args.scenarios
    };
    for scenario in &scenarios {
        bench::generator_flags(scenario)?;
    }
    let mut extra_flags = Vec::new();
    for given in &args.server_flags {
        let (chapter, flags) = given
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--server-flags {given:?}: expected CHAPTER=FLAGS"))?;
        extra_flags.push((
            chapter.to_string(),
            flags
                .split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>(),
        ));
    }
    // Raised here, before any server starts: the servers inherit it (10,000 idle clients need
    // 10,000 sockets on each side).
    let limit = system::raise_open_file_limit(11_000 + 64)?;
    if !limit.enough() {
        eprintln!(
            "warning: only {} open files allowed (hard limit {}); the idle scenario needs {}",
            limit.soft, limit.hard, limit.needed
        );
    }
    if !args.no_build {
        build(&root, &args.chapters)?;
    }
    let machine = system::Machine::describe();
    let date = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let mut run = Run {
        date,
        machine,
        commit: bench::commit(&root),
        measurements: Vec::new(),
    };
    eprintln!(
        "machine: {} ({} cores), load average {} at the start",
        run.machine.cpu, run.machine.cores, run.machine.load_average
    );
    let logs = bench::release_dir(&root).join("bench-logs");
    let generator_extra: Vec<String> = args
        .duration
        .map(|duration| {
            vec![
                "--duration".to_string(),
                humantime::format_duration(duration).to_string(),
            ]
        })
        .unwrap_or_default();
    for chapter in &args.chapters {
        let bin = bench::release_dir(&root).join(bench::package(chapter));
        if !bin.exists() {
            anyhow::bail!(
                "{} does not exist: build it with `cargo build --release -p {}`",
                bin.display(),
                bench::package(chapter)
            );
        }
        let extra: Vec<String> = extra_flags
            .iter()
            .filter(|(name, _)| name == chapter)
            .flat_map(|(_, flags)| flags.iter().cloned())
            .collect();
        for scenario in &scenarios {
            let flags = bench::server_flags_for(&bin, scenario, &extra).await;
            eprintln!("== {chapter} {scenario} {}", flags.join(" "));
            let measurement: Measurement =
                bench::measure(chapter, &bin, scenario, flags, &generator_extra, &logs).await?;
            eprint!("{}", measurement.report.summary());
            run.measurements.push(measurement);
        }
    }
    let mut results = Results::load(&out)?;
    results.runs.push(run);
    results.save(&out)?;
    eprintln!("appended to {}", out.display());
    if !args.no_plot {
        let figures = args
            .figures
            .or_else(|| out.parent().map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("."));
        let written = plot::write_all(&results, &figures, &root.join("BENCHMARKS.md"))?;
        for path in written {
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}

/// `cargo build --release -p chNN-name …` for the chapters.
fn build(root: &std::path::Path, chapters: &[String]) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    command.current_dir(root).args(["build", "--release"]);
    for chapter in chapters {
        command.args(["-p", &bench::package(chapter)]);
    }
    eprintln!("building the chapters' release binaries…");
    let status = command.status()?;
    if !status.success() {
        anyhow::bail!("cargo build failed ({status})");
    }
    Ok(())
}
