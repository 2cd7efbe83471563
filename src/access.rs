//! The access log: one line per request, written when its response body has been sent (or
//! abandoned), so it carries the whole duration and the bytes both ways. Field names are
//! fixed; values never include a path (project tokens) or a header value.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use crate::error::ProxyBody;

/// Everything the line reports, gathered along the request path.
pub struct Line {
    pub request_id: String,
    pub method: http::Method,
    pub endpoint: Option<String>,
    pub group: Option<String>,
    pub route: Option<usize>,
    pub decision: &'static str,
    pub code: &'static str,
    pub upstream_status: Option<u16>,
    pub reason: Option<String>,
    pub started: Instant,
    /// Request body bytes forwarded upstream (0 when refused before reading).
    pub bytes_in: Arc<AtomicU64>,
}

impl Line {
    fn emit(&self, bytes_out: u64, completed: bool) {
        tracing::info!(
            target: "credgate::access",
            request_id = %self.request_id,
            method = %self.method,
            endpoint = self.endpoint.as_deref(),
            group = self.group.as_deref(),
            route = self.route,
            decision = self.decision,
            code = self.code,
            upstream_status = self.upstream_status,
            duration_ms = self.started.elapsed().as_secs_f64() * 1000.0,
            bytes_in = self.bytes_in.load(Ordering::Relaxed),
            bytes_out,
            completed,
            reason = self.reason.as_deref(),
            "request"
        );
    }
}

/// A request body that counts the bytes it yields.
pub struct Counted {
    pub inner: ProxyBody,
    pub count: Arc<AtomicU64>,
}

impl Body for Counted {
    type Data = Bytes;
    type Error = hyper::Error;

    /// Trailers are dropped: a caller must not smuggle headers (a credential) in them.
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        loop {
            let polled = Pin::new(&mut self.inner).poll_frame(cx);
            match &polled {
                Poll::Ready(Some(Ok(frame))) if frame.is_trailers() => continue,
                Poll::Ready(Some(Ok(frame))) => {
                    let n = frame.data_ref().map_or(0, |d| d.len() as u64);
                    self.count.fetch_add(n, Ordering::Relaxed);
                }
                _ => {}
            }
            return polled;
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that counts what it sends and writes the access line when it ends; if
/// the client goes away first, the line says `completed: false`.
pub struct Logged {
    pub inner: ProxyBody,
    pub line: Option<Line>,
    pub bytes_out: u64,
}

impl Body for Logged {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                self.bytes_out += frame.data_ref().map_or(0, |d| d.len() as u64);
                if self.inner.is_end_stream() {
                    self.finish(true);
                }
            }
            Poll::Ready(None) => self.finish(true),
            Poll::Ready(Some(Err(_))) => self.finish(false),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Logged {
    fn finish(&mut self, completed: bool) {
        if let Some(line) = self.line.take() {
            line.emit(self.bytes_out, completed);
        }
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        // An empty body may never be polled: it was still sent in full.
        let completed = self.inner.is_end_stream();
        self.finish(completed);
    }
}
