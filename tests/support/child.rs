//! Running one test of this binary in a child process.

use std::io::Read;
use std::time::Duration;

use super::wait::wait_until;

/// What a child test process did.
#[derive(Debug)]
pub struct ChildRun {
    /// `None` when it was killed at the deadline.
    pub status: Option<std::process::ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

impl ChildRun {
    /// Whether the child test ran and passed.
    pub fn passed(&self, test: &str) -> bool {
        self.status.is_some_and(|s| s.success())
            && self.stdout.contains(&format!("test {test} ... ok"))
            && self.stdout.contains("1 passed")
    }
}

/// Runs the `#[ignore]`d test `test` of this test binary in a child process
/// (`--exact <test> --ignored --nocapture`), through
/// `sh -c 'ulimit -n <nofile> && exec ...'` when `nofile` is given. Kills it
/// when it runs past `timeout`.
pub fn run_child_test(test: &str, nofile: Option<u32>, timeout: Duration) -> ChildRun {
    run_child_test_with(test, nofile, &[], timeout)
}

/// [`run_child_test`], with these environment variables set in the child.
pub fn run_child_test_with(
    test: &str,
    nofile: Option<u32>,
    env: &[(&str, &str)],
    timeout: Duration,
) -> ChildRun {
    use std::process::{Command, Stdio};
    let exe = std::env::current_exe().expect("this test binary's path");
    let mut command = match nofile {
        Some(limit) => {
            let mut command = Command::new("sh");
            command
                .arg("-c")
                .arg(format!(
                    "ulimit -n {limit} && exec \"$0\" --exact \"$1\" --ignored --nocapture --test-threads=1"
                ))
                .arg(&exe)
                .arg(test);
            command
        }
        None => {
            let mut command = Command::new(&exe);
            command.args([
                "--exact",
                test,
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ]);
            command
        }
    };
    command.envs(env.iter().copied());
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the child test process");
    let mut out = child.stdout.take().expect("child stdout");
    let mut err = child.stderr.take().expect("child stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let mut status = None;
    wait_until(timeout, || {
        status = child.try_wait().expect("wait for the child");
        status.is_some()
    });
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    ChildRun {
        status,
        stdout: out_reader.join().expect("the stdout reader panicked"),
        stderr: err_reader.join().expect("the stderr reader panicked"),
    }
}
