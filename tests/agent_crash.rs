//! The crash test: `snapwarden run` against `snapwarden simulator serve` (HTTPS, real clock,
//! injected latency) is killed with SIGKILL inside each stage of its work and restarted;
//! afterwards no snapwarden object is left that the journal does not show as live, nothing
//! foreign — look-alikes, a user snapshot, the scheduled snapshots — was touched, and the
//! snapshots the agent takes itself for two volumes (managed schedules) kept their invariants.
//!
//! `cargo test --test agent_crash` runs the bounded form (6 kills, about a minute);
//! `scripts/crash-campaign` runs the same scenario with `CRASH_KILLS` kills and prints the kills
//! per stage. `CRASH_SEED` changes the kill delays; `CRASH_KEEP=1` keeps the working directory
//! (world, policy, journal, `agent.log` with every run's log, `sim.log`) for inspection.
//!
//! **Placing the kills.** The agent logs a debug line when it enters a stage and one when it
//! leaves it (`snapwarden::agent::stage`: a backing snapshot's create, a clone's create, the
//! backup hook, a clone's delete, the backing snapshot's delete, a locked snapshot's retried
//! delete, the creation of a cycle the FlexClone recommendation switched to FlexClone, a managed
//! snapshot's create, a managed series' rotation). Each run is watched through its log (every
//! 10 ms): once a wanted stage is entered and not yet left, the run is killed after a random
//! delay within that stage's usual length — 400 ms for a create or delete (the request and its
//! job poll, each behind 200 ms of injected latency; ONTAP acts 200 ms after the request, so the
//! kill lands before it acted about as often as after, its answer lost), 600 ms for a clone's
//! create (three requests), 1 s for a switched cycle's creation, 1.5 s into the 4 s hook (while
//! the later volumes' creates still run beside it). A kill counts for every stage entered and not
//! left when it landed: the log says where it landed, not the timing.
//!
//! Each stage has a goal: a campaign wants `CRASH_KILLS / 9` kills in each; the bounded form
//! wants each stage once but the switch (which needs three minutes of conflicts), and stops at 6
//! kills once 3 stages were hit (at most 14 kills). A run wants, of the stages below their goal,
//! the least hit (the bounded form: the first in its order — managed create, rotation, hook,
//! clone delete, snapshot delete, locked retry, clone create, snapshot create). A kill during a
//! cycle's creates ends the minute's work (every cycle of the minute is journaled before the
//! first create, and fails with it), so a campaign aims at the creates — the clone's, the
//! switched cycle's, the snapshot's — only once every other stage met its goal (kills aimed at
//! the hook land in them too); the locked retry and the switch are waited for only once a run
//! entered them (a held snapshot, three conflicts). A run that meets no wanted stage for 70 s (a
//! minute and more) takes any below its goal, after 100 s any stage, and after 130 s it is
//! killed wherever it is. A campaign stops once it made `CRASH_KILLS` kills and met every goal
//! (at most twice as many kills).
//!
//! **The scenario.** One cluster (UTC, SnapRestore and FlexClone licensed) with a snapshot
//! schedule every minute on six volumes, and a window on them every minute (`max` 40 s, `guard`
//! 5 s, hook `sleep 4`, `on_conflict = "run"`: the window meets a scheduled snapshot at every
//! start, which ONTAP takes before the agent's first call of the minute). Every cycle is released
//! after the scheduled snapshot it started with, so each counts as a late release; after three,
//! the FlexClone recommendation is in force and `use_when_licensed` switches the SnapRestore
//! volumes to FlexClone (the switch stage, every minute from then on). A watcher task plays
//! SnapMirror on v6: it holds the backing snapshots of v6's first two SnapRestore cycles busy, so
//! their deletes are refused as locked and retried on every pass (the locked-retry stage) until
//! the end of the campaign lets them go. A kill that leaves a SnapRestore clone alive across a
//! minute lets the schedule capture it: that cycle is locked until the capturing snapshot
//! rotates out, and may stay open (locked) at the end.
//!
//! Two more volumes hand their schedule to snapwarden (`managed_snapshots`; ONTAP's policy on
//! them is `none`): a copy every minute at second 6 (an interval schedule with an anchor), count
//! 3, prefix `managed`, each volume starting with three snapshots ONTAP took before the
//! hand-over. m1 is also in the window, first: once its cycle got that far in a minute, its
//! clone exists at second 6 or was deleted less than 10 s before, and its snapshot waits
//! (deferred); m2 has no window. The watcher
//! lists the cluster every second; the managed invariants are `crash_support::checks::
//! check_managed`'s (one snapshot per instant, count exact when quiet and never below it,
//! journal and cluster agree, ONTAP's shape) and the watcher's (rotation oldest first, never one
//! too many).
//!
//! Look-alikes made before the first run: a snapshot with the prefix and no marker, one with the
//! marker of a cycle no journal knows, a user snapshot, a plain LUN at a clone-like path, plain
//! LUNs at the exact paths v3's clones will want (those cycles fail at the clone and release
//! their backing snapshot; a kill during that create tests that the next start does not take the
//! plain LUN for the cycle's clone), and beside the managed series `managed.backup`,
//! `managed.2020-01-01_0000.keep` (with the managed marker), `managedx.…`, `Managed.…`, and on v1
//! (which keeps its ONTAP schedule) `managed.2020-01-01_0000` with the managed marker. None may
//! change; nothing may disappear but snapwarden's released objects, rotated scheduled snapshots
//! and a managed series' oldest.
//!
//! The end: the held snapshots are let go, a last run settles everything (nothing open but
//! locked cycles, the held ones released, no take unsettled, each managed series at its count),
//! the state is read, and the run is stopped with SIGTERM.

mod crash_support;
mod process_support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, TimeDelta, Timelike, Utc};
use crash_support::checks::{self, Lookalikes, ManagedCopy};
use crash_support::markers::{Marker, RunLog};
use crash_support::watch::{Holds, ManagedSeries, Watcher};
use crash_support::{
    assert_no_hook_outlives_its_agent, env_number, journal, live, spawn_agent, Files, Poll, Rng,
    Sim, PASSWORD, PASSWORD_ENV, PREFIX, USER,
};
use serde_json::json;
use snapwarden::agent::cycle::CycleState;
use snapwarden::agent::journal::{Journal, ObjectState};
use snapwarden::agent::stage::Stage;

/// Scheduled snapshots kept per volume (the world's snapshot policy, prefix `minutely`).
const SCHEDULE_COUNT: usize = 4;
const SCHEDULE_PREFIX: &str = "minutely";
/// Injected latency of every `/api` request: each ONTAP call lasts long enough to be hit (a
/// create or delete with its job poll takes at least twice this).
const LATENCY_MS: u64 = 200;
/// Kills of the bounded form, extra kills it may make while fewer than `BOUNDED_STAGES` stages
/// were hit, and the stages it wants once each.
const DEFAULT_KILLS: usize = 6;
const EXTRA_KILLS: usize = 8;
const BOUNDED_STAGES: usize = 3;
/// In the order the bounded form wants them: a minute's work is over once a kill lands in a
/// backing snapshot's create (every cycle of the minute is journaled then, and fails), so the
/// stages that follow it come first.
const BOUNDED_WANTS: [Stage; 8] = [
    Stage::ManagedCreate,
    Stage::ManagedRotate,
    Stage::Hook,
    Stage::CloneDelete,
    Stage::SnapshotDelete,
    Stage::LockedRetry,
    Stage::CloneCreate,
    Stage::SnapshotCreate,
];
/// Stages whose kill ends a minute's work: every cycle of the minute is journaled before the
/// first create, and a kill during the creates fails them all. A campaign aims at them last, the
/// latest in the minute first: the kills it aims at the hook land in them too (the later
/// volumes' creates run beside the first hooks).
const ENDS_THE_MINUTE: [Stage; 3] = [Stage::CloneCreate, Stage::Switch, Stage::SnapshotCreate];
/// Stages that come only once the scenario got there: a locked retry needs a held (or captured)
/// backing snapshot, the switch three conflicts. One is waited for once a run entered it in the
/// last `RECENT` (they come again within a minute then).
const COMES_LATER: [Stage; 2] = [Stage::LockedRetry, Stage::Switch];
const RECENT: Duration = Duration::from_secs(180);
/// How long a run waits for a wanted stage before it takes any stage below its goal, any stage
/// at all, and then none (killed wherever it is).
const WIDEN: Duration = Duration::from_secs(70);
const ANY_STAGE: Duration = Duration::from_secs(100);
const KILL_ANYWAY: Duration = Duration::from_secs(130);

/// The managed copy: every minute at second 6, count 3.
const MANAGED_PREFIX: &str = "managed";
const MANAGED_COUNT: usize = 3;
const MANAGED_LABEL: &str = "every_minute";
const MANAGED_SECOND: u32 = 6;
const MANAGED_VOLUMES: [&str; 2] = ["m1", "m2"];
/// The comment of every managed snapshot snapwarden takes.
const MANAGED_MARKER: &str = "created-by=snapwarden schedule=managed";

/// The seconds of a minute in which the last run may be stopped: after the minute's cycles and
/// its managed snapshots (deferred ones included), before the next minute's.
const QUIET_FROM: u32 = 30;
const QUIET_UNTIL: u32 = 55;

/// The volume whose first SnapRestore cycles' backing snapshots are held busy, and how many.
const HOLD_VOLUME: &str = "v6";
const HOLDS: usize = 2;

/// The look-alikes: objects named like snapwarden's that are not its own.
const LOOKALIKE_NO_MARKER: &str = "snapwarden.w.20200101T000000Z";
const LOOKALIKE_NOT_JOURNALED: &str = "snapwarden.w.20200101T000100Z";
const FOREIGN_MARKER: &str =
    "created-by=snapwarden cycle=6d1c7f4e-0000-4000-8000-000000000000 window=w";
const USER_SNAPSHOT: &str = "before-upgrade";
const LOOKALIKE_LUN: &str = "/vol/v1/snapwarden.w.20200101T000000Z.lun0";
/// Snapshots in the world file beside the managed series (volume, name, comment): none follows
/// the series' exact pattern on a managed volume.
const MANAGED_LOOKALIKES: [(&str, &str, &str); 5] = [
    ("m1", "managed.backup", "made by hand"),
    ("m1", "managed.2020-01-01_0000.keep", MANAGED_MARKER),
    ("m1", "managedx.2020-01-01_0000", "another schedule"),
    ("m1", "Managed.2020-01-01_0000", "another schedule"),
    ("v1", "managed.2020-01-01_0000", MANAGED_MARKER),
];
/// Plain LUNs at the exact paths of v3's clones for this many minutes from the start: each of
/// those clone creates fails, and one killed before its answer leaves an intent for a path where
/// a LUN that is not the cycle's exists.
const COLLISION_MINUTES: i64 = 90;

/// The policy's volumes in window order: name, LUNs (`lun0`, `lun1`, …), clone method, whether
/// it keeps its ONTAP schedule, whether the window backs it up. m1 comes first, so that its
/// clone exists at its managed instant (second 6).
const VOLUMES: [(&str, usize, &str, bool, bool); 8] = [
    ("m1", 1, "snaprestore", false, true),
    ("v1", 2, "snaprestore", true, true),
    ("v2", 1, "flexclone", true, true),
    ("v3", 1, "snaprestore", true, true),
    ("v4", 2, "snaprestore", true, true),
    ("v5", 2, "flexclone", true, true),
    ("v6", 1, "snaprestore", true, true),
    ("m2", 1, "snaprestore", false, false),
];

/// The volumes that keep ONTAP's schedule.
fn scheduled_volumes() -> Vec<&'static str> {
    VOLUMES.iter().filter(|v| v.3).map(|v| v.0).collect()
}

/// The paths of v3's clones from `from`'s minute on, taken by plain LUNs.
fn collisions(from: DateTime<Utc>) -> Vec<String> {
    let first = from
        .duration_trunc(TimeDelta::minutes(1))
        .expect("a minute");
    (0..COLLISION_MINUTES)
        .map(|i| {
            let at = first + TimeDelta::minutes(i);
            format!("/vol/v3/{PREFIX}.w.{}.lun0", at.format("%Y%m%dT%H%M%SZ"))
        })
        .collect()
}

/// The managed snapshots ONTAP took on each managed volume before the hand-over: the three
/// instants before `now`'s minute less two.
fn handed_over(now: DateTime<Utc>) -> Vec<(String, DateTime<Utc>)> {
    let minute = now.duration_trunc(TimeDelta::minutes(1)).expect("a minute");
    (3..6)
        .rev()
        .map(|i| {
            let at = minute - TimeDelta::minutes(i) + TimeDelta::seconds(MANAGED_SECOND.into());
            (
                format!("{MANAGED_PREFIX}.{}", at.format("%Y-%m-%d_%H%M")),
                at,
            )
        })
        .collect()
}

fn world(collisions: &[String], handed_over: &[(String, DateTime<Utc>)]) -> String {
    let mut volumes = String::new();
    for (name, luns, _, scheduled, _) in VOLUMES {
        let mut lun_list: Vec<String> = (0..luns)
            .map(|i| format!("{{ name = \"lun{i}\" }}"))
            .collect();
        if name == "v1" {
            lun_list.push("{ name = \"snapwarden.w.20200101T000000Z.lun0\" }".into());
        }
        if name == "v3" {
            lun_list.extend(
                collisions
                    .iter()
                    .filter_map(|p| p.strip_prefix("/vol/v3/"))
                    .map(|leaf| format!("{{ name = \"{leaf}\" }}")),
            );
        }
        let policy = if scheduled { "every-minute" } else { "none" };
        volumes.push_str(&format!(
            "[[clusters.svms.volumes]]\nname = \"{name}\"\nsnapshot_policy = \"{policy}\"\nluns = [{}]\n\n",
            lun_list.join(", ")
        ));
        if !scheduled {
            for (snapshot, at) in handed_over {
                volumes.push_str(&format!(
                    "[[clusters.svms.volumes.snapshots]]\nname = \"{snapshot}\"\ncomment = \"taken by ONTAP before the hand-over\"\nsnapmirror_label = \"{MANAGED_LABEL}\"\ncreate_time = \"{}\"\n\n",
                    at.to_rfc3339()
                ));
            }
        }
        for (volume, snapshot, comment) in MANAGED_LOOKALIKES {
            if volume == name {
                volumes.push_str(&format!(
                    "[[clusters.svms.volumes.snapshots]]\nname = \"{snapshot}\"\ncomment = \"{comment}\"\n\n"
                ));
            }
        }
    }
    format!(
        r#"[knobs]
async_mutations = true
block_sharing_seconds = 1

[[users]]
name = "{USER}"
password = "{PASSWORD}"

[[clusters]]
name = "c1"
timezone = "Etc/UTC"
licenses = ["snaprestore", "flexclone"]

[[clusters.schedules]]
name = "minutely"
cron = "* * * * *"

[[clusters.snapshot_policies]]
name = "every-minute"
copies = [{{ schedule = "minutely", count = {SCHEDULE_COUNT}, prefix = "{SCHEDULE_PREFIX}" }}]

[[clusters.svms]]
name = "svm1"

{volumes}"#
    )
}

fn policy(url: &str, fingerprint: &str) -> String {
    let mut volumes = String::new();
    for (name, luns, clone, scheduled, _) in VOLUMES {
        let luns: Vec<String> = (0..luns)
            .map(|i| format!("\"/vol/{name}/lun{i}\""))
            .collect();
        let schedule = if scheduled {
            "snapshot_policy = \"ontap\"\n".to_string()
        } else {
            "snapshot_policy = \"none\"\nmanaged_snapshots = \"handed-over\"\n".to_string()
        };
        volumes.push_str(&format!(
            "[[volume]]\ncluster = \"c1\"\nsvm = \"svm1\"\nname = \"{name}\"\nluns = [{}]\n{schedule}clone = \"{clone}\"\n\n",
            luns.join(", ")
        ));
    }
    let windowed: Vec<String> = VOLUMES
        .iter()
        .filter(|v| v.4)
        .map(|v| format!("\"c1/svm1/{}\"", v.0))
        .collect();
    format!(
        r#"[agent]
listen = "127.0.0.1:0"
guard = "5s"
concurrency = 2
observe_interval = "10s"

[flexclone]
use_when_licensed = true

[[cluster]]
name = "c1"
endpoint = "{url}"
username = "{USER}"
password_env = "{PASSWORD_ENV}"
pin_sha256 = "{fingerprint}"
timezone = "auto"

[[schedule]]
name = "minutely_at_06"
interval = "PT1M"
anchor = "2026-01-01T00:00:{MANAGED_SECOND:02}Z"

[[snapshot_policy]]
name = "none"
copies = []

[[snapshot_policy]]
name = "handed-over"
max_defer = "10m"
copies = [{{ schedule = "minutely_at_06", count = {MANAGED_COUNT}, prefix = "{MANAGED_PREFIX}", snapmirror_label = "{MANAGED_LABEL}" }}]

{volumes}[[window]]
name = "w"
volumes = [{}]
start = "* * * * *"
timezone = "UTC"
expected = "10s"
max = "40s"
shift_limit = "0s"
on_conflict = "run"
hook = {{ command = ["sleep", "4"] }}
"#,
        windowed.join(", ")
    )
}

/// How long after entering a stage a kill may land, at most: the stage's usual length, so that
/// the kill lands inside it most of the time, half of the time before ONTAP acted.
fn width_ms(stage: Stage) -> u64 {
    match stage {
        // `sleep 4`; early in it, while the later volumes' creates still run beside it.
        Stage::Hook => 1_500,
        // The switched cycle's snapshot create (two requests), then its clone create.
        Stage::Switch => 5 * LATENCY_MS,
        // The clone request, the job poll, the LUN read back: three requests.
        Stage::CloneCreate => 3 * LATENCY_MS,
        // A create or delete and its job poll: two requests, ONTAP acting after the first's
        // latency.
        _ => 2 * LATENCY_MS,
    }
}

/// The kills wanted per stage and made so far.
struct Coverage {
    goal: BTreeMap<Stage, usize>,
    /// The order in which stages below their goal are wanted; none: the least hit first.
    order: Option<Vec<Stage>>,
    /// Kills that landed in each stage.
    hit: BTreeMap<Stage, usize>,
    /// Kills aimed at each stage, and how they landed.
    aimed: BTreeMap<Stage, Aimed>,
    /// When a run last entered each stage.
    last_seen: BTreeMap<Stage, Instant>,
}

impl Coverage {
    fn new(goal: impl Fn(Stage) -> usize, order: Option<Vec<Stage>>) -> Coverage {
        Coverage {
            goal: Stage::ALL.into_iter().map(|s| (s, goal(s))).collect(),
            order,
            hit: BTreeMap::new(),
            aimed: BTreeMap::new(),
            last_seen: BTreeMap::new(),
        }
    }

    fn hits(&self, s: Stage) -> usize {
        self.hit.get(&s).copied().unwrap_or(0)
    }

    fn below_goal(&self) -> Vec<Stage> {
        Stage::ALL
            .into_iter()
            .filter(|s| self.hits(*s) < self.goal[s])
            .collect()
    }

    fn complete(&self) -> bool {
        self.below_goal().is_empty()
    }

    fn distinct(&self) -> usize {
        self.hit.values().filter(|n| **n > 0).count()
    }

    /// Notes the stages a run entered (wanted or not): they can come again.
    fn saw(&mut self, stages: impl IntoIterator<Item = Stage>) {
        let now = Instant::now();
        for s in stages {
            self.last_seen.insert(s, now);
        }
    }

    /// The stages a run that has waited `waited` may be killed in.
    ///
    /// Until `WIDEN`: of the stages below their goal (all, once every goal is met), those that
    /// can come (one of `COMES_LATER` only once a run entered it in the last `RECENT`), and of
    /// those the first in `order` (bounded form) or the least hit (campaign). A campaign aims at a stage that ends the minute's work only when no
    /// other is left, the latest of them in the minute first. After `WIDEN`: any of them; after
    /// `ANY_STAGE`: any stage at all.
    fn wanted(&self, waited: Duration) -> BTreeSet<Stage> {
        if waited >= ANY_STAGE {
            return Stage::ALL.into_iter().collect();
        }
        let below = self.below_goal();
        let mut pool: Vec<Stage> = if below.is_empty() {
            Stage::ALL.to_vec()
        } else {
            below
        };
        if self.order.is_none() && pool.iter().any(|s| !ENDS_THE_MINUTE.contains(s)) {
            pool.retain(|s| !ENDS_THE_MINUTE.contains(s));
        }
        let ready = |s: &Stage| {
            !COMES_LATER.contains(s) || self.last_seen.get(s).is_some_and(|t| t.elapsed() < RECENT)
        };
        if pool.iter().any(ready) {
            pool.retain(ready);
        }
        if waited >= WIDEN {
            return pool.into_iter().collect();
        }
        let order: &[Stage] = match &self.order {
            Some(order) => order,
            None if pool.iter().all(|s| ENDS_THE_MINUTE.contains(s)) => &ENDS_THE_MINUTE,
            None => {
                let least = pool.iter().map(|s| self.hits(*s)).min().unwrap_or(0);
                return pool
                    .into_iter()
                    .filter(|s| self.hits(*s) == least)
                    .collect();
            }
        };
        let least = pool.iter().map(|s| self.hits(*s)).min().unwrap_or(0);
        order
            .iter()
            .find(|s| pool.contains(s) && (self.order.is_some() || self.hits(**s) == least))
            .map(|s| BTreeSet::from([*s]))
            .unwrap_or_default()
    }
}

/// The kills aimed at one stage.
#[derive(Debug, Default, Clone, Copy)]
struct Aimed {
    aimed: usize,
    /// Landed in it.
    there: usize,
    /// Landed in it less than the latency after it began (its marker's time stamp): before
    /// ONTAP acted on the call.
    early: usize,
}

/// One SIGKILL: when, what it was aimed at (and how long after that stage began it struck), and
/// the stages it landed in.
struct Kill {
    at: DateTime<Utc>,
    aimed: Option<(Stage, u64)>,
    landed: BTreeMap<Stage, Vec<String>>,
    open: usize,
}

/// Runs the agent until a wanted stage is entered (or `KILL_ANYWAY`), kills it inside, and says
/// where the kill landed.
async fn kill_in_a_stage(files: &Files, n: usize, coverage: &mut Coverage, rng: &mut Rng) -> Kill {
    let (agent, offset) = spawn_agent(files, &format!("run {n}"));
    let mut log = RunLog::new(&files.log, offset);
    let begun = Instant::now();
    let aimed = loop {
        coverage.saw(log.read().into_iter().filter_map(|m| match m {
            Marker::Entered { stage, .. } => Some(stage),
            Marker::Left { .. } => None,
        }));
        let wanted = coverage.wanted(begun.elapsed());
        if let Some(stage) = log.in_flight().into_keys().find(|s| wanted.contains(s)) {
            break Some(stage);
        }
        if begun.elapsed() >= KILL_ANYWAY {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let delay = aimed.map_or(0, |s| rng.between(0, width_ms(s)));
    tokio::time::sleep(Duration::from_millis(delay)).await;
    agent.kill();
    let at = Utc::now();
    // How long after the stage began (its marker's time stamp) the kill struck.
    let after = |s: Stage| {
        log.entered_last(s).map_or(0, |t| {
            u64::try_from((at - t).num_milliseconds()).unwrap_or(0)
        })
    };
    let aimed = aimed.map(|s| (s, after(s)));
    log.read();
    Kill {
        at,
        aimed,
        landed: log.in_flight(),
        open: live(&files.state).cycles.len(),
    }
}

/// The last run: lets it settle everything, reads what must hold while it is quiet (the
/// cluster's listing and the journal's managed takes), then stops it with SIGTERM between
/// `QUIET_FROM` and `QUIET_UNTIL`.
async fn settle(
    sim: &Sim,
    files: &Files,
    lookalikes: &Lookalikes,
    held: &[String],
) -> (
    crash_support::Objects,
    Vec<snapwarden::agent::journal::ManagedRecord>,
) {
    let (agent, _) = spawn_agent(files, "final settling run");
    let poll = Poll::new(Duration::from_secs(150));
    let last = loop {
        let live = live(&files.state);
        let objects = sim.objects().await;
        let records = journal(&files.state)
            .map(|j| j.managed(DateTime::<Utc>::MIN_UTC, false).expect("managed"))
            .unwrap_or_default();
        let leaks = checks::leaks(sim, &files.state, lookalikes).await;
        let open: Vec<String> = live
            .cycles
            .iter()
            .filter(|c| c.state != CycleState::Locked || held.contains(&c.backing_snapshot))
            .map(|c| format!("{} {} {}", c.volume, c.backing_snapshot, c.state.as_str()))
            .collect();
        let unsettled: Vec<&str> = records
            .iter()
            .filter(|r| r.state == ObjectState::Intent)
            .map(|r| r.name.as_str())
            .collect();
        let off_count: Vec<String> = MANAGED_VOLUMES
            .iter()
            .filter_map(|v| {
                let n = objects
                    .snapshots
                    .iter()
                    .filter(|s| s.volume == *v && checks::follows_pattern(MANAGED_PREFIX, &s.name))
                    .count();
                (n != MANAGED_COUNT).then(|| format!("{v}: {n}"))
            })
            .collect();
        // Stopped away from the minute's starts and takes, so that SIGTERM interrupts none.
        let second = sim.now().await.second();
        let calm = (QUIET_FROM..QUIET_UNTIL).contains(&second);
        if open.is_empty()
            && leaks.is_empty()
            && unsettled.is_empty()
            && off_count.is_empty()
            && calm
        {
            agent.stop_gracefully();
            return (objects, records);
        }
        let state = format!(
            "open cycles {open:?}, leaks {leaks:?}, unsettled takes {unsettled:?}, managed series off their count {off_count:?}"
        );
        if !poll.again().await {
            break state;
        }
    };
    agent.stop_gracefully();
    panic!(
        "the last run settled everything within 150 s: {last}; log: {}",
        files.log.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_in_every_stage_the_agent_leaks_nothing_and_touches_nothing_foreign() {
    let begun = Instant::now();
    let kills_wanted =
        usize::try_from(env_number("CRASH_KILLS", DEFAULT_KILLS as u64)).expect("a kill count");
    let campaign = kills_wanted > DEFAULT_KILLS;
    let seed = env_number("CRASH_SEED", 0x5eed_c4a5);
    let mut rng = Rng(seed);
    let per_stage = (kills_wanted / Stage::ALL.len()).max(1);
    let mut coverage = Coverage::new(
        |s| match (campaign, BOUNDED_WANTS.contains(&s)) {
            (true, _) => per_stage,
            (false, true) => 1,
            (false, false) => 0,
        },
        (!campaign).then(|| BOUNDED_WANTS.to_vec()),
    );
    let most_kills = if campaign {
        2 * kills_wanted
    } else {
        kills_wanted + EXTRA_KILLS
    };

    let mut tmp = tempfile::tempdir().expect("tempdir");
    let kept = std::env::var_os("CRASH_KEEP").is_some();
    // Kept whether the test passes or fails.
    tmp.disable_cleanup(kept);
    let files = Files::new(tmp.path());
    let world_path = tmp.path().join("world.toml");
    let collisions = collisions(Utc::now());
    let handed_over = handed_over(Utc::now());
    std::fs::write(&world_path, world(&collisions, &handed_over)).expect("world");
    let sim = Sim::start(
        &world_path,
        File::create(tmp.path().join("sim.log")).expect("sim log"),
    );
    let sim_started = sim.now().await;
    std::fs::write(&files.policy, policy(&sim.url, &sim.fingerprint)).expect("policy");
    let lun_paths: Vec<String> = std::iter::once(LOOKALIKE_LUN.to_string())
        .chain(collisions.iter().cloned())
        .collect();
    let listed: Vec<(&str, &str)> = MANAGED_LOOKALIKES
        .iter()
        .map(|(v, n, _)| (*v, *n))
        .collect();
    let lookalikes = checks::make_lookalikes(
        &sim,
        &[
            ("v1", LOOKALIKE_NO_MARKER, "made by hand, not by snapwarden"),
            ("v2", LOOKALIKE_NOT_JOURNALED, FOREIGN_MARKER),
            ("v3", USER_SNAPSHOT, "user snapshot before an upgrade"),
        ],
        &listed,
        &lun_paths,
    )
    .await;
    sim.call(
        reqwest::Method::POST,
        "/simulator/v1/faults",
        Some(json!({"latency_ms": LATENCY_MS})),
    )
    .await;
    let series: Vec<ManagedSeries> = MANAGED_VOLUMES
        .iter()
        .map(|v| ManagedSeries {
            volume: v.to_string(),
            prefix: MANAGED_PREFIX.into(),
            count: MANAGED_COUNT,
        })
        .collect();
    let watcher = Watcher::start(
        sim.client(),
        &sim.url,
        files.state.clone(),
        series.clone(),
        Holds {
            volume: HOLD_VOLUME.into(),
            max: HOLDS,
        },
    );
    println!(
        "crash test: seed {seed:#x}, {kills_wanted} kills{}, state in {}",
        if campaign {
            format!(" ({per_stage} wanted in every stage)")
        } else {
            String::new()
        },
        files.dir.display()
    );

    let mut kills: Vec<Kill> = Vec::new();
    loop {
        let enough = if campaign {
            coverage.complete()
        } else {
            coverage.distinct() >= BOUNDED_STAGES
        };
        if (kills.len() >= kills_wanted && enough) || kills.len() >= most_kills {
            break;
        }
        let n = kills.len() + 1;
        let kill = kill_in_a_stage(&files, n, &mut coverage, &mut rng).await;
        assert_no_hook_outlives_its_agent(&files.state).await;
        let aimed = match kill.aimed {
            Some((s, after)) => format!("aimed at {} (+{after} ms)", s.as_str()),
            None => "aimed at nothing (no stage came)".into(),
        };
        let landed: Vec<&str> = kill.landed.keys().map(|s| s.as_str()).collect();
        println!(
            "kill {n:>3}: at :{:02}.{:03}, {aimed}, landed in: {}; {} open cycles",
            kill.at.second(),
            kill.at.timestamp_subsec_millis(),
            if landed.is_empty() {
                "no stage".to_string()
            } else {
                landed.join(", ")
            },
            kill.open
        );
        if let Some((s, after)) = kill.aimed {
            let tally = coverage.aimed.entry(s).or_default();
            tally.aimed += 1;
            if kill.landed.contains_key(&s) {
                tally.there += 1;
                tally.early += usize::from(after < LATENCY_MS);
            }
        }
        for s in kill.landed.keys() {
            *coverage.hit.entry(*s).or_default() += 1;
        }
        kills.push(kill);
    }

    // The end: the held snapshots go, the last run settles everything.
    let held: Vec<String> = watcher.let_go().await.into_iter().map(|h| h.name).collect();
    let (quiet, records) = settle(&sim, &files, &lookalikes, &held).await;
    assert_no_hook_outlives_its_agent(&files.state).await;
    let history = watcher.finish().await;

    // Nothing leaked, nothing foreign touched.
    let left = checks::leaks(&sim, &files.state, &lookalikes).await;
    assert!(left.is_empty(), "leaked: {left:?}");
    let live_left = live(&files.state);
    assert!(
        live_left
            .cycles
            .iter()
            .all(|c| c.state == CycleState::Locked && !held.contains(&c.backing_snapshot)),
        "only cycles locked by the schedule may stay open once the agent is quiet: {:?}",
        live_left
            .cycles
            .iter()
            .map(|c| format!("{} {} {}", c.volume, c.backing_snapshot, c.state.as_str()))
            .collect::<Vec<_>>()
    );
    let objects = sim.objects().await;
    checks::check_lookalikes(&objects, &lookalikes);
    checks::check_scheduled(
        &sim,
        sim_started,
        &scheduled_volumes(),
        SCHEDULE_PREFIX,
        SCHEDULE_COUNT,
    )
    .await;
    let journal = Journal::open_read_only(&files.state).expect("journal");
    let deleted_wrongly = checks::check_deletions(&history, &journal, &series, SCHEDULE_PREFIX);
    assert!(
        deleted_wrongly.is_empty(),
        "only rotation and snapwarden's releases delete: {deleted_wrongly:#?}"
    );
    assert!(
        history.violations.is_empty(),
        "the managed series at every listing: {:#?}",
        history.violations
    );
    let mut tallies = Vec::new();
    for s in &series {
        let copy = ManagedCopy {
            series: s.clone(),
            anchor: DateTime::<Utc>::UNIX_EPOCH + TimeDelta::seconds(MANAGED_SECOND.into()),
            period: TimeDelta::minutes(1),
            label: MANAGED_LABEL,
            comment: MANAGED_MARKER.into(),
        };
        tallies.push((
            s.volume.clone(),
            checks::check_managed(&copy, &history, &records, &quiet),
        ));
    }

    // What the kills hit, and the campaign's summary.
    let cycles = journal
        .recent_cycles(DateTime::<Utc>::MIN_UTC, None, 100_000)
        .expect("cycles");
    let mut results: BTreeMap<String, usize> = BTreeMap::new();
    for c in &cycles {
        let r = c.result.map_or(c.state.as_str(), |r| r.as_str());
        *results.entry(r.to_string()).or_default() += 1;
    }
    let switched = journal
        .recommendation_events()
        .expect("recommendations")
        .iter()
        .filter(|e| e.event == snapwarden::agent::journal::RecommendationKind::Switched)
        .count();
    let nowhere = kills.iter().filter(|k| k.landed.is_empty()).count();
    let span = match (kills.first(), kills.last()) {
        (Some(a), Some(b)) => (b.at - a.at).num_seconds(),
        _ => 0,
    };
    println!(
        "\nkills per stage: aimed at it; of those, landed in it, and before ONTAP acted (less than \
         the {LATENCY_MS} ms latency after the stage began); landed in it in all (a kill counts \
         once for each stage entered and not left when it landed):"
    );
    println!(
        "  {:<16} {:>6} {:>6} {:>7} {:>7}",
        "stage", "aimed", "there", "early", "landed"
    );
    for s in Stage::ALL {
        let a = coverage.aimed.get(&s).copied().unwrap_or_default();
        let early = if matches!(s, Stage::Hook | Stage::Switch) {
            "-".to_string()
        } else {
            a.early.to_string()
        };
        println!(
            "  {:<16} {:>6} {:>6} {:>7} {:>7}",
            s.as_str(),
            a.aimed,
            a.there,
            early,
            coverage.hits(s)
        );
    }
    println!(
        "  {:<16} {:>6} {:>6} {:>7} {:>7}",
        "(no stage)", "-", "-", "-", nowhere
    );
    println!(
        "{} kills over {span} s; {} cycles: {results:?}; {switched} volumes switched to FlexClone; {} held snapshots let go; {} still open (locked by the schedule); {} listings watched",
        kills.len(),
        cycles.len(),
        held.len(),
        live_left.cycles.len(),
        history.listings
    );
    for (volume, t) in &tallies {
        println!(
            "managed {volume}: {} instants watched, taken {:?}, {} rotated, {} ever in the series, {MANAGED_COUNT} at the end",
            t.instants, t.taken, t.rotated, t.ever
        );
    }
    println!("wall time {:.0} s", begun.elapsed().as_secs_f64());
    if kept {
        println!("kept {}", tmp.path().display());
    }
    if campaign {
        let short: Vec<String> = coverage
            .below_goal()
            .iter()
            .map(|s| format!("{} {}", s.as_str(), coverage.hits(*s)))
            .collect();
        assert!(
            short.is_empty(),
            "every stage was hit {per_stage} times: short are {short:?}"
        );
        let deferred: usize = tallies
            .iter()
            .map(|(_, t)| t.taken.get("deferred").copied().unwrap_or(0))
            .sum();
        assert!(
            deferred > 0,
            "a managed snapshot waited for a clone: {tallies:?}"
        );
    } else {
        assert!(
            coverage.distinct() >= BOUNDED_STAGES,
            "the kills hit at least {BOUNDED_STAGES} stages: {:?}",
            coverage.hit
        );
    }
    println!(
        "verdict: PASS: nothing leaked, nothing foreign touched, the managed series kept their invariants"
    );
}
