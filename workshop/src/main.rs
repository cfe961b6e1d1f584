//! `cargo workshop`: the participant's side of the workshop, and the generator's front door.

use std::{io, process::ExitCode};

use clap::{Parser, Subcommand};
use workshop::{chapter, commands, style::Style};

/// The Fan-out workshop: your progress through the exercises, and the tools to get unstuck.
///
/// Without a command, runs every exercise's stage tests and shows where to continue.
#[derive(Parser)]
#[command(name = "cargo workshop", bin_name = "cargo workshop", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run one exercise's stage tests and show what fails, and why.
    Check {
        /// The exercise: 01, 1, 01-echo or echo.
        exercise: String,
        /// Run only the scenarios whose name contains this.
        filter: Option<String>,
    },
    /// Show a hint for the todo you are on (level 1), or the level you ask for.
    Hint {
        /// The exercise: 01, 1, 01-echo or echo.
        exercise: String,
        /// A todo's name and/or a hint level, e.g. `2` or `loop 3`.
        #[arg(num_args = 0..=2)]
        rest: Vec<String>,
    },
    /// Put an exercise back to its starter (your version is backed up under target/).
    Reset {
        /// The exercise: 01, 1, 01-echo or echo.
        exercise: String,
    },
    /// Replace an exercise with the chapter's code, to move on (your version is backed up).
    Solve {
        /// The exercise: 01, 1, 01-echo or echo.
        exercise: String,
    },
    /// Compare your code with the chapter's.
    Diff {
        /// The exercise: 01, 1, 01-echo or echo.
        exercise: String,
    },
    /// (For authors) regenerate the exercises and their book pages from the chapters.
    Generate {
        /// Only report what is out of date; change nothing.
        #[arg(long)]
        check: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = chapter::workspace_root();
    let style = Style::detect();
    let mut out = io::stdout().lock();
    let result = match &cli.command {
        None => commands::progress(&root, style, &mut out),
        Some(Command::Check { exercise, filter }) => {
            commands::check(&root, exercise, filter.as_deref(), style, &mut out)
        }
        Some(Command::Hint { exercise, rest }) => {
            // `hint 02`, `hint 02 2`, `hint 02 write`, `hint 02 write 2`: a number is a level.
            let mut region = None;
            let mut level = None;
            for arg in rest {
                match arg.parse::<usize>() {
                    Ok(number) => level = Some(number),
                    Err(_) => region = Some(arg.as_str()),
                }
            }
            commands::hint(&root, exercise, region, level, style, &mut out)
        }
        Some(Command::Reset { exercise }) => commands::reset(&root, exercise, style, &mut out),
        Some(Command::Solve { exercise }) => commands::solve(&root, exercise, style, &mut out),
        Some(Command::Diff { exercise }) => commands::diff(&root, exercise, style, &mut out),
        Some(Command::Generate { check }) => commands::generate(&root, *check, style, &mut out),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        // Output went away (e.g. `cargo workshop | head`): nothing more to say.
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
