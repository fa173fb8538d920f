//! Several processes, one stream (feature `redis`): the link between a hub
//! and a Redis Stream.
//!
//! * Publishing appends the event to the stream (`append.rs`: one thread
//!   per hub that owns the connection and sends what waits in one round
//!   trip).
//! * One reader thread per hub follows the stream with `XREAD BLOCK` from
//!   the last id it has seen, and hands each entry to the hub thread
//!   (`read.rs`): every process fans out the same events in the same order.
//! * A client that reconnects with a `Last-Event-ID` is replayed from the
//!   stream on its own thread (`replay.rs`), then joins the live events
//!   where its replay ended (the hub thread's `ResumeFrom::After`).
//!
//! A synchronous `redis` connection never reconnects by itself: each thread
//! here does, with backoff and jitter, and the link's state says whether
//! both connections are up.

pub(crate) mod append;
pub(crate) mod connection;
pub(crate) mod entry;
pub(crate) mod link;
pub(crate) mod read;
pub(crate) mod replay;

/// The largest count Redis takes (`MAXLEN`, `COUNT`): it reads them as
/// signed 64-bit integers, and refuses a larger one with "value is not an
/// integer or out of range".
pub(crate) const LARGEST_COUNT: usize = if usize::BITS < 64 {
    usize::MAX
} else {
    i64::MAX as usize
};
