//! The conformance suite against a fresh mbox directory in a temp dir, plain and gzip.

use std::sync::Arc;

use mailferry_mbox::{Layout, Mbox, MboxOptions};
use mailferry_testkit::conformance::Backend;

fn backend(gzip: bool) -> Backend {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Mbox::with_options(
        dir.path().join("mail"),
        MboxOptions {
            layout: Layout::Directory,
            gzip,
            ..MboxOptions::default()
        },
    )
    .expect("open");
    Backend {
        source: Arc::new(store.clone()),
        target: Arc::new(store),
        guard: Box::new(dir),
    }
}

mod plain {
    use super::*;
    mailferry_testkit::conformance_tests!(async { backend(false) });
}

mod gzip {
    use super::*;
    mailferry_testkit::conformance_tests!(async { backend(true) });
}
