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
    /// Name prefixes user-created snapshots may not begin with: a create or rename whose name
    /// is one of them followed by a dot fails with 1638477, as real ONTAP refuses the prefixes
    /// of its own schedules on some versions. The schedules' own snapshots are not affected.
    /// Default none.
    pub reserved_snapshot_prefixes: Vec<String>,
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
            reserved_snapshot_prefixes: Vec::new(),
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

/// A knob or fault outside its range: the field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SettingError {
    pub field: &'static str,
    pub message: String,
}

/// Most reserved snapshot prefixes a world may list: ONTAP's own schedules use a handful.
pub const MAX_RESERVED_PREFIXES: usize = 64;

/// The longest duration a knob or fault may set, in seconds: 366 days, the longest clock
/// advance, so every such duration ends within one advance of its start.
pub const MAX_SETTING_SECONDS: u64 = 366 * 86_400;

/// The longest injected latency, in milliseconds: 60 s, twice a typical client's 30 s timeout,
/// enough to provoke timeouts without parking a server task for hours.
pub const MAX_LATENCY_MS: u64 = 60_000;

fn at_most(field: &'static str, value: u64, max: u64, unit: &str) -> Result<(), SettingError> {
    if value <= max {
        Ok(())
    } else {
        Err(SettingError {
            field,
            message: format!("{value} is out of range: at most {max} {unit}"),
        })
    }
}

fn fraction(field: &'static str, value: f64) -> Result<(), SettingError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(SettingError {
            field,
            message: format!("{value} is out of range: a fraction in 0 ..= 1"),
        })
    }
}

impl Knobs {
    /// Checks every knob's range; the first problem found.
    pub fn validate(&self) -> Result<(), SettingError> {
        use super::codes::SNAPSHOT_HAS_OWNER;
        use crate::ontap::SNAPSHOT_LOCKED;
        if ![SNAPSHOT_LOCKED, SNAPSHOT_HAS_OWNER].contains(&self.locked_delete_code) {
            return Err(SettingError {
                field: "locked_delete_code",
                message: format!(
                    "{} is not one of ONTAP's codes for a locked snapshot: {SNAPSHOT_LOCKED} \
                     (has not expired or is locked) or {SNAPSHOT_HAS_OWNER} (has an owner)",
                    self.locked_delete_code
                ),
            });
        }
        at_most(
            "block_sharing_seconds",
            self.block_sharing_seconds,
            MAX_SETTING_SECONDS,
            "seconds (366 days)",
        )?;
        at_most(
            "job_retention_seconds",
            self.job_retention_seconds,
            MAX_SETTING_SECONDS,
            "seconds (366 days)",
        )?;
        if !(1..=1023).contains(&self.max_snapshots_per_volume) {
            return Err(SettingError {
                field: "max_snapshots_per_volume",
                message: format!(
                    "{} is out of range: 1 ..= 1023 (ONTAP's FlexVol limit)",
                    self.max_snapshots_per_volume
                ),
            });
        }
        let prefixes = &self.reserved_snapshot_prefixes;
        if prefixes.len() > MAX_RESERVED_PREFIXES {
            return Err(SettingError {
                field: "reserved_snapshot_prefixes",
                message: format!(
                    "{} prefixes: at most {MAX_RESERVED_PREFIXES}",
                    prefixes.len()
                ),
            });
        }
        if let Some((prefix, problem)) = prefixes
            .iter()
            .find_map(|p| super::snapshots::snapshot_name_problem(p).map(|why| (p, why)))
        {
            return Err(SettingError {
                field: "reserved_snapshot_prefixes",
                message: format!(
                    "\"{}\" cannot begin a snapshot name: {problem}",
                    prefix.escape_debug()
                ),
            });
        }
        Ok(())
    }
}

impl Faults {
    /// Checks every fault's range; the first problem found.
    pub fn validate(&self) -> Result<(), SettingError> {
        at_most(
            "latency_ms",
            self.latency_ms,
            MAX_LATENCY_MS,
            "milliseconds (60 s)",
        )?;
        fraction("error_rate", self.error_rate)?;
        fraction("drop_rate", self.drop_rate)?;
        fraction("job_failure_rate", self.job_failure_rate)?;
        at_most(
            "job_duration_seconds",
            self.job_duration_seconds,
            MAX_SETTING_SECONDS,
            "seconds (366 days)",
        )
    }
}
