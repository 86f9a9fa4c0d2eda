//! The folder model. A [`FolderPath`] is a list of segments, independent of any server's
//! hierarchy delimiter or name encoding: backends translate to and from their own form at the
//! edge (IMAP modified UTF-7 and delimiter, Maildir++ dots, nested directories), so mapping rules
//! and the state store never see a delimiter. Segments are shared (`Arc`) because every item
//! carries its folder.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A folder's path as a list of name segments; `INBOX` is the single segment `"INBOX"`.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(from = "Vec<String>", into = "Vec<String>")]
pub struct FolderPath(Arc<[String]>);

impl FolderPath {
    /// A path from its segments.
    pub fn new<S: Into<String>>(segments: impl IntoIterator<Item = S>) -> Self {
        FolderPath(segments.into_iter().map(Into::into).collect())
    }

    /// The inbox.
    pub fn inbox() -> Self {
        Self::new(["INBOX"])
    }

    /// Splits a delimited name into segments (`"Archive/2020"` with `'/'`). Empty segments, as
    /// in `"a//b"` or a trailing delimiter, are dropped; a name without a delimiter
    /// (`delimiter == None`) is one segment.
    pub fn from_delimited(name: &str, delimiter: Option<char>) -> Self {
        match delimiter {
            Some(d) => Self::new(name.split(d).filter(|s| !s.is_empty())),
            None => Self::new([name]),
        }
    }

    /// The segments.
    pub fn segments(&self) -> &[String] {
        &self.0
    }

    /// The last segment (the folder's own name), if any.
    pub fn name(&self) -> Option<&str> {
        self.0.last().map(String::as_str)
    }

    /// The number of segments.
    pub fn depth(&self) -> usize {
        self.0.len()
    }

    /// Joins the segments with `delimiter`.
    pub fn join(&self, delimiter: &str) -> String {
        self.0.join(delimiter)
    }

    /// Whether this is the inbox (compared case-insensitively, as IMAP does).
    pub fn is_inbox(&self) -> bool {
        self.0.len() == 1 && self.0[0].eq_ignore_ascii_case("INBOX")
    }

    /// A child folder.
    pub fn child(&self, name: impl Into<String>) -> Self {
        let mut v = self.0.to_vec();
        v.push(name.into());
        FolderPath(v.into())
    }

    /// The parent folder, or `None` at the top.
    pub fn parent(&self) -> Option<Self> {
        (self.0.len() > 1).then(|| FolderPath(self.0[..self.0.len() - 1].into()))
    }
}

impl From<Vec<String>> for FolderPath {
    fn from(v: Vec<String>) -> Self {
        FolderPath(v.into())
    }
}

impl From<FolderPath> for Vec<String> {
    fn from(p: FolderPath) -> Self {
        p.0.to_vec()
    }
}

impl fmt::Display for FolderPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("/"))
    }
}

impl fmt::Debug for FolderPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// The special-use roles of RFC 6154.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpecialUse {
    /// `\All`
    All,
    /// `\Archive`
    Archive,
    /// `\Drafts`
    Drafts,
    /// `\Flagged`
    Flagged,
    /// `\Junk`
    Junk,
    /// `\Sent`
    Sent,
    /// `\Trash`
    Trash,
}

impl SpecialUse {
    /// Every role.
    pub const ALL: [SpecialUse; 7] = [
        SpecialUse::All,
        SpecialUse::Archive,
        SpecialUse::Drafts,
        SpecialUse::Flagged,
        SpecialUse::Junk,
        SpecialUse::Sent,
        SpecialUse::Trash,
    ];

    /// The IMAP attribute, e.g. `\Sent`.
    pub fn as_imap(self) -> &'static str {
        match self {
            SpecialUse::All => "\\All",
            SpecialUse::Archive => "\\Archive",
            SpecialUse::Drafts => "\\Drafts",
            SpecialUse::Flagged => "\\Flagged",
            SpecialUse::Junk => "\\Junk",
            SpecialUse::Sent => "\\Sent",
            SpecialUse::Trash => "\\Trash",
        }
    }

    /// Parses an IMAP attribute (case-insensitive).
    pub fn from_imap(attr: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_imap().eq_ignore_ascii_case(attr))
    }
}

/// What a source knows about a folder's contents without listing its messages. A folder whose
/// status equals the one recorded after the last complete pass has nothing new.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderStatus {
    /// Number of messages.
    pub count: u64,
    /// Validity token (IMAP UIDVALIDITY): when it changes, keys from before mean nothing.
    pub validity: u64,
    /// The id the next message will get (IMAP UIDNEXT), where the backend has one.
    pub next_id: Option<u64>,
    /// Highest modification sequence (IMAP CONDSTORE), where the backend has one.
    pub modseq: Option<u64>,
    /// Total size in bytes, where cheaply known.
    pub size: Option<u64>,
}

/// A folder as a backend lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Folder {
    /// Where it is.
    pub path: FolderPath,
    /// Its special-use role, if any.
    pub special_use: Option<SpecialUse>,
    /// Its status.
    pub status: FolderStatus,
    /// Whether it can hold messages (IMAP `\Noselect` folders cannot).
    pub selectable: bool,
}

impl Folder {
    /// A selectable folder with the given path and status and no special use.
    pub fn new(path: FolderPath, status: FolderStatus) -> Self {
        Folder {
            path,
            special_use: None,
            status,
            selectable: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_joins_on_any_delimiter() {
        let p = FolderPath::from_delimited("Archive.2020.Q1", Some('.'));
        assert_eq!(p.segments(), ["Archive", "2020", "Q1"]);
        assert_eq!(p.join("/"), "Archive/2020/Q1");
        assert_eq!(p.parent(), Some(FolderPath::new(["Archive", "2020"])));
        assert_eq!(FolderPath::from_delimited("a//b/", Some('/')).depth(), 2);
        assert!(FolderPath::new(["inbox"]).is_inbox());
    }

    #[test]
    fn serialises_as_a_list_of_segments() {
        let p = FolderPath::new(["Énvoyés", "x"]);
        let json = serde_json::to_string(&p).expect("serialise");
        assert_eq!(json, r#"["Énvoyés","x"]"#);
        let back: FolderPath = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, p);
    }

    #[test]
    fn special_use_round_trips_through_imap_names() {
        for s in SpecialUse::ALL {
            assert_eq!(SpecialUse::from_imap(&s.as_imap().to_lowercase()), Some(s));
        }
    }
}
