//! Every terminal output the book shows, made by a run you can repeat.
//!
//! A *run* starts a chapter's real binary, drives it with real clients (and signals, and HTTP
//! requests), and writes down what a reader would see: what each client saw, the server's log,
//! what a command printed. `cargo run -p fanout-book -- run NAME` records run `NAME` into
//! `book/runs/NAME.txt`, one section per block the book shows, between mdBook anchors, and the
//! chapter pages include those sections. Nothing shown is typed by hand.
//!
//! A recording goes stale when the code changes what it prints. So every run also has a *shape*
//! mode: short flags, small counts, port 0, a few seconds at most. `tests/runs.rs` runs each run
//! in shape mode and compares every section with the recorded one, line by line, after
//! [`shape`](shape::shape) has turned digits, durations, ids, ports and padding into placeholders:
//! a changed log line, a new flag in `--help` or a new output format fails the test, a different
//! timing does not.
//!
//! Runs that measure (memory, throughput) depend on the machine: they say so in what they print
//! and name the machine they were recorded on.
//!
//! A new chapter's runs go in a module of their own (`chNN.rs`, a `RUNS` table, listed in
//! [`all`]). A run starts binaries with [`Ctx::bin`] (or a changed copy of a chapter with
//! [`Ctx::try_it`]), starts servers with [`Ctx::start`] (default port in record mode, port 0 in
//! shape mode), picks its durations and counts with [`Ctx::pick`], and returns its sections. The
//! page includes a section with `{{#include ../runs/NAME.txt:SECTION}}` in a `text` or `console`
//! block and names the run (`cargo run -p fanout-book -- run NAME`); `tests/book.rs` checks both.

use std::{
    collections::BTreeMap,
    fs,
    future::Future,
    path::{Path, PathBuf},
    pin::Pin,
};

use anyhow::{Context, Result, bail};

mod ch01;
mod ch02;
mod ch03;
mod ch04;
mod ch05;
mod ch06;
mod ch07;
mod ch08;
mod ch09;
mod ch10;
mod ch10_metrics;
mod ch11;
mod ch11_load;
pub mod harness;
pub mod shape;

pub use harness::Ctx;

/// How the line that names the machine a measuring run was recorded on begins.
pub const MEASURED_ON: &str = "(measured on";

/// A future as the run table needs it.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// How a run is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The real thing, as the book shows it: default ports, real durations and counts.
    Record,
    /// Short and small, on port 0: to check that the recording still has the right shape.
    Shape,
}

impl Mode {
    /// `record` in record mode, `shape` in shape mode.
    pub fn pick<T>(self, record: T, shape: T) -> T {
        match self {
            Mode::Record => record,
            Mode::Shape => shape,
        }
    }
}

/// How a section's fresh output is compared with its recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The same line shapes in the same order (a block of lines repeated any number of times
    /// counts once).
    Order,
    /// The same set of line shapes, in any order: for output whose order is up to the scheduler.
    Kinds,
}

/// One block the book shows.
#[derive(Debug, Clone)]
pub struct Section {
    pub name: String,
    pub lines: Vec<String>,
    pub check: Check,
}

/// What a run printed, section by section, in the order the run made them.
#[derive(Debug, Default, Clone)]
pub struct Transcript {
    pub sections: Vec<Section>,
}

impl Transcript {
    /// Adds a section compared in order.
    pub fn section(&mut self, name: &str, lines: Vec<String>) {
        self.push(name, lines, Check::Order);
    }

    /// Adds a section with its own check.
    pub fn push(&mut self, name: &str, lines: Vec<String>, check: Check) {
        self.sections.push(Section {
            name: name.to_string(),
            lines,
            check,
        });
    }
}

/// One run.
pub struct Run {
    /// `NN-what`: the chapter it belongs to, then what it shows. Also the recording's file name.
    pub name: &'static str,
    /// One line: what it does.
    pub about: &'static str,
    /// Does it print figures that depend on the machine (memory, throughput)?
    pub measures: bool,
    /// The run itself.
    pub go: fn(Ctx) -> BoxFuture<Result<Transcript>>,
}

/// Every run, in book order.
pub fn all() -> Vec<&'static Run> {
    [
        ch01::RUNS,
        ch02::RUNS,
        ch03::RUNS,
        ch04::RUNS,
        ch05::RUNS,
        ch06::RUNS,
        ch07::RUNS,
        ch08::RUNS,
        ch09::RUNS,
        ch10::RUNS,
        ch11::RUNS,
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The run called `name`.
pub fn find(name: &str) -> Option<&'static Run> {
    all().into_iter().find(|run| run.name == name)
}

/// Where recordings live: `book/runs/`.
pub fn recordings_dir() -> PathBuf {
    crate::book_root().join("runs")
}

/// The recording of `name`.
pub fn recording_path(name: &str) -> PathBuf {
    recordings_dir().join(format!("{name}.txt"))
}

/// Runs `run` in `mode`.
pub async fn go(run: &Run, mode: Mode) -> Result<Transcript> {
    use futures_util::FutureExt;
    let ctx = Ctx::new(mode, run.name).await?;
    // The clients of `stage_tests` fail by panicking, as tests do: here that is the run's error.
    match std::panic::AssertUnwindSafe((run.go)(ctx))
        .catch_unwind()
        .await
    {
        Ok(outcome) => outcome.with_context(|| format!("run {} failed", run.name)),
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|text| text.to_string()))
                .unwrap_or_else(|| "a client panicked".to_string());
            bail!("run {} failed: {message}", run.name)
        }
    }
}

/// Runs `run` for real and writes its recording. Returns the file written.
pub async fn record(run: &Run) -> Result<PathBuf> {
    let transcript = go(run, Mode::Record).await?;
    let path = recording_path(run.name);
    fs::create_dir_all(recordings_dir())?;
    fs::write(&path, render(run, &transcript))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Runs `run` in shape mode and compares it with its recording: `Err` says what differs.
pub async fn check(run: &Run) -> Result<()> {
    let path = recording_path(run.name);
    let recorded = fs::read_to_string(&path).with_context(|| {
        format!(
            "no recording at {}: record it with `cargo run -p fanout-book -- run {}`",
            path.display(),
            run.name
        )
    })?;
    let recorded = parse(&recorded)?;
    let fresh = go(run, Mode::Shape).await?;
    let mut problems = Vec::new();
    for section in &fresh.sections {
        let Some(old) = recorded.get(&section.name) else {
            problems.push(format!(
                "section `{}` is printed now but not in the recording",
                section.name
            ));
            continue;
        };
        if let Err(difference) = shape::compare(old, &section.lines, section.check) {
            problems.push(format!("section `{}`: {difference}", section.name));
        }
    }
    if run.measures
        && !fresh
            .sections
            .iter()
            .flat_map(|section| &section.lines)
            .any(|line| line.contains(MEASURED_ON))
    {
        problems.push(format!(
            "run {} measures, but prints no `{MEASURED_ON} …` line saying where",
            run.name
        ));
    }
    for name in recorded.keys() {
        if !fresh.sections.iter().any(|section| &section.name == name) {
            problems.push(format!(
                "section `{name}` is in the recording but not printed now"
            ));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    bail!(
        "{} no longer has the shape of what the code prints now; record it again with `cargo \
         run -p fanout-book -- run {}` (and check the page's text against it):\n{}",
        path.display(),
        run.name,
        problems.join("\n")
    )
}

/// A recording's text: a header, then each section between mdBook anchors.
pub fn render(run: &Run, transcript: &Transcript) -> String {
    let mut text = format!(
        "# Recorded by `cargo run -p fanout-book -- run {}`: {}\n# Do not edit: run it again. \
         `cargo test -p fanout-book --test runs` checks its shape against the code.\n",
        run.name, run.about
    );
    for section in &transcript.sections {
        text.push_str(&format!("# ANCHOR: {}\n", section.name));
        for line in &section.lines {
            text.push_str(line.trim_end());
            text.push('\n');
        }
        text.push_str(&format!("# ANCHOR_END: {}\n", section.name));
    }
    text
}

/// A recording's sections, by name.
pub fn parse(text: &str) -> Result<BTreeMap<String, Vec<String>>> {
    let mut sections = BTreeMap::new();
    let mut current: Option<(String, Vec<String>)> = None;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("# ANCHOR: ") {
            if current.is_some() {
                bail!("section {name} starts inside another one");
            }
            current = Some((name.trim().to_string(), Vec::new()));
        } else if let Some(name) = line.strip_prefix("# ANCHOR_END: ") {
            match current.take() {
                Some((open, lines)) if open == name.trim() => {
                    sections.insert(open, lines);
                }
                _ => bail!("section end {name} does not match its start"),
            }
        } else if let Some((_, lines)) = current.as_mut() {
            lines.push(line.to_string());
        }
    }
    Ok(sections)
}

/// The recordings on disk, by run name.
pub fn recordings_on_disk() -> Result<Vec<String>> {
    let dir = recordings_dir();
    let mut names: Vec<String> = fs::read_dir(&dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "txt"))
        .filter_map(|path| {
            Path::new(&path)
                .file_stem()
                .map(|stem| stem.to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    Ok(names)
}
