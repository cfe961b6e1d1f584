// Fan-out workshop, exercise 11-many-servers: generated from chapters/11-many-servers by `cargo workshop generate`.
//
// Nothing to do in this file: it is the finished part of the exercise. Your part is in
// src/bridge.rs, src/broker/cluster.rs.

//! The limits a client cannot talk its way past: how fast it may send (⑰, a token bucket per
//! client) and how many connections one address may hold at once (⑱, beside the total of ⑧).
//!
//! Both are policies, kept here as plain types that know nothing of sockets, so that they can be
//! tested on their own, with a clock the test moves by hand.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv6Addr},
    num::{NonZeroU32, NonZeroUsize},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use governor::{
    Quota, RateLimiter,
    clock::{Clock, Reference},
    middleware::NoOpMiddleware,
    nanos::Nanos,
    state::{InMemoryState, NotKeyed},
};

/// A flood is over once a client has had no message dropped for this long. A second is long
/// enough for at least one token to come back whatever `--rate-limit` is (it is at least 1 per
/// second), so a client that waits that long is back under the limit, and short enough that a
/// client which pauses and floods again is told again.
pub const CALM: Duration = Duration::from_secs(1);

/// The reason of the Close 1008 a flooding WebSocket client gets, and of the last line a
/// flooding terminal client reads (a Close reason has room for 123 bytes).
pub const FLOODING: &str =
    "too many messages for too long: over the rate limit for longer than its grace";

/// What the reader does with one message a client sent, as [`RateLimit::check`] decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limit: hand it to the broker.
    Pass,
    /// Over the limit: drop it. `warn` is true for the first drop of a flood only: the client is
    /// told once, not once per message.
    Drop { warn: bool },
    /// Over the limit for `--rate-limit-grace` already: close the connection.
    Close,
}

/// The clock the server's buckets run on: tokio's, as nanoseconds since the bucket was made. A
/// clock of our own rather than governor's default (which would need its `std` and `quanta`
/// features); and tokio's time can be paused and moved on in a test like any other timer here.
#[derive(Debug, Clone)]
pub struct TokioClock {
    start: tokio::time::Instant,
}

impl Default for TokioClock {
    fn default() -> TokioClock {
        TokioClock {
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::from(self.start.elapsed())
    }
}

/// ⑰ One client's message rate: a token bucket of `burst` tokens that refills at `per_second`
/// tokens a second (governor's GCRA, which is that bucket without a timer: it keeps one instant
/// and computes the rest). Every message takes a token; a message that finds none is dropped.
/// A *flood* is a run of dropped messages, each within [`CALM`] of the one before: its first
/// drop warns the client, and a drop that comes `grace` or more after the flood began closes the
/// connection. A client that slows down in time is never closed, and hears about it once.
pub struct RateLimit<C: Clock = TokioClock> {
    bucket: RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<C::Instant>>,
    /// The rate and the grace, for the warning.
    per_second: NonZeroU32,
    grace: Duration,
    /// When the flood under way began, and when its last message was dropped.
    flood: Option<(C::Instant, C::Instant)>,
}

impl RateLimit {
    /// A bucket on tokio's clock, as the server makes one for each client.
    pub fn new(per_second: NonZeroU32, burst: NonZeroU32, grace: Duration) -> RateLimit {
        RateLimit::with_clock(per_second, burst, grace, TokioClock::default())
    }
}

impl<C: Clock> RateLimit<C> {
    /// A bucket on `clock`: the tests' own, which they move by hand.
    pub fn with_clock(
        per_second: NonZeroU32,
        burst: NonZeroU32,
        grace: Duration,
        clock: C,
    ) -> RateLimit<C> {
        let quota = Quota::per_second(per_second).allow_burst(burst);
        RateLimit {
            bucket: RateLimiter::direct_with_clock(quota, clock),
            per_second,
            grace,
            flood: None,
        }
    }

    /// Takes a token for one message, and says what to do with it.
    pub fn check(&mut self) -> Verdict {
        if self.bucket.check().is_ok() {
            return Verdict::Pass;
        }
        let now = self.bucket.clock().now();
        match &mut self.flood {
            // The same flood: the last drop was less than CALM ago.
            Some((began, last_drop)) if now.duration_since(*last_drop) < Nanos::from(CALM) => {
                *last_drop = now;
                if now.duration_since(*began) >= Nanos::from(self.grace) {
                    Verdict::Close
                } else {
                    Verdict::Drop { warn: false }
                }
            }
            // The first drop ever, or the first since the client calmed down.
            _ => {
                self.flood = Some((now, now));
                Verdict::Drop { warn: true }
            }
        }
    }

    /// What the client is told at the first drop of a flood.
    pub fn warning(&self) -> String {
        format!(
            "slow down: you are sending more than {} messages a second, and those over the limit \
             are dropped; keep it up for {:?} and you will be disconnected",
            self.per_second, self.grace
        )
    }
}

/// ⑱ How many connections each address holds, against `--max-connections-per-ip`. Shared by every
/// handshake and every terminal client; a [`IpPlace`] gives its place back when it is dropped,
/// however its connection ended.
///
/// A `std` mutex, not tokio's: it is held for one map operation, never across an `.await`, and
/// never by the broker.
#[derive(Debug)]
pub struct PerIp {
    limit: NonZeroUsize,
    held: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's place among its address's `--max-connections-per-ip`, given back on drop.
#[derive(Debug)]
pub struct IpPlace {
    table: Arc<PerIp>,
    key: IpAddr,
}

impl PerIp {
    /// At most `limit` connections for each address.
    pub fn new(limit: NonZeroUsize) -> Arc<PerIp> {
        Arc::new(PerIp {
            limit,
            held: Mutex::new(HashMap::new()),
        })
    }

    /// The limit for each address.
    pub fn limit(&self) -> NonZeroUsize {
        self.limit
    }

    /// A place for one more connection from `ip`, or `None` when it holds `limit` already.
    pub fn take(self: &Arc<PerIp>, ip: IpAddr) -> Option<IpPlace> {
        let key = key(ip);
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let count = held.entry(key).or_insert(0);
        if *count >= self.limit.get() {
            return None;
        }
        *count = count.saturating_add(1);
        Some(IpPlace {
            table: Arc::clone(self),
            key,
        })
    }

    /// How many connections `ip` holds now.
    pub fn held_by(&self, ip: IpAddr) -> usize {
        let held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        held.get(&key(ip)).copied().unwrap_or(0)
    }
}

impl Drop for IpPlace {
    fn drop(&mut self) {
        let mut held = self
            .table
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = held.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            // An address with no connection left takes no room: the map holds only those
            // connected now, however many addresses have come and gone.
            if *count == 0 {
                held.remove(&self.key);
            }
        }
    }
}

/// What counts as one address. IPv4 as it is (and an IPv4 address that arrives mapped into IPv6,
/// `::ffff:1.2.3.4`, as that IPv4 address). For IPv6, the first 64 bits: one machine commonly has
/// a whole /64 to itself and can pick a fresh address in it for every connection.
fn key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = v6.to_bits() & !u128::from(u64::MAX);
            IpAddr::V6(Ipv6Addr::from_bits(prefix))
        }
        v4 => v4,
    }
}

// Tests may panic: that is how they fail.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;

    fn n(value: u32) -> NonZeroU32 {
        NonZeroU32::new(value).unwrap()
    }

    /// 10 a second with a burst of 20 and a grace of 10 s, the defaults, on a clock of our own.
    fn defaults() -> (RateLimit<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        let limit = RateLimit::with_clock(n(10), n(20), Duration::from_secs(10), clock.clone());
        (limit, clock)
    }

    /// A burst up to its size passes at once; the next message is dropped, with a warning.
    #[test]
    fn a_burst_passes_and_the_next_message_is_dropped_with_a_warning() {
        let (mut limit, _clock) = defaults();
        for sent in 1..=20 {
            assert_eq!(limit.check(), Verdict::Pass, "message {sent} of the burst");
        }
        assert_eq!(limit.check(), Verdict::Drop { warn: true });
    }

    /// While the flood goes on, messages are dropped without another warning.
    #[test]
    fn a_flood_is_warned_about_once() {
        let (mut limit, clock) = defaults();
        for _ in 0..20 {
            limit.check();
        }
        assert_eq!(limit.check(), Verdict::Drop { warn: true });
        // 90 ms of a flood, before the next token comes back (one every 100 ms).
        for _ in 0..90 {
            clock.advance(Duration::from_millis(1));
            assert_eq!(limit.check(), Verdict::Drop { warn: false });
        }
    }

    /// Tokens come back at the rate: 100 ms later, one message passes again.
    #[test]
    fn tokens_come_back_at_the_rate() {
        let (mut limit, clock) = defaults();
        for _ in 0..20 {
            limit.check();
        }
        assert_eq!(limit.check(), Verdict::Drop { warn: true });
        clock.advance(Duration::from_millis(100));
        assert_eq!(limit.check(), Verdict::Pass);
        assert_eq!(limit.check(), Verdict::Drop { warn: false });
    }

    /// A client that keeps sending faster than the rate for the whole grace is closed, even though
    /// a message of its passes now and then (a token comes back every 100 ms).
    #[test]
    fn a_flood_that_lasts_the_grace_closes_the_connection() {
        let (mut limit, clock) = defaults();
        for _ in 0..20 {
            limit.check();
        }
        assert_eq!(limit.check(), Verdict::Drop { warn: true });
        let mut passed = 0;
        // 50 messages a second, for just under ten seconds.
        for _ in 0..499 {
            clock.advance(Duration::from_millis(20));
            match limit.check() {
                Verdict::Pass => passed += 1,
                Verdict::Drop { warn: false } => {}
                other => panic!("within the grace, expected a pass or a quiet drop, got {other:?}"),
            }
        }
        assert!(
            passed > 0,
            "some messages pass at the rate, even in a flood"
        );
        clock.advance(Duration::from_millis(20));
        // The next drop is 10 s after the first.
        let verdict = (0..10).map(|_| limit.check()).find(|v| *v != Verdict::Pass);
        assert_eq!(verdict, Some(Verdict::Close));
    }

    /// A client that calms down (a second with nothing dropped) is warned again at its next
    /// flood, and its grace starts over.
    #[test]
    fn after_a_calm_second_the_next_flood_is_a_new_one() {
        let (mut limit, clock) = defaults();
        for _ in 0..20 {
            limit.check();
        }
        assert_eq!(limit.check(), Verdict::Drop { warn: true });
        clock.advance(Duration::from_secs(9));
        // Nine seconds later the bucket is full again: a burst passes, then a new flood begins.
        for _ in 0..20 {
            assert_eq!(limit.check(), Verdict::Pass);
        }
        assert_eq!(limit.check(), Verdict::Drop { warn: true });
        // Flooding on past the tenth second after the first flood began: not closed, since this
        // flood began at the ninth.
        for _ in 0..100 {
            clock.advance(Duration::from_millis(20));
            assert_ne!(limit.check(), Verdict::Close, "the grace starts over");
        }
    }

    /// Sending exactly at the rate is never dropped, however long it goes on.
    #[test]
    fn sending_at_the_rate_is_never_dropped() {
        let (mut limit, clock) = defaults();
        for _ in 0..1000 {
            assert_eq!(limit.check(), Verdict::Pass);
            clock.advance(Duration::from_millis(100));
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    /// An address gets its limit of places and no more; another address is not affected; a
    /// place dropped is a place free again, and an address with none held leaves the map.
    #[test]
    fn each_address_gets_its_limit_of_places() {
        let table = PerIp::new(NonZeroUsize::new(2).unwrap());
        let first = table.take(ip("127.0.0.1")).expect("first place");
        let _second = table.take(ip("127.0.0.1")).expect("second place");
        assert!(table.take(ip("127.0.0.1")).is_none(), "a third is refused");
        let _other = table
            .take(ip("10.0.0.1"))
            .expect("another address has its own places");
        drop(first);
        assert_eq!(table.held_by(ip("127.0.0.1")), 1);
        let _third = table
            .take(ip("127.0.0.1"))
            .expect("a place given back is free");
        drop(_third);
        drop(_second);
        assert_eq!(table.held.lock().unwrap().len(), 1, "only 10.0.0.1 is left");
    }

    /// An IPv4 address mapped into IPv6 is that IPv4 address; IPv6 addresses of one /64 are one
    /// address.
    #[test]
    fn addresses_are_counted_by_host_and_by_slash_64() {
        let table = PerIp::new(NonZeroUsize::new(1).unwrap());
        let _v4 = table.take(ip("192.0.2.7")).unwrap();
        assert!(table.take(ip("::ffff:192.0.2.7")).is_none());
        let _v6 = table.take(ip("2001:db8:1:2::1")).unwrap();
        assert!(table.take(ip("2001:db8:1:2:ffff::9")).is_none());
        assert!(table.take(ip("2001:db8:1:3::1")).is_some());
    }
}
