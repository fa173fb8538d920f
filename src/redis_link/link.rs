//! `Link`: the hub's handle on its two Redis threads.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Sender;

use crate::config::RedisSettings;
use crate::error::Error;
use crate::messages::Outgoing;
use crate::redis_link::append::Appender;
use crate::redis_link::connection::LinkState;
use crate::redis_link::read::Reader;
use crate::sync::lock;

/// The hub's link to the shared stream.
pub(crate) struct Link {
    state: Arc<LinkState>,
    appender: Appender,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Link {
    /// Starts the reader and appender threads. The reader hands the
    /// stream's events to the hub thread through `hub`. When Redis can be
    /// reached now, the link is up when this returns; otherwise the threads
    /// keep trying.
    pub(crate) fn start(
        settings: &RedisSettings,
        gap_event: Option<String>,
        client: redis::Client,
        node: u64,
        hub: Sender<Outgoing>,
    ) -> Result<Link, Error> {
        let state = Arc::new(LinkState::default());
        let reader = Reader::new(settings, gap_event, client.clone(), Arc::clone(&state), hub);
        let reader = std::thread::Builder::new()
            .name("sse-redis-read".into())
            .spawn(move || reader.run())
            .map_err(Error::Spawn)?;
        let (appender, appending) = Appender::start(settings, client, node, &state)?;
        let link = Link {
            state,
            appender,
            threads: Mutex::new(vec![reader, appending]),
        };
        link.wait_until_up(settings.timeout);
        Ok(link)
    }

    /// Waits, up to about `timeout` (10 s at most), for both connections:
    /// with the node number's own `timeout` before it, `build` waits about
    /// twice `redis_timeout` for a Redis that does not answer.
    fn wait_until_up(&self, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout.min(Duration::from_secs(10));
        while !self.connected() && std::time::Instant::now() < deadline {
            std::thread::park_timeout(Duration::from_millis(2));
        }
    }

    /// Appends `outgoing` to the stream, in order, in one round trip; `Ok`
    /// once Redis has them all.
    pub(crate) fn append(&self, outgoing: &[Outgoing]) -> Result<(), Error> {
        self.appender.append(outgoing)
    }

    /// Both connections are up.
    pub(crate) fn connected(&self) -> bool {
        self.state.connected()
    }

    /// What the link's threads say of it, for a reader that must not hold
    /// the hub (the metrics collector).
    #[cfg_attr(not(feature = "prometheus-client"), allow(dead_code))]
    pub(crate) fn state(&self) -> Arc<LinkState> {
        Arc::clone(&self.state)
    }

    /// Stops both threads and waits for them: the reader within its block
    /// time (500 ms) while Redis answers; while it does not, each thread
    /// ends once what it waits for times out (`connect`: one
    /// `redis_timeout`, or that plus the block time for the reader; a
    /// command: as long for each reply it waits for). After this, the
    /// reader no longer holds the hub thread's sender.
    pub(crate) fn stop(&self) {
        self.state.stopping.store(true, Ordering::Release);
        self.appender.stop();
        for thread in std::mem::take(&mut *lock(&self.threads)) {
            if thread.join().is_err() {
                log::error!("BUG: a Redis link thread panicked");
            }
        }
    }
}
