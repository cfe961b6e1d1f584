//! Where things are: the chapters found under `chapters/`, and the names and paths derived from
//! each (its exercise crate, its hints, its book pages).

use std::{
    fs, io,
    path::{Path, PathBuf},
};

/// One chapter crate, `chapters/NN-name`, and everything named after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chapter {
    /// `01-echo`: the directory name, the exercise's directory name and the `CHAPTER` constant.
    pub slug: String,
}

impl Chapter {
    /// `Some` for a directory name of the form `NN-name` (two digits, a dash, lowercase words).
    pub fn from_slug(slug: &str) -> Option<Chapter> {
        let (number, name) = slug.split_once('-')?;
        let well_formed = number.len() == 2
            && number.bytes().all(|b| b.is_ascii_digit())
            && !name.is_empty()
            && !name.starts_with('-')
            && !name.ends_with('-')
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        well_formed.then(|| Chapter {
            slug: slug.to_string(),
        })
    }

    /// `01`.
    pub fn number(&self) -> &str {
        self.slug.split_once('-').map_or("", |(number, _)| number)
    }

    /// `echo`.
    pub fn name(&self) -> &str {
        self.slug.split_once('-').map_or("", |(_, name)| name)
    }

    /// The chapter's Cargo package, `ch01-echo`.
    pub fn chapter_package(&self) -> String {
        format!("ch{}", self.slug)
    }

    /// The chapter's library crate as Rust code names it, `ch01_echo`.
    pub fn chapter_crate(&self) -> String {
        self.chapter_package().replace('-', "_")
    }

    /// The exercise's Cargo package, `ex01-echo`.
    pub fn exercise_package(&self) -> String {
        format!("ex{}", self.slug)
    }

    /// The exercise's library crate as Rust code names it, `ex01_echo`.
    pub fn exercise_crate(&self) -> String {
        self.exercise_package().replace('-', "_")
    }

    /// `chapters/01-echo`, relative to the workspace root.
    pub fn chapter_dir(&self) -> PathBuf {
        Path::new("chapters").join(&self.slug)
    }

    /// `exercises/01-echo`, relative to the workspace root.
    pub fn exercise_dir(&self) -> PathBuf {
        Path::new("exercises").join(&self.slug)
    }

    /// `workshop/hints/01-echo.md`: the task and hints for each todo, relative to the root.
    pub fn hints_file(&self) -> PathBuf {
        Path::new("workshop/hints").join(format!("{}.md", self.slug))
    }

    /// `book/src/01-echo.md`: the chapter the exercise follows.
    pub fn chapter_page(&self) -> PathBuf {
        Path::new("book/src").join(format!("{}.md", self.slug))
    }

    /// `book/src/exercises/01-echo.md`: the exercise's page in the book (generated).
    pub fn exercise_page(&self) -> PathBuf {
        Path::new("book/src/exercises").join(format!("{}.md", self.slug))
    }
}

/// The workspace root: the directory above this crate. The workshop runs from a checkout of the
/// repository through cargo (`cargo workshop`, `cargo test`), which tells it where the crate is;
/// the path it was built at is the fallback.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .filter(|dir| dir.join("Cargo.toml").is_file())
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir
        .parent()
        .map_or_else(|| manifest_dir.clone(), Path::to_path_buf)
}

/// Every chapter under `root/chapters`, in order. A directory there that does not look like a
/// chapter (`NN-name` with a `Cargo.toml`) is an error rather than something silently skipped:
/// a chapter the workshop did not see would be a chapter without an exercise.
pub fn discover(root: &Path) -> Result<Vec<Chapter>, String> {
    let dir = root.join("chapters");
    let entries =
        fs::read_dir(&dir).map_err(|err| format!("cannot list {}: {err}", dir.display()))?;
    let mut chapters = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|err| format!("cannot list {}: {err}", dir.display()))?;
        let file_name = entry.file_name();
        let Some(slug) = file_name.to_str() else {
            return Err(format!(
                "{}: a file name that is not UTF-8",
                entry.path().display()
            ));
        };
        if slug.starts_with('.') || !entry.path().is_dir() {
            continue;
        }
        let chapter = Chapter::from_slug(slug).ok_or_else(|| {
            format!("chapters/{slug}: a chapter directory must be named NN-name (e.g. 01-echo)")
        })?;
        if !entry.path().join("Cargo.toml").is_file() {
            return Err(format!("chapters/{slug} has no Cargo.toml"));
        }
        chapters.push(chapter);
    }
    chapters.sort_by(|a, b| a.slug.cmp(&b.slug));
    Ok(chapters)
}

/// Finds the chapter a participant means: `1`, `01`, `01-echo`, `echo` or `ex01-echo`.
pub fn find<'a>(chapters: &'a [Chapter], wanted: &str) -> Result<&'a Chapter, String> {
    let wanted = wanted.trim().trim_end_matches('/');
    let wanted = wanted.strip_prefix("exercises/").unwrap_or(wanted);
    // `ex01-echo`, the package, but not `extra`, a name that happens to start with "ex".
    let wanted = match wanted.strip_prefix("ex") {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => rest,
        _ => wanted,
    };
    let found = chapters.iter().find(|chapter| {
        chapter.slug == wanted
            || chapter.name() == wanted
            || chapter.number() == wanted
            || wanted.parse::<u32>().ok() == chapter.number().parse::<u32>().ok()
                && wanted.bytes().all(|b| b.is_ascii_digit())
    });
    found.ok_or_else(|| {
        let known: Vec<&str> = chapters.iter().map(|c| c.slug.as_str()).collect();
        format!(
            "no exercise {wanted:?}; the exercises are: {}",
            known.join(", ")
        )
    })
}

/// Reads a file as UTF-8, naming it in the error.
pub fn read(path: &Path) -> Result<String, String> {
    fs::read_to_string(path).map_err(|err| format!("cannot read {}: {err}", path.display()))
}

/// Every file under `dir` (recursively), as paths relative to `dir`, sorted. Skips hidden entries
/// and `target/` directories, which are build output, not source.
pub fn files_under(dir: &Path) -> io::Result<Vec<PathBuf>> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || name == "target" {
                continue;
            }
            let path = entry.path();
            if path.is_dir() {
                walk(base, &path, out)?;
            } else if let Ok(relative) = path.strip_prefix(base) {
                out.push(relative.to_path_buf());
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    if dir.is_dir() {
        walk(dir, dir, &mut out)?;
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every name the workshop derives from a chapter follows from its directory name.
    #[test]
    fn names_follow_from_the_directory_name() {
        let chapter = Chapter::from_slug("03-broker").expect("a well-formed slug");
        assert_eq!(chapter.number(), "03");
        assert_eq!(chapter.name(), "broker");
        assert_eq!(chapter.chapter_package(), "ch03-broker");
        assert_eq!(chapter.chapter_crate(), "ch03_broker");
        assert_eq!(chapter.exercise_package(), "ex03-broker");
        assert_eq!(chapter.exercise_crate(), "ex03_broker");
        assert_eq!(chapter.exercise_dir(), Path::new("exercises/03-broker"));
    }

    /// Directory names that are not `NN-name` are not chapters.
    #[test]
    fn malformed_directory_names_are_not_chapters() {
        for slug in [
            "1-echo", "01echo", "01-", "01-Echo", "ab-echo", "01--echo", "01-echo-",
        ] {
            assert!(Chapter::from_slug(slug).is_none(), "{slug:?} is no chapter");
        }
    }

    /// A participant may name an exercise by number, with or without the leading zero, by its
    /// name, or by its directory or package.
    #[test]
    fn exercises_can_be_named_several_ways() {
        let chapters: Vec<Chapter> = ["01-echo", "02-split", "10-extra"]
            .iter()
            .filter_map(|slug| Chapter::from_slug(slug))
            .collect();
        for wanted in [
            "2",
            "02",
            "02-split",
            "split",
            "ex02-split",
            "exercises/02-split/",
        ] {
            let found = find(&chapters, wanted).map(|chapter| chapter.slug.as_str());
            assert_eq!(found, Ok("02-split"), "{wanted:?} should name 02-split");
        }
        assert_eq!(
            find(&chapters, "10").map(|c| c.slug.as_str()),
            Ok("10-extra")
        );
        let error = find(&chapters, "7").expect_err("there is no exercise 7");
        assert!(
            error.contains("01-echo, 02-split"),
            "the error should list the exercises: {error}"
        );
    }
}
