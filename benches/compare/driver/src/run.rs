//! One run: a target and a scenario. Starts the server pinned to one core,
//! waits for `/stats`, samples it idle, starts the loadgen pinned to the other
//! core, samples the server at `READY` (connected) and at `DONE` (after), and
//! returns the loadgen's JSON line with the server's figures added. Every
//! wait is bounded; the server always gets SIGTERM, then SIGKILL 3 s later.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use crate::procfs::{self, Sample};

/// One row of the contract's scenario table.
pub struct Scenario {
    pub name: &'static str,
    pub clients: usize,
    pub events: u64,
    pub size: usize,
    pub interval_us: u64,
}

pub const SCENARIOS: [Scenario; 4] = [
    Scenario {
        name: "max",
        clients: 1_000,
        events: 2_000,
        size: 64,
        interval_us: 0,
    },
    Scenario {
        name: "paced",
        clients: 1_000,
        events: 300,
        size: 64,
        interval_us: 10_000,
    },
    Scenario {
        name: "idle10k",
        clients: 10_000,
        events: 20,
        size: 64,
        interval_us: 100_000,
    },
    Scenario {
        name: "large",
        clients: 100,
        events: 500,
        size: 16_384,
        interval_us: 0,
    },
];

/// A server to compare: `program args... --addr 127.0.0.1:PORT`.
pub struct Target {
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
}

/// What every run shares.
pub struct Setup {
    pub loadgen: PathBuf,
    pub logs: PathBuf,
    pub server_cpu: String,
    pub loadgen_cpu: String,
}

/// Longest waits: the server's first `/stats` answer, the loadgen's `READY`
/// (it gives up connecting after 90 s and on /stats after 30 s more), its
/// `DONE` (it stops 120 s after the publish at the latest), its JSON line.
const SERVER_UP: Duration = Duration::from_secs(10);
const READY: Duration = Duration::from_secs(150);
const DONE: Duration = Duration::from_secs(150);
const REPORT: Duration = Duration::from_secs(60);

/// Runs `target` on `scenario`: the JSON line, or why the run failed.
pub fn run(
    setup: &Setup,
    target: &Target,
    scenario: &Scenario,
    repeat: usize,
) -> Result<String, String> {
    let stem = format!("{}-{}-{repeat}", target.name, scenario.name);
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let addr = format!("127.0.0.1:{port}");
    let server_log = log_file(&setup.logs, &format!("{stem}.server.log"))?;
    let mut server = Command::new("taskset")
        .args(["-c", &setup.server_cpu])
        .arg(&target.program)
        .args(&target.args)
        .args(["--addr", &addr])
        .stdin(Stdio::null())
        .stdout(server_log.try_clone().map_err(|e| e.to_string())?)
        .stderr(server_log)
        .spawn()
        .map_err(|e| format!("cannot start taskset {}: {e}", target.program.display()))?;
    let result = with_server(setup, target, scenario, &stem, &addr, &mut server);
    stop_server(&mut server, &target.name);
    result
}

fn with_server(
    setup: &Setup,
    target: &Target,
    scenario: &Scenario,
    stem: &str,
    addr: &str,
    server: &mut Child,
) -> Result<String, String> {
    wait_for_stats(addr, server)?;
    thread::sleep(Duration::from_millis(300));
    let pid = server.id();
    let idle = procfs::sample(pid)?;
    let mut loadgen = Command::new("taskset")
        .args(["-c", &setup.loadgen_cpu])
        .arg(&setup.loadgen)
        .args(["--sync", "--addr", addr, "--target", &target.name])
        .args(["--clients", &scenario.clients.to_string()])
        .args(["--events", &scenario.events.to_string()])
        .args(["--size", &scenario.size.to_string()])
        .args(["--interval-us", &scenario.interval_us.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log_file(&setup.logs, &format!("{stem}.loadgen.log"))?)
        .spawn()
        .map_err(|e| format!("cannot start the loadgen {}: {e}", setup.loadgen.display()))?;
    let result = drive_loadgen(&mut loadgen, pid);
    if result.is_err() {
        let _ = loadgen.kill();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while matches!(loadgen.try_wait(), Ok(None)) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    let _ = loadgen.kill();
    let _ = loadgen.wait();
    let (connected, after, line) = result?;
    add_server_figures(&line, scenario, idle, connected, after)
}

/// Steps the loadgen through READY and DONE, sampling the server at each.
fn drive_loadgen(loadgen: &mut Child, pid: u32) -> Result<(Sample, Sample, String), String> {
    let lines = line_reader(loadgen.stdout.take().expect("piped"));
    let mut stdin = loadgen.stdin.take().expect("piped");
    expect(&lines, |l| l == "READY", "READY", READY)?;
    let connected = procfs::sample(pid)?;
    go_on(&mut stdin)?;
    expect(&lines, |l| l == "DONE", "DONE", DONE)?;
    let after = procfs::sample(pid)?;
    go_on(&mut stdin)?;
    let line = expect(&lines, |l| l.starts_with('{'), "its JSON line", REPORT)?;
    Ok((connected, after, line))
}

fn go_on(stdin: &mut ChildStdin) -> Result<(), String> {
    writeln!(stdin)
        .and_then(|_| stdin.flush())
        .map_err(|e| format!("loadgen stdin: {e}"))
}

/// The loadgen's stdout, line by line, from a thread of its own.
fn line_reader(stdout: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits up to `limit` for a line that `wanted` accepts.
fn expect(
    lines: &Receiver<String>,
    wanted: impl Fn(&str) -> bool,
    what: &str,
    limit: Duration,
) -> Result<String, String> {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if wanted(line.trim()) => return Ok(line.trim().to_string()),
            Ok(_) => continue,
            Err(RecvTimeoutError::Timeout) => {
                return Err(format!("loadgen timed out: no {what} within {limit:?}"));
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(format!("loadgen exited before {what} (see its log)"));
            }
        }
    }
}

/// Polls `GET /stats` until it answers `200` with a `clients` line.
fn wait_for_stats(addr: &str, server: &mut Child) -> Result<(), String> {
    let deadline = Instant::now() + SERVER_UP;
    loop {
        if let Ok(Some(status)) = server.try_wait() {
            return Err(format!("server exited at start ({status}; see its log)"));
        }
        if stats_answer(addr) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("server did not answer /stats within {SERVER_UP:?}"));
        }
        thread::sleep(Duration::from_millis(50));
    }
}

fn stats_answer(addr: &str) -> bool {
    let Ok(sock) = addr.parse() else { return false };
    let Ok(mut stream) = TcpStream::connect_timeout(&sock, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let request = format!("GET /stats HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut got = Vec::new();
    let mut buf = [0; 4096];
    while let Ok(n @ 1..) = stream.read(&mut buf) {
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if text.contains("\nclients ") || got.len() > 65_536 {
            break;
        }
    }
    let text = String::from_utf8_lossy(&got);
    let ok_status = text.split(' ').nth(1) == Some("200") && text.starts_with("HTTP/1.");
    ok_status && text.contains("\nclients ")
}

/// SIGTERM, then SIGKILL after 3 s.
fn stop_server(server: &mut Child, name: &str) {
    let pid = rustix::process::Pid::from_child(server);
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if !matches!(server.try_wait(), Ok(None)) {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    eprintln!("compare: {name} ignored SIGTERM for 3 s; killing it");
    let _ = server.kill();
    let _ = server.wait();
}

/// The loadgen's line with the scenario and the server's figures appended.
fn add_server_figures(
    line: &str,
    scenario: &Scenario,
    idle: Sample,
    connected: Sample,
    after: Sample,
) -> Result<String, String> {
    let parsed: serde_json::Value = serde_json::from_str(line)
        .map_err(|e| format!("loadgen printed bad JSON ({e}): {line}"))?;
    let delivered = parsed["delivered"].as_f64().unwrap_or(0.0);
    let server_cpu_ms = after.cpu_ms - connected.cpu_ms;
    let per_client = (connected.rss_kib as f64 - idle.rss_kib as f64) / scenario.clients as f64;
    let ns_per_delivered = if delivered > 0.0 {
        format!("{:.1}", server_cpu_ms * 1e6 / delivered)
    } else {
        "null".into()
    };
    let body = line
        .trim_end()
        .strip_suffix('}')
        .ok_or("loadgen line is not a JSON object")?;
    Ok(format!(
        "{body},\"scenario\":\"{}\",\"rss_idle_kib\":{},\"threads_idle\":{},\
         \"rss_connected_kib\":{},\"threads_connected\":{},\"rss_per_client_kib\":{per_client:.2},\
         \"server_cpu_connect_ms\":{},\"rss_after_kib\":{},\"threads_after\":{},\
         \"server_cpu_ms\":{server_cpu_ms},\"server_cpu_ns_per_delivered\":{ns_per_delivered}}}",
        scenario.name,
        idle.rss_kib,
        idle.threads,
        connected.rss_kib,
        connected.threads,
        connected.cpu_ms - idle.cpu_ms,
        after.rss_kib,
        after.threads,
    ))
}

fn log_file(dir: &Path, name: &str) -> Result<File, String> {
    let path = dir.join(name);
    File::create(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))
}
