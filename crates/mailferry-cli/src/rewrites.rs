//! The post-copy check for a target that changes what it stores: a sample of what this run
//! wrote is read back from both sides ([`spot_check`]); a difference is a warning in the summary
//! and in the report (`target_rewrites`), with the advice to run `verify --read-back`, which
//! names every affected message. The copy's outcome and exit code are unchanged: everything was
//! delivered, the target chose to store it differently.

use mailferry::access::Store;
use mailferry::core::{FolderJob, Report, RewriteCheck, StateStore, spot_check};

/// Items read back per folder written in this run.
pub const PER_FOLDER: usize = 16;

/// Runs the check over the folders `copied` wrote to; `None` if nothing was written, or if the
/// check itself failed (said on stderr: the copy stands, only the check is missing).
pub async fn check(
    source: &Store,
    target: &Store,
    state: &dyn StateStore,
    jobs: &[FolderJob],
    migration: &str,
    copied: &Report,
) -> Option<RewriteCheck> {
    let written: Vec<FolderJob> = jobs
        .iter()
        .filter(|j| {
            copied
                .folders
                .iter()
                .any(|f| f.source == j.source.path && f.counts.copied > 0)
        })
        .cloned()
        .collect();
    if written.is_empty() {
        return None;
    }
    match spot_check(
        &*source.source,
        &*target.target,
        state,
        &written,
        migration,
        PER_FOLDER,
    )
    .await
    {
        Ok(check) => Some(check),
        Err(e) => {
            eprintln!(
                "mailferry: warning: could not read back a sample to check that the target \
                 stored messages unchanged: {e}; run `mailferry verify --read-back` to check"
            );
            None
        }
    }
}

/// The summary's warning, if the target rewrote anything.
pub fn warning(check: &RewriteCheck, source: &str, target: &str) -> Option<String> {
    if !check.target_rewrites() {
        return None;
    }
    let first = &check.rewritten[0];
    Some(format!(
        "warning: the target stored {} of {} messages read back after the copy differently \
         from what was sent (e.g. {} {}: {}). It changes what it stores (Cyrus, for one, \
         replaces 8-bit header bytes with X); more messages may be affected. Run \
         `mailferry verify --read-back {source} {target}` to find every one.",
        check.rewritten.len(),
        check.compared,
        first.folder,
        first.key,
        first.detail
    ))
}
