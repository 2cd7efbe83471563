//! `credgate rotate` and `credgate revoke`: Bloomreach's Rotate and Revoke API Secret calls,
//! made with a group's own credential (callers can never reach them through the proxy).
//! Never prints a secret; writes the rotated secrets file atomically with mode 0600.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, header};
use http_body_util::BodyExt;

use crate::config::Config;
use crate::error::{ProxyError, full};
use crate::policy::Access;
use crate::secrets::{self, Entry, Secret, fingerprint, rfc3339};
use crate::upstream::Upstream;

/// Bloomreach keeps the old secret valid this long after a rotation.
const GRACE_SECS: i64 = 24 * 3600;

/// What a command needs about one group, loaded and checked.
struct Target {
    config: Config,
    entries: BTreeMap<String, Entry>,
    name: String,
    access: Access,
    project: String,
    authorization: HeaderValue,
}

fn usage(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

fn load(config: &Path, group: &str) -> Result<Target, ExitCode> {
    let config = Config::load(config).map_err(usage)?;
    let text = secrets::read_text(&config.secrets_file).map_err(usage)?;
    let (set, _) = secrets::parse(&config.secrets_file, &text, &config.policy).map_err(usage)?;
    let entries = secrets::entries(&config.secrets_file, &text).map_err(usage)?;
    let Some(index) = config.policy.group_index(group) else {
        let names: Vec<&str> = config
            .policy
            .groups
            .iter()
            .map(|g| g.name.as_str())
            .collect();
        return Err(usage(format!(
            "no group named {group:?} (groups: {})",
            names.join(", ")
        )));
    };
    let Some(credential) = set.get(index) else {
        return Err(usage(format!(
            "group {group:?} has no credentials in {}",
            config.secrets_file.display()
        )));
    };
    let g = &config.policy.groups[index];
    Ok(Target {
        name: g.name.clone(),
        access: g.access,
        project: g.project.clone(),
        authorization: credential.authorization.clone(),
        entries,
        config,
    })
}

pub fn rotate(
    config: &Path,
    group: &str,
    write: &Path,
    secret_field: &str,
    force: bool,
) -> ExitCode {
    let mut t = match load(config, group) {
        Ok(t) => t,
        Err(code) => return code,
    };
    if t.access != Access::Private {
        return usage(format!(
            "group {:?} has public access: Bloomreach rotates private API secrets only",
            t.name
        ));
    }
    if !secret_field.is_empty() && !secret_field.starts_with('/') {
        return usage(format!(
            "--secret-field {secret_field:?} is not a JSON pointer such as /secret"
        ));
    }
    let entry = t.entries.get(&t.name).cloned().unwrap_or_default();
    let now = rfc3339::now();
    if let Some(at) = entry
        .rotated_at
        .as_deref()
        .and_then(|at| rfc3339::parse(at).map(|s| (at, s)))
        && now - at.1 < GRACE_SECS
        && !force
    {
        return usage(format!(
            "group {:?} was rotated at {}, less than 24 hours ago. During the grace period Bloomreach holds two secrets: \
             rotating with the new one revokes the old one at once, rotating with the old one fails. Pass --force to rotate anyway.",
            t.name, at.0
        ));
    }
    let key_id = entry.key_id.clone().unwrap_or_default();
    let (status, body) = match call(&t, "rotate") {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!(
                "The outcome is unknown: if Bloomreach received the call, the secret was rotated and the new one is lost. \
                 The old secret stays valid for 24 hours; rotating again with --force from the old secret then fails, \
                 so create a new key in the Bloomreach UI if the old one stops working."
            );
            return ExitCode::from(1);
        }
    };
    if !status.is_success() {
        return refused(&format!(
            "Bloomreach refused the rotation: HTTP {status}: {}",
            excerpt(&body)
        ));
    }
    let new_secret = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|json| {
            json.pointer(secret_field)
                .and_then(|v| v.as_str().map(str::to_owned))
        })
        .filter(|s| {
            !s.is_empty() && s.is_ascii() && !s.chars().any(|c| c.is_control() || c.is_whitespace())
        });
    let Some(new_secret) = new_secret else {
        let raw = sibling(write, "rotate-response.json");
        let saved = write_private(&raw, &body);
        eprintln!(
            "error: Bloomreach rotated the secret of group {:?} but the response has no usable secret at {secret_field:?}.",
            t.name
        );
        match saved {
            Ok(()) => eprintln!(
                "The raw response is in {} (mode 0600): find the new secret there, and use --secret-field next time.",
                raw.display()
            ),
            Err(e) => eprintln!(
                "Saving the raw response to {} failed too: {e}",
                raw.display()
            ),
        }
        eprintln!("The old secret stays valid for 24 hours.");
        return ExitCode::from(1);
    };
    let updated = Entry {
        secret: Some(Secret::new(new_secret)),
        rotated_at: Some(rfc3339::format(now)),
        ..entry
    };
    t.entries.insert(t.name.clone(), updated);
    if let Err(e) = write_private(write, secrets::render(&t.entries).as_bytes()) {
        // The new secret exists only in this process now: say so loudly, but never print it.
        eprintln!(
            "error: the secret was rotated but {} could not be written: {e}",
            write.display()
        );
        eprintln!(
            "The old secret stays valid for 24 hours; rotate again with --force from a writable place."
        );
        return ExitCode::from(1);
    }
    println!(
        "rotated the secret of group {:?} (key id {})",
        t.name,
        fingerprint(&key_id)
    );
    println!(
        "wrote the updated secrets file to {} (mode 0600)",
        write.display()
    );
    println!("the old secret stays valid for 24 hours: roll the new file out before then, e.g.");
    println!(
        "  kubectl create secret generic <name> --from-file=secrets.yaml={} --dry-run=client -o yaml | kubectl apply -f -",
        write.display()
    );
    ExitCode::SUCCESS
}

pub fn revoke(config: &Path, group: &str, yes: bool) -> ExitCode {
    let t = match load(config, group) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let what = match t.entries.get(&t.name).and_then(|e| e.key_id.as_deref()) {
        Some(id) => format!("private key {}", fingerprint(id)),
        None => "public API token".to_owned(),
    };
    if !yes {
        println!(
            "would revoke the {what} of group {:?} (POST {}/data/v2/projects/{}/access-keys/revoke).",
            t.name,
            t.config.upstream.base_url.trim_end_matches('/'),
            t.project
        );
        println!("This cannot be undone. Run again with --yes to do it.");
        return ExitCode::SUCCESS;
    }
    let (status, body) = match call(&t, "revoke") {
        Ok(r) => r,
        Err(e) => return refused(&e.to_string()),
    };
    if !status.is_success() {
        return refused(&format!(
            "Bloomreach refused the revocation: HTTP {status}: {}",
            excerpt(&body)
        ));
    }
    println!("revoked the {what} of group {:?}.", t.name);
    println!(
        "Now remove the entry {:?} from {}: credgate then answers 503 credentials_unavailable for this group.",
        t.name,
        t.config.secrets_file.display()
    );
    ExitCode::SUCCESS
}

fn refused(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(1)
}

/// `POST .../access-keys/<action>` with the group's credential, through the same TLS settings
/// as the proxy. The response body is read up to 1 MiB.
fn call(t: &Target, action: &str) -> Result<(StatusCode, Bytes), ProxyError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ProxyError::UpstreamUnreachable(e.to_string()))?;
    runtime.block_on(async {
        let u = &t.config.upstream;
        let upstream =
            Upstream::new(u).map_err(|e| ProxyError::UpstreamUnreachable(e.to_string()))?;
        let uri = format!(
            "{}://{}{}/data/v2/projects/{}/access-keys/{action}",
            u.scheme, u.authority, u.prefix, t.project
        );
        let request = Request::post(uri)
            .header(header::AUTHORIZATION, t.authorization.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .body(full("{}"))
            .map_err(|_| ProxyError::BadTarget("the upstream URL is not valid"))?;
        let response = upstream.send(request).await?;
        let status = response.status();
        let body = http_body_util::Limited::new(response.into_body(), 1 << 20)
            .collect()
            .await
            .map_err(|e| ProxyError::UpstreamUnreachable(format!("reading the response: {e}")))?
            .to_bytes();
        Ok((status, body))
    })
}

/// The start of an error body, for the operator (Bloomreach's errors carry no secret).
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut s: String = text.chars().take(500).collect();
    if text.chars().count() > 500 {
        s.push('…');
    }
    if s.is_empty() {
        "(empty body)".to_owned()
    } else {
        s
    }
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "secrets".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!("{name}.{suffix}"))
}

/// Writes `bytes` to `path` atomically (temporary file in the same folder, fsync, rename),
/// readable by the owner only.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = sibling(path, &format!("tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}
