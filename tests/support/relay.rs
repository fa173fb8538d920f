//! A TCP relay on 127.0.0.1 that can drop every connection it carries: a
//! server (or proxy) restarting, as its clients see it.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// Relays each connection it accepts to `target`.
pub struct Relay {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    /// While set, connections are closed as soon as they are accepted: the
    /// server is down.
    down: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    pub fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the relay");
        let addr = listener.local_addr().expect("the relay's address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let down = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (thread_accepted, thread_open) = (Arc::clone(&accepted), Arc::clone(&open));
        let thread_down = Arc::clone(&down);
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                if thread_down.load(Ordering::Acquire) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                thread_accepted.fetch_add(1, Ordering::AcqRel);
                let mut open = thread_open.lock().expect("the relay's list");
                for socket in [&client, &server] {
                    open.push(socket.try_clone().expect("clone a relayed socket"));
                }
                drop(open);
                pipe(&client, &server);
                pipe(&server, &client);
            }
        });
        Relay {
            addr,
            accepted,
            down,
            open,
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Drops every connection and turns new ones away (closed at once)
    /// until [`up`](Relay::up).
    pub fn down(&self) {
        self.down.store(true, Ordering::Release);
        self.drop_connections();
    }

    /// Relays new connections again.
    pub fn up(&self) {
        self.down.store(false, Ordering::Release);
    }

    /// How many connections it has relayed.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Acquire)
    }

    /// Drops every connection it carries, both ways.
    pub fn drop_connections(&self) {
        for socket in self.open.lock().expect("the relay's list").drain(..) {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }
}

/// Copies what `from` sends to `to` until either side ends.
fn pipe(from: &TcpStream, to: &TcpStream) {
    let (mut from, mut to) = (
        from.try_clone().expect("clone a relayed socket"),
        to.try_clone().expect("clone a relayed socket"),
    );
    thread::spawn(move || {
        let mut buffer = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buffer[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}
