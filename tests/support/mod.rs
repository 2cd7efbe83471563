//! Test harness: a real upstream on loopback (HTTP, or TLS with a test CA) that records what
//! it received, the real `credgate` binary started from YAML strings, and a real client.
#![allow(dead_code)]

pub mod upstream;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[allow(unused_imports)]
pub use upstream::{Accounts, Upstream};

pub const PROJECT: &str = "12345678-1234-1234-1234-123456789abc";
pub const OTHER_PROJECT: &str = "87654321-4321-4321-4321-cba987654321";
pub const KEY_ID: &str = "keyid0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklm";
pub const SECRET: &str = "secretzyxwvutsrqponmlkjihgfedcba9876543210zyxwvutsrqponmlkjihgf";
pub const TOKEN: &str = "tokenaaaabbbbccccddddeeeeffffgggghhhhiiiijjjjkkkkllllmmmmnnnnoo";

/// A tracking API path in the test project.
pub fn track(path: &str) -> String {
    format!("/track/v2/projects/{PROJECT}/{path}")
}

/// A data API path in the test project.
pub fn data(path: &str) -> String {
    format!("/data/v2/projects/{PROJECT}/{path}")
}

/// base64("KEY_ID:SECRET"), what the upstream must see for the private group.
pub fn basic() -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{KEY_ID}:{SECRET}"))
    )
}

pub fn secrets_yaml() -> String {
    format!(
        "consent-portal:\n  key_id: {KEY_ID}\n  secret: {SECRET}\nweb-tracking:\n  token: {TOKEN}\n"
    )
}

/// The seed's config: a private consent group and a public tracking group.
pub fn config_yaml(base_url: &str) -> String {
    format!(
        r#"listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
upstream:
  base_url: {base_url}
  connect_timeout: 2s
  response_timeout: 2s
project_token: {PROJECT}
secrets_file: secrets.yaml
groups:
  consent-portal:
    access: private
    permissions: ["Consent: Get + Set", "GDPR: Export customer", "Catalogs: Get", "Imports: Allow trigger imports"]
  web-tracking:
    access: public
    permissions: ["Events: Set", "Customer properties: Set"]
routes:
  - group: web-tracking
    match:
      path_prefix: /track/
      methods: [POST]
      headers: {{ x-credgate-group: web-tracking }}
  - group: consent-portal
"#
    )
}

/// A running `credgate run`, killed on drop. Its stderr (the logs) is captured.
pub struct Proxy {
    child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
    pub dir: tempfile::TempDir,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_credgate")
}

/// Writes `credgate.yaml` and `secrets.yaml` into a fresh folder.
pub fn write_files(config: &str, secrets: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("credgate.yaml"), config).unwrap();
    std::fs::write(dir.path().join("secrets.yaml"), secrets).unwrap();
    dir
}

impl Proxy {
    pub fn start(config: &str, secrets: &str) -> Proxy {
        Proxy::start_with(config, secrets, "info")
    }

    pub fn start_with(config: &str, secrets: &str, filter: &str) -> Proxy {
        let dir = write_files(config, secrets);
        Proxy::start_in(dir, filter)
    }

    pub fn start_in(dir: tempfile::TempDir, filter: &str) -> Proxy {
        let mut child = Command::new(bin())
            .args(["run", "--config"])
            .arg(dir.path().join("credgate.yaml"))
            .env("CREDGATE_LOG", filter)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let parsed = serde_json::from_str::<serde_json::Value>(&line).ok();
                sink.lock().unwrap().push(line); // before signalling, so logs() has the line
                if let Some(v) = parsed
                    && v["message"] == "listening"
                {
                    let addr = |k: &str| v[k].as_str().unwrap().parse::<SocketAddr>().unwrap();
                    let _ = tx.send((addr("listen"), addr("admin_listen")));
                }
            }
        });
        let (addr, admin) = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(addrs) => addrs,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "credgate did not start:\n{}",
                    logs.lock().unwrap().join("\n")
                );
            }
        };
        Proxy {
            child,
            addr,
            admin,
            logs,
            dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// Sends a signal (`"TERM"`, `"INT"`) to the proxy.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit, returning its exit code.
    pub fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// The access-log lines, parsed.
    pub fn access_log(&self) -> Vec<serde_json::Value> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["target"] == "credgate::access")
            .collect()
    }

    /// One field of every access-log line, as text (`""` when absent).
    pub fn access(&self, field: &str) -> Vec<String> {
        let text = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        };
        self.access_log().iter().map(|l| text(&l[field])).collect()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A line of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
    pub fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with(field)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("credgate.yaml")
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// Sends a request and reads its whole body (so the access line is written); the status.
pub async fn exchange(request: reqwest::RequestBuilder) -> u16 {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    response.bytes().await.unwrap();
    status
}

/// An address where nothing listens (bound, then released).
pub fn closed_address() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Runs the binary with `args`, returning (exit code, stdout, stderr).
pub fn cli(args: &[&str], cwd: &Path) -> (i32, String, String) {
    let out = Command::new(bin())
        .args(args)
        .current_dir(cwd)
        .env("CREDGATE_LOG", "info")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts a response credgate made itself: status, header and JSON body code.
pub async fn assert_refused(
    response: reqwest::Response,
    status: u16,
    code: &str,
) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status, "status for {code}");
    assert_eq!(response.headers()["credgate-error"], code);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body
}

/// One sample of an OpenMetrics/Prometheus text exposition.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub value: f64,
}

/// Parses the text format: `name{a="x",b="y"} value`, comments skipped, escapes honoured.
pub fn parse_metrics(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad sample line {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            None => (series.to_owned(), Default::default()),
            Some((name, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("bad labels in {line:?}"));
                let mut labels = std::collections::BTreeMap::new();
                let mut chars = body.chars().peekable();
                while chars.peek().is_some() {
                    let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                    assert_eq!(chars.next(), Some('"'), "{line:?}");
                    let mut value = String::new();
                    while let Some(c) = chars.next() {
                        match c {
                            '\\' => value.push(match chars.next() {
                                Some('n') => '\n',
                                Some(other) => other,
                                None => panic!("{line:?}"),
                            }),
                            '"' => break,
                            c => value.push(c),
                        }
                    }
                    if chars.peek() == Some(&',') {
                        chars.next();
                    }
                    labels.insert(key.trim().to_owned(), value);
                }
                (name.to_owned(), labels)
            }
        };
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

/// The value of the series `name` whose labels are exactly `labels`.
pub fn metric(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: std::collections::BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    samples
        .iter()
        .find(|s| s.name == name && s.labels == want)
        .map(|s| s.value)
}

/// A folder laid out and updated the way the kubelet's AtomicWriter does a Secret volume:
/// `..<timestamp>/secrets.yaml`, `..data -> ..<timestamp>`, `secrets.yaml -> ..data/secrets.yaml`.
pub struct SecretVolume {
    pub dir: PathBuf,
    current: PathBuf,
    n: u32,
}

impl SecretVolume {
    pub fn create(dir: &Path, secrets: &str) -> SecretVolume {
        std::fs::create_dir_all(dir).unwrap();
        let mut v = SecretVolume {
            dir: dir.to_owned(),
            current: PathBuf::new(),
            n: 0,
        };
        v.current = v.write_version(secrets);
        std::os::unix::fs::symlink(v.current.file_name().unwrap(), dir.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/secrets.yaml", dir.join("secrets.yaml")).unwrap();
        v
    }

    fn write_version(&mut self, secrets: &str) -> PathBuf {
        self.n += 1;
        let version = self
            .dir
            .join(format!("..2026_12_04_20_00_00.{:09}", self.n));
        std::fs::create_dir(&version).unwrap();
        std::fs::write(version.join("secrets.yaml"), secrets).unwrap();
        version
    }

    /// New timestamped folder, `..data_tmp` symlink renamed over `..data`, old folder removed.
    pub fn update(&mut self, secrets: &str) {
        let next = self.write_version(secrets);
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(next.file_name().unwrap(), &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
        std::fs::remove_dir_all(&self.current).unwrap();
        self.current = next;
    }
}

/// The private group's secrets entry with `secret`, and the public one's token.
pub fn secrets_with(secret: &str) -> String {
    format!(
        "consent-portal:\n  key_id: {KEY_ID}\n  secret: {secret}\nweb-tracking:\n  token: {TOKEN}\n"
    )
}

/// Polls `cond` every 5 ms for up to `limit`; returns how long it took.
pub async fn within(limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}
