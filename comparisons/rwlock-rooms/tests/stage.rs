//! Chapter 09's stage suites that are about the chat protocol, run against this crate's server,
//! so that the comparison is between two servers that do the same thing.
//!
//! Of chapter 04's `bounded` suite, the two scenarios about a client that stops reading run
//! here too (`--queue-capacity` sets the rooms' channel capacity): they are what `Lagged` does.
//!
//! Left out, and why:
//! - `tcp`: terminal clients are not built here (the comparison is about the WebSocket chat).
//! - The other suites of chapters 01 to 08 (`contract`, `heartbeat`, `broadcast`, `bounded`,
//!   `shutdown`, `stats`, `limits`, `timeouts`, `throughput`): they test the limits, timeouts,
//!   counts and shutdown of the relay chapters, which code written the usual way does not have.

fn main() -> std::process::ExitCode {
    // The scenarios of chapter 04 about a client that stops reading: a lagging receiver, seen
    // from outside (the rest of that suite checks `--queue-capacity`'s parser and the memory).
    let stalled: Vec<stage_tests::Scenario> = stage_tests::bounded::SCENARIOS
        .iter()
        .filter(|scenario| scenario.name.starts_with("a_stalled_client"))
        .copied()
        .collect();
    stage_tests::run(
        stage_tests::target!(cmp_rwlock_rooms, "cmp-rwlock-rooms"),
        &[
            &stalled,
            stage_tests::names::SCENARIOS,
            stage_tests::rooms::SCENARIOS,
            stage_tests::private::SCENARIOS,
            stage_tests::commands::SCENARIOS,
        ],
    )
}
