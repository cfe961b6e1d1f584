//! The sub-commands a participant uses, run against a scratch copy of chapter 01 so they can
//! change files freely, and `check` run for real against the committed starter.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use workshop::{chapter::Chapter, commands, generate, style::Style};

/// Copies the files under `from` (relative to the real workspace) into the same place in `root`.
fn copy_tree(root: &Path, from: &Path) {
    let real = workshop::chapter::workspace_root();
    for file in workshop::chapter::files_under(&real.join(from)).expect("listing to copy") {
        let to = root.join(from).join(&file);
        fs::create_dir_all(to.parent().expect("a file has a directory")).expect("mkdir");
        fs::copy(real.join(from).join(&file), &to).expect("copying");
    }
}

/// A workspace with chapter 01, its hints, the stage tests' sources (whose names its goals
/// use) and the workshop's manifest, generated into its exercise and index, in this test's own
/// directory.
fn scratch(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("workshop-{name}"));
    let _ = fs::remove_dir_all(&root);
    let chapter = Chapter::from_slug("01-echo").expect("a chapter name");
    copy_tree(&root, &chapter.chapter_dir());
    copy_tree(&root, Path::new("tests/src"));
    for file in [chapter.hints_file(), PathBuf::from("workshop/Cargo.toml")] {
        let to = root.join(&file);
        fs::create_dir_all(to.parent().expect("a file has a directory")).expect("mkdir");
        fs::copy(workshop::chapter::workspace_root().join(&file), &to).expect("copying");
    }
    let generated = generate::generate(&root).expect("the scratch chapter generates");
    assert!(generated.errors.is_empty(), "{:?}", generated.errors);
    generate::write(&root, &generated).expect("writing the scratch exercise");
    root
}

fn run(command: impl FnOnce(&mut Vec<u8>) -> std::io::Result<bool>) -> (bool, String) {
    let mut out = Vec::new();
    let ok = command(&mut out).expect("writing to a Vec cannot fail");
    (ok, String::from_utf8(out).expect("the output is UTF-8"))
}

fn starter_of(root: &Path) -> generate::Exercise {
    let chapter = Chapter::from_slug("01-echo").expect("a chapter name");
    generate::exercise(root, &chapter).expect("chapter 01 is an exercise")
}

/// `reset` brings back the starter, removes files the starter does not have, and keeps a copy
/// of everything it replaced or removed.
#[test]
fn reset_restores_the_starter_and_keeps_a_backup() {
    let root = scratch("reset");
    fs::remove_dir_all(root.join("exercises/01-echo")).expect("removing the exercise");
    let (ok, _) = run(|out| commands::reset(&root, "01", Style::plain(), out));
    assert!(ok, "resetting a missing exercise creates it");
    let lib = root.join("exercises/01-echo/src/lib.rs");
    fs::write(&lib, "// my attempt\n").expect("editing the exercise");
    let extra = root.join("exercises/01-echo/src/notes.rs");
    fs::write(&extra, "// my notes\n").expect("adding a file");

    let (ok, output) = run(|out| commands::reset(&root, "echo", Style::plain(), out));
    assert!(ok, "reset should succeed: {output}");
    let starter = starter_of(&root);
    for file in &starter.starter {
        let on_disk = fs::read_to_string(root.join(&file.path)).expect("the starter file exists");
        assert_eq!(
            on_disk,
            file.contents,
            "{} is the starter again",
            file.path.display()
        );
    }
    assert!(
        !extra.exists(),
        "a file the starter does not have is removed"
    );
    let backups: Vec<PathBuf> = fs::read_dir(root.join("target/workshop-backup"))
        .expect("a backup directory")
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .collect();
    assert_eq!(backups.len(), 1, "one backup for one reset");
    assert_eq!(
        fs::read_to_string(backups[0].join("src/lib.rs"))
            .ok()
            .as_deref(),
        Some("// my attempt\n"),
        "the replaced file is in the backup"
    );
    assert_eq!(
        fs::read_to_string(backups[0].join("src/notes.rs"))
            .ok()
            .as_deref(),
        Some("// my notes\n"),
        "the removed file is in the backup"
    );
    assert!(
        output.contains("target/workshop-backup/01-echo-"),
        "reset says where: {output}"
    );
}

/// `diff` shows the chapter's code where the starter has its todo!s, and says "exactly like"
/// once the exercise matches the chapter.
#[test]
fn diff_shows_the_chapters_code_against_the_todos() {
    let root = scratch("diff");
    run(|out| commands::reset(&root, "01", Style::plain(), out));
    let (_, output) = run(|out| commands::diff(&root, "01", Style::plain(), out));
    assert!(
        output.contains("-    todo!(") && output.contains("+    ws.on_upgrade(echo)"),
        "the diff replaces the todo! with the chapter's line:\n{output}"
    );
    assert!(!output.contains('\x1b'), "plain output has no colour codes");

    for file in &starter_of(&root).solution {
        fs::write(root.join(&file.path), &file.contents).expect("writing the solution");
    }
    let (_, output) = run(|out| commands::diff(&root, "01", Style::plain(), out));
    assert!(
        output.contains("reads exactly like the chapter's code"),
        "a solved exercise has no differences:\n{output}"
    );
}

/// `hint` starts at level 1 of the first todo still in the code, offers the next level, and
/// moves on to the next todo once the first is replaced.
#[test]
fn hint_follows_the_todos_still_in_the_code() {
    let root = scratch("hint");
    run(|out| commands::reset(&root, "01", Style::plain(), out));
    let exercise = starter_of(&root);
    let upgrade = exercise.todo("upgrade").expect("hints for upgrade");
    let (ok, output) = run(|out| commands::hint(&root, "01", None, None, Style::plain(), out));
    assert!(ok);
    assert!(output.contains("Hint 1 of"), "level 1 first:\n{output}");
    assert!(
        output.contains(&upgrade.levels[0]),
        "upgrade comes first:\n{output}"
    );
    assert!(
        output.contains(&upgrade.goal.text),
        "the hint repeats what holds when it is done:\n{output}"
    );
    assert!(
        output.contains("cargo workshop hint 01 2"),
        "the next level is offered:\n{output}"
    );

    // Replace the first todo the way a participant would.
    let lib = root.join("exercises/01-echo/src/lib.rs");
    let text = fs::read_to_string(&lib).expect("the starter's lib.rs");
    let literal = exercise.todo_literal("upgrade").expect("upgrade's todo");
    let at = text.find(&literal).expect("upgrade's todo! in lib.rs");
    let start = text[..at]
        .rfind("todo!(")
        .expect("the todo! around the message");
    let end = start + text[start..].find(')').expect("the todo! closes") + 1;
    fs::write(
        &lib,
        format!("{}ws.on_upgrade(echo){}", &text[..start], &text[end..]),
    )
    .expect("editing lib.rs");

    let echo = exercise.todo("echo").expect("hints for echo");
    let (_, output) = run(|out| commands::hint(&root, "01", None, Some(2), Style::plain(), out));
    assert!(
        output.contains("Hint 2 of"),
        "the level asked for:\n{output}"
    );
    assert!(
        output.contains(echo.levels[1].lines().next().unwrap_or_default()),
        "the next open todo is echo:\n{output}"
    );
    let (ok, output) =
        run(|out| commands::hint(&root, "01", Some("echo"), Some(9), Style::plain(), out));
    assert!(
        !ok && output.contains("not 9"),
        "a level that does not exist:\n{output}"
    );
}

/// The participant's side reads the index, not the chapters: with the chapter's source gone, so
/// that nothing could be regenerated, `hint` still finds the open todo and its hints, and the
/// index tells a fresh exercise from a started one and counts the todos left.
#[test]
fn hints_and_progress_come_from_the_index_without_regenerating() {
    let root = scratch("index");
    let entries = workshop::index::read(&root).expect("the scratch index");
    let entry = entries.first().expect("exercise 01 is in the index");
    assert!(entry.untouched(&root), "a fresh exercise is the starter");
    assert_eq!(entry.todos_left(&root), ["upgrade", "echo"]);

    fs::remove_file(root.join("chapters/01-echo/src/lib.rs")).expect("removing the chapter");
    let (ok, output) = run(|out| commands::hint(&root, "01", None, None, Style::plain(), out));
    assert!(ok, "hint needs no chapter source:\n{output}");
    assert!(
        output.contains("upgrade: Accept the WebSocket (src/lib.rs, fn upgrade; its todo!() is still in your code)"),
        "the first open todo, where it is:\n{output}"
    );

    let lib = root.join("exercises/01-echo/src/lib.rs");
    let mut text = fs::read_to_string(&lib).expect("the starter's lib.rs");
    text.push_str("// a note of mine\n");
    fs::write(&lib, text).expect("editing lib.rs");
    assert!(!entry.untouched(&root), "any change makes it started");
    assert_eq!(
        entry.todos_left(&root).len(),
        2,
        "both todos are still there"
    );
}

/// `cargo workshop check 01` on the committed starter builds it, runs the stage tests in a
/// child cargo, and reports failing scenarios with what they check, the panic in the
/// participant's code, and a non-zero exit.
#[test]
fn check_reports_the_starters_failures_readably() {
    let output = Command::new(env!("CARGO_BIN_EXE_workshop"))
        .args(["check", "01", "echoes_text_as_text"])
        .env("NO_COLOR", "1")
        .output()
        .expect("running the workshop binary");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !output.status.success(),
        "a starter fails its check:\n{stdout}"
    );
    assert!(
        stdout.contains("FAIL echo::echoes_text_as_text"),
        "the failing scenario is named:\n{stdout}"
    );
    assert!(
        stdout.contains("checks: A text message comes back as the same text message."),
        "the scenario's doc comment says what it checks:\n{stdout}"
    );
    assert!(
        stdout.contains("exercises/01-echo/src/lib.rs") && stdout.contains("not yet implemented"),
        "the todo! that panicked is shown:\n{stdout}"
    );
    assert!(
        stdout.contains("0 of 1 scenarios pass"),
        "the filter ran one scenario:\n{stdout}"
    );
}
