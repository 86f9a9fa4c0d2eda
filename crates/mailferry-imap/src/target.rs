//! [`Target`] for [`ImapStore`]: folders are created with their parents and subscribed; appends
//! go through [`crate::append`]; `existing` is the paged listing with the fingerprint headers;
//! `read_back` is the body fetch by UID. Target keys are UIDs as decimal strings, the same form
//! `existing` lists, so the copier can tell which stored messages its state accounts for.

use std::collections::BTreeMap;

use futures_util::{StreamExt, stream};
use mailferry_core::{
    AppendOutcome, BoxFuture, BoxStream, CanonicalItem, Capabilities, Error, ExistingItem, Flags,
    Folder, FolderPath, Item, Result, SpecialUse, Target, TargetKey,
};

use crate::ImapStore;
use crate::fetch::{fingerprint, parse_fetch};
use crate::folders;
use crate::proto::{flag_list, uid_set};
use crate::reader::{flatten, metas_of};

fn uid_of(key: &TargetKey) -> Result<u32> {
    key.0
        .parse()
        .ok()
        .filter(|&u| u > 0)
        .ok_or_else(|| Error::item(format!("{:?} is not an IMAP UID", key.0)))
}

impl ImapStore {
    async fn ensure(&self, folder: &FolderPath, special_use: Option<SpecialUse>) -> Result<()> {
        self.retry("creating a folder", || {
            self.ensure_once(folder, special_use)
        })
        .await
    }

    async fn ensure_once(
        &self,
        folder: &FolderPath,
        special_use: Option<SpecialUse>,
    ) -> Result<()> {
        let name = self.server_name(folder)?;
        if folder.is_inbox() || self.created.lock().is_ok_and(|c| c.contains(&name)) {
            return Ok(());
        }
        let mut parents = Vec::new();
        let mut parent = folder.parent();
        while let Some(p) = parent {
            if !p.is_inbox() {
                parents.push(self.server_name(&p)?);
            }
            parent = p.parent();
        }
        parents.reverse();
        let mut lease = self.pool.get().await?;
        folders::create(lease.conn(), &self.info, &parents, &name, special_use).await?;
        lease.release();
        if let Ok(mut created) = self.created.lock() {
            created.insert(name);
        }
        Ok(())
    }

    async fn store_flags(
        &self,
        folder: &FolderPath,
        changes: Vec<(TargetKey, Flags)>,
    ) -> Result<()> {
        self.retry("storing flags", || self.store_flags_once(folder, &changes))
            .await
    }

    async fn store_flags_once(
        &self,
        folder: &FolderPath,
        changes: &[(TargetKey, Flags)],
    ) -> Result<()> {
        let name = self.server_name(folder)?;
        let mut groups: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for (key, flags) in changes {
            groups
                .entry(flag_list(flags)?)
                .or_default()
                .push(uid_of(key)?);
        }
        if groups.is_empty() {
            return Ok(());
        }
        let mut lease = self.pool.get().await?;
        let conn = lease.conn();
        if conn.select(&name, true).await?.is_none() {
            return Err(Error::item(format!("{}: no folder {folder}", conn.label())));
        }
        let mut tags = Vec::new();
        for (flags, uids) in &groups {
            let line = format!("UID STORE {} FLAGS.SILENT {flags}", uid_set(uids));
            tags.push(conn.send(&line).await?);
        }
        for t in conn.finish_all(&tags, |_| Ok(())).await? {
            if !t.is_ok() {
                return Err(conn.refused(&t, &format!("UID STORE in {name}"), false));
            }
        }
        lease.release();
        Ok(())
    }

    async fn expunge(&self, folder: &FolderPath, keys: Vec<TargetKey>) -> Result<()> {
        self.retry("deleting messages", || self.expunge_once(folder, &keys))
            .await
    }

    async fn expunge_once(&self, folder: &FolderPath, keys: &[TargetKey]) -> Result<()> {
        let name = self.server_name(folder)?;
        let uids = keys.iter().map(uid_of).collect::<Result<Vec<u32>>>()?;
        if uids.is_empty() {
            return Ok(());
        }
        if !self.info.has("UIDPLUS") {
            return Err(Error::fatal(format!(
                "{}: the server lacks UIDPLUS, so messages cannot be expunged one by one",
                self.pool.config().label()
            )));
        }
        let mut lease = self.pool.get().await?;
        let conn = lease.conn();
        if conn.select(&name, true).await?.is_none() {
            return Err(Error::item(format!("{}: no folder {folder}", conn.label())));
        }
        let set = uid_set(&uids);
        conn.run_ok(
            &format!("UID STORE {set} +FLAGS.SILENT (\\Deleted)"),
            &format!("marking messages deleted in {name}"),
        )
        .await?;
        conn.run_ok(
            &format!("UID EXPUNGE {set}"),
            &format!("UID EXPUNGE in {name}"),
        )
        .await?;
        lease.release();
        Ok(())
    }

    /// The listed metadata of `uids`; missing ones are item errors.
    async fn metas_for(
        &self,
        folder: &FolderPath,
        uids: &[u32],
    ) -> Result<(
        Vec<mailferry_core::ItemMeta>,
        Vec<Result<(TargetKey, Item)>>,
    )> {
        let name = self.server_name(folder)?;
        let mut lease = self.pool.get().await?;
        let conn = lease.conn();
        let mut found = Vec::new();
        if conn.select(&name, false).await?.is_some() {
            let tag = conn
                .send(&format!(
                    "UID FETCH {} (UID FLAGS INTERNALDATE RFC822.SIZE)",
                    uid_set(uids)
                ))
                .await?;
            let t = conn
                .finish(tag, |resp| {
                    if let Some(f) = parse_fetch(&resp)
                        && let Some(uid) = f.uid
                        && uids.contains(&uid)
                    {
                        found.push((uid, f));
                    }
                    Ok(())
                })
                .await?;
            if !t.is_ok() {
                return Err(conn.refused(&t, &format!("UID FETCH in {name}"), false));
            }
        }
        lease.release();
        found.sort_by_key(|(u, _)| *u);
        found.dedup_by_key(|(u, _)| *u);
        let missing = uids
            .iter()
            .filter(|u| found.binary_search_by_key(u, |(f, _)| f).is_err())
            .map(|u| Err(Error::item(format!("no message with UID {u} in {folder}"))))
            .collect();
        Ok((metas_of(found), missing))
    }
}

impl Target for ImapStore {
    fn capabilities(&self) -> Capabilities {
        self.capabilities()
    }

    fn list_folders(&self) -> BoxFuture<'_, Result<Vec<Folder>>> {
        Box::pin(self.folders())
    }

    fn ensure_folder<'a>(
        &'a self,
        folder: &'a FolderPath,
        special_use: Option<SpecialUse>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.ensure(folder, special_use))
    }

    fn append<'a>(
        &'a self,
        folder: &'a FolderPath,
        batch: &'a [CanonicalItem],
    ) -> BoxFuture<'a, Result<Vec<AppendOutcome>>> {
        Box::pin(self.append_batch(folder, batch))
    }

    fn existing<'a>(&'a self, folder: &'a FolderPath) -> BoxStream<'a, Result<ExistingItem>> {
        let pages = self.pages(folder, None, true, true).map(|page| {
            page.map(|items| {
                items
                    .into_iter()
                    .map(|(uid, f)| ExistingItem {
                        key: TargetKey(uid.to_string()),
                        size: u64::from(f.size.unwrap_or(0)),
                        internal_date: f.internal_date,
                        flags: f.flags.unwrap_or_default(),
                        fingerprint: fingerprint(f.header),
                    })
                    .collect()
            })
        });
        flatten(pages)
    }

    fn read_back<'a>(
        &'a self,
        folder: &'a FolderPath,
        keys: Vec<TargetKey>,
    ) -> BoxStream<'a, Result<(TargetKey, Item)>> {
        let mut uids = Vec::with_capacity(keys.len());
        let mut bad = Vec::new();
        for key in &keys {
            match uid_of(key) {
                Ok(u) => uids.push(u),
                Err(e) => bad.push(Err(e)),
            }
        }
        let metas = async move {
            self.retry("reading message metadata", || self.metas_for(folder, &uids))
                .await
        };
        let bodies = stream::once(metas).flat_map(move |r| match r {
            Ok((metas, missing)) => stream::iter(missing)
                .chain(
                    self.bodies(folder, metas)
                        .map(|r| r.map(|item| (TargetKey(item.meta.key.0.clone()), item))),
                )
                .boxed(),
            Err(e) => stream::iter([Err(e)]).boxed(),
        });
        Box::pin(stream::iter(bad).chain(bodies))
    }

    fn set_flags<'a>(
        &'a self,
        folder: &'a FolderPath,
        changes: Vec<(TargetKey, Flags)>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.store_flags(folder, changes))
    }

    fn delete<'a>(
        &'a self,
        folder: &'a FolderPath,
        keys: Vec<TargetKey>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.expunge(folder, keys))
    }
}
