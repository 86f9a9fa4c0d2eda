//! The two decorators that write a manifest as a copy goes (see the module above for why the
//! line is written before the state's *done* record).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use mailferry_core::layers::{HookedState, StateHook};
use mailferry_core::{
    AppendOutcome, BoxFuture, CanonicalItem, Checksum, Error, Flags, FolderPath, FolderScope,
    Hooked, ItemRecord, ItemStatus, Result, SourceKey, StateStore, Target, TargetHook,
};

use super::{Entry, Header, ManifestSummary, Writer};

/// An item of the run: (source folder, source key).
type ItemId = (FolderPath, SourceKey);

/// One run's manifest: the file being written and the items the target was asked to append
/// whose outcome is not recorded yet.
pub struct Recorder {
    writer: Mutex<Writer>,
    /// Source folder → target folder, as the run maps them.
    folders: HashMap<FolderPath, FolderPath>,
    /// (source folder, source key) → the entry without its target key.
    noted: Mutex<HashMap<ItemId, Entry>>,
    /// Items an interrupted run left pending, as the copier read them from the state:
    /// (source folder, source key) → (canonical size, checksum).
    recovering: Mutex<HashMap<ItemId, (u64, Option<Checksum>)>>,
}

fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>> {
    m.lock().map_err(|_| Error::fatal("manifest lock poisoned"))
}

impl Recorder {
    /// Opens (or extends) the manifest at `path` for a run of `migration` whose folders map as
    /// `folders` says (source folder, target folder).
    pub fn create(
        path: &Path,
        migration: &str,
        folders: impl IntoIterator<Item = (FolderPath, FolderPath)>,
    ) -> Result<Arc<Recorder>> {
        let header = Header {
            mailferry_manifest: super::FORMAT_VERSION,
            migration: migration.to_string(),
            started_unix: mailferry_core::report::unix_now(),
        };
        Ok(Arc::new(Recorder {
            writer: Mutex::new(Writer::open(path, &header)?),
            folders: folders.into_iter().collect(),
            noted: Mutex::new(HashMap::new()),
            recovering: Mutex::new(HashMap::new()),
        }))
    }

    /// The target, noting what it is asked to append.
    pub fn wrap_target(self: &Arc<Self>, inner: Arc<dyn Target>) -> Arc<dyn Target> {
        Arc::new(Hooked::new(
            inner,
            ManifestTarget {
                recorder: Arc::clone(self),
            },
        ))
    }

    /// The state store, writing a line for each item recorded done after this run appended it.
    pub fn wrap_state(self: &Arc<Self>, inner: Arc<dyn StateStore>) -> Arc<dyn StateStore> {
        Arc::new(HookedState::new(
            inner,
            ManifestState {
                recorder: Arc::clone(self),
            },
        ))
    }

    /// Ends this run's member; the summary carries the whole file's digest.
    pub fn finish(&self) -> Result<ManifestSummary> {
        lock(&self.writer)?.finish()
    }

    fn note(&self, target_folder: &FolderPath, batch: &[CanonicalItem]) -> Result<()> {
        let mut noted = lock(&self.noted)?;
        for item in batch {
            let entry = Entry {
                folder: item.folder.clone(),
                source_key: item.meta.key.to_string(),
                target_folder: target_folder.clone(),
                target_key: String::new(),
                size: item.size(),
                checksum: item.checksum,
                flags: Some(flag_tokens(&item.meta.flags)),
                internal_date: item.internal_date().map(|d| d.to_imap()),
                message_id: item.headers.message_id.clone(),
                recovered: false,
            };
            noted.insert((item.folder.clone(), item.meta.key.clone()), entry);
        }
        Ok(())
    }

    /// The lines of the records that complete a noted (or recovered) append; forgets the
    /// items whose outcome is now recorded.
    fn settle(&self, scope: &FolderScope, records: &[ItemRecord]) -> Result<Vec<Entry>> {
        let mut lines = Vec::new();
        {
            let mut noted = lock(&self.noted)?;
            let mut recovering = lock(&self.recovering)?;
            for r in records {
                if r.status == ItemStatus::Pending {
                    continue;
                }
                let id = (scope.folder.clone(), r.key.clone());
                let entry = match (noted.remove(&id), recovering.remove(&id)) {
                    (Some(entry), _) => entry,
                    (None, Some((size, Some(checksum)))) => Entry {
                        folder: scope.folder.clone(),
                        source_key: r.key.to_string(),
                        target_folder: self
                            .folders
                            .get(&scope.folder)
                            .cloned()
                            .unwrap_or_else(|| scope.folder.clone()),
                        target_key: String::new(),
                        size,
                        checksum,
                        flags: None,
                        internal_date: None,
                        message_id: None,
                        recovered: true,
                    },
                    // Not appended by this run: copied earlier, or found in the target.
                    _ => continue,
                };
                if let (ItemStatus::Done, Some(key)) = (r.status, &r.target_key) {
                    lines.push(Entry {
                        target_key: key.to_string(),
                        ..entry
                    });
                }
            }
        }
        Ok(lines)
    }

    /// Writes lines durably: JSON, gzip and fdatasync, so it runs off the async executor.
    fn write(&self, mut lines: Vec<Entry>) -> Result<()> {
        let mut writer = lock(&self.writer)?;
        // A killed run may have written a recovered item's line just before it died (the line
        // goes first): it is not listed twice.
        lines.retain(|e| {
            !(e.recovered && writer.listed_earlier(&e.folder, &e.source_key, e.checksum))
        });
        if lines.is_empty() {
            return Ok(());
        }
        writer.append(&lines)
    }
}

fn flag_tokens(flags: &Flags) -> Vec<String> {
    flags
        .imap_tokens()
        .into_iter()
        .map(str::to_string)
        .collect()
}

/// The target layer ([`TargetHook`], as every layer): notes the metadata (never the body) of each
/// item it is asked to append, then appends.
pub struct ManifestTarget {
    recorder: Arc<Recorder>,
}

impl TargetHook for ManifestTarget {
    fn append<'a>(
        &'a self,
        inner: &'a dyn Target,
        folder: &'a FolderPath,
        batch: &'a [CanonicalItem],
    ) -> BoxFuture<'a, Result<Vec<AppendOutcome>>> {
        Box::pin(async move {
            self.recorder.note(folder, batch)?;
            inner.append(folder, batch).await
        })
    }
}

/// A state hook that writes the manifest line of each appended item before recording it done
/// (on [`HookedState`], which forwards everything else).
pub struct ManifestState {
    recorder: Arc<Recorder>,
}

impl StateHook for ManifestState {
    fn record<'a>(
        &'a self,
        inner: &'a dyn StateStore,
        scope: &'a FolderScope,
        records: &'a [ItemRecord],
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            // A manifest that cannot be written stops the run (a fatal error): copying on
            // without the audit trail would lose it silently.
            let lines = self.recorder.settle(scope, records)?;
            if !lines.is_empty() {
                let recorder = Arc::clone(&self.recorder);
                tokio::task::spawn_blocking(move || recorder.write(lines))
                    .await
                    .map_err(|e| Error::fatal(format!("writing the manifest failed: {e}")))??;
            }
            inner.record(scope, records).await
        })
    }

    fn records<'a>(
        &'a self,
        inner: &'a dyn StateStore,
        scope: &'a FolderScope,
        status: Option<ItemStatus>,
    ) -> BoxFuture<'a, Result<Vec<ItemRecord>>> {
        Box::pin(async move {
            let records = inner.records(scope, status).await?;
            // The copier reads an interrupted run's pending items to resolve them: those it
            // then records done were written by that run, unlisted if it died before its line.
            if status == Some(ItemStatus::Pending) {
                let mut recovering = lock(&self.recorder.recovering)?;
                for r in &records {
                    recovering.insert((scope.folder.clone(), r.key.clone()), (r.size, r.checksum));
                }
            }
            Ok(records)
        })
    }
}
