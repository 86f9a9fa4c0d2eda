//! # mailferry-core
//!
//! The parts of mailferry that know no network and no file format: the item model
//! ([`Item`], [`CanonicalItem`]), faithful normalisation ([`normalise`]), [`Checksum`]s, the
//! folder model ([`FolderPath`]), the backend traits ([`Source`], [`Target`]), the state-store
//! trait ([`StateStore`]), the bounded streaming [`Copier`] and its [`Report`].
//!
//! Design decisions, and why:
//! - **Canonical form = CRLF, nothing else changed.** Checksums are taken over it, so the same
//!   message has the same checksum in every store; normalisation never re-encodes MIME.
//! - **Headers only.** Header facts come from mail-parser's header parse of the header block:
//!   on messages with attachments that is about 100x cheaper than a full parse.
//! - **Bounded by items and bytes.** Peak memory is set by the copier's budget, not by the
//!   mailbox; a message larger than the budget is admitted alone.
//! - **CPU work on rayon**, never on the async executor's threads.
//! - **Exactly-once by state + resolution**: pending before append, done after; uncertain
//!   appends are looked up in the target before anything is written again.
//!
//! ```
//! use std::sync::Arc;
//! use bytes::Bytes;
//! use mailferry_core::{Copier, CopyOptions, Flags, FolderPath, MemoryState, MemoryStore};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let source = MemoryStore::new();
//! source.insert(&FolderPath::inbox(), Bytes::from_static(b"Subject: hi\n\nhello\n"), Flags::default(), None);
//! let target = MemoryStore::new();
//! let copier = Copier::new(
//!     Arc::new(source),
//!     Arc::new(target.clone()),
//!     Arc::new(MemoryState::new()),
//!     CopyOptions::default(),
//! );
//! let report = copier.run(copier.identity_plan().await?).await?;
//! assert_eq!(report.totals.copied, 1);
//! assert_eq!(&target.messages(&FolderPath::inbox())[&1].body[..], b"Subject: hi\r\n\r\nhello\r\n");
//! # Ok::<(), mailferry_core::Error>(())
//! # }).unwrap();
//! ```

pub mod backend;
pub mod checksum;
pub mod copier;
pub mod date;
pub mod engine;
pub mod error;
pub mod flags;
pub mod folder;
pub mod headers;
pub mod item;
pub mod key;
pub mod layers;
pub mod mapping;
pub mod memory;
pub mod normalise;
pub mod progress;
pub mod report;
pub mod state;
pub mod sync;
pub mod utf7;
pub mod verify;

pub use backend::{
    AppendOutcome, BoxFuture, BoxStream, Capabilities, Checkpoint, ExistingItem, Source, Target,
};
pub use checksum::Checksum;
pub use copier::{Budget as MemoryBudget, CancelToken, Copier, CopyOptions, FolderJob, ItemFilter};
pub use date::InternalDate;
pub use engine::{FolderPlan, Migration, MigrationOptions, SyncReport};
pub use error::{Error, ErrorDomain, ErrorKind, ErrorStatus, Result};
pub use flags::Flags;
pub use folder::{Folder, FolderPath, FolderStatus, SpecialUse};
pub use headers::HeaderFacts;
pub use item::{CanonicalItem, Item, ItemMeta, SourceKey, TargetKey};
pub use layers::{Hooked, HookedSource, LayerOptions, LayerStack, SourceHook, TargetHook};
pub use mapping::{FolderMapper, MappingConflict, MappingPlan, MappingRules, PlannedJob};
pub use memory::{MemoryStore, StoredMessage};
pub use normalise::Normalisation;
pub use progress::{Progress, ProgressSender, RunControl};
pub use report::{Counts, FolderReport, ItemIssue, Report};
pub use state::{FolderScope, ItemRecord, ItemStatus, MemoryState, StateStore, Suspect};
pub use sync::{FolderSync, SyncOptions, sync_changes, sync_changes_with};
pub use verify::{
    RewriteCheck, Rewritten, Verification, VerifyOptions, spot_check, verify, verify_with,
};

// Re-exported so backends and embedders use the same versions.
pub use bytes;
pub use futures_util;
