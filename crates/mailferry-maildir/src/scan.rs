//! Reading one folder directory: its message files and its status.
//!
//! Only `cur/` and `new/` hold mail; `tmp/` holds deliveries in progress and is never read.
//! Dotfiles and anything that is not a regular file are not messages and are skipped. The
//! folder's change token ([`FolderStatus::modseq`]) comes from the `cur/` and `new/` directory
//! mtimes, which change on every delivery, flag change (a rename) and removal. A directory
//! modified within the last two seconds may still change within the same timestamp tick, so
//! its token is then made unique: the next pass lists the folder again instead of trusting a
//! status that could hide a message (the "racy timestamp" rule git uses for its index).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mailferry_core::FolderStatus;

use crate::name;

/// One message file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The item's key: the file's unique part (made unique if two files share one).
    pub key: String,
    /// The file.
    pub path: PathBuf,
    /// The info letters after `:2,`, if any.
    pub info: Option<String>,
}

impl Entry {
    /// The file's name.
    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// The messages of the folder in `dir`, `cur/` first, each subdirectory in name order. A
/// missing `cur/` or `new/` is an empty one.
pub fn entries(dir: &Path, separator: char) -> std::io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for sub in ["cur", "new"] {
        let read = match std::fs::read_dir(dir.join(sub)) {
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let mut files = Vec::new();
        for entry in read {
            let entry = entry?;
            let file_name = entry.file_name();
            let file_name = file_name.to_string_lossy().into_owned();
            if file_name.starts_with('.') {
                continue;
            }
            // Follows symlinks: a link to a message is a message.
            match std::fs::metadata(entry.path()) {
                Ok(m) if m.is_file() => files.push((file_name, entry.path())),
                Ok(_) => {}
                // Gone since the directory was read (moved by a MUA): the rescan on lookup
                // finds it under its new name.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        files.sort();
        for (file_name, path) in files {
            let parsed = name::parse(&file_name, separator);
            let mut key = parsed.unique.to_string();
            let count = seen.entry(key.clone()).or_insert(0);
            *count += 1;
            if *count > 1 {
                // Two files with one unique part break the Maildir rules, but both are mail.
                key = format!("{key}#{count}");
            }
            out.push(Entry {
                key,
                info: parsed.info.map(str::to_string),
                path,
            });
        }
    }
    Ok(out)
}

fn mtime_ns(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The folder's change token (see the module docs).
pub fn change_token(dir: &Path) -> u64 {
    let now = SystemTime::now();
    let mut token: u64 = 0xcbf2_9ce4_8422_2325;
    let mut racy = false;
    for sub in ["cur", "new"] {
        let mtime = mtime_ns(&dir.join(sub));
        if let Some(t) = mtime {
            racy |= now.duration_since(t).unwrap_or_default() < Duration::from_secs(2);
        }
        let ns = mtime
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as u64);
        token = (token ^ ns).wrapping_mul(0x0100_0000_01b3);
    }
    if racy {
        let now_ns = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        token ^= now_ns.rotate_left(32) | 1;
    }
    token
}

/// The status of the folder in `dir`. The validity is always 1: keys are file names, which do
/// not depend on any UID numbering, so nothing can invalidate them.
pub fn status(dir: &Path, separator: char) -> std::io::Result<FolderStatus> {
    let token = change_token(dir);
    let count = entries(dir, separator)?.len() as u64;
    Ok(FolderStatus {
        count,
        validity: 1,
        next_id: None,
        modseq: Some(token),
        size: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        std::fs::write(path, b"Subject: x\n\nbody\n").expect("write");
    }

    #[test]
    fn lists_cur_and_new_but_not_tmp_dotfiles_or_directories() {
        let dir = tempfile::tempdir().expect("tempdir");
        for d in ["cur", "new", "tmp", "cur/subdir"] {
            std::fs::create_dir_all(dir.path().join(d)).expect("mkdir");
        }
        touch(&dir.path().join("cur/1.a.host:2,S"));
        touch(&dir.path().join("new/2.b.host"));
        touch(&dir.path().join("tmp/3.c.host"));
        touch(&dir.path().join("cur/.hidden"));
        let found = entries(dir.path(), ':').expect("entries");
        let keys: Vec<_> = found.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["1.a.host", "2.b.host"]);
        assert_eq!(found[0].info.as_deref(), Some("S"));
        assert_eq!(found[1].info, None);
    }

    #[test]
    fn duplicate_unique_parts_get_distinct_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        for d in ["cur", "new"] {
            std::fs::create_dir_all(dir.path().join(d)).expect("mkdir");
        }
        touch(&dir.path().join("cur/1.a.host:2,S"));
        touch(&dir.path().join("new/1.a.host"));
        let keys: Vec<_> = entries(dir.path(), ':')
            .expect("entries")
            .into_iter()
            .map(|e| e.key)
            .collect();
        assert_eq!(keys, ["1.a.host", "1.a.host#2"]);
    }

    #[test]
    fn status_is_stable_until_the_folder_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        for d in ["cur", "new"] {
            std::fs::create_dir_all(dir.path().join(d)).expect("mkdir");
        }
        touch(&dir.path().join("cur/1.a.host:2,"));
        let old = SystemTime::now() - Duration::from_secs(60);
        for d in ["cur", "new"] {
            let f = std::fs::File::open(dir.path().join(d)).expect("open dir");
            f.set_modified(old).expect("set mtime");
        }
        let first = status(dir.path(), ':').expect("status");
        assert_eq!(first, status(dir.path(), ':').expect("status"));
        std::fs::rename(
            dir.path().join("cur/1.a.host:2,"),
            dir.path().join("cur/1.a.host:2,S"),
        )
        .expect("rename");
        let after = status(dir.path(), ':').expect("status");
        assert_eq!(after.count, first.count);
        assert_ne!(after, first, "a flag change must change the status");
    }

    #[test]
    fn a_just_modified_folder_never_looks_unchanged() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("cur")).expect("mkdir");
        let a = change_token(dir.path());
        std::thread::sleep(Duration::from_millis(2));
        assert_ne!(a, change_token(dir.path()));
    }
}
