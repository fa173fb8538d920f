//! A measurement, not a check (`#[ignore]`; run it with
//! `cargo test --test header_flood -- --ignored --nocapture`): what one
//! request whose header line is 100 MB long does to the server process.
//!
//! `tiny_http` 0.12 reads request headers with no size limit, a byte at a
//! time into a growing buffer. The server runs in a child process (this
//! test binary, re-run on `header_flood_server`), so that its memory can be
//! read from `/proc/<pid>/status` (`VmRSS` now, `VmHWM` the peak) before,
//! while and after the header is sent, 1 MB at a time.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use sse_server::{Hub, Server};
use support::proc::proc_status_kib;
use support::wait::{ms, wait_until};

const HEADER_MB: usize = 100;

#[test]
#[ignore = "the server side of a_100_mb_header_line, run in a child process"]
fn header_flood_server() {
    let hub = Hub::builder().build().expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    println!("ADDR {}", server.local_addr());
    std::io::stdout().flush().expect("flush");
    // Serve until the parent closes our stdin.
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    eprintln!("server stats at the end: {:?}", hub.stats());
    server.shutdown().expect("shutdown");
}

fn memory(pid: &str) -> (u64, u64) {
    (
        proc_status_kib(pid, "VmRSS").unwrap_or(0),
        proc_status_kib(pid, "VmHWM").unwrap_or(0),
    )
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[test]
#[ignore = "a measurement: prints the server's memory around one 100 MB header line"]
fn a_100_mb_header_line() {
    let exe = std::env::current_exe().expect("this test binary");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "header_flood_server",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the server process");
    let pid = child.id().to_string();
    let stdout = child.stdout.take().expect("stdout");
    let (addr_tx, addr_rx) = crossbeam_channel::bounded(1);
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            // libtest may have written `test <name> ... ` on the same line.
            if let Some(at) = line.find("ADDR ") {
                let addr = line[at + 5..].trim();
                let _ = addr_tx.send(addr.parse::<SocketAddr>().expect("an address"));
            }
        }
    });
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the server's address");

    // Settle, then the baseline.
    let (rss_idle, hwm_idle) = memory(&pid);
    println!("server pid {pid} at {addr}");
    println!(
        "idle:                   VmRSS {:>10}  VmHWM {:>10}",
        mib(rss_idle),
        mib(hwm_idle)
    );

    // Samples RSS every 20 ms, keeping the highest.
    let sampling = Arc::new(AtomicBool::new(true));
    let highest = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (sampling, highest, pid) = (Arc::clone(&sampling), Arc::clone(&highest), pid.clone());
        thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                highest.fetch_max(memory(&pid).0, Ordering::Relaxed);
                thread::sleep(ms(20));
            }
        })
    };

    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_write_timeout(Some(Duration::from_secs(60)))
        .expect("write timeout");
    let started = Instant::now();
    stream
        .write_all(b"GET /events HTTP/1.1\r\nHost: flood\r\nX-Big: ")
        .expect("send the start");
    let chunk = vec![b'a'; 1 << 20];
    for mb in 1..=HEADER_MB {
        stream.write_all(&chunk).expect("send 1 MB of the header");
        if mb % 20 == 0 {
            let (rss, hwm) = memory(&pid);
            println!(
                "sent {mb:>3} MB ({:>5.1} s): VmRSS {:>10}  VmHWM {:>10}",
                started.elapsed().as_secs_f64(),
                mib(rss),
                mib(hwm)
            );
        }
    }
    stream.write_all(b"\r\n\r\n").expect("send the end");
    let sent = started.elapsed();

    // The answer.
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("read timeout");
    let mut head = Vec::new();
    let mut piece = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut piece) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&piece[..n]),
        }
    }
    let answered = started.elapsed();
    let status = String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or("(no answer)")
        .to_owned();
    let (rss, hwm) = memory(&pid);
    println!(
        "answered ({:.1} s after the first byte, {:.1} s after the last): {status:?}",
        answered.as_secs_f64(),
        (answered - sent).as_secs_f64()
    );
    println!(
        "after the answer:       VmRSS {:>10}  VmHWM {:>10}",
        mib(rss),
        mib(hwm)
    );

    drop(stream);
    // The stream ends at its next keep-alive (15 s by default); watch the
    // memory for a few seconds after the close all the same.
    let closed = Instant::now();
    wait_until(Duration::from_secs(3), || false);
    let (rss, hwm) = memory(&pid);
    println!(
        "{:.0} s after the close:  VmRSS {:>10}  VmHWM {:>10}",
        closed.elapsed().as_secs_f64(),
        mib(rss),
        mib(hwm)
    );
    sampling.store(false, Ordering::Relaxed);
    sampler.join().expect("the sampler panicked");
    println!(
        "highest VmRSS sampled: {}; growth over idle: RSS peak +{}",
        mib(highest.load(Ordering::Relaxed)),
        mib(hwm.saturating_sub(rss_idle))
    );

    drop(child.stdin.take());
    let ended = wait_until(Duration::from_secs(20), || {
        child.try_wait().expect("wait").is_some()
    });
    if !ended {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(status.starts_with("HTTP/1.1 "), "no answer: {status:?}");
}
