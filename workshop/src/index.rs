//! `workshop/exercises.toml`: what the participant's commands need to know about each exercise,
//! written by the generator next to the exercises and committed with them.
//!
//! Making an exercise means reading its chapter and hints and formatting every file with rustfmt.
//! `cargo workshop`, `check` and `hint` only need the result: which todos an exercise has, where,
//! what each one's `todo!` says, and a fingerprint of the untouched starter. They read it here,
//! so printing a line of progress costs a small file read on top of the test run it reports.
//! `reset`, `solve` and `diff` need the files themselves and still generate the one exercise.

use std::{
    fs,
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};
use toml_edit::{ArrayOfTables, DocumentMut, Item, Table, value};

use crate::{
    chapter::{self, Chapter},
    generate::{Exercise, File},
    regions, rust,
};

/// Where the index is, relative to the workspace root.
pub const PATH: &str = "workshop/exercises.toml";

/// One exercise, as the participant's commands see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub chapter: Chapter,
    /// The [`fingerprint`] of the starter's files.
    pub starter: String,
    /// Every todo, in the order the exercise's page lists them.
    pub todos: Vec<Todo>,
}

/// One todo of an exercise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Todo {
    /// The region's id, which also names its hints.
    pub id: String,
    /// The file it is in, relative to the exercise crate (`src/lib.rs`).
    pub file: PathBuf,
    /// The function whose body it is in.
    pub function: String,
    /// What its `todo!` says.
    pub message: String,
}

/// SHA-256 over files (each path, relative to the crate, and its bytes), in path order. Two
/// exercise directories with the same fingerprint hold the same files with the same contents.
pub fn fingerprint<'a>(files: impl IntoIterator<Item = (&'a Path, &'a [u8])>) -> String {
    let mut files: Vec<(&Path, &[u8])> = files.into_iter().collect();
    files.sort();
    let mut hasher = Sha256::new();
    for (path, contents) in files {
        // Lengths first, so that no two different lists of files hash the same bytes.
        let path = path.to_string_lossy();
        hasher.update((path.len() as u64).to_le_bytes());
        hasher.update(path.as_bytes());
        hasher.update((contents.len() as u64).to_le_bytes());
        hasher.update(contents);
    }
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The fingerprint of a generated starter.
fn starter_fingerprint(exercise: &Exercise) -> String {
    let dir = exercise.chapter.exercise_dir();
    fingerprint(exercise.starter.iter().map(|File { path, contents }| {
        (path.strip_prefix(&dir).unwrap_or(path), contents.as_bytes())
    }))
}

impl Entry {
    /// The entry for a generated exercise.
    pub fn of(exercise: &Exercise) -> Entry {
        Entry {
            chapter: exercise.chapter.clone(),
            starter: starter_fingerprint(exercise),
            todos: exercise
                .regions
                .iter()
                .map(|located| Todo {
                    id: located.region.id.clone(),
                    file: located.file.clone(),
                    function: located.region.function.clone(),
                    message: exercise
                        .todo(&located.region.id)
                        .map(|todo| todo.message())
                        .unwrap_or_default(),
                })
                .collect(),
        }
    }

    /// The todo `id`.
    pub fn todo(&self, id: &str) -> Option<&Todo> {
        self.todos.iter().find(|todo| todo.id == id)
    }

    /// The files with todos, relative to the crate, in order.
    pub fn files_with_todos(&self) -> Vec<&Path> {
        let mut files: Vec<&Path> = Vec::new();
        for todo in &self.todos {
            if !files.contains(&todo.file.as_path()) {
                files.push(&todo.file);
            }
        }
        files
    }

    /// Whether the participant's exercise is still the starter: the same files, byte for byte.
    pub fn untouched(&self, root: &Path) -> bool {
        let dir = root.join(self.chapter.exercise_dir());
        let Ok(files) = chapter::files_under(&dir) else {
            return false;
        };
        let mut contents = Vec::new();
        for file in &files {
            match fs::read(dir.join(file)) {
                Ok(bytes) => contents.push(bytes),
                Err(_) => return false,
            }
        }
        let found = fingerprint(
            files
                .iter()
                .map(PathBuf::as_path)
                .zip(contents.iter().map(Vec::as_slice)),
        );
        found == self.starter
    }

    /// The ids of the todos whose `todo!("…")` is still in the participant's code, in order.
    /// The `todo!`s are found in the file's tokens, so a comment or a string that quotes one
    /// does not count; a file whose brackets do not balance (half-way through an edit) is
    /// searched as text instead.
    pub fn todos_left(&self, root: &Path) -> Vec<String> {
        let dir = root.join(self.chapter.exercise_dir());
        let mut read: Vec<(&Path, Option<String>)> = Vec::new();
        let mut left = Vec::new();
        for todo in &self.todos {
            let text = match read.iter().find(|(file, _)| *file == todo.file) {
                Some((_, text)) => text.clone(),
                None => {
                    let text = fs::read_to_string(dir.join(&todo.file)).ok();
                    read.push((&todo.file, text.clone()));
                    text
                }
            };
            let Some(text) = text else {
                continue;
            };
            let wanted = regions::format_string(&todo.message);
            let still_there = match rust::todos(&text) {
                Some(found) => found
                    .iter()
                    .any(|found| found.message.as_deref() == Some(wanted.as_str())),
                None => text.contains(&regions::string_literal(&todo.message)),
            };
            if still_there {
                left.push(todo.id.clone());
            }
        }
        left
    }
}

const HEADER: &str = "\
# Generated by `cargo workshop generate`: do not edit. What `cargo workshop`, `check` and `hint`
# need to know about each exercise, so that they do not regenerate it: its todos, and the
# SHA-256 of its untouched starter (to tell a started exercise from a fresh one).
";

/// The index of `exercises`, as written to [`PATH`].
pub fn render(exercises: &[Exercise]) -> String {
    let mut list = ArrayOfTables::new();
    for exercise in exercises {
        let entry = Entry::of(exercise);
        let mut table = Table::new();
        table.insert("slug", value(entry.chapter.slug.as_str()));
        table.insert("starter", value(entry.starter.as_str()));
        let mut todos = ArrayOfTables::new();
        for todo in &entry.todos {
            let mut row = Table::new();
            row.insert("id", value(todo.id.as_str()));
            row.insert("file", value(todo.file.to_string_lossy().as_ref()));
            row.insert("function", value(todo.function.as_str()));
            row.insert("message", value(todo.message.as_str()));
            todos.push(row);
        }
        table.insert("todo", Item::ArrayOfTables(todos));
        list.push(table);
    }
    let mut document = DocumentMut::new();
    document.insert("exercise", Item::ArrayOfTables(list));
    format!("{HEADER}\n{document}")
}

/// Reads an index written by [`render`].
pub fn parse(text: &str) -> Result<Vec<Entry>, String> {
    let document = text
        .parse::<DocumentMut>()
        .map_err(|err| format!("{PATH} is not valid TOML: {err}"))?;
    let Some(list) = document.get("exercise").and_then(Item::as_array_of_tables) else {
        return Ok(Vec::new());
    };
    let field = |table: &Table, key: &str| {
        table
            .get(key)
            .and_then(Item::as_str)
            .map(str::to_string)
            .ok_or_else(|| {
                format!("{PATH}: an entry without `{key}`; run `cargo workshop generate`")
            })
    };
    let mut entries = Vec::new();
    for table in list {
        let slug = field(table, "slug")?;
        let chapter = Chapter::from_slug(&slug)
            .ok_or_else(|| format!("{PATH}: `{slug}` is not an exercise's name"))?;
        let mut todos = Vec::new();
        if let Some(rows) = table.get("todo").and_then(Item::as_array_of_tables) {
            for row in rows {
                todos.push(Todo {
                    id: field(row, "id")?,
                    file: PathBuf::from(field(row, "file")?),
                    function: field(row, "function")?,
                    message: field(row, "message")?,
                });
            }
        }
        entries.push(Entry {
            chapter,
            starter: field(table, "starter")?,
            todos,
        });
    }
    Ok(entries)
}

/// The index of the workspace at `root`.
pub fn read(root: &Path) -> Result<Vec<Entry>, String> {
    let text = fs::read_to_string(root.join(PATH)).map_err(|err| {
        format!("cannot read {PATH} ({err}); `cargo workshop generate` writes it")
    })?;
    parse(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            chapter: Chapter::from_slug("01-echo").expect("a chapter name"),
            starter: "00ff".to_string(),
            todos: vec![
                Todo {
                    id: "upgrade".to_string(),
                    file: PathBuf::from("src/lib.rs"),
                    function: "upgrade".to_string(),
                    message: "Done when: \"quoted\" {braces} and `code`.".to_string(),
                },
                Todo {
                    id: "echo".to_string(),
                    file: PathBuf::from("src/lib.rs"),
                    function: "echo".to_string(),
                    message: "Done when: echoed.".to_string(),
                },
            ],
        }
    }

    /// The same files give the same fingerprint in any order; any change of name or contents
    /// gives another.
    #[test]
    fn fingerprints_tell_file_sets_apart() {
        let a = (Path::new("src/lib.rs"), b"fn a() {}".as_slice());
        let b = (Path::new("src/main.rs"), b"fn main() {}".as_slice());
        assert_eq!(fingerprint([a, b]), fingerprint([b, a]));
        assert_ne!(fingerprint([a, b]), fingerprint([a]));
        assert_ne!(
            fingerprint([a]),
            fingerprint([(Path::new("src/lib.rs"), b"fn b() {}".as_slice())])
        );
        assert_ne!(
            fingerprint([(Path::new("ab"), b"c".as_slice())]),
            fingerprint([(Path::new("a"), b"bc".as_slice())])
        );
    }

    /// An index reads back as it was written, quotes and braces in messages included.
    #[test]
    fn the_index_reads_back_what_was_written() {
        let text = format!(
            "{HEADER}\n[[exercise]]\nslug = \"01-echo\"\nstarter = \"00ff\"\n\n[[exercise.todo]]\nid = \"upgrade\"\nfile = \"src/lib.rs\"\nfunction = \"upgrade\"\nmessage = \"Done when: \\\"quoted\\\" {{braces}} and `code`.\"\n\n[[exercise.todo]]\nid = \"echo\"\nfile = \"src/lib.rs\"\nfunction = \"echo\"\nmessage = \"Done when: echoed.\"\n"
        );
        assert_eq!(parse(&text), Ok(vec![entry()]));
        let error = parse("[[exercise]]\nslug = \"01-echo\"\n").expect_err("no fingerprint");
        assert!(error.contains("without `starter`"), "{error}");
    }

    /// A todo is left while its `todo!` with its message is in the code, wherever it is, and
    /// not once it is gone or only quoted in a comment.
    #[test]
    fn todos_left_are_read_from_the_participants_file() {
        let root = std::env::temp_dir().join(format!("workshop-todos-left-{}", std::process::id()));
        let dir = root.join("exercises/01-echo/src");
        fs::create_dir_all(&dir).expect("a scratch directory");
        let entry = entry();
        let upgrade = regions::string_literal(&entry.todos[0].message);
        let echo = regions::string_literal(&entry.todos[1].message);
        fs::write(
            dir.join("lib.rs"),
            format!(
                "fn upgrade() {{\n    todo!(\n        {upgrade}\n    )\n}}\n// todo!({echo})\n"
            ),
        )
        .expect("writing the participant's file");
        assert_eq!(entry.todos_left(&root), ["upgrade"]);
        fs::write(
            dir.join("lib.rs"),
            format!("fn upgrade() {{ todo!({upgrade}) }}\nfn echo() {{ todo!({echo}) "),
        )
        .expect("writing a half-edited file");
        assert_eq!(
            entry.todos_left(&root),
            ["upgrade", "echo"],
            "unbalanced brackets fall back to the text"
        );
        fs::write(dir.join("lib.rs"), "fn upgrade() {}\n").expect("writing the solution");
        assert!(entry.todos_left(&root).is_empty());
        let _ = fs::remove_dir_all(&root);
    }
}
