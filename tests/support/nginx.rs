//! A real reverse proxy in front of our server, with TLS and HTTP/2, on a
//! free port of 127.0.0.1: Debian's `nginx` (and `caddy`, when installed).
//! Each runs as an ordinary process of the test, in a fresh directory of
//! its own that holds its configuration, a self-signed certificate for
//! `localhost` (made with `openssl` at start), its logs and its temporary
//! files, so nothing under /etc or /var is read or written. Dropping it
//! kills the process, waits for it and removes the directory.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::programs::{self, free_port, fresh_dir, tail};
use super::wait::{ms, wait_until};

/// How long a proxy may take to listen after it starts.
const UP_TIMEOUT: Duration = Duration::from_secs(10);
/// How many ports `start` tries before it gives up.
const START_TRIES: usize = 5;

/// Which proxy runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Nginx,
    Caddy,
}

/// A proxy process started for one test.
pub struct Proxy {
    kind: Kind,
    /// `None` once stopped.
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    binary: PathBuf,
    /// `nginx/1.22.1`, `v2.6.2`: what the binary says it is.
    version: String,
    /// The configuration, with `{PORT}` where the port goes.
    template: String,
    /// The config's lines that turn on TLS and HTTP/2 (for the report).
    listen: String,
}

impl Proxy {
    /// Starts nginx, with TLS and HTTP/2 on a free port of 127.0.0.1 and
    /// `server_block` (`location`s, mostly) inside its `server { }`, or
    /// returns `None` (with a message on stderr) when `nginx` or `openssl`
    /// is not installed: the caller then skips its test. Panics when they
    /// are installed but nginx does not come up.
    ///
    /// The access log (`access_log()`) has one line per request, when the
    /// request ends: `connection=<nginx's serial number of the client's
    /// TCP connection> protocol=<HTTP/2.0> status=<..> uri=<..>`.
    pub fn nginx(server_block: &str) -> Option<Proxy> {
        let Some(binary) = find_program("nginx") else {
            eprintln!("skipping: nginx is not installed (apt-get install nginx-light)");
            return None;
        };
        let openssl = find_program("openssl")?;
        let version = nginx_version(&binary);
        let numbers = version_numbers(&version);
        // `listen ... http2` became the `http2` directive in nginx 1.25.1;
        // newer versions warn about the old form.
        let listen = if numbers >= (1, 25, 1) {
            "listen 127.0.0.1:{PORT} ssl;\n        http2 on;".to_owned()
        } else {
            "listen 127.0.0.1:{PORT} ssl http2;".to_owned()
        };
        let dir = fresh_dir("nginx");
        make_certificate(&openssl, &dir);
        let d = dir.display();
        // Every temporary path nginx was built with must be set: it creates
        // them at start, and the built-in ones are under /var/lib/nginx.
        let mut temp_paths = String::new();
        let built_with = nginx_build_options(&binary);
        for (directive, module) in [
            ("client_body_temp_path", None),
            ("proxy_temp_path", Some("proxy")),
            ("fastcgi_temp_path", Some("fastcgi")),
            ("uwsgi_temp_path", Some("uwsgi")),
            ("scgi_temp_path", Some("scgi")),
        ] {
            let without = module.map(|m| format!("--without-http_{m}_module"));
            if without.is_some_and(|flag| built_with.contains(&flag)) {
                continue;
            }
            let name = directive.trim_end_matches("_temp_path");
            temp_paths.push_str(&format!("    {directive} {d}/{name};\n"));
        }
        let template = format!(
            "# One process in the foreground: the test owns it and kills it.
daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{
    worker_connections 512;
}}
http {{
    log_format conn 'connection=$connection protocol=$server_protocol status=$status uri=$request_uri';
    access_log {d}/access.log conn;
{temp_paths}    server {{
        {listen}
        server_name localhost;
        ssl_certificate {d}/cert.pem;
        ssl_certificate_key {d}/key.pem;

{server_block}
    }}
}}
"
        );
        let mut proxy = Proxy {
            kind: Kind::Nginx,
            child: None,
            port: 0,
            dir,
            binary,
            version,
            template,
            listen,
        };
        proxy.start();
        Some(proxy)
    }

    /// Starts Caddy, with TLS (HTTP/2 is on by default) on a free port of
    /// 127.0.0.1 and `site_block` inside its site `https://localhost:<port>`,
    /// or returns `None` (with a message on stderr) when `caddy` or
    /// `openssl` is not installed. Its admin endpoint, automatic HTTPS
    /// (ACME, the redirect on port 80) and (the configuration it saves goes to its own directory).
    pub fn caddy(site_block: &str) -> Option<Proxy> {
        let Some(binary) = find_program("caddy") else {
            eprintln!("skipping: caddy is not installed (apt-get install caddy)");
            return None;
        };
        let openssl = find_program("openssl")?;
        let version = program_output(&binary, &["version"])
            .split_whitespace()
            .next()
            .unwrap_or("unknown")
            .to_owned();
        let dir = fresh_dir("caddy");
        make_certificate(&openssl, &dir);
        let d = dir.display();
        let template = format!(
            "{{
    admin off
    auto_https off
    storage file_system {d}/data
}}
https://localhost:{{PORT}} {{
    bind 127.0.0.1
    tls {d}/cert.pem {d}/key.pem
    log {{
        output file {d}/access.log
    }}
{site_block}
}}
"
        );
        let mut proxy = Proxy {
            kind: Kind::Caddy,
            child: None,
            port: 0,
            dir,
            binary,
            version,
            template,
            listen: "https://localhost:{PORT} { bind 127.0.0.1; tls cert.pem key.pem }".to_owned(),
        };
        proxy.start();
        Some(proxy)
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `https://localhost:<port>`: the name the certificate is for (a
    /// client resolves it to 127.0.0.1 with `--resolve`, see
    /// [`curl_args`](Proxy::curl_args)).
    pub fn origin(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    /// The certificate the proxy presents (self-signed, so it is its own
    /// CA: `curl --cacert`).
    pub fn certificate(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    /// curl's arguments to reach [`origin`](Proxy::origin) on 127.0.0.1
    /// and trust the certificate (verified, not `-k`).
    pub fn curl_args(&self) -> Vec<String> {
        vec![
            "--resolve".to_owned(),
            format!("localhost:{}:127.0.0.1", self.port),
            "--cacert".to_owned(),
            self.certificate().display().to_string(),
        ]
    }

    /// A path in the proxy's directory for a test's own files (removed
    /// with it).
    pub fn scratch_file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// What the binary says its version is.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The configuration's lines that turn TLS and HTTP/2 on.
    pub fn listen_lines(&self) -> String {
        self.listen.replace("{PORT}", &self.port.to_string())
    }

    /// The whole configuration it runs with.
    pub fn config(&self) -> String {
        self.template.replace("{PORT}", &self.port.to_string())
    }

    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }

    /// The error log (nginx) or the process's own log (Caddy, stderr).
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Starts the process on a free port, trying another when one is taken.
    fn start(&mut self) {
        let mut failures = Vec::new();
        for _ in 0..START_TRIES {
            // A port free a moment ago: another process may take it before
            // the proxy binds it, and then the next try takes another.
            self.port = free_port();
            match self.spawn_and_wait() {
                Ok(()) => return,
                Err(why) => {
                    failures.push(format!("port {}: {why}", self.port));
                    self.stop();
                }
            }
        }
        panic!(
            "{:?} did not come up in {START_TRIES} tries: {failures:#?}",
            self.kind
        );
    }

    /// Writes the configuration for `self.port`, starts the process and
    /// waits until it listens on the port (the listening socket is the
    /// process's own) and a connection to it is accepted, or it exits.
    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let config = self.config();
        let mut command = Command::new(&self.binary);
        match self.kind {
            Kind::Nginx => {
                let path = self.dir.join("nginx.conf");
                std::fs::write(&path, &config).map_err(|e| format!("write the config: {e}"))?;
                command.arg("-p").arg(&self.dir).arg("-c").arg(&path);
                if version_numbers(&self.version) >= (1, 19, 5) {
                    // The error log before the configuration is read.
                    command.arg("-e").arg(self.dir.join("error.log"));
                }
                command.stderr(self.log_file()?);
            }
            Kind::Caddy => {
                let path = self.dir.join("Caddyfile");
                std::fs::write(&path, &config).map_err(|e| format!("write the config: {e}"))?;
                command
                    .args(["run", "--adapter", "caddyfile", "--config"])
                    .arg(&path)
                    .env("HOME", &self.dir)
                    .env("XDG_DATA_HOME", self.dir.join("data"))
                    .env("XDG_CONFIG_HOME", self.dir.join("config"))
                    .stderr(self.log_file()?);
            }
        }
        let child = command
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.binary.display()))?;
        let pid = child.id();
        self.child = Some(child);
        let mut exited = None;
        let up = wait_until(UP_TIMEOUT, || {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                exited = Some(status);
                return true;
            }
            listens(pid, self.port) && TcpStream::connect_timeout(&self.addr(), ms(500)).is_ok()
        });
        match (up, exited) {
            (true, None) => Ok(()),
            (_, Some(status)) => Err(format!(
                "it exited ({status}); its log ends: {}",
                tail(&self.error_log(), 800)
            )),
            (false, None) => Err(format!(
                "not listening within {UP_TIMEOUT:?}; its log ends: {}",
                tail(&self.error_log(), 800)
            )),
        }
    }

    /// The file the process's stderr goes to (appended, across tries).
    fn log_file(&self) -> Result<std::fs::File, String> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("error.log"))
            .map_err(|e| format!("open the log: {e}"))
    }

    /// Kills the process (SIGKILL) and waits for it.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Makes `cert.pem` and `key.pem` in `dir`: a P-256 key and a certificate
/// for `localhost` and 127.0.0.1, valid for a day, signed by itself.
fn make_certificate(openssl: &Path, dir: &Path) {
    let output = Command::new(openssl)
        .args(["req", "-x509", "-newkey", "ec"])
        .args(["-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .args(["-subj", "/CN=localhost", "-days", "1"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", openssl.display()));
    assert!(
        output.status.success(),
        "openssl req failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `nginx/1.22.1`, from `nginx -v` (which prints to stderr).
fn nginx_version(binary: &Path) -> String {
    let text = program_output(binary, &["-v"]);
    text.split_whitespace()
        .find(|word| word.starts_with("nginx/"))
        .unwrap_or("nginx/0")
        .to_owned()
}

/// The `configure` arguments nginx was built with (`nginx -V`).
fn nginx_build_options(binary: &Path) -> String {
    program_output(binary, &["-V"])
}

/// `(1, 22, 1)` from `nginx/1.22.1` or `v2.6.2`; missing parts are 0.
fn version_numbers(version: &str) -> (u32, u32, u32) {
    let digits = version.trim_start_matches(|c: char| !c.is_ascii_digit());
    let mut parts = digits
        .split(|c: char| !c.is_ascii_digit())
        .map(|part| part.parse().unwrap_or(0));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

/// What `program args` printed, stdout and stderr together.
fn program_output(program: &Path, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    text
}

/// Whether process `pid` holds a socket listening on 127.0.0.1:`port`,
/// from `/proc/net/tcp` and `/proc/<pid>/fd`.
fn listens(pid: u32, port: u16) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    // 127.0.0.1 as /proc writes it (little-endian hex), and LISTEN (0A).
    let local = format!("0100007F:{port:04X}");
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.len() > 9 && fields[1] == local && fields[3] == "0A")
                .then(|| format!("socket:[{}]", fields[9]))
        })
        .collect();
    if inodes.is_empty() {
        return false;
    }
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    entries
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .any(|target| inodes.contains(&target.to_string_lossy().into_owned()))
}

/// How many TCP connections to 127.0.0.1:`port` are established now, as
/// the listening side sees them (one per connection it accepted and still
/// holds), from `/proc/net/tcp`.
pub fn established_to(port: u16) -> usize {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return 0;
    };
    let local = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.len() > 3 && fields[1] == local && fields[3] == "01"
        })
        .count()
}

/// `program` (see [`programs::find_program`]); `None` with a message on
/// stderr when it is nowhere (nginx and Caddy have their own).
fn find_program(program: &str) -> Option<PathBuf> {
    let found = programs::find_program(program);
    if found.is_none() && program != "nginx" && program != "caddy" {
        eprintln!("skipping: {program} is not installed (apt-get install {program})");
    }
    found
}

/// Whether `program` is installed (on `PATH`, or in /usr/sbin and the
/// like); prints the skip message when it is not.
pub fn installed(program: &str) -> bool {
    find_program(program).is_some()
}
