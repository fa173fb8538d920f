//! Waking a writer thread that waits on its queue.
//!
//! A writer could wait in `crossbeam_channel`'s own `recv`, which spins and
//! then calls `sched_yield` four times before it sleeps, every time its
//! queue runs dry. Whether those yields pay depends on how many writers
//! share the core (measured with the fan-out bench, one core for the
//! server):
//!
//! * with 1,000 writers and a hub that is behind (paced: 100 events a
//!   second), a writer that yields is still runnable when its next frame
//!   comes, so the hub need not wake it: p99 36–49 ms, against 57–79 ms
//!   for writers that sleep at once and are woken;
//! * with 10,000 writers at 10 events a second (idle10k), every event
//!   costs up to 40,000 switches between writers that have nothing to
//!   send, and the backlog doubles: p99 1.1–1.3 s, against 0.62–0.72 s.
//!
//! So a writer waits here: while the hub has at most [`YIELD_CLIENTS`]
//! clients, and in its first wait (after the stream's head, when a
//! connect burst keeps `tiny_http`'s threads and the acceptor busy: 10,000
//! connected in 2.7–3.3 s with the yields, 3.6–4.0 s without), it yields
//! up to [`YIELDS`] times first (without `crossbeam`'s spin, which on a
//! single core only delays the thread that would send);
//! then it says it is asleep, looks at its queue once more, and parks. The
//! hub thread, the queue's only sender, rings after each frame it queues:
//! a fence and a load while the writer is awake, an unpark (one `futex`
//! wake) when it sleeps.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};

/// How many times a wait yields before it sleeps, while the hub has at
/// most [`YIELD_CLIENTS`] clients (as many as `crossbeam_channel`'s own
/// `recv`).
pub(crate) const YIELDS: u32 = 4;

/// Above this many clients a wait sleeps at once. Measured at 1,000 (the
/// yields pay) and 10,000 (they cost); the line between is a judgement.
pub(crate) const YIELD_CLIENTS: usize = 2_000;

/// The bell of one waiting thread.
#[derive(Debug)]
pub(crate) struct Doorbell {
    /// Set by the thread just before it parks (after one more look at its
    /// queue), cleared by the ring that wakes it.
    asleep: AtomicBool,
    thread: Thread,
}

impl Doorbell {
    /// A bell that wakes the calling thread, the one that will
    /// [`wait`](Doorbell::wait).
    pub(crate) fn for_current_thread() -> Arc<Doorbell> {
        Arc::new(Doorbell {
            asleep: AtomicBool::new(false),
            thread: thread::current(),
        })
    }

    /// Wakes the thread if it sleeps. Call it after queueing a frame, or
    /// after dropping the queue's last sender.
    pub(crate) fn ring(&self) {
        // Orders the frame queued before against the load below; `wait`
        // has the matching fence between its store and its look at the
        // queue, so either the ring sees the sleeper or the sleeper sees the
        // frame.
        fence(Ordering::SeqCst);
        if self.asleep.load(Ordering::Relaxed) && self.asleep.swap(false, Ordering::Relaxed) {
            self.thread.unpark();
        }
    }

    /// Waits on `receiver` for its next message, at most `timeout` (`None`,
    /// or a timeout too long for the clock: for ever), yielding up to
    /// `yields` times before it sleeps. Must run on the thread the bell was
    /// made on, and whoever sends on `receiver`'s channel must
    /// [`ring`](Doorbell::ring) after each send and after dropping the last
    /// sender.
    pub(crate) fn wait<T>(
        &self,
        receiver: &Receiver<T>,
        timeout: Option<Duration>,
        yields: u32,
    ) -> Result<T, RecvTimeoutError> {
        let deadline = timeout.and_then(|timeout| Instant::now().checked_add(timeout));
        loop {
            if let Some(found) = take(receiver) {
                return found;
            }
            for _ in 0..yields {
                thread::yield_now();
                if let Some(found) = take(receiver) {
                    return found;
                }
            }
            self.asleep.store(true, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            if let Some(found) = take(receiver) {
                self.asleep.store(false, Ordering::Relaxed);
                return found;
            }
            match deadline {
                None => thread::park(),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        self.asleep.store(false, Ordering::Relaxed);
                        return Err(RecvTimeoutError::Timeout);
                    }
                    thread::park_timeout(deadline - now);
                }
            }
            // Woken by a ring, by an unpark meant for an earlier wait, or
            // for no reason: look again.
            self.asleep.store(false, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
impl Doorbell {
    /// Whether the thread has said it is asleep (and not been rung since).
    pub(crate) fn is_asleep(&self) -> bool {
        self.asleep.load(Ordering::SeqCst)
    }
}

/// The next message, or the end of the channel; `None` while it is empty.
fn take<T>(receiver: &Receiver<T>) -> Option<Result<T, RecvTimeoutError>> {
    match receiver.try_recv() {
        Ok(message) => Some(Ok(message)),
        Err(TryRecvError::Disconnected) => Some(Err(RecvTimeoutError::Disconnected)),
        Err(TryRecvError::Empty) => None,
    }
}

/// Rings a bell when dropped. Declared after a queue's sender in a struct,
/// it rings once the sender is gone (fields drop in order), so a sleeping
/// receiver wakes to find its channel closed.
#[derive(Debug, Default)]
pub(crate) struct RingOnDrop(pub(crate) Option<Arc<Doorbell>>);

impl RingOnDrop {
    /// Rings now (after a frame was queued).
    pub(crate) fn ring(&self) {
        if let Some(bell) = &self.0 {
            bell.ring();
        }
    }
}

impl Drop for RingOnDrop {
    fn drop(&mut self) {
        self.ring();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_wakes_a_sleeper_for_each_frame() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let (bell_tx, bell_rx) = crossbeam_channel::bounded(1);
        let reader = thread::spawn(move || {
            let bell = Doorbell::for_current_thread();
            bell_tx.send(Arc::clone(&bell)).unwrap();
            let mut got = Vec::new();
            while let Ok(n) = bell.wait(&rx, Some(Duration::from_secs(30)), YIELDS) {
                got.push(n);
            }
            got
        });
        let bell = RingOnDrop(Some(bell_rx.recv().unwrap()));
        for n in 0..10_000 {
            tx.send(n).unwrap();
            bell.ring();
        }
        // The sender goes first, then the bell rings: the reader wakes to
        // a closed channel.
        let closing = (tx, bell);
        drop(closing);
        assert_eq!(reader.join().unwrap(), (0..10_000).collect::<Vec<_>>());
    }

    #[test]
    fn wait_times_out_and_takes_what_is_queued() {
        let (tx, rx) = crossbeam_channel::unbounded::<u8>();
        let bell = Doorbell::for_current_thread();
        assert_eq!(
            bell.wait(&rx, Some(Duration::ZERO), YIELDS),
            Err(RecvTimeoutError::Timeout)
        );
        assert_eq!(
            bell.wait(&rx, Some(Duration::from_millis(1)), 0),
            Err(RecvTimeoutError::Timeout)
        );
        tx.send(7).unwrap();
        assert_eq!(bell.wait(&rx, Some(Duration::MAX), 0), Ok(7));
        drop(tx);
        assert_eq!(bell.wait(&rx, None, 0), Err(RecvTimeoutError::Disconnected));
    }
}
