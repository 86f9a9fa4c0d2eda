//! Measures the Maildir backend through the real copier: memory → Maildir under each fsync
//! policy, Maildir → memory, and a no-change re-run (skipped by folder status).
//!
//! ```text
//! cargo run --release -p mailferry-maildir --example throughput -- [messages]
//! ```

use std::error::Error;
use std::sync::Arc;
use std::time::Instant;

use mailferry_core::{MemoryState, MemoryStore};
use mailferry_maildir::{FsyncPolicy, Layout, Maildir, MaildirOptions};
use mailferry_testkit::conformance::copy_all;
use mailferry_testkit::corpus::{CorpusSpec, SizeMix};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let count: usize = std::env::args().nth(1).map_or(Ok(2_000), |s| s.parse())?;
    let source = MemoryStore::new();
    let mut bytes = 0u64;
    for m in CorpusSpec::new(count, SizeMix::typical())
        .with_quirks()
        .generate()
    {
        bytes += m.body.len() as u64;
        source.insert(&m.folder, m.body, m.flags, Some(m.internal_date));
    }
    let mb = bytes as f64 / 1e6;
    println!("{count} messages, {mb:.1} MB");
    let dir = tempfile::tempdir_in(std::env::var("TMPDIR").unwrap_or_else(|_| ".".into()))?;
    for (name, fsync) in [
        ("Never", FsyncPolicy::Never),
        ("PerBatch", FsyncPolicy::PerBatch),
        ("Always", FsyncPolicy::Always),
    ] {
        let options = MaildirOptions {
            layout: Some(Layout::MaildirPlusPlus),
            fsync,
            ..MaildirOptions::default()
        };
        let store = Maildir::create(dir.path().join(name), options)?;
        let started = Instant::now();
        let report = copy_all(
            Arc::new(source.clone()),
            Arc::new(store.clone()),
            Arc::new(MemoryState::new()),
        )
        .await;
        let secs = started.elapsed().as_secs_f64();
        assert_eq!(report.totals.copied, count as u64);
        println!(
            "memory → Maildir, fsync {name:>8}: {secs:6.2} s, {:7.0} items/s, {:6.1} MB/s",
            count as f64 / secs,
            mb / secs
        );
        if fsync != FsyncPolicy::PerBatch {
            continue;
        }
        let state = Arc::new(MemoryState::new());
        let started = Instant::now();
        let back = copy_all(
            Arc::new(store.clone()),
            Arc::new(MemoryStore::new()),
            Arc::clone(&state),
        )
        .await;
        let secs = started.elapsed().as_secs_f64();
        assert_eq!(back.totals.copied, count as u64);
        println!(
            "Maildir → memory:                {secs:6.2} s, {:7.0} items/s, {:6.1} MB/s",
            count as f64 / secs,
            mb / secs
        );
        // Let the directory mtimes age past the racy window, so the status can be trusted.
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        let first = copy_all(
            Arc::new(store.clone()),
            Arc::new(MemoryStore::new()),
            Arc::clone(&state),
        )
        .await;
        let started = Instant::now();
        let rerun = copy_all(Arc::new(store), Arc::new(MemoryStore::new()), state).await;
        let secs = started.elapsed().as_secs_f64();
        let unchanged = rerun.folders.iter().filter(|f| f.unchanged).count();
        println!(
            "no-change re-run:                {secs:6.3} s, {unchanged}/{} folders skipped by status (pass before: {} copied)",
            rerun.folders.len(),
            first.totals.copied
        );
    }
    Ok(())
}
