//! `fanout-load`: loads a Fan-out server on this machine and measures what it delivers.
//!
//! ```text
//! cargo run --release -p ch04-bounded -- --addr 127.0.0.1:3000 &
//! cargo run --release -p fanout-load -- --url ws://127.0.0.1:3000/ws --scenario s1 --pid $!
//! ```
//!
//! `--url` given more than once spreads the clients over several servers (two instances of
//! chapter 11 on one Redis, say), round-robin, and the report splits the latency into deliveries
//! within one server and deliveries across servers.
//!
//! The summary goes to stderr, the one JSON line to stdout (`… | tail -1 | jq .` reads it).

use std::process::ExitCode;

use clap::{CommandFactory, error::ErrorKind};
use fanout_load::Flags;

fn main() -> ExitCode {
    let flags: Flags = fanout_kit::parse_flags();
    let plan = match flags.plan() {
        Ok(plan) => plan,
        Err(err) => {
            fanout_kit::exit_on_flag_error(Flags::command().error(ErrorKind::ValueValidation, err))
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(plan.threads)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let report = runtime.block_on(fanout_load::run(plan));
    // Clients that did not stop in time are left behind, not waited for.
    runtime.shutdown_background();
    eprint!("{}", report.summary());
    match serde_json::to_string(&report) {
        Ok(line) => println!("{line}"),
        Err(err) => {
            eprintln!("error: cannot write the report as JSON: {err}");
            return ExitCode::FAILURE;
        }
    }
    if report.connected == 0 && report.clients > 0 {
        eprintln!(
            "error: no client could connect to {}{}",
            if report.urls.is_empty() {
                report.url.clone()
            } else {
                report.urls.join(" or ")
            },
            report
                .connect_failure
                .as_ref()
                .map(|why| format!(" ({why})"))
                .unwrap_or_default()
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
