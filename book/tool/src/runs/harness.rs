//! What runs are made of: the binaries, a server process and its log, clients that note what
//! they see the way the browser page does, a client that never reads, and try-it copies of a
//! chapter with one change applied.

use std::{
    env,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context, Result, anyhow, bail};
use nix::{sys::signal::Signal, unistd::Pid};
use stage_tests::{Client, client::Ending};
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader},
    net::TcpStream,
    process::{Child, Command},
    sync::{Mutex as AsyncMutex, Notify},
};

use super::{Mode, shape::strip_ansi};

/// How long a run waits for anything it expects (a line, a message, an exit).
pub const WAIT: Duration = Duration::from_secs(10);

/// `errno` for "text file busy" (Linux).
const ETXTBSY: i32 = 26;

/// What a run gets: its mode and the way to the binaries.
pub struct Ctx {
    pub mode: Mode,
    /// The run's name.
    pub run: &'static str,
    pub workspace: PathBuf,
    pub target_dir: PathBuf,
}

/// Builds run one at a time: cargo would make them wait for each other anyway.
static BUILD: AsyncMutex<()> = AsyncMutex::const_new(());
/// Set once `cargo build --bins` has succeeded in this process.
static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();

impl Ctx {
    pub async fn new(mode: Mode, run: &'static str) -> Result<Ctx> {
        let workspace = crate::workspace_root();
        let target_dir = match env::var_os("CARGO_TARGET_DIR") {
            Some(dir) => workspace.join(dir),
            None => workspace.join("target"),
        };
        Ok(Ctx {
            mode,
            run,
            workspace,
            target_dir,
        })
    }

    /// `record` in record mode, `shape` in shape mode.
    pub fn pick<T>(&self, record: T, shape: T) -> T {
        self.mode.pick(record, shape)
    }

    /// The debug build of the workspace binary `name` (e.g. `ch03-broker`), built first if need
    /// be. It runs `cargo build --bins` for the whole workspace (not `-p`), which builds with the
    /// features `cargo test` uses, so after `cargo test` has built everything it does nothing.
    pub async fn bin(&self, name: &str) -> Result<PathBuf> {
        if BUILT.get().is_none() {
            let _guard = BUILD.lock().await;
            if BUILT.get().is_none() {
                cargo(&self.workspace, &["build", "--quiet", "--bins"], None).await?;
                let _ = BUILT.set(());
            }
        }
        Ok(self.target_dir.join("debug").join(name))
    }

    /// The release builds of `packages`' binaries, built as the README says
    /// (`cargo build --release -p …`). Returns the `target/release` directory.
    pub async fn release(&self, packages: &[&str]) -> Result<PathBuf> {
        let _guard = BUILD.lock().await;
        let mut args = vec!["build", "--quiet", "--release"];
        for package in packages {
            args.extend(["-p", package]);
        }
        cargo(&self.workspace, &args, None).await?;
        Ok(self.target_dir.join("release"))
    }

    /// The address flags a server is started with: none in record mode, so it listens where the
    /// reader's would (the default, `127.0.0.1:3000`); port 0 in shape mode.
    pub fn addr_flags(&self) -> Vec<String> {
        match self.mode {
            Mode::Record => Vec::new(),
            Mode::Shape => vec!["--addr".to_string(), "127.0.0.1:0".to_string()],
        }
    }

    /// Starts `bin` with `flags`, logging at `info`.
    pub async fn start(&self, bin: &Path, flags: &[&str]) -> Result<Server> {
        self.start_logging(bin, flags, "info").await
    }

    /// Starts `bin` with `flags` and `RUST_LOG=rust_log`, and waits for its `listening on` line.
    pub async fn start_logging(
        &self,
        bin: &Path,
        flags: &[&str],
        rust_log: &str,
    ) -> Result<Server> {
        self.start_in(&self.workspace, bin, flags, rust_log).await
    }

    /// A directory of this run's own for the files its servers keep (chapter 10's database),
    /// `target/book-runs/NAME-MODE`, emptied first: every run starts from nothing, and a shape
    /// check never shares a file with a recording.
    pub fn scratch(&self) -> Result<PathBuf> {
        let mode = self.pick("record", "shape");
        let dir = self
            .target_dir
            .join("book-runs")
            .join(format!("{}-{mode}", self.run));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("cannot empty {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot make {}", dir.display()))?;
        Ok(dir)
    }

    /// Starts `bin` in the directory `dir` (a path among the flags is relative to it, as in a
    /// reader's shell), with `flags` and `RUST_LOG=rust_log`, and waits for its `listening on`
    /// line.
    pub async fn start_in(
        &self,
        dir: &Path,
        bin: &Path,
        flags: &[&str],
        rust_log: &str,
    ) -> Result<Server> {
        let mut command = Command::new(bin);
        command
            .args(self.addr_flags())
            .args(flags)
            .env("RUST_LOG", rust_log)
            .env("NO_COLOR", "1")
            // As a reader's shell would have it: a panic prints its message, not a backtrace.
            .env_remove("RUST_BACKTRACE")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        Server::spawn(command, bin).await
    }

    /// One line saying where a measuring run was recorded (or, in shape mode, checked).
    pub fn measured_on(&self, build: &str) -> String {
        let cpus = std::thread::available_parallelism().map_or(0, usize::from);
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find_map(|line| line.strip_prefix("MemTotal:"))
                    .and_then(|value| {
                        value
                            .trim()
                            .trim_end_matches("kB")
                            .trim()
                            .parse::<f64>()
                            .ok()
                    })
            })
            .map_or_else(
                || "unknown memory".to_string(),
                |kib| format!("{:.0} GiB of memory", kib / 1024.0 / 1024.0),
            );
        format!(
            "{} {} {}, {cpus} CPUs, {memory}, {build} build: figures depend on the machine)",
            super::MEASURED_ON,
            env::consts::OS,
            env::consts::ARCH,
        )
    }

    /// A copy of `chapters/<chapter>` with `changes` applied (each `(file, from, to)`: `from`
    /// must occur exactly once in `src/<file>`), built in debug, as a try-it's reader would
    /// build their edited chapter. Returns the binary, placed at `<copy>/target/debug/<package>`
    /// so that tools printing its path print what the reader's would.
    pub async fn try_it(&self, chapter: &str, changes: &[(&str, &str, &str)]) -> Result<TryIt> {
        let source = self.workspace.join("chapters").join(chapter);
        let package = format!("ch{chapter}");
        let lib_name = package.replace('-', "_");
        let copy = self.target_dir.join("book-runs").join(self.run);
        let bin_name = format!("tryit-{}", self.run);
        // Files are written only when they differ, so an unchanged copy is not rebuilt.
        let mut files = Vec::new();
        list_files(&source.join("src"), &mut files)?;
        let mut contents = std::collections::BTreeMap::new();
        for file in files {
            let relative = file.strip_prefix(&source)?.to_path_buf();
            contents.insert(relative, std::fs::read_to_string(&file)?);
        }
        for (file, from, to) in changes {
            let path = PathBuf::from("src").join(file);
            let text = contents
                .get_mut(&path)
                .with_context(|| format!("chapters/{chapter}/src/{file} does not exist"))?;
            let found = text.matches(from).count();
            if found != 1 {
                bail!(
                    "the try-it's change no longer applies: chapters/{chapter}/src/{file} has \
                     {found} copies of {from:?} (expected one); update the run"
                );
            }
            *text = text.replacen(from, to, 1);
        }
        contents.insert(
            PathBuf::from("Cargo.toml"),
            try_it_manifest(&self.workspace, &source, &bin_name, &lib_name)?,
        );
        contents.insert(
            PathBuf::from("Cargo.lock"),
            std::fs::read_to_string(self.workspace.join("Cargo.lock"))?,
        );
        for (relative, text) in &contents {
            let path = copy.join(relative);
            if std::fs::read_to_string(&path).is_ok_and(|old| &old == text) {
                continue;
            }
            std::fs::create_dir_all(path.parent().unwrap_or(&copy))?;
            std::fs::write(&path, text)?;
        }
        {
            let _guard = BUILD.lock().await;
            cargo(
                &copy,
                &["build", "--quiet", "--bin", &bin_name],
                Some(&self.target_dir),
            )
            .await?;
        }
        let relative = PathBuf::from("target/debug").join(&package);
        let placed = copy.join(&relative);
        std::fs::create_dir_all(placed.parent().unwrap_or(&copy))?;
        std::fs::copy(self.target_dir.join("debug").join(&bin_name), &placed)
            .context("cannot copy the try-it's binary")?;
        Ok(TryIt {
            dir: copy,
            bin: placed,
            relative,
        })
    }
}

impl Ctx {
    /// `cargo clippy` on a try-it copy (its binary), as its reader would run it there: what
    /// clippy printed (its warnings and errors, without cargo's progress lines), whether or not
    /// it passed.
    pub async fn clippy(&self, try_it: &TryIt) -> Result<Vec<String>> {
        let _guard = BUILD.lock().await;
        let program = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let output = Command::new(program)
            .args(["clippy", "--quiet", "--color", "never", "--bins"])
            .current_dir(&try_it.dir)
            .env("CARGO_TARGET_DIR", &self.target_dir)
            .stdin(Stdio::null())
            .output()
            .await
            .context("cannot run cargo clippy")?;
        Ok(String::from_utf8_lossy(&output.stderr)
            .lines()
            .map(str::to_string)
            .collect())
    }
}

/// A built try-it copy.
pub struct TryIt {
    /// The copy's directory.
    pub dir: PathBuf,
    /// Its binary.
    pub bin: PathBuf,
    /// The binary relative to `dir`: `target/debug/chNN-name`.
    pub relative: PathBuf,
}

/// The manifest of a try-it copy: the chapter's, as a workspace of its own (with the
/// repository's dependency versions), its library keeping the chapter's name (so its log lines
/// read the same) and its binary renamed (so it cannot overwrite the chapter's).
fn try_it_manifest(
    workspace: &Path,
    chapter: &Path,
    bin_name: &str,
    lib_name: &str,
) -> Result<String> {
    let root = std::fs::read_to_string(workspace.join("Cargo.toml"))?;
    let own = std::fs::read_to_string(chapter.join("Cargo.toml"))?;
    let mut out = String::new();
    let mut skipping = false;
    for line in own.lines() {
        if line.starts_with('[') {
            skipping = matches!(line, "[dev-dependencies]" | "[[test]]" | "[lints]");
        }
        if skipping {
            continue;
        }
        if line.starts_with("name = ") && !out.contains("name = ") {
            out.push_str(&format!("name = \"{bin_name}\"\n"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(&format!(
        "\n[lib]\nname = \"{lib_name}\"\npath = \"src/lib.rs\"\n\n[[bin]]\nname = \"{bin_name}\"\n\
         path = \"src/main.rs\"\n\n[workspace]\n"
    ));
    let kit = workspace.join("kit");
    let mut section = "";
    for line in root.lines() {
        if line.starts_with('[') {
            section = line;
            if matches!(line, "[workspace.package]" | "[workspace.dependencies]") {
                out.push('\n');
                out.push_str(line);
                out.push('\n');
            }
            continue;
        }
        match section {
            "[workspace.package]" => {
                out.push_str(line);
                out.push('\n');
            }
            "[workspace.dependencies]" => {
                if line.starts_with("stage-tests") {
                    continue;
                }
                if line.starts_with("fanout-kit") {
                    out.push_str(&format!(
                        "fanout-kit = {{ path = {:?} }}\n",
                        kit.display().to_string()
                    ));
                    continue;
                }
                out.push_str(line);
                out.push('\n');
            }
            _ => {}
        }
    }
    Ok(out)
}

fn list_files(dir: &Path, into: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            list_files(&path, into)?;
        } else {
            into.push(path);
        }
    }
    Ok(())
}

/// Runs cargo (the one running us, if any) in `dir`; fails with its stderr.
async fn cargo(dir: &Path, args: &[&str], target_dir: Option<&Path>) -> Result<()> {
    let program = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(program);
    command.args(args).current_dir(dir).stdin(Stdio::null());
    if let Some(target_dir) = target_dir {
        command.env("CARGO_TARGET_DIR", target_dir);
    }
    let output = command
        .output()
        .await
        .with_context(|| format!("cannot run cargo {}", args.join(" ")))?;
    if !output.status.success() {
        bail!(
            "`cargo {}` in {} failed:\n{}",
            args.join(" "),
            dir.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// A chapter's binary, running.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The line it printed on stdout, e.g. `listening on http://127.0.0.1:3000`.
    pub listening: String,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    new_line: Arc<Notify>,
    /// What it printed on stdout after the first line (chapter 09's `tcp listening on …`).
    stdout: Arc<Mutex<Vec<String>>>,
}

impl Server {
    async fn spawn(mut command: Command, bin: &Path) -> Result<Server> {
        // A try-it's binary has just been copied into place. If another thread of this process
        // forks a child meanwhile, that child holds the copy's file open for writing until it
        // execs, and starting the binary fails with ETXTBSY ("text file busy"): wait and retry.
        let mut attempts = 0;
        let mut child = loop {
            match command.spawn() {
                Err(err) if err.raw_os_error() == Some(ETXTBSY) && attempts < 50 => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                spawned => {
                    break spawned.with_context(|| format!("cannot start {}", bin.display()))?;
                }
            }
        };
        let log = Arc::new(Mutex::new(Vec::new()));
        let new_line = Arc::new(Notify::new());
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(collect(stderr, Arc::clone(&log), Arc::clone(&new_line)));
        }
        let stdout = child
            .stdout
            .take()
            .context("the server's stdout is piped")?;
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .map_err(|_| anyhow!("{} printed nothing within {WAIT:?}", bin.display()))??;
        let Some(listening) = first else {
            let log = log.lock().map(|log| log.join("\n")).unwrap_or_default();
            bail!("{} exited without listening:\n{log}", bin.display());
        };
        let addr = listening
            .strip_prefix("listening on http://")
            .and_then(|addr| addr.parse().ok())
            .with_context(|| {
                format!("expected `listening on http://IP:PORT`, got {listening:?}")
            })?;
        let stdout = Arc::new(Mutex::new(Vec::new()));
        {
            let stdout = Arc::clone(&stdout);
            let new_line = Arc::clone(&new_line);
            tokio::spawn(async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Ok(mut stdout) = stdout.lock() {
                        stdout.push(line);
                    }
                    new_line.notify_waiters();
                }
            });
        }
        Ok(Server {
            addr,
            listening,
            child,
            log,
            new_line,
            stdout,
        })
    }

    /// `ws://ADDR/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Everything logged so far, without colours.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().map(|log| log.clone()).unwrap_or_default()
    }

    /// The lines logged so far that contain one of `needles`.
    pub fn log_matching(&self, needles: &[&str]) -> Vec<String> {
        self.log()
            .into_iter()
            .filter(|line| needles.iter().any(|needle| line.contains(needle)))
            .collect()
    }

    /// Waits until `count` logged lines contain `needle`.
    pub async fn wait_for_log(&self, needle: &str, count: usize) -> Result<()> {
        let enough = || (self.log_matching(&[needle]).len() >= count).then_some(());
        self.wait_until(enough).await.with_context(|| {
            format!(
                "the server did not log {count} × {needle:?} within {WAIT:?}; its log:\n{}",
                self.log().join("\n")
            )
        })
    }

    /// Waits for a line the server prints on stdout after `listening on`, starting with `prefix`,
    /// and returns the rest of it.
    pub async fn wait_for_stdout(&self, prefix: &str) -> Result<String> {
        let printed = || {
            self.stdout.lock().ok().and_then(|lines| {
                lines
                    .iter()
                    .find_map(|line| line.strip_prefix(prefix).map(str::to_string))
            })
        };
        self.wait_until(printed)
            .await
            .with_context(|| format!("the server did not print {prefix:?} within {WAIT:?}"))
    }

    /// Checks `found` each time the server writes a line (stdout or stderr), for up to [`WAIT`].
    async fn wait_until<T>(&self, found: impl Fn() -> Option<T>) -> Option<T> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let notified = self.new_line.notified();
            if let Some(value) = found() {
                return Some(value);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    /// The process id, for reading its CPU time from `/proc`; `None` once it has exited.
    pub fn process_id(&self) -> Option<u32> {
        self.child.id()
    }

    fn pid(&self) -> Result<Pid> {
        let pid = self.child.id().context("the server has exited")?;
        Ok(Pid::from_raw(i32::try_from(pid)?))
    }

    /// Sends `signal`.
    pub fn signal(&self, signal: Signal) -> Result<()> {
        nix::sys::signal::kill(self.pid()?, signal).with_context(|| format!("cannot send {signal}"))
    }

    /// Waits for the process to exit.
    pub async fn wait_exit(&mut self, limit: Duration) -> Result<ExitStatus> {
        let status = tokio::time::timeout(limit, self.child.wait())
            .await
            .map_err(|_| anyhow!("the server did not exit within {limit:?}"))??;
        // Let the last log lines arrive.
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok(status)
    }

    /// Resident memory, in KiB (`VmRSS`, Linux).
    pub fn rss_kib(&self) -> Result<u64> {
        let path = format!("/proc/{}/status", self.pid()?);
        let status = std::fs::read_to_string(&path)?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no VmRSS in {path}"))
    }
}

impl Drop for Server {
    /// Kills the process and waits (briefly) until it is gone, so that the next run can listen on
    /// the same port.
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        for _ in 0..200 {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

async fn collect(
    pipe: impl AsyncRead + Unpin,
    into: Arc<Mutex<Vec<String>>>,
    new_line: Arc<Notify>,
) {
    let mut lines = BufReader::new(pipe).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Ok(mut log) = into.lock() {
            log.push(strip_ansi(&line));
        }
        new_line.notify_waiters();
    }
}

/// What the clients of a run saw, one line per event, as the browser page shows it.
#[derive(Clone, Default)]
pub struct Script(Arc<Mutex<Vec<String>>>);

impl Script {
    pub fn note(&self, line: String) {
        if let Ok(mut lines) = self.0.lock() {
            lines.push(line);
        }
    }

    pub fn lines(&self) -> Vec<String> {
        self.0.lock().map(|lines| lines.clone()).unwrap_or_default()
    }
}

/// A WebSocket client that notes what it sees in a [`Script`] the way the browser page logs it
/// (`· open`, `→ sent`, `← received`, `· closed CODE`).
pub struct Tab {
    pub name: String,
    pub client: Client,
    script: Script,
}

impl Tab {
    pub async fn open(script: &Script, server: &Server, name: &str) -> Tab {
        let client = Client::connect(&server.ws_url(), name).await;
        script.note(format!("{name}: · open"));
        Tab {
            name: name.to_string(),
            client,
            script: script.clone(),
        }
    }

    pub async fn send(&mut self, text: &str) {
        self.client.send_text(text).await;
        self.script.note(format!("{}: → sent {text:?}", self.name));
    }

    /// Receives the next message, which must be `text`.
    pub async fn receive(&mut self, text: &str) {
        self.client.expect_text(text).await;
        self.script
            .note(format!("{}: ← received {text:?}", self.name));
    }

    /// Sends Close 1000 and waits for the connection to end.
    pub async fn close(&mut self) {
        self.client.send_close(1000, "").await;
        self.ended().await;
    }

    /// Waits for the connection to end and notes how: `· closed CODE "reason"`, or `1006` (what a
    /// browser reports) when it ended without a Close frame.
    pub async fn ended(&mut self) {
        let line = match finish(&mut self.client).await {
            Ending::Close(Some((code, reason))) if reason.is_empty() => format!("{code}"),
            Ending::Close(Some((code, reason))) => format!("{code} {reason:?}"),
            Ending::Close(None) => "1005".to_string(),
            Ending::Gone(_) => "1006".to_string(),
        };
        self.script.note(format!("{}: · closed {line}", self.name));
    }
}

/// Reads until the connection ends and says how. After a Close frame it reads on, as a browser
/// does, so that the Close reply tungstenite has queued goes out and the server is not left
/// waiting for it.
pub async fn finish(client: &mut Client) -> Ending {
    let ending = client.expect_end().await;
    if matches!(ending, Ending::Close(_)) {
        let _ = tokio::time::timeout(WAIT, async {
            while let Some(Ok(_)) = futures_util::StreamExt::next(client.stream()).await {}
        })
        .await;
    }
    ending
}

/// A client that sends a valid upgrade request and then never reads, like the book's bash line.
pub struct SilentPeer {
    _stream: TcpStream,
}

impl SilentPeer {
    pub async fn connect(addr: SocketAddr) -> Result<SilentPeer> {
        let mut stream = TcpStream::connect(addr).await?;
        let request = format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        Ok(SilentPeer { _stream: stream })
    }
}

/// `$ curl -s http://ADDR/PATH` and what it prints (the body). The request is made by
/// `stage_tests::http`, which prints what `curl -s` would.
pub async fn curl_body(server: &Server, path: &str) -> Vec<String> {
    let response = stage_tests::http::get(server.addr, path).await;
    vec![
        format!("$ curl -s http://{}{path}", server.addr),
        response.body.trim_end().to_string(),
    ]
}

/// How long ago `earlier` was, in seconds with two decimals.
pub fn seconds_since(earlier: tokio::time::Instant) -> String {
    format!("{:.2} s", earlier.elapsed().as_secs_f64())
}

/// The `HH:MM:SS.ffffff` timestamp of a log line, as seconds since midnight.
pub fn log_time(line: &str) -> Option<f64> {
    let time = line
        .split_whitespace()
        .next()?
        .split('T')
        .nth(1)?
        .trim_end_matches('Z');
    let mut parts = time.split(':');
    let hours: f64 = parts.next()?.parse().ok()?;
    let minutes: f64 = parts.next()?.parse().ok()?;
    let seconds: f64 = parts.next()?.parse().ok()?;
    Some(hours * 3600.0 + minutes * 60.0 + seconds)
}
