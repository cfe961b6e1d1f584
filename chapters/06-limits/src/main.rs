// The binary is a crate of its own: the lints of `lib.rs` are repeated here.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::todo,
    clippy::unimplemented,
    clippy::indexing_slicing,
    clippy::string_slice,
    clippy::arithmetic_side_effects
)]

use std::process::ExitCode;

use ch06_limits::{Config, serve};

/// The line `--help` starts with.
const ABOUT: &str = "Fan-out chapter 06: limits: what a stranger may send (message sizes, connections, garbage) is bounded and answered with the right close code, and no panics by construction";

#[tokio::main]
async fn main() -> ExitCode {
    let command = fanout_kit::chapter_command!(Config, ABOUT);
    let cli = fanout_kit::parse_chapter_flags::<Config>(command);
    fanout_kit::run(&cli.addr, |listener| {
        serve(listener, cli.config, fanout_kit::shutdown_signal())
    })
    .await
}
