// Fan-out workshop, exercise 06-limits: generated from chapters/06-limits by `cargo workshop generate`.
//
// Do not edit: these are the chapter's stage tests, only renamed for this crate. Run them
// with `cargo workshop check 06` (or `cargo test -p ex06-limits`).

//! The stage tests for chapter 06, run against this crate's server.
//! The scenarios live in the `stage-tests` crate so the workshop runs the very same ones.

fn main() -> std::process::ExitCode {
    stage_tests::run(
        stage_tests::target!(ex06_limits, "ex06-limits"),
        &[
            stage_tests::contract::SCENARIOS,
            stage_tests::heartbeat::SCENARIOS,
            stage_tests::broadcast::SCENARIOS,
            stage_tests::bounded::SCENARIOS,
            stage_tests::shutdown::SCENARIOS,
            stage_tests::stats::SCENARIOS,
            stage_tests::limits::SCENARIOS,
        ],
    )
}
