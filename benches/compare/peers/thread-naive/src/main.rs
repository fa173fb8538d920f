//! `thread-naive`: one blocking writer thread per client, written by hand.
//!
//! Std only, with the same request handling as `raw-floor` (one accept
//! thread that parses each request itself). Each SSE client (`GET /events`)
//! gets its response head at once, then its own writer thread (64 KiB stack)
//! fed by a bounded `sync_channel` of 128 shared frames. A publish spawns one
//! thread that, holding the client list's lock, `try_send`s each encoded
//! event to every client; a full channel drops that event for that client.
//! The writer does a blocking `recv`, takes whatever else is queued, and
//! sends it all with one `write_all`. No hub thread, and no joining of
//! waiting events into one frame before they are queued.
//!
//! It is in the comparison as what a program that wants one blocking thread
//! per client writes by hand: the baseline a thread-per-client library must
//! beat.
//!
//! Contract: `GET /events`, `POST /publish?count=M&size=B&interval_us=I`,
//! `GET /stats` (see `benches/compare/README.md`). Usage:
//! `thread-naive --addr 127.0.0.1:PORT`; it ends on SIGTERM (default action).

use std::io::{self, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread;

use peer_contract::Publish;
use peer_contract::http1::{self, SSE_HEAD, read_request, respond, respond_other};

/// Frames a client's channel holds before events are dropped for it.
const QUEUE: usize = 128;
/// Stack size of each writer thread.
const WRITER_STACK: usize = 64 * 1024;

/// One encoded event, shared by every client's queue.
type Frame = Arc<[u8]>;

/// The registered clients' queues, and how many frames were dropped because
/// a queue was full.
#[derive(Default)]
struct Hub {
    queues: Mutex<Vec<SyncSender<Frame>>>,
    dropped: AtomicU64,
}

type Clients = Arc<Hub>;

fn main() {
    let addr = peer_contract::addr("thread-naive");
    let clients: Clients = Arc::new(Hub::default());
    http1::serve("thread-naive", &addr, |stream| handle(stream, &clients));
}

/// Reads one request from `stream` and answers it.
fn handle(mut stream: TcpStream, clients: &Clients) -> io::Result<()> {
    let Some(req) = read_request(&mut stream)? else {
        return respond(&mut stream, "400 Bad Request", "bad request\n");
    };
    match (req.method.as_str(), req.path()) {
        ("GET", "/events") => {
            stream.write_all(SSE_HEAD)?;
            let (tx, rx) = mpsc::sync_channel(QUEUE);
            // If the thread cannot be spawned, the stream is dropped (closed).
            thread::Builder::new()
                .name("writer".into())
                .stack_size(WRITER_STACK)
                .spawn(move || write_frames(stream, rx))?;
            clients.queues.lock().unwrap().push(tx);
            Ok(())
        }
        ("GET", "/stats") => {
            let n = clients.queues.lock().unwrap().len();
            let dropped = clients.dropped.load(Ordering::Relaxed);
            let body = format!("clients {n}\ndropped {dropped}\n");
            respond(&mut stream, "200 OK", &body)
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

/// One client's writer: sends everything queued with one `write_all` until
/// the socket fails or the sender is gone.
fn write_frames(mut stream: TcpStream, rx: Receiver<Frame>) {
    let mut out = Vec::new();
    while let Ok(frame) = rx.recv() {
        out.clear();
        out.extend_from_slice(&frame);
        while let Ok(frame) = rx.try_recv() {
            out.extend_from_slice(&frame);
        }
        if stream.write_all(&out).is_err() {
            return;
        }
    }
}

/// Publishes `count` events paced to `t0 + k * interval`, queueing each one
/// for every client (full queue: dropped for that client) and forgetting
/// clients whose writer has ended.
fn publish(params: Publish, clients: &Clients) {
    params.paced(|seq| {
        let frame: Frame = peer_contract::frame(seq, params.size).into();
        let mut dropped = 0;
        clients
            .queues
            .lock()
            .unwrap()
            .retain(|tx| match tx.try_send(Arc::clone(&frame)) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    dropped += 1;
                    true
                }
                Err(TrySendError::Disconnected(_)) => false,
            });
        clients.dropped.fetch_add(dropped, Ordering::Relaxed);
    });
}
