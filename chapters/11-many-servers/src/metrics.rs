//! `GET /metrics`: what the server counts, in the Prometheus text format, for a Prometheus
//! server (or `curl`) to read.
//!
//! One [`Registry`] per [`serve`](crate::serve), held in the app's state, and no global recorder.
//! The `metrics` crate's model is one recorder for the whole process, installed once, that every
//! counter in the process counts into. The stage tests start dozens of servers in one process,
//! and the book's runner several: with one recorder, each server's `/metrics` would show the sum
//! of all of them. With `prometheus-client`, a registry is a value like any other: each server
//! makes its own and shows only its own.
//!
//! Nothing here waits. Every metric is made of atomics (a counter, a gauge, each bucket of a
//! histogram), bumped in place by whoever sees the thing happen: the broker, a connection's
//! reader, the handshake, the storage task. The broker's share is an atomic add per count, never
//! a lock, never an `await` (prometheus-client's own `Histogram` takes a lock to observe, hence
//! [`Latency`] here). A scrape reads the atomics without asking the broker anything.
//!
//! `/stats` reads the same atomics (see `Broker::stats`), so the two never disagree: `/stats`
//! is the broker's snapshot between two events, `/metrics` a reading at any moment.
//!
//! Labels take a few fixed values each ([`Label`]): every series exists from the start (a zero
//! is shown as a zero, not as nothing), counting one is a search in a list of a few, and no
//! client can make a new series (a label holding a name or an address would let any client
//! grow the registry without bound).

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use prometheus_client::{
    encoding::{EncodeMetric, MetricEncoder, NoLabelSet, prometheus_text},
    metrics::{MetricType, TypedMetric, counter::Counter, gauge::Gauge},
    registry::Registry,
};

use crate::{AppState, message::Wire, storage::Counts};

/// What `/metrics` answers with: the Prometheus text format, version 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// The prefix of every metric's name.
pub const PREFIX: &str = "fanout";

/// Everything `/metrics` shows (names below without the `fanout_` prefix). Counters only grow,
/// from 0 at start-up, and their names end in `_total`; gauges say how things are now.
#[derive(Debug)]
pub struct Metrics {
    /// `connections{transport}`: clients connected now, by transport (`ws`, `tcp`). The broker
    /// adds one on a join and takes it off on a removal, so together they are `/stats`'s
    /// `connections`.
    pub connections: ByLabel<Wire, Gauge>,
    /// `connections_accepted_total{transport}`: clients that joined the broker since start-up.
    pub accepted: ByLabel<Wire, Counter>,
    /// `messages_in_total`: messages the broker received from clients, commands included.
    pub messages_in: Counter,
    /// `deliveries_total`: what clients said, put in another client's queue.
    pub deliveries: Counter,
    /// `dropped_total{reason}`: what clients said, not delivered to one client (see [`Dropped`]).
    pub dropped: ByLabel<Dropped, Counter>,
    /// `disconnects_total{reason}`: clients the broker removed, by why (see [`Disconnect`]).
    pub disconnects: ByLabel<Disconnect, Counter>,
    /// `rate_limited_total`: messages dropped by a reader for going over `--rate-limit` (⑰).
    pub rate_limited: Counter,
    /// `refused_total{reason}`: connections turned away before they joined (see [`Refusal`]).
    pub refused: ByLabel<Refusal, Counter>,
    /// `broker_queue_depth`: events waiting for the broker, read when `/metrics` is asked.
    pub queue_depth: Gauge,
    /// `broker_event_seconds`: how long the broker took over each event.
    pub broker_event: Latency,
    /// `rooms`: rooms now, the lobby included.
    pub rooms: Gauge,
    /// `history_dropped_total`: messages not kept because the storage queue was full.
    pub history_dropped: Counter,
    /// `history_written_total`, `db_failures_total`, `db_write_seconds`: the storage task's
    /// writes, failures and write durations (see `storage.rs`).
    pub db: Arc<Counts>,
    /// Every metric above, by name, for the scrape.
    registry: Registry,
}

impl Metrics {
    /// Fresh metrics, all at zero, with the storage task's counts `db`.
    pub fn new(db: Arc<Counts>) -> Metrics {
        let connections = ByLabel::default();
        let accepted = ByLabel::default();
        let messages_in = Counter::default();
        let deliveries = Counter::default();
        let dropped = ByLabel::default();
        let disconnects = ByLabel::default();
        let rate_limited = Counter::default();
        let refused = ByLabel::default();
        let queue_depth = Gauge::default();
        let broker_event = Latency::default();
        let rooms = Gauge::default();
        let history_dropped = Counter::default();
        // The registry holds clones: a clone of a counter is the same atomic, not a copy.
        let mut registry = Registry::with_prefix(PREFIX);
        registry.register(
            "connections",
            "Clients connected now, by transport",
            connections.clone(),
        );
        registry.register(
            "connections_accepted",
            "Clients accepted since start-up, by transport",
            accepted.clone(),
        );
        registry.register(
            "messages_in",
            "Messages received from clients, commands included",
            messages_in.clone(),
        );
        registry.register(
            "deliveries",
            "Messages clients said, put in another client's queue",
            deliveries.clone(),
        );
        registry.register(
            "dropped",
            "Messages clients said, not delivered to one client, by reason",
            dropped.clone(),
        );
        registry.register(
            "disconnects",
            "Clients removed, by reason",
            disconnects.clone(),
        );
        registry.register(
            "rate_limited",
            "Messages dropped for going over --rate-limit",
            rate_limited.clone(),
        );
        registry.register(
            "refused",
            "Connections refused before joining, by reason",
            refused.clone(),
        );
        registry.register(
            "broker_queue_depth",
            "Events waiting for the broker",
            queue_depth.clone(),
        );
        registry.register(
            "broker_event_seconds",
            "Time the broker took over one event",
            broker_event.clone(),
        );
        registry.register("rooms", "Rooms now, the lobby included", rooms.clone());
        registry.register(
            "history_dropped",
            "Messages not kept: the storage queue was full",
            history_dropped.clone(),
        );
        registry.register(
            "history_written",
            "Messages written to the history database",
            db.writes.clone(),
        );
        registry.register(
            "db_failures",
            "Failed database batches, reads and reopenings",
            db.failures.clone(),
        );
        registry.register(
            "db_write_seconds",
            "Time one batch of history writes took",
            db.write_seconds.clone(),
        );
        Metrics {
            connections,
            accepted,
            messages_in,
            deliveries,
            dropped,
            disconnects,
            rate_limited,
            refused,
            queue_depth,
            broker_event,
            rooms,
            history_dropped,
            db,
            registry,
        }
    }

    /// These metrics and the bridge's `counts` (`--redis`: see bridge/counts.rs).
    pub fn with_bridge(mut self, counts: &crate::bridge::Counts) -> Metrics {
        counts.register(&mut self.registry);
        self
    }

    /// Every metric, in the Prometheus text format.
    pub fn encode(&self) -> Result<String, fmt::Error> {
        let mut text = String::new();
        prometheus_text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

impl Default for Metrics {
    /// Metrics whose storage counts nobody else holds: for a broker without history, and tests.
    fn default() -> Metrics {
        Metrics::new(Arc::default())
    }
}

/// `GET /metrics`. Answered here, from the atomics: the broker is not asked, so a busy broker
/// (whose queue depth is one thing a scrape wants to see) does not delay the answer.
pub(crate) async fn scrape(State(state): State<AppState>) -> Response {
    // How many events wait now: the queue's size less its free room.
    let events = &state.events;
    let depth = events.max_capacity().saturating_sub(events.capacity());
    state
        .metrics
        .queue_depth
        .set(i64::try_from(depth).unwrap_or(i64::MAX));
    match state.metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// One label of a metric and its few values, each rendered as the label shows it.
pub trait Label: Copy + PartialEq + fmt::Debug + Send + Sync + 'static {
    /// The label's name, e.g. `reason`.
    const NAME: &'static str;
    /// Every value, in the order `/metrics` lists them.
    const ALL: &'static [Self];
    /// This value, as the label shows it: lower case, words joined by `_`.
    fn value(self) -> &'static str;
}

impl Label for Wire {
    const NAME: &'static str = "transport";
    const ALL: &'static [Wire] = &[Wire::WebSocket, Wire::Lines];
    fn value(self) -> &'static str {
        match self {
            Wire::WebSocket => "ws",
            Wire::Lines => "tcp",
        }
    }
}

/// Why a message a client said did not reach one of its recipients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// `queue_full`: the recipient's queue was full: it reads more slowly than the room talks (④).
    QueueFull,
    /// `held_full`: the recipient was waiting for its history, and what was held for it
    /// meanwhile was at its limit (see `broker/history.rs`).
    HeldFull,
}

impl Label for Dropped {
    const NAME: &'static str = "reason";
    const ALL: &'static [Dropped] = &[Dropped::QueueFull, Dropped::HeldFull];
    fn value(self) -> &'static str {
        match self {
            Dropped::QueueFull => "queue_full",
            Dropped::HeldFull => "held_full",
        }
    }
}

/// Why a client left the broker. The first reason the broker hears counts: a client let go for
/// its stall (`evicted`) whose connection then says it closed is counted once, as evicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disconnect {
    /// `closed`: the client closed the connection, or it broke.
    Closed,
    /// `quit`: the client said `/quit`.
    Quit,
    /// `timeout`: nothing heard for `--idle-timeout` (⑩), or a write took longer than
    /// `--write-timeout` (⑨).
    Timeout,
    /// `evicted`: its queue stayed full for the stall limit: a slow consumer, let go (⑪).
    Evicted,
    /// `protocol_error`: what it sent broke the WebSocket protocol or was not UTF-8 (⑦: 1002,
    /// 1007).
    ProtocolError,
    /// `too_big`: a message over `--max-message-size` (⑦: 1009).
    TooBig,
    /// `rate_limited`: still over `--rate-limit` after the grace (⑰: 1008).
    RateLimited,
    /// `shutdown`: the server is shutting down (1001).
    Shutdown,
}

impl Label for Disconnect {
    const NAME: &'static str = "reason";
    const ALL: &'static [Disconnect] = &[
        Disconnect::Closed,
        Disconnect::Quit,
        Disconnect::Timeout,
        Disconnect::Evicted,
        Disconnect::ProtocolError,
        Disconnect::TooBig,
        Disconnect::RateLimited,
        Disconnect::Shutdown,
    ];
    fn value(self) -> &'static str {
        match self {
            Disconnect::Closed => "closed",
            Disconnect::Quit => "quit",
            Disconnect::Timeout => "timeout",
            Disconnect::Evicted => "evicted",
            Disconnect::ProtocolError => "protocol_error",
            Disconnect::TooBig => "too_big",
            Disconnect::RateLimited => "rate_limited",
            Disconnect::Shutdown => "shutdown",
        }
    }
}

/// Why a connection was turned away before it joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `per_ip`: its address held `--max-connections-per-ip` already (⑱: 429).
    PerIp,
    /// `origin`: a page of a foreign origin asked (⑲: 403).
    Origin,
    /// `total`: the server held `--max-connections` already (⑧: 503).
    Total,
}

impl Label for Refusal {
    const NAME: &'static str = "reason";
    const ALL: &'static [Refusal] = &[Refusal::PerIp, Refusal::Origin, Refusal::Total];
    fn value(self) -> &'static str {
        match self {
            Refusal::PerIp => "per_ip",
            Refusal::Origin => "origin",
            Refusal::Total => "total",
        }
    }
}

/// One metric per value of the label `L`, every one made at start. A clone shares the same
/// metrics (each is an atomic behind an `Arc`).
#[derive(Debug, Clone)]
pub struct ByLabel<L, M> {
    series: Vec<(L, M)>,
}

impl<L: Label, M: Default> Default for ByLabel<L, M> {
    fn default() -> ByLabel<L, M> {
        ByLabel {
            series: L::ALL.iter().map(|label| (*label, M::default())).collect(),
        }
    }
}

impl<L: Label, M> ByLabel<L, M> {
    /// The metric for `label` (every value has one, made at start).
    fn find(&self, label: L) -> Option<&M> {
        self.series
            .iter()
            .find(|(value, _)| *value == label)
            .map(|(_, metric)| metric)
    }
}

impl<L: Label> ByLabel<L, Counter> {
    /// Counts one for `label`.
    pub fn inc(&self, label: L) {
        if let Some(counter) = self.find(label) {
            counter.inc();
        }
    }

    /// The count for `label`.
    pub fn get(&self, label: L) -> u64 {
        self.find(label).map_or(0, Counter::get)
    }

    /// The counts of every label, added up.
    pub fn total(&self) -> u64 {
        self.series
            .iter()
            .map(|(_, counter)| counter.get())
            .fold(0, u64::saturating_add)
    }
}

impl<L: Label> ByLabel<L, Gauge> {
    /// One more for `label`.
    pub fn inc(&self, label: L) {
        if let Some(gauge) = self.find(label) {
            gauge.inc();
        }
    }

    /// One fewer for `label`.
    pub fn dec(&self, label: L) {
        if let Some(gauge) = self.find(label) {
            gauge.dec();
        }
    }

    /// The value for `label`.
    pub fn get(&self, label: L) -> i64 {
        self.find(label).map_or(0, Gauge::get)
    }
}

impl<L: Label, M: EncodeMetric + TypedMetric> EncodeMetric for ByLabel<L, M> {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), fmt::Error> {
        for (label, metric) in &self.series {
            let labels = [(L::NAME, label.value())];
            metric.encode(encoder.encode_family(&labels)?)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        M::TYPE
    }
}

/// The upper bounds, in seconds, of a [`Latency`]'s buckets: from a microsecond (a broker event
/// is a few) to ten seconds (a database write on a disk in trouble), about 2.5 times apart.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.000_001,
    0.000_002_5,
    0.000_005,
    0.000_01,
    0.000_025,
    0.000_05,
    0.000_1,
    0.000_25,
    0.000_5,
    0.001,
    0.002_5,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
];

/// A histogram of durations made of atomics only: observing one is two atomic adds, where
/// prometheus-client's `Histogram` takes a lock. A clone shares the same buckets.
#[derive(Debug, Clone)]
pub struct Latency(Arc<Buckets>);

#[derive(Debug)]
struct Buckets {
    /// One per bound of [`LATENCY_BUCKETS`], then one for what is above them all (`+Inf`). Each
    /// counts the observations in it alone: the text format's running totals are summed up when
    /// it is written.
    counts: Vec<AtomicU64>,
    /// Every observation added up, in nanoseconds (a `u64` holds 584 years of them).
    sum_nanos: AtomicU64,
}

impl Default for Latency {
    fn default() -> Latency {
        let counts = (0..=LATENCY_BUCKETS.len())
            .map(|_| AtomicU64::new(0))
            .collect();
        Latency(Arc::new(Buckets {
            counts,
            sum_nanos: AtomicU64::new(0),
        }))
    }
}

impl Latency {
    /// Counts one thing that took `took`.
    pub fn observe(&self, took: Duration) {
        let index = bucket(took);
        if let Some(count) = self.0.counts.get(index) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.0.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// How many things were observed.
    pub fn count(&self) -> u64 {
        self.0
            .counts
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
            .fold(0, u64::saturating_add)
    }
}

/// The index of the bucket `took` falls in: the first whose bound it does not exceed, or the
/// last (`+Inf`).
fn bucket(took: Duration) -> usize {
    let seconds = took.as_secs_f64();
    LATENCY_BUCKETS
        .iter()
        .position(|bound| seconds <= *bound)
        .unwrap_or(LATENCY_BUCKETS.len())
}

impl TypedMetric for Latency {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Latency {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), fmt::Error> {
        let bounds = LATENCY_BUCKETS.iter().copied().chain([f64::INFINITY]);
        let buckets: Vec<(f64, u64)> = bounds
            .zip(&self.0.counts)
            .map(|(bound, count)| (bound, count.load(Ordering::Relaxed)))
            .collect();
        // The count is that of the buckets as read, so that the two agree even while others
        // observe.
        let count = buckets
            .iter()
            .map(|(_, count)| *count)
            .fold(0, u64::saturating_add);
        let sum = Duration::from_nanos(self.0.sum_nanos.load(Ordering::Relaxed)).as_secs_f64();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

// Tests may panic: that is how they fail.
#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
mod tests {
    use super::*;

    /// Every value of `L`, as the label shows it.
    fn values<L: Label>() -> Vec<&'static str> {
        L::ALL.iter().map(|label| label.value()).collect()
    }

    /// Each label's values are distinct, and each is a lower-case word or words joined by `_`:
    /// what a query would type, with nothing to escape.
    #[test]
    fn label_values_are_distinct_snake_case_words() {
        for values in [
            values::<Wire>(),
            values::<Dropped>(),
            values::<Disconnect>(),
            values::<Refusal>(),
        ] {
            let mut unique = values.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(unique.len(), values.len(), "{values:?} has a value twice");
            for value in values {
                assert!(
                    !value.is_empty()
                        && !value.starts_with('_')
                        && value.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                    "{value:?} is not a snake_case word"
                );
            }
        }
        assert_eq!(values::<Wire>(), ["ws", "tcp"]);
        assert_eq!(values::<Refusal>(), ["per_ip", "origin", "total"]);
    }

    /// `ALL` lists every variant: a variant added to an enum but not to its `ALL` would be
    /// counted nowhere (`inc` finds no series for it). The matches fail to compile when a variant
    /// is added, which sends whoever adds it here.
    #[test]
    fn every_variant_has_a_series() {
        let disconnects = ByLabel::<Disconnect, Counter>::default();
        for reason in Disconnect::ALL {
            match reason {
                Disconnect::Closed
                | Disconnect::Quit
                | Disconnect::Timeout
                | Disconnect::Evicted
                | Disconnect::ProtocolError
                | Disconnect::TooBig
                | Disconnect::RateLimited
                | Disconnect::Shutdown => disconnects.inc(*reason),
            }
        }
        assert_eq!(disconnects.total(), 8);
        assert!(
            Disconnect::ALL
                .iter()
                .all(|reason| disconnects.get(*reason) == 1)
        );
        let dropped = ByLabel::<Dropped, Counter>::default();
        for reason in [Dropped::QueueFull, Dropped::HeldFull] {
            match reason {
                Dropped::QueueFull | Dropped::HeldFull => dropped.inc(reason),
            }
        }
        assert_eq!(dropped.total(), 2);
        let refused = ByLabel::<Refusal, Counter>::default();
        for reason in [Refusal::PerIp, Refusal::Origin, Refusal::Total] {
            match reason {
                Refusal::PerIp | Refusal::Origin | Refusal::Total => refused.inc(reason),
            }
        }
        assert_eq!(refused.total(), 3);
        let connections = ByLabel::<Wire, Gauge>::default();
        for wire in [Wire::WebSocket, Wire::Lines] {
            match wire {
                Wire::WebSocket | Wire::Lines => connections.inc(wire),
            }
        }
        assert_eq!(connections.get(Wire::WebSocket), 1);
        assert_eq!(connections.get(Wire::Lines), 1);
    }

    /// A clone of a labelled counter is the same counter: what the registry holds is what the
    /// broker bumps.
    #[test]
    fn a_clone_counts_with_the_original() {
        let refused = ByLabel::<Refusal, Counter>::default();
        let registered = refused.clone();
        refused.inc(Refusal::Origin);
        refused.inc(Refusal::Origin);
        assert_eq!(registered.get(Refusal::Origin), 2);
        assert_eq!(registered.get(Refusal::Total), 0);
    }

    /// A duration falls in the first bucket whose bound it does not exceed; one above them all
    /// in `+Inf`.
    #[test]
    fn a_duration_falls_in_the_first_bucket_that_holds_it() {
        assert_eq!(bucket(Duration::ZERO), 0);
        assert_eq!(bucket(Duration::from_micros(1)), 0);
        assert_eq!(bucket(Duration::from_nanos(1001)), 1);
        assert_eq!(
            LATENCY_BUCKETS.get(bucket(Duration::from_millis(3))),
            Some(&0.005)
        );
        assert_eq!(bucket(Duration::from_secs(10)), LATENCY_BUCKETS.len() - 1);
        assert_eq!(bucket(Duration::from_secs(11)), LATENCY_BUCKETS.len());
        assert_eq!(bucket(Duration::MAX), LATENCY_BUCKETS.len());
    }

    /// The bounds increase: the text format needs them in order, and `bucket` takes the first.
    #[test]
    fn the_bounds_increase() {
        assert!(LATENCY_BUCKETS.windows(2).all(|pair| pair[0] < pair[1]));
    }

    /// The text: a family per metric with its HELP and TYPE, counters named `_total`, every
    /// labelled series there from the start, and a histogram's buckets as running totals.
    #[test]
    fn the_text_format_shows_every_family() {
        let metrics = Metrics::default();
        metrics.messages_in.inc();
        metrics.connections.inc(Wire::Lines);
        metrics.disconnects.inc(Disconnect::TooBig);
        metrics.broker_event.observe(Duration::from_micros(3));
        metrics.broker_event.observe(Duration::from_secs(60));
        let text = metrics.encode().unwrap();
        for line in [
            "# TYPE fanout_messages_in_total counter",
            "fanout_messages_in_total 1",
            "# TYPE fanout_connections gauge",
            "fanout_connections{transport=\"ws\"} 0",
            "fanout_connections{transport=\"tcp\"} 1",
            "fanout_disconnects_total{reason=\"too_big\"} 1",
            "fanout_disconnects_total{reason=\"closed\"} 0",
            "fanout_refused_total{reason=\"per_ip\"} 0",
            "# TYPE fanout_broker_event_seconds histogram",
            "fanout_broker_event_seconds_bucket{le=\"2.5e-06\"} 0",
            "fanout_broker_event_seconds_bucket{le=\"5e-06\"} 1",
            "fanout_broker_event_seconds_bucket{le=\"10\"} 1",
            "fanout_broker_event_seconds_bucket{le=\"+Inf\"} 2",
            "fanout_broker_event_seconds_count 2",
            "fanout_db_write_seconds_count 0",
            "fanout_history_written_total 0",
            "fanout_db_failures_total 0",
        ] {
            assert!(
                text.lines().any(|got| got == line),
                "expected the line {line:?} in:\n{text}"
            );
        }
        assert_eq!(metrics.broker_event.count(), 2);
    }

    /// Two sets of metrics are two: what one counts, the other does not see (one registry per
    /// server, no global recorder).
    #[test]
    fn two_servers_metrics_do_not_mix() {
        let one = Metrics::default();
        let other = Metrics::default();
        one.messages_in.inc();
        assert!(one.encode().unwrap().contains("fanout_messages_in_total 1"));
        assert!(
            other
                .encode()
                .unwrap()
                .contains("fanout_messages_in_total 0")
        );
    }
}
