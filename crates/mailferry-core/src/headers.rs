//! Header facts (Message-ID, Date, From, Subject), taken once per item from mail-parser's
//! *header* parse. We find the header/body boundary ourselves (mail-parser 0.11 reports the end
//! of the input as the body offset) and hand it only the header block, so a message with large
//! attachments costs no more than one without. A parser panic on hostile input is caught and
//! turned into an item error: the run goes on.

use std::panic::{AssertUnwindSafe, catch_unwind};

use serde::{Deserialize, Serialize};

use crate::date::InternalDate;
use crate::error::{Error, Result};

/// What the pipeline needs to know about a message's headers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderFacts {
    /// `Message-ID`, without angle brackets.
    pub message_id: Option<String>,
    /// `Date`, when it parses.
    pub date: Option<InternalDate>,
    /// The first `From` address.
    pub from: Option<String>,
    /// `Subject`, decoded.
    pub subject: Option<String>,
}

/// The offset where the body starts: just after the first empty line (`\n\n`, `\r\n\r\n`, or
/// mixes), or the end of the input when there is no empty line (a message of headers only).
pub fn header_end(raw: &[u8]) -> usize {
    if raw.starts_with(b"\r\n") {
        return 2;
    }
    if raw.starts_with(b"\n") {
        return 1;
    }
    for j in memchr::memchr_iter(b'\n', raw) {
        match raw.get(j + 1) {
            Some(b'\n') => return j + 2,
            Some(b'\r') if raw.get(j + 2) == Some(&b'\n') => return j + 3,
            _ => {}
        }
    }
    raw.len()
}

impl HeaderFacts {
    /// Parses the header block of `raw`. A panic inside the parser becomes an item error.
    pub fn parse(raw: &[u8]) -> Result<Self> {
        let head = &raw[..header_end(raw)];
        catch_unwind(AssertUnwindSafe(|| Self::parse_unchecked(head))).map_err(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Error::item(format!("the header parser failed on this message: {what}"))
        })
    }

    fn parse_unchecked(head: &[u8]) -> Self {
        let Some(msg) = mail_parser::MessageParser::new().parse_headers(head) else {
            return HeaderFacts::default();
        };
        HeaderFacts {
            message_id: msg
                .message_id()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            date: msg.date().filter(|d| d.is_valid()).map(|d| InternalDate {
                timestamp: d.to_timestamp(),
                offset_minutes: (i16::from(d.tz_hour) * 60 + i16::from(d.tz_minute))
                    * if d.tz_before_gmt { -1 } else { 1 },
            }),
            from: msg
                .from()
                .and_then(|a| a.first())
                .and_then(|a| a.address())
                .map(str::to_string),
            subject: msg.subject().map(str::to_string),
        }
    }

    /// The fingerprint of a message, or of its header block, as any store holds it: the header
    /// block (up to the first blank line) is canonicalised and parsed, so every backend lists
    /// the same fingerprint for the same message whatever its line endings. The one way
    /// mailferry computes it; `None` when the headers give nothing to go by.
    pub fn fingerprint_of(raw: &[u8]) -> Option<String> {
        HeaderFacts::parse(&crate::normalise::canonical_head(raw))
            .ok()?
            .fingerprint()
    }

    /// A fingerprint for messages without a Message-ID, used to recognise a message already in a
    /// target: BLAKE3 over Date, From and Subject. `None` when none of them is present.
    /// Built by concatenation rather than `format!`: the copier takes one per item it records.
    pub fn fingerprint(&self) -> Option<String> {
        if let Some(id) = &self.message_id {
            return Some(["id:", id].concat());
        }
        if self.date.is_none() && self.from.is_none() && self.subject.is_none() {
            return None;
        }
        let mut h = blake3::Hasher::new();
        h.update(&self.date.map_or(i64::MIN, |d| d.timestamp).to_le_bytes());
        h.update(self.from.as_deref().unwrap_or("").as_bytes());
        h.update(b"\0");
        h.update(self.subject.as_deref().unwrap_or("").as_bytes());
        Some(["hh:", &h.finalize().to_hex()[..32]].concat())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_header_boundary_for_any_line_ending() {
        assert_eq!(header_end(b"A: b\r\n\r\nbody"), 8);
        assert_eq!(header_end(b"A: b\n\nbody"), 6);
        assert_eq!(header_end(b"A: b\n\r\nbody"), 7);
        assert_eq!(header_end(b"\r\nbody"), 2);
        assert_eq!(header_end(b"A: b\r\nC: d"), 10);
        assert_eq!(header_end(b""), 0);
    }

    #[test]
    fn parses_only_the_headers() {
        let raw = b"Message-ID: <a@b>\r\nFrom: Ann <ann@example.org>\r\nSubject: =?utf-8?q?h=C3=A9?=\r\nDate: Tue, 5 Mar 2024 10:00:00 +0100\r\n\r\nMessage-ID: <not@this>\r\n";
        let f = HeaderFacts::parse(raw).expect("parse");
        assert_eq!(f.message_id.as_deref(), Some("a@b"));
        assert_eq!(f.from.as_deref(), Some("ann@example.org"));
        assert_eq!(f.subject.as_deref(), Some("hé"));
        let d = f.date.expect("date");
        assert_eq!((d.timestamp, d.offset_minutes), (1_709_629_200, 60));
        assert_eq!(f.fingerprint().as_deref(), Some("id:a@b"));
    }

    #[test]
    fn fingerprint_without_a_message_id_is_a_hash_of_date_from_and_subject() {
        let f = HeaderFacts::parse(b"From: a@b\r\nSubject: s\r\n\r\n").expect("parse");
        let mut h = blake3::Hasher::new();
        h.update(&i64::MIN.to_le_bytes());
        h.update(b"a@b\0s");
        let expected = format!("hh:{}", &h.finalize().to_hex()[..32]);
        assert_eq!(f.fingerprint(), Some(expected));
        assert_eq!(f.fingerprint().map(|s| s.len()), Some(35));
    }

    #[test]
    fn messages_without_headers_have_no_facts() {
        let f = HeaderFacts::parse(b"just a body line\n").expect("parse");
        assert_eq!(f.message_id, None);
        let f = HeaderFacts::parse(b"").expect("parse");
        assert_eq!(f.fingerprint(), None);
    }
}
