//! Nicknames and room names: what a valid one looks like, and when two are the same.
//!
//! Names travel everywhere: into other people's screens, into the lines a terminal prints, into
//! the keys of the broker's maps. So they are checked once, here, by pure functions, and
//! everything past this module holds a [`Nick`] or a [`Room`] that is valid by construction.
//!
//! The rules are deliberately narrow. ASCII letters, digits, `-` and `_`, at most
//! [`MAX_NAME_LEN`] of them: no control characters that could rewrite a terminal line, no spaces
//! that would make `/msg NAME TEXT` ambiguous, no look-alike letters from other scripts that
//! would let `аlice` (Cyrillic а) pass for `alice`. Two nicknames that differ only in case are
//! the same name: `Alice` and `alice` cannot both be connected.

use std::fmt;

/// The longest nickname or room name, in characters (all ASCII, so also in bytes).
pub const MAX_NAME_LEN: usize = 24;

/// The room everybody starts in. It always exists, even empty.
pub const LOBBY: &str = "lobby";

/// Nicknames nobody may take: they would pass for the server speaking, or for a room.
pub const RESERVED_NICKS: &[&str] = &[
    "server", "system", "admin", "root", "lobby", "everyone", "all", "nobody", "me", "you",
];

/// Room names nobody may create: `private` would print as `[private] alice: hi`, which is what a
/// private message looks like on a terminal.
pub const RESERVED_ROOMS: &[&str] = &["private", "server", "system"];

/// The prefix of the names the server hands out on connect (`guest-7`). Nobody may choose a name
/// of that form, so a guest name is always free when it is given.
pub const GUEST_PREFIX: &str = "guest-";

/// Why a name was refused. The `Display` text is what the client reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    Empty,
    TooLong { len: usize },
    BadChar(char),
    Reserved(String),
    GuestLike(String),
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => write!(f, "a name cannot be empty"),
            NameError::TooLong { len } => write!(
                f,
                "a name is at most {MAX_NAME_LEN} characters, this one has {len}"
            ),
            NameError::BadChar(c) if c.is_control() => write!(
                f,
                "a name cannot contain control characters (found {})",
                c.escape_unicode()
            ),
            NameError::BadChar(c) => write!(
                f,
                "a name may use only letters a-z, digits, '-' and '_' (found {c:?})"
            ),
            NameError::Reserved(name) => write!(f, "{name:?} is reserved"),
            NameError::GuestLike(name) => write!(
                f,
                "{name:?} looks like a guest name, which only the server gives out"
            ),
        }
    }
}

/// The form both kinds of name share: 1 to [`MAX_NAME_LEN`] characters from `[A-Za-z0-9_-]`.
fn check_form(text: &str) -> Result<(), NameError> {
    if text.is_empty() {
        return Err(NameError::Empty);
    }
    if let Some(bad) = text
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(NameError::BadChar(bad));
    }
    // All ASCII from here on, so bytes are characters.
    if text.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong { len: text.len() });
    }
    Ok(())
}

/// A valid nickname, as its owner spelled it (`Alice`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nick(String);

/// What makes two nicknames the same: the name in lower case. The broker's map of names is keyed
/// by it, which is what makes uniqueness case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NickKey(String);

impl Nick {
    /// Checks a nickname a client asked for.
    pub fn parse(text: &str) -> Result<Nick, NameError> {
        check_form(text)?;
        let lower = text.to_ascii_lowercase();
        if RESERVED_NICKS.contains(&lower.as_str()) {
            return Err(NameError::Reserved(text.to_string()));
        }
        if is_guest_like(&lower) {
            return Err(NameError::GuestLike(text.to_string()));
        }
        Ok(Nick(text.to_string()))
    }

    /// The name the server gives to the `number`th client: `guest-7`.
    pub fn guest(number: u64) -> Nick {
        Nick(format!("{GUEST_PREFIX}{number}"))
    }

    /// The name a server of a cluster (`--redis`) gives to its `number`th client: `guest-3-7`
    /// on instance 3. Instances have distinct numbers (see `bridge.rs`), so guests of two servers
    /// never share a name, and no guest name needs a claim in Redis.
    pub fn guest_of(instance: u64, number: u64) -> Nick {
        Nick(format!("{GUEST_PREFIX}{instance}-{number}"))
    }

    /// Whether this is a name the server gave out rather than one the client chose.
    pub fn is_guest(&self) -> bool {
        is_guest_like(&self.0)
    }

    pub fn key(&self) -> NickKey {
        NickKey(self.0.to_ascii_lowercase())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `guest-` followed by groups of digits joined by `-` (`guest-7`, `guest-3-7`), in any case.
fn is_guest_like(lower: &str) -> bool {
    lower.strip_prefix(GUEST_PREFIX).is_some_and(|rest| {
        rest.split('-')
            .all(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
    })
}

impl fmt::Display for Nick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A valid room name, in lower case: `/join Games` and `/join games` go to the same room, and
/// since a room has no owner, no one's spelling is more right than another's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Room(String);

impl Room {
    /// Checks a room name a client asked for.
    pub fn parse(text: &str) -> Result<Room, NameError> {
        check_form(text)?;
        let lower = text.to_ascii_lowercase();
        if RESERVED_ROOMS.contains(&lower.as_str()) {
            return Err(NameError::Reserved(text.to_string()));
        }
        Ok(Room(lower))
    }

    /// The room everybody starts in.
    pub fn lobby() -> Room {
        Room(LOBBY.to_string())
    }

    pub fn is_lobby(&self) -> bool {
        self.0 == LOBBY
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Room {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Ordinary nicknames are taken as spelled.
    #[test]
    fn plain_nicknames_are_accepted_as_spelled() {
        for name in [
            "alice",
            "Bob",
            "carol_2",
            "dave-the-brave",
            "x",
            "A1234567890123456789012Z",
        ] {
            assert_eq!(
                Nick::parse(name).map(|n| n.to_string()),
                Ok(name.to_string())
            );
        }
    }

    /// Each kind of bad nickname is refused with the reason that applies.
    #[test]
    fn bad_nicknames_are_refused_with_a_reason() {
        assert_eq!(Nick::parse(""), Err(NameError::Empty));
        assert_eq!(
            Nick::parse(&"a".repeat(25)),
            Err(NameError::TooLong { len: 25 })
        );
        assert_eq!(Nick::parse("al ice"), Err(NameError::BadChar(' ')));
        assert_eq!(Nick::parse("al\u{7}ice"), Err(NameError::BadChar('\u{7}')));
        assert_eq!(Nick::parse("bob\n"), Err(NameError::BadChar('\n')));
        assert_eq!(
            Nick::parse("аlice"),
            Err(NameError::BadChar('а')),
            "Cyrillic а"
        );
        assert_eq!(Nick::parse("héllo"), Err(NameError::BadChar('é')));
        assert!(matches!(Nick::parse("Server"), Err(NameError::Reserved(_))));
        assert!(matches!(Nick::parse("lobby"), Err(NameError::Reserved(_))));
        assert!(matches!(
            Nick::parse("guest-7"),
            Err(NameError::GuestLike(_))
        ));
        assert!(matches!(
            Nick::parse("GUEST-12"),
            Err(NameError::GuestLike(_))
        ));
        // Only the exact form is the server's: these are ordinary names.
        assert!(Nick::parse("guest").is_ok());
        assert!(Nick::parse("guest-").is_ok());
        assert!(Nick::parse("guest-x1").is_ok());
    }

    /// The reasons read as sentences a user can act on, and never echo a control character raw.
    #[test]
    fn reasons_are_readable() {
        let control = Nick::parse("a\u{1b}[2J").unwrap_err().to_string();
        assert!(control.contains("control characters"), "{control}");
        assert!(!control.contains('\u{1b}'), "{control:?}");
        let long = Nick::parse(&"a".repeat(30)).unwrap_err().to_string();
        assert!(long.contains("24"), "{long}");
    }

    /// Nicknames that differ only in case have the same key.
    #[test]
    fn nicknames_are_the_same_whatever_their_case() {
        let upper = Nick::parse("ALICE").unwrap();
        let lower = Nick::parse("alice").unwrap();
        assert_ne!(upper, lower, "each keeps its spelling");
        assert_eq!(upper.key(), lower.key(), "but they are one name");
    }

    /// Guest names are of the reserved form, and recognised as guests.
    #[test]
    fn guest_names_are_recognised() {
        let guest = Nick::guest(7);
        assert_eq!(guest.as_str(), "guest-7");
        assert!(guest.is_guest());
        let guest = Nick::guest_of(3, 7);
        assert_eq!(guest.as_str(), "guest-3-7");
        assert!(guest.is_guest());
        assert!(
            Nick::parse("Guest-3-7").is_err(),
            "nobody may pick a cluster guest's name"
        );
        assert!(Nick::parse("guest-3-").is_ok() && Nick::parse("guest--7").is_ok());
        assert!(!Nick::parse("alice").unwrap().is_guest());
    }

    /// Room names follow the same form, are folded to lower case, and `private` is refused.
    #[test]
    fn room_names_are_checked_and_lower_cased() {
        assert_eq!(Room::parse("Games").unwrap().as_str(), "games");
        assert!(Room::parse("lobby").unwrap().is_lobby());
        assert_eq!(Room::parse(""), Err(NameError::Empty));
        assert_eq!(Room::parse("a b"), Err(NameError::BadChar(' ')));
        assert!(matches!(
            Room::parse("Private"),
            Err(NameError::Reserved(_))
        ));
    }

    proptest! {
        /// Whatever the text, parsing never panics, and what is accepted is 1 to 24 characters
        /// of the allowed set: nothing a terminal would interpret.
        #[test]
        fn accepted_names_are_always_safe(text in any::<String>()) {
            for accepted in [Nick::parse(&text).ok().map(|n| n.to_string()),
                             Room::parse(&text).ok().map(|r| r.to_string())].into_iter().flatten() {
                prop_assert!(!accepted.is_empty() && accepted.len() <= MAX_NAME_LEN);
                prop_assert!(accepted.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
            }
        }
    }
}
