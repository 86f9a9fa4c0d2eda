//! The conformance suite against the in-memory backend.

use std::sync::Arc;

use mailferry_core::MemoryStore;
use mailferry_testkit::conformance::Backend;

async fn memory_backend() -> Backend {
    let store = MemoryStore::new();
    Backend {
        source: Arc::new(store.clone()),
        target: Arc::new(store),
        guard: Box::new(()),
    }
}

mailferry_testkit::conformance_tests!(memory_backend());
