//! `plot`: redraws the benchmark figures and the table from the results file, without measuring
//! anything (`bench` calls the same code after a run).
//!
//! ```text
//! cargo run -p fanout-load --bin plot
//! ```

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use fanout_load::{
    bench::{self, Results},
    plot,
};

#[derive(Parser)]
#[command(
    version,
    about = "Draws the benchmark figures (SVG) and the table (Markdown) from a results file"
)]
struct Args {
    /// The results file [default: book/src/bench/results.json].
    #[arg(long)]
    results: Option<PathBuf>,
    /// Where the figures and table.md go [default: the results file's folder].
    #[arg(long)]
    out: Option<PathBuf>,
    /// The page whose table section is rewritten [default: BENCHMARKS.md].
    #[arg(long)]
    benchmarks: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args: Args = fanout_kit::parse_flags();
    let root = bench::workspace_root();
    let results_path = args
        .results
        .unwrap_or_else(|| root.join("book/src/bench/results.json"));
    let out = args
        .out
        .or_else(|| results_path.parent().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("."));
    let benchmarks = args
        .benchmarks
        .unwrap_or_else(|| root.join("BENCHMARKS.md"));
    let written = Results::load(&results_path).and_then(|results| {
        if results.runs.is_empty() {
            anyhow::bail!(
                "{} holds no runs yet: run `bench` first",
                results_path.display()
            );
        }
        plot::write_all(&results, &out, &benchmarks)
    });
    match written {
        Ok(paths) => {
            for path in paths {
                eprintln!("wrote {}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
