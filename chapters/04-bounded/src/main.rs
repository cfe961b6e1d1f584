use std::process::ExitCode;

use ch04_bounded::{Config, serve};
use clap::Parser;

/// Fan-out chapter 04: bounded queues: a slow client misses messages instead of holding everybody back.
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
