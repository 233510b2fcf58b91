//! The pure planner: places backing-snapshot lifecycles between scheduled snapshots.
