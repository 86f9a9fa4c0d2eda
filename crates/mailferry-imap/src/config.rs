//! How to reach and log in to one IMAP account.
//!
//! Secure by default: [`Security::Tls`] with certificate verification against the webpki roots;
//! plaintext only when the caller names [`Security::Plaintext`], and a failed STARTTLS never falls
//! back to it. Secrets live in [`Secret`], whose `Debug` and `Display` print `<redacted>`, so a
//! config can be logged or put in an error without leaking a password or a token. OAuth tokens
//! come from a caller-supplied [`TokenProvider`] that is asked again for every new connection, so
//! a pool that reconnects after an hour gets a fresh token.

use crate::wire::WireTrace;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mailferry_core::{BoxFuture, Result};

/// A password or token. Never printed: `Debug` and `Display` show `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret string.
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }

    /// The secret itself, for the one place that sends it to the server.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret::new(s)
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret::new(s)
    }
}

/// Supplies OAuth 2 access tokens (XOAUTH2, OAUTHBEARER). Asked once per new connection, so an
/// implementation can refresh an expired token.
pub trait TokenProvider: Send + Sync {
    /// A current access token.
    fn token(&self) -> BoxFuture<'_, Result<String>>;
}

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Implicit TLS from the first byte (port 993).
    Tls,
    /// Plain TCP upgraded with STARTTLS before anything else is sent (port 143). If the server
    /// refuses, the connection fails: it never goes on in plaintext.
    StartTls,
    /// No encryption at all. Only when chosen explicitly (tests, a local socket).
    Plaintext,
}

/// How to log in.
#[derive(Clone)]
pub enum Auth {
    /// `LOGIN user password`.
    Login {
        /// User name.
        user: String,
        /// Password.
        password: Secret,
    },
    /// `AUTHENTICATE PLAIN` (RFC 4616).
    Plain {
        /// User name.
        user: String,
        /// Password.
        password: Secret,
    },
    /// `AUTHENTICATE XOAUTH2` (Google, Microsoft).
    XOAuth2 {
        /// User name (the mailbox address).
        user: String,
        /// Where access tokens come from.
        tokens: Arc<dyn TokenProvider>,
    },
    /// `AUTHENTICATE OAUTHBEARER` (RFC 7628).
    OAuthBearer {
        /// User name (the mailbox address).
        user: String,
        /// Where access tokens come from.
        tokens: Arc<dyn TokenProvider>,
    },
}

impl Auth {
    /// The user name, for messages.
    pub fn user(&self) -> &str {
        match self {
            Auth::Login { user, .. }
            | Auth::Plain { user, .. }
            | Auth::XOAuth2 { user, .. }
            | Auth::OAuthBearer { user, .. } => user,
        }
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mechanism = match self {
            Auth::Login { .. } => "Login",
            Auth::Plain { .. } => "Plain",
            Auth::XOAuth2 { .. } => "XOAuth2",
            Auth::OAuthBearer { .. } => "OAuthBearer",
        };
        f.debug_struct(mechanism)
            .field("user", &self.user())
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Whether to use COMPRESS=DEFLATE (RFC 4978) when the server offers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Never.
    Off,
    /// When offered, except to a loopback address, where deflating costs CPU and saves nothing.
    Auto,
    /// Whenever offered.
    On,
}

/// Everything needed to open sessions to one account.
#[derive(Debug, Clone)]
pub struct ImapConfig {
    /// Server host name or address; also the name the certificate must be valid for.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Transport protection.
    pub security: Security,
    /// How to log in.
    pub auth: Auth,
    /// An extra PEM file of CA certificates to trust (a private CA), on top of the webpki roots.
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate. Dangerous: only for a test server whose certificate cannot be
    /// fixed. Off by default.
    pub insecure: bool,
    /// Sessions held at most (default 4).
    pub max_connections: usize,
    /// Longest wait for any server answer or write progress before the session is declared
    /// stuck (default 60 s).
    pub read_timeout: Duration,
    /// Longest wait for TCP + TLS + greeting (default 30 s).
    pub connect_timeout: Duration,
    /// COMPRESS=DEFLATE policy (default [`Compression::Auto`]).
    pub compression: Compression,
    /// Connection attempts on transient failures before giving up (default 4, with exponential
    /// backoff from 250 ms).
    pub connect_attempts: u32,
    /// Where each session's IMAP traffic is traced, redacted (see [`crate::WireTrace`]).
    /// Default: `TRACE` events of target `mailferry_imap::wire`, which cost nothing unless
    /// that target is enabled when a session opens; `None` turns tracing off.
    pub wire_trace: Option<WireTrace>,
}

impl ImapConfig {
    /// A config with defaults for everything but the endpoint and the login.
    pub fn new(host: impl Into<String>, port: u16, security: Security, auth: Auth) -> Self {
        ImapConfig {
            host: host.into(),
            port,
            security,
            auth,
            ca_file: None,
            insecure: false,
            max_connections: 4,
            read_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(30),
            compression: Compression::Auto,
            connect_attempts: 4,
            wire_trace: Some(WireTrace::to_tracing()),
        }
    }

    /// Traces every session's IMAP traffic to `trace` (e.g. [`WireTrace::to_file`]).
    pub fn with_wire_trace(mut self, trace: WireTrace) -> Self {
        self.wire_trace = Some(trace);
        self
    }

    /// Trusts the CA certificates in this PEM file as well.
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Holds at most `n` sessions (at least 1).
    pub fn with_max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Sets the COMPRESS=DEFLATE policy.
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// `user@host:port`, the name errors use.
    pub fn label(&self) -> String {
        format!("{}@{}:{}", self.auth.user(), self.host, self.port)
    }

    /// Whether COMPRESS=DEFLATE should be asked for, given the policy and the host.
    pub(crate) fn wants_compression(&self) -> bool {
        match self.compression {
            Compression::Off => false,
            Compression::On => true,
            Compression::Auto => !is_loopback(&self.host),
        }
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_matches(['[', ']'])
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_contains_secrets() {
        let config = ImapConfig::new(
            "imap.example.org",
            993,
            Security::Tls,
            Auth::Plain {
                user: "ann".into(),
                password: Secret::new("hunter2-very-secret"),
            },
        );
        let printed = format!("{config:?} {:?} {}", config.auth, Secret::new("x"));
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("ann"));
        assert_eq!(config.label(), "ann@imap.example.org:993");
    }

    #[test]
    fn automatic_compression_is_off_for_loopback_only() {
        let auth = Auth::Login {
            user: "u".into(),
            password: "p".into(),
        };
        for (host, wanted) in [
            ("127.0.0.1", false),
            ("localhost", false),
            ("::1", false),
            ("imap.example.org", true),
            ("10.0.0.1", true),
        ] {
            let c = ImapConfig::new(host, 143, Security::StartTls, auth.clone());
            assert_eq!(c.wants_compression(), wanted, "{host}");
        }
    }
}
