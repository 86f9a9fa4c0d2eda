//! A real Cyrus IMAP 3.6 (Debian's `cyrus-imapd`) per test, the second server the IMAP suites
//! run against, so a behaviour Dovecot happens to share with our reading of the RFCs cannot pass
//! for the protocol.
//!
//! Design decisions, and why:
//! - **Unpacked, not installed.** Debian's `cyrus-imapd` conflicts with `dovecot-imapd` (both
//!   provide `imap-server`), so `scripts/install-test-deps.sh` installs `cyrus-common` (master,
//!   `ctl_cyrusdb`, the libraries) and `sasl2-bin` (`saslpasswd2`) and only *unpacks*
//!   `cyrus-imapd` into `/opt/mailferry-cyrus` (`$MAILFERRY_CYRUS_ROOT`); the `imapd` binary
//!   links against the installed libraries.
//! - **Own config, nothing from `/etc`.** `master -D -C imapd.conf -M cyrus.conf` runs in the
//!   foreground as our child, in its own process group. Cyrus's master does *not* pass `-C` on
//!   to the services it spawns (verified: imapd then read `/etc/imapd.conf` and died with
//!   "couldn't create proc directory"), so every `cmd=` in `cyrus.conf` carries `-C` itself.
//!   Debian compiles `/run/cyrus/...` in as the proc, lock and socket paths: all are set to
//!   the temp dir explicitly.
//! - **Unprivileged.** As root (CI), master drops to the package's `cyrus` user (falling back to
//!   `nobody`), which owns the temp dir's contents; as a normal user, `cyrus_user` is that user.
//! - **Accounts in a per-instance sasldb** written by `saslpasswd2` (realm = `servername`,
//!   `localhost`); `PLAIN` and `LOGIN` over plaintext are allowed (`allowplaintext`), as on the
//!   Dovecot launcher, and `failedloginpause: 0` keeps wrong-password tests fast (the default
//!   sleeps 3 s). INBOXes are created on first login (`autocreate_quota: 0`).
//! - **TLS** like the Dovecot launcher: a per-instance CA (the same `openssl` helper), STARTTLS on
//!   the plain port and implicit TLS (`imapd -s`) on the second.
//! - **Namespace**: [`CyrusOptions::alt_namespace`] `false` (Debian's default config, and many
//!   real installations) puts every folder under `INBOX.`; `true` makes them top-level. The
//!   delimiter is `'.'` or `'/'` (`unixhierarchysep`).
//! - **8-bit headers are rewritten by default** (Cyrus's `munge8bit`: each byte ≥ 0x80 in a
//!   header becomes `X`). The launcher keeps Cyrus's default, because that is what migrations
//!   meet; [`CyrusOptions::keep_8bit_headers`] turns it off for suites that check our bytes.
//! - **No log file.** Cyrus logs only to syslog and there is no `/dev/log` here; [`Cyrus::log`]
//!   returns what master printed to stdout/stderr. The IMAP trace of a test's own client (see
//!   `mailferry-imap`'s wire trace) is the better debugging aid.
//! - **`fill` speaks IMAP** (plaintext on loopback, one APPEND at a time): Cyrus keeps an index
//!   and a mailbox list that files written behind its back would not enter. Bodies go in with
//!   CRLF line endings, as a delivery agent stores them: Cyrus refuses bare LF.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mailferry_core::FolderPath;

use crate::corpus::GeneratedMessage;
use crate::dovecot::accounts;
use crate::dovecot::{
    accepts, free_ports, greets, invalid, make_certificates, openssl_available, signal,
};

mod fill;

/// How to set up an instance.
#[derive(Debug, Clone)]
pub struct CyrusOptions {
    /// Hierarchy delimiter: `'.'` (Cyrus's netnews style) or `'/'` (`unixhierarchysep: yes`).
    pub delimiter: char,
    /// `false`: personal folders live under `INBOX` (`INBOX.Sent`); `true`: top-level (`Sent`).
    pub alt_namespace: bool,
    /// Keep 8-bit header bytes as sent (`munge8bit: no`) instead of Cyrus's default, which
    /// replaces each with `X`.
    pub keep_8bit_headers: bool,
    /// Users as (login, password); the first one is [`Cyrus::login`].
    pub users: Vec<(String, String)>,
    /// Appended verbatim to `imapd.conf` (a later line overrides an earlier one).
    pub extra_config: String,
}

impl Default for CyrusOptions {
    /// Delimiter `'.'`, folders under `INBOX.`, Cyrus's default 8-bit header rewrite, one user
    /// `alice` / `secret-pass-1`.
    fn default() -> Self {
        CyrusOptions {
            delimiter: '.',
            alt_namespace: false,
            keep_8bit_headers: false,
            users: vec![("alice".into(), "secret-pass-1".into())],
            extra_config: String::new(),
        }
    }
}

/// Where the unpacked `cyrus-imapd` lives: `$MAILFERRY_CYRUS_ROOT` or `/opt/mailferry-cyrus`.
pub fn cyrus_root() -> PathBuf {
    std::env::var_os("MAILFERRY_CYRUS_ROOT")
        .map_or_else(|| PathBuf::from("/opt/mailferry-cyrus"), PathBuf::from)
}

const MASTER: &str = "/usr/lib/cyrus/bin/master";
const CTL_CYRUSDB: &str = "/usr/lib/cyrus/bin/ctl_cyrusdb";
const SASLPASSWD2: &str = "/usr/sbin/saslpasswd2";

fn imapd_binary() -> PathBuf {
    cyrus_root().join("usr/lib/cyrus/bin/imapd")
}

/// Returns true if Cyrus (master, imapd, saslpasswd2) and `openssl` are available. If not: with
/// env `CI=true` it panics with an actionable message; otherwise it prints a note to stderr and
/// returns false, and the test returns early.
pub fn require_cyrus() -> bool {
    let imapd = imapd_binary();
    let mut missing = Vec::new();
    for (path, what) in [
        (Path::new(MASTER), "cyrus-common"),
        (Path::new(CTL_CYRUSDB), "cyrus-common"),
        (Path::new(SASLPASSWD2), "sasl2-bin"),
        (imapd.as_path(), "cyrus-imapd (unpacked)"),
    ] {
        if !path.is_file() {
            missing.push(format!("{} ({what})", path.display()));
        }
    }
    if !openssl_available() {
        missing.push("openssl".into());
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "{} not found: run scripts/install-test-deps.sh (installs cyrus-common and sasl2-bin, \
         unpacks cyrus-imapd into $MAILFERRY_CYRUS_ROOT, default /opt/mailferry-cyrus)",
        missing.join(", ")
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{msg}");
    }
    eprintln!("note: skipping a Cyrus test: {msg}");
    false
}

/// One running Cyrus instance. Dropping it stops Cyrus and removes its temp dir.
///
/// ```no_run
/// use mailferry_testkit::corpus::{CorpusSpec, SizeMix};
/// use mailferry_testkit::{Cyrus, CyrusOptions, require_cyrus};
///
/// if require_cyrus() {
///     let cyrus = Cyrus::start(CyrusOptions::default())?;
///     let (user, _password) = cyrus.login();
///     cyrus.fill(user, CorpusSpec::new(100, SizeMix::small()).generate())?;
///     // Connect to cyrus.host():cyrus.imaps_port(), trusting cyrus.ca_pem_path().
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Cyrus {
    options: CyrusOptions,
    dir: tempfile::TempDir,
    ca_pem: PathBuf,
    user_name: String,
    uid: u32,
    gid: u32,
    imap_port: u16,
    imaps_port: u16,
    child: Option<Child>,
}

impl std::fmt::Debug for Cyrus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cyrus")
            .field("dir", &self.dir.path())
            .field("imap_port", &self.imap_port)
            .field("imaps_port", &self.imaps_port)
            .finish_non_exhaustive()
    }
}

/// Per attempt: a start that does not serve by then is retried on new ports (master logs a
/// failed bind only to syslog, so a port taken in between shows only as silence).
const START_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_GRACE: Duration = Duration::from_millis(2000);
const SERVERNAME: &str = "localhost";

/// chown -R (std has no recursive chown; no libc dependency here).
fn chown_tree(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
    if fs::symlink_metadata(path)?.is_dir() {
        for entry in fs::read_dir(path)? {
            chown_tree(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}

impl Cyrus {
    /// Creates the instance's files and starts Cyrus; returns once the IMAP port greets and the
    /// IMAPS port accepts connections.
    pub fn start(options: CyrusOptions) -> io::Result<Cyrus> {
        if !require_cyrus() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "cyrus not found: run scripts/install-test-deps.sh",
            ));
        }
        if options.delimiter != '.' && options.delimiter != '/' {
            return Err(invalid(format!(
                "delimiter {:?}: Cyrus supports '.' and '/' (unixhierarchysep)",
                options.delimiter
            )));
        }
        if options.users.is_empty() {
            return Err(invalid("CyrusOptions::users is empty".into()));
        }
        for (login, password) in &options.users {
            let login_ok = !login.is_empty()
                && login
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c));
            if !login_ok || password.is_empty() || password.contains(['\n', '\r', '"', '\\']) {
                return Err(invalid(format!(
                    "user {login:?}: logins are [A-Za-z0-9_-], passwords non-empty without \
                     newlines, '\"' or '\\'"
                )));
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("mailferry-cyrus-")
            .tempdir()?;
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))?;
        let meta = fs::metadata(dir.path())?;
        let (user_name, uid, gid) = if meta.uid() == 0 {
            let account = accounts::by_name("cyrus")
                .or_else(|| accounts::by_name("nobody"))
                .ok_or_else(|| io::Error::other("no unprivileged account (cyrus, nobody)"))?;
            (account.name, account.uid, account.gid)
        } else {
            let me = accounts::by_uid(meta.uid()).ok_or_else(|| {
                io::Error::other(format!(
                    "uid {} has no /etc/passwd entry; Cyrus needs a user name for it",
                    meta.uid()
                ))
            })?;
            (me.name, meta.uid(), meta.gid())
        };
        make_certificates(dir.path())?;
        for sub in [
            "conf/db",
            "conf/proc",
            "conf/lock",
            "conf/socket",
            "conf/log",
            "conf/sieve",
            "conf/quota",
            "conf/user",
            "conf/ptclient",
            "conf/sync",
            "spool",
        ] {
            fs::create_dir_all(dir.path().join(sub))?;
        }
        let sasldb = dir.path().join("sasldb2");
        for (login, password) in &options.users {
            let mut child = Command::new(SASLPASSWD2)
                .args(["-p", "-c", "-f"])
                .arg(&sasldb)
                .args(["-u", SERVERNAME, login])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()?;
            if let Some(mut stdin) = child.stdin.take() {
                use std::io::Write;
                stdin.write_all(password.as_bytes())?;
            }
            let out = child.wait_with_output()?;
            if !out.status.success() {
                return Err(io::Error::other(format!(
                    "saslpasswd2 for {login} failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                )));
            }
        }
        let mut cyrus = Cyrus {
            options,
            ca_pem: dir.path().join("ca.pem"),
            dir,
            user_name,
            uid,
            gid,
            imap_port: 0,
            imaps_port: 0,
            child: None,
        };
        let mut last = None;
        for _ in 0..3 {
            (cyrus.imap_port, cyrus.imaps_port) = free_ports()?;
            match cyrus.launch() {
                Ok(()) => return Ok(cyrus),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("cyrus did not start")))
    }

    fn imapd_conf(&self) -> String {
        let d = self.dir.path().display();
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        format!(
            "# Written by mailferry-testkit; nothing is read from /etc/imapd.conf.\n\
             configdirectory: {d}/conf\n\
             partition-default: {d}/spool\ndefaultpartition: default\n\
             proc_path: {d}/conf/proc\nmboxname_lockpath: {d}/conf/lock\n\
             lmtpsocket: {d}/conf/socket/lmtp\nidlesocket: {d}/conf/socket/idle\n\
             notifysocket: {d}/conf/socket/notify\nsievedir: {d}/conf/sieve\n\
             servername: {SERVERNAME}\nsyslog_prefix: mailferry-cyrus\n\
             cyrus_user: {user}\n\
             sasl_pwcheck_method: auxprop\nsasl_auxprop_plugin: sasldb\n\
             sasl_sasldb_path: {d}/sasldb2\nsasl_mech_list: PLAIN LOGIN\n\
             allowplaintext: yes\nfailedloginpause: 0\n\
             autocreate_quota: 0\n\
             unixhierarchysep: {unix}\naltnamespace: {alt}\n\
             munge8bit: {munge}\n\
             tls_server_cert: {d}/server.pem\ntls_server_key: {d}/server.key\n\
             {extra}\n",
            user = self.user_name,
            unix = yes_no(self.options.delimiter == '/'),
            alt = yes_no(self.options.alt_namespace),
            munge = yes_no(!self.options.keep_8bit_headers),
            extra = self.options.extra_config,
        )
    }

    fn cyrus_conf(&self) -> String {
        let conf = self.dir.path().join("imapd.conf");
        let conf = conf.display();
        let imapd = imapd_binary();
        let imapd = imapd.display();
        format!(
            "START {{\n  recover cmd=\"{CTL_CYRUSDB} -C {conf} -r\"\n}}\n\
             SERVICES {{\n\
               imap cmd=\"{imapd} -C {conf}\" listen=\"127.0.0.1:{imap}\" prefork=0\n\
               imaps cmd=\"{imapd} -s -C {conf}\" listen=\"127.0.0.1:{imaps}\" prefork=0\n\
             }}\nEVENTS {{\n}}\nDAEMON {{\n}}\n",
            imap = self.imap_port,
            imaps = self.imaps_port,
        )
    }

    /// Writes the configs for the current ports, spawns master and waits until it serves.
    fn launch(&mut self) -> io::Result<()> {
        let dir = self.dir.path().to_path_buf();
        fs::write(dir.join("imapd.conf"), self.imapd_conf())?;
        fs::write(dir.join("cyrus.conf"), self.cyrus_conf())?;
        let _ = fs::remove_file(dir.join("master.pid"));
        // Every file but the temp dir itself belongs to the Cyrus user.
        for entry in fs::read_dir(&dir)? {
            chown_tree(&entry?.path(), self.uid, self.gid)?;
        }
        let output = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.output_path())?;
        let child = Command::new(MASTER)
            .arg("-D")
            .arg("-C")
            .arg(dir.join("imapd.conf"))
            .arg("-M")
            .arg(dir.join("cyrus.conf"))
            .arg("-p")
            .arg(dir.join("master.pid"))
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output)
            .process_group(0)
            .spawn()?;
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let exited = match self.child.as_mut() {
                Some(child) => child.try_wait()?,
                None => return Err(io::Error::other("cyrus master child vanished")),
            };
            if let Some(status) = exited {
                self.stop();
                return Err(io::Error::other(format!(
                    "cyrus master exited during startup ({status}); output:\n{}",
                    self.log()
                )));
            }
            if greets(self.imap_port) && accepts(self.imaps_port) {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "cyrus did not serve ports {}/{} within {START_TIMEOUT:?}; output:\n{}",
                        self.imap_port,
                        self.imaps_port,
                        self.log()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The master process (leader of the server's process group), while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Always `127.0.0.1`.
    pub fn host(&self) -> &str {
        "127.0.0.1"
    }

    /// The plaintext port (STARTTLS offered).
    pub fn imap_port(&self) -> u16 {
        self.imap_port
    }

    /// The implicit-TLS port.
    pub fn imaps_port(&self) -> u16 {
        self.imaps_port
    }

    /// The PEM certificate of the CA that signed the server certificate.
    pub fn ca_pem_path(&self) -> &Path {
        &self.ca_pem
    }

    /// The first user's (login, password).
    pub fn login(&self) -> (&str, &str) {
        let (l, p) = &self.options.users[0];
        (l, p)
    }

    /// The options it was started with.
    pub fn options(&self) -> &CyrusOptions {
        &self.options
    }

    /// The IMAP name of a folder for this instance's namespace (`INBOX.` prefix unless
    /// [`CyrusOptions::alt_namespace`], segments in modified UTF-7, joined by the delimiter).
    pub fn imap_name(&self, path: &FolderPath) -> String {
        if path.is_inbox() {
            return "INBOX".into();
        }
        let sep = self.options.delimiter.to_string();
        let joined = path
            .segments()
            .iter()
            .map(|s| mailferry_core::utf7::encode(s))
            .collect::<Vec<_>>()
            .join(&sep);
        if self.options.alt_namespace {
            joined
        } else {
            format!("INBOX{sep}{joined}")
        }
    }

    /// The mail spool (partition `default`).
    pub fn spool(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    fn output_path(&self) -> PathBuf {
        self.dir.path().join("master.out")
    }

    /// What master printed (Cyrus logs to syslog; see the module docs).
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&fs::read(self.output_path()).unwrap_or_default()).into_owned()
    }

    /// Appends `messages` (flags, keywords and internal dates included) for `user` over IMAP,
    /// creating folders as needed (top-level `Sent`, `Drafts`, `Trash`, `Junk`, `Archive` with
    /// their special-use); returns how many were stored. UIDs follow the input order.
    pub fn fill(
        &self,
        user: &str,
        messages: impl IntoIterator<Item = GeneratedMessage>,
    ) -> io::Result<u64> {
        let Some((_, password)) = self.options.users.iter().find(|(login, _)| login == user) else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("fill: no user {user:?} in this Cyrus instance"),
            ));
        };
        let mut session = fill::Session::login(self.imap_port, user, password)?;
        let mut created = std::collections::HashSet::new();
        let mut count = 0;
        for message in messages {
            let name = self.imap_name(&message.folder);
            if created.insert(message.folder.clone()) && !message.folder.is_inbox() {
                let special = match message.folder.segments() {
                    [one] => match one.as_str() {
                        "Sent" => Some("\\Sent"),
                        "Drafts" => Some("\\Drafts"),
                        "Trash" => Some("\\Trash"),
                        "Junk" => Some("\\Junk"),
                        "Archive" => Some("\\Archive"),
                        _ => None,
                    },
                    _ => None,
                };
                session.create(&name, special)?;
            }
            session.append(&name, &message)?;
            count += 1;
        }
        session.logout();
        Ok(count)
    }

    /// Stops Cyrus and starts it again on the same ports and data.
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop();
        let mut last = None;
        for _ in 0..5 {
            match self.launch() {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    last = Some(e);
                    std::thread::sleep(Duration::from_millis(250));
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("cyrus did not restart")))
    }

    /// Stops Cyrus (master and the imapd processes it spawned) and waits; idempotent.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let group = format!("-{}", child.id());
        if matches!(child.try_wait(), Ok(None)) {
            // master forwards TERM to its services and waits for them; the KILL after the
            // grace bounds a hung child.
            signal("TERM", &group);
            let deadline = Instant::now() + STOP_GRACE;
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        signal("KILL", &group);
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Cyrus {
    fn drop(&mut self) {
        self.stop();
    }
}
