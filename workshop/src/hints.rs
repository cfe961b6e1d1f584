//! The hints file of a chapter, `workshop/hints/NN-name.md`: one Markdown file per exercise that
//! holds its title, an introduction, and for every teaching region a task, its goal and numbered
//! hints.
//!
//! ```text
//! # Exercise 01: Echo                  <- the page title
//!
//! What the exercise is about.          <- introduction (any Markdown)
//!
//! ## echo: Send every message back     <- a region: its id, a colon, a title
//!
//! What to write there.                 <- the task (any Markdown), with its goal:
//!
//! **Done when:** every text and binary message comes back unchanged, in order.
//! **Tests:** `echo::echoes_text_as_text`, `echo::echoes_in_the_order_sent`.
//!
//! ### Hint 1                           <- any Markdown, from a nudge …
//!
//! ### Hint 2                           <- … to nearly the answer
//! ```
//!
//! The goal is the paragraph of the task that begins `Done when:`. It says what holds once the
//! region is written and which tests check it (each in backticks after `Tests:`, named as
//! `cargo test` prints them), never how: the hints say how. On one line, it is the message of the
//! starter's `todo!`. `**bold**` labels are fine; the message keeps only the text.
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

/// The task, goal and hints for one region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Todo {
    /// The region's id (`exercise-<id>` in the chapter's markers).
    pub id: String,
    /// A short title, after the colon.
    pub title: String,
    /// The Markdown between the heading and the first hint, the goal included.
    pub task: String,
    /// What holds when the region is done.
    pub goal: Goal,
    /// The hints, level 1 first. There are at least two.
    pub levels: Vec<String>,
}

/// A region's goal: the task's `Done when: … Tests: …` paragraph.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Goal {
    /// The paragraph's text on one line, labels included: what the starter's `todo!` says.
    pub text: String,
    /// The tests it names after `Tests:`, as `cargo test` prints them
    /// (`broadcast::delivers_to_every_other_client`, `broker::tests::forwards_to_everyone_but_the_sender`).
    pub tests: Vec<String>,
    /// Its line in the hints file.
    pub line: usize,
}

impl Todo {
    /// What the starter's `todo!` says: the goal.
    pub fn message(&self) -> String {
        self.goal.text.clone()
    }
}

impl Hints {
    /// The hints for region `id`.
    pub fn todo(&self, id: &str) -> Option<&Todo> {
        self.todos.iter().find(|todo| todo.id == id)
    }
}

/// How a goal begins.
pub const GOAL_LABEL: &str = "Done when:";
/// What comes before the tests a goal names.
pub const TESTS_LABEL: &str = "Tests:";
/// The most a goal may say between its labels, so that a `todo!`'s panic message stays
/// readable. The test names after `Tests:` do not count: they are as long as they are.
pub const GOAL_LIMIT: usize = 200;

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

/// A top-level block: its kind, where it is in the text, and the events inside it.
#[derive(Debug)]
struct Block<'a> {
    kind: Kind,
    range: Range<usize>,
    inside: Vec<Event<'a>>,
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
fn blocks(text: &str) -> Vec<Block<'_>> {
    let mut blocks: Vec<Block> = Vec::new();
    let mut depth = 0usize;
    for (event, range) in Parser::new(text).into_offset_iter() {
        if depth > 0
            && let Some(block) = blocks.last_mut()
        {
            block.inside.push(event.clone());
        }
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
                    blocks.push(Block {
                        kind,
                        range,
                        inside: Vec::new(),
                    });
                }
                depth += 1;
            }
            Event::End(_) => depth = depth.saturating_sub(1),
            _ if depth == 0 => blocks.push(Block {
                kind: Kind::Other,
                range,
                inside: Vec::new(),
            }),
            _ => {}
        }
    }
    blocks
}

/// Letters and digits only, lowercase, one space between words: to compare texts for what they
/// say rather than how they are marked up.
fn words(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                ' '
            }
        })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The goal in a paragraph's events, if the paragraph is one (it begins with [`GOAL_LABEL`]).
fn goal(inside: &[Event], line: usize) -> Result<Option<Goal>, LineError> {
    // The paragraph as text, code spans in backticks, and where each code span is in it.
    let mut text = String::new();
    let mut code_spans: Vec<Range<usize>> = Vec::new();
    for event in inside {
        match event {
            Event::Text(part) | Event::InlineHtml(part) | Event::Html(part) => text.push_str(part),
            Event::Code(code) => {
                let start = text.len();
                text.push('`');
                text.push_str(code);
                text.push('`');
                code_spans.push(start..text.len());
            }
            Event::SoftBreak | Event::HardBreak => text.push(' '),
            // Emphasis and links: their text comes as the events above.
            _ => {}
        }
    }
    if !text.trim_start().starts_with(GOAL_LABEL) {
        return Ok(None);
    }
    let behaviour_at = text.find(GOAL_LABEL).unwrap_or_default() + GOAL_LABEL.len();
    let tests_at = text
        .get(behaviour_at..)
        .and_then(|rest| rest.find(TESTS_LABEL));
    let tests_at = tests_at.map(|at| behaviour_at + at).ok_or_else(|| {
        LineError::new(
            line,
            format!(
                "the goal names no test: end it with `{TESTS_LABEL}` and the tests that check it, \
                 in backticks, as `cargo test` prints their names"
            ),
        )
    })?;
    let behaviour: Vec<&str> = text
        .get(behaviour_at..tests_at)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let behaviour = behaviour.join(" ");
    if words(&behaviour).is_empty() {
        return Err(LineError::new(
            line,
            format!("the goal says nothing between `{GOAL_LABEL}` and `{TESTS_LABEL}`"),
        ));
    }
    let mut tests = Vec::new();
    let mut between = String::new();
    let list_at = tests_at + TESTS_LABEL.len();
    let mut at = list_at;
    for span in code_spans.iter().filter(|span| span.start >= list_at) {
        between.push_str(text.get(at..span.start).unwrap_or_default());
        tests.push(
            text.get(span.start + 1..span.end - 1)
                .unwrap_or_default()
                .to_string(),
        );
        at = span.end;
    }
    between.push_str(text.get(at..).unwrap_or_default());
    if tests.is_empty()
        || !words(&between)
            .split(' ')
            .all(|word| word.is_empty() || word == "and")
    {
        return Err(LineError::new(
            line,
            format!(
                "after `{TESTS_LABEL}` come only test names, each in backticks, separated by \
                 commas (`suite::scenario`, `module::tests::name`)"
            ),
        ));
    }
    let length = behaviour.chars().count();
    if length > GOAL_LIMIT {
        return Err(LineError::new(
            line,
            format!(
                "the goal says in {length} characters what holds when it is done; a todo!'s \
                 message may take {GOAL_LIMIT} for that (the test names do not count)"
            ),
        ));
    }
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    Ok(Some(Goal { text, tests, line }))
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

/// Where a region's parts are in the file, for the checks at the end.
struct Lines {
    heading: usize,
    hints: Vec<usize>,
    goal: Option<usize>,
}

/// Parses a hints file. Every error names the line and what is expected there.
pub fn parse(text: &str) -> Result<Hints, LineError> {
    let blocks = blocks(text);
    let mut title: Option<String> = None;
    let mut intro = String::new();
    let mut todos: Vec<Todo> = Vec::new();
    let mut lines: Vec<Lines> = Vec::new();
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
                let Kind::Paragraph = block.kind else {
                    continue;
                };
                let Some(found) = goal(&block.inside, number)? else {
                    continue;
                };
                match (&section, todos.last_mut(), lines.last_mut()) {
                    (Some((Into::Task, _)), Some(todo), Some(Lines { goal: None, .. })) => {
                        todo.goal = found;
                        if let Some(region) = lines.last_mut() {
                            region.goal = Some(number);
                        }
                    }
                    (
                        Some((Into::Task, _)),
                        Some(todo),
                        Some(Lines {
                            goal: Some(first), ..
                        }),
                    ) => {
                        return Err(LineError::new(
                            number,
                            format!(
                                "a second goal for region `{}` (the first is at line {first})",
                                todo.id
                            ),
                        ));
                    }
                    _ => {
                        return Err(LineError::new(
                            number,
                            format!(
                                "a `{GOAL_LABEL}` paragraph belongs to a region's task, between \
                                 its `## ` heading and `### Hint 1`"
                            ),
                        ));
                    }
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
                    goal: Goal::default(),
                    levels: Vec::new(),
                });
                lines.push(Lines {
                    heading: number,
                    hints: Vec::new(),
                    goal: None,
                });
                section = Some((Into::Task, after));
            }
            3 => {
                let (Some(todo), Some(region)) = (todos.last_mut(), lines.last_mut()) else {
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
                region.hints.push(number);
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
    for (todo, region) in todos.iter().zip(&lines) {
        let line = region.heading;
        if todo.levels.len() < 2 {
            return Err(LineError::new(
                line,
                format!(
                    "region `{}` has {} hint(s); it needs at least two, the last nearly the answer",
                    todo.id,
                    todo.levels.len()
                ),
            ));
        }
        if let Some(empty) = todo.levels.iter().position(String::is_empty) {
            return Err(LineError::new(
                region.hints.get(empty).copied().unwrap_or(line),
                format!("region `{}`: hint {} is empty", todo.id, empty + 1),
            ));
        }
        let Some(goal_line) = region.goal else {
            return Err(LineError::new(
                line,
                format!(
                    "region `{}` has no goal: add to its task a paragraph `{GOAL_LABEL} <what \
                     holds when it is done> {TESTS_LABEL} `<a test that checks it>`.`",
                    todo.id
                ),
            ));
        };
        if words(&todo.task) == words(&todo.goal.text) {
            return Err(LineError::new(
                line,
                format!(
                    "region `{}` has no task text besides its goal: say what to write there",
                    todo.id
                ),
            ));
        }
        // Whole words: a goal that begins "Done" does not repeat a hint that says "One.".
        let first_hint = todo
            .levels
            .first()
            .map(|hint| words(hint))
            .unwrap_or_default();
        let goal = format!(" {} ", words(&todo.goal.text));
        if !first_hint.is_empty() && goal.contains(&format!(" {first_hint} ")) {
            return Err(LineError::new(
                goal_line,
                format!(
                    "the goal of region `{}` repeats hint 1: say what holds when it is done, and \
                     leave how to the hints",
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

**Done when:** every number is read, in order. **Tests:** `loops::reads_in_order`,
`tests::stops_at_the_end`.

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

    /// A well-formed file gives the title, the introduction, and each region's task, goal and
    /// hints.
    #[test]
    fn a_well_formed_file_parses() {
        let hints = parse(GOOD).expect("a well-formed hints file");
        assert_eq!(hints.title, "Exercise 09: Sample");
        assert_eq!(hints.intro, "An introduction.");
        let todo = hints.todo("loop").expect("the `loop` region");
        assert_eq!(todo.title, "Write the loop");
        assert!(
            todo.task.starts_with("The task.\n\n**Done when:**"),
            "{:?}",
            todo.task
        );
        assert_eq!(todo.levels.len(), 2, "a heading inside code is code");
        assert_eq!(todo.levels[0], "Read in a\nloop.");
        assert!(todo.levels[1].ends_with("loop {}\n```"));
    }

    /// The goal is the `Done when:` paragraph on one line, without the bold markers: the
    /// todo!'s message. The tests it names are listed as written.
    #[test]
    fn the_goal_is_the_todos_message() {
        let hints = parse(GOOD).expect("a well-formed hints file");
        let todo = hints.todo("loop").expect("the `loop` region");
        assert_eq!(
            todo.goal,
            Goal {
                text: "Done when: every number is read, in order. Tests: `loops::reads_in_order`, \
                       `tests::stops_at_the_end`."
                    .to_string(),
                tests: vec![
                    "loops::reads_in_order".to_string(),
                    "tests::stops_at_the_end".to_string()
                ],
                line: 9,
            }
        );
        assert_eq!(todo.message(), todo.goal.text);
        let plain = GOOD.replace("**", "").replace(",\n`tests", " and `tests");
        let plain = parse(&plain).expect("plain labels and \"and\" read the same");
        let goal = &plain.todos[0].goal;
        assert_eq!(goal.tests, todo.goal.tests);
    }

    /// Files that the generator could not use are errors that say what is wrong, and where.
    #[test]
    fn unusable_files_are_errors() {
        let one_hint = GOOD.split("### Hint 2").next().unwrap_or_default();
        let cases = [
            (one_hint.to_string(), 5, "it needs at least two"),
            (
                GOOD.replace("### Hint 2", "### Hint 3"),
                17,
                "expected `### Hint 2`",
            ),
            (
                GOOD.replace("## loop:", "## loop"),
                5,
                "expected `## <region id>: <title>`",
            ),
            (
                GOOD.replace("The task.\n\n", ""),
                5,
                "has no task text besides its goal",
            ),
            (format!("stray\n{GOOD}"), 1, "text before the `# ` title"),
            (
                GOOD.replace("loop {}\n```\n", "loop {}\n"),
                21,
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

    /// A goal that is missing, misplaced, doubled, without tests, too long, or that repeats
    /// hint 1 is an error at its line.
    #[test]
    fn bad_goals_are_errors() {
        let goal = "**Done when:** every number is read, in order. **Tests:** `loops::reads_in_order`,\n`tests::stops_at_the_end`.";
        let cases = [
            (
                GOOD.replace(goal, "Read them all."),
                5,
                "region `loop` has no goal",
            ),
            (
                GOOD.replace("An introduction.", "Done when: intro. Tests: `a::b`."),
                3,
                "belongs to a region's task",
            ),
            (
                GOOD.replace("Like this:", "Done when: later. Tests: `a::b`."),
                19,
                "belongs to a region's task",
            ),
            (
                GOOD.replace("The task.", &format!("The task.\n\n{goal}")),
                12,
                "a second goal for region `loop` (the first is at line 9)",
            ),
            (
                GOOD.replace(
                    " **Tests:** `loops::reads_in_order`,\n`tests::stops_at_the_end`",
                    "",
                ),
                9,
                "the goal names no test",
            ),
            (
                GOOD.replace(
                    "**Tests:** `loops::reads_in_order`",
                    "**Tests:** `loops::reads_in_order` mostly",
                ),
                9,
                "after `Tests:` come only test names",
            ),
            (
                GOOD.replace("every number is read, in order.", ""),
                9,
                "the goal says nothing between",
            ),
            (
                GOOD.replace("every number is read, in order.", &"all read ".repeat(30)),
                9,
                "the goal says in 269 characters",
            ),
            (
                GOOD.replace(
                    "every number is read, in order.",
                    "you read in a loop, and all is well.",
                ),
                9,
                "the goal of region `loop` repeats hint 1",
            ),
        ];
        for (text, line, expected) in cases {
            let error = parse(&text).expect_err("a bad goal");
            assert!(
                error.line == line && error.message.contains(expected),
                "expected line {line}: {expected:?}, got {error:?}"
            );
        }
    }
}
