//! Routing: the stream path (with or without a query string), 404 for other
//! paths, 405 with an `Allow` header listing GET for other methods, HEAD,
//! and the fallback handler.

mod support;

use std::time::Duration;

use sse_server::tiny_http::{Header, Response};
use sse_server::{Hub, Server};
use support::client::Client;
use support::hubs::plain_hub;

const WAIT: Duration = Duration::from_secs(5);

/// The methods an `Allow` header lists.
fn allowed(client: &Client) -> Vec<String> {
    client
        .header("Allow")
        .unwrap_or_default()
        .split(',')
        .map(|method| method.trim().to_owned())
        .filter(|method| !method.is_empty())
        .collect()
}

/// A 405 for `method`: `Allow` lists GET and not the refused method.
fn assert_not_allowed(client: &Client, method: &str, what: &str) {
    assert_eq!(client.status, 405, "{what}");
    let allow = allowed(client);
    assert!(
        allow.iter().any(|m| m == "GET"),
        "{what}: Allow {allow:?} lists GET"
    );
    assert!(
        !allow.iter().any(|m| m == method),
        "{what}: Allow {allow:?} does not list {method}"
    );
}

fn server() -> (Hub, Server) {
    let hub = plain_hub().build().expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    (hub, server)
}

#[test]
fn unknown_paths_get_404() {
    let (hub, server) = server();
    let addr = server.local_addr();
    for path in [
        "/",
        "/nope",
        "/events/",
        "/events/x",
        "/eventsx",
        "/EVENTS",
        "/x?events",
    ] {
        for version in ["1.1", "1.0"] {
            let mut client =
                Client::request(addr, "GET", path, version, &[], b"").expect("request");
            assert_eq!(client.status, 404, "GET {path} HTTP/{version}");
            assert_ne!(
                client.header("Content-Type"),
                Some("text/event-stream"),
                "GET {path}"
            );
            let body = client.read_to_end(WAIT);
            assert_eq!(body, b"not found\n", "GET {path}");
        }
    }
    assert_eq!(hub.stats().clients, 0, "no stream was opened");
    hub.shutdown().expect("shutdown");
}

#[test]
fn other_methods_on_the_stream_path_get_405_with_allow_get() {
    let (hub, server) = server();
    let addr = server.local_addr();
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        for path in ["/events", "/events?x=1"] {
            let mut client =
                Client::request(addr, method, path, "1.1", &[], b"{\"a\":1}").expect("request");
            assert_not_allowed(&client, method, &format!("{method} {path}"));
            assert_ne!(client.header("Content-Type"), Some("text/event-stream"));
            let body = client.read_to_end(WAIT);
            assert_eq!(body, b"method not allowed\n", "{method} {path}");
        }
    }
    assert_eq!(hub.stats().clients, 0, "no stream was opened");
    hub.shutdown().expect("shutdown");
}

#[test]
fn head_on_the_stream_path_gets_the_stream_headers_and_no_body() {
    let (hub, server) = server();
    for version in ["1.1", "1.0"] {
        let mut client = Client::request(server.local_addr(), "HEAD", "/events", version, &[], b"")
            .expect("request");
        assert_eq!(client.status, 200, "HEAD HTTP/{version}");
        assert_eq!(client.header("Content-Type"), Some("text/event-stream"));
        assert_eq!(client.read_to_end(WAIT), b"", "no body");
    }
    assert_eq!(hub.stats().clients, 0, "HEAD opens no stream");
    hub.shutdown().expect("shutdown");
}

#[test]
fn a_query_string_on_the_stream_path_streams_normally() {
    let (hub, server) = server();
    let addr = server.local_addr();
    let mut clients: Vec<Client> = ["/events?x=1", "/events?", "/events?a=b&c=%20d"]
        .into_iter()
        .map(|path| {
            let client = Client::connect(addr, path, "1.1", &[]).expect("connect");
            assert_eq!(client.status, 200, "GET {path}");
            assert_eq!(client.header("Content-Type"), Some("text/event-stream"));
            client
        })
        .collect();
    assert_eq!(hub.stats().clients, 3);
    hub.notify("with query").expect("notify");
    for client in &mut clients {
        let event = client.expect_event(WAIT, "an event on a stream opened with a query");
        assert_eq!(event.data, "with query");
    }
    hub.shutdown().expect("shutdown");
}

#[test]
fn a_custom_path_and_a_fallback_handler() {
    let hub = plain_hub().build().expect("build the hub");
    let server = Server::builder(&hub)
        .path("/stream")
        .fallback(|request| {
            let body = format!("fallback {} {}", request.method(), request.url());
            let response = Response::from_string(body)
                .with_status_code(203)
                .with_header(
                    Header::from_bytes(&b"X-Fallback"[..], &b"yes"[..]).expect("a valid header"),
                );
            let _ = request.respond(response);
        })
        .bind("127.0.0.1:0")
        .expect("bind");
    let addr = server.local_addr();

    // Everything that is not a GET of the stream path goes to the fallback,
    // including the default path.
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/events"),
        ("GET", "/index.html?q=1"),
        ("POST", "/submit"),
        ("GET", "/stream/more"),
    ] {
        let mut client = Client::request(addr, method, path, "1.1", &[], b"").expect("request");
        assert_eq!(client.status, 203, "{method} {path}");
        assert_eq!(client.header("X-Fallback"), Some("yes"), "{method} {path}");
        let body = client.read_to_end(WAIT);
        assert_eq!(
            String::from_utf8_lossy(&body),
            format!("fallback {method} {path}")
        );
    }
    // Other methods on the stream path still get 405, not the fallback.
    let client = Client::request(addr, "POST", "/stream", "1.1", &[], b"x").expect("request");
    assert_not_allowed(&client, "POST", "POST /stream");
    assert_eq!(client.header("X-Fallback"), None);

    // And GET on it streams.
    assert_eq!(hub.stats().clients, 0);
    let mut stream = Client::connect(addr, "/stream?since=0", "1.1", &[]).expect("connect");
    assert_eq!(stream.status, 200);
    assert_eq!(stream.header("Content-Type"), Some("text/event-stream"));
    hub.notify("on the custom path").expect("notify");
    let event = stream.expect_event(WAIT, "an event on the custom path");
    assert_eq!(event.data, "on the custom path");
    hub.shutdown().expect("shutdown");
}

#[test]
fn a_target_in_absolute_form_is_routed_by_its_path() {
    // RFC 9112 §3.2.2: a server must accept `GET http://host/path`, the
    // form proxies send.
    let (hub, server) = server();
    let addr = server.local_addr();
    let mut streams = Vec::new();
    for target in [
        format!("http://{addr}/events"),
        format!("HTTP://{addr}/events?x=1"),
        format!("https://{addr}/events?"),
    ] {
        let client = Client::connect(addr, &target, "1.1", &[]).expect("connect");
        assert_eq!(client.status, 200, "GET {target}");
        assert_eq!(client.header("Content-Type"), Some("text/event-stream"));
        streams.push(client);
    }
    assert_eq!(hub.stats().clients, 3);
    hub.notify("absolute").expect("notify");
    for client in &mut streams {
        assert_eq!(client.expect_event(WAIT, "an event").data, "absolute");
    }
    // Other paths, and a host with no path, are still not the stream.
    for target in [format!("http://{addr}/other"), format!("http://{addr}")] {
        let client = Client::request(addr, "GET", &target, "1.1", &[], b"").expect("request");
        assert_eq!(client.status, 404, "GET {target}");
    }
    // A path that merely contains a URL is a path like any other.
    let client =
        Client::request(addr, "GET", "/go/http://x/events", "1.1", &[], b"").expect("request");
    assert_eq!(client.status, 404);
    hub.shutdown().expect("shutdown");
}
