//! [`Source`] for [`Maildir`]: folders from the directory tree, items from `cur/` and `new/`.
//! Keys are unique parts (stable across flag changes), sizes are file sizes, internal dates
//! file mtimes. Bodies are read on the blocking pool in small chunks, the next chunk while the
//! copier works on the current one.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt, stream};
use mailferry_core::{
    BoxFuture, BoxStream, Capabilities, Checkpoint, Error, ErrorKind, Folder, FolderPath, Item,
    ItemMeta, Result, Source, SourceKey,
};

use crate::keywords::Keywords;
use crate::name;
use crate::store::{Inner, Maildir, blocking, blocking_chunks, internal_date};

/// Messages read per blocking task by `fetch`.
const FETCH_CHUNK: usize = 16;

impl Source for Maildir {
    fn capabilities(&self) -> Capabilities {
        Maildir::capabilities()
    }

    fn list_folders(&self) -> BoxFuture<'_, Result<Vec<Folder>>> {
        let inner = Arc::clone(&self.inner);
        Box::pin(blocking("listing folders", move || inner.list_folders()))
    }

    fn list_items<'a>(
        &'a self,
        folder: &'a FolderPath,
        _after: Option<Checkpoint>,
    ) -> BoxStream<'a, Result<ItemMeta>> {
        let inner = Arc::clone(&self.inner);
        let folder = folder.clone();
        let metas = blocking("listing messages", move || list_metas(&inner, &folder));
        Box::pin(
            metas
                .map(|r| match r {
                    Ok(metas) => stream::iter(metas.into_iter().map(Ok)).boxed(),
                    Err(e) => stream::iter([Err(e)]).boxed(),
                })
                .flatten_stream(),
        )
    }

    fn fetch<'a>(
        &'a self,
        folder: &'a FolderPath,
        items: Vec<ItemMeta>,
    ) -> BoxStream<'a, Result<Item>> {
        let inner = Arc::clone(&self.inner);
        let dir = match inner.folder_dir(folder) {
            Ok(dir) => dir,
            Err(e) => return Box::pin(stream::iter([Err(e)])),
        };
        let folder = folder.clone();
        blocking_chunks(items, FETCH_CHUNK, move |meta| {
            Some(fetch_one(&inner, &dir, &folder, meta))
        })
    }
}

/// Loads a folder's keyword table; an unreadable one is reported and treated as empty, so the
/// messages are still copied (their keyword letters are then reported as unknown).
pub(crate) fn load_keywords(dir: &Path) -> Keywords {
    Keywords::load(dir).unwrap_or_else(|e| {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot read the keyword file; keyword letters are not translated");
        Keywords::default()
    })
}

fn list_metas(inner: &Inner, folder: &FolderPath) -> Result<Vec<ItemMeta>> {
    let dir = inner.folder_dir(folder)?;
    if !dir.is_dir() {
        return Err(Error::item(format!(
            "folder {folder} ({}) does not exist any more",
            dir.display()
        )));
    }
    let io = |e| {
        Error::io(
            ErrorKind::Item,
            format!("listing folder {folder} ({})", dir.display()),
            e,
        )
    };
    let entries = inner.scan(&dir).map_err(io)?;
    let keywords = load_keywords(&dir);
    let mut unknown = Vec::new();
    let mut metas = Vec::with_capacity(entries.len());
    for entry in entries {
        // A file renamed by a mail client since the scan is found again under its new name.
        let mut path = Some(entry.path.clone());
        let mut found = None;
        for fresh in [false, true] {
            if fresh {
                path = inner.locate(&dir, &entry.key, true).map_err(io)?;
            }
            let Some(p) = &path else { break };
            match std::fs::metadata(p) {
                Ok(m) => {
                    found = Some((p.clone(), m));
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(e)),
            }
        }
        let Some((path, meta)) = found else {
            // Deleted since the scan: it is no longer in the folder.
            continue;
        };
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let info = name::parse(&file_name, inner.separator())
            .info
            .unwrap_or("");
        let (flags, letters) = name::flags_from_info(info, &keywords);
        unknown.extend(letters);
        metas.push(ItemMeta {
            key: SourceKey(entry.key),
            size: meta.len(),
            flags,
            internal_date: internal_date(&meta),
        });
    }
    if !unknown.is_empty() {
        unknown.sort_unstable();
        unknown.dedup();
        tracing::warn!(
            folder = %folder,
            letters = %unknown.iter().collect::<String>(),
            "info letters that name no flag (no entry in dovecot-keywords, or non-standard) are not carried"
        );
    }
    // Arrival order, as an IMAP folder would list them.
    metas.sort_by(|a, b| {
        (a.internal_date.map(|d| d.timestamp), &a.key)
            .cmp(&(b.internal_date.map(|d| d.timestamp), &b.key))
    });
    Ok(metas)
}

fn fetch_one(inner: &Inner, dir: &Path, folder: &FolderPath, meta: ItemMeta) -> Result<Item> {
    match inner.read(dir, &meta.key.0) {
        Ok(Some((_, body, _))) => Ok(Item {
            folder: folder.clone(),
            meta,
            body: Bytes::from(body),
        }),
        Ok(None) => Err(Error::item(format!(
            "message {} vanished from folder {folder} ({}) between listing and fetch",
            meta.key,
            dir.display()
        ))
        .with_item(meta.key)),
        Err(e) => Err(Error::io(
            ErrorKind::Item,
            format!(
                "reading message {} in folder {folder} ({})",
                meta.key,
                dir.display()
            ),
            e,
        )
        .with_item(meta.key)),
    }
}
