//! The target the SSE fan-out bench (`shared/bench`) drives.
//!
//! ```text
//! cargo build --release --example bench_server
//! cd shared/bench
//! python3 run.py --cmd /path/to/target/release/examples/bench_server --name sse-server --scenario max
//! ```
//!
//! Endpoints, as the bench's contract asks:
//!
//! * `GET /events`: the event stream.
//! * `POST /publish?count=M&size=B&interval_us=I`: answers `202` at once, then
//!   a background thread publishes `M` events, event `k` at `t0 + k*I` µs,
//!   each with the data `"<seq> <send_unix_ns> "` padded with `x` to `B`
//!   bytes.
//! * `GET /stats`: `clients <n>` and the hub's other counters, one per line.
//!
//! Nothing is logged per event; the library's warnings go to stderr
//! (`RUST_LOG` sets the level, default `warn`). SIGTERM ends the process (the
//! default action).

use std::fmt::Write as _;
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sse_server::tiny_http::{Header, Method, Request, Response};
use sse_server::{Hub, HubBuilder, Server, SlowClient};

/// Everything the command line sets.
struct Config {
    addr: Option<String>,
    /// `--redis URL`, and the stream's key (`--redis-key`).
    redis: Option<String>,
    redis_key: String,
    /// `--redis-timeout-ms`: the hub's `redis_timeout`.
    redis_timeout: Option<Duration>,
    /// Starts as the library's defaults; each option changes one setting.
    hub: HubBuilder,
}

/// One command-line option: `--name VALUE` (or `--name=VALUE`).
struct Opt {
    name: &'static str,
    value: &'static str,
    help: &'static str,
    apply: fn(&mut Config, &str) -> Result<(), String>,
}

/// The options. To add one, add an entry: parsing and `--help` follow.
const OPTIONS: &[Opt] = &[
    Opt {
        name: "--addr",
        value: "ADDR",
        help: "address to listen on, e.g. 127.0.0.1:8080 (required)",
        apply: |config, value| {
            config.addr = Some(value.to_string());
            Ok(())
        },
    },
    Opt {
        name: "--client-buffer",
        value: "N",
        help: "frames each client's queue holds before it misses events",
        apply: |config, value| {
            let frames = number(value)?;
            config.hub = config.hub.clone().client_buffer(frames as usize);
            Ok(())
        },
    },
    Opt {
        name: "--keep-alive-ms",
        value: "MS",
        help: "keep-alive comment after MS of silence; 0 turns keep-alives off",
        apply: |config, value| {
            let interval = match number(value)? {
                0 => None,
                ms => Some(Duration::from_millis(ms)),
            };
            config.hub = config.hub.clone().keep_alive(interval);
            Ok(())
        },
    },
    Opt {
        name: "--write-timeout-ms",
        value: "MS",
        help: "cut off a client that takes no bytes for MS",
        apply: |config, value| {
            let timeout = Duration::from_millis(number(value)?);
            config.hub = config.hub.clone().write_timeout(timeout);
            Ok(())
        },
    },
    Opt {
        name: "--shutdown-timeout-ms",
        value: "MS",
        help: "how long a shutdown waits for streams to drain",
        apply: |config, value| {
            let timeout = Duration::from_millis(number(value)?);
            config.hub = config.hub.clone().shutdown_timeout(timeout);
            Ok(())
        },
    },
    Opt {
        name: "--close-check-ms",
        value: "MS",
        help: "longest pause between looks for clients that closed (0: off)",
        apply: |config, value| {
            let interval = match number(value)? {
                0 => None,
                ms => Some(Duration::from_millis(ms)),
            };
            config.hub = config.hub.clone().close_check(interval);
            Ok(())
        },
    },
    Opt {
        name: "--request-timeout-ms",
        value: "MS",
        help: "deadline for a request head or a kept-alive connection's next request (0: none)",
        apply: |config, value| {
            let timeout = match number(value)? {
                0 => None,
                ms => Some(Duration::from_millis(ms)),
            };
            config.hub = config.hub.clone().request_timeout(timeout);
            Ok(())
        },
    },
    Opt {
        name: "--max-clients",
        value: "N",
        help: "most streams at once; more get 503",
        apply: |config, value| {
            let clients = number(value)?;
            config.hub = config.hub.clone().max_clients(clients as usize);
            Ok(())
        },
    },
    Opt {
        name: "--slow-client",
        value: "drop|disconnect",
        help: "a client with a full queue misses events (drop) or is cut off",
        apply: |config, value| {
            let policy = match value {
                "drop" => SlowClient::DropNewest,
                "disconnect" => SlowClient::Disconnect,
                _ => return Err(format!("{value:?} is neither drop nor disconnect")),
            };
            config.hub = config.hub.clone().slow_client(policy);
            Ok(())
        },
    },
    Opt {
        name: "--redis",
        value: "URL",
        help: "share one stream with the other processes on this Redis server \
               (redis://host:port; needs the `redis` feature)",
        apply: |config, value| {
            config.redis = Some(value.to_owned());
            Ok(())
        },
    },
    Opt {
        name: "--redis-key",
        value: "KEY",
        help: "the Redis Stream's key (default sse-bench)",
        apply: |config, value| {
            config.redis_key = value.to_owned();
            Ok(())
        },
    },
    Opt {
        name: "--redis-timeout-ms",
        value: "MS",
        help: "how long one Redis command may take (default 1000)",
        apply: |config, value| {
            config.redis_timeout = Some(Duration::from_millis(number(value)?));
            Ok(())
        },
    },
    Opt {
        name: "--history",
        value: "N",
        help: "events kept for Last-Event-ID replay, within 64 MiB and 5 minutes \
               (0: no history and no automatic ids)",
        apply: |config, value| {
            let events = number(value)? as usize;
            let age = Some(Duration::from_secs(300));
            config.hub = config
                .hub
                .clone()
                .history_events(events)
                .history_bytes(64 << 20)
                .history_age(age);
            Ok(())
        },
    },
];

fn number(value: &str) -> Result<u64, String> {
    value
        .parse()
        .map_err(|_| format!("{value:?} is not a whole number"))
}

fn usage() -> String {
    let mut text = String::from(
        "The SSE fan-out bench's target, on sse-server.\n\n\
         Usage: bench_server --addr ADDR [OPTIONS]\n\n\
         Endpoints: GET /events, POST /publish?count=M&size=B&interval_us=I, GET /stats\n\n\
         Options:\n",
    );
    let width = OPTIONS
        .iter()
        .map(|opt| opt.name.len() + 1 + opt.value.len())
        .max()
        .unwrap_or(0);
    for opt in OPTIONS {
        let left = format!("{} {}", opt.name, opt.value);
        let _ = writeln!(text, "  {left:width$}  {}", opt.help);
    }
    let _ = writeln!(text, "  {:width$}  print this help", "-h, --help");
    let _ = write!(
        text,
        "\nUnset options keep the library's defaults:\n  {:?}\n\n\
         RUST_LOG sets the log level (default warn; nothing is logged per event).\n\
         SIGTERM or SIGINT ends the process.",
        Hub::builder()
    );
    text
}

/// The configuration, or `None` for `--help`.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Config>, String> {
    let mut config = Config {
        addr: None,
        redis: None,
        redis_key: "sse-bench".into(),
        redis_timeout: None,
        hub: Hub::builder(),
    };
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(None);
        }
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (arg.as_str(), None),
        };
        let opt = OPTIONS
            .iter()
            .find(|opt| opt.name == name)
            .ok_or_else(|| format!("unknown argument {arg:?}"))?;
        let value = match inline {
            Some(value) => value,
            None => args
                .next()
                .ok_or_else(|| format!("{} needs a value ({})", opt.name, opt.value))?,
        };
        (opt.apply)(&mut config, &value).map_err(|e| format!("{}: {e}", opt.name))?;
    }
    if config.addr.is_none() {
        return Err("--addr is required".into());
    }
    Ok(Some(config))
}

fn main() -> ExitCode {
    let config = match parse_args(std::env::args().skip(1)) {
        Ok(Some(config)) => config,
        Ok(None) => {
            println!("{}", usage());
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("bench_server: {message} (--help for usage)");
            return ExitCode::from(2);
        }
    };
    // The library logs only what an operator should see at `warn`; nothing
    // per event at any level.
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let addr = config.addr.expect("checked by parse_args");
    let builder = match &config.redis {
        None => config.hub,
        #[cfg(feature = "redis")]
        Some(url) => {
            let hub = config.hub.redis(url, &config.redis_key);
            match config.redis_timeout {
                Some(timeout) => hub.redis_timeout(timeout),
                None => hub,
            }
        }
        #[cfg(not(feature = "redis"))]
        Some(_) => {
            eprintln!(
                "bench_server: --redis needs the `redis` feature (cargo build --features redis)"
            );
            return ExitCode::from(2);
        }
    };
    let _ = (&config.redis_key, config.redis_timeout);
    let hub = match builder.build() {
        Ok(hub) => hub,
        Err(e) => {
            eprintln!("bench_server: {e}");
            return ExitCode::FAILURE;
        }
    };
    let routes = hub.clone();
    let server = match Server::builder(&hub)
        .metrics("/metrics")
        .fallback(move |request| route(&routes, request))
        .bind(&addr)
    {
        Ok(server) => server,
        Err(e) => {
            eprintln!("bench_server: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("bench_server: listening on {}", server.local_addr());
    // Serve until a signal ends the process.
    loop {
        thread::park();
    }
}

/// `/publish` and `/stats`; `/events` is the server's own.
fn route(hub: &Hub, request: Request) {
    let (path, query) = request.url().split_once('?').unwrap_or((request.url(), ""));
    let response = match (request.method(), path) {
        (Method::Post, "/publish") => match Publish::from_query(query) {
            Ok(publish) => {
                let hub = hub.clone();
                match thread::Builder::new()
                    .name("publisher".into())
                    .spawn(move || publish.run(&hub))
                {
                    Ok(_) => Response::from_string("publishing\n").with_status_code(202),
                    Err(e) => {
                        Response::from_string(format!("no thread: {e}\n")).with_status_code(503)
                    }
                }
            }
            Err(e) => Response::from_string(format!("{e}\n")).with_status_code(400),
        },
        (Method::Get, "/stats") => {
            let stats = hub.stats();
            let body = format!(
                "clients {}\nstreams {}\npublished {}\nqueued {}\ndropped {}\nevicted {}\n\
                 rejected {}\npending {}\npublish_failed {}\n",
                stats.clients,
                stats.streams,
                stats.published,
                stats.queued,
                stats.dropped,
                stats.evicted,
                stats.rejected,
                stats.pending,
                FAILED.load(std::sync::atomic::Ordering::Relaxed)
            );
            #[cfg(feature = "redis")]
            let body = match stats.redis_connected {
                Some(up) => format!("{body}redis_connected {}\n", u8::from(up)),
                None => body,
            };
            Response::from_string(body)
                .with_header(header("Content-Type", "text/plain; charset=utf-8"))
        }
        (_, "/publish" | "/stats") => {
            Response::from_string("method not allowed\n").with_status_code(405)
        }
        _ => Response::from_string("not found\n").with_status_code(404),
    };
    let _ = request.respond(response);
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name, value).expect("a valid header")
}

/// Events `/publish` could not publish (Redis out of reach).
static FAILED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// One `POST /publish`.
struct Publish {
    count: u64,
    size: usize,
    interval_ns: u64,
}

impl Publish {
    fn from_query(query: &str) -> Result<Publish, String> {
        let mut publish = Publish {
            count: 1,
            size: 0,
            interval_ns: 0,
        };
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = number(value).map_err(|e| format!("{key}: {e}"))?;
            match key {
                "count" => publish.count = value,
                "size" => publish.size = value as usize,
                "interval_us" => publish.interval_ns = value.saturating_mul(1000),
                _ => return Err(format!("unknown parameter {key:?}")),
            }
        }
        Ok(publish)
    }

    /// Event `seq` goes out at `t0 + seq * interval`; one that is late goes
    /// at once.
    fn run(self, hub: &Hub) {
        let mut data = String::with_capacity(self.size.max(64));
        let mut t0 = None;
        for seq in 0..self.count {
            let start = *t0.get_or_insert_with(Instant::now);
            let due = start + Duration::from_nanos(self.interval_ns.saturating_mul(seq));
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            }
            let send_ns = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos();
            data.clear();
            let _ = write!(data, "{seq} {send_ns} ");
            let pad = self.size.saturating_sub(data.len());
            data.extend(std::iter::repeat_n('x', pad));
            match hub.notify(&data) {
                Ok(()) => {}
                Err(sse_server::Error::Closed) => return, // shut down
                // Redis out of reach (feature `redis`): this event is
                // lost to every process; it is counted, and so seen.
                Err(e) => {
                    FAILED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    log::debug!("publish {seq}: {e}");
                }
            }
        }
    }
}
