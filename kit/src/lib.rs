//! Plumbing that every chapter shares and no chapter teaches.
//!
//! The chapters differ in how they move messages; they do not differ in how they find a port,
//! print where they listen, set up logging, notice Ctrl+C or serve the browser page. Keeping those
//! here means `diff -r chapters/NN chapters/MM` shows only what a chapter teaches.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::{future::Future, io, net::SocketAddr, process::ExitCode, time::Duration};

use axum::response::Html;
use tokio::net::TcpListener;

/// The browser page, one file for every chapter (no CDN, no build step).
const PAGE: &str = include_str!("page.html");

/// The page served at `GET /`, with its header naming the chapter that serves it.
pub fn page(chapter: &str) -> Html<String> {
    Html(PAGE.replace("{{chapter}}", chapter))
}

/// Parses a flag like `30s`, `200ms` or `1m 30s` into a duration greater than zero (a zero
/// interval or timeout is always a mistake, and `tokio::time::interval` would panic on it).
pub fn positive_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|err| err.to_string())?;
    if duration.is_zero() {
        return Err("must be greater than zero".to_string());
    }
    Ok(duration)
}

/// A chapter's command line: `--addr`, which every chapter has, and the chapter's own flags, `C`
/// (its `Config`). [`chapter_command!`] gives it the chapter's name, version and description, and
/// [`parse_chapter_flags`] reads it.
#[derive(Debug, clap::Parser)]
pub struct Flags<C: clap::Args> {
    /// Address to listen on, HOST:PORT (port 0 picks a free port).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:3000")]
    pub addr: String,
    #[command(flatten)]
    pub config: C,
}

/// The command line of the chapter whose `main.rs` calls it: [`Flags`] with `Config` (the
/// chapter's flags), named and versioned after the calling crate, and described by `about`, the
/// line `--help` starts with.
#[macro_export]
macro_rules! chapter_command {
    ($config:ty, $about:expr) => {
        $crate::flags_command::<$config>(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"), $about)
    };
}

/// What [`chapter_command!`] expands to: the command for [`Flags`] with `C`, called `name`.
pub fn flags_command<C: clap::Args>(
    name: &'static str,
    version: &'static str,
    about: &'static str,
) -> clap::Command {
    <Flags<C> as clap::CommandFactory>::command()
        .name(name)
        .version(version)
        .about(about)
        .long_about(None)
}

/// Parses the command line with `command` (from [`chapter_command!`]) into [`Flags`]; mistakes
/// are reported as [`parse_flags`] reports them.
pub fn parse_chapter_flags<C: clap::Args>(command: clap::Command) -> Flags<C> {
    let parsed = command
        .try_get_matches()
        .and_then(|matches| <Flags<C> as clap::FromArgMatches>::from_arg_matches(&matches));
    match parsed {
        Ok(flags) => flags,
        Err(err) => exit_on_flag_error(err),
    }
}

/// Parses the command line. `--help` and `--version` print and exit 0 as usual; a mistake (an
/// unknown flag, a value that does not parse) is one line on stderr and exit code 2.
pub fn parse_flags<T: clap::Parser>() -> T {
    match T::try_parse() {
        Ok(flags) => flags,
        Err(err) => exit_on_flag_error(err),
    }
}

/// Reports a flag mistake on one line and exits with code 2, as clap does but without the usage
/// block: the first line already names the flag, and `--help` is one command away.
pub fn exit_on_flag_error(err: clap::Error) -> ! {
    if !err.use_stderr() {
        // Not a mistake: `--help` or `--version` asked for this text, on stdout.
        err.exit();
    }
    let rendered = err.render().to_string();
    let first_line = rendered.lines().next().unwrap_or("error: invalid flags");
    eprintln!("{first_line} (see --help)");
    std::process::exit(2);
}

/// Logs go to stderr, filtered by `RUST_LOG` (default: `info`, which shows connects and
/// disconnects but not every message).
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // `try_init` fails only if a subscriber is already set (e.g. a test set one): not our problem.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .try_init();
}

/// What every chapter's `main` does: log to stderr, bind `addr`, print the line scripts wait for
/// (`listening on http://IP:PORT`, with the real port), then run the chapter's server.
///
/// A user's mistake (an address in use, a host that does not resolve) is one line on stderr and
/// exit code 1, never a panic.
pub async fn run<F, Fut>(addr: &str, serve: F) -> ExitCode
where
    F: FnOnce(TcpListener) -> Fut,
    Fut: Future<Output = io::Result<()>>,
{
    init_tracing();
    let Some((listener, local)) = bind(addr).await else {
        return ExitCode::FAILURE;
    };
    // Build the server (and with it the signal handlers) before announcing the address: whoever
    // reads the line may connect, or send a signal, at once.
    let server = serve(listener);
    // Stdout is line-buffered, so the line is out before the first connection is accepted.
    println!("listening on http://{local}");
    match server.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(%err, "server stopped with an error");
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Binds `addr` and reads back the address really bound (port 0 becomes a real port). A failure
/// (an address in use, a host that does not resolve) is one line on stderr and `None`: the caller
/// exits with code 1.
pub async fn bind(addr: &str) -> Option<(TcpListener, SocketAddr)> {
    let listener = match TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("error: cannot listen on {addr}: {err}");
            return None;
        }
    };
    match listener.local_addr() {
        Ok(local) => Some((listener, local)),
        Err(err) => {
            eprintln!("error: cannot read the bound address: {err}");
            None
        }
    }
}

/// Resolves on Ctrl+C (SIGINT) or SIGTERM, whichever comes first.
///
/// The handlers are installed when this function is *called*, not when the future is first
/// polled: axum polls its shutdown future from a task of its own, a little later, and a signal
/// arriving in between would otherwise meet the default handler and kill the process with no
/// clean exit. Call it inside the tokio runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            tokio::select! {
                () = wait_for("SIGINT", interrupt) => {}
                () = wait_for("SIGTERM", terminate) => {}
            }
            tracing::info!("shutdown signal received");
        }
    }
    #[cfg(not(unix))]
    async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!(%err, "cannot listen for Ctrl+C");
            std::future::pending::<()>().await;
        }
        tracing::info!("shutdown signal received");
    }
}

/// Waits for one signal; if its handler could not be installed, says so and waits forever (the
/// other signal, or a kill, still ends the process).
#[cfg(unix)]
async fn wait_for(name: &str, handler: io::Result<tokio::signal::unix::Signal>) {
    match handler {
        Ok(mut handler) => {
            handler.recv().await;
        }
        Err(err) => {
            tracing::warn!(%err, "cannot listen for {name}");
            std::future::pending::<()>().await;
        }
    }
}
