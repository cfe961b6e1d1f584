//! How much of an exercise's answer a chapter page shows before its exercise.
//!
//! A chapter's *answer lines* are the lines inside its `// ANCHOR: exercise-*` regions: what the
//! workshop replaces with `todo!()`. A page gives them away when a listing shows them, unfolded,
//! above its "Your turn" heading. [`measure`] follows the page's `{{#include}}`s (and the
//! includes of included Markdown files) line by line, so it knows exactly which source lines each
//! listing shows; a listing inside `<details>` is folded and does not count. Lines of a code block
//! written into the page itself count when they equal an answer line.

use std::{
    collections::{BTreeSet, HashMap},
    fs,
    path::{Component, Path, PathBuf},
};

use anyhow::{Context, Result, bail};

/// The heading that opens a chapter's exercise.
pub const YOUR_TURN: &str = "Your turn";

/// One source line: the file (relative to the workspace) and its 1-based number.
pub type SourceLine = (PathBuf, usize);

/// What [`measure`] found for one page.
#[derive(Debug, Clone)]
pub struct Measure {
    /// The chapter crate the page shows, e.g. `chapters/03-broker`.
    pub chapter: PathBuf,
    /// Every answer line of that chapter.
    pub answer_lines: BTreeSet<SourceLine>,
    /// The answer lines shown unfolded before the exercise heading.
    pub visible: BTreeSet<SourceLine>,
    /// Whether the page has the exercise heading at all.
    pub has_exercise_heading: bool,
}

impl Measure {
    /// The share of answer lines shown before the exercise, in percent (0 when there are none).
    pub fn percent(&self) -> f64 {
        if self.answer_lines.is_empty() {
            return 0.0;
        }
        100.0 * self.visible.len() as f64 / self.answer_lines.len() as f64
    }
}

/// Measures `page` (a Markdown file of the book) against the chapter crate it includes code from,
/// counting listings up to the first heading whose text starts with `exercise_heading` (the
/// whole page when there is none). `Ok(None)` for a page that includes no chapter's code.
pub fn measure(workspace: &Path, page: &Path, exercise_heading: &str) -> Result<Option<Measure>> {
    let text =
        fs::read_to_string(page).with_context(|| format!("cannot read {}", page.display()))?;
    let Some(chapter) = chapter_of(&text) else {
        return Ok(None);
    };
    let answer_lines = answer_lines(workspace, &chapter)?;
    let mut answer_texts: HashMap<String, Vec<SourceLine>> = HashMap::new();
    for line in &answer_lines {
        let text = source_line(workspace, line)?;
        answer_texts
            .entry(text.trim().to_string())
            .or_default()
            .push(line.clone());
    }

    let mut walker = Walker {
        workspace,
        shown: BTreeSet::new(),
        literal: Vec::new(),
        details_depth: 0,
        in_fence: false,
        stopped: false,
        exercise_heading,
    };
    walker.walk(&text, page.parent().unwrap_or(Path::new(".")), 0)?;
    let has_exercise_heading = walker.stopped;

    let mut visible: BTreeSet<SourceLine> = walker
        .shown
        .iter()
        .filter(|line| answer_lines.contains(*line))
        .cloned()
        .collect();
    // A line typed into the page counts once for an answer line with the same text.
    for literal in &walker.literal {
        if let Some(candidates) = answer_texts.get(literal.trim())
            && let Some(line) = candidates.iter().find(|line| !visible.contains(*line))
        {
            visible.insert(line.clone());
        }
    }
    Ok(Some(Measure {
        chapter,
        answer_lines,
        visible,
        has_exercise_heading,
    }))
}

/// The chapter crate a page includes code from: the first `chapters/NN-name` its includes name.
pub fn chapter_of(markdown: &str) -> Option<PathBuf> {
    markdown.lines().find_map(|line| {
        let start = line.find("{{#")?;
        let (path, _) = parse_include(&line[start..])?;
        let mut components = Path::new(&path)
            .components()
            .skip_while(|component| matches!(component, Component::ParentDir | Component::CurDir));
        match (components.next(), components.next()) {
            (Some(Component::Normal(first)), Some(Component::Normal(name)))
                if first == "chapters" =>
            {
                Some(Path::new("chapters").join(name))
            }
            _ => None,
        }
    })
}

/// Every line inside an `exercise-*` region of the chapter's `src/` (blank lines and the marker
/// lines themselves left out).
pub fn answer_lines(workspace: &Path, chapter: &Path) -> Result<BTreeSet<SourceLine>> {
    let mut files = Vec::new();
    rust_files(&workspace.join(chapter).join("src"), &mut files)?;
    let mut lines = BTreeSet::new();
    for file in files {
        let text =
            fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
        let relative = file.strip_prefix(workspace).unwrap_or(&file).to_path_buf();
        let mut inside = false;
        for (index, line) in text.lines().enumerate() {
            if let Some(name) = marker(line, "ANCHOR:") {
                inside |= name.starts_with("exercise-");
                continue;
            }
            if let Some(name) = marker(line, "ANCHOR_END:") {
                if name.starts_with("exercise-") {
                    inside = false;
                }
                continue;
            }
            if inside && !line.trim().is_empty() {
                lines.insert((relative.clone(), index + 1));
            }
        }
    }
    Ok(lines)
}

fn rust_files(dir: &Path, into: &mut Vec<PathBuf>) -> Result<()> {
    let entries = fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            rust_files(&path, into)?;
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            into.push(path);
        }
    }
    into.sort();
    Ok(())
}

fn source_line(workspace: &Path, (file, number): &SourceLine) -> Result<String> {
    let text = fs::read_to_string(workspace.join(file))?;
    Ok(text
        .lines()
        .nth(number.saturating_sub(1))
        .unwrap_or_default()
        .to_string())
}

/// The anchor name of a marker line (`// ANCHOR: name`), as mdBook recognises them.
fn marker<'a>(line: &'a str, keyword: &str) -> Option<&'a str> {
    // `ANCHOR_END:` does not contain `ANCHOR:`, so the two keywords never match each other.
    let at = line.find(keyword)?;
    let name = line[at + keyword.len()..].trim();
    let end = name
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(name.len());
    Some(&name[..end])
}

/// `{{#include path}}`, `{{#include path:anchor}}`, `{{#include path:2:10}}` (and
/// `rustdoc_include`): the path and what follows it, if any.
fn parse_include(text: &str) -> Option<(String, Option<String>)> {
    let rest = text
        .strip_prefix("{{#include ")
        .or_else(|| text.strip_prefix("{{#rustdoc_include "))?;
    let inner = rest[..rest.find("}}")?].trim();
    match inner.split_once(':') {
        Some((path, selector)) => Some((path.to_string(), Some(selector.to_string()))),
        None => Some((inner.to_string(), None)),
    }
}

/// Reads a page line by line, following includes, and notes what it shows unfolded.
struct Walker<'a> {
    workspace: &'a Path,
    /// Source lines of `.rs` files shown by includes.
    shown: BTreeSet<SourceLine>,
    /// Lines of code blocks written into the page (or an included Markdown file).
    literal: Vec<String>,
    details_depth: usize,
    in_fence: bool,
    stopped: bool,
    exercise_heading: &'a str,
}

impl Walker<'_> {
    fn walk(&mut self, markdown: &str, dir: &Path, depth: usize) -> Result<()> {
        if depth > 8 {
            bail!("includes nested more than 8 deep");
        }
        for line in markdown.lines() {
            if self.stopped {
                return Ok(());
            }
            let trimmed = line.trim_start();
            if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
                self.in_fence = !self.in_fence;
                continue;
            }
            if !self.in_fence {
                if trimmed.starts_with('#')
                    && trimmed
                        .trim_start_matches('#')
                        .trim()
                        .starts_with(self.exercise_heading)
                {
                    self.stopped = true;
                    return Ok(());
                }
                self.details_depth += line.matches("<details").count();
                self.details_depth = self
                    .details_depth
                    .saturating_sub(line.matches("</details>").count());
            }
            if self.details_depth > 0 {
                continue;
            }
            if let Some(start) = line.find("{{#")
                && let Some((path, selector)) = parse_include(&line[start..])
            {
                self.include(dir, &path, selector.as_deref(), depth)?;
                continue;
            }
            if self.in_fence {
                self.literal.push(line.to_string());
            }
        }
        Ok(())
    }

    fn include(
        &mut self,
        dir: &Path,
        path: &str,
        selector: Option<&str>,
        depth: usize,
    ) -> Result<()> {
        let file = dir.join(path);
        let text = fs::read_to_string(&file)
            .with_context(|| format!("cannot read included {}", file.display()))?;
        let lines = selected_lines(&text, selector);
        if file.extension().is_some_and(|ext| ext == "md") {
            let selected: Vec<&str> = lines
                .iter()
                .map(|&number| text.lines().nth(number - 1).unwrap_or_default())
                .collect();
            let nested_dir = file.parent().unwrap_or(dir).to_path_buf();
            return self.walk(&selected.join("\n"), &nested_dir, depth + 1);
        }
        let canonical = normalise(&file);
        let relative = canonical
            .strip_prefix(normalise(self.workspace))
            .unwrap_or(&canonical)
            .to_path_buf();
        for number in lines {
            self.shown.insert((relative.clone(), number));
        }
        Ok(())
    }
}

/// The 1-based numbers of the lines an include shows: the whole file, an anchor's inside, or a
/// range, without mdBook's marker lines.
fn selected_lines(text: &str, selector: Option<&str>) -> Vec<usize> {
    let all: Vec<&str> = text.lines().collect();
    let is_marker = |line: &str| line.contains("ANCHOR:") || line.contains("ANCHOR_END:");
    let numbered = |range: std::ops::Range<usize>| -> Vec<usize> {
        range
            .filter(|&index| all.get(index).is_some_and(|line| !is_marker(line)))
            .map(|index| index + 1)
            .collect()
    };
    let Some(selector) = selector else {
        return numbered(0..all.len());
    };
    let parts: Vec<&str> = selector.split(':').collect();
    let number = |text: &str| text.trim().parse::<usize>().ok();
    match parts.as_slice() {
        [anchor] if number(anchor).is_none() => {
            let anchor = anchor.trim();
            let start = all
                .iter()
                .position(|line| marker(line, "ANCHOR:") == Some(anchor));
            let Some(start) = start else {
                return Vec::new();
            };
            let end = all
                .iter()
                .skip(start + 1)
                .position(|line| marker(line, "ANCHOR_END:") == Some(anchor))
                .map_or(all.len(), |offset| start + 1 + offset);
            numbered(start + 1..end)
        }
        [line] => number(line).map_or_else(Vec::new, |n| numbered(n - 1..n)),
        [from, to] => {
            let from = number(from).unwrap_or(1).max(1);
            let to = number(to).unwrap_or(all.len()).min(all.len());
            numbered(from - 1..to)
        }
        _ => Vec::new(),
    }
}

/// `a/b/../c` as `a/c`, without touching the file system.
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_anchor_selects_the_lines_between_its_markers_without_nested_markers() {
        let text =
            "a\n// ANCHOR: x\nb\n// ANCHOR: inner\nc\n// ANCHOR_END: inner\n// ANCHOR_END: x\nd\n";
        assert_eq!(selected_lines(text, Some("x")), vec![3, 5]);
        assert_eq!(selected_lines(text, None), vec![1, 3, 5, 8]);
        assert_eq!(selected_lines(text, Some("2:3")), vec![3]);
    }

    #[test]
    fn the_chapter_is_read_from_the_first_include_of_a_chapter() {
        let page = "# x\n```rust\n{{#include ../../chapters/03-broker/src/lib.rs:app}}\n```\n";
        assert_eq!(chapter_of(page), Some(PathBuf::from("chapters/03-broker")));
        assert_eq!(chapter_of("{{#include exercises/01-echo.md}}"), None);
    }
}
