//! Integration tests of the Maildir backend: one test binary (as ripgrep does), one module per
//! concern (in `tests/`, out of cargo's reach so it builds one binary). Stores live in temp
//! dirs; real-world messages come from `shared/corpora`.

#[path = "tests/conformance.rs"]
mod conformance;
#[path = "tests/corpora.rs"]
mod corpora;
#[path = "tests/flags.rs"]
mod flags;
#[path = "tests/hostile_names.rs"]
mod hostile_names;
#[path = "tests/reading.rs"]
mod reading;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use mailferry_core::{CanonicalItem, Flags, FolderPath, InternalDate, Item, ItemMeta, SourceKey};
use mailferry_maildir::{Layout, Maildir, MaildirOptions};

/// A fresh store of `layout` in a temp dir (returned to keep it alive).
pub fn fresh_store(layout: Layout) -> (tempfile::TempDir, Maildir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = MaildirOptions {
        layout: Some(layout),
        ..MaildirOptions::default()
    };
    let store = Maildir::create(dir.path().join("Maildir"), options).expect("create store");
    (dir, store)
}

/// A canonical item as the copier would hand it to a target.
pub fn canonical(key: &str, body: &'static [u8], flags: &[&str], date: i64) -> CanonicalItem {
    CanonicalItem::prepare(Item {
        folder: FolderPath::inbox(),
        meta: ItemMeta {
            key: SourceKey::from(key),
            size: body.len() as u64,
            flags: Flags::from_imap(flags.iter().copied()),
            internal_date: Some(InternalDate::from_timestamp(date)),
        },
        body: Bytes::from_static(body),
    })
    .expect("prepare")
}

/// `shared/corpora`, or `None` (with a note) when it is missing outside CI.
pub fn corpora_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "the corpora are missing at {}",
        dir.display()
    );
    eprintln!("note: {} is missing; skipping", dir.display());
    None
}

/// Every file below `dir`, recursively, in path order.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir").flatten() {
            let path = entry.path();
            if entry.file_type().expect("file type").is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The store as shared trait objects.
pub fn arcs(
    store: &Maildir,
) -> (
    Arc<dyn mailferry_core::Source>,
    Arc<dyn mailferry_core::Target>,
) {
    (Arc::new(store.clone()), Arc::new(store.clone()))
}
