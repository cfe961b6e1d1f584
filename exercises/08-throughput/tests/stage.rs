// Fan-out workshop, exercise 08-throughput: generated from chapters/08-throughput by `cargo workshop generate`.
//
// Do not edit: these are the chapter's stage tests, only renamed for this crate. Run them
// with `cargo workshop check 08` (or `cargo test -p ex08-throughput`).

//! The stage tests for chapter 08, run against this crate's server.
//! The scenarios live in the `stage-tests` crate so the workshop runs the very same ones.

fn main() -> std::process::ExitCode {
    stage_tests::run(
        stage_tests::target!(ex08_throughput, "ex08-throughput"),
        &[
            stage_tests::contract::SCENARIOS,
            stage_tests::heartbeat::SCENARIOS,
            stage_tests::broadcast::SCENARIOS,
            stage_tests::bounded::SCENARIOS,
            stage_tests::shutdown::SCENARIOS,
            stage_tests::stats::SCENARIOS,
            stage_tests::limits::SCENARIOS,
            stage_tests::timeouts::SCENARIOS,
            stage_tests::throughput::SCENARIOS,
        ],
    )
}
