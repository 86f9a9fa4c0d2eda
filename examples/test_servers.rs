//! Starts two throwaway Dovecot servers for trying the command by hand: a source filled with
//! generated mail and an empty target, both on 127.0.0.1 with STARTTLS and their own CA. Prints
//! the lines to paste into a shell, then waits for Ctrl-C (the servers and their files go away).
//! `cargo run -p mailferry-examples --example test_servers [COUNT]`

use anyhow::Context;
use mailferry::core::FolderPath;
use mailferry_testkit::corpus::{CorpusSpec, SizeMix};
use mailferry_testkit::dovecot::{Dovecot, DovecotOptions, require_dovecot};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if !require_dovecot() {
        anyhow::bail!("Dovecot is not installed: run `bash scripts/install-test-deps.sh`");
    }
    let count: usize = std::env::args().nth(1).map_or(Ok(5_000), |s| s.parse())?;
    let source = Dovecot::start(DovecotOptions {
        delimiter: '/',
        ..DovecotOptions::default()
    })
    .context("starting the source Dovecot")?;
    let target =
        Dovecot::start(DovecotOptions::default()).context("starting the target Dovecot")?;
    let folders = vec![
        FolderPath::inbox(),
        FolderPath::new(["Archive", "2024"]),
        FolderPath::new(["Projets", "Été"]),
        FolderPath::new(["Sent"]),
    ];
    let (user, password) = source.login();
    let filled = source.fill(
        user,
        CorpusSpec::new(count, SizeMix::typical())
            .with_quirks()
            .in_folders(folders)
            .generate(),
    )?;
    let dir = tempfile::tempdir()?;
    let ca = dir.path().join("test-ca.pem");
    let pem = std::fs::read_to_string(source.ca_pem_path())?
        + &std::fs::read_to_string(target.ca_pem_path())?;
    std::fs::write(&ca, pem)?;
    let pw = dir.path().join("password");
    std::fs::write(&pw, password)?;
    println!("# {filled} messages in the source. Paste into a shell:");
    println!(
        "export MAILFERRY_SOURCE_PASSWORD=$(cat {0}) MAILFERRY_TARGET_PASSWORD=$(cat {0})",
        pw.display()
    );
    println!(
        "mailferry copy imap://{user}@{}:{} imap://{user}@{}:{} --ca-file {}",
        source.host(),
        source.imap_port(),
        target.host(),
        target.imap_port(),
        ca.display()
    );
    println!("# Ctrl-C stops both servers.");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
