//! `Shared`: the part of a hub that its threads share (the writer threads,
//! the hub thread, subscriptions, the acceptor): the channels to the hub
//! thread, the counters, the list of clients, the open streams and the
//! frozen settings.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::Sender;

use crate::client_id::ClientId;
use crate::config::Config;
use crate::counters::{ClientCounters, Counters};
use crate::messages::{AddSenders, Removal};
#[cfg(feature = "redis")]
use crate::redis_link::replay::Replayer;
use crate::sync::lock;
use crate::tiny_http_fixes::pipelined::OpenStreams;

/// What the threads of a hub share. It holds no handle to the `Hub`, so no
/// thread the hub started keeps the hub alive.
pub(crate) struct Shared {
    /// The ways to the hub thread for a registration.
    pub(crate) adds: AddSenders,
    pub(crate) remove_tx: Sender<Removal>,
    pub(crate) counters: Counters,
    /// Every registered client's counters. Entered by the hub thread, or by
    /// a client that does not wait for its answer (`enter`); removed by the
    /// hub thread, or by a client whose hub stopped (`leave`); anyone reads.
    pub(crate) clients: Mutex<HashMap<ClientId, Arc<ClientCounters>>>,
    /// Set once shutdown begins.
    pub(crate) closing: AtomicBool,
    next_id: AtomicU64,
    pub(crate) config: Config,
    /// Open event streams by the client's address and port.
    pub(crate) streams: Arc<OpenStreams>,
    /// Replay from the shared Redis Stream, when the hub has one.
    #[cfg(feature = "redis")]
    pub(crate) replayer: Option<Replayer>,
}

impl Shared {
    pub(crate) fn new(adds: AddSenders, remove_tx: Sender<Removal>, config: Config) -> Shared {
        Shared {
            streams: Arc::new(OpenStreams::new(remove_tx.clone())),
            adds,
            remove_tx,
            counters: Counters::default(),
            clients: Mutex::new(HashMap::new()),
            closing: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            config,
            #[cfg(feature = "redis")]
            replayer: None,
        }
    }

    /// Shares the stream of a Redis server, as node `node` (feature
    /// `redis`): client ids start at `node << 40`, so the ids of processes
    /// with different node numbers never meet (2^40 clients per process).
    #[cfg(feature = "redis")]
    pub(crate) fn with_redis(mut self, replayer: Replayer, node: u64) -> Shared {
        self.replayer = Some(replayer);
        self.next_id = AtomicU64::new(((node & 0x7f_ffff) << 40) | 1);
        self
    }

    /// Publishes how many clients are connected: those in `clients`, the
    /// map the caller holds locked (which holds, besides the hub thread's
    /// clients, those entered but not yet taken by it).
    pub(crate) fn count_clients(&self, clients: &HashMap<ClientId, Arc<ClientCounters>>) {
        self.counters
            .connected
            .store(clients.len(), Ordering::Relaxed);
    }

    /// Enters `id` with `counters` in the map of clients and counts it;
    /// false when the id is in use. The hub thread enters the clients it
    /// answers; a client that does not wait for an answer enters itself.
    pub(crate) fn enter(&self, id: ClientId, counters: &Arc<ClientCounters>) -> bool {
        let mut clients = lock(&self.clients);
        match clients.entry(id) {
            Entry::Occupied(_) => false,
            Entry::Vacant(entry) => {
                entry.insert(Arc::clone(counters));
                self.count_clients(&clients);
                true
            }
        }
    }

    /// Takes back what [`enter`](Shared::enter) entered, if the id is still
    /// that client's (not a newer client's with the same id).
    pub(crate) fn leave(&self, id: ClientId, counters: &Arc<ClientCounters>) {
        let mut clients = lock(&self.clients);
        if clients
            .get(&id)
            .is_some_and(|entered| Arc::ptr_eq(entered, counters))
        {
            clients.remove(&id);
            self.count_clients(&clients);
        }
    }

    /// An id no client the hub numbered has had.
    pub(crate) fn next_id(&self) -> ClientId {
        ClientId(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// True once shutdown has begun.
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }
}
