//! Flag changes, deletion, keywords under concurrent writers, and what `existing()` reports.

use std::collections::BTreeSet;

use futures_util::StreamExt;
use futures_util::future::join_all;
use mailferry_core::{ErrorKind, Flags, FolderPath, Source, Target, TargetKey};
use mailferry_maildir::Layout;

async fn existing_flags(
    store: &mailferry_maildir::Maildir,
    folder: &FolderPath,
) -> Vec<(TargetKey, Flags)> {
    let mut v: Vec<_> = store
        .existing(folder)
        .map(|e| {
            let e = e.expect("existing");
            (e.key, e.flags)
        })
        .collect()
        .await;
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_flags_renames_but_keeps_keys_and_changes_the_status() {
    let (_dir, store) = crate::fresh_store(Layout::MaildirPlusPlus);
    let inbox = FolderPath::inbox();
    let outcomes = store
        .append(
            &inbox,
            &[crate::canonical(
                "a",
                b"Subject: a\r\n\r\na\r\n",
                &[],
                1_500_000_000,
            )],
        )
        .await
        .expect("append");
    let key = outcomes[0].as_ref().expect("stored").clone();
    let before = Source::list_folders(&store).await.expect("list")[0]
        .status
        .clone();

    let wanted = Flags::from_imap(["\\Seen", "\\Answered", "$Forwarded", "Work", "$Junk"]);
    store
        .set_flags(&inbox, vec![(key.clone(), wanted.clone())])
        .await
        .expect("set flags");
    assert_eq!(
        existing_flags(&store, &inbox).await,
        vec![(key.clone(), wanted)]
    );
    let files: Vec<_> = crate::walk(&store.root().join("cur"));
    assert_eq!(files.len(), 1);
    let name = files[0]
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(
        name.starts_with(&key.0) && name.ends_with(":2,PRSab"),
        "{name}"
    );
    let keywords =
        std::fs::read_to_string(store.root().join("dovecot-keywords")).expect("keywords");
    assert_eq!(keywords, "0 $Junk\n1 Work\n");
    let after = Source::list_folders(&store).await.expect("list")[0]
        .status
        .clone();
    assert_eq!(after.count, before.count);
    assert_ne!(after, before, "a flag change must be visible in the status");

    // The source view follows the rename: same key, new flags, same bytes.
    let metas: Vec<_> = store
        .list_items(&inbox, None)
        .map(|m| m.expect("meta"))
        .collect()
        .await;
    assert_eq!(metas[0].key.0, key.0);
    assert!(metas[0].flags.seen && metas[0].flags.keywords.contains("Work"));
    let items: Vec<_> = store.fetch(&inbox, metas).collect().await;
    assert_eq!(
        &items[0].as_ref().expect("fetch").body[..],
        b"Subject: a\n\na\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_deleted_after_listing_is_an_item_error_naming_it() {
    let (_dir, store) = crate::fresh_store(Layout::Fs);
    let folder = FolderPath::new(["Work"]);
    Target::ensure_folder(&store, &folder, None)
        .await
        .expect("ensure");
    let outcomes = store
        .append(
            &folder,
            &[
                crate::canonical("a", b"Subject: a\r\n\r\na\r\n", &["\\Seen"], 1),
                crate::canonical("b", b"Subject: b\r\n\r\nb\r\n", &[], 2),
            ],
        )
        .await
        .expect("append");
    let gone = outcomes[0].as_ref().expect("stored").clone();
    let metas: Vec<_> = store
        .list_items(&folder, None)
        .map(|m| m.expect("meta"))
        .collect()
        .await;
    assert_eq!(metas.len(), 2);
    store
        .delete(&folder, vec![gone.clone()])
        .await
        .expect("delete");
    // Deleting again is not an error: it is gone either way.
    store
        .delete(&folder, vec![gone.clone()])
        .await
        .expect("delete again");

    let fetched: Vec<_> = store.fetch(&folder, metas).collect().await;
    let err = fetched[0].as_ref().expect_err("vanished");
    assert_eq!(err.kind(), ErrorKind::Item);
    assert_eq!(err.item_key().map(|k| k.0.as_str()), Some(gone.0.as_str()));
    assert!(err.to_string().contains(&gone.0), "{err}");
    assert!(fetched[1].is_ok());
    assert_eq!(store.existing(&folder).count().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_get_unique_names_and_one_letter_per_keyword() {
    let (_dir, store) = crate::fresh_store(Layout::MaildirPlusPlus);
    let folder = FolderPath::new(["Busy"]);
    Target::ensure_folder(&store, &folder, None)
        .await
        .expect("ensure");
    let batches: Vec<Vec<_>> = (0..8)
        .map(|w| {
            (0..10)
                .map(|i| {
                    let body: &'static [u8] = Box::leak(
                        format!("Subject: w{w} i{i}\r\n\r\nbody\r\n")
                            .into_bytes()
                            .into_boxed_slice(),
                    );
                    let kw = format!("kw{}", (w + i) % 12);
                    crate::canonical("k", body, &["\\Seen", &kw], 1_000 + i)
                })
                .collect()
        })
        .collect();
    let results = join_all(batches.iter().map(|b| store.append(&folder, b))).await;
    let mut keys = BTreeSet::new();
    for outcomes in results {
        for o in outcomes.expect("batch") {
            assert!(keys.insert(o.expect("stored")), "duplicate key");
        }
    }
    assert_eq!(keys.len(), 80);
    let dir = store.folder_dir(&folder).expect("dir");
    let text = std::fs::read_to_string(dir.join("dovecot-keywords")).expect("keywords");
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(_, n)| n))
        .collect();
    let unique: BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(names.len(), 12, "{text}");
    assert_eq!(unique.len(), 12, "{text}");
    // Every stored message reads back with exactly its keyword.
    for (key, flags) in existing_flags(&store, &folder).await {
        assert_eq!(flags.keywords.len(), 1, "{key}: {flags}");
        assert!(flags.seen);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_reports_canonical_sizes_from_names_and_checks_foreign_ones() {
    let (_dir, store) = crate::fresh_store(Layout::MaildirPlusPlus);
    let inbox = FolderPath::inbox();
    store
        .append(
            &inbox,
            &[crate::canonical(
                "a",
                b"Message-ID: <x@y>\r\n\r\nline\r\nline\r\n",
                &[],
                7,
            )],
        )
        .await
        .expect("append");
    // A foreign file whose name claims wrong sizes, and one without size fields.
    let cur = store.root().join("cur");
    std::fs::write(
        cur.join("1.foreign.host,S=1,W=999:2,S"),
        b"Subject: f\n\nbody\n",
    )
    .expect("write");
    std::fs::write(cur.join("2.plain.host:2,"), b"Subject: p\r\n\r\nx\n").expect("write");
    let by_key: std::collections::BTreeMap<String, (u64, Option<String>)> = store
        .existing(&inbox)
        .map(|e| {
            let e = e.expect("existing");
            (e.key.0, (e.size, e.fingerprint))
        })
        .collect()
        .await;
    assert_eq!(by_key.len(), 3);
    let foreign = &by_key["1.foreign.host,S=1,W=999"];
    assert_eq!(foreign.0, 20, "a W= that disagrees with S= is not trusted");
    assert!(foreign.1.as_deref().is_some_and(|f| f.starts_with("hh:")));
    assert_eq!(by_key["2.plain.host"].0, 17);
    let ours = by_key
        .iter()
        .find(|(k, _)| k.ends_with(",W=33"))
        .map(|(_, v)| v)
        .expect("the appended message");
    assert_eq!(ours, &(33, Some("id:x@y".to_string())));
}
