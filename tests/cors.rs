//! CORS: no headers by default; `Cors::any()` answers `*`; `Cors::origins`
//! echoes a listed origin with credentials and `Vary: Origin`, and refuses
//! others with 403; preflights are answered 204 (or 403); a request without
//! `Origin` is served plainly.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use sse_server::{ClientId, Cors, Decision, Hub, MAX_TOPICS, Server};
use support::client::Client;
use support::hubs::plain_hub;
use support::init_logging;
use support::wait::wait_until;

const WAIT: Duration = Duration::from_secs(5);
const APP: &str = "https://app.example.com";
const LOCAL: &str = "http://localhost:3000";

fn server(cors: Option<Cors>) -> (Hub, Server) {
    let mut builder = plain_hub().keep_alive(None);
    if let Some(cors) = cors {
        builder = builder.cors(cors);
    }
    let hub = builder.build().expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    (hub, server)
}

fn access_control_headers(client: &Client) -> Vec<(String, String)> {
    client
        .headers
        .iter()
        .filter(|(name, _)| name.to_ascii_lowercase().starts_with("access-control-"))
        .cloned()
        .collect()
}

fn preflight(addr: SocketAddr, origin: &str) -> Client {
    Client::request(
        addr,
        "OPTIONS",
        "/events",
        "1.1",
        &[
            ("Origin", origin),
            ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Headers", "last-event-id"),
        ],
        b"",
    )
    .expect("a preflight answer")
}

/// Opens a stream and checks an event gets through.
fn streams(hub: &Hub, addr: SocketAddr, headers: &[(&str, &str)]) -> Client {
    let mut client = Client::connect(addr, "/events", "1.1", headers).expect("connect");
    assert_eq!(client.status, 200, "{headers:?}");
    assert_eq!(client.header("Content-Type"), Some("text/event-stream"));
    hub.notify("hello").expect("notify");
    assert_eq!(client.expect_event(WAIT, "an event").data, "hello");
    client
}

#[test]
fn no_cors_headers_by_default() {
    init_logging();
    let (hub, server) = server(None);
    let addr = server.local_addr();
    let with_origin = streams(&hub, addr, &[("Origin", APP)]);
    assert_eq!(access_control_headers(&with_origin), []);
    assert_eq!(with_origin.header("Vary"), None);
    let without = streams(&hub, addr, &[]);
    assert_eq!(access_control_headers(&without), []);
    let options = preflight(addr, APP);
    assert_eq!(options.status, 204);
    assert_eq!(access_control_headers(&options), []);
    hub.shutdown().expect("shutdown");
}

#[test]
fn cors_any_answers_a_star_without_credentials() {
    let (hub, server) = server(Some(Cors::any()));
    let addr = server.local_addr();
    for origin in [APP, LOCAL, "null"] {
        let client = streams(&hub, addr, &[("Origin", origin)]);
        assert_eq!(
            client.header("Access-Control-Allow-Origin"),
            Some("*"),
            "{origin}"
        );
        assert_eq!(client.header("Access-Control-Allow-Credentials"), None);

        let options = preflight(addr, origin);
        assert_eq!(options.status, 204, "preflight from {origin}");
        assert_eq!(options.header("Access-Control-Allow-Origin"), Some("*"));
        assert_eq!(options.header("Access-Control-Allow-Methods"), Some("GET"));
    }
    let plain = streams(&hub, addr, &[]);
    assert_eq!(
        access_control_headers(&plain),
        [],
        "no Origin: no CORS headers"
    );
    hub.shutdown().expect("shutdown");
}

#[test]
fn listed_origins_are_echoed_with_credentials() {
    let (hub, server) = server(Some(Cors::origins([APP, LOCAL, "bad origin"])));
    let addr = server.local_addr();
    for origin in [APP, LOCAL] {
        let client = streams(&hub, addr, &[("Origin", origin)]);
        assert_eq!(
            client.header("Access-Control-Allow-Origin"),
            Some(origin),
            "the origin is echoed"
        );
        assert_eq!(
            client.header("Access-Control-Allow-Credentials"),
            Some("true")
        );
        assert_eq!(client.header("Vary"), Some("Origin"));
    }
    let plain = streams(&hub, addr, &[]);
    assert_eq!(
        access_control_headers(&plain),
        [],
        "a request without Origin is served, without CORS headers"
    );
    hub.shutdown().expect("shutdown");
}

#[test]
fn an_unlisted_origin_gets_403_and_no_stream() {
    let (hub, server) = server(Some(Cors::origins([APP, "bad origin"])));
    let addr = server.local_addr();
    for origin in [
        "https://evil.example.com",
        "https://app.example.com.evil.com",
        "http://app.example.com",
        "https://app.example.com:443",
        "null",
        "bad origin",
    ] {
        let mut client =
            Client::connect(addr, "/events", "1.1", &[("Origin", origin)]).expect("a response");
        assert_eq!(client.status, 403, "{origin}");
        assert_ne!(client.header("Content-Type"), Some("text/event-stream"));
        assert_eq!(access_control_headers(&client), [], "{origin}");
        assert_eq!(client.read_to_end(WAIT), b"origin not allowed\n");

        let options = preflight(addr, origin);
        assert_eq!(options.status, 403, "preflight from {origin}");
        assert_eq!(access_control_headers(&options), []);
    }
    assert_eq!(hub.stats().clients, 0, "no stream was opened");
    assert_eq!(hub.stats().streams, 0);
    hub.shutdown().expect("shutdown");
}

#[test]
fn a_preflight_from_an_allowed_origin_gets_204_with_the_cors_answer() {
    for (name, cors, allow_origin, credentials) in [
        ("origins", Cors::origins([APP]), APP, Some("true")),
        ("any", Cors::any(), "*", None),
    ] {
        let (hub, server) = server(Some(cors));
        let options = preflight(server.local_addr(), APP);
        assert_eq!(options.status, 204, "{name}");
        assert_eq!(
            options.header("Access-Control-Allow-Origin"),
            Some(allow_origin),
            "{name}"
        );
        assert_eq!(
            options.header("Access-Control-Allow-Credentials"),
            credentials,
            "{name}"
        );
        let methods = options
            .header("Access-Control-Allow-Methods")
            .unwrap_or_default();
        assert!(
            methods.split(',').any(|m| m.trim() == "GET"),
            "{name}: Allow-Methods {methods:?} has GET"
        );
        let headers = options
            .header("Access-Control-Allow-Headers")
            .unwrap_or_default();
        assert!(
            headers
                .split(',')
                .any(|h| h.trim().eq_ignore_ascii_case("Last-Event-ID")),
            "{name}: Allow-Headers {headers:?} has Last-Event-ID"
        );
        let max_age: u64 = options
            .header("Access-Control-Max-Age")
            .unwrap_or_default()
            .parse()
            .unwrap_or_else(|_| panic!("{name}: a numeric Max-Age"));
        assert!(max_age > 0, "{name}");
        assert_eq!(
            hub.stats().clients,
            0,
            "{name}: a preflight opens no stream"
        );
        hub.shutdown().expect("shutdown");
    }
}

#[test]
fn head_from_an_allowed_origin_gets_the_cors_headers() {
    let (hub, server) = server(Some(Cors::origins([APP])));
    let addr = server.local_addr();
    let head = Client::request(addr, "HEAD", "/events", "1.1", &[("Origin", APP)], b"")
        .expect("a HEAD answer");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("Access-Control-Allow-Origin"), Some(APP));
    let refused = Client::request(addr, "HEAD", "/events", "1.1", &[("Origin", LOCAL)], b"")
        .expect("a HEAD answer");
    assert_eq!(refused.status, 403);
    hub.shutdown().expect("shutdown");
}

#[test]
fn refusals_of_an_allowed_origin_carry_the_cors_headers() {
    let hub = plain_hub()
        .keep_alive(None)
        .cors(Cors::origins([APP]))
        .on_connect(|request| match request.header("Authorization") {
            Some("ok") => Decision::accept().id(ClientId::new(7)),
            Some("any") => Decision::accept(),
            Some("stop") => Decision::reject(204),
            _ => Decision::reject(401),
        })
        .build()
        .expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();
    let allowed = Client::connect(
        addr,
        "/events",
        "1.1",
        &[("Origin", APP), ("Authorization", "ok")],
    )
    .expect("connect");
    assert_eq!(allowed.status, 200);
    assert_eq!(allowed.header("Access-Control-Allow-Origin"), Some(APP));
    let mut missing = Vec::new();
    let too_many: Vec<String> = (0..=MAX_TOPICS).map(|i| format!("topic=t{i}")).collect();
    let too_many = format!("/events?{}", too_many.join("&"));
    for (path, auth, status) in [
        ("/events", "nope", 401),
        ("/events", "stop", 204),
        ("/events", "ok", 409),
        (too_many.as_str(), "any", 400),
    ] {
        let client = Client::connect(
            addr,
            path,
            "1.1",
            &[("Origin", APP), ("Authorization", auth)],
        )
        .expect("a response");
        assert_eq!(client.status, status);
        if client.header("Access-Control-Allow-Origin") != Some(APP) {
            missing.push((status, access_control_headers(&client)));
        }
    }
    assert!(
        wait_until(WAIT, || hub.stats().streams == 1),
        "only the allowed stream stays open"
    );
    assert!(
        missing.is_empty(),
        "refusals without Access-Control-Allow-Origin (a browser cannot read their status; \
         EventSource treats them as network errors and reconnects): {missing:?}"
    );
    hub.shutdown().expect("shutdown");
}
