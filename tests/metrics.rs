//! The hub's metrics: `Hub::metrics` and the server's opt-in metrics path
//! (`ServerBuilder::metrics`), scraped over HTTP. Prometheus's own checker
//! (`promtool check metrics`, Debian's `prometheus` package) accepts the
//! text, and the numbers move exactly as clients come, read and go. With
//! the `prometheus-client` feature, a registry the hub's metrics are
//! registered in shows the same values.

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sse_server::{ClientId, Decision, Hub, METRICS_CONTENT_TYPE, Server};
use support::client::{Client, End, read_events};
use support::hubs::plain_hub;
use support::init_logging;
use support::raw::reset_on_close;
use support::wait::wait_until;

const WAIT: Duration = Duration::from_secs(10);

/// One scrape: each series (name and labels, as written) and its value.
#[derive(Clone, Debug, Default, PartialEq)]
struct Scrape(BTreeMap<String, f64>);

impl Scrape {
    /// Parses the Prometheus text format's sample lines (no timestamps).
    fn parse(text: &str) -> Scrape {
        let mut series = BTreeMap::new();
        for line in text.lines() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("a sample line: {line:?}"));
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("a number: {line:?}"));
            let previous = series.insert(name.to_owned(), value);
            assert!(previous.is_none(), "{name} twice in\n{text}");
        }
        Scrape(series)
    }

    /// The value of `series` (`name` or `name{label="value"}`), which must
    /// be there, as a whole number.
    fn get(&self, series: &str) -> u64 {
        let value = *self
            .0
            .get(series)
            .unwrap_or_else(|| panic!("{series} in {:#?}", self.0));
        assert!(
            value >= 0.0 && value.fract() == 0.0,
            "{series} = {value}: a whole number"
        );
        value as u64
    }

    fn rejected(&self, reason: &str) -> u64 {
        self.get(&format!(
            "sse_streams_rejected_total{{reason=\"{reason}\"}}"
        ))
    }

    fn disconnects(&self, reason: &str) -> u64 {
        self.get(&format!("sse_disconnects_total{{reason=\"{reason}\"}}"))
    }
}

/// `GET /metrics` over a connection of its own; checks the answer's
/// status and type and returns its body.
fn scrape_text(addr: std::net::SocketAddr) -> String {
    let mut client = Client::request(addr, "GET", "/metrics", "1.1", &[], b"").expect("scrape");
    assert_eq!(client.status, 200);
    assert_eq!(client.header("Content-Type"), Some(METRICS_CONTENT_TYPE));
    let body = client.read_to_end(WAIT);
    String::from_utf8(body).expect("UTF-8 metrics")
}

fn scrape(addr: std::net::SocketAddr) -> Scrape {
    Scrape::parse(&scrape_text(addr))
}

/// Scrapes until `done` holds (at most `WAIT`) and returns that scrape;
/// panics with the last one otherwise.
fn scrape_until(
    addr: std::net::SocketAddr,
    what: &str,
    mut done: impl FnMut(&Scrape) -> bool,
) -> Scrape {
    let mut last = Scrape::default();
    let reached = wait_until(WAIT, || {
        last = scrape(addr);
        done(&last)
    });
    assert!(
        reached,
        "{what} within {WAIT:?}; last scrape: {:#?}",
        last.0
    );
    last
}

/// Has `promtool check metrics` read `text`, and checks that it found
/// nothing to say (it fails on a format error and on each lint: a counter
/// without `_total`, a name with a non-base unit, a family without help).
/// Without `promtool` on the PATH, says so and checks nothing.
fn promtool_check(text: &str) {
    let checker = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut checker = match checker {
        Ok(checker) => checker,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("skipping: promtool not installed (apt-get install prometheus)");
            return;
        }
        Err(e) => panic!("running promtool: {e}"),
    };
    checker
        .stdin
        .take()
        .expect("promtool's stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let output = checker.wait_with_output().expect("promtool's answer");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && said.trim().is_empty(),
        "promtool check metrics: {:?}\n{said}\nfor\n{text}",
        output.status
    );
}

/// What `registry` holds now, in the Prometheus text format.
#[cfg(feature = "prometheus-client")]
fn registered(registry: &sse_server::prometheus_client::registry::Registry) -> Scrape {
    let mut text = String::new();
    sse_server::prometheus_client::encoding::prometheus_text::encode(&mut text, registry)
        .expect("encode");
    Scrape::parse(&text)
}

/// Waits until each of the hub's `clients` has had `events` written to its
/// connection: a writer counts the events of a write after counting its
/// bytes, so from then on the counts stand still.
fn wait_written(hub: &Hub, clients: usize, events: u64) {
    let done = wait_until(WAIT, || {
        let stats = hub.clients();
        stats.len() == clients && stats.iter().all(|client| client.delivered == events)
    });
    assert!(
        done,
        "{events} events written to each of {clients} clients: {:?}",
        hub.clients()
    );
}

/// Every family the metrics promise, by the name its samples carry.
const FAMILIES: &[(&str, &str)] = &[
    ("sse_clients_connected", "gauge"),
    ("sse_streams_open", "gauge"),
    ("sse_streams_opened_total", "counter"),
    ("sse_streams_rejected_total", "counter"),
    ("sse_disconnects_total", "counter"),
    ("sse_events_published_total", "counter"),
    ("sse_events_pending", "gauge"),
    ("sse_deliveries_queued_total", "counter"),
    ("sse_deliveries_dropped_total", "counter"),
    ("sse_evictions_total", "counter"),
    ("sse_written_bytes_total", "counter"),
    ("sse_history_events", "gauge"),
    ("sse_history_bytes", "gauge"),
];

const REJECTIONS: &[&str] = &[
    "too_many_clients",
    "shutting_down",
    "no_thread",
    "hook",
    "id_in_use",
    "too_many_topics",
    "topic_too_long",
];

const DISCONNECTS: &[&str] = &["closed", "write_error", "timed_out", "evicted", "shutdown"];

#[test]
fn the_metrics_path_answers_get_and_head_and_refuses_other_methods() {
    init_logging();
    let hub = plain_hub().build().expect("build the hub");
    let fallback_calls = Arc::new(AtomicUsize::new(0));
    let calls = Arc::clone(&fallback_calls);
    let server = Server::builder(&hub)
        .metrics("/metrics")
        .fallback(move |request| {
            calls.fetch_add(1, Ordering::Relaxed);
            let _ = request.respond(sse_server::tiny_http::Response::from_string("fallback"));
        })
        .bind("127.0.0.1:0")
        .expect("bind");
    let addr = server.local_addr();

    let text = scrape_text(addr);
    for (name, kind) in FAMILIES {
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} in\n{text}"
        );
        assert!(text.contains(&format!("# TYPE {name} {kind}\n")), "{name}");
    }
    let scrape = Scrape::parse(&text);
    for reason in REJECTIONS {
        assert_eq!(scrape.rejected(reason), 0, "{reason}");
    }
    for reason in DISCONNECTS {
        assert_eq!(scrape.disconnects(reason), 0, "{reason}");
    }
    assert_eq!(
        scrape.0.len(),
        FAMILIES.len() - 2 + REJECTIONS.len() + DISCONNECTS.len(),
        "no other series: {:#?}",
        scrape.0
    );

    // A query string is the same path.
    let mut with_query =
        Client::request(addr, "GET", "/metrics?x=1", "1.1", &[], b"").expect("GET ?x=1");
    assert_eq!(with_query.status, 200);
    assert!(!with_query.read_to_end(WAIT).is_empty());

    // HEAD: the same headers, no body.
    let mut head = Client::request(addr, "HEAD", "/metrics", "1.1", &[], b"").expect("HEAD");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("Content-Type"), Some(METRICS_CONTENT_TYPE));
    let length = head.header("Content-Length").map(str::parse::<usize>);
    assert!(matches!(length, Some(Ok(1..))), "{:?}", head.headers);
    assert!(head.read_to_end(WAIT).is_empty());

    for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
        let mut other = Client::request(addr, method, "/metrics", "1.1", &[], b"").expect(method);
        assert_eq!(other.status, 405, "{method}");
        assert_eq!(other.header("Allow"), Some("GET, HEAD"), "{method}");
        other.read_to_end(WAIT);
    }
    assert_eq!(
        fallback_calls.load(Ordering::Relaxed),
        0,
        "the metrics path never reaches the fallback"
    );

    // Other paths still do.
    let mut other = Client::request(addr, "GET", "/other", "1.1", &[], b"").expect("GET /other");
    assert_eq!(other.read_to_end(WAIT), b"fallback");
    assert_eq!(fallback_calls.load(Ordering::Relaxed), 1);
    server.shutdown().expect("shutdown");
}

#[test]
fn the_metrics_path_is_off_by_default() {
    init_logging();
    let hub = plain_hub().build().expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let mut client = Client::request(server.local_addr(), "GET", "/metrics", "1.1", &[], b"")
        .expect("GET /metrics");
    assert_eq!(client.status, 404);
    client.read_to_end(WAIT);
    server.shutdown().expect("shutdown");
}

#[test]
fn promtool_accepts_the_metrics() {
    init_logging();
    let hub = Hub::builder().retry(None).build().expect("build the hub");
    let server = Server::builder(&hub)
        .metrics("/metrics")
        .bind("127.0.0.1:0")
        .expect("bind");
    let addr = server.local_addr();
    // A stream and an event: no family is empty (the reasons are there at
    // 0 from the start).
    let mut client = Client::connect(addr, "/events", "1.1", &[]).expect("connect");
    hub.notify("one").expect("notify");
    read_events(&mut client, 1, WAIT);
    promtool_check(&scrape_text(addr));
    server.shutdown().expect("shutdown");
}

#[test]
fn the_numbers_move_as_clients_come_read_and_go() {
    init_logging();
    const CLIENTS: u64 = 3;
    const EVENTS: u64 = 5;
    // The history keeps every event (and gives each an id); no keep-alive
    // or `retry:` adds bytes the test does not expect.
    let hub = Hub::builder()
        .retry(None)
        .keep_alive(None)
        .max_clients(CLIENTS as usize)
        .build()
        .expect("build the hub");
    let server = Server::builder(&hub)
        .metrics("/metrics")
        .bind("127.0.0.1:0")
        .expect("bind");
    let addr = server.local_addr();
    let before = scrape(addr);
    assert_eq!(before.get("sse_clients_connected"), 0);
    assert_eq!(before.get("sse_streams_open"), 0);
    assert_eq!(before.get("sse_history_events"), 0);
    assert_eq!(before.get("sse_history_bytes"), 0);

    // N streams.
    let mut clients: Vec<Client> = (0..CLIENTS)
        .map(|i| {
            let client = Client::connect(addr, "/events", "1.1", &[]).expect("connect");
            assert_eq!(client.status, 200, "client {i}");
            client
        })
        .collect();
    let connected = scrape_until(addr, "every client connected", |scrape| {
        scrape.get("sse_clients_connected") == CLIENTS
    });
    assert_eq!(connected.get("sse_streams_open"), CLIENTS);
    // Counted before the head is written, so before `connect` returned.
    assert_eq!(
        connected.get("sse_streams_opened_total"),
        before.get("sse_streams_opened_total") + CLIENTS
    );

    // M events, read by every client.
    for i in 0..EVENTS {
        hub.notify(format!("event {i}")).expect("notify");
    }
    for client in &mut clients {
        let events = read_events(client, EVENTS as usize, WAIT);
        assert_eq!(events.last().map(|e| e.data.as_str()), Some("event 4"));
    }
    wait_written(&hub, CLIENTS as usize, EVENTS);
    // The hub thread counts a frame's deliveries once it has offered it to
    // every client, which may be after a client read it.
    let delivered = scrape_until(addr, "every delivery counted", |scrape| {
        scrape.get("sse_deliveries_queued_total")
            >= before.get("sse_deliveries_queued_total") + EVENTS * CLIENTS
    });
    assert_eq!(
        delivered.get("sse_deliveries_queued_total"),
        before.get("sse_deliveries_queued_total") + EVENTS * CLIENTS
    );
    assert_eq!(
        delivered.get("sse_events_published_total"),
        before.get("sse_events_published_total") + EVENTS
    );
    assert_eq!(delivered.get("sse_deliveries_dropped_total"), 0);
    assert_eq!(delivered.get("sse_events_pending"), 0);
    // The history holds every event, as each client received it.
    assert_eq!(delivered.get("sse_history_events"), EVENTS);
    for client in &clients {
        assert_eq!(
            delivered.get("sse_history_bytes"),
            client.body().len() as u64,
            "the history's bytes are the events a client read"
        );
    }
    // What the clients read went through the writers' counted writes (the
    // heads and chunk framing come on top).
    let read: u64 = clients.iter().map(|c| c.body().len() as u64).sum();
    assert!(
        delivered.get("sse_written_bytes_total") >= before.get("sse_written_bytes_total") + read,
        "written {} < read {read}",
        delivered.get("sse_written_bytes_total")
    );

    // One more, past max_clients: turned away, counted before the answer.
    let mut refused = Client::connect(addr, "/events", "1.1", &[]).expect("connect");
    assert_eq!(refused.wait_end(WAIT), Some(End::Complete));
    let after_refusal = scrape(addr);
    assert_eq!(
        after_refusal.rejected("too_many_clients"),
        before.rejected("too_many_clients") + 1
    );
    assert_eq!(after_refusal.get("sse_streams_opened_total"), CLIENTS);
    assert_eq!(after_refusal.get("sse_clients_connected"), CLIENTS);

    // A client closes: one disconnect, `closed`, and the gauges go down.
    let leaving = clients.pop().expect("a client");
    reset_on_close(leaving.socket());
    drop(leaving);
    let left = scrape_until(addr, "the client that closed counted", |scrape| {
        scrape.disconnects("closed") == before.disconnects("closed") + 1
    });
    // Counted once the hub let go of the client.
    assert_eq!(left.get("sse_clients_connected"), CLIENTS - 1);
    let left = scrape_until(addr, "its stream closed", |scrape| {
        scrape.get("sse_streams_open") == CLIENTS - 1
    });
    for reason in DISCONNECTS.iter().filter(|&&reason| reason != "closed") {
        assert_eq!(left.disconnects(reason), 0, "{reason}");
    }
    assert_eq!(left.get("sse_evictions_total"), 0);

    // Shutdown ends the others; the counts stay readable.
    server.shutdown().expect("shutdown");
    let last = Scrape::parse(&hub.metrics());
    assert_eq!(last.get("sse_clients_connected"), 0);
    assert_eq!(last.disconnects("shutdown"), CLIENTS - 1);
    let ended: u64 = DISCONNECTS
        .iter()
        .map(|reason| last.disconnects(reason))
        .sum();
    assert_eq!(
        ended,
        last.get("sse_streams_opened_total"),
        "every stream opened ended once"
    );
    assert_eq!(last.get("sse_events_published_total"), EVENTS);
}

#[test]
fn each_rejection_is_counted_under_its_reason() {
    init_logging();
    let hub = plain_hub()
        .on_connect(|request| match request.query() {
            "deny" => Decision::reject(403),
            "as=7" => Decision::accept().id(ClientId::new(7)),
            _ => Decision::accept(),
        })
        .build()
        .expect("build the hub");
    let server = Server::builder(&hub)
        .metrics("/metrics")
        .bind("127.0.0.1:0")
        .expect("bind");
    let addr = server.local_addr();

    let mut denied = Client::connect(addr, "/events?deny", "1.1", &[]).expect("connect");
    assert_eq!(denied.status, 403);
    let _ = denied.wait_end(WAIT);
    let seven = Client::connect(addr, "/events?as=7", "1.1", &[]).expect("connect");
    assert_eq!(seven.status, 200);
    let mut second_seven = Client::connect(addr, "/events?as=7", "1.1", &[]).expect("connect");
    assert_eq!(second_seven.status, 409);
    let _ = second_seven.wait_end(WAIT);
    let topics: Vec<String> = (0..=sse_server::MAX_TOPICS)
        .map(|i| format!("topic={i}"))
        .collect();
    let path = format!("/events?{}", topics.join("&"));
    let mut too_many = Client::connect(addr, &path, "1.1", &[]).expect("connect");
    assert_eq!(too_many.status, 400);
    let _ = too_many.wait_end(WAIT);

    // Each was counted before its answer.
    let scrape = scrape(addr);
    for (reason, expected) in [
        ("hook", 1),
        ("id_in_use", 1),
        ("too_many_topics", 1),
        ("too_many_clients", 0),
        ("shutting_down", 0),
        ("no_thread", 0),
    ] {
        assert_eq!(scrape.rejected(reason), expected, "{reason}");
    }
    assert_eq!(hub.stats().rejected, 3, "Stats::rejected is their sum");
    assert_eq!(scrape.get("sse_streams_opened_total"), 1);
    drop(seven);
    server.shutdown().expect("shutdown");
}

#[cfg(feature = "prometheus-client")]
#[test]
fn a_prometheus_client_registry_shows_the_same_values() {
    use sse_server::prometheus_client::encoding::{prometheus_text, text};
    use sse_server::prometheus_client::registry::Registry;

    init_logging();
    let hub = Hub::builder()
        .retry(None)
        .keep_alive(None)
        .build()
        .expect("build the hub");
    let mut registry = Registry::default();
    hub.register_metrics(&mut registry);
    let server = Server::builder(&hub)
        .metrics("/metrics")
        .bind("127.0.0.1:0")
        .expect("bind");
    let addr = server.local_addr();
    let mut clients: Vec<Client> = (0..2)
        .map(|_| Client::connect(addr, "/events", "1.1", &[]).expect("connect"))
        .collect();
    for i in 0..3 {
        hub.notify(format!("event {i}")).expect("notify");
    }
    for client in &mut clients {
        read_events(client, 3, WAIT);
    }
    wait_written(&hub, 2, 3);
    let settled = scrape_until(addr, "every delivery counted", |scrape| {
        scrape.get("sse_deliveries_queued_total") == 6 && scrape.get("sse_clients_connected") == 2
    });

    // The registry's Prometheus text is the hub's own, byte for byte.
    let mut prometheus = String::new();
    prometheus_text::encode(&mut prometheus, &registry).expect("encode");
    assert_eq!(prometheus, hub.metrics());
    assert_eq!(Scrape::parse(&prometheus), settled);

    // Its OpenMetrics text: the same series, units declared, `# EOF`.
    let mut open_metrics = String::new();
    text::encode(&mut open_metrics, &registry).expect("encode");
    assert!(open_metrics.ends_with("# EOF\n"), "{open_metrics}");
    for unit in [
        "# UNIT sse_written_bytes bytes\n",
        "# UNIT sse_history_bytes bytes\n",
    ] {
        assert!(open_metrics.contains(unit), "{unit:?} in\n{open_metrics}");
    }
    assert!(open_metrics.contains("# TYPE sse_streams_opened counter\n"));
    assert_eq!(Scrape::parse(&open_metrics), settled);

    drop(clients);
    server.shutdown().expect("shutdown");
}

#[cfg(feature = "prometheus-client")]
#[test]
fn a_registry_does_not_keep_the_hub_alive_and_keeps_its_last_counts() {
    use sse_server::prometheus_client::registry::Registry;

    init_logging();
    let hub = plain_hub().build().expect("build the hub");
    let mut registry = Registry::with_prefix("app");
    hub.register_metrics(&mut registry);
    let subscription = hub.subscribe().expect("subscribe");
    hub.notify("one").expect("notify");
    // Dropping the only handle shuts the hub down, which ends the
    // subscription: the registry holds no handle.
    drop(hub);
    let mut received = 0;
    loop {
        match subscription.recv_timeout(WAIT) {
            Ok(Some(_)) => received += 1,
            Ok(None) => panic!("the hub still runs {WAIT:?} after its last handle was dropped"),
            Err(_) => break,
        }
    }
    assert_eq!(received, 1);
    drop(subscription);

    let last = registered(&registry);
    assert_eq!(last.get("app_sse_events_published_total"), 1);
    assert_eq!(last.get("app_sse_clients_connected"), 0);
}

#[cfg(feature = "redis")]
#[test]
fn a_hub_on_redis_tells_whether_its_link_is_up() {
    use support::redis::RedisServer;

    init_logging();
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let hub = Hub::builder()
        .redis(&redis.url(), "metrics")
        .redis_timeout(Duration::from_secs(5))
        .build()
        .expect("build a hub on Redis");
    #[cfg(feature = "prometheus-client")]
    let mut registry = sse_server::prometheus_client::registry::Registry::default();
    #[cfg(feature = "prometheus-client")]
    hub.register_metrics(&mut registry);
    let connected = |hub: &Hub| Scrape::parse(&hub.metrics()).get("sse_redis_connected");
    assert!(
        wait_until(WAIT, || connected(&hub) == 1),
        "the link comes up: {}",
        hub.metrics()
    );
    promtool_check(&hub.metrics());
    #[cfg(feature = "prometheus-client")]
    assert_eq!(registered(&registry).get("sse_redis_connected"), 1);
    redis.kill();
    assert!(
        wait_until(WAIT, || connected(&hub) == 0),
        "the link is seen down: {}",
        hub.metrics()
    );
    hub.shutdown().expect("shutdown");
    // The registry tells of a hub that is gone as down.
    #[cfg(feature = "prometheus-client")]
    {
        drop(hub);
        assert_eq!(registered(&registry).get("sse_redis_connected"), 0);
    }

    // A hub that shares no stream has no such series.
    let alone = plain_hub().build().expect("build the hub");
    assert!(!alone.metrics().contains("sse_redis_connected"));
}
