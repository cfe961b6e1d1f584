//! The `fanout-load` binary as a user runs it: one JSON line on stdout, a clear refusal of any
//! host that is not this machine, and servers that refuse or close clients counted by code.

use std::{process::Stdio, time::Duration};

use futures_util::{SinkExt, StreamExt};
use stage_tests::TestServer;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    process::Command,
};
use tokio_tungstenite::tungstenite::{
    Message,
    protocol::{CloseFrame, frame::coding::CloseCode},
};

const BIN: &str = env!("CARGO_BIN_EXE_fanout-load");

/// What a finished run of the binary printed.
struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn fanout_load(args: &[&str]) -> Output {
    let output = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), output)
        .await
        .expect("fanout-load stops by itself")
        .expect("fanout-load runs");
    Output {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A run prints exactly one line on stdout, a JSON object with every field the issue lists, and
/// samples the server's memory by pid (the server here is this test process).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_prints_one_json_line_with_every_figure() {
    let server = TestServer::start(stage_tests::target!(
        ch04_bounded,
        "ch04-bounded",
        library_only
    ))
    .await;
    let url = server.ws_url();
    let pid = std::process::id().to_string();
    let run = fanout_load(&[
        "--url",
        &url,
        "--clients",
        "3",
        "--senders",
        "1",
        "--messages",
        "50",
        "--ramp",
        "0s",
        "--duration",
        "30s",
        "--drain",
        "20s",
        "--pid",
        &pid,
        "--sample-every",
        "50ms",
    ])
    .await;
    assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "exactly one line on stdout:\n{}",
        run.stdout
    );
    let json: serde_json::Value = serde_json::from_str(lines[0]).expect("the line is JSON");
    for field in [
        "scenario",
        "url",
        "clients",
        "senders",
        "size",
        "sent",
        "expected",
        "delivered",
        "lost",
        "out_of_order",
        "deliveries_per_sec",
        "p50_us",
        "p99_us",
        "p999_us",
        "max_us",
        "disconnects",
        "closes",
        "refused",
        "server_rss",
        "server_cpu",
        "generator_cpu",
        "generator_saturated",
        "bound",
    ] {
        assert!(json.get(field).is_some(), "{field} missing from {json}");
    }
    assert_eq!(
        json["delivered"], 100,
        "50 messages to 2 other clients: {json}"
    );
    assert_eq!(json["lost"], 0);
    let samples = json["server_rss"].as_array().expect("a series");
    assert!(
        !samples.is_empty(),
        "the server's memory was sampled: {json}"
    );
    assert!(samples[0]["bytes"].as_u64() > Some(0), "{json}");
    assert!(
        run.stderr.contains("deliveries/s"),
        "a human summary on stderr:\n{}",
        run.stderr
    );
}

/// A host that is not this machine is refused before anything connects: exit code 2, one line
/// on stderr that says why, nothing on stdout.
#[tokio::test]
async fn a_host_off_this_machine_is_refused() {
    for url in ["ws://192.0.2.1:3000/ws", "ws://example.com/ws"] {
        let run = fanout_load(&["--url", url]).await;
        assert_eq!(run.code, Some(2), "{url}: stderr:\n{}", run.stderr);
        let lines: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert_eq!(lines.len(), 1, "{url}: one line on stderr:\n{}", run.stderr);
        assert!(
            lines[0].contains("loopback"),
            "{url}: the error says why: {}",
            lines[0]
        );
        assert!(run.stdout.is_empty(), "{url}: no report: {}", run.stdout);
    }
}

/// Handshakes answered with an HTTP error are counted as refused, by status. The server here
/// answers every request with 503, as a full chapter 06 server does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_handshakes_are_counted_by_status() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 2048];
                let _ = socket.read(&mut request).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
                    .await;
            });
        }
    });
    let url = format!("ws://{addr}/ws");
    let run = fanout_load(&[
        "--url",
        &url,
        "--clients",
        "4",
        "--senders",
        "0",
        "--ramp",
        "0s",
        "--duration",
        "1s",
    ])
    .await;
    assert_eq!(
        run.code,
        Some(1),
        "nobody connected is an error:\n{}",
        run.stderr
    );
    let json: serde_json::Value = serde_json::from_str(run.stdout.trim()).expect("JSON");
    assert_eq!(json["refused"]["503"], 4, "{json}");
    assert_eq!(json["connected"], 0, "{json}");
}

/// Clients the server closes are disconnects, counted by close code. The server here accepts
/// every WebSocket and closes it at once with 1008 (policy violation).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closes_are_counted_by_code() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(socket).await else {
                    return;
                };
                let close = CloseFrame {
                    code: CloseCode::Policy,
                    reason: "go away".into(),
                };
                let _ = ws.send(Message::Close(Some(close))).await;
                // Read on until the client's Close reply has come, as a server must.
                while let Some(Ok(_)) = ws.next().await {}
            });
        }
    });
    let url = format!("ws://{addr}/ws");
    let run = fanout_load(&[
        "--url",
        &url,
        "--clients",
        "3",
        "--senders",
        "0",
        "--ramp",
        "0s",
        "--duration",
        "1s",
    ])
    .await;
    assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
    let json: serde_json::Value = serde_json::from_str(run.stdout.trim()).expect("JSON");
    assert_eq!(json["connected"], 3, "{json}");
    assert_eq!(json["disconnects"], 3, "{json}");
    assert_eq!(json["closes"]["1008"], 3, "{json}");
}

/// `--help` says that `--url` may be given more than once, and how the clients are spread.
#[tokio::test]
async fn the_help_says_several_urls_spread_the_clients() {
    let help = fanout_load(&["--help"]).await;
    assert_eq!(help.code, Some(0), "stderr:\n{}", help.stderr);
    assert!(
        help.stdout.contains("more than once") && help.stdout.contains("round-robin"),
        "--url's help should say it can be repeated and how clients are spread:\n{}",
        help.stdout
    );
}
