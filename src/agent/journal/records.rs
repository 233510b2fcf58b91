//! The journal's records beside cycles: conflicts, the space locked backing snapshots hold,
//! FlexClone recommendation events.

use super::*;
use crate::agent::recommend::CycleEnd;

impl Journal {
    /// Records a conflict; `false` when the same conflict (by key) was recorded before.
    pub fn record_conflict(&self, c: &ObservedConflict) -> Result<bool, JournalError> {
        self.record_conflict_row(c).map(|row| row.is_some())
    }

    /// [`record_conflict`](Journal::record_conflict), answering the new row's id (`None`: the
    /// journal already had the conflict).
    pub fn record_conflict_row(&self, c: &ObservedConflict) -> Result<Option<i64>, JournalError> {
        self.wrote((|| {
            let conn = self.lock();
            let n = conn
                .exec_cached(
                    "INSERT OR IGNORE INTO conflicts (key, kind, cluster, svm, volume, window, cycle_id,
                        at, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![
                        c.key,
                        c.kind.as_str(),
                        c.cluster,
                        c.svm,
                        c.volume,
                        c.window,
                        c.cycle,
                        ms(c.at),
                        c.detail
                    ],
                )
                .map_err(|e| self.err(e))?;
            Ok((n == 1).then(|| conn.last_insert_rowid()))
        })())
    }

    /// Every conflict recorded on one volume, oldest first (what a recommendation is decided
    /// from; the journal keeps 400 days).
    pub fn volume_conflicts(
        &self,
        cluster: &str,
        svm: &str,
        volume: &str,
    ) -> Result<Vec<ConflictRecord>, JournalError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT kind, cluster, svm, volume, window, cycle_id, at, detail, key
                 FROM conflicts WHERE cluster = ?1 AND svm = ?2 AND volume = ?3
                 ORDER BY at, id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![cluster, svm, volume], conflict_row)
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// What the FlexClone rule reads of cycle `id` (`None`: no such cycle): one look-up by
    /// key, where the whole cycle rows and their clones of every cycle a volume's conflicts
    /// name used to be read at each decision.
    pub fn cycle_end(&self, id: &str) -> Result<Option<CycleEnd>, JournalError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT clone_kind, released_at FROM cycles WHERE id = ?1")
            .map_err(|e| self.err(e))?;
        stmt.query_row(params![id], |r| {
            let kind: String = r.get(0)?;
            Ok(CycleEnd {
                flexclone: CloneKind::parse(&kind) == Some(CloneKind::FlexClone),
                released_at: r.get::<_, Option<i64>>(1)?.map(from_ms),
            })
        })
        .optional()
        .map_err(|e| self.err(e))
    }

    /// One volume's conflicts recorded after row `after` (ids grow with every insert and
    /// conflicts are never changed, only pruned), with their row ids, oldest row first: what a
    /// reader that kept the earlier ones needs to be up to date.
    pub fn volume_conflicts_after(
        &self,
        cluster: &str,
        svm: &str,
        volume: &str,
        after: i64,
    ) -> Result<Vec<(i64, ConflictRecord)>, JournalError> {
        self.conflicts_with_ids(
            "WHERE cluster = ?1 AND svm = ?2 AND volume = ?3 AND id > ?4 ORDER BY id",
            params![cluster, svm, volume, after],
        )
    }

    /// Every volume's conflicts recorded after row `after`, oldest row first, at most `limit`
    /// of them: what a reader keeping several volumes' conflicts needs to bring them all up to
    /// date in one read.
    pub fn conflicts_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, ConflictRecord)>, JournalError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.conflicts_with_ids("WHERE id > ?1 ORDER BY id LIMIT ?2", params![after, limit])
    }

    /// Conflicts with their row ids, selected by `tail` (a `WHERE` clause and its order).
    fn conflicts_with_ids(
        &self,
        tail: &str,
        args: impl rusqlite::Params,
    ) -> Result<Vec<(i64, ConflictRecord)>, JournalError> {
        let conn = self.lock();
        let sql = format!(
            "SELECT kind, cluster, svm, volume, window, cycle_id, at, detail, key, id
             FROM conflicts {tail}"
        );
        let mut stmt = conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(args, |r| Ok((r.get(9)?, conflict_row(r)?)))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// The id of the last conflict recorded (0: none).
    pub fn last_conflict_id(&self) -> Result<i64, JournalError> {
        self.lock()
            .prepare_cached("SELECT COALESCE(MAX(id), 0) FROM conflicts")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(|e| self.err(e))
    }

    /// Records the space a locked cycle's backing snapshot holds; a later report of the same
    /// cycle replaces it (an unchanged size is not rewritten).
    pub fn record_locked_space(&self, l: &LockedSpace) -> Result<(), JournalError> {
        let (bytes, at) = l.journaled();
        self.wrote((|| {
            self.lock()
                .exec_cached(
                    "INSERT INTO locked_space (cycle_id, cluster, svm, volume, snapshot, bytes, at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT(cycle_id) DO UPDATE SET bytes = excluded.bytes, at = excluded.at
                     WHERE locked_space.bytes != excluded.bytes",
                    params![
                        l.cycle_id,
                        l.cluster,
                        l.svm,
                        l.volume,
                        l.snapshot,
                        i64::try_from(bytes).unwrap_or(i64::MAX),
                        ms(at)
                    ],
                )
                .map_err(|e| self.err(e))?;
            Ok(())
        })())
    }

    /// Every locked-space record, by cluster, SVM, volume and cycle (none in a journal older
    /// than migration 4, which `report` may read before `run` migrated it).
    pub fn locked_space(&self) -> Result<Vec<LockedSpace>, JournalError> {
        if self.user_version()? < LOCKED_SPACE_FROM {
            return Ok(Vec::new());
        }
        self.query_locked_space("ORDER BY cluster, svm, volume, cycle_id", params![])
    }

    /// The locked-space records of one volume's cycles, by cycle (what its recommendation's
    /// evidence reads: an index look-up, not the whole table).
    pub fn volume_locked_space(
        &self,
        cluster: &str,
        svm: &str,
        volume: &str,
    ) -> Result<Vec<LockedSpace>, JournalError> {
        self.query_locked_space(
            "WHERE cluster = ?1 AND svm = ?2 AND volume = ?3 ORDER BY cycle_id",
            params![cluster, svm, volume],
        )
    }

    fn query_locked_space(
        &self,
        tail: &str,
        args: impl rusqlite::Params,
    ) -> Result<Vec<LockedSpace>, JournalError> {
        let conn = self.lock();
        let sql = format!(
            "SELECT cycle_id, cluster, svm, volume, snapshot, bytes, at FROM locked_space {tail}"
        );
        let mut stmt = conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(args, |r| {
                let bytes: i64 = r.get(5)?;
                Ok(LockedSpace {
                    cycle_id: r.get(0)?,
                    cluster: r.get(1)?,
                    svm: r.get(2)?,
                    volume: r.get(3)?,
                    snapshot: r.get(4)?,
                    bytes: u64::try_from(bytes).unwrap_or(0),
                    at: from_ms(r.get(6)?),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// Records a recommendation event (raised, switched, cleared).
    pub fn record_recommendation(&self, e: &RecommendationEvent) -> Result<(), JournalError> {
        self.wrote((|| {
            self.lock()
                .exec_cached(
                    "INSERT INTO recommendations (cluster, svm, volume, event, at, evidence)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        e.cluster,
                        e.svm,
                        e.volume,
                        e.event.as_str(),
                        ms(e.at),
                        e.evidence
                    ],
                )
                .map_err(|e| self.err(e))?;
            Ok(())
        })())
    }

    /// Every recommendation event, in the order they were recorded.
    pub fn recommendation_events(&self) -> Result<Vec<RecommendationEvent>, JournalError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT cluster, svm, volume, event, at, evidence FROM recommendations ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                let event: String = r.get(3)?;
                Ok(RecommendationEvent {
                    cluster: r.get(0)?,
                    svm: r.get(1)?,
                    volume: r.get(2)?,
                    event: RecommendationKind::parse(&event).unwrap_or(RecommendationKind::Raised),
                    at: from_ms(r.get(4)?),
                    evidence: r.get(5)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// Conflicts at or after `since`, newest first, at most `limit`.
    pub fn conflicts(
        &self,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<ConflictRecord>, JournalError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT kind, cluster, svm, volume, window, cycle_id, at, detail, key
                 FROM conflicts WHERE at >= ?1 ORDER BY at DESC, id DESC LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![ms(since), limit_i64(limit)], conflict_row)
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }
}
