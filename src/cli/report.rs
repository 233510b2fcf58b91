//! `snapwarden report`: per volume, from the journal — cycles by result, conflicts by kind, the
//! hours backing snapshots spent locked, and the FlexClone recommendation with its evidence: the
//! page an admin forwards to justify a FlexClone license.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use super::agent::{default_state_dir, open_journal, DirFrom, SinceArg};
use super::tables::{self, time};
use super::{Output, EXIT_INVALID, EXIT_OK};
use crate::agent::cycle::{ConflictKind, Cycle, CycleResult, ObservedConflict};
use crate::agent::journal::LockedSpace;
use crate::agent::recommend::{self, Recommendation};
use crate::config;

/// One volume's page.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct VolumeReport {
    pub cluster: String,
    pub svm: String,
    pub volume: String,
    /// Cycles planned since `since`, by result (`open`: not ended yet).
    pub cycles: BTreeMap<&'static str, u64>,
    /// Conflicts since `since`, by kind.
    pub conflicts: BTreeMap<&'static str, u64>,
    /// Hours its backing snapshots spent locked since `since`.
    pub locked_hours: f64,
    /// Bytes its backing snapshots locked since `since` hold, as ONTAP last reported each
    /// (snapshot `size`); `null` when ONTAP reported none (or none was locked).
    pub locked_bytes: Option<u64>,
    /// In force at `generated_at` (decided over the whole journal, not only since `since`).
    pub recommendation: Option<Recommendation>,
}

/// The whole report. Field order is the JSON's.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub generated_at: DateTime<Utc>,
    pub since: DateTime<Utc>,
    pub recommend_after: u32,
    pub within: String,
    pub volumes: Vec<VolumeReport>,
}

const RESULTS: [&str; 5] = ["completed", "overrun", "failed", "skipped", "open"];
const KINDS: [ConflictKind; 5] = [
    ConflictKind::ChainConflict,
    ConflictKind::Locked,
    ConflictKind::LateRelease,
    ConflictKind::Skipped,
    ConflictKind::Foreign,
];

/// Builds the report from what the journal holds (pure: `now` is an argument).
pub fn build(
    cycles: &[Cycle],
    conflicts: &[ObservedConflict],
    recommend_after: u32,
    within: TimeDelta,
    space: &[LockedSpace],
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Report {
    let entry = |cluster: &str, svm: &str, volume: &str| VolumeReport {
        cluster: cluster.to_string(),
        svm: svm.to_string(),
        volume: volume.to_string(),
        cycles: RESULTS.iter().map(|r| (*r, 0)).collect(),
        conflicts: KINDS.iter().map(|k| (k.as_str(), 0)).collect(),
        locked_hours: 0.0,
        locked_bytes: None,
        recommendation: None,
    };
    // Every volume the journal knows, even without anything since `since`.
    let mut pages: BTreeMap<(String, String, String), VolumeReport> = BTreeMap::new();
    for c in cycles {
        let key = (c.cluster.clone(), c.svm.clone(), c.volume.clone());
        let page = pages
            .entry(key)
            .or_insert_with(|| entry(&c.cluster, &c.svm, &c.volume));
        if c.window_start >= since && c.window_start <= now {
            let r = c.result.map_or("open", CycleResult::as_str);
            *page.cycles.entry(r).or_insert(0) += 1;
        }
    }
    for c in conflicts {
        let key = (c.cluster.clone(), c.svm.clone(), c.volume.clone());
        let page = pages
            .entry(key)
            .or_insert_with(|| entry(&c.cluster, &c.svm, &c.volume));
        if c.at >= since && c.at <= now {
            *page.conflicts.entry(c.kind.as_str()).or_insert(0) += 1;
        }
    }
    let recent: Vec<ObservedConflict> = conflicts
        .iter()
        .filter(|c| c.at >= since && c.at <= now)
        .cloned()
        .collect();
    let ends = recommend::ends(cycles);
    let recommendations = recommend::with_locked_space(
        recommend::for_volumes(conflicts, &ends, recommend_after, within, now, &|_| None),
        conflicts.iter().filter(|c| c.at <= now),
        space,
    );
    for page in pages.values_mut() {
        let mine: Vec<ObservedConflict> = recent
            .iter()
            .filter(|c| c.cluster == page.cluster && c.svm == page.svm && c.volume == page.volume)
            .cloned()
            .collect();
        page.locked_hours = recommend::locked_hours(&mine, &ends, now);
        let probe = Recommendation {
            cluster: page.cluster.clone(),
            svm: page.svm.clone(),
            volume: page.volume.clone(),
            conflicts: 0,
            locked_hours: 0.0,
            locked_bytes: None,
            evidence: String::new(),
        };
        page.locked_bytes = recommend::with_locked_space(vec![probe], &mine, space)
            .pop()
            .and_then(|r| r.locked_bytes);
        page.recommendation = recommendations
            .iter()
            .find(|r| r.cluster == page.cluster && r.svm == page.svm && r.volume == page.volume)
            .cloned();
    }
    Report {
        generated_at: now,
        since,
        recommend_after,
        within: crate::planner::human(within),
        volumes: pages.into_values().collect(),
    }
}

/// `snapwarden report`.
pub fn run(
    policy: Option<&Path>,
    state_dir: Option<PathBuf>,
    since: Option<SinceArg>,
    as_of: Option<DateTime<Utc>>,
    output: Output,
) -> u8 {
    let (policy_dir, rule) = match policy.map(config::load) {
        Some(Ok(p)) => (
            Some(p.agent.state_dir.clone()),
            (p.flexclone.recommend_after, p.flexclone.within),
        ),
        Some(Err(errors)) => {
            eprintln!("{errors}");
            return EXIT_INVALID;
        }
        None => (
            None,
            (
                recommend::DEFAULT_RECOMMEND_AFTER,
                recommend::DEFAULT_WITHIN,
            ),
        ),
    };
    let (dir, from) = match (state_dir, policy_dir) {
        (Some(d), _) => (d, DirFrom::Flag),
        (None, Some(d)) => (d, DirFrom::Policy),
        (None, None) => (default_state_dir(), DirFrom::Default),
    };
    let journal = match open_journal(&dir, from) {
        Ok(j) => j,
        Err(code) => return code,
    };
    let read = journal
        .recent_cycles(DateTime::<Utc>::MIN_UTC, None, usize::MAX >> 1)
        .and_then(|c| {
            Ok((
                c,
                journal.conflicts(DateTime::<Utc>::MIN_UTC, usize::MAX >> 1)?,
                journal.locked_space()?,
            ))
        });
    let (cycles, conflicts, space) = match read {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_INVALID;
        }
    };
    // A simulated journal lies in virtual time: report as of its newest record when that is
    // later than the clock, unless an instant is given.
    let newest = cycles
        .iter()
        .filter_map(|c| c.released_at.or(c.created_at))
        .chain(conflicts.iter().map(|c| c.at))
        .max();
    let now = as_of.unwrap_or_else(|| newest.map_or_else(Utc::now, |n| n.max(Utc::now())));
    let since = match since.unwrap_or(SinceArg::Ago(TimeDelta::days(30))) {
        SinceArg::At(t) => t,
        SinceArg::Ago(d) => now
            .checked_sub_signed(d)
            .unwrap_or(DateTime::<Utc>::MIN_UTC),
    };
    if as_of.is_some() && since > now {
        eprintln!(
            "--since {} is after --as-of {}: nothing lies between them; give an earlier --since",
            since.to_rfc3339(),
            now.to_rfc3339()
        );
        return EXIT_INVALID;
    }
    let report = build(&cycles, &conflicts, rule.0, rule.1, &space, since, now);
    let text = match output {
        Output::Json => {
            let mut s = serde_json::to_string_pretty(&report).unwrap_or_default();
            s.push('\n');
            s
        }
        Output::Table => table(&report),
    };
    super::print(&text);
    EXIT_OK
}

/// One line per volume, then each recommendation with its evidence.
pub fn table(r: &Report) -> String {
    let mut out = format!(
        "since {} (as of {}); FlexClone recommended after {} conflicts within {}\n\n",
        time(Some(r.since)),
        time(Some(r.generated_at)),
        r.recommend_after,
        r.within
    );
    let rows: Vec<Vec<String>> = r
        .volumes
        .iter()
        .map(|v| {
            let n = |m: &BTreeMap<&str, u64>, k: &str| m.get(k).copied().unwrap_or(0).to_string();
            vec![
                format!("{}/{}/{}", v.cluster, v.svm, v.volume),
                n(&v.cycles, "completed"),
                n(&v.cycles, "overrun"),
                n(&v.cycles, "failed"),
                n(&v.cycles, "skipped"),
                n(&v.cycles, "open"),
                n(&v.conflicts, "chain_conflict"),
                n(&v.conflicts, "locked"),
                n(&v.conflicts, "late_release"),
                format!("{:.2}", v.locked_hours),
                v.locked_bytes
                    .map_or_else(|| "-".to_string(), recommend::human_bytes),
                if v.recommendation.is_some() {
                    "recommended"
                } else {
                    "-"
                }
                .to_string(),
            ]
        })
        .collect();
    out.push_str(&tables::table(
        &[
            "VOLUME",
            "COMPLETED",
            "OVERRUN",
            "FAILED",
            "SKIPPED",
            "OPEN",
            "CHAIN",
            "LOCKED",
            "LATE",
            "LOCKED HOURS",
            "HELD",
            "FLEXCLONE",
        ],
        &rows,
    ));
    for v in &r.volumes {
        if let Some(rec) = &v.recommendation {
            out.push_str(&format!(
                "\nFlexClone recommended for {}/{}/{}: {}\n",
                rec.cluster, rec.svm, rec.volume, rec.evidence
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::cycle::{CloneKind, CycleState};

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn cycle(id: &str, volume: &str, start: &str, result: Option<CycleResult>) -> Cycle {
        Cycle {
            id: id.into(),
            window: "nightly".into(),
            cluster: "c".into(),
            svm: "s".into(),
            volume: volume.into(),
            window_start: t(start),
            create_at: t(start),
            release_by: t(start) + TimeDelta::hours(1),
            release_deadline: None,
            backing_snapshot: format!("snapwarden.nightly.{id}"),
            clone_kind: CloneKind::SnapRestore,
            clones: Vec::new(),
            state: if result.is_some() {
                CycleState::Released
            } else {
                CycleState::Locked
            },
            result,
            created_at: Some(t(start)),
            clones_created_at: None,
            clones_deleted_at: None,
            released_at: result.map(|_| t(start) + TimeDelta::hours(3)),
            detail: String::new(),
            replica: None,
        }
    }

    fn conflict(kind: ConflictKind, volume: &str, cycle: &str, at: &str) -> ObservedConflict {
        ObservedConflict {
            kind,
            cluster: "c".into(),
            svm: "s".into(),
            volume: volume.into(),
            window: Some("nightly".into()),
            cycle: Some(cycle.into()),
            at: t(at),
            detail: String::new(),
            key: format!("{cycle}{at}"),
        }
    }

    #[test]
    fn counts_locked_hours_and_the_recommendation_per_volume() {
        use CycleResult::*;
        let cycles = vec![
            cycle("a1", "a", "2027-01-01T01:00:00Z", Some(Completed)),
            cycle("a2", "a", "2027-01-02T01:00:00Z", Some(Overrun)),
            cycle("a3", "a", "2027-01-03T01:00:00Z", None),
            cycle("b1", "b", "2027-01-01T01:00:00Z", Some(Completed)),
            // Before `since`: not counted.
            cycle("b0", "b", "2026-12-01T01:00:00Z", Some(Failed)),
        ];
        let conflicts = vec![
            conflict(
                ConflictKind::ChainConflict,
                "a",
                "a2",
                "2027-01-02T02:05:00Z",
            ),
            // Locked from 03:00 to the release at 04:00 (a2 released 3 h after its start).
            conflict(ConflictKind::Locked, "a", "a2", "2027-01-02T03:00:00Z"),
            // Still locked at `now` (no release): 2027-01-03T02:00 → now 2027-01-04T00:00 = 22 h.
            conflict(ConflictKind::Locked, "a", "a3", "2027-01-03T02:00:00Z"),
            conflict(ConflictKind::Foreign, "b", "b1", "2027-01-01T05:00:00Z"),
        ];
        // a3's backing snapshot was reported holding 3 GiB while locked; a2's size never was.
        let space = [LockedSpace {
            cycle_id: "a3".into(),
            cluster: "c".into(),
            svm: "s".into(),
            volume: "a".into(),
            snapshot: "snapwarden.nightly.a3".into(),
            bytes: 3 << 30,
            at: t("2027-01-03T02:00:00Z"),
        }];
        let r = build(
            &cycles,
            &conflicts,
            3,
            TimeDelta::days(7),
            &space,
            t("2027-01-01T00:00:00Z"),
            t("2027-01-04T00:00:00Z"),
        );
        assert_eq!(r.volumes.len(), 2);
        let a = &r.volumes[0];
        assert_eq!(a.volume, "a");
        assert_eq!(
            (a.cycles["completed"], a.cycles["overrun"], a.cycles["open"]),
            (1, 1, 1)
        );
        assert_eq!(
            (a.conflicts["chain_conflict"], a.conflicts["locked"]),
            (1, 2)
        );
        assert_eq!(a.locked_hours, 23.0);
        assert_eq!(a.locked_bytes, Some(3 << 30));
        let rec = a
            .recommendation
            .as_ref()
            .expect("three conflicts in a week");
        assert_eq!(rec.conflicts, 3);
        assert!(
            rec.evidence.contains("chain_conflict 1, locked 2"),
            "{}",
            rec.evidence
        );
        assert!(
            rec.evidence.contains("not in the journal"),
            "{}",
            rec.evidence
        );
        let b = &r.volumes[1];
        assert_eq!((b.cycles["completed"], b.cycles["failed"]), (1, 0));
        assert_eq!(b.conflicts["foreign"], 1);
        assert_eq!(b.recommendation, None);
        assert_eq!(b.locked_bytes, None);
        assert_eq!(rec.locked_bytes, Some(3 << 30));
        assert!(rec.evidence.contains("hold 3.00 GiB"), "{}", rec.evidence);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["volumes"][0]["locked_bytes"], 3u64 << 30);
        assert_eq!(
            json["volumes"][0]["recommendation"]["locked_bytes"],
            3u64 << 30
        );
        assert!(json["volumes"][1]["locked_bytes"].is_null());
        let text = table(&r);
        assert!(text.contains("c/s/a"), "{text}");
        assert!(text.contains("3.00 GiB"), "{text}");
        assert!(text.contains("FlexClone recommended for c/s/a"), "{text}");
    }

    /// The header's instants to the second and upper-case column names, like `status` and
    /// `history`; the JSON keeps its instants whole.
    #[test]
    fn the_table_formats_instants_and_columns_like_the_other_tables() {
        let now = t("2027-01-31T12:00:00.123456789Z");
        let cycles = [cycle(
            "x",
            "a",
            "2027-01-30T01:10:00Z",
            Some(CycleResult::Completed),
        )];
        let r = build(
            &cycles,
            &[],
            3,
            TimeDelta::days(7),
            &[],
            now - TimeDelta::days(30),
            now,
        );
        assert_eq!(
            table(&r),
            "\
since 2027-01-01 12:00:00Z (as of 2027-01-31 12:00:00Z); FlexClone recommended after 3 conflicts within 7d

VOLUME  COMPLETED  OVERRUN  FAILED  SKIPPED  OPEN  CHAIN  LOCKED  LATE  LOCKED HOURS  HELD  FLEXCLONE
c/s/a   1          0        0       0        0     0      0       0     0.00          -     -
"
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["generated_at"], "2027-01-31T12:00:00.123456789Z");
    }
}
