//! Normalise + checksum + header facts (`CanonicalItem::prepare`) over a generated realistic
//! corpus, on one core and on the rayon pool, in items/s and bytes/s, beside a floor measured in
//! the same run (BLAKE3 alone over the same bytes).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mailferry_core::{CanonicalItem, Item, ItemMeta, SourceKey};
use mailferry_testkit::corpus::{CorpusSpec, SizeMix};
use rayon::prelude::*;

fn items() -> Vec<Item> {
    CorpusSpec::new(400, SizeMix::realistic())
        .with_quirks()
        .generate()
        .enumerate()
        .map(|(i, m)| Item {
            folder: m.folder,
            meta: ItemMeta {
                key: SourceKey(i.to_string()),
                size: m.body.len() as u64,
                flags: m.flags,
                internal_date: Some(m.internal_date),
            },
            body: m.body,
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let items = items();
    let bytes: u64 = items.iter().map(|i| i.body.len() as u64).sum();
    for (unit, throughput) in [
        ("items", Throughput::Elements(items.len() as u64)),
        ("bytes", Throughput::Bytes(bytes)),
    ] {
        let mut group = c.benchmark_group(format!("normalise_checksum/{unit}"));
        group.throughput(throughput);
        group.sample_size(10);
        group.bench_function("one_core", |b| {
            b.iter(|| {
                for item in &items {
                    let prepared = CanonicalItem::prepare(item.clone());
                    std::hint::black_box(prepared.ok());
                }
            })
        });
        // The floor: BLAKE3 alone over the same bytes, on one core. prepare/floor is the price of
        // canonicalisation and header facts on top of the checksum we need anyway.
        group.bench_function("floor_blake3_one_core", |b| {
            b.iter(|| {
                for item in &items {
                    std::hint::black_box(blake3::hash(&item.body));
                }
            })
        });
        group.bench_function("all_cores", |b| {
            b.iter(|| {
                items.par_iter().for_each(|item| {
                    std::hint::black_box(CanonicalItem::prepare(item.clone()).ok());
                })
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
