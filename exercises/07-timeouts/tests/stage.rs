// Fan-out workshop, exercise 07-timeouts: generated from chapters/07-timeouts by `cargo workshop generate`.
//
// Do not edit: these are the chapter's stage tests, only renamed for this crate. Run them
// with `cargo workshop check 07` (or `cargo test -p ex07-timeouts`).

//! The stage tests for chapter 07, run against this crate's server.
//! The scenarios live in the `stage-tests` crate so the workshop runs the very same ones.

fn main() -> std::process::ExitCode {
    stage_tests::run(
        stage_tests::target!(ex07_timeouts, "ex07-timeouts"),
        &[
            stage_tests::contract::SCENARIOS,
            stage_tests::heartbeat::SCENARIOS,
            stage_tests::broadcast::SCENARIOS,
            stage_tests::bounded::SCENARIOS,
            stage_tests::shutdown::SCENARIOS,
            stage_tests::stats::SCENARIOS,
            stage_tests::limits::SCENARIOS,
            stage_tests::timeouts::SCENARIOS,
        ],
    )
}
