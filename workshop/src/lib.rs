//! The Fan-out workshop: participants read a chapter, write its idea into an exercise crate, and
//! watch the chapter's stage tests go green.
//!
//! - [`generate`] turns each chapter crate into its exercise (`exercises/NN-name`): the chapter's
//!   code with its teaching regions replaced by `todo!`s, plus the exercise's book page and the
//!   [`index`] that the participant's commands read instead of regenerating.
//! - [`run`] runs an exercise's stage tests and reads their results.
//! - [`commands`] is what `cargo workshop …` does with both.
//!
//! What the generator reads, it reads with real parsers: Rust with syn ([`rust`], [`regions`]),
//! manifests with toml_edit ([`manifest`]), hints with pulldown-cmark ([`hints`]).

use std::path::Path;

pub mod chapter;
pub mod commands;
pub mod generate;
pub mod hints;
pub mod index;
pub mod manifest;
pub mod regions;
pub mod run;
pub mod rust;
pub mod style;

/// Something wrong at a line of a file, before the file is known: the caller names the file
/// with [`LineError::at`], giving `path:line: message`, which editors and terminals can follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based.
    pub line: usize,
    pub message: String,
}

impl LineError {
    pub fn new(line: usize, message: impl Into<String>) -> LineError {
        LineError {
            line,
            message: message.into(),
        }
    }

    /// `path:line: message`.
    pub fn at(&self, path: &Path) -> String {
        format!("{}:{}: {}", path.display(), self.line, self.message)
    }
}
