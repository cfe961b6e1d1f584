//! Each connection's span: every line its tasks log carries who the client is (its id, name,
//! room, transport and address), so that one client's story can be picked out of a busy log.
//!
//! The connection's reader and writer run inside the span (`.instrument(span)`), and so log in
//! it without naming it. Its name and room are the broker's to change: the broker holds a clone
//! of the span, given with [`Event::Join`](crate::broker::Event::Join), and records each new
//! value in it when it changes (on joining, then on a `/nick`, a `/join` or a `/leave`). Recording
//! is a call, not an `await`, and costs nothing when nobody listens. A span's fields are fixed
//! when it is made: those recorded later are declared then, empty. (tracing-subscriber's text
//! output shows a field recorded twice twice, the newest last: hence one record per change.)

use std::net::SocketAddr;

use tracing::{Span, field};

use crate::{
    broker::ConnId,
    message::Wire,
    metrics::Label,
    names::{Nick, Room},
};

/// The span of connection `id`, from `peer`, over `wire` (`ws` or `tcp`, as `/metrics` names
/// them). `name` and `room` are empty until the broker welcomes the client.
pub(crate) fn connection_span(id: ConnId, wire: Wire, peer: SocketAddr) -> Span {
    tracing::info_span!(
        "connection",
        %id,
        transport = %wire.value(),
        %peer,
        name = field::Empty,
        room = field::Empty,
    )
}

/// Records the client's new `name` in its connection's `span`.
pub(crate) fn record_name(span: &Span, name: &Nick) {
    span.record("name", field::display(name));
}

/// Records the client's new `room` in its connection's `span`.
pub(crate) fn record_room(span: &Span, room: &Room) {
    span.record("room", field::display(room));
}

// Tests may panic: that is how they fail.
#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]
mod tests {
    use std::{
        collections::{BTreeMap, HashMap},
        fmt,
        sync::{
            Arc, Mutex,
            atomic::{AtomicU64, Ordering},
        },
    };

    use axum::extract::ws::Message;
    use tracing::{
        Event as LogEvent, Metadata, Subscriber,
        field::{Field, Visit},
        span::{Attributes, Id, Record},
    };

    use super::*;
    use crate::broker::{Broker, Event};

    /// A subscriber that keeps the fields of every span, as last recorded: enough to see what a
    /// log line in that span would carry.
    #[derive(Clone, Default)]
    struct Recorder {
        spans: Arc<Mutex<HashMap<u64, BTreeMap<String, String>>>>,
        next: Arc<AtomicU64>,
    }

    /// Writes the fields it visits into one span's map.
    struct Fields<'a>(&'a mut BTreeMap<String, String>);

    impl Visit for Fields<'_> {
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.insert(field.name().to_string(), value.to_string());
        }

        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            self.0
                .insert(field.name().to_string(), format!("{value:?}"));
        }
    }

    impl Recorder {
        /// The fields of the only span there is.
        fn fields(&self) -> BTreeMap<String, String> {
            let spans = self.spans.lock().unwrap();
            assert_eq!(spans.len(), 1, "one span expected: {spans:?}");
            spans.values().next().cloned().unwrap()
        }
    }

    impl Subscriber for Recorder {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }

        fn new_span(&self, span: &Attributes<'_>) -> Id {
            let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
            let mut fields = BTreeMap::new();
            span.record(&mut Fields(&mut fields));
            self.spans.lock().unwrap().insert(id, fields);
            Id::from_u64(id)
        }

        fn record(&self, span: &Id, values: &Record<'_>) {
            let mut spans = self.spans.lock().unwrap();
            let fields = spans.entry(span.into_u64()).or_default();
            values.record(&mut Fields(fields));
        }

        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, _: &LogEvent<'_>) {}
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    /// A connection's span says who it is from the start (id, transport, address), gets its name
    /// and room when the broker welcomes it, and follows a `/nick` and a `/join`.
    #[test]
    fn a_connections_span_follows_its_name_and_room() {
        let recorder = Recorder::default();
        tracing::subscriber::with_default(recorder.clone(), || {
            let id = ConnId::next();
            let peer: SocketAddr = "127.0.0.1:4000".parse().unwrap();
            let span = connection_span(id, Wire::Lines, peer);
            let fields = recorder.fields();
            assert_eq!(fields.get("id"), Some(&id.to_string()));
            assert_eq!(fields.get("transport").map(String::as_str), Some("tcp"));
            assert_eq!(
                fields.get("peer").map(String::as_str),
                Some("127.0.0.1:4000")
            );
            assert_eq!(fields.get("name"), None, "no name before the welcome");

            let mut broker = Broker::default();
            let (outbox, _inbox) = crate::outbox::outbox(64, 1 << 20);
            let wire = Wire::Lines;
            broker.handle(Event::Join {
                id,
                outbox,
                wire,
                span,
            });
            let fields = recorder.fields();
            assert_eq!(fields.get("name").map(String::as_str), Some("guest-1"));
            assert_eq!(fields.get("room").map(String::as_str), Some("lobby"));

            for line in ["/nick alice", "/join games"] {
                let message = Message::text(line);
                broker.handle(Event::Message { from: id, message });
            }
            let fields = recorder.fields();
            assert_eq!(fields.get("name").map(String::as_str), Some("alice"));
            assert_eq!(fields.get("room").map(String::as_str), Some("games"));
        });
    }
}
