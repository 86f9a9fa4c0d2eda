//! The byte-level rules of the mbox format, free of I/O so they can be tested on byte strings:
//! `From ` separator lines and their dates, `>From ` quoting per variant, and the storage
//! metadata headers that carry flags.
//!
//! The metadata block is the design decision that keeps checksums faithful. mailferry writes its
//! own block as the *first* three header lines of every message, in exactly one canonical form:
//!
//! ```text
//! Status: RO            (R = \Seen; O = not recent, always written)
//! X-Status: AFTD        (A = \Answered, F = \Flagged, T = \Draft, D = \Deleted, in that order)
//! X-Keywords: a b c     (keywords, sorted, one space apart; may be empty)
//! ```
//!
//! The reader removes that block only when the first three lines are byte-for-byte what the
//! writer would produce for the flags they describe ([`parse_block`] re-renders and compares).
//! Anything else — a mutt `Status:` at the end of the header, a Dovecot `X-Keywords:` — is read
//! for flags but left in the bytes. So a message that carries its own `Status:` header keeps it
//! through mbox → Maildir → mbox and Maildir → mbox → Maildir, and its checksum survives.

use mailferry_core::{Flags, InternalDate};

/// How `>From ` lines are unquoted when reading. Writing is always mboxrd.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Variant {
    /// mboxrd: every `>+From ` line loses one `>` (the writer added one to every `>*From `
    /// line). Reversible, and what mailferry writes.
    #[default]
    Mboxrd,
    /// mboxo (and mboxcl): only `>From ` (exactly one `>`) is unquoted. Lossy by design: the
    /// writer could not tell a quoted `From ` from a real `>From `.
    Mboxo,
    /// mboxcl2: no quoting at all; messages are delimited by `Content-Length:`.
    Mboxcl2,
}

/// Whether `line` starts with the `From ` separator prefix.
pub fn is_from_line(line: &[u8]) -> bool {
    line.starts_with(b"From ")
}

/// Whether `line` is empty apart from its line ending.
pub fn is_blank(line: &[u8]) -> bool {
    line == b"\n" || line == b"\r\n"
}

/// The number of `>` before `From ` at the start of `line`, or `None` when the line is not of
/// the form `>*From `.
pub fn quote_depth(line: &[u8]) -> Option<usize> {
    let depth = line.iter().take_while(|&&b| b == b'>').count();
    line[depth..].starts_with(b"From ").then_some(depth)
}

/// Whether the reader removes one `>` from `line` under `variant`.
pub fn is_unquotable(line: &[u8], variant: Variant) -> bool {
    match (variant, quote_depth(line)) {
        (Variant::Mboxrd, Some(d)) => d >= 1,
        (Variant::Mboxo, Some(d)) => d == 1,
        _ => false,
    }
}

const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn is_name_in(token: &str, names: &[&str]) -> bool {
    names.iter().any(|n| n.eq_ignore_ascii_case(token))
}

/// The date of a `From ` separator line (`From sender asctime-date [zone] [remote from host]`),
/// as the message's internal date.
///
/// Writers disagree on everything after `From `: the sender may be missing or hold spaces,
/// the day may be padded with a space or a zero, a zone may precede or follow the year. So the
/// date is looked for at every token that names a weekday (or, for writers that omit the
/// weekday, a month), and the first position where asctime parses wins.
pub fn parse_from_line(line: &[u8]) -> Option<InternalDate> {
    let rest = line.strip_prefix(b"From ")?;
    let text = String::from_utf8_lossy(rest);
    let tokens: Vec<&str> = text.split_whitespace().collect();
    for start in 0..tokens.len() {
        let candidate = if is_name_in(tokens[start], &WEEKDAYS) {
            tokens[start..].join(" ")
        } else if is_name_in(tokens[start], &MONTHS) {
            format!("Mon {}", tokens[start..].join(" "))
        } else {
            continue;
        };
        if let Some(date) = InternalDate::parse_asctime(&candidate) {
            return Some(date);
        }
    }
    None
}

/// The separator line mailferry writes: the placeholder sender `MAILER-DAEMON` (the envelope
/// sender is not part of the item model, and a `From:` address may hold bytes a separator line
/// must not) and the internal date in UTC asctime.
pub fn render_from_line(date: InternalDate) -> String {
    format!("From MAILER-DAEMON {}\n", date.to_asctime())
}

/// Whether `date` reads back from the separator line [`render_from_line`] writes for it. The
/// asctime year has four digits here, so instants outside the years 1000–9999 do not, and the
/// reader would not know such a line as a separator after a message without a final newline.
pub fn from_line_keeps(date: InternalDate) -> bool {
    parse_from_line(render_from_line(date).as_bytes())
        .is_some_and(|d| d.timestamp == date.timestamp)
}

/// Why a keyword cannot be written to `X-Keywords:`, if it cannot.
pub fn keyword_problem(keyword: &str) -> Option<&'static str> {
    if keyword.is_empty() {
        Some("it is empty")
    } else if keyword.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("it contains whitespace or control characters")
    } else {
        None
    }
}

/// The metadata block for `flags` (see the module docs), or why it cannot be written.
pub fn render_block(flags: &Flags) -> Result<Vec<u8>, String> {
    if let Some(k) = flags.keywords.iter().find_map(|k| {
        keyword_problem(k).map(|why| format!("keyword {k:?} cannot be stored in X-Keywords: {why}"))
    }) {
        return Err(k);
    }
    let mut out = Vec::with_capacity(48);
    out.extend_from_slice(if flags.seen {
        b"Status: RO\n".as_slice()
    } else {
        b"Status: O\n".as_slice()
    });
    out.extend_from_slice(b"X-Status: ");
    for (set, letter) in [
        (flags.answered, b'A'),
        (flags.flagged, b'F'),
        (flags.draft, b'T'),
        (flags.deleted, b'D'),
    ] {
        if set {
            out.push(letter);
        }
    }
    out.extend_from_slice(b"\nX-Keywords: ");
    let keywords: Vec<&str> = flags.keywords.iter().map(String::as_str).collect();
    out.extend_from_slice(keywords.join(" ").as_bytes());
    out.push(b'\n');
    Ok(out)
}

/// The flags of a mailferry metadata block, when `lines` (the first three lines of a message,
/// with their line endings) are exactly such a block; `None` otherwise.
pub fn parse_block(lines: &[&[u8]]) -> Option<Flags> {
    let [status, x_status, x_keywords] = lines else {
        return None;
    };
    let status = status.strip_prefix(b"Status: ")?.strip_suffix(b"\n")?;
    let x_status = x_status.strip_prefix(b"X-Status: ")?.strip_suffix(b"\n")?;
    let x_keywords = x_keywords
        .strip_prefix(b"X-Keywords: ")?
        .strip_suffix(b"\n")?;
    let mut flags = Flags {
        seen: status.contains(&b'R'),
        answered: x_status.contains(&b'A'),
        flagged: x_status.contains(&b'F'),
        draft: x_status.contains(&b'T'),
        deleted: x_status.contains(&b'D'),
        ..Flags::default()
    };
    let keywords = std::str::from_utf8(x_keywords).ok()?;
    flags.keywords = keywords
        .split(' ')
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect();
    // Only the exact canonical form is ours; a near miss is someone else's header.
    let rendered = render_block(&flags).ok()?;
    let original_len = lines.iter().map(|l| l.len()).sum::<usize>();
    (rendered.len() == original_len && rendered == lines.concat()).then_some(flags)
}

/// The storage headers of one message, collected while scanning its header block.
#[derive(Debug, Default, Clone)]
pub struct StorageHeaders {
    /// Flags from `Status:`, `X-Status:`, `X-Keywords:`, `X-Mozilla-Status:`, `X-Mozilla-Keys:`.
    pub flags: Flags,
    /// `Content-Length:`, when it is a number.
    pub content_length: Option<u64>,
    /// `X-Gmail-Labels:` (Google Takeout), unfolded.
    pub gmail_labels: Option<String>,
    current: Option<(Field, Vec<u8>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Status,
    XStatus,
    XKeywords,
    ContentLength,
    MozillaStatus,
    MozillaKeys,
    GmailLabels,
}

impl Field {
    fn from_name(name: &[u8]) -> Option<Self> {
        const NAMES: [(&[u8], Field); 7] = [
            (b"status", Field::Status),
            (b"x-status", Field::XStatus),
            (b"x-keywords", Field::XKeywords),
            (b"content-length", Field::ContentLength),
            (b"x-mozilla-status", Field::MozillaStatus),
            (b"x-mozilla-keys", Field::MozillaKeys),
            (b"x-gmail-labels", Field::GmailLabels),
        ];
        NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, f)| *f)
    }
}

impl StorageHeaders {
    /// Feeds one header line (with its line ending). Continuation lines extend the field before.
    pub fn feed(&mut self, line: &[u8]) {
        if matches!(line.first(), Some(b' ' | b'\t')) {
            if let Some((_, value)) = &mut self.current {
                value.extend_from_slice(line);
            }
            return;
        }
        self.finish_field();
        let Some(colon) = memchr::memchr(b':', line) else {
            return;
        };
        let name = line[..colon].trim_ascii();
        if let Some(field) = Field::from_name(name) {
            self.current = Some((field, line[colon + 1..].to_vec()));
        }
    }

    /// Ends the header block: the last field is applied.
    pub fn finish(&mut self) {
        self.finish_field();
    }

    fn finish_field(&mut self) {
        let Some((field, value)) = self.current.take() else {
            return;
        };
        let value = String::from_utf8_lossy(&value);
        let value = value.trim();
        let flags = &mut self.flags;
        match field {
            Field::Status => flags.seen |= value.contains('R'),
            Field::XStatus => {
                flags.answered |= value.contains('A');
                flags.flagged |= value.contains('F');
                flags.draft |= value.contains('T');
                flags.deleted |= value.contains('D');
            }
            Field::XKeywords => {
                for k in value.split(|c: char| c == ',' || c.is_whitespace()) {
                    flags.insert_imap(k);
                }
            }
            Field::MozillaKeys => {
                for k in value.split_whitespace() {
                    flags.insert_imap(k);
                }
            }
            Field::MozillaStatus => {
                // Thunderbird's nsMsgMessageFlags, in hex.
                if let Ok(bits) = u32::from_str_radix(value, 16) {
                    flags.seen |= bits & 0x0001 != 0;
                    flags.answered |= bits & 0x0002 != 0;
                    flags.flagged |= bits & 0x0004 != 0;
                    flags.deleted |= bits & 0x0008 != 0;
                    if bits & 0x1000 != 0 {
                        flags.keywords.insert("$Forwarded".into());
                    }
                }
            }
            Field::ContentLength => {
                if self.content_length.is_none() {
                    self.content_length = value.parse().ok();
                }
            }
            Field::GmailLabels => {
                if self.gmail_labels.is_none() {
                    self.gmail_labels = Some(value.replace(['\r', '\n'], ""));
                }
            }
        }
    }
}

/// Quotes `line` for mboxrd (one more `>` before `>*From `) into `out`.
pub fn push_quoted_line(out: &mut Vec<u8>, line: &[u8]) {
    if quote_depth(line).is_some() {
        out.push(b'>');
    }
    out.extend_from_slice(line);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_depth_recognises_only_from_lines() {
        assert_eq!(quote_depth(b"From x"), Some(0));
        assert_eq!(quote_depth(b">>From x"), Some(2));
        assert_eq!(quote_depth(b">> From x"), None);
        assert_eq!(quote_depth(b"From"), None);
        assert_eq!(quote_depth(b"from x"), None);
    }

    #[test]
    fn mboxrd_unquotes_every_depth_but_mboxo_only_one() {
        for (line, rd, o) in [
            (b">From a".as_slice(), true, true),
            (b">>From a".as_slice(), true, false),
            (b">>>From a".as_slice(), true, false),
            (b"From a".as_slice(), false, false),
            (b"> From a".as_slice(), false, false),
        ] {
            assert_eq!(is_unquotable(line, Variant::Mboxrd), rd, "{line:?}");
            assert_eq!(is_unquotable(line, Variant::Mboxo), o, "{line:?}");
            assert!(!is_unquotable(line, Variant::Mboxcl2));
        }
    }

    #[test]
    fn writer_quotes_every_from_line_by_one_more() {
        let mut out = Vec::new();
        for line in [&b"From a\n"[..], b">From b\n", b"Fromage\n", b" From c\n"] {
            push_quoted_line(&mut out, line);
        }
        assert_eq!(out, b">From a\n>>From b\nFromage\n From c\n");
    }

    #[test]
    fn from_line_dates_seen_in_the_wild_parse() {
        let cases: [(&[u8], i64); 8] = [
            (
                b"From god@heaven.af.mil Sat Jan  3 01:05:34 1996\n",
                820_631_134,
            ),
            (
                b"From cras@irccrew.org  Tue Jul 23 19:39:23 2002\r\n",
                1_027_453_163,
            ),
            (
                b"From other@domain.com Mon Jan 15  15:30:00  2018",
                1_516_030_200,
            ),
            (
                b"From MAILER-DAEMON Wed Nov 25 00:28:58 2026\n",
                1_795_566_538,
            ),
            (
                b"From 1234@xxx Wed Nov 25 00:28:58 +0100 2026\n",
                1_795_562_938,
            ),
            (
                b"From a@b Wed Nov 25 00:28:58 2026 remote from c\n",
                1_795_566_538,
            ),
            (b"From  Wed Nov 25 00:28:58 2026\n", 1_795_566_538),
            (b"From a@b Nov 25 00:28:58 2026\n", 1_795_566_538),
        ];
        for (line, ts) in cases {
            let d = parse_from_line(line).unwrap_or_else(|| panic!("no date in {line:?}"));
            assert_eq!(d.timestamp, ts, "{}", String::from_utf8_lossy(line));
        }
        assert_eq!(parse_from_line(b"From the desk of Ann\n"), None);
        assert_eq!(parse_from_line(b"Subject: x\n"), None);
    }

    #[test]
    fn written_from_line_reads_back_to_the_same_instant() {
        let d = InternalDate::from_timestamp(1_000_000_000);
        assert_eq!(parse_from_line(render_from_line(d).as_bytes()), Some(d));
    }

    #[test]
    fn from_line_keeps_only_four_digit_years() {
        assert!(from_line_keeps(InternalDate::from_timestamp(1_000_000_000)));
        assert!(
            from_line_keeps(InternalDate::from_timestamp(-30_610_224_000)),
            "1000-01-01"
        );
        assert!(
            from_line_keeps(InternalDate::from_timestamp(253_402_300_799)),
            "9999-12-31"
        );
        // Found by the mbox_reader fuzz target: "Sun Dec 22 08:53:07 254399597878".
        assert!(!from_line_keeps(InternalDate::from_timestamp(
            8_028_075_836_918_883_187
        )));
        assert!(
            !from_line_keeps(InternalDate::from_timestamp(253_402_300_800)),
            "year 10000"
        );
        assert!(
            !from_line_keeps(InternalDate::from_timestamp(-30_610_224_001)),
            "year 999"
        );
        assert!(!from_line_keeps(InternalDate::from_timestamp(i64::MIN)));
    }

    fn lines(block: &[u8]) -> Vec<&[u8]> {
        block.split_inclusive(|&b| b == b'\n').collect()
    }

    #[test]
    fn metadata_block_round_trips_and_rejects_near_misses() {
        let flags = Flags::from_imap(["\\Seen", "\\Draft", "\\Flagged", "$Forwarded", "Work"]);
        let block = render_block(&flags).expect("render");
        assert_eq!(
            block,
            b"Status: RO\nX-Status: FT\nX-Keywords: $Forwarded Work\n"
        );
        assert_eq!(parse_block(&lines(&block)), Some(flags));
        let empty = render_block(&Flags::default()).expect("render");
        assert_eq!(empty, b"Status: O\nX-Status: \nX-Keywords: \n");
        assert_eq!(parse_block(&lines(&empty)), Some(Flags::default()));
        for near_miss in [
            &b"Status: RO\nX-Status: TF\nX-Keywords: \n"[..],
            b"Status: R\nX-Status: \nX-Keywords: \n",
            b"Status: O\r\nX-Status: \r\nX-Keywords: \r\n",
            b"Status: O\nX-Status: \nX-Keywords: b a\n",
            b"Status: O\nX-Status: \nX-Keywords:  a\n",
            b"Status: O\nX-Keywords: \nX-Status: \n",
        ] {
            assert_eq!(parse_block(&lines(near_miss)), None, "{near_miss:?}");
        }
    }

    #[test]
    fn keywords_that_cannot_be_written_are_refused() {
        let flags = Flags::from_imap(["has space"]);
        let err = render_block(&flags).expect_err("space");
        assert!(err.contains("has space"), "{err}");
    }

    #[test]
    fn storage_headers_give_flags_wherever_they_are() {
        let mut h = StorageHeaders::default();
        for line in [
            &b"Subject: x\n"[..],
            b"X-Keywords: $Junk,Work\n",
            b"\tLater\n",
            b"Content-Length: 42\n",
            b"status: RO\n",
            b"X-Status: AD\n",
        ] {
            h.feed(line);
        }
        h.finish();
        assert!(h.flags.seen && h.flags.answered && h.flags.deleted && !h.flags.flagged);
        let kw: Vec<&str> = h.flags.keywords.iter().map(String::as_str).collect();
        assert_eq!(kw, ["$Junk", "Later", "Work"]);
        assert_eq!(h.content_length, Some(42));
    }

    #[test]
    fn thunderbird_status_bits_map_to_flags() {
        let mut h = StorageHeaders::default();
        h.feed(b"X-Mozilla-Status: 1007\n");
        h.feed(b"X-Mozilla-Keys: $label1                 \n");
        h.finish();
        let f = &h.flags;
        assert!(f.seen && f.answered && f.flagged && !f.deleted);
        assert!(f.keywords.contains("$Forwarded") && f.keywords.contains("$label1"));
    }
}
