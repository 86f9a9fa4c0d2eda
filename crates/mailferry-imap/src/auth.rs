//! SASL payloads for AUTHENTICATE (PLAIN, XOAUTH2, OAUTHBEARER) and the mapping of a refused
//! login to a fatal, actionable error. A refused login never retries: repeating wrong credentials
//! only gets the account locked. A login the server could not check *now* — `NO [UNAVAILABLE]`
//! (RFC 5530), which Dovecot sends as "Temporary authentication failure" while its auth process
//! restarts — says nothing about the credentials and is transient: the connection is retried.

use async_imap::Authenticator;
use mailferry_core::{Error, ErrorKind};

/// A one-shot SASL client: the first challenge gets the payload; any later one (a server's error
/// details for XOAUTH2/OAUTHBEARER) gets an empty response, which ends the exchange with a NO.
pub(crate) struct Sasl {
    payload: Option<Vec<u8>>,
}

impl Sasl {
    /// `\0user\0password` (RFC 4616).
    pub(crate) fn plain(user: &str, password: &str) -> Self {
        Self::with(format!("\0{user}\0{password}"))
    }

    /// Google/Microsoft XOAUTH2.
    pub(crate) fn xoauth2(user: &str, token: &str) -> Self {
        Self::with(format!("user={user}\x01auth=Bearer {token}\x01\x01"))
    }

    /// RFC 7628 OAUTHBEARER.
    pub(crate) fn oauthbearer(user: &str, host: &str, port: u16, token: &str) -> Self {
        Self::with(format!(
            "n,a={},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01",
            user.replace('=', "=3D").replace(',', "=2C")
        ))
    }

    fn with(payload: String) -> Self {
        Sasl {
            payload: Some(payload.into_bytes()),
        }
    }
}

impl Authenticator for Sasl {
    type Response = Vec<u8>;

    fn process(&mut self, _challenge: &[u8]) -> Vec<u8> {
        self.payload.take().unwrap_or_default()
    }
}

/// Why a login did not complete.
pub(crate) enum LoginFailure {
    /// The server or the connection.
    Imap(async_imap::error::Error),
    /// The token provider.
    Token(Error),
}

/// Response codes with which a server refuses a login for a reason other than the credentials.
const TEMPORARY_CODES: [&str; 2] = ["[UNAVAILABLE]", "[INUSE]"];

/// A refused login is fatal and names the account; a server that cannot log anyone in right
/// now, or a lost connection, is transient.
pub(crate) fn login_error(label: &str, failure: LoginFailure) -> Error {
    use async_imap::error::Error as E;
    match failure {
        LoginFailure::Token(e) => e.context(format!("{label}: getting an OAuth token")),
        // async-imap passes unknown codes on in the text ("code: None, info: Some(\"[UNAVAILABLE] …").
        LoginFailure::Imap(E::No(why)) if TEMPORARY_CODES.iter().any(|c| why.contains(c)) => {
            Error::transient(format!(
                "{label}: the server cannot log in now ({why}); this is not about the credentials"
            ))
        }
        LoginFailure::Imap(E::No(why) | E::Bad(why)) => Error::fatal(format!(
            "{label}: authentication failed ({why}); check the user name and the password or token"
        ))
        .with_domain(mailferry_core::ErrorDomain::Auth),
        LoginFailure::Imap(E::Io(io)) => {
            Error::io(ErrorKind::Transient, format!("{label}: logging in"), io)
        }
        LoginFailure::Imap(E::ConnectionLost) => {
            Error::transient(format!("{label}: connection lost while logging in"))
        }
        LoginFailure::Imap(other) => Error::fatal(format!("{label}: logging in failed: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sasl_sends_the_payload_once_then_ends_the_exchange() {
        let mut s = Sasl::xoauth2("ann@example.org", "tok");
        assert_eq!(
            s.process(b""),
            b"user=ann@example.org\x01auth=Bearer tok\x01\x01".to_vec()
        );
        assert!(s.process(b"{\"status\":\"401\"}").is_empty());
        let mut p = Sasl::plain("ann", "pw");
        assert_eq!(p.process(b""), b"\0ann\0pw".to_vec());
        let mut o = Sasl::oauthbearer("a,b=c", "h", 993, "t");
        assert_eq!(
            o.process(b""),
            b"n,a=a=2Cb=3Dc,\x01host=h\x01port=993\x01auth=Bearer t\x01\x01".to_vec()
        );
    }

    #[test]
    fn a_refused_login_is_fatal_and_names_the_account() {
        let e = login_error(
            "ann@imap.example.org:993",
            LoginFailure::Imap(async_imap::error::Error::No(
                "[AUTHENTICATIONFAILED] Authentication failed.".into(),
            )),
        );
        assert!(e.is_fatal());
        assert!(e.to_string().contains("ann@imap.example.org:993"), "{e}");
        let lost = login_error(
            "a@b:1",
            LoginFailure::Imap(async_imap::error::Error::ConnectionLost),
        );
        assert!(lost.is_transient());
    }

    #[test]
    fn a_login_the_server_cannot_check_now_is_transient() {
        // As async-imap formats Dovecot's answer while its auth process restarts.
        let e = login_error(
            "ann@imap.example.org:993",
            LoginFailure::Imap(async_imap::error::Error::No(
                "code: None, info: Some(\"[UNAVAILABLE] Temporary authentication failure.\")"
                    .into(),
            )),
        );
        assert!(e.is_transient(), "{e}");
        assert!(e.to_string().contains("ann@imap.example.org:993"), "{e}");
        let bad = login_error(
            "a@b:1",
            LoginFailure::Imap(async_imap::error::Error::Bad(
                "code: None, info: Some(\"[UNAVAILABLE] x\")".into(),
            )),
        );
        assert!(
            bad.is_fatal(),
            "a BAD is a protocol error, not a busy server"
        );
    }
}
