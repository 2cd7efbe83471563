//! The endpoint catalog: which Bloomreach endpoints exist and what each one needs.
//!
//! This is data, not logic (`bloomreach-api.md` section 10). Mappings no source states are
//! marked `inferred` here so they are easy to find and correct.

use http::Method;

use super::permission::Grant::*;
use super::permission::{Grant, Mask};

/// What an endpoint requires of the group that calls it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Any group of the project may call it (consent categories, system time).
    Nothing,
    /// The group must hold every one of these grants.
    Grants(Mask),
    /// What is needed depends on the JSON body (event types, properties, commands).
    Body(Body),
    /// Never forwarded for a caller, whatever its permissions.
    Reserved,
}

/// The endpoints whose permission depends on the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// Tracking `customers/events`: `Events: Set` for the body's `event_type`.
    TrackEvent,
    /// Tracking `customers`: `Customer properties: Set` for the body's `properties` keys.
    TrackCustomer,
    /// Tracking `batch`: each command as its own endpoint.
    TrackBatch,
    /// Data `customers/attributes`: per attribute `type`.
    Attributes,
    /// Data `customers/events` (export): `Events: Get` for the body's `event_types`.
    ExportEvents,
}

/// The most path segments a template may have.
const MAX_SEGMENTS: usize = 16;

/// One method + path template. `{project}` is the segment that must be the group's project
/// token; any other `{name}` matches one non-empty segment.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// `None` matches every method (used for reserved endpoints, refused whatever the method).
    pub method: Option<Method>,
    pub template: String,
    pub need: Need,
    segments: Vec<Segment>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Project,
    Param,
}

impl Endpoint {
    pub fn new(method: Option<Method>, template: &str, need: Need) -> Result<Endpoint, String> {
        let rest = template
            .strip_prefix('/')
            .ok_or_else(|| format!("path {template:?} must start with '/'"))?;
        let mut segments = Vec::new();
        if rest.split('/').count() > MAX_SEGMENTS {
            return Err(format!(
                "path {template:?} has more than {MAX_SEGMENTS} segments"
            ));
        }
        for seg in rest.split('/') {
            segments.push(match seg {
                "" => return Err(format!("path {template:?} has an empty segment")),
                "{project}" => Segment::Project,
                s if s.starts_with('{') && s.ends_with('}') && s.len() > 2 => Segment::Param,
                s if s.contains(['{', '}', '?', '#', ';', '%', '\\']) || s == "." || s == ".." => {
                    return Err(format!(
                        "path {template:?}: segment {s:?} is not a literal or {{name}}"
                    ));
                }
                s => Segment::Literal(s.to_owned()),
            });
        }
        Ok(Endpoint {
            method,
            template: template.to_owned(),
            need,
            segments,
        })
    }

    /// Whether the path has a `{project}` segment (custom endpoints may lack one).
    pub fn has_project(&self) -> bool {
        self.segments.contains(&Segment::Project)
    }

    /// `METHOD /template`, as logs and messages show it.
    pub fn name(&self) -> String {
        self.to_string()
    }

    /// Matches the path (without its leading `/`, split on `/`), returning the project token
    /// segment if the template has one.
    fn matches<'a>(&self, method: &Method, segments: &[&'a str]) -> Option<Option<&'a str>> {
        if self.method.as_ref().is_some_and(|m| m != method)
            || segments.len() != self.segments.len()
        {
            return None;
        }
        let mut project = None;
        for (want, got) in self.segments.iter().zip(segments) {
            match want {
                Segment::Literal(lit) if lit == got => {}
                Segment::Project if !got.is_empty() => project = Some(*got),
                Segment::Param if !got.is_empty() => {}
                _ => return None,
            }
        }
        Some(project)
    }

    /// Whether two templates could match the same request (for custom endpoint checks).
    pub fn overlaps(&self, other: &Endpoint) -> bool {
        let methods = match (&self.method, &other.method) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        methods
            && self.segments.len() == other.segments.len()
            && self
                .segments
                .iter()
                .zip(&other.segments)
                .all(|(a, b)| match (a, b) {
                    (Segment::Literal(x), Segment::Literal(y)) => x == y,
                    _ => true,
                })
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.method {
            Some(m) => write!(f, "{m} {}", self.template),
            None => write!(f, "* {}", self.template),
        }
    }
}

/// The built-in catalog plus the config's custom endpoints, searched in order.
#[derive(Clone, Debug)]
pub struct Catalog {
    endpoints: Vec<Endpoint>,
}

/// A request's endpoint and the project token its path carries.
pub struct Found<'c, 'p> {
    pub endpoint: &'c Endpoint,
    pub project: Option<&'p str>,
}

impl Catalog {
    pub fn builtin() -> Catalog {
        let endpoints = BUILTIN
            .iter()
            .map(|(m, t, need)| {
                let method = (!m.is_empty())
                    .then(|| Method::from_bytes(m.as_bytes()).expect("catalog method"));
                Endpoint::new(method, t, *need).expect("catalog template")
            })
            .collect();
        Catalog { endpoints }
    }

    /// Adds a custom endpoint after the built-in ones (so it can never shadow them).
    pub fn push(&mut self, endpoint: Endpoint) {
        self.endpoints.push(endpoint);
    }

    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// Finds the endpoint of `method path`; `path` starts with `/`. Reserved endpoints are
    /// found whatever the method.
    pub fn find<'c, 'p>(&'c self, method: &Method, path: &'p str) -> Option<Found<'c, 'p>> {
        // On the stack: no allocation per request. Longer paths match no template.
        let mut buf = [""; MAX_SEGMENTS];
        let mut n = 0;
        for segment in path.strip_prefix('/')?.split('/') {
            *buf.get_mut(n)? = segment;
            n += 1;
        }
        let segments = &buf[..n];
        self.endpoints.iter().find_map(|endpoint| {
            let project = endpoint.matches(method, segments)?;
            Some(Found { endpoint, project })
        })
    }
}

const fn g(grant: Grant) -> Need {
    Need::Grants(Mask::one(grant))
}

/// The built-in catalog (`bloomreach-api.md` section 10). An empty method matches any.
static BUILTIN: &[(&str, &str, Need)] = &[
    // Reserved first: no method, route or permission can reach them.
    (
        "",
        "/data/v2/projects/{project}/access-keys/rotate",
        Need::Reserved,
    ),
    (
        "",
        "/data/v2/projects/{project}/access-keys/revoke",
        Need::Reserved,
    ),
    // Tracking API.
    (
        "GET",
        "/track/v2/projects/{project}/system/time",
        Need::Nothing,
    ),
    (
        "POST",
        "/track/v2/projects/{project}/customers/events",
        Need::Body(Body::TrackEvent),
    ),
    (
        "POST",
        "/track/v2/projects/{project}/customers",
        Need::Body(Body::TrackCustomer),
    ),
    (
        "POST",
        "/track/v2/projects/{project}/batch",
        Need::Body(Body::TrackBatch),
    ),
    // inferred: the permission of campaign clicks is not documented.
    (
        "POST",
        "/track/v2/projects/{project}/campaigns/clicks",
        g(EventsSet),
    ),
    // Consent and customers.
    (
        "GET",
        "/data/v2/projects/{project}/consent/categories",
        Need::Nothing,
    ),
    (
        "POST",
        "/data/v2/projects/{project}/customers/attributes",
        Need::Body(Body::Attributes),
    ),
    (
        "POST",
        "/data/v2/projects/{project}/customers/events",
        Need::Body(Body::ExportEvents),
    ),
    (
        "POST",
        "/data/v2/projects/{project}/customers/export-one",
        g(GdprExportCustomer),
    ),
    (
        "POST",
        "/data/v2/projects/{project}/customers/export",
        g(GdprExportCustomers),
    ),
    (
        "POST",
        "/data/v2/projects/{project}/customers/anonymize",
        g(GdprAnonymizeCustomer),
    ),
    (
        "POST",
        "/data/v2/projects/{project}/customers/anonymize_bulk",
        g(GdprAnonymizeCustomer),
    ),
    // Analyses.
    (
        "POST",
        "/data/v2/projects/{project}/analyses/funnel",
        g(GdprExportAnalyses),
    ),
    (
        "POST",
        "/data/v2/projects/{project}/analyses/report",
        g(GdprExportAnalyses),
    ),
    (
        "POST",
        "/data/v2/projects/{project}/analyses/segmentation",
        g(GdprExportAnalyses),
    ),
    (
        "POST",
        "/data/v2/projects/{project}/analyses/retention",
        g(GdprExportAnalyses),
    ),
    // Catalogs. inferred: GET of one catalog, GET of items, DELETE of a catalog, item
    // partial-update and item deletes (by analogy with the documented labels).
    (
        "GET",
        "/data/v2/projects/{project}/catalogs",
        g(CatalogsGetList),
    ),
    (
        "POST",
        "/data/v2/projects/{project}/catalogs",
        g(CatalogsCreate),
    ),
    (
        "GET",
        "/data/v2/projects/{project}/catalogs/{catalog}",
        g(CatalogsGetList),
    ),
    (
        "PUT",
        "/data/v2/projects/{project}/catalogs/{catalog}",
        g(CatalogsUpdate),
    ),
    (
        "DELETE",
        "/data/v2/projects/{project}/catalogs/{catalog}",
        g(CatalogsDelete),
    ),
    (
        "GET",
        "/data/v2/projects/{project}/catalogs/{catalog}/items",
        g(CatalogsGetItem),
    ),
    (
        "DELETE",
        "/data/v2/projects/{project}/catalogs/{catalog}/items",
        g(CatalogsDeleteItem),
    ),
    (
        "POST",
        "/data/v2/projects/{project}/catalogs/{catalog}/items/bulk-delete",
        g(CatalogsDeleteItem),
    ),
    (
        "GET",
        "/data/v2/projects/{project}/catalogs/{catalog}/items/{item}",
        g(CatalogsGetItem),
    ),
    (
        "PUT",
        "/data/v2/projects/{project}/catalogs/{catalog}/items/{item}",
        g(CatalogsUpsertItem),
    ),
    (
        "DELETE",
        "/data/v2/projects/{project}/catalogs/{catalog}/items/{item}",
        g(CatalogsDeleteItem),
    ),
    (
        "POST",
        "/data/v2/projects/{project}/catalogs/{catalog}/items/{item}/partial-update",
        g(CatalogsUpsertItem),
    ),
    // Imports: start exists under v1 and v2 in the stored docs; `run` is inferred.
    (
        "POST",
        "/data/v1/projects/{project}/imports/{import}/start",
        g(ImportsTrigger),
    ),
    (
        "POST",
        "/data/v2/projects/{project}/imports/{import}/start",
        g(ImportsTrigger),
    ),
    (
        "POST",
        "/imports/v1/{project}/{import}/run",
        g(ImportsTrigger),
    ),
    ("GET", "/imports/v1/{project}", g(ImportsList)),
    ("POST", "/imports/v1/{project}", g(ImportsCreate)),
    // inferred: the read path, from the delete path's shape.
    ("GET", "/imports/v1/{project}/{import}", g(ImportsRead)),
    ("DELETE", "/imports/v1/{project}/{import}", g(ImportsDelete)),
    // Transactional messaging (method POST inferred).
    (
        "POST",
        "/email/v2/projects/{project}/sync",
        g(CampaignsEmail),
    ),
    ("POST", "/sms/v1/projects/{project}/sync", g(CampaignsSms)),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_endpoints_and_their_project_segment() {
        let c = Catalog::builtin();
        let f = c
            .find(&Method::POST, "/track/v2/projects/abc/customers/events")
            .unwrap();
        assert_eq!(f.endpoint.need, Need::Body(Body::TrackEvent));
        assert_eq!(f.project, Some("abc"));
        let f = c.find(&Method::DELETE, "/imports/v1/abc/42").unwrap();
        assert_eq!(f.endpoint.need, g(ImportsDelete));
        assert_eq!(f.project, Some("abc"));
        let f = c
            .find(
                &Method::POST,
                "/data/v2/projects/p/catalogs/c/items/bulk-delete",
            )
            .unwrap();
        assert_eq!(f.endpoint.need, g(CatalogsDeleteItem));
    }

    #[test]
    fn reserved_endpoints_match_every_method() {
        let c = Catalog::builtin();
        for m in [Method::POST, Method::GET, Method::PUT] {
            let f = c
                .find(&m, "/data/v2/projects/p/access-keys/rotate")
                .unwrap();
            assert_eq!(f.endpoint.need, Need::Reserved);
        }
    }

    #[test]
    fn near_misses_are_unknown() {
        let c = Catalog::builtin();
        for (m, p) in [
            (Method::GET, "/track/v2/projects/p/customers/events"),
            (Method::POST, "/track/v2/projects/p/customers/events/"),
            (Method::POST, "/track/v2/projects//customers/events"),
            (Method::POST, "/track/v2/projects/p/customers/eventsx"),
            (Method::POST, "/TRACK/v2/projects/p/customers/events"),
            (Method::GET, "/data/v2/projects/p/catalogs/c/items/"),
        ] {
            assert!(c.find(&m, p).is_none(), "{m} {p}");
        }
    }

    #[test]
    fn bad_custom_templates_are_refused() {
        assert!(Endpoint::new(None, "no-slash", Need::Nothing).is_err());
        assert!(Endpoint::new(None, "/a//b", Need::Nothing).is_err());
        assert!(Endpoint::new(None, "/a/../b", Need::Nothing).is_err());
        assert!(Endpoint::new(None, "/a/%2F", Need::Nothing).is_err());
    }
}
