//! A real upstream on loopback that records every request it received. Its behaviour is
//! steered by request headers: `x-test-status`, `x-test-delay-ms`, `x-test-download` (bytes
//! to stream back), `x-test-body` (the response body).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http::{HeaderMap, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    /// Path and query, exactly as received.
    pub target: String,
    pub version: Version,
    pub headers: HeaderMap,
    pub body_len: u64,
    pub body: Vec<u8>,
    pub at: std::time::Instant,
}

/// What a fake Bloomreach accepts: one private key with its (at most two) secrets, and
/// public tokens. Rotate and revoke behave as the docs say (`bloomreach-api.md` section 5).
#[derive(Debug, Default)]
pub struct Accounts {
    pub key_id: String,
    /// Oldest first; during a rotation's grace period both are valid.
    pub secrets: Vec<String>,
    pub tokens: Vec<String>,
    pub rotations: u32,
    /// The JSON field of the rotate response that carries the new secret.
    pub secret_field: String,
}

impl Accounts {
    pub fn new(key_id: &str, secret: &str, token: &str) -> Accounts {
        Accounts {
            key_id: key_id.into(),
            secrets: vec![secret.into()],
            tokens: vec![token.into()],
            rotations: 0,
            secret_field: "secret".into(),
        }
    }

    pub fn basic(&self, secret: &str) -> String {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{secret}", self.key_id))
        )
    }

    /// The secret a Basic value carries, if it is one of ours.
    fn secret_of(&self, auth: &str) -> Option<String> {
        self.secrets.iter().find(|s| self.basic(s) == auth).cloned()
    }

    fn accepts(&self, auth: &str) -> bool {
        self.secret_of(auth).is_some() || self.tokens.iter().any(|t| format!("Token {t}") == auth)
    }

    /// Answers rotate, revoke, or checks the credential of any other request.
    fn answer(&mut self, path: &str, auth: &[String]) -> Option<(u16, String)> {
        let [auth] = auth else {
            return Some((
                400,
                format!(
                    r#"{{"success":false,"error":"{} credentials"}}"#,
                    auth.len()
                ),
            ));
        };
        if !self.accepts(auth) {
            return Some((
                401,
                r#"{"success":false,"error":"Access key not found"}"#.into(),
            ));
        }
        if path.ends_with("/access-keys/rotate") {
            let Some(used) = self.secret_of(auth) else {
                return Some((
                    400,
                    r#"{"success":false,"error":"public access cannot be used"}"#.into(),
                ));
            };
            if self.secrets.last() != Some(&used) {
                return Some((
                    400,
                    r#"{"success":false,"error":"Rotating the old key twice is not allowed"}"#
                        .into(),
                ));
            }
            self.rotations += 1;
            let new = format!(
                "rotatedsecret{:04}abcdefghijklmnopqrstuvwxyz0123456789abcdefghijk",
                self.rotations
            );
            self.secrets = vec![used, new.clone()];
            return Some((
                200,
                format!(r#"{{"success":true,"{}":"{new}"}}"#, self.secret_field),
            ));
        }
        if path.ends_with("/access-keys/revoke") {
            let revoked = self.secret_of(auth);
            self.secrets.retain(|s| Some(s) != revoked.as_ref());
            self.tokens.retain(|t| format!("Token {t}") != *auth);
            return Some((200, r#"{"success":true}"#.into()));
        }
        None
    }
}

pub struct Upstream {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    /// Set for a fake Bloomreach that checks credentials.
    pub accounts: Option<Arc<Mutex<Accounts>>>,
    /// PEM of the CA that signed the TLS upstream's certificate.
    pub ca_pem: Option<String>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    pub async fn http() -> Upstream {
        Upstream::start(None, None).await
    }

    /// A plain-HTTP fake Bloomreach that accepts only `accounts`' credentials.
    pub async fn bloomreach(accounts: Accounts) -> Upstream {
        Upstream::start(None, Some(Arc::new(Mutex::new(accounts)))).await
    }

    pub fn accounts(&self) -> std::sync::MutexGuard<'_, Accounts> {
        self.accounts
            .as_ref()
            .expect("not a bloomreach upstream")
            .lock()
            .unwrap()
    }

    /// TLS with a fresh CA; offers h2 and http/1.1 by ALPN.
    pub async fn tls() -> Upstream {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .unwrap()
                .signed_by(&leaf_key, &ca)
                .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let mut up = Upstream::start(
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
            None,
        )
        .await;
        up.ca_pem = Some(ca.pem());
        up
    }

    async fn start(
        tls: Option<tokio_rustls::TlsAcceptor>,
        accounts: Option<Arc<Mutex<Accounts>>>,
    ) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        let auth = accounts.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let log = log.clone();
                let tls = tls.clone();
                let auth = auth.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| respond(req, log.clone(), auth.clone()));
                    let builder = auto::Builder::new(TokioExecutor::new());
                    match tls {
                        None => {
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                        Some(tls) => {
                            let Ok(stream) = tls.accept(stream).await else {
                                return;
                            };
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                    }
                });
            }
        });
        Upstream {
            addr,
            received,
            accounts,
            ca_pem: None,
            task,
        }
    }

    pub fn base_url(&self) -> String {
        let scheme = if self.ca_pem.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub fn last(&self) -> Received {
        self.requests()
            .pop()
            .expect("the upstream received no request")
    }
}

type Body = BoxBody<Bytes, Infallible>;

async fn respond(
    req: Request<Incoming>,
    log: Arc<Mutex<Vec<Received>>>,
    accounts: Option<Arc<Mutex<Accounts>>>,
) -> Result<Response<Body>, Infallible> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
    };
    let status = header("x-test-status").unwrap_or(200);
    let delay = header("x-test-delay-ms");
    let download = header("x-test-download");
    let text = req
        .headers()
        .get("x-test-body")
        .map(|v| Bytes::copy_from_slice(v.as_bytes()));
    let (parts, mut body) = req.into_parts();
    // Count the body frame by frame (keeping only a small prefix) so a big upload stays small here too.
    let mut body_len = 0;
    let mut kept = Vec::new();
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(data) = frame.into_data() {
            body_len += data.len() as u64;
            if kept.len() < 1 << 20 {
                kept.extend_from_slice(&data);
            }
        }
    }
    let auth: Vec<String> = parts
        .headers
        .get_all("authorization")
        .iter()
        .map(|v| v.to_str().unwrap_or("").to_owned())
        .collect();
    let verdict = accounts.and_then(|a| a.lock().unwrap().answer(parts.uri.path(), &auth));
    log.lock().unwrap().push(Received {
        at: std::time::Instant::now(),
        method: parts.method.to_string(),
        target: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default(),
        version: parts.version,
        headers: parts.headers,
        body_len,
        body: kept,
    });
    if let Some((status, body)) = verdict {
        let mut response = Response::new(http_body_util::Full::new(Bytes::from(body)).boxed());
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        return Ok(response);
    }
    if let Some(ms) = delay {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let body: Body = match download {
        Some(total) => {
            let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
            let frames = (0..total.div_ceil(chunk.len() as u64)).map(move |i| {
                let n = (total - i * chunk.len() as u64).min(chunk.len() as u64) as usize;
                Ok::<_, Infallible>(Frame::data(chunk.slice(..n)))
            });
            StreamBody::new(stream::iter(frames)).boxed()
        }
        None => {
            http_body_util::Full::new(text.unwrap_or(Bytes::from_static(br#"{"success":true}"#)))
                .boxed()
        }
    };
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(status as u16).unwrap();
    response
        .headers_mut()
        .insert("x-request-id", "upstream-id".parse().unwrap());
    response
        .headers_mut()
        .insert("credgate-error", "forged".parse().unwrap());
    Ok(response)
}
