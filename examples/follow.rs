//! Follows an event stream and prints each event as it arrives.
//!
//! ```text
//! cargo run --features client --example follow -- http://127.0.0.1:8080/events
//! cargo run --features client --example follow -- URL --header "Authorization: Bearer x"
//! ```
//!
//! Each event is printed as `[name] id=... data` (the data's line breaks
//! kept). Network trouble is reported on stderr and the stream is followed
//! again after the server's `retry:` (with backoff when reconnecting fails);
//! `204`, another status or a page that is not an event stream end it with
//! exit code 1. Ctrl-C (or SIGTERM) exits 0.

use std::process::ExitCode;
use std::thread;

use sse_server::client::EventSource;
use sse_server::crossbeam_channel::{self, select};

const USAGE: &str = "\
Prints the events of an event stream as they arrive, reconnecting as a
browser does.

Usage: follow URL [--header 'Name: value']... [--last-event-id ID]

The log level comes from RUST_LOG (default: warn).";

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let mut args = std::env::args().skip(1);
    let mut url = None;
    let mut headers = Vec::new();
    let mut last_event_id = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            "--header" => match args.next().as_deref().and_then(|h| h.split_once(':')) {
                Some((name, value)) => {
                    headers.push((name.trim().to_owned(), value.trim().to_owned()))
                }
                None => return usage("--header takes 'Name: value'"),
            },
            "--last-event-id" => match args.next() {
                Some(id) => last_event_id = Some(id),
                None => return usage("--last-event-id takes an id"),
            },
            _ if url.is_none() && !arg.starts_with('-') => url = Some(arg),
            _ => return usage(&format!("unexpected argument {arg:?}")),
        }
    }
    let Some(url) = url else {
        return usage("a URL is needed");
    };
    let mut builder = EventSource::builder(url);
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    if let Some(id) = last_event_id {
        builder = builder.last_event_id(id);
    }
    let source = match builder.build() {
        Ok(source) => source,
        Err(e) => {
            eprintln!("follow: {e}");
            return ExitCode::FAILURE;
        }
    };

    // Reading blocks; it runs on a thread of its own so that Ctrl-C is
    // answered at once. The handler runs on a thread of ctrlc's and only
    // wakes main.
    let (stop_tx, stop_rx) = crossbeam_channel::bounded(1);
    if let Err(e) = ctrlc::set_handler(move || {
        let _ = stop_tx.try_send(());
    }) {
        eprintln!("follow: cannot handle Ctrl-C: {e}");
        return ExitCode::FAILURE;
    }
    let (events_tx, events_rx) = crossbeam_channel::unbounded();
    thread::spawn(move || {
        for item in source {
            if events_tx.send(item).is_err() {
                return;
            }
        }
    });
    loop {
        select! {
            recv(stop_rx) -> _ => return ExitCode::SUCCESS,
            recv(events_rx) -> item => match item {
                Ok(Ok(event)) => {
                    let id = if event.last_event_id.is_empty() {
                        String::new()
                    } else {
                        format!(" id={}", event.last_event_id)
                    };
                    println!("[{}]{id} {}", event.event_type, event.data);
                }
                Ok(Err(e)) if !e.is_fatal() => eprintln!("follow: {e}; reconnecting"),
                Ok(Err(e)) => {
                    eprintln!("follow: {e}");
                    return ExitCode::FAILURE;
                }
                // The source ended (it only does after a fatal error).
                Err(_) => return ExitCode::FAILURE,
            },
        }
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("follow: {problem}\n\n{USAGE}");
    ExitCode::from(2)
}
