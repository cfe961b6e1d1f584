//! The stage test suites of Fan-out, and the clients they drive servers with.
//!
//! A *scenario* is one behaviour of one stage, written once here as an `async fn` that takes a
//! [`Target`]: the server under test. Each chapter crate (and each workshop exercise) has a
//! `tests/stage.rs` that names its target with [`target!`] and the suites it must pass, and hands
//! them to [`run`], which reports them like `cargo test` does. Because the scenarios live here,
//! an exercise is checked by exactly the tests that check its chapter.
//!
//! Every scenario talks to a real server over loopback on a port the OS picks, and every wait in
//! it is bounded (see [`WAIT`]), so a broken server fails a test instead of hanging it.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    panic::AssertUnwindSafe,
    path::Path,
    pin::Pin,
    process::ExitCode,
    time::{Duration, Instant},
};

use futures_util::FutureExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};

pub mod chat;
pub mod client;
pub mod http;
pub mod process;
pub mod redis;
pub mod server;

pub mod bounded;
pub mod broadcast;
pub mod cluster;
pub mod commands;
pub mod contract;
pub mod echo;
pub mod faults;
pub mod heartbeat;
pub mod history;
pub mod limits;
pub mod metrics;
pub mod names;
pub mod origin;
pub mod private;
pub mod ratelimit;
pub mod rooms;
pub mod shutdown;
pub mod stats;
pub mod tcp;
pub mod throughput;
pub mod timeouts;

mod health;

pub use client::Client;
pub use process::ServerProcess;
pub use server::TestServer;

/// How long a scenario waits for something that should happen (a reply, a close, a line).
pub const WAIT: Duration = Duration::from_secs(5);
/// How long a scenario watches for something that should *not* happen (an echo to the sender).
pub const QUIET: Duration = Duration::from_millis(300);
/// The WebSocket URL of a server listening on `addr`.
pub fn ws_url(addr: SocketAddr) -> String {
    format!("ws://{addr}/ws")
}

/// How often [`wait_until`] asks again.
const POLL: Duration = Duration::from_millis(20);

/// Asks `probe` every 20 ms until what it gives satisfies `done`, for at most `limit`: for what a
/// server does on its own time with no signal a test could wait on (a count in `/stats`, a line
/// in its log, a socket it closes). `Ok` is the value that satisfied `done`; `Err` is the last
/// one, for the failure message.
pub async fn wait_until<T, Probe>(
    limit: Duration,
    mut probe: impl FnMut() -> Probe,
    done: impl Fn(&T) -> bool,
) -> Result<T, T>
where
    Probe: Future<Output = T>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let value = probe().await;
        if done(&value) {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(value);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A TCP connection to `addr` (within [`WAIT`]) whose receive buffer is about `bytes` (the kernel
/// rounds it), so that the server's writes to a peer that stops reading stop after little data.
/// The size is set before connecting: the window scale is agreed on in the TCP handshake.
pub async fn connect_with_receive_buffer(addr: SocketAddr, name: &str, bytes: u32) -> TcpStream {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .unwrap_or_else(|err| panic!("{name}: cannot create a socket: {err}"));
    socket
        .set_recv_buffer_size(bytes)
        .unwrap_or_else(|err| panic!("{name}: cannot shrink the receive buffer: {err}"));
    tokio::time::timeout(WAIT, socket.connect(addr))
        .await
        .unwrap_or_else(|_| panic!("{name}: no TCP connection to {addr} within {WAIT:?}"))
        .unwrap_or_else(|err| panic!("{name}: cannot connect to {addr}: {err}"))
}

/// No scenario runs longer than this, whatever it waits for.
pub const SCENARIO_LIMIT: Duration = Duration::from_secs(60);

/// A boxed future, as the function pointers below need.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Starts a chapter's server on `listener` with the given command-line flags (as the binary
/// would parse them), until `shutdown` resolves.
pub type Launch = fn(TcpListener, Vec<String>, BoxFuture<()>) -> BoxFuture<io::Result<()>>;

/// The server under test: a chapter crate or an exercise crate.
#[derive(Clone, Copy)]
pub struct Target {
    /// The chapter's name as its page shows it, e.g. `03-broker`.
    pub chapter: &'static str,
    /// The Cargo package, e.g. `ch03-broker`.
    pub package: &'static str,
    /// The built binary, for scenarios about the process itself (flags, signals, exit codes).
    /// `None` when only the library is at hand; those scenarios are then skipped.
    pub bin: Option<&'static str>,
    /// Runs the library's `serve` in this process.
    pub launch: Launch,
    /// How the server talks to WebSocket clients (see [`Wire`]); [`target!`] takes it from the
    /// chapter's number.
    pub wire: Wire,
    /// Flags every server of this target gets before a scenario's own (which come after, and
    /// win), made for each server from a temporary directory of its own that lives as long as
    /// the server: chapter 10 puts its database there. `None` (what [`target!`] gives): none.
    pub base_flags: Option<BaseFlags>,
}

/// Makes a server's base flags (see [`Target::base_flags`]) from its temporary directory.
pub type BaseFlags = fn(&Path) -> Vec<String>;

impl Target {
    /// The base flags for one server of this target, and the directory they may point into,
    /// which the caller keeps for as long as the server runs. No hook, no directory.
    pub fn base_flags(&self) -> (Vec<String>, Option<tempfile::TempDir>) {
        let Some(hook) = self.base_flags else {
            return (Vec::new(), None);
        };
        let dir = tempfile::tempdir()
            .unwrap_or_else(|err| panic!("cannot make a temporary directory for a server: {err}"));
        (hook(dir.path()), Some(dir))
    }
}

// ANCHOR: wire
/// How a server talks to its WebSocket clients, so that the suites written for the plain relay of
/// chapters 01 to 08 also run against the chat of chapter 09 and later.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Wire {
    /// What a client sends, the others receive as it was sent.
    #[default]
    Plain,
    /// The chat protocol (chapter 09): text is a line to say (or a command), and what arrives is
    /// a JSON object with a `kind`. On this wire a [`Client`]'s `recv` and `expect_*` take a
    /// `chat` object for the text it carries, and pass over the server's own notices (`welcome`,
    /// `joined`, `who`, ...), so a scenario about relaying reads the same on both wires. Binary
    /// data is relayed as it came on both.
    Chat,
}

/// The first chapter whose server speaks the chat protocol.
pub const FIRST_CHAT_CHAPTER: u32 = 9;

impl Wire {
    /// The wire of a chapter, from the number its name starts with (`09-rooms` → 9): the
    /// chapters build on each other, so from [`FIRST_CHAT_CHAPTER`] on, every server (a chapter,
    /// its exercise, a crate built another way for comparison) speaks the chat protocol.
    pub const fn of_chapter(chapter: &str) -> Wire {
        match chapter.as_bytes() {
            [tens @ b'0'..=b'9', ones @ b'0'..=b'9', ..]
                if ((*tens - b'0') as u32) * 10 + ((*ones - b'0') as u32) >= FIRST_CHAT_CHAPTER =>
            {
                Wire::Chat
            }
            _ => Wire::Plain,
        }
    }
}

tokio::task_local! {
    /// The wire of the scenario running in this task: set by [`run_scenario`], read by
    /// [`Client::connect`], so that the scenarios themselves need not say it.
    static WIRE: Wire;
    /// The target of the scenario running in this task: set by [`run_scenario`], read by
    /// [`ServerProcess::start`], which is given the binary only, for the target's base flags.
    static TARGET: Target;
}

/// The target of the scenario running now, if any (see [`TARGET`]).
pub(crate) fn current_target() -> Option<Target> {
    TARGET.try_with(|target| *target).ok()
}

/// The wire of the scenario running now ([`Wire::Plain`] outside of one, and in tasks a scenario
/// spawns: those take `Client::on_wire` to say otherwise).
pub fn current_wire() -> Wire {
    WIRE.try_with(|wire| *wire).unwrap_or_default()
}

// ANCHOR_END: wire

/// Names a chapter (or exercise) crate as a [`Target`]. Use it in the crate's own integration
/// test, where Cargo sets `CARGO_BIN_EXE_<package>`:
///
/// ```ignore
/// stage_tests::target!(ch01_echo, "ch01-echo")
/// ```
///
/// The crate must expose `CHAPTER`, a `Config` that parses the chapter's flags with clap, and
/// `serve(listener, config, shutdown)`. `target!(crate_name, "package", library_only)` leaves the
/// binary out, for callers outside the crate.
#[macro_export]
macro_rules! target {
    ($krate:ident, $package:literal) => {
        $crate::Target {
            bin: Some(env!(concat!("CARGO_BIN_EXE_", $package))),
            ..$crate::target!($krate, $package, library_only)
        }
    };
    ($krate:ident, $package:literal, library_only) => {
        $crate::Target {
            chapter: $krate::CHAPTER,
            package: $package,
            bin: None,
            wire: $crate::Wire::of_chapter($krate::CHAPTER),
            base_flags: None,
            launch: |listener, flags, shutdown| {
                Box::pin(async move {
                    let args = std::iter::once(String::from($package)).chain(flags);
                    let config =
                        <$krate::Config as $crate::__private::clap::Parser>::try_parse_from(args)
                            .map_err(|err| {
                            std::io::Error::new(std::io::ErrorKind::InvalidInput, err.to_string())
                        })?;
                    $krate::serve(listener, config, shutdown).await
                })
            },
        }
    };
}

#[doc(hidden)]
pub mod __private {
    pub use clap;
}

/// One behaviour of one stage.
#[derive(Clone, Copy)]
pub struct Scenario {
    /// The suite it belongs to, e.g. `echo`.
    pub suite: &'static str,
    /// What it proves, as a function name, e.g. `echoes_text_as_text`.
    pub name: &'static str,
    /// Whether it needs the built binary (it is skipped where there is none).
    pub needs_binary: bool,
    /// The scenario itself. It fails by panicking, as tests do.
    pub run: fn(Target) -> BoxFuture<()>,
}

/// Lists a module's scenarios: `scenarios![a, b, @binary c]`, where `@binary` marks a scenario
/// that drives the built binary rather than the library.
#[macro_export]
macro_rules! scenarios {
    (@needs_binary) => { false };
    (@needs_binary binary) => { true };
    ($($(@$binary:ident)? $name:ident),* $(,)?) => {
        &[$($crate::Scenario {
            suite: $crate::__suite_name(module_path!()),
            name: stringify!($name),
            needs_binary: $crate::scenarios!(@needs_binary $($binary)?),
            run: |target| Box::pin($name(target)),
        }),*]
    };
}

#[doc(hidden)]
pub const fn __suite_name(module_path: &'static str) -> &'static str {
    // `stage_tests::echo` -> `echo`: the last path segment.
    let bytes = module_path.as_bytes();
    let mut start = bytes.len();
    while start > 0 && bytes[start - 1] != b':' {
        start -= 1;
    }
    let (_, last) = bytes.split_at(start);
    match std::str::from_utf8(last) {
        Ok(name) => name,
        Err(_) => module_path,
    }
}

/// Runs one scenario against `target` on a fresh runtime, within [`SCENARIO_LIMIT`].
/// `Err` carries the failure message.
pub fn run_scenario(scenario: &Scenario, target: Target) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|err| format!("cannot build a tokio runtime: {err}"))?;
    let outcome = runtime.block_on(async {
        let scenario_future = WIRE.scope(
            target.wire,
            TARGET.scope(
                target,
                AssertUnwindSafe((scenario.run)(target)).catch_unwind(),
            ),
        );
        tokio::time::timeout(SCENARIO_LIMIT, scenario_future).await
    });
    // Leave tasks the server spawned behind without waiting for them.
    runtime.shutdown_background();
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(panic)) => Err(panic_message(panic.as_ref())),
        Err(_) => Err(format!("the scenario took longer than {SCENARIO_LIMIT:?}")),
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = panic.downcast_ref::<String>() {
        message.clone()
    } else if let Some(message) = panic.downcast_ref::<&str>() {
        (*message).to_string()
    } else {
        "the scenario panicked".to_string()
    }
}

/// The `main` of a `tests/stage.rs` (with `harness = false`): runs every scenario of `suites`
/// against `target` and reports like `cargo test`, filters and `--list` included.
pub fn run(target: Target, suites: &[&[Scenario]]) -> ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    let trials = suites
        .iter()
        .flat_map(|suite| suite.iter())
        .map(|scenario| {
            let scenario = *scenario;
            let name = format!("{}::{}", scenario.suite, scenario.name);
            let skipped = scenario.needs_binary && target.bin.is_none();
            libtest_mimic::Trial::test(name, move || {
                run_scenario(&scenario, target).map_err(libtest_mimic::Failed::from)
            })
            .with_ignored_flag(skipped)
        })
        .collect();
    libtest_mimic::run(&args, trials).exit_code()
}

/// What happened to one scenario in [`check`].
#[derive(Debug, Clone)]
pub struct Outcome {
    /// `suite::name`.
    pub name: String,
    /// `Err` with the failure message, or `Ok`.
    pub result: Result<(), String>,
    /// How long it ran.
    pub took: Duration,
}

/// Runs `suites` against `target` quietly, one scenario after another, and returns what happened
/// (scenarios that need a binary are left out when `target` has none). With `stop_at_failure`,
/// stops after the first failure: enough to prove that a workshop starter does not pass.
pub fn check(target: Target, suites: &[&[Scenario]], stop_at_failure: bool) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for scenario in suites.iter().flat_map(|suite| suite.iter()) {
        if scenario.needs_binary && target.bin.is_none() {
            continue;
        }
        let started = Instant::now();
        let result = run_scenario(scenario, target);
        let failed = result.is_err();
        outcomes.push(Outcome {
            name: format!("{}::{}", scenario.suite, scenario.name),
            result,
            took: started.elapsed(),
        });
        if failed && stop_at_failure {
            break;
        }
    }
    outcomes
}

#[cfg(test)]
mod tests {
    use super::Wire;

    /// Chapters before 09 relay plainly; 09 and every later one speak the chat protocol; a name
    /// that does not start with two digits is taken for plain.
    #[test]
    fn the_wire_follows_the_chapter_number() {
        assert_eq!(Wire::of_chapter("08-throughput"), Wire::Plain);
        assert_eq!(Wire::of_chapter("09-rooms"), Wire::Chat);
        assert_eq!(Wire::of_chapter("12-later"), Wire::Chat);
        assert_eq!(Wire::of_chapter("rooms"), Wire::Plain);
        assert_eq!(Wire::of_chapter("9"), Wire::Plain);
    }
}
