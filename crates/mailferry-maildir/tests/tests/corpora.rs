//! Every real-world message in `shared/corpora`, and generated lone-CR, CR-before-line-end,
//! mixed-ending and NUL cases, survive memory → Maildir → memory byte for byte in wire form
//! (bare LF as CRLF, everything else — lone CRs included — as the source had it), with flags
//! and internal date, through the real copier.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use mailferry_core::normalise::to_wire;
use mailferry_core::{Checksum, Flags, FolderPath, InternalDate, MemoryState, MemoryStore};
use mailferry_maildir::Layout;
use mailferry_testkit::conformance::copy_all;

/// What must survive, per folder: a hash of the wire-form bytes (not of the canonical form,
/// which would hide a lone CR turned into a line ending), flags, date.
type Contents = BTreeMap<FolderPath, Vec<(Checksum, String, Option<i64>)>>;

fn contents(store: &MemoryStore) -> Contents {
    let mut out = Contents::new();
    for folder in store.folder_paths() {
        let mut v: Vec<_> = store
            .messages(&folder)
            .into_values()
            .map(|m| {
                (
                    Checksum::of(&to_wire(m.body).0),
                    m.flags.to_string(),
                    m.internal_date.map(|d| d.timestamp),
                )
            })
            .collect();
        v.sort();
        if !v.is_empty() {
            out.insert(folder, v);
        }
    }
    out
}

fn is_message(path: &std::path::Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    !(name.starts_with('.') || name.ends_with(".json") || name == "SOURCES.md")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_corpus_message_round_trips_with_its_checksum() {
    let Some(corpora) = crate::corpora_dir() else {
        return;
    };
    let source = MemoryStore::new();
    let mut count = 0usize;
    for (i, path) in crate::walk(&corpora)
        .into_iter()
        .filter(|p| is_message(p))
        .enumerate()
    {
        let relative = path.strip_prefix(&corpora).expect("below the corpora");
        // One folder per corpus, so folder handling is exercised too.
        let corpus = relative
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut flags = Flags {
            seen: i % 2 == 0,
            flagged: i % 5 == 0,
            answered: i % 7 == 0,
            ..Flags::default()
        };
        if i % 3 == 0 {
            flags.keywords.insert(format!("$Label{}", i % 4));
        }
        let body = Bytes::from(std::fs::read(&path).expect("read corpus file"));
        let date = InternalDate::from_timestamp(1_000_000_000 + i as i64 * 3_600);
        source.insert(&FolderPath::new([corpus]), body, flags, Some(date));
        count += 1;
    }
    let generated: [&[u8]; 6] = [
        b"Subject: old mac\r\rline\rline\r",
        b"Subject: cr before crlf\r\n\r\nline\r\r\nline\r\r\r\n",
        b"Subject: nul\r\n\r\na\0b\r\n\0",
        b"Subject: mixed\r\n\nlf\ncrlf\r\nlone\rend\r\r\n",
        b"\r\n\r\r\n\n\r",
        b"Subject: lf only\n\nbody\n",
    ];
    for (i, body) in generated.into_iter().enumerate() {
        let date = InternalDate::from_timestamp(1_600_000_000 + i as i64);
        source.insert(
            &FolderPath::new(["Generated"]),
            Bytes::from_static(body),
            Flags::default(),
            Some(date),
        );
        count += 1;
    }
    assert!(count > 600, "only {count} corpus messages found");

    for layout in [Layout::MaildirPlusPlus, Layout::Fs] {
        let (_dir, maildir) = crate::fresh_store(layout);
        let (maildir_source, maildir_target) = crate::arcs(&maildir);
        let there = copy_all(
            Arc::new(source.clone()),
            maildir_target,
            Arc::new(MemoryState::new()),
        )
        .await;
        let failures: Vec<_> = there.folders.iter().flat_map(|f| &f.failures).collect();
        assert_eq!(there.totals.failed, 0, "{layout:?}: {failures:#?}");
        assert_eq!(there.totals.copied, count as u64);

        let back = MemoryStore::new();
        let report = copy_all(
            maildir_source,
            Arc::new(back.clone()),
            Arc::new(MemoryState::new()),
        )
        .await;
        assert_eq!(report.totals.failed, 0, "{layout:?}: {report:#?}");
        assert_eq!(report.totals.copied, count as u64);
        assert!(
            contents(&back) == contents(&source),
            "{layout:?}: contents differ after the round trip"
        );
        eprintln!("{layout:?}: {count} corpus messages round-tripped unchanged");
    }
}
