//! The crash test's verdict: what may be left on the cluster (nothing snapwarden made that the
//! journal does not show as live), what may have gone (only snapwarden's own released objects,
//! rotated scheduled snapshots and a managed series' oldest), the look-alikes untouched, the
//! schedule's snapshots intact, and the managed series' invariants.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, DurationRound, NaiveDateTime, TimeDelta, Utc};
use serde_json::json;
use snapwarden::agent::journal::{Journal, ManagedRecord, ObjectKind, ObjectState};

use super::watch::{History, ManagedSeries};
use super::{live, Lun, Objects, Poll, Sim, Snap};

/// Whether `name` is exactly `<prefix>.YYYY-MM-DD_HHMM` (ONTAP's scheduled-snapshot name), and
/// its time stamp if so. The test's own reading of the pattern, not the agent's.
pub fn pattern_stamp(prefix: &str, name: &str) -> Option<NaiveDateTime> {
    let stamp = name.strip_prefix(prefix)?.strip_prefix('.')?;
    let shape_ok = stamp.len() == 15
        && stamp.char_indices().all(|(i, c)| match i {
            4 | 7 => c == '-',
            10 => c == '_',
            _ => c.is_ascii_digit(),
        });
    shape_ok
        .then(|| NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d_%H%M").ok())
        .flatten()
}

pub fn follows_pattern(prefix: &str, name: &str) -> bool {
    pattern_stamp(prefix, name).is_some()
}

/// Objects that look like snapwarden's, or are a user's, or look like a managed series', made
/// before the agent first runs; none may ever change.
pub struct Lookalikes {
    /// By uuid.
    pub snapshots: BTreeMap<String, Snap>,
    /// By uuid: the one at a clone-like path and those at a volume's future clone paths.
    pub luns: BTreeMap<String, Lun>,
}

/// Creates the snapshots of `made` (volume, name, comment) and collects them with those of
/// `listed` (volume, name: in the world file) and the LUNs at `lun_paths`.
pub async fn make_lookalikes(
    sim: &Sim,
    made: &[(&str, &str, &str)],
    listed: &[(&str, &str)],
    lun_paths: &[String],
) -> Lookalikes {
    for (volume, name, comment) in made {
        let uuid = sim.volume_uuid(volume).await;
        sim.call(
            reqwest::Method::POST,
            &format!("/api/storage/volumes/{uuid}/snapshots"),
            Some(json!({"name": name, "comment": comment})),
        )
        .await;
    }
    let wanted: Vec<(&str, &str)> = made
        .iter()
        .map(|(v, n, _)| (*v, *n))
        .chain(listed.iter().copied())
        .collect();
    let poll = Poll::new(Duration::from_secs(30));
    loop {
        let objects = sim.objects().await;
        let snapshots: BTreeMap<String, Snap> = objects
            .snapshots
            .iter()
            .filter(|s| wanted.iter().any(|(v, n)| s.volume == *v && s.name == *n))
            .map(|s| (s.uuid.clone(), s.clone()))
            .collect();
        let luns: BTreeMap<String, Lun> = objects
            .luns
            .iter()
            .filter(|l| lun_paths.contains(&l.name))
            .map(|l| (l.uuid.clone(), l.clone()))
            .collect();
        if snapshots.len() == wanted.len() && luns.len() == lun_paths.len() {
            return Lookalikes { snapshots, luns };
        }
        assert!(poll.again().await, "the look-alikes appear in the listings");
    }
}

/// Every look-alike is on the cluster as it was made (uuid, name, comment, label, time).
pub fn check_lookalikes(objects: &Objects, lookalikes: &Lookalikes) {
    for s in lookalikes.snapshots.values() {
        let now = objects.snapshots.iter().find(|o| o.uuid == s.uuid);
        assert_eq!(
            now.map(|o| (&o.name, &o.comment, &o.label, o.create_time)),
            Some((&s.name, &s.comment, &s.label, s.create_time)),
            "look-alike snapshot {} on {} is untouched",
            s.name,
            s.volume
        );
    }
    for l in lookalikes.luns.values() {
        assert!(
            objects.luns.contains(l),
            "look-alike LUN {} is untouched",
            l.name
        );
    }
}

/// Every snapwarden-like object on the cluster that is neither a look-alike nor owned by a cycle
/// the journal shows as open: what a leak looks like.
pub async fn leaks(sim: &Sim, state_dir: &Path, lookalikes: &Lookalikes) -> Vec<String> {
    let objects = sim.objects().await;
    let live = live(state_dir);
    let (snaps, luns) = objects.snapwarden_like();
    let mut out = Vec::new();
    for s in snaps {
        if lookalikes.snapshots.contains_key(&s.uuid) {
            continue;
        }
        if !live.snapshots.contains(&(s.volume.clone(), s.name.clone())) {
            out.push(format!(
                "snapshot {} on {} ({:?})",
                s.name, s.volume, s.comment
            ));
        }
    }
    for l in luns {
        if lookalikes.luns.contains_key(&l.uuid) {
            continue;
        }
        if !live.luns.contains(&l.name) {
            out.push(format!("LUN {}", l.name));
        }
    }
    out
}

/// The scheduled snapshots (`<prefix>.<minute>`, a minutely schedule keeping `count`) of every
/// volume in `volumes` are the last ones the schedule took: none was deleted by anyone but
/// rotation, none is missing.
pub async fn check_scheduled(
    sim: &Sim,
    started: DateTime<Utc>,
    volumes: &[&str],
    prefix: &str,
    count: usize,
) {
    // A listing between two reads of the clock in the same minute has a known expectation.
    for _ in 0..5 {
        let before = sim.now().await;
        let objects = sim.objects().await;
        let after = sim.now().await;
        let minute = |t: DateTime<Utc>| t.duration_trunc(TimeDelta::minutes(1)).expect("trunc");
        if minute(before) != minute(after) {
            continue;
        }
        let latest = minute(after);
        // Minute boundaries after the simulator started; a boundary within the second before
        // the first clock read may or may not have fired.
        let fired = |since: DateTime<Utc>| {
            let first = minute(since) + TimeDelta::minutes(1);
            usize::try_from((latest - first).num_minutes() + 1).unwrap_or(0)
        };
        let (low, high) = (
            fired(started).min(count),
            fired(started - TimeDelta::seconds(2)).min(count),
        );
        let dotted = format!("{prefix}.");
        for volume in volumes {
            let mut names: Vec<&str> = objects
                .snapshots
                .iter()
                .filter(|s| s.volume == *volume && s.name.starts_with(&dotted))
                .map(|s| s.name.as_str())
                .collect();
            names.sort_unstable();
            names.reverse();
            assert!(
                (low..=high).contains(&names.len()),
                "volume {volume}: {} scheduled snapshots, expected {low}..={high} (the schedule's count {count}): {names:?}",
                names.len()
            );
            for (i, name) in names.iter().enumerate() {
                let minutes = i64::try_from(i).expect("small");
                let expected = format!(
                    "{prefix}.{}",
                    (latest - TimeDelta::minutes(minutes)).format("%Y-%m-%d_%H%M")
                );
                assert_eq!(
                    *name, expected,
                    "volume {volume}: the scheduled snapshots are the latest ones, consecutive: {names:?}"
                );
            }
        }
        return;
    }
    panic!("five listings in a row straddled a minute boundary");
}

/// Every snapshot that disappeared while the watcher looked went the way it may: a snapwarden
/// backing snapshot the journal records deleted, a scheduled snapshot (`scheduled_prefix`) of a
/// volume that keeps its schedule on ONTAP, or a managed series' snapshot (exact pattern, its
/// own volume). Anything else was touched by someone who must not.
pub fn check_deletions(
    history: &History,
    journal: &Journal,
    managed: &[ManagedSeries],
    scheduled_prefix: &str,
) -> Vec<String> {
    let mut released: BTreeSet<(String, String)> = BTreeSet::new();
    for c in journal
        .recent_cycles(DateTime::<Utc>::MIN_UTC, None, 1_000_000)
        .expect("cycles")
    {
        for o in journal.objects(&c.id).expect("objects") {
            if o.kind == ObjectKind::Snapshot && o.state == ObjectState::Deleted {
                released.insert((o.volume, o.name));
            }
        }
    }
    let managed_volume = |v: &str| managed.iter().any(|m| m.volume == v);
    let dotted = format!("{scheduled_prefix}.");
    let mut out = Vec::new();
    for seen in history.seen.values().filter(|s| s.gone_at.is_some()) {
        let s = &seen.snap;
        let ok = if super::prefixed(&s.name) {
            released.contains(&(s.volume.clone(), s.name.clone()))
        } else if managed_volume(&s.volume) {
            managed
                .iter()
                .any(|m| m.volume == s.volume && follows_pattern(&m.prefix, &s.name))
        } else {
            s.name.starts_with(&dotted)
        };
        if !ok {
            out.push(format!(
                "{} on {} (comment {:?}) disappeared at {}: nobody may delete it",
                s.name,
                s.volume,
                s.comment,
                seen.gone_at.expect("gone")
            ));
        }
    }
    out
}

/// A managed copy as the crash scenario defines it: an interval schedule (`period` from
/// `anchor`), the snapshots' label and comment.
pub struct ManagedCopy {
    pub series: ManagedSeries,
    pub anchor: DateTime<Utc>,
    pub period: TimeDelta,
    pub label: &'static str,
    pub comment: String,
}

/// What the managed checks counted, for the campaign's summary.
#[derive(Debug, Default)]
pub struct ManagedTally {
    /// Snapshots of the series snapwarden took (journaled created), by reason.
    pub taken: BTreeMap<String, usize>,
    /// Series snapshots that disappeared (rotation).
    pub rotated: usize,
    /// Instants of the copy that passed while the watcher looked.
    pub instants: usize,
    pub ever: usize,
}

/// The managed series' invariants:
///
/// - **one snapshot per instant**: no two snapshots of the series ever seen (the watcher's
///   listings and the journal's takes) share a name, and no two were created (ONTAP's
///   `create_time`) within the same interval between two of the copy's instants — the agent
///   covers instants that passed while it waited or was down with one snapshot, never two;
/// - **count exact**: when the agent is quiet after the final settling run the series holds
///   exactly `min(count, snapshots ever made)`; and at every listing the watcher took, never fewer
///   (no snapshot deleted too many) — `History::violations`, checked by the caller;
/// - **journal and cluster agree**: every snapshot the journal records as taken was seen on the
///   cluster, every one on the cluster with snapwarden's managed marker is journaled as taken,
///   and no take is left unsettled;
/// - **ONTAP's shape**: snapwarden's snapshots carry the copy's `snapmirror_label` and the marker,
///   and are named after the minute they were taken in (the cluster's zone, UTC here).
pub fn check_managed(
    copy: &ManagedCopy,
    history: &History,
    records: &[ManagedRecord],
    quiet: &Objects,
) -> ManagedTally {
    let s = &copy.series;
    let mut tally = ManagedTally::default();
    let ours: Vec<&ManagedRecord> = records
        .iter()
        .filter(|r| r.volume == s.volume && r.prefix == s.prefix)
        .collect();
    let seen: Vec<&Snap> = history.series(s).map(|x| &x.snap).collect();
    tally.ever = seen.len();
    tally.rotated = history.series(s).filter(|x| x.gone_at.is_some()).count();
    for r in &ours {
        assert_ne!(
            r.state,
            ObjectState::Intent,
            "{}: the take of {} is settled once the agent is quiet: {r:?}",
            s.volume,
            r.name
        );
        if r.state != ObjectState::Created {
            continue;
        }
        *tally.taken.entry(r.reason.clone()).or_default() += 1;
        let uuid = r.uuid.as_deref().expect("a created take has a uuid");
        assert!(
            seen.iter().any(|x| x.uuid == uuid && x.name == r.name),
            "{}: snapshot {} ({uuid}) the journal took was seen on the cluster",
            s.volume,
            r.name
        );
    }
    for x in &seen {
        if x.comment.as_deref() != Some(copy.comment.as_str()) {
            continue;
        }
        assert!(
            ours.iter()
                .any(|r| r.name == x.name && r.state == ObjectState::Created),
            "{}: snapshot {} carries the managed marker and is journaled as taken",
            s.volume,
            x.name
        );
        assert_eq!(
            x.label.as_deref(),
            Some(copy.label),
            "{}: snapshot {} carries the copy's snapmirror_label",
            s.volume,
            x.name
        );
        let stamp = pattern_stamp(&s.prefix, &x.name).expect("the series' pattern");
        let named = stamp.and_utc();
        assert!(
            named <= x.create_time && x.create_time < named + TimeDelta::minutes(2),
            "{}: snapshot {} is named after the minute it was taken in (created {})",
            s.volume,
            x.name,
            x.create_time
        );
    }
    let mut by_name: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut by_interval: BTreeMap<i64, Vec<&Snap>> = BTreeMap::new();
    for x in &seen {
        by_name.entry(&x.name).or_default().push(&x.uuid);
        let k = (x.create_time - copy.anchor).num_milliseconds() / copy.period.num_milliseconds();
        by_interval.entry(k).or_default().push(x);
    }
    for (name, uuids) in &by_name {
        assert_eq!(
            uuids.len(),
            1,
            "{}: one snapshot ever named {name}: {uuids:?}",
            s.volume
        );
    }
    for (k, xs) in &by_interval {
        let from = copy.anchor + copy.period * i32::try_from(*k).expect("an interval index");
        assert_eq!(
            xs.len(),
            1,
            "{}: one snapshot per instant: {} created between the instants {from} and {}: {:?}",
            s.volume,
            xs.len(),
            from + copy.period,
            xs.iter()
                .map(|x| format!("{} at {}", x.name, x.create_time))
                .collect::<Vec<_>>()
        );
    }
    let on_volume = quiet
        .snapshots
        .iter()
        .filter(|x| x.volume == s.volume && follows_pattern(&s.prefix, &x.name))
        .count();
    assert_eq!(
        on_volume,
        s.count.min(seen.len()),
        "{}: once the agent is quiet the {} series holds exactly its count {} ({} ever made)",
        s.volume,
        s.prefix,
        s.count,
        seen.len()
    );
    if let (Some(first), Some(last)) = (history.first_at, history.last_at) {
        let k = |t: DateTime<Utc>| {
            (t - copy.anchor).num_milliseconds() / copy.period.num_milliseconds()
        };
        tally.instants = usize::try_from(k(last) - k(first)).unwrap_or(0);
    }
    tally
}
