//! Behind a real reverse proxy with TLS and HTTP/2: Debian's nginx (and
//! Caddy when it is installed) on a free port of 127.0.0.1, with a
//! self-signed certificate made at test time, in front of our `Server`. The
//! client is the `curl` binary, verifying the certificate, over HTTP/2 (and
//! over HTTP/1.1 too, where nginx's buffering shows: over HTTP/2, nginx
//! 1.22 passes small events on even when told to buffer). Without nginx
//! (or caddy) the tests pass with a message saying they were skipped.
//!
//! What they show: events pass through one at a time, unbuffered (with
//! `proxy_buffering off`, and with our `X-Accel-Buffering: no` alone); the
//! hub's keep-alive holds a stream open past nginx's `proxy_read_timeout`,
//! which ends a silent stream without it; ten streams to one origin share
//! one HTTP/2 connection and all receive the events.

mod support;

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use sse_server::parse::parse_all;
use sse_server::{Hub, Server};
use support::hubs::{client_ids, plain_hub};
use support::nginx::{Kind, Proxy, established_to, installed};
use support::wait::wait_until;

/// How long anything the tests wait for may take.
const WAIT: Duration = Duration::from_secs(15);
/// nginx's `proxy_read_timeout` in these tests (the README's is longer):
/// longer than the keep-alive of the test that needs one, shorter than the
/// silence that test keeps.
const READ_TIMEOUT_SECS: u64 = 3;
/// The keep-alive of the test that holds a silent stream open.
const KEEP_ALIVE: Duration = Duration::from_secs(1);
/// How many keep-alives that test waits for with no event: 9 s of silence,
/// three times nginx's read timeout.
const SILENT_KEEP_ALIVES: usize = 9;

/// The `retry:` every stream starts with in these tests (no jitter, so
/// the bytes are known): as with the hub's defaults, each stream sends its
/// first bytes at once. nginx 1.22 holds an HTTP/2 response's head until
/// the first bytes of its body come, so without them a client would not
/// see the stream open (`onopen`) before the first event or keep-alive.
const RETRY: &str = "retry: 3000\n";

/// A hub for these tests: `retry: 3000` at connect, no automatic ids, and
/// `keep_alive`.
fn hub(keep_alive: Option<Duration>) -> Hub {
    plain_hub()
        .retry(Some(Duration::from_secs(3)))
        .retry_jitter(Duration::ZERO)
        .keep_alive(keep_alive)
        .build()
        .expect("build the hub")
}

/// The README's location block, with the upstream our server and the read
/// timeout of these tests.
fn readme_location(upstream: &Server) -> String {
    format!(
        "        location /events {{
            proxy_pass http://{upstream};
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_buffering off;
            proxy_cache off;
            proxy_read_timeout {READ_TIMEOUT_SECS}s;
        }}
",
        upstream = upstream.local_addr()
    )
}

/// A location without `proxy_buffering off`: nginx's default is to buffer
/// the upstream's answer, so only the stream's `X-Accel-Buffering: no`
/// keeps the events from waiting in nginx's buffers.
fn header_only_location(upstream: &Server) -> String {
    format!(
        "        location /header-only/ {{
            proxy_pass http://{upstream}/;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_read_timeout {READ_TIMEOUT_SECS}s;
        }}
",
        upstream = upstream.local_addr()
    )
}

/// A `curl` process; killed and waited for on drop, also when a test fails.
/// Its stdout and stderr are collected as they come.
struct Curl {
    child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
}

impl Curl {
    /// `curl <http> --no-buffer --verbose` with the proxy's name, address
    /// and certificate, and `args`. At most a minute, should it be left
    /// behind.
    fn start(proxy: &Proxy, http: Http, args: &[String]) -> Curl {
        let mut child = Command::new("curl")
            .arg(http.flag())
            .args(["--no-buffer", "--silent", "--show-error"])
            .args(["--verbose", "--max-time", "60"])
            .args(proxy.curl_args())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start curl");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            collect(child.stdout.take().expect("curl's stdout"), &stdout),
            collect(child.stderr.take().expect("curl's stderr"), &stderr),
        ];
        Curl {
            child,
            stdout,
            stderr,
            readers,
        }
    }

    /// One stream: `url`, then `http_version=<..>` on stderr at its end.
    fn stream(proxy: &Proxy, http: Http, url: &str) -> Curl {
        Curl::start(
            proxy,
            http,
            &[
                "--write-out".to_owned(),
                "%{stderr}http_version=%{http_version}\n".to_owned(),
                url.to_owned(),
            ],
        )
    }

    fn stdout(&self) -> Vec<u8> {
        self.stdout.lock().expect("curl's stdout").clone()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().expect("curl's stderr")).into_owned()
    }

    /// Waits until curl has exited (bounded), then until its output has
    /// been read to the end.
    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut status = None;
        wait_until(timeout, || {
            status = self.child.try_wait().expect("poll curl");
            status.is_some()
        });
        if status.is_some() {
            for reader in self.readers.drain(..) {
                reader.join().expect("a reader of curl's output panicked");
            }
        }
        status
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Curl {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Appends what `from` gives to `to` until it ends.
fn collect(mut from: impl Read + Send + 'static, to: &Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    let to = Arc::clone(to);
    std::thread::spawn(move || {
        let mut piece = [0u8; 4096];
        while let Ok(n) = from.read(&mut piece) {
            if n == 0 {
                break;
            }
            to.lock()
                .expect("curl's output")
                .extend_from_slice(&piece[..n]);
        }
    })
}

/// The HTTP version curl speaks to the proxy (over TLS, chosen by ALPN).
#[derive(Clone, Copy, Debug)]
enum Http {
    V1_1,
    V2,
}

impl Http {
    fn flag(self) -> &'static str {
        match self {
            Http::V1_1 => "--http1.1",
            Http::V2 => "--http2",
        }
    }

    /// The status line as `curl --verbose` shows it.
    fn status_line(self) -> &'static str {
        match self {
            Http::V1_1 => "< HTTP/1.1 200",
            Http::V2 => "< HTTP/2 200",
        }
    }

    /// `%{http_version}`.
    fn write_out(self) -> &'static str {
        match self {
            Http::V1_1 => "http_version=1.1\n",
            Http::V2 => "http_version=2\n",
        }
    }

    /// nginx's `$server_protocol`.
    fn nginx_protocol(self) -> &'static str {
        match self {
            Http::V1_1 => "protocol=HTTP/1.1",
            Http::V2 => "protocol=HTTP/2.0",
        }
    }
}

/// Whether curl (this version's HTTP/2 included) is there to drive the
/// proxies; prints why not.
fn curl_with_http2() -> bool {
    if !installed("curl") {
        return false;
    }
    let output = Command::new("curl").arg("--version").output();
    let http2 = output.is_ok_and(|output| {
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .any(|line| line.starts_with("Features:") && line.contains("HTTP2"))
    });
    if !http2 {
        eprintln!("skipping: this curl has no HTTP/2");
    }
    http2
}

/// The data of the events in `bytes`.
fn data_of(bytes: &[u8]) -> Vec<String> {
    parse_all(bytes)
        .into_iter()
        .map(|event| event.data)
        .collect()
}

/// Through `proxy`, at `path`, over `http`: the response head comes at
/// once, with the stream's content type; each event arrives before the
/// next is published; the stream ends cleanly when the server shuts down.
fn check_one_by_one(proxy: &Proxy, http: Http, hub: &Hub, server: Server, path: &str) {
    let url = format!("{}{path}", proxy.origin());
    let mut curl = Curl::stream(proxy, http, &url);
    assert!(
        wait_until(WAIT, || hub.stats().streams == 1),
        "the stream did not reach our server through {:?}: {}\nproxy log: {}",
        proxy.kind(),
        curl.stderr(),
        proxy.error_log()
    );
    // The head, and the stream's first bytes (its `retry:`), came through
    // before any event.
    assert!(
        wait_until(WAIT, || curl.stderr().contains(http.status_line())
            && curl.stdout() == RETRY.as_bytes()),
        "no {:?} and {RETRY:?} through {:?}: {:?}\ncurl: {}",
        http.status_line(),
        proxy.kind(),
        String::from_utf8_lossy(&curl.stdout()),
        curl.stderr()
    );
    assert!(
        curl.stderr()
            .to_ascii_lowercase()
            .contains("< content-type: text/event-stream"),
        "{}",
        curl.stderr()
    );

    let mut sent = Vec::new();
    for n in 0..5 {
        let data = format!("event {n}");
        hub.notify(data.clone()).expect("notify");
        sent.push(data);
        // The event comes through alone, before the next one is published:
        // nothing holds it back to fill a buffer.
        assert!(
            wait_until(WAIT, || data_of(&curl.stdout()) == sent),
            "event {n} did not come through {:?} by itself: {:?}\ncurl: {}",
            proxy.kind(),
            String::from_utf8_lossy(&curl.stdout()),
            curl.stderr()
        );
    }
    assert!(curl.running(), "curl still reads the stream");

    // The server ends the stream (its final chunk): the proxy ends the
    // client's stream cleanly and curl exits with success.
    server.shutdown().expect("shut down");
    let status = curl
        .wait_exit(WAIT)
        .expect("curl exits once the stream ends");
    assert!(
        status.success(),
        "curl: {status}: {}\nproxy log: {}",
        curl.stderr(),
        proxy.error_log()
    );
    assert!(
        curl.stderr().contains(http.write_out()),
        "curl's --write-out: {}",
        curl.stderr()
    );
    let mut want = RETRY.to_owned();
    want.extend(sent.iter().map(|data| format!("data: {data}\n\n")));
    assert_eq!(String::from_utf8_lossy(&curl.stdout()), want);
    if proxy.kind() == Kind::Nginx {
        // nginx writes the line once it has finished the request, which may
        // come a moment after curl has read the end of the stream.
        let line = format!("{} status=200 uri={path}", http.nginx_protocol());
        assert!(
            wait_until(WAIT, || proxy.access_log().contains(&line)),
            "nginx's access log: {}",
            proxy.access_log()
        );
    }
}

/// Our server, and nginx in front of it with `location(server)`.
fn nginx_in_front(
    keep_alive: Option<Duration>,
    location: fn(&Server) -> String,
) -> Option<(Hub, Server, Proxy)> {
    let hub = hub(keep_alive);
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    if !curl_with_http2() {
        return None;
    }
    let nginx = Proxy::nginx(&location(&server))?;
    Some((hub, server, nginx))
}

#[test]
fn events_pass_nginx_one_by_one_over_http2() {
    support::init_logging();
    let Some((hub, server, nginx)) = nginx_in_front(None, readme_location) else {
        return;
    };
    eprintln!(
        "{} with `{}`",
        nginx.version(),
        nginx.listen_lines().replace('\n', " ")
    );
    check_one_by_one(&nginx, Http::V2, &hub, server, "/events");
}

#[test]
fn events_pass_nginx_one_by_one_over_http1_1() {
    support::init_logging();
    let Some((hub, server, nginx)) = nginx_in_front(None, readme_location) else {
        return;
    };
    check_one_by_one(&nginx, Http::V1_1, &hub, server, "/events");
}

/// Without `proxy_buffering off`, nginx buffers the upstream's answer
/// unless the answer says `X-Accel-Buffering: no`, as ours does. Over
/// HTTP/1.1 nginx 1.22 would hold small events back (see the ignored test
/// below); over HTTP/2 it happens to pass them on in any case.
#[test]
fn x_accel_buffering_alone_stops_nginx_buffering_over_http1_1() {
    support::init_logging();
    let Some((hub, server, nginx)) = nginx_in_front(None, header_only_location) else {
        return;
    };
    assert!(
        !nginx.config().contains("proxy_buffering"),
        "this location leaves proxy_buffering at nginx's default (on)"
    );
    check_one_by_one(&nginx, Http::V1_1, &hub, server, "/header-only/events");
}

#[test]
fn x_accel_buffering_alone_stops_nginx_buffering_over_http2() {
    support::init_logging();
    let Some((hub, server, nginx)) = nginx_in_front(None, header_only_location) else {
        return;
    };
    check_one_by_one(&nginx, Http::V2, &hub, server, "/header-only/events");
}

/// The control for the test above, to show it has teeth (ignored: it waits
/// for something that must not happen): the same location, but nginx told
/// to ignore `X-Accel-Buffering`, holds an event back.
#[test]
#[ignore = "a control that waits out a timeout; run it by hand"]
fn without_x_accel_buffering_nginx_holds_events_over_http1_1() {
    support::init_logging();
    let ignoring = |server: &Server| {
        header_only_location(server).replace(
            "proxy_read_timeout",
            "proxy_ignore_headers X-Accel-Buffering;\n            proxy_read_timeout",
        )
    };
    let Some((hub, server, nginx)) = nginx_in_front(None, ignoring) else {
        return;
    };
    let url = format!("{}/header-only/events", nginx.origin());
    let curl = Curl::stream(&nginx, Http::V1_1, &url);
    assert!(wait_until(WAIT, || hub.stats().streams == 1));
    hub.notify("held").expect("notify");
    assert!(
        !wait_until(Duration::from_secs(2), || !data_of(&curl.stdout())
            .is_empty()),
        "nginx passed the event on without being told not to buffer"
    );
    drop(server);
}

#[test]
fn keep_alive_holds_the_stream_past_nginx_read_timeout() {
    support::init_logging();
    let Some((hub, server, nginx)) = nginx_in_front(Some(KEEP_ALIVE), readme_location) else {
        return;
    };
    let mut curl = Curl::stream(&nginx, Http::V2, &format!("{}/events", nginx.origin()));
    assert!(
        wait_until(WAIT, || hub.stats().streams == 1),
        "the stream did not reach our server: {}",
        curl.stderr()
    );
    // The stream's first bytes came through: it is registered with the hub
    // (a stream counts in `streams` a moment before it is).
    assert!(
        wait_until(WAIT, || curl.stdout().starts_with(RETRY.as_bytes())),
        "{:?}\ncurl: {}",
        String::from_utf8_lossy(&curl.stdout()),
        curl.stderr()
    );
    let first = client_ids(&hub);

    // No event, only keep-alives (a `:` line after each second of silence),
    // for three times nginx's read timeout.
    let keep_alives = |curl: &Curl| {
        String::from_utf8_lossy(&curl.stdout())
            .lines()
            .filter(|line| *line == ":")
            .count()
    };
    let silence = KEEP_ALIVE * SILENT_KEEP_ALIVES as u32 + WAIT;
    assert!(
        wait_until(silence, || keep_alives(&curl) >= SILENT_KEEP_ALIVES
            || !curl.running()),
        "{} keep-alives in {silence:?}: {:?}",
        keep_alives(&curl),
        String::from_utf8_lossy(&curl.stdout())
    );
    assert!(
        curl.running(),
        "nginx ended the stream: {}\nnginx: {}",
        curl.stderr(),
        nginx.error_log()
    );
    assert!(
        parse_all(&curl.stdout()).is_empty(),
        "keep-alives are no events"
    );

    // The same stream, through the same nginx request, still carries
    // events: our server still has the client it had.
    assert_eq!(client_ids(&hub), first, "the same upstream client");
    hub.notify("after the silence").expect("notify");
    assert!(
        wait_until(WAIT, || data_of(&curl.stdout()) == ["after the silence"]),
        "the event after the silence: {:?}\ncurl: {}",
        String::from_utf8_lossy(&curl.stdout()),
        curl.stderr()
    );
    assert!(curl.running());
    assert!(
        !nginx.error_log().contains("upstream timed out"),
        "{}",
        nginx.error_log()
    );
    drop(server);
}

/// The control for the test above: the same nginx, and a hub without
/// keep-alive, whose silent stream nginx ends at its read timeout.
#[test]
fn without_keep_alive_nginx_ends_a_silent_stream_at_its_read_timeout() {
    support::init_logging();
    let Some((hub, server, nginx)) = nginx_in_front(None, readme_location) else {
        return;
    };
    let mut curl = Curl::stream(&nginx, Http::V2, &format!("{}/events", nginx.origin()));
    assert!(
        wait_until(WAIT, || hub.stats().streams == 1),
        "the stream did not reach our server: {}",
        curl.stderr()
    );
    // The stream's first bytes came through: it is registered with the hub
    // (a stream counts in `streams` a moment before it is).
    assert!(
        wait_until(WAIT, || curl.stdout().starts_with(RETRY.as_bytes())),
        "{:?}\ncurl: {}",
        String::from_utf8_lossy(&curl.stdout()),
        curl.stderr()
    );
    hub.notify("before the silence").expect("notify");
    assert!(
        wait_until(WAIT, || data_of(&curl.stdout()) == ["before the silence"]),
        "{:?}",
        String::from_utf8_lossy(&curl.stdout())
    );
    // Silence: nginx gives up on the upstream after its read timeout and
    // cuts the client's stream short (curl fails), and our server sees the
    // upstream connection close.
    let status = curl
        .wait_exit(Duration::from_secs(READ_TIMEOUT_SECS) + WAIT)
        .expect("nginx ends the silent stream");
    assert!(
        !status.success(),
        "a stream cut by a timeout is no clean end: {status}"
    );
    assert!(
        wait_until(WAIT, || nginx.error_log().contains("upstream timed out")),
        "nginx's log: {}",
        nginx.error_log()
    );
    assert!(
        wait_until(WAIT, || hub.stats().streams == 0),
        "our server saw nginx close the upstream connection"
    );
    drop(server);
}

#[test]
fn ten_streams_to_one_origin_share_one_http2_connection() {
    support::init_logging();
    const STREAMS: usize = 10;
    let Some((hub, server, nginx)) = nginx_in_front(None, readme_location) else {
        return;
    };
    // One curl, ten transfers at once to one origin. Without
    // `--parallel-immediate`, curl waits for the first connection to say
    // whether it multiplexes, and then puts every transfer on it.
    let outputs: Vec<PathBuf> = (0..STREAMS)
        .map(|n| nginx.scratch_file(&format!("stream-{n}.out")))
        .collect();
    let mut args = vec![
        "--parallel".to_owned(),
        "--parallel-max".to_owned(),
        STREAMS.to_string(),
    ];
    for (n, output) in outputs.iter().enumerate() {
        args.push("--output".to_owned());
        args.push(output.display().to_string());
        args.push(format!("{}/events?stream={n}", nginx.origin()));
    }
    let mut curl = Curl::start(&nginx, Http::V2, &args);
    assert!(
        wait_until(WAIT, || hub.stats().streams == STREAMS),
        "{} of {STREAMS} streams reached our server: {}",
        hub.stats().streams,
        curl.stderr()
    );
    // Each stream's first bytes came through: all ten are registered with
    // the hub (a stream counts in `streams` a moment before it is).
    let read_bytes = |output: &PathBuf| std::fs::read(output).unwrap_or_default();
    assert!(
        wait_until(WAIT, || outputs
            .iter()
            .all(|output| read_bytes(output).starts_with(RETRY.as_bytes()))),
        "{:?}\ncurl: {}",
        outputs.iter().map(read_bytes).collect::<Vec<_>>(),
        curl.stderr()
    );
    assert_eq!(hub.stats().clients, STREAMS);
    // All ten are open on one TCP connection to nginx.
    assert_eq!(
        established_to(nginx.port()),
        1,
        "TCP connections nginx holds from the client"
    );

    let read = |output: &PathBuf| data_of(&read_bytes(output));
    let mut sent = Vec::new();
    for n in 0..3 {
        let data = format!("to all {n}");
        hub.notify(data.clone()).expect("notify");
        sent.push(data);
        assert!(
            wait_until(WAIT, || outputs.iter().all(|output| read(output) == sent)),
            "event {n} did not reach every stream: {:?}",
            outputs.iter().map(read).collect::<Vec<_>>()
        );
    }

    // The server ends the streams; curl's ten transfers complete and nginx
    // logs each request with the connection it came on.
    server.shutdown().expect("shut down");
    let status = curl
        .wait_exit(WAIT)
        .expect("curl exits once the streams end");
    assert!(status.success(), "curl: {status}: {}", curl.stderr());
    let mut lines = Vec::new();
    assert!(
        wait_until(WAIT, || {
            lines = nginx.access_log().lines().map(str::to_owned).collect();
            lines.len() == STREAMS
        }),
        "nginx's access log: {lines:#?}"
    );
    let connections: std::collections::BTreeSet<&str> = lines
        .iter()
        .map(|line| line.split_whitespace().next().unwrap_or_default())
        .collect();
    assert_eq!(
        connections.len(),
        1,
        "one TCP connection for all ten: {lines:#?}"
    );
    for line in &lines {
        assert!(
            line.contains(" protocol=HTTP/2.0 status=200 uri=/events?stream="),
            "{line}"
        );
    }
    let mut want = RETRY.to_owned();
    want.extend(sent.iter().map(|data| format!("data: {data}\n\n")));
    for output in &outputs {
        let got = String::from_utf8_lossy(&read_bytes(output)).into_owned();
        assert_eq!(got, want, "{}", output.display());
    }
}

#[test]
fn events_pass_caddy_one_by_one_over_http2() {
    support::init_logging();
    let hub = hub(None);
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    if !curl_with_http2() {
        return;
    }
    let site = format!(
        "    reverse_proxy {} {{
        flush_interval -1
    }}",
        server.local_addr()
    );
    let Some(caddy) = Proxy::caddy(&site) else {
        return;
    };
    eprintln!("caddy {}", caddy.version());
    check_one_by_one(&caddy, Http::V2, &hub, server, "/events");
}
