//! The tools under comparison and how each is invoked: mailferry, mbsync (isync), `doveadm
//! backup` through imapc (dsync), and imapsync when `$IMAPSYNC` names it.
//!
//! Design decisions, and why:
//! - **Each tool configured as a careful admin would for a migration**, not with defaults that
//!   make it look bad: mbsync gets `CopyArrivalDate yes` (else it drops internal dates by
//!   design), dsync the `imapc_features` Dovecot's migration guide recommends, imapsync its
//!   defaults (which keep internal dates). Concurrency knobs stay at each tool's default.
//! - **Plaintext IMAP on 127.0.0.1 for all**, so no tool pays for TLS the others skip.
//! - **Secrets never on argv**: mailferry reads env vars, mbsync a `PassCmd "cat FILE"`,
//!   imapsync `--passfile`, doveadm a config file (0600) in the run's temp dir.
//! - **doveadm writes the target's storage directly** (dsync reads the source over IMAP with
//!   imapc and writes the target Maildir as the target's own mail user, looked up through the
//!   running target Dovecot's auth socket). That is how Dovecot admins migrate, and it skips
//!   the target's IMAP round trips — the report says so next to its figures.
//! - The same [`Invocation`] is run twice: the second run is the no-change re-run.

use std::fmt;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use mailferry_benches::host::{self, version_of};

/// A tool under comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolKind {
    /// `target/release/mailferry copy`.
    Mailferry,
    /// mbsync from isync.
    Mbsync,
    /// `doveadm backup -R` with an imapc source.
    Doveadm,
    /// imapsync (only when `$IMAPSYNC` is set).
    Imapsync,
}

impl ToolKind {
    /// Every tool, in the order they run and appear in tables.
    pub const ALL: [ToolKind; 4] = [
        ToolKind::Mailferry,
        ToolKind::Mbsync,
        ToolKind::Doveadm,
        ToolKind::Imapsync,
    ];

    /// Parses a name as used on the command line.
    pub fn parse(name: &str) -> Option<ToolKind> {
        ToolKind::ALL
            .into_iter()
            .find(|t| t.to_string() == name.trim().to_ascii_lowercase())
    }
}

impl fmt::Display for ToolKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ToolKind::Mailferry => "mailferry",
            ToolKind::Mbsync => "mbsync",
            ToolKind::Doveadm => "doveadm",
            ToolKind::Imapsync => "imapsync",
        })
    }
}

/// A tool found on this machine.
#[derive(Debug, Clone)]
pub struct Installed {
    /// Which tool.
    pub kind: ToolKind,
    /// Its executable.
    pub program: PathBuf,
    /// Its version line, for the report.
    pub version: String,
}

/// What a tool run needs to know about the servers.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// Port of the source (the proxy in front of it).
    pub source_port: u16,
    /// Port of the target (the proxy in front of it).
    pub target_port: u16,
    /// Login on both servers.
    pub user: String,
    /// Password on both servers.
    pub password: String,
    /// The target Dovecot's `dovecot.conf` (doveadm includes it).
    pub target_config: PathBuf,
}

/// A command line ready to run (twice).
#[derive(Clone)]
pub struct Invocation {
    /// Executable.
    pub program: PathBuf,
    /// Arguments (no secrets).
    pub args: Vec<String>,
    /// Environment additions (secrets go here or in files).
    pub envs: Vec<(String, String)>,
}

impl fmt::Debug for Invocation {
    /// Environment values may be passwords: only their names are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let env_names: Vec<&str> = self.envs.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Invocation")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("env_names", &env_names)
            .finish()
    }
}

/// `name` in `$PATH` (or `fallback` if it is a file).
fn which(name: &str, fallback: &str) -> Option<PathBuf> {
    host::which(name).or_else(|| Some(PathBuf::from(fallback)).filter(|p| p.is_file()))
}

/// Looks for `kind`; `mailferry` is the given binary. `None` = not installed (skipped, said
/// so in the output).
pub fn detect(kind: ToolKind, mailferry: &Path) -> Option<Installed> {
    let (program, version) = match kind {
        ToolKind::Mailferry => {
            let p = mailferry.to_path_buf();
            let v = version_of(&p, &["--version"])?;
            (p, v)
        }
        ToolKind::Mbsync => {
            let p = which("mbsync", "/usr/bin/mbsync")?;
            let v = version_of(&p, &["--version"])?;
            (p, v)
        }
        ToolKind::Doveadm => {
            let p = which("doveadm", "/usr/bin/doveadm")?;
            // doveadm has no --version; the server binary of the same package has.
            let dovecot = which("dovecot", "/usr/sbin/dovecot")?;
            let v = format!("doveadm {}", version_of(&dovecot, &["--version"])?);
            (p, v)
        }
        ToolKind::Imapsync => {
            let p = PathBuf::from(std::env::var_os("IMAPSYNC")?);
            let v = version_of(&p, &["--version"]).unwrap_or_else(|| "unknown".into());
            (p, format!("imapsync {v}"))
        }
    };
    Some(Installed {
        kind,
        program,
        version,
    })
}

/// Writes a file only the owner can read (it may hold a password).
pub fn write_private(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod {}", path.display()))
}

/// The plaintext IMAP endpoint of `user` on 127.0.0.1:`port`, as mailferry takes it.
pub fn imap_url(user: &str, port: u16) -> String {
    format!("imap://{user}@127.0.0.1:{port}?tls=none")
}

/// An mbsync `IMAPAccount` + `IMAPStore` named `name` for the plaintext server on `port`
/// (password read with `PassCmd "cat FILE"`, never in the file itself).
pub fn mbsync_imap_store(name: &str, port: u16, user: &str, password_file: &Path) -> String {
    format!(
        "IMAPAccount {name}\nHost 127.0.0.1\nPort {port}\nUser {user}\n\
         PassCmd \"cat {pass}\"\nSSLType None\nAuthMechs LOGIN\n\n\
         IMAPStore {name}\nAccount {name}\n\n",
        pass = password_file.display(),
    )
}

/// The mbsync configuration for one run (isync 1.4 syntax: Far/Near).
pub fn mbsyncrc(e: &Endpoints, password_file: &Path, state_dir: &Path) -> String {
    format!(
        "# Written by the mailferry comparison harness.\n{}{}\
         Channel migrate\nFar :source:\nNear :target:\nPatterns *\nCreate Near\nSync Pull\n\
         Expunge None\nCopyArrivalDate yes\nSyncState {}/\n",
        mbsync_imap_store("source", e.source_port, &e.user, password_file),
        mbsync_imap_store("target", e.target_port, &e.user, password_file),
        state_dir.display(),
    )
}

/// The doveadm configuration: the target Dovecot's own config (its mail location, users and
/// auth socket) plus an imapc source.
pub fn doveadm_conf(e: &Endpoints, log: &Path) -> String {
    format!(
        "# Written by the mailferry comparison harness.\n!include {conf}\n\
         log_path = {log}\ninfo_log_path = {log}\ndebug_log_path = {log}\n\
         imapc_host = 127.0.0.1\nimapc_port = {port}\nimapc_ssl = no\n\
         imapc_user = {user}\nimapc_password = {password}\n\
         imapc_features = rfc822.size fetch-headers\nmail_prefetch_count = 20\n",
        conf = e.target_config.display(),
        log = log.display(),
        port = e.source_port,
        user = e.user,
        password = e.password,
    )
}

/// Writes whatever `tool` needs into `work` and returns its command line.
pub fn prepare(tool: &Installed, e: &Endpoints, work: &Path) -> Result<Invocation> {
    let password_file = work.join("password");
    write_private(&password_file, &e.password)?;
    let s = |x: &str| x.to_string();
    let (args, envs) = match tool.kind {
        ToolKind::Mailferry => (
            vec![
                s("copy"),
                imap_url(&e.user, e.source_port),
                imap_url(&e.user, e.target_port),
                s("--state"),
                work.join("state.sqlite").display().to_string(),
                s("--report"),
                work.join("report.json").display().to_string(),
                s("-q"),
            ],
            vec![
                (s("MAILFERRY_SOURCE_PASSWORD"), e.password.clone()),
                (s("MAILFERRY_TARGET_PASSWORD"), e.password.clone()),
            ],
        ),
        ToolKind::Mbsync => {
            let state = work.join("mbsync-state");
            fs::create_dir_all(&state).with_context(|| format!("mkdir {}", state.display()))?;
            let rc = work.join("mbsyncrc");
            write_private(&rc, &mbsyncrc(e, &password_file, &state))?;
            (vec![s("-c"), rc.display().to_string(), s("-a")], vec![])
        }
        ToolKind::Doveadm => {
            if !e.target_config.is_file() {
                bail!(
                    "doveadm needs the target Dovecot's config, not found at {}",
                    e.target_config.display()
                );
            }
            let conf = work.join("doveadm.conf");
            write_private(&conf, &doveadm_conf(e, &work.join("doveadm.log")))?;
            let args = ["-c", &conf.display().to_string(), "backup", "-R", "-u"]
                .into_iter()
                .map(s)
                .chain([e.user.clone(), s("imapc:")])
                .collect();
            (args, vec![])
        }
        ToolKind::Imapsync => {
            let mut args = Vec::new();
            for (side, port) in [("1", e.source_port), ("2", e.target_port)] {
                args.extend([
                    format!("--host{side}"),
                    s("127.0.0.1"),
                    format!("--port{side}"),
                    port.to_string(),
                    format!("--user{side}"),
                    e.user.clone(),
                    format!("--passfile{side}"),
                    password_file.display().to_string(),
                    format!("--nossl{side}"),
                    format!("--notls{side}"),
                ]);
            }
            args.extend([
                s("--noreleasecheck"),
                s("--logdir"),
                work.display().to_string(),
                s("--tmpdir"),
                work.display().to_string(),
            ]);
            (args, vec![])
        }
    };
    Ok(Invocation {
        program: tool.program.clone(),
        args,
        envs,
    })
}

/// What mailferry's `--report` says about a run, as short notes: its counts except a
/// `copied` equal to `expected_copied` (the unremarkable case), and a non-ok outcome.
pub fn mailferry_report_notes(work: &Path, expected_copied: u64) -> Vec<String> {
    let path = work.join("report.json");
    let Ok(text) = fs::read_to_string(&path) else {
        return vec![format!("no report at {}", path.display())];
    };
    let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else {
        return vec![format!("unreadable report {}", path.display())];
    };
    let totals = &json["copy"]["totals"];
    let mut notes = Vec::new();
    for key in ["copied", "already_copied", "skipped_existing", "failed"] {
        let unremarkable = |n: u64| n == 0 || (key == "copied" && n == expected_copied);
        if let Some(n) = totals[key].as_u64().filter(|n| !unremarkable(*n)) {
            notes.push(format!("{key} {n}"));
        }
    }
    if let Some(outcome) = json["outcome"].as_str().filter(|o| *o != "ok") {
        notes.push(format!("outcome {outcome}"));
    }
    notes
}

/// Error lines of a doveadm log, for a note.
pub fn doveadm_log_errors(log: &Path) -> Vec<String> {
    let errors: Vec<String> = fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("Error:") || l.contains("Fatal:"))
        .take(2)
        .map(str::to_string)
        .collect();
    if errors.is_empty() {
        Vec::new()
    } else {
        vec![format!("doveadm log: {}", errors.join(" / "))]
    }
}

/// A note when mailferry's report in `work` says a no-change re-run copied anything (it
/// should copy nothing), with the report's counts; `None` otherwise.
pub fn mailferry_rerun_note(work: &Path) -> Option<String> {
    let notes = mailferry_report_notes(work, 0);
    notes
        .iter()
        .any(|n| n.starts_with("copied"))
        .then(|| format!("re-run: {}", notes.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints() -> Endpoints {
        Endpoints {
            source_port: 1111,
            target_port: 2222,
            user: "alice".into(),
            password: "s3cr3t-value".into(),
            target_config: PathBuf::from("/t/dovecot.conf"),
        }
    }

    #[test]
    fn mbsyncrc_pulls_far_to_near_with_dates_and_no_secret() {
        let rc = mbsyncrc(&endpoints(), Path::new("/w/password"), Path::new("/w/st"));
        for line in [
            "Port 1111",
            "Port 2222",
            "Far :source:",
            "Near :target:",
            "Sync Pull",
            "Create Near",
            "CopyArrivalDate yes",
            "SSLType None",
            "PassCmd \"cat /w/password\"",
            "SyncState /w/st/",
        ] {
            assert!(rc.lines().any(|l| l == line), "missing {line:?} in\n{rc}");
        }
        assert!(!rc.contains("s3cr3t-value"), "{rc}");
    }

    #[test]
    fn doveadm_conf_includes_the_target_and_reads_the_source_through_imapc() {
        let conf = doveadm_conf(&endpoints(), Path::new("/w/d.log"));
        assert!(conf.contains("!include /t/dovecot.conf\n"), "{conf}");
        assert!(conf.contains("imapc_port = 1111\n"), "{conf}");
        assert!(
            !conf.contains("2222"),
            "doveadm writes storage, not IMAP: {conf}"
        );
    }

    #[test]
    fn prepared_commands_keep_passwords_off_argv() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = endpoints();
        for kind in [ToolKind::Mailferry, ToolKind::Mbsync, ToolKind::Imapsync] {
            let tool = Installed {
                kind,
                program: PathBuf::from("/bin/true"),
                version: String::new(),
            };
            let inv = prepare(&tool, &e, dir.path()).expect("prepare");
            let shown = format!("{inv:?}");
            assert!(!shown.contains("s3cr3t-value"), "{shown}");
            assert!(
                !inv.args.iter().any(|a| a.contains("s3cr3t-value")),
                "{shown}"
            );
            if kind == ToolKind::Mailferry {
                assert!(
                    inv.args
                        .contains(&"imap://alice@127.0.0.1:1111?tls=none".into())
                );
                assert!(
                    inv.envs
                        .iter()
                        .any(|(k, _)| k == "MAILFERRY_TARGET_PASSWORD")
                );
            }
        }
        let mode = fs::metadata(dir.path().join("password"))
            .expect("password file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "password file is private");
    }

    #[test]
    fn tool_names_round_trip() {
        for t in ToolKind::ALL {
            assert_eq!(ToolKind::parse(&t.to_string()), Some(t));
        }
        assert_eq!(ToolKind::parse("rsync"), None);
    }

    #[test]
    fn mailferry_report_notes_name_failures() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(
            dir.path().join("report.json"),
            r#"{"outcome":"items_failed","copy":{"totals":{"copied":9,"failed":1}}}"#,
        )
        .expect("write");
        assert_eq!(
            mailferry_report_notes(dir.path(), 10),
            ["copied 9", "failed 1", "outcome items_failed"]
        );
        assert_eq!(
            mailferry_report_notes(dir.path(), 9),
            ["failed 1", "outcome items_failed"]
        );
    }
}
