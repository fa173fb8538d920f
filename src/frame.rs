//! `Frame`: encoded events, shared by every client that receives them.

use std::fmt;
use std::sync::Arc;

/// Encoded event-stream bytes holding one or more whole events, shared by
/// every client that receives them.
///
/// The hub encodes each event once, in the publishing thread; when several
/// events are waiting together it joins them into one frame, so a client
/// that is behind gets them in one write. Cloning a frame is cheap (a
/// reference count).
///
/// # Examples
///
/// ```
/// let hub = sse_server::Hub::builder().history_events(0).build()?;
/// let subscription = hub.subscribe()?;
/// hub.notify("hello")?;
/// let frame = subscription.recv()?;
/// assert_eq!(frame.as_bytes(), b"data: hello\n\n");
/// assert_eq!(frame.events(), 1);
/// # hub.shutdown()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Frame(Arc<FrameData>);

struct FrameData {
    bytes: Box<[u8]>,
    events: u32,
}

impl Frame {
    pub(crate) fn new(bytes: Vec<u8>, events: u32) -> Frame {
        Frame(Arc::new(FrameData {
            bytes: bytes.into_boxed_slice(),
            events,
        }))
    }

    /// One frame holding `frames` back to back.
    pub(crate) fn join(frames: &[Frame]) -> Frame {
        let len = frames.iter().map(|frame| frame.as_bytes().len()).sum();
        let mut bytes = Vec::with_capacity(len);
        let mut events = 0;
        for frame in frames {
            bytes.extend_from_slice(frame.as_bytes());
            events += frame.0.events;
        }
        Frame::new(bytes, events)
    }

    /// The encoded events, ready to write to a client.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0.bytes
    }

    /// How many events the frame holds. Comments ([`Event::comment`](crate::Event::comment)) and
    /// the gap events that tell a client it missed events are not counted.
    pub fn events(&self) -> usize {
        self.0.events as usize
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Payloads stay out of Debug output so that logging a frame never
        // leaks what it carries.
        f.debug_struct("Frame")
            .field("bytes", &self.0.bytes.len())
            .field("events", &self.0.events)
            .finish()
    }
}
