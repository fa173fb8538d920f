//! Asking the kernel for the state of TCP connections (Linux `sock_diag`,
//! the netlink interface `ss` uses), without holding their descriptors.
//!
//! One request lists every TCP connection of this network namespace whose
//! local port is one of a few, with its addresses and its TCP state. The
//! kernel filters by port itself (a small `inet_diag` bytecode program), so
//! the answer holds only this server's connections. It is how the watch
//! thread (`watch.rs`) tells that a client closed (`CLOSE_WAIT` after its
//! FIN) or reset (the connection is gone from the kernel's tables) while its
//! stream was idle, whether or not `tiny_http`'s reading thread was released,
//! and how it finds connections that never finished their request.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::time::Duration;

use rustix::net::{
    AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType, netlink, recv, send, socket_with,
    sockopt,
};

/// `SOCK_DIAG_BY_FAMILY`, the request and answer message type.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
/// Set on an answer when the tables changed while the kernel walked them.
const NLM_F_DUMP_INTR: u16 = 0x10;
const IPPROTO_TCP: u8 = 6;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
/// `INET_DIAG_REQ_BYTECODE`, the attribute that carries the filter.
const REQ_BYTECODE: u16 = 1;
/// `INET_DIAG_BC_S_GE` and `INET_DIAG_BC_S_LE`: local port comparisons
/// (the only ones every kernel since 2.6 knows).
const BC_S_GE: u8 = 2;
const BC_S_LE: u8 = 3;
/// `INET_DIAG_BC_JMP`: always takes its `no` jump.
const BC_JMP: u8 = 1;
/// Headers: `nlmsghdr`, `inet_diag_req_v2`, `inet_diag_msg`.
const HEADER: usize = 16;
const REQUEST: usize = 56;
const MESSAGE: usize = 72;
/// The most ports one request filters on (a jump in the filter is one byte,
/// and each port takes 16).
pub(crate) const MAX_PORTS: usize = 16;

/// TCP states (`include/net/tcp_states.h`).
pub(crate) const ESTABLISHED: u8 = 1;
#[cfg(test)]
const CLOSE_WAIT: u8 = 8;
const LISTEN: u8 = 10;
const SYN_RECV: u8 = 3;
const TIME_WAIT: u8 = 6;
const NEW_SYN_RECV: u8 = 12;

/// One TCP connection as the kernel reports it. Addresses are as the
/// kernel keeps them: a v4 client of a dual-stack listener has a v4-mapped
/// v6 address (see [`canonical`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Connection {
    pub(crate) local: SocketAddr,
    pub(crate) remote: SocketAddr,
    pub(crate) state: u8,
}

/// A netlink socket for `sock_diag` requests.
pub(crate) struct SockDiag {
    socket: OwnedFd,
    sequence: u32,
    buffer: Vec<u8>,
}

impl SockDiag {
    /// Opens the netlink socket. Fails where the kernel has no `sock_diag`
    /// (not Linux, or a sandbox that refuses netlink sockets).
    pub(crate) fn open() -> io::Result<SockDiag> {
        let socket = socket_with(
            AddressFamily::NETLINK,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            Some(netlink::SOCK_DIAG),
        )?;
        // The kernel answers at once; the bound only guards against a
        // kernel that never does.
        sockopt::set_socket_timeout(
            &socket,
            sockopt::Timeout::Recv,
            Some(Duration::from_secs(2)),
        )?;
        Ok(SockDiag {
            socket,
            sequence: 0,
            buffer: vec![0; 64 * 1024],
        })
    }

    /// Every TCP connection (not listening sockets, not `TIME_WAIT`) whose
    /// local port is one of `ports`, or every one when `ports` is empty, of
    /// both address families, appended to `out`. `Ok(false)` when the
    /// kernel said its tables changed during the walk, so a connection may
    /// be missing from the list (the ones listed are real).
    pub(crate) fn connections(
        &mut self,
        ports: &[u16],
        out: &mut Vec<Connection>,
    ) -> io::Result<bool> {
        let mut consistent = true;
        for family in [AF_INET, AF_INET6] {
            consistent &= self.dump(family, ports, out)?;
        }
        Ok(consistent)
    }

    /// The TCP state of the connection between `local` and `remote` (as
    /// the socket reports its addresses). Once the kernel no longer has the
    /// connection (it was reset, or closed and gone) the answer is `None`,
    /// or the state of the listening socket the lookup falls back to
    /// (`LISTEN`): anything but [`ESTABLISHED`] means the connection is
    /// not open both ways. One lookup in the kernel's hash table: cheap.
    pub(crate) fn state(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> io::Result<Option<u8>> {
        self.sequence = self.sequence.wrapping_add(1);
        let family = match local {
            SocketAddr::V4(_) => AF_INET,
            SocketAddr::V6(_) => AF_INET6,
        };
        let mut request =
            header_and_request(family, HEADER + REQUEST, NLM_F_REQUEST, self.sequence);
        // inet_diag_sockid: ports, addresses, interface, and "no cookie".
        let id = &mut request[HEADER + 8..];
        id[0..2].copy_from_slice(&local.port().to_be_bytes());
        id[2..4].copy_from_slice(&remote.port().to_be_bytes());
        write_address(&mut id[4..20], local);
        write_address(&mut id[20..36], remote);
        id[40..48].copy_from_slice(&[0xff; 8]);
        send(&self.socket, &request, SendFlags::empty())?;
        loop {
            let (_, received) = recv(&self.socket, &mut self.buffer[..], RecvFlags::empty())?;
            let bytes = &self.buffer[..received];
            if bytes.len() < HEADER || u32_at(bytes, 8) != self.sequence {
                continue;
            }
            let length = (u32_at(bytes, 0) as usize).min(bytes.len());
            return match u16_at(bytes, 4) {
                NLMSG_ERROR => match error_code(&bytes[..length]) {
                    code if code == rustix::io::Errno::NOENT.raw_os_error() => Ok(None),
                    code => Err(io::Error::from_raw_os_error(code)),
                },
                SOCK_DIAG_BY_FAMILY if length >= HEADER + MESSAGE => {
                    Ok(parse(&bytes[HEADER..length]).map(|connection| connection.state))
                }
                _ => Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "sock_diag: an unexpected answer",
                )),
            };
        }
    }

    fn dump(&mut self, family: u8, ports: &[u16], out: &mut Vec<Connection>) -> io::Result<bool> {
        self.sequence = self.sequence.wrapping_add(1);
        let request = request(family, ports, self.sequence);
        send(&self.socket, &request, SendFlags::empty())?;
        let mut consistent = true;
        loop {
            let (_, received) = recv(&self.socket, &mut self.buffer[..], RecvFlags::empty())?;
            let mut at = 0;
            while at + HEADER <= received {
                let bytes = &self.buffer[at..received];
                let length = u32_at(bytes, 0) as usize;
                let kind = u16_at(bytes, 4);
                let flags = u16_at(bytes, 6);
                let sequence = u32_at(bytes, 8);
                if length < HEADER || length > bytes.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "sock_diag: a truncated answer",
                    ));
                }
                at += (length + 3) & !3;
                if sequence != self.sequence {
                    continue;
                }
                if flags & NLM_F_DUMP_INTR != 0 {
                    consistent = false;
                }
                match kind {
                    NLMSG_DONE => return Ok(consistent),
                    NLMSG_ERROR => {
                        return Err(io::Error::from_raw_os_error(error_code(&bytes[..length])));
                    }
                    SOCK_DIAG_BY_FAMILY if length >= HEADER + MESSAGE => {
                        if let Some(connection) = parse(&bytes[HEADER..length]) {
                            out.push(connection);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

/// A dump request for TCP connections of `family`, filtered on the local
/// ports when there are any.
fn request(family: u8, ports: &[u16], sequence: u32) -> Vec<u8> {
    let ports = &ports[..ports.len().min(MAX_PORTS)];
    let filter = bytecode(ports);
    let attribute = if filter.is_empty() {
        0
    } else {
        4 + filter.len()
    };
    let length = HEADER + REQUEST + attribute;
    let mut out = header_and_request(family, length, NLM_F_REQUEST | NLM_F_DUMP, sequence);
    if !filter.is_empty() {
        out.extend_from_slice(&(attribute as u16).to_ne_bytes());
        out.extend_from_slice(&REQ_BYTECODE.to_ne_bytes());
        out.extend_from_slice(&filter);
    }
    out
}

/// The netlink header and an `inet_diag_req_v2` with an empty socket id,
/// for a message of `length` bytes in all.
fn header_and_request(family: u8, length: usize, flags: u16, sequence: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(length);
    out.extend_from_slice(&(length as u32).to_ne_bytes());
    out.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&sequence.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    // inet_diag_req_v2: family, protocol, extensions, padding, states.
    out.extend_from_slice(&[family, IPPROTO_TCP, 0, 0]);
    let states: u32 = (0..16u8)
        .filter(|state| ![LISTEN, SYN_RECV, TIME_WAIT, NEW_SYN_RECV].contains(state))
        .map(|state| 1u32 << state)
        .sum();
    out.extend_from_slice(&states.to_ne_bytes());
    // inet_diag_sockid: empty (a dump), or filled in by the caller.
    out.extend_from_slice(&[0; 48]);
    out
}

/// Writes `addr`'s address as `inet_diag_sockid` holds it (four 32-bit
/// words in network order; a v4 address in the first).
fn write_address(out: &mut [u8], addr: SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => out[..4].copy_from_slice(&ip.octets()),
        IpAddr::V6(ip) => out.copy_from_slice(&ip.octets()),
    }
}

/// The error an `NLMSG_ERROR` answer carries, as a positive errno.
fn error_code(message: &[u8]) -> i32 {
    message
        .get(HEADER..HEADER + 4)
        .and_then(|bytes| bytes.try_into().ok())
        .map_or(0, |bytes| i32::from_ne_bytes(bytes).saturating_neg())
}

/// The filter "local port is one of `ports`", laid out as `ss` lays out
/// `or`: for each port a `>= port` and a `<= port` comparison (each an
/// operation `code, yes, no` and one holding the port in `no`); a miss
/// jumps to the next port's comparisons (past the end, which rejects, for
/// the last port); between two ports an unconditional jump to the end,
/// which accepts. The kernel checks that every jump lands on an operation
/// reached by the chain of `yes` steps, hence the jumps in between.
fn bytecode(ports: &[u16]) -> Vec<u8> {
    const COMPARE: u16 = 8;
    const JUMP: u16 = 4;
    let count = ports.len() as u16;
    let total = (2 * COMPARE + JUMP) * count - JUMP.min(count * JUMP);
    let mut out = Vec::with_capacity(total as usize);
    for (index, &port) in ports.iter().enumerate() {
        let remaining = total - (2 * COMPARE + JUMP) * index as u16;
        let last = index + 1 == ports.len();
        let (greater_no, less_no) = if last {
            (remaining + 4, remaining - COMPARE + 4)
        } else {
            (2 * COMPARE + JUMP, COMPARE + JUMP)
        };
        for (code, no) in [(BC_S_GE, greater_no), (BC_S_LE, less_no)] {
            out.extend_from_slice(&[code, COMPARE as u8]);
            out.extend_from_slice(&no.to_ne_bytes());
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&port.to_ne_bytes());
        }
        if !last {
            out.extend_from_slice(&[BC_JMP, JUMP as u8]);
            out.extend_from_slice(&(remaining - 2 * COMPARE).to_ne_bytes());
        }
    }
    out
}

/// Reads one `inet_diag_msg`.
fn parse(message: &[u8]) -> Option<Connection> {
    let family = message[0];
    let state = message[1];
    let local_port = u16::from_be_bytes([message[4], message[5]]);
    let remote_port = u16::from_be_bytes([message[6], message[7]]);
    let address = |at: usize| -> Option<IpAddr> {
        let bytes = &message[at..at + 16];
        match family {
            AF_INET => Some(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]).into()),
            AF_INET6 => {
                let octets: [u8; 16] = bytes.try_into().ok()?;
                Some(Ipv6Addr::from(octets).into())
            }
            _ => None,
        }
    };
    Some(Connection {
        local: SocketAddr::new(address(8)?, local_port),
        remote: SocketAddr::new(address(24)?, remote_port),
        state,
    })
}

/// `addr` with a v4-mapped v6 address written as v4, so that the kernel's
/// and `tiny_http`'s spelling of one client compare equal.
pub(crate) fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn lists_this_processs_connections_by_port_and_state() {
        let Ok(mut diag) = SockDiag::open() else {
            eprintln!("no sock_diag here; skipped");
            return;
        };
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let other = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server_side, _) = listener.accept().expect("accept");
        let _unrelated = TcpStream::connect(other.local_addr().expect("addr")).expect("connect");
        let mut found = Vec::new();
        diag.connections(&[port], &mut found).expect("dump");
        assert_eq!(
            found,
            [Connection {
                local: server_side.local_addr().expect("addr"),
                remote: client.local_addr().expect("addr"),
                state: ESTABLISHED,
            }]
        );
        // Two ports at once, and no filter.
        let mut both = Vec::new();
        let other_port = other.local_addr().expect("addr").port();
        diag.connections(&[other_port, port], &mut both)
            .expect("dump");
        // A connection waiting in the accept queue is established too.
        let mut local_ports: Vec<u16> = both.iter().map(|c| c.local.port()).collect();
        local_ports.sort_unstable();
        let mut expected = vec![port, other_port];
        expected.sort_unstable();
        assert_eq!(local_ports, expected, "{both:?}");
        let mut all = Vec::new();
        diag.connections(&[], &mut all).expect("dump");
        assert!(all.len() >= 3, "{all:?}");

        let server_local = server_side.local_addr().expect("addr");
        let client_local = client.local_addr().expect("addr");
        assert_eq!(
            diag.state(server_local, client_local).expect("lookup"),
            Some(ESTABLISHED)
        );

        // The client closes: the server's side is in CLOSE_WAIT.
        drop(client);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let mut now = Vec::new();
            diag.connections(&[port], &mut now).expect("dump");
            if now.iter().any(|c| c.state == CLOSE_WAIT) {
                assert_eq!(
                    diag.state(server_local, client_local).expect("lookup"),
                    Some(CLOSE_WAIT)
                );
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{now:?}");
            std::thread::yield_now();
        }
    }

    #[test]
    fn a_reset_connection_is_gone() {
        let Ok(mut diag) = SockDiag::open() else {
            eprintln!("no sock_diag here; skipped");
            return;
        };
        let listener = TcpListener::bind("[::]:0")
            .or_else(|_| TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let (server_side, _) = listener.accept().expect("accept");
        let local = server_side.local_addr().expect("addr");
        let remote = server_side.peer_addr().expect("addr");
        assert_eq!(
            diag.state(local, remote).expect("lookup"),
            Some(ESTABLISHED)
        );
        // Linger 0: close sends a reset.
        socket2::SockRef::from(&client)
            .set_linger(Some(Duration::ZERO))
            .expect("linger");
        drop(client);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        // Once the connection is gone the kernel's lookup falls back to the
        // listening socket: anything but ESTABLISHED.
        while let Some(ESTABLISHED) = diag.state(local, remote).expect("lookup") {
            assert!(std::time::Instant::now() < deadline, "{local} {remote}");
            std::thread::yield_now();
        }
        assert_eq!(canonical(remote).ip(), IpAddr::from(Ipv4Addr::LOCALHOST));
    }

    #[test]
    fn the_filter_accepts_exactly_its_ports() {
        // The bytecode run as the kernel runs it (`inet_diag_bc_run`).
        fn run(code: &[u8], port: u16) -> bool {
            let mut at = 0usize;
            let mut len = code.len() as i64;
            while len > 0 {
                let op = &code[at..];
                let yes = op[1] as usize;
                let no = u16::from_ne_bytes([op[2], op[3]]) as usize;
                let value = || u16::from_ne_bytes([op[6], op[7]]);
                let matched = match op[0] {
                    BC_JMP => false,
                    BC_S_GE => port >= value(),
                    BC_S_LE => port <= value(),
                    other => panic!("op {other}"),
                };
                let jump = if matched { yes } else { no };
                len -= jump as i64;
                at += jump;
            }
            len == 0
        }
        for ports in [&[80u16][..], &[80, 443], &[1, 65535, 8080], &[7; MAX_PORTS]] {
            let code = bytecode(ports);
            for port in [0u16, 1, 79, 80, 81, 443, 8080, 65535] {
                assert_eq!(run(&code, port), ports.contains(&port), "{ports:?} {port}");
            }
        }
    }
}
