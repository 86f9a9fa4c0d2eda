//! One error type for every backend. Its [`ErrorKind`] tells the pipeline what to do with it,
//! in the spirit of OpenDAL's error status: retry ([`ErrorKind::Transient`]), record the item and
//! go on ([`ErrorKind::Item`]), or stop ([`ErrorKind::Fatal`]). Backends decide the kind, because
//! only they know whether a `NO` from a server is about the message or about the session.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::key::SourceKey;

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

/// Whether retrying was already tried (OpenDAL's temporary → persistent): a retry loop that
/// gives up marks the error [`ErrorStatus::Persistent`], and no outer loop retries it again, so
/// retries never nest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorStatus {
    /// Not retried yet: a retry may help if the kind is transient.
    Temporary,
    /// Retried until a retry loop gave up: do not retry again.
    Persistent,
}

/// Where an error comes from, so that the command line can say what to do about it (and pick
/// its exit code) from the error itself rather than from the call site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorDomain {
    /// Reaching a server: DNS, TCP, TLS, a dropped session, a server that is unavailable.
    Connection,
    /// Logging in: wrong password, expired token, account locked.
    Auth,
    /// The caller's settings: a bad URL, option, plan or folder rule.
    Config,
    /// A local store or the state: a full disk, a permission, a corrupt file.
    Storage,
}

/// An error from a backend, the state store or the pipeline.
#[derive(Debug, thiserror::Error)]
pub struct Error {
    kind: ErrorKind,
    status: ErrorStatus,
    domain: Option<ErrorDomain>,
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
            status: ErrorStatus::Temporary,
            domain: None,
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
        let domain = match err.kind() {
            K::StorageFull
            | K::PermissionDenied
            | K::ReadOnlyFilesystem
            | K::QuotaExceeded
            | K::NotFound
            | K::AlreadyExists
            | K::IsADirectory
            | K::NotADirectory
            | K::DirectoryNotEmpty
            | K::InvalidData => Some(ErrorDomain::Storage),
            K::ConnectionRefused
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::NotConnected
            | K::HostUnreachable
            | K::NetworkUnreachable
            | K::AddrNotAvailable => Some(ErrorDomain::Connection),
            _ => None,
        };
        let mut e = Self::new(kind, context).with_source(err);
        e.domain = domain;
        e
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Marks the error as retried already: no loop outside the one that gave up retries it.
    pub fn persistent(mut self) -> Self {
        self.status = ErrorStatus::Persistent;
        self
    }

    /// Says where the error comes from (kept if already set by an inner layer).
    pub fn with_domain(mut self, domain: ErrorDomain) -> Self {
        self.domain.get_or_insert(domain);
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

    /// Whether the failure is of a transient kind (it may have been retried already: see
    /// [`Error::is_retryable`]).
    pub fn is_transient(&self) -> bool {
        self.kind == ErrorKind::Transient
    }

    /// Whether a retry loop should try again: transient and not given up on by an inner loop.
    pub fn is_retryable(&self) -> bool {
        self.kind == ErrorKind::Transient && self.status == ErrorStatus::Temporary
    }

    /// Whether a retry loop already gave up on this error.
    pub fn status(&self) -> ErrorStatus {
        self.status
    }

    /// Where the error comes from, when the code that raised it knew.
    pub fn domain(&self) -> Option<ErrorDomain> {
        self.domain
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
        assert_eq!(err.domain(), Some(ErrorDomain::Connection));
    }

    #[test]
    fn a_persistent_transient_error_is_not_retryable() {
        let err = Error::transient("server busy");
        assert!(err.is_retryable());
        let err = err.persistent();
        assert!(err.is_transient() && !err.is_retryable());
        assert_eq!(err.status(), ErrorStatus::Persistent);
    }

    #[test]
    fn a_full_disk_is_a_storage_error() {
        let io = std::io::Error::new(std::io::ErrorKind::StorageFull, "no space left");
        let err = Error::io(ErrorKind::Fatal, "writing", io);
        assert!(err.is_fatal());
        assert_eq!(err.domain(), Some(ErrorDomain::Storage));
        let kept = Error::fatal("x")
            .with_domain(ErrorDomain::Auth)
            .with_domain(ErrorDomain::Config);
        assert_eq!(kept.domain(), Some(ErrorDomain::Auth));
    }
}
