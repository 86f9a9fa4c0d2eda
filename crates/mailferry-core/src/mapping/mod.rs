//! Folder mapping: which target folder each source folder is copied to, decided before anything
//! is copied so a dry run can show it. A [`FolderMapper`] turns the source's and the target's
//! folder lists into a [`MappingPlan`] in three steps, in this order:
//!
//! 1. **Special use.** A folder with a role (`\Sent`, `\Drafts`, `\Trash`, `\Junk`, `\Archive`,
//!    `\All`, `\Flagged`) goes to the target's folder with the same role, else to a default name
//!    (`Sent`, `Drafts`, …) created with the role. When the source reports no roles at all, roles
//!    are guessed from well-known names (`Sent Items`, `[Gmail]/Sent Mail`, `Gesendet`,
//!    `Envoyés`, …); likewise the target's folders when it reports none. Subfolders follow their
//!    special-use parent (`Sent Items/2019` → `Sent/2019`).
//! 2. **User rules**, on the path as step 1 left it: an exact rename (`OLD=NEW`, matched against
//!    that path or, failing that, the source's own name), else the regex renames in order, each
//!    on the previous one's output. Include/exclude patterns select source folders by their own
//!    `/`-joined names; exclude wins; no include pattern means include all.
//! 3. **Collisions.** Two source folders landing on one target folder — exactly, after composing
//!    common Latin accents (NFC for Latin-1/Extended-A), or case-insensitively on a target that
//!    folds case — are a [`MappingConflict`]; unless `merge` was asked, the later one is excluded
//!    with the reason.
//!
//! The result is a delimiter-free [`FolderPath`](crate::FolderPath): delimiters, encodings and escaping are the
//! target backend's job. INBOX is always `INBOX`, whatever its case in the source. Every source
//! folder ends up either in a job or in `excluded` with a reason: nothing is dropped silently.
//!
//! The module's rooms: `rules` (what the user asked: renames, regexes, include/exclude),
//! [`roles`] (special use: the one table of well-known names every backend infers roles from),
//! `plan` (the mapper and the plan it makes, with collisions and the dry-run table).

mod plan;
pub mod roles;
mod rules;

pub use plan::{FolderMapper, MappingConflict, MappingPlan, PlannedJob};
pub use roles::{role_and_rank, role_from_name};
pub use rules::{MappingRules, parse_rename};

#[cfg(test)]
use crate::folder::{Folder, FolderPath, SpecialUse};

#[cfg(test)]
mod tests;
