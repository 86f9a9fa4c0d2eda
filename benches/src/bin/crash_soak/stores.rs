//! The soak's independent read-back: each Dovecot's Maildir read straight from disk, with no
//! mailferry code on the way (no IMAP client, no canonicaliser), as a per-folder multiset of
//! message digests. Line endings are folded (CRLF, lone CR and LF all become LF) before hashing,
//! because Dovecot stores what it receives with LF endings and the source was filled as
//! generated; every other byte counts.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use mailferry_core::Checksum;

/// Per folder (segments joined by `/`, INBOX for the root): the sorted digests.
pub type Holdings = BTreeMap<String, Vec<Checksum>>;

/// The message bytes with every line ending folded to LF.
fn folded(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\r' => {
                out.push(b'\n');
                if bytes.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// The digests of the messages in one Maildir folder (`cur/` and `new/`), sorted.
fn folder_digests(dir: &Path) -> io::Result<Vec<Checksum>> {
    let mut out = Vec::new();
    for sub in ["cur", "new"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for entry in entries {
            let path = entry?.path();
            match std::fs::read(&path) {
                Ok(bytes) => out.push(Checksum::of(&folded(&bytes))),
                // Expunged between the listing and the read.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    out.sort();
    Ok(out)
}

/// What a user's Maildir holds; `delimiter` is the instance's (`'/'`: `LAYOUT=fs`, folders are
/// nested directories; `'.'`: Maildir++ `.A.B` directories). INBOX is the root in both.
pub fn holdings(root: &Path, delimiter: char) -> io::Result<Holdings> {
    let mut out = Holdings::new();
    let mut put = |name: String, digests: Vec<Checksum>| {
        if !digests.is_empty() {
            out.insert(name, digests);
        }
    };
    put("INBOX".into(), folder_digests(root)?);
    let mut stack = vec![(root.to_path_buf(), Vec::<String>::new())];
    while let Some((dir, segments)) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            if !entry.file_type()?.is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if ["cur", "new", "tmp"].contains(&name.as_str()) {
                continue;
            }
            if delimiter == '.' {
                if let Some(rest) = name.strip_prefix('.') {
                    put(rest.replace('.', "/"), folder_digests(&entry.path())?);
                }
            } else {
                let mut path = segments.clone();
                path.push(name);
                put(path.join("/"), folder_digests(&entry.path())?);
                stack.push((entry.path(), path));
            }
        }
    }
    Ok(out)
}

/// Messages of `want` missing from `got`, and messages of `got` beyond `want`, counting
/// multiplicity (one duplicate too many is one extra).
pub fn difference(want: &Holdings, got: &Holdings) -> (u64, u64) {
    let (mut missing, mut extra) = (0, 0);
    let empty = Vec::new();
    let names: std::collections::BTreeSet<&String> = want.keys().chain(got.keys()).collect();
    for name in names {
        let (w, g) = (
            want.get(name).unwrap_or(&empty),
            got.get(name).unwrap_or(&empty),
        );
        let (mut i, mut j) = (0, 0);
        while i < w.len() && j < g.len() {
            match w[i].cmp(&g[j]) {
                std::cmp::Ordering::Equal => (i, j) = (i + 1, j + 1),
                std::cmp::Ordering::Less => (i, missing) = (i + 1, missing + 1),
                std::cmp::Ordering::Greater => (j, extra) = (j + 1, extra + 1),
            }
        }
        missing += (w.len() - i) as u64;
        extra += (g.len() - j) as u64;
    }
    (missing, extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_endings_fold_and_other_bytes_count() {
        assert_eq!(folded(b"a\r\nb\rc\nd"), b"a\nb\nc\nd");
        assert_ne!(folded(b"a\r\nb"), folded(b"a\r\nc"));
    }

    #[test]
    fn a_duplicate_is_one_extra_and_a_loss_one_missing() {
        let d = |s: &str| Checksum::of(s.as_bytes());
        let sorted = |mut v: Vec<Checksum>| {
            v.sort();
            v
        };
        let want = Holdings::from([("INBOX".into(), sorted(vec![d("a"), d("a"), d("b")]))]);
        let got = Holdings::from([("INBOX".into(), sorted(vec![d("a"), d("b"), d("b")]))]);
        assert_eq!(difference(&want, &got), (1, 1));
    }
}
