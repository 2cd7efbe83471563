//! The pooled client to the Bloomreach instance: rustls with the ring provider, web PKI roots
//! plus the config's `ca_file`, HTTP/2 when the upstream offers it by ALPN, keep-alive pooling.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::config;
use crate::error::{ProxyBody, ProxyError};

pub struct Upstream {
    client: Client<HttpsConnector<HttpConnector>, ProxyBody>,
    response_timeout: Duration,
}

impl Upstream {
    pub fn new(cfg: &config::Upstream) -> Result<Upstream, rustls::Error> {
        let tls = tls_config(&cfg.extra_roots)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(cfg.connect_timeout));
        let https = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(50))
            .build(https);
        Ok(Upstream {
            client,
            response_timeout: cfg.response_timeout,
        })
    }

    /// Sends the request; fails with `upstream_timeout` when no response headers arrive in
    /// time, and `upstream_unreachable` on connect, TLS or protocol errors.
    pub async fn send(
        &self,
        request: Request<ProxyBody>,
    ) -> Result<Response<Incoming>, ProxyError> {
        match tokio::time::timeout(self.response_timeout, self.client.request(request)).await {
            Err(_) => Err(ProxyError::UpstreamTimeout(self.response_timeout)),
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(ProxyError::UpstreamUnreachable(describe(&e))),
        }
    }
}

/// The error and its causes in one line (hyper's own `Display` is only the outermost).
fn describe(e: &hyper_util::client::legacy::Error) -> String {
    let mut text = if e.is_connect() {
        "connect error".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A client config with an explicit ring provider (never the process default, so a second
/// provider in the dependency tree cannot make this panic).
pub fn tls_config(
    extra_roots: &[rustls::pki_types::CertificateDer<'static>],
) -> Result<rustls::ClientConfig, rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in extra_roots {
        roots.add(cert.clone())?;
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth())
}
