//! [`Source`] for [`ImapStore`]: the shared reader ([`crate::reader`]) seen from the source's
//! side.

use futures_util::StreamExt;
use mailferry_core::{
    BoxFuture, BoxStream, Capabilities, Checkpoint, Folder, FolderPath, Item, ItemMeta, Result,
    Source,
};

use crate::ImapStore;
use crate::reader::{flatten, meta_of};

impl Source for ImapStore {
    fn capabilities(&self) -> Capabilities {
        self.capabilities()
    }

    fn list_folders(&self) -> BoxFuture<'_, Result<Vec<Folder>>> {
        Box::pin(self.folders())
    }

    fn list_items<'a>(
        &'a self,
        folder: &'a FolderPath,
        after: Option<Checkpoint>,
    ) -> BoxStream<'a, Result<ItemMeta>> {
        let pages = self.pages(folder, after, false, false).map(|page| {
            page.map(|items| items.into_iter().map(|(uid, f)| meta_of(uid, f)).collect())
        });
        flatten(pages)
    }

    fn fetch<'a>(
        &'a self,
        folder: &'a FolderPath,
        items: Vec<ItemMeta>,
    ) -> BoxStream<'a, Result<Item>> {
        self.bodies(folder, items)
    }
}
