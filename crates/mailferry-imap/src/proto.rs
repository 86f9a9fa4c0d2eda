//! Small pieces of IMAP syntax that async-imap / imap-proto leave to us: quoting, UID sets
//! (compressing for commands, expanding APPENDUID answers), flag lists, tagged status lines with
//! the response codes imap-proto does not know (`[UNAVAILABLE]`, `[ALREADYEXISTS]`, …), and the
//! NAMESPACE response, which imap-proto cannot parse at all. Pure functions on bytes and strings,
//! so each is unit-tested without a server.

use async_imap::imap_proto::rfc4315::UidSetMember;
use async_imap::imap_proto::{ResponseCode, Status};
use mailferry_core::{Error, ErrorKind, Flags, Result};

/// An IMAP quoted string. Folder names are modified UTF-7, so 7-bit; CR, LF and NUL cannot be
/// quoted at all and are refused.
pub(crate) fn quote(s: &str) -> Result<String> {
    if s.bytes()
        .any(|b| b == b'\r' || b == b'\n' || b == 0 || b >= 0x80)
    {
        return Err(Error::item(format!(
            "{s:?} cannot be sent as an IMAP quoted string"
        )));
    }
    Ok(format!(
        "\"{}\"",
        s.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

/// A compact UID set (`1:3,7,9:10`) for sorted or unsorted UIDs, duplicates removed.
pub fn uid_set(uids: &[u32]) -> String {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

/// Expands an APPENDUID/COPYUID uid set into one UID per message, in order. A range means every
/// value between its ends "regardless of order" (RFC 4315), listed ascending.
pub fn expand_uid_set(set: &[UidSetMember]) -> Vec<u32> {
    // A server's set is expanded only up to a sane size: `1:4294967295` would otherwise ask for
    // 16 GiB. An over-long set yields nothing, which callers treat as "no usable APPENDUID"
    // (its length cannot match the batch).
    let total: u64 = set
        .iter()
        .map(|m| match m {
            UidSetMember::Uid(_) => 1,
            UidSetMember::UidRange(r) => u64::from(r.start().abs_diff(*r.end())) + 1,
        })
        .sum();
    if total > MAX_EXPANDED_UIDS {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(total as usize);
    for member in set {
        match member {
            UidSetMember::Uid(u) => out.push(*u),
            UidSetMember::UidRange(r) => {
                let (a, b) = (*r.start(), *r.end());
                out.extend(a.min(b)..=a.max(b));
            }
        }
    }
    out
}

/// The most UIDs an APPENDUID set may expand to (far above any batch).
const MAX_EXPANDED_UIDS: u64 = 1 << 20;

/// Whether `s` is an IMAP atom (what a keyword must be).
pub(crate) fn is_atom(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b > 0x20
                && b < 0x7f
                && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
        })
}

/// The parenthesised flag list for APPEND or STORE. `\Recent` is never in [`Flags`]; a keyword
/// that is not an atom cannot be stored in IMAP and is refused rather than silently dropped.
pub(crate) fn flag_list(flags: &Flags) -> Result<String> {
    if let Some(bad) = flags.keywords.iter().find(|k| !is_atom(k)) {
        return Err(Error::item(format!(
            "the keyword {bad:?} is not a valid IMAP keyword (it must be an atom)"
        )));
    }
    Ok(format!("({flags})"))
}

/// The end of a command: the tagged status line, reduced to what we act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tagged {
    /// OK, NO or BAD.
    pub status: Answer,
    /// A response code we act on.
    pub code: Code,
    /// The human-readable text, including an unknown `[CODE]` at its start.
    pub text: String,
}

/// The status of a tagged answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// OK
    Ok,
    /// NO
    No,
    /// BAD (or anything else a tagged line should not carry)
    Bad,
}

/// Response codes that change what we do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Code {
    /// No code, or one we do not act on.
    None,
    /// `[APPENDUID validity uids]`: the stored messages' UIDs, one per message.
    AppendUid {
        /// The folder's UIDVALIDITY.
        validity: u32,
        /// One UID per appended message, in order.
        uids: Vec<u32>,
    },
    /// `[TRYCREATE]`: the folder does not exist.
    TryCreate,
    /// A code imap-proto does not parse, such as `UNAVAILABLE` (upper-cased atom).
    Other(String),
}

impl Tagged {
    /// From a parsed `Done` response.
    pub fn new(status: Status, code: Option<&ResponseCode<'_>>, information: Option<&str>) -> Self {
        let text = information.unwrap_or("").to_string();
        let code = match code {
            Some(ResponseCode::AppendUid(validity, set)) => Code::AppendUid {
                validity: *validity,
                uids: expand_uid_set(set),
            },
            Some(ResponseCode::TryCreate) => Code::TryCreate,
            Some(_) => Code::None,
            None => unknown_code(&text).map_or(Code::None, Code::Other),
        };
        let status = match status {
            Status::Ok => Answer::Ok,
            Status::No => Answer::No,
            _ => Answer::Bad,
        };
        Tagged { status, code, text }
    }

    /// Whether the command succeeded.
    pub fn is_ok(&self) -> bool {
        self.status == Answer::Ok
    }

    /// Whether the server said the thing already exists (CREATE).
    pub fn already_exists(&self) -> bool {
        self.code == Code::Other("ALREADYEXISTS".into())
            || self.text.to_ascii_lowercase().contains("already exists")
    }

    /// Whether the server said the folder does not exist (SELECT, EXAMINE, STATUS).
    pub fn nonexistent(&self) -> bool {
        let lower = self.text.to_ascii_lowercase();
        self.code == Code::Other("NONEXISTENT".into())
            || self.code == Code::TryCreate
            || lower.contains("doesn't exist")
            || lower.contains("does not exist")
    }

    /// What a NO/BAD means for the pipeline, when the command was about `item_level` work (an
    /// APPEND of one message) or not: a busy or throttling server is transient; a refused message
    /// is an item error; a protocol error (BAD) or a full quota is fatal. `[LIMIT]` is transient
    /// (a per-session limit) except on an APPEND, where Dovecot uses it for "message too large",
    /// which no retry can fix.
    pub fn kind(&self, item_level: bool) -> ErrorKind {
        if let Code::Other(code) = &self.code {
            match code.as_str() {
                "UNAVAILABLE" | "THROTTLED" | "INUSE" | "SERVERBUG" | "EXPUNGEISSUED" => {
                    return ErrorKind::Transient;
                }
                "LIMIT" if !(item_level && self.status == Answer::No) => {
                    return ErrorKind::Transient;
                }
                "OVERQUOTA" => return ErrorKind::Fatal,
                _ => {}
            }
        }
        if self.status == Answer::No && item_level {
            ErrorKind::Item
        } else {
            ErrorKind::Fatal
        }
    }

    /// `NO [CODE] text` as a human-readable string.
    pub fn describe(&self) -> String {
        let status = match self.status {
            Answer::Ok => "OK",
            Answer::No => "NO",
            Answer::Bad => "BAD",
        };
        format!("{status} {}", self.text)
    }
}

/// The atom of a `[CODE ...]` at the start of a status text.
fn unknown_code(text: &str) -> Option<String> {
    let rest = text.strip_prefix('[')?;
    let end = rest.find([']', ' '])?;
    let atom = &rest[..end];
    (!atom.is_empty()).then(|| atom.to_ascii_uppercase())
}

/// The personal namespace and the prefixes of the others (RFC 2342).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespaces {
    /// The first personal namespace: prefix and delimiter.
    pub personal: Option<(String, Option<char>)>,
    /// Non-empty prefixes of the other users' and shared namespaces, left out of listings.
    pub foreign: Vec<String>,
}

#[derive(Debug, PartialEq)]
enum Sexp {
    List(Vec<Sexp>),
    Str(String),
    Nil,
}

/// How deep NAMESPACE's nested lists may go: real answers nest three levels; a hostile server
/// could otherwise overflow the stack with `((((…`.
const MAX_SEXP_DEPTH: usize = 8;

fn sexp(input: &[u8], pos: &mut usize) -> Option<Sexp> {
    sexp_at(input, pos, 0)
}

fn sexp_at(input: &[u8], pos: &mut usize, depth: usize) -> Option<Sexp> {
    if depth > MAX_SEXP_DEPTH {
        return None;
    }
    while input.get(*pos) == Some(&b' ') {
        *pos += 1;
    }
    match *input.get(*pos)? {
        b'(' => {
            *pos += 1;
            let mut items = Vec::new();
            loop {
                while input.get(*pos) == Some(&b' ') {
                    *pos += 1;
                }
                if *input.get(*pos)? == b')' {
                    *pos += 1;
                    return Some(Sexp::List(items));
                }
                items.push(sexp_at(input, pos, depth + 1)?);
            }
        }
        b'"' => {
            *pos += 1;
            let mut s = Vec::new();
            loop {
                match *input.get(*pos)? {
                    b'\\' => {
                        s.push(*input.get(*pos + 1)?);
                        *pos += 2;
                    }
                    b'"' => {
                        *pos += 1;
                        return String::from_utf8(s).ok().map(Sexp::Str);
                    }
                    b => {
                        s.push(b);
                        *pos += 1;
                    }
                }
            }
        }
        _ => {
            let start = *pos;
            while input
                .get(*pos)
                .is_some_and(|b| !matches!(b, b' ' | b'(' | b')' | b'\r' | b'\n'))
            {
                *pos += 1;
            }
            let atom = std::str::from_utf8(&input[start..*pos]).ok()?;
            if atom.eq_ignore_ascii_case("NIL") {
                Some(Sexp::Nil)
            } else if atom.is_empty() {
                None
            } else {
                Some(Sexp::Str(atom.to_string()))
            }
        }
    }
}

/// The namespaces of a group: `(("prefix" "delim") ...)` or NIL.
fn namespace_group(group: &Sexp) -> Vec<(String, Option<char>)> {
    let Sexp::List(entries) = group else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|e| match e {
            Sexp::List(parts) => match (parts.first(), parts.get(1)) {
                (Some(Sexp::Str(prefix)), Some(Sexp::Str(d))) => {
                    Some((prefix.clone(), d.chars().next()))
                }
                (Some(Sexp::Str(prefix)), _) => Some((prefix.clone(), None)),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Parses the untagged `* NAMESPACE ...` line (with or without its CRLF).
pub fn parse_namespace(line: &[u8]) -> Option<Namespaces> {
    let rest = line.strip_prefix(b"* ")?;
    if rest.len() < 10 || !rest[..10].eq_ignore_ascii_case(b"NAMESPACE ") {
        return None;
    }
    let mut pos = 10;
    let groups: Vec<Sexp> = (0..3).map_while(|_| sexp(rest, &mut pos)).collect();
    if groups.len() != 3 {
        return None;
    }
    let personal = namespace_group(&groups[0]).into_iter().next();
    let foreign = groups[1..]
        .iter()
        .flat_map(namespace_group)
        .map(|(prefix, _)| prefix)
        .filter(|p| !p.is_empty())
        .collect();
    Some(Namespaces { personal, foreign })
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_imap::imap_proto::Response;

    fn tagged(line: &[u8]) -> Tagged {
        let (rest, resp) = Response::parse(line).expect("parses");
        assert!(rest.is_empty());
        match resp {
            Response::Done {
                status, outcome, ..
            } => Tagged::new(
                status,
                outcome.code.as_ref(),
                outcome.information.as_deref(),
            ),
            other => panic!("not a tagged line: {other:?}"),
        }
    }

    #[test]
    fn appenduid_expands_to_one_uid_per_message_in_order() {
        let t =
            tagged(b"mf7 OK [APPENDUID 1795567465 3955:3957,3960,4001:4002] Append completed.\r\n");
        assert!(t.is_ok());
        assert_eq!(
            t.code,
            Code::AppendUid {
                validity: 1_795_567_465,
                uids: vec![3955, 3956, 3957, 3960, 4001, 4002]
            }
        );
        let single = tagged(b"a OK [APPENDUID 7 12] done\r\n");
        assert_eq!(
            single.code,
            Code::AppendUid {
                validity: 7,
                uids: vec![12]
            }
        );
    }

    #[test]
    fn reversed_ranges_expand_ascending() {
        let t = tagged(b"a OK [APPENDUID 7 9:7] done\r\n");
        assert_eq!(
            t.code,
            Code::AppendUid {
                validity: 7,
                uids: vec![7, 8, 9]
            }
        );
    }

    #[test]
    fn unknown_codes_are_kept_and_classified() {
        let busy = tagged(b"a NO [UNAVAILABLE] Temporary failure, try again\r\n");
        assert_eq!(busy.code, Code::Other("UNAVAILABLE".into()));
        assert_eq!(busy.kind(true), ErrorKind::Transient);
        let too_big = tagged(b"a NO [LIMIT] Mail size is larger than the maximum size\r\n");
        assert_eq!(
            too_big.kind(true),
            ErrorKind::Item,
            "on APPEND: this message only"
        );
        assert_eq!(
            too_big.kind(false),
            ErrorKind::Transient,
            "elsewhere: a session limit"
        );
        let rejected = tagged(b"a NO Message contains bare newlines\r\n");
        assert_eq!(rejected.code, Code::None);
        assert_eq!(rejected.kind(true), ErrorKind::Item);
        assert_eq!(rejected.kind(false), ErrorKind::Fatal);
        assert_eq!(rejected.describe(), "NO Message contains bare newlines");
        let quota = tagged(b"a NO [OVERQUOTA] Quota exceeded (mailbox for user is full)\r\n");
        assert_eq!(quota.kind(true), ErrorKind::Fatal);
        let exists = tagged(b"a NO [ALREADYEXISTS] Mailbox already exists\r\n");
        assert!(exists.already_exists());
        let missing = tagged(b"a NO [NONEXISTENT] Mailbox doesn't exist: Foo\r\n");
        assert!(missing.nonexistent() && !missing.already_exists());
        let try_create = tagged(b"a NO [TRYCREATE] Mailbox doesn't exist: Foo\r\n");
        assert_eq!(try_create.code, Code::TryCreate);
        let bad = tagged(b"a BAD Error in IMAP command APPEND: Invalid arguments.\r\n");
        assert_eq!(bad.status, Answer::Bad);
        assert_eq!(bad.kind(true), ErrorKind::Fatal);
    }

    #[test]
    fn uid_sets_compress_into_ranges() {
        assert_eq!(uid_set(&[5, 1, 2, 3, 9, 10, 3]), "1:3,5,9:10");
        assert_eq!(uid_set(&[42]), "42");
        assert_eq!(uid_set(&[]), "");
    }

    #[test]
    fn quoting_escapes_and_refuses_line_breaks() {
        assert_eq!(quote("a\"b\\c").expect("quotes"), r#""a\"b\\c""#);
        assert_eq!(quote("&AMk-t&AOk-").expect("quotes"), "\"&AMk-t&AOk-\"");
        assert!(quote("a\r\nb").is_err());
        assert!(quote("é").is_err());
    }

    #[test]
    fn flag_lists_refuse_keywords_that_are_not_atoms() {
        let ok = Flags::from_imap(["\\Seen", "$Forwarded", "Project-X"]);
        assert_eq!(
            flag_list(&ok).expect("valid"),
            "(\\Seen $Forwarded Project-X)"
        );
        assert_eq!(flag_list(&Flags::default()).expect("valid"), "()");
        let mut bad = Flags::default();
        bad.keywords.insert("two words".into());
        assert!(flag_list(&bad).is_err());
        bad.keywords.clear();
        bad.keywords.insert("br]acket".into());
        assert!(flag_list(&bad).is_err());
    }

    #[test]
    fn namespace_lines_give_the_personal_prefix_and_the_foreign_ones() {
        let dovecot = parse_namespace(b"* NAMESPACE ((\"\" \".\")) NIL NIL\r\n").expect("parses");
        assert_eq!(dovecot.personal, Some((String::new(), Some('.'))));
        assert!(dovecot.foreign.is_empty());
        let cyrus = parse_namespace(
            b"* NAMESPACE ((\"INBOX.\" \".\")) ((\"user.\" \".\")) ((\"\" \".\")(\"Public/\" \"/\" \"X-PARAM\" (\"A\")))",
        )
        .expect("parses");
        assert_eq!(cyrus.personal, Some(("INBOX.".into(), Some('.'))));
        assert_eq!(
            cyrus.foreign,
            vec!["user.".to_string(), "Public/".to_string()]
        );
        let flat = parse_namespace(b"* namespace ((\"\" NIL)) NIL NIL").expect("parses");
        assert_eq!(flat.personal, Some((String::new(), None)));
        assert_eq!(parse_namespace(b"* LIST () \".\" INBOX"), None);
        assert_eq!(parse_namespace(b"* NAMESPACE ((\"unterminated"), None);
    }

    #[test]
    fn list_lines_give_attributes_delimiter_and_encoded_name() {
        let line = b"* LIST (\\HasNoChildren \\Sent) \"/\" \"&AMk-l&AOk-ments/Envoy&AOk-s\"\r\n";
        let (_, resp) = Response::parse(line).expect("parses");
        let Response::MailboxData(async_imap::imap_proto::MailboxDatum::List(list)) = resp else {
            panic!("not a LIST line");
        };
        assert_eq!(list.delimiter.as_deref(), Some("/"));
        let path = crate::folders::decode_name(&list.name, list.delimiter.as_deref(), "");
        assert_eq!(path.segments(), ["Éléments", "Envoyés"]);
        assert_eq!(
            crate::folders::special_use(&list.name_attributes),
            Some(mailferry_core::SpecialUse::Sent)
        );
    }

    #[test]
    fn hostile_answers_found_by_fuzzing_are_refused_not_fatal() {
        // Found by fuzz/imap_responses: a 16 GiB allocation, then a stack overflow.
        let t = tagged(b"a OK [APPENDUID 1 1:4294967295] x\r\n");
        assert_eq!(
            t.code,
            Code::AppendUid {
                validity: 1,
                uids: Vec::new()
            }
        );
        let mut deep = b"(".repeat(200_000);
        deep.extend_from_slice(b"\r\n");
        let mut pos = 0;
        assert!(sexp(&deep, &mut pos).is_none());
    }
}
