//! `credgate explain`: what the proxy would do with one request, with no network.

use std::path::Path;
use std::process::ExitCode;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, Version};

use crate::config::Config;
use crate::policy::{self, Mode, Outcome, Unreadable, target};

pub fn explain(
    path: &Path,
    method: &str,
    target: &str,
    headers: &[String],
    body: Option<&Path>,
) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let request = parse_request(method, target, headers).and_then(|r| {
        let body = body
            .map(|b| std::fs::read(b).map_err(|e| format!("cannot read {}: {e}", b.display())))
            .transpose()?;
        Ok((r, body))
    });
    let ((method, uri, headers), body) = match request {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    print_explanation(&config, &method, &uri, &headers, body.as_deref())
}

fn parse_request(
    method: &str,
    target: &str,
    headers: &[String],
) -> Result<(Method, Uri, HeaderMap), String> {
    let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("{method:?} is not an HTTP method"))?;
    let uri: Uri = target
        .parse()
        .map_err(|e| format!("{target:?} is not a request target: {e}"))?;
    let mut map = HeaderMap::new();
    for h in headers {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| format!("header {h:?} is not 'Name: value'"))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("{name:?} is not a header name"))?;
        let value = HeaderValue::from_str(value.trim())
            .map_err(|_| format!("{value:?} is not a header value"))?;
        map.append(name, value);
    }
    Ok((method, uri, map))
}

/// Runs the proxy's own decision (target check, `decide`, `inspect`) and prints each step.
fn print_explanation(
    config: &Config,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Option<&[u8]>,
) -> ExitCode {
    let policy = &config.policy;
    let path = match target::check(method, uri, Version::HTTP_11) {
        Ok(t) => t.path,
        Err(e) => {
            println!("decision: refused ({})\nreason:   {e}", e.code());
            return ExitCode::from(1);
        }
    };
    let d = policy.decide(method, path, headers);
    println!("request:  {method} {path}");
    match d.route {
        Some(i) => println!("route:    routes[{i}]"),
        None => println!("route:    none matches"),
    }
    if let Some(g) = d.group {
        let mode = if g.mode == Mode::Audit {
            ", audit mode"
        } else {
            ""
        };
        println!(
            "group:    {} ({} access, project {}{mode})",
            g.name,
            g.access.as_str(),
            g.project
        );
    }
    if let Some(e) = d.endpoint {
        println!("endpoint: {e}");
        println!("requires: {}", policy::describe(e.need));
    }
    let result = match d.outcome {
        Outcome::Refuse(e) => Err(e),
        Outcome::Permit(p) => Ok(p),
        Outcome::Inspect(pending) => {
            let endpoint = d.endpoint.expect("an inspected request has an endpoint");
            if body.is_none() {
                println!(
                    "body:     none given (--body FILE): judged as the empty body the proxy would see"
                );
            }
            let bytes = body.unwrap_or_default();
            let limit = config.limits.inspect_body;
            let readable = if bytes.len() as u64 > limit {
                Err(Unreadable::TooLarge(limit))
            } else {
                Ok(bytes)
            };
            let inspected = policy.inspect(pending, endpoint, readable);
            for v in &inspected.verdicts {
                match &v.result {
                    Ok(allowed) => println!("body:     {}: allowed by {allowed}", v.item),
                    Err(need) => println!("body:     {}: REFUSED, needs {need}", v.item),
                }
            }
            inspected.result
        }
    };
    match result {
        Ok(permit) => {
            let group = d.group.map_or("?", |g| g.name.as_str());
            match permit.would_deny() {
                None => println!("decision: allowed (credentials of group {group} are injected)"),
                Some(e) => println!(
                    "decision: forwarded in audit mode, logged as would_deny ({})\nreason:   {e}",
                    e.code()
                ),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("decision: refused ({})\nreason:   {e}", e.code());
            ExitCode::from(1)
        }
    }
}
