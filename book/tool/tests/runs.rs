//! Every recording in `book/runs/` still has the shape of what the code prints now: each run is
//! run again in shape mode (short, small, on port 0) and compared section by section. One test
//! per run: `cargo test -p fanout-book --test runs -- 04-stall` checks one.

use std::process::ExitCode;

use libtest_mimic::{Arguments, Failed, Trial};

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let mut trials: Vec<Trial> = fanout_book::runs::all()
        .into_iter()
        .map(|run| {
            Trial::test(run.name, move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .map_err(|err| Failed::from(format!("cannot start a runtime: {err}")))?;
                let outcome = runtime.block_on(fanout_book::runs::check(run));
                runtime.shutdown_background();
                outcome.map_err(|err| Failed::from(format!("{err:#}")))
            })
        })
        .collect();
    trials.push(Trial::test("every_recording_belongs_to_a_run", || {
        let names = fanout_book::runs::recordings_on_disk().map_err(|err| format!("{err:#}"))?;
        let stray: Vec<&String> = names
            .iter()
            .filter(|name| fanout_book::runs::find(name).is_none())
            .collect();
        if stray.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "book/runs/ has recordings no run makes (delete them, or add the run): {stray:?}"
            )
            .into())
        }
    }));
    libtest_mimic::run(&args, trials).exit_code()
}
