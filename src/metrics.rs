//! Prometheus metrics, with the contract's names and bounded labels (group, decision, code,
//! status class: never a path or a token).
//!
//! Every series is created at start for every group, and the request path keeps clones of
//! the handles: incrementing is one atomic add, with no lookup and no lock. (The duration
//! histogram takes prometheus-client's short per-series mutex.)

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::error::{ProxyError, outcome};
use crate::policy::Policy;

type Labels = Vec<(&'static str, String)>;

/// Every `(decision, code)` a request can end with. Codes come from [`ProxyError::code`].
const OUTCOMES: &[(&str, &str)] = &[
    ("allow", ""),
    ("deny", "no_route"),
    ("deny", "bad_request_target"),
    ("deny", "permission_denied"),
    ("deny", "project_mismatch"),
    ("deny", "reserved_endpoint"),
    ("deny", "unknown_endpoint"),
    ("deny", "body_too_large"),
    ("would_deny", "permission_denied"),
    ("would_deny", "project_mismatch"),
    ("would_deny", "unknown_endpoint"),
    ("would_deny", "body_too_large"),
    ("error", "credentials_unavailable"),
    ("error", "upstream_unreachable"),
    ("error", "upstream_timeout"),
];

const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The label for requests no group took (no route, refused target).
pub const NO_GROUP: &str = "none";

pub struct Metrics {
    registry: Registry,
    /// Per group (the last entry is [`NO_GROUP`]): one counter per [`OUTCOMES`] entry.
    requests: Vec<Vec<Counter>>,
    durations: Vec<Histogram>,
    /// Per group: one counter per [`STATUS_CLASSES`] entry.
    upstream: Vec<Vec<Counter>>,
    /// Per group: upstream 401/403 answers (a rotated or revoked credential, or a missing
    /// Bloomreach permission).
    auth_failures: Vec<Counter>,
    reloads: [Counter; 3],
    generation: Gauge,
    loaded: Vec<Gauge>,
}

#[derive(Clone, Copy)]
pub enum Reload {
    Applied,
    Rejected,
    Unchanged,
}

impl Metrics {
    pub fn new(policy: &Policy) -> Metrics {
        let mut registry = Registry::default();
        let names: Vec<String> = policy
            .groups
            .iter()
            .map(|g| g.name.clone())
            .chain([NO_GROUP.to_owned()])
            .collect();

        let requests_family = Family::<Labels, Counter>::default();
        let requests = names
            .iter()
            .map(|g| {
                OUTCOMES
                    .iter()
                    .map(|(d, c)| {
                        requests_family
                            .get_or_create(&vec![
                                ("group", g.clone()),
                                ("decision", (*d).into()),
                                ("code", (*c).into()),
                            ])
                            .clone()
                    })
                    .collect()
            })
            .collect();
        registry.register(
            "credgate_requests",
            "Requests by group, decision and code",
            requests_family,
        );

        let duration_family =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 16))
            });
        let durations = names
            .iter()
            .map(|g| {
                duration_family
                    .get_or_create(&vec![("group", g.clone())])
                    .clone()
            })
            .collect();
        registry.register(
            "credgate_request_duration_seconds",
            "Upstream round trip, until the response headers, by group",
            duration_family,
        );

        let upstream_family = Family::<Labels, Counter>::default();
        let upstream = names
            .iter()
            .map(|g| {
                STATUS_CLASSES
                    .iter()
                    .map(|c| {
                        upstream_family
                            .get_or_create(&vec![
                                ("group", g.clone()),
                                ("status_class", (*c).into()),
                            ])
                            .clone()
                    })
                    .collect()
            })
            .collect();
        registry.register(
            "credgate_upstream_responses",
            "Upstream responses by group and status class",
            upstream_family,
        );

        let auth_family = Family::<Labels, Counter>::default();
        let auth_failures = policy
            .groups
            .iter()
            .map(|g| {
                auth_family
                    .get_or_create(&vec![("group", g.name.clone())])
                    .clone()
            })
            .collect();
        registry.register(
            "credgate_upstream_auth_failures",
            "Upstream 401/403 answers by group (each triggers a re-read of the secrets file)",
            auth_family,
        );

        let reload_family = Family::<Labels, Counter>::default();
        let reloads = ["applied", "rejected", "unchanged"].map(|r| {
            reload_family
                .get_or_create(&vec![("result", r.into())])
                .clone()
        });
        registry.register(
            "credgate_secret_reloads",
            "Reads of the secrets file by result",
            reload_family,
        );

        let generation = Gauge::default();
        registry.register(
            "credgate_secret_generation",
            "Generation of the credential set in use",
            generation.clone(),
        );

        let loaded_family = Family::<Labels, Gauge>::default();
        let loaded = policy
            .groups
            .iter()
            .map(|g| {
                loaded_family
                    .get_or_create(&vec![("group", g.name.clone())])
                    .clone()
            })
            .collect();
        registry.register(
            "credgate_group_credentials_loaded",
            "1 when the group has credentials loaded",
            loaded_family,
        );

        Metrics {
            registry,
            requests,
            durations,
            upstream,
            auth_failures,
            reloads,
            generation,
            loaded,
        }
    }

    /// Counts a finished decision. `group` is the policy's group index, if any group took it.
    pub fn request(
        &self,
        group: Option<usize>,
        would_deny: Option<&'static str>,
        error: Option<&ProxyError>,
    ) {
        let (decision, code) = outcome(error, would_deny);
        let row = &self.requests[group.unwrap_or(self.requests.len() - 1)];
        if let Some(i) = OUTCOMES.iter().position(|o| *o == (decision, code)) {
            row[i].inc();
        }
    }

    pub fn upstream(
        &self,
        group: usize,
        status: http::StatusCode,
        round_trip: std::time::Duration,
    ) {
        self.durations[group].observe(round_trip.as_secs_f64());
        if let Some(c) =
            self.upstream[group].get(usize::from(status.as_u16() / 100).wrapping_sub(1))
        {
            c.inc();
        }
    }

    pub fn auth_failure(&self, group: usize) {
        self.auth_failures[group].inc();
    }

    pub fn reload(&self, result: Reload) {
        self.reloads[result as usize].inc();
    }

    /// Publishes the state of a newly applied credential set.
    pub fn credentials(&self, generation: u64, loaded: impl Iterator<Item = bool>) {
        self.generation
            .set(i64::try_from(generation).unwrap_or(i64::MAX));
        for (gauge, on) in self.loaded.iter().zip(loaded) {
            gauge.set(i64::from(on));
        }
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
