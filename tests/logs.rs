//! Logs: one access line per request with the documented fields, and no secret, credential
//! or project token in them, even at trace level.

mod support;

use support::*;

fn forbidden() -> Vec<String> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    vec![
        SECRET.to_owned(),
        TOKEN.to_owned(),
        basic(),
        basic()["Basic ".len()..].to_owned(),
        b64.encode(TOKEN),
        "the-apps-own".to_owned(),
    ]
}

async fn traffic(proxy: &Proxy) {
    let c = client();
    let catalogs = data("catalogs?access_token=the-apps-own");
    exchange(
        c.get(proxy.url(&catalogs))
            .header("authorization", "Basic the-apps-own"),
    )
    .await;
    exchange(
        c.post(proxy.url(&track("customers")))
            .header("x-credgate-group", "web-tracking")
            .body("{}"),
    )
    .await;
    exchange(c.post(proxy.url(&data("customers/anonymize")))).await;
    exchange(c.get(proxy.url(&format!("/data/v2/projects/{OTHER_PROJECT}/catalogs")))).await;
}

#[tokio::test]
async fn no_secret_in_logs_at_trace_level() {
    let up = Upstream::tls().await;
    let dir = write_files(
        &config_yaml(&up.base_url())
            .replace("  connect_timeout", "  ca_file: ca.pem\n  connect_timeout"),
        &secrets_yaml(),
    );
    std::fs::write(dir.path().join("ca.pem"), up.ca_pem.as_ref().unwrap()).unwrap();
    let proxy = Proxy::start_in(dir, "trace");
    traffic(&proxy).await;
    assert_eq!(up.requests().len(), 2);
    let logs = proxy.logs();
    assert!(logs.lines().count() > 20, "trace logging is on: {logs}");
    for secret in forbidden() {
        assert!(!logs.contains(&secret), "the logs contain {secret:?}");
    }
}

#[tokio::test]
async fn access_log_lines_have_the_documented_fields_and_no_project_token() {
    let up = Upstream::http().await;
    let proxy = Proxy::start(&config_yaml(&up.base_url()), &secrets_yaml());
    traffic(&proxy).await;
    let lines = proxy.access_log();
    assert_eq!(lines.len(), 4, "{lines:?}");
    for line in &lines {
        for field in [
            "request_id",
            "method",
            "decision",
            "duration_ms",
            "bytes_in",
            "bytes_out",
            "code",
            "completed",
            "level",
            "timestamp",
        ] {
            assert!(!line[field].is_null(), "{field} missing in {line}");
        }
        let text = line.to_string();
        assert!(
            !text.contains(PROJECT) && !text.contains(OTHER_PROJECT),
            "a project token in {text}"
        );
    }
    let allowed = &lines[0];
    assert_eq!(allowed["decision"], "allow");
    assert_eq!(
        allowed["endpoint"],
        "GET /data/v2/projects/{project}/catalogs"
    );
    assert_eq!(allowed["group"], "consent-portal");
    assert_eq!(allowed["route"], 1);
    assert_eq!(allowed["upstream_status"], 200);
    assert_eq!(lines[1]["group"], "web-tracking");
    let denied = &lines[2];
    assert_eq!(denied["decision"], "deny");
    assert_eq!(denied["code"], "permission_denied");
    assert!(
        denied["reason"]
            .as_str()
            .unwrap()
            .contains("GDPR: Anonymize customer")
    );
    assert!(denied["upstream_status"].is_null());
    assert_eq!(lines[3]["code"], "project_mismatch");
    let text = proxy.logs();
    for secret in forbidden() {
        assert!(!text.contains(&secret), "the logs contain {secret:?}");
    }
}
