//! The state-store contract, written once as generic async functions over `&dyn StateStore` and
//! run against `MemoryState` (the reference semantics), `SqliteState` in memory and
//! `SqliteState` on a file: whatever the memory store does, the SQLite store must do too.

use mailferry_core::{
    Checksum, FolderPath, FolderScope, FolderStatus, ItemRecord, ItemStatus, SourceKey, StateStore,
    Suspect, TargetKey,
};

pub(crate) fn scope(migration: &str, folder: FolderPath, validity: u64) -> FolderScope {
    FolderScope {
        migration: migration.into(),
        folder,
        validity,
    }
}

/// A record whose every field depends on `key` and `status`, so a mix-up shows.
pub(crate) fn record(key: &str, status: ItemStatus) -> ItemRecord {
    ItemRecord {
        key: SourceKey(key.into()),
        checksum: Some(Checksum::of(key.as_bytes())),
        size: 1000 + key.len() as u64,
        fingerprint: Some(format!("{key}@example.org")),
        target_key: (status == ItemStatus::Done).then(|| TargetKey(format!("t-{key}"))),
        status,
        reason: (status == ItemStatus::Failed).then(|| format!("{key} was rejected")),
    }
}

fn keys(names: &[&str]) -> Vec<SourceKey> {
    names.iter().map(|k| SourceKey((*k).into())).collect()
}

async fn checkpoint_round_trips(state: &dyn StateStore) {
    let s = scope("ann", FolderPath::inbox(), 7);
    assert_eq!(state.checkpoint(&s).await.expect("read"), None);
    let first = FolderStatus {
        count: 12,
        validity: 7,
        next_id: Some(13),
        modseq: Some(u64::MAX),
        size: None,
    };
    state.set_checkpoint(&s, &first).await.expect("write");
    assert_eq!(state.checkpoint(&s).await.expect("read"), Some(first));
    let second = FolderStatus {
        count: 13,
        validity: 7,
        next_id: Some(14),
        modseq: None,
        size: Some(99),
    };
    state.set_checkpoint(&s, &second).await.expect("overwrite");
    assert_eq!(state.checkpoint(&s).await.expect("read"), Some(second));
}

async fn lookup_returns_present_keys_only(state: &dyn StateStore) {
    let s = scope("ann", FolderPath::inbox(), 1);
    let stored = [
        record("1", ItemStatus::Done),
        record("2", ItemStatus::Pending),
        record("3", ItemStatus::Failed),
    ];
    state.record(&s, &stored).await.expect("record");
    let found = state
        .lookup(&s, &keys(&["1", "3", "4", "ünï"]))
        .await
        .expect("lookup");
    assert_eq!(found.len(), 2);
    assert_eq!(found[&SourceKey("1".into())], stored[0]);
    assert_eq!(found[&SourceKey("3".into())], stored[2]);
    assert!(
        state
            .lookup(&scope("ann", FolderPath::inbox(), 2), &keys(&["1"]))
            .await
            .expect("lookup in an unknown scope")
            .is_empty()
    );
    assert!(state.lookup(&s, &[]).await.expect("no keys").is_empty());
}

async fn record_upsert_replaces_the_whole_record(state: &dyn StateStore) {
    let s = scope("ann", FolderPath::inbox(), 1);
    state
        .record(&s, &[record("42", ItemStatus::Pending)])
        .await
        .expect("pending");
    let mut done = record("42", ItemStatus::Done);
    done.fingerprint = None;
    done.checksum = None;
    state
        .record(&s, std::slice::from_ref(&done))
        .await
        .expect("done");
    let all = state.records(&s, None).await.expect("records");
    assert_eq!(all, vec![done]);
}

async fn records_are_filtered_by_status_and_sorted_by_key(state: &dyn StateStore) {
    let s = scope("ann", FolderPath::new(["Archive", "2020"]), 3);
    let batch = [
        record("c", ItemStatus::Done),
        record("a", ItemStatus::Pending),
        record("b", ItemStatus::Done),
        record("é", ItemStatus::Failed),
        record("B", ItemStatus::Pending),
    ];
    state.record(&s, &batch).await.expect("record");
    let key_list = |v: Vec<ItemRecord>| v.into_iter().map(|r| r.key.0).collect::<Vec<_>>();
    let done = state
        .records(&s, Some(ItemStatus::Done))
        .await
        .expect("done");
    assert_eq!(key_list(done), ["b", "c"]);
    let pending = state
        .records(&s, Some(ItemStatus::Pending))
        .await
        .expect("pending");
    assert_eq!(key_list(pending), ["B", "a"]);
    let failed = state
        .records(&s, Some(ItemStatus::Failed))
        .await
        .expect("failed");
    assert_eq!(failed, vec![batch[3].clone()]);
    let all = state.records(&s, None).await.expect("all");
    assert_eq!(key_list(all), ["B", "a", "b", "c", "é"]);
    let unknown = scope("nobody", FolderPath::inbox(), 3);
    assert!(
        state
            .records(&unknown, None)
            .await
            .expect("none")
            .is_empty()
    );
}

async fn scopes_are_isolated(state: &dyn StateStore) {
    let scopes = [
        scope("ann", FolderPath::inbox(), 1),
        scope("bob", FolderPath::inbox(), 1),
        scope("ann", FolderPath::new(["Sent"]), 1),
        scope("ann", FolderPath::inbox(), 2),
        scope("ann", FolderPath::new(["a", "b"]), 1),
        scope("ann", FolderPath::new(["a/b"]), 1),
    ];
    // The same source key in every scope, each with a different status history.
    for (i, s) in scopes.iter().enumerate() {
        let mut r = record("7", ItemStatus::Done);
        r.size = i as u64;
        state.record(s, &[r]).await.expect("record");
    }
    let status = FolderStatus {
        count: 1,
        validity: 1,
        ..FolderStatus::default()
    };
    state
        .set_checkpoint(&scopes[0], &status)
        .await
        .expect("checkpoint");
    for (i, s) in scopes.iter().enumerate() {
        let found = state.lookup(s, &keys(&["7"])).await.expect("lookup");
        assert_eq!(found[&SourceKey("7".into())].size, i as u64, "scope {s:?}");
        assert_eq!(state.records(s, None).await.expect("records").len(), 1);
        let checkpoint = state.checkpoint(s).await.expect("checkpoint");
        assert_eq!(checkpoint.is_some(), i == 0, "scope {s:?}");
    }
}

async fn records_without_optional_fields_round_trip(state: &dyn StateStore) {
    let s = scope("ann", FolderPath::inbox(), u64::MAX);
    let bare = ItemRecord {
        key: SourceKey("file.mbox:0".into()),
        checksum: None,
        size: u64::MAX,
        fingerprint: None,
        target_key: None,
        status: ItemStatus::Pending,
        reason: None,
    };
    state
        .record(&s, std::slice::from_ref(&bare))
        .await
        .expect("record");
    assert_eq!(state.records(&s, None).await.expect("records"), vec![bare]);
}

async fn validities_lists_every_token_of_the_folder_only(state: &dyn StateStore) {
    for (migration, folder, validity) in [
        ("ann", FolderPath::inbox(), 7),
        ("ann", FolderPath::inbox(), u64::MAX),
        ("ann", FolderPath::inbox(), 3),
        ("bob", FolderPath::inbox(), 9),
        ("ann", FolderPath::new(["Sent"]), 5),
    ] {
        let s = scope(migration, folder, validity);
        state
            .record(&s, &[record("1", ItemStatus::Done)])
            .await
            .expect("record");
    }
    let any = scope("ann", FolderPath::inbox(), 0);
    assert_eq!(
        state.validities(&any).await.expect("validities"),
        vec![3, 7, u64::MAX]
    );
}

async fn suspects_are_kept_per_scope_with_ids_and_removed_by_id(state: &dyn StateStore) {
    let a = scope("ann", FolderPath::inbox(), 7);
    let b = scope("ann", FolderPath::new(["Sent"]), 7);
    let suspect = |key: &str, high_water| Suspect {
        id: 0,
        key: SourceKey(key.into()),
        checksum: Checksum::of(key.as_bytes()),
        size: 10 + key.len() as u64,
        high_water,
    };
    assert!(state.suspects(&a).await.expect("none yet").is_empty());
    // The same item twice: two uncertain appends, each may commit once.
    let added = [
        suspect("1", Some(42)),
        suspect("1", None),
        suspect("22", Some(u64::MAX)),
    ];
    state.add_suspects(&a, &added).await.expect("add");
    state
        .add_suspects(&b, &[suspect("3", Some(1))])
        .await
        .expect("add other folder");
    let got = state.suspects(&a).await.expect("list");
    assert_eq!(got.len(), 3);
    for (g, want) in got.iter().zip(&added) {
        assert_eq!(Suspect { id: 0, ..g.clone() }, *want);
    }
    let mut ids: Vec<u64> = got.iter().map(|s| s.id).collect();
    ids.dedup();
    assert_eq!(ids.len(), 3, "distinct ids: {ids:?}");
    state
        .remove_suspects(&a, &[got[0].id])
        .await
        .expect("remove");
    let left = state.suspects(&a).await.expect("list");
    assert_eq!(left, got[1..].to_vec());
    assert_eq!(state.suspects(&b).await.expect("other folder").len(), 1);
}

macro_rules! behaviour_tests {
    ($($name:ident),* $(,)?) => {
        mod memory_state {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(&mailferry_core::MemoryState::new()).await;
                }
            )*
        }
        mod sqlite_in_memory {
            $(
                #[tokio::test]
                async fn $name() {
                    let state = mailferry_state::SqliteState::in_memory().expect("open");
                    super::$name(&state).await;
                }
            )*
        }
        mod sqlite_file {
            $(
                #[tokio::test]
                async fn $name() {
                    let dir = tempfile::tempdir().expect("temp dir");
                    let state = mailferry_state::SqliteState::open(dir.path().join("state.db"))
                        .expect("open");
                    super::$name(&state).await;
                }
            )*
        }
    };
}

behaviour_tests!(
    checkpoint_round_trips,
    lookup_returns_present_keys_only,
    record_upsert_replaces_the_whole_record,
    records_are_filtered_by_status_and_sorted_by_key,
    scopes_are_isolated,
    records_without_optional_fields_round_trip,
    validities_lists_every_token_of_the_folder_only,
    suspects_are_kept_per_scope_with_ids_and_removed_by_id,
);
