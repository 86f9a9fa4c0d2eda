//! The [`Mbox`] store: where its folders are, what their status is, and the blocking work
//! behind the [`Source`](mailferry_core::Source) and [`Target`](mailferry_core::Target) impls
//! in [`crate::backend`].
//!
//! Status and keys. A message's key is the decoded offset of its `From ` line. Offsets only
//! mean something for the file they were read from, so the folder's validity token is derived
//! from the file's device, inode and first line: replacing the file (how Thunderbird compacts
//! and most tools rewrite) or changing its first message gives a new token, and the copier then
//! treats every offset as new (its first-contact dedupe keeps that from duplicating). A file
//! rewritten in place behind its first message keeps its token: fetch then checks that a `From `
//! line is still at each offset, but cannot tell a shifted message from the original — see the
//! crate docs. The status is cheap and needs no scan: size, mtime (as `modseq`) and validity,
//! so an unchanged file is skipped without being read; `count` is 0 (unknown without reading
//! every byte), and `next_id` is the file length, where the next appended message will start.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

use mailferry_core::{Checksum, Error, ErrorKind, Folder, FolderPath, FolderStatus, Result};

use crate::layout::{self, FolderFile, GZ_SUFFIX, Sniffed};
use crate::parse::Variant;
use crate::scan::{GzSource, Input, Scanner};
use crate::takeout;
use crate::write::GzTail;

/// Whether the store is one file or a directory tree of files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Layout {
    /// An existing directory is a tree, an existing file is one folder; a path that does not
    /// exist yet is a file when it ends in `.mbox`, `.mbx` or `.gz`, else a tree.
    #[default]
    Auto,
    /// One mbox file, holding one folder ([`MboxOptions::file_folder`]).
    File,
    /// A directory of mbox files, Thunderbird style (`X`, `X.sbd/child`).
    Directory,
}

/// How an [`Mbox`] store reads and writes.
#[derive(Debug, Clone)]
pub struct MboxOptions {
    /// How `>From ` lines are unquoted when reading (default mboxrd). Writing is always mboxrd.
    pub variant: Variant,
    /// File or directory (default: decided from the path).
    pub layout: Layout,
    /// The folder a single-file store holds (default `INBOX`: a lone mbox is usually someone's
    /// whole mailbox or an export of it).
    pub file_folder: FolderPath,
    /// New files in a directory store are gzip-compressed (`X.gz`). A single file is compressed
    /// when its name ends in `.gz`. Existing files keep their form.
    pub gzip: bool,
    /// Google Takeout: put each message in the folders its `X-Gmail-Labels:` header names
    /// (single-file stores only; read-only).
    pub gmail_labels: bool,
}

impl Default for MboxOptions {
    fn default() -> Self {
        MboxOptions {
            variant: Variant::Mboxrd,
            layout: Layout::Auto,
            file_folder: FolderPath::inbox(),
            gzip: false,
            gmail_labels: false,
        }
    }
}

/// An mbox store — one file or a directory of them — that is both a
/// [`Source`](mailferry_core::Source) and a [`Target`](mailferry_core::Target). Clones share
/// the same store (and its per-file append locks).
#[derive(Clone)]
pub struct Mbox {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub root: PathBuf,
    pub single_file: bool,
    pub options: MboxOptions,
    /// One lock per file: the copier appends several batches to one folder at once.
    pub appends: Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<Option<GzTail>>>>>,
    /// Folders found by the last discovery, for names that do not round-trip through escaping.
    pub discovered: Mutex<HashMap<FolderPath, FolderFile>>,
}

impl Mbox {
    /// Opens (or prepares to create) the store at `path` with default options.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self> {
        Self::with_options(path, MboxOptions::default())
    }

    /// Opens (or prepares to create) the store at `path`. Nothing is created until a folder is
    /// ensured or appended to.
    pub fn with_options(path: impl Into<PathBuf>, options: MboxOptions) -> Result<Self> {
        let root = path.into();
        let single_file = match options.layout {
            Layout::File => true,
            Layout::Directory => false,
            Layout::Auto if root.is_dir() => false,
            Layout::Auto if root.exists() => true,
            Layout::Auto => {
                let name = root
                    .file_name()
                    .map(|n| n.to_string_lossy().to_ascii_lowercase());
                name.is_some_and(|n| [".mbox", ".mbx", GZ_SUFFIX].iter().any(|s| n.ends_with(s)))
            }
        };
        if options.gmail_labels && !single_file {
            return Err(Error::fatal(format!(
                "{}: Gmail labels are read from a single Takeout mbox file, not a directory",
                root.display()
            )));
        }
        Ok(Mbox {
            inner: Arc::new(Inner {
                root,
                single_file,
                options,
                appends: Mutex::new(HashMap::new()),
                discovered: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The store's path.
    pub fn path(&self) -> &Path {
        &self.inner.root
    }

    /// Whether the store is a single file.
    pub fn is_single_file(&self) -> bool {
        self.inner.single_file
    }
}

pub(crate) fn io_error(kind: ErrorKind, what: impl std::fmt::Display, e: io::Error) -> Error {
    Error::io(kind, what.to_string(), e)
}

/// A file's first non-blank line (decoded), at most 1 KiB of it.
fn first_line(input: &mut Input) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(1024);
    input.take(4096).read_to_end(&mut head)?;
    let start = head
        .iter()
        .position(|&b| b != b'\n' && b != b'\r')
        .unwrap_or(head.len());
    let line = &head[start..];
    let end = memchr::memchr(b'\n', line).unwrap_or(line.len()).min(1024);
    Ok(line[..end].to_vec())
}

/// Opens a folder's file for reading, decoding gzip, after taking back a batch a dead writer
/// left torn in it. An empty file is an empty mbox, even where it should have been gzip.
pub(crate) fn open_input(path: &Path, gzip: bool) -> io::Result<Input> {
    crate::journal::recover(path, None)?;
    if gzip && fs::metadata(path)?.len() == 0 {
        Ok(Input::Memory(io::Cursor::new(Vec::new())))
    } else if gzip {
        Input::gz(GzSource::File(path.to_path_buf()))
    } else {
        Ok(Input::plain(fs::File::open(path)?))
    }
}

/// The status of one file (see the module docs).
pub(crate) fn file_status(path: &Path, gzip: bool) -> io::Result<FolderStatus> {
    let meta = fs::metadata(path)?;
    let line = first_line(&mut open_input(path, gzip)?)?;
    let mut id = Vec::with_capacity(16 + line.len());
    id.extend_from_slice(&meta.dev().to_le_bytes());
    id.extend_from_slice(&meta.ino().to_le_bytes());
    id.extend_from_slice(&line);
    let hash = Checksum::of(&id);
    let mut validity = [0u8; 8];
    validity.copy_from_slice(&hash.as_bytes()[..8]);
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as u64);
    Ok(FolderStatus {
        count: 0,
        validity: u64::from_le_bytes(validity),
        next_id: (!gzip).then_some(meta.len()),
        modseq: mtime,
        size: Some(meta.len()),
    })
}

/// Where a listing after a checkpoint may start: `next_id` when a message starts there, else 0.
pub(crate) fn resume_offset(path: &Path, next_id: u64) -> io::Result<Option<u64>> {
    let file = fs::File::open(path)?;
    let len = file.metadata()?.len();
    if next_id == 0 || next_id > len {
        return Ok(Some(0));
    }
    if next_id == len {
        return Ok(None);
    }
    let mut probe = [0u8; 6];
    let n = file.read_at(&mut probe, next_id - 1)?;
    Ok(Some(if n == 6 && &probe == b"\nFrom " {
        next_id
    } else {
        0
    }))
}

impl Inner {
    /// Whether `folder` is the one folder of a single-file store.
    fn is_file_folder(&self, folder: &FolderPath) -> bool {
        let own = &self.options.file_folder;
        folder == own || (folder.is_inbox() && own.is_inbox())
    }

    fn single_file_entry(&self) -> FolderFile {
        let gzip = match layout::sniff(&self.root) {
            Ok(s) => s == Sniffed::Gzip,
            Err(_) => self
                .root
                .to_string_lossy()
                .to_ascii_lowercase()
                .ends_with(GZ_SUFFIX),
        };
        FolderFile {
            folder: self.options.file_folder.clone(),
            file: Some(self.root.clone()),
            gzip,
        }
    }

    /// The file holding `folder`, existing or to be created.
    pub fn resolve(&self, folder: &FolderPath) -> Result<FolderFile> {
        if folder.depth() == 0 {
            return Err(Error::fatal("a folder needs a name"));
        }
        if self.single_file {
            if self.options.gmail_labels || self.is_file_folder(folder) {
                return Ok(self.single_file_entry());
            }
            return Err(Error::fatal(format!(
                "{} is a single mbox file holding only {}; to hold {folder} as well, use a directory",
                self.root.display(),
                self.options.file_folder
            )));
        }
        if let Some(found) = self
            .discovered
            .lock()
            .ok()
            .and_then(|d| d.get(folder).cloned())
            && found.file.is_some()
        {
            return Ok(found);
        }
        let plain = layout::folder_file(&self.root, folder);
        let mut gz = plain.clone().into_os_string();
        gz.push(GZ_SUFFIX);
        let gz = PathBuf::from(gz);
        let (file, gzip) = if plain.is_file() {
            let sniffed = layout::sniff(&plain).map_err(|e| {
                io_error(ErrorKind::Fatal, format!("reading {}", plain.display()), e)
            })?;
            (plain, sniffed == Sniffed::Gzip)
        } else if gz.is_file() || self.options.gzip {
            (gz, true)
        } else {
            (plain, false)
        };
        Ok(FolderFile {
            folder: folder.clone(),
            file: Some(file),
            gzip,
        })
    }

    /// Every folder with its status (blocking).
    pub fn list_folders(&self) -> Result<Vec<Folder>> {
        if !self.root.exists() {
            return Err(Error::fatal(format!(
                "no mbox store at {}",
                self.root.display()
            )));
        }
        let entries = if self.single_file {
            if self.options.gmail_labels {
                return self.takeout_folders();
            }
            vec![self.single_file_entry()]
        } else {
            let found = layout::discover(&self.root).map_err(|e| {
                io_error(
                    ErrorKind::Fatal,
                    format!("listing {}", self.root.display()),
                    e,
                )
            })?;
            if let Ok(mut d) = self.discovered.lock() {
                *d = found
                    .iter()
                    .map(|f| (f.folder.clone(), f.clone()))
                    .collect();
            }
            found
        };
        entries
            .into_iter()
            .map(|entry| {
                let (status, selectable) = match &entry.file {
                    Some(file) => (
                        file_status(file, entry.gzip).map_err(|e| {
                            io_error(ErrorKind::Fatal, format!("reading {}", file.display()), e)
                        })?,
                        true,
                    ),
                    None => (FolderStatus::default(), false),
                };
                Ok(Folder {
                    special_use: layout::special_use_of(&entry.folder),
                    path: entry.folder,
                    status,
                    selectable,
                })
            })
            .collect()
    }

    /// Takeout: one folder per label found in the file. Finding the labels reads the file.
    fn takeout_folders(&self) -> Result<Vec<Folder>> {
        let entry = self.single_file_entry();
        let status = file_status(&self.root, entry.gzip).map_err(|e| {
            io_error(
                ErrorKind::Fatal,
                format!("reading {}", self.root.display()),
                e,
            )
        })?;
        let mut folders = std::collections::BTreeSet::new();
        let input = open_input(&self.root, entry.gzip).map_err(|e| {
            io_error(
                ErrorKind::Fatal,
                format!("reading {}", self.root.display()),
                e,
            )
        })?;
        let mut scanner = Scanner::new(input, 0, self.options.variant);
        while let Some(m) = scanner.next_message(false).map_err(|e| {
            io_error(
                ErrorKind::Item,
                format!("reading {}", self.root.display()),
                e,
            )
        })? {
            let mut flags = m.flags;
            folders.extend(takeout::apply_labels(m.gmail_labels.as_deref(), &mut flags));
        }
        Ok(folders
            .into_iter()
            .map(|path| Folder {
                special_use: layout::special_use_of(&path),
                path,
                status: status.clone(),
                selectable: true,
            })
            .collect())
    }
}
