// Fan-out workshop, exercise 06-limits: generated from chapters/06-limits by `cargo workshop generate`.
//
// Nothing to do in this file: it is the finished part of the exercise. Your part is in
// src/connection.rs, src/lib.rs.

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

use clap::Parser;
use ex06_limits::{Config, serve};

/// Fan-out chapter 06: limits: what a stranger may send (message sizes, connections, garbage) is bounded and answered with the right close code, and no panics by construction.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Address to listen on, HOST:PORT (port 0 picks a free port).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:3000")]
    addr: String,
    #[command(flatten)]
    config: Config,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli: Cli = fanout_kit::parse_flags();
    fanout_kit::run(&cli.addr, |listener| {
        serve(listener, cli.config, fanout_kit::shutdown_signal())
    })
    .await
}
