//! Embedding mailferry the way another migration product would: its own [`Target`] (here a
//! "compliance archive" that keeps each message as a file named by its checksum plus an index
//! line), the library's [`Migration`] runner with folder mapping (a rename rule and special-use
//! roles), progress rendered the product's own way, cancellation on Ctrl-C, and the report at
//! the end. The source is the sample mbox the project ships.
//! `cargo run -p mailferry-examples --example embed_product`

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, ensure};
use mailferry::core::engine::MappingOptions;
use mailferry::core::futures_util::stream;
use mailferry::core::{
    AppendOutcome, BoxFuture, BoxStream, CanonicalItem, Capabilities, ExistingItem, Folder,
    FolderPath, FolderStatus, Item, ItemMeta, MemoryState, Progress, SpecialUse, TargetKey,
};
use mailferry::mbox::Mbox;
use mailferry::{Error, Migration, MigrationOptions, Result, Target};

/// One archived message, as the archive's index remembers it.
#[derive(Clone)]
struct Archived {
    meta: ItemMeta,
    file: PathBuf,
    folder: FolderPath,
}

/// The product's own store: a directory of message files plus an in-memory index by folder.
struct ComplianceArchive {
    root: PathBuf,
    index: Mutex<HashMap<FolderPath, Vec<Archived>>>,
}

impl ComplianceArchive {
    fn create(root: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(root)?;
        Ok(ComplianceArchive {
            root: root.to_path_buf(),
            index: Mutex::new(HashMap::new()),
        })
    }

    fn index(&self) -> std::sync::MutexGuard<'_, HashMap<FolderPath, Vec<Archived>>> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Target for ComplianceArchive {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            internal_date: true,
            ..Capabilities::default()
        }
    }

    fn list_folders(&self) -> BoxFuture<'_, Result<Vec<Folder>>> {
        Box::pin(async move {
            Ok(self
                .index()
                .iter()
                .map(|(path, items)| Folder {
                    path: path.clone(),
                    special_use: None,
                    selectable: true,
                    status: FolderStatus {
                        count: items.len() as u64,
                        ..FolderStatus::default()
                    },
                })
                .collect())
        })
    }

    fn ensure_folder<'a>(
        &'a self,
        folder: &'a FolderPath,
        _special_use: Option<SpecialUse>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.index().entry(folder.clone()).or_default();
            Ok(())
        })
    }

    fn append<'a>(
        &'a self,
        folder: &'a FolderPath,
        batch: &'a [CanonicalItem],
    ) -> BoxFuture<'a, Result<Vec<AppendOutcome>>> {
        Box::pin(async move {
            let mut outcomes = Vec::with_capacity(batch.len());
            for item in batch {
                let file = self.root.join(format!("{}.eml", item.checksum));
                // One message that cannot be written is an item error; the batch goes on.
                let outcome = std::fs::write(&file, &item.body)
                    .map_err(|e| {
                        Error::io(mailferry::ErrorKind::Item, format!("{}", file.display()), e)
                            .with_item(item.meta.key.clone())
                    })
                    .map(|()| {
                        let mut index = self.index();
                        let entries = index.entry(folder.clone()).or_default();
                        entries.push(Archived {
                            meta: item.meta.clone(),
                            file: file.clone(),
                            folder: folder.clone(),
                        });
                        TargetKey::from(entries.len().to_string())
                    });
                outcomes.push(outcome);
            }
            Ok(outcomes)
        })
    }

    fn existing<'a>(&'a self, folder: &'a FolderPath) -> BoxStream<'a, Result<ExistingItem>> {
        let items: Vec<Result<ExistingItem>> = self
            .index()
            .get(folder)
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(i, a)| {
                Ok(ExistingItem {
                    key: TargetKey::from((i + 1).to_string()),
                    size: std::fs::metadata(&a.file).map(|m| m.len()).unwrap_or(0),
                    internal_date: a.meta.internal_date,
                    flags: a.meta.flags.clone(),
                    fingerprint: None,
                })
            })
            .collect();
        Box::pin(stream::iter(items))
    }

    fn read_back<'a>(
        &'a self,
        folder: &'a FolderPath,
        keys: Vec<TargetKey>,
    ) -> BoxStream<'a, Result<(TargetKey, Item)>> {
        let index = self.index().get(folder).cloned().unwrap_or_default();
        let items: Vec<Result<(TargetKey, Item)>> = keys
            .into_iter()
            .filter_map(|key| {
                let n: usize = key.to_string().parse().ok()?;
                let a = index.get(n.checked_sub(1)?)?;
                Some(
                    std::fs::read(&a.file)
                        .map_err(|e| Error::io(mailferry::ErrorKind::Item, "reading back", e))
                        .map(|body| {
                            (
                                key,
                                Item {
                                    folder: a.folder.clone(),
                                    meta: a.meta.clone(),
                                    body: body.into(),
                                },
                            )
                        }),
                )
            })
            .collect();
        Box::pin(stream::iter(items))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample.mbox");
    let source = Arc::new(Mbox::open(sample.clone()).context("opening the sample mbox")?);
    let dir = tempfile::tempdir()?;
    let archive = Arc::new(ComplianceArchive::create(&dir.path().join("archive"))?);

    // The product's own options, built as a plan row or the command line would build them.
    let options = MigrationOptions {
        mapping: MappingOptions {
            rename: vec!["INBOX=Archive/Inbox".into()],
            ..MappingOptions::default()
        },
        ..MigrationOptions::default()
    };
    let migration = Migration::new(
        "sample -> compliance archive",
        source,
        archive.clone(),
        Arc::new(MemoryState::new()),
        options,
    )?;
    let plan = migration.plan().await?;
    println!("plan:\n{plan}");

    // Progress, the product's way: one line per folder as it finishes.
    let mut events = migration.progress();
    let printer = tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            if let Progress::FolderFinished { folder, counts } = event {
                println!("archived {folder}: {} messages", counts.copied);
            }
        }
    });
    // Ctrl-C stops reading new messages; batches in flight finish and are recorded.
    let cancel = migration.cancel_token();
    let ctrl_c = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            cancel.cancel();
        }
    });

    let report = migration.copy_planned(&plan).await?;
    ctrl_c.abort();
    drop(migration);
    let _ = printer.await;

    println!(
        "{} copied, {} failed, {:.0} messages/s",
        report.totals.copied, report.totals.failed, report.items_per_sec
    );
    ensure!(report.is_success(), "the archive run failed: {report:#?}");
    let renamed = FolderPath::new(["Archive", "Inbox"]);
    let archived = archive.index().get(&renamed).map_or(0, Vec::len) as u64;
    ensure!(
        report.totals.copied > 0 && archived == report.totals.copied,
        "the rename rule should put every message in {renamed}: {archived} of {}",
        report.totals.copied
    );
    Ok(())
}
