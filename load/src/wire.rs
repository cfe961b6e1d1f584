//! A lean WebSocket client (RFC 6455), just what the generator needs, for its hot path.
//!
//! Why not tungstenite, which the tests use: a general client hands over one message per poll,
//! each through the async machinery (a waker registered, a buffer split, the UTF-8 checked), and
//! it zero-fills its read buffer before every read. Profiled in s1, that was most of the
//! generator's own CPU, and the generator shares two cores with the server it measures. Here a
//! reading client makes one `read` and then parses every frame the bytes hold in a tight loop,
//! with one timestamp for them all (they arrived together). Payloads are looked at in place.
//!
//! What it does: the opening handshake (checking `Sec-WebSocket-Accept`), masked text frames out,
//! frames in of any length, fragmented messages, Ping answered with Pong, Close answered with
//! Close. What it does not: extensions, TLS.

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWriteExt},
    net::{
        TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
};
use tokio_tungstenite::tungstenite::handshake::{client::generate_key, derive_accept_key};

use crate::target::Target;

/// The largest frame or message accepted from a server.
pub const MAX_MESSAGE: usize = 64 << 20;
/// The longest handshake response accepted.
const MAX_RESPONSE: usize = 16 << 10;

/// Why a handshake did not open a WebSocket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// The server answered with this HTTP status instead of 101.
    Status(u16),
    /// Anything else, said in words.
    Failed(String),
}

/// Sends the opening handshake on `stream` and reads the answer. On success, returns the bytes
/// that came after the response headers: the start of the first frames.
pub async fn handshake(stream: &mut TcpStream, target: &Target) -> Result<Vec<u8>, HandshakeError> {
    let key = generate_key();
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n",
        target.path, target.host
    );
    let failed = |what: &str, err: std::io::Error| HandshakeError::Failed(format!("{what}: {err}"));
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|err| failed("sending the handshake", err))?;
    let mut response = Vec::with_capacity(1024);
    let headers_end = loop {
        if let Some(at) = find(&response, b"\r\n\r\n") {
            break at + 4;
        }
        if response.len() > MAX_RESPONSE {
            return Err(HandshakeError::Failed(
                "the handshake response is too long".into(),
            ));
        }
        let mut chunk = [0u8; 2048];
        let read = stream
            .read(&mut chunk)
            .await
            .map_err(|err| failed("reading the handshake response", err))?;
        if read == 0 {
            return Err(HandshakeError::Failed(
                "the server closed the connection during the handshake".into(),
            ));
        }
        response.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&response[..headers_end]);
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| HandshakeError::Failed("not an HTTP response".into()))?;
    if status != 101 {
        return Err(HandshakeError::Status(status));
    }
    let accept = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("sec-websocket-accept"))
        .map(|(_, value)| value.trim().to_string());
    if accept.as_deref() != Some(derive_accept_key(key.as_bytes()).as_str()) {
        return Err(HandshakeError::Failed(
            "the server's Sec-WebSocket-Accept does not match our key".into(),
        ));
    }
    Ok(response.split_off(headers_end))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// What the server sent, one frame (or one reassembled message) at a time.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// A text or binary message.
    Data(&'a [u8]),
    /// A Ping, to be answered with a Pong carrying the same payload.
    Ping(&'a [u8]),
    /// A Pong.
    Pong,
    /// A Close, with its code if it has one.
    Close(Option<u16>),
}

/// A frame that breaks the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

/// Parses frames out of the bytes read from a socket, reusing one buffer.
#[derive(Debug)]
pub struct FrameReader {
    buffer: Vec<u8>,
    /// Parsed up to here.
    start: usize,
    /// Filled up to here.
    end: usize,
    /// The fragments of a message that is not complete yet.
    fragments: Vec<u8>,
    /// `fragments` was handed out last time and is to be cleared.
    fragments_done: bool,
}

impl FrameReader {
    /// A reader with a buffer of `capacity` bytes (it grows for a larger frame), starting with
    /// `first`: what the handshake read past its response.
    pub fn new(capacity: usize, first: &[u8]) -> FrameReader {
        let mut buffer = vec![0; capacity.max(first.len()).max(16)];
        buffer[..first.len()].copy_from_slice(first);
        FrameReader {
            buffer,
            start: 0,
            end: first.len(),
            fragments: Vec::new(),
            fragments_done: false,
        }
    }

    /// Reads once from `stream` into the free part of the buffer; `Ok(0)` when the stream has
    /// ended.
    pub async fn fill<R: AsyncRead + Unpin>(&mut self, stream: &mut R) -> std::io::Result<usize> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        } else if self.end == self.buffer.len() {
            // Move the incomplete frame to the front; grow if it alone fills the buffer.
            self.buffer.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
            if self.end == self.buffer.len() {
                self.buffer.resize(self.buffer.len() * 2, 0);
            }
        }
        let read = stream.read(&mut self.buffer[self.end..]).await?;
        self.end += read;
        Ok(read)
    }

    /// The next complete frame in the buffer (fragments are put together first); `Ok(None)`
    /// when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Incoming<'_>>, ProtocolError> {
        if self.fragments_done {
            self.fragments.clear();
            self.fragments_done = false;
        }
        // Find the frame first and borrow its bytes after the loop: a borrow returned from
        // inside a loop that also mutates would not pass the borrow checker.
        let (kind, payload) = loop {
            let Some(frame) = parse_frame(&self.buffer[self.start..self.end])? else {
                self.reserve_for_next_frame();
                return Ok(None);
            };
            let payload = self.start + frame.header..self.start + frame.header + frame.length;
            self.start = payload.end;
            if let Some(mask) = frame.mask {
                apply_mask(&mut self.buffer[payload.clone()], mask);
            }
            match (frame.opcode, frame.fin, self.fragments.is_empty()) {
                // A whole message in one frame, the common case: handed out in place.
                (0x1 | 0x2, true, true) => break (Kind::Data, payload),
                (0x1 | 0x2, false, true) => {
                    self.fragments.extend_from_slice(&self.buffer[payload]);
                }
                (0x0, fin, false) => {
                    if self.fragments.len() + payload.len() > MAX_MESSAGE {
                        return Err(ProtocolError("a message over 64 MiB".into()));
                    }
                    self.fragments
                        .extend_from_slice(&self.buffer[payload.clone()]);
                    if fin {
                        self.fragments_done = true;
                        break (Kind::Fragments, payload);
                    }
                }
                (0x8, true, _) => break (Kind::Close, payload),
                (0x9, true, _) => break (Kind::Ping, payload),
                (0xA, true, _) => break (Kind::Pong, payload),
                (opcode, fin, _) => {
                    return Err(ProtocolError(format!(
                        "unexpected frame: opcode {opcode:#x}, fin {fin}, {} bytes of fragments \
                         pending",
                        self.fragments.len()
                    )));
                }
            }
        };
        let payload = &self.buffer[payload];
        Ok(Some(match kind {
            Kind::Data => Incoming::Data(payload),
            Kind::Fragments => Incoming::Data(&self.fragments),
            Kind::Close => Incoming::Close(
                payload
                    .first_chunk::<2>()
                    .map(|code| u16::from_be_bytes(*code)),
            ),
            Kind::Ping => Incoming::Ping(payload),
            Kind::Pong => Incoming::Pong,
        }))
    }

    /// Makes sure the buffer can hold the frame that is only partly there.
    fn reserve_for_next_frame(&mut self) {
        if let Some(needed) = frame_size(&self.buffer[self.start..self.end])
            && needed > self.buffer.len()
        {
            self.buffer.resize(needed, 0);
        }
    }
}

/// What [`FrameReader::next_frame`] found.
enum Kind {
    Data,
    Fragments,
    Close,
    Ping,
    Pong,
}

/// One frame's header, as far as the reader needs it.
#[derive(Debug, PartialEq, Eq)]
struct Frame {
    fin: bool,
    opcode: u8,
    mask: Option<[u8; 4]>,
    /// Header bytes before the payload.
    header: usize,
    length: usize,
}

/// The header of the frame at the start of `bytes`, if the whole frame is there.
fn parse_frame(bytes: &[u8]) -> Result<Option<Frame>, ProtocolError> {
    let Some((frame, total)) = header(bytes)? else {
        return Ok(None);
    };
    Ok((bytes.len() >= total).then_some(frame))
}

/// How many bytes the frame at the start of `bytes` takes, once its header is there.
fn frame_size(bytes: &[u8]) -> Option<usize> {
    header(bytes).ok().flatten().map(|(_, total)| total)
}

/// The header at the start of `bytes` and the whole frame's size; `None` while the header is
/// incomplete.
fn header(bytes: &[u8]) -> Result<Option<(Frame, usize)>, ProtocolError> {
    let [first, second, rest @ ..] = bytes else {
        return Ok(None);
    };
    if first & 0x70 != 0 {
        return Err(ProtocolError(
            "reserved bits set: no extension was agreed".into(),
        ));
    }
    let (length, rest, mut header) = match second & 0x7F {
        126 => match rest {
            [a, b, rest @ ..] => (u64::from(u16::from_be_bytes([*a, *b])), rest, 4),
            _ => return Ok(None),
        },
        127 => match rest.first_chunk::<8>() {
            Some(length) => (u64::from_be_bytes(*length), &rest[8..], 10),
            None => return Ok(None),
        },
        short => (u64::from(short), rest, 2),
    };
    let mask = if second & 0x80 != 0 {
        match rest.first_chunk::<4>() {
            Some(mask) => {
                header += 4;
                Some(*mask)
            }
            None => return Ok(None),
        }
    } else {
        None
    };
    let length = usize::try_from(length)
        .ok()
        .filter(|&length| length <= MAX_MESSAGE)
        .ok_or_else(|| ProtocolError(format!("a frame of {length} bytes, over 64 MiB")))?;
    let frame = Frame {
        fin: first & 0x80 != 0,
        opcode: first & 0x0F,
        mask,
        header,
        length,
    };
    Ok(Some((frame, header + length)))
}

fn apply_mask(bytes: &mut [u8], mask: [u8; 4]) {
    for (index, byte) in bytes.iter_mut().enumerate() {
        *byte ^= mask[index % 4];
    }
}

/// Appends one masked client frame with `opcode` and `payload` to `out` (a client must mask
/// every frame it sends; `mask` should differ from frame to frame).
pub fn encode(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    out.push(0x80 | opcode);
    match payload.len() {
        short @ 0..=125 => out.push(0x80 | short as u8),
        medium @ 126..=0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(medium as u16).to_be_bytes());
        }
        long => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(long as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], mask);
}

/// Text frame opcode.
pub const TEXT: u8 = 0x1;
/// Close frame opcode.
pub const CLOSE: u8 = 0x8;
/// Pong frame opcode.
pub const PONG: u8 = 0xA;

/// The sending side of a connection: frames are encoded into a buffer and written in one go.
#[derive(Debug)]
pub struct FrameWriter {
    half: OwnedWriteHalf,
    buffer: Vec<u8>,
    /// A xorshift state for the masks: unpredictable masks only matter against proxies, and
    /// there is none between the generator and a server on loopback.
    state: u64,
}

impl FrameWriter {
    pub fn new(half: OwnedWriteHalf, seed: u64) -> FrameWriter {
        FrameWriter {
            half,
            buffer: Vec::with_capacity(4096),
            state: seed | 1,
        }
    }

    fn mask(&mut self) -> [u8; 4] {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        (self.state as u32).to_ne_bytes()
    }

    /// Adds a frame to the buffer.
    pub fn push(&mut self, opcode: u8, payload: &[u8]) {
        let mask = self.mask();
        encode(&mut self.buffer, opcode, payload, mask);
    }

    /// Writes what the buffer holds.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        let result = self.half.write_all(&self.buffer).await;
        self.buffer.clear();
        result
    }
}

/// A connection, split: the reader for the client's reading task, the writer shared with its
/// sender (if it is one) and with whoever answers pings.
pub struct Connection {
    pub read: OwnedReadHalf,
    pub frames: FrameReader,
    pub write: FrameWriter,
}

impl Connection {
    /// Opens a WebSocket over `stream`, already connected to `target`.
    pub async fn open(
        mut stream: TcpStream,
        target: &Target,
        read_buffer: usize,
        seed: u64,
    ) -> Result<Connection, HandshakeError> {
        let first = handshake(&mut stream, target).await?;
        let (read, write) = stream.into_split();
        Ok(Connection {
            read,
            frames: FrameReader::new(read_buffer, &first),
            write: FrameWriter::new(write, seed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server frame: unmasked, `fin`, `opcode`, `payload`.
    fn server_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            short @ 0..=125 => frame.push(short as u8),
            medium @ 126..=0xFFFF => {
                frame.push(126);
                frame.extend_from_slice(&(medium as u16).to_be_bytes());
            }
            long => {
                frame.push(127);
                frame.extend_from_slice(&(long as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(payload);
        frame
    }

    /// Everything `reader` yields from `bytes`, arriving `chunk` bytes at a time (a read may
    /// take less than a chunk when the buffer is nearly full; the rest waits, as in a socket).
    /// Long payloads are described by their length and first bytes.
    async fn incoming(reader: &mut FrameReader, bytes: &[u8], chunk: usize) -> Vec<String> {
        let describe = |data: &[u8]| match data.len() {
            0..=40 => String::from_utf8_lossy(data).into_owned(),
            len => format!("{len} bytes {}…", String::from_utf8_lossy(&data[..8])),
        };
        let mut seen = Vec::new();
        for piece in bytes.chunks(chunk) {
            let mut source = piece;
            while !source.is_empty() {
                reader.fill(&mut source).await.expect("reading a slice");
                while let Some(item) = reader.next_frame().expect("valid frames") {
                    seen.push(match item {
                        Incoming::Data(data) => format!("data {}", describe(data)),
                        Incoming::Ping(data) => format!("ping {}", describe(data)),
                        Incoming::Pong => "pong".to_string(),
                        Incoming::Close(code) => format!("close {code:?}"),
                    });
                }
            }
        }
        seen
    }

    /// Frames of every length encoding (7-bit, 16-bit, 64-bit) come out whole, however the bytes
    /// are split across reads, with a buffer smaller than the largest frame.
    #[tokio::test]
    async fn frames_of_every_length_survive_any_split() {
        let (long, medium) = ("x".repeat(70_000), "y".repeat(300));
        let mut bytes = server_frame(true, 0x1, b"short");
        bytes.extend(server_frame(true, 0x1, medium.as_bytes()));
        bytes.extend(server_frame(true, 0x2, long.as_bytes()));
        bytes.extend(server_frame(true, 0x1, b"after"));
        for chunk in [1, 7, 100, 4096, bytes.len()] {
            let mut reader = FrameReader::new(1024, &[]);
            let seen = incoming(&mut reader, &bytes, chunk).await;
            assert_eq!(
                seen,
                [
                    "data short",
                    "data 300 bytes yyyyyyyy…",
                    "data 70000 bytes xxxxxxxx…",
                    "data after"
                ],
                "split into reads of {chunk} bytes"
            );
        }
    }

    /// What the handshake read past its response is parsed first.
    #[tokio::test]
    async fn bytes_read_during_the_handshake_come_first() {
        let first = server_frame(true, 0x1, b"early");
        let mut reader = FrameReader::new(64, &first);
        assert_eq!(
            reader.next_frame().expect("valid"),
            Some(Incoming::Data(b"early"))
        );
        assert_eq!(reader.next_frame().expect("valid"), None);
    }

    /// A fragmented message is put together, and control frames between its fragments are
    /// handed out as they come.
    #[tokio::test]
    async fn fragments_are_put_together_around_control_frames() {
        let mut bytes = server_frame(false, 0x1, b"hel");
        bytes.extend(server_frame(true, 0x9, b"are you there"));
        bytes.extend(server_frame(false, 0x0, b"lo "));
        bytes.extend(server_frame(true, 0x0, b"world"));
        bytes.extend(server_frame(true, 0x1, b"next"));
        bytes.extend(server_frame(true, 0xA, b""));
        let mut reader = FrameReader::new(256, &[]);
        let seen = incoming(&mut reader, &bytes, 5).await;
        assert_eq!(
            seen,
            [
                "ping are you there",
                "data hello world",
                "data next",
                "pong"
            ]
        );
    }

    /// A Close frame gives its code, or none when it has no payload.
    #[tokio::test]
    async fn close_frames_give_their_code() {
        let mut bytes = server_frame(true, 0x8, &[0x03, 0xF0, b'b', b'y', b'e']);
        bytes.extend(server_frame(true, 0x8, b""));
        let mut reader = FrameReader::new(64, &[]);
        let seen = incoming(&mut reader, &bytes, bytes.len()).await;
        assert_eq!(seen, ["close Some(1008)", "close None"]);
    }

    /// A masked frame (which a server should not send) is unmasked, and what `encode` makes —
    /// a client's masked frame — reads back as its payload.
    #[tokio::test]
    async fn masked_frames_read_back_as_their_payload() {
        for (payload, expected) in [
            (String::new(), "data ".to_string()),
            ("hi".to_string(), "data hi".to_string()),
            ("z".repeat(200), "data 200 bytes zzzzzzzz…".to_string()),
            ("w".repeat(70_000), "data 70000 bytes wwwwwwww…".to_string()),
        ] {
            let mut bytes = Vec::new();
            encode(
                &mut bytes,
                TEXT,
                payload.as_bytes(),
                [0x12, 0x34, 0x56, 0x78],
            );
            assert_eq!(bytes[1] & 0x80, 0x80, "a client's frame is masked");
            assert!(
                payload.is_empty() || !bytes.ends_with(payload.as_bytes()),
                "the payload on the wire is masked"
            );
            let mut reader = FrameReader::new(64, &[]);
            let seen = incoming(&mut reader, &bytes, 1000).await;
            assert_eq!(seen, [expected], "{} bytes", payload.len());
        }
    }

    /// Frames that break the protocol are errors, not guesses: reserved bits, a continuation
    /// with nothing to continue, a fragmented control frame, a frame over 64 MiB.
    #[test]
    fn protocol_errors_are_reported() {
        let over = {
            let mut frame = vec![0x82, 127];
            frame.extend_from_slice(&((MAX_MESSAGE as u64) + 1).to_be_bytes());
            frame
        };
        for (bytes, what) in [
            (vec![0xC1, 0x00], "reserved bit"),
            (server_frame(true, 0x0, b"x"), "continuation of nothing"),
            (server_frame(false, 0x9, b"x"), "fragmented ping"),
            (over, "too large"),
        ] {
            let mut reader = FrameReader::new(64, &bytes);
            assert!(reader.next_frame().is_err(), "{what} should be refused");
        }
    }

    /// A 101 answer whose `Sec-WebSocket-Accept` does not match the key is not a WebSocket; any
    /// other status is reported as it is.
    #[tokio::test]
    async fn the_handshake_checks_the_answer() {
        for (answer, expected) in [
            (
                "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: wrong\r\n\r\n",
                "Sec-WebSocket-Accept",
            ),
            (
                "HTTP/1.1 429 Too Many Requests\r\ncontent-length: 0\r\n\r\n",
                "429",
            ),
        ] {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("address");
            tokio::spawn(async move {
                let (mut socket, _) = listener.accept().await.expect("accept");
                let mut request = [0u8; 1024];
                let _ = socket.read(&mut request).await;
                let _ = socket.write_all(answer.as_bytes()).await;
            });
            let target = crate::target::parse(&format!("ws://{addr}/ws")).expect("loopback");
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            let result = handshake(&mut stream, &target).await;
            let said = match result {
                Err(HandshakeError::Failed(why)) => why,
                Err(HandshakeError::Status(status)) => status.to_string(),
                Ok(_) => panic!("{answer:?} must not open a WebSocket"),
            };
            assert!(said.contains(expected), "{answer:?}: {said}");
        }
    }
}
