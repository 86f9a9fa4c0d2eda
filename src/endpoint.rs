//! Endpoints as URLs — the command line's contract, and the factory that turns one into a
//! backend chosen at run time.
//!
//! - `imaps://USER@HOST[:PORT]` — IMAP over implicit TLS (port 993);
//! - `imap://USER@HOST[:PORT]` — IMAP with STARTTLS required (port 143); `?tls=none` for an
//!   explicit plaintext connection (a local test server);
//! - `maildir:PATH` — a Maildir tree (`?layout=fs` or `?layout=maildir++` for a new target);
//! - `mbox:PATH` — one mbox file, a `.mbox.gz`, or a directory of mbox files.
//!
//! User names are percent-decoded (`alice%40example.org@host`). Secrets are never part of a URL:
//! a URL with a password (`user:pass@host`) is refused, so it cannot end up in shell history,
//! logs or the state's migration name.

use std::fmt;
use std::path::PathBuf;

use crate::core::{Error, Result};

/// How an IMAP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImapSecurity {
    /// Implicit TLS (`imaps://`).
    Tls,
    /// STARTTLS, required (`imap://`).
    StartTls,
    /// No encryption, explicitly asked for (`imap://…?tls=none`).
    Plaintext,
}

/// A parsed endpoint URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// An IMAP account.
    Imap {
        /// Security.
        security: ImapSecurity,
        /// Login name, percent-decoded.
        user: String,
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
    },
    /// A Maildir tree.
    Maildir {
        /// Root directory.
        path: PathBuf,
        /// Layout for a new target: `fs` or `maildir++`.
        layout: Option<String>,
    },
    /// An mbox file or directory.
    Mbox {
        /// The file or directory.
        path: PathBuf,
    },
}

/// The URL with anything that looks like a password (`user:secret@`) replaced by `***`.
fn redact(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((userinfo, host)) = rest.rsplit_once('@')
        && let Some((user, _secret)) = userinfo.split_once(':')
    {
        return format!("{scheme}://{user}:***@{host}");
    }
    url.to_string()
}

fn usage(url: &str, why: impl fmt::Display) -> Error {
    let url = redact(url);
    Error::fatal(format!(
        "invalid endpoint {url:?}: {why} (expected imaps://USER@HOST[:PORT], imap://USER@HOST[:PORT][?tls=none], maildir:PATH or mbox:PATH)"
    ))
}

fn percent_decode(s: &str, url: &str) -> Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| usage(url, "bad percent-encoding in the user name"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| usage(url, "the user name is not UTF-8"))
}

fn split_query(rest: &str) -> (&str, Vec<(&str, &str)>) {
    match rest.split_once('?') {
        Some((main, q)) => (
            main,
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| p.split_once('=').unwrap_or((p, "")))
                .collect(),
        ),
        None => (rest, Vec::new()),
    }
}

impl Endpoint {
    /// Parses an endpoint URL.
    pub fn parse(url: &str) -> Result<Self> {
        if let Some(rest) = url.strip_prefix("maildir:") {
            let (path, query) = split_query(rest);
            let mut layout = None;
            for (k, v) in query {
                match (k, v) {
                    ("layout", "fs" | "maildir++") => layout = Some(v.to_string()),
                    ("layout", _) => return Err(usage(url, "layout must be fs or maildir++")),
                    _ => return Err(usage(url, format!("unknown option {k:?}"))),
                }
            }
            if path.is_empty() {
                return Err(usage(url, "no path"));
            }
            return Ok(Endpoint::Maildir {
                path: PathBuf::from(path),
                layout,
            });
        }
        if let Some(path) = url.strip_prefix("mbox:") {
            if path.is_empty() {
                return Err(usage(url, "no path"));
            }
            return Ok(Endpoint::Mbox {
                path: PathBuf::from(path),
            });
        }
        let (mut security, default_port, rest) = if let Some(r) = url.strip_prefix("imaps://") {
            (ImapSecurity::Tls, 993, r)
        } else if let Some(r) = url.strip_prefix("imap://") {
            (ImapSecurity::StartTls, 143, r)
        } else {
            return Err(usage(url, "unknown scheme"));
        };
        let (authority, query) = split_query(rest.trim_end_matches('/'));
        for (k, v) in query {
            match (k, v, security) {
                ("tls", "none", ImapSecurity::StartTls) => security = ImapSecurity::Plaintext,
                ("tls", "starttls", ImapSecurity::StartTls) => {}
                ("tls", _, _) => {
                    return Err(usage(
                        url,
                        "tls= takes none or starttls, and only with imap://",
                    ));
                }
                _ => return Err(usage(url, format!("unknown option {k:?}"))),
            }
        }
        let (user, hostport) = authority
            .rsplit_once('@')
            .ok_or_else(|| usage(url, "no user name (USER@HOST)"))?;
        if user.contains(':') {
            return Err(usage(
                url,
                "a password in the URL is refused: use MAILFERRY_SOURCE_PASSWORD / MAILFERRY_TARGET_PASSWORD, a password file or an OAuth2 command",
            ));
        }
        let user = percent_decode(user, url)?;
        if user.is_empty() {
            return Err(usage(url, "empty user name"));
        }
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| usage(url, "unclosed [ in an IPv6 address"))?;
            (h.to_string(), after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(usage(url, "no host"));
        }
        let port = match port {
            Some(p) => p.parse().map_err(|_| usage(url, "bad port"))?,
            None => default_port,
        };
        Ok(Endpoint::Imap {
            security,
            user,
            host,
            port,
        })
    }
}

impl fmt::Display for Endpoint {
    /// The URL form without secrets (there never are any), for messages and state names.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Imap {
                security,
                user,
                host,
                port,
            } => {
                let scheme = if *security == ImapSecurity::Tls {
                    "imaps"
                } else {
                    "imap"
                };
                let user = user.replace('%', "%25").replace('@', "%40");
                let host = if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host.clone()
                };
                write!(f, "{scheme}://{user}@{host}:{port}")?;
                if *security == ImapSecurity::Plaintext {
                    f.write_str("?tls=none")?;
                }
                Ok(())
            }
            Endpoint::Maildir { path, layout } => {
                write!(f, "maildir:{}", path.display())?;
                if let Some(l) = layout {
                    write!(f, "?layout={l}")?;
                }
                Ok(())
            }
            Endpoint::Mbox { path } => write!(f, "mbox:{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_scheme() {
        assert_eq!(
            Endpoint::parse("imaps://alice%40example.org@mail.example.org").expect("imaps"),
            Endpoint::Imap {
                security: ImapSecurity::Tls,
                user: "alice@example.org".into(),
                host: "mail.example.org".into(),
                port: 993
            }
        );
        assert_eq!(
            Endpoint::parse("imap://bob@127.0.0.1:1143?tls=none").expect("plain"),
            Endpoint::Imap {
                security: ImapSecurity::Plaintext,
                user: "bob".into(),
                host: "127.0.0.1".into(),
                port: 1143
            }
        );
        assert!(matches!(
            Endpoint::parse("imap://bob@[::1]:10143").expect("v6"),
            Endpoint::Imap { ref host, port: 10143, security: ImapSecurity::StartTls, .. } if host == "::1"
        ));
        assert_eq!(
            Endpoint::parse("maildir:/srv/mail?layout=fs").expect("maildir"),
            Endpoint::Maildir {
                path: "/srv/mail".into(),
                layout: Some("fs".into())
            }
        );
        assert_eq!(
            Endpoint::parse("mbox:export.mbox.gz").expect("mbox"),
            Endpoint::Mbox {
                path: "export.mbox.gz".into()
            }
        );
    }

    #[test]
    fn refuses_passwords_and_nonsense_with_a_reason() {
        let e = Endpoint::parse("imaps://alice:hunter2@host").expect_err("password");
        assert!(e.to_string().contains("MAILFERRY_SOURCE_PASSWORD"));
        assert!(!e.to_string().contains("hunter2"), "{e}");
        for bad in [
            "ftp://x",
            "imaps://host",
            "imaps://a@host:99999",
            "maildir:",
            "imaps://a@h?tls=none",
            "maildir:x?layout=weird",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn display_round_trips() {
        for url in [
            "imaps://alice%40example.org@mail.example.org:993",
            "imap://bob@127.0.0.1:1143?tls=none",
            "maildir:/a/b?layout=fs",
            "mbox:x.mbox",
        ] {
            let e = Endpoint::parse(url).expect("parse");
            assert_eq!(e.to_string(), url);
            assert_eq!(Endpoint::parse(&e.to_string()).expect("again"), e);
        }
    }
}
