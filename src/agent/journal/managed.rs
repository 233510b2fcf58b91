//! Managed snapshots in the journal: each one snapwarden took (or meant to take) of a copy it
//! manages, its intent written before the create.

use super::*;

/// One managed snapshot as the journal holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedRecord {
    pub cluster: String,
    pub svm: String,
    pub volume: String,
    /// The copy's prefix.
    pub prefix: String,
    pub name: String,
    /// The first instant of the copy it covers.
    pub due_at: DateTime<Utc>,
    /// How many of the copy's instants it covers.
    pub instants: u32,
    /// How long it waited for a clone to go.
    pub waited: TimeDelta,
    /// `on_time`, `deferred`, `max_defer`, `overdue`.
    pub reason: String,
    /// Intent (asked, answer unknown), created, or absent (never made).
    pub state: ObjectState,
    pub uuid: Option<String>,
    /// When the create was asked.
    pub asked_at: DateTime<Utc>,
    pub detail: String,
}

impl Journal {
    /// Records the intent to take a managed snapshot, before the call that makes it; `false`
    /// when the journal holds that name on that volume already, asked or made (one never made
    /// is asked again).
    pub fn insert_managed(&self, m: &ManagedRecord) -> Result<bool, JournalError> {
        self.wrote((|| {
            let n = self
                .lock()
                .exec_cached(
                    "INSERT INTO managed_snapshots (cluster, svm, volume, prefix, name,
                        due_at, instants, waited_ms, reason, state, uuid, asked_at, detail)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
                     ON CONFLICT (cluster, svm, volume, name) DO UPDATE SET
                        due_at = excluded.due_at, instants = excluded.instants,
                        waited_ms = excluded.waited_ms, reason = excluded.reason,
                        state = excluded.state, asked_at = excluded.asked_at,
                        detail = excluded.detail
                     WHERE managed_snapshots.state = 'absent'",
                    params![
                        m.cluster,
                        m.svm,
                        m.volume,
                        m.prefix,
                        m.name,
                        ms(m.due_at),
                        m.instants,
                        m.waited.num_milliseconds(),
                        m.reason,
                        m.state.as_str(),
                        m.uuid,
                        ms(m.asked_at),
                        m.detail
                    ],
                )
                .map_err(|e| self.err(e))?;
            Ok(n == 1)
        })())
    }

    /// Settles a managed snapshot's intent: created (with its uuid) or absent, with a detail.
    pub fn settle_managed(
        &self,
        volume: &crate::agent::state::VolumeKey,
        name: &str,
        state: ObjectState,
        uuid: Option<&str>,
        detail: &str,
    ) -> Result<(), JournalError> {
        self.wrote((|| {
            self.lock()
                .exec_cached(
                    "UPDATE managed_snapshots SET state = ?5, uuid = COALESCE(?6, uuid),
                        detail = ?7
                     WHERE cluster = ?1 AND svm = ?2 AND volume = ?3 AND name = ?4",
                    params![
                        volume.cluster,
                        volume.svm,
                        volume.volume,
                        name,
                        state.as_str(),
                        uuid,
                        detail
                    ],
                )
                .map_err(|e| self.err(e))?;
            Ok(())
        })())
    }

    /// Managed snapshots asked at or after `since`, oldest first; with `pending`, only the
    /// intents whose answer is unknown. None in a journal older than migration 5.
    pub fn managed(
        &self,
        since: DateTime<Utc>,
        pending: bool,
    ) -> Result<Vec<ManagedRecord>, JournalError> {
        if self.user_version()? < MANAGED_FROM {
            return Ok(Vec::new());
        }
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT cluster, svm, volume, prefix, name, due_at, instants, waited_ms, reason,
                    state, uuid, asked_at, detail FROM managed_snapshots
                 WHERE asked_at >= ?1 AND (?2 = 0 OR state = 'intent')
                 ORDER BY asked_at, id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![ms(since), i64::from(pending)], |r| {
                let state: String = r.get(9)?;
                Ok(ManagedRecord {
                    cluster: r.get(0)?,
                    svm: r.get(1)?,
                    volume: r.get(2)?,
                    prefix: r.get(3)?,
                    name: r.get(4)?,
                    due_at: from_ms(r.get(5)?),
                    instants: r.get(6)?,
                    waited: TimeDelta::milliseconds(r.get(7)?),
                    reason: r.get(8)?,
                    state: ObjectState::parse(&state).unwrap_or(ObjectState::Intent),
                    uuid: r.get(10)?,
                    asked_at: from_ms(r.get(11)?),
                    detail: r.get(12)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }
}
