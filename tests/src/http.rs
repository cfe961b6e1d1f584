//! Plain HTTP/1.1 over a raw socket: enough to fetch a page or try a request the server should
//! refuse, without pulling an HTTP client into the tests.

use std::net::SocketAddr;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::WAIT;

/// A response as the tests need it.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Header lines, names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    /// The first header called `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// The status and the header lines (names lower-cased) of a response's head, the text up to its
/// blank line; `None` when it is no HTTP response. Every test that reads a response reads it here.
pub fn parse_head(head: &str) -> Option<(u16, Vec<(String, String)>)> {
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    Some((status, headers))
}

/// The first of `headers` called `name` (lower case).
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// `GET path` with `Connection: close`, read to the end (within [`WAIT`]).
pub async fn get(addr: SocketAddr, path: &str) -> Response {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    send_raw(addr, request.as_bytes()).await
}

/// Sends `request` as it is and reads the response to the end (within [`WAIT`]).
pub async fn send_raw(addr: SocketAddr, request: &[u8]) -> Response {
    let exchange = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .expect("connecting to the server");
        stream
            .write_all(request)
            .await
            .expect("writing the request");
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .await
            .expect("reading the response");
        raw
    };
    let raw = tokio::time::timeout(WAIT, exchange)
        .await
        .unwrap_or_else(|_| panic!("no complete HTTP response from {addr} within {WAIT:?}"));
    parse(&raw)
}

fn parse(raw: &[u8]) -> Response {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    let (status, headers) =
        parse_head(head).unwrap_or_else(|| panic!("not an HTTP response: {head:?}"));
    let chunked = headers
        .iter()
        .any(|(name, value)| name == "transfer-encoding" && value.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || after.len() < size {
            break;
        }
        let (chunk, after) = after.split_at(size);
        body.push_str(chunk);
        rest = after.strip_prefix("\r\n").unwrap_or(after);
    }
    body
}
