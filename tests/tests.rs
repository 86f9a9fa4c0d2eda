//! Cross-crate integration tests: one binary, one module per area.

mod big_message;
mod chain;
mod cli;
mod crash;
mod hostile_corpus;
mod hostile_generated;
mod memory_backend;
mod support;
mod torn_mbox;
