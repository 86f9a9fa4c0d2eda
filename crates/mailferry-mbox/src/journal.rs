//! The append journal: how a batch torn by a dead process is taken back.
//!
//! A failed write cuts the file back to where the batch started ([`crate::write::append`]), but
//! a process that is killed (SIGKILL, OOM, a crash) cuts nothing: part of the batch stays in
//! the file — a fragment that would be read as a message of its own, or, in a gzip file, a
//! torn member that makes everything after it undecodable. So before a batch's first byte is
//! written, a small journal beside the file (`.NAME.mailferry-append`, a dotfile, which
//! directory discovery skips) records the file's length before the batch and the length the
//! batch will end at; it is removed once the batch is written and synced. A journal that is
//! still there belongs to a writer that died, and the next open of the file ([`recover`], under
//! the same `flock` writers hold, so it never races a live append; a reader that finds the lock
//! taken leaves the journal to its live owner) compares the lengths:
//!
//! - shorter than planned: the batch is torn; the file is cut back to where the batch started.
//!   Nothing acknowledged is lost: the copier records an item *done* only after the append
//!   returned, so every item of the torn batch is still *pending* and is looked for, and
//!   appended again, on the next run;
//! - as long as planned or longer: the batch completed (the process died before removing the
//!   journal, or another program appended since); the data is left alone;
//! - shorter than before the batch: someone else cut the file; the data is left alone.
//!
//! A journal without its closing newline (empty, or cut short) belongs to a writer that died
//! while writing the journal itself, before the batch's first byte: it is removed and the file
//! left alone.
//!
//! A gzip batch is compressed as it is written, so its length is not known beforehand; its
//! journal has no planned length, and the batch's member is decoded instead: one that does not
//! decode to its end is torn and cut back.
//!
//! The journal is not fsynced: it guards against a dead process, whose writes the page cache
//! keeps, not against power loss (the batch's own fsync decides what a power cut keeps).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The journal beside `path`.
pub fn journal_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.mailferry-append"))
}

/// Records that a batch is about to take `path` from `before` to `planned` bytes (`None`: a
/// gzip member of unknown length).
pub fn begin(path: &Path, before: u64, planned: Option<u64>) -> io::Result<()> {
    let planned = planned.map_or("-".to_string(), |p| p.to_string());
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(journal_path(path))?;
    io::Write::write_all(&mut file, format!("{before} {planned}\n").as_bytes())
}

/// The batch is complete (or was cut back): forgets the journal.
pub fn finish(path: &Path) -> io::Result<()> {
    match fs::remove_file(journal_path(path)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// A journal: the length before the batch, and the planned length when known.
type Entry = (u64, Option<u64>);

/// What a journal on disk says.
#[derive(Debug, PartialEq, Eq)]
enum Journal {
    /// A whole journal: a batch may have been torn.
    Batch(Entry),
    /// A journal cut short: its writer died before the batch's first byte.
    Unfinished,
}

fn read(path: &Path) -> io::Result<Option<Journal>> {
    let text = match fs::read(journal_path(path)) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if !text.ends_with(b"\n")
        && text
            .iter()
            .all(|b| b.is_ascii_digit() || matches!(b, b' ' | b'-'))
    {
        return Ok(Some(Journal::Unfinished));
    }
    let text = String::from_utf8_lossy(&text);
    let mut parts = text.split_whitespace();
    let before = parts.next().and_then(|b| b.parse::<u64>().ok());
    let planned = match parts.next() {
        Some("-") => Some(None),
        Some(p) => p.parse::<u64>().ok().map(Some),
        None => None,
    };
    match (before, planned) {
        (Some(before), Some(planned)) if planned.is_none_or(|p| before <= p) => {
            Ok(Some(Journal::Batch((before, planned))))
        }
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} is not a mailferry append journal; remove it once {} is checked by hand",
                journal_path(path).display(),
                path.display()
            ),
        )),
    }
}

/// Takes back a batch a dead writer left torn in `path` (see the module docs). Cheap when there
/// is no journal (one `stat`), which is always but during an append or after a crash. `file` is
/// `path` opened for reading and writing by a caller already holding its lock, or `None` to open and lock
/// it here — unless a live writer holds the lock, in which case there is nothing to recover.
pub fn recover(path: &Path, file: Option<&File>) -> io::Result<()> {
    if !journal_path(path).exists() {
        return Ok(());
    }
    let own;
    let file = match file {
        Some(f) => f,
        None => {
            own = match OpenOptions::new().read(true).write(true).open(path) {
                Ok(f) => f,
                // The file is gone: so is what the journal was about.
                Err(e) if e.kind() == io::ErrorKind::NotFound => return finish(path),
                Err(e) => return Err(e),
            };
            match own.try_lock() {
                Ok(()) => {}
                // A live writer holds the lock (a dead one's lock went with it): the journal
                // is its own, and the batch is being written, not torn.
                Err(fs::TryLockError::WouldBlock) => return Ok(()),
                Err(fs::TryLockError::Error(e)) => return Err(e),
            }
            &own
        }
    };
    // Read under the lock: a live writer in this process may have just finished.
    let (before, planned) = match read(path)? {
        None => return Ok(()),
        Some(Journal::Unfinished) => return finish(path),
        Some(Journal::Batch(entry)) => entry,
    };
    let len = file.metadata()?.len();
    let torn = match planned {
        Some(planned) => len >= before && len < planned,
        None => len > before && !decodes_to_end(file, before)?,
    };
    if torn {
        tracing::warn!(
            path = %path.display(),
            before,
            ?planned,
            len,
            "an append was interrupted (the process died); cutting its partial batch back"
        );
        file.set_len(before)?;
        file.sync_data()?;
    }
    finish(path)
}

/// Whether the gzip members from `offset` to the end of `file` decode completely.
fn decodes_to_end(file: &File, offset: u64) -> io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut reader = file.try_clone()?;
    reader.seek(SeekFrom::Start(offset))?;
    let mut decoder = flate2::read::MultiGzDecoder::new(io::BufReader::new(reader));
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match decoder.read(&mut buf) {
            Ok(0) => return Ok(true),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::InvalidInput
                        | io::ErrorKind::InvalidData
                        | io::ErrorKind::UnexpectedEof
                ) =>
            {
                return Ok(false);
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_back_only_a_batch_shorter_than_planned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("Inbox");
        for (len, planned, kept) in [(25, 40, 10), (40, 40, 40), (50, 40, 50), (5, 40, 5)] {
            fs::write(&path, vec![b'x'; len]).expect("write");
            begin(&path, 10, Some(planned)).expect("journal");
            recover(&path, None).expect("recover");
            assert_eq!(fs::metadata(&path).expect("stat").len(), kept, "len {len}");
            assert!(!journal_path(&path).exists(), "the journal is gone");
        }
        recover(&path, None).expect("no journal: nothing to do");
        assert_eq!(
            journal_path(&path),
            dir.path().join(".Inbox.mailferry-append")
        );
    }

    #[test]
    fn cuts_back_a_torn_gzip_member_and_keeps_a_whole_one() {
        use std::io::Write;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("Inbox.gz");
        let member = |text: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(text).expect("gz");
            e.finish().expect("gz")
        };
        let first = member(b"From a Sat Jan  3 01:05:34 1996\n\none\n");
        let second = member(b"From b Sat Jan  3 01:05:34 1996\n\ntwo\n");
        let whole = [first.clone(), second.clone()].concat();
        fs::write(&path, &whole).expect("write");
        begin(&path, first.len() as u64, None).expect("journal");
        recover(&path, None).expect("recover");
        assert_eq!(
            fs::read(&path).expect("read"),
            whole,
            "a whole member stays"
        );
        fs::write(&path, &whole[..whole.len() - 3]).expect("write");
        begin(&path, first.len() as u64, None).expect("journal");
        recover(&path, None).expect("recover");
        assert_eq!(fs::read(&path).expect("read"), first, "a torn member goes");
    }

    #[test]
    fn a_journal_cut_short_is_dropped_and_the_file_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("Inbox");
        for journal in [&b""[..], b"1", b"10 4", b"10 -"] {
            fs::write(&path, b"From x\n\nbody\n").expect("write");
            fs::write(journal_path(&path), journal).expect("write");
            recover(&path, None).expect("recover");
            assert_eq!(fs::read(&path).expect("read"), b"From x\n\nbody\n");
            assert!(!journal_path(&path).exists(), "the journal is gone");
        }
    }

    #[test]
    fn refuses_a_journal_it_did_not_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("Inbox");
        fs::write(&path, b"From x\n").expect("write");
        fs::write(journal_path(&path), b"garbage").expect("write");
        let err = recover(&path, None).expect_err("unknown journal");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(fs::read(&path).expect("read"), b"From x\n");
    }
}
