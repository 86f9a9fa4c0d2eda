//! # mailferry-mbox
//!
//! mbox files as a mailferry [`Source`](mailferry_core::Source) and
//! [`Target`](mailferry_core::Target): one file (plain or gzip) holding one folder, or a
//! Thunderbird-style directory tree of them (`Inbox`, `Sent`, `Archive.sbd/2020`).
//!
//! Design decisions, and why:
//! - **Faithful by construction.** mboxrd quoting is reversible, so the writer always uses it;
//!   flags travel in a metadata block that mailferry writes as the first three header lines and
//!   the reader removes only when it is byte-for-byte its own ([`parse`]). A message's own
//!   `Status:` headers are never touched, so messages survive mbox → Maildir → mbox byte for byte
//!   (lone CRs included: see the writer's LF storage form in `write.rs`).
//!   Even a message without a final newline round-trips ([`write`](mod@write)).
//! - **Streaming, bounded memory.** Files are read in one forward pass with a 256 KiB buffer on
//!   tokio's blocking pool, and results flow through a bounded channel ([`backend`]). Listing
//!   keeps no bodies; fetching holds one message at a time per reader.
//! - **Keys are offsets.** A message's key is the (decompressed) offset of its `From ` line: a
//!   seek away for plain files, one forward pass for gzip. The validity token comes from the
//!   file's identity and first line, the status from its size and mtime, so an unchanged file
//!   is skipped without reading it ([`store`]).
//! - **Appends only, durable.** A target appends (a new gzip member for `.gz`), never
//!   truncates existing data, fsyncs once per batch, and serialises appends per file (a tokio
//!   mutex inside the process, `flock` across processes). A batch left half-written by a
//!   process that died is cut back by the next open of the file ([`journal`]).
//!
//! Known limit: a file rewritten *in place* after its first message (mutt does this when it
//! deletes mail) keeps its validity token; offsets listed before may then name other messages.
//! Fetch checks that a `From ` line is still at each offset, but the copier skips keys it has
//! recorded as done without asking the source, so such a rewrite between two runs can hide a
//! new message that lands on an old offset.
//!
//! ```no_run
//! use std::sync::Arc;
//! use mailferry_core::{Copier, CopyOptions, MemoryState, MemoryStore};
//! use mailferry_mbox::Mbox;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let source = Mbox::open("/home/ann/.thunderbird/x.default/Mail/Local Folders")?;
//! let target = MemoryStore::new();
//! let copier = Copier::new(
//!     Arc::new(source),
//!     Arc::new(target),
//!     Arc::new(MemoryState::new()),
//!     CopyOptions::default(),
//! );
//! let report = copier.run(copier.identity_plan().await?).await?;
//! println!("{} messages copied", report.totals.copied);
//! # Ok::<(), mailferry_core::Error>(())
//! # }).unwrap();
//! ```

pub mod backend;
pub mod input;
pub mod journal;
pub mod layout;
pub mod parse;
pub mod scan;
pub mod store;
pub mod takeout;
pub mod write;

pub use parse::Variant;
pub use store::{Layout, Mbox, MboxOptions};
