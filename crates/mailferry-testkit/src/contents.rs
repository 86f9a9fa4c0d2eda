//! What a store holds, in the form tests compare: per folder, the sorted list of every
//! message's canonical checksum, flag tokens and internal date. One definition for every test
//! that checks a copy against its source, so they all compare the same things.

use std::collections::BTreeMap;

use mailferry_core::normalise::canonicalise;
use mailferry_core::{Checksum, FolderPath, MemoryStore};

/// One message as compared: canonical checksum, flag tokens, internal date (Unix seconds).
pub type Message = (Checksum, Vec<String>, Option<i64>);

/// Per folder (empty folders left out): the sorted messages.
pub type Contents = BTreeMap<FolderPath, Vec<Message>>;

/// The contents of `store`.
pub fn contents_of(store: &MemoryStore) -> Contents {
    let mut out = Contents::new();
    for path in store.folder_paths() {
        let mut v: Vec<Message> = store
            .messages(&path)
            .into_values()
            .map(|m| {
                let tokens = m
                    .flags
                    .imap_tokens()
                    .into_iter()
                    .map(String::from)
                    .collect();
                let date = m.internal_date.map(|d| d.timestamp);
                (Checksum::of(&canonicalise(m.body).0), tokens, date)
            })
            .collect();
        v.sort();
        if !v.is_empty() {
            out.insert(path, v);
        }
    }
    out
}
