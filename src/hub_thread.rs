//! The hub thread: it owns the client list and the history, and offers each
//! event to every client it reaches.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::client_id::ClientId;
use crate::config::SlowClient;
use crate::counters::ClientCounters;
use crate::doorbell::RingOnDrop;
use crate::encode;
use crate::frame::Frame;
use crate::history::{History, Resume};
use crate::messages::{AddReceivers, Joined, Outgoing, Registration, Removal, ResumeFrom, Route};
use crate::shared::Shared;
use crate::stream_id::StreamId;
use crate::sync::lock;

/// When several events for the same route wait for the hub at once, it
/// joins them into one frame of at most about this many bytes (a frame
/// always holds at least one whole event), so a burst costs one queue slot
/// and one write per client instead of one per event.
const BATCH_BYTES: usize = 64 * 1024;
/// ... and at most this many events.
const BATCH_EVENTS: usize = 1024;

struct Client {
    id: ClientId,
    queue: Sender<Frame>,
    counters: Arc<ClientCounters>,
    topics: Vec<Box<str>>,
    /// Events missed since the client was last told (`SlowClient::DropNewest`).
    untold: u64,
    /// Wakes the client's writer after each frame queued, and, declared
    /// after `queue`, once `queue` is dropped.
    bell: RingOnDrop,
}

/// The hub thread's state: everything it owns.
pub(crate) struct HubThread {
    adds: AddReceivers,
    remove_rx: Receiver<Removal>,
    notify_rx: Receiver<Outgoing>,
    shared: Arc<Shared>,
    clients: Vec<Client>,
    history: History,
    /// The sequence number of the newest event (0: none yet).
    last_seq: u64,
    /// An event taken while gathering a batch that belongs to the next one.
    carried: Option<Outgoing>,
    /// The frames of the batch being gathered (kept to reuse its memory).
    batch: Vec<Frame>,
    /// Feature `redis`: the place in the shared stream of the newest entry
    /// dispatched, and its id as text.
    newest: Option<(StreamId, Arc<str>)>,
    /// Feature `redis`: the first place dispatched since the window of the
    /// stream was last complete (none yet, or the reader lost events).
    floor: Option<StreamId>,
    /// Feature `redis`: clients that have fetched the stream from Redis
    /// further than this hub has read it; they join once it gets there.
    parked: Vec<Registration>,
}

impl HubThread {
    pub(crate) fn new(
        adds: AddReceivers,
        remove_rx: Receiver<Removal>,
        notify_rx: Receiver<Outgoing>,
        shared: Arc<Shared>,
        id_prefix: String,
    ) -> HubThread {
        let config = &shared.config;
        let history = History::new(
            config.history_events,
            config.history_bytes,
            config.history_age,
            id_prefix,
        );
        HubThread {
            adds,
            remove_rx,
            notify_rx,
            clients: Vec::new(),
            history,
            last_seq: 0,
            carried: None,
            batch: Vec::new(),
            newest: None,
            floor: None,
            parked: Vec::new(),
            shared,
        }
    }

    pub(crate) fn run(mut self) {
        loop {
            crossbeam_channel::select! {
                recv(self.adds.waking) -> registration => match registration {
                    Ok(registration) => self.add(registration),
                    Err(_) => break,
                },
                recv(self.remove_rx) -> removal => {
                    if let Ok(Removal { id, counters, done }) = removal {
                        // A client's removal cannot overtake its joining.
                        self.take_registrations();
                        self.remove(id, &counters);
                        if let Some(done) = done {
                            let _ = done.send(());
                        }
                    }
                },
                recv(self.notify_rx) -> outgoing => match outgoing {
                    Ok(outgoing) => self.dispatch(outgoing),
                    // Every sender is gone: shutdown, after every event sent
                    // before it has been received and dispatched.
                    Err(_) => break,
                },
            }
        }
        lock(&self.shared.clients).clear();
        self.shared.counters.connected.store(0, Ordering::Relaxed);
    }

    /// Adds the clients whose registrations are waiting, on both ways in
    /// (`AddReceivers`). A client that does not wait for its answer
    /// (`Registration::registered` is `None`) may have been told it is in,
    /// and have told its client so, before this thread got to it: so
    /// before an event is numbered, and before a removal, the registrations
    /// sent before it are taken first. The quiet way is taken only here.
    fn take_registrations(&mut self) {
        while let Ok(registration) = self
            .adds
            .waking
            .try_recv()
            .or_else(|_| self.adds.quiet.try_recv())
        {
            self.add(registration);
        }
    }

    /// Whether a registration is waiting on either way in.
    fn registrations_waiting(&self) -> bool {
        !self.adds.waking.is_empty() || !self.adds.quiet.is_empty()
    }

    fn add(&mut self, registration: Registration) {
        if let ResumeFrom::After { point, .. } = &registration.resume
            && self
                .newest
                .as_ref()
                .is_none_or(|(newest, _)| point > newest)
        {
            // Its replay, fetched from Redis, went further than the reader
            // thread has read: it joins once the reader gets there.
            self.parked.push(registration);
            return;
        }
        let Registration {
            id,
            queue,
            counters,
            topics,
            resume,
            registered,
            bell,
        } = registration;
        // An unanswered registration's sender entered its id already.
        if let Some(registered) = &registered
            && !self.shared.enter(id, &counters)
        {
            let _ = registered.send(Joined::IdInUse);
            return;
        }
        // Replay and registration are one step of this thread: no event can
        // fall between the two, nor reach the client twice.
        let now = Instant::now();
        let first = match resume {
            ResumeFrom::Live => None,
            ResumeFrom::Gap => Some(self.gap_frame()),
            ResumeFrom::Id(last_event_id) => {
                let resumed = if self.newest.is_some() {
                    // Feature `redis`, with Redis out of reach: what the
                    // history holds of the shared stream.
                    match StreamId::parse(&last_event_id) {
                        Some(point) => self
                            .history
                            .resume_after(point, self.floor, id, &topics, now),
                        None => Resume::Unknown,
                    }
                } else {
                    self.history
                        .resume(&last_event_id, self.last_seq, id, &topics, now)
                };
                match resumed {
                    Resume::Replay(frames) if frames.is_empty() => None,
                    Resume::Replay(frames) => Some(Frame::join(&frames)),
                    Resume::Unknown => Some(self.gap_frame()),
                }
            }
            ResumeFrom::After { replayed, point } => {
                match self
                    .history
                    .resume_after(point, self.floor, id, &topics, now)
                {
                    Resume::Replay(mut frames) => {
                        if let Some(replayed) = replayed {
                            frames.insert(0, replayed);
                        }
                        (!frames.is_empty()).then(|| Frame::join(&frames))
                    }
                    Resume::Unknown => {
                        // The history no longer reaches back to the point
                        // (or never did): the client fetches again.
                        self.forget(&[id]);
                        if let Some(registered) = &registered {
                            let _ = registered.send(Joined::Refetch);
                        }
                        return;
                    }
                }
            }
        };
        // Looking up the id may have expired old events.
        self.history_stats();
        // The queue is new and empty, so one frame always fits.
        if let Some(frame) = first {
            let events = frame.events() as u64;
            if queue.try_send(frame).is_ok() {
                self.shared
                    .counters
                    .queued
                    .fetch_add(events, Ordering::Relaxed);
                // A writer that did not wait for the answer may be asleep.
                bell.ring();
            }
        }
        if let Some(registered) = &registered
            && registered.send(Joined::Yes).is_err()
        {
            // The subscriber gave up waiting (a parked one, say).
            self.forget(&[id]);
            return;
        }
        self.clients.push(Client {
            id,
            queue,
            counters,
            topics,
            untold: 0,
            bell,
        });
    }

    /// Lets in the parked clients whose point the reader has now reached.
    fn unpark(&mut self) {
        let Some((newest, _)) = &self.newest else {
            return;
        };
        let newest = *newest;
        let ready: Vec<Registration> = {
            let (ready, waiting) =
                std::mem::take(&mut self.parked)
                    .into_iter()
                    .partition(|registration| match &registration.resume {
                        ResumeFrom::After { point, .. } => *point <= newest,
                        _ => true,
                    });
            self.parked = waiting;
            ready
        };
        for registration in ready {
            self.add(registration);
        }
    }

    /// Tells a client its `Last-Event-ID` cannot be resumed from. The event
    /// carries the newest event's id, so its next reconnect starts there.
    fn gap_frame(&self) -> Frame {
        let id = match &self.newest {
            Some((_, text)) => Some(text.to_string()),
            None => (self.history.enabled() && self.last_seq > 0)
                .then(|| format!("{}{}", self.history.prefix(), self.last_seq)),
        };
        let gap_event = self.shared.config.gap_event.as_deref();
        Frame::new(encode::gap(gap_event, id.as_deref(), "unknown-id"), 0)
    }

    /// Removes the client `id` whose counters are `counters`, if it is
    /// still registered (not a newer client with the same id).
    fn remove(&mut self, id: ClientId, counters: &Arc<ClientCounters>) {
        if let Some(at) = self
            .clients
            .iter()
            .position(|client| client.id == id && Arc::ptr_eq(&client.counters, counters))
        {
            self.clients.swap_remove(at);
            self.forget(&[id]);
        }
    }

    fn forget(&self, ids: &[ClientId]) {
        let mut clients = lock(&self.shared.clients);
        for id in ids {
            clients.remove(id);
        }
        self.shared.count_clients(&clients);
    }

    /// Gives `first` its sequence number (and id), keeps it in the history,
    /// gathers the events for the same route waiting behind it, and offers
    /// them to the clients they reach.
    fn dispatch(&mut self, first: Outgoing) {
        let mut next = Some(first);
        while let Some(outgoing) = next.take() {
            self.take_registrations();
            let route = outgoing.route.clone();
            let mut frames = std::mem::take(&mut self.batch);
            let first = self.admit(outgoing);
            let mut bytes = first.as_bytes().len();
            frames.push(first);
            while bytes < BATCH_BYTES && frames.len() < BATCH_EVENTS {
                let Some(candidate) = self
                    .carried
                    .take()
                    .or_else(|| self.notify_rx.try_recv().ok())
                else {
                    break;
                };
                // A registration sent before this event was published
                // joins before it: the event starts the next batch.
                if candidate.route != route || self.registrations_waiting() {
                    self.carried = Some(candidate);
                    break;
                }
                let frame = self.admit(candidate);
                bytes += frame.as_bytes().len();
                frames.push(frame);
            }
            let frame = if frames.len() == 1 {
                frames.swap_remove(0)
            } else {
                Frame::join(&frames)
            };
            frames.clear();
            self.batch = frames;
            self.deliver(&frame, &route);
            next = self.carried.take();
        }
        if !self.parked.is_empty() {
            self.unpark();
        }
    }

    /// Numbers an event, gives it an id if it needs one, and keeps it in the
    /// history. A comment (a frame of no events) is none of that: an id
    /// would make it a block with an id and no data, which some clients
    /// report as an empty message.
    fn admit(&mut self, outgoing: Outgoing) -> Frame {
        if outgoing.after_loss {
            self.floor = None;
        }
        if let Some(position) = outgoing.position {
            self.floor.get_or_insert(position);
            if self
                .newest
                .as_ref()
                .is_none_or(|(newest, _)| position > *newest)
            {
                let text = outgoing
                    .custom_id
                    .clone()
                    .unwrap_or_else(|| Arc::from(position.to_string()));
                self.newest = Some((position, text));
            }
        }
        if outgoing.frame.events() == 0 {
            return outgoing.frame;
        }
        self.last_seq += 1;
        let seq = self.last_seq;
        if !self.history.enabled() {
            // Kept nowhere, but the history must know it went by: under
            // `redis`, a client that resumes from before it is owed it.
            self.history.pass(seq, outgoing.position);
            return outgoing.frame;
        }
        let frame = match &outgoing.custom_id {
            Some(_) => outgoing.frame,
            None => {
                let bytes = encode::with_id(self.history.prefix(), seq, outgoing.frame.as_bytes());
                Frame::new(bytes, 1)
            }
        };
        self.history.push(
            seq,
            outgoing.custom_id,
            outgoing.route,
            frame.clone(),
            Instant::now(),
            outgoing.position,
        );
        self.history_stats();
        frame
    }

    /// Publishes the history's size to `Stats`.
    fn history_stats(&self) {
        let counters = &self.shared.counters;
        counters
            .history_events
            .store(self.history.len(), Ordering::Relaxed);
        counters
            .history_bytes
            .store(self.history.bytes(), Ordering::Relaxed);
    }

    fn deliver(&mut self, frame: &Frame, route: &Route) {
        // The Redis reader's marker of where it starts: nothing to send (an
        // empty chunk would end an HTTP/1.1 stream).
        if frame.as_bytes().is_empty() {
            return;
        }
        let events = frame.events() as u64;
        let mut queued = 0u64;
        let mut dropped = 0u64;
        let mut gone = Vec::new();
        let policy = self.shared.config.slow_client;
        let gap_event = self.shared.config.gap_event.as_deref();
        let buffer = self.shared.config.client_buffer;
        for client in &mut self.clients {
            if !route.reaches(client.id, &client.topics) {
                continue;
            }
            // A client that missed events learns it where the hole is: a gap
            // event goes just before the next frame it gets, in the slot
            // each queue has beyond `client_buffer` for it. Only this thread
            // sends, so a frame that fits now still fits after the gap event.
            let fits = client.queue.len() < buffer;
            if fits && client.untold > 0 {
                let _ = client
                    .queue
                    .try_send(missed_frame(gap_event, client.untold));
                client.untold = 0;
            }
            let sent = if fits {
                client.queue.try_send(frame.clone())
            } else {
                Err(TrySendError::Full(frame.clone()))
            };
            match sent {
                Ok(()) => {
                    queued += events;
                    client.bell.ring();
                }
                Err(TrySendError::Full(_)) => {
                    client.counters.dropped.fetch_add(events, Ordering::Relaxed);
                    dropped += events;
                    client.untold += events;
                    if policy == SlowClient::Disconnect {
                        client.counters.evicted.store(true, Ordering::Relaxed);
                        self.shared.counters.evicted.fetch_add(1, Ordering::Relaxed);
                        gone.push(client.id);
                    }
                }
                Err(TrySendError::Disconnected(_)) => gone.push(client.id),
            }
        }
        let counters = &self.shared.counters;
        counters.queued.fetch_add(queued, Ordering::Relaxed);
        if dropped > 0 {
            counters.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
        if !gone.is_empty() {
            self.clients.retain(|client| !gone.contains(&client.id));
            self.forget(&gone);
        }
    }
}

/// The gap event telling a client it missed `events` events.
fn missed_frame(gap_event: Option<&str>, events: u64) -> Frame {
    Frame::new(encode::gap(gap_event, None, &format!("missed {events}")), 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::messages::add_channels;

    /// Registers a client `id` with `counters`; true when it joined. Gives
    /// back its queue's receiver, which must live for the client to stay.
    fn register(
        hub: &mut HubThread,
        id: ClientId,
        counters: &Arc<ClientCounters>,
    ) -> (bool, Receiver<Frame>) {
        let (queue, frames) = crossbeam_channel::unbounded();
        let (registered, answer) = crossbeam_channel::bounded(1);
        hub.add(Registration {
            id,
            queue,
            counters: Arc::clone(counters),
            topics: Vec::new(),
            resume: ResumeFrom::Live,
            registered: Some(registered),
            bell: RingOnDrop::default(),
        });
        (answer.recv() == Ok(Joined::Yes), frames)
    }

    fn hub_thread(history_events: usize) -> (HubThread, Arc<Shared>) {
        let (adds, adds_rx) = add_channels();
        let (remove_tx, remove_rx) = crossbeam_channel::unbounded();
        let (_notify_tx, notify_rx) = crossbeam_channel::unbounded();
        let config = Config {
            history_events,
            ..Config::default()
        };
        let shared = Arc::new(Shared::new(adds, remove_tx, config));
        let hub = HubThread::new(
            adds_rx,
            remove_rx,
            notify_rx,
            Arc::clone(&shared),
            "t-".into(),
        );
        (hub, shared)
    }

    /// An event of the shared stream at `ms-0`, as the reader thread hands
    /// it over.
    fn from_stream(ms: u64) -> Outgoing {
        let text: Arc<str> = Arc::from(format!("{ms}-0"));
        let bytes = encode::with_id("", 0, b"data: x\n\n");
        let bytes = String::from_utf8(bytes)
            .unwrap()
            .replace("id: 0", &format!("id: {text}"));
        Outgoing {
            frame: Frame::new(bytes.into_bytes(), 1),
            custom_id: Some(text),
            route: Route::All,
            position: Some(StreamId { ms, seq: 0 }),
            after_loss: false,
        }
    }

    /// Registers a client that has the stream up to `ms-0`.
    fn join_after(hub: &mut HubThread, id: u64, ms: u64) -> (Receiver<Joined>, Receiver<Frame>) {
        let (queue, frames) = crossbeam_channel::unbounded();
        let (registered, answer) = crossbeam_channel::bounded(1);
        hub.add(Registration {
            id: ClientId::new(id),
            queue,
            counters: Arc::default(),
            topics: Vec::new(),
            resume: ResumeFrom::After {
                replayed: None,
                point: StreamId { ms, seq: 0 },
            },
            registered: Some(registered),
            bell: RingOnDrop::default(),
        });
        (answer, frames)
    }

    fn ids_in(frames: &Receiver<Frame>) -> Vec<String> {
        let bytes: Vec<u8> = frames
            .try_iter()
            .flat_map(|frame| frame.as_bytes().to_vec())
            .collect();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .filter_map(|line| line.strip_prefix("id: ").map(str::to_owned))
            .collect()
    }

    #[test]
    fn a_client_ahead_of_the_reader_waits_and_then_gets_only_what_follows() {
        let (mut hub, _shared) = hub_thread(100);
        hub.dispatch(from_stream(10));
        // The client fetched the stream up to 12 from Redis; the reader
        // has read up to 10.
        let (answer, frames) = join_after(&mut hub, 1, 12);
        assert!(answer.try_recv().is_err(), "parked");
        hub.dispatch(from_stream(11));
        assert!(answer.try_recv().is_err(), "still parked");
        hub.dispatch(from_stream(12));
        assert_eq!(answer.try_recv(), Ok(Joined::Yes));
        hub.dispatch(from_stream(13));
        assert_eq!(ids_in(&frames), ["13-0"]);
    }

    #[test]
    fn a_client_at_the_readers_start_joins_at_once_and_the_marker_reaches_nobody() {
        let (mut hub, _shared) = hub_thread(100);
        let (live, live_frames) = join_after(&mut hub, 9, 0);
        assert!(
            live.try_recv().is_err(),
            "parked: the reader has not started"
        );
        // The reader starts at 10 (the stream's newest entry) and says so.
        hub.dispatch(Outgoing {
            frame: Frame::new(Vec::new(), 0),
            custom_id: None,
            route: Route::All,
            position: Some(StreamId { ms: 10, seq: 0 }),
            after_loss: false,
        });
        assert_eq!(
            live.try_recv(),
            Ok(Joined::Refetch),
            "0 is before the window"
        );
        let (answer, frames) = join_after(&mut hub, 1, 10);
        assert_eq!(answer.try_recv(), Ok(Joined::Yes));
        assert_eq!(frames.try_iter().count(), 0, "the marker reaches nobody");
        assert_eq!(live_frames.try_iter().count(), 0);
        hub.dispatch(from_stream(11));
        assert_eq!(ids_in(&frames), ["11-0"]);
    }

    /// A writer sleeping on a queue whose last sender is a registration
    /// the hub still holds (parked, its point not yet read) wakes to the
    /// queue's end when the hub thread stops: the registration rings as it
    /// lets go of the sender.
    #[test]
    fn a_sleeping_writer_wakes_when_a_parked_registration_is_dropped() {
        let (mut hub, _shared) = hub_thread(100);
        hub.dispatch(from_stream(10));
        let (queue, frames) = crossbeam_channel::unbounded::<Frame>();
        let (bell_tx, bell_rx) = crossbeam_channel::bounded(1);
        let writer = std::thread::spawn(move || {
            let bell = crate::doorbell::Doorbell::for_current_thread();
            bell_tx.send(Arc::clone(&bell)).unwrap();
            bell.wait(&frames, Some(std::time::Duration::from_secs(60)), 0)
        });
        let (registered, _answer) = crossbeam_channel::bounded(1);
        hub.add(Registration {
            id: ClientId::new(1),
            queue,
            counters: Arc::default(),
            topics: Vec::new(),
            resume: ResumeFrom::After {
                replayed: None,
                point: StreamId { ms: 12, seq: 0 },
            },
            registered: Some(registered),
            bell: RingOnDrop(Some(bell_rx.recv().unwrap())),
        });
        assert_eq!(hub.parked.len(), 1);
        // Wait (bounded) until the writer sleeps, so that only the ring can
        // wake it.
        let bell = hub.parked[0].bell.0.clone().unwrap();
        let start = std::time::Instant::now();
        while !bell.is_asleep() {
            assert!(start.elapsed() < std::time::Duration::from_secs(10));
            std::thread::yield_now();
        }
        let dropped = std::time::Instant::now();
        drop(hub);
        assert!(matches!(
            writer.join().unwrap(),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected)
        ));
        // Woken by the ring, not by its 60 s timeout.
        assert!(dropped.elapsed() < std::time::Duration::from_secs(30));
    }

    #[test]
    fn a_client_behind_the_window_fetches_again() {
        let (mut hub, _shared) = hub_thread(2);
        for ms in [10, 11, 12, 13] {
            hub.dispatch(from_stream(ms));
        }
        // 10 and 11 have left the history: from 10 the hub cannot tell
        // what came next; from 11 it can (12 and 13).
        let (answer, _frames) = join_after(&mut hub, 1, 10);
        assert_eq!(answer.try_recv(), Ok(Joined::Refetch));
        assert!(!lock(&hub.shared.clients).contains_key(&ClientId::new(1)));
        let (answer, frames) = join_after(&mut hub, 2, 11);
        assert_eq!(answer.try_recv(), Ok(Joined::Yes));
        assert_eq!(ids_in(&frames), ["12-0", "13-0"]);
    }

    /// With the history off, the hub can join a client only where its
    /// reader is: one whose replay from Redis ended before an event the
    /// hub has since sent fetches again, or it would never get that event.
    #[test]
    fn without_a_history_a_client_behind_the_reader_fetches_again() {
        let (mut hub, _shared) = hub_thread(0);
        for ms in [10, 11, 12] {
            hub.dispatch(from_stream(ms));
        }
        let (answer, _frames) = join_after(&mut hub, 1, 11);
        assert_eq!(answer.try_recv(), Ok(Joined::Refetch));
        let (answer, frames) = join_after(&mut hub, 2, 12);
        assert_eq!(answer.try_recv(), Ok(Joined::Yes));
        hub.dispatch(from_stream(13));
        assert_eq!(ids_in(&frames), ["13-0"]);
    }

    #[test]
    fn nothing_before_the_first_event_read_or_a_loss_is_replayed() {
        let (mut hub, _shared) = hub_thread(100);
        hub.dispatch(from_stream(10));
        hub.dispatch(from_stream(11));
        // Before 10 the hub saw nothing.
        let (answer, _frames) = join_after(&mut hub, 1, 9);
        assert_eq!(answer.try_recv(), Ok(Joined::Refetch));
        // The reader lost events after 11.
        hub.dispatch(Outgoing {
            frame: Frame::new(b": lost\n".to_vec(), 0),
            custom_id: None,
            route: Route::All,
            position: None,
            after_loss: true,
        });
        hub.dispatch(from_stream(20));
        let (answer, _frames) = join_after(&mut hub, 2, 11);
        assert_eq!(answer.try_recv(), Ok(Joined::Refetch));
        let (answer, frames) = join_after(&mut hub, 3, 20);
        assert_eq!(answer.try_recv(), Ok(Joined::Yes));
        hub.dispatch(from_stream(21));
        assert_eq!(ids_in(&frames), ["21-0"]);
    }

    #[test]
    fn a_late_removal_leaves_a_newer_client_with_the_same_id_alone() {
        let (adds, adds_rx) = add_channels();
        let (remove_tx, remove_rx) = crossbeam_channel::unbounded();
        let (_notify_tx, notify_rx) = crossbeam_channel::unbounded();
        let shared = Arc::new(Shared::new(adds, remove_tx, Config::default()));
        let mut hub = HubThread::new(
            adds_rx,
            remove_rx,
            notify_rx,
            Arc::clone(&shared),
            "t-".into(),
        );
        let id = ClientId::new(7);

        let old = Arc::new(ClientCounters::default());
        let (joined, _old_frames) = register(&mut hub, id, &old);
        assert!(joined);
        // The watch thread has the old client removed...
        hub.remove(id, &old);
        assert!(hub.clients.is_empty());
        // ... a new client takes the id ...
        let new = Arc::new(ClientCounters::default());
        let (joined, _new_frames) = register(&mut hub, id, &new);
        assert!(joined, "the id is free again");
        // ... and the old client's writer, leaving late, removes nothing.
        hub.remove(id, &old);
        assert_eq!(hub.clients.len(), 1);
        assert!(lock(&shared.clients).contains_key(&id));
        hub.remove(id, &new);
        assert!(hub.clients.is_empty());
        assert!(lock(&shared.clients).is_empty());
    }
}
