//! A real Dovecot 2.3 (`dovecot-imapd`) per test, self-contained in a temp dir on ephemeral
//! 127.0.0.1 ports, so backend tests talk to the server migrations actually meet instead of a
//! mock that agrees with our own reading of the RFCs.
//!
//! Design decisions, and why:
//! - **Own config, nothing from `/etc`.** `dovecot -F -c <tempdir>/dovecot.conf` runs in the
//!   foreground as our child, with its own `base_dir`, `state_dir`, log file and `passwd-file`
//!   users; the system service, `/etc/dovecot` and `/run/dovecot` are never read or touched, and
//!   any number of instances run side by side. The child leads its own process group; stop
//!   sends TERM to the group and KILL after a 1 s grace (the master alone takes about 1.1 s to
//!   shut down and sometimes hangs for seconds when its children die first), so no
//!   `imap`/`auth` child outlives the test and a stop costs about 15 ms.
//! - **Unprivileged mail user.** Dovecot refuses mail owned by uid 0. Run as root (CI, this
//!   machine), the mail processes run as `nobody` (65534, falling back to `dovenull`), with the
//!   package's `dovecot`/`dovenull` users as internal/login users; the temp dir is 0755 and the
//!   homes are chowned to the mail user. Run as a normal user, everything (mail, internal and
//!   login user) is the current uid/gid; `chroot =` is emptied for `anvil` and `imap-login`
//!   because an unprivileged master cannot chroot (verified: `anvil: Fatal: chroot(...) failed:
//!   Operation not permitted` otherwise). Both modes were run by hand on Dovecot 2.3.19.
//! - **Per-instance CA** made with the `openssl` command line (P-256 keys: generating them is
//!   instant, RSA-2048 takes a noticeable fraction of a second on these cores). The server
//!   certificate has SAN `IP:127.0.0.1, DNS:localhost`, so clients verify it properly.
//! - **Ports**: bind port 0, release, hand the number to Dovecot; another process may take it
//!   in between, so a start that fails with "Address already in use" is retried on new ports.
//! - **Fast `fill`** writes straight into the Maildir, as a delivery agent would (see the
//!   `fill` module): 500 small messages take milliseconds, and UIDs follow the input order.
//! - The namespace declares `Sent`, `Drafts`, `Trash`, `Junk`, `Archive` with their special-use
//!   attributes but does not auto-create them (no `auto =`), as the task specified: a test that
//!   needs one creates it or fills it. `extra_config` can add `auto = create`.
//! - `maildir_very_dirty_syncs` stays **off**: with it Dovecot may not notice files `fill` adds
//!   behind its back while it runs; `mail_fsync = never` is enough for speed.
//! - Failed logins stay cheap: `auth_failure_delay = 0`, and Dovecot's per-IP auth penalty is
//!   off (anvil's `anvil-auth-penalty` listener has `mode = 0`, the documented switch), because
//!   after one wrong-password test it delays the next login from 127.0.0.1 (measured: 4 s;
//!   `login_trusted_networks` does not exempt it in 2.3.19). The price is one known line,
//!   `auth: Error: net_connect_unix(anvil-auth-penalty) failed`, which [`Dovecot::log_errors`]
//!   leaves out.

use std::fs;
use std::io::{self, BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub(crate) mod accounts;
mod fill;

/// How to set up an instance.
#[derive(Debug, Clone)]
pub struct DovecotOptions {
    /// Hierarchy delimiter: `'.'` (Maildir++) or `'/'` (`LAYOUT=fs`).
    pub delimiter: char,
    /// Users as (login, password); the first one is [`Dovecot::login`].
    pub users: Vec<(String, String)>,
    /// Appended verbatim to `dovecot.conf` (later settings override earlier ones).
    pub extra_config: String,
}

impl Default for DovecotOptions {
    /// Delimiter `'.'`, one user `alice` / `secret-pass-1`.
    fn default() -> Self {
        DovecotOptions {
            delimiter: '.',
            users: vec![("alice".into(), "secret-pass-1".into())],
            extra_config: String::new(),
        }
    }
}

/// The Dovecot binary: `$MAILFERRY_DOVECOT` if set, else `/usr/sbin/dovecot` if present.
pub fn dovecot_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MAILFERRY_DOVECOT") {
        return Some(PathBuf::from(p));
    }
    let p = PathBuf::from("/usr/sbin/dovecot");
    p.is_file().then_some(p)
}

pub(crate) fn openssl_available() -> bool {
    Command::new("openssl")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Returns true if Dovecot (and `openssl`, which the launcher needs) is available. If not:
/// with env `CI=true` it panics with an actionable message; otherwise it prints a note to
/// stderr and returns false, and the test returns early.
pub fn require_dovecot() -> bool {
    let missing = match (dovecot_binary().is_some(), openssl_available()) {
        (true, true) => return true,
        (false, true) => "dovecot (/usr/sbin/dovecot)",
        (true, false) => "openssl",
        (false, false) => "dovecot (/usr/sbin/dovecot) and openssl",
    };
    let msg = format!(
        "{missing} not found: run scripts/install-test-deps.sh (Debian/Ubuntu packages \
         dovecot-imapd, openssl), or point MAILFERRY_DOVECOT at a dovecot binary"
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{msg}");
    }
    eprintln!("note: skipping a Dovecot test: {msg}");
    false
}

/// One running Dovecot instance. Dropping it stops Dovecot and removes its temp dir.
///
/// ```no_run
/// use mailferry_testkit::corpus::{CorpusSpec, SizeMix};
/// use mailferry_testkit::{Dovecot, DovecotOptions, require_dovecot};
///
/// if require_dovecot() {
///     let dovecot = Dovecot::start(DovecotOptions::default())?;
///     let (user, _password) = dovecot.login();
///     dovecot.fill(user, CorpusSpec::new(100, SizeMix::small()).generate())?;
///     // Connect to dovecot.host():dovecot.imap_port(), or imaps_port() trusting
///     // dovecot.ca_pem_path(); on failure, show dovecot.log().
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Dovecot {
    binary: PathBuf,
    options: DovecotOptions,
    dir: tempfile::TempDir,
    ca_pem: PathBuf,
    mail_uid: u32,
    mail_gid: u32,
    roles_config: String,
    imap_port: u16,
    imaps_port: u16,
    child: Option<Child>,
    /// Orders and names filled messages across `fill` calls (see the module docs).
    fill_seq: AtomicU64,
    fill_stamp: u64,
    /// `fill` rewrites `dovecot-keywords`; concurrent fills must not interleave that.
    fill_lock: Mutex<()>,
}

impl std::fmt::Debug for Dovecot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dovecot")
            .field("dir", &self.dir.path())
            .field("imap_port", &self.imap_port)
            .field("imaps_port", &self.imaps_port)
            .finish_non_exhaustive()
    }
}

/// How one start attempt ended.
enum Started {
    Ready,
    PortInUse,
}

const START_TIMEOUT: Duration = Duration::from_secs(20);
const STOP_GRACE: Duration = Duration::from_millis(1000);

pub(crate) fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// Runs a command and turns a failure into an error carrying its stderr.
pub(crate) fn run(cmd: &mut Command) -> io::Result<()> {
    let out = cmd.stdin(Stdio::null()).output()?;
    if out.status.success() {
        return Ok(());
    }
    Err(io::Error::other(format!(
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    )))
}

/// A CA and a server certificate signed by it, for 127.0.0.1 and localhost. Our own openssl
/// config keeps the result independent of the system's `openssl.cnf`.
pub(crate) fn make_certificates(dir: &Path) -> io::Result<()> {
    let cnf = dir.join("openssl.cnf");
    fs::write(
        &cnf,
        "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = mailferry test CA\n\
         [ca]\nbasicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign\n\
         subjectKeyIdentifier = hash\n\
         [server]\nbasicConstraints = critical, CA:FALSE\n\
         keyUsage = critical, digitalSignature, keyEncipherment\nextendedKeyUsage = serverAuth\n\
         subjectAltName = IP:127.0.0.1, DNS:localhost\nsubjectKeyIdentifier = hash\n\
         authorityKeyIdentifier = keyid\n",
    )?;
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(Command::new("openssl")
        .current_dir(dir)
        .args(["req", "-x509"])
        .args(ec)
        .args(["-keyout", "ca.key", "-out", "ca.pem", "-days", "3650"])
        .args(["-config", "openssl.cnf", "-extensions", "ca"]))?;
    run(Command::new("openssl")
        .current_dir(dir)
        .args(["req", "-new"])
        .args(ec)
        .args(["-keyout", "server.key", "-out", "server.csr"])
        .args(["-config", "openssl.cnf", "-subj", "/CN=127.0.0.1"]))?;
    let serial = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() ^ u128::from(std::process::id()));
    run(Command::new("openssl")
        .current_dir(dir)
        .args(["x509", "-req", "-in", "server.csr", "-CA", "ca.pem"])
        .args(["-CAkey", "ca.key", "-out", "server.pem", "-days", "3650"])
        .args([
            "-set_serial",
            &format!("{}", serial & 0x7fff_ffff_ffff_ffff),
        ])
        .args(["-extfile", "openssl.cnf", "-extensions", "server"]))
}

/// Two distinct free ports: both are held while the second is chosen.
pub(crate) fn free_ports() -> io::Result<(u16, u16)> {
    let a = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let b = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok((a.local_addr()?.port(), b.local_addr()?.port()))
}

/// Whether `port` answers with an IMAP greeting (so imap-login, not just the socket, is up).
pub(crate) fn greets(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    if stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .is_err()
    {
        return false;
    }
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).is_ok() && line.starts_with("* OK")
}

pub(crate) fn accepts(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

/// Sends `signal` to `target` (a pid, or `-pgid` for a process group) via `kill(1)`: std has
/// no signal API and `unsafe_code` is denied, so no libc call.
pub(crate) fn signal(signal: &str, target: &str) {
    let _ = Command::new("kill")
        .args(["-s", signal, "--", target])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

impl Dovecot {
    /// Creates the instance's files and starts Dovecot; returns once the IMAP port greets and
    /// the IMAPS port accepts connections (or fails after about 20 s with the Dovecot log).
    pub fn start(options: DovecotOptions) -> io::Result<Dovecot> {
        let binary = dovecot_binary().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "dovecot not found: run scripts/install-test-deps.sh",
            )
        })?;
        if options.delimiter != '.' && options.delimiter != '/' {
            return Err(invalid(format!(
                "delimiter {:?}: only '.' (Maildir++) and '/' (LAYOUT=fs) are supported",
                options.delimiter
            )));
        }
        if options.users.is_empty() {
            return Err(invalid("DovecotOptions::users is empty".into()));
        }
        for (login, password) in &options.users {
            let login_ok = !login.is_empty()
                && login
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._@+-".contains(c))
                && !login.starts_with('.');
            if !login_ok || password.contains([':', '\n', '\r']) || password.is_empty() {
                return Err(invalid(format!(
                    "user {login:?}: logins are [A-Za-z0-9._@+-], passwords non-empty without ':' or newlines"
                )));
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("mailferry-dovecot-")
            .tempdir()?;
        // The mail and login users must traverse it.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))?;
        let meta = fs::metadata(dir.path())?;
        let roles = accounts::roles(meta.uid(), meta.gid())?;
        make_certificates(dir.path())?;
        let home = dir.path().join("home");
        fs::create_dir(&home)?;
        fs::create_dir(dir.path().join("run"))?;
        fs::create_dir(dir.path().join("state"))?;
        let mut passwd = String::new();
        for (login, password) in &options.users {
            let user_home = home.join(login);
            fs::create_dir(&user_home)?;
            std::os::unix::fs::chown(&user_home, Some(roles.mail.uid), Some(roles.mail.gid))?;
            passwd.push_str(&format!(
                "{login}:{{PLAIN}}{password}:{}:{}::{}::\n",
                roles.mail.uid,
                roles.mail.gid,
                user_home.display()
            ));
        }
        fs::write(dir.path().join("passwd"), passwd)?;
        let mut dovecot = Dovecot {
            binary,
            options,
            ca_pem: dir.path().join("ca.pem"),
            dir,
            mail_uid: roles.mail.uid,
            mail_gid: roles.mail.gid,
            roles_config: roles.config,
            imap_port: 0,
            imaps_port: 0,
            child: None,
            fill_seq: AtomicU64::new(0),
            fill_stamp: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1_700_000_000, |d| d.as_secs()),
            fill_lock: Mutex::new(()),
        };
        for _ in 0..8 {
            (dovecot.imap_port, dovecot.imaps_port) = free_ports()?;
            match dovecot.launch()? {
                Started::Ready => return Ok(dovecot),
                Started::PortInUse => continue,
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "dovecot could not bind free ports after 8 attempts; log:\n{}",
                dovecot.log()
            ),
        ))
    }

    fn config(&self) -> String {
        let d = self.dir.path().display();
        let layout = if self.options.delimiter == '/' {
            ":LAYOUT=fs"
        } else {
            ""
        };
        let mut special = String::new();
        for (name, role) in [
            ("Sent", "\\Sent"),
            ("Drafts", "\\Drafts"),
            ("Trash", "\\Trash"),
            ("Junk", "\\Junk"),
            ("Archive", "\\Archive"),
        ] {
            special.push_str(&format!(
                "  mailbox {name} {{\n    special_use = {role}\n  }}\n"
            ));
        }
        format!(
            "# Written by mailferry-testkit; nothing is included from /etc.\n\
             base_dir = {d}/run\nstate_dir = {d}/state\n\
             log_path = {d}/dovecot.log\ninfo_log_path = {d}/dovecot.log\n\
             debug_log_path = {d}/dovecot.log\n\
             protocols = imap\nlisten = 127.0.0.1\n{roles}\
             first_valid_uid = {uid}\nfirst_valid_gid = {gid}\n\
             ssl = yes\nssl_cert = <{d}/server.pem\nssl_key = <{d}/server.key\n\
             auth_mechanisms = plain login\ndisable_plaintext_auth = no\n\
             auth_failure_delay = 0\nauth_verbose = yes\n\
             passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN {d}/passwd\n}}\n\
             userdb {{\n  driver = passwd-file\n  args = {d}/passwd\n}}\n\
             mail_location = maildir:~/Maildir{layout}\n\
             mail_fsync = never\n\
             mail_plugins = $mail_plugins zlib\n\
             namespace inbox {{\n  inbox = yes\n  separator = {sep}\n{special}}}\n\
             default_vsz_limit = 1G\nimap_max_line_length = 10M\n\
             protocol imap {{\n  mail_plugins = $mail_plugins imap_zlib\n\
               mail_max_userip_connections = 100\n}}\n\
             service anvil {{\n  chroot =\n  unix_listener anvil-auth-penalty {{\n    mode = 0\n  }}\n}}\n\
             service imap-login {{\n  chroot =\n\
               inet_listener imap {{\n    address = 127.0.0.1\n    port = {imap}\n  }}\n\
               inet_listener imaps {{\n    address = 127.0.0.1\n    port = {imaps}\n    ssl = yes\n  }}\n}}\n\
             {extra}\n",
            roles = self.roles_config,
            uid = self.mail_uid,
            gid = self.mail_gid,
            sep = self.options.delimiter,
            imap = self.imap_port,
            imaps = self.imaps_port,
            extra = self.options.extra_config,
        )
    }

    /// Writes the config for the current ports, spawns Dovecot and waits until it serves.
    fn launch(&mut self) -> io::Result<Started> {
        let conf = self.dir.path().join("dovecot.conf");
        fs::write(&conf, self.config())?;
        // A stale pid file of a previous run makes Dovecot refuse to start if the pid is reused.
        let _ = fs::remove_file(self.dir.path().join("run/master.pid"));
        let log_len = fs::metadata(self.log_path()).map_or(0, |m| m.len() as usize);
        let stderr = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.stderr_path())?;
        let child = Command::new(&self.binary)
            .arg("-F")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(stderr.try_clone()?)
            .stderr(stderr)
            .process_group(0)
            .spawn()?;
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let exited = match self.child.as_mut() {
                Some(child) => child.try_wait()?,
                None => return Err(io::Error::other("dovecot child vanished")),
            };
            if let Some(status) = exited {
                self.stop();
                let log = self.log();
                if log
                    .get(log_len..)
                    .unwrap_or(&log)
                    .contains("Address already in use")
                {
                    return Ok(Started::PortInUse);
                }
                return Err(io::Error::other(format!(
                    "dovecot exited during startup ({status}); log of {}:\n{log}",
                    self.dir.path().display()
                )));
            }
            if greets(self.imap_port) && accepts(self.imaps_port) {
                return Ok(Started::Ready);
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "dovecot did not serve ports {}/{} within {START_TIMEOUT:?}; log:\n{}",
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

    /// That user's mail root (the INBOX Maildir).
    pub fn maildir(&self, user: &str) -> PathBuf {
        self.dir.path().join("home").join(user).join("Maildir")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("dovecot.log")
    }

    fn stderr_path(&self) -> PathBuf {
        self.dir.path().join("dovecot.stderr")
    }

    /// The instance's log (and anything Dovecot printed to stderr), for assertion messages.
    pub fn log(&self) -> String {
        let mut out = fs::read(self.log_path()).unwrap_or_default();
        if let Ok(stderr) = fs::read(self.stderr_path())
            && !stderr.is_empty()
        {
            out.extend_from_slice(b"--- stderr ---\n");
            out.extend_from_slice(&stderr);
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The log's error lines (`Error:`, `Fatal:`, `Panic:`), without the known one the disabled
    /// auth penalty causes (see the module docs): empty when Dovecot saw nothing wrong.
    pub fn log_errors(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| ["Error:", "Fatal:", "Panic:"].iter().any(|k| l.contains(k)))
            .filter(|l| !l.contains("anvil-auth-penalty"))
            .map(str::to_string)
            .collect()
    }

    /// The pids of the instance's `imap` processes: with Dovecot's default `service_count = 1`,
    /// one per logged-in IMAP session, ending when its session ends. Empty when not running.
    /// Crash tests stop them ([`crate::process::send_signal`]) to delay a dead client's commit.
    pub fn imap_pids(&self) -> Vec<u32> {
        // The master leads its own process group (see `launch`) and its children stay in it.
        self.child
            .as_ref()
            .map_or_else(Vec::new, |c| crate::process::group_members(c.id(), "imap"))
    }

    /// Stops Dovecot and starts it again on the same ports and data.
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop();
        // The old listeners are closed; a port taken by someone else meanwhile is retried
        // briefly and then reported.
        for _ in 0..20 {
            match self.launch()? {
                Started::Ready => return Ok(()),
                Started::PortInUse => std::thread::sleep(Duration::from_millis(250)),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "dovecot could not rebind ports {}/{}; log:\n{}",
                self.imap_port,
                self.imaps_port,
                self.log()
            ),
        ))
    }

    /// Stops Dovecot (its whole process group) and waits for it; idempotent.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let group = format!("-{}", child.id());
        if matches!(child.try_wait(), Ok(None)) {
            // TERM to the whole group: the master alone takes about 1.1 s to shut down, and
            // it sometimes sits for seconds when its children die under it; the KILL after
            // the grace period bounds that. Mail processes have had their TERM by then.
            signal("TERM", &group);
            let deadline = Instant::now() + STOP_GRACE;
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        // Whatever did not exit on TERM (the master may already be gone).
        signal("KILL", &group);
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
    }
}
