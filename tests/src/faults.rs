//! A fault injector: a raw TCP client that does the WebSocket handshake by hand and then writes
//! whatever bytes a scenario asks for, rule-breaking ones included.
//!
//! A well-behaved client library cannot send an unmasked frame, set a reserved bit, fragment a
//! Ping, claim a frame of 2^62 bytes or stop in the middle of a frame: it exists to prevent
//! exactly that. A server has to survive all of it, so the limits and timeouts scenarios build
//! frames byte by byte with [`Frame`] and put them on the wire with [`RawClient`]. The client also never
//! answers a Ping by itself, which makes it a half-open peer whenever a scenario wants one.
//!
//! Also here: what the scenarios read from `/proc` about a server process (open files, resident
//! memory), and the handshake a refused client sees.

use std::{net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::Instant,
};

use tokio_tungstenite::tungstenite::protocol::frame::{FrameHeader, coding::OpCode};

use crate::WAIT;

/// Frame opcodes (RFC 6455, section 5.2).
pub mod opcode {
    pub const CONTINUATION: u8 = 0x0;
    pub const TEXT: u8 = 0x1;
    pub const BINARY: u8 = 0x2;
    /// The first data opcode the RFC leaves reserved.
    pub const RESERVED_DATA: u8 = 0x3;
    pub const CLOSE: u8 = 0x8;
    pub const PING: u8 = 0x9;
    pub const PONG: u8 = 0xA;
}

/// The `Sec-WebSocket-Key` every raw handshake sends, and the accept value the server must
/// derive from it (the example of RFC 6455, section 1.3).
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// The masking key of every frame built here. Any four bytes will do; fixed ones keep a failing
/// scenario reproducible.
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// One client-to-server frame, described field by field so that any field can be wrong.
///
/// The constructors give a well-formed, final, masked frame; the builder methods then break it
/// in one precise way: `Frame::text("hi").unmasked()`, `Frame::binary(b"").claiming(1 << 62)`.
#[derive(Debug, Clone)]
pub struct Frame {
    fin: bool,
    /// The three reserved bits, RSV1..RSV3, in the low bits.
    rsv: u8,
    opcode: u8,
    mask: Option<[u8; 4]>,
    payload: Vec<u8>,
    /// The length the header announces, when it is not the payload's.
    claimed_len: Option<u64>,
}

impl Frame {
    /// A final, masked frame with `opcode` and `payload`.
    pub fn new(opcode: u8, payload: impl Into<Vec<u8>>) -> Frame {
        Frame {
            fin: true,
            rsv: 0,
            opcode,
            mask: Some(MASK),
            payload: payload.into(),
            claimed_len: None,
        }
    }

    /// A text frame carrying `payload` as it is: nothing checks that it is UTF-8.
    pub fn text(payload: impl Into<Vec<u8>>) -> Frame {
        Frame::new(opcode::TEXT, payload)
    }

    /// A binary frame.
    pub fn binary(payload: impl Into<Vec<u8>>) -> Frame {
        Frame::new(opcode::BINARY, payload)
    }

    /// A continuation frame, the second and later pieces of a fragmented message.
    pub fn continuation(payload: impl Into<Vec<u8>>) -> Frame {
        Frame::new(opcode::CONTINUATION, payload)
    }

    /// A Ping.
    pub fn ping(payload: impl Into<Vec<u8>>) -> Frame {
        Frame::new(opcode::PING, payload)
    }

    /// A Close frame with a status code and no reason.
    pub fn close(code: u16) -> Frame {
        Frame::new(opcode::CLOSE, code.to_be_bytes().to_vec())
    }

    /// Clears the FIN bit: more fragments of this message follow.
    pub fn not_final(mut self) -> Frame {
        self.fin = false;
        self
    }

    /// Sets the reserved bits (`0b100` is RSV1), which mean nothing without an extension.
    pub fn reserved_bits(mut self, bits: u8) -> Frame {
        self.rsv = bits & 0b111;
        self
    }

    /// Sends the payload in the clear, as only a server may.
    pub fn unmasked(mut self) -> Frame {
        self.mask = None;
        self
    }

    /// Announces `len` payload bytes in the header, whatever the payload really is.
    pub fn claiming(mut self, len: u64) -> Frame {
        self.claimed_len = Some(len);
        self
    }

    /// The frame's bytes, as they go on the wire. The header is written by tungstenite's own
    /// `FrameHeader`, which writes whatever bits and length it is given; only the payload's
    /// masking is done here.
    pub fn encode(&self) -> Vec<u8> {
        let len = self.claimed_len.unwrap_or(self.payload.len() as u64);
        let header = FrameHeader {
            is_final: self.fin,
            rsv1: self.rsv & 0b100 != 0,
            rsv2: self.rsv & 0b010 != 0,
            rsv3: self.rsv & 0b001 != 0,
            opcode: OpCode::from(self.opcode & 0x0f),
            mask: self.mask,
        };
        let mut bytes = Vec::with_capacity(14 + self.payload.len());
        header
            .format(len, &mut bytes)
            .expect("writing a frame header into a Vec cannot fail");
        match self.mask {
            Some(mask) => bytes.extend(
                self.payload
                    .iter()
                    .zip(mask.iter().cycle())
                    .map(|(byte, key)| byte ^ key),
            ),
            None => bytes.extend_from_slice(&self.payload),
        }
        bytes
    }
}

/// What a [`RawClient`] read from the server.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// One whole frame (server frames are never masked).
    Frame { opcode: u8, payload: Vec<u8> },
    /// The server closed the TCP connection (or reset it) without a Close frame.
    Gone(String),
}

/// How a raw connection ended.
#[derive(Debug, PartialEq, Eq)]
pub enum RawEnding {
    /// The server sent a Close frame with this code (`None`: a Close without a code).
    Close(Option<u16>),
    /// The TCP connection ended without a Close frame.
    Gone(String),
}

/// The status line, headers and body of a response to a handshake that was not accepted.
#[derive(Debug)]
pub struct Refusal {
    pub status: u16,
    /// The whole head, for failure messages and header checks (names as the server sent them).
    pub head: String,
    pub body: String,
}

/// A WebSocket connection driven byte by byte.
pub struct RawClient {
    name: String,
    stream: TcpStream,
    /// Bytes read from the socket and not yet parsed into a frame.
    buffered: Vec<u8>,
}

impl RawClient {
    /// Connects to `addr` and does the WebSocket handshake for `/ws` by hand (within [`WAIT`]).
    pub async fn connect(addr: SocketAddr, name: &str) -> RawClient {
        let stream = tokio::time::timeout(WAIT, TcpStream::connect(addr))
            .await
            .unwrap_or_else(|_| panic!("{name}: no TCP connection to {addr} within {WAIT:?}"))
            .unwrap_or_else(|err| panic!("{name}: cannot connect to {addr}: {err}"));
        RawClient::handshake(stream, addr, name).await
    }

    /// Like [`connect`](Self::connect), with a receive buffer of about `bytes` (the kernel
    /// rounds it), so that a client that stops reading fills up quickly.
    pub async fn connect_with_receive_buffer(
        addr: SocketAddr,
        name: &str,
        bytes: u32,
    ) -> RawClient {
        let stream = crate::connect_with_receive_buffer(addr, name, bytes).await;
        RawClient::handshake(stream, addr, name).await
    }

    /// Sends the upgrade request and insists on `101 Switching Protocols` with the right accept
    /// key.
    async fn handshake(stream: TcpStream, addr: SocketAddr, name: &str) -> RawClient {
        let mut client = RawClient {
            name: name.to_string(),
            stream,
            buffered: Vec::new(),
        };
        match client.upgrade(addr, &[]).await {
            Ok(()) => client,
            Err(refusal) => panic!(
                "{name}: the WebSocket handshake was refused with {}:\n{}{}",
                refusal.status, refusal.head, refusal.body
            ),
        }
    }

    /// Connects and tries the handshake; `Err` is the server's answer when it is not `101`.
    pub async fn try_connect(addr: SocketAddr, name: &str) -> Result<RawClient, Refusal> {
        RawClient::try_connect_with_headers(addr, name, &[]).await
    }

    /// [`try_connect`](Self::try_connect), with `headers` added to the handshake request, as a
    /// browser adds its `Origin`. A `Host` among them replaces the usual one (the address).
    pub async fn try_connect_with_headers(
        addr: SocketAddr,
        name: &str,
        headers: &[(&str, &str)],
    ) -> Result<RawClient, Refusal> {
        let stream = tokio::time::timeout(WAIT, TcpStream::connect(addr))
            .await
            .unwrap_or_else(|_| panic!("{name}: no TCP connection to {addr} within {WAIT:?}"))
            .unwrap_or_else(|err| panic!("{name}: cannot connect to {addr}: {err}"));
        let mut client = RawClient {
            name: name.to_string(),
            stream,
            buffered: Vec::new(),
        };
        client.upgrade(addr, headers).await.map(|()| client)
    }

    async fn upgrade(&mut self, addr: SocketAddr, headers: &[(&str, &str)]) -> Result<(), Refusal> {
        let mut extra = String::new();
        if !headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("host"))
        {
            extra.push_str(&format!("Host: {addr}\r\n"));
        }
        for (name, value) in headers {
            extra.push_str(&format!("{name}: {value}\r\n"));
        }
        let request = format!(
            "GET /ws HTTP/1.1\r\n{extra}Upgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        self.write_all(request.as_bytes()).await;
        let name = self.name.clone();
        let head_end = tokio::time::timeout(WAIT, self.fill_until_head_end())
            .await
            .unwrap_or_else(|_| panic!("{name}: no handshake response within {WAIT:?}"))
            .unwrap_or_else(|err| panic!("{name}: reading the handshake response: {err}"));
        let head_bytes: Vec<u8> = self.buffered.drain(..head_end).collect();
        let head = String::from_utf8_lossy(&head_bytes).into_owned();
        let (status, headers) = crate::http::parse_head(&head)
            .unwrap_or_else(|| panic!("{name}: not an HTTP response: {head:?}"));
        if status != 101 {
            let length = crate::http::header(&headers, "content-length")
                .and_then(|value| value.parse::<usize>().ok())
                .unwrap_or(0);
            let _ = tokio::time::timeout(WAIT, self.fill_to(length)).await;
            let body_end = length.min(self.buffered.len());
            let body = String::from_utf8_lossy(&self.buffered[..body_end]).into_owned();
            return Err(Refusal { status, head, body });
        }
        let accepted = crate::http::header(&headers, "sec-websocket-accept") == Some(ACCEPT);
        assert!(
            accepted,
            "{name}: the 101 response lacks the right Sec-WebSocket-Accept:\n{head}"
        );
        Ok(())
    }

    /// Reads until the buffer holds a whole HTTP head; returns where the head ends.
    async fn fill_until_head_end(&mut self) -> std::io::Result<usize> {
        loop {
            if let Some(at) = self
                .buffered
                .windows(4)
                .position(|window| window == b"\r\n\r\n")
            {
                return Ok(at + 4);
            }
            if self.read_more().await? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the connection ended inside the HTTP head",
                ));
            }
        }
    }

    /// Reads until at least `len` bytes are buffered, or the connection ends.
    async fn fill_to(&mut self, len: usize) -> std::io::Result<()> {
        while self.buffered.len() < len {
            if self.read_more().await? == 0 {
                break;
            }
        }
        Ok(())
    }

    async fn read_more(&mut self) -> std::io::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        let read = self.stream.read(&mut chunk).await?;
        self.buffered.extend_from_slice(&chunk[..read]);
        Ok(read)
    }

    /// This client's name, as failure messages use it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Writes `bytes` (within [`WAIT`]), failing the scenario if the socket refuses them.
    pub async fn write_all(&mut self, bytes: &[u8]) {
        let name = &self.name;
        tokio::time::timeout(WAIT, self.stream.write_all(bytes))
            .await
            .unwrap_or_else(|_| panic!("{name}: writing {} bytes took over {WAIT:?}", bytes.len()))
            .unwrap_or_else(|err| panic!("{name}: writing {} bytes failed: {err}", bytes.len()));
    }

    /// Writes `bytes` and reports whether the socket took them: for writes the server may
    /// legitimately cut short by closing.
    pub async fn try_write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match tokio::time::timeout(WAIT, self.stream.write_all(bytes)).await {
            Ok(result) => result,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("writing {} bytes took over {WAIT:?}", bytes.len()),
            )),
        }
    }

    /// Sends one frame.
    pub async fn send(&mut self, frame: &Frame) {
        self.write_all(&frame.encode()).await;
    }

    /// The next frame from the server, or how the connection ended. Fails if nothing arrives
    /// within `limit`.
    pub async fn next_frame_within(&mut self, limit: Duration) -> Received {
        let name = self.name.clone();
        tokio::time::timeout(limit, self.next_frame())
            .await
            .unwrap_or_else(|_| panic!("{name}: nothing arrived within {limit:?}"))
    }

    async fn next_frame(&mut self) -> Received {
        loop {
            if let Some((opcode, payload, used)) = parse_server_frame(&self.buffered) {
                self.buffered.drain(..used);
                return Received::Frame { opcode, payload };
            }
            match self.read_more().await {
                Ok(0) => return Received::Gone("the server closed the connection".to_string()),
                Ok(_) => continue,
                Err(err) => return Received::Gone(format!("the connection failed: {err}")),
            }
        }
    }

    /// Reads until a Close frame or the end of the connection (within `limit`), skipping
    /// anything else, and says which came.
    pub async fn end_within(&mut self, limit: Duration) -> RawEnding {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let name = self.name.clone();
            let received = tokio::time::timeout(left, self.next_frame())
                .await
                .unwrap_or_else(|_| panic!("{name}: the connection did not end within {limit:?}"));
            match received {
                Received::Frame {
                    opcode: opcode::CLOSE,
                    payload,
                } => {
                    let code = match payload.as_slice() {
                        [high, low, ..] => Some(u16::from_be_bytes([*high, *low])),
                        _ => None,
                    };
                    return RawEnding::Close(code);
                }
                Received::Frame { .. } => continue,
                Received::Gone(why) => return RawEnding::Gone(why),
            }
        }
    }

    /// Reads until the connection ends (within [`WAIT`]) and says how.
    pub async fn expect_end(&mut self) -> RawEnding {
        self.end_within(WAIT).await
    }

    /// Reads until the connection ends and asserts it was a Close frame with `code`.
    pub async fn expect_close_code(&mut self, code: u16) {
        match self.expect_end().await {
            RawEnding::Close(Some(got)) => {
                assert_eq!(got, code, "{}: wrong close code", self.name)
            }
            other => panic!("{}: expected Close {code}, got {other:?}", self.name),
        }
    }

    /// Reads until the connection ends and asserts it was either a Close frame with `code` or
    /// the connection simply closing: for faults after which the RFC lets a server just drop
    /// the connection.
    pub async fn expect_close_code_or_gone(&mut self, code: u16) {
        match self.expect_end().await {
            RawEnding::Close(Some(got)) => {
                assert_eq!(got, code, "{}: wrong close code", self.name)
            }
            RawEnding::Gone(_) => {}
            other => panic!(
                "{}: expected Close {code} or the end, got {other:?}",
                self.name
            ),
        }
    }

    /// Ends the connection with a TCP reset (RST) instead of a goodbye: `SO_LINGER` set to zero,
    /// then close, makes the kernel discard what is unsent and reset the connection.
    pub fn reset(self) {
        if let Err(err) = socket2::SockRef::from(&self.stream).set_linger(Some(Duration::ZERO)) {
            panic!("{}: cannot set SO_LINGER to zero: {err}", self.name);
        }
        drop(self.stream);
    }

    /// The underlying socket, for scenarios that need more than the helpers above.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }
}

/// Parses one unmasked frame from the start of `bytes`: `(opcode, payload, bytes used)`, or
/// `None` if the frame is not complete yet.
fn parse_server_frame(bytes: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    let (&first, rest) = bytes.split_first()?;
    let (&second, rest) = rest.split_first()?;
    let opcode = first & 0x0f;
    let (len, rest) = match second & 0x7f {
        126 => {
            let (len, rest) = rest.split_first_chunk::<2>()?;
            (u64::from(u16::from_be_bytes(*len)), rest)
        }
        127 => {
            let (len, rest) = rest.split_first_chunk::<8>()?;
            (u64::from_be_bytes(*len), rest)
        }
        short => (u64::from(short), rest),
    };
    let (mask, rest) = if second & 0x80 != 0 {
        let (mask, rest) = rest.split_first_chunk::<4>()?;
        (Some(*mask), rest)
    } else {
        (None, rest)
    };
    let len = usize::try_from(len).ok()?;
    let payload = rest.get(..len)?;
    let payload = match mask {
        Some(mask) => payload
            .iter()
            .zip(mask.iter().cycle())
            .map(|(byte, key)| byte ^ key)
            .collect(),
        None => payload.to_vec(),
    };
    Some((opcode, payload, bytes.len() - rest.len() + len))
}

/// How many files (sockets included) process `pid` has open, from `/proc/PID/fd`.
pub fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|err| panic!("cannot list /proc/{pid}/fd: {err}"))
        .count()
}

/// The resident memory of process `pid` in KiB, from `VmRSS` in `/proc/PID/status`.
pub fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|err| panic!("cannot read /proc/{pid}/status: {err}"));
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS line in /proc/{pid}/status:\n{status}"))
}

/// Waits (at most `limit`, checking every 20 ms) until `done` holds; returns whether it did.
/// For what the server does on its own time with no signal a test could wait on, like closing
/// a socket after a client left.
pub async fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    crate::wait_until(limit, || std::future::ready(done()), |&held| held)
        .await
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The RFC's own example: a masked "Hello" is `81 85 37 fa 21 3d 7f 9f 4d 51 58`.
    #[test]
    fn encodes_the_rfc_example_of_a_masked_frame() {
        assert_eq!(
            Frame::text("Hello").encode(),
            [
                0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
            ]
        );
    }

    /// Lengths of 126 and more take the 16-bit form, beyond 65535 the 64-bit form.
    #[test]
    fn encodes_the_three_length_forms() {
        let short = Frame::binary(vec![0; 125]).unmasked().encode();
        assert_eq!(short[1], 125);
        let medium = Frame::binary(vec![0; 126]).unmasked().encode();
        assert_eq!(&medium[1..4], &[126, 0, 126]);
        let claimed = Frame::binary(Vec::new()).claiming(1 << 62).encode();
        assert_eq!(claimed[1], 0x80 | 127);
        assert_eq!(&claimed[2..10], &(1u64 << 62).to_be_bytes());
        assert_eq!(claimed.len(), 14, "header and mask only");
    }

    /// A broken frame is broken only where asked: FIN, RSV bits and opcode share the first byte.
    #[test]
    fn builders_set_single_bits() {
        assert_eq!(Frame::ping("").not_final().encode()[0], 0x09);
        assert_eq!(Frame::text("").reserved_bits(0b100).encode()[0], 0xc1);
        assert_eq!(Frame::new(opcode::RESERVED_DATA, "").encode()[0], 0x83);
    }

    /// A server frame is parsed only once it is whole, and says how many bytes it used.
    #[test]
    fn parses_server_frames_only_when_complete() {
        let mut wire = vec![0x88, 0x02, 0x03, 0xe8, 0x81];
        assert_eq!(
            parse_server_frame(&wire),
            Some((opcode::CLOSE, vec![0x03, 0xe8], 4))
        );
        wire.drain(..4);
        assert_eq!(parse_server_frame(&wire), None, "one byte is not a frame");
    }
}
