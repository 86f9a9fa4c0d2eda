//! Copies a generated mailbox through the copier between in-memory stores and prints the
//! report as JSON. `cargo run -p mailferry-examples --example copy_in_memory [COUNT]`

use std::sync::Arc;

use mailferry::core::{FolderPath, MemoryState, MemoryStore};
use mailferry::{Copier, CopyOptions};
use mailferry_testkit::corpus::{CorpusSpec, SizeMix};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let count: usize = std::env::args().nth(1).map_or(Ok(2_000), |s| s.parse())?;
    let folders = vec![
        FolderPath::inbox(),
        FolderPath::new(["Archive", "2024"]),
        FolderPath::new(["Envoyés"]),
    ];
    let source = MemoryStore::new();
    for m in CorpusSpec::new(count, SizeMix::realistic())
        .with_quirks()
        .in_folders(folders)
        .generate()
    {
        source.insert(&m.folder, m.body, m.flags, Some(m.internal_date));
    }
    let target = MemoryStore::new();
    let copier = Copier::new(
        Arc::new(source),
        Arc::new(target.clone()),
        Arc::new(MemoryState::new()),
        CopyOptions::default(),
    );
    let plan = copier.identity_plan().await?;
    let report = copier.run(plan).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    eprintln!(
        "copied {} items ({:.1} MB) in {:.2} s: {:.0} items/s, {:.0} MB/s",
        report.totals.copied,
        report.totals.bytes as f64 / 1e6,
        report.duration_secs,
        report.items_per_sec,
        report.bytes_per_sec / 1e6
    );
    anyhow::ensure!(report.is_success(), "the copy did not succeed");
    Ok(())
}
