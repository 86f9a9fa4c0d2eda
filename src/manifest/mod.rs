//! The audit manifest of a mailbox: one JSON line per message a run copied (source folder and
//! key, target folder and key, canonical size, BLAKE3 checksum, flags, internal date,
//! Message-ID), gzip-compressed, written as the copy goes. Its own BLAKE3 digest goes in the
//! run's report; [`check`] re-checks a target against it months later, without the source.
//!
//! Design decisions, and why:
//! - **Recorded by decorators, not inside the copier.** [`ManifestTarget`] (a target layer)
//!   notes the metadata of each item the target is asked to append; [`ManifestState`]
//!   wraps the state store and, when the copier records an item *done*, writes the item's line
//!   **before** passing the record on. So every item the state calls done is in the manifest,
//!   whatever instant the process is killed at (a line whose record did not commit belongs to an
//!   item that is in the target anyway: the append had been acknowledged). A run killed after
//!   an append landed but before its line was written leaves the items *pending*; the next run
//!   finds them in the target, and the state decorator, which saw them listed as pending, writes
//!   their lines then (`recovered`: flags and date unknown). Items a run did not write (copied
//!   and recorded by an earlier run, found in the target) are not lines of that run: a run's
//!   line count is the report's `copied`, plus any recovered items.
//! - **One gzip member per run, appended.** Re-running a copy with the same `--manifest` adds a
//!   member (gzip readers, `zcat` included, read concatenated members as one stream), so the
//!   file stays the audit of the whole mailbox. Each batch is sync-flushed and `fdatasync`ed, so
//!   a killed run leaves a member that decodes up to its last batch; the next run that opens
//!   the file rewrites that torn tail into a complete member before appending.
//! - **Memory**: writing holds only the metadata of the batches in flight. `verify --manifest`
//!   reads the file in passes (a census, then groups of whole folders of at most 200,000
//!   entries of a few hundred bytes each), plus one folder's target listing at a time: bounded,
//!   unless a single folder is larger, at the cost of one more read of the file per group.
//! - **JSON lines** so an auditor can read it with `zcat | jq` and no mailferry; each member
//!   starts with a header line (`"mailferry_manifest": 1`) naming the run.

mod check;
mod record;

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use mailferry_core::{Checksum, Error, FolderPath, Result};
use serde::{Deserialize, Serialize};

pub use check::{ManifestCheck, ManifestDifference, check};
pub use record::{ManifestState, ManifestTarget, Recorder};

/// The manifest format's version, in each member's header line.
pub const FORMAT_VERSION: u32 = 1;

/// The first line of each run's member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Always [`FORMAT_VERSION`]; marks the line as a header.
    pub mailferry_manifest: u32,
    /// The migration (source → target) the run copied.
    pub migration: String,
    /// When the run began, seconds since the Unix epoch.
    pub started_unix: Option<f64>,
}

/// One copied message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The source folder (path segments).
    pub folder: FolderPath,
    /// The source's key of the message.
    pub source_key: String,
    /// The target folder it was written to.
    pub target_folder: FolderPath,
    /// The target's key (APPENDUID, Maildir unique name, mbox position).
    pub target_key: String,
    /// Canonical (CRLF) size in bytes.
    pub size: u64,
    /// BLAKE3 of the canonical bytes.
    pub checksum: Checksum,
    /// Flags and keywords as IMAP tokens; `None` for a recovered message (see `recovered`).
    pub flags: Option<Vec<String>>,
    /// The internal date given to the target, in IMAP form (`17-Jul-1996 02:44:25 -0700`).
    pub internal_date: Option<String>,
    /// The Message-ID, for finding a message by it.
    pub message_id: Option<String>,
    /// Written by a run that was killed after the target stored the message and before it was
    /// recorded; this run found it in the target (by checksum) and lists it. Only what the state
    /// kept is known: keys, size, checksum, not flags or date.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recovered: bool,
}

/// What a run wrote, for the report: where, how many lines, and the file's digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestSummary {
    /// The manifest file.
    pub path: PathBuf,
    /// Messages this run added.
    pub entries: u64,
    /// Messages in the whole file (earlier runs included).
    pub total_entries: u64,
    /// BLAKE3 of the whole file as it stands after this run (`b3sum FILE` shows the same).
    pub blake3: String,
}

fn io_error(path: &Path, what: &str, e: io::Error) -> Error {
    Error::fatal(format!("manifest {}: {what}: {e}", path.display()))
}

/// The manifest's lines, split into headers and entries. `torn` is set when the file ends in
/// the middle of a member (a killed run): the complete lines before that point are returned.
#[derive(Debug, Default)]
pub struct Contents {
    /// One per run.
    pub headers: Vec<Header>,
    /// Every copied message, in file order.
    pub entries: Vec<Entry>,
    /// The file ends inside a member.
    pub torn: bool,
}

/// Reads a whole manifest. A line that is not valid is an error naming its line number.
pub fn read(path: &Path) -> Result<Contents> {
    scan(path, |_| true)
}

/// Reads a manifest keeping only the entries `keep` accepts (it sees every entry, in order):
/// `verify --manifest` reads it in passes so as to hold a bounded number of entries.
pub(crate) fn scan(path: &Path, mut keep: impl FnMut(&Entry) -> bool) -> Result<Contents> {
    let mut out = Contents::default();
    let mut n = 0usize;
    out.torn = for_each_line(path, |line| {
        n += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let bad = |e: serde_json::Error| {
            Error::fatal(format!(
                "manifest {}: line {n} is not a manifest line: {e}",
                path.display()
            ))
        };
        let value: serde_json::Value = serde_json::from_slice(line).map_err(bad)?;
        if value.get("mailferry_manifest").is_some() {
            out.headers
                .push(serde_json::from_value(value).map_err(bad)?);
        } else {
            let entry: Entry = serde_json::from_value(value).map_err(bad)?;
            if keep(&entry) {
                out.entries.push(entry);
            }
        }
        Ok(())
    })?;
    Ok(out)
}

/// Calls `f` with each complete line (without its newline) of every member, streaming. Returns
/// whether the file ends inside a member (a read error after which nothing more decodes); the
/// partial line there is not passed on.
fn for_each_line(path: &Path, mut f: impl FnMut(&[u8]) -> Result<()>) -> Result<bool> {
    let file = File::open(path).map_err(|e| io_error(path, "cannot open it", e))?;
    let mut reader = io::BufReader::new(MultiGzDecoder::new(io::BufReader::new(file)));
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => return Ok(false),
            Ok(_) if line.last() == Some(&b'\n') => f(&line[..line.len() - 1])?,
            // The last line has no newline: the writer always ends lines, so it was cut.
            Ok(_) => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Ok(true),
        }
    }
}

/// Appends one run's member to a manifest file, line by line.
pub struct Writer {
    path: PathBuf,
    encoder: Option<GzEncoder<File>>,
    entries: u64,
    earlier_entries: u64,
    /// (source folder, source key, checksum) of every entry of earlier runs.
    earlier: HashSet<(FolderPath, String, Checksum)>,
}

impl Writer {
    /// Opens `path` for a new run: creates it (private), or appends a member to an existing
    /// manifest after rewriting a torn last member (see the module's header).
    pub fn open(path: &Path, header: &Header) -> Result<Writer> {
        let mut earlier_entries = 0;
        let mut earlier = HashSet::new();
        if path.exists() {
            let contents = read(path)?;
            earlier_entries = contents.entries.len() as u64;
            earlier = contents
                .entries
                .iter()
                .map(|e| (e.folder.clone(), e.source_key.clone(), e.checksum))
                .collect();
            if contents.torn {
                repair(path, &contents)?;
            }
        }
        let file = open_append(path).map_err(|e| io_error(path, "cannot open it", e))?;
        let mut writer = Writer {
            path: path.to_path_buf(),
            encoder: Some(GzEncoder::new(file, Compression::default())),
            entries: 0,
            earlier_entries,
            earlier,
        };
        writer.write_line(header)?;
        writer.sync()?;
        Ok(writer)
    }

    fn write_line(&mut self, value: &impl Serialize) -> Result<()> {
        let encoder = self
            .encoder
            .as_mut()
            .ok_or_else(|| Error::fatal("manifest already finished"))?;
        let mut line =
            serde_json::to_vec(value).map_err(|e| Error::fatal(format!("manifest line: {e}")))?;
        line.push(b'\n');
        encoder
            .write_all(&line)
            .map_err(|e| io_error(&self.path, "cannot write", e))
    }

    /// Whether an earlier run's member lists this item already.
    pub fn listed_earlier(
        &self,
        folder: &FolderPath,
        source_key: &str,
        checksum: Checksum,
    ) -> bool {
        self.earlier
            .contains(&(folder.clone(), source_key.to_string(), checksum))
    }

    /// Writes the entries of one batch and makes them durable (sync flush + fdatasync).
    pub fn append(&mut self, entries: &[Entry]) -> Result<()> {
        for e in entries {
            self.write_line(e)?;
        }
        self.entries += entries.len() as u64;
        self.sync()
    }

    fn sync(&mut self) -> Result<()> {
        let encoder = self
            .encoder
            .as_mut()
            .ok_or_else(|| Error::fatal("manifest already finished"))?;
        encoder
            .flush()
            .and_then(|()| encoder.get_ref().sync_data())
            .map_err(|e| io_error(&self.path, "cannot flush", e))
    }

    /// Ends the member and returns the summary with the whole file's digest.
    pub fn finish(&mut self) -> Result<ManifestSummary> {
        if let Some(encoder) = self.encoder.take() {
            let file = encoder
                .finish()
                .map_err(|e| io_error(&self.path, "cannot finish", e))?;
            file.sync_all()
                .map_err(|e| io_error(&self.path, "cannot sync", e))?;
        }
        Ok(ManifestSummary {
            path: self.path.clone(),
            entries: self.entries,
            total_entries: self.earlier_entries + self.entries,
            blake3: digest(&self.path)?,
        })
    }
}

/// BLAKE3 of a file's bytes, as 64 hex digits.
pub fn digest(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(|e| io_error(path, "cannot open it", e))?;
    let mut hasher = blake3::Hasher::new();
    io::copy(&mut file, &mut hasher).map_err(|e| io_error(path, "cannot read it", e))?;
    Ok(hasher.finalize().to_hex().to_string())
}

fn open_append(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
}

/// Replaces a manifest whose last member is torn by one complete member holding every line that
/// could be read (headers and entries in order), via a temporary file and a rename.
fn repair(path: &Path, contents: &Contents) -> Result<()> {
    let tmp = path.with_extension("repair.tmp");
    let _ = std::fs::remove_file(&tmp);
    let file = open_append(&tmp).map_err(|e| io_error(&tmp, "cannot create it", e))?;
    let mut encoder = GzEncoder::new(file, Compression::default());
    for_each_line(path, |line| {
        encoder
            .write_all(line)
            .and_then(|()| encoder.write_all(b"\n"))
            .map_err(|e| io_error(&tmp, "cannot write", e))
    })?;
    encoder
        .finish()
        .and_then(|f| f.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| io_error(path, "cannot repair its torn end", e))?;
    tracing::warn!(
        manifest = %path.display(),
        entries = contents.entries.len(),
        "the manifest ended inside a run's member (an interrupted run); kept every complete line"
    );
    Ok(())
}

#[cfg(test)]
mod tests;
