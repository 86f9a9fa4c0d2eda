//! Folder layouts and folder-name encoding.
//!
//! - **Maildir++** (Dovecot's and Courier's default): INBOX is the root's `cur/new/tmp`; folder
//!   `A/B` is the directory `.A.B` beside them, `.` being the hierarchy delimiter.
//! - **fs** (Dovecot `LAYOUT=fs`): folder `A/B` is the directory `A/B` with its own
//!   `cur/new/tmp`; INBOX is the root, as in Maildir++, so one store never holds mail in two
//!   places for INBOX and both layouts share the root's `cur/new/tmp`.
//!
//! Each segment is encoded as Dovecot does by default, in IMAP modified UTF-7, which leaves only
//! printable ASCII. What still cannot stand in a path component is then escaped as `%XX` (hex of
//! the byte): `%` itself, `/`, in Maildir++ every `.` (the delimiter), in fs a leading `.`
//! (hidden; also rules out `.` and `..`), and in fs a segment named `cur`, `new` or `tmp`
//! (`%63ur`), which would be taken for a Maildir's own directories, or starting with `dovecot`
//! (`%64ovecot-keywords`), which would collide with Dovecot's files in the parent folder. Control characters never
//! reach the disk: modified UTF-7 encodes them. Decoding reverses both steps, so any folder name
//! round-trips, and no encoded name can be `.`, `..`, empty or contain a `/`: a hostile name
//! from a source cannot leave the root. An empty segment has no encoding and is refused.

use std::path::{Path, PathBuf};

use mailferry_core::utf7;
use mailferry_core::{Folder, FolderPath, SpecialUse};

/// How folders are laid out under the root.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Layout {
    /// `.Folder.Sub` directories beside INBOX's `cur/new/tmp` (Dovecot/Courier Maildir++).
    #[default]
    MaildirPlusPlus,
    /// Nested `Folder/Sub/{cur,new,tmp}` directories (Dovecot `LAYOUT=fs`); INBOX is the root.
    Fs,
}

/// The directories of a Maildir itself; never folders.
pub const MAIL_DIRS: [&str; 3] = ["cur", "new", "tmp"];

/// How deep layout detection looks for Maildirs below a directory.
const MAX_DEPTH: usize = 64;

/// How deep the fs layout is listed. Deeper trees are an error, never cut silently: their mail
/// would be left out of a copy without a word. (Symlink loops are caught by inode instead.)
const MAX_LIST_DEPTH: usize = 1024;

fn push_escaped(out: &mut String, byte: u8) {
    out.push_str(&format!("%{byte:02X}"));
}

/// Encodes one folder-name segment as a path component (see the module docs).
pub fn encode_segment(segment: &str, layout: Layout) -> Result<String, String> {
    if segment.is_empty() {
        return Err("a folder name segment is empty".to_string());
    }
    let utf7 = utf7::encode(segment);
    let mut out = String::with_capacity(utf7.len() + 4);
    for (i, byte) in utf7.bytes().enumerate() {
        let escape = match byte {
            b'%' | b'/' => true,
            b'.' => layout == Layout::MaildirPlusPlus || i == 0,
            // Modified UTF-7 leaves only printable ASCII; anything else would be a bug there,
            // and is escaped rather than trusted.
            b' '..=b'~' => false,
            _ => true,
        };
        if escape {
            push_escaped(&mut out, byte);
        } else {
            out.push(byte as char);
        }
    }
    // In fs, folder directories share their parent with its `cur/new/tmp` and with Dovecot's
    // own files (`dovecot-keywords`, `dovecot-uidlist`, `dovecot.index*`).
    if layout == Layout::Fs && (MAIL_DIRS.contains(&out.as_str()) || out.starts_with("dovecot")) {
        let first = out.as_bytes()[0];
        let mut escaped = String::with_capacity(out.len() + 2);
        push_escaped(&mut escaped, first);
        escaped.push_str(&out[1..]);
        out = escaped;
    }
    Ok(out)
}

/// Decodes a path component back into a segment; `None` when it is not something
/// [`encode_segment`] could have written (a bad escape, invalid modified UTF-7, empty).
pub fn decode_segment(component: &str) -> Option<String> {
    let bytes = component.as_bytes();
    let mut raw = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = component.get(i + 1..i + 3)?;
            raw.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            raw.push(bytes[i]);
            i += 1;
        }
    }
    let decoded = utf7::decode(std::str::from_utf8(&raw).ok()?)?;
    (!decoded.is_empty()).then_some(decoded)
}

/// The directory of `folder` relative to the root (empty for INBOX).
pub fn relative_dir(folder: &FolderPath, layout: Layout) -> Result<PathBuf, String> {
    if folder.is_inbox() {
        return Ok(PathBuf::new());
    }
    if folder.depth() == 0 {
        return Err("the folder name is empty".to_string());
    }
    let encoded = folder
        .segments()
        .iter()
        .map(|s| encode_segment(s, layout))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(match layout {
        Layout::MaildirPlusPlus => PathBuf::from(format!(".{}", encoded.join("."))),
        Layout::Fs => encoded.iter().collect(),
    })
}

/// Decodes a Maildir++ directory name (`.A.B`, without the leading dot: `A.B`). A name that
/// does not decode is kept whole as one literal segment, so its mail is still listed.
pub fn decode_maildirpp(name: &str) -> FolderPath {
    let segments: Option<Vec<String>> = name.split('.').map(decode_segment).collect();
    match segments {
        Some(s) => FolderPath::new(s),
        None => FolderPath::new([name]),
    }
}

fn is_dir(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_dir())
}

/// Whether `dir` is a Maildir folder (has `cur/` or `new/`), i.e. can hold messages.
pub fn holds_mail(dir: &Path) -> bool {
    is_dir(&dir.join("cur")) || is_dir(&dir.join("new"))
}

fn holds_mail_below(dir: &Path, depth: usize) -> bool {
    if holds_mail(dir) {
        return true;
    }
    if depth >= MAX_DEPTH {
        return false;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let name = e.file_name();
        let name = name.to_string_lossy();
        !name.starts_with('.')
            && !MAIL_DIRS.contains(&name.as_ref())
            && is_dir(&e.path())
            && holds_mail_below(&e.path(), depth + 1)
    })
}

/// The layout an existing root uses: Maildir++ if it has `.Name` directories, fs if it has
/// other directories with Maildirs below them, `None` if it has no folders besides INBOX.
pub fn detect(root: &Path) -> std::io::Result<Option<Layout>> {
    let mut fs = false;
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if MAIL_DIRS.contains(&name.as_ref()) || !is_dir(&entry.path()) {
            continue;
        }
        if name.starts_with('.') {
            return Ok(Some(Layout::MaildirPlusPlus));
        }
        fs = fs || holds_mail_below(&entry.path(), 1);
    }
    Ok(fs.then_some(Layout::Fs))
}

/// A folder directory found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundDir {
    /// The folder it holds.
    pub path: FolderPath,
    /// Where it is.
    pub dir: PathBuf,
    /// Whether it has `cur/` or `new/` (otherwise it only holds other folders).
    pub selectable: bool,
}

/// Every folder directory under `root` other than INBOX, in name order.
pub fn list_dirs(root: &Path, layout: Layout) -> std::io::Result<Vec<FoundDir>> {
    let mut found = Vec::new();
    match layout {
        Layout::MaildirPlusPlus => {
            for entry in std::fs::read_dir(root)? {
                let entry = entry?;
                let name = entry.file_name();
                let name = name.to_string_lossy();
                let Some(rest) = name.strip_prefix('.') else {
                    continue;
                };
                if rest.is_empty() || rest == "." || !is_dir(&entry.path()) {
                    continue;
                }
                found.push(FoundDir {
                    path: decode_maildirpp(rest),
                    selectable: holds_mail(&entry.path()),
                    dir: entry.path(),
                });
            }
        }
        Layout::Fs => walk_fs(root, &FolderPath::new(Vec::<String>::new()), 0, &mut found)?,
    }
    found.sort_by(|a, b| a.dir.cmp(&b.dir));
    Ok(found)
}

fn walk_fs(
    dir: &Path,
    parent: &FolderPath,
    depth: usize,
    found: &mut Vec<FoundDir>,
) -> std::io::Result<()> {
    let mut ancestors = Vec::new();
    walk_fs_below(dir, parent, depth, found, &mut ancestors)
}

/// Lists the folders below `dir`; `ancestors` are the (device, inode) of the directories on
/// the way down, so a symlink back up the tree is seen as the loop it is.
fn walk_fs_below(
    dir: &Path,
    parent: &FolderPath,
    depth: usize,
    found: &mut Vec<FoundDir>,
    ancestors: &mut Vec<(u64, u64)>,
) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    if depth >= MAX_LIST_DEPTH {
        return Err(std::io::Error::other(format!(
            "folders are nested deeper than {MAX_LIST_DEPTH} levels below {}; not listing a part of the tree",
            dir.display()
        )));
    }
    let meta = std::fs::metadata(dir)?;
    ancestors.push((meta.dev(), meta.ino()));
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || MAIL_DIRS.contains(&name.as_ref()) || !is_dir(&entry.path()) {
            continue;
        }
        let target = std::fs::metadata(entry.path())?;
        if ancestors.contains(&(target.dev(), target.ino())) {
            // Its mail is listed under the ancestor it links back to.
            tracing::warn!(dir = %entry.path().display(), "a symlink loop; not listed again");
            continue;
        }
        let segment = decode_segment(&name).unwrap_or_else(|| name.to_string());
        let path = parent.child(segment);
        found.push(FoundDir {
            path: path.clone(),
            selectable: holds_mail(&entry.path()),
            dir: entry.path(),
        });
        walk_fs_below(&entry.path(), &path, depth + 1, found, ancestors)?;
    }
    ancestors.pop();
    Ok(())
}

/// Gives special-use roles by name, since Maildir stores none: per role, the top-level folder
/// (or Courier-style child of INBOX) with the most usual well-known name (core's one table,
/// [`mailferry_core::mapping::role_and_rank`]). Each role goes to one folder at most.
pub fn infer_special_use(folders: &mut [Folder]) {
    let mut best: std::collections::HashMap<SpecialUse, (usize, usize, usize)> =
        std::collections::HashMap::new();
    for (i, f) in folders.iter().enumerate() {
        let eligible = f.selectable
            && f.special_use.is_none()
            && (f.path.depth() == 1
                || (f.path.depth() == 2 && f.path.segments()[0].eq_ignore_ascii_case("INBOX")));
        if !eligible {
            continue;
        }
        if let Some((role, rank)) = mailferry_core::mapping::role_and_rank(&f.path) {
            let candidate = (rank, f.path.depth(), i);
            best.entry(role)
                .and_modify(|b| *b = (*b).min(candidate))
                .or_insert(candidate);
        }
    }
    for (role, (_, _, i)) in best {
        folders[i].special_use = Some(role);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailferry_core::FolderStatus;

    #[test]
    fn segments_round_trip_through_both_encodings() {
        for s in [
            "plain",
            "Ünïcødé",
            "Sub folder",
            "a.b",
            "a/b",
            "100%",
            "..",
            ".",
            ".hidden",
            "cur",
            "tmp",
            "new",
            "dovecot-uidlist",
            "x\0y",
            "line\nbreak",
            "Tom & Jerry",
            "%2E",
            "&-",
            "😀",
        ] {
            for layout in [Layout::MaildirPlusPlus, Layout::Fs] {
                let enc = encode_segment(s, layout).expect("encodes");
                assert!(
                    !enc.contains('/') && enc != "." && enc != "..",
                    "{s:?} -> {enc}"
                );
                assert!(!enc.starts_with('.'), "{s:?} -> {enc}");
                assert!(enc.bytes().all(|b| (b' '..=b'~').contains(&b)), "{enc}");
                if layout == Layout::MaildirPlusPlus {
                    assert!(!enc.contains('.'), "{s:?} -> {enc}");
                } else {
                    assert!(!MAIL_DIRS.contains(&enc.as_str()));
                }
                assert_eq!(
                    decode_segment(&enc).as_deref(),
                    Some(s),
                    "{layout:?}: {enc}"
                );
            }
        }
    }

    #[test]
    fn encodes_like_dovecot_for_ordinary_names() {
        assert_eq!(
            encode_segment("Envoyés", Layout::Fs).as_deref(),
            Ok("Envoy&AOk-s")
        );
        assert_eq!(
            encode_segment("a.b", Layout::MaildirPlusPlus).as_deref(),
            Ok("a%2Eb")
        );
        assert_eq!(encode_segment("a.b", Layout::Fs).as_deref(), Ok("a.b"));
        assert_eq!(encode_segment("cur", Layout::Fs).as_deref(), Ok("%63ur"));
        assert_eq!(
            encode_segment("dovecot-keywords", Layout::Fs).as_deref(),
            Ok("%64ovecot-keywords")
        );
        assert!(encode_segment("", Layout::Fs).is_err());
    }

    #[test]
    fn maps_folder_paths_to_directories() {
        let p = FolderPath::new(["Archive", "2020"]);
        assert_eq!(
            relative_dir(&p, Layout::MaildirPlusPlus),
            Ok(PathBuf::from(".Archive.2020"))
        );
        assert_eq!(
            relative_dir(&p, Layout::Fs),
            Ok(PathBuf::from("Archive/2020"))
        );
        assert_eq!(
            relative_dir(&FolderPath::new(["inbox"]), Layout::Fs),
            Ok(PathBuf::new())
        );
        assert!(relative_dir(&FolderPath::new(["a", ""]), Layout::Fs).is_err());
        assert_eq!(decode_maildirpp("Archive.2020"), p);
        assert_eq!(decode_maildirpp(".Subdir3"), FolderPath::new([".Subdir3"]));
    }

    #[test]
    fn detects_layouts_from_directories() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        for d in MAIL_DIRS {
            std::fs::create_dir_all(root.join(d)).expect("mkdir");
        }
        assert_eq!(detect(root).expect("detect"), None);
        std::fs::create_dir_all(root.join("Archive/2020/cur")).expect("mkdir");
        assert_eq!(detect(root).expect("detect"), Some(Layout::Fs));
        std::fs::create_dir_all(root.join(".Sent/cur")).expect("mkdir");
        assert_eq!(detect(root).expect("detect"), Some(Layout::MaildirPlusPlus));
    }

    #[test]
    fn lists_deep_fs_trees_and_stops_at_symlink_loops() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let mut deep = root.to_path_buf();
        for level in 0..100 {
            deep.push(format!("d{level}"));
        }
        std::fs::create_dir_all(deep.join("cur")).expect("mkdir");
        std::os::unix::fs::symlink(root.join("d0"), root.join("d0/d1/loop")).expect("symlink");
        let found = list_dirs(root, Layout::Fs).expect("list");
        assert_eq!(
            found.len(),
            100,
            "every level; the loop is not listed again"
        );
        assert!(found.iter().any(|f| f.path.depth() == 100 && f.selectable));
    }

    #[test]
    fn infers_special_use_from_well_known_names() {
        let folder = |segments: &[&str]| {
            Folder::new(
                FolderPath::new(segments.iter().copied()),
                FolderStatus::default(),
            )
        };
        let mut folders = vec![
            folder(&["Sent Items"]),
            folder(&["sent"]),
            folder(&["INBOX", "Trash"]),
            folder(&["Projects", "Drafts"]),
            folder(&["Spam"]),
        ];
        infer_special_use(&mut folders);
        let roles: Vec<_> = folders.iter().map(|f| f.special_use).collect();
        assert_eq!(
            roles,
            [
                None,
                Some(SpecialUse::Sent),
                Some(SpecialUse::Trash),
                None,
                Some(SpecialUse::Junk)
            ]
        );
    }
}
