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
//! Headings inside fenced code blocks are code, not structure.

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

/// Parses a hints file. Every error names the line and what is expected there.
pub fn parse(text: &str) -> Result<Hints, String> {
    let mut title: Option<String> = None;
    let mut intro = Vec::new();
    let mut todos: Vec<Todo> = Vec::new();
    // The Markdown collected since the last heading.
    let mut block: Vec<&str> = Vec::new();
    let mut in_code = false;

    // Where the block being collected belongs.
    enum Into {
        Nothing,
        Intro,
        Task,
        Level,
    }
    let mut into = Into::Nothing;

    fn flush(into: &Into, block: &mut Vec<&str>, intro: &mut Vec<String>, todos: &mut [Todo]) {
        let text = tidy(block);
        block.clear();
        match into {
            Into::Nothing => {}
            Into::Intro => intro.push(text),
            Into::Task => {
                if let Some(todo) = todos.last_mut() {
                    todo.task = text;
                }
            }
            Into::Level => {
                if let Some(level) = todos.last_mut().and_then(|todo| todo.levels.last_mut()) {
                    *level = text;
                }
            }
        }
    }

    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        }
        let heading = if in_code { None } else { heading(line) };
        let Some((depth, heading)) = heading else {
            if matches!(into, Into::Nothing) && !line.trim().is_empty() {
                return Err(format!("line {number}: text before the `# ` title"));
            }
            block.push(line);
            continue;
        };
        flush(&into, &mut block, &mut intro, &mut todos);
        match depth {
            1 => {
                if title.is_some() {
                    return Err(format!("line {number}: a second `# ` title"));
                }
                title = Some(heading.to_string());
                into = Into::Intro;
            }
            2 => {
                let (id, todo_title) = heading.split_once(':').ok_or_else(|| {
                    format!("line {number}: expected `## <region id>: <title>`, got `## {heading}`")
                })?;
                let id = id.trim().trim_matches('`');
                if todos.iter().any(|todo| todo.id == id) {
                    return Err(format!("line {number}: region `{id}` has hints already"));
                }
                todos.push(Todo {
                    id: id.to_string(),
                    title: todo_title.trim().to_string(),
                    task: String::new(),
                    levels: Vec::new(),
                });
                into = Into::Task;
            }
            3 => {
                let Some(todo) = todos.last_mut() else {
                    return Err(format!("line {number}: a hint before any `## ` region"));
                };
                let expected = format!("Hint {}", todo.levels.len() + 1);
                if heading != expected {
                    return Err(format!(
                        "line {number}: expected `### {expected}` (hints are numbered from 1 in order), got `### {heading}`"
                    ));
                }
                todo.levels.push(String::new());
                into = Into::Level;
            }
            _ => {
                return Err(format!(
                    "line {number}: only `#`, `##` and `###` headings have a meaning here"
                ));
            }
        }
    }
    if in_code {
        return Err("a code block never ends".to_string());
    }
    flush(&into, &mut block, &mut intro, &mut todos);

    let title = title.ok_or("no `# ` title")?;
    if todos.is_empty() {
        return Err("no `## <region id>: <title>` section".to_string());
    }
    for todo in &todos {
        if todo.levels.len() < 2 {
            return Err(format!(
                "region `{}` has {} hint(s); it needs at least two, the last nearly the answer",
                todo.id,
                todo.levels.len()
            ));
        }
        if let Some(empty) = todo.levels.iter().position(String::is_empty) {
            return Err(format!("region `{}`: hint {} is empty", todo.id, empty + 1));
        }
        if todo.task.is_empty() {
            return Err(format!("region `{}` has no task text", todo.id));
        }
        let first = &todo.levels[0];
        if first.contains("```") || first.contains("\n\n") {
            return Err(format!(
                "region `{}`: hint 1 becomes the todo!'s message, so it must be one paragraph of text",
                todo.id
            ));
        }
        let length = todo.message().chars().count();
        if length > MESSAGE_LIMIT {
            return Err(format!(
                "region `{}`: hint 1 is {length} characters; as the todo!'s message it may have {MESSAGE_LIMIT}",
                todo.id
            ));
        }
    }
    Ok(Hints {
        title,
        intro: intro.join("\n\n"),
        todos,
    })
}

/// `Some((depth, text))` for an ATX heading (`#`, `##`, …).
fn heading(line: &str) -> Option<(usize, &str)> {
    let depth = line.bytes().take_while(|b| *b == b'#').count();
    let rest = line.get(depth..)?;
    (depth > 0 && rest.starts_with(' ')).then(|| (depth, rest.trim()))
}

/// The block's lines without blank lines at either end.
fn tidy(block: &[&str]) -> String {
    let start = block.iter().position(|line| !line.trim().is_empty());
    let end = block.iter().rposition(|line| !line.trim().is_empty());
    match (start, end) {
        (Some(start), Some(end)) => block[start..=end].join("\n"),
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

    /// Files that the generator could not use are errors that say what is wrong.
    #[test]
    fn unusable_files_are_errors() {
        let one_hint = GOOD.split("### Hint 2").next().unwrap_or_default();
        let cases = [
            (one_hint.to_string(), "it needs at least two"),
            (
                GOOD.replace("### Hint 2", "### Hint 3"),
                "expected `### Hint 2`",
            ),
            (
                GOOD.replace("## loop:", "## loop"),
                "expected `## <region id>: <title>`",
            ),
            (GOOD.replace("The task.", ""), "has no task text"),
            (
                GOOD.replace("Read in a\nloop.", &"long ".repeat(30)),
                "as the todo!'s message it may have",
            ),
            (
                format!("stray\n{GOOD}"),
                "line 1: text before the `# ` title",
            ),
            (
                GOOD.replace("Read in a\nloop.", "One.\n\nTwo."),
                "must be one paragraph",
            ),
        ];
        for (text, expected) in cases {
            let error = parse(&text).expect_err("an unusable hints file");
            assert!(
                error.contains(expected),
                "expected an error containing {expected:?}, got {error:?}"
            );
        }
    }
}
