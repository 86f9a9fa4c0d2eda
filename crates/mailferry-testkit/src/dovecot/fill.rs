//! [`Dovecot::fill`]: messages written straight into a user's Maildir, as a delivery agent
//! would, because appending half a million messages over IMAP would make every large test a
//! benchmark of the set-up. What Dovecot expects, and so what is written:
//! - a message is written to `tmp/`, given its mtime (= internal date: Dovecot's maildir
//!   INTERNALDATE is the file's mtime) and owner, then renamed into `cur/` with the `:2,` info
//!   letters in ASCII order (`D F R S T`, then keyword letters);
//! - keywords are the letters `a`–`z`, named in the folder's `dovecot-keywords` (`<n> <name>`
//!   lines); the file is rewritten (tmp + rename) before the first message that uses a new
//!   letter, so Dovecot never meets an unknown letter;
//! - names are `<stamp>.M<seq>P<pid>Q0.mailferry-fill,S=<size>,W=<size with CRLF>`: Dovecot
//!   sorts new files by timestamp then the `M` number before giving them UIDs, so UIDs follow
//!   the input order across calls; `S=`/`W=` spare it reading the file for sizes;
//! - folders: INBOX is the Maildir root; Maildir++ (`'.'`) subfolders are `.A.B` with a
//!   `maildirfolder` file; `LAYOUT=fs` (`'/'`) subfolders are `A/B`; segments are stored in
//!   modified UTF-7, as Dovecot writes them.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fs::{self, File, FileTimes};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, fchown};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mailferry_core::{Flags, FolderPath, InternalDate, utf7};

use super::Dovecot;
use crate::corpus::GeneratedMessage;

/// Dovecot stores at most 26 keywords per Maildir folder, as the letters `a`–`z`.
const MAX_KEYWORDS: usize = 26;

/// A folder `fill` has touched in this call.
struct FolderDir {
    dir: PathBuf,
    /// Entry `i` is the keyword of letter `'a' + i`.
    keywords: Vec<Option<String>>,
}

fn at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// The size Dovecot reports (RFC822.SIZE): bare LFs count as CRLF.
fn crlf_size(body: &[u8]) -> usize {
    let mut prev = 0u8;
    let mut bare = 0;
    for &b in body {
        if b == b'\n' && prev != b'\r' {
            bare += 1;
        }
        prev = b;
    }
    body.len() + bare
}

fn system_time(date: InternalDate) -> SystemTime {
    let magnitude = Duration::from_secs(date.timestamp.unsigned_abs());
    let t = if date.timestamp >= 0 {
        UNIX_EPOCH.checked_add(magnitude)
    } else {
        UNIX_EPOCH.checked_sub(magnitude)
    };
    t.unwrap_or(UNIX_EPOCH)
}

/// Reads `dovecot-keywords` (missing = none).
fn read_keywords(dir: &Path) -> io::Result<Vec<Option<String>>> {
    let path = dir.join("dovecot-keywords");
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(at(&path, e)),
    };
    let mut keywords = vec![None; MAX_KEYWORDS];
    for line in text.lines() {
        if let Some((index, name)) = line.split_once(' ')
            && let Ok(i) = index.parse::<usize>()
            && i < MAX_KEYWORDS
        {
            keywords[i] = Some(name.to_string());
        }
    }
    while keywords.last() == Some(&None) {
        keywords.pop();
    }
    Ok(keywords)
}

impl Dovecot {
    /// Writes `messages` straight into `user`'s Maildir (no IMAP), creating folders as Dovecot
    /// expects for the configured delimiter; flags go in the `:2,` suffix, keywords through
    /// `dovecot-keywords`, the mtime is the internal date and the files belong to the mail
    /// user. Returns how many were written. Dovecot sees them at its next sync of the folder,
    /// also while running. Errors: an unknown user, a folder segment the layout cannot hold
    /// (empty, `.`/`..`, containing `/` or the delimiter; `cur`/`new`/`tmp` with `'/'`), more
    /// than 26 keywords in one folder, or an I/O error (naming the path).
    pub fn fill(
        &self,
        user: &str,
        messages: impl IntoIterator<Item = GeneratedMessage>,
    ) -> io::Result<u64> {
        if !self.options.users.iter().any(|(login, _)| login == user) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("fill: no user {user:?} in this Dovecot instance"),
            ));
        }
        // A poisoned lock only means another fill panicked; the files are still consistent.
        let _guard = self.fill_lock.lock().unwrap_or_else(|e| e.into_inner());
        let root = self.maildir(user);
        let mut folders: HashMap<FolderPath, FolderDir> = HashMap::new();
        let mut count = 0;
        for message in messages {
            let folder = match folders.entry(message.folder.clone()) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => {
                    let dir = self.folder_dir(&root, &message.folder)?;
                    self.create_maildir(&root, &dir, message.folder.is_inbox())?;
                    let keywords = read_keywords(&dir)?;
                    e.insert(FolderDir { dir, keywords })
                }
            };
            let info = self.info_letters(folder, &message.folder, &message.flags)?;
            let seq = self.fill_seq.fetch_add(1, Ordering::Relaxed);
            let size = message.body.len();
            let name = format!(
                "{}.M{seq}P{}Q0.mailferry-fill,S={size},W={}",
                self.fill_stamp,
                std::process::id(),
                crlf_size(&message.body)
            );
            let tmp = folder.dir.join("tmp").join(&name);
            let cur = folder.dir.join("cur").join(format!("{name}:2,{info}"));
            self.write_owned(
                &tmp,
                &message.body,
                Some(system_time(message.internal_date)),
            )?;
            fs::rename(&tmp, &cur).map_err(|e| at(&cur, e))?;
            count += 1;
        }
        Ok(count)
    }

    /// The Maildir directory of `folder` under `root`.
    fn folder_dir(&self, root: &Path, folder: &FolderPath) -> io::Result<PathBuf> {
        if folder.is_inbox() {
            return Ok(root.to_path_buf());
        }
        let delimiter = self.options.delimiter;
        let mut names = Vec::with_capacity(folder.depth());
        for segment in folder.segments() {
            let reserved = delimiter == '/' && ["cur", "new", "tmp"].contains(&segment.as_str());
            if segment.is_empty()
                || segment == "."
                || segment == ".."
                || segment.contains(['/', '\0', delimiter])
                || reserved
            {
                return Err(invalid(format!(
                    "fill: folder {folder} has a segment {segment:?} that a Maildir with \
                     delimiter {delimiter:?} cannot store"
                )));
            }
            names.push(utf7::encode(segment));
        }
        if names.is_empty() {
            return Err(invalid("fill: a folder path with no segments".into()));
        }
        Ok(match delimiter {
            '.' => root.join(format!(".{}", names.join("."))),
            _ => names.iter().fold(root.to_path_buf(), |p, n| p.join(n)),
        })
    }

    fn mkdir_owned(&self, path: &Path) -> io::Result<()> {
        match fs::DirBuilder::new().mode(0o700).create(path) {
            Ok(()) => std::os::unix::fs::chown(path, Some(self.mail_uid), Some(self.mail_gid))
                .map_err(|e| at(path, e)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(at(path, e)),
        }
    }

    /// Creates `dir` (and every missing directory between `root` and it) plus `cur`, `new`,
    /// `tmp`, all owned by the mail user.
    fn create_maildir(&self, root: &Path, dir: &Path, is_inbox: bool) -> io::Result<()> {
        self.mkdir_owned(root)?;
        let relative = dir.strip_prefix(root).map_err(io::Error::other)?;
        let mut path = root.to_path_buf();
        for component in relative.components() {
            path.push(component);
            self.mkdir_owned(&path)?;
        }
        for sub in ["cur", "new", "tmp"] {
            self.mkdir_owned(&dir.join(sub))?;
        }
        if self.options.delimiter == '.' && !is_inbox {
            let marker = dir.join("maildirfolder");
            if !marker.exists() {
                self.write_owned(&marker, b"", None)?;
            }
        }
        Ok(())
    }

    /// Writes a new file (0600) owned by the mail user, with `mtime` if given.
    fn write_owned(&self, path: &Path, bytes: &[u8], mtime: Option<SystemTime>) -> io::Result<()> {
        let write = || -> io::Result<()> {
            let mut file = File::options()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)?;
            file.write_all(bytes)?;
            if let Some(t) = mtime {
                // After the write, which would move it.
                file.set_times(FileTimes::new().set_accessed(t).set_modified(t))?;
            }
            fchown(&file, Some(self.mail_uid), Some(self.mail_gid))
        };
        write().map_err(|e| at(path, e))
    }

    /// The `:2,` info letters of `flags`, registering new keywords in `dovecot-keywords`.
    fn info_letters(
        &self,
        folder: &mut FolderDir,
        path: &FolderPath,
        flags: &Flags,
    ) -> io::Result<String> {
        let mut info = String::new();
        for (set, letter) in [
            (flags.draft, 'D'),
            (flags.flagged, 'F'),
            (flags.answered, 'R'),
            (flags.seen, 'S'),
            (flags.deleted, 'T'),
        ] {
            if set {
                info.push(letter);
            }
        }
        let mut indexes = Vec::with_capacity(flags.keywords.len());
        let mut changed = false;
        for keyword in &flags.keywords {
            let found = folder
                .keywords
                .iter()
                .position(|k| k.as_deref() == Some(keyword.as_str()));
            let index = match found {
                Some(i) => i,
                None => {
                    let free = folder.keywords.iter().position(Option::is_none);
                    let i = free.unwrap_or(folder.keywords.len());
                    if i >= MAX_KEYWORDS {
                        return Err(invalid(format!(
                            "fill: folder {path} would need more than {MAX_KEYWORDS} keywords \
                             (Maildir's limit) for {keyword:?}"
                        )));
                    }
                    if i == folder.keywords.len() {
                        folder.keywords.push(None);
                    }
                    folder.keywords[i] = Some(keyword.clone());
                    changed = true;
                    i
                }
            };
            indexes.push(index);
        }
        if changed {
            self.write_keywords(folder)?;
        }
        indexes.sort_unstable();
        info.extend(indexes.into_iter().map(|i| char::from(b'a' + i as u8)));
        Ok(info)
    }

    fn write_keywords(&self, folder: &FolderDir) -> io::Result<()> {
        let mut text = String::new();
        for (i, keyword) in folder.keywords.iter().enumerate() {
            if let Some(k) = keyword {
                text.push_str(&format!("{i} {k}\n"));
            }
        }
        let tmp = folder
            .dir
            .join(format!("dovecot-keywords.mailferry-{}", std::process::id()));
        let _ = fs::remove_file(&tmp);
        self.write_owned(&tmp, text.as_bytes(), None)?;
        let path = folder.dir.join("dovecot-keywords");
        fs::rename(&tmp, &path).map_err(|e| at(&path, e))
    }
}
