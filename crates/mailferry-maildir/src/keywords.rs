//! Keywords through Dovecot's per-folder `dovecot-keywords` file: lines `N name`, where keyword
//! `N` is the info letter `a`+N. That gives a folder at most 26 keywords; a 27th cannot be held
//! by the file name, so appending an item that needs one is an item error rather than a silent
//! loss. Letters are never reassigned (files already on disk refer to them), and the file is
//! replaced atomically (write a temporary file, rename) before any message uses a new letter.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The file's name inside a folder directory.
pub const FILE: &str = "dovecot-keywords";

/// How many keywords the letters `a`–`z` can name.
pub const MAX: usize = 26;

/// A folder's keyword table: letter index → name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keywords {
    names: Vec<Option<String>>,
}

impl Keywords {
    /// Parses the file's text. Lines that are not `N name` with `N` < 26 are ignored, as
    /// Dovecot does.
    pub fn parse(text: &str) -> Self {
        let mut kw = Keywords::default();
        for line in text.lines() {
            let Some((index, name)) = line.split_once(' ') else {
                continue;
            };
            let (Ok(index), name) = (index.trim().parse::<usize>(), name.trim()) else {
                continue;
            };
            if index >= MAX || name.is_empty() {
                continue;
            }
            if kw.names.len() <= index {
                kw.names.resize(index + 1, None);
            }
            kw.names[index] = Some(name.to_string());
        }
        kw
    }

    /// The file's text.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (i, name) in self.names.iter().enumerate() {
            if let Some(name) = name {
                out.push_str(&format!("{i} {name}\n"));
            }
        }
        out
    }

    /// Reads `dir/dovecot-keywords`; a missing file is an empty table.
    pub fn load(dir: &Path) -> std::io::Result<Self> {
        match std::fs::read(dir.join(FILE)) {
            Ok(bytes) => Ok(Self::parse(&String::from_utf8_lossy(&bytes))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e),
        }
    }

    /// Replaces `dir/dovecot-keywords` atomically through a temporary file in `tmp_dir` (same
    /// file system), syncing the file and `dir` when `sync` is set.
    pub fn store(&self, dir: &Path, tmp_dir: &Path, sync: bool) -> std::io::Result<()> {
        let tmp = tmp_dir.join(format!(
            "{FILE}.{}",
            crate::name::new_unique(0, 0).replace(',', "_")
        ));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        let written = file
            .write_all(self.to_text().as_bytes())
            .and_then(|()| if sync { file.sync_all() } else { Ok(()) })
            .and_then(|()| std::fs::rename(&tmp, dir.join(FILE)));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written?;
        if sync {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    /// The keyword the letter stands for.
    pub fn name_of(&self, letter: char) -> Option<&str> {
        let index = (letter as usize).checked_sub('a' as usize)?;
        self.names.get(index)?.as_deref()
    }

    /// The letter of a keyword, if it has one.
    pub fn letter_of(&self, name: &str) -> Option<char> {
        let index = self.names.iter().position(|n| n.as_deref() == Some(name))?;
        char::from_u32('a' as u32 + index as u32)
    }

    /// The letter of `name`, giving it the first free one if it has none. Fails with the reason
    /// when the name cannot be written to the file (whitespace or control characters would
    /// break its line format) or all 26 letters are taken.
    pub fn assign(&mut self, name: &str) -> Result<char, String> {
        if let Some(letter) = self.letter_of(name) {
            return Ok(letter);
        }
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "keyword {name:?} contains whitespace or control characters, which the {FILE} file cannot hold"
            ));
        }
        let index = match self.names.iter().position(Option::is_none) {
            Some(i) => i,
            None if self.names.len() < MAX => {
                self.names.push(None);
                self.names.len() - 1
            }
            None => {
                return Err(format!(
                    "the folder already has {MAX} keywords, the most Maildir file names can carry; keyword {name:?} does not fit"
                ));
            }
        };
        self.names[index] = Some(name.to_string());
        char::from_u32('a' as u32 + index as u32).ok_or_else(|| "no letter".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dovecot_format_and_skips_junk_lines() {
        let kw = Keywords::parse("0 $Junk\n2 Work\nnonsense\n30 TooFar\n1 \n");
        assert_eq!(kw.name_of('a'), Some("$Junk"));
        assert_eq!(kw.name_of('b'), None);
        assert_eq!(kw.name_of('c'), Some("Work"));
        assert_eq!(kw.letter_of("Work"), Some('c'));
        assert_eq!(kw.to_text(), "0 $Junk\n2 Work\n");
    }

    #[test]
    fn assigns_free_letters_and_never_reassigns() {
        let mut kw = Keywords::parse("0 $Junk\n2 Work\n");
        assert_eq!(kw.assign("Work"), Ok('c'));
        assert_eq!(kw.assign("New"), Ok('b'));
        assert_eq!(kw.assign("Newer"), Ok('d'));
        assert_eq!(kw.letter_of("$Junk"), Some('a'));
    }

    #[test]
    fn refuses_a_27th_keyword_and_unwritable_names() {
        let mut kw = Keywords::default();
        for i in 0..MAX {
            assert!(kw.assign(&format!("k{i}")).is_ok());
        }
        assert_eq!(kw.assign("k25"), Ok('z'));
        assert!(kw.assign("one-too-many").is_err());
        assert!(Keywords::default().assign("two words").is_err());
        assert!(Keywords::default().assign("line\nbreak").is_err());
    }

    #[test]
    fn keyword_file_round_trips_on_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).expect("tmp");
        assert_eq!(
            Keywords::load(dir.path()).expect("missing"),
            Keywords::default()
        );
        let mut kw = Keywords::default();
        kw.assign("Project-X").expect("a");
        kw.assign("$Label1").expect("b");
        kw.store(dir.path(), &tmp, true).expect("store");
        let text = std::fs::read_to_string(dir.path().join(FILE)).expect("read");
        assert_eq!(text, "0 Project-X\n1 $Label1\n");
        assert_eq!(Keywords::load(dir.path()).expect("load"), kw);
        assert_eq!(std::fs::read_dir(&tmp).expect("tmp").count(), 0);
    }
}
