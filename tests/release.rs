//! A stream lets go of `tiny_http`'s reading side: once it is accepted, the
//! connection holds one descriptor on the server and no `tiny_http` thread
//! (Linux; see `src/tiny_http_fixes/release.rs`).
//!
//! The tests count the whole process's descriptors and threads, so they run
//! one at a time.

#![cfg(target_os = "linux")]

mod support;

use std::io::Write;
use std::time::Duration;

use sse_server::Server;
use support::client::Client;
use support::hubs::plain_hub;
use support::init_logging;
use support::proc::{descriptors_of_port, fd_count, thread_count};
use support::serial;
use support::wait::wait_until;

const WAIT: Duration = Duration::from_secs(10);

/// `tiny_http`'s idle pool threads end 5 s after their last connection.
const POOL_LINGER: Duration = Duration::from_secs(20);

#[test]
fn each_stream_holds_one_descriptor_and_one_thread_of_the_server() {
    let _serial = serial();
    init_logging();
    const CLIENTS: usize = 40;
    let hub = plain_hub().build().expect("hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();
    let fds = fd_count();
    let threads = thread_count();

    let mut clients: Vec<Client> = (0..CLIENTS)
        .map(|i| {
            Client::connect(addr, "/events", "1.1", &[])
                .unwrap_or_else(|e| panic!("client {i}: {e}"))
        })
        .collect();
    assert!(wait_until(WAIT, || hub.stats().clients == CLIENTS));
    // Each client's socket is in this process too: one descriptor each on
    // the client's side, one on the server's (tiny_http held two before).
    // (Counted by each client's port: other descriptors may come and go.)
    let ports: Vec<u16> = clients
        .iter()
        .map(|client| {
            client
                .socket()
                .local_addr()
                .expect("a local address")
                .port()
        })
        .collect();
    let held = || -> usize { ports.iter().map(|&port| descriptors_of_port(port)).sum() };
    assert!(
        wait_until(WAIT, || held() == 2 * CLIENTS),
        "descriptors: {} for {CLIENTS} clients ({} with tiny_http's copies; {} in the process, {fds} idle)",
        held(),
        3 * CLIENTS,
        fd_count()
    );
    // One writer thread per client; tiny_http's pool keeps at most a few
    // idle threads of its own once they have waited out their linger.
    let at_most = threads + CLIENTS + 8;
    assert!(
        wait_until(POOL_LINGER, || thread_count() <= at_most),
        "threads: {} for {CLIENTS} clients (idle: {threads})",
        thread_count()
    );

    // The streams work as before.
    hub.notify("after the release").expect("notify");
    for (i, client) in clients.iter_mut().enumerate() {
        let event = client.expect_event(WAIT, &format!("client {i}'s event"));
        assert_eq!(event.data, "after the release");
    }
    hub.shutdown().expect("shutdown");
    for (i, client) in clients.iter_mut().enumerate() {
        assert!(client.wait_end(WAIT).is_some(), "client {i}'s stream ended");
    }
}

#[test]
fn a_request_sent_behind_a_running_stream_is_not_read() {
    let _serial = serial();
    init_logging();
    let hub = plain_hub().keep_alive(None).build().expect("hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let mut client = Client::connect(server.local_addr(), "/events", "1.1", &[]).expect("connect");
    let port = client
        .socket()
        .local_addr()
        .expect("a local address")
        .port();
    // Released: the client's socket and the server's one.
    assert!(
        wait_until(WAIT, || descriptors_of_port(port) == 2),
        "descriptors of the connection: {} (3 with tiny_http's copy)",
        descriptors_of_port(port)
    );
    client
        .socket()
        .try_clone()
        .expect("clone the client's socket")
        .write_all(b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send a request behind the stream");
    hub.notify("still streaming").expect("notify");
    let event = client.expect_event(WAIT, "the event after the request");
    assert_eq!(event.data, "still streaming");
    assert_eq!(hub.stats().evicted, 0);
    assert_eq!(hub.stats().streams, 1);

    // The stream ends with its final chunk and nothing after it: the
    // request behind it was never read, so never answered.
    hub.shutdown().expect("shutdown");
    assert!(client.wait_end(WAIT).is_some(), "the final chunk");
    assert!(
        client.server_closed(WAIT),
        "the server closed the connection"
    );
    drop(server);
}

/// A connection of the program's own whose peer has the same address and
/// port as a stream's client (made with `SO_REUSEPORT`: the test listens on
/// the port the client then connects from). Made before the stream, so its
/// descriptor has a lower number than the stream's.
struct Decoy {
    /// The program's connection, whose peer is `port`.
    ours: std::net::TcpStream,
    /// The other end of it.
    theirs: std::net::TcpStream,
    port: u16,
    _listener: std::net::TcpListener,
}

impl Decoy {
    fn new() -> Decoy {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        socket.set_reuse_port(true).expect("SO_REUSEPORT");
        socket
            .bind(
                &"127.0.0.1:0"
                    .parse::<std::net::SocketAddr>()
                    .unwrap()
                    .into(),
            )
            .expect("bind");
        socket.listen(8).expect("listen");
        let listener: std::net::TcpListener = socket.into();
        let port = listener.local_addr().expect("addr").port();
        let ours = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let (theirs, _) = listener.accept().expect("accept");
        Decoy {
            ours,
            theirs,
            port,
            _listener: listener,
        }
    }

    /// A stream client connecting from the decoy's port.
    fn client(&self, server: std::net::SocketAddr) -> std::net::TcpStream {
        use socket2::{Domain, Socket, Type};
        use std::io::Read;
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        socket.set_reuse_port(true).expect("SO_REUSEPORT");
        let from: std::net::SocketAddr = ([127, 0, 0, 1], self.port).into();
        socket
            .bind(&from.into())
            .expect("bind the client to the decoy's port");
        socket.connect(&server.into()).expect("connect");
        let mut stream: std::net::TcpStream = socket.into();
        stream
            .write_all(b"GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
            .expect("request");
        stream.set_read_timeout(Some(WAIT)).expect("timeout");
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).expect("the response head");
        assert_eq!(&head, b"HTTP/1.1 200");
        stream
    }

    /// The program's connection still reads what its peer sends.
    fn assert_untouched(&mut self) {
        use std::io::Read;
        self.theirs.write_all(b"still mine").expect("write");
        self.ours.set_read_timeout(Some(WAIT)).expect("timeout");
        let mut got = [0u8; 10];
        self.ours
            .read_exact(&mut got)
            .expect("the decoy's reading side was not shut down");
        assert_eq!(&got, b"still mine");
    }
}

#[test]
fn a_connection_of_the_program_with_the_clients_peer_address_is_not_touched() {
    let _serial = serial();
    init_logging();
    let hub = plain_hub().build().expect("hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let mut decoy = Decoy::new();
    assert_eq!(
        decoy.ours.peer_addr().expect("peer").port(),
        decoy.port,
        "the decoy's peer is the client's address"
    );
    // The decoy's own sockets have the client's port at one end too.
    let before = descriptors_of_port(decoy.port);
    let client = decoy.client(server.local_addr());
    assert!(wait_until(WAIT, || hub.stats().clients == 1));
    // The stream was released (the client's socket and the server's one)...
    assert!(
        wait_until(WAIT, || descriptors_of_port(decoy.port) == before + 2),
        "descriptors with the client's port: {} (before the client: {before})",
        descriptors_of_port(decoy.port)
    );
    // ... and the decoy was left alone.
    decoy.assert_untouched();
    drop(client);
    hub.shutdown().expect("shutdown");
}

#[test]
fn without_the_local_address_an_ambiguous_peer_is_not_released() {
    let _serial = serial();
    init_logging();
    // A tiny_http server of the program's own, handing streams to the hub:
    // the hub does not know which local address they came in on.
    let hub = plain_hub().build().expect("hub");
    let http = std::sync::Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind"));
    let addr = http.server_addr().to_ip().expect("an IP address");
    let serving = {
        let http = std::sync::Arc::clone(&http);
        let hub = hub.clone();
        std::thread::spawn(move || {
            if let Ok(Some(request)) = http.recv_timeout(WAIT) {
                hub.serve(request).expect("serve");
            }
        })
    };
    let mut decoy = Decoy::new();
    let client = decoy.client(addr);
    serving.join().expect("the serving thread panicked");
    assert!(wait_until(WAIT, || hub.stats().clients == 1));
    // Two connections to that peer address: neither is touched.
    decoy.assert_untouched();
    hub.notify("still streaming").expect("notify");
    drop(client);
    hub.shutdown().expect("shutdown");
    http.unblock();
}
