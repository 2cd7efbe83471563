//! `credgate run`: load everything, bind, serve the proxy and the admin listener; on
//! SIGTERM/SIGINT turn not-ready, keep serving for `shutdown.delay`, stop accepting, drain
//! in-flight requests for up to `shutdown.drain_timeout`, exit 0. A second signal exits at once.

use std::future::Future;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::{admin, proxy, secrets, server};

pub fn run(path: &Path) -> ExitCode {
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
    let app = match proxy::App::new(&config, config.policy.clone(), store.clone()) {
        Ok(a) => Arc::new(a),
        Err(e) => return fatal(2, "invalid upstream TLS settings", &e),
    };
    let current = store.load();
    app.metrics.credentials(
        current.generation,
        current.groups.iter().map(Option::is_some),
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fatal(1, "cannot start the runtime", &e),
    };
    runtime.block_on(serve(config, app))
}

async fn serve(config: Config, app: Arc<proxy::App>) -> ExitCode {
    let listener = match TcpListener::bind(config.listen).await {
        Ok(l) => l,
        Err(e) => return fatal(1, &format!("cannot listen on {}", config.listen), &e),
    };
    let admin_listener = match TcpListener::bind(config.admin_listen).await {
        Ok(l) => l,
        Err(e) => {
            return fatal(
                1,
                &format!("cannot listen on {} (admin_listen)", config.admin_listen),
                &e,
            );
        }
    };
    secrets::watch::spawn(
        app.clone(),
        config.secrets_file.clone(),
        config.secrets_poll_interval,
    );
    let addr = |l: &TcpListener| l.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let groups: Vec<String> = config
        .policy
        .groups
        .iter()
        .map(|g| format!("{}={}", g.name, g.access.as_str()))
        .collect();
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        listen = addr(&listener),
        admin_listen = addr(&admin_listener),
        upstream = %config.upstream.base_url,
        groups = %groups.join(","),
        secrets_generation = app.secrets.load().generation,
        "listening"
    );

    let (draining_tx, draining) = watch::channel(false);
    let admin_app = app.clone();
    let admin_handler = move |request| admin::handle(admin_app.clone(), draining.clone(), request);
    let limits = config.limits.clone();
    tokio::spawn(async move {
        server::run(
            admin_listener,
            admin_handler,
            &limits,
            std::time::Duration::ZERO,
            std::future::pending(),
        )
        .await;
    });

    let delay = config.shutdown.delay;
    let shutdown = async move {
        signal().await;
        let _ = draining_tx.send(true);
        tracing::info!(
            ?delay,
            "shutdown signal: not ready; stopping after the delay"
        );
        tokio::spawn(async {
            signal().await;
            tracing::warn!("second shutdown signal: exiting now");
            std::process::exit(1);
        });
        tokio::time::sleep(delay).await;
        tracing::info!("no longer accepting connections; draining");
    };
    let handler = move |request| app.clone().handle(request);
    server::run(
        listener,
        handler,
        &config.limits,
        config.shutdown.drain_timeout,
        shutdown,
    )
    .await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// Completes on SIGTERM or SIGINT.
fn signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = int.recv() => {},
                }
            }
            _ => std::future::pending().await,
        }
    }
}

fn fatal(code: u8, what: &str, error: &dyn std::fmt::Display) -> ExitCode {
    for line in error.to_string().lines() {
        tracing::error!(error = %line, "{what}");
    }
    ExitCode::from(code)
}
