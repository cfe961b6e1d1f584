// Fan-out workshop, exercise 03-broker: generated from chapters/03-broker by `cargo workshop generate`.
//
// Nothing to do in this file: it is the finished part of the exercise. Your part is in
// src/broker.rs, src/connection.rs, src/lib.rs.

//! This chapter's flags.

use std::time::Duration;

/// This chapter's flags (besides `--addr`, which `main.rs` owns).
#[derive(Debug, Clone, clap::Parser)]
pub struct Config {
    /// How long the writer waits with nothing to send before it pings the client (e.g. 30s, 200ms).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = fanout_kit::positive_duration)]
    pub ping_interval: Duration,
}
