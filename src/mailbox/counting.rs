//! Feeds a mailbox run's figures into the process's [`Metrics`]: live from the migration's
//! progress stream while it runs, then reconciled with its report when it ends.
//!
//! The progress stream is lossy by design (a subscriber that falls behind misses events rather
//! than slowing the copy), so it alone could under-count; the report is exact but comes only at
//! the end. Both, then: whatever the stream missed is added from the report's totals, so once a
//! mailbox has ended its counters equal its report. Failed items are counted at the end only,
//! from the report's issues, because only those carry the error kind.

use std::future::Future;

use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

use super::MailboxReport;
use crate::core::layers::Metrics;
use crate::core::{Counts, Progress};

/// Runs `run` (one mailbox's pass), counting its progress into `metrics`, the mailbox in the
/// in-flight gauge while it runs, and its outcome when it ends.
pub(super) async fn counted(
    metrics: &Metrics,
    mut progress: broadcast::Receiver<Progress>,
    run: impl Future<Output = MailboxReport>,
) -> MailboxReport {
    metrics.mailbox_started();
    let mut live = Counts::default();
    let mut run = std::pin::pin!(run);
    let report = loop {
        tokio::select! {
            report = &mut run => break report,
            event = progress.recv() => match event {
                Ok(event) => feed(metrics, &mut live, event),
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break (&mut run).await,
            },
        }
    };
    loop {
        match progress.try_recv() {
            Ok(event) => feed(metrics, &mut live, event),
            Err(TryRecvError::Lagged(_)) => continue,
            Err(_) => break,
        }
    }
    reconcile(metrics, &live, &report);
    metrics.mailbox_finished(&report.outcome);
    report
}

fn feed(metrics: &Metrics, live: &mut Counts, event: Progress) {
    if let Progress::Items { delta, .. } = event {
        metrics.count_items(&delta);
        live.add(&delta);
    }
}

/// Adds what the stream missed, and the failures by kind.
fn reconcile(metrics: &Metrics, live: &Counts, report: &MailboxReport) {
    let Some(copy) = &report.copy else {
        return;
    };
    let end = &copy.totals;
    metrics.count_items(&Counts {
        copied: end.copied.saturating_sub(live.copied),
        bytes: end.bytes.saturating_sub(live.bytes),
        already_copied: end.already_copied.saturating_sub(live.already_copied),
        skipped_existing: end.skipped_existing.saturating_sub(live.skipped_existing),
        filtered: end.filtered.saturating_sub(live.filtered),
        ..Counts::default()
    });
    // As many failures as the totals say, each with its issue's kind where there is one.
    let mut left = end.failed;
    for issue in copy.folders.iter().flat_map(|f| &f.failures) {
        if left == 0 {
            break;
        }
        metrics.count_failed(issue.kind, 1);
        left -= 1;
    }
    metrics.count_failed(None, left);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{ErrorKind, FolderReport, ItemIssue, Report};
    use crate::mailbox::{MailboxSpec, Mode};

    #[tokio::test]
    async fn counters_end_equal_to_the_report_even_when_events_were_missed() {
        let metrics = Metrics::new();
        let (tx, rx) = broadcast::channel(4);
        let mut report = MailboxReport::new(Mode::Copy, &MailboxSpec::new("mbox:a", "mbox:b"));
        report.outcome = "items_failed".into();
        let folder = FolderReport {
            counts: Counts {
                copied: 10,
                bytes: 1000,
                already_copied: 3,
                failed: 2,
                ..Counts::default()
            },
            failures: vec![ItemIssue {
                key: "1".into(),
                reason: "bad".into(),
                kind: Some(ErrorKind::Transient),
            }],
            ..FolderReport::default()
        };
        report.copy = Some(Report::finish(vec![folder], 1.0, false));
        let run = async move {
            // Only part of the copy is announced: the rest must come from the report.
            let _ = tx.send(Progress::Items {
                folder: Default::default(),
                delta: Counts {
                    copied: 4,
                    bytes: 400,
                    ..Counts::default()
                },
            });
            report
        };
        let report = counted(&metrics, rx, run).await;
        let s = metrics.snapshot();
        assert_eq!(report.outcome, "items_failed");
        assert_eq!((s.copied_items, s.copied_bytes), (10, 1000));
        assert_eq!(s.skipped, [3, 0, 0]);
        assert_eq!(s.failed, [1, 1, 0]);
        assert_eq!(s.mailboxes_completed, [0, 1, 0, 0]);
        assert_eq!(s.mailboxes_in_flight, 0);
    }
}
