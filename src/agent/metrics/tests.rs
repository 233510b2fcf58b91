//! The metrics' own tests: label sets kept in line with the policy, the values they carry.

use super::counted::outcome;
use super::*;
use crate::agent::state::{Open, Step};
use crate::domain::Observed;
use crate::ontap::OntapError;
use chrono::TimeDelta;
use std::path::Path;

fn policy(volumes: &[&str], window: bool) -> Policy {
    let mut text = String::from(
        r#"
[[cluster]]
name = "lab"
endpoint = "simulator"
timezone = "UTC"

[[schedule]]
name = "hourly"
cron = "5 * * * *"

[[snapshot_policy]]
name = "p"
copies = [{ schedule = "hourly", count = 3 }]
"#,
    );
    for v in volumes {
        text.push_str(&format!(
            "[[volume]]\ncluster = \"lab\"\nsvm = \"svm1\"\nname = \"{v}\"\nluns = [\"/vol/{v}/lun0\"]\nsnapshot_policy = \"p\"\n"
        ));
    }
    if window {
        text.push_str(
            "[[window]]\nname = \"nightly\"\nvolumes = [\"lab/svm1/vol_a\"]\nstart = \"10 1 * * *\"\ntimezone = \"UTC\"\nexpected = \"20m\"\nmax = \"40m\"\n",
        );
    }
    crate::config::parse_str(&text, Path::new("unit.toml")).unwrap_or_else(|e| panic!("{e}"))
}

/// A live cycle on `volume` since `since`, and one it released an hour before `now` with 5
/// minutes to spare before the next scheduled snapshot.
fn live_and_released(memory: &mut Memory, volume: &str, since: DateTime<Utc>, now: DateTime<Utc>) {
    let on = |id: &str, at| Cycle {
        window: "nightly".into(),
        cluster: "lab".into(),
        volume: volume.into(),
        ..Cycle::sample(&format!("{id}-{volume}"), at)
    };
    let live = Cycle {
        state: CycleState::Live,
        created_at: Some(since),
        ..on("live", since)
    };
    memory.open.insert(
        live.id.clone(),
        Open {
            cycle: live,
            step: Step::Release,
            settle_after: None,
        },
    );
    memory.recent.push_back(Cycle {
        state: CycleState::Released,
        result: Some(CycleResult::Completed),
        released_at: Some(now - TimeDelta::hours(1)),
        release_deadline: Some(now - TimeDelta::hours(1) + TimeDelta::minutes(5)),
        ..on("released", now - TimeDelta::hours(2))
    });
}

#[test]
fn series_of_volumes_and_windows_that_leave_the_policy_are_removed() {
    let m = Metrics::new();
    let before = Arc::new(policy(&["vol_a", "vol_b"], true));
    let now: DateTime<Utc> = "2027-01-01T01:20:00Z".parse().unwrap();
    m.retain(&before);
    let mut memory = Memory::default();
    for v in ["vol_a", "vol_b"] {
        m.conflict(&before, "lab", "svm1", v, ConflictKind::Foreign);
        live_and_released(&mut memory, v, now - TimeDelta::minutes(5), now);
    }
    let plan = crate::planner::plan(&before, &Observed::default(), now, TimeDelta::days(1));
    m.scheduled(&before, &plan, now);
    publish(&m, &before, &[ClusterView::default()], &memory, now);
    // A conflict on a volume outside the policy is not labelled at all.
    m.conflict(
        &before,
        "lab",
        "svm1",
        "not_in_policy",
        ConflictKind::Foreign,
    );
    let text = m.render();
    assert!(text.contains("volume=\"vol_b\""), "{text}");
    assert!(!text.contains("not_in_policy"), "{text}");
    assert!(text.contains("window=\"nightly\""), "{text}");

    m.retain(&Arc::new(policy(&["vol_a"], false)));
    let text = m.render();
    assert!(!text.contains("vol_b"), "{text}");
    assert!(!text.contains("nightly"), "{text}");
    // vol_a keeps every family.
    for family in [
        "snapwarden_conflicts_total{",
        "snapwarden_backing_snapshots{",
        "snapwarden_backing_snapshot_oldest_age_seconds{",
        "snapwarden_release_slack_seconds{",
        "snapwarden_next_scheduled_snapshot_timestamp_seconds{",
        "snapwarden_flexclone_recommended{",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(family) && l.contains("volume=\"vol_a\"")),
            "{family}: {text}"
        );
    }
}

#[test]
fn every_policy_volume_has_every_conflict_kind_from_the_start_at_zero() {
    // A counter that appears at 1 hides its first increment from `increase()`: the
    // dashboards' "conflicts in range" would miss a volume's first conflict.
    let m = Metrics::new();
    let p = Arc::new(policy(&["vol_a", "vol_b"], false));
    m.retain(&p);
    let text = m.render();
    let zeros = text
        .lines()
        .filter(|l| l.starts_with("snapwarden_conflicts_total{") && l.ends_with("} 0"))
        .count();
    assert_eq!(zeros, 2 * CONFLICT_KINDS.len(), "{text}");
    for kind in [
        "chain_conflict",
        "locked",
        "late_release",
        "foreign",
        "skipped",
    ] {
        assert!(
            text.contains(&format!(
                "snapwarden_conflicts_total{{cluster=\"lab\",kind=\"{kind}\",svm=\"svm1\",volume=\"vol_b\"}} 0"
            )),
            "{kind}: {text}"
        );
    }
    m.conflict(&p, "lab", "svm1", "vol_a", ConflictKind::Locked);
    m.retain(&p);
    assert!(m.render().contains(
        "snapwarden_conflicts_total{cluster=\"lab\",kind=\"locked\",svm=\"svm1\",volume=\"vol_a\"} 1"
    ));
    // A volume that leaves takes its zeros along.
    m.retain(&Arc::new(policy(&["vol_a"], false)));
    assert!(!m.render().contains("vol_b"));
}

#[test]
fn ontap_series_of_a_cluster_that_left_the_policy_are_removed() {
    let m = Metrics::new();
    let p = Arc::new(policy(&["vol_a"], false));
    m.ontap_request("lab", "volumes", "ok".into(), 0.01);
    m.ontap_request("gone", "volumes", "ok".into(), 0.01);
    m.ontap_up.with_label_values(&["gone"]).set(1);
    m.known().clusters.insert("gone".into());
    m.retain(&p);
    let text = m.render();
    assert!(!text.contains("cluster=\"gone\""), "{text}");
    assert!(text.contains("cluster=\"lab\""), "{text}");
}

#[test]
fn retaining_again_for_the_same_policy_still_removes_a_new_request_series_of_a_cluster_gone() {
    let m = Metrics::new();
    let p = Arc::new(policy(&["vol_a"], false));
    m.retain_if_changed(&p);
    m.retain_if_changed(&p);
    // A call to a cluster that left the policy (a client still in flight after a reload).
    m.ontap_request("gone", "volumes", "ok".into(), 0.01);
    m.ontap_request("lab", "volumes", "ok".into(), 0.01);
    assert!(m.render().contains("cluster=\"gone\""));
    m.retain_if_changed(&p);
    let text = m.render();
    assert!(!text.contains("cluster=\"gone\""), "{text}");
    assert!(text.contains("cluster=\"lab\""), "{text}");
    // An equal policy that is another load still counts as a change: its volumes' series
    // come back after a removal.
    let without = Arc::new(policy(&["vol_b"], false));
    m.retain_if_changed(&without);
    assert!(!m.render().contains("vol_a"));
    m.retain_if_changed(&Arc::new(policy(&["vol_a"], false)));
    assert!(m.render().contains(
        "snapwarden_conflicts_total{cluster=\"lab\",kind=\"locked\",svm=\"svm1\",volume=\"vol_a\"} 0"
    ));
}

#[test]
fn the_code_label_is_the_ontap_code_ok_or_the_failure_class() {
    let api: Result<(), OntapError> = Err(OntapError::Api {
        cluster: "lab".into(),
        target: "volume v snapshot s".into(),
        code: crate::ontap::SNAPSHOT_LOCKED,
        message: "locked".into(),
        http_status: Some(409),
    });
    assert_eq!(outcome(api.as_ref().map(|_| ())), "1638555");
    assert_eq!(outcome(Ok(())), "ok");
    let auth: Result<(), OntapError> = Err(OntapError::Auth {
        cluster: "lab".into(),
        http_status: 401,
    });
    assert_eq!(outcome(auth.as_ref().map(|_| ())), "auth");
}

#[test]
fn the_config_hash_follows_the_files_content_and_fits_a_float_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/minimal.toml"))
            .unwrap();
    std::fs::write(&path, &text).unwrap();
    let a = crate::config::load(&path).unwrap();
    let ha = policy_hash(&a);
    assert!(ha > 0.0 && ha < 2f64.powi(48) && ha.fract() == 0.0, "{ha}");
    assert_eq!(policy_hash(&crate::config::load(&path).unwrap()), ha);
    std::fs::write(&path, format!("{text}\n# an edit\n")).unwrap();
    assert_ne!(policy_hash(&crate::config::load(&path).unwrap()), ha);
    // The reload trio after a failed attempt.
    let m = Metrics::new();
    m.config_loaded(&a, "2027-01-01T00:00:00Z".parse().unwrap());
    m.reload_attempted(false);
    let text = m.render();
    assert!(
        text.contains("snapwarden_config_last_reload_successful 0"),
        "{text}"
    );
    assert!(
        text.contains("snapwarden_config_reloads_total{result=\"failure\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("snapwarden_config_last_reload_success_timestamp_seconds 1798761600"),
        "{text}"
    );
}

#[test]
fn every_family_of_the_tables_has_a_name_no_other_family_has() {
    let m = Metrics::new();
    let estate = m.estate();
    let copies = m.managed.copies();
    let mut names: Vec<&str> = estate::written(&estate, &m.estate_families)
        .iter()
        .map(|f| f.name)
        .collect();
    names.extend(m.managed.written(&copies).iter().map(|f| f.name));
    let unique: BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(unique.len(), names.len(), "{names:?}");
    // The registry refuses a family of a name it holds (a vector's); the render merges the
    // tables' families with the vectors' by name.
    let probe = |name: &str| {
        let gauge = prometheus::IntGauge::new(name, "probe").expect("a valid name");
        m.registry.register(Box::new(gauge))
    };
    assert!(probe("snapwarden_ontap_up").is_err());
    for name in names {
        assert!(probe(name).is_ok(), "{name} is also a vector's");
    }
}
