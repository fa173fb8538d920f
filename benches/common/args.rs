//! The command line, read the same way by every bench (through `lexopt`):
//! an option takes its value as `--name value` or `--name=value`, a number
//! may hold `_` (`10_000`), and an argument the bench does not know is
//! skipped, so the `--bench` that `cargo bench` passes does no harm.
//!
//! Included by each bench with `#[path = ".../common/args.rs"] mod args;`.

use std::ffi::{OsStr, OsString};
use std::str::FromStr;

pub use lexopt::{Arg, Parser};

/// The arguments after the program's name.
pub fn from_env() -> Vec<OsString> {
    std::env::args_os().skip(1).collect()
}

/// Whether the full bench is asked for: `cargo bench` passes `--bench`, and
/// `--full` asks for it by hand. Without either (as under `cargo test
/// --benches`) a bench makes a short smoke run. It picks the other options'
/// defaults, so it is read before them.
pub fn full_run(args: &[OsString]) -> bool {
    args.iter().any(|arg| arg == "--bench" || arg == "--full")
}

/// The next argument.
pub fn next(parser: &mut Parser) -> Result<Option<Arg<'_>>, String> {
    parser.next().map_err(|e| e.to_string())
}

/// The value of the option just read.
pub fn value(parser: &mut Parser) -> Result<OsString, String> {
    parser.value().map_err(|e| e.to_string())
}

/// The value of the option `name`, just read, as a number.
pub fn number<T: FromStr>(parser: &mut Parser, name: &str) -> Result<T, String> {
    parse_number(name, &value(parser)?)
}

/// `text`, the value of `name`, as a number.
pub fn parse_number<T: FromStr>(name: &str, text: &OsStr) -> Result<T, String> {
    let text = text.to_string_lossy();
    text.trim()
        .replace('_', "")
        .parse()
        .map_err(|_| format!("{name}: {text:?} is not a number"))
}

/// Skips the argument just read, which the bench does not know, and its
/// `=value` if it has one.
pub fn skip(parser: &mut Parser) {
    let _ = parser.optional_value();
}
