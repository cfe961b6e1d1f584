//! Colour for the terminal, and only for the terminal: piped or redirected output stays plain,
//! and so does everything when `NO_COLOR` is set to anything but the empty string.

use std::{env, io::IsTerminal};

/// Whether to colour, decided once from stdout and `NO_COLOR`.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub colour: bool,
}

impl Style {
    /// Colour when stdout is a terminal and `NO_COLOR` is unset or empty.
    pub fn detect() -> Style {
        let no_color = env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
        Style {
            colour: std::io::stdout().is_terminal() && !no_color,
        }
    }

    /// Never colour (for tests and files).
    pub fn plain() -> Style {
        Style { colour: false }
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn good(self, text: &str) -> String {
        self.paint("32", text)
    }

    pub fn bad(self, text: &str) -> String {
        self.paint("31", text)
    }

    pub fn warn(self, text: &str) -> String {
        self.paint("33", text)
    }

    pub fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }

    pub fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }

    /// A command the reader can type.
    pub fn command(self, text: &str) -> String {
        self.paint("36", text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plain style adds no escape codes; colour wraps and resets.
    #[test]
    fn plain_is_plain_and_colour_resets() {
        assert_eq!(Style::plain().good("ok"), "ok");
        assert_eq!(Style { colour: true }.bad("no"), "\x1b[31mno\x1b[0m");
    }
}
