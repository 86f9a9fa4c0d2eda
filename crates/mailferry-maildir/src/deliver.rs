//! Delivery: the blocking file work of an append batch.
//!
//! Each message is written to `tmp/` (mode 0600, LF storage form, mtime = internal date),
//! synced per the [`FsyncPolicy`], then renamed into `cur/` with its info suffix, so a reader
//! never sees a half-written message. Every item goes to `cur/`, also without flags: `new/`
//! means "never seen by a mail client", which a migrated message has been, and `cur/` names
//! always carry an explicit `:2,` suffix. Keyword letters are written to `dovecot-keywords`
//! (serialised per folder) before any message that uses them. An item is reported `Ok` only
//! once it is durable under the policy; if the directory sync that makes a batch durable fails,
//! the batch fails as a whole (transient), and the copier finds what did land before retrying.
//! A full or read-only file system fails the batch as fatal: every further item would fail
//! the same way.
//!
//! The file holds the item's wire-form bytes in LF storage form
//! ([`mailferry_core::normalise::write_lf`]): each CRLF becomes LF except one right after a lone
//! CR, which stays CRLF, so that reading the file back (bare LF → CRLF, nothing else) gives the
//! item's bytes exactly — lone CRs, NULs and all. `S=` is the file's size, `W=` the wire size.

use std::collections::{BTreeSet, HashMap};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use mailferry_core::normalise::{lf_len, write_lf};
use mailferry_core::{
    AppendOutcome, Error, ErrorKind, Flags, InternalDate, Result, SourceKey, TargetKey,
};

use crate::keywords::Keywords;
use crate::name;

/// When written data is forced to disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Each file and its directory, per item: slowest, nothing acknowledged is ever at risk.
    Always,
    /// Each file, then each touched directory once per batch before the batch is acknowledged.
    #[default]
    PerBatch,
    /// Never: leaves it to the OS (fast; a power cut may lose acknowledged items).
    Never,
}

/// One message to deliver.
#[derive(Debug, Clone)]
pub struct ToWrite {
    /// The source's key, for error messages and the state.
    pub key: SourceKey,
    /// The message in wire form (CRLF line endings, lone CRs as data).
    pub body: Bytes,
    /// Flags and keywords to store.
    pub flags: Flags,
    /// Becomes the file's mtime.
    pub date: Option<InternalDate>,
}

/// Creates `dir` and its `cur/new/tmp` (0700) where missing.
pub fn ensure_maildir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true).mode(0o700);
    for sub in ["cur", "new", "tmp"] {
        builder.create(dir.join(sub))?;
    }
    Ok(())
}

/// Forces a directory's entries (creations, renames) to disk.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// The instant of an internal date as a file time.
pub fn system_time(date: InternalDate) -> SystemTime {
    let secs = Duration::from_secs(date.timestamp.unsigned_abs());
    if date.timestamp >= 0 {
        UNIX_EPOCH + secs
    } else {
        UNIX_EPOCH - secs
    }
}

/// Loads the folder's keyword table, giving letters to every keyword in `wanted` that has
/// none and storing the file if that changed anything. Returns the table and, per keyword
/// that could not get a letter, the reason. Callers hold the folder's keyword lock.
pub fn assign_keywords<'a>(
    dir: &Path,
    wanted: impl IntoIterator<Item = &'a String>,
    sync: bool,
) -> Result<(Keywords, HashMap<String, String>)> {
    let mut keywords = Keywords::load(dir).map_err(|e| {
        Error::io(
            ErrorKind::Item,
            format!("reading {}", dir.join(crate::keywords::FILE).display()),
            e,
        )
    })?;
    let before = keywords.clone();
    let mut refused = HashMap::new();
    for keyword in wanted {
        if keyword == name::FORWARDED {
            continue;
        }
        if let Err(reason) = keywords.assign(keyword) {
            refused.insert(keyword.clone(), reason);
        }
    }
    if keywords != before {
        keywords.store(dir, &dir.join("tmp"), sync).map_err(|e| {
            Error::io(
                ErrorKind::Item,
                format!("writing {}", dir.join(crate::keywords::FILE).display()),
                e,
            )
        })?;
    }
    Ok((keywords, refused))
}

/// The info letters for `flags`, or an item error naming the keyword that cannot be stored.
pub fn info_for(
    flags: &Flags,
    keywords: &Keywords,
    refused: &HashMap<String, String>,
) -> std::result::Result<String, String> {
    name::info_from_flags(flags, keywords).map_err(|keyword| {
        refused
            .get(&keyword)
            .cloned()
            .unwrap_or_else(|| format!("keyword {keyword:?} has no letter in this folder"))
    })
}

/// The kind of an I/O error while writing: a full or read-only file system or an exhausted
/// quota stops the run (every further item would fail the same way, and the fix is the
/// operator's); anything else is about this item.
pub fn write_error_kind(e: &std::io::Error) -> ErrorKind {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::StorageFull | K::ReadOnlyFilesystem | K::QuotaExceeded => ErrorKind::Fatal,
        _ => ErrorKind::Item,
    }
}

/// Locks a mutex that guards no data of its own (poisoning cannot leave anything half-done).
pub fn lock(mutex: &Mutex<()>) -> std::sync::MutexGuard<'_, ()> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Files written by a delivery: key → path, for the store's index.
pub type Written = Vec<(String, PathBuf)>;

/// Delivers a batch into the folder at `dir`. Returns one outcome per item, in order, and the
/// files written (key → path) for the caller's index.
pub fn deliver(
    dir: &Path,
    items: Vec<ToWrite>,
    policy: FsyncPolicy,
    separator: char,
    keyword_lock: &Mutex<()>,
) -> Result<(Vec<AppendOutcome>, Written)> {
    ensure_maildir(dir)
        .map_err(|e| Error::io(ErrorKind::Item, format!("creating {}", dir.display()), e))?;
    let wanted: BTreeSet<&String> = items.iter().flat_map(|i| &i.flags.keywords).collect();
    let (keywords, refused) = if wanted.iter().any(|k| *k != name::FORWARDED) {
        let _guard = lock(keyword_lock);
        assign_keywords(dir, wanted, policy != FsyncPolicy::Never)?
    } else {
        (Keywords::default(), HashMap::new())
    };
    let cur = dir.join("cur");
    let mut outcomes = Vec::with_capacity(items.len());
    let mut written = Vec::new();
    for item in items {
        let key = item.key.clone();
        let outcome = info_for(&item.flags, &keywords, &refused)
            .map_err(|reason| Error::item(format!("{key}: {reason}")).with_item(key.clone()))
            .and_then(|info| write_one(dir, &cur, &item, &info, policy, separator));
        match outcome {
            Ok((unique, path)) => {
                outcomes.push(Ok(TargetKey(unique.clone())));
                written.push((unique, path));
            }
            // A full disk fails the batch and the run; what this batch already wrote stays
            // pending and is found by read-back on the next run.
            Err(e) if e.is_fatal() => return Err(e),
            Err(e) => outcomes.push(Err(e)),
        }
    }
    if policy == FsyncPolicy::PerBatch && !written.is_empty() {
        sync_dir(&cur).map_err(|e| {
            Error::io(
                ErrorKind::Transient,
                format!("syncing {} after delivering a batch", cur.display()),
                e,
            )
        })?;
    }
    Ok((outcomes, written))
}

/// The buffer a message is written through (a message smaller than this gets its own size).
const WRITE_BUFFER: usize = 256 << 10;

fn write_one(
    dir: &Path,
    cur: &Path,
    item: &ToWrite,
    info: &str,
    policy: FsyncPolicy,
    separator: char,
) -> Result<(String, PathBuf)> {
    let unique = name::new_unique(lf_len(&item.body), item.body.len() as u64);
    let tmp = dir.join("tmp").join(&unique);
    let path = cur.join(name::with_info(&unique, separator, info));
    let result = (|| {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        // Converted to LF storage form on the way through a bounded buffer, not into a copy of
        // the message.
        let mut out =
            std::io::BufWriter::with_capacity(WRITE_BUFFER.min(item.body.len()).max(1), file);
        write_lf(&item.body, &mut out)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        if let Some(date) = item.date {
            file.set_modified(system_time(date))?;
        }
        if policy != FsyncPolicy::Never {
            file.sync_all()?;
        }
        drop(file);
        std::fs::rename(&tmp, &path)?;
        if policy == FsyncPolicy::Always {
            sync_dir(cur)?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok((unique, path)),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(Error::io(
                write_error_kind(&e),
                format!("writing {} to {}", item.key, path.display()),
                e,
            )
            .with_item(item.key.clone()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn item(body: &'static [u8], flags: &[&str], date: Option<i64>) -> ToWrite {
        ToWrite {
            key: SourceKey::from("k"),
            body: Bytes::from_static(body),
            flags: Flags::from_imap(flags.iter().copied()),
            date: date.map(InternalDate::from_timestamp),
        }
    }

    #[test]
    fn writes_lf_files_with_info_mtime_and_private_modes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let folder = dir.path().join(".Sub");
        let (outcomes, written) = deliver(
            &folder,
            vec![item(
                b"Subject: a\r\n\r\nbody\r\n",
                &["\\Seen", "Work"],
                Some(-86_400),
            )],
            FsyncPolicy::Always,
            ':',
            &Mutex::new(()),
        )
        .expect("deliver");
        let key = outcomes[0].as_ref().expect("ok").0.clone();
        let (unique, path) = &written[0];
        assert_eq!(&key, unique);
        assert!(
            path.to_string_lossy().ends_with(":2,Sa"),
            "{}",
            path.display()
        );
        assert_eq!(name::size_field(unique, 'S'), Some(17));
        assert_eq!(name::size_field(unique, 'W'), Some(20));
        assert_eq!(std::fs::read(path).expect("read"), b"Subject: a\n\nbody\n");
        let meta = std::fs::metadata(path).expect("stat");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(
            meta.modified().expect("mtime"),
            system_time(InternalDate::from_timestamp(-86_400))
        );
        for d in ["", "cur", "new", "tmp"] {
            let mode = std::fs::metadata(folder.join(d))
                .expect("stat")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o700, "{d}");
        }
        assert_eq!(
            std::fs::read_dir(folder.join("tmp")).expect("tmp").count(),
            0,
            "nothing is left in tmp/"
        );
    }

    #[test]
    fn a_full_disk_stops_the_run_but_a_bad_file_is_one_item() {
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        assert_eq!(write_error_kind(&full), ErrorKind::Fatal);
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert_eq!(write_error_kind(&denied), ErrorKind::Item);
    }

    #[test]
    fn a_keyword_that_does_not_fit_fails_only_its_item() {
        let dir = tempfile::tempdir().expect("tempdir");
        let many: Vec<String> = (0..27).map(|i| format!("k{i}")).collect();
        let mut over = item(b"Subject: over\r\n\r\n", &[], None);
        over.flags.keywords = many.iter().cloned().collect();
        let (outcomes, written) = deliver(
            dir.path(),
            vec![item(b"Subject: fine\r\n\r\n", &["\\Seen"], None), over],
            FsyncPolicy::PerBatch,
            ':',
            &Mutex::new(()),
        )
        .expect("deliver");
        assert!(outcomes[0].is_ok());
        let err = outcomes[1]
            .as_ref()
            .expect_err("27 keywords cannot be held");
        assert_eq!(err.kind(), ErrorKind::Item);
        assert!(err.to_string().contains("26 keywords"), "{err}");
        assert_eq!(written.len(), 1);
    }
}
