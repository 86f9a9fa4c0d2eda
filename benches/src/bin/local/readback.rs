//! Reading a local store back as a [`Snapshot`] (per folder: checksum of the canonical bytes,
//! flags + keywords, internal date), so every tool's output is judged by the same reader and
//! the same comparison as the IMAP harness (`compare`'s `diff`).
//!
//! Why mailferry's own Maildir reader judges mbsync too: it is the reader the Maildir
//! conformance suite covers, it decodes Dovecot's `dovecot-keywords` letters and file mtimes
//! as internal dates, and it reads `,U=` names and unknown files (mbsync's `.uidvalidity`,
//! `.mbsyncstate`) like any other Maildir. Bodies are fetched in batches and dropped once
//! fingerprinted, so a GB-sized store is never held in memory.

use std::path::Path;

use anyhow::{Context, Result, ensure};
use futures_util::StreamExt;
use mailferry_core::{FolderPath, Source};
use mailferry_maildir::{Maildir, MaildirOptions};
use tokio::runtime::Runtime;

use crate::snapshot::{Fingerprint, Snapshot, fingerprint};

/// Bodies fetched per request.
const FETCH_BATCH: usize = 256;

/// Every folder of the Maildir at `root` with its messages' fingerprints.
pub fn read_maildir(rt: &Runtime, root: &Path) -> Result<Snapshot> {
    let store = Maildir::open(root, MaildirOptions::default())
        .with_context(|| format!("opening {} to read it back", root.display()))?;
    rt.block_on(read_source(&store))
        .with_context(|| format!("reading {} back", root.display()))
}

/// Every selectable folder of `source` with its messages' fingerprints; a folder that cannot
/// be read is recorded as unreadable (a finding), not skipped.
pub async fn read_source(source: &dyn Source) -> Result<Snapshot> {
    let folders = source.list_folders().await.context("listing folders")?;
    let mut snapshot = Snapshot::default();
    for folder in folders.into_iter().filter(|f| f.selectable) {
        let name = folder.path.join("/");
        match read_folder(source, &folder.path).await {
            Ok(prints) => {
                snapshot.folders.insert(name, prints);
            }
            Err(e) => {
                snapshot.unreadable.insert(name, format!("{e:#}"));
            }
        }
    }
    Ok(snapshot)
}

async fn read_folder(source: &dyn Source, path: &FolderPath) -> Result<Vec<Fingerprint>> {
    let mut metas = Vec::new();
    let mut listing = source.list_items(path, None);
    while let Some(meta) = listing.next().await {
        metas.push(meta.with_context(|| format!("listing {path}"))?);
    }
    drop(listing);
    let mut prints = Vec::with_capacity(metas.len());
    for chunk in metas.chunks(FETCH_BATCH) {
        let mut fetched = source.fetch(path, chunk.to_vec());
        let mut got = 0;
        while let Some(item) = fetched.next().await {
            let item = item.with_context(|| format!("reading a message of {path}"))?;
            prints.push(fingerprint(item.body, &item.meta));
            got += 1;
        }
        ensure!(
            got == chunk.len(),
            "{path}: asked for {} messages, read {got}",
            chunk.len()
        );
    }
    Ok(prints)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus;
    use crate::diff::compare;

    fn runtime() -> Runtime {
        mailferry_benches::host::runtime().expect("runtime")
    }

    #[test]
    fn written_sources_read_back_as_generated_and_a_lost_keyword_is_found() {
        let rt = runtime();
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = corpus::spec(0.004);
        let (maildir, mbox) = (dir.path().join("maildir"), dir.path().join("mbox"));
        let written = corpus::write_sources(&rt, &spec, &maildir, &mbox).expect("write");
        assert_eq!(written.snapshot.messages(), spec.count as u64);
        assert_eq!(written.snapshot.folders.len(), spec.folders.len());
        assert!(
            written.snapshot.folders.contains_key("Projekte/Übersicht"),
            "{:?}",
            written.snapshot.folders.keys()
        );
        let back = read_maildir(&rt, &maildir).expect("read Maildir");
        let verdict = compare(&written.snapshot, &back);
        assert!(verdict.correct(), "Maildir: {}", verdict.summary());
        let mbox_store = mailferry_mbox::Mbox::open(&mbox).expect("open mbox");
        let back = rt.block_on(read_source(&mbox_store)).expect("read mbox");
        let verdict = compare(&written.snapshot, &back);
        assert!(verdict.correct(), "mbox: {}", verdict.summary());
        assert_eq!(verdict.matched, spec.count as u64);

        // Strip one keyword letter from one file name: the comparison must see it.
        let victim = walk_files(&maildir)
            .into_iter()
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.split_once(":2,"))
                    .is_some_and(|(_, info)| info.contains('a'))
            })
            .expect("a message with keyword letter a");
        let name = victim
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 name")
            .to_string();
        let (unique, info) = name.split_once(":2,").expect("info");
        let renamed = victim.with_file_name(format!("{unique}:2,{}", info.replace('a', "")));
        std::fs::rename(&victim, &renamed).expect("rename");
        let back = read_maildir(&rt, &maildir).expect("read Maildir again");
        assert_eq!(
            compare(&written.snapshot, &back).summary(),
            "no: 1 keywords lost"
        );
    }

    fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(walk_files(&path));
            } else {
                out.push(path);
            }
        }
        out
    }
}
