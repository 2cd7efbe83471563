//! `credgate rotate` and `credgate revoke` against a fake Bloomreach that implements them.

mod support;

use std::os::unix::fs::PermissionsExt;

use support::*;

fn run(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let mut all = args.to_vec();
    all.extend_from_slice(&["--config", "credgate.yaml"]);
    cli(&all, dir)
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn rotate_writes_a_complete_private_secrets_file_and_prints_no_secret() {
    let up = Upstream::bloomreach(Accounts::new(KEY_ID, SECRET, TOKEN)).await;
    let dir = write_files(&config_yaml(&up.base_url()), &secrets_yaml());
    let d = dir.path().to_owned();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        run(
            &d,
            &["rotate", "--group", "consent-portal", "--write", "new.yaml"],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    let new_secret = up.accounts().secrets[1].clone();
    assert_eq!(
        up.accounts().secrets[0],
        SECRET,
        "the old secret stays valid"
    );
    assert!(!out.contains(&new_secret) && !err.contains(&new_secret) && !out.contains(SECRET));
    assert!(
        out.contains("key id sha256:") && out.contains("24 hours"),
        "{out}"
    );
    let written = dir.path().join("new.yaml");
    assert_eq!(mode(&written), 0o600);
    let text = std::fs::read_to_string(&written).unwrap();
    assert!(
        text.contains(&new_secret) && text.contains(KEY_ID) && text.contains(TOKEN),
        "{text}"
    );
    assert!(text.contains("rotated_at: \"20"), "{text}");
    let rotate = up.requests().pop().unwrap();
    assert_eq!(rotate.method, "POST");
    assert_eq!(
        rotate.target,
        format!("/data/v2/projects/{PROJECT}/access-keys/rotate")
    );
    assert_eq!(rotate.headers["authorization"], basic().as_str());

    // The written file works: a proxy using it authenticates with the new secret.
    std::fs::copy(&written, dir.path().join("secrets.yaml")).unwrap();
    let proxy = Proxy::start_in(dir, "info");
    let rsp = client()
        .get(proxy.url(&format!("/data/v2/projects/{PROJECT}/catalogs")))
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 200);
    assert!(up.last().headers["authorization"] != basic().as_str());

    // A second rotation within 24 hours of rotated_at needs --force...
    let d = proxy.dir.path().to_owned();
    let (code, _, err) = tokio::task::spawn_blocking(move || {
        run(
            &d,
            &[
                "rotate",
                "--group",
                "consent-portal",
                "--write",
                "again.yaml",
            ],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("less than 24 hours ago") && err.contains("--force"),
        "{err}"
    );
    assert!(!proxy.dir.path().join("again.yaml").exists());
}

#[tokio::test]
async fn rotating_twice_with_the_old_secret_shows_bloomreachs_refusal() {
    let up = Upstream::bloomreach(Accounts::new(KEY_ID, SECRET, TOKEN)).await;
    let dir = write_files(&config_yaml(&up.base_url()), &secrets_yaml());
    let d = dir.path().to_owned();
    let (code, _, _) = tokio::task::spawn_blocking(move || {
        run(
            &d,
            &["rotate", "--group", "consent-portal", "--write", "new.yaml"],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 0);
    // secrets.yaml still holds the old secret: Bloomreach refuses a second rotation with it.
    let d = dir.path().to_owned();
    let (code, _, err) = tokio::task::spawn_blocking(move || {
        run(
            &d,
            &[
                "rotate",
                "--group",
                "consent-portal",
                "--write",
                "new2.yaml",
                "--force",
            ],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("HTTP 400") && err.contains("Rotating the old key twice"),
        "{err}"
    );
    assert!(!dir.path().join("new2.yaml").exists());
}

#[tokio::test]
async fn a_response_without_the_secret_is_saved_privately_and_exits_1() {
    let mut accounts = Accounts::new(KEY_ID, SECRET, TOKEN);
    accounts.secret_field = "api_secret".into();
    let up = Upstream::bloomreach(accounts).await;
    let dir = write_files(&config_yaml(&up.base_url()), &secrets_yaml());
    let d = dir.path().to_owned();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        run(
            &d,
            &["rotate", "--group", "consent-portal", "--write", "new.yaml"],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 1, "{out}{err}");
    let raw = dir.path().join("new.yaml.rotate-response.json");
    assert!(
        err.contains("new.yaml.rotate-response.json (mode 0600)"),
        "{err}"
    );
    assert_eq!(mode(&raw), 0o600);
    assert!(!dir.path().join("new.yaml").exists());
    assert!(!err.contains(&up.accounts().secrets[1]));

    // --secret-field points at it.
    up.accounts().secrets = vec![SECRET.to_owned()];
    let d = dir.path().to_owned();
    let (code, _, err) = tokio::task::spawn_blocking(move || {
        run(
            &d,
            &[
                "rotate",
                "--group",
                "consent-portal",
                "--write",
                "new.yaml",
                "--secret-field",
                "/api_secret",
            ],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(
        std::fs::read_to_string(dir.path().join("new.yaml"))
            .unwrap()
            .contains(&up.accounts().secrets[1])
    );
}

#[test]
fn rotate_usage_errors_exit_2() {
    let dir = write_files(&config_yaml("http://127.0.0.1:9"), &secrets_yaml());
    for args in [
        &["rotate", "--group", "web-tracking", "--write", "x.yaml"][..],
        &["rotate", "--group", "nope", "--write", "x.yaml"],
        &["rotate", "--group", "consent-portal"],
        &[
            "rotate",
            "--group",
            "consent-portal",
            "--write",
            "x.yaml",
            "--secret-field",
            "secret",
        ],
        &["revoke", "--group", "nope"],
    ] {
        let (code, _, err) = run(dir.path(), args);
        assert_eq!(code, 2, "{args:?}: {err}");
    }
    let (_, _, err) = run(
        dir.path(),
        &["rotate", "--group", "web-tracking", "--write", "x.yaml"],
    );
    assert!(err.contains("public access"), "{err}");
    // An unreachable upstream is a failure of the call, not of usage.
    let (code, _, err) = run(dir.path(), &["revoke", "--group", "web-tracking", "--yes"]);
    assert_eq!(code, 1, "{err}");
}

#[tokio::test]
async fn revoke_is_a_dry_run_without_yes() {
    let up = Upstream::bloomreach(Accounts::new(KEY_ID, SECRET, TOKEN)).await;
    let dir = write_files(&config_yaml(&up.base_url()), &secrets_yaml());
    let d = dir.path().to_owned();
    let (code, out, _) =
        tokio::task::spawn_blocking(move || run(&d, &["revoke", "--group", "web-tracking"]))
            .await
            .unwrap();
    assert_eq!(code, 0);
    assert!(
        out.contains("would revoke the public API token of group \"web-tracking\"")
            && out.contains("--yes"),
        "{out}"
    );
    assert!(up.requests().is_empty(), "a dry run called Bloomreach");

    let d = dir.path().to_owned();
    let (code, out, _) = tokio::task::spawn_blocking(move || {
        run(&d, &["revoke", "--group", "web-tracking", "--yes"])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("remove the entry \"web-tracking\""), "{out}");
    assert!(up.accounts().tokens.is_empty());
    let call = up.last();
    assert_eq!(
        call.target,
        format!("/data/v2/projects/{PROJECT}/access-keys/revoke")
    );
    assert_eq!(
        call.headers["authorization"],
        format!("Token {TOKEN}").as_str()
    );
    assert!(!out.contains(TOKEN));

    // Revoked already: Bloomreach refuses, credgate shows it and exits 1.
    let d = dir.path().to_owned();
    let (code, _, err) = tokio::task::spawn_blocking(move || {
        run(&d, &["revoke", "--group", "web-tracking", "--yes"])
    })
    .await
    .unwrap();
    assert_eq!(code, 1);
    assert!(
        err.contains("HTTP 401") && err.contains("Access key not found"),
        "{err}"
    );
}
