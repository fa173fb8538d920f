//! Clients that connect at the same moment (a reconnect storm: every
//! `EventSource` comes back at once after a restart or a network blip) are
//! all served.

mod support;

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use sse_server::Server;
use support::client::Client;
use support::hubs::plain_hub;
use support::init_logging;

const CLIENTS: usize = 40;
const ROUNDS: usize = 5;
const HEAD_SECS: u64 = 5;

#[test]
fn a_burst_of_simultaneous_clients_is_all_served() {
    init_logging();
    for round in 0..ROUNDS {
        let hub = plain_hub().build().expect("build the hub");
        let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
        let addr = server.local_addr();

        let start = Arc::new(Barrier::new(CLIENTS));
        let connecting: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let start = Arc::clone(&start);
                thread::spawn(move || {
                    start.wait();
                    Client::connect_within(addr, "/events", Duration::from_secs(HEAD_SECS))
                })
            })
            .collect();
        let results: Vec<_> = connecting
            .into_iter()
            .map(|t| t.join().expect("a connecting thread panicked"))
            .collect();
        let failed: Vec<String> = results
            .iter()
            .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
            .collect();
        assert!(
            failed.is_empty(),
            "round {round}: {} of {CLIENTS} clients got no response head within {HEAD_SECS} s \
             ({} streams registered): {:?}",
            failed.len(),
            hub.stats().clients,
            failed.first()
        );
        let mut clients: Vec<Client> = results.into_iter().map(|r| r.expect("checked")).collect();
        assert_eq!(hub.stats().clients, CLIENTS);
        hub.notify(format!("round {round}")).expect("notify");
        for client in &mut clients {
            assert_eq!(client.status, 200);
            let event = client.expect_event(Duration::from_secs(5), "the round's event");
            assert_eq!(event.data, format!("round {round}"));
        }
        hub.shutdown().expect("shutdown");
    }
}
