//! Workarounds for `tiny_http` 0.12, in one place: the day `tiny_http`
//! fixes one, one module here shrinks or goes.
//!
//! | defect in `tiny_http` 0.12 | upstream | how it is worked around | proved by |
//! |---|---|---|---|
//! | Behind a response that never ends (an event stream), a request the client pipelined waits for that response, and answering or dropping it blocks until then. | none found | The acceptor and `Hub::serve` park such requests with the stream and drop them when it ends; more than 8 end the stream ([`pipelined`]). | `tests/bad_input.rs` (the two `pipelined` tests) |
//! | A pool thread stays blocked reading every open connection, on a copy of the socket, even once its response is an endless stream: two threads and two descriptors per stream, and no way to stop it. | none found | When a stream is accepted its socket is found among the process's descriptors (`pidfd_getfd`, Linux 5.6+) and its reading side shut down, so that thread goes back to the pool ([`release`]). | `tests/release.rs` |
//! | The pool can hand two connections accepted close together to one idle worker; the second then waits until some worker is free, which behind streams may be never. | none found | The acceptor opens and closes a few connections after requests, and one a second while streams are open ([`pool`]). | `tests/connect_burst.rs` |
//! | The accept thread ends on an `accept()` error, and panics silently when it cannot duplicate an accepted socket (out of descriptors). | [tiny-http#195](https://github.com/tiny-http/tiny-http/issues/195) (open), [tiny-http#219](https://github.com/tiny-http/tiny-http/pull/219) (a test, open) | The acceptor watches the thread's copy of the listening socket in `/proc/self/fd` and starts a new server on the same socket ([`accept_thread`], `acceptor.rs`). | `tests/acceptor_restart.rs` |
//! | No deadline for a request head: a connection that sends nothing, or a byte a second, holds a thread and two descriptors for as long as it likes (slowloris). | none found | The watch thread lists the server's connections from the kernel ([`sock_diag`]) and closes those past `request_timeout` through a copy of their socket ([`watch`], [`release`]). | `tests/request_timeout.rs` |
//! | No way to learn that the client of an idle stream left: only a write fails. | none found | The watch thread waits on the released sockets in an epoll set, and looks for the others in the kernel's lists ([`watch`], [`sock_diag`]). | `tests/client_leaves.rs` |
//!
//! "none found": no upstream issue turned up in a search of `tiny-http`'s
//! issue threads (November 2026); each is worth a report.
//!
//! Worked around where this crate answers: a request whose body is not
//! read whole is read on to the declared end when it is dropped (on the
//! thread answering it: the acceptor's, for everything but a stream), so
//! a client that declares a body and never sends it held the acceptor
//! until the request deadline. `http::end_unread_body` shuts the
//! connection's reading side first ([`release`]), proved by
//! `tests/bad_input.rs`. Requests handed to a `fallback` handler are left
//! alone: the handler may read the body.
//!
//! Not worked around:
//!
//! * The same drop allocates what is left of the declared body before it
//!   reads it ([tiny-http#252](https://github.com/tiny-http/tiny-http/issues/252)):
//!   a `Content-Length` larger than the machine can allocate aborts the
//!   process, and one past `isize::MAX` panics the dropping thread. There
//!   is no way around the drop; a proxy with a body limit in front is.
//! * A client that resets right after connecting makes a pool thread
//!   panic (`tiny_http` unwraps the peer's address): harmless with
//!   unwinding, fatal with `panic = "abort"`.
//! * An `HTTP/2.0` (or `HTTP/3.0`) request line makes `tiny_http` 0.12
//!   deadlock the connection's thread, which then holds a thread and two
//!   descriptors until the client leaves (the ignored test in
//!   `tests/bad_input.rs` shows it); put a reverse proxy in front of a
//!   server exposed to such clients.
//!
//! Everything here is a mechanism given what it needs as arguments: the
//! modules know nothing of the hub beyond the open streams ([`pipelined`])
//! and the client counters.

pub(crate) mod accept_thread;
pub(crate) mod pipelined;
pub(crate) mod pool;
pub(crate) mod release;
#[cfg(target_os = "linux")]
pub(crate) mod sock_diag;
pub(crate) mod watch;
