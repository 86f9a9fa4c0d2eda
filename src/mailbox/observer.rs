//! [`PlanObserver`]: how a live view learns of a plan's mailboxes. A trait with two calls rather
//! than a channel of events: the view decides what to keep (and a mailbox's progress stream is
//! handed over at its start, so the runner forwards nothing itself).

use super::{MailboxReport, PreparedMailbox};

/// What a live view of a plan is told as mailboxes start and end (both default to nothing).
/// Calls come from the plan's tasks, on the runtime: keep them short (hand work to a task).
pub trait PlanObserver: Send + Sync {
    /// Mailbox `index` (in the plan's order) was opened and planned and starts running: its
    /// endpoints are in `mailbox.report()`, its size in `mailbox.plan.total_items()`, its
    /// progress in `mailbox.migration.progress()`. Not called for a dry run, nor for a
    /// mailbox that could not be opened.
    fn started(&self, index: usize, mailbox: &PreparedMailbox) {
        let _ = (index, mailbox);
    }

    /// Mailbox `index` ended (whether it ran or not), with its report.
    fn finished(&self, index: usize, report: &MailboxReport) {
        let _ = (index, report);
    }
}
