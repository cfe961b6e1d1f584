//! The two manifests the generator writes, edited with toml_edit so that their comments and
//! layout stay as their authors wrote them: an exercise's `Cargo.toml` (the chapter's, renamed)
//! and the workshop's own, whose dev-dependencies list the exercise crates for
//! `tests/starters.rs`.

use toml_edit::{DocumentMut, InlineTable, Item, Value};

use crate::chapter::Chapter;

fn parse(text: &str, name: &str) -> Result<DocumentMut, String> {
    text.parse::<DocumentMut>()
        .map_err(|err| format!("{name} is not valid TOML: {err}"))
}

/// The chapter's manifest with the package renamed to the exercise's. Nothing else in it names
/// the package; a manifest whose package is not the chapter's is an error.
pub fn exercise_manifest(chapter_manifest: &str, chapter: &Chapter) -> Result<String, String> {
    let name = format!("chapters/{}/Cargo.toml", chapter.slug);
    let mut manifest = parse(chapter_manifest, &name)?;
    let package = manifest
        .get_mut("package")
        .and_then(Item::as_table_like_mut)
        .ok_or_else(|| format!("{name} has no [package]"))?;
    let found = package.get("name").and_then(Item::as_str);
    if found != Some(chapter.chapter_package().as_str()) {
        return Err(format!(
            "{name}: the package is {found:?}; a chapter's package is named `{}`",
            chapter.chapter_package()
        ));
    }
    let renamed = package
        .get_mut("name")
        .and_then(Item::as_value_mut)
        .ok_or_else(|| format!("{name}: no package name"))?;
    let decor = renamed.decor().clone();
    *renamed = Value::from(chapter.exercise_package());
    *renamed.decor_mut() = decor;
    Ok(manifest.to_string())
}

/// What precedes the exercise crates among the workshop's dev-dependencies.
const EXERCISES_COMMENT: &str =
    "# The exercise crates, for tests/starters.rs: written by `cargo workshop generate`.\n";

/// Whether a dev-dependency is an exercise crate: a path dependency into `../exercises/`.
fn is_exercise(item: &Item) -> bool {
    item.as_table_like()
        .and_then(|table| table.get("path"))
        .and_then(Item::as_str)
        .is_some_and(|path| path.starts_with("../exercises/"))
}

/// `workshop/Cargo.toml` with exactly the exercise crates of `chapters` among its
/// dev-dependencies, after the others, each `exNN-name = { path = "../exercises/NN-name" }`.
pub fn workshop_manifest(current: &str, chapters: &[&Chapter]) -> Result<String, String> {
    let mut manifest = parse(current, "workshop/Cargo.toml")?;
    let deps = manifest
        .get_mut("dev-dependencies")
        .and_then(Item::as_table_like_mut)
        .ok_or("workshop/Cargo.toml has no [dev-dependencies] table")?;
    let old: Vec<String> = deps
        .iter()
        .filter(|(_, item)| is_exercise(item))
        .map(|(key, _)| key.to_string())
        .collect();
    for key in &old {
        deps.remove(key);
    }
    for (index, chapter) in chapters.iter().enumerate() {
        let mut dependency = InlineTable::new();
        dependency.insert("path", format!("../exercises/{}", chapter.slug).into());
        let package = chapter.exercise_package();
        deps.insert(&package, Item::Value(Value::InlineTable(dependency)));
        if index == 0
            && let Some(mut key) = deps.key_mut(&package)
        {
            key.leaf_decor_mut().set_prefix(EXERCISES_COMMENT);
        }
    }
    Ok(manifest.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chapter(slug: &str) -> Chapter {
        Chapter::from_slug(slug).expect("a chapter name")
    }

    /// The package is renamed and every other line, comments included, stays as it was.
    #[test]
    fn the_exercise_manifest_renames_only_the_package() {
        let manifest = "[package]\nname = \"ch01-echo\" # the chapter\ndescription = \"ch01-echo's server\"\n\n[dependencies]\naxum.workspace = true\n";
        assert_eq!(
            exercise_manifest(manifest, &chapter("01-echo")),
            Ok("[package]\nname = \"ex01-echo\" # the chapter\ndescription = \"ch01-echo's server\"\n\n[dependencies]\naxum.workspace = true\n".to_string())
        );
        let error = exercise_manifest(manifest, &chapter("02-split")).expect_err("another name");
        assert!(
            error.contains("a chapter's package is named `ch02-split`"),
            "{error}"
        );
        let error = exercise_manifest("[package\n", &chapter("01-echo")).expect_err("not TOML");
        assert!(error.contains("is not valid TOML"), "{error}");
    }

    /// The exercise crates are replaced; other dev-dependencies, tables and comments stay.
    #[test]
    fn the_workshop_manifest_lists_exactly_the_exercises() {
        let current = "[package]\nname = \"workshop\"\n\n[dev-dependencies]\n# Shared.\nstage-tests.workspace = true\nex09-gone = { path = \"../exercises/09-gone\" }\n\n[lints]\nworkspace = true\n";
        let (echo, split) = (chapter("01-echo"), chapter("02-split"));
        assert_eq!(
            workshop_manifest(current, &[&echo, &split]),
            Ok(format!(
                "[package]\nname = \"workshop\"\n\n[dev-dependencies]\n# Shared.\nstage-tests.workspace = true\n{EXERCISES_COMMENT}ex01-echo = {{ path = \"../exercises/01-echo\" }}\nex02-split = {{ path = \"../exercises/02-split\" }}\n\n[lints]\nworkspace = true\n"
            ))
        );
        let error = workshop_manifest("[package]\n", &[]).expect_err("no dev-dependencies");
        assert!(error.contains("no [dev-dependencies]"), "{error}");
    }
}
