//! The command lines under test: `mailferry copy` / `mailferry verify --read-back` between
//! local endpoints, and mbsync with a Maildir → Maildir channel.
//!
//! mbsync's channel is the closest it has to a one-way migration: both stores `MaildirStore`
//! with `SubFolders Maildir++` (the layout mailferry writes and Dovecot uses), `Patterns *`,
//! `Create Near`, `Sync Pull`, `Expunge None`, `CopyArrivalDate yes` (keep internal dates, as
//! mailferry does) and `SyncState *` (state inside the near mailboxes). Both tools keep their
//! default durability: mbsync's `FSync yes`, mailferry's fsync per batch.

use std::path::{Path, PathBuf};

use mailferry_benches::host;

/// A command line ready to run (twice: the second run is the no-change re-run).
#[derive(Debug, Clone)]
pub struct Invocation {
    /// Executable.
    pub program: PathBuf,
    /// Arguments.
    pub args: Vec<String>,
}

/// First line of `program --version`, if it runs.
pub fn version(program: &Path) -> Option<String> {
    host::version_of(program, &["--version"])
}

/// `mbsync` in `$PATH`, if installed.
pub fn find_mbsync() -> Option<PathBuf> {
    host::which("mbsync")
}

/// `mailferry copy SOURCE TARGET` with its own state and report files in `work`.
pub fn mailferry_copy(mailferry: &Path, source: &str, target: &str, work: &Path) -> Invocation {
    Invocation {
        program: mailferry.to_path_buf(),
        args: vec![
            "copy".into(),
            source.into(),
            target.into(),
            "--state".into(),
            work.join("state.sqlite").display().to_string(),
            "--report".into(),
            work.join("report.json").display().to_string(),
            "-q".into(),
        ],
    }
}

/// `mailferry verify --read-back` for the pair [`mailferry_copy`] copied (same state file, so
/// every copied message is read back from the target and compared by checksum).
pub fn mailferry_verify(mailferry: &Path, source: &str, target: &str, work: &Path) -> Invocation {
    Invocation {
        program: mailferry.to_path_buf(),
        args: vec![
            "verify".into(),
            source.into(),
            target.into(),
            "--read-back".into(),
            "--state".into(),
            work.join("state.sqlite").display().to_string(),
            "--report".into(),
            work.join("verify.json").display().to_string(),
        ],
    }
}

/// The mbsyncrc (isync 1.4 syntax) that pulls the Maildir++ tree `far` into `near`.
pub fn mbsyncrc(far: &Path, near: &Path) -> String {
    format!(
        "# Written by the mailferry local-store bench.\n\
         MaildirStore far\nInbox {far}\nSubFolders Maildir++\n\n\
         MaildirStore near\nInbox {near}\nSubFolders Maildir++\n\n\
         Channel local\nFar :far:\nNear :near:\nPatterns *\nCreate Near\nSync Pull\n\
         Expunge None\nCopyArrivalDate yes\nSyncState *\n",
        far = far.display(),
        near = near.display(),
    )
}

/// `mbsync -c RC -a` with [`mbsyncrc`] written to `work/mbsyncrc`.
pub fn mbsync(mbsync: &Path, far: &Path, near: &Path, work: &Path) -> std::io::Result<Invocation> {
    let rc = work.join("mbsyncrc");
    std::fs::write(&rc, mbsyncrc(far, near))?;
    Ok(Invocation {
        program: mbsync.to_path_buf(),
        args: vec!["-c".into(), rc.display().to_string(), "-a".into()],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mbsyncrc_pulls_a_maildirpp_tree_into_another_with_dates() {
        let rc = mbsyncrc(Path::new("/w/src"), Path::new("/w/dst"));
        for line in [
            "MaildirStore far",
            "Inbox /w/src",
            "Inbox /w/dst",
            "SubFolders Maildir++",
            "Far :far:",
            "Near :near:",
            "Patterns *",
            "Create Near",
            "Sync Pull",
            "Expunge None",
            "CopyArrivalDate yes",
            "SyncState *",
        ] {
            assert!(rc.lines().any(|l| l == line), "missing {line:?} in\n{rc}");
        }
        // isync rejects Path in Maildir++ mode.
        assert!(!rc.lines().any(|l| l.starts_with("Path ")), "{rc}");
    }

    #[test]
    fn verify_reads_back_with_the_state_of_the_copy() {
        let work = Path::new("/w");
        let copy = mailferry_copy(Path::new("mf"), "maildir:/a", "maildir:/b", work);
        let verify = mailferry_verify(Path::new("mf"), "maildir:/a", "maildir:/b", work);
        let state = |inv: &Invocation| {
            let i = inv
                .args
                .iter()
                .position(|a| a == "--state")
                .expect("--state");
            inv.args[i + 1].clone()
        };
        assert_eq!(state(&copy), state(&verify));
        assert!(verify.args.contains(&"--read-back".to_string()));
        assert_eq!(&verify.args[..3], ["verify", "maildir:/a", "maildir:/b"]);
    }
}
