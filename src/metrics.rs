//! The hub's metrics: its counters in the Prometheus text exposition
//! format, and (feature `prometheus-client`) a collector that puts the same
//! families into a `prometheus_client` registry. Both read one [`Sample`]
//! through one table of families, so their names, help and values agree.

use std::fmt::Write;

use crate::counters::{Departure, Rejection, Tallies};
use crate::stats::Stats;

/// The `Content-Type` of [`Hub::metrics`](crate::Hub::metrics): the
/// Prometheus text exposition format, version 0.0.4, which every Prometheus
/// server and most agents scrape.
///
/// For a program that serves the metrics from its own `tiny_http` server
/// ([`ServerBuilder::metrics`](crate::ServerBuilder::metrics) does it for a
/// [`Server`](crate::Server)).
///
/// # Examples
///
/// ```
/// use sse_server::{Hub, METRICS_CONTENT_TYPE, tiny_http::{Header, Response}};
///
/// let hub = Hub::new()?;
/// let content_type = Header::from_bytes("Content-Type", METRICS_CONTENT_TYPE).expect("valid");
/// let response = Response::from_string(hub.metrics()).with_header(content_type);
/// # drop(response);
/// # Ok::<(), sse_server::Error>(())
/// ```
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The label that tells rejections and disconnects apart.
const REASON: &str = "reason";

/// What one scrape reads: the hub's [`Stats`] and the counts only the
/// metrics show.
pub(crate) struct Sample {
    pub(crate) stats: Stats,
    pub(crate) tallies: Tallies,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

/// The base unit a family's name ends with.
#[derive(Clone, Copy, Debug)]
enum Unit {
    Bytes,
}

impl Unit {
    fn suffix(self) -> &'static str {
        match self {
            Unit::Bytes => "bytes",
        }
    }
}

#[derive(Debug)]
enum Values {
    One(u64),
    /// One series per value of the `reason` label.
    ByReason(Vec<(&'static str, u64)>),
}

/// One metric family.
#[derive(Debug)]
struct Family {
    /// The name without its unit and, for a counter, without `_total`: what
    /// `prometheus_client` takes.
    name: &'static str,
    unit: Option<Unit>,
    help: &'static str,
    kind: Kind,
    values: Values,
}

impl Family {
    fn gauge(name: &'static str, help: &'static str, value: usize) -> Family {
        Family {
            name,
            unit: None,
            help,
            kind: Kind::Gauge,
            values: Values::One(value as u64),
        }
    }

    fn counter(name: &'static str, help: &'static str, value: u64) -> Family {
        Family {
            name,
            unit: None,
            help,
            kind: Kind::Counter,
            values: Values::One(value),
        }
    }

    fn in_bytes(mut self) -> Family {
        self.unit = Some(Unit::Bytes);
        self
    }

    fn by_reason(mut self, values: Vec<(&'static str, u64)>) -> Family {
        self.values = Values::ByReason(values);
        self
    }

    /// The name as the Prometheus text format shows it: with its unit and,
    /// for a counter, `_total`.
    fn exposed_name(&self) -> String {
        let mut name = String::from(self.name);
        if let Some(unit) = self.unit {
            name.push('_');
            name.push_str(unit.suffix());
        }
        if self.kind == Kind::Counter {
            name.push_str("_total");
        }
        name
    }
}

/// Every family, with its values in `sample`.
fn families(sample: &Sample) -> Vec<Family> {
    let Sample { stats, tallies } = sample;
    let rejected = Rejection::ALL
        .iter()
        .map(|why| why.label())
        .zip(tallies.rejected)
        .collect();
    let disconnects = Departure::ALL
        .iter()
        .map(|departure| departure.label())
        .zip(tallies.disconnects)
        .collect();
    // Only the `redis` feature adds a family afterwards.
    #[cfg_attr(not(feature = "redis"), allow(unused_mut))]
    let mut families = vec![
        Family::gauge(
            "sse_clients_connected",
            "Clients connected now: event streams and subscriptions.",
            stats.clients,
        ),
        Family::gauge("sse_streams_open", "Event streams open now.", stats.streams),
        Family::counter(
            "sse_streams_opened",
            "Event streams started: clients let in by the connect hook that joined the hub.",
            tallies.streams_opened,
        ),
        Family::counter(
            "sse_streams_rejected",
            "Clients turned away before their stream started, by reason.",
            0,
        )
        .by_reason(rejected),
        Family::counter("sse_disconnects", "Event streams ended, by reason.", 0)
            .by_reason(disconnects),
        Family::counter(
            "sse_events_published",
            "Events accepted by notify, publish, publish_to and send_to.",
            stats.published,
        ),
        Family::gauge(
            "sse_events_pending",
            "Events published but not yet taken up by the hub thread.",
            stats.pending,
        ),
        Family::counter(
            "sse_deliveries_queued",
            "Event deliveries put into clients' queues (one event for ten clients counts ten).",
            stats.queued,
        ),
        Family::counter(
            "sse_deliveries_dropped",
            "Event deliveries missed because a client's queue was full.",
            stats.dropped,
        ),
        Family::counter(
            "sse_evictions",
            "Streams the hub ended because the client was too slow or sent too many \
             requests behind its stream.",
            stats.evicted,
        ),
        Family::counter(
            "sse_written",
            "Bytes written to event streams' connections, response heads and framing included.",
            tallies.written_bytes,
        )
        .in_bytes(),
        Family::gauge(
            "sse_history_events",
            "Events in the replay history.",
            stats.history_events,
        ),
        Family::gauge(
            "sse_history",
            "Bytes of encoded events in the replay history.",
            stats.history_bytes,
        )
        .in_bytes(),
    ];
    #[cfg(feature = "redis")]
    if let Some(connected) = stats.redis_connected {
        families.push(Family::gauge(
            "sse_redis_connected",
            "1 while both connections to the shared Redis Stream are up, else 0.",
            usize::from(connected),
        ));
    }
    families
}

/// `sample` in the Prometheus text exposition format, version 0.0.4.
pub(crate) fn text(sample: &Sample) -> String {
    let mut out = String::with_capacity(4096);
    for family in families(sample) {
        let name = family.exposed_name();
        let kind = match family.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        // Writing to a String cannot fail. The help texts and label values
        // are ours: nothing in them needs escaping.
        let _ = writeln!(out, "# HELP {name} {}", family.help);
        let _ = writeln!(out, "# TYPE {name} {kind}");
        match &family.values {
            Values::One(value) => {
                let _ = writeln!(out, "{name} {value}");
            }
            Values::ByReason(values) => {
                for (reason, value) in values {
                    let _ = writeln!(out, "{name}{{{REASON}=\"{reason}\"}} {value}");
                }
            }
        }
    }
    out
}

/// The hub's metrics as a `prometheus_client` collector: each scrape reads
/// the counters afresh.
#[cfg(feature = "prometheus-client")]
pub(crate) struct Collector {
    sample: Box<dyn Fn() -> Sample + Send + Sync>,
}

#[cfg(feature = "prometheus-client")]
impl Collector {
    /// A collector that calls `sample` at each scrape.
    pub(crate) fn new(sample: impl Fn() -> Sample + Send + Sync + 'static) -> Collector {
        Collector {
            sample: Box::new(sample),
        }
    }
}

#[cfg(feature = "prometheus-client")]
impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector").finish_non_exhaustive()
    }
}

#[cfg(feature = "prometheus-client")]
impl prometheus_client::collector::Collector for Collector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> std::fmt::Result {
        use prometheus_client::metrics::MetricType;
        use prometheus_client::registry;

        let sample = (self.sample)();
        for family in families(&sample) {
            let unit = family.unit.map(|unit| match unit {
                Unit::Bytes => registry::Unit::Bytes,
            });
            let kind = match family.kind {
                Kind::Counter => MetricType::Counter,
                Kind::Gauge => MetricType::Gauge,
            };
            let mut metric =
                encoder.encode_descriptor(family.name, family.help, unit.as_ref(), kind)?;
            match family.values {
                Values::One(value) => encode_value(family.kind, value, metric)?,
                Values::ByReason(values) => {
                    for (reason, value) in values {
                        let labels = [(REASON, reason)];
                        encode_value(family.kind, value, metric.encode_family(&labels)?)?;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(feature = "prometheus-client")]
fn encode_value(
    kind: Kind,
    value: u64,
    encoder: prometheus_client::encoding::MetricEncoder,
) -> std::fmt::Result {
    use prometheus_client::encoding::EncodeMetric;
    use prometheus_client::metrics::counter::ConstCounter;
    use prometheus_client::metrics::gauge::ConstGauge;

    match kind {
        Kind::Counter => ConstCounter::new(value).encode(encoder),
        Kind::Gauge => ConstGauge::new(value).encode(encoder),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_has_help_type_and_its_values() {
        let tallies = Tallies {
            streams_opened: 7,
            rejected: [1, 2, 3, 4, 5, 6, 7],
            disconnects: [10, 20, 30, 40, 50],
            written_bytes: 1234,
        };
        let stats = Stats {
            clients: 3,
            streams: 2,
            published: 9,
            history_bytes: 99,
            ..Stats::default()
        };
        let text = text(&Sample { stats, tallies });
        for expected in [
            "# HELP sse_clients_connected Clients connected now: event streams and subscriptions.\n\
             # TYPE sse_clients_connected gauge\n\
             sse_clients_connected 3\n",
            "# TYPE sse_streams_open gauge\nsse_streams_open 2\n",
            "# TYPE sse_streams_opened_total counter\nsse_streams_opened_total 7\n",
            "sse_streams_rejected_total{reason=\"too_many_clients\"} 1\n\
             sse_streams_rejected_total{reason=\"shutting_down\"} 2\n\
             sse_streams_rejected_total{reason=\"no_thread\"} 3\n\
             sse_streams_rejected_total{reason=\"hook\"} 4\n\
             sse_streams_rejected_total{reason=\"id_in_use\"} 5\n\
             sse_streams_rejected_total{reason=\"too_many_topics\"} 6\n\
             sse_streams_rejected_total{reason=\"topic_too_long\"} 7\n",
            "sse_disconnects_total{reason=\"closed\"} 10\n\
             sse_disconnects_total{reason=\"write_error\"} 20\n\
             sse_disconnects_total{reason=\"timed_out\"} 30\n\
             sse_disconnects_total{reason=\"evicted\"} 40\n\
             sse_disconnects_total{reason=\"shutdown\"} 50\n",
            "\nsse_events_published_total 9\n",
            "# TYPE sse_written_bytes_total counter\nsse_written_bytes_total 1234\n",
            "# TYPE sse_history_bytes gauge\nsse_history_bytes 99\n",
        ] {
            assert!(text.contains(expected), "{expected:?} in\n{text}");
        }
        let lines = text.lines().count();
        let families = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
        assert_eq!(
            text.lines().filter(|l| l.starts_with("# HELP ")).count(),
            families
        );
        // One value each, but the seven rejection and five disconnect reasons.
        assert_eq!(lines, families * 3 + 6 + 4);
    }
}
