//! The wire trace: every IMAP command and response of a session, as lines, with literals
//! abbreviated and credentials redacted, to debug what a server really said.
//!
//! Design decisions, and why:
//! - **Traced at the transport, above TLS and DEFLATE.** The tracer sees exactly the bytes
//!   async-imap reads and writes, whichever of its typed commands or our raw pipelined ones sent
//!   them, so nothing bypasses it; it is moved outward when COMPRESS wraps the stream (the
//!   compressed bytes below are not IMAP).
//! - **A line parser, not an IMAP parser.** It splits each direction at CRLF and skips the
//!   `{n}` / `{n+}` literal that ends a line without looking at it: message bodies are never
//!   copied or scanned (a literal is logged as its size), so tracing costs a `memchr` per line,
//!   and a password sent as a literal cannot appear at all.
//! - **Redaction by command, before anything is written.** `LOGIN` keeps only its tag and verb
//!   (user and password, quoted or as literals, are dropped); `AUTHENTICATE` keeps its mechanism
//!   and drops the initial response, and every client line until the server's tagged answer is
//!   a SASL response and is dropped too (PLAIN and XOAUTH2 carry the secret base64-encoded,
//!   which a substring filter would miss).
//! - **Two sinks.** [`WireTrace::to_tracing`] emits `TRACE` events with target
//!   `mailferry_imap::wire` (the CLI's `-vvv`); [`WireTrace::to_file`] writes timestamped lines
//!   to a file created `0600` (`--trace-imap FILE`), and emits the same events. With the tracing
//!   sink alone, a connection is only traced if that target is enabled when it opens, so the
//!   default costs nothing.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, LineWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// Where a wire trace goes. Cheap to clone; clones share the sink.
#[derive(Clone)]
pub struct WireTrace {
    sink: Arc<Sink>,
}

enum Sink {
    Tracing,
    File(Mutex<LineWriter<File>>),
}

impl std::fmt::Debug for WireTrace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match *self.sink {
            Sink::Tracing => "WireTrace::Tracing",
            Sink::File(_) => "WireTrace::File",
        })
    }
}

/// Longest part of a line kept in the trace; the rest is counted.
const MAX_LINE: usize = 2048;
/// Bytes kept from the end of a cut line: enough for `{18446744073709551615+}` and CRLF.
const TAIL: usize = 32;

/// Connections traced so far in this process, to tell sessions apart in one trace.
static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

impl WireTrace {
    /// Emits each line as a `TRACE` event with target `mailferry_imap::wire`.
    pub fn to_tracing() -> WireTrace {
        WireTrace {
            sink: Arc::new(Sink::Tracing),
        }
    }

    /// Writes each line to `path` (created or truncated, readable by the owner only).
    pub fn to_file(path: &Path) -> io::Result<WireTrace> {
        let mut options = std::fs::OpenOptions::new();
        options.create(true).write(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options.open(path)?;
        Ok(WireTrace {
            sink: Arc::new(Sink::File(Mutex::new(LineWriter::new(file)))),
        })
    }

    /// A tracer for a new connection to `label`, or `None` if this trace would drop its lines.
    pub(crate) fn connection(&self, label: &str) -> Option<Tracer> {
        if matches!(*self.sink, Sink::Tracing)
            && !tracing::enabled!(target: "mailferry_imap::wire", tracing::Level::TRACE)
        {
            return None;
        }
        let n = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
        Some(Tracer {
            trace: self.clone(),
            conn: format!("{label}#{n}"),
            client: Direction::default(),
            server: Direction::default(),
            login_literals: false,
            sasl_tag: None,
        })
    }

    fn emit(&self, conn: &str, who: char, text: &str) {
        match &*self.sink {
            Sink::Tracing => {
                tracing::trace!(target: "mailferry_imap::wire", "{conn} {who}: {text}");
            }
            Sink::File(file) => {
                // `-vvv` shows the lines too, whether or not they also go to a file.
                tracing::trace!(target: "mailferry_imap::wire", "{conn} {who}: {text}");
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                // A poisoned lock only means another writer panicked mid-line.
                let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
                // A trace that cannot be written must not fail the migration.
                let _ = writeln!(
                    file,
                    "{}.{:03} {conn} {who}: {text}",
                    now.as_secs(),
                    now.subsec_millis()
                );
            }
        }
    }
}

/// One direction's line assembly.
#[derive(Default)]
struct Direction {
    line: Vec<u8>,
    /// Bytes of the line beyond [`MAX_LINE`], counted, not kept.
    dropped: usize,
    /// The last bytes of a cut line: where its literal, if any, is announced.
    tail: Vec<u8>,
    /// Literal bytes still to skip.
    literal_left: u64,
}

impl Direction {
    /// Splits `bytes` into complete lines (handed to `line`) and skipped literals.
    fn feed(&mut self, mut bytes: &[u8], mut line: impl FnMut(&str, Option<u64>)) {
        while !bytes.is_empty() {
            if self.literal_left > 0 {
                let take = (self.literal_left).min(bytes.len() as u64);
                self.literal_left -= take;
                bytes = &bytes[take as usize..];
                continue;
            }
            let (part, complete) = match memchr::memchr(b'\n', bytes) {
                Some(p) => (&bytes[..=p], true),
                None => (bytes, false),
            };
            bytes = &bytes[part.len()..];
            let room = MAX_LINE.saturating_sub(self.line.len());
            let kept = part.len().min(room);
            self.line.extend_from_slice(&part[..kept]);
            if kept < part.len() {
                self.dropped += part.len() - kept;
                self.tail.extend_from_slice(&part[kept..]);
                let excess = self.tail.len().saturating_sub(TAIL);
                self.tail.drain(..excess);
            }
            if !complete {
                continue;
            }
            let raw = std::mem::take(&mut self.line);
            let tail = std::mem::take(&mut self.tail);
            let text = String::from_utf8_lossy(&raw);
            let text = text.trim_end_matches(['\r', '\n']);
            let literal = if self.dropped > 0 {
                literal_at_end(String::from_utf8_lossy(&tail).trim_end_matches(['\r', '\n']))
            } else {
                literal_at_end(text)
            };
            let mut shown = text.to_string();
            if self.dropped > 0 {
                let _ = write!(shown, " …({} more bytes)", self.dropped);
                self.dropped = 0;
            }
            line(&shown, literal);
            self.literal_left = literal.unwrap_or(0);
        }
    }
}

/// The size of the `{n}` or `{n+}` literal announced at the end of `line`, if any.
fn literal_at_end(line: &str) -> Option<u64> {
    let inner = line.strip_suffix('}')?;
    let (_, n) = inner.rsplit_once('{')?;
    n.strip_suffix('+').unwrap_or(n).parse().ok()
}

/// The trace of one connection: both directions and the redaction state.
pub(crate) struct Tracer {
    trace: WireTrace,
    conn: String,
    client: Direction,
    server: Direction,
    /// A LOGIN sent its arguments as literals: the fragments after each are redacted too.
    login_literals: bool,
    /// An AUTHENTICATE is under way: client lines are SASL responses until this tag answers.
    sasl_tag: Option<String>,
}

impl Tracer {
    /// Bytes the client wrote.
    pub(crate) fn client(&mut self, bytes: &[u8]) {
        let Tracer {
            trace,
            conn,
            client,
            login_literals,
            sasl_tag,
            ..
        } = self;
        client.feed(bytes, |line, literal| {
            let shown = redact_client(line, literal, login_literals, sasl_tag);
            trace.emit(conn, 'C', &annotate(&shown, literal));
        });
    }

    /// Bytes the server sent.
    pub(crate) fn server(&mut self, bytes: &[u8]) {
        let Tracer {
            trace,
            conn,
            server,
            sasl_tag,
            ..
        } = self;
        server.feed(bytes, |line, literal| {
            if let Some(tag) = sasl_tag.as_deref()
                && line.strip_prefix(tag).is_some_and(|r| r.starts_with(' '))
            {
                *sasl_tag = None;
            }
            trace.emit(conn, 'S', &annotate(line, literal));
        });
    }
}

fn annotate(line: &str, literal: Option<u64>) -> String {
    match literal {
        Some(n) => format!("{line} <literal: {n} bytes, not shown>"),
        None => line.to_string(),
    }
}

/// What of a client line may be shown.
fn redact_client(
    line: &str,
    literal: Option<u64>,
    login_literals: &mut bool,
    sasl_tag: &mut Option<String>,
) -> String {
    if *login_literals {
        // A fragment after a LOGIN literal: more of the user name or the password.
        *login_literals = literal.is_some();
        return "<redacted: LOGIN argument>".into();
    }
    if sasl_tag.is_some() {
        // A SASL response is one token; a line with a space is a new command (the server
        // answered the AUTHENTICATE and we missed it, e.g. a cut connection).
        if !line.trim().contains(' ') {
            return "<redacted: SASL response>".into();
        }
        *sasl_tag = None;
    }
    let mut words = line.splitn(3, ' ');
    let tag = words.next().unwrap_or("");
    let verb = words.next().unwrap_or("");
    let rest = words.next().unwrap_or("");
    if verb.eq_ignore_ascii_case("LOGIN") {
        *login_literals = literal.is_some();
        return format!("{tag} {verb} <redacted>");
    }
    if verb.eq_ignore_ascii_case("AUTHENTICATE") {
        *sasl_tag = Some(tag.to_string());
        let mechanism = rest.split(' ').next().unwrap_or("");
        return if rest.trim() == mechanism.trim() {
            format!("{tag} {verb} {mechanism}")
        } else {
            format!("{tag} {verb} {mechanism} <redacted>")
        };
    }
    line.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traced(client: &[&[u8]], server: &[&[u8]]) -> Vec<String> {
        let path = tempfile::NamedTempFile::new().expect("temp file");
        let trace = WireTrace::to_file(path.path()).expect("open trace");
        let mut t = trace
            .connection("alice@host:143")
            .expect("file traces always");
        // Interleave: client chunk i, then server chunk i.
        for i in 0..client.len().max(server.len()) {
            if let Some(c) = client.get(i) {
                t.client(c);
            }
            if let Some(s) = server.get(i) {
                t.server(s);
            }
        }
        drop(t);
        drop(trace);
        std::fs::read_to_string(path.path())
            .expect("read trace")
            .lines()
            .map(|l| l.split_once(' ').map_or(l, |(_, rest)| rest).to_string())
            .collect()
    }

    #[test]
    fn login_arguments_are_redacted_quoted_or_as_literals() {
        let lines = traced(
            &[
                b"a1 LOGIN \"alice\" \"hunter2-secret\"\r\n",
                b"a2 LOGIN {5+}\r\nalice {14+}\r\nhunter2-secret\r\na3 NOOP\r\n",
            ],
            &[b"a1 OK done\r\n", b"a2 OK done\r\n"],
        );
        let all = lines.join("\n");
        assert!(!all.contains("hunter2"), "{all}");
        assert!(all.contains("C: a1 LOGIN <redacted>"), "{all}");
        assert!(all.contains("C: a2 LOGIN <redacted>"), "{all}");
        assert!(all.contains("C: a3 NOOP"), "{all}");
    }

    #[test]
    fn sasl_responses_are_redacted_until_the_tagged_answer() {
        // AUTHENTICATE PLAIN without and with an initial response; XOAUTH2 with one.
        let plain = "AGFsaWNlAGh1bnRlcjItc2VjcmV0"; // \0alice\0hunter2-secret
        let lines = traced(
            &[
                b"a1 AUTHENTICATE PLAIN\r\n",
                format!("{plain}\r\n").as_bytes(),
                format!("a2 AUTHENTICATE XOAUTH2 {plain}\r\n").as_bytes(),
                b"\r\n",
                b"a3 SELECT INBOX\r\n",
            ],
            &[
                b"+ \r\n",
                b"a1 OK authenticated\r\n",
                b"+ eyJzdGF0dXMiOiI0MDEifQ==\r\n",
                b"a2 NO failed\r\n",
            ],
        );
        let all = lines.join("\n");
        assert!(!all.contains(plain), "{all}");
        assert!(all.contains("C: a1 AUTHENTICATE PLAIN"), "{all}");
        assert!(all.contains("C: <redacted: SASL response>"), "{all}");
        assert!(
            all.contains("C: a2 AUTHENTICATE XOAUTH2 <redacted>"),
            "{all}"
        );
        assert!(all.contains("C: a3 SELECT INBOX"), "{all}");
    }

    #[test]
    fn literals_are_abbreviated_whatever_the_chunking() {
        let body = "Subject: private\r\n\r\nsecret body\r\n";
        let command = format!("a1 APPEND INBOX (\\Seen) {{{}+}}\r\n{body}\r\n", body.len());
        // One byte at a time: lines and literals span writes.
        let bytes: Vec<&[u8]> = command.as_bytes().chunks(1).collect();
        let fetch = format!("* 1 FETCH (UID 7 BODY[] {{{}}}\r\n{body})\r\n", body.len());
        let lines = traced(&bytes, &[fetch.as_bytes()]);
        let all = lines.join("\n");
        assert!(!all.contains("secret body"), "{all}");
        assert!(
            all.contains(&format!(
                "C: a1 APPEND INBOX (\\Seen) {{{}+}} <literal: {} bytes, not shown>",
                body.len(),
                body.len()
            )),
            "{all}"
        );
        assert!(all.contains("S: )"), "{all}");
    }

    #[test]
    fn long_lines_are_cut() {
        let line = format!("a1 UID FETCH {} (FLAGS)\r\n", "1,".repeat(5000));
        let lines = traced(&[line.as_bytes()], &[]);
        assert_eq!(lines.len(), 1);
        assert!(lines[0].len() < MAX_LINE + 100, "{}", lines[0]);
        assert!(lines[0].contains("more bytes)"), "{}", lines[0]);
    }
}
