//! `plan`: many mailbox pairs from one file, like imapsync's bulk mode but built in. This module
//! reads the file and the secrets; the library ([`mailferry::mailbox::run_plan`]) runs the
//! mailboxes `--jobs` at a time with one memory budget between them, each with its own state
//! file (so re-running the plan resumes it) and its own outcome: a failed mailbox is reported
//! and the others go on.
//!
//! TOML:
//! ```toml
//! [[mailbox]]
//! source = "imaps://alice@old.example.org"
//! target = "imaps://alice@new.example.org"
//! source_password_file = "secrets/alice-old"   # or source_password_env = "ALICE_OLD"
//! target_password_file = "secrets/alice-new"
//! [mailbox.options]                              # optional: any MigrationOptions field
//! filter = { max_size = "25M" }
//! ```
//! CSV: `source,target[,source_password_file,target_password_file]`, an optional header row.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use mailferry::MigrationOptions;
use mailferry::core::engine::ByteSize;
use mailferry::core::layers::Metrics;
use mailferry::mailbox::{
    MailboxReport, MailboxSpec, Mode, PlanObserver, PreparedMailbox, default_state_path,
    run_plan_observed,
};
use serde::Deserialize;

use crate::args::{AccessArgs, LogFormat, PlanArgs};
use crate::metrics_http::Exporter;
use crate::pair::{access, credentials, write_report};
use crate::plan_view::PlanView;
use crate::secrets::{SecretSpec, Side};
use crate::{Exit, Failure};

/// One row of a plan.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanEntry {
    pub source: String,
    pub target: String,
    #[serde(default)]
    pub source_password_file: Option<PathBuf>,
    #[serde(default)]
    pub target_password_file: Option<PathBuf>,
    #[serde(default)]
    pub source_password_env: Option<String>,
    #[serde(default)]
    pub target_password_env: Option<String>,
    #[serde(default)]
    pub source_oauth2_command: Option<String>,
    #[serde(default)]
    pub target_oauth2_command: Option<String>,
    /// This mailbox's options (the defaults where the row names none).
    #[serde(default)]
    pub options: Option<MigrationOptions>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlPlan {
    mailbox: Vec<PlanEntry>,
}

/// Reads a plan; relative password-file paths are relative to the plan's directory.
pub fn read_plan(path: &Path) -> anyhow::Result<Vec<PlanEntry>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the plan {}", path.display()))?;
    let mut entries = if path.extension().is_some_and(|e| e == "toml") {
        toml::from_str::<TomlPlan>(&text)
            .with_context(|| format!("{} is not a valid TOML plan", path.display()))?
            .mailbox
    } else {
        parse_csv(&text).with_context(|| format!("{} is not a valid CSV plan", path.display()))?
    };
    if entries.is_empty() {
        bail!("the plan {} lists no mailbox", path.display());
    }
    let base = path.parent().unwrap_or(Path::new("."));
    for e in &mut entries {
        for f in [&mut e.source_password_file, &mut e.target_password_file]
            .into_iter()
            .flatten()
        {
            if f.is_relative() {
                *f = base.join(&*f);
            }
        }
    }
    Ok(entries)
}

fn parse_csv(text: &str) -> anyhow::Result<Vec<PlanEntry>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || (n == 0 && line.starts_with("source,")) {
            continue;
        }
        let cols: Vec<&str> = line.split(',').map(str::trim).collect();
        if !(2..=4).contains(&cols.len()) {
            bail!(
                "line {}: expected source,target[,source_password_file,target_password_file]",
                n + 1
            );
        }
        let file = |i: usize| cols.get(i).filter(|s| !s.is_empty()).map(PathBuf::from);
        out.push(PlanEntry {
            source: cols[0].to_string(),
            target: cols[1].to_string(),
            source_password_file: file(2),
            target_password_file: file(3),
            source_password_env: None,
            target_password_env: None,
            source_oauth2_command: None,
            target_oauth2_command: None,
            options: None,
        });
    }
    Ok(out)
}

fn spec(entry: &PlanEntry, args: &PlanArgs) -> Result<MailboxSpec, Failure> {
    let mut spec = MailboxSpec::new(&entry.source, &entry.target);
    if let Some(dir) = &args.state_dir {
        let name = default_state_path(&format!("{} -> {}", entry.source, entry.target))
            .map_err(|e| Failure::usage(anyhow!("{e}")))?;
        spec.state = name.file_name().map(|f| dir.join(f));
    }
    let access_args = AccessArgs {
        ca_file: args.ca_file.clone(),
        insecure: args.insecure,
        connections: args.connections,
        ..AccessArgs::default()
    };
    let source = credentials(
        &entry.source,
        &SecretSpec {
            password_file: entry.source_password_file.clone(),
            oauth2_command: entry.source_oauth2_command.clone(),
            password_env: entry.source_password_env.clone(),
        },
        Side::Source,
    )?;
    let target = credentials(
        &entry.target,
        &SecretSpec {
            password_file: entry.target_password_file.clone(),
            oauth2_command: entry.target_oauth2_command.clone(),
            password_env: entry.target_password_env.clone(),
        },
        Side::Target,
    )?;
    spec.source_access = access(&access_args, source)?;
    spec.target_access = access(&access_args, target)?;
    spec.options = entry.options.clone().unwrap_or_default();
    spec.options
        .validate()
        .map_err(|e| Failure::usage(anyhow!("{e}")))?;
    spec.dry_run = args.dry_run;
    spec.manifest = args
        .manifest_dir
        .as_deref()
        .map(|d| crate::manifest_cmd::plan_manifest_path(d, &entry.source, &entry.target));
    Ok(spec)
}

/// The runner numbers the mailboxes it runs; the view numbers the plan's rows (some rows may
/// have failed before running).
struct InPlanOrder<'a> {
    view: &'a PlanView,
    order: &'a [usize],
}

impl PlanObserver for InPlanOrder<'_> {
    fn started(&self, index: usize, mailbox: &PreparedMailbox) {
        if let Some(row) = self.order.get(index) {
            self.view.started(*row, mailbox);
        }
    }

    fn finished(&self, index: usize, report: &MailboxReport) {
        if let Some(row) = self.order.get(index) {
            self.view.finished(*row, report);
        }
    }
}

pub async fn run(args: PlanArgs, quiet: bool, format: LogFormat) -> Result<Exit, Failure> {
    let entries = read_plan(&args.file).map_err(Failure::usage)?;
    let exporter = Exporter::start(&args.metrics, format).await?;
    let metrics = exporter
        .as_ref()
        .map_or_else(|| Arc::new(Metrics::new()), Exporter::metrics);
    let budget =
        ByteSize::parse(&args.memory_budget).map_err(|e| Failure::usage(anyhow!("{e}")))?;
    // A mailbox whose secrets cannot be read is reported as failed; the others go on.
    let mut early = Vec::new();
    let mut specs = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        match spec(entry, &args) {
            Ok(s) => specs.push((i, s)),
            Err(f) => {
                let mut r =
                    MailboxReport::new(Mode::Copy, &MailboxSpec::new(&entry.source, &entry.target));
                r.outcome = "error".into();
                r.exit_code = f.exit as u8;
                r.error = Some(format!("{:#}", f.error));
                early.push((i, r));
            }
        }
    }
    let labels = entries
        .iter()
        .map(|e| {
            mailferry::Endpoint::parse(&e.source)
                .map(|ep| crate::pair::short_label(&ep))
                .unwrap_or_else(|_| e.source.clone())
        })
        .collect();
    let view = PlanView::start(labels, quiet, format);
    for (i, r) in &early {
        metrics.mailbox_completed(&r.outcome);
        view.finished(*i, r);
    }
    let (order, specs): (Vec<usize>, Vec<MailboxSpec>) = specs.into_iter().unzip();
    let observer = InPlanOrder {
        view: &view,
        order: &order,
    };
    let mut report =
        run_plan_observed(Mode::Copy, specs, args.jobs, budget, metrics, &observer).await;
    view.finish();
    if !early.is_empty() {
        let mut all: Vec<(usize, MailboxReport)> = order
            .into_iter()
            .zip(std::mem::take(&mut report.mailboxes))
            .collect();
        all.extend(early);
        all.sort_by_key(|(i, _)| *i);
        report.mailboxes = all.into_iter().map(|(_, r)| r).collect();
        report.failed_mailboxes = report.mailboxes.iter().filter(|r| r.exit_code != 0).count();
    }
    if !quiet {
        let totals = &report.totals;
        println!(
            "{} mailboxes, {} failed; {} items copied ({} already, {} existing, {} failed) in {:.1} s",
            report.mailboxes.len(),
            report.failed_mailboxes,
            totals.copied,
            totals.already_copied,
            totals.skipped_existing,
            totals.failed,
            report.duration_secs
        );
    }
    let written = match &args.report {
        Some(path) => write_report(path, &report),
        None => Ok(()),
    };
    if let Some(exporter) = exporter {
        exporter.finish().await;
    }
    written?;
    // A failed mailbox makes the plan "finished with failures" (1), whatever its own cause.
    Ok(if report.failed_mailboxes == 0 {
        Exit::Ok
    } else {
        Exit::ItemsFailed
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_csv_with_header_and_relative_secret_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("plan.csv");
        std::fs::write(&path, "source,target,source_password_file,target_password_file\nmbox:a.mbox,maildir:out/a\nimaps://u@h,maildir:out/u,pw/u,\n").expect("write");
        let plan = read_plan(&path).expect("plan");
        assert_eq!(plan.len(), 2);
        assert_eq!(
            plan[1].source_password_file.as_deref(),
            Some(dir.path().join("pw/u").as_path())
        );
        assert_eq!(plan[1].target_password_file, None);
    }

    #[test]
    fn refuses_unknown_toml_keys_and_empty_plans() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("plan.toml");
        std::fs::write(
            &path,
            "[[mailbox]]\nsource = \"mbox:a\"\ntarget = \"maildir:b\"\npassword = \"x\"\n",
        )
        .expect("write");
        assert!(read_plan(&path).is_err());
        std::fs::write(&path, "mailbox = []\n").expect("write");
        assert!(read_plan(&path).is_err());
    }
}
