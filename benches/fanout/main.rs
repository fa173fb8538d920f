//! Fan-out benchmark over real loopback sockets.
//!
//! ```text
//! CARGO_TARGET_DIR=/tmp/target-h5 cargo bench --bench fanout
//! CARGO_TARGET_DIR=/tmp/target-h5 cargo bench --bench fanout -- --clients 10,100
//! ```
//!
//! Two parts:
//!
//! 1. **Fan-out.** A [`Server`] with the library's default [`Hub`] runs in
//!    this process on `127.0.0.1:0`; the clients run in a child process (this
//!    same binary, re-executed with `--fanout-clients N --addr A --events M`),
//!    so that `/proc/self/stat` of this process is the server's CPU alone. The
//!    child opens N HTTP/1.1 streams to `/events` (at most 64 handshakes at a
//!    time, one thread per client), reads them with the tests' chunked
//!    decoder (`tests/support/chunked.rs`) and the crate's event-stream
//!    parser ([`sse_server::parse`]), and measures each event's latency from the send
//!    timestamp in its data (`"<seq> <send_unix_ns> "`, padded with `x`, as
//!    in `shared/bench`). Two scenarios per client count: `burst` (M events
//!    as fast as `notify` takes them) and `paced` (a steady rate).
//! 2. **`notify` from the caller's side**: ns per call with 0, 100 and 1,000
//!    subscriptions that never read, from one thread and from 8 threads at
//!    once, and how long the hub thread then takes to work off the backlog.
//!
//! Options (after `--`; unknown arguments, such as the `--bench` cargo
//! passes, are ignored):
//!
//! * `--clients 10,100,1000` (or `SSE_BENCH_CLIENTS`): client counts.
//! * `--burst M`, `--paced M`, `--interval-us I`, `--size B`: the scenarios
//!   (defaults 2,000; 300 at 10,000 µs; 64 bytes). `--burst 0` or
//!   `--paced 0` skips that scenario.
//! * `--subs 0,100,1000`, `--publishers 8`, `--calls 100000`, `--rounds 7`:
//!   the `notify` part.
//! * `--only fanout|notify`.
//!
//! Run without `--bench` (as `cargo test --benches` does) it runs a small
//! smoke version that takes a few seconds; `--full` forces the full one.
//!
//! The machine this runs on is likely shared: the numbers are for comparing
//! runs on the same machine, not absolutes. CPU comes from `utime + stime`
//! in clock ticks (assumed 100 Hz), so compare ns per delivered event only
//! for runs that used a few hundred ms of CPU. The client process shares
//! the machine, and reads every event with the crate's full WHATWG parser
//! (`EventParser::feed_with`: UTF-8 checked, ids kept, no allocation per
//! event), which costs it more than the server spends delivering the event:
//! a burst to 1,000 clients is limited by the client process (2.6 to
//! 3.4 M events/s here, where the bench's former minimal parser, which
//! read only the first `data:` line, let it reach 4.4 to 5.7 M with the
//! same library). Compare burst figures only between runs of the same
//! bench; to compare servers, use `../shared/bench`, whose load generator
//! is a separate Rust program.
//!
//! The parts live in modules of their own: [`options`] (the command line),
//! [`fanout`] (the server side of part 1 and its table), [`child`] (the
//! server's handle on the client process), [`clients`] (the client process
//! and its client threads, which read through the tests' [`chunked`] and
//! the crate's [`sse_server::parse`]), [`report`] (the line the client process reports in),
//! [`notify`] (part 2) and [`system`] (this process, this machine, the
//! clock). [`args`], [`procfs`] and [`wait`], in `benches/common/`, are
//! shared with the other bench.

#[path = "../common/args.rs"]
mod args;
mod child;
// The tests' chunked decoder: the client threads read the streams as the
// tests do. Parts only the tests use are left unused here.
#[allow(dead_code)]
#[path = "../../tests/support/chunked.rs"]
mod chunked;
mod clients;
mod fanout;
mod notify;
mod options;
#[path = "../common/procfs.rs"]
mod procfs;
mod report;
#[path = "../common/stream.rs"]
mod stream;
mod system;
#[path = "../common/wait.rs"]
mod wait;

use std::io::{self, Write};
use std::thread;

use sse_server::Hub;

use crate::options::Options;
use crate::system::{cpu_model, open_file_limit, read_trimmed, unix_ns};

/// What the bench's fallible steps give back: an error is a sentence.
type Res<T> = Result<T, String>;

fn main() {
    let args = args::from_env();
    if args.iter().any(|arg| arg == clients::CHILD_MARKER) {
        if let Err(e) = clients::client_process(args) {
            println!("ERROR {e}");
            let _ = io::stdout().flush();
            std::process::exit(1);
        }
        return;
    }
    let options = match Options::parse(args) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("fanout bench: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&options) {
        eprintln!("fanout bench FAILED: {e}");
        std::process::exit(1);
    }
}

fn run(options: &Options) -> Res<()> {
    print_header(options);
    if options.fanout {
        fanout::fanout_part(options)?;
    }
    if options.notify {
        notify::notify_part(options)?;
    }
    Ok(())
}

fn print_header(options: &Options) {
    println!("# sse-server fan-out bench");
    println!();
    println!("date:      {} (Unix time, s)", unix_ns() / 1_000_000_000);
    println!(
        "nproc:     {}",
        thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("cpu:       {}", cpu_model());
    println!(
        "kernel:    {}",
        read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_default()
    );
    println!(
        "loadavg:   {}",
        read_trimmed("/proc/loadavg").unwrap_or_default()
    );
    println!("nofile:    {}", open_file_limit().unwrap_or(0));
    println!("defaults:  {:?}", Hub::builder());
    if options.smoke {
        println!(
            "mode:      SMOKE (run without --bench; `cargo bench --bench fanout` runs the full bench)"
        );
    }
    println!();
}
