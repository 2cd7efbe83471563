//! Compiling the policy part of the config: groups and their permissions, routes, custom
//! endpoints, and the warnings about routes that never match and groups never reached.

use http::{HeaderName, HeaderValue, Method};
use serde_saphyr::Spanned;

use super::{Compiler, Problem, raw};
use crate::policy::catalog::{Catalog, Endpoint, Need};
use crate::policy::permission::{self, Grants, Mask};
use crate::policy::{Access, Group, Mode, Policy, Route};

impl Compiler {
    pub(super) fn policy(&mut self, raw: &raw::Config) -> Option<Policy> {
        let default_project = raw
            .project_token
            .as_ref()
            .and_then(|at| self.value(at, "project_token", |s| check_project(s)));
        let mut groups = Vec::new();
        for (name, at) in &raw.groups {
            let key = format!("groups.{name}");
            if !valid_group_name(name) {
                self.problem(at, &key, "a group name is 1 to 64 of [A-Za-z0-9._-]");
            }
            if let Some(group) = self.group(
                name,
                &key,
                at,
                default_project.as_deref(),
                raw.project_token.is_some(),
            ) {
                groups.push(group);
            }
        }
        if raw.groups.is_empty() {
            self.problems.push(Problem {
                line: 1,
                column: 1,
                key: "groups".into(),
                message: "at least one group is needed".into(),
            });
        }
        let names: Vec<String> = raw.groups.keys().cloned().collect();
        let mut routes = Vec::new();
        for (i, at) in raw.routes.iter().enumerate() {
            if let Some(route) = self.route(i, at, &names) {
                routes.push(route);
            }
        }
        if raw.routes.is_empty() {
            self.warnings
                .push("no routes: every request will be refused with no_route".into());
        }
        let mut catalog = Catalog::builtin();
        for (i, at) in raw.endpoints.iter().enumerate() {
            if let Some(endpoint) = self.endpoint(i, at, &catalog) {
                catalog.push(endpoint);
            }
        }
        let policy = Policy {
            groups,
            routes,
            catalog,
        };
        if self.problems.is_empty() {
            self.reachability(&policy);
        }
        Some(policy)
    }

    fn group(
        &mut self,
        name: &str,
        key: &str,
        at: &Spanned<raw::Group>,
        default_project: Option<&str>,
        has_default: bool,
    ) -> Option<Group> {
        let g = &at.value;
        let access = self.value(&g.access, &format!("{key}.access"), |s| {
            match s.to_ascii_lowercase().as_str() {
                "private" => Ok(Access::Private),
                "public" => Ok(Access::Public),
                other => Err(format!("{other:?} is not private or public")),
            }
        });
        let project = match &g.project_token {
            Some(p) => self.value(p, &format!("{key}.project_token"), |s| check_project(s)),
            None if default_project.is_some() => default_project.map(str::to_owned),
            None => {
                if !has_default {
                    self.problem(
                        at,
                        key,
                        "no project_token: set one here or at the top level",
                    );
                }
                None
            }
        };
        let mut grants = Grants::default();
        for (i, p) in g.permissions.iter().enumerate() {
            let pkey = format!("{key}.permissions[{i}]");
            let Some(parsed) = self.value(p, &pkey, |s| permission::parse(s)) else {
                continue;
            };
            if access == Some(Access::Public)
                && let Some(bad) = parsed.grants.iter().find(|g| !g.public())
            {
                self.problem(p, &pkey, format!("\"{bad}\" needs private access; a public group may hold only public-capable permissions (Events: Set, Customer properties: Set, Consent: Set, Recommendations: Get)"));
                continue;
            }
            grants.add(&parsed);
        }
        let mode = match &g.mode {
            None => Mode::Enforce,
            Some(m) => self
                .value(m, &format!("{key}.mode"), |s| match s.as_str() {
                    "enforce" => Ok(Mode::Enforce),
                    "audit" => Ok(Mode::Audit),
                    other => Err(format!("{other:?} is not enforce or audit")),
                })
                .unwrap_or(Mode::Enforce),
        };
        if mode == Mode::Audit {
            self.warnings.push(format!("group {name:?} is in audit mode: requests its permissions refuse are forwarded anyway"));
        }
        Some(Group {
            mode,
            name: name.to_owned(),
            access: access?,
            project: project?,
            permissions: g.permissions.iter().map(|p| p.value.clone()).collect(),
            grants,
        })
    }

    fn route(&mut self, i: usize, at: &Spanned<raw::Route>, groups: &[String]) -> Option<Route> {
        let key = format!("routes[{i}]");
        let r = &at.value;
        let group = self.value(&r.group, &format!("{key}.group"), |name| {
            groups.iter().position(|g| g == name).ok_or_else(|| {
                let hint = closest(name, groups)
                    .map(|c| format!(" (did you mean {c:?}?)"))
                    .unwrap_or_default();
                format!("unknown group {name:?}{hint}")
            })
        });
        let m = r.matcher.as_ref();
        let path_prefix = m.and_then(|m| m.path_prefix.as_ref()).and_then(|p| {
            self.value(p, &format!("{key}.match.path_prefix"), |s| {
                if !s.starts_with('/') {
                    return Err(format!("{s:?} must start with '/'"));
                }
                if s.contains("//") || s.contains(['%', ';', '\\', '?', '#']) || s.split('/').any(|x| x == "." || x == "..") {
                    return Err(format!("{s:?} must be a plain path: no '//', '%', ';', '\\', '?', '#' or dot segments"));
                }
                Ok(s.trim_end_matches('/').to_owned())
            })
        });
        let methods = m.and_then(|m| m.methods.as_ref()).map(|list| {
            list.iter()
                .enumerate()
                .filter_map(|(j, at)| {
                    self.value(at, &format!("{key}.match.methods[{j}]"), |s| {
                        let upper = s.to_ascii_uppercase();
                        match Method::from_bytes(upper.as_bytes()) {
                            Ok(m) if upper.bytes().all(|b| b.is_ascii_uppercase()) => Ok(m),
                            _ => Err(format!("{s:?} is not an HTTP method")),
                        }
                    })
                })
                .collect::<Vec<_>>()
        });
        let mut headers = Vec::new();
        for (name, at) in m.and_then(|m| m.headers.as_ref()).into_iter().flatten() {
            let hkey = format!("{key}.match.headers.{name}");
            let parsed = self.value(at, &hkey, |value| {
                let n = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| format!("{name:?} is not a header name"))?;
                let v = HeaderValue::from_str(value)
                    .map_err(|_| format!("{value:?} is not a header value"))?;
                Ok((n, v))
            });
            headers.extend(parsed);
        }
        Some(Route {
            group: group?,
            path_prefix,
            methods,
            headers,
        })
    }

    fn endpoint(
        &mut self,
        i: usize,
        at: &Spanned<raw::Endpoint>,
        catalog: &Catalog,
    ) -> Option<Endpoint> {
        let key = format!("endpoints[{i}]");
        let e = &at.value;
        let method = self.value(&e.method, &format!("{key}.method"), |s| {
            let upper = s.to_ascii_uppercase();
            Method::from_bytes(upper.as_bytes()).map_err(|_| format!("{s:?} is not an HTTP method"))
        });
        let need = self.value(&e.permission, &format!("{key}.permission"), |s| {
            if s.trim().eq_ignore_ascii_case("none") {
                return Ok(Need::Nothing);
            }
            let p = permission::parse(s)?;
            if p.scope.is_some() {
                return Err(
                    "a custom endpoint's permission cannot be scoped (its body is not inspected)"
                        .into(),
                );
            }
            Ok(Need::Grants(Mask::of(&p.grants)))
        });
        // The path is checked even when the method or permission is wrong: report everything.
        let mut endpoint = self.value(&e.path, &format!("{key}.path"), |p| {
            Endpoint::new(method.clone(), p, Need::Nothing)
        })?;
        method.as_ref()?;
        endpoint.need = need?;
        if let Some(taken) = catalog.endpoints().iter().find(|b| b.overlaps(&endpoint)) {
            if taken.need == Need::Reserved {
                self.problem(&e.path, format!("{key}.path"), format!("overlaps the reserved endpoint {taken}: reserved endpoints cannot be reached"));
                return None;
            }
            self.warnings.push(format!(
                "{key} ({endpoint}) overlaps {taken}, which is matched first"
            ));
        }
        if !endpoint.has_project() {
            self.warnings.push(format!(
                "{key} ({endpoint}) has no {{project}} segment: the project check is skipped for it"
            ));
        }
        Some(endpoint)
    }

    /// Warnings for routes that can never match and groups no route reaches.
    fn reachability(&mut self, policy: &Policy) {
        let mut reached = vec![false; policy.groups.len()];
        for (i, route) in policy.routes.iter().enumerate() {
            match policy.routes[..i]
                .iter()
                .position(|earlier| route.shadowed_by(earlier))
            {
                Some(j) => self.warnings.push(format!(
                    "routes[{i}] can never match: routes[{j}] matches everything it does"
                )),
                None => reached[route.group] = true,
            }
        }
        for (group, reached) in policy.groups.iter().zip(reached) {
            if !reached {
                self.warnings
                    .push(format!("group {:?} is reached by no route", group.name));
            }
        }
    }
}

/// A project token is matched byte-for-byte against one path segment.
fn check_project(s: &str) -> Result<String, String> {
    if s.is_empty()
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
    {
        return Err("a project token is non-empty and made of letters, digits and -_.~".into());
    }
    Ok(s.to_owned())
}

fn valid_group_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

fn closest<'a>(name: &str, candidates: &'a [String]) -> Option<&'a String> {
    candidates
        .iter()
        .map(|c| (permission::distance(name, c), c))
        .filter(|(d, _)| *d <= name.len().max(3) / 3 + 1)
        .min()
        .map(|(_, c)| c)
}
