//! `cargo run -p fanout-book` builds the book and serves it on http://127.0.0.1:4000;
//! `cargo run -p fanout-book -- build` only builds it (into `book/build/`).

use std::{path::PathBuf, process::ExitCode};

use axum::Router;
use clap::{Parser, Subcommand};
use tower_http::services::{ServeDir, ServeFile};

/// Builds the Fan-out book and serves it for reading.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Address to serve the book on, HOST:PORT (port 0 picks a free port).
    #[arg(
        long,
        value_name = "HOST:PORT",
        default_value = "127.0.0.1:4000",
        global = true
    )]
    addr: String,
}

#[derive(Subcommand)]
enum Command {
    /// Build the book into book/build and serve it (the default).
    Serve,
    /// Build the book into book/build and exit.
    Build,
    /// Run the book's runs for real and write their recordings into book/runs/ (no NAME: list
    /// them). A recording shows the default port, so port 3000 must be free.
    Run {
        /// The runs to record, e.g. 03-broadcast; `all` for every run.
        names: Vec<String>,
        /// Check each run's shape against its recording instead of recording it (what
        /// `cargo test -p fanout-book --test runs` does).
        #[arg(long)]
        check: bool,
    },
    /// For each chapter page: how many of its exercise's answer lines it shows, unfolded, before
    /// the exercise heading.
    Answers {
        /// The heading that opens the exercise.
        #[arg(long, default_value = fanout_book::answers::YOUR_TURN)]
        heading: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    fanout_kit::init_tracing();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Build => match build() {
            Some(built) => {
                println!("book built in {}", built.display());
                ExitCode::SUCCESS
            }
            None => ExitCode::FAILURE,
        },
        Command::Serve => serve(&cli.addr).await,
        Command::Answers { heading } => answers(&heading),
        Command::Run { names, check } => run(&names, check).await,
    }
}

/// Records (or checks) the runs called `names`; lists them all when there is none.
async fn run(names: &[String], check: bool) -> ExitCode {
    use fanout_book::runs;
    if names.is_empty() {
        for run in runs::all() {
            println!("{:<22} {}", run.name, run.about);
        }
        return ExitCode::SUCCESS;
    }
    let mut chosen = Vec::new();
    for name in names {
        if name == "all" {
            chosen.extend(runs::all());
        } else if let Some(run) = runs::find(name) {
            chosen.push(run);
        } else {
            eprintln!("error: no run called {name:?} (see `cargo run -p fanout-book -- run`)");
            return ExitCode::from(2);
        }
    }
    let mut failed = false;
    for run in chosen {
        let outcome = if check {
            runs::check(run)
                .await
                .map(|()| format!("{}: same shape", run.name))
        } else {
            runs::record(run)
                .await
                .map(|path| format!("{}: recorded in {}", run.name, path.display()))
        };
        match outcome {
            Ok(done) => println!("{done}"),
            Err(err) => {
                eprintln!("error: {err:#}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Prints, for every chapter page, the answer lines it shows before `heading`.
fn answers(heading: &str) -> ExitCode {
    let root = fanout_book::workspace_root();
    let src = fanout_book::book_root().join("src");
    let mut pages: Vec<PathBuf> = match std::fs::read_dir(&src) {
        Ok(entries) => entries
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
            .collect(),
        Err(err) => {
            eprintln!("error: cannot list {}: {err}", src.display());
            return ExitCode::FAILURE;
        }
    };
    pages.sort();
    for page in pages {
        match fanout_book::answers::measure(&root, &page, heading) {
            Ok(Some(measure)) => println!(
                "{}: {} of {} answer lines ({:.0} %) before \"{heading}\"{}",
                page.file_name().unwrap_or_default().to_string_lossy(),
                measure.visible.len(),
                measure.answer_lines.len(),
                measure.percent(),
                if measure.has_exercise_heading {
                    ""
                } else {
                    " (no such heading: the whole page)"
                }
            ),
            Ok(None) => {}
            Err(err) => {
                eprintln!("error: {}: {err:#}", page.display());
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

/// Builds the book, reporting a failure on stderr.
fn build() -> Option<PathBuf> {
    match fanout_book::build_book() {
        Ok(built) => Some(built),
        Err(err) => {
            eprintln!("error: {err:#}");
            None
        }
    }
}

/// Builds the book and serves it as static files until Ctrl+C or SIGTERM. To see an edit, stop it
/// and run it again: it rebuilds on start.
async fn serve(addr: &str) -> ExitCode {
    // Bind first: if the address is taken, say so before spending time on a build (and without
    // rewriting the files another copy of this tool is serving).
    let Some((listener, local)) = fanout_kit::bind(addr).await else {
        return ExitCode::FAILURE;
    };
    let Some(built) = build() else {
        return ExitCode::FAILURE;
    };
    let files = ServeDir::new(&built).not_found_service(ServeFile::new(built.join("404.html")));
    let app = Router::new().fallback_service(files);
    // The signal handlers go in before the address is announced, as in fanout_kit::run.
    let server = axum::serve(listener, app).with_graceful_shutdown(fanout_kit::shutdown_signal());
    println!("book at http://{local}");
    match server.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
