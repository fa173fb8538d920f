//! The blocking `EventSource` client (feature `client`) against the crate's
//! own server, and against raw sockets where a server must misbehave, all on
//! 127.0.0.1.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use sse_server::client::{Error, EventSource};
use sse_server::parse::ParsedEvent;
use sse_server::tiny_http::Response;
use sse_server::{Decision, Hub, Server};
use support::relay::Relay;
use support::wait::{ms, wait_until};

const WAIT: Duration = Duration::from_secs(20);

/// A source that reconnects quickly, for tests.
fn quick(url: &str) -> sse_server::client::Builder {
    EventSource::builder(url)
        .retry(ms(50))
        .min_retry(ms(50))
        .max_backoff(ms(200))
        .read_timeout(Duration::from_secs(10))
}

/// Iterates `source` on a thread of its own, sending every item on.
fn follow(source: EventSource) -> mpsc::Receiver<Result<ParsedEvent, Error>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for item in source {
            if tx.send(item).is_err() {
                return;
            }
        }
    });
    rx
}

/// The next `n` events' data, skipping (and counting) non-fatal errors.
fn data_of(rx: &mpsc::Receiver<Result<ParsedEvent, Error>>, n: usize) -> (Vec<String>, usize) {
    let mut data = Vec::new();
    let mut errors = 0;
    let deadline = Instant::now() + WAIT;
    while data.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Ok(event)) => data.push(event.data),
            Ok(Err(e)) if !e.is_fatal() => errors += 1,
            Ok(Err(e)) => panic!("a fatal error after {} events: {e}", data.len()),
            Err(_) => panic!("only {} of {n} events within {WAIT:?}", data.len()),
        }
    }
    (data, errors)
}

/// The next item, which must be an event: its data and last event id.
fn next_event(source: &mut EventSource, what: &str) -> (String, String) {
    let event = source
        .next()
        .unwrap_or_else(|| panic!("{what}: no item"))
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    (event.data, event.last_event_id)
}

/// Asserts that the request head `head` carries `Last-Event-ID: id` (the
/// header's name in any case: HTTP's are case-insensitive).
fn assert_sends_last_event_id(head: &str, id: &str) {
    let head = head.to_ascii_lowercase();
    let line = format!("\r\nlast-event-id: {}\r\n", id.to_ascii_lowercase());
    assert!(head.contains(&line), "{head:?}");
}

fn numbers(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|n| n.to_string()).collect()
}

#[test]
fn a_long_stream_arrives_complete_and_in_order() {
    support::init_logging();
    let hub = Hub::builder()
        .client_buffer(4096)
        .build()
        .expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let url = format!("http://{}/events", server.local_addr());
    let rx = follow(quick(&url).build().expect("a source"));
    assert!(wait_until(WAIT, || hub.stats().clients == 1), "registered");
    for n in 0..2000 {
        hub.notify(n.to_string()).expect("notify");
    }
    let (data, errors) = data_of(&rx, 2000);
    assert_eq!(data, numbers(0..2000));
    assert_eq!(errors, 0);
    assert_eq!(hub.stats().dropped, 0);
    hub.shutdown().expect("shutdown");
}

#[test]
fn a_restarted_server_is_resumed_with_no_gap_and_no_duplicate() {
    support::init_logging();
    // Replay on (the default history); a short retry, so the client comes
    // back quickly.
    let hub = Hub::builder()
        .retry(Some(ms(50)))
        .retry_jitter(Duration::ZERO)
        .build()
        .expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let relay = Relay::start(server.local_addr());
    let url = format!("http://{}/events", relay.addr());
    let rx = follow(quick(&url).build().expect("a source"));
    assert!(wait_until(WAIT, || hub.stats().clients == 1), "registered");
    for n in 0..100 {
        hub.notify(n.to_string()).expect("notify");
    }
    let (first, _) = data_of(&rx, 100);
    assert_eq!(first, numbers(0..100));

    // The server goes away with the client's connection, and turns the
    // client away for a while; events keep being published meanwhile.
    relay.down();
    for n in 100..200 {
        hub.notify(n.to_string()).expect("notify");
    }
    relay.up();
    let (rest, _) = data_of(&rx, 100);
    assert_eq!(rest, numbers(100..200), "resumed with no gap, no duplicate");
    assert_eq!(relay.accepted(), 2, "one stream after the restart");
    for n in 200..210 {
        hub.notify(n.to_string()).expect("notify");
    }
    let (live, _) = data_of(&rx, 10);
    assert_eq!(live, numbers(200..210));
    hub.shutdown().expect("shutdown");
}

#[test]
fn a_204_stops_the_source() {
    support::init_logging();
    let hub = Hub::builder()
        .on_connect(|_| Decision::reject(204))
        .build()
        .expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let mut source = quick(&format!("http://{}/events", server.local_addr()))
        .build()
        .expect("a source");
    let first = source.next().expect("an item");
    assert!(matches!(first, Err(Error::NoContent)), "{first:?}");
    assert!(first.expect_err("an error").is_fatal());
    assert!(source.next().is_none(), "no reconnect after 204");
    hub.shutdown().expect("shutdown");
}

#[test]
fn a_500_or_an_html_page_stops_it_with_the_right_error() {
    support::init_logging();
    let hub = Hub::builder()
        .on_connect(|request| match request.header("Authorization") {
            Some("Bearer let-me-in") => Decision::accept(),
            Some(_) => Decision::reject(500),
            None => Decision::reject(401),
        })
        .build()
        .expect("build the hub");
    let server = Server::builder(&hub)
        .fallback(|request| {
            let page = Response::from_string("<h1>not a stream</h1>").with_header(
                "Content-Type: text/html; charset=utf-8"
                    .parse::<sse_server::tiny_http::Header>()
                    .expect("a header"),
            );
            let _ = request.respond(page);
        })
        .bind("127.0.0.1:0")
        .expect("bind");
    let base = format!("http://{}", server.local_addr());

    let mut source = quick(&format!("{base}/events"))
        .header("Authorization", "Bearer wrong")
        .build()
        .expect("a source");
    let first = source.next().expect("an item");
    assert!(matches!(first, Err(Error::Status(500))), "{first:?}");
    assert!(source.next().is_none());

    let mut source = quick(&format!("{base}/events")).build().expect("a source");
    let first = source.next().expect("an item");
    assert!(matches!(first, Err(Error::Status(401))), "{first:?}");

    let mut source = quick(&format!("{base}/page")).build().expect("a source");
    let first = source.next().expect("an item");
    match first {
        Err(Error::ContentType(Some(kind))) => assert_eq!(kind, "text/html; charset=utf-8"),
        other => panic!("{other:?}"),
    }
    assert!(source.next().is_none());

    // The right header gets the stream.
    let rx = follow(
        quick(&format!("{base}/events"))
            .header("Authorization", "Bearer let-me-in")
            .build()
            .expect("a source"),
    );
    assert!(wait_until(WAIT, || hub.stats().clients == 1), "registered");
    hub.notify("welcome").expect("notify");
    assert_eq!(data_of(&rx, 1).0, ["welcome"]);
    hub.shutdown().expect("shutdown");
}

/// The request head on `stream`, up to the blank line (without it).
fn read_head(stream: &TcpStream) -> String {
    let mut head = String::new();
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            return head;
        }
        head.push_str(&line);
    }
}

/// A server on 127.0.0.1 that gives the n-th request `answer(n)`: the
/// response's bytes, and whether to keep the connection open afterwards
/// (else it is closed). It sends the request heads it got on the receiver.
fn fake_server(
    answer: impl Fn(usize) -> (String, bool) + Send + 'static,
) -> (String, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("an address");
    let (heads_tx, heads_rx) = mpsc::channel();
    thread::spawn(move || {
        let mut held: Vec<TcpStream> = Vec::new();
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { return };
            let head = read_head(&stream);
            let (bytes, keep_open) = answer(n);
            let _ = stream.write_all(bytes.as_bytes());
            if keep_open {
                held.push(stream);
            }
            if heads_tx.send(head).is_err() {
                return;
            }
        }
    });
    (format!("http://{addr}/events"), heads_rx)
}

/// A server that answers the n-th request with a stream holding
/// `bodies[n]`, then closes it; a request past the last body gets a stream
/// that stays open with nothing in it. It sends the request heads it got on
/// the receiver.
fn scripted_server(bodies: &[&'static str]) -> (String, mpsc::Receiver<String>) {
    let bodies = bodies.to_vec();
    fake_server(move |n| {
        let body = bodies.get(n).copied().unwrap_or("");
        // No length: the body ends when the connection closes.
        let answer = format!("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n{body}");
        (answer, n >= bodies.len())
    })
}

/// A port on 127.0.0.1 with nothing listening on it.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("an address")
        .port()
}

/// A server that answers every request with a stream holding one event
/// (with an id), then says nothing more and keeps the connection open; it
/// sends the request heads it got on `heads`.
fn silent_server() -> (String, mpsc::Receiver<String>) {
    fake_server(|n| {
        // An event, then a block with only an id: it sets the last event id
        // too.
        let body = format!("id: {n}\ndata: hello {n}\n\nid: {n}-after\n\n");
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
             Content-Length: 1000000\r\n\r\n{body}"
        );
        (answer, true)
    })
}

#[test]
fn a_silent_server_is_noticed_within_the_read_timeout() {
    support::init_logging();
    let (url, heads) = silent_server();
    let timeout = ms(300);
    let mut source = quick(&url).read_timeout(timeout).build().expect("a source");
    let first = source.next().expect("an item").expect("an event");
    assert_eq!(first.data, "hello 0");
    let since = Instant::now();
    let second = source.next().expect("an item");
    let waited = since.elapsed();
    assert!(
        matches!(second, Err(Error::ReadTimeout(t)) if t == timeout),
        "{second:?}"
    );
    assert!(waited >= timeout, "noticed after {waited:?}");
    // It reconnects, sending the last event id the stream set.
    let again = source.next().expect("an item").expect("an event");
    assert_eq!(again.data, "hello 1");
    // (Header names in any case: HTTP's are case-insensitive.)
    let first_head = heads.recv_timeout(WAIT).expect("the first request");
    let first_head = first_head.to_ascii_lowercase();
    assert!(!first_head.contains("last-event-id"), "{first_head:?}");
    assert!(first_head.contains("\r\naccept: text/event-stream\r\n"));
    let second_head = heads.recv_timeout(WAIT).expect("the second request");
    assert_sends_last_event_id(&second_head, "0-after");
    assert_eq!(again.last_event_id, "1");
    assert_eq!(source.last_event_id(), "1-after");
}

#[test]
fn a_failed_first_connect_is_retried_or_not_as_asked() {
    support::init_logging();
    // A port with nothing listening on it.
    let addr = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("an address");
    let url = format!("http://{addr}/events");

    let mut once = quick(&url)
        .retry_first_connect(false)
        .build()
        .expect("a source");
    let first = once.next().expect("an item");
    assert!(matches!(first, Err(Error::FirstConnect(_))), "{first:?}");
    assert!(once.next().is_none());

    let mut source = quick(&url).build().expect("a source");
    for _ in 0..3 {
        let item = source.next().expect("an item");
        assert!(matches!(&item, Err(Error::Network(_))), "{item:?}");
        assert!(!item.expect_err("an error").is_fatal());
    }
    // The server comes up on that port; the source gets there by itself.
    let hub = Hub::new().expect("build the hub");
    let server = Server::bind(addr, &hub).expect("bind the same port");
    let rx = follow(source);
    assert!(wait_until(WAIT, || hub.stats().clients == 1), "registered");
    hub.notify("up").expect("notify");
    assert_eq!(data_of(&rx, 1).0, ["up"]);
    drop(server);
}

/// `examples/follow.rs`, built by `cargo test --features client` beside
/// this test's binary.
fn follow_example() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("this test's path");
    let debug = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    debug.join("examples").join("follow")
}

#[test]
fn the_follow_example_prints_events_and_exits_0_on_ctrl_c() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    support::init_logging();
    let hub = Hub::builder()
        .history_events(0)
        .build()
        .expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let mut child = Command::new(follow_example())
        .arg(format!("http://{}/events", server.local_addr()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run examples/follow (cargo test --features client builds it)");
    assert!(
        wait_until(WAIT, || hub.stats().clients == 1),
        "it registered"
    );
    hub.publish(
        &sse_server::Event::new("line one\nline two")
            .with_event("note")
            .expect("a name")
            .with_id("n1")
            .expect("an id"),
    )
    .expect("publish");
    hub.notify("plain").expect("notify");
    // Its output, as it comes.
    let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut stdout = child.stdout.take().expect("its stdout");
    let sink = std::sync::Arc::clone(&out);
    let reader = thread::spawn(move || {
        let mut buffer = [0u8; 1024];
        while let Ok(n @ 1..) = stdout.read(&mut buffer) {
            sink.lock()
                .expect("the output")
                .extend_from_slice(&buffer[..n]);
        }
    });
    let expected = "[note] id=n1 line one\nline two\n[message] id=n1 plain\n";
    let printed = || String::from_utf8_lossy(&out.lock().expect("the output")).into_owned();
    assert!(
        wait_until(WAIT, || printed().len() >= expected.len()),
        "printed: {:?}",
        printed()
    );
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(status.success());
    let exited = wait_until(WAIT, || matches!(child.try_wait(), Ok(Some(_))));
    if !exited {
        let _ = child.kill();
    }
    assert!(exited, "follow exits on Ctrl-C");
    let code = child.wait().expect("its exit status");
    assert!(code.success(), "{code:?}");
    reader.join().expect("the output reader");
    assert_eq!(printed(), expected);
    hub.shutdown().expect("shutdown");
}

/// A day: the longest wait any of the source's settings takes.
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

#[test]
fn a_backoff_of_duration_max_is_capped_not_a_panic() {
    support::init_logging();
    // A failed connect backs off from the reconnection time, which
    // `min_retry` raises to its own value.
    let url = format!("http://127.0.0.1:{}/events", closed_port());
    let mut source = EventSource::builder(url)
        .min_retry(Duration::MAX)
        .max_backoff(Duration::MAX)
        .build()
        .expect("a source");
    assert_eq!(source.retry(), DAY);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let item = source.next();
        let _ = tx.send(item.map(|item| item.map_err(|e| (e.is_fatal(), e.to_string()))));
    });
    match rx.recv_timeout(WAIT) {
        Ok(Some(Err((false, _)))) => {}
        Ok(other) => panic!("a network error to retry, not {other:?}"),
        Err(e) => panic!("no item from the first connect ({e}): it panicked or hung"),
    }
}

#[test]
fn a_retry_of_duration_max_is_capped_not_a_panic() {
    support::init_logging();
    // A stream that ends waits the reconnection time, taken from `retry`
    // up to `max_retry`.
    let (url, heads) = scripted_server(&["data: one\n\n"]);
    let source = EventSource::builder(url)
        .retry(Duration::MAX)
        .max_retry(Duration::MAX)
        .build()
        .expect("a source");
    assert_eq!(source.retry(), DAY);
    let rx = follow(source);
    let first = rx.recv_timeout(WAIT).expect("an item").expect("an event");
    assert_eq!(first.data, "one");
    heads.recv_timeout(WAIT).expect("the first request");
    // The stream has ended: the source now waits its day. A panic would
    // drop the sender at once.
    match rx.recv_timeout(ms(500)) {
        Err(mpsc::RecvTimeoutError::Timeout) => {}
        other => panic!("the source should be waiting, not {other:?}"),
    }
    assert!(
        heads.try_recv().is_err(),
        "no reconnect before the day is up"
    );
}

#[test]
fn timeouts_of_duration_max_are_capped_not_a_panic() {
    support::init_logging();
    let (url, heads) = scripted_server(&["data: one\n\n"]);
    let source = quick(&url)
        .connect_timeout(Duration::MAX)
        .read_timeout(Duration::MAX)
        .build()
        .expect("a source");
    let rx = follow(source);
    match rx.recv_timeout(WAIT) {
        Ok(Ok(event)) => assert_eq!(event.data, "one"),
        Ok(Err(e)) => panic!("{e}"),
        Err(e) => panic!("no event ({e}): it panicked or hung"),
    }
    heads.recv_timeout(WAIT).expect("the request");
}

#[test]
fn an_id_that_cannot_go_back_as_a_header_is_ignored() {
    support::init_logging();
    // Control characters (but tab) cannot be in a header value; NUL is
    // ignored by the stream format itself. The event with the unsendable id,
    // and the block with only one, leave the last event id at "5".
    let (url, heads) = scripted_server(&[
        "id: 5\ndata: zero\n\nid: a\u{1}b\ndata: one\n\nid: c\u{7f}d\n\n",
        "id: 6\ndata: two\n\n",
    ]);
    let mut source = quick(&url).build().expect("a source");
    assert_eq!(next_event(&mut source, "zero"), ("zero".into(), "5".into()));
    assert_eq!(next_event(&mut source, "one"), ("one".into(), "5".into()));
    // The stream ends; the reconnect sends the id it can.
    assert_eq!(
        next_event(&mut source, "the reconnect's event"),
        ("two".into(), "6".into())
    );
    assert_eq!(source.last_event_id(), "6");
    heads.recv_timeout(WAIT).expect("the first request");
    let second = heads.recv_timeout(WAIT).expect("the second request");
    assert_sends_last_event_id(&second, "5");
}

#[test]
fn settings_that_cannot_make_a_request_are_refused_by_build() {
    support::init_logging();
    let url = format!("http://127.0.0.1:{}/events", closed_port());
    let refused = |builder: sse_server::client::Builder| match builder.build() {
        Ok(source) => panic!("built {source:?}"),
        Err(e) => {
            assert!(e.is_fatal(), "{e}");
            e
        }
    };
    for value in ["a\r\nInjected: 1", "a\nb", "a\u{1}b", "a\0b"] {
        let e = refused(EventSource::builder(&url).header("X-Bad", value));
        assert!(matches!(e, Error::Header(_)), "{e:?}");
        assert!(e.to_string().contains("X-Bad"), "{e}");
    }
    for name in ["Bad Name", "X-Bad:", "", "X\r\nInjected"] {
        let e = refused(EventSource::builder(&url).header(name, "ok"));
        assert!(matches!(e, Error::Header(_)), "{e:?}");
    }
    for id in ["41\n", "4\r1", "4\u{1}1"] {
        let e = refused(EventSource::builder(&url).last_event_id(id));
        assert!(matches!(e, Error::Header(_)), "{e:?}");
        assert!(e.to_string().contains("Last-Event-ID"), "{e}");
    }
    for url in [
        "http://exa mple.invalid/x",
        "http://",
        "http:///events",
        "https://:8080/x",
        "http://caf\u{e9}.invalid/",
    ] {
        let e = refused(EventSource::builder(url));
        assert!(matches!(e, Error::Url(_)), "{url}: {e:?}");
    }
    // What HTTP allows still goes through: a tab, text beyond ASCII, a
    // header name in any case.
    let (url, heads) = scripted_server(&["data: one\n\n"]);
    let mut source = quick(&url)
        .header("x-NOTE", "caf\u{e9}\tok")
        .last_event_id("v\u{e9}rsion 4")
        .build()
        .expect("a source");
    let one = source.next().expect("an item").expect("an event");
    assert_eq!(one.data, "one");
    let head = heads.recv_timeout(WAIT).expect("the request");
    assert!(head.contains("caf\u{e9}\tok\r\n"), "{head:?}");
    assert!(head.contains("v\u{e9}rsion 4\r\n"), "{head:?}");
}

#[test]
fn an_event_past_max_event_bytes_drops_the_stream_and_resumes() {
    support::init_logging();
    // An event that never ends, behind a whole one: the whole one comes,
    // then the error, and the reconnect resumes from the whole one.
    let endless: &'static str =
        Box::leak(format!("id: 1\ndata: whole\n\ndata: {}", "a".repeat(4096)).into_boxed_str());
    let (url, heads) = scripted_server(&[endless, "id: 2\ndata: after\n\n"]);
    let mut source = quick(&url).max_event_bytes(1024).build().expect("a source");
    assert_eq!(
        next_event(&mut source, "the whole event"),
        ("whole".into(), "1".into())
    );
    match source.next().expect("an item") {
        Err(Error::EventTooLarge(1024)) => {}
        other => panic!("expected EventTooLarge(1024), got {other:?}"),
    }
    assert_eq!(
        next_event(&mut source, "the reconnect's event"),
        ("after".into(), "2".into())
    );
    heads.recv_timeout(WAIT).expect("the first request");
    let second = heads.recv_timeout(WAIT).expect("the second request");
    assert_sends_last_event_id(&second, "1");
}

#[test]
fn max_event_bytes_counts_the_event_being_read_not_the_last_id() {
    // The first event's id (40 bytes) stays the last event id, but is not
    // part of the second event, of which a 36-byte line has come: 76 bytes
    // in all, 36 of them the second event's, against a limit of 64.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!(
        "http://{}/events",
        listener.local_addr().expect("an address")
    );
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let server = thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        read_head(&stream);
        let id = "i".repeat(40);
        let first = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n\
             id: {id}\ndata: 0\n\ndata: {}",
            "x".repeat(30)
        );
        stream.write_all(first.as_bytes()).expect("write");
        // The rest of the second event once the first has been taken.
        if go_rx.recv_timeout(WAIT).is_ok() {
            let _ = stream.write_all(b"\n\n");
        }
        stream
    });
    let mut source = quick(&url).max_event_bytes(64).build().expect("a source");
    let first = source.next().expect("an item").expect("the first event");
    assert_eq!(first.data, "0");
    go_tx.send(()).expect("the server waits");
    let second = source.next().expect("an item").expect("the second event");
    assert_eq!(second.data, "x".repeat(30));
    assert_eq!(second.last_event_id, "i".repeat(40));
    drop(server.join().expect("the server"));
}

#[test]
fn close_drops_an_event_too_large_not_yet_yielded() {
    // One read completes an event and overflows the next: close() after
    // the first leaves nothing to yield.
    let body: &'static str =
        Box::leak(format!("data: whole\n\ndata: {}", "a".repeat(4096)).into_boxed_str());
    let (url, _heads) = scripted_server(&[body]);
    let mut source = quick(&url).max_event_bytes(1024).build().expect("a source");
    let whole = source.next().expect("an item").expect("the whole event");
    assert_eq!(whole.data, "whole");
    source.close();
    assert!(source.next().is_none(), "closed");
}

#[test]
fn a_server_that_hangs_up_at_once_is_backed_off_from() {
    support::init_logging();
    // Every request gets a stream head, then the connection closes: no
    // event. The server notes when it accepted each request, before it
    // answers; a reconnect comes only after the answer has ended the
    // stream and the wait has passed, so the gaps between those notes
    // are at least the waits.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!(
        "http://{}/events",
        listener.local_addr().expect("an address")
    );
    let (accepted_tx, accepted) = mpsc::channel();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            if accepted_tx.send(Instant::now()).is_err() {
                return;
            }
            read_head(&stream);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n");
        }
    });
    let source = quick(&url)
        .max_backoff(Duration::from_secs(2))
        .build()
        .expect("a source");
    let _items = follow(source);
    let times: Vec<Instant> = (0..6)
        .map(|n| {
            accepted
                .recv_timeout(WAIT)
                .unwrap_or_else(|_| panic!("request {n}"))
        })
        .collect();
    // The n-th stream that gave nothing waits at least half of 50 ms
    // doubled n - 1 times (the backoff's jitter is at most half of it);
    // at the reconnection time alone each would wait 50 ms.
    for (n, pair) in times.windows(2).enumerate() {
        let least = ms(25) * (1 << n);
        let gap = pair[1] - pair[0];
        assert!(
            gap >= least,
            "wait {}: {gap:?}, expected at least {least:?}",
            n + 1
        );
    }
}

#[test]
fn an_id_longer_than_8_kib_is_ignored_and_one_of_8_kib_is_sent() {
    support::init_logging();
    let longest: &'static str = "k".repeat(8192).leak();
    let too_long: &'static str = "t".repeat(8193).leak();
    let first: &'static str = format!("id: {longest}\ndata: a\n\n").leak();
    let second: &'static str = format!("id: {too_long}\ndata: b\n\n").leak();
    let (url, heads) = scripted_server(&[first, second, "data: c\n\n"]);
    let mut source = quick(&url).build().expect("a source");
    assert_eq!(next_event(&mut source, "a"), ("a".into(), longest.into()));
    // The longer id is ignored: the event carries the one before, from
    // the stream before; so does an event with no id.
    assert_eq!(next_event(&mut source, "b"), ("b".into(), longest.into()));
    assert_eq!(next_event(&mut source, "c"), ("c".into(), longest.into()));
    assert_eq!(source.last_event_id(), longest);
    heads.recv_timeout(WAIT).expect("the first request");
    for n in 2..=3 {
        let head = heads
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("request {n}"));
        assert_sends_last_event_id(&head, longest);
    }
}

#[test]
fn build_refuses_an_id_or_a_head_too_long_to_send() {
    let url = "http://127.0.0.1:1/events";
    let id = EventSource::builder(url)
        .last_event_id("i".repeat(8193))
        .build();
    assert!(matches!(id, Err(Error::Header(_))), "{id:?}");
    assert!(
        EventSource::builder(url)
            .last_event_id("i".repeat(8192))
            .build()
            .is_ok()
    );
    // The URL and headers together: 64 KiB at most.
    let head = EventSource::builder(url)
        .header("X-Big", "v".repeat(64 * 1024))
        .build();
    assert!(matches!(head, Err(Error::Header(_))), "{head:?}");
    assert!(
        EventSource::builder(url)
            .header("X-Big", "v".repeat(60 * 1024))
            .build()
            .is_ok()
    );
}

#[test]
fn a_response_head_that_trickles_in_is_a_read_timeout() {
    support::init_logging();
    // The head comes a byte every 50 ms, for up to 20 s: each read gets
    // something well within the read timeout, but the head as a whole
    // does not come within it.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!(
        "http://{}/events",
        listener.local_addr().expect("an address")
    );
    thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            return;
        };
        read_head(&stream);
        let mut write = |bytes: &[u8]| stream.write_all(bytes).is_ok();
        if !write(b"HTTP/1.1 200 OK\r\nX-Slow: ") {
            return;
        }
        for _ in 0..400 {
            thread::sleep(ms(50));
            if !write(b"a") {
                return;
            }
        }
        write(b"\r\nContent-Type: text/event-stream\r\n\r\ndata: late\n\n");
    });
    let timeout = ms(300);
    let since = Instant::now();
    let mut source = quick(&url).read_timeout(timeout).build().expect("a source");
    let first = source.next().expect("an item");
    assert!(
        matches!(first, Err(Error::ReadTimeout(t)) if t == timeout),
        "{first:?}"
    );
    assert!(since.elapsed() >= timeout);
}
