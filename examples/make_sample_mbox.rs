//! Writes the small sample mbox the README's "run it" command copies
//! (`examples/data/sample.mbox`): generated mail with the awkward cases real mailboxes have —
//! LF-only messages, no Message-ID, byte-identical duplicates, 8-bit headers, keywords.
//! `cargo run -p mailferry-examples --example make_sample_mbox -- examples/data/sample.mbox`

use std::sync::Arc;

use mailferry::core::{FolderPath, MemoryState, MemoryStore};
use mailferry::mbox::Mbox;
use mailferry::{Copier, CopyOptions};
use mailferry_testkit::corpus::{CorpusSpec, SizeMix};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "examples/data/sample.mbox".into());
    anyhow::ensure!(
        !std::path::Path::new(&path).exists(),
        "{path} exists; remove it first"
    );
    let source = MemoryStore::new();
    for m in CorpusSpec::new(60, SizeMix::small())
        .with_quirks()
        .generate()
    {
        source.insert(&FolderPath::inbox(), m.body, m.flags, Some(m.internal_date));
    }
    let copier = Copier::new(
        Arc::new(source),
        Arc::new(Mbox::open(&path)?),
        Arc::new(MemoryState::new()),
        CopyOptions::default(),
    );
    let report = copier.run(copier.identity_plan().await?).await?;
    anyhow::ensure!(report.is_success(), "writing the sample failed: {report:?}");
    eprintln!("wrote {} messages to {path}", report.totals.copied);
    Ok(())
}
