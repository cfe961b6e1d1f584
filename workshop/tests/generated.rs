//! The workshop keeps up with the chapters: every chapter under `chapters/` (found now, so a new
//! chapter is picked up without anyone listing it) has an exercise with hints for every todo, and
//! the committed exercises, book pages and starter test are what the generator makes today.
//! `tests/starters.rs` (generated) then proves each starter compiles and fails.

use workshop::{chapter, generate};

/// Every chapter can be made into an exercise: it marks teaching regions, every region has a
/// task and at least two hints, and its stage test has the shape the starter test needs.
#[test]
fn every_chapter_has_an_exercise_with_hints_for_every_todo() {
    let root = chapter::workspace_root();
    let generated = generate::generate(&root).expect("the chapters can be listed");
    let problems: Vec<String> = generated
        .errors
        .iter()
        .map(|(chapter, err)| format!("chapters/{}: {err}", chapter.slug))
        .collect();
    assert!(
        problems.is_empty(),
        "chapters without a working exercise (workshop/README.md says how to add one):\n{}",
        problems.join("\n")
    );
    let chapters = chapter::discover(&root).expect("the chapters can be listed");
    assert_eq!(
        generated.exercises.len(),
        chapters.len(),
        "one exercise per chapter"
    );
    for exercise in &generated.exercises {
        for located in &exercise.regions {
            let todo = exercise
                .todo(&located.region.id)
                .expect("the generator refuses a region without hints");
            assert!(
                todo.levels.len() >= 2,
                "{}: todo `{}` needs two hints or more",
                exercise.chapter.slug,
                todo.id
            );
        }
    }
}

/// The exercises, their book pages, the starter test and the workshop's dev-dependencies on
/// disk are exactly what `cargo workshop generate` makes from the chapters now (regenerated in
/// memory and compared, so a chapter change cannot leave a stale exercise behind).
#[test]
fn the_generated_files_are_up_to_date() {
    let root = chapter::workspace_root();
    let generated = generate::generate(&root).expect("the chapters can be listed");
    let differences = generate::differences(&root, &generated).expect("the files can be read");
    assert!(
        differences.is_empty(),
        "the generated files differ from what the chapters make now; run `cargo workshop \
         generate` and commit the result:\n{}",
        differences.join("\n")
    );
}

/// Each starter has exactly one `todo!` per teaching region, carrying that region's first
/// hint, so a participant who hits it reads where to begin.
#[test]
fn every_todo_in_a_starter_carries_its_first_hint() {
    let root = chapter::workspace_root();
    let generated = generate::generate(&root).expect("the chapters can be listed");
    for exercise in &generated.exercises {
        let todos = exercise
            .starter
            .iter()
            .flat_map(|file| file.contents.lines())
            .filter(|line| line.trim_start().starts_with("todo!("))
            .count();
        assert_eq!(
            todos,
            exercise.regions.len(),
            "exercise {}: one todo! per region",
            exercise.chapter.slug
        );
        for located in &exercise.regions {
            let literal = exercise
                .todo_literal(&located.region.id)
                .expect("every region has hints");
            let file = exercise
                .starter
                .iter()
                .find(|file| file.path.ends_with(&located.file))
                .expect("the region's file is in the starter");
            assert!(
                file.contents.contains(&literal),
                "exercise {}: the todo! for `{}` should say {literal}",
                exercise.chapter.slug,
                located.region.id
            );
        }
    }
}
