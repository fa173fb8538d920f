//! Looking at parsed events.

use sse_server::parse::ParsedEvent;

/// The data of each event.
pub fn datas(events: &[ParsedEvent]) -> Vec<String> {
    events.iter().map(|e| e.data.clone()).collect()
}
