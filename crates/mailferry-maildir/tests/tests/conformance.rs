//! The backend conformance suite, once per layout.

use mailferry_maildir::Layout;
use mailferry_testkit::conformance::Backend;

fn backend(layout: Layout) -> Backend {
    let (dir, store) = crate::fresh_store(layout);
    let (source, target) = crate::arcs(&store);
    Backend {
        source,
        target,
        guard: Box::new(dir),
    }
}

mod maildir_plus_plus {
    mailferry_testkit::conformance_tests!(async {
        super::backend(mailferry_maildir::Layout::MaildirPlusPlus)
    });
}

mod fs_layout {
    mailferry_testkit::conformance_tests!(async { super::backend(mailferry_maildir::Layout::Fs) });
}

/// The fixture's tree lands where each layout says, and a reopened store detects its layout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_layout_writes_its_own_tree_and_is_detected_on_reopen() {
    use std::sync::Arc;

    use mailferry_core::MemoryState;
    use mailferry_maildir::{Maildir, MaildirOptions};
    use mailferry_testkit::conformance::{copy_all, fixture};

    for (layout, archive, unicode) in [
        (
            Layout::MaildirPlusPlus,
            ".Archive.2020",
            ".&ANw-n&AO8-c&APg-d&AOk-.Sub folder",
        ),
        (
            Layout::Fs,
            "Archive/2020",
            "&ANw-n&AO8-c&APg-d&AOk-/Sub folder",
        ),
    ] {
        let (dir, store) = crate::fresh_store(layout);
        let report = copy_all(
            Arc::new(fixture()),
            Arc::new(store.clone()),
            Arc::new(MemoryState::new()),
        )
        .await;
        assert_eq!(report.totals.copied, 14);
        let root = store.root();
        for folder in [archive, unicode, ""] {
            assert!(
                root.join(folder).join("cur").is_dir(),
                "{layout:?}: {folder}"
            );
        }
        let reopened = Maildir::open(root, MaildirOptions::default()).expect("reopen");
        assert_eq!(reopened.layout(), layout);
        drop(dir);
    }
}
