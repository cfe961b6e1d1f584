//! The stage tests for chapter 10, run against this crate's server: every suite of the chapters
//! before (through the chat wire, which `target!` picks for chapter 09 on: see
//! `stage_tests::Wire`), and the chat's own.
//! The scenarios live in the `stage-tests` crate so the workshop runs the very same ones.

fn main() -> std::process::ExitCode {
    stage_tests::run(
        stage_tests::target!(ch10_history, "ch10-history"),
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
            stage_tests::names::SCENARIOS,
            stage_tests::rooms::SCENARIOS,
            stage_tests::private::SCENARIOS,
            stage_tests::commands::SCENARIOS,
            stage_tests::tcp::SCENARIOS,
        ],
    )
}
