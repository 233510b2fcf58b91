//! Validated policy: the domain types every other module reads (never the raw serde types).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use chrono::TimeDelta;
use chrono_tz::Tz;

use crate::timeline::{CronSpec, Recurrence};

/// A whole validated policy.
///
/// Invariants: names are unique per kind; every reference (window → volume, volume → cluster,
/// volume → snapshot policy, snapshot policy → schedule) resolves; indices point into these vectors.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The main policy file (included files are listed in `files`).
    pub source: PathBuf,
    /// Every file read, main file first.
    pub files: Vec<PathBuf>,
    pub agent: Agent,
    pub flexclone: FlexCloneRule,
    pub clusters: Vec<Cluster>,
    pub schedules: Vec<JobSchedule>,
    pub snapshot_policies: Vec<SnapshotPolicy>,
    pub volumes: Vec<Volume>,
    pub windows: Vec<Window>,
    /// `[[veeam]]` servers, in file order.
    pub veeam: Vec<super::driver::VeeamServer>,
    /// `[ha]`: leader election between replicas; `None` runs the agent alone.
    pub ha: Option<Ha>,
    /// `volumes` by (cluster name, SVM, volume name), built on first use ([`Policy::volume_at`]).
    pub volume_ids: VolumeIds,
}

/// A policy's volumes by (cluster name, SVM, volume name), so that a pass finds the policy
/// volume of each cycle it looks at without a scan of every volume.
#[derive(Debug, Clone, Default)]
pub struct VolumeIds(std::sync::OnceLock<(Ids, usize)>);

/// Cluster name, then SVM, then volume name (look-ups borrow, never allocate).
type Ids = std::collections::HashMap<
    String,
    std::collections::HashMap<String, std::collections::HashMap<String, usize>>,
>;

impl Policy {
    /// The position in `volumes` of the volume `svm`/`volume` of cluster `cluster`, if the policy
    /// names it. The index is built on first use; a policy whose volumes were added or removed
    /// since (as only tests do) is searched instead.
    pub fn volume_at(&self, cluster: &str, svm: &str, volume: &str) -> Option<usize> {
        let (ids, held) = self.volume_ids.0.get_or_init(|| {
            let mut ids = Ids::new();
            for (vi, v) in self.volumes.iter().enumerate().rev() {
                let c = self.clusters.get(v.cluster).map(|c| c.name.clone());
                ids.entry(c.unwrap_or_default())
                    .or_default()
                    .entry(v.svm.clone())
                    .or_default()
                    .insert(v.name.clone(), vi);
            }
            (ids, self.volumes.len())
        });
        let named = |vi: usize| {
            self.volumes.get(vi).is_some_and(|v| {
                v.svm == svm
                    && v.name == volume
                    && self
                        .clusters
                        .get(v.cluster)
                        .is_some_and(|c| c.name == cluster)
            })
        };
        let hit = ids
            .get(cluster)
            .and_then(|s| s.get(svm))
            .and_then(|v| v.get(volume));
        match hit {
            Some(&vi) if named(vi) => Some(vi),
            None if *held == self.volumes.len() => None,
            _ => (0..self.volumes.len()).find(|&vi| named(vi)),
        }
    }

    /// A volume's id as windows name it: `<cluster>/<svm>/<volume>`.
    pub fn volume_id(&self, volume: usize) -> String {
        let v = &self.volumes[volume];
        format!("{}/{}/{}", self.clusters[v.cluster].name, v.svm, v.name)
    }
}

/// The `[agent]` section.
#[derive(Debug, Clone)]
pub struct Agent {
    pub listen: SocketAddr,
    pub state_dir: PathBuf,
    /// Prefix of every backing snapshot snapwarden creates: `<prefix>.<window>.<UTC timestamp>`.
    pub snapshot_prefix: String,
    /// Minimum time between a release deadline and the next scheduled snapshot.
    pub guard: TimeDelta,
    /// ONTAP operations in flight per cluster.
    pub concurrency: usize,
    /// How long SIGTERM/SIGINT waits for cycles in flight to be released.
    pub shutdown_timeout: TimeDelta,
    /// How often each cluster's snapshots and LUNs are listed when nothing else wakes the agent.
    pub observe_interval: TimeDelta,
    /// How often the agent runs `doctor`'s audit and exports its findings
    /// (`snapwarden_hazards`); `None` (`"0s"`) does not audit.
    pub audit_interval: Option<TimeDelta>,
    /// Backup tools' own backing snapshots (case-insensitive): reported, never touched.
    pub foreign_snapshot_patterns: Vec<regex::Regex>,
    /// A file holding the bearer token every `/api/v1` endpoint and `POST /-/reload` then ask
    /// for; without it `/api/v1` answers whoever reaches `listen` and `/-/reload` loopback
    /// callers only.
    pub token_file: Option<PathBuf>,
    /// The operator means `listen` to be off loopback without a token (validation refuses that
    /// otherwise). Invariant: never true together with `token_file`.
    pub listen_without_token: bool,
}

impl Default for Agent {
    /// The documented defaults (`config/reference.toml`).
    fn default() -> Agent {
        Agent {
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
            state_dir: PathBuf::from("/var/lib/snapwarden"),
            snapshot_prefix: "snapwarden".into(),
            // Five minutes: long enough for a clone delete and snapshot delete to settle on ONTAP.
            guard: TimeDelta::minutes(5),
            // The REST client's own default, which keeps a cluster's management plane well below
            // its request limits.
            concurrency: 4,
            shutdown_timeout: TimeDelta::minutes(2),
            observe_interval: TimeDelta::minutes(1),
            // Settings that defeat backups change rarely; one extra volume listing per cluster
            // every quarter hour finds them well before the next night's backups.
            audit_interval: Some(TimeDelta::minutes(15)),
            foreign_snapshot_patterns: vec![
                foreign_pattern(DEFAULT_FOREIGN_PATTERN).expect("the default pattern compiles")
            ],
            token_file: None,
            listen_without_token: false,
        }
    }
}

/// An address only this host reaches: IPv4 `127.0.0.0/8`, IPv6 `::1`, or an IPv4-mapped IPv6
/// loopback address (`::ffff:127.0.0.1`, what a dual-stack socket reports for an IPv4 caller).
/// The unspecified addresses (`0.0.0.0`, `::`) are not: they listen on every interface.
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// The default foreign pattern: Veeam's backing snapshots (reference notes, veeam-rest.md).
pub(crate) const DEFAULT_FOREIGN_PATTERN: &str = "^(VeeamSourceSnapshot|VeeamAUX)";
/// Longest foreign pattern accepted, and the compiled size limit, so a pattern cannot cost
/// unbounded memory or time.
const MAX_PATTERN_BYTES: usize = 256;
const MAX_PATTERN_PROGRAM_BYTES: usize = 1 << 20;
/// Foreign patterns at most.
pub(crate) const MAX_PATTERNS: usize = 32;

/// A case-insensitive foreign-snapshot pattern.
pub(crate) fn foreign_pattern(p: &str) -> Result<regex::Regex, String> {
    if p.len() > MAX_PATTERN_BYTES {
        return Err(format!("is longer than {MAX_PATTERN_BYTES} bytes"));
    }
    regex::RegexBuilder::new(p)
        .case_insensitive(true)
        .size_limit(MAX_PATTERN_PROGRAM_BYTES)
        .build()
        .map_err(|e| {
            let first = e.to_string();
            let short: String = first
                .lines()
                .last()
                .unwrap_or("")
                .chars()
                .take(200)
                .collect();
            format!("is not a valid regular expression ({})", short.trim())
        })
}

/// The `[ha]` section: replicas elect a leader; only the leader changes anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ha {
    pub backend: HaBackend,
    /// Client URLs of the election service's members (`http://` or `https://`), tried in turn.
    pub endpoints: Vec<String>,
    /// How long leadership outlives the leader's last keep-alive.
    pub lease_ttl: TimeDelta,
    /// The election key (default `/snapwarden/<policy file stem>/leader`).
    pub key: String,
    /// This replica's name in the election, in `status` and in the journal (default
    /// `<host name>-<pid>`).
    pub identity: String,
    /// etcd user; with it, a password source is required.
    pub username: Option<String>,
    pub password: Option<SecretSource>,
    /// How `https://` endpoints' certificates are verified.
    pub tls: TlsVerify,
}

/// The election service behind `[ha]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HaBackend {
    Etcd,
}

/// The `[flexclone]` section: when to recommend FlexClone (the FlexClone recommendation).
#[derive(Debug, Clone)]
pub struct FlexCloneRule {
    pub recommend_after: u32,
    pub within: TimeDelta,
    pub use_when_licensed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// The embedded simulator, built from this policy.
    Simulator,
    /// An ONTAP cluster management address, `https://…`.
    Url(String),
}

/// Where a cluster password comes from; never the file itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Env(String),
    File(PathBuf),
}

/// How the cluster's TLS certificate is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsVerify {
    /// The system's trust roots.
    System,
    CaFile(PathBuf),
    /// SHA-256 of the leaf certificate (DER).
    PinSha256([u8; 32]),
    /// No verification; logged as a warning at every start.
    Insecure,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterTimezone {
    /// Read from `/api/cluster` at discovery.
    Auto,
    Named(Tz),
}

#[derive(Debug, Clone)]
pub struct Cluster {
    pub name: String,
    pub endpoint: Endpoint,
    pub username: String,
    /// `None` only for the simulator endpoint.
    pub password: Option<SecretSource>,
    pub tls: TlsVerify,
    pub timezone: ClusterTimezone,
    /// Settings of the embedded simulator; `Some` exactly when `endpoint` is `Simulator`.
    pub simulator: Option<SimulatedCluster>,
}

impl Cluster {
    /// The zone the cluster's schedules run in when the policy alone decides it: the named zone,
    /// or Etc/UTC for the embedded simulator's `auto`. `None`: it must be read from the cluster.
    pub fn known_timezone(&self) -> Option<Tz> {
        match (self.timezone, &self.endpoint) {
            (ClusterTimezone::Named(tz), _) => Some(tz),
            (ClusterTimezone::Auto, Endpoint::Simulator) => Some(Tz::UTC),
            (ClusterTimezone::Auto, Endpoint::Url(_)) => None,
        }
    }
}

/// How the embedded simulator models a cluster the policy names with `endpoint = "simulator"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulatedCluster {
    /// ONTAP version reported by `/api/cluster`, for example `9.14.1`.
    pub version: String,
    /// Installed license packages, for example `flexclone`, `snaprestore`.
    pub licenses: Vec<String>,
}

/// An ONTAP job schedule defined inline in the policy.
#[derive(Debug, Clone)]
pub struct JobSchedule {
    pub name: String,
    pub recurrence: Recurrence,
}

/// One `copies` entry of a snapshot policy.
#[derive(Debug, Clone)]
pub struct Copies {
    /// Index into `Policy::schedules`.
    pub schedule: usize,
    pub count: u32,
    /// Scheduled snapshots are named `<prefix>.<YYYY-MM-DD_HHMM>`; defaults to the schedule name.
    pub prefix: String,
    /// The label SnapMirror and SnapVault select this copy's snapshots by (ONTAP: 1–31
    /// characters); `None` takes them unlabelled.
    pub snapmirror_label: Option<String>,
}

/// An inline snapshot policy: what ONTAP takes for the volumes whose `snapshot_policy` names it,
/// or what snapwarden takes for those whose `managed_snapshots` names it.
///
/// Invariant: `max_defer` is within `domain::limits::MAX_DEFER`; when a volume manages this
/// policy, its copies have distinct prefixes, none of them snapwarden's own backing-snapshot
/// prefix.
#[derive(Debug, Clone)]
pub struct SnapshotPolicy {
    pub name: String,
    /// May be empty: ONTAP then takes nothing, like its built-in `none` policy.
    pub copies: Vec<Copies>,
    /// How long a managed snapshot of this policy may wait for a live clone on its volume.
    pub max_defer: TimeDelta,
}

/// `max_defer` when the policy does not say: four hours, long enough for a nightly backup of a
/// few hours to finish before the deferred snapshot is taken, short enough that an hourly
/// schedule misses at most a few of its instants.
pub const DEFAULT_MAX_DEFER: TimeDelta = TimeDelta::hours(4);

/// Where a volume's snapshot schedules come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeSchedules {
    /// Discovered from the cluster (needs a cluster; offline commands refuse it).
    Ontap,
    /// Index into `Policy::snapshot_policies`.
    Policy(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloneMethod {
    Auto,
    FlexClone,
    SnapRestore,
}

#[derive(Debug, Clone)]
pub struct Volume {
    /// Index into `Policy::clusters`.
    pub cluster: usize,
    pub svm: String,
    pub name: String,
    /// LUN paths, `/vol/<volume>/<lun>`.
    pub luns: Vec<String>,
    pub schedules: VolumeSchedules,
    /// `managed_snapshots`: index into `Policy::snapshot_policies` of the inline policy whose
    /// copies snapwarden takes itself; `None`: ONTAP takes every scheduled snapshot.
    ///
    /// Invariant: no copy of it shares a prefix with a copy of `schedules`' inline policy (never
    /// two schedulers for one prefix).
    pub managed: Option<usize>,
    pub clone: CloneMethod,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConflict {
    Shift,
    Skip,
    Run,
}

impl OnConflict {
    /// The policy file's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OnConflict::Shift => "shift",
            OnConflict::Skip => "skip",
            OnConflict::Run => "run",
        }
    }
}

/// What happens to a backup still running at the window's `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnOverrun {
    /// End it (SIGTERM, then SIGKILL) and release before the next scheduled snapshot: the
    /// schedule stays clean, the backup is recorded as an overrun.
    Release,
    /// Let it finish (up to the hook's `timeout`) and hold the clones meanwhile: a scheduled
    /// snapshot taken before the release is a recorded chain conflict.
    Finish,
}

impl OnOverrun {
    /// How long a backup may run when its hook sets no `timeout`: `max`, or left to finish twice
    /// `max` (at most a week, the bound of every backup duration).
    pub fn backup_limit(self, max: TimeDelta) -> TimeDelta {
        match self {
            OnOverrun::Release => max,
            OnOverrun::Finish => max
                .checked_mul(2)
                .map_or(max, |twice| twice.min(TimeDelta::days(7)).max(max)),
        }
    }

    /// The policy file's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OnOverrun::Release => "release",
            OnOverrun::Finish => "finish",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Hook {
    pub action: HookAction,
    /// The backup is ended (an overrun) when it runs longer; with `on_overrun = "release"` also
    /// at the latest at `max`.
    pub timeout: TimeDelta,
}

/// What a hook does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookAction {
    /// Run a program (argv, no shell) with the cycle in its environment.
    Command(Vec<String>),
    /// POST the cycle JSON to an `http(s)://` URL; the answer ends the backup (2xx: success).
    Webhook(String),
}

/// A backup window: when the backup tool reads the volumes' LUNs.
///
/// Invariants: `expected <= max`; `max > 0`; `volumes` is non-empty.
#[derive(Debug, Clone)]
pub struct Window {
    pub name: String,
    /// Indices into `Policy::volumes`.
    pub volumes: Vec<usize>,
    pub start: CronSpec,
    pub timezone: Tz,
    pub expected: TimeDelta,
    pub max: TimeDelta,
    pub on_conflict: OnConflict,
    /// How far `shift` may move the start, earlier or later.
    pub shift_limit: TimeDelta,
    pub hook: Option<Hook>,
    /// Who makes the backing snapshot, and what happens to a backup still running at `max`
    /// (`Driver::on_overrun`); `Hook` implies `hook` is `Some`.
    pub driver: super::driver::Driver,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(endpoint: Endpoint, timezone: ClusterTimezone) -> Cluster {
        Cluster {
            name: "c".into(),
            endpoint,
            username: "admin".into(),
            password: None,
            tls: TlsVerify::System,
            timezone,
            simulator: None,
        }
    }

    #[test]
    fn known_timezone_is_the_named_zone_or_utc_for_the_simulator() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let url = || Endpoint::Url("https://c.example".into());
        assert_eq!(
            cluster(url(), ClusterTimezone::Named(berlin)).known_timezone(),
            Some(berlin)
        );
        assert_eq!(
            cluster(Endpoint::Simulator, ClusterTimezone::Auto).known_timezone(),
            Some(Tz::UTC)
        );
        assert_eq!(cluster(url(), ClusterTimezone::Auto).known_timezone(), None);
    }
}
