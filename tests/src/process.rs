//! A chapter's binary run as a child process, for what only a process shows: its flags, the
//! `listening on` line, its exit code after a signal, what it writes to stderr.

use std::{
    net::SocketAddr,
    process::{ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use nix::{sys::signal::Signal, unistd::Pid};
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, BufReader},
    process::{Child, Command},
};

use crate::WAIT;

/// A running server process, killed when dropped.
pub struct ServerProcess {
    /// Where it said it listens.
    pub addr: SocketAddr,
    child: Child,
    stderr: Arc<Mutex<String>>,
    /// The lines of stdout after the first, as they come.
    stdout: tokio::sync::watch::Receiver<Vec<String>>,
    /// The directory of the target's base flags, kept while the process runs.
    _dir: Option<tempfile::TempDir>,
}

/// The base flags for a process of `bin`, when `bin` is the binary of the target whose scenario
/// runs now (see [`Target::base_flags`](crate::Target::base_flags)); none otherwise.
fn base_flags(bin: &str) -> (Vec<String>, Option<tempfile::TempDir>) {
    match crate::current_target() {
        Some(target) if target.bin == Some(bin) => target.base_flags(),
        _ => (Vec::new(), None),
    }
}

impl ServerProcess {
    /// Starts `bin --addr 127.0.0.1:0 <flags>` and waits (at most [`WAIT`]) for its
    /// `listening on http://IP:PORT` line. When `bin` is the binary of the scenario's target,
    /// the target's base flags come before `flags`.
    pub async fn start(bin: &str, flags: &[&str]) -> ServerProcess {
        let (base, dir) = base_flags(bin);
        let mut command = Command::new(bin);
        command
            .args(["--addr", "127.0.0.1:0"])
            .args(base)
            .args(flags);
        ServerProcess::spawn(command, bin, dir).await
    }

    /// Like [`start`](Self::start), but the process may open at most `open_files` files
    /// (`RLIMIT_NOFILE`, set by util-linux's `prlimit`, which then runs the binary in its place):
    /// for scenarios about a server that runs out of file descriptors.
    pub async fn start_with_open_file_limit(
        bin: &str,
        flags: &[&str],
        open_files: u32,
    ) -> ServerProcess {
        let (base, dir) = base_flags(bin);
        let mut command = Command::new("prlimit");
        command
            .arg(format!("--nofile={open_files}"))
            .arg("--")
            .arg(bin)
            .args(["--addr", "127.0.0.1:0"])
            .args(base)
            .args(flags);
        ServerProcess::spawn(command, bin, dir).await
    }

    async fn spawn(
        mut command: Command,
        bin: &str,
        dir: Option<tempfile::TempDir>,
    ) -> ServerProcess {
        let mut child = command
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {bin}: {err}"));
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(pipe) = child.stderr.take() {
            tokio::spawn(collect(pipe, Arc::clone(&stderr)));
        }
        let stdout = child.stdout.take().expect("the child's stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("{bin} printed no line within {WAIT:?}"))
            .expect("reading the child's stdout")
            .unwrap_or_else(|| {
                panic!(
                    "{bin} closed stdout without printing a line; stderr: {}",
                    snapshot(&stderr)
                )
            });
        let addr = first
            .strip_prefix("listening on http://")
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("expected `listening on http://IP:PORT`, got {first:?}"));
        // Keep draining stdout so the child never blocks on a full pipe, and keep its lines.
        let (more, stdout) = tokio::sync::watch::channel(Vec::new());
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                more.send_modify(|lines| lines.push(line));
            }
        });
        ServerProcess {
            addr,
            child,
            stderr,
            stdout,
            _dir: dir,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("the process is still running")
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: Signal) {
        let pid = Pid::from_raw(i32::try_from(self.pid()).expect("a pid fits in i32"));
        nix::sys::signal::kill(pid, signal)
            .unwrap_or_else(|err| panic!("cannot send {signal}: {err}"));
    }

    /// Waits (at most `limit`) for the process to exit.
    pub async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let stderr = Arc::clone(&self.stderr);
        tokio::time::timeout(limit, self.child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the server did not exit within {limit:?}; stderr so far:\n{}",
                    snapshot(&stderr)
                )
            })
            .expect("waiting for the server process")
    }

    /// `ws://IP:PORT/ws`.
    pub fn ws_url(&self) -> String {
        crate::ws_url(self.addr)
    }

    /// The process's resident memory right now, in bytes (`VmRSS` in `/proc/PID/status`, Linux).
    pub fn rss_bytes(&self) -> u64 {
        crate::faults::resident_kib(self.pid()) * 1024
    }

    /// Waits (at most [`WAIT`]) for a line of stdout, after the `listening on` line, that starts
    /// with `prefix`, and returns the rest of it.
    pub async fn stdout_line(&mut self, prefix: &str) -> String {
        let find = |lines: &Vec<String>| {
            lines
                .iter()
                .find_map(|line| line.strip_prefix(prefix).map(str::to_string))
        };
        let found = tokio::time::timeout(WAIT, self.stdout.wait_for(|lines| find(lines).is_some()))
            .await
            .unwrap_or_else(|_| {
                panic!("the server printed no line starting {prefix:?} within {WAIT:?}")
            })
            .map(|lines| find(&lines))
            .unwrap_or_else(|_| {
                panic!("the server closed stdout before a line starting {prefix:?}")
            });
        found.unwrap_or_default()
    }

    /// Everything the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        snapshot(&self.stderr)
    }
}

async fn collect(pipe: impl AsyncRead + Unpin, into: Arc<Mutex<String>>) {
    let mut lines = BufReader::new(pipe).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let mut text = into.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        text.push_str(&line);
        text.push('\n');
    }
}

fn snapshot(text: &Arc<Mutex<String>>) -> String {
    text.lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone()
}

/// What a finished run printed.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `bin args…` to completion (at most [`WAIT`]), for flags that end the program at once.
pub async fn run_to_end(bin: &str, args: &[&str]) -> Finished {
    run_to_end_within(bin, args, WAIT).await
}

/// Runs `bin args…` to completion, at most `limit`: for a program that has something to wait
/// for before it ends, such as a database another process holds.
pub async fn run_to_end_within(bin: &str, args: &[&str], limit: Duration) -> Finished {
    let output = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(limit, output)
        .await
        .unwrap_or_else(|_| panic!("`{bin} {}` did not finish within {limit:?}", args.join(" ")))
        .unwrap_or_else(|err| panic!("cannot run {bin}: {err}"));
    Finished {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `bin flags…` and asserts it is refused at startup the way every bad flag must be: a
/// non-zero exit, one line on stderr that names `flag`, no panic, and no `listening on` line
/// (the mistake is caught before the server binds).
pub async fn assert_flag_refused(bin: &str, flags: &[&str], flag: &str) {
    let run = run_to_end(bin, flags).await;
    let given = flags.join(" ");
    assert!(
        !run.status.success(),
        "`{given}` should be refused at startup"
    );
    assert!(
        run.stderr.contains(flag),
        "the error for `{given}` should name {flag}:\n{}",
        run.stderr
    );
    assert_eq!(
        run.stderr
            .lines()
            .filter(|line| !line.trim().is_empty())
            .count(),
        1,
        "the error for `{given}` should be one line:\n{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("panicked"),
        "`{given}` must not panic:\n{}",
        run.stderr
    );
    assert!(
        !run.stdout.contains("listening on"),
        "`{given}` should be refused before the server binds, not after:\n{}",
        run.stdout
    );
}

/// The one line a refusal writes to stderr (blank lines aside); fails if it wrote more or none.
pub fn one_line(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    match lines.as_slice() {
        [line] => line,
        _ => panic!("expected one line on stderr, got:\n{stderr}"),
    }
}

/// The line of `bin --help` that documents `flag`; fails if `--help` does not list it.
pub async fn help_line(bin: &str, flag: &str) -> String {
    let help = run_to_end(bin, &["--help"]).await.stdout;
    help.lines()
        .find(|line| line.trim_start().starts_with(flag) || line.contains(&format!(" {flag} ")))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("--help should list {flag}:\n{help}"))
}
