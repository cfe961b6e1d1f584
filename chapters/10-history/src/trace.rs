//! Each connection's span: every line its tasks log carries who the client is (its id, name,
//! room, transport and address), so that one client's story can be picked out of a busy log.
//!
//! The connection's reader and writer run inside the span (`.instrument(span)`), and so log in
//! it without naming it. Its name and room are the broker's to change: the broker holds a clone
//! of the span, given with [`Event::Join`](crate::broker::Event::Join), and records the new
//! values in it whenever it tells the client who and where it is (its welcome, after a join, a
//! `/nick` or a `/join`). Recording is a call, not an `await`, and costs nothing when nobody
//! listens. A span's fields are fixed when it is made: those recorded later are declared then,
//! empty.

use std::net::SocketAddr;

use tracing::{Span, field};

use crate::{
    broker::ConnId,
    message::Wire,
    metrics::Label,
    names::{Nick, Room},
};

// ANCHOR: connection_span
/// The span of connection `id`, from `peer`, over `wire` (`ws` or `tcp`, as `/metrics` names
/// them). `name` and `room` are empty until the broker welcomes the client.
pub(crate) fn connection_span(id: ConnId, wire: Wire, peer: SocketAddr) -> Span {
    tracing::info_span!(
        "connection",
        %id,
        transport = wire.value(),
        %peer,
        name = field::Empty,
        room = field::Empty,
    )
}

/// Records `name` and `room` in a connection's `span`, replacing what was there.
pub(crate) fn record_where(span: &Span, name: &Nick, room: &Room) {
    span.record("name", field::display(name));
    span.record("room", field::display(room));
}
// ANCHOR_END: connection_span
