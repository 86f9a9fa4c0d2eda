//! The memory check: streams a generated mailbox of about 2 GB through the copier with a
//! 64 MiB budget into a discarding target, then reads its own peak RSS. Exits non-zero when the
//! peak exceeds 200 MiB. `cargo run --release -p mailferry-examples --example bounded_copy [GB]`

use std::sync::Arc;

use mailferry::core::MemoryState;
use mailferry::{Copier, CopyOptions};
use mailferry_testkit::corpus::{CorpusSpec, SizeMix};
use mailferry_testkit::rss::peak_rss_bytes;
use mailferry_testkit::stores::{GeneratedSource, NullTarget};

const LIMIT: u64 = 200 << 20;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let gigabytes: f64 = std::env::args().nth(1).map_or(Ok(2.0), |s| s.parse())?;
    // The realistic mix averages about 220 KB per message.
    let count = (gigabytes * 1e9 / 220_000.0) as usize;
    let target = NullTarget::new();
    let options = CopyOptions {
        byte_budget: 64 << 20,
        ..CopyOptions::default()
    };
    let copier = Copier::new(
        Arc::new(GeneratedSource::new(CorpusSpec::new(
            count,
            SizeMix::realistic(),
        ))),
        Arc::new(target.clone()),
        Arc::new(MemoryState::new()),
        options,
    );
    let plan = copier.identity_plan().await?;
    let report = copier.run(plan).await?;
    let peak = peak_rss_bytes().ok_or_else(|| anyhow::anyhow!("no /proc/self/status here"))?;
    println!(
        "bounded copy: {} items, {:.2} GB in {:.1} s ({:.0} items/s); budget 64 MiB; peak RSS {:.1} MiB (limit {} MiB)",
        target.items(),
        target.bytes() as f64 / 1e9,
        report.duration_secs,
        report.items_per_sec,
        peak as f64 / (1u64 << 20) as f64,
        LIMIT >> 20
    );
    anyhow::ensure!(
        report.totals.copied == count as u64,
        "not everything was copied"
    );
    anyhow::ensure!(peak <= LIMIT, "peak RSS {peak} bytes exceeds {LIMIT}");
    Ok(())
}
