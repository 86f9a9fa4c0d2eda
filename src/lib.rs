//! # mailferry
//!
//! Move mailboxes between mail stores — IMAP servers, Maildir, mbox — fast, faithfully and
//! resumably. This facade re-exports the family: [`core`] (items, normalisation, checksums, the
//! [`Source`]/[`Target`] traits, the bounded [`Copier`], verify and sync) and, behind features,
//! each backend and the SQLite state store; and it turns endpoint URLs into backends chosen at
//! run time ([`endpoint`], [`access`]). Embedders depend on this crate; backends implement the
//! traits in `mailferry-core`.

pub mod access;
pub mod endpoint;
pub mod mailbox;
pub mod manifest;

pub use endpoint::{Endpoint, ImapSecurity};
pub use mailferry_core as core;
pub use mailferry_core::mapping;
pub use mailferry_core::{
    CancelToken, Checksum, Copier, CopyOptions, Error, ErrorDomain, ErrorKind, FolderPath, Item,
    Migration, MigrationOptions, Progress, Report, Result, Source, StateStore, Target,
};
#[cfg(feature = "imap")]
pub use mailferry_imap as imap;
#[cfg(feature = "maildir")]
pub use mailferry_maildir as maildir;
#[cfg(feature = "mbox")]
pub use mailferry_mbox as mbox;
#[cfg(feature = "sqlite")]
pub use mailferry_state as state;
