//! The stage tests for chapter 10, run against this crate's server: every suite of the chapters
//! before (through the chat wire, which `target!` picks for chapter 09 on: see
//! `stage_tests::Wire`), and the chat's own.
//! The scenarios live in the `stage-tests` crate so the workshop runs the very same ones.

/// What the suites of 04–09 never had to reckon with, lifted for every server they start: they
/// send bursts of hundreds of messages and connect dozens of clients from 127.0.0.1. This
/// chapter's own suites (`ratelimit`, `origin`) set the limits again in their own flags, which
/// come after these and win.
const BASE_FLAGS: &[&str] = &["--rate-limit", "off", "--max-connections-per-ip", "off"];

fn main() -> std::process::ExitCode {
    stage_tests::run(
        stage_tests::Target {
            base_flags: BASE_FLAGS,
            ..stage_tests::target!(ch10_history, "ch10-history")
        },
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
            stage_tests::ratelimit::SCENARIOS,
            stage_tests::origin::SCENARIOS,
        ],
    )
}
