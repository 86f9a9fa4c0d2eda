//! Where secrets come from, in order: a password file, an OAuth2 command, the environment
//! variable (`MAILFERRY_SOURCE_PASSWORD` / `MAILFERRY_TARGET_PASSWORD`), a prompt on a terminal.
//! Never from argv or a URL. Secrets are wrapped so `Debug` never prints them.

use std::fmt;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use mailferry::access::TokenCommand;

/// A password that does not print itself.
#[derive(Clone)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Which side an endpoint is on, for messages and variable names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The source.
    Source,
    /// The target.
    Target,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Source => "source",
            Side::Target => "target",
        }
    }

    pub fn env_var(self) -> &'static str {
        match self {
            Side::Source => "MAILFERRY_SOURCE_PASSWORD",
            Side::Target => "MAILFERRY_TARGET_PASSWORD",
        }
    }
}

/// How one side authenticates, as configured (resolved lazily, only for IMAP endpoints).
#[derive(Debug, Clone, Default)]
pub struct SecretSpec {
    pub password_file: Option<PathBuf>,
    pub oauth2_command: Option<String>,
    /// Name of an environment variable holding the password (plans use per-mailbox names).
    pub password_env: Option<String>,
}

/// A resolved credential.
pub enum Credential {
    Password(Secret),
    OAuth2(Arc<TokenCommand>),
}

fn read_password_file(path: &Path) -> anyhow::Result<Secret> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the password file {}", path.display()))?;
    let password = text.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        bail!("the password file {} is empty", path.display());
    }
    Ok(Secret(password))
}

impl SecretSpec {
    /// Resolves the credential for `side` of `what` (an endpoint, for the prompt).
    pub fn resolve(&self, side: Side, what: &str) -> anyhow::Result<Credential> {
        if let Some(path) = &self.password_file {
            return Ok(Credential::Password(read_password_file(path)?));
        }
        if let Some(command) = &self.oauth2_command {
            return Ok(Credential::OAuth2(Arc::new(TokenCommand::new(
                command.clone(),
            ))));
        }
        let var = self.password_env.as_deref().unwrap_or(side.env_var());
        if let Ok(p) = std::env::var(var)
            && !p.is_empty()
        {
            return Ok(Credential::Password(Secret(p)));
        }
        if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
            let p = rpassword::prompt_password(format!("Password for {what} ({}): ", side.name()))
                .context("reading the password from the terminal")?;
            return Ok(Credential::Password(Secret(p)));
        }
        bail!(
            "no password for the {} {what}: set {var}, or pass --{}-password-file or --{}-oauth2-command",
            side.name(),
            side.name(),
            side.name()
        )
    }
}
