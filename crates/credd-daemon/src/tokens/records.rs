//! The token records as a request reads them: one immutable snapshot
//! ([`Snapshot`]) behind an `ArcSwap`, replaced whole by each change. So
//! that a change does not copy every record (10,000 tokens: 10,000 copies a
//! change, O(N²) to issue N), a snapshot is a large `base` shared with the
//! snapshots before it, plus the few changes since (`recent`, `gone`);
//! the changes are folded into a new base once they number about √N, so a
//! change copies O(√N) entries, amortized. A lookup is at most three hash
//! probes, two of them in maps that are usually empty.

use credd_core::token::TokenRecord;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

pub(super) type Records = HashMap<String, Arc<TokenRecord>>;

#[derive(Debug, Clone, Default)]
pub(super) struct Snapshot {
    base: Arc<Records>,
    /// Issued or changed since `base` was made; wins over it.
    recent: Records,
    /// Revoked since `base` was made, while still in it.
    gone: HashSet<String>,
}

/// Fewer pending changes than this are never folded.
const FOLD_AT_LEAST: usize = 32;

impl Snapshot {
    pub fn new(records: Records) -> Self {
        Self {
            base: Arc::new(records),
            ..Default::default()
        }
    }

    pub fn get(&self, id: &str) -> Option<&Arc<TokenRecord>> {
        if !self.recent.is_empty() {
            if let Some(r) = self.recent.get(id) {
                return Some(r);
            }
        }
        if !self.gone.is_empty() && self.gone.contains(id) {
            return None;
        }
        self.base.get(id)
    }

    pub fn contains(&self, id: &str) -> bool {
        self.get(id).is_some()
    }

    pub fn insert(&mut self, id: String, record: Arc<TokenRecord>) {
        self.gone.remove(&id);
        self.recent.insert(id, record);
        self.fold_if_due();
    }

    /// Removes `id`; whether it was there.
    pub fn remove(&mut self, id: &str) -> bool {
        let was = self.contains(id);
        self.recent.remove(id);
        if was && self.base.contains_key(id) {
            self.gone.insert(id.to_string());
        }
        self.fold_if_due();
        was
    }

    /// Every record (in no order).
    pub fn values(&self) -> impl Iterator<Item = &Arc<TokenRecord>> {
        self.recent.values().chain(
            self.base
                .iter()
                .filter(|(id, _)| !self.gone.contains(*id) && !self.recent.contains_key(*id))
                .map(|(_, r)| r),
        )
    }

    /// The number of records, without counting them one by one:
    /// `gone` holds only ids in `base` and none in `recent`.
    pub fn len(&self) -> usize {
        let added = self
            .recent
            .keys()
            .filter(|id| !self.base.contains_key(*id))
            .count();
        self.base.len() - self.gone.len() + added
    }

    fn fold_if_due(&mut self) {
        let pending = self.recent.len() + self.gone.len();
        let due = (self.base.len() as f64).sqrt() as usize;
        if pending < due.max(FOLD_AT_LEAST) {
            return;
        }
        let mut base = Records::clone(&self.base);
        for id in self.gone.drain() {
            base.remove(&id);
        }
        base.extend(self.recent.drain());
        self.base = Arc::new(base);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn rec(i: usize) -> Arc<TokenRecord> {
        let mut random = [0u8; 40];
        random[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let at = datetime!(2026-11-23 09:00 UTC);
        Arc::new(credd_core::token::mint(random, vec!["a".into()], at, None, String::new()).1)
    }

    #[test]
    fn behaves_as_one_map_across_folds() {
        let mut s = Snapshot::default();
        let mut model: Records = HashMap::new();
        let mut kept = Vec::new();
        for i in 0..3000 {
            let r = rec(i);
            s.insert(r.id.clone(), r.clone());
            model.insert(r.id.clone(), r.clone());
            kept.push(r.id.clone());
            if i % 3 == 0 {
                // Revoke an older one, in the base by now or still recent.
                let id = kept.swap_remove((i * 7) % kept.len());
                assert_eq!(s.remove(&id), model.remove(&id).is_some());
                assert!(!s.remove(&id), "gone already");
            }
            if i % 500 == 0 {
                // An older snapshot is not changed by a newer one's changes.
                let old = s.clone();
                let r = rec(100_000 + i);
                s.insert(r.id.clone(), r.clone());
                assert!(old.get(&r.id).is_none() && s.get(&r.id).is_some());
                s.remove(&r.id);
            }
        }
        assert_eq!(s.len(), model.len());
        for (id, r) in &model {
            assert!(Arc::ptr_eq(s.get(id).unwrap(), r), "{id}");
        }
        let mut seen: Vec<&str> = s.values().map(|r| r.id.as_str()).collect();
        seen.sort();
        let mut want: Vec<&str> = model.keys().map(String::as_str).collect();
        want.sort();
        assert_eq!(seen, want);
        assert!(
            s.recent.len() + s.gone.len() < 100,
            "folded: {} pending",
            s.recent.len() + s.gone.len()
        );
    }
}
