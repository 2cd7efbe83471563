//! The request path's one error type, and the responses credgate makes itself.
//!
//! Every refusal or failure on the request path is a [`ProxyError`]. Its status and its
//! `credgate-error` code come from one exhaustive `match` each, so a new variant cannot
//! compile until it has both. Messages are for people and never carry a secret, a project
//! token or an `Authorization` value.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};

/// The body type of every response credgate returns: streamed from upstream or made here.
pub type ProxyBody = UnsyncBoxBody<Bytes, hyper::Error>;

/// The name of the header that marks a response credgate made itself.
pub const ERROR_HEADER: &str = "credgate-error";

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("request target refused: {0}")]
    BadTarget(&'static str),
    #[error("no route matches this request")]
    NoRoute,
    #[error("the catalog has no {0} endpoint at this path")]
    UnknownEndpoint(http::Method),
    #[error("{0} is reserved: callers may never rotate or revoke credgate's keys")]
    Reserved(&'static str),
    #[error("the project token in the path is not the project of group \"{0}\"")]
    ProjectMismatch(String),
    #[error("group \"{group}\" may not call {endpoint}: {reason}")]
    PermissionDenied {
        group: String,
        endpoint: String,
        reason: String,
    },
    #[error("the request body exceeds the inspection limit of {0} bytes")]
    BodyTooLarge(u64),
    #[error("group \"{0}\" has no valid credentials loaded")]
    CredentialsUnavailable(String),
    #[error("the upstream could not be reached: {0}")]
    UpstreamUnreachable(String),
    #[error("the upstream sent no response headers within {0:?}")]
    UpstreamTimeout(Duration),
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::BadTarget(_) => StatusCode::BAD_REQUEST,
            ProxyError::NoRoute
            | ProxyError::UnknownEndpoint(_)
            | ProxyError::Reserved(_)
            | ProxyError::ProjectMismatch(_)
            | ProxyError::PermissionDenied { .. } => StatusCode::FORBIDDEN,
            ProxyError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::CredentialsUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::UpstreamUnreachable(_) => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The stable code of the contract (`interface.md`), used in the header, body, logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            ProxyError::BadTarget(_) => "bad_request_target",
            ProxyError::NoRoute => "no_route",
            ProxyError::UnknownEndpoint(_) => "unknown_endpoint",
            ProxyError::Reserved(_) => "reserved_endpoint",
            ProxyError::ProjectMismatch(_) => "project_mismatch",
            ProxyError::PermissionDenied { .. } => "permission_denied",
            ProxyError::BodyTooLarge(_) => "body_too_large",
            ProxyError::CredentialsUnavailable(_) => "credentials_unavailable",
            ProxyError::UpstreamUnreachable(_) => "upstream_unreachable",
            ProxyError::UpstreamTimeout(_) => "upstream_timeout",
        }
    }

    /// Whether credgate refused the request by policy (as opposed to failing to serve it).
    pub fn is_denial(&self) -> bool {
        self.status().is_client_error()
    }

    /// The response the app receives: status, `credgate-error` header and a JSON body.
    pub fn to_response(&self, group: Option<&str>, route: Option<usize>) -> Response<ProxyBody> {
        let mut error = serde_json::json!({ "code": self.code(), "message": self.to_string() });
        if let Some(group) = group {
            error["group"] = group.into();
        }
        if let Some(route) = route {
            error["route"] = format!("routes[{route}]").into();
        }
        let body = serde_json::json!({ "error": error }).to_string();
        let mut response = Response::new(full(body));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(ERROR_HEADER, HeaderValue::from_static(self.code()));
        response
    }
}

/// A complete in-memory body, boxed like a streamed one.
pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// The `(decision, code)` of a finished request, as logs and metrics report it:
/// `allow`, `deny` (credgate refused: 4xx), `would_deny` (audit mode), `error` (5xx).
pub fn outcome(
    error: Option<&ProxyError>,
    would_deny: Option<&'static str>,
) -> (&'static str, &'static str) {
    match (error, would_deny) {
        (Some(e), _) if e.is_denial() => ("deny", e.code()),
        (Some(e), _) => ("error", e.code()),
        (None, Some(code)) => ("would_deny", code),
        (None, None) => ("allow", ""),
    }
}
