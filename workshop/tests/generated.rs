//! The workshop keeps up with the chapters: every chapter under `chapters/` (found now, so a new
//! chapter is picked up without anyone listing it) has an exercise with hints for every todo, and
//! the committed exercises, book pages and starter test are what the generator makes today.
//! `tests/starters.rs` (generated) then proves each starter compiles and fails.

use workshop::{chapter, generate, regions, rust};

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

/// Each starter has exactly one `todo!` per teaching region, and it carries that region's goal
/// (what holds when it is done, and the tests that check it), not its first hint: a participant
/// who hits it reads what to achieve, and asks for the steps if they want them.
#[test]
fn every_todo_in_a_starter_states_its_goal() {
    let root = chapter::workspace_root();
    let generated = generate::generate(&root).expect("the chapters can be listed");
    for exercise in &generated.exercises {
        let mut found = Vec::new();
        for file in &exercise.starter {
            if file.path.extension().is_some_and(|ext| ext == "rs") {
                let todos = rust::todos(&file.contents).expect("a starter's brackets balance");
                found.extend(todos.into_iter().filter_map(|todo| todo.message));
            }
        }
        let expected: Vec<String> = exercise
            .regions
            .iter()
            .map(|located| {
                let todo = exercise
                    .todo(&located.region.id)
                    .expect("every region has hints");
                assert!(
                    todo.message().starts_with("Done when: "),
                    "exercise {}: the todo! for `{}` states a goal: {}",
                    exercise.chapter.slug,
                    todo.id,
                    todo.message()
                );
                assert_ne!(
                    todo.message(),
                    todo.levels[0],
                    "the goal is not the first hint"
                );
                regions::format_string(&todo.message())
            })
            .collect();
        let mut found_sorted = found.clone();
        found_sorted.sort();
        let mut expected_sorted = expected.clone();
        expected_sorted.sort();
        assert_eq!(
            found_sorted, expected_sorted,
            "exercise {}: one todo! per region, each with its region's goal",
            exercise.chapter.slug
        );
    }
}
