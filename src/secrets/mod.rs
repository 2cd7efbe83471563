//! Credentials: the [`Secret`] type, the immutable [`CredentialSet`] built from one read of
//! the secrets file, and the [`Store`] that publishes it through an `ArcSwap`.
//!
//! The store is the only writer; a request loads one snapshot and uses it throughout, so a
//! key id and its secret always come from the same read. The injected `Authorization`
//! values are built here, once per load, and marked sensitive.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use base64::Engine;
use http::HeaderValue;
use serde::Deserialize;

use crate::config::read_bounded;

pub mod rfc3339;
pub mod watch;
use crate::policy::{Access, Policy};

/// A credential value. `Debug` and `Display` print `***`; only [`Secret::expose`] reveals it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Box<str>);

impl Secret {
    pub fn new(value: impl Into<Box<str>>) -> Secret {
        Secret(value.into())
    }

    /// The value itself: for building the `Authorization` header and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

/// One group's entry of the secrets file, as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub key_id: Option<String>,
    pub secret: Option<Secret>,
    pub token: Option<Secret>,
    pub rotated_at: Option<String>,
}

/// A group's loaded credential.
#[derive(Debug, Clone)]
pub struct Credential {
    /// The complete `Authorization` value, marked sensitive (its `Debug` prints `Sensitive`).
    pub authorization: HeaderValue,
    /// The private key id (not secret on its own), for fingerprints in logs.
    pub key_id: Option<String>,
    pub rotated_at: Option<String>,
}

/// Every group's credential from one read of the secrets file. Immutable once built.
#[derive(Debug)]
pub struct CredentialSet {
    /// Indexed like `Policy::groups`; `None` for a group with no entry.
    pub groups: Vec<Option<Credential>>,
    /// Counts successful loads, starting at 1.
    pub generation: u64,
    /// SHA-256 of the file's text, to tell an unchanged re-read from a new version.
    pub digest: [u8; 32],
}

impl CredentialSet {
    pub fn get(&self, group: usize) -> Option<&Credential> {
        self.groups.get(group).and_then(Option::as_ref)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: larger than 1 MiB", path.display())]
    TooLarge { path: PathBuf },
    /// The message never quotes a value of the file.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Yaml {
        path: PathBuf,
        line: u64,
        column: u64,
        message: String,
    },
    #[error("{}: {}", path.display(), problems.join("; "))]
    Invalid {
        path: PathBuf,
        problems: Vec<String>,
    },
}

/// Parses and validates the secrets file's text against the policy's groups. Returns the
/// set (with generation 0) and warnings (entries for unknown groups, groups with no entry).
pub fn parse(
    path: &Path,
    text: &str,
    policy: &Policy,
) -> Result<(CredentialSet, Vec<String>), SecretsError> {
    let entries = entries(path, text)?;
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    for name in entries.keys() {
        if policy.group_index(name).is_none() {
            warnings.push(format!("secrets entry {name:?} names no configured group"));
        }
    }
    let mut groups = Vec::with_capacity(policy.groups.len());
    for group in &policy.groups {
        let credential = match entries.get(&group.name) {
            None => {
                warnings.push(format!(
                    "group {:?} has no entry: its requests get credentials_unavailable",
                    group.name
                ));
                None
            }
            Some(entry) => match credential(group.access, entry) {
                Ok(c) => Some(c),
                Err(p) => {
                    problems.push(format!("{}: {p}", group.name));
                    None
                }
            },
        };
        groups.push(credential);
    }
    if !problems.is_empty() {
        return Err(SecretsError::Invalid {
            path: path.to_owned(),
            problems,
        });
    }
    let digest = digest(text);
    Ok((
        CredentialSet {
            groups,
            generation: 0,
            digest,
        },
        warnings,
    ))
}

/// The file's entries as written (for `credgate rotate`, which rewrites the file).
pub fn entries(path: &Path, text: &str) -> Result<BTreeMap<String, Entry>, SecretsError> {
    if text.trim().is_empty() {
        return Ok(BTreeMap::new());
    }
    serde_saphyr::from_str(text).map_err(|e| {
        let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
        let message = redact_quoted(&e.without_snippet().to_string());
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_owned();
        SecretsError::Yaml {
            path: path.to_owned(),
            line,
            column,
            message,
        }
    })
}

/// Writes entries back as a secrets file. Values are double-quoted: validated values hold no
/// control characters, so escaping `\` and `"` is enough.
pub fn render(entries: &BTreeMap<String, Entry>) -> String {
    let quote = |v: &str| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""));
    let mut out = String::from("# Written by credgate rotate.\n");
    for (name, e) in entries {
        out.push_str(&format!("{}:\n", quote(name)));
        let fields = [
            ("key_id", e.key_id.as_deref()),
            ("secret", e.secret.as_ref().map(Secret::expose)),
            ("token", e.token.as_ref().map(Secret::expose)),
            ("rotated_at", e.rotated_at.as_deref()),
        ];
        for (field, value) in fields {
            if let Some(v) = value {
                out.push_str(&format!("  {field}: {}\n", quote(v)));
            }
        }
    }
    out
}

fn credential(access: Access, entry: &Entry) -> Result<Credential, String> {
    if let Some(at) = &entry.rotated_at {
        rfc3339::parse(at).ok_or_else(|| "rotated_at is not an RFC 3339 time".to_owned())?;
    }
    let value = match (access, entry) {
        (
            Access::Private,
            Entry {
                key_id: Some(id),
                secret: Some(secret),
                token: None,
                ..
            },
        ) => {
            check_value("key_id", id)?;
            if id.contains(':') {
                return Err("key_id contains ':'".into());
            }
            check_value("secret", secret.expose())?;
            let pair = format!("{id}:{}", secret.expose());
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        }
        (Access::Private, _) => {
            return Err("a private group needs key_id and secret (and no token)".into());
        }
        (
            Access::Public,
            Entry {
                token: Some(token),
                key_id: None,
                secret: None,
                ..
            },
        ) => {
            check_value("token", token.expose())?;
            format!("Token {}", token.expose())
        }
        (Access::Public, _) => {
            return Err("a public group needs token (and no key_id or secret)".into());
        }
    };
    let mut authorization =
        HeaderValue::try_from(value).map_err(|_| "not a valid header value".to_owned())?;
    authorization.set_sensitive(true);
    Ok(Credential {
        authorization,
        key_id: entry.key_id.clone(),
        rotated_at: entry.rotated_at.clone(),
    })
}

/// The message names the field, never the value.
fn check_value(field: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("{field} is empty"));
    }
    if value.len() > 1024 {
        return Err(format!("{field} is longer than 1024 characters"));
    }
    if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!("{field} contains control characters or spaces"));
    }
    if !value.is_ascii() {
        return Err(format!("{field} contains non-ASCII characters"));
    }
    Ok(())
}

/// Replaces quoted text that is not a plain field name: a YAML error must not echo a value.
fn redact_quoted(message: &str) -> String {
    let mut out = String::new();
    for (i, part) in message.split('`').enumerate() {
        if i % 2 == 1
            && !(part.len() <= 24 && part.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        {
            out.push_str("`<redacted>`");
        } else if i % 2 == 1 {
            out.push('`');
            out.push_str(part);
            out.push('`');
        } else {
            out.push_str(part);
        }
    }
    out
}

/// The live credentials. The secrets loader is the only writer; readers call [`Store::load`]
/// once per request and keep that snapshot for the whole request.
pub struct Store {
    current: ArcSwap<CredentialSet>,
}

impl Store {
    pub fn new(mut first: CredentialSet) -> Store {
        first.generation = 1;
        Store {
            current: ArcSwap::from_pointee(first),
        }
    }

    pub fn load(&self) -> Arc<CredentialSet> {
        self.current.load_full()
    }

    /// Publishes a validated set as the next generation; returns that generation.
    pub fn publish(&self, mut next: CredentialSet) -> u64 {
        next.generation = self.current.load().generation + 1;
        let generation = next.generation;
        self.current.store(Arc::new(next));
        generation
    }
}

/// Reads and validates the secrets file.
pub fn read(path: &Path, policy: &Policy) -> Result<(CredentialSet, Vec<String>), SecretsError> {
    parse(path, &read_text(path)?, policy)
}

/// Reads the secrets file's text (at most 1 MiB).
pub fn read_text(path: &Path) -> Result<String, SecretsError> {
    read_bounded(path).map_err(|e| match e {
        None => SecretsError::TooLarge {
            path: path.to_owned(),
        },
        Some(source) => SecretsError::Read {
            path: path.to_owned(),
            source,
        },
    })
}

pub fn digest(text: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    d.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

/// A short, non-reversible fingerprint of a key id, for logs (`sha256:1a2b3c4d`). Never
/// computed from a secret or a token.
pub fn fingerprint(key_id: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, key_id.as_bytes());
    let hex: String = d.as_ref()[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
        let entry = Entry {
            key_id: Some("id".into()),
            secret: Some(s.clone()),
            token: None,
            rotated_at: None,
        };
        assert!(!format!("{entry:?}").contains("hunter2"));
        let c = credential(Access::Private, &entry).unwrap();
        assert!(!format!("{c:?}").contains("aHVudGVyMg"), "{c:?}");
        assert!(c.authorization.is_sensitive());
    }

    #[test]
    fn basic_and_token_values() {
        let entry = Entry {
            key_id: Some("id".into()),
            secret: Some(Secret::new("pw")),
            token: None,
            rotated_at: None,
        };
        assert_eq!(
            credential(Access::Private, &entry).unwrap().authorization,
            "Basic aWQ6cHc="
        );
        let entry = Entry {
            key_id: None,
            secret: None,
            token: Some(Secret::new("tok")),
            rotated_at: None,
        };
        assert_eq!(
            credential(Access::Public, &entry).unwrap().authorization,
            "Token tok"
        );
        assert!(credential(Access::Private, &entry).is_err());
    }

    #[test]
    fn bad_values_are_refused_without_echo() {
        for (id, secret) in [
            ("a:b", "s"),
            ("a b", "s"),
            ("a", "s\u{7}"),
            ("", "s"),
            ("a", "s\n"),
        ] {
            let entry = Entry {
                key_id: Some(id.into()),
                secret: Some(Secret::new(secret)),
                token: None,
                rotated_at: None,
            };
            let err = credential(Access::Private, &entry).unwrap_err();
            assert!(!err.contains(secret) || secret == "s", "{err}");
        }
    }

    #[test]
    fn render_round_trips() {
        let mut map = BTreeMap::new();
        let private = Entry {
            key_id: Some("id-1".into()),
            secret: Some(Secret::new(r#"s"e\c#r:et*"#)),
            rotated_at: Some("2026-12-04T10:00:00Z".into()),
            ..Entry::default()
        };
        map.insert("consent-portal".to_owned(), private);
        map.insert(
            "web".to_owned(),
            Entry {
                token: Some(Secret::new("-tok&en")),
                ..Entry::default()
            },
        );
        let text = render(&map);
        let back = entries(Path::new("x"), &text).unwrap();
        assert_eq!(
            back["consent-portal"].secret.as_ref().unwrap().expose(),
            r#"s"e\c#r:et*"#
        );
        assert_eq!(
            back["consent-portal"].rotated_at.as_deref(),
            Some("2026-12-04T10:00:00Z")
        );
        assert_eq!(back["web"].token.as_ref().unwrap().expose(), "-tok&en");
        assert_eq!(back["web"].key_id, None);
    }

    #[test]
    fn redaction_keeps_field_names_only() {
        assert_eq!(
            redact_quoted("unknown field `tokn`, expected"),
            "unknown field `tokn`, expected"
        );
        assert_eq!(
            redact_quoted("unknown field `abc123secret`"),
            "unknown field `<redacted>`"
        );
    }
}
