//! The open event streams, by the client's address and port, and the
//! requests a client pipelined behind its stream.
//!
//! `tiny_http` answers a connection's requests in order: answering (or
//! dropping) a request that came in behind a stream blocks until the
//! stream's response is done, which may be never. So such requests are kept
//! here, and dropped (answered `500` by `tiny_http`, after the stream's last
//! chunk) once the stream's writer is done. A client that piles up more
//! than [`MAX_PARKED`] has its stream ended.
//!
//! The same table tells the watch thread which connections carry a stream.
//! Beside it, the count of streams whose writer has not ended (it may still
//! run the disconnect hook once the socket is gone) tells the hub how many
//! are open, for `max_clients` and the stats.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::Sender;

use crate::client_id::ClientId;
use crate::counters::{ClientCounters, Counters};
use crate::messages::Removal;
use crate::sync::lock;

/// The most requests kept behind one stream; past it the stream is ended.
const MAX_PARKED: usize = 8;

/// The open event streams of a hub.
pub(crate) struct OpenStreams {
    /// The streams whose socket is open, by the client's address. A
    /// stream leaves as soon as its socket closes (see
    /// [`ended`](OpenStreams::ended)): a new connection from the same
    /// address and port (a client that reset and came back at once) is
    /// then never taken for it.
    streams: Mutex<HashMap<SocketAddr, OpenStream>>,
    /// Streams whose writer thread has not ended (it may still be running
    /// the disconnect hook after the socket closed): what `max_clients`
    /// counts.
    places: AtomicUsize,
    /// To the hub thread: a stream's client is to leave.
    remove_tx: Sender<Removal>,
}

struct OpenStream {
    /// The client's id, once it is registered.
    client: Option<ClientId>,
    counters: Arc<ClientCounters>,
    /// Requests the client sent on the connection behind its stream.
    parked: Vec<tiny_http::Request>,
}

impl OpenStreams {
    pub(crate) fn new(remove_tx: Sender<Removal>) -> OpenStreams {
        OpenStreams {
            streams: Mutex::new(HashMap::new()),
            places: AtomicUsize::new(0),
            remove_tx,
        }
    }

    /// How many streams are open: started, and their writer not ended.
    pub(crate) fn len(&self) -> usize {
        self.places.load(Ordering::Acquire)
    }

    /// A stream from `remote` starts, its client not yet registered. It
    /// holds a place until [`close`](OpenStreams::close).
    pub(crate) fn open(&self, remote: SocketAddr, counters: Arc<ClientCounters>) {
        let stream = OpenStream {
            client: None,
            counters,
            parked: Vec::new(),
        };
        self.places.fetch_add(1, Ordering::AcqRel);
        // An earlier stream from the same address whose socket has not
        // been seen to close yet is gone (this connection's address could
        // not be taken while it was open): its parked requests are dropped
        // with it.
        let earlier = lock(&self.streams).insert(remote, stream);
        drop(earlier);
    }

    /// The socket of the stream from `remote` whose counters are
    /// `counters` has closed: the requests parked behind it are dropped,
    /// which lets `tiny_http` answer them, and a later connection from the
    /// same address is a new one. A newer stream from the same address is
    /// left alone. Harmless when done already.
    pub(crate) fn ended(&self, remote: SocketAddr, counters: &Arc<ClientCounters>) {
        let mut streams = lock(&self.streams);
        let ours = streams
            .get(&remote)
            .is_some_and(|stream| Arc::ptr_eq(&stream.counters, counters));
        let stream = if ours { streams.remove(&remote) } else { None };
        drop(streams);
        drop(stream);
    }

    /// The writer of the stream from `remote` (counters `counters`) has
    /// ended, or could not start: the stream is [`ended`](OpenStreams::ended)
    /// if it was not, and gives back its place.
    pub(crate) fn close(&self, remote: SocketAddr, counters: &Arc<ClientCounters>) {
        self.ended(remote, counters);
        self.places.fetch_sub(1, Ordering::AcqRel);
    }

    /// Notes which client the stream from `remote` turned out to be.
    pub(crate) fn registered(&self, remote: Option<SocketAddr>, id: ClientId, counters: &Counters) {
        if let Some(remote) = remote
            && let Some(stream) = lock(&self.streams).get_mut(&remote)
        {
            stream.client = Some(id);
            // Requests that came with the GET were parked before the client
            // was known; apply the limit to them now.
            self.evict_if_piled_up(stream, counters);
        }
    }

    /// Keeps `request` aside when it came in on a connection that carries an
    /// open event stream (the client pipelined it behind its `GET`), and
    /// gives it back otherwise. A client that piles up more than a few such
    /// requests has its stream ended, which releases them.
    pub(crate) fn park_if_pipelined(
        &self,
        request: tiny_http::Request,
        counters: &Counters,
    ) -> Option<tiny_http::Request> {
        let Some(remote) = request.remote_addr().copied() else {
            return Some(request);
        };
        let mut streams = lock(&self.streams);
        let Some(stream) = streams.get_mut(&remote) else {
            return Some(request);
        };
        log::debug!(
            "a client sent a request behind its event stream; it waits for the stream to end"
        );
        stream.parked.push(request);
        self.evict_if_piled_up(stream, counters);
        None
    }

    /// Ends a stream whose client sent more than `MAX_PARKED` requests
    /// behind it.
    fn evict_if_piled_up(&self, stream: &OpenStream, counters: &Counters) {
        if stream.parked.len() > MAX_PARKED
            && let Some(id) = stream.client
            && !stream.counters.evicted.swap(true, Ordering::Relaxed)
        {
            counters.evicted.fetch_add(1, Ordering::Relaxed);
            let _ = self.remove_tx.send(Removal {
                id,
                counters: Arc::clone(&stream.counters),
                done: None,
            });
        }
    }

    /// The addresses of the clients of open streams (v4-mapped addresses
    /// written as v4).
    #[cfg(target_os = "linux")]
    pub(crate) fn addresses(&self) -> std::collections::HashSet<SocketAddr> {
        lock(&self.streams)
            .keys()
            .map(|&remote| SocketAddr::new(remote.ip().to_canonical(), remote.port()))
            .collect()
    }

    /// Removes from the hub the client of the stream from `remote` whose
    /// counters are `counters` (not a newer stream from the same address),
    /// if it is registered; one that registers later sees `peer_closed` and
    /// leaves by itself.
    #[cfg(target_os = "linux")]
    pub(crate) fn remove_client(&self, remote: SocketAddr, counters: &Arc<ClientCounters>) {
        let streams = lock(&self.streams);
        if let Some(stream) = streams.get(&remote)
            && Arc::ptr_eq(&stream.counters, counters)
            && let Some(id) = stream.client
        {
            let _ = self.remove_tx.send(Removal {
                id,
                counters: Arc::clone(counters),
                done: None,
            });
        }
    }
}
