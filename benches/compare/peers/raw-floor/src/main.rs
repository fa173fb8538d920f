//! `raw-floor`: the cheapest fan-out a blocking server can do, std only.
//!
//! One thread accepts connections and parses each request itself. An SSE
//! client (`GET /events`) gets its response head at once and its socket goes
//! into a shared `Vec<TcpStream>`. A publish spawns one thread that encodes
//! each event once and `write_all`s the same bytes to every socket in turn:
//! no per-client threads, no channels, no per-client buffering. The body is
//! close-delimited, so every event costs exactly one `write(2)` per client.
//!
//! It is in the comparison as the floor for *one write per event per
//! client*: a server that does that cannot be much cheaper than this one.
//! (A server that coalesces several events into one write can be.)
//!
//! Contract: `GET /events`, `POST /publish?count=M&size=B&interval_us=I`,
//! `GET /stats` (see `benches/compare/README.md`). Usage:
//! `raw-floor --addr 127.0.0.1:PORT`; it ends on SIGTERM (default action).

use std::io::{self, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::thread;

use peer_contract::Publish;
use peer_contract::http1::{self, SSE_HEAD, read_request, respond, respond_other};

type Clients = Arc<Mutex<Vec<TcpStream>>>;

fn main() {
    let addr = peer_contract::addr("raw-floor");
    let clients: Clients = Arc::new(Mutex::new(Vec::new()));
    http1::serve("raw-floor", &addr, |stream| handle(stream, &clients));
}

/// Reads one request from `stream` and answers it.
fn handle(mut stream: TcpStream, clients: &Clients) -> io::Result<()> {
    let Some(req) = read_request(&mut stream)? else {
        return respond(&mut stream, "400 Bad Request", "bad request\n");
    };
    match (req.method.as_str(), req.path()) {
        ("GET", "/events") => {
            stream.write_all(SSE_HEAD)?;
            clients.lock().unwrap().push(stream);
            Ok(())
        }
        ("GET", "/stats") => {
            let n = clients.lock().unwrap().len();
            respond(&mut stream, "200 OK", &format!("clients {n}\n"))
        }
        ("POST", "/publish") => match Publish::parse(req.query()) {
            Some(params) => {
                let clients = Arc::clone(clients);
                thread::Builder::new()
                    .name("publish".into())
                    .spawn(move || publish(params, &clients))?;
                respond(&mut stream, "202 Accepted", "accepted\n")
            }
            None => respond(&mut stream, "400 Bad Request", "bad publish parameters\n"),
        },
        (_, path) => respond_other(&mut stream, path),
    }
}

/// Publishes `count` events paced to `t0 + k * interval`, writing each one to
/// every client in turn and dropping clients whose write fails.
fn publish(params: Publish, clients: &Clients) {
    params.paced(|seq| {
        let frame = peer_contract::frame(seq, params.size);
        clients
            .lock()
            .unwrap()
            .retain_mut(|stream| stream.write_all(&frame).is_ok());
    });
}
