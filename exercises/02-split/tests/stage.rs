// Fan-out workshop, exercise 02-split: generated from chapters/02-split by `cargo workshop generate`.
//
// Do not edit: these are the chapter's stage tests, only renamed for this crate. Run them
// with `cargo workshop check 02` (or `cargo test -p ex02-split --no-fail-fast`).

//! The stage tests for chapter 02, run against this crate's server.
//! The scenarios live in the `stage-tests` crate so the workshop runs the very same ones.

fn main() -> std::process::ExitCode {
    stage_tests::run(
        stage_tests::target!(ex02_split, "ex02-split"),
        &[
            stage_tests::contract::SCENARIOS,
            stage_tests::echo::SCENARIOS,
            stage_tests::heartbeat::SCENARIOS,
            stage_tests::heartbeat::WITH_ECHO,
        ],
    )
}
