//! The command line of the bench process.

use std::ffi::{OsStr, OsString};

use crate::Res;
use crate::args::{self, Arg, Parser};

/// What to run, and with which sizes.
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
    /// The options of this run: the defaults of a full or a smoke run,
    /// then `SSE_BENCH_CLIENTS`, then the command line.
    pub fn parse(args: Vec<OsString>) -> Res<Options> {
        let full = args::full_run(&args);
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
        if let Some(list) = std::env::var_os("SSE_BENCH_CLIENTS") {
            options.clients = parse_list("SSE_BENCH_CLIENTS", &list)?;
        }
        let mut parser = Parser::from_args(args);
        while let Some(arg) = args::next(&mut parser)? {
            match arg {
                Arg::Long("clients") => options.clients = list(&mut parser, "--clients")?,
                Arg::Long("burst") => options.burst_events = args::number(&mut parser, "--burst")?,
                Arg::Long("paced") => options.paced_events = args::number(&mut parser, "--paced")?,
                Arg::Long("interval-us") => {
                    options.paced_interval_us = args::number(&mut parser, "--interval-us")?;
                }
                Arg::Long("size") => options.size = args::number(&mut parser, "--size")?,
                Arg::Long("subs") => options.subs = list(&mut parser, "--subs")?,
                Arg::Long("publishers") => {
                    options.publishers = args::number::<usize>(&mut parser, "--publishers")?.max(1);
                }
                Arg::Long("calls") => {
                    options.calls = args::number::<usize>(&mut parser, "--calls")?.max(1);
                }
                Arg::Long("rounds") => {
                    options.rounds = args::number::<usize>(&mut parser, "--rounds")?.max(1);
                }
                Arg::Long("only") => match args::value(&mut parser)?.to_string_lossy().as_ref() {
                    "fanout" => options.notify = false,
                    "notify" => options.fanout = false,
                    other => return Err(format!("--only {other:?}: want fanout or notify")),
                },
                _ => args::skip(&mut parser),
            }
        }
        if options.clients.contains(&0) {
            return Err("a client count of 0 makes no sense".into());
        }
        Ok(options)
    }
}

/// The value of the option `name`, just read, as a list of numbers.
fn list(parser: &mut Parser, name: &str) -> Res<Vec<usize>> {
    parse_list(name, &args::value(parser)?)
}

/// `text`, the value of `name`, as a list of numbers: `10,100,1000`.
fn parse_list(name: &str, text: &OsStr) -> Res<Vec<usize>> {
    text.to_string_lossy()
        .split(',')
        .filter(|item| !item.trim().is_empty())
        .map(|item| args::parse_number(name, item.as_ref()))
        .collect()
}
