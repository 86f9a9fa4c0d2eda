//! What a target folder already holds, indexed for two questions: "is this new source item
//! already there?" (first contact with a target another tool filled: Message-ID or header
//! fingerprint + canonical size) and "did this uncertain append land?" (after a crash or a cut
//! connection: same size, then the checksum of what is read back). Target items the state
//! already accounts for are left out, so byte-identical duplicates in the source are each copied.

use std::collections::{HashMap, HashSet};

use futures_util::StreamExt;

use crate::backend::Target;
use crate::checksum::Checksum;
use crate::error::Result;
use crate::folder::FolderPath;
use crate::item::{CanonicalItem, SourceKey, TargetKey};
use crate::normalise::canonicalise;

/// Unclaimed target items by fingerprint and by size, and — after a source renumbered the
/// folder — by the checksum recorded when they were copied under the old validity.
#[derive(Default)]
pub(crate) struct TargetIndex {
    by_fingerprint: HashMap<(String, u64), Vec<TargetKey>>,
    by_size: HashMap<u64, Vec<TargetKey>>,
    by_checksum: HashMap<Checksum, Vec<TargetKey>>,
    present: HashSet<TargetKey>,
    claimed: HashSet<TargetKey>,
    /// Above every key listed (accounted ones too), when the target's keys are increasing
    /// numbers: anything committed after the listing has a key at or above it.
    high_water: Option<u64>,
}

/// How a new source item was found in the target.
pub(crate) enum Match {
    /// Copied by us under an earlier validity token: same checksum.
    Copied(TargetKey),
    /// Put there by someone else: same fingerprint and size.
    Existing(TargetKey),
}

/// An item whose presence in the target is uncertain.
pub(crate) struct Uncertain {
    pub key: SourceKey,
    pub checksum: Checksum,
    pub size: u64,
}

impl TargetIndex {
    /// Lists the target folder, leaving out the keys in `accounted`.
    pub(crate) async fn build(
        target: &dyn Target,
        folder: &FolderPath,
        accounted: &HashSet<TargetKey>,
    ) -> Result<Self> {
        let mut index = TargetIndex::default();
        let mut high_water = target.capabilities().ordered_ids.then_some(0u64);
        let mut existing = target.existing(folder);
        while let Some(item) = existing.next().await {
            let item = item?;
            high_water = high_water.and_then(|h| Some(h.max(item.key.0.parse::<u64>().ok()? + 1)));
            if accounted.contains(&item.key) {
                continue;
            }
            if let Some(fp) = item.fingerprint {
                index
                    .by_fingerprint
                    .entry((fp, item.size))
                    .or_default()
                    .push(item.key.clone());
            }
            index.present.insert(item.key.clone());
            index.by_size.entry(item.size).or_default().push(item.key);
        }
        index.high_water = high_water;
        Ok(index)
    }

    /// Adds what was copied under an earlier validity token and is still in the target.
    pub(crate) fn add_copied(&mut self, copied: impl IntoIterator<Item = (Checksum, TargetKey)>) {
        for (checksum, key) in copied {
            if self.present.contains(&key) {
                self.by_checksum.entry(checksum).or_default().push(key);
            }
        }
    }

    /// Whether the index holds nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.by_size.is_empty()
    }

    /// Every key listed is below it (see the field); `None` for targets without ordered keys.
    pub(crate) fn high_water(&self) -> Option<u64> {
        self.high_water
    }

    /// Makes `keys` unclaimable (they were removed from the target).
    pub(crate) fn forget(&mut self, keys: &[TargetKey]) {
        self.claimed.extend(keys.iter().cloned());
    }

    /// How many unaccounted target items were listed.
    pub(crate) fn listed(&self) -> usize {
        self.present.len()
    }

    /// Claims an unclaimed target item holding `item`: one copied under an earlier validity
    /// with the same checksum, else one with the same fingerprint and size.
    pub(crate) fn claim_match(&mut self, item: &CanonicalItem) -> Option<Match> {
        if let Some(keys) = self.by_checksum.get_mut(&item.checksum) {
            while let Some(k) = keys.pop() {
                if self.claimed.insert(k.clone()) {
                    return Some(Match::Copied(k));
                }
            }
        }
        let fp = item.headers.fingerprint()?;
        let keys = self.by_fingerprint.get_mut(&(fp, item.size()))?;
        while let Some(k) = keys.pop() {
            if self.claimed.insert(k.clone()) {
                return Some(Match::Existing(k));
            }
        }
        None
    }

    /// Finds which uncertain items are in the target by reading back the unclaimed candidates of
    /// the same size and comparing checksums. Matched target items are claimed.
    pub(crate) async fn resolve(
        &mut self,
        target: &dyn Target,
        folder: &FolderPath,
        uncertain: &[Uncertain],
    ) -> Result<HashMap<SourceKey, TargetKey>> {
        let sizes: HashSet<u64> = uncertain.iter().map(|u| u.size).collect();
        let candidates: Vec<TargetKey> = sizes
            .iter()
            .filter_map(|s| self.by_size.get(s))
            .flatten()
            .filter(|k| !self.claimed.contains(*k))
            .cloned()
            .collect();
        let mut by_checksum: HashMap<Checksum, Vec<TargetKey>> = HashMap::new();
        if !candidates.is_empty() {
            let mut stream = target.read_back(folder, candidates);
            while let Some(r) = stream.next().await {
                let (key, item) = r?;
                let (body, _) = canonicalise(item.body);
                by_checksum
                    .entry(Checksum::of(&body))
                    .or_default()
                    .push(key);
            }
        }
        let mut found = HashMap::new();
        for u in uncertain {
            if let Some(keys) = by_checksum.get_mut(&u.checksum)
                && let Some(k) = keys.pop()
            {
                self.claimed.insert(k.clone());
                found.insert(u.key.clone(), k);
            }
        }
        Ok(found)
    }
}
