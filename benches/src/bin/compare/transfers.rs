//! The `transfers` scenario: mailferry between a local store and a server, against what the
//! server or the disk can take, on the `typical` corpus (and `heavy` with `--corpus`). Issue 8
//! asks for "mbox → IMAP import and IMAP → Maildir export at the servers'/disk's limit".
//!
//! Per corpus and latency, in one run:
//!
//! - **mbox → IMAP**: `mailferry copy mbox:DIR imap://target` into a fresh target Dovecot. The
//!   floor is `mailferry copy imap://source imap://target` from the same corpus into another
//!   fresh target (the rate the target accepts over IMAP, the servers scenario's cell), and the
//!   peer `doveadm import` of the same mbox files (it writes the target's storage directly, no
//!   IMAP; not incremental, so it has no re-run).
//! - **IMAP → Maildir**: `mailferry copy imap://source maildir:DIR` into a fresh directory,
//!   against mbsync (IMAP store → `MaildirStore`), `doveadm backup` into a local Maildir and the
//!   disk floor `cp -a` of the source Dovecot's own Maildir tree.
//!
//! Design decisions, and why:
//! - **The mbox comes from the source server, written by mailferry, untimed**: then every path
//!   starts from the very messages the source Dovecot holds, and one verifier (the source's
//!   snapshot) judges all of them. The mbox is read back before any tool runs and must match
//!   the source, so the import is never blamed for a broken bench input.
//! - **Everything lands where it is judged the same way**: an IMAP target is read back over
//!   IMAP, a Maildir with mailferry's Maildir reader, both fingerprinted by `snapshot.rs` and
//!   compared by `diff.rs` with the source (so mbsync's `X-TUID` header shows up as
//!   "x-tuid header added", exactly as in the servers scenario).
//! - **mbsync writes Maildir++** (`Inbox DIR`, `SubFolders Maildir++`), the layout mailferry
//!   writes by default and Dovecot (and so `cp -a` and `doveadm backup`) uses: all four
//!   results are the same kind of tree, read by the same reader. isync 1.4 rejects `Path` in
//!   Maildir++ mode, so there is none. mbsync keeps its default `FSync yes`, mailferry its
//!   fsync per batch, doveadm its config (`mail_fsync = never` in the testkit's Dovecot) and
//!   `cp` none: the table says which tool pays for durability.
//! - **`cp -a` is a floor, not a peer**: it copies the source Dovecot's files (already in the
//!   page cache after the source was read back, nothing is dropped) without parsing a byte, so
//!   "vs cp -a" tells how far an export is from the disk's own speed.
//! - **doveadm runs as the Dovecot admin would**: `doveadm import` with the target's config
//!   and the mbox files arranged as a Dovecot `mbox:` tree (folder `A/B` = file `A/B`, names in
//!   UTF-8, indexes in memory); `doveadm backup -R` with the *source's* config (its user and
//!   mail user) and `mail_location = maildir:DIR`, reading the source over imapc.

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use mailferry_benches::figures::RunFigures;
use mailferry_benches::text::{self, one_line};
use mailferry_core::FolderPath;
use mailferry_maildir::{Maildir, MaildirOptions};
use mailferry_testkit::{Dovecot, DovecotOptions, Proxy};
use serde::Serialize;

use crate::diff::{Verdict, compare};
use crate::measure::{Measured, run_measured};
use crate::report::{self, RunInfo, RunResult};
use crate::run::{self, Corpus, SourceServer};
use crate::scenario::{ratio, times};
use crate::snapshot::{Snapshot, read_server, read_source};
use crate::tools::{self, Endpoints, Installed, Invocation, ToolKind};
use crate::{Outcome, Setup};

/// The import path.
pub const MBOX_TO_IMAP: &str = "mbox → IMAP";
/// The export path.
pub const IMAP_TO_MAILDIR: &str = "IMAP → Maildir";
/// The label of mailferry's own row in each transfer (the ratio lines compare it with the rest).
pub const MAILFERRY: &str = "mailferry";

/// One row of a transfer table.
#[derive(Debug, Clone, Serialize)]
pub struct TransferRun {
    /// [`MBOX_TO_IMAP`] or [`IMAP_TO_MAILDIR`].
    pub transfer: String,
    /// `mailferry`, `mailferry IMAP→IMAP`, `doveadm import`, `mbsync`, `doveadm backup`,
    /// `cp -a`.
    pub tool: String,
    /// Whether this row is a mailferry run (these decide the exit status).
    pub mailferry: bool,
    /// `typical` or `heavy`.
    pub corpus: String,
    /// Added round-trip time, ms.
    pub latency_ms: u64,
    /// What the run measured and how it was judged against the source (flat in the JSON; no
    /// re-run time for a copy that is not incremental).
    #[serde(flatten)]
    pub figures: RunFigures,
}

impl TransferRun {
    /// A servers-scenario cell as a row of `transfer` labelled `tool`.
    pub fn from_cell(transfer: &str, tool: &str, r: RunResult) -> TransferRun {
        TransferRun {
            transfer: transfer.into(),
            tool: tool.into(),
            mailferry: r.tool == ToolKind::Mailferry,
            corpus: r.corpus,
            latency_ms: r.latency_ms,
            figures: r.figures,
        }
    }
}

/// One transfer's table.
pub fn table(rows: &[&TransferRun]) -> String {
    let mut out = String::from(report::TABLE_HEAD);
    for r in rows {
        out.push_str(&report::table_row(
            &r.tool,
            &r.corpus,
            r.latency_ms,
            &r.figures,
        ));
    }
    out
}

/// Ratio lines: in each transfer, corpus and latency, mailferry's msgs/s against every other
/// row's (`mailferry mbox → IMAP vs mailferry IMAP→IMAP (typical, 0 ms): 0.95×`). A row that
/// failed has no rate to compare ("n/a").
pub fn ratio_lines(rows: &[TransferRun]) -> Vec<String> {
    let rate = |r: &TransferRun| (r.figures.exit_code == Some(0)).then(|| r.figures.msgs_per_sec());
    let mut lines = Vec::new();
    for m in rows.iter().filter(|r| r.tool == MAILFERRY) {
        for peer in rows.iter().filter(|r| {
            r.tool != MAILFERRY
                && r.transfer == m.transfer
                && r.corpus == m.corpus
                && r.latency_ms == m.latency_ms
        }) {
            let floor = if peer.tool == "cp -a" { " floor" } else { "" };
            lines.push(format!(
                "mailferry {} vs {}{floor} ({}, {} ms): {} the msgs/s",
                m.transfer,
                peer.tool,
                m.corpus,
                m.latency_ms,
                times(ratio(rate(m), rate(peer))),
            ));
        }
    }
    lines
}

/// The whole markdown report.
pub fn markdown(info: &RunInfo, rows: &[TransferRun], prep_notes: &[String]) -> String {
    let mut out = info.header(
        "mailferry: local stores ↔ servers",
        "**mbox → IMAP**: `mailferry copy mbox:DIR imap://…` into a fresh Dovecot 2.3, against \
         `mailferry IMAP→IMAP` from the same corpus into another fresh Dovecot (what the target \
         accepts over IMAP) and `doveadm import` of the same mbox files (writes the target's \
         storage directly, no IMAP; not incremental, so no re-run). The mbox tree was written \
         from the source server by mailferry beforehand (not timed) and checked against it. \
         **IMAP → Maildir**: `mailferry copy imap://… maildir:DIR` into a fresh directory, \
         against mbsync (`MaildirStore`, Maildir++), `doveadm backup` into a local Maildir, and \
         `cp -a` of the source Dovecot's Maildir tree (the disk floor: page-cached, nothing \
         dropped, no parsing). Plaintext IMAP on 127.0.0.1 (TLS off for all tools) through the \
         latency proxy. CPU and peak RSS are the tool's own processes (`/usr/bin/time`). \
         \"correct\" reads the result back (IMAP, or mailferry's Maildir reader) and compares it \
         per folder with the source server (checksums of the canonical bytes, flags + \
         keywords, internal dates), after the first run and after the re-run.\n\n",
    );
    for transfer in [MBOX_TO_IMAP, IMAP_TO_MAILDIR] {
        let these: Vec<&TransferRun> = rows.iter().filter(|r| r.transfer == transfer).collect();
        if these.is_empty() {
            continue;
        }
        let _ = writeln!(out, "## {transfer}\n");
        out.push_str(&table(&these));
        out.push('\n');
    }
    out.push_str(&text::bullets(&ratio_lines(rows)));
    let mut notes = prep_notes.to_vec();
    notes.extend(
        rows.iter()
            .filter(|r| !r.figures.notes.is_empty())
            .map(|r| {
                format!(
                    "{} {} {} {} ms: {}",
                    r.transfer,
                    r.tool,
                    r.corpus,
                    r.latency_ms,
                    r.figures.notes.join("; ")
                )
            }),
    );
    out.push_str(&text::notes_section(&notes));
    out
}

/// What one transfer run needs from its cell.
struct Cell<'a> {
    setup: &'a Setup,
    corpus: &'a Corpus,
    source: &'a SourceServer,
    rtt: Duration,
}

/// A measured tool run: how to run it, whether to re-run it, how to read its result back.
struct Job<'a> {
    transfer: &'static str,
    tool: String,
    mailferry: bool,
    invocation: Invocation,
    /// `false` for a copy that is not incremental (`cp -a`, `doveadm import`).
    rerun: bool,
    /// mailferry's work dir (its `--report`), for the report's notes.
    mailferry_work: Option<PathBuf>,
    read_back: Box<dyn Fn() -> Result<Snapshot> + 'a>,
    /// Extra notes (e.g. a log's error lines) gathered after the runs.
    after: Box<dyn Fn() -> Vec<String> + 'a>,
}

fn log_label(cell: &Cell<'_>, transfer: &str, tool: &str) -> String {
    let slug = |s: &str| {
        s.chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect::<String>()
    };
    format!(
        "transfers-{}-{}-{}-{}ms",
        slug(transfer),
        slug(tool),
        cell.corpus.name,
        cell.rtt.as_millis()
    )
}

/// Runs `job` measured, reads its result back, re-runs it unchanged (when incremental) and
/// reads back again.
fn run_job(cell: &Cell<'_>, job: Job<'_>) -> Result<TransferRun> {
    print!(
        "   {} {} at {} ms… ",
        job.transfer,
        job.tool,
        cell.rtt.as_millis()
    );
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let label = log_label(cell, job.transfer, &job.tool);
    let measure = |attempt: &str| -> Result<Measured> {
        run_measured(
            &job.invocation.program,
            &job.invocation.args,
            &job.invocation.envs,
            &cell.setup.logs.join(format!("{label}-{attempt}.log")),
        )
    };
    let expected = cell.source.snapshot.messages();
    let verify = || -> Result<Verdict> { Ok(compare(&cell.source.snapshot, &(job.read_back)()?)) };
    let first = measure("first")?;
    let mut notes: Vec<String> = first.failure_note("first run").into_iter().collect();
    if let Some(work) = &job.mailferry_work {
        notes.extend(tools::mailferry_report_notes(work, expected));
    }
    let after_first = verify()?;
    // Not incremental (nothing to re-run): the first run's figures decide alone.
    let (mut rerun, mut after_rerun) = (None, None);
    if job.rerun {
        let again = measure("rerun")?;
        notes.extend(again.failure_note("re-run"));
        if let Some(work) = &job.mailferry_work {
            notes.extend(tools::mailferry_rerun_note(work));
        }
        rerun = Some(again);
        after_rerun = Some(verify()?);
    } else {
        notes.push("not incremental: no re-run".into());
    }
    notes.extend((job.after)());
    let mut verdict = after_first.summary();
    if let Some(v) = after_rerun.as_ref().filter(|v| **v != after_first) {
        verdict = format!("{verdict}; after re-run: {}", v.summary());
    }
    let row = TransferRun {
        transfer: job.transfer.into(),
        tool: job.tool,
        mailferry: job.mailferry,
        corpus: cell.corpus.name.clone(),
        latency_ms: cell.rtt.as_millis() as u64,
        figures: RunFigures {
            correct: after_first.correct() && after_rerun.is_none_or(|v| v.correct()),
            verdict,
            notes,
            ..first.figures(expected, cell.source.snapshot.bytes(), rerun.as_ref())
        },
    };
    println!(
        "{:.1} s, {:.0} msgs/s, correct: {}",
        row.figures.wall_secs,
        row.figures.msgs_per_sec(),
        row.figures.verdict
    );
    Ok(row)
}

/// A fresh work dir for one tool run, kept under the logs dir only while it is needed.
fn work_dir(prefix: &str) -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("mailferry-transfers-{prefix}-"))
        .tempdir()
        .context("creating a work dir")
}

/// `mailferry copy SOURCE TARGET --state … --report … -q` with the passwords in the env.
fn mailferry_copy(
    tool: &Installed,
    source: &str,
    target: &str,
    work: &Path,
    password: &str,
) -> Invocation {
    let s = |x: &str| x.to_string();
    Invocation {
        program: tool.program.clone(),
        args: vec![
            s("copy"),
            s(source),
            s(target),
            s("--state"),
            work.join("state.sqlite").display().to_string(),
            s("--report"),
            work.join("report.json").display().to_string(),
            s("-q"),
        ],
        envs: vec![
            (s("MAILFERRY_SOURCE_PASSWORD"), s(password)),
            (s("MAILFERRY_TARGET_PASSWORD"), s(password)),
        ],
    }
}

/// Reads a Maildir(++) tree back with mailferry's Maildir reader.
fn read_maildir(setup: &Setup, root: &Path) -> Result<Snapshot> {
    let store = Maildir::open(root, MaildirOptions::default())
        .with_context(|| format!("opening {} to read it back", root.display()))?;
    setup
        .rt
        .block_on(read_source(&store, false))
        .with_context(|| format!("reading {} back", root.display()))
}

/// The owner (uid, gid) of a Dovecot's mail: what its mail processes run as.
fn mail_owner(dovecot: &Dovecot, user: &str) -> Result<(u32, u32)> {
    let home = dovecot
        .maildir(user)
        .parent()
        .map(Path::to_path_buf)
        .context("the Maildir has no home")?;
    let meta = fs::metadata(&home).with_context(|| format!("stat {}", home.display()))?;
    Ok((meta.uid(), meta.gid()))
}

/// `chown -R uid:gid path` (std has `chown` but no recursion).
fn chown_tree(path: &Path, (uid, gid): (u32, u32)) -> Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .with_context(|| format!("chown {}", path.display()))?;
    if path.is_dir() {
        for entry in fs::read_dir(path).with_context(|| format!("reading {}", path.display()))? {
            chown_tree(&entry?.path(), (uid, gid))?;
        }
    }
    Ok(())
}

/// Copies mailferry's Thunderbird-style mbox tree into the layout Dovecot's `mbox:` driver
/// reads (folder `A/B` = file `root/A/B`, INBOX a separate file) and returns the
/// `mail_location` that names it. Copies, not links: Dovecot may rewrite the files it reads
/// (its `X-UID` headers), and mailferry reads the originals again at the next latency.
pub fn dovecot_mbox_tree(mbox: &Path, folders: &[String], dest: &Path) -> Result<String> {
    let root = dest.join("root");
    let inbox = dest.join("inbox");
    fs::create_dir_all(&root).with_context(|| format!("mkdir {}", root.display()))?;
    for name in folders {
        let path = FolderPath::new(name.split('/'));
        let from = mailferry_mbox::layout::folder_file(mbox, &path);
        if !from.is_file() {
            continue;
        }
        let to = if path.is_inbox() {
            inbox.clone()
        } else {
            root.join(name)
        };
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).with_context(|| format!("mkdir {}", parent.display()))?;
        }
        fs::copy(&from, &to)
            .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    }
    if !inbox.is_file() {
        fs::write(&inbox, b"").with_context(|| format!("writing {}", inbox.display()))?;
    }
    Ok(format!(
        "mbox:{}:INBOX={}:INDEX=MEMORY:UTF-8",
        root.display(),
        inbox.display()
    ))
}

/// The doveadm config that imports into the target Dovecot (its users, mail location and
/// auth socket), logging to `log`.
pub fn doveadm_import_conf(target_config: &Path, log: &Path) -> String {
    format!(
        "# Written by the mailferry comparison harness.\n!include {}\n\
         log_path = {log}\ninfo_log_path = {log}\ndebug_log_path = {log}\n",
        target_config.display(),
        log = log.display(),
    )
}

/// The mbsync configuration that pulls the IMAP source into the Maildir++ tree `near`.
pub fn mbsyncrc_to_maildir(
    source_port: u16,
    user: &str,
    password_file: &Path,
    near: &Path,
) -> String {
    format!(
        "# Written by the mailferry comparison harness.\n{}\
         MaildirStore near\nInbox {near}\nSubFolders Maildir++\n\n\
         Channel export\nFar :source:\nNear :near:\nPatterns *\nCreate Near\nSync Pull\n\
         Expunge None\nCopyArrivalDate yes\nSyncState *\n",
        tools::mbsync_imap_store("source", source_port, user, password_file),
        near = near.display(),
    )
}

/// The mbox → IMAP rows of one cell.
fn mbox_to_imap(
    cell: &Cell<'_>,
    source_proxy: &Proxy,
    mbox: &Path,
    rows: &mut Vec<TransferRun>,
) -> Result<()> {
    let setup = cell.setup;
    for tool in &setup.installed {
        match tool.kind {
            ToolKind::Mailferry => {
                let target =
                    Dovecot::start(DovecotOptions::default()).context("starting target Dovecot")?;
                let target_proxy = run::proxy(&setup.rt, target.imap_port(), cell.rtt)?;
                let (user, password) = target.login();
                let work = work_dir("mbox-imap")?;
                let invocation = mailferry_copy(
                    tool,
                    &format!("mbox:{}", mbox.display()),
                    &tools::imap_url(user, target_proxy.addr().port()),
                    work.path(),
                    password,
                );
                let job = Job {
                    transfer: MBOX_TO_IMAP,
                    tool: MAILFERRY.into(),
                    mailferry: true,
                    invocation,
                    rerun: true,
                    mailferry_work: Some(work.path().to_path_buf()),
                    read_back: Box::new(|| {
                        setup
                            .rt
                            .block_on(read_server(target.imap_port(), user, password))
                    }),
                    after: Box::new(|| run::server_errors(&target)),
                };
                rows.push(run_job(cell, job)?);
                // The floor: the same corpus IMAP → IMAP into another fresh target.
                print!("   {MBOX_TO_IMAP} floor, IMAP → IMAP:");
                if let Some(r) = crate::run_cell(
                    setup,
                    tool,
                    cell.corpus,
                    cell.source,
                    source_proxy,
                    cell.rtt,
                ) {
                    rows.push(TransferRun::from_cell(
                        MBOX_TO_IMAP,
                        "mailferry IMAP→IMAP",
                        r,
                    ));
                }
            }
            ToolKind::Doveadm => {
                let target =
                    Dovecot::start(DovecotOptions::default()).context("starting target Dovecot")?;
                let (user, password) = target.login();
                let work = work_dir("doveadm-import")?;
                let folders: Vec<String> = cell.source.snapshot.folders.keys().cloned().collect();
                let location = dovecot_mbox_tree(mbox, &folders, &work.path().join("mbox"))?;
                chown_tree(work.path(), mail_owner(&target, user)?)?;
                let conf = work.path().join("doveadm.conf");
                let log = work.path().join("doveadm.log");
                tools::write_private(
                    &conf,
                    &doveadm_import_conf(&run::dovecot_config(&target, user), &log),
                )?;
                let s = |x: &str| x.to_string();
                let invocation = Invocation {
                    program: tool.program.clone(),
                    args: vec![
                        s("-c"),
                        conf.display().to_string(),
                        s("import"),
                        s("-u"),
                        s(user),
                        location,
                        s(""),
                        s("all"),
                    ],
                    envs: vec![],
                };
                let job = Job {
                    transfer: MBOX_TO_IMAP,
                    tool: "doveadm import".into(),
                    mailferry: false,
                    invocation,
                    rerun: false,
                    mailferry_work: None,
                    read_back: Box::new(|| {
                        setup
                            .rt
                            .block_on(read_server(target.imap_port(), user, password))
                    }),
                    after: Box::new(|| {
                        let mut notes = tools::doveadm_log_errors(&log);
                        notes.extend(run::server_errors(&target));
                        notes
                    }),
                };
                match run_job(cell, job) {
                    Ok(row) => rows.push(row),
                    Err(e) => println!("could not run: {e:#}"),
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The IMAP → Maildir rows of one cell.
fn imap_to_maildir(
    cell: &Cell<'_>,
    source_proxy: &Proxy,
    rows: &mut Vec<TransferRun>,
) -> Result<()> {
    let setup = cell.setup;
    let source = &cell.source.dovecot;
    let (user, password) = source.login();
    let port = source_proxy.addr().port();
    for tool in &setup.installed {
        let work = work_dir(&format!("export-{}", tool.kind))?;
        let dir = work.path().join("Maildir");
        let read_back: Box<dyn Fn() -> Result<Snapshot>> = Box::new(|| read_maildir(setup, &dir));
        let job = match tool.kind {
            ToolKind::Mailferry => Job {
                transfer: IMAP_TO_MAILDIR,
                tool: MAILFERRY.into(),
                mailferry: true,
                invocation: mailferry_copy(
                    tool,
                    &tools::imap_url(user, port),
                    &format!("maildir:{}", dir.display()),
                    work.path(),
                    password,
                ),
                rerun: true,
                mailferry_work: Some(work.path().to_path_buf()),
                read_back,
                after: Box::new(Vec::new),
            },
            ToolKind::Mbsync => {
                let password_file = work.path().join("password");
                tools::write_private(&password_file, password)?;
                let rc = work.path().join("mbsyncrc");
                tools::write_private(&rc, &mbsyncrc_to_maildir(port, user, &password_file, &dir))?;
                Job {
                    transfer: IMAP_TO_MAILDIR,
                    tool: "mbsync".into(),
                    mailferry: false,
                    invocation: Invocation {
                        program: tool.program.clone(),
                        args: vec!["-c".into(), rc.display().to_string(), "-a".into()],
                        envs: vec![],
                    },
                    rerun: true,
                    mailferry_work: None,
                    read_back,
                    after: Box::new(Vec::new),
                }
            }
            ToolKind::Doveadm => {
                // The source's config knows the user and its mail user; the mail goes to DIR.
                fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
                chown_tree(work.path(), mail_owner(source, user)?)?;
                let log = work.path().join("doveadm.log");
                let endpoints = Endpoints {
                    source_port: port,
                    target_port: 0,
                    user: user.into(),
                    password: password.into(),
                    target_config: run::dovecot_config(source, user),
                };
                let conf = work.path().join("doveadm.conf");
                tools::write_private(
                    &conf,
                    &format!(
                        "{}mail_location = maildir:{}\n",
                        tools::doveadm_conf(&endpoints, &log),
                        dir.display()
                    ),
                )?;
                let s = |x: &str| x.to_string();
                Job {
                    transfer: IMAP_TO_MAILDIR,
                    tool: "doveadm backup".into(),
                    mailferry: false,
                    invocation: Invocation {
                        program: tool.program.clone(),
                        args: vec![
                            s("-c"),
                            conf.display().to_string(),
                            s("backup"),
                            s("-R"),
                            s("-u"),
                            s(user),
                            s("imapc:"),
                        ],
                        envs: vec![],
                    },
                    rerun: true,
                    mailferry_work: None,
                    read_back,
                    after: Box::new(move || tools::doveadm_log_errors(&log)),
                }
            }
            ToolKind::Imapsync => continue,
        };
        match run_job(cell, job) {
            Ok(row) => rows.push(row),
            Err(e) if tool.kind == ToolKind::Mailferry => return Err(e),
            Err(e) => println!("could not run: {e:#}"),
        }
    }
    // The disk floor: the source Dovecot's own files, copied without parsing.
    let work = work_dir("export-cp")?;
    let dir = work.path().join("Maildir");
    let job = Job {
        transfer: IMAP_TO_MAILDIR,
        tool: "cp -a".into(),
        mailferry: false,
        invocation: Invocation {
            program: PathBuf::from("cp"),
            args: vec![
                "-a".into(),
                source.maildir(user).display().to_string(),
                dir.display().to_string(),
            ],
            envs: vec![],
        },
        rerun: false,
        mailferry_work: None,
        read_back: Box::new(|| read_maildir(setup, &dir)),
        after: Box::new(Vec::new),
    };
    match run_job(cell, job) {
        Ok(row) => rows.push(row),
        Err(e) => println!("could not run: {e:#}"),
    }
    Ok(())
}

/// Writes the source's mail as an mbox tree with mailferry (untimed preparation) and checks it
/// against the source; returns a note saying what was prepared.
fn prepare_mbox(setup: &Setup, source: &SourceServer, mbox: &Path) -> Result<String> {
    let Some(mailferry) = setup
        .installed
        .iter()
        .find(|t| t.kind == ToolKind::Mailferry)
    else {
        bail!("the transfers scenario needs mailferry (it writes the mbox input)");
    };
    let (user, password) = source.dovecot.login();
    let work = work_dir("mbox-prep")?;
    let invocation = mailferry_copy(
        mailferry,
        &tools::imap_url(user, source.dovecot.imap_port()),
        &format!("mbox:{}", mbox.display()),
        work.path(),
        password,
    );
    let log = setup.logs.join(format!(
        "transfers-prepare-mbox-{}.log",
        mbox.file_name().and_then(|n| n.to_str()).unwrap_or("mbox")
    ));
    let m = run_measured(
        &invocation.program,
        &invocation.args,
        &invocation.envs,
        &log,
    )?;
    if !m.succeeded() {
        bail!(
            "writing the mbox input failed (exit {}): {}",
            text::exit_code(m.exit_code),
            one_line(&m.log_tail(3))
        );
    }
    let store = mailferry_mbox::Mbox::open(mbox)
        .with_context(|| format!("opening {} to read it back", mbox.display()))?;
    let back = setup
        .rt
        .block_on(read_source(&store, false))
        .with_context(|| format!("reading {} back", mbox.display()))?;
    let verdict = compare(&source.snapshot, &back);
    if !verdict.correct() {
        bail!(
            "the mbox input written by mailferry differs from the source: {}",
            verdict.summary()
        );
    }
    Ok(format!(
        "mbox input: {} messages in {} files written from the source by mailferry in {:.1} s \
         (not timed in the table), read back: matches the source",
        back.messages(),
        back.folders.len(),
        m.wall.as_secs_f64()
    ))
}

/// Runs the scenario.
pub fn run(setup: &Setup, info: &RunInfo) -> Result<Outcome> {
    let mut rows = Vec::new();
    let mut prep_notes = Vec::new();
    let mut expected = 0;
    for name in &setup.corpora {
        let corpus = run::corpus(name, setup.scale)
            .with_context(|| format!("unknown corpus {name:?} (typical, heavy, both)"))?;
        println!(
            "== {} corpus: {} messages; filling the source Dovecot…",
            corpus.name, corpus.spec.count
        );
        let source = run::start_source(&setup.rt, &corpus)?;
        println!(
            "   source holds {} messages, {:.0} MB in {} folders; writing the mbox input…",
            source.snapshot.messages(),
            source.snapshot.bytes() as f64 / 1e6,
            source.snapshot.folders.len()
        );
        let inputs = work_dir("mbox")?;
        let mbox = inputs.path().join(&corpus.name);
        let note = prepare_mbox(setup, &source, &mbox)?;
        println!("   {note}");
        prep_notes.push(format!("{}: {note}", corpus.name));
        for &latency in &setup.latencies {
            let rtt = Duration::from_millis(latency);
            let source_proxy = run::proxy(&setup.rt, source.dovecot.imap_port(), rtt)?;
            let cell = Cell {
                setup,
                corpus: &corpus,
                source: &source,
                rtt,
            };
            expected += 3;
            mbox_to_imap(&cell, &source_proxy, &mbox, &mut rows)?;
            imap_to_maildir(&cell, &source_proxy, &mut rows)?;
        }
    }
    let mailferry_rows: Vec<&TransferRun> = rows.iter().filter(|r| r.mailferry).collect();
    let mailferry_ok =
        mailferry_rows.len() == expected && mailferry_rows.iter().all(|r| r.figures.ok());
    let lines = ratio_lines(&rows);
    Ok(Outcome {
        markdown: markdown(info, &rows, &prep_notes),
        json: serde_json::json!({
            "info": info,
            "ratios": lines,
            "notes": prep_notes,
            "results": rows,
        }),
        mailferry_ok,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(transfer: &str, tool: &str, wall: f64) -> TransferRun {
        TransferRun {
            transfer: transfer.into(),
            tool: tool.into(),
            mailferry: tool.starts_with("mailferry"),
            corpus: "typical".into(),
            latency_ms: 0,
            figures: RunFigures::sample(1000, 45_000_000, wall, 1.0),
        }
    }

    #[test]
    fn mailferry_is_compared_with_every_other_row_of_its_transfer_only() {
        let mut failed = row(IMAP_TO_MAILDIR, "doveadm backup", 1.0);
        failed.figures.exit_code = Some(75);
        let lines = ratio_lines(&[
            row(MBOX_TO_IMAP, MAILFERRY, 2.0),
            row(MBOX_TO_IMAP, "mailferry IMAP→IMAP", 1.9),
            row(IMAP_TO_MAILDIR, MAILFERRY, 1.0),
            row(IMAP_TO_MAILDIR, "mbsync", 4.0),
            failed,
            row(IMAP_TO_MAILDIR, "cp -a", 0.25),
        ]);
        assert_eq!(
            lines,
            [
                "mailferry mbox → IMAP vs mailferry IMAP→IMAP (typical, 0 ms): 0.95× the msgs/s",
                "mailferry IMAP → Maildir vs mbsync (typical, 0 ms): 4.00× the msgs/s",
                "mailferry IMAP → Maildir vs doveadm backup (typical, 0 ms): n/a the msgs/s",
                "mailferry IMAP → Maildir vs cp -a floor (typical, 0 ms): 0.25× the msgs/s",
            ]
        );
    }

    #[test]
    fn rows_without_a_rerun_say_so_and_count_as_ok() {
        let mut r = row(IMAP_TO_MAILDIR, "cp -a", 0.5);
        r.figures.rerun_secs = None;
        let t = table(&[&r]);
        assert!(
            t.contains("| cp -a | typical (1000 msgs, 45 MB) | 0 ms | 2000 | 90.0 | 1.00 | 30 | yes | n/a |"),
            "{t}"
        );
        assert!(r.figures.ok());
        r.figures.verdict = "no: 3 keywords lost".into();
        r.figures.correct = false;
        assert!(!r.figures.ok());
    }

    #[test]
    fn mbsync_exports_into_a_maildirpp_tree_without_secrets() {
        let rc = mbsyncrc_to_maildir(1111, "alice", Path::new("/w/password"), Path::new("/w/M"));
        for line in [
            "Port 1111",
            "PassCmd \"cat /w/password\"",
            "MaildirStore near",
            "Inbox /w/M",
            "SubFolders Maildir++",
            "Far :source:",
            "Near :near:",
            "Sync Pull",
            "Create Near",
            "CopyArrivalDate yes",
        ] {
            assert!(rc.lines().any(|l| l == line), "missing {line:?} in\n{rc}");
        }
        assert!(!rc.lines().any(|l| l.starts_with("Path ")), "{rc}");
    }

    #[test]
    fn the_dovecot_mbox_tree_mirrors_the_folders_with_inbox_apart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mbox = dir.path().join("tb");
        for folder in [
            FolderPath::inbox(),
            FolderPath::new(["Archive", "2020"]),
            FolderPath::new(["Projekte", "Übersicht"]),
        ] {
            let file = mailferry_mbox::layout::folder_file(&mbox, &folder);
            fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
            fs::write(&file, folder.join("/")).expect("write");
        }
        let folders = ["INBOX", "Archive/2020", "Projekte/Übersicht", "Sent"].map(String::from);
        let dest = dir.path().join("dovecot");
        let location = dovecot_mbox_tree(&mbox, &folders, &dest).expect("tree");
        assert_eq!(
            location,
            format!(
                "mbox:{0}/root:INBOX={0}/inbox:INDEX=MEMORY:UTF-8",
                dest.display()
            )
        );
        let read = |p: &str| fs::read_to_string(dest.join(p)).expect(p);
        assert_eq!(read("inbox"), "INBOX");
        assert_eq!(read("root/Archive/2020"), "Archive/2020");
        assert_eq!(read("root/Projekte/Übersicht"), "Projekte/Übersicht");
        assert!(!dest.join("root/Sent").exists(), "no file, no folder");
    }
}
