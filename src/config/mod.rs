//! Configuration: the YAML file parsed into [`raw`] structs, then compiled once into a
//! validated [`Config`] whose types cannot be wrong. Every problem is reported at once, each
//! with its file, line, column and key path; nothing on the request path re-parses a string.

mod raw;
mod units;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::uri::{Authority, Scheme};
use http::{HeaderName, HeaderValue, Method, Uri};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde_saphyr::Spanned;

use crate::policy::catalog::{Catalog, Endpoint, Need};
use crate::policy::permission::{self, Grants, Mask};
use crate::policy::{Access, Group, Mode, Policy, Route};
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
            |s| parse_duration(&s.0),
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
            |s| parse_duration(&s.0),
        );
        let response_timeout = self.opt(
            &u.response_timeout,
            "upstream.response_timeout",
            Duration::from_secs(30),
            |s| parse_duration(&s.0),
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

    fn policy(&mut self, raw: &raw::Config) -> Option<Policy> {
        let default_project = raw
            .project_token
            .as_ref()
            .and_then(|at| self.value(at, "project_token", |s| check_project(s)));
        let mut groups = Vec::new();
        for (name, at) in &raw.groups {
            let key = format!("groups.{name}");
            if !valid_group_name(name) {
                self.problem(at, &key, "a group name is 1 to 64 of [A-Za-z0-9._-]");
            }
            if let Some(group) = self.group(
                name,
                &key,
                at,
                default_project.as_deref(),
                raw.project_token.is_some(),
            ) {
                groups.push(group);
            }
        }
        if raw.groups.is_empty() {
            self.problems.push(Problem {
                line: 1,
                column: 1,
                key: "groups".into(),
                message: "at least one group is needed".into(),
            });
        }
        let names: Vec<String> = raw.groups.keys().cloned().collect();
        let mut routes = Vec::new();
        for (i, at) in raw.routes.iter().enumerate() {
            if let Some(route) = self.route(i, at, &names) {
                routes.push(route);
            }
        }
        if raw.routes.is_empty() {
            self.warnings
                .push("no routes: every request will be refused with no_route".into());
        }
        let mut catalog = Catalog::builtin();
        for (i, at) in raw.endpoints.iter().enumerate() {
            if let Some(endpoint) = self.endpoint(i, at, &catalog) {
                catalog.push(endpoint);
            }
        }
        let policy = Policy {
            groups,
            routes,
            catalog,
        };
        if self.problems.is_empty() {
            self.reachability(&policy);
        }
        Some(policy)
    }

    fn group(
        &mut self,
        name: &str,
        key: &str,
        at: &Spanned<raw::Group>,
        default_project: Option<&str>,
        has_default: bool,
    ) -> Option<Group> {
        let g = &at.value;
        let access = self.value(&g.access, &format!("{key}.access"), |s| {
            match s.to_ascii_lowercase().as_str() {
                "private" => Ok(Access::Private),
                "public" => Ok(Access::Public),
                other => Err(format!("{other:?} is not private or public")),
            }
        });
        let project = match &g.project_token {
            Some(p) => self.value(p, &format!("{key}.project_token"), |s| check_project(s)),
            None if default_project.is_some() => default_project.map(str::to_owned),
            None => {
                if !has_default {
                    self.problem(
                        at,
                        key,
                        "no project_token: set one here or at the top level",
                    );
                }
                None
            }
        };
        let mut grants = Grants::default();
        for (i, p) in g.permissions.iter().enumerate() {
            let pkey = format!("{key}.permissions[{i}]");
            let Some(parsed) = self.value(p, &pkey, |s| permission::parse(s)) else {
                continue;
            };
            if access == Some(Access::Public)
                && let Some(bad) = parsed.grants.iter().find(|g| !g.public())
            {
                self.problem(p, &pkey, format!("\"{bad}\" needs private access; a public group may hold only public-capable permissions (Events: Set, Customer properties: Set, Consent: Set, Recommendations: Get)"));
                continue;
            }
            grants.add(&parsed);
        }
        let mode = match &g.mode {
            None => Mode::Enforce,
            Some(m) => self
                .value(m, &format!("{key}.mode"), |s| match s.as_str() {
                    "enforce" => Ok(Mode::Enforce),
                    "audit" => Ok(Mode::Audit),
                    other => Err(format!("{other:?} is not enforce or audit")),
                })
                .unwrap_or(Mode::Enforce),
        };
        if mode == Mode::Audit {
            self.warnings.push(format!("group {name:?} is in audit mode: requests its permissions refuse are forwarded anyway"));
        }
        Some(Group {
            mode,
            name: name.to_owned(),
            access: access?,
            project: project?,
            permissions: g.permissions.iter().map(|p| p.value.clone()).collect(),
            grants,
        })
    }

    fn route(&mut self, i: usize, at: &Spanned<raw::Route>, groups: &[String]) -> Option<Route> {
        let key = format!("routes[{i}]");
        let r = &at.value;
        let group = self.value(&r.group, &format!("{key}.group"), |name| {
            groups.iter().position(|g| g == name).ok_or_else(|| {
                let hint = closest(name, groups)
                    .map(|c| format!(" (did you mean {c:?}?)"))
                    .unwrap_or_default();
                format!("unknown group {name:?}{hint}")
            })
        });
        let m = r.matcher.as_ref();
        let path_prefix = m.and_then(|m| m.path_prefix.as_ref()).and_then(|p| {
            self.value(p, &format!("{key}.match.path_prefix"), |s| {
                if !s.starts_with('/') {
                    return Err(format!("{s:?} must start with '/'"));
                }
                if s.contains("//") || s.contains(['%', ';', '\\', '?', '#']) || s.split('/').any(|x| x == "." || x == "..") {
                    return Err(format!("{s:?} must be a plain path: no '//', '%', ';', '\\', '?', '#' or dot segments"));
                }
                Ok(s.trim_end_matches('/').to_owned())
            })
        });
        let methods = m.and_then(|m| m.methods.as_ref()).map(|list| {
            list.iter()
                .enumerate()
                .filter_map(|(j, at)| {
                    self.value(at, &format!("{key}.match.methods[{j}]"), |s| {
                        let upper = s.to_ascii_uppercase();
                        match Method::from_bytes(upper.as_bytes()) {
                            Ok(m) if upper.bytes().all(|b| b.is_ascii_uppercase()) => Ok(m),
                            _ => Err(format!("{s:?} is not an HTTP method")),
                        }
                    })
                })
                .collect::<Vec<_>>()
        });
        let mut headers = Vec::new();
        for (name, at) in m.and_then(|m| m.headers.as_ref()).into_iter().flatten() {
            let hkey = format!("{key}.match.headers.{name}");
            let parsed = self.value(at, &hkey, |value| {
                let n = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| format!("{name:?} is not a header name"))?;
                let v = HeaderValue::from_str(value)
                    .map_err(|_| format!("{value:?} is not a header value"))?;
                Ok((n, v))
            });
            headers.extend(parsed);
        }
        Some(Route {
            group: group?,
            path_prefix,
            methods,
            headers,
        })
    }

    fn endpoint(
        &mut self,
        i: usize,
        at: &Spanned<raw::Endpoint>,
        catalog: &Catalog,
    ) -> Option<Endpoint> {
        let key = format!("endpoints[{i}]");
        let e = &at.value;
        let method = self.value(&e.method, &format!("{key}.method"), |s| {
            let upper = s.to_ascii_uppercase();
            Method::from_bytes(upper.as_bytes()).map_err(|_| format!("{s:?} is not an HTTP method"))
        });
        let need = self.value(&e.permission, &format!("{key}.permission"), |s| {
            if s.trim().eq_ignore_ascii_case("none") {
                return Ok(Need::Nothing);
            }
            let p = permission::parse(s)?;
            if p.scope.is_some() {
                return Err(
                    "a custom endpoint's permission cannot be scoped (its body is not inspected)"
                        .into(),
                );
            }
            Ok(Need::Grants(Mask::of(&p.grants)))
        });
        let endpoint = self.value(&e.path, &format!("{key}.path"), |p| {
            Endpoint::new(method.clone(), p, need.unwrap_or(Need::Reserved))
        })?;
        method.as_ref()?;
        need?;
        if let Some(taken) = catalog.endpoints().iter().find(|b| b.overlaps(&endpoint)) {
            if taken.need == Need::Reserved {
                self.problem(&e.path, format!("{key}.path"), format!("overlaps the reserved endpoint {taken}: reserved endpoints cannot be reached"));
                return None;
            }
            self.warnings.push(format!(
                "{key} ({endpoint}) overlaps {taken}, which is matched first"
            ));
        }
        if !endpoint.has_project() {
            self.warnings.push(format!(
                "{key} ({endpoint}) has no {{project}} segment: the project check is skipped for it"
            ));
        }
        Some(endpoint)
    }

    /// Warnings for routes that can never match and groups no route reaches.
    fn reachability(&mut self, policy: &Policy) {
        let mut reached = vec![false; policy.groups.len()];
        for (i, route) in policy.routes.iter().enumerate() {
            match policy.routes[..i]
                .iter()
                .position(|earlier| route.shadowed_by(earlier))
            {
                Some(j) => self.warnings.push(format!(
                    "routes[{i}] can never match: routes[{j}] matches everything it does"
                )),
                None => reached[route.group] = true,
            }
        }
        for (group, reached) in policy.groups.iter().zip(reached) {
            if !reached {
                self.warnings
                    .push(format!("group {:?} is reached by no route", group.name));
            }
        }
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
                |s| parse_duration(&s.0),
            ),
            idle_timeout: self.opt(
                &get(|l| &l.idle_timeout),
                "limits.idle_timeout",
                Duration::from_secs(60),
                |s| parse_duration(&s.0),
            ),
            request_timeout: self.opt(
                &get(|l| &l.request_timeout),
                "limits.request_timeout",
                Duration::from_secs(300),
                |s| parse_duration(&s.0),
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

/// A project token is matched byte-for-byte against one path segment.
fn check_project(s: &str) -> Result<String, String> {
    if s.is_empty()
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
    {
        return Err("a project token is non-empty and made of letters, digits and -_.~".into());
    }
    Ok(s.to_owned())
}

fn valid_group_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

fn closest<'a>(name: &str, candidates: &'a [String]) -> Option<&'a String> {
    candidates
        .iter()
        .map(|c| (permission::distance(name, c), c))
        .filter(|(d, _)| *d <= name.len().max(3) / 3 + 1)
        .min()
        .map(|(_, c)| c)
}
