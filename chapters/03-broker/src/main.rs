use std::process::ExitCode;

use ch03_broker::{Config, serve};

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
