// Fan-out workshop, exercise 11-many-servers: generated from chapters/11-many-servers by `cargo workshop generate`.
//
// Nothing to do in this file: it is the finished part of the exercise. Your part is in
// src/bridge.rs, src/broker/cluster.rs.

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

use clap::error::ErrorKind;
use ex11_many_servers::{Config, serve};

/// The line `--help` starts with.
const ABOUT: &str =
    "Fan-out chapter 11: many servers: with --redis, servers share rooms, names and history";

#[tokio::main]
async fn main() -> ExitCode {
    let mut command = fanout_kit::chapter_command!(Config, ABOUT);
    let cli = fanout_kit::parse_chapter_flags::<Config>(command.clone());
    // Flags that clap cannot check one by one are checked before binding, so a mistake is an
    // error like any other bad flag (exit code 2), not a server that starts and stops.
    if let Err(err) = cli.config.idle_timeout() {
        fanout_kit::exit_on_flag_error(command.error(ErrorKind::ArgumentConflict, err));
    }
    if let Err(err) = cli.config.queue_budget() {
        fanout_kit::exit_on_flag_error(command.error(ErrorKind::ArgumentConflict, err));
    }
    fanout_kit::run(&cli.addr, |listener| {
        serve(listener, cli.config, fanout_kit::shutdown_signal())
    })
    .await
}
