//! Folder names from a source are hostile: none may create or touch anything outside the
//! target root, and every name that can be stored comes back unchanged.

use std::os::unix::fs::PermissionsExt;

use futures_util::StreamExt;
use mailferry_core::{ErrorKind, FolderPath, Source, Target};
use mailferry_maildir::Layout;

fn hostile_paths() -> Vec<FolderPath> {
    let one = |s: &str| FolderPath::new([s]);
    let mut paths: Vec<FolderPath> = [
        "..",
        ".",
        "...",
        "../../escaped",
        "/",
        "/etc",
        "\0",
        "nul\0byte",
        ".hidden",
        "a/b",
        "x/../../y",
        "line\nbreak",
        "\x1b[31mred",
        "~",
        "cur",
        "new",
        "tmp",
        "%2E%2E",
        "%",
        "INBOX/..",
        "Tom & Jerry",
        "dovecot-keywords",
    ]
    .iter()
    .map(|s| one(s))
    .collect();
    paths.push(FolderPath::new(["..", ".."]));
    paths.push(FolderPath::new(["a", "..", "..", "escaped"]));
    paths.push(FolderPath::new(["INBOX", ".."]));
    paths.push(FolderPath::new(["cur", "new"]));
    paths
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_folder_names_stay_inside_the_root_and_round_trip() {
    for layout in [Layout::MaildirPlusPlus, Layout::Fs] {
        let (dir, store) = crate::fresh_store(layout);
        let root = store.root().to_path_buf();
        for (i, path) in hostile_paths().iter().enumerate() {
            assert!(
                store
                    .folder_dir(path)
                    .expect("encodable")
                    .starts_with(&root),
                "{path:?}"
            );
            Target::ensure_folder(&store, path, None)
                .await
                .unwrap_or_else(|e| panic!("{layout:?} {path:?}: {e}"));
            let body: &'static [u8] = Box::leak(
                format!("Subject: hostile {i}\r\n\r\nbody\r\n")
                    .into_bytes()
                    .into_boxed_slice(),
            );
            let outcomes = store
                .append(
                    path,
                    &[crate::canonical("k", body, &["\\Seen"], 1_600_000_000)],
                )
                .await
                .expect("append");
            assert!(outcomes[0].is_ok(), "{layout:?} {path:?}: {outcomes:?}");
        }
        // Nothing beside the root in the temp dir, and nothing below it but Maildir entries.
        let outside: Vec<_> = std::fs::read_dir(dir.path())
            .expect("read temp dir")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(outside, ["Maildir"], "{layout:?}");
        for file in crate::walk(&root) {
            let parent = file
                .parent()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned());
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            assert!(
                parent.as_deref() == Some("cur") || name == "dovecot-keywords",
                "{layout:?}: unexpected file {}",
                file.display()
            );
            assert_eq!(
                std::fs::metadata(&file).expect("stat").permissions().mode() & 0o777,
                0o600
            );
        }

        // Every name comes back as it was given, each with its one message.
        let listed = Source::list_folders(&store).await.expect("list");
        for path in hostile_paths() {
            let expected = if path.is_inbox() {
                FolderPath::inbox()
            } else {
                path.clone()
            };
            let folder = listed
                .iter()
                .find(|f| f.path == expected)
                .unwrap_or_else(|| {
                    panic!(
                        "{layout:?}: {path:?} not listed in {:#?}",
                        listed.iter().map(|f| &f.path).collect::<Vec<_>>()
                    )
                });
            assert!(folder.selectable);
            assert_eq!(folder.status.count, 1, "{layout:?}: {path:?}");
            let items = store.list_items(&path, None).count().await;
            assert_eq!(items, 1, "{layout:?}: {path:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_with_an_empty_segment_are_refused_as_item_errors() {
    for layout in [Layout::MaildirPlusPlus, Layout::Fs] {
        let (dir, store) = crate::fresh_store(layout);
        for path in [
            FolderPath::new([""]),
            FolderPath::new(["a", ""]),
            FolderPath::new(Vec::<String>::new()),
        ] {
            let err = Target::ensure_folder(&store, &path, None)
                .await
                .expect_err("an empty segment has no encoding");
            assert_eq!(err.kind(), ErrorKind::Item, "{err}");
        }
        assert_eq!(crate::walk(dir.path()).len(), 0, "nothing was written");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directories_are_private_and_files_are_owner_only() {
    for layout in [Layout::MaildirPlusPlus, Layout::Fs] {
        let (_dir, store) = crate::fresh_store(layout);
        let folder = FolderPath::new(["Deep", "Er", "Est"]);
        Target::ensure_folder(&store, &folder, None)
            .await
            .expect("ensure");
        store
            .append(
                &folder,
                &[crate::canonical(
                    "k",
                    b"Subject: p\r\n\r\nx\r\n",
                    &["Keyword"],
                    0,
                )],
            )
            .await
            .expect("append")[0]
            .as_ref()
            .expect("stored");
        let mut dirs = vec![store.root().to_path_buf()];
        while let Some(d) = dirs.pop() {
            let mode = std::fs::metadata(&d).expect("stat").permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", d.display());
            for e in std::fs::read_dir(&d).expect("read").flatten() {
                let meta = e.metadata().expect("stat");
                if meta.is_dir() {
                    dirs.push(e.path());
                } else {
                    assert_eq!(
                        meta.permissions().mode() & 0o777,
                        0o600,
                        "{}",
                        e.path().display()
                    );
                }
            }
        }
    }
}
