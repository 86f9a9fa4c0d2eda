//! The copier between local stores on real files: mbox directory → Maildir and Maildir++ →
//! Maildir++, in items/s and bytes/s (canonical bytes), on a few hundred generated messages
//! (typical mix, quirks on, three folders incl. a non-ASCII one) in a temp dir.
//!
//! Each iteration copies into a fresh, empty Maildir (created in `iter_batched`'s setup and
//! removed after timing), with a fresh in-memory state, so every sample is a first copy. The
//! target keeps its default durability (fsync per batch): that is what a user's copy pays, so
//! the figure includes the disk's sync latency and varies with it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use mailferry_core::normalise::canonicalise;
use mailferry_core::{Copier, CopyOptions, FolderPath, MemoryState, MemoryStore, Source, Target};
use mailferry_maildir::{Maildir, MaildirOptions};
use mailferry_mbox::{Layout, Mbox, MboxOptions};
use mailferry_testkit::conformance::copy_all;
use mailferry_testkit::corpus::{CorpusSpec, SizeMix};
use tokio::runtime::Runtime;

/// Messages per iteration.
const MESSAGES: usize = 300;

/// The generated corpus in memory, with its message count and canonical bytes.
fn corpus() -> (MemoryStore, u64, u64) {
    let spec = CorpusSpec::new(MESSAGES, SizeMix::typical())
        .in_folders(vec![
            FolderPath::inbox(),
            FolderPath::new(["Archive", "2021"]),
            FolderPath::new(["Projekte", "Übersicht"]),
        ])
        .with_quirks();
    let store = MemoryStore::new();
    for folder in &spec.folders {
        store.create_folder(folder, None);
    }
    let (mut count, mut bytes) = (0, 0);
    for m in spec.generate() {
        count += 1;
        bytes += canonicalise(m.body.clone()).0.len() as u64;
        store.insert(&m.folder, m.body, m.flags, Some(m.internal_date));
    }
    (store, count, bytes)
}

/// Copies `source` into a new Maildir at `target` and checks that everything arrived.
fn copy_into(runtime: &Runtime, source: Arc<dyn Source>, target: &Path, expected: u64) {
    let target = Maildir::create(target, MaildirOptions::default()).expect("target Maildir");
    runtime.block_on(async {
        let copier = Copier::new(
            source,
            Arc::new(target),
            Arc::new(MemoryState::new()),
            CopyOptions::default(),
        );
        let plan = copier.identity_plan().await.expect("plan");
        let report = copier.run(plan).await.expect("copy");
        assert_eq!(report.totals.copied, expected);
        assert_eq!(report.totals.failed, 0);
    });
}

fn bench(c: &mut Criterion) {
    let runtime = Runtime::new().expect("tokio runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let (memory, count, bytes) = corpus();
    let maildir = Maildir::create(dir.path().join("src-maildir"), MaildirOptions::default())
        .expect("source Maildir");
    let mbox = Mbox::with_options(
        dir.path().join("src-mbox"),
        MboxOptions {
            layout: Layout::Directory,
            ..MboxOptions::default()
        },
    )
    .expect("source mbox");
    let targets: [Arc<dyn Target>; 2] = [Arc::new(mbox.clone()), Arc::new(maildir.clone())];
    for target in targets {
        let report = runtime.block_on(copy_all(
            Arc::new(memory.clone()),
            target,
            Arc::new(MemoryState::new()),
        ));
        assert_eq!(report.totals.copied, count, "writing a bench source");
    }
    let sources: [(&str, Arc<dyn Source>); 2] = [
        ("mbox_to_maildir", Arc::new(mbox)),
        ("maildir_to_maildir", Arc::new(maildir)),
    ];
    for (unit, throughput) in [
        ("items", Throughput::Elements(count)),
        ("bytes", Throughput::Bytes(bytes)),
    ] {
        let mut group = c.benchmark_group(format!("local_stores/{unit}"));
        group.throughput(throughput);
        group.sample_size(10);
        // An iteration takes 0.3–1 s (fsyncs included): flat sampling (the same iteration count
        // per sample) keeps ten samples near ten iterations instead of linear sampling's 55.
        group.sampling_mode(SamplingMode::Flat);
        group.measurement_time(Duration::from_secs(10));
        for (name, source) in &sources {
            group.bench_function(format!("{name}_{MESSAGES}"), |b| {
                b.iter_batched(
                    || tempfile::tempdir_in(dir.path()).expect("target dir"),
                    |target| {
                        copy_into(
                            &runtime,
                            Arc::clone(source),
                            &target.path().join("t"),
                            count,
                        );
                        // Returned, so the tree is removed after the timed part.
                        target
                    },
                    BatchSize::PerIteration,
                )
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
