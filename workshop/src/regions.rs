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
//! In the *starter* a region becomes `todo!("<goal>")`; in the *solution* view (what
//! `cargo workshop diff` compares against) it stays as written. Both views drop every anchor line.
//!
//! The markers are comments, which a Rust parser does not keep, so they are found by their text.
//! What lies between them is then checked with syn: whole statements of one block inside a
//! function body, so that a `todo!` in their place type-checks.

use std::collections::BTreeSet;

use syn::{
    Block, Stmt,
    spanned::Spanned,
    visit::{self, Visit},
};

use crate::{LineError, rust};

/// One teaching region of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// The name after `exercise-`, which also names the region's hints.
    pub id: String,
    /// The 1-based line of the opening marker in the chapter's file.
    pub line: usize,
    /// The 1-based line of the closing marker.
    pub end_line: usize,
    /// The opening marker's indentation, which the `todo!` takes over.
    pub indent: String,
    /// Whether the region's statements are the last of their block, so its `todo!` is the
    /// block's value and takes no semicolon.
    pub tail: bool,
    /// The function (or method) whose body holds the region.
    pub function: String,
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

/// Splits `text` into lines and regions, and checks each region against the parsed file. Errors
/// name the line and say what is wrong: a region that never ends, one inside another, an end
/// without a beginning, a bad id; a region that is not whole statements of a function body, or
/// that binds a name the code after it uses.
pub fn scan(text: &str) -> Result<Vec<Piece>, LineError> {
    let mut pieces = markers(text)?;
    if pieces.iter().any(|piece| matches!(piece, Piece::Region(_))) {
        let file = rust::parse_file(text)?;
        for piece in &mut pieces {
            if let Piece::Region(region) = piece {
                locate(&file, region)?;
            }
        }
    }
    Ok(pieces)
}

/// The first pass, on the text alone: where the markers are.
fn markers(text: &str) -> Result<Vec<Piece>, LineError> {
    let mut pieces = Vec::new();
    let mut open: Option<Region> = None;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if let Some(id) = marker_id(line, BEGIN) {
            if let Some(region) = &open {
                return Err(LineError::new(
                    number,
                    format!(
                        "region `{id}` begins inside region `{}` (line {}); regions do not nest",
                        region.id, region.line
                    ),
                ));
            }
            if !valid_id(id) {
                return Err(LineError::new(
                    number,
                    format!("`{id}` is not a region id (letters, digits, `-`, `_`)"),
                ));
            }
            let indent: String = line.chars().take_while(|c| c.is_whitespace()).collect();
            open = Some(Region {
                id: id.to_string(),
                line: number,
                end_line: number,
                indent,
                tail: false,
                function: String::new(),
                body: Vec::new(),
            });
        } else if let Some(id) = marker_id(line, END) {
            let Some(mut region) = open.take() else {
                return Err(LineError::new(
                    number,
                    format!("region `{id}` ends but never began"),
                ));
            };
            if region.id != id {
                return Err(LineError::new(
                    number,
                    format!(
                        "`{id}` ends, but the open region is `{}` (line {})",
                        region.id, region.line
                    ),
                ));
            }
            if region.body.iter().all(|line| line.trim().is_empty()) {
                return Err(LineError::new(
                    region.line,
                    format!("region `{id}` is empty"),
                ));
            }
            region.end_line = number;
            pieces.push(Piece::Region(region));
        } else if is_anchor_line(line) {
            // A listing anchor for the book: it has no place in an exercise.
        } else {
            let line = strip_trailing_anchor(line).map_err(|err| LineError::new(number, err))?;
            match &mut open {
                Some(region) => region.body.push(line),
                None => pieces.push(Piece::Line(line)),
            }
        }
    }
    if let Some(region) = open {
        return Err(LineError::new(
            region.line,
            format!(
                "region `{}` never ends (expected `{END}{}`)",
                region.id, region.id
            ),
        ));
    }
    Ok(pieces)
}

/// The innermost block whose braces enclose lines `begin..=end`, and the function it is in.
struct Enclosing<'ast> {
    begin: usize,
    end: usize,
    functions: Vec<String>,
    found: Option<(&'ast Block, Option<String>)>,
}

impl<'ast> Enclosing<'ast> {
    fn within(&mut self, name: &syn::Ident, walk: impl FnOnce(&mut Self)) {
        self.functions.push(name.to_string());
        walk(self);
        self.functions.pop();
    }
}

impl<'ast> Visit<'ast> for Enclosing<'ast> {
    fn visit_item_fn(&mut self, function: &'ast syn::ItemFn) {
        self.within(&function.sig.ident, |this| {
            visit::visit_item_fn(this, function);
        });
    }

    fn visit_impl_item_fn(&mut self, method: &'ast syn::ImplItemFn) {
        self.within(&method.sig.ident, |this| {
            visit::visit_impl_item_fn(this, method);
        });
    }

    fn visit_trait_item_fn(&mut self, method: &'ast syn::TraitItemFn) {
        self.within(&method.sig.ident, |this| {
            visit::visit_trait_item_fn(this, method);
        });
    }

    fn visit_block(&mut self, block: &'ast Block) {
        let open = block.brace_token.span.open().start().line;
        let close = block.brace_token.span.close().start().line;
        // Blocks are visited outside in, so the last one that encloses the lines is innermost.
        if open < self.begin && close > self.end {
            self.found = Some((block, self.functions.last().cloned()));
        }
        visit::visit_block(self, block);
    }
}

/// The names a `let` pattern binds.
#[derive(Default)]
struct Bindings(BTreeSet<String>);

impl<'ast> Visit<'ast> for Bindings {
    fn visit_pat_ident(&mut self, binding: &'ast syn::PatIdent) {
        self.0.insert(binding.ident.to_string());
        visit::visit_pat_ident(self, binding);
    }
}

/// The names code refers to: single-segment paths, and identifiers in macro input (a
/// `tracing::info!(%id)` uses `id`).
#[derive(Default)]
struct Uses(BTreeSet<String>);

impl Uses {
    fn tokens(&mut self, tokens: proc_macro2::TokenStream) {
        for tree in tokens {
            match tree {
                proc_macro2::TokenTree::Ident(ident) => {
                    self.0.insert(ident.to_string());
                }
                proc_macro2::TokenTree::Group(group) => self.tokens(group.stream()),
                _ => {}
            }
        }
    }
}

impl<'ast> Visit<'ast> for Uses {
    fn visit_path(&mut self, path: &'ast syn::Path) {
        if let Some(ident) = path.get_ident() {
            self.0.insert(ident.to_string());
        }
        visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.tokens(mac.tokens.clone());
        visit::visit_macro(self, mac);
    }
}

/// Lines a statement spans, attributes included.
fn lines_of(stmt: &Stmt) -> (usize, usize) {
    let span = stmt.span();
    (span.start().line, span.end().line)
}

/// Fills in where `region` is (its function, whether it ends its block), after checking that
/// it is whole statements of a block inside a function body and that it binds nothing the code
/// after it uses.
fn locate(file: &syn::File, region: &mut Region) -> Result<(), LineError> {
    let (begin, end) = (region.line, region.end_line);
    let id = region.id.clone();
    let mut enclosing = Enclosing {
        begin,
        end,
        functions: Vec::new(),
        found: None,
    };
    enclosing.visit_file(file);
    let (block, function) = match enclosing.found {
        Some((block, Some(function))) => (block, function),
        _ => {
            return Err(LineError::new(
                begin,
                format!(
                    "region `{id}` is not inside a function body: a region is statements that a \
                     `todo!()` can stand in for"
                ),
            ));
        }
    };
    let mut inside = Vec::new();
    for (index, stmt) in block.stmts.iter().enumerate() {
        let (first, last) = lines_of(stmt);
        if last < begin || first > end {
            continue;
        }
        if first > begin && last < end {
            inside.push(index);
        } else if first < begin && last > end {
            return Err(LineError::new(
                begin,
                format!(
                    "region `{id}` lies inside the statement at line {first}, not among the \
                     statements of a block (match arms and macro input cannot be regions)"
                ),
            ));
        } else {
            return Err(LineError::new(
                begin,
                format!(
                    "region `{id}` cuts the statement at lines {first}-{last} in two: a region \
                     is whole statements"
                ),
            ));
        }
    }
    let (Some(&first), Some(&last)) = (inside.first(), inside.last()) else {
        return Err(LineError::new(
            begin,
            format!("region `{id}` holds no statement, only comments"),
        ));
    };
    let mut bindings = Bindings::default();
    for stmt in &block.stmts[first..=last] {
        if let Stmt::Local(local) = stmt {
            bindings.visit_pat(&local.pat);
        }
    }
    for stmt in &block.stmts[last + 1..] {
        let mut uses = Uses::default();
        uses.visit_stmt(stmt);
        if let Some(name) = bindings.0.intersection(&uses.0).next() {
            return Err(LineError::new(
                begin,
                format!(
                    "region `{id}` binds `{name}`, which line {} after it uses: in the starter \
                     that name would not exist (move the binding out of the region, or the use in)",
                    lines_of(stmt).0
                ),
            ));
        }
    }
    region.tail = last + 1 == block.stmts.len();
    region.function = function;
    Ok(())
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

/// `message` as the format string `todo!` takes: braces doubled (they would be placeholders), on
/// one line. A participant's `todo!` whose literal reads this is the region's.
pub fn format_string(message: &str) -> String {
    let mut format = String::new();
    for c in message.chars() {
        match c {
            '{' => format.push_str("{{"),
            '}' => format.push_str("}}"),
            '\n' => format.push(' '),
            c => format.push(c),
        }
    }
    format
}

/// `message` as the string literal `todo!` takes: its [`format_string`], quoted, with quotes
/// and backslashes escaped.
pub fn string_literal(message: &str) -> String {
    let mut literal = String::from("\"");
    for c in format_string(message).chars() {
        match c {
            '"' => literal.push_str("\\\""),
            '\\' => literal.push_str("\\\\"),
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

    /// Each region knows its id, its lines, the function it sits in, and whether it ends its
    /// block.
    #[test]
    fn regions_know_where_they_are() {
        let pieces = scan(SOURCE).expect("the source is well marked");
        let found: Vec<(&str, usize, usize, &str, bool)> = regions(&pieces)
            .map(|r| {
                (
                    r.id.as_str(),
                    r.line,
                    r.end_line,
                    r.function.as_str(),
                    r.tail,
                )
            })
            .collect();
        assert_eq!(
            found,
            [
                ("loop", 4, 8, "echo", false),
                ("answer", 14, 16, "answer", true)
            ]
        );
    }

    /// A region may be a whole method body in an `impl`, or a whole function body ending in
    /// its value: the `todo!` then is the body, and the starter parses.
    #[test]
    fn a_whole_function_or_method_body_becomes_one_todo() {
        let source = "\
impl Broker {
    /// Applies one event.
    pub fn handle(&mut self, event: Event) {
        // ANCHOR: exercise-handle
        match event {
            Event::Join { id, outbox } => {
                self.outboxes.insert(id, outbox);
            }
            Event::Leave { id } => {
                self.outboxes.remove(&id);
            }
        }
        // ANCHOR_END: exercise-handle
    }
}

fn total(values: &[u32]) -> u32 {
    // ANCHOR: exercise-total
    let mut sum = 0;
    for value in values {
        sum += value;
    }
    sum
    // ANCHOR_END: exercise-total
}
";
        let pieces = scan(source).expect("whole bodies are regions");
        let found: Vec<(&str, &str, bool)> = regions(&pieces)
            .map(|r| (r.id.as_str(), r.function.as_str(), r.tail))
            .collect();
        assert_eq!(
            found,
            [("handle", "handle", true), ("total", "total", true)]
        );
        let starter = starter(&pieces, |id| format!("write {id}"));
        assert_eq!(
            starter,
            "\
impl Broker {
    /// Applies one event.
    pub fn handle(&mut self, event: Event) {
        todo!(\"write handle\")
    }
}

fn total(values: &[u32]) -> u32 {
    todo!(\"write total\")
}
"
        );
        rust::parse_file(&starter).expect("the starter parses");
    }

    /// Badly marked regions are errors that name the line.
    #[test]
    fn bad_markers_are_errors_with_a_line_number() {
        let cases = [
            ("// ANCHOR: exercise-a\nx\n", 1, "region `a` never ends"),
            (
                "x\n// ANCHOR_END: exercise-a\n",
                2,
                "region `a` ends but never began",
            ),
            (
                "// ANCHOR: exercise-a\n// ANCHOR: exercise-b\n",
                2,
                "region `b` begins inside region `a`",
            ),
            (
                "// ANCHOR: exercise-a\nx\n// ANCHOR_END: exercise-b\n",
                3,
                "`b` ends, but the open region is `a`",
            ),
            (
                "// ANCHOR: exercise-a\n\n// ANCHOR_END: exercise-a\n",
                1,
                "region `a` is empty",
            ),
            ("// ANCHOR: exercise-a b\n", 1, "`a b` is not a region id"),
            (
                "x\n} // ANCHOR_END: exercise-a\n",
                2,
                "an exercise marker must be a comment line of its own",
            ),
        ];
        for (source, line, expected) in cases {
            let error = scan(source).expect_err("a badly marked source");
            assert!(
                error.line == line && error.message.starts_with(expected),
                "for {source:?} expected line {line}: {expected:?}, got {error:?}"
            );
        }
    }

    /// A region that a `todo!` could not stand in for is an error at its marker, saying why.
    #[test]
    fn regions_that_are_not_whole_statements_are_errors() {
        let cases = [
            (
                "// ANCHOR: exercise-a\nconst A: u32 = 1;\n// ANCHOR_END: exercise-a\n",
                1,
                "region `a` is not inside a function body",
            ),
            (
                "fn f(x: u8) -> u8 {\n    match x {\n        // ANCHOR: exercise-a\n        0 => 1,\n        // ANCHOR_END: exercise-a\n        _ => 2,\n    }\n}\n",
                3,
                "region `a` lies inside the statement at line 2",
            ),
            (
                "fn f() {\n    let x = vec![\n        // ANCHOR: exercise-a\n        1,\n    ];\n    // ANCHOR_END: exercise-a\n}\n",
                3,
                "region `a` cuts the statement at lines 2-5 in two",
            ),
            (
                "fn f() {\n    // ANCHOR: exercise-a\n    // only a comment\n    // ANCHOR_END: exercise-a\n}\n",
                2,
                "region `a` holds no statement",
            ),
            (
                "fn f() -> u8 {\n    // ANCHOR: exercise-a\n    let (x, y) = (1, 2);\n    // ANCHOR_END: exercise-a\n    tracing::info!(%y);\n    x\n}\n",
                2,
                "region `a` binds `y`, which line 5 after it uses",
            ),
            (
                "fn f() {\n    // ANCHOR: exercise-a\n    let x = 1;\n    // ANCHOR_END: exercise-a\n",
                0,
                "not valid Rust",
            ),
        ];
        for (source, line, expected) in cases {
            let error = scan(source).expect_err("not a region a todo! can replace");
            assert!(
                (line == 0 || error.line == line) && error.message.starts_with(expected),
                "for {source:?} expected line {line}: {expected:?}, got {error:?}"
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
