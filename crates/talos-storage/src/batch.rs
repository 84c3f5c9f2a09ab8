//! Batch imports: in-batch deduplication and the per-item outcomes, shared by both backends'
//! batch statements (`pg.rs`, `sqlite.rs`), and the quota arithmetic.

use std::collections::HashSet;

use crate::error::{Result, StorageError};
use crate::model::{BatchItemOutcome, KeyRecord};
use crate::row::Row;

/// Rows per `INSERT` statement: 1000 rows × 21 columns stays under SQLite's 32766 and
/// PostgreSQL's 65535 bind parameter limits.
pub(crate) const BATCH_CHUNK: usize = 1000;

/// A batch, split into the rows worth sending and the items already known to be duplicates
/// within the batch (first occurrence wins, by key id, hash or request id).
pub(crate) struct BatchPlan {
    /// `Some(row)` for items to insert, `None` for in-batch duplicates; in input order.
    items: Vec<Option<Row>>,
}

impl BatchPlan {
    pub(crate) fn new(keys: &[KeyRecord]) -> Result<BatchPlan> {
        let mut ids = HashSet::new();
        let mut hashes = HashSet::new();
        let mut request_ids = HashSet::new();
        let mut items = Vec::with_capacity(keys.len());
        for key in keys {
            let row = Row::from_record(key)?;
            let id = (row.nid.clone(), row.key_id.clone());
            let hash = row.hash.as_ref().map(|h| (row.nid.clone(), h.clone()));
            let req = row
                .request_id
                .as_ref()
                .map(|r| (row.nid.clone(), row.kind.clone(), r.clone()));
            // Only an accepted item claims its id, hash and request id: a rejected one must not
            // shadow a later item that collides with it alone.
            let fresh = !ids.contains(&id)
                && hash.as_ref().is_none_or(|h| !hashes.contains(h))
                && req.as_ref().is_none_or(|r| !request_ids.contains(r));
            if fresh {
                ids.insert(id);
                hashes.extend(hash);
                request_ids.extend(req);
            }
            items.push(fresh.then_some(row));
        }
        Ok(BatchPlan { items })
    }

    pub(crate) fn rows(&self) -> Vec<&Row> {
        self.items.iter().flatten().collect()
    }

    /// `inserted` holds the `(nid, key_id)` pairs the database reported as inserted; every other
    /// item hit an existing row (`ON CONFLICT DO NOTHING`) or an earlier item of the batch.
    pub(crate) fn outcomes(
        self,
        inserted: &HashSet<(String, String)>,
    ) -> Result<Vec<BatchItemOutcome>> {
        self.items
            .into_iter()
            .map(|item| match item {
                Some(row) if inserted.contains(&(row.nid.clone(), row.key_id.clone())) => {
                    Ok(BatchItemOutcome::Inserted(row.into_record()?))
                }
                _ => Ok(BatchItemOutcome::Duplicate),
            })
            .collect()
    }

    /// Like `outcomes`, when only the first `sent` rows of `rows()` were sent (the quota had room
    /// for no more): the rows after them are `QuotaExceeded`.
    pub(crate) fn outcomes_within(
        self,
        inserted: &HashSet<(String, String)>,
        sent: usize,
    ) -> Result<Vec<BatchItemOutcome>> {
        let mut seen = 0usize;
        self.items
            .into_iter()
            .map(|item| match item {
                Some(row) => {
                    seen += 1;
                    if seen > sent {
                        Ok(BatchItemOutcome::QuotaExceeded)
                    } else if inserted.contains(&(row.nid.clone(), row.key_id.clone())) {
                        Ok(BatchItemOutcome::Inserted(row.into_record()?))
                    } else {
                        Ok(BatchItemOutcome::Duplicate)
                    }
                }
                None => Ok(BatchItemOutcome::Duplicate),
            })
            .collect()
    }
}

/// How many more keys fit under `max` when `current` are active.
pub(crate) fn room(max: u64, current: i64) -> usize {
    let current = u64::try_from(current).unwrap_or(0);
    usize::try_from(max.saturating_sub(current)).unwrap_or(usize::MAX)
}

/// The quota error for a network holding `current` active keys.
pub(crate) fn quota_exceeded(max: u64, current: i64) -> StorageError {
    StorageError::QuotaExceeded {
        limit: max,
        current: u64::try_from(current).unwrap_or(0),
    }
}
