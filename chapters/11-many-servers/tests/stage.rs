//! The stage tests for chapter 11, run against this crate's server: the cluster's (servers that
//! share a real `redis-server`, which each scenario starts), and every suite of the chapters
//! before (through the chat wire, which `target!` picks for chapter 09 on: see
//! `stage_tests::Wire`).
//! The scenarios live in the `stage-tests` crate so the workshop runs the very same ones.
//!
//! Every server a scenario starts gets its own database, in a temporary directory that lives as
//! long as the server (`Target::base_flags`): the suites of 04–09 run with history on, and no
//! two servers share a file. They also run with the rate limit and the per-IP limit off: they send
//! bursts of hundreds of messages and connect dozens of clients from 127.0.0.1, which is what
//! those limits are for. This chapter's own suites (`ratelimit`, `origin`, `metrics`) set the
//! limits again where they are about them.
//! A scenario's own flags come after these, and win.

use std::path::Path;

/// The flags every test server of this chapter starts with.
fn base_flags(dir: &Path) -> Vec<String> {
    let db = dir.join("history.db").display().to_string();
    [
        "--db",
        &db,
        "--rate-limit",
        "off",
        "--max-connections-per-ip",
        "off",
    ]
    .map(String::from)
    .to_vec()
}

fn main() -> std::process::ExitCode {
    stage_tests::run(
        stage_tests::Target {
            base_flags: Some(base_flags),
            ..stage_tests::target!(ch11_many_servers, "ch11-many-servers")
        },
        &[
            // This chapter's own suite first: the workshop's starter check stops at the first
            // failure, and the exercise's todos are all about the cluster.
            stage_tests::cluster::SCENARIOS,
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
            stage_tests::history::SCENARIOS,
            stage_tests::ratelimit::SCENARIOS,
            stage_tests::origin::SCENARIOS,
            stage_tests::metrics::SCENARIOS,
        ],
    )
}
