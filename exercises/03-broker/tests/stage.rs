// Fan-out workshop, exercise 03-broker: generated from chapters/03-broker by `cargo workshop generate`.
//
// Do not edit: these are the chapter's stage tests, only renamed for this crate. Run them
// with `cargo workshop check 03` (or `cargo test -p ex03-broker --no-fail-fast`).

//! The stage tests for chapter 03, run against this crate's server.
//! The scenarios live in the `stage-tests` crate so the workshop runs the very same ones.

fn main() -> std::process::ExitCode {
    stage_tests::run(
        stage_tests::target!(ex03_broker, "ex03-broker"),
        &[
            stage_tests::contract::SCENARIOS,
            stage_tests::heartbeat::SCENARIOS,
            stage_tests::broadcast::SCENARIOS,
        ],
    )
}
