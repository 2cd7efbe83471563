//! The admin listener: `/healthz`, `/readyz` and `/metrics`, on its own address. It serves
//! no secret, so it may bind the pod IP for probes and Prometheus.

use std::convert::Infallible;
use std::sync::Arc;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use tokio::sync::watch;

use crate::error::{ProxyBody, full};
use crate::proxy::App;

/// Answers one admin request. `draining` turns true on the first shutdown signal.
pub async fn handle(
    app: Arc<App>,
    draining: watch::Receiver<bool>,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&Method::GET | &Method::HEAD, "/healthz") => (
            StatusCode::OK,
            "application/json",
            r#"{"status":"ok"}"#.to_owned(),
        ),
        (&Method::GET | &Method::HEAD, "/readyz") => readiness(&app, *draining.borrow()),
        (&Method::GET | &Method::HEAD, "/metrics") => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            app.metrics.render(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "application/json",
            r#"{"error":"not found: try /healthz, /readyz or /metrics"}"#.to_owned(),
        ),
    };
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(response)
}

/// Ready when not draining and every group a route reaches has credentials loaded.
fn readiness(app: &App, draining: bool) -> (StatusCode, &'static str, String) {
    let credentials = app.secrets.load();
    let mut groups = serde_json::Map::new();
    let mut missing = Vec::new();
    for (i, g) in app.policy.groups.iter().enumerate() {
        let routed = app.policy.routes.iter().any(|r| r.group == i);
        let loaded = credentials.get(i).is_some();
        if routed && !loaded {
            missing.push(g.name.clone());
        }
        groups.insert(
            g.name.clone(),
            serde_json::json!({ "access": g.access.as_str(), "routed": routed, "credentials": if loaded { "loaded" } else { "missing" } }),
        );
    }
    let ready = !draining && missing.is_empty();
    let body = serde_json::json!({
        "ready": ready,
        "draining": draining,
        "secrets_generation": credentials.generation,
        "missing_credentials": missing,
        "groups": groups,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, "application/json", body.to_string())
}
