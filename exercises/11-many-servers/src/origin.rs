// Fan-out workshop, exercise 11-many-servers: generated from chapters/11-many-servers by `cargo workshop generate`.
//
// Nothing to do in this file: it is the finished part of the exercise. Your part is in
// src/bridge.rs, src/broker/cluster.rs.

//! ⑲ The Origin check, against cross-site WebSocket hijacking.
//!
//! A browser lets any page open a WebSocket to any server: the same-origin policy that keeps a
//! page from reading another site's responses does not apply to WebSockets. So a page on
//! `http://evil.example` that a visitor of our chat happens to open can connect to the chat from
//! the visitor's own browser (on their network, with their cookies, if we had any) and talk and
//! listen in their name. What the browser does do is say who is asking: every handshake a page
//! starts carries an `Origin` header naming the page's origin, and a page cannot change it.
//!
//! So the upgrade checks it. Allowed are:
//! - no `Origin` at all: `nc`, `websocat`, a load generator or a test client is no page, and a
//!   browser always sends one;
//! - our own origin, the one our page is served from: `http://` and the `Host` the request came
//!   with, as the page's own address bar said it;
//! - each `--allow-origin`, for pages served from somewhere else on purpose.
//!
//! Everything else, a malformed Origin included, is refused with 403 and a plain-text reason.
//!
//! `localhost` and `127.0.0.1` are two origins to a browser, and to us: a page opened as
//! `http://localhost:3000` connects as that origin and is allowed on a request whose `Host` is
//! `localhost:3000`; one that asks `ws://127.0.0.1:3000` from a page on `http://localhost:3000`
//! is cross-origin, and is refused unless `--allow-origin http://localhost:3000` says otherwise.
//! We do not guess that two names are one host: that guess is exactly what an attacker's name
//! for our address would rely on.
//!
//! What this does not stop: a DNS rebinding attack, where the attacker's own name resolves to our
//! address, so that its page, its Origin and the Host its requests carry all agree. The defence
//! there is a list of the Host names the server answers to; this server, which listens on
//! loopback by default, does not keep one (yet).

use std::fmt;

/// A page's origin as a browser sends it: scheme, host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `http` or `https`.
    scheme: &'static str,
    /// In lower case; an IPv6 address keeps its brackets.
    host: String,
    /// The port, the scheme's default when the origin does not write one.
    port: u16,
}

/// The default port of a scheme we accept in an origin: 80 for `http`, 443 for `https`.
fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

impl Origin {
    /// Parses `scheme://host[:port]`, exactly: `http` or `https`, a host name or an IP address
    /// (IPv6 in brackets), an optional port from 1 to 65535, and nothing after it, not even a `/`.
    /// Scheme and host are compared without regard to case.
    pub fn parse(text: &str) -> Result<Origin, String> {
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(format!(
                "expected scheme://host[:port], like http://localhost:8080, got {text:?}"
            ));
        };
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => "http",
            "https" => "https",
            _ => return Err(format!("the scheme must be http or https, got {scheme:?}")),
        };
        if rest.contains(['/', '?', '#', '@']) {
            return Err(format!(
                "an origin is scheme://host[:port] with nothing after it (no path, not even a \
                 trailing /), got {text:?}"
            ));
        }
        let (host, port) = host_and_port(rest)
            .ok_or_else(|| format!("expected a host and an optional port in {text:?}"))?;
        let port = match port {
            Some(port) => port,
            None => default_port(scheme).unwrap_or(80),
        };
        Ok(Origin { scheme, host, port })
    }

    /// Our own origin as a page sees it: `http://` and the request's `Host` header (`host[:port]`).
    pub fn from_host(host: &str) -> Option<Origin> {
        let (host, port) = host_and_port(host)?;
        Some(Origin {
            scheme: "http",
            host,
            port: port.unwrap_or(80),
        })
    }
}

/// `host[:port]`, the host in lower case: a name of letters, digits, `-` and `.`, an IPv4
/// address, or an IPv6 address in brackets; the port from 1 to 65535. `None` if it is anything
/// else.
fn host_and_port(text: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if text.starts_with('[') {
        // `[::1]` or `[::1]:8080`.
        let end = text.find(']')?;
        let (host, rest) = text.split_at_checked(end.checked_add(1)?)?;
        let inside = host.strip_prefix('[')?.strip_suffix(']')?;
        if inside.is_empty()
            || !inside
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return None;
        }
        match rest {
            "" => (host, None),
            _ => (host, Some(rest.strip_prefix(':')?)),
        }
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let name_like = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
    if !host.starts_with('[') && (host.is_empty() || !host.chars().all(name_like)) {
        return None;
    }
    let port = match port {
        None => None,
        // Digits only: `parse` would take a `+` too.
        Some(digits) if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) => {
            match digits.parse::<u16>() {
                Ok(0) | Err(_) => return None,
                Ok(port) => Some(port),
            }
        }
        Some(_) => return None,
    };
    Some((host.to_ascii_lowercase(), port))
}

impl fmt::Display for Origin {
    /// As a browser writes it: the port only when it is not the scheme's default.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)?;
        if default_port(self.scheme) != Some(self.port) {
            write!(f, ":{}", self.port)?;
        }
        Ok(())
    }
}

/// Why a handshake's Origin was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The header is there but names no origin we can compare (`null`, from a sandboxed frame or
    /// a file, or anything that is not `scheme://host[:port]`).
    Malformed,
    /// A well-formed origin that is neither ours nor allowed.
    NotAllowed(Origin),
}

impl Refused {
    /// The plain-text body of the 403 that says so.
    pub fn reason(&self) -> String {
        match self {
            Refused::Malformed => "This server accepts WebSocket connections only from pages \
                                   whose Origin it can check, and this request's Origin header \
                                   is not one.\n"
                .to_string(),
            Refused::NotAllowed(origin) => format!(
                "This server does not accept WebSocket connections from pages at {origin}. Its \
                 operator can allow them with --allow-origin {origin}.\n"
            ),
        }
    }
}

/// ⑲ Whether a handshake may go on, from its `Origin` and `Host` headers as they came (`None`
/// when absent) and the `--allow-origin` list: `Ok` for no Origin at all, our own origin (see
/// [`Origin::from_host`]) or an allowed one; `Err` says why not.
pub fn check(
    origin: Option<&[u8]>,
    host: Option<&[u8]>,
    allowed: &[Origin],
) -> Result<(), Refused> {
    let Some(origin) = origin else {
        return Ok(()); // not a browser
    };
    let origin = std::str::from_utf8(origin)
        .ok()
        .and_then(|text| Origin::parse(text).ok())
        .ok_or(Refused::Malformed)?;
    let own = host
        .and_then(|host| std::str::from_utf8(host).ok())
        .and_then(Origin::from_host);
    if own.as_ref() == Some(&origin) || allowed.contains(&origin) {
        Ok(())
    } else {
        Err(Refused::NotAllowed(origin))
    }
}

// Tests may panic: that is how they fail.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn check_str(origin: Option<&str>, host: &str, allowed: &[&str]) -> Result<(), Refused> {
        let allowed: Vec<Origin> = allowed.iter().map(|o| Origin::parse(o).unwrap()).collect();
        check(origin.map(str::as_bytes), Some(host.as_bytes()), &allowed)
    }

    /// A client that sends no Origin is no browser page: it is let in.
    #[test]
    fn no_origin_is_allowed() {
        assert_eq!(check_str(None, "127.0.0.1:3000", &[]), Ok(()));
        assert_eq!(check(None, None, &[]), Ok(()));
    }

    /// Our own page's origin, `http://` and the Host the request came with, is allowed; case and
    /// a written default port do not matter.
    #[test]
    fn our_own_origin_is_allowed() {
        assert_eq!(
            check_str(Some("http://127.0.0.1:3000"), "127.0.0.1:3000", &[]),
            Ok(())
        );
        assert_eq!(
            check_str(Some("http://LocalHost:3000"), "localhost:3000", &[]),
            Ok(())
        );
        assert_eq!(
            check_str(Some("http://chat.example"), "chat.example:80", &[]),
            Ok(())
        );
        assert_eq!(
            check_str(Some("http://[::1]:3000"), "[::1]:3000", &[]),
            Ok(())
        );
    }

    /// Another host, another port or another scheme is another origin, and is refused; so are
    /// `localhost` and `127.0.0.1` for each other.
    #[test]
    fn other_origins_are_refused() {
        for (origin, host) in [
            ("http://evil.example", "127.0.0.1:3000"),
            ("http://127.0.0.1:3001", "127.0.0.1:3000"),
            ("https://127.0.0.1:3000", "127.0.0.1:3000"),
            ("http://localhost:3000", "127.0.0.1:3000"),
            ("http://127.0.0.1:3000", "localhost:3000"),
        ] {
            assert_eq!(
                check_str(Some(origin), host, &[]),
                Err(Refused::NotAllowed(Origin::parse(origin).unwrap())),
                "{origin} on a request to {host}"
            );
        }
    }

    /// `--allow-origin` adds origins, compared as origins (case, default port).
    #[test]
    fn allowed_origins_are_allowed() {
        let allowed = ["http://localhost:8080", "https://chat.example"];
        assert_eq!(
            check_str(Some("http://localhost:8080"), "127.0.0.1:3000", &allowed),
            Ok(())
        );
        assert_eq!(
            check_str(Some("HTTPS://Chat.Example:443"), "127.0.0.1:3000", &allowed),
            Ok(())
        );
        assert!(check_str(Some("http://chat.example"), "127.0.0.1:3000", &allowed).is_err());
    }

    /// An Origin header that is no origin is refused as malformed: `null`, a path, garbage,
    /// bytes that are not UTF-8.
    #[test]
    fn a_malformed_origin_is_refused() {
        for origin in [
            "null",
            "",
            "http://127.0.0.1:3000/",
            "http://127.0.0.1:3000/page",
            "127.0.0.1:3000",
            "ftp://127.0.0.1:3000",
            "http://",
            "http://127.0.0.1:",
            "http://127.0.0.1:0",
            "http://127.0.0.1:99999",
            "http://user@127.0.0.1:3000",
            "http://a b",
        ] {
            assert_eq!(
                check_str(Some(origin), "127.0.0.1:3000", &[]),
                Err(Refused::Malformed),
                "{origin:?}"
            );
        }
        assert_eq!(
            check(Some(b"http://caf\xe9"), Some(b"127.0.0.1:3000"), &[]),
            Err(Refused::Malformed)
        );
    }

    /// `--allow-origin` values are checked as origins, with a message that says what is wrong.
    #[test]
    fn allow_origin_values_are_validated() {
        assert_eq!(
            Origin::parse("http://localhost:8080").unwrap().to_string(),
            "http://localhost:8080"
        );
        assert_eq!(
            Origin::parse("https://Chat.Example:443")
                .unwrap()
                .to_string(),
            "https://chat.example"
        );
        for (bad, says) in [
            ("localhost:8080", "scheme://host"),
            ("ws://localhost:8080", "http or https"),
            ("http://localhost:8080/", "no path"),
            ("http://localhost:port", "host and an optional port"),
        ] {
            let err = Origin::parse(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    /// The 403's reason names the refused origin and the flag that would allow it.
    #[test]
    fn the_reason_says_how_to_allow_an_origin() {
        let refused =
            check_str(Some("http://evil.example:8000"), "127.0.0.1:3000", &[]).unwrap_err();
        let reason = refused.reason();
        assert!(
            reason.contains("--allow-origin http://evil.example:8000"),
            "{reason}"
        );
    }
}
