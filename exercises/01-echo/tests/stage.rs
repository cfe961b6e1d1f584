// Fan-out workshop, exercise 01-echo: generated from chapters/01-echo by `cargo workshop generate`.
//
// Do not edit: these are the chapter's stage tests, only renamed for this crate. Run them
// with `cargo workshop check 01` (or `cargo test -p ex01-echo --no-fail-fast`).

//! The stage tests for chapter 01, run against this crate's server.
//! The scenarios live in the `stage-tests` crate so the workshop runs the very same ones.

fn main() -> std::process::ExitCode {
    stage_tests::run(
        stage_tests::target!(ex01_echo, "ex01-echo"),
        &[
            stage_tests::contract::SCENARIOS,
            stage_tests::echo::SCENARIOS,
        ],
    )
}
