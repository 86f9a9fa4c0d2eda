//! Folder ↔ file mapping for a directory of mbox files, Thunderbird style: folder `X` is the file
//! `X`, its children live in the directory `X.sbd/`, and `INBOX` is the file `Inbox`.
//!
//! Folder names come from another store and may be hostile, so every segment is escaped into a
//! single, harmless file name before it touches the file system: `%`, `/`, `\`, control
//! characters (NUL included) and a leading `.` (so `.`, `..` and hidden names) are
//! percent-encoded, as is the dot of a trailing `.sbd`, `.msf` or `.gz` (which would collide
//! with the layout's own names). Escaping is reversible, so names read back unchanged; a name
//! can therefore never leave the root or land on another folder's file.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use mailferry_core::{FolderPath, SpecialUse};

/// The suffix of a directory holding a folder's children.
pub const CHILDREN_SUFFIX: &str = ".sbd";
/// The suffix of gzip-compressed mbox files.
pub const GZ_SUFFIX: &str = ".gz";
/// Names that would be read as part of the layout if left unescaped at the end of a name.
const RESERVED_SUFFIXES: [&str; 3] = [".sbd", ".msf", ".gz"];
/// Files in a Thunderbird profile's mail directory that are not mailboxes.
const NOT_MAILBOXES: [&str; 5] = [".msf", ".dat", ".html", ".json", ".sqlite"];

/// Escapes one folder segment into a file name (see the module docs).
pub fn escape_segment(segment: &str) -> String {
    if segment.is_empty() {
        // A lone `%` cannot come out of escaping anything else (`%` itself becomes `%25`).
        return "%".to_string();
    }
    let mut out = String::with_capacity(segment.len());
    for (i, c) in segment.chars().enumerate() {
        let escape = matches!(c, '%' | '/' | '\\') || c.is_control() || (i == 0 && c == '.');
        if escape {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    let lower = out.to_ascii_lowercase();
    if let Some(suffix) = RESERVED_SUFFIXES.iter().find(|s| lower.ends_with(*s)) {
        let dot = out.len() - suffix.len();
        out.replace_range(dot..=dot, "%2E");
    }
    out
}

/// Reverses [`escape_segment`]. Percent signs not followed by two hex digits are kept as they
/// are, so names written by other programs read as themselves.
pub fn unescape_segment(name: &str) -> String {
    if name == "%" {
        return String::new();
    }
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The file name a top-level segment gets: `INBOX` (any case) is Thunderbird's `Inbox`.
fn file_name(segment: &str, top: bool) -> String {
    if top && segment.eq_ignore_ascii_case("INBOX") {
        "Inbox".to_string()
    } else {
        escape_segment(segment)
    }
}

/// The plain (uncompressed) file for `folder` under `root`; the caller adds `.gz` for gzip.
pub fn folder_file(root: &Path, folder: &FolderPath) -> PathBuf {
    let mut path = root.to_path_buf();
    let segments = folder.segments();
    for (i, segment) in segments.iter().enumerate() {
        let name = file_name(segment, i == 0);
        if i + 1 == segments.len() {
            path.push(name);
        } else {
            path.push(format!("{name}{CHILDREN_SUFFIX}"));
        }
    }
    path
}

/// The special-use role a top-level folder's name suggests (core's one table,
/// [`mailferry_core::mapping::role_from_name`]).
pub fn special_use_of(folder: &FolderPath) -> Option<SpecialUse> {
    match folder.segments() {
        [_] => mailferry_core::mapping::role_from_name(folder),
        _ => None,
    }
}

/// A folder found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderFile {
    /// Its path in the tree.
    pub folder: FolderPath,
    /// Its mbox file; `None` for a `.sbd` directory without a file (a parent only).
    pub file: Option<PathBuf>,
    /// Whether the file is gzip-compressed.
    pub gzip: bool,
}

/// What the first bytes of a file say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// An mbox (or empty) file, plain.
    Plain,
    /// A gzip-compressed mbox (or empty) file.
    Gzip,
    /// Something else.
    NotMbox,
}

/// Looks at the first bytes of `path` (decompressed if gzip): an mbox starts with `From `
/// after optional blank lines; an empty file is an empty mbox.
pub fn sniff(path: &Path) -> io::Result<Sniffed> {
    // A torn batch at the start of a file would hide what the file is.
    crate::journal::recover(path, None)?;
    let mut file = fs::File::open(path)?;
    let mut magic = [0u8; 2];
    let n = read_up_to(&mut file, &mut magic)?;
    let gzip = n == 2 && magic == [0x1f, 0x8b];
    let mut head = vec![0u8; 4096];
    let n = if gzip {
        let file = fs::File::open(path)?;
        read_up_to(&mut flate2::read::MultiGzDecoder::new(file), &mut head)?
    } else {
        let mut file = fs::File::open(path)?;
        read_up_to(&mut file, &mut head)?
    };
    let head = &head[..n];
    let start = head
        .iter()
        .position(|&b| b != b'\n' && b != b'\r')
        .unwrap_or(head.len());
    let looks_like_mbox = head[start..].starts_with(b"From ") || start == head.len();
    Ok(match (looks_like_mbox, gzip) {
        (false, _) => Sniffed::NotMbox,
        (true, true) => Sniffed::Gzip,
        (true, false) => Sniffed::Plain,
    })
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Every folder under `root`, parents before children, sorted by name. Files that are not mbox
/// files are skipped with a warning; two files claiming one folder (`X` and `X.gz`) are an error.
pub fn discover(root: &Path) -> io::Result<Vec<FolderFile>> {
    let mut out = Vec::new();
    walk(root, &FolderPath::new(Vec::<String>::new()), &mut out)?;
    Ok(out)
}

fn walk(dir: &Path, parent: &FolderPath, out: &mut Vec<FolderFile>) -> io::Result<()> {
    let mut entries: Vec<fs::DirEntry> = fs::read_dir(dir)?.collect::<io::Result<_>>()?;
    entries.sort_by_key(fs::DirEntry::file_name);
    let top = parent.depth() == 0;
    let folder_of = |name: &str| {
        let segment = if top && name.eq_ignore_ascii_case("Inbox") {
            "INBOX".to_string()
        } else {
            unescape_segment(name)
        };
        parent.child(segment)
    };
    let start = out.len();
    let mut children = Vec::new();
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let file_type = fs::metadata(&path)?.file_type();
        if file_type.is_dir() {
            if let Some(stem) = name.strip_suffix(CHILDREN_SUFFIX) {
                children.push((folder_of(stem), path));
            }
            continue;
        }
        let lower = name.to_ascii_lowercase();
        if !file_type.is_file() || NOT_MAILBOXES.iter().any(|s| lower.ends_with(s)) {
            continue;
        }
        let sniffed = sniff(&path)?;
        let stem = match sniffed {
            Sniffed::NotMbox => {
                tracing::warn!(path = %path.display(), "skipped: not an mbox file");
                continue;
            }
            Sniffed::Gzip => name.strip_suffix(GZ_SUFFIX).unwrap_or(&name),
            Sniffed::Plain => &name,
        };
        let folder = folder_of(stem);
        if let Some(other) = out[start..].iter().find(|f| f.folder == folder) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} and {} both hold folder {folder}; rename one",
                    other.file.as_deref().unwrap_or(dir).display(),
                    path.display()
                ),
            ));
        }
        out.push(FolderFile {
            folder,
            file: Some(path),
            gzip: sniffed == Sniffed::Gzip,
        });
    }
    for (folder, path) in children {
        if !out[start..].iter().any(|f| f.folder == folder) {
            out.push(FolderFile {
                folder: folder.clone(),
                file: None,
                gzip: false,
            });
        }
        walk(&path, &folder, out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_segments_become_single_harmless_names_and_come_back() {
        for hostile in [
            "..",
            ".",
            "/",
            "a/b",
            "../../etc/passwd",
            "nul\0byte",
            ".hidden",
            "tab\there",
            "%",
            "%25",
            "",
            "x.sbd",
            "Y.MSF",
            "z.gz",
            "\u{7f}",
            "\u{85}next",
            "é/ü",
            "back\\slash",
        ] {
            let name = escape_segment(hostile);
            assert!(
                !name.is_empty() && !name.starts_with('.'),
                "{hostile:?} -> {name:?}"
            );
            assert!(
                !name.contains(['/', '\\', '\0']) && !name.chars().any(char::is_control),
                "{hostile:?} -> {name:?}"
            );
            let lower = name.to_ascii_lowercase();
            assert!(
                !RESERVED_SUFFIXES.iter().any(|s| lower.ends_with(s)),
                "{name:?}"
            );
            assert_eq!(unescape_segment(&name), hostile, "via {name:?}");
        }
        assert_eq!(escape_segment("Ünïcødé"), "Ünïcødé");
        assert_eq!(escape_segment("a.b"), "a.b");
    }

    #[test]
    fn folders_map_to_thunderbird_paths() {
        let root = Path::new("/r");
        assert_eq!(
            folder_file(root, &FolderPath::inbox()),
            Path::new("/r/Inbox")
        );
        assert_eq!(
            folder_file(root, &FolderPath::new(["INBOX", "x"])),
            Path::new("/r/Inbox.sbd/x")
        );
        assert_eq!(
            folder_file(root, &FolderPath::new(["Archive", "2020", ".."])),
            Path::new("/r/Archive.sbd/2020.sbd/%2E.")
        );
    }

    #[test]
    fn special_use_is_inferred_from_top_level_names_only() {
        assert_eq!(
            special_use_of(&FolderPath::new(["Sent"])),
            Some(SpecialUse::Sent)
        );
        assert_eq!(
            special_use_of(&FolderPath::new(["spam"])),
            Some(SpecialUse::Junk)
        );
        assert_eq!(special_use_of(&FolderPath::new(["x", "Sent"])), None);
        assert_eq!(special_use_of(&FolderPath::inbox()), None);
    }
}
