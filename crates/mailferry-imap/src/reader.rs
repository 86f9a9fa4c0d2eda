//! The IMAP reader, shared by both sides: the paged listing and the body-fetch stream that the
//! source serves as `list_items`/`fetch` and the target reuses for `existing` and `read_back`.
//! See [`crate::fetch`] for the protocol decisions; this module is the state machines that drive
//! them over pooled sessions.

use std::collections::VecDeque;

use futures_util::{StreamExt, stream};
use mailferry_core::{
    BoxStream, Checkpoint, Error, ErrorKind, FolderPath, Item, ItemMeta, Result, SourceKey,
};

use crate::ImapStore;
use crate::fetch::{
    ATTEMPTS, FIRST_RANGE, Fetched, LARGE, answer_to, backoff, body_command, fetch_large,
    list_page, next_range, parse_fetch, plan_chunks,
};
use crate::pool::Lease;

/// Flattens a stream of pages into a stream of items.
pub(crate) fn flatten<'a, T: Send + 'a>(
    pages: impl futures_util::Stream<Item = Result<Vec<T>>> + Send + 'a,
) -> BoxStream<'a, Result<T>> {
    Box::pin(pages.flat_map(|page| {
        stream::iter(match page {
            Ok(items) => items.into_iter().map(Ok).collect::<Vec<_>>(),
            Err(e) => vec![Err(e)],
        })
    }))
}

/// Where a paged listing is.
struct Pager {
    name: String,
    lo: u32,
    step: u32,
    after: Option<Checkpoint>,
    validity: Option<u32>,
    attempts: u32,
    done: bool,
}

impl ImapStore {
    /// The UID-ordered metadata of a folder, page by page; with `headers`, with the fingerprint
    /// headers. A missing folder is an error, or nothing when `missing_ok`.
    pub(crate) fn pages<'a>(
        &'a self,
        folder: &'a FolderPath,
        after: Option<Checkpoint>,
        headers: bool,
        missing_ok: bool,
    ) -> impl futures_util::Stream<Item = Result<Vec<(u32, Fetched)>>> + Send + 'a {
        let name = self.server_name(folder);
        let pager = name.map(|name| Pager {
            name,
            lo: after.map_or(1, |c| u32::try_from(c.next_id.max(1)).unwrap_or(u32::MAX)),
            step: FIRST_RANGE,
            after,
            validity: None,
            attempts: 0,
            done: false,
        });
        stream::unfold(Some(pager), move |state| async move {
            match state? {
                Err(e) => Some((Err(e), None)),
                Ok(p) if p.done => None,
                Ok(mut p) => {
                    let page = self.next_page(&mut p, folder, headers, missing_ok).await;
                    p.done |= page.is_err();
                    Some((page, Some(Ok(p))))
                }
            }
        })
    }

    async fn next_page(
        &self,
        p: &mut Pager,
        folder: &FolderPath,
        headers: bool,
        missing_ok: bool,
    ) -> Result<Vec<(u32, Fetched)>> {
        loop {
            let attempt = async {
                let mut lease = self.pool.get().await?;
                let page = list_page(lease.conn(), &p.name, p.lo, &mut p.step, headers).await?;
                lease.release();
                Ok::<_, Error>(page)
            };
            let page = match attempt.await {
                Ok(page) => page,
                Err(e) if e.is_transient() && p.attempts + 1 < ATTEMPTS => {
                    p.attempts += 1;
                    p.step = next_range(p.step, None);
                    tracing::warn!(folder = %folder, error = %e, range = p.step,
                        "listing failed, retrying a smaller range");
                    tokio::time::sleep(backoff(p.attempts)).await;
                    continue;
                }
                Err(e) => return Err(mailferry_core::layers::retry::give_up(e)),
            };
            p.attempts = 0;
            let Some(page) = page else {
                p.done = true;
                return if missing_ok {
                    Ok(Vec::new())
                } else {
                    Err(Error::item(format!(
                        "{}: folder {folder} ({}) does not exist",
                        self.pool.config().label(),
                        p.name
                    )))
                };
            };
            match p.validity {
                None => {
                    p.validity = Some(page.validity);
                    // A checkpoint from another UIDVALIDITY means nothing: start over.
                    if let Some(after) = p.after
                        && after.validity != u64::from(page.validity)
                        && p.lo != 1
                    {
                        p.lo = 1;
                        continue;
                    }
                }
                Some(v) if v != page.validity => {
                    return Err(Error::transient(format!(
                        "{}: UIDVALIDITY of {folder} changed while listing it",
                        self.pool.config().label()
                    )));
                }
                Some(_) => {}
            }
            match page.next {
                Some(next) => p.lo = next,
                None => p.done = true,
            }
            if !page.items.is_empty() || p.done {
                return Ok(page.items);
            }
        }
    }

    /// Streams bodies of `metas` (keys are UIDs) as they arrive.
    pub(crate) fn bodies<'a>(
        &'a self,
        folder: &'a FolderPath,
        metas: Vec<ItemMeta>,
    ) -> BoxStream<'a, Result<Item>> {
        let name = match self.server_name(folder) {
            Ok(name) => name,
            Err(e) => return Box::pin(stream::iter([Err(e)])),
        };
        let mut out = VecDeque::new();
        let mut keyed = Vec::with_capacity(metas.len());
        for meta in metas {
            match meta.key.0.parse::<u32>() {
                Ok(uid) if uid > 0 => keyed.push((uid, meta)),
                _ => out.push_back(Err(Error::item(format!(
                    "{:?} is not an IMAP UID",
                    meta.key.0
                ))
                .with_item(meta.key))),
            }
        }
        let sizes: Vec<(u32, u64)> = keyed.iter().map(|(u, m)| (*u, m.size)).collect();
        let mut slots: Vec<Option<(u32, ItemMeta)>> = keyed.into_iter().map(Some).collect();
        let chunks = plan_chunks(&sizes)
            .into_iter()
            .map(|idx| idx.into_iter().filter_map(|i| slots[i].take()).collect())
            .collect();
        let run = FetchRun {
            store: self,
            folder,
            name,
            chunks,
            flight: None,
            attempts: 0,
            out,
        };
        Box::pin(stream::unfold(run, |mut run| async move {
            let next = run.next().await?;
            Some((next, run))
        }))
    }
}

/// A body fetch in progress.
struct FetchRun<'a> {
    store: &'a ImapStore,
    folder: &'a FolderPath,
    name: String,
    chunks: VecDeque<Vec<(u32, ItemMeta)>>,
    flight: Option<Flight<'a>>,
    attempts: u32,
    out: VecDeque<Result<Item>>,
}

/// One body-fetch command on the wire.
struct Flight<'a> {
    lease: Lease<'a>,
    tag: String,
    pending: std::collections::VecDeque<(u32, ItemMeta)>,
}

impl<'a> FetchRun<'a> {
    fn label(&self) -> String {
        self.store.pool.config().label()
    }

    fn item(&self, meta: ItemMeta, body: bytes::Bytes) -> Item {
        Item {
            folder: self.folder.clone(),
            meta,
            body,
        }
    }

    async fn next(&mut self) -> Option<Result<Item>> {
        loop {
            if let Some(ready) = self.out.pop_front() {
                return Some(ready);
            }
            let Some(flight) = self.flight.as_mut() else {
                let chunk = self.chunks.pop_front()?;
                if chunk.len() == 1 && chunk[0].1.size > LARGE {
                    self.large(chunk).await;
                    continue;
                }
                if let Err((e, chunk)) = self.start(chunk).await {
                    self.failed(e, chunk).await;
                }
                continue;
            };
            let read = flight.lease.conn().read().await;
            let resp = match read {
                Ok(resp) => resp,
                Err(e) => {
                    let pending = self.flight.take().map(|f| f.pending).unwrap_or_default();
                    self.failed(e, pending.into()).await;
                    continue;
                }
            };
            match answer_to(flight.lease.conn(), &resp, &flight.tag) {
                Ok(None) => {
                    if let Some(f) = parse_fetch(&resp)
                        && let (Some(uid), Some((None, body))) = (f.uid, f.body)
                        && let Some(i) = flight.pending.iter().position(|(u, _)| *u == uid)
                        && let Some((_, meta)) = flight.pending.remove(i)
                    {
                        // Progress: a link that keeps dropping but keeps delivering goes on.
                        self.attempts = 0;
                        return Some(Ok(self.item(meta, body)));
                    }
                }
                Ok(Some(answer)) => {
                    let Some(flight) = self.flight.take() else {
                        continue;
                    };
                    self.answered(flight, answer).await;
                }
                Err(e) => {
                    let pending = self.flight.take().map(|f| f.pending).unwrap_or_default();
                    self.failed(e, pending.into()).await;
                }
            }
        }
    }

    /// Sends the fetch command of a chunk.
    async fn start(
        &mut self,
        chunk: Vec<(u32, ItemMeta)>,
    ) -> std::result::Result<(), (Error, Vec<(u32, ItemMeta)>)> {
        let mut lease = match self.store.pool.get().await {
            Ok(lease) => lease,
            Err(e) => return Err((e, chunk)),
        };
        match lease.conn().select(&self.name, false).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                lease.release();
                let why = format!("{}: folder {} no longer exists", self.label(), self.folder);
                for (_, meta) in chunk {
                    self.out
                        .push_back(Err(Error::item(why.clone()).with_item(meta.key)));
                }
                return Ok(());
            }
            Err(e) => return Err((e, chunk)),
        }
        let uids: Vec<u32> = chunk.iter().map(|(u, _)| *u).collect();
        match lease.conn().send(&body_command(&uids)).await {
            Ok(tag) => {
                self.flight = Some(Flight {
                    lease,
                    tag,
                    pending: chunk.into(),
                });
                Ok(())
            }
            Err(e) => Err((e, chunk)),
        }
    }

    /// The command finished: whatever was not returned is an item error, never a silent drop.
    async fn answered(&mut self, flight: Flight<'a>, answer: crate::proto::Tagged) {
        let Flight { lease, pending, .. } = flight;
        if !answer.is_ok() && answer.kind(false) == ErrorKind::Transient {
            drop(lease);
            let e = Error::transient(format!(
                "{}: fetching from {}: the server answered {}",
                self.label(),
                self.folder,
                answer.describe()
            ));
            self.failed(e, pending.into()).await;
            return;
        }
        self.attempts = 0;
        let label = self.label();
        let why = if answer.is_ok() {
            "the message vanished: the server did not return it".to_string()
        } else {
            format!(
                "the server did not return it and answered {}",
                answer.describe()
            )
        };
        for (uid, meta) in pending {
            self.out.push_back(Err(Error::item(format!(
                "{label}: UID {uid} in {}: {why}",
                self.folder
            ))
            .with_item(meta.key)));
        }
        if answer.status == crate::proto::Answer::Bad {
            drop(lease);
        } else {
            lease.release();
        }
    }

    /// A transient failure is retried for what was not delivered; anything else ends the stream.
    async fn failed(&mut self, e: Error, pending: Vec<(u32, ItemMeta)>) {
        if e.is_transient() && self.attempts + 1 < ATTEMPTS {
            self.attempts += 1;
            tracing::warn!(folder = %self.folder, error = %e, "fetch failed, retrying");
            tokio::time::sleep(backoff(self.attempts)).await;
            if !pending.is_empty() {
                self.chunks.push_front(pending);
            }
            return;
        }
        self.chunks.clear();
        self.out
            .push_back(Err(mailferry_core::layers::retry::give_up(e)));
    }

    /// Fetches one large message in parts.
    async fn large(&mut self, chunk: Vec<(u32, ItemMeta)>) {
        let Some((uid, meta)) = chunk.into_iter().next() else {
            return;
        };
        let attempt = async {
            let mut lease = self.store.pool.get().await?;
            if lease.conn().select(&self.name, false).await?.is_none() {
                lease.release();
                return Ok(None);
            }
            let body = fetch_large(lease.conn(), uid, meta.size).await?;
            lease.release();
            Ok::<_, Error>(Some(body))
        };
        match attempt.await {
            Ok(Some(Ok(body))) => {
                self.attempts = 0;
                let item = self.item(meta, body);
                self.out.push_back(Ok(item));
            }
            Ok(Some(Err(answer))) if answer.kind(false) != ErrorKind::Transient => {
                self.out.push_back(Err(Error::item(format!(
                    "{}: UID {uid} in {}: the server did not return it ({})",
                    self.label(),
                    self.folder,
                    answer.describe()
                ))
                .with_item(meta.key)));
            }
            Ok(Some(Err(answer))) => {
                let e = Error::transient(format!("fetching UID {uid}: {}", answer.describe()));
                self.failed(e, vec![(uid, meta)]).await;
            }
            Ok(None) => self.out.push_back(Err(Error::item(format!(
                "{}: folder {} no longer exists",
                self.label(),
                self.folder
            ))
            .with_item(meta.key))),
            Err(e) => self.failed(e, vec![(uid, meta)]).await,
        }
    }
}

pub(crate) fn meta_of(uid: u32, f: Fetched) -> ItemMeta {
    ItemMeta {
        key: SourceKey(uid.to_string()),
        size: u64::from(f.size.unwrap_or(0)),
        flags: f.flags.unwrap_or_default(),
        internal_date: f.internal_date,
    }
}

/// Metadata for listed UIDs, for `read_back`.
pub(crate) fn metas_of(items: Vec<(u32, Fetched)>) -> Vec<ItemMeta> {
    items.into_iter().map(|(uid, f)| meta_of(uid, f)).collect()
}
