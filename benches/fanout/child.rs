//! The bench process's handle on the client process: its pipes, the lines it
//! writes, and its end.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin};
use std::thread;
use std::time::{Duration, Instant};

use sse_server::crossbeam_channel::{self, Receiver, RecvTimeoutError};

use crate::Res;

/// The client process, killed (by its own pid) if it is still running when
/// this is dropped.
pub struct ChildGuard(Option<Child>);

impl ChildGuard {
    pub fn new(child: Child) -> ChildGuard {
        ChildGuard(Some(child))
    }

    pub fn stdin(&mut self) -> Res<ChildStdin> {
        self.0
            .as_mut()
            .and_then(|child| child.stdin.take())
            .ok_or_else(|| "no stdin pipe to the client process".to_string())
    }

    /// The child's stdout, line by line, from a reader thread. The channel
    /// disconnects when the child closes its stdout.
    pub fn lines(&mut self) -> Res<Receiver<String>> {
        let stdout = self
            .0
            .as_mut()
            .and_then(|child| child.stdout.take())
            .ok_or_else(|| "no stdout pipe from the client process".to_string())?;
        let (tx, rx) = crossbeam_channel::unbounded();
        thread::Builder::new()
            .name("bench-child-out".into())
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| format!("spawning the stdout reader: {e}"))?;
        Ok(rx)
    }

    fn status(&mut self) -> String {
        match self.0.as_mut().map(|child| child.try_wait()) {
            Some(Ok(Some(status))) => format!("exited with {status}"),
            Some(Ok(None)) => "still running".into(),
            Some(Err(e)) => format!("unknown ({e})"),
            None => "gone".into(),
        }
    }

    /// Waits for the child to exit; kills it after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> Res<()> {
        let Some(mut child) = self.0.take() else {
            return Ok(());
        };
        let deadline = Instant::now() + timeout;
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => return Err(format!("the client process {status}")),
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "the client process did not exit within {timeout:?}; killed it"
                    ));
                }
                Ok(None) => thread::sleep(Duration::from_millis(10)),
                Err(e) => return Err(format!("waiting for the client process: {e}")),
            }
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The next line from the child that starts with `want`; an `ERROR` line,
/// the child's exit, or the timeout is an error.
pub fn wait_line(
    lines: &Receiver<String>,
    want: &str,
    timeout: Duration,
    child: &mut ChildGuard,
) -> Res<String> {
    let deadline = Instant::now() + timeout;
    loop {
        match lines.recv_deadline(deadline) {
            Ok(line) if line.starts_with(want) => return Ok(line),
            Ok(line) if line.starts_with("ERROR") => {
                return Err(format!("the client process failed: {line}"));
            }
            Ok(line) => eprintln!("  client process: {line}"),
            Err(RecvTimeoutError::Timeout) => {
                return Err(format!(
                    "no {want} line from the client process within {timeout:?} (it is {})",
                    child.status()
                ));
            }
            Err(RecvTimeoutError::Disconnected) => {
                thread::sleep(Duration::from_millis(50));
                return Err(format!(
                    "the client process closed its stdout before {want} (it {})",
                    child.status()
                ));
            }
        }
    }
}

pub fn send_line(stdin: &mut ChildStdin, line: &str) -> Res<()> {
    writeln!(stdin, "{line}")
        .and_then(|()| stdin.flush())
        .map_err(|e| format!("writing {line:?} to the client process: {e}"))
}
