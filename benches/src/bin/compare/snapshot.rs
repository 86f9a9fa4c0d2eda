//! A server's contents as fingerprints: per folder, per message the BLAKE3 checksum of the
//! canonical (CRLF) bytes, the flags and keywords, the internal date, plus the Message-ID and
//! header field names for explaining differences.
//!
//! Why fingerprints and not `MemoryStore`s: at full scale a corpus is 0.9–1.4 GB, and holding
//! both sides' bodies in memory would make the harness, not the tools, the memory hog. Bodies
//! are fetched in batches and dropped once fingerprinted.
//!
//! Both servers are read directly (not through the latency proxy) with mailferry's own IMAP
//! backend; its reading is covered by the IMAP conformance tests, and every tool (mailferry
//! included) is judged by the same reader. Local stores a tool wrote (the `transfers`
//! scenario's Maildirs) are read with mailferry's Maildir reader through the same
//! [`read_source`], so they are fingerprinted exactly like a server.
//!
//! Memory: the reader holds one folder's metadata list and one batch of bodies at a time; the
//! fingerprints themselves (about 1 KB per message with the header names) are what stays, so
//! a 200,000-message folder costs the *harness* a few hundred MB, never the tool measured.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use futures_util::StreamExt;
use mailferry_core::bytes::Bytes;
use mailferry_core::normalise::canonicalise;
use mailferry_core::{Checksum, FolderPath, ItemMeta, Source};
use mailferry_imap::{Auth, ImapConfig, ImapStore, Secret, Security};

/// Bodies fetched per request while reading a server back.
const FETCH_BATCH: usize = 200;

/// What is compared per message.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Fingerprint {
    /// Checksum of the canonical bytes.
    pub checksum: Checksum,
    /// IMAP flag tokens, system flags first, then keywords (sorted).
    pub flags: Vec<String>,
    /// Internal date (Unix seconds).
    pub date: Option<i64>,
    /// Message-ID, for pairing changed messages.
    pub message_id: Option<String>,
    /// Header field names in order (lower case), to name headers a tool added or dropped.
    pub header_names: Vec<String>,
    /// Checksum of the body alone (after the header block), for pairing a message whose
    /// headers a tool rewrote when it has no Message-ID.
    pub body_checksum: Checksum,
    /// Canonical size in bytes.
    pub size: u64,
}

/// Every selectable folder of a server with its messages' fingerprints.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Folder (segments joined with `/`) → fingerprints.
    pub folders: BTreeMap<String, Vec<Fingerprint>>,
    /// Folders listed with messages that could not be read, with the error.
    pub unreadable: BTreeMap<String, String>,
}

impl Snapshot {
    /// Number of messages.
    pub fn messages(&self) -> u64 {
        self.folders.values().map(|v| v.len() as u64).sum()
    }

    /// Canonical bytes of all messages.
    pub fn bytes(&self) -> u64 {
        self.folders.values().flatten().map(|f| f.size).sum()
    }
}

/// The header block of canonical bytes (up to the first empty line).
fn header_block(canonical: &[u8]) -> &[u8] {
    if canonical.starts_with(b"\r\n") {
        return &[];
    }
    match canonical.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => &canonical[..i + 2],
        None => canonical,
    }
}

/// Header field names (lower case, in order) and the Message-ID of a canonical message.
pub fn header_facts(canonical: &[u8]) -> (Vec<String>, Option<String>) {
    let mut names = Vec::new();
    let mut message_id = None;
    for line in header_block(canonical).split(|&b| b == b'\n') {
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = String::from_utf8_lossy(&line[..colon])
            .trim()
            .to_ascii_lowercase();
        if name == "message-id" && message_id.is_none() {
            let value = String::from_utf8_lossy(&line[colon + 1..]);
            message_id = Some(value.trim().to_string());
        }
        names.push(name);
    }
    (names, message_id)
}

/// The fingerprint of one message.
pub fn fingerprint(body: Bytes, meta: &ItemMeta) -> Fingerprint {
    let (canonical, _) = canonicalise(body);
    let (header_names, message_id) = header_facts(&canonical);
    let body_start = header_block(&canonical).len() + 2;
    let mut flags: Vec<String> = meta
        .flags
        .imap_tokens()
        .into_iter()
        .map(str::to_string)
        .collect();
    // imap_tokens puts system flags first; keywords come from a BTreeSet, so already sorted.
    flags.dedup();
    Fingerprint {
        checksum: Checksum::of(&canonical),
        flags,
        date: meta.internal_date.map(|d| d.timestamp),
        message_id,
        header_names,
        body_checksum: Checksum::of(canonical.get(body_start..).unwrap_or_default()),
        size: canonical.len() as u64,
    }
}

/// Reads every selectable folder of `user@127.0.0.1:port` (plaintext IMAP).
pub async fn read_server(port: u16, user: &str, password: &str) -> Result<Snapshot> {
    let config = ImapConfig::new(
        "127.0.0.1",
        port,
        Security::Plaintext,
        Auth::Login {
            user: user.into(),
            password: Secret::new(password),
        },
    )
    .with_max_connections(2);
    let label = config.label();
    let store = ImapStore::connect(config)
        .await
        .with_context(|| format!("connecting to {label} to read it back"))?;
    // An empty folder needs no SELECT; dsync leaves parents that LIST shows but SELECT
    // refuses, and they hold nothing to compare.
    read_source(&store, true)
        .await
        .with_context(|| format!("reading {label}"))
}

/// Reads every selectable folder of any store (the IMAP reader above, a Maildir or an mbox
/// tree written by a tool) into a [`Snapshot`]. With `trust_empty_status`, a folder whose
/// listing says it holds nothing is recorded empty without being opened. A folder that cannot
/// be read is recorded as unreadable (a finding), not skipped.
pub async fn read_source(store: &dyn Source, trust_empty_status: bool) -> Result<Snapshot> {
    let folders = store.list_folders().await.context("listing folders")?;
    let mut snapshot = Snapshot::default();
    for folder in folders.into_iter().filter(|f| f.selectable) {
        let name = folder.path.join("/");
        if trust_empty_status && folder.status.count == 0 {
            snapshot.folders.insert(name, Vec::new());
            continue;
        }
        match read_folder(store, &folder.path).await {
            Ok(prints) => {
                snapshot.folders.insert(name, prints);
            }
            Err(e) => {
                snapshot.unreadable.insert(name, format!("{e:#}"));
            }
        }
    }
    Ok(snapshot)
}

/// One folder's fingerprints: the listing first (metadata only), then the bodies in batches of
/// [`FETCH_BATCH`], each dropped once fingerprinted, so memory stays at the fingerprints.
async fn read_folder(store: &dyn Source, path: &FolderPath) -> Result<Vec<Fingerprint>> {
    let mut metas = Vec::new();
    let mut listing = store.list_items(path, None);
    while let Some(meta) = listing.next().await {
        metas.push(meta?);
    }
    drop(listing);
    let mut prints = Vec::with_capacity(metas.len());
    for chunk in metas.chunks(FETCH_BATCH) {
        let mut fetched = store.fetch(path, chunk.to_vec());
        let mut got = 0;
        while let Some(item) = fetched.next().await {
            let item = item?;
            prints.push(fingerprint(item.body, &item.meta));
            got += 1;
        }
        anyhow::ensure!(
            got == chunk.len(),
            "asked for {} bodies, got {got}",
            chunk.len()
        );
    }
    Ok(prints)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailferry_core::{Flags, InternalDate, SourceKey};

    fn meta(flags: &[&str], date: i64) -> ItemMeta {
        ItemMeta {
            key: SourceKey("1".into()),
            size: 0,
            flags: Flags::from_imap(flags.iter().copied()),
            internal_date: Some(InternalDate::from_timestamp(date)),
        }
    }

    #[test]
    fn lf_and_crlf_copies_of_a_message_have_the_same_fingerprint() {
        let lf = Bytes::from_static(b"Message-ID: <a@x>\nSubject: s\n\nbody\n");
        let crlf = Bytes::from_static(b"Message-ID: <a@x>\r\nSubject: s\r\n\r\nbody\r\n");
        let m = meta(&["\\Seen", "Project-X"], 5);
        assert_eq!(fingerprint(lf, &m), fingerprint(crlf, &m));
    }

    #[test]
    fn header_facts_skip_continuations_and_stop_at_the_body() {
        let msg =
            b"Message-ID:  <id@x> \r\nSubject: a\r\n  folded\r\nX-TUID: q\r\n\r\nNot: header\r\n";
        let (names, id) = header_facts(msg);
        assert_eq!(names, ["message-id", "subject", "x-tuid"]);
        assert_eq!(id.as_deref(), Some("<id@x>"));
    }

    #[test]
    fn a_message_without_body_separator_is_all_header() {
        let (names, id) = header_facts(b"Subject: only\r\nFrom: a\r\n");
        assert_eq!(names, ["subject", "from"]);
        assert_eq!(id, None);
        assert!(header_facts(b"\r\nbody: not a header\r\n").0.is_empty());
    }
}
