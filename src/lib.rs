//! credgate: a credential-injecting sidecar for the Bloomreach Engagement API.
//!
//! # Layout
//! In the order a request flows through them:
//! - [`config`]: the YAML file → raw structs → a validated [`config::Config`] (once, at start).
//! - [`policy`]: the canonical target check, route rules, the endpoint catalog, permissions,
//!   and `decide`, the only maker of a [`policy::Permit`].
//! - [`secrets`]: the `Secret` type, credential sets, the `ArcSwap` store, and the watcher
//!   that swaps in new versions of the secrets file.
//! - [`proxy`]: the hyper service: check → decide (→ inspect the body) → inject → forward.
//! - [`upstream`]: the pooled rustls client to the Bloomreach instance.
//! - [`error`]: the request path's error enum and the responses credgate makes itself.
//! - [`access`]: the access-log line, written when the response body ends.
//! - [`server`]: accepting connections and draining them.
//! - [`admin`] and [`metrics`]: `/healthz`, `/readyz`, `/metrics`.
//! - [`cli`] and [`telemetry`]: the commands (run, check, explain, rotate, revoke) and logging.

pub mod access;
pub mod admin;
pub mod cli;
pub mod config;
pub mod error;
pub mod metrics;
pub mod policy;
pub mod proxy;
pub mod secrets;
pub mod server;
pub mod telemetry;
pub mod upstream;
