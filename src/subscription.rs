//! Subscriptions: clients without a network connection, and the options
//! every client registers with.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};

use crate::client_id::ClientId;
use crate::counters::ClientCounters;
use crate::doorbell::{Doorbell, RingOnDrop, YIELD_CLIENTS, YIELDS};
use crate::error::Error;
use crate::frame::Frame;
use crate::messages::{Joined, Registration, Removal, ResumeFrom};
#[cfg(feature = "redis")]
use crate::redis_link::replay::Fetched;
use crate::shared::Shared;
use crate::stream_id::StreamId;

/// How many times a client that resumes from Redis fetches before it is
/// given the gap event instead (see `Subscription::register`).
const MAX_FETCHES: usize = 4;

/// How long a client whose replay from Redis went further than the hub has
/// read waits for the hub to get there, before it takes the gap event.
const PARKED_PATIENCE: Duration = Duration::from_secs(5);

/// Options for [`Hub::subscribe_with`](crate::Hub::subscribe_with).
///
/// # Examples
///
/// ```
/// use sse_server::{ClientId, Hub, SubscribeOptions};
///
/// let hub = Hub::new()?;
/// let subscription = hub.subscribe_with(
///     SubscribeOptions::new()
///         .topics(["alerts", "metrics"])
///         .id(ClientId::new(1 << 63)),
/// )?;
/// assert_eq!(subscription.id(), ClientId::new(1 << 63));
/// # Ok::<(), sse_server::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct SubscribeOptions {
    pub(crate) topics: Vec<String>,
    pub(crate) last_event_id: Option<String>,
    pub(crate) id: Option<ClientId>,
    /// The counters of a stream's client, made when the stream was
    /// accepted (so the watch thread could share them).
    pub(crate) counters: Option<Arc<ClientCounters>>,
    /// A stream's writer waits on its queue with this bell (see
    /// `doorbell.rs`) instead of the channel's own `recv`.
    pub(crate) bell: Option<Arc<Doorbell>>,
    /// A stream's writer whose `id` the hub numbered (`Shared::next_id`):
    /// it need not wait for the hub thread's answer, even to a replay,
    /// which it writes once the hub has queued it. A subscription waits
    /// for its replay, which is queued when `subscribe_with` returns.
    pub(crate) unanswered: bool,
}

impl SubscribeOptions {
    /// Broadcast events only, no replay, an id the hub picks.
    pub fn new() -> SubscribeOptions {
        SubscribeOptions::default()
    }

    /// Also receive the events published to these topics.
    pub fn topics<I, T>(mut self, topics: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.topics = topics.into_iter().map(Into::into).collect();
        self
    }

    /// First receive the events after this id from the replay history (see
    /// [`HubBuilder::history_events`](crate::HubBuilder::history_events)).
    pub fn last_event_id(mut self, id: impl Into<String>) -> Self {
        self.last_event_id = Some(id.into());
        self
    }

    /// Use this id, which must not belong to a connected client.
    pub fn id(mut self, id: ClientId) -> Self {
        self.id = Some(id);
        self
    }
}

/// A subscription made with [`Hub::subscribe`](crate::Hub::subscribe): a bounded queue of encoded
/// frames. Dropping it unsubscribes.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let hub = sse_server::Hub::builder().history_events(0).build()?;
/// let subscription = hub.subscribe()?;
/// hub.notify("a")?;
/// hub.notify("b")?;
/// let mut bytes = Vec::new();
/// while bytes.len() < b"data: a\n\ndata: b\n\n".len() {
///     let frame = subscription.recv_timeout(Duration::from_secs(5))?.expect("an event");
///     bytes.extend_from_slice(frame.as_bytes());
/// }
/// assert_eq!(bytes, b"data: a\n\ndata: b\n\n");
/// # Ok::<(), sse_server::Error>(())
/// ```
pub struct Subscription {
    id: ClientId,
    receiver: Receiver<Frame>,
    counters: Arc<ClientCounters>,
    shared: Arc<Shared>,
    bell: Option<Arc<Doorbell>>,
    /// Set once `leave` has told the hub.
    left: bool,
}

impl Subscription {
    /// Registers a client with the hub thread and waits for its answer.
    pub(crate) fn register(
        shared: &Arc<Shared>,
        options: SubscribeOptions,
    ) -> Result<Subscription, Error> {
        // The hub thread, the only sender, keeps the queue within
        // `client_buffer` frames (and one more, for the gap event that tells
        // a client it missed events) by looking at its length before each
        // send. An unbounded channel holds its frames in blocks of 31 slots
        // allocated as they fill, where a bounded one allocates every slot
        // up front: about 1.2 KiB for an idle client instead of 3.7 KiB.
        let (queue, receiver) = new_queue();
        let unanswered =
            options.unanswered || (options.id.is_none() && options.last_event_id.is_none());
        let id = options.id.unwrap_or_else(|| shared.next_id());
        let counters = options.counters.unwrap_or_default();
        let bell = options.bell;
        if shared.is_closing() {
            return Err(Error::Closed);
        }
        let topics: Vec<Box<str>> = options
            .topics
            .into_iter()
            .map(String::into_boxed_str)
            .collect();
        let resume = match options.last_event_id {
            None => ResumeFrom::Live,
            Some(last_event_id) => first_resume(shared, last_event_id, id, &topics),
        };
        // A client the hub numbered, with no replay from Redis to join where
        // it ended, is one the hub cannot refuse: it enters its id itself
        // and goes on without waiting for the hub thread's answer (two
        // thread switches less per connection). The hub thread takes the
        // waiting registrations before it numbers an event and before a
        // removal (`HubThread::take_registrations`), so every event
        // published after this returns still reaches the client, and its
        // leaving cannot overtake its joining. An id chosen elsewhere that
        // happens to be in use takes the answered way, and is refused.
        if unanswered && !matches!(resume, ResumeFrom::After { .. }) && shared.enter(id, &counters)
        {
            // With nothing to replay, the hub thread has nothing to do for
            // the client before the next event or removal, which is when it
            // takes the quiet way in: it is not woken for it.
            let way = match resume {
                ResumeFrom::Live => &shared.adds.quiet,
                _ => &shared.adds.waking,
            };
            let registration = Registration {
                id,
                queue,
                counters: Arc::clone(&counters),
                topics,
                resume,
                registered: None,
                bell: RingOnDrop(bell.clone()),
            };
            if way.send(registration).is_err() {
                shared.leave(id, &counters);
                return Err(Error::Closed);
            }
            return Ok(Subscription::joined(shared, id, receiver, counters, bell));
        }
        Subscription::register_answered(
            shared,
            id,
            (queue, receiver),
            counters,
            topics,
            bell,
            resume,
        )
    }

    /// The subscription of a client the hub has taken, or will take
    /// before anything sent after it.
    fn joined(
        shared: &Arc<Shared>,
        id: ClientId,
        receiver: Receiver<Frame>,
        counters: Arc<ClientCounters>,
        bell: Option<Arc<Doorbell>>,
    ) -> Subscription {
        Subscription {
            id,
            receiver,
            counters,
            shared: Arc::clone(shared),
            bell,
            left: false,
        }
    }

    /// The rest of [`register`](Subscription::register), for a client that
    /// waits for the hub thread's answer: out of line, so that a stream's
    /// writer, which seldom comes here, keeps a shallow stack (see
    /// `writer::STACK_SIZE`).
    #[inline(never)]
    fn register_answered(
        shared: &Arc<Shared>,
        id: ClientId,
        (queue, receiver): (Sender<Frame>, Receiver<Frame>),
        counters: Arc<ClientCounters>,
        topics: Vec<Box<str>>,
        bell: Option<Arc<Doorbell>>,
        mut resume: ResumeFrom,
    ) -> Result<Subscription, Error> {
        // With Redis, the hub's window may have moved past where a replay
        // ended before the client got to register: then the client fetches
        // on from there, a few times at most.
        let mut fetches = 1;
        loop {
            let (registered_tx, registered_rx) = crossbeam_channel::bounded(1);
            let (point, replayed) = match &resume {
                ResumeFrom::After { point, replayed } => (Some(*point), replayed.clone()),
                _ => (None, None),
            };
            shared
                .adds
                .waking
                .send(Registration {
                    id,
                    queue: queue.clone(),
                    counters: Arc::clone(&counters),
                    topics: topics.clone(),
                    resume,
                    registered: Some(registered_tx),
                    bell: RingOnDrop(bell.clone()),
                })
                .map_err(|_| Error::Closed)?;
            // The hub thread answers at once (or, for a replay from Redis
            // that went further than the hub has read, once it gets there),
            // or drops the registration (and so disconnects this channel)
            // when it stops.
            let answer = match point {
                None => registered_rx.recv().ok(),
                // Parked until the reader gets there, which it may not
                // while Redis is out of reach: then the gap event instead.
                Some(_) => match registered_rx.recv_timeout(PARKED_PATIENCE) {
                    Ok(answer) => Some(answer),
                    Err(RecvTimeoutError::Timeout) => {
                        log::debug!(
                            "client {id}: the hub did not reach its replay's end within \
                             {PARKED_PATIENCE:?}; sending the gap event instead"
                        );
                        resume = ResumeFrom::Gap;
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => None,
                },
            };
            match answer {
                Some(Joined::Yes) => {
                    return Ok(Subscription::joined(shared, id, receiver, counters, bell));
                }
                Some(Joined::IdInUse) => return Err(Error::IdInUse(id)),
                Some(Joined::Refetch) => {
                    fetches += 1;
                    resume = match point {
                        Some(point) if fetches <= MAX_FETCHES => {
                            fetch_on(shared, replayed, point, id, &topics)
                        }
                        _ => ResumeFrom::Gap,
                    };
                }
                None => return Err(Error::Closed),
            }
        }
    }

    /// The subscription's client id.
    pub fn id(&self) -> ClientId {
        self.id
    }

    /// Waits for the next frame.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once the hub has shut down and every frame queued
    /// before has been received.
    pub fn recv(&self) -> Result<Frame, Error> {
        self.receiver.recv().map_err(|_| Error::Closed)
    }

    /// Waits at most `timeout` for the next frame; `Ok(None)` when none came.
    /// A zero timeout only takes a frame already queued; a timeout too long
    /// for the clock to reach (such as `Duration::MAX`) waits like
    /// [`recv`](Subscription::recv).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] as for [`recv`](Subscription::recv).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<Frame>, Error> {
        match self.receiver.recv_timeout(timeout) {
            Ok(frame) => Ok(Some(frame)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(Error::Closed),
        }
    }

    /// The next frame if one is queued, without waiting.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] as for [`recv`](Subscription::recv).
    pub fn try_recv(&self) -> Result<Option<Frame>, Error> {
        match self.receiver.try_recv() {
            Ok(frame) => Ok(Some(frame)),
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => Err(Error::Closed),
        }
    }

    /// The underlying channel, to wait on it in a `crossbeam_channel::select!`
    /// together with other channels.
    pub fn receiver(&self) -> &Receiver<Frame> {
        &self.receiver
    }

    /// Waits at most `timeout` (`None`: for ever) for the next frame, with
    /// the subscription's bell when it has one (see `doorbell.rs`).
    pub(crate) fn wait(
        &self,
        timeout: Option<Duration>,
        first: bool,
    ) -> Result<Frame, RecvTimeoutError> {
        match &self.bell {
            Some(bell) => {
                let clients = self.shared.counters.connected.load(Ordering::Relaxed);
                let yields = if first || clients <= YIELD_CLIENTS {
                    YIELDS
                } else {
                    0
                };
                bell.wait(&self.receiver, timeout, yields)
            }
            None => match timeout {
                Some(timeout) => self.receiver.recv_timeout(timeout),
                None => self
                    .receiver
                    .recv()
                    .map_err(|_| RecvTimeoutError::Disconnected),
            },
        }
    }

    /// How many events this subscription missed because its queue was full.
    /// The queue also tells: the next frame after a hole is preceded by a
    /// gap frame (no events; `event: sse-gap`, `data: missed <n>` with the
    /// default [`gap_event`](crate::HubBuilder::gap_event)).
    pub fn missed(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Unsubscribes and waits until the hub thread has let go of the
    /// client (at once when the hub is gone).
    pub(crate) fn leave(mut self) {
        let (gone_tx, gone_rx) = crossbeam_channel::bounded(1);
        let removal = Removal {
            id: self.id,
            counters: Arc::clone(&self.counters),
            done: Some(gone_tx),
        };
        // The hub answers, or drops the sender when it stops.
        let answered = self.shared.remove_tx.send(removal).is_ok() && gone_rx.recv().is_ok();
        if !answered {
            // Stopped: it may have cleared its clients before it got to this
            // one's registration, which entered the id itself.
            self.shared.leave(self.id, &self.counters);
        }
        self.left = true;
    }

    pub(crate) fn counters(&self) -> &Arc<ClientCounters> {
        &self.counters
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("queued", &self.receiver.len())
            .field("missed", &self.missed())
            .finish()
    }
}

/// A new client queue. Out of line: the channel is built on the stack
/// before it moves to the heap, which would otherwise deepen
/// `Subscription::register`'s frame for the whole of the registration (see
/// `writer::STACK_SIZE`).
#[inline(never)]
fn new_queue() -> (Sender<Frame>, Receiver<Frame>) {
    crossbeam_channel::unbounded()
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // The hub may be gone already; then there is nothing to leave.
        if !self.left {
            let removal = Removal {
                id: self.id,
                counters: Arc::clone(&self.counters),
                done: None,
            };
            if self.shared.remove_tx.send(removal).is_err() {
                // As in `leave`: the hub stopped, perhaps before it took
                // this client's registration.
                self.shared.leave(self.id, &self.counters);
            }
        }
    }
}

/// Where a client that sent `last_event_id` starts: without Redis, the
/// hub's history; with it, what the shared stream holds after the id
/// (fetched here, on the client's own thread), or the history when Redis
/// cannot be reached now.
#[inline(never)]
fn first_resume(
    shared: &Shared,
    last_event_id: String,
    id: ClientId,
    topics: &[Box<str>],
) -> ResumeFrom {
    #[cfg(feature = "redis")]
    if let Some(replayer) = &shared.replayer {
        return match replayer.fetch_after(&last_event_id, id, topics) {
            Ok(Fetched::After { replayed, point }) => ResumeFrom::After { replayed, point },
            Ok(Fetched::Gap) => ResumeFrom::Gap,
            Err(why) => {
                log::debug!(
                    "cannot replay {last_event_id:?} from Redis ({why}): replaying from \
                     the history"
                );
                ResumeFrom::Id(last_event_id)
            }
        };
    }
    let _ = (shared, id, topics);
    ResumeFrom::Id(last_event_id)
}

/// A client that has `replayed` (fetched before) up to `point` fetches what
/// came after.
fn fetch_on(
    shared: &Shared,
    replayed: Option<Frame>,
    point: StreamId,
    id: ClientId,
    topics: &[Box<str>],
) -> ResumeFrom {
    #[cfg(feature = "redis")]
    if let Some(replayer) = &shared.replayer {
        return match replayer.fetch_after(&point.to_string(), id, topics) {
            Ok(Fetched::After {
                replayed: more,
                point,
            }) => {
                let frames: Vec<Frame> = replayed.into_iter().chain(more).collect();
                ResumeFrom::After {
                    replayed: (!frames.is_empty()).then(|| Frame::join(&frames)),
                    point,
                }
            }
            Ok(Fetched::Gap) | Err(_) => ResumeFrom::Gap,
        };
    }
    let _ = (shared, replayed, point, id, topics);
    ResumeFrom::Gap
}
