//! Running an exercise's stage tests and reading what happened.
//!
//! The runner starts `cargo test -p exNN-name --test stage -- --format json` as a child process
//! instead of calling `stage_tests::check` in this process. That costs a process and a JSON parse,
//! and buys what a workshop needs:
//! - a participant's half-written exercise that does not compile is reported (with the compiler's
//!   own messages) for that exercise alone; linked into this binary, it would stop the runner
//!   from building at all, and with it the progress of every other exercise;
//! - the scenarios that need the built binary (flags, signals, exit codes) run too, because only
//!   a crate's own integration test knows where Cargo put its binary;
//! - cargo rebuilds whatever the participant just changed, and a new exercise needs no change
//!   here: the runner finds exercises by their directories, not by linking them.
//!
//! Nested cargo is fine: cargo releases its build lock before it runs a binary.

use std::{
    env,
    ffi::OsString,
    path::Path,
    process::{Command, Stdio},
};

use serde_json::Value;

/// How one scenario ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Passed,
    Failed,
    Ignored,
}

/// One scenario's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    /// `suite::name`, e.g. `echo::echoes_text_as_text`.
    pub name: String,
    pub status: Status,
    /// Why it failed.
    pub message: Option<String>,
}

/// A panic in the participant's own code, as the test run's stderr reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Panic {
    /// `exercises/01-echo/src/lib.rs:60:5`.
    pub location: String,
    /// `not yet implemented: …`.
    pub message: String,
}

/// What running an exercise's stage tests came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// The tests ran: each scenario's result (in the order they started), and the panics seen
    /// in the exercise's code (once per place).
    Ran {
        scenarios: Vec<Scenario>,
        panics: Vec<Panic>,
    },
    /// The exercise did not build; cargo's messages.
    DidNotBuild(String),
    /// Cargo could not be run at all.
    CannotRun(String),
}

impl Report {
    /// `(passed, failed)` counts; ignored scenarios count as neither.
    pub fn counts(&self) -> (usize, usize) {
        match self {
            Report::Ran { scenarios, .. } => (
                scenarios
                    .iter()
                    .filter(|s| s.status == Status::Passed)
                    .count(),
                scenarios
                    .iter()
                    .filter(|s| s.status == Status::Failed)
                    .count(),
            ),
            _ => (0, 0),
        }
    }

    /// Every scenario ran and passed (and there was at least one).
    pub fn all_passed(&self) -> bool {
        let (passed, failed) = self.counts();
        passed > 0 && failed == 0
    }
}

/// Runs `package`'s stage tests from `root`, passing `filter` on to the test binary. With
/// `colour`, cargo's own messages (compiler errors) keep their colours.
pub fn stage_tests(root: &Path, package: &str, filter: Option<&str>, colour: bool) -> Report {
    // `cargo run` tells the program which cargo started it; use the same one.
    let cargo = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut command = Command::new(cargo);
    command
        .current_dir(root)
        .args(["test", "--quiet", "--package", package, "--test", "stage"])
        .args(["--color", if colour { "always" } else { "never" }])
        .args(["--", "--format", "json"])
        .args(filter)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null());
    let output = match command.output() {
        Ok(output) => output,
        Err(err) => return Report::CannotRun(format!("cannot start cargo: {err}")),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    parse(&stdout, &stderr, &exercise_dir_of(package))
}

/// `exercises/01-echo/` for `ex01-echo`: where the participant's code is, as panic locations
/// name it.
fn exercise_dir_of(package: &str) -> String {
    format!(
        "exercises/{}/",
        package.strip_prefix("ex").unwrap_or(package)
    )
}

/// Reads the JSON lines the test binary printed and the panics on stderr. Without a line saying
/// the suite started, the binary never ran: the build failed, and stderr says why.
pub fn parse(stdout: &str, stderr: &str, exercise_dir: &str) -> Report {
    let mut started = false;
    let mut scenarios: Vec<Scenario> = Vec::new();
    for line in stdout.lines() {
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let kind = event.get("type").and_then(Value::as_str);
        let what = event.get("event").and_then(Value::as_str);
        let name = event.get("name").and_then(Value::as_str);
        match (kind, what, name) {
            (Some("suite"), Some("started"), _) => started = true,
            (Some("test"), Some("started"), Some(name))
                if !scenarios.iter().any(|s| s.name == name) =>
            {
                scenarios.push(Scenario {
                    name: name.to_string(),
                    status: Status::Ignored,
                    message: None,
                });
            }
            (Some("test"), Some("started"), _) => {}
            (Some("test"), Some(result), Some(name)) => {
                let status = match result {
                    "ok" => Status::Passed,
                    "failed" => Status::Failed,
                    _ => Status::Ignored,
                };
                let message = event
                    .get("stdout")
                    .and_then(Value::as_str)
                    .map(failure_message);
                match scenarios.iter_mut().find(|s| s.name == name) {
                    Some(scenario) => {
                        scenario.status = status;
                        scenario.message = message;
                    }
                    None => scenarios.push(Scenario {
                        name: name.to_string(),
                        status,
                        message,
                    }),
                }
            }
            _ => {}
        }
    }
    if !started {
        return Report::DidNotBuild(stderr.trim_end().to_string());
    }
    Report::Ran {
        scenarios,
        panics: panics(stderr, exercise_dir),
    }
}

/// libtest-mimic reports a failure as `Error: "<message>"` plus a newline.
fn failure_message(stdout: &str) -> String {
    let message = stdout.trim_end();
    let message = message.strip_prefix("Error: \"").unwrap_or(message);
    let message = message.strip_suffix('"').unwrap_or(message);
    message.to_string()
}

/// The panics whose location is in the exercise's own code, once per location. The default panic
/// hook writes `thread '…' panicked at FILE:LINE:COL:` and then the message.
fn panics(stderr: &str, exercise_dir: &str) -> Vec<Panic> {
    let lines: Vec<&str> = stderr.lines().collect();
    let mut found: Vec<Panic> = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let Some(at) = line.find("panicked at ") else {
            continue;
        };
        let location = line[at + "panicked at ".len()..]
            .trim_end_matches(':')
            .trim();
        if !location.starts_with(exercise_dir) || found.iter().any(|p| p.location == location) {
            continue;
        }
        let message = lines
            .get(index + 1)
            .filter(|next| !next.starts_with("note:") && !next.contains("panicked at "))
            .map_or_else(String::new, |next| next.trim().to_string());
        found.push(Panic {
            location: location.to_string(),
            message,
        });
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const STDOUT: &str = r#"{ "type": "suite", "event": "started", "test_count": 3 }
{ "type": "test", "event": "started", "name": "contract::page_is_served" }
{ "type": "test", "event": "started", "name": "echo::echoes_text_as_text" }
{ "type": "test", "name": "contract::page_is_served", "event": "ok" }
{ "type": "test", "name": "echo::echoes_text_as_text", "event": "failed", "stdout": "Error: \"alice: expected a message, the connection ended\"\n" }
{ "type": "test", "event": "started", "name": "contract::sigterm" }
{ "type": "test", "name": "contract::sigterm", "event": "ignored" }
{ "type": "suite", "event": "failed", "passed": 1, "failed": 1, "ignored": 1, "measured": 0, "filtered_out": 0, "exec_time": 0.5 }
"#;

    const STDERR: &str = "\
thread 'tokio-runtime-worker' panicked at exercises/01-echo/src/lib.rs:62:5:
not yet implemented: Loop over socket.recv()
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace
thread 'tokio-runtime-worker' panicked at exercises/01-echo/src/lib.rs:62:5:
not yet implemented: Loop over socket.recv()
thread 'echo::echoes_text_as_text' panicked at tests/src/client.rs:119:25:
alice: expected a message, the connection ended
";

    /// Each scenario's result and failure message come out of the JSON lines, in start order.
    #[test]
    fn results_come_from_the_json_lines() {
        let report = parse(STDOUT, STDERR, "exercises/01-echo/");
        let Report::Ran { scenarios, .. } = &report else {
            panic!("the tests ran, got {report:?}");
        };
        let summary: Vec<(&str, Status)> = scenarios
            .iter()
            .map(|s| (s.name.as_str(), s.status))
            .collect();
        assert_eq!(
            summary,
            [
                ("contract::page_is_served", Status::Passed),
                ("echo::echoes_text_as_text", Status::Failed),
                ("contract::sigterm", Status::Ignored),
            ]
        );
        assert_eq!(
            scenarios[1].message.as_deref(),
            Some("alice: expected a message, the connection ended")
        );
        assert_eq!(report.counts(), (1, 1));
        assert!(!report.all_passed());
    }

    /// Panics in the exercise's code are listed once per place; panics in the tests are not.
    #[test]
    fn panics_in_the_exercise_are_collected_once() {
        let Report::Ran { panics, .. } = parse(STDOUT, STDERR, "exercises/01-echo/") else {
            panic!("the tests ran");
        };
        assert_eq!(
            panics,
            [Panic {
                location: "exercises/01-echo/src/lib.rs:62:5".to_string(),
                message: "not yet implemented: Loop over socket.recv()".to_string(),
            }]
        );
    }

    /// Without the suite's start line the build failed, and stderr is the reason.
    #[test]
    fn no_suite_means_the_build_failed() {
        let report = parse("", "error[E0308]: mismatched types\n", "exercises/01-echo/");
        assert_eq!(
            report,
            Report::DidNotBuild("error[E0308]: mismatched types".to_string())
        );
    }
}
