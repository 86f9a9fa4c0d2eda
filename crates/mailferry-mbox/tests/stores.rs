//! Store-level behaviour on real files in temp dirs: layout and hostile names, permissions,
//! single files and gzip, flags in foreign headers, appends, statuses, Takeout labels.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use mailferry_core::normalise::canonicalise;
use mailferry_core::{
    CanonicalItem, Checkpoint, Checksum, ErrorKind, Flags, FolderPath, InternalDate, Item,
    ItemMeta, MemoryState, MemoryStore, Source, SourceKey, SpecialUse, Target,
};
use mailferry_mbox::{Layout, Mbox, MboxOptions};
use mailferry_testkit::conformance::copy_all;

fn item(body: &[u8], flags: Flags) -> CanonicalItem {
    CanonicalItem::prepare(Item {
        folder: FolderPath::inbox(),
        meta: ItemMeta {
            key: SourceKey::from("k"),
            size: body.len() as u64,
            flags,
            internal_date: Some(InternalDate::from_timestamp(1_700_000_000)),
        },
        body: Bytes::copy_from_slice(body),
    })
    .expect("prepare")
}

fn dir_store(root: &Path) -> Mbox {
    Mbox::with_options(
        root,
        MboxOptions {
            layout: Layout::Directory,
            ..MboxOptions::default()
        },
    )
    .expect("open")
}

async fn bodies(store: &Mbox, folder: &FolderPath) -> Vec<Vec<u8>> {
    let metas: Vec<ItemMeta> = store
        .list_items(folder, None)
        .map(|m| m.expect("list"))
        .collect()
        .await;
    store
        .fetch(folder, metas)
        .map(|i| i.expect("fetch").body.to_vec())
        .collect()
        .await
}

fn all_paths(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        out.push(path.clone());
        if path.is_dir() {
            all_paths(&path, out);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_folder_names_stay_inside_the_root_and_read_back_unchanged() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("mail");
    let store = dir_store(&root);
    let hostile = [
        FolderPath::new([".."]),
        FolderPath::new(["..", "..", "etc"]),
        FolderPath::new(["a/b"]),
        FolderPath::new(["nul\0byte"]),
        FolderPath::new([".hidden"]),
        FolderPath::new(["ctl\u{1}\n"]),
        FolderPath::new(["x.sbd"]),
        FolderPath::new(["Sent", "x.msf"]),
    ];
    for folder in &hostile {
        store.ensure_folder(folder, None).await.expect("ensure");
        let outcome = store
            .append(
                folder,
                &[item(b"Subject: s\r\n\r\nbody\r\n", Flags::default())],
            )
            .await
            .expect("append");
        assert!(outcome[0].is_ok(), "{folder}: {outcome:?}");
    }
    let mut paths = Vec::new();
    all_paths(&root, &mut paths);
    let canonical_root = root.canonicalize().expect("root");
    for p in &paths {
        let meta = std::fs::symlink_metadata(p).expect("meta");
        assert!(
            p.canonicalize()
                .expect("canonical")
                .starts_with(&canonical_root),
            "{} escaped the root",
            p.display()
        );
        let mode = meta.permissions().mode() & 0o777;
        let want = if meta.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode, want, "{}", p.display());
    }
    assert!(!tmp.path().join("etc").exists());
    let listed: Vec<FolderPath> = Source::list_folders(&store)
        .await
        .expect("list")
        .into_iter()
        .filter(|f| f.selectable)
        .map(|f| f.path)
        .collect();
    let mut want = hostile.to_vec();
    want.push(FolderPath::new(["Sent"]));
    want.sort();
    let mut got = listed.clone();
    got.sort();
    // `..` and `Sent` also appear as parents; `Sent` has no file of its own.
    got.dedup();
    want.retain(|f| f != &FolderPath::new(["Sent"]));
    want.dedup();
    assert_eq!(got, want);
    for folder in &hostile {
        assert_eq!(
            bodies(&store, folder).await,
            [b"Subject: s\n\nbody\n".to_vec()]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thunderbird_tree_reads_as_folders_with_special_use() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let msg = b"From a@b Wed Nov 25 00:28:58 2026\nSubject: x\nX-Mozilla-Status: 0001\n\nhi\n\n";
    std::fs::write(root.join("Inbox"), msg).expect("write");
    std::fs::write(root.join("Inbox.msf"), b"// <!-- <mdb:mork").expect("write");
    std::fs::write(root.join("Sent"), b"").expect("write");
    std::fs::write(root.join("msgFilterRules.dat"), b"version=\"9\"").expect("write");
    std::fs::write(root.join("notes.txt"), b"not mail").expect("write");
    std::fs::create_dir_all(root.join("Archive.sbd")).expect("mkdir");
    std::fs::write(root.join("Archive.sbd/2020"), msg).expect("write");
    let store = Mbox::open(root).expect("open");
    let folders = Source::list_folders(&store).await.expect("list");
    let summary: Vec<(String, Option<SpecialUse>, bool)> = folders
        .iter()
        .map(|f| (f.path.to_string(), f.special_use, f.selectable))
        .collect();
    assert_eq!(
        summary,
        [
            ("INBOX".into(), None, true),
            ("Sent".into(), Some(SpecialUse::Sent), true),
            ("Archive".into(), Some(SpecialUse::Archive), false),
            ("Archive/2020".into(), None, true),
        ]
    );
    let metas: Vec<ItemMeta> = store
        .list_items(&FolderPath::inbox(), None)
        .map(|m| m.expect("list"))
        .collect()
        .await;
    assert!(metas[0].flags.seen, "X-Mozilla-Status read bit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_status_headers_give_flags_but_stay_in_the_bytes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("in.mbox");
    let raw = b"From a@b Wed Nov 25 00:28:58 2026\nSubject: x\nStatus: RO\nX-Status: F\nX-Keywords: Work\n\nbody\n\n";
    std::fs::write(&path, raw).expect("write");
    let source = Mbox::open(&path).expect("open");
    let first = MemoryStore::new();
    copy_all(
        Arc::new(source),
        Arc::new(first.clone()),
        Arc::new(MemoryState::new()),
    )
    .await;
    let got = first.messages(&FolderPath::inbox());
    let m = &got[&1];
    assert_eq!(
        &m.body[..],
        b"Subject: x\r\nStatus: RO\r\nX-Status: F\r\nX-Keywords: Work\r\n\r\nbody\r\n"
    );
    assert!(m.flags.seen && m.flags.flagged && m.flags.keywords.contains("Work"));
    assert_eq!(m.internal_date.map(|d| d.timestamp), Some(1_795_566_538));

    // Through a second mbox with different flags: the block carries them, the bytes stay.
    let again = MemoryStore::new();
    again.insert(
        &FolderPath::inbox(),
        m.body.clone(),
        Flags::from_imap(["\\Answered"]),
        None,
    );
    let out = tmp.path().join("out");
    let target = dir_store(&out);
    copy_all(
        Arc::new(again.clone()),
        Arc::new(target.clone()),
        Arc::new(MemoryState::new()),
    )
    .await;
    let back = MemoryStore::new();
    copy_all(
        Arc::new(target),
        Arc::new(back.clone()),
        Arc::new(MemoryState::new()),
    )
    .await;
    let b = &back.messages(&FolderPath::inbox())[&1];
    assert_eq!(
        Checksum::of(&canonicalise(b.body.clone()).0),
        Checksum::of(&m.body)
    );
    assert_eq!(b.flags, Flags::from_imap(["\\Answered"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_gzip_file_reads_all_members_and_appends_one_more() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("old.mbox.gz");
    let mut raw = Vec::new();
    for part in [
        &b"From a Wed Nov 25 00:28:58 2026\n\none\n\n"[..],
        b"From b Wed Nov 25 00:28:59 2026\n\n>From two\n",
    ] {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(part).expect("gz");
        raw.extend(e.finish().expect("gz"));
    }
    std::fs::write(&path, raw).expect("write");
    let store = Mbox::open(&path).expect("open");
    let inbox = FolderPath::inbox();
    assert_eq!(
        bodies(&store, &inbox).await,
        [b"\none\n".to_vec(), b"\nFrom two\n".to_vec()]
    );
    let keys = store
        .append(
            &inbox,
            &[item(b"Subject: 3\r\n\r\nthree", Flags::default())],
        )
        .await
        .expect("append");
    assert_eq!(keys[0].as_ref().expect("key").0, "81");
    let all = bodies(&store, &inbox).await;
    assert_eq!(all.len(), 3);
    assert_eq!(all[2], b"Subject: 3\n\nthree");
    let status = Source::list_folders(&store).await.expect("list")[0]
        .status
        .clone();
    assert_eq!(
        status.next_id, None,
        "gzip offsets are not known without decoding"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_file_target_refuses_a_second_folder() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Mbox::open(tmp.path().join("x.mbox")).expect("open");
    assert!(store.is_single_file());
    store
        .ensure_folder(&FolderPath::inbox(), None)
        .await
        .expect("inbox");
    let err = store
        .ensure_folder(&FolderPath::new(["Sent"]), None)
        .await
        .expect_err("second folder");
    assert_eq!(err.kind(), ErrorKind::Fatal);
    assert!(err.to_string().contains("use a directory"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyword_that_mbox_cannot_hold_is_an_item_error_and_the_rest_is_written() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = dir_store(tmp.path());
    let mut bad = Flags::default();
    bad.keywords.insert("two words".into());
    let outcomes = store
        .append(
            &FolderPath::inbox(),
            &[
                item(b"Subject: a\r\n\r\na\r\n", Flags::default()),
                item(b"Subject: b\r\n\r\nb\r\n", bad),
                item(b"Subject: c\r\n\r\nc\r\n", Flags::default()),
            ],
        )
        .await
        .expect("append");
    assert!(outcomes[0].is_ok() && outcomes[2].is_ok());
    let err = outcomes[1].as_ref().expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::Item);
    assert!(
        err.to_string().contains("cannot be stored in mbox as-is"),
        "{err}"
    );
    assert_eq!(bodies(&store, &FolderPath::inbox()).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_never_interleave_or_truncate() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("Inbox");
    std::fs::write(&path, b"From x Wed Nov 25 00:28:58 2026\n\nkept\n\n").expect("write");
    let store = dir_store(tmp.path());
    let inbox = FolderPath::inbox();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        let inbox = inbox.clone();
        tasks.push(tokio::spawn(async move {
            let batch: Vec<CanonicalItem> = (0..20)
                .map(|j| {
                    item(
                        format!("Subject: {i}-{j}\r\n\r\nFrom {i}\r\n").as_bytes(),
                        Flags::default(),
                    )
                })
                .collect();
            store.append(&inbox, &batch).await.expect("append")
        }));
    }
    let mut keys = Vec::new();
    for t in tasks {
        keys.extend(t.await.expect("join").into_iter().map(|k| k.expect("key")));
    }
    let all = bodies(&store, &inbox).await;
    assert_eq!(all.len(), 161);
    assert_eq!(all[0], b"\nkept\n");
    keys.sort_by_key(|k| k.0.parse::<u64>().expect("offset"));
    keys.dedup();
    assert_eq!(keys.len(), 160, "every append got its own offset");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_is_stable_until_the_file_changes_and_listing_resumes_after_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = dir_store(tmp.path());
    let inbox = FolderPath::inbox();
    store
        .append(
            &inbox,
            &[item(b"Subject: 1\r\n\r\n1\r\n", Flags::default())],
        )
        .await
        .expect("append");
    let before = Source::list_folders(&store).await.expect("list")[0]
        .status
        .clone();
    let same = Source::list_folders(&store).await.expect("list")[0]
        .status
        .clone();
    assert_eq!(before, same);
    store
        .append(
            &inbox,
            &[item(b"Subject: 2\r\n\r\n2\r\n", Flags::default())],
        )
        .await
        .expect("append");
    let after = Source::list_folders(&store).await.expect("list")[0]
        .status
        .clone();
    assert_ne!(before, after);
    assert_eq!(
        before.validity, after.validity,
        "appending keeps offsets valid"
    );
    let checkpoint = Checkpoint {
        validity: before.validity,
        next_id: before.next_id.expect("plain files have a next id"),
    };
    let newer: Vec<ItemMeta> = store
        .list_items(&inbox, Some(checkpoint))
        .map(|m| m.expect("list"))
        .collect()
        .await;
    assert_eq!(newer.len(), 1);
    assert_eq!(newer[0].key.0, checkpoint.next_id.to_string());
    // A file replaced by another program (written aside, renamed over) gets a new token.
    let file = tmp.path().join("Inbox");
    let aside = tmp.path().join(".Inbox.new");
    std::fs::copy(&file, &aside).expect("copy");
    std::fs::rename(&aside, &file).expect("rename");
    let replaced = Source::list_folders(&store).await.expect("list")[0]
        .status
        .clone();
    assert_ne!(replaced.validity, before.validity);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takeout_labels_put_messages_in_each_labelled_folder() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("All mail Including Spam and Trash.mbox");
    std::fs::write(
        &path,
        b"From 1@xxx Wed Nov 25 00:28:58 +0000 2026\nX-Gmail-Labels: Inbox,Opened,Work/Q1\nSubject: a\n\na\n\n\
From 2@xxx Wed Nov 25 00:28:59 +0000 2026\nX-Gmail-Labels: Sent,Starred,Unread\nSubject: b\n\nb\n\n\
From 3@xxx Wed Nov 25 00:29:00 +0000 2026\nX-Gmail-Labels: Archived,Category Updates\nSubject: c\n\nc\n",
    )
    .expect("write");
    let options = MboxOptions {
        gmail_labels: true,
        ..MboxOptions::default()
    };
    let store = Mbox::with_options(&path, options).expect("open");
    let back = MemoryStore::new();
    let report = copy_all(
        Arc::new(store.clone()),
        Arc::new(back.clone()),
        Arc::new(MemoryState::new()),
    )
    .await;
    assert_eq!(report.totals.copied, 4);
    let count = |f: FolderPath| back.messages(&f).len();
    assert_eq!(count(FolderPath::inbox()), 1);
    assert_eq!(count(FolderPath::new(["Work", "Q1"])), 1);
    assert_eq!(count(FolderPath::new(["Sent"])), 1);
    assert_eq!(count(FolderPath::new(["Archive"])), 1);
    assert!(back.messages(&FolderPath::inbox())[&1].flags.seen);
    let sent = &back.messages(&FolderPath::new(["Sent"]))[&1];
    assert!(sent.flags.flagged && !sent.flags.seen);
    let err = store
        .append(&FolderPath::inbox(), &[item(b"x\r\n", Flags::default())])
        .await
        .expect_err("read-only");
    assert_eq!(err.kind(), ErrorKind::Fatal);
}
