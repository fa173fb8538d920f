//! The acceptor survives `accept()` failing with EMFILE.
//!
//! `tiny_http` 0.12's accept thread ends for good on any `accept()` error;
//! the library's acceptor (`acceptor.rs`, `AcceptLoop`) notices, logs a
//! warning, and starts a new one on the same socket after a backoff.
//!
//! Running out of descriptors is process-wide, so each scenario runs in a
//! child process: the parent test re-runs this test binary on one
//! `#[ignore]`d child test, through `sh -c 'ulimit -n 64 && exec ...'`, and
//! checks that it passed. In the child, a logger records the crate's log
//! lines (and, in some scenarios, frees or takes descriptors the moment the
//! acceptor reports the failure, on the acceptor's own thread, which makes
//! the order of events certain); the server starts with no descriptor to
//! spare, and one connection then makes `accept()` fail.
//!
//! Linux reserves the descriptor of the connection to come when `accept()`
//! starts: a thread waiting in `accept()` holds one, and with none free
//! `accept()` fails at once, whether a connection is waiting or not. So the
//! server is started with descriptors to spare, its accept thread is seen
//! waiting (in `/proc`), and only then are the rest used up; a connection
//! then takes two (the client's socket, and `tiny_http`'s duplicate of the
//! accepted one) before the next `accept()` finds none.
//!
//! Scenarios: the descriptors come back at once (the first retry starts a
//! new acceptor); they stay used up across several retries; a retry that
//! cannot clone the listening socket is followed by another; a connection
//! accepted before the restart is still answered; and `accept()` taking
//! the very last descriptor, which kills tiny_http's accept thread with a
//! panic, is noticed and the thread restarted.

mod support;

use std::fs::File;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sse_server::{Hub, Server};
use support::child::run_child_test;
use support::client::Client;
use support::hubs::plain_hub;
use support::raw::{parse_response, raw_connect, read_raw};
use support::wait::wait_until;

const NOFILE: u32 = 64;
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(10);
const EMFILE: i32 = 24;

/// The warning the acceptor logs when `accept()` fails.
const ACCEPT_FAILED: &str = "accepting connections failed";
/// The warning it logs when it cannot start a new acceptor.
const RESTART_FAILED: &str = "restarting the acceptor failed";
/// The warning it logs when tiny_http's accept thread panicked (an
/// accepted socket could not be duplicated).
const ACCEPT_DIED: &str = "accept thread has died";
/// The warning it logs when a new acceptor has started.
const RUNNING_AGAIN: &str = "the acceptor is running again";

// ---------------------------------------------------------------------------
// The child's side: a logger that records, and descriptors held in a static
// so that the logger can free them.
// ---------------------------------------------------------------------------

static LOG: Mutex<Vec<(log::Level, String, String)>> = Mutex::new(Vec::new());
static HELD: Mutex<Vec<File>> = Mutex::new(Vec::new());
/// Set (with `HELD` locked) once the acceptor has reported a failure.
static FAILED: AtomicBool = AtomicBool::new(false);

/// When set, the logger frees the held descriptors as the acceptor reports
/// the failed `accept()`: before its first retry, so the retry finds
/// descriptors.
static FREE_ON_FAILURE: AtomicBool = AtomicBool::new(false);

/// When set, the logger, on the acceptor's thread and so before its first
/// retry, takes the descriptor that tiny_http's dead accept thread gave
/// back (its clone of the listening socket): as any other thread of a busy
/// process might. Cleared once done.
static STEAL_ON_FAILURE: AtomicBool = AtomicBool::new(false);

fn steal_a_descriptor() {
    let before = lock(&HELD).len();
    let stole = wait_until(Duration::from_secs(2), || {
        fill();
        lock(&HELD).len() > before
    });
    eprintln!("stole a descriptor before the retry: {stole}");
}

/// When set, the logger, on the acceptor's thread, waits until a
/// descriptor is free (taking it for a moment, then giving it back): until
/// tiny_http's dead accept thread has closed its clone of the listening
/// socket, so that the retry can clone it again. On a loaded machine that
/// thread may otherwise still hold it at the first retry, which then fails
/// (see `acceptor_retries_when_a_restart_fails`).
static AWAIT_FREED_ON_FAILURE: AtomicBool = AtomicBool::new(false);

fn await_a_freed_descriptor() {
    let freed = wait_until(Duration::from_secs(2), || File::open("/dev/null").is_ok());
    if !freed {
        eprintln!("no descriptor came free before the retry");
    }
}

struct Recorder;

impl log::Log for Recorder {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let message = record.args().to_string();
        if record.level() <= log::Level::Warn {
            eprintln!("[{} {}] {message}", record.level(), record.target());
        }
        // Recorded before `FAILED` is set: a test that sees it finds the
        // message.
        lock(&LOG).push((record.level(), record.target().to_owned(), message.clone()));
        if message.contains(ACCEPT_FAILED) || message.contains(ACCEPT_DIED) {
            // Under the lock, so that `leave_free` sees either both or
            // neither.
            let mut held = lock(&HELD);
            FAILED.store(true, Ordering::Release);
            if FREE_ON_FAILURE.load(Ordering::Acquire) {
                held.clear();
            }
        }
        if message.contains(ACCEPT_FAILED) {
            if STEAL_ON_FAILURE.swap(false, Ordering::AcqRel) {
                steal_a_descriptor();
            }
            if AWAIT_FREED_ON_FAILURE.load(Ordering::Acquire) {
                await_a_freed_descriptor();
            }
        }
    }

    fn flush(&self) {}
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn logged(needle: &str) -> bool {
    lock(&LOG)
        .iter()
        .any(|(_, _, message)| message.contains(needle))
}

fn install_logger() {
    log::set_logger(&Recorder).expect("install the recording logger");
    log::set_max_level(log::LevelFilter::Debug);
}

/// Opens `/dev/null` until the process is out of descriptors.
fn fill() {
    open_until_emfile(&mut lock(&HELD));
}

fn open_until_emfile(held: &mut Vec<File>) {
    loop {
        match File::open("/dev/null") {
            Ok(file) => held.push(file),
            Err(e) if e.raw_os_error() == Some(EMFILE) => return,
            Err(e) => panic!("open /dev/null: {e}"),
        }
        assert!(held.len() < 10 * NOFILE as usize, "no descriptor limit?");
    }
}

/// Uses up the descriptors and frees `n`, unless the acceptor has already
/// reported a failure (when the logger may have freed them all on purpose).
fn leave_free(n: usize) {
    let mut held = lock(&HELD);
    if FAILED.load(Ordering::Acquire) {
        return;
    }
    open_until_emfile(&mut held);
    for _ in 0..n {
        held.pop();
    }
}

/// Whether a thread of this process waits in `accept()` (`tiny_http`'s
/// accept thread, holding the descriptor of the next connection).
fn waiting_in_accept() -> bool {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return false;
    };
    tasks.flatten().any(|task| {
        let wchan = std::fs::read_to_string(task.path().join("wchan")).unwrap_or_default();
        let syscall = std::fs::read_to_string(task.path().join("syscall")).unwrap_or_default();
        // Where the kernel hides wchan, the syscall number (x86-64's
        // accept and accept4).
        wchan.contains("accept")
            || (cfg!(target_arch = "x86_64")
                && matches!(syscall.split_whitespace().next(), Some("43" | "288")))
    })
}

/// What the logger does when the acceptor reports a failed `accept()`;
/// set before the server starts, because a stray connection (a recycled
/// port) can make the very first `accept()` fail.
#[derive(Clone, Copy)]
enum OnFailure {
    /// Free every held descriptor.
    Free,
    /// Wait until a descriptor is free (see `AWAIT_FREED_ON_FAILURE`).
    AwaitFreed,
    /// Take the descriptor that comes free (see `STEAL_ON_FAILURE`).
    Steal,
    Nothing,
}

/// A hub and a server with no descriptor to spare: its accept thread waits
/// in `accept()`, holding the one it needs for the next connection.
fn start_exhausted(on_failure: OnFailure) -> (Hub, Server, SocketAddr) {
    install_logger();
    match on_failure {
        OnFailure::Free => FREE_ON_FAILURE.store(true, Ordering::Release),
        OnFailure::AwaitFreed => AWAIT_FREED_ON_FAILURE.store(true, Ordering::Release),
        OnFailure::Steal => STEAL_ON_FAILURE.store(true, Ordering::Release),
        OnFailure::Nothing => {}
    }
    let hub = plain_hub().build().expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    assert!(
        wait_until(WAIT, waiting_in_accept),
        "tiny_http's accept thread never waited in accept()"
    );
    // No request yet, so the acceptor makes no wake-up connections
    // (`src/tiny_http_fixes/pool.rs`): nothing but the test takes descriptors.
    fill();
    eprintln!("holding {} descriptors", lock(&HELD).len());
    let addr = server.local_addr();
    (hub, server, addr)
}

/// A stream client gets an event: the server accepts and serves.
fn assert_serves(hub: &Hub, addr: SocketAddr, what: &str) {
    let mut client = Client::connect_within(addr, "/events", WAIT)
        .unwrap_or_else(|e| panic!("{what}: no stream: {e}"));
    assert_eq!(client.status, 200, "{what}");
    let data = format!("served {what}");
    hub.notify(&data).expect("notify");
    assert_eq!(client.expect_event(WAIT, what).data, data);
}

/// Uses up the descriptors, frees two and connects with one, so that the
/// server accepts the connection, duplicates it with the other, and its
/// next `accept()` finds none, until the acceptor's warning is logged.
/// (Using them up each time makes this robust against descriptors that
/// come free meanwhile, e.g. when a wake-up connection of the acceptor's
/// closes.) Done when the acceptor reports either failure: `accept()`
/// failing, or, if a wake-up connection took a descriptor at the wrong
/// moment, tiny_http's accept thread dying on the duplicate; callers that
/// need the first check for it. Returns the connection(s) made.
fn make_accept_fail(addr: SocketAddr) -> Vec<TcpStream> {
    let failed = || FAILED.load(Ordering::Acquire);
    let mut connections = Vec::new();
    let reported = wait_until(WAIT, || {
        if failed() {
            return true;
        }
        leave_free(2);
        match TcpStream::connect(addr) {
            Ok(stream) => connections.push(stream),
            // Something else took the descriptor first; free another.
            Err(e) if e.raw_os_error() == Some(EMFILE) => {}
            Err(e) => panic!("connect: {e}"),
        }
        wait_until(Duration::from_millis(500), failed)
    });
    assert!(
        reported,
        "accept() never failed; log: {:?}",
        lock(&LOG).iter().map(|l| &l.2).collect::<Vec<_>>()
    );
    connections
}

/// [`make_accept_fail`] until it is `accept()` that fails, for the
/// scenarios about the acceptor's EMFILE warning. Something else in the
/// process may take the one descriptor left, between `leave_free` and
/// tiny_http's duplicate of the accepted socket (about one run in fifty
/// here); then tiny_http's accept thread dies on the duplicate instead.
/// Once the acceptor has started a new one and it waits in `accept()`,
/// this tries again.
fn make_accept_fail_in_accept(addr: SocketAddr) -> Vec<TcpStream> {
    const ATTEMPTS: usize = 5;
    let mut pending = Vec::new();
    for _ in 0..ATTEMPTS {
        let restarts = warnings(RUNNING_AGAIN);
        pending.extend(make_accept_fail(addr));
        if logged(ACCEPT_FAILED) {
            return pending;
        }
        eprintln!("tiny_http's accept thread died on the duplicate; trying again");
        // Descriptors for the restart, the new accept thread's `accept()`
        // and the look at `/proc`; `make_accept_fail` uses them up again.
        lock(&HELD).clear();
        assert!(
            wait_until(WAIT, || warnings(RUNNING_AGAIN) > restarts),
            "the acceptor did not restart the dead accept thread"
        );
        assert!(
            wait_until(WAIT, waiting_in_accept),
            "the new accept thread never waited in accept()"
        );
        let _held = lock(&HELD);
        FAILED.store(false, Ordering::Release);
    }
    panic!("accept() never failed in {ATTEMPTS} attempts: the accept thread died each time");
}

fn assert_warned_about_emfile() {
    let log = lock(&LOG);
    let warning = log
        .iter()
        .find(|(_, _, message)| message.contains(ACCEPT_FAILED))
        .expect("the warning");
    assert_eq!(warning.0, log::Level::Warn, "{warning:?}");
    assert!(warning.1.starts_with("sse_server"), "{warning:?}");
    assert!(
        warning.2.contains("Too many open files") && warning.2.contains("trying again in"),
        "{warning:?}"
    );
}

#[test]
#[ignore = "a child process of acceptor_restarts_after_accept_fails_with_emfile"]
fn child_restart_after_emfile() {
    let (hub, server, addr) = start_exhausted(OnFailure::Free);
    let pending = make_accept_fail_in_accept(addr);
    assert!(lock(&HELD).is_empty(), "the logger freed the descriptors");
    assert_warned_about_emfile();
    // A new acceptor takes the connection that failed, and new ones.
    assert_serves(&hub, addr, "after the restart");
    assert_serves(&hub, addr, "again after the restart");
    assert!(!logged(RESTART_FAILED));
    drop(pending);
    server.shutdown().expect("shutdown");
}

fn warnings(needle: &str) -> usize {
    lock(&LOG)
        .iter()
        .filter(|(level, _, message)| *level == log::Level::Warn && message.contains(needle))
        .count()
}

#[test]
#[ignore = "a child process of acceptor_recovers_when_descriptors_stay_exhausted"]
fn child_restart_after_a_long_emfile() {
    let (hub, server, addr) = start_exhausted(OnFailure::AwaitFreed);
    let pending = make_accept_fail_in_accept(addr);
    assert_warned_about_emfile();
    // The descriptors stay used up across several retries (10, 20, 40 ms
    // of backoff): each new acceptor fails in its turn.
    assert!(
        wait_until(WAIT, || warnings(ACCEPT_FAILED) >= 4),
        "the acceptor kept retrying"
    );
    lock(&HELD).clear();
    // The backoff is at most a second: one of the next retries succeeds.
    assert_serves(&hub, addr, "once descriptors are free again");
    drop(pending);
    server.shutdown().expect("shutdown");
}

#[test]
#[ignore = "a child process of acceptor_retries_when_a_restart_fails"]
fn child_restart_fails_once() {
    let (hub, server, addr) = start_exhausted(OnFailure::Steal);
    let pending = make_accept_fail_in_accept(addr);
    assert!(
        wait_until(WAIT, || logged(RESTART_FAILED)),
        "the first retry could not start a new acceptor"
    );
    // Descriptors are free again: a later retry must start one.
    lock(&HELD).clear();
    assert_serves(&hub, addr, "once descriptors are free again");
    drop(pending);
    server.shutdown().expect("shutdown");
}

#[test]
#[ignore = "a child process of a_connection_from_before_the_restart_is_still_answered"]
fn child_connection_across_a_restart() {
    install_logger();
    FREE_ON_FAILURE.store(true, Ordering::Release);
    let hub = plain_hub().build().expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();
    // A keep-alive connection the first acceptor took and answered.
    let mut old = raw_connect(addr);
    assert_eq!(
        options(&mut old).as_deref(),
        Some("HTTP/1.1 204 No Content"),
        "the first request"
    );
    // The first acceptor fails (the logger frees the descriptors when it
    // reports it, whichever way it failed: wake-up connections run for a
    // while after a request) and a new one takes over.
    fill();
    let pending = make_accept_fail(addr);
    assert_serves(&hub, addr, "after the restart");

    // Another request on the connection from before the restart.
    assert_eq!(
        options(&mut old).as_deref(),
        Some("HTTP/1.1 204 No Content"),
        "a request on a connection accepted before the restart"
    );
    drop(pending);
    server.shutdown().expect("shutdown");
}

/// Sends `OPTIONS /events` on `stream`; the status line of the answer.
fn options(stream: &mut TcpStream) -> Option<String> {
    stream
        .write_all(b"OPTIONS /events HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    let reply = read_raw(stream, WAIT, |bytes| parse_response(bytes).is_some());
    parse_response(&reply.bytes).map(|(r, _)| r.status_line)
}

#[test]
#[ignore = "a child process of the_server_survives_running_out_of_descriptors_mid_accept"]
fn child_clone_fails_after_accept() {
    // Set before the server starts: a stray connection (a recycled port)
    // can kill the accept thread the same way before the test connects.
    let panicked = std::sync::Arc::new(AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&panicked);
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.to_string().contains("Too many open files") {
            flag.store(true, Ordering::Release);
        }
        default_hook(info);
    }));
    let died = || panicked.load(Ordering::Acquire);
    let (hub, server, addr) = start_exhausted(OnFailure::Nothing);
    // Exactly one descriptor free, for our socket: the server's accept()
    // has its own, and none is left for the clone tiny_http makes of every
    // accepted socket. A descriptor that comes free between the count and
    // the accept (a connection the server took before closing, say) lets
    // the clone succeed; the next `accept()` then fails instead, and the
    // acceptor restarts it in a loop while descriptors stay used up. Then
    // descriptors are given back until the acceptor waits in `accept()`
    // again, and the test tries again.
    let mut pending = Vec::new();
    let mut attempts = 0;
    let killed = wait_until(WAIT, || {
        if died() {
            return true;
        }
        if warnings(ACCEPT_FAILED) > 0 {
            lock(&HELD).clear();
            // Only one accept thread at a time: one seen waiting stays.
            assert!(
                wait_until(WAIT, waiting_in_accept),
                "the acceptor never waited in accept() again"
            );
            lock(&LOG).clear();
        }
        attempts += 1;
        {
            let mut held = lock(&HELD);
            open_until_emfile(&mut held);
            held.pop();
        }
        match TcpStream::connect(addr) {
            Ok(stream) => pending.push(stream),
            Err(e) if e.raw_os_error() == Some(EMFILE) => {}
            Err(e) => panic!("connect: {e}"),
        }
        wait_until(Duration::from_millis(500), died)
    });
    assert!(
        killed,
        "tiny_http's accept thread did not panic ({attempts} attempts); log: {:?}",
        lock(&LOG).iter().map(|l| &l.2).collect::<Vec<_>>()
    );
    eprintln!("the accept thread panicked after {attempts} attempt(s)");
    // Descriptors are back; the server should serve again.
    lock(&HELD).clear();
    assert_serves(&hub, addr, "once descriptors are free again");
    assert!(
        logged(ACCEPT_DIED),
        "the acceptor did not report the dead thread"
    );
    drop(pending);
    server.shutdown().expect("shutdown");
}

// ---------------------------------------------------------------------------
// The parents
// ---------------------------------------------------------------------------

fn run(child: &str) {
    let run = run_child_test(child, Some(NOFILE), CHILD_TIMEOUT);
    assert!(
        run.passed(child),
        "the child test {child} (ulimit -n {NOFILE}) did not pass: status {:?}\n\
         --- stdout\n{}\n--- stderr\n{}",
        run.status,
        run.stdout,
        run.stderr
    );
    eprintln!("child {child}: stderr\n{}", run.stderr);
}

#[test]
fn acceptor_restarts_after_accept_fails_with_emfile() {
    run("child_restart_after_emfile");
}

#[test]
fn acceptor_recovers_when_descriptors_stay_exhausted() {
    run("child_restart_after_a_long_emfile");
}

#[test]
fn acceptor_retries_when_a_restart_fails() {
    run("child_restart_fails_once");
}

#[test]
fn the_server_survives_running_out_of_descriptors_mid_accept() {
    run("child_clone_fails_after_accept");
}

#[test]
fn a_connection_from_before_the_restart_is_still_answered() {
    run("child_connection_across_a_restart");
}
