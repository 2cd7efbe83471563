//! The hyper service: one request, a straight line of steps, each one `?` away from a
//! refusal. target check → route and authorize (→ `Permit`) → credentials → inject → forward.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::access;
use crate::config::{self, LogAllowed};
use crate::error::{ERROR_HEADER, ProxyBody, ProxyError, full, outcome};
use crate::metrics::Metrics;
use crate::policy::catalog::Endpoint;
use crate::policy::{Outcome, Pending, Permit, Policy, Unreadable, target};
use crate::secrets::{Credential, Store};
use crate::upstream::Upstream;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const UPSTREAM_REQUEST_ID: HeaderName = HeaderName::from_static("x-upstream-request-id");
const OVERRIDES: [&str; 5] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-original-url",
    "x-rewrite-url",
];

/// Everything a request needs, built once at start.
pub struct App {
    pub policy: Policy,
    pub secrets: Arc<Store>,
    pub metrics: Metrics,
    /// Signalled when the upstream answers 401/403: the secrets watcher re-reads the file
    /// (the kubelet may lag behind a rotation done in the Bloomreach UI).
    pub auth_failures: tokio::sync::Notify,
    /// The group of the latest such answer, for the watcher's log line.
    pub auth_failed_group: AtomicUsize,
    upstream: Upstream,
    /// `scheme://authority` and the base path, joined with each request's path.
    base: String,
    log_allowed: LogAllowed,
    /// `limits.inspect_body`: the most credgate buffers of a body it must inspect.
    inspect_limit: u64,
    /// `limits.request_timeout`: bounds the wait for a body that must be inspected.
    request_timeout: std::time::Duration,
    ids: RequestIds,
}

/// What the access log line reports about one request.
#[derive(Default)]
struct Facts<'p> {
    group: Option<&'p str>,
    route: Option<usize>,
    endpoint: Option<&'p Endpoint>,
    status: Option<StatusCode>,
    /// Audit mode: the code the request would have been refused with, and why.
    would_deny: Option<&'static str>,
    would_deny_reason: Option<String>,
    /// The group's index, once a route picked one (for metrics).
    group_id: Option<usize>,
}

impl App {
    pub fn new(
        config: &config::Config,
        policy: Policy,
        secrets: Arc<Store>,
    ) -> Result<App, rustls::Error> {
        let u = &config.upstream;
        Ok(App {
            metrics: Metrics::new(&policy),
            auth_failures: tokio::sync::Notify::new(),
            auth_failed_group: AtomicUsize::new(0),
            policy,
            secrets,
            upstream: Upstream::new(u)?,
            base: format!("{}://{}{}", u.scheme, u.authority, u.prefix),
            log_allowed: config.log_allowed,
            inspect_limit: config.limits.inspect_body,
            request_timeout: config.limits.request_timeout,
            ids: RequestIds::new(),
        })
    }

    /// The service function: never fails; errors become credgate's own responses.
    pub async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
    ) -> Result<Response<ProxyBody>, Infallible> {
        let started = Instant::now();
        let id = self.ids.for_request(request.headers());
        let method = request.method().clone();
        let bytes_in = Arc::new(AtomicU64::new(0));
        let mut facts = Facts::default();
        let result = self.forward(request, &id, &bytes_in, &mut facts).await;
        self.metrics
            .request(facts.group_id, facts.would_deny, result.as_ref().err());
        let (decision, code) = outcome(result.as_ref().err(), facts.would_deny);
        let (mut response, error) = match result {
            Ok(response) => (response, None),
            Err(e) => (e.to_response(facts.group, facts.route), Some(e)),
        };
        let headers = response.headers_mut();
        if let Some(theirs) = headers.insert(REQUEST_ID, id.clone())
            && theirs != id
        {
            headers.insert(UPSTREAM_REQUEST_ID, theirs);
        }
        let log = match self.log_allowed {
            // Sampling is for allowed requests: refusals and credgate's own errors are always logged.
            _ if decision != "allow" => true,
            LogAllowed::All => true,
            LogAllowed::Errors => {
                response.status().is_client_error() || response.status().is_server_error()
            }
            LogAllowed::None => false,
        };
        if !log {
            return Ok(response);
        }
        let line = access::Line {
            request_id: id.to_str().unwrap_or("-").to_owned(),
            method,
            endpoint: facts.endpoint.map(Endpoint::name),
            group: facts.group.map(str::to_owned),
            route: facts.route,
            decision,
            code,
            upstream_status: facts.status.map(|s| s.as_u16()),
            reason: error
                .as_ref()
                .map(ToString::to_string)
                .or(facts.would_deny_reason),
            started,
            bytes_in,
        };
        Ok(response.map(|inner| {
            access::Logged {
                inner,
                line: Some(line),
                bytes_out: 0,
            }
            .boxed_unsync()
        }))
    }

    async fn forward<'p>(
        &'p self,
        request: Request<Incoming>,
        id: &HeaderValue,
        bytes_in: &Arc<AtomicU64>,
        facts: &mut Facts<'p>,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let (mut parts, body) = request.into_parts();
        // Until it is handed on, a refusal drains it in the background (see `Unread`).
        let mut body = Unread(Some(body));
        let target = target::check(&parts.method, &parts.uri, parts.version)?;
        let decision = self
            .policy
            .decide(&parts.method, target.path, &parts.headers);
        facts.group = decision.group.map(|g| g.name.as_str());
        facts.group_id = decision.route.map(|r| self.policy.routes[r].group);
        facts.route = decision.route;
        facts.endpoint = decision.endpoint;
        let uri = self.upstream_uri(target)?;
        let credentials = self.secrets.load();
        let unavailable =
            || ProxyError::CredentialsUnavailable(facts.group.unwrap_or_default().to_owned());
        let (permit, body) = match decision.outcome {
            Outcome::Refuse(e) => return Err(e),
            // Checked before any body is read: without credentials nothing will be sent.
            Outcome::Permit(p) if credentials.get(p.group()).is_none() => return Err(unavailable()),
            Outcome::Inspect(p) if credentials.get(p.group()).is_none() => {
                return Err(unavailable());
            }
            Outcome::Permit(permit) => (permit, body.take().boxed_unsync()),
            Outcome::Inspect(pending) => {
                let endpoint = decision
                    .endpoint
                    .expect("an inspected request has an endpoint");
                self.inspect(pending, endpoint, &parts.headers, body)
                    .await?
            }
        };
        facts.would_deny = permit.would_deny().map(ProxyError::code);
        facts.would_deny_reason = permit.would_deny().map(ToString::to_string);
        let body = access::Counted {
            inner: body,
            count: bytes_in.clone(),
        }
        .boxed_unsync();
        let credential = credentials.get(permit.group()).ok_or_else(unavailable)?;
        inject(&mut parts.headers, &permit, credential, id);
        parts.uri = uri;
        parts.version = Version::HTTP_11; // the client picks HTTP/2 itself when ALPN says so
        let sent = Instant::now();
        let response = self.upstream.send(Request::from_parts(parts, body)).await?;
        facts.status = Some(response.status());
        self.metrics
            .upstream(permit.group(), response.status(), sent.elapsed());
        let (mut parts, body) = response.into_parts();
        let body = match parts.status {
            StatusCode::UNAUTHORIZED => {
                self.credential_refused(permit.group());
                body.boxed_unsync()
            }
            // A 403 is a credential problem only when it says `invalid secret` (a rotated
            // secret); the others are Bloomreach permission refusals. Peek at its start.
            StatusCode::FORBIDDEN => {
                let (start, body) = peek(body, 4096).await;
                if start
                    .windows(14)
                    .any(|w| w.eq_ignore_ascii_case(b"invalid secret"))
                {
                    self.credential_refused(permit.group());
                }
                body
            }
            _ => body.boxed_unsync(),
        };
        strip_hop_by_hop(&mut parts.headers);
        parts.headers.remove(ERROR_HEADER); // only credgate's own refusals carry it
        Ok(Response::from_parts(parts, body))
    }

    /// The upstream refused a group's credential: count it and have the watcher re-read the
    /// secrets file (the kubelet may lag behind a rotation done in the Bloomreach UI).
    fn credential_refused(&self, group: usize) {
        self.metrics.auth_failure(group);
        self.auth_failed_group.store(group, Ordering::Relaxed);
        self.auth_failures.notify_one();
    }

    /// Reads a body that decides the permission (at most `inspect_limit` bytes), lets the
    /// policy judge it, and returns the same bytes to forward. Nothing else is buffered. A
    /// refused body is left in an [`Unread`], which drains it.
    async fn inspect(
        &self,
        pending: Pending,
        endpoint: &Endpoint,
        headers: &HeaderMap,
        mut body: Unread,
    ) -> Result<(Permit, ProxyBody), ProxyError> {
        let limit = self.inspect_limit;
        let encoded = headers
            .get_all(header::CONTENT_ENCODING)
            .iter()
            .any(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
        let declared = body.size_hint().exact().is_some_and(|n| n > limit);
        if encoded || declared {
            let why = if encoded {
                Unreadable::Encoded
            } else {
                Unreadable::TooLarge(limit)
            };
            let permit = self.policy.inspect(pending, endpoint, Err(why)).result?;
            return Ok((permit, body.take().boxed_unsync()));
        }
        let read = tokio::time::timeout(self.request_timeout, read_up_to(body.take(), limit))
            .await
            .map_err(|_| {
                ProxyError::BadTarget(
                    "the request body did not arrive within limits.request_timeout",
                )
            })?
            .map_err(|_| ProxyError::BadTarget("the request body could not be read"))?;
        match read {
            Read::Complete(chunks) => {
                let bytes = join(chunks);
                let permit = self.policy.inspect(pending, endpoint, Ok(&bytes)).result?;
                Ok((permit, full(bytes)))
            }
            // Audit mode forwards it anyway: what was read, then the rest as it comes.
            Read::Partial(read, rest) => {
                let mut rest = Unread(Some(rest));
                let permit = self
                    .policy
                    .inspect(pending, endpoint, Err(Unreadable::TooLarge(limit)))
                    .result?;
                Ok((
                    permit,
                    Replay {
                        read: read.into(),
                        rest: rest.take(),
                    }
                    .boxed_unsync(),
                ))
            }
        }
    }

    /// The upstream URI: base URL + the same path bytes + the query minus `access_token`.
    fn upstream_uri(&self, target: target::Target<'_>) -> Result<Uri, ProxyError> {
        let mut uri = String::with_capacity(self.base.len() + target.path.len() + 64);
        uri.push_str(&self.base);
        uri.push_str(target.path);
        if let Some(query) = target
            .query
            .map(target::strip_access_token)
            .transpose()?
            .flatten()
        {
            uri.push('?');
            uri.push_str(&query);
        }
        Uri::try_from(uri).map_err(|_| ProxyError::BadTarget("the target cannot be forwarded"))
    }
}

/// Removes whatever credential the app sent and sets the group's. Taking a [`Permit`] is
/// what makes an unchecked request impossible to inject.
fn inject(headers: &mut HeaderMap, _permit: &Permit, credential: &Credential, id: &HeaderValue) {
    strip_hop_by_hop(headers);
    headers.remove(header::AUTHORIZATION);
    headers.remove(header::HOST); // the client sets Host (or :authority) from the upstream URI
    // Headers some frameworks obey to change the method or path after authorization.
    for name in OVERRIDES {
        headers.remove(name);
    }
    let ours: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("x-credgate-"))
        .cloned()
        .collect();
    for name in ours {
        headers.remove(name);
    }
    headers.insert(header::AUTHORIZATION, credential.authorization.clone());
    headers.insert(REQUEST_ID, id.clone());
}

/// Connection-scoped headers (RFC 9110 section 7.6.1), including those `Connection` names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
}

/// Reads and drops the rest of a refused body in the background (bounded), so a client
/// still sending it sees the refusal instead of a broken pipe when the connection closes.
fn discard(mut body: Incoming) {
    const MAX: u64 = 64 << 20;
    tokio::spawn(async move {
        let drain = async {
            let mut seen = 0u64;
            while let Some(Ok(frame)) = body.frame().await {
                seen += frame.data_ref().map_or(0, |d| d.len() as u64);
                if seen > MAX {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(30), drain).await;
    });
}

/// A request body not yet handed on. Dropped with the body still unread (the request was
/// refused), it drains it in the background, so a client still uploading reads the refusal
/// instead of a reset.
struct Unread(Option<Incoming>);

impl Unread {
    fn take(&mut self) -> Incoming {
        self.0.take().expect("a request body is handed on once")
    }

    fn size_hint(&self) -> SizeHint {
        self.0
            .as_ref()
            .map_or_else(SizeHint::default, Body::size_hint)
    }
}

impl Drop for Unread {
    fn drop(&mut self) {
        if let Some(body) = self.0.take()
            && !body.is_end_stream()
        {
            discard(body);
        }
    }
}

enum Read {
    /// The whole body.
    Complete(Vec<Bytes>),
    /// Past the limit: the chunks read so far, and the rest of the body.
    Partial(Vec<Bytes>, Incoming),
}

/// Reads data frames until the body ends or exceeds `limit` bytes. Trailers are dropped.
async fn read_up_to(mut body: Incoming, limit: u64) -> Result<Read, hyper::Error> {
    let mut chunks = Vec::new();
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        total += data.len() as u64;
        chunks.push(data);
        if total > limit {
            return Ok(Read::Partial(chunks, body));
        }
    }
    Ok(Read::Complete(chunks))
}

/// The chunks as one buffer (no copy for a single chunk).
fn join(mut chunks: Vec<Bytes>) -> Bytes {
    if chunks.len() == 1 {
        chunks.swap_remove(0)
    } else {
        chunks.concat().into()
    }
}

/// Reads about `limit` bytes of a body (for a look at an error message), and returns them
/// with a body that still yields everything.
async fn peek(body: Incoming, limit: u64) -> (Bytes, ProxyBody) {
    match read_up_to(body, limit).await {
        Ok(Read::Complete(chunks)) => {
            let all = join(chunks);
            (all.clone(), full(all))
        }
        Ok(Read::Partial(read, rest)) => (
            join(read.clone()),
            Replay {
                read: read.into(),
                rest,
            }
            .boxed_unsync(),
        ),
        // The upstream broke off inside its error body: nothing usable to look at or pass on.
        Err(_) => (Bytes::new(), full(Bytes::new())),
    }
}

/// A body whose start was already read: replays those chunks, then streams the rest.
struct Replay {
    read: std::collections::VecDeque<Bytes>,
    rest: Incoming,
}

impl Body for Replay {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.read.pop_front() {
            Some(chunk) => std::task::Poll::Ready(Some(Ok(Frame::data(chunk)))),
            None => std::pin::Pin::new(&mut self.rest).poll_frame(cx),
        }
    }

    fn size_hint(&self) -> SizeHint {
        let read: u64 = self.read.iter().map(|c| c.len() as u64).sum();
        let rest = self.rest.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(read + rest.lower());
        if let Some(upper) = rest.upper() {
            hint.set_upper(read + upper);
        }
        hint
    }
}

/// Request ids: the app's own `x-request-id` when it is sane, else a fresh one.
struct RequestIds {
    prefix: u64,
    next: AtomicU64,
}

impl RequestIds {
    fn new() -> RequestIds {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        );
        RequestIds {
            prefix: h.finish(),
            next: AtomicU64::new(1),
        }
    }

    fn for_request(&self, headers: &HeaderMap) -> HeaderValue {
        if let Some(theirs) = headers.get(REQUEST_ID) {
            let ok = (1..=200).contains(&theirs.len())
                && theirs.as_bytes().iter().all(|b| b.is_ascii_graphic());
            if ok {
                return theirs.clone();
            }
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        HeaderValue::try_from(format!("{:016x}{n:016x}", self.prefix))
            .expect("hex is a valid header value")
    }
}
