//! Integration tests live in tests.rs and its modules.
