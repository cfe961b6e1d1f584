//! What each `cargo workshop` sub-command does. Each writes to `out` and returns whether it went
//! well (the process's exit status), so the tests can run them against a scratch workspace.

use std::{
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use similar::TextDiff;

use crate::{
    chapter::{self, Chapter},
    generate::{self, Exercise, File},
    hints,
    index::{self, Entry},
    run::{self, Report, Status},
    rust,
    style::Style,
};

/// The command line for a shell, to print.
fn workshop(style: Style, args: &str) -> String {
    style.command(&format!("cargo workshop {args}"))
}

/// `cargo workshop generate [--check]`: (re)writes the exercises, their book pages and the
/// starter test; with `check`, only says what is out of date.
pub fn generate(root: &Path, check: bool, style: Style, out: &mut dyn Write) -> io::Result<bool> {
    let generated = match generate::generate(root) {
        Ok(generated) => generated,
        Err(err) => {
            writeln!(out, "{} {err}", style.bad("cannot generate:"))?;
            return Ok(false);
        }
    };
    if check {
        let differences = match generate::differences(root, &generated) {
            Ok(differences) => differences,
            Err(err) => {
                writeln!(out, "{} {err}", style.bad("error:"))?;
                return Ok(false);
            }
        };
        for difference in &differences {
            writeln!(out, "{difference}")?;
        }
        if differences.is_empty() {
            writeln!(out, "{}", style.good("the generated files are up to date"))?;
        } else {
            writeln!(
                out,
                "run {} to bring them up to date",
                workshop(style, "generate")
            )?;
        }
        return Ok(differences.is_empty());
    }
    match generate::write(root, &generated) {
        Ok(changes) => {
            for change in &changes {
                writeln!(out, "{change}")?;
            }
            writeln!(
                out,
                "{} exercise(s) generated, {} file(s) changed",
                generated.exercises.len(),
                changes.len()
            )?;
            for (chapter, err) in &generated.errors {
                writeln!(
                    out,
                    "{} {err}",
                    style.bad(&format!("chapter {} has no exercise yet:", chapter.slug))
                )?;
            }
            Ok(generated.errors.is_empty())
        }
        Err(err) => {
            writeln!(out, "{} {err}", style.bad("error:"))?;
            Ok(false)
        }
    }
}

/// Reports `result`'s error on `out`; the command then ends with `Ok(false)`.
fn or_report<T>(
    result: Result<T, String>,
    style: Style,
    out: &mut dyn Write,
) -> io::Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(err) => {
            writeln!(out, "{} {err}", style.bad("error:"))?;
            Ok(None)
        }
    }
}

/// The chapter the participant named.
fn chapter_named(root: &Path, wanted: &str) -> Result<Chapter, String> {
    let chapters = chapter::discover(root)?;
    chapter::find(&chapters, wanted).cloned()
}

/// The exercise the participant named, generated from its chapter: its starter and solution
/// files, for the commands that write or compare them.
fn exercise_named(root: &Path, wanted: &str) -> Result<Exercise, String> {
    generate::exercise(root, &chapter_named(root, wanted)?)
}

/// The exercise the participant named, as the index describes it: enough for the commands that
/// only look (`hint`, `check`), without regenerating anything.
fn entry_named(root: &Path, wanted: &str) -> Result<Entry, String> {
    let chapter = chapter_named(root, wanted)?;
    index::read(root)?
        .into_iter()
        .find(|entry| entry.chapter == chapter)
        .ok_or_else(|| {
            format!(
                "exercise {} is not in {} yet: `cargo workshop generate` makes it",
                chapter.slug,
                index::PATH
            )
        })
}

/// The participant's copy of a generated file, if it is there.
fn on_disk(root: &Path, file: &File) -> Option<String> {
    fs::read_to_string(root.join(&file.path)).ok()
}

/// The doc comment of a scenario (`suite::name`), read from the stage-tests crate's source: the
/// sentence that says what the scenario proves.
pub fn scenario_doc(root: &Path, name: &str) -> Option<String> {
    let (suite, function) = name.split_once("::")?;
    let source = fs::read_to_string(root.join("tests/src").join(format!("{suite}.rs"))).ok()?;
    rust::doc_comment(&source, function)
}

/// Indents every line of `text` by `by` (blank lines stay empty).
fn indent(text: &str, by: &str) -> String {
    text.lines()
        .map(|line| {
            if line.trim().is_empty() {
                String::new()
            } else {
                format!("{by}{line}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A hint's Markdown for the terminal: code blocks lose their fences and are indented instead.
fn for_terminal(markdown: &str) -> String {
    let mut in_code = false;
    let mut lines = Vec::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code && !line.trim().is_empty() {
            lines.push(format!("    {line}"));
        } else {
            lines.push(line.to_string());
        }
    }
    lines.join("\n")
}

/// `cargo workshop check NN [FILTER]`: runs one exercise's stage tests and shows each failure
/// with what the scenario proves and why it failed.
pub fn check(
    root: &Path,
    wanted: &str,
    filter: Option<&str>,
    style: Style,
    out: &mut dyn Write,
) -> io::Result<bool> {
    let Some(chapter) = or_report(chapter_named(root, wanted), style, out)? else {
        return Ok(false);
    };
    let package = chapter.exercise_package();
    writeln!(
        out,
        "{} {}",
        style.bold(&format!("Exercise {}:", chapter.slug)),
        style.dim(&format!(
            "building and running its stage tests (cargo test -p {package} --test stage)"
        ))
    )?;
    out.flush()?;
    let report = run::stage_tests(root, &package, filter, style.colour);
    let passed = show_report(root, &chapter, &report, style, out)?;
    Ok(passed)
}

/// How many failures `check` explains in full; the rest are listed by name. The first few
/// usually share a cause, and a screenful of the same message hides the passing ones.
const FAILURE_DETAILS: usize = 6;

/// Prints a report of one exercise; returns whether everything passed.
fn show_report(
    root: &Path,
    chapter: &Chapter,
    report: &Report,
    style: Style,
    out: &mut dyn Write,
) -> io::Result<bool> {
    let number = chapter.number();
    match report {
        Report::CannotRun(err) => {
            writeln!(out, "{} {err}", style.bad("error:"))?;
            Ok(false)
        }
        Report::DidNotBuild(errors) => {
            writeln!(out, "{errors}")?;
            writeln!(
                out,
                "\n{} fix the errors above (they are the compiler's) and run {} again.",
                style.bad("Your code does not compile yet:"),
                workshop(style, &format!("check {number}"))
            )?;
            Ok(false)
        }
        Report::Ran { scenarios, panics } => {
            writeln!(out)?;
            let mut detailed = 0;
            let mut undetailed = 0;
            for scenario in scenarios {
                match scenario.status {
                    Status::Passed => {
                        writeln!(out, "  {} {}", style.good("pass"), scenario.name)?;
                    }
                    Status::Ignored => {
                        writeln!(out, "  {} {}", style.dim("skip"), style.dim(&scenario.name))?;
                    }
                    Status::Failed if detailed >= FAILURE_DETAILS => {
                        undetailed += 1;
                        writeln!(out, "  {} {}", style.bad("FAIL"), scenario.name)?;
                    }
                    Status::Failed => {
                        detailed += 1;
                        writeln!(
                            out,
                            "  {} {}",
                            style.bad("FAIL"),
                            style.bold(&scenario.name)
                        )?;
                        if let Some(doc) = scenario_doc(root, &scenario.name) {
                            writeln!(
                                out,
                                "{}",
                                style.dim(&indent(&format!("checks: {doc}"), "       "))
                            )?;
                        }
                        if let Some(message) = &scenario.message {
                            writeln!(out, "{}", indent(&format!("got:    {message}"), "       "))?;
                        }
                    }
                }
            }
            if undetailed > 0 {
                writeln!(
                    out,
                    "{}",
                    style.dim(&format!(
                        "  ({undetailed} more failures without details; {} shows one in full)",
                        workshop(style, &format!("check {number} <part of its name>"))
                    ))
                )?;
            }
            if !panics.is_empty() {
                writeln!(
                    out,
                    "\n{}",
                    style.warn("Your code panicked here while the tests ran:")
                )?;
                for panic in panics {
                    writeln!(out, "  {}: {}", panic.location, panic.message)?;
                }
            }
            let (passed, failed) = report.counts();
            writeln!(out)?;
            if report.all_passed() {
                writeln!(
                    out,
                    "{} all {passed} scenarios pass. {}",
                    style.good("Done:"),
                    match next_after(root, chapter) {
                        Some(next) => format!(
                            "Next: exercise {} ({}).",
                            next.slug,
                            workshop(style, &format!("check {}", next.number()))
                        ),
                        None => "That was the last exercise.".to_string(),
                    }
                )?;
                writeln!(
                    out,
                    "Compare with the chapter's version: {}",
                    workshop(style, &format!("diff {number}"))
                )?;
            } else if passed + failed == 0 {
                writeln!(
                    out,
                    "{}",
                    style.warn("No scenario ran (does the filter match any?)")
                )?;
            } else {
                writeln!(
                    out,
                    "{} of {} scenarios pass, {} fail. Stuck? {}",
                    passed,
                    passed + failed,
                    style.bad(&failed.to_string()),
                    workshop(style, &format!("hint {number}"))
                )?;
            }
            Ok(report.all_passed())
        }
    }
}

/// The chapter after `chapter`, if any.
fn next_after(root: &Path, chapter: &Chapter) -> Option<Chapter> {
    let chapters = chapter::discover(root).ok()?;
    chapters
        .into_iter()
        .find(|other| other.slug.as_str() > chapter.slug.as_str())
}

/// `cargo workshop`: every exercise's progress, found by running its stage tests now, and where
/// to continue. What it knows about each exercise besides the test results (its todos, its
/// untouched starter) comes from the index, so nothing is regenerated to print a line.
pub fn progress(root: &Path, style: Style, out: &mut dyn Write) -> io::Result<bool> {
    let Some(chapters) = or_report(chapter::discover(root), style, out)? else {
        return Ok(false);
    };
    let Some(entries) = or_report(index::read(root), style, out)? else {
        return Ok(false);
    };
    writeln!(
        out,
        "{}\n{}\n",
        style.bold("Fan-out workshop"),
        style
            .dim("Progress comes from running each exercise's stage tests now; nothing is stored.")
    )?;
    let width = chapters.iter().map(|c| c.slug.len()).max().unwrap_or(0);
    let mut continue_with: Option<(&Entry, Vec<String>)> = None;
    let mut all_done = true;
    for chapter in &chapters {
        write!(out, "  {:width$}  ", chapter.slug)?;
        out.flush()?;
        let Some(entry) = entries.iter().find(|entry| entry.chapter == *chapter) else {
            // A chapter without an exercise is the authors' business; one line is enough.
            writeln!(
                out,
                "{} `cargo workshop generate` makes it, or says why it cannot",
                style.bad("no exercise yet:")
            )?;
            all_done = false;
            continue;
        };
        let report = run::stage_tests(root, &chapter.exercise_package(), None, false);
        let left = entry.todos_left(root);
        let (passed, failed) = report.counts();
        let line = match &report {
            Report::CannotRun(err) => style.bad(err),
            Report::DidNotBuild(_) => style.bad("does not compile"),
            Report::Ran { .. } if report.all_passed() => format!(
                "{}  {passed:>2}/{:<2} scenarios pass",
                style.good(&format!("{:<11}", "done")),
                passed + failed
            ),
            Report::Ran { .. } => {
                let state = if entry.untouched(root) {
                    "not started"
                } else {
                    "in progress"
                };
                format!(
                    "{}  {passed:>2}/{:<2} scenarios pass, {}",
                    style.warn(&format!("{state:<11}")),
                    passed + failed,
                    style.bad(&format!("{failed} fail"))
                )
            }
        };
        let todo_note = if left.is_empty() || report.all_passed() {
            String::new()
        } else {
            style.dim(&format!("  ({} todo!() left)", left.len()))
        };
        writeln!(out, "{line}{todo_note}")?;
        if !report.all_passed() {
            all_done = false;
            if continue_with.is_none() {
                continue_with = Some((entry, left));
            }
        }
    }
    writeln!(out)?;
    match continue_with {
        None if all_done && !chapters.is_empty() => {
            writeln!(
                out,
                "{}",
                style.good("Every exercise passes its stage tests. Well done!")
            )?;
        }
        None => {}
        Some((entry, left)) => {
            let chapter = &entry.chapter;
            let number = chapter.number();
            let files: Vec<String> = entry
                .files_with_todos()
                .iter()
                .map(|file| chapter.exercise_dir().join(file).display().to_string())
                .collect();
            writeln!(
                out,
                "{}",
                style.bold(&format!("Continue with exercise {}:", chapter.slug))
            )?;
            writeln!(
                out,
                "  read   the chapter: {} (the book: {})",
                chapter.chapter_page().display(),
                style.command("cargo run -p fanout-book")
            )?;
            writeln!(out, "  task   {}", chapter.exercise_page().display())?;
            writeln!(
                out,
                "  edit   {}{}",
                files.join(", "),
                if left.is_empty() {
                    String::new()
                } else {
                    format!(" ({} todo!() left)", left.len())
                }
            )?;
            writeln!(
                out,
                "  check  {}",
                workshop(style, &format!("check {number}"))
            )?;
            writeln!(
                out,
                "  hint   {}",
                workshop(style, &format!("hint {number}"))
            )?;
            writeln!(
                out,
                "  try    {} and open http://127.0.0.1:3000",
                style.command(&format!("cargo run -p {}", chapter.exercise_package()))
            )?;
        }
    }
    Ok(all_done)
}

/// `cargo workshop hint NN [REGION] [LEVEL]`: one hint. Without a region, the first todo still
/// in the code (or the first todo, once all are gone); without a level, the first.
pub fn hint(
    root: &Path,
    wanted: &str,
    region: Option<&str>,
    level: Option<usize>,
    style: Style,
    out: &mut dyn Write,
) -> io::Result<bool> {
    let Some(entry) = or_report(entry_named(root, wanted), style, out)? else {
        return Ok(false);
    };
    let chapter = &entry.chapter;
    let number = chapter.number();
    let left = entry.todos_left(root);
    let chosen = match region {
        Some(id) => entry.todo(id),
        None => entry
            .todos
            .iter()
            .find(|todo| left.contains(&todo.id))
            .or_else(|| entry.todos.first()),
    };
    let Some(located) = chosen else {
        let ids: Vec<&str> = entry.todos.iter().map(|todo| todo.id.as_str()).collect();
        writeln!(
            out,
            "{} exercise {} has no todo {:?}; its todos are: {}",
            style.bad("error:"),
            chapter.slug,
            region.unwrap_or_default(),
            ids.join(", ")
        )?;
        return Ok(false);
    };
    let id = &located.id;
    let hints_path = chapter.hints_file();
    let hints = chapter::read(&root.join(&hints_path))
        .and_then(|text| hints::parse(&text).map_err(|err| err.at(&hints_path)));
    let Some(hints) = or_report(hints, style, out)? else {
        return Ok(false);
    };
    let Some(todo) = hints.todo(id) else {
        writeln!(
            out,
            "{} no hints for `{id}` in {}",
            style.bad("error:"),
            hints_path.display()
        )?;
        return Ok(false);
    };
    let levels = todo.levels.len();
    let level = level.unwrap_or(1);
    let Some(text) = level
        .checked_sub(1)
        .and_then(|index| todo.levels.get(index))
    else {
        writeln!(
            out,
            "{} `{id}` has hints 1 to {levels}, not {level}",
            style.bad("error:")
        )?;
        return Ok(false);
    };
    let place = format!("{}, fn {}", located.file.display(), located.function);
    let state = if left.contains(id) {
        "its todo!() is still in your code"
    } else {
        "you have replaced its todo!()"
    };
    writeln!(
        out,
        "{} {}",
        style.bold(&format!("{}: {}", id, todo.title)),
        style.dim(&format!("({place}; {state})"))
    )?;
    writeln!(out, "\n{}", indent(&todo.goal.text, "  "))?;
    writeln!(
        out,
        "\n{}\n",
        style.bold(&format!("Hint {level} of {levels}"))
    )?;
    writeln!(out, "{}\n", indent(&for_terminal(text), "  "))?;
    let region_arg = if region.is_some() || left.first() != Some(id) {
        format!(" {id}")
    } else {
        String::new()
    };
    if level < levels {
        writeln!(
            out,
            "More: {}",
            workshop(style, &format!("hint {number}{region_arg} {}", level + 1))
        )?;
    } else {
        writeln!(
            out,
            "That was the last hint. The book's exercise page also shows the chapter's code; {} compares yours with it.",
            workshop(style, &format!("diff {number}"))
        )?;
    }
    let others: Vec<&str> = entry
        .todos
        .iter()
        .map(|todo| todo.id.as_str())
        .filter(|other| other != id)
        .collect();
    if !others.is_empty() {
        writeln!(
            out,
            "Other todos here: {} ({})",
            others.join(", "),
            workshop(style, &format!("hint {number} <todo> [level]"))
        )?;
    }
    Ok(true)
}

/// `cargo workshop reset NN`: the exercise back to its starter. What the participant had is
/// copied to `target/workshop-backup/` first, so a reset by mistake loses nothing.
pub fn reset(root: &Path, wanted: &str, style: Style, out: &mut dyn Write) -> io::Result<bool> {
    replace(root, wanted, Version::Starter, style, out)
}

/// `cargo workshop solve NN`: the exercise as the chapter wrote it, for a participant who wants
/// to move on (or a host showing the way). Backed up like `reset`.
pub fn solve(root: &Path, wanted: &str, style: Style, out: &mut dyn Write) -> io::Result<bool> {
    replace(root, wanted, Version::Solution, style, out)
}

/// Which version of an exercise to put in place.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Version {
    Starter,
    Solution,
}

/// Replaces the participant's exercise with `version`, after copying whatever differs from it
/// to a backup; files the version does not have are backed up and removed.
fn replace(
    root: &Path,
    wanted: &str,
    version: Version,
    style: Style,
    out: &mut dyn Write,
) -> io::Result<bool> {
    let Some(exercise) = or_report(exercise_named(root, wanted), style, out)? else {
        return Ok(false);
    };
    let (files, name) = match version {
        Version::Starter => (&exercise.starter, "the starter"),
        Version::Solution => (&exercise.solution, "the chapter's version"),
    };
    let chapter = &exercise.chapter;
    let dir = root.join(chapter.exercise_dir());
    let present = chapter::files_under(&dir)?;
    let wanted_paths: Vec<PathBuf> = files
        .iter()
        .filter_map(|file| file.path.strip_prefix(chapter.exercise_dir()).ok())
        .map(Path::to_path_buf)
        .collect();
    let changed: Vec<&PathBuf> = present
        .iter()
        .filter(|file| {
            let target = files
                .iter()
                .find(|f| f.path == chapter.exercise_dir().join(file));
            let current = fs::read_to_string(dir.join(file)).ok();
            match target {
                Some(target) => current.as_deref() != Some(target.contents.as_str()),
                None => true,
            }
        })
        .collect();
    let missing = wanted_paths.iter().any(|file| !present.contains(file));
    if changed.is_empty() && !missing {
        writeln!(
            out,
            "Exercise {} is {name} already; nothing to change.",
            chapter.slug
        )?;
        return Ok(true);
    }
    if !changed.is_empty() {
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        let backup = root
            .join("target/workshop-backup")
            .join(format!("{}-{stamp}", chapter.slug));
        for file in &changed {
            let to = backup.join(file);
            if let Some(parent) = to.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::copy(dir.join(file), &to)?;
        }
        writeln!(
            out,
            "Your version of {} file(s) is saved in {}",
            changed.len(),
            backup.strip_prefix(root).unwrap_or(&backup).display()
        )?;
        for file in &changed {
            if !wanted_paths.contains(file) {
                fs::remove_file(dir.join(file))?;
            }
        }
    }
    for file in files {
        if let Err(err) = generate::write_file(&root.join(&file.path), &file.contents) {
            writeln!(out, "{} {err}", style.bad("error:"))?;
            return Ok(false);
        }
    }
    writeln!(
        out,
        "{} exercise {} is {name} now. {}",
        style.good("Done:"),
        chapter.slug,
        workshop(style, &format!("check {}", chapter.number()))
    )?;
    Ok(true)
}

/// `cargo workshop diff NN`: the participant's files against the chapter's, as the exercise
/// reads when finished the chapter's way (`-` yours, `+` the chapter's).
pub fn diff(root: &Path, wanted: &str, style: Style, out: &mut dyn Write) -> io::Result<bool> {
    let Some(exercise) = or_report(exercise_named(root, wanted), style, out)? else {
        return Ok(false);
    };
    let chapter = &exercise.chapter;
    let mut same = true;
    for reference in &exercise.solution {
        let yours = on_disk(root, reference).unwrap_or_default();
        if yours == reference.contents {
            continue;
        }
        same = false;
        let relative = reference
            .path
            .strip_prefix(chapter.exercise_dir())
            .unwrap_or(&reference.path);
        let text_diff = TextDiff::from_lines(&yours, &reference.contents);
        let unified = text_diff
            .unified_diff()
            .context_radius(3)
            .header(
                &format!("{} (yours)", reference.path.display()),
                &format!(
                    "{} (the chapter's)",
                    chapter.chapter_dir().join(relative).display()
                ),
            )
            .to_string();
        for line in unified.lines() {
            let painted = if line.starts_with("+++") || line.starts_with("---") {
                style.bold(line)
            } else if line.starts_with('+') {
                style.good(line)
            } else if line.starts_with('-') {
                style.bad(line)
            } else if line.starts_with("@@") {
                style.command(line)
            } else {
                line.to_string()
            };
            writeln!(out, "{painted}")?;
        }
    }
    if same {
        writeln!(
            out,
            "Your exercise {} reads exactly like the chapter's code.",
            chapter.slug
        )?;
    }
    Ok(true)
}
