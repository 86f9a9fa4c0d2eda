//! Just enough IMAP framing to know where a byte stream is: at the start of a response (or
//! command), inside a line, or inside a literal. The proxy needs it to replace a whole tagged
//! response, to send `* BYE` between responses rather than inside one, and to tell where a cut
//! fell (inside a FETCH body, inside an APPEND literal, while a command waited for its reply).
//!
//! Design decisions, and why:
//! - **Lines are scanned, literals are skipped.** A line ending in `{N}` or `{N+}` announces N
//!   bytes of literal, which are counted off without being looked at, so a 15 MB body costs
//!   nothing and a body that happens to contain `{5}` or a CRLF cannot confuse the scanner.
//! - **Nothing is held back unless asked.** Only a tagged response line that may be replaced is
//!   buffered until its CRLF (tagged lines are short and carry no literal, RFC 3501 `resp-text`);
//!   everything else passes through as it arrives, so the proxy's timing is unchanged for
//!   non-IMAP traffic, which the scanner merely misreads harmlessly.

use bytes::Bytes;

/// The most of a line's end kept to find a `{N}` literal marker.
const TAIL: usize = 32;
/// The most of a response's (or command's) first line kept as its head.
const HEAD: usize = 48;

/// Where the stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the first byte of a response (or command).
    Start,
    /// Inside a line of the current response.
    Line,
    /// Inside a literal, with this many bytes to go.
    Literal(u64),
}

/// What a fed chunk completed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Completed {
    /// Whole responses (or commands) that ended in the chunk.
    pub all: u64,
    /// Of those, tagged ones (not `*` or `+`).
    pub tagged: u64,
}

/// The scanner of one direction of one connection.
#[derive(Debug)]
pub(super) struct Framing {
    state: State,
    /// Whether the current response is tagged (decided by its first byte).
    tagged: bool,
    /// The last bytes of the current line, for the literal marker.
    tail: Vec<u8>,
    /// A tagged line being held back, when replacing is on.
    held: Option<Vec<u8>>,
    /// The start of the current response's first line (tag and verb of a command).
    head: Vec<u8>,
    /// Whether the first line is over (a literal or its CRLF came).
    head_done: bool,
    /// Whether completed heads are reported (commands: yes; responses: not needed).
    keep_heads: bool,
}

/// The result of feeding a chunk.
#[derive(Debug, Default)]
pub(super) struct Fed {
    /// What to forward, in order.
    pub out: Vec<Bytes>,
    /// Responses completed.
    pub completed: Completed,
    /// Tagged lines replaced.
    pub replaced: u64,
    /// Feeding stopped at a response boundary as asked; the rest of the chunk was not used.
    pub stopped: bool,
    /// The heads (first bytes of the first line) of the responses completed.
    pub heads: Vec<Vec<u8>>,
}

impl Default for Framing {
    fn default() -> Self {
        Framing::new(false)
    }
}

impl Framing {
    /// A scanner at the start of a stream; with `keep_heads`, [`Fed::heads`] is filled.
    pub(super) fn new(keep_heads: bool) -> Self {
        Framing {
            state: State::Start,
            tagged: false,
            tail: Vec::with_capacity(TAIL * 2),
            held: None,
            head: Vec::with_capacity(HEAD),
            head_done: false,
            keep_heads,
        }
    }
}

/// The literal length announced at the end of a line (`… {123}` or `… {123+}`, CRLF removed).
fn literal_marker(line_end: &[u8]) -> Option<u64> {
    let body = line_end.strip_suffix(b"}")?;
    let body = body.strip_suffix(b"+").unwrap_or(body);
    let open = body.iter().rposition(|&b| b == b'{')?;
    let digits = &body[open + 1..];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

impl Framing {
    /// Whether the stream is at a response boundary.
    pub(super) fn at_start(&self) -> bool {
        self.state == State::Start && self.held.is_none()
    }

    /// Whether the stream is inside a literal.
    pub(super) fn in_literal(&self) -> bool {
        matches!(self.state, State::Literal(_))
    }

    /// Takes a held, incomplete tagged line (when the connection is cut: what passed the proxy
    /// before the cut is still delivered).
    pub(super) fn take_held(&mut self) -> Option<Bytes> {
        self.held.take().map(Bytes::from)
    }

    /// Scans `chunk`. `hold_tagged` says whether tagged lines starting in it are held back;
    /// `replace` decides, per complete held line, whether it is replaced (and by what).
    /// `stop_from`: stop at the first response boundary at or after this offset.
    pub(super) fn feed(
        &mut self,
        chunk: &Bytes,
        hold_tagged: bool,
        mut replace: impl FnMut(&[u8]) -> Option<Vec<u8>>,
        stop_from: Option<usize>,
    ) -> Fed {
        let mut fed = Fed::default();
        let mut pos = 0;
        // Start of the pass-through run not yet emitted.
        let mut run = 0;
        let len = chunk.len();
        loop {
            if self.at_start() && stop_from.is_some_and(|from| pos >= from) {
                fed.stopped = true;
                break;
            }
            if pos >= len {
                break;
            }
            match self.state {
                State::Start => {
                    self.tagged = !matches!(chunk[pos], b'*' | b'+');
                    self.tail.clear();
                    self.head.clear();
                    self.head_done = false;
                    self.state = State::Line;
                    if self.tagged && hold_tagged {
                        if run < pos {
                            fed.out.push(chunk.slice(run..pos));
                        }
                        self.held = Some(Vec::new());
                        run = pos;
                    }
                }
                State::Line => {
                    let rest = &chunk[pos..];
                    let newline = rest.iter().position(|&b| b == b'\n');
                    let end = newline.map_or(len, |i| pos + i + 1);
                    let piece = &chunk[pos..end];
                    if let Some(held) = &mut self.held {
                        held.extend_from_slice(piece);
                    }
                    if !self.head_done {
                        let room = HEAD.saturating_sub(self.head.len()).min(piece.len());
                        self.head.extend_from_slice(&piece[..room]);
                        self.head_done = newline.is_some();
                    }
                    self.tail.extend_from_slice(piece);
                    if self.tail.len() > TAIL {
                        self.tail.drain(..self.tail.len() - TAIL);
                    }
                    pos = end;
                    if newline.is_none() {
                        continue;
                    }
                    let line_end = self.tail.strip_suffix(b"\n").unwrap_or(&self.tail);
                    let line_end = line_end.strip_suffix(b"\r").unwrap_or(line_end);
                    match literal_marker(line_end) {
                        Some(n) => self.state = State::Literal(n),
                        None => {
                            self.state = State::Start;
                            fed.completed.all += 1;
                            if self.keep_heads {
                                fed.heads.push(std::mem::take(&mut self.head));
                            }
                            if self.tagged {
                                fed.completed.tagged += 1;
                            }
                            if let Some(held) = self.held.take() {
                                match replace(&held) {
                                    Some(other) => {
                                        fed.replaced += 1;
                                        fed.out.push(Bytes::from(other));
                                    }
                                    None => fed.out.push(Bytes::from(held)),
                                }
                                run = pos;
                            }
                        }
                    }
                }
                State::Literal(remaining) => {
                    let take = remaining.min((len - pos) as u64);
                    pos += take as usize;
                    self.head_done = true;
                    self.state = if take == remaining {
                        self.tail.clear();
                        State::Line
                    } else {
                        State::Literal(remaining - take)
                    };
                }
            }
        }
        if self.held.is_none() && run < pos {
            fed.out.push(chunk.slice(run..pos));
        }
        fed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never(_: &[u8]) -> Option<Vec<u8>> {
        None
    }

    fn joined(out: &[Bytes]) -> Vec<u8> {
        out.iter().flat_map(|b| b.iter().copied()).collect()
    }

    #[test]
    fn literals_are_skipped_so_their_content_cannot_end_a_response() {
        let mut f = Framing::new(true);
        let stream = Bytes::from_static(
            b"* 1 FETCH (UID 5 BODY[] {15}\r\nmf9 OK {3}\r\nx\r\n)\r\nmf9 OK done\r\n",
        );
        let fed = f.feed(&stream, false, never, None);
        assert_eq!(joined(&fed.out), stream.to_vec());
        assert_eq!(fed.completed, Completed { all: 2, tagged: 1 });
        assert!(f.at_start());
        let heads: Vec<&[u8]> = fed.heads.iter().map(Vec::as_slice).collect();
        assert_eq!(
            heads,
            [&b"* 1 FETCH (UID 5 BODY[] {15}\r\n"[..], b"mf9 OK done\r\n"],
            "the first line only, never literal bytes"
        );
    }

    #[test]
    fn state_carries_across_chunks_split_anywhere() {
        let stream: &[u8] =
            b"* OK hi\r\nA1 APPEND x {7+}\r\nx {2}\r\n\r\nmf1 OK [APPENDUID 1 2] ok\r\n";
        for cut in 1..stream.len() {
            let mut f = Framing::default();
            let a = f.feed(&Bytes::copy_from_slice(&stream[..cut]), false, never, None);
            let b = f.feed(&Bytes::copy_from_slice(&stream[cut..]), false, never, None);
            let all = a.completed.all + b.completed.all;
            let tagged = a.completed.tagged + b.completed.tagged;
            assert_eq!((all, tagged), (3, 2), "split at {cut}");
            assert!(f.at_start());
        }
    }

    #[test]
    fn held_tagged_lines_are_replaced_whole_even_when_split() {
        let stream: &[u8] = b"* 2 EXISTS\r\nmf4 OK [READ-ONLY] Examine completed\r\n* 3 EXISTS\r\n";
        for cut in 1..stream.len() {
            let mut f = Framing::default();
            let replace = |line: &[u8]| {
                let tag = line.split(|&b| b == b' ').next().unwrap_or_default();
                Some([tag, b" NO [UNAVAILABLE] injected\r\n"].concat())
            };
            let mut out = f
                .feed(&Bytes::copy_from_slice(&stream[..cut]), true, replace, None)
                .out;
            let fed = f.feed(&Bytes::copy_from_slice(&stream[cut..]), true, replace, None);
            out.extend(fed.out);
            assert_eq!(
                String::from_utf8_lossy(&joined(&out)),
                "* 2 EXISTS\r\nmf4 NO [UNAVAILABLE] injected\r\n* 3 EXISTS\r\n",
                "split at {cut}"
            );
        }
    }

    #[test]
    fn feeding_stops_at_the_first_boundary_after_the_offset() {
        let mut f = Framing::default();
        let stream = Bytes::from_static(b"* 1 FETCH (BODY[] {4}\r\nabcd)\r\n* 2 EXISTS\r\n");
        let fed = f.feed(&stream, false, never, Some(5));
        assert!(fed.stopped);
        assert_eq!(joined(&fed.out), b"* 1 FETCH (BODY[] {4}\r\nabcd)\r\n");
        let mut idle = Framing::default();
        let fed = idle.feed(&stream, false, never, Some(0));
        assert!(fed.stopped && fed.out.is_empty(), "already at a boundary");
    }

    #[test]
    fn literal_markers_are_recognised_only_at_the_line_end() {
        assert_eq!(literal_marker(b"A1 APPEND x (\\Seen) {123+}"), Some(123));
        assert_eq!(literal_marker(b"* 1 FETCH (BODY[] {0}"), Some(0));
        assert_eq!(literal_marker(b"* OK {12} text"), None);
        assert_eq!(literal_marker(b"* OK {}"), None);
        assert_eq!(literal_marker(b"* OK {1a}"), None);
    }
}
