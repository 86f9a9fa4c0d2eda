//! Embedding mailferry for an application's own store: implement [`Source`] for it and the
//! whole pipeline — normalisation, checksums, batching, state, exactly-once — comes for free.
//! Here the "application" is a ticket system keeping mail as strings per queue; it is copied
//! into a throwaway Dovecot, twice (the second pass copies nothing).
//! `cargo run -p mailferry-examples --example custom_source`

use std::sync::Arc;

use anyhow::{Context, ensure};
use mailferry::core::bytes::Bytes;
use mailferry::core::futures_util::stream;
use mailferry::core::{
    BoxFuture, BoxStream, Capabilities, Checkpoint, Flags, Folder, FolderPath, FolderStatus,
    InternalDate, Item, ItemMeta, MemoryState, SourceKey,
};
use mailferry::imap::{Auth, ImapConfig, ImapStore, Security};
use mailferry::{Copier, CopyOptions, Result, Source};
use mailferry_testkit::dovecot::{Dovecot, DovecotOptions, require_dovecot};

/// The application's own store: tickets with their raw mail, grouped by queue.
struct TicketStore {
    tickets: Vec<Ticket>,
}

struct Ticket {
    id: u64,
    queue: &'static str,
    closed: bool,
    received: i64,
    raw: String,
}

impl TicketStore {
    fn queue_folder(queue: &str) -> FolderPath {
        FolderPath::new(["Tickets", queue])
    }

    fn in_queue<'a>(&'a self, folder: &'a FolderPath) -> impl Iterator<Item = &'a Ticket> + 'a {
        self.tickets
            .iter()
            .filter(move |t| Self::queue_folder(t.queue) == *folder)
    }
}

impl Source for TicketStore {
    fn capabilities(&self) -> Capabilities {
        // Ticket ids increase, so a re-run can list only tickets after the last checkpoint.
        Capabilities {
            ordered_ids: true,
            internal_date: true,
            ..Capabilities::default()
        }
    }

    fn list_folders(&self) -> BoxFuture<'_, Result<Vec<Folder>>> {
        Box::pin(async move {
            let mut queues: Vec<&str> = self.tickets.iter().map(|t| t.queue).collect();
            queues.sort();
            queues.dedup();
            Ok(queues
                .into_iter()
                .map(|q| {
                    let path = Self::queue_folder(q);
                    let count = self.in_queue(&path).count() as u64;
                    let next_id = self.in_queue(&path).map(|t| t.id + 1).max();
                    Folder::new(
                        path,
                        FolderStatus {
                            count,
                            validity: 1,
                            next_id,
                            ..FolderStatus::default()
                        },
                    )
                })
                .collect())
        })
    }

    fn list_items<'a>(
        &'a self,
        folder: &'a FolderPath,
        after: Option<Checkpoint>,
    ) -> BoxStream<'a, Result<ItemMeta>> {
        let from = after.map_or(0, |c| c.next_id);
        Box::pin(stream::iter(
            self.in_queue(folder)
                .filter(move |t| t.id >= from)
                .map(|t| {
                    Ok(ItemMeta {
                        key: SourceKey(t.id.to_string()),
                        size: t.raw.len() as u64,
                        flags: Flags {
                            seen: t.closed,
                            ..Flags::default()
                        },
                        internal_date: Some(InternalDate::from_timestamp(t.received)),
                    })
                }),
        ))
    }

    fn fetch<'a>(
        &'a self,
        folder: &'a FolderPath,
        items: Vec<ItemMeta>,
    ) -> BoxStream<'a, Result<Item>> {
        Box::pin(stream::iter(items.into_iter().filter_map(move |meta| {
            let ticket = self
                .in_queue(folder)
                .find(|t| t.id.to_string() == meta.key.0)?;
            Some(Ok(Item {
                folder: folder.clone(),
                body: Bytes::from(ticket.raw.clone()),
                meta,
            }))
        })))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if !require_dovecot() {
        return Ok(());
    }
    let tickets = (1..=40)
        .map(|id| Ticket {
            id,
            queue: if id % 3 == 0 { "Billing" } else { "Support" },
            closed: id % 2 == 0,
            received: 1_700_000_000 + id as i64 * 600,
            raw: format!("Message-ID: <ticket-{id}@helpdesk.example>\nFrom: customer{id}@example.org\nSubject: Ticket #{id}\n\nPlease help with issue {id}.\n"),
        })
        .collect();
    let source = Arc::new(TicketStore { tickets });
    let server = Dovecot::start(DovecotOptions::default()).context("starting Dovecot")?;
    let (user, password) = server.login();
    let config = ImapConfig::new(
        server.host(),
        server.imap_port(),
        Security::StartTls,
        Auth::Login {
            user: user.into(),
            password: password.into(),
        },
    )
    .with_ca_file(server.ca_pem_path());
    let target = Arc::new(ImapStore::connect(config).await?);
    let state = Arc::new(MemoryState::new());
    for pass in 1..=2 {
        let copier = Copier::new(
            source.clone(),
            target.clone(),
            state.clone(),
            CopyOptions::default(),
        );
        let report = copier.run(copier.identity_plan().await?).await?;
        println!(
            "pass {pass}: {} tickets copied, {} already copied",
            report.totals.copied, report.totals.already_copied
        );
        ensure!(report.is_success());
        ensure!(report.totals.copied == if pass == 1 { 40 } else { 0 });
    }
    let folders = mailferry::core::Target::list_folders(&*target).await?;
    for f in folders
        .iter()
        .filter(|f| f.path.segments().first().is_some_and(|s| s == "Tickets"))
    {
        println!("{}: {} messages", f.path, f.status.count);
    }
    Ok(())
}
