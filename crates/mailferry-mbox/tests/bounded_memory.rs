//! A multi-hundred-MB mbox is listed and fetched in bounded memory. Its own test binary, so no
//! other test's allocations move the process's peak RSS.

use std::io::{BufWriter, Write};
use std::time::Instant;

use futures_util::StreamExt;
use mailferry_core::{CanonicalItem, FolderPath, Item, ItemMeta, Source, SourceKey};
use mailferry_mbox::{Mbox, write};
use mailferry_testkit::corpus::{CorpusSpec, SizeMix};
use mailferry_testkit::rss::{current_rss_bytes, peak_rss_bytes};

/// File size to generate; 300 MB keeps the debug-build test under about 30 s on two cores.
const TARGET_BYTES: u64 = 300 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_mbox_is_listed_and_fetched_in_bounded_memory() {
    let (Some(start_rss), Some(_)) = (current_rss_bytes(), peak_rss_bytes()) else {
        eprintln!("note: no /proc here; memory test skipped");
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("big.mbox");
    let started = Instant::now();
    let mut out = BufWriter::new(std::fs::File::create(&path).expect("create"));
    let mut written = 0u64;
    let mut count = 0u64;
    let mut buf = Vec::new();
    for m in CorpusSpec::new(usize::MAX, SizeMix::typical())
        .with_quirks()
        .generate()
    {
        let item = CanonicalItem::prepare(Item {
            folder: m.folder,
            meta: ItemMeta {
                key: SourceKey(count.to_string()),
                size: m.body.len() as u64,
                flags: m.flags,
                internal_date: Some(m.internal_date),
            },
            body: m.body,
        })
        .expect("prepare");
        buf.clear();
        write::render(&item, write::now(), &mut buf).expect("render");
        out.write_all(&buf).expect("write");
        written += buf.len() as u64;
        count += 1;
        if written >= TARGET_BYTES {
            break;
        }
    }
    out.flush().expect("flush");
    drop(out);
    let generated = started.elapsed();

    let store = Mbox::open(&path).expect("open");
    let inbox = FolderPath::inbox();
    let mut metas = store.list_items(&inbox, None);
    let mut chunk = Vec::new();
    let mut listed = 0u64;
    let mut fetched = 0u64;
    let mut fetched_bytes = 0u64;
    let mut listed_bytes = 0u64;
    loop {
        let next = metas.next().await.map(|m| m.expect("list"));
        let end = next.is_none();
        if let Some(meta) = next {
            listed += 1;
            listed_bytes += meta.size;
            chunk.push(meta);
        }
        if chunk.len() >= 512 || (end && !chunk.is_empty()) {
            let mut items = store.fetch(&inbox, std::mem::take(&mut chunk));
            while let Some(item) = items.next().await {
                let item = item.expect("fetch");
                assert_eq!(item.body.len() as u64, item.meta.size);
                fetched += 1;
                fetched_bytes += item.body.len() as u64;
            }
        }
        if end {
            break;
        }
    }
    let peak = peak_rss_bytes().expect("peak rss");
    let growth = peak.saturating_sub(start_rss);
    eprintln!(
        "{count} messages, {} MB written in {:.1?}; listed+fetched in {:.1?}; peak RSS growth {} MB",
        written >> 20,
        generated,
        started.elapsed() - generated,
        growth >> 20
    );
    assert_eq!((listed, fetched), (count, count));
    assert_eq!(listed_bytes, fetched_bytes);
    assert!(
        growth < 96 << 20 && growth < written / 3,
        "peak RSS grew by {} MB reading a {} MB mbox",
        growth >> 20,
        written >> 20
    );
}
