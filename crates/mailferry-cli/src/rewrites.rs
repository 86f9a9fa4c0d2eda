//! The warning for a target that changes what it stores, from the mailbox report's
//! `target_rewrites` (the library's post-copy spot check): it says to run `verify --read-back`,
//! which names every affected message. The copy's outcome and exit code are unchanged:
//! everything was delivered, the target chose to store it differently.

use mailferry::core::RewriteCheck;

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
