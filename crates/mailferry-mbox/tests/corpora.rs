//! Real-world messages (`/work/shared/corpora`, ≈740 files, many malformed) through mbox, via
//! the real copier, and the corpora's own mbox sample read as an mbox.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use mailferry_core::normalise::canonicalise;
use mailferry_core::{Checksum, Flags, FolderPath, MemoryState, MemoryStore, Source};
use mailferry_mbox::{Layout, Mbox, MboxOptions};
use mailferry_testkit::conformance::copy_all;

/// The corpora folder, or `None` (with a note) when it is missing outside CI.
fn corpora() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "the corpora are missing at {}",
        dir.display()
    );
    eprintln!("note: {} is missing; corpus test skipped", dir.display());
    None
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read corpora dir")
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.unwrap_or_default();
        if name.starts_with('.') || name == "SOURCES.md" || name.ends_with(".json") {
            continue;
        }
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn checksums(store: &MemoryStore, folder: &FolderPath) -> BTreeMap<Checksum, usize> {
    let mut out = BTreeMap::new();
    for m in store.messages(folder).into_values() {
        *out.entry(Checksum::of(&canonicalise(m.body).0))
            .or_default() += 1;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_corpus_message_survives_memory_to_mbox_to_memory() {
    let Some(dir) = corpora() else { return };
    let mut files = Vec::new();
    walk(&dir, &mut files);
    assert!(files.len() > 600, "only {} corpus files", files.len());
    let source = MemoryStore::new();
    let inbox = FolderPath::inbox();
    let mut names = BTreeMap::new();
    for (i, path) in files.iter().enumerate() {
        let body = std::fs::read(path).expect("read corpus file");
        // Vary flags so the metadata block is exercised with every kind of message.
        let mut flags = Flags {
            seen: i % 2 == 0,
            flagged: i % 5 == 0,
            ..Flags::default()
        };
        if i % 3 == 0 {
            flags.keywords.insert("$Forwarded".into());
        }
        let uid = source.insert(&inbox, Bytes::from(body), flags, None);
        names.insert(
            uid.to_string(),
            path.strip_prefix(&dir).unwrap_or(path).to_owned(),
        );
    }

    let tmp = tempfile::tempdir().expect("tempdir");
    let options = MboxOptions {
        layout: Layout::Directory,
        ..MboxOptions::default()
    };
    let mbox = Mbox::with_options(tmp.path().join("mail"), options).expect("open");
    let there = copy_all(
        Arc::new(source.clone()),
        Arc::new(mbox.clone()),
        Arc::new(MemoryState::new()),
    )
    .await;
    let back = MemoryStore::new();
    let again = copy_all(
        Arc::new(mbox),
        Arc::new(back.clone()),
        Arc::new(MemoryState::new()),
    )
    .await;
    assert_eq!(
        again.totals.failed, 0,
        "mbox → memory: {:#?}",
        again.folders
    );

    let failed_there: Vec<_> = there.folders.iter().flat_map(|f| &f.failures).collect();
    for f in &failed_there {
        let name = names.get(&f.key).map(|p| p.display().to_string());
        eprintln!("not copied: {} ({:?}): {}", f.key, name, f.reason);
    }
    let mut want = checksums(&source, &inbox);
    for f in &failed_there {
        let uid: u64 = f.key.parse().expect("memory keys are uids");
        let body = source.messages(&inbox)[&uid].body.clone();
        let sum = Checksum::of(&canonicalise(body).0);
        if let Some(n) = want.get_mut(&sum) {
            *n -= 1;
        }
    }
    want.retain(|_, n| *n > 0);
    let got = checksums(&back, &inbox);
    eprintln!(
        "{} corpus messages: {} copied through mbox, {} reported failed",
        files.len(),
        got.values().sum::<usize>(),
        failed_there.len()
    );
    assert_eq!(
        there.totals.copied + there.totals.failed,
        files.len() as u64
    );
    assert_eq!(got, want, "canonical checksums differ after the round trip");
    assert_eq!(
        failed_there.len(),
        0,
        "corpus messages mbox refused (reasons above)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_corpora_mbox_sample_reads_as_four_messages() {
    let Some(dir) = corpora() else { return };
    let path = dir.join("crate-mail-parser-1.0.1/resources/mbox/sample.mbox");
    let mbox = Mbox::open(&path).expect("open");
    assert!(mbox.is_single_file());
    let folders = Source::list_folders(&mbox).await.expect("folders");
    assert_eq!(folders.len(), 1);
    assert_eq!(folders[0].path, FolderPath::inbox());
    let inbox = FolderPath::inbox();
    let metas: Vec<_> = mbox
        .list_items(&inbox, None)
        .map(|m| m.expect("meta"))
        .collect()
        .await;
    assert_eq!(metas.len(), 4, "{metas:#?}");
    let keys: Vec<&str> = metas.iter().map(|m| m.key.0.as_str()).collect();
    assert_eq!(keys, ["0", "59", "118", "211"]);
    let dates: Vec<i64> = metas
        .iter()
        .map(|m| m.internal_date.expect("date").timestamp)
        .collect();
    assert_eq!(
        dates,
        [820_631_134, 1_027_453_163, 1_028_640_874, 1_516_030_200]
    );
    let bodies: Vec<String> = mbox
        .fetch(&inbox, metas.clone())
        .map(|i| String::from_utf8_lossy(&i.expect("item").body).into_owned())
        .collect()
        .await;
    assert_eq!(
        bodies,
        [
            "Message 1\n",
            "Message 2\n",
            "Message 3\nFrom hello\n>From world\n>>From test\n",
            "Message 4\n> From\n>F\n",
        ]
    );
    for (meta, body) in metas.iter().zip(&bodies) {
        assert_eq!(
            meta.size,
            body.len() as u64,
            "listed size is the fetched size"
        );
    }
}
