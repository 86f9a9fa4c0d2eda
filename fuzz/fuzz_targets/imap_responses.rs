//! What mailferry-imap does with server bytes: every response imap-proto parses out of the
//! input goes where the client sends it — tagged status lines to `Tagged` (APPENDUID UID sets
//! expanded, unknown `[CODE]`s classified), LIST lines to the folder-name decoding and the
//! namespace filter, and every line to the NAMESPACE parser. Nothing may panic, hang or
//! allocate without bound on a hostile or broken server's answer.
//!
//! Properties beyond "returns": an APPENDUID answer yields one UID per message the set names,
//! compressing those UIDs again (`uid_set`) and re-parsing gives the same set, and a folder
//! path encoded for the server lists back as the same path.
//!
//! Built only with the `imap-hooks` feature: it needs mailferry-imap's parsers public, as
//! `mailferry_imap::fuzzing` (proto's `Tagged`, `Code`, `Answer`, `uid_set`,
//! `expand_uid_set`, `parse_namespace`, and folders' `Naming` with `encode`/`is_personal`,
//! `decode_name`, `special_use`), the way `mailferry_maildir::fuzzing` exposes Maildir's.

#![no_main]

use async_imap::imap_proto::{MailboxDatum, Response};
use libfuzzer_sys::fuzz_target;
use mailferry_core::FolderPath;
use mailferry_imap::fuzzing::{
    Code, Naming, Tagged, decode_name, expand_uid_set, parse_namespace, special_use, uid_set,
};

/// Prefixes and delimiters of the servers we know: Dovecot, Courier/old Cyrus, flat servers.
const NAMINGS: [(&str, Option<char>); 4] = [
    ("", Some('/')),
    ("", Some('.')),
    ("INBOX.", Some('.')),
    ("", None),
];

fn naming(prefix: &str, delimiter: Option<char>) -> Naming {
    Naming {
        delimiter,
        prefix: prefix.to_string(),
        foreign: vec!["#shared/".to_string(), "user.".to_string()],
    }
}

fn check_tagged(t: &Tagged) {
    let _ = (t.kind(true), t.kind(false), t.describe());
    let _ = (t.is_ok(), t.already_exists(), t.nonexistent());
    if let Code::AppendUid { validity, uids } = &t.code {
        let line = format!("a OK [APPENDUID {validity} {}] x\r\n", uid_set(uids));
        if let Ok((_, Response::Done { outcome, .. })) = Response::parse(line.as_bytes())
            && let Some(async_imap::imap_proto::ResponseCode::AppendUid(_, set)) = &outcome.code
        {
            let mut sorted = uids.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(expand_uid_set(set), sorted, "{line}");
        }
    }
}

fn check_list(raw: &str, delimiter: Option<&str>) {
    for (prefix, d) in NAMINGS {
        let path = decode_name(raw, delimiter, prefix);
        let _ = naming(prefix, d).is_personal(raw);
        // A path we create must list back as itself (INBOX's case aside). Under a prefix, a
        // child of INBOX and a top-level folder are the same name on the server, so only
        // paths that do not start at INBOX are compared there.
        let Ok(encoded) = naming(prefix, d).encode(&path) else {
            continue;
        };
        if !prefix.is_empty() && path.segments()[0].eq_ignore_ascii_case("INBOX") {
            continue;
        }
        let delimiter = d.map(String::from);
        let back = decode_name(&encoded, delimiter.as_deref(), prefix);
        assert_eq!(
            inbox_upper(&back),
            inbox_upper(&path),
            "{raw:?} -> {path:?} -> {encoded:?}"
        );
    }
}

fn inbox_upper(path: &FolderPath) -> FolderPath {
    FolderPath::new(path.segments().iter().enumerate().map(|(i, s)| {
        if i == 0 && s.eq_ignore_ascii_case("INBOX") {
            "INBOX".to_string()
        } else {
            s.clone()
        }
    }))
}

fuzz_target!(|data: &[u8]| {
    for line in data.split(|&b| b == b'\n') {
        let _ = parse_namespace(line.strip_suffix(b"\r").unwrap_or(line));
    }
    let mut rest = data;
    while let Ok((after, response)) = Response::parse(rest) {
        match response {
            Response::Done {
                status, outcome, ..
            } => check_tagged(&Tagged::new(
                status,
                outcome.code.as_ref(),
                outcome.information.as_deref(),
            )),
            Response::MailboxData(MailboxDatum::List(list)) => {
                let _ = special_use(&list.name_attributes);
                check_list(&list.name, list.delimiter.as_deref());
            }
            _ => {}
        }
        if after.len() >= rest.len() {
            break;
        }
        rest = after;
    }
});
