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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::meta::tests::{fresh, tag_at};
    use crate::store::Pin;

    fn at(t: u64, requests: u64) -> HistoryPoint {
        HistoryPoint {
            t,
            requests,
            ..HistoryPoint::default()
        }
    }

    #[test]
    fn each_step_writes_its_point_and_its_hour_and_prunes_the_old() {
        let dir = tempfile::tempdir().unwrap();
        let meta = BlockingMeta::open(dir.path()).unwrap();
        for t in [60, 120, 3600, 3660] {
            let hour = at(t - t % 3600, t);
            meta.record_history(&at(t, 1), &hour, 0, 0).unwrap();
        }
        let steps: Vec<u64> = meta
            .history(HistoryTier::Step, 0)
            .unwrap()
            .iter()
            .map(|p| p.t)
            .collect();
        assert_eq!(steps, [60, 120, 3600, 3660]);
        // The hour's running total is overwritten by each step.
        let hours = meta.history(HistoryTier::Hour, 0).unwrap();
        assert_eq!(hours, [at(0, 120), at(3600, 3660)]);
        // Reading from a time skips what is older.
        assert_eq!(meta.history(HistoryTier::Step, 3600).unwrap().len(), 2);
        // The next step drops the steps and hours before the kept times.
        meta.record_history(&at(3720, 1), &at(3600, 9), 3660, 3600)
            .unwrap();
        let steps: Vec<u64> = meta
            .history(HistoryTier::Step, 0)
            .unwrap()
            .iter()
            .map(|p| p.t)
            .collect();
        assert_eq!(steps, [3660, 3720]);
        assert_eq!(meta.history(HistoryTier::Hour, 0).unwrap(), [at(3600, 9)]);
    }

    #[test]
    fn the_content_version_moves_with_every_change_the_listings_sum() {
        let dir = tempfile::tempdir().unwrap();
        let meta = BlockingMeta::open(dir.path()).unwrap();
        let mut seen = meta.content_version();
        let mut moved = |what: &str| {
            let now = meta.content_version();
            assert!(now > seen, "{what} left the content version at {seen}");
            seen = now;
        };
        meta.point_tag("c/a", "1", &tag_at(b"m"), &fresh("a"))
            .unwrap();
        moved("point_tag");
        meta.note_pulled("c/a", "1", 5).unwrap();
        moved("note_pulled");
        meta.put_pin(&Pin::Cache("c".into())).unwrap();
        moved("put_pin");
        meta.delete_pin(&Pin::Cache("c".into())).unwrap();
        moved("delete_pin");
        meta.delete_repo("c/a").unwrap();
        moved("delete_repo");
        meta.forget_content(&crate::domain::Digest::sha256_of(b"m"))
            .unwrap();
        moved("forget_content");
    }
}
