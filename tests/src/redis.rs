//! A real `redis-server` for the scenarios of chapter 11 on: on a free port, in a temporary
//! directory of its own, saving nothing to disk, stopped when the guard is dropped. It can be
//! stopped and started again on the same port, which is how a scenario makes an outage.
//!
//! `redis-server` must be installed (Debian and Ubuntu: `apt-get install redis-server`; CI
//! installs it, see `.ci/run`).

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::WAIT;

/// A `redis-server` child process. Dropping it kills the server.
pub struct RedisServer {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a port the OS picks, and waits (at most [`WAIT`]) until it answers
    /// `PING`.
    pub async fn start() -> RedisServer {
        let port = free_port();
        let dir = tempfile::tempdir()
            .unwrap_or_else(|err| panic!("cannot make a directory for redis-server: {err}"));
        let mut server = RedisServer {
            port,
            dir,
            child: None,
        };
        server.restart().await;
        server
    }

    /// `redis://127.0.0.1:PORT`, for `--redis`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The process id of the running server (for reading its CPU time from `/proc`), `None`
    /// while it is stopped.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server (as a crash would: nothing is saved, clients see their connections
    /// reset) and waits for it to be gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (stopping it first if it runs), empty, and
    /// waits until it answers `PING`.
    pub async fn restart(&mut self) {
        self.stop();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot start redis-server ({err}): is it installed? \
                     (Debian/Ubuntu: apt-get install redis-server)"
                )
            });
        self.child = Some(child);
        let answered = crate::wait_until(WAIT, || ping(self.port), |pong| *pong).await;
        assert!(
            answered.is_ok(),
            "redis-server on port {} did not answer PING within {WAIT:?}",
            self.port
        );
        // Ours answered, not another that holds the port (ours would then have exited).
        let running = self.child.as_mut().map(|child| child.try_wait());
        assert!(
            matches!(running, Some(Ok(None))),
            "redis-server could not listen on port {}: another process holds it",
            self.port
        );
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The ports [`free_port`] draws from: below Linux's ephemeral range (32768 and up), from
/// which the OS picks the ports of outgoing connections and of listeners bound to port 0. A port
/// from that range could be handed to another socket while this server is stopped (in the
/// outage scenarios), and a server of another scenario could then answer on it.
const PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A port of [`PORTS`] that nothing listens on now, drawn at random: scenarios running side by
/// side draw different ones.
fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    for _ in 0..100 {
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let span = u64::from(PORTS.end - PORTS.start);
        let port = PORTS.start + u16::try_from(random % span).unwrap_or(0);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port for redis-server in {PORTS:?}");
}

/// Whether a Redis server on `port` answers `PING` with `+PONG` (within a second).
async fn ping(port: u16) -> bool {
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        stream.write_all(b"PING\r\n").await.ok()?;
        let mut reply = [0u8; 7];
        stream.read_exact(&mut reply).await.ok()?;
        Some(&reply == b"+PONG\r\n")
    };
    tokio::time::timeout(Duration::from_secs(1), exchange)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}
