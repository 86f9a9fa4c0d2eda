//! One error type for every backend. Its [`ErrorKind`] tells the pipeline what to do with it,
//! in the spirit of OpenDAL's error status: retry ([`ErrorKind::Transient`]), record the item and
//! go on ([`ErrorKind::Item`]), or stop ([`ErrorKind::Fatal`]). Backends decide the kind, because
//! only they know whether a `NO` from a server is about the message or about the session.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::item::SourceKey;

/// What the pipeline does with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Connection reset, timeout, server busy: retry with backoff, reconnecting if needed.
    Transient,
    /// This one item was rejected or could not be read: record it with the reason and go on.
    Item,
    /// Authentication, configuration, a missing store: stop with an actionable message.
    Fatal,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Transient => "transient",
            ErrorKind::Item => "item",
            ErrorKind::Fatal => "fatal",
        })
    }
}

/// An error from a backend, the state store or the pipeline.
#[derive(Debug, thiserror::Error)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    item: Option<SourceKey>,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// The result type used throughout mailferry's libraries.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` with a message that says what failed and, where possible, what to do.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            item: None,
            source: None,
        }
    }

    /// A transient error (retry).
    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Transient, message)
    }

    /// An error about one item (record it, go on).
    pub fn item(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Item, message)
    }

    /// A fatal error (stop).
    pub fn fatal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Fatal, message)
    }

    /// An I/O error with context; its kind is guessed from the I/O error kind: interruptions and
    /// timeouts are transient, everything else is `fallback`.
    pub fn io(fallback: ErrorKind, context: impl Into<String>, err: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let kind = match err.kind() {
            K::Interrupted
            | K::TimedOut
            | K::WouldBlock
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::BrokenPipe
            | K::UnexpectedEof => ErrorKind::Transient,
            _ => fallback,
        };
        Self::new(kind, context).with_source(err)
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Names the item this error is about.
    pub fn with_item(mut self, key: SourceKey) -> Self {
        self.item = Some(key);
        self
    }

    /// Prefixes the message with more context (an endpoint, a folder).
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// What the pipeline should do with this error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether retrying may help.
    pub fn is_transient(&self) -> bool {
        self.kind == ErrorKind::Transient
    }

    /// Whether the run must stop.
    pub fn is_fatal(&self) -> bool {
        self.kind == ErrorKind::Fatal
    }

    /// The item this error is about, if any.
    pub fn item_key(&self) -> Option<&SourceKey> {
        self.item.as_ref()
    }

    /// The message without the cause chain.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        let mut cause = self.source.as_deref().map(|e| e as &dyn std::error::Error);
        while let Some(err) = cause {
            write!(f, ": {err}")?;
            cause = err.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_includes_context_and_cause_chain() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "peer went away");
        let err = Error::io(ErrorKind::Fatal, "reading INBOX", io).context("imap://a@b");
        assert_eq!(err.kind(), ErrorKind::Transient);
        assert_eq!(err.to_string(), "imap://a@b: reading INBOX: peer went away");
    }
}
