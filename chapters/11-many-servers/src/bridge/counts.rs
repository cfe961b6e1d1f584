//! What the bridge counts, for `/stats` and `/metrics`: news the other servers were not told,
//! news from them that was not heard, whether Redis answers, how many servers are heard from.
//!
//! The same kind of atomics as chapter 10's metrics (see `metrics.rs`): the broker and the
//! bridge each bump theirs in place, without waiting, and a scrape reads them without asking
//! either.

use prometheus_client::{
    metrics::{counter::Counter, gauge::Gauge},
    registry::Registry,
};

use crate::metrics::{ByLabel, Label};

// ANCHOR: counts
/// The bridge's metrics (names below without the `fanout_` prefix).
#[derive(Debug, Default)]
pub struct Counts {
    /// `bridge_unpublished_total{reason}`: news for the other servers that was dropped (see
    /// [`Unpublished`]). The heartbeat's "alive" is not counted: it is said again in a second.
    pub unpublished: ByLabel<Unpublished, Counter>,
    /// `bridge_unheard_total`: news from the other servers dropped on arrival, the bridge's
    /// incoming queue being full (㉒).
    pub unheard: Counter,
    /// `redis_connected`: 1 while Redis answers the bridge, 0 while it does not (㉑).
    pub connected: Gauge,
    /// `bridge_peers`: the other servers heard from lately (`/stats`: `peers`).
    pub peers: Gauge,
}
// ANCHOR_END: counts

/// Why news for the other servers was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unpublished {
    /// `queue_full`: the bridge's queue had no room for it: the broker does not wait (⑳).
    QueueFull,
    /// `redis_away`: Redis was out of reach when the bridge came to publish it (㉑).
    RedisAway,
}

impl Label for Unpublished {
    const NAME: &'static str = "reason";
    const ALL: &'static [Unpublished] = &[Unpublished::QueueFull, Unpublished::RedisAway];
    fn value(self) -> &'static str {
        match self {
            Unpublished::QueueFull => "queue_full",
            Unpublished::RedisAway => "redis_away",
        }
    }
}

impl Counts {
    /// Puts every count in `registry` (clones: the same atomics).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "bridge_unpublished",
            "News for the other servers that was dropped, by reason",
            self.unpublished.clone(),
        );
        registry.register(
            "bridge_unheard",
            "News from the other servers dropped on arrival: the bridge's queue was full",
            self.unheard.clone(),
        );
        registry.register(
            "redis_connected",
            "Whether Redis answers the bridge: 1 yes, 0 no",
            self.connected.clone(),
        );
        registry.register(
            "bridge_peers",
            "Other servers heard from lately",
            self.peers.clone(),
        );
    }
}

// Tests may panic: that is how they fail.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    /// With a bridge, `/metrics` shows its families, every reason from the start, at what the
    /// bridge and the broker counted.
    #[test]
    fn the_bridges_counts_are_on_metrics() {
        let counts = Counts::default();
        let metrics = Metrics::default().with_bridge(&counts);
        counts.unpublished.inc(Unpublished::RedisAway);
        counts.unheard.inc();
        counts.connected.set(1);
        counts.peers.set(2);
        let text = metrics.encode().unwrap();
        for line in [
            "# TYPE fanout_bridge_unpublished_total counter",
            "fanout_bridge_unpublished_total{reason=\"queue_full\"} 0",
            "fanout_bridge_unpublished_total{reason=\"redis_away\"} 1",
            "fanout_bridge_unheard_total 1",
            "# TYPE fanout_redis_connected gauge",
            "fanout_redis_connected 1",
            "fanout_bridge_peers 2",
        ] {
            assert!(
                text.lines().any(|got| got == line),
                "expected the line {line:?} in:\n{text}"
            );
        }
    }

    /// Without a bridge there are no bridge families: a server without `--redis` does not
    /// claim a Redis it never had.
    #[test]
    fn without_a_bridge_there_are_no_bridge_families() {
        let text = Metrics::default().encode().unwrap();
        assert!(!text.contains("bridge_"), "{text}");
        assert!(!text.contains("redis_connected"), "{text}");
    }
}
