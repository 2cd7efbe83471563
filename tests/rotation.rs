//! Secret rotation and revocation with the real binary: a Secret volume updated the way the
//! kubelet does it, plain files rewritten or renamed, invalid updates, revoked groups, the
//! upstream's 401 as a hint, the poll backstop, and a load test through 50 rotations.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use support::*;

fn catalogs() -> String {
    format!("/data/v2/projects/{PROJECT}/catalogs")
}

fn secret(n: u32) -> String {
    format!("secret{n:04}zyxwvutsrqponmlkjihgfedcba9876543210zyxwvutsrqponmlkjihg")
}

/// A proxy whose secrets file is `secrets/secrets.yaml` in a kubelet-style volume.
fn proxy_on_volume(base_url: &str, first: &str, extra: &str) -> (Proxy, SecretVolume) {
    let dir = write_files(
        &format!(
            "{extra}{}",
            config_yaml(base_url).replace(
                "secrets_file: secrets.yaml",
                "secrets_file: secrets/secrets.yaml"
            )
        ),
        "",
    );
    let volume = SecretVolume::create(&dir.path().join("secrets"), first);
    (Proxy::start_in(dir, "info"), volume)
}

fn saw(up: &Upstream, auth: &str) -> bool {
    up.requests()
        .iter()
        .any(|r| r.headers.get("authorization").is_some_and(|v| v == auth))
}

#[tokio::test]
async fn kubelet_volume_updates_are_picked_up_within_2s_ten_times() {
    let up = Upstream::http().await;
    let (proxy, mut volume) = proxy_on_volume(&up.base_url(), &secrets_with(&secret(0)), "");
    let c = client();
    assert_eq!(
        c.get(proxy.url(&catalogs())).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        up.last().headers["authorization"],
        basic_with(&secret(0)).as_str()
    );

    // An in-flight request keeps the credential it started with.
    let url = proxy.url(&catalogs());
    let slow = tokio::spawn(async move {
        client()
            .get(url)
            .header("x-test-delay-ms", "1000")
            .send()
            .await
            .unwrap()
            .status()
    });
    within(Duration::from_secs(2), || up.requests().len() == 2)
        .await
        .unwrap();

    for n in 1..=10 {
        volume.update(&secrets_with(&secret(n)));
        let want = basic_with(&secret(n));
        let took = within(Duration::from_secs(2), || {
            let c = c.clone();
            let url = proxy.url(&catalogs());
            tokio::spawn(async move { c.get(url).send().await.map(|r| r.status()) });
            saw(&up, &want)
        })
        .await;
        assert!(
            took.is_some(),
            "rotation {n} not picked up within 2 s:\n{}",
            proxy.logs()
        );
    }
    assert_eq!(slow.await.unwrap(), 200);
    assert_eq!(
        up.requests()[1].headers["authorization"],
        basic_with(&secret(0)).as_str()
    );
    let reloads: Vec<serde_json::Value> = proxy
        .logs()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "secrets reloaded")
        .collect();
    assert_eq!(reloads.len(), 10);
    assert_eq!(reloads[9]["generation"], 11);
    assert!(
        reloads[0]["keys"]
            .as_str()
            .unwrap()
            .starts_with("consent-portal=sha256:"),
        "{}",
        reloads[0]
    );
    assert!(!proxy.logs().contains(&secret(3)));
}

/// Basic credentials of the test key id with `secret`.
fn basic_with(secret: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{KEY_ID}:{secret}"))
    )
}

async fn metrics(proxy: &Proxy) -> Vec<Sample> {
    parse_metrics(
        &client()
            .get(proxy.admin_url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
}

#[tokio::test]
async fn invalid_updates_are_refused_and_the_last_good_set_kept() {
    let up = Upstream::http().await;
    let (proxy, mut volume) = proxy_on_volume(&up.base_url(), &secrets_with(&secret(0)), "");
    let c = client();
    for bad in [
        format!(
            "consent-portal:\n  key_id: {KEY_ID}\n  secret: [{}\n",
            secret(1)
        ),
        format!(
            "consent-portal:\n  key_id: {KEY_ID}\n  secret: \"{}\\u0000\"\n",
            secret(1)
        ),
        format!("consent-portal:\n  key_id: {KEY_ID}\n"),
    ] {
        volume.update(&bad);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            c.get(proxy.url(&catalogs())).send().await.unwrap().status(),
            200
        );
        assert_eq!(
            up.last().headers["authorization"],
            basic_with(&secret(0)).as_str(),
            "a bad update was applied"
        );
    }
    let m = metrics(&proxy).await;
    // At least one refusal per bad version (a read racing a write can refuse it twice).
    let rejected = metric(
        &m,
        "credgate_secret_reloads_total",
        &[("result", "rejected")],
    )
    .unwrap();
    assert!(rejected >= 3.0, "{rejected}");
    assert_eq!(
        metric(
            &m,
            "credgate_secret_reloads_total",
            &[("result", "applied")]
        ),
        Some(0.0)
    );
    assert_eq!(metric(&m, "credgate_secret_generation", &[]), Some(1.0));
    let logs = proxy.logs();
    assert!(
        logs.matches("secrets update refused").count() >= 3,
        "{logs}"
    );
    assert!(!logs.contains(&secret(1)), "a refused value was logged");

    volume.update(&secrets_with(&secret(2)));
    within(Duration::from_secs(2), || {
        logs_contain(&proxy, "secrets reloaded")
    })
    .await
    .unwrap();
    c.get(proxy.url(&catalogs())).send().await.unwrap();
    assert_eq!(
        up.last().headers["authorization"],
        basic_with(&secret(2)).as_str()
    );
}

fn logs_contain(proxy: &Proxy, text: &str) -> bool {
    proxy.logs().contains(text)
}

#[tokio::test]
async fn a_revoked_group_fails_closed_and_comes_back() {
    let up = Upstream::http().await;
    let (proxy, mut volume) = proxy_on_volume(&up.base_url(), &secrets_with(&secret(0)), "");
    let c = client();
    let track = format!("/track/v2/projects/{PROJECT}/customers");
    let tracking = || {
        c.post(proxy.url(&track))
            .header("x-credgate-group", "web-tracking")
            .body("{}")
    };
    assert_eq!(tracking().send().await.unwrap().status(), 200);

    volume.update(&format!(
        "consent-portal:\n  key_id: {KEY_ID}\n  secret: {}\n",
        secret(0)
    ));
    within(Duration::from_secs(2), || {
        logs_contain(&proxy, "secrets reloaded")
    })
    .await
    .unwrap();
    assert_refused(
        tracking().send().await.unwrap(),
        503,
        "credentials_unavailable",
    )
    .await;
    assert_eq!(
        c.get(proxy.url(&catalogs())).send().await.unwrap().status(),
        200,
        "other groups are untouched"
    );
    let ready = c.get(proxy.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let m = metrics(&proxy).await;
    assert_eq!(
        metric(
            &m,
            "credgate_group_credentials_loaded",
            &[("group", "web-tracking")]
        ),
        Some(0.0)
    );
    assert_eq!(
        metric(
            &m,
            "credgate_group_credentials_loaded",
            &[("group", "consent-portal")]
        ),
        Some(1.0)
    );

    volume.update(&secrets_with(&secret(0)));
    within(Duration::from_secs(2), || {
        proxy.logs().matches("secrets reloaded").count() == 2
    })
    .await
    .unwrap();
    assert_eq!(tracking().send().await.unwrap().status(), 200);
    assert_eq!(
        up.last().headers["authorization"],
        format!("Token {TOKEN}").as_str()
    );
    assert_eq!(
        c.get(proxy.admin_url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn plain_files_rewritten_in_place_or_renamed_are_picked_up() {
    let up = Upstream::http().await;
    let proxy = Proxy::start(&config_yaml(&up.base_url()), &secrets_with(&secret(0)));
    let file = proxy.dir.path().join("secrets.yaml");
    let c = client();

    // In place, first half-written (refused), then complete.
    let full = secrets_with(&secret(1));
    std::fs::write(&file, &full[..full.find("secret:").unwrap()]).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.get(proxy.url(&catalogs())).send().await.unwrap();
    assert_eq!(
        up.last().headers["authorization"],
        basic_with(&secret(0)).as_str()
    );
    std::fs::write(&file, &full).unwrap();
    let want = basic_with(&secret(1));
    assert!(
        poll_until_used(&c, &proxy, &up, &want).await,
        "in-place rewrite not picked up"
    );

    // Replaced by rename, as editors and `kubectl cp` do.
    let tmp = proxy.dir.path().join(".secrets.yaml.tmp");
    std::fs::write(&tmp, secrets_with(&secret(2))).unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    assert!(
        poll_until_used(&c, &proxy, &up, &basic_with(&secret(2))).await,
        "rename not picked up"
    );
}

async fn poll_until_used(c: &reqwest::Client, proxy: &Proxy, up: &Upstream, auth: &str) -> bool {
    for _ in 0..40 {
        c.get(proxy.url(&catalogs())).send().await.unwrap();
        if up.last().headers["authorization"] == auth {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// The secrets file is a symlink into a folder credgate does not watch, so only the
/// upstream's refusal (or the poll) can make it re-read.
fn unwatched(base_url: &str, first: &str, poll: &str) -> (Proxy, std::path::PathBuf) {
    let dir = write_files(
        &format!(
            "secrets_poll_interval: {poll}\n{}",
            config_yaml(base_url).replace(
                "secrets_file: secrets.yaml",
                "secrets_file: link/secrets.yaml"
            )
        ),
        "",
    );
    let real = dir.path().join("real");
    std::fs::create_dir(&real).unwrap();
    std::fs::write(real.join("secrets.yaml"), first).unwrap();
    std::fs::create_dir(dir.path().join("link")).unwrap();
    std::os::unix::fs::symlink(
        real.join("secrets.yaml"),
        dir.path().join("link/secrets.yaml"),
    )
    .unwrap();
    let proxy = Proxy::start_in(dir, "info");
    // Let the re-read made when the watch starts pass, so only the path under test can act.
    std::thread::sleep(Duration::from_millis(300));
    (proxy, real.join("secrets.yaml"))
}

/// Whether a "secrets reloaded" line gives `why` as its cause.
fn reloaded_because(proxy: &Proxy, why: &str) -> bool {
    proxy
        .logs()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .any(|v| v["message"] == "secrets reloaded" && v["why"] == why)
}

#[tokio::test]
async fn an_upstream_401_makes_credgate_re_read_at_once() {
    let up = Upstream::bloomreach(Accounts::new(KEY_ID, &secret(0), TOKEN)).await;
    let (proxy, real) = unwatched(&up.base_url(), &secrets_with(&secret(0)), "1h");
    let c = client();
    assert_eq!(
        c.get(proxy.url(&catalogs())).send().await.unwrap().status(),
        200
    );
    // Rotated in the Bloomreach UI and the old secret revoked; the file catches up.
    up.accounts().secrets = vec![secret(1)];
    std::fs::write(&real, secrets_with(&secret(1))).unwrap();
    assert_eq!(
        c.get(proxy.url(&catalogs())).send().await.unwrap().status(),
        401
    );
    within(Duration::from_secs(2), || {
        reloaded_because(&proxy, "upstream refused a credential")
    })
    .await
    .unwrap_or_else(|| panic!("the 401 did not cause the re-read:\n{}", proxy.logs()));
    assert!(logs_contain(&proxy, "answered 401/403 for a credential"));
    assert_eq!(
        c.get(proxy.url(&catalogs())).send().await.unwrap().status(),
        200
    );
    let m = metrics(&proxy).await;
    assert_eq!(
        metric(
            &m,
            "credgate_upstream_auth_failures_total",
            &[("group", "consent-portal")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn the_poll_is_a_backstop_for_missed_events() {
    let up = Upstream::http().await;
    let (proxy, real) = unwatched(&up.base_url(), &secrets_with(&secret(0)), "300ms");
    std::fs::write(&real, secrets_with(&secret(1))).unwrap();
    let c = client();
    assert!(
        poll_until_used(&c, &proxy, &up, &basic_with(&secret(1))).await,
        "the poll did not pick it up"
    );
    assert!(reloaded_because(&proxy, "poll"), "{}", proxy.logs());
    tokio::time::sleep(Duration::from_millis(700)).await;
    let m = metrics(&proxy).await;
    assert!(
        metric(
            &m,
            "credgate_secret_reloads_total",
            &[("result", "unchanged")]
        )
        .unwrap()
            >= 1.0
    );
}

/// Many concurrent requests through 50 rotations, with an upstream that accepts the old and
/// the new secret during the overlap: no request may fail, and every one must carry exactly
/// one valid credential (the fake Bloomreach answers 400 or 401 otherwise).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_rotations_under_load_drop_nothing() {
    const ROTATIONS: u32 = 50;
    const WORKERS: usize = 8;
    let up = Arc::new(Upstream::bloomreach(Accounts::new(KEY_ID, &secret(0), TOKEN)).await);
    let (proxy, mut volume) = proxy_on_volume(
        &up.base_url(),
        &secrets_with(&secret(0)),
        "log: { allowed: errors }\n",
    );
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (stop, ok, failed, url) = (
                stop.clone(),
                ok.clone(),
                failed.clone(),
                proxy.url(&catalogs()),
            );
            tokio::spawn(async move {
                let c = client();
                while !stop.load(Ordering::Relaxed) {
                    match c.get(&url).send().await {
                        Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();

    let mut pickup = Vec::new();
    for n in 1..=ROTATIONS {
        // Bloomreach accepts the previous and the new secret during the grace period.
        up.accounts().secrets = vec![secret(n - 1), secret(n)];
        volume.update(&secrets_with(&secret(n)));
        let want = basic_with(&secret(n));
        let from = std::time::Instant::now();
        let took = within(Duration::from_secs(2), || {
            up.requests()
                .iter()
                .rev()
                .take(64)
                .any(|r| r.headers["authorization"] == want.as_str())
        })
        .await;
        pickup.push(took.unwrap_or_else(|| panic!("rotation {n} not used within 2 s")));
        assert!(from.elapsed() < Duration::from_secs(3));
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    let received = up.requests();
    assert_eq!(failed, 0, "{failed} requests failed during rotations");
    assert!(
        received
            .iter()
            .all(|r| r.headers.get_all("authorization").iter().count() == 1)
    );
    pickup.sort();
    eprintln!(
        "load test: {ok} requests, {} rotations, {failed} failed; file update -> first request with the new secret: min {:?}, median {:?}, max {:?}",
        ROTATIONS,
        pickup[0],
        pickup[pickup.len() / 2],
        pickup[pickup.len() - 1]
    );
    assert!(
        ok > u64::from(ROTATIONS) * 10,
        "too little load to mean anything: {ok}"
    );
}

#[tokio::test]
async fn only_a_403_saying_invalid_secret_counts_as_a_refused_credential() {
    let up = Upstream::http().await;
    let (proxy, real) = unwatched(&up.base_url(), &secrets_with(&secret(0)), "1h");
    let c = client();
    let rsp = c
        .get(proxy.url(&catalogs()))
        .header("x-test-status", "403")
        .header(
            "x-test-body",
            r#"{"success":false,"errors":{"_global":["No permission to export customer"]}}"#,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 403);
    assert!(
        rsp.text().await.unwrap().contains("No permission"),
        "the body passes through whole"
    );
    std::fs::write(&real, secrets_with(&secret(1))).unwrap();
    let rsp = c
        .get(proxy.url(&catalogs()))
        .header("x-test-status", "403")
        .header(
            "x-test-body",
            r#"{"success":false,"error":"invalid secret"}"#,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        rsp.text().await.unwrap(),
        r#"{"success":false,"error":"invalid secret"}"#
    );
    assert!(
        poll_until_used(&c, &proxy, &up, &basic_with(&secret(1))).await,
        "no re-read after 'invalid secret'"
    );
    assert!(reloaded_because(&proxy, "upstream refused a credential"));
    let m = metrics(&proxy).await;
    assert_eq!(
        metric(
            &m,
            "credgate_upstream_auth_failures_total",
            &[("group", "consent-portal")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn an_emptied_file_is_refused() {
    let up = Upstream::http().await;
    let proxy = Proxy::start(&config_yaml(&up.base_url()), &secrets_with(&secret(0)));
    std::fs::write(proxy.dir.path().join("secrets.yaml"), "").unwrap();
    within(Duration::from_secs(2), || {
        logs_contain(&proxy, "the file is empty")
    })
    .await
    .unwrap_or_else(|| panic!("no refusal logged:\n{}", proxy.logs()));
    let c = client();
    assert_eq!(
        c.get(proxy.url(&catalogs())).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        up.last().headers["authorization"],
        basic_with(&secret(0)).as_str()
    );
}
