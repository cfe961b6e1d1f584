//! What every generated message carries, and how a delivery is read back without a parser.
//!
//! A message is ASCII text: a marker, the sender, the sequence number and the send time, then
//! dots up to the requested size:
//!
//! ```text
//! load:3:1207:5123456:...................
//! ```
//!
//! The send time is in microseconds since the run started, on the monotonic clock every client of
//! the run shares (they are all in this process), so receive time minus send time is the one-way
//! latency, with no clock synchronisation to worry about.
//!
//! Two wire formats arrive, and each frame says which it is. Chapters up to 08 forward the
//! client's text frame as it is: the frame *is* the payload. From chapter 09 on, a chat message
//! travels as a JSON object whose `"text"` field holds what the client sent, among other fields,
//! and the server also sends frames of its own (system notices). The payload uses no `"` and no
//! `\`, so JSON never escapes it: the same bytes sit between the quotes of `"text"`, and a byte
//! search finds them. Parsing the JSON of every delivery would cost the generator more CPU than
//! the server spends forwarding it, and the generator must not be what limits a run.

/// How every generated payload starts; a payload without it is not ours.
pub const MARKER: &[u8] = b"load:";

/// The smallest `--size` accepted: room for the marker and three numbers as large as a bounded
/// run makes them (a sender number of 5 digits, sequence numbers and microseconds of 12 digits
/// each, which is 11 days), with their separators.
pub const MIN_SIZE: usize = 48;

/// The identity of one message: who sent it, its place in that sender's sequence, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The sending client's number (0..senders).
    pub sender: u32,
    /// The sender's sequence number, from 0, without gaps.
    pub seq: u64,
    /// When it was sent, in microseconds since the run started.
    pub sent_at_us: u64,
}

/// What one received frame turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// One of the generator's messages.
    Ours(Stamp),
    /// Anything else: a system notice, a frame from another program.
    Other,
}

/// The text of the message for `stamp`, padded with dots to `size` bytes (or longer, if the
/// numbers themselves need more room than `size`).
pub fn encode(stamp: Stamp, size: usize) -> String {
    let mut text = format!("load:{}:{}:{}:", stamp.sender, stamp.seq, stamp.sent_at_us);
    let padding = size.saturating_sub(text.len());
    text.extend(std::iter::repeat_n('.', padding));
    text
}

/// Reads one received frame (text or binary), in either wire format.
pub fn read(frame: &[u8]) -> Delivery {
    match payload_of(frame).and_then(parse_stamp) {
        Some(stamp) => Delivery::Ours(stamp),
        None => Delivery::Other,
    }
}

/// The payload a frame carries: the frame itself, or the value of the `"text"` field of a JSON
/// object (`None` when the object has no such string field).
fn payload_of(frame: &[u8]) -> Option<&[u8]> {
    if frame.first() == Some(&b'{') {
        json_text(frame)
    } else {
        Some(frame)
    }
}

/// The bytes between the quotes of the first `"text"` key's string value, found by byte search.
/// The value ends at the next `"`: a payload of ours contains none, and an escaped quote (`\"`) in
/// somebody else's text only cuts that text short, which still does not start with our marker.
fn json_text(frame: &[u8]) -> Option<&[u8]> {
    const KEY: &[u8] = b"\"text\"";
    let mut rest = frame;
    while let Some(at) = find(rest, KEY) {
        rest = rest.get(at + KEY.len()..)?;
        // A key is followed by a colon (maybe with spaces around it); the same word as a value
        // (`"from":"text"`) is followed by a comma or a brace, and the search goes on.
        let after_colon = skip_spaces(rest)
            .strip_prefix(b":")
            .map(skip_spaces)
            .and_then(|value| value.strip_prefix(b"\""));
        if let Some(value) = after_colon {
            let end = value.iter().position(|&byte| byte == b'"')?;
            return value.get(..end);
        }
    }
    None
}

fn skip_spaces(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|byte| !byte.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    &bytes[start..]
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// `load:<sender>:<seq>:<sent_at_us>:…` back into a [`Stamp`].
fn parse_stamp(payload: &[u8]) -> Option<Stamp> {
    let rest = payload.strip_prefix(MARKER)?;
    let (sender, rest) = number(rest)?;
    let (seq, rest) = number(rest)?;
    let (sent_at_us, _padding) = number(rest)?;
    Some(Stamp {
        sender: u32::try_from(sender).ok()?,
        seq,
        sent_at_us,
    })
}

/// A decimal number followed by `:`, and what comes after the colon. `None` for no digits, a
/// missing colon or a number too large for a `u64`.
fn number(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let digits = bytes
        .iter()
        .take_while(|byte| byte.is_ascii_digit())
        .count();
    if digits == 0 {
        return None;
    }
    let (head, rest) = bytes.split_at(digits);
    let value = head.iter().try_fold(0u64, |value, &digit| {
        value.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
    })?;
    Some((value, rest.strip_prefix(b":")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAMP: Stamp = Stamp {
        sender: 7,
        seq: 123_456,
        sent_at_us: 9_876_543,
    };

    /// An encoded message has exactly the requested size and reads back as the same stamp.
    #[test]
    fn a_message_reads_back_as_its_stamp() {
        let text = encode(STAMP, 64);
        assert_eq!(
            text.len(),
            64,
            "the message should be padded to --size: {text:?}"
        );
        assert_eq!(read(text.as_bytes()), Delivery::Ours(STAMP));
    }

    /// The largest numbers a bounded run produces still fit in [`MIN_SIZE`] bytes.
    #[test]
    fn the_largest_stamp_fits_the_smallest_size() {
        let largest = Stamp {
            sender: 99_999,
            seq: 999_999_999_999,
            sent_at_us: 999_999_999_999,
        };
        let text = encode(largest, MIN_SIZE);
        assert_eq!(
            text.len(),
            MIN_SIZE,
            "no room left for the numbers: {text:?}"
        );
        assert_eq!(read(text.as_bytes()), Delivery::Ours(largest));
    }

    /// The payload needs no JSON escaping: ASCII, no quote, no backslash, no control character.
    #[test]
    fn a_payload_needs_no_json_escaping() {
        let text = encode(STAMP, 1024);
        assert!(
            text.bytes()
                .all(|byte| byte.is_ascii_graphic() && byte != b'"' && byte != b'\\'),
            "the payload must be plain ASCII without quotes or backslashes: {text:?}"
        );
        let quoted = serde_json::to_string(&text).expect("a string serializes");
        assert_eq!(
            quoted,
            format!("\"{text}\""),
            "JSON should not change a byte of it"
        );
    }

    /// Chapter 09's format: the payload inside the `"text"` field of a JSON chat message is found,
    /// whatever fields come before it and however the object is spaced.
    #[test]
    fn a_json_chat_message_yields_the_stamp_in_its_text_field() {
        let payload = encode(STAMP, 64);
        let compact = format!(
            r#"{{"kind":"chat","from":"text","room":"lobby","at":1712,"text":"{payload}","id":3}}"#
        );
        assert_eq!(read(compact.as_bytes()), Delivery::Ours(STAMP), "{compact}");
        let spaced = format!(r#"{{ "kind": "chat", "text" : "{payload}" }}"#);
        assert_eq!(read(spaced.as_bytes()), Delivery::Ours(STAMP), "{spaced}");
        let built = serde_json::json!({"kind": "chat", "from": "ann", "text": payload});
        let built = serde_json::to_vec(&built).expect("serializes");
        assert_eq!(
            read(&built),
            Delivery::Ours(STAMP),
            "as serde_json writes it"
        );
    }

    /// Frames that are not the generator's are `Other`: system notices, JSON without a text
    /// field, plain chat, a truncated or corrupted payload.
    #[test]
    fn frames_that_are_not_ours_are_other() {
        for frame in [
            r#"{"kind":"system","text":"ann joined"}"#,
            r#"{"kind":"system","users":3}"#,
            r#"{"kind":"chat","text":"load:1:2"}"#,
            "hello everyone",
            "load:1:2",
            "load:x:2:3:....",
            "load:1:2:3",
            "load:1:99999999999999999999999:3:..",
            "",
            "{",
        ] {
            assert_eq!(
                read(frame.as_bytes()),
                Delivery::Other,
                "{frame:?} is not ours"
            );
        }
    }

    /// A sender number beyond `u32` is not a stamp of ours (no silent truncation).
    #[test]
    fn a_sender_number_beyond_u32_is_refused() {
        assert_eq!(read(b"load:4294967296:1:1:"), Delivery::Other);
        assert_eq!(
            read(b"load:4294967295:1:1:"),
            Delivery::Ours(Stamp {
                sender: u32::MAX,
                seq: 1,
                sent_at_us: 1
            })
        );
    }
}
