//! What "the same shape" means for two outputs of one run.

use std::collections::BTreeSet;

use super::Check;

/// A line with what changes from run to run replaced: escape codes removed, every number
/// (`3000`, `05:13:00.319451`, `9.4`, `25,000`) as `#`, a number with a time unit (`200ms`,
/// `1.01 s`) as `#s`, `target/release` and `target/debug` as `target/PROFILE`, and runs of
/// spaces as one.
pub fn shape(line: &str) -> String {
    let line = strip_ansi(line)
        .replace("target/release/", "target/PROFILE/")
        .replace("target/debug/", "target/PROFILE/");
    let mut out = String::with_capacity(line.len());
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() {
            // A number: digits, with `.` or `,` between digits.
            while i < chars.len()
                && (chars[i].is_ascii_digit()
                    || ((chars[i] == '.' || chars[i] == ',')
                        && chars.get(i + 1).is_some_and(char::is_ascii_digit)))
            {
                i += 1;
            }
            out.push('#');
            let unit = unit_len(&chars[i..]);
            if unit > 0 {
                out.push('s');
                i += unit;
            }
            continue;
        }
        if c.is_whitespace() {
            while i < chars.len() && chars[i].is_whitespace() {
                i += 1;
            }
            out.push(' ');
            continue;
        }
        out.push(c);
        i += 1;
    }
    out.trim().to_string()
}

/// How many characters of `rest` are a unit of time right after a number (`ms`, ` s`), or 0.
fn unit_len(rest: &[char]) -> usize {
    let space = usize::from(rest.first() == Some(&' '));
    for unit in ["ms", "µs", "ns", "s"] {
        let unit: Vec<char> = unit.chars().collect();
        let end = space + unit.len();
        if rest.get(space..end) == Some(&unit[..])
            && rest.get(end).is_none_or(|c| !c.is_alphanumeric())
        {
            return end;
        }
    }
    0
}

/// `text` without ANSI escape sequences (`ESC [ … letter`).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// The shapes of `lines`, blank lines left out, with any block of up to six lines that repeats
/// right after itself kept once: a table with more rows or a log with more pings has the same
/// shape as a shorter one.
pub fn shapes(lines: &[String]) -> Vec<String> {
    let mut shapes: Vec<String> = lines
        .iter()
        .map(|line| shape(line))
        .filter(|line| !line.is_empty())
        .collect();
    loop {
        let before = shapes.len();
        for width in 1..=6 {
            let mut i = 0;
            while i + 2 * width <= shapes.len() {
                if shapes[i..i + width] == shapes[i + width..i + 2 * width] {
                    shapes.drain(i + width..i + 2 * width);
                } else {
                    i += 1;
                }
            }
        }
        if shapes.len() == before {
            return shapes;
        }
    }
}

/// Compares a recorded section with fresh output; `Err` shows both shapes.
pub fn compare(recorded: &[String], fresh: &[String], check: Check) -> Result<(), String> {
    let old = shapes(recorded);
    let new = shapes(fresh);
    let same = match check {
        Check::Order => old == new,
        Check::Kinds => old.iter().collect::<BTreeSet<_>>() == new.iter().collect::<BTreeSet<_>>(),
    };
    if same && !new.is_empty() {
        return Ok(());
    }
    let how = match check {
        Check::Order => "in order",
        Check::Kinds => "as a set",
    };
    Err(format!(
        "the shapes differ ({how}).\n  recorded:\n    {}\n  printed now:\n    {}",
        old.join("\n    "),
        if new.is_empty() {
            "(nothing)".to_string()
        } else {
            new.join("\n    ")
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn numbers_times_ids_and_padding_become_placeholders() {
        assert_eq!(
            shape("2026-11-22T05:13:00.319451Z  INFO ch01_echo: client connected id=#12"),
            "#-#-#T#:#:#Z INFO ch#_echo: client connected id=##"
        );
        assert_eq!(shape("  1.0s     61.1 MiB   7872"), "#s # MiB #");
        assert_eq!(
            shape("exited after 1.01 s, code 0"),
            "exited after #s, code #"
        );
        assert_eq!(shape("waited 200ms"), shape("waited 5s"));
        assert_eq!(shape("sent 25,000 messages"), "sent # messages");
        assert_eq!(
            shape("target/release/ch03-broker: 1 stalled"),
            shape("target/debug/ch03-broker: 2 stalled")
        );
        assert_eq!(shape("\u{1b}[2m2026\u{1b}[0m x"), "# x");
    }

    #[test]
    fn repeated_blocks_count_once() {
        let long = lines("head\nrow 1\nrow 2\nrow 3\nping\npong\nping\npong\ntail");
        let short = lines("head\nrow 7\nping\npong\ntail");
        assert_eq!(shapes(&long), shapes(&short));
        assert!(compare(&long, &short, Check::Order).is_ok());
    }

    #[test]
    fn a_changed_or_missing_line_is_a_difference() {
        let recorded = lines("a 1\nb 2\nc 3");
        assert!(compare(&recorded, &lines("a 1\nc 3"), Check::Order).is_err());
        assert!(compare(&recorded, &lines("a 1\nB 2\nc 3"), Check::Order).is_err());
        assert!(compare(&recorded, &lines("c 1\na 2\nb 3"), Check::Kinds).is_ok());
        assert!(compare(&recorded, &[], Check::Kinds).is_err());
    }
}
