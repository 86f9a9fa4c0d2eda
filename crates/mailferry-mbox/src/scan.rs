//! The streaming mbox reader: one forward pass over a buffered (possibly gzip-decoded) input,
//! one line at a time, yielding each message's offset, date, flags and size, and its bytes only
//! when asked. Memory is one line plus, when bodies are wanted, one message: a 10 GB mbox is
//! never held whole.
//!
//! Framing rules (the reader's half of the contract with [`crate::write`]):
//! - A separator is a line starting `From ` that follows a blank line, starts the input, or
//!   carries a parseable date. (Requiring one of these keeps a sloppy writer's unquoted
//!   "From the desk of…" body line from splitting a message.)
//! - A message written by mailferry (it starts with the exact metadata block) ends with exactly
//!   one `\n` the writer added; it is removed. That is how a message without a final newline
//!   survives: the writer adds one `\n` and no blank line.
//! - Any other message loses one line ending only when it ends with a blank line (the usual
//!   separator blank line), as Python's `mailbox` and mutt read it.
//! - `Content-Length:` (mboxcl/mboxcl2) is honoured when present, not in a mailferry message,
//!   and consistent: the byte after the body is EOF, a separator, or a blank line before one.
//!   Otherwise the message is re-read by separators. A consistent length whose body holds an
//!   unquoted `From ` line marks an mboxcl2 message, which is not unquoted.

use std::io::{self, BufRead, Read};

use mailferry_core::{Flags, InternalDate};

pub use crate::input::{BUFFER_BYTES, GzSource, Input};

use crate::parse::{
    StorageHeaders, Variant, is_blank, is_from_line, is_unquotable, parse_block, parse_from_line,
};

/// One message as scanned.
#[derive(Debug, Clone)]
pub struct Message {
    /// Decoded offset of its `From ` line (of its first byte, for data before any `From `
    /// line at the start of the file).
    pub offset: u64,
    /// The date of its `From ` line.
    pub date: Option<InternalDate>,
    /// Its flags: the metadata block's, else those of its storage headers.
    pub flags: Flags,
    /// The length of the message as returned: storage escapes undone.
    pub size: u64,
    /// Its bytes, when asked for.
    pub body: Option<Vec<u8>>,
    /// Its `X-Gmail-Labels:` header, unfolded.
    pub gmail_labels: Option<String>,
}

/// The stored bytes of the message being read, or just their accounting when bodies are not
/// wanted.
struct Accumulator {
    body: Option<Vec<u8>>,
    len: u64,
    /// Offsets (into the stored bytes) of the `>` each unquotable line loses.
    quotes: Vec<u64>,
    tail: [u8; 3],
}

#[derive(Clone, Copy)]
struct Mark {
    len: u64,
    quotes: usize,
    tail: [u8; 3],
}

impl Accumulator {
    fn push(&mut self, line: &[u8], variant: Variant) {
        if is_unquotable(line, variant) {
            self.quotes.push(self.len);
        }
        if let Some(body) = &mut self.body {
            body.extend_from_slice(line);
        }
        self.len += line.len() as u64;
        for &b in &line[line.len().saturating_sub(3)..] {
            self.tail = [self.tail[1], self.tail[2], b];
        }
    }

    fn mark(&self) -> Mark {
        Mark {
            len: self.len,
            quotes: self.quotes.len(),
            tail: self.tail,
        }
    }

    fn truncate(&mut self, mark: Mark) {
        self.len = mark.len;
        self.quotes.truncate(mark.quotes);
        self.tail = mark.tail;
        if let Some(body) = &mut self.body {
            body.truncate(mark.len as usize);
        }
    }

    /// The length of the trailing line ending to drop when the message ends with a blank line.
    fn blank_line_ending(&self) -> u64 {
        match self.tail {
            [_, b'\n', b'\n'] if self.len >= 2 => 1,
            [b'\n', b'\r', b'\n'] => 2,
            _ => 0,
        }
    }
}

/// What `Content-Length` decided for one message.
struct LengthCheck {
    end: u64,
    /// The first separator seen inside the claimed body: where the message ends if the length
    /// proves wrong.
    suppressed: Option<(u64, Mark, bool)>,
}

/// Reads messages one after another.
pub struct Scanner {
    input: Input,
    variant: Variant,
    /// Decoded offset of the next byte not yet read into `line`.
    pos: u64,
    line: Vec<u8>,
    line_start: u64,
    pending: bool,
    prev_blank: bool,
    at_start: bool,
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

impl Scanner {
    /// A scanner reading `input` from decoded offset `pos` (where `input` is positioned), which
    /// must be 0 or the offset of a `From ` line.
    pub fn new(input: Input, pos: u64, variant: Variant) -> Self {
        Scanner {
            input,
            variant,
            pos,
            line: Vec::with_capacity(256),
            line_start: pos,
            pending: false,
            prev_blank: true,
            at_start: pos == 0,
        }
    }

    /// Moves to decoded offset `pos`, which must be 0 or the offset of a `From ` line.
    pub fn seek(&mut self, pos: u64) -> io::Result<()> {
        if self.pos == pos && !self.pending {
            return Ok(());
        }
        if self.pending && self.line_start == pos {
            return Ok(());
        }
        self.input.rewind_to(pos)?;
        self.pos = pos;
        self.pending = false;
        self.prev_blank = true;
        self.at_start = pos == 0;
        Ok(())
    }

    /// Moves forward to decoded offset `pos` by reading and discarding (no re-decoding from the
    /// start, which is what a gzip stream needs); backwards, it seeks.
    pub fn advance_to(&mut self, pos: u64) -> io::Result<()> {
        if self.pending && self.line_start == pos {
            return Ok(());
        }
        if pos < self.pos {
            return self.seek(pos);
        }
        let skip = pos - self.pos;
        let skipped = io::copy(&mut self.input.by_ref().take(skip), &mut io::sink())?;
        if skipped < skip {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the file ends before offset {pos}"),
            ));
        }
        self.pos = pos;
        self.pending = false;
        self.prev_blank = true;
        self.at_start = pos == 0;
        Ok(())
    }

    /// The decoded offset of the next unread message or line.
    pub fn position(&self) -> u64 {
        if self.pending {
            self.line_start
        } else {
            self.pos
        }
    }

    /// Whether a `From ` line starts at the current position.
    pub fn at_from_line(&mut self) -> io::Result<bool> {
        Ok(self.peek()? && is_from_line(&self.line))
    }

    fn peek(&mut self) -> io::Result<bool> {
        if self.pending {
            return Ok(true);
        }
        self.line.clear();
        let n = self.input.read_until(b'\n', &mut self.line)?;
        if n == 0 {
            return Ok(false);
        }
        self.line_start = self.pos;
        self.pos += n as u64;
        self.pending = true;
        Ok(true)
    }

    fn consume(&mut self) {
        self.pending = false;
        self.prev_blank = is_blank(&self.line);
    }

    fn rewind(&mut self, pos: u64, prev_blank: bool) -> io::Result<()> {
        self.input.rewind_to(pos)?;
        self.pos = pos;
        self.pending = false;
        self.prev_blank = prev_blank;
        Ok(())
    }

    fn at_separator(&self) -> bool {
        self.pending
            && is_from_line(&self.line)
            && (self.prev_blank || parse_from_line(&self.line).is_some())
    }

    /// The next message, with its bytes when `want_body`; `None` at the end of the input.
    pub fn next_message(&mut self, want_body: bool) -> io::Result<Option<Message>> {
        let at_start = std::mem::take(&mut self.at_start);
        if at_start {
            while self.peek()? && is_blank(&self.line) {
                self.consume();
            }
        }
        if !self.peek()? {
            return Ok(None);
        }
        let mut offset = self.line_start;
        let date = if is_from_line(&self.line) {
            let date = parse_from_line(&self.line);
            self.consume();
            date
        } else if at_start {
            // Data before the first `From ` line is kept as a message rather than dropped. Its
            // key is 0, where a fetch finds it by the same rule.
            offset = 0;
            None
        } else {
            return Err(invalid(format!(
                "no `From ` line at offset {offset}: the file changed since it was listed"
            )));
        };
        let mut acc = Accumulator {
            body: want_body.then(Vec::new),
            len: 0,
            quotes: Vec::new(),
            tail: [0; 3],
        };
        let mut headers = StorageHeaders::default();
        let mut first_lines: Vec<Vec<u8>> = Vec::with_capacity(3);
        let mut header_done = false;
        while self.peek()? && !self.at_separator() {
            if is_blank(&self.line) {
                header_done = true;
                acc.push(&self.line, self.variant);
                self.consume();
                break;
            }
            if first_lines.len() < 3 {
                first_lines.push(self.line.clone());
            }
            headers.feed(&self.line);
            acc.push(&self.line, self.variant);
            self.consume();
        }
        headers.finish();
        let block = parse_block(&first_lines.iter().map(Vec::as_slice).collect::<Vec<_>>());
        let block_len = if block.is_some() {
            first_lines.iter().map(|l| l.len() as u64).sum()
        } else {
            0
        };
        let length = headers
            .content_length
            .filter(|_| header_done && block.is_none())
            .map(|n| LengthCheck {
                end: self.pos.saturating_add(n),
                suppressed: None,
            });
        let (by_length, mboxcl2) = self.read_body(&mut acc, length)?;

        let trailing = if by_length {
            0
        } else if block.is_some() {
            u64::from(acc.tail[2] == b'\n' && acc.len > block_len)
        } else {
            acc.blank_line_ending()
        };
        let unquote = !(mboxcl2 || self.variant == Variant::Mboxcl2);
        let end = acc.len - trailing;
        let quotes: Vec<u64> = if unquote {
            acc.quotes.iter().copied().filter(|&q| q < end).collect()
        } else {
            Vec::new()
        };
        let size = end - block_len - quotes.len() as u64;
        let body = acc.body.map(|stored| {
            let mut out = Vec::with_capacity(size as usize);
            let mut from = block_len as usize;
            for q in &quotes {
                out.extend_from_slice(&stored[from..*q as usize]);
                from = *q as usize + 1;
            }
            out.extend_from_slice(&stored[from..end as usize]);
            out
        });
        Ok(Some(Message {
            offset,
            date,
            flags: block.unwrap_or(headers.flags),
            size,
            body,
            gmail_labels: headers.gmail_labels,
        }))
    }

    /// Reads the body up to the next separator, or as far as a consistent `Content-Length`
    /// says. Returns whether the length decided the end, and whether it was an mboxcl2 body
    /// (an unquoted separator inside it).
    fn read_body(
        &mut self,
        acc: &mut Accumulator,
        mut length: Option<LengthCheck>,
    ) -> io::Result<(bool, bool)> {
        loop {
            let has_line = self.peek()?;
            if let Some(check) = &length {
                let reached = !has_line || self.line_start >= check.end;
                if reached {
                    if self.length_is_consistent(acc, check.end, has_line)? {
                        return Ok((true, check.suppressed.is_some()));
                    }
                    if let Some((pos, mark, prev_blank)) = check.suppressed {
                        acc.truncate(mark);
                        self.rewind(pos, prev_blank)?;
                        return Ok((false, false));
                    }
                    length = None;
                    continue;
                }
            }
            if !has_line {
                return Ok((false, false));
            }
            if self.at_separator() {
                match &mut length {
                    None => return Ok((false, false)),
                    Some(check) => {
                        check.suppressed.get_or_insert((
                            self.line_start,
                            acc.mark(),
                            self.prev_blank,
                        ));
                    }
                }
            }
            acc.push(&self.line, self.variant);
            self.consume();
        }
    }

    /// At or past the end a `Content-Length` claims: whether the input really continues with
    /// EOF, a separator, or a blank line and then one of those. A blank line that proves the
    /// length is the separator blank line and is consumed; one that does not is body.
    fn length_is_consistent(
        &mut self,
        acc: &mut Accumulator,
        end: u64,
        has_line: bool,
    ) -> io::Result<bool> {
        if !has_line {
            return Ok(self.pos == end);
        }
        if self.line_start != end {
            return Ok(false);
        }
        if self.at_separator() {
            return Ok(true);
        }
        if !is_blank(&self.line) {
            return Ok(false);
        }
        let mark = acc.mark();
        acc.push(&self.line, self.variant);
        self.consume();
        if !self.peek()? || self.at_separator() {
            acc.truncate(mark);
            return Ok(true);
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn scan(bytes: &[u8], variant: Variant) -> Vec<Message> {
        let mut s = Scanner::new(Input::Memory(Cursor::new(bytes.to_vec())), 0, variant);
        let mut out = Vec::new();
        while let Some(m) = s.next_message(true).expect("scan") {
            let listed = {
                let mut l = Scanner::new(Input::Memory(Cursor::new(bytes.to_vec())), 0, variant);
                l.seek(m.offset).expect("seek");
                l.next_message(false).expect("list").expect("message")
            };
            assert_eq!(listed.size, m.size, "listing and reading agree on the size");
            assert_eq!(m.body.as_ref().map(|b| b.len() as u64), Some(m.size));
            out.push(m);
        }
        out
    }

    fn bodies(messages: &[Message]) -> Vec<String> {
        messages
            .iter()
            .map(|m| String::from_utf8_lossy(m.body.as_deref().unwrap_or_default()).into_owned())
            .collect()
    }

    #[test]
    fn splits_on_separators_and_drops_the_blank_line_before_them() {
        let file = b"From a Sat Jan  3 01:05:34 1996\nSubject: one\n\nbody one\n\nFrom b Sat Jan  3 01:05:35 1996\nSubject: two\n\nbody two\n";
        let m = scan(file, Variant::Mboxrd);
        assert_eq!(
            bodies(&m),
            ["Subject: one\n\nbody one\n", "Subject: two\n\nbody two\n"]
        );
        assert_eq!(m[1].offset, 56);
        assert_eq!(m[0].date.map(|d| d.timestamp), Some(820_631_134));
    }

    #[test]
    fn unquotes_by_variant() {
        let file = b"From a Sat Jan  3 01:05:34 1996\n\n>From x\n>>From y\n> From z\n";
        assert_eq!(
            bodies(&scan(file, Variant::Mboxrd)),
            ["\nFrom x\n>From y\n> From z\n"]
        );
        assert_eq!(
            bodies(&scan(file, Variant::Mboxo)),
            ["\nFrom x\n>>From y\n> From z\n"]
        );
        assert_eq!(
            bodies(&scan(file, Variant::Mboxcl2)),
            ["\n>From x\n>>From y\n> From z\n"]
        );
    }

    #[test]
    fn from_line_without_date_or_blank_line_before_it_is_body() {
        let file = b"From a Sat Jan  3 01:05:34 1996\n\nhi\nFrom the desk of Ann\n";
        assert_eq!(
            bodies(&scan(file, Variant::Mboxrd)),
            ["\nhi\nFrom the desk of Ann\n"]
        );
    }

    #[test]
    fn honours_a_consistent_content_length_as_mboxcl2() {
        let file = b"From a Sat Jan  3 01:05:34 1996\nContent-Length: 20\n\nFrom inside\n>From x\n\nFrom b Sat Jan  3 01:05:34 1996\n\nnext\n";
        let m = scan(file, Variant::Mboxrd);
        assert_eq!(
            bodies(&m),
            ["Content-Length: 20\n\nFrom inside\n>From x\n", "\nnext\n"]
        );
    }

    #[test]
    fn falls_back_to_separators_when_content_length_is_wrong() {
        let file = b"From a Sat Jan  3 01:05:34 1996\nContent-Length: 999\n\nshort\n\nFrom b Sat Jan  3 01:05:34 1996\n\n>From next\n";
        assert_eq!(
            bodies(&scan(file, Variant::Mboxrd)),
            ["Content-Length: 999\n\nshort\n", "\nFrom next\n"]
        );
        let file = b"From a Sat Jan  3 01:05:34 1996\nContent-Length: 3\n\nshort\n\nFrom b Sat Jan  3 01:05:34 1996\n\nnext\n";
        assert_eq!(
            bodies(&scan(file, Variant::Mboxrd)),
            ["Content-Length: 3\n\nshort\n", "\nnext\n"]
        );
    }

    #[test]
    fn reads_crlf_files() {
        let file = b"From a Sat Jan  3 01:05:34 1996\r\nSubject: one\r\n\r\n>From x\r\n\r\nFrom b Sat Jan  3 01:05:34 1996\r\nSubject: two\r\n\r\nend\r\n";
        assert_eq!(
            bodies(&scan(file, Variant::Mboxrd)),
            [
                "Subject: one\r\n\r\nFrom x\r\n",
                "Subject: two\r\n\r\nend\r\n"
            ]
        );
    }

    #[test]
    fn metadata_block_is_removed_and_gives_the_flags() {
        let file = b"From MAILER-DAEMON Sat Jan  3 01:05:34 1996\nStatus: RO\nX-Status: A\nX-Keywords: Work\nSubject: x\nStatus: O\n\nno final newline\nFrom MAILER-DAEMON Sat Jan  3 01:05:34 1996\nSubject: y\nStatus: RO\nX-Status: F\n\nforeign\n\n";
        let m = scan(file, Variant::Mboxrd);
        assert_eq!(
            bodies(&m),
            [
                "Subject: x\nStatus: O\n\nno final newline",
                "Subject: y\nStatus: RO\nX-Status: F\n\nforeign\n"
            ]
        );
        assert!(m[0].flags.seen && m[0].flags.answered && m[0].flags.keywords.contains("Work"));
        assert!(m[1].flags.seen && m[1].flags.flagged && !m[1].flags.answered);
    }

    #[test]
    fn keeps_data_before_the_first_from_line() {
        let file = b"\n\nSubject: stray\n\nx\n\nFrom a Sat Jan  3 01:05:34 1996\n\ny\n";
        let m = scan(file, Variant::Mboxrd);
        assert_eq!(bodies(&m), ["Subject: stray\n\nx\n", "\ny\n"]);
        assert_eq!(m[0].date, None);
    }

    #[test]
    fn reads_gzip_members_as_one_stream_and_rewinds() {
        use std::io::Write;
        let mut raw = Vec::new();
        for part in [
            &b"From a Sat Jan  3 01:05:34 1996\n\none\n\n"[..],
            b"From b Sat Jan  3 01:05:34 1996\n\ntwo\n",
        ] {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(part).expect("gz");
            raw.extend(e.finish().expect("gz"));
        }
        let input = Input::gz(GzSource::Bytes(raw.into())).expect("gz");
        let mut s = Scanner::new(input, 0, Variant::Mboxrd);
        let first = s.next_message(true).expect("scan").expect("first");
        let second = s.next_message(true).expect("scan").expect("second");
        assert_eq!(second.offset, 38);
        assert_eq!(second.body.as_deref(), Some(&b"\ntwo\n"[..]));
        assert!(s.next_message(false).expect("scan").is_none());
        s.seek(0).expect("rewind");
        let again = s.next_message(true).expect("scan").expect("first again");
        assert_eq!(again.body, first.body);
        s.advance_to(38).expect("forward");
        assert_eq!(
            s.next_message(true).expect("scan").map(|m| m.offset),
            Some(38)
        );
    }

    #[test]
    fn seeking_to_a_non_separator_is_an_error() {
        let file = b"From a Sat Jan  3 01:05:34 1996\n\nbody\n".to_vec();
        let mut s = Scanner::new(Input::Memory(Cursor::new(file)), 0, Variant::Mboxrd);
        s.seek(5).expect("seek");
        let err = s.next_message(true).expect_err("mid-message");
        assert!(err.to_string().contains("offset 5"), "{err}");
    }
}
