//! The connect and disconnect hooks: what they see and what they decide.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::client_id::ClientId;

/// The most topics one client may subscribe to; a request with more is
/// answered `400 Bad Request`.
pub const MAX_TOPICS: usize = 64;

/// The longest topic name a client may subscribe to, in bytes; a request
/// with a longer one is answered `400 Bad Request`. (A stream keeps its
/// topics for as long as it lives: this bounds what a client's query can
/// make it hold.)
pub const MAX_TOPIC_BYTES: usize = 1024;

/// What the connect hook sees of a request for an event stream.
///
/// # Examples
///
/// ```
/// use sse_server::{Decision, Hub};
///
/// let hub = Hub::builder()
///     .on_connect(|request| match request.header("Authorization") {
///         Some("Bearer let-me-in") => Decision::accept(),
///         _ => Decision::reject(401),
///     })
///     .build()?;
/// # Ok::<(), sse_server::Error>(())
/// ```
pub struct ConnectRequest<'a> {
    pub(crate) request: &'a tiny_http::Request,
}

impl fmt::Debug for ConnectRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values (cookies, tokens) stay out of Debug output.
        f.debug_struct("ConnectRequest")
            .field("method", self.request.method())
            .field("path", &self.path())
            .field("remote_addr", &self.remote_addr())
            .finish()
    }
}

impl ConnectRequest<'_> {
    /// The path, without the query string (nor, for a request whose
    /// target is an absolute URL, its scheme and host).
    pub fn path(&self) -> &str {
        split_target(self.request.url()).0
    }

    /// The query string (after `?`), empty when there is none.
    pub fn query(&self) -> &str {
        query_of(self.request)
    }

    /// Every value of the query parameter `name`, percent-decoded (`+` is a
    /// space), in order.
    pub fn query_values(&self, name: &str) -> Vec<String> {
        query_values(self.query(), name)
    }

    /// The value of the first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header_of(self.request, name)
    }

    /// The client's address, when the connection has one.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.request.remote_addr().copied()
    }

    /// The id of the last event the client saw: the `Last-Event-ID` header,
    /// or else the `lastEventId` query parameter (for polyfills that cannot
    /// set headers).
    pub fn last_event_id(&self) -> Option<String> {
        last_event_id(self.request)
    }

    /// The topics the request asks for: every `topic` query parameter.
    pub fn topics(&self) -> Vec<String> {
        self.query_values("topic")
    }

    /// The whole `tiny_http` request, for anything the methods above miss.
    pub fn request(&self) -> &tiny_http::Request {
        self.request
    }
}

/// What the connect hook decided about a client.
///
/// # Examples
///
/// ```
/// use sse_server::{ClientId, Decision};
///
/// let plain = Decision::accept();
/// let chosen = Decision::accept()
///     .topics(["news", "user-42"])
///     .id(ClientId::new(42));
/// let go_away = Decision::reject(204); // browsers stop reconnecting on 204
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub(crate) outcome: Outcome,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Accept {
        topics: Option<Vec<String>>,
        id: Option<ClientId>,
    },
    Reject(u16),
}

impl Decision {
    /// Accept the client, with the topics of its `?topic=` parameters and
    /// an id the hub picks.
    pub fn accept() -> Decision {
        Decision {
            outcome: Outcome::Accept {
                topics: None,
                id: None,
            },
        }
    }

    /// Refuse the client with this HTTP status: 401 or 403 for a client
    /// that may not listen, 204 to tell a browser to stop reconnecting.
    /// A status outside 200–599 is sent as 403.
    pub fn reject(status: u16) -> Decision {
        let status = if (200..600).contains(&status) {
            status
        } else {
            403
        };
        Decision {
            outcome: Outcome::Reject(status),
        }
    }

    /// Subscribes the client to these topics instead of the ones in its
    /// query string. No effect on a rejection.
    pub fn topics<I, T>(mut self, chosen: I) -> Decision
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        if let Outcome::Accept { topics, .. } = &mut self.outcome {
            *topics = Some(chosen.into_iter().map(Into::into).collect());
        }
        self
    }

    /// Gives the client this id instead of one the hub picks, so that
    /// [`Hub::send_to`](crate::Hub::send_to) can reach it by a name the
    /// program knows. Ids must be unique among connected clients: a client
    /// given an id that is in use is refused with `409 Conflict`. No effect
    /// on a rejection.
    pub fn id(mut self, chosen: ClientId) -> Decision {
        if let Outcome::Accept { id, .. } = &mut self.outcome {
            *id = Some(chosen);
        }
        self
    }
}

/// Why a client left, as told to the disconnect hook.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The client closed or reset the connection (seen by the watch thread,
    /// or as a reset or broken pipe on the next write). Where the kernel's
    /// own timeout error cannot be seen any more (a stream whose socket
    /// `tiny_http`'s reading thread still holds, see the crate docs), also
    /// what a client that stopped reading is reported as when the kernel cut
    /// it off before the write timeout ran out (see
    /// [`HubBuilder::write_timeout`](crate::HubBuilder::write_timeout)).
    Closed,
    /// Writing to the client failed for another reason.
    WriteError(std::io::ErrorKind),
    /// The client took no bytes for the write timeout.
    TimedOut,
    /// The hub ended the stream: the client was too slow under
    /// [`SlowClient::Disconnect`](crate::SlowClient::Disconnect), or sent too
    /// many requests behind its stream.
    Evicted,
    /// The hub shut down.
    Shutdown,
}

/// What the disconnect hook learns about a client that left.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Disconnect {
    /// The client's id.
    pub id: ClientId,
    /// The client's address, when the connection had one.
    pub remote_addr: Option<SocketAddr>,
    /// Why it left.
    pub reason: DisconnectReason,
    /// Events written to the client.
    pub delivered: u64,
    /// Events it missed because its queue was full, in all: the count is
    /// taken once the hub has let go of the client.
    pub dropped: u64,
}

pub(crate) type ConnectHook = Arc<dyn Fn(&ConnectRequest<'_>) -> Decision + Send + Sync>;
pub(crate) type DisconnectHook = Arc<dyn Fn(&Disconnect) + Send + Sync>;

/// The query string of a request (after `?`), empty when there is none.
pub(crate) fn query_of(request: &tiny_http::Request) -> &str {
    split_target(request.url()).1
}

/// A request target's path and query (empty when there is none). A target
/// in absolute form (`http://host/path?query`, which RFC 9112 §3.2.2 says a
/// server must accept, although mostly proxies send it) loses its scheme
/// and host first; an empty path is `/`.
pub(crate) fn split_target(target: &str) -> (&str, &str) {
    let target = match target.split_once("://") {
        Some((scheme, rest))
            if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") =>
        {
            rest.find(['/', '?']).map_or("", |at| &rest[at..])
        }
        _ => target,
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    (if path.is_empty() { "/" } else { path }, query)
}

/// The value of a request's first header called `name` (case-insensitive).
pub(crate) fn header_of<'a>(request: &'a tiny_http::Request, name: &str) -> Option<&'a str> {
    request
        .headers()
        .iter()
        .find(|header| header.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|header| header.value.as_str())
}

pub(crate) fn last_event_id(request: &tiny_http::Request) -> Option<String> {
    let id = header_of(request, "Last-Event-ID")
        .map(str::to_owned)
        .or_else(|| {
            query_values(query_of(request), "lastEventId")
                .into_iter()
                .next()
        });
    // Browsers send no header rather than an empty one: empty means none.
    id.filter(|id| !id.is_empty())
}

/// Every value of `name` in a query string, percent-decoded.
pub(crate) fn query_values(query: &str, name: &str) -> Vec<String> {
    query
        .split('&')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key) == name).then(|| percent_decode(value))
        })
        .collect()
}

/// Decodes `%XX` escapes and `+`; bytes that do not form UTF-8 become
/// U+FFFD, and a `%` not followed by two hex digits stays as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (
                    bytes.get(at + 1).and_then(|&b| hex(b)),
                    bytes.get(at + 2).and_then(|&b| hex(b)),
                ) {
                    (Some(high), Some(low)) => {
                        out.push((high * 16 + low) as u8);
                        at += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        at += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters() {
        assert_eq!(query_values("topic=a&topic=b&x=1", "topic"), ["a", "b"]);
        assert_eq!(query_values("topic=a%2Fb+c&topic", "topic"), ["a/b c", ""]);
        assert_eq!(query_values("", "topic"), Vec::<String>::new());
        assert_eq!(query_values("t=%zz%4", "t"), ["%zz%4"]);
        assert_eq!(query_values("t=%ff", "t"), ["\u{fffd}"]);
    }

    #[test]
    fn targets_split_into_path_and_query() {
        for (target, want) in [
            ("/events", ("/events", "")),
            ("/events?topic=a", ("/events", "topic=a")),
            ("http://h:1/events?topic=a", ("/events", "topic=a")),
            ("HTTPS://h/events", ("/events", "")),
            ("http://h?topic=a", ("/", "topic=a")),
            ("http://h", ("/", "")),
            ("/go/http://h/events", ("/go/http://h/events", "")),
            ("ftp://h/events", ("ftp://h/events", "")),
            ("", ("/", "")),
        ] {
            assert_eq!(split_target(target), want, "{target:?}");
        }
    }

    #[test]
    fn reject_status_is_sane() {
        assert_eq!(Decision::reject(99).outcome, Outcome::Reject(403));
        assert_eq!(Decision::reject(204).outcome, Outcome::Reject(204));
    }
}
