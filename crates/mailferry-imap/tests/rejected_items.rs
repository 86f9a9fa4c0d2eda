//! A message the server refuses fails alone: Dovecot with a 20 KB `quota_max_mail_size` rejects
//! the oversized one inside an atomic MULTIAPPEND, and the batch is appended again one by one so
//! the others are stored and only that item carries the server's reason.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use mailferry_core::{
    CanonicalItem, Copier, CopyOptions, ErrorKind, Flags, FolderPath, InternalDate, Item, ItemMeta,
    MemoryState, MemoryStore, SourceKey, Target,
};

const SMALL_LIMIT: &str = "protocol imap {\n  mail_plugins = $mail_plugins quota\n}\n\
plugin {\n  quota = count:User quota\n  quota_vsizes = yes\n  quota_max_mail_size = 20k\n}\n";

fn message(i: usize, body_bytes: usize) -> Bytes {
    let mut m = format!(
        "Message-ID: <r{i}@rejected.test>\r\nSubject: message {i}\r\nDate: Tue, 14 Nov 2023 22:13:20 +0000\r\n\r\n"
    )
    .into_bytes();
    m.extend(std::iter::repeat_n(b'x', body_bytes));
    m.extend_from_slice(b"\r\n");
    Bytes::from(m)
}

fn item(i: usize, body: Bytes) -> CanonicalItem {
    CanonicalItem::prepare(Item {
        folder: FolderPath::inbox(),
        meta: ItemMeta {
            key: SourceKey(format!("src{i}")),
            size: body.len() as u64,
            flags: Flags::from_imap(["\\Seen"]),
            internal_date: Some(InternalDate::from_timestamp(1_700_000_000 + i as i64)),
        },
        body,
    })
    .expect("prepare")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_fails_alone_with_the_servers_reason() {
    if !mailferry_testkit::require_dovecot() {
        return;
    }
    let d = common::dovecot('.', SMALL_LIMIT);
    let store = common::store(&d).await;
    let inbox = FolderPath::inbox();
    let batch: Vec<CanonicalItem> = (0..5)
        .map(|i| item(i, message(i, if i == 2 { 40_000 } else { 500 })))
        .collect();
    let outcomes = store.append(&inbox, &batch).await.expect("batch answered");
    assert_eq!(outcomes.len(), 5);
    for (i, outcome) in outcomes.iter().enumerate() {
        if i == 2 {
            let err = outcome
                .as_ref()
                .expect_err("the oversized message is refused");
            assert_eq!(err.kind(), ErrorKind::Item, "{err}");
            assert_eq!(err.item_key(), Some(&SourceKey("src2".into())));
            assert!(
                err.to_string().contains("[LIMIT]"),
                "server text kept: {err}"
            );
        } else {
            let key = outcome.as_ref().expect("stored");
            assert!(
                key.0.parse::<u32>().is_ok(),
                "APPENDUID gave a UID: {key:?}"
            );
        }
    }
    let stored: Vec<_> = store
        .existing(&inbox)
        .map(|e| e.expect("existing"))
        .collect()
        .await;
    let mut ids: Vec<_> = stored
        .iter()
        .filter_map(|e| e.fingerprint.clone())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            "id:r0@rejected.test",
            "id:r1@rejected.test",
            "id:r3@rejected.test",
            "id:r4@rejected.test"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_reports_the_refused_message_and_copies_the_rest() {
    if !mailferry_testkit::require_dovecot() {
        return;
    }
    let d = common::dovecot('/', SMALL_LIMIT);
    let target = Arc::new(common::store(&d).await);
    let source = MemoryStore::new();
    let folder = FolderPath::new(["Archive", "Big ones"]);
    for i in 0..20 {
        let size = if i == 7 { 30_000 } else { 1_000 };
        source.insert(&folder, message(i, size), Flags::default(), None);
    }
    let copier = Copier::new(
        Arc::new(source),
        target.clone(),
        Arc::new(MemoryState::new()),
        CopyOptions::default(),
    );
    let report = copier
        .run(copier.identity_plan().await.expect("plan"))
        .await
        .expect("copy");
    assert_eq!(report.totals.copied, 19, "{report:#?}");
    assert_eq!(report.totals.failed, 1, "{report:#?}");
    let failure = &report.folders[0].failures[0];
    assert_eq!(failure.key, "8", "the eighth message (memory UID 8) failed");
    assert!(failure.reason.contains("LIMIT"), "{failure:?}");
    assert_eq!(target.existing(&folder).count().await, 19);
}
