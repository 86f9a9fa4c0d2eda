//! A minimal blocking IMAP client for [`Cyrus::fill`](super::Cyrus::fill): LOGIN, CREATE,
//! APPEND with a LITERAL+ literal, LOGOUT, one command at a time on plaintext loopback.
//!
//! Deliberately not the `mailferry-imap` backend: the data a test reads must not be written by
//! the code under test, or a bug shared by both directions would cancel out.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::Duration;

use crate::corpus::GeneratedMessage;

/// A quoted IMAP string (the caller keeps CR/LF out).
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

pub(super) struct Session {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    tag: u64,
}

impl Session {
    pub(super) fn login(port: u16, user: &str, password: &str) -> io::Result<Session> {
        let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let writer = stream.try_clone()?;
        let mut session = Session {
            reader: BufReader::new(stream),
            writer,
            tag: 0,
        };
        let greeting = session.line()?;
        if !greeting.starts_with("* OK") {
            return Err(io::Error::other(format!("cyrus greeting: {greeting}")));
        }
        session.command(&format!("LOGIN {} {}", quote(user), quote(password)), None)?;
        Ok(session)
    }

    fn line(&mut self) -> io::Result<String> {
        let mut buf = Vec::new();
        self.reader.read_until(b'\n', &mut buf)?;
        if buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "cyrus closed the connection",
            ));
        }
        // A response line ending in a literal `{n}`: read it whole so the next line is a line.
        let text = String::from_utf8_lossy(&buf).trim_end().to_string();
        if let Some(n) = text
            .strip_suffix('}')
            .and_then(|t| t.rsplit_once('{'))
            .and_then(|(_, n)| n.parse::<u64>().ok())
        {
            io::copy(&mut (&mut self.reader).take(n), &mut io::sink())?;
            return Ok(format!("{text} {}", self.line()?));
        }
        Ok(text)
    }

    /// Sends `command` (and `literal`, as a LITERAL+ `{n+}`) and waits for its tagged reply;
    /// a NO or BAD is an error carrying the reply.
    fn command(&mut self, command: &str, literal: Option<&[u8]>) -> io::Result<String> {
        self.tag += 1;
        let tag = format!("f{}", self.tag);
        let mut out = format!("{tag} {command}").into_bytes();
        if let Some(bytes) = literal {
            out.extend_from_slice(format!(" {{{}+}}\r\n", bytes.len()).as_bytes());
            out.extend_from_slice(bytes);
        }
        out.extend_from_slice(b"\r\n");
        self.writer.write_all(&out)?;
        loop {
            let line = self.line()?;
            if let Some(rest) = line.strip_prefix(&format!("{tag} ")) {
                if rest.starts_with("OK") {
                    return Ok(line);
                }
                // Only the command's head: an APPEND's literal is not worth echoing.
                let head: String = command.chars().take(80).collect();
                return Err(io::Error::other(format!("cyrus: {head}: {line}")));
            }
        }
    }

    /// CREATE, tolerating a folder that exists (a parent created implicitly, or a second fill).
    pub(super) fn create(&mut self, name: &str, special_use: Option<&str>) -> io::Result<()> {
        let command = match special_use {
            Some(role) => format!("CREATE {} (USE ({role}))", quote(name)),
            None => format!("CREATE {}", quote(name)),
        };
        match self.command(&command, None) {
            Ok(_) => Ok(()),
            Err(e) if e.to_string().contains("ALREADYEXISTS") => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub(super) fn append(&mut self, name: &str, message: &GeneratedMessage) -> io::Result<()> {
        let flags = message.flags.imap_tokens().join(" ");
        let date = message.internal_date.to_imap();
        // Cyrus refuses bare LF ("NO Message contains bare newlines"); a delivery agent (lmtpd)
        // would store CRLF, so the corpus's LF-only messages are stored as such.
        let (body, _) = mailferry_core::normalise::canonicalise(message.body.clone());
        self.command(
            &format!("APPEND {} ({flags}) {}", quote(name), quote(&date)),
            Some(&body),
        )
        .map(|_| ())
    }

    pub(super) fn logout(mut self) {
        let _ = self.command("LOGOUT", None);
    }
}
