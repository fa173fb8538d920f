//! The crate's modules stay in layers, with no import circle.
//!
//! Reads every file under `src/`, takes the modules each one names through
//! `crate::` paths (in `use` lines and in code; comments and doc links are
//! not imports), and checks that:
//!
//! * every module is placed in one layer of [`LAYERS`] (a new file must be
//!   given its place here, and in ARCHITECTURE.md);
//! * a module uses only modules of its own layer or of the layers above it;
//! * no chain of imports leads back to where it started;
//! * internal paths name the module an item lives in (`crate::hub::Hub`),
//!   never a re-export of `lib.rs` (`crate::Hub`), so each file's `use`
//!   lines show where it stands, and no `use crate::{..}` group hides them.
//!
//! `cargo test --test layers -- --nocapture` prints the graph, layer by
//! layer.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, top (the event) to bottom (the handles programs hold). A
/// module may use modules of its own layer and of the layers before it.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "the event and its bytes",
        &[
            "client_id",
            "doorbell",
            "encode",
            "error",
            "event",
            "frame",
            "parse",
            "retry",
            "stats",
            "stream_id",
            "sync",
        ],
    ),
    (
        "settings, counters, messages between threads",
        &[
            "config", "connect", "cors", "counters", "messages", "metrics",
        ],
    ),
    (
        "workarounds for tiny_http",
        &[
            "tiny_http_fixes",
            "tiny_http_fixes::accept_thread",
            "tiny_http_fixes::pipelined",
            "tiny_http_fixes::pool",
            "tiny_http_fixes::release",
            "tiny_http_fixes::sock_diag",
            "tiny_http_fixes::watch",
        ],
    ),
    (
        "the shared Redis Stream (feature redis)",
        &[
            "redis_link",
            "redis_link::append",
            "redis_link::connection",
            "redis_link::entry",
            "redis_link::link",
            "redis_link::read",
            "redis_link::replay",
        ],
    ),
    ("state the threads share", &["shared", "subscription"]),
    (
        "the threads and the HTTP side",
        &["acceptor", "history", "http", "hub_thread", "writer"],
    ),
    (
        "the handles programs hold",
        &["builder", "client", "hub", "server"],
    ),
];

/// Folders whose files are modules of their own (`crate::folder::file`).
const FOLDERS: &[&str] = &["tiny_http_fixes"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, with its module path.
fn modules(dir: &Path, prefix: &str, out: &mut BTreeMap<String, PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .expect("read src/")
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let stem = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .expect("a UTF-8 file name")
            .to_owned();
        if path.is_dir() {
            modules(&path, &format!("{prefix}{stem}::"), out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            let name = match (prefix, stem.as_str()) {
                ("", "lib") => continue,
                (_, "mod") => prefix.trim_end_matches("::").to_owned(),
                _ => format!("{prefix}{stem}"),
            };
            out.insert(name, path);
        }
    }
}

/// The code of a file without comments (line comments, doc comments and
/// block comments), so that doc links are not taken for imports.
fn code_of(text: &str) -> String {
    let mut code = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let line_comment = rest.find("//");
        let block_comment = rest.find("/*");
        let string = rest.find('"');
        let next = [line_comment, block_comment, string]
            .into_iter()
            .flatten()
            .min();
        let Some(at) = next else {
            code.push_str(rest);
            break;
        };
        code.push_str(&rest[..at]);
        rest = &rest[at..];
        if rest.starts_with("//") {
            rest = rest.find('\n').map_or("", |end| &rest[end..]);
        } else if rest.starts_with("/*") {
            rest = rest.find("*/").map_or("", |end| &rest[end + 2..]);
        } else {
            // A string literal: skip it (it may hold `//` or `crate::`).
            let mut end = 1;
            let bytes = rest.as_bytes();
            while end < bytes.len() && bytes[end] != b'"' {
                end += if bytes[end] == b'\\' { 2 } else { 1 };
            }
            code.push_str("\"\"");
            rest = rest.get(end + 1..).unwrap_or("");
        }
    }
    code
}

/// The modules `code` names through `crate::` paths.
fn uses(code: &str, module: &str, problems: &mut Vec<String>) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        if at > 0 {
            let before = code.as_bytes()[at - 1];
            if before.is_ascii_alphanumeric() || before == b'_' {
                continue; // `$crate::` or part of a longer name
            }
        }
        let path: String = code[at + "crate::".len()..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':' || *c == '{')
            .collect();
        if path.starts_with('{') {
            problems.push(format!(
                "{module}: `use crate::{{..}}` hides the modules it uses"
            ));
            continue;
        }
        let mut parts = path.split("::").filter(|part| !part.is_empty());
        let Some(first) = parts.next() else { continue };
        let name = if FOLDERS.contains(&first) {
            match parts.next() {
                Some(second) if second.starts_with(char::is_lowercase) => {
                    format!("{first}::{second}")
                }
                _ => first.to_owned(),
            }
        } else {
            first.to_owned()
        };
        if name.starts_with(char::is_uppercase) {
            problems.push(format!(
                "{module}: `crate::{name}` is a re-export; name the module it lives in"
            ));
            continue;
        }
        if name != module {
            used.insert(name);
        }
    }
    used
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, members)| members.contains(&module))
}

/// A chain of imports from `start` back to itself, if there is one.
fn circle_from(start: &str, graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn walk(
        at: &str,
        start: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in graph.get(at).into_iter().flatten() {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(next, start, graph, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_owned()];
    let mut seen = BTreeSet::new();
    walk(start, start, graph, &mut path, &mut seen).then_some(path)
}

#[test]
fn modules_depend_downward_only() {
    let mut files = BTreeMap::new();
    modules(&src(), "", &mut files);
    assert!(files.len() > 10, "found the modules: {files:?}");
    let mut problems = Vec::new();
    let mut graph = BTreeMap::new();
    for (module, path) in &files {
        let text = fs::read_to_string(path).expect("read a source file");
        graph.insert(module.clone(), uses(&code_of(&text), module, &mut problems));
    }

    for (index, (name, members)) in LAYERS.iter().enumerate() {
        println!("layer {index}: {name}");
        for member in *members {
            let used: Vec<&str> = graph
                .get(*member)
                .into_iter()
                .flatten()
                .map(String::as_str)
                .collect();
            println!("  {member} -> {}", used.join(", "));
        }
    }

    for (module, used) in &graph {
        if let Some(circle) = circle_from(module, &graph) {
            problems.push(format!("import circle: {}", circle.join(" -> ")));
        }
        let Some(layer) = layer_of(module) else {
            problems.push(format!("{module}: not in LAYERS (tests/layers.rs)"));
            continue;
        };
        for other in used {
            match layer_of(other) {
                None if !graph.contains_key(other) => {
                    problems.push(format!("{module}: uses `crate::{other}`, not a module"));
                }
                Some(other_layer) if other_layer > layer => problems.push(format!(
                    "{module} (layer {layer}) uses {other} (layer {other_layer}), a layer below it"
                )),
                _ => {}
            }
        }
    }
    for (_, members) in LAYERS {
        for member in *members {
            if !files.contains_key(*member) {
                problems.push(format!("{member}: in LAYERS but no such file"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_checker_sees_imports_and_circles() {
    let mut problems = Vec::new();
    let code = code_of(
        "use crate::a::B;\n/// [`x`](crate::z::Y)\nlet s = \"crate::q\";\nuse crate::tiny_http_fixes::watch::W;\nfn f() { crate::c::f(); }\n",
    );
    let used = uses(&code, "m", &mut problems);
    let expected: BTreeSet<String> = ["a", "c", "tiny_http_fixes::watch"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(used, expected);
    assert!(problems.is_empty(), "{problems:?}");

    uses("use crate::Hub;", "m", &mut problems);
    uses("use crate::{a::B, c::D};", "m", &mut problems);
    assert_eq!(problems.len(), 2, "{problems:?}");

    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(from, to)| (from.into(), to.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(
        circle_from("a", &graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    assert_eq!(circle_from("d", &graph), None);
}
