//! Appending events to the shared stream: one thread owns the connection,
//! and everything waiting when it is free goes in one round trip.
//!
//! A publisher hands its event to the thread and waits for Redis's answer,
//! so `Ok` means the event is in the stream (and so reaches every process
//! that reads it). Publishers on several threads share round trips: while
//! one batch is on its way, the next gathers.

use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::config::RedisSettings;
use crate::error::Error;
use crate::messages::Outgoing;
use crate::redis_link::connection::{Backoff, LinkState, connect};
use crate::redis_link::entry::fields;

/// At most this many events go in one round trip.
const BATCH: usize = 256;

struct Request {
    /// The fields of each event, appended in this order.
    entries: Vec<[(&'static str, Vec<u8>); 4]>,
    answer: Sender<Result<(), String>>,
}

/// The publishers' side of the appending thread.
pub(crate) struct Appender {
    /// `None` once the hub stops.
    requests: RwLock<Option<Sender<Request>>>,
    state: Arc<LinkState>,
    node: u64,
    timeout: Duration,
}

impl Appender {
    pub(crate) fn start(
        settings: &RedisSettings,
        client: redis::Client,
        node: u64,
        state: &Arc<LinkState>,
    ) -> Result<(Appender, JoinHandle<()>), Error> {
        let (requests, inbox) = crossbeam_channel::unbounded();
        let thread = AppendThread {
            client,
            key: settings.key.clone(),
            max_len: settings.max_len,
            timeout: settings.timeout,
            state: Arc::clone(state),
            inbox,
        };
        let handle = std::thread::Builder::new()
            .name("sse-redis-append".into())
            .spawn(move || thread.run())
            .map_err(Error::Spawn)?;
        let appender = Appender {
            requests: RwLock::new(Some(requests)),
            state: Arc::clone(state),
            node,
            timeout: settings.timeout,
        };
        Ok((appender, handle))
    }

    /// Appends each of `outgoing`, in order, in one round trip; `Ok` once
    /// Redis has them all. Fails at once while the link is down.
    pub(crate) fn append(&self, outgoing: &[Outgoing]) -> Result<(), Error> {
        if outgoing.is_empty() {
            return Ok(());
        }
        if !self.state.appending.load(Ordering::Acquire) {
            return Err(Error::RedisUnavailable(
                "not connected to Redis; reconnecting".into(),
            ));
        }
        if !self.state.positioned.load(Ordering::Acquire) {
            return Err(Error::RedisUnavailable(
                "the reader has not found its place in the stream yet".into(),
            ));
        }
        let (answer, answered) = crossbeam_channel::bounded(1);
        {
            let requests = self
                .requests
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let requests = requests.as_ref().ok_or(Error::Closed)?;
            requests
                .send(Request {
                    entries: outgoing.iter().map(|one| fields(one, self.node)).collect(),
                    answer,
                })
                .map_err(|_| Error::Closed)?;
        }
        // The thread's own command gives up after `timeout`; a batch ahead
        // of this one may take as long again.
        let patience = self
            .timeout
            .saturating_mul(2)
            .saturating_add(Duration::from_millis(100));
        match answered.recv_timeout(patience) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(why)) => Err(Error::RedisUnavailable(why)),
            Err(RecvTimeoutError::Timeout) => Err(Error::RedisUnavailable(format!(
                "no answer from Redis within {patience:?}; the event may or may not be in the stream"
            ))),
            Err(RecvTimeoutError::Disconnected) => Err(Error::Closed),
        }
    }

    /// Lets the thread end once it has answered what is queued.
    pub(crate) fn stop(&self) {
        self.requests
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
    }
}

struct AppendThread {
    client: redis::Client,
    key: String,
    max_len: usize,
    timeout: Duration,
    state: Arc<LinkState>,
    inbox: Receiver<Request>,
}

impl AppendThread {
    fn run(self) {
        let mut connection: Option<redis::Connection> = None;
        let mut backoff = Backoff::new();
        let mut retry_at = Instant::now();
        let mut was_down = false;
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            if connection.is_none() && Instant::now() >= retry_at {
                match connect(&self.client, self.timeout) {
                    Ok(up) => {
                        connection = Some(up);
                        backoff.reset();
                        self.state.appending.store(true, Ordering::Release);
                        if was_down {
                            log::info!("Redis is back: publishing again");
                        }
                        was_down = false;
                    }
                    Err(e) => {
                        if !was_down {
                            log::warn!("cannot connect to Redis to publish: {e}; trying again");
                        }
                        was_down = true;
                        retry_at = Instant::now() + backoff.pause();
                    }
                }
            }
            let first = if connection.is_some() {
                match self.inbox.recv() {
                    Ok(request) => request,
                    Err(_) => return,
                }
            } else {
                match self.inbox.recv_deadline(retry_at) {
                    Ok(request) => request,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            };
            batch.push(first);
            while batch.len() < BATCH {
                match self.inbox.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            let Some(up) = connection.as_mut() else {
                answer_all(
                    &mut batch,
                    Err("not connected to Redis; reconnecting".into()),
                );
                continue;
            };
            let mut pipe = redis::pipe();
            for entry in batch.iter().flat_map(|request| &request.entries) {
                let command = pipe
                    .cmd("XADD")
                    .arg(&self.key)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(self.max_len)
                    .arg("*");
                for (name, value) in entry {
                    command.arg(*name).arg(value.as_slice());
                }
            }
            match pipe.query::<Vec<redis::Value>>(up) {
                Ok(_) => answer_all(&mut batch, Ok(())),
                Err(e) => {
                    let broken = e.is_io_error() || e.is_timeout() || e.is_connection_dropped();
                    let why = if e.is_timeout() {
                        format!(
                            "Redis did not answer within {:?}; the event may or may not be in \
                             the stream",
                            self.timeout
                        )
                    } else if broken {
                        format!("lost the connection to Redis: {e}")
                    } else {
                        format!("Redis refused the event: {e}")
                    };
                    answer_all(&mut batch, Err(why));
                    if broken {
                        log::warn!(
                            "lost the connection to Redis while publishing: {e}; reconnecting"
                        );
                        connection = None;
                        self.state.appending.store(false, Ordering::Release);
                        was_down = true;
                        retry_at = Instant::now();
                    }
                }
            }
        }
    }
}

fn answer_all(batch: &mut Vec<Request>, answer: Result<(), String>) {
    for request in batch.drain(..) {
        // The publisher may have given up waiting.
        let _ = request.answer.send(answer.clone());
    }
}
