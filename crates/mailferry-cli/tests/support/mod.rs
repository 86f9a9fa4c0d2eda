//! What the CLI's test binaries share: generated Maildir sources.

use std::path::Path;
use std::sync::Arc;

use mailferry::maildir::{Layout, Maildir, MaildirOptions};
use mailferry_core::{FolderPath, MemoryState, MemoryStore};
use mailferry_testkit::conformance::copy_all;
use mailferry_testkit::corpus::{CorpusSpec, SizeMix};

/// Writes `count` generated messages (seed `seed`, three folders) as a Maildir at `dir`, through
/// the library; returns how many.
pub fn write_maildir(dir: &Path, count: usize, seed: u64) -> u64 {
    let mut spec = CorpusSpec::new(count, SizeMix::small()).in_folders(vec![
        FolderPath::inbox(),
        FolderPath::new(["Archive", "2024"]),
        FolderPath::new(["Sent"]),
    ]);
    spec.seed = seed;
    let memory = MemoryStore::new();
    let messages = spec.messages();
    for m in &messages {
        memory.insert(
            &m.folder,
            m.body.clone(),
            m.flags.clone(),
            Some(m.internal_date),
        );
    }
    let options = MaildirOptions {
        layout: Some(Layout::Fs),
        ..MaildirOptions::default()
    };
    let target = Maildir::create(dir, options).expect("create the source Maildir");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let report = runtime.block_on(copy_all(
        Arc::new(memory),
        Arc::new(target),
        Arc::new(MemoryState::new()),
    ));
    assert_eq!(report.totals.copied, messages.len() as u64);
    messages.len() as u64
}
