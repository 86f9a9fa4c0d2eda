//! # mailferry-testkit
//!
//! Test-only helpers shared by every crate's tests, benches and examples:
//! - [`conformance`]: one set of scenarios every backend must pass, run through the real
//!   [`mailferry_core::Copier`] (ripgrep-style: a macro instantiates the suite per backend);
//! - [`corpus`]: a deterministic generator of realistic mailboxes (sizes, attachments, flags,
//!   awkward cases), so tests and benches need no checked-in mail;
//! - [`faulty`]: a hook that makes any backend fail chosen calls on cue;
//! - [`rss`]: the process's peak resident memory, for memory checks;
//! - [`stores`]: a lazily generated source and a discarding target, for benches;
//! - [`dovecot`]: a real, self-contained Dovecot per test (own config, users, CA, ports), with a
//!   fast `fill` that writes straight into its Maildir;
//! - [`process`]: a server's processes seen from outside (list, signal, wait), to stall a
//!   server on purpose;
//! - [`cyrus`]: a real, self-contained Cyrus IMAP per test (the second server), filled over
//!   IMAP;
//! - [`server`]: what the IMAP suites need from either server, so one test runs against both;
//! - [`proxy`]: a TCP proxy that adds latency without throttling throughput and cuts
//!   connections at chosen byte offsets, for latency and fault-injection tests.

pub mod conformance;
pub mod contents;
pub mod corpus;
pub mod cyrus;
pub mod dovecot;
pub mod faulty;
pub mod process;
pub mod proxy;
pub mod rss;
pub mod server;
pub mod stores;

pub use cyrus::{Cyrus, CyrusOptions, require_cyrus};
pub use dovecot::{Dovecot, DovecotOptions, require_dovecot};
pub use proxy::{Proxy, ProxyOptions};
pub use server::{ImapServer, ServerKind};
