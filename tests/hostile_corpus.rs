//! Every message of the shared real-world corpus (`/work/shared/corpora`: broken MIME, bare
//! LFs, NUL bytes, 8-bit headers, fragments, files of 0 and 1 bytes) goes through every local
//! backend pair, in two chains: memory → mbox → Maildir → mbox → memory and
//! memory → Maildir → mbox → Maildir → memory. Each hop is checked by [`crate::chain`]: what
//! arrives is byte-identical (in wire form, lone CRs included), flags and dates included, and what does not
//! is reported with a reason.

use std::path::Path;

use bytes::Bytes;
use mailferry_core::{Flags, FolderPath, InternalDate, MemoryStore};

use crate::chain::{self, Compare, Kind};
use crate::support::{corpora_dir, files_under};

/// The corpus files that are messages: not the expected-parse `.json` files, `SOURCES.md`, or
/// dotfiles (`.gitkeep`, `.dotfiles_should_be_ignored`).
pub fn corpus_messages(dir: &Path) -> Vec<(String, Vec<u8>)> {
    files_under(dir)
        .into_iter()
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            name.is_some_and(|n| !n.starts_with('.') && !n.ends_with(".json") && n != "SOURCES.md")
        })
        .map(|p| {
            let top = p
                .strip_prefix(dir)
                .ok()
                .and_then(|r| r.components().next())
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .unwrap_or_default();
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (top, bytes)
        })
        .collect()
}

/// The corpus in memory: one folder per corpus source (their names have `.` and `-`), flags and
/// keywords and dates varied by position.
fn corpus_store(messages: Vec<(String, Vec<u8>)>) -> MemoryStore {
    let store = MemoryStore::new();
    for (i, (folder, bytes)) in messages.into_iter().enumerate() {
        let mut flags = Flags {
            seen: i % 2 == 0,
            answered: i % 5 == 0,
            flagged: i % 7 == 0,
            draft: i % 11 == 0,
            ..Flags::default()
        };
        if i % 3 == 0 {
            flags.keywords.insert("$Forwarded".into());
        }
        if i % 13 == 0 {
            flags.keywords.insert("Project-X".into());
        }
        let date = InternalDate::from_timestamp(1_400_000_000 + i as i64 * 3_607);
        store.insert(
            &FolderPath::new([folder]),
            Bytes::from(bytes),
            flags,
            Some(date),
        );
    }
    store
}

async fn corpus_through(hops: &[Kind]) {
    let Some(dir) = corpora_dir() else { return };
    let messages = corpus_messages(&dir);
    assert!(
        messages.len() > 600,
        "only {} corpus messages found",
        messages.len()
    );
    let total = messages.len();
    let tmp = tempfile::tempdir().expect("tempdir");
    let outcome = chain::run(corpus_store(messages), hops, tmp.path(), Compare::PerFolder).await;
    chain::print_failures(&format!("corpus through {hops:?}"), &outcome);
    assert_eq!(outcome.start, total);
    assert_eq!(
        outcome.end + outcome.failures.len(),
        total,
        "every message arrives or is reported"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_survives_memory_mbox_maildir_mbox_memory() {
    corpus_through(&[Kind::Mbox, Kind::Maildir, Kind::Mbox, Kind::Memory]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_survives_memory_maildir_mbox_maildir_memory() {
    corpus_through(&[Kind::Maildir, Kind::Mbox, Kind::MaildirFs, Kind::Memory]).await;
}
