// Fan-out workshop, exercise 04-bounded: generated from chapters/04-bounded by `cargo workshop generate`.
//
// Nothing to do in this file: it is the finished part of the exercise. Your part is in
// src/broker.rs, src/connection.rs, src/lib.rs.

use std::process::ExitCode;

use ex04_bounded::{Config, serve};

/// The line `--help` starts with.
const ABOUT: &str = "Fan-out chapter 04: bounded queues: a slow client misses messages instead of holding everybody back";

#[tokio::main]
async fn main() -> ExitCode {
    let command = fanout_kit::chapter_command!(Config, ABOUT);
    let cli = fanout_kit::parse_chapter_flags::<Config>(command);
    fanout_kit::run(&cli.addr, |listener| {
        serve(listener, cli.config, fanout_kit::shutdown_signal())
    })
    .await
}
