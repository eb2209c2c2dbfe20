//! The history tree (see `store/history.rs`): `<tier byte><t as u64 BE>` →
//! `HistoryPoint`, so a range scan reads an interval in time order.

use super::{decode, encode, BlockingMeta};
use crate::store::{HistoryPoint, HistoryTier, StoreError};

fn key(tier: HistoryTier, t: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = tier.tag();
    key[1..].copy_from_slice(&t.to_be_bytes());
    key
}

impl BlockingMeta {
    /// Writes a step's point and its hour's running total in one batch,
    /// and drops the points older than `keep_steps_from` and
    /// `keep_hours_from` (unix seconds) of each tier.
    pub fn record_history(
        &self,
        step: &HistoryPoint,
        hour: &HistoryPoint,
        keep_steps_from: u64,
        keep_hours_from: u64,
    ) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (tier, keep_from) in [
            (HistoryTier::Step, keep_steps_from),
            (HistoryTier::Hour, keep_hours_from),
        ] {
            for old in self.history.range(key(tier, 0)..key(tier, keep_from)) {
                batch.remove(old?.0);
            }
        }
        batch.insert(&key(HistoryTier::Step, step.t), encode(step)?);
        batch.insert(&key(HistoryTier::Hour, hour.t), encode(hour)?);
        self.history.apply_batch(batch)?;
        Ok(())
    }

    /// The points of `tier` from `from` (unix seconds) on, oldest first.
    pub fn history(&self, tier: HistoryTier, from: u64) -> Result<Vec<HistoryPoint>, StoreError> {
        let mut points = Vec::new();
        for item in self.history.range(key(tier, from)..=key(tier, u64::MAX)) {
            let (k, v) = item?;
            points.push(decode(&k, &v)?);
        }
        Ok(points)
    }
}
