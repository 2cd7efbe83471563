//! The compiled policy: groups, routes, the endpoint catalog, and the one function that
//! decides a request.
//!
//! Only [`Policy::decide`] makes a [`Permit`], and only a `Permit` gets credentials injected
//! (`proxy::inject` takes one), so "forwarded without a permission check" cannot be written.

pub mod catalog;
pub mod permission;
pub mod route;
pub mod target;

use http::{HeaderMap, Method};

use crate::error::ProxyError;
use catalog::{Body, Catalog, Endpoint, Need};
use permission::{Grant, Grants};
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
}

#[derive(Clone, Debug)]
pub struct Policy {
    pub groups: Vec<Group>,
    pub routes: Vec<Route>,
    pub catalog: Catalog,
}

/// Proof that a request passed [`Policy::decide`]: which group's credential it may carry.
/// Its fields are private to this module, so nothing else can make one.
#[derive(Debug)]
pub struct Permit {
    group: usize,
}

impl Permit {
    pub fn group(&self) -> usize {
        self.group
    }
}

/// What the policy made of a request: everything it learnt on the way, and the outcome.
pub struct Decision<'p> {
    pub route: Option<usize>,
    pub group: Option<&'p Group>,
    pub endpoint: Option<&'p Endpoint>,
    pub result: Result<Permit, ProxyError>,
}

impl Decision<'_> {
    /// The endpoint's template for logs: never the raw path, which carries project tokens.
    pub fn endpoint_name(&self) -> String {
        self.endpoint
            .map_or_else(|| "unknown".to_owned(), Endpoint::name)
    }
}

impl Policy {
    /// Route → endpoint → project token → permission. `path` passed the target check.
    pub fn decide(&self, method: &Method, path: &str, headers: &HeaderMap) -> Decision<'_> {
        let mut decision = Decision {
            route: None,
            group: None,
            endpoint: None,
            result: Err(ProxyError::NoRoute),
        };
        let Some(index) = self
            .routes
            .iter()
            .position(|r| r.matches(method, path, headers))
        else {
            return decision;
        };
        let group_id = self.routes[index].group;
        let group = &self.groups[group_id];
        decision.route = Some(index);
        decision.group = Some(group);
        let Some(found) = self.catalog.find(method, path) else {
            decision.result = Err(ProxyError::UnknownEndpoint(method.clone()));
            return decision;
        };
        let endpoint = found.endpoint;
        decision.endpoint = Some(endpoint);
        decision.result =
            authorize(group, endpoint, found.project).map(|()| Permit { group: group_id });
        decision
    }

    pub fn group_index(&self, name: &str) -> Option<usize> {
        self.groups.iter().position(|g| g.name == name)
    }
}

/// Whether `group` may call `endpoint` for the project token its path carries.
fn authorize(group: &Group, endpoint: &Endpoint, project: Option<&str>) -> Result<(), ProxyError> {
    if endpoint.need == Need::Reserved {
        let what = if endpoint.template.ends_with("rotate") {
            "access-keys/rotate"
        } else {
            "access-keys/revoke"
        };
        return Err(ProxyError::Reserved(what));
    }
    if project.is_some_and(|p| p != group.project) {
        return Err(ProxyError::ProjectMismatch(group.name.clone()));
    }
    if allows(&group.grants, endpoint.need) {
        Ok(())
    } else {
        Err(ProxyError::PermissionDenied {
            group: group.name.clone(),
            endpoint: endpoint.name(),
            need: describe(endpoint.need),
        })
    }
}

/// The grants each need asks for, all of them required. Body-dependent endpoints ask for the
/// unscoped category permissions: a scoped permission never loosens them.
fn required(need: Need) -> &'static [Grant] {
    use Grant::*;
    match need {
        Need::Nothing | Need::Reserved => &[],
        Need::Grant(g) => grant_slice(g),
        Need::Body(Body::TrackEvent) => &[EventsSet],
        Need::Body(Body::TrackCustomer) => &[CustomerPropertiesSet],
        Need::Body(Body::TrackBatch) => &[EventsSet, CustomerPropertiesSet],
        Need::Body(Body::Attributes) => &[CustomerPropertiesGet, CustomerAttributesGet],
        Need::Body(Body::ExportEvents) => &[EventsGet],
    }
}

fn grant_slice(g: Grant) -> &'static [Grant] {
    permission::ALL
        .iter()
        .position(|x| *x == g)
        .map_or(&[], |i| &permission::ALL[i..=i])
}

fn allows(grants: &Grants, need: Need) -> bool {
    need != Need::Reserved && required(need).iter().all(|g| grants.has(*g))
}

/// The permission an endpoint needs, for people: `"Events: Set"`, `"no permission"`.
pub fn describe(need: Need) -> String {
    match need {
        Need::Reserved => "nothing: it is reserved".to_owned(),
        Need::Nothing => "no permission".to_owned(),
        _ => required(need)
            .iter()
            .map(|g| format!("\"{g}\""))
            .collect::<Vec<_>>()
            .join(" and "),
    }
}

/// The endpoints a group may call, for `check`.
pub fn allowed_endpoints<'c>(
    group: &Group,
    catalog: &'c Catalog,
) -> impl Iterator<Item = &'c Endpoint> {
    catalog
        .endpoints()
        .iter()
        .filter(move |e| allows(&group.grants, e.need))
}
