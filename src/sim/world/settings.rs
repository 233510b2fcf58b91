//! Knobs (behaviour where ONTAP is undocumented or configurable) and injected faults.

/// What scheduled rotation does when the oldest snapshot it should delete is locked.
/// ONTAP does not document this (reference notes §5.4, §9.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockedOldest {
    /// Keep the locked snapshot, delete the oldest unlocked ones instead; the count is exceeded
    /// by the locked ones (default).
    Skip,
    /// Stop rotating at the first locked snapshot; nothing newer is deleted either.
    Stall,
    /// Do not take the new scheduled snapshot.
    FailCreate,
}

/// Behaviour switches where ONTAP is undocumented or configurable. See `docs/simulator.md`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Knobs {
    /// Snapshot, LUN and volume create/delete answer 202 + job (as ONTAP does) instead of 201/200.
    pub async_mutations: bool,
    pub locked_oldest: LockedOldest,
    /// Code of the failed delete of a locked snapshot: 1638555 (observed) or 1638543 ("has an owner").
    pub locked_delete_code: u64,
    /// How long a FlexClone LUN created from a snapshot shares blocks with it.
    pub block_sharing_seconds: u64,
    /// How long a job stays queryable after it ends (ONTAP default 300 s, reference notes §6.2).
    pub job_retention_seconds: u64,
    /// FlexVol limit from ONTAP 9.4 (reference notes §2.1).
    pub max_snapshots_per_volume: usize,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            async_mutations: true,
            locked_oldest: LockedOldest::Skip,
            locked_delete_code: 1_638_555,
            block_sharing_seconds: 60,
            job_retention_seconds: 300,
            max_snapshots_per_volume: 1023,
        }
    }
}

/// Injected faults, set by configuration or `POST /simulator/v1/faults`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Added to every `/api` request, in milliseconds of real time.
    pub latency_ms: u64,
    /// Fraction (0..=1) of `/api` requests answered with HTTP 500 and an error envelope.
    pub error_rate: f64,
    /// Fraction (0..=1) of `/api` requests whose connection is dropped without an answer.
    pub drop_rate: f64,
    /// Fraction (0..=1) of jobs that fail (the operation is then not performed).
    pub job_failure_rate: f64,
    /// Seconds of simulator time a job stays `running` before it ends.
    pub job_duration_seconds: u64,
    /// The next this-many `/api` POST, PATCH and DELETE requests that succeed are applied and
    /// then their connection is dropped without an answer: a reply lost after the cluster
    /// acted. Each such request counts it down by one.
    pub drop_after_apply: u64,
}
