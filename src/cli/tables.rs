//! The tables `status`, `history` and `report` print: left-aligned columns under upper-case
//! headers, instants as `YYYY-MM-DD HH:MM:SSZ`.

use chrono::{DateTime, Utc};

use crate::agent::status::{RecentCycle, Status};

/// An instant as every table shows it (UTC, to the second); `-` when there is none.
pub(super) fn time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|| "-".into())
}

/// Left-aligned columns, two spaces apart.
pub(super) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        out.push_str(&line(r.clone()));
    }
    out
}

pub fn status_table(s: &Status) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "snapwarden status at {}{}\n\nclusters\n",
        time(s.generated_at),
        if s.shutting_down { " (stopping)" } else { "" }
    ));
    if let Some(ha) = &s.ha {
        out.push_str(&format!(
            "high availability: this replica {} is {}; leader: {}{}\n\n",
            ha.identity,
            ha.role,
            ha.leader.as_deref().unwrap_or("none"),
            if ha.backend_up {
                ""
            } else {
                " (election backend unreachable)"
            }
        ));
    }
    let rows: Vec<Vec<String>> = s
        .clusters
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                if c.reachable {
                    "reachable"
                } else {
                    "UNREACHABLE"
                }
                .into(),
                c.version.clone().unwrap_or_else(|| "-".into()),
                c.timezone.clone().unwrap_or_else(|| "-".into()),
                c.last_error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    out.push_str(&table(
        &["NAME", "STATE", "VERSION", "TIMEZONE", "ERROR"],
        &rows,
    ));
    if let Some(at) = s.next_create_at {
        out.push_str(&format!("\nnext backing snapshot at {}\n", time(Some(at))));
    }
    out.push_str(&format!("\nlive cycles ({})\n", s.live_cycles.len()));
    let rows: Vec<Vec<String>> = s
        .live_cycles
        .iter()
        .map(|c| {
            vec![
                c.window.clone(),
                format!("{}/{}/{}", c.cluster, c.svm, c.volume),
                c.backing_snapshot.clone(),
                c.state.clone(),
                time(c.window_start),
                time(c.created_at),
                time(Some(c.release_by)),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "WINDOW",
            "VOLUME",
            "BACKING SNAPSHOT",
            "STATE",
            "CONFIGURED START",
            "CREATED",
            "RELEASE BY",
        ],
        &rows,
    ));
    out.push_str(&format!("\nrecent cycles ({})\n", s.recent_cycles.len()));
    out.push_str(&cycles_table(&s.recent_cycles));
    out.push_str(&format!(
        "\nconflicts, last 7 days ({})\n",
        s.conflicts.len()
    ));
    let rows: Vec<Vec<String>> = s
        .conflicts
        .iter()
        .map(|c| {
            vec![
                time(Some(c.at)),
                c.kind.clone(),
                format!("{}/{}/{}", c.cluster, c.svm, c.volume),
                c.window.clone().unwrap_or_else(|| "-".into()),
                c.detail.clone(),
            ]
        })
        .collect();
    out.push_str(&table(&["AT", "KIND", "VOLUME", "WINDOW", "DETAIL"], &rows));
    if !s.excluded_volumes.is_empty() {
        out.push_str("\nvolumes left out\n");
        for e in &s.excluded_volumes {
            out.push_str(&format!("  {}: {}\n", e.volume, e.reason));
        }
    }
    if !s.flexclone_recommendations.is_empty() {
        out.push_str("\nFlexClone recommended\n");
        for r in &s.flexclone_recommendations {
            out.push_str(&format!(
                "  {}/{}/{} since {}: {}\n",
                r.cluster,
                r.svm,
                r.volume,
                r.since.to_rfc3339(),
                r.evidence
            ));
        }
    }
    out
}

/// A cycle's result; one not ended yet has none, and shows its state: `open (locked)`.
fn result(c: &RecentCycle) -> String {
    match &c.result {
        Some(r) => r.clone(),
        None if c.state.is_empty() => "open".to_string(),
        None => format!("open ({})", c.state),
    }
}

/// Past cycles, newest first: the start the planner placed beside the window's configured start
/// (they differ when the planner moved it), the result, the release.
pub(super) fn cycles_table(cycles: &[RecentCycle]) -> String {
    // With [ha], which replica acted (a column only when some cycle names one).
    let replicas = cycles.iter().any(|c| c.replica.is_some());
    let rows: Vec<Vec<String>> = cycles
        .iter()
        .map(|c| {
            let mut row = vec![
                time(c.create_at.or(c.created_at)),
                time(c.window_start),
                c.window.clone(),
                format!("{}/{}/{}", c.cluster, c.svm, c.volume),
                result(c),
                time(c.released_at),
            ];
            if replicas {
                row.push(c.replica.clone().unwrap_or_else(|| "-".into()));
            }
            row.push(c.detail.clone());
            row
        })
        .collect();
    let header: &[&str] = if replicas {
        &[
            "START",
            "CONFIGURED START",
            "WINDOW",
            "VOLUME",
            "RESULT",
            "RELEASED",
            "REPLICA",
            "DETAIL",
        ]
    } else {
        &[
            "START",
            "CONFIGURED START",
            "WINDOW",
            "VOLUME",
            "RESULT",
            "RELEASED",
            "DETAIL",
        ]
    };
    table(header, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::cycle::{CloneKind, CloneLun, Cycle, CycleState};
    use crate::agent::status::{HaStatus, LiveCycle};

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    /// The demo's `exchange` cycle: configured at 10:02, moved by the planner to 10:01.
    fn moved() -> Cycle {
        Cycle {
            id: "c1".into(),
            window: "exchange".into(),
            cluster: "demo".into(),
            svm: "svm1".into(),
            volume: "vol_exch".into(),
            window_start: t("2027-03-01T10:02:00Z"),
            create_at: t("2027-03-01T10:01:00Z"),
            release_by: t("2027-03-01T10:02:00Z"),
            release_deadline: None,
            backing_snapshot: "snapwarden.exchange.20270301T100100Z".into(),
            clone_kind: CloneKind::SnapRestore,
            clones: vec![CloneLun {
                source: "/vol/vol_exch/lun0".into(),
                path: "/vol/vol_exch/snapwarden.exchange.20270301T100100Z.lun0".into(),
            }],
            state: CycleState::Backup,
            result: None,
            created_at: Some(t("2027-03-01T10:01:00.250Z")),
            clones_created_at: Some(t("2027-03-01T10:01:00.500Z")),
            clones_deleted_at: None,
            released_at: None,
            detail: "shifted 1m earlier to 10:01".into(),
            replica: None,
        }
    }

    #[test]
    fn a_moved_start_shows_its_configured_start_beside_the_actual_one() {
        let cycle = moved();
        let status = Status {
            live_cycles: vec![LiveCycle::of(&cycle)],
            ..Status::default()
        };
        let text = status_table(&status);
        let live = text.split_once("live cycles (1)\n").unwrap().1;
        let mut lines = live.lines();
        assert_eq!(
            lines.next().unwrap(),
            "WINDOW    VOLUME              BACKING SNAPSHOT                      STATE   \
             CONFIGURED START      CREATED               RELEASE BY"
        );
        assert_eq!(
            lines.next().unwrap(),
            "exchange  demo/svm1/vol_exch  snapwarden.exchange.20270301T100100Z  backup  \
             2027-03-01 10:02:00Z  2027-03-01 10:01:00Z  2027-03-01 10:02:00Z"
        );
        // The JSON gains both fields (added, nothing renamed).
        let json = serde_json::to_value(LiveCycle::of(&cycle)).unwrap();
        assert_eq!(json["window_start"], "2027-03-01T10:02:00Z");
        assert_eq!(json["create_at"], "2027-03-01T10:01:00Z");
        assert_eq!(json["created_at"], "2027-03-01T10:01:00.250Z");
        let mut done = cycle;
        done.state = CycleState::Released;
        done.result = Some(crate::agent::cycle::CycleResult::Completed);
        done.released_at = Some(t("2027-03-01T10:01:30Z"));
        done.detail = "hook exited 0".into();
        assert_eq!(
            cycles_table(&[RecentCycle::of(&done)]),
            "\
START                 CONFIGURED START      WINDOW    VOLUME              RESULT     RELEASED              DETAIL
2027-03-01 10:01:00Z  2027-03-01 10:02:00Z  exchange  demo/svm1/vol_exch  completed  2027-03-01 10:01:30Z  hook exited 0
"
        );
    }

    #[test]
    fn the_status_table_names_the_role_and_the_leader_with_ha_only() {
        let mut s = Status::default();
        assert!(!status_table(&s).contains("high availability"));
        s.ha = Some(HaStatus {
            identity: "b".into(),
            role: "standby".into(),
            leader: Some("a".into()),
            revision: None,
            backend_up: true,
            leader_changes: 0,
        });
        assert!(
            status_table(&s).contains("high availability: this replica b is standby; leader: a\n"),
            "{}",
            status_table(&s)
        );
        s.ha = Some(HaStatus {
            leader: None,
            backend_up: false,
            ..s.ha.clone().expect("set")
        });
        assert!(status_table(&s)
            .contains("this replica b is standby; leader: none (election backend unreachable)"));
    }

    /// RESULT shows results; a cycle without one yet is `open`, with its state. A locked cycle
    /// (its clones deleted, its backing snapshot refused) lists no clone in the status.
    #[test]
    fn results_are_results_and_a_locked_cycle_lists_no_deleted_clone() {
        let backup = moved();
        let mut locked = moved();
        locked.state = CycleState::Locked;
        locked.clones_deleted_at = Some(t("2027-01-01T10:01:40Z"));
        let mut failed = moved();
        failed.state = CycleState::Released;
        failed.result = Some(crate::agent::cycle::CycleResult::Failed);
        let rows: Vec<RecentCycle> = [&backup, &locked, &failed]
            .into_iter()
            .map(RecentCycle::of)
            .collect();
        let results: Vec<String> = cycles_table(&rows)
            .lines()
            .skip(1)
            .map(|l| {
                l.split("  ")
                    .filter(|c| !c.is_empty())
                    .nth(4)
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(results, ["open (backup)", "open (locked)", "failed"]);
        assert_eq!(
            LiveCycle::of(&backup).clones,
            ["/vol/vol_exch/snapwarden.exchange.20270301T100100Z.lun0"]
        );
        assert!(LiveCycle::of(&locked).clones.is_empty());
    }
}
