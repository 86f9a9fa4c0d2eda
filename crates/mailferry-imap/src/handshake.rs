//! The steps before a session is usable, each bounded by the configured timeout: STARTTLS
//! (never falling back to plaintext), login (LOGIN or AUTHENTICATE, see [`crate::auth`]) and
//! NAMESPACE. imap-proto cannot parse a NAMESPACE answer — a parse error would kill the
//! session's response stream — so it is asked right after login, while async-imap's read buffer
//! is empty, and its answer is read straight from the transport and parsed by
//! [`crate::proto::parse_namespace`].

use std::time::Duration;

use async_imap::imap_proto::{Response, Status};
use mailferry_core::{Error, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio_rustls::TlsConnector;

use crate::auth::{self, LoginFailure, Sasl};
use crate::config::{Auth, ImapConfig};
use crate::conn::{Session, io_error};
use crate::proto::{Namespaces, parse_namespace};
use crate::transport::{self, Transport};

/// Maps an async-imap error (from login, AUTHENTICATE or COMPRESS).
pub(crate) fn imap_error(label: &str, doing: &str, e: async_imap::error::Error) -> Error {
    use async_imap::error::Error as E;
    match e {
        E::Io(io) => io_error(label, doing, io),
        E::ConnectionLost => Error::transient(format!("{label}: connection lost during {doing}")),
        other => Error::fatal(format!("{label}: {doing} failed: {other}")),
    }
}

/// Upgrades with STARTTLS. A refusal is fatal: we never go on in plaintext.
pub(crate) async fn starttls(
    config: &ImapConfig,
    tls: Option<&TlsConnector>,
    mut client: async_imap::Client<Transport>,
) -> Result<async_imap::Client<Transport>> {
    let label = config.label();
    let tls = tls.ok_or_else(|| Error::fatal(format!("{label}: STARTTLS without a TLS setup")))?;
    let stream = client.get_mut();
    let write = async {
        stream.write_all(b"mfs STARTTLS\r\n").await?;
        stream.flush().await
    };
    tokio::time::timeout(config.read_timeout, write)
        .await
        .map_err(|_| Error::transient(format!("{label}: STARTTLS write timed out")))?
        .map_err(|e| io_error(&label, "sending STARTTLS", e))?;
    loop {
        let resp = tokio::time::timeout(config.read_timeout, client.read_response())
            .await
            .map_err(|_| Error::transient(format!("{label}: no answer to STARTTLS")))?
            .map_err(|e| io_error(&label, "reading the STARTTLS answer", e))?
            .ok_or_else(|| Error::transient(format!("{label}: closed during STARTTLS")))?;
        if let Response::Done {
            tag,
            status,
            outcome,
        } = resp.parsed()
            && tag.0 == "mfs"
        {
            if *status != Status::Ok {
                return Err(Error::fatal(format!(
                    "{label}: the server refused STARTTLS ({}); not continuing without encryption",
                    outcome.information.as_deref().unwrap_or("")
                )));
            }
            break;
        }
    }
    // Anything the server sent before the handshake is discarded with the old client
    // (RFC 3501: no plaintext data may leak into the TLS session).
    let Some((plain, tracer)) = client.into_inner().into_plain() else {
        return Err(Error::fatal(format!(
            "{label}: STARTTLS on an encrypted stream"
        )));
    };
    let tcp = plain.into_inner();
    let stream = transport::tls(config, tls, tcp).await?;
    Ok(async_imap::Client::new(
        Transport::Tls(Box::new(BufWriter::new(stream))).traced(tracer),
    ))
}

pub(crate) async fn login(
    config: &ImapConfig,
    client: async_imap::Client<Transport>,
) -> Result<Session> {
    let label = config.label();
    let attempt = async {
        let imap = |(e, _)| LoginFailure::Imap(e);
        match &config.auth {
            Auth::Login { user, password } => {
                client.login(user, password.expose()).await.map_err(imap)
            }
            Auth::Plain { user, password } => client
                .authenticate("PLAIN", Sasl::plain(user, password.expose()))
                .await
                .map_err(imap),
            Auth::XOAuth2 { user, tokens } => {
                let token = tokens.token().await.map_err(LoginFailure::Token)?;
                client
                    .authenticate("XOAUTH2", Sasl::xoauth2(user, &token))
                    .await
                    .map_err(imap)
            }
            Auth::OAuthBearer { user, tokens } => {
                let token = tokens.token().await.map_err(LoginFailure::Token)?;
                let sasl = Sasl::oauthbearer(user, &config.host, config.port, &token);
                client.authenticate("OAUTHBEARER", sasl).await.map_err(imap)
            }
        }
    };
    let result = tokio::time::timeout(config.read_timeout, attempt)
        .await
        .map_err(|_| Error::transient(format!("{label}: no answer to the login")))?;
    result.map_err(|e| auth::login_error(&label, e))
}

/// Asks NAMESPACE and reads the answer from the transport (see the module docs).
pub(crate) async fn namespace(
    session: &mut Session,
    label: &str,
    timeout: Duration,
) -> Result<Option<Namespaces>> {
    let stream = session.get_mut();
    let exchange = async {
        stream.write_all(b"mfns NAMESPACE\r\n").await?;
        stream.flush().await?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "closed while answering NAMESPACE",
                ));
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.len() > 1 << 20 {
                return Err(std::io::Error::other("NAMESPACE answer too long"));
            }
            let complete = buf.ends_with(b"\r\n")
                && buf
                    .split(|&b| b == b'\n')
                    .any(|line| line.starts_with(b"mfns "));
            if complete {
                return Ok(buf);
            }
        }
    };
    let buf = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| Error::transient(format!("{label}: no answer to NAMESPACE")))?
        .map_err(|e| io_error(label, "asking NAMESPACE", e))?;
    Ok(buf
        .split(|&b| b == b'\n')
        .find_map(|line| parse_namespace(line.strip_suffix(b"\r").unwrap_or(line))))
}
