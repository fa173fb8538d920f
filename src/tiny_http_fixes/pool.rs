//! Kicking `tiny_http`'s thread pool.
//!
//! `tiny_http` 0.12's pool has a race: two connections accepted close
//! together can both be handed to the same idle worker, and the second then
//! waits in the pool's queue until some worker finishes its connection,
//! which for event streams may be never. A connection that closes at once
//! makes the pool start (or wake) a worker, which then takes the waiting
//! connection. The acceptor opens such connections: a few every
//! [`KICK_EVERY`] for a while after each request (connections arrive in
//! bursts, and each kick frees at most one waiting connection), and one a
//! second while streams are open.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How often the acceptor looks up from `tiny_http` (and may kick).
pub(crate) const KICK_EVERY: Duration = Duration::from_millis(50);
const KICK_BURST: usize = 4;
const KICK_WHILE: Duration = Duration::from_secs(3);
const KICK_IDLE: Duration = Duration::from_secs(1);

/// When the pool was last kicked, and when the last request came.
pub(crate) struct Kicker {
    last_kick: Instant,
    /// No request yet: nothing for the pool to have mixed up, so no kicks
    /// until the first one (they would only take descriptors and wake-ups
    /// from a server that has just started).
    last_request: Option<Instant>,
}

impl Kicker {
    pub(crate) fn new() -> Kicker {
        Kicker {
            last_kick: Instant::now(),
            last_request: None,
        }
    }

    /// A request came in.
    pub(crate) fn request(&mut self) {
        self.last_request = Some(Instant::now());
    }

    /// Kicks the pool of the server listening on `listening` if it is time
    /// to; `streams_open` says whether any stream holds a worker.
    pub(crate) fn tick(&mut self, listening: SocketAddr, streams_open: impl FnOnce() -> bool) {
        let since_kick = self.last_kick.elapsed();
        let recent = self
            .last_request
            .is_some_and(|at| at.elapsed() < KICK_WHILE);
        let kicks = if recent && since_kick >= KICK_EVERY {
            KICK_BURST
        } else if since_kick >= KICK_IDLE && streams_open() {
            1
        } else {
            0
        };
        if kicks > 0 {
            kick(listening, kicks);
            self.last_kick = Instant::now();
        }
    }
}

/// Opens and at once closes `connections` connections to `target`.
fn kick(mut target: SocketAddr, connections: usize) {
    if target.ip().is_unspecified() {
        target.set_ip(match target {
            SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
        });
    }
    for _ in 0..connections {
        if let Err(e) = TcpStream::connect_timeout(&target, KICK_EVERY) {
            log::trace!("kicking the connection pool failed: {e}");
            return;
        }
    }
}
