//! Reading Maildirs other programs wrote: the corpora's samples from the `maildir` and
//! `mail-parser` crates (flags from names, dotfiles ignored, `;` info separator, Maildir++
//! folders with spaces and nesting).

use std::path::Path;

use futures_util::StreamExt;
use mailferry_core::{FolderPath, ItemMeta, Source};
use mailferry_maildir::{Layout, Maildir, MaildirOptions};

async fn metas(store: &Maildir, folder: &FolderPath) -> Vec<ItemMeta> {
    let mut v: Vec<ItemMeta> = store
        .list_items(folder, None)
        .map(|m| m.expect("meta"))
        .collect()
        .await;
    v.sort_by(|a, b| a.key.cmp(&b.key));
    v
}

/// Copies a directory tree, decoding `%3A`/`%2C` in file names as the `maildir` crate's own
/// tests do (its testdata spells `:2,` that way to survive packaging).
fn copy_decoded(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read").flatten() {
        let name = e
            .file_name()
            .to_string_lossy()
            .replace("%3A", ":")
            .replace("%2C", ",");
        if e.file_type().expect("type").is_dir() {
            copy_decoded(&e.path(), &to.join(name));
        } else {
            std::fs::copy(e.path(), to.join(name)).expect("copy");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_the_maildir_crate_sample_with_flags_from_names() {
    let Some(corpora) = crate::corpora_dir() else {
        return;
    };
    let sample = corpora.join("crate-maildir/testdata/maildir");
    let dir = tempfile::tempdir().expect("tempdir");
    copy_decoded(&sample, dir.path());
    let store = Maildir::open(dir.path(), MaildirOptions::default()).expect("open");
    let folders = Source::list_folders(&store).await.expect("list");
    assert_eq!(folders.len(), 1);
    assert_eq!(folders[0].status.count, 2, "dotfiles are not messages");
    let inbox = FolderPath::inbox();
    let m = metas(&store, &inbox).await;
    let keys: Vec<&str> = m.iter().map(|m| m.key.0.as_str()).collect();
    assert_eq!(
        keys,
        [
            "1463868505.38518452d49213cb409aa1db32f53184",
            "1463941010.5f7fa6dd4922c183dc457d033deee9d7"
        ]
    );
    assert!(
        m[0].flags.seen && !m[0].flags.flagged,
        "cur/…:2,S is \\Seen"
    );
    assert!(m[1].flags.is_empty(), "new/ without info has no flags");
    assert_eq!(m[0].size, 1592);
    let items: Vec<_> = store
        .fetch(&inbox, m)
        .map(|i| i.expect("fetch"))
        .collect()
        .await;
    let original = std::fs::read(sample.join("new/1463941010.5f7fa6dd4922c183dc457d033deee9d7"))
        .expect("read");
    assert_eq!(&items[1].body[..], &original[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_the_undecoded_sample_in_place_without_writing() {
    let Some(corpora) = crate::corpora_dir() else {
        return;
    };
    // Read-only files in a read-only tree: listing and fetching must not need to write.
    let store = Maildir::open(
        corpora.join("crate-maildir/testdata/maildir"),
        MaildirOptions::default(),
    )
    .expect("open");
    let m = metas(&store, &FolderPath::inbox()).await;
    assert_eq!(m.len(), 2);
    // Without a `:` the whole name is the key and there are no flags.
    assert_eq!(
        m[0].key.0,
        "1463868505.38518452d49213cb409aa1db32f53184%3A2%2CS"
    );
    assert!(m[0].flags.is_empty());
    let fetched = store
        .fetch(&FolderPath::inbox(), m)
        .filter(|r| std::future::ready(r.is_ok()))
        .count()
        .await;
    assert_eq!(fetched, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_maildir_plus_plus_subfolders_even_odd_ones() {
    let Some(corpora) = crate::corpora_dir() else {
        return;
    };
    let store = Maildir::open(
        corpora.join("crate-maildir/testdata/submaildirs"),
        MaildirOptions::default(),
    )
    .expect("open");
    assert_eq!(store.layout(), Layout::MaildirPlusPlus);
    let folders = Source::list_folders(&store).await.expect("list");
    let listed: Vec<(Vec<String>, bool)> = folders
        .iter()
        .map(|f| (f.path.segments().to_vec(), f.selectable))
        .collect();
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        listed,
        [
            (s(&["INBOX"]), true),
            // `..Subdir3` has an empty first segment: kept under its literal name.
            (s(&[".Subdir3"]), false),
            (s(&["Subdir1"]), false),
            (s(&["Subdir2"]), false),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_the_mail_parser_sample_with_a_semicolon_separator() {
    let Some(corpora) = crate::corpora_dir() else {
        return;
    };
    let options = MaildirOptions {
        info_separator: ';',
        ..MaildirOptions::default()
    };
    let store = Maildir::open(
        corpora.join("crate-mail-parser-1.0.1/resources/maildir"),
        options,
    )
    .expect("open");
    let folders = Source::list_folders(&store).await.expect("list");
    let paths: Vec<String> = folders.iter().map(|f| f.path.to_string()).collect();
    assert_eq!(paths, ["INBOX", "My Folder", "My Folder/Nested Folder"]);
    assert!(folders.iter().all(|f| f.selectable && f.status.count == 2));

    let flags = |m: &[ItemMeta]| m.iter().map(|m| m.flags.to_string()).collect::<Vec<_>>();
    let inbox = metas(&store, &FolderPath::inbox()).await;
    // `b`, `l`, `n` name keywords in a dovecot-keywords file the sample does not have.
    assert_eq!(flags(&inbox), ["\\Seen", "\\Seen \\Deleted"]);
    assert_eq!(
        inbox[0].key.0,
        "1234567890.M20046P2137.mailserver,S=4542,W=4642"
    );
    let nested = metas(&store, &FolderPath::new(["My Folder", "Nested Folder"])).await;
    assert_eq!(
        flags(&nested),
        ["\\Answered \\Flagged \\Draft", "\\Flagged $Forwarded"]
    );
    let mine = metas(&store, &FolderPath::new(["My Folder"])).await;
    assert_eq!(flags(&mine), ["\\Answered \\Deleted \\Draft", ""]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directories_that_decode_to_a_taken_name_are_listed_under_their_own_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    // `.INBOX` would be INBOX, which is the root; `.%46oo` and `.Foo` both decode to `Foo`.
    for folder in ["", ".INBOX", ".%46oo", ".Foo"] {
        std::fs::create_dir_all(root.join(folder).join("cur")).expect("mkdir");
        std::fs::write(
            root.join(folder).join("cur/1.a.host:2,S"),
            b"Subject: x\n\nx\n",
        )
        .expect("write");
    }
    let store = Maildir::open(root, MaildirOptions::default()).expect("open");
    let folders = Source::list_folders(&store).await.expect("list");
    let paths: Vec<String> = folders.iter().map(|f| f.path.to_string()).collect();
    assert_eq!(paths, ["INBOX", ".Foo", ".INBOX", "Foo"]);
    for f in &folders {
        assert_eq!(metas(&store, &f.path).await.len(), 1, "{}", f.path);
    }
}
