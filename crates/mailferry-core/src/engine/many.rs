//! Many mailboxes in one process: `jobs` at a time, one [`MemoryBudget`] between them all.
//!
//! Why one budget: a process's memory is what runs out, not a mailbox's. With a budget per
//! mailbox, `jobs` mailboxes hold `jobs` budgets even when most of them are idle, waiting on a
//! throttled server; with one, the busy mailboxes use what the idle ones do not. A message
//! larger than the whole budget is still admitted alone.
//!
//! What a mailbox is, and how it is opened, is the caller's: the facade opens endpoint URLs, a
//! fleet worker opens the rows it claimed. `run_many` only schedules them.

use std::future::Future;

use futures_util::StreamExt;

use super::options::ByteSize;
use crate::copier::{Budget as MemoryBudget, CopyOptions};

/// Runs `run(spec, budget)` for every spec, `jobs` at a time, all sharing one memory budget of
/// `memory_budget` bytes. Returns the outcomes in the order of `specs`; every mailbox runs to
/// its own outcome, so one failure stops nothing else.
pub async fn run_many<S, R, F, Fut>(
    specs: Vec<S>,
    jobs: usize,
    memory_budget: ByteSize,
    run: F,
) -> Vec<R>
where
    F: Fn(S, MemoryBudget) -> Fut,
    Fut: Future<Output = R>,
{
    let budget = MemoryBudget::with_limits(memory_budget.0, CopyOptions::default().item_budget);
    let run = &run;
    let mut outcomes: Vec<(usize, R)> = futures_util::stream::iter(specs.into_iter().enumerate())
        .map(|(i, spec)| {
            let budget = budget.clone();
            async move { (i, run(spec, budget).await) }
        })
        .buffer_unordered(jobs.max(1))
        .collect()
        .await;
    outcomes.sort_by_key(|(i, _)| *i);
    outcomes.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::{Flags, FolderPath, MemoryState, MemoryStore, Migration, MigrationOptions};

    #[tokio::test]
    async fn many_mailboxes_share_one_budget_and_keep_their_order() {
        let mailboxes: Vec<(String, MemoryStore, MemoryStore)> = (0..6)
            .map(|m| {
                let source = MemoryStore::new();
                for i in 0..20 {
                    // 64 KiB each: 20 of them are more than the whole 512 KiB budget.
                    let body = format!("Subject: {m}/{i}\r\n\r\n{}\r\n", "x".repeat(64 << 10));
                    source.insert(
                        &FolderPath::inbox(),
                        Bytes::from(body),
                        Flags::default(),
                        None,
                    );
                }
                (format!("mailbox {m}"), source, MemoryStore::new())
            })
            .collect();
        let targets: Vec<MemoryStore> = mailboxes.iter().map(|(_, _, t)| t.clone()).collect();
        let names = run_many(
            mailboxes,
            3,
            ByteSize(512 << 10),
            |(name, source, target), budget| async move {
                let migration = Migration::new(
                    name.clone(),
                    Arc::new(source),
                    Arc::new(target),
                    Arc::new(MemoryState::new()),
                    MigrationOptions::default(),
                )
                .expect("options")
                .share_budget(budget);
                let report = migration.copy().await.expect("copy");
                assert_eq!(report.totals.copied, 20, "{name}");
                name
            },
        )
        .await;
        assert_eq!(
            names,
            (0..6).map(|m| format!("mailbox {m}")).collect::<Vec<_>>()
        );
        for t in targets {
            assert_eq!(t.messages(&FolderPath::inbox()).len(), 20);
        }
    }
}
