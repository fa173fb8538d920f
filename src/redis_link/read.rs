//! The reader thread: follows the shared stream with `XREAD BLOCK` and
//! hands each entry to the hub thread, in the stream's order.
//!
//! It starts at the stream's newest id when it first connects (what came
//! before is for replay), and after a lost connection goes on from the
//! last id it read, so that nothing Redis still holds is missed. An entry
//! this crate did not write is skipped, but the hub thread still learns
//! its place (an empty frame with its position), so that a client whose
//! replay from Redis ended there is not kept waiting.
//!
//! With each read it checks, in the same round trip, that the last entry
//! it read before is still in the stream, unchanged: then nothing after it
//! was trimmed (Redis trims the oldest first) and the stream is the one it
//! was reading. When that entry is gone, or another has its id, a second
//! round trip looks at the stream as a whole (`TYPE`, `XINFO STREAM`, its
//! first entry) and tells apart (`judge`):
//!
//! * entries this process had read that were deleted (`XDEL`, or trimmed
//!   after it read them, up to `XTRIM MAXLEN 0`): nothing is lost, nothing
//!   is said, and it reads on from where it was;
//! * entries trimmed (or deleted) before it read them: every client gets
//!   the gap event (`events-lost`) once, and the hub's window of the stream
//!   starts again. With Redis 7 this is counted, as Redis counts a consumer
//!   group's lag: every entry ever added to the stream (`entries-added`)
//!   has been read, or is still there to read, or is lost. Before Redis 7
//!   it says "lost" whenever its last entry was trimmed;
//! * another stream under the key (`FLUSHALL` or `DEL` and new entries, a
//!   restart without persistence, a restore from an older copy): the gap
//!   event, then that stream is read from its start, since its ids may not
//!   come after the last one read, skipping the entries it had handed on
//!   already (it remembers the id and a digest of the last
//!   [`REMEMBERED`] entries it read, and takes anything older for one of
//!   them);
//! * no stream under the key: the gap event, then whatever stream comes
//!   under the key is read from its start.
//!
//! A check can say "lost" where nothing was (an entry deleted just as it
//! was read): then clients get a gap event they did not need, never the
//! other way round. Entries deleted with `XDEL` before this process read
//! them are announced only when Redis 7 counts them.
//!
//! A connection that fails is opened again, with backoff; a command Redis
//! refuses (`WRONGTYPE` when the key holds something else, `NOPERM`,
//! `LOADING`) is tried again on the same connection with the same backoff.
//! Either is logged once when it starts and once when it ends, and the
//! backoff starts again from its first pause only after a read succeeds.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use redis::Value;

use crate::config::RedisSettings;
use crate::encode;
use crate::frame::Frame;
use crate::messages::{Outgoing, Route};
use crate::redis_link::connection::{Backoff, LinkState, connect};
use crate::redis_link::entry::{decode_checked, text};
use crate::stream_id::StreamId;

/// How long one `XREAD` waits for new entries: also how long stopping the
/// hub may wait for this thread.
const BLOCK: Duration = Duration::from_millis(500);
/// At most this many entries per `XREAD`.
const COUNT: usize = 1024;
/// How many of the entries it read last the reader remembers (their ids
/// and digests), to skip them should they come back in a stream restored
/// from an older copy.
const REMEMBERED: usize = 1024;

pub(crate) struct Reader {
    client: redis::Client,
    key: String,
    timeout: Duration,
    gap_event: Option<String>,
    state: Arc<LinkState>,
    hub: Sender<Outgoing>,
    /// The id of the last entry read, or where reading starts (`None`: not
    /// connected yet). It may be an id the stream no longer holds.
    position: Option<StreamId>,
    /// A digest of that entry's fields (`None`: not read): after the
    /// stream was emptied, a new entry can take the same id.
    digest: Option<u64>,
    /// How many of the entries ever added to the stream (Redis 7's
    /// `entries-added`) are behind `position`: read, skipped, or announced
    /// lost. `None` where Redis does not count them.
    accounted: Option<u64>,
    /// The newest place handed to the hub thread.
    handed: StreamId,
    /// The entries read last, to skip in a stream read again from its start.
    recent: Recent,
    /// Set while reading again from its start a stream that replaced the
    /// one read up to here: entries up to this id that were handed on
    /// already are skipped.
    guard: Option<StreamId>,
    /// Whether an entry this crate did not write was logged at `warn`
    /// (the others are logged at `debug`).
    warned_foreign: bool,
}

/// Why a round with Redis failed.
enum Fail {
    /// The hub is shutting down.
    Stopping,
    /// The connection failed; connect again.
    Lost(redis::RedisError),
    /// Redis answered with an error (`WRONGTYPE`, `NOPERM`, ...): try again
    /// later on the same connection.
    Refused(String),
}

/// What is going wrong, so that it is logged once, not at each try.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Trouble {
    /// Redis cannot be reached (or the connection failed).
    Down,
    /// Redis refuses to read the stream.
    Refused,
}

impl Reader {
    pub(crate) fn new(
        settings: &RedisSettings,
        gap_event: Option<String>,
        client: redis::Client,
        state: Arc<LinkState>,
        hub: Sender<Outgoing>,
    ) -> Reader {
        Reader {
            client,
            key: settings.key.clone(),
            timeout: settings.timeout,
            gap_event,
            state,
            hub,
            position: None,
            digest: None,
            accounted: None,
            handed: StreamId::ZERO,
            recent: Recent::starting_at(StreamId::ZERO),
            guard: None,
            warned_foreign: false,
        }
    }

    pub(crate) fn run(mut self) {
        let mut backoff = Backoff::new();
        let mut trouble = None;
        while !self.stopping() {
            // The read timeout covers the time XREAD blocks.
            let lost = match connect(&self.client, self.timeout + BLOCK) {
                Ok(mut connection) => {
                    match self.follow(&mut connection, &mut backoff, &mut trouble) {
                        Some(e) => e,
                        None => break,
                    }
                }
                Err(e) => e,
            };
            self.state.reading.store(false, Ordering::Release);
            if trouble != Some(Trouble::Down) {
                log::warn!("lost Redis while following the stream: {lost}; reconnecting");
                trouble = Some(Trouble::Down);
            }
            self.pause(backoff.pause());
        }
        self.state.reading.store(false, Ordering::Release);
    }

    fn stopping(&self) -> bool {
        self.state.stopping.load(Ordering::Acquire)
    }

    /// Waits `pause`, or less when the hub stops.
    fn pause(&self, pause: Duration) {
        let until = Instant::now() + pause;
        while !self.stopping() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::park_timeout(left.min(Duration::from_millis(50)));
        }
    }

    /// Finds its place, then reads until the connection fails (its error)
    /// or the hub stops (`None`).
    fn follow(
        &mut self,
        connection: &mut redis::Connection,
        backoff: &mut Backoff,
        trouble: &mut Option<Trouble>,
    ) -> Option<redis::RedisError> {
        // The first read on a new connection does not wait for entries, so
        // that the link is known to be up at once.
        let mut block = false;
        loop {
            if self.stopping() {
                return None;
            }
            let round = match self.position {
                None => self.find_place(connection),
                Some(position) => self.read(connection, position, block),
            };
            block = true;
            match round {
                Ok(()) => {
                    backoff.reset();
                    self.state.reading.store(true, Ordering::Release);
                    match trouble.take() {
                        Some(Trouble::Down) => {
                            log::info!("Redis is back: following the stream again");
                        }
                        Some(Trouble::Refused) => {
                            log::info!("Redis reads the stream {} again", self.key);
                        }
                        None => {}
                    }
                }
                Err(Fail::Stopping) => return None,
                Err(Fail::Lost(e)) => return Some(e),
                Err(Fail::Refused(why)) => {
                    // The connection is fine: the same one is used again.
                    if *trouble != Some(Trouble::Refused) {
                        log::warn!(
                            "Redis refuses to read the stream {}: {why}; trying again",
                            self.key
                        );
                        *trouble = Some(Trouble::Refused);
                    }
                    self.pause(backoff.pause());
                }
            }
        }
    }

    /// Where reading starts: the stream's newest id (`0-0` when there is no
    /// stream yet). The hub thread learns it too: a client whose replay
    /// from Redis ends there joins at once, without waiting for the next
    /// event.
    fn find_place(&mut self, connection: &mut redis::Connection) -> Result<(), Fail> {
        let mut pipe = redis::pipe();
        pipe.cmd("TYPE").arg(&self.key);
        pipe.cmd("XINFO").arg("STREAM").arg(&self.key);
        pipe.cmd("XREVRANGE")
            .arg(&self.key)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1);
        let replies = query(connection, pipe)?;
        let [kind, info, newest] = replies.as_slice() else {
            return Err(Fail::Refused("an unexpected reply".into()));
        };
        let kind = key_type(kind)?;
        if let Some(info) = Info::parse(info) {
            // Redis 5 and later give the newest id ever given (the newest
            // entry may have been deleted since); Redis 7 the count.
            let start = info.last_generated.or(info.last).unwrap_or(StreamId::ZERO);
            self.position = Some(start);
            self.digest = info.last_digest.filter(|_| info.last == Some(start));
            self.accounted = info.entries_added;
        } else if kind == "none" {
            self.position = Some(StreamId::ZERO);
            self.digest = None;
            self.accounted = Some(0);
        } else if kind == "stream" {
            // XINFO not allowed, say: the newest entry.
            let start = first_id(newest).unwrap_or(StreamId::ZERO);
            self.position = Some(start);
            self.digest = match newest {
                Value::Array(entries) => entries.first().and_then(digest),
                _ => None,
            };
            self.accounted = None;
        } else {
            return Err(Fail::Refused(format!(
                "the key holds a {kind}, not a stream"
            )));
        }
        let start = self.position.unwrap_or(StreamId::ZERO);
        self.recent = Recent::starting_at(start);
        self.handed = start;
        self.send(marker(start))?;
        self.state.positioned.store(true, Ordering::Release);
        Ok(())
    }

    /// One `XREAD` from `position` (waiting up to [`BLOCK`] for entries if
    /// `block`), with its check.
    fn read(
        &mut self,
        connection: &mut redis::Connection,
        position: StreamId,
        block: bool,
    ) -> Result<(), Fail> {
        // With the read, in the same round trip and just after it (a
        // pipeline runs in order, the check once XREAD returns): is the
        // last entry read before still there, unchanged.
        let checked = position != StreamId::ZERO;
        let mut pipe = redis::pipe();
        let read = pipe.cmd("XREAD").arg("COUNT").arg(COUNT);
        if block {
            read.arg("BLOCK").arg(BLOCK.as_millis() as u64);
        }
        read.arg("STREAMS").arg(&self.key).arg(position.to_string());
        if checked {
            let at = position.to_string();
            pipe.cmd("XRANGE").arg(&self.key).arg(&at).arg(&at);
        }
        let replies = query(connection, pipe)?;
        if let Some(why) = replies.iter().find_map(refusal) {
            return Err(Fail::Refused(why));
        }
        let Some(read) = replies.first() else {
            return Err(Fail::Refused("an unexpected reply".into()));
        };
        let entries = entries_of_xread(read);
        let fine = match replies.get(1) {
            Some(at_position) => self.still_there(at_position, position),
            // From the start of the stream: nothing to check until there is
            // something read, and nothing to count it with before Redis 7.
            None => entries.is_empty() || self.accounted.is_none(),
        };
        if fine {
            self.accounted = self.accounted.map(|a| a + entries.len() as u64);
            return self.take(entries);
        }
        let snapshot = self.snapshot(connection, position)?;
        let read_ids: Vec<StreamId> = entries.iter().filter_map(entry_id).collect();
        let verdict = judge(position, self.digest, &read_ids, self.accounted, &snapshot);
        match verdict {
            Verdict::Same { lost, accounted } => {
                if lost {
                    log::warn!(
                        "entries of the Redis stream {} were trimmed or deleted before this \
                         process read them: clients get the gap event",
                        self.key
                    );
                    self.send(self.loss_notice())?;
                }
                self.accounted = accounted;
                self.take(entries)
            }
            Verdict::Replaced { accounted } => {
                log::warn!(
                    "the Redis stream {} is not the one this process was reading (emptied and \
                     written again, or restored from an older copy): events may have been \
                     lost; clients get the gap event, and it is read from its start, without \
                     what was sent already",
                    self.key
                );
                self.send(self.loss_notice())?;
                // What this read got comes again from the start. (A guard
                // still up, the stream replaced again, keeps its reach.)
                let until = self.guard.unwrap_or(StreamId::ZERO);
                self.guard = Some(self.handed.max(position).max(until));
                self.position = Some(StreamId::ZERO);
                self.digest = None;
                self.accounted = accounted;
                Ok(())
            }
            Verdict::Gone => {
                // Read before the key went: new here either way.
                self.take(entries)?;
                if position != StreamId::ZERO {
                    log::warn!(
                        "the Redis stream {} is gone (deleted, or Redis restarted empty): events \
                         may have been lost; clients get the gap event",
                        self.key
                    );
                    self.send(self.loss_notice())?;
                }
                self.guard = None;
                self.position = Some(StreamId::ZERO);
                self.digest = None;
                self.accounted = self.accounted.map(|_| 0);
                Ok(())
            }
        }
    }

    /// The stream as a whole, just now: whether there is one, what
    /// `XINFO STREAM` says of it, the entry at `position` and the first.
    fn snapshot(
        &self,
        connection: &mut redis::Connection,
        position: StreamId,
    ) -> Result<Snapshot, Fail> {
        let mut pipe = redis::pipe();
        pipe.cmd("TYPE").arg(&self.key);
        pipe.cmd("XINFO").arg("STREAM").arg(&self.key);
        pipe.cmd("XRANGE")
            .arg(&self.key)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1);
        let checked = position != StreamId::ZERO;
        if checked {
            let at = position.to_string();
            pipe.cmd("XRANGE").arg(&self.key).arg(&at).arg(&at);
        }
        let replies = query(connection, pipe)?;
        let (kind, info, first, at_position) = match replies.as_slice() {
            [kind, info, first] => (kind, info, first, None),
            [kind, info, first, at] => (kind, info, first, Some(at)),
            _ => return Err(Fail::Refused("an unexpected reply".into())),
        };
        let kind = key_type(kind)?;
        if kind != "stream" && kind != "none" {
            return Err(Fail::Refused(format!(
                "the key holds a {kind}, not a stream"
            )));
        }
        // A check refused although TYPE said "stream": the key changed
        // meanwhile, and the next round looks again.
        if kind == "stream"
            && let Some(why) = refusal(first).or_else(|| at_position.and_then(refusal))
        {
            return Err(Fail::Refused(why));
        }
        Ok(Snapshot {
            missing: kind == "none",
            info: Info::parse(info),
            first: first_id(first),
            at_position: at_position.map(|reply| match reply {
                Value::Array(entries) => entries
                    .first()
                    .filter(|entry| entry_id(entry) == Some(position))
                    .map(|entry| digest(entry).unwrap_or(0)),
                _ => None,
            }),
        })
    }

    /// Hands each entry read to the hub thread, in order.
    fn take(&mut self, entries: &[Value]) -> Result<(), Fail> {
        for entry in entries {
            let Some(at) = entry_id(entry) else {
                continue;
            };
            let digest = digest(entry).unwrap_or(0);
            self.position = Some(at);
            self.digest = Some(digest);
            if let Some(until) = self.guard {
                if at > until {
                    self.guard = None;
                } else if self.recent.handed_on(at, digest) {
                    continue;
                }
            }
            self.recent.remember(at, digest);
            match decode_checked(entry) {
                Ok((_, outgoing)) => {
                    self.send(outgoing)?;
                    self.handed = self.handed.max(at);
                }
                Err(why) => {
                    if self.warned_foreign {
                        log::debug!(
                            "skipping entry {at} of the Redis stream {}: not one this crate \
                             wrote ({why})",
                            self.key
                        );
                    } else {
                        log::warn!(
                            "skipping entry {at} of the Redis stream {}: not one this crate \
                             wrote ({why}); further ones are logged at debug level",
                            self.key
                        );
                        self.warned_foreign = true;
                    }
                    // Its place still counts: a client's replay may end
                    // there.
                    if at > self.handed {
                        self.send(marker(at))?;
                        self.handed = at;
                    }
                }
            }
        }
        Ok(())
    }

    fn send(&self, outgoing: Outgoing) -> Result<(), Fail> {
        self.hub.send(outgoing).map_err(|_| Fail::Stopping)
    }

    /// Whether the reply to `XRANGE key position position` is the entry
    /// read last: the same id, and the same fields.
    fn still_there(&self, reply: &Value, position: StreamId) -> bool {
        let Value::Array(entries) = reply else {
            return false;
        };
        let Some(entry) = entries.first() else {
            return false;
        };
        entry_id(entry) == Some(position) && (self.digest.is_none() || digest(entry) == self.digest)
    }

    /// The gap event for every client, after events were lost.
    fn loss_notice(&self) -> Outgoing {
        Outgoing {
            frame: Frame::new(
                encode::gap(self.gap_event.as_deref(), None, "events-lost"),
                0,
            ),
            custom_id: None,
            route: Route::All,
            position: None,
            after_loss: true,
        }
    }
}

/// Nothing to send, only a place in the stream for the hub thread (which
/// sends no empty frame).
fn marker(position: StreamId) -> Outgoing {
    Outgoing {
        frame: Frame::new(Vec::new(), 0),
        custom_id: None,
        route: Route::All,
        position: Some(position),
        after_loss: false,
    }
}

/// Sends `pipe`, and gives back each command's reply; a command Redis
/// refuses gives its error as its reply.
fn query(
    connection: &mut redis::Connection,
    mut pipe: redis::Pipeline,
) -> Result<Vec<Value>, Fail> {
    pipe.ignore_errors();
    match pipe.query::<Value>(connection) {
        Ok(Value::Array(replies)) => Ok(replies),
        Ok(other) => Err(Fail::Refused(format!("an unexpected reply: {other:?}"))),
        Err(e)
            if matches!(
                e.kind(),
                redis::ErrorKind::Server(_) | redis::ErrorKind::Extension
            ) =>
        {
            Err(Fail::Refused(e.to_string()))
        }
        Err(e) => Err(Fail::Lost(e)),
    }
}

/// The error Redis answered instead of a reply, if it did.
fn refusal(reply: &Value) -> Option<String> {
    match reply {
        Value::ServerError(e) => Some(match e.details() {
            Some(details) => format!("{} {details}", e.code()),
            None => e.code().to_string(),
        }),
        _ => None,
    }
}

/// The reply to `TYPE`: `stream`, `none`, `string`...
fn key_type(reply: &Value) -> Result<String, Fail> {
    if let Some(why) = refusal(reply) {
        return Err(Fail::Refused(why));
    }
    text(reply).ok_or_else(|| Fail::Refused(format!("an unexpected reply to TYPE: {reply:?}")))
}

/// What `XINFO STREAM` says, as far as the reader uses it (Redis 5 and 6
/// give no `entries-added` nor `max-deleted-entry-id`).
#[derive(Clone, Debug, Default, PartialEq)]
struct Info {
    length: Option<u64>,
    /// The newest id the stream ever gave.
    last_generated: Option<StreamId>,
    /// The newest id deleted with `XDEL` (not trimmed).
    max_deleted: Option<StreamId>,
    /// How many entries were ever added.
    entries_added: Option<u64>,
    first: Option<StreamId>,
    last: Option<StreamId>,
    last_digest: Option<u64>,
}

impl Info {
    /// `None` when Redis refused the command (no such key, not allowed).
    fn parse(reply: &Value) -> Option<Info> {
        let pairs: Vec<(&Value, &Value)> = match reply {
            Value::Array(items) => items
                .chunks_exact(2)
                .map(|pair| (&pair[0], &pair[1]))
                .collect(),
            Value::Map(pairs) => pairs.iter().map(|(name, value)| (name, value)).collect(),
            _ => return None,
        };
        let mut info = Info::default();
        for (name, value) in pairs {
            let number = || match value {
                Value::Int(n) => u64::try_from(*n).ok(),
                other => text(other)?.parse().ok(),
            };
            let id = || StreamId::parse(&text(value)?);
            match text(name).as_deref() {
                Some("length") => info.length = number(),
                Some("last-generated-id") => info.last_generated = id(),
                Some("max-deleted-entry-id") => info.max_deleted = id(),
                Some("entries-added") => info.entries_added = number(),
                Some("first-entry") => info.first = entry_id(value),
                Some("last-entry") => {
                    info.last = entry_id(value);
                    info.last_digest = digest(value);
                }
                _ => {}
            }
        }
        Some(info)
    }
}

/// The stream as a whole at one moment, for [`judge`].
#[derive(Debug, Default)]
struct Snapshot {
    /// There is no key.
    missing: bool,
    /// `XINFO STREAM`, when Redis answered it.
    info: Option<Info>,
    /// The first entry's id (`XRANGE - + COUNT 1`).
    first: Option<StreamId>,
    /// The digest of the entry at the reader's position, `Some(None)` when
    /// there is none, `None` when not asked (the position is `0-0`).
    at_position: Option<Option<u64>>,
}

/// What a look at the whole stream tells, when the check of a read failed.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// The stream read so far: the entries read go on to clients, after
    /// the gap event if `lost`.
    Same { lost: bool, accounted: Option<u64> },
    /// Another stream under the key: the gap event, then it is read from
    /// its start (the entries of this read too), without the entries
    /// handed on already.
    Replaced { accounted: Option<u64> },
    /// No stream under the key now: the gap event, then whatever comes is
    /// read from its start.
    Gone,
}

/// What happened to the stream, for a reader at `position` (whose entry
/// had `digest`) that has just read the entries `read` (after `position`,
/// in order), with `accounted` entries of the stream behind `position`.
fn judge(
    position: StreamId,
    digest: Option<u64>,
    read: &[StreamId],
    accounted: Option<u64>,
    snapshot: &Snapshot,
) -> Verdict {
    if snapshot.missing {
        return Verdict::Gone;
    }
    let info = snapshot.info.as_ref();
    // Taken with the counts when there are counts.
    let first = match info {
        Some(info) => info.first,
        None => snapshot.first,
    };
    let replaced = Verdict::Replaced {
        // The entries of the new stream that are no longer there are lost
        // with this gap event.
        accounted: info.and_then(|info| Some(info.entries_added?.saturating_sub(info.length?))),
    };
    let absent = snapshot.at_position == Some(None);
    if position != StreamId::ZERO {
        if let (Some(Some(there)), Some(ours)) = (snapshot.at_position, digest)
            && there != ours
        {
            // Another entry with its id: the stream was emptied and written
            // again within that millisecond.
            return replaced;
        }
        if info
            .and_then(|info| info.last_generated)
            .is_some_and(|newest| newest < position)
        {
            // This stream never reached it: restored from an older copy,
            // or emptied and written again since.
            return replaced;
        }
        if absent
            && first.is_some_and(|first| first <= position)
            && info
                .and_then(|info| info.max_deleted)
                .is_none_or(|deleted| deleted < position)
        {
            // Not trimmed (something older is still there) and, as far as
            // Redis tells, not deleted: not the stream it was in. (Before
            // Redis 7 a deleted entry looks the same: then the gap event
            // is one too many, but nothing is sent twice.)
            return replaced;
        }
    }
    let read_count = read.len() as u64;
    let counted = info.and_then(|info| Some((info, info.entries_added?, accounted?)));
    let Some((info, added, accounted)) = counted else {
        // Nothing to count with (before Redis 7): when the entry at the
        // position is gone and nothing older is there, it was trimmed, and
        // what followed it may have been too.
        return Verdict::Same {
            lost: position != StreamId::ZERO
                && absent
                && first.is_none_or(|first| first > position),
            accounted: accounted.map(|a| a + read_count),
        };
    };
    if added < accounted + read_count {
        // Fewer entries ever added than this reader has seen.
        return replaced;
    }
    let read_to = read.last().copied().unwrap_or(position);
    match unread(info, position, read, read_to) {
        Some(unread) => {
            // Every entry added after the position was read, or is there
            // to read, or is lost.
            let expected = added - accounted;
            let seen = read_count + unread;
            if seen > expected {
                // More than were added since: another stream.
                return replaced;
            }
            Verdict::Same {
                lost: seen < expected,
                accounted: Some(added - unread),
            }
        }
        // Cannot be told now (the check comes again when the reader has
        // caught up): this read lost nothing by trimming, since something
        // at or before the position is still there.
        None => Verdict::Same {
            lost: false,
            accounted: Some(accounted + read_count),
        },
    }
}

/// How many entries after `read_to` the stream holds, when `info` tells:
/// none after its last, all of them when its first is after `read_to`.
fn unread(info: &Info, position: StreamId, read: &[StreamId], read_to: StreamId) -> Option<u64> {
    let length = info.length?;
    if length == 0 {
        return Some(0);
    }
    if info.last? <= read_to {
        return Some(0);
    }
    let first = info.first?;
    if first > read_to {
        return Some(length);
    }
    if first > position {
        // Trimmed into what was just read: what is left of it is there too.
        let still_there = read.iter().filter(|&&id| id >= first).count() as u64;
        return Some(length.saturating_sub(still_there));
    }
    None
}

/// The ids and digests of the entries read last, and below which id
/// everything counts as handed on already (where reading started, or the
/// oldest forgotten).
struct Recent {
    entries: BTreeMap<StreamId, u64>,
    floor: StreamId,
}

impl Recent {
    fn starting_at(start: StreamId) -> Recent {
        Recent {
            entries: BTreeMap::new(),
            floor: start,
        }
    }

    fn remember(&mut self, at: StreamId, digest: u64) {
        self.entries.insert(at, digest);
        if self.entries.len() > REMEMBERED
            && let Some((oldest, _)) = self.entries.pop_first()
        {
            self.floor = self.floor.max(oldest);
        }
    }

    /// Whether the entry `at` with `digest` may have been handed on
    /// already.
    fn handed_on(&self, at: StreamId, digest: u64) -> bool {
        at <= self.floor || self.entries.get(&at) == Some(&digest)
    }
}

/// The entries of an `XREAD` reply: `[[key, [entry, ...]]]`, or nil when
/// the block time passed.
fn entries_of_xread(reply: &Value) -> &[Value] {
    let Value::Array(streams) = reply else {
        return &[];
    };
    let Some(Value::Array(stream)) = streams.first() else {
        return &[];
    };
    match stream.get(1) {
        Some(Value::Array(entries)) => entries,
        _ => &[],
    }
}

/// The id of an entry `[id, fields]`.
pub(crate) fn entry_id(entry: &Value) -> Option<StreamId> {
    let Value::Array(parts) = entry else {
        return None;
    };
    StreamId::parse(&text(parts.first()?)?)
}

/// The id of the first entry of an `XRANGE` / `XREVRANGE` reply.
pub(crate) fn first_id(reply: &Value) -> Option<StreamId> {
    let Value::Array(entries) = reply else {
        return None;
    };
    entry_id(entries.first()?)
}

/// A digest of the fields of an entry `[id, [field, value, ...]]`.
fn digest(entry: &Value) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let Value::Array(parts) = entry else {
        return None;
    };
    let Some(Value::Array(fields)) = parts.get(1) else {
        return None;
    };
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for field in fields {
        if let Value::BulkString(bytes) = field {
            bytes.hash(&mut hasher);
        }
    }
    Some(hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ms: u64) -> StreamId {
        StreamId { ms, seq: 0 }
    }

    fn ids(range: std::ops::RangeInclusive<u64>) -> Vec<StreamId> {
        range.map(id).collect()
    }

    /// What Redis 7 says of a stream that holds the entries `first..=last`
    /// (by millisecond), `length` of them, having given `added` and last
    /// `newest`, with `deleted` its newest `XDEL`ed id.
    fn redis7(
        held: Option<(u64, u64)>,
        length: u64,
        added: u64,
        newest: u64,
        deleted: u64,
    ) -> Info {
        Info {
            length: Some(length),
            last_generated: Some(id(newest)),
            max_deleted: Some(id(deleted)),
            entries_added: Some(added),
            first: held.map(|(first, _)| id(first)),
            last: held.map(|(_, last)| id(last)),
            last_digest: None,
        }
    }

    /// The snapshot of a reader at a position whose entry is gone.
    fn gone_from(info: Info) -> Snapshot {
        Snapshot {
            missing: false,
            first: info.first,
            info: Some(info),
            at_position: Some(None),
        }
    }

    #[test]
    fn the_entry_read_last_deleted_is_no_loss() {
        // e1..e5 read (5 added), e5 deleted, e6 added and read.
        let info = redis7(Some((1, 6)), 5, 6, 6, 5);
        assert_eq!(
            judge(id(5), Some(7), &ids(6..=6), Some(5), &gone_from(info)),
            Verdict::Same {
                lost: false,
                accounted: Some(6)
            }
        );
        // Nothing new yet.
        let info = redis7(Some((1, 4)), 4, 5, 5, 5);
        assert_eq!(
            judge(id(5), Some(7), &[], Some(5), &gone_from(info)),
            Verdict::Same {
                lost: false,
                accounted: Some(5)
            }
        );
    }

    #[test]
    fn a_stream_trimmed_empty_after_it_was_read_is_no_loss() {
        let info = redis7(None, 0, 5, 5, 0);
        assert_eq!(
            judge(id(5), Some(7), &[], Some(5), &gone_from(info)),
            Verdict::Same {
                lost: false,
                accounted: Some(5)
            }
        );
        // Then two more, read.
        let info = redis7(Some((6, 7)), 2, 7, 7, 0);
        assert_eq!(
            judge(id(5), Some(7), &ids(6..=7), Some(5), &gone_from(info)),
            Verdict::Same {
                lost: false,
                accounted: Some(7)
            }
        );
    }

    #[test]
    fn entries_trimmed_before_they_were_read_are_one_loss() {
        // Read up to e5; e6..e17 trimmed away; e18..e20 read.
        let info = redis7(Some((18, 20)), 3, 20, 20, 0);
        let verdict = judge(id(5), Some(7), &ids(18..=20), Some(5), &gone_from(info));
        assert_eq!(
            verdict,
            Verdict::Same {
                lost: true,
                accounted: Some(20)
            }
        );
        // Trimmed while being read: e18 already gone again, e21 not read yet.
        let info = redis7(Some((19, 21)), 3, 21, 21, 0);
        assert_eq!(
            judge(id(5), Some(7), &ids(18..=20), Some(5), &gone_from(info)),
            Verdict::Same {
                lost: true,
                accounted: Some(20)
            }
        );
        // From the start of a stream whose first entries went before the
        // reader got to them.
        let info = redis7(Some((50, 52)), 3, 10, 52, 0);
        let from_start = Snapshot {
            at_position: None,
            ..gone_from(info)
        };
        assert_eq!(
            judge(StreamId::ZERO, None, &ids(50..=52), Some(0), &from_start),
            Verdict::Same {
                lost: true,
                accounted: Some(10)
            }
        );
    }

    #[test]
    fn a_stream_emptied_and_written_again_is_replaced() {
        // FLUSHALL, then an entry in the position's millisecond, then one
        // after it.
        let position = StreamId { ms: 10, seq: 3 };
        let info = Info {
            first: Some(id(10)),
            ..redis7(Some((10, 11)), 2, 2, 11, 0)
        };
        assert_eq!(
            judge(position, Some(7), &ids(11..=11), Some(4), &gone_from(info)),
            Verdict::Replaced { accounted: Some(0) }
        );
        // Restarted empty, and written again before the reader was back:
        // fewer entries ever added than it had read...
        let info = redis7(Some((20, 21)), 2, 2, 21, 0);
        assert_eq!(
            judge(
                id(10),
                Some(7),
                &ids(20..=21),
                Some(100),
                &gone_from(info.clone())
            ),
            Verdict::Replaced { accounted: Some(0) }
        );
        // ... or more entries after the position than were added since.
        assert_eq!(
            judge(id(10), Some(7), &ids(20..=21), Some(1), &gone_from(info)),
            Verdict::Replaced { accounted: Some(0) }
        );
        // The same id, another entry.
        let info = redis7(Some((10, 10)), 1, 1, 10, 0);
        let same_id = Snapshot {
            at_position: Some(Some(8)),
            ..gone_from(info)
        };
        assert!(matches!(
            judge(id(10), Some(7), &[], Some(3), &same_id),
            Verdict::Replaced { .. }
        ));
    }

    #[test]
    fn a_stream_restored_from_an_older_copy_is_replaced() {
        // Up to e8 in the copy; the reader had read up to e10.
        let info = redis7(Some((1, 8)), 8, 8, 8, 0);
        assert_eq!(
            judge(id(10), Some(7), &[], Some(10), &gone_from(info)),
            Verdict::Replaced { accounted: Some(0) }
        );
        // And one appended since.
        let info = redis7(Some((1, 11)), 9, 9, 11, 0);
        assert!(matches!(
            judge(id(10), Some(7), &ids(11..=11), Some(10), &gone_from(info)),
            Verdict::Replaced { .. }
        ));
    }

    #[test]
    fn no_stream_is_gone() {
        let snapshot = Snapshot {
            missing: true,
            ..Snapshot::default()
        };
        assert_eq!(
            judge(id(10), Some(7), &[], Some(10), &snapshot),
            Verdict::Gone
        );
    }

    #[test]
    fn a_reader_catching_up_counts_when_it_has() {
        // e5 deleted, 2000 more: this read is not the end.
        let info = redis7(Some((1, 2005)), 2004, 2005, 2005, 5);
        assert_eq!(
            judge(id(5), Some(7), &ids(6..=1029), Some(5), &gone_from(info)),
            Verdict::Same {
                lost: false,
                accounted: Some(1029)
            }
        );
    }

    #[test]
    fn before_redis_7_a_trimmed_position_is_a_loss_and_a_deleted_one_a_replacement() {
        let old = |info: Info| Info {
            max_deleted: None,
            entries_added: None,
            ..info
        };
        let trimmed = gone_from(old(redis7(Some((6, 7)), 2, 7, 7, 0)));
        assert_eq!(
            judge(id(5), Some(7), &ids(6..=7), None, &trimmed),
            Verdict::Same {
                lost: true,
                accounted: None
            }
        );
        let deleted = gone_from(old(redis7(Some((1, 6)), 5, 6, 6, 5)));
        assert_eq!(
            judge(id(5), Some(7), &ids(6..=6), None, &deleted),
            Verdict::Replaced { accounted: None }
        );
        // Without XINFO at all (not allowed): the first entry tells.
        let bare = Snapshot {
            missing: false,
            info: None,
            first: Some(id(6)),
            at_position: Some(None),
        };
        assert_eq!(
            judge(id(5), Some(7), &ids(6..=6), None, &bare),
            Verdict::Same {
                lost: true,
                accounted: None
            }
        );
    }

    #[test]
    fn recent_entries_are_known_and_older_ones_count_as_handed_on() {
        let mut recent = Recent::starting_at(id(10));
        assert!(recent.handed_on(id(10), 1));
        assert!(!recent.handed_on(id(11), 1));
        recent.remember(id(11), 1);
        assert!(recent.handed_on(id(11), 1));
        assert!(
            !recent.handed_on(id(11), 2),
            "another entry with the same id"
        );
        for ms in 12..12 + REMEMBERED as u64 {
            recent.remember(id(ms), 1);
        }
        assert_eq!(recent.entries.len(), REMEMBERED);
        assert!(
            recent.handed_on(id(11), 2),
            "forgotten: older than the floor"
        );
        assert!(!recent.handed_on(id(12), 2));
    }

    #[test]
    fn xinfo_stream_is_read_as_redis_answers_it() {
        let bulk = |text: &str| Value::BulkString(text.as_bytes().to_vec());
        let entry = |at: &str| {
            Value::Array(vec![
                bulk(at),
                Value::Array(vec![bulk("d"), bulk("data: x\n\n")]),
            ])
        };
        let reply = Value::Array(vec![
            bulk("length"),
            Value::Int(2),
            bulk("radix-tree-keys"),
            Value::Int(1),
            bulk("last-generated-id"),
            bulk("9-1"),
            bulk("max-deleted-entry-id"),
            bulk("9-0"),
            bulk("entries-added"),
            Value::Int(4),
            bulk("recorded-first-entry-id"),
            bulk("3-0"),
            bulk("groups"),
            Value::Int(0),
            bulk("first-entry"),
            entry("3-0"),
            bulk("last-entry"),
            entry("9-1"),
        ]);
        let info = Info::parse(&reply).expect("parsed");
        assert_eq!(info.length, Some(2));
        assert_eq!(info.last_generated, Some(StreamId { ms: 9, seq: 1 }));
        assert_eq!(info.max_deleted, Some(id(9)));
        assert_eq!(info.entries_added, Some(4));
        assert_eq!(info.first, Some(id(3)));
        assert_eq!(info.last, Some(StreamId { ms: 9, seq: 1 }));
        assert_eq!(info.last_digest, digest(&entry("9-1")));
        // An empty stream's entries are nil.
        let empty = Value::Array(vec![
            bulk("length"),
            Value::Int(0),
            bulk("first-entry"),
            Value::Nil,
            bulk("last-entry"),
            Value::Nil,
        ]);
        let info = Info::parse(&empty).expect("parsed");
        assert_eq!((info.first, info.last), (None, None));
        assert!(Info::parse(&Value::Nil).is_none());
    }
}
