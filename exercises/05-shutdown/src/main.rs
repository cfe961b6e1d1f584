// Fan-out workshop, exercise 05-shutdown: generated from chapters/05-shutdown by `cargo workshop generate`.
//
// Nothing to do in this file: it is the finished part of the exercise. Your part is in
// src/broker.rs, src/connection.rs, src/lib.rs.

use std::process::ExitCode;

use ex05_shutdown::{Config, serve};

/// The line `--help` starts with.
const ABOUT: &str =
    "Fan-out chapter 05: a clean goodbye on Ctrl+C, and GET /stats answered by the broker";

#[tokio::main]
async fn main() -> ExitCode {
    let command = fanout_kit::chapter_command!(Config, ABOUT);
    let cli = fanout_kit::parse_chapter_flags::<Config>(command);
    fanout_kit::run(&cli.addr, |listener| {
        serve(listener, cli.config, fanout_kit::shutdown_signal())
    })
    .await
}
