//! The compiled policy: groups, routes, the endpoint catalog, and the decision on a request.
//!
//! Only this module makes a [`Permit`], and only a `Permit` gets credentials injected
//! (`proxy` needs one to inject), so "forwarded without a permission check" cannot be
//! written. A group in audit mode gets a `Permit` that carries the refusal it would have had.

pub mod authorize;
pub mod body;
pub mod catalog;
pub mod permission;
pub mod route;
pub mod target;

use http::{HeaderMap, Method};

use crate::error::ProxyError;
use authorize::Verdict;
use catalog::{Body, Catalog, Endpoint, Need};
use permission::Grants;
pub use route::Route;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `key_id` + `secret`, sent as HTTP Basic.
    Private,
    /// An API token, sent as `Authorization: Token <token>`.
    Public,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Private => "private",
            Access::Public => "public",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    /// Refused requests are forwarded anyway and logged as `would_deny`, to tighten safely.
    Audit,
}

/// An API group: one Bloomreach credential and what it may do.
#[derive(Clone, Debug)]
pub struct Group {
    pub name: String,
    pub access: Access,
    /// The project token every `{project}` path segment must equal.
    pub project: String,
    /// The permission strings as written, for `check` and `explain`.
    pub permissions: Vec<String>,
    pub grants: Grants,
    pub mode: Mode,
}

#[derive(Clone, Debug)]
pub struct Policy {
    pub groups: Vec<Group>,
    pub routes: Vec<Route>,
    pub catalog: Catalog,
}

/// Proof that a request passed the policy: which group's credential it may carry. Its
/// fields are private to this module, so nothing else can make one.
#[derive(Debug)]
pub struct Permit {
    group: usize,
    would_deny: Option<ProxyError>,
}

impl Permit {
    pub fn group(&self) -> usize {
        self.group
    }

    /// In audit mode: the refusal this request would have had.
    pub fn would_deny(&self) -> Option<&ProxyError> {
        self.would_deny.as_ref()
    }
}

/// A request whose permission depends on its body: hand the body to [`Policy::inspect`].
#[derive(Debug)]
pub struct Pending {
    group: usize,
    body: Body,
}

impl Pending {
    pub fn group(&self) -> usize {
        self.group
    }
}

#[derive(Debug)]
pub enum Outcome {
    Permit(Permit),
    Inspect(Pending),
    Refuse(ProxyError),
}

/// What the policy made of a request: everything it learnt on the way, and the outcome.
pub struct Decision<'p> {
    pub route: Option<usize>,
    pub group: Option<&'p Group>,
    pub endpoint: Option<&'p Endpoint>,
    pub outcome: Outcome,
}

/// Why a body could not be inspected.
#[derive(Debug, Clone, Copy)]
pub enum Unreadable {
    /// Larger than `limits.inspect_body` (the limit, in bytes).
    TooLarge(u64),
    /// `Content-Encoding` other than identity: credgate does not decompress.
    Encoded,
}

/// The result of a body inspection: every item's verdict, and the outcome.
pub struct Inspected {
    pub verdicts: Vec<Verdict>,
    pub result: Result<Permit, ProxyError>,
}

impl Policy {
    /// Route → endpoint → project token → permission (or "inspect the body").
    pub fn decide(&self, method: &Method, path: &str, headers: &HeaderMap) -> Decision<'_> {
        let mut d = Decision {
            route: None,
            group: None,
            endpoint: None,
            outcome: Outcome::Refuse(ProxyError::NoRoute),
        };
        let Some(index) = self
            .routes
            .iter()
            .position(|r| r.matches(method, path, headers))
        else {
            return d;
        };
        let id = self.routes[index].group;
        let group = &self.groups[id];
        d.route = Some(index);
        d.group = Some(group);
        // Defense in depth: whatever the spelling, a path that reads as rotate or revoke is refused.
        if let Some(reserved) = reserved_spelling(path) {
            d.outcome = Outcome::Refuse(ProxyError::Reserved(reserved));
            return d;
        }
        let Some(found) = self.catalog.find(method, path) else {
            // Never audited: with no catalog entry nothing says what the endpoint does.
            d.outcome = Outcome::Refuse(ProxyError::UnknownEndpoint(method.clone()));
            return d;
        };
        let endpoint = found.endpoint;
        d.endpoint = Some(endpoint);
        d.outcome = match endpoint.need {
            // Never forwarded for a caller (`reserved_spelling` above already caught the built-in ones).
            Need::Reserved => Outcome::Refuse(ProxyError::Reserved(
                reserved_spelling(&endpoint.template).unwrap_or("access-keys"),
            )),
            _ if found.project.is_some_and(|p| p != group.project) => {
                self.finish(id, Err(ProxyError::ProjectMismatch(group.name.clone())))
            }
            need if authorize::allows_without_body(&group.grants, need) => self.finish(id, Ok(())),
            // Inspect only when some body could pass: an empty one must not slip through.
            Need::Body(body) if authorize::could_allow(&group.grants, endpoint.need) => {
                Outcome::Inspect(Pending { group: id, body })
            }
            need => self.finish(
                id,
                Err(denied(
                    group,
                    endpoint,
                    format!("it needs {}", describe(need)),
                )),
            ),
        };
        d
    }

    /// Decides a pending request on its body: the same bytes that will be forwarded.
    pub fn inspect(
        &self,
        pending: Pending,
        endpoint: &Endpoint,
        body: Result<&[u8], Unreadable>,
    ) -> Inspected {
        let group = &self.groups[pending.group];
        let (verdicts, result) = match body {
            Err(Unreadable::TooLarge(limit)) => (Vec::new(), Err(ProxyError::BodyTooLarge(limit))),
            Err(Unreadable::Encoded) => (
                Vec::new(),
                Err(denied(
                    group,
                    endpoint,
                    "a compressed body cannot be inspected; send it uncompressed".into(),
                )),
            ),
            Ok(bytes) => match body::parse(pending.body, bytes) {
                Err(reason) => (Vec::new(), Err(denied(group, endpoint, reason))),
                Ok(facts) => {
                    let verdicts = authorize::judge(&group.grants, &facts);
                    let result = match authorize::first_refusal(&verdicts) {
                        Some(reason) => Err(denied(group, endpoint, reason)),
                        None => Ok(()),
                    };
                    (verdicts, result)
                }
            },
        };
        let result = match self.finish(pending.group, result) {
            Outcome::Permit(p) => Ok(p),
            Outcome::Refuse(e) => Err(e),
            Outcome::Inspect(_) => unreachable!("finish never asks for a body"),
        };
        Inspected { verdicts, result }
    }

    /// Applies the group's mode: audit turns a refusal into a permit that remembers it.
    fn finish(&self, group: usize, result: Result<(), ProxyError>) -> Outcome {
        match result {
            Ok(()) => Outcome::Permit(Permit {
                group,
                would_deny: None,
            }),
            Err(e) if self.groups[group].mode == Mode::Audit => Outcome::Permit(Permit {
                group,
                would_deny: Some(e),
            }),
            Err(e) => Outcome::Refuse(e),
        }
    }

    pub fn group_index(&self, name: &str) -> Option<usize> {
        self.groups.iter().position(|g| g.name == name)
    }
}

fn denied(group: &Group, endpoint: &Endpoint, reason: String) -> ProxyError {
    ProxyError::PermissionDenied {
        group: group.name.clone(),
        endpoint: endpoint.name(),
        reason,
    }
}

/// `.../access-keys/rotate` or `.../access-keys/revoke` in any case, with trailing slashes.
fn reserved_spelling(path: &str) -> Option<&'static str> {
    let path = path.trim_end_matches('/');
    let tail = |suffix: &str| {
        path.len() >= suffix.len()
            && path.as_bytes()[path.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
    };
    if tail("/access-keys/rotate") {
        Some("access-keys/rotate")
    } else if tail("/access-keys/revoke") {
        Some("access-keys/revoke")
    } else {
        None
    }
}

/// The permission an endpoint needs, for people.
pub fn describe(need: Need) -> String {
    let quoted = |gs: &[&str]| {
        gs.iter()
            .map(|g| format!("\"{g}\""))
            .collect::<Vec<_>>()
            .join(" and ")
    };
    match need {
        Need::Reserved => "nothing can: it is reserved (credgate rotate / revoke use it)".to_owned(),
        Need::Nothing => "no permission".to_owned(),
        Need::Grants(mask) => quoted(&mask.iter().map(|g| g.label()).collect::<Vec<_>>()),
        Need::Body(Body::TrackEvent) => "\"Events: Set\" for the body's event_type (or \"Consent: Set\" for consent)".to_owned(),
        Need::Body(Body::TrackCustomer) => "\"Customer properties: Set\" for each of the body's properties".to_owned(),
        Need::Body(Body::TrackBatch) => "each command's own permission (customers, customers/events, system/time)".to_owned(),
        Need::Body(Body::Attributes) => "per attribute type: property/id → \"Customer properties: Get\", consent → \"Consent: Get\", recommendation → \"Recommendations: Get\", others → \"Customer attributes: Get\"".to_owned(),
        Need::Body(Body::ExportEvents) => "\"Events: Get\" for each of the body's event_types".to_owned(),
    }
}

/// The endpoints a group may call (some bodies only, for body-dependent ones), for `check`.
pub fn allowed_endpoints<'c>(
    group: &Group,
    catalog: &'c Catalog,
) -> impl Iterator<Item = &'c Endpoint> {
    catalog
        .endpoints()
        .iter()
        .filter(move |e| authorize::could_allow(&group.grants, e.need))
}

#[cfg(test)]
mod tests;
