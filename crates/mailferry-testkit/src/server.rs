//! One interface over the test servers ([`Dovecot`], [`Cyrus`]), so an IMAP test is written
//! once and instantiated per server, as the conformance suite is per backend.
//!
//! Only what tests use from both is here; server-specific knobs stay on the launchers' options.

use std::io;
use std::path::Path;

use crate::corpus::GeneratedMessage;
use crate::{Cyrus, CyrusOptions, Dovecot, DovecotOptions};

/// Which server a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    /// Dovecot 2.3 (`dovecot-imapd`).
    Dovecot,
    /// Cyrus IMAP 3.6 (`cyrus-imapd`, unpacked).
    Cyrus,
}

impl ServerKind {
    /// Whether the server is installed (see [`crate::require_dovecot`] /
    /// [`crate::require_cyrus`]: in CI a missing server panics instead).
    pub fn available(self) -> bool {
        match self {
            ServerKind::Dovecot => crate::require_dovecot(),
            ServerKind::Cyrus => crate::require_cyrus(),
        }
    }

    /// Starts a fresh instance with `delimiter` and the launcher's defaults otherwise (Cyrus:
    /// folders under `INBOX.`, 8-bit header bytes rewritten as its default does).
    pub fn start(self, delimiter: char) -> io::Result<Box<dyn ImapServer>> {
        Ok(match self {
            ServerKind::Dovecot => Box::new(Dovecot::start(DovecotOptions {
                delimiter,
                ..DovecotOptions::default()
            })?),
            ServerKind::Cyrus => Box::new(Cyrus::start(CyrusOptions {
                delimiter,
                ..CyrusOptions::default()
            })?),
        })
    }
}

/// A running test server.
pub trait ImapServer: Send + Sync + std::fmt::Debug {
    /// Which server this is.
    fn kind(&self) -> ServerKind;
    /// Always `127.0.0.1`.
    fn host(&self) -> &str;
    /// The plaintext port (STARTTLS offered).
    fn imap_port(&self) -> u16;
    /// The implicit-TLS port.
    fn imaps_port(&self) -> u16;
    /// The CA certificate that signed the server's.
    fn ca_pem_path(&self) -> &Path;
    /// The first user's (login, password).
    fn login(&self) -> (&str, &str);
    /// The server's log, for assertion messages.
    fn log(&self) -> String;
    /// Stores `messages` for `user` (see each launcher's `fill`).
    fn fill(&self, user: &str, messages: Vec<GeneratedMessage>) -> io::Result<u64>;
    /// Stops the server and starts it again on the same ports and data.
    fn restart(&mut self) -> io::Result<()>;
    /// Stops the server; idempotent.
    fn stop(&mut self);
    /// Whether the server replaces 8-bit bytes in header fields (Cyrus's default `munge8bit`):
    /// what a test must expect back from it.
    fn rewrites_8bit_headers(&self) -> bool;
    /// Messages stored for `user`, counted as files on disk: a poll that costs a millisecond
    /// where an IMAP STATUS of every folder costs tens in a debug build (crash tests time their
    /// kills by it).
    fn message_files(&self, user: &str) -> u64;
    /// Error lines of the server's log (empty when it saw nothing wrong, or keeps no log).
    fn log_errors(&self) -> Vec<String>;
    /// The server's master process, which leads the process group of all its processes (for
    /// measuring the server's CPU time); `None` when stopped.
    fn pid(&self) -> Option<u32>;
}

/// Files under `dir` (recursively) for which `is_message` holds.
fn count_files(dir: &Path, is_message: &dyn Fn(&Path) -> bool) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => n += count_files(&path, is_message),
            Ok(t) if t.is_file() && is_message(&path) => n += 1,
            _ => {}
        }
    }
    n
}

impl ImapServer for Dovecot {
    fn kind(&self) -> ServerKind {
        ServerKind::Dovecot
    }
    fn host(&self) -> &str {
        Dovecot::host(self)
    }
    fn imap_port(&self) -> u16 {
        Dovecot::imap_port(self)
    }
    fn imaps_port(&self) -> u16 {
        Dovecot::imaps_port(self)
    }
    fn ca_pem_path(&self) -> &Path {
        Dovecot::ca_pem_path(self)
    }
    fn login(&self) -> (&str, &str) {
        Dovecot::login(self)
    }
    fn log(&self) -> String {
        Dovecot::log(self)
    }
    fn fill(&self, user: &str, messages: Vec<GeneratedMessage>) -> io::Result<u64> {
        Dovecot::fill(self, user, messages)
    }
    fn restart(&mut self) -> io::Result<()> {
        Dovecot::restart(self)
    }
    fn stop(&mut self) {
        Dovecot::stop(self)
    }
    fn rewrites_8bit_headers(&self) -> bool {
        false
    }
    fn message_files(&self, user: &str) -> u64 {
        // Maildir: every file in a `cur` or `new` directory, either layout.
        count_files(&self.maildir(user), &|p: &Path| {
            p.parent()
                .and_then(Path::file_name)
                .is_some_and(|d| d == "cur" || d == "new")
        })
    }
    fn log_errors(&self) -> Vec<String> {
        Dovecot::log_errors(self)
    }
    fn pid(&self) -> Option<u32> {
        Dovecot::pid(self)
    }
}

impl ImapServer for Cyrus {
    fn kind(&self) -> ServerKind {
        ServerKind::Cyrus
    }
    fn host(&self) -> &str {
        Cyrus::host(self)
    }
    fn imap_port(&self) -> u16 {
        Cyrus::imap_port(self)
    }
    fn imaps_port(&self) -> u16 {
        Cyrus::imaps_port(self)
    }
    fn ca_pem_path(&self) -> &Path {
        Cyrus::ca_pem_path(self)
    }
    fn login(&self) -> (&str, &str) {
        Cyrus::login(self)
    }
    fn log(&self) -> String {
        Cyrus::log(self)
    }
    fn fill(&self, user: &str, messages: Vec<GeneratedMessage>) -> io::Result<u64> {
        Cyrus::fill(self, user, messages)
    }
    fn restart(&mut self) -> io::Result<()> {
        Cyrus::restart(self)
    }
    fn stop(&mut self) {
        Cyrus::stop(self)
    }
    fn rewrites_8bit_headers(&self) -> bool {
        !self.options().keep_8bit_headers
    }
    fn message_files(&self, _user: &str) -> u64 {
        // Cyrus stores each message as `<uid>.` in its mailbox's spool directory (the only
        // user-visible files named so; index and cache files are `cyrus.*`). One test user
        // per instance is the norm, so the whole spool is counted.
        count_files(&self.spool(), &|p: &Path| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix('.'))
                .is_some_and(|uid| !uid.is_empty() && uid.bytes().all(|b| b.is_ascii_digit()))
        })
    }
    fn log_errors(&self) -> Vec<String> {
        // Cyrus logs only to syslog (see the launcher's docs): nothing to read here.
        Vec::new()
    }
    fn pid(&self) -> Option<u32> {
        Cyrus::pid(self)
    }
}

/// What a server that rewrites 8-bit header bytes (Cyrus's `munge8bit`) stores for `body`:
/// every byte ≥ 0x80 before the first empty line becomes `X`, one for one (verified by hand
/// against Cyrus 3.6: `Subject: Grüße` comes back as `Subject: GrXXXe`).
pub fn munge_8bit_headers(body: &[u8]) -> Vec<u8> {
    let end = header_end(body);
    let mut out = body.to_vec();
    for b in &mut out[..end] {
        if *b >= 0x80 {
            *b = b'X';
        }
    }
    out
}

/// Offset of the end of the header section (the start of the blank line), or the length.
fn header_end(body: &[u8]) -> usize {
    let mut at = 0;
    while at < body.len() {
        let line_end = body[at..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(body.len(), |p| at + p + 1);
        let line = &body[at..line_end];
        if line == b"\r\n" || line == b"\n" {
            return at;
        }
        at = line_end;
    }
    body.len()
}
