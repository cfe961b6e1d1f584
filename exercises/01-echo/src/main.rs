// Fan-out workshop, exercise 01-echo: generated from chapters/01-echo by `cargo workshop generate`.
//
// Nothing to do in this file: it is the finished part of the exercise. Your part is in
// src/lib.rs.

use std::process::ExitCode;

use ex01_echo::{Config, serve};

/// The line `--help` starts with.
const ABOUT: &str = "Fan-out chapter 01: a WebSocket echo server";

#[tokio::main]
async fn main() -> ExitCode {
    let command = fanout_kit::chapter_command!(Config, ABOUT);
    let cli = fanout_kit::parse_chapter_flags::<Config>(command);
    fanout_kit::run(&cli.addr, |listener| {
        serve(listener, cli.config, fanout_kit::shutdown_signal())
    })
    .await
}
