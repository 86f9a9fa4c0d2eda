//! Folder names and the folder list.
//!
//! A server name is turned into a [`FolderPath`] by stripping the personal namespace prefix,
//! splitting on the hierarchy delimiter and decoding each segment from modified UTF-7; the way
//! back encodes each segment and joins. A segment that contains the server's delimiter cannot be
//! represented (it would silently become two levels), so it is refused with an item error that
//! names it and suggests a rename rule, rather than escaped in a way no other client would
//! understand. Server names seen in a listing are remembered, so a name that does not round-trip
//! (invalid modified UTF-7 from a sloppy server) still opens the right folder.
//!
//! The list comes from one `LIST "" "*" RETURN (SPECIAL-USE STATUS (…))` round trip where
//! LIST-STATUS is offered, else from LIST followed by pipelined STATUS commands.

use std::collections::HashMap;

use async_imap::imap_proto::{MailboxDatum, NameAttribute, Response, StatusAttribute};
use mailferry_core::{Error, Folder, FolderPath, FolderStatus, Result, SpecialUse, utf7};

use crate::conn::{Conn, ServerInfo};
use crate::proto::quote;

/// How this server spells folder names.
#[derive(Debug, Clone, Default)]
pub struct Naming {
    /// Hierarchy delimiter (`None`: a flat server).
    pub delimiter: Option<char>,
    /// The personal namespace prefix (`""` on Dovecot, `"INBOX."` on Courier and old Cyrus).
    pub prefix: String,
    /// Prefixes of other users' and shared namespaces, left out of listings.
    pub foreign: Vec<String>,
}

impl Naming {
    /// The server name of a folder.
    pub fn encode(&self, path: &FolderPath) -> Result<String> {
        if path.is_inbox() {
            return Ok("INBOX".into());
        }
        if path.depth() == 0 {
            return Err(Error::item("a folder path needs at least one segment"));
        }
        let mut segments = Vec::with_capacity(path.depth());
        for (i, segment) in path.segments().iter().enumerate() {
            if segment.is_empty() {
                return Err(Error::item(format!(
                    "folder {path} has an empty name segment"
                )));
            }
            match self.delimiter {
                Some(d) if segment.contains(d) => {
                    return Err(Error::item(format!(
                        "folder {path}: the name {segment:?} contains the server's hierarchy \
                         delimiter {d:?}; rename it with a folder mapping rule"
                    )));
                }
                None if path.depth() > 1 => {
                    return Err(Error::item(format!(
                        "folder {path}: the server has no folder hierarchy; flatten it with a \
                         folder mapping rule"
                    )));
                }
                _ => {}
            }
            if i == 0 && segment.eq_ignore_ascii_case("INBOX") {
                segments.push("INBOX".to_string());
            } else {
                segments.push(utf7::encode(segment));
            }
        }
        let delimiter = self.delimiter.map(String::from).unwrap_or_default();
        let joined = segments.join(&delimiter);
        if segments[0] == "INBOX" {
            Ok(joined)
        } else {
            Ok(format!("{}{joined}", self.prefix))
        }
    }

    /// Whether a listed name belongs to the personal namespace.
    pub fn is_personal(&self, raw: &str) -> bool {
        if raw.eq_ignore_ascii_case("INBOX") {
            return true;
        }
        if self.foreign.iter().any(|p| raw.starts_with(p.as_str())) {
            return false;
        }
        self.prefix.is_empty() || raw.starts_with(&self.prefix) || is_inbox_child(raw, self)
    }
}

fn is_inbox_child(raw: &str, naming: &Naming) -> bool {
    naming.delimiter.is_some_and(|d| {
        // `get`, not slicing: a hostile name may put a multi-byte character across byte 5.
        raw.len() > 6
            && raw
                .get(..5)
                .is_some_and(|p| p.eq_ignore_ascii_case("INBOX"))
            && raw[5..].starts_with(d)
    })
}

/// A listed server name as a path: prefix stripped, split, each segment decoded.
pub fn decode_name(raw: &str, delimiter: Option<&str>, prefix: &str) -> FolderPath {
    if raw.eq_ignore_ascii_case("INBOX") {
        return FolderPath::inbox();
    }
    let stripped = if !prefix.is_empty() && raw.len() > prefix.len() {
        raw.strip_prefix(prefix).unwrap_or(raw)
    } else {
        raw
    };
    let delimiter = delimiter.and_then(|d| d.chars().next());
    let raw_path = FolderPath::from_delimited(stripped, delimiter);
    FolderPath::new(
        raw_path
            .segments()
            .iter()
            .map(|s| utf7::decode(s).unwrap_or_else(|| s.clone())),
    )
}

/// The special-use role among LIST attributes.
pub fn special_use(attrs: &[NameAttribute<'_>]) -> Option<SpecialUse> {
    attrs.iter().find_map(|a| match a {
        NameAttribute::All => Some(SpecialUse::All),
        NameAttribute::Archive => Some(SpecialUse::Archive),
        NameAttribute::Drafts => Some(SpecialUse::Drafts),
        NameAttribute::Flagged => Some(SpecialUse::Flagged),
        NameAttribute::Junk => Some(SpecialUse::Junk),
        NameAttribute::Sent => Some(SpecialUse::Sent),
        NameAttribute::Trash => Some(SpecialUse::Trash),
        _ => None,
    })
}

fn selectable(attrs: &[NameAttribute<'_>]) -> bool {
    !attrs.iter().any(|a| match a {
        NameAttribute::NoSelect => true,
        NameAttribute::Extension(e) => e.eq_ignore_ascii_case("\\NonExistent"),
        _ => false,
    })
}

/// One LIST line.
struct Listed {
    raw: String,
    delimiter: Option<String>,
    special_use: Option<SpecialUse>,
    selectable: bool,
}

fn apply_status(status: &mut FolderStatus, attrs: &[StatusAttribute]) {
    for a in attrs {
        match a {
            StatusAttribute::Messages(n) => status.count = u64::from(*n),
            StatusAttribute::UidValidity(v) => status.validity = u64::from(*v),
            StatusAttribute::UidNext(n) => status.next_id = Some(u64::from(*n)),
            StatusAttribute::HighestModSeq(m) => status.modseq = Some(*m),
            _ => {}
        }
    }
}

/// The status items to ask for (HIGHESTMODSEQ only where CONDSTORE makes it legal; never SIZE,
/// which imap-proto cannot parse).
fn status_items(info: &ServerInfo) -> &'static str {
    if info.has("CONDSTORE") {
        "(MESSAGES UIDVALIDITY UIDNEXT HIGHESTMODSEQ)"
    } else {
        "(MESSAGES UIDVALIDITY UIDNEXT)"
    }
}

/// Lists the personal folders with their status. Returns them and their server names.
pub(crate) async fn list(
    conn: &mut Conn,
    info: &ServerInfo,
    naming: &Naming,
) -> Result<(Vec<Folder>, HashMap<FolderPath, String>)> {
    let list_status = info.has("LIST-STATUS");
    let command = if list_status {
        format!(
            "LIST \"\" \"*\" RETURN (SPECIAL-USE STATUS {})",
            status_items(info)
        )
    } else if info.has("SPECIAL-USE") && info.has("LIST-EXTENDED") {
        "LIST \"\" \"*\" RETURN (SPECIAL-USE)".to_string()
    } else {
        "LIST \"\" \"*\"".to_string()
    };
    let tag = conn.send(&command).await?;
    let mut listed = Vec::new();
    let mut statuses: HashMap<String, FolderStatus> = HashMap::new();
    let t = conn
        .finish(tag, |resp| {
            match resp.parsed() {
                Response::MailboxData(MailboxDatum::List(l)) => listed.push(Listed {
                    raw: l.name.to_string(),
                    delimiter: l.delimiter.as_deref().map(str::to_string),
                    special_use: special_use(&l.name_attributes),
                    selectable: selectable(&l.name_attributes),
                }),
                Response::MailboxData(MailboxDatum::Status { mailbox, status }) => {
                    apply_status(statuses.entry(mailbox.to_string()).or_default(), &status);
                }
                _ => {}
            }
            Ok(())
        })
        .await?;
    if !t.is_ok() {
        return Err(conn.refused(&t, "LIST", false));
    }
    listed.retain(|l| naming.is_personal(&l.raw));
    if !list_status {
        let mut tags = Vec::new();
        for l in listed.iter().filter(|l| l.selectable) {
            let line = format!("STATUS {} {}", quote(&l.raw)?, status_items(info));
            tags.push(conn.send(&line).await?);
        }
        let answers = conn
            .finish_all(&tags, |resp| {
                if let Response::MailboxData(MailboxDatum::Status { mailbox, status }) =
                    resp.parsed()
                {
                    apply_status(statuses.entry(mailbox.to_string()).or_default(), &status);
                }
                Ok(())
            })
            .await?;
        if let Some(bad) = answers.iter().find(|t| !t.is_ok()) {
            tracing::warn!(endpoint = conn.label(), answer = %bad.describe(), "STATUS failed");
        }
    }
    let mut names = HashMap::new();
    let folders = listed
        .into_iter()
        .map(|l| {
            let path = decode_name(&l.raw, l.delimiter.as_deref(), &naming.prefix);
            let status = statuses.remove(&l.raw).unwrap_or_default();
            names.insert(path.clone(), l.raw);
            Folder {
                path,
                special_use: l.special_use,
                status,
                selectable: l.selectable,
            }
        })
        .collect();
    Ok((folders, names))
}

/// The hierarchy delimiter from `LIST "" ""`, for servers without NAMESPACE.
pub(crate) async fn delimiter(conn: &mut Conn) -> Result<Option<char>> {
    let tag = conn.send("LIST \"\" \"\"").await?;
    let mut delimiter = None;
    let t = conn
        .finish(tag, |resp| {
            if let Response::MailboxData(MailboxDatum::List(l)) = resp.parsed() {
                delimiter = l.delimiter.as_deref().and_then(|d| d.chars().next());
            }
            Ok(())
        })
        .await?;
    if !t.is_ok() {
        return Err(conn.refused(&t, "LIST \"\" \"\"", false));
    }
    Ok(delimiter)
}

/// Creates `name` and its parents (pipelined, "already exists" tolerated) and subscribes it.
pub(crate) async fn create(
    conn: &mut Conn,
    info: &ServerInfo,
    parents: &[String],
    name: &str,
    special_use: Option<SpecialUse>,
) -> Result<()> {
    let mut tags = Vec::new();
    for parent in parents {
        tags.push(conn.send(&format!("CREATE {}", quote(parent)?)).await?);
    }
    let with_use = special_use.filter(|_| info.has("CREATE-SPECIAL-USE"));
    let create = match with_use {
        Some(u) => format!("CREATE {} (USE ({}))", quote(name)?, u.as_imap()),
        None => format!("CREATE {}", quote(name)?),
    };
    tags.push(conn.send(&create).await?);
    tags.push(conn.send(&format!("SUBSCRIBE {}", quote(name)?)).await?);
    let answers = conn.finish_all(&tags, |_| Ok(())).await?;
    let n = answers.len();
    let created = &answers[n - 2];
    if !created.is_ok() && !created.already_exists() {
        if with_use.is_some() {
            // The role may be taken or unsupported for this name: create it without one.
            let plain = conn.run(&format!("CREATE {}", quote(name)?)).await?;
            if plain.is_ok() || plain.already_exists() {
                conn.run(&format!("SUBSCRIBE {}", quote(name)?)).await?;
                return Ok(());
            }
        }
        return Err(conn.refused(created, &format!("CREATE {name}"), true));
    }
    if !answers[n - 1].is_ok() {
        tracing::warn!(endpoint = conn.label(), folder = name, answer = %answers[n - 1].describe(), "SUBSCRIBE failed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naming(delimiter: char, prefix: &str) -> Naming {
        Naming {
            delimiter: Some(delimiter),
            prefix: prefix.into(),
            foreign: vec!["Shared/".into()],
        }
    }

    #[test]
    fn names_round_trip_through_utf7_and_the_delimiter() {
        for (d, prefix) in [('.', ""), ('/', ""), ('.', "INBOX.")] {
            let n = naming(d, prefix);
            for path in [
                FolderPath::new(["Ünïcødé", "Sub folder"]),
                FolderPath::new(["Archive", "2020"]),
                FolderPath::new(["Tom & Jerry"]),
                FolderPath::inbox(),
            ] {
                let raw = n.encode(&path).expect("encodes");
                let delimiter = d.to_string();
                assert_eq!(decode_name(&raw, Some(&delimiter), prefix), path, "{raw}");
            }
        }
        let child = FolderPath::new(["INBOX", "child"]);
        assert_eq!(
            decode_name(
                &naming('/', "").encode(&child).expect("encodes"),
                Some("/"),
                ""
            ),
            child
        );
        let n = naming('.', "INBOX.");
        assert_eq!(
            n.encode(&FolderPath::new(["Ünïcødé", "x"]))
                .expect("encodes"),
            "INBOX.&ANw-n&AO8-c&APg-d&AOk-.x"
        );
    }

    #[test]
    fn a_segment_containing_the_delimiter_is_refused_by_name() {
        let err = naming('.', "")
            .encode(&FolderPath::new(["v1.2 notes"]))
            .expect_err("refused");
        assert_eq!(err.kind(), mailferry_core::ErrorKind::Item);
        assert!(err.to_string().contains("v1.2 notes"), "{err}");
        assert!(
            naming('/', "")
                .encode(&FolderPath::new(["v1.2 notes"]))
                .is_ok()
        );
    }

    #[test]
    fn foreign_namespaces_are_left_out() {
        let n = naming('/', "");
        assert!(n.is_personal("INBOX"));
        assert!(n.is_personal("Archive/2020"));
        assert!(!n.is_personal("Shared/team"));
        let cyrus = naming('.', "INBOX.");
        assert!(cyrus.is_personal("INBOX.Sent"));
        assert!(!cyrus.is_personal("user.bob"));
    }
}
