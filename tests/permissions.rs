//! Bloomreach permissions over real sockets: body scopes, Consent, custom endpoints, audit.

mod support;

use support::*;

/// The seed's consent group holds nothing but `Consent: Get + Set`.
fn consent_only(base_url: &str) -> String {
    config_yaml(base_url).replace(
        r#"permissions: ["Consent: Get + Set", "GDPR: Export customer", "Catalogs: Get", "Imports: Allow trigger imports"]"#,
        r#"permissions: ["Consent: Get + Set"]"#,
    )
}

#[tokio::test]
async fn consent_group_may_track_and_read_consent_only() {
    let up = Upstream::http().await;
    let proxy = Proxy::start(&consent_only(&up.base_url()), &secrets_yaml());
    let c = client();

    let consent = r#"{"customer_ids":{"registered":"u1"},  "event_type":"consent","properties":{"action":"accept","category":"newsletter"}}"#;
    let rsp = c
        .post(proxy.url(&track("customers/events")))
        .body(consent)
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 200);
    let seen = up.last();
    assert_eq!(
        seen.body,
        consent.as_bytes(),
        "the same bytes are forwarded"
    );
    assert_eq!(
        seen.headers["content-length"],
        consent.len().to_string().as_str()
    );
    assert_eq!(seen.headers["authorization"], basic().as_str());

    let purchase = r#"{"customer_ids":{"registered":"u1"},"event_type":"purchase"}"#;
    let rsp = c
        .post(proxy.url(&track("customers/events")))
        .body(purchase)
        .send()
        .await
        .unwrap();
    let body = assert_refused(rsp, 403, "permission_denied").await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(r#"event_type "purchase" is not allowed"#),
        "{message}"
    );

    let attrs = r#"{"customer_ids":{"registered":"u1"},"attributes":[{"type":"consent","category":"newsletter","mode":"valid"}]}"#;
    let rsp = c
        .post(proxy.url(&data("customers/attributes")))
        .body(attrs)
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 200);
    assert_eq!(up.last().body, attrs.as_bytes());

    let property = r#"{"customer_ids":{"registered":"u1"},"attributes":[{"type":"consent","category":"n"},{"type":"property","property":"email"}]}"#;
    let rsp = c
        .post(proxy.url(&data("customers/attributes")))
        .body(property)
        .send()
        .await
        .unwrap();
    let body = assert_refused(rsp, 403, "permission_denied").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(r#"attribute property "email""#),
        "{body}"
    );

    assert_eq!(up.requests().len(), 2, "refused bodies were forwarded");
}

#[tokio::test]
async fn malformed_bodies_and_forbidden_batch_commands_are_refused_not_forwarded() {
    let up = Upstream::http().await;
    let config = consent_only(&up.base_url()).replace(
        r#"permissions: ["Events: Set", "Customer properties: Set"]"#,
        r#"permissions: ["Events: Set [view, consent]", "Customer properties: Set [email]"]"#,
    );
    let proxy = Proxy::start(&config, &secrets_yaml());
    let c = client();
    let tracking = |path: &str, body: &'static str| {
        c.post(proxy.url(&track(path)))
            .header("x-credgate-group", "web-tracking")
            .body(body)
    };

    for (path, body) in [
        ("customers/events", "{\"event_type\": \"view\""),
        ("customers/events", "[]"),
        (
            "customers/events",
            r#"{"event_type":"view","event_type":"purchase"}"#,
        ),
        ("customers", r#"{"properties":{"email":"a","phone":"b"}}"#),
        (
            "batch",
            r#"{"commands":[{"name":"customers/events","data":{"event_type":"view"}},{"name":"customers/events","data":{"event_type":"purchase"}}]}"#,
        ),
        (
            "batch",
            r#"{"commands":[{"name":"customers/anonymize","data":{}}]}"#,
        ),
    ] {
        let rsp = tracking(path, body).send().await.unwrap();
        assert_refused(rsp, 403, "permission_denied").await;
    }
    assert!(up.requests().is_empty(), "{:?}", up.requests());

    let ok = r#"{"commands":[{"name":"customers/events","data":{"event_type":"view"}},{"name":"customers","data":{"properties":{"email":"x"}}},{"name":"system/time"}]}"#;
    assert_eq!(tracking("batch", ok).send().await.unwrap().status(), 200);
    assert_eq!(up.last().body, ok.as_bytes());

    let rsp = c
        .post(proxy.url(&track("customers/events")))
        .header("x-credgate-group", "web-tracking")
        .header("content-encoding", "gzip")
        .body(&b"\x1f\x8b\x08\x00"[..])
        .send()
        .await
        .unwrap();
    let body = assert_refused(rsp, 403, "permission_denied").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("compressed"),
        "{body}"
    );
}

#[tokio::test]
async fn bodies_over_the_inspection_limit_get_413() {
    let up = Upstream::http().await;
    let proxy = Proxy::start(&consent_only(&up.base_url()), &secrets_yaml());
    let c = client();
    let big = format!(
        r#"{{"event_type":"consent","properties":{{"pad":"{}"}}}}"#,
        "x".repeat(2 << 20)
    );
    // Declared by Content-Length: refused before reading.
    let rsp = c
        .post(proxy.url(&track("customers/events")))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_refused(rsp, 413, "body_too_large").await;
    // Chunked, with no length: refused once the limit is crossed.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big
        .as_bytes()
        .chunks(64 << 10)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let rsp = c
        .post(proxy.url(&track("customers/events")))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_refused(rsp, 413, "body_too_large").await;
    assert!(up.requests().is_empty());

    // A smaller limit from the config applies.
    let config = format!(
        "limits: {{ inspect_body: 64KiB }}\n{}",
        consent_only(&up.base_url())
    );
    let proxy = Proxy::start(&config, &secrets_yaml());
    let medium = format!(
        r#"{{"event_type":"consent","properties":{{"pad":"{}"}}}}"#,
        "x".repeat(100 << 10)
    );
    let rsp = c
        .post(proxy.url(&track("customers/events")))
        .body(medium)
        .send()
        .await
        .unwrap();
    assert_refused(rsp, 413, "body_too_large").await;
}

#[tokio::test]
async fn unscoped_permissions_stream_the_body_without_inspecting_it() {
    let up = Upstream::http().await;
    let proxy = Proxy::start(&config_yaml(&up.base_url()), &secrets_yaml());
    // The public group holds unscoped Events: Set: the body cannot change the decision.
    let not_json = "this is not JSON, and that is Bloomreach's business";
    let rsp = client()
        .post(proxy.url(&track("customers/events")))
        .header("x-credgate-group", "web-tracking")
        .body(not_json)
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 200);
    assert_eq!(up.last().body, not_json.as_bytes());
}

#[tokio::test]
async fn custom_endpoints_add_to_the_catalog() {
    let up = Upstream::http().await;
    let config = format!(
        "endpoints:\n  - {{ method: POST, path: \"/data/v2/projects/{{project}}/new-thing\", permission: \"GDPR: Export customer\" }}\n  - {{ method: get, path: \"/webxp/bandits/reward\", permission: \"Analyses: Get\" }}\n{}",
        config_yaml(&up.base_url())
    );
    let proxy = Proxy::start(&config, &secrets_yaml());
    let c = client();
    assert_eq!(
        c.post(proxy.url(&data("new-thing")))
            .body("{}")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(up.last().target, data("new-thing"));
    let rsp = c
        .post(proxy.url(&format!("/data/v2/projects/{OTHER_PROJECT}/new-thing")))
        .send()
        .await
        .unwrap();
    assert_refused(rsp, 403, "project_mismatch").await;
    let rsp = c
        .get(proxy.url("/webxp/bandits/reward"))
        .send()
        .await
        .unwrap();
    let body = assert_refused(rsp, 403, "permission_denied").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("GDPR: Export analyses"),
        "{body}"
    );

    // A custom endpoint can never open a reserved one.
    let bad = format!(
        "endpoints:\n  - {{ method: POST, path: \"/data/v2/projects/{{project}}/access-keys/{{what}}\", permission: \"Events: Set\" }}\n{}",
        config_yaml(&up.base_url())
    );
    let dir = write_files(&bad, &secrets_yaml());
    let (code, _, err) = cli(&["check", "--config", "credgate.yaml"], dir.path());
    assert_eq!(code, 2);
    assert!(
        err.contains("endpoints[0].path: overlaps the reserved endpoint"),
        "{err}"
    );
}

#[tokio::test]
async fn audit_mode_forwards_refusals_and_logs_would_deny() {
    let up = Upstream::http().await;
    let config = consent_only(&up.base_url()).replace(
        "    access: private\n",
        "    access: private\n    mode: audit\n",
    );
    let proxy = Proxy::start(&config, &secrets_yaml());
    let c = client();
    let purchase = r#"{"event_type":"purchase"}"#;
    assert_eq!(
        c.post(proxy.url(&track("customers/events")))
            .body(purchase)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(up.last().body, purchase.as_bytes());
    assert_eq!(up.last().headers["authorization"], basic().as_str());
    assert_eq!(
        c.post(proxy.url(&data("customers/anonymize")))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Reserved endpoints stay refused.
    assert_refused(
        c.post(proxy.url(&data("access-keys/rotate")))
            .send()
            .await
            .unwrap(),
        403,
        "reserved_endpoint",
    )
    .await;
    assert_eq!(up.requests().len(), 2);

    let log = proxy.access_log();
    let decisions: Vec<(&str, &str)> = log
        .iter()
        .map(|l| (l["decision"].as_str().unwrap(), l["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        decisions,
        vec![
            ("would_deny", "permission_denied"),
            ("would_deny", "permission_denied"),
            ("deny", "reserved_endpoint")
        ]
    );
    let text = c
        .get(proxy.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let m = parse_metrics(&text);
    let count = |decision, code| {
        metric(
            &m,
            "credgate_requests_total",
            &[
                ("group", "consent-portal"),
                ("decision", decision),
                ("code", code),
            ],
        )
    };
    assert_eq!(count("would_deny", "permission_denied"), Some(2.0));
    assert_eq!(count("deny", "reserved_endpoint"), Some(1.0));
    assert_eq!(count("allow", ""), Some(0.0));
}

#[test]
fn explain_shows_which_body_item_decided() {
    let dir = write_files(&consent_only("https://api.exponea.com"), &secrets_yaml());
    std::fs::write(
        dir.path().join("ok.json"),
        r#"{"attributes":[{"type":"consent","category":"news"}]}"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("bad.json"), r#"{"attributes":[{"type":"consent","category":"news"},{"type":"property","property":"email"}]}"#).unwrap();
    let attributes = data("customers/attributes");
    let explain = |body: &str| {
        cli(
            &[
                "explain",
                "--config",
                "credgate.yaml",
                "POST",
                &attributes,
                "--body",
                body,
            ],
            dir.path(),
        )
    };
    let (code, out, _) = explain("ok.json");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(r#"body:     attribute consent "news": allowed by "Consent: Get""#),
        "{out}"
    );
    let (code, out, _) = explain("bad.json");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(r#"body:     attribute property "email": REFUSED, needs "Customer properties: Get [email]""#), "{out}");
    assert!(
        out.contains("decision: refused (permission_denied)"),
        "{out}"
    );
    let (code, _, err) = explain("missing.json");
    assert_eq!(code, 2, "{err}");
}

#[tokio::test]
async fn audit_mode_never_opens_reserved_or_unknown_endpoints_whatever_the_spelling() {
    let up = Upstream::http().await;
    let config = consent_only(&up.base_url()).replace(
        "    access: private\n",
        "    access: private\n    mode: audit\n",
    );
    let proxy = Proxy::start(&config, &secrets_yaml());
    let c = client();
    let base = format!("/data/v2/projects/{PROJECT}");
    for (path, status, code) in [
        (
            format!("{base}/access-keys/%72otate"),
            400,
            "bad_request_target",
        ),
        (
            format!("{base}/access%2Dkeys/revoke"),
            400,
            "bad_request_target",
        ),
        (
            format!("{base}/ACCESS-KEYS/Rotate"),
            403,
            "reserved_endpoint",
        ),
        (
            format!("{base}/access-keys/revoke/"),
            403,
            "reserved_endpoint",
        ),
        (format!("{base}/something-new"), 403, "unknown_endpoint"),
    ] {
        let rsp = c.post(proxy.url(&path)).send().await.unwrap();
        assert_refused(rsp, status, code).await;
    }
    assert!(up.requests().is_empty(), "{:?}", up.requests());
}

#[tokio::test]
async fn a_body_with_no_items_still_needs_the_category_permission() {
    let up = Upstream::http().await;
    let proxy = Proxy::start(&consent_only(&up.base_url()), &secrets_yaml());
    let c = client();
    // The consent group holds no Customer properties: Set; an update naming no property is
    // still a customer update (it identifies and merges customers).
    let rsp = c
        .post(proxy.url(&track("customers")))
        .body(r#"{"customer_ids":{"registered":"a","cookie":"b"}}"#)
        .send()
        .await
        .unwrap();
    assert_refused(rsp, 403, "permission_denied").await;
    let rsp = c
        .post(proxy.url(&data("customers/attributes")))
        .body(r#"{"attributes":[]}"#)
        .send()
        .await
        .unwrap();
    assert_refused(rsp, 403, "permission_denied").await;
    // Consent: Get reads consent attributes, not the event export.
    let rsp = c
        .post(proxy.url(&data("customers/events")))
        .body(r#"{"event_types":["consent"]}"#)
        .send()
        .await
        .unwrap();
    assert_refused(rsp, 403, "permission_denied").await;
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn method_and_url_override_headers_do_not_reach_the_upstream() {
    let up = Upstream::http().await;
    let proxy = Proxy::start(&config_yaml(&up.base_url()), &secrets_yaml());
    let rsp = client()
        .get(proxy.url(&data("catalogs")))
        .header("x-http-method-override", "DELETE")
        .header("x-http-method", "DELETE")
        .header("x-method-override", "DELETE")
        .header("x-original-url", "/data/v2/projects/x/customers/anonymize")
        .header("x-rewrite-url", "/data/v2/projects/x/customers/anonymize")
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 200);
    let seen = up.last();
    for name in [
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
        "x-original-url",
        "x-rewrite-url",
    ] {
        assert!(
            seen.headers.get(name).is_none(),
            "{name} reached the upstream"
        );
    }
}
