//! The stage tests for chapter 01, run against this crate's server.
//! The scenarios live in the `stage-tests` crate so the workshop runs the very same ones.

fn main() -> std::process::ExitCode {
    stage_tests::run(
        stage_tests::target!(ch01_echo, "ch01-echo"),
        &[
            stage_tests::contract::SCENARIOS,
            stage_tests::echo::SCENARIOS,
        ],
    )
}
