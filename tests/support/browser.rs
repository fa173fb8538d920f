//! A real browser for the tests: Debian's `chromium`, headless, driven
//! through `chromedriver`'s WebDriver HTTP API (W3C WebDriver, JSON over
//! HTTP on 127.0.0.1) with `ureq` and `serde_json`.
//!
//! Each [`Browser`] is its own `chromedriver` (on a port it picks itself,
//! `--port=0`) and its own `chromium`, with a fresh profile directory.
//! Dropping it, also while a test panics, ends the session, kills what is
//! left of both (`chromedriver` runs in a process group of its own, which
//! `chromium` and its helpers join) and removes the profile.
//!
//! Where `chromium` or `chromedriver` is missing, [`Browser::start`] says
//! `skipping: chromium is not installed (...)` and returns `None`: the test
//! then passes without checking anything, as the curl and Redis tests do.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::programs::find_program;
use super::wait::ms;

/// What the tests print, and pass with, where there is no browser.
pub const SKIP: &str =
    "skipping: chromium is not installed (apt-get install chromium chromium-driver)";

/// The flags every `chromium` here starts with: headless, straight to the
/// test servers (no proxy, whatever the environment names), and quiet on a
/// machine with no network but loopback (no background requests, no
/// component updates, no QUIC probes).
const FLAGS: [&str; 11] = [
    "--headless",
    "--no-proxy-server",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
];

/// How long starting `chromedriver` and then `chromium` may take, each; a
/// loaded machine (the tests run beside busy loops too) needs several
/// seconds.
const START: Duration = Duration::from_secs(60);

/// One WebDriver command's answer, at most.
const COMMAND: Duration = Duration::from_secs(30);

/// A headless `chromium` with one WebDriver session.
pub struct Browser {
    /// `chromedriver`, leader of the process group that holds `chromium`.
    driver: Child,
    /// `http://127.0.0.1:<chromedriver's port>/session/<id>`, once the
    /// session exists.
    session: Option<String>,
    agent: ureq::Agent,
    profile: PathBuf,
}

impl Browser {
    /// Starts `chromium` with an 800×600 window, or returns `None`, after
    /// printing [`SKIP`], where `chromium` or `chromedriver` is not
    /// installed. Panics when they are there but do not start.
    pub fn start() -> Option<Browser> {
        let (Some(chromium), Some(chromedriver)) =
            (find_program("chromium"), find_program("chromedriver"))
        else {
            // Straight to stderr, past the test harness's capture, so that
            // the skip shows in a passing run.
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "{SKIP}");
            return None;
        };

        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let profile = std::env::temp_dir().join(format!(
            "sse-server-browser-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).expect("create the browser's profile directory");

        let spawn_driver = || {
            use std::os::unix::process::CommandExt;
            Command::new(&chromedriver)
                .arg("--port=0")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                // chromium keeps its crash reports under the home folder,
                // whatever the profile: the profile is its home here.
                .env("HOME", &profile)
                .env("XDG_CONFIG_HOME", profile.join(".config"))
                .env("XDG_CACHE_HOME", profile.join(".cache"))
                // A group of its own, which the browser it starts joins:
                // Drop kills the whole group.
                .process_group(0)
                .spawn()
                .expect("start chromedriver")
        };
        // With `--port=0` chromedriver takes a free port for IPv6 and then
        // tries the same number for IPv4, which something else may hold:
        // it then says "IPv4 port not available" and exits. A few tries.
        let (driver, port) = {
            let mut tries = 0;
            loop {
                let mut driver = spawn_driver();
                let stdout = driver.stdout.take().expect("chromedriver's stdout");
                if let Some(port) = driver_port(stdout) {
                    break (driver, port);
                }
                let _ = driver.kill();
                let _ = driver.wait();
                tries += 1;
                if tries == 5 {
                    let _ = std::fs::remove_dir_all(&profile);
                    panic!("chromedriver said which port it listens on in none of {tries} tries");
                }
            }
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            // Straight to chromedriver, whatever proxy the environment names.
            .proxy(None)
            .timeout_global(Some(COMMAND))
            .http_status_as_error(false)
            .build()
            .into();
        // From here on, Drop cleans up whatever happens.
        let mut browser = Browser {
            driver,
            session: None,
            agent,
            profile,
        };

        let mut args: Vec<String> = FLAGS.iter().map(|flag| flag.to_string()).collect();
        args.push(format!("--user-data-dir={}", browser.profile.display()));
        args.push("--window-size=800,600".into());
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": chromium.to_string_lossy(),
                        "args": args,
                    },
                    "timeouts": { "pageLoad": 20_000, "script": 10_000 },
                }
            }
        });
        let url = format!("http://127.0.0.1:{port}/session");
        let answer = browser.send("POST", &url, Some(&capabilities), START);
        let id = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {answer}"))
            .to_owned();
        browser.session = Some(format!("{url}/{id}"));
        Some(browser)
    }

    /// Loads `url` in the current window and returns once it has loaded.
    pub fn open(&self, url: &str) {
        self.command("POST", "/url", Some(&json!({ "url": url })));
    }

    /// The value of the JavaScript expression `js` in the current page
    /// (as JSON: numbers, strings, arrays and plain objects come back as
    /// they are). Panics when it throws.
    pub fn eval(&self, js: &str) -> Value {
        let script = format!("return ({js});");
        self.command(
            "POST",
            "/execute/sync",
            Some(&json!({ "script": script, "args": [] })),
        )
    }

    /// Polls the expression `js_condition` in the current page until it is
    /// `true` or `timeout` passes; whether it became true.
    pub fn wait_for(&self, js_condition: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.eval(js_condition) == Value::Bool(true) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            // Only the poll interval of this bounded loop.
            std::thread::sleep(ms(50));
        }
    }

    /// Saves a PNG of the current window's page at `path` (creating its
    /// folder).
    pub fn screenshot(&self, path: &Path) {
        let encoded = self.command("GET", "/screenshot", None);
        let encoded = encoded.as_str().expect("the screenshot is a base64 string");
        let png = decode_base64(encoded).expect("the screenshot is valid base64");
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "the screenshot is a PNG"
        );
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder).expect("create the screenshot's folder");
        }
        std::fs::write(path, png).expect("write the screenshot");
    }

    /// Resizes the current window so that its page (what a screenshot
    /// shows) is `width` × `height` CSS pixels, or as near as the browser
    /// lets it (headless `chromium` keeps room for a toolbar it does not
    /// draw: a first resize tells how much).
    pub fn set_viewport_size(&self, width: i64, height: i64) {
        let resize = |w: i64, h: i64| {
            self.command(
                "POST",
                "/window/rect",
                Some(&json!({ "width": w, "height": h })),
            );
        };
        resize(width, height);
        let inner = self.eval("[window.innerWidth, window.innerHeight]");
        let (Some(inner_width), Some(inner_height)) = (inner[0].as_i64(), inner[1].as_i64()) else {
            panic!("the page's size: {inner}");
        };
        if (inner_width, inner_height) != (width, height) {
            resize(2 * width - inner_width, 2 * height - inner_height);
        }
    }

    /// Opens another window (a page of its own, `about:blank`) and returns
    /// its handle; the current window stays what it was.
    pub fn new_window(&self) -> String {
        let answer = self.command("POST", "/window/new", Some(&json!({ "type": "window" })));
        answer["handle"]
            .as_str()
            .unwrap_or_else(|| panic!("no window handle in {answer}"))
            .to_owned()
    }

    /// The current window's handle.
    pub fn window(&self) -> String {
        let answer = self.command("GET", "/window", None);
        answer
            .as_str()
            .unwrap_or_else(|| panic!("no window handle in {answer}"))
            .to_owned()
    }

    /// Makes `handle` the window the other commands act on.
    pub fn switch_to(&self, handle: &str) {
        self.command("POST", "/window", Some(&json!({ "handle": handle })));
    }

    /// Runs a command of this session; its `value`.
    fn command(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let session = self.session.as_deref().expect("a session");
        let url = format!("{session}{path}");
        let mut answer = self.send(method, &url, body, COMMAND);
        answer["value"].take()
    }

    /// Sends one WebDriver request; its whole JSON answer. Panics on an
    /// error answer, with what the driver said.
    fn send(&self, method: &str, url: &str, body: Option<&Value>, timeout: Duration) -> Value {
        self.try_send(method, url, body, timeout)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`send`](Browser::send), saying what went wrong instead of
    /// panicking (for Drop, which may run while a test panics).
    fn try_send(
        &self,
        method: &str,
        url: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<Value, String> {
        let sent = match (method, body) {
            ("POST", body) => self
                .agent
                .post(url)
                .config()
                .timeout_global(Some(timeout))
                .build()
                .header("Content-Type", "application/json")
                .send(body.cloned().unwrap_or_else(|| json!({})).to_string()),
            ("GET", None) => self
                .agent
                .get(url)
                .config()
                .timeout_global(Some(timeout))
                .build()
                .call(),
            ("DELETE", None) => self
                .agent
                .delete(url)
                .config()
                .timeout_global(Some(timeout))
                .build()
                .call(),
            _ => return Err(format!("no such WebDriver request here: {method} {url}")),
        };
        let mut response = sent.map_err(|e| format!("{method} {url}: {e}"))?;
        let status = response.status();
        let text = response
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_string()
            .map_err(|e| format!("{method} {url}: reading the answer: {e}"))?;
        let answer: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{method} {url}: not JSON ({e}): {text}"))?;
        if !status.is_success() {
            let value = &answer["value"];
            return Err(format!(
                "{method} {url} {body}: {status}: {} {}",
                value["error"],
                value["message"],
                body = body.map(Value::to_string).unwrap_or_default()
            ));
        }
        Ok(answer)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Closes chromium the polite way (chromedriver waits for it)...
        if let Some(session) = self.session.take()
            && let Err(e) = self.try_send("DELETE", &session, None, Duration::from_secs(10))
        {
            eprintln!("the browser did not quit when asked ({e}); killing it");
        }
        // ...then kills whatever is left of the group: chromedriver, and a
        // chromium that did not quit. The group's id is chromedriver's pid,
        // not reused before the wait below reaps it.
        if let Ok(pid) = i32::try_from(self.driver.id())
            && let Some(pid) = rustix::process::Pid::from_raw(pid)
        {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
        let _ = self.driver.kill();
        let group = self.driver.id();
        let _ = self.driver.wait();
        // The group's last processes (chromium's helpers, which notice that
        // their parent is gone) and the profile: gone within a few seconds.
        let deadline = Instant::now() + Duration::from_secs(10);
        while (!living_in_group(group).is_empty()
            || (std::fs::remove_dir_all(&self.profile).is_err() && self.profile.exists()))
            && Instant::now() < deadline
        {
            std::thread::sleep(ms(50));
        }
        let left = living_in_group(group);
        if !left.is_empty() {
            eprintln!("chromium processes {left:?} are still there");
        }
    }
}

/// The port `chromedriver --port=0` says it listens on ("ChromeDriver was
/// started successfully on port 41235."); what it prints after is read
/// and dropped, so it never blocks on a full pipe.
fn driver_port(stdout: impl Read + Send + 'static) -> Option<u16> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut said = Vec::new();
        let mut sent = false;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if !sent && let Some(rest) = line.split("successfully on port ").nth(1) {
                let _ = tx.send(rest.trim_end_matches('.').trim().parse::<u16>().ok());
                sent = true;
            } else if !sent {
                said.push(line);
            }
        }
        if !sent {
            eprintln!("chromedriver ended before saying its port: {said:?}");
            let _ = tx.send(None);
        }
    });
    rx.recv_timeout(START).ok().flatten()
}

/// The processes of process group `group` that are not zombies.
fn living_in_group(group: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // "<pid> (<comm>) <state> <ppid> <pgrp> ..."
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let Some((_, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            fields.first() != Some(&"Z") && fields.get(2) == Some(&group.to_string().as_str())
        })
        .collect()
}

/// The cargo target directory this test binary was built in
/// (`<target>/<profile>/deps/<test>`): where the tests leave their
/// screenshots.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("this test's path");
    exe.ancestors()
        .nth(3)
        .expect("<target>/<profile>/deps/<test>")
        .to_path_buf()
}

/// Standard base64 (with padding, as WebDriver sends screenshots); `None`
/// on anything else. A dozen lines rather than a crate, so that the tests
/// add nothing to `Cargo.lock`.
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    fn sextet(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (n, quad) in bytes.chunks(4).enumerate() {
        let last = n + 1 == bytes.len() / 4;
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut bits = 0u32;
        for &c in &quad[..4 - pad] {
            bits = bits << 6 | sextet(c)?;
        }
        bits <<= 6 * pad as u32;
        out.extend_from_slice(&bits.to_be_bytes()[1..4 - pad]);
    }
    Some(out)
}
