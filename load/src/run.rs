//! One run, start to end: connect the clients over the ramp, let the senders send, wait for what
//! is still on its way, stop everything, and add up what every client saw.
//!
//! Every phase is bounded: each connect by [`CONNECT_TIMEOUT`], sending by `--duration` and
//! `--messages`, the drain by `--drain`, and the whole run by `--deadline`, after which it stops
//! wherever it is and reports what it has.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::{
    sync::{Semaphore, mpsc},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;

use crate::{
    client::{self, Board, ConnectError, Ending, Pace, ReadOutcome, SendOutcome, SharedWriter},
    report::{Report, RssSample, ServerSplit},
    scenario::{CONNECT_TIMEOUT, Plan, Rate},
    system::{self, CpuMark, Process},
    tally::Tally,
    verdict,
};

/// How many handshakes may be under way at once: enough to keep the ramp on time, few enough not
/// to overrun the server's accept backlog.
const CONNECTING_AT_ONCE: usize = 64;
/// A pause between the last connect and the first message, for servers that register a client a
/// moment after its handshake.
const SETTLE: Duration = Duration::from_millis(200);
/// How long stopped clients get to hand in their counts.
const JOIN_LIMIT: Duration = Duration::from_secs(5);

/// What every task of the run shares.
struct Shared {
    plan: Plan,
    /// The run's time base: every stamp counts microseconds from here.
    clock: Instant,
    board: Board,
    /// Per sender, messages sent so far.
    sent: Vec<AtomicU64>,
    stop_sending: CancellationToken,
    stop_reading: CancellationToken,
    connecting: Semaphore,
    connected: AtomicUsize,
    not_connected: AtomicUsize,
    phase: Mutex<&'static str>,
}

impl Shared {
    fn set_phase(&self, phase: &'static str) {
        *self
            .phase
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = phase;
    }

    fn phase(&self) -> &'static str {
        *self
            .phase
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn sent(&self) -> u64 {
        self.sent
            .iter()
            .map(|sent| sent.load(Ordering::Relaxed))
            .sum()
    }
}

/// One client's connect attempt, as the run hears of it.
struct ConnectEvent {
    stalled: bool,
    result: Result<(), ConnectError>,
}

/// What the phases found out, filled in as they go (and read even when the deadline cut them).
#[derive(Default)]
struct Marks {
    connected: usize,
    stalled_connected: usize,
    refused: BTreeMap<String, u64>,
    connect_failures: u64,
    connect_failure: Option<String>,
    send_start: Option<Instant>,
    send_seconds: f64,
    server_cpu: Option<f64>,
    generator_cpu: f64,
    machine_busy: Option<f64>,
    rss_loaded: Option<u64>,
    send_errors: Vec<String>,
}

/// Runs `plan` and reports what happened. Never fails: what went wrong is in the report.
pub async fn run(plan: Plan) -> Report {
    let started = Instant::now();
    let file_limit = system::raise_open_file_limit(plan.files_needed());
    let mut notes = Vec::new();
    match &file_limit {
        Ok(limit) if !limit.enough() => notes.push(format!(
            "this process may open {} files (hard limit {}), and {} clients need about {}: some \
             will fail to connect; raise the hard limit (ulimit -Hn, as root) or use fewer clients",
            limit.soft,
            limit.hard,
            plan.clients + plan.stalled,
            limit.needed
        )),
        Ok(_) => {}
        Err(err) => notes.push(format!("cannot read or raise the open-file limit: {err}")),
    }
    if let Some(pid) = plan.pid
        && let Some(limit) = Process::Pid(pid).open_file_limit()
        && limit < plan.files_needed()
    {
        notes.push(format!(
            "the server (pid {pid}) may open only {limit} files, fewer than {} clients need: \
             start it from a shell with a higher `ulimit -n`",
            plan.clients + plan.stalled
        ));
    }
    for note in &notes {
        eprintln!("warning: {note}");
    }

    let senders = plan.senders;
    let shared = Arc::new(Shared {
        clock: Instant::now(),
        board: Board::new(plan.clients, senders),
        sent: (0..senders).map(|_| AtomicU64::new(0)).collect(),
        stop_sending: CancellationToken::new(),
        stop_reading: CancellationToken::new(),
        connecting: Semaphore::new(CONNECTING_AT_ONCE),
        connected: AtomicUsize::new(0),
        not_connected: AtomicUsize::new(0),
        phase: Mutex::new("connecting"),
        plan,
    });
    let server = shared.plan.pid.map(Process::Pid);
    let rss_before = server.and_then(|server| server.rss_bytes().ok());
    let stop_sampling = CancellationToken::new();
    let sampler = server
        .map(|server| tokio::spawn(sample(server, Arc::clone(&shared), stop_sampling.clone())));
    let bar = progress_bar(&shared);
    let ticker = tokio::spawn(tick(Arc::clone(&shared), bar.clone()));

    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let (sinks_tx, sinks_rx) = mpsc::unbounded_channel();
    let stalled: Vec<JoinHandle<()>> = (0..shared.plan.stalled)
        .map(|index| {
            tokio::spawn(stalled_client(
                Arc::clone(&shared),
                index,
                events_tx.clone(),
            ))
        })
        .collect();
    let readers: Vec<JoinHandle<Option<ReadOutcome>>> = (0..shared.plan.clients)
        .map(|client| {
            tokio::spawn(reading_client(
                Arc::clone(&shared),
                client,
                events_tx.clone(),
                sinks_tx.clone(),
            ))
        })
        .collect();
    drop((events_tx, sinks_tx));

    let mut marks = Marks::default();
    let deadline = tokio::time::Instant::from_std(started + shared.plan.deadline);
    let driven = tokio::time::timeout_at(deadline, drive(&shared, &mut marks, events_rx, sinks_rx));
    let stopped = match driven.await {
        Ok(reason) => reason,
        Err(_) => format!(
            "the deadline ({:?}) passed while {}",
            shared.plan.deadline,
            shared.phase()
        ),
    };
    shared.stop_sending.cancel();
    shared.stop_reading.cancel();

    let join_deadline = tokio::time::Instant::now() + JOIN_LIMIT;
    let mut total = Tally::new(senders, None);
    let mut closes: BTreeMap<String, u64> = BTreeMap::new();
    for reader in readers {
        if let Ok(Ok(Some(outcome))) = tokio::time::timeout_at(join_deadline, reader).await {
            total.merge(&outcome.tally);
            if let Ending::Closed(code) = outcome.ending {
                *closes.entry(code.to_string()).or_default() += 1;
            }
        }
    }
    for client in stalled {
        let _ = tokio::time::timeout_at(join_deadline, client).await;
    }
    stop_sampling.cancel();
    let mut samples = Vec::new();
    if let Some(sampler) = sampler
        && let Ok(Ok(series)) = tokio::time::timeout_at(join_deadline, sampler).await
    {
        samples = series;
    }
    ticker.abort();
    bar.finish_and_clear();

    let plan = &shared.plan;
    let sent_by: Vec<u64> = shared
        .sent
        .iter()
        .map(|sent| sent.load(Ordering::Relaxed))
        .collect();
    let per_sender = verdict::per_sender(&sent_by, marks.connected, &total);
    let (sent, expected, lost) = per_sender.iter().fold((0, 0, 0), |(s, e, l), figures| {
        (s + figures.sent, e + figures.expected, l + figures.lost)
    });
    let delivered = total.delivered();
    let latency = total.latency();
    let quantile = |q: f64| latency.map_or(0, |histogram| histogram.value_at_quantile(q));
    let split = |histogram: Option<&hdrhistogram::Histogram<u64>>| {
        (plan.targets.len() > 1).then(|| ServerSplit {
            delivered: histogram.map_or(0, |histogram| histogram.len()),
            p50_us: histogram.map_or(0, |histogram| histogram.value_at_quantile(0.5)),
            p99_us: histogram.map_or(0, |histogram| histogram.value_at_quantile(0.99)),
        })
    };
    let first_send_us = marks.send_start.map_or(0, |start| {
        start.saturating_duration_since(shared.clock).as_micros() as u64
    });
    let delivering_us = total.last_delivery_us.saturating_sub(first_send_us);
    let server_rss_peak = samples
        .iter()
        .map(|sample| sample.bytes)
        .chain(rss_before)
        .chain(marks.rss_loaded)
        .max();
    let clients_held = marks.connected + marks.stalled_connected;
    let mut verdict = verdict::Cpu {
        server: marks.server_cpu,
        generator: marks.generator_cpu,
        threads: plan.threads,
        machine_busy: marks.machine_busy,
        cores: crate::scenario::cores(),
    }
    .bound(plan.senders > 0, plan.rate);
    for note in notes.iter().chain(&marks.send_errors) {
        verdict.bound.push_str("; ");
        verdict.bound.push_str(note);
    }
    Report {
        scenario: plan.scenario.clone(),
        url: plan
            .targets
            .first()
            .map(|target| target.url.clone())
            .unwrap_or_default(),
        servers: plan.targets.len(),
        urls: if plan.targets.len() > 1 {
            plan.targets
                .iter()
                .map(|target| target.url.clone())
                .collect()
        } else {
            Vec::new()
        },
        same_server: split(total.same_server_latency()),
        cross_server: split(total.cross_server_latency()),
        clients: plan.clients,
        connected: marks.connected,
        senders: plan.senders,
        stalled: plan.stalled,
        stalled_connected: marks.stalled_connected,
        size: plan.size,
        rate: match plan.rate {
            Rate::Max => None,
            Rate::PerSecond(rate) => Some(rate),
        },
        window: plan.window,
        send_seconds: marks.send_seconds,
        sent,
        expected,
        delivered,
        lost,
        out_of_order: per_sender.iter().map(|figures| figures.out_of_order).sum(),
        other: total.other,
        echoed: total.echoed,
        deliveries_per_sec: if delivering_us > 0 {
            delivered as f64 / (delivering_us as f64 / 1e6)
        } else {
            0.0
        },
        p50_us: quantile(0.5),
        p99_us: quantile(0.99),
        p999_us: quantile(0.999),
        max_us: latency.map_or(0, |histogram| histogram.max()),
        per_sender,
        disconnects: closes.values().sum(),
        closes,
        refused: marks.refused,
        connect_failures: marks.connect_failures,
        connect_failure: marks.connect_failure,
        server_pid: plan.pid,
        server_rss: samples,
        server_rss_before: rss_before,
        server_rss_loaded: marks.rss_loaded,
        server_rss_peak,
        server_rss_per_client: match (rss_before, marks.rss_loaded) {
            (Some(before), Some(loaded)) if clients_held > 0 => {
                Some((loaded as f64 - before as f64) / clients_held as f64)
            }
            _ => None,
        },
        server_cpu: marks.server_cpu,
        generator_cpu: marks.generator_cpu,
        generator_threads: plan.threads,
        machine_busy: marks.machine_busy,
        other_cpu: verdict.others,
        generator_saturated: verdict.generator_saturated,
        bound: verdict.bound,
        stopped,
        open_file_limit: file_limit.as_ref().map_or(0, |limit| limit.soft),
        open_files_needed: plan.files_needed(),
        elapsed_seconds: started.elapsed().as_secs_f64(),
    }
}

/// The phases, in order. Returns why the run stopped.
async fn drive(
    shared: &Arc<Shared>,
    marks: &mut Marks,
    mut events: mpsc::UnboundedReceiver<ConnectEvent>,
    mut sinks: mpsc::UnboundedReceiver<(usize, SharedWriter)>,
) -> String {
    let plan = &shared.plan;
    // Connect: every client reports once, connected or not.
    for _ in 0..plan.clients + plan.stalled {
        let Some(event) = events.recv().await else {
            break;
        };
        match (event.result, event.stalled) {
            (Ok(()), false) => marks.connected += 1,
            (Ok(()), true) => marks.stalled_connected += 1,
            (Err(ConnectError::Refused(status)), _) => {
                *marks.refused.entry(status.to_string()).or_default() += 1;
            }
            (Err(ConnectError::Failed(why)), _) => {
                marks.connect_failures += 1;
                marks.connect_failure.get_or_insert(why);
            }
        }
    }
    if marks.connected == 0 && plan.clients > 0 {
        return "no reading client could connect".to_string();
    }
    tokio::time::sleep(SETTLE).await;

    // Send (or, without senders, hold the connections).
    shared.set_phase(if plan.senders > 0 {
        "sending"
    } else {
        "holding"
    });
    let server = plan.pid.map(Process::Pid);
    let server_mark = server.map(CpuMark::now);
    let own_mark = CpuMark::now(Process::Myself);
    let send_start = Instant::now();
    marks.send_start = Some(send_start);
    let pace = Pace {
        rate: plan.rate,
        window: plan.window,
        size: plan.size,
        messages: plan.messages,
    };
    let mut senders: Vec<JoinHandle<SendOutcome>> = Vec::new();
    while let Ok((sender, writer)) = sinks.try_recv() {
        senders.push(tokio::spawn(send(Arc::clone(shared), sender, writer, pace)));
    }
    let senders_is_empty = senders.is_empty();
    let all_sent = futures_util::future::join_all(senders.iter_mut());
    let outcomes = tokio::select! {
        // Without senders there is nothing to wait for but the duration.
        outcomes = all_sent, if !senders_is_empty => Some(outcomes),
        () = tokio::time::sleep(plan.duration) => None,
    };
    let reason = if outcomes.is_some() {
        "every sender sent its --messages".to_string()
    } else if senders_is_empty {
        format!("held the connections for {:?}", plan.duration)
    } else {
        format!("sent for {:?}", plan.duration)
    };
    shared.stop_sending.cancel();
    let outcomes = match outcomes {
        Some(outcomes) => outcomes,
        None => futures_util::future::join_all(senders).await,
    };
    for outcome in outcomes.into_iter().flatten() {
        if let Some(error) = outcome.error {
            marks.send_errors.push(format!("a sender stopped: {error}"));
        }
    }
    marks.send_seconds = send_start.elapsed().as_secs_f64();
    marks.server_cpu = server_mark
        .zip(server)
        .and_then(|(mark, server)| mark.cores_used(server));
    marks.generator_cpu = own_mark.cores_used(Process::Myself).unwrap_or(0.0);
    marks.machine_busy = own_mark.machine_busy();
    marks.rss_loaded = server.and_then(|server| server.rss_bytes().ok());

    // Drain: wait for what is on its way, until all of it has arrived or --drain has passed.
    shared.set_phase("draining");
    let expected: u64 = shared
        .sent
        .iter()
        .map(|sent| sent.load(Ordering::Relaxed) * (marks.connected as u64).saturating_sub(1))
        .sum();
    let drain_end = Instant::now() + plan.drain;
    while shared.board.delivered() < expected && Instant::now() < drain_end {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if senders_is_empty {
        reason
    } else if shared.board.delivered() < expected {
        format!(
            "{reason}; then --drain ({:?}) passed with messages missing",
            plan.drain
        )
    } else {
        format!("{reason}; everything sent was delivered")
    }
}

/// One sender's task.
async fn send(shared: Arc<Shared>, sender: usize, writer: SharedWriter, pace: Pace) -> SendOutcome {
    client::send_all(
        writer,
        sender as u32,
        pace,
        &shared.board,
        shared.clock,
        &shared.sent[sender],
        &shared.stop_sending,
    )
    .await
}

/// One reading client: waits for its turn in the ramp, connects, hands its sending half to the
/// run if it is a sender, and reads until the end. `None` if it never got connected.
async fn reading_client(
    shared: Arc<Shared>,
    client: usize,
    events: mpsc::UnboundedSender<ConnectEvent>,
    sinks: mpsc::UnboundedSender<(usize, SharedWriter)>,
) -> Option<ReadOutcome> {
    let plan = &shared.plan;
    // Client `n` of `N` starts connecting at n/N of the ramp.
    let offset = plan.ramp.mul_f64(client as f64 / plan.clients as f64);
    let result = tokio::select! {
        () = shared.stop_reading.cancelled() => Err(ConnectError::Failed("the run ended first".into())),
        result = async {
            tokio::time::sleep_until(tokio::time::Instant::from_std(shared.clock + offset)).await;
            let _permit = shared.connecting.acquire().await;
            client::connect(plan.target_of(client), None, plan.read_buffer, seed(client)).await
        } => result,
    };
    let connection = match result {
        Ok(connection) => connection,
        Err(err) => {
            shared.board.release(client);
            shared.not_connected.fetch_add(1, Ordering::Relaxed);
            let _ = events.send(ConnectEvent {
                stalled: false,
                result: Err(err),
            });
            return None;
        }
    };
    let own = (client < plan.senders).then_some(client as u32);
    let mut tally = Tally::new(plan.senders, own);
    if plan.targets.len() > 1 {
        // Sender `s` is client `s`, so it is on the server of client `s`.
        let server = plan.server_of(client);
        tally = tally.split_by_server(
            (0..plan.senders)
                .map(|sender| plan.server_of(sender) != server)
                .collect(),
        );
    }
    let writer = Arc::new(tokio::sync::Mutex::new(connection.write));
    if own.is_some() {
        // The writer goes to the run before the connect event, so it is there when the run
        // counts the events.
        let _ = sinks.send((client, Arc::clone(&writer)));
    }
    report_connected(&shared, &events, false);
    let outcome = client::read_all(
        connection.read,
        connection.frames,
        writer,
        client,
        tally,
        &shared.board,
        shared.clock,
        &shared.stop_reading,
    )
    .await;
    Some(outcome)
}

/// A different mask seed for every client.
fn seed(client: usize) -> u64 {
    (client as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x2545_F491_4F6C_DD1D
}

fn report_connected(shared: &Shared, events: &mpsc::UnboundedSender<ConnectEvent>, stalled: bool) {
    shared.connected.fetch_add(1, Ordering::Relaxed);
    let _ = events.send(ConnectEvent {
        stalled,
        result: Ok(()),
    });
}

/// A client that connects with a small receive buffer and never reads, until the run ends. The
/// `index`th of them goes to the `index`th URL, round-robin, as the reading clients do.
async fn stalled_client(
    shared: Arc<Shared>,
    index: usize,
    events: mpsc::UnboundedSender<ConnectEvent>,
) {
    let connected = tokio::select! {
        () = shared.stop_reading.cancelled() => return,
        connected = client::connect(
            shared.plan.target_of(index),
            Some(client::STALLED_RECEIVE_BUFFER),
            client::STALLED_RECEIVE_BUFFER as usize,
            seed(usize::MAX),
        ) => connected,
    };
    match connected {
        Ok(connection) => {
            report_connected(&shared, &events, true);
            shared.stop_reading.cancelled().await;
            drop(connection);
        }
        Err(err) => {
            shared.not_connected.fetch_add(1, Ordering::Relaxed);
            let _ = events.send(ConnectEvent {
                stalled: true,
                result: Err(err),
            });
        }
    }
}

/// Samples the server's memory every `--sample-every` until `stop`.
async fn sample(server: Process, shared: Arc<Shared>, stop: CancellationToken) -> Vec<RssSample> {
    let mut samples = Vec::new();
    let mut ticks = tokio::time::interval(shared.plan.sample_every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticks.tick() => {}
        }
        let Ok(bytes) = server.rss_bytes() else {
            break; // the server has exited
        };
        samples.push(RssSample {
            t_ms: shared.clock.elapsed().as_millis() as u64,
            bytes,
        });
    }
    samples
}

/// A progress bar on stderr over the planned connect and send time; hidden when stderr is not a
/// terminal (indicatif checks) or with `--no-progress`.
fn progress_bar(shared: &Shared) -> ProgressBar {
    let plan = &shared.plan;
    if !plan.progress {
        return ProgressBar::hidden();
    }
    let planned = plan.ramp + SETTLE + plan.duration + CONNECT_TIMEOUT.min(plan.ramp + SETTLE);
    let bar = ProgressBar::with_draw_target(
        Some(planned.as_millis() as u64),
        ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed:>4} [{bar:30}] {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Updates the progress bar five times a second.
async fn tick(shared: Arc<Shared>, bar: ProgressBar) {
    let mut ticks = tokio::time::interval(Duration::from_millis(200));
    let mut last = (Instant::now(), 0u64);
    loop {
        ticks.tick().await;
        let delivered = shared.board.delivered();
        let rate = (delivered - last.1.min(delivered)) as f64 / last.0.elapsed().as_secs_f64();
        last = (Instant::now(), delivered);
        bar.set_position(shared.clock.elapsed().as_millis() as u64);
        bar.set_message(format!(
            "{}: {} connected, {} not; {} sent, {} delivered ({:.0}/s)",
            shared.phase(),
            shared.connected.load(Ordering::Relaxed),
            shared.not_connected.load(Ordering::Relaxed),
            shared.sent(),
            delivered,
            rate
        ));
    }
}
