//! The client process (this binary, re-executed with `--fanout-clients N
//! --addr A --events M`): N streams, one thread each, that parse the chunked
//! framing and the event stream and measure each event's latency; it reports
//! to the bench process on its stdout.

use std::ffi::OsString;
use std::io::{self, BufRead, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use sse_server::crossbeam_channel::{self, RecvTimeoutError};

use crate::Res;
use crate::args::{self, Arg, Parser};
use crate::procfs::{cpu_ticks, ticks_ms};
use crate::report::ClientReport;
use crate::stream::{StreamReader, connect_with_retries, nearest_rank};
use crate::system::unix_ns;
use sse_server::parse::EventRef;

/// The argument that makes this binary the client process.
pub const CHILD_MARKER: &str = "--fanout-clients";
/// Handshakes in flight at once in the client process.
const MAX_HANDSHAKES: usize = 64;
/// The client process stops this long after the last event when some
/// client has not seen the last one (the events were lost).
const IDLE_STOP: Duration = Duration::from_secs(3);
/// The client process stops this long after the publish began, whatever
/// happened.
pub const MAX_WAIT: Duration = Duration::from_secs(120);

/// What the client threads share with the client process's main thread.
struct ClientShared {
    stop: AtomicBool,
    complete: AtomicUsize,
    ended: AtomicUsize,
    /// CLOCK_REALTIME ns of the newest read that completed an event (0: none
    /// yet).
    last_event: AtomicU64,
}

/// One client's tally.
#[derive(Default)]
struct ClientTally {
    delivered: u64,
    out_of_order: u64,
    bad_data: u64,
    gaps: u64,
    missed: u64,
    eof: bool,
    complete: bool,
    read_error: Option<String>,
    last_seq: Option<u64>,
    /// Latency of each delivered event in µs.
    latencies: Vec<u32>,
}

/// The client process's command line: `--fanout-clients N --addr A
/// --events M`.
pub struct ClientArgs {
    pub clients: usize,
    pub addr: SocketAddr,
    pub events: u64,
}

impl ClientArgs {
    /// The arguments that make this binary the client process.
    pub fn to_args(&self) -> [String; 6] {
        [
            CHILD_MARKER.into(),
            self.clients.to_string(),
            "--addr".into(),
            self.addr.to_string(),
            "--events".into(),
            self.events.to_string(),
        ]
    }

    fn parse(args: Vec<OsString>) -> Res<ClientArgs> {
        let (mut clients, mut addr, mut events) = (None, None, None);
        let mut parser = Parser::from_args(args);
        while let Some(arg) = args::next(&mut parser)? {
            match arg {
                // CHILD_MARKER, without its dashes.
                Arg::Long("fanout-clients") => {
                    clients = Some(args::number(&mut parser, CHILD_MARKER)?)
                }
                Arg::Long("addr") => {
                    let value = args::value(&mut parser)?;
                    let text = value.to_string_lossy();
                    addr = Some(text.parse().map_err(|e| format!("--addr: {e}"))?);
                }
                Arg::Long("events") => events = Some(args::number(&mut parser, "--events")?),
                _ => args::skip(&mut parser),
            }
        }
        Ok(ClientArgs {
            clients: clients.ok_or_else(|| format!("{CHILD_MARKER} missing"))?,
            addr: addr.ok_or("--addr missing")?,
            events: events.ok_or("--events missing")?,
        })
    }
}

/// Runs the client process, with the arguments after the program's name.
pub fn client_process(args: Vec<OsString>) -> Res<()> {
    let ClientArgs {
        clients,
        addr,
        events,
    } = ClientArgs::parse(args)?;
    if !addr.ip().is_loopback() {
        return Err(format!("{addr} is not a loopback address"));
    }

    // Commands from the parent, one a line; the channel disconnects at EOF.
    let (commands_tx, commands) = crossbeam_channel::unbounded::<String>();
    thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            for line in io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if commands_tx.send(line.trim().to_string()).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| format!("spawning the stdin reader: {e}"))?;

    let shared = Arc::new(ClientShared {
        stop: AtomicBool::new(false),
        complete: AtomicUsize::new(0),
        ended: AtomicUsize::new(0),
        last_event: AtomicU64::new(0),
    });

    // Connect, at most MAX_HANDSHAKES at a time.
    let started = Instant::now();
    let (handshake_tx, handshakes) = crossbeam_channel::unbounded::<Res<()>>();
    let mut handles = Vec::with_capacity(clients);
    let mut in_flight = 0usize;
    let wait_one = |in_flight: &mut usize| -> Res<()> {
        match handshakes.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(())) => {
                *in_flight -= 1;
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(format!(
                "no handshake finished within 30 s ({in_flight} in flight)"
            )),
        }
    };
    for index in 0..clients {
        while in_flight >= MAX_HANDSHAKES {
            wait_one(&mut in_flight)?;
        }
        let shared = Arc::clone(&shared);
        let handshake_tx = handshake_tx.clone();
        let handle = thread::Builder::new()
            .name(format!("client-{index}"))
            .stack_size(256 * 1024)
            .spawn(move || client_thread(addr, events, &shared, &handshake_tx))
            .map_err(|e| format!("spawning client thread {index}: {e}"))?;
        handles.push(handle);
        in_flight += 1;
    }
    while in_flight > 0 {
        wait_one(&mut in_flight)?;
    }
    let connect_s = started.elapsed().as_secs_f64();
    println!("READY connect_s={connect_s:.3}");
    io::stdout().flush().map_err(|e| e.to_string())?;

    // The parent says `GO <unix_ns>` just before its first event, and
    // PUBLISHED after its last one.
    let go_ns = match commands.recv_timeout(Duration::from_secs(120)) {
        Ok(line) => line
            .strip_prefix("GO ")
            .and_then(|ns| ns.parse::<u64>().ok())
            .ok_or_else(|| format!("expected GO <unix_ns>, got {line:?}"))?,
        Err(_) => return Err("no GO from the parent".into()),
    };
    let go = Instant::now();
    let cpu_go = cpu_ticks("self")?;
    let mut published: Option<Instant> = None;
    let stop = loop {
        if shared.complete.load(Ordering::Acquire) >= clients {
            break "complete";
        }
        if shared.ended.load(Ordering::Acquire) >= clients {
            break "all_ended";
        }
        if go.elapsed() >= MAX_WAIT {
            break "max_wait";
        }
        if let Some(published) = published {
            let last = shared.last_event.load(Ordering::Acquire);
            let quiet = Duration::from_nanos(unix_ns().saturating_sub(last));
            if quiet.min(published.elapsed()) >= IDLE_STOP {
                break "idle";
            }
        }
        match commands.recv_timeout(Duration::from_millis(5)) {
            Ok(line) if line == "PUBLISHED" => published = Some(Instant::now()),
            Ok(line) => return Err(format!("unexpected command {line:?}")),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Err("the parent went away".into()),
        }
    };
    let last = shared.last_event.load(Ordering::Acquire);
    let seconds = last.saturating_sub(go_ns) as f64 / 1e9;
    let cpu_end = cpu_ticks("self")?;
    shared.stop.store(true, Ordering::Release);

    // Every thread gives back its socket, so the connections stay open until
    // the parent has taken its samples.
    let mut sockets = Vec::with_capacity(clients);
    let mut tallies = Vec::with_capacity(clients);
    for handle in handles {
        let (socket, tally) = handle
            .join()
            .map_err(|_| "a client thread panicked".to_string())?;
        sockets.push(socket);
        tallies.push(tally);
    }
    let mut report = summarise(&mut tallies, events);
    report.seconds = seconds;
    report.stop = stop.to_string();
    report.connect_s = connect_s;
    report.client_cpu_ms = ticks_ms(cpu_end.saturating_sub(cpu_go));
    println!("{}", report.to_line());
    io::stdout().flush().map_err(|e| e.to_string())?;

    // Until the parent closes our stdin (bounded).
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match commands.recv_deadline(deadline) {
            Ok(_) => {}
            Err(_) => break,
        }
    }
    drop(sockets);
    Ok(())
}

fn summarise(tallies: &mut [ClientTally], events: u64) -> ClientReport {
    let mut report = ClientReport {
        expected: events * tallies.len() as u64,
        per_client_min: u64::MAX,
        ..ClientReport::default()
    };
    let total: usize = tallies.iter().map(|t| t.latencies.len()).sum();
    let mut latencies = Vec::with_capacity(total);
    for tally in tallies.iter_mut() {
        report.delivered += tally.delivered;
        report.per_client_min = report.per_client_min.min(tally.delivered);
        report.per_client_max = report.per_client_max.max(tally.delivered);
        report.complete += u64::from(tally.complete);
        report.gaps += tally.gaps;
        report.missed += tally.missed;
        report.out_of_order += tally.out_of_order;
        report.bad_data += tally.bad_data;
        report.eof += u64::from(tally.eof);
        if let Some(e) = &tally.read_error {
            report.read_errors += 1;
            report.first_error.get_or_insert_with(|| e.clone());
        }
        latencies.append(&mut tally.latencies);
    }
    if tallies.is_empty() {
        report.per_client_min = 0;
    }
    latencies.sort_unstable();
    report.p50_us = nearest_rank(&latencies, 50.0);
    report.p99_us = nearest_rank(&latencies, 99.0);
    report.max_us = latencies.last().copied().unwrap_or(0).into();
    report
}

/// One client: connects, reports the handshake, then reads events until told
/// to stop. Gives back its socket (so that it stays open) and its tally.
fn client_thread(
    addr: SocketAddr,
    events: u64,
    shared: &ClientShared,
    handshake_tx: &crossbeam_channel::Sender<Res<()>>,
) -> (Option<TcpStream>, ClientTally) {
    let mut tally = ClientTally::default();
    let (mut socket, chunked, leftover) = match connect_with_retries(addr) {
        Ok(connected) => connected,
        Err(e) => {
            let _ = handshake_tx.send(Err(e));
            shared.ended.fetch_add(1, Ordering::AcqRel);
            return (None, tally);
        }
    };
    let _ = handshake_tx.send(Ok(()));
    tally.latencies.reserve(events.min(1 << 20) as usize);
    let mut stream = StreamReader::new(chunked);
    let mut buf = vec![0u8; 32 * 1024];
    if !leftover.is_empty() {
        handle_read(&mut stream, &leftover, events, &mut tally, shared);
    }
    if let Err(e) = socket.set_read_timeout(Some(Duration::from_millis(100))) {
        tally.read_error = Some(format!("set_read_timeout: {e}"));
    }
    while tally.read_error.is_none() && !shared.stop.load(Ordering::Acquire) {
        match socket.read(&mut buf) {
            Ok(0) => {
                tally.eof = true;
                break;
            }
            Ok(n) => handle_read(&mut stream, &buf[..n], events, &mut tally, shared),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(e) => tally.read_error = Some(format!("read: {e}")),
        }
    }
    if tally.eof || tally.read_error.is_some() {
        shared.ended.fetch_add(1, Ordering::AcqRel);
    }
    (Some(socket), tally)
}

fn handle_read(
    stream: &mut StreamReader,
    bytes: &[u8],
    events: u64,
    tally: &mut ClientTally,
    shared: &ClientShared,
) {
    let now_ns = unix_ns();
    let before = tally.delivered;
    let was_complete = tally.complete;
    let error = stream.feed(bytes, |event| on_event(event, now_ns, events, tally));
    if let Some(e) = error {
        tally.read_error.get_or_insert(e);
    }
    if tally.delivered != before {
        shared.last_event.fetch_max(now_ns, Ordering::AcqRel);
    }
    if tally.complete && !was_complete {
        shared.complete.fetch_add(1, Ordering::AcqRel);
    }
}

fn on_event(event: EventRef<'_>, now_ns: u64, events: u64, tally: &mut ClientTally) {
    // The bench's events (and the gap event) have one data line; should one
    // come with more, the first is the one to read.
    let data = event.data.lines().next().unwrap_or_default();
    match event.event_type {
        "message" => {}
        "sse-gap" => {
            tally.gaps += 1;
            if let Some(n) = data
                .strip_prefix("missed ")
                .and_then(|n| n.trim().parse::<u64>().ok())
            {
                tally.missed += n;
            }
            return;
        }
        _ => return,
    }
    // "<seq> <send_unix_ns> xxx..."
    let mut fields = data.split(' ');
    let number = |field: Option<&str>| -> Option<u64> { field?.parse().ok() };
    let (Some(seq), Some(sent_ns)) = (number(fields.next()), number(fields.next())) else {
        tally.bad_data += 1;
        return;
    };
    if seq >= events {
        tally.bad_data += 1;
        return;
    }
    if tally.last_seq.is_some_and(|last| seq <= last) {
        tally.out_of_order += 1;
    }
    tally.last_seq = Some(seq);
    tally.delivered += 1;
    let latency_us = now_ns.saturating_sub(sent_ns) / 1000;
    tally
        .latencies
        .push(latency_us.min(u64::from(u32::MAX)) as u32);
    if seq + 1 == events {
        tally.complete = true;
    }
}
