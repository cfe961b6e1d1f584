//! The stage tests for chapter 06, run against this crate's server.
//! The scenarios live in the `stage-tests` crate so the workshop runs the very same ones.

fn main() -> std::process::ExitCode {
    stage_tests::run(
        stage_tests::target!(ch06_limits, "ch06-limits"),
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
