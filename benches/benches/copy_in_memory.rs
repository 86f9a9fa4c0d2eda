//! The whole copier between in-memory stores (a memory source, a discarding target): the
//! pipeline's own cost per item, in items/s and bytes/s.

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mailferry_core::{Copier, CopyOptions, FolderPath, MemoryState, MemoryStore};
use mailferry_testkit::corpus::{CorpusSpec, SizeMix};
use mailferry_testkit::stores::NullTarget;

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let source = MemoryStore::new();
    let spec = CorpusSpec::new(2_000, SizeMix::realistic()).with_quirks();
    let mut bytes = 0;
    for m in spec.generate() {
        bytes += m.body.len() as u64;
        source.insert(&FolderPath::inbox(), m.body, m.flags, Some(m.internal_date));
    }
    for (unit, throughput) in [
        ("items", Throughput::Elements(spec.count as u64)),
        ("bytes", Throughput::Bytes(bytes)),
    ] {
        let mut group = c.benchmark_group(format!("copy_in_memory/{unit}"));
        group.throughput(throughput);
        group.sample_size(10);
        group.bench_function("realistic_2000", |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let copier = Copier::new(
                        Arc::new(source.clone()),
                        Arc::new(NullTarget::new()),
                        Arc::new(MemoryState::new()),
                        CopyOptions::default(),
                    );
                    let plan = copier.identity_plan().await.expect("plan");
                    let report = copier.run(plan).await.expect("copy");
                    assert_eq!(report.totals.copied, spec.count as u64);
                })
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
