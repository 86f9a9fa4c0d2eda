//! Opening endpoints: from an [`Endpoint`] and [`Access`] settings to a [`Store`] — the same
//! backend seen as a source and as a target. Also the small file helpers the command line uses
//! for private files (state, reports).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use crate::core::{BoxFuture, Error, Result, Source, Target};
use crate::endpoint::Endpoint;

/// An OAuth2 access token source that runs a command (through `sh -c`) and reads the token from
/// its standard output; run again whenever a new connection needs a token.
pub struct TokenCommand {
    command: String,
}

impl TokenCommand {
    /// A provider running `command`.
    pub fn new(command: String) -> Self {
        TokenCommand { command }
    }

    /// Runs the command once.
    pub fn fetch(&self) -> Result<String> {
        let output = Command::new("sh")
            .arg("-c")
            .arg(&self.command)
            .output()
            .map_err(|e| Error::fatal("cannot run the OAuth2 token command").with_source(e))?;
        if !output.status.success() {
            return Err(Error::fatal(format!(
                "the OAuth2 token command failed ({}); its error output is not shown as it may hold secrets",
                output.status
            )));
        }
        let token = String::from_utf8(output.stdout)
            .map_err(|_| {
                Error::fatal("the OAuth2 token command printed something that is not UTF-8")
            })?
            .trim()
            .to_string();
        if token.is_empty() {
            return Err(Error::fatal("the OAuth2 token command printed no token"));
        }
        Ok(token)
    }
}

impl std::fmt::Debug for TokenCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCommand(..)")
    }
}

#[cfg(feature = "imap")]
impl mailferry_imap::TokenProvider for TokenCommand {
    fn token(&self) -> BoxFuture<'_, Result<String>> {
        Box::pin(async move {
            let command = TokenCommand::new(self.command.clone());
            tokio::task::spawn_blocking(move || command.fetch())
                .await
                .map_err(|e| {
                    Error::fatal(format!("the OAuth2 token command did not finish: {e}"))
                })?
        })
    }
}

/// How to authenticate to an IMAP endpoint.
#[derive(Clone, Default)]
pub enum Credentials {
    /// Local stores need none.
    #[default]
    None,
    /// A password (LOGIN / AUTHENTICATE PLAIN).
    Password(String),
    /// OAuth2 access tokens from a command (XOAUTH2).
    OAuth2(Arc<TokenCommand>),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credentials::None => "None",
            Credentials::Password(_) => "Password(***)",
            Credentials::OAuth2(_) => "OAuth2(..)",
        })
    }
}

/// Connection settings for opening an endpoint.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Credentials (IMAP only).
    pub credentials: Credentials,
    /// A PEM file of CA certificates to trust as well.
    pub ca_file: Option<PathBuf>,
    /// Skip TLS certificate verification (tests only).
    pub insecure: bool,
    /// IMAP sessions at most.
    pub connections: usize,
    /// Trace every IMAP session's traffic here (redacted; see `mailferry_imap::wire`). `None`:
    /// the default, `TRACE` events of target `mailferry_imap::wire`.
    #[cfg(feature = "imap")]
    pub wire_trace: Option<mailferry_imap::WireTrace>,
}

/// An opened endpoint, usable as a source and as a target.
#[derive(Clone)]
pub struct Store {
    /// As a source.
    pub source: Arc<dyn Source>,
    /// As a target.
    pub target: Arc<dyn Target>,
}

fn both<T: Source + Target + 'static>(store: T) -> Store {
    let store = Arc::new(store);
    Store {
        source: store.clone(),
        target: store,
    }
}

/// Opens an endpoint. `for_target`: a local store may be created (it must exist otherwise).
pub async fn open(endpoint: &Endpoint, access: &Access, for_target: bool) -> Result<Store> {
    match endpoint {
        #[cfg(feature = "maildir")]
        Endpoint::Maildir { path, layout } => {
            if !for_target && !path.is_dir() {
                return Err(Error::fatal(format!(
                    "{} is not a directory: a Maildir source must exist",
                    path.display()
                )));
            }
            let layout = match layout.as_deref() {
                Some("fs") => Some(mailferry_maildir::Layout::Fs),
                Some(_) => Some(mailferry_maildir::Layout::MaildirPlusPlus),
                None => None,
            };
            let options = mailferry_maildir::MaildirOptions {
                layout,
                ..Default::default()
            };
            let store = if for_target {
                mailferry_maildir::Maildir::create(path.clone(), options)?
            } else {
                mailferry_maildir::Maildir::open(path.clone(), options)?
            };
            Ok(both(store))
        }
        #[cfg(feature = "mbox")]
        Endpoint::Mbox { path } => {
            if !for_target && !path.exists() {
                return Err(Error::fatal(format!(
                    "{} does not exist: an mbox source must be a file or a directory",
                    path.display()
                )));
            }
            Ok(both(mailferry_mbox::Mbox::open(path.clone())?))
        }
        #[cfg(feature = "imap")]
        Endpoint::Imap {
            security,
            user,
            host,
            port,
        } => {
            use mailferry_imap::{Auth, ImapConfig, ImapStore, Secret, Security};
            let auth = match &access.credentials {
                Credentials::Password(p) => Auth::Login {
                    user: user.clone(),
                    password: Secret::new(p.clone()),
                },
                Credentials::OAuth2(cmd) => Auth::XOAuth2 {
                    user: user.clone(),
                    tokens: cmd.clone(),
                },
                Credentials::None => {
                    return Err(Error::fatal(format!("no credentials for {endpoint}")));
                }
            };
            let security = match security {
                crate::endpoint::ImapSecurity::Tls => Security::Tls,
                crate::endpoint::ImapSecurity::StartTls => Security::StartTls,
                crate::endpoint::ImapSecurity::Plaintext => Security::Plaintext,
            };
            let mut config = ImapConfig::new(host.clone(), *port, security, auth)
                .with_max_connections(access.connections.max(1));
            config.insecure = access.insecure;
            config.ca_file = access.ca_file.clone();
            if let Some(trace) = &access.wire_trace {
                config = config.with_wire_trace(trace.clone());
            }
            Ok(both(ImapStore::connect(config).await?))
        }
        #[allow(unreachable_patterns)]
        other => Err(Error::fatal(format!(
            "{other}: this build of mailferry has no backend for it (enable its feature)"
        ))),
    }
}

/// Creates a directory (and parents) readable only by the user.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Writes a file readable only by the user (replacing it if it exists).
pub fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
