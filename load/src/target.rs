//! The server under load: a `ws://` URL on this machine, and nothing else.
//!
//! A load generator pointed at somebody else's server is an attack, so the check is strict and
//! made before anything connects: the host must be a loopback address (`127.0.0.0/8`, `[::1]`)
//! or `localhost`, which is taken to mean `127.0.0.1` without asking a resolver. Names are refused
//! even when they would resolve to loopback: what a name resolves to can change.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// A checked WebSocket URL on loopback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The URL as given; the handshake sends its host and path.
    pub url: String,
    /// Where to connect.
    pub addr: SocketAddr,
    /// The `Host` header of the handshake: HOST[:PORT] as given.
    pub host: String,
    /// The path (and query) the handshake asks for, `/` when the URL has none.
    pub path: String,
}

/// What the error messages suggest.
const EXAMPLE: &str = "ws://127.0.0.1:3000/ws";

/// Checks `url`: `ws://HOST[:PORT][/PATH]` with a loopback HOST. The error says what is wrong and
/// what would be accepted.
pub fn parse(url: &str) -> Result<Target, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("{url:?} is not a URL; expected one like {EXAMPLE}"))?;
    match scheme.to_ascii_lowercase().as_str() {
        "ws" => {}
        "wss" => {
            return Err(format!(
                "{url:?}: wss:// (TLS) is not supported; the generator talks plain ws:// to a \
                 server on this machine, e.g. {EXAMPLE}"
            ));
        }
        "http" | "https" => {
            return Err(format!(
                "{url:?}: give the WebSocket URL, ws://HOST:PORT/PATH, e.g. {EXAMPLE}"
            ));
        }
        other => return Err(format!("{url:?}: unknown scheme {other:?}; expected ws://")),
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let path = match rest.get(authority.len()..).unwrap_or_default() {
        "" => "/".to_string(),
        query if query.starts_with('?') => format!("/{query}"),
        path => path.split('#').next().unwrap_or("/").to_string(),
    };
    if authority.contains('@') {
        return Err(format!("{url:?}: a user name or password is not supported"));
    }
    let (host, port) = split_host_port(authority)
        .ok_or_else(|| format!("{url:?}: cannot read HOST[:PORT] from {authority:?}"))?;
    let ip = loopback_ip(host).ok_or_else(|| {
        format!(
            "{url:?}: {host} is not a loopback address; the generator only talks to servers on \
             this machine (127.0.0.0/8, [::1] or localhost)"
        )
    })?;
    Ok(Target {
        url: url.to_string(),
        addr: SocketAddr::new(ip, port),
        host: authority.to_string(),
        path,
    })
}

/// `host`, `host:port`, `[v6]` or `[v6]:port` (the port defaults to 80, as for `ws://`).
fn split_host_port(authority: &str) -> Option<(&str, u16)> {
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(port) => port.parse().ok()?,
        None => 80,
    };
    (!host.is_empty()).then_some((host, port))
}

/// The address for `host` if it is loopback.
fn loopback_ip(host: &str) -> Option<IpAddr> {
    if host.eq_ignore_ascii_case("localhost") {
        return Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let ip: IpAddr = host.parse().ok()?;
    ip.is_loopback().then_some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loopback URLs in every accepted form give the address to connect to.
    #[test]
    fn loopback_urls_are_accepted() {
        for (url, addr) in [
            ("ws://127.0.0.1:3000/ws", "127.0.0.1:3000"),
            ("ws://127.8.9.10:41000/ws?room=a", "127.8.9.10:41000"),
            ("WS://localhost:3000/ws", "127.0.0.1:3000"),
            ("ws://[::1]:3000/ws", "[::1]:3000"),
            ("ws://127.0.0.1/ws", "127.0.0.1:80"),
            ("ws://[::1]", "[::1]:80"),
        ] {
            let target = parse(url).unwrap_or_else(|err| panic!("{url} refused: {err}"));
            assert_eq!(target.addr, addr.parse().expect("a test address"), "{url}");
            assert_eq!(target.url, url, "the URL is kept as given");
        }
    }

    /// The handshake asks for the URL's host and path.
    #[test]
    fn the_handshake_gets_the_host_and_path() {
        for (url, host, path) in [
            ("ws://127.0.0.1:3000/ws", "127.0.0.1:3000", "/ws"),
            (
                "ws://localhost:3000/ws?room=a#top",
                "localhost:3000",
                "/ws?room=a",
            ),
            ("ws://[::1]:3000", "[::1]:3000", "/"),
            ("ws://127.0.0.1?x=1", "127.0.0.1", "/?x=1"),
        ] {
            let target = parse(url).unwrap_or_else(|err| panic!("{url} refused: {err}"));
            assert_eq!(
                (target.host.as_str(), target.path.as_str()),
                (host, path),
                "{url}"
            );
        }
    }

    /// Anything off this machine is refused, and the error says that only loopback is allowed.
    #[test]
    fn other_hosts_are_refused() {
        for url in [
            "ws://10.0.0.1:3000/ws",
            "ws://192.168.1.20/ws",
            "ws://8.8.8.8/ws",
            "ws://0.0.0.0:3000/ws",
            "ws://[::]:3000/ws",
            "ws://[2001:db8::1]:3000/ws",
            "ws://example.com/ws",
            "ws://localhost.example.com/ws",
        ] {
            let err = parse(url).expect_err(url);
            assert!(
                err.contains("loopback"),
                "{url}: the error should say why: {err}"
            );
        }
    }

    /// Wrong schemes and malformed URLs get an error that shows a URL that would work.
    #[test]
    fn malformed_urls_are_refused_with_an_example() {
        for url in [
            "http://127.0.0.1:3000/ws",
            "wss://127.0.0.1:3000/ws",
            "127.0.0.1:3000",
        ] {
            let err = parse(url).expect_err(url);
            assert!(
                err.contains(EXAMPLE),
                "{url}: the error should show an example: {err}"
            );
        }
        for url in [
            "ftp://127.0.0.1/",
            "ws://127.0.0.1:notaport/ws",
            "ws://:3000/ws",
            "ws://user@127.0.0.1/ws",
        ] {
            assert!(parse(url).is_err(), "{url} should be refused");
        }
    }
}
