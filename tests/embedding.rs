//! Embedding: a program runs its own `tiny_http` server and hands its
//! event-stream requests to `Hub::serve`.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use sse_server::tiny_http::{self, Response};
use sse_server::{Error, Hub};
use support::client::{Client, End};
use support::hubs::plain_hub;
use support::init_logging;
use support::wait::wait_until;

const WAIT: Duration = Duration::from_secs(5);

/// The program's own server: `/sse` goes to the hub, everything else gets a
/// page. Returns what `serve` answered for each stream request.
struct App {
    server: Arc<tiny_http::Server>,
    addr: SocketAddr,
    thread: Option<JoinHandle<Vec<Result<(), Error>>>>,
}

impl App {
    fn start(hub: &Hub) -> App {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind tiny_http"));
        let addr = server.server_addr().to_ip().expect("an IP listen address");
        let thread = {
            let server = Arc::clone(&server);
            let hub = hub.clone();
            thread::spawn(move || {
                let mut served = Vec::new();
                for request in server.incoming_requests() {
                    if request.url().starts_with("/sse") {
                        served.push(hub.serve(request));
                    } else {
                        let _ = request.respond(Response::from_string("app page"));
                    }
                }
                served
            })
        };
        App {
            server,
            addr,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> Vec<Result<(), Error>> {
        self.server.unblock();
        self.thread
            .take()
            .expect("running")
            .join()
            .expect("the app thread panicked")
    }
}

#[test]
fn a_stream_served_from_the_programs_own_tiny_http_server() {
    init_logging();
    let hub = plain_hub().build().expect("build the hub");
    let app = App::start(&hub);

    let mut streams: Vec<Client> = ["1.1", "1.0"]
        .into_iter()
        .map(|version| {
            let client = Client::connect(app.addr, "/sse", version, &[]).expect("connect");
            assert_eq!(client.status, 200, "HTTP/{version}");
            assert_eq!(client.header("Content-Type"), Some("text/event-stream"));
            client
        })
        .collect();
    assert_eq!(hub.stats().clients, 2);

    // The program's other routes keep working next to the streams.
    let mut page = Client::request(app.addr, "GET", "/", "1.1", &[], b"").expect("request");
    assert_eq!(page.status, 200);
    assert_eq!(page.read_to_end(WAIT), b"app page");

    hub.notify("embedded").expect("notify");
    for stream in &mut streams {
        let event = stream.expect_event(WAIT, "an event through the embedded stream");
        assert_eq!(event.data, "embedded");
    }

    hub.shutdown().expect("shutdown");
    assert_eq!(streams[0].wait_end(WAIT), Some(End::FinalChunk));
    assert_eq!(streams[1].wait_end(WAIT), Some(End::Eof));

    // After the shutdown, serve says Closed, and tells the event-stream
    // client to come back later (tests/busy.rs checks the answer in full).
    let mut late = Client::connect(app.addr, "/sse", "1.1", &[]).expect("connect");
    assert_eq!(late.status, 200);
    assert_eq!(late.header("Content-Type"), Some("text/event-stream"));
    assert_eq!(late.wait_end(WAIT), Some(End::Complete));
    let told = late.take_parsed();
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(
        (told[0].event_type.as_str(), told[0].data.as_str()),
        ("sse-busy", "shutting-down")
    );

    drop(streams);
    // The late request was answered inside `serve`, so the app thread
    // records its result before it next waits for a request, which is
    // where `unblock` ends its loop.
    let served = app.stop();
    assert_eq!(served.len(), 3, "{served:?}");
    assert!(served[0].is_ok() && served[1].is_ok(), "{served:?}");
    assert!(matches!(served[2], Err(Error::Closed)), "{served:?}");
    assert!(wait_until(WAIT, || hub.stats().clients == 0));
}
