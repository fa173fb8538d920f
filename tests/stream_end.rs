//! Every stream ends at shutdown, whatever `Connection` header the client
//! sent: an HTTP/1.1 stream with its final chunk, an HTTP/1.0 stream (whose
//! body is close-delimited) by the server closing the connection.

mod support;

use std::time::Duration;

use sse_server::Server;
use support::client::{Client, End};
use support::hubs::plain_hub;

const WAIT: Duration = Duration::from_secs(5);

/// Opens a stream with the given request headers, checks an event gets
/// through, shuts the hub down, and returns how the stream ended.
fn end_at_shutdown(version: &str, headers: &[(&str, &str)]) -> (Option<End>, Vec<u8>) {
    let hub = plain_hub().build().expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let mut client =
        Client::connect(server.local_addr(), "/events", version, headers).expect("connect");
    assert_eq!(client.status, 200);
    assert_eq!(client.header("Connection"), Some("close"));
    hub.notify("before the end").expect("notify");
    let event = client.expect_event(WAIT, "an event before the shutdown");
    assert_eq!(event.data, "before the end");
    hub.shutdown().expect("shutdown");
    let end = client.wait_end(WAIT);
    (end, client.body().to_vec())
}

#[test]
fn http_1_1_streams_end_with_the_final_chunk() {
    for headers in [
        &[][..],
        &[("Connection", "keep-alive")][..],
        &[("Connection", "close")][..],
    ] {
        let (end, body) = end_at_shutdown("1.1", headers);
        assert_eq!(end, Some(End::FinalChunk), "HTTP/1.1 with {headers:?}");
        assert_eq!(
            body, b"data: before the end\n\n",
            "HTTP/1.1 with {headers:?}"
        );
    }
}

#[test]
fn http_1_0_streams_end_with_the_connection() {
    for headers in [&[][..], &[("Connection", "close")][..]] {
        let (end, body) = end_at_shutdown("1.0", headers);
        assert_eq!(end, Some(End::Eof), "HTTP/1.0 with {headers:?}");
        assert_eq!(
            body, b"data: before the end\n\n",
            "HTTP/1.0 with {headers:?}"
        );
    }
}

#[test]
fn http_1_0_keep_alive_streams_are_refused_with_a_reason() {
    // Such a stream could never end: its body ends only when the connection
    // closes, and tiny_http keeps a keep-alive connection open.
    let hub = plain_hub().build().expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let mut client = Client::connect(
        server.local_addr(),
        "/events",
        "1.0",
        &[("Connection", "keep-alive")],
    )
    .expect("connect");
    assert_eq!(client.status, 400);
    let body = client.read_to_end(WAIT);
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("Connection: close"), "{body}");
    assert_eq!(hub.stats().clients, 0);
}
