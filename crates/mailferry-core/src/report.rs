//! The [`Report`] of a run: per folder and in total, what was seen, copied, skipped and why
//! anything failed. Serialised as the CLI's `--report` JSON, so field names are a contract.

use serde::{Deserialize, Serialize};

use crate::error::ErrorKind;
use crate::folder::FolderPath;
use crate::normalise::Normalisation;

/// Item counts. They add up: `seen = copied + already_copied + skipped_existing + filtered +
/// failed` once a folder is finished.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Items the source listed (or, for a folder skipped as unchanged, its message count).
    pub seen: u64,
    /// Items written to the target in this run.
    pub copied: u64,
    /// Items copied by an earlier run (known from the state).
    pub already_copied: u64,
    /// Items found already in the target (copied by another tool, or a lost state).
    pub skipped_existing: u64,
    /// Items left out by a filter (date, size).
    pub filtered: u64,
    /// Items that failed, each with a reason in the report.
    pub failed: u64,
    /// Bytes written in this run (wire form: what an IMAP target stores).
    pub bytes: u64,
}

impl Counts {
    /// Adds another set of counts.
    pub fn add(&mut self, o: &Counts) {
        self.seen += o.seen;
        self.copied += o.copied;
        self.already_copied += o.already_copied;
        self.skipped_existing += o.skipped_existing;
        self.filtered += o.filtered;
        self.failed += o.failed;
        self.bytes += o.bytes;
    }
}

/// One item that was not copied, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemIssue {
    /// The source's key of the item.
    pub key: String,
    /// What happened, in words a user can act on.
    pub reason: String,
    /// The error kind, where it came from an error.
    pub kind: Option<ErrorKind>,
}

/// The outcome for one folder.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FolderReport {
    /// The source folder.
    pub source: FolderPath,
    /// The target folder it was copied to.
    pub target: FolderPath,
    /// Counts.
    pub counts: Counts,
    /// Items that failed, with reasons.
    pub failures: Vec<ItemIssue>,
    /// Items left out by a filter, with the reason (e.g. the size and the limit).
    pub filtered: Vec<ItemIssue>,
    /// What the pipeline changed in the copied items' bytes (line endings only), added up.
    pub normalisation: Normalisation,
    /// The copied items whose bytes were changed beyond a store's storage form (mixed line
    /// endings unified), each named with what was changed; see [`crate::normalise`].
    #[serde(default)]
    pub changed: Vec<ItemIssue>,
    /// The folder was skipped because its status had not changed since the last pass.
    pub unchanged: bool,
    /// A folder-level failure (the folder could not be created, listing failed).
    pub error: Option<String>,
    /// Seconds spent on this folder.
    pub duration_secs: f64,
    /// When work on this folder began, in seconds since the Unix epoch (absent in reports of
    /// older versions, hence the default). With `duration_secs` it places the folder on a
    /// timeline, from which `mailferry report --html` draws throughput over time, across the
    /// mailboxes of a plan as well: wall-clock time is the one clock they share.
    #[serde(default)]
    pub started_unix: Option<f64>,
}

/// The outcome of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Per folder.
    pub folders: Vec<FolderReport>,
    /// All folders added up.
    pub totals: Counts,
    /// Wall-clock seconds.
    pub duration_secs: f64,
    /// Items copied per second.
    pub items_per_sec: f64,
    /// Bytes copied per second.
    pub bytes_per_sec: f64,
    /// The run was cancelled before it finished.
    pub cancelled: bool,
}

/// Now, in seconds since the Unix epoch ([`FolderReport::started_unix`]); `None` if the system
/// clock is before 1970.
pub fn unix_now() -> Option<f64> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs_f64())
}

impl Report {
    /// Builds totals and rates from the folder reports.
    pub fn finish(folders: Vec<FolderReport>, duration_secs: f64, cancelled: bool) -> Self {
        let mut totals = Counts::default();
        for f in &folders {
            totals.add(&f.counts);
        }
        let secs = duration_secs.max(1e-9);
        Report {
            items_per_sec: totals.copied as f64 / secs,
            bytes_per_sec: totals.bytes as f64 / secs,
            folders,
            totals,
            duration_secs,
            cancelled,
        }
    }

    /// Whether every item was accounted for without failure and no folder failed.
    pub fn is_success(&self) -> bool {
        self.totals.failed == 0 && self.folders.iter().all(|f| f.error.is_none()) && !self.cancelled
    }
}
