//! Hot reload: the policy's directories are watched (notify, debounced), and SIGHUP and
//! `POST /-/reload` ask for a reload too. A changed policy (by content hash) goes through the
//! same load and validation as `check`, is diffed against the running one and handed to the agent
//! loop, which swaps it in between passes ([`Agent::apply_policy`]); cycles in flight keep the
//! deadlines and hooks they started with.
//!
//! Directories, not files, are watched: editors and `mv` replace the file (a new inode), and a
//! Kubernetes ConfigMap swaps a `..data` symlink beside it; `Access` events are ignored (reading
//! the policy must not trigger a reload of it). A bad edit changes nothing: the diagnostics (with
//! file:line:column) are logged and the reload metrics say so. Settings that cannot change at run
//! time (listen address, state directory, snapshot prefix, token file, clusters, `[ha]`) are refused by
//! name while the old policy keeps running.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use super::executor::ClusterConn;
use super::http::ReloadRequest;
use super::metrics::Metrics;
use super::{Agent, Event};
use crate::config::{self, Policy};

/// Quiet time after the last file event before the policy is read (an editor's save is several
/// events; a burst of edits is read once it settles).
const DEBOUNCE: Duration = Duration::from_millis(100);

/// How long `POST /-/reload` waits for the agent to put a reloaded policy in effect.
const APPLY_WAIT: Duration = Duration::from_secs(30);

/// What [`Reloader::check`] did, and, when it handed a policy over, when that is in effect.
pub type Checked = (String, Option<oneshot::Receiver<()>>);

/// How many symbolic links a chain may hold before [`watched_dirs`] stops following it (Linux's
/// own bound, `MAXSYMLINKS`, is 40).
const MAX_LINK_HOPS: usize = 40;

/// The directories to watch for the main file and every included file: each one's directory as
/// the policy names it (not resolved, so a ConfigMap's `..data` swap happens inside a watched
/// one), the directory of every symbolic link on the way to the file (a link re-pointed is an
/// event there), and the directory of the file the path resolves to (an edit of the target is an
/// event there, wherever it lives). Computed again after every event, so a link re-pointed into
/// a third directory is followed.
pub fn watched_dirs(policy: &Policy) -> Vec<PathBuf> {
    let mut dirs = BTreeSet::new();
    for f in std::iter::once(&policy.source).chain(&policy.files) {
        dirs.insert(dir_of(f));
        // Each link of the chain, as it points now.
        let mut at = f.clone();
        for _ in 0..MAX_LINK_HOPS {
            let Ok(target) = std::fs::read_link(&at) else {
                break;
            };
            at = dir_of(&at).join(target);
            dirs.insert(dir_of(&at));
        }
        // Links among the directories too (`..data/policy.toml`): where the file really is.
        if let Ok(real) = std::fs::canonicalize(f) {
            dirs.insert(dir_of(&real));
        }
    }
    dirs.into_iter().collect()
}

/// The directory `f` is in, `.` for a bare file name.
fn dir_of(f: &Path) -> PathBuf {
    match f.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// SHA-256 over the policy's files as they are now (a file that cannot be read hashes as such,
/// by why). Read as `config::load` reads them: never a FIFO or a device, never past the bound.
fn content_hash(main: &Path, files: &[PathBuf]) -> [u8; 32] {
    let mut h = Sha256::new();
    for f in std::iter::once(main).chain(files.iter().map(PathBuf::as_path)) {
        h.update(f.as_os_str().as_encoded_bytes());
        match config::read_policy_file(f, config::MAX_FILE_BYTES) {
            Ok(bytes) => {
                h.update([1]);
                h.update((bytes.len() as u64).to_le_bytes());
                h.update(&bytes);
            }
            Err(why) => {
                h.update([0]);
                h.update(why.to_string().as_bytes());
            }
        }
    }
    h.finalize().into()
}

/// Settings of `new` that differ from `old` and need a restart, by name.
pub fn not_reloadable(old: &Policy, new: &Policy) -> Vec<String> {
    let mut refused = Vec::new();
    if old.agent.listen != new.agent.listen {
        refused.push(format!(
            "[agent] listen ({} → {})",
            old.agent.listen, new.agent.listen
        ));
    }
    if old.agent.state_dir != new.agent.state_dir {
        refused.push(format!(
            "[agent] state_dir ({} → {})",
            old.agent.state_dir.display(),
            new.agent.state_dir.display()
        ));
    }
    if old.agent.snapshot_prefix != new.agent.snapshot_prefix {
        refused.push("[agent] snapshot_prefix".into());
    }
    if old.agent.token_file != new.agent.token_file {
        refused.push("[agent] token_file".into());
    }
    if old.agent.listen_without_token != new.agent.listen_without_token {
        refused.push("[agent] listen_without_token".into());
    }
    if old.ha != new.ha {
        // Leaving, joining or moving the election while running could leave two leaders.
        refused.push("[ha]".into());
    }
    let names = |p: &Policy| -> Vec<String> { p.clusters.iter().map(|c| c.name.clone()).collect() };
    if names(old) != names(new) {
        refused.push("the [[cluster]] list".into());
    } else {
        for (a, b) in old.clusters.iter().zip(&new.clusters) {
            if format!("{a:?}") != format!("{b:?}") {
                refused.push(format!("[[cluster]] {}", a.name));
            }
        }
    }
    refused
}

/// What changed, in one line for the log and the reload answer.
pub fn describe_diff(old: &Policy, new: &Policy) -> String {
    let ids =
        |p: &Policy| -> BTreeSet<String> { (0..p.volumes.len()).map(|i| p.volume_id(i)).collect() };
    let (ov, nv) = (ids(old), ids(new));
    let windows =
        |p: &Policy| -> BTreeSet<String> { p.windows.iter().map(|w| w.name.clone()).collect() };
    let (ow, nw) = (windows(old), windows(new));
    let changed_windows: Vec<&str> = new
        .windows
        .iter()
        .filter(|w| {
            old.windows
                .iter()
                .find(|o| o.name == w.name)
                .is_some_and(|o| format!("{o:?}") != format!("{w:?}"))
        })
        .map(|w| w.name.as_str())
        .collect();
    let list = |s: Vec<&String>| -> String {
        if s.is_empty() {
            "none".into()
        } else {
            s.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(", ")
        }
    };
    // What each volume hands to snapwarden: the managed policy's name and its copies as written.
    let managed = |p: &Policy| -> BTreeSet<(String, String)> {
        (0..p.volumes.len())
            .filter_map(|i| {
                let sp = &p.snapshot_policies[p.volumes[i].managed?];
                Some((
                    p.volume_id(i),
                    format!("{}{:?}{:?}", sp.name, sp.copies, sp.max_defer),
                ))
            })
            .collect()
    };
    let (om, nm) = (managed(old), managed(new));
    let handed: BTreeSet<&String> = om.symmetric_difference(&nm).map(|(v, _)| v).collect();
    format!(
        "volumes added: {}; volumes removed: {}; windows added: {}; windows removed: {}; windows changed: {}; managed snapshots changed on: {}",
        list(nv.difference(&ov).collect()),
        list(ov.difference(&nv).collect()),
        list(nw.difference(&ow).collect()),
        list(ow.difference(&nw).collect()),
        if changed_windows.is_empty() {
            "none".to_string()
        } else {
            changed_windows.join(", ")
        },
        list(handed.into_iter().collect())
    )
}

/// Watches the policy and hands good changes to the agent; runs until the agent's event channel
/// closes.
pub struct Reloader {
    path: PathBuf,
    running: Arc<Policy>,
    hash: [u8; 32],
    events: mpsc::UnboundedSender<Event>,
    metrics: Arc<Metrics>,
}

impl Reloader {
    pub fn new(
        policy: Arc<Policy>,
        events: mpsc::UnboundedSender<Event>,
        metrics: Arc<Metrics>,
    ) -> Reloader {
        let hash = content_hash(&policy.source, &policy.files);
        Reloader {
            path: policy.source.clone(),
            running: policy,
            hash,
            events,
            metrics,
        }
    }

    /// Reads the policy if its content changed (or always, when `force`), and hands a good one to
    /// the agent. The answer says what changed, or why nothing did; with a handed-over policy, a
    /// receiver answered once the agent has it in effect.
    pub fn check(&mut self, force: bool, why: &str) -> Result<Checked, String> {
        let hash = content_hash(&self.path, &self.running.files);
        if !force && hash == self.hash {
            return Ok(("policy unchanged".into(), None));
        }
        self.hash = hash;
        let new = match config::load(&self.path) {
            Ok(p) => p,
            Err(diags) => {
                let text = diags.to_string();
                tracing::error!(
                    policy = %self.path.display(), trigger = why,
                    "policy reload failed; the running policy stays in effect:\n{text}"
                );
                self.metrics.reload_attempted(false);
                return Err(format!(
                    "reload failed; the running policy stays in effect:\n{text}"
                ));
            }
        };
        // The included files may have changed: the hash covers the new set from now on.
        self.hash = content_hash(&self.path, &new.files);
        let refused = not_reloadable(&self.running, &new);
        if !refused.is_empty() {
            let list = refused.join(", ");
            tracing::error!(
                policy = %self.path.display(), trigger = why,
                "policy reload refused: {list} cannot change while the agent runs (restart to apply); the running policy stays in effect"
            );
            self.metrics.reload_attempted(false);
            return Err(format!(
                "reload refused: {list} cannot change while the agent runs (restart to apply); the running policy stays in effect"
            ));
        }
        let diff = describe_diff(&self.running, &new);
        let new = Arc::new(new);
        let (applied, in_effect) = oneshot::channel();
        let event = Event::Reload {
            policy: new.clone(),
            applied: Some(applied),
        };
        if self.events.send(event).is_err() {
            return Err("the agent is stopping".into());
        }
        tracing::info!(policy = %self.path.display(), trigger = why, "policy reloaded: {diff}");
        self.running = new;
        Ok((format!("policy reloaded: {diff}"), Some(in_effect)))
    }

    /// Starts watching the directories and SIGHUP before it returns (so nothing written after
    /// it is missed), then serves them and `requests` in a task until the agent stops. Call it
    /// inside the tokio runtime.
    pub fn start(
        self,
        requests: mpsc::UnboundedReceiver<ReloadRequest>,
    ) -> tokio::task::JoinHandle<()> {
        let (fs_tx, fs_rx) = mpsc::unbounded_channel::<()>();
        let watcher =
            notify::recommended_watcher(move |ev: notify::Result<notify::Event>| match ev {
                Ok(ev) if matches!(ev.kind, EventKind::Access(_)) => {}
                Ok(_) => {
                    let _ = fs_tx.send(());
                }
                Err(e) => tracing::warn!("policy watch: {e}"),
            });
        let mut watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::error!(
                    "cannot watch the policy ({e}); reload with SIGHUP or POST /-/reload"
                );
                None
            }
        };
        let mut watched = BTreeSet::new();
        if let Some(w) = watcher.as_mut() {
            rewatch(w, &mut watched, &self.running);
        }
        let hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::error!("cannot handle SIGHUP ({e}); reload with POST /-/reload");
                None
            }
        };
        tokio::spawn(self.serve(watcher, watched, fs_rx, hup, requests))
    }

    async fn serve(
        mut self,
        mut watcher: Option<notify::RecommendedWatcher>,
        mut watched: BTreeSet<PathBuf>,
        mut fs_rx: mpsc::UnboundedReceiver<()>,
        mut hup: Option<tokio::signal::unix::Signal>,
        mut requests: mpsc::UnboundedReceiver<ReloadRequest>,
    ) {
        let events = self.events.clone();
        // False once the watcher is gone; SIGHUP and the API still work.
        let mut watching = watcher.is_some();
        loop {
            tokio::select! {
                ev = fs_rx.recv(), if watching => {
                    if ev.is_none() {
                        watching = false;
                        continue;
                    }
                    // Debounce: read once the directory has been quiet for a while.
                    while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, fs_rx.recv()).await {}
                    let _ = self.check(false, "file change");
                }
                _ = async {
                    match hup.as_mut() {
                        Some(h) => { h.recv().await; }
                        None => std::future::pending::<()>().await,
                    }
                } => {
                    let _ = self.check(true, "SIGHUP");
                }
                req = requests.recv() => {
                    let Some(reply) = req else { break };
                    let answer = match self.check(true, "POST /-/reload") {
                        Ok((what, Some(in_effect))) => {
                            // The caller's 200 means "in effect", unless a long pass holds the
                            // agent: then it says so rather than keep the caller waiting.
                            match tokio::time::timeout(APPLY_WAIT, in_effect).await {
                                Ok(Ok(())) => Ok(what),
                                Ok(Err(_)) => Err("the agent is stopping".into()),
                                Err(_) => Ok(format!(
                                    "{what} (takes effect after the pass in progress)"
                                )),
                            }
                        }
                        Ok((what, None)) => Ok(what),
                        Err(e) => Err(e),
                    };
                    let _ = reply.send(answer);
                }
                _ = events.closed() => break,
            }
            // New included files may live in new directories, and a link may point elsewhere
            // now (whether or not the policy was reloaded: the new target may read the same).
            if let Some(w) = watcher.as_mut() {
                rewatch(w, &mut watched, &self.running);
            }
        }
    }
}

/// Brings the watched directories to [`watched_dirs`] of `policy`: each one watched again (a
/// directory removed and made again needs a new watch; watching a watched one is cheap), those no
/// longer needed left. A directory that cannot be watched is logged when it first fails.
fn rewatch(w: &mut notify::RecommendedWatcher, watched: &mut BTreeSet<PathBuf>, policy: &Policy) {
    let want: BTreeSet<PathBuf> = watched_dirs(policy).into_iter().collect();
    for gone in watched.difference(&want) {
        // A directory that was removed is no longer watched anyway.
        let _ = w.unwatch(gone);
    }
    let mut now = BTreeSet::new();
    for dir in want {
        match w.watch(&dir, RecursiveMode::NonRecursive) {
            Ok(()) => {
                now.insert(dir);
            }
            Err(e) if watched.contains(&dir) => {
                tracing::warn!("{} is no longer watched ({e})", dir.display());
            }
            Err(e) => tracing::error!(
                "cannot watch {} ({e}); reload with SIGHUP or POST /-/reload",
                dir.display()
            ),
        }
    }
    *watched = now;
}

impl Agent {
    /// Swaps in a reloaded policy between passes. Occurrences already started keep their place
    /// (they are named, not numbered); cycles in flight keep their own deadlines and hooks.
    pub(super) fn apply_policy(&mut self, new: Arc<Policy>) {
        let old = std::mem::replace(&mut self.policy, new);
        self.memory.excluded.clear();
        // New volumes, windows or settings: the next pass audits under the new policy.
        self.audits.rerun();
        if old.agent.concurrency != self.policy.agent.concurrency {
            self.conns = self
                .conns
                .iter()
                .map(|c| {
                    Arc::new(ClusterConn {
                        name: c.name.clone(),
                        ontap: c.ontap.clone(),
                        changed: c.changed.clone(),
                        permits: Arc::new(tokio::sync::Semaphore::new(
                            self.policy.agent.concurrency,
                        )),
                    })
                })
                .collect();
        }
        let now = self.ctx.clock.now();
        self.metrics.config_loaded(&self.policy, now);
        self.metrics.reload_attempted(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(agent: &str, volumes: &[&str], file: &str) -> Policy {
        let mut text = format!(
            "[agent]\n{agent}\n[[cluster]]\nname = \"lab\"\nendpoint = \"simulator\"\ntimezone = \"UTC\"\n[[schedule]]\nname = \"hourly\"\ncron = \"5 * * * *\"\n[[snapshot_policy]]\nname = \"p\"\ncopies = [{{ schedule = \"hourly\", count = 3 }}]\n"
        );
        for v in volumes {
            text.push_str(&format!(
                "[[volume]]\ncluster = \"lab\"\nsvm = \"svm1\"\nname = \"{v}\"\nluns = [\"/vol/{v}/lun0\"]\nsnapshot_policy = \"p\"\n"
            ));
        }
        config::parse_str(&text, Path::new(file)).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn listen_state_dir_prefix_and_clusters_are_refused_by_name() {
        let old = policy("", &["a"], "/etc/sw/p.toml");
        assert!(not_reloadable(&old, &policy("", &["a", "b"], "/etc/sw/p.toml")).is_empty());
        let r = not_reloadable(
            &old,
            &policy(
                "listen = \"127.0.0.1:1\"\nstate_dir = \"/srv/sw\"\nsnapshot_prefix = \"x\"",
                &["a"],
                "/etc/sw/p.toml",
            ),
        );
        assert_eq!(r.len(), 3, "{r:?}");
        assert!(r[0].starts_with("[agent] listen (127.0.0.1:9464 → 127.0.0.1:1)"));
        assert!(r[1].starts_with("[agent] state_dir"));
        assert_eq!(r[2], "[agent] snapshot_prefix");
        // Whether an open API is meant is decided when the listener is bound.
        let r = not_reloadable(
            &old,
            &policy("listen_without_token = true", &["a"], "/etc/sw/p.toml"),
        );
        assert_eq!(r, vec!["[agent] listen_without_token".to_string()]);
    }

    #[test]
    fn ha_is_refused_by_name() {
        let ha =
            "[ha]\nbackend = \"etcd\"\nendpoints = [\"http://127.0.0.1:2379\"]\nidentity = \"a\"\n";
        let with = |extra: &str| {
            let mut p = policy("", &["a"], "/etc/sw/p.toml");
            let text = format!("{ha}{extra}[agent]\n[[cluster]]\nname = \"lab\"\nendpoint = \"simulator\"\n[[schedule]]\nname = \"h\"\ncron = \"5 * * * *\"\n[[snapshot_policy]]\nname = \"p\"\ncopies = [{{ schedule = \"h\", count = 3 }}]\n[[volume]]\ncluster = \"lab\"\nsvm = \"s\"\nname = \"a\"\nluns = [\"/vol/a/l\"]\nsnapshot_policy = \"p\"\n");
            p.ha = config::parse_str(&text, Path::new("/etc/sw/p.toml"))
                .unwrap_or_else(|e| panic!("{e}"))
                .ha;
            p
        };
        let old = policy("", &["a"], "/etc/sw/p.toml");
        assert_eq!(not_reloadable(&old, &with("")), vec!["[ha]".to_string()]);
        assert_eq!(not_reloadable(&with(""), &old), vec!["[ha]".to_string()]);
        assert_eq!(
            not_reloadable(&with(""), &with("lease_ttl = \"5s\"\n")),
            vec!["[ha]".to_string()]
        );
        assert!(not_reloadable(&with(""), &with("")).is_empty());
    }

    #[test]
    fn the_diff_names_the_volumes_whose_managed_snapshots_change() {
        let text = |managed: &str| {
            format!(
                "[[cluster]]\nname = \"lab\"\nendpoint = \"simulator\"\ntimezone = \"UTC\"\n[[schedule]]\nname = \"hourly\"\ncron = \"5 * * * *\"\n[[snapshot_policy]]\nname = \"none\"\ncopies = []\n[[snapshot_policy]]\nname = \"m\"\ncopies = [{{ schedule = \"hourly\", count = 3 }}]\n[[volume]]\ncluster = \"lab\"\nsvm = \"svm1\"\nname = \"a\"\nluns = [\"/vol/a/l\"]\nsnapshot_policy = \"none\"\n{managed}"
            )
        };
        let before = config::parse_str(&text(""), Path::new("p.toml")).unwrap();
        let after =
            config::parse_str(&text("managed_snapshots = \"m\"\n"), Path::new("p.toml")).unwrap();
        assert!(
            describe_diff(&before, &after).ends_with("managed snapshots changed on: lab/svm1/a")
        );
        assert!(describe_diff(&after, &after).ends_with("managed snapshots changed on: none"));
    }

    #[test]
    fn the_diff_names_volumes_added_and_removed() {
        let old = policy("", &["a", "b"], "p.toml");
        let new = policy("", &["b", "c"], "p.toml");
        let d = describe_diff(&old, &new);
        assert!(
            d.starts_with("volumes added: lab/svm1/c; volumes removed: lab/svm1/a;"),
            "{d}"
        );
    }

    #[test]
    fn a_relative_policy_is_watched_in_the_current_directory() {
        assert_eq!(
            watched_dirs(&policy("", &["a"], "p.toml")),
            vec![PathBuf::from(".")]
        );
        assert_eq!(
            watched_dirs(&policy("", &["a"], "/etc/sw/p.toml")),
            vec![PathBuf::from("/etc/sw")]
        );
    }

    #[test]
    fn a_symlinked_policy_is_watched_where_it_points_and_at_every_link() {
        // conf/policy.toml -> ../links/current.toml -> ../real/policy.toml
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        for sub in ["conf", "links", "real", "other"] {
            std::fs::create_dir(root.join(sub)).unwrap();
        }
        let text = "[[cluster]]\nname = \"lab\"\nendpoint = \"simulator\"\ntimezone = \"UTC\"\n[[schedule]]\nname = \"h\"\ncron = \"5 * * * *\"\n[[snapshot_policy]]\nname = \"p\"\ncopies = [{ schedule = \"h\", count = 3 }]\n[[volume]]\ncluster = \"lab\"\nsvm = \"s\"\nname = \"a\"\nluns = [\"/vol/a/l\"]\nsnapshot_policy = \"p\"\n";
        std::fs::write(root.join("real/policy.toml"), text).unwrap();
        std::fs::write(root.join("other/policy.toml"), text).unwrap();
        std::os::unix::fs::symlink("../real/policy.toml", root.join("links/current.toml")).unwrap();
        std::os::unix::fs::symlink("../links/current.toml", root.join("conf/policy.toml")).unwrap();
        let policy = config::load(&root.join("conf/policy.toml")).unwrap_or_else(|e| panic!("{e}"));
        let dirs = |p: &Policy| -> Vec<String> {
            watched_dirs(p)
                .iter()
                .map(|d| {
                    std::fs::canonicalize(d)
                        .unwrap()
                        .strip_prefix(&root)
                        .unwrap()
                        .display()
                        .to_string()
                })
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        };
        assert_eq!(dirs(&policy), ["conf", "links", "real"]);
        // The middle link re-pointed: the same policy (paths as named) is now watched in `other`.
        std::fs::remove_file(root.join("links/current.toml")).unwrap();
        std::os::unix::fs::symlink("../other/policy.toml", root.join("links/current.toml"))
            .unwrap();
        assert_eq!(dirs(&policy), ["conf", "links", "other"]);
    }
}
