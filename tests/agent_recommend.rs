//! The live agent's FlexClone recommendation in virtual time: recurring overruns on a
//! SnapRestore volume raise it (status, metric, journal); with `use_when_licensed` and a
//! flexclone license the volume switches and its conflicts stop; a conflict-free `within`
//! clears it.

mod agent_support;

use std::sync::Arc;

use agent_support::{policy, start, t, Harness, Setup};
use chrono::{DateTime, TimeDelta, Utc};
use snapwarden::agent::cycle::CloneKind;
use snapwarden::agent::hook::HookSpec;
use snapwarden::agent::journal::RecommendationKind;

/// Hourly snapshots at :05 (keep 3) on a UTC simulator; a nightly window at 01:40 that runs
/// despite the conflict (`on_conflict = "run"`) with a 38-minute backup: the 02:05 snapshot
/// captures the SnapRestore clone every night: a late release (02:00, the release deadline before
/// 02:05 passes), the chain conflict (02:05), the locked backing snapshot (02:18). Four counting
/// conflicts within two days raise the recommendation: on the second night, not the first.
fn text(licenses: &str, use_when_licensed: bool) -> String {
    format!(
        r#"
[agent]
guard = "5m"
observe_interval = "1m"

[flexclone]
recommend_after = 4
within = "2d"
use_when_licensed = {use_when_licensed}

[[cluster]]
name = "lab"
endpoint = "simulator"
timezone = "UTC"
simulator = {{ version = "9.14.1", licenses = [{licenses}] }}

[[schedule]]
name = "hourly"
cron = "5 * * * *"

[[snapshot_policy]]
name = "p"
copies = [{{ schedule = "hourly", count = 3 }}]

[[volume]]
cluster = "lab"
svm = "svm1"
name = "vol_a"
luns = ["/vol/vol_a/lun0"]
snapshot_policy = "p"
clone = "snaprestore"

[[volume]]
cluster = "lab"
svm = "svm1"
name = "vol_b"
luns = ["/vol/vol_b/lun0"]
snapshot_policy = "p"
clone = "snaprestore"

[[window]]
name = "nightly"
volumes = ["lab/svm1/vol_a"]
start = "40 1 * * *"
timezone = "UTC"
expected = "30m"
max = "40m"
on_conflict = "run"
"#
    )
}

fn setup() -> Setup {
    let mut setup = Setup::at("2027-01-01T01:30:00Z");
    setup.hooks = Some(Arc::new(|_c| {
        Some(HookSpec::Simulated {
            duration: TimeDelta::minutes(38),
            succeed: true,
        })
    }));
    setup
}

/// Lets virtual time pass until `at`, a minute at a time (days pass quickly).
async fn advance(h: &Harness, at: &str) {
    let at = t(at);
    while h.now() < at {
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
    }
}

/// The `snapwarden_flexclone_recommended` sample of `volume`, as `/metrics` renders it.
fn recommended_metric(h: &Harness, volume: &str) -> Option<String> {
    let text = h.metrics.render();
    let want = format!("volume=\"{volume}\"");
    text.lines()
        .find(|l| l.starts_with("snapwarden_flexclone_recommended{") && l.contains(&want))
        .and_then(|l| l.rsplit(' ').next())
        .map(str::to_string)
}

/// Counting conflicts (chain, locked, late release) on vol_a, by instant.
fn counting(h: &Harness) -> Vec<(String, DateTime<Utc>)> {
    let mut v: Vec<(String, DateTime<Utc>)> = h
        .journal
        .volume_conflicts("lab", "svm1", "vol_a")
        .unwrap()
        .into_iter()
        .filter(|c| snapwarden::agent::recommend::counts(c.kind))
        .map(|c| (c.kind.as_str().to_string(), c.at))
        .collect();
    v.sort_by_key(|c| c.1);
    v
}

#[tokio::test(start_paused = true)]
async fn recurring_overruns_on_a_snaprestore_volume_raise_a_recommendation() {
    let h = start(policy(&text("\"snaprestore\"", false)), setup());
    advance(&h, "2027-01-01T23:00:00Z").await;
    // Night 1: three counting conflicts, not yet four.
    let night1: Vec<(String, DateTime<Utc>)> = vec![
        ("late_release".into(), t("2027-01-01T02:00:00Z")),
        ("chain_conflict".into(), t("2027-01-01T02:05:00Z")),
        ("locked".into(), t("2027-01-01T02:18:00Z")),
    ];
    assert_eq!(counting(&h), night1);
    assert!(h.status().flexclone_recommendations.is_empty());
    assert_eq!(recommended_metric(&h, "vol_a").as_deref(), Some("0"));
    advance(&h, "2027-01-02T03:00:00Z").await;
    // Night 2: the fourth counting conflict (the rule: 4 within 2 days) raises it.
    let conflicts = counting(&h);
    assert!(conflicts.len() >= 4, "{conflicts:?}");
    let fourth = conflicts[3].1;
    assert_eq!(fourth, t("2027-01-02T02:00:00Z"));
    let status = h.status();
    assert_eq!(status.flexclone_recommendations.len(), 1, "{status:?}");
    let r = &status.flexclone_recommendations[0];
    assert_eq!(
        (r.cluster.as_str(), r.svm.as_str(), r.volume.as_str()),
        ("lab", "svm1", "vol_a")
    );
    assert_eq!(r.since, fourth);
    assert_eq!(r.licensed, Some(false));
    assert!(r.evidence.contains("chain_conflict"), "{}", r.evidence);
    assert!(r.evidence.contains("not licensed"), "{}", r.evidence);
    // The schedule whose retention broke: the hourly snapshots (ONTAP names them
    // hourly.<date>_<time>) that captured the clones, one per chain conflict.
    let chains = counting(&h)
        .iter()
        .filter(|c| c.0 == "chain_conflict" && c.1 <= h.now())
        .count();
    assert!(
        r.evidence
            .contains(&format!("retention disrupted: hourly {chains} (")),
        "{chains}: {}",
        r.evidence
    );
    assert!(
        r.evidence.contains("locked backing snapshots hold"),
        "{}",
        r.evidence
    );
    // The space night 1's locked backing snapshot held, as the simulator reported it at the
    // last pass that saw it locked: its size when taken (4 KiB × 1..=64, by the volume's
    // snapshot count) plus 0.1 % per hour held of the 10 GiB LUN.
    let night1 = h
        .cycles()
        .into_iter()
        .find(|c| c.window_start == t("2027-01-01T01:40:00Z"))
        .expect("night 1's cycle");
    let space = h.journal.locked_space().unwrap();
    let held = space
        .iter()
        .find(|l| l.cycle_id == night1.id)
        .expect("recorded while locked");
    assert!(held.at >= t("2027-01-01T02:18:00Z"), "{held:?}");
    let created = night1.created_at.expect("created");
    let secs = u64::try_from((held.at - created).num_seconds()).unwrap();
    let change = (10u64 << 30) * secs * 1000 / 3_600_000_000;
    let base = held.bytes - change;
    assert!(
        base.is_multiple_of(4096) && (4096..=64 * 4096).contains(&base),
        "{held:?}: {secs} s held, base {base}"
    );
    // `status` carries the figure the evidence states, as a number: when the recommendation was
    // raised, night 1's was the volume's only locked backing snapshot.
    assert_eq!(r.locked_bytes, Some(held.bytes), "{space:?}");
    assert!(
        r.evidence.contains(&format!("({} bytes", held.bytes)),
        "{}",
        r.evidence
    );
    assert_eq!(recommended_metric(&h, "vol_a").as_deref(), Some("1"));
    assert_eq!(recommended_metric(&h, "vol_b").as_deref(), Some("0"));
    let events = h.journal.recommendation_events().unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].event, RecommendationKind::Raised);
    assert_eq!(events[0].volume, "vol_a");
    assert_eq!(events[0].at, fourth);
    // Without use_when_licensed (and without a license) the volume stays on SnapRestore.
    advance(&h, "2027-01-03T03:00:00Z").await;
    assert!(h
        .cycles()
        .iter()
        .all(|c| c.clone_kind == CloneKind::SnapRestore));
    assert_eq!(h.journal.recommendation_events().unwrap().len(), 1);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn use_when_licensed_switches_to_flexclone_the_conflicts_stop_and_it_clears() {
    let h = start(
        policy(&text("\"snaprestore\", \"flexclone\"", true)),
        setup(),
    );
    advance(&h, "2027-01-02T03:00:00Z").await;
    let status = h.status();
    assert_eq!(status.flexclone_recommendations.len(), 1, "{status:?}");
    assert_eq!(status.flexclone_recommendations[0].licensed, Some(true));
    assert!(
        status.flexclone_recommendations[0]
            .evidence
            .contains("switch clone = \"flexclone\""),
        "{}",
        status.flexclone_recommendations[0].evidence
    );
    let raised_at = status.flexclone_recommendations[0].since;
    // The next nights run FlexClone cycles and add no counting conflict.
    let before = counting(&h);
    advance(&h, "2027-01-04T03:00:00Z").await;
    let cycles = h.cycles();
    let kinds: Vec<(DateTime<Utc>, CloneKind)> = cycles
        .iter()
        .map(|c| (c.window_start, c.clone_kind))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (t("2027-01-01T01:40:00Z"), CloneKind::SnapRestore),
            (t("2027-01-02T01:40:00Z"), CloneKind::SnapRestore),
            (t("2027-01-03T01:40:00Z"), CloneKind::FlexClone),
            (t("2027-01-04T01:40:00Z"), CloneKind::FlexClone),
        ]
    );
    // No chain conflict and no lock after the switch. The FlexClone backups still overrun
    // their release deadline (late releases), which is no chain risk and is not counted.
    let after = counting(&h);
    assert_eq!(after[..before.len()], before[..]);
    let new: Vec<&(String, DateTime<Utc>)> = after[before.len()..].iter().collect();
    assert!(
        new.iter().all(|c| c.0 == "late_release"),
        "conflicts after the switch: {new:?}"
    );
    assert!(!new.is_empty(), "the FlexClone cycles still overrun");
    let events = h.journal.recommendation_events().unwrap();
    let kinds: Vec<RecommendationKind> = events.iter().map(|e| e.event).collect();
    assert_eq!(
        kinds,
        vec![RecommendationKind::Raised, RecommendationKind::Switched]
    );
    assert!(
        events[1].evidence.contains("switched to FlexClone"),
        "{}",
        events[1].evidence
    );
    assert_eq!(recommended_metric(&h, "vol_a").as_deref(), Some("1"));
    // Cleared within a day (the daily re-decision) of two days without a SnapRestore conflict.
    let last = before.last().unwrap().1;
    let cleared_by = last + TimeDelta::days(3);
    let limit = cleared_by - h.now();
    h.wait_for("the recommendation to clear", limit, |h| {
        h.status().flexclone_recommendations.is_empty()
    })
    .await;
    assert!(h.now() >= last + TimeDelta::days(2));
    assert_eq!(recommended_metric(&h, "vol_a").as_deref(), Some("0"));
    let events = h.journal.recommendation_events().unwrap();
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(events[2].event, RecommendationKind::Cleared);
    assert!(events[2].at >= last + TimeDelta::days(2));
    assert!(raised_at <= last);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_restarted_agent_shows_the_recommendation_as_it_was_with_its_locked_space() {
    let h = start(policy(&text("\"snaprestore\"", false)), setup());
    advance(&h, "2027-01-02T03:00:00Z").await;
    let before = h.status().flexclone_recommendations;
    assert_eq!(before.len(), 1, "{before:?}");
    assert!(before[0].locked_bytes.is_some(), "{before:?}");
    // A crash, and the agent again on the same world and journal.
    h.task.abort();
    let (sim, dir, epoch) = (h.sim.clone(), h.dir.clone(), h.now());
    drop(h);
    let mut again = setup();
    again.epoch = epoch;
    again.sim = Some(sim);
    again.dir = Some(dir);
    let h = start(policy(&text("\"snaprestore\"", false)), again);
    h.wait_for("the first pass", TimeDelta::minutes(2), |h| {
        !h.status().clusters.is_empty()
    })
    .await;
    let after = h.status().flexclone_recommendations;
    assert_eq!(after.len(), 1, "{after:?}");
    // Restored from the journal and evaluated again at the first pass: the same recommendation,
    // its space figure present (grown with the time held since it was evaluated).
    let (b, a) = (&before[0], &after[0]);
    assert_eq!(
        (&a.volume, a.since, a.licensed),
        (&b.volume, b.since, b.licensed)
    );
    let (held_before, held_after) = (b.locked_bytes.unwrap(), a.locked_bytes.expect("evaluated"));
    assert!(held_after >= held_before, "{b:?} {a:?}");
    let counts = |e: &str| e.split(" since ").next().unwrap().to_string();
    assert_eq!(counts(&a.evidence), counts(&b.evidence));
    assert!(
        a.evidence.contains(&format!("({held_after} bytes")),
        "{}",
        a.evidence
    );
    assert_eq!(recommended_metric(&h, "vol_a").as_deref(), Some("1"));
    h.stop().await;
}
