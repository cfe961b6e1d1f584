//! The stage tests for chapter 02, run against this crate's server.
//! The scenarios live in the `stage-tests` crate so the workshop runs the very same ones.

fn main() -> std::process::ExitCode {
    stage_tests::run(
        stage_tests::target!(ch02_split, "ch02-split"),
        &[
            stage_tests::contract::SCENARIOS,
            stage_tests::echo::SCENARIOS,
            stage_tests::heartbeat::SCENARIOS,
            stage_tests::heartbeat::WITH_ECHO,
        ],
    )
}
