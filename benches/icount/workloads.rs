//! The three measured paths. Each has a fixed, deterministic workload (the testkit corpus with
//! its default seed) built *outside* the measured function, and one `#[inline(never)]` function
//! whose name starts with `icount_measure_`: `run.sh` hands that name to callgrind's
//! `--toggle-collect`, so only the work inside it is counted (setup and teardown are not).
//!
//! The copier path runs on one thread (a `current_thread` runtime that also runs the rayon jobs,
//! see [`copier`]): with a second thread the interleaving, hence the batching and the count,
//! varied by ±3% from run to run under callgrind; on one thread it repeats. `run.sh` leaves
//! `CanonicalItem::prepare` out of that count (the `prepare` path measures it), so `copier` is
//! the pipeline's own overhead per item. What it does not see is the cross-thread hand-off to a
//! rayon worker (a queue push and a futex wake instead of a local push).

use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use mailferry_core::{
    CanonicalItem, Copier, CopyOptions, Flags, FolderPath, InternalDate, Item, ItemMeta,
    MemoryState, MemoryStore, Report, SourceKey,
};
use mailferry_imap::fuzzing::{Naming, uid_set};
use mailferry_testkit::corpus::{CorpusSpec, SizeMix};
use mailferry_testkit::stores::NullTarget;
use serde::Serialize;

/// What a workload processed, so instructions can be given per item and per KB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Workload {
    /// Items processed inside the measured function.
    pub items: u64,
    /// Bytes of message data processed (raw, as the source holds them).
    pub bytes: u64,
}

/// Items of the prepare path: realistic sizes (10% attachments, 1% of 5–15 MB) with quirks, so
/// one in ten is LF-only and gets copied by the normaliser.
const PREPARE_ITEMS: usize = 200;
/// Items of the copier path: small messages, so the per-item overhead is not hidden by bytes.
const COPIER_ITEMS: usize = 2_000;
/// Items of the IMAP syntax path.
const IMAP_ITEMS: usize = 2_000;
/// Items per APPEND batch (the copier's default `batch_items`).
const IMAP_BATCH: usize = 64;

fn item_of(
    index: usize,
    folder: FolderPath,
    body: Bytes,
    flags: Flags,
    date: InternalDate,
) -> Item {
    Item {
        folder,
        meta: ItemMeta {
            key: SourceKey(index.to_string()),
            size: body.len() as u64,
            flags,
            internal_date: Some(date),
        },
        body,
    }
}

/// Runs the `prepare` path: normalise + checksum + header facts per item.
pub fn prepare() -> Workload {
    let items: Vec<Item> = CorpusSpec::new(PREPARE_ITEMS, SizeMix::realistic())
        .with_quirks()
        .generate()
        .enumerate()
        .map(|(i, m)| item_of(i, m.folder, m.body, m.flags, m.internal_date))
        .collect();
    let workload = Workload {
        items: items.len() as u64,
        bytes: items.iter().map(|i| i.body.len() as u64).sum(),
    };
    let prepared = icount_measure_prepare(black_box(items));
    // Nothing in the generated corpus is refused; a failure here means the workload changed.
    assert_eq!(prepared, workload.items, "every generated item prepares");
    workload
}

#[inline(never)]
fn icount_measure_prepare(items: Vec<Item>) -> u64 {
    let mut ok = 0;
    for item in items {
        if let Ok(canonical) = CanonicalItem::prepare(item) {
            black_box(&canonical);
            ok += 1;
        }
    }
    ok
}

/// Runs the `copier` path: a whole copy of small messages from a [`MemoryStore`] to a
/// [`NullTarget`], all on the calling thread.
pub fn copier() -> Workload {
    let source = MemoryStore::new();
    let mut workload = Workload { items: 0, bytes: 0 };
    for m in CorpusSpec::new(COPIER_ITEMS, SizeMix::small())
        .with_quirks()
        .generate()
    {
        workload.items += 1;
        workload.bytes += m.body.len() as u64;
        source.insert(&FolderPath::inbox(), m.body, m.flags, Some(m.internal_date));
    }
    // Determinism: callgrind counts repeat only if the interleaving of threads does. So the
    // measuring thread is the rayon pool's only thread, and the runtime runs the rayon jobs it
    // queued whenever it is about to park, i.e. when every task waits on a prepared item.
    // Everything happens on one thread in one order; `run.sh` toggles collection off inside
    // `CanonicalItem::prepare`, which the `prepare` path measures on its own.
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .use_current_thread()
        .build_global()
        .expect("the global rayon pool is configured once, before any use");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .on_thread_park(|| while matches!(rayon::yield_local(), Some(rayon::Yield::Executed)) {})
        .build()
        .expect("a tokio runtime");
    let options = CopyOptions {
        // The default depends on the number of CPUs; the count must not.
        prepare_depth: 4,
        // A batch waits for more items this long (wall clock); the count must not depend on
        // how slow callgrind or the machine is, so it never times out here. With an in-memory
        // source that is also what the default does: items come faster than 50 ms apart.
        batch_linger: std::time::Duration::from_secs(3600),
        ..CopyOptions::default()
    };
    let target = NullTarget::new();
    let report = icount_measure_copier(&runtime, &source, &target, options);
    assert_eq!(report.totals.copied, workload.items, "every item is copied");
    assert_eq!(target.items(), workload.items, "the target saw every item");
    workload
}

#[inline(never)]
fn icount_measure_copier(
    runtime: &tokio::runtime::Runtime,
    source: &MemoryStore,
    target: &NullTarget,
    options: CopyOptions,
) -> Report {
    runtime.block_on(async {
        let copier = Copier::new(
            Arc::new(source.clone()),
            Arc::new(target.clone()),
            Arc::new(MemoryState::new()),
            options,
        );
        let plan = copier
            .identity_plan()
            .await
            .expect("plan of a memory store");
        copier.run(plan).await.expect("an in-memory copy succeeds")
    })
}

/// What the IMAP path formats and parses for one message: the APPEND head (flag list, date,
/// literal length) and, the other way, the FLAGS and INTERNALDATE of a FETCH response.
struct ImapMessage {
    flags: Flags,
    date: InternalDate,
    len: usize,
    /// FLAGS as the server sends them (the tokens imap-proto hands over).
    flag_tokens: Vec<String>,
    /// INTERNALDATE as the server sends it.
    date_text: String,
}

/// Runs the `imap` path: mailferry-imap's public folder naming and UID-set formatting, and the
/// public pieces its APPEND formatting and FETCH parsing are built from (those functions are
/// crate-private; see README.md).
pub fn imap() -> Workload {
    let messages: Vec<ImapMessage> = CorpusSpec::new(IMAP_ITEMS, SizeMix::small())
        .with_quirks()
        .generate()
        .map(|m| ImapMessage {
            flag_tokens: m
                .flags
                .imap_tokens()
                .into_iter()
                .map(str::to_string)
                .collect(),
            date_text: m.internal_date.to_imap(),
            flags: m.flags,
            date: m.internal_date,
            len: m.body.len(),
        })
        .collect();
    let folders = [
        FolderPath::inbox(),
        FolderPath::new(["Archive", "2021"]),
        FolderPath::new(["Projekte", "Übersicht"]),
        FolderPath::new(["Lists", "rust-users"]),
    ];
    let workload = Workload {
        items: messages.len() as u64,
        bytes: messages.iter().map(|m| m.len as u64).sum(),
    };
    let naming = Naming {
        delimiter: Some('/'),
        ..Naming::default()
    };
    let checked = icount_measure_imap(black_box(&messages), black_box(&folders), &naming);
    assert_eq!(checked, workload.items, "every message round-trips");
    workload
}

#[inline(never)]
fn icount_measure_imap(messages: &[ImapMessage], folders: &[FolderPath], naming: &Naming) -> u64 {
    let mut round_tripped = 0;
    for (b, batch) in messages.chunks(IMAP_BATCH).enumerate() {
        // The mailbox argument, through mailferry-imap's own folder naming (modified UTF-7).
        let Ok(name) = naming.encode(&folders[b % folders.len()]) else {
            continue;
        };
        let mut line = format!("APPEND \"{name}\"");
        // The UID set of the batch's FETCH, through mailferry-imap's own compression; every
        // seventh UID is missing, as after deletions.
        let first = b * IMAP_BATCH;
        let uids: Vec<u32> = (first..first + batch.len())
            .filter(|i| i % 7 != 3)
            .map(|i| i as u32 + 1)
            .collect();
        black_box(uid_set(&uids));
        for m in batch {
            // What append.rs's message_head does: keyword check, flag list, date, literal.
            let atoms = m.flags.keywords.iter().all(|k| {
                k.bytes()
                    .all(|c| c > 0x20 && c < 0x7f && !b"(){%*\"\\]".contains(&c))
            });
            let head = format!(" ({}) \"{}\" {{{}+}}", m.flags, m.date.to_imap(), m.len);
            line.push_str(&head);
            // What fetch.rs's parse_fetch does with the attributes imap-proto returns.
            let flags = Flags::from_imap(m.flag_tokens.iter().map(String::as_str));
            let date = InternalDate::parse_imap(&m.date_text);
            if atoms && flags == m.flags && date == Some(m.date) {
                round_tripped += 1;
            }
        }
        black_box(&line);
    }
    round_tripped
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test for both: `copier` makes the calling thread the global rayon pool's only thread,
    // which can be done once per process.
    #[test]
    fn workloads_process_every_item_they_report() {
        let imap = imap();
        assert_eq!(imap.items, IMAP_ITEMS as u64);
        let copier = copier();
        assert_eq!(copier.items, COPIER_ITEMS as u64);
        // Same corpus spec, same seed: the two paths measure the same messages.
        assert_eq!(imap.bytes, copier.bytes);
        assert!(copier.bytes > 1_000 * copier.items, "{copier:?}");
    }
}
