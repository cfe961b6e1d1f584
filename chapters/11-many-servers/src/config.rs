//! This chapter's flags, and the parsers that keep each one within the range the code below
//! can take without panicking.

use std::{
    io,
    num::{NonZeroU32, NonZeroUsize},
    path::PathBuf,
    time::Duration,
};

use tokio::sync::Semaphore;

use crate::origin::Origin;

/// How much bigger than `--max-message-size` a single frame may claim to be. A frame over the
/// message limit but under this one is read to its end and then refused with Close 1009, which the
/// client can read. A frame over this one is refused from its header, before its payload is read
/// or room is reserved for it; but the payload the client already sent is then unread when we
/// close, the kernel answers with a reset, and a browser may report 1006 instead of our 1009. So
/// the margin is generous: with the default 64 KiB limit, frames up to 1 MiB get their 1009.
pub const FRAME_LIMIT_FACTOR: usize = 16;

/// The largest `--max-message-size` accepted: 16 MiB (and so 256 MiB for one frame).
pub const MAX_MESSAGE_SIZE: usize = 16 << 20;

/// The longest duration any flag accepts: a day. A longer timeout is no timeout at all, and an
/// absurd one (`18000000000000000000s` parses) would overflow an `Instant` in a library's code
/// (tokio's `interval`, hyper's header timer), where no lint of ours looks.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// A limit that can be switched off: `None` is `off`. (An alias, so that clap takes the field for
/// a value with a default, `off` being one of its values, rather than for a flag one may leave out.)
pub type OrOff<T> = Option<T>;

/// The highest `--rate-limit` and `--rate-burst`: a hundred thousand messages a second from one
/// client is no limit at all (say `off`), and a burst that large no burst.
pub const MAX_RATE: u32 = 100_000;

/// This chapter's flags (besides `--addr`, which `main.rs` owns). A flag given twice takes its
/// last value (`args_override_self`), so that a flag given after a default list of flags (the
/// stage tests give every server some) overrides it.
#[derive(Debug, Clone, clap::Parser)]
#[command(args_override_self = true)]
pub struct Config {
    /// How often the writer pings the client, whatever else it writes (e.g. 30s, 200ms).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = duration)]
    pub ping_interval: Duration,
    // Why 1024: the count is the backstop now, `--queue-bytes` the bound that matters (see
    // `outbox.rs`). 1024 lets a burst of a thousand chat messages wait for one client, which is
    // what several people pasting at once look like; a count can only go this high because the
    // bytes are bounded too. The broker's own queue gets the same room; when it is full, readers
    // wait, and that costs no memory at all.
    /// How many messages may wait for one client before messages for it are dropped, and for the broker before readers pause (at least 1).
    #[arg(long, value_name = "MESSAGES", default_value_t = 1024, value_parser = queue_capacity)]
    pub queue_capacity: usize,
    // Why 1 MiB: measured with `fanout-load` (see the book's chapter 08). In s3, ten senders keep
    // up to 240 messages of 1 KiB in flight to each client. Against this chapter's server, a
    // healthy client lost 13,198 messages in a 3-second run with 128 KiB, 103 with 256 KiB, and
    // none with 512 KiB or 1 MiB: 1 MiB is twice the smallest budget that lost nothing. A burst
    // of a thousand chat lines fits too. And a client that has stopped reading holds at most
    // 1 MiB of payload, where a count of 1024 messages of 64 KiB would let it hold 64 MiB.
    /// How many bytes of messages may wait for one client before messages for it are dropped (e.g. 1MiB; at least --max-message-size, at most 1GiB).
    #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = queue_bytes)]
    pub queue_bytes: usize,
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
    // Why 10 s: a healthy client takes what we send within milliseconds; one that has not taken
    // anything for 10 s is stuck, gone without a word, or not reading at all.
    /// How long one write to a client may take, and its queue may stay full, before the client is cut off.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    pub write_timeout: Duration,
    /// How long a client may send nothing, not even the answer to a ping, before it is taken for gone; at least twice --ping-interval [default: three times --ping-interval]
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub idle_timeout: Option<Duration>,
    // Why 10 s: a browser sends its whole request at once; 10 s is plenty on a slow network and
    // lets a client that dribbles bytes to hold a connection open (slowloris) hold it only briefly.
    // hyper also starts this clock when a kept-alive connection waits for its next request, so an
    // idle HTTP connection is closed after it too.
    /// How long a client may take to send the headers of an HTTP request, the WebSocket handshake included.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    pub header_timeout: Duration,
    /// Also accept plain TCP clients (nc, telnet) on HOST:PORT, one line per message, in the same rooms (off by default; port 0 picks a free port).
    #[arg(long, value_name = "HOST:PORT")]
    pub tcp: Option<String>,
    // Why 4 KiB: a line is typed or pasted by a person; a few kilobytes is a long paragraph.
    /// The longest line a TCP client may send, in bytes or with a unit (at most 16MiB); a longer one gets an error line and is skipped.
    #[arg(long, value_name = "SIZE", default_value = "4KiB", value_parser = message_size)]
    pub max_line_bytes: usize,
    /// The SQLite file that keeps the history (created if need be; its directory must exist).
    #[arg(long, value_name = "PATH", default_value = "fanout-history.db")]
    pub db: PathBuf,
    // Why 50: a screenful, enough to see what a room is talking about, and little to send to
    // every client that joins.
    /// How many of a room's last messages a client receives when it joins it (0 for none; at most 1000); /history asks again.
    #[arg(long, value_name = "MESSAGES", default_value_t = DEFAULT_HISTORY, value_parser = history)]
    pub history: usize,
    // Why 10000: two hundred screenfuls per room, a few megabytes on disk; the database stays
    // small, and retention deletes a few rows per batch.
    /// How many messages are kept per room and per private conversation; older ones are deleted, in steps of a tenth of it (at least 1, at most 100000000).
    #[arg(long, value_name = "MESSAGES", default_value_t = 10_000, value_parser = history_keep)]
    pub history_keep: usize,
    // Why 10 a second with a burst of 20: a person types a line every few seconds and pastes a
    // dozen at most; a script or a stuck key sends thousands. The burst lets a paste through
    // whole, the rate lets a lively conversation go on after it.
    /// How many messages a second each client may send (commands count too), or off; one over it is dropped, and its sender told so, once.
    #[arg(long, value_name = "PER_SECOND", default_value = "10", value_parser = rate_limit)]
    pub rate_limit: OrOff<NonZeroU32>,
    /// How many messages a client may send at once before --rate-limit applies (the size of its token bucket).
    #[arg(long, value_name = "MESSAGES", default_value = "20", value_parser = rate_burst)]
    pub rate_burst: NonZeroU32,
    // Why 10 s: long enough for a person who pasted too much to see the warning and stop, short
    // enough that a flood does not hold a reader task and a socket for long.
    /// How long a client may keep sending over --rate-limit before it is disconnected (WebSocket Close 1008).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    pub rate_limit_grace: Duration,
    // Why 32: a household or an office behind one address has a few people with a few tabs each;
    // one address holding hundreds of connections is one client holding the server's places.
    /// How many clients (WebSocket and TCP) may be connected from one IP address at once, or off; one more gets 429 Too Many Requests.
    #[arg(long, value_name = "N", default_value = "32", value_parser = max_connections_per_ip)]
    pub max_connections_per_ip: OrOff<NonZeroUsize>,
    /// A page origin whose WebSocket connections are accepted besides the server's own (scheme://host or scheme://host:port; repeatable); other pages get 403.
    #[arg(long, value_name = "ORIGIN", value_parser = origin)]
    pub allow_origin: Vec<Origin>,
    // ANCHOR: redis_flag
    /// Share rooms, names and history with the other servers that use the same Redis (redis://HOST:PORT); the history is then kept there, not in --db. Off by default: this server alone, with SQLite.
    #[arg(long, value_name = "URL", value_parser = redis_url)]
    pub redis: Option<redis::ConnectionInfo>,
    // ANCHOR_END: redis_flag
}

/// Parses `--redis`: a `redis://` URL (or `rediss://`, `unix://`) the client understands. RESP3
/// is asked for whatever the URL says: the bridge's subscriptions need it (see `bridge.rs`).
fn redis_url(text: &str) -> Result<redis::ConnectionInfo, String> {
    let info =
        redis::IntoConnectionInfo::into_connection_info(text).map_err(|err| err.to_string())?;
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(redis::ProtocolVersion::RESP3);
    Ok(info.set_redis_settings(settings))
}

/// `--history` when it is not given.
pub const DEFAULT_HISTORY: usize = 50;

/// The most messages `--history-keep` accepts per room: a hundred million rows of one room is no
/// longer a chat history but a database to size and back up on purpose.
pub const MAX_HISTORY_KEEP: usize = 100_000_000;

/// Parses `--history`: 0 (no replay on join) to [`MAX_HISTORY`](crate::command::MAX_HISTORY),
/// the most that `/history` may ask for too.
fn history(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(count) if count <= crate::command::MAX_HISTORY => Ok(count),
        Ok(_) => Err(format!("must be at most {}", crate::command::MAX_HISTORY)),
        Err(err) => Err(err.to_string()),
    }
}

/// Parses `--history-keep`: at least 1 (a history that keeps nothing is `--history 0`), at most
/// [`MAX_HISTORY_KEEP`].
fn history_keep(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1 (use --history 0 to replay nothing)".to_string()),
        Ok(keep) if keep <= MAX_HISTORY_KEEP => Ok(keep),
        Ok(_) => Err(format!("must be at most {MAX_HISTORY_KEEP}")),
        Err(err) => Err(err.to_string()),
    }
}

/// Parses `--rate-limit`: `off`, or a number of messages a second from 1 to [`MAX_RATE`].
fn rate_limit(text: &str) -> Result<OrOff<NonZeroU32>, String> {
    if text == "off" {
        return Ok(None);
    }
    match text.parse::<u32>() {
        Ok(0) => Err("must be at least 1 (or off, for no limit)".to_string()),
        Ok(rate) if rate > MAX_RATE => {
            Err(format!("must be at most {MAX_RATE} (or off, for no limit)"))
        }
        Ok(rate) => Ok(NonZeroU32::new(rate)),
        Err(_) => Err(format!(
            "expected a number of messages a second, or off, got {text:?}"
        )),
    }
}

/// Parses `--rate-burst`: from 1 to [`MAX_RATE`] messages.
fn rate_burst(text: &str) -> Result<NonZeroU32, String> {
    match text.parse::<u32>() {
        Ok(burst) if burst > MAX_RATE => Err(format!("must be at most {MAX_RATE}")),
        Ok(burst) => NonZeroU32::new(burst).ok_or_else(|| "must be at least 1".to_string()),
        Err(_) => Err(format!("expected a number of messages, got {text:?}")),
    }
}

/// Parses `--max-connections-per-ip`: `off`, or from 1 to as many as a semaphore can count (the
/// bound of `--max-connections`).
fn max_connections_per_ip(text: &str) -> Result<OrOff<NonZeroUsize>, String> {
    if text == "off" {
        return Ok(None);
    }
    let limit = max_connections(text).map_err(|err| format!("{err} (or off, for no limit)"))?;
    Ok(NonZeroUsize::new(limit))
}

/// Parses `--allow-origin` (see [`Origin::parse`]).
fn origin(text: &str) -> Result<Origin, String> {
    Origin::parse(text)
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

/// Parses a duration flag: more than zero (`interval(ZERO)` panics, and a zero timeout is always
/// a mistake) and at most [`MAX_DURATION`].
fn duration(text: &str) -> Result<Duration, String> {
    let duration = fanout_kit::positive_duration(text)?;
    if duration > MAX_DURATION {
        return Err("must be at most 24h".to_string());
    }
    Ok(duration)
}

/// Parses `--max-message-size`: a size (see [`size`]) from 1 byte to [`MAX_MESSAGE_SIZE`].
fn message_size(text: &str) -> Result<usize, String> {
    match size(text)? {
        0 => Err("must be at least 1 byte".to_string()),
        bytes if bytes <= MAX_MESSAGE_SIZE => Ok(bytes),
        _ => Err("must be at most 16MiB".to_string()),
    }
}

/// The largest `--queue-bytes` accepted: 1 GiB for one client is already no bound at all.
pub const MAX_QUEUE_BYTES: usize = 1 << 30;

/// Parses `--queue-bytes`: a size (see [`size`]) from 1 byte to [`MAX_QUEUE_BYTES`].
fn queue_bytes(text: &str) -> Result<usize, String> {
    match size(text)? {
        0 => Err("must be at least 1 byte".to_string()),
        bytes if bytes <= MAX_QUEUE_BYTES => Ok(bytes),
        _ => Err("must be at most 1GiB".to_string()),
    }
}

/// A number of bytes, optionally with the unit `B`, `KiB` or `MiB`.
fn size(text: &str) -> Result<usize, String> {
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
    number
        .checked_mul(unit)
        .ok_or_else(|| "too large".to_string())
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

impl Config {
    /// `--idle-timeout`, or three ping intervals when it is not given. Refused when it is less
    /// than two ping intervals: a client that answers every ping could then be dropped anyway,
    /// for one pong delayed by the network. A check on two flags at once, so not clap's.
    pub fn idle_timeout(&self) -> io::Result<Duration> {
        let shortest = self.ping_interval.saturating_mul(2);
        match self.idle_timeout {
            None => Ok(self.ping_interval.saturating_mul(3)),
            Some(idle) if idle >= shortest => Ok(idle),
            Some(idle) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "--idle-timeout {idle:?} must be at least twice --ping-interval ({:?})",
                    self.ping_interval
                ),
            )),
        }
    }

    /// `--queue-bytes`, refused when it is less than `--max-message-size`: a message that big
    /// could never be queued for anybody, so it would reach nobody. A check on two flags at once.
    pub fn queue_budget(&self) -> io::Result<usize> {
        if self.queue_bytes < self.max_message_size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "--queue-bytes {} must be at least --max-message-size ({}): a message that \
                     does not fit in a queue reaches nobody",
                    self.queue_bytes, self.max_message_size
                ),
            ));
        }
        Ok(self.queue_bytes)
    }
}

// Tests may panic: that is how they fail.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use clap::Parser;

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

    /// `--queue-bytes` is a size from 1 byte to 1 GiB, and at least `--max-message-size`: a
    /// message that fits in no queue would reach nobody.
    #[test]
    fn the_queue_budget_holds_the_largest_message() {
        assert_eq!(queue_bytes("1MiB"), Ok(1 << 20));
        assert_eq!(queue_bytes("1024MiB"), Ok(MAX_QUEUE_BYTES));
        for bad in ["0", "1025MiB", "lots"] {
            assert!(queue_bytes(bad).is_err(), "{bad} should be refused");
        }
        let budget = |flags: &[&str]| {
            let args = std::iter::once("test").chain(flags.iter().copied());
            Config::parse_from(args).queue_budget()
        };
        assert_eq!(budget(&[]).unwrap(), 1 << 20);
        assert_eq!(
            budget(&["--queue-bytes", "64KiB", "--max-message-size", "64KiB"]).unwrap(),
            64 << 10
        );
        let err = budget(&["--queue-bytes", "64KiB", "--max-message-size", "65537"]).unwrap_err();
        assert!(err.to_string().contains("--max-message-size"), "{err}");
    }

    /// Durations are above zero and at most a day: an absurd one (it parses) would overflow an
    /// `Instant` inside tokio or hyper.
    #[test]
    fn durations_stay_within_a_day() {
        assert_eq!(duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(duration("24h"), Ok(MAX_DURATION));
        for bad in ["0s", "25h", "18000000000000000000s", "soon"] {
            assert!(duration(bad).is_err(), "{bad} should be refused");
        }
    }

    /// The broker's own default stall limit is the default `--write-timeout`, as its doc says.
    #[test]
    fn the_default_stall_limit_is_the_default_write_timeout() {
        let config = Config::parse_from(["test"]);
        assert_eq!(config.write_timeout, crate::broker::DEFAULT_STALL_LIMIT);
    }

    /// `--redis` takes a Redis URL and asks for RESP3 whatever the URL says (the bridge needs
    /// it); anything else is a flag error.
    #[test]
    fn redis_takes_a_redis_url_and_asks_for_resp3() {
        let info = redis_url("redis://127.0.0.1:6379").unwrap();
        assert_eq!(
            info.redis_settings().protocol(),
            redis::ProtocolVersion::RESP3
        );
        let info = redis_url("redis://127.0.0.1:6379/?protocol=resp2").unwrap();
        assert_eq!(
            info.redis_settings().protocol(),
            redis::ProtocolVersion::RESP3
        );
        for bad in ["", "localhost", "http://127.0.0.1:6379"] {
            assert!(redis_url(bad).is_err(), "--redis {bad:?} should be refused");
        }
        assert!(
            Config::parse_from(["test"]).redis.is_none(),
            "off by default"
        );
    }

    /// `--history` is 0 (off) to 1000, `--history-keep` 1 to a hundred million; anything else is
    /// a flag error.
    #[test]
    fn history_flags_stay_within_their_limits() {
        assert_eq!(history("0"), Ok(0));
        assert_eq!(history("1000"), Ok(1000));
        assert_eq!(history_keep("1"), Ok(1));
        assert_eq!(history_keep("100000000"), Ok(MAX_HISTORY_KEEP));
        for bad in ["1001", "-1", "lots", "99999999999999999999999"] {
            assert!(history(bad).is_err(), "--history {bad} should be refused");
        }
        for bad in ["0", "100000001", "-1", "lots"] {
            assert!(
                history_keep(bad).is_err(),
                "--history-keep {bad} should be refused"
            );
        }
        let config = Config::parse_from(["test"]);
        assert_eq!(
            (config.db, config.history, config.history_keep),
            ("fanout-history.db".into(), 50, 10_000)
        );
    }

    /// A flag given twice takes its last value, so that a scenario's flags can override the ones
    /// every test server gets.
    #[test]
    fn a_later_db_overrides_an_earlier_one() {
        let config = Config::parse_from(["test", "--db", "a.db", "--history", "3", "--db", "b.db"]);
        assert_eq!(config.db, PathBuf::from("b.db"));
        assert_eq!(config.history, 3);
    }

    /// `--rate-limit` is a number of messages a second from 1 to 100000, or off; `--rate-burst`
    /// a number of messages from 1 to 100000.
    #[test]
    fn rates_are_within_reason_or_off() {
        assert_eq!(rate_limit("10"), Ok(NonZeroU32::new(10)));
        assert_eq!(rate_limit("off"), Ok(None));
        assert_eq!(rate_burst("1"), Ok(NonZeroU32::MIN));
        for bad in ["0", "100001", "ten", "-1", "", "OFF"] {
            let err = rate_limit(bad).unwrap_err();
            assert!(!err.is_empty(), "{bad:?} should be refused with a reason");
        }
        for bad in ["0", "100001", "off"] {
            assert!(rate_burst(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(
            rate_limit("0").unwrap_err().contains("off"),
            "the error mentions off"
        );
    }

    /// `--max-connections-per-ip` is a count from 1, or off.
    #[test]
    fn the_per_address_limit_is_a_count_or_off() {
        assert_eq!(max_connections_per_ip("32"), Ok(NonZeroUsize::new(32)));
        assert_eq!(max_connections_per_ip("off"), Ok(None));
        for bad in ["0", "lots", "99999999999999999999"] {
            assert!(
                max_connections_per_ip(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    /// The defaults are those the documentation gives: 10 a second, bursts of 20, 10 s of grace,
    /// 32 connections an address, no other origin.
    #[test]
    fn the_limits_have_their_documented_defaults() {
        let config = Config::parse_from(["test"]);
        assert_eq!(config.rate_limit, NonZeroU32::new(10));
        assert_eq!(config.rate_burst.get(), 20);
        assert_eq!(config.rate_limit_grace, Duration::from_secs(10));
        assert_eq!(config.max_connections_per_ip, NonZeroUsize::new(32));
        assert!(config.allow_origin.is_empty());
    }

    /// A flag given twice takes its last value, so that flags given after a default list win;
    /// `--allow-origin` is the exception, as it adds up.
    #[test]
    fn a_later_flag_overrides_an_earlier_one() {
        let config = Config::parse_from([
            "test",
            "--rate-limit",
            "off",
            "--max-connections-per-ip",
            "off",
            "--rate-limit",
            "5",
            "--max-connections-per-ip",
            "2",
            "--allow-origin",
            "http://localhost:8080",
            "--allow-origin",
            "https://chat.example",
        ]);
        assert_eq!(config.rate_limit, NonZeroU32::new(5));
        assert_eq!(config.max_connections_per_ip, NonZeroUsize::new(2));
        assert_eq!(config.allow_origin.len(), 2);
    }

    /// A malformed `--allow-origin` is a flag error that says what an origin looks like.
    #[test]
    fn a_malformed_allowed_origin_is_refused() {
        let err = Config::try_parse_from(["test", "--allow-origin", "localhost:8080"]).unwrap_err();
        assert!(err.to_string().contains("scheme://host"), "{err}");
    }

    /// `--idle-timeout` defaults to three ping intervals and must be at least two.
    #[test]
    fn the_idle_timeout_leaves_room_for_pings() {
        let idle = |flags: &[&str]| {
            let args = std::iter::once("test").chain(flags.iter().copied());
            Config::parse_from(args).idle_timeout()
        };
        assert_eq!(idle(&[]).unwrap(), Duration::from_secs(90));
        assert_eq!(
            idle(&["--ping-interval", "1s", "--idle-timeout", "2s"]).unwrap(),
            Duration::from_secs(2)
        );
        let err = idle(&["--ping-interval", "1s", "--idle-timeout", "1999ms"]).unwrap_err();
        assert!(err.to_string().contains("--idle-timeout"), "{err}");
    }
}
