//! The teaching regions in a chapter's source, and the two ways of printing a file that has them.
//!
//! A region is marked with a pair of mdBook anchors whose name starts with `exercise-`:
//!
//! ```text
//!     // ANCHOR: exercise-echo
//!     while let Some(Ok(message)) = socket.recv().await { … }
//!     // ANCHOR_END: exercise-echo
//! ```
//!
//! Anchor lines, because mdBook drops every anchor line from a listing it includes by anchor: the
//! book shows the chapter's code without a trace of the workshop, and needs nothing special.
//! In the *starter* a region becomes `todo!("<first hint>")`; in the *solution* view (what
//! `cargo workshop diff` compares against) it stays as written. Both views drop every anchor line.

/// One teaching region of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// The name after `exercise-`, which also names the region's hints.
    pub id: String,
    /// The 1-based line of the opening marker in the chapter's file.
    pub line: usize,
    /// The opening marker's indentation, which the `todo!` takes over.
    pub indent: String,
    /// Whether the region ends its block (the next code line closes a brace), so its `todo!` is
    /// the block's value and takes no semicolon.
    pub tail: bool,
    /// The function the region sits in, when it can be told from the lines above it.
    pub function: Option<String>,
    /// The region's lines as written in the chapter (anchor lines left out).
    pub body: Vec<String>,
}

/// A line of a file, or a region in its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Line(String),
    Region(Region),
}

const BEGIN: &str = "// ANCHOR: exercise-";
const END: &str = "// ANCHOR_END: exercise-";

/// What an mdBook anchor line looks like (either kind, any name).
fn is_anchor_line(line: &str) -> bool {
    let trimmed = line.trim_start();
    trimmed.starts_with("// ANCHOR:") || trimmed.starts_with("// ANCHOR_END:")
}

/// A code line without a book anchor after it (`} // ANCHOR_END: stats` becomes `}`). An
/// exercise marker there is an error: it has to be a line of its own.
fn strip_trailing_anchor(line: &str) -> Result<String, String> {
    let at = ["// ANCHOR:", "// ANCHOR_END:"]
        .iter()
        .filter_map(|anchor| line.find(anchor))
        .min();
    let Some(at) = at else {
        return Ok(line.to_string());
    };
    if line[at..].contains(" exercise-") {
        return Err("an exercise marker must be a comment line of its own".to_string());
    }
    Ok(line[..at].trim_end().to_string())
}

fn marker_id<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    line.trim().strip_prefix(marker).map(str::trim)
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Splits `text` into lines and regions. Errors name the line (1-based) and say what is wrong:
/// a region that never ends, one inside another, an end without a beginning, a bad id.
pub fn scan(text: &str) -> Result<Vec<Piece>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut pieces = Vec::new();
    let mut open: Option<Region> = None;
    for (index, line) in lines.iter().enumerate() {
        let number = index + 1;
        if let Some(id) = marker_id(line, BEGIN) {
            if let Some(region) = &open {
                return Err(format!(
                    "line {number}: region `{id}` begins inside region `{}` (line {}); regions do not nest",
                    region.id, region.line
                ));
            }
            if !valid_id(id) {
                return Err(format!(
                    "line {number}: `{id}` is not a region id (letters, digits, `-`, `_`)"
                ));
            }
            let indent: String = line.chars().take_while(|c| c.is_whitespace()).collect();
            open = Some(Region {
                id: id.to_string(),
                line: number,
                indent,
                tail: false,
                function: enclosing_function(&lines[..index], line),
                body: Vec::new(),
            });
        } else if let Some(id) = marker_id(line, END) {
            let Some(mut region) = open.take() else {
                return Err(format!("line {number}: region `{id}` ends but never began"));
            };
            if region.id != id {
                return Err(format!(
                    "line {number}: `{id}` ends, but the open region is `{}` (line {})",
                    region.id, region.line
                ));
            }
            if region.body.iter().all(|line| line.trim().is_empty()) {
                return Err(format!("line {}: region `{id}` is empty", region.line));
            }
            let next_code = lines[index + 1..]
                .iter()
                .find(|line| !line.trim().is_empty() && !is_anchor_line(line));
            region.tail = next_code.is_some_and(|line| line.trim_start().starts_with('}'));
            pieces.push(Piece::Region(region));
        } else if is_anchor_line(line) {
            // A listing anchor for the book: it has no place in an exercise.
        } else {
            let line =
                strip_trailing_anchor(line).map_err(|err| format!("line {number}: {err}"))?;
            match &mut open {
                Some(region) => region.body.push(line),
                None => pieces.push(Piece::Line(line)),
            }
        }
    }
    if let Some(region) = open {
        return Err(format!(
            "line {}: region `{}` never ends (expected `{END}{}`)",
            region.line, region.id, region.id
        ));
    }
    Ok(pieces)
}

/// The nearest `fn name` above the marker that is indented less than the marker is.
fn enclosing_function(above: &[&str], marker: &str) -> Option<String> {
    let marker_indent = marker.len() - marker.trim_start().len();
    above.iter().rev().find_map(|line| {
        let indent = line.len() - line.trim_start().len();
        if indent >= marker_indent || line.trim().is_empty() {
            return None;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let at = words.iter().position(|word| *word == "fn")?;
        let name = words.get(at + 1)?;
        let name: String = name
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        (!name.is_empty()).then_some(name)
    })
}

/// The regions of a scanned file.
pub fn regions(pieces: &[Piece]) -> impl Iterator<Item = &Region> {
    pieces.iter().filter_map(|piece| match piece {
        Piece::Region(region) => Some(region),
        Piece::Line(_) => None,
    })
}

/// The starter view: every region replaced by a `todo!` whose message `message(id)` gives.
pub fn starter(pieces: &[Piece], message: impl Fn(&str) -> String) -> String {
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Line(line) => {
                out.push_str(line);
                out.push('\n');
            }
            Piece::Region(region) => {
                out.push_str(&todo_call(
                    &region.indent,
                    &message(&region.id),
                    region.tail,
                ));
                out.push('\n');
            }
        }
    }
    out
}

/// The solution view: the regions as the chapter wrote them, without any marker.
pub fn solution(pieces: &[Piece]) -> String {
    let mut out = String::new();
    for piece in pieces {
        let lines: &[String] = match piece {
            Piece::Line(line) => std::slice::from_ref(line),
            Piece::Region(region) => &region.body,
        };
        for line in lines {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The widest line rustfmt leaves alone (its default `max_width`).
const MAX_WIDTH: usize = 100;

/// `todo!("message")`, laid out as rustfmt would lay it out, so generated code passes
/// `cargo fmt --check`: on one line when it fits, else with the message on a line of its own.
pub fn todo_call(indent: &str, message: &str, tail: bool) -> String {
    let literal = string_literal(message);
    let semicolon = if tail { "" } else { ";" };
    let one_line = format!("{indent}todo!({literal}){semicolon}");
    if one_line.chars().count() <= MAX_WIDTH {
        one_line
    } else {
        format!("{indent}todo!(\n{indent}    {literal}\n{indent}){semicolon}")
    }
}

/// `message` as the format-string literal `todo!` takes: braces doubled (they would be
/// placeholders), quotes and backslashes escaped.
pub fn string_literal(message: &str) -> String {
    let mut literal = String::from("\"");
    for c in message.chars() {
        match c {
            '{' => literal.push_str("{{"),
            '}' => literal.push_str("}}"),
            '"' => literal.push_str("\\\""),
            '\\' => literal.push_str("\\\\"),
            '\n' => literal.push(' '),
            c => literal.push(c),
        }
    }
    literal.push('"');
    literal
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = "\
// ANCHOR: echo
async fn echo(mut socket: WebSocket) {
    tracing::info!(\"client connected\");
    // ANCHOR: exercise-loop
    while let Some(Ok(message)) = socket.recv().await {
        let _ = socket.send(message).await;
    }
    // ANCHOR_END: exercise-loop
    tracing::info!(\"client disconnected\");
}
// ANCHOR_END: echo

fn answer() -> u32 {
    // ANCHOR: exercise-answer
    6 * 7
    // ANCHOR_END: exercise-answer
}
";

    /// The starter has a `todo!` where each region was, with a semicolon only where code
    /// follows it, and no anchor lines at all.
    #[test]
    fn the_starter_replaces_each_region_with_a_todo() {
        let pieces = scan(SOURCE).expect("the source is well marked");
        let starter = starter(&pieces, |id| format!("write {id}"));
        assert_eq!(
            starter,
            "\
async fn echo(mut socket: WebSocket) {
    tracing::info!(\"client connected\");
    todo!(\"write loop\");
    tracing::info!(\"client disconnected\");
}

fn answer() -> u32 {
    todo!(\"write answer\")
}
"
        );
    }

    /// A book anchor after code on the same line goes; the code stays.
    #[test]
    fn trailing_book_anchors_are_stripped() {
        let pieces = scan("match x {\n    _ => {} // ANCHOR_END: arms\n}\n").expect("well marked");
        assert_eq!(solution(&pieces), "match x {\n    _ => {}\n}\n");
    }

    /// The solution keeps the regions' code and drops every anchor line.
    #[test]
    fn the_solution_keeps_the_code_without_markers() {
        let pieces = scan(SOURCE).expect("the source is well marked");
        let solution = solution(&pieces);
        assert!(!solution.contains("ANCHOR"), "no anchors: {solution}");
        assert!(solution.contains("        let _ = socket.send(message).await;\n"));
        assert!(solution.contains("    6 * 7\n"));
    }

    /// Each region knows its id, its line and the function it sits in.
    #[test]
    fn regions_know_where_they_are() {
        let pieces = scan(SOURCE).expect("the source is well marked");
        let found: Vec<(&str, usize, Option<&str>)> = regions(&pieces)
            .map(|r| (r.id.as_str(), r.line, r.function.as_deref()))
            .collect();
        assert_eq!(
            found,
            [("loop", 4, Some("echo")), ("answer", 14, Some("answer"))]
        );
    }

    /// Badly marked regions are errors that name the line.
    #[test]
    fn bad_markers_are_errors_with_a_line_number() {
        let cases = [
            (
                "// ANCHOR: exercise-a\nx\n",
                "line 1: region `a` never ends",
            ),
            (
                "x\n// ANCHOR_END: exercise-a\n",
                "line 2: region `a` ends but never began",
            ),
            (
                "// ANCHOR: exercise-a\n// ANCHOR: exercise-b\n",
                "line 2: region `b` begins inside region `a`",
            ),
            (
                "// ANCHOR: exercise-a\nx\n// ANCHOR_END: exercise-b\n",
                "line 3: `b` ends, but the open region is `a`",
            ),
            (
                "// ANCHOR: exercise-a\n\n// ANCHOR_END: exercise-a\n",
                "line 1: region `a` is empty",
            ),
            (
                "// ANCHOR: exercise-a b\n",
                "line 1: `a b` is not a region id",
            ),
            (
                "x\n} // ANCHOR_END: exercise-a\n",
                "line 2: an exercise marker must be a comment line of its own",
            ),
        ];
        for (source, expected) in cases {
            let error = scan(source).expect_err("a badly marked source");
            assert!(
                error.starts_with(expected),
                "for {source:?} expected an error starting {expected:?}, got {error:?}"
            );
        }
    }

    /// Braces in a hint are not format placeholders, and quotes do not end the literal.
    #[test]
    fn messages_are_escaped_for_todo() {
        assert_eq!(
            string_literal(r#"match on {Text, Binary}, "quoted" \ ok"#),
            r#""match on {{Text, Binary}}, \"quoted\" \\ ok""#
        );
    }

    /// A `todo!` too wide for one line is laid out the way rustfmt lays it out.
    #[test]
    fn long_todos_wrap_like_rustfmt() {
        let long = "x".repeat(90);
        assert_eq!(
            todo_call("    ", &long, false),
            format!("    todo!(\n        \"{long}\"\n    );")
        );
        assert_eq!(todo_call("    ", "short", true), "    todo!(\"short\")");
    }
}
