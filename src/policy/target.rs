//! The canonical request-target check: the first step on the request path.
//!
//! credgate matches routes and endpoints on exactly the bytes it forwards, so any path whose
//! meaning the upstream could read differently (dot segments, encoded separators, `//`, `;`)
//! is refused, never rewritten. These are the classic holes of authorizing proxies (Envoy
//! CVE-2019-9901, CVE-2021-29492).

use std::borrow::Cow;

use http::{Method, Uri, Version};

use crate::error::ProxyError;

/// A request target that passed the check: an origin-form path and its raw query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target<'a> {
    pub path: &'a str,
    pub query: Option<&'a str>,
}

/// Checks that the request target is origin-form and unambiguous.
pub fn check<'a>(
    method: &Method,
    uri: &'a Uri,
    version: Version,
) -> Result<Target<'a>, ProxyError> {
    if method == Method::CONNECT {
        return Err(ProxyError::BadTarget("CONNECT is not supported"));
    }
    // HTTP/2 always carries :scheme and :authority, so only HTTP/1 can send the other forms.
    if version < Version::HTTP_2 && (uri.scheme().is_some() || uri.authority().is_some()) {
        return Err(ProxyError::BadTarget(
            "absolute-form and authority-form targets are not accepted; send a path",
        ));
    }
    let path = uri.path();
    if !path.starts_with('/') {
        return Err(ProxyError::BadTarget(
            "the target must be a path starting with '/'",
        ));
    }
    check_path(path)?;
    Ok(Target {
        path,
        query: uri.query(),
    })
}

fn check_path(path: &str) -> Result<(), ProxyError> {
    if path.contains("//") {
        return Err(ProxyError::BadTarget("empty path segment ('//')"));
    }
    if path.contains(';') {
        return Err(ProxyError::BadTarget("';' in the path"));
    }
    if path.contains('\\') {
        return Err(ProxyError::BadTarget("'\\' in the path"));
    }
    if path.split('/').any(|s| s == "." || s == "..") {
        return Err(ProxyError::BadTarget("dot segment in the path"));
    }
    let bytes = path.as_bytes();
    for (i, _) in path.match_indices('%') {
        let hex = bytes
            .get(i + 1..i + 3)
            .ok_or(ProxyError::BadTarget("truncated %-escape"))?;
        let decoded = std::str::from_utf8(hex)
            .ok()
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .ok_or(ProxyError::BadTarget("invalid %-escape in the path"))?;
        match decoded {
            b'/' | b'\\' | b'.' => {
                return Err(ProxyError::BadTarget(
                    "encoded '/', '\\' or '.' in the path",
                ));
            }
            0..=0x1f | 0x7f => return Err(ProxyError::BadTarget("encoded control character")),
            // `%72otate` is `rotate` to the upstream but not to the catalog: not canonical.
            b if b.is_ascii_alphanumeric() || b"-_~".contains(&b) => {
                return Err(ProxyError::BadTarget(
                    "%-encoded letter, digit or '-_~' in the path (not canonical)",
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The query without any `access_token` parameter, the rest byte-identical (`Ok(None)` when
/// nothing is left; borrowed when nothing was removed). Names are compared the way lenient
/// servers read them: %-decoded, `+`, `.` and space as `_`, a `[...]` suffix dropped, any
/// case. A `;`-separated pair that names it is ambiguous (some servers split on `;`) and
/// refused rather than rewritten.
pub fn strip_access_token(query: &str) -> Result<Option<Cow<'_, str>>, ProxyError> {
    fn name(pair: &str) -> &str {
        pair.split('=').next().unwrap_or(pair)
    }
    let mut removed = false;
    for pair in query.split('&') {
        if pair.contains(';') && pair.split(';').any(|p| is_access_token(name(p))) {
            return Err(ProxyError::BadTarget(
                "ambiguous query: access_token after ';'",
            ));
        }
        removed |= is_access_token(name(pair));
    }
    if !removed {
        return Ok(Some(Cow::Borrowed(query)));
    }
    let rest = query
        .split('&')
        .filter(|pair| !is_access_token(name(pair)))
        .collect::<Vec<_>>()
        .join("&");
    Ok((!rest.is_empty()).then_some(Cow::Owned(rest)))
}

/// Compares without allocating: this runs for every query parameter of every request.
fn is_access_token(name: &str) -> bool {
    let bytes = name.as_bytes();
    let mut decoded = DecodedBytes { bytes, at: 0 }
        .take_while(|&b| b != b'[')
        .map(|b| {
            if matches!(b, b'+' | b'.' | b' ') {
                b'_'
            } else {
                b.to_ascii_lowercase()
            }
        });
    b"access_token"
        .iter()
        .all(|&want| decoded.next() == Some(want))
        && decoded.next().is_none()
}

/// The bytes of a %-encoded string, decoded (an invalid escape stays as it is).
struct DecodedBytes<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Iterator for DecodedBytes<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.at)?;
        let hex = self
            .bytes
            .get(self.at + 1..self.at + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(decoded) if b == b'%' => {
                self.at += 3;
                Some(decoded)
            }
            _ => {
                self.at += 1;
                Some(b)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(uri: &str) -> Result<(), &'static str> {
        let uri: Uri = uri.parse().unwrap();
        check(&Method::GET, &uri, Version::HTTP_11)
            .map(|_| ())
            .map_err(|e| e.code())
    }

    #[test]
    fn canonical_paths_pass() {
        assert_eq!(target("/track/v2/projects/p/customers/events?x=1"), Ok(()));
        assert_eq!(target("/data/v2/projects/p/catalogs/c/items/a%20b"), Ok(()));
        assert_eq!(target("/"), Ok(()));
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        for bad in [
            "/track/../data/v2",
            "/track/./v2",
            "/track/v2/..",
            "/track//v2",
            "/track/v2;x=1/projects",
            "/track/%2e%2e/data",
            "/track%2Fv2",
            "/track%2fv2",
            "/track%5cv2",
            "/track/%2E/v2",
            "/track/%00",
            "/data/v2/projects/p/access-keys/%72otate",
            "/data/v2/projects/p/access%2Dkeys/revoke",
            "/track/%zz",
            "/track/%2",
            "http://evil.example/track",
            "*",
        ] {
            assert_eq!(target(bad), Err("bad_request_target"), "{bad}");
        }
        let uri: Uri = "example.com:443".parse().unwrap();
        assert!(check(&Method::CONNECT, &uri, Version::HTTP_11).is_err());
    }

    #[test]
    fn access_token_is_removed_and_the_rest_kept_byte_identical() {
        let strip = |q: &str| {
            strip_access_token(q)
                .unwrap()
                .map(std::borrow::Cow::into_owned)
        };
        assert_eq!(
            strip("a=1&access_token=t&b=%20x"),
            Some("a=1&b=%20x".into())
        );
        assert_eq!(strip("access_token=t"), None);
        assert_eq!(strip("ACCESS_TOKEN=t&access%5Ftoken=u&z"), Some("z".into()));
        assert_eq!(strip("access_token"), None);
        assert_eq!(
            strip("access.token=1&access+token=2&access%20token=3&access_token[]=4&w"),
            Some("w".into())
        );
        assert_eq!(strip("a=access_token&b"), Some("a=access_token&b".into()));
        assert_eq!(strip("x=%E2%9C%93&&y="), Some("x=%E2%9C%93&&y=".into()));
        assert_eq!(strip("x=1;y=2"), Some("x=1;y=2".into()));
        assert!(strip_access_token("x=1;access_token=t").is_err());
        assert_eq!(strip("%61ccess%5Ftoken=t&k"), Some("k".into()));
        for kept in [
            "access_tokens=1",
            "access_toke=1",
            "xaccess_token=1",
            "access=1",
            "%zzaccess_token=1",
        ] {
            assert_eq!(strip(kept), Some(kept.into()), "{kept}");
        }
    }
}
