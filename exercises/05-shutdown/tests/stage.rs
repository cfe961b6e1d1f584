// Fan-out workshop, exercise 05-shutdown: generated from chapters/05-shutdown by `cargo workshop generate`.
//
// Do not edit: these are the chapter's stage tests, only renamed for this crate. Run them
// with `cargo workshop check 05` (or `cargo test -p ex05-shutdown --no-fail-fast`).

//! The stage tests for chapter 05, run against this crate's server.
//! The scenarios live in the `stage-tests` crate so the workshop runs the very same ones.

fn main() -> std::process::ExitCode {
    stage_tests::run(
        stage_tests::target!(ex05_shutdown, "ex05-shutdown"),
        &[
            stage_tests::contract::SCENARIOS,
            stage_tests::heartbeat::SCENARIOS,
            stage_tests::broadcast::SCENARIOS,
            stage_tests::bounded::SCENARIOS,
            stage_tests::shutdown::SCENARIOS,
            stage_tests::stats::SCENARIOS,
        ],
    )
}
