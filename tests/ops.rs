//! Operating credgate as a sidecar: admin endpoints, metrics after known traffic, access-log
//! sampling, graceful drain on SIGTERM, `--version`.

mod support;

use std::time::{Duration, Instant};

use support::*;

async fn get_json(url: String) -> (u16, serde_json::Value) {
    let rsp = client().get(url).send().await.unwrap();
    let status = rsp.status().as_u16();
    (
        status,
        serde_json::from_str(&rsp.text().await.unwrap()).unwrap(),
    )
}

#[tokio::test]
async fn health_and_readiness() {
    let up = Upstream::http().await;
    let proxy = Proxy::start(&config_yaml(&up.base_url()), &secrets_yaml());
    let (status, body) = get_json(proxy.admin_url("/healthz")).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body) = get_json(proxy.admin_url("/readyz")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ready"], true);
    assert_eq!(body["secrets_generation"], 1);
    assert_eq!(body["groups"]["consent-portal"]["credentials"], "loaded");
    assert_eq!(body["groups"]["web-tracking"]["access"], "public");
    let rsp = client().get(proxy.admin_url("/nope")).send().await.unwrap();
    assert_eq!(rsp.status(), 404);

    // A routed group without credentials: not ready, and the body says which.
    let secrets = format!("consent-portal:\n  key_id: {KEY_ID}\n  secret: {SECRET}\n");
    let proxy = Proxy::start(&config_yaml(&up.base_url()), &secrets);
    let (status, body) = get_json(proxy.admin_url("/readyz")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ready"], false);
    assert_eq!(
        body["missing_credentials"],
        serde_json::json!(["web-tracking"])
    );
    assert_eq!(body["groups"]["web-tracking"]["credentials"], "missing");
    let (status, _) = get_json(proxy.admin_url("/healthz")).await;
    assert_eq!(status, 200, "alive even when not ready");
}

#[tokio::test]
async fn metrics_count_known_traffic() {
    let up = Upstream::http().await;
    let secrets = format!("consent-portal:\n  key_id: {KEY_ID}\n  secret: {SECRET}\n");
    let config = config_yaml(&up.base_url()).replace(
        "  - group: consent-portal\n",
        "  - group: consent-portal\n    match: { path_prefix: /data }\n",
    );
    let proxy = Proxy::start(&config, &secrets);
    let c = client();
    for _ in 0..2 {
        assert_eq!(
            c.get(proxy.url(&data("catalogs")))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    assert_eq!(
        c.get(proxy.url(&data("catalogs")))
            .header("x-test-status", "503")
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    assert_eq!(
        c.post(proxy.url(&data("customers/anonymize")))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        c.get(proxy.url("/elsewhere"))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    let track = format!("/track/v2/projects/{PROJECT}/customers");
    assert_eq!(
        c.post(proxy.url(&track))
            .header("x-credgate-group", "web-tracking")
            .send()
            .await
            .unwrap()
            .status(),
        503
    );

    let rsp = c.get(proxy.admin_url("/metrics")).send().await.unwrap();
    assert!(
        rsp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = rsp.text().await.unwrap();
    let m = parse_metrics(&text);
    let requests = |group, decision, code| {
        metric(
            &m,
            "credgate_requests_total",
            &[("group", group), ("decision", decision), ("code", code)],
        )
    };
    assert_eq!(requests("consent-portal", "allow", ""), Some(3.0), "{text}");
    assert_eq!(
        requests("consent-portal", "deny", "permission_denied"),
        Some(1.0)
    );
    assert_eq!(requests("none", "deny", "no_route"), Some(1.0));
    assert_eq!(
        requests("web-tracking", "error", "credentials_unavailable"),
        Some(1.0)
    );
    assert_eq!(requests("web-tracking", "allow", ""), Some(0.0));
    let upstream = |class| {
        metric(
            &m,
            "credgate_upstream_responses_total",
            &[("group", "consent-portal"), ("status_class", class)],
        )
    };
    assert_eq!(upstream("2xx"), Some(2.0), "{text}");
    assert_eq!(upstream("5xx"), Some(1.0));
    assert_eq!(
        metric(
            &m,
            "credgate_request_duration_seconds_count",
            &[("group", "consent-portal")]
        ),
        Some(3.0)
    );
    assert_eq!(metric(&m, "credgate_secret_generation", &[]), Some(1.0));
    assert_eq!(
        metric(
            &m,
            "credgate_group_credentials_loaded",
            &[("group", "consent-portal")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &m,
            "credgate_group_credentials_loaded",
            &[("group", "web-tracking")]
        ),
        Some(0.0)
    );
    assert!(
        metric(
            &m,
            "credgate_secret_reloads_total",
            &[("result", "applied")]
        )
        .is_some()
    );

    let allowed_labels = ["group", "decision", "code", "status_class", "result", "le"];
    for s in &m {
        for (k, v) in &s.labels {
            assert!(
                allowed_labels.contains(&k.as_str()),
                "unbounded label {k} in {s:?}"
            );
            assert!(
                !v.contains(PROJECT) && !v.contains('/'),
                "a path or token in {s:?}"
            );
        }
    }
    for secret in [SECRET, TOKEN, KEY_ID, PROJECT] {
        assert!(!text.contains(secret));
    }
}

#[tokio::test]
async fn access_log_sampling_keeps_denials() {
    let up = Upstream::http().await;
    let config = format!(
        "log: {{ allowed: errors }}\n{}",
        config_yaml(&up.base_url())
    );
    let proxy = Proxy::start(&config, &secrets_yaml());
    let c = client();
    exchange(c.get(proxy.url(&data("catalogs")))).await;
    exchange(
        c.get(proxy.url(&data("catalogs")))
            .header("x-test-status", "500"),
    )
    .await;
    exchange(c.post(proxy.url(&data("customers/anonymize")))).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(proxy.access("decision"), ["allow", "deny"]);
    assert_eq!(proxy.access("upstream_status"), ["500", ""]);

    let config = format!("log: {{ allowed: none }}\n{}", config_yaml(&up.base_url()));
    let proxy = Proxy::start(&config, &secrets_yaml());
    exchange(c.get(proxy.url(&data("catalogs")))).await;
    exchange(c.post(proxy.url(&data("customers/anonymize")))).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(proxy.access("decision"), ["deny"]);

    // credgate's own errors are not sampled away either.
    let config = format!(
        "log: {{ allowed: none }}\n{}",
        config_yaml(&format!("http://{}", closed_address()))
    );
    let proxy = Proxy::start(&config, &secrets_yaml());
    exchange(c.get(proxy.url(&data("catalogs")))).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(proxy.access("code"), ["upstream_unreachable"]);
}

#[tokio::test]
async fn access_log_counts_bytes_both_ways() {
    let up = Upstream::http().await;
    let proxy = Proxy::start(&config_yaml(&up.base_url()), &secrets_yaml());
    let path = format!("/data/v1/projects/{PROJECT}/imports/1/start");
    let rsp = client()
        .post(proxy.url(&path))
        .header("x-test-download", "100000")
        .body(vec![b'a'; 12345])
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.bytes().await.unwrap().len(), 100_000);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let line = proxy.access_log().pop().unwrap();
    assert_eq!(line["bytes_in"], 12345);
    assert_eq!(line["bytes_out"], 100_000);
    assert_eq!(line["completed"], true);
    assert_eq!(line["upstream_status"], 200);
    assert!(line["duration_ms"].as_f64().unwrap() > 0.0);
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_and_refuses_new_connections() {
    let up = Upstream::http().await;
    let config = format!(
        "shutdown: {{ drain_timeout: 10s, delay: 500ms }}\n{}",
        config_yaml(&up.base_url())
    );
    let mut proxy = Proxy::start(&config, &secrets_yaml());
    let url = proxy.url(&data("catalogs"));
    let slow = tokio::spawn(async move {
        client()
            .get(url)
            .header("x-test-delay-ms", "1500")
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    while up.requests().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let signalled = Instant::now();
    proxy.signal("TERM");
    tokio::time::sleep(Duration::from_millis(100)).await;
    // During the delay: not ready, but still serving.
    let (status, body) = get_json(proxy.admin_url("/readyz")).await;
    assert_eq!(
        (status, body["draining"].as_bool()),
        (503, Some(true)),
        "{body}"
    );
    let fresh = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    assert_eq!(
        fresh
            .get(proxy.url(&data("catalogs")))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // After the delay: new connections are refused while the slow request finishes.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let refused = std::net::TcpStream::connect(proxy.addr);
    assert!(
        refused.is_err(),
        "a new connection was accepted while draining"
    );
    assert_eq!(
        slow.await.unwrap().unwrap(),
        200,
        "the in-flight request completed"
    );
    let code = proxy.wait(Duration::from_secs(5));
    assert_eq!(code, Some(0), "{}", proxy.logs());
    assert!(signalled.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_second_signal_exits_at_once_and_the_drain_is_bounded() {
    let up = Upstream::http().await;
    let config = format!(
        "shutdown: {{ drain_timeout: 30s }}\n{}",
        config_yaml(&up.base_url())
    );
    let mut proxy = Proxy::start(&config, &secrets_yaml());
    let url = proxy.url(&data("catalogs"));
    let slow = tokio::spawn(async move {
        client()
            .get(url)
            .header("x-test-delay-ms", "20000")
            .send()
            .await
            .is_err()
    });
    while up.requests().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    proxy.signal("TERM");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        proxy.wait(Duration::from_millis(100)),
        None,
        "still draining"
    );
    let second = Instant::now();
    proxy.signal("INT");
    assert_eq!(proxy.wait(Duration::from_secs(2)), Some(1));
    assert!(second.elapsed() < Duration::from_secs(2));
    assert!(slow.await.unwrap(), "the abandoned request saw an error");

    let config = format!(
        "shutdown: {{ drain_timeout: 300ms }}\n{}",
        config_yaml(&up.base_url())
    );
    let mut proxy = Proxy::start(&config, &secrets_yaml());
    let url = proxy.url(&data("catalogs"));
    let _slow = tokio::spawn(async move {
        client()
            .get(url)
            .header("x-test-delay-ms", "20000")
            .send()
            .await
            .is_err()
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let signalled = Instant::now();
    proxy.signal("TERM");
    assert_eq!(proxy.wait(Duration::from_secs(3)), Some(0));
    assert!(
        signalled.elapsed() < Duration::from_secs(2),
        "the drain timeout bounds the wait"
    );
}

#[test]
fn version_flag_prints_the_version() {
    let out = std::process::Command::new(bin())
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("credgate {}", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test]
async fn startup_line_names_version_addresses_groups_and_generation() {
    let up = Upstream::http().await;
    let proxy = Proxy::start(&config_yaml(&up.base_url()), &secrets_yaml());
    let logs = proxy.logs();
    let line: serde_json::Value = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message"] == "listening")
        .unwrap();
    assert_eq!(line["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(line["listen"], proxy.addr.to_string());
    assert_eq!(line["admin_listen"], proxy.admin.to_string());
    assert_eq!(line["groups"], "consent-portal=private,web-tracking=public");
    assert_eq!(line["secrets_generation"], 1);
}
