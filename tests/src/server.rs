//! A chapter's server running inside the test process, on a port the OS picks.

use std::{io, net::SocketAddr};

use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

use crate::{Client, Target, WAIT, client::StalledClient};

/// A server started from a [`Target`]'s library on `127.0.0.1:0`. Dropping it stops the task.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
}

impl TestServer {
    /// Starts `target` with its default flags.
    pub async fn start(target: Target) -> TestServer {
        TestServer::start_with(target, &[]).await
    }

    /// Starts `target` with `flags`, given as on the command line (`["--ping-interval", "200ms"]`).
    pub async fn start_with(target: Target, flags: &[&str]) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding 127.0.0.1:0 for the test server");
        let addr = listener
            .local_addr()
            .expect("reading the test server's address");
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let shutdown = Box::pin(async move {
            // Resolves when `shutdown()` sends, and also when the sender is dropped.
            let _ = shutdown_rx.await;
        });
        let flags = crate::base_flags()
            .iter()
            .chain(flags)
            .map(|flag| flag.to_string())
            .collect();
        let task = tokio::spawn((target.launch)(listener, flags, shutdown));
        TestServer {
            addr,
            shutdown: Some(shutdown_tx),
            task,
        }
    }

    /// `ws://IP:PORT/ws`.
    pub fn ws_url(&self) -> String {
        crate::ws_url(self.addr)
    }

    /// Connects a new WebSocket client named `name` (the name shows in failure messages).
    pub async fn client(&self, name: &str) -> Client {
        Client::connect(&self.ws_url(), name).await
    }

    /// Connects a client that completes the handshake and then reads nothing (see [`StalledClient`]).
    pub async fn stalled_client(&self, name: &str) -> StalledClient {
        StalledClient::connect(self.addr, name).await
    }

    /// Signals shutdown and waits (at most [`WAIT`]) for `serve` to return what it returns.
    pub async fn shutdown(mut self) -> io::Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        match tokio::time::timeout(WAIT, &mut self.task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join_error)) => panic!("the server task failed: {join_error}"),
            Err(_) => panic!("serve() did not return within {WAIT:?} of the shutdown signal"),
        }
    }

    /// Whether `serve` has returned (or panicked) already.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
