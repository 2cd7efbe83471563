//! Serde structs mirroring the YAML exactly, with no logic. Unknown keys are errors.
//! `Spanned` keeps each value's line and column for the validation messages.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Visitor};
use serde_saphyr::Spanned;

pub type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: Option<S<String>>,
    pub admin_listen: Option<S<String>>,
    pub allow_remote_clients: Option<bool>,
    pub upstream: S<Upstream>,
    pub project_token: Option<S<String>>,
    pub secrets_file: S<String>,
    pub secrets_poll_interval: Option<S<Scalar>>,
    pub groups: BTreeMap<String, S<Group>>,
    #[serde(default)]
    pub routes: Vec<S<Route>>,
    #[serde(default)]
    pub endpoints: Vec<S<Endpoint>>,
    pub limits: Option<Limits>,
    pub shutdown: Option<Shutdown>,
    pub log: Option<Log>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    pub base_url: S<String>,
    pub ca_file: Option<S<String>>,
    pub connect_timeout: Option<S<Scalar>>,
    pub response_timeout: Option<S<Scalar>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub access: S<String>,
    pub project_token: Option<S<String>>,
    #[serde(default)]
    pub permissions: Vec<S<String>>,
    pub mode: Option<S<String>>,
}

/// A custom endpoint: one the built-in catalog lacks.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    pub method: S<String>,
    pub path: S<String>,
    pub permission: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub group: S<String>,
    #[serde(default, rename = "match")]
    pub matcher: Option<Match>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    pub path_prefix: Option<S<String>>,
    pub methods: Option<Vec<S<String>>>,
    pub headers: Option<BTreeMap<String, S<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub inspect_body: Option<S<Scalar>>,
    pub max_header_bytes: Option<S<Scalar>>,
    pub header_read_timeout: Option<S<Scalar>>,
    pub idle_timeout: Option<S<Scalar>>,
    pub request_timeout: Option<S<Scalar>>,
    pub max_connections: Option<S<Scalar>>,
    pub h2_max_streams: Option<S<Scalar>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shutdown {
    pub drain_timeout: Option<S<Scalar>>,
    pub delay: Option<S<Scalar>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    pub allowed: Option<S<String>>,
}

/// A scalar kept as text: `5s`, `1MiB` or a bare number, parsed during validation.
#[derive(Debug, Clone)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or a string such as 5s or 1MiB")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_owned()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}
