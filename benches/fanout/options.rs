//! The command line of the bench process.

use crate::Res;

pub struct Options {
    pub clients: Vec<usize>,
    pub burst_events: usize,
    pub paced_events: usize,
    pub paced_interval_us: u64,
    pub size: usize,
    pub subs: Vec<usize>,
    pub publishers: usize,
    pub calls: usize,
    pub rounds: usize,
    pub fanout: bool,
    pub notify: bool,
    pub smoke: bool,
}

impl Options {
    pub fn parse(args: &[String]) -> Res<Options> {
        let full = args.iter().any(|arg| arg == "--bench" || arg == "--full");
        let mut options = if full {
            Options {
                clients: vec![10, 100, 1000],
                burst_events: 2000,
                paced_events: 300,
                paced_interval_us: 10_000,
                size: 64,
                subs: vec![0, 100, 1000],
                publishers: 8,
                calls: 100_000,
                rounds: 7,
                fanout: true,
                notify: true,
                smoke: false,
            }
        } else {
            Options {
                clients: vec![10],
                burst_events: 200,
                paced_events: 20,
                paced_interval_us: 10_000,
                size: 64,
                subs: vec![0, 100],
                publishers: 8,
                calls: 10_000,
                rounds: 2,
                fanout: true,
                notify: true,
                smoke: true,
            }
        };
        if let Ok(list) = std::env::var("SSE_BENCH_CLIENTS") {
            options.clients = parse_list(&list)?;
        }
        let mut at = 0;
        while at < args.len() {
            let (name, inline) = match args[at].split_once('=') {
                Some((name, value)) => (name, Some(value.to_string())),
                None => (args[at].as_str(), None),
            };
            let takes_value = matches!(
                name,
                "--clients"
                    | "--burst"
                    | "--paced"
                    | "--interval-us"
                    | "--size"
                    | "--subs"
                    | "--publishers"
                    | "--calls"
                    | "--rounds"
                    | "--only"
            );
            if !takes_value {
                at += 1;
                continue;
            }
            let value = match inline {
                Some(value) => value,
                None => {
                    at += 1;
                    args.get(at)
                        .cloned()
                        .ok_or_else(|| format!("{name} needs a value"))?
                }
            };
            at += 1;
            match name {
                "--clients" => options.clients = parse_list(&value)?,
                "--burst" => options.burst_events = parse_number(&value)?,
                "--paced" => options.paced_events = parse_number(&value)?,
                "--interval-us" => options.paced_interval_us = parse_number(&value)? as u64,
                "--size" => options.size = parse_number(&value)?,
                "--subs" => options.subs = parse_list(&value)?,
                "--publishers" => options.publishers = parse_number(&value)?.max(1),
                "--calls" => options.calls = parse_number(&value)?.max(1),
                "--rounds" => options.rounds = parse_number(&value)?.max(1),
                "--only" => match value.as_str() {
                    "fanout" => options.notify = false,
                    "notify" => options.fanout = false,
                    other => return Err(format!("--only {other:?}: want fanout or notify")),
                },
                _ => unreachable!(),
            }
        }
        if options.clients.contains(&0) {
            return Err("a client count of 0 makes no sense".into());
        }
        Ok(options)
    }
}

pub fn parse_number(text: &str) -> Res<usize> {
    text.trim()
        .replace('_', "")
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))
}

pub fn parse_list(text: &str) -> Res<Vec<usize>> {
    text.split(',')
        .filter(|item| !item.trim().is_empty())
        .map(parse_number)
        .collect()
}
