//! Imports an mbox file into an IMAP account: `Mbox` as the source, `ImapStore` as the target
//! (MULTIAPPEND with LITERAL+ where the server offers it). It imports the README's sample mbox
//! (or the file given as the first argument) into a throwaway Dovecot over implicit TLS.
//! `cargo run -p mailferry-examples --example mbox_import [FILE.mbox]`

use std::sync::Arc;

use anyhow::{Context, ensure};
use mailferry::core::MemoryState;
use mailferry::imap::{Auth, ImapConfig, ImapStore, Security};
use mailferry::mbox::Mbox;
use mailferry::{Copier, CopyOptions};
use mailferry_testkit::dovecot::{Dovecot, DovecotOptions, require_dovecot};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if !require_dovecot() {
        return Ok(());
    }
    let file = std::env::args()
        .nth(1)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/data/sample.mbox").to_string());
    let server = Dovecot::start(DovecotOptions::default()).context("starting Dovecot")?;
    let (user, password) = server.login();
    let config = ImapConfig::new(
        server.host(),
        server.imaps_port(),
        Security::Tls,
        Auth::Plain {
            user: user.into(),
            password: password.into(),
        },
    )
    .with_ca_file(server.ca_pem_path());
    let target = Arc::new(ImapStore::connect(config).await?);
    println!("server offers: {}", target.server_capabilities().join(" "));
    let copier = Copier::new(
        Arc::new(Mbox::open(&file)?),
        target,
        Arc::new(MemoryState::new()),
        CopyOptions::default(),
    );
    let report = copier.run(copier.identity_plan().await?).await?;
    println!("{}", serde_json::to_string_pretty(&report.totals)?);
    ensure!(
        report.is_success() && report.totals.copied > 0,
        "the import failed: {report:#?}"
    );
    println!(
        "imported {} messages from {file} at {:.0} msgs/s",
        report.totals.copied, report.items_per_sec
    );
    Ok(())
}
