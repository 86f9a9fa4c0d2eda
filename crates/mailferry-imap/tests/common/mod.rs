//! Shared setup for the tests against a real server (Dovecot or Cyrus): start an instance,
//! connect a store.

#![allow(dead_code)]

pub mod raw;

use std::sync::Arc;

use mailferry_imap::{Auth, ImapConfig, ImapStore, Security};
use mailferry_testkit::conformance::Backend;
use mailferry_testkit::{Cyrus, CyrusOptions, Dovecot, DovecotOptions, ImapServer};

/// Starts a Dovecot with `delimiter` and `extra_config`.
pub fn dovecot(delimiter: char, extra_config: &str) -> Dovecot {
    Dovecot::start(DovecotOptions {
        delimiter,
        extra_config: extra_config.to_string(),
        ..DovecotOptions::default()
    })
    .expect("start dovecot")
}

/// A config for the instance's first user over implicit TLS, trusting its CA.
pub fn config(d: &(impl ImapServer + ?Sized)) -> ImapConfig {
    let (user, password) = d.login();
    ImapConfig::new(
        d.host(),
        d.imaps_port(),
        Security::Tls,
        Auth::Login {
            user: user.to_string(),
            password: password.into(),
        },
    )
    .with_ca_file(d.ca_pem_path())
}

/// Connects a store to the instance.
pub async fn store(d: &(impl ImapServer + ?Sized)) -> ImapStore {
    ImapStore::connect(config(d)).await.expect("connect")
}

/// A conformance backend on a fresh Dovecot. Without Dovecot (outside CI) the suite cannot be
/// skipped from inside the macro, so the test binary exits early after a note.
pub async fn backend(delimiter: char) -> Backend {
    if !mailferry_testkit::require_dovecot() {
        std::process::exit(0);
    }
    let d = dovecot(delimiter, "");
    let store = Arc::new(store(&d).await);
    Backend {
        source: store.clone(),
        target: store,
        guard: Box::new(d),
    }
}

/// A conformance backend on a fresh Cyrus: `'.'` with folders under `INBOX.` (Debian's
/// default), or `'/'` with top-level folders. Cyrus's default 8-bit header rewrite is turned off
/// here, because the suite checks that *we* keep every byte; the rewrite itself is covered by
/// `copy_between_servers` and the rewrite check.
pub async fn cyrus_backend(delimiter: char) -> Backend {
    if !mailferry_testkit::require_cyrus() {
        std::process::exit(0);
    }
    let c = Cyrus::start(CyrusOptions {
        delimiter,
        alt_namespace: delimiter == '/',
        keep_8bit_headers: true,
        ..CyrusOptions::default()
    })
    .expect("start cyrus");
    let store = Arc::new(store(&c).await);
    Backend {
        source: store.clone(),
        target: store,
        guard: Box::new(c),
    }
}
