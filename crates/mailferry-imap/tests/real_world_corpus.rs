//! Real-world mail (the shared corpora: broken MIME, bare LF, 8-bit headers, long lines)
//! survives memory → Dovecot → memory with identical canonical checksums. The few messages with
//! NUL bytes, which an IMAP literal cannot carry (Dovecot would store 0x80), are refused as item
//! errors saying so, and nothing else is. Reads `../../../shared/corpora` relative to the crate; outside CI a missing folder
//! only skips the test.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use mailferry_core::normalise::canonicalise;
use mailferry_core::{
    Checksum, Copier, CopyOptions, Flags, FolderPath, MemoryState, MemoryStore, Report, Source,
    Target,
};

fn corpus_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "the shared corpora are missing at {}",
        dir.display()
    );
    eprintln!("note: skipping: no corpora at {}", dir.display());
    None
}

fn messages(dir: &Path, out: &mut Vec<Bytes>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            messages(&path, out);
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "eml" | "raw" | "txt"))
            && let Ok(bytes) = std::fs::read(&path)
            && !bytes.is_empty()
        {
            out.push(Bytes::from(bytes));
        }
    }
}

async fn copy(source: Arc<dyn Source>, target: Arc<dyn Target>) -> Report {
    let copier = Copier::new(
        source,
        target,
        Arc::new(MemoryState::new()),
        CopyOptions::default(),
    );
    let plan = copier.identity_plan().await.expect("plan");
    copier.run(plan).await.expect("copy")
}

fn checksums(store: &MemoryStore, folder: &FolderPath) -> Vec<Checksum> {
    let mut v: Vec<Checksum> = store
        .messages(folder)
        .into_values()
        .map(|m| Checksum::of(&canonicalise(m.body).0))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_world_messages_round_trip_byte_for_byte_and_nul_bytes_are_refused() {
    if !mailferry_testkit::require_dovecot() {
        return;
    }
    let Some(dir) = corpus_dir() else {
        return;
    };
    let mut bodies = Vec::new();
    messages(&dir, &mut bodies);
    assert!(bodies.len() > 300, "found only {} messages", bodies.len());
    let folder = FolderPath::new(["Corpus"]);
    let source = MemoryStore::new();
    for body in &bodies {
        source.insert(&folder, body.clone(), Flags::default(), None);
    }
    let expected = MemoryStore::new();
    for body in bodies.iter().filter(|b| !b.contains(&0)) {
        expected.insert(&folder, body.clone(), Flags::default(), None);
    }
    let d = common::dovecot('.', "");
    let imap = Arc::new(common::store(&d).await);
    let with_nul = bodies.iter().filter(|b| b.contains(&0)).count();
    assert!(with_nul > 0, "the corpora have messages with NUL bytes");
    let there = copy(Arc::new(source.clone()), imap.clone()).await;
    assert_eq!(there.totals.failed as usize, with_nul, "{there:#?}");
    assert!(
        there.folders[0]
            .failures
            .iter()
            .all(|f| f.reason.contains("NUL bytes")),
        "{there:#?}"
    );
    assert_eq!(there.totals.copied as usize, bodies.len() - with_nul);
    let back = MemoryStore::new();
    let report = copy(imap, Arc::new(back.clone())).await;
    assert_eq!(report.totals.failed, 0, "{report:#?}");
    assert!(
        checksums(&back, &folder) == checksums(&expected, &folder),
        "some messages came back changed"
    );
}
