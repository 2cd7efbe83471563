//! The command line: `run`, `check`, `explain`. Each returns the process exit code of the
//! contract (0 fine, 1 refused or fatal, 2 bad usage or config).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, Version};

use crate::config::Config;
use crate::policy::{self, Mode, Outcome, Unreadable, target};
use crate::{proxy, secrets, server};

#[derive(Parser)]
#[command(
    name = "credgate",
    version,
    about = "Credential-injecting sidecar for the Bloomreach Engagement API"
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Subcommand)]
pub enum Command {
    /// Start the proxy.
    Run {
        #[arg(long, env = "CREDGATE_CONFIG")]
        config: PathBuf,
    },
    /// Validate the config and secrets file and print the effective policy.
    Check {
        #[arg(long, env = "CREDGATE_CONFIG")]
        config: PathBuf,
    },
    /// Say what credgate would do with a request, without any network.
    Explain {
        #[arg(long, env = "CREDGATE_CONFIG")]
        config: PathBuf,
        /// GET, POST, ...
        method: String,
        /// The request target, e.g. /track/v2/projects/<token>/customers/events
        path: String,
        /// A request header, 'Name: value' (repeatable).
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        /// The request body (read for endpoints whose permission depends on it).
        #[arg(long)]
        body: Option<PathBuf>,
    },
}

pub fn main(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Run { config } => run(&config),
        Command::Check { config } => check(&config),
        Command::Explain {
            config,
            method,
            path,
            headers,
            body,
        } => explain(&config, &method, &path, &headers, body.as_deref()),
    }
}

fn run(path: &Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => return fatal(2, "invalid config", &e),
    };
    for w in &config.warnings {
        tracing::warn!(warning = %w, "config");
    }
    let (set, warnings) = match secrets::read(&config.secrets_file, &config.policy) {
        Ok(s) => s,
        Err(e) => return fatal(2, "invalid secrets file", &e),
    };
    for w in &warnings {
        tracing::warn!(warning = %w, "secrets");
    }
    let store = Arc::new(secrets::Store::new(set));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fatal(1, "cannot start the runtime", &e),
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(config.listen).await {
            Ok(l) => l,
            Err(e) => return fatal(1, &format!("cannot listen on {}", config.listen), &e),
        };
        let listen = listener
            .local_addr()
            .map_or_else(|_| config.listen.to_string(), |a| a.to_string());
        let app = match proxy::App::new(&config, config.policy.clone(), store.clone()) {
            Ok(a) => Arc::new(a),
            Err(e) => return fatal(2, "invalid upstream TLS settings", &e),
        };
        let groups: Vec<String> = config
            .policy
            .groups
            .iter()
            .map(|g| format!("{}={}", g.name, g.access.as_str()))
            .collect();
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            listen,
            upstream = %config.upstream.base_url,
            groups = %groups.join(","),
            secrets_generation = store.load().generation,
            "listening"
        );
        server::run(
            listener,
            app,
            &config.limits,
            config.shutdown.drain_timeout,
            shutdown_signal(),
        )
        .await;
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
    tracing::info!("shutdown signal received: draining");
}

fn fatal(code: u8, what: &str, error: &dyn std::fmt::Display) -> ExitCode {
    for line in error.to_string().lines() {
        tracing::error!(error = %line, "{what}");
    }
    ExitCode::from(code)
}

fn check(path: &Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let (set, secret_warnings) = match secrets::read(&config.secrets_file, &config.policy) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let p = &config.policy;
    let mut text = String::new();
    macro_rules! out {
        ($($arg:tt)*) => {{
            use std::fmt::Write as _;
            let _ = writeln!(text, $($arg)*);
        }};
    }
    out!("config {}: valid", config.file.display());
    out!(
        "listen {}  admin {}  upstream {}",
        config.listen, config.admin_listen, config.upstream.base_url
    );
    out!("secrets {}: valid", config.secrets_file.display());
    out!();
    for (i, g) in p.groups.iter().enumerate() {
        let creds = if set.get(i).is_some() {
            "loaded"
        } else {
            "MISSING"
        };
        out!(
            "group {} ({} access, project {}, credentials {creds})",
            g.name,
            g.access.as_str(),
            g.project
        );
        if g.permissions.is_empty() {
            out!("  permissions: none");
        }
        for perm in &g.permissions {
            out!("  permission {perm:?}");
        }
        if g.mode == Mode::Audit {
            out!("  mode: audit (refusals are forwarded and logged as would_deny)");
        }
        for (grant, names) in g.grants.scoped() {
            out!("  scope: {grant} only for {}", names.join(", "));
        }
        out!("  allows:");
        let mut any = false;
        for e in policy::allowed_endpoints(g, &p.catalog) {
            any = true;
            let project = if e.has_project() {
                ""
            } else {
                "  [no {project} segment: project not checked]"
            };
            out!("    {e}  ({}){project}", policy::describe(e.need));
        }
        if !any {
            out!("    nothing");
        }
    }
    out!();
    out!("routes (first match wins):");
    for (i, r) in p.routes.iter().enumerate() {
        let mut m = Vec::new();
        if let Some(prefix) = &r.path_prefix {
            m.push(format!("path_prefix {}/", prefix));
        }
        if let Some(methods) = &r.methods {
            m.push(format!(
                "methods {}",
                methods
                    .iter()
                    .map(Method::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            ));
        }
        for (n, v) in &r.headers {
            m.push(format!("header {n}: {}", v.to_str().unwrap_or("?")));
        }
        let m = if m.is_empty() {
            "everything".to_owned()
        } else {
            m.join(", ")
        };
        out!("  routes[{i}] -> {}  when {m}", p.groups[r.group].name);
    }
    let warnings: Vec<&String> = config.warnings.iter().chain(&secret_warnings).collect();
    if !warnings.is_empty() {
        out!();
        for w in warnings {
            out!("warning: {w}");
        }
    }
    // A closed stdout (`check | head`) is not an error worth a panic.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
    ExitCode::SUCCESS
}

fn explain(
    path: &Path,
    method: &str,
    target: &str,
    headers: &[String],
    body: Option<&Path>,
) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let request = parse_request(method, target, headers).and_then(|r| {
        let body = body
            .map(|b| std::fs::read(b).map_err(|e| format!("cannot read {}: {e}", b.display())))
            .transpose()?;
        Ok((r, body))
    });
    let ((method, uri, headers), body) = match request {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    print_explanation(&config, &method, &uri, &headers, body.as_deref())
}

fn parse_request(
    method: &str,
    target: &str,
    headers: &[String],
) -> Result<(Method, Uri, HeaderMap), String> {
    let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("{method:?} is not an HTTP method"))?;
    let uri: Uri = target
        .parse()
        .map_err(|e| format!("{target:?} is not a request target: {e}"))?;
    let mut map = HeaderMap::new();
    for h in headers {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| format!("header {h:?} is not 'Name: value'"))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("{name:?} is not a header name"))?;
        let value = HeaderValue::from_str(value.trim())
            .map_err(|_| format!("{value:?} is not a header value"))?;
        map.append(name, value);
    }
    Ok((method, uri, map))
}

/// Runs the proxy's own decision (target check, `decide`, `inspect`) and prints each step.
fn print_explanation(
    config: &Config,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Option<&[u8]>,
) -> ExitCode {
    let policy = &config.policy;
    let path = match target::check(method, uri, Version::HTTP_11) {
        Ok(t) => t.path,
        Err(e) => {
            println!("decision: refused ({})\nreason:   {e}", e.code());
            return ExitCode::from(1);
        }
    };
    let d = policy.decide(method, path, headers);
    println!("request:  {method} {path}");
    match d.route {
        Some(i) => println!("route:    routes[{i}]"),
        None => println!("route:    none matches"),
    }
    if let Some(g) = d.group {
        let mode = if g.mode == Mode::Audit {
            ", audit mode"
        } else {
            ""
        };
        println!(
            "group:    {} ({} access, project {}{mode})",
            g.name,
            g.access.as_str(),
            g.project
        );
    }
    if let Some(e) = d.endpoint {
        println!("endpoint: {e}");
        println!("requires: {}", policy::describe(e.need));
    }
    let result = match d.outcome {
        Outcome::Refuse(e) => Err(e),
        Outcome::Permit(p) => Ok(p),
        Outcome::Inspect(pending) => {
            let endpoint = d.endpoint.expect("an inspected request has an endpoint");
            if body.is_none() {
                println!(
                    "body:     none given (--body FILE): judged as the empty body the proxy would see"
                );
            }
            let bytes = body.unwrap_or_default();
            let limit = config.limits.inspect_body;
            let readable = if bytes.len() as u64 > limit {
                Err(Unreadable::TooLarge(limit))
            } else {
                Ok(bytes)
            };
            let inspected = policy.inspect(pending, endpoint, readable);
            for v in &inspected.verdicts {
                match &v.result {
                    Ok(allowed) => println!("body:     {}: allowed by {allowed}", v.item),
                    Err(need) => println!("body:     {}: REFUSED, needs {need}", v.item),
                }
            }
            inspected.result
        }
    };
    match result {
        Ok(permit) => {
            let group = d.group.map_or("?", |g| g.name.as_str());
            match permit.would_deny() {
                None => println!("decision: allowed (credentials of group {group} are injected)"),
                Some(e) => println!(
                    "decision: forwarded in audit mode, logged as would_deny ({})\nreason:   {e}",
                    e.code()
                ),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("decision: refused ({})\nreason:   {e}", e.code());
            ExitCode::from(1)
        }
    }
}
