//! Letting go of the reading side of a connection that carries an event
//! stream.
//!
//! `tiny_http` 0.12 keeps, for every open connection, one pool thread blocked
//! reading the connection's next request, and a duplicate of its socket for
//! that thread. Behind an event stream no next request is answered before the
//! stream ends, so for a server of streams that is half its threads and half
//! its descriptors spent waiting. `tiny_http` gives no handle on the socket to
//! stop it. On Linux (5.6 and later) a process may copy one of its own
//! descriptors by number (`pidfd_getfd`), so when a stream is accepted
//! ([`Hub::serve`](crate::Hub::serve)) its connection is looked for among the
//! process's descriptors, by the client's address and port, and the socket's
//! reading side is shut down. `tiny_http`'s thread then reads end-of-file,
//! closes its copy and goes back to its pool; the writer keeps the other.
//!
//! Only the stream's own connection is touched: a socket qualifies when its
//! peer is the client's address and port and its local address is the one
//! the stream came in on (the listening socket's port, and its address
//! unless it listens on all of them). When the local address is not known
//! (a request handed to [`Hub::serve`](crate::Hub::serve) from a
//! `tiny_http` server of the caller's), the sockets connected to the
//! client's address and port must all be one connection (one local
//! address); if the process holds another connection to that same peer
//! (say, to a database that happens to have the client's address and port),
//! nothing is touched.
//!
//! Cost: one descriptor, a pidfd of our own process, held while any
//! released stream is open (closed with the last), so that a connect burst
//! opens it once. The descriptors of released streams are skipped without
//! a system call. A stream whose connection the last full look did not see starts a
//! new one, which copies and looks at every other open descriptor (three
//! system calls each) up to the highest in use, at most 65,536 of them. A
//! program that keeps thousands of other descriptors open pays that per
//! such stream, on the thread that calls [`Hub::serve`](crate::Hub::serve).
//!
//! Setting the environment variable `SSE_SERVER_NO_RELEASE` (to anything)
//! turns the release off, as if `pidfd_getfd` were refused.
//!
//! The search is bounded and best-effort: when it cannot run (an older
//! kernel, a seccomp filter that refuses `pidfd_getfd`, another system) or
//! does not find the socket, the stream works as before, with two threads and
//! two descriptors.

/// What [`release_reader`] leaves behind: while it lives, the descriptor
/// numbers of the stream's socket are known, and later searches skip them.
/// Drop it just before the stream's writer (which holds the last of those
/// descriptors): a number is not reused while it is open.
#[derive(Debug)]
pub(crate) struct Released {
    #[cfg(target_os = "linux")]
    token: u64,
    /// The numbers of the stream's descriptors when it was released.
    #[cfg(target_os = "linux")]
    numbers: Vec<i32>,
    /// The connection's local address, as the socket reports it.
    pub(crate) local: std::net::SocketAddr,
}

/// The environment variable that turns the release off, so that every
/// stream keeps `tiny_http`'s reading thread: to test the path taken where
/// `pidfd_getfd` is refused, or to rule the release out when looking for a
/// problem.
pub(crate) const NO_RELEASE: &str = "SSE_SERVER_NO_RELEASE";

/// Whether [`NO_RELEASE`] is set (to anything).
fn refused_by_environment() -> bool {
    std::env::var_os(NO_RELEASE).is_some()
}

/// Whether a socket whose local address is `actual` is the connection that
/// came in on `expected` (whose address may be unspecified: all of them).
pub(crate) fn local_matches(expected: std::net::SocketAddr, actual: std::net::SocketAddr) -> bool {
    expected.port() == actual.port()
        && (expected.ip().is_unspecified()
            || expected.ip().to_canonical() == actual.ip().to_canonical())
}

/// Whether streams can let go of `tiny_http`'s reading side here (so each
/// costs one thread and one descriptor instead of two).
#[cfg(not(target_os = "linux"))]
pub(crate) fn available() -> bool {
    false
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn release_reader(
    _peer: std::net::SocketAddr,
    _local: Option<std::net::SocketAddr>,
) -> Option<(Released, socket2::Socket)> {
    None
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn close_connections(
    connections: &[(std::net::SocketAddr, std::net::SocketAddr)],
) -> Vec<bool> {
    vec![false; connections.len()]
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn shut(
    _peer: std::net::SocketAddr,
    _local: Option<std::net::SocketAddr>,
    _how: std::net::Shutdown,
) -> bool {
    false
}

#[cfg(target_os = "linux")]
pub(crate) use linux::{available, close_connections, release_reader, shut};

#[cfg(target_os = "linux")]
mod linux {
    use std::collections::HashMap;
    use std::net::{Shutdown, SocketAddr};
    use std::os::fd::OwnedFd;
    use std::sync::Mutex;

    use rustix::io::Errno;
    use rustix::process::{PidfdFlags, PidfdGetfdFlags, getpid, pidfd_getfd, pidfd_open};
    use socket2::Socket;

    use super::{Released, local_matches};
    use crate::sync::lock;

    /// A full look gives up after this many descriptors copied and looked at
    /// (the process's other descriptors: files, listeners, connections not
    /// yet streaming). Descriptors of released streams are skipped without a
    /// copy.
    const MAX_PROBES: usize = 1 << 16;

    /// A search ends after this many unused numbers in a row past the
    /// highest number known to be in use.
    const GAP: usize = 64;

    struct Registry {
        /// Our own process, for `pidfd_getfd`: opened when a release runs,
        /// kept while a released stream lives (one descriptor among theirs,
        /// and a connect burst opens it once instead of once a stream),
        /// closed with the last of them.
        pidfd: Option<OwnedFd>,
        /// False once `pidfd_open` or `pidfd_getfd` proved unavailable.
        available: bool,
        /// Descriptor numbers of the sockets of released streams.
        owned: HashMap<i32, Owner>,
        /// What the last full look saw: the numbers of each peer's
        /// connected sockets (not those of released streams).
        seen: HashMap<SocketAddr, Vec<i32>>,
        next_token: u64,
    }

    struct Owner {
        token: u64,
        peer: SocketAddr,
        /// The number of the stream's other descriptor, if it was found.
        sibling: Option<i32>,
        /// Known to be the stream's last descriptor (the other one, which
        /// `tiny_http`'s reading thread closes, has been seen gone), so a
        /// search skips it without looking. Until then a search looks: the
        /// number may have been closed and reused.
        settled: bool,
    }

    static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

    /// What a look at one descriptor number found.
    enum Probe {
        /// No descriptor by that number.
        Free,
        /// A socket connected to this peer (`None`: not a connected socket,
        /// or not a socket).
        Open(Option<SocketAddr>),
        /// The search cannot go on (no descriptor free for the copy, ...).
        Stop,
        /// `pidfd_getfd` is refused here; never try again.
        Unavailable,
    }

    /// The highest descriptor number this process has open, from
    /// `/proc/self/fd`.
    fn highest_open() -> Option<i32> {
        std::fs::read_dir("/proc/self/fd")
            .ok()?
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
            .max()
    }

    /// A copy of this process's descriptor `number`, and the address of
    /// the peer it is connected to (`None`: not a connected socket).
    fn copy(pidfd: &OwnedFd, number: i32) -> Result<(Socket, Option<SocketAddr>), Errno> {
        let socket = Socket::from(pidfd_getfd(pidfd, number, PidfdGetfdFlags::empty())?);
        let peer = socket.peer_addr().ok().and_then(|a| a.as_socket());
        Ok((socket, peer))
    }

    /// Of the descriptors `numbers`, those that are the connection between
    /// `peer` and `local` (any local address when `None`, provided all of
    /// them are one connection), with a copy of one of them. `None` when
    /// there is none, or it is not clear which it is.
    fn exact(
        pidfd: &OwnedFd,
        numbers: &[i32],
        peer: SocketAddr,
        local: Option<SocketAddr>,
    ) -> Option<(Vec<i32>, Socket, SocketAddr)> {
        let mut found: Vec<i32> = Vec::new();
        let mut chosen: Option<(Socket, SocketAddr)> = None;
        for &number in numbers {
            let Ok((socket, Some(copied_peer))) = copy(pidfd, number) else {
                continue;
            };
            let Some(copied_local) = socket.local_addr().ok().and_then(|a| a.as_socket()) else {
                continue;
            };
            if copied_peer != peer || local.is_some_and(|local| !local_matches(local, copied_local))
            {
                continue;
            }
            match &chosen {
                Some((_, first_local)) if *first_local != copied_local => {
                    log::debug!(
                        "two connections to {peer} ({first_local} and {copied_local}); \
                         neither is touched"
                    );
                    return None;
                }
                Some(_) => {}
                None => chosen = Some((socket, copied_local)),
            }
            found.push(number);
        }
        let (socket, local) = chosen?;
        Some((found, socket, local))
    }

    impl Registry {
        /// Closes our pidfd when no released stream is left to keep it for.
        fn close_pidfd_if_idle(&mut self) {
            if self.owned.is_empty() {
                self.pidfd = None;
            }
        }

        fn probe(&self, number: i32) -> Probe {
            let Some(pidfd) = &self.pidfd else {
                return Probe::Unavailable;
            };
            match copy(pidfd, number) {
                Ok((_, peer)) => Probe::Open(peer),
                Err(Errno::BADF) => Probe::Free,
                Err(Errno::NOSYS | Errno::PERM | Errno::ACCESS) => Probe::Unavailable,
                Err(_) => Probe::Stop,
            }
        }

        /// Forgets `number` as one of a stream's descriptors; the stream's
        /// other number, if known, is then its last one.
        fn forget(&mut self, number: i32) {
            if let Some(gone) = self.owned.remove(&number)
                && let Some(sibling) = gone.sibling
                && let Some(owner) = self.owned.get_mut(&sibling)
                && owner.token == gone.token
            {
                owner.settled = true;
            }
        }

        /// The descriptors of the connection between `peer` and `local`
        /// (`tiny_http` holds two), with a copy of one (see [`exact`]): from
        /// what the last full look saw when that is still right, or else
        /// from a new one. `Ok(None)` when there is no such connection, or
        /// it is not clear which it is.
        fn locate(
            &mut self,
            peer: SocketAddr,
            local: Option<SocketAddr>,
        ) -> Result<Option<(Vec<i32>, Socket, SocketAddr)>, Probe> {
            // `exact` copies each number and checks it is still a socket
            // connected to `peer` (a number may have been closed and
            // reused since the look).
            if let Some(mut numbers) = self.seen.remove(&peer) {
                numbers.retain(|number| !self.owned.contains_key(number));
                if let Some(pidfd) = &self.pidfd
                    && let Some(exact) = exact(pidfd, &numbers, peer, local)
                {
                    return Ok(Some(exact));
                }
            }
            // A look stops after a run of free numbers; only when that
            // missed the connection does one go on to the highest number
            // open (reading `/proc/self/fd` costs as much as the look, so
            // a connect burst would pay it for every stream).
            for thorough in [false, true] {
                self.look_at_all(thorough)?;
                let found = self.seen.remove(&peer).unwrap_or_default();
                if let Some(pidfd) = &self.pidfd
                    && let Some(exact) = exact(pidfd, &found, peer, local)
                {
                    return Ok(Some(exact));
                }
            }
            Ok(None)
        }

        /// Looks at every descriptor number in use but those known to be a
        /// released stream's: notes which peer each connected socket has
        /// (in `seen`), and forgets numbers of released streams that have
        /// been closed since.
        fn look_at_all(&mut self, thorough: bool) -> Result<(), Probe> {
            self.seen.clear();
            let mut probes = 0;
            let mut free_run = 0;
            // Until `GAP` free numbers in a row past the highest known; a
            // thorough look on to the highest number open, since a run of
            // free numbers (where many connections closed) can hide the
            // ones above it.
            let mut highest = self.owned.keys().copied().max().unwrap_or(0);
            if thorough {
                highest = highest.max(highest_open().unwrap_or(0));
            }
            let mut number: i32 = 0;
            while (number <= highest || free_run < GAP) && probes < MAX_PROBES {
                let known = self
                    .owned
                    .get(&number)
                    .map(|owner| (owner.settled, owner.peer));
                if matches!(known, Some((true, _))) {
                    free_run = 0;
                    number += 1;
                    continue;
                }
                probes += 1;
                match self.probe(number) {
                    Probe::Free => {
                        free_run += 1;
                        if known.is_some() {
                            self.forget(number);
                        }
                    }
                    Probe::Open(addr) => {
                        free_run = 0;
                        highest = highest.max(number);
                        if let Some((_, owner_peer)) = known
                            && addr != Some(owner_peer)
                        {
                            self.forget(number);
                        }
                        if let Some(addr) = addr
                            && !self.owned.contains_key(&number)
                        {
                            self.seen.entry(addr).or_default().push(number);
                        }
                    }
                    stop @ (Probe::Stop | Probe::Unavailable) => return Err(stop),
                }
                number = number.saturating_add(1);
            }
            Ok(())
        }
    }

    /// Whether streams can let go of `tiny_http`'s reading side here (so
    /// each costs one thread and one descriptor instead of two).
    pub(crate) fn available() -> bool {
        if super::refused_by_environment() {
            return false;
        }
        let Ok(pidfd) = pidfd_open(getpid(), PidfdFlags::empty()) else {
            return false;
        };
        // Any number will do: a copy, or "no such descriptor", shows that
        // the call is allowed.
        matches!(
            pidfd_getfd(&pidfd, 0, PidfdGetfdFlags::empty()),
            Ok(_) | Err(Errno::BADF)
        )
    }

    /// Shuts down the reading side of the connection between `peer` and
    /// `local` (see the module's docs for `None`), so that `tiny_http`'s
    /// thread for that connection lets go of it. Gives back a copy of the
    /// socket besides, for the caller to watch and then drop; `None` when
    /// it could not: see the module's docs.
    pub(crate) fn release_reader(
        peer: SocketAddr,
        local: Option<SocketAddr>,
    ) -> Option<(Released, Socket)> {
        with_registry(|registry| registry.release(peer, local))
    }

    /// Shuts down one side (`how`) or both of the connection between
    /// `peer` and `local` (see the module's docs for `None`): its reading
    /// side, so that what is left of a request's body reads as ended at
    /// once; both, so that what `tiny_http` would still answer on it fails
    /// at once. Says whether it could.
    pub(crate) fn shut(peer: SocketAddr, local: Option<SocketAddr>, how: Shutdown) -> bool {
        with_registry(|registry| {
            let (_, socket, _) = registry.locate(peer, local).ok()??;
            Some(socket.shutdown(how).is_ok())
        })
        .unwrap_or(false)
    }

    /// Closes each connection `(peer, local)` (both directions), so that
    /// `tiny_http`'s thread reading it sees the end and lets go of it.
    /// Says for each whether it could (see the module's docs).
    pub(crate) fn close_connections(connections: &[(SocketAddr, SocketAddr)]) -> Vec<bool> {
        let mut closed = vec![false; connections.len()];
        // Nothing to close: no `pidfd_open` (each list of the watch thread
        // calls this, and a descriptor taken for nothing can be the one a
        // process at its limit needed).
        if connections.is_empty() {
            return closed;
        }
        with_registry(|registry| {
            for (done, &(peer, local)) in closed.iter_mut().zip(connections) {
                if let Ok(Some((_, socket, _))) = registry.locate(peer, Some(local)) {
                    *done = socket.shutdown(Shutdown::Both).is_ok();
                }
            }
            Some(())
        });
        closed
    }

    /// Runs `work` with the registry and our own process's pidfd open.
    fn with_registry<T>(work: impl FnOnce(&mut Registry) -> Option<T>) -> Option<T> {
        let mut guard = lock(&REGISTRY);
        let registry = guard.get_or_insert_with(|| Registry {
            pidfd: None,
            available: !super::refused_by_environment(),
            owned: HashMap::new(),
            seen: HashMap::new(),
            next_token: 0,
        });
        if !registry.available {
            return None;
        }
        if registry.pidfd.is_none() {
            match pidfd_open(getpid(), PidfdFlags::empty()) {
                Ok(pidfd) => registry.pidfd = Some(pidfd),
                Err(e) => {
                    log::debug!("pidfd_open: {e}; streams keep tiny_http's reader");
                    registry.available = false;
                    return None;
                }
            }
        }
        let done = work(registry);
        registry.close_pidfd_if_idle();
        done
    }

    impl Registry {
        /// Finds the socket connected to `peer` and shuts down its reading
        /// side; `self.pidfd` is open.
        fn release(
            &mut self,
            peer: SocketAddr,
            local: Option<SocketAddr>,
        ) -> Option<(Released, Socket)> {
            // The copy that is shut down is of this connection's socket (a
            // number may have been closed and reused since it was looked
            // at), and of no other connection.
            let (found, socket, local) = match self.locate(peer, local) {
                Ok(found) => found?,
                Err(Probe::Unavailable) => {
                    log::debug!("pidfd_getfd is not available; streams keep tiny_http's reader");
                    self.available = false;
                    return None;
                }
                Err(_) => return None,
            };
            socket.shutdown(Shutdown::Read).ok()?;
            let token = self.next_token;
            self.next_token += 1;
            for &number in &found {
                let owner = Owner {
                    token,
                    peer,
                    sibling: found.iter().copied().find(|&other| other != number),
                    settled: false,
                };
                self.owned.insert(number, owner);
            }
            let released = Released {
                token,
                numbers: found,
                local,
            };
            Some((released, socket))
        }
    }

    impl Drop for Released {
        fn drop(&mut self) {
            if let Some(registry) = lock(&REGISTRY).as_mut() {
                for number in &self.numbers {
                    if registry
                        .owned
                        .get(number)
                        .is_some_and(|owner| owner.token == self.token)
                    {
                        registry.owned.remove(number);
                    }
                }
                registry.close_pidfd_if_idle();
            }
        }
    }
}
