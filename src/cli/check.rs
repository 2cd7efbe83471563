//! `credgate check`: validate the config and the secrets file, print the effective policy.

use std::path::Path;
use std::process::ExitCode;

use http::Method;

use crate::config::Config;
use crate::policy::{self, Mode};
use crate::secrets;

pub fn check(path: &Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let (set, secret_warnings) = match secrets::read(&config.secrets_file, &config.policy) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let p = &config.policy;
    let mut text = String::new();
    macro_rules! out {
        ($($arg:tt)*) => {{
            use std::fmt::Write as _;
            let _ = writeln!(text, $($arg)*);
        }};
    }
    out!("config {}: valid", config.file.display());
    out!(
        "listen {}  admin {}  upstream {}",
        config.listen,
        config.admin_listen,
        config.upstream.base_url
    );
    out!("secrets {}: valid", config.secrets_file.display());
    out!();
    for (i, g) in p.groups.iter().enumerate() {
        let creds = if set.get(i).is_some() {
            "loaded"
        } else {
            "MISSING"
        };
        out!(
            "group {} ({} access, project {}, credentials {creds})",
            g.name,
            g.access.as_str(),
            g.project
        );
        if g.permissions.is_empty() {
            out!("  permissions: none");
        }
        for perm in &g.permissions {
            out!("  permission {perm:?}");
        }
        if g.mode == Mode::Audit {
            out!("  mode: audit (refusals are forwarded and logged as would_deny)");
        }
        for (grant, names) in g.grants.scoped() {
            out!("  scope: {grant} only for {}", names.join(", "));
        }
        out!("  allows:");
        let mut any = false;
        for e in policy::allowed_endpoints(g, &p.catalog) {
            any = true;
            let project = if e.has_project() {
                ""
            } else {
                "  [no {project} segment: project not checked]"
            };
            out!("    {e}  ({}){project}", policy::describe(e.need));
        }
        if !any {
            out!("    nothing");
        }
    }
    out!();
    out!("routes (first match wins):");
    for (i, r) in p.routes.iter().enumerate() {
        let mut m = Vec::new();
        if let Some(prefix) = &r.path_prefix {
            m.push(format!("path_prefix {}/", prefix));
        }
        if let Some(methods) = &r.methods {
            m.push(format!(
                "methods {}",
                methods
                    .iter()
                    .map(Method::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            ));
        }
        for (n, v) in &r.headers {
            m.push(format!("header {n}: {}", v.to_str().unwrap_or("?")));
        }
        let m = if m.is_empty() {
            "everything".to_owned()
        } else {
            m.join(", ")
        };
        out!("  routes[{i}] -> {}  when {m}", p.groups[r.group].name);
    }
    let warnings: Vec<&String> = config.warnings.iter().chain(&secret_warnings).collect();
    if !warnings.is_empty() {
        out!();
        for w in warnings {
            out!("warning: {w}");
        }
    }
    // A closed stdout (`check | head`) is not an error worth a panic.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
    ExitCode::SUCCESS
}
