//! Builds the Fan-out book.
//!
//! The book lives in `book/` (`book.toml`, `src/*.md`); its listings are included straight from
//! the chapter crates, so the code you read is the code the stage tests run. [`build_book`]
//! renders it into `book/build/` with mdBook and the Mermaid preprocessor, both as libraries:
//! nothing to install besides this workspace.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use mdbook_driver::MDBook;
use mdbook_mermaid::Mermaid;

pub mod answers;
pub mod runs;

/// The JavaScript that turns `<pre class="mermaid">` blocks into diagrams in the browser, as
/// `mdbook-mermaid` ships it (see `build.rs` for how we find it). Each entry is the file's name
/// and its content.
pub const MERMAID_JS: [(&str, &[u8]); 2] = [
    (
        "mermaid.min.js",
        include_bytes!(concat!(env!("MERMAID_ASSETS_DIR"), "/mermaid.min.js")),
    ),
    (
        "mermaid-init.js",
        include_bytes!(concat!(env!("MERMAID_ASSETS_DIR"), "/mermaid-init.js")),
    ),
];

/// Where, relative to the book's root, the Mermaid JavaScript is written before a build.
/// `book.toml` lists these files under `additional-js`, and `.gitignore` keeps them out of git.
pub const GENERATED_DIR: &str = "generated";

/// The book's root: the directory holding `book.toml`.
pub fn book_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("book"))
}

/// The workspace's root, where `chapters/` lives.
pub fn workspace_root() -> PathBuf {
    let root = book_root();
    root.parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| root.join(".."))
}

/// Renders the book into `book/build/` and returns that directory.
///
/// Note that mdBook reports an `{{#include}}` it cannot resolve as a log line, not as an error:
/// the tests in `tests/book.rs` look at the HTML to catch those.
pub fn build_book() -> Result<PathBuf> {
    let root = book_root();
    write_mermaid_js(&root)?;
    let mut book = MDBook::load(&root)
        .with_context(|| format!("cannot load the book at {}", root.display()))?;
    // Registered here rather than in book.toml, so mdBook runs the library instead of looking
    // for an `mdbook-mermaid` program on the PATH.
    book.with_preprocessor(Mermaid);
    book.build().context("cannot build the book")?;
    Ok(book.build_dir_for("html"))
}

/// Writes the Mermaid JavaScript into the book's source, where `additional-js` expects it.
/// A file that is already up to date is left alone.
fn write_mermaid_js(root: &Path) -> Result<()> {
    let dir = root.join(GENERATED_DIR);
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, content) in MERMAID_JS {
        let path = dir.join(name);
        if fs::read(&path).is_ok_and(|existing| existing == content) {
            continue;
        }
        fs::write(&path, content).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
