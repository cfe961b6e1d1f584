//! What a client's line means: something to say, or a command.
//!
//! Parsing is apart from doing. [`parse`] turns one line of text into an [`Input`], or into a
//! [`ParseError`] whose text tells the user what to type instead; it looks at nothing but the
//! line, so every case is a one-line unit test. The broker then carries out the [`Command`]:
//! only it knows whether a name is taken or a room exists.
//!
//! A line that starts with `/` is a command; `//` at the start sends the rest with one slash, so
//! `//shrug` says `/shrug`. Names are checked here too (see `names.rs`), so the broker receives
//! a `/nick` or `/join` whose name is already valid.

use std::fmt;

use crate::names::{NameError, Nick, Room};

/// One line from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Text for the other members of the room.
    Say(String),
    Command(Command),
}

/// What a client can ask the server to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `/nick NAME`: take another name.
    Nick(Nick),
    /// `/join ROOM`: move to a room, creating it if need be.
    Join(Room),
    /// `/leave`: go back to the lobby.
    Leave,
    /// `/rooms`: every room, with how many are in it.
    Rooms,
    /// `/who`: who is in my room.
    Who,
    /// `/msg NAME TEXT`: say something to one client only, wherever it is.
    Msg { to: Nick, text: String },
    /// `/me ACTION`: say what I do (`* alice waves`).
    Me(String),
    /// `/help`: the list of commands.
    Help,
    /// `/quit`: leave the server.
    Quit,
    /// `/history [N]`: the last messages of my room again (N of them, or as many as `--history`).
    History(Option<usize>),
}

/// The commands, as `/help` lists them.
pub const HELP: &str = "\
/nick NAME       take another name
/join ROOM       go to a room (it is created if need be)
/leave           go back to the lobby
/rooms           list the rooms
/who             list who is in your room
/msg NAME TEXT   send TEXT to NAME only
/me ACTION       tell the room what you do
/help            this list
/history [N]     the last N messages of your room again
/quit            leave
//text           say \"/text\"";

/// Why a line could not be understood. The `Display` text is what the client reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Nothing but whitespace.
    Empty,
    /// `/` followed by a word that is no command (or by nothing).
    Unknown(String),
    /// A command without what it needs (`/join`).
    Missing { usage: &'static str },
    /// A command with more than it takes (`/leave now`, `/nick two words`).
    Extra { usage: &'static str },
    /// A name that is not a valid name.
    BadName(NameError),
    /// `/history` with something other than a count from 1 to [`MAX_HISTORY`].
    BadCount(String),
}

/// The most messages one `/history` may ask for (and `--history` replay on join).
pub const MAX_HISTORY: usize = 1000;

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Empty => write!(f, "nothing to send: type a message, or /help"),
            ParseError::Unknown(name) if name.is_empty() => {
                write!(
                    f,
                    "a command needs a name after '/': try /help (or // to say '/')"
                )
            }
            ParseError::Unknown(name) => write!(
                f,
                "unknown command /{}: try /help (or //{} to say it)",
                name.escape_debug(),
                name.escape_debug()
            ),
            ParseError::Missing { usage } => write!(f, "missing argument: usage is {usage}"),
            ParseError::Extra { usage } => write!(f, "too many arguments: usage is {usage}"),
            ParseError::BadName(err) => err.fmt(f),
            ParseError::BadCount(count) => write!(
                f,
                "/history takes a number of messages from 1 to {MAX_HISTORY}, not {}",
                count.escape_debug()
            ),
        }
    }
}

/// Reads one line. Text that does not start with `/` is said as it is, spaces and all; a
/// command's words may be separated by any whitespace.
pub fn parse(line: &str) -> Result<Input, ParseError> {
    if line.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    let Some(command) = line.strip_prefix('/') else {
        return Ok(Input::Say(line.to_string()));
    };
    if command.starts_with('/') {
        // `//text` says `/text`.
        return Ok(Input::Say(command.to_string()));
    }
    let (name, rest) = command
        .split_once(char::is_whitespace)
        .unwrap_or((command, ""));
    let rest = rest.trim();
    let parsed = match name.to_ascii_lowercase().as_str() {
        "nick" => {
            Command::Nick(Nick::parse(one_word(rest, "/nick NAME")?).map_err(ParseError::BadName)?)
        }
        "join" => {
            Command::Join(Room::parse(one_word(rest, "/join ROOM")?).map_err(ParseError::BadName)?)
        }
        "leave" => no_words(rest, "/leave", Command::Leave)?,
        "rooms" => no_words(rest, "/rooms", Command::Rooms)?,
        "who" => no_words(rest, "/who", Command::Who)?,
        "help" => no_words(rest, "/help", Command::Help)?,
        "quit" => no_words(rest, "/quit", Command::Quit)?,
        "history" if rest.is_empty() => Command::History(None),
        "history" => {
            let count = one_word(rest, "/history [N]")?;
            match count.parse::<usize>() {
                Ok(n) if (1..=MAX_HISTORY).contains(&n) => Command::History(Some(n)),
                _ => return Err(ParseError::BadCount(count.to_string())),
            }
        }
        "msg" => {
            const USAGE: &str = "/msg NAME TEXT";
            let (to, text) = rest
                .split_once(char::is_whitespace)
                .ok_or(ParseError::Missing { usage: USAGE })?;
            let text = text.trim_start();
            if to.is_empty() || text.is_empty() {
                return Err(ParseError::Missing { usage: USAGE });
            }
            // The recipient is looked up, not created: any valid form will do, guests included.
            let to =
                Nick::parse(to).or_else(|err| guest_name(to).ok_or(ParseError::BadName(err)))?;
            Command::Msg {
                to,
                text: text.to_string(),
            }
        }
        "me" if !rest.is_empty() => Command::Me(rest.to_string()),
        "me" => {
            return Err(ParseError::Missing {
                usage: "/me ACTION",
            });
        }
        _ => return Err(ParseError::Unknown(name.to_string())),
    };
    Ok(Input::Command(parsed))
}

/// The one word a command takes.
fn one_word<'a>(rest: &'a str, usage: &'static str) -> Result<&'a str, ParseError> {
    match rest.split_whitespace().count() {
        0 => Err(ParseError::Missing { usage }),
        1 => Ok(rest),
        _ => Err(ParseError::Extra { usage }),
    }
}

/// A command that takes nothing.
fn no_words(rest: &str, usage: &'static str, command: Command) -> Result<Command, ParseError> {
    if rest.is_empty() {
        Ok(command)
    } else {
        Err(ParseError::Extra { usage })
    }
}

/// `guest-7` as a recipient: nobody may take such a name, but one may write to its holder.
fn guest_name(text: &str) -> Option<Nick> {
    let number = text
        .to_ascii_lowercase()
        .strip_prefix(crate::names::GUEST_PREFIX)?
        .parse()
        .ok()?;
    let guest = Nick::guest(number);
    // `guest-007` parses as 7: only the exact spelling names guest-7.
    (guest.as_str().eq_ignore_ascii_case(text)).then_some(guest)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn command(line: &str) -> Command {
        match parse(line) {
            Ok(Input::Command(command)) => command,
            other => panic!("{line:?} should be a command, got {other:?}"),
        }
    }

    fn error(line: &str) -> String {
        parse(line).expect_err(line).to_string()
    }

    /// Text is said as it is: spaces, slashes inside, any script.
    #[test]
    fn text_is_said_as_it_is() {
        for line in [
            "hi",
            "  indented",
            "a/b",
            "naïve café — 你好 🦀",
            "trailing  ",
        ] {
            assert_eq!(parse(line), Ok(Input::Say(line.to_string())));
        }
    }

    /// `//` at the start says the rest with one slash.
    #[test]
    fn a_double_slash_says_a_slash() {
        assert_eq!(parse("//shrug"), Ok(Input::Say("/shrug".to_string())));
        assert_eq!(parse("// x"), Ok(Input::Say("/ x".to_string())));
    }

    /// Every command, with its arguments, whatever the case of its name and the spaces around.
    /// `/history` takes nothing or a count from 1 to MAX_HISTORY; anything else says what it takes.
    #[test]
    fn history_takes_an_optional_count() {
        assert_eq!(command("/history"), Command::History(None));
        assert_eq!(command("/HISTORY 20"), Command::History(Some(20)));
        assert_eq!(
            command(&format!("/history {MAX_HISTORY}")),
            Command::History(Some(MAX_HISTORY))
        );
        for bad in [
            "/history 0",
            "/history -1",
            "/history lots",
            "/history 1001",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.to_string().contains("from 1 to 1000"), "{bad}: {err}");
        }
        assert!(matches!(
            parse("/history 1 2"),
            Err(ParseError::Extra { .. })
        ));
    }

    #[test]
    fn every_command_parses() {
        assert_eq!(
            command("/nick Alice"),
            Command::Nick(Nick::parse("Alice").unwrap())
        );
        assert_eq!(
            command("/NICK   bob  "),
            Command::Nick(Nick::parse("bob").unwrap())
        );
        assert_eq!(
            command("/join Games"),
            Command::Join(Room::parse("games").unwrap())
        );
        assert_eq!(command("/leave"), Command::Leave);
        assert_eq!(command("/rooms"), Command::Rooms);
        assert_eq!(command("/who "), Command::Who);
        assert_eq!(command("/help"), Command::Help);
        assert_eq!(command("/quit"), Command::Quit);
        assert_eq!(
            command("/me waves  hello"),
            Command::Me("waves  hello".to_string())
        );
        assert_eq!(
            command("/msg bob  psst, over  here"),
            Command::Msg {
                to: Nick::parse("bob").unwrap(),
                text: "psst, over  here".to_string()
            }
        );
        assert_eq!(
            command("/msg guest-7 hi"),
            Command::Msg {
                to: Nick::guest(7),
                text: "hi".to_string()
            }
        );
    }

    /// Each malformed line gets the error that says what to type instead.
    #[test]
    fn malformed_lines_say_what_is_wrong() {
        assert_eq!(parse(""), Err(ParseError::Empty));
        assert_eq!(parse(" \t "), Err(ParseError::Empty));
        assert!(error("/").contains("after '/'"));
        assert!(error("/dance").contains("unknown command /dance"));
        assert!(
            error("/dance").contains("//dance"),
            "says how to send it as text"
        );
        assert!(error("/join").contains("usage is /join ROOM"));
        assert!(error("/join   ").contains("missing argument"));
        assert!(error("/join two rooms").contains("too many arguments"));
        assert!(error("/nick").contains("usage is /nick NAME"));
        assert!(error("/leave now").contains("too many arguments: usage is /leave"));
        assert!(error("/msg").contains("usage is /msg NAME TEXT"));
        assert!(error("/msg bob").contains("missing argument"));
        assert!(error("/msg bob   ").contains("missing argument"));
        assert!(error("/me").contains("usage is /me ACTION"));
        assert!(error("/nick a\u{7}b").contains("control characters"));
        assert!(error("/join private").contains("reserved"));
        assert!(error("/msg b@d hi").contains("letters"));
        assert!(
            error("/msg guest-007 hi").contains("letters")
                || error("/msg guest-007 hi").contains("guest")
        );
    }

    /// An unknown command's name is shown escaped: it cannot put a control character on a
    /// terminal.
    #[test]
    fn an_unknown_command_is_echoed_safely() {
        let message = error("/\u{1b}[2J");
        assert!(!message.contains('\u{1b}'), "{message:?}");
    }

    proptest! {
        /// Any line at all parses to something or to an error, without panicking; text that
        /// does not start with '/' is said unchanged.
        #[test]
        fn any_line_parses_or_says_why(line in any::<String>()) {
            match parse(&line) {
                Ok(Input::Say(text)) if !line.starts_with('/') => prop_assert_eq!(text, line),
                Ok(_) => {}
                Err(err) => prop_assert!(!err.to_string().is_empty()),
            }
        }
    }
}
