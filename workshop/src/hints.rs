//! The hints file of a chapter, `workshop/hints/NN-name.md`: one Markdown file per exercise that
//! holds its title, an introduction, and for every teaching region a task and numbered hints.
//!
//! ```text
//! # Exercise 01: Echo                  <- the page title
//!
//! What the exercise is about.          <- introduction (any Markdown)
//!
//! ## echo: Send every message back     <- a region: its id, a colon, a title
//!
//! What to write there.                 <- the task (any Markdown)
//!
//! ### Hint 1                           <- one paragraph of plain text: the todo!'s message
//!
//! A nudge.
//!
//! ### Hint 2                           <- any Markdown; the last hint nearly gives the answer
//!
//! …
//! ```
//!
//! The file is read as CommonMark (pulldown-cmark): headings inside fenced code blocks are code,
//! not structure, and every error names the line it is about.

use std::ops::Range;

use pulldown_cmark::{CodeBlockKind, Event, Parser, Tag};

use crate::LineError;

/// What a hints file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hints {
    /// The text of the `# ` heading.
    pub title: String,
    /// The Markdown between the title and the first region.
    pub intro: String,
    /// One entry per region, in the file's order.
    pub todos: Vec<Todo>,
}

/// The task and hints for one region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Todo {
    /// The region's id (`exercise-<id>` in the chapter's markers).
    pub id: String,
    /// A short title, after the colon.
    pub title: String,
    /// The Markdown between the heading and the first hint.
    pub task: String,
    /// The hints, level 1 first. There are at least two.
    pub levels: Vec<String>,
}

impl Todo {
    /// The first hint on one line: what the starter's `todo!` says.
    pub fn message(&self) -> String {
        self.levels
            .first()
            .map(|hint| hint.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    }
}

impl Hints {
    /// The hints for region `id`.
    pub fn todo(&self, id: &str) -> Option<&Todo> {
        self.todos.iter().find(|todo| todo.id == id)
    }
}

/// The longest first hint, so a `todo!` message stays readable in a panic message.
pub const MESSAGE_LIMIT: usize = 120;

/// What a top-level block of the file is, as far as the structure goes.
#[derive(Debug)]
enum Kind {
    Heading,
    Paragraph,
    /// A fenced code block, and whether its closing fence is there.
    Code {
        closed: bool,
    },
    Other,
}

/// A top-level block: its kind and where it is in the text.
#[derive(Debug)]
struct Block {
    kind: Kind,
    range: Range<usize>,
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(0, |before| before.matches('\n').count())
        + 1
}

/// Whether a fenced code block's source ends with a closing fence like its opening one.
fn fence_closed(source: &str) -> bool {
    let opening = source.trim_start();
    let marker = opening.chars().next().unwrap_or('`');
    let width = opening.chars().take_while(|c| *c == marker).count();
    let mut lines = source.trim_end().lines();
    lines.next();
    lines.next_back().is_some_and(|last| {
        let last = last.trim();
        last.chars().take_while(|c| *c == marker).count() >= width
            && last.chars().all(|c| c == marker)
    })
}

/// The file's top-level blocks, as CommonMark reads them: a `#` inside a fenced code block is
/// code, and so is everything in a block quote or a list.
fn blocks(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut depth = 0usize;
    for (event, range) in Parser::new(text).into_offset_iter() {
        match event {
            Event::Start(tag) => {
                if depth == 0 {
                    let kind = match tag {
                        Tag::Heading { .. } => Kind::Heading,
                        Tag::Paragraph => Kind::Paragraph,
                        Tag::CodeBlock(CodeBlockKind::Fenced(_)) => Kind::Code {
                            closed: fence_closed(text.get(range.clone()).unwrap_or_default()),
                        },
                        _ => Kind::Other,
                    };
                    blocks.push(Block { kind, range });
                }
                depth += 1;
            }
            Event::End(_) => depth = depth.saturating_sub(1),
            _ if depth == 0 => blocks.push(Block {
                kind: Kind::Other,
                range,
            }),
            _ => {}
        }
    }
    blocks
}

/// An ATX heading's level and text: `## read: Queue` is `(2, "read: Queue")`.
fn heading(source: &str) -> Option<(usize, &str)> {
    let source = source.trim();
    let depth = source.bytes().take_while(|b| *b == b'#').count();
    let rest = source.get(depth..)?;
    (depth > 0 && (rest.is_empty() || rest.starts_with(' '))).then(|| (depth, rest.trim()))
}

/// Where the Markdown between two headings belongs.
enum Into {
    Intro,
    Task,
    Level,
}

/// Parses a hints file. Every error names the line and what is expected there.
pub fn parse(text: &str) -> Result<Hints, LineError> {
    let blocks = blocks(text);
    let mut title: Option<String> = None;
    let mut intro = String::new();
    let mut todos: Vec<Todo> = Vec::new();
    // For each region, the lines of its heading and of its hints' headings, and whether each
    // top-level block of its first hint is a paragraph; for the checks at the end.
    let mut lines: Vec<(usize, Vec<usize>, Vec<bool>)> = Vec::new();
    // The section being read: where its text goes, and where it starts in `text`.
    let mut section: Option<(Into, usize)> = None;

    let mut close = |section: &Option<(Into, usize)>, end: usize, todos: &mut Vec<Todo>| {
        let Some((into, start)) = section else {
            return;
        };
        let content = tidy(text.get(*start..end).unwrap_or_default());
        match into {
            Into::Intro => intro = content,
            Into::Task => {
                if let Some(todo) = todos.last_mut() {
                    todo.task = content;
                }
            }
            Into::Level => {
                if let Some(level) = todos.last_mut().and_then(|todo| todo.levels.last_mut()) {
                    *level = content;
                }
            }
        }
    };

    for block in &blocks {
        let number = line_of(text, block.range.start);
        let source = text.get(block.range.clone()).unwrap_or_default();
        match block.kind {
            Kind::Code { closed: false } => {
                return Err(LineError::new(number, "this code block never ends"));
            }
            Kind::Heading => {}
            _ => {
                if section.is_none() {
                    return Err(LineError::new(number, "text before the `# ` title"));
                }
                if let (Some((Into::Level, _)), Some(todo), Some((_, _, first_hint))) =
                    (&section, todos.last(), lines.last_mut())
                    && todo.levels.len() == 1
                {
                    first_hint.push(matches!(block.kind, Kind::Paragraph));
                }
                continue;
            }
        }
        let Some((depth, heading)) = heading(source) else {
            return Err(LineError::new(
                number,
                "write headings with `#`s (`# `, `## `, `### `), not underlined",
            ));
        };
        close(&section, block.range.start, &mut todos);
        let after = block.range.end;
        match depth {
            1 => {
                if title.is_some() {
                    return Err(LineError::new(number, "a second `# ` title"));
                }
                title = Some(heading.to_string());
                section = Some((Into::Intro, after));
            }
            2 => {
                let (id, todo_title) = heading.split_once(':').ok_or_else(|| {
                    LineError::new(
                        number,
                        format!("expected `## <region id>: <title>`, got `## {heading}`"),
                    )
                })?;
                let id = id.trim().trim_matches('`');
                if todos.iter().any(|todo| todo.id == id) {
                    return Err(LineError::new(
                        number,
                        format!("region `{id}` has hints already"),
                    ));
                }
                if title.is_none() {
                    return Err(LineError::new(number, "a region before the `# ` title"));
                }
                todos.push(Todo {
                    id: id.to_string(),
                    title: todo_title.trim().to_string(),
                    task: String::new(),
                    levels: Vec::new(),
                });
                lines.push((number, Vec::new(), Vec::new()));
                section = Some((Into::Task, after));
            }
            3 => {
                let (Some(todo), Some((_, levels, _))) = (todos.last_mut(), lines.last_mut())
                else {
                    return Err(LineError::new(number, "a hint before any `## ` region"));
                };
                let expected = format!("Hint {}", todo.levels.len() + 1);
                if heading != expected {
                    return Err(LineError::new(
                        number,
                        format!(
                            "expected `### {expected}` (hints are numbered from 1 in order), got `### {heading}`"
                        ),
                    ));
                }
                todo.levels.push(String::new());
                levels.push(number);
                section = Some((Into::Level, after));
            }
            _ => {
                return Err(LineError::new(
                    number,
                    "only `#`, `##` and `###` headings have a meaning here",
                ));
            }
        }
    }
    close(&section, text.len(), &mut todos);

    let title = title.ok_or_else(|| LineError::new(1, "no `# ` title"))?;
    if todos.is_empty() {
        return Err(LineError::new(
            line_of(text, text.len()),
            "no `## <region id>: <title>` section",
        ));
    }
    for (todo, (line, levels, first_hint)) in todos.iter().zip(&lines) {
        if todo.levels.len() < 2 {
            return Err(LineError::new(
                *line,
                format!(
                    "region `{}` has {} hint(s); it needs at least two, the last nearly the answer",
                    todo.id,
                    todo.levels.len()
                ),
            ));
        }
        if let Some(empty) = todo.levels.iter().position(String::is_empty) {
            return Err(LineError::new(
                levels.get(empty).copied().unwrap_or(*line),
                format!("region `{}`: hint {} is empty", todo.id, empty + 1),
            ));
        }
        if todo.task.is_empty() {
            return Err(LineError::new(
                *line,
                format!("region `{}` has no task text", todo.id),
            ));
        }
        let first = levels.first().copied().unwrap_or(*line);
        if first_hint.as_slice() != [true] {
            return Err(LineError::new(
                first,
                format!(
                    "region `{}`: hint 1 becomes the todo!'s message, so it must be one paragraph of text",
                    todo.id
                ),
            ));
        }
        let length = todo.message().chars().count();
        if length > MESSAGE_LIMIT {
            return Err(LineError::new(
                first,
                format!(
                    "region `{}`: hint 1 is {length} characters; as the todo!'s message it may have {MESSAGE_LIMIT}",
                    todo.id
                ),
            ));
        }
    }
    Ok(Hints {
        title,
        intro,
        todos,
    })
}

/// A section's Markdown without blank lines at either end.
fn tidy(section: &str) -> String {
    let lines: Vec<&str> = section.lines().collect();
    let start = lines.iter().position(|line| !line.trim().is_empty());
    let end = lines.iter().rposition(|line| !line.trim().is_empty());
    match (start, end) {
        (Some(start), Some(end)) => lines[start..=end].join("\n"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
# Exercise 09: Sample

An introduction.

## loop: Write the loop

The task.

### Hint 1

Read in a
loop.

### Hint 2

Like this:

```rust
### not a heading
loop {}
```
";

    /// A well-formed file gives the title, the introduction, and each region's task and hints.
    #[test]
    fn a_well_formed_file_parses() {
        let hints = parse(GOOD).expect("a well-formed hints file");
        assert_eq!(hints.title, "Exercise 09: Sample");
        assert_eq!(hints.intro, "An introduction.");
        let todo = hints.todo("loop").expect("the `loop` region");
        assert_eq!(todo.title, "Write the loop");
        assert_eq!(todo.task, "The task.");
        assert_eq!(todo.levels.len(), 2, "a heading inside code is code");
        assert_eq!(todo.message(), "Read in a loop.");
        assert!(todo.levels[1].ends_with("loop {}\n```"));
    }

    /// Files that the generator could not use are errors that say what is wrong, and where.
    #[test]
    fn unusable_files_are_errors() {
        let one_hint = GOOD.split("### Hint 2").next().unwrap_or_default();
        let cases = [
            (one_hint.to_string(), 5, "it needs at least two"),
            (
                GOOD.replace("### Hint 2", "### Hint 3"),
                14,
                "expected `### Hint 2`",
            ),
            (
                GOOD.replace("## loop:", "## loop"),
                5,
                "expected `## <region id>: <title>`",
            ),
            (GOOD.replace("The task.", ""), 5, "has no task text"),
            (
                GOOD.replace("Read in a\nloop.", &"long ".repeat(30)),
                9,
                "as the todo!'s message it may have",
            ),
            (format!("stray\n{GOOD}"), 1, "text before the `# ` title"),
            (
                GOOD.replace("Read in a\nloop.", "One.\n\nTwo."),
                9,
                "must be one paragraph",
            ),
            (
                GOOD.replace("loop {}\n```\n", "loop {}\n"),
                18,
                "this code block never ends",
            ),
            (
                GOOD.replace("## loop: Write the loop", "loop: Write the loop\n---"),
                5,
                "write headings with `#`s",
            ),
            (
                GOOD.replace("The task.", "#### Deeper"),
                7,
                "only `#`, `##` and `###` headings",
            ),
        ];
        for (text, line, expected) in cases {
            let error = parse(&text).expect_err("an unusable hints file");
            assert!(
                error.line == line && error.message.contains(expected),
                "expected line {line}: {expected:?}, got {error:?}"
            );
        }
    }
}
