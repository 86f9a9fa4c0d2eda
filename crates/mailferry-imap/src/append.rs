//! Appending a batch, with as few round trips as the server allows.
//!
//! - **MULTIAPPEND + LITERAL+** (Dovecot, Cyrus): the whole batch is ONE command with
//!   non-synchronizing literals, `APPEND box (f) "date" {N+}` CRLF body SP (f) "date" {N+} …, and
//!   the tagged `OK [APPENDUID v uids]` gives every message its UID, in order: one round trip
//!   per batch instead of two per message (async-imap's typed `append` waits for the `+`
//!   continuation and drops APPENDUID).
//! - MULTIAPPEND is atomic, so one bad message fails the whole command. Then the batch is
//!   appended again one by one on a fresh session (the old one may be mid-literal), so only the
//!   bad message gets an item error carrying the server's text.
//! - **LITERAL+ without MULTIAPPEND**: single APPENDs, all written before any answer is read.
//! - **Neither**: classic APPEND, waiting for the `+` continuation.
//! - `[TRYCREATE]`: the folder is created and the append retried once. A lost connection or a
//!   busy server is a transient error for the batch: the copier finds out what landed before it
//!   retries. Messages over the advertised APPENDLIMIT are refused without being sent, and so
//!   are messages containing NUL bytes: IMAP literals cannot carry them and Dovecot stores them
//!   as 0x80, so sending would change the message silently; the item error says why instead.
//! - The literal is the item's wire-form bytes as they are: the source's bytes with bare LFs
//!   made CRLF (IMAP requires it), lone CRs kept as data (Dovecot stores and serves them as
//!   they are), nothing else changed.

use mailferry_core::{AppendOutcome, CanonicalItem, Error, FolderPath, Result, TargetKey};

use crate::ImapStore;
use crate::conn::Conn;
use crate::proto::{Code, Tagged, flag_list, quote};

/// The part of an APPEND that precedes each literal: ` (flags) "date" {N+}`.
fn message_head(item: &CanonicalItem, literal_plus: bool) -> Result<String> {
    let flags = flag_list(&item.meta.flags).map_err(|e| e.with_item(item.meta.key.clone()))?;
    let date = item
        .internal_date()
        .map(|d| format!(" \"{}\"", d.to_imap()))
        .unwrap_or_default();
    let plus = if literal_plus { "+" } else { "" };
    Ok(format!(" {flags}{date} {{{}{plus}}}", item.body.len()))
}

/// How this server takes literals.
#[derive(Debug, Clone, Copy)]
struct Literals {
    /// `{N+}` allowed for any size.
    plus: bool,
    /// `{N+}` allowed up to 4096 bytes (LITERAL-).
    minus: bool,
}

impl Literals {
    fn non_sync(self, len: usize) -> bool {
        self.plus || (self.minus && len <= 4096)
    }
}

/// What happened to one message.
fn outcome(conn: &Conn, item: &CanonicalItem, t: &Tagged, uid: Option<u32>) -> AppendOutcome {
    if t.is_ok() {
        return Ok(TargetKey(uid.map(|u| u.to_string()).unwrap_or_default()));
    }
    Err(conn
        .refused(t, &format!("APPEND of {}", item.meta.key), true)
        .with_item(item.meta.key.clone()))
}

fn single_uid(t: &Tagged) -> Option<u32> {
    match &t.code {
        Code::AppendUid { uids, .. } if uids.len() == 1 => Some(uids[0]),
        _ => None,
    }
}

impl ImapStore {
    /// Appends a batch to `folder`; one outcome per item, in order.
    pub(crate) async fn append_batch(
        &self,
        folder: &FolderPath,
        batch: &[CanonicalItem],
    ) -> Result<Vec<AppendOutcome>> {
        let name = self.server_name(folder)?;
        let limit = self.info.append_limit();
        let mut outcomes: Vec<Option<AppendOutcome>> = (0..batch.len()).map(|_| None).collect();
        let mut todo = Vec::with_capacity(batch.len());
        for (i, item) in batch.iter().enumerate() {
            if let Some(limit) = limit
                && item.size() > limit
            {
                outcomes[i] = Some(Err(Error::item(format!(
                    "{}: {} is {} bytes, over the server's APPENDLIMIT of {limit} bytes",
                    self.pool.config().label(),
                    item.meta.key,
                    item.size()
                ))
                .with_item(item.meta.key.clone())));
            } else if memchr::memchr(0, &item.body).is_some() {
                // RFC 3501 literals are CHAR8 (no NUL) and servers rewrite them (Dovecot stores
                // 0x80): sending it would change the message silently.
                outcomes[i] = Some(Err(Error::item(format!(
                    "{}: {} contains NUL bytes, which an IMAP literal cannot carry (the server \
                     would rewrite them); not appended",
                    self.pool.config().label(),
                    item.meta.key
                ))
                .with_item(item.meta.key.clone())));
            } else if let Err(e) = message_head(item, false) {
                outcomes[i] = Some(Err(e));
            } else {
                todo.push(i);
            }
        }
        let literals = Literals {
            plus: self.info.has("LITERAL+"),
            minus: self.info.has("LITERAL-"),
        };
        let multi = self.info.has("MULTIAPPEND")
            && todo.len() > 1
            && todo.iter().all(|&i| literals.non_sync(batch[i].body.len()));
        let mut created = false;
        if multi {
            let items: Vec<&CanonicalItem> = todo.iter().map(|&i| &batch[i]).collect();
            loop {
                let mut lease = self.pool.get().await?;
                let t = multiappend(lease.conn(), &name, &items).await?;
                match &t.code {
                    Code::AppendUid { uids, .. } if t.is_ok() && uids.len() == items.len() => {
                        lease.release();
                        for (&i, uid) in todo.iter().zip(uids) {
                            outcomes[i] = Some(Ok(TargetKey(uid.to_string())));
                        }
                        todo.clear();
                    }
                    _ if t.is_ok() => {
                        // Stored, but without usable UIDs (no UIDPLUS): keys stay unknown.
                        lease.release();
                        for &i in &todo {
                            outcomes[i] = Some(Ok(TargetKey(String::new())));
                        }
                        todo.clear();
                    }
                    Code::TryCreate if !created => {
                        lease.release();
                        self.create_after_trycreate(folder).await?;
                        created = true;
                        continue;
                    }
                    _ if t.kind(true) != mailferry_core::ErrorKind::Item => {
                        return Err(lease.conn().refused(&t, &format!("APPEND to {name}"), true));
                    }
                    _ => {
                        // Atomic refusal: find the culprit one by one on a fresh session.
                        tracing::info!(folder = %folder, answer = %t.describe(),
                            "MULTIAPPEND refused, appending the batch one by one");
                        drop(lease);
                    }
                }
                break;
            }
        }
        if !todo.is_empty() {
            loop {
                let mut lease = self.pool.get().await?;
                let items: Vec<&CanonicalItem> = todo.iter().map(|&i| &batch[i]).collect();
                let answers = if literals.plus {
                    pipelined(lease.conn(), &name, &items).await?
                } else {
                    one_by_one(lease.conn(), &name, &items, literals).await?
                };
                if !created && answers.iter().any(|t| t.code == Code::TryCreate) {
                    lease.release();
                    self.create_after_trycreate(folder).await?;
                    created = true;
                    let stored: Vec<usize> = todo
                        .iter()
                        .zip(&answers)
                        .filter(|(_, t)| t.is_ok())
                        .map(|(&i, _)| i)
                        .collect();
                    for (&i, t) in todo.iter().zip(&answers) {
                        if t.is_ok() {
                            outcomes[i] = Some(Ok(TargetKey(
                                single_uid(t).map(|u| u.to_string()).unwrap_or_default(),
                            )));
                        }
                    }
                    todo.retain(|i| !stored.contains(i));
                    continue;
                }
                for (&i, t) in todo.iter().zip(&answers) {
                    if !t.is_ok() && t.kind(true) != mailferry_core::ErrorKind::Item {
                        return Err(lease.conn().refused(t, &format!("APPEND to {name}"), true));
                    }
                    outcomes[i] = Some(outcome(lease.conn(), &batch[i], t, single_uid(t)));
                }
                lease.release();
                break;
            }
        }
        Ok(outcomes
            .into_iter()
            .zip(batch)
            .map(|(o, item)| {
                o.unwrap_or_else(|| {
                    Err(Error::item("not appended (internal error)")
                        .with_item(item.meta.key.clone()))
                })
            })
            .collect())
    }

    async fn create_after_trycreate(&self, folder: &FolderPath) -> Result<()> {
        if let Ok(mut known) = self.created.lock() {
            known.clear();
        }
        mailferry_core::Target::ensure_folder(self, folder, None).await
    }
}

/// One MULTIAPPEND command with non-synchronizing literals.
async fn multiappend(conn: &mut Conn, name: &str, items: &[&CanonicalItem]) -> Result<Tagged> {
    let mut line = format!("APPEND {}", quote(name)?);
    let mut iter = items.iter();
    let Some(first) = iter.next() else {
        return Err(Error::item("an empty MULTIAPPEND"));
    };
    line.push_str(&message_head(first, true)?);
    let tag = conn.start(&line).await?;
    conn.write(&first.body).await?;
    for item in iter {
        let head = format!("{}\r\n", message_head(item, true)?);
        conn.write(head.as_bytes()).await?;
        conn.write(&item.body).await?;
    }
    conn.write(b"\r\n").await?;
    conn.flush().await?;
    conn.finish(tag, |_| Ok(())).await
}

/// Single APPENDs with non-synchronizing literals, all sent before any answer is read.
async fn pipelined(conn: &mut Conn, name: &str, items: &[&CanonicalItem]) -> Result<Vec<Tagged>> {
    let quoted = quote(name)?;
    let mut tags = Vec::with_capacity(items.len());
    for item in items {
        let line = format!("APPEND {quoted}{}", message_head(item, true)?);
        tags.push(conn.start(&line).await?);
        conn.write(&item.body).await?;
        conn.write(b"\r\n").await?;
    }
    conn.flush().await?;
    conn.finish_all(&tags, |_| Ok(())).await
}

/// Classic APPENDs, each waiting for the `+` continuation unless LITERAL- covers it.
async fn one_by_one(
    conn: &mut Conn,
    name: &str,
    items: &[&CanonicalItem],
    literals: Literals,
) -> Result<Vec<Tagged>> {
    let quoted = quote(name)?;
    let mut answers = Vec::with_capacity(items.len());
    for item in items {
        let non_sync = literals.non_sync(item.body.len());
        let line = format!("APPEND {quoted}{}", message_head(item, non_sync)?);
        let tag = conn.send(&line).await?;
        if !non_sync {
            // Wait for `+`, or an early refusal (too large, no such folder).
            let mut refused = None;
            loop {
                let resp = conn.read().await?;
                if let async_imap::imap_proto::Response::Continue { .. } = resp.parsed() {
                    break;
                }
                if let Some(t) = crate::fetch::answer_to(conn, &resp, &tag)? {
                    refused = Some(t);
                    break;
                }
            }
            if let Some(t) = refused {
                answers.push(t);
                continue;
            }
        }
        conn.write(&item.body).await?;
        conn.write(b"\r\n").await?;
        conn.flush().await?;
        answers.push(conn.finish(tag, |_| Ok(())).await?);
    }
    Ok(answers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use mailferry_core::{Flags, InternalDate, Item, ItemMeta, SourceKey};

    fn item(body: &'static [u8], flags: &[&str]) -> CanonicalItem {
        CanonicalItem::prepare(Item {
            folder: FolderPath::inbox(),
            meta: ItemMeta {
                key: SourceKey("7".into()),
                size: body.len() as u64,
                flags: Flags::from_imap(flags.iter().copied()),
                internal_date: InternalDate::parse_imap("05-Mar-2024 23:59:01 -0130"),
            },
            body: Bytes::from_static(body),
        })
        .expect("prepares")
    }

    #[test]
    fn message_heads_carry_flags_date_and_literal_form() {
        let it = item(b"Subject: x\r\n\r\nhi\r\n", &["\\Seen", "$Forwarded"]);
        assert_eq!(
            message_head(&it, true).expect("head"),
            " (\\Seen $Forwarded) \"05-Mar-2024 23:59:01 -0130\" {18+}"
        );
        assert_eq!(
            message_head(&it, false).expect("head"),
            " (\\Seen $Forwarded) \"05-Mar-2024 23:59:01 -0130\" {18}"
        );
    }

    #[test]
    fn literal_minus_covers_only_small_messages() {
        let minus = Literals {
            plus: false,
            minus: true,
        };
        assert!(minus.non_sync(4096) && !minus.non_sync(4097));
        let none = Literals {
            plus: false,
            minus: false,
        };
        assert!(!none.non_sync(1));
    }
}
