//! `compare`: the driver of the peer comparison (see ../README.md).
//!
//! For each scenario, repeat and target it starts the target pinned to one
//! core and `sse-loadgen` pinned to the other, samples the server in `/proc`,
//! prints one JSON line per run on stderr (and appends it to `--jsonl`), and
//! at the end one markdown table per scenario on stdout: medians over the
//! repeats, with ratios to the first target. A failed run is reported and
//! shown in the table, never a panic.

mod procfs;
mod run;
mod summary;

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use run::{SCENARIOS, Scenario, Setup, Target};

/// Peers built in this workspace, by binary name.
const PEERS: [&str; 3] = ["raw-floor", "thread-naive", "axum-broadcast"];
const DEFAULT_TARGETS: &str = "raw-floor,axum-broadcast,thread-naive,sse-server";

const USAGE: &str = "\
Usage: compare [--targets a,b,c] [--cmd 'PATH ARGS' --name NAME]... [--scenarios max,paced,idle10k,large]
               [--repeat K] [--jsonl FILE] [--server-bin PATH] [--server-args 'ARGS']
               [--loadgen PATH] [--peers-dir DIR]
               [--logs DIR] [--server-cpu 0] [--loadgen-cpu 1]

Targets: raw-floor, thread-naive, axum-broadcast (binaries in --peers-dir, default: next to
this program), sse-server (the main crate's bench_server, given by --server-bin, with
--server-args added to its command line), and any --cmd. benches/compare.sh builds
everything and passes the paths.";

struct Args {
    targets: Option<String>,
    cmds: Vec<String>,
    names: Vec<String>,
    scenarios: String,
    repeat: usize,
    jsonl: Option<PathBuf>,
    server_bin: Option<PathBuf>,
    server_args: String,
    loadgen: Option<PathBuf>,
    peers_dir: Option<PathBuf>,
    logs: PathBuf,
    server_cpu: String,
    loadgen_cpu: String,
}

fn parse_args() -> Result<Args, lexopt::Error> {
    use lexopt::prelude::*;
    let mut args = Args {
        targets: None,
        cmds: Vec::new(),
        names: Vec::new(),
        scenarios: "max,paced,idle10k,large".into(),
        repeat: 1,
        jsonl: None,
        server_bin: None,
        server_args: String::new(),
        loadgen: None,
        peers_dir: None,
        logs: std::env::temp_dir().join("sse-compare-logs"),
        server_cpu: "0".into(),
        loadgen_cpu: "1".into(),
    };
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("targets") => args.targets = Some(parser.value()?.string()?),
            Long("cmd") => args.cmds.push(parser.value()?.string()?),
            Long("name") => args.names.push(parser.value()?.string()?),
            Long("scenarios" | "scenario") => args.scenarios = parser.value()?.string()?,
            Long("repeat") => args.repeat = parser.value()?.parse::<usize>()?.max(1),
            Long("jsonl") => args.jsonl = Some(parser.value()?.into()),
            Long("server-bin") => args.server_bin = Some(parser.value()?.into()),
            Long("server-args") => args.server_args = parser.value()?.string()?,
            Long("loadgen") => args.loadgen = Some(parser.value()?.into()),
            Long("peers-dir") => args.peers_dir = Some(parser.value()?.into()),
            Long("logs") => args.logs = parser.value()?.into(),
            Long("server-cpu") => args.server_cpu = parser.value()?.string()?,
            Long("loadgen-cpu") => args.loadgen_cpu = parser.value()?.string()?,
            Short('h') | Long("help") => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    match parse_args()
        .map_err(|e| e.to_string())
        .and_then(|args| compare(&args))
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("compare: {e}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn compare(args: &Args) -> Result<(), String> {
    let here = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.to_path_buf()))
        .unwrap_or_default();
    let targets = targets(args, &here)?;
    let scenarios = scenarios(&args.scenarios)?;
    let setup = Setup {
        loadgen: args
            .loadgen
            .clone()
            .unwrap_or_else(|| here.join("sse-loadgen")),
        logs: args.logs.clone(),
        server_cpu: args.server_cpu.clone(),
        loadgen_cpu: args.loadgen_cpu.clone(),
    };
    if !setup.loadgen.is_file() {
        return Err(format!(
            "no loadgen at {} (--loadgen)",
            setup.loadgen.display()
        ));
    }
    std::fs::create_dir_all(&setup.logs).map_err(|e| format!("{}: {e}", setup.logs.display()))?;
    let mut jsonl = match &args.jsonl {
        Some(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            let file = OpenOptions::new().create(true).append(true).open(path);
            Some(file.map_err(|e| format!("{}: {e}", path.display()))?)
        }
        None => None,
    };
    let nofile = raise_nofile();
    if nofile < 10_200 && scenarios.iter().any(|s| s.clients >= 10_000) {
        eprintln!("compare: warning: open files limited to {nofile}; 10,000 clients need ~10,100");
    }
    eprintln!("compare: logs in {}", setup.logs.display());

    // Scenario, then repeat, then target: drift on a noisy machine spreads
    // over all targets instead of landing on one.
    let mut results: HashMap<(usize, usize), summary::Runs> = HashMap::new();
    for (s, scenario) in scenarios.iter().enumerate() {
        for repeat in 1..=args.repeat {
            for (t, target) in targets.iter().enumerate() {
                let which = format!("{} {} {repeat}/{}", target.name, scenario.name, args.repeat);
                let outcome = run::run(&setup, target, scenario, repeat);
                let recorded = match outcome {
                    Ok(line) => {
                        eprintln!("{line}");
                        if let Some(file) = &mut jsonl {
                            writeln!(file, "{line}").map_err(|e| format!("--jsonl: {e}"))?;
                        }
                        serde_json::from_str(&line).map_err(|e| e.to_string())
                    }
                    Err(reason) => {
                        eprintln!("compare: FAILED {which}: {reason}");
                        Err(reason)
                    }
                };
                results.entry((s, t)).or_default().push(recorded);
            }
        }
    }
    for (s, scenario) in scenarios.iter().enumerate() {
        let rows: Vec<(&str, &summary::Runs)> = targets
            .iter()
            .enumerate()
            .map(|(t, target)| (target.name.as_str(), &results[&(s, t)]))
            .collect();
        println!("{}", summary::table(scenario, args.repeat, &rows));
    }
    Ok(())
}

/// The targets named by `--targets` (default: all four unless `--cmd` is
/// given) followed by the `--cmd` ones; each binary must exist.
fn targets(args: &Args, here: &Path) -> Result<Vec<Target>, String> {
    let names = match &args.targets {
        Some(list) => list.as_str(),
        None if args.cmds.is_empty() => DEFAULT_TARGETS,
        None => "",
    };
    let peers_dir = args.peers_dir.clone().unwrap_or_else(|| here.to_path_buf());
    let mut targets = Vec::new();
    for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let program = match name {
            "sse-server" => args
                .server_bin
                .clone()
                .ok_or("sse-server needs --server-bin (benches/compare.sh passes it)")?,
            peer if PEERS.contains(&peer) => peers_dir.join(peer),
            other => return Err(format!("unknown target {other:?}; use --cmd for others")),
        };
        if !program.is_file() {
            return Err(format!("target {name}: no binary at {}", program.display()));
        }
        let args = match name {
            "sse-server" => args
                .server_args
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        };
        targets.push(Target {
            name: name.to_string(),
            program,
            args,
        });
    }
    for (i, cmd) in args.cmds.iter().enumerate() {
        let mut words = cmd.split_whitespace().map(str::to_string);
        let program = PathBuf::from(words.next().ok_or("--cmd is empty")?);
        let name = match args.names.get(i) {
            Some(name) => name.clone(),
            None => program
                .file_name()
                .map_or("cmd".into(), |f| f.to_string_lossy().into_owned()),
        };
        targets.push(Target {
            name,
            program,
            args: words.collect(),
        });
    }
    if targets.is_empty() {
        return Err("no targets".into());
    }
    Ok(targets)
}

fn scenarios(list: &str) -> Result<Vec<&'static Scenario>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|name| {
            SCENARIOS
                .iter()
                .find(|s| s.name == name)
                .ok_or_else(|| format!("unknown scenario {name:?} (max, paced, idle10k, large)"))
        })
        .collect()
}

/// Raises the soft limit on open files to the hard one (the children inherit
/// it) and returns the new soft limit.
fn raise_nofile() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    let _ = setrlimit(Resource::Nofile, limit);
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}
