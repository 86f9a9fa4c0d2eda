//! The mail the local benches copy: a generated corpus written once, in one streaming pass,
//! as a Maildir++ tree and as a directory of mbox files; and a single multi-GB mbox for the
//! memory measurement.
//!
//! Why write through the backends' own [`Target`]s, batch by batch, instead of `copy_all` from
//! a `MemoryStore`: at scale 1 the corpus is about 0.9 GB, and the harness should not hold it
//! in memory while it measures other processes' memory. One pass over the generator fills both
//! stores and fingerprints every message, so the sources are checked against what was
//! generated, independently of any reader.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use mailferry_core::{CanonicalItem, FolderPath, Item, ItemMeta, SourceKey, Target};
use mailferry_maildir::{FsyncPolicy, Layout as MaildirLayout, Maildir, MaildirOptions};
use mailferry_mbox::{Layout as MboxLayout, Mbox, MboxOptions};
use mailferry_testkit::corpus::{CorpusSpec, GeneratedMessage, SizeMix};
use tokio::runtime::Runtime;

use crate::snapshot::{Snapshot, fingerprint};

/// Messages at scale 1.0.
const BASE_COUNT: f64 = 20_000.0;
/// Below this a run measures start-up, not copying.
const MIN_COUNT: usize = 20;
/// A folder's pending batch is written once it holds this many messages…
const BATCH_ITEMS: usize = 256;
/// …or this many bytes.
const BATCH_BYTES: u64 = 32 << 20;

/// The typical corpus at `scale`: six folders (one nested, one non-ASCII, Sent) with the
/// generator's quirks (LF-only messages, byte-identical duplicates, reused and missing
/// Message-IDs, raw 8-bit headers, keywords) — the same mail as the IMAP comparison.
pub fn spec(scale: f64) -> CorpusSpec {
    let count = ((BASE_COUNT * scale).round() as usize).max(MIN_COUNT);
    let folders = vec![
        FolderPath::inbox(),
        FolderPath::new(["Sent"]),
        FolderPath::new(["Archive", "2020"]),
        FolderPath::new(["Archive", "2021"]),
        FolderPath::new(["Projekte", "Übersicht"]),
        FolderPath::new(["Lists", "rust-users"]),
    ];
    CorpusSpec::new(count, SizeMix::typical())
        .in_folders(folders)
        .with_quirks()
}

/// What was written: the generated messages' fingerprints per folder.
pub struct Written {
    /// The source as generated.
    pub snapshot: Snapshot,
}

/// The canonical form of a generated message, numbered `index`.
fn prepare(index: usize, m: GeneratedMessage) -> Result<CanonicalItem> {
    let key = SourceKey(index.to_string());
    CanonicalItem::prepare(Item {
        folder: m.folder,
        meta: ItemMeta {
            key: key.clone(),
            size: m.body.len() as u64,
            flags: m.flags,
            internal_date: Some(m.internal_date),
        },
        body: m.body,
    })
    .with_context(|| format!("preparing generated message {key}"))
}

/// Appends `batch` to every target, failing on any rejected item (a bench source must be
/// complete, or every figure after it is wrong).
async fn append_all(
    targets: &[(&str, &dyn Target)],
    folder: &FolderPath,
    batch: &[CanonicalItem],
) -> Result<()> {
    for (name, target) in targets {
        let outcomes = target
            .append(folder, batch)
            .await
            .with_context(|| format!("writing {} messages to the {name} {folder}", batch.len()))?;
        ensure!(
            outcomes.len() == batch.len(),
            "the {name} acknowledged {} of {} messages in {folder}",
            outcomes.len(),
            batch.len()
        );
        for (item, outcome) in batch.iter().zip(outcomes) {
            if let Err(e) = outcome {
                bail!(
                    "the {name} rejected generated message {} in {folder}: {e}",
                    item.meta.key
                );
            }
        }
    }
    Ok(())
}

/// Writes `spec` as a Maildir++ tree at `maildir` and an mbox directory at `mbox_dir`.
pub fn write_sources(
    rt: &Runtime,
    spec: &CorpusSpec,
    maildir: &Path,
    mbox_dir: &Path,
) -> Result<Written> {
    let maildir_store = Maildir::create(
        maildir,
        MaildirOptions {
            layout: Some(MaildirLayout::MaildirPlusPlus),
            // Setup, not a measurement; the harness syncs the file system before each run.
            fsync: FsyncPolicy::Never,
            ..MaildirOptions::default()
        },
    )?;
    let mbox_store = Mbox::with_options(
        mbox_dir,
        MboxOptions {
            layout: MboxLayout::Directory,
            ..MboxOptions::default()
        },
    )?;
    let targets: [(&str, &dyn Target); 2] =
        [("Maildir", &maildir_store), ("mbox directory", &mbox_store)];
    rt.block_on(async {
        for folder in &spec.folders {
            for (name, target) in &targets {
                target
                    .ensure_folder(folder, None)
                    .await
                    .with_context(|| format!("creating {folder} in the {name}"))?;
            }
        }
        let mut snapshot = Snapshot::default();
        let mut pending: BTreeMap<FolderPath, (Vec<CanonicalItem>, u64)> = BTreeMap::new();
        for (index, m) in spec.generate().enumerate() {
            let meta = ItemMeta {
                key: SourceKey(index.to_string()),
                size: m.body.len() as u64,
                flags: m.flags.clone(),
                internal_date: Some(m.internal_date),
            };
            snapshot
                .folders
                .entry(m.folder.join("/"))
                .or_default()
                .push(fingerprint(m.body.clone(), &meta));
            let item = prepare(index, m)?;
            let (batch, bytes) = pending.entry(item.folder.clone()).or_default();
            *bytes += item.size();
            batch.push(item);
            if batch.len() >= BATCH_ITEMS || *bytes >= BATCH_BYTES {
                let folder = batch[0].folder.clone();
                append_all(&targets, &folder, batch).await?;
                batch.clear();
                *bytes = 0;
            }
        }
        for (folder, (batch, _)) in &pending {
            if !batch.is_empty() {
                append_all(&targets, folder, batch).await?;
            }
        }
        Ok(Written { snapshot })
    })
}

/// What [`write_big_mbox`] wrote.
pub struct BigMbox {
    /// Messages in the file.
    pub messages: u64,
    /// Canonical bytes of those messages.
    pub canonical_bytes: u64,
}

/// Streams generated mail (`SizeMix::realistic()`, quirks on) into the single mbox file
/// `path` until it holds at least `target_bytes` of canonical mail. At most one batch
/// (≤ 32 MB, or one larger message) is in memory at a time.
pub fn write_big_mbox(rt: &Runtime, path: &Path, target_bytes: u64) -> Result<BigMbox> {
    let store = Mbox::with_options(
        path,
        MboxOptions {
            layout: MboxLayout::File,
            ..MboxOptions::default()
        },
    )?;
    let inbox = FolderPath::inbox();
    // Far more messages than any target size needs; generation stops at the byte target.
    let spec = CorpusSpec::new(usize::MAX, SizeMix::realistic()).with_quirks();
    rt.block_on(async {
        store
            .ensure_folder(&inbox, None)
            .await
            .with_context(|| format!("creating {}", path.display()))?;
        let targets: [(&str, &dyn Target); 1] = [("big mbox", &store)];
        let (mut messages, mut written) = (0u64, 0u64);
        let mut batch = Vec::new();
        let mut batch_bytes = 0u64;
        for (index, m) in spec.generate().enumerate() {
            if written + batch_bytes >= target_bytes {
                break;
            }
            let item = prepare(index, m)?;
            batch_bytes += item.size();
            batch.push(item);
            if batch.len() >= BATCH_ITEMS || batch_bytes >= BATCH_BYTES {
                append_all(&targets, &inbox, &batch).await?;
                messages += batch.len() as u64;
                written += batch_bytes;
                batch.clear();
                batch_bytes = 0;
            }
        }
        if !batch.is_empty() {
            append_all(&targets, &inbox, &batch).await?;
            messages += batch.len() as u64;
            written += batch_bytes;
        }
        Ok(BigMbox {
            messages,
            canonical_bytes: written,
        })
    })
}
