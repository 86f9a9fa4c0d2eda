//! One logged-in IMAP session and the command loop everything else is built on.
//!
//! async-imap is used for what it does well — the response parser, login/AUTHENTICATE, the
//! COMPRESS stream — but not for its typed commands: they drop the tagged NO/BAD of a `UID FETCH`
//! (an empty successful stream), queue untagged responses and drop them beyond 100, and cannot
//! pipeline. Instead every command goes through [`Conn::send`] (write `tag line CRLF`, our own
//! tags) and [`Conn::finish_all`] (read until the tagged answers, handing every untagged response
//! to the caller), so nothing is queued, nothing is lost, and several commands can be in flight.
//! Every read and write is bounded by the configured timeout, so a stuck server becomes a
//! transient error instead of a hung copy.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use async_imap::imap_proto::{Capability, MailboxDatum, Outcome, Response, ResponseCode, Status};
use bytes::Bytes;
use futures_util::FutureExt;
use mailferry_core::{Error, ErrorKind, Result};
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio_rustls::TlsConnector;

use crate::config::{ImapConfig, Security};
use crate::handshake::{imap_error, login, namespace, starttls};
use crate::proto::{Namespaces, Tagged};
use crate::transport::{self, Transport};

/// A logged-in async-imap session over our transport.
pub(crate) type Session = async_imap::Session<Transport>;

/// What the server told us once: capabilities and namespaces.
#[derive(Debug, Clone, Default)]
pub(crate) struct ServerInfo {
    /// Capability atoms, upper-cased (`LITERAL+`, `APPENDLIMIT=1000`, …).
    pub caps: HashSet<String>,
    /// NAMESPACE, when the server answered it.
    pub namespaces: Option<Namespaces>,
    /// Whether the session runs COMPRESS=DEFLATE.
    pub compressed: bool,
}

impl ServerInfo {
    /// Whether the capability is advertised.
    pub(crate) fn has(&self, cap: &str) -> bool {
        self.caps.contains(cap)
    }

    /// The APPENDLIMIT, if advertised with a value.
    pub(crate) fn append_limit(&self) -> Option<u64> {
        self.caps
            .iter()
            .find_map(|c| c.strip_prefix("APPENDLIMIT=")?.parse().ok())
    }
}

/// The folder a session has selected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Selected {
    /// The server's name for it.
    pub name: String,
    /// SELECT (true) or EXAMINE (false).
    pub writable: bool,
    /// UIDVALIDITY.
    pub validity: u32,
    /// UIDNEXT, if the server said.
    pub uid_next: Option<u32>,
    /// Messages in it.
    pub exists: u32,
}

/// A logged-in session.
pub(crate) struct Conn {
    session: Session,
    label: String,
    timeout: Duration,
    next_tag: u64,
    /// What is selected, to avoid needless re-SELECTs.
    pub selected: Option<Selected>,
    bye: Option<String>,
    /// When the session was last used (idle sessions are checked before reuse).
    pub last_used: Instant,
}

/// One server response, kept as the buffer async-imap read it into. async-imap does not export
/// its response type, so the response is parsed again on demand (cheap: a literal is a slice,
/// not a copy), and bodies can be sliced out of the buffer without copying.
pub(crate) struct Resp(Bytes);

impl Resp {
    /// The parsed response. [`Conn::read`] checked that it parses; the fallback is unreachable.
    pub(crate) fn parsed(&self) -> Response<'_> {
        match Response::parse(&self.0) {
            Ok((_, r)) => r,
            Err(_) => Response::Data {
                status: Status::Bad,
                outcome: Outcome {
                    code: None,
                    information: Some("unparseable response".into()),
                },
            },
        }
    }

    /// A response from bytes, for tests.
    #[cfg(test)]
    pub(crate) fn for_test(raw: Vec<u8>) -> Self {
        Resp(Bytes::from(raw))
    }

    /// A response from static bytes, for tests.
    #[cfg(test)]
    pub(crate) fn from_static(raw: &'static [u8]) -> Self {
        Resp(Bytes::from_static(raw))
    }

    /// The buffer the response lives in (it may extend past the response).
    pub(crate) fn buffer(&self) -> &Bytes {
        &self.0
    }
}

/// Maps an I/O error to our error with the endpoint and what we were doing.
pub(crate) fn io_error(label: &str, doing: &str, e: std::io::Error) -> Error {
    Error::io(ErrorKind::Transient, format!("{label}: {doing}"), e)
}

impl Conn {
    /// Connects, secures, logs in, learns capabilities and namespaces, and enables compression.
    pub(crate) async fn open(
        config: &ImapConfig,
        tls: Option<&TlsConnector>,
    ) -> Result<(Conn, ServerInfo)> {
        let label = config.label();
        let tcp = transport::tcp(config).await?;
        let stream = match (config.security, tls) {
            (Security::Tls, Some(tls)) => {
                let s = transport::tls(config, tls, tcp).await?;
                Transport::Tls(Box::new(BufWriter::new(s)))
            }
            _ => Transport::Plain(Box::new(BufWriter::new(tcp))),
        }
        .traced(
            config
                .wire_trace
                .as_ref()
                .and_then(|t| t.connection(&label)),
        );
        let mut client = async_imap::Client::new(stream);
        let greeting = tokio::time::timeout(config.connect_timeout, client.read_response())
            .await
            .map_err(|_| Error::transient(format!("{label}: no greeting from the server")))?
            .map_err(|e| io_error(&label, "reading the greeting", e))?
            .ok_or_else(|| Error::transient(format!("{label}: closed before the greeting")))?;
        if let Response::Data {
            status: Status::Bye,
            outcome,
        } = greeting.parsed()
        {
            return Err(Error::transient(format!(
                "{label}: the server refused the connection: {}",
                outcome.information.as_deref().unwrap_or("BYE")
            )));
        }
        if config.security == Security::StartTls {
            client = starttls(config, tls, client).await?;
        }
        let mut session = login(config, client).await?;
        if !session.get_ref().is_tls() && config.security != Security::Plaintext {
            return Err(Error::fatal(format!(
                "{label}: the session is not encrypted"
            )));
        }
        let namespaces = namespace(&mut session, &label, config.read_timeout).await?;
        let mut conn = Conn {
            session,
            label: label.clone(),
            timeout: config.read_timeout,
            next_tag: 0,
            selected: None,
            bye: None,
            last_used: Instant::now(),
        };
        let caps = conn.capabilities().await?;
        let mut info = ServerInfo {
            caps,
            namespaces,
            compressed: false,
        };
        if info.has("COMPRESS=DEFLATE") && config.wants_compression() {
            let Conn { session, .. } = conn;
            let session =
                tokio::time::timeout(config.read_timeout, session.compress(Transport::compress))
                    .await
                    .map_err(|_| Error::transient(format!("{label}: COMPRESS timed out")))?
                    .map_err(|e| imap_error(&label, "COMPRESS DEFLATE", e))?;
            // Typed async-imap commands queue untagged responses here; we only ran COMPRESS.
            while session.unsolicited_responses.try_recv().is_ok() {}
            conn = Conn {
                session,
                label,
                timeout: config.read_timeout,
                next_tag: 0,
                selected: None,
                bye: None,
                last_used: Instant::now(),
            };
            info.compressed = true;
        }
        Ok((conn, info))
    }

    /// `user@host:port`.
    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    /// Sends one command line and returns its tag. The line must not end in CRLF.
    pub(crate) async fn send(&mut self, line: &str) -> Result<String> {
        let tag = self.start(line).await?;
        self.flush().await?;
        Ok(tag)
    }

    /// Writes one command line without flushing (more of the command, or more commands, follow).
    pub(crate) async fn start(&mut self, line: &str) -> Result<String> {
        self.next_tag += 1;
        let tag = format!("mf{}", self.next_tag);
        let mut bytes = Vec::with_capacity(tag.len() + line.len() + 3);
        bytes.extend_from_slice(tag.as_bytes());
        bytes.push(b' ');
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        self.write(&bytes).await?;
        Ok(tag)
    }

    /// Writes raw bytes (a literal, the rest of a command) without flushing. Large writes go in
    /// chunks, each under the timeout, so a slow but moving link is not mistaken for a stuck one.
    pub(crate) async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        for chunk in bytes.chunks(1 << 20) {
            let w = self.session.get_mut().write_all(chunk);
            tokio::time::timeout(self.timeout, w)
                .await
                .map_err(|_| self.stuck("writing"))?
                .map_err(|e| io_error(&self.label, "writing a command", e))?;
        }
        Ok(())
    }

    /// Flushes what was written.
    pub(crate) async fn flush(&mut self) -> Result<()> {
        let f = self.session.get_mut().flush();
        tokio::time::timeout(self.timeout, f)
            .await
            .map_err(|_| self.stuck("writing"))?
            .map_err(|e| io_error(&self.label, "writing a command", e))
    }

    fn stuck(&self, doing: &str) -> Error {
        Error::transient(format!(
            "{}: the server made no progress {doing} for {:?}",
            self.label, self.timeout
        ))
    }

    /// Reads the next response. End of stream is a transient error quoting the BYE, if any.
    pub(crate) async fn read(&mut self) -> Result<Resp> {
        // imap-proto (inside async-imap) panics on some malformed responses (found by fuzzing:
        // `a NO [TRYCREATE]\xc3\xa9`); a hostile server must cost this connection, not the run.
        let r = std::panic::AssertUnwindSafe(self.session.read_response()).catch_unwind();
        let next = tokio::time::timeout(self.timeout, r)
            .await
            .map_err(|_| self.stuck("answering"))?
            .map_err(|_| {
                Error::transient(format!(
                    "{}: the server sent a response the IMAP parser cannot handle",
                    self.label
                ))
            })?
            .map_err(|e| io_error(&self.label, "reading a response", e))?;
        match next {
            Some(resp) => {
                let resp = Resp(resp.into_owner().freeze());
                match Response::parse(resp.buffer()) {
                    Ok((
                        _,
                        Response::Data {
                            status: Status::Bye,
                            outcome,
                        },
                    )) => {
                        self.bye = Some(outcome.information.as_deref().unwrap_or("").to_string());
                    }
                    Ok(_) => {}
                    Err(_) => {
                        return Err(Error::transient(format!(
                            "{}: a response that async-imap parsed does not parse again",
                            self.label
                        )));
                    }
                }
                Ok(resp)
            }
            None => Err(Error::transient(format!(
                "{}: the server closed the connection{}",
                self.label,
                self.bye
                    .as_deref()
                    .map(|b| format!(" (BYE {b})"))
                    .unwrap_or_default()
            ))),
        }
    }

    /// Reads until every tag in `tags` is answered, passing every other response to `untagged`.
    /// Returns the answers in the order of `tags`.
    pub(crate) async fn finish_all(
        &mut self,
        tags: &[String],
        mut untagged: impl FnMut(Resp) -> Result<()>,
    ) -> Result<Vec<Tagged>> {
        let mut done: Vec<Option<Tagged>> = vec![None; tags.len()];
        let mut missing = tags.len();
        while missing > 0 {
            let resp = self.read().await?;
            if let Response::Done {
                tag,
                status,
                outcome,
            } = resp.parsed()
            {
                match tags.iter().position(|t| *t == tag.0) {
                    Some(i) if done[i].is_none() => {
                        done[i] = Some(Tagged::new(
                            status,
                            outcome.code.as_ref(),
                            outcome.information.as_deref(),
                        ));
                        missing -= 1;
                    }
                    _ => {
                        return Err(Error::transient(format!(
                            "{}: unexpected answer for tag {}: the session is out of step",
                            self.label, tag.0
                        )));
                    }
                }
                continue;
            }
            untagged(resp)?;
        }
        self.last_used = Instant::now();
        Ok(done.into_iter().flatten().collect())
    }

    /// Reads until `tag` is answered.
    pub(crate) async fn finish(
        &mut self,
        tag: String,
        untagged: impl FnMut(Resp) -> Result<()>,
    ) -> Result<Tagged> {
        let mut all = self.finish_all(&[tag], untagged).await?;
        all.pop()
            .ok_or_else(|| Error::transient(format!("{}: no tagged answer", self.label)))
    }

    /// Sends a command and reads its answer, ignoring untagged responses.
    pub(crate) async fn run(&mut self, line: &str) -> Result<Tagged> {
        let tag = self.send(line).await?;
        self.finish(tag, |_| Ok(())).await
    }

    /// Sends a command that must succeed; otherwise an error of the kind the answer implies.
    pub(crate) async fn run_ok(&mut self, line: &str, what: &str) -> Result<()> {
        let t = self.run(line).await?;
        if t.is_ok() {
            Ok(())
        } else {
            Err(self.refused(&t, what, false))
        }
    }

    /// An error for a NO/BAD answer to `what`.
    pub(crate) fn refused(&self, t: &Tagged, what: &str, item_level: bool) -> Error {
        Error::new(
            t.kind(item_level),
            format!(
                "{}: {what}: the server answered {}",
                self.label,
                t.describe()
            ),
        )
    }

    async fn capabilities(&mut self) -> Result<HashSet<String>> {
        let tag = self.send("CAPABILITY").await?;
        let mut caps = HashSet::new();
        let t = self
            .finish(tag, |resp| {
                if let Response::Capabilities(list) = resp.parsed() {
                    caps.extend(list.iter().map(capability_name));
                }
                Ok(())
            })
            .await?;
        if !t.is_ok() {
            return Err(self.refused(&t, "CAPABILITY", false));
        }
        Ok(caps)
    }

    /// Selects (`writable`) or examines a folder unless it already is. `None` when the folder
    /// does not exist.
    pub(crate) async fn select(&mut self, name: &str, writable: bool) -> Result<Option<Selected>> {
        self.select_with(name, writable, false).await
    }

    /// Like [`Conn::select`]; with `fresh`, selects again even if selected, for an up-to-date
    /// UIDNEXT (the cached one goes stale as other sessions append).
    pub(crate) async fn select_with(
        &mut self,
        name: &str,
        writable: bool,
        fresh: bool,
    ) -> Result<Option<Selected>> {
        if !fresh
            && let Some(s) = &self.selected
            && s.name == name
            && (s.writable || !writable)
        {
            return Ok(Some(s.clone()));
        }
        self.selected = None;
        let verb = if writable { "SELECT" } else { "EXAMINE" };
        let tag = self
            .send(&format!("{verb} {}", crate::proto::quote(name)?))
            .await?;
        let mut sel = Selected {
            name: name.to_string(),
            writable,
            validity: 0,
            uid_next: None,
            exists: 0,
        };
        let t = self
            .finish(tag, |resp| {
                match resp.parsed() {
                    Response::MailboxData(MailboxDatum::Exists(n)) => sel.exists = n,
                    Response::Data { outcome, .. } => match outcome.code {
                        Some(ResponseCode::UidValidity(v)) => sel.validity = v,
                        Some(ResponseCode::UidNext(n)) => sel.uid_next = Some(n),
                        _ => {}
                    },
                    _ => {}
                }
                Ok(())
            })
            .await?;
        if t.is_ok() {
            self.selected = Some(sel.clone());
            Ok(Some(sel))
        } else if t.nonexistent() {
            Ok(None)
        } else {
            Err(self.refused(&t, &format!("{verb} {name}"), false))
        }
    }

    /// Whether the session still answers (used on sessions that sat idle).
    pub(crate) async fn is_alive(&mut self) -> bool {
        matches!(self.run("NOOP").await, Ok(t) if t.is_ok())
    }
}

fn capability_name(c: &Capability<'_>) -> String {
    match c {
        Capability::Imap4rev1 => "IMAP4REV1".into(),
        Capability::Auth(m) => format!("AUTH={}", m.to_ascii_uppercase()),
        Capability::Atom(a) => a.to_ascii_uppercase(),
    }
}
