//! Reconciliation of late commits with in-memory backends: a surplus copy of a suspect is
//! removed even from a folder skipped as unchanged; the source's own byte-identical duplicates,
//! a copy below the suspect's high-water and a copy of an item that is not done are kept.

use std::sync::Arc;

use bytes::Bytes;

use super::*;
use crate::checksum::Checksum;
use crate::flags::Flags;
use crate::memory::MemoryStore;
use crate::state::{FolderScope, ItemStatus, MemoryState, Suspect};

fn body(i: usize) -> Bytes {
    Bytes::from(format!(
        "Message-ID: <{i}@late>\r\nSubject: {i}\r\n\r\nbody {i}\r\n"
    ))
}

async fn copy(source: &MemoryStore, target: &MemoryStore, state: &Arc<MemoryState>) -> Report {
    let copier = Copier::new(
        Arc::new(source.clone()),
        Arc::new(target.clone()),
        Arc::clone(state) as Arc<dyn StateStore>,
        CopyOptions {
            settle: Duration::ZERO,
            ..CopyOptions::default()
        },
    );
    let plan = copier.identity_plan().await.expect("plan");
    copier.run(plan).await.expect("copy")
}

fn bodies(store: &MemoryStore) -> Vec<Bytes> {
    let mut v: Vec<Bytes> = store
        .messages(&FolderPath::inbox())
        .into_values()
        .map(|m| m.body)
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_late_copy_is_removed_and_the_sources_own_duplicates_are_kept() {
    let inbox = FolderPath::inbox();
    let source = MemoryStore::new();
    for i in [1, 2, 2, 3] {
        source.insert(&inbox, body(i), Flags::default(), None);
    }
    let target = MemoryStore::new();
    let state = Arc::new(MemoryState::new());
    copy(&source, &target, &state).await;
    assert_eq!(bodies(&target), bodies(&source));

    let folder = Source::list_folders(&source).await.expect("folders");
    let scope = FolderScope {
        migration: CopyOptions::default().migration,
        folder: inbox.clone(),
        validity: folder[0].status.validity,
    };
    let done = state
        .records(&scope, Some(ItemStatus::Done))
        .await
        .expect("records");
    assert_eq!(done.len(), 4);
    let suspect_of = |key: &crate::item::SourceKey, high_water| {
        let r = done.iter().find(|r| &r.key == key).expect("a record");
        Suspect {
            id: 0,
            key: r.key.clone(),
            checksum: r.checksum.expect("checksum"),
            size: r.size,
            high_water,
        }
    };
    // The item of body 2 was sent twice: once by a dead session, once again. The dead
    // session's commit lands now, above the high-water taken when it was declared absent.
    let dup = done
        .iter()
        .find(|r| r.checksum == Some(Checksum::of(&body(2))))
        .expect("body 2");
    let high_water = target.messages(&inbox).keys().max().copied().unwrap_or(0) + 1;
    state
        .add_suspects(&scope, &[suspect_of(&dup.key, Some(high_water))])
        .await
        .expect("suspect");
    target.insert(&inbox, body(2), Flags::default(), None);
    assert_eq!(bodies(&target).len(), 5);

    // Nothing new in the source: the folder is skipped as unchanged, the copy still removed.
    let report = copy(&source, &target, &state).await;
    assert!(report.folders[0].unchanged);
    assert_eq!(report.folders[0].surplus_removed, 1);
    assert_eq!(
        bodies(&target),
        bodies(&source),
        "both source copies of body 2 stay"
    );
    assert!(
        state.suspects(&scope).await.expect("suspects").is_empty(),
        "consumed"
    );

    // A suspect explains one copy only, and never one below its high-water (someone else's).
    target.insert(&inbox, body(3), Flags::default(), None);
    let someone_elses = target
        .messages(&inbox)
        .keys()
        .max()
        .copied()
        .expect("a uid");
    let three = done
        .iter()
        .find(|r| r.checksum == Some(Checksum::of(&body(3))))
        .expect("body 3");
    state
        .add_suspects(&scope, &[suspect_of(&three.key, Some(someone_elses + 1))])
        .await
        .expect("suspect");
    let report = copy(&source, &target, &state).await;
    assert_eq!(report.folders[0].surplus_removed, 0);
    assert_eq!(
        bodies(&target).len(),
        5,
        "a copy below the high-water is not ours"
    );
}

#[tokio::test]
async fn a_copy_of_an_item_that_is_not_done_is_never_removed() {
    let inbox = FolderPath::inbox();
    let source = MemoryStore::new();
    source.insert(&inbox, body(7), Flags::default(), None);
    let target = MemoryStore::new();
    let state = Arc::new(MemoryState::new());
    let folders = Source::list_folders(&source).await.expect("folders");
    let scope = FolderScope {
        migration: CopyOptions::default().migration,
        folder: inbox.clone(),
        validity: folders[0].status.validity,
    };
    // A suspect for an item never recorded done (its only copy is the late one): keep it.
    let key = source
        .messages(&inbox)
        .keys()
        .next()
        .map(|uid| crate::item::SourceKey(uid.to_string()))
        .expect("a key");
    state
        .add_suspects(
            &scope,
            &[Suspect {
                id: 0,
                key,
                checksum: Checksum::of(&body(7)),
                size: body(7).len() as u64,
                high_water: Some(0),
            }],
        )
        .await
        .expect("suspect");
    target.insert(&inbox, body(7), Flags::default(), None);
    let report = copy(&source, &target, &state).await;
    assert_eq!(report.folders[0].surplus_removed, 0);
    assert!(!bodies(&target).is_empty(), "the only copy is kept");
}

/// A memory store as a target that cannot delete: late copies can only be reported.
struct CannotDelete(MemoryStore);

impl Target for CannotDelete {
    fn capabilities(&self) -> crate::backend::Capabilities {
        crate::backend::Capabilities {
            delete: false,
            ..Target::capabilities(&self.0)
        }
    }

    fn list_folders(&self) -> crate::BoxFuture<'_, Result<Vec<crate::folder::Folder>>> {
        Target::list_folders(&self.0)
    }

    fn ensure_folder<'a>(
        &'a self,
        folder: &'a FolderPath,
        special_use: Option<SpecialUse>,
    ) -> crate::BoxFuture<'a, Result<()>> {
        self.0.ensure_folder(folder, special_use)
    }

    fn append<'a>(
        &'a self,
        folder: &'a FolderPath,
        batch: &'a [crate::item::CanonicalItem],
    ) -> crate::BoxFuture<'a, Result<Vec<crate::backend::AppendOutcome>>> {
        self.0.append(folder, batch)
    }

    fn existing<'a>(
        &'a self,
        folder: &'a FolderPath,
    ) -> crate::backend::BoxStream<'a, Result<crate::backend::ExistingItem>> {
        self.0.existing(folder)
    }

    fn read_back<'a>(
        &'a self,
        folder: &'a FolderPath,
        keys: Vec<crate::item::TargetKey>,
    ) -> crate::backend::BoxStream<'a, Result<(crate::item::TargetKey, crate::item::Item)>> {
        self.0.read_back(folder, keys)
    }
}

#[tokio::test]
async fn a_target_that_cannot_delete_gets_the_late_copy_reported() {
    let inbox = FolderPath::inbox();
    let source = MemoryStore::new();
    source.insert(&inbox, body(9), Flags::default(), None);
    let store = MemoryStore::new();
    let target: Arc<dyn Target> = Arc::new(CannotDelete(store.clone()));
    let state = Arc::new(MemoryState::new());
    let copier = |target: Arc<dyn Target>| {
        Copier::new(
            Arc::new(source.clone()),
            target,
            Arc::clone(&state) as Arc<dyn StateStore>,
            CopyOptions::default(),
        )
    };
    let first = copier(Arc::clone(&target));
    first
        .run(first.identity_plan().await.expect("plan"))
        .await
        .expect("copy");
    let folders = Source::list_folders(&source).await.expect("folders");
    let scope = FolderScope {
        migration: CopyOptions::default().migration,
        folder: inbox.clone(),
        validity: folders[0].status.validity,
    };
    let done = state
        .records(&scope, Some(ItemStatus::Done))
        .await
        .expect("records");
    let high_water = store.messages(&inbox).keys().max().copied().unwrap_or(0) + 1;
    state
        .add_suspects(
            &scope,
            &[Suspect {
                id: 0,
                key: done[0].key.clone(),
                checksum: done[0].checksum.expect("checksum"),
                size: done[0].size,
                high_water: Some(high_water),
            }],
        )
        .await
        .expect("suspect");
    store.insert(&inbox, body(9), Flags::default(), None);
    let second = copier(Arc::clone(&target));
    let report = second
        .run(second.identity_plan().await.expect("plan"))
        .await
        .expect("copy");
    let folder = &report.folders[0];
    assert_eq!(folder.surplus_removed, 0);
    assert_eq!(folder.surplus.len(), 1, "{folder:#?}");
    assert_eq!(folder.surplus[0].key, done[0].key.to_string());
    assert_eq!(bodies(&store).len(), 2, "left in place");
    assert_eq!(state.suspects(&scope).await.expect("kept").len(), 1);

    // verify names it.
    let verification = crate::verify::verify(
        &source,
        &*target,
        &*state,
        &[FolderJob::identity(folders[0].clone())],
        &crate::verify::VerifyOptions {
            migration: CopyOptions::default().migration,
            ..crate::verify::VerifyOptions::default()
        },
    )
    .await
    .expect("verify");
    let extra = &verification.folders[0].extra;
    assert_eq!(extra.len(), 1);
    assert!(
        extra[0].detail.contains("surplus copy of source item"),
        "{extra:?}"
    );
}
