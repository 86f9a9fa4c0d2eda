//! Tracing: a span per backend call, naming the call and the folder, so that `-v` logs and any
//! subscriber an embedder installs see which folder a warning or a slow call belongs to. The
//! engine opens the mailbox span around a run; these spans nest inside it. With no subscriber
//! listening, a span costs one relaxed atomic load.

use tracing::Instrument;

use super::{SourceHook, TargetHook};
use crate::backend::{AppendOutcome, BoxFuture, Source, Target};
use crate::error::Result;
use crate::flags::Flags;
use crate::folder::{Folder, FolderPath, SpecialUse};
use crate::item::{CanonicalItem, TargetKey};

/// The tracing layer (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct Traced {
    side: &'static str,
}

impl Traced {
    /// For a source.
    pub fn source() -> Self {
        Traced { side: "source" }
    }

    /// For a target.
    pub fn target() -> Self {
        Traced { side: "target" }
    }
}

impl SourceHook for Traced {
    fn list_folders<'a>(&'a self, inner: &'a dyn Source) -> BoxFuture<'a, Result<Vec<Folder>>> {
        Box::pin(
            inner
                .list_folders()
                .instrument(tracing::debug_span!("list_folders", side = self.side)),
        )
    }
}

impl TargetHook for Traced {
    fn list_folders<'a>(&'a self, inner: &'a dyn Target) -> BoxFuture<'a, Result<Vec<Folder>>> {
        Box::pin(
            inner
                .list_folders()
                .instrument(tracing::debug_span!("list_folders", side = self.side)),
        )
    }

    fn ensure_folder<'a>(
        &'a self,
        inner: &'a dyn Target,
        folder: &'a FolderPath,
        special_use: Option<SpecialUse>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(
            inner
                .ensure_folder(folder, special_use)
                .instrument(tracing::debug_span!("ensure_folder", folder = %folder)),
        )
    }

    fn append<'a>(
        &'a self,
        inner: &'a dyn Target,
        folder: &'a FolderPath,
        batch: &'a [CanonicalItem],
    ) -> BoxFuture<'a, Result<Vec<AppendOutcome>>> {
        Box::pin(
            inner
                .append(folder, batch)
                .instrument(tracing::debug_span!("append", folder = %folder, items = batch.len())),
        )
    }

    fn set_flags<'a>(
        &'a self,
        inner: &'a dyn Target,
        folder: &'a FolderPath,
        changes: Vec<(TargetKey, Flags)>,
    ) -> BoxFuture<'a, Result<()>> {
        let n = changes.len();
        Box::pin(
            inner
                .set_flags(folder, changes)
                .instrument(tracing::debug_span!("set_flags", folder = %folder, items = n)),
        )
    }

    fn delete<'a>(
        &'a self,
        inner: &'a dyn Target,
        folder: &'a FolderPath,
        keys: Vec<TargetKey>,
    ) -> BoxFuture<'a, Result<()>> {
        let n = keys.len();
        Box::pin(
            inner
                .delete(folder, keys)
                .instrument(tracing::debug_span!("delete", folder = %folder, items = n)),
        )
    }
}
