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

use cmp_rwlock_rooms::{Config, serve};

/// The line `--help` starts with.
const ABOUT: &str = "Fan-out comparison: chapter 09's chat built with Arc<RwLock<..>> state and a broadcast channel per room";

#[tokio::main]
async fn main() -> ExitCode {
    let command = fanout_kit::chapter_command!(Config, ABOUT);
    let cli = fanout_kit::parse_chapter_flags::<Config>(command);
    fanout_kit::run(&cli.addr, |listener| {
        serve(listener, cli.config, fanout_kit::shutdown_signal())
    })
    .await
}
