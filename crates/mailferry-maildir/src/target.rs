//! [`Target`] for [`Maildir`]: delivery (see `deliver.rs`), `existing()` from file names and
//! header blocks, read-back, flag changes (a rename to a new info suffix) and deletion.
//!
//! `existing()` must not read whole mailboxes: the wire size comes from the name's `W=`
//! field (trusted when the name's `S=` matches the file size, so a stale or foreign name
//! cannot mislead dedupe), and the fingerprint from the header block only, canonicalised
//! first so it equals the one the copier computes from the message's canonical head.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt, stream};
use mailferry_core::normalise::{canonicalise, wire_len};
use mailferry_core::{
    AppendOutcome, BoxFuture, BoxStream, CanonicalItem, Capabilities, Error, ErrorKind,
    ExistingItem, Flags, Folder, FolderPath, HeaderFacts, Item, ItemMeta, Result, SourceKey,
    SpecialUse, Target, TargetKey,
};

use crate::deliver::{self, ToWrite, assign_keywords, info_for, sync_dir};
use crate::keywords::Keywords;
use crate::name;
use crate::scan::Entry;
use crate::source::load_keywords;
use crate::store::{Inner, Maildir, blocking, blocking_chunks, internal_date};

/// Files examined per blocking task by `existing` and `read_back`.
const CHUNK: usize = 64;

impl Target for Maildir {
    fn capabilities(&self) -> Capabilities {
        Maildir::capabilities()
    }

    fn list_folders(&self) -> BoxFuture<'_, Result<Vec<Folder>>> {
        let inner = Arc::clone(&self.inner);
        Box::pin(blocking("listing folders", move || inner.list_folders()))
    }

    /// Maildir stores no special-use role: it is inferred from well-known names on listing.
    fn ensure_folder<'a>(
        &'a self,
        folder: &'a FolderPath,
        _special_use: Option<SpecialUse>,
    ) -> BoxFuture<'a, Result<()>> {
        let inner = Arc::clone(&self.inner);
        let folder = folder.clone();
        Box::pin(blocking("creating a folder", move || {
            inner.ensure_folder(&folder)
        }))
    }

    fn append<'a>(
        &'a self,
        folder: &'a FolderPath,
        batch: &'a [CanonicalItem],
    ) -> BoxFuture<'a, Result<Vec<AppendOutcome>>> {
        let items: Vec<ToWrite> = batch
            .iter()
            .map(|i| ToWrite {
                key: i.meta.key.clone(),
                body: i.body.clone(),
                flags: i.meta.flags.clone(),
                date: i.internal_date(),
            })
            .collect();
        let inner = Arc::clone(&self.inner);
        let folder = folder.clone();
        // One blocking task per batch: per-item tasks would cost more than small writes.
        Box::pin(blocking("appending", move || {
            let dir = inner.folder_dir(&folder)?;
            let keyword_lock = inner.keyword_lock(&dir);
            let (outcomes, written) = deliver::deliver(
                &dir,
                items,
                inner.options.fsync,
                inner.separator(),
                &keyword_lock,
            )
            .map_err(|e| e.context(format!("folder {folder}")))?;
            inner.remember(&dir, written);
            Ok(outcomes)
        }))
    }

    fn existing<'a>(&'a self, folder: &'a FolderPath) -> BoxStream<'a, Result<ExistingItem>> {
        let inner = Arc::clone(&self.inner);
        let folder = folder.clone();
        let scanned = blocking("listing messages", move || {
            let dir = inner.folder_dir(&folder)?;
            let entries = inner.scan(&dir).map_err(|e| {
                Error::io(
                    ErrorKind::Item,
                    format!("listing folder {folder} ({})", dir.display()),
                    e,
                )
            })?;
            Ok((entries, load_keywords(&dir), inner.separator()))
        });
        Box::pin(
            scanned
                .map(|r| match r {
                    Ok((entries, keywords, separator)) => {
                        blocking_chunks(entries, CHUNK, move |e| {
                            existing_one(e, &keywords, separator).transpose()
                        })
                    }
                    Err(e) => stream::iter([Err(e)]).boxed(),
                })
                .flatten_stream(),
        )
    }

    fn read_back<'a>(
        &'a self,
        folder: &'a FolderPath,
        keys: Vec<TargetKey>,
    ) -> BoxStream<'a, Result<(TargetKey, Item)>> {
        let inner = Arc::clone(&self.inner);
        let dir = match inner.folder_dir(folder) {
            Ok(dir) => dir,
            Err(e) => return Box::pin(stream::iter([Err(e)])),
        };
        let keywords = Arc::new(load_keywords(&dir));
        let folder = folder.clone();
        blocking_chunks(keys, CHUNK, move |key| {
            Some(read_back_one(&inner, &dir, &folder, &keywords, key))
        })
    }

    fn set_flags<'a>(
        &'a self,
        folder: &'a FolderPath,
        changes: Vec<(TargetKey, Flags)>,
    ) -> BoxFuture<'a, Result<()>> {
        let inner = Arc::clone(&self.inner);
        let folder = folder.clone();
        Box::pin(blocking("changing flags", move || {
            set_flags(&inner, &folder, changes)
        }))
    }

    fn delete<'a>(
        &'a self,
        folder: &'a FolderPath,
        keys: Vec<TargetKey>,
    ) -> BoxFuture<'a, Result<()>> {
        let inner = Arc::clone(&self.inner);
        let folder = folder.clone();
        Box::pin(blocking("deleting", move || delete(&inner, &folder, keys)))
    }
}

/// Reads up to and including the first empty line (the whole file if it has none), scanning
/// only the bytes not yet seen so a long header block costs linear time.
fn read_header_block(file: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    loop {
        let n = file.read(&mut chunk)?;
        if n == 0 {
            return Ok(buf);
        }
        let from = buf.len().saturating_sub(2);
        buf.extend_from_slice(&chunk[..n]);
        if buf.starts_with(b"\r\n") || buf.starts_with(b"\n") {
            buf.truncate(if buf[0] == b'\n' { 1 } else { 2 });
            return Ok(buf);
        }
        for j in memchr::memchr_iter(b'\n', &buf[from..]).map(|j| j + from) {
            let end = match (buf.get(j + 1), buf.get(j + 2)) {
                (Some(b'\n'), _) => j + 2,
                (Some(b'\r'), Some(b'\n')) => j + 3,
                _ => continue,
            };
            buf.truncate(end);
            return Ok(buf);
        }
    }
}

fn existing_one(
    entry: Entry,
    keywords: &Keywords,
    separator: char,
) -> Result<Option<ExistingItem>> {
    let io = |e| {
        Error::io(
            ErrorKind::Item,
            format!("reading {}", entry.path.display()),
            e,
        )
    };
    let mut file = match std::fs::File::open(&entry.path) {
        Ok(f) => f,
        // Gone since the scan (deleted, or renamed and listed again next time).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let meta = file.metadata().map_err(io)?;
    let head = read_header_block(&mut file).map_err(io)?;
    let file_name = entry.file_name();
    let unique = name::parse(&file_name, separator).unique;
    let size = match (name::size_field(unique, 'S'), name::size_field(unique, 'W')) {
        (Some(s), Some(w)) if s == meta.len() => w,
        _ => wire_len(&std::fs::read(&entry.path).map_err(io)?),
    };
    let (canonical_head, _) = canonicalise(Bytes::from(head));
    let (flags, _) = name::flags_from_info(entry.info.as_deref().unwrap_or(""), keywords);
    Ok(Some(ExistingItem {
        key: TargetKey(entry.key),
        size,
        internal_date: internal_date(&meta),
        flags,
        fingerprint: HeaderFacts::fingerprint_of(&canonical_head),
    }))
}

fn read_back_one(
    inner: &Inner,
    dir: &Path,
    folder: &FolderPath,
    keywords: &Keywords,
    key: TargetKey,
) -> Result<(TargetKey, Item)> {
    match inner.read(dir, &key.0) {
        Ok(Some((path, body, meta))) => {
            let file_name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let info = name::parse(&file_name, inner.separator())
                .info
                .unwrap_or("");
            let (flags, _) = name::flags_from_info(info, keywords);
            let item = Item {
                folder: folder.clone(),
                meta: ItemMeta {
                    key: SourceKey(key.0.clone()),
                    size: body.len() as u64,
                    flags,
                    internal_date: internal_date(&meta),
                },
                body: Bytes::from(body),
            };
            Ok((key, item))
        }
        Ok(None) => Err(Error::item(format!(
            "no message {key} in folder {folder} ({})",
            dir.display()
        ))),
        Err(e) => Err(Error::io(
            ErrorKind::Item,
            format!(
                "reading message {key} in folder {folder} ({})",
                dir.display()
            ),
            e,
        )),
    }
}

/// Syncs the directories that gained or lost entries, when the policy asks for it.
fn sync_touched(inner: &Inner, touched: &BTreeSet<PathBuf>, what: &str) -> Result<()> {
    if !inner.sync() {
        return Ok(());
    }
    for d in touched {
        sync_dir(d).map_err(|e| {
            Error::io(
                ErrorKind::Transient,
                format!("syncing {} after {what}", d.display()),
                e,
            )
        })?;
    }
    Ok(())
}

fn set_flags(inner: &Inner, folder: &FolderPath, changes: Vec<(TargetKey, Flags)>) -> Result<()> {
    let dir = inner.folder_dir(folder)?;
    let separator = inner.separator();
    let keyword_lock = inner.keyword_lock(&dir);
    let (keywords, refused) = {
        let _guard = deliver::lock(&keyword_lock);
        assign_keywords(
            &dir,
            changes.iter().flat_map(|(_, f)| &f.keywords),
            inner.sync(),
        )?
    };
    let cur = dir.join("cur");
    let mut problems = Vec::new();
    let mut touched = BTreeSet::new();
    let mut renamed = Vec::new();
    for (key, flags) in changes {
        let info = match info_for(&flags, &keywords, &refused) {
            Ok(info) => info,
            Err(reason) => {
                problems.push(format!("{key}: {reason}"));
                continue;
            }
        };
        let mut handled = false;
        for fresh in [false, true] {
            let old = inner
                .locate(&dir, &key.0, fresh)
                .map_err(|e| Error::io(ErrorKind::Item, format!("listing folder {folder}"), e))?;
            // `locate` already rescans when the index does not know the key.
            let Some(old) = old else { break };
            let file_name = old
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let unique = name::parse(&file_name, separator).unique;
            let new = cur.join(name::with_info(unique, separator, &info));
            if old == new {
                handled = true;
                break;
            }
            match std::fs::rename(&old, &new) {
                Ok(()) => {
                    touched.extend(old.parent().map(Path::to_path_buf));
                    touched.insert(cur.clone());
                    renamed.push((key.0.clone(), new));
                    handled = true;
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    problems.push(format!("{key}: renaming {}: {e}", old.display()));
                    handled = true;
                    break;
                }
            }
        }
        if !handled {
            problems.push(format!("{key}: no such message"));
        }
    }
    inner.remember(&dir, renamed);
    sync_touched(inner, &touched, "changing flags")?;
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::item(format!(
            "changing flags in folder {folder} ({}): {}",
            dir.display(),
            problems.join("; ")
        )))
    }
}

fn delete(inner: &Inner, folder: &FolderPath, keys: Vec<TargetKey>) -> Result<()> {
    let dir = inner.folder_dir(folder)?;
    let mut touched = BTreeSet::new();
    let mut problems = Vec::new();
    let mut gone = Vec::new();
    for key in keys {
        for fresh in [false, true] {
            let path = inner
                .locate(&dir, &key.0, fresh)
                .map_err(|e| Error::io(ErrorKind::Item, format!("listing folder {folder}"), e))?;
            // Not there after a rescan: already deleted, which is what was asked.
            let Some(path) = path else { break };
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    touched.extend(path.parent().map(Path::to_path_buf));
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    problems.push(format!("{key}: removing {}: {e}", path.display()));
                    break;
                }
            }
        }
        gone.push(key.0);
    }
    inner.forget(&dir, &gone);
    sync_touched(inner, &touched, "deleting")?;
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::item(format!(
            "deleting in folder {folder} ({}): {}",
            dir.display(),
            problems.join("; ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_block_ends_at_the_first_empty_line() {
        let read = |b: &[u8]| read_header_block(&mut &b[..]).expect("read");
        assert_eq!(read(b"A: b\nC: d\n\nbody\n\nmore"), b"A: b\nC: d\n\n");
        assert_eq!(read(b"A: b\r\n\r\nbody"), b"A: b\r\n\r\n");
        assert_eq!(read(b"A: b\n\r\nbody"), b"A: b\n\r\n");
        assert_eq!(read(b"\nbody"), b"\n");
        assert_eq!(read(b"A: no body"), b"A: no body");
        let mut long = b"X-Long: ".to_vec();
        long.extend(std::iter::repeat_n(b'x', 20_000));
        long.extend_from_slice(b"\n\nbody");
        assert_eq!(read(&long).len(), long.len() - 4);
    }
}
