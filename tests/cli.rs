//! The commands' exit codes and messages: `check`, `explain`, and `run` refusing to start.

mod support;

use support::*;

const UP: &str = "https://api.exponea.com";

fn check(config: &str, secrets: &str) -> (i32, String, String) {
    let dir = write_files(config, secrets);
    cli(&["check", "--config", "credgate.yaml"], dir.path())
}

#[test]
fn check_prints_the_effective_policy() {
    let (code, out, err) = check(&config_yaml(UP), &secrets_yaml());
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!(
            "group consent-portal (private access, project {PROJECT}, credentials loaded)"
        )),
        "{out}"
    );
    assert!(out.contains("permission \"Consent: Get + Set\""), "{out}");
    assert!(
        out.contains(
            "POST /data/v2/projects/{project}/customers/export-one  (\"GDPR: Export customer\")"
        ),
        "{out}"
    );
    assert!(out.contains("group web-tracking (public access"), "{out}");
    assert!(
        out.contains("POST /track/v2/projects/{project}/customers/events  (\"Events: Set\" for the body's event_type"),
        "{out}"
    );
    assert!(out.contains("routes[0] -> web-tracking  when path_prefix /track/, methods POST, header x-credgate-group: web-tracking"), "{out}");
    assert!(
        out.contains("routes[1] -> consent-portal  when everything"),
        "{out}"
    );
    assert!(!out.contains(SECRET) && !out.contains(TOKEN));
}

#[test]
fn check_warns_about_shadowed_routes_unreached_groups_and_missing_credentials() {
    let config = config_yaml(UP).replace("routes:\n", "routes:\n  - group: consent-portal\n");
    let secrets = format!(
        "consent-portal:\n  key_id: {KEY_ID}\n  secret: {SECRET}\nghost:\n  token: {TOKEN}\n"
    );
    let (code, out, _) = check(&config, &secrets);
    assert_eq!(code, 0);
    assert!(
        out.contains("warning: routes[1] can never match: routes[0] matches everything it does"),
        "{out}"
    );
    assert!(out.contains("warning: routes[2] can never match"), "{out}");
    assert!(
        out.contains("warning: group \"web-tracking\" is reached by no route"),
        "{out}"
    );
    assert!(
        out.contains("warning: group \"web-tracking\" has no entry"),
        "{out}"
    );
    assert!(
        out.contains("warning: secrets entry \"ghost\" names no configured group"),
        "{out}"
    );
}

#[test]
fn config_errors_are_all_reported_with_file_line_column_and_key() {
    let config = config_yaml(UP)
        .replace("  - group: web-tracking\n", "  - group: web-trackin\n")
        .replace("\"Events: Set\"", "\"Event: Set\"")
        .replace("access: private", "access: privat")
        .replace(
            "    permissions: [\"Event: Set\"",
            "    permissions: [\"GDPR: Export customer\", \"Event: Set\"",
        );
    let (code, out, err) = check(&config, &secrets_yaml());
    assert_eq!(code, 2, "{out}");
    assert!(err.contains("credgate.yaml:"), "{err}");
    assert!(
        err.contains(
            r#"routes[0].group: unknown group "web-trackin" (did you mean "web-tracking"?)"#
        ),
        "{err}"
    );
    assert!(err.contains(r#"groups.web-tracking.permissions[1]: unknown permission "Event: Set" (did you mean "Events: Set"?)"#), "{err}");
    assert!(
        err.contains(
            r#"groups.web-tracking.permissions[0]: "GDPR: Export customer" needs private access"#
        ),
        "{err}"
    );
    assert!(
        err.contains(r#"groups.consent-portal.access: "privat" is not private or public"#),
        "{err}"
    );
    assert_eq!(err.lines().count(), 4, "one line per problem: {err}");
    // Lines point into the file: the route's group is on the line that names it.
    let line = config
        .lines()
        .position(|l| l.contains("web-trackin\n") || l.ends_with("group: web-trackin"))
        .unwrap()
        + 1;
    assert!(
        err.contains(&format!("credgate.yaml:{line}:")),
        "line {line}: {err}"
    );
}

#[test]
fn unknown_keys_and_yaml_errors_name_the_place() {
    let (code, _, err) = check(
        &config_yaml(UP).replace("listen:", "listne:"),
        &secrets_yaml(),
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("credgate.yaml:1:1: unknown field `listne`"),
        "{err}"
    );
    let (code, _, err) = check(
        &config_yaml(UP).replace("connect_timeout: 2s", "connect_timeout: 2 seconds"),
        &secrets_yaml(),
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("upstream.connect_timeout: \"2 seconds\" is not a duration"),
        "{err}"
    );
    let zero = config_yaml(UP).replace("response_timeout: 2s", "response_timeout: 0s");
    let (code, _, err) = check(
        &format!("secrets_poll_interval: 0ms\n{zero}"),
        &secrets_yaml(),
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("secrets_poll_interval: \"0ms\" must be more than zero"),
        "{err}"
    );
    assert!(
        err.contains("upstream.response_timeout: \"0s\" must be more than zero"),
        "{err}"
    );
    let (code, _, err) = check("groups: [\n", "");
    assert_eq!(code, 2);
    assert!(err.contains("credgate.yaml:"), "{err}");
}

#[test]
fn remote_listen_needs_explicit_consent() {
    let config = config_yaml(UP).replace("listen: 127.0.0.1:0", "listen: 0.0.0.0:8080");
    let (code, _, err) = check(&config, &secrets_yaml());
    assert_eq!(code, 2);
    assert!(
        err.contains("listen: 0.0.0.0:8080 is not a loopback address"),
        "{err}"
    );
    let (code, out, _) = check(
        &format!("allow_remote_clients: true\n{config}"),
        &secrets_yaml(),
    );
    assert_eq!(code, 0);
    assert!(
        out.contains("warning: listen 0.0.0.0:8080 is not loopback"),
        "{out}"
    );
}

#[test]
fn bad_secrets_fail_check_without_echoing_values() {
    for (secrets, reason) in [
        (
            format!("consent-portal:\n  key_id: a:b{SECRET}\n  secret: {SECRET}\n"),
            "key_id contains ':'",
        ),
        (
            format!("consent-portal:\n  key_id: {KEY_ID}\n  secret: \"{SECRET}\\u0007\"\n"),
            "secret contains control characters",
        ),
        (
            format!("consent-portal:\n  key_id: {KEY_ID}\n"),
            "needs key_id and secret",
        ),
        (
            format!("web-tracking:\n  key_id: {KEY_ID}\n  secret: {SECRET}\n"),
            "needs token",
        ),
        (
            format!("consent-portal:\n  key_id: {KEY_ID}\n  secret: {SECRET}\n  {SECRET}: x\n"),
            "unknown field `<redacted>`",
        ),
        (
            format!("consent-portal:\n  key_id: {KEY_ID}\n  secret: [{SECRET}\n"),
            "secrets.yaml:",
        ),
    ] {
        let (code, out, err) = check(&config_yaml(UP), &secrets);
        assert_eq!(code, 2, "{secrets}: {out}");
        assert!(err.contains(reason), "{reason}: {err}");
        assert!(
            !err.contains(SECRET) && !out.contains(SECRET),
            "a secret was echoed: {err}"
        );
    }
}

#[test]
fn explain_says_what_would_happen_and_exits_0_1_2() {
    let dir = write_files(&config_yaml(UP), &secrets_yaml());
    let explain = |args: &[&str]| {
        let mut all = vec!["explain", "--config", "credgate.yaml"];
        all.extend_from_slice(args);
        cli(&all, dir.path())
    };
    let track = format!("/track/v2/projects/{PROJECT}/customers/events");
    let (code, out, _) = explain(&["POST", &track, "-H", "x-credgate-group: web-tracking"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("route:    routes[0]"), "{out}");
    assert!(
        out.contains("group:    web-tracking (public access"),
        "{out}"
    );
    assert!(
        out.contains("requires: \"Events: Set\" for the body's event_type"),
        "{out}"
    );
    assert!(out.contains("decision: allowed"), "{out}");

    let (code, out, _) = explain(&["POST", &track]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("route:    routes[1]")
            && out.contains("decision: refused (permission_denied)"),
        "{out}"
    );

    let (code, out, _) = explain(&[
        "POST",
        &format!("/data/v2/projects/{PROJECT}/access-keys/rotate"),
    ]);
    assert_eq!(code, 1);
    assert!(out.contains("reserved_endpoint"), "{out}");
    let (code, out, _) = explain(&["GET", "/data/v2/projects/x/../catalogs"]);
    assert_eq!(code, 1);
    assert!(out.contains("bad_request_target"), "{out}");

    let (code, _, err) = explain(&["POST", &track, "-H", "no colon"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, _) = explain(&["POST"]);
    assert_eq!(code, 2);
    let (code, _, _) = cli(
        &["explain", "--config", "missing.yaml", "GET", "/"],
        dir.path(),
    );
    assert_eq!(code, 2);
}

#[test]
fn run_refuses_to_start_on_bad_config_or_secrets_and_a_busy_port() {
    let dir = write_files(
        &config_yaml(UP).replace("permissions: [\"Events", "permissions: [\"Evnts"),
        &secrets_yaml(),
    );
    let (code, _, err) = cli(&["run", "--config", "credgate.yaml"], dir.path());
    assert_eq!(code, 2);
    assert!(
        err.contains("groups.web-tracking.permissions[0]") && err.contains("\"level\":\"ERROR\""),
        "{err}"
    );

    let dir = write_files(&config_yaml(UP), "consent-portal: {key_id: a}\n");
    let (code, _, err) = cli(&["run", "--config", "credgate.yaml"], dir.path());
    assert_eq!(code, 2, "{err}");

    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = config_yaml(UP).replace(
        "listen: 127.0.0.1:0",
        &format!("listen: {}", busy.local_addr().unwrap()),
    );
    let dir = write_files(&config, &secrets_yaml());
    let (code, _, err) = cli(&["run", "--config", "credgate.yaml"], dir.path());
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot listen on"), "{err}");
}

#[test]
fn config_comes_from_the_environment_too() {
    let dir = write_files(&config_yaml(UP), &secrets_yaml());
    let out = std::process::Command::new(bin())
        .arg("check")
        .env("CREDGATE_CONFIG", dir.path().join("credgate.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn the_example_config_is_valid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let (code, out, err) = cli(&["check", "--config", "config/credgate.example.yaml"], root);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("group consent-portal") && out.contains("group web-tracking"),
        "{out}"
    );
}
