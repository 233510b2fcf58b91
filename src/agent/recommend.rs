//! The FlexClone recommendation, decided purely from one volume's journaled conflicts and
//! `now`: `recommend_after` conflicts within `within` raise it; a conflict-free stretch of
//! `within` clears it.
//!
//! No clock, no I/O: the caller reads the journal and passes what it read.

use std::collections::BTreeMap;

use crate::fasthash::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use super::cycle::{CloneKind, ConflictKind, Cycle, ObservedConflict};
use super::journal::LockedSpace;

/// Defaults of `[flexclone]` (`config/reference.toml`), for a journal read without its policy.
pub const DEFAULT_RECOMMEND_AFTER: u32 = 3;
pub const DEFAULT_WITHIN: TimeDelta = TimeDelta::days(7);

/// Kinds that count towards a recommendation: what SnapRestore's dependency on the backing
/// snapshot causes. Foreign snapshots and skipped occurrences are not its doing.
pub fn counts(kind: ConflictKind) -> bool {
    matches!(
        kind,
        ConflictKind::ChainConflict | ConflictKind::Locked | ConflictKind::LateRelease
    )
}

/// A recommendation in force at `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raised {
    /// The conflict that brought the count to `recommend_after`.
    pub at: DateTime<Utc>,
    /// Counting conflicts since the episode began (the first of the `recommend_after`), by kind.
    pub by_kind: BTreeMap<&'static str, u64>,
    /// Windows whose cycles had those conflicts, sorted.
    pub windows: Vec<String>,
    /// Schedules whose retention those conflicts disrupted: the name prefix of each scheduled
    /// snapshot that captured a clone (ONTAP names them `<prefix>.<date>_<time>`), with how many.
    pub schedules: BTreeMap<String, u64>,
}

/// The schedule prefix of the scheduled snapshot a chain conflict names (its journal key is
/// `chain:<cycle>:<snapshot>`).
fn captured_by(c: &ObservedConflict) -> Option<&str> {
    if c.kind != ConflictKind::ChainConflict {
        return None;
    }
    let (_, snapshot) = c.key.strip_prefix("chain:")?.split_once(':')?;
    snapshot.rsplit_once('.').map(|(prefix, _)| prefix)
}

impl Raised {
    pub fn total(&self) -> u64 {
        self.by_kind.values().sum()
    }
}

/// Whether a recommendation is in force at `now` for one volume, given its conflicts (any
/// order, any kinds; those after `now` are ignored).
///
/// Walking the counting conflicts in time order: a recommendation is raised at a conflict when
/// `recommend_after` of them lie in `(t - within, t]`; once raised it stays until a stretch of
/// `within` passes without a conflict (between two conflicts, or from the last one to `now`).
pub fn decide<'c>(
    conflicts: impl IntoIterator<Item = &'c ObservedConflict>,
    recommend_after: u32,
    within: TimeDelta,
    now: DateTime<Utc>,
) -> Option<Raised> {
    let mut relevant: Vec<&ObservedConflict> = conflicts
        .into_iter()
        .filter(|c| counts(c.kind) && c.at <= now)
        .collect();
    relevant.sort_by_key(|c| c.at);
    let need = usize::try_from(recommend_after.max(1)).unwrap_or(usize::MAX);
    // Index of the first conflict of the current episode, and of the raise, when in force.
    let mut raised: Option<(usize, usize)> = None;
    let mut first_in_window = 0;
    for i in 0..relevant.len() {
        let t = relevant[i].at;
        if i > 0 && t - relevant[i - 1].at >= within {
            raised = None;
        }
        while t - relevant[first_in_window].at >= within {
            first_in_window += 1;
        }
        if raised.is_none() && i + 1 - first_in_window >= need {
            raised = Some((first_in_window, i));
        }
    }
    let (first, at) = raised?;
    let last = relevant.last()?;
    if now - last.at >= within {
        return None;
    }
    let mut by_kind = BTreeMap::new();
    let mut windows: Vec<&str> = Vec::new();
    let mut schedules: BTreeMap<&str, u64> = BTreeMap::new();
    for c in &relevant[first..] {
        *by_kind.entry(c.kind.as_str()).or_insert(0) += 1;
        if let Some(s) = captured_by(c) {
            *schedules.entry(s).or_insert(0) += 1;
        }
        if let Some(w) = &c.window {
            windows.push(w);
        }
    }
    windows.sort_unstable();
    windows.dedup();
    Some(Raised {
        at: relevant[at].at,
        by_kind,
        windows: windows.into_iter().map(str::to_string).collect(),
        schedules: schedules
            .into_iter()
            .map(|(s, n)| (s.to_string(), n))
            .collect(),
    })
}

/// A recommendation in force, with its evidence, as `simulate` and `report` show it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Recommendation {
    pub cluster: String,
    pub svm: String,
    pub volume: String,
    /// Counting conflicts in the episode that raised it.
    pub conflicts: u64,
    pub locked_hours: f64,
    /// Bytes the volume's locked backing snapshots hold, as ONTAP last reported each (`size`);
    /// `null` when ONTAP reported none of them.
    pub locked_bytes: Option<u64>,
    pub evidence: String,
}

/// What the rule reads of a cycle that conflicts name: whether it cloned with FlexClone and
/// when it was released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CycleEnd {
    pub flexclone: bool,
    pub released_at: Option<DateTime<Utc>>,
}

/// The [`CycleEnd`] of each cycle, by cycle id.
pub type CycleEnds = HashMap<String, CycleEnd>;

impl From<&Cycle> for CycleEnd {
    fn from(c: &Cycle) -> Self {
        CycleEnd {
            flexclone: c.clone_kind == CloneKind::FlexClone,
            released_at: c.released_at,
        }
    }
}

/// The ends of `cycles`, by id.
pub fn ends<'c>(cycles: impl IntoIterator<Item = &'c Cycle>) -> CycleEnds {
    cycles
        .into_iter()
        .map(|c| (c.id.clone(), CycleEnd::from(c)))
        .collect()
}

/// Hours (to the hundredth) that the volume's backing snapshots spent locked: from each refused
/// delete (a `locked` conflict) to the cycle's release, or `now` when not released.
pub fn locked_hours<'c>(
    conflicts: impl IntoIterator<Item = &'c ObservedConflict>,
    cycles: &CycleEnds,
    now: DateTime<Utc>,
) -> f64 {
    let ms: i64 = conflicts
        .into_iter()
        .filter(|c| c.kind == ConflictKind::Locked && c.at <= now)
        .filter_map(|c| {
            let cycle = cycles.get(c.cycle.as_deref()?)?;
            let until = cycle.released_at.unwrap_or(now).min(now);
            Some((until - c.at).num_milliseconds().max(0))
        })
        .fold(0i64, i64::saturating_add);
    (ms / 36_000) as f64 / 100.0
}

/// Whether a conflict is evidence for FlexClone: one of a SnapRestore cycle, or tied to no
/// cycle. A FlexClone cycle's late release (after a switch) is no chain risk and must not keep
/// a recommendation in force. A conflict whose cycle is not in `cycles` is evidence.
pub fn is_evidence(c: &ObservedConflict, cycles: &CycleEnds) -> bool {
    c.cycle
        .as_deref()
        .and_then(|id| cycles.get(id))
        .is_none_or(|e| !e.flexclone)
}

/// The recommendations in force at `now`, one per volume (sorted by cluster, svm, volume), from
/// the conflicts among `conflicts` that are [evidence](is_evidence).
/// `licensed` answers the cluster's flexclone license state when it is known.
pub fn for_volumes(
    conflicts: &[ObservedConflict],
    cycles: &CycleEnds,
    recommend_after: u32,
    within: TimeDelta,
    now: DateTime<Utc>,
    licensed: &dyn Fn(&str) -> Option<bool>,
) -> Vec<Recommendation> {
    let mut by_volume: BTreeMap<(&str, &str, &str), Vec<&ObservedConflict>> = BTreeMap::new();
    for c in conflicts.iter().filter(|c| is_evidence(c, cycles)) {
        by_volume
            .entry((&c.cluster, &c.svm, &c.volume))
            .or_default()
            .push(c);
    }
    let mut out = Vec::new();
    for ((cluster, svm, volume), list) in by_volume {
        let Some(raised) = decide(list.iter().copied(), recommend_after, within, now) else {
            continue;
        };
        let rule = Rule {
            recommend_after,
            within,
            now,
        };
        out.push(recommendation(
            [cluster, svm, volume],
            list.iter().copied(),
            &raised,
            cycles,
            &rule,
            licensed(cluster),
        ));
    }
    out
}

/// The rule's settings and the instant it is decided at.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub recommend_after: u32,
    pub within: TimeDelta,
    pub now: DateTime<Utc>,
}

/// The recommendation of one volume (`[cluster, svm, volume]`) in force as `raised`, from its
/// evidence `list` (its conflicts of SnapRestore cycles and of none); `licensed` is the
/// cluster's flexclone license state when it is known.
pub fn recommendation<'c>(
    [cluster, svm, volume]: [&str; 3],
    list: impl IntoIterator<Item = &'c ObservedConflict>,
    raised: &Raised,
    cycles: &CycleEnds,
    rule: &Rule,
    licensed: Option<bool>,
) -> Recommendation {
    let Rule {
        recommend_after,
        within,
        now,
    } = *rule;
    let hours = locked_hours(list, cycles, now);
    let kinds: Vec<String> = raised
        .by_kind
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    let advice = match licensed {
        Some(true) => "flexclone is licensed on the cluster: switch clone = \"flexclone\"",
        Some(false) => {
            "flexclone is not licensed on the cluster: a FlexClone license would end these conflicts"
        }
        None => "the cluster's flexclone license state is not in the journal (`status` shows it)",
    };
    let retention = if raised.schedules.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = raised
            .schedules
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect();
        format!(
            "; retention disrupted: {} (scheduled snapshots that captured a clone and keep its backing snapshot until they rotate out)",
            list.join(", ")
        )
    };
    Recommendation {
        cluster: cluster.to_string(),
        svm: svm.to_string(),
        volume: volume.to_string(),
        conflicts: raised.total(),
        locked_hours: hours,
        locked_bytes: None,
        evidence: format!(
            "{} conflicts ({}) since {}, at least {recommend_after} within {}; windows {}{retention}; backing snapshots locked {hours:.2} h; {advice}",
            raised.total(),
            kinds.join(", "),
            raised.at.to_rfc3339(),
            crate::planner::human(within),
            raised.windows.join(", "),
        ),
    }
}

/// Adds to each recommendation the space its volume's locked backing snapshots hold: the sum,
/// over the cycles with a `locked` conflict on that volume in `conflicts`, of the last size
/// `space` recorded for them. A volume none of whose locked snapshots had a size reported keeps
/// `locked_bytes = None`, and its evidence says so.
pub fn with_locked_space<'c>(
    mut recommendations: Vec<Recommendation>,
    conflicts: impl IntoIterator<Item = &'c ObservedConflict> + Clone,
    space: &[LockedSpace],
) -> Vec<Recommendation> {
    for r in &mut recommendations {
        let mut cycles: Vec<&str> = conflicts
            .clone()
            .into_iter()
            .filter(|c| {
                c.kind == ConflictKind::Locked
                    && c.cluster == r.cluster
                    && c.svm == r.svm
                    && c.volume == r.volume
            })
            .filter_map(|c| c.cycle.as_deref())
            .collect();
        cycles.sort_unstable();
        cycles.dedup();
        let sizes: Vec<u64> = space
            .iter()
            .filter(|l| cycles.binary_search(&l.cycle_id.as_str()).is_ok())
            .map(|l| l.bytes)
            .collect();
        r.locked_bytes =
            (!sizes.is_empty()).then(|| sizes.iter().fold(0u64, |t, b| t.saturating_add(*b)));
        let clause = match r.locked_bytes {
            Some(b) => format!(
                "; locked backing snapshots hold {} ({b} bytes, ONTAP's snapshot size)",
                human_bytes(b)
            ),
            None => "; space held by locked backing snapshots: not reported by ONTAP".to_string(),
        };
        // Beside the locked hours, before the license advice (which stays the last clause).
        let at = r
            .evidence
            .find("backing snapshots locked ")
            .and_then(|i| r.evidence[i..].find("; ").map(|j| i + j))
            .unwrap_or(r.evidence.len());
        r.evidence.insert_str(at, &clause);
    }
    recommendations
}

/// Bytes in binary units with two decimals (`1.50 GiB`), bytes below 1 KiB.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if b < 1024 {
        return format!("{b} B");
    }
    let mut v = b as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.2} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn c(kind: ConflictKind, at: &str, window: &str) -> ObservedConflict {
        ObservedConflict {
            kind,
            cluster: "c".into(),
            svm: "s".into(),
            volume: "v".into(),
            window: Some(window.into()),
            cycle: None,
            at: t(at),
            detail: String::new(),
            key: format!("{at}{window}"),
        }
    }

    const CHAIN: ConflictKind = ConflictKind::ChainConflict;

    #[test]
    fn three_within_a_week_raise_it_two_do_not() {
        let week = TimeDelta::days(7);
        let two = [
            c(CHAIN, "2027-01-01T01:00:00Z", "n"),
            c(ConflictKind::Locked, "2027-01-03T01:00:00Z", "n"),
        ];
        assert_eq!(decide(&two, 3, week, t("2027-01-04T00:00:00Z")), None);
        let mut three = two.to_vec();
        three.push(c(CHAIN, "2027-01-07T23:00:00Z", "m"));
        let r = decide(&three, 3, week, t("2027-01-08T00:00:00Z")).expect("raised");
        // Raised at the third: 6 days 22 hours after the first, inside the week.
        assert_eq!(r.at, t("2027-01-07T23:00:00Z"));
        assert_eq!(r.total(), 3);
        assert_eq!(r.by_kind.get("chain_conflict"), Some(&2));
        assert_eq!(r.by_kind.get("locked"), Some(&1));
        assert_eq!(r.windows, vec!["m".to_string(), "n".to_string()]);
        // Not yet at a `now` before the third.
        assert_eq!(decide(&three, 3, week, t("2027-01-07T22:00:00Z")), None);
    }

    #[test]
    fn the_evidence_names_the_schedules_whose_snapshots_captured_a_clone() {
        // Keys as the agent writes them: the cycle's UUID, then the snapshot's name.
        let chain = |at: &str, snapshot: &str| ObservedConflict {
            key: format!("chain:0b6e7d1c-5a3f-4c2e-9d8a-{}:{snapshot}", &at[11..13]),
            ..c(CHAIN, at, "n")
        };
        let list = [
            chain("2027-01-01T02:05:00Z", "hourly.2027-01-01_0205"),
            c(ConflictKind::Locked, "2027-01-01T02:18:00Z", "n"),
            chain("2027-01-02T00:00:00Z", "daily.2027-01-02_0000"),
            chain("2027-01-02T02:05:00Z", "hourly.2027-01-02_0205"),
            // A snapshot name without ONTAP's date suffix names no schedule.
            chain("2027-01-02T03:00:00Z", "manual"),
        ];
        let now = t("2027-01-03T00:00:00Z");
        let r = decide(&list, 3, TimeDelta::days(7), now).expect("raised");
        let want: BTreeMap<String, u64> = [("daily".to_string(), 1), ("hourly".to_string(), 2)]
            .into_iter()
            .collect();
        assert_eq!(r.schedules, want);
        let out = for_volumes(
            &list,
            &CycleEnds::default(),
            3,
            TimeDelta::days(7),
            now,
            &|_| Some(false),
        );
        assert!(
            out[0]
                .evidence
                .contains("; retention disrupted: daily 1, hourly 2 (scheduled snapshots"),
            "{}",
            out[0].evidence
        );
        // Without a chain conflict there is no retention clause.
        let locked = [
            c(ConflictKind::Locked, "2027-01-01T00:00:00Z", "n"),
            c(ConflictKind::LateRelease, "2027-01-01T01:00:00Z", "n"),
            c(ConflictKind::Locked, "2027-01-01T02:00:00Z", "n"),
        ];
        let out = for_volumes(
            &locked,
            &CycleEnds::default(),
            3,
            TimeDelta::days(7),
            now,
            &|_| None,
        );
        assert!(
            !out[0].evidence.contains("retention"),
            "{}",
            out[0].evidence
        );
    }

    #[test]
    fn three_spread_over_more_than_the_period_do_not_raise_it() {
        // 1st, 5th, 9th: any two fit in a week, never three.
        let spread = [
            c(CHAIN, "2027-01-01T00:00:00Z", "n"),
            c(CHAIN, "2027-01-05T00:00:00Z", "n"),
            c(CHAIN, "2027-01-09T00:00:00Z", "n"),
        ];
        assert_eq!(
            decide(&spread, 3, TimeDelta::days(7), t("2027-01-09T01:00:00Z")),
            None
        );
        // Exactly a week apart is outside `(t - within, t]`.
        let edge = [
            c(CHAIN, "2027-01-01T00:00:00Z", "n"),
            c(CHAIN, "2027-01-04T00:00:00Z", "n"),
            c(CHAIN, "2027-01-08T00:00:00Z", "n"),
        ];
        assert_eq!(
            decide(&edge, 3, TimeDelta::days(7), t("2027-01-08T01:00:00Z")),
            None
        );
    }

    #[test]
    fn a_conflict_free_period_clears_it_and_a_new_episode_needs_the_full_count() {
        let week = TimeDelta::days(7);
        let mut cs = vec![
            c(CHAIN, "2027-01-01T00:00:00Z", "n"),
            c(CHAIN, "2027-01-02T00:00:00Z", "n"),
            c(CHAIN, "2027-01-03T00:00:00Z", "n"),
        ];
        // In force up to a week after the last conflict, cleared at exactly a week.
        assert!(decide(&cs, 3, week, t("2027-01-09T23:59:59Z")).is_some());
        assert_eq!(decide(&cs, 3, week, t("2027-01-10T00:00:00Z")), None);
        // A conflict 6 days after the last keeps it in force, counted in the episode.
        let mut kept = cs.clone();
        kept.push(c(ConflictKind::LateRelease, "2027-01-09T00:00:00Z", "n"));
        let r = decide(&kept, 3, week, t("2027-01-12T00:00:00Z")).expect("kept");
        assert_eq!(r.at, t("2027-01-03T00:00:00Z"));
        assert_eq!(r.total(), 4);
        // After a clear, one new conflict is not enough: the count starts again.
        cs.push(c(CHAIN, "2027-01-20T00:00:00Z", "n"));
        assert_eq!(decide(&cs, 3, week, t("2027-01-20T01:00:00Z")), None);
        cs.push(c(CHAIN, "2027-01-21T00:00:00Z", "n"));
        cs.push(c(CHAIN, "2027-01-22T00:00:00Z", "n"));
        let r = decide(&cs, 3, week, t("2027-01-22T01:00:00Z")).expect("raised again");
        assert_eq!(r.at, t("2027-01-22T00:00:00Z"));
        assert_eq!(r.total(), 3);
    }

    #[test]
    fn foreign_and_skipped_do_not_count_and_order_does_not_matter() {
        let week = TimeDelta::days(7);
        let cs = [
            c(CHAIN, "2027-01-03T00:00:00Z", "n"),
            c(ConflictKind::Foreign, "2027-01-01T00:00:00Z", "n"),
            c(ConflictKind::Skipped, "2027-01-02T00:00:00Z", "n"),
            c(CHAIN, "2027-01-01T12:00:00Z", "n"),
        ];
        assert_eq!(decide(&cs, 3, week, t("2027-01-04T00:00:00Z")), None);
        let r = decide(&cs, 2, week, t("2027-01-04T00:00:00Z")).expect("two chain");
        assert_eq!(r.at, t("2027-01-03T00:00:00Z"));
        assert_eq!(r.total(), 2);
        // recommend_after = 1: the first counting conflict raises it.
        let r = decide(&cs, 1, week, t("2027-01-04T00:00:00Z")).expect("one");
        assert_eq!(r.at, t("2027-01-01T12:00:00Z"));
        assert_eq!(decide(&[], 1, week, t("2027-01-04T00:00:00Z")), None);
    }

    #[test]
    fn evidence_drops_conflicts_of_flexclone_cycles_only() {
        use crate::agent::cycle::{CloneKind, CycleState};
        let cycle = |id: &str, kind: CloneKind| Cycle {
            id: id.into(),
            window: "n".into(),
            cluster: "c".into(),
            svm: "s".into(),
            volume: "v".into(),
            window_start: t("2027-01-01T01:00:00Z"),
            create_at: t("2027-01-01T01:00:00Z"),
            release_by: t("2027-01-01T01:30:00Z"),
            release_deadline: None,
            backing_snapshot: format!("snapwarden.n.{id}"),
            clone_kind: kind,
            clones: Vec::new(),
            state: CycleState::Released,
            result: None,
            created_at: None,
            clones_created_at: None,
            clones_deleted_at: None,
            released_at: None,
            detail: String::new(),
            replica: None,
        };
        let cycles = [
            cycle("sr", CloneKind::SnapRestore),
            cycle("fc", CloneKind::FlexClone),
        ];
        let of = |id: Option<&str>, at: &str| {
            let mut x = c(ConflictKind::LateRelease, at, "n");
            x.cycle = id.map(str::to_string);
            x
        };
        let all = vec![
            of(Some("sr"), "2027-01-01T02:00:00Z"),
            of(Some("fc"), "2027-01-02T02:00:00Z"),
            of(None, "2027-01-03T02:00:00Z"),
            of(Some("unknown"), "2027-01-04T02:00:00Z"),
        ];
        let ends = ends(&cycles);
        let kept: Vec<Option<String>> = all
            .into_iter()
            .filter(|c| is_evidence(c, &ends))
            .map(|x| x.cycle)
            .collect();
        assert_eq!(kept, vec![Some("sr".into()), None, Some("unknown".into())]);
    }

    #[test]
    fn locked_bytes_sum_the_last_size_of_each_locked_cycle_or_stay_null() {
        let locked = |cycle: &str, at: &str| ObservedConflict {
            cycle: Some(cycle.into()),
            key: format!("{cycle}{at}"),
            ..c(ConflictKind::Locked, at, "w")
        };
        let conflicts = vec![
            locked("y1", "2027-01-01T02:00:00Z"),
            // The same cycle refused twice counts once.
            locked("y1", "2027-01-01T03:00:00Z"),
            locked("y2", "2027-01-02T02:00:00Z"),
            c(CHAIN, "2027-01-03T01:05:00Z", "w"),
        ];
        let space = |cycle: &str, volume: &str, bytes: u64| LockedSpace {
            cycle_id: cycle.into(),
            cluster: "c".into(),
            svm: "s".into(),
            volume: volume.into(),
            snapshot: format!("snapwarden.w.{cycle}"),
            bytes,
            at: t("2027-01-03T00:00:00Z"),
        };
        let rec = |volume: &str| Recommendation {
            cluster: "c".into(),
            svm: "s".into(),
            volume: volume.into(),
            conflicts: 3,
            locked_hours: 1.0,
            locked_bytes: None,
            evidence: "3 conflicts".into(),
        };
        // y1 holds 1 GiB, y2 512 MiB; y3 is another volume's and not counted.
        let out = with_locked_space(
            vec![rec("v")],
            &conflicts,
            &[
                space("y1", "v", 1 << 30),
                space("y2", "v", 512 << 20),
                space("y3", "other", 1 << 40),
            ],
        );
        assert_eq!(out[0].locked_bytes, Some(1_610_612_736));
        assert_eq!(
            out[0].evidence,
            "3 conflicts; locked backing snapshots hold 1.50 GiB (1610612736 bytes, ONTAP's snapshot size)"
        );
        // Beside the locked hours, before the license advice.
        let mut r = rec("v");
        r.evidence = "3 conflicts; backing snapshots locked 1.00 h; flexclone is licensed".into();
        let out = with_locked_space(vec![r], &conflicts, &[space("y2", "v", 2048)]);
        assert_eq!(
            out[0].evidence,
            "3 conflicts; backing snapshots locked 1.00 h; locked backing snapshots hold 2.00 KiB (2048 bytes, ONTAP's snapshot size); flexclone is licensed"
        );
        // Nothing reported for this volume's locked cycles: null, and said so.
        let out = with_locked_space(vec![rec("v")], &conflicts, &[space("y3", "other", 1)]);
        assert_eq!(out[0].locked_bytes, None);
        assert!(out[0].evidence.contains("not reported by ONTAP"));
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.50 KiB");
    }
}
