//! One mailbox pair: copy, sync or verify, with progress, summary, report and exit code.
//! `plan` runs many of these; each carries its own outcome so one failure stops nothing else.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, anyhow};
use mailferry::access::{Access, Credentials, Store};
use mailferry::core::{
    Copier, CopyOptions, FolderJob, InternalDate, ItemFilter, Report, StateStore, SyncOptions,
    Verification, VerifyOptions, sync_changes, verify,
};
use mailferry::mapping::{FolderMapper, MappingPlan, MappingRules};
use mailferry::{Endpoint, ErrorKind};
use serde::Serialize;

use crate::args::{AccessArgs, FoldersArgs, PairArgs, RunArgs};
use crate::progress::ProgressView;
use crate::secrets::{Credential, SecretSpec, Side};
use crate::{Exit, Failure, summary};

/// Which command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Copy,
    Sync,
    Verify,
}

/// Everything needed to run one pair.
#[derive(Debug, Clone)]
pub struct PairSpec {
    pub source: String,
    pub target: String,
    pub source_secret: SecretSpec,
    pub target_secret: SecretSpec,
    pub access: AccessArgs,
    pub run: RunArgs,
    pub state_path: Option<PathBuf>,
}

/// The `--report` JSON of one pair (a contract: fields are only ever added).
#[derive(Debug, Serialize)]
pub struct MailboxReport {
    pub command: Mode,
    pub source: String,
    pub target: String,
    /// "ok", "items_failed", "differ", "error" or "dry_run".
    pub outcome: &'static str,
    pub exit_code: u8,
    pub error: Option<String>,
    pub excluded_folders: Vec<(String, String)>,
    pub conflicts: Vec<String>,
    pub copy: Option<Report>,
    pub sync: Option<Vec<mailferry::core::FolderSync>>,
    pub verification: Option<Verification>,
    /// After a copy: what a read-back of a sample found (absent when nothing was written).
    pub target_rewrites: Option<mailferry::core::RewriteCheck>,
}

impl MailboxReport {
    fn new(mode: Mode, spec: &PairSpec) -> Self {
        MailboxReport {
            command: mode,
            source: spec.source.clone(),
            target: spec.target.clone(),
            outcome: "ok",
            exit_code: 0,
            error: None,
            excluded_folders: Vec::new(),
            conflicts: Vec::new(),
            copy: None,
            sync: None,
            verification: None,
            target_rewrites: None,
        }
    }

    fn fail(mut self, failure: Failure) -> Self {
        self.outcome = "error";
        self.exit_code = failure.exit as u8;
        self.error = Some(format!("{:#}", failure.error));
        self
    }

    pub fn exit(&self) -> Exit {
        match self.exit_code {
            0 => Exit::Ok,
            1 => Exit::ItemsFailed,
            2 => Exit::Usage,
            _ => Exit::Connection,
        }
    }
}

/// Parses `25M`, `1.5G`, `4096`.
pub fn parse_size(s: &str) -> anyhow::Result<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&s[..s.len() - 1], 1u64 << 10),
        Some('M') => (&s[..s.len() - 1], 1 << 20),
        Some('G') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| anyhow!("not a size: {s:?} (e.g. 4096, 25M, 1G)"))?;
    Ok((n * mult as f64) as u64)
}

/// Parses `YYYY-MM-DD` as midnight UTC.
pub fn parse_day(s: &str) -> anyhow::Result<InternalDate> {
    let mut it = s.split('-');
    let (y, m, d) = (it.next(), it.next(), it.next());
    let parsed = match (y, m, d, it.next()) {
        (Some(y), Some(m), Some(d), None) => (|| {
            InternalDate::from_civil(
                y.parse().ok()?,
                m.parse().ok()?,
                d.parse().ok()?,
                (0, 0, 0),
                0,
            )
        })(),
        _ => None,
    };
    parsed.ok_or_else(|| anyhow!("not a date: {s:?} (expected YYYY-MM-DD)"))
}

/// The default state file for a pair: under `$XDG_DATA_HOME` (or `~/.local/share`),
/// `mailferry/state/<hash of the two endpoints>.sqlite`.
pub fn default_state_path(migration: &str) -> anyhow::Result<PathBuf> {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .ok_or_else(|| {
            anyhow!("cannot find a data directory (HOME is not set): pass --state FILE")
        })?;
    // FNV-1a: stable across versions and platforms, unlike std's hasher.
    let hash = migration.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    Ok(base
        .join("mailferry")
        .join("state")
        .join(format!("{hash:016x}.sqlite")))
}

fn credentials(endpoint: &Endpoint, spec: &SecretSpec, side: Side) -> Result<Credentials, Failure> {
    if !matches!(endpoint, Endpoint::Imap { .. }) {
        return Ok(Credentials::None);
    }
    match spec
        .resolve(side, &endpoint.to_string())
        .map_err(Failure::usage)?
    {
        Credential::Password(p) => Ok(Credentials::Password(p.0)),
        Credential::OAuth2(cmd) => Ok(Credentials::OAuth2(cmd)),
    }
}

fn access(args: &AccessArgs, credentials: Credentials) -> Result<Access, Failure> {
    Ok(Access {
        credentials,
        ca_file: args.ca_file.clone(),
        insecure: args.insecure,
        connections: args.connections.max(1),
        wire_trace: crate::wire_trace::open(args.trace_imap.as_deref())?,
    })
}

/// Opens an endpoint; failures are connection failures for IMAP, configuration otherwise.
async fn open(endpoint: &Endpoint, access: &Access, for_target: bool) -> Result<Store, Failure> {
    mailferry::access::open(endpoint, access, for_target)
        .await
        .map_err(|e| {
            let err = anyhow!("{endpoint}: {e}");
            match (endpoint, e.kind()) {
                (Endpoint::Imap { .. }, _) => Failure::connection(err),
                (_, ErrorKind::Transient) => Failure::connection(err),
                _ => Failure::usage(err),
            }
        })
}

fn rules(run: &RunArgs, case_insensitive: bool) -> Result<MappingRules, Failure> {
    let build = || -> mailferry::Result<MappingRules> {
        let mut rules = MappingRules {
            merge: run.merge,
            case_insensitive,
            ..MappingRules::default()
        };
        for m in &run.maps {
            rules = rules.with_rename(m)?;
        }
        for m in &run.map_regexes {
            let (pattern, replacement) = m.split_once("=>").ok_or_else(|| {
                mailferry::Error::fatal(format!("--map-regex {m:?}: expected PATTERN=>REPLACEMENT"))
            })?;
            rules = rules.with_regex_rename(pattern, replacement)?;
        }
        for p in &run.includes {
            rules = rules.with_include(p)?;
        }
        for p in &run.excludes {
            rules = rules.with_exclude(p)?;
        }
        Ok(rules)
    };
    build().map_err(|e| Failure::usage(anyhow!("{e}")))
}

fn filter(run: &RunArgs) -> Result<ItemFilter, Failure> {
    Ok(ItemFilter {
        since: run
            .since
            .as_deref()
            .map(parse_day)
            .transpose()
            .map_err(Failure::usage)?,
        before: run
            .before
            .as_deref()
            .map(parse_day)
            .transpose()
            .map_err(Failure::usage)?,
        max_size: run
            .max_size
            .as_deref()
            .map(parse_size)
            .transpose()
            .map_err(Failure::usage)?,
    })
}

async fn open_state(path: &Path) -> Result<Arc<dyn StateStore>, Failure> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        mailferry::access::create_private_dir(dir)
            .with_context(|| format!("cannot create the state directory {}", dir.display()))
            .map_err(Failure::usage)?;
    }
    let state = mailferry::state::SqliteState::open(path)
        .map_err(|e| Failure::usage(anyhow!("state {}: {e}", path.display())))?;
    Ok(Arc::new(state))
}

/// Runs one pair to completion; every outcome, including errors, is in the report.
pub async fn run_pair(mode: Mode, spec: &PairSpec, quiet: bool) -> MailboxReport {
    let report = MailboxReport::new(mode, spec);
    match run_pair_inner(mode, spec, quiet, report).await {
        Ok(r) => r,
        Err((r, f)) => r.fail(f),
    }
}

type Partial = (MailboxReport, Failure);

async fn run_pair_inner(
    mode: Mode,
    spec: &PairSpec,
    quiet: bool,
    mut report: MailboxReport,
) -> Result<MailboxReport, Partial> {
    macro_rules! tri {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(f) => return Err((report, f)),
            }
        };
    }
    let source_ep = tri!(Endpoint::parse(&spec.source).map_err(Failure::usage));
    let target_ep = tri!(Endpoint::parse(&spec.target).map_err(Failure::usage));
    report.source = source_ep.to_string();
    report.target = target_ep.to_string();
    let item_filter = tri!(filter(&spec.run));
    let budget = tri!(parse_size(&spec.run.memory_budget).map_err(Failure::usage));
    let bwlimit = tri!(
        spec.run
            .bwlimit
            .as_deref()
            .map(parse_size)
            .transpose()
            .map_err(Failure::usage)
    );
    let migration = format!("{source_ep} -> {target_ep}");
    let state_path = match &spec.state_path {
        Some(p) => p.clone(),
        None => tri!(default_state_path(&migration).map_err(Failure::usage)),
    };
    let source_cred = tri!(credentials(&source_ep, &spec.source_secret, Side::Source));
    let target_cred = tri!(credentials(&target_ep, &spec.target_secret, Side::Target));
    // A dry run plans against a local target that does not exist yet as if it were empty.
    let missing_local_target = match &target_ep {
        Endpoint::Maildir { path, .. } | Endpoint::Mbox { path } => !path.exists(),
        Endpoint::Imap { .. } => false,
    };
    // An IMAP target is opened and listed at the same time as the source: on a no-change
    // re-run the connection set-ups (TLS, login) and the two listings are most of the time
    // spent. A local target is opened only once the source is known good, so that a failed
    // source login leaves no empty target directory behind.
    let open_source = async {
        let source = open(&source_ep, &access(&spec.access, source_cred)?, false).await?;
        let folders = source
            .source
            .list_folders()
            .await
            .map_err(|e| Failure::connection(anyhow!("{source_ep}: listing folders: {e}")))?;
        Ok::<_, Failure>((source, folders))
    };
    let open_target = async {
        let target = if spec.run.dry_run && missing_local_target {
            let empty = Arc::new(mailferry::core::MemoryStore::new());
            Store {
                source: empty.clone(),
                target: empty,
            }
        } else {
            open(
                &target_ep,
                &access(&spec.access, target_cred)?,
                !spec.run.dry_run && mode != Mode::Verify,
            )
            .await?
        };
        let folders = target
            .target
            .list_folders()
            .await
            .map_err(|e| Failure::connection(anyhow!("{target_ep}: listing folders: {e}")))?;
        Ok::<_, Failure>((target, folders))
    };
    let ((source, source_folders), (target, target_folders)) =
        if matches!(target_ep, Endpoint::Imap { .. }) {
            let (opened_source, opened_target) = tokio::join!(open_source, open_target);
            (tri!(opened_source), tri!(opened_target))
        } else {
            let opened_source = tri!(open_source.await);
            (opened_source, tri!(open_target.await))
        };
    let mapping_rules = tri!(rules(
        &spec.run,
        target.target.capabilities().case_insensitive_folders
    ));
    let plan: MappingPlan = FolderMapper::new(mapping_rules).plan(&source_folders, &target_folders);
    report.excluded_folders = plan
        .excluded
        .iter()
        .map(|(p, why)| (p.to_string(), why.clone()))
        .collect();
    report.conflicts = plan
        .conflicts
        .iter()
        .map(|c| {
            format!(
                "{} and {} both map to {}{}",
                c.first,
                c.second,
                c.target,
                if c.merged {
                    " (merged)"
                } else {
                    "; the second is left out"
                }
            )
        })
        .collect();
    if spec.run.dry_run {
        println!("{plan}");
        report.outcome = "dry_run";
        return Ok(report);
    }
    let jobs: Vec<FolderJob> = plan.folder_jobs();
    let state = tri!(open_state(&state_path).await);

    if mode == Mode::Verify {
        let caps = target.target.capabilities();
        let options = VerifyOptions {
            migration,
            read_back: spec.run.read_back,
            compare_flags: true,
            compare_keywords: caps.keywords,
            compare_dates: caps.internal_date,
        };
        let v = tri!(
            verify(&*source.source, &*target.target, &*state, &jobs, &options)
                .await
                .map_err(|e| Failure::connection(anyhow!("verify: {e}")))
        );
        if !quiet {
            print!("{}", summary::verify_table(&v));
        }
        if !v.is_match() {
            report.outcome = "differ";
            report.exit_code = Exit::ItemsFailed as u8;
        }
        report.verification = Some(v);
        return Ok(report);
    }

    let options = CopyOptions {
        migration: migration.clone(),
        byte_budget: budget,
        folder_concurrency: spec.run.jobs.max(1),
        filter: item_filter,
        ..CopyOptions::default()
    };
    let writer: Arc<dyn mailferry::Target> = mailferry::core::layers::rate_limited(
        Arc::clone(&target.target),
        spec.run.max_msgs_per_sec,
        bwlimit.map(|b| b as f64),
    );
    let copier = Copier::new(
        Arc::clone(&source.source),
        writer,
        Arc::clone(&state),
        options,
    );
    let total = jobs.iter().map(|j| j.source.status.count).sum();
    let view = ProgressView::start(copier.progress(), total, short_label(&source_ep), quiet);
    let cancel = copier.cancel_token();
    let ctrl_c = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!(
                "mailferry: interrupted; finishing the batches in flight (state is kept, re-run to resume)"
            );
            cancel.cancel();
        }
    });
    let copied = copier.run(jobs.clone()).await;
    ctrl_c.abort();
    drop(copier);
    view.finish().await;
    let copied = tri!(copied.map_err(|e| Failure::connection(anyhow!("{e}"))));
    if !quiet {
        print!("{}", summary::copy_table(&copied));
    }
    if !copied.is_success() {
        report.outcome = "items_failed";
        report.exit_code = Exit::ItemsFailed as u8;
    }
    report.target_rewrites =
        crate::rewrites::check(&source, &target, &*state, &jobs, &migration, &copied).await;
    if let Some(warning) = report
        .target_rewrites
        .as_ref()
        .and_then(|c| crate::rewrites::warning(c, &spec.source, &spec.target))
    {
        // A warning is shown even with -q: the user believes the copy is faithful.
        eprintln!("mailferry: {warning}");
    }
    report.copy = Some(copied);
    if mode == Mode::Sync {
        let options = SyncOptions {
            migration,
            flags: true,
            delete: spec.run.delete,
            max_delete_percent: spec.run.max_delete_percent,
            force: spec.run.force,
        };
        let synced = tri!(
            sync_changes(&*source.source, &*target.target, &*state, &jobs, &options)
                .await
                .map_err(|e| if e.is_fatal() {
                    Failure::usage(anyhow!("sync: {e}"))
                } else {
                    Failure::connection(anyhow!("sync: {e}"))
                })
        );
        for s in &synced {
            if let Some(why) = &s.refused {
                eprintln!("mailferry: {why}");
                report.outcome = "items_failed";
                report.exit_code = Exit::ItemsFailed as u8;
            }
        }
        if !quiet {
            let flags: u64 = synced.iter().map(|s| s.flags_updated).sum();
            let deleted: u64 = synced.iter().map(|s| s.deleted).sum();
            println!("sync: {flags} flag changes carried, {deleted} messages deleted");
        }
        report.sync = Some(synced);
    }
    Ok(report)
}

fn short_label(e: &Endpoint) -> String {
    match e {
        Endpoint::Imap { user, .. } => user.clone(),
        Endpoint::Maildir { path, .. } | Endpoint::Mbox { path } => path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string()),
    }
}

/// Writes a report as JSON, created private.
pub fn write_report(path: &Path, value: &impl Serialize) -> Result<(), Failure> {
    let json = serde_json::to_vec_pretty(value).map_err(|e| Failure::usage(anyhow!(e)))?;
    mailferry::access::write_private_file(path, &json)
        .with_context(|| format!("cannot write the report {}", path.display()))
        .map_err(Failure::usage)
}

/// `copy`, `sync`, `verify`.
pub async fn run(mode: Mode, args: PairArgs, quiet: bool) -> Result<Exit, Failure> {
    let spec = PairSpec {
        source: args.source,
        target: args.target,
        source_secret: SecretSpec {
            password_file: args.access.source_password_file.clone(),
            oauth2_command: args.access.source_oauth2_command.clone(),
            password_env: None,
        },
        target_secret: SecretSpec {
            password_file: args.access.target_password_file.clone(),
            oauth2_command: args.access.target_oauth2_command.clone(),
            password_env: None,
        },
        state_path: args.run.state.clone(),
        access: args.access,
        run: args.run,
    };
    let report = run_pair(mode, &spec, quiet).await;
    if let Some(path) = &spec.run.report {
        write_report(path, &report)?;
    }
    if let Some(e) = &report.error {
        return Err(Failure {
            exit: report.exit(),
            error: anyhow!("{e}"),
        });
    }
    Ok(report.exit())
}

/// `folders`: the tree with counts, sizes and roles.
pub async fn folders(args: FoldersArgs) -> Result<Exit, Failure> {
    let endpoint = Endpoint::parse(&args.endpoint).map_err(Failure::usage)?;
    let secret = SecretSpec {
        password_file: args.password_file.clone(),
        oauth2_command: args.oauth2_command.clone(),
        password_env: None,
    };
    let cred = credentials(&endpoint, &secret, Side::Source)?;
    let access_args = AccessArgs {
        ca_file: args.ca_file.clone(),
        insecure: args.insecure,
        connections: 1,
        ..AccessArgs::default()
    };
    let store = open(&endpoint, &access(&access_args, cred)?, false).await?;
    let mut folders = store
        .source
        .list_folders()
        .await
        .map_err(|e| Failure::connection(anyhow!("{endpoint}: {e}")))?;
    folders.sort_by(|a, b| a.path.cmp(&b.path));
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&folders).map_err(|e| Failure::usage(anyhow!(e)))?
        );
        return Ok(Exit::Ok);
    }
    println!("{:<40} {:>8} {:>10}  role", "folder", "messages", "MB");
    for f in &folders {
        let indent = "  ".repeat(f.path.depth().saturating_sub(1));
        let name = format!("{indent}{}", f.path.name().unwrap_or(""));
        let size = f
            .status
            .size
            .map_or("-".to_string(), |s| format!("{:.1}", s as f64 / 1e6));
        let role = f.special_use.map(|r| r.as_imap()).unwrap_or("");
        let count = if f.selectable {
            f.status.count.to_string()
        } else {
            "-".into()
        };
        println!("{name:<40} {count:>8} {size:>10}  {role}");
    }
    Ok(Exit::Ok)
}
