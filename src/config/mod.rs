//! Configuration: the YAML file parsed into [`raw`] structs, then compiled once into a
//! validated [`Config`] whose types cannot be wrong. Every problem is reported at once, each
//! with its file, line, column and key path; nothing on the request path re-parses a string.

mod policy;
mod raw;
mod units;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::Uri;
use http::uri::{Authority, Scheme};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde_saphyr::Spanned;

use crate::policy::Policy;
pub use units::{parse_duration, parse_size};

/// Config files larger than this are refused before parsing (hostile-input bound).
const MAX_FILE_BYTES: u64 = 1 << 20;

#[derive(Debug)]
pub struct Config {
    pub file: PathBuf,
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub upstream: Upstream,
    pub secrets_file: PathBuf,
    pub secrets_poll_interval: Duration,
    pub policy: Policy,
    pub limits: Limits,
    pub shutdown: Shutdown,
    pub log_allowed: LogAllowed,
    /// Things that work but are probably not what was meant; `check` prints them, `run` logs them.
    pub warnings: Vec<String>,
}

#[derive(Debug)]
pub struct Upstream {
    pub base_url: String,
    pub scheme: Scheme,
    pub authority: Authority,
    /// The base URL's path without its trailing `/` (often empty); prepended to every path.
    pub prefix: String,
    /// Roots from `ca_file`, added to the built-in web PKI roots.
    pub extra_roots: Vec<CertificateDer<'static>>,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub inspect_body: u64,
    pub max_header_bytes: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
    pub max_connections: usize,
    pub h2_max_streams: u32,
}

#[derive(Debug, Clone)]
pub struct Shutdown {
    pub drain_timeout: Duration,
    pub delay: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogAllowed {
    All,
    Errors,
    None,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: larger than {MAX_FILE_BYTES} bytes", path.display())]
    TooLarge { path: PathBuf },
    #[error("{}:{line}:{column}: {message}", path.display())]
    Yaml {
        path: PathBuf,
        line: u64,
        column: u64,
        message: String,
    },
    #[error("{}", render(path, problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

/// One validation problem, at its place in the file.
#[derive(Debug, Clone)]
pub struct Problem {
    pub line: u64,
    pub column: u64,
    pub key: String,
    pub message: String,
}

fn render(path: &Path, problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| {
            format!(
                "{}:{}:{}: {}: {}",
                path.display(),
                p.line,
                p.column,
                p.key,
                p.message
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = read_bounded(path).map_err(|e| match e {
            None => ConfigError::TooLarge {
                path: path.to_owned(),
            },
            Some(source) => ConfigError::Read {
                path: path.to_owned(),
                source,
            },
        })?;
        Config::from_yaml(path, &text)
    }

    /// Parses and compiles `text`, read from `path` (which anchors relative paths).
    pub fn from_yaml(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw: raw::Config = serde_saphyr::from_str(text).map_err(|e| {
            let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
            let message = e.without_snippet().to_string();
            let message = message
                .split(" at line ")
                .next()
                .unwrap_or(&message)
                .to_owned();
            ConfigError::Yaml {
                path: path.to_owned(),
                line,
                column,
                message,
            }
        })?;
        let mut c = Compiler {
            dir: path.parent().unwrap_or(Path::new(".")).to_owned(),
            problems: Vec::new(),
            warnings: Vec::new(),
        };
        let config = c.config(path, raw);
        match config {
            Some(config) if c.problems.is_empty() => Ok(config),
            _ => Err(ConfigError::Invalid {
                path: path.to_owned(),
                problems: c.problems,
            }),
        }
    }
}

/// Reads a file of at most [`MAX_FILE_BYTES`]; `Err(None)` when it is larger.
pub fn read_bounded(path: &Path) -> Result<String, Option<std::io::Error>> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(Some)?;
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(Some)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(None);
    }
    Ok(text)
}

/// Collects every problem while turning raw structs into checked ones.
struct Compiler {
    dir: PathBuf,
    problems: Vec<Problem>,
    warnings: Vec<String>,
}

impl Compiler {
    fn problem<T>(&mut self, at: &Spanned<T>, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            line: at.referenced.line(),
            column: at.referenced.column(),
            key: key.into(),
            message: message.into(),
        });
    }

    /// Runs `parse` on a spanned value, recording its error as a problem.
    fn value<T, U>(
        &mut self,
        at: &Spanned<T>,
        key: &str,
        parse: impl FnOnce(&T) -> Result<U, String>,
    ) -> Option<U> {
        parse(&at.value).map_err(|m| self.problem(at, key, m)).ok()
    }

    fn opt<T, U>(
        &mut self,
        at: &Option<Spanned<T>>,
        key: &str,
        default: U,
        parse: impl FnOnce(&T) -> Result<U, String>,
    ) -> U {
        match at {
            None => default,
            Some(at) => self.value(at, key, parse).unwrap_or(default),
        }
    }

    fn config(&mut self, path: &Path, raw: raw::Config) -> Option<Config> {
        let allow_remote = raw.allow_remote_clients.unwrap_or(false);
        let default_listen: SocketAddr = ([127, 0, 0, 1], 8080).into();
        let listen = self.opt(&raw.listen, "listen", default_listen, |s| parse_addr(s));
        if !listen.ip().is_loopback() {
            if allow_remote {
                self.warnings.push(format!(
                    "listen {listen} is not loopback: anyone who can reach it can use the groups' credentials"
                ));
            } else if let Some(at) = &raw.listen {
                self.problem(at, "listen", format!(
                    "{listen} is not a loopback address: anyone who can reach it could use the groups' credentials (set allow_remote_clients: true to allow it)"
                ));
            }
        }
        let admin_listen = self.opt(
            &raw.admin_listen,
            "admin_listen",
            ([127, 0, 0, 1], 9901).into(),
            |s| parse_addr(s),
        );
        let upstream = self.upstream(&raw.upstream);
        let secrets_file = self.dir.join(&raw.secrets_file.value);
        let secrets_poll_interval = self.opt(
            &raw.secrets_poll_interval,
            "secrets_poll_interval",
            Duration::from_secs(30),
            |s| positive_duration(&s.0),
        );
        let policy = self.policy(&raw);
        let limits = self.limits(raw.limits.as_ref());
        let shutdown = raw.shutdown.as_ref();
        let shutdown = Shutdown {
            drain_timeout: self.opt(
                &shutdown.and_then(|s| s.drain_timeout.clone()),
                "shutdown.drain_timeout",
                Duration::from_secs(20),
                |s| parse_duration(&s.0),
            ),
            delay: self.opt(
                &shutdown.and_then(|s| s.delay.clone()),
                "shutdown.delay",
                Duration::ZERO,
                |s| parse_duration(&s.0),
            ),
        };
        let log_allowed = match raw.log.as_ref().and_then(|l| l.allowed.as_ref()) {
            None => LogAllowed::All,
            Some(at) => self
                .value(at, "log.allowed", |s| match s.as_str() {
                    "all" => Ok(LogAllowed::All),
                    "errors" => Ok(LogAllowed::Errors),
                    "none" => Ok(LogAllowed::None),
                    other => Err(format!("{other:?} is not one of all, errors, none")),
                })
                .unwrap_or(LogAllowed::All),
        };
        Some(Config {
            file: path.to_owned(),
            listen,
            admin_listen,
            upstream: upstream?,
            secrets_file,
            secrets_poll_interval,
            policy: policy?,
            limits,
            shutdown,
            log_allowed,
            warnings: std::mem::take(&mut self.warnings),
        })
    }

    fn upstream(&mut self, raw: &Spanned<raw::Upstream>) -> Option<Upstream> {
        let u = &raw.value;
        let parsed = self.value(&u.base_url, "upstream.base_url", |s| parse_base_url(s));
        let extra_roots = match &u.ca_file {
            None => Vec::new(),
            Some(at) => {
                let file = self.dir.join(&at.value);
                self.value(at, "upstream.ca_file", |_| read_roots(&file))
                    .unwrap_or_default()
            }
        };
        let connect_timeout = self.opt(
            &u.connect_timeout,
            "upstream.connect_timeout",
            Duration::from_secs(5),
            |s| positive_duration(&s.0),
        );
        let response_timeout = self.opt(
            &u.response_timeout,
            "upstream.response_timeout",
            Duration::from_secs(30),
            |s| positive_duration(&s.0),
        );
        let (scheme, authority, prefix) = parsed?;
        if scheme == Scheme::HTTP && !is_loopback_host(authority.host()) {
            self.warnings.push(format!(
                "upstream.base_url {} is plain http to a non-loopback host: credentials cross the network unencrypted",
                u.base_url.value
            ));
        }
        Some(Upstream {
            base_url: u.base_url.value.clone(),
            scheme,
            authority,
            prefix,
            extra_roots,
            connect_timeout,
            response_timeout,
        })
    }

    fn limits(&mut self, raw: Option<&raw::Limits>) -> Limits {
        let get =
            |f: fn(&raw::Limits) -> &Option<Spanned<raw::Scalar>>| raw.and_then(|l| f(l).clone());
        Limits {
            inspect_body: self.opt(
                &get(|l| &l.inspect_body),
                "limits.inspect_body",
                1 << 20,
                |s| parse_size(&s.0),
            ),
            max_header_bytes: self.opt(
                &get(|l| &l.max_header_bytes),
                "limits.max_header_bytes",
                16 << 10,
                |s| {
                    parse_size(&s.0).and_then(|n| {
                        if n >= 8192 {
                            Ok(n as usize)
                        } else {
                            Err("must be at least 8KiB".into())
                        }
                    })
                },
            ),
            header_read_timeout: self.opt(
                &get(|l| &l.header_read_timeout),
                "limits.header_read_timeout",
                Duration::from_secs(10),
                |s| positive_duration(&s.0),
            ),
            idle_timeout: self.opt(
                &get(|l| &l.idle_timeout),
                "limits.idle_timeout",
                Duration::from_secs(60),
                |s| positive_duration(&s.0),
            ),
            request_timeout: self.opt(
                &get(|l| &l.request_timeout),
                "limits.request_timeout",
                Duration::from_secs(300),
                |s| positive_duration(&s.0),
            ),
            max_connections: self.opt(
                &get(|l| &l.max_connections),
                "limits.max_connections",
                10_000,
                |s| parse_count(&s.0),
            ),
            h2_max_streams: self.opt(
                &get(|l| &l.h2_max_streams),
                "limits.h2_max_streams",
                256,
                |s| {
                    parse_count(&s.0)
                        .and_then(|n| u32::try_from(n).map_err(|_| "too large".to_owned()))
                },
            ),
        }
    }
}

/// A duration that must not be zero (a zero timeout or poll interval breaks things quietly).
fn positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err(format!("{s:?} must be more than zero")),
        d => Ok(d),
    }
}

fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|_| format!("{s:?} is not an address such as 127.0.0.1:8080"))
}

fn parse_count(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{s:?} is not a positive whole number")),
    }
}

fn parse_base_url(s: &str) -> Result<(Scheme, Authority, String), String> {
    let uri: Uri = s.parse().map_err(|e| format!("{s:?} is not a URL: {e}"))?;
    let scheme = match uri.scheme_str() {
        Some("https") => Scheme::HTTPS,
        Some("http") => Scheme::HTTP,
        _ => {
            return Err(format!(
                "{s:?} must start with https:// (or http:// for local emulators)"
            ));
        }
    };
    let authority = uri
        .authority()
        .cloned()
        .ok_or_else(|| format!("{s:?} has no host"))?;
    if authority.as_str().contains('@') {
        return Err(
            "credentials in the base URL are not allowed: put them in the secrets file".into(),
        );
    }
    if uri.query().is_some() {
        return Err(format!("{s:?} must not have a query"));
    }
    let prefix = uri.path().trim_end_matches('/').to_owned();
    if prefix.contains("//") || prefix.split('/').any(|x| x == "." || x == "..") {
        return Err(format!("{s:?} has an ambiguous path"));
    }
    Ok((scheme, authority, prefix))
}

fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn read_roots(file: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not a PEM certificate bundle: {e}", file.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: holds no PEM certificate", file.display()));
    }
    Ok(certs)
}
