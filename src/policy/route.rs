//! Route rules: ordered, first match wins, each naming the API group that serves the request.

use http::{HeaderMap, HeaderName, HeaderValue, Method};

/// A compiled route. Every field is optional in the YAML; an empty match matches everything.
#[derive(Clone, Debug)]
pub struct Route {
    /// Index into the policy's groups.
    pub group: usize,
    /// The prefix without its trailing `/`; matched on whole segments. `None`: any path.
    pub path_prefix: Option<String>,
    /// `None`: any method.
    pub methods: Option<Vec<Method>>,
    /// Exact values; names are case-insensitive by construction of `HeaderName`.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Route {
    pub fn matches(&self, method: &Method, path: &str, headers: &HeaderMap) -> bool {
        self.path_prefix
            .as_deref()
            .is_none_or(|p| prefix_matches(p, path))
            && self.methods.as_ref().is_none_or(|ms| ms.contains(method))
            && self
                .headers
                .iter()
                .all(|(name, value)| headers.get_all(name).iter().any(|v| v == value))
    }

    /// Whether every request this route matches is matched by `earlier` (so this one is
    /// shadowed when `earlier` comes first).
    pub fn shadowed_by(&self, earlier: &Route) -> bool {
        let path = match (&earlier.path_prefix, &self.path_prefix) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(e), Some(s)) => prefix_matches(e, s),
        };
        let methods = match (&earlier.methods, &self.methods) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(e), Some(s)) => s.iter().all(|m| e.contains(m)),
        };
        let headers = earlier.headers.iter().all(|h| self.headers.contains(h));
        path && methods && headers
    }
}

/// Segment-aware prefix test: `/track` matches `/track` and `/track/v2`, not `/tracker`.
/// `prefix` has no trailing `/` (the root prefix is the empty string).
fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(prefix: Option<&str>, methods: Option<&[Method]>, headers: &[(&str, &str)]) -> Route {
        Route {
            group: 0,
            path_prefix: prefix.map(|p| p.trim_end_matches('/').to_owned()),
            methods: methods.map(|m| m.to_vec()),
            headers: headers
                .iter()
                .map(|(n, v)| (n.parse().unwrap(), HeaderValue::from_str(v).unwrap()))
                .collect(),
        }
    }

    #[test]
    fn prefix_is_segment_aware() {
        let r = route(Some("/track/"), None, &[]);
        let h = HeaderMap::new();
        assert!(r.matches(&Method::POST, "/track/v2/projects", &h));
        assert!(r.matches(&Method::POST, "/track", &h));
        assert!(!r.matches(&Method::POST, "/tracker", &h));
        assert!(!r.matches(&Method::POST, "/tracking/v2", &h));
        assert!(!r.matches(&Method::POST, "/data/track/v2", &h));
        let root = route(Some("/"), None, &[]);
        assert!(root.matches(&Method::GET, "/anything", &h));
    }

    #[test]
    fn methods_and_headers_must_all_match() {
        let r = route(None, Some(&[Method::POST]), &[("X-Credgate-Group", "web")]);
        let mut h = HeaderMap::new();
        assert!(!r.matches(&Method::POST, "/", &h));
        h.insert("x-credgate-group", HeaderValue::from_static("Web"));
        assert!(!r.matches(&Method::POST, "/", &h), "values are exact");
        h.append("x-credgate-group", HeaderValue::from_static("web"));
        assert!(r.matches(&Method::POST, "/", &h));
        assert!(!r.matches(&Method::GET, "/", &h));
    }

    #[test]
    fn shadowing() {
        let catch_all = route(None, None, &[]);
        let track = route(Some("/track"), Some(&[Method::POST]), &[("a", "1")]);
        assert!(track.shadowed_by(&catch_all));
        assert!(!catch_all.shadowed_by(&track));
        assert!(
            route(
                Some("/track/v2"),
                Some(&[Method::POST]),
                &[("a", "1"), ("b", "2")]
            )
            .shadowed_by(&track)
        );
        assert!(!route(Some("/tracker"), Some(&[Method::POST]), &[("a", "1")]).shadowed_by(&track));
        assert!(!route(Some("/track"), None, &[("a", "1")]).shadowed_by(&track));
    }
}
