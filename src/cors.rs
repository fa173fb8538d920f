//! Cross-origin resource sharing for the event stream.

/// Which web origins may open the event stream from a page of theirs, set
/// with [`HubBuilder::cors`](crate::HubBuilder::cors).
///
/// Without it (the default) the stream sends no CORS headers, so browsers
/// let only pages of the server's own origin read it. With it:
///
/// * [`Cors::any`]: every origin, answered `Access-Control-Allow-Origin: *`
///   (browsers then send no cookies: `withCredentials` streams fail).
/// * [`Cors::origins`]: the listed origins only; a listed origin is echoed
///   back with `Access-Control-Allow-Credentials: true` and `Vary: Origin`,
///   so `new EventSource(url, { withCredentials: true })` works. A request
///   from an origin not on the list gets `403 Forbidden`.
///
/// A request with no `Origin` header (same-origin navigation, `curl`,
/// servers) is served either way. `OPTIONS` preflights on the stream path
/// are answered `204` with `Access-Control-Allow-Methods: GET` and
/// `Access-Control-Allow-Headers: Last-Event-ID, Cache-Control,
/// Authorization`, cached for a day (`Access-Control-Max-Age: 86400`).
///
/// # Examples
///
/// ```
/// use sse_server::{Cors, Hub};
///
/// let hub = Hub::builder()
///     .cors(Cors::origins(["https://app.example.com", "http://localhost:3000"]))
///     .build()?;
/// # Ok::<(), sse_server::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cors {
    origins: Option<Vec<String>>,
}

/// What a request's `Origin` earns it.
pub(crate) enum Verdict {
    /// No CORS headers (no `Origin` header).
    Plain,
    /// These headers.
    Allowed(Vec<(&'static str, String)>),
    /// 403.
    Refused,
}

impl Cors {
    /// Every origin may read the stream (without credentials).
    pub fn any() -> Cors {
        Cors { origins: None }
    }

    /// Only these origins (scheme, host and port, as browsers send them in
    /// `Origin`, e.g. `https://example.com:8443`) may read the stream, with
    /// credentials. Entries holding anything but visible ASCII cannot match
    /// an `Origin` header and are left out.
    pub fn origins<I, T>(origins: I) -> Cors
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        let origins = origins
            .into_iter()
            .map(Into::into)
            .filter(|origin| {
                let valid = !origin.is_empty() && origin.bytes().all(|b| b.is_ascii_graphic());
                if !valid {
                    log::warn!("CORS origin {origin:?} is not visible ASCII; left out");
                }
                valid
            })
            .collect();
        Cors {
            origins: Some(origins),
        }
    }

    pub(crate) fn verdict(&self, origin: Option<&str>) -> Verdict {
        let Some(origin) = origin else {
            return Verdict::Plain;
        };
        match &self.origins {
            None => Verdict::Allowed(vec![("Access-Control-Allow-Origin", "*".into())]),
            Some(list) => match list.iter().find(|allowed| *allowed == origin) {
                Some(allowed) => Verdict::Allowed(vec![
                    ("Access-Control-Allow-Origin", allowed.clone()),
                    ("Access-Control-Allow-Credentials", "true".into()),
                    ("Vary", "Origin".into()),
                ]),
                None => Verdict::Refused,
            },
        }
    }
}

/// The extra headers a preflight answer carries.
pub(crate) const PREFLIGHT: [(&str, &str); 3] = [
    ("Access-Control-Allow-Methods", "GET"),
    (
        "Access-Control-Allow-Headers",
        "Last-Event-ID, Cache-Control, Authorization",
    ),
    ("Access-Control-Max-Age", "86400"),
];
