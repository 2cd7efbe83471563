//! The request path over real sockets: the real binary between a real client and a real
//! upstream that records what it received.

mod support;

use support::*;

#[tokio::test]
async fn private_group_gets_basic_credentials_and_the_apps_are_removed() {
    let up = Upstream::http().await;
    let proxy = Proxy::start(&config_yaml(&up.base_url()), &secrets_yaml());
    let rsp = client()
        .get(proxy.url(&data("catalogs")))
        .header("authorization", "Bearer the-apps-own")
        .header("x-app", "kept")
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 200);
    assert!(
        rsp.headers().get("credgate-error").is_none(),
        "an upstream cannot forge credgate-error"
    );
    assert_eq!(rsp.text().await.unwrap(), r#"{"success":true}"#);
    let seen = up.last();
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.target, data("catalogs"));
    let auth: Vec<_> = seen.headers.get_all("authorization").iter().collect();
    assert_eq!(
        auth,
        vec![basic().as_str()],
        "exactly one credential, the group's"
    );
    assert_eq!(seen.headers["x-app"], "kept");
    assert_eq!(seen.headers["host"], up.addr.to_string());
}

#[tokio::test]
async fn public_group_gets_its_token_and_routing_headers_do_not_leave() {
    let up = Upstream::http().await;
    let proxy = Proxy::start(&config_yaml(&up.base_url()), &secrets_yaml());
    let rsp = client()
        .post(proxy.url(&track("customers/events")))
        .header("x-credgate-group", "web-tracking")
        .header("x-credgate-debug", "1")
        .header("content-type", "application/json")
        .body(r#"{"customer_ids":{"registered":"a"},"event_type":"view"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 200);
    let seen = up.last();
    assert_eq!(seen.headers["authorization"], format!("Token {TOKEN}"));
    assert!(
        seen.headers
            .keys()
            .all(|k| !k.as_str().starts_with("x-credgate-")),
        "{:?}",
        seen.headers
    );
    assert_eq!(
        seen.body,
        br#"{"customer_ids":{"registered":"a"},"event_type":"view"}"#
    );
    assert_eq!(seen.headers["content-type"], "application/json");
}

#[tokio::test]
async fn hop_by_hop_and_proxy_credentials_are_stripped() {
    let up = Upstream::http().await;
    let proxy = Proxy::start(&config_yaml(&up.base_url()), &secrets_yaml());
    // Raw HTTP/1.1 so the client cannot tidy the headers up first.
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: example.test\r\nConnection: keep-alive, x-hop\r\nKeep-Alive: timeout=5\r\nx-hop: 1\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nAuthorization: Token stolen\r\nAuthorization: Basic c3RvbGVu\r\nx-keep: yes\r\n\r\n",
        data("catalogs")
    );
    let response = raw_exchange(proxy.addr, &request).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let seen = up.last();
    for gone in [
        "connection",
        "keep-alive",
        "x-hop",
        "proxy-authorization",
        "proxy-connection",
        "te",
    ] {
        assert!(
            seen.headers.get(gone).is_none(),
            "{gone} reached the upstream"
        );
    }
    let auth: Vec<_> = seen.headers.get_all("authorization").iter().collect();
    assert_eq!(auth, vec![basic().as_str()]);
    assert_eq!(seen.headers["x-keep"], "yes");
    assert_eq!(seen.headers["host"], up.addr.to_string());
}

#[tokio::test]
async fn access_token_is_removed_and_the_rest_of_the_query_is_byte_identical() {
    let up = Upstream::http().await;
    let proxy = Proxy::start(&config_yaml(&up.base_url()), &secrets_yaml());
    let query = "?b=%20x&access_token=evil&a=1&a=2&ACCESS%5FTOKEN=evil2&z=%E2%9C%93&empty=";
    let rsp = client()
        .get(proxy.url(&format!("{}{query}", data("catalogs"))))
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 200);
    assert_eq!(
        up.last().target,
        format!("{}?b=%20x&a=1&a=2&z=%E2%9C%93&empty=", data("catalogs"))
    );

    let lenient = "?access.token=a&access+token=b&access_token[]=c&Access_Token=d&keep=1";
    client()
        .get(proxy.url(&format!("{}{lenient}", data("catalogs"))))
        .send()
        .await
        .unwrap();
    assert_eq!(
        up.last().target,
        format!("{}?keep=1", data("catalogs")),
        "names lenient servers read as access_token"
    );
    let rsp = client()
        .get(proxy.url(&format!("{}?x=1;access_token=t", data("catalogs"))))
        .send()
        .await
        .unwrap();
    assert_refused(rsp, 400, "bad_request_target").await;

    client()
        .get(proxy.url(&format!("{}?access_token=x", data("catalogs"))))
        .send()
        .await
        .unwrap();
    assert_eq!(
        up.last().target,
        data("catalogs"),
        "an emptied query leaves no '?'"
    );
}

#[tokio::test]
async fn request_id_is_generated_or_kept_and_returned() {
    let up = Upstream::http().await;
    let proxy = Proxy::start(&config_yaml(&up.base_url()), &secrets_yaml());
    let rsp = client()
        .get(proxy.url(&data("catalogs")))
        .send()
        .await
        .unwrap();
    let id = rsp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 32);
    assert_eq!(up.last().headers["x-request-id"], id.as_str());
    assert_eq!(rsp.headers()["x-upstream-request-id"], "upstream-id");

    let rsp = client()
        .get(proxy.url(&data("catalogs")))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.headers()["x-request-id"], "abc-123");
    assert_eq!(up.last().headers["x-request-id"], "abc-123");

    let refused = client()
        .get(proxy.url("/nope"))
        .header("x-request-id", "r-1")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.headers()["x-request-id"], "r-1");
}

#[tokio::test]
async fn refusals_have_their_codes_and_never_reach_the_upstream() {
    let up = Upstream::http().await;
    let config = config_yaml(&up.base_url()).replace(
        "  - group: consent-portal\n",
        "  - group: consent-portal\n    match: { path_prefix: /data }\n",
    );
    let proxy = Proxy::start(&config, &secrets_yaml());
    let c = client();
    let tracking = |path: &str| {
        c.post(proxy.url(&track(path)))
            .header("x-credgate-group", "web-tracking")
    };

    assert_refused(
        c.get(proxy.url("/elsewhere")).send().await.unwrap(),
        403,
        "no_route",
    )
    .await;
    // Segment-aware: /tracker is not under /track/, so no route takes it.
    assert_refused(
        c.post(proxy.url("/tracker/v2"))
            .header("x-credgate-group", "web-tracking")
            .send()
            .await
            .unwrap(),
        403,
        "no_route",
    )
    .await;
    let body = assert_refused(
        c.post(proxy.url(&data("customers/anonymize")))
            .send()
            .await
            .unwrap(),
        403,
        "permission_denied",
    )
    .await;
    assert_eq!(body["error"]["group"], "consent-portal");
    assert_eq!(body["error"]["route"], "routes[1]");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("GDPR: Anonymize customer"),
        "{body}"
    );
    assert_refused(
        c.get(proxy.url(&format!("/data/v2/projects/{OTHER_PROJECT}/catalogs")))
            .send()
            .await
            .unwrap(),
        403,
        "project_mismatch",
    )
    .await;
    assert_refused(
        c.post(proxy.url(&data("access-keys/rotate")))
            .send()
            .await
            .unwrap(),
        403,
        "reserved_endpoint",
    )
    .await;
    assert_refused(
        c.post(proxy.url(&data("access-keys/revoke")))
            .send()
            .await
            .unwrap(),
        403,
        "reserved_endpoint",
    )
    .await;
    assert_refused(
        c.get(proxy.url(&data("no-such-thing")))
            .send()
            .await
            .unwrap(),
        403,
        "unknown_endpoint",
    )
    .await;
    assert_refused(
        c.delete(proxy.url(&data("catalogs"))).send().await.unwrap(),
        403,
        "unknown_endpoint",
    )
    .await;
    // The public group holds no data permission: its route cannot reach a data endpoint.
    assert_refused(
        tracking("customers/export").send().await.unwrap(),
        403,
        "unknown_endpoint",
    )
    .await;
    let rsp = c
        .post(proxy.url(&format!("/track/v2/projects/{PROJECT}/customers/events")))
        .send()
        .await
        .unwrap();
    assert_refused(rsp, 403, "no_route").await;
    assert!(
        up.requests().is_empty(),
        "refused requests reached the upstream: {:?}",
        up.requests()
    );
}

#[tokio::test]
async fn ambiguous_targets_are_refused_byte_for_byte() {
    let up = Upstream::http().await;
    let proxy = Proxy::start(&config_yaml(&up.base_url()), &secrets_yaml());
    let catalogs = data("catalogs");
    for target in [
        format!("/data/v2/projects/{PROJECT}/x/../catalogs"),
        format!("/data/v2/projects/{PROJECT}/./catalogs"),
        format!("/data/v2/projects/{PROJECT}//catalogs"),
        format!("{catalogs};jsessionid=1"),
        format!("/data/v2/projects/{PROJECT}%2Fcatalogs"),
        format!("/data/v2/projects/{PROJECT}/%2e%2e/catalogs"),
        format!("/data/v2/projects/{PROJECT}\\catalogs"),
        format!("http://127.0.0.1:1{catalogs}"),
        "*".to_owned(),
    ] {
        let response = raw_exchange(
            proxy.addr,
            &format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n"),
        )
        .await;
        assert!(response.starts_with("HTTP/1.1 400"), "{target}: {response}");
        assert!(
            response.contains("credgate-error: bad_request_target")
                || response.contains("HTTP/1.1 400 Bad Request\r\n"),
            "{target}: {response}"
        );
    }
    let response = raw_exchange(
        proxy.addr,
        "CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n",
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn a_group_without_credentials_gets_503_and_others_still_work() {
    let up = Upstream::http().await;
    let secrets = format!("consent-portal:\n  key_id: {KEY_ID}\n  secret: {SECRET}\n");
    let proxy = Proxy::start(&config_yaml(&up.base_url()), &secrets);
    let c = client();
    let rsp = c
        .post(proxy.url(&track("customers")))
        .header("x-credgate-group", "web-tracking")
        .body("{}")
        .send()
        .await
        .unwrap();
    let body = assert_refused(rsp, 503, "credentials_unavailable").await;
    assert_eq!(body["error"]["group"], "web-tracking");
    assert!(up.requests().is_empty());
    assert_eq!(
        c.get(proxy.url(&data("catalogs")))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn upstream_failures_are_502_and_504() {
    let closed = closed_address();
    let proxy = Proxy::start(&config_yaml(&format!("http://{closed}")), &secrets_yaml());
    let rsp = client()
        .get(proxy.url(&data("catalogs")))
        .send()
        .await
        .unwrap();
    assert_refused(rsp, 502, "upstream_unreachable").await;

    let up = Upstream::http().await;
    let config =
        config_yaml(&up.base_url()).replace("response_timeout: 2s", "response_timeout: 300ms");
    let proxy = Proxy::start(&config, &secrets_yaml());
    let rsp = client()
        .get(proxy.url(&data("catalogs")))
        .header("x-test-delay-ms", "3000")
        .send()
        .await
        .unwrap();
    assert_refused(rsp, 504, "upstream_timeout").await;
    let rsp = client()
        .get(proxy.url(&data("catalogs")))
        .header("x-test-status", "429")
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 429, "upstream statuses pass through");
    assert!(rsp.headers().get("credgate-error").is_none());
}

#[tokio::test]
async fn tls_upstream_with_a_custom_ca_speaks_h2() {
    let up = Upstream::tls().await;
    let dir = write_files(
        &config_yaml(&up.base_url())
            .replace("  connect_timeout", "  ca_file: ca.pem\n  connect_timeout"),
        &secrets_yaml(),
    );
    std::fs::write(dir.path().join("ca.pem"), up.ca_pem.as_ref().unwrap()).unwrap();
    let proxy = Proxy::start_in(dir, "info");
    let rsp = client()
        .get(proxy.url(&data("catalogs")))
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 200);
    let seen = up.last();
    assert_eq!(seen.version, http::Version::HTTP_2, "ALPN should pick h2");
    assert_eq!(seen.headers["authorization"], basic().as_str());

    // Without the CA the certificate is not trusted: a TLS failure is upstream_unreachable.
    let proxy = Proxy::start(&config_yaml(&up.base_url()), &secrets_yaml());
    let rsp = client()
        .get(proxy.url(&data("catalogs")))
        .send()
        .await
        .unwrap();
    let body = assert_refused(rsp, 502, "upstream_unreachable").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("certificate"),
        "{body}"
    );
}

#[tokio::test]
async fn base_url_path_prefix_is_kept() {
    let up = Upstream::http().await;
    let proxy = Proxy::start(
        &config_yaml(&format!("{}/api/bloomreach/", up.base_url())),
        &secrets_yaml(),
    );
    let rsp = client()
        .get(proxy.url(&format!("{}?x=1", data("catalogs"))))
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 200);
    assert_eq!(
        up.last().target,
        format!("/api/bloomreach{}?x=1", data("catalogs"))
    );
}

#[tokio::test]
async fn h2c_prior_knowledge_clients_are_served() {
    let up = Upstream::http().await;
    let proxy = Proxy::start(&config_yaml(&up.base_url()), &secrets_yaml());
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let rsp = h2
        .get(proxy.url(&data("catalogs")))
        .header("authorization", "Token nope")
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.version(), http::Version::HTTP_2);
    assert_eq!(rsp.status(), 200);
    assert_eq!(up.last().headers["authorization"], basic().as_str());
    let refused = h2.get(proxy.url("/elsewhere")).send().await.unwrap();
    assert_refused(refused, 403, "unknown_endpoint").await;
}

/// Sends raw bytes and reads the whole response (the proxy closes after `Connection: close`).
pub async fn raw_exchange(addr: std::net::SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = request.replacen("\r\n", "\r\nConnection: close\r\n", 1);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut out),
    )
    .await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn a_refused_upload_still_gets_its_refusal() {
    let up = Upstream::http().await;
    let secrets = format!("consent-portal:\n  key_id: {KEY_ID}\n  secret: {SECRET}\n");
    let proxy = Proxy::start(&config_yaml(&up.base_url()), &secrets);
    let c = client();
    let big = vec![b'x'; 8 << 20];
    for _ in 0..3 {
        let rsp = c
            .post(proxy.url(&data("customers/anonymize")))
            .body(big.clone())
            .send()
            .await
            .unwrap();
        assert_refused(rsp, 403, "permission_denied").await;
        let rsp = c
            .post(proxy.url(&track("customers")))
            .header("x-credgate-group", "web-tracking")
            .body(big.clone())
            .send()
            .await
            .unwrap();
        assert_refused(rsp, 503, "credentials_unavailable").await;
    }
    assert!(up.requests().is_empty());
}
