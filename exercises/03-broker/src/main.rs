// Fan-out workshop, exercise 03-broker: generated from chapters/03-broker by `cargo workshop generate`.
//
// Nothing to do in this file: it is the finished part of the exercise. Your part is in
// src/broker.rs, src/connection.rs, src/lib.rs.

use std::process::ExitCode;

use ex03_broker::{Config, serve};

/// The line `--help` starts with.
const ABOUT: &str =
    "Fan-out chapter 03: a broker actor forwards every message to every other client";

#[tokio::main]
async fn main() -> ExitCode {
    let command = fanout_kit::chapter_command!(Config, ABOUT);
    let cli = fanout_kit::parse_chapter_flags::<Config>(command);
    fanout_kit::run(&cli.addr, |listener| {
        serve(listener, cli.config, fanout_kit::shutdown_signal())
    })
    .await
}
