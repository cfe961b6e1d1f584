//! The generator: from each chapter crate and its hints file, the exercise crate, the exercise's
//! book page, and the test that proves each starter fails. Everything here is computed in memory,
//! so the same code writes the files (`cargo workshop generate`) and checks that the committed
//! ones are up to date (the workshop's tests).

use std::{
    collections::BTreeSet,
    fs,
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use crate::{
    chapter::{self, Chapter},
    hints::{self, Hints},
    index, manifest,
    regions::{self, Piece, Region},
    rust,
};

/// A file the generator writes, at `path` relative to the workspace root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub path: PathBuf,
    pub contents: String,
}

/// A region and the file of the crate it is in (`src/lib.rs`).
#[derive(Debug, Clone)]
pub struct Located {
    pub file: PathBuf,
    pub region: Region,
}

/// One chapter's exercise, in both of its forms.
#[derive(Debug, Clone)]
pub struct Exercise {
    pub chapter: Chapter,
    pub hints: Hints,
    /// Every region, in file order and then line order.
    pub regions: Vec<Located>,
    /// The exercise crate as the participant gets it: `todo!`s where the regions are.
    pub starter: Vec<File>,
    /// The exercise crate as it reads when finished the chapter's way (for `diff`).
    pub solution: Vec<File>,
    /// The suites the chapter's `tests/stage.rs` runs, e.g. `stage_tests::echo::SCENARIOS`.
    pub suites: Vec<String>,
    /// What else its target sets, and the helpers that needs, renamed for the exercise (see
    /// [`rust::StageTest`]): the starter test starts its servers the same way.
    pub target_fields: Vec<String>,
    pub helpers: Vec<String>,
}

impl Exercise {
    /// The hints for a region, which [`exercise`] has made sure exist.
    pub fn todo(&self, id: &str) -> Option<&hints::Todo> {
        self.hints.todo(id)
    }

    /// The starter's files with regions, relative to the crate (`src/lib.rs`), in order.
    pub fn files_with_todos(&self) -> Vec<&Path> {
        let mut files: Vec<&Path> = Vec::new();
        for located in &self.regions {
            if !files.contains(&located.file.as_path()) {
                files.push(&located.file);
            }
        }
        files
    }

    /// The exact `todo!(..)` call text the starter has for region `id` (to find it again in a
    /// participant's file).
    pub fn todo_literal(&self, id: &str) -> Option<String> {
        self.todo(id)
            .map(|todo| regions::string_literal(&todo.message()))
    }
}

/// Renames the chapter's package and crate to the exercise's, wherever they appear in a source
/// file (`use ch01_echo::..`, `target!(ch01_echo, "ch01-echo")`, doc comments). The manifest is
/// renamed by [`manifest::exercise_manifest`] instead, which touches only the package's name.
fn rename(text: &str, chapter: &Chapter) -> String {
    text.replace(&chapter.chapter_package(), &chapter.exercise_package())
        .replace(&chapter.chapter_crate(), &chapter.exercise_crate())
}

/// The first line of every banner.
fn origin_line(chapter: &Chapter, comment: &str) -> String {
    format!(
        "{comment} Fan-out workshop, exercise {slug}: generated from chapters/{slug} by `cargo workshop generate`.\n",
        slug = chapter.slug
    )
}

fn count(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("the {one}")
    } else {
        format!("the {n} {many}")
    }
}

/// The lines above a Rust file of the exercise, saying what (not) to edit in it.
fn rust_banner(chapter: &Chapter, file: &Path, todos_here: usize, todo_files: &[&Path]) -> String {
    let number = chapter.number();
    let mut banner = origin_line(chapter, "//");
    banner.push_str("//\n");
    if file.starts_with("tests") {
        banner.push_str(&format!(
            "// Do not edit: these are the chapter's stage tests, only renamed for this crate. Run them\n\
             // with `cargo workshop check {number}` (or `cargo test -p {package} --no-fail-fast`).\n",
            package = chapter.exercise_package()
        ));
    } else if todos_here > 0 {
        banner.push_str(&format!(
            "// Your part: replace {} in this file with working code. The rest already works;\n\
             // leave it as it is. `cargo workshop check {number}` runs the stage tests,\n\
             // `cargo workshop hint {number}` gives a hint, `cargo workshop reset {number}` starts over.\n",
            count(todos_here, "`todo!(..)`", "`todo!(..)`s")
        ));
    } else {
        let places: Vec<String> = todo_files
            .iter()
            .map(|file| file.display().to_string())
            .collect();
        banner.push_str(&format!(
            "// Nothing to do in this file: it is the finished part of the exercise. Your part is in\n\
             // {}.\n",
            places.join(", ")
        ));
    }
    banner
}

/// The allow that keeps a starter quiet under `-D warnings`: the `todo!`s leave variables,
/// imports and helpers unused and the code after them unreachable.
/// `clippy::todo` is there for chapters that deny it (chapters 06 and 07 deny every way to panic).
const ALLOW: &str = "\
// The allow below keeps the compiler quiet about what the todo!s leave unused. Once the stage
// tests pass, delete it and these two lines, to hear the compiler's warnings about your code again.
#![allow(
    clippy::todo,
    dead_code,
    unreachable_code,
    unused_imports,
    unused_mut,
    unused_variables
)]
";

/// `text` with [`ALLOW`] after its leading inner attributes: a later lint attribute overrides an
/// earlier one, so the allow must come after a chapter's own `#![deny(..)]`. `None` when the file
/// has no inner attribute (the allow then goes at the top). The text must parse: it is a file of
/// the exercise, which a participant has to be able to compile.
fn after_inner_attributes(text: &str) -> Result<Option<String>, crate::LineError> {
    let file = rust::parse_file(text)?;
    let Some(end) = rust::inner_attributes_end(&file) else {
        return Ok(None);
    };
    let mut out = String::new();
    for (index, line) in text.lines().enumerate() {
        out.push_str(line);
        out.push('\n');
        if index + 1 == end {
            out.push_str(ALLOW);
        }
    }
    Ok(Some(out))
}

/// Whether `file` (relative to the crate) is the root of the library, and so the place for a
/// crate-wide `#![allow]` that covers every module of the library.
fn is_library_root(file: &Path) -> bool {
    file == Path::new("src/lib.rs")
}

/// Whether `file` belongs to the library crate (not a binary, not a test).
fn in_library(file: &Path) -> bool {
    file.starts_with("src") && file != Path::new("src/main.rs") && !file.starts_with("src/bin")
}

/// A chapter crate's file, read and scanned.
struct Source {
    file: PathBuf,
    text: String,
    pieces: Option<Vec<Piece>>,
}

/// Builds the exercise for `chapter`, checking as it goes that the chapter can be one: it has
/// regions, every region has hints, every hint section has a region, and its stage test has the
/// shape the starter test needs.
pub fn exercise(root: &Path, chapter: &Chapter) -> Result<Exercise, String> {
    let chapter_dir = root.join(chapter.chapter_dir());
    let hints_path = chapter.hints_file();
    let hints_text = fs::read_to_string(root.join(&hints_path)).map_err(|err| {
        format!(
            "cannot read {} ({err}): every chapter needs a hints file; workshop/README.md says \
             how to write one",
            hints_path.display()
        )
    })?;
    let hints = hints::parse(&hints_text).map_err(|err| err.at(&hints_path))?;

    let files = chapter::files_under(&chapter_dir)
        .map_err(|err| format!("cannot list {}: {err}", chapter_dir.display()))?;
    let mut sources = Vec::new();
    let mut located = Vec::new();
    for file in files {
        let original = chapter::read(&chapter_dir.join(&file))?;
        let text = if file == Path::new("Cargo.toml") {
            manifest::exercise_manifest(&original, chapter)?
        } else {
            rename(&original, chapter)
        };
        let pieces = if file.extension().is_some_and(|ext| ext == "rs") {
            let pieces =
                regions::scan(&text).map_err(|err| err.at(&chapter.chapter_dir().join(&file)))?;
            for region in regions::regions(&pieces) {
                located.push(Located {
                    file: file.clone(),
                    region: region.clone(),
                });
            }
            Some(pieces)
        } else {
            None
        };
        sources.push(Source { file, text, pieces });
    }

    if located.is_empty() {
        return Err(format!(
            "chapters/{} has no teaching regions: mark the code participants write with \
             `// ANCHOR: exercise-<id>` … `// ANCHOR_END: exercise-<id>` (see workshop/README.md)",
            chapter.slug
        ));
    }
    let mut ids = BTreeSet::new();
    for Located { file, region } in &located {
        let place = chapter.chapter_dir().join(file);
        if !ids.insert(region.id.as_str()) {
            return Err(format!(
                "{}:{}: a second region `{}` in this chapter",
                place.display(),
                region.line,
                region.id
            ));
        }
        if hints.todo(&region.id).is_none() {
            return Err(format!(
                "{}:{}: region `{}` has no hints: add `## {}: <title>` with at least two hints to {}",
                place.display(),
                region.line,
                region.id,
                region.id,
                hints_path.display()
            ));
        }
    }
    if let Some(orphan) = hints
        .todos
        .iter()
        .find(|todo| !ids.contains(todo.id.as_str()))
    {
        return Err(format!(
            "{}: hints for `{}`, but chapters/{} has no region `exercise-{}`",
            hints_path.display(),
            orphan.id,
            chapter.slug,
            orphan.id
        ));
    }

    let todo_files: Vec<&Path> = {
        let mut files: Vec<&Path> = Vec::new();
        for Located { file, .. } in &located {
            if !files.contains(&file.as_path()) {
                files.push(file);
            }
        }
        files
    };
    let library_has_todos = todo_files.iter().any(|file| in_library(file));
    let message = |id: &str| hints.todo(id).map(hints::Todo::message).unwrap_or_default();

    let mut starter = Vec::new();
    let mut solution = Vec::new();
    let format = |text: String, file: &Path| {
        rustfmt(root, &text)
            .map_err(|err| format!("{}: {err}", chapter.exercise_dir().join(file).display()))
    };
    for source in &sources {
        let path = chapter.exercise_dir().join(&source.file);
        let (starter_text, solution_text) = match &source.pieces {
            Some(pieces) => {
                let here = regions::regions(pieces).count();
                let head = rust_banner(chapter, &source.file, here, &todo_files);
                let needs_allow = (is_library_root(&source.file) && library_has_todos)
                    || (!in_library(&source.file) && here > 0);
                let with_allow = |body: String| {
                    let place = chapter.exercise_dir().join(&source.file);
                    let parsed = after_inner_attributes(&body).map_err(|err| {
                        format!(
                            "{}: the generated code does not parse: {}",
                            place.display(),
                            err.message
                        )
                    })?;
                    Ok::<String, String>(match parsed {
                        Some(body) if needs_allow => format!("{head}\n{body}"),
                        None if needs_allow => format!("{head}//\n{ALLOW}\n{body}"),
                        _ => format!("{head}\n{body}"),
                    })
                };
                (
                    format(with_allow(regions::starter(pieces, message))?, &source.file)?,
                    format(with_allow(regions::solution(pieces))?, &source.file)?,
                )
            }
            None if source.file == Path::new("Cargo.toml") => {
                let mut head = origin_line(chapter, "#");
                head.push_str(&format!(
                    "# Do not edit; `cargo workshop reset {}` restores it.\n\n",
                    chapter.number()
                ));
                let text = format!("{head}{}", source.text);
                (text.clone(), text)
            }
            None => (source.text.clone(), source.text.clone()),
        };
        starter.push(File {
            path: path.clone(),
            contents: starter_text,
        });
        solution.push(File {
            path,
            contents: solution_text,
        });
    }

    let stage_path = chapter_dir.join("tests/stage.rs");
    let stage = chapter::read(&stage_path)?;
    let rust::StageTest {
        suites,
        fields,
        helpers,
    } = rust::stage_test(&stage, chapter)
        .map_err(|err| err.at(&chapter.chapter_dir().join("tests/stage.rs")))?;
    check_goal_tests(root, chapter, &hints, &suites)?;

    Ok(Exercise {
        chapter: chapter.clone(),
        hints,
        regions: located,
        starter,
        solution,
        suites,
        target_fields: fields.iter().map(|field| rename(field, chapter)).collect(),
        helpers: helpers.iter().map(|item| rename(item, chapter)).collect(),
    })
}

/// Checks that every test a goal names is one the chapter runs: a scenario of the stage suites it
/// lists, or one of its unit tests. A goal that sends a participant to a test that does not exist
/// (renamed, moved to another suite, a typo) is an error at the goal's line.
fn check_goal_tests(
    root: &Path,
    chapter: &Chapter,
    hints: &Hints,
    suites: &[String],
) -> Result<(), String> {
    let lists = rust::scenario_lists(&root.join("tests/src"))?;
    let unit_tests = rust::unit_tests(&root.join(chapter.chapter_dir()))?;
    let runs: BTreeSet<&str> = suites
        .iter()
        .filter_map(|suite| lists.get(suite))
        .flatten()
        .chain(&unit_tests)
        .map(String::as_str)
        .collect();
    for todo in &hints.todos {
        if let Some(missing) = todo
            .goal
            .tests
            .iter()
            .find(|test| !runs.contains(test.as_str()))
        {
            return Err(crate::LineError::new(
                todo.goal.line,
                format!(
                    "the goal of region `{}` names `{missing}`, which {} does not run: it is \
                     neither a scenario of its stage suites nor one of its unit tests \
                     (`cargo test -p {} -- --list` lists them)",
                    todo.id,
                    chapter.chapter_dir().display(),
                    chapter.chapter_package()
                ),
            )
            .at(&chapter.hints_file()));
        }
    }
    Ok(())
}

/// `text` as `cargo fmt` would leave it. The chapters are formatted already, but the changes an
/// exercise makes are not: a renamed crate sorts differently among the imports, a `todo!` or the
/// `#![allow]` may need wrapping. Formatting the result keeps every exercise fmt-clean.
fn rustfmt(root: &Path, text: &str) -> Result<String, String> {
    let program = std::env::var_os("RUSTFMT").unwrap_or_else(|| "rustfmt".into());
    let mut child = Command::new(&program)
        .current_dir(root)
        .args(["--edition", "2024", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| {
            format!("cannot run rustfmt ({err}); install it with `rustup component add rustfmt`")
        })?;
    // Feed stdin from a thread, so a large file cannot fill both pipes and stall both sides.
    let mut stdin = child.stdin.take().ok_or("rustfmt has no stdin")?;
    let input = text.to_string();
    let feeder = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child
        .wait_with_output()
        .map_err(|err| format!("rustfmt failed: {err}"))?;
    let fed = feeder
        .join()
        .map_err(|_| "feeding rustfmt panicked".to_string())?;
    fed.map_err(|err| format!("cannot write to rustfmt: {err}"))?;
    if !output.status.success() {
        return Err(format!(
            "rustfmt cannot format the generated code: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    String::from_utf8(output.stdout).map_err(|_| "rustfmt printed something not UTF-8".to_string())
}

/// The exercise's section of the book: where the crate is, the commands, and for every todo its
/// task and its hints, folded away until asked for. Each chapter's page includes it under its
/// own `## Exercise` heading, so it has no title, its headings start at `###`, and its one
/// include is relative to `book/src/exercises/`, as mdBook resolves nested includes.
pub fn book_page(exercise: &Exercise) -> String {
    let chapter = &exercise.chapter;
    let number = chapter.number();
    let package = chapter.exercise_package();
    let files: Vec<String> = exercise
        .files_with_todos()
        .iter()
        .map(|file| format!("`{}`", file.display()))
        .collect();
    let mut page = format!(
        "<!-- {title}. Generated by `cargo workshop generate` from workshop/hints/{slug}.md and\n     \
         the marked regions of chapters/{slug}: edit those and regenerate, not this file. -->\n\n",
        slug = chapter.slug,
        title = exercise.hints.title
    );
    if !exercise.hints.intro.is_empty() {
        page.push_str(&exercise.hints.intro);
        page.push_str("\n\n");
    }
    page.push_str(&format!(
        "- **Your crate:** `exercises/{slug}` (package `{package}`). What you write replaces the\n  \
         {todos} in {files}; the rest of the crate already works.\n\
         - **Run it:** `cargo run -p {package}`, then open <http://127.0.0.1:3000>.\n\
         - **Check it:** `cargo workshop check {number}` runs the chapter's stage tests against your\n  \
         code (`cargo test -p {package} --no-fail-fast` runs the same ones and the crate's unit\n  \
         tests; without `--no-fail-fast`, cargo stops at the first test target that fails).\n\
         - **Stuck?** Open the hints below one at a time, or run `cargo workshop hint {number}`.\n  \
         `cargo workshop diff {number}` compares your code with the chapter's, and\n  \
         `cargo workshop reset {number}` brings the starter back.\n",
        slug = chapter.slug,
        todos = if exercise.regions.len() == 1 {
            "`todo!()`".to_string()
        } else {
            format!("{} `todo!()`s", exercise.regions.len())
        },
        files = files.join(" and "),
    ));
    for (index, Located { file, region }) in exercise.regions.iter().enumerate() {
        let Some(todo) = exercise.todo(&region.id) else {
            continue;
        };
        let place = format!("`{}`, in `fn {}`", file.display(), region.function);
        page.push_str(&format!(
            "\n### {n}. {title}\n\n*Where:* {place}.\n\n{task}\n",
            n = index + 1,
            title = todo.title,
            task = todo.task
        ));
        for (level, hint) in todo.levels.iter().enumerate() {
            page.push_str(&format!(
                "\n<details>\n<summary>Hint {}</summary>\n\n{hint}\n\n</details>\n",
                level + 1
            ));
        }
        page.push_str(&format!(
            "\n<details>\n<summary>The chapter's code</summary>\n\n```rust,ignore\n\
             {{{{#include ../../../chapters/{slug}/{file}:exercise-{id}}}}}\n```\n\n</details>\n",
            slug = chapter.slug,
            file = file.display(),
            id = region.id
        ));
    }
    page
}

/// `workshop/tests/starters.rs`: one test per exercise that runs its stage suites against the
/// untouched starter, in process, stopping at the first failure, and fails if nothing failed.
pub fn starters_test(exercises: &[Exercise]) -> String {
    let mut text = String::from(
        "// Generated by `cargo workshop generate` from the chapters' tests/stage.rs: do not edit.\n\
         \n\
         //! Every exercise's starter compiles and fails its chapter's stage suites. A starter that\n\
         //! passes untouched would leave the participant nothing to do, so that is a bug in the\n\
         //! chapter's teaching regions. Each run stops at the first failing scenario.\n\
         \n\
         fn assert_fails(exercise: &str, outcomes: Vec<stage_tests::Outcome>) {\n    \
         assert!(\n        \
         outcomes.iter().any(|outcome| outcome.result.is_err()),\n        \
         \"the starter of exercise {exercise} passes all {} scenarios it ran: its todo!s leave \\\n         \
         nothing to do (mark the taught code in its chapter; see workshop/README.md)\",\n        \
         outcomes.len()\n    \
         );\n\
         }\n",
    );
    for exercise in exercises {
        let chapter = &exercise.chapter;
        let mut suites = String::new();
        for suite in &exercise.suites {
            suites.push_str(&format!("                {suite},\n"));
        }
        let krate = chapter.exercise_crate();
        let package = chapter.exercise_package();
        let target = format!("stage_tests::target!({krate}, \"{package}\", library_only)");
        let test = |target: &str| {
            format!(
                "#[test]\n\
                 fn {krate}_starter_fails() {{\n    \
                 assert_fails(\n        \
                 \"{slug}\",\n        \
                 stage_tests::check(\n            \
                 {target},\n            \
                 &[\n{suites}            ],\n            \
                 true,\n        \
                 ),\n    \
                 );\n\
                 }}\n",
                slug = chapter.slug,
            )
        };
        if exercise.target_fields.is_empty() {
            text.push_str(&format!(
                "\n/// Exercise {slug}: the starter compiles and fails its stage suites.\n{}",
                test(&target),
                slug = chapter.slug,
            ));
            continue;
        }
        // A target of its own (chapter 10's `base_flags`): its fields, and the helpers they name,
        // in a module of the exercise's own, so that two chapters' helpers cannot clash.
        let fields: String = exercise
            .target_fields
            .iter()
            .map(|field| format!("{field}, "))
            .collect();
        let target = format!("stage_tests::Target {{ {fields}..{target} }}");
        text.push_str(&format!(
            "\n/// Exercise {slug}: the starter compiles and fails its stage suites, its servers \
             started\n/// as its chapter's `tests/stage.rs` starts them, with the helpers copied \
             from there.\nmod {krate}_starter {{\n    use super::assert_fails;\n\n{helpers}\n\n{test}}}\n",
            slug = chapter.slug,
            helpers = exercise.helpers.join("\n\n"),
            test = test(&target),
        ));
    }
    text
}

/// Everything the generator writes, for every chapter that can be an exercise.
pub struct Generated {
    pub exercises: Vec<Exercise>,
    pub files: Vec<File>,
    /// Chapters that cannot be an exercise (yet), with the reason. Their exercises, if any, are
    /// left as they are on disk.
    pub errors: Vec<(Chapter, String)>,
}

/// Generates everything from the chapters under `root`. A chapter that cannot be an exercise
/// (no regions, missing hints, …) is reported in `errors` and leaves the others be.
pub fn generate(root: &Path) -> Result<Generated, String> {
    let chapters = chapter::discover(root)?;
    let mut exercises = Vec::new();
    let mut errors = Vec::new();
    for chapter in &chapters {
        match exercise(root, chapter) {
            Ok(exercise) => exercises.push(exercise),
            Err(err) => errors.push((chapter.clone(), err)),
        }
    }
    let mut files = Vec::new();
    for exercise in &exercises {
        files.extend(exercise.starter.iter().cloned());
        files.push(File {
            path: exercise.chapter.exercise_page(),
            contents: book_page(exercise),
        });
    }
    files.push(File {
        path: PathBuf::from("workshop/tests/starters.rs"),
        contents: rustfmt(root, &starters_test(&exercises))
            .map_err(|err| format!("workshop/tests/starters.rs: {err}"))?,
    });
    files.push(File {
        path: PathBuf::from(index::PATH),
        contents: index::render(&exercises),
    });
    let manifest = chapter::read(&root.join("workshop/Cargo.toml"))?;
    files.push(File {
        path: PathBuf::from("workshop/Cargo.toml"),
        contents: manifest::workshop_manifest(
            &manifest,
            &exercises
                .iter()
                .map(|exercise| &exercise.chapter)
                .collect::<Vec<_>>(),
        )?,
    });
    Ok(Generated {
        exercises,
        files,
        errors,
    })
}

/// Files on disk in the generated directories that the generator would not write (an exercise
/// whose chapter is gone, a file the chapter no longer has). The files of chapters that failed
/// to generate are not stale: they wait for their chapter to be fixed.
pub fn stale(root: &Path, generated: &Generated) -> Result<Vec<PathBuf>, String> {
    let wanted: BTreeSet<&Path> = generated
        .files
        .iter()
        .map(|file| file.path.as_path())
        .collect();
    let waiting: Vec<PathBuf> = generated
        .errors
        .iter()
        .flat_map(|(chapter, _)| [chapter.exercise_dir(), chapter.exercise_page()])
        .collect();
    let mut stale = Vec::new();
    for dir in ["exercises", "book/src/exercises"] {
        let found = chapter::files_under(&root.join(dir))
            .map_err(|err| format!("cannot list {dir}: {err}"))?;
        for file in found {
            let path = Path::new(dir).join(file);
            let is_waiting = waiting.iter().any(|kept| path.starts_with(kept));
            if !is_waiting && !wanted.contains(path.as_path()) {
                stale.push(path);
            }
        }
    }
    Ok(stale)
}

/// What differs between the generated files and the files on disk, one line each; empty when
/// everything is up to date.
pub fn differences(root: &Path, generated: &Generated) -> Result<Vec<String>, String> {
    let mut differences = Vec::new();
    for file in &generated.files {
        match fs::read_to_string(root.join(&file.path)) {
            Ok(on_disk) if on_disk == file.contents => {}
            Ok(_) => differences.push(format!("{} is out of date", file.path.display())),
            Err(_) => differences.push(format!("{} is missing", file.path.display())),
        }
    }
    for (_, err) in &generated.errors {
        differences.push(err.clone());
    }
    for path in stale(root, generated)? {
        differences.push(format!(
            "{} is not generated from any chapter",
            path.display()
        ));
    }
    Ok(differences)
}

/// Writes every generated file that differs from the disk and removes stale ones; returns what
/// it changed, one line each.
pub fn write(root: &Path, generated: &Generated) -> Result<Vec<String>, String> {
    let mut changes = Vec::new();
    for file in &generated.files {
        let path = root.join(&file.path);
        let current = fs::read_to_string(&path).ok();
        if current.as_deref() == Some(file.contents.as_str()) {
            continue;
        }
        write_file(&path, &file.contents)?;
        changes.push(format!(
            "{} {}",
            if current.is_some() {
                "updated"
            } else {
                "created"
            },
            file.path.display()
        ));
    }
    for path in stale(root, generated)? {
        fs::remove_file(root.join(&path))
            .map_err(|err| format!("cannot remove {}: {err}", path.display()))?;
        changes.push(format!("removed {}", path.display()));
    }
    Ok(changes)
}

/// Writes `contents` to `path`, creating its directory.
pub fn write_file(path: &Path, contents: &str) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|err| format!("cannot create {}: {err}", dir.display()))?;
    }
    fs::write(path, contents).map_err(|err| format!("cannot write {}: {err}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo() -> Chapter {
        Chapter::from_slug("01-echo").expect("a chapter name")
    }

    /// Renaming touches the chapter's own package and crate names, and nothing else.
    #[test]
    fn renaming_swaps_only_this_chapters_names() {
        let text = "use ch01_echo::serve; // ch01-echo, not ch02_split";
        assert_eq!(
            rename(text, &echo()),
            "use ex01_echo::serve; // ex01-echo, not ch02_split"
        );
    }

    /// The starter's allow goes after the chapter's own lint attributes (a later attribute wins),
    /// past inner doc comments, and nowhere when there are none.
    #[test]
    fn the_allow_follows_the_chapters_own_lints() {
        let text = "//! Docs.\n#![deny(\n    clippy::todo,\n)]\n\nfn f() {}\n";
        assert_eq!(
            after_inner_attributes(text),
            Ok(Some(format!(
                "//! Docs.\n#![deny(\n    clippy::todo,\n)]\n{ALLOW}\nfn f() {{}}\n"
            )))
        );
        assert_eq!(after_inner_attributes("//! Docs.\nfn f() {}\n"), Ok(None));
    }

    /// Generated code that does not parse is an error at its line, not a file written anyway.
    #[test]
    fn generated_code_must_parse() {
        let error = after_inner_attributes("fn f() {\n    todo!(\"x\")\n    1\n}\n")
            .expect_err("a tail todo! followed by more code");
        assert_eq!(error.line, 3, "{error:?}");
    }

    /// A goal may name the scenarios of the suites its chapter runs and the chapter's unit
    /// tests; a scenario of another suite, or a test that does not exist, is an error at the
    /// goal's line in the hints file.
    #[test]
    fn goals_name_only_tests_the_chapter_runs() {
        let root = chapter::workspace_root();
        let broker = Chapter::from_slug("03-broker").expect("a chapter name");
        let stage = chapter::read(&root.join(broker.chapter_dir()).join("tests/stage.rs"))
            .expect("chapter 03's stage test");
        let suites = rust::stage_suites(&stage, &broker).expect("its suites");
        let hints_naming = |tests: &str| {
            hints::parse(&format!(
                "# Exercise 03\n\n## forward: Forward\n\nThe task.\n\nDone when: forwarded. Tests: {tests}.\n\n\
                 ### Hint 1\n\nOne.\n\n### Hint 2\n\nTwo.\n"
            ))
            .expect("a well-formed hints file")
        };
        let runs = hints_naming(
            "`broadcast::delivers_to_every_other_client`, \
             `broker::tests::forwards_to_everyone_but_the_sender`",
        );
        assert_eq!(check_goal_tests(&root, &broker, &runs, &suites), Ok(()));
        for (missing, why) in [
            (
                "echo::echoes_text_as_text",
                "a suite chapter 03 does not run",
            ),
            ("broker::tests::no_such_test", "no such unit test"),
        ] {
            let error = check_goal_tests(
                &root,
                &broker,
                &hints_naming(&format!("`{missing}`")),
                &suites,
            )
            .expect_err(why);
            assert!(
                error.starts_with(
                    "workshop/hints/03-broker.md:7: the goal of region `forward` names"
                ) && error.contains(missing),
                "{why}: {error}"
            );
        }
    }
}
