//! Appending events to the shared stream: one thread owns the connection,
//! and everything waiting when it is free goes in one round trip.
//!
//! A publisher hands its event to the thread and waits for Redis's answer,
//! so `Ok` means the event is in the stream (and so reaches every process
//! that reads it). Publishers on several threads share round trips: while
//! one batch is on its way, the next gathers.
//!
//! Redis answers each `XADD` of the pipeline on its own, and may refuse
//! some while it takes others (`OOM` once it reaches `maxmemory`): each
//! publisher hears about its own entries only. Only when there is no
//! answer at all (a timeout, a lost connection) does every publisher of
//! the round trip get the same error.

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
    answer: Sender<Answer>,
}

/// What a publisher hears: `Ok` once Redis has appended all its entries.
type Answer = Result<(), Refusal>;

/// Why a request's entries are not all in the stream.
#[derive(Clone, Debug, PartialEq)]
enum Refusal {
    /// None of them is, or nobody knows (the text says which).
    All(String),
    /// Redis appended some and refused the others.
    Some {
        /// The length of the run of appended entries the request starts
        /// with.
        appended: usize,
        /// The positions of the refused entries, in order.
        refused: Vec<usize>,
        /// Redis's answer to the first refused one.
        reason: String,
    },
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
    /// Redis has them all, `Error::RedisPartlyAppended` when it refused
    /// some and took others. Fails at once while the link is down.
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
            Ok(Err(Refusal::All(why))) => Err(Error::RedisUnavailable(why)),
            Ok(Err(Refusal::Some {
                appended,
                refused,
                reason,
            })) => Err(Error::RedisPartlyAppended {
                appended,
                refused,
                reason,
            }),
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
                    Err(Refusal::All("not connected to Redis; reconnecting".into())),
                );
                continue;
            };
            let mut pipe = redis::pipe();
            // A reply per entry, Redis's errors among them, rather than one
            // error for the whole round trip.
            pipe.ignore_errors();
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
            let sent: usize = batch.iter().map(|request| request.entries.len()).sum();
            let (failure, timed_out) = match pipe.query::<Vec<redis::Value>>(up) {
                Ok(replies) if replies.len() == sent => {
                    answer_each(&mut batch, &replies);
                    continue;
                }
                Ok(replies) => (
                    format!("Redis sent {} replies to {sent} commands", replies.len()),
                    false,
                ),
                Err(e) => (e.to_string(), e.is_timeout()),
            };
            // No reply to go by: Redis may have appended any of the batch,
            // and the connection cannot be trusted to be in step.
            let why = if timed_out {
                format!(
                    "Redis did not answer within {:?}; the event may or may not be in the stream",
                    self.timeout
                )
            } else {
                format!(
                    "lost the connection to Redis: {failure}; the event may or may not be in \
                     the stream"
                )
            };
            answer_all(&mut batch, Err(Refusal::All(why)));
            log::warn!("lost the connection to Redis while publishing: {failure}; reconnecting");
            connection = None;
            self.state.appending.store(false, Ordering::Release);
            was_down = true;
            retry_at = Instant::now();
        }
    }
}

fn answer_all(batch: &mut Vec<Request>, answer: Answer) {
    for request in batch.drain(..) {
        // The publisher may have given up waiting.
        let _ = request.answer.send(answer.clone());
    }
}

/// Answers each request of `batch` by Redis's replies to its own entries:
/// `replies` holds one per entry of the batch, in order.
fn answer_each(batch: &mut Vec<Request>, replies: &[redis::Value]) {
    let mut replies = replies.iter();
    for request in batch.drain(..) {
        let own = replies.by_ref().take(request.entries.len());
        // The publisher may have given up waiting.
        let _ = request.answer.send(judge(own));
    }
}

/// The answer to a request whose entries got `replies`, in order.
fn judge<'a>(replies: impl Iterator<Item = &'a redis::Value>) -> Answer {
    let mut entries = 0;
    let mut appended = 0;
    let mut refused = Vec::new();
    let mut reason = None;
    for (at, reply) in replies.enumerate() {
        entries += 1;
        match refusal(reply) {
            None if refused.is_empty() => appended += 1,
            None => {}
            Some(why) => {
                refused.push(at);
                reason.get_or_insert(why);
            }
        }
    }
    let Some(reason) = reason else {
        return Ok(());
    };
    if refused.len() == entries {
        // Not one appended: the same as a request Redis could not take.
        return Err(Refusal::All(format!("Redis refused the event: {reason}")));
    }
    Err(Refusal::Some {
        appended,
        refused,
        reason,
    })
}

/// Why Redis did not append an entry, from its reply to the `XADD`;
/// `None` when it did (the reply is the new entry's id).
fn refusal(reply: &redis::Value) -> Option<String> {
    match reply {
        // As Redis wrote it: `OOM command not allowed when ...`.
        redis::Value::ServerError(error) => Some(match error.details() {
            Some(details) => format!("{} {details}", error.code()),
            None => error.code().to_owned(),
        }),
        // `XADD` answers nil only when it appends nothing (`NOMKSTREAM`).
        redis::Value::Nil => Some("Redis appended nothing (a nil reply)".into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::Value;

    const OOM: &[u8] = b"-OOM command not allowed when used memory > 'maxmemory'.\r\n";

    fn refusal_reply() -> Value {
        redis::parse_redis_value(OOM).expect("an error reply")
    }

    fn id(n: u64) -> Value {
        Value::BulkString(format!("1-{n}").into_bytes())
    }

    fn request(entries: usize) -> (Request, Receiver<Answer>) {
        let (answer, answered) = crossbeam_channel::bounded(1);
        let entry = || {
            [
                ("d", Vec::new()),
                ("n", Vec::new()),
                ("r", Vec::new()),
                ("p", Vec::new()),
            ]
        };
        let entries = (0..entries).map(|_| entry()).collect();
        (Request { entries, answer }, answered)
    }

    #[test]
    fn each_request_is_answered_by_its_own_replies() {
        let (first, first_answer) = request(1);
        let (second, second_answer) = request(3);
        let (third, third_answer) = request(2);
        let (fourth, fourth_answer) = request(1);
        let mut batch = vec![first, second, third, fourth];
        let replies = [
            id(1),
            id(2),
            id(3),
            refusal_reply(),
            refusal_reply(),
            refusal_reply(),
            id(4),
        ];
        answer_each(&mut batch, &replies);
        assert!(batch.is_empty());
        let why = "OOM command not allowed when used memory > 'maxmemory'.".to_owned();
        assert_eq!(first_answer.try_recv(), Ok(Ok(())));
        assert_eq!(
            second_answer.try_recv(),
            Ok(Err(Refusal::Some {
                appended: 2,
                refused: vec![2],
                reason: why.clone(),
            }))
        );
        assert_eq!(
            third_answer.try_recv(),
            Ok(Err(Refusal::All(format!("Redis refused the event: {why}"))))
        );
        assert_eq!(fourth_answer.try_recv(), Ok(Ok(())));
    }

    /// Redis freed memory between two of the entries: the one after the
    /// refusal is in the stream, and is not listed as refused.
    #[test]
    fn an_entry_appended_after_a_refused_one_is_not_listed() {
        let replies = [id(1), refusal_reply(), id(2), refusal_reply(), Value::Nil];
        let Err(Refusal::Some {
            appended, refused, ..
        }) = judge(replies.iter())
        else {
            panic!("a partial answer");
        };
        assert_eq!((appended, refused), (1, vec![1, 3, 4]));
        let replies = [refusal_reply(), id(1)];
        assert!(matches!(
            judge(replies.iter()),
            Err(Refusal::Some { appended: 0, refused, .. }) if refused == [0]
        ));
    }
}
