use std::process::ExitCode;

use ch01_echo::{Config, serve};

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
