//! # mailferry-testkit
//!
//! Test-only helpers shared by every crate's tests, benches and examples:
//! - [`conformance`]: one set of scenarios every backend must pass, run through the real
//!   [`mailferry_core::Copier`] (ripgrep-style: a macro instantiates the suite per backend);
//! - [`corpus`]: a deterministic generator of realistic mailboxes (sizes, attachments, flags,
//!   awkward cases), so tests and benches need no checked-in mail;
//! - [`rss`]: the process's peak resident memory, for memory checks;
//! - [`stores`]: a lazily generated source and a discarding target, for benches.

pub mod conformance;
pub mod corpus;
pub mod rss;
pub mod stores;
