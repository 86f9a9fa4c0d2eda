//! `set_flags` replaces flags and keywords of stored messages; `delete` expunges exactly the
//! given UIDs (UID EXPUNGE), leaving other messages — even ones flagged `\Deleted` — alone.

mod common;

use bytes::Bytes;
use futures_util::StreamExt;
use mailferry_core::{
    CanonicalItem, Flags, FolderPath, Item, ItemMeta, SourceKey, Target, TargetKey,
};

fn item(i: usize, flags: &[&str]) -> CanonicalItem {
    let body = Bytes::from(format!(
        "Message-ID: <f{i}@flags.test>\r\nSubject: {i}\r\n\r\nbody {i}\r\n"
    ));
    CanonicalItem::prepare(Item {
        folder: FolderPath::inbox(),
        meta: ItemMeta {
            key: SourceKey(i.to_string()),
            size: body.len() as u64,
            flags: Flags::from_imap(flags.iter().copied()),
            internal_date: None,
        },
        body,
    })
    .expect("prepare")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_are_replaced_and_only_the_named_messages_are_deleted() {
    if !mailferry_testkit::require_dovecot() {
        return;
    }
    let d = common::dovecot('.', "");
    let store = common::store(&d).await;
    let folder = FolderPath::new(["Work", "Flags"]);
    store.ensure_folder(&folder, None).await.expect("create");
    let batch = vec![item(0, &["\\Seen"]), item(1, &["\\Deleted"]), item(2, &[])];
    let keys: Vec<TargetKey> = store
        .append(&folder, &batch)
        .await
        .expect("append")
        .into_iter()
        .map(|o| o.expect("stored"))
        .collect();
    let wanted = Flags::from_imap(["\\Flagged", "\\Answered", "$Label1"]);
    store
        .set_flags(&folder, vec![(keys[0].clone(), wanted.clone())])
        .await
        .expect("set flags");
    store
        .delete(&folder, vec![keys[2].clone()])
        .await
        .expect("delete");
    let left: Vec<_> = store
        .existing(&folder)
        .map(|e| e.expect("existing"))
        .collect()
        .await;
    assert_eq!(left.len(), 2, "{left:#?}");
    assert_eq!(left[0].key, keys[0]);
    assert_eq!(left[0].flags, wanted);
    assert_eq!(left[1].key, keys[1], "a \\Deleted message not named stays");
    assert!(left[1].flags.deleted);
}
