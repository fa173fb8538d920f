//! A clock in the browser: the server's time (UTC), pushed once a second.
//!
//! ```text
//! cargo run --example clock                       # http://127.0.0.1:8080/
//! cargo run --example clock -- --addr 0.0.0.0:9000
//! RUST_LOG=debug cargo run --example clock        # also the library's debug log
//!
//! # Two clocks sharing one stream through Redis, in two browser tabs:
//! cargo run --features redis --example clock -- --addr 127.0.0.1:8081 --redis redis://127.0.0.1:6379
//! cargo run --features redis --example clock -- --addr 127.0.0.1:8082 --redis redis://127.0.0.1:6379
//! ```
//!
//! `/` serves a small page whose `EventSource('/events')` shows each tick,
//! the connection's state (connecting, open, reconnecting, closed), the last
//! event id and how many events arrived, readable on a phone and a desktop,
//! with no other request; `/events` is the stream; `/metrics` the hub's
//! metrics, for Prometheus. A plain thread publishes one `tick` event a
//! second. Ctrl-C (or SIGTERM) stops the ticker, shuts the server down and
//! exits 0.
//!
//! With `--redis URL` (feature `redis`), the hub shares the Redis Stream
//! `sse-clock` (`--redis-key` to change it) with every other clock on that
//! Redis: each tick says which clock published it, and every tab, whichever
//! clock serves it, shows every clock's ticks, in the same order, each
//! once.
//!
//! The hub keeps its defaults. In particular each stream starts with a
//! `retry:` line of 3 to 5 seconds, drawn for each browser, so that after a
//! restart the browsers come back spread over two seconds rather than all
//! in the same instant. The ticks carry no `retry:` of their own: one would
//! replace every browser's drawn value with the same one.

use std::error::Error;
use std::process::ExitCode;
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sse_server::crossbeam_channel::{self, Receiver, RecvTimeoutError, Sender};
use sse_server::tiny_http::{Header, Method, Request, Response};
use sse_server::{Event, Hub, Server};

const DEFAULT_ADDR: &str = "127.0.0.1:8080";

const USAGE: &str = "\
Serves a clock page at / and its event stream at /events.

Usage: clock [--addr ADDR] [--redis URL [--redis-key KEY]]

Options:
  --addr ADDR       address to listen on (default 127.0.0.1:8080)
  --redis URL       share the stream with other clocks on this Redis server
                    (redis://host:port; needs the `redis` feature)
  --redis-key KEY   the Redis Stream's key (default sse-clock)
  -h, --help        print this help

The log level comes from RUST_LOG (default: info).
Stop with Ctrl-C or SIGTERM.";

/// The whole page: markup, style and script inline, no other request
/// (the empty data: icon keeps browsers from asking for /favicon.ico).
const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>sse-server clock</title>
<style>
  :root { color-scheme: light dark; --muted: #6b6b6b; --ok: #1a7f37;
          --wait: #9a6700; --bad: #c62828; --card: #ffffff; --bg: #f4f4f1; }
  @media (prefers-color-scheme: dark) {
    :root { --muted: #a0a0a0; --ok: #3fb950; --wait: #d29922; --bad: #f85149;
            --card: #1c1c1e; --bg: #111113; }
  }
  * { box-sizing: border-box; }
  body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif;
         margin: 0; min-height: 100vh; display: flex; align-items: center;
         justify-content: center; background: var(--bg); padding: 1rem; }
  main { background: var(--card); border-radius: 1rem; padding: 2rem 1.5rem;
         width: min(32rem, 100%); text-align: center;
         box-shadow: 0 1px 3px rgba(0,0,0,.12); }
  #time { font: 700 clamp(3rem, 16vw, 5.5rem)/1.05 ui-monospace, "SF Mono",
          Menlo, Consolas, monospace; letter-spacing: .04em;
          font-variant-numeric: tabular-nums; }
  #zone, #origin { color: var(--muted); }
  #origin { min-height: 1.3em; margin-top: .25rem; }
  #state { display: inline-block; margin: 1.25rem 0 1rem; padding: .3rem .8rem;
           border-radius: 999px; font-weight: 600; }
  #state::before { content: "\25CF  "; }
  .connecting { color: var(--wait); } .open { color: var(--ok); }
  .reconnecting, .closed { color: var(--bad); }
  dl { display: grid; grid-template-columns: auto auto; gap: .3rem 1rem;
       justify-content: center; margin: 0; font-size: .95rem; }
  dt { color: var(--muted); text-align: right; }
  dd { margin: 0; text-align: left; font-family: ui-monospace, monospace;
       overflow-wrap: anywhere; }
</style>
</head>
<body>
<main>
  <div id="time">--:--:--</div>
  <div id="zone">server time, UTC</div>
  <div id="origin"></div>
  <div id="state" class="connecting">connecting&hellip;</div>
  <dl>
    <dt>events received</dt><dd id="count">0</dd>
    <dt>last event id</dt><dd id="last-id">&ndash;</dd>
    <dt>connections opened</dt><dd id="opens">0</dd>
  </dl>
</main>
<script>
  // Everything the page shows is also on `window.clock`, for tests.
  const clock = window.clock = { state: "connecting", count: 0, lastId: "",
                                 opens: 0, ticks: [] };
  const $ = (id) => document.getElementById(id);
  function show(state, text) {
    clock.state = state;
    $("state").className = state;
    $("state").textContent = text;
  }
  const source = new EventSource("/events");
  source.onopen = () => {
    clock.opens += 1;
    $("opens").textContent = clock.opens;
    show("open", "open");
  };
  source.addEventListener("tick", (event) => {
    // "HH:MM:SS", or "HH:MM:SS <clock>" when clocks share a stream.
    const [hms, from] = event.data.split(" ");
    clock.count += 1;
    clock.lastId = event.lastEventId;
    clock.ticks.push(event.data);
    $("time").textContent = hms;
    $("origin").textContent = from ? "from the clock at " + from : "";
    $("count").textContent = clock.count;
    $("last-id").textContent = event.lastEventId || "\u2013";
  });
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) {
      show("closed", "closed (reload the page to try again)");
    } else {
      show("reconnecting", "reconnecting\u2026");
    }
  };
  // A browser may keep a page it navigated away from in its back/forward
  // cache with the stream still open, holding a connection (and a slot of
  // the server's) for nothing: close it, and start afresh if the page is
  // shown again.
  window.addEventListener("pagehide", () => source.close());
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) location.reload();
  });
</script>
</body>
</html>
"#;

/// What the command line sets.
#[derive(Debug)]
struct Options {
    addr: String,
    /// `--redis URL`: share the stream through this Redis server.
    redis: Option<String>,
    redis_key: String,
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("clock: {message} (--help for usage)");
            return ExitCode::from(2);
        }
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("clock: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The options, or `None` for `--help`.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Options>, String> {
    let mut options = Options {
        addr: DEFAULT_ADDR.to_string(),
        redis: None,
        redis_key: "sse-clock".to_string(),
    };
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => {
                (name.to_string(), Some(value.to_string()))
            }
            _ => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or(format!("{name} needs a value"))
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(None),
            "--addr" => options.addr = value()?,
            "--redis" => options.redis = Some(value()?),
            "--redis-key" => options.redis_key = value()?,
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    Ok(Some(options))
}

fn run(options: &Options) -> Result<(), Box<dyn Error>> {
    // The handler runs on a thread of ctrlc's; all it does is wake main.
    let (signal_tx, signal_rx) = crossbeam_channel::bounded(1);
    ctrlc::set_handler(move || {
        let _ = signal_tx.try_send(());
    })?;

    let clock = Clock::start(&options.addr, hub_for(options)?)?;
    println!(
        "clock: open http://{}/ in a browser (Ctrl-C to stop)",
        clock.server.local_addr()
    );

    let _ = signal_rx.recv();
    log::info!(
        "stopping ({} client(s) connected)",
        clock.server.hub().stats().clients
    );
    clock.stop()?;
    println!("clock: stopped");
    Ok(())
}

/// The server and the thread that publishes the ticks. (Public for
/// `tests/browser.rs`, which includes this file to run the clock in its own
/// process.)
pub struct Clock {
    /// Serves the page and the stream.
    pub server: Server,
    /// Dropping it tells the ticker to stop.
    stop_tx: Sender<()>,
    ticker: JoinHandle<()>,
}

impl Clock {
    /// Serves the page and the stream of `hub` on `addr` and starts
    /// ticking. A hub that shares a Redis Stream tags its ticks with this
    /// clock's address.
    pub fn start(addr: &str, (hub, shared): (Hub, bool)) -> Result<Clock, Box<dyn Error>> {
        let server = Server::builder(&hub)
            .metrics("/metrics")
            .fallback(route)
            .bind(addr)?;
        let origin = shared.then(|| server.local_addr().to_string());
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let ticker = thread::Builder::new()
            .name("ticker".into())
            .spawn(move || tick(&hub, origin.as_deref(), &stop_rx))?;
        Ok(Clock {
            server,
            stop_tx,
            ticker,
        })
    }

    /// Stops the ticker, then ends every stream and joins the server's
    /// threads.
    pub fn stop(self) -> Result<(), sse_server::Error> {
        drop(self.stop_tx);
        if self.ticker.join().is_err() {
            log::error!("the ticker thread panicked");
        }
        self.server.shutdown()
    }
}

/// The hub, with the defaults: replay history, keep-alives, and a jittered
/// `retry:` at the start of each stream; and, with `--redis`, the shared
/// stream (then `true`).
fn hub_for(options: &Options) -> Result<(Hub, bool), Box<dyn Error>> {
    match &options.redis {
        None => Ok((Hub::new()?, false)),
        #[cfg(feature = "redis")]
        Some(url) => Ok((Hub::builder().redis(url, &options.redis_key).build()?, true)),
        #[cfg(not(feature = "redis"))]
        Some(_) => Err(
            "--redis needs the `redis` feature (cargo run --features redis --example clock)".into(),
        ),
    }
}

/// Answers everything that is not `/events`: the page at `/`, 404 elsewhere.
/// It runs on the server's acceptor thread, so it only answers.
fn route(request: Request) {
    let path = request.url().split('?').next().unwrap_or_default();
    let response = match (request.method(), path) {
        (Method::Get | Method::Head, "/") => Response::from_string(PAGE)
            .with_header(header("Content-Type", "text/html; charset=utf-8")),
        (_, "/") => Response::from_string("method not allowed\n")
            .with_status_code(405)
            .with_header(header("Allow", "GET, HEAD")),
        _ => Response::from_string("not found\n").with_status_code(404),
    };
    if let Err(e) = request.respond(response) {
        log::debug!("answering a request failed: {e}");
    }
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name, value).expect("a valid header")
}

/// Publishes the time just after each whole second until `stop` disconnects
/// (or the hub shuts down); with `origin`, tagged with it.
fn tick(hub: &Hub, origin: Option<&str>, stop: &Receiver<()>) {
    loop {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let data = match origin {
            Some(origin) => format!("{} {origin}", utc_hms(now.as_secs())),
            None => utc_hms(now.as_secs()),
        };
        // With Redis the id is the stream's, whatever is set here.
        let event = Event::new(data)
            .with_event("tick")
            .and_then(|event| event.with_id(now.as_secs().to_string()))
            .expect("a plain name and a number are valid fields");
        match hub.publish(&event) {
            Ok(()) => {}
            Err(sse_server::Error::Closed) => return, // shut down
            // Redis out of reach: this tick is lost; the hub reconnects and
            // the next one goes out.
            Err(e) => log::warn!("tick not published: {e}"),
        }
        let to_next_second =
            Duration::from_secs(1) - Duration::from_nanos(now.subsec_nanos().into());
        match stop.recv_timeout(to_next_second) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// `HH:MM:SS` (UTC) of a Unix time in seconds.
fn utc_hms(unix_secs: u64) -> String {
    let of_day = unix_secs % 86_400;
    format!(
        "{:02}:{:02}:{:02}",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Instant;

    /// The stream starts with the hub's jittered `retry:` (3 to 5 s), and the
    /// ticks carry no `retry:` that would replace it.
    #[test]
    fn ticks_leave_the_jittered_retry_alone() {
        let hub = Hub::new().expect("build the hub");
        let clock = Clock::start("127.0.0.1:0", (hub, false)).expect("start the clock");
        let addr = clock.server.local_addr();
        let mut stream =
            TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        // HTTP/1.0: the body comes without chunk framing.
        let request = format!("GET /events HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .expect("send the request");

        // Read until a whole tick has arrived (one a second), at most 10 s.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut bytes = Vec::new();
        let mut piece = [0u8; 4096];
        let body = loop {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            if let Some((_, body)) = text.split_once("\r\n\r\n")
                && body
                    .find("event: tick\n")
                    .is_some_and(|at| body[at..].contains("\n\n"))
            {
                break body.to_owned();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no tick within 10 s; got {text:?}");
            stream
                .set_read_timeout(Some(left))
                .expect("set the read timeout");
            match stream.read(&mut piece) {
                Ok(0) => panic!("the stream ended; got {text:?}"),
                Ok(n) => bytes.extend_from_slice(&piece[..n]),
                Err(e) => panic!("reading the stream failed: {e}; got {text:?}"),
            }
        };

        let (first, rest) = body.split_once('\n').expect("a first line");
        let retry: u64 = first
            .strip_prefix("retry: ")
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("the stream starts with a retry line: {body:?}"));
        assert!(
            (3000..=5000).contains(&retry),
            "retry {retry} within 3000..=5000"
        );
        assert!(
            !rest.contains("retry:"),
            "a tick carries no retry: {body:?}"
        );
        let tick = &rest[rest.find("event: tick\n").expect("a tick")..];
        let lines: Vec<&str> = tick.lines().take(3).collect();
        assert_eq!(lines[0], "event: tick");
        assert!(
            lines[1]
                .strip_prefix("id: ")
                .is_some_and(|id| id.parse::<u64>().is_ok()),
            "{tick:?}"
        );
        assert!(
            lines[2]
                .strip_prefix("data: ")
                .is_some_and(|time| time.len() == 8),
            "{tick:?}"
        );

        clock.stop().expect("stop the clock");
    }
}
