//! This chapter's flags, and the parser that keeps `--queue-capacity` within the range the code
//! can take.

use std::time::Duration;

// ANCHOR: config
/// This chapter's flags (besides `--addr`, which `main.rs` owns).
#[derive(Debug, Clone, clap::Parser)]
pub struct Config {
    /// How long the writer waits with nothing to send before it pings the client (e.g. 30s, 200ms).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = fanout_kit::positive_duration)]
    pub ping_interval: Duration,
    // Why 256: a client's queue fills whenever messages come in faster than its writer sends them,
    // and that happens to healthy clients too: in a burst, the broker hands out messages faster
    // than a writer, which makes one write per message, can send them. 256 messages absorbs a
    // burst of a couple of hundred (several people pasting at once) without loss even when the
    // writer gets no CPU time meanwhile; with 128, a burst of 200 messages to one client lost some
    // now and then on a busy two-core machine. A client that has stopped reading costs at most 256
    // messages of memory instead of everything sent since it stopped. The broker's own queue gets
    // the same room; when it is full, readers wait, and that costs no memory at all.
    /// How many messages may wait for one client before messages for it are dropped, and for the broker before readers pause (at least 1).
    #[arg(long, value_name = "MESSAGES", default_value_t = 256, value_parser = queue_capacity)]
    pub queue_capacity: usize,
}

/// Parses `--queue-capacity`. A bounded channel needs room for at least one message (tokio's
/// `mpsc::channel(0)` would panic), so 0 is refused here, as a flag error.
fn queue_capacity(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_string()),
        Ok(capacity) => Ok(capacity),
        Err(err) => Err(err.to_string()),
    }
}
// ANCHOR_END: config
