//! The simulator takes exactly the scheduled snapshots the planner predicts (one timeline module).

use chrono::{DateTime, TimeDelta, Utc};
use snapwarden::config;
use snapwarden::planner::{plan, Observed};
use snapwarden::sim::{ClockMode, Simulator};

#[test]
fn demo_world_snapshots_equal_the_planned_schedule_across_a_dst_change() {
    let policy = config::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/planning-demo.toml"
    )))
    .expect("demo policy loads");
    // Europe/Berlin leaves summer time on 2026-10-25; the horizon spans it.
    let start: DateTime<Utc> = "2026-10-23T12:00:00Z".parse().unwrap();
    let horizon = TimeDelta::days(4);
    let sim =
        Simulator::from_policy(&policy, ClockMode::Manual, Some(start)).expect("demo world builds");
    let events = sim.advance(horizon).expect("manual clock advances");

    let plan = plan(
        &policy,
        &Observed::offline(),
        start + TimeDelta::seconds(1),
        horizon,
    );
    for vp in &plan.volumes {
        let name = &policy.volumes[vp.volume].name;
        let mut predicted: Vec<(String, DateTime<Utc>)> = vp
            .scheduled
            .iter()
            .filter(|s| s.at <= start + horizon)
            .map(|s| (vp.schedule_name(s).to_string(), s.at))
            .collect();
        let mut taken: Vec<(String, DateTime<Utc>)> = events
            .iter()
            .filter(|e| e.kind == "taken" && &e.volume == name)
            .map(|e| {
                let prefix = e.snapshot.split('.').next().unwrap().to_string();
                (prefix, e.time.with_timezone(&Utc))
            })
            .collect();
        predicted.sort();
        taken.sort();
        assert!(
            predicted.len() > 90,
            "{name}: {} predicted",
            predicted.len()
        );
        assert_eq!(
            taken, predicted,
            "{name}: the simulator and the planner disagree"
        );
    }
}
