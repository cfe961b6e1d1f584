//! The Fan-out workshop: participants read a chapter, write its idea into an exercise crate, and
//! watch the chapter's stage tests go green.
//!
//! - [`generate`] turns each chapter crate into its exercise (`exercises/NN-name`): the chapter's
//!   code with its teaching regions replaced by `todo!`s, plus the exercise's book page.
//! - [`run`] runs an exercise's stage tests and reads their results.
//! - [`commands`] is what `cargo workshop …` does with both.

pub mod chapter;
pub mod commands;
pub mod generate;
pub mod hints;
pub mod regions;
pub mod run;
pub mod style;
