//! This chapter's flags, and the parsers that keep each one within the range the code below
//! can take without panicking.

use std::time::Duration;

use tokio::sync::Semaphore;

// ANCHOR: limits
/// How much bigger than `--max-message-size` a single frame may claim to be. A frame over the
/// message limit but under this one is read to its end and then refused with Close 1009, which the
/// client can read. A frame over this one is refused from its header, before its payload is read
/// or room is reserved for it; but the payload the client already sent is then unread when we
/// close, the kernel answers with a reset, and a browser may report 1006 instead of our 1009. So
/// the margin is generous: with the default 64 KiB limit, frames up to 1 MiB get their 1009.
pub const FRAME_LIMIT_FACTOR: usize = 16;

/// The largest `--max-message-size` accepted: 16 MiB (and so 256 MiB for one frame).
pub const MAX_MESSAGE_SIZE: usize = 16 << 20;

/// The longest duration any flag accepts: a day. A longer interval is no heartbeat at all, and an
/// absurd one (`18000000000000000000s` parses) would overflow an `Instant` in a library's code
/// (tokio's `interval`), where no lint of ours looks.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);
// ANCHOR_END: limits

// ANCHOR: config
/// This chapter's flags (besides `--addr`, which `main.rs` owns).
#[derive(Debug, Clone, clap::Parser)]
pub struct Config {
    /// How long the writer waits with nothing to send before it pings the client (e.g. 30s, 200ms).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = duration)]
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
    // ANCHOR: limit_flags
    // Why 64 KiB: a chat message, even a long paste, is a few kilobytes; 64 KiB leaves room for
    // much more and still keeps what one client can make us hold per message small.
    /// The largest message a client may send, in bytes or with a unit (1024, 64KiB, 1MiB; at most 16MiB); a bigger one ends its connection with Close 1009.
    #[arg(long, value_name = "SIZE", default_value = "64KiB", value_parser = message_size)]
    pub max_message_size: usize,
    // Why 1000: each client costs a socket (a file descriptor) and two tasks. 1000 stays under the
    // common limit of 1024 open files per process, with room for the listener and HTTP requests.
    /// How many WebSocket clients may be connected at once; one more gets 503 Service Unavailable until somebody leaves.
    #[arg(long, value_name = "CLIENTS", default_value_t = 1000, value_parser = max_connections)]
    pub max_connections: usize,
    // ANCHOR_END: limit_flags
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

// ANCHOR: parsers
/// Parses a duration flag: more than zero (`interval(ZERO)` panics, and a zero timeout is always
/// a mistake) and at most [`MAX_DURATION`].
fn duration(text: &str) -> Result<Duration, String> {
    let duration = fanout_kit::positive_duration(text)?;
    if duration > MAX_DURATION {
        return Err("must be at most 24h".to_string());
    }
    Ok(duration)
}

/// Parses `--max-message-size`: a number of bytes, optionally with the unit `B`, `KiB` or `MiB`,
/// from 1 byte to [`MAX_MESSAGE_SIZE`].
fn message_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    // `split_at` would panic at an index inside a character; this one says so with `None`.
    let Some((number, unit)) = text.split_at_checked(digits) else {
        return Err("expected a size like 65536, 64KiB or 1MiB".to_string());
    };
    let number: usize = number
        .parse()
        .map_err(|_| format!("expected a size like 65536, 64KiB or 1MiB, got {text:?}"))?;
    let unit: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        other => return Err(format!("unknown unit {other:?}: use B, KiB or MiB")),
    };
    match number.checked_mul(unit) {
        Some(0) => Err("must be at least 1 byte".to_string()),
        Some(bytes) if bytes <= MAX_MESSAGE_SIZE => Ok(bytes),
        _ => Err("must be at most 16MiB".to_string()),
    }
}

/// Parses `--max-connections`: at least 1, and no more than a semaphore can count
/// (`Semaphore::new` panics beyond `MAX_PERMITS`).
fn max_connections(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_string()),
        Ok(limit) if limit > Semaphore::MAX_PERMITS => {
            Err(format!("must be at most {}", Semaphore::MAX_PERMITS))
        }
        Ok(limit) => Ok(limit),
        Err(err) => Err(err.to_string()),
    }
}

// ANCHOR_END: parsers
// ANCHOR_END: config

// Tests may panic: that is how they fail.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    /// Sizes are bytes, KiB or MiB, from 1 byte to 16 MiB; anything else is a flag error.
    #[test]
    fn message_sizes_parse_within_their_limits() {
        assert_eq!(message_size("64KiB"), Ok(64 * 1024));
        assert_eq!(message_size("1024"), Ok(1024));
        assert_eq!(message_size("1 MiB"), Ok(1 << 20));
        assert_eq!(message_size("16MiB"), Ok(MAX_MESSAGE_SIZE));
        for bad in [
            "0",
            "0KiB",
            "17MiB",
            "99999999999999999999",
            "18446744073709551615MiB",
        ] {
            assert!(message_size(bad).is_err(), "{bad} should be refused");
        }
        for bad in ["", "lots", "64KB", "64 kib", "-1", "1.5MiB", "é"] {
            assert!(message_size(bad).is_err(), "{bad:?} should be refused");
        }
    }

    /// Durations are above zero and at most a day: an absurd one (it parses) would overflow an
    /// `Instant` inside tokio.
    #[test]
    fn durations_stay_within_a_day() {
        assert_eq!(duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(duration("24h"), Ok(MAX_DURATION));
        for bad in ["0s", "25h", "18000000000000000000s", "soon"] {
            assert!(duration(bad).is_err(), "{bad} should be refused");
        }
    }
}
