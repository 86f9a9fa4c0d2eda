//! The byte stream under a session: TCP, TLS (rustls with the `ring` provider) or either wrapped
//! in COMPRESS=DEFLATE, as one enum so a pool holds one session type whatever the server
//! negotiated. Every layer sits behind a `BufWriter`: async-imap writes a command as several small
//! writes (tag, space, line, CRLF) and each would otherwise become its own TLS record or segment.
//!
//! Certificates are verified against the webpki roots plus an optional CA file; a verification
//! failure is reported as fatal with the advice to pass a CA file, because retrying cannot help.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_imap::DeflateStream;
use mailferry_core::{Error, Result};
use tokio::io::{AsyncRead, AsyncWrite, BufReader, BufWriter, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{CryptoProvider, ring};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{self, ClientConfig, DigitallySignedStruct, RootCertStore};

use crate::config::ImapConfig;
use crate::wire::Tracer;

/// The stream a session talks over.
pub(crate) enum Transport {
    /// Plain TCP.
    Plain(Box<BufWriter<TcpStream>>),
    /// TLS over TCP.
    Tls(Box<BufWriter<TlsStream<BufReader<TcpStream>>>>),
    /// DEFLATE over one of the others.
    Deflate(Box<BufWriter<DeflateStream<Transport>>>),
    /// One of the others, with its IMAP traffic traced (see [`crate::wire`]).
    Traced(Box<Traced>),
}

/// A transport whose bytes are traced. Without a tracer (moved outward by
/// [`Transport::compress`]) it passes bytes through.
pub(crate) struct Traced {
    inner: Transport,
    tracer: Option<Tracer>,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Plain(_) => "Transport::Plain",
            Transport::Tls(_) => "Transport::Tls",
            Transport::Deflate(_) => "Transport::Deflate",
            Transport::Traced(_) => "Transport::Traced",
        })
    }
}

impl Transport {
    /// Whether the bytes on the wire are encrypted.
    pub(crate) fn is_tls(&self) -> bool {
        match self {
            Transport::Plain(_) => false,
            Transport::Tls(_) => true,
            Transport::Deflate(inner) => inner.get_ref().get_ref().is_tls(),
            Transport::Traced(t) => t.inner.is_tls(),
        }
    }

    /// `self` traced by `tracer` (or unchanged without one).
    pub(crate) fn traced(self, tracer: Option<Tracer>) -> Transport {
        match tracer {
            Some(tracer) => Transport::Traced(Box::new(Traced {
                inner: self,
                tracer: Some(tracer),
            })),
            None => self,
        }
    }

    /// The plain TCP stream under an unencrypted transport (for STARTTLS), and its tracer.
    pub(crate) fn into_plain(self) -> Option<(Box<BufWriter<TcpStream>>, Option<Tracer>)> {
        match self {
            Transport::Plain(p) => Some((p, None)),
            Transport::Traced(t) => {
                let Traced { inner, tracer } = *t;
                let (plain, inner_tracer) = inner.into_plain()?;
                Some((plain, tracer.or(inner_tracer)))
            }
            _ => None,
        }
    }

    /// What COMPRESS=DEFLATE makes of the stream: DEFLATE over it, with the tracer (if any)
    /// moved above the compression, where the bytes are IMAP.
    pub(crate) fn compress(mut stream: DeflateStream<Transport>) -> Transport {
        let tracer = match stream.get_mut() {
            Transport::Traced(t) => t.tracer.take(),
            _ => None,
        };
        Transport::Deflate(Box::new(BufWriter::new(stream))).traced(tracer)
    }
}

macro_rules! each {
    ($self:expr, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Transport::Plain($s) => $e,
            Transport::Tls($s) => $e,
            Transport::Deflate($s) => $e,
            Transport::Traced($s) => $e,
        }
    };
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(&mut **s).poll_read(cx, buf))
    }
}

impl AsyncRead for Traced {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let (Poll::Ready(Ok(())), Some(tracer)) = (&polled, this.tracer.as_mut()) {
            tracer.server(&buf.filled()[before..]);
        }
        polled
    }
}

impl AsyncWrite for Traced {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let (Poll::Ready(Ok(n)), Some(tracer)) = (&polled, this.tracer.as_mut()) {
            tracer.client(&buf[..*n]);
        }
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => Pin::new(&mut **s).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(&mut **s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(&mut **s).poll_shutdown(cx))
    }
}

/// Opens the TCP connection (transient errors: refused, reset, unreachable, timeout).
pub(crate) async fn tcp(config: &ImapConfig) -> Result<TcpStream> {
    let label = config.label();
    let stream = tokio::time::timeout(
        config.connect_timeout,
        TcpStream::connect((config.host.as_str(), config.port)),
    )
    .await
    .map_err(|_| {
        Error::transient(format!(
            "{label}: no TCP connection within {:?}",
            config.connect_timeout
        ))
    })?
    .map_err(|e| {
        // A host that does not resolve is as transient as one that refuses: DNS and servers
        // come back. The retry budget keeps a typo from looping forever.
        Error::io(
            mailferry_core::ErrorKind::Transient,
            format!("{label}: cannot connect"),
            e,
        )
    })?;
    // Commands are small and latency-bound: do not let Nagle hold them back.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Runs the TLS handshake over `tcp`.
pub(crate) async fn tls(
    config: &ImapConfig,
    tls: &TlsConnector,
    tcp: TcpStream,
) -> Result<TlsStream<BufReader<TcpStream>>> {
    let label = config.label();
    let name = ServerName::try_from(config.host.clone()).map_err(|e| {
        Error::fatal(format!(
            "{label}: {:?} is not a valid TLS server name: {e}",
            config.host
        ))
    })?;
    let handshake = tokio::time::timeout(
        config.connect_timeout,
        tls.connect(name, BufReader::with_capacity(64 * 1024, tcp)),
    )
    .await
    .map_err(|_| {
        Error::transient(format!(
            "{label}: no TLS handshake within {:?}",
            config.connect_timeout
        ))
    })?;
    handshake.map_err(|e| tls_error(config, e))
}

/// Certificate problems are fatal with advice; anything else is a transient I/O error.
fn tls_error(config: &ImapConfig, err: io::Error) -> Error {
    let label = config.label();
    let rustls_error = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_error {
        Some(rustls::Error::InvalidCertificate(why)) => Error::fatal(format!(
            "{label}: TLS certificate not trusted ({why:?}); if the server uses a private CA, \
             pass its certificate with --ca-file (or, for a test server only, --insecure)"
        )),
        Some(other) => Error::fatal(format!("{label}: TLS handshake failed: {other}")),
        None => Error::io(
            mailferry_core::ErrorKind::Transient,
            format!("{label}: TLS handshake failed"),
            err,
        ),
    }
}

/// The rustls client config: webpki roots + the CA file, or no verification when `insecure`.
pub(crate) fn connector(config: &ImapConfig) -> Result<TlsConnector> {
    let provider = Arc::new(ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::fatal(format!("TLS setup failed: {e}")))?;
    let client = if config.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                Error::fatal(format!("cannot read the CA file {}: {e}", path.display()))
            })?;
            let mut added = 0;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| {
                    Error::fatal(format!(
                        "the CA file {} is not valid PEM: {e}",
                        path.display()
                    ))
                })?;
                roots.add(cert).map_err(|e| {
                    Error::fatal(format!(
                        "the CA file {} holds an unusable certificate: {e}",
                        path.display()
                    ))
                })?;
                added += 1;
            }
            if added == 0 {
                return Err(Error::fatal(format!(
                    "the CA file {} holds no PEM certificate",
                    path.display()
                )));
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(TlsConnector::from(Arc::new(client)))
}

/// The `insecure` switch: accepts any certificate but still checks handshake signatures, so the
/// session is at least bound to the key the server presented.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
