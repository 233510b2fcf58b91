//! Domain types shared by the pure core and the edges: the observed ONTAP inventory, durations and
//! their bounds.
//!
//! Nothing here does I/O or knows a wire format. `timeline` and `planner` import from here (never
//! from `ontap`, `sim` or `cli`); `ontap` converts ONTAP's JSON into these types and `config`
//! parses policy durations with [`duration`].

pub mod duration;
pub mod inventory;
pub mod limits;

pub use duration::{format_iso8601_duration, parse_duration, parse_iso8601_duration};
pub use inventory::{
    Autodelete, ClusterInfo, Observed, ObservedCluster, PolicyCopies, ScheduleInfo,
    SnapshotPolicyInfo, VolumeInfo, VolumeSettings,
};
