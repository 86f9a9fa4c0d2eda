//! Cross-crate integration tests: one binary, one module per area.

mod memory_backend;
