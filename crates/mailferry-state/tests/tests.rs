//! mailferry-state's integration tests: one binary, one module per area.

mod behaviour;
mod copier;
mod file;
