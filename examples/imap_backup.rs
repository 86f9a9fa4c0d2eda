//! Backs up an IMAP account to a Maildir tree with the library's runner: `ImapStore` as the
//! source, `Maildir` as the target, a SQLite state so a second run copies nothing, then a
//! read-back verification. [`Migration`] maps folders the way the command line does (special-use
//! roles to the target's own folders, rename rules), retries idempotent calls and traces them. It starts a throwaway Dovecot (from the testkit) filled with generated mail,
//! connects over STARTTLS trusting that instance's CA, and backs it up into a temp dir.
//! `cargo run -p mailferry-examples --example imap_backup`

use std::sync::Arc;

use anyhow::{Context, ensure};
use mailferry::core::FolderPath;
use mailferry::imap::{Auth, ImapConfig, ImapStore, Security};
use mailferry::maildir::{Maildir, MaildirOptions};
use mailferry::state::SqliteState;
use mailferry::{Migration, MigrationOptions};
use mailferry_testkit::corpus::{CorpusSpec, SizeMix};
use mailferry_testkit::dovecot::{Dovecot, DovecotOptions, require_dovecot};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if !require_dovecot() {
        return Ok(());
    }
    let server = Dovecot::start(DovecotOptions::default()).context("starting Dovecot")?;
    let (user, password) = server.login();
    let folders = vec![
        FolderPath::inbox(),
        FolderPath::new(["Archive", "2024"]),
        FolderPath::new(["Sent"]),
    ];
    let filled = server.fill(
        user,
        CorpusSpec::new(500, SizeMix::small())
            .with_quirks()
            .in_folders(folders)
            .generate(),
    )?;

    let config = ImapConfig::new(
        server.host(),
        server.imap_port(),
        Security::StartTls,
        Auth::Login {
            user: user.into(),
            password: password.into(),
        },
    )
    .with_ca_file(server.ca_pem_path());
    let source = Arc::new(ImapStore::connect(config).await?);
    let dir = tempfile::tempdir()?;
    let target = Arc::new(Maildir::create(
        dir.path().join("backup"),
        MaildirOptions::default(),
    )?);
    let state = Arc::new(SqliteState::open(dir.path().join("state.sqlite"))?);

    // Verification reads both sides back and compares checksums.
    let options = MigrationOptions {
        read_back: true,
        ..MigrationOptions::default()
    };
    let migration = Migration::new("alice backup", source, target, state, options)?;
    for pass in 1..=2 {
        let report = migration.copy().await?;
        println!(
            "pass {pass}: {} copied, {} already there, {} failed in {:.2} s",
            report.totals.copied,
            report.totals.already_copied,
            report.totals.failed,
            report.duration_secs
        );
        ensure!(report.is_success(), "the backup failed: {report:#?}");
        ensure!(report.totals.copied == if pass == 1 { filled } else { 0 });
    }
    let verification = migration.verify().await?;
    ensure!(
        verification.is_match(),
        "the backup differs: {verification:#?}"
    );
    println!(
        "backup of {filled} messages verified byte for byte in {}",
        dir.path().display()
    );
    Ok(())
}
