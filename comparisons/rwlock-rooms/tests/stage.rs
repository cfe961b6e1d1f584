//! Chapter 09's stage suites that are about the chat protocol, run against this crate's server,
//! so that the comparison is between two servers that do the same thing.
//!
//! Left out, and why:
//! - `tcp`: terminal clients are not built here (the comparison is about the WebSocket chat).
//! - The suites of chapters 01 to 08 (`contract`, `heartbeat`, `broadcast`, `bounded`,
//!   `shutdown`, `stats`, `limits`, `timeouts`, `throughput`): they test the limits, timeouts,
//!   counts and shutdown of the relay chapters, which code written the usual way does not have.

fn main() -> std::process::ExitCode {
    stage_tests::run(
        stage_tests::target!(cmp_rwlock_rooms, "cmp-rwlock-rooms"),
        &[
            stage_tests::names::SCENARIOS,
            stage_tests::rooms::SCENARIOS,
            stage_tests::private::SCENARIOS,
            stage_tests::commands::SCENARIOS,
        ],
    )
}
