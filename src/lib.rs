//! # mailferry
//!
//! Move mailboxes between mail stores — IMAP servers, Maildir, mbox — fast, faithfully and
//! resumably. This facade re-exports the family: [`core`] (items, normalisation, checksums, the
//! [`Source`]/[`Target`] traits and the bounded [`Copier`]) and, behind features, each backend.
//! Embedders depend on this crate; backends implement the traits in `mailferry-core`.

pub use mailferry_core as core;
pub use mailferry_core::{
    Checksum, Copier, CopyOptions, Error, ErrorKind, FolderPath, Item, Report, Result, Source,
    StateStore, Target,
};
