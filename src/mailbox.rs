//! Mailboxes named by endpoint URLs: from a [`MailboxSpec`] (two URLs, how to reach them, where
//! the state lives, the [`MigrationOptions`]) to a [`Migration`] and its [`MailboxReport`] —
//! the JSON that `mailferry copy|sync|verify --report` writes, a contract whose fields are only
//! ever added. [`run_plan`] runs many of them with one memory budget ([`crate::core::engine::many`]).
//!
//! Every outcome, including a failure to open, ends in a report: a mailbox that cannot run is
//! one line of a plan's report, not the end of the plan.
//!
//! ```no_run
//! use mailferry::mailbox::{MailboxSpec, Mode};
//!
//! # async fn demo() {
//! let spec = MailboxSpec::new("mbox:export.mbox", "maildir:migrated");
//! let report = mailferry::mailbox::run(Mode::Copy, &spec).await;
//! println!("{}: exit code {}", report.outcome, report.exit_code);
//! # }
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::access::{Access, Store};
use crate::core::engine::ByteSize;
use crate::core::engine::many::run_many;
use crate::core::layers::Metrics;
use crate::core::{
    Counts, Error, ErrorDomain, ErrorKind, FolderPlan, FolderSync, MemoryBudget, Migration,
    MigrationOptions, Report, Result, StateStore, Verification,
};
use crate::endpoint::Endpoint;
use crate::manifest::{ManifestSummary, Recorder};

mod counting;
mod observer;

pub use observer::PlanObserver;

/// Which pass to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Copy what is new.
    Copy,
    /// Copy, then carry flag changes (and deletions if the options say so).
    Sync,
    /// Compare.
    Verify,
}

/// One mailbox: where from, where to, how to get in, where its state lives, how to run.
#[derive(Debug, Clone)]
pub struct MailboxSpec {
    /// The source endpoint URL.
    pub source: String,
    /// The target endpoint URL.
    pub target: String,
    /// How to reach the source (credentials, TLS, sessions).
    pub source_access: Access,
    /// How to reach the target.
    pub target_access: Access,
    /// The state file; `None`: one per source/target pair under the user's data directory
    /// ([`default_state_path`]).
    pub state: Option<PathBuf>,
    /// The run's options.
    pub options: MigrationOptions,
    /// Plan and report, write nothing.
    pub dry_run: bool,
    /// copy/sync: the audit manifest to write every copied message to ([`crate::manifest`]).
    pub manifest: Option<PathBuf>,
}

impl MailboxSpec {
    /// A spec with default access and options.
    pub fn new(source: impl Into<String>, target: impl Into<String>) -> Self {
        MailboxSpec {
            source: source.into(),
            target: target.into(),
            source_access: Access {
                connections: 4,
                ..Access::default()
            },
            target_access: Access {
                connections: 4,
                ..Access::default()
            },
            state: None,
            options: MigrationOptions::default(),
            dry_run: false,
            manifest: None,
        }
    }
}

/// The `--report` JSON of one mailbox (a contract: fields are only ever added).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MailboxReport {
    /// Which pass.
    pub command: Mode,
    /// The source, as parsed (no secret).
    pub source: String,
    /// The target, as parsed.
    pub target: String,
    /// "ok", "items_failed", "differ", "error" or "dry_run".
    pub outcome: String,
    /// The command line's exit code for this outcome (0, 1, 2 or 3).
    pub exit_code: u8,
    /// Why the mailbox could not run to the end.
    pub error: Option<String>,
    /// Source folders left out, and why.
    pub excluded_folders: Vec<(String, String)>,
    /// Folders that map onto the same target folder.
    pub conflicts: Vec<String>,
    /// Folders the plan knows will fail, and why (their messages are counted as failed).
    #[serde(default)]
    pub folders_will_fail: Vec<(String, String)>,
    /// The copy pass.
    pub copy: Option<Report>,
    /// The change pass of sync.
    pub sync: Option<Vec<FolderSync>>,
    /// The comparison of verify.
    pub verification: Option<Verification>,
    /// The audit manifest this run wrote to (`--manifest`), with its digest.
    pub manifest: Option<ManifestSummary>,
    /// After a copy or sync: what reading back a sample of each written folder found (absent
    /// when nothing was written or the check could not run; see
    /// [`crate::core::verify::spot_check`]).
    #[serde(default)]
    pub target_rewrites: Option<crate::core::RewriteCheck>,
}

/// Items read back per written folder after a copy, to find a target that rewrites.
pub const SPOT_CHECK_PER_FOLDER: usize = 16;

/// The post-copy spot check; a failure of the check itself is a warning, not the run's error.
async fn spot_check(
    migration: &Migration,
    plan: &FolderPlan,
    copied: &crate::core::Report,
) -> Option<crate::core::RewriteCheck> {
    match migration
        .spot_check_planned(plan, copied, SPOT_CHECK_PER_FOLDER)
        .await
    {
        Ok(check) => check,
        Err(e) => {
            tracing::warn!(
                "could not read back a sample to check that the target stored messages \
                 unchanged: {e}; run `verify --read-back` to check"
            );
            None
        }
    }
}

/// The command line's exit code for an error that stopped a run: 3 for reaching or logging in
/// to a server, 2 for the caller's configuration or local storage (a bad option, a full disk),
/// 1 for an item error; an error whose origin is unknown counts as a connection failure.
pub fn exit_code(error: &Error) -> u8 {
    match (error.domain(), error.kind()) {
        (Some(ErrorDomain::Auth | ErrorDomain::Connection), _) => 3,
        (Some(ErrorDomain::Config | ErrorDomain::Storage), _) => 2,
        (None, ErrorKind::Item) => 1,
        (None, _) => 3,
    }
}

impl MailboxReport {
    /// A report for `spec` that has not run yet.
    pub fn new(mode: Mode, spec: &MailboxSpec) -> Self {
        MailboxReport {
            command: mode,
            source: spec.source.clone(),
            target: spec.target.clone(),
            outcome: "ok".into(),
            exit_code: 0,
            error: None,
            excluded_folders: Vec::new(),
            conflicts: Vec::new(),
            folders_will_fail: Vec::new(),
            copy: None,
            sync: None,
            verification: None,
            manifest: None,
            target_rewrites: None,
        }
    }

    /// Marks the report failed by `error`.
    pub fn fail(mut self, error: &Error) -> Self {
        self.outcome = "error".into();
        self.exit_code = exit_code(error);
        self.error = Some(error.to_string());
        self
    }

    fn items_failed(&mut self, outcome: &str) {
        self.outcome = outcome.into();
        self.exit_code = self.exit_code.max(1);
    }
}

/// The default state file for a migration: under `$XDG_DATA_HOME` (or `~/.local/share`),
/// `mailferry/state/<hash of the migration's name>.sqlite`.
pub fn default_state_path(migration: &str) -> Result<PathBuf> {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .ok_or_else(|| {
            Error::fatal("cannot find a data directory (HOME is not set): pass --state FILE")
                .with_domain(ErrorDomain::Config)
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

/// The name a pair's records are kept under: `SOURCE -> TARGET`, as parsed.
pub fn migration_name(source: &Endpoint, target: &Endpoint) -> String {
    format!("{source} -> {target}")
}

#[cfg(feature = "sqlite")]
fn open_state(path: &Path) -> Result<Arc<dyn StateStore>> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::access::create_private_dir(dir).map_err(|e| {
            Error::io(
                ErrorKind::Fatal,
                format!("cannot create the state directory {}", dir.display()),
                e,
            )
            .with_domain(ErrorDomain::Config)
        })?;
    }
    let state = crate::state::SqliteState::open(path).map_err(|e| {
        Error::fatal(format!("state {}: {e}", path.display())).with_domain(ErrorDomain::Config)
    })?;
    Ok(Arc::new(state))
}

#[cfg(not(feature = "sqlite"))]
fn open_state(_path: &Path) -> Result<Arc<dyn StateStore>> {
    Err(
        Error::fatal("this build of mailferry has no state store (enable the sqlite feature)")
            .with_domain(ErrorDomain::Config),
    )
}

/// Opens an endpoint; a failure is a connection failure for IMAP and a configuration error for
/// a local store, unless the backend said otherwise.
async fn open_endpoint(endpoint: &Endpoint, access: &Access, for_target: bool) -> Result<Store> {
    crate::access::open(endpoint, access, for_target)
        .await
        .map_err(|e| {
            let domain = match (endpoint, e.kind()) {
                (Endpoint::Imap { .. }, _) | (_, ErrorKind::Transient) => ErrorDomain::Connection,
                _ => ErrorDomain::Config,
            };
            e.context(endpoint).with_domain(domain)
        })
}

/// A mailbox opened and planned, ready to run (or to show its plan).
pub struct PreparedMailbox {
    /// The migration.
    pub migration: Migration,
    /// Its folder plan (what a dry run prints).
    pub plan: FolderPlan,
    mode: Mode,
    report: MailboxReport,
    recorder: Option<Arc<Recorder>>,
}

/// Opens both endpoints and the state, builds the [`Migration`] and plans its folders. An IMAP
/// target is opened at the same time as the source; a local target only once the source is
/// known good, so a failed source login leaves no empty target directory behind. A dry run
/// plans against a local target that does not exist yet as if it were empty, and opens no state.
pub async fn prepare(
    mode: Mode,
    spec: &MailboxSpec,
    budget: Option<MemoryBudget>,
    metrics: Option<Arc<Metrics>>,
) -> std::result::Result<PreparedMailbox, MailboxReport> {
    let mut report = MailboxReport::new(mode, spec);
    match prepare_inner(mode, spec, budget, metrics, &mut report).await {
        Ok((migration, plan, recorder)) => Ok(PreparedMailbox {
            migration,
            plan,
            mode,
            report,
            recorder,
        }),
        Err(e) => Err(report.fail(&e)),
    }
}

async fn prepare_inner(
    mode: Mode,
    spec: &MailboxSpec,
    budget: Option<MemoryBudget>,
    metrics: Option<Arc<Metrics>>,
    report: &mut MailboxReport,
) -> Result<(Migration, FolderPlan, Option<Arc<Recorder>>)> {
    let config = |e: Error| e.with_domain(ErrorDomain::Config);
    let source_ep = Endpoint::parse(&spec.source).map_err(config)?;
    let target_ep = Endpoint::parse(&spec.target).map_err(config)?;
    report.source = source_ep.to_string();
    report.target = target_ep.to_string();
    spec.options.validate()?;
    let name = migration_name(&source_ep, &target_ep);
    let state_path = match &spec.state {
        Some(p) => p.clone(),
        None => default_state_path(&name)?,
    };
    let missing_local_target = match &target_ep {
        Endpoint::Maildir { path, .. } | Endpoint::Mbox { path } => !path.exists(),
        Endpoint::Imap { .. } => false,
    };
    let open_target = async {
        if spec.dry_run && missing_local_target {
            let empty = Arc::new(crate::core::MemoryStore::new());
            return Ok(Store {
                source: empty.clone(),
                target: empty,
            });
        }
        let writes = !spec.dry_run && mode != Mode::Verify;
        open_endpoint(&target_ep, &spec.target_access, writes).await
    };
    let (source, target) = if matches!(target_ep, Endpoint::Imap { .. }) {
        let (source, target) = tokio::join!(
            open_endpoint(&source_ep, &spec.source_access, false),
            open_target
        );
        (source?, target?)
    } else {
        let source = open_endpoint(&source_ep, &spec.source_access, false).await?;
        (source, open_target.await?)
    };
    let metrics = metrics.unwrap_or_else(|| Arc::new(Metrics::new()));
    let state: Arc<dyn StateStore> = if spec.dry_run {
        Arc::new(crate::core::MemoryState::new())
    } else {
        // Its writes are timed (the state commit latency histogram).
        crate::core::layers::TimedState::wrap(open_state(&state_path)?, Arc::clone(&metrics))
    };
    let build = |target: Arc<dyn crate::Target>, state: Arc<dyn StateStore>| {
        let migration = Migration::with_metrics(
            name.clone(),
            Arc::clone(&source.source),
            target,
            state,
            spec.options.clone(),
            Arc::clone(&metrics),
        )?;
        Ok::<_, Error>(match budget.clone() {
            Some(budget) => migration.share_budget(budget),
            None => migration,
        })
    };
    let mut migration = build(Arc::clone(&target.target), Arc::clone(&state))?;
    let plan = migration.plan().await?;
    // The manifest needs the folder map, known once planned: the migration is rebuilt (no I/O)
    // with the recording target and state (see `crate::manifest` for why both).
    let recorder = match &spec.manifest {
        Some(path) if !spec.dry_run && mode != Mode::Verify => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                crate::access::create_private_dir(dir).map_err(|e| {
                    Error::io(
                        ErrorKind::Fatal,
                        format!("cannot create {}", dir.display()),
                        e,
                    )
                })?;
            }
            let folders = plan
                .jobs()
                .into_iter()
                .map(|j| (j.source.path.clone(), j.target.clone()));
            let recorder = Recorder::create(path, &name, folders)
                .map_err(|e| e.with_domain(ErrorDomain::Storage))?;
            migration = build(
                recorder.wrap_target(Arc::clone(&target.target)),
                recorder.wrap_state(Arc::clone(&state)),
            )?;
            Some(recorder)
        }
        _ => None,
    };
    report.excluded_folders = plan
        .mapping
        .excluded
        .iter()
        .map(|(p, why)| (p.to_string(), why.clone()))
        .collect();
    report.folders_will_fail = plan
        .mapping
        .will_fail
        .iter()
        .map(|(p, why)| (p.to_string(), why.clone()))
        .collect();
    report.conflicts = plan
        .mapping
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
    Ok((migration, plan, recorder))
}

impl PreparedMailbox {
    /// The report as it stands before running (the endpoints, the plan's exclusions).
    pub fn report(&self) -> &MailboxReport {
        &self.report
    }

    /// Ends a dry run: the report, marked `dry_run`.
    pub fn dry_run(mut self) -> MailboxReport {
        self.report.outcome = "dry_run".into();
        self.report
    }

    /// Runs the pass; every outcome, including an error, is in the report.
    pub async fn run(self) -> MailboxReport {
        let PreparedMailbox {
            migration,
            plan,
            mode,
            report,
            recorder,
        } = self;
        // The run is counted into the metrics its layers feed (shared by a plan's mailboxes).
        let metrics = Arc::clone(migration.metrics());
        let progress = migration.progress();
        let run = Self::run_mode(migration, plan, mode, report);
        let mut report = counting::counted(&metrics, progress, run).await;
        // Ends the run's manifest member, after a failed copy too: what was copied is listed.
        if let Some(recorder) = recorder {
            match recorder.finish() {
                Ok(summary) => report.manifest = Some(summary),
                Err(e) if report.error.is_none() => {
                    report = report.fail(&e.with_domain(ErrorDomain::Storage));
                }
                Err(e) => tracing::warn!("finishing the manifest: {e}"),
            }
        }
        report
    }

    async fn run_mode(
        migration: Migration,
        plan: FolderPlan,
        mode: Mode,
        mut report: MailboxReport,
    ) -> MailboxReport {
        match mode {
            Mode::Verify => match migration.verify_planned(&plan).await {
                Ok(v) => {
                    if !v.is_match() {
                        report.items_failed("differ");
                    }
                    report.verification = Some(v);
                    report
                }
                Err(e) => report.fail(&e.context("verify")),
            },
            Mode::Copy => match migration.copy_planned(&plan).await {
                Ok(copied) => {
                    if !copied.is_success() {
                        report.items_failed("items_failed");
                    }
                    report.target_rewrites = spot_check(&migration, &plan, &copied).await;
                    report.copy = Some(copied);
                    report
                }
                Err(e) => report.fail(&e),
            },
            Mode::Sync => match migration.sync_planned(&plan).await {
                Ok(synced) => {
                    if !synced.copy.is_success() {
                        report.items_failed("items_failed");
                    }
                    for s in &synced.folders {
                        if let Some(why) = &s.refused {
                            tracing::warn!("{why}");
                            report.items_failed("items_failed");
                        }
                    }
                    report.target_rewrites = spot_check(&migration, &plan, &synced.copy).await;
                    report.copy = Some(synced.copy);
                    report.sync = Some(synced.folders);
                    report
                }
                Err(e) => report.fail(&e.context("sync")),
            },
        }
    }
}

/// Opens, plans and runs one mailbox (a dry run stops after the plan).
pub async fn run(mode: Mode, spec: &MailboxSpec) -> MailboxReport {
    match prepare(mode, spec, None, None).await {
        Ok(prepared) if spec.dry_run => prepared.dry_run(),
        Ok(prepared) => prepared.run().await,
        Err(report) => report,
    }
}

/// The `--report` JSON of a plan (a contract: fields are only ever added).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanReport {
    /// One report per mailbox, in the plan's order.
    pub mailboxes: Vec<MailboxReport>,
    /// The copy counts of all mailboxes added up.
    pub totals: Counts,
    /// Mailboxes that did not end `ok` (or `dry_run`).
    pub failed_mailboxes: usize,
    /// Wall time.
    pub duration_secs: f64,
    /// Messages copied per second of wall time.
    pub items_per_sec: f64,
}

/// Runs many mailboxes, `jobs` at a time, with one memory budget of `memory_budget` between
/// them and one [`Metrics`] fed by all. `finished` is called as each mailbox ends (to print a
/// line, say). One mailbox's failure stops nothing else.
pub async fn run_plan(
    mode: Mode,
    specs: Vec<MailboxSpec>,
    jobs: usize,
    memory_budget: ByteSize,
    metrics: Arc<Metrics>,
    finished: impl Fn(&MailboxReport) + Send + Sync,
) -> PlanReport {
    struct Finished<F>(F);
    impl<F: Fn(&MailboxReport) + Send + Sync> PlanObserver for Finished<F> {
        fn finished(&self, _index: usize, report: &MailboxReport) {
            (self.0)(report)
        }
    }
    run_plan_observed(
        mode,
        specs,
        jobs,
        memory_budget,
        metrics,
        &Finished(finished),
    )
    .await
}

/// [`run_plan`], telling `observer` as each mailbox starts and ends (a live view).
pub async fn run_plan_observed(
    mode: Mode,
    specs: Vec<MailboxSpec>,
    jobs: usize,
    memory_budget: ByteSize,
    metrics: Arc<Metrics>,
    observer: &dyn PlanObserver,
) -> PlanReport {
    let started = Instant::now();
    let metrics = &metrics;
    let specs: Vec<(usize, MailboxSpec)> = specs.into_iter().enumerate().collect();
    let mailboxes = run_many(
        specs,
        jobs,
        memory_budget,
        |(index, spec), budget| async move {
            let report = match prepare(mode, &spec, Some(budget), Some(Arc::clone(metrics))).await {
                Ok(prepared) if spec.dry_run => prepared.dry_run(),
                Ok(prepared) => {
                    observer.started(index, &prepared);
                    prepared.run().await
                }
                Err(report) => {
                    metrics.mailbox_completed(&report.outcome);
                    report
                }
            };
            observer.finished(index, &report);
            report
        },
    )
    .await;
    let mut totals = Counts::default();
    for r in &mailboxes {
        if let Some(c) = &r.copy {
            totals.add(&c.totals);
        }
    }
    let duration_secs = started.elapsed().as_secs_f64();
    PlanReport {
        items_per_sec: totals.copied as f64 / duration_secs.max(1e-9),
        failed_mailboxes: mailboxes.iter().filter(|r| r.exit_code != 0).count(),
        mailboxes,
        totals,
        duration_secs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_come_from_the_error() {
        let auth = Error::fatal("bad password").with_domain(ErrorDomain::Auth);
        assert_eq!(exit_code(&auth), 3);
        let disk = Error::io(
            ErrorKind::Fatal,
            "writing",
            std::io::Error::new(std::io::ErrorKind::StorageFull, "full"),
        );
        assert_eq!(exit_code(&disk), 2);
        assert_eq!(
            exit_code(&Error::fatal("x").with_domain(ErrorDomain::Config)),
            2
        );
        assert_eq!(exit_code(&Error::transient("reset")), 3);
    }
}
