//! The engine: how a run over one mailbox is put together, as library code that the command
//! line, an embedding product and a fleet worker all call the same way.
//!
//! A [`Migration`] owns a mailbox's source, target and state, its name (which keys its state),
//! its [`MigrationOptions`] and the layer stack built from them, and offers [`Migration::plan`],
//! [`Migration::copy`], [`Migration::sync`] and [`Migration::verify`], all reporting to the same
//! progress stream and stopped by the same [`CancelToken`](crate::CancelToken). [`many`] runs many mailboxes with one
//! memory budget between them.
//!
//! ```
//! use std::sync::Arc;
//! use bytes::Bytes;
//! use mailferry_core::{Flags, FolderPath, MemoryState, MemoryStore, Migration, MigrationOptions};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let source = MemoryStore::new();
//! source.insert(&FolderPath::inbox(), Bytes::from_static(b"Subject: hi\r\n\r\nhello\r\n"), Flags::default(), None);
//! let target = MemoryStore::new();
//! let migration = Migration::new(
//!     "alice",
//!     Arc::new(source),
//!     Arc::new(target.clone()),
//!     Arc::new(MemoryState::new()),
//!     MigrationOptions::default(),
//! )?;
//! let report = migration.copy().await?;
//! assert_eq!(report.totals.copied, 1);
//! assert_eq!(target.messages(&FolderPath::inbox()).len(), 1);
//! # Ok::<(), mailferry_core::Error>(())
//! # }).unwrap();
//! ```

pub mod many;
mod migration;
pub mod options;

pub use migration::{FolderPlan, Migration, SyncReport};
pub use options::{ByteSize, FilterOptions, MappingOptions, MigrationOptions, parse_day};
