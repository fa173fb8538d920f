//! A real third-party client: `curl` reads the stream and, at shutdown,
//! sees a complete response (it exits with an error, 18, when a chunked
//! body is cut short).

mod support;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sse_server::parse::parse_all;
use sse_server::{Event, Server};
use support::hubs::plain_hub;
use support::wait::wait_until;

/// Kills curl if the test fails before it exits.
struct Curl(Child);

impl Drop for Curl {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether the `curl` binary can be run here; when not, says so (the test
/// then passes, having checked nothing).
fn curl_installed() -> bool {
    match Command::new("curl")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
    {
        Ok(status) if status.success() => true,
        _ => {
            eprintln!("skipping: curl is not installed (apt-get install curl)");
            false
        }
    }
}

fn check_curl(http_flag: &str) {
    if !curl_installed() {
        return;
    }
    let hub = plain_hub().keep_alive(None).build().expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let url = format!("http://{}/events", server.local_addr());
    let child = Command::new("curl")
        .args(["--silent", "--show-error", "--no-buffer", http_flag])
        .args(["--max-time", "20", &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start curl");
    let mut curl = Curl(child);

    // Once curl's stream is registered, what is published reaches it.
    assert!(
        wait_until(Duration::from_secs(10), || hub.stats().clients == 1),
        "curl {http_flag} connected"
    );
    hub.notify("hello curl").expect("notify");
    let named = Event::new("a\nb")
        .with_event("named")
        .expect("valid name")
        .with_id("9")
        .expect("valid id");
    hub.publish(&named).expect("publish");
    hub.shutdown().expect("shutdown");

    let mut status = None;
    assert!(
        wait_until(Duration::from_secs(10), || {
            status = curl.0.try_wait().expect("poll curl");
            status.is_some()
        }),
        "curl {http_flag} did not exit after the stream ended"
    );
    let mut stdout = Vec::new();
    let mut stderr = String::new();
    curl.0
        .stdout
        .take()
        .expect("curl's stdout")
        .read_to_end(&mut stdout)
        .expect("read curl's stdout");
    curl.0
        .stderr
        .take()
        .expect("curl's stderr")
        .read_to_string(&mut stderr)
        .expect("read curl's stderr");
    let status = status.expect("curl exited");
    assert!(
        status.success(),
        "curl {http_flag} exited with {status}: {stderr}"
    );
    let mut want = b"data: hello curl\n\n".to_vec();
    want.extend_from_slice(&named.to_bytes());
    assert_eq!(
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&want)
    );
    let events = parse_all(&stdout);
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].data, "a\nb");
}

#[test]
fn curl_reads_a_complete_http_1_1_stream() {
    check_curl("--http1.1");
}

#[test]
fn curl_reads_a_complete_http_1_0_stream() {
    check_curl("--http1.0");
}
