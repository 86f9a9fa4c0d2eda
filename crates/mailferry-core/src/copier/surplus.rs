//! Which target items are surplus copies: late commits of uncertain appends that were declared
//! absent and sent again (the state's [`Suspect`]s). Shared by the copier, which removes them,
//! and `verify`, which names them. The rules, and why they never lose a message or collapse
//! the source's own duplicates, are in [`super::resolution`]'s docs.

use std::collections::{HashMap, HashSet};

use futures_util::StreamExt;

use crate::backend::Target;
use crate::checksum::Checksum;
use crate::error::Result;
use crate::folder::FolderPath;
use crate::item::{SourceKey, TargetKey};
use crate::normalise::canonicalise;
use crate::state::{FolderScope, ItemRecord, ItemStatus, StateStore, Suspect};

/// The surplus copies in `folder` (the target folder of `scope`'s source folder), each with the
/// suspect it is a late copy of. Reads back only unaccounted target items of a suspect's size.
pub(crate) async fn find_surplus(
    target: &dyn Target,
    state: &dyn StateStore,
    scope: &FolderScope,
    folder: &FolderPath,
) -> Result<Vec<(TargetKey, Suspect)>> {
    let suspects = state.suspects(scope).await?;
    if suspects.is_empty() {
        return Ok(Vec::new());
    }
    let records = state.records(scope, None).await?;
    let mut accounted: HashSet<TargetKey> = records
        .iter()
        .filter_map(|r| r.target_key.clone())
        .collect();
    for validity in state.validities(scope).await? {
        if validity == scope.validity {
            continue;
        }
        let old = FolderScope {
            validity,
            ..scope.clone()
        };
        accounted.extend(
            state
                .records(&old, None)
                .await?
                .into_iter()
                .filter_map(|r| r.target_key),
        );
    }
    let sizes: HashSet<u64> = suspects.iter().map(|s| s.size).collect();
    let mut present = HashSet::new();
    let mut candidates = Vec::new();
    let mut listing = target.existing(folder);
    while let Some(item) = listing.next().await {
        let item = item?;
        if !accounted.contains(&item.key) && sizes.contains(&item.size) {
            candidates.push(item.key.clone());
        }
        present.insert(item.key);
    }
    drop(listing);
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let mut by_checksum: HashMap<Checksum, Vec<TargetKey>> = HashMap::new();
    let mut copies = target.read_back(folder, candidates);
    while let Some(copy) = copies.next().await {
        let (key, item) = copy?;
        let (body, _) = canonicalise(item.body);
        by_checksum
            .entry(Checksum::of(&body))
            .or_default()
            .push(key);
    }
    drop(copies);
    let done: HashMap<&SourceKey, &ItemRecord> = records
        .iter()
        .filter(|r| r.status == ItemStatus::Done)
        .map(|r| (&r.key, r))
        .collect();
    let mut surplus = Vec::new();
    for suspect in suspects {
        // Only a second copy of a done item whose accounted copy is there: never the only one.
        let accounted_copy = done.get(&suspect.key).is_some_and(|r| {
            r.checksum == Some(suspect.checksum)
                && r.target_key.as_ref().is_some_and(|k| present.contains(k))
        });
        if !accounted_copy {
            continue;
        }
        let Some(keys) = by_checksum.get_mut(&suspect.checksum) else {
            continue;
        };
        // The lowest key at or above the high-water: one copy per suspect.
        let late = keys
            .iter()
            .enumerate()
            .filter(|(_, k)| match suspect.high_water {
                Some(high) => k.0.parse::<u64>().is_ok_and(|n| n >= high),
                None => true,
            })
            .min_by_key(|(_, k)| k.0.parse::<u64>().unwrap_or(u64::MAX))
            .map(|(i, _)| i);
        if let Some(late) = late {
            surplus.push((keys.remove(late), suspect));
        }
    }
    Ok(surplus)
}
