//! The agent's metrics whose series grow with the estate — per volume, schedule, window and
//! managed copy, held in compact tables — checked against an oracle: the same calls applied to
//! plain `prometheus` vectors, one label set per series, brought in line with each policy as
//! the agent's metrics are specified to be (`docs/metrics-and-alerts.md`). After every step of a
//! scenario over two clusters, several volumes, windows and schedules, and reloads that remove,
//! add and bring back volumes and windows, the agent's `/metrics` text of those families is the
//! `prometheus` crate's `TextEncoder` text of the oracle's registry to the byte (family and
//! series order, escaping, number formatting, families without series left out), and both
//! expositions, parsed, hold the same (name, labels, value) samples with the same HELP and TYPE.
//! Label values that need escaping — quotes, backslashes, line feeds in cluster, volume, window
//! and copy names — are held to the same.

mod oracle_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use prometheus::TextEncoder;
use snapwarden::agent::cycle::{CloneKind, ConflictKind, Cycle, CycleResult, CycleState};
use snapwarden::agent::decide::{ExcludeKind, TakeWhy};
use snapwarden::agent::managed::{CopyKey, CopyStatus};
use snapwarden::agent::metrics::{publish, Metrics};
use snapwarden::agent::state::{ClusterView, Memory, Open, Step, VolumeKey};
use snapwarden::config::Policy;
use snapwarden::domain::Observed;
use snapwarden::planner::Plan;

use oracle_support::Oracle;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().expect("RFC 3339")
}

/// A policy of clusters `east` (UTC) and `west` (Los Angeles), snapshot policies `standard`
/// (hourly, daily, weekly) and `fast` (quarter-hourly, hourly), the volumes
/// `(cluster, svm, name, snapshot policy)` and the windows `(name, volume ids, start)`.
fn policy(volumes: &[(&str, &str, &str, &str)], windows: &[(&str, &[&str], &str)]) -> Arc<Policy> {
    let mut text = String::from(
        r#"
[[cluster]]
name = "east"
endpoint = "simulator"
timezone = "UTC"

[[cluster]]
name = "west"
endpoint = "simulator"
timezone = "America/Los_Angeles"

[[schedule]]
name = "quarter"
cron = "*/15 * * * *"

[[schedule]]
name = "hourly"
cron = "5 * * * *"

[[schedule]]
name = "daily"
cron = "10 0 * * *"

[[schedule]]
name = "weekly"
cron = "15 0 * * 0"

[[snapshot_policy]]
name = "standard"
copies = [{ schedule = "hourly", count = 6 }, { schedule = "daily", count = 2 }, { schedule = "weekly", count = 2 }]

[[snapshot_policy]]
name = "fast"
copies = [{ schedule = "quarter", count = 4 }, { schedule = "hourly", count = 2 }]
"#,
    );
    for (cluster, svm, name, sp) in volumes {
        text.push_str(&format!(
            "[[volume]]\ncluster = \"{cluster}\"\nsvm = \"{svm}\"\nname = \"{name}\"\n\
             luns = [\"/vol/{name}/lun0\"]\nsnapshot_policy = \"{sp}\"\n"
        ));
    }
    for (name, ids, start) in windows {
        let ids: Vec<String> = ids.iter().map(|i| format!("\"{i}\"")).collect();
        text.push_str(&format!(
            "[[window]]\nname = \"{name}\"\nvolumes = [{}]\nstart = \"{start}\"\n\
             timezone = \"UTC\"\nexpected = \"20m\"\nmax = \"40m\"\n",
            ids.join(", ")
        ));
    }
    Arc::new(
        snapwarden::config::parse_str(&text, Path::new("oracle.toml"))
            .unwrap_or_else(|e| panic!("{e}")),
    )
}

/// One exposition, parsed: each family's HELP and TYPE, and its samples.
#[derive(Debug, PartialEq)]
struct Exposition {
    headers: BTreeMap<String, (String, String)>,
    samples: BTreeMap<(String, Vec<(String, String)>), String>,
}

/// Parses the text exposition, keeping the families `keep` names.
fn parse(text: &str, keep: &BTreeSet<String>) -> Exposition {
    let mut help = BTreeMap::new();
    let mut kind = BTreeMap::new();
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').expect("# HELP name text");
            help.insert(name.to_string(), text.to_string());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, t) = rest.split_once(' ').expect("# TYPE name type");
            kind.insert(name.to_string(), t.to_string());
        } else {
            let (series, value) = line.rsplit_once(' ').expect("series value");
            let (name, labels) = match series.split_once('{') {
                Some((name, body)) => {
                    let body = body.strip_suffix('}').expect("closing brace");
                    // In the order printed: the vectors print them in label-name order.
                    let labels: Vec<(String, String)> = body
                        .split("\",")
                        .filter(|p| !p.is_empty())
                        .map(|p| {
                            let (k, v) = p.split_once("=\"").expect("label=\"value\"");
                            (k.to_string(), v.trim_end_matches('"').to_string())
                        })
                        .collect();
                    (name, labels)
                }
                None => (series, Vec::new()),
            };
            assert!(
                samples
                    .insert((name.to_string(), labels), value.to_string())
                    .is_none(),
                "a series twice: {line}"
            );
        }
    }
    let headers = help
        .into_iter()
        .map(|(name, h)| {
            let t = kind.get(&name).cloned().expect("a TYPE for every HELP");
            (name, (h, t))
        })
        .filter(|(name, _)| keep.contains(name))
        .collect();
    samples.retain(|(name, _), _| keep.contains(name));
    Exposition { headers, samples }
}

/// The name of the family a `# HELP` or `# TYPE` line opens.
fn opened(line: &str) -> Option<&str> {
    let rest = line
        .strip_prefix("# HELP ")
        .or_else(|| line.strip_prefix("# TYPE "))?;
    rest.split(' ').next()
}

/// The lines of `text` of the families `keep` names, in the order written (each line with its
/// line feed): a family's lines are its HELP and TYPE and the series after them.
fn families_of(text: &str, keep: &BTreeSet<String>) -> String {
    let mut kept = String::new();
    let mut keeping = false;
    for line in text.split_inclusive('\n') {
        if let Some(name) = opened(line) {
            keeping = keep.contains(name);
        }
        if keeping {
            kept.push_str(line);
        }
    }
    kept
}

/// `have` is `want` to the byte; if not, the first line that differs, with the lines around it.
fn same_text(step: &str, have: &str, want: &str) {
    if have == want {
        return;
    }
    let (h, w): (Vec<&str>, Vec<&str>) = (have.lines().collect(), want.lines().collect());
    let at = (0..h.len().max(w.len()))
        .find(|&i| h.get(i) != w.get(i))
        .unwrap_or(0);
    let around = |lines: &[&str]| lines[at.saturating_sub(3)..(at + 3).min(lines.len())].join("\n");
    panic!(
        "{step}: the text differs from the crate encoder's at line {}\n\
         rendered:\n{}\nthe oracle's:\n{}\n(ends with a line feed: {} and {})",
        at + 1,
        around(&h),
        around(&w),
        have.ends_with('\n'),
        want.ends_with('\n')
    );
}

/// Every family of the whole exposition once, in name order (as the registry gathers them).
fn in_name_order(step: &str, text: &str) {
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    assert!(
        names.windows(2).all(|w| w[0] < w[1]),
        "{step}: families out of name order or repeated: {names:?}"
    );
}

/// The agent's metrics and the oracle, given the same calls.
struct Both {
    metrics: Metrics,
    oracle: Oracle,
}

impl Both {
    fn publish(&mut self, policy: &Arc<Policy>, memory: &Memory, now: DateTime<Utc>) {
        let views: Vec<ClusterView> = policy
            .clusters
            .iter()
            .map(|_| ClusterView::default())
            .collect();
        publish(&self.metrics, policy, &views, memory, now);
        self.oracle.publish(policy, memory, now);
    }

    fn scheduled(&mut self, policy: &Arc<Policy>, plan: &Plan, now: DateTime<Utc>) {
        self.metrics.scheduled(policy, plan, now);
        self.oracle.scheduled(policy, plan, now);
    }

    fn conflict(&mut self, policy: &Policy, l: [&str; 3], kind: ConflictKind) {
        self.metrics.conflict(policy, l[0], l[1], l[2], kind);
        self.oracle.conflict(policy, l, kind);
    }

    fn cycle_ended(&mut self, c: &Cycle, now: DateTime<Utc>) {
        self.metrics.cycle_ended(c, now);
        self.oracle.cycle_ended(c);
    }

    fn recommended(&mut self, l: [&str; 3], yes: bool) {
        self.metrics
            .set_flexclone_recommended(l[0], l[1], l[2], yes);
        self.oracle.recommended(l, yes);
    }

    fn managed(&mut self, copies: &[CopyStatus], excluded: &[(VolumeKey, ExcludeKind, String)]) {
        self.metrics.managed.publish(copies, excluded);
        self.oracle.managed(copies, excluded);
    }

    fn taken(&mut self, key: &CopyKey, why: &TakeWhy, instants: u32) {
        self.metrics.managed.taken(key, why, instants);
        self.oracle.taken(key, why, instants);
    }

    fn failed(&mut self, key: &CopyKey) {
        self.metrics.managed.failed(key);
        self.oracle.failed(key);
    }

    fn rotated(&mut self, key: &CopyKey, deleted: bool) {
        self.metrics.managed.rotated(key, deleted);
        self.oracle.rotated(key, deleted);
    }

    /// Both expositions hold the same series of the oracle's families, with the same values,
    /// HELP and TYPE, and the agent's text of those families is the crate encoder's text of the
    /// oracle to the byte; returns how many series.
    fn check(&self, step: &str) -> usize {
        let families = self.oracle.families();
        let oracle = TextEncoder::new()
            .encode_to_string(&self.oracle.registry.gather())
            .unwrap();
        let rendered = self.metrics.render();
        same_text(step, &families_of(&rendered, &families), &oracle);
        in_name_order(step, &rendered);
        let want = parse(&oracle, &families);
        let have = parse(&rendered, &families);
        assert_eq!(have.headers, want.headers, "{step}: HELP and TYPE");
        let missing: Vec<_> = want
            .samples
            .iter()
            .filter(|(k, v)| have.samples.get(*k) != Some(*v))
            .collect();
        let extra: Vec<_> = have
            .samples
            .iter()
            .filter(|(k, v)| want.samples.get(*k) != Some(*v))
            .collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{step}: the oracle's samples not rendered (or not so): {missing:#?}\n\
             rendered, not the oracle's: {extra:#?}"
        );
        want.samples.len()
    }
}

/// A cycle of `window` on `cluster/svm/volume` created at `at`, in `state`.
fn cycle(id: &str, window: &str, l: [&str; 3], at: DateTime<Utc>, state: CycleState) -> Cycle {
    Cycle {
        id: id.into(),
        window: window.into(),
        cluster: l[0].into(),
        svm: l[1].into(),
        volume: l[2].into(),
        window_start: at,
        create_at: at,
        release_by: at + TimeDelta::minutes(40),
        release_deadline: Some(at + TimeDelta::minutes(50)),
        backing_snapshot: format!("snapwarden.{window}.{id}"),
        clone_kind: CloneKind::SnapRestore,
        clones: Vec::new(),
        state,
        result: None,
        created_at: Some(at + TimeDelta::seconds(3)),
        clones_created_at: None,
        clones_deleted_at: None,
        released_at: None,
        detail: String::new(),
        replica: None,
    }
}

fn open(memory: &mut Memory, c: Cycle) {
    memory.open.insert(
        c.id.clone(),
        Open {
            cycle: c,
            step: Step::Release,
            settle_after: None,
        },
    );
}

/// `c` released at `at` with `result`.
fn ended(mut c: Cycle, result: CycleResult, at: DateTime<Utc>) -> Cycle {
    c.state = CycleState::Released;
    c.result = Some(result);
    c.released_at = Some(at);
    c
}

fn copy_status(l: [&str; 3], prefix: &str, now: DateTime<Utc>, waiting: bool) -> CopyStatus {
    CopyStatus {
        cluster: l[0].into(),
        svm: l[1].into(),
        volume: l[2].into(),
        prefix: prefix.into(),
        policy: "standard".into(),
        schedule: "hourly".into(),
        count: 6,
        snapshots: 7,
        over_count: usize::from(waiting),
        last_at: (!waiting).then(|| now - TimeDelta::minutes(10)),
        next_due: Some(now + TimeDelta::minutes(50)),
        deadline: Some(now + TimeDelta::minutes(110)),
        waiting_since: waiting.then_some(now - TimeDelta::minutes(3)),
        waiting_for: None,
        last_error: None,
    }
}

fn copy_key(l: [&str; 3], prefix: &str) -> CopyKey {
    CopyKey {
        volume: VolumeKey {
            cluster: l[0].into(),
            svm: l[1].into(),
            volume: l[2].into(),
        },
        prefix: prefix.into(),
    }
}

const A: [&str; 3] = ["east", "svm1", "vol_a"];
const B: [&str; 3] = ["east", "svm1", "vol_b"];
const C: [&str; 3] = ["east", "svm2", "vol_c"];
const D: [&str; 3] = ["west", "svm1", "vol_d"];
const E: [&str; 3] = ["west", "svm3", "vol_e"];
const F: [&str; 3] = ["east", "svm1", "vol_f"];
const G: [&str; 3] = ["west", "svm3", "vol_g"];
/// Not in any policy (a recommendation journaled before it left, or a foreign volume).
const OUTSIDE: [&str; 3] = ["east", "svm9", "vol_gone"];

/// The scenario's first policy (each call another load of it).
fn first_policy() -> Arc<Policy> {
    policy(
        &[
            ("east", "svm1", "vol_a", "standard"),
            ("east", "svm1", "vol_b", "fast"),
            ("east", "svm2", "vol_c", "standard"),
            ("west", "svm1", "vol_d", "fast"),
            ("west", "svm3", "vol_e", "standard"),
        ],
        &[
            (
                "nightly",
                &["east/svm1/vol_a", "east/svm1/vol_b", "west/svm1/vol_d"],
                "10 1 * * *",
            ),
            (
                "weekly_full",
                &["east/svm2/vol_c", "west/svm3/vol_e"],
                "30 2 * * 6",
            ),
        ],
    )
}

#[test]
fn the_compact_series_match_prometheus_vectors_through_reloads() {
    let now = t("2027-03-01T01:20:00Z");
    let p1 = first_policy();
    let mut both = Both {
        metrics: Metrics::new(),
        oracle: Oracle::new(),
    };
    // At start, before the first pass: recommendations from the journal, one of a volume the
    // policy no longer names.
    both.recommended(B, true);
    both.recommended(OUTSIDE, true);
    both.check("at start");

    // The first pass: cycles in flight on three volumes, releases on two, conflicts, and the
    // next scheduled snapshots of every volume.
    let mut memory = Memory::default();
    let at = now - TimeDelta::minutes(10);
    open(&mut memory, cycle("a1", "nightly", A, at, CycleState::Live));
    open(
        &mut memory,
        cycle("b1", "nightly", B, at, CycleState::Releasing),
    );
    open(
        &mut memory,
        cycle(
            "d1",
            "nightly",
            D,
            at - TimeDelta::minutes(7),
            CycleState::Locked,
        ),
    );
    open(
        &mut memory,
        cycle("d2", "nightly", D, at, CycleState::Backup),
    );
    open(
        &mut memory,
        cycle("x1", "nightly", OUTSIDE, at, CycleState::Live),
    );
    let week_ago = now - TimeDelta::days(7);
    for (id, l, late) in [("c0", C, 2), ("e0", E, 0), ("e1", E, 9)] {
        let c = ended(
            cycle(id, "weekly_full", l, week_ago, CycleState::Live),
            CycleResult::Completed,
            week_ago + TimeDelta::minutes(30 + late),
        );
        memory.recent.push_back(c.clone());
        both.cycle_ended(&c, now);
    }
    both.conflict(&p1, A, ConflictKind::ChainConflict);
    both.conflict(&p1, D, ConflictKind::Locked);
    both.conflict(&p1, D, ConflictKind::Locked);
    both.conflict(&p1, OUTSIDE, ConflictKind::Foreign);
    let plan1 = snapwarden::planner::plan(&p1, &Observed::default(), now, TimeDelta::days(8));
    both.scheduled(&p1, &plan1, now);
    both.publish(&p1, &memory, now);
    let copies = [
        copy_status(A, "snapwarden.hourly", now, false),
        copy_status(A, "snapwarden.daily", now, true),
        copy_status(D, "snapwarden.hourly", now, false),
    ];
    let excluded = [(
        VolumeKey::of_policy(&p1, 4).unwrap(),
        ExcludeKind::Missing,
        String::new(),
    )];
    both.taken(&copy_key(A, "snapwarden.hourly"), &TakeWhy::OnTime, 1);
    both.managed(&copies, &excluded);
    let waited = TimeDelta::minutes(20);
    both.taken(
        &copy_key(A, "snapwarden.daily"),
        &TakeWhy::Deferred { waited },
        3,
    );
    both.rotated(&copy_key(D, "snapwarden.hourly"), true);
    both.failed(&copy_key(D, "snapwarden.hourly"));
    let series = both.check("first pass");
    assert!(
        series > 80,
        "{series} series: the scenario exercises every family"
    );

    // A later pass: A's cycle ends, the next snapshots move on, B's recommendation clears.
    let later = now + TimeDelta::minutes(30);
    let a1 = memory.open.remove("a1").unwrap().cycle;
    let a1 = ended(a1, CycleResult::Completed, later - TimeDelta::minutes(1));
    memory.recent.push_back(a1.clone());
    both.cycle_ended(&a1, later);
    both.recommended(B, false);
    let plan = snapwarden::planner::plan(&p1, &Observed::default(), later, TimeDelta::days(8));
    both.scheduled(&p1, &plan, later);
    both.publish(&p1, &memory, later);
    both.check("a later pass");

    // Reload: vol_b and weekly_full leave, vol_f and vol_g and window hourly_backup join, vol_c
    // changes snapshot policy. Before the pass publishes, a conflict on the new vol_f and the
    // end of a cycle of the window that left.
    let p2 = policy(
        &[
            ("east", "svm1", "vol_a", "standard"),
            ("east", "svm2", "vol_c", "fast"),
            ("west", "svm1", "vol_d", "fast"),
            ("west", "svm3", "vol_e", "standard"),
            ("east", "svm1", "vol_f", "standard"),
            ("west", "svm3", "vol_g", "fast"),
        ],
        &[
            (
                "nightly",
                &["east/svm1/vol_a", "west/svm1/vol_d"],
                "10 1 * * *",
            ),
            (
                "hourly_backup",
                &["east/svm1/vol_f", "west/svm3/vol_g"],
                "40 * * * *",
            ),
        ],
    );
    let reload = later + TimeDelta::minutes(5);
    both.conflict(&p2, F, ConflictKind::LateRelease);
    let c0 = ended(
        cycle("c1", "weekly_full", C, reload, CycleState::Live),
        CycleResult::Failed,
        reload,
    );
    both.cycle_ended(&c0, reload);
    let mut plan = snapwarden::planner::plan(&p2, &Observed::default(), reload, TimeDelta::days(8));
    // vol_e is left out of this plan: its series stay as they were.
    plan.volumes
        .retain(|vp| p2.volumes[vp.volume].name != "vol_e");
    both.scheduled(&p2, &plan, reload);
    both.conflict(&p2, G, ConflictKind::Skipped);
    open(
        &mut memory,
        cycle("f1", "hourly_backup", F, reload, CycleState::Creating),
    );
    both.publish(&p2, &memory, reload);
    let copies = [
        copy_status(A, "snapwarden.hourly", reload, true),
        copy_status(F, "snapwarden.hourly", reload, false),
        copy_status(D, "snapwarden.hourly", reload, false),
    ];
    both.managed(&copies, &[]);
    // A copy the last publish did not have (its volume is new): its series stay until a
    // publish has it and a later one does not.
    both.taken(
        &copy_key(G, "snapwarden.hourly"),
        &TakeWhy::Overdue { late: waited },
        1,
    );
    both.taken(&copy_key(A, "snapwarden.daily"), &TakeWhy::OnTime, 1);
    // Cycles that outlived their window: one of the window that left, one of a window no
    // policy here names.
    for (id, window) in [("c2", "weekly_full"), ("r1", "retired")] {
        let c = cycle(id, window, C, reload, CycleState::Live);
        both.cycle_ended(&ended(c, CycleResult::Completed, reload), reload);
    }
    both.check("after the reload");

    // The same policy again: counters of the volumes that stayed go on; a second publish
    // without A's daily copy (recounted above after it left) keeps it, as it was not published.
    both.conflict(&p2, A, ConflictKind::ChainConflict);
    both.conflict(&p2, C, ConflictKind::Foreign);
    both.managed(&copies, &[]);
    both.publish(&p2, &memory, reload + TimeDelta::minutes(1));
    both.check("the same policy");

    // Reload back to the first policy: vol_b and weekly_full return with counters from 0, the
    // window kept apart joins with the cycle it counted.
    let p3 = first_policy();
    let back = reload + TimeDelta::minutes(10);
    both.recommended(G, true);
    let f1 = memory.open.remove("f1").unwrap().cycle;
    both.cycle_ended(&ended(f1, CycleResult::Skipped, back), back);
    both.publish(&p3, &memory, back);
    let plan = snapwarden::planner::plan(&p3, &Observed::default(), back, TimeDelta::days(8));
    both.scheduled(&p3, &plan, back);
    both.managed(&copies[..1], &excluded);
    both.check("back to the first policy");
}

/// A cluster name with a quote and a backslash: a cluster name may hold any visible character
/// but `/`, and the exposition escapes both.
const ODD_CLUSTER: &str = "lab\"1\\b";

/// A policy of cluster [`ODD_CLUSTER`], volumes `vol_a` and `vol_b`, and window `nightly` of
/// `vol_a`.
fn odd_policy() -> Arc<Policy> {
    let text = r#"
[[cluster]]
name = "lab\"1\\b"
endpoint = "simulator"
timezone = "UTC"

[[schedule]]
name = "hourly"
cron = "5 * * * *"

[[snapshot_policy]]
name = "standard"
copies = [{ schedule = "hourly", count = 6 }]

[[volume]]
cluster = "lab\"1\\b"
svm = "svm1"
name = "vol_a"
luns = ["/vol/vol_a/lun0"]
snapshot_policy = "standard"

[[volume]]
cluster = "lab\"1\\b"
svm = "svm1"
name = "vol_b"
luns = ["/vol/vol_b/lun0"]
snapshot_policy = "standard"

[[window]]
name = "nightly"
volumes = ["lab\"1\\b/svm1/vol_a"]
start = "10 1 * * *"
timezone = "UTC"
expected = "20m"
max = "40m"
"#;
    let policy = snapwarden::config::parse_str(text, Path::new("odd.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(policy.clusters[0].name, ODD_CLUSTER);
    Arc::new(policy)
}

#[test]
fn label_values_that_need_escaping_are_written_as_the_crate_encoder_writes_them() {
    let now = t("2027-03-01T01:20:00Z");
    let p = odd_policy();
    let mut both = Both {
        metrics: Metrics::new(),
        oracle: Oracle::new(),
    };
    // No series yet: no family of the tables is written, as the registry leaves out a family
    // without series.
    let families = both.oracle.families();
    assert_eq!(families_of(&both.metrics.render(), &families), "");
    both.check("no series yet");

    let a = [ODD_CLUSTER, "svm1", "vol_a"];
    // Label sets from outside the policy (a journal's): a volume and a window whose names hold
    // line feeds, quotes and backslashes.
    let apart = ["far\\away", "svm\n2", "vol\"q\""];
    let old_window = "old\nwindow \"x\"\\";
    both.recommended(apart, true);
    both.recommended(a, true);
    let mut memory = Memory::default();
    open(
        &mut memory,
        cycle("a1", "nightly", a, now, CycleState::Locked),
    );
    let gone = cycle("o1", old_window, apart, now, CycleState::Live);
    let gone = ended(gone, CycleResult::Completed, now);
    both.cycle_ended(&gone, now);
    both.conflict(&p, a, ConflictKind::ChainConflict);
    let plan = snapwarden::planner::plan(&p, &Observed::default(), now, TimeDelta::days(8));
    both.scheduled(&p, &plan, now);
    both.publish(&p, &memory, now);
    let odd_prefix = "snap\\warden\n\"x\"";
    let copies = [
        copy_status(a, "snapwarden.hourly", now, true),
        copy_status(apart, odd_prefix, now, false),
    ];
    let b = VolumeKey {
        cluster: ODD_CLUSTER.into(),
        svm: "svm1".into(),
        volume: "vol_b".into(),
    };
    both.managed(&copies, &[(b, ExcludeKind::Missing, String::new())]);
    both.taken(&copy_key(apart, odd_prefix), &TakeWhy::OnTime, 1);
    both.rotated(&copy_key(a, "snapwarden.hourly"), false);
    let series = both.check("escaped label values");
    assert!(series > 20, "{series} series");

    let text = both.metrics.render();
    for escaped in [
        r#"cluster="lab\"1\\b""#,
        r#"svm="svm\n2""#,
        r#"volume="vol\"q\"""#,
        r#"cluster="far\\away""#,
        r#"window="old\nwindow \"x\"\\""#,
        r#"schedule="snap\\warden\n\"x\"""#,
    ] {
        assert!(text.contains(escaped), "{escaped} not in\n{text}");
    }
    assert!(
        text.lines()
            .all(|l| l.starts_with('#') || l.starts_with("snapwarden_")),
        "a line feed in a label value left unescaped:\n{text}"
    );
}
