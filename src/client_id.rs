//! `ClientId`: how the hub, the hooks and the caller name a client.

use std::fmt;

/// An id the hub gives each client (stream or subscription), unique among
/// connected clients. The hub numbers clients from 1; a connect hook or a
/// subscriber may choose an id of its own instead
/// ([`Decision::id`](crate::Decision::id)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub(crate) u64);

impl ClientId {
    /// An id of the caller's choosing. Ids the hub picks count up from 1,
    /// so ids chosen from the top half of the range (`1 << 63` and up)
    /// never collide with them.
    pub fn new(id: u64) -> ClientId {
        ClientId(id)
    }

    /// The id as a number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
