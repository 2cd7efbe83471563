//! Keeping the credentials current: a notify watch on the secrets file's **directory** (the
//! kubelet swaps a `..data` symlink, and a watch on the file itself dies silently), events
//! treated as hints and debounced, a poll as the backstop, and an immediate (rate-limited)
//! re-read when the upstream refuses a credential. Each re-read is validated before it is
//! swapped in; a bad one is refused and the last good set kept.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::{SecretsError, digest, fingerprint, parse, read_text};
use crate::metrics::Reload;
use crate::proxy::App;

/// Writers (the kubelet, an editor, `cp`) produce bursts of events: wait this long after the
/// first one, then read once.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// How long a file must stay the same between two reads to be taken.
const SETTLE: Duration = Duration::from_millis(50);

/// At most one re-read per this long is triggered by upstream 401/403 answers.
const AUTH_RELOAD_EVERY: Duration = Duration::from_secs(1);

/// Starts the watcher task. It runs until the process exits.
pub fn spawn(app: Arc<App>, path: PathBuf, poll_every: Duration) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let (tx, mut events) = mpsc::channel::<()>(1);
    // notify calls this on its own thread: keep it to a non-blocking hint.
    let watcher = notify::recommended_watcher(move |_: notify::Result<notify::Event>| {
        let _ = tx.try_send(());
    })
    .and_then(|mut w| w.watch(&dir, RecursiveMode::NonRecursive).map(|()| w));
    let watcher = match watcher {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, ?poll_every, "cannot watch the secrets directory: relying on the poll");
            None
        }
    };
    tokio::spawn(async move {
        let _watcher = watcher; // dropping it would end the watch
        let mut poll =
            tokio::time::interval_at(tokio::time::Instant::now() + poll_every, poll_every);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_auth: Option<Instant> = None;
        // Closes the gap between the first read at start and the watch being in place.
        reload(&app, &path, "watch started").await;
        loop {
            let why = tokio::select! {
                Some(()) = events.recv() => {
                    tokio::time::sleep(DEBOUNCE).await;
                    while events.try_recv().is_ok() {}
                    "file event"
                }
                () = app.auth_failures.notified() => {
                    if last_auth.is_some_and(|t| t.elapsed() < AUTH_RELOAD_EVERY) {
                        continue;
                    }
                    last_auth = Some(Instant::now());
                    let group = app.policy.groups.get(app.auth_failed_group.load(Ordering::Relaxed)).map_or("?", |g| g.name.as_str());
                    tracing::warn!(group, "the upstream answered 401/403 for a credential: re-reading the secrets file");
                    "upstream refused a credential"
                }
                _ = poll.tick() => "poll",
            };
            reload(&app, &path, why).await;
        }
    });
}

/// Re-reads the file; swaps in a valid, changed version.
pub async fn reload(app: &App, path: &Path, why: &str) {
    let text = match read_stable(path).await {
        Ok(t) => t,
        Err(e) => return rejected(app, why, &e),
    };
    if text.trim().is_empty() {
        // Truncated mid-write, most likely. To remove every group's credentials, write `{}`.
        let empty = SecretsError::Invalid {
            path: path.to_owned(),
            problems: vec!["the file is empty".into()],
        };
        return rejected(app, why, &empty);
    }
    let current = app.secrets.load();
    if digest(&text) == current.digest {
        app.metrics.reload(Reload::Unchanged);
        tracing::debug!(why, generation = current.generation, "secrets unchanged");
        return;
    }
    let (set, warnings) = match parse(path, &text, &app.policy) {
        Ok(s) => s,
        Err(e) => return rejected(app, why, &e),
    };
    let generation = app.secrets.publish(set);
    let current = app.secrets.load();
    app.metrics.reload(Reload::Applied);
    app.metrics.credentials(
        current.generation,
        current.groups.iter().map(Option::is_some),
    );
    let keys: Vec<String> = app
        .policy
        .groups
        .iter()
        .zip(&current.groups)
        .map(|(g, c)| match c {
            None => format!("{}=none", g.name),
            Some(c) => match &c.key_id {
                Some(id) => format!("{}={}", g.name, fingerprint(id)),
                None => format!("{}=token", g.name),
            },
        })
        .collect();
    tracing::info!(why, generation, keys = %keys.join(","), "secrets reloaded");
    for w in warnings {
        tracing::warn!(warning = %w, "secrets");
    }
}

/// Reads the file until two reads 50 ms apart agree, so a file being rewritten in place is
/// not taken mid-write (the poll and 401 triggers are not debounced by file events).
async fn read_stable(path: &Path) -> Result<String, SecretsError> {
    let mut text = read_text(path)?;
    for _ in 0..5 {
        tokio::time::sleep(SETTLE).await;
        let again = read_text(path)?;
        if again == text {
            return Ok(text);
        }
        text = again;
    }
    Ok(text) // still changing: validation decides, and the next event reads again
}

fn rejected(app: &App, why: &str, error: &SecretsError) {
    app.metrics.reload(Reload::Rejected);
    // SecretsError never carries a value of the file.
    tracing::warn!(why, reason = %error, generation = app.secrets.load().generation, "secrets update refused: keeping the last good credentials");
}
